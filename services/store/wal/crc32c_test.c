/* services/store/wal/crc32c_test.c — CRC-32C: RFC 3720 vectors, chaining, and
 * the hardware path agreeing with the table path on every length/alignment. */
#include "services/store/wal/crc32c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f) {
  uint8_t buf[32];
  assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
  assert_int_equal(f(0, "", 0), 0);
  memset(buf, 0, sizeof(buf));
  assert_int_equal(f(0, buf, 32), 0x8A9136AAu);
  memset(buf, 0xff, sizeof(buf));
  assert_int_equal(f(0, buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  assert_int_equal(f(0, buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
  assert_int_equal(f(0, buf, 32), 0x113FDB5Cu);
}

static void test_vectors(void **state) {
  (void)state;
  check_vectors(crc32c_sw);
  check_vectors(crc32c);
  if (crc32c_hw_available()) check_vectors(crc32c_hw);
  printf("crc32c: hardware (SSE4.2) %s\n", crc32c_hw_available() ? "used" : "not available");
}

static void test_chaining_and_agreement(void **state) {
  (void)state;
  enum { N = 4096 };
  uint8_t *buf = malloc(N + 16);
  uint32_t seed = 12345;
  for (size_t i = 0; i < N + 16; i++) {
    seed = seed * 1103515245u + 12345u;
    buf[i] = (uint8_t)(seed >> 16);
  }
  for (size_t align = 0; align < 8; align++) {
    for (size_t len = 0; len < 300; len++) {
      uint32_t whole = crc32c_sw(0, buf + align, len);
      if (crc32c_hw_available()) assert_int_equal(crc32c_hw(0, buf + align, len), whole);
      assert_int_equal(crc32c(0, buf + align, len), whole);
      for (size_t cut = 0; cut <= len; cut += 7) {
        uint32_t a = crc32c(0, buf + align, cut);
        assert_int_equal(crc32c(a, buf + align + cut, len - cut), whole);
        uint32_t b = crc32c_sw(0, buf + align, cut);
        assert_int_equal(crc32c_sw(b, buf + align + cut, len - cut), whole);
      }
    }
  }
  assert_int_equal(crc32c(0, buf, N), crc32c_sw(0, buf, N));
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vectors),
      cmocka_unit_test(test_chaining_and_agreement),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
