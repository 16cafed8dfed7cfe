/* Tests of the split WatchResponse encoding: a per-watcher prefix
 * (watch_wire_prefix) followed by events encoded once per revision
 * (watch_batch_encode) must be byte for byte what protobuf-c packs for the
 * same WatchResponse, for every header value, watch id (negative ones are ten
 * bytes), fragment flag, event shape (put, delete, prev_kv or not, empty and
 * long values) and every subset of a revision's events a watcher may get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/watch/watch_batch.h"
#include "services/store/watch/watch_wire.h"

/* The message protobuf-c would send, with events copied from the batch's
 * store events the way the old per-watcher path built them. */
static void build_kv(const store_event *e, Mvccpb__KeyValue *kv) {
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
}

static void build_prev(const store_event *e, Mvccpb__KeyValue *p) {
  mvccpb__key_value__init(p);
  p->key.data = e->key;
  p->key.len = e->keylen;
  p->value.data = e->prev_value;
  p->value.len = e->prev_valuelen;
  p->create_revision = e->prev_create_revision;
  p->mod_revision = e->prev_mod_revision;
  p->version = e->prev_version;
  p->lease = e->prev_lease;
}

/* prefix + the ranges of evs, concatenated. */
static uint8_t *assemble(const uint8_t *prefix, size_t plen, const watch_ev *evs, size_t n,
                         size_t *len) {
  size_t total = plen;
  for (size_t i = 0; i < n; i++) total += evs[i].len;
  uint8_t *out = malloc(total ? total : 1);
  memcpy(out, prefix, plen);
  size_t at = plen;
  for (size_t i = 0; i < n; i++) {
    size_t mlen;
    const unsigned char *data = rpc_shared_message_data(evs[i].enc, &mlen);
    assert_true(evs[i].off + evs[i].len <= mlen);
    memcpy(out + at, data + evs[i].off, evs[i].len);
    at += evs[i].len;
  }
  *len = total;
  return out;
}

/* Checks one response: the split encoding against protobuf-c's. */
static void check_response(const Etcdserverpb__ResponseHeader *base, int64_t rev, int64_t id,
                           bool fragment, const store_event_batch *b, const watch_batch *v,
                           const size_t *pick, size_t npick, bool with_prev) {
  Etcdserverpb__ResponseHeader hdr = *base;
  hdr.revision = rev;
  Etcdserverpb__WatchResponse r = ETCDSERVERPB__WATCH_RESPONSE__INIT;
  r.header = &hdr;
  r.watch_id = id;
  r.fragment = fragment;
  Mvccpb__Event evs[8], *pevs[8];
  Mvccpb__KeyValue kvs[8], prevs[8];
  watch_ev wevs[8];
  for (size_t i = 0; i < npick; i++) {
    const store_event *e = &b->events[pick[i]];
    mvccpb__event__init(&evs[i]);
    evs[i].type = e->is_delete ? MVCCPB__EVENT__EVENT_TYPE__DELETE : MVCCPB__EVENT__EVENT_TYPE__PUT;
    build_kv(e, &kvs[i]);
    evs[i].kv = &kvs[i];
    if (with_prev && e->has_prev) {
      build_prev(e, &prevs[i]);
      evs[i].prev_kv = &prevs[i];
    }
    pevs[i] = &evs[i];
    wevs[i] = watch_batch_event(v, pick[i], with_prev);
    assert_int_equal(wevs[i].rev, b->revision);
  }
  r.n_events = npick;
  r.events = pevs;
  size_t want_len = etcdserverpb__watch_response__get_packed_size(&r);
  uint8_t *want = malloc(want_len ? want_len : 1);
  etcdserverpb__watch_response__pack(&r, want);

  uint8_t prefix[WATCH_PREFIX_MAX];
  size_t plen = watch_wire_prefix(prefix, base, rev, id, fragment);
  assert_true(plen <= WATCH_PREFIX_MAX);
  size_t got_len;
  uint8_t *got = assemble(prefix, plen, wevs, npick, &got_len);
  assert_int_equal(got_len, want_len);
  assert_memory_equal(got, want, want_len);
  /* And it decodes back to the same fields. */
  Etcdserverpb__WatchResponse *d = etcdserverpb__watch_response__unpack(NULL, got_len, got);
  assert_non_null(d);
  assert_int_equal(d->watch_id, id);
  assert_int_equal(d->header->revision, rev);
  assert_int_equal(d->n_events, npick);
  etcdserverpb__watch_response__free_unpacked(d, NULL);
  free(got);
  free(want);
}

static void set_event(store_event *e, bool del, int64_t rev, int64_t sub, const char *key,
                      const char *value, int64_t version, bool prev, const char *prev_value) {
  memset(e, 0, sizeof(*e));
  e->is_delete = del;
  e->rev = (mvcc_revision){rev, sub};
  e->key = (uint8_t *)key;
  e->keylen = strlen(key);
  if (!del) {
    e->value = (uint8_t *)value;
    e->valuelen = strlen(value);
    e->create_revision = version == 1 ? rev : 3;
    e->version = version;
    e->lease = version % 2 ? 0 : 0x1234567890ll;
  }
  if (prev) {
    e->has_prev = true;
    e->prev_value = (uint8_t *)prev_value;
    e->prev_valuelen = strlen(prev_value);
    e->prev_create_revision = 3;
    e->prev_mod_revision = rev - 1;
    e->prev_version = 4;
    e->prev_lease = 7;
  }
}

static void test_prefix_matches_protobuf_c(void **state) {
  (void)state;
  uint64_t ids[] = {0, 1, 127, 128, 0x8e4a6f3c2b1d0e9full, UINT64_MAX};
  int64_t revs[] = {0, 1, 300, INT64_MAX};
  int64_t wids[] = {0, 1, -1, 1000, INT64_MIN, INT64_MAX};
  store_event_batch empty = {.revision = 5};
  watch_batch v;
  assert_int_equal(watch_batch_encode(&v, &empty), 0);
  for (size_t a = 0; a < 6; a++)
    for (size_t r = 0; r < 4; r++)
      for (size_t w = 0; w < 6; w++)
        for (int frag = 0; frag < 2; frag++) {
          Etcdserverpb__ResponseHeader base = ETCDSERVERPB__RESPONSE_HEADER__INIT;
          base.cluster_id = ids[a];
          base.member_id = ids[5 - a];
          base.raft_term = ids[(a + 2) % 6];
          check_response(&base, revs[r], wids[w], frag, &empty, &v, NULL, 0, false);
        }
  watch_batch_release(&v);
}

static void test_events_match_protobuf_c(void **state) {
  (void)state;
  char *big = malloc(70000);
  memset(big, 'v', 69999);
  big[69999] = 0;
  store_event ev[6];
  set_event(&ev[0], false, 40, 0, "a", "1", 1, false, NULL);            /* create */
  set_event(&ev[1], false, 40, 1, "b", "two", 5, true, "one");          /* update with prev */
  set_event(&ev[2], true, 40, 2, "c", NULL, 0, true, "gone");           /* delete with prev */
  set_event(&ev[3], false, 40, 3, "d", "", 2, false, NULL);             /* empty value, no prev */
  set_event(&ev[4], false, 40, 4, "e", big, 9, true, big);              /* long: 3-byte lengths */
  set_event(&ev[5], true, 40, 5, "f", NULL, 0, false, NULL);            /* delete, no prev */
  store_event_batch b = {.revision = 40, .n = 6, .events = ev};
  watch_batch v;
  assert_int_equal(watch_batch_encode(&v, &b), 0);
  assert_int_equal(v.n, 6);
  /* Each shape is contiguous in event order; events without a prev have the
   * same bytes in both. */
  size_t mlen;
  const unsigned char *data = rpc_shared_message_data(v.enc, &mlen);
  assert_int_equal(mlen, v.bytes);
  for (size_t i = 0; i + 1 < 6; i++) {
    assert_int_equal(v.off[i] + v.len[i], v.off[i + 1]);
    assert_int_equal(v.off[6 + i] + v.len[6 + i], v.off[6 + i + 1]);
  }
  for (size_t i = 0; i < 6; i++)
    if (!ev[i].has_prev) {
      assert_int_equal(v.len[i], v.len[6 + i]);
      assert_memory_equal(data + v.off[i], data + v.off[6 + i], v.len[i]);
    }
  Etcdserverpb__ResponseHeader base = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  base.cluster_id = 0xdeadbeefcafef00dull;
  base.member_id = 42;
  base.raft_term = 2;
  /* Every subset of the six events, in order, both shapes. */
  for (unsigned mask = 0; mask < 64; mask++) {
    size_t pick[6], n = 0;
    for (size_t i = 0; i < 6; i++)
      if (mask & (1u << i)) pick[n++] = i;
    check_response(&base, 40, (int64_t)mask - 3, mask % 3 == 0, &b, &v, pick, n, false);
    check_response(&base, 41, (int64_t)mask, false, &b, &v, pick, n, true);
  }
  watch_batch_release(&v);

  /* A batch without any prev: one shape, shared. */
  store_event_batch b2 = {.revision = 40, .n = 1, .events = &ev[0]};
  assert_int_equal(watch_batch_encode(&v, &b2), 0);
  assert_int_equal(v.off[0], v.off[1]);
  size_t one = 0;
  check_response(&base, 40, 7, false, &b2, &v, &one, 1, true);
  watch_batch_release(&v);
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_prefix_matches_protobuf_c),
      cmocka_unit_test(test_events_match_protobuf_c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
