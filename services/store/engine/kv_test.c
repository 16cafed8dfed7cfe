/* Unit tests of the kv engine: etcd's revision, range, txn and compaction rules
 * (as e2e/store's conformance suite observed them on etcd 3.4). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/engine/kv.h"

#define B(s) ((ProtobufCBinaryData){.len = sizeof(s) - 1, .data = (uint8_t *)(s)})

/* Responses here are stack structs whose fields are heap: free the fields only. */
static void free_fields(ProtobufCMessage *m) {
  ProtobufCMessage *copy = malloc(m->descriptor->sizeof_message);
  memcpy(copy, m, m->descriptor->sizeof_message);
  protobuf_c_message_free_unpacked(copy, NULL);
}

static int64_t put(kv *k, const char *key, const char *value) {
  kv_write w;
  kv_write_begin(k, &w);
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  req.value = (ProtobufCBinaryData){strlen(value), (uint8_t *)value};
  Etcdserverpb__PutResponse resp;
  kv_error err;
  assert_int_equal(kv_put(&w, &req, &resp, &err), 0);
  int64_t rev = kv_write_commit(&w);
  kv_write_release(&w);
  free_fields(&resp.base);
  return rev;
}


static Etcdserverpb__RangeResponse range(kv *k, const char *key, const char *end, int64_t rev,
                                         int64_t limit, kv_error *err, int *rc) {
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  if (end) req.range_end = (ProtobufCBinaryData){strlen(end) ? strlen(end) : 1, (uint8_t *)end};
  req.revision = rev;
  req.limit = limit;
  Etcdserverpb__RangeResponse resp;
  *rc = kv_range(k, &req, kv_rev(k), &resp, err);
  return resp;
}

static void test_revisions_start_at_one_and_versions_count(void **state) {
  (void)state;
  kv *k = kv_create();
  assert_int_equal(kv_rev(k), 1);
  assert_int_equal(put(k, "a", "1"), 2);
  assert_int_equal(put(k, "a", "1"), 3); /* etcd: an unchanged value still makes a revision */
  assert_int_equal(put(k, "b", "x"), 4);
  kv_error err;
  int rc;
  Etcdserverpb__RangeResponse r = range(k, "a", NULL, 0, 0, &err, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(r.n_kvs, 1);
  assert_int_equal(r.kvs[0]->create_revision, 2);
  assert_int_equal(r.kvs[0]->mod_revision, 3);
  assert_int_equal(r.kvs[0]->version, 2);
  free_fields(&r.base);
  /* At revision 2 the key had version 1. */
  r = range(k, "a", NULL, 2, 0, &err, &rc);
  assert_int_equal(r.kvs[0]->version, 1);
  free_fields(&r.base);
  kv_destroy(k);
}

static void test_range_prefix_limit_more_count(void **state) {
  (void)state;
  kv *k = kv_create();
  put(k, "p/1", "a");
  put(k, "p/2", "b");
  put(k, "p/3", "c");
  put(k, "q", "d");
  kv_error err;
  int rc;
  Etcdserverpb__RangeResponse r = range(k, "p/", "p0", 0, 2, &err, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(r.n_kvs, 2);
  assert_true(r.more);
  assert_int_equal(r.count, 3);
  assert_memory_equal(r.kvs[0]->key.data, "p/1", 3);
  free_fields(&r.base);
  /* end "\0": every key >= key. */
  r = range(k, "p/2", "", 0, 0, &err, &rc);
  assert_int_equal(r.n_kvs, 3);
  free_fields(&r.base);
  kv_destroy(k);
}

static void test_future_and_compacted_revisions(void **state) {
  (void)state;
  kv *k = kv_create();
  for (int i = 0; i < 5; i++) put(k, "k", "v"); /* revisions 2..6 */
  kv_error err;
  int rc;
  Etcdserverpb__RangeResponse r = range(k, "k", NULL, 7, 0, &err, &rc);
  assert_int_equal(rc, -1);
  assert_int_equal(err.code, GRPC_STATUS_OUT_OF_RANGE);
  assert_string_equal(err.message, KV_ERR_FUTURE_REV);
  free_fields(&r.base);
  assert_int_equal(kv_compact_check(k, 4, &err), 0);
  kv_compact(k, 4);
  r = range(k, "k", NULL, 3, 0, &err, &rc);
  assert_int_equal(rc, -1);
  assert_string_equal(err.message, KV_ERR_COMPACTED);
  free_fields(&r.base);
  /* The compacted revision itself is still readable. */
  r = range(k, "k", NULL, 4, 0, &err, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(r.n_kvs, 1);
  assert_int_equal(r.kvs[0]->mod_revision, 4);
  free_fields(&r.base);
  assert_int_equal(kv_compact_check(k, 4, &err), -1); /* compacting again */
  assert_string_equal(err.message, KV_ERR_COMPACTED);
  assert_int_equal(kv_compact_check(k, 100, &err), -1);
  assert_string_equal(err.message, KV_ERR_FUTURE_REV);
  kv_destroy(k);
}

static void test_delete_missing_takes_no_revision(void **state) {
  (void)state;
  kv *k = kv_create();
  put(k, "a", "1");
  kv_write w;
  kv_write_begin(k, &w);
  Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  req.key = B("zzz");
  Etcdserverpb__DeleteRangeResponse resp;
  kv_error err;
  assert_int_equal(kv_delete_range(&w, &req, &resp, &err), 0);
  assert_int_equal(resp.deleted, 0);
  assert_int_equal(kv_write_commit(&w), 0);
  assert_int_equal(kv_rev(k), 2);
  kv_write_release(&w);
  free_fields(&resp.base);
  kv_destroy(k);
}

static void test_delete_prefix_one_revision_prev_kv(void **state) {
  (void)state;
  kv *k = kv_create();
  put(k, "d/1", "a");
  put(k, "d/2", "b");
  kv_write w;
  kv_write_begin(k, &w);
  Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  req.key = B("d/");
  req.range_end = B("d0");
  req.prev_kv = true;
  Etcdserverpb__DeleteRangeResponse resp;
  kv_error err;
  assert_int_equal(kv_delete_range(&w, &req, &resp, &err), 0);
  assert_int_equal(resp.deleted, 2);
  assert_int_equal(resp.n_prev_kvs, 2);
  assert_int_equal(kv_write_commit(&w), 4);
  assert_int_equal(w.nchanges, 2);
  assert_int_equal(w.changes[1].rev.sub, 1);
  assert_true(w.changes[0].is_delete);
  kv_write_release(&w);
  free_fields(&resp.base);
  /* Re-creating a deleted key starts a new generation: version 1. */
  put(k, "d/1", "again");
  int rc;
  Etcdserverpb__RangeResponse r = range(k, "d/1", NULL, 0, 0, &err, &rc);
  assert_int_equal(r.kvs[0]->version, 1);
  assert_int_equal(r.kvs[0]->create_revision, 5);
  free_fields(&r.base);
  kv_destroy(k);
}

static void test_put_rules(void **state) {
  (void)state;
  kv *k = kv_create();
  kv_write w;
  kv_error err;
  Etcdserverpb__PutResponse resp;
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  kv_write_begin(k, &w);
  assert_int_equal(kv_put(&w, &req, &resp, &err), -1);
  assert_string_equal(err.message, KV_ERR_EMPTY_KEY);
  req.key = B("k");
  req.ignore_value = true;
  assert_int_equal(kv_put(&w, &req, &resp, &err), -1);
  assert_string_equal(err.message, KV_ERR_KEY_NOT_FOUND);
  req.value = B("v");
  assert_int_equal(kv_put(&w, &req, &resp, &err), -1);
  assert_string_equal(err.message, KV_ERR_VALUE_PROVIDED);
  req.ignore_value = false;
  req.lease = 42; /* no lease hooks: no lease exists */
  assert_int_equal(kv_put(&w, &req, &resp, &err), -1);
  assert_int_equal(err.code, GRPC_STATUS_NOT_FOUND);
  assert_string_equal(err.message, KV_ERR_LEASE_NOT_FOUND);
  assert_int_equal(kv_write_commit(&w), 0); /* nothing was written */
  kv_write_release(&w);
  put(k, "k", "old");
  kv_write_begin(k, &w);
  Etcdserverpb__PutRequest keep = ETCDSERVERPB__PUT_REQUEST__INIT;
  keep.key = B("k");
  keep.ignore_value = true;
  keep.prev_kv = true;
  assert_int_equal(kv_put(&w, &keep, &resp, &err), 0);
  assert_non_null(resp.prev_kv);
  assert_memory_equal(resp.prev_kv->value.data, "old", 3);
  kv_write_commit(&w);
  kv_write_release(&w);
  free_fields(&resp.base);
  int rc;
  Etcdserverpb__RangeResponse r = range(k, "k", NULL, 0, 0, &err, &rc);
  assert_memory_equal(r.kvs[0]->value.data, "old", 3); /* the value was kept */
  assert_int_equal(r.kvs[0]->version, 2);
  free_fields(&r.base);
  kv_destroy(k);
}

static Etcdserverpb__RequestOp *op_put(const char *key, const char *value) {
  Etcdserverpb__RequestOp *op = calloc(1, sizeof(*op));
  etcdserverpb__request_op__init(op);
  Etcdserverpb__PutRequest *p = calloc(1, sizeof(*p));
  etcdserverpb__put_request__init(p);
  p->key = (ProtobufCBinaryData){strlen(key), (uint8_t *)strdup(key)};
  p->value = (ProtobufCBinaryData){strlen(value), (uint8_t *)strdup(value)};
  op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op->request_put = p;
  return op;
}

static Etcdserverpb__RequestOp *op_get(const char *key) {
  Etcdserverpb__RequestOp *op = calloc(1, sizeof(*op));
  etcdserverpb__request_op__init(op);
  Etcdserverpb__RangeRequest *r = calloc(1, sizeof(*r));
  etcdserverpb__range_request__init(r);
  r->key = (ProtobufCBinaryData){strlen(key), (uint8_t *)strdup(key)};
  op->request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
  op->request_range = r;
  return op;
}

static Etcdserverpb__Compare *cmp_value(const char *key, int result, const char *value) {
  Etcdserverpb__Compare *c = calloc(1, sizeof(*c));
  etcdserverpb__compare__init(c);
  c->key = (ProtobufCBinaryData){strlen(key), (uint8_t *)strdup(key)};
  c->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
  c->result = result;
  c->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
  c->value = (ProtobufCBinaryData){strlen(value), (uint8_t *)strdup(value)};
  return c;
}

static void test_txn_branches_read_own_writes_and_headers(void **state) {
  (void)state;
  kv *k = kv_create();
  put(k, "x", "1"); /* rev 2 */
  Etcdserverpb__TxnRequest *t = calloc(1, sizeof(*t));
  etcdserverpb__txn_request__init(t);
  t->n_compare = 1;
  t->compare = calloc(1, sizeof(*t->compare));
  t->compare[0] = cmp_value("x", ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL, "1");
  t->n_success = 3;
  t->success = calloc(3, sizeof(*t->success));
  t->success[0] = op_get("y");
  t->success[1] = op_put("y", "new");
  t->success[2] = op_get("y");
  kv_write w;
  kv_write_begin(k, &w);
  Etcdserverpb__TxnResponse resp;
  kv_error err;
  assert_int_equal(kv_txn(&w, t, &resp, &err), 0);
  assert_true(resp.succeeded);
  assert_int_equal(resp.n_responses, 3);
  /* Before the write the header shows the old revision, after it the new one. */
  assert_int_equal(resp.responses[0]->response_range->header->revision, 2);
  assert_int_equal(resp.responses[0]->response_range->n_kvs, 0);
  assert_int_equal(resp.responses[2]->response_range->header->revision, 3);
  assert_int_equal(resp.responses[2]->response_range->n_kvs, 1);
  assert_int_equal(kv_write_commit(&w), 3);
  kv_write_release(&w);
  free_fields(&resp.base);
  /* A VALUE compare on a missing key is false even with NOT_EQUAL. */
  free(t->compare[0]->key.data);
  t->compare[0]->key = (ProtobufCBinaryData){7, (uint8_t *)strdup("missing")};
  t->compare[0]->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
  kv_write_begin(k, &w);
  assert_int_equal(kv_txn(&w, t, &resp, &err), 0);
  assert_false(resp.succeeded);
  assert_int_equal(kv_write_commit(&w), 0); /* an empty failure branch takes no revision */
  kv_write_release(&w);
  free_fields(&resp.base);
  protobuf_c_message_free_unpacked(&t->base, NULL); /* built with calloc/strdup */
  kv_destroy(k);
}

static void test_txn_duplicate_keys_and_too_many_ops(void **state) {
  (void)state;
  kv *k = kv_create();
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  Etcdserverpb__RequestOp *ops[2] = {op_put("d", "1"), op_put("d", "2")};
  t.success = ops;
  t.n_success = 2;
  kv_write w;
  kv_write_begin(k, &w);
  Etcdserverpb__TxnResponse resp;
  kv_error err;
  assert_int_equal(kv_txn(&w, &t, &resp, &err), -1);
  assert_int_equal(err.code, GRPC_STATUS_INVALID_ARGUMENT);
  assert_string_equal(err.message, KV_ERR_DUPLICATE_KEY);
  assert_int_equal(kv_write_commit(&w), 0);
  kv_write_release(&w);
  free_fields(&resp.base);
  for (int i = 0; i < 2; i++) free_fields(&ops[i]->base), free(ops[i]);
  t.n_success = KV_MAX_TXN_OPS + 1;
  Etcdserverpb__RequestOp **many = calloc(t.n_success, sizeof(*many));
  char key[32];
  for (size_t i = 0; i < t.n_success; i++) {
    snprintf(key, sizeof(key), "k%zu", i);
    many[i] = op_put(key, "v");
  }
  t.success = many;
  kv_write_begin(k, &w);
  assert_int_equal(kv_txn(&w, &t, &resp, &err), -1);
  assert_string_equal(err.message, KV_ERR_TOO_MANY_OPS);
  kv_write_release(&w);
  free_fields(&resp.base);
  for (size_t i = 0; i < t.n_success; i++) free_fields(&many[i]->base), free(many[i]);
  free(many);
  kv_destroy(k);
}

static void test_compaction_frees_history_and_replay_rebuilds(void **state) {
  (void)state;
  kv *k = kv_create();
  for (int i = 0; i < 1000; i++) {
    char key[16];
    snprintf(key, sizeof(key), "key%03d", i % 10);
    put(k, key, "value-value-value");
  }
  size_t before = revstore_records(kv_revstore(k));
  assert_int_equal(before, 1000);
  kv_compact(k, kv_rev(k));
  /* Only the newest version of each of the 10 keys is left. */
  assert_int_equal(revstore_records(kv_revstore(k)), 10);
  /* Replay into a fresh kv reproduces revisions and versions. */
  kv *r = kv_create();
  assert_int_equal(kv_replay(r, (mvcc_revision){2, 0}, false, (const uint8_t *)"a", 1,
                             (const uint8_t *)"1", 1, 0), 0);
  assert_int_equal(kv_replay(r, (mvcc_revision){3, 0}, false, (const uint8_t *)"a", 1,
                             (const uint8_t *)"2", 1, 0), 0);
  assert_int_equal(kv_replay(r, (mvcc_revision){3, 1}, false, (const uint8_t *)"b", 1,
                             (const uint8_t *)"3", 1, 0), 0);
  assert_int_equal(kv_replay(r, (mvcc_revision){4, 0}, true, (const uint8_t *)"a", 1, NULL, 0, 0), 0);
  assert_int_equal(kv_replay(r, (mvcc_revision){6, 0}, false, (const uint8_t *)"c", 1,
                             (const uint8_t *)"x", 1, 0), -EINVAL); /* a gap */
  assert_int_equal(kv_rev(r), 4);
  kv_error err;
  int rc;
  Etcdserverpb__RangeResponse res = range(r, "b", NULL, 0, 0, &err, &rc);
  assert_int_equal(res.kvs[0]->mod_revision, 3);
  free_fields(&res.base);
  res = range(r, "a", NULL, 3, 0, &err, &rc);
  assert_int_equal(res.kvs[0]->version, 2);
  free_fields(&res.base);
  kv_destroy(r);
  kv_destroy(k);
}

typedef struct walk {
  mvcc_revision revs[4096];
  size_t n, limit, taken;
  mvcc_revision next;
} walk;

static int walk_all(void *arg, mvcc_revision rev, const kv_record *rec) {
  (void)rec;
  walk *w = arg;
  w->revs[w->n++] = rev;
  return 0;
}

static int walk_some(void *arg, mvcc_revision rev, const kv_record *rec) {
  (void)rec;
  walk *w = arg;
  w->revs[w->n++] = rev;
  w->next = (mvcc_revision){rev.main, rev.sub + 1};
  return ++w->taken >= w->limit;
}

/* The snapshot's walk: revstore_each_from resumed after every `limit` records
 * sees exactly what one revstore_each sees, across the compacted part (sorted
 * array) and the dense slots, and multi-record revisions. */
static void test_revstore_walk_resumes_by_revision(void **state) {
  (void)state;
  kv *k = kv_create();
  for (int i = 0; i < 300; i++) {
    char key[16];
    snprintf(key, sizeof(key), "key%03d", i % 40);
    put(k, key, "v");
  }
  kv_compact(k, 200); /* 40 survivors at or below 200, some at it */
  /* A revision with three changes. */
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  Etcdserverpb__RequestOp *ops[3] = {op_put("m1", "x"), op_put("m2", "x"), op_put("m3", "x")};
  t.success = ops;
  t.n_success = 3;
  Etcdserverpb__TxnResponse resp;
  kv_error err;
  kv_write w;
  kv_write_begin(k, &w);
  assert_int_equal(kv_txn(&w, &t, &resp, &err), 0);
  kv_write_commit(&w);
  kv_write_release(&w);
  free_fields(&resp.base);
  for (int i = 0; i < 3; i++) free_fields(&ops[i]->base), free(ops[i]);
  for (int i = 0; i < 20; i++) put(k, "tail", "v");
  static walk all, part;
  all.n = 0;
  revstore_each(kv_revstore(k), 0, INT64_MAX, walk_all, &all);
  assert_int_equal(all.n, revstore_records(kv_revstore(k)));
  const int64_t to = kv_rev(k) - 5; /* the walk stops at its revision */
  size_t upto = 0;
  while (upto < all.n && all.revs[upto].main <= to) upto++;
  for (size_t limit = 1; limit <= 7; limit++) {
    part = (walk){.limit = limit};
    for (;;) {
      part.taken = 0;
      if (!revstore_each_from(kv_revstore(k), part.next, to, walk_some, &part)) break;
    }
    assert_int_equal(part.n, upto);
    for (size_t i = 0; i < upto; i++) {
      assert_int_equal(part.revs[i].main, all.revs[i].main);
      assert_int_equal(part.revs[i].sub, all.revs[i].sub);
    }
  }
  kv_destroy(k);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_revisions_start_at_one_and_versions_count),
      cmocka_unit_test(test_range_prefix_limit_more_count),
      cmocka_unit_test(test_future_and_compacted_revisions),
      cmocka_unit_test(test_delete_missing_takes_no_revision),
      cmocka_unit_test(test_delete_prefix_one_revision_prev_kv),
      cmocka_unit_test(test_put_rules),
      cmocka_unit_test(test_txn_branches_read_own_writes_and_headers),
      cmocka_unit_test(test_txn_duplicate_keys_and_too_many_ops),
      cmocka_unit_test(test_compaction_frees_history_and_replay_rebuilds),
      cmocka_unit_test(test_revstore_walk_resumes_by_revision),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
