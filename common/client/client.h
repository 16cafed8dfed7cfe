/* common/client/client.h — a generic client of keel-apiserver: every verb of
 * every kind, driven by the kind registry (common/kinds), over common/rpc.
 *
 * One `client` is one rpc_channel over an endpoint list (failover to the next
 * endpoint on UNAVAILABLE), plus the credentials every call carries: TLS (or
 * mutual TLS) from the channel, and a bearer token sent as metadata
 * "authorization: Bearer <token>". Create it once per process and share it:
 * every function is thread-safe.
 *
 * Verbs are those of keel.api.v1 (proto/keel/api/v1/services.proto). Requests
 * and results are protobuf-c messages of the kind's descriptors: the object
 * (k->object), its list (k->list), GetRequest, ListRequest, DeleteRequest,
 * Binding, Scale. Results are owned by the caller (free with
 * protobuf_c_message_free_unpacked(msg, NULL)).
 *
 * ERRORS are the server's: a gRPC status code and the server's message
 * verbatim ("pods \"web\" not found", "Operation cannot be fulfilled ...: the
 * object has been modified"). Failures found before anything is sent (a verb
 * the kind does not have, a request of the wrong type) are reported the same
 * way with code INVALID_ARGUMENT or UNIMPLEMENTED and a message starting
 * "client:". Reads (Get, List, GetScale) are retried on UNAVAILABLE with
 * backoff within their deadline; writes are never re-sent.
 *
 * SYNC calls block the calling thread up to their deadline (default 30 s).
 * ASYNC calls and watch callbacks run on the client's channel threads, which
 * must never block: hand work to your own threads (an informer, a work queue). */
#ifndef KEEL_COMMON_CLIENT_CLIENT_H
#define KEEL_COMMON_CLIENT_CLIENT_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"

typedef struct client client;
struct client_config; /* config.h */

typedef struct client_options {
  const char *const *endpoints; /* "host:port" or "unix:/path"; at least one */
  size_t nendpoints;
  const rpc_tls_config *tls;    /* NULL = insecure */
  const char *token;            /* bearer token for every call; NULL = none */
  int64_t timeout_ms;           /* default deadline of sync and async calls; default 30000 */
  int64_t max_message_bytes;    /* largest response; default 256 MiB (lists are big) */
  int cq_threads;               /* threads running async callbacks and watch events; default 2 */
} client_options;

/* The options are copied. NULL with err on failure. */
client *client_new(const client_options *opts, keel_error *err);
/* From a loaded config (config.h): its endpoints, TLS files and token. */
client *client_new_from_config(const struct client_config *cfg, keel_error *err);
/* Cancels open watches and async calls (their callbacks still run, with
 * CANCELLED), waits for them, frees. Not from a callback. */
void client_free(client *c);
rpc_channel *client_channel(client *c);

/* ---------------------------------------------------------------- status */

#define CLIENT_MESSAGE_MAX 1024

typedef struct client_status {
  grpc_status_code code; /* GRPC_STATUS_OK on success */
  char message[CLIENT_MESSAGE_MAX]; /* the server's message (truncated past 1023 bytes) */
} client_status;

/* Predicates for the answers controllers branch on. */
static inline bool client_is_not_found(const client_status *st) { return st->code == GRPC_STATUS_NOT_FOUND; }
static inline bool client_is_already_exists(const client_status *st) { return st->code == GRPC_STATUS_ALREADY_EXISTS; }
/* A stale resourceVersion on Update, or a failed Delete precondition. */
static inline bool client_is_conflict(const client_status *st) { return st->code == GRPC_STATUS_FAILED_PRECONDITION; }
/* A watch from a version older than the server's window: relist. */
static inline bool client_is_too_old(const client_status *st) { return st->code == GRPC_STATUS_OUT_OF_RANGE; }

/* ---------------------------------------------------------------- verbs */

typedef enum client_verb {
  CLIENT_CREATE,        /* k->object -> k->object */
  CLIENT_GET,           /* GetRequest -> k->object */
  CLIENT_LIST,          /* ListRequest -> k->list */
  CLIENT_UPDATE,        /* k->object -> k->object */
  CLIENT_UPDATE_STATUS, /* k->object -> k->object (kinds with API_SUB_STATUS) */
  CLIENT_DELETE,        /* DeleteRequest -> k->object */
  CLIENT_BIND,          /* Binding -> Pod (Pods only) */
  CLIENT_GET_SCALE,     /* GetRequest -> Scale (API_SUB_SCALE) */
  CLIENT_UPDATE_SCALE,  /* Scale -> Scale (API_SUB_SCALE) */
} client_verb;

/* "Create", "Get", ... the gRPC method name. */
const char *client_verb_method(client_verb v);

typedef struct client_call_options {
  int64_t timeout_ms; /* 0 = the client's default */
  bool dry_run;       /* writes: validate and answer, store nothing ("x-keel-dry-run: All") */
} client_call_options;

/* Any verb: 0 with *resp set (caller owns it), or -1 with *st filled (st is
 * always filled; opts may be NULL). */
int client_call(client *c, const api_kind *k, client_verb verb, const ProtobufCMessage *req,
                ProtobufCMessage **resp, const client_call_options *opts, client_status *st);

/* Typed shorthands of client_call. ns is ignored for cluster-scoped kinds. */
int client_create(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                  const client_call_options *opts, client_status *st);
/* rv: "" (or NULL) = the newest state, "0" = any cached state. */
int client_get(client *c, const api_kind *k, const char *ns, const char *name, const char *rv,
               ProtobufCMessage **out, const client_call_options *opts, client_status *st);
/* req NULL = everything (all namespaces), consistent. */
int client_list(client *c, const api_kind *k, const Keel__Api__V1__ListRequest *req, ProtobufCMessage **list,
                const client_call_options *opts, client_status *st);
int client_update(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                  const client_call_options *opts, client_status *st);
int client_update_status(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                         const client_call_options *opts, client_status *st);
/* grace_s < 0: the kind's default. out may be NULL. */
int client_delete(client *c, const api_kind *k, const char *ns, const char *name, int64_t grace_s,
                  ProtobufCMessage **out, const client_call_options *opts, client_status *st);
/* Binds pod ns/name to node (Pods/Bind). out (the bound Pod) may be NULL. */
int client_bind(client *c, const char *ns, const char *pod, const char *node, Keel__Api__V1__Pod **out,
                const client_call_options *opts, client_status *st);
int client_get_scale(client *c, const api_kind *k, const char *ns, const char *name, Keel__Api__V1__Scale **out,
                     const client_call_options *opts, client_status *st);
int client_update_scale(client *c, const api_kind *k, const Keel__Api__V1__Scale *scale,
                        Keel__Api__V1__Scale **out, const client_call_options *opts, client_status *st);

/* Asynchronous client_call: done runs once, on a channel thread, with the
 * status and the response (NULL unless OK), which done owns. Returns 0, or -1
 * with *st filled when the call could not start (done never runs then). */
typedef void (*client_done_fn)(void *arg, const client_status *st, ProtobufCMessage *resp);
int client_call_async(client *c, const api_kind *k, client_verb verb, const ProtobufCMessage *req,
                      const client_call_options *opts, client_done_fn done, void *arg, client_status *st);

/* ---------------------------------------------------------------- streams */

/* Any streaming method ("/keel.api.v1.Pods/Log", ".../Exec") with the
 * client's credentials: rpc_stream_start on the client's channel (see
 * common/rpc/rpc.h for the callbacks and the stream's life). opts->timeout_ms
 * 0 means no deadline here: streams run as long as the caller wants. */
rpc_stream *client_stream_start(client *c, const char *method, rpc_kind kind, const ProtobufCMessage *req,
                                const ProtobufCMessageDescriptor *resp, const client_call_options *opts,
                                const rpc_stream_callbacks *cb, void *arg, keel_error *err);

/* ---------------------------------------------------------------- watch */

typedef struct client_watch client_watch;

typedef struct client_watch_handlers {
  /* Each event: type "ADDED", "MODIFIED", "DELETED" or "BOOKMARK"; the object
   * is borrowed for the call (a BOOKMARK's carries only
   * metadata.resourceVersion). rv is its resourceVersion as a number. */
  void (*on_event)(const char *type, const ProtobufCMessage *object, int64_t rv, void *arg);
  /* Once, last: why the stream ended (OK when the server ended it after
   * timeout_seconds; OUT_OF_RANGE "too old resource version": relist;
   * RESOURCE_EXHAUSTED: too slow, re-watch from the last version seen;
   * UNAVAILABLE: connection lost or server shutting down; CANCELLED: stopped). */
  void (*on_close)(const client_status *st, void *arg);
} client_watch_handlers;

/* Starts a watch (Watch(WatchRequest) of kind k); callbacks run on a channel
 * thread, one at a time, in order. NULL with err if it could not start. */
client_watch *client_watch_start(client *c, const api_kind *k, const Keel__Api__V1__WatchRequest *req,
                                 const client_watch_handlers *h, void *arg, keel_error *err);
/* Cancels the stream; on_close still runs (CANCELLED unless it had ended).
 * Safe from any thread, including this watch's own callbacks. */
void client_watch_cancel(client_watch *w);
/* Cancels the stream if open, waits for on_close, frees. No callback runs
 * after it returns. Not from a callback of this watch. */
void client_watch_stop(client_watch *w);

/* ---------------------------------------------------------------- objects */

/* The object's cache and work-queue key, as client-go's
 * MetaNamespaceKeyFunc: "namespace/name", or "name" for cluster-scoped kinds.
 * Returns buf, or NULL when the object has no name or buf is too small. */
const char *client_object_key(const api_kind *k, const ProtobufCMessage *obj, char *buf, size_t len);
/* Splits a key into namespace ("" when none) and name, in place-copied
 * buffers. Returns 0, or -EINVAL when a part does not fit. */
int client_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen);
/* metadata.resourceVersion as a number (0 when unset or not a number). */
int64_t client_object_rv(const api_kind *k, const ProtobufCMessage *obj);

#endif
