/* services/store/mvcc/btree_test.c — the B-tree against a sorted array. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/mvcc/btree.h"

typedef struct item {
  uint32_t len;
  uint8_t bytes[];
} item;

static item *item_new(const void *key, size_t len) {
  item *it = malloc(sizeof(item) + len + 1);
  assert_non_null(it);
  it->len = (uint32_t)len;
  if (len) memcpy(it->bytes, key, len);
  return it;
}

static item *item_str(const char *s) {
  return item_new(s, strlen(s));
}

static mvcc_btree *tree_new(void) {
  mvcc_btree *t = mvcc_btree_create(offsetof(item, len), offsetof(item, bytes));
  assert_non_null(t);
  return t;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static int item_ptr_cmp(const void *a, const void *b) {
  const item *x = *(item *const *)a, *y = *(item *const *)b;
  return mvcc_btree_key_cmp(x->bytes, x->len, y->bytes, y->len);
}

/* Index of the first sorted[i] >= key. */
static size_t lower_bound(item **sorted, size_t n, const uint8_t *key, size_t len) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (mvcc_btree_key_cmp(sorted[mid]->bytes, sorted[mid]->len, key, len) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* The tree holds exactly sorted[0..n) in that order. */
static void assert_tree_is(mvcc_btree *t, item **sorted, size_t n) {
  assert_int_equal(mvcc_btree_verify(t), 0);
  assert_int_equal(mvcc_btree_count(t), n);
  mvcc_btree_iter it;
  mvcc_btree_seek(t, &it, NULL, 0);
  for (size_t i = 0; i < n; i++) {
    void **slot = mvcc_btree_iter_slot(&it);
    assert_non_null(slot);
    assert_ptr_equal(*slot, sorted[i]);
    mvcc_btree_iter_next(&it);
  }
  assert_null(mvcc_btree_iter_slot(&it));
}

static void test_key_order(void **state) {
  (void)state;
  /* memcmp order, a prefix before its extensions, the empty key first. */
  assert_true(mvcc_btree_key_cmp(NULL, 0, (const uint8_t *)"", 0) == 0);
  assert_true(mvcc_btree_key_cmp(NULL, 0, (const uint8_t *)"\0", 1) < 0);
  assert_true(mvcc_btree_key_cmp((const uint8_t *)"a", 1, (const uint8_t *)"ab", 2) < 0);
  assert_true(mvcc_btree_key_cmp((const uint8_t *)"ab", 2, (const uint8_t *)"b", 1) < 0);
  assert_true(mvcc_btree_key_cmp((const uint8_t *)"a\xff", 2, (const uint8_t *)"b", 1) < 0);
  assert_true(mvcc_btree_key_cmp((const uint8_t *)"\x80", 1, (const uint8_t *)"\x7f", 1) > 0);
}

static void test_empty(void **state) {
  (void)state;
  mvcc_btree *t = tree_new();
  assert_null(mvcc_btree_find(t, (const uint8_t *)"a", 1));
  assert_null(mvcc_btree_find(t, NULL, 0));
  assert_null(mvcc_btree_delete(t, (const uint8_t *)"a", 1));
  mvcc_btree_iter it;
  mvcc_btree_seek(t, &it, NULL, 0);
  assert_null(mvcc_btree_iter_slot(&it));
  mvcc_btree_iter_next(&it); /* harmless past the end */
  assert_null(mvcc_btree_iter_slot(&it));
  assert_int_equal(mvcc_btree_count(t), 0);
  assert_int_equal(mvcc_btree_verify(t), 0);
  mvcc_btree_destroy(t, free);
}

static void test_small_and_prefixes(void **state) {
  (void)state;
  mvcc_btree *t = tree_new();
  item *want[] = {item_new("", 0), item_new("\0", 1), item_str("a"), item_new("a\0", 2),
                  item_str("ab"),  item_str("abc"),   item_str("b"), item_new("\xff", 1)};
  const size_t n = sizeof(want) / sizeof(want[0]);
  for (size_t i = n; i-- > 0;) assert_int_equal(mvcc_btree_insert(t, want[i]), 0);
  assert_tree_is(t, want, n);

  item *dup = item_str("ab");
  assert_int_equal(mvcc_btree_insert(t, dup), -EEXIST);
  free(dup);
  assert_int_equal(mvcc_btree_count(t), n);

  void **slot = mvcc_btree_find(t, (const uint8_t *)"a\0", 2);
  assert_non_null(slot);
  assert_ptr_equal(*slot, want[3]);
  assert_ptr_equal(*mvcc_btree_find(t, NULL, 0), want[0]);
  assert_null(mvcc_btree_find(t, (const uint8_t *)"aa", 2));

  /* lower bound between keys, on a key, past the end */
  mvcc_btree_iter it;
  mvcc_btree_seek(t, &it, (const uint8_t *)"aa", 2);
  assert_ptr_equal(*mvcc_btree_iter_slot(&it), want[4]);
  mvcc_btree_seek(t, &it, (const uint8_t *)"a", 1);
  assert_ptr_equal(*mvcc_btree_iter_slot(&it), want[2]);
  mvcc_btree_seek(t, &it, (const uint8_t *)"\xff\0", 2);
  assert_null(mvcc_btree_iter_slot(&it));

  /* replacing an item through its slot (same key, new memory) */
  item *moved = item_str("abc");
  slot = mvcc_btree_find(t, (const uint8_t *)"abc", 3);
  free(*slot);
  *slot = moved;
  want[5] = moved;
  assert_tree_is(t, want, n);

  /* delete with the key read from the item itself */
  item *gone = mvcc_btree_delete(t, want[2]->bytes, want[2]->len);
  assert_ptr_equal(gone, want[2]);
  free(gone);
  memmove(want + 2, want + 3, (n - 3) * sizeof(item *));
  assert_tree_is(t, want, n - 1);
  mvcc_btree_destroy(t, free);
}

/* Ascending and descending runs exercise splits and merges at the edges. */
static void test_sequential(void **state) {
  (void)state;
  enum { N = 50000 };
  item **sorted = malloc(N * sizeof(item *));
  for (int dir = 0; dir < 2; dir++) {
    mvcc_btree *t = tree_new();
    char buf[32];
    for (int i = 0; i < N; i++) {
      int k = dir ? N - 1 - i : i;
      snprintf(buf, sizeof buf, "/registry/pods/%08d", k);
      sorted[k] = item_str(buf);
      assert_int_equal(mvcc_btree_insert(t, sorted[k]), 0);
    }
    assert_tree_is(t, sorted, N);
    /* ascending or descending inserts leave nodes half full: 824 / 31 bytes a key */
    assert_true(mvcc_btree_memory_bytes(t) < (size_t)N * 30);
    /* delete in order (dir 0) or in reverse (dir 1) */
    for (int i = 0; i < N; i++) {
      int k = dir ? N - 1 - i : i;
      item *gone = mvcc_btree_delete(t, sorted[k]->bytes, sorted[k]->len);
      assert_ptr_equal(gone, sorted[k]);
      free(gone);
      if (i % 4999 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
    }
    assert_int_equal(mvcc_btree_count(t), 0);
    assert_int_equal(mvcc_btree_verify(t), 0);
    mvcc_btree_destroy(t, free);
  }
  free(sorted);
}

/* Random keys over a small alphabet (many shared prefixes): insert, find, seek, delete. */
static void test_random(void **state) {
  (void)state;
  enum { N = 20000 };
  mvcc_btree *t = tree_new();
  item **all = malloc(N * sizeof(item *));
  size_t n = 0;
  while (n < N) {
    uint8_t key[12];
    size_t len = rng() % sizeof key;
    for (size_t i = 0; i < len; i++) key[i] = (uint8_t)("\0ab\xff"[rng() % 4]);
    item *it = item_new(key, len);
    int rc = mvcc_btree_insert(t, it);
    if (rc == -EEXIST) {
      assert_non_null(mvcc_btree_find(t, key, len));
      free(it);
      continue;
    }
    assert_int_equal(rc, 0);
    all[n++] = it;
    if (n % 2500 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
  }
  item **sorted = malloc(N * sizeof(item *));
  memcpy(sorted, all, N * sizeof(item *));
  qsort(sorted, N, sizeof(item *), item_ptr_cmp);
  assert_tree_is(t, sorted, N);

  for (size_t i = 0; i < N; i++) {
    void **slot = mvcc_btree_find(t, all[i]->bytes, all[i]->len);
    assert_non_null(slot);
    assert_ptr_equal(*slot, all[i]);
  }
  /* lower-bound seeks at random probes, then a few steps of iteration */
  for (int q = 0; q < 2000; q++) {
    uint8_t key[13];
    size_t len = rng() % sizeof key;
    for (size_t i = 0; i < len; i++) key[i] = (uint8_t)("\0ab\xff\x01"[rng() % 5]);
    size_t at = lower_bound(sorted, N, key, len);
    mvcc_btree_iter it;
    mvcc_btree_seek(t, &it, key, len);
    for (int step = 0; step < 40; step++, at++) {
      void **slot = mvcc_btree_iter_slot(&it);
      if (at >= N) {
        assert_null(slot);
        break;
      }
      assert_non_null(slot);
      assert_ptr_equal(*slot, sorted[at]);
      mvcc_btree_iter_next(&it);
    }
  }

  /* delete a random half, checking shape and contents */
  for (size_t i = N; i > 1; i--) { /* shuffle */
    size_t j = rng() % i;
    item *x = all[i - 1];
    all[i - 1] = all[j];
    all[j] = x;
  }
  for (size_t i = 0; i < N / 2; i++) {
    assert_ptr_equal(mvcc_btree_delete(t, all[i]->bytes, all[i]->len), all[i]);
    assert_null(mvcc_btree_delete(t, all[i]->bytes, all[i]->len));
    assert_null(mvcc_btree_find(t, all[i]->bytes, all[i]->len));
    if (i % 1000 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
  }
  size_t left = N - N / 2;
  memcpy(sorted, all + N / 2, left * sizeof(item *));
  qsort(sorted, left, sizeof(item *), item_ptr_cmp);
  assert_tree_is(t, sorted, left);
  for (size_t i = 0; i < N / 2; i++) free(all[i]);

  /* and the rest */
  for (size_t i = N / 2; i < N; i++) {
    assert_ptr_equal(mvcc_btree_delete(t, all[i]->bytes, all[i]->len), all[i]);
    free(all[i]);
  }
  assert_int_equal(mvcc_btree_count(t), 0);
  assert_int_equal(mvcc_btree_verify(t), 0);
  size_t empty_bytes = mvcc_btree_memory_bytes(t);
  mvcc_btree_iter it;
  mvcc_btree_seek(t, &it, NULL, 0);
  assert_null(mvcc_btree_iter_slot(&it));
  mvcc_btree_destroy(t, free);
  assert_true(empty_bytes < 128);
  free(all);
  free(sorted);
}

/* Interleaved inserts and deletes against a membership array. */
static void test_churn(void **state) {
  (void)state;
  enum { K = 3000 };
  mvcc_btree *t = tree_new();
  item *present[K] = {0};
  for (int op = 0; op < 200000; op++) {
    int k = (int)(rng() % K);
    char buf[16];
    snprintf(buf, sizeof buf, "k%d", k);
    if (present[k]) {
      assert_ptr_equal(mvcc_btree_delete(t, (const uint8_t *)buf, strlen(buf)), present[k]);
      free(present[k]);
      present[k] = NULL;
    } else {
      present[k] = item_str(buf);
      assert_int_equal(mvcc_btree_insert(t, present[k]), 0);
    }
    if (op % 20000 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
  }
  item *sorted[K];
  size_t n = 0;
  for (int k = 0; k < K; k++)
    if (present[k]) sorted[n++] = present[k];
  qsort(sorted, n, sizeof(item *), item_ptr_cmp);
  assert_tree_is(t, sorted, n);
  mvcc_btree_destroy(t, free); /* frees the items still present */
}

/* Families of keys sharing long prefixes (longer than a node keeps), some of them
 * prefixes of others, with zero bytes where hints pad: nodes recompute their prefix
 * as keys from another family land at their ends, and merges mix families. */
static void test_long_prefixes(void **state) {
  (void)state;
  enum { N = 12000 };
  mvcc_btree *t = tree_new();
  item **all = malloc(N * sizeof(item *));
  size_t n = 0;
  while (n < N) {
    uint8_t key[128];
    size_t len = 0;
    int family = (int)(rng() % 5);
    size_t plen = family == 0 ? 0 : (size_t)family * 20; /* 20..80 bytes shared */
    for (; len < plen; len++) key[len] = (uint8_t)('a' + family);
    size_t tail = rng() % 7;
    for (size_t i = 0; i < tail; i++) key[len++] = (uint8_t)("\0\1xy"[rng() % 4]);
    item *it = item_new(key, len);
    if (mvcc_btree_insert(t, it) == -EEXIST) {
      free(it);
      continue;
    }
    all[n++] = it;
    if (n % 1000 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
  }
  item **sorted = malloc(N * sizeof(item *));
  memcpy(sorted, all, N * sizeof(item *));
  qsort(sorted, N, sizeof(item *), item_ptr_cmp);
  assert_tree_is(t, sorted, N);
  for (size_t i = 0; i < N; i++) assert_ptr_equal(*mvcc_btree_find(t, all[i]->bytes, all[i]->len), all[i]);
  /* probes between and around the families */
  for (int q = 0; q < 3000; q++) {
    uint8_t key[128];
    size_t len = rng() % 90;
    uint8_t c = (uint8_t)('a' + rng() % 6);
    for (size_t i = 0; i < len; i++) key[i] = rng() % 8 ? c : (uint8_t)(rng() % 256);
    size_t at = lower_bound(sorted, N, key, len);
    mvcc_btree_iter it;
    mvcc_btree_seek(t, &it, key, len);
    void **slot = mvcc_btree_iter_slot(&it);
    if (at == N)
      assert_null(slot);
    else
      assert_ptr_equal(*slot, sorted[at]);
  }
  /* delete in a random order, checking as nodes merge and steal */
  for (size_t i = N; i > 1; i--) {
    size_t j = rng() % i;
    item *x = all[i - 1];
    all[i - 1] = all[j];
    all[j] = x;
  }
  for (size_t i = 0; i < N; i++) {
    assert_ptr_equal(mvcc_btree_delete(t, all[i]->bytes, all[i]->len), all[i]);
    free(all[i]);
    if (i % 500 == 0) assert_int_equal(mvcc_btree_verify(t), 0);
  }
  assert_int_equal(mvcc_btree_count(t), 0);
  mvcc_btree_destroy(t, free);
  free(all);
  free(sorted);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_key_order),
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_small_and_prefixes),
      cmocka_unit_test(test_sequential),
      cmocka_unit_test(test_random),
      cmocka_unit_test(test_churn),
      cmocka_unit_test(test_long_prefixes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
