/* services/echo/echo_service.h — keel.echo.v1.Echo, one method of each RPC kind.
 *
 * The runtime's proving ground: tests and bench/rpc drive it, and interop
 * clients (python3-grpcio, @grpc/grpc-js) check every RPC kind, deadlines,
 * cancellation (visible through Stats), metadata and error statuses against it.
 * Delays and intervals run on a sched timer, never on a completion-queue thread. */
#ifndef KEEL_SERVICES_ECHO_ECHO_SERVICE_H
#define KEEL_SERVICES_ECHO_ECHO_SERVICE_H

#include "common/base/error.h"
#include "common/rpc/rpc.h"
#include "common/sched/sched.h"

typedef struct echo_service echo_service;

/* timers: borrowed; must outlive the service's calls (destroy it after
 * rpc_server_shutdown and before rpc_server_destroy, so pending timers drop
 * their call references). */
echo_service *echo_service_create(sched *timers);
int echo_service_register(echo_service *svc, rpc_server *srv, keel_error *err);
void echo_service_destroy(echo_service *svc);

#endif
