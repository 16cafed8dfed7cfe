/* common/client/client.c — see client.h.
 *
 * Every verb is one gRPC method "/keel.api.v1.<Service>/<Verb>" whose input
 * and output descriptors come from the kind's service descriptor, so the
 * client knows nothing kind-specific: adding a kind to common/kinds adds it
 * here. Per-call metadata (the token, dry run) is assembled on the stack. */
#define _GNU_SOURCE
#include "common/client/client.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/config.h"

struct client {
  rpc_channel *ch;
  char *auth; /* "Bearer <token>", or NULL */
  int64_t timeout_ms;
};

static const char *const verb_methods[] = {
    [CLIENT_CREATE] = "Create",     [CLIENT_GET] = "Get",
    [CLIENT_LIST] = "List",         [CLIENT_UPDATE] = "Update",
    [CLIENT_UPDATE_STATUS] = "UpdateStatus", [CLIENT_DELETE] = "Delete",
    [CLIENT_BIND] = "Bind",         [CLIENT_GET_SCALE] = "GetScale",
    [CLIENT_UPDATE_SCALE] = "UpdateScale",
};

const char *client_verb_method(client_verb v) {
  return (unsigned)v < sizeof(verb_methods) / sizeof(verb_methods[0]) ? verb_methods[v] : "?";
}

static bool verb_idempotent(client_verb v) {
  return v == CLIENT_GET || v == CLIENT_LIST || v == CLIENT_GET_SCALE;
}

client *client_new(const client_options *opts, keel_error *err) {
  if (!opts || opts->nendpoints == 0) {
    keel_error_set(err, EINVAL, "client: no endpoints");
    return NULL;
  }
  client *c = calloc(1, sizeof(*c));
  if (!c) {
    keel_error_set(err, ENOMEM, "client: out of memory");
    return NULL;
  }
  c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
  if (opts->token && *opts->token) {
    if (asprintf(&c->auth, "Bearer %s", opts->token) < 0) {
      free(c);
      keel_error_set(err, ENOMEM, "client: out of memory");
      return NULL;
    }
  }
  rpc_channel_options co = {
      .endpoints = opts->endpoints,
      .nendpoints = opts->nendpoints,
      .tls = opts->tls,
      .max_message_bytes = opts->max_message_bytes > 0 ? opts->max_message_bytes : 256 << 20,
      .cq_threads = opts->cq_threads > 0 ? opts->cq_threads : 2,
  };
  c->ch = rpc_channel_create(&co, err);
  if (!c->ch) {
    keel_error_wrap(err, "client");
    free(c->auth);
    free(c);
    return NULL;
  }
  return c;
}

client *client_new_from_config(const client_config *cfg, keel_error *err) {
  rpc_tls_config tls;
  client_options o;
  client_config_options(cfg, &o, &tls);
  return client_new(&o, err);
}

void client_free(client *c) {
  if (!c) return;
  rpc_channel_destroy(c->ch);
  free(c->auth);
  free(c);
}

rpc_channel *client_channel(client *c) { return c->ch; }

/* ---------------------------------------------------------------- calls */

static int status_set(client_status *st, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int status_set(client_status *st, grpc_status_code code, const char *fmt, ...) {
  st->code = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(st->message, sizeof(st->message), fmt, ap);
  va_end(ap);
  return -1;
}

static void status_from_rpc(client_status *st, const rpc_status *rs) {
  st->code = rs->code;
  snprintf(st->message, sizeof(st->message), "%s", rs->message ? rs->message : "");
}

/* Metadata of one call; md must hold 2 entries. */
static size_t call_metadata(const client *c, const client_call_options *o, rpc_metadata *md) {
  size_t n = 0;
  if (c->auth) md[n++] = (rpc_metadata){.key = "authorization", .value = c->auth, .value_len = strlen(c->auth)};
  if (o && o->dry_run) md[n++] = (rpc_metadata){.key = "x-keel-dry-run", .value = "All", .value_len = 3};
  return n;
}

/* The method of verb for k, checked against the request; NULL with st filled. */
static const ProtobufCMethodDescriptor *resolve(const api_kind *k, client_verb verb, const ProtobufCMessage *req,
                                                char *path, size_t pathlen, client_status *st) {
  if (!k || !req) {
    status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "client: %s needs a kind and a request", client_verb_method(verb));
    return NULL;
  }
  const char *name = client_verb_method(verb);
  const ProtobufCMethodDescriptor *m = protobuf_c_service_descriptor_get_method_by_name(k->service, name);
  if (!m) {
    status_set(st, GRPC_STATUS_UNIMPLEMENTED, "client: %s have no %s", k->resource, name);
    return NULL;
  }
  if (req->descriptor != m->input) {
    status_set(st, GRPC_STATUS_INVALID_ARGUMENT, "client: %s %s takes %s, not %s", k->resource, name,
               m->input->name, req->descriptor->name);
    return NULL;
  }
  snprintf(path, pathlen, "/%s/%s", k->service->name, name);
  return m;
}

int client_call(client *c, const api_kind *k, client_verb verb, const ProtobufCMessage *req,
                ProtobufCMessage **resp, const client_call_options *opts, client_status *st) {
  *resp = NULL;
  memset(st, 0, sizeof(*st));
  char path[256];
  const ProtobufCMethodDescriptor *m = resolve(k, verb, req, path, sizeof(path), st);
  if (!m) return -1;
  rpc_metadata md[2];
  rpc_call_options co = {
      .timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : c->timeout_ms,
      .idempotent = verb_idempotent(verb),
      .metadata = md,
      .nmetadata = call_metadata(c, opts, md),
  };
  rpc_status rs;
  int rc = rpc_unary(c->ch, path, req, m->output, resp, &co, &rs);
  status_from_rpc(st, &rs);
  rpc_status_clear(&rs);
  return rc == 0 ? 0 : -1;
}

typedef struct async_ctx {
  client_done_fn done;
  void *arg;
} async_ctx;

static void async_done(void *arg, const rpc_status *rs, ProtobufCMessage *resp) {
  async_ctx *a = arg;
  client_status st;
  status_from_rpc(&st, rs);
  a->done(a->arg, &st, resp);
  free(a);
}

int client_call_async(client *c, const api_kind *k, client_verb verb, const ProtobufCMessage *req,
                      const client_call_options *opts, client_done_fn done, void *arg, client_status *st) {
  memset(st, 0, sizeof(*st));
  char path[256];
  const ProtobufCMethodDescriptor *m = resolve(k, verb, req, path, sizeof(path), st);
  if (!m) return -1;
  async_ctx *a = malloc(sizeof(*a));
  if (!a) return status_set(st, GRPC_STATUS_RESOURCE_EXHAUSTED, "client: out of memory");
  a->done = done;
  a->arg = arg;
  rpc_metadata md[2];
  rpc_call_options co = {
      .timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : c->timeout_ms,
      .idempotent = verb_idempotent(verb),
      .metadata = md,
      .nmetadata = call_metadata(c, opts, md),
  };
  int rc = rpc_unary_async(c->ch, path, req, m->output, &co, async_done, a);
  if (rc < 0) {
    free(a);
    return status_set(st, rc == -ESHUTDOWN ? GRPC_STATUS_CANCELLED : GRPC_STATUS_INTERNAL,
                      "client: %s %s: cannot start the call: %s", k->resource, client_verb_method(verb),
                      strerror(-rc));
  }
  return 0;
}

/* ---------------------------------------------------------------- shorthands */

int client_create(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                  const client_call_options *opts, client_status *st) {
  return client_call(c, k, CLIENT_CREATE, obj, out, opts, st);
}

int client_get(client *c, const api_kind *k, const char *ns, const char *name, const char *rv,
               ProtobufCMessage **out, const client_call_options *opts, client_status *st) {
  Keel__Api__V1__GetRequest req = KEEL__API__V1__GET_REQUEST__INIT;
  req.namespace_ = (char *)(k && k->namespaced && ns ? ns : "");
  req.name = (char *)(name ? name : "");
  req.resource_version = (char *)(rv ? rv : "");
  return client_call(c, k, CLIENT_GET, &req.base, out, opts, st);
}

int client_list(client *c, const api_kind *k, const Keel__Api__V1__ListRequest *req, ProtobufCMessage **list,
                const client_call_options *opts, client_status *st) {
  Keel__Api__V1__ListRequest all = KEEL__API__V1__LIST_REQUEST__INIT;
  return client_call(c, k, CLIENT_LIST, req ? &req->base : &all.base, list, opts, st);
}

int client_update(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                  const client_call_options *opts, client_status *st) {
  return client_call(c, k, CLIENT_UPDATE, obj, out, opts, st);
}

int client_update_status(client *c, const api_kind *k, const ProtobufCMessage *obj, ProtobufCMessage **out,
                         const client_call_options *opts, client_status *st) {
  return client_call(c, k, CLIENT_UPDATE_STATUS, obj, out, opts, st);
}

int client_delete(client *c, const api_kind *k, const char *ns, const char *name, int64_t grace_s,
                  ProtobufCMessage **out, const client_call_options *opts, client_status *st) {
  Keel__Api__V1__DeleteRequest req = KEEL__API__V1__DELETE_REQUEST__INIT;
  Google__Protobuf__Int64Value grace = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
  req.namespace_ = (char *)(k && k->namespaced && ns ? ns : "");
  req.name = (char *)(name ? name : "");
  if (grace_s >= 0) {
    grace.value = grace_s;
    req.grace_period_seconds = &grace;
  }
  ProtobufCMessage *resp = NULL;
  int rc = client_call(c, k, CLIENT_DELETE, &req.base, &resp, opts, st);
  if (out) *out = resp;
  else if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

int client_bind(client *c, const char *ns, const char *pod, const char *node, Keel__Api__V1__Pod **out,
                const client_call_options *opts, client_status *st) {
  Keel__Api__V1__Binding b = KEEL__API__V1__BINDING__INIT;
  Keel__Api__V1__ObjectMeta meta = KEEL__API__V1__OBJECT_META__INIT;
  Keel__Api__V1__ObjectReference target = KEEL__API__V1__OBJECT_REFERENCE__INIT;
  meta.namespace_ = (char *)(ns ? ns : "");
  meta.name = (char *)(pod ? pod : "");
  target.kind = "Node";
  target.name = (char *)(node ? node : "");
  b.metadata = &meta;
  b.target = &target;
  ProtobufCMessage *resp = NULL;
  int rc = client_call(c, api_kind_by_name("Pod"), CLIENT_BIND, &b.base, &resp, opts, st);
  if (out) *out = (Keel__Api__V1__Pod *)resp;
  else if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

int client_get_scale(client *c, const api_kind *k, const char *ns, const char *name, Keel__Api__V1__Scale **out,
                     const client_call_options *opts, client_status *st) {
  Keel__Api__V1__GetRequest req = KEEL__API__V1__GET_REQUEST__INIT;
  req.namespace_ = (char *)(ns ? ns : "");
  req.name = (char *)(name ? name : "");
  return client_call(c, k, CLIENT_GET_SCALE, &req.base, (ProtobufCMessage **)out, opts, st);
}

int client_update_scale(client *c, const api_kind *k, const Keel__Api__V1__Scale *scale,
                        Keel__Api__V1__Scale **out, const client_call_options *opts, client_status *st) {
  return client_call(c, k, CLIENT_UPDATE_SCALE, scale ? &scale->base : NULL, (ProtobufCMessage **)out, opts, st);
}

/* ---------------------------------------------------------------- watch */

struct client_watch {
  rpc_stream *stream;
  client_watch_handlers h;
  void *arg;
  const api_kind *kind;
  const ProtobufCFieldDescriptor *f_type, *f_object;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool closed;
};

static void watch_on_message(rpc_stream *s, const ProtobufCMessage *msg, void *arg) {
  (void)s;
  client_watch *w = arg;
  const char *type = *(char *const *)((const char *)msg + w->f_type->offset);
  const ProtobufCMessage *obj = *(ProtobufCMessage *const *)((const char *)msg + w->f_object->offset);
  if (!obj || !type) return;
  if (w->h.on_event) w->h.on_event(type, obj, client_object_rv(w->kind, obj), w->arg);
}

static void watch_on_close(rpc_stream *s, const rpc_status *rs, void *arg) {
  (void)s;
  client_watch *w = arg;
  client_status st;
  status_from_rpc(&st, rs);
  if (w->h.on_close) w->h.on_close(&st, w->arg);
  pthread_mutex_lock(&w->mu);
  w->closed = true;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

client_watch *client_watch_start(client *c, const api_kind *k, const Keel__Api__V1__WatchRequest *req,
                                 const client_watch_handlers *h, void *arg, keel_error *err) {
  if (!k || !req || !h) {
    keel_error_set(err, EINVAL, "client: watch needs a kind, a request and handlers");
    return NULL;
  }
  client_watch *w = calloc(1, sizeof(*w));
  if (!w) {
    keel_error_set(err, ENOMEM, "client: out of memory");
    return NULL;
  }
  w->h = *h;
  w->arg = arg;
  w->kind = k;
  w->f_type = protobuf_c_message_descriptor_get_field_by_name(k->watch_event, "type");
  w->f_object = protobuf_c_message_descriptor_get_field_by_name(k->watch_event, "object");
  if (!w->f_type || !w->f_object) {
    free(w);
    keel_error_set(err, EINVAL, "client: %s is not a watch event", k->watch_event->name);
    return NULL;
  }
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cond, NULL);
  char path[256];
  snprintf(path, sizeof(path), "/%s/Watch", k->service->name);
  rpc_metadata md[2];
  rpc_call_options co = {.metadata = md, .nmetadata = call_metadata(c, NULL, md)};
  rpc_stream_callbacks cb = {.on_message = watch_on_message, .on_close = watch_on_close};
  w->stream = rpc_stream_start(c->ch, path, RPC_SERVER_STREAMING, &req->base, k->watch_event, &co, &cb, w, err);
  if (!w->stream) {
    keel_error_wrap(err, "client: watch %s", k->resource);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    free(w);
    return NULL;
  }
  return w;
}

rpc_stream *client_stream_start(client *c, const char *method, rpc_kind kind, const ProtobufCMessage *req,
                                const ProtobufCMessageDescriptor *resp, const client_call_options *opts,
                                const rpc_stream_callbacks *cb, void *arg, keel_error *err) {
  rpc_metadata md[2];
  rpc_call_options co = {
      .timeout_ms = opts ? opts->timeout_ms : 0,
      .metadata = md,
      .nmetadata = call_metadata(c, opts, md),
  };
  return rpc_stream_start(c->ch, method, kind, req, resp, &co, cb, arg, err);
}

void client_watch_cancel(client_watch *w) {
  if (w) rpc_stream_cancel(w->stream);
}

void client_watch_stop(client_watch *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  bool closed = w->closed;
  pthread_mutex_unlock(&w->mu);
  if (!closed) rpc_stream_cancel(w->stream);
  pthread_mutex_lock(&w->mu);
  while (!w->closed) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
  rpc_stream_release(w->stream);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cond);
  free(w);
}

/* ---------------------------------------------------------------- objects */

const char *client_object_key(const api_kind *k, const ProtobufCMessage *obj, char *buf, size_t len) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (!m || !m->name || !*m->name) return NULL;
  int n = k->namespaced && m->namespace_ && *m->namespace_ ? snprintf(buf, len, "%s/%s", m->namespace_, m->name)
                                                           : snprintf(buf, len, "%s", m->name);
  return n >= 0 && (size_t)n < len ? buf : NULL;
}

int client_split_key(const char *key, char *ns, size_t nslen, char *name, size_t namelen) {
  const char *slash = strchr(key, '/');
  size_t nl = slash ? (size_t)(slash - key) : 0;
  const char *nm = slash ? slash + 1 : key;
  if (nl + 1 > nslen || strlen(nm) + 1 > namelen) return -EINVAL;
  memcpy(ns, key, nl);
  ns[nl] = 0;
  strcpy(name, nm);
  return 0;
}

int64_t client_object_rv(const api_kind *k, const ProtobufCMessage *obj) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (!m || !m->resource_version) return 0;
  char *end;
  long long v = strtoll(m->resource_version, &end, 10);
  return *end || v < 0 ? 0 : (int64_t)v;
}
