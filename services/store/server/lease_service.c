/* services/store/server/lease_service.c — see lease_service.h. */
#include "services/store/server/lease_service.h"

#include <errno.h>
#include <stdlib.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"

/* A logged lease write finished: reply, or answer with etcd's error. */
static void write_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  rpc_call *call = arg;
  if (err) rpc_call_finish(call, err->code, "%s", err->message);
  else rpc_call_reply(call, resp);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  rpc_call_unref(call);
}

static void submit_failed(rpc_call *call, int rc) {
  if (rc == -EAGAIN)
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: too many requests");
  else if (rc == -EINVAL)
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: malformed request");
  else if (rc == -ENOMEM)
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
  else
    rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "etcdserver: server stopped");
  rpc_call_unref(call);
}

static void on_grant(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  rpc_call_ref(call);
  int rc = store_submit_lease_grant(ctx, (const Etcdserverpb__LeaseGrantRequest *)m, write_done, call);
  if (rc < 0) submit_failed(call, rc);
}

static void on_revoke(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  rpc_call_ref(call);
  int rc = store_submit_lease_revoke(ctx, (const Etcdserverpb__LeaseRevokeRequest *)m, write_done, call);
  if (rc < 0) submit_failed(call, rc);
}

static void on_keepalive_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  store *s = ctx;
  const Etcdserverpb__LeaseKeepAliveRequest *req = (const Etcdserverpb__LeaseKeepAliveRequest *)m;
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(s, &h);
  Etcdserverpb__LeaseKeepAliveResponse resp = ETCDSERVERPB__LEASE_KEEP_ALIVE_RESPONSE__INIT;
  resp.header = &h;
  resp.id = req->id;
  int64_t ttl = 0;
  /* etcd: an unknown lease is answered with TTL 0, which clients read as "gone". */
  if (store_lease_keepalive(s, req->id, &ttl) == 0) resp.ttl = ttl;
  rpc_call_send(call, &resp.base); /* a client that stops reading is closed by the runtime */
}

static void on_keepalive_half_close(rpc_call *call, void *ctx) {
  (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
}

static void on_time_to_live(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  Etcdserverpb__LeaseTimeToLiveResponse *resp = malloc(sizeof(*resp));
  if (!resp || store_lease_time_to_live(ctx, (const Etcdserverpb__LeaseTimeToLiveRequest *)m, resp) < 0) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
  } else {
    rpc_call_reply(call, &resp->base);
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
}

static void on_leases(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  Etcdserverpb__LeaseLeasesResponse *resp = malloc(sizeof(*resp));
  if (!resp || store_lease_leases(ctx, resp) < 0) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
  } else {
    rpc_call_reply(call, &resp->base);
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
}

int lease_service_register(store *s, rpc_server *srv, keel_error *err) {
  static const rpc_method_handler handlers[] = {
      {.name = "LeaseGrant", .kind = RPC_UNARY, .on_request = on_grant},
      {.name = "LeaseRevoke", .kind = RPC_UNARY, .on_request = on_revoke},
      {.name = "LeaseKeepAlive",
       .kind = RPC_BIDI_STREAMING,
       .on_message = on_keepalive_message,
       .on_half_close = on_keepalive_half_close},
      {.name = "LeaseTimeToLive", .kind = RPC_UNARY, .on_request = on_time_to_live},
      {.name = "LeaseLeases", .kind = RPC_UNARY, .on_request = on_leases},
  };
  return rpc_server_add_service(srv, &etcdserverpb__lease__descriptor, handlers,
                                sizeof(handlers) / sizeof(handlers[0]), s, err);
}
