/* Tests of the store pipeline: submit -> apply -> WAL group commit -> publish,
 * and recovery of everything acknowledged. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/store/engine/store.h"

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, ok;
  int64_t max_rev;
  grpc_status_code last_code;
} waiter;

static void on_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  w->done++;
  if (!err) {
    w->ok++;
    int64_t rev = ((Etcdserverpb__PutResponse *)resp)->header->revision;
    if (resp->descriptor == &etcdserverpb__put_response__descriptor && rev > w->max_rev) w->max_rev = rev;
    protobuf_c_message_free_unpacked(resp, NULL);
  } else {
    w->last_code = err->code;
  }
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static void wait_for(waiter *w, int n) {
  pthread_mutex_lock(&w->mu);
  while (w->done < n) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static char *temp_dir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char *d = malloc(4096);
  snprintf(d, 4096, "%s/storeXXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(d));
  return d;
}

typedef struct writer_arg {
  store *s;
  waiter *w;
  int id, n;
} writer_arg;

static void *writer(void *p) {
  writer_arg *a = p;
  for (int i = 0; i < a->n; i++) {
    char key[32], value[32];
    snprintf(key, sizeof(key), "w%d/k%04d", a->id, i);
    snprintf(value, sizeof(value), "v%d", i);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
    while (store_submit_put(a->s, &req, on_done, a->w) == -EAGAIN) usleep(100);
  }
  return NULL;
}

static int64_t count_prefix(store *s, const char *prefix, const char *end, int64_t *rev) {
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(prefix), (uint8_t *)prefix};
  req.range_end = (ProtobufCBinaryData){strlen(end), (uint8_t *)end};
  req.count_only = true;
  Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
  kv_error err;
  assert_int_equal(store_range(s, &req, resp, &err), 0);
  int64_t n = resp->count;
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(s, &h);
  if (rev) *rev = h.revision;
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return n;
}

static void test_concurrent_writers_group_commit_and_recovery(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t"};
  store *s = store_open(&opts, &err);
  if (!s) fail_msg("open: %s", err.message);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  enum { THREADS = 8, PER = 250 };
  pthread_t t[THREADS];
  writer_arg args[THREADS];
  for (int i = 0; i < THREADS; i++) {
    args[i] = (writer_arg){s, &w, i, PER};
    pthread_create(&t[i], NULL, writer, &args[i]);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
  wait_for(&w, THREADS * PER);
  assert_int_equal(w.ok, THREADS * PER);
  assert_int_equal(w.max_rev, 1 + THREADS * PER); /* one revision per put, from 2 */
  int64_t rev;
  assert_int_equal(count_prefix(s, "w", "x", &rev), THREADS * PER);
  assert_int_equal(rev, 1 + THREADS * PER);
  store_status st;
  store_get_status(s, &st);
  assert_int_equal(st.raft_index, THREADS * PER);
  assert_true(st.wal_fsyncs < (uint64_t)(THREADS * PER)); /* writers shared fsyncs */
  store_close(s);

  s = store_open(&opts, &err);
  if (!s) fail_msg("reopen: %s", err.message);
  assert_int_equal(count_prefix(s, "w", "x", &rev), THREADS * PER);
  assert_int_equal(rev, 1 + THREADS * PER);
  store_close(s);
  free(dir);
}

static void test_errors_and_compaction_survive_restart(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t"};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  Etcdserverpb__PutRequest bad = ETCDSERVERPB__PUT_REQUEST__INIT; /* empty key */
  assert_int_equal(store_submit_put(s, &bad, on_done, &w), 0);
  wait_for(&w, 1);
  assert_int_equal(w.ok, 0);
  assert_int_equal(w.last_code, GRPC_STATUS_INVALID_ARGUMENT);
  for (int i = 0; i < 5; i++) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){1, (uint8_t *)"k"};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"v"};
    store_submit_put(s, &req, on_done, &w);
  }
  wait_for(&w, 6);
  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = 4;
  store_submit_compact(s, &c, on_done, &w);
  wait_for(&w, 7);
  assert_int_equal(w.ok, 6);
  store_close(s);
  s = store_open(&opts, &err);
  assert_non_null(s);
  store_status st;
  store_get_status(s, &st);
  assert_int_equal(st.compact_revision, 4);
  assert_int_equal(st.revision, 6);
  store_close(s);
  free(dir);
}

typedef struct seen {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int64_t revs[64];
  int n;
  bool prev_ok;
} seen;

static void on_events(void *arg, const store_event_batch *b) {
  seen *s = arg;
  pthread_mutex_lock(&s->mu);
  if (s->n < 64) s->revs[s->n++] = b->revision;
  for (size_t i = 0; i < b->n; i++)
    if (b->events[i].rev.main == 3 && b->events[i].has_prev && b->events[i].prev_mod_revision == 2)
      s->prev_ok = true;
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
}

/* The sink takes each batch. */
static void on_sink(void *arg, store_event_batch *b) {
  on_events(arg, b);
  store_event_batch_free(b);
}

static void test_events_after_durability_and_history(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t"};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  seen sn = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  static _Atomic bool want_prev = true;
  store_set_event_sink(s, on_sink, &sn, &want_prev);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  const char *keys[] = {"a", "a", "b", "c"};
  for (int i = 0; i < 4; i++) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){1, (uint8_t *)keys[i]};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"v"};
    store_submit_put(s, &req, on_done, &w);
  }
  wait_for(&w, 4);
  /* Events reach the sink in revision order, each once, before the reply. */
  pthread_mutex_lock(&sn.mu);
  assert_int_equal(sn.n, 4);
  for (int i = 0; i < 4; i++) assert_int_equal(sn.revs[i], 2 + i);
  assert_true(sn.prev_ok); /* rev 3 overwrote "a" from rev 2 */
  sn.n = 0;
  pthread_mutex_unlock(&sn.mu);
  /* History of ["a", "c") from revision 3: a@3 and b@4. */
  kv_error kerr;
  assert_int_equal(store_history(s, (const uint8_t *)"a", 1, (const uint8_t *)"c", 1, 3, 0, false,
                                 on_events, &sn, &kerr), 0);
  assert_int_equal(sn.n, 2);
  assert_int_equal(sn.revs[0], 3);
  assert_int_equal(sn.revs[1], 4);
  /* Compacted history is refused with etcd's error. */
  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = 4;
  store_submit_compact(s, &c, on_done, &w);
  wait_for(&w, 5);
  assert_int_equal(store_history(s, (const uint8_t *)"a", 1, NULL, 0, 3, 0, false, on_events, &sn, &kerr), -1);
  assert_string_equal(kerr.message, KV_ERR_COMPACTED);
  store_close(s);
  free(dir);
}

static int64_t granted_id;
static void on_grant(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  if (!err) granted_id = ((Etcdserverpb__LeaseGrantResponse *)resp)->id;
  on_done(arg, err, resp ? resp : NULL);
}

static void test_lease_expiry_deletes_keys_and_survives_restart(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t", .lease_check_ms = 50};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  g.ttl = 1; /* raised to the 2 s minimum */
  store_submit_lease_grant(s, &g, on_grant, &w);
  wait_for(&w, 1);
  assert_true(granted_id != 0);
  int64_t short_lease = granted_id;
  g.id = 777;
  g.ttl = 3600;
  store_submit_lease_grant(s, &g, on_grant, &w);
  wait_for(&w, 2);
  store_submit_lease_grant(s, &g, on_grant, &w); /* again: exists */
  wait_for(&w, 3);
  assert_int_equal(w.last_code, GRPC_STATUS_FAILED_PRECONDITION);
  const char *keys[] = {"l/a", "l/b", "keep"};
  int64_t leases[] = {short_lease, short_lease, 777};
  for (int i = 0; i < 3; i++) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(keys[i]), (uint8_t *)keys[i]};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"v"};
    req.lease = leases[i];
    store_submit_put(s, &req, on_done, &w);
  }
  wait_for(&w, 6);
  assert_int_equal(w.ok, 5);
  int64_t ttl = 0;
  assert_int_equal(store_lease_keepalive(s, 777, &ttl), 0);
  assert_int_equal(ttl, 3600);
  assert_int_equal(store_lease_keepalive(s, 12345, &ttl), -ENOENT);
  Etcdserverpb__LeaseTimeToLiveRequest tr = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
  tr.id = short_lease;
  tr.keys = true;
  Etcdserverpb__LeaseTimeToLiveResponse *tresp = malloc(sizeof(*tresp));
  assert_int_equal(store_lease_time_to_live(s, &tr, tresp), 0);
  assert_int_equal(tresp->grantedttl, 2);
  assert_int_equal(tresp->n_keys, 2);
  protobuf_c_message_free_unpacked(&tresp->base, NULL);
  /* The 2 s lease expires: both of its keys go in one revision (puts took 2..4;
   * grants take none), so the store moves to 5. */
  int64_t rev = 0;
  for (int i = 0; i < 100 && count_prefix(s, "l/", "l0", &rev) != 0; i++) usleep(50000);
  assert_int_equal(count_prefix(s, "l/", "l0", &rev), 0);
  assert_int_equal(rev, 5);
  assert_int_equal(count_prefix(s, "keep", "keeq", NULL), 1);
  store_close(s);
  /* After a restart the long lease is back and still holds its key. */
  s = store_open(&opts, &err);
  assert_non_null(s);
  assert_int_equal(store_lease_keepalive(s, 777, &ttl), 0);
  assert_int_equal(store_lease_keepalive(s, short_lease, &ttl), -ENOENT);
  Etcdserverpb__LeaseRevokeRequest rv = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  rv.id = 777;
  w.done = w.ok = 0;
  store_submit_lease_revoke(s, &rv, on_done, &w);
  wait_for(&w, 1);
  assert_int_equal(w.ok, 1);
  assert_int_equal(count_prefix(s, "keep", "keeq", NULL), 0);
  store_submit_lease_revoke(s, &rv, on_done, &w);
  wait_for(&w, 2);
  assert_int_equal(w.last_code, GRPC_STATUS_NOT_FOUND);
  store_close(s);
  free(dir);
}

static int wal_segments_seen;

static void test_snapshot_and_wal_tail_recover_everything(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = 100, .wal_segment_bytes = 4096};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  g.id = 99;
  g.ttl = 3600;
  store_submit_lease_grant(s, &g, on_done, &w);
  wait_for(&w, 1);
  int n = 1;
  for (int i = 0; i < 350; i++) {
    char key[32], value[32];
    snprintf(key, sizeof(key), "k%02d", i % 40); /* overwrites: history to compact */
    snprintf(value, sizeof(value), "v%d", i);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
    req.lease = i == 7 ? 99 : 0;
    store_submit_put(s, &req, on_done, &w);
    n++;
    if (i == 200) {
      Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
      c.revision = 150;
      store_submit_compact(s, &c, on_done, &w);
      n++;
    }
  }
  wait_for(&w, n);
  assert_int_equal(w.ok, n);
  store_status before;
  store_get_status(s, &before);
  assert_true(before.snapshots >= 3);
  /* Segments wholly older than the oldest kept snapshot are gone. */
  char cmd[4300];
  snprintf(cmd, sizeof(cmd), "ls %s/member/wal | grep -c '\\.wal$'", dir);
  FILE *p = popen(cmd, "r");
  int segments = 0;
  assert_int_equal(fscanf(p, "%d", &segments), 1);
  pclose(p);
  wal_segments_seen = segments;
  int64_t rev;
  assert_int_equal(count_prefix(s, "k", "l", &rev), 40);
  store_close(s);

  s = store_open(&opts, &err);
  if (!s) fail_msg("reopen: %s", err.message);
  store_status after;
  store_get_status(s, &after);
  assert_true(after.snapshot_index > 0); /* recovered from a snapshot plus the log's tail */
  assert_int_equal(after.revision, before.revision);
  assert_int_equal(after.compact_revision, 150);
  /* ~30 bytes a record in 4 KiB segments: without truncation there would be 3+. */
  assert_true(wal_segments_seen >= 1);
  assert_true(wal_segments_seen <= 3);
  assert_int_equal(count_prefix(s, "k", "l", &rev), 40);
  assert_int_equal(rev, before.revision);
  /* History above the compaction survived: a read at 151 still works. */
  Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rr.key = (ProtobufCBinaryData){3, (uint8_t *)"k10"};
  rr.revision = 151;
  Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
  kv_error kerr;
  assert_int_equal(store_range(s, &rr, resp, &kerr), 0);
  assert_int_equal(resp->n_kvs, 1);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  /* The lease came back with its key attached. */
  Etcdserverpb__LeaseTimeToLiveRequest tr = ETCDSERVERPB__LEASE_TIME_TO_LIVE_REQUEST__INIT;
  tr.id = 99;
  tr.keys = true;
  Etcdserverpb__LeaseTimeToLiveResponse *tresp = malloc(sizeof(*tresp));
  assert_int_equal(store_lease_time_to_live(s, &tr, tresp), 0);
  assert_int_equal(tresp->grantedttl, 3600);
  protobuf_c_message_free_unpacked(&tresp->base, NULL);
  store_close(s);
  free(dir);
}

static void put_n(store *s, waiter *w, int n, int *submitted) {
  for (int i = 0; i < n; i++) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){1, (uint8_t *)"a"};
    req.value = (ProtobufCBinaryData){1, (uint8_t *)"v"};
    store_submit_put(s, &req, on_done, w);
    (*submitted)++;
  }
  wait_for(w, *submitted);
}

static void test_auto_compaction_revision_and_periodic(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  /* Revision mode: keep the newest 10 revisions. */
  store_options opts = {.data_dir = dir, .name = "t", .lease_check_ms = 20,
                        .auto_compaction_retention_revs = 10, .auto_compaction_check_ms = 20};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  int n = 0;
  put_n(s, &w, 50, &n); /* revisions 2..51 */
  store_status st;
  for (int i = 0; i < 200; i++) {
    store_get_status(s, &st);
    if (st.compact_revision == 41) break;
    usleep(10000);
  }
  assert_int_equal(st.compact_revision, 41);
  store_close(s);
  free(dir);

  /* Periodic mode: history older than 200 ms goes. */
  dir = temp_dir();
  store_options popts = {.data_dir = dir, .name = "t", .lease_check_ms = 20,
                         .auto_compaction_retention_ms = 200, .auto_compaction_check_ms = 20};
  s = store_open(&popts, &err);
  assert_non_null(s);
  w.done = w.ok = 0;
  n = 0;
  put_n(s, &w, 20, &n); /* revisions 2..21 */
  usleep(500000);       /* samples now hold revision 21 from over 200 ms ago */
  put_n(s, &w, 5, &n);  /* 22..26 stay in the window */
  for (int i = 0; i < 200; i++) {
    store_get_status(s, &st);
    if (st.compact_revision >= 21) break;
    usleep(10000);
  }
  assert_true(st.compact_revision >= 21);
  assert_true(st.compact_revision < 26);
  assert_true(st.auto_compactions >= 1);
  store_close(s);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent_writers_group_commit_and_recovery),
      cmocka_unit_test(test_errors_and_compaction_survive_restart),
      cmocka_unit_test(test_events_after_durability_and_history),
      cmocka_unit_test(test_lease_expiry_deletes_keys_and_survives_restart),
      cmocka_unit_test(test_snapshot_and_wal_tail_recover_everything),
      cmocka_unit_test(test_auto_compaction_revision_and_periodic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
