/* services/store/watch/watch_service.h — etcdserverpb.Watch over common/rpc.
 *
 * One bidi stream per Watch call, as etcd 3.4 serves it: create, cancel and
 * progress requests in; created/canceled/progress responses and events out,
 * through the call's bounded send queue (RPC_SLOW_REJECT: a full queue makes
 * the stream's watchers fall behind and catch up later, see watch_hub.h). A
 * client half-close leaves the stream open (etcd keeps sending until the client
 * goes away). Request metadata such as etcdctl's "hasleader: true" is accepted:
 * a single member always has a leader. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_SERVICE_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_SERVICE_H

#include "common/base/error.h"
#include "common/rpc/rpc.h"
#include "services/store/watch/watch_hub.h"

/* Registers /etcdserverpb.Watch/Watch on srv (before rpc_server_start). The hub
 * must have been created with max_send_bytes equal to the server's
 * max_message_bytes when that is not the default. */
int watch_service_register(watch_hub *hub, rpc_server *srv, keel_error *err);

#endif
