/* common/metrics/metrics_test.c — golden renders, escaping, registration rules,
 * callbacks and lock-free updates from many threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"
#include "common/metrics/metrics.h"

static int setup_registry(void **state) {
  *state = metrics_registry_create();
  return *state ? 0 : -1;
}

static int teardown_registry(void **state) {
  metrics_registry_destroy(*state);
  return 0;
}

static void assert_render(metrics_registry *reg, const char *want) {
  size_t len = 12345;
  cleanup_free char *got = metrics_render(reg, &len);
  assert_non_null(got);
  assert_string_equal(got, want);
  assert_int_equal(len, strlen(want));
}

static void test_counter_golden(void **state) {
  metrics_registry *reg = *state;
  metric_family *f = metrics_counter(reg, "keel_rpc_server_handled_total",
                                     "RPCs completed, by method and code.", 2, "method", "code");
  assert_non_null(f);
  metric *ok = metric_child(f, "/keel.echo.v1.Echo/Echo", "OK");
  metric *nf = metric_child(f, "/keel.echo.v1.Echo/Echo", "NotFound");
  assert_ptr_equal(metric_child(f, "/keel.echo.v1.Echo/Echo", "OK"), ok);
  metric_inc(ok);
  metric_inc(ok);
  metric_add(nf, 3);
  metric_add(nf, -1); /* counters never go down */
  metric_add(nf, NAN);
  metric *plain = metric_child(metrics_counter(reg, "a_total", "Plain.", 0));
  metric_add(plain, 1.5);
  metric_inc(plain);
  assert_true(metric_value(plain) == 2.5);
  assert_render(reg,
                "# HELP a_total Plain.\n"
                "# TYPE a_total counter\n"
                "a_total 2.5\n"
                "# HELP keel_rpc_server_handled_total RPCs completed, by method and code.\n"
                "# TYPE keel_rpc_server_handled_total counter\n"
                "keel_rpc_server_handled_total{method=\"/keel.echo.v1.Echo/Echo\",code=\"OK\"} 2\n"
                "keel_rpc_server_handled_total{method=\"/keel.echo.v1.Echo/Echo\","
                "code=\"NotFound\"} 3\n");
}

static void test_unlabeled_renders_zero_and_unused_labeled_is_omitted(void **state) {
  metrics_registry *reg = *state;
  assert_non_null(metrics_gauge(reg, "z_gauge", "", 0));
  assert_non_null(metrics_counter(reg, "y_total", "Never used.", 1, "kind"));
  assert_render(reg, "# TYPE z_gauge gauge\nz_gauge 0\n");
}

static void test_escaping(void **state) {
  metrics_registry *reg = *state;
  metric_family *f = metrics_gauge(reg, "esc", "Back\\slash and\nnewline, \"quotes\" kept.", 1,
                                   "path");
  metric_set(metric_child(f, "C:\\dir\n\"x\""), 1);
  assert_render(reg,
                "# HELP esc Back\\\\slash and\\nnewline, \"quotes\" kept.\n"
                "# TYPE esc gauge\n"
                "esc{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1\n");
}

static void test_gauge_number_formats(void **state) {
  metrics_registry *reg = *state;
  metric_family *f = metrics_gauge(reg, "g", "", 1, "v");
  metric_set(metric_child(f, "half"), 0.5);
  metric_set(metric_child(f, "tenth"), 0.1);
  metric_set(metric_child(f, "neg"), -42);
  metric_set(metric_child(f, "big"), 9007199254740992.0);
  metric_set(metric_child(f, "bigger"), 1e300);
  metric_set(metric_child(f, "tiny"), 1e-7);
  metric_set(metric_child(f, "third"), 1.0 / 3);
  metric_set(metric_child(f, "nan"), NAN);
  metric_set(metric_child(f, "inf"), INFINITY);
  metric_set(metric_child(f, "ninf"), -INFINITY);
  metric *m = metric_child(f, "moved");
  metric_inc(m);
  metric_add(m, -3.25);
  assert_render(reg,
                "# TYPE g gauge\n"
                "g{v=\"half\"} 0.5\n"
                "g{v=\"tenth\"} 0.1\n"
                "g{v=\"neg\"} -42\n"
                "g{v=\"big\"} 9007199254740992\n"
                "g{v=\"bigger\"} 1e+300\n"
                "g{v=\"tiny\"} 1e-07\n"
                "g{v=\"third\"} 0.3333333333333333\n"
                "g{v=\"nan\"} NaN\n"
                "g{v=\"inf\"} +Inf\n"
                "g{v=\"ninf\"} -Inf\n"
                "g{v=\"moved\"} -2.25\n");
}

static void test_histogram_golden(void **state) {
  metrics_registry *reg = *state;
  static const double bounds[] = {0.5, 1, 2.5};
  metric_family *f = metrics_histogram(reg, "keel_disk_seconds", "Disk latency.", bounds, 3, 1,
                                       "op");
  metric *m = metric_child(f, "fsync");
  const double obs[] = {0.25, 0.5, 0.5, 2, 4}; /* 0.5 lands in le="0.5": bounds are inclusive */
  for (size_t i = 0; i < KEEL_ARRAY_LEN(obs); i++) metric_observe(m, obs[i]);
  metric_inc(m); /* not a histogram operation: ignored */
  assert_true(metric_value(m) == 5);
  metric *bare = metric_child(metrics_histogram(reg, "h", "", NULL, 0, 0));
  metric_observe(bare, 7);
  assert_render(reg,
                "# TYPE h histogram\n"
                "h_bucket{le=\"+Inf\"} 1\n"
                "h_sum 7\n"
                "h_count 1\n"
                "# HELP keel_disk_seconds Disk latency.\n"
                "# TYPE keel_disk_seconds histogram\n"
                "keel_disk_seconds_bucket{op=\"fsync\",le=\"0.5\"} 3\n"
                "keel_disk_seconds_bucket{op=\"fsync\",le=\"1\"} 3\n"
                "keel_disk_seconds_bucket{op=\"fsync\",le=\"2.5\"} 4\n"
                "keel_disk_seconds_bucket{op=\"fsync\",le=\"+Inf\"} 5\n"
                "keel_disk_seconds_sum{op=\"fsync\"} 7.25\n"
                "keel_disk_seconds_count{op=\"fsync\"} 5\n");
}

static void test_latency_buckets(void **state) {
  metrics_registry *reg = *state;
  assert_int_equal(metrics_latency_buckets_len, 16);
  assert_true(metrics_latency_buckets[0] == 0.0001);
  assert_true(metrics_latency_buckets[metrics_latency_buckets_len - 1] == 10);
  metric *m = metric_child(metrics_histogram(reg, "lat_seconds", "", metrics_latency_buckets,
                                             metrics_latency_buckets_len, 0));
  metric_observe(m, 0.003);
  cleanup_free char *out = metrics_render(reg, NULL);
  assert_non_null(strstr(out, "lat_seconds_bucket{le=\"0.0001\"} 0\n"));
  assert_non_null(strstr(out, "lat_seconds_bucket{le=\"0.00025\"} 0\n"));
  assert_non_null(strstr(out, "lat_seconds_bucket{le=\"0.0025\"} 0\n"));
  assert_non_null(strstr(out, "lat_seconds_bucket{le=\"0.005\"} 1\n"));
  assert_non_null(strstr(out, "lat_seconds_bucket{le=\"10\"} 1\n"));
  assert_non_null(strstr(out, "lat_seconds_sum 0.003\n"));
}

static double call_count_fn(void *arg) {
  int *calls = arg;
  return ++*calls;
}

static void count_hook(void *arg) {
  int *calls = arg;
  ++*calls;
}

static void test_reregistration(void **state) {
  metrics_registry *reg = *state;
  static const double b1[] = {1, 2}, b2[] = {1, 3}, b1_inf[] = {1, 2, INFINITY};
  metric_family *c = metrics_counter(reg, "c_total", "C.", 1, "a");
  assert_ptr_equal(metrics_counter(reg, "c_total", "Other help is fine.", 1, "a"), c);
  assert_null(metrics_counter(reg, "c_total", "C.", 1, "b"));
  assert_null(metrics_counter(reg, "c_total", "C.", 2, "a", "b"));
  assert_null(metrics_counter(reg, "c_total", "C.", 0));
  assert_null(metrics_gauge(reg, "c_total", "C.", 1, "a"));
  metric_family *h = metrics_histogram(reg, "h", "", b1, 2, 0);
  assert_ptr_equal(metrics_histogram(reg, "h", "", b1_inf, 3, 0), h);
  assert_null(metrics_histogram(reg, "h", "", b2, 2, 0));
  assert_non_null(metrics_gauge(reg, "g", "", 0));
  int calls = 0;
  assert_null(metrics_gauge_func(reg, "g", "", call_count_fn, &calls));
}

static void test_invalid_names(void **state) {
  metrics_registry *reg = *state;
  static const double descending[] = {2, 1}, dup[] = {1, 1}, nan[] = {NAN};
  assert_null(metrics_counter(reg, NULL, "", 0));
  assert_null(metrics_counter(reg, "", "", 0));
  assert_null(metrics_counter(reg, "1abc", "", 0));
  assert_null(metrics_counter(reg, "a-b", "", 0));
  assert_null(metrics_counter(reg, "a b", "", 0));
  assert_null(metrics_counter(reg, "ok", "", 1, "__reserved"));
  assert_null(metrics_counter(reg, "ok", "", 1, "has:colon"));
  assert_null(metrics_counter(reg, "ok", "", 1, "9x"));
  assert_null(metrics_counter(reg, "ok", "", 1, (const char *)NULL));
  assert_null(metrics_counter(reg, "ok", "", 2, "x", "x"));
  assert_null(metrics_counter(reg, "ok", "", 9, "a", "b", "c", "d", "e", "f", "g", "h", "i"));
  assert_null(metrics_counter(reg, "ok", "", -1));
  assert_null(metrics_histogram(reg, "ok", "", NULL, 0, 1, "le"));
  assert_null(metrics_histogram(reg, "ok", "", descending, 2, 0));
  assert_null(metrics_histogram(reg, "ok", "", dup, 2, 0));
  assert_null(metrics_histogram(reg, "ok", "", nan, 1, 0));
  assert_null(metrics_histogram(reg, "ok", "", NULL, 3, 0));
  assert_null(metrics_gauge_func(reg, "ok", "", NULL, NULL));
  /* Valid spellings, including a colon (recording rules) and "le" outside histograms. */
  assert_non_null(metrics_counter(reg, "job:ok_total", "", 8, "a", "b", "c", "d", "e", "f", "g",
                                  "le"));
  assert_non_null(metrics_gauge(reg, "_x9", "", 1, "_y9"));
  /* Nothing failed registered anything. */
  cleanup_free char *out = metrics_render(reg, NULL);
  assert_null(strstr(out, "ok "));
}

static void test_null_tolerance(void **state) {
  (void)state;
  assert_null(metrics_counter(NULL, "a", "", 0));
  assert_null(metric_child(NULL));
  assert_null(metric_child_v(NULL, NULL));
  metric_inc(NULL);
  metric_add(NULL, 1);
  metric_set(NULL, 1);
  metric_observe(NULL, 1);
  assert_true(metric_value(NULL) == 0);
  assert_int_equal(metrics_on_render(NULL, NULL, NULL), -22);
  metrics_registry_destroy(NULL);
  size_t len = 1;
  cleanup_free char *out = metrics_render(NULL, &len);
  assert_string_equal(out, "");
  assert_int_equal(len, 0);
}

static void test_child_values(void **state) {
  metrics_registry *reg = *state;
  metric_family *f = metrics_gauge(reg, "g", "", 2, "a", "b");
  const char *v1[] = {"ab", "c"}, *v2[] = {"a", "bc"};
  metric *m1 = metric_child_v(f, v1), *m2 = metric_child_v(f, v2);
  assert_non_null(m1);
  assert_non_null(m2);
  assert_ptr_not_equal(m1, m2);
  assert_ptr_equal(metric_child(f, "ab", "c"), m1);
  assert_null(metric_child(f, "x", (const char *)NULL));
  assert_null(metric_child_v(f, NULL));
  /* Enough children to grow the hash table several times, all still found. */
  char name[16];
  metric *ms[200];
  for (int i = 0; i < 200; i++) {
    snprintf(name, sizeof(name), "v%d", i);
    ms[i] = metric_child(f, name, "x");
    metric_set(ms[i], i);
  }
  for (int i = 0; i < 200; i++) {
    snprintf(name, sizeof(name), "v%d", i);
    assert_ptr_equal(metric_child(f, name, "x"), ms[i]);
    assert_true(metric_value(ms[i]) == i);
  }
}

static void test_children_cap(void **state) {
  metrics_registry *reg = *state;
  metric_family *f = metrics_counter(reg, "capped_total", "", 1, "id");
  char id[16];
  for (int i = 0; i < 10000; i++) {
    snprintf(id, sizeof(id), "%d", i);
    assert_non_null(metric_child(f, id));
  }
  assert_null(metric_child(f, "one too many"));
  assert_non_null(metric_child(f, "9999")); /* existing children still resolve */
}

static void test_gauge_func_and_hook(void **state) {
  metrics_registry *reg = *state;
  int fn_calls = 0, hook_calls = 0;
  metric_family *f = metrics_gauge_func(reg, "calls", "Render count.", call_count_fn, &fn_calls);
  assert_non_null(f);
  assert_ptr_equal(metrics_gauge_func(reg, "calls", "", call_count_fn, &fn_calls), f);
  assert_null(metrics_gauge_func(reg, "calls", "", call_count_fn, &hook_calls));
  assert_null(metric_child(f));
  assert_int_equal(metrics_on_render(reg, count_hook, &hook_calls), 0);
  assert_int_equal(metrics_on_render(reg, count_hook, &hook_calls), 0); /* deduplicated */
  assert_int_equal(metrics_on_render(reg, NULL, NULL), -22);
  assert_render(reg, "# HELP calls Render count.\n# TYPE calls gauge\ncalls 1\n");
  assert_render(reg, "# HELP calls Render count.\n# TYPE calls gauge\ncalls 2\n");
  assert_int_equal(fn_calls, 2);
  assert_int_equal(hook_calls, 2);
}

#define THREADS 8
#define ITERS 100000

typedef struct worker_ctx {
  metric_family *counter, *gauge, *hist;
  metric *got; /* the counter child this thread resolved */
} worker_ctx;

static void *worker(void *arg) {
  worker_ctx *ctx = arg;
  /* Every thread looks the same children up concurrently; they must agree. */
  metric *c = metric_child(ctx->counter, "shared");
  metric *g = metric_child(ctx->gauge, "shared");
  metric *h = metric_child(ctx->hist, "shared");
  ctx->got = c;
  for (int i = 0; i < ITERS; i++) {
    metric_inc(c);
    metric_add(g, 0.5);
    metric_observe(h, (i % 2) ? 0.5 : 2.0);
  }
  return NULL;
}

static void *renderer(void *arg) {
  for (int i = 0; i < 50; i++) free(metrics_render(arg, NULL));
  return NULL;
}

static void test_concurrent_updates(void **state) {
  metrics_registry *reg = *state;
  static const double bounds[] = {1};
  worker_ctx ctx[THREADS];
  metric_family *c = metrics_counter(reg, "c_total", "", 1, "k");
  metric_family *g = metrics_gauge(reg, "g", "", 1, "k");
  metric_family *h = metrics_histogram(reg, "h", "", bounds, 1, 1, "k");
  pthread_t t[THREADS], r;
  assert_int_equal(pthread_create(&r, NULL, renderer, reg), 0);
  for (int i = 0; i < THREADS; i++) {
    ctx[i] = (worker_ctx){.counter = c, .gauge = g, .hist = h};
    assert_int_equal(pthread_create(&t[i], NULL, worker, &ctx[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) {
    assert_int_equal(pthread_join(t[i], NULL), 0);
  }
  assert_int_equal(pthread_join(r, NULL), 0);
  for (int i = 1; i < THREADS; i++) assert_ptr_equal(ctx[i].got, ctx[0].got);
  assert_true(metric_value(metric_child(c, "shared")) == THREADS * ITERS);
  assert_true(metric_value(metric_child(g, "shared")) == THREADS * ITERS * 0.5);
  assert_true(metric_value(metric_child(h, "shared")) == THREADS * ITERS);
  cleanup_free char *out = metrics_render(reg, NULL);
  assert_non_null(strstr(out, "c_total{k=\"shared\"} 800000\n"));
  assert_non_null(strstr(out, "g{k=\"shared\"} 400000\n"));
  assert_non_null(strstr(out, "h_bucket{k=\"shared\",le=\"1\"} 400000\n"));
  assert_non_null(strstr(out, "h_bucket{k=\"shared\",le=\"+Inf\"} 800000\n"));
  assert_non_null(strstr(out, "h_sum{k=\"shared\"} 1000000\n"));
  assert_non_null(strstr(out, "h_count{k=\"shared\"} 800000\n"));
}

static void *get_default(void *arg) {
  *(metrics_registry **)arg = metrics_default();
  return NULL;
}

/* Runs last: metrics_shutdown is once per process. */
static void test_default_registry(void **state) {
  (void)state;
  metrics_registry *got[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(pthread_create(&t[i], NULL, get_default, &got[i]), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(pthread_join(t[i], NULL), 0);
  assert_non_null(got[0]);
  for (int i = 1; i < 4; i++) assert_ptr_equal(got[i], got[0]);
  assert_ptr_equal(metrics_default(), got[0]);
  metric_inc(metric_child(metrics_counter(metrics_default(), "d_total", "", 0)));
  assert_render(metrics_default(), "# TYPE d_total counter\nd_total 1\n");
  metrics_shutdown();
  assert_null(metrics_default());
  assert_null(metrics_counter(metrics_default(), "d_total", "", 0));
  metrics_shutdown(); /* twice is harmless */
}

int main(void) {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup_registry, teardown_registry)
  const struct CMUnitTest tests[] = {
      T(test_counter_golden),
      T(test_unlabeled_renders_zero_and_unused_labeled_is_omitted),
      T(test_escaping),
      T(test_gauge_number_formats),
      T(test_histogram_golden),
      T(test_latency_buckets),
      T(test_reregistration),
      T(test_invalid_names),
      cmocka_unit_test(test_null_tolerance),
      T(test_child_values),
      T(test_children_cap),
      T(test_gauge_func_and_hook),
      T(test_concurrent_updates),
      cmocka_unit_test(test_default_registry),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
