/* Tests of the watcher index: etcd's key range rules, exact-key hashing,
 * ranges, removal, growth, against a naive model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/watch/watch_group.h"

static watch_range R(const char *key, const char *end) {
  watch_range r = {(uint8_t *)key, strlen(key), (uint8_t *)end, end ? strlen(end) : 0};
  return r;
}

static watch_range from_key(const char *key) {
  static uint8_t zero = 0;
  watch_range r = {(uint8_t *)key, strlen(key), &zero, 1};
  return r;
}

static bool in(const watch_range *r, const char *key) {
  return watch_range_contains(r, (const uint8_t *)key, strlen(key));
}

static void test_range_rules(void **state) {
  (void)state;
  watch_range single = R("a", NULL);
  assert_true(in(&single, "a"));
  assert_false(in(&single, "a\x01"));
  assert_false(in(&single, "b"));
  assert_false(in(&single, ""));
  watch_range span = R("foo/", "foo0"); /* the prefix foo/ */
  assert_true(in(&span, "foo/"));
  assert_true(in(&span, "foo/x/y"));
  assert_false(in(&span, "foo"));
  assert_false(in(&span, "foo0"));
  assert_false(in(&span, "fop"));
  watch_range fk = from_key("m");
  assert_true(watch_range_is_from_key(&fk));
  assert_true(in(&fk, "m"));
  assert_true(in(&fk, "zzz"));
  assert_false(in(&fk, "l"));
  /* A binary key with zero bytes. */
  uint8_t kb[] = {0, 1, 0};
  watch_range bin = {kb, 3, NULL, 0};
  assert_true(watch_range_contains(&bin, kb, 3));
  assert_false(watch_range_contains(&bin, kb, 2));
}

typedef struct hits {
  int n;
  void *items[64];
} hits;

static void record(void *arg, void *item) {
  hits *h = arg;
  h->items[h->n++] = item;
}

static bool has(const hits *h, void *item) {
  for (int i = 0; i < h->n; i++)
    if (h->items[i] == item) return true;
  return false;
}

static hits match(watch_group *g, const char *key) {
  hits h = {0};
  watch_group_match(g, (const uint8_t *)key, strlen(key), record, &h);
  return h;
}

static void test_exact_and_ranges(void **state) {
  (void)state;
  watch_group *g = watch_group_create();
  watch_range a = R("a", NULL), a2 = R("a", NULL), p = R("a", "b"), fk = from_key("c");
  int x1, x2, x3, x4;
  assert_int_equal(watch_group_add(g, &a, &x1), 0);
  assert_int_equal(watch_group_add(g, &a2, &x2), 0); /* two watchers, one key */
  assert_int_equal(watch_group_add(g, &p, &x3), 0);
  assert_int_equal(watch_group_add(g, &fk, &x4), 0);
  assert_int_equal(watch_group_size(g), 4);
  hits h = match(g, "a");
  assert_int_equal(h.n, 3);
  assert_true(has(&h, &x1) && has(&h, &x2) && has(&h, &x3));
  h = match(g, "ab");
  assert_int_equal(h.n, 1);
  assert_true(has(&h, &x3));
  h = match(g, "d");
  assert_int_equal(h.n, 1);
  assert_true(has(&h, &x4));
  h = match(g, "b");
  assert_int_equal(h.n, 0);
  watch_group_remove(g, &a, &x1);
  h = match(g, "a");
  assert_int_equal(h.n, 2);
  assert_false(has(&h, &x1));
  watch_group_remove(g, &a2, &x2);
  watch_group_remove(g, &p, &x3);
  watch_group_remove(g, &p, &x3); /* absent: no-op */
  h = match(g, "a");
  assert_int_equal(h.n, 0);
  assert_int_equal(watch_group_size(g), 1);
  watch_group_destroy(g);
}

/* Counts matches and checks each is a live item whose range holds the key. */
typedef struct counter {
  int n;
  const bool *live;
  const watch_range *rs;
  const char *key;
  bool ok;
} counter;

static void count_fn(void *arg, void *item) {
  counter *c = arg;
  const watch_range *r = item;
  c->n++;
  if (!c->live[r - c->rs] || !in(r, c->key)) c->ok = false;
}

/* 5000 single-key watchers (growth) plus ranges, checked against a scan. */
static void test_many_against_model(void **state) {
  (void)state;
  enum { N = 5000, NR = 20 };
  watch_group *g = watch_group_create();
  char (*keys)[16] = malloc(N * sizeof(*keys));
  char (*starts)[16] = malloc(NR * sizeof(*starts));
  char (*ends)[16] = malloc(NR * sizeof(*ends));
  watch_range *rs = malloc((N + NR) * sizeof(*rs));
  bool *live = calloc(N + NR, 1);
  srand(7);
  for (int i = 0; i < N; i++) {
    snprintf(keys[i], 16, "k%04d", rand() % 3000); /* duplicates on purpose */
    rs[i] = R(keys[i], NULL);
    assert_int_equal(watch_group_add(g, &rs[i], &rs[i]), 0);
    live[i] = true;
  }
  for (int i = 0; i < NR; i++) {
    int a = rand() % 3000, b = a + rand() % 200;
    snprintf(starts[i], 16, "k%04d", a);
    snprintf(ends[i], 16, "k%04d", b);
    rs[N + i] = R(starts[i], ends[i]);
    assert_int_equal(watch_group_add(g, &rs[N + i], &rs[N + i]), 0);
    live[N + i] = true;
  }
  for (int i = 0; i < N + NR; i += 3) {
    watch_group_remove(g, &rs[i], &rs[i]);
    live[i] = false;
  }
  for (int probe = 0; probe < 3000; probe++) {
    char key[16];
    snprintf(key, sizeof(key), "k%04d", probe);
    int want = 0;
    for (int i = 0; i < N + NR; i++)
      if (live[i] && in(&rs[i], key)) want++;
    counter c = {0, live, rs, key, true};
    watch_group_match(g, (const uint8_t *)key, strlen(key), count_fn, &c);
    assert_true(c.ok);
    assert_int_equal(c.n, want);
  }
  watch_group_destroy(g);
  free(keys);
  free(starts);
  free(ends);
  free(rs);
  free(live);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_range_rules),
      cmocka_unit_test(test_exact_and_ranges),
      cmocka_unit_test(test_many_against_model),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
