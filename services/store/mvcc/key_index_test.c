/* services/store/mvcc/key_index_test.c — etcd's key_index_test.go cases, rule by rule.
 *
 * A key index is compared through its etcd-shaped picture: one "{c<created> v<ver>:
 * <revs>}" per generation, etcd's trailing empty generation as "{}", a revision as
 * "main" or "main.sub", a tombstone unmarked (it is the last revision of a closed
 * generation). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/mvcc/key_index.h"

#define R(m) ((mvcc_revision){(m), 0})
#define RS(m, s) ((mvcc_revision){(m), (s)})

static void fmt_rev(char **p, mvcc_revision r) {
  *p += r.sub ? sprintf(*p, "%lld.%lld", (long long)r.main, (long long)r.sub)
              : sprintf(*p, "%lld", (long long)r.main);
}

/* etcd's picture of ki; the buffer is static. */
static const char *picture(const mvcc_key_index *ki) {
  static char buf[4096];
  char *p = buf;
  *p = 0;
  if (mvcc_key_index_is_empty(ki)) return "{}"; /* etcd: generations = [{}] */
  size_t n = mvcc_key_index_generations(ki);
  for (size_t g = 0; g < n; g++) {
    mvcc_revision created;
    int64_t ver;
    const mvcc_revision *revs;
    size_t nrevs;
    mvcc_key_index_generation(ki, g, &created, &ver, &revs, &nrevs);
    if (!nrevs) {
      p += sprintf(p, "{}");
      continue;
    }
    p += sprintf(p, "{c");
    fmt_rev(&p, created);
    p += sprintf(p, " v%lld:", (long long)ver);
    for (size_t i = 0; i < nrevs; i++) {
      if (i) *p++ = ' ';
      fmt_rev(&p, revs[i]);
    }
    p += sprintf(p, "}");
  }
  return buf;
}

/* A set of revisions gathered from keep callbacks, printed sorted. */
typedef struct revset {
  mvcc_revision r[16];
  int n;
} revset;

static void collect(void *arg, mvcc_revision r) {
  revset *s = arg;
  assert_true(s->n < 16);
  s->r[s->n++] = r;
}

static const char *revset_str(revset *s) {
  static char buf[512];
  char *p = buf;
  *p = 0;
  for (int i = 0; i < s->n; i++) {
    if (i) *p++ = ' ';
    fmt_rev(&p, s->r[i]);
  }
  *p = 0;
  return buf;
}

static mvcc_key_index *ki_new(void) {
  mvcc_key_index *ki = mvcc_key_index_new((const uint8_t *)"foo", 3);
  assert_non_null(ki);
  return ki;
}

/* etcd's newTestKeyIndex:
 *   {empty} {14, 15.1, 16(t)} {8, 10, 12(t)} {2, 4, 6(t)} (newest first) */
static mvcc_key_index *test_key_index(void) {
  mvcc_key_index *ki = ki_new();
  assert_int_equal(mvcc_key_index_put(&ki, R(2)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(4)), 0);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(6)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(8)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(10)), 0);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(12)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(14)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, RS(15, 1)), 0);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(16)), 0);
  return ki;
}

static void test_new_key_index(void **state) {
  (void)state;
  mvcc_key_index *ki = test_key_index();
  assert_string_equal(picture(ki), "{c2 v3:2 4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}");
  assert_false(mvcc_key_index_is_live(ki));
  assert_int_equal(mvcc_key_index_modified(ki).main, 16);
  assert_int_equal(ki->keylen, 3);
  assert_memory_equal(ki->key, "foo", 3);
  mvcc_key_index_free(ki);
}

/* etcd TestKeyIndexGet: the test key index compacted at 4. */
static void test_get(void **state) {
  (void)state;
  mvcc_key_index *ki = test_key_index();
  mvcc_key_index_compact(&ki, 4, NULL, NULL);
  static const struct {
    int64_t rev;
    mvcc_revision mod, created;
    int64_t ver;
    int err;
  } tests[] = {
      {17, {0, 0}, {0, 0}, 0, -ENOENT},
      {16, {0, 0}, {0, 0}, 0, -ENOENT},
      /* generation 3 */
      {15, {15, 1}, {14, 0}, 2, 0},
      {14, {14, 0}, {14, 0}, 1, 0},
      {13, {0, 0}, {0, 0}, 0, -ENOENT},
      {12, {0, 0}, {0, 0}, 0, -ENOENT},
      /* generation 2 */
      {11, {10, 0}, {8, 0}, 2, 0},
      {10, {10, 0}, {8, 0}, 2, 0},
      {9, {8, 0}, {8, 0}, 1, 0},
      {8, {8, 0}, {8, 0}, 1, 0},
      {7, {0, 0}, {0, 0}, 0, -ENOENT},
      {6, {0, 0}, {0, 0}, 0, -ENOENT},
      /* generation 1 */
      {5, {4, 0}, {2, 0}, 2, 0},
      {4, {4, 0}, {2, 0}, 2, 0},
      {3, {0, 0}, {0, 0}, 0, -ENOENT},
      {2, {0, 0}, {0, 0}, 0, -ENOENT},
      {1, {0, 0}, {0, 0}, 0, -ENOENT},
      {0, {0, 0}, {0, 0}, 0, -ENOENT},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    mvcc_revision mod = {0, 0}, created = {0, 0};
    int64_t ver = 0;
    int rc = mvcc_key_index_get(ki, tests[i].rev, &mod, &created, &ver);
    if (rc != tests[i].err)
      fail_msg("#%zu at %lld: err %d, want %d", i, (long long)tests[i].rev, rc, tests[i].err);
    if (rc) continue;
    assert_int_equal(mvcc_revision_cmp(mod, tests[i].mod), 0);
    assert_int_equal(mvcc_revision_cmp(created, tests[i].created), 0);
    assert_int_equal(ver, tests[i].ver);
  }
  /* the same answers before compaction, plus revisions 2 and 3 */
  mvcc_key_index_free(ki);
  ki = test_key_index();
  mvcc_revision mod, created;
  int64_t ver;
  assert_int_equal(mvcc_key_index_get(ki, 3, &mod, &created, &ver), 0);
  assert_int_equal(mod.main, 2);
  assert_int_equal(ver, 1);
  assert_int_equal(mvcc_key_index_get(ki, 1, &mod, &created, &ver), -ENOENT);
  assert_int_equal(mvcc_key_index_get(ki, 15, NULL, NULL, NULL), 0);
  mvcc_key_index_free(ki);
}

/* etcd TestKeyIndexPut */
static void test_put(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  assert_true(mvcc_key_index_is_empty(ki));
  assert_int_equal(mvcc_key_index_put(&ki, R(5)), 0);
  assert_string_equal(picture(ki), "{c5 v1:5}");
  assert_int_equal(mvcc_key_index_put(&ki, R(7)), 0);
  assert_string_equal(picture(ki), "{c5 v2:5 7}");
  assert_true(mvcc_key_index_is_live(ki));

  /* etcd panics on a revision that is not newer; here it is -EINVAL, unchanged */
  assert_int_equal(mvcc_key_index_put(&ki, R(7)), -EINVAL);
  assert_int_equal(mvcc_key_index_put(&ki, R(6)), -EINVAL);
  assert_int_equal(mvcc_key_index_put(&ki, RS(6, 9)), -EINVAL);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(7)), -EINVAL);
  assert_string_equal(picture(ki), "{c5 v2:5 7}");
  /* a later sub revision of the same main revision is newer */
  assert_int_equal(mvcc_key_index_put(&ki, RS(7, 1)), 0);
  assert_string_equal(picture(ki), "{c5 v3:5 7 7.1}");
  mvcc_key_index_free(ki);
}

/* etcd TestKeyIndexRestore, plus puts after it. */
static void test_restore(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  assert_int_equal(mvcc_key_index_restore(&ki, R(5), R(7), 2), 0);
  assert_string_equal(picture(ki), "{c5 v2:7}");
  assert_int_equal(mvcc_key_index_restore(&ki, R(8), R(9), 1), -EEXIST);
  mvcc_revision mod, created;
  int64_t ver;
  assert_int_equal(mvcc_key_index_get(ki, 7, &mod, &created, &ver), 0);
  assert_int_equal(mod.main, 7);
  assert_int_equal(created.main, 5);
  assert_int_equal(ver, 2);
  assert_int_equal(mvcc_key_index_get(ki, 6, &mod, &created, &ver), -ENOENT); /* compacted away */
  assert_int_equal(mvcc_key_index_put(&ki, R(9)), 0);
  assert_int_equal(mvcc_key_index_get(ki, 9, &mod, &created, &ver), 0);
  assert_int_equal(ver, 3);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(10)), 0);
  assert_string_equal(picture(ki), "{c5 v4:7 9 10}{}");
  /* a key that is not live may be restored again */
  assert_int_equal(mvcc_key_index_restore(&ki, R(9), R(10), 1), -EINVAL);  /* not newer */
  assert_int_equal(mvcc_key_index_restore(&ki, R(12), R(11), 1), -EINVAL); /* created > modified */
  assert_int_equal(mvcc_key_index_restore(&ki, R(11), R(11), 0), -EINVAL); /* version < 1 */
  assert_int_equal(mvcc_key_index_restore(&ki, R(11), R(12), 2), 0);
  assert_string_equal(picture(ki), "{c5 v4:7 9 10}{c11 v2:12}");
  mvcc_key_index_free(ki);
}

/* etcd TestRestoreTombstone */
static void test_restore_tombstone(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  assert_int_equal(mvcc_key_index_restore_tombstone(&ki, R(16)), 0);
  assert_string_equal(picture(ki), "{c0 v1:16}{}");
  for (int64_t at = 0; at <= 20; at++)
    assert_int_equal(mvcc_key_index_get(ki, at, NULL, NULL, NULL), -ENOENT);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(17)), -ENOENT);

  /* a compaction at the tombstone keeps it */
  revset am = {0};
  mvcc_key_index_compact(&ki, 16, collect, &am);
  assert_string_equal(revset_str(&am), "16");
  assert_string_equal(picture(ki), "{c0 v1:16}{}");

  assert_int_equal(mvcc_key_index_put(&ki, R(17)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(18)), 0);
  assert_string_equal(picture(ki), "{c0 v1:16}{c17 v2:17 18}");
  /* a later one removes it */
  am.n = 0;
  mvcc_key_index_compact(&ki, 17, collect, &am);
  assert_string_equal(revset_str(&am), "17");
  assert_string_equal(picture(ki), "{c17 v2:17 18}");
  assert_int_equal(mvcc_key_index_restore_tombstone(&ki, R(19)), -EEXIST);
  mvcc_key_index_free(ki);
}

/* etcd TestKeyIndexTombstone */
static void test_tombstone(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(3)), -ENOENT); /* no history */
  assert_int_equal(mvcc_key_index_put(&ki, R(5)), 0);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(7)), 0);
  assert_string_equal(picture(ki), "{c5 v2:5 7}{}");
  assert_false(mvcc_key_index_is_live(ki));

  assert_int_equal(mvcc_key_index_put(&ki, R(8)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(9)), 0);
  assert_int_equal(mvcc_key_index_tombstone(&ki, R(15)), 0);
  assert_string_equal(picture(ki), "{c5 v2:5 7}{c8 v3:8 9 15}{}");

  assert_int_equal(mvcc_key_index_tombstone(&ki, R(16)), -ENOENT);
  assert_string_equal(picture(ki), "{c5 v2:5 7}{c8 v3:8 9 15}{}");
  /* put after delete: a new generation whose version restarts at 1 */
  assert_int_equal(mvcc_key_index_put(&ki, R(17)), 0);
  int64_t ver;
  mvcc_revision created;
  assert_int_equal(mvcc_key_index_get(ki, 17, NULL, &created, &ver), 0);
  assert_int_equal(ver, 1);
  assert_int_equal(created.main, 17);
  assert_string_equal(picture(ki), "{c5 v2:5 7}{c8 v3:8 9 15}{c17 v1:17}");
  mvcc_key_index_free(ki);
}

/* etcd TestKeyIndexCompactAndKeep, with its three passes: continuous compaction,
 * jump compaction and one compaction of a fresh key index, each checking keep
 * first (which must not change the key index). */
static const struct {
  int64_t compact;
  const char *wki;
  const char *wam;
} compact_tests[] = {
    {1, "{c2 v3:2 4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", ""},
    {2, "{c2 v3:2 4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "2"},
    {3, "{c2 v3:2 4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "2"},
    {4, "{c2 v3:4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "4"},
    {5, "{c2 v3:4 6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "4"},
    {6, "{c2 v3:6}{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "6"},
    {7, "{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", ""},
    {8, "{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "8"},
    {9, "{c8 v3:8 10 12}{c14 v3:14 15.1 16}{}", "8"},
    {10, "{c8 v3:10 12}{c14 v3:14 15.1 16}{}", "10"},
    {11, "{c8 v3:10 12}{c14 v3:14 15.1 16}{}", "10"},
    {12, "{c8 v3:12}{c14 v3:14 15.1 16}{}", "12"},
    {13, "{c14 v3:14 15.1 16}{}", ""},
    {14, "{c14 v3:14 15.1 16}{}", "14"},
    {15, "{c14 v3:15.1 16}{}", "15.1"},
    {16, "{c14 v3:16}{}", "16"},
    {17, "{}", ""},
};
#define NCOMPACT (sizeof(compact_tests) / sizeof(compact_tests[0]))

/* etcd's isTombstoneRevFn: rev is the tombstone of a closed generation of ki. */
static bool is_tombstone_rev(const mvcc_key_index *ki, int64_t rev) {
  size_t n = mvcc_key_index_generations(ki);
  for (size_t g = 0; g + 1 < n; g++) {
    mvcc_revision created;
    int64_t ver;
    const mvcc_revision *revs;
    size_t nrevs;
    mvcc_key_index_generation(ki, g, &created, &ver, &revs, &nrevs);
    if (nrevs && revs[nrevs - 1].main == rev) return true;
  }
  return false;
}

static void check_keep(const mvcc_key_index *ki, size_t i, bool expect_tombstone_rule) {
  char before[4096];
  snprintf(before, sizeof before, "%s", picture(ki));
  revset am = {0};
  bool tomb = is_tombstone_rev(ki, compact_tests[i].compact);
  mvcc_key_index_keep(ki, compact_tests[i].compact, collect, &am);
  assert_string_equal(picture(ki), before);
  if (tomb && expect_tombstone_rule)
    assert_int_equal(am.n, 0); /* keep leaves a tombstone out */
  else
    assert_string_equal(revset_str(&am), compact_tests[i].wam);
}

static void check_compact(mvcc_key_index **ki, size_t i) {
  revset am = {0};
  mvcc_key_index_compact(ki, compact_tests[i].compact, collect, &am);
  if (strcmp(picture(*ki), compact_tests[i].wki) != 0)
    fail_msg("#%zu compact %lld: ki = %s, want %s", i, (long long)compact_tests[i].compact, picture(*ki),
             compact_tests[i].wki);
  assert_string_equal(revset_str(&am), compact_tests[i].wam);
}

static void test_compact_and_keep(void **state) {
  (void)state;
  /* continuous compaction */
  mvcc_key_index *ki = test_key_index();
  for (size_t i = 0; i < NCOMPACT; i++) {
    check_keep(ki, i, true);
    check_compact(&ki, i);
  }
  assert_true(mvcc_key_index_is_empty(ki));
  mvcc_key_index_free(ki);

  /* jump compaction: skips the compactions at tombstones */
  ki = test_key_index();
  for (size_t i = 0; i < NCOMPACT; i++) {
    if (is_tombstone_rev(ki, compact_tests[i].compact)) continue;
    check_keep(ki, i, false);
    check_compact(&ki, i);
  }
  mvcc_key_index_free(ki);

  /* once compaction */
  for (size_t i = 0; i < NCOMPACT; i++) {
    ki = test_key_index();
    check_keep(ki, i, true);
    check_compact(&ki, i);
    mvcc_key_index_free(ki);
  }
}

/* etcd TestKeyIndexCompactOnFurtherRev: compacting past the newest revision keeps
 * it (a live key), and compacting past a tombstone empties the key. */
static void test_compact_on_further_rev(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  assert_int_equal(mvcc_key_index_put(&ki, R(1)), 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(2)), 0);
  revset am = {0};
  mvcc_key_index_compact(&ki, 3, collect, &am);
  assert_string_equal(picture(ki), "{c1 v2:2}");
  assert_string_equal(revset_str(&am), "2");
  /* compacting again is idempotent */
  am.n = 0;
  mvcc_key_index_compact(&ki, 3, collect, &am);
  assert_string_equal(picture(ki), "{c1 v2:2}");
  assert_string_equal(revset_str(&am), "2");
  /* version and created survive compaction */
  mvcc_revision mod, created;
  int64_t ver;
  assert_int_equal(mvcc_key_index_get(ki, 3, &mod, &created, &ver), 0);
  assert_int_equal(mod.main, 2);
  assert_int_equal(created.main, 1);
  assert_int_equal(ver, 2);
  /* compact before anything: nothing happens, nothing kept */
  am.n = 0;
  mvcc_key_index_compact(&ki, 1, collect, &am);
  assert_int_equal(am.n, 0);
  assert_string_equal(picture(ki), "{c1 v2:2}");

  assert_int_equal(mvcc_key_index_tombstone(&ki, R(4)), 0);
  am.n = 0;
  mvcc_key_index_compact(&ki, 5, collect, &am);
  assert_true(mvcc_key_index_is_empty(ki));
  assert_int_equal(am.n, 0);
  /* an emptied key index takes new history like a new one */
  assert_int_equal(mvcc_key_index_put(&ki, R(6)), 0);
  assert_string_equal(picture(ki), "{c6 v1:6}");
  mvcc_key_index_free(ki);
}

/* Many generations and many revisions: get at every revision against the history,
 * block growth and its return after compaction. */
static void test_long_history(void **state) {
  (void)state;
  mvcc_key_index *ki = ki_new();
  enum { GENS = 200, PUTS = 20 };
  int64_t rev = 1;
  size_t small = mvcc_key_index_bytes(ki);
  for (int g = 0; g < GENS; g++) {
    for (int p = 0; p < PUTS; p++) assert_int_equal(mvcc_key_index_put(&ki, R(rev++)), 0);
    assert_int_equal(mvcc_key_index_tombstone(&ki, R(rev++)), 0);
    rev += 3; /* a gap with no revision of this key */
  }
  assert_int_equal(mvcc_key_index_generations(ki), GENS + 1);
  size_t big = mvcc_key_index_bytes(ki);
  /* header + key + GENS records (32 bytes) + revisions (16 bytes), at most 1.5x */
  size_t used = 16 + 8 + GENS * 32 + GENS * (PUTS + 1) * 16;
  assert_true(big >= used && big <= used + used / 2 + 16);
  const int64_t span = PUTS + 1 + 3;
  for (int64_t at = 0; at <= rev; at++) {
    mvcc_revision mod, created;
    int64_t ver;
    int rc = mvcc_key_index_get(ki, at, &mod, &created, &ver);
    int64_t g = (at - 1) / span, off = (at - 1) % span; /* generation g starts at g*span+1 */
    if (at < 1 || off >= PUTS || g >= GENS) {
      assert_int_equal(rc, -ENOENT);
      continue;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(mod.main, at);
    assert_int_equal(created.main, g * span + 1);
    assert_int_equal(ver, off + 1);
  }
  /* compaction in the middle of generation 100 */
  int64_t at = 100 * span + 1 + 7;
  revset am = {0};
  mvcc_key_index_compact(&ki, at, collect, &am);
  assert_string_equal(revset_str(&am), "2408");
  assert_int_equal(mvcc_key_index_generations(ki), GENS - 100 + 1);
  assert_true(mvcc_key_index_bytes(ki) < big * 3 / 4);
  mvcc_revision mod;
  int64_t ver;
  assert_int_equal(mvcc_key_index_get(ki, at, &mod, NULL, &ver), 0);
  assert_int_equal(mod.main, at);
  assert_int_equal(ver, 8);
  /* past the last tombstone: the key index empties and shrinks */
  mvcc_key_index_compact(&ki, rev, NULL, NULL);
  assert_true(mvcc_key_index_is_empty(ki));
  assert_true(mvcc_key_index_bytes(ki) <= small); /* the block is back to its smallest */
  mvcc_key_index_free(ki);
}

static void test_empty_key(void **state) {
  (void)state;
  mvcc_key_index *ki = mvcc_key_index_new(NULL, 0);
  assert_non_null(ki);
  assert_int_equal(ki->keylen, 0);
  assert_int_equal(mvcc_key_index_put(&ki, R(1)), 0);
  assert_int_equal(mvcc_key_index_get(ki, 1, NULL, NULL, NULL), 0);
  mvcc_key_index_free(ki);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_new_key_index),
      cmocka_unit_test(test_get),
      cmocka_unit_test(test_put),
      cmocka_unit_test(test_restore),
      cmocka_unit_test(test_restore_tombstone),
      cmocka_unit_test(test_tombstone),
      cmocka_unit_test(test_compact_and_keep),
      cmocka_unit_test(test_compact_on_further_rev),
      cmocka_unit_test(test_long_history),
      cmocka_unit_test(test_empty_key),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
