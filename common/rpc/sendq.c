/* common/rpc/sendq.c — see sendq.h. */
#include "common/rpc/sendq.h"

#include <grpc/byte_buffer.h>
#include <stdlib.h>
#include <string.h>

void rpc_sendq_init(rpc_sendq *q, int max_messages, int64_t max_bytes) {
  memset(q, 0, sizeof(*q));
  q->max_messages = max_messages > 0 ? max_messages : 1;
  q->max_bytes = max_bytes;
}

static bool grow(rpc_sendq *q) {
  int ncap = q->cap ? q->cap * 2 : 8;
  if (ncap > q->max_messages) ncap = q->max_messages;
  grpc_byte_buffer **ring = malloc(sizeof(*ring) * (size_t)ncap);
  size_t *sizes = malloc(sizeof(*sizes) * (size_t)ncap);
  if (!ring || !sizes) {
    free(ring);
    free(sizes);
    return false;
  }
  /* Unwrap the old ring so the oldest lands at index 0. */
  for (int i = 0; i < q->count; i++) {
    int j = (q->head + i) % q->cap;
    ring[i] = q->ring[j];
    sizes[i] = q->sizes[j];
  }
  free(q->ring);
  free(q->sizes);
  q->ring = ring;
  q->sizes = sizes;
  q->cap = ncap;
  q->head = 0;
  return true;
}

bool rpc_sendq_push(rpc_sendq *q, grpc_byte_buffer *bb, size_t size) {
  if (q->count >= q->max_messages) return false;
  if (q->count > 0 && q->bytes + (int64_t)size > q->max_bytes) return false;
  if (q->count == q->cap && !grow(q)) return false;
  int tail = (q->head + q->count) % q->cap;
  q->ring[tail] = bb;
  q->sizes[tail] = size;
  q->count++;
  q->bytes += (int64_t)size;
  return true;
}

grpc_byte_buffer *rpc_sendq_pop(rpc_sendq *q) {
  if (q->count == 0) return NULL;
  grpc_byte_buffer *bb = q->ring[q->head];
  q->bytes -= (int64_t)q->sizes[q->head];
  q->head = (q->head + 1) % q->cap;
  q->count--;
  return bb;
}

void rpc_sendq_clear(rpc_sendq *q) {
  grpc_byte_buffer *bb;
  while ((bb = rpc_sendq_pop(q)) != NULL) grpc_byte_buffer_destroy(bb);
}

void rpc_sendq_destroy(rpc_sendq *q) {
  rpc_sendq_clear(q);
  free(q->ring);
  free(q->sizes);
  memset(q, 0, sizeof(*q));
}
