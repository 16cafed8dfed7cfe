/* services/store/wal/wal_format_test.c — the segment byte layout: names,
 * headers, frames, and how the scanner classifies what ends a log. */
#include "services/store/wal/wal_format.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "services/store/wal/crc32c.h"

static void test_names(void **state) {
  (void)state;
  char buf[WAL_SEGMENT_NAME_LEN + 1];
  wal_segment_name(buf, 1, 0x3e9);
  assert_string_equal(buf, "0000000000000001-00000000000003e9.wal");
  uint64_t seq, first;
  assert_true(wal_segment_name_parse(buf, &seq, &first));
  assert_int_equal(seq, 1);
  assert_int_equal(first, 0x3e9);
  wal_segment_name(buf, UINT64_MAX, UINT64_MAX);
  assert_true(wal_segment_name_parse(buf, &seq, &first));
  assert_int_equal(seq, UINT64_MAX);
  const char *bad[] = {
      "0000000000000001-00000000000003e9.wal.tmp", "0000000000000001-00000000000003E9.wal",
      "000000000000001-000000000000003e9.wal",     "0000000000000001_00000000000003e9.wal",
      "0000000000000001-00000000000003e9.wak",     "0000000000000001-00000000000003e9",
      "x000000000000001-00000000000003e9.wal",     "",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
    assert_false(wal_segment_name_parse(bad[i], &seq, &first));
}

static void test_header(void **state) {
  (void)state;
  uint8_t h[WAL_SEGMENT_HEADER_SIZE];
  wal_segment_header_encode(h, 7, 1234);
  assert_memory_equal(h, "KEELWAL\n", 8);
  assert_int_equal(wal_get_u32(h + 8), WAL_SEGMENT_VERSION);
  uint64_t seq, first;
  assert_null(wal_segment_header_decode(h, sizeof(h), &seq, &first));
  assert_int_equal(seq, 7);
  assert_int_equal(first, 1234);
  assert_non_null(wal_segment_header_decode(h, sizeof(h) - 1, &seq, &first));
  for (size_t bit = 0; bit < sizeof(h) * 8; bit++) {
    uint8_t c[WAL_SEGMENT_HEADER_SIZE];
    memcpy(c, h, sizeof(c));
    c[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    assert_non_null(wal_segment_header_decode(c, sizeof(c), &seq, &first));
  }
}

static void test_integers_little_endian(void **state) {
  (void)state;
  uint8_t b[8];
  wal_put_u32(b, 0x01020304u);
  assert_int_equal(b[0], 4);
  assert_int_equal(b[3], 1);
  assert_int_equal(wal_get_u32(b), 0x01020304u);
  wal_put_u64(b, 0x0102030405060708ull);
  assert_int_equal(b[0], 8);
  assert_int_equal(b[7], 1);
  assert_int_equal(wal_get_u64(b), 0x0102030405060708ull);
}

/* Three frames, then each kind of ending. */
static size_t three_frames(uint8_t *buf) {
  size_t off = 0;
  for (int i = 1; i <= 3; i++) {
    uint8_t p[16];
    memset(p, 'a' + i, sizeof(p));
    wal_frame_header(buf + off, p, (size_t)i * 5);
    memcpy(buf + off + 8, p, (size_t)i * 5);
    off += 8 + (size_t)i * 5;
  }
  return off;
}

static void test_scan_endings(void **state) {
  (void)state;
  uint8_t buf[256];
  memset(buf, 0, sizeof(buf));
  size_t end = three_frames(buf);
  wal_scan_result r;
  /* Exactly at the end. */
  assert_int_equal(wal_scan_frames(buf, end, 0, NULL, NULL, &r), 0);
  assert_int_equal(r.records, 3);
  assert_int_equal(r.end, end);
  assert_int_equal(r.stop, WAL_SCAN_END);
  assert_true(r.tail_zero);
  /* Preallocated zeros. */
  wal_scan_frames(buf, sizeof(buf), 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_ZERO_LENGTH);
  assert_int_equal(r.end, end);
  assert_true(r.tail_zero);
  /* Short header: 5 zero bytes left. */
  wal_scan_frames(buf, end + 5, 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_SHORT_HEADER);
  assert_true(r.tail_zero);
  /* Short payload. */
  wal_scan_frames(buf, end - 1, 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_SHORT_PAYLOAD);
  assert_int_equal(r.records, 2);
  assert_false(r.tail_zero);
  /* Checksum. */
  buf[end - 1] ^= 1;
  wal_scan_frames(buf, sizeof(buf), 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_BAD_CRC);
  assert_int_equal(r.records, 2);
  buf[end - 1] ^= 1;
  /* Length out of range. */
  wal_put_u32(buf + end, WAL_MAX_RECORD_BYTES_ + 1);
  wal_scan_frames(buf, sizeof(buf), 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_TOO_LONG);
  assert_int_equal(r.end, end);
  assert_false(r.tail_zero);
  /* Zero length with garbage after it is not a clean tail. */
  wal_put_u32(buf + end, 0);
  buf[end + 100] = 1;
  wal_scan_frames(buf, sizeof(buf), 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_ZERO_LENGTH);
  assert_false(r.tail_zero);
  /* An all-zero frame header is never a record (crc32c of nothing is 0). */
  assert_int_equal(crc32c(0, "", 0), 0);
  /* Empty input. */
  wal_scan_frames(NULL, 0, 0, NULL, NULL, &r);
  assert_int_equal(r.stop, WAL_SCAN_END);
  assert_true(r.tail_zero);
}

static int stop_at_second(void *arg, size_t off, const uint8_t *p, size_t len) {
  (void)off;
  (void)p;
  (void)len;
  int *n = arg;
  return ++*n == 2 ? 42 : 0;
}

static void test_scan_callback_stops(void **state) {
  (void)state;
  uint8_t buf[128] = {0};
  size_t end = three_frames(buf);
  int n = 0;
  wal_scan_result r;
  assert_int_equal(wal_scan_frames(buf, end, 0, stop_at_second, &n, &r), 42);
  assert_int_equal(r.records, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_header),
      cmocka_unit_test(test_integers_little_endian),
      cmocka_unit_test(test_scan_endings),
      cmocka_unit_test(test_scan_callback_stops),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
