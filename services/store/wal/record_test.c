/* services/store/wal/record_test.c — the WAL record codec: round trips of every
 * kind (WAL records and snapshot records), byte-identical output to protoc's
 * encoder (golden files made from testdata/golden_<name>.txtpb at build time),
 * exact sizes, ENOSPC without overrun, all-or-nothing decoding of truncated and
 * corrupted records, strictness about unknown bodies and change types, forward
 * compatibility of unknown fields, and no heap allocation (malloc is wrapped at
 * link time and counted). */
#include "services/store/wal/record.h"

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

/* ---------- allocation counting (-Wl,--wrap=malloc,...) ---------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
static volatile int g_counting, g_allocs; /* volatile: malloc is a builtin to gcc */
void *__wrap_malloc(size_t n) {
  if (g_counting) g_allocs++;
  return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m) {
  if (g_counting) g_allocs++;
  return __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n) {
  if (g_counting) g_allocs++;
  return __real_realloc(p, n);
}

/* argv: golden files in the order txn, compact, lease_grant, lease_revoke,
 * snapshot_meta, snapshot_kv, snapshot_tombstone (BUILD.bazel). */
#define NGOLDEN 7
static char **g_golden;
static int g_ngolden;

/* ---------- a visitor that logs everything it sees ---------- */

#define MAX_EVENTS 512
typedef struct event {
  char kind; /* 'T' txn, 'C' change, 'K' compact, 'G' grant, 'R' revoke,
                'M' snapshot meta, 'V' snapshot kv */
  int64_t a, b, c;
  uint64_t u;
  size_t n;
  store_change change;
  store_snapshot_kv kv;
} event;

typedef struct recorder {
  event ev[MAX_EVENTS];
  int n;
  const uint8_t *buf; /* decoded buffer: slices must point into it */
  size_t len;
  int abort_at; /* return -EINTR on this event number (0 = never) */
} recorder;

static int rec_push(recorder *r, event e) {
  if (r->n >= MAX_EVENTS) return -E2BIG;
  r->ev[r->n++] = e;
  if (r->abort_at && r->n == r->abort_at) return -EINTR;
  return 0;
}

static bool in_buf(const recorder *r, store_slice s) {
  if (s.len == 0) return s.data != NULL;
  return s.data >= r->buf && s.data + s.len <= r->buf + r->len;
}

static int v_txn(void *arg, int64_t rev, size_t n, int64_t revoke) {
  return rec_push(arg, (event){.kind = 'T', .a = rev, .n = n, .b = revoke});
}
static int v_change(void *arg, int64_t rev, size_t sub, const store_change *c) {
  recorder *r = arg;
  if (!in_buf(r, c->key) || !in_buf(r, c->value)) return -EFAULT;
  return rec_push(r, (event){.kind = 'C', .a = rev, .n = sub, .change = *c});
}
static int v_compact(void *arg, int64_t rev) {
  return rec_push(arg, (event){.kind = 'K', .a = rev});
}
static int v_grant(void *arg, int64_t id, int64_t ttl) {
  return rec_push(arg, (event){.kind = 'G', .a = id, .b = ttl});
}
static int v_revoke(void *arg, int64_t id) {
  return rec_push(arg, (event){.kind = 'R', .a = id});
}
static int v_meta(void *arg, int64_t rev, int64_t compact_rev, uint64_t wal_index) {
  return rec_push(arg, (event){.kind = 'M', .a = rev, .b = compact_rev, .u = wal_index});
}
static int v_kv(void *arg, const store_snapshot_kv *kv) {
  recorder *r = arg;
  if (!in_buf(r, kv->key) || !in_buf(r, kv->value)) return -EFAULT;
  return rec_push(r, (event){.kind = 'V', .kv = *kv});
}
static const store_record_visitor k_visitor = {v_txn,    v_change, v_compact, v_grant,
                                               v_revoke, v_meta,   v_kv};

static int decode_into(recorder *r, const uint8_t *buf, size_t len, keel_error *err) {
  r->n = 0;
  r->buf = buf;
  r->len = len;
  return store_record_decode(buf, len, &k_visitor, r, err);
}

static bool slice_eq(store_slice a, store_slice b) {
  return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Checks that r holds exactly what rec describes. */
static void assert_matches(const recorder *r, const store_record *rec) {
  switch (rec->kind) {
    case STORE_RECORD_TXN:
      assert_int_equal(r->n, 1 + (int)rec->txn.nchanges);
      assert_int_equal(r->ev[0].kind, 'T');
      assert_int_equal(r->ev[0].a, rec->txn.revision);
      assert_int_equal(r->ev[0].n, rec->txn.nchanges);
      assert_int_equal(r->ev[0].b, rec->txn.revoke_lease);
      for (size_t i = 0; i < rec->txn.nchanges; i++) {
        const event *e = &r->ev[1 + i];
        const store_change *c = &rec->txn.changes[i];
        assert_int_equal(e->kind, 'C');
        assert_int_equal(e->a, rec->txn.revision);
        assert_int_equal(e->n, i);
        assert_int_equal(e->change.type, c->type);
        assert_true(slice_eq(e->change.key, c->key));
        if (c->type == STORE_CHANGE_PUT) {
          assert_true(slice_eq(e->change.value, c->value));
          assert_int_equal(e->change.lease, c->lease);
        } else {
          assert_int_equal(e->change.value.len, 0);
          assert_int_equal(e->change.lease, 0);
        }
      }
      break;
    case STORE_RECORD_COMPACT:
      assert_int_equal(r->n, 1);
      assert_int_equal(r->ev[0].kind, 'K');
      assert_int_equal(r->ev[0].a, rec->compact.revision);
      break;
    case STORE_RECORD_LEASE_GRANT:
      assert_int_equal(r->n, 1);
      assert_int_equal(r->ev[0].kind, 'G');
      assert_int_equal(r->ev[0].a, rec->lease_grant.id);
      assert_int_equal(r->ev[0].b, rec->lease_grant.ttl);
      break;
    case STORE_RECORD_LEASE_REVOKE:
      assert_int_equal(r->n, 1);
      assert_int_equal(r->ev[0].kind, 'R');
      assert_int_equal(r->ev[0].a, rec->lease_revoke.id);
      break;
    case STORE_RECORD_SNAPSHOT_META:
      assert_int_equal(r->n, 1);
      assert_int_equal(r->ev[0].kind, 'M');
      assert_int_equal(r->ev[0].a, rec->snapshot_meta.revision);
      assert_int_equal(r->ev[0].b, rec->snapshot_meta.compact_revision);
      assert_true(r->ev[0].u == rec->snapshot_meta.wal_index);
      break;
    case STORE_RECORD_SNAPSHOT_KV: {
      const store_snapshot_kv *got = &r->ev[0].kv, *want = &rec->snapshot_kv;
      assert_int_equal(r->n, 1);
      assert_int_equal(r->ev[0].kind, 'V');
      assert_int_equal(got->main, want->main);
      assert_int_equal(got->sub, want->sub);
      assert_true(slice_eq(got->key, want->key));
      assert_true(slice_eq(got->value, want->value));
      assert_int_equal(got->create_revision, want->create_revision);
      assert_int_equal(got->version, want->version);
      assert_int_equal(got->lease, want->lease);
      assert_int_equal(got->tombstone, want->tombstone);
      break;
    }
  }
}

/* Encodes rec (checking size, ENOSPC for every smaller buffer, no allocation,
 * no write past cap) then decodes and compares. Returns the encoded length. */
static size_t round_trip(const store_record *rec, uint8_t *out, size_t out_cap) {
  size_t size = 0, len = 0;
  g_counting = 1;
  g_allocs = 0;
  assert_int_equal(store_record_encoded_size(rec, &size), 0);
  assert_true(size + 16 <= out_cap);
  memset(out, 0xA5, out_cap);
  assert_int_equal(store_record_encode(rec, out, size, &len), 0);
  assert_int_equal(len, size);
  for (size_t i = size; i < size + 16; i++) assert_int_equal(out[i], 0xA5);
  g_counting = 0;
  assert_int_equal(g_allocs, 0);

  /* Every smaller capacity fails cleanly and writes nothing past it. */
  uint8_t *tmp = malloc(size + 16);
  size_t step = size > 2000 ? size / 97 : 1;
  for (size_t cap = 0; cap < size; cap += step) {
    memset(tmp, 0x5A, size + 16);
    size_t l2 = 12345;
    assert_int_equal(store_record_encode(rec, tmp, cap, &l2), -ENOSPC);
    for (size_t i = cap; i < size + 16; i++) assert_int_equal(tmp[i], 0x5A);
  }
  free(tmp);

  recorder *r = calloc(1, sizeof(*r));
  keel_error err = {0};
  g_counting = 1;
  g_allocs = 0;
  int rc = decode_into(r, out, len, &err);
  g_counting = 0;
  assert_int_equal(rc, 0);
  assert_int_equal(g_allocs, 0);
  assert_matches(r, rec);
  assert_int_equal(store_record_kind_of(out, len, NULL), rec->kind);
  free(r);
  return len;
}

/* The counter really sees allocations (so "0 allocations" below means something). */
static void test_alloc_counter_works(void **state) {
  (void)state;
  g_counting = 1;
  g_allocs = 0;
  void *volatile p = malloc(16);
  g_counting = 0;
  assert_int_equal(g_allocs, 1);
  free(p);
}

static void test_round_trip_all_kinds(void **state) {
  (void)state;
  static uint8_t buf[1 << 16];
  uint8_t binkey[] = {0, 1, 2, 0xff, 0};
  store_change ch[] = {
      {.type = STORE_CHANGE_PUT,
       .key = STORE_SLICE_STR("/registry/pods/default/web-1"),
       .value = STORE_SLICE_STR("value-1"),
       .lease = 0x7fffffffffffffffLL},
      {.type = STORE_CHANGE_DELETE, .key = STORE_SLICE_STR("/registry/pods/default/web-0")},
      {.type = STORE_CHANGE_PUT, .key = {binkey, sizeof(binkey)}, .value = {NULL, 0}},
      {.type = STORE_CHANGE_PUT, .key = {NULL, 0}, .value = STORE_SLICE_STR("empty key")},
      {.type = STORE_CHANGE_PUT,
       .key = STORE_SLICE_STR("neg"),
       .value = STORE_SLICE_STR("v"),
       .lease = -3},
  };
  store_record txn = {.kind = STORE_RECORD_TXN,
                      .txn = {.revision = 1, .changes = ch, .nchanges = 5, .revoke_lease = 77}};
  round_trip(&txn, buf, sizeof(buf));
  store_record empty_txn = {.kind = STORE_RECORD_TXN, .txn = {.revision = 9}};
  round_trip(&empty_txn, buf, sizeof(buf));
  store_record big_rev = {.kind = STORE_RECORD_TXN,
                          .txn = {.revision = INT64_MAX, .changes = ch, .nchanges = 1}};
  round_trip(&big_rev, buf, sizeof(buf));
  int64_t vals[] = {0, 1, -1, INT64_MIN, INT64_MAX, 300};
  for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
    store_record c = {.kind = STORE_RECORD_COMPACT, .compact = {.revision = vals[i]}};
    round_trip(&c, buf, sizeof(buf));
    store_record g = {.kind = STORE_RECORD_LEASE_GRANT,
                      .lease_grant = {.id = vals[i], .ttl = vals[(i + 1) % 6]}};
    round_trip(&g, buf, sizeof(buf));
    store_record rv = {.kind = STORE_RECORD_LEASE_REVOKE, .lease_revoke = {.id = vals[i]}};
    round_trip(&rv, buf, sizeof(buf));
  }
}

static void test_round_trip_large_txn(void **state) {
  (void)state;
  enum { N = 300 };
  store_change *ch = calloc(N, sizeof(*ch));
  uint8_t *bytes = malloc(N * 300);
  for (int i = 0; i < N; i++) {
    for (int j = 0; j < 300; j++) bytes[i * 300 + j] = (uint8_t)(i * 31 + j);
    ch[i].type = (i % 3 == 0) ? STORE_CHANGE_DELETE : STORE_CHANGE_PUT;
    ch[i].key = (store_slice){bytes + i * 300, 1 + (size_t)(i % 50)};
    ch[i].value = (store_slice){bytes + i * 300 + 50, (size_t)(i % 250)};
    ch[i].lease = i % 7;
  }
  store_record r = {.kind = STORE_RECORD_TXN,
                    .txn = {.revision = 123456789, .changes = ch, .nchanges = N}};
  size_t cap = 1 << 20;
  uint8_t *buf = malloc(cap);
  round_trip(&r, buf, cap);
  free(buf);
  free(bytes);
  free(ch);
}

static void test_invalid_records(void **state) {
  (void)state;
  uint8_t buf[256];
  size_t n;
  store_record bad_kind = {.kind = (store_record_kind)9};
  assert_int_equal(store_record_encoded_size(&bad_kind, &n), -EINVAL);
  assert_int_equal(store_record_encode(&bad_kind, buf, sizeof(buf), &n), -EINVAL);
  store_record null_changes = {.kind = STORE_RECORD_TXN, .txn = {.nchanges = 2}};
  assert_int_equal(store_record_encode(&null_changes, buf, sizeof(buf), &n), -EINVAL);
  store_change bad_type = {.type = (store_change_type)5, .key = STORE_SLICE_STR("k")};
  store_record r1 = {.kind = STORE_RECORD_TXN, .txn = {.changes = &bad_type, .nchanges = 1}};
  assert_int_equal(store_record_encode(&r1, buf, sizeof(buf), &n), -EINVAL);
  store_change null_key = {.type = STORE_CHANGE_PUT, .key = {NULL, 3}};
  store_record r2 = {.kind = STORE_RECORD_TXN, .txn = {.changes = &null_key, .nchanges = 1}};
  assert_int_equal(store_record_encoded_size(&r2, &n), -EINVAL);
  assert_int_equal(store_record_encode(NULL, buf, sizeof(buf), &n), -EINVAL);
}

static uint8_t *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  uint8_t *buf = malloc(1 << 16);
  *len = fread(buf, 1, 1 << 16, f);
  fclose(f);
  return buf;
}

static void test_golden_protoc(void **state) {
  (void)state;
  assert_int_equal(g_ngolden, NGOLDEN);
  store_change ch[] = {
      {.type = STORE_CHANGE_PUT,
       .key = STORE_SLICE_STR("foo"),
       .value = STORE_SLICE_STR("bar"),
       .lease = 7},
      {.type = STORE_CHANGE_DELETE, .key = STORE_SLICE_STR("baz")},
      {.type = STORE_CHANGE_PUT, .key = {(const uint8_t *)"k\0\377", 3}, .value = {NULL, 0}},
  };
  store_record recs[4] = {
      {.kind = STORE_RECORD_TXN,
       .txn = {.revision = 42, .changes = ch, .nchanges = 3, .revoke_lease = 9}},
      {.kind = STORE_RECORD_COMPACT, .compact = {.revision = -1}},
      {.kind = STORE_RECORD_LEASE_GRANT, .lease_grant = {.id = 1234567890123LL, .ttl = 60}},
      {.kind = STORE_RECORD_LEASE_REVOKE, .lease_revoke = {.id = 7}},
  };
  for (int i = 0; i < 4; i++) {
    size_t glen;
    uint8_t *golden = read_file(g_golden[i], &glen);
    uint8_t buf[256];
    size_t len;
    assert_int_equal(store_record_encode(&recs[i], buf, sizeof(buf), &len), 0);
    assert_int_equal(len, glen);
    assert_memory_equal(buf, golden, glen);
    recorder *r = calloc(1, sizeof(*r));
    assert_int_equal(decode_into(r, golden, glen, NULL), 0);
    assert_matches(r, &recs[i]);
    free(r);
    free(golden);
  }
}

/* Every proper prefix of a valid record either fails with nothing delivered,
 * or is itself a complete valid record (cut exactly between fields). */
static void test_truncated_all_or_nothing(void **state) {
  (void)state;
  store_change ch[] = {
      {.type = STORE_CHANGE_PUT, .key = STORE_SLICE_STR("alpha"), .value = STORE_SLICE_STR("1")},
      {.type = STORE_CHANGE_DELETE, .key = STORE_SLICE_STR("beta")},
      {.type = STORE_CHANGE_PUT,
       .key = STORE_SLICE_STR("gamma"),
       .value = STORE_SLICE_STR("333"),
       .lease = 5},
  };
  store_record rec = {.kind = STORE_RECORD_TXN,
                      .txn = {.revision = 1000, .changes = ch, .nchanges = 3, .revoke_lease = 2}};
  uint8_t buf[256];
  size_t len;
  assert_int_equal(store_record_encode(&rec, buf, sizeof(buf), &len), 0);
  recorder *r = calloc(1, sizeof(*r));
  for (size_t cut = 0; cut < len; cut++) {
    /* A copy of exactly `cut` bytes so ASan catches any read past it. */
    uint8_t *p = malloc(cut ? cut : 1);
    memcpy(p, buf, cut);
    keel_error err = {0};
    int rc = decode_into(r, p, cut, &err);
    if (rc != 0) {
      assert_int_equal(rc, -EBADMSG);
      assert_int_equal(r->n, 0);
      assert_true(strlen(err.message) > 0);
    }
    free(p);
  }
  free(r);
}

/* Flipping any bit never crashes, and a failed decode delivers nothing. */
static void test_bit_flips(void **state) {
  (void)state;
  store_change ch[] = {
      {.type = STORE_CHANGE_PUT, .key = STORE_SLICE_STR("key-one"), .value = STORE_SLICE_STR("v1")},
      {.type = STORE_CHANGE_DELETE, .key = STORE_SLICE_STR("key-two")},
  };
  store_record rec = {.kind = STORE_RECORD_TXN,
                      .txn = {.revision = 77, .changes = ch, .nchanges = 2}};
  uint8_t buf[128];
  size_t len;
  assert_int_equal(store_record_encode(&rec, buf, sizeof(buf), &len), 0);
  recorder *r = calloc(1, sizeof(*r));
  int failed = 0;
  for (size_t i = 0; i < len * 8; i++) {
    uint8_t *p = malloc(len);
    memcpy(p, buf, len);
    p[i / 8] ^= (uint8_t)(1u << (i % 8));
    int rc = decode_into(r, p, len, NULL);
    if (rc != 0) {
      assert_int_equal(rc, -EBADMSG);
      assert_int_equal(r->n, 0);
      failed++;
    }
    free(p);
  }
  assert_true(failed > 0);
  free(r);
}

static void test_random_garbage(void **state) {
  (void)state;
  recorder *r = calloc(1, sizeof(*r));
  uint32_t seed = 99;
  for (int iter = 0; iter < 100000; iter++) {
    size_t len = (size_t)(iter % 40);
    uint8_t *p = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i++) {
      seed = seed * 1664525u + 1013904223u;
      p[i] = (uint8_t)(seed >> 24);
    }
    int rc = decode_into(r, p, len, NULL);
    if (rc != 0) {
      assert_int_equal(rc, -EBADMSG);
      assert_int_equal(r->n, 0);
    }
    free(p);
  }
  free(r);
}

static void test_strictness(void **state) {
  (void)state;
  recorder *r = calloc(1, sizeof(*r));
  keel_error err = {0};
  /* Empty: no body. */
  assert_int_equal(decode_into(r, NULL, 0, &err), -EBADMSG);
  assert_non_null(strstr(err.message, "no known body"));
  /* A body member from the future (field 7, length-delimited, empty; 5 and 6
   * are the snapshot records now, see test_snapshot_strictness). */
  const uint8_t future[] = {0x3a, 0x00};
  assert_int_equal(decode_into(r, future, sizeof(future), &err), -EBADMSG);
  /* A change type this binary does not know (type = 2). */
  const uint8_t bad_type[] = {0x0a, 0x06, 0x12, 0x04, 0x08, 0x02, 0x12, 0x00};
  assert_int_equal(decode_into(r, bad_type, sizeof(bad_type), &err), -EBADMSG);
  assert_non_null(strstr(err.message, "change type"));
  assert_int_equal(r->n, 0);
  /* The body twice (compact then compact). */
  const uint8_t twice[] = {0x12, 0x02, 0x08, 0x01, 0x12, 0x02, 0x08, 0x02};
  assert_int_equal(decode_into(r, twice, sizeof(twice), &err), -EBADMSG);
  /* txn then compact: the txn's change must not be delivered. */
  const uint8_t mixed[] = {0x0a, 0x04, 0x12, 0x02, 0x12, 0x00, 0x12, 0x02, 0x08, 0x01};
  assert_int_equal(decode_into(r, mixed, sizeof(mixed), &err), -EBADMSG);
  assert_int_equal(r->n, 0);
  free(r);
}

static void test_unknown_fields_ignored(void **state) {
  (void)state;
  /* Txn{revision 5, changes[{key "a", field 9 varint 1}], field 15 string "zz"} */
  const uint8_t bytes[] = {0x0a, 0x0d, 0x08, 0x05, 0x12, 0x05, 0x12, 0x01,
                           'a',  0x48, 0x01, 0x7a, 0x02, 'z',  'z'};
  recorder *r = calloc(1, sizeof(*r));
  assert_int_equal(decode_into(r, bytes, sizeof(bytes), NULL), 0);
  assert_int_equal(r->n, 2);
  assert_int_equal(r->ev[0].a, 5);
  assert_int_equal(r->ev[0].n, 1);
  assert_int_equal(r->ev[1].change.key.len, 1);
  assert_int_equal(r->ev[1].change.key.data[0], 'a');
  free(r);
}

static void test_visitor_abort_and_partial_visitors(void **state) {
  (void)state;
  store_change ch[4];
  for (int i = 0; i < 4; i++)
    ch[i] = (store_change){
        .type = STORE_CHANGE_PUT, .key = STORE_SLICE_STR("k"), .value = STORE_SLICE_STR("v")};
  store_record rec = {.kind = STORE_RECORD_TXN,
                      .txn = {.revision = 3, .changes = ch, .nchanges = 4}};
  uint8_t buf[128];
  size_t len;
  assert_int_equal(store_record_encode(&rec, buf, sizeof(buf), &len), 0);
  recorder *r = calloc(1, sizeof(*r));
  r->abort_at = 3; /* txn, change 0, change 1 -> abort */
  assert_int_equal(decode_into(r, buf, len, NULL), -EINTR);
  assert_int_equal(r->n, 3);
  r->abort_at = 0;
  /* No callbacks at all: validation only. */
  assert_int_equal(store_record_decode(buf, len, NULL, NULL, NULL), 0);
  store_record_visitor only_changes = {.change = v_change};
  r->n = 0;
  r->buf = buf;
  r->len = len;
  assert_int_equal(store_record_decode(buf, len, &only_changes, r, NULL), 0);
  assert_int_equal(r->n, 4);
  assert_int_equal(r->ev[3].n, 3);
  free(r);
}

/* ---------- snapshot records ---------- */

static void test_round_trip_snapshot_kinds(void **state) {
  (void)state;
  static uint8_t buf[1 << 16];
  int64_t vals[] = {0, 1, -1, INT64_MIN, INT64_MAX, 300};
  uint64_t idx[] = {0, 1, UINT64_MAX, (uint64_t)INT64_MAX + 1, 1000, 127};
  for (size_t i = 0; i < 6; i++) {
    store_record m = {.kind = STORE_RECORD_SNAPSHOT_META,
                      .snapshot_meta = {.revision = vals[i],
                                        .compact_revision = vals[(i + 1) % 6],
                                        .wal_index = idx[i]}};
    round_trip(&m, buf, sizeof(buf));
  }
  uint8_t binkey[] = {0, 1, 2, 0xff, 0};
  store_snapshot_kv kvs[] = {
      {.main = 42,
       .sub = 3,
       .key = STORE_SLICE_STR("/registry/pods/default/web-1"),
       .value = STORE_SLICE_STR("value-1"),
       .create_revision = 7,
       .version = 12,
       .lease = 0x7fffffffffffffffLL},
      /* A tombstone kept at the compaction revision. */
      {.main = 900, .key = STORE_SLICE_STR("gone"), .tombstone = true},
      {.main = 5, .sub = 0, .key = {binkey, sizeof(binkey)}, .value = {NULL, 0}, .version = 1},
      {.main = 1, .key = {NULL, 0}, .value = STORE_SLICE_STR("empty key"), .lease = -3},
      {0}, /* everything at its default: an empty SnapshotKv message */
      {.main = INT64_MAX,
       .sub = INT64_MIN,
       .key = STORE_SLICE_STR("k"),
       .value = STORE_SLICE_STR("v"),
       .create_revision = INT64_MIN,
       .version = INT64_MAX,
       .lease = -1,
       .tombstone = true},
  };
  for (size_t i = 0; i < sizeof(kvs) / sizeof(kvs[0]); i++) {
    store_record r = {.kind = STORE_RECORD_SNAPSHOT_KV, .snapshot_kv = kvs[i]};
    round_trip(&r, buf, sizeof(buf));
  }
  /* A large value (multi-byte length prefixes). */
  enum { BIG = 200000 };
  uint8_t *big = malloc(BIG);
  for (size_t i = 0; i < BIG; i++) big[i] = (uint8_t)(i * 7);
  store_record r = {.kind = STORE_RECORD_SNAPSHOT_KV,
                    .snapshot_kv = {.main = 77,
                                    .sub = 1,
                                    .key = {big, 300},
                                    .value = {big + 300, BIG - 300},
                                    .create_revision = 70,
                                    .version = 2}};
  size_t cap = BIG + 1024;
  uint8_t *out = malloc(cap);
  round_trip(&r, out, cap);
  free(out);
  free(big);
}

static void test_invalid_snapshot_records(void **state) {
  (void)state;
  uint8_t buf[256];
  size_t n;
  store_record null_key = {.kind = STORE_RECORD_SNAPSHOT_KV, .snapshot_kv = {.key = {NULL, 1}}};
  assert_int_equal(store_record_encoded_size(&null_key, &n), -EINVAL);
  assert_int_equal(store_record_encode(&null_key, buf, sizeof(buf), &n), -EINVAL);
  store_record null_value = {
      .kind = STORE_RECORD_SNAPSHOT_KV,
      .snapshot_kv = {.key = STORE_SLICE_STR("k"), .value = {NULL, 2}, .tombstone = true}};
  assert_int_equal(store_record_encoded_size(&null_value, &n), -EINVAL);
  assert_int_equal(store_record_encode(&null_value, buf, sizeof(buf), &n), -EINVAL);
  store_record bad_kind = {.kind = (store_record_kind)7};
  assert_int_equal(store_record_encode(&bad_kind, buf, sizeof(buf), &n), -EINVAL);
}

static void test_golden_protoc_snapshot(void **state) {
  (void)state;
  assert_int_equal(g_ngolden, NGOLDEN);
  store_record recs[3] = {
      {.kind = STORE_RECORD_SNAPSHOT_META,
       .snapshot_meta = {.revision = 1000, .compact_revision = 900, .wal_index = UINT64_MAX}},
      {.kind = STORE_RECORD_SNAPSHOT_KV,
       .snapshot_kv = {.main = 42,
                       .sub = 3,
                       .key = STORE_SLICE_STR("/registry/pods/default/web-1"),
                       .value = {(const uint8_t *)"v\0\377", 3},
                       .create_revision = 7,
                       .version = 12,
                       .lease = -5}},
      {.kind = STORE_RECORD_SNAPSHOT_KV,
       .snapshot_kv = {.main = 900, .key = STORE_SLICE_STR("gone"), .tombstone = true}},
  };
  for (int i = 0; i < 3; i++) {
    size_t glen;
    uint8_t *golden = read_file(g_golden[4 + i], &glen);
    uint8_t buf[256];
    size_t len;
    assert_int_equal(store_record_encode(&recs[i], buf, sizeof(buf), &len), 0);
    assert_int_equal(len, glen);
    assert_memory_equal(buf, golden, glen);
    recorder *r = calloc(1, sizeof(*r));
    assert_int_equal(decode_into(r, golden, glen, NULL), 0);
    assert_matches(r, &recs[i]);
    assert_int_equal(store_record_kind_of(golden, glen, NULL), recs[i].kind);
    free(r);
    free(golden);
  }
}

/* Every proper prefix of a snapshot record fails with nothing delivered (its
 * body is one length-delimited field, so no prefix is a complete record), and
 * so does every bit flip that makes the record malformed; a flip that leaves a
 * valid record delivers exactly one record. */
static void check_truncations_and_flips(const store_record *rec) {
  uint8_t buf[512];
  size_t len;
  assert_int_equal(store_record_encode(rec, buf, sizeof(buf), &len), 0);
  recorder *r = calloc(1, sizeof(*r));
  for (size_t cut = 0; cut < len; cut++) {
    uint8_t *p = malloc(cut ? cut : 1); /* exactly `cut` bytes: ASan sees overreads */
    memcpy(p, buf, cut);
    keel_error err = {0};
    assert_int_equal(decode_into(r, p, cut, &err), -EBADMSG);
    assert_int_equal(r->n, 0);
    assert_true(strlen(err.message) > 0);
    assert_int_equal(store_record_kind_of(p, cut, NULL), -EBADMSG);
    free(p);
  }
  int failed = 0;
  for (size_t i = 0; i < len * 8; i++) {
    uint8_t *p = malloc(len);
    memcpy(p, buf, len);
    p[i / 8] ^= (uint8_t)(1u << (i % 8));
    int rc = decode_into(r, p, len, NULL);
    if (rc != 0) {
      assert_int_equal(rc, -EBADMSG);
      assert_int_equal(r->n, 0);
      failed++;
    } else {
      assert_true(r->n >= 1);
      assert_true(store_record_kind_of(p, len, NULL) > 0);
    }
    free(p);
  }
  assert_true(failed > 0);
  free(r);
}

static void test_snapshot_truncated_and_bit_flips(void **state) {
  (void)state;
  store_record meta = {
      .kind = STORE_RECORD_SNAPSHOT_META,
      .snapshot_meta = {.revision = 123456, .compact_revision = 100000, .wal_index = 987654321}};
  check_truncations_and_flips(&meta);
  store_record kv = {.kind = STORE_RECORD_SNAPSHOT_KV,
                     .snapshot_kv = {.main = 1000,
                                     .sub = 2,
                                     .key = STORE_SLICE_STR("key-one"),
                                     .value = STORE_SLICE_STR("value-one"),
                                     .create_revision = 990,
                                     .version = 4,
                                     .lease = 77}};
  check_truncations_and_flips(&kv);
  store_record tomb = {.kind = STORE_RECORD_SNAPSHOT_KV,
                       .snapshot_kv = {.main = 5, .key = STORE_SLICE_STR("t"), .tombstone = true}};
  check_truncations_and_flips(&tomb);
}

static void test_snapshot_strictness(void **state) {
  (void)state;
  recorder *r = calloc(1, sizeof(*r));
  keel_error err = {0};
  /* Body members past the known ones (7, and 1000) are still refused. */
  const uint8_t future7[] = {0x3a, 0x00};
  assert_int_equal(decode_into(r, future7, sizeof(future7), &err), -EBADMSG);
  assert_non_null(strstr(err.message, "no known body"));
  assert_int_equal(store_record_kind_of(future7, sizeof(future7), NULL), -EBADMSG);
  const uint8_t future1000[] = {0xc2, 0x3e, 0x02, 0x08, 0x01};
  assert_int_equal(decode_into(r, future1000, sizeof(future1000), &err), -EBADMSG);
  assert_int_equal(r->n, 0);
  /* Empty snapshot_meta / snapshot_kv messages are valid: all defaults. */
  const uint8_t empty_meta[] = {0x2a, 0x00};
  assert_int_equal(decode_into(r, empty_meta, sizeof(empty_meta), NULL), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(r->ev[0].kind, 'M');
  assert_int_equal(r->ev[0].a, 0);
  assert_true(r->ev[0].u == 0);
  const uint8_t empty_kv[] = {0x32, 0x00};
  assert_int_equal(decode_into(r, empty_kv, sizeof(empty_kv), NULL), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(r->ev[0].kind, 'V');
  assert_non_null(r->ev[0].kv.key.data);
  assert_int_equal(r->ev[0].kv.key.len, 0);
  assert_non_null(r->ev[0].kv.value.data);
  assert_int_equal(r->ev[0].kv.value.len, 0);
  assert_false(r->ev[0].kv.tombstone);
  /* The body twice: kv then kv, meta then kv, kv then txn. */
  const uint8_t kv_twice[] = {0x32, 0x02, 0x08, 0x01, 0x32, 0x02, 0x08, 0x02};
  assert_int_equal(decode_into(r, kv_twice, sizeof(kv_twice), &err), -EBADMSG);
  assert_non_null(strstr(err.message, "more than once"));
  const uint8_t meta_kv[] = {0x2a, 0x02, 0x08, 0x01, 0x32, 0x02, 0x08, 0x02};
  assert_int_equal(decode_into(r, meta_kv, sizeof(meta_kv), &err), -EBADMSG);
  const uint8_t kv_txn[] = {0x32, 0x03, 0x1a, 0x01, 'k', 0x0a, 0x02, 0x08, 0x01};
  assert_int_equal(decode_into(r, kv_txn, sizeof(kv_txn), &err), -EBADMSG);
  assert_int_equal(r->n, 0);
  /* A field of the wrong wire type (key as a varint, tombstone as bytes). */
  const uint8_t key_varint[] = {0x32, 0x02, 0x18, 0x01};
  assert_int_equal(decode_into(r, key_varint, sizeof(key_varint), &err), -EBADMSG);
  const uint8_t tomb_bytes[] = {0x32, 0x03, 0x42, 0x01, 0x01};
  assert_int_equal(decode_into(r, tomb_bytes, sizeof(tomb_bytes), &err), -EBADMSG);
  /* A key whose length runs past the body. */
  const uint8_t key_long[] = {0x32, 0x03, 0x1a, 0x05, 'k', 'x', 'y'};
  assert_int_equal(decode_into(r, key_long, sizeof(key_long), &err), -EBADMSG);
  assert_int_equal(r->n, 0);
  free(r);
}

/* Unknown fields inside SnapshotMeta/SnapshotKv are ignored (a later field
 * stays readable); a repeated scalar or bytes field takes the last value, as
 * protobuf says. */
static void test_snapshot_unknown_fields_and_last_wins(void **state) {
  (void)state;
  recorder *r = calloc(1, sizeof(*r));
  /* SnapshotKv{main 9, key "a", field 15 string "zz", key "bc", tombstone 2 (true),
   * field 9 varint 1}. */
  const uint8_t kv[] = {0x32, 0x11, 0x08, 0x09, 0x1a, 0x01, 'a',  0x7a, 0x02, 'z',
                        'z',  0x1a, 0x02, 'b',  'c',  0x40, 0x02, 0x48, 0x01};
  assert_int_equal(decode_into(r, kv, sizeof(kv), NULL), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(r->ev[0].kv.main, 9);
  assert_int_equal(r->ev[0].kv.key.len, 2);
  assert_memory_equal(r->ev[0].kv.key.data, "bc", 2);
  assert_true(r->ev[0].kv.key.data == kv + 13);
  assert_true(r->ev[0].kv.tombstone);
  /* SnapshotMeta{revision 3, field 4 fixed64, wal_index 5}. */
  const uint8_t meta[] = {0x2a, 0x0d, 0x08, 0x03, 0x21, 1, 2, 3, 4, 5, 6, 7, 8, 0x18, 0x05};
  assert_int_equal(decode_into(r, meta, sizeof(meta), NULL), 0);
  assert_int_equal(r->n, 1);
  assert_int_equal(r->ev[0].a, 3);
  assert_true(r->ev[0].u == 5);
  free(r);
}

static int v_kv_stop(void *arg, const store_snapshot_kv *kv) {
  (void)kv;
  return *(int *)arg;
}

static void test_snapshot_visitors(void **state) {
  (void)state;
  store_record rec = {.kind = STORE_RECORD_SNAPSHOT_KV,
                      .snapshot_kv = {.main = 3, .key = STORE_SLICE_STR("k")}};
  uint8_t buf[64];
  size_t len;
  assert_int_equal(store_record_encode(&rec, buf, sizeof(buf), &len), 0);
  /* A visitor's error is returned; a positive return is -ECANCELED. */
  store_record_visitor stop = {.snapshot_kv = v_kv_stop};
  int want = -EINTR;
  assert_int_equal(store_record_decode(buf, len, &stop, &want, NULL), -EINTR);
  want = 1;
  assert_int_equal(store_record_decode(buf, len, &stop, &want, NULL), -ECANCELED);
  /* A visitor without the kind's callback (e.g. one written for WAL records
   * only) skips it; kind_of still names it. */
  recorder *r = calloc(1, sizeof(*r));
  store_record_visitor wal_only = {v_txn, v_change, v_compact, v_grant, v_revoke, NULL, NULL};
  r->buf = buf;
  r->len = len;
  assert_int_equal(store_record_decode(buf, len, &wal_only, r, NULL), 0);
  assert_int_equal(r->n, 0);
  assert_int_equal(store_record_decode(buf, len, NULL, NULL, NULL), 0);
  assert_int_equal(store_record_kind_of(buf, len, NULL), STORE_RECORD_SNAPSHOT_KV);
  /* And snapshot callbacks see nothing of WAL records. */
  store_record_visitor snap_only = {.snapshot_meta = v_meta, .snapshot_kv = v_kv};
  store_record compact = {.kind = STORE_RECORD_COMPACT, .compact = {.revision = 4}};
  assert_int_equal(store_record_encode(&compact, buf, sizeof(buf), &len), 0);
  r->n = 0;
  assert_int_equal(store_record_decode(buf, len, &snap_only, r, NULL), 0);
  assert_int_equal(r->n, 0);
  free(r);
}

/* What a snapshot looks like to the apply loop: meta, every kept record,
 * leases, back to back; decoded record by record without allocating. */
static void test_snapshot_stream(void **state) {
  (void)state;
  enum { NKV = 500, CAP = 1 << 20 };
  uint8_t *arena = malloc(CAP);
  size_t *offs = calloc(NKV + 8, sizeof(*offs)), nrec = 0, used = 0, len;
  char key[32], val[32];
  store_record meta = {
      .kind = STORE_RECORD_SNAPSHOT_META,
      .snapshot_meta = {.revision = NKV, .compact_revision = 100, .wal_index = 4242}};
  assert_int_equal(store_record_encode(&meta, arena, CAP, &len), 0);
  offs[nrec++] = 0;
  used = len;
  for (int i = 1; i <= NKV; i++) {
    int kn = snprintf(key, sizeof(key), "/k/%04d", i % 97);
    int vn = snprintf(val, sizeof(val), "v%d", i);
    store_record kv = {.kind = STORE_RECORD_SNAPSHOT_KV,
                       .snapshot_kv = {.main = i,
                                       .sub = i % 3,
                                       .key = {(const uint8_t *)key, (size_t)kn},
                                       .value = {(const uint8_t *)val, (size_t)(i % 5 ? vn : 0)},
                                       .create_revision = i - i % 97,
                                       .version = i / 97 + 1,
                                       .lease = i % 4,
                                       .tombstone = i % 5 == 0}};
    g_counting = 1;
    g_allocs = 0;
    assert_int_equal(store_record_encode(&kv, arena + used, CAP - used, &len), 0);
    g_counting = 0;
    assert_int_equal(g_allocs, 0);
    offs[nrec++] = used;
    used += len;
  }
  store_record lease = {.kind = STORE_RECORD_LEASE_GRANT, .lease_grant = {.id = 3, .ttl = 60}};
  assert_int_equal(store_record_encode(&lease, arena + used, CAP - used, &len), 0);
  offs[nrec++] = used;
  used += len;
  offs[nrec] = used;

  recorder *r = calloc(1, sizeof(*r));
  for (size_t i = 0; i < nrec; i++) {
    const uint8_t *p = arena + offs[i];
    size_t n = offs[i + 1] - offs[i];
    g_counting = 1;
    g_allocs = 0;
    int rc = decode_into(r, p, n, NULL);
    g_counting = 0;
    assert_int_equal(rc, 0);
    assert_int_equal(g_allocs, 0);
    assert_int_equal(r->n, 1);
    if (i == 0) {
      assert_int_equal(r->ev[0].kind, 'M');
      assert_true(r->ev[0].u == 4242);
    } else if (i == nrec - 1) {
      assert_int_equal(r->ev[0].kind, 'G');
    } else {
      int k = (int)i;
      const store_snapshot_kv *kv = &r->ev[0].kv;
      assert_int_equal(r->ev[0].kind, 'V');
      assert_int_equal(kv->main, k);
      assert_int_equal(kv->sub, k % 3);
      assert_int_equal(kv->create_revision, k - k % 97);
      assert_int_equal(kv->version, k / 97 + 1);
      assert_int_equal(kv->lease, k % 4);
      assert_int_equal(kv->tombstone, k % 5 == 0);
      assert_int_equal(kv->value.len == 0, k % 5 == 0);
      int kn = snprintf(key, sizeof(key), "/k/%04d", k % 97);
      assert_int_equal(kv->key.len, (size_t)kn);
      assert_memory_equal(kv->key.data, key, kv->key.len);
    }
  }
  free(r);
  free(offs);
  free(arena);
}

int main(int argc, char **argv) {
  g_golden = argv + 1;
  g_ngolden = argc - 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_alloc_counter_works),
      cmocka_unit_test(test_round_trip_all_kinds),
      cmocka_unit_test(test_round_trip_large_txn),
      cmocka_unit_test(test_invalid_records),
      cmocka_unit_test(test_golden_protoc),
      cmocka_unit_test(test_truncated_all_or_nothing),
      cmocka_unit_test(test_bit_flips),
      cmocka_unit_test(test_random_garbage),
      cmocka_unit_test(test_strictness),
      cmocka_unit_test(test_unknown_fields_ignored),
      cmocka_unit_test(test_visitor_abort_and_partial_visitors),
      cmocka_unit_test(test_round_trip_snapshot_kinds),
      cmocka_unit_test(test_invalid_snapshot_records),
      cmocka_unit_test(test_golden_protoc_snapshot),
      cmocka_unit_test(test_snapshot_truncated_and_bit_flips),
      cmocka_unit_test(test_snapshot_strictness),
      cmocka_unit_test(test_snapshot_unknown_fields_and_last_wins),
      cmocka_unit_test(test_snapshot_visitors),
      cmocka_unit_test(test_snapshot_stream),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
