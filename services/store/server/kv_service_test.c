/* Tests of keel-store's gRPC services: a real engine in a temp dir, the real
 * gRPC runtime and client in one process, over loopback TCP. etcdctl and the
 * etcd conformance suite drive the daemon in e2e/store. */
#define _GNU_SOURCE
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

#include "common/rpc/rpc.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/store.h"
#include "services/store/server/kv_service.h"

#define MAX_REQUEST 4096

typedef struct fixture {
  char *dir;
  store *store;
  kv_service *svc;
  rpc_server *srv;
  rpc_channel *ch;
  char addr[64];
} fixture;

static char *temp_dir(void) {
  const char *base = getenv("TEST_TMPDIR");
  char *d = NULL;
  assert_true(asprintf(&d, "%s/kvsvcXXXXXX", base ? base : "/tmp") > 0);
  assert_non_null(mkdtemp(d));
  return d;
}

static fixture *start(int apply_queue_max) {
  fixture *f = calloc(1, sizeof(*f));
  keel_error err = {0};
  f->dir = temp_dir();
  store_options so = {.data_dir = f->dir, .name = "kvsvc", .unsafe_no_fsync = true,
                      .apply_queue_max = apply_queue_max};
  f->store = store_open(&so, &err);
  if (!f->store) fail_msg("store_open: %s", err.message);
  const char *peers[] = {"http://127.0.0.1:2380"};
  const char *clients[] = {"http://127.0.0.1:2379", "unix:///tmp/x.sock"};
  kv_service_options ko = {.max_request_bytes = MAX_REQUEST, .name = "kvsvc", .peer_urls = peers,
                           .npeer_urls = 1, .client_urls = clients, .nclient_urls = 2};
  f->svc = kv_service_create(f->store, &ko, &err);
  assert_non_null(f->svc);
  rpc_server_options ro = {.name = "kvsvc-test", .shutdown_grace_ms = 1000,
                           .max_message_bytes = kv_service_max_message_bytes(MAX_REQUEST)};
  f->srv = rpc_server_create(&ro, &err);
  assert_non_null(f->srv);
  if (kv_service_register(f->svc, f->srv, &err) < 0) fail_msg("register: %s", err.message);
  int port = rpc_server_add_listener(f->srv, "127.0.0.1:0", NULL, &err);
  assert_true(port > 0);
  snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", port);
  if (rpc_server_start(f->srv, &err) < 0) fail_msg("start: %s", err.message);
  const char *eps[] = {f->addr};
  rpc_channel_options co = {.endpoints = eps, .nendpoints = 1, .cq_threads = 2};
  f->ch = rpc_channel_create(&co, &err);
  assert_non_null(f->ch);
  return f;
}

/* The daemon's order: calls, then the store (completing its writes), then the
 * server object. */
static void stop(fixture *f) {
  rpc_channel_destroy(f->ch);
  rpc_server_shutdown(f->srv);
  store_close(f->store);
  rpc_server_destroy(f->srv);
  kv_service_destroy(f->svc);
  free(f->dir);
  free(f);
}

static int setup(void **state) {
  *state = start(0);
  return 0;
}

static int teardown(void **state) {
  stop(*state);
  return 0;
}

static ProtobufCBinaryData bytes(const char *s) {
  return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* A unary call; returns the response (or NULL) with st filled. */
static ProtobufCMessage *call(fixture *f, const char *method, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *resp_desc, rpc_status *st) {
  ProtobufCMessage *resp = NULL;
  rpc_call_options opts = {.timeout_ms = 10000};
  rpc_unary(f->ch, method, req, resp_desc, &resp, &opts, st);
  return resp;
}

static void expect_error(fixture *f, const char *method, const ProtobufCMessage *req,
                         const ProtobufCMessageDescriptor *resp_desc, grpc_status_code code,
                         const char *message) {
  rpc_status st;
  ProtobufCMessage *resp = call(f, method, req, resp_desc, &st);
  assert_null(resp);
  if (st.code != code) fail_msg("%s: code %d (%s), want %d", method, st.code, st.message, code);
  if (message) assert_string_equal(st.message, message);
  rpc_status_clear(&st);
}

static int64_t put(fixture *f, const char *key, const char *value) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key = bytes(key);
  req.value = bytes(value);
  rpc_status st;
  Etcdserverpb__PutResponse *r = (Etcdserverpb__PutResponse *)call(
      f, "/etcdserverpb.KV/Put", &req.base, &etcdserverpb__put_response__descriptor, &st);
  if (!r) fail_msg("put %s: %s", key, st.message);
  rpc_status_clear(&st);
  assert_non_null(r->header);
  int64_t rev = r->header->revision;
  protobuf_c_message_free_unpacked(&r->base, NULL);
  return rev;
}

static Etcdserverpb__RangeResponse *range(fixture *f, const char *key, const char *end, int64_t rev) {
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  req.key = bytes(key);
  if (end) req.range_end = bytes(end);
  req.revision = rev;
  rpc_status st;
  Etcdserverpb__RangeResponse *r = (Etcdserverpb__RangeResponse *)call(
      f, "/etcdserverpb.KV/Range", &req.base, &etcdserverpb__range_response__descriptor, &st);
  if (!r) fail_msg("range %s: %s", key, st.message);
  rpc_status_clear(&st);
  return r;
}

/* ------------------------------------------------------------------ KV */

static void test_put_range_headers(void **state) {
  fixture *f = *state;
  int64_t r1 = put(f, "a/1", "one");
  int64_t r2 = put(f, "a/2", "two");
  assert_int_equal(r2, r1 + 1);
  Etcdserverpb__RangeResponse *r = range(f, "a/", "a0", 0);
  assert_int_equal(r->n_kvs, 2);
  assert_int_equal(r->count, 2);
  assert_memory_equal(r->kvs[1]->value.data, "two", 3);
  assert_int_equal(r->kvs[0]->create_revision, r1);
  assert_non_null(r->header);
  assert_int_equal(r->header->revision, r2);
  assert_true(r->header->cluster_id != 0 && r->header->member_id != 0 && r->header->raft_term > 0);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  /* An older revision: the value as it was, the header still the newest. */
  put(f, "a/1", "uno");
  r = range(f, "a/1", NULL, r1);
  assert_int_equal(r->n_kvs, 1);
  assert_memory_equal(r->kvs[0]->value.data, "one", 3);
  assert_int_equal(r->header->revision, r2 + 1);
  protobuf_c_message_free_unpacked(&r->base, NULL);
}

static void test_delete_txn_compact(void **state) {
  fixture *f = *state;
  int64_t r1 = put(f, "t/k", "v1");
  /* txn: value("t/k") = "v1" -> put t/k v2, else nothing */
  Etcdserverpb__Compare cmp = ETCDSERVERPB__COMPARE__INIT;
  cmp.key = bytes("t/k");
  cmp.target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
  cmp.target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
  cmp.value = bytes("v1");
  Etcdserverpb__Compare *cmps[] = {&cmp};
  Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
  p.key = bytes("t/k");
  p.value = bytes("v2");
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op.request_put = &p;
  Etcdserverpb__RequestOp *ops[] = {&op};
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.compare = cmps;
  t.n_compare = 1;
  t.success = ops;
  t.n_success = 1;
  rpc_status st;
  Etcdserverpb__TxnResponse *tr = (Etcdserverpb__TxnResponse *)call(
      f, "/etcdserverpb.KV/Txn", &t.base, &etcdserverpb__txn_response__descriptor, &st);
  assert_non_null(tr);
  rpc_status_clear(&st);
  assert_true(tr->succeeded);
  assert_int_equal(tr->header->revision, r1 + 1);
  protobuf_c_message_free_unpacked(&tr->base, NULL);

  Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  d.key = bytes("t/k");
  d.prev_kv = true;
  Etcdserverpb__DeleteRangeResponse *dr = (Etcdserverpb__DeleteRangeResponse *)call(
      f, "/etcdserverpb.KV/DeleteRange", &d.base, &etcdserverpb__delete_range_response__descriptor, &st);
  assert_non_null(dr);
  rpc_status_clear(&st);
  assert_int_equal(dr->deleted, 1);
  assert_int_equal(dr->n_prev_kvs, 1);
  assert_memory_equal(dr->prev_kvs[0]->value.data, "v2", 2);
  assert_int_equal(dr->header->revision, r1 + 2);
  protobuf_c_message_free_unpacked(&dr->base, NULL);

  Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  c.revision = r1 + 1;
  Etcdserverpb__CompactionResponse *cr = (Etcdserverpb__CompactionResponse *)call(
      f, "/etcdserverpb.KV/Compact", &c.base, &etcdserverpb__compaction_response__descriptor, &st);
  assert_non_null(cr);
  rpc_status_clear(&st);
  assert_int_equal(cr->header->revision, r1 + 2);
  protobuf_c_message_free_unpacked(&cr->base, NULL);

  /* The engine's errors, with etcd's codes and texts. */
  Etcdserverpb__RangeRequest rr = ETCDSERVERPB__RANGE_REQUEST__INIT;
  rr.key = bytes("t/k");
  rr.revision = r1;
  expect_error(f, "/etcdserverpb.KV/Range", &rr.base, &etcdserverpb__range_response__descriptor,
               GRPC_STATUS_OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted");
  rr.revision = r1 + 1000;
  expect_error(f, "/etcdserverpb.KV/Range", &rr.base, &etcdserverpb__range_response__descriptor,
               GRPC_STATUS_OUT_OF_RANGE, "etcdserver: mvcc: required revision is a future revision");
  expect_error(f, "/etcdserverpb.KV/Compact", &c.base, &etcdserverpb__compaction_response__descriptor,
               GRPC_STATUS_OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted");
  Etcdserverpb__PutRequest empty = ETCDSERVERPB__PUT_REQUEST__INIT;
  expect_error(f, "/etcdserverpb.KV/Put", &empty.base, &etcdserverpb__put_response__descriptor,
               GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: key is not provided");
}

static void test_request_size_limits(void **state) {
  fixture *f = *state;
  char *big = malloc(MAX_REQUEST + 1);
  memset(big, 'x', MAX_REQUEST);
  big[MAX_REQUEST] = '\0';
  Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
  p.key = bytes("big");
  p.value = bytes(big);
  expect_error(f, "/etcdserverpb.KV/Put", &p.base, &etcdserverpb__put_response__descriptor,
               GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: request is too large");
  Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  d.key = bytes(big);
  expect_error(f, "/etcdserverpb.KV/DeleteRange", &d.base,
               &etcdserverpb__delete_range_response__descriptor, GRPC_STATUS_INVALID_ARGUMENT,
               "etcdserver: request is too large");
  Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
  op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  op.request_put = &p;
  Etcdserverpb__RequestOp *ops[] = {&op};
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.success = ops;
  t.n_success = 1;
  expect_error(f, "/etcdserverpb.KV/Txn", &t.base, &etcdserverpb__txn_response__descriptor,
               GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: request is too large");

  /* Reads are not limited (etcd: they do not go through raft): a Range and a
   * read-only Txn with an oversized key answer normally. */
  Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
  r.key = bytes(big);
  rpc_status st;
  ProtobufCMessage *resp = call(f, "/etcdserverpb.KV/Range", &r.base,
                                &etcdserverpb__range_response__descriptor, &st);
  assert_non_null(resp);
  protobuf_c_message_free_unpacked(resp, NULL);
  rpc_status_clear(&st);
  Etcdserverpb__RequestOp rop = ETCDSERVERPB__REQUEST_OP__INIT;
  rop.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
  rop.request_range = &r;
  Etcdserverpb__RequestOp *rops[] = {&rop};
  t.success = rops;
  resp = call(f, "/etcdserverpb.KV/Txn", &t.base, &etcdserverpb__txn_response__descriptor, &st);
  assert_non_null(resp);
  assert_true(((Etcdserverpb__TxnResponse *)resp)->succeeded);
  protobuf_c_message_free_unpacked(resp, NULL);
  rpc_status_clear(&st);

  /* Past max-request-bytes + 512 KiB, gRPC itself refuses the message. */
  size_t huge_len = (size_t)kv_service_max_message_bytes(MAX_REQUEST) + 1;
  char *huge = malloc(huge_len + 1);
  memset(huge, 'y', huge_len);
  huge[huge_len] = '\0';
  p.value = bytes(huge);
  expect_error(f, "/etcdserverpb.KV/Put", &p.base, &etcdserverpb__put_response__descriptor,
               GRPC_STATUS_RESOURCE_EXHAUSTED, NULL);
  free(huge);
  free(big);
  /* Just under the limit works. */
  char fits[MAX_REQUEST - 64];
  memset(fits, 'z', sizeof(fits) - 1);
  fits[sizeof(fits) - 1] = '\0';
  assert_true(put(f, "fits", fits) > 0);
}

/* ------------------------------------------------------------------ Maintenance, Cluster */

static void test_status_and_member_list(void **state) {
  fixture *f = *state;
  int64_t rev = put(f, "s/k", "v");
  Etcdserverpb__StatusRequest sreq = ETCDSERVERPB__STATUS_REQUEST__INIT;
  rpc_status st;
  Etcdserverpb__StatusResponse *s = (Etcdserverpb__StatusResponse *)call(
      f, "/etcdserverpb.Maintenance/Status", &sreq.base, &etcdserverpb__status_response__descriptor, &st);
  assert_non_null(s);
  rpc_status_clear(&st);
  assert_string_equal(s->version, KV_SERVICE_ETCD_VERSION);
  assert_int_equal(s->header->revision, rev);
  assert_int_equal(s->leader, s->header->member_id);
  assert_true(s->dbsize > 0 && s->dbsizeinuse > 0 && s->dbsizeinuse <= s->dbsize);
  assert_true(s->raftindex > 0 && s->raftappliedindex == s->raftindex && s->raftterm > 0);
  assert_int_equal(s->n_errors, 0);
  uint64_t index = s->raftindex;
  uint64_t member = s->header->member_id, cluster = s->header->cluster_id;
  protobuf_c_message_free_unpacked(&s->base, NULL);
  put(f, "s/k", "v2");
  s = (Etcdserverpb__StatusResponse *)call(f, "/etcdserverpb.Maintenance/Status", &sreq.base,
                                           &etcdserverpb__status_response__descriptor, &st);
  rpc_status_clear(&st);
  assert_true(s->raftindex > index);
  protobuf_c_message_free_unpacked(&s->base, NULL);

  Etcdserverpb__MemberListRequest mreq = ETCDSERVERPB__MEMBER_LIST_REQUEST__INIT;
  Etcdserverpb__MemberListResponse *m = (Etcdserverpb__MemberListResponse *)call(
      f, "/etcdserverpb.Cluster/MemberList", &mreq.base, &etcdserverpb__member_list_response__descriptor,
      &st);
  assert_non_null(m);
  rpc_status_clear(&st);
  assert_int_equal(m->header->revision, 0); /* as etcd 3.4 */
  assert_int_equal(m->header->member_id, member);
  assert_int_equal(m->header->cluster_id, cluster);
  assert_int_equal(m->n_members, 1);
  assert_int_equal(m->members[0]->id, member);
  assert_string_equal(m->members[0]->name, "kvsvc");
  assert_int_equal(m->members[0]->n_peerurls, 1);
  assert_string_equal(m->members[0]->peerurls[0], "http://127.0.0.1:2380");
  assert_int_equal(m->members[0]->n_clienturls, 2);
  assert_string_equal(m->members[0]->clienturls[1], "unix:///tmp/x.sock");
  assert_false(m->members[0]->islearner);
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void test_watch_and_lease_unimplemented(void **state) {
  fixture *f = *state;
  Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  g.ttl = 10;
  expect_error(f, "/etcdserverpb.Lease/LeaseGrant", &g.base,
               &etcdserverpb__lease_grant_response__descriptor, GRPC_STATUS_UNIMPLEMENTED, NULL);
  /* Watch is a bidi stream; a unary call on it still gets UNIMPLEMENTED first. */
  Etcdserverpb__WatchRequest w = ETCDSERVERPB__WATCH_REQUEST__INIT;
  expect_error(f, "/etcdserverpb.Watch/Watch", &w.base, &etcdserverpb__watch_response__descriptor,
               GRPC_STATUS_UNIMPLEMENTED, NULL);
}

/* ------------------------------------------------------------------ concurrency */

typedef struct tally {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, ok, too_many, other;
  int64_t max_rev;
  char other_message[256];
} tally;

static void on_put_done(void *arg, const rpc_status *st, ProtobufCMessage *resp) {
  tally *t = arg;
  pthread_mutex_lock(&t->mu);
  if (st->code == GRPC_STATUS_OK) {
    t->ok++;
    int64_t rev = ((Etcdserverpb__PutResponse *)resp)->header->revision;
    if (rev > t->max_rev) t->max_rev = rev;
  } else if (st->code == GRPC_STATUS_RESOURCE_EXHAUSTED &&
             strcmp(st->message, "etcdserver: too many requests") == 0) {
    t->too_many++;
  } else {
    t->other++;
    snprintf(t->other_message, sizeof(t->other_message), "%d %s", st->code, st->message);
  }
  t->done++;
  pthread_cond_broadcast(&t->cond);
  pthread_mutex_unlock(&t->mu);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
}

static void run_async_puts(fixture *f, int n, tally *t) {
  pthread_mutex_init(&t->mu, NULL);
  pthread_cond_init(&t->cond, NULL);
  for (int i = 0; i < n; i++) {
    char key[32];
    snprintf(key, sizeof(key), "c/%04d", i);
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = bytes(key);
    req.value = bytes("v");
    rpc_call_options opts = {.timeout_ms = 10000};
    assert_int_equal(rpc_unary_async(f->ch, "/etcdserverpb.KV/Put", &req.base,
                                     &etcdserverpb__put_response__descriptor, &opts, on_put_done, t),
                     0);
  }
  pthread_mutex_lock(&t->mu);
  while (t->done < n) pthread_cond_wait(&t->cond, &t->mu);
  pthread_mutex_unlock(&t->mu);
  pthread_mutex_destroy(&t->mu);
  pthread_cond_destroy(&t->cond);
}

static void test_concurrent_puts(void **state) {
  fixture *f = *state;
  enum { N = 400 };
  tally t = {0};
  run_async_puts(f, N, &t);
  if (t.other) fail_msg("unexpected status: %s", t.other_message);
  assert_int_equal(t.ok, N);
  Etcdserverpb__RangeResponse *r = range(f, "c/", "c0", 0);
  assert_int_equal(r->count, N);
  assert_int_equal(r->header->revision, t.max_rev);
  protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* With an apply queue of one, a burst of writes may find it full: each call
 * then ends with etcd's "too many requests", every other one succeeds. */
static void test_full_apply_queue(void **state) {
  (void)state;
  fixture *f = start(1);
  enum { N = 400 };
  tally t = {0};
  run_async_puts(f, N, &t);
  if (t.other) fail_msg("unexpected status: %s", t.other_message);
  assert_int_equal(t.ok + t.too_many, N);
  print_message("apply queue 1: %d ok, %d too many requests\n", t.ok, t.too_many);
  stop(f);
}

/* Writes still in the engine when the server shuts down complete (their
 * replies fail quietly) and release their calls: nothing leaks or hangs. */
static void test_shutdown_with_pending_writes(void **state) {
  (void)state;
  fixture *f = start(0);
  tally t = {0};
  pthread_mutex_init(&t.mu, NULL);
  pthread_cond_init(&t.cond, NULL);
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
    req.key = bytes("p/k");
    req.value = bytes("v");
    assert_int_equal(rpc_unary_async(f->ch, "/etcdserverpb.KV/Put", &req.base,
                                     &etcdserverpb__put_response__descriptor, NULL, on_put_done, &t),
                     0);
  }
  rpc_server_shutdown(f->srv);
  pthread_mutex_lock(&t.mu);
  while (t.done < N) pthread_cond_wait(&t.cond, &t.mu);
  pthread_mutex_unlock(&t.mu);
  pthread_mutex_destroy(&t.mu);
  pthread_cond_destroy(&t.cond);
  stop(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_put_range_headers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_delete_txn_compact, setup, teardown),
      cmocka_unit_test_setup_teardown(test_request_size_limits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_status_and_member_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_watch_and_lease_unimplemented, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_puts, setup, teardown),
      cmocka_unit_test(test_full_apply_queue),
      cmocka_unit_test(test_shutdown_with_pending_writes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
