/* common/rpc/internal.h — helpers shared by server.c and client.c (internal). */
#ifndef KEEL_COMMON_RPC_INTERNAL_H
#define KEEL_COMMON_RPC_INTERNAL_H

#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/base/error.h"

#define RPC_DEFAULT_MAX_MESSAGE_BYTES (4 * 1024 * 1024)

/* Every completion-queue tag points at one of these; `kind` says which struct it
 * is embedded in, so one dispatch loop serves every kind of event. */
typedef enum {
  RPC_TAG_REQUEST = 1,   /* server: an accept slot completed */
  RPC_TAG_RECV_CLOSE,    /* server: the call is over (cancelled or not) */
  RPC_TAG_SEND,          /* server: a send batch completed */
  RPC_TAG_RECV_MESSAGE,  /* server: a client-stream message (or half-close) */
  RPC_TAG_SHUTDOWN,      /* server: grpc_server_shutdown_and_notify */
  RPC_TAG_CLIENT_UNARY,  /* client: an async unary call completed */
  RPC_TAG_CLIENT_SEND,   /* client: a stream write / half-close completed */
  RPC_TAG_CLIENT_RECV,   /* client: a stream read completed */
  RPC_TAG_CLIENT_STATUS, /* client: a stream's status arrived */
  RPC_TAG_CLIENT_START,  /* client: a stream's initial send completed */
} rpc_tag_kind;

typedef struct rpc_tag {
  rpc_tag_kind kind;
} rpc_tag;

#define RPC_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

char *rpc_slice_to_cstr(grpc_slice s);
bool rpc_slice_eq_cstr(grpc_slice s, const char *str);
/* Reads a whole (PEM) file into a NUL-terminated malloc'ed string. */
int rpc_read_file(const char *path, char **out, keel_error *err);
int64_t rpc_now_ms(void);
double rpc_now_seconds(void);
gpr_timespec rpc_deadline_from_timeout(int64_t timeout_ms);

#endif
