/* services/store/watch/watch_service.c — see watch_service.h. The gRPC side of
 * a watch stream; everything else is in watch_hub / watch_stream. */
#include "services/store/watch/watch_service.h"

#include <errno.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"

static int stream_send(void *ctx, const Etcdserverpb__WatchResponse *resp) {
  return rpc_call_send(ctx, &resp->base);
}

static int stream_send_parts(void *ctx, const uint8_t *prefix, size_t prefix_len,
                             const rpc_shared_range *parts, size_t nparts) {
  return rpc_call_send_prefixed(ctx, prefix, prefix_len, parts, nparts);
}

static int stream_queued(void *ctx) { return rpc_call_queued(ctx); }

static void stream_abort(void *ctx, const char *message) {
  rpc_call_finish(ctx, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s", message);
}

static const watch_stream_ops ops = {.send = stream_send,
                                     .send_parts = stream_send_parts,
                                     .queued = stream_queued,
                                     .abort = stream_abort};

/* The call's user data: released when the call is freed, so a message that
 * races the cancel callback still finds a (closed) stream. */
static void stream_free(void *p) { watch_stream_release(p); }

static void on_writable(rpc_call *call, void *arg) {
  (void)call;
  watch_stream_writable(arg);
}

static void on_cancel(rpc_call *call, void *arg) {
  (void)call;
  watch_stream_close(arg);
}

static void watch_on_start(rpc_call *call, void *ctx) {
  watch_hub *hub = ctx;
  watch_stream *st = watch_stream_open(hub, &ops, call);
  if (!st) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
    return;
  }
  rpc_call_set_user_data(call, st, stream_free);
  rpc_call_set_slow_policy(call, RPC_SLOW_REJECT);
  rpc_call_on_writable(call, on_writable, st);
  rpc_call_on_cancel(call, on_cancel, st);
}

static void watch_on_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)ctx;
  watch_stream *st = rpc_call_user_data(call);
  if (st) watch_stream_request(st, (const Etcdserverpb__WatchRequest *)m);
}

static void watch_on_half_close(rpc_call *call, void *ctx) {
  (void)call, (void)ctx; /* etcd keeps a half-closed watch stream open */
}

int watch_service_register(watch_hub *hub, rpc_server *srv, keel_error *err) {
  static const rpc_method_handler handlers[] = {
      {.name = "Watch",
       .kind = RPC_BIDI_STREAMING,
       .on_start = watch_on_start,
       .on_message = watch_on_message,
       .on_half_close = watch_on_half_close},
  };
  return rpc_server_add_service(srv, &etcdserverpb__watch__descriptor, handlers, 1, hub, err);
}
