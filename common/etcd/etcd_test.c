/* common/etcd tests: one table of tests run against keel-store and against a
 * real etcd 3.4, each started by testenv.c (fork/exec, PR_SET_PDEATHSIG) on
 * loopback ports chosen by binding port 0, with data in a private temp dir
 * removed at the end. Only the pids started there are ever signalled.
 *
 * usage: etcd_test KEEL_STORE_BIN   (Bazel passes $(location //services/store:keel-store))
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/etcd/etcd.h"
#include "common/etcd/testenv.h"

#define ETCD_BIN "/usr/bin/etcd"
/* Both servers refuse requests above this and fragment watch responses above
 * it + 512 KiB (etcd's gRPC overhead allowance): the fragment test needs it small. */
#define MAX_REQUEST_BYTES 65536

static char g_store_bin[PATH_MAX];

#define now_ms testenv_now_ms
#define sleep_ms testenv_sleep_ms

static etcd_client *client_for(const char *const *eps, size_t n) {
  etcd_client *c = testenv_client(eps, n);
  if (!c) fail_msg("cannot create a client");
  return c;
}

/* After every test, even one that failed halfway: the clients it made. */
static int teardown_test(void **state) {
  (void)state;
  testenv_release_clients();
  return 0;
}

/* ------------------------------------------------------------------ helpers */

#define B(state) ((testenv_backend *)*(state))

static bool kv_is(const etcd_kv *kv, const char *key, const char *value) {
  return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
         (!value || (kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0));
}

#define assert_kv(kv, k, v)                                                                      \
  do {                                                                                           \
    const etcd_kv *kv_ = (kv);                                                                   \
    if (!kv_is(kv_, k, v))                                                                       \
      fail_msg("kv %.*s=%.*s, want %s=%s", (int)kv_->key_len, kv_->key, (int)kv_->value_len,    \
               kv_->value ? (const char *)kv_->value : "", k, v ? v : "*");                     \
  } while (0)

static int64_t put(etcd_client *c, const char *k, const char *v) {
  keel_error err = {0};
  int64_t rev = 0;
  if (etcd_put(c, k, strlen(k), v, strlen(v), 0, &rev, &err) != 0) fail_msg("put %s: %s", k, err.message);
  assert_true(rev > 0);
  return rev;
}

static int64_t current_revision(etcd_client *c) {
  etcd_range_result r;
  keel_error err = {0};
  if (etcd_range(c, "/rev", 4, NULL, 0, 0, 0, false, true, &r, &err) != 0) fail_msg("%s", err.message);
  int64_t rev = r.revision;
  etcd_range_result_clear(&r);
  return rev;
}

static void range_prefix(etcd_client *c, const char *prefix, int64_t rev, int64_t limit,
                         bool keys_only, bool count_only, etcd_range_result *r) {
  unsigned char *end;
  size_t end_len;
  assert_int_equal(etcd_prefix_end(prefix, strlen(prefix), &end, &end_len), 0);
  keel_error err = {0};
  int rc = etcd_range(c, prefix, strlen(prefix), end, end_len, rev, limit, keys_only, count_only, r, &err);
  free(end);
  if (rc != 0) fail_msg("range %s: %s", prefix, err.message);
}

/* Watch collector: deep copies of everything a watch delivered. */
typedef struct rec_event {
  int type;
  char *key, *value, *prev_value;
  size_t value_len, prev_value_len;
  bool has_prev;
  int64_t mod_revision;
} rec_event;

typedef struct collector {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rec_event *ev;
  size_t nev, cap;
  int batches;
  int64_t last_batch_rev;
  size_t last_batch_n;
  int progress;
  int64_t progress_rev;
  int ends;
  int64_t compact_rev;
  int end_code;
  char end_msg[KEEL_ERROR_MESSAGE_MAX];
  bool stop_in_end;
  etcd_watch *w;
  bool stop_pending; /* on_end came before w was set */
  atomic_bool stopped; /* set once etcd_watch_stop returned */
  atomic_int after_stop; /* callbacks seen after that: must stay 0 */
} collector;

static char *dup_n(const void *p, size_t n) {
  char *d = malloc(n + 1);
  if (n) memcpy(d, p, n);
  d[n] = 0;
  return d;
}

static void col_events(void *arg, int64_t rev, const etcd_event *evs, size_t n) {
  collector *c = arg;
  if (atomic_load(&c->stopped)) atomic_fetch_add(&c->after_stop, 1);
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < n; i++) {
    if (c->nev == c->cap) {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->ev = realloc(c->ev, c->cap * sizeof(*c->ev));
    }
    rec_event *e = &c->ev[c->nev++];
    e->type = evs[i].type;
    e->key = dup_n(evs[i].kv.key, evs[i].kv.key_len);
    e->value = dup_n(evs[i].kv.value, evs[i].kv.value_len);
    e->value_len = evs[i].kv.value_len;
    e->has_prev = evs[i].has_prev_kv;
    e->prev_value = dup_n(evs[i].prev_kv.value, evs[i].prev_kv.value_len);
    e->prev_value_len = evs[i].prev_kv.value_len;
    e->mod_revision = evs[i].kv.mod_revision;
  }
  c->batches++;
  c->last_batch_rev = rev;
  c->last_batch_n = n;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void col_progress(void *arg, int64_t rev) {
  collector *c = arg;
  if (atomic_load(&c->stopped)) atomic_fetch_add(&c->after_stop, 1);
  pthread_mutex_lock(&c->mu);
  c->progress++;
  c->progress_rev = rev;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static void col_end(void *arg, int64_t compact_rev, const keel_error *why) {
  collector *c = arg;
  if (atomic_load(&c->stopped)) atomic_fetch_add(&c->after_stop, 1);
  pthread_mutex_lock(&c->mu);
  c->ends++;
  c->compact_rev = compact_rev;
  c->end_code = why ? why->code : 0;
  snprintf(c->end_msg, sizeof(c->end_msg), "%s", why ? why->message : "");
  etcd_watch *w = c->stop_in_end ? c->w : NULL;
  if (c->stop_in_end && !w) c->stop_pending = true;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
  if (w) etcd_watch_stop(w); /* from inside the callback: must not wait */
}

static void col_init(collector *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
}

static void col_free(collector *c) {
  for (size_t i = 0; i < c->nev; i++) {
    free(c->ev[i].key);
    free(c->ev[i].value);
    free(c->ev[i].prev_value);
  }
  free(c->ev);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cv);
}

static const etcd_watch_callbacks col_cb = {col_events, col_progress, col_end};

/* Waits (up to ms) until *field >= want; returns the value seen. */
static long col_wait(collector *c, const void *field, bool is_size, long want, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  long v;
  for (;;) {
    v = is_size ? (long)*(const size_t *)field : (long)*(const int *)field;
    if (v >= want) break;
    if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT) {
      v = is_size ? (long)*(const size_t *)field : (long)*(const int *)field;
      break;
    }
  }
  pthread_mutex_unlock(&c->mu);
  return v;
}
#define WAIT_EVENTS(c, n) col_wait((c), &(c)->nev, true, (long)(n), 10000)
#define WAIT_INT(c, f, n, ms) col_wait((c), &(c)->f, false, (long)(n), (ms))

static etcd_watch *watch(etcd_client *cl, collector *col, const char *key, bool prefix,
                         int64_t start, bool prev_kv, bool fragment) {
  unsigned char *end = NULL;
  size_t end_len = 0;
  if (prefix) assert_int_equal(etcd_prefix_end(key, strlen(key), &end, &end_len), 0);
  etcd_watch_options o = {.key = key, .key_len = strlen(key), .range_end = end,
                          .range_end_len = end_len, .start_revision = start, .prev_kv = prev_kv,
                          .fragment = fragment};
  keel_error err = {0};
  etcd_watch *w = etcd_watch_start(cl, &o, &col_cb, col, &err);
  free(end);
  if (!w) fail_msg("watch %s: %s", key, err.message);
  return w;
}

/* ------------------------------------------------------------------ tests: pure */

static void test_prefix_end(void **state) {
  (void)state;
  struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
  } cases[] = {
      {"a/", 2, "a0", 2},          {"a", 1, "b", 1},       {"a\xff", 2, "b", 1},
      {"a\xfe\xff", 3, "a\xff", 2}, {"\xff\xff", 2, "", 1}, {"", 0, "", 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    unsigned char *end;
    size_t len;
    assert_int_equal(etcd_prefix_end(cases[i].in, cases[i].in_len, &end, &len), 0);
    assert_int_equal(len, cases[i].out_len);
    assert_memory_equal(end, cases[i].out, len);
    free(end);
  }
}

static void test_endpoints(void **state) {
  testenv_backend *b = B(state);
  keel_error err = {0};
  const char *bad_scheme[] = {"ftp://127.0.0.1:1"};
  etcd_client_options o = {.endpoints = bad_scheme, .nendpoints = 1};
  assert_null(etcd_client_create(&o, &err));
  assert_int_equal(err.code, EINVAL);
  const char *mixed[] = {"http://127.0.0.1:1", "https://127.0.0.1:2"};
  o.endpoints = mixed;
  o.nendpoints = 2;
  assert_null(etcd_client_create(&o, &err));
  assert_int_equal(err.code, EINVAL);
  o.nendpoints = 0;
  assert_null(etcd_client_create(&o, &err));
  /* etcd's URL spelling, with a trailing slash, reaches the server. */
  char url[300];
  snprintf(url, sizeof(url), "http://%s/", b->endpoint);
  const char *eps[] = {url};
  etcd_client *c = client_for(eps, 1);
  put(c, "/t/endpoints/k", "v");
  assert_string_equal(etcd_client_endpoint(c), b->endpoint);
  testenv_client_destroy(c);
}

/* ------------------------------------------------------------------ tests: KV */

static void test_range(void **state) {
  etcd_client *c = B(state)->c;
  put(c, "/t/range/a", "va");
  put(c, "/t/range/b", "vb");
  int64_t rev_c = put(c, "/t/range/c", "vc");
  put(c, "/t/range/d", "vd");
  put(c, "/t/range/e", "ve");
  put(c, "/t/range0", "outside"); /* the prefix's end key itself: excluded */
  int64_t rev_a2 = put(c, "/t/range/a", "va2");

  etcd_range_result r;
  range_prefix(c, "/t/range/", 0, 0, false, false, &r);
  assert_int_equal(r.nkvs, 5);
  assert_int_equal(r.count, 5);
  assert_false(r.more);
  assert_true(r.revision >= rev_a2);
  const char *keys[] = {"/t/range/a", "/t/range/b", "/t/range/c", "/t/range/d", "/t/range/e"};
  for (int i = 0; i < 5; i++) assert_kv(&r.kvs[i], keys[i], NULL);
  assert_kv(&r.kvs[0], "/t/range/a", "va2");
  assert_int_equal(r.kvs[0].version, 2);
  assert_int_equal(r.kvs[0].mod_revision, rev_a2);
  assert_true(r.kvs[0].create_revision < rev_a2);
  assert_int_equal(r.kvs[2].create_revision, rev_c);
  etcd_range_result_clear(&r);
  assert_null(r.kvs);

  range_prefix(c, "/t/range/", 0, 2, false, false, &r); /* limit */
  assert_int_equal(r.nkvs, 2);
  assert_true(r.more);
  assert_int_equal(r.count, 5);
  assert_kv(&r.kvs[1], "/t/range/b", "vb");
  etcd_range_result_clear(&r);

  range_prefix(c, "/t/range/", rev_c, 0, false, false, &r); /* the past */
  assert_int_equal(r.nkvs, 3);
  assert_kv(&r.kvs[0], "/t/range/a", "va");
  assert_int_equal(r.kvs[0].version, 1);
  assert_kv(&r.kvs[2], "/t/range/c", "vc");
  etcd_range_result_clear(&r);

  range_prefix(c, "/t/range/", 0, 0, false, true, &r); /* count_only */
  assert_int_equal(r.nkvs, 0);
  assert_int_equal(r.count, 5);
  etcd_range_result_clear(&r);

  range_prefix(c, "/t/range/", 0, 0, true, false, &r); /* keys_only */
  assert_int_equal(r.nkvs, 5);
  for (int i = 0; i < 5; i++) {
    assert_kv(&r.kvs[i], keys[i], NULL);
    assert_int_equal(r.kvs[i].value_len, 0);
  }
  etcd_range_result_clear(&r);

  keel_error err = {0};
  assert_int_equal(etcd_range(c, "/t/range/b", 10, NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.nkvs, 1);
  assert_kv(&r.kvs[0], "/t/range/b", "vb");
  etcd_range_result_clear(&r);
  assert_int_equal(etcd_range(c, "/t/range/zz", 11, NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.nkvs, 0);
  assert_int_equal(r.count, 0);
  etcd_range_result_clear(&r);
}

/* A Range whose answer adds up past 8 MiB (kube-apiserver lists a whole
 * resource in one Range): the client takes it whole, as etcd's clientv3 does. */
static void test_range_large(void **state) {
  etcd_client *c = B(state)->c;
  enum { N = 150, SIZE = 60000 }; /* each put stays under the stores' request limit */
  char *value = malloc(SIZE + 1);
  assert_non_null(value);
  for (int i = 0; i < N; i++) {
    char key[32];
    snprintf(key, sizeof key, "/t/large/%03d", i);
    memset(value, 'a' + i % 26, SIZE);
    value[SIZE] = '\0';
    put(c, key, value);
  }
  etcd_range_result r;
  range_prefix(c, "/t/large/", 0, 0, false, false, &r);
  assert_int_equal(r.nkvs, N);
  size_t total = 0;
  for (size_t i = 0; i < r.nkvs; i++) {
    assert_int_equal(r.kvs[i].value_len, SIZE);
    assert_int_equal(((const char *)r.kvs[i].value)[SIZE - 1], 'a' + (int)i % 26);
    total += r.kvs[i].value_len;
  }
  assert_true(total > 8u << 20);
  etcd_range_result_clear(&r);
  free(value);
}

static void test_txn_create_if_absent(void **state) {
  etcd_client *c = B(state)->c;
  const char *k = "/t/create/obj";
  etcd_compare absent = {.key = k, .key_len = strlen(k), .target = ETCD_CMP_CREATE,
                         .result = ETCD_CMP_EQUAL, .number = 0};
  etcd_op put1 = {.type = ETCD_OP_PUT, .key = k, .key_len = strlen(k), .value = "v1", .value_len = 2};
  etcd_op get = {.type = ETCD_OP_RANGE, .key = k, .key_len = strlen(k)};
  etcd_txn_result r;
  keel_error err = {0};
  if (etcd_txn(c, &absent, 1, &put1, 1, &get, 1, &r, &err) != 0) fail_msg("%s", err.message);
  assert_true(r.succeeded);
  assert_int_equal(r.nresults, 1);
  assert_int_equal(r.results[0].type, ETCD_OP_PUT);
  assert_int_equal(r.results[0].nprev_kvs, 0);
  int64_t created = r.revision;
  assert_true(created > 0);
  etcd_txn_result_clear(&r);

  etcd_op put2 = put1;
  put2.value = "v2";
  assert_int_equal(etcd_txn(c, &absent, 1, &put2, 1, &get, 1, &r, &err), 0);
  assert_false(r.succeeded); /* it exists: the failure branch read it */
  assert_int_equal(r.nresults, 1);
  assert_int_equal(r.results[0].type, ETCD_OP_RANGE);
  assert_int_equal(r.results[0].range.nkvs, 1);
  assert_kv(&r.results[0].range.kvs[0], k, "v1");
  assert_int_equal(r.results[0].range.kvs[0].create_revision, created);
  assert_int_equal(r.results[0].range.kvs[0].mod_revision, created);
  assert_int_equal(r.revision, created); /* nothing written */
  etcd_txn_result_clear(&r);
}

static void test_txn_update_guarded(void **state) {
  etcd_client *c = B(state)->c;
  const char *k = "/t/update/obj";
  size_t kl = strlen(k);
  int64_t rev1 = put(c, k, "v1");
  etcd_compare guard = {.key = k, .key_len = kl, .target = ETCD_CMP_MOD, .result = ETCD_CMP_EQUAL,
                        .number = rev1};
  etcd_op upd = {.type = ETCD_OP_PUT, .key = k, .key_len = kl, .value = "v2", .value_len = 2, .prev_kv = true};
  etcd_op get = {.type = ETCD_OP_RANGE, .key = k, .key_len = kl};
  etcd_txn_result r;
  keel_error err = {0};
  assert_int_equal(etcd_txn(c, &guard, 1, &upd, 1, &get, 1, &r, &err), 0);
  assert_true(r.succeeded);
  int64_t rev2 = r.revision;
  assert_true(rev2 > rev1);
  assert_int_equal(r.results[0].nprev_kvs, 1);
  assert_kv(&r.results[0].prev_kvs[0], k, "v1");
  etcd_txn_result_clear(&r);

  /* A stale guard fails; the failure branch returns the current pair. This is
   * also the verification of an "outcome unknown" re-send (etcd.h RETRIES):
   * the same txn again fails, and the current value is the one it wrote, at a
   * mod_revision newer than the guard: the first attempt applied, at rev2. */
  assert_int_equal(etcd_txn(c, &guard, 1, &upd, 1, &get, 1, &r, &err), 0);
  assert_false(r.succeeded);
  assert_int_equal(r.results[0].range.nkvs, 1);
  assert_kv(&r.results[0].range.kvs[0], k, "v2");
  assert_int_equal(r.results[0].range.kvs[0].mod_revision, rev2);
  assert_int_equal(r.results[0].range.kvs[0].version, 2);
  etcd_txn_result_clear(&r);

  /* Every compare target and result. */
  etcd_compare all[] = {
      {.key = k, .key_len = kl, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_EQUAL, .value = "v2", .value_len = 2},
      {.key = k, .key_len = kl, .target = ETCD_CMP_VERSION, .result = ETCD_CMP_EQUAL, .number = 2},
      {.key = k, .key_len = kl, .target = ETCD_CMP_MOD, .result = ETCD_CMP_GREATER, .number = rev1},
      {.key = k, .key_len = kl, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_LESS, .number = rev2},
      {.key = k, .key_len = kl, .target = ETCD_CMP_LEASE, .result = ETCD_CMP_EQUAL, .number = 0},
      {.key = k, .key_len = kl, .target = ETCD_CMP_VALUE, .result = ETCD_CMP_NOT_EQUAL, .value = "v1", .value_len = 2},
  };
  assert_int_equal(etcd_txn(c, all, 6, &get, 1, NULL, 0, &r, &err), 0);
  assert_true(r.succeeded);
  etcd_txn_result_clear(&r);
  all[1].number = 3; /* version is 2: the conjunction fails */
  assert_int_equal(etcd_txn(c, all, 6, &get, 1, NULL, 0, &r, &err), 0);
  assert_false(r.succeeded);
  assert_int_equal(r.nresults, 0);
  etcd_txn_result_clear(&r);
}

/* More ops than fit the request's stack buffer; each range result of a
 * read-only txn has its own kvs inside the result's one block. */
static void test_txn_many_ops(void **state) {
  etcd_client *c = B(state)->c;
  enum { N = 40 };
  char keys[N][32], vals[N][16];
  etcd_op puts[N], gets[N];
  etcd_compare absent[N];
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], sizeof(keys[i]), "/t/many/%02d", i);
    snprintf(vals[i], sizeof(vals[i]), "v%d", i);
    puts[i] = (etcd_op){.type = ETCD_OP_PUT, .key = keys[i], .key_len = strlen(keys[i]),
                        .value = vals[i], .value_len = strlen(vals[i])};
    absent[i] = (etcd_compare){.key = keys[i], .key_len = strlen(keys[i]), .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL};
  }
  etcd_txn_result r;
  keel_error err = {0};
  if (etcd_txn(c, absent, N, puts, N, NULL, 0, &r, &err) != 0) fail_msg("%s", err.message);
  assert_true(r.succeeded);
  assert_int_equal(r.nresults, N);
  int64_t rev = r.revision;
  etcd_txn_result_clear(&r);
  for (int i = 0; i < N; i++) {
    /* Every other op a prefix range: results with 0, 1 or many kvs. */
    gets[i] = (etcd_op){.type = ETCD_OP_RANGE, .key = keys[i], .key_len = strlen(keys[i])};
    if (i % 2) {
      gets[i].key_len = strlen("/t/many/");
      gets[i].range_end = "/t/many0";
      gets[i].range_end_len = strlen("/t/many0");
    }
  }
  assert_int_equal(etcd_txn(c, NULL, 0, gets, N, NULL, 0, &r, &err), 0);
  assert_int_equal(r.nresults, N);
  for (int i = 0; i < N; i++) {
    const etcd_range_result *g = &r.results[i].range;
    assert_int_equal(r.results[i].type, ETCD_OP_RANGE);
    if (i % 2) {
      assert_int_equal(g->nkvs, N);
      assert_kv(&g->kvs[N - 1], keys[N - 1], vals[N - 1]);
    } else {
      assert_int_equal(g->nkvs, 1);
      assert_kv(&g->kvs[0], keys[i], vals[i]);
      assert_int_equal(g->kvs[0].mod_revision, rev); /* all written at one revision */
    }
  }
  etcd_txn_result_clear(&r);
}

static void test_delete_prev_kv(void **state) {
  etcd_client *c = B(state)->c;
  put(c, "/t/del/a", "1");
  put(c, "/t/del/b", "2");
  put(c, "/t/del/c", "3");
  unsigned char *end;
  size_t end_len;
  assert_int_equal(etcd_prefix_end("/t/del/", 7, &end, &end_len), 0);
  etcd_op del = {.type = ETCD_OP_DELETE, .key = "/t/del/", .key_len = 7, .range_end = end,
                 .range_end_len = end_len, .prev_kv = true};
  etcd_txn_result r;
  keel_error err = {0};
  assert_int_equal(etcd_txn(c, NULL, 0, &del, 1, NULL, 0, &r, &err), 0);
  free(end);
  assert_true(r.succeeded);
  assert_int_equal(r.results[0].type, ETCD_OP_DELETE);
  assert_int_equal(r.results[0].deleted, 3);
  assert_int_equal(r.results[0].nprev_kvs, 3);
  assert_kv(&r.results[0].prev_kvs[0], "/t/del/a", "1");
  assert_kv(&r.results[0].prev_kvs[2], "/t/del/c", "3");
  etcd_txn_result_clear(&r);

  int64_t deleted = -1, rev = 0;
  int64_t put_rev = put(c, "/t/del/x", "x");
  assert_int_equal(etcd_delete(c, "/t/del/x", 8, NULL, 0, &deleted, &rev, &err), 0);
  assert_int_equal(deleted, 1);
  assert_int_equal(rev, put_rev + 1);
  assert_int_equal(etcd_delete(c, "/t/del/x", 8, NULL, 0, &deleted, &rev, &err), 0);
  assert_int_equal(deleted, 0);
  assert_int_equal(rev, put_rev + 1); /* nothing deleted: no new revision */
}

static void test_lease(void **state) {
  etcd_client *c = B(state)->c;
  keel_error err = {0};
  int64_t id = 0, ttl = 0;
  if (etcd_lease_grant_ttl(c, 60, &id, &ttl, &err) != 0) fail_msg("%s", err.message);
  assert_true(id != 0);
  assert_true(ttl >= 60);
  assert_int_equal(etcd_put(c, "/t/lease/k", 10, "v", 1, id, NULL, &err), 0);
  etcd_range_result r;
  assert_int_equal(etcd_range(c, "/t/lease/k", 10, NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.nkvs, 1);
  assert_int_equal(r.kvs[0].lease, id);
  etcd_range_result_clear(&r);
  assert_int_equal(etcd_lease_revoke(c, id, &err), 0);
  assert_int_equal(etcd_range(c, "/t/lease/k", 10, NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.nkvs, 0); /* revoking deleted the key */
  etcd_range_result_clear(&r);
  assert_int_equal(etcd_lease_revoke(c, id, &err), -ENOENT);
  assert_non_null(strstr(err.message, "etcdserver: requested lease not found"));
  int64_t id2 = 0;
  assert_int_equal(etcd_lease_grant(c, 30, &id2, &err), 0);
  assert_true(id2 != 0 && id2 != id);
  assert_int_equal(etcd_lease_revoke(c, id2, &err), 0);
}

static void test_errors(void **state) {
  etcd_client *c = B(state)->c;
  keel_error err = {0};
  etcd_range_result r;
  assert_int_equal(etcd_range(c, "", 0, NULL, 0, 0, 0, false, false, &r, &err), -EINVAL);
  assert_non_null(strstr(err.message, "etcdserver: key is not provided"));
  assert_null(r.kvs);

  const char *k = "/t/errors/dup";
  etcd_op two[] = {{.type = ETCD_OP_PUT, .key = k, .key_len = strlen(k), .value = "1", .value_len = 1},
                   {.type = ETCD_OP_PUT, .key = k, .key_len = strlen(k), .value = "2", .value_len = 1}};
  etcd_txn_result t;
  assert_int_equal(etcd_txn(c, NULL, 0, two, 2, NULL, 0, &t, &err), -EINVAL);
  assert_non_null(strstr(err.message, "etcdserver: duplicate key given in txn request"));
  assert_non_null(strstr(err.message, "etcd Txn /t/errors/dup:"));

  size_t big = MAX_REQUEST_BYTES + 1000;
  char *v = calloc(1, big);
  assert_int_equal(etcd_put(c, "/t/errors/big", 13, v, big, 0, NULL, &err), -E2BIG);
  assert_non_null(strstr(err.message, "etcdserver: request is too large"));
  free(v);

  etcd_op bad = {.type = (etcd_op_type)42, .key = k, .key_len = strlen(k)};
  assert_int_equal(etcd_txn(c, NULL, 0, &bad, 1, NULL, 0, &t, &err), -EINVAL);
}

static void test_compaction(void **state) {
  etcd_client *c = B(state)->c;
  const char *k = "/t/compact/k";
  int64_t r1 = put(c, k, "v1");
  int64_t r2 = put(c, k, "v2");
  put(c, k, "v3");
  keel_error err = {0};
  if (etcd_compact(c, r2, true, &err) != 0) fail_msg("%s", err.message);
  etcd_range_result r;
  assert_int_equal(etcd_range(c, k, strlen(k), NULL, 0, r1, 0, false, false, &r, &err),
                   -ETCD_ECOMPACTED);
  assert_int_equal(err.code, ETCD_ECOMPACTED);
  assert_non_null(strstr(err.message, "etcdserver: mvcc: required revision has been compacted"));
  assert_int_equal(etcd_range(c, k, strlen(k), NULL, 0, r2, 0, false, false, &r, &err), 0);
  assert_kv(&r.kvs[0], k, "v2"); /* the compaction revision itself is kept */
  etcd_range_result_clear(&r);
  int64_t future = current_revision(c) + 1000;
  assert_int_equal(etcd_range(c, k, strlen(k), NULL, 0, future, 0, false, false, &r, &err),
                   -ETCD_EFUTURE);
  assert_non_null(strstr(err.message, "etcdserver: mvcc: required revision is a future revision"));
  /* Compacting again at the same revision: already compacted. */
  assert_int_equal(etcd_compact(c, r2, false, &err), -ETCD_ECOMPACTED);
}

/* ------------------------------------------------------------------ tests: async */

typedef struct async_state {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, succeeded, failed, errors, winners;
  int range_ok;
  char race_winner[32];
  char loser_saw[32];
  bool loser_mismatch;
  int last_code;
} async_state;

static void async_wait(async_state *a, int want, int ms) {
  int64_t deadline = now_ms() + ms;
  pthread_mutex_lock(&a->mu);
  while (a->done < want && now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&a->cv, &a->mu, &ts);
  }
  pthread_mutex_unlock(&a->mu);
}

typedef struct race_ctx {
  async_state *a;
  char value[32];
} race_ctx;

static void on_own_txn(void *arg, etcd_txn_result *r, const keel_error *err) {
  async_state *a = arg;
  pthread_mutex_lock(&a->mu);
  if (!r) {
    a->errors++;
    a->last_code = err->code;
  } else if (r->succeeded && r->nresults == 1 && r->revision > 0) {
    a->succeeded++;
  } else {
    a->failed++;
  }
  a->done++;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (r) etcd_txn_result_clear(r);
}

static void on_race_txn(void *arg, etcd_txn_result *r, const keel_error *err) {
  race_ctx *rc = arg;
  async_state *a = rc->a;
  pthread_mutex_lock(&a->mu);
  if (!r) {
    a->errors++;
    a->last_code = err->code;
  } else if (r->succeeded) {
    a->winners++;
    snprintf(a->race_winner, sizeof(a->race_winner), "%s", rc->value);
  } else if (r->nresults == 1 && r->results[0].range.nkvs == 1) {
    const etcd_kv *kv = &r->results[0].range.kvs[0];
    snprintf(a->loser_saw, sizeof(a->loser_saw), "%.*s", (int)kv->value_len, (const char *)kv->value);
  } else {
    a->loser_mismatch = true;
  }
  a->done++;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  /* The result may also be kept: move it out, clear it later. */
  if (r) {
    etcd_txn_result moved = *r;
    etcd_txn_result_clear(&moved);
  }
  free(rc);
}

static void on_range(void *arg, etcd_range_result *r, const keel_error *err) {
  async_state *a = arg;
  pthread_mutex_lock(&a->mu);
  if (r && r->nkvs == 1) a->range_ok++;
  else a->errors++;
  if (!r) a->last_code = err->code;
  a->done++;
  pthread_cond_broadcast(&a->cv);
  pthread_mutex_unlock(&a->mu);
  if (r) etcd_range_result_clear(r);
}

#define ASYNC_THREADS 8
#define ASYNC_PER_THREAD 64

typedef struct caller {
  etcd_client *c;
  async_state *a;
  int id;
  int start_errors;
} caller;

static void *caller_main(void *arg) {
  caller *cl = arg;
  char key[64], val[32];
  for (int j = 0; j < ASYNC_PER_THREAD; j++) {
    snprintf(key, sizeof(key), "/t/async/%d/%03d", cl->id, j);
    snprintf(val, sizeof(val), "t%d-%d", cl->id, j);
    etcd_compare absent = {.key = key, .key_len = strlen(key), .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
    etcd_op p = {.type = ETCD_OP_PUT, .key = key, .key_len = strlen(key), .value = val, .value_len = strlen(val)};
    if (etcd_txn_async(cl->c, &absent, 1, &p, 1, NULL, 0, on_own_txn, cl->a, NULL) != 0) cl->start_errors++;
    /* Buffers are reused at once: the call must not keep them. */
    memset(key, 'X', sizeof(key) - 1);
    memset(val, 'Y', sizeof(val) - 1);
  }
  const char *race = "/t/async/race";
  race_ctx *rc = calloc(1, sizeof(*rc));
  rc->a = cl->a;
  snprintf(rc->value, sizeof(rc->value), "winner-%d", cl->id);
  etcd_compare absent = {.key = race, .key_len = strlen(race), .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
  etcd_op p = {.type = ETCD_OP_PUT, .key = race, .key_len = strlen(race), .value = rc->value, .value_len = strlen(rc->value)};
  etcd_op get = {.type = ETCD_OP_RANGE, .key = race, .key_len = strlen(race)};
  if (etcd_txn_async(cl->c, &absent, 1, &p, 1, &get, 1, on_race_txn, rc, NULL) != 0) {
    cl->start_errors++;
    free(rc);
  }
  return NULL;
}

static void test_async_concurrent(void **state) {
  etcd_client *c = B(state)->c;
  async_state a = {0};
  pthread_mutex_init(&a.mu, NULL);
  pthread_cond_init(&a.cv, NULL);
  pthread_t th[ASYNC_THREADS];
  caller cl[ASYNC_THREADS];
  int64_t t0 = now_ms();
  for (int i = 0; i < ASYNC_THREADS; i++) {
    cl[i] = (caller){.c = c, .a = &a, .id = i};
    assert_int_equal(pthread_create(&th[i], NULL, caller_main, &cl[i]), 0);
  }
  for (int i = 0; i < ASYNC_THREADS; i++) {
    pthread_join(th[i], NULL);
    assert_int_equal(cl[i].start_errors, 0);
  }
  const int total = ASYNC_THREADS * (ASYNC_PER_THREAD + 1);
  async_wait(&a, total, 30000);
  print_message("  %s: %d async txns from %d threads in %lld ms\n", B(state)->name, total,
                ASYNC_THREADS, (long long)(now_ms() - t0));
  assert_int_equal(a.done, total);
  assert_int_equal(a.errors, 0);
  assert_int_equal(a.succeeded, ASYNC_THREADS * ASYNC_PER_THREAD);
  assert_int_equal(a.failed, 0);
  assert_int_equal(a.winners, 1);
  assert_false(a.loser_mismatch);
  assert_string_equal(a.loser_saw, a.race_winner); /* losers read the winner's value */

  etcd_range_result r;
  range_prefix(c, "/t/async/", 0, 0, false, true, &r);
  assert_int_equal(r.count, ASYNC_THREADS * ASYNC_PER_THREAD + 1);
  etcd_range_result_clear(&r);

  /* Async ranges, and an async error. */
  a.done = 0;
  for (int i = 0; i < 16; i++) {
    char key[64];
    snprintf(key, sizeof(key), "/t/async/%d/%03d", i % ASYNC_THREADS, i);
    assert_int_equal(etcd_range_async(c, key, strlen(key), NULL, 0, 0, 0, false, false, on_range, &a, NULL), 0);
  }
  async_wait(&a, 16, 10000);
  assert_int_equal(a.range_ok, 16);
  a.done = 0;
  assert_int_equal(etcd_range_async(c, "", 0, NULL, 0, 0, 0, false, false, on_range, &a, NULL), 0);
  async_wait(&a, 1, 10000);
  assert_int_equal(a.done, 1);
  assert_int_equal(a.last_code, EINVAL);
  pthread_mutex_destroy(&a.mu);
  pthread_cond_destroy(&a.cv);
}

/* ------------------------------------------------------------------ tests: watch */

static void test_watch_history(void **state) {
  etcd_client *c = B(state)->c;
  const char *k = "/t/whist/k";
  int64_t r1 = put(c, k, "v1");
  int64_t r2 = put(c, k, "v2");
  int64_t r3 = 0;
  assert_int_equal(etcd_delete(c, k, strlen(k), NULL, 0, NULL, &r3, NULL), 0);
  collector col;
  col_init(&col);
  etcd_watch *w = watch(c, &col, k, false, r1, false, false);
  assert_int_equal(WAIT_EVENTS(&col, 3), 3);
  etcd_watch_stop(w);
  assert_int_equal(col.ev[0].type, 0);
  assert_string_equal(col.ev[0].value, "v1");
  assert_int_equal(col.ev[0].mod_revision, r1);
  assert_int_equal(col.ev[1].type, 0);
  assert_string_equal(col.ev[1].value, "v2");
  assert_int_equal(col.ev[1].mod_revision, r2);
  assert_int_equal(col.ev[2].type, 1);
  assert_string_equal(col.ev[2].key, k);
  assert_int_equal(col.ev[2].mod_revision, r3);
  assert_int_equal(col.ends, 0); /* stop does not report an end */
  col_free(&col);
}

static void test_watch_prefix_live(void **state) {
  etcd_client *c = B(state)->c;
  int64_t start = current_revision(c) + 1;
  collector col;
  col_init(&col);
  etcd_watch *w = watch(c, &col, "/t/live/", true, start, true, false);
  put(c, "/t/live/a", "v1");
  put(c, "/t/other", "x"); /* outside the prefix */
  put(c, "/t/live0", "x"); /* the prefix end: outside */
  put(c, "/t/live/a", "v2");
  assert_int_equal(etcd_delete(c, "/t/live/a", 9, NULL, 0, NULL, NULL, NULL), 0);
  assert_int_equal(WAIT_EVENTS(&col, 3), 3);
  sleep_ms(100);
  etcd_watch_stop(w);
  assert_int_equal(col.nev, 3);
  for (int i = 0; i < 3; i++) assert_string_equal(col.ev[i].key, "/t/live/a");
  assert_int_equal(col.ev[0].type, 0);
  assert_string_equal(col.ev[0].value, "v1");
  assert_false(col.ev[0].has_prev); /* a creation has no previous pair */
  assert_int_equal(col.ev[1].type, 0);
  assert_true(col.ev[1].has_prev);
  assert_string_equal(col.ev[1].prev_value, "v1");
  assert_int_equal(col.ev[2].type, 1);
  assert_true(col.ev[2].has_prev);
  assert_string_equal(col.ev[2].prev_value, "v2");
  col_free(&col);
}

static void test_watch_progress(void **state) {
  etcd_client *c = B(state)->c;
  int64_t rev = current_revision(c);
  collector col;
  col_init(&col);
  etcd_watch *w = watch(c, &col, "/t/progress/", true, rev + 1, false, false);
  /* etcd answers a progress request only when every watcher of the stream is
   * synced; ask until one arrives. */
  for (int i = 0; i < 20 && WAIT_INT(&col, progress, 1, 0) < 1; i++) {
    assert_int_equal(etcd_watch_request_progress(w), 0);
    WAIT_INT(&col, progress, 1, 500);
  }
  assert_true(col.progress >= 1);
  assert_true(col.progress_rev >= rev);
  int64_t later = put(c, "/t/elsewhere", "x");
  int seen = col.progress;
  for (int i = 0; i < 20; i++) {
    assert_int_equal(etcd_watch_request_progress(w), 0);
    WAIT_INT(&col, progress, seen + 1, 500);
    pthread_mutex_lock(&col.mu);
    bool ok = col.progress_rev >= later;
    seen = col.progress;
    pthread_mutex_unlock(&col.mu);
    if (ok) break;
  }
  assert_true(col.progress_rev >= later);
  assert_int_equal(col.nev, 0);
  etcd_watch_stop(w);
  col_free(&col);
}

static void test_watch_fragment(void **state) {
  etcd_client *c = B(state)->c;
  /* 12 values of 60000 bytes deleted in one revision with prev_kv: ~720 KB of
   * events, above both servers' fragment size (65536 + 512 KiB). */
  enum { N = 12, SIZE = 60000 };
  char *v = malloc(SIZE + 1);
  char key[32];
  for (int i = 0; i < N; i++) {
    memset(v, 'a' + i, SIZE);
    v[SIZE] = 0;
    snprintf(key, sizeof(key), "/t/frag/%02d", i);
    put(c, key, v);
  }
  free(v);
  int64_t start = current_revision(c) + 1;
  collector col;
  col_init(&col);
  etcd_watch *w = watch(c, &col, "/t/frag/", true, start, true, true);
  unsigned char *end;
  size_t end_len;
  assert_int_equal(etcd_prefix_end("/t/frag/", 8, &end, &end_len), 0);
  int64_t deleted = 0, rev = 0;
  assert_int_equal(etcd_delete(c, "/t/frag/", 8, end, end_len, &deleted, &rev, NULL), 0);
  free(end);
  assert_int_equal(deleted, N);
  assert_int_equal(WAIT_EVENTS(&col, N), N);
  sleep_ms(100);
  etcd_watch_stop(w);
  assert_int_equal(col.batches, 1); /* the fragments arrived joined */
  assert_int_equal(col.last_batch_n, N);
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof(key), "/t/frag/%02d", i);
    assert_string_equal(col.ev[i].key, key);
    assert_int_equal(col.ev[i].type, 1);
    assert_int_equal(col.ev[i].mod_revision, rev);
    assert_int_equal(col.ev[i].prev_value_len, SIZE);
    assert_int_equal(col.ev[i].prev_value[0], 'a' + i);
    assert_int_equal(col.ev[i].prev_value[SIZE - 1], 'a' + i);
  }
  col_free(&col);
}

static void test_watch_compacted(void **state) {
  etcd_client *c = B(state)->c;
  const char *k = "/t/wcompact/k";
  int64_t r1 = put(c, k, "a");
  int64_t r2 = put(c, k, "b");
  keel_error err = {0};
  if (etcd_compact(c, r2, true, &err) != 0) fail_msg("%s", err.message);

  collector col;
  col_init(&col);
  col.stop_in_end = true; /* on_end stops (and so frees) the watch itself */
  etcd_watch *w = watch(c, &col, k, false, r1, false, false);
  pthread_mutex_lock(&col.mu);
  col.w = w;
  bool pending = col.stop_pending;
  pthread_mutex_unlock(&col.mu);
  if (pending) etcd_watch_stop(w);
  assert_int_equal(WAIT_INT(&col, ends, 1, 10000), 1);
  sleep_ms(100);
  assert_int_equal(col.ends, 1);
  assert_int_equal(col.compact_rev, r2);
  assert_int_equal(col.end_code, ETCD_ECOMPACTED);
  assert_non_null(strstr(col.end_msg, "required revision has been compacted"));
  assert_int_equal(col.nev, 0);
  col_free(&col);

  /* At the compacted revision itself: served. */
  col_init(&col);
  w = watch(c, &col, k, false, r2, false, false);
  assert_int_equal(WAIT_EVENTS(&col, 1), 1);
  etcd_watch_stop(w);
  assert_string_equal(col.ev[0].value, "b");
  assert_int_equal(col.ends, 0);
  col_free(&col);
}

typedef struct writer {
  etcd_client *c;
  int n;
  atomic_bool stop;
} writer;

static void *writer_main(void *arg) {
  writer *wr = arg;
  char key[48];
  for (int i = 0; i < wr->n && !atomic_load(&wr->stop); i++) {
    snprintf(key, sizeof(key), "/t/wrace/%04d", i);
    if (etcd_put(wr->c, key, strlen(key), "v", 1, 0, NULL, NULL) != 0) break;
  }
  return NULL;
}

/* Stopping a watch while its events flow: once stop returns, no callback runs
 * (and ASan sees no use of the freed watch). */
static void test_watch_stop_race(void **state) {
  etcd_client *c = B(state)->c;
  int64_t start = current_revision(c) + 1;
  writer wr = {.c = c, .n = 400};
  pthread_t th;
  assert_int_equal(pthread_create(&th, NULL, writer_main, &wr), 0);
  for (int round = 0; round < 4; round++) {
    collector col;
    col_init(&col);
    etcd_watch *w = watch(c, &col, "/t/wrace/", true, start, true, false);
    WAIT_EVENTS(&col, 5 + 20 * round);
    assert_int_equal(etcd_watch_request_progress(w), 0);
    etcd_watch_stop(w);
    atomic_store(&col.stopped, true);
    sleep_ms(30);
    assert_int_equal(atomic_load(&col.after_stop), 0);
    assert_true(col.nev >= 5);
    for (size_t i = 1; i < col.nev; i++) assert_true(col.ev[i].mod_revision > col.ev[i - 1].mod_revision);
    col_free(&col);
  }
  atomic_store(&wr.stop, true);
  pthread_join(th, NULL);
}

/* Destroying a client with async calls in flight: every callback has run,
 * with a result or ECANCELED, by the time destroy returns. */
static void test_destroy_in_flight(void **state) {
  testenv_backend *b = B(state);
  const char *eps[] = {b->endpoint};
  etcd_client *c = client_for(eps, 1);
  async_state a = {0};
  pthread_mutex_init(&a.mu, NULL);
  pthread_cond_init(&a.cv, NULL);
  enum { N = 200 };
  for (int i = 0; i < N; i++) {
    char key[48];
    snprintf(key, sizeof(key), "/t/inflight/%03d", i);
    etcd_op p = {.type = ETCD_OP_PUT, .key = key, .key_len = strlen(key), .value = "v", .value_len = 1};
    if (i % 2) assert_int_equal(etcd_txn_async(c, NULL, 0, &p, 1, NULL, 0, on_own_txn, &a, NULL), 0);
    else assert_int_equal(etcd_range_async(c, key, strlen(key), NULL, 0, 0, 0, false, false, on_range, &a, NULL), 0);
  }
  testenv_client_destroy(c);
  pthread_mutex_lock(&a.mu);
  int done = a.done, errors = a.errors;
  pthread_mutex_unlock(&a.mu);
  assert_int_equal(done, N);
  print_message("  %s: %d of %d async calls canceled by destroy\n", b->name, errors, N);
  if (errors) assert_int_equal(a.last_code, ECANCELED);
  pthread_mutex_destroy(&a.mu);
  pthread_cond_destroy(&a.cv);
}

/* ------------------------------------------------------------------ tests: failover */

static void test_failover(void **state) {
  testenv_backend *b = B(state);
  char dead[64], live[300];
  snprintf(dead, sizeof(dead), "http://127.0.0.1:%d", b->dead_port);
  snprintf(live, sizeof(live), "http://%s", b->endpoint);
  const char *eps[] = {dead, live};
  keel_error err = {0};

  /* A write (never retried once sent) still goes through: the dead endpoint
   * refused the connection, so nothing was sent. */
  etcd_client *c = client_for(eps, 2);
  int64_t rev = 0;
  if (etcd_put(c, "/t/failover/put", 15, "v", 1, 0, &rev, &err) != 0) fail_msg("%s", err.message);
  assert_string_equal(etcd_client_endpoint(c), b->endpoint);
  testenv_client_destroy(c);

  c = client_for(eps, 2); /* a read: retried by common/rpc */
  etcd_range_result r;
  if (etcd_range(c, "/t/failover/put", 15, NULL, 0, 0, 0, false, false, &r, &err) != 0)
    fail_msg("%s", err.message);
  assert_int_equal(r.nkvs, 1);
  assert_int_equal(r.kvs[0].mod_revision, rev);
  etcd_range_result_clear(&r);
  testenv_client_destroy(c);

  c = client_for(eps, 2); /* an async txn */
  async_state a = {0};
  pthread_mutex_init(&a.mu, NULL);
  pthread_cond_init(&a.cv, NULL);
  etcd_op p = {.type = ETCD_OP_PUT, .key = "/t/failover/txn", .key_len = 15, .value = "v", .value_len = 1};
  assert_int_equal(etcd_txn_async(c, NULL, 0, &p, 1, NULL, 0, on_own_txn, &a, &err), 0);
  async_wait(&a, 1, 10000);
  assert_int_equal(a.succeeded, 1);
  testenv_client_destroy(c);

  c = client_for(eps, 2); /* a watch */
  collector col;
  col_init(&col);
  int64_t start = current_revision(b->c) + 1;
  etcd_watch *w = watch(c, &col, "/t/failover/w", false, start, false, false);
  put(b->c, "/t/failover/w", "seen");
  assert_int_equal(WAIT_EVENTS(&col, 1), 1);
  assert_int_equal(col.ends, 0);
  etcd_watch_stop(w);
  col_free(&col);
  testenv_client_destroy(c);

  /* Nothing reachable: ECONNREFUSED (nothing was sent), fast. */
  const char *only_dead[] = {dead};
  c = client_for(only_dead, 1);
  int64_t t0 = now_ms();
  assert_int_equal(etcd_range(c, "/k", 2, NULL, 0, 0, 0, false, false, &r, &err), -ECONNREFUSED);
  assert_non_null(strstr(err.message, "failed to connect"));
  assert_int_equal(etcd_put(c, "/k", 2, "v", 1, 0, NULL, &err), -ECONNREFUSED);
  assert_true(now_ms() - t0 < 4000);
  a.done = 0;
  a.errors = 0;
  assert_int_equal(etcd_txn_async(c, NULL, 0, &p, 1, NULL, 0, on_own_txn, &a, &err), 0);
  async_wait(&a, 1, 10000);
  assert_int_equal(a.errors, 1);
  assert_int_equal(a.last_code, ECONNREFUSED);
  col_init(&col);
  w = watch(c, &col, "/k", false, 0, false, false);
  assert_int_equal(WAIT_INT(&col, ends, 1, 10000), 1);
  assert_int_equal(col.end_code, ECONNREFUSED);
  etcd_watch_stop(w);
  col_free(&col);
  testenv_client_destroy(c);
  pthread_mutex_destroy(&a.mu);
  pthread_cond_destroy(&a.cv);
}

/* ------------------------------------------------------------------ main */

#define T(f) cmocka_unit_test_teardown(f, teardown_test)
#define TABLE                                                                                \
  {                                                                                          \
    T(test_prefix_end), T(test_endpoints), T(test_range), T(test_range_large),              \
        T(test_txn_create_if_absent),                                                        \
        T(test_txn_update_guarded), T(test_txn_many_ops), T(test_delete_prev_kv),            \
        T(test_lease), T(test_errors), T(test_watch_history), T(test_watch_prefix_live),     \
        T(test_watch_progress), T(test_watch_fragment), T(test_compaction),                  \
        T(test_watch_compacted), T(test_watch_stop_race), T(test_failover),                  \
        T(test_async_concurrent), T(test_destroy_in_flight),                                 \
  }

int main(int argc, char **argv) {
  if (argc < 2 || !realpath(argv[1], g_store_bin)) {
    fprintf(stderr, "usage: %s KEEL_STORE_BIN\n", argv[0]);
    return 2;
  }
  testenv_configure(g_store_bin, ETCD_BIN, MAX_REQUEST_BYTES);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest keel[] = TABLE;
  const struct CMUnitTest etcd[] = TABLE;
  int failed = cmocka_run_group_tests_name("keel-store", keel, testenv_group_setup_keel_store,
                                           testenv_group_teardown);
  failed += cmocka_run_group_tests_name("etcd", etcd, testenv_group_setup_etcd,
                                        testenv_group_teardown);
  return failed ? 1 : 0;
}
