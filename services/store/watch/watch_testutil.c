/* services/store/watch/watch_testutil.c — see watch_testutil.h. */
#define _GNU_SOURCE
#include "services/store/watch/watch_testutil.h"

#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static void deadline_after(struct timespec *ts, int ms) {
  clock_gettime(CLOCK_REALTIME, ts);
  ts->tv_sec += ms / 1000;
  ts->tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts->tv_nsec >= 1000000000) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000;
  }
}

void test_store_open(test_store *ts) {
  const char *base = getenv("TEST_TMPDIR");
  ts->dir = malloc(4096);
  snprintf(ts->dir, 4096, "%s/watchXXXXXX", base ? base : "/tmp");
  assert_non_null(mkdtemp(ts->dir));
  store_options o = {.data_dir = ts->dir, .name = "watch-test", .unsafe_no_fsync = true};
  keel_error err = {0};
  ts->s = store_open(&o, &err);
  if (!ts->s) fail_msg("store_open: %s", err.message);
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb, (void)flag, (void)ftw;
  return remove(path);
}

void test_store_close(test_store *ts) {
  store_close(ts->s);
  nftw(ts->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  free(ts->dir);
  ts->s = NULL;
  ts->dir = NULL;
}

typedef struct sync_wait {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done;
  int64_t rev;
  grpc_status_code code;
  const char *message;
} sync_wait;

static void sync_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  sync_wait *w = arg;
  pthread_mutex_lock(&w->mu);
  if (err) {
    w->code = err->code;
    w->message = err->message;
  } else {
    /* Every write response has its header as the first field. */
    w->rev = ((Etcdserverpb__PutResponse *)resp)->header->revision;
    protobuf_c_message_free_unpacked(resp, NULL);
  }
  w->done = true;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static int64_t sync_finish(sync_wait *w, int rc, const char *what) {
  if (rc != 0) fail_msg("%s: submit failed: %d", what, rc);
  pthread_mutex_lock(&w->mu);
  while (!w->done) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
  if (w->code != GRPC_STATUS_OK) fail_msg("%s: %d %s", what, w->code, w->message);
  return w->rev;
}

#define SYNC_WAIT_INIT {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, 0, 0, NULL}

int64_t tput_bytes(store *s, const char *key, const void *value, size_t len) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)key;
  req.key.len = strlen(key);
  req.value.data = (uint8_t *)value;
  req.value.len = len;
  sync_wait w = SYNC_WAIT_INIT;
  return sync_finish(&w, store_submit_put(s, &req, sync_done, &w), "put");
}

int64_t tput(store *s, const char *key, const char *value) {
  return tput_bytes(s, key, value, strlen(value));
}

int64_t tdel(store *s, const char *key, const char *range_end) {
  Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  req.key.data = (uint8_t *)key;
  req.key.len = strlen(key);
  if (range_end) {
    req.range_end.data = (uint8_t *)range_end;
    req.range_end.len = strlen(range_end);
  }
  sync_wait w = SYNC_WAIT_INIT;
  return sync_finish(&w, store_submit_delete_range(s, &req, sync_done, &w), "delete");
}

int64_t ttxn_puts(store *s, const char *const *keys, const char *const *values, size_t n) {
  Etcdserverpb__TxnRequest req = ETCDSERVERPB__TXN_REQUEST__INIT;
  Etcdserverpb__RequestOp *ops = calloc(n, sizeof(*ops));
  Etcdserverpb__RequestOp **pops = calloc(n, sizeof(*pops));
  Etcdserverpb__PutRequest *puts = calloc(n, sizeof(*puts));
  for (size_t i = 0; i < n; i++) {
    etcdserverpb__put_request__init(&puts[i]);
    puts[i].key.data = (uint8_t *)keys[i];
    puts[i].key.len = strlen(keys[i]);
    puts[i].value.data = (uint8_t *)values[i];
    puts[i].value.len = strlen(values[i]);
    etcdserverpb__request_op__init(&ops[i]);
    ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ops[i].request_put = &puts[i];
    pops[i] = &ops[i];
  }
  req.n_success = n;
  req.success = pops;
  sync_wait w = SYNC_WAIT_INIT;
  int64_t rev = sync_finish(&w, store_submit_txn(s, &req, sync_done, &w), "txn");
  free(ops);
  free(pops);
  free(puts);
  return rev;
}

void tcompact(store *s, int64_t rev) {
  Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  req.revision = rev;
  sync_wait w = SYNC_WAIT_INIT;
  sync_finish(&w, store_submit_compact(s, &req, sync_done, &w), "compact");
}

int64_t trev(store *s) {
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(s, &h);
  return h.revision;
}

void put_counter_init(put_counter *c) {
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->done = c->failed = 0;
}

static void counter_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  put_counter *c = arg;
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  pthread_mutex_lock(&c->mu);
  c->done++;
  if (err) c->failed++;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
}

void tput_async(store *s, const char *key, const char *value, put_counter *c) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)key;
  req.key.len = strlen(key);
  req.value.data = (uint8_t *)value;
  req.value.len = strlen(value);
  int rc;
  while ((rc = store_submit_put(s, &req, counter_done, c)) == -EAGAIN) usleep(1000);
  assert_int_equal(rc, 0);
}

int put_counter_wait(put_counter *c, int n, int timeout_ms) {
  struct timespec ts;
  deadline_after(&ts, timeout_ms);
  pthread_mutex_lock(&c->mu);
  while (c->done < n && pthread_cond_timedwait(&c->cond, &c->mu, &ts) != ETIMEDOUT) {
  }
  int done = c->done;
  pthread_mutex_unlock(&c->mu);
  return done;
}

void resp_log_init(resp_log *l) {
  memset(l, 0, sizeof(*l));
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cond, NULL);
}

void resp_log_free(resp_log *l) {
  for (size_t i = 0; i < l->n; i++) protobuf_c_message_free_unpacked(&l->r[i]->base, NULL);
  free(l->r);
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cond);
}

void resp_log_add(resp_log *l, const Etcdserverpb__WatchResponse *m) {
  size_t n = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *buf = malloc(n ? n : 1);
  protobuf_c_message_pack(&m->base, buf);
  Etcdserverpb__WatchResponse *c = etcdserverpb__watch_response__unpack(NULL, n, buf);
  free(buf);
  pthread_mutex_lock(&l->mu);
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->r = realloc(l->r, l->cap * sizeof(*l->r));
  }
  l->r[l->n++] = c;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->mu);
}

void resp_log_close(resp_log *l) {
  pthread_mutex_lock(&l->mu);
  l->closed = true;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->mu);
}

size_t resp_log_count(resp_log *l) {
  pthread_mutex_lock(&l->mu);
  size_t n = l->n;
  pthread_mutex_unlock(&l->mu);
  return n;
}

size_t resp_log_wait(resp_log *l, size_t n, int timeout_ms) {
  struct timespec ts;
  deadline_after(&ts, timeout_ms);
  pthread_mutex_lock(&l->mu);
  while (l->n < n && pthread_cond_timedwait(&l->cond, &l->mu, &ts) != ETIMEDOUT) {
  }
  size_t got = l->n;
  pthread_mutex_unlock(&l->mu);
  return got;
}

Etcdserverpb__WatchResponse *resp_log_get(resp_log *l, size_t i, int timeout_ms) {
  if (resp_log_wait(l, i + 1, timeout_ms) <= i) return NULL;
  pthread_mutex_lock(&l->mu);
  Etcdserverpb__WatchResponse *r = l->r[i];
  pthread_mutex_unlock(&l->mu);
  return r;
}

bool key_is(const Mvccpb__KeyValue *kv, const char *key) {
  return kv && kv->key.len == strlen(key) && memcmp(kv->key.data, key, kv->key.len) == 0;
}

bool value_is(const Mvccpb__KeyValue *kv, const char *value) {
  return kv && kv->value.len == strlen(value) &&
         (kv->value.len == 0 || memcmp(kv->value.data, value, kv->value.len) == 0);
}
