/* common/rpc/sendq.h — the bounded queue behind a stream's one in-flight send
 * (internal). Not thread-safe: the owning call's mutex guards it.
 *
 * A ring of encoded messages bounded by count and bytes. It starts small and
 * grows by doubling up to the count bound, so a unary call or a quiet stream
 * costs no allocation at all. */
#ifndef KEEL_COMMON_RPC_SENDQ_H
#define KEEL_COMMON_RPC_SENDQ_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct rpc_sendq {
  grpc_byte_buffer **ring;
  size_t *sizes;
  int cap;   /* allocated slots */
  int head;  /* index of the oldest */
  int count; /* queued messages */
  int64_t bytes;
  int max_messages;
  int64_t max_bytes;
} rpc_sendq;

void rpc_sendq_init(rpc_sendq *q, int max_messages, int64_t max_bytes);
/* Takes bb on success. False (bb not taken) when the bounds would be exceeded or
 * memory runs out. A single message larger than max_bytes fits an empty queue. */
bool rpc_sendq_push(rpc_sendq *q, grpc_byte_buffer *bb, size_t size);
/* The oldest message, or NULL; the caller owns it. */
grpc_byte_buffer *rpc_sendq_pop(rpc_sendq *q);
/* Frees every queued message (the queue stays usable). */
void rpc_sendq_clear(rpc_sendq *q);
/* Frees everything. */
void rpc_sendq_destroy(rpc_sendq *q);

#endif
