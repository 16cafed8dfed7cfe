/* services/store/lease/keyset_test.c — one lease's key set against a bitmap. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/lease/keyset.h"

static uint64_t rng_state;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static void test_basics(void **state) {
  (void)state;
  lease_keyset s = {0};
  assert_false(lease_keyset_contains(&s, (const uint8_t *)"a", 1));
  assert_int_equal(lease_keyset_remove(&s, (const uint8_t *)"a", 1), 0);
  assert_int_equal(lease_keyset_add(&s, NULL, 0), 1); /* the empty key */
  assert_int_equal(lease_keyset_add(&s, (const uint8_t *)"", 0), 0);
  assert_int_equal(lease_keyset_add(&s, (const uint8_t *)"a", 1), 1);
  assert_int_equal(lease_keyset_add(&s, (const uint8_t *)"a\0", 2), 1);
  assert_int_equal(lease_keyset_add(&s, (const uint8_t *)"a", 1), 0);
  assert_int_equal(lease_keyset_add(&s, (const uint8_t *)"a", (size_t)UINT32_MAX + 1), -EINVAL);
  assert_int_equal(s.n, 3);
  assert_true(lease_keyset_contains(&s, NULL, 0));
  assert_true(lease_keyset_contains(&s, (const uint8_t *)"a\0", 2));
  assert_int_equal(lease_keyset_verify(&s), 0);
  assert_int_equal(lease_keyset_bytes(&s), 4 * sizeof(lease_keyslot) + 1 + 1 + 2);
  assert_int_equal(lease_keyset_remove(&s, NULL, 0), 1);
  assert_int_equal(lease_keyset_remove(&s, (const uint8_t *)"a", 1), 1);
  assert_int_equal(lease_keyset_remove(&s, (const uint8_t *)"a\0", 2), 1);
  /* Empty again: no memory held. */
  assert_int_equal(s.n, 0);
  assert_null(s.slots);
  assert_int_equal(lease_keyset_bytes(&s), 0);
  lease_keyset_clear(&s);
}

/* The key set alone against a bitmap, through heavy add/remove churn. */
static void test_churn(void **state) {
  (void)state;
  enum { U = 5000, OPS = 200000 };
  rng_state = 0x452821e638d01377ull;
  lease_keyset s = {0};
  uint8_t *in = calloc(U, 1);
  assert_non_null(in);
  size_t n = 0;
  uint8_t key[8];
  for (int op = 0; op < OPS; op++) {
    /* Phases favour adding, then removing, so the set grows and shrinks. */
    uint32_t k = (uint32_t)(rng() % U);
    bool add = (op / 20000) % 2 == 0 ? rng() % 4 != 0 : rng() % 4 == 0;
    /* Key k: its 4 bytes, zero-padded to 4..7 bytes (prefixes of each other differ). */
    size_t len = 4 + k % 4;
    memset(key, 0, sizeof(key));
    memcpy(key, &k, 4);
    if (add) {
      int rc = lease_keyset_add(&s, key, len);
      assert_int_equal(rc, in[k] ? 0 : 1);
      n += !in[k];
      in[k] = 1;
    } else {
      int rc = lease_keyset_remove(&s, key, len);
      assert_int_equal(rc, in[k] ? 1 : 0);
      n -= in[k];
      in[k] = 0;
    }
    assert_int_equal(s.n, n);
    if (op % 5000 == 0) {
      assert_int_equal(lease_keyset_verify(&s), 0);
      for (uint32_t j = 0; j < U; j++) {
        memset(key, 0, sizeof(key));
        memcpy(key, &j, 4);
        assert_int_equal(lease_keyset_contains(&s, key, 4 + j % 4), in[j] != 0);
      }
    }
  }
  assert_int_equal(lease_keyset_verify(&s), 0);
  lease_keyset_clear(&s);
  assert_int_equal(s.n, 0);
  assert_null(s.slots);
  free(in);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basics),
      cmocka_unit_test(test_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
