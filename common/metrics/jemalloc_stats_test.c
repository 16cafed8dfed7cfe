/* common/metrics/jemalloc_stats_test.c — the gauges exist, move with the heap,
 * and a non-jemalloc allocator (ASan's) is reported, not misread. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"
#include "common/metrics/jemalloc_stats.h"
#include "common/metrics/metrics.h"

static const char *const names[] = {
    "keel_jemalloc_active_bytes",   "keel_jemalloc_allocated_bytes",
    "keel_jemalloc_mapped_bytes",   "keel_jemalloc_metadata_bytes",
    "keel_jemalloc_resident_bytes", "keel_jemalloc_retained_bytes",
};

/* This test links jemalloc, so it is the allocator unless something took
 * malloc over first: the sanitizers (--config=asan sets KEEL_SANITIZED) or a
 * preloaded one (valgrind's vgpreload, tcmalloc...). Anywhere else -ENOTSUP
 * would be a detection bug, not a reason to skip. */
static void skip_unless_jemalloc_expected(void) {
  const char *preload = getenv("LD_PRELOAD");
  if (!getenv("KEEL_SANITIZED") && !(preload && preload[0]))
    fail_msg("jemalloc is linked but was not detected");
  skip();
}

/* Registers into a fresh registry; skips where jemalloc is not the allocator. */
static metrics_registry *registry_or_skip(void) {
  metrics_registry *reg = metrics_registry_create();
  assert_non_null(reg);
  int ret = jemalloc_stats_register(reg);
  if (ret == -ENOTSUP) {
    metrics_registry_destroy(reg);
    skip_unless_jemalloc_expected();
  }
  assert_int_equal(ret, 0);
  return reg;
}

/* The value of an unlabeled sample "name value" in a render. */
static double sample(const char *text, const char *name) {
  char key[128];
  snprintf(key, sizeof(key), "\n%s ", name);
  const char *p = strstr(text, key);
  assert_non_null(p);
  return strtod(p + strlen(key), NULL);
}

static void test_register_null(void **state) {
  (void)state;
  assert_int_equal(jemalloc_stats_register(NULL), -EINVAL);
}

static void test_gauges_rendered(void **state) {
  (void)state;
  metrics_registry *reg = registry_or_skip();
  assert_int_equal(jemalloc_stats_register(reg), 0); /* twice is fine */
  cleanup_free char *out = metrics_render(reg, NULL);
  assert_non_null(out);
  for (size_t i = 0; i < KEEL_ARRAY_LEN(names); i++) {
    char type[128];
    snprintf(type, sizeof(type), "# TYPE %s gauge\n", names[i]);
    const char *first = strstr(out, type);
    assert_non_null(first);
    assert_null(strstr(first + 1, type)); /* registered once despite two calls */
  }
  assert_true(sample(out, "keel_jemalloc_allocated_bytes") > 0);
  assert_true(sample(out, "keel_jemalloc_active_bytes") >=
              sample(out, "keel_jemalloc_allocated_bytes"));
  assert_true(sample(out, "keel_jemalloc_resident_bytes") > 0);
  assert_true(sample(out, "keel_jemalloc_mapped_bytes") > 0);
  assert_true(sample(out, "keel_jemalloc_metadata_bytes") > 0);
  metrics_registry_destroy(reg);
}

/* Stats only move when the epoch does; a render must refresh it. */
static void test_render_refreshes(void **state) {
  (void)state;
  metrics_registry *reg = registry_or_skip();
  const size_t big = 64u << 20;
  cleanup_free char *before = metrics_render(reg, NULL);
  void *volatile p = malloc(big);
  assert_non_null(p);
  memset(p, 1, big);
  cleanup_free char *during = metrics_render(reg, NULL);
  free(p);
  cleanup_free char *after = metrics_render(reg, NULL);
  double a0 = sample(before, "keel_jemalloc_allocated_bytes");
  double a1 = sample(during, "keel_jemalloc_allocated_bytes");
  double a2 = sample(after, "keel_jemalloc_allocated_bytes");
  assert_true(a1 >= a0 + (double)big);
  assert_true(a2 <= a1 - (double)big);
  metrics_registry_destroy(reg);
}

static void test_name_taken(void **state) {
  (void)state;
  metrics_registry *reg = metrics_registry_create();
  assert_non_null(metrics_counter(reg, "keel_jemalloc_mapped_bytes", "Not a gauge.", 0));
  int ret = jemalloc_stats_register(reg);
  metrics_registry_destroy(reg);
  if (ret == -ENOTSUP) skip_unless_jemalloc_expected();
  assert_int_equal(ret, -EEXIST);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_register_null),
      cmocka_unit_test(test_gauges_rendered),
      cmocka_unit_test(test_render_refreshes),
      cmocka_unit_test(test_name_taken),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
