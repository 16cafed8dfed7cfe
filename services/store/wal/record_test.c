/* services/store/wal/record_test.c — the WAL record codec: round trips of every
 * kind, byte-identical output to protoc's encoder (golden files made from
 * testdata/golden_<kind>.txtpb at build time), exact sizes, ENOSPC without overrun,
 * all-or-nothing decoding of truncated and corrupted records, strictness about
 * unknown bodies and change types, forward compatibility of unknown fields,
 * and no heap allocation (malloc is wrapped at link time and counted). */
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

static char *
    *g_golden; /* argv: golden files in the order txn, compact, lease_grant, lease_revoke */
static int g_ngolden;

/* ---------- a visitor that logs everything it sees ---------- */

#define MAX_EVENTS 512
typedef struct event {
  char kind; /* 'T' txn, 'C' change, 'K' compact, 'G' grant, 'R' revoke */
  int64_t a, b, c;
  size_t n;
  store_change change;
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
static const store_record_visitor k_visitor = {v_txn, v_change, v_compact, v_grant, v_revoke};

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
  assert_int_equal(g_ngolden, 4);
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
  /* A body member from the future (field 5, length-delimited, empty). */
  const uint8_t future[] = {0x2a, 0x00};
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
