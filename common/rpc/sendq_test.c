/* Unit tests for the bounded stream send queue. */
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/slice.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "common/rpc/sendq.h"

static grpc_byte_buffer *buffer_of(size_t n, uint8_t tag) {
  grpc_slice s = grpc_slice_malloc(n);
  if (n) GRPC_SLICE_START_PTR(s)[0] = tag;
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

static uint8_t tag_of(grpc_byte_buffer *bb) {
  return GRPC_SLICE_START_PTR(bb->data.raw.slice_buffer.slices[0])[0];
}

static void test_fifo_across_growth_and_wraparound(void **state) {
  (void)state;
  rpc_sendq q;
  rpc_sendq_init(&q, 100, 1 << 20);
  uint8_t next_in = 0, next_out = 0;
  /* Interleave pushes and pops so the ring wraps while it grows. */
  for (int round = 0; round < 49; round++) { /* +3 -1 each: ends at 98 of 100 */
    for (int i = 0; i < 3; i++) assert_true(rpc_sendq_push(&q, buffer_of(8, next_in++), 8));
    grpc_byte_buffer *bb = rpc_sendq_pop(&q);
    assert_int_equal(tag_of(bb), next_out++);
    grpc_byte_buffer_destroy(bb);
  }
  assert_int_equal(q.count, 98);
  assert_int_equal(q.bytes, 784);
  grpc_byte_buffer *bb;
  while ((bb = rpc_sendq_pop(&q)) != NULL) {
    assert_int_equal(tag_of(bb), next_out++);
    grpc_byte_buffer_destroy(bb);
  }
  assert_int_equal(q.bytes, 0);
  rpc_sendq_destroy(&q);
}

static void test_message_bound(void **state) {
  (void)state;
  rpc_sendq q;
  rpc_sendq_init(&q, 4, 1 << 20);
  for (int i = 0; i < 4; i++) assert_true(rpc_sendq_push(&q, buffer_of(1, 0), 1));
  grpc_byte_buffer *extra = buffer_of(1, 0);
  assert_false(rpc_sendq_push(&q, extra, 1)); /* not taken: still ours */
  grpc_byte_buffer_destroy(extra);
  rpc_sendq_destroy(&q);
}

static void test_byte_bound_but_one_large_message_fits_empty_queue(void **state) {
  (void)state;
  rpc_sendq q;
  rpc_sendq_init(&q, 100, 1000);
  assert_true(rpc_sendq_push(&q, buffer_of(5000, 1), 5000)); /* alone: allowed */
  grpc_byte_buffer *more = buffer_of(10, 2);
  assert_false(rpc_sendq_push(&q, more, 10));
  grpc_byte_buffer_destroy(rpc_sendq_pop(&q));
  assert_true(rpc_sendq_push(&q, more, 10));
  assert_true(rpc_sendq_push(&q, buffer_of(900, 3), 900));
  grpc_byte_buffer *over = buffer_of(100, 4);
  assert_false(rpc_sendq_push(&q, over, 100)); /* 10 + 900 + 100 > 1000 */
  grpc_byte_buffer_destroy(over);
  rpc_sendq_clear(&q);
  assert_int_equal(q.count, 0);
  assert_int_equal(q.bytes, 0);
  rpc_sendq_destroy(&q);
}

int main(void) {
  grpc_init();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fifo_across_growth_and_wraparound),
      cmocka_unit_test(test_message_bound),
      cmocka_unit_test(test_byte_bound_but_one_large_message_fits_empty_queue),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  grpc_shutdown_blocking();
  return rc;
}
