/* common/rpc/services.h — the built-in services every rpc_server serves
 * (internal to common/rpc; daemons use rpc.h).
 *
 * grpc.health.v1.Health: Check (unary) and Watch (server streaming: the current
 * status at once, then every change). Unknown service names get NOT_FOUND from
 * Check and SERVICE_UNKNOWN from Watch, as the gRPC health spec says.
 *
 * grpc.reflection.v1alpha.ServerReflection and grpc.reflection.v1.ServerReflection
 * (bidi ServerReflectionInfo): list_services, file_by_filename,
 * file_containing_symbol (services, methods, messages, fields, enums, enum values,
 * nested types), file_containing_extension and all_extension_numbers_of_type
 * (answered from the descriptors; NOT_FOUND error responses when absent). A file
 * response carries the requested file first (grpcurl takes the first file as the
 * answer), then its transitive imports not yet sent on this stream, imports
 * before importers, as grpc-go does. */
#ifndef KEEL_COMMON_RPC_SERVICES_H
#define KEEL_COMMON_RPC_SERVICES_H

#include "common/base/error.h"
#include "common/rpc/rpc.h"

/* Health status values of grpc.health.v1.HealthCheckResponse.ServingStatus. */
enum { RPC_HEALTH_UNKNOWN = 0, RPC_HEALTH_SERVING = 1, RPC_HEALTH_NOT_SERVING = 2,
       RPC_HEALTH_SERVICE_UNKNOWN = 3 };

typedef struct rpc_health rpc_health;

/* Starts with "" SERVING. */
rpc_health *rpc_health_create(void);
/* Adds grpc.health.v1.Health to srv and marks each of srv's services SERVING. */
int rpc_health_register(rpc_health *h, rpc_server *srv, keel_error *err);
/* Sets a status and notifies that service's watchers. */
void rpc_health_set(rpc_health *h, const char *service, int status);
/* Every service (and "") NOT_SERVING, watchers notified; later sets are ignored. */
void rpc_health_begin_shutdown(rpc_health *h);
void rpc_health_destroy(rpc_health *h);

/* An index over every descriptor set the server holds. */
typedef struct rpc_reflection rpc_reflection;

/* Parses and indexes srv's descriptor sets (rpc_server_descriptor_set). Fails
 * with a message naming the set when one does not parse. */
rpc_reflection *rpc_reflection_create(const rpc_server *srv, keel_error *err);
/* The declared kind of "/pkg.Service/Method" per the descriptors, or -1 when the
 * descriptors do not describe it. */
int rpc_reflection_method_kind(const rpc_reflection *r, const char *path);
/* Adds both reflection services (v1alpha and v1) to srv, served from r. */
int rpc_reflection_register(rpc_reflection *r, rpc_server *srv, keel_error *err);
void rpc_reflection_destroy(rpc_reflection *r);

#endif
