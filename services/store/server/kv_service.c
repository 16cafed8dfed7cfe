/* services/store/server/kv_service.c — see kv_service.h.
 *
 * The handlers are thin: size limits and error mapping live here, every etcd
 * rule about keys, revisions and txns lives in the engine (kv.c), so the same
 * request gets the same answer whether it arrives over gRPC or from a test. */
#include "services/store/server/kv_service.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"

extern const unsigned char keel_etcd_descriptor_set[];
extern const unsigned long keel_etcd_descriptor_set_len;

/* etcd's exact texts (etcdserver/api/v3rpc/rpctypes). */
static const char ERR_TOO_LARGE[] = "etcdserver: request is too large";
static const char ERR_TOO_MANY_REQUESTS[] = "etcdserver: too many requests";
static const char ERR_STOPPED[] = "etcdserver: server stopped";

struct kv_service {
  store *store;
  int64_t max_request_bytes;
  char *name;
  char **peer_urls;
  size_t npeer_urls;
  char **client_urls;
  size_t nclient_urls;
};

int64_t kv_service_max_message_bytes(int64_t max_request_bytes) {
  if (max_request_bytes <= 0) max_request_bytes = KV_SERVICE_DEFAULT_MAX_REQUEST_BYTES;
  return max_request_bytes + KV_SERVICE_GRPC_OVERHEAD_BYTES;
}

/* ------------------------------------------------------------------ writes */

/* The engine's done callback (WAL thread): answer, then drop the handler's ref. */
static void write_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  rpc_call *call = arg;
  if (err) {
    rpc_call_finish(call, err->code, "%s", err->message);
  } else if (!resp) {
    rpc_call_finish(call, GRPC_STATUS_INTERNAL, "etcdserver: no response from the store");
  } else {
    rpc_call_reply(call, resp); /* -ECANCELED after a client cancel: nothing to do */
  }
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  rpc_call_unref(call);
}

static void finish_submit_error(rpc_call *call, int rc) {
  switch (rc) {
    case -EAGAIN: rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, ERR_TOO_MANY_REQUESTS); break;
    /* protobuf-c decoded it but cannot re-encode it: malformed (found by fuzzing). */
    case -EINVAL: rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: malformed request"); break;
    case -ESHUTDOWN: rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, ERR_STOPPED); break;
    case -ENOMEM: rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory"); break;
    default:
      rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "etcdserver: cannot submit the request: %s",
                      strerror(-rc));
      break;
  }
}

/* etcd limits what goes through raft (every write, not reads) to
 * --max-request-bytes. */
static bool too_large(const kv_service *svc, rpc_call *call, const ProtobufCMessage *req) {
  if ((int64_t)protobuf_c_message_get_packed_size(req) <= svc->max_request_bytes) return false;
  rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, ERR_TOO_LARGE);
  return true;
}

typedef int (*submit_fn)(store *s, const ProtobufCMessage *req, store_done_fn done, void *arg);

static void submit_write(kv_service *svc, rpc_call *call, const ProtobufCMessage *req, submit_fn fn) {
  rpc_call_ref(call); /* write_done's */
  int rc = fn(svc->store, req, write_done, call);
  if (rc < 0) {
    rpc_call_unref(call);
    finish_submit_error(call, rc);
  }
}

static int submit_put(store *s, const ProtobufCMessage *req, store_done_fn done, void *arg) {
  return store_submit_put(s, (const Etcdserverpb__PutRequest *)req, done, arg);
}
static int submit_delete_range(store *s, const ProtobufCMessage *req, store_done_fn done, void *arg) {
  return store_submit_delete_range(s, (const Etcdserverpb__DeleteRangeRequest *)req, done, arg);
}
static int submit_txn(store *s, const ProtobufCMessage *req, store_done_fn done, void *arg) {
  return store_submit_txn(s, (const Etcdserverpb__TxnRequest *)req, done, arg);
}
static int submit_compact(store *s, const ProtobufCMessage *req, store_done_fn done, void *arg) {
  return store_submit_compact(s, (const Etcdserverpb__CompactionRequest *)req, done, arg);
}

static void put_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  if (!too_large(ctx, call, m)) submit_write(ctx, call, m, submit_put);
}

static void delete_range_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  if (!too_large(ctx, call, m)) submit_write(ctx, call, m, submit_delete_range);
}

/* etcd's isTxnReadonly: every op of both branches is a range (a nested txn is
 * not read-only). Read-only txns skip raft there, and so the size limit. */
static bool txn_read_only(const Etcdserverpb__TxnRequest *t) {
  for (size_t i = 0; i < t->n_success; i++)
    if (t->success[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) return false;
  for (size_t i = 0; i < t->n_failure; i++)
    if (t->failure[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE) return false;
  return true;
}

static void txn_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  if (!txn_read_only((const Etcdserverpb__TxnRequest *)m) && too_large(ctx, call, m)) return;
  submit_write(ctx, call, m, submit_txn);
}

static void compact_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  if (!too_large(ctx, call, m)) submit_write(ctx, call, m, submit_compact);
}

/* ------------------------------------------------------------------ reads */

static Etcdserverpb__ResponseHeader *new_header(store *s) {
  Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));
  if (!h) return NULL;
  etcdserverpb__response_header__init(h);
  store_fill_header(s, h);
  return h;
}

static void range_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  kv_service *svc = ctx;
  Etcdserverpb__RangeResponse *resp = malloc(sizeof(*resp));
  if (!resp) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
    return;
  }
  etcdserverpb__range_response__init(resp);
  kv_error err = {0};
  if (store_range(svc->store, (const Etcdserverpb__RangeRequest *)m, resp, &err) < 0) {
    rpc_call_finish(call, err.code, "%s", err.message ? err.message : "etcdserver: range failed");
  } else {
    /* store_range fills the header with the revision it read at. */
    if (!resp->header) resp->header = new_header(svc->store);
    if (!resp->header) rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
    else rpc_call_reply(call, &resp->base);
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
}

/* ------------------------------------------------------------------ Maintenance, Cluster */

static void status_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  kv_service *svc = ctx;
  store_status st;
  store_get_status(svc->store, &st);
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(svc->store, &h);
  Etcdserverpb__StatusResponse resp = ETCDSERVERPB__STATUS_RESPONSE__INIT;
  resp.header = &h;
  resp.version = (char *)KV_SERVICE_ETCD_VERSION;
  /* etcd's dbSize is its bbolt file; ours is the kv state held in memory. */
  resp.dbsize = (int64_t)st.memory_bytes;
  resp.dbsizeinuse = (int64_t)st.memory_bytes;
  resp.leader = st.member_id; /* a single member always leads */
  resp.raftindex = st.raft_index;
  resp.raftappliedindex = st.raft_index; /* applied once durable: the same */
  resp.raftterm = st.raft_term;
  rpc_call_reply(call, &resp.base);
}

static void member_list_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  kv_service *svc = ctx;
  store_status st;
  store_get_status(svc->store, &st);
  Etcdserverpb__ResponseHeader h = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(svc->store, &h);
  h.revision = 0; /* etcd's cluster server leaves it out */
  Etcdserverpb__Member member = ETCDSERVERPB__MEMBER__INIT;
  member.id = st.member_id;
  member.name = svc->name;
  member.peerurls = svc->peer_urls;
  member.n_peerurls = svc->npeer_urls;
  member.clienturls = svc->client_urls;
  member.n_clienturls = svc->nclient_urls;
  Etcdserverpb__Member *members[] = {&member};
  Etcdserverpb__MemberListResponse resp = ETCDSERVERPB__MEMBER_LIST_RESPONSE__INIT;
  resp.header = &h;
  resp.members = members;
  resp.n_members = 1;
  rpc_call_reply(call, &resp.base);
}

/* ------------------------------------------------------------------ setup */

static const rpc_method_handler kv_handlers[] = {
    {.name = "Range", .kind = RPC_UNARY, .on_request = range_on_request},
    {.name = "Put", .kind = RPC_UNARY, .on_request = put_on_request},
    {.name = "DeleteRange", .kind = RPC_UNARY, .on_request = delete_range_on_request},
    {.name = "Txn", .kind = RPC_UNARY, .on_request = txn_on_request},
    {.name = "Compact", .kind = RPC_UNARY, .on_request = compact_on_request},
};

static const rpc_method_handler maintenance_handlers[] = {
    {.name = "Status", .kind = RPC_UNARY, .on_request = status_on_request},
};

static const rpc_method_handler cluster_handlers[] = {
    {.name = "MemberList", .kind = RPC_UNARY, .on_request = member_list_on_request},
};

static char **copy_strings(const char *const *in, size_t n) {
  char **out = calloc(n ? n : 1, sizeof(*out));
  if (!out) return NULL;
  for (size_t i = 0; i < n; i++) {
    out[i] = strdup(in[i]);
    if (!out[i]) {
      for (size_t j = 0; j < i; j++) free(out[j]);
      free(out);
      return NULL;
    }
  }
  return out;
}

static void free_strings(char **s, size_t n) {
  if (!s) return;
  for (size_t i = 0; i < n; i++) free(s[i]);
  free(s);
}

kv_service *kv_service_create(store *s, const kv_service_options *opts, keel_error *err) {
  kv_service *svc = calloc(1, sizeof(*svc));
  if (!svc) {
    keel_error_set(err, ENOMEM, "kv service: out of memory");
    return NULL;
  }
  svc->store = s;
  svc->max_request_bytes =
      opts->max_request_bytes > 0 ? opts->max_request_bytes : KV_SERVICE_DEFAULT_MAX_REQUEST_BYTES;
  svc->name = strdup(opts->name ? opts->name : "default");
  svc->peer_urls = copy_strings(opts->peer_urls, opts->npeer_urls);
  svc->npeer_urls = opts->npeer_urls;
  svc->client_urls = copy_strings(opts->client_urls, opts->nclient_urls);
  svc->nclient_urls = opts->nclient_urls;
  if (!svc->name || !svc->peer_urls || !svc->client_urls) {
    kv_service_destroy(svc);
    keel_error_set(err, ENOMEM, "kv service: out of memory");
    return NULL;
  }
  return svc;
}

void kv_service_destroy(kv_service *svc) {
  if (!svc) return;
  free(svc->name);
  free_strings(svc->peer_urls, svc->npeer_urls);
  free_strings(svc->client_urls, svc->nclient_urls);
  free(svc);
}

int kv_service_register(kv_service *svc, rpc_server *srv, keel_error *err) {
  if (rpc_server_add_service(srv, &etcdserverpb__kv__descriptor, kv_handlers,
                             sizeof(kv_handlers) / sizeof(kv_handlers[0]), svc, err) < 0 ||
      rpc_server_add_service(srv, &etcdserverpb__maintenance__descriptor, maintenance_handlers,
                             sizeof(maintenance_handlers) / sizeof(maintenance_handlers[0]), svc,
                             err) < 0 ||
      rpc_server_add_service(srv, &etcdserverpb__cluster__descriptor, cluster_handlers,
                             sizeof(cluster_handlers) / sizeof(cluster_handlers[0]), svc, err) < 0)
    return keel_error_wrap(err, "register etcd services");
  /* Lease: server/lease_service.c; Watch: services/store/watch. */
  if (rpc_server_add_descriptors(srv, keel_etcd_descriptor_set, keel_etcd_descriptor_set_len, err) < 0)
    return keel_error_wrap(err, "register etcd descriptors");
  return 0;
}
