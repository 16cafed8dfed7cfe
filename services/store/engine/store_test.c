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
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
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
  char last_key[32];
  snprintf(last_key, sizeof(last_key), "last/w%d", a->id);
  for (int i = 0; i < a->n; i++) {
    /* Every other put rewrites this writer's "last" key: submission order
     * must be apply order, so its final value is the last one submitted. */
    if (i % 2 == 1) {
      char value[32];
      snprintf(value, sizeof(value), "%d", i);
      Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
      req.key = (ProtobufCBinaryData){strlen(last_key), (uint8_t *)last_key};
      req.value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
      while (store_submit_put(a->s, &req, on_done, a->w) == -EAGAIN) usleep(100);
      continue;
    }
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

static void check_last_values(store *s, int threads, int per) {
  for (int i = 0; i < threads; i++) {
    char key[32], want[32];
    snprintf(key, sizeof(key), "last/w%d", i);
    snprintf(want, sizeof(want), "%d", per - 1);
    Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
    kv_error err;
    assert_int_equal(store_range(s, &req, resp, &err), 0);
    assert_int_equal(resp->n_kvs, 1);
    assert_int_equal(resp->kvs[0]->value.len, strlen(want));
    assert_memory_equal(resp->kvs[0]->value.data, want, strlen(want));
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
}

/* 8 threads submitting 250 writes each (half of them new keys, half rewriting
 * one key per thread). wal_queue_records 0 is the default; 2 keeps the WAL's
 * queue full, so appliers running on the submitting threads keep handing
 * applying over to the apply thread: nothing may be lost or reordered. */
static void concurrent_writers(size_t wal_queue_records) {
  char *dir = temp_dir();
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t", .wal_queue_records = wal_queue_records};
  store *s = store_open(&opts, &err);
  if (!s) fail_msg("open: %s", err.message);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  enum { THREADS = 8, PER = 250, KEYS = THREADS * PER / 2 };
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
  assert_int_equal(count_prefix(s, "w", "x", &rev), KEYS);
  assert_int_equal(rev, 1 + THREADS * PER);
  check_last_values(s, THREADS, PER);
  store_status st;
  store_get_status(s, &st);
  assert_int_equal(st.raft_index, THREADS * PER);
  assert_true(st.wal_fsyncs < (uint64_t)(THREADS * PER)); /* writers shared fsyncs */
  if (wal_queue_records) assert_true(st.apply_handoffs > 0);
  store_close(s);

  s = store_open(&opts, &err);
  if (!s) fail_msg("reopen: %s", err.message);
  assert_int_equal(count_prefix(s, "w", "x", &rev), KEYS);
  assert_int_equal(rev, 1 + THREADS * PER);
  check_last_values(s, THREADS, PER);
  store_close(s);
  free(dir);
}

static void test_concurrent_writers_group_commit_and_recovery(void **state) {
  (void)state;
  concurrent_writers(0);
}

static void test_full_wal_queue_hands_applying_to_the_apply_thread(void **state) {
  (void)state;
  concurrent_writers(2);
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

/* Snapshots run on their own thread: wait for the running one to end. */
static void wait_snapshot_idle(store *s) {
  store_status st;
  for (;;) {
    store_get_status(s, &st);
    if (!st.snapshot_running) return;
    usleep(1000);
  }
}

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
    if (i % 100 == 99) {
      /* Each round makes the next snapshot due while none runs. */
      wait_for(&w, n);
      wait_snapshot_idle(s);
    }
  }
  wait_for(&w, n);
  wait_snapshot_idle(s);
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

/* ---- snapshots off the write path */

/* Waits up to secs for n completions: a bound on progress, not a timing claim
 * (a pipeline that stopped never gets there). */
static bool wait_for_bounded(waiter *w, int n, int secs) {
  struct timespec dl;
  clock_gettime(CLOCK_REALTIME, &dl);
  dl.tv_sec += secs;
  pthread_mutex_lock(&w->mu);
  int rc = 0;
  while (w->done < n && rc == 0) rc = pthread_cond_timedwait(&w->cond, &w->mu, &dl);
  bool ok = w->done >= n;
  pthread_mutex_unlock(&w->mu);
  return ok;
}

/* A snapshot hook that holds the first snapshot at or past `from_index` at its
 * first chunk until the test releases it. */
typedef struct snap_gate {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  uint64_t from_index;
  bool held, release;
  uint64_t index;
  int phases[8];
} snap_gate;

static void gate_hook(void *arg, int phase, uint64_t index, uint64_t records) {
  (void)records;
  snap_gate *g = arg;
  pthread_mutex_lock(&g->mu);
  if (phase >= 0 && phase < 8) g->phases[phase]++;
  if (phase == STORE_SNAPSHOT_CHUNK && index >= g->from_index && !g->release) {
    g->held = true;
    g->index = index;
    pthread_cond_broadcast(&g->cond);
    while (!g->release) pthread_cond_wait(&g->cond, &g->mu);
  }
  pthread_mutex_unlock(&g->mu);
}

static void put_kv(store *s, const char *key, size_t vlen, char fill, waiter *w) {
  static char value[4096];
  memset(value, fill, vlen);
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  req.value = (ProtobufCBinaryData){vlen, (uint8_t *)value};
  while (store_submit_put(s, &req, on_done, w) == -EAGAIN) usleep(100);
}

/* A snapshot held open at its first chunk (the hook blocks on the snapshot
 * thread): puts submitted meanwhile are applied, made durable and acknowledged;
 * a compaction submitted meanwhile waits for the snapshot (it would free what
 * the snapshot reads) and then applies; everything recovers. With snapshots on
 * the apply thread (before), the puts never complete while it is held. */
static void test_writes_continue_during_snapshot(void **state) {
  (void)state;
  char *dir = temp_dir();
  keel_error err = {0};
  snap_gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .from_index = 1000};
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = 1000,
                        .snapshot_hook = gate_hook, .snapshot_hook_arg = &g};
  store *s = store_open(&opts, &err);
  assert_non_null(s);
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  char key[64];
  for (int i = 0; i < 1000; i++) { /* revisions 2..1001, WAL indexes 1..1000 */
    snprintf(key, sizeof(key), "big/%04d", i);
    put_kv(s, key, 1024, 'a' + i % 26, &w);
  }
  if (!wait_for_bounded(&w, 1000, 120)) fail_msg("the first 1000 puts did not complete");
  assert_int_equal(w.ok, 1000);
  /* The 1000th record made a snapshot due: wait until the hook holds it. */
  pthread_mutex_lock(&g.mu);
  while (!g.held) pthread_cond_wait(&g.cond, &g.mu);
  pthread_mutex_unlock(&g.mu);
  assert_int_equal(g.index, 1000);
  store_status st;
  store_get_status(s, &st);
  assert_true(st.snapshot_running);
  assert_int_equal(st.snapshots, 0);

  /* While it is held: a compaction, then 200 puts. */
  waiter wc = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = 500;
  assert_int_equal(store_submit_compact(s, &c, on_done, &wc), 0);
  waiter w2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  for (int i = 0; i < 200; i++) {
    snprintf(key, sizeof(key), "during/%03d", i);
    put_kv(s, key, 100, 'x', &w2);
  }
  if (!wait_for_bounded(&w2, 200, 120))
    fail_msg("writes stopped while a snapshot was being written (%d of 200 acknowledged)", w2.done);
  assert_int_equal(w2.ok, 200);
  assert_int_equal(w2.max_rev, 1201); /* after the snapshot's revision 1001 */
  store_get_status(s, &st);
  assert_true(st.snapshot_running); /* still held: the puts completed in the middle of it */
  assert_int_equal(st.snapshots, 0);
  assert_int_equal(st.compactions_held, 1);
  assert_int_equal(st.compact_revision, 0);
  pthread_mutex_lock(&wc.mu);
  assert_int_equal(wc.done, 0); /* the compaction waits for the snapshot */
  pthread_mutex_unlock(&wc.mu);
  /* History the held compaction will free is still readable meanwhile. */
  Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rr.key = (ProtobufCBinaryData){8, (uint8_t *)"big/0000"};
  rr.revision = 400;
  Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
  kv_error kerr;
  assert_int_equal(store_range(s, &rr, resp, &kerr), 0);
  assert_int_equal(resp->n_kvs, 1);
  protobuf_c_message_free_unpacked(&resp->base, NULL);

  pthread_mutex_lock(&g.mu);
  g.release = true;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.mu);
  if (!wait_for_bounded(&wc, 1, 120)) fail_msg("the held compaction never ran");
  assert_int_equal(wc.ok, 1);
  wait_snapshot_idle(s);
  store_get_status(s, &st);
  assert_int_equal(st.snapshots, 1);
  assert_int_equal(st.snapshot_index, 1000);
  assert_int_equal(st.compact_revision, 500);
  assert_int_equal(st.compactions_held, 0);
  pthread_mutex_lock(&g.mu);
  assert_int_equal(g.phases[STORE_SNAPSHOT_STARTED], 1);
  assert_int_equal(g.phases[STORE_SNAPSHOT_WRITTEN], 1);
  assert_int_equal(g.phases[STORE_SNAPSHOT_ABANDONED], 0);
  pthread_mutex_unlock(&g.mu);
  store_close(s);

  /* Recovery: the snapshot (as of revision 1001) plus the log after it (the
   * 200 puts, then the compaction). */
  opts.snapshot_hook = NULL;
  s = store_open(&opts, &err);
  if (!s) fail_msg("reopen: %s", err.message);
  store_get_status(s, &st);
  assert_int_equal(st.snapshot_index, 1000);
  assert_int_equal(st.revision, 1201);
  assert_int_equal(st.compact_revision, 500);
  assert_int_equal(count_prefix(s, "big/", "big0", NULL), 1000);
  assert_int_equal(count_prefix(s, "during/", "during0", NULL), 200);
  store_close(s);
  free(dir);
}

/* ---- kill -9 while a snapshot is written (child process) */

typedef struct kill_msg {
  int32_t kind; /* 0: put acknowledged, 1: the snapshot is held */
  int32_t key;
  int64_t rev;
} kill_msg;

typedef struct kill_child {
  int fd;
  int phase;          /* the hook phase to stop in */
  uint64_t from_index;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int inflight;
} kill_child;

static kill_child child_state;

static void child_hook(void *arg, int phase, uint64_t index, uint64_t records) {
  kill_child *k = arg;
  if (index < k->from_index || phase != k->phase) return;
  if (phase == STORE_SNAPSHOT_CHUNK && records < 1200) return; /* part of the file is written */
  kill_msg m = {1, phase, (int64_t)index};
  if (write(k->fd, &m, sizeof(m)) != sizeof(m)) _exit(3);
  for (;;) pause(); /* held until the kill; writes go on */
}

typedef struct child_put {
  int key;
} child_put;

static void child_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  child_put *p = arg;
  if (!err) {
    kill_msg m = {0, p->key, ((Etcdserverpb__PutResponse *)resp)->header->revision};
    if (write(child_state.fd, &m, sizeof(m)) != sizeof(m)) _exit(3);
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  free(p);
  pthread_mutex_lock(&child_state.mu);
  child_state.inflight--;
  pthread_cond_broadcast(&child_state.cond);
  pthread_mutex_unlock(&child_state.mu);
}

static void child_main(const char *dir) {
  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = 1000,
                        .wal_segment_bytes = 256 << 10,
                        .snapshot_hook = child_hook, .snapshot_hook_arg = &child_state};
  store *s = store_open(&opts, &err);
  if (!s) _exit(2);
  static char value[1024];
  for (int i = 0; i < 200000; i++) {
    pthread_mutex_lock(&child_state.mu);
    while (child_state.inflight >= 32) pthread_cond_wait(&child_state.cond, &child_state.mu);
    child_state.inflight++;
    pthread_mutex_unlock(&child_state.mu);
    char key[32];
    snprintf(key, sizeof(key), "k/%06d", i);
    memset(value, 'a' + i % 26, sizeof(value));
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    req.value = (ProtobufCBinaryData){sizeof(value), (uint8_t *)value};
    child_put *p = malloc(sizeof(*p));
    p->key = i;
    while (store_submit_put(s, &req, child_done, p) == -EAGAIN) usleep(100);
  }
  for (;;) pause();
}

/* Kills the child once the snapshot is held in `phase` and at least 300 more
 * puts were acknowledged after that, then recovers: every acknowledged put is
 * at its revision. */
static void kill_during_snapshot(int phase) {
  char *dir = temp_dir();
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  enum { MAX_KEYS = 200000 };
  int64_t *acked = calloc(MAX_KEYS, sizeof(*acked));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    child_state = (kill_child){.fd = fds[1], .phase = phase, .from_index = 2000,
                               .mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
    child_main(dir);
    _exit(0);
  }
  close(fds[1]);
  bool held = false, killed = false;
  int after = 0, nacked = 0;
  int64_t max_rev = 0;
  uint64_t held_index = 0;
  for (;;) {
    struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
    int pr = poll(&pfd, 1, killed ? 10000 : 120000);
    if (pr <= 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      fail_msg("child: no progress (held=%d, acknowledged after the hold: %d)", held, after);
    }
    kill_msg m;
    ssize_t n = read(fds[0], &m, sizeof(m));
    if (n == 0) break; /* EOF: the child is gone and the pipe drained */
    assert_int_equal(n, sizeof(m));
    if (m.kind == 1) {
      held = true;
      held_index = (uint64_t)m.rev;
      continue;
    }
    assert_true(m.key >= 0 && m.key < MAX_KEYS);
    acked[m.key] = m.rev;
    nacked++;
    if (m.rev > max_rev) max_rev = m.rev;
    if (held && !killed && ++after >= 300) {
      kill(pid, SIGKILL); /* acks already in the pipe are still read */
      killed = true;
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  assert_true(killed);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  keel_error err = {0};
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = 1000,
                        .wal_segment_bytes = 256 << 10};
  store *s = store_open(&opts, &err);
  if (!s) fail_msg("recovery after kill -9 during a snapshot: %s", err.message);
  store_status st;
  store_get_status(s, &st);
  /* Held mid-file: the previous snapshot; held once durable: that one. */
  assert_int_equal(st.snapshot_index, phase == STORE_SNAPSHOT_WRITTEN ? held_index : 1000);
  assert_true(st.revision >= max_rev);
  int lost = 0;
  for (int i = 0; i < MAX_KEYS; i++) {
    if (!acked[i]) continue;
    char key[32];
    snprintf(key, sizeof(key), "k/%06d", i);
    Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
    rr.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
    kv_error kerr;
    assert_int_equal(store_range(s, &rr, resp, &kerr), 0);
    if (resp->n_kvs != 1 || resp->kvs[0]->mod_revision != acked[i] || resp->kvs[0]->value.len != 1024 ||
        resp->kvs[0]->value.data[0] != 'a' + i % 26) {
      if (lost++ < 5) print_error("acknowledged put %s at revision %lld not recovered\n", key, (long long)acked[i]);
    }
    protobuf_c_message_free_unpacked(&resp->base, NULL);
  }
  print_message("kill -9 in phase %d (snapshot index %llu): %d puts acknowledged (%d after the hold), "
                "recovered at revision %lld\n", phase, (unsigned long long)held_index, nacked, after,
                (long long)st.revision);
  assert_int_equal(lost, 0);
  /* And it goes on: the next write takes the next revision. */
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  put_kv(s, "after", 10, 'z', &w);
  wait_for(&w, 1);
  assert_int_equal(w.max_rev, st.revision + 1);
  store_close(s);
  free(acked);
  free(dir);
}

static void test_kill_during_snapshot_mid_file(void **state) {
  (void)state;
  kill_during_snapshot(STORE_SNAPSHOT_CHUNK);
}

static void test_kill_after_snapshot_before_wal_truncation(void **state) {
  (void)state;
  kill_during_snapshot(STORE_SNAPSHOT_WRITTEN);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_concurrent_writers_group_commit_and_recovery),
      cmocka_unit_test(test_full_wal_queue_hands_applying_to_the_apply_thread),
      cmocka_unit_test(test_errors_and_compaction_survive_restart),
      cmocka_unit_test(test_events_after_durability_and_history),
      cmocka_unit_test(test_lease_expiry_deletes_keys_and_survives_restart),
      cmocka_unit_test(test_snapshot_and_wal_tail_recover_everything),
      cmocka_unit_test(test_auto_compaction_revision_and_periodic),
      cmocka_unit_test(test_writes_continue_during_snapshot),
      cmocka_unit_test(test_kill_during_snapshot_mid_file),
      cmocka_unit_test(test_kill_after_snapshot_before_wal_truncation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
