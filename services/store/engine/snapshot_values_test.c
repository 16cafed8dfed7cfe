/* Values served from snapshot files: once a snapshot is durable its values are
 * read back with pread and freed from memory; after a restart they are never
 * loaded. Every way of reading a value must answer byte for byte as before
 * (ranges at every revision, sorting and filters, prev_kv, txn compares, watch
 * history with prevs), a snapshot file replaced or unlinked while records still
 * point into it stays readable, and a file that cannot be read fails the
 * request, not the store. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/store/engine/store.h"
#include "services/store/engine/value_file.h"

/* ------------------------------------------------------------------ helpers */

typedef struct call {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done;
  kv_error err;
  bool failed;
  ProtobufCMessage *resp;
} call;

static void on_call(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  call *c = arg;
  pthread_mutex_lock(&c->mu);
  c->done = true;
  c->failed = err != NULL;
  if (err) c->err = *err;
  c->resp = resp;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
}

static void call_wait(call *c) {
  pthread_mutex_lock(&c->mu);
  while (!c->done) pthread_cond_wait(&c->cond, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

#define CALL_INIT {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER}

static char *temp_dir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char *d = malloc(4096);
  snprintf(d, 4096, "%s/snapvalXXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(d));
  return d;
}

/* The value of key i at its version v: lengths vary (0 to ~2 KiB) and the
 * bytes depend on both, so a value read from the wrong place shows. */
static size_t make_value(int i, int v, uint8_t *buf) {
  size_t len = (size_t)((i * 37 + v * 11) % 2100);
  if (i % 17 == 3) len = 0;
  for (size_t k = 0; k < len; k++) buf[k] = (uint8_t)(i * 7 + v * 13 + k * 31);
  return len;
}

static void key_of(int i, char *key) { snprintf(key, 16, "k%03d", i); }

/* A synchronous put; returns the response (caller frees) or NULL (err). */
static Etcdserverpb__PutResponse *put(store *s, int i, int v, bool prev_kv, kv_error *err) {
  static uint8_t value[4096];
  char key[16];
  key_of(i, key);
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  req.value = (ProtobufCBinaryData){make_value(i, v, value), value};
  req.prev_kv = prev_kv;
  call c = CALL_INIT;
  while (store_submit_put(s, &req, on_call, &c) == -EAGAIN) usleep(100);
  call_wait(&c);
  if (c.failed) {
    if (err) *err = c.err;
    return NULL;
  }
  return (Etcdserverpb__PutResponse *)c.resp;
}

static void put_ok(store *s, int i, int v) {
  kv_error err;
  Etcdserverpb__PutResponse *r = put(s, i, v, false, &err);
  if (!r) fail_msg("put %d: %s", i, err.message);
  protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void delete_key(store *s, int i) {
  char key[16];
  key_of(i, key);
  Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  call c = CALL_INIT;
  assert_int_equal(store_submit_delete_range(s, &req, on_call, &c), 0);
  call_wait(&c);
  assert_false(c.failed);
  protobuf_c_message_free_unpacked(c.resp, NULL);
}

/* A growing byte string: the "golden" form of every answer. */
typedef struct bytes {
  uint8_t *p;
  size_t n, cap;
} bytes;

static void bytes_add(bytes *b, const void *p, size_t n) {
  if (b->n + n > b->cap) {
    b->cap = (b->n + n) * 2 + 64;
    b->p = realloc(b->p, b->cap);
    assert_non_null(b->p);
  }
  if (n) memcpy(b->p + b->n, p, n);
  b->n += n;
}

static void bytes_msg(bytes *b, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *tmp = malloc(n ? n : 1);
  protobuf_c_message_pack(m, tmp);
  bytes_add(b, &n, sizeof(n));
  bytes_add(b, tmp, n);
  free(tmp);
}

/* Range [start, end) with the given options; packs the answer (or the error
 * code) into b. Returns the rc of store_range. */
static int range_into(store *s, bytes *b, const char *start, const char *end, int64_t rev, int sort_target,
                      int sort_order, bool keys_only, bool count_only, int64_t min_mod, kv_error *err) {
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(start), (uint8_t *)start};
  req.range_end = (ProtobufCBinaryData){strlen(end), (uint8_t *)end};
  req.revision = rev;
  req.sort_target = sort_target;
  req.sort_order = sort_order;
  req.keys_only = keys_only;
  req.count_only = count_only;
  req.min_mod_revision = min_mod;
  Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
  kv_error e = {0};
  int rc = store_range(s, &req, resp, &e);
  if (rc == 0) {
    resp->header->revision = 0; /* the published revision, not what was read */
    bytes_msg(b, &resp->base);
  } else {
    bytes_add(b, &e.code, sizeof(e.code));
    if (err) *err = e;
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

typedef struct history_out {
  bytes *b;
} history_out;

static void on_history(void *arg, const store_event_batch *batch) {
  bytes *b = arg;
  bytes_add(b, &batch->revision, sizeof(batch->revision));
  for (size_t i = 0; i < batch->n; i++) {
    const store_event *e = &batch->events[i];
    bytes_add(b, &e->is_delete, sizeof(e->is_delete));
    bytes_add(b, &e->rev, sizeof(e->rev));
    bytes_add(b, &e->keylen, sizeof(e->keylen));
    bytes_add(b, e->key, e->keylen);
    bytes_add(b, &e->valuelen, sizeof(e->valuelen));
    if (e->value) bytes_add(b, e->value, e->valuelen);
    bytes_add(b, &e->create_revision, sizeof(e->create_revision));
    bytes_add(b, &e->version, sizeof(e->version));
    bytes_add(b, &e->has_prev, sizeof(e->has_prev));
    if (e->has_prev) {
      bytes_add(b, &e->prev_valuelen, sizeof(e->prev_valuelen));
      bytes_add(b, e->prev_value, e->prev_valuelen);
      bytes_add(b, &e->prev_mod_revision, sizeof(e->prev_mod_revision));
      bytes_add(b, &e->prev_version, sizeof(e->prev_version));
    }
  }
}

/* Everything a client can read as of revision `at`, packed: ranges at it and
 * at older revisions (with sorts, filters, keys_only, count_only) and the
 * whole history up to it with prevs. */
static void read_everything(store *s, bytes *b, int64_t at, int64_t old_rev) {
  kv_error err;
  int64_t revs[] = {at, old_rev, old_rev + 7, 2};
  for (size_t r = 0; r < sizeof(revs) / sizeof(revs[0]); r++) {
    assert_int_equal(range_into(s, b, "k", "l", revs[r], 0, 0, false, false, 0, &err), 0);
    assert_int_equal(range_into(s, b, "k", "l", revs[r], ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE,
                                ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND, false, false, 0, &err), 0);
    assert_int_equal(range_into(s, b, "k", "l", revs[r], ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE,
                                ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND, false, false, 0, &err), 0);
    assert_int_equal(range_into(s, b, "k", "l", revs[r], ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD,
                                ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND, false, false, 50, &err), 0);
    assert_int_equal(range_into(s, b, "k", "l", revs[r], 0, 0, true, false, 0, &err), 0);
    assert_int_equal(range_into(s, b, "k", "l", revs[r], 0, 0, false, true, 0, &err), 0);
    assert_int_equal(range_into(s, b, "k005", "", revs[r], 0, 0, false, false, 0, &err), 0);
  }
  assert_int_equal(store_history(s, (const uint8_t *)"k", 1, (const uint8_t *)"l", 1, 2, at, true,
                                 on_history, b, &err), 0);
}

static store_status status(store *s) {
  store_status st;
  store_get_status(s, &st);
  return st;
}

static void wait_snapshot(store *s, uint64_t index) {
  for (int i = 0; i < 30000; i++) {
    store_status st = status(s);
    if (st.snapshot_index >= index && !st.snapshot_running) return;
    usleep(1000);
  }
  fail_msg("no snapshot at index %llu", (unsigned long long)index);
}

enum { KEYS = 120, SNAP = 400 };

/* Writes exactly `records` WAL records: every key, then overwrites and deletes
 * (history, tombstones, versions), so a snapshot at SNAP takes all of it. */
static void fill(store *s, int records, int *version) {
  int n = 0;
  for (int i = 0; n < records; i++, n++) {
    int k = i % KEYS;
    if (i >= KEYS && k % 29 == 5 && version[k] > 0) {
      delete_key(s, k);
      version[k] = 0;
      continue;
    }
    put_ok(s, k, ++version[k]);
  }
}

/* ------------------------------------------------------------------ tests */

/* The same answers before the snapshot (values in memory), after it (values
 * from the file, memory freed), and after a restart (never loaded). */
static store *open_store(const store_options *opts) {
  keel_error err = {0};
  store *s = store_open(opts, &err);
  if (!s) fail_msg("open %s: %s", opts->data_dir, err.message);
  return s;
}

static void assert_same(const bytes *a, const bytes *b) {
  assert_int_equal(a->n, b->n);
  assert_memory_equal(a->p, b->p, a->n);
}

static void test_values_from_snapshot_byte_exact(void **state) {
  (void)state;
  char *dir = temp_dir();
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = SNAP};
  store *s = open_store(&opts);
  int version[KEYS] = {0};
  fill(s, SNAP, version); /* record SNAP: the snapshot starts after it */
  int64_t at = status(s).revision, old_rev = 40;
  /* Read while the snapshot may still run (values in memory or not: same). */
  bytes before = {0};
  read_everything(s, &before, at, old_rev);
  wait_snapshot(s, SNAP);
  store_status st = status(s);
  assert_int_equal(st.value_bytes_resident, 0); /* every value is in the file now */
  assert_true(st.value_bytes_on_disk > 100000);
  assert_int_equal(st.value_files_open, 1);
  bytes after = {0};
  read_everything(s, &after, at, old_rev);
  assert_same(&before, &after);

  /* Writes after the snapshot keep their values in memory. */
  put_ok(s, 1, ++version[1]);
  assert_true(status(s).value_bytes_resident > 0);

  /* prev_kv of a put reads the old value from the file. */
  uint8_t want[4096];
  Etcdserverpb__PutResponse *pr = put(s, 2, version[2] + 1, true, NULL);
  assert_non_null(pr);
  assert_non_null(pr->prev_kv);
  size_t wlen = make_value(2, version[2], want);
  assert_int_equal(pr->prev_kv->value.len, wlen);
  if (wlen) assert_memory_equal(pr->prev_kv->value.data, want, wlen);
  version[2]++;
  protobuf_c_message_free_unpacked(&pr->base, NULL);

  /* DeleteRange prev_kv: values of k030..k032 from the file. */
  Etcdserverpb__DeleteRangeRequest dr = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  dr.key = (ProtobufCBinaryData){4, (uint8_t *)"k030"};
  dr.range_end = (ProtobufCBinaryData){4, (uint8_t *)"k033"};
  dr.prev_kv = true;
  call c = CALL_INIT;
  assert_int_equal(store_submit_delete_range(s, &dr, on_call, &c), 0);
  call_wait(&c);
  assert_false(c.failed);
  Etcdserverpb__DeleteRangeResponse *drr = (Etcdserverpb__DeleteRangeResponse *)c.resp;
  int expect = 0;
  for (int i = 30; i < 33; i++) expect += version[i] > 0;
  assert_int_equal(drr->n_prev_kvs, expect);
  for (size_t i = 0, k = 30; i < drr->n_prev_kvs; k++) {
    if (!version[k]) continue;
    wlen = make_value((int)k, version[k], want);
    assert_int_equal(drr->prev_kvs[i]->value.len, wlen);
    if (wlen) assert_memory_equal(drr->prev_kvs[i]->value.data, want, wlen);
    version[k] = 0;
    i++;
  }
  protobuf_c_message_free_unpacked(c.resp, NULL);

  /* Txn compares on a value held in the file: equal, and not equal. */
  for (int wrong = 0; wrong < 2; wrong++) {
    Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
    cmp.key = (ProtobufCBinaryData){4, (uint8_t *)"k021"};
    cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    cmp.result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL;
    cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    wlen = make_value(21, version[21], want);
    assert_true(wlen > 0);
    if (wrong) want[0] ^= 1;
    cmp.value = (ProtobufCBinaryData){wlen, want};
    Etcdserverpb__Compare *cmps[] = {&cmp};
    Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
    t.n_compare = 1;
    t.compare = cmps;
    call tc = CALL_INIT;
    assert_int_equal(store_submit_txn(s, &t, on_call, &tc), 0);
    call_wait(&tc);
    assert_false(tc.failed);
    assert_int_equal(((Etcdserverpb__TxnResponse *)tc.resp)->succeeded, !wrong);
    protobuf_c_message_free_unpacked(tc.resp, NULL);
  }

  /* Restart: the index comes back, the values stay in the file; the WAL tail
   * after the snapshot is in memory. Every answer as of `at` is unchanged, and
   * so are the newest ones. */
  int64_t now = status(s).revision;
  bytes live = {0};
  read_everything(s, &live, now, old_rev);
  store_close(s);
  s = open_store(&opts);
  st = status(s);
  assert_true(st.value_bytes_on_disk > 100000);
  assert_true(st.value_bytes_resident < 5000);
  assert_int_equal(st.value_files_open, 1);
  bytes reopened = {0}, reopened_live = {0};
  read_everything(s, &reopened, at, old_rev);
  assert_same(&before, &reopened);
  read_everything(s, &reopened_live, now, old_rev);
  assert_same(&live, &reopened_live);
  store_close(s);
  assert_int_equal(value_file_open_count(), 0);
  free(before.p);
  free(after.p);
  free(live.p);
  free(reopened.p);
  free(reopened_live.p);
  free(dir);
}

static void snap_path(const char *dir, uint64_t index, char *out, size_t n) {
  snprintf(out, n, "%s/member/snap/%016llx.snap", dir, (unsigned long long)index);
}

/* Holds the first snapshot at or past from_index at its first chunk. */
typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  uint64_t from_index;
  bool held, release;
} gate;

static void gate_hook(void *arg, int phase, uint64_t index, uint64_t records) {
  (void)records;
  gate *g = arg;
  pthread_mutex_lock(&g->mu);
  if (phase == STORE_SNAPSHOT_CHUNK && index >= g->from_index && !g->release) {
    g->held = true;
    pthread_cond_broadcast(&g->cond);
    while (!g->release) pthread_cond_wait(&g->cond, &g->mu);
  }
  pthread_mutex_unlock(&g->mu);
}

/* Records keep reading from the first snapshot while the second is written,
 * even once its name is gone (retention unlinks it; a same-index snapshot is
 * renamed over it): the descriptor keeps the inode. The second snapshot copies
 * those values out of it; then every record points at the second file and
 * the first one is closed. */
static void test_replaced_snapshot_file_still_read(void **state) {
  (void)state;
  char *dir = temp_dir();
  gate g = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .from_index = 2 * SNAP};
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = SNAP, .snapshot_hook = gate_hook,
                        .snapshot_hook_arg = &g};
  store *s = open_store(&opts);
  int version[KEYS] = {0};
  fill(s, SNAP, version);
  wait_snapshot(s, SNAP);
  /* Half the keys get new versions; the others are only in the first file. */
  int n = 0;
  for (int i = 0; n < SNAP; i++, n++) put_ok(s, (i * 2) % KEYS, ++version[(i * 2) % KEYS]);
  pthread_mutex_lock(&g.mu);
  while (!g.held) pthread_cond_wait(&g.cond, &g.mu);
  pthread_mutex_unlock(&g.mu);
  int64_t at = status(s).revision;
  bytes golden = {0}, unlinked = {0}, moved = {0}, reopened = {0};
  read_everything(s, &golden, at, 40);
  char first[4200];
  snap_path(dir, SNAP, first, sizeof(first));
  assert_int_equal(unlink(first), 0);
  read_everything(s, &unlinked, at, 40);
  assert_same(&golden, &unlinked);
  assert_int_equal(status(s).value_files_open, 1);

  pthread_mutex_lock(&g.mu);
  g.release = true;
  pthread_cond_broadcast(&g.cond);
  pthread_mutex_unlock(&g.mu);
  wait_snapshot(s, 2 * SNAP);
  store_status st = status(s);
  assert_int_equal(st.value_bytes_resident, 0);
  assert_int_equal(st.value_files_open, 1); /* the first file is closed: nothing points at it */
  read_everything(s, &moved, at, 40);
  assert_same(&golden, &moved);
  store_close(s);

  s = open_store(&opts);
  read_everything(s, &reopened, at, 40);
  assert_same(&golden, &reopened);
  store_close(s);
  free(golden.p);
  free(unlinked.p);
  free(moved.p);
  free(reopened.p);
  free(dir);
}

static void expect_value_error(const kv_error *e) {
  assert_int_equal(e->code, GRPC_STATUS_INTERNAL);
  assert_string_equal(e->message, KV_ERR_VALUE_READ);
}

/* The snapshot file is cut short under the store (as a disk error would make
 * it unreadable): every request that needs one of its values fails with
 * INTERNAL and etcd-style text, requests that need none still work, and writes
 * that fail before changing anything change nothing. Only a write that fails
 * half-applied (a txn that put, then could not read) stops writes, as a WAL
 * failure does. Nothing crashes. */
static void test_unreadable_snapshot_fails_requests(void **state) {
  (void)state;
  char *dir = temp_dir();
  store_options opts = {.data_dir = dir, .name = "t", .snapshot_count = SNAP};
  store *s = open_store(&opts);
  int version[KEYS] = {0};
  fill(s, SNAP, version);
  wait_snapshot(s, SNAP);
  char path[4200];
  snap_path(dir, SNAP, path, sizeof(path));
  assert_int_equal(truncate(path, 100), 0);

  bytes b = {0};
  kv_error e = {0};
  assert_int_equal(range_into(s, &b, "k", "l", 0, 0, 0, false, false, 0, &e), -1);
  expect_value_error(&e);
  assert_int_equal(range_into(s, &b, "k", "l", 0, ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE,
                              ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND, false, false, 0, &e), -1);
  expect_value_error(&e);
  /* keys_only and count_only never read a value. */
  assert_int_equal(range_into(s, &b, "k", "l", 0, 0, 0, true, false, 0, &e), 0);
  assert_int_equal(range_into(s, &b, "k", "l", 0, 0, 0, false, true, 0, &e), 0);
  assert_int_equal(store_history(s, (const uint8_t *)"k", 1, (const uint8_t *)"l", 1, 2, 0, true,
                                 on_history, &b, &e), -1);
  expect_value_error(&e);

  /* A put whose prev_kv cannot be read writes nothing. */
  int64_t rev = status(s).revision;
  assert_null(put(s, 1, version[1] + 1, true, &e));
  expect_value_error(&e);
  assert_int_equal(status(s).revision, rev);
  /* A txn whose value compare cannot be read writes nothing. */
  Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
  cmp.key = (ProtobufCBinaryData){4, (uint8_t *)"k004"};
  cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
  cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
  Etcdserverpb__Compare *cmps[] = {&cmp};
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.n_compare = 1;
  t.compare = cmps;
  call c = CALL_INIT;
  assert_int_equal(store_submit_txn(s, &t, on_call, &c), 0);
  call_wait(&c);
  assert_true(c.failed);
  expect_value_error(&c.err);
  /* The store still writes. */
  put_ok(s, 1, ++version[1]);
  assert_int_equal(status(s).revision, rev + 1);

  /* A txn that puts, then reads an unreadable value: half-applied, so the
   * store stops writing (UNAVAILABLE) until restarted; nothing of it shows. */
  Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
  p.key = (ProtobufCBinaryData){4, (uint8_t *)"z000"};
  Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
  r.key = (ProtobufCBinaryData){4, (uint8_t *)"k004"};
  Etcdserverpb__RequestOp op1 = ETCDSERVERPB__REQUEST_OP__INIT, op2 = ETCDSERVERPB__REQUEST_OP__INIT;
  op1.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op1.request_put = &p;
  op2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
  op2.request_range = &r;
  Etcdserverpb__RequestOp *ops[] = {&op1, &op2};
  Etcdserverpb__TxnRequest t2 = ETCDSERVERPB__TXN_REQUEST__INIT;
  t2.n_success = 2;
  t2.success = ops;
  call c2 = CALL_INIT;
  assert_int_equal(store_submit_txn(s, &t2, on_call, &c2), 0);
  call_wait(&c2);
  assert_true(c2.failed);
  assert_int_equal(c2.err.code, GRPC_STATUS_UNAVAILABLE);
  assert_null(put(s, 2, 99, false, &e));
  assert_int_equal(e.code, GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(status(s).revision, rev + 1);
  assert_int_equal(range_into(s, &b, "z", "", 0, 0, 0, false, true, 0, &e), 0);
  store_close(s);
  free(b.p);
  free(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_values_from_snapshot_byte_exact),
      cmocka_unit_test(test_replaced_snapshot_file_still_read),
      cmocka_unit_test(test_unreadable_snapshot_fails_requests),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
