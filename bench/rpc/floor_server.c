/* bench/rpc/floor_server.c — the floor to beat: the simplest single-threaded
 * gRPC C-core server for keel.echo.v1.Echo/Echo (unary) and /Expand (server
 * streaming).
 *
 * One completion queue, one thread, registered methods whose request arrives
 * with the accept (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER), messages decoded
 * and encoded with protobuf-c like Keel's runtime does, one SEND_MESSAGE in
 * flight per stream. No metrics, no health, no reflection, no flow-control
 * queue: whatever Keel's runtime costs above this is its overhead.
 *
 * Flags follow keel-echo so bench/rpc/run.sh treats both alike:
 *   --listen=ADDR       default 127.0.0.1:0
 *   --ready-file=PATH   written atomically once serving: "grpc=127.0.0.1:PORT"
 *   --threads=N, --http-listen=X  accepted and ignored (always one thread, no HTTP)
 *   --buffer-hint       Expand sends with GRPC_WRITE_BUFFER_HINT after the first
 *                       message, the write coalescing Keel's runtime does for a
 *                       queued stream: the floor for that technique. Off by
 *                       default: the plain floor is one write per message.
 * SIGTERM/SIGINT: stop accepting, cancel open calls, drain, exit 0. */
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keel/echo/v1/echo.pb-c.h"

/* Outstanding accepts per method: enough that 64 in-flight unary calls never
 * wait for a re-arm. */
#define UNARY_ACCEPTS 64
#define EXPAND_ACCEPTS 8

typedef enum {
  TAG_ACCEPT,
  TAG_UNARY_DONE,
  TAG_STREAM_SEND,
  TAG_STREAM_CLOSED,
  TAG_SHUTDOWN
} tag_kind;

/* Every tag handed to the queue starts with its kind. */
typedef struct tag {
  tag_kind kind;
} tag;

typedef struct server_ctx server_ctx;

/* One pending grpc_server_request_registered_call; reused after each accept. */
typedef struct accept_slot {
  tag t;
  server_ctx *srv;
  bool expand;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *payload;
} accept_slot;

/* A unary call between its one batch and its completion. */
typedef struct unary_call {
  tag t;
  grpc_call *call;
  grpc_byte_buffer *response;
  int cancelled;
} unary_call;

/* A server stream: one send in flight, then the status; freed when both the
 * send chain and RECV_CLOSE_ON_SERVER have completed. */
typedef struct stream_call {
  tag send_tag;
  tag close_tag;
  grpc_call *call;
  grpc_byte_buffer *inflight;
  uint64_t sent, count;
  ProtobufCBinaryData payload; /* owned copy of the request's payload */
  char *message;               /* owned copy of the request's message */
  bool status_sent;
  int cancelled;
  int refs; /* send chain + close batch */
} stream_call;

struct server_ctx {
  grpc_server *server;
  grpc_completion_queue *cq;
  void *echo_method, *expand_method;
  accept_slot slots[UNARY_ACCEPTS + EXPAND_ACCEPTS];
  bool shutting_down;
  /* The queue is shut down: no batch may start any more (the core aborts on a
   * batch for a shut-down queue), so late completions only release. */
  bool cq_closed;
};

static volatile sig_atomic_t g_stop;
static bool g_buffer_hint;
static void on_signal(int sig) {
  (void)sig;
  g_stop = 1;
}

static void die(const char *what) {
  fprintf(stderr, "floor_server: %s\n", what);
  exit(1);
}

static grpc_byte_buffer *encode(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* Unpacks a whole byte buffer; NULL on a parse error. */
static ProtobufCMessage *decode(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d) {
  if (bb == NULL) return NULL;
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  return m;
}

static void arm(accept_slot *a) {
  server_ctx *srv = a->srv;
  a->call = NULL;
  a->payload = NULL;
  grpc_metadata_array_init(&a->md);
  grpc_call_error e = grpc_server_request_registered_call(
      srv->server, a->expand ? srv->expand_method : srv->echo_method, &a->call, &a->deadline,
      &a->md, &a->payload, srv->cq, srv->cq, a);
  if (e != GRPC_CALL_OK) die("request_registered_call failed");
}

/* Sends status only (bad request). */
static void fail_unary(grpc_call *call, grpc_status_code code, const char *msg) {
  unary_call *u = calloc(1, sizeof *u);
  u->t.kind = TAG_UNARY_DONE;
  u->call = call;
  grpc_slice details = grpc_slice_from_static_string(msg);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[1].data.send_status_from_server.status = code;
  ops[1].data.send_status_from_server.status_details = &details;
  ops[2].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[2].data.recv_close_on_server.cancelled = &u->cancelled;
  if (grpc_call_start_batch(call, ops, 3, u, NULL) != GRPC_CALL_OK) die("start_batch (fail)");
}

static void start_unary(grpc_call *call, grpc_byte_buffer *req_bb) {
  Keel__Echo__V1__EchoRequest *req =
      (Keel__Echo__V1__EchoRequest *)decode(req_bb, &keel__echo__v1__echo_request__descriptor);
  if (req == NULL) {
    fail_unary(call, GRPC_STATUS_INVALID_ARGUMENT, "cannot parse EchoRequest");
    return;
  }
  Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
  resp.message = req->message;
  resp.payload = req->payload;
  unary_call *u = calloc(1, sizeof *u);
  u->t.kind = TAG_UNARY_DONE;
  u->call = call;
  u->response = encode(&resp.base);
  protobuf_c_message_free_unpacked(&req->base, NULL);

  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = u->response;
  ops[2].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[2].data.send_status_from_server.status = GRPC_STATUS_OK;
  ops[3].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[3].data.recv_close_on_server.cancelled = &u->cancelled;
  if (grpc_call_start_batch(call, ops, 4, u, NULL) != GRPC_CALL_OK) die("start_batch (unary)");
}

static void stream_unref(stream_call *s) {
  if (--s->refs > 0) return;
  grpc_call_unref(s->call);
  free(s->payload.data);
  free(s->message);
  free(s);
}

/* The next step of a stream's send chain: one more message, or the status. */
static void stream_next(stream_call *s, bool first) {
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (first) ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  if (s->sent < s->count) {
    Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
    resp.message = s->message;
    resp.payload = s->payload;
    resp.sequence = s->sent++;
    s->inflight = encode(&resp.base);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    /* --buffer-hint: more messages follow, so let the transport coalesce
     * writes (it flushes on its own as its buffer fills; the status flushes the
     * rest). Never on the first message: in 1.51, hinting the message that
     * travels with SEND_INITIAL_METADATA stalled every stream here (0 messages
     * received). */
    if (g_buffer_hint && !first && s->sent < s->count) ops[n].flags = GRPC_WRITE_BUFFER_HINT;
    ops[n++].data.send_message.send_message = s->inflight;
  } else {
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n++].data.send_status_from_server.status = GRPC_STATUS_OK;
    s->status_sent = true;
  }
  if (grpc_call_start_batch(s->call, ops, n, &s->send_tag, NULL) != GRPC_CALL_OK)
    die("start_batch (stream)");
}

static void start_expand(grpc_call *call, grpc_byte_buffer *req_bb) {
  Keel__Echo__V1__ExpandRequest *req =
      (Keel__Echo__V1__ExpandRequest *)decode(req_bb, &keel__echo__v1__expand_request__descriptor);
  if (req == NULL) {
    fail_unary(call, GRPC_STATUS_INVALID_ARGUMENT, "cannot parse ExpandRequest");
    return;
  }
  stream_call *s = calloc(1, sizeof *s);
  s->send_tag.kind = TAG_STREAM_SEND;
  s->close_tag.kind = TAG_STREAM_CLOSED;
  s->call = call;
  s->count = req->count;
  s->message = strdup(req->message ? req->message : "");
  s->payload.len = req->payload.len;
  s->payload.data = malloc(req->payload.len ? req->payload.len : 1);
  if (req->payload.len) memcpy(s->payload.data, req->payload.data, req->payload.len);
  protobuf_c_message_free_unpacked(&req->base, NULL);
  s->refs = 2;

  grpc_op close_op;
  memset(&close_op, 0, sizeof close_op);
  close_op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  close_op.data.recv_close_on_server.cancelled = &s->cancelled;
  if (grpc_call_start_batch(call, &close_op, 1, &s->close_tag, NULL) != GRPC_CALL_OK)
    die("start_batch (close)");
  stream_next(s, true);
}

#define CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static void on_event(server_ctx *srv, grpc_event ev) {
  tag *t = ev.tag;
  switch (t->kind) {
    case TAG_ACCEPT: {
      accept_slot *a = (accept_slot *)t;
      if (!ev.success) { /* server shutting down */
        grpc_metadata_array_destroy(&a->md);
        return;
      }
      grpc_call *call = a->call;
      grpc_byte_buffer *payload = a->payload;
      grpc_metadata_array_destroy(&a->md);
      if (srv->cq_closed) {
        grpc_call_cancel(call, NULL);
        grpc_call_unref(call);
        if (payload) grpc_byte_buffer_destroy(payload);
        return;
      }
      if (!srv->shutting_down) arm(a);
      if (a->expand)
        start_expand(call, payload);
      else
        start_unary(call, payload);
      if (payload) grpc_byte_buffer_destroy(payload);
      return;
    }
    case TAG_UNARY_DONE: {
      unary_call *u = (unary_call *)t;
      if (u->response) grpc_byte_buffer_destroy(u->response);
      grpc_call_unref(u->call);
      free(u);
      return;
    }
    case TAG_STREAM_SEND: {
      stream_call *s = CONTAINER_OF(t, stream_call, send_tag);
      if (s->inflight) {
        grpc_byte_buffer_destroy(s->inflight);
        s->inflight = NULL;
      }
      if (ev.success && !s->status_sent && !srv->cq_closed)
        stream_next(s, false);
      else
        stream_unref(s); /* status sent, or the call is gone */
      return;
    }
    case TAG_STREAM_CLOSED:
      stream_unref(CONTAINER_OF(t, stream_call, close_tag));
      return;
    case TAG_SHUTDOWN:
      return;
  }
}

static void write_ready_file(const char *path, int port) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
  FILE *f = fopen(tmp, "w");
  if (f == NULL) die("cannot write ready file");
  fprintf(f, "grpc=127.0.0.1:%d\n", port);
  if (fclose(f) != 0 || rename(tmp, path) != 0) die("cannot write ready file");
}

static const char *flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) == 0 && arg[n] == '=') return arg + n + 1;
  return NULL;
}

int main(int argc, char **argv) {
  const char *listen = "127.0.0.1:0", *ready = NULL, *v;
  for (int i = 1; i < argc; i++) {
    if ((v = flag_value(argv[i], "--listen")))
      listen = v;
    else if ((v = flag_value(argv[i], "--ready-file")))
      ready = v;
    else if (strcmp(argv[i], "--buffer-hint") == 0)
      g_buffer_hint = true;
    else if (flag_value(argv[i], "--threads") || flag_value(argv[i], "--http-listen"))
      continue;
    else {
      fprintf(stderr, "usage: floor_server [--listen=ADDR] [--ready-file=PATH] [--buffer-hint]\n");
      return 2;
    }
  }
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  grpc_init();
  static server_ctx srv;
  srv.cq = grpc_completion_queue_create_for_next(NULL);
  srv.server = grpc_server_create(NULL, NULL);
  srv.echo_method = grpc_server_register_method(srv.server, "/keel.echo.v1.Echo/Echo", NULL,
                                                GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  srv.expand_method = grpc_server_register_method(srv.server, "/keel.echo.v1.Echo/Expand", NULL,
                                                  GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  grpc_server_register_completion_queue(srv.server, srv.cq, NULL);
  grpc_server_credentials *creds = grpc_insecure_server_credentials_create();
  int port = grpc_server_add_http2_port(srv.server, listen, creds);
  grpc_server_credentials_release(creds);
  if (port <= 0) die("cannot listen");
  grpc_server_start(srv.server);
  for (size_t i = 0; i < sizeof srv.slots / sizeof srv.slots[0]; i++) {
    srv.slots[i].t.kind = TAG_ACCEPT;
    srv.slots[i].srv = &srv;
    srv.slots[i].expand = i >= UNARY_ACCEPTS;
    arm(&srv.slots[i]);
  }
  if (ready) write_ready_file(ready, port);

  while (!g_stop) {
    grpc_event ev = grpc_completion_queue_next(
        srv.cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(200, GPR_TIMESPAN)),
        NULL);
    if (ev.type == GRPC_OP_COMPLETE) on_event(&srv, ev);
  }

  srv.shutting_down = true;
  tag shutdown_tag = {TAG_SHUTDOWN};
  grpc_server_shutdown_and_notify(srv.server, srv.cq, &shutdown_tag);
  grpc_server_cancel_all_calls(srv.server);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(srv.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) die("queue ended before shutdown");
    on_event(&srv, ev);
    if (ev.tag == &shutdown_tag) break;
  }
  grpc_server_destroy(srv.server);
  srv.cq_closed = true;
  grpc_completion_queue_shutdown(srv.cq);
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(srv.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type == GRPC_OP_COMPLETE) on_event(&srv, ev);
  }
  grpc_completion_queue_destroy(srv.cq);
  grpc_shutdown();
  return 0;
}
