/* services/store/watch/watch_batch.c — see watch_batch.h. */
#include "services/store/watch/watch_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/mvccpb/kv.pb-c.h"
#include "services/store/watch/watch_wire.h"

bool watch_event_has_predecessor(const store_event *e) { return e->is_delete || e->version > 1; }

/* The messages of event e (they borrow e's bytes); with_prev adds its prev. */
static void build(const store_event *e, bool with_prev, Mvccpb__Event *ev, Mvccpb__KeyValue *kv,
                  Mvccpb__KeyValue *prev) {
  mvccpb__key_value__init(kv);
  kv->key.data = e->key;
  kv->key.len = e->keylen;
  kv->mod_revision = e->rev.main;
  if (!e->is_delete) {
    kv->value.data = e->value;
    kv->value.len = e->valuelen;
    kv->create_revision = e->create_revision;
    kv->version = e->version;
    kv->lease = e->lease;
  }
  mvccpb__event__init(ev);
  ev->type = e->is_delete ? MVCCPB__EVENT__EVENT_TYPE__DELETE : MVCCPB__EVENT__EVENT_TYPE__PUT;
  ev->kv = kv;
  if (with_prev && e->has_prev) {
    mvccpb__key_value__init(prev);
    prev->key.data = e->key;
    prev->key.len = e->keylen;
    prev->value.data = e->prev_value;
    prev->value.len = e->prev_valuelen;
    prev->create_revision = e->prev_create_revision;
    prev->mod_revision = e->prev_mod_revision;
    prev->version = e->prev_version;
    prev->lease = e->prev_lease;
    ev->prev_kv = prev;
  }
}

int watch_batch_encode(watch_batch *v, const store_event_batch *b) {
  memset(v, 0, sizeof(*v));
  v->revision = b->revision;
  v->n = b->n;
  if (b->n == 0) return 0;
  size_t n = b->n;
  bool any_prev = false;
  for (size_t i = 0; i < n; i++) any_prev |= b->events[i].has_prev;
  /* off and len, each 2n; plus each entry's packed Event size (2n). */
  size_t *mem = malloc(6 * n * sizeof(*mem));
  if (!mem) return -ENOMEM;
  v->off = mem;
  v->len = mem + 2 * n;
  size_t *body = mem + 4 * n;
  Mvccpb__Event ev;
  Mvccpb__KeyValue kv, prev;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    build(&b->events[i], false, &ev, &kv, &prev);
    body[i] = mvccpb__event__get_packed_size(&ev);
    v->len[i] = watch_field_size(body[i]);
    v->off[i] = total;
    total += v->len[i];
  }
  for (size_t i = 0; i < n; i++) {
    if (!any_prev) {
      v->off[n + i] = v->off[i];
      v->len[n + i] = v->len[i];
      continue;
    }
    /* With any prev in the batch, the second shape is a contiguous copy of
     * the first with the prevs added: a prev_kv watcher's run is one range. */
    size_t b2 = body[i];
    if (b->events[i].has_prev) {
      build(&b->events[i], true, &ev, &kv, &prev);
      b2 = mvccpb__event__get_packed_size(&ev);
    }
    body[n + i] = b2;
    v->len[n + i] = watch_field_size(b2);
    v->off[n + i] = total;
    total += v->len[n + i];
  }
  uint8_t *buf = malloc(total);
  if (!buf) {
    free(mem);
    memset(v, 0, sizeof(*v));
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    build(&b->events[i], false, &ev, &kv, &prev);
    watch_wire_event(buf + v->off[i], &ev, body[i]);
    if (!any_prev) continue;
    if (b->events[i].has_prev) {
      build(&b->events[i], true, &ev, &kv, &prev);
      watch_wire_event(buf + v->off[n + i], &ev, body[n + i]);
    } else {
      memcpy(buf + v->off[n + i], buf + v->off[i], v->len[i]);
    }
  }
  v->enc = rpc_shared_message_wrap(buf, total, free);
  if (!v->enc) {
    free(buf);
    free(mem);
    memset(v, 0, sizeof(*v));
    return -ENOMEM;
  }
  v->bytes = total;
  return 0;
}

void watch_batch_release(watch_batch *v) {
  rpc_shared_message_free(v->enc);
  free(v->off);
  memset(v, 0, sizeof(*v));
}

watch_batch *watch_batch_new(const store_event_batch *b) {
  watch_batch *v = malloc(sizeof(*v));
  if (!v) return NULL;
  if (watch_batch_encode(v, b) < 0) {
    free(v);
    return NULL;
  }
  v->refs = 1;
  return v;
}

void watch_batch_hold(watch_batch *v) { v->refs++; }

void watch_batch_drop(watch_batch *v) {
  if (--v->refs > 0) return;
  watch_batch_release(v);
  free(v);
}
