/* services/store/server/kv_service.h — etcd's gRPC services over the engine:
 * etcdserverpb.KV (Range, Put, DeleteRange, Txn, Compact), Maintenance.Status
 * and Cluster.MemberList, plus the etcd descriptors for server reflection.
 *
 * Range reads synchronously on the completion-queue thread (an in-memory read
 * under the store's read lock). Writes keep the call (rpc_call_ref), are
 * submitted to the engine and answered from its done callback on the WAL
 * thread once durable; the call is released there. A client that cancels a
 * pending write does not stop it (as with etcd, it may still be applied).
 *
 * Errors are etcd's: the engine's kv_error code and exact message; a full
 * apply queue is RESOURCE_EXHAUSTED "etcdserver: too many requests"; a write
 * whose request is larger than max_request_bytes is INVALID_ARGUMENT
 * "etcdserver: request is too large" (etcd checks writes only, and not
 * read-only txns). Anything beyond the gRPC message limit (set it with
 * kv_service_max_message_bytes) is refused by gRPC itself with
 * RESOURCE_EXHAUSTED, as etcd's 2 MiB limit for 1.5 MiB requests does.
 *
 * Watch and Lease are not served yet (clients get UNIMPLEMENTED). */
#ifndef KEEL_SERVICES_STORE_SERVER_KV_SERVICE_H
#define KEEL_SERVICES_STORE_SERVER_KV_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/rpc/rpc.h"
#include "services/store/engine/store.h"

/* The etcd server version Maintenance.Status reports (etcdctl endpoint status
 * prints it): the etcd release whose behavior keel-store reproduces and whose
 * etcdctl and conformance suite (e2e/store) it is checked against. */
#define KV_SERVICE_ETCD_VERSION "3.4.23"

/* etcd's --max-request-bytes default, and the gRPC overhead etcd allows on top
 * of it for its receive limit (embed: grpcOverheadBytes). */
#define KV_SERVICE_DEFAULT_MAX_REQUEST_BYTES ((int64_t)1536 * 1024)
#define KV_SERVICE_GRPC_OVERHEAD_BYTES ((int64_t)512 * 1024)

typedef struct kv_service_options {
  int64_t max_request_bytes; /* <= 0: KV_SERVICE_DEFAULT_MAX_REQUEST_BYTES */
  const char *name;          /* the member's name (etcd --name) */
  /* Cluster.MemberList's peerURLs and clientURLs (copied). */
  const char *const *peer_urls;
  size_t npeer_urls;
  const char *const *client_urls;
  size_t nclient_urls;
} kv_service_options;

typedef struct kv_service kv_service;

/* s is borrowed: close it only after the server is shut down and every
 * submitted write has completed (store_close does both for its own writes). */
kv_service *kv_service_create(store *s, const kv_service_options *opts, keel_error *err);
/* Registers KV, Maintenance and Cluster, and the etcd descriptor set. */
int kv_service_register(kv_service *svc, rpc_server *srv, keel_error *err);
void kv_service_destroy(kv_service *svc);

/* The gRPC message limit for a given --max-request-bytes (etcd: + 512 KiB). */
int64_t kv_service_max_message_bytes(int64_t max_request_bytes);

#endif
