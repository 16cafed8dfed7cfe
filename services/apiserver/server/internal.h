/* services/apiserver/server/internal.h — shared between apiserver.c (the RPC
 * side) and ops.c (the write verbs). Not a public contract. */
#ifndef KEEL_SERVICES_APISERVER_SERVER_INTERNAL_H
#define KEEL_SERVICES_APISERVER_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"
#include "common/sched/sched.h"
#include "services/apiserver/auth/auth.h"
#include "services/apiserver/cache/watch_cache.h"
#include "services/apiserver/server/apiserver.h"
#include "services/apiserver/storage/objstore.h"

struct apiserver {
  apiserver_options opts;
  objstore *store;
  watch_cache **caches; /* one per kind, in api_kinds() order */
  size_t ncaches;
  void *ctxs;           /* kind_ctx per kind: the services' contexts */
  sched *reads, *writes;
  atomic_int reads_in_flight, writes_in_flight;
  uint32_t service_net, service_size; /* ClusterIP range (host order) */
};

watch_cache *apiserver_cache(apiserver *a, const api_kind *k);
grpc_status_code apiserver_status_for(int rc);
/* The request's namespace: "" for cluster-scoped kinds, "default" when unset. */
const char *apiserver_request_namespace(const api_kind *k, const char *ns);

int apiserver_ops_init(apiserver *a, keel_error *err);
void apiserver_ops_destroy(apiserver *a);

/* The verbs; each finishes the call. req is the decoded request (borrowed). */
void apiserver_do_create(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                         ProtobufCMessage *req);
void apiserver_do_update(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                         ProtobufCMessage *req, const char *subresource);
void apiserver_do_delete(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                         ProtobufCMessage *req);
void apiserver_do_bind(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                       ProtobufCMessage *req);
void apiserver_do_get_scale(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                            ProtobufCMessage *req);
void apiserver_do_update_scale(apiserver *a, const api_kind *k, rpc_call *call, const auth_identity *id,
                               ProtobufCMessage *req);

#endif
