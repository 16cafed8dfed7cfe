/* common/etcd/internal.h — what client.c, kv.c and watch.c share (internal). */
#ifndef KEEL_COMMON_ETCD_INTERNAL_H
#define KEEL_COMMON_ETCD_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "common/etcd/etcd.h"
#include "common/rpc/rpc.h"

struct etcd_client {
  rpc_channel *ch;
  int64_t timeout_ms;
  size_t nendpoints;
  atomic_bool closing;
};

/* Nonzero while this thread runs a user callback (async done, watch): a sync
 * wait there could deadlock the channel thread. */
extern __thread int etcd_in_callback;

/* "Range /registry/pods/a" into buf: the method and a printable, bounded key. */
void etcd_describe(char *buf, size_t size, const char *method, const void *key, size_t key_len);

/* True when a status says nothing was sent: gRPC found no connectable endpoint. */
bool etcd_status_unsent(const rpc_status *st);
/* Maps a failed status to an errno (see etcd.h), fills err with
 * "etcd <what>: <message>"; returns the negative errno. */
int etcd_status_error(const rpc_status *st, const char *what, keel_error *err);

/* A unary call with etcd's retry rules (etcd.h RETRIES): idempotent calls are
 * retried by common/rpc; others are re-sent only when nothing was sent. On 0,
 * *resp is the response (caller frees with protobuf_c_message_free_unpacked). */
int etcd_call(etcd_client *c, const char *method, const char *what, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, bool idempotent,
              ProtobufCMessage **resp, keel_error *err);

/* Async form. finish runs once on a channel thread with the response (owned
 * by finish) or an error; it turns the response into the caller's result and
 * calls the caller's callback (user, arg). Stored by value: no allocation. */
typedef struct etcd_async_done {
  void (*finish)(const struct etcd_async_done *d, ProtobufCMessage *resp, const keel_error *err);
  union {
    etcd_range_done range;
    etcd_txn_done txn;
  } user;
  void *arg;
} etcd_async_done;
/* Returns 0, or a negative errno (finish will not run). */
int etcd_call_async(etcd_client *c, const char *method, const char *what,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    bool idempotent, const etcd_async_done *done, keel_error *err);

#endif
