/* services/store/server/lease_service.h — etcdserverpb.Lease over the engine:
 * LeaseGrant, LeaseRevoke (logged writes, answered once durable),
 * LeaseKeepAlive (bidi: one response per request, TTL 0 for an unknown or
 * expired lease, as etcd answers), LeaseTimeToLive and LeaseLeases (reads). */
#ifndef KEEL_SERVICES_STORE_SERVER_LEASE_SERVICE_H
#define KEEL_SERVICES_STORE_SERVER_LEASE_SERVICE_H

#include "common/base/error.h"
#include "common/rpc/rpc.h"
#include "services/store/engine/store.h"

/* s is borrowed (see kv_service.h for the lifetime rule). */
int lease_service_register(store *s, rpc_server *srv, keel_error *err);

#endif
