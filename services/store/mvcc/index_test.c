/* services/store/mvcc/index_test.c — the index against etcd's rules (index_test.go
 * cases) and, in a property test, against a naive model: every event of every key
 * kept in a list, with a revision store that frees what compaction does not keep and
 * that the index is rebuilt from now and then, as keel-store does after a restart. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/mvcc/btree.h"
#include "services/store/mvcc/index.h"

#define R(m) ((mvcc_revision){(m), 0})
#define RS(m, s) ((mvcc_revision){(m), (s)})
#define K(s) (const uint8_t *)(s), (sizeof(s) - 1)

static mvcc_index *index_new(void) {
  mvcc_index *idx = mvcc_index_create();
  assert_non_null(idx);
  return idx;
}

/* ---- range results ---- */

typedef struct hit {
  char key[64];
  size_t keylen;
  mvcc_revision mod, created;
  int64_t version;
} hit;

typedef struct hits {
  hit h[64];
  int n;
  int limit; /* stop (return 7) once n reaches limit; 0 = no limit */
} hits;

static int collect_hit(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod, mvcc_revision created,
                       int64_t version) {
  hits *hs = arg;
  assert_true(hs->n < 64 && keylen < 64);
  hit *h = &hs->h[hs->n++];
  if (keylen) memcpy(h->key, key, keylen);
  h->key[keylen] = 0;
  h->keylen = keylen;
  h->mod = mod;
  h->created = created;
  h->version = version;
  return hs->limit && hs->n >= hs->limit ? 7 : 0;
}

/* The keys of a range, space-separated ("" shows as <>). */
static const char *range_keys(const mvcc_index *idx, const char *key, const char *end, size_t endlen,
                              int64_t at) {
  static char buf[1024];
  hits hs = {.n = 0};
  int rc = mvcc_index_range(idx, (const uint8_t *)key, strlen(key), (const uint8_t *)end, endlen, at,
                            collect_hit, &hs);
  assert_int_equal(rc, 0);
  char *p = buf;
  *p = 0;
  for (int i = 0; i < hs.n; i++) p += sprintf(p, "%s%s", i ? " " : "", hs.h[i].keylen ? hs.h[i].key : "<>");
  return buf;
}

/* ---- unit tests ---- */

static void test_revision_cmp(void **state) {
  (void)state;
  assert_true(mvcc_revision_cmp(R(1), R(2)) < 0);
  assert_true(mvcc_revision_cmp(RS(2, 0), RS(1, 9)) > 0);
  assert_true(mvcc_revision_cmp(RS(2, 1), RS(2, 0)) > 0);
  assert_int_equal(mvcc_revision_cmp(RS(2, 1), RS(2, 1)), 0);
  assert_true(mvcc_revision_cmp(R(INT64_MIN), R(INT64_MAX)) < 0);
}

/* etcd TestIndexGet */
static void test_get(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  assert_int_equal(mvcc_index_put(idx, K("foo"), R(2)), 0);
  assert_int_equal(mvcc_index_put(idx, K("foo"), R(4)), 0);
  assert_int_equal(mvcc_index_tombstone(idx, K("foo"), R(6)), 0);
  static const struct {
    int64_t rev;
    int64_t mod, created, ver;
    int err;
  } tests[] = {
      {0, 0, 0, 0, -ENOENT}, {1, 0, 0, 0, -ENOENT}, {2, 2, 2, 1, 0},       {3, 2, 2, 1, 0},
      {4, 4, 2, 2, 0},       {5, 4, 2, 2, 0},       {6, 0, 0, 0, -ENOENT}, {7, 0, 0, 0, -ENOENT},
  };
  for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
    mvcc_revision mod, created;
    int64_t ver;
    int rc = mvcc_index_get(idx, K("foo"), tests[i].rev, &mod, &created, &ver);
    assert_int_equal(rc, tests[i].err);
    if (rc) continue;
    assert_int_equal(mod.main, tests[i].mod);
    assert_int_equal(created.main, tests[i].created);
    assert_int_equal(ver, tests[i].ver);
  }
  assert_int_equal(mvcc_index_get(idx, K("fo"), 5, NULL, NULL, NULL), -ENOENT);
  assert_int_equal(mvcc_index_get(idx, K("foo0"), 5, NULL, NULL, NULL), -ENOENT);
  mvcc_index_destroy(idx);
}

/* put, delete, put again: a new generation, created anew, version back to 1; the
 * old generation still answers at old revisions. */
static void test_put_delete_put(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  assert_int_equal(mvcc_index_put(idx, K("k"), R(1)), 0);
  assert_int_equal(mvcc_index_put(idx, K("k"), R(2)), 0);
  assert_int_equal(mvcc_index_put(idx, K("k"), R(3)), 0);
  assert_int_equal(mvcc_index_tombstone(idx, K("k"), R(4)), 0);
  assert_int_equal(mvcc_index_tombstone(idx, K("k"), R(5)), -ENOENT); /* not live: nothing written */
  assert_int_equal(mvcc_index_put(idx, K("k"), R(6)), 0);
  mvcc_revision mod, created;
  int64_t ver;
  assert_int_equal(mvcc_index_get(idx, K("k"), 6, &mod, &created, &ver), 0);
  assert_int_equal(mod.main, 6);
  assert_int_equal(created.main, 6);
  assert_int_equal(ver, 1);
  assert_int_equal(mvcc_index_get(idx, K("k"), 3, &mod, &created, &ver), 0);
  assert_int_equal(mod.main, 3);
  assert_int_equal(created.main, 1);
  assert_int_equal(ver, 3);
  assert_int_equal(mvcc_index_get(idx, K("k"), 4, &mod, &created, &ver), -ENOENT);
  assert_int_equal(mvcc_index_get(idx, K("k"), 5, &mod, &created, &ver), -ENOENT);
  assert_int_equal(mvcc_index_put(idx, K("k"), R(7)), 0);
  assert_int_equal(mvcc_index_get(idx, K("k"), 100, &mod, &created, &ver), 0);
  assert_int_equal(ver, 2);
  assert_int_equal(created.main, 6);
  assert_int_equal(mvcc_index_key_count(idx), 1);
  mvcc_index_destroy(idx);
}

/* etcd TestIndexTombstone, and the errors of the write path. */
static void test_tombstone_and_errors(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  assert_int_equal(mvcc_index_tombstone(idx, K("foo"), R(1)), -ENOENT); /* never written */
  assert_int_equal(mvcc_index_key_count(idx), 0);
  assert_int_equal(mvcc_index_put(idx, K("foo"), R(1)), 0);
  assert_int_equal(mvcc_index_tombstone(idx, K("foo"), R(2)), 0);
  assert_int_equal(mvcc_index_get(idx, K("foo"), 2, NULL, NULL, NULL), -ENOENT);
  assert_int_equal(mvcc_index_tombstone(idx, K("foo"), R(3)), -ENOENT);

  assert_int_equal(mvcc_index_put(idx, K("bar"), RS(5, 2)), 0);
  assert_int_equal(mvcc_index_put(idx, K("bar"), RS(5, 2)), -EINVAL);
  assert_int_equal(mvcc_index_put(idx, K("bar"), RS(5, 1)), -EINVAL);
  assert_int_equal(mvcc_index_put(idx, K("bar"), R(4)), -EINVAL);
  assert_int_equal(mvcc_index_tombstone(idx, K("bar"), R(5)), -EINVAL);
  assert_int_equal(mvcc_index_put(idx, K("bar"), RS(5, 3)), 0);
  assert_int_equal(mvcc_index_put(idx, NULL, 3, R(9)), -EINVAL);
  /* a key's revisions are its own: another key may take any revision */
  assert_int_equal(mvcc_index_put(idx, K("baz"), R(1)), 0);
  assert_int_equal(mvcc_index_key_count(idx), 3);
  mvcc_index_destroy(idx);
}

/* etcd TestIndexRange, plus the end conventions and historical ranges. */
static void test_range(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  assert_int_equal(mvcc_index_put(idx, K("foo"), R(1)), 0);
  assert_int_equal(mvcc_index_put(idx, K("foo1"), R(2)), 0);
  assert_int_equal(mvcc_index_put(idx, K("foo2"), R(3)), 0);
  const int64_t at = 6;
  /* single key */
  assert_string_equal(range_keys(idx, "foo", NULL, 0, at), "foo");
  assert_string_equal(range_keys(idx, "foo", "", 0, at), "foo"); /* endlen 0 too */
  assert_string_equal(range_keys(idx, "fo", NULL, 0, at), "");
  /* [key, end) */
  assert_string_equal(range_keys(idx, "foo", "foo1", 4, at), "foo");
  assert_string_equal(range_keys(idx, "foo", "foo2", 4, at), "foo foo1");
  assert_string_equal(range_keys(idx, "foo", "fop", 3, at), "foo foo1 foo2");
  assert_string_equal(range_keys(idx, "foo1", "fop", 3, at), "foo1 foo2");
  assert_string_equal(range_keys(idx, "foo3", "fop", 3, at), "");
  assert_string_equal(range_keys(idx, "fop", "foo", 3, at), ""); /* end before key */
  assert_string_equal(range_keys(idx, "foo", "foo", 3, at), "");
  /* "\0": every key >= key */
  assert_string_equal(range_keys(idx, "foo1", "\0", 1, at), "foo1 foo2");
  assert_string_equal(range_keys(idx, "", "\0", 1, at), "foo foo1 foo2");
  assert_string_equal(range_keys(idx, "fop", "\0", 1, at), "");
  /* as of earlier revisions */
  assert_string_equal(range_keys(idx, "", "\0", 1, 0), "");
  assert_string_equal(range_keys(idx, "", "\0", 1, 1), "foo");
  assert_string_equal(range_keys(idx, "", "\0", 1, 2), "foo foo1");
  assert_int_equal(mvcc_index_tombstone(idx, K("foo1"), R(4)), 0);
  assert_string_equal(range_keys(idx, "", "\0", 1, 3), "foo foo1 foo2");
  assert_string_equal(range_keys(idx, "", "\0", 1, 4), "foo foo2");
  assert_string_equal(range_keys(idx, "foo1", NULL, 0, 4), "");
  assert_string_equal(range_keys(idx, "foo1", NULL, 0, 3), "foo1");

  /* what the visitor sees */
  assert_int_equal(mvcc_index_put(idx, K("foo2"), R(5)), 0);
  hits hs = {.n = 0};
  assert_int_equal(mvcc_index_range(idx, K("foo2"), NULL, 0, 5, collect_hit, &hs), 0);
  assert_int_equal(hs.n, 1);
  assert_int_equal(hs.h[0].mod.main, 5);
  assert_int_equal(hs.h[0].created.main, 3);
  assert_int_equal(hs.h[0].version, 2);
  mvcc_index_destroy(idx);
}

/* Keys with zero bytes, prefixes and the empty key, in byte order. */
static void test_range_byte_order(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  static const struct {
    const char *k;
    size_t len;
  } keys[] = {{"b", 1}, {"a\0b", 3}, {"a", 1}, {"\xff", 1}, {"", 0}, {"a\0", 2}, {"\0", 1}, {"ab", 2}};
  for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
    assert_int_equal(mvcc_index_put(idx, (const uint8_t *)keys[i].k, keys[i].len, R((int64_t)i + 1)), 0);
  hits hs = {.n = 0};
  assert_int_equal(mvcc_index_range(idx, NULL, 0, (const uint8_t *)"\0", 1, 100, collect_hit, &hs), 0);
  static const struct {
    const char *k;
    size_t len;
  } want[] = {{"", 0}, {"\0", 1}, {"a", 1}, {"a\0", 2}, {"a\0b", 3}, {"ab", 2}, {"b", 1}, {"\xff", 1}};
  assert_int_equal(hs.n, 8);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(hs.h[i].keylen, want[i].len);
    assert_memory_equal(hs.h[i].key, want[i].k, want[i].len);
  }
  /* [a, a\xff): a and everything starting with a, as etcd's prefix ranges do */
  hs.n = 0;
  assert_int_equal(mvcc_index_range(idx, K("a"), K("b"), 100, collect_hit, &hs), 0);
  assert_int_equal(hs.n, 4);
  /* the empty key on its own */
  hs.n = 0;
  assert_int_equal(mvcc_index_range(idx, NULL, 0, NULL, 0, 100, collect_hit, &hs), 0);
  assert_int_equal(hs.n, 1);
  assert_int_equal(hs.h[0].keylen, 0);
  mvcc_index_destroy(idx);
}

/* A limit is the visitor saying stop: the range returns its value at once. */
static void test_range_limit(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  char key[32];
  for (int i = 0; i < 1000; i++) {
    int n = snprintf(key, sizeof key, "/registry/pods/ns/p%04d", i);
    assert_int_equal(mvcc_index_put(idx, (const uint8_t *)key, (size_t)n, R(i + 1)), 0);
  }
  hits hs = {.n = 0, .limit = 10};
  assert_int_equal(mvcc_index_range(idx, K("/registry/pods/ns/p0500"), K("\0"), 2000, collect_hit, &hs), 7);
  assert_int_equal(hs.n, 10);
  assert_string_equal(hs.h[0].key, "/registry/pods/ns/p0500");
  assert_string_equal(hs.h[9].key, "/registry/pods/ns/p0509");
  /* at revision 505 only p0000..p0504 exist: the limit is not reached */
  hs = (hits){.n = 0, .limit = 10};
  assert_int_equal(
      mvcc_index_range(idx, K("/registry/pods/ns/p0500"), K("/registry/pods/ns0"), 505, collect_hit, &hs), 0);
  assert_int_equal(hs.n, 5);
  mvcc_index_destroy(idx);
}

/* ---- compaction ---- */

typedef struct revlist {
  mvcc_revision r[256];
  int n;
} revlist;

static void collect_rev(void *arg, mvcc_revision r) {
  revlist *l = arg;
  assert_true(l->n < 256);
  l->r[l->n++] = r;
}

static int rev_qsort_cmp(const void *a, const void *b) {
  return mvcc_revision_cmp(*(const mvcc_revision *)a, *(const mvcc_revision *)b);
}

static const char *revlist_str(revlist *l) {
  static char buf[2048];
  qsort(l->r, (size_t)l->n, sizeof(mvcc_revision), rev_qsort_cmp);
  char *p = buf;
  *p = 0;
  for (int i = 0; i < l->n; i++)
    p += l->r[i].sub
             ? sprintf(p, "%s%lld.%lld", i ? " " : "", (long long)l->r[i].main, (long long)l->r[i].sub)
             : sprintf(p, "%s%lld", i ? " " : "", (long long)l->r[i].main);
  return buf;
}

/* etcd TestIndexCompactAndKeep's history (tombstones at 7 and 9, two changes in 10). */
static const struct {
  const char *key;
  bool tomb;
  mvcc_revision rev, created;
  int64_t ver;
} history[] = {
    {"foo", false, {1, 0}, {1, 0}, 1},   {"foo1", false, {2, 0}, {2, 0}, 1},
    {"foo2", false, {3, 0}, {3, 0}, 1},  {"foo2", false, {4, 0}, {3, 0}, 2},
    {"foo", false, {5, 0}, {1, 0}, 2},   {"foo1", false, {6, 0}, {2, 0}, 2},
    {"foo1", true, {7, 0}, {0, 0}, 0},   {"foo1", false, {8, 0}, {8, 0}, 1},
    {"foo", true, {9, 0}, {0, 0}, 0},    {"foo", false, {10, 0}, {10, 0}, 1},
    {"foo1", false, {10, 1}, {8, 0}, 2},
};
#define NHISTORY (sizeof(history) / sizeof(history[0]))
static const int64_t max_rev = 12;

static mvcc_index *history_index(void) {
  mvcc_index *idx = index_new();
  for (size_t i = 0; i < NHISTORY; i++) {
    const uint8_t *k = (const uint8_t *)history[i].key;
    size_t len = strlen(history[i].key);
    int rc = history[i].tomb ? mvcc_index_tombstone(idx, k, len, history[i].rev)
                             : mvcc_index_put(idx, k, len, history[i].rev);
    assert_int_equal(rc, 0);
  }
  return idx;
}

static bool in_list(const revlist *l, mvcc_revision r) {
  for (int i = 0; i < l->n; i++)
    if (mvcc_revision_cmp(l->r[i], r) == 0) return true;
  return false;
}

/* Both indexes answer every get and range alike at every revision from `from`. */
static void assert_same_answers(const mvcc_index *a, const mvcc_index *b, int64_t from) {
  assert_int_equal(mvcc_index_key_count(a), mvcc_index_key_count(b));
  for (int64_t at = from; at <= max_rev; at++) {
    hits ha = {.n = 0}, hb = {.n = 0};
    assert_int_equal(mvcc_index_range(a, NULL, 0, K("\0"), at, collect_hit, &ha), 0);
    assert_int_equal(mvcc_index_range(b, NULL, 0, K("\0"), at, collect_hit, &hb), 0);
    assert_int_equal(ha.n, hb.n);
    for (int i = 0; i < ha.n; i++) {
      assert_string_equal(ha.h[i].key, hb.h[i].key);
      assert_int_equal(mvcc_revision_cmp(ha.h[i].mod, hb.h[i].mod), 0);
      assert_int_equal(mvcc_revision_cmp(ha.h[i].created, hb.h[i].created), 0);
      assert_int_equal(ha.h[i].version, hb.h[i].version);
    }
  }
}

/* etcd TestIndexCompactAndKeep: compacting continuously (or once) at every revision
 * leaves an index equal to one rebuilt, as after a restart, from the revisions the
 * compaction kept plus the newer ones; keep is the kept set minus a tombstone at the
 * compaction revision. */
static void test_compact_and_keep(void **state) {
  (void)state;
  static const char *want_keep[] = {
      [1] = "1",     [2] = "1 2",   [3] = "1 2 3", [4] = "1 2 4",      [5] = "2 4 5",      [6] = "4 5 6",
      [7] = "4 5 7", [8] = "4 5 8", [9] = "4 8 9", [10] = "4 10 10.1", [11] = "4 10 10.1",
  };
  for (int once = 0; once < 2; once++) {
    mvcc_index *idx = history_index();
    for (int64_t c = 1; c < max_rev; c++) {
      if (once) {
        mvcc_index_destroy(idx);
        idx = history_index();
      }
      revlist hash = {.n = 0}, am = {.n = 0};
      mvcc_index_keep(idx, c, collect_rev, &hash);
      mvcc_index_compact(idx, c, collect_rev, &am);
      /* keep leaves out a tombstone at exactly c */
      revlist want_hash = {.n = 0};
      for (int i = 0; i < am.n; i++) {
        bool tomb_at_c = false;
        for (size_t h = 0; h < NHISTORY; h++)
          if (history[h].tomb && mvcc_revision_cmp(history[h].rev, am.r[i]) == 0 && am.r[i].main == c)
            tomb_at_c = true;
        if (!tomb_at_c) want_hash.r[want_hash.n++] = am.r[i];
      }
      char got_am[256];
      snprintf(got_am, sizeof got_am, "%s", revlist_str(&am));
      if (strcmp(got_am, want_keep[c]) != 0)
        fail_msg("compact %lld: kept %s, want %s", (long long)c, got_am, want_keep[c]);
      char got_hash[256];
      snprintf(got_hash, sizeof got_hash, "%s", revlist_str(&hash));
      assert_string_equal(got_hash, revlist_str(&want_hash));

      /* rebuild from what a revision store holds after this compaction */
      mvcc_index *w = index_new();
      for (size_t h = 0; h < NHISTORY; h++) {
        if (!in_list(&am, history[h].rev) && history[h].rev.main <= c) continue;
        const uint8_t *k = (const uint8_t *)history[h].key;
        size_t len = strlen(history[h].key);
        int rc;
        /* first surviving record of the key: restore; later ones: put / tombstone */
        bool first = true;
        for (size_t e = 0; e < h; e++)
          if (!strcmp(history[e].key, history[h].key) &&
              (in_list(&am, history[e].rev) || history[e].rev.main > c))
            first = false;
        if (first)
          rc = history[h].tomb
                   ? mvcc_index_restore_tombstone(w, k, len, history[h].rev)
                   : mvcc_index_restore(w, k, len, history[h].created, history[h].rev, history[h].ver);
        else
          rc = history[h].tomb ? mvcc_index_tombstone(w, k, len, history[h].rev)
                               : mvcc_index_put(w, k, len, history[h].rev);
        assert_int_equal(rc, 0);
      }
      assert_same_answers(idx, w, c);
      mvcc_index_destroy(w);
    }
    mvcc_index_destroy(idx);
  }
}

static void count_rev(void *arg, mvcc_revision r) {
  (void)r;
  ++*(size_t *)arg;
}

/* Compaction removes keys whose history is gone, and gives back their memory. */
static void test_compact_removes_keys(void **state) {
  (void)state;
  mvcc_index *idx = index_new();
  size_t empty = mvcc_index_memory_bytes(idx);
  char key[32];
  int64_t rev = 1;
  enum { N = 5000 };
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof key, "key-%06d", (i * 7919) % N);
    assert_int_equal(mvcc_index_put(idx, (const uint8_t *)key, (size_t)n, R(rev++)), 0);
  }
  assert_int_equal(mvcc_index_key_count(idx), N);
  size_t full = mvcc_index_memory_bytes(idx);
  assert_true(full > empty + N * 48);
  for (int i = 0; i < N; i += 2) {
    int n = snprintf(key, sizeof key, "key-%06d", i);
    assert_int_equal(mvcc_index_tombstone(idx, (const uint8_t *)key, (size_t)n, R(rev++)), 0);
  }
  assert_int_equal(mvcc_index_key_count(idx), N); /* deleted keys keep their history */
  /* at the last tombstone, that one tombstone survives (etcd keeps it for watchers) */
  size_t kept = 0;
  mvcc_index_compact(idx, rev - 1, count_rev, &kept);
  assert_int_equal(mvcc_index_key_count(idx), N / 2 + 1);
  assert_int_equal(kept, N / 2 + 1);
  kept = 0;
  mvcc_index_compact(idx, rev, count_rev, &kept);
  assert_int_equal(mvcc_index_key_count(idx), N / 2);
  assert_int_equal(kept, N / 2);
  assert_true(mvcc_index_memory_bytes(idx) < full * 3 / 4);
  /* all gone */
  for (int i = 1; i < N; i += 2) {
    int n = snprintf(key, sizeof key, "key-%06d", i);
    assert_int_equal(mvcc_index_tombstone(idx, (const uint8_t *)key, (size_t)n, R(rev++)), 0);
  }
  mvcc_index_compact(idx, rev, NULL, NULL);
  assert_int_equal(mvcc_index_key_count(idx), 0);
  assert_int_equal(mvcc_index_memory_bytes(idx), empty);
  hits hs = {.n = 0};
  assert_int_equal(mvcc_index_range(idx, NULL, 0, K("\0"), rev, collect_hit, &hs), 0);
  assert_int_equal(hs.n, 0);
  /* and the index takes new keys again */
  assert_int_equal(mvcc_index_put(idx, K("key-000001"), R(rev)), 0);
  assert_int_equal(mvcc_index_key_count(idx), 1);
  mvcc_index_destroy(idx);
}

/* ---- property test against a naive model ---- */

enum { NKEYS = 24, TXNS = 20000 };

static const struct {
  const char *k;
  size_t len;
} keyspace[NKEYS] = {
    {"", 0},
    {"\0", 1},
    {"\0\0", 2},
    {"a", 1},
    {"a\0", 2},
    {"ab", 2},
    {"abc", 3},
    {"abd", 3},
    {"ac", 2},
    {"b", 1},
    {"ba", 2},
    {"bb", 2},
    {"foo", 3},
    {"foo/", 4},
    {"foo/bar", 7},
    {"foo/baz", 7},
    {"foo0", 4},
    {"fop", 3},
    {"z", 1},
    {"\xff", 1},
    {"\xff\xff", 2},
    {"/registry/pods/default/web-0", 28},
    {"/registry/pods/default/web-1", 28},
    {"/registry/pods/kube-system/dns", 30},
};

typedef struct event {
  mvcc_revision rev;
  bool tomb;
  bool stored;           /* still in the revision store */
  mvcc_revision created; /* of a put: the state it wrote */
  int64_t version;
} event;

typedef struct mkey {
  int id; /* index in keyspace */
  event *ev;
  size_t n, cap;
} mkey;

typedef struct model {
  mkey keys[NKEYS]; /* sorted by key bytes */
  int64_t rev;      /* newest main revision written */
  int64_t compacted;
  uint64_t rng;
} model;

static uint64_t mrand(model *m) {
  uint64_t x = m->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return m->rng = x;
}

static int keyspace_cmp(const void *a, const void *b) {
  const mkey *x = a, *y = b;
  return mvcc_btree_key_cmp((const uint8_t *)keyspace[x->id].k, keyspace[x->id].len,
                            (const uint8_t *)keyspace[y->id].k, keyspace[y->id].len);
}

static const event *newest_at(const mkey *k, int64_t at) {
  for (size_t i = k->n; i-- > 0;)
    if (k->ev[i].rev.main <= at) return &k->ev[i];
  return NULL;
}

static bool model_live(const mkey *k) {
  return k->n && !k->ev[k->n - 1].tomb;
}

static void model_append(mkey *k, event e) {
  if (k->n == k->cap) {
    k->cap = k->cap ? k->cap * 2 : 16;
    k->ev = realloc(k->ev, k->cap * sizeof(event));
    assert_non_null(k->ev);
  }
  k->ev[k->n++] = e;
}

static const uint8_t *kb(const mkey *k) {
  return (const uint8_t *)keyspace[k->id].k;
}
static size_t kl(const mkey *k) {
  return keyspace[k->id].len;
}

static void check_get(const mvcc_index *idx, const mkey *k, int64_t at) {
  const event *e = newest_at(k, at);
  mvcc_revision mod, created;
  int64_t ver;
  int rc = mvcc_index_get(idx, kb(k), kl(k), at, &mod, &created, &ver);
  if (!e || e->tomb) {
    assert_int_equal(rc, -ENOENT);
    return;
  }
  assert_int_equal(rc, 0);
  assert_int_equal(mvcc_revision_cmp(mod, e->rev), 0);
  assert_int_equal(mvcc_revision_cmp(created, e->created), 0);
  assert_int_equal(ver, e->version);
}

/* A range [lo, hi) of keyspace positions (hi = -1: to the end; lo == hi: single key). */
static void check_range(const mvcc_index *idx, const model *m, const uint8_t *key, size_t keylen,
                        const uint8_t *end, size_t endlen, int64_t at, int limit) {
  hits hs = {.n = 0, .limit = limit};
  int rc = mvcc_index_range(idx, key, keylen, end, endlen, at, collect_hit, &hs);
  int n = 0;
  bool single = !end || !endlen, to_last = endlen == 1 && end[0] == 0;
  for (int i = 0; i < NKEYS; i++) {
    const mkey *k = &m->keys[i];
    int c = mvcc_btree_key_cmp(kb(k), kl(k), key, keylen);
    if (single ? c != 0 : c < 0) continue;
    if (!single && !to_last && mvcc_btree_key_cmp(kb(k), kl(k), end, endlen) >= 0) continue;
    const event *e = newest_at(k, at);
    if (!e || e->tomb) continue;
    if (limit && n == limit) break;
    assert_true(n < hs.n);
    assert_int_equal(hs.h[n].keylen, kl(k));
    assert_memory_equal(hs.h[n].key, kb(k), kl(k));
    assert_int_equal(mvcc_revision_cmp(hs.h[n].mod, e->rev), 0);
    assert_int_equal(mvcc_revision_cmp(hs.h[n].created, e->created), 0);
    assert_int_equal(hs.h[n].version, e->version);
    n++;
  }
  assert_int_equal(hs.n, n);
  assert_int_equal(rc, limit && n == limit ? 7 : 0);
}

static size_t model_key_count(const model *m) {
  size_t n = 0;
  for (int i = 0; i < NKEYS; i++) {
    const mkey *k = &m->keys[i];
    if (k->n && !(k->ev[k->n - 1].tomb && k->ev[k->n - 1].rev.main < m->compacted)) n++;
  }
  return n;
}

/* The revisions compaction at c must keep (hash: as keep() reports them). */
static void model_keep(const model *m, int64_t c, bool hash, revlist *out) {
  out->n = 0;
  for (int i = 0; i < NKEYS; i++) {
    const event *e = newest_at(&m->keys[i], c);
    if (!e) continue;
    if (e->tomb && (hash || e->rev.main != c)) continue;
    out->r[out->n++] = e->rev;
  }
}

static void random_bound(model *m, const uint8_t **b, size_t *len, char *scratch) {
  if (mrand(m) % 2) {
    int i = (int)(mrand(m) % NKEYS);
    *b = (const uint8_t *)keyspace[i].k;
    *len = keyspace[i].len;
    return;
  }
  *len = mrand(m) % 4;
  for (size_t i = 0; i < *len; i++) scratch[i] = "\0abfo\xff/"[mrand(m) % 7];
  *b = (const uint8_t *)scratch;
}

static void check_all(const mvcc_index *idx, model *m) {
  assert_int_equal(mvcc_index_key_count(idx), model_key_count(m));
  assert_true(mvcc_index_memory_bytes(idx) > 0);
  int64_t span = m->rev - m->compacted + 1;
  for (int q = 0; q < 3; q++) {
    int64_t at = m->compacted + (int64_t)(mrand(m) % (uint64_t)span);
    check_range(idx, m, NULL, 0, (const uint8_t *)"\0", 1, at, 0);
    for (int i = 0; i < 4; i++) check_get(idx, &m->keys[mrand(m) % NKEYS], at);
    const uint8_t *key, *end;
    size_t keylen, endlen;
    char s1[4], s2[4];
    random_bound(m, &key, &keylen, s1);
    random_bound(m, &end, &endlen, s2);
    switch (mrand(m) % 4) {
    case 0:
      endlen = 0; /* single key */
      break;
    case 1:
      end = (const uint8_t *)"\0"; /* to the last key */
      endlen = 1;
      break;
    }
    check_range(idx, m, key, keylen, end, endlen, at, (int)(mrand(m) % 4));
  }
}

static void compact(mvcc_index *idx, model *m, int64_t c) {
  revlist want = {.n = 0}, got = {.n = 0};
  char w[2048];
  model_keep(m, c, true, &want);
  mvcc_index_keep(idx, c, collect_rev, &got);
  snprintf(w, sizeof w, "%s", revlist_str(&want));
  assert_string_equal(revlist_str(&got), w);

  model_keep(m, c, false, &want);
  got.n = 0;
  mvcc_index_compact(idx, c, collect_rev, &got);
  snprintf(w, sizeof w, "%s", revlist_str(&want));
  assert_string_equal(revlist_str(&got), w);
  m->compacted = c;
  /* the revision store frees what is not kept */
  for (int i = 0; i < NKEYS; i++) {
    mkey *k = &m->keys[i];
    for (size_t j = 0; j < k->n && k->ev[j].rev.main <= c; j++)
      if (k->ev[j].stored) k->ev[j].stored = in_list(&want, k->ev[j].rev);
  }
}

typedef struct stored_ref {
  mvcc_revision rev;
  int key;
  size_t ev;
} stored_ref;

static int stored_cmp(const void *a, const void *b) {
  return mvcc_revision_cmp(((const stored_ref *)a)->rev, ((const stored_ref *)b)->rev);
}

/* A restart: a new index from the records the revision store holds, in revision
 * order (etcd's restoreIntoIndex). */
static mvcc_index *rebuild(const model *m) {
  size_t n = 0;
  for (int i = 0; i < NKEYS; i++)
    for (size_t j = 0; j < m->keys[i].n; j++) n += m->keys[i].ev[j].stored;
  stored_ref *refs = malloc((n + 1) * sizeof(stored_ref));
  n = 0;
  for (int i = 0; i < NKEYS; i++)
    for (size_t j = 0; j < m->keys[i].n; j++)
      if (m->keys[i].ev[j].stored) refs[n++] = (stored_ref){m->keys[i].ev[j].rev, i, j};
  qsort(refs, n, sizeof(stored_ref), stored_cmp);
  mvcc_index *idx = index_new();
  bool seen[NKEYS] = {false};
  for (size_t r = 0; r < n; r++) {
    const mkey *k = &m->keys[refs[r].key];
    const event *e = &k->ev[refs[r].ev];
    int rc;
    if (!seen[refs[r].key])
      rc = e->tomb ? mvcc_index_restore_tombstone(idx, kb(k), kl(k), e->rev)
                   : mvcc_index_restore(idx, kb(k), kl(k), e->created, e->rev, e->version);
    else
      rc = e->tomb ? mvcc_index_tombstone(idx, kb(k), kl(k), e->rev)
                   : mvcc_index_put(idx, kb(k), kl(k), e->rev);
    assert_int_equal(rc, 0);
    seen[refs[r].key] = true;
  }
  free(refs);
  return idx;
}

static void run_property(uint64_t seed) {
  model m = {.rng = seed};
  for (int i = 0; i < NKEYS; i++) m.keys[i].id = i;
  qsort(m.keys, NKEYS, sizeof(mkey), keyspace_cmp);
  mvcc_index *idx = index_new();
  int64_t last_tomb = 0;
  size_t compactions = 0, rebuilds = 0, tomb_compactions = 0;

  for (int t = 0; t < TXNS; t++) {
    /* a txn: 1-3 changes to distinct keys at one main revision (etcd refuses a txn
     * that touches a key twice) */
    int64_t main = m.rev + 1, sub = 0;
    int nops = 1 + (int)(mrand(&m) % 3);
    bool used[NKEYS] = {false};
    for (int o = 0; o < nops; o++) {
      int ki = (int)(mrand(&m) % NKEYS);
      if (used[ki]) continue;
      used[ki] = true;
      mkey *k = &m.keys[ki];
      mvcc_revision rev = {main, sub};
      if (mrand(&m) % 10 < 7) {
        assert_int_equal(mvcc_index_put(idx, kb(k), kl(k), rev), 0);
        event e = {.rev = rev, .stored = true, .created = rev, .version = 1};
        if (model_live(k)) {
          e.created = k->ev[k->n - 1].created;
          e.version = k->ev[k->n - 1].version + 1;
        }
        model_append(k, e);
        sub++;
      } else {
        int rc = mvcc_index_tombstone(idx, kb(k), kl(k), rev);
        if (!model_live(k)) {
          assert_int_equal(rc, -ENOENT); /* nothing written, no revision used */
          continue;
        }
        assert_int_equal(rc, 0);
        model_append(k, (event){.rev = rev, .tomb = true, .stored = true});
        last_tomb = main;
        sub++;
      }
    }
    if (sub) m.rev = main;

    if (mrand(&m) % 150 == 0 && m.rev > m.compacted) {
      int64_t c = m.compacted + 1 + (int64_t)(mrand(&m) % (uint64_t)(m.rev - m.compacted));
      if (mrand(&m) % 2 && last_tomb > m.compacted) {
        c = last_tomb; /* at a tombstone: etcd's special case */
        tomb_compactions++;
      }
      compact(idx, &m, c);
      compactions++;
      check_all(idx, &m);
    }
    if (t % 2500 == 2499) {
      mvcc_index *fresh = rebuild(&m);
      check_all(fresh, &m);
      mvcc_index_destroy(idx);
      idx = fresh;
      rebuilds++;
    }
    if (t % 25 == 0) check_all(idx, &m);
  }
  compact(idx, &m, m.rev);
  check_all(idx, &m);
  assert_true(compactions > 50 && tomb_compactions > 10 && rebuilds == TXNS / 2500);
  mvcc_index_destroy(idx);
  for (int i = 0; i < NKEYS; i++) free(m.keys[i].ev);
}

static void test_property(void **state) {
  (void)state;
  run_property(0x243f6a8885a308d3ull);
  run_property(0x13198a2e03707344ull);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_revision_cmp),
      cmocka_unit_test(test_get),
      cmocka_unit_test(test_put_delete_put),
      cmocka_unit_test(test_tombstone_and_errors),
      cmocka_unit_test(test_range),
      cmocka_unit_test(test_range_byte_order),
      cmocka_unit_test(test_range_limit),
      cmocka_unit_test(test_compact_and_keep),
      cmocka_unit_test(test_compact_removes_keys),
      cmocka_unit_test(test_property),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
