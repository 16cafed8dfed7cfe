/* services/store/watch/watch_batch.c — see watch_batch.h. */
#include "services/store/watch/watch_batch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool watch_event_has_predecessor(const store_event *e) { return e->is_delete || e->version > 1; }

size_t watch_field_size(size_t size) {
  size_t n = 1; /* tag of fields 1..15 */
  uint64_t v = size;
  do {
    n++;
    v >>= 7;
  } while (v);
  return n + size;
}

static void fill(watch_batch *v, size_t i) {
  const store_event *e = &v->events[i];
  Mvccpb__KeyValue *kv = &v->kv[i];
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
  Mvccpb__Event *plain = &v->plain[i];
  mvccpb__event__init(plain);
  plain->type = e->is_delete ? MVCCPB__EVENT__EVENT_TYPE__DELETE : MVCCPB__EVENT__EVENT_TYPE__PUT;
  plain->kv = kv;
  v->plain_size[i] = mvccpb__event__get_packed_size(plain);

  Mvccpb__Event *wp = &v->with_prev[i];
  *wp = *plain;
  v->with_prev_size[i] = v->plain_size[i];
  if (e->has_prev) {
    Mvccpb__KeyValue *p = &v->prev[i];
    mvccpb__key_value__init(p);
    p->key.data = e->key;
    p->key.len = e->keylen;
    p->value.data = e->prev_value;
    p->value.len = e->prev_valuelen;
    p->create_revision = e->prev_create_revision;
    p->mod_revision = e->prev_mod_revision;
    p->version = e->prev_version;
    p->lease = e->prev_lease;
    wp->prev_kv = p;
    v->with_prev_size[i] = mvccpb__event__get_packed_size(wp);
  }
}

int watch_batch_init(watch_batch *v, const store_event_batch *b) {
  memset(v, 0, sizeof(*v));
  v->revision = b->revision;
  v->n = b->n;
  v->events = b->events;
  size_t n = b->n ? b->n : 1;
  v->kv = malloc(n * sizeof(*v->kv));
  v->prev = malloc(n * sizeof(*v->prev));
  v->plain = malloc(n * sizeof(*v->plain));
  v->with_prev = malloc(n * sizeof(*v->with_prev));
  v->plain_size = malloc(n * sizeof(*v->plain_size));
  v->with_prev_size = malloc(n * sizeof(*v->with_prev_size));
  if (!v->kv || !v->prev || !v->plain || !v->with_prev || !v->plain_size || !v->with_prev_size) {
    watch_batch_release(v);
    return -ENOMEM;
  }
  for (size_t i = 0; i < b->n; i++) fill(v, i);
  return 0;
}

int watch_batch_init_copy(watch_batch *v, const store_event_batch *b) {
  store_event_batch *c = store_event_batch_copy(b);
  if (!c) {
    memset(v, 0, sizeof(*v));
    return -ENOMEM;
  }
  int rc = watch_batch_init(v, c);
  if (rc < 0) {
    store_event_batch_free(c);
    return rc;
  }
  v->owned = c;
  return 0;
}

void watch_batch_release(watch_batch *v) {
  free(v->kv);
  free(v->prev);
  free(v->plain);
  free(v->with_prev);
  free(v->plain_size);
  free(v->with_prev_size);
  store_event_batch_free(v->owned);
  memset(v, 0, sizeof(*v));
}
