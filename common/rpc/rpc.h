/* common/rpc/rpc.h — Keel's gRPC runtime on the gRPC C core.
 *
 * SERVER. A server owns a grpc_server, N completion queues and one polling thread
 * per queue. Services are registered from protobuf-c service descriptors plus a
 * table that declares each method's kind (protobuf-c descriptors do not record
 * streaming, so the kind is explicit and is checked against the embedded
 * descriptor set when one is given). Requests are decoded before the handler
 * runs; responses are encoded by the runtime.
 *
 * Handlers run on a completion-queue thread and must not block: they reply at
 * once, or keep the call (rpc_call_ref) and complete it later from any thread
 * (a timer, a worker, a watch producer). Every rpc_call_* function is
 * thread-safe.
 *
 * A call's life: started -> handler -> finished (status sent) -> closed (the
 * client side is done, or the call was canceled) -> freed when the last ref is
 * dropped. A call that closes before its handler finished it (client cancel,
 * deadline, connection loss, or the runtime ending it at shutdown or for a slow
 * receiver) runs the call's cancel callback once, on a CQ thread; after a real
 * cancellation every send/finish fails with -ECANCELED.
 *
 * STREAM SENDS are flow-controlled: one SEND_MESSAGE in flight per call, and a
 * bounded queue (messages and bytes) behind it. When the queue is full:
 *   RPC_SLOW_CLOSE (default)  the call is finished with RESOURCE_EXHAUSTED
 *                             "stream receiver too slow" and the send fails with
 *                             -ENOBUFS; a watch client relists on that status.
 *   RPC_SLOW_REJECT           the send fails with -ENOBUFS and nothing else
 *                             happens; the producer waits for the writable
 *                             callback (queue drained below half) and resumes.
 * Memory per stream is therefore bounded by the queue limits.
 *
 * SHUTDOWN (rpc_server_shutdown, or SIGTERM/SIGINT via rpc_server_run): shutdown
 * hooks run (health turns NOT_SERVING), the server stops accepting calls (new
 * ones get UNAVAILABLE), every open stream whose handler has not finished it is
 * finished with UNAVAILABLE "server shutting down" after its queued messages,
 * in-flight unary calls get until the grace period to complete, then every call
 * still open is canceled. Every client sees a status; none hangs.
 *
 * CLIENT. A channel spans an endpoint list ("host:port", "unix:/path"). Calls go
 * to the current endpoint; UNAVAILABLE moves the channel to the next one. Calls
 * marked idempotent are retried on UNAVAILABLE with exponential backoff and
 * jitter, on the next endpoint, within their deadline. Unary calls can be
 * synchronous or asynchronous; streams are asynchronous with callbacks that run
 * on the channel's completion-queue thread.
 */
#ifndef KEEL_COMMON_RPC_RPC_H
#define KEEL_COMMON_RPC_RPC_H

#include <grpc/grpc.h>
#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

/* ------------------------------------------------------------------ common */

typedef enum {
  RPC_UNARY = 0,
  RPC_SERVER_STREAMING = 1,
  RPC_CLIENT_STREAMING = 2,
  RPC_BIDI_STREAMING = 3,
} rpc_kind;

const char *rpc_kind_name(rpc_kind kind);
/* "OK", "CANCELLED", ... "UNAUTHENTICATED"; "UNKNOWN" for out-of-range codes. */
const char *rpc_status_code_name(grpc_status_code code);

/* TLS material as PEM file paths. For a server: cert+key are its identity; with
 * ca_file set, clients must present a certificate signed by that CA (mutual TLS).
 * For a client: ca_file verifies the server; cert+key are its identity for mTLS.
 * server_name_override (client only) checks the server certificate against this
 * name instead of the target host (tests with certificates for "localhost"). */
typedef struct rpc_tls_config {
  const char *cert_file;
  const char *key_file;
  const char *ca_file;
  const char *server_name_override;
  /* Server only, with ca_file: a client certificate is verified when one is
   * sent but not required (the application authenticates callers without
   * one, e.g. by bearer token). Default: required. */
  bool client_cert_optional;
} rpc_tls_config;

/* One metadata entry; keys are lowercase ASCII, values binary-safe ("-bin" keys). */
typedef struct rpc_metadata {
  const char *key;
  const char *value;
  size_t value_len;
} rpc_metadata;

/* Initializes the gRPC library once per process (reference counted); servers and
 * channels do it themselves. rpc_library_shutdown releases one reference. */
void rpc_library_init(void);
void rpc_library_shutdown(void);

/* ------------------------------------------------------------------ server */

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

/* Handler callbacks. `service_ctx` is the pointer given to rpc_server_add_service.
 * Message pointers are borrowed: valid until the callback returns. */
typedef struct rpc_method_handler {
  const char *name; /* method name as in the .proto, e.g. "Echo" */
  rpc_kind kind;
  /* RPC_UNARY and RPC_SERVER_STREAMING: the one request. */
  void (*on_request)(rpc_call *call, const ProtobufCMessage *request, void *service_ctx);
  /* RPC_CLIENT_STREAMING and RPC_BIDI_STREAMING: the call started (may be NULL),
   * each message, then the client's half-close (the handler must eventually
   * finish the call; it may do so earlier). */
  void (*on_start)(rpc_call *call, void *service_ctx);
  void (*on_message)(rpc_call *call, const ProtobufCMessage *message, void *service_ctx);
  void (*on_half_close)(rpc_call *call, void *service_ctx);
} rpc_method_handler;

typedef enum { RPC_SLOW_CLOSE = 0, RPC_SLOW_REJECT = 1 } rpc_slow_policy;

typedef struct rpc_server_options {
  int cq_threads;                 /* completion queues / polling threads; default half the cores, 1..4 */
  int64_t max_message_bytes;      /* receive limit (and send limit unless set below); default 4 MiB */
  int64_t max_send_message_bytes; /* send limit; 0 = max_message_bytes, -1 = none (2 GiB, gRPC's own) */
  int requests_per_method;        /* outstanding accepts per method per CQ; default 8 */
  int stream_queue_messages;      /* per-stream send queue bound; default 1024 */
  int64_t stream_queue_bytes;     /* per-stream send queue bound; default 4 MiB */
  int shutdown_grace_ms;          /* in-flight calls get this long at shutdown; default 1500 */
  const char *name;               /* for logs and metrics, e.g. "keel-echo" */
  bool disable_metrics;           /* no per-method metrics (microbenchmarks) */
} rpc_server_options;

/* NULL opts = all defaults. */
rpc_server *rpc_server_create(const rpc_server_options *opts, keel_error *err);

/* Listens on addr: "127.0.0.1:7000", "0.0.0.0:0" (any free port), "[::1]:0",
 * "unix:/path/sock". tls NULL = insecure. Returns the bound port (0 for unix). */
int rpc_server_add_listener(rpc_server *srv, const char *addr, const rpc_tls_config *tls,
                            keel_error *err);

/* Registers every method of desc. handlers must name each method of the service
 * exactly once. Before rpc_server_start only. */
int rpc_server_add_service(rpc_server *srv, const ProtobufCServiceDescriptor *desc,
                           const rpc_method_handler *handlers, size_t nhandlers,
                           void *service_ctx, keel_error *err);

/* Same, serving the methods under another full service name (the reflection
 * v1 alias of v1alpha, whose messages are wire-identical). */
int rpc_server_add_service_as(rpc_server *srv, const char *full_service_name,
                              const ProtobufCServiceDescriptor *desc,
                              const rpc_method_handler *handlers, size_t nhandlers,
                              void *service_ctx, keel_error *err);

/* Adds a serialized FileDescriptorSet (from //proto descriptor_set_library) for
 * reflection and for checking declared kinds; the bytes are borrowed for the
 * server's lifetime. The runtime descriptors (health, reflection) are added by
 * rpc_server_create. */
int rpc_server_add_descriptors(rpc_server *srv, const unsigned char *set, size_t len,
                               keel_error *err);

/* Read-only views for health/reflection. Names are "pkg.Service". */
size_t rpc_server_service_count(const rpc_server *srv);
const char *rpc_server_service_name(const rpc_server *srv, size_t i);
size_t rpc_server_descriptor_set_count(const rpc_server *srv);
void rpc_server_descriptor_set(const rpc_server *srv, size_t i, const unsigned char **set,
                               size_t *len);

/* Called once when shutdown begins, before the server stops accepting, in
 * registration order, on the thread that began the shutdown. */
typedef void (*rpc_shutdown_hook)(rpc_server *srv, void *arg);
void rpc_server_on_shutdown(rpc_server *srv, rpc_shutdown_hook hook, void *arg);

/* Checks kinds against descriptors, registers health and reflection services,
 * starts the CQ threads. */
int rpc_server_start(rpc_server *srv, keel_error *err);

bool rpc_server_shutting_down(const rpc_server *srv);

/* Graceful, bounded shutdown (see top). Idempotent; returns when every call is
 * closed and every thread joined. */
void rpc_server_shutdown(rpc_server *srv);

/* Blocks SIGTERM/SIGINT (call before creating any thread, i.e. first in main),
 * then rpc_server_run waits for one of them and shuts srv down gracefully. */
void rpc_block_shutdown_signals(void);
int rpc_server_run(rpc_server *srv);

/* Frees a server that is shut down (or was never started). */
void rpc_server_destroy(rpc_server *srv);

/* Health: set a service's status ("" = the whole server). Status values are
 * grpc.health.v1's (1 SERVING, 2 NOT_SERVING). Watchers are notified. */
void rpc_server_set_health(rpc_server *srv, const char *service, int status);

/* --- the call, inside handlers */

void rpc_call_ref(rpc_call *call);
void rpc_call_unref(rpc_call *call);

/* "/pkg.Service/Method" */
const char *rpc_call_method(const rpc_call *call);
rpc_kind rpc_call_kind(const rpc_call *call);
rpc_server *rpc_call_server(const rpc_call *call);

/* The first value of request metadata `key` (lowercase), or NULL. *len (if not
 * NULL) receives its length. Valid for the call's life. */
const char *rpc_call_metadata(const rpc_call *call, const char *key, size_t *len);
/* Milliseconds until the client's deadline; INT64_MAX when none. */
int64_t rpc_call_remaining_ms(const rpc_call *call);
/* True when the deadline has passed, or is so close that a cancel arriving now is
 * the client's own deadline firing: the client's clock runs ahead of the
 * server's copy of the deadline by the propagation delay (RPC_DEADLINE_SLACK_MS). */
#define RPC_DEADLINE_SLACK_MS 50
bool rpc_call_deadline_passed(const rpc_call *call);
/* "ipv4:127.0.0.1:5555", "unix:..."; malloc'ed, caller frees. */
char *rpc_call_peer(const rpc_call *call);
/* A property of the peer's authenticated identity, e.g. "x509_common_name" for the
 * client certificate's CN under mTLS; malloc'ed, or NULL when absent. */
char *rpc_call_auth_property(const rpc_call *call, const char *name);

/* Metadata sent with the first response message (or the status if none): only
 * before the first send. Copies key and value. */
int rpc_call_add_initial_metadata(rpc_call *call, const char *key, const char *value,
                                  size_t value_len);
/* Trailing metadata sent with the status. Copies key and value. */
int rpc_call_add_trailing_metadata(rpc_call *call, const char *key, const char *value,
                                   size_t value_len);

/* Inside on_request only: takes ownership of the request message (free it with
 * protobuf_c_message_free_unpacked(msg, NULL)), so a handler that finishes the
 * call later on another thread keeps it without copying. NULL when already
 * taken (or outside on_request). */
ProtobufCMessage *rpc_call_take_request(rpc_call *call);

/* Per-call state: destroy(ptr) runs when the call is freed. */
void rpc_call_set_user_data(rpc_call *call, void *ptr, void (*destroy)(void *));
void *rpc_call_user_data(const rpc_call *call);

/* Runs once, on a CQ thread, if the call closes before the handler finished it
 * (see top): the place to release what the handler holds. The call stays valid
 * during the callback. Set it before returning from the handler (a call closed
 * earlier runs it at once, from this function). */
void rpc_call_on_cancel(rpc_call *call, void (*fn)(rpc_call *call, void *arg), void *arg);
bool rpc_call_is_cancelled(const rpc_call *call);

/* Unary and client-streaming: send the response and status OK. Returns 0,
 * -ECANCELED, or -EALREADY if the call was already finished. */
int rpc_call_reply(rpc_call *call, const ProtobufCMessage *response);

/* Like rpc_call_reply with a response already encoded by the handler (a list
 * assembled from cached encodings); takes the slice. */
int rpc_call_reply_bytes(rpc_call *call, grpc_slice encoded);

/* Server- and bidi-streaming: queue one message (see STREAM SENDS). Returns 0,
 * -ENOBUFS (queue full), -ECANCELED, -EALREADY (finished), -EINVAL (too large). */
int rpc_call_send(rpc_call *call, const ProtobufCMessage *message);

/* A message encoded once and sent on many streams (a watch event fanned out to
 * thousands of watchers): every send shares the bytes instead of encoding and
 * copying them again. Thread-safe; free it when done (queued sends keep their
 * own reference). */
typedef struct rpc_shared_message rpc_shared_message;
rpc_shared_message *rpc_shared_message_new(const ProtobufCMessage *msg);
/* The bytes must be a valid encoding of the stream's response type (copied). */
rpc_shared_message *rpc_shared_message_from_bytes(const void *data, size_t len);
size_t rpc_shared_message_size(const rpc_shared_message *m);
/* The encoded bytes (valid while m is). */
const unsigned char *rpc_shared_message_data(const rpc_shared_message *m, size_t *len);
void rpc_shared_message_free(rpc_shared_message *m);
/* Like rpc_call_send. */
int rpc_call_send_shared(rpc_call *call, const rpc_shared_message *m);
/* Bytes the caller allocated and filled, shared without a copy: destroy(data)
 * runs once m was freed and every queued send that used it is done (on
 * whichever thread drops the last reference: the freeing one or a CQ thread). */
rpc_shared_message *rpc_shared_message_wrap(void *data, size_t len, void (*destroy)(void *));

/* A message assembled from a short prefix of the caller's (copied: the bytes
 * that differ per stream) followed by ranges of shared messages (referenced,
 * never copied or re-encoded), in order. The concatenation must be a valid
 * encoding of the stream's response type: protobuf lets a message's fields come
 * in any order and a repeated field in pieces, so a per-stream header followed
 * by shared, pre-encoded repeated entries is one (a watch response: header and
 * watch_id per watcher, the events' bytes the same for every watcher). Each
 * range keeps its message's bytes alive until that send is done, so the shared
 * message may be freed right after the call. Returns like rpc_call_send, plus
 * -ERANGE when a range lies outside its message (nothing is sent). */
typedef struct rpc_shared_range {
  const rpc_shared_message *m;
  size_t offset, len;
} rpc_shared_range;
int rpc_call_send_prefixed(rpc_call *call, const void *prefix, size_t prefix_len,
                           const rpc_shared_range *parts, size_t nparts);

/* Policy and writable callback for a streaming call's send queue. The writable
 * callback runs on a CQ thread whenever the queue drains below half after a send
 * failed with -ENOBUFS (RPC_SLOW_REJECT). */
void rpc_call_set_slow_policy(rpc_call *call, rpc_slow_policy policy);
/* Client and bidi streams: read-side flow control for a handler that relays
 * the client's messages somewhere slower. After pause, no further message is
 * read once the current on_message returns (the client's sends then wait on
 * gRPC's flow control); resume reads on. A cancel still reaches the handler
 * while paused; the half-close is seen only after resuming. Thread-safe;
 * may be called from on_message. */
void rpc_call_pause_reads(rpc_call *call);
void rpc_call_resume_reads(rpc_call *call);
void rpc_call_on_writable(rpc_call *call, void (*fn)(rpc_call *call, void *arg), void *arg);
/* Messages currently queued (not counting the one in flight). */
int rpc_call_queued(const rpc_call *call);

/* Finish with a status after every queued message. OK ends a stream normally.
 * message may be NULL. Returns like rpc_call_reply. */
int rpc_call_finish(rpc_call *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same with binary status details (google.rpc.Status bytes) in
 * grpc-status-details-bin. */
int rpc_call_finish_details(rpc_call *call, grpc_status_code code, const char *message,
                            const void *details, size_t details_len);

/* ------------------------------------------------------------------ client */

typedef struct rpc_channel rpc_channel;

typedef struct rpc_channel_options {
  const char *const *endpoints; /* "host:port" or "unix:/path"; at least one */
  size_t nendpoints;
  const rpc_tls_config *tls;    /* NULL = insecure */
  int64_t max_message_bytes;    /* largest message sent (and received, unless below); default 4 MiB */
  int64_t max_receive_message_bytes; /* 0 = max_message_bytes; -1 = no limit (2 GiB, gRPC's own) */
  int retry_max_attempts;       /* idempotent calls, including the first; default 5 */
  int retry_initial_backoff_ms; /* default 50 */
  int retry_max_backoff_ms;     /* default 2000 */
  int cq_threads;               /* threads running async callbacks; default 1 */
} rpc_channel_options;

rpc_channel *rpc_channel_create(const rpc_channel_options *opts, keel_error *err);
/* Cancels calls still open, waits for their callbacks, frees. */
void rpc_channel_destroy(rpc_channel *ch);
/* The endpoint calls currently go to. */
const char *rpc_channel_current_endpoint(const rpc_channel *ch);

typedef struct rpc_call_options {
  int64_t timeout_ms;          /* 0 = no deadline */
  bool idempotent;             /* retry on UNAVAILABLE with backoff */
  bool wait_for_ready;         /* queue until connected instead of failing fast */
  const rpc_metadata *metadata;
  size_t nmetadata;
} rpc_call_options;

/* A call's outcome. message and trailing metadata are owned by the status;
 * release with rpc_status_clear. */
typedef struct rpc_status {
  grpc_status_code code;
  char *message;
  rpc_metadata *trailing;
  size_t ntrailing;
} rpc_status;

void rpc_status_clear(rpc_status *st);
/* The first trailing value for key, or NULL. */
const char *rpc_status_trailer(const rpc_status *st, const char *key, size_t *len);

/* Synchronous unary call. Returns 0 when the status is OK (and *response is set,
 * freed with protobuf_c_message_free_unpacked), otherwise -1 with *st filled.
 * st is always filled; opts may be NULL. */
int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
              const rpc_call_options *opts, rpc_status *st);

/* Asynchronous unary call. done runs once on a channel thread with the status and
 * the response (NULL unless OK), which done owns. Returns 0, or negative if the
 * call could not be started (done is not called then). */
typedef void (*rpc_unary_done)(void *arg, const rpc_status *st, ProtobufCMessage *response);
int rpc_unary_async(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_desc,
                    const rpc_call_options *opts, rpc_unary_done done, void *arg);

/* Client streams (server-, client- and bidi-streaming). */
typedef struct rpc_stream rpc_stream;

typedef struct rpc_stream_callbacks {
  /* Each response message (borrowed). */
  void (*on_message)(rpc_stream *s, const ProtobufCMessage *message, void *arg);
  /* Once, last: the final status. The stream stays valid until rpc_stream_release. */
  void (*on_close)(rpc_stream *s, const rpc_status *st, void *arg);
  /* Optional: after rpc_stream_write failed with -ENOBUFS, runs once the queue has
   * drained below half, so a producer can resume without polling. */
  void (*on_writable)(rpc_stream *s, void *arg);
} rpc_stream_callbacks;

/* Starts a stream. For RPC_SERVER_STREAMING, `request` is the one request and the
 * send side is closed at once; for client/bidi streams `request` must be NULL and
 * messages are written with rpc_stream_write. Returns NULL with err on failure. */
rpc_stream *rpc_stream_start(rpc_channel *ch, const char *method, rpc_kind kind,
                             const ProtobufCMessage *request,
                             const ProtobufCMessageDescriptor *response_desc,
                             const rpc_call_options *opts, const rpc_stream_callbacks *cb,
                             void *arg, keel_error *err);
/* Queues a message (bounded like server streams: 1024 messages or 4 MiB; -ENOBUFS
 * when full, then on_writable runs when there is room; -EPIPE after close or
 * cancel). Thread-safe. */
int rpc_stream_write(rpc_stream *s, const ProtobufCMessage *message);
/* Half-close after queued writes. */
int rpc_stream_close_send(rpc_stream *s);
/* Cancels; on_close still runs (with CANCELLED unless already closed). */
void rpc_stream_cancel(rpc_stream *s);
/* Read-side flow control, for a relay whose own receiver is slow: after
 * pause, no message is read from the network once the current on_message
 * returns (gRPC's flow control then holds the sender back); resume reads on.
 * A paused stream reports on_close only once resumed or canceled. May be
 * called from on_message. Thread-safe; callbacks never run inside these calls
 * (nor inside rpc_stream_cancel). */
void rpc_stream_pause_reads(rpc_stream *s);
void rpc_stream_resume_reads(rpc_stream *s);
/* Drops the caller's reference; after on_close it frees the stream. Releasing an
 * open stream cancels it first. */
void rpc_stream_release(rpc_stream *s);

#endif
