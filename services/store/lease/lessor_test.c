/* services/store/lease/lessor_test.c — every rule of lessor.h, the id table under
 * churn, and a property test: 100k leases under random operations against a naive
 * model. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <cmocka.h>

#include "services/store/lease/lessor.h"

static uint64_t rng_state;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static lessor *new_lessor(void) {
  lessor *l = lessor_create();
  assert_non_null(l);
  return l;
}

static const uint8_t *K(const char *s) {
  return (const uint8_t *)s;
}

static int attach_str(lessor *l, int64_t id, const char *key) {
  return lessor_attach(l, id, K(key), strlen(key));
}

static int detach_str(lessor *l, int64_t id, const char *key) {
  return lessor_detach(l, id, K(key), strlen(key));
}

static void assert_sound(const lessor *l) {
  assert_int_equal(lessor_verify(l), 0);
}

/* Asserts the list holds exactly the given keys, in this order. */
static void assert_keys(const lessor_keys *k, const char *const *want, size_t n) {
  assert_int_equal(k->n, n);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(k->keys[i].len, strlen(want[i]));
    assert_memory_equal(k->keys[i].key, want[i], k->keys[i].len);
  }
}

static int64_t remaining(const lessor *l, int64_t id, int64_t now_ms) {
  int64_t granted, rem;
  assert_int_equal(lessor_time_to_live(l, id, now_ms, &granted, &rem, NULL), 0);
  return rem;
}

static int64_t granted(const lessor *l, int64_t id) {
  int64_t g, rem;
  assert_int_equal(lessor_time_to_live(l, id, 0, &g, &rem, NULL), 0);
  return g;
}

static void test_grant_and_exists(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_false(lessor_exists(l, 1));
  assert_int_equal(lessor_grant(l, 1, 10, 0), 0);
  assert_int_equal(lessor_grant(l, -7, 30, 500), 0); /* any non-zero id */
  assert_int_equal(lessor_grant(l, INT64_MAX, 5, 0), 0);
  assert_true(lessor_exists(l, 1));
  assert_true(lessor_exists(l, -7));
  assert_true(lessor_exists(l, INT64_MAX));
  assert_false(lessor_exists(l, 2));
  assert_false(lessor_exists(l, 0));
  assert_int_equal(lessor_count(l), 3);
  assert_int_equal(granted(l, 1), 10);
  assert_int_equal(granted(l, -7), 30);
  assert_int_equal(lessor_key_count(l, 1), 0);
  assert_sound(l);
  lessor_destroy(l);
  lessor_destroy(NULL);
}

static void test_grant_errors(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_int_equal(lessor_grant(l, 0, 10, 0), -EINVAL);
  assert_int_equal(lessor_grant(l, 1, LESSOR_MAX_TTL + 1, 0), -ERANGE);
  assert_int_equal(lessor_grant(l, 1, INT64_MAX, 0), -ERANGE);
  assert_false(lessor_exists(l, 1));
  assert_int_equal(lessor_grant(l, 1, LESSOR_MAX_TTL, 0), 0);
  assert_int_equal(granted(l, 1), LESSOR_MAX_TTL);
  assert_int_equal(remaining(l, 1, 0), LESSOR_MAX_TTL);
  assert_int_equal(lessor_grant(l, 1, 10, 0), -EEXIST);
  /* etcd's order: too large before exists. */
  assert_int_equal(lessor_grant(l, 1, LESSOR_MAX_TTL + 1, 0), -ERANGE);
  assert_int_equal(granted(l, 1), LESSOR_MAX_TTL); /* unchanged by the failures */

  /* Below the minimum: raised to it, as etcd answers TTL 2 for 0, 1 and -1. */
  const int64_t low[] = {-1, 0, 1, INT64_MIN};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(lessor_grant(l, 100 + i, low[i], 1000), 0);
    assert_int_equal(granted(l, 100 + i), LESSOR_MIN_TTL);
    assert_int_equal(remaining(l, 100 + i, 1000), LESSOR_MIN_TTL);
  }
  assert_int_equal(lessor_grant(l, 200, 2, 0), 0);
  assert_int_equal(granted(l, 200), 2);
  assert_int_equal(lessor_grant(l, 201, 3, 0), 0);
  assert_int_equal(granted(l, 201), 3);
  assert_int_equal(lessor_count(l), 7);
  assert_sound(l);
  lessor_destroy(l);
}

/* Expiries at the ends of the clock saturate instead of overflowing. */
static void test_extreme_clock(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_int_equal(lessor_grant(l, 1, LESSOR_MAX_TTL, INT64_MAX - 5), 0);
  assert_int_equal(remaining(l, 1, INT64_MAX - 5), 0); /* 5 ms left */
  assert_int_equal(lessor_grant(l, 2, 10, -20000), 0);
  assert_int_equal(remaining(l, 2, -20000), 10);
  assert_int_equal(remaining(l, 2, INT64_MIN), (10000 - 20000 - INT64_MIN) / 1000);
  int64_t ids[4];
  assert_int_equal(lessor_expired(l, -10000, ids, 4), 1);
  assert_int_equal(ids[0], 2);
  assert_int_equal(lessor_expired(l, INT64_MAX, ids, 4), 2);
  assert_int_equal(ids[1], 1);
  lessor_renew_all(l, INT64_MAX);
  assert_int_equal(lessor_keepalive(l, 1, INT64_MAX - 1), LESSOR_MAX_TTL);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_next_id(void **state) {
  (void)state;
  enum { N = 100000 };
  lessor *l = new_lessor();
  lessor *twin = new_lessor();
  int64_t *ids = malloc(N * sizeof(*ids));
  assert_non_null(ids);
  for (int i = 0; i < N; i++) {
    ids[i] = lessor_next_id(l);
    assert_true(ids[i] > 0);
    assert_int_equal(lessor_next_id(twin), ids[i]); /* same seed, same sequence */
    assert_int_equal(lessor_grant(l, ids[i], 5, 0), 0); /* never in use */
  }
  /* Random-looking: spread over the 63 bits, not a counter. */
  int high = 0;
  for (int i = 0; i < N; i++) high += ids[i] > INT64_MAX / 2;
  assert_true(high > N / 2 - N / 50 && high < N / 2 + N / 50);

  /* An id in use is skipped: grant the twin's next id here first. */
  lessor *a = new_lessor();
  lessor *b = new_lessor();
  int64_t first = lessor_next_id(b);
  int64_t second = lessor_next_id(b);
  assert_int_equal(lessor_grant(a, first, 5, 0), 0);
  assert_int_equal(lessor_next_id(a), second);

  /* Seeds: another seed, another sequence; reseeding restarts it. */
  lessor_seed(a, 42);
  lessor_seed(b, 43);
  int64_t x = lessor_next_id(a);
  assert_int_not_equal(x, lessor_next_id(b));
  lessor_seed(b, 42);
  assert_int_equal(lessor_next_id(b), x);
  free(ids);
  lessor_destroy(l);
  lessor_destroy(twin);
  lessor_destroy(a);
  lessor_destroy(b);
}

static void test_keepalive(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_int_equal(lessor_keepalive(l, 9, 0), -ENOENT);
  assert_int_equal(lessor_grant(l, 9, 10, 0), 0);
  assert_int_equal(lessor_keepalive(l, 9, 4000), 10);
  assert_int_equal(remaining(l, 9, 4000), 10);
  assert_int_equal(remaining(l, 9, 13999), 0);
  assert_int_equal(lessor_keepalive(l, 9, 13999), 10); /* 1 ms before expiry */
  int64_t ids[2];
  assert_int_equal(lessor_expired(l, 23998, ids, 2), 0);
  assert_int_equal(lessor_expired(l, 23999, ids, 2), 1); /* expiry <= now */
  /* Expired: not renewed (etcd waits for the revoke), but still there until revoked. */
  assert_int_equal(lessor_keepalive(l, 9, 23999), -ETIME);
  assert_int_equal(lessor_keepalive(l, 9, 30000), -ETIME);
  assert_true(lessor_exists(l, 9));
  assert_int_equal(remaining(l, 9, 30000), 0);
  assert_int_equal(lessor_revoke(l, 9, NULL), 0);
  assert_int_equal(lessor_keepalive(l, 9, 30000), -ENOENT);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_time_to_live(void **state) {
  (void)state;
  lessor *l = new_lessor();
  int64_t g = 99, rem = 99;
  lessor_keys keys = {0};
  assert_int_equal(lessor_time_to_live(l, 5, 0, &g, &rem, &keys), -ENOENT);
  assert_int_equal(g, 0); /* etcd: grantedTTL 0, TTL -1 */
  assert_int_equal(rem, -1);
  assert_int_equal(keys.n, 0);

  assert_int_equal(lessor_grant(l, 5, 10, 1000), 0);
  assert_int_equal(remaining(l, 5, 1000), 10);
  assert_int_equal(remaining(l, 5, 1001), 9); /* truncated, as etcd's int64(seconds) */
  assert_int_equal(remaining(l, 5, 2000), 9);
  assert_int_equal(remaining(l, 5, 2001), 8);
  assert_int_equal(remaining(l, 5, 10999), 0);
  assert_int_equal(remaining(l, 5, 11000), 0);
  assert_int_equal(remaining(l, 5, 50000), 0); /* expired, not yet revoked */
  assert_int_equal(remaining(l, 5, 0), 11); /* a clock behind the grant */

  /* Keys: a sorted copy; the lease keeps its own. */
  assert_int_equal(lessor_time_to_live(l, 5, 1000, &g, &rem, &keys), 0);
  assert_int_equal(keys.n, 0);
  assert_null(keys.keys);
  const char *in[] = {"/b", "/a/x", "/a", "/ab", "/"};
  for (int i = 0; i < 5; i++) assert_int_equal(attach_str(l, 5, in[i]), 0);
  assert_int_equal(lessor_time_to_live(l, 5, 1000, &g, &rem, &keys), 0);
  assert_int_equal(g, 10);
  assert_int_equal(rem, 10);
  const char *want[] = {"/", "/a", "/a/x", "/ab", "/b"};
  assert_keys(&keys, want, 5);
  lessor_keys_free(&keys);
  assert_int_equal(keys.n, 0);
  assert_null(keys.keys);
  lessor_keys_free(&keys); /* twice is fine */
  assert_int_equal(lessor_key_count(l, 5), 5);
  assert_int_equal(lessor_revoke(l, 5, &keys), 0);
  assert_keys(&keys, want, 5);
  lessor_keys_free(&keys);
  assert_sound(l);
  lessor_destroy(l);
}

static void expect_expired(lessor *l, int64_t now_ms, size_t cap, const int64_t *want, size_t n) {
  int64_t ids[64];
  assert_true(cap <= 64);
  assert_int_equal(lessor_expired(l, now_ms, ids, cap), n);
  for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
}

static void test_expired_order(void **state) {
  (void)state;
  lessor *l = new_lessor();
  expect_expired(l, INT64_MAX, 8, NULL, 0);
  /* expiries: 7 -> 3000, 3 -> 5000, 9 -> 5000, 1 -> 8000, 4 -> 12000, 2 -> 5000 */
  assert_int_equal(lessor_grant(l, 1, 8, 0), 0);
  assert_int_equal(lessor_grant(l, 9, 5, 0), 0);
  assert_int_equal(lessor_grant(l, 7, 2, 1000), 0);
  assert_int_equal(lessor_grant(l, 4, 10, 2000), 0);
  assert_int_equal(lessor_grant(l, 3, 3, 2000), 0);
  assert_int_equal(lessor_grant(l, 2, 4, 1000), 0);
  expect_expired(l, 2999, 8, NULL, 0);
  expect_expired(l, 3000, 8, (int64_t[]){7}, 1);
  expect_expired(l, 4999, 8, (int64_t[]){7}, 1);
  /* Equal expiries order by id, whatever the grant order. */
  expect_expired(l, 5000, 8, (int64_t[]){7, 2, 3, 9}, 4);
  expect_expired(l, 100000, 8, (int64_t[]){7, 2, 3, 9, 1, 4}, 6);
  expect_expired(l, 100000, 3, (int64_t[]){7, 2, 3}, 3); /* the oldest cap */
  expect_expired(l, 100000, 0, NULL, 0);
  /* Reporting does not remove: the same answer again until revoked. */
  expect_expired(l, 5000, 8, (int64_t[]){7, 2, 3, 9}, 4);
  assert_int_equal(lessor_revoke(l, 2, NULL), 0);
  assert_int_equal(lessor_revoke(l, 7, NULL), 0);
  expect_expired(l, 100000, 8, (int64_t[]){3, 9, 1, 4}, 4);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_renew_moves_later(void **state) {
  (void)state;
  lessor *l = new_lessor();
  for (int id = 1; id <= 20; id++) assert_int_equal(lessor_grant(l, id, 2 + id, 0), 0);
  /* 1 expires at 3000 and heads the heap; renewed at 2500 it expires at 5500. */
  expect_expired(l, 5000, 8, (int64_t[]){1, 2, 3}, 3);
  assert_int_equal(lessor_keepalive(l, 1, 2500), 3);
  assert_sound(l);
  expect_expired(l, 5000, 8, (int64_t[]){2, 3}, 2);
  expect_expired(l, 6000, 8, (int64_t[]){2, 3, 1, 4}, 4);
  /* Renewing the head again and again walks it down the heap. */
  assert_int_equal(lessor_keepalive(l, 2, 3900), 4); /* 4000 -> 7900 */
  assert_int_equal(lessor_keepalive(l, 3, 4900), 5); /* 5000 -> 9900 */
  expect_expired(l, 10000, 8, (int64_t[]){1, 4, 5, 2, 6, 7, 3, 8}, 8);
  /* A renew with a clock behind moves a lease earlier too. */
  assert_int_equal(lessor_keepalive(l, 20, 0), 22); /* 22000 -> 22000 */
  assert_int_equal(lessor_keepalive(l, 19, -5000), 21); /* 21000 -> 16000 */
  expect_expired(l, 16000, 64, (int64_t[]){1, 4, 5, 2, 6, 7, 3, 8, 9, 10, 11, 12, 13, 14, 19}, 15);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_revoke_keys_after_churn(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_int_equal(lessor_grant(l, 1, 60, 0), 0);
  assert_int_equal(lessor_grant(l, 2, 60, 0), 0);
  char key[32];
  /* 1000 keys on lease 1, then every third detached and every fifth re-attached;
   * lease 2 shares some names. */
  for (int i = 0; i < 1000; i++) {
    snprintf(key, sizeof(key), "/registry/pods/p%04d", i);
    assert_int_equal(attach_str(l, 1, key), 0);
    assert_int_equal(attach_str(l, 1, key), 0); /* duplicates impossible */
    if (i % 7 == 0) assert_int_equal(attach_str(l, 2, key), 0);
  }
  for (int i = 0; i < 1000; i += 3) {
    snprintf(key, sizeof(key), "/registry/pods/p%04d", i);
    assert_int_equal(detach_str(l, 1, key), 0);
    assert_int_equal(detach_str(l, 1, key), 0); /* not attached: still 0 */
  }
  for (int i = 0; i < 1000; i += 5) {
    snprintf(key, sizeof(key), "/registry/pods/p%04d", i);
    assert_int_equal(attach_str(l, 1, key), 0);
  }
  assert_sound(l);
  size_t want_n = 0;
  for (int i = 0; i < 1000; i++) want_n += i % 3 != 0 || i % 5 == 0;
  assert_int_equal(lessor_key_count(l, 1), want_n);

  lessor_keys keys = {0};
  assert_int_equal(lessor_revoke(l, 1, &keys), 0);
  assert_int_equal(keys.n, want_n);
  size_t j = 0;
  for (int i = 0; i < 1000; i++) {
    if (i % 3 == 0 && i % 5 != 0) continue;
    snprintf(key, sizeof(key), "/registry/pods/p%04d", i);
    assert_int_equal(keys.keys[j].len, strlen(key));
    assert_memory_equal(keys.keys[j].key, key, strlen(key));
    j++;
  }
  lessor_keys_free(&keys);
  assert_false(lessor_exists(l, 1));
  assert_int_equal(lessor_revoke(l, 1, &keys), -ENOENT);
  assert_int_equal(lessor_revoke(l, 77, NULL), -ENOENT);
  assert_int_equal(lessor_key_count(l, 2), 143);

  /* Binary keys, the empty key and prefixes, in etcd's byte order. */
  assert_int_equal(lessor_grant(l, 3, 60, 0), 0);
  const uint8_t bin[] = {'a', 0, 'b'};
  assert_int_equal(lessor_attach(l, 3, bin, 3), 0);
  assert_int_equal(lessor_attach(l, 3, bin, 2), 0);
  assert_int_equal(lessor_attach(l, 3, bin, 1), 0);
  assert_int_equal(lessor_attach(l, 3, NULL, 0), 0);
  assert_int_equal(lessor_attach(l, 3, K("\xff"), 1), 0);
  assert_int_equal(lessor_attach(l, 3, K("a\x01"), 2), 0);
  assert_int_equal(lessor_revoke(l, 3, &keys), 0);
  assert_int_equal(keys.n, 6);
  const size_t lens[] = {0, 1, 2, 3, 2, 1};
  const char *bytes[] = {"", "a", "a\0", "a\0b", "a\x01", "\xff"};
  for (int i = 0; i < 6; i++) {
    assert_non_null(keys.keys[i].key);
    assert_int_equal(keys.keys[i].len, lens[i]);
    assert_memory_equal(keys.keys[i].key, bytes[i], lens[i]);
  }
  lessor_keys_free(&keys);
  assert_int_equal(lessor_revoke(l, 2, NULL), 0); /* keys dropped */
  assert_int_equal(lessor_count(l), 0);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_attach_detach_errors(void **state) {
  (void)state;
  lessor *l = new_lessor();
  assert_int_equal(attach_str(l, 1, "/a"), -ENOENT);
  assert_int_equal(detach_str(l, 1, "/a"), -ENOENT);
  assert_int_equal(lessor_key_count(l, 1), 0);
  assert_int_equal(lessor_grant(l, 1, 5, 0), 0);
  assert_int_equal(detach_str(l, 1, "/a"), 0);
  assert_int_equal(attach_str(l, 1, "/a"), 0);
  assert_int_equal(attach_str(l, 1, "/a"), 0);
  assert_int_equal(attach_str(l, 1, "/b"), 0);
  assert_int_equal(lessor_key_count(l, 1), 2);
  assert_sound(l);
  lessor_destroy(l);
}

static void test_renew_all(void **state) {
  (void)state;
  lessor *l = new_lessor();
  /* Granted long ago with different clocks: 1 expired, 2 and 3 not. */
  assert_int_equal(lessor_grant(l, 1, 5, 0), 0);
  assert_int_equal(lessor_grant(l, 2, 100, 0), 0);
  assert_int_equal(lessor_grant(l, 3, 30, 50000), 0);
  expect_expired(l, 60000, 8, (int64_t[]){1}, 1);
  assert_int_equal(lessor_keepalive(l, 1, 60000), -ETIME);
  lessor_renew_all(l, 60000);
  assert_sound(l);
  expect_expired(l, 60000, 8, NULL, 0);
  assert_int_equal(remaining(l, 1, 60000), 5);
  assert_int_equal(remaining(l, 2, 60000), 100);
  assert_int_equal(remaining(l, 3, 60000), 30);
  expect_expired(l, 1000000, 8, (int64_t[]){1, 3, 2}, 3);
  assert_int_equal(lessor_keepalive(l, 1, 60001), 5);
  lessor_renew_all(l, 0); /* empty or not, never fails */
  lessor *e = new_lessor();
  lessor_renew_all(e, 0);
  assert_sound(e);
  lessor_destroy(e);
  lessor_destroy(l);
}

static void test_list(void **state) {
  (void)state;
  lessor *l = new_lessor();
  int64_t ids[8];
  assert_int_equal(lessor_list(l, ids, 8), 0);
  const int64_t in[] = {50, -3, 7, INT64_MAX, 1, 9, 8};
  for (int i = 0; i < 7; i++) assert_int_equal(lessor_grant(l, in[i], 10, i), 0);
  assert_int_equal(lessor_list(l, ids, 8), 7);
  const int64_t sorted[] = {-3, 1, 7, 8, 9, 50, INT64_MAX};
  assert_memory_equal(ids, sorted, sizeof(sorted));
  for (size_t cap = 0; cap <= 7; cap++) {
    memset(ids, 0, sizeof(ids));
    assert_int_equal(lessor_list(l, ids, cap), cap);
    assert_memory_equal(ids, sorted, cap * sizeof(int64_t));
    assert_int_equal(ids[cap], 0); /* nothing written past cap */
  }
  assert_int_equal(lessor_count(l), 7);
  lessor_destroy(l);
}

typedef struct visit_acc {
  int calls;
  int64_t id_sum, ttl_sum;
  int stop_after;
} visit_acc;

static int visit(void *arg, int64_t id, int64_t ttl_s) {
  visit_acc *a = arg;
  a->calls++;
  a->id_sum += id;
  a->ttl_sum += ttl_s;
  return a->calls == a->stop_after ? 42 : 0;
}

static void test_foreach(void **state) {
  (void)state;
  lessor *l = new_lessor();
  visit_acc a = {0};
  assert_int_equal(lessor_foreach(l, visit, &a), 0);
  assert_int_equal(a.calls, 0);
  for (int id = 1; id <= 100; id++) assert_int_equal(lessor_grant(l, id, id % 2 ? 1 : id, 0), 0);
  assert_int_equal(lessor_foreach(l, visit, &a), 0);
  assert_int_equal(a.calls, 100);
  assert_int_equal(a.id_sum, 5050);
  assert_int_equal(a.ttl_sum, 50 * 2 + 2550); /* odd ids were raised to 2 */
  a = (visit_acc){.stop_after = 10};
  assert_int_equal(lessor_foreach(l, visit, &a), 42);
  assert_int_equal(a.calls, 10);
  lessor_destroy(l);
}

/* One lease with 100k keys: sets grow, shrink back after detaching and hand every key
 * over on revoke. */
static void test_many_keys_one_lease(void **state) {
  (void)state;
  enum { N = 100000 };
  lessor *l = new_lessor();
  assert_int_equal(lessor_grant(l, 1, 60, 0), 0);
  size_t empty = lessor_memory_bytes(l);
  char key[40];
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof(key), "/registry/events/default/e%d", i);
    assert_int_equal(lessor_attach(l, 1, K(key), (size_t)n), 0);
  }
  assert_int_equal(lessor_key_count(l, 1), N);
  size_t full = lessor_memory_bytes(l);
  assert_sound(l);
  for (int i = 0; i < N; i++) {
    if (i % 100 == 0) continue;
    int n = snprintf(key, sizeof(key), "/registry/events/default/e%d", i);
    assert_int_equal(lessor_detach(l, 1, K(key), (size_t)n), 0);
  }
  assert_int_equal(lessor_key_count(l, 1), N / 100);
  assert_sound(l);
  size_t after = lessor_memory_bytes(l);
  assert_true(after < full / 20); /* the table shrank, not just the key copies */
  lessor_keys keys = {0};
  assert_int_equal(lessor_revoke(l, 1, &keys), 0);
  assert_int_equal(keys.n, N / 100);
  for (size_t i = 1; i < keys.n; i++) {
    size_t n = keys.keys[i].len < keys.keys[i - 1].len ? keys.keys[i].len : keys.keys[i - 1].len;
    int c = memcmp(keys.keys[i - 1].key, keys.keys[i].key, n);
    assert_true(c < 0 || (c == 0 && keys.keys[i - 1].len < keys.keys[i].len));
  }
  lessor_keys_free(&keys);
  assert_true(lessor_memory_bytes(l) <= empty);
  lessor_destroy(l);
}

/* Few leases in a full table under constant churn: up to 12 leases in the initial 16
 * slots (never enough to grow it), so probe runs wrap around the end of the table and
 * deletions shift entries across it; checked after every operation. */
static void test_table_churn(void **state) {
  (void)state;
  enum { MAX = 12, OPS = 200000 };
  rng_state = 0xa4093822299f31d0ull;
  lessor *l = new_lessor();
  int64_t live[MAX];
  size_t n = 0;
  for (int op = 0; op < OPS; op++) {
    if (n < MAX && (n == 0 || rng() % 2)) {
      int64_t id = (int64_t)(rng() % 2001) - 1000;
      bool in = false;
      for (size_t i = 0; i < n; i++) in |= live[i] == id;
      int rc = lessor_grant(l, id, 10, op);
      assert_int_equal(rc, id == 0 ? -EINVAL : in ? -EEXIST : 0);
      if (rc == 0) live[n++] = id;
    } else {
      size_t i = rng() % n;
      assert_int_equal(lessor_revoke(l, live[i], NULL), 0);
      assert_int_equal(lessor_revoke(l, live[i], NULL), -ENOENT);
      live[i] = live[--n];
    }
    assert_int_equal(lessor_count(l), n);
    assert_sound(l);
    for (size_t i = 0; i < n; i++) assert_true(lessor_exists(l, live[i]));
  }
  lessor_destroy(l);
}

/* ---- property test ---- */

#define NSLOT 100000
#define NKEY 60000
#define HEAVY 16 /* slots that collect many keys */

typedef struct mkey {
  uint8_t *bytes;
  size_t len;
} mkey;

typedef struct mlease {
  bool live;
  int64_t id, ttl, expiry;
  uint32_t *keys; /* indexes into the key universe, unordered */
  size_t n, cap;
} mlease;

typedef struct model {
  mlease *s;
  mkey *universe;
  uint32_t *rank; /* rank[k] = position of key k in etcd's byte order */
  int64_t now;
  size_t live;
} model;

static int mkey_cmp(const mkey *a, const mkey *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->bytes, b->bytes, n) : 0;
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

static model *sort_model;
static int rank_cmp(const void *a, const void *b) {
  return mkey_cmp(&sort_model->universe[*(const uint32_t *)a],
                  &sort_model->universe[*(const uint32_t *)b]);
}

static void model_init(model *m) {
  m->s = calloc(NSLOT, sizeof(*m->s));
  m->universe = calloc(NKEY, sizeof(*m->universe));
  m->rank = calloc(NKEY, sizeof(*m->rank));
  assert_true(m->s && m->universe && m->rank);
  char buf[64];
  for (uint32_t k = 0; k < NKEY; k++) {
    int n;
    if (k == 0) {
      n = 0; /* the empty key */
    } else if (k % 97 == 0) {
      n = 5; /* binary keys with zero bytes */
      memcpy(buf, &k, 4);
      buf[4] = 0;
    } else {
      n = snprintf(buf, sizeof(buf), "/registry/ns%u/obj%u", k % 50, k);
    }
    m->universe[k].bytes = malloc((size_t)n + 1);
    assert_non_null(m->universe[k].bytes);
    memcpy(m->universe[k].bytes, buf, (size_t)n);
    m->universe[k].len = (size_t)n;
  }
  uint32_t *order = malloc(NKEY * sizeof(*order));
  assert_non_null(order);
  for (uint32_t k = 0; k < NKEY; k++) order[k] = k;
  sort_model = m;
  qsort(order, NKEY, sizeof(*order), rank_cmp);
  for (uint32_t r = 0; r < NKEY; r++) m->rank[order[r]] = r;
  free(order);
}

static void model_free(model *m) {
  for (size_t i = 0; i < NSLOT; i++) free(m->s[i].keys);
  for (size_t k = 0; k < NKEY; k++) free(m->universe[k].bytes);
  free(m->s);
  free(m->universe);
  free(m->rank);
}

static int64_t model_expiry(int64_t now, int64_t ttl) {
  return now + ttl * 1000;
}

static ssize_t mkeys_find(const mlease *ml, uint32_t k) {
  for (size_t i = 0; i < ml->n; i++)
    if (ml->keys[i] == k) return (ssize_t)i;
  return -1;
}

static model *cmp_model;
static int by_rank(const void *a, const void *b) {
  uint32_t x = cmp_model->rank[*(const uint32_t *)a], y = cmp_model->rank[*(const uint32_t *)b];
  return (x > y) - (x < y);
}

/* The lessor's keys equal the model lease's, sorted. */
static void check_keys(model *m, mlease *ml, const lessor_keys *got) {
  assert_int_equal(got->n, ml->n);
  cmp_model = m;
  if (ml->n) qsort(ml->keys, ml->n, sizeof(*ml->keys), by_rank);
  for (size_t i = 0; i < ml->n; i++) {
    const mkey *want = &m->universe[ml->keys[i]];
    assert_int_equal(got->keys[i].len, want->len);
    if (want->len) assert_memory_equal(got->keys[i].key, want->bytes, want->len);
  }
}

static void model_grant(model *m, lessor *l, size_t slot) {
  mlease *ml = &m->s[slot];
  static const int64_t ttls[] = {-1, 0, 1, 2, 3, 5, 10, 15, 30, 60, 120, 600, 3600};
  int64_t ttl = ttls[rng() % (sizeof(ttls) / sizeof(ttls[0]))];
  uint64_t how = rng() % 4;
  int64_t id = how == 0 ? lessor_next_id(l) : how == 1 ? -(int64_t)(slot + 1) : (int64_t)(slot + 1);
  assert_int_equal(lessor_grant(l, id, ttl, m->now), 0);
  ml->live = true;
  ml->id = id;
  ml->ttl = ttl < LESSOR_MIN_TTL ? LESSOR_MIN_TTL : ttl;
  ml->expiry = model_expiry(m->now, ml->ttl);
  ml->n = 0;
  m->live++;
}

static void model_attach(model *m, lessor *l, size_t slot, uint32_t k) {
  mlease *ml = &m->s[slot];
  const mkey *key = &m->universe[k];
  int rc = lessor_attach(l, ml->live ? ml->id : (int64_t)(slot + 1), key->bytes, key->len);
  if (!ml->live) {
    assert_int_equal(rc, -ENOENT);
    return;
  }
  assert_int_equal(rc, 0);
  if (mkeys_find(ml, k) >= 0) return;
  if (ml->n == ml->cap) {
    ml->cap = ml->cap ? ml->cap * 2 : 4;
    ml->keys = realloc(ml->keys, ml->cap * sizeof(*ml->keys));
    assert_non_null(ml->keys);
  }
  ml->keys[ml->n++] = k;
}

static void model_revoke(model *m, lessor *l, size_t slot) {
  mlease *ml = &m->s[slot];
  lessor_keys got = {0};
  if (!ml->live) {
    assert_int_equal(lessor_revoke(l, (int64_t)(slot + 1), &got), -ENOENT);
    return;
  }
  assert_int_equal(lessor_revoke(l, ml->id, &got), 0);
  check_keys(m, ml, &got);
  lessor_keys_free(&got);
  ml->live = false;
  ml->n = 0;
  m->live--;
}

static int cmp_expiry_slot(const void *a, const void *b) {
  const mlease *x = &cmp_model->s[*(const uint32_t *)a], *y = &cmp_model->s[*(const uint32_t *)b];
  if (x->expiry != y->expiry) return x->expiry < y->expiry ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* What an engine does on its expiry tick: list the oldest expired leases (checked
 * against the model's full sorted list) and revoke them. */
static size_t expiry_tick(model *m, lessor *l, size_t cap, int64_t *ids, uint32_t *slots) {
  size_t n = 0;
  for (uint32_t i = 0; i < NSLOT; i++)
    if (m->s[i].live && m->s[i].expiry <= m->now) slots[n++] = i;
  cmp_model = m;
  if (n) qsort(slots, n, sizeof(*slots), cmp_expiry_slot);
  size_t got = lessor_expired(l, m->now, ids, cap);
  assert_int_equal(got, n < cap ? n : cap);
  for (size_t i = 0; i < got; i++) {
    assert_int_equal(ids[i], m->s[slots[i]].id);
    model_revoke(m, l, slots[i]);
  }
  return got;
}

static void full_check(model *m, lessor *l, int64_t *ids) {
  assert_sound(l);
  assert_int_equal(lessor_count(l), m->live);
  size_t n = lessor_list(l, ids, NSLOT);
  assert_int_equal(n, m->live);
  for (size_t i = 1; i < n; i++) assert_true(ids[i - 1] < ids[i]);
  for (size_t i = 0; i < NSLOT; i++) {
    const mlease *ml = &m->s[i];
    if (!ml->live) continue;
    assert_true(lessor_exists(l, ml->id));
    assert_int_equal(lessor_key_count(l, ml->id), ml->n);
    int64_t g, rem;
    assert_int_equal(lessor_time_to_live(l, ml->id, m->now, &g, &rem, NULL), 0);
    assert_int_equal(g, ml->ttl);
    assert_int_equal(rem, ml->expiry > m->now ? (ml->expiry - m->now) / 1000 : 0);
  }
}

static void run_property(uint64_t seed, int ops) {
  rng_state = seed;
  model m = {0};
  model_init(&m);
  lessor *l = new_lessor();
  lessor_seed(l, seed);
  int64_t *ids = malloc(NSLOT * sizeof(*ids));
  uint32_t *slots = malloc(NSLOT * sizeof(*slots));
  assert_true(ids && slots);

  /* 100k leases with 0..3 keys each, a few with hundreds. */
  for (size_t s = 0; s < NSLOT; s++) {
    model_grant(&m, l, s);
    int nk = s < HEAVY ? 300 : (int)(rng() % 4);
    for (int j = 0; j < nk; j++) model_attach(&m, l, s, (uint32_t)(rng() % NKEY));
    if (s % 10 == 0) m.now++;
  }
  full_check(&m, l, ids);

  int stats[10] = {0};
  for (int op = 0; op < ops; op++) {
    m.now += (int64_t)(rng() % 4);
    size_t s = rng() % 20 == 0 ? rng() % HEAVY : rng() % NSLOT;
    mlease *ml = &m.s[s];
    int kind = (int)(rng() % 100);
    if (kind < 25) { /* keepalive */
      stats[0]++;
      int64_t rc = lessor_keepalive(l, ml->live ? ml->id : (int64_t)(s + 1), m.now);
      if (!ml->live) {
        assert_int_equal(rc, -ENOENT);
      } else if (ml->expiry <= m.now) {
        assert_int_equal(rc, -ETIME);
        stats[8]++;
      } else {
        assert_int_equal(rc, ml->ttl);
        ml->expiry = model_expiry(m.now, ml->ttl);
      }
    } else if (kind < 45) { /* attach */
      stats[1]++;
      model_attach(&m, l, s, (uint32_t)(rng() % NKEY));
    } else if (kind < 60) { /* detach: usually an attached key */
      stats[2]++;
      uint32_t k = (uint32_t)(rng() % NKEY);
      if (ml->live && ml->n && rng() % 4) k = ml->keys[rng() % ml->n];
      const mkey *key = &m.universe[k];
      int rc = lessor_detach(l, ml->live ? ml->id : (int64_t)(s + 1), key->bytes, key->len);
      assert_int_equal(rc, ml->live ? 0 : -ENOENT);
      ssize_t at = ml->live ? mkeys_find(ml, k) : -1;
      if (at >= 0) ml->keys[at] = ml->keys[--ml->n];
    } else if (kind < 70) { /* time to live, with keys now and then */
      stats[3]++;
      int64_t g, rem;
      lessor_keys keys = {0};
      bool with_keys = rng() % 4 == 0;
      int rc = lessor_time_to_live(l, ml->live ? ml->id : (int64_t)(s + 1), m.now, &g, &rem,
                                   with_keys ? &keys : NULL);
      if (!ml->live) {
        assert_int_equal(rc, -ENOENT);
        assert_int_equal(g, 0);
        assert_int_equal(rem, -1);
      } else {
        assert_int_equal(rc, 0);
        assert_int_equal(g, ml->ttl);
        assert_int_equal(rem, ml->expiry > m.now ? (ml->expiry - m.now) / 1000 : 0);
        if (with_keys) check_keys(&m, ml, &keys);
      }
      lessor_keys_free(&keys);
    } else if (kind < 78) { /* revoke */
      stats[4]++;
      model_revoke(&m, l, s);
    } else if (kind < 93) { /* grant into a free slot, or a used id */
      stats[5]++;
      if (!ml->live) {
        model_grant(&m, l, s);
      } else {
        assert_int_equal(lessor_grant(l, ml->id, 10, m.now), -EEXIST);
        assert_int_equal(lessor_grant(l, ml->id, LESSOR_MAX_TTL + 1, m.now), -ERANGE);
      }
    } else { /* exists */
      stats[6]++;
      assert_int_equal(lessor_exists(l, ml->live ? ml->id : (int64_t)(s + 1)), ml->live);
    }

    if (op % 500 == 499) {
      stats[7]++;
      stats[9] += (int)expiry_tick(&m, l, 1 + rng() % 400, ids, slots);
    }
    if (op == ops / 2) { /* a restart: recovery extends every lease */
      lessor_renew_all(l, m.now);
      for (size_t i = 0; i < NSLOT; i++)
        if (m.s[i].live) m.s[i].expiry = model_expiry(m.now, m.s[i].ttl);
    }
    if (op % (ops / 4) == 0) full_check(&m, l, ids);
  }
  full_check(&m, l, ids);
  /* Let everything expire: the engine drains it all in ticks. */
  m.now += (int64_t)3600 * 1000 + 1;
  while (m.live) expiry_tick(&m, l, 1 + rng() % 20000, ids, slots);
  assert_int_equal(lessor_count(l), 0);
  assert_sound(l);
  print_message("property seed %llx: %d ops (keepalive %d of which expired %d, attach %d, detach "
                "%d, ttl %d, revoke %d, grant %d, exists %d; %d ticks revoked %d)\n",
                (unsigned long long)seed, ops, stats[0], stats[8], stats[1], stats[2], stats[3],
                stats[4], stats[5], stats[6], stats[7], stats[9]);
  free(ids);
  free(slots);
  lessor_destroy(l);
  model_free(&m);
}

static void test_property(void **state) {
  (void)state;
  run_property(0x243f6a8885a308d3ull, 300000);
  run_property(0x13198a2e03707344ull, 300000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_grant_and_exists),
      cmocka_unit_test(test_grant_errors),
      cmocka_unit_test(test_extreme_clock),
      cmocka_unit_test(test_next_id),
      cmocka_unit_test(test_keepalive),
      cmocka_unit_test(test_time_to_live),
      cmocka_unit_test(test_expired_order),
      cmocka_unit_test(test_renew_moves_later),
      cmocka_unit_test(test_revoke_keys_after_churn),
      cmocka_unit_test(test_attach_detach_errors),
      cmocka_unit_test(test_renew_all),
      cmocka_unit_test(test_list),
      cmocka_unit_test(test_foreach),
      cmocka_unit_test(test_many_keys_one_lease),
      cmocka_unit_test(test_table_churn),
      cmocka_unit_test(test_property),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
