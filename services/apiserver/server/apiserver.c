/* services/apiserver/server/apiserver.c — the generic keel.api.v1 handlers.
 *
 * Every kind's service is registered with the same handler table; the service
 * context names the kind. A request is authenticated on the completion-queue
 * thread, then runs on the read or write pool (see apiserver.h). The verbs'
 * object logic lives in ops.c; this file is the RPC side: decoding requests,
 * reads from the caches, watches, errors to status codes. */
#include "services/apiserver/server/apiserver.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/apimachinery/fields.h"
#include "common/apimachinery/labels.h"
#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/sched/sched.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/services.pb-c.h"
#include "services/apiserver/server/internal.h"

extern const unsigned char keel_api_descriptor_set[];
extern const size_t keel_api_descriptor_set_len;

/* ---------------------------------------------------------------- errors */

grpc_status_code apiserver_status_for(int rc) {
  switch (rc < 0 ? -rc : rc) {
    case ENOENT: return GRPC_STATUS_NOT_FOUND;
    case EEXIST: return GRPC_STATUS_ALREADY_EXISTS;
    case ESTALE: return GRPC_STATUS_FAILED_PRECONDITION;
    case EINVAL: return GRPC_STATUS_INVALID_ARGUMENT;
    case EACCES: return GRPC_STATUS_PERMISSION_DENIED;
    case EPERM: return GRPC_STATUS_UNAUTHENTICATED;
    case WATCH_CACHE_TOO_OLD: return GRPC_STATUS_OUT_OF_RANGE;
    case ECANCELED: return GRPC_STATUS_ABORTED;
    case E2BIG:
    case ENOBUFS:
    case ENOSPC: return GRPC_STATUS_RESOURCE_EXHAUSTED;
    case EAGAIN:
    case ECONNREFUSED:
    case ETIMEDOUT:
    case ESHUTDOWN: return GRPC_STATUS_UNAVAILABLE;
    case ENOSYS: return GRPC_STATUS_UNIMPLEMENTED;
    default: return GRPC_STATUS_INTERNAL;
  }
}

static void finish_error(rpc_call *call, int rc, const keel_error *err) {
  rpc_call_finish(call, apiserver_status_for(rc), "%s", err && err->message[0] ? err->message : strerror(-rc));
}

/* ---------------------------------------------------------------- requests */

typedef struct job {
  apiserver *a;
  const api_kind *kind;
  rpc_call *call;
  char method[24];
  ProtobufCMessage *req;
  auth_identity id;
  bool write;
  bool counted; /* against the in-flight limit */
} job;

static void job_free(job *j) {
  if (j->req) protobuf_c_message_free_unpacked(j->req, NULL);
  auth_identity_clear(&j->id);
  rpc_call_unref(j->call);
  free(j);
}

static void run_job(void *arg);

static void on_request(rpc_call *call, const ProtobufCMessage *request, void *service_ctx) {
  kind_ctx *kc = service_ctx;
  apiserver *a = kc->a;
  const char *method = strrchr(rpc_call_method(call), '/');
  method = method ? method + 1 : "";
  job *j = calloc(1, sizeof *j);
  if (!j) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  grpc_status_code code;
  keel_error err = {0};
  if (auth_authenticate_call(a->opts.auth, call, &j->id, &code, &err) < 0) {
    free(j);
    rpc_call_finish(call, code, "%s", err.message);
    return;
  }
  j->a = a;
  j->kind = kc->kind;
  j->call = call;
  snprintf(j->method, sizeof j->method, "%s", method);
  j->write = strcmp(method, "Get") != 0 && strcmp(method, "List") != 0 && strcmp(method, "Watch") != 0 &&
             strcmp(method, "GetScale") != 0;
  /* Watches are long-running: like kube-apiserver, they are not counted against
   * the in-flight limits (a client opening thousands of them is bounded by
   * the per-watcher queues instead). */
  j->counted = strcmp(method, "Watch") != 0;
  atomic_int *in_flight = j->write ? &a->writes_in_flight : &a->reads_in_flight;
  int limit = j->write ? a->opts.max_writes_in_flight : a->opts.max_reads_in_flight;
  if (j->counted && atomic_fetch_add(in_flight, 1) >= limit) {
    atomic_fetch_sub(in_flight, 1);
    bool write = j->write;
    auth_identity_clear(&j->id);
    free(j);
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED,
                    "too many requests in flight (%s limit %d): retry later", write ? "write" : "read", limit);
    return;
  }
  j->req = rpc_call_take_request(call); /* no copy: the job owns it now */
  if (!j->req) j->req = api_message_clone(request);
  api_message_normalize(j->req); /* unknown fields dropped, one entry per map key */
  if (!j->req) {
    if (j->counted) atomic_fetch_sub(in_flight, 1);
    auth_identity_clear(&j->id);
    free(j);
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    return;
  }
  rpc_call_ref(call);
  if (sched_submit(j->write ? a->writes : a->reads, run_job, j) < 0) {
    if (j->counted) atomic_fetch_sub(in_flight, 1);
    rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    job_free(j);
  }
}

/* ---------------------------------------------------------------- helpers */

const char *apiserver_request_namespace(const api_kind *k, const char *ns) {
  if (!k->namespaced) return "";
  return ns && *ns ? ns : "default";
}

static int authorize(job *j, const char *verb, const char *sub, const char *ns, const char *name,
                     const char *object_node, const char *new_object_node, keel_error *err) {
  auth_request r = {
      .verb = verb,
      .kind = j->kind,
      .subresource = sub,
      .namespace_ = ns ? ns : "",
      .name = name ? name : "",
      .object_node = object_node,
      .new_object_node = new_object_node,
  };
  return auth_authorize(&j->id, &r, err);
}

void selectors_free(selectors *s) {
  labels_selector_free(s->labels);
  fields_selector_free(s->fields);
  s->labels = NULL;
  s->fields = NULL;
}

int selectors_parse(selectors *s, const api_kind *k, const char *label_sel, const char *field_sel,
                           keel_error *err) {
  s->kind = k;
  s->labels = NULL;
  s->fields = NULL;
  if (labels_selector_parse(label_sel ? label_sel : "", &s->labels, err) < 0) return -EINVAL;
  if (fields_selector_parse(field_sel ? field_sel : "", &s->fields, err) < 0) {
    selectors_free(s);
    return -EINVAL;
  }
  for (size_t i = 0; i < s->fields->n_reqs; i++) {
    if (!api_kind_field_selectable(k, s->fields->reqs[i].field)) {
      keel_error_set(err, EINVAL, "field label not supported: %s (%s)", s->fields->reqs[i].field, k->resource);
      selectors_free(s);
      return -EINVAL;
    }
  }
  return 0;
}

typedef struct field_get_ctx {
  const api_kind *kind;
  const ProtobufCMessage *obj;
  char buf[256];
} field_get_ctx;

static const char *get_field(void *arg, const char *field) {
  field_get_ctx *g = arg;
  return api_object_field_text(g->kind, g->obj, field, g->buf, sizeof g->buf);
}

static const char *get_label(void *arg, const char *key) {
  const Keel__Api__V1__ObjectMeta *m = arg;
  for (size_t i = 0; m && i < m->n_labels; i++)
    if (strcmp(m->labels[i]->key, key) == 0) return m->labels[i]->value;
  return NULL;
}

bool selectors_match(const api_kind *k, const ProtobufCMessage *obj, void *arg) {
  selectors *s = arg;
  if (!labels_selector_empty(s->labels) &&
      !labels_selector_matches_fn(s->labels, get_label, api_object_meta(k, obj)))
    return false;
  if (!fields_selector_empty(s->fields)) {
    field_get_ctx g = {.kind = k, .obj = obj};
    if (fields_selector_matches(s->fields, get_field, &g, NULL) != 1) return false;
  }
  return true;
}

/* ---------------------------------------------------------------- reads */

static void do_get(job *j) {
  const Keel__Api__V1__GetRequest *req = (const Keel__Api__V1__GetRequest *)j->req;
  keel_error err = {0};
  const char *ns = apiserver_request_namespace(j->kind, req->namespace_);
  int rc = authorize(j, "get", NULL, ns, req->name, NULL, NULL, &err);
  if (rc < 0) return finish_error(j->call, rc, &err);
  if (!req->name || !*req->name)
    return (void)rpc_call_finish(j->call, GRPC_STATUS_INVALID_ARGUMENT, "name: Required value");
  int64_t rv;
  bool rv_set;
  if ((rc = parse_rv(req->resource_version, &rv, &rv_set, &err)) < 0) return finish_error(j->call, rc, &err);
  watch_cache *c = apiserver_cache(j->a, j->kind);
  /* From the store: a consistent read (no resourceVersion), or a version the
   * cache cannot prove it has reached (the store's progress is not trusted). */
  if (!rv_set || (rv > watch_cache_revision(c) && !watch_cache_progress_trusted(c))) {
    ProtobufCMessage *obj = NULL;
    rc = objstore_get(j->a->store, j->kind, ns, req->name, &obj, NULL, &err);
    if (rc == -ENOENT) keel_error_set(&err, ENOENT, "%s \"%s\" not found", j->kind->resource, req->name);
    if (rc < 0) return finish_error(j->call, rc, &err);
    rpc_call_reply(j->call, obj);
    protobuf_c_message_free_unpacked(obj, NULL);
    return;
  }
  if (rv > 0 && watch_cache_wait(c, rv, 3000) < 0)
    return (void)rpc_call_finish(j->call, GRPC_STATUS_DEADLINE_EXCEEDED,
                                 "too large resource version: %lld, current: %lld", (long long)rv,
                                 (long long)watch_cache_revision(c));
  cache_object *o;
  if (watch_cache_get(c, ns, req->name, &o, NULL) < 0)
    return (void)rpc_call_finish(j->call, GRPC_STATUS_NOT_FOUND, "%s \"%s\" not found", j->kind->resource,
                                 req->name);
  size_t len;
  const uint8_t *wire = cache_object_wire(o, &len);
  rpc_call_reply_bytes(j->call, grpc_slice_from_copied_buffer((const char *)wire, len));
  cache_object_unref(o);
}

/* Appends a length-delimited field to buf. */
static size_t put_field(uint8_t *p, unsigned field, const void *data, size_t len) {
  size_t n = 0;
  p[n++] = (uint8_t)((field << 3) | 2);
  uint64_t v = len;
  do {
    p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  memcpy(p + n, data, len);
  return n + len;
}

/* Replies XList{api_version=1, kind=2, metadata=3, items=4}, assembled from
 * the items' encodings (cached ones are not re-encoded): either decoded
 * messages or cache objects. */
static void reply_list(rpc_call *call, const api_kind *k, ProtobufCMessage **msgs, cache_object **cached, size_t n,
                       int64_t at, const char *continue_token) {
  char kind_list[64], rvs[24];
  snprintf(kind_list, sizeof kind_list, "%sList", k->kind);
  snprintf(rvs, sizeof rvs, "%lld", (long long)at);
  size_t clen = continue_token ? strlen(continue_token) : 0;
  uint8_t *meta = malloc(40 + clen + 11);
  if (!meta) return (void)rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  size_t meta_len = put_field(meta, 1, rvs, strlen(rvs)); /* ListMeta.resource_version */
  if (clen) meta_len += put_field(meta + meta_len, 2, continue_token, clen); /* ListMeta.continue */
  size_t total = 16 + strlen(k->api_version) + 16 + strlen(kind_list) + 16 + meta_len;
  for (size_t i = 0; i < n; i++) {
    size_t len;
    if (cached) cache_object_wire(cached[i], &len);
    else len = protobuf_c_message_get_packed_size(msgs[i]);
    total += len + 11;
  }
  grpc_slice s = grpc_slice_malloc(total);
  uint8_t *p = GRPC_SLICE_START_PTR(s);
  size_t off = 0;
  off += put_field(p + off, 1, k->api_version, strlen(k->api_version));
  off += put_field(p + off, 2, kind_list, strlen(kind_list));
  off += put_field(p + off, 3, meta, meta_len);
  free(meta);
  for (size_t i = 0; i < n; i++) {
    if (cached) {
      size_t len;
      const uint8_t *wire = cache_object_wire(cached[i], &len);
      off += put_field(p + off, 4, wire, len);
    } else {
      /* Tag and length, then the message packed in place. */
      size_t len = protobuf_c_message_get_packed_size(msgs[i]);
      p[off++] = (uint8_t)((4 << 3) | 2);
      uint64_t v = len;
      do {
        p[off++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
      } while (v);
      off += protobuf_c_message_pack(msgs[i], p + off);
    }
  }
  grpc_slice exact = grpc_slice_sub(s, 0, off);
  grpc_slice_unref(s);
  rpc_call_reply_bytes(call, exact);
}

static void do_list(job *j) {
  const Keel__Api__V1__ListRequest *req = (const Keel__Api__V1__ListRequest *)j->req;
  keel_error err = {0};
  const char *ns = j->kind->namespaced ? (req->namespace_ ? req->namespace_ : "") : "";
  int rc = authorize(j, "list", NULL, ns, "", NULL, NULL, &err);
  if (rc < 0) return finish_error(j->call, rc, &err);
  int64_t rv;
  bool rv_set;
  if ((rc = parse_rv(req->resource_version, &rv, &rv_set, &err)) < 0) return finish_error(j->call, rc, &err);
  bool exact = req->resource_version_match && strcmp(req->resource_version_match, "Exact") == 0;
  if (req->resource_version_match && *req->resource_version_match && !exact &&
      strcmp(req->resource_version_match, "NotOlderThan") != 0)
    return (void)rpc_call_finish(j->call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "resourceVersionMatch: Unsupported value: \"%s\": supported values: \"Exact\", "
                                 "\"NotOlderThan\"",
                                 req->resource_version_match);
  if (exact && (!rv_set || rv == 0))
    return (void)rpc_call_finish(j->call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "resourceVersionMatch: Forbidden: resourceVersionMatch \"Exact\" needs a non-zero "
                                 "resourceVersion");
  if (req->limit < 0)
    return (void)rpc_call_finish(j->call, GRPC_STATUS_INVALID_ARGUMENT, "limit: Invalid value: %lld: must be >= 0",
                                 (long long)req->limit);
  bool from_store = exact || req->limit > 0 || (req->continue_ && *req->continue_);
  watch_cache *c = apiserver_cache(j->a, j->kind);
  /* A cache that cannot trust the store's progress cannot prove it is current:
   * consistent reads (and versions it has not seen) go to the store. */
  if (!watch_cache_progress_trusted(c) && (!rv_set || rv > watch_cache_revision(c))) from_store = true;
  selectors sel;
  if ((rc = selectors_parse(&sel, j->kind, req->label_selector, req->field_selector, &err)) < 0)
    return finish_error(j->call, rc, &err);
  if (from_store) {
    store_list sl;
    rc = apiserver_list_from_store(j->a, j->kind, ns, &sel, exact ? rv : 0, req->limit, req->continue_, &sl, &err);
    selectors_free(&sel);
    if (rc < 0) return finish_error(j->call, rc, &err);
    reply_list(j->call, j->kind, sl.items, NULL, sl.n, sl.revision, sl.continue_token);
    store_list_clear(&sl);
    return;
  }
  int64_t want = rv;
  if (!rv_set) {
    /* Consistent list: wait until the cache has what the store has now. */
    if ((rc = objstore_current_revision(j->a->store, &want, &err)) < 0) {
      selectors_free(&sel);
      return finish_error(j->call, rc, &err);
    }
  }
  if (want > 0 && watch_cache_wait(c, want, 3000) < 0) {
    selectors_free(&sel);
    return (void)rpc_call_finish(j->call, rv_set ? GRPC_STATUS_DEADLINE_EXCEEDED : GRPC_STATUS_UNAVAILABLE,
                                 "%s resource version %lld: the cache is at %lld",
                                 rv_set ? "too large" : "timed out waiting for", (long long)want,
                                 (long long)watch_cache_revision(c));
  }
  cache_filter f = {.ns = ns, .match = selectors_match, .arg = &sel};
  cache_object **items;
  size_t n;
  int64_t at;
  if (watch_cache_list(c, &f, &items, &n, &at) < 0) {
    selectors_free(&sel);
    return (void)rpc_call_finish(j->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  selectors_free(&sel);
  reply_list(j->call, j->kind, NULL, items, n, at, NULL);
  cache_objects_release(items, n);
}

/* ---------------------------------------------------------------- watch */

typedef struct watch_stream {
  apiserver *a;
  rpc_call *call;
  char *ns; /* the filter's namespace: the request is gone once the job ends */
  selectors sel;
  cache_watcher *w;
} watch_stream;

static int sink_send(void *arg, const rpc_shared_message *m) {
  watch_stream *ws = arg;
  return rpc_call_send_shared(ws->call, m);
}

static void sink_end(void *arg, grpc_status_code code, const char *message) {
  watch_stream *ws = arg;
  rpc_call_finish(ws->call, code, "%s", message);
}

static void stream_writable(rpc_call *call, void *arg) {
  (void)call;
  watch_stream *ws = arg;
  if (ws->w) watch_cache_watcher_writable(ws->w);
}

/* Runs when the call is freed: after it closed, so nothing sends to it again. */
static void watch_stream_destroy(void *arg) {
  watch_stream *ws = arg;
  watch_cache_watcher_stop(ws->w);
  selectors_free(&ws->sel);
  free(ws->ns);
  free(ws);
}

static void watch_timeout(void *arg) {
  rpc_call *call = arg;
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
  rpc_call_unref(call);
}

static void watch_timeout_drop(void *arg) {
  rpc_call_unref(arg);
}

static void do_watch(job *j) {
  const Keel__Api__V1__WatchRequest *req = (const Keel__Api__V1__WatchRequest *)j->req;
  keel_error err = {0};
  const char *ns = j->kind->namespaced ? (req->namespace_ ? req->namespace_ : "") : "";
  int rc = authorize(j, "watch", NULL, ns, "", NULL, NULL, &err);
  if (rc < 0) return finish_error(j->call, rc, &err);
  int64_t rv;
  bool rv_set;
  if ((rc = parse_rv(req->resource_version, &rv, &rv_set, &err)) < 0) return finish_error(j->call, rc, &err);
  watch_stream *ws = calloc(1, sizeof *ws);
  if (!ws) return (void)rpc_call_finish(j->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  ws->a = j->a;
  ws->call = j->call;
  ws->ns = strdup(ns);
  if (!ws->ns) {
    free(ws);
    return (void)rpc_call_finish(j->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  if ((rc = selectors_parse(&ws->sel, j->kind, req->label_selector, req->field_selector, &err)) < 0) {
    free(ws->ns);
    free(ws);
    return finish_error(j->call, rc, &err);
  }
  rpc_call_set_slow_policy(j->call, RPC_SLOW_REJECT);
  cache_watch_options wo = {
      .filter = {.ns = ws->ns, .match = selectors_match, .arg = &ws->sel},
      .send_initial = !rv_set || rv == 0,
      .from_revision = rv,
      .bookmarks = req->allow_watch_bookmarks,
  };
  cache_watcher_sink sink = {.send = sink_send, .end = sink_end, .arg = ws};
  /* The stream owns ws from here: freed with the call. */
  rpc_call_set_user_data(j->call, ws, watch_stream_destroy);
  rpc_call_on_writable(j->call, stream_writable, ws);
  rc = watch_cache_watch(apiserver_cache(j->a, j->kind), &wo, &sink, &ws->w, &err);
  if (rc < 0) return finish_error(j->call, rc, &err);
  if (req->timeout_seconds > 0) {
    rpc_call_ref(j->call);
    if (!sched_after(j->a->reads, req->timeout_seconds * 1000, watch_timeout, watch_timeout_drop, j->call))
      rpc_call_unref(j->call);
  }
}

/* ---------------------------------------------------------------- dispatch */

static void grpc_object(void *arg, const api_kind *k, const ProtobufCMessage *obj) {
  (void)k;
  rpc_call_reply(arg, obj);
}

static void grpc_error(void *arg, grpc_status_code code, const char *message) {
  rpc_call_finish(arg, code, "%s", message);
}

static void run_job(void *arg) {
  job *j = arg;
  apiserver *a = j->a;
  const char *m = j->method;
  size_t dlen;
  const char *dry = rpc_call_metadata(j->call, "x-keel-dry-run", &dlen);
  api_responder r = {
      .object = grpc_object,
      .error = grpc_error,
      .arg = j->call,
      .dry_run = dry && dlen == 3 && memcmp(dry, "All", 3) == 0,
  };
  if (strcmp(m, "Get") == 0) do_get(j);
  else if (strcmp(m, "List") == 0) do_list(j);
  else if (strcmp(m, "Watch") == 0) do_watch(j);
  else if (strcmp(m, "Create") == 0) apiserver_do_create(a, j->kind, &r, &j->id, j->req);
  else if (strcmp(m, "Update") == 0) apiserver_do_update(a, j->kind, &r, &j->id, j->req, NULL);
  else if (strcmp(m, "UpdateStatus") == 0) apiserver_do_update(a, j->kind, &r, &j->id, j->req, "status");
  else if (strcmp(m, "Delete") == 0) apiserver_do_delete(a, j->kind, &r, &j->id, j->req);
  else if (strcmp(m, "Bind") == 0) apiserver_do_bind(a, j->kind, &r, &j->id, j->req);
  else if (strcmp(m, "GetScale") == 0) apiserver_do_get_scale(a, j->kind, &r, &j->id, j->req);
  else if (strcmp(m, "UpdateScale") == 0) apiserver_do_update_scale(a, j->kind, &r, &j->id, j->req);
  else rpc_call_finish(j->call, GRPC_STATUS_UNIMPLEMENTED, "method %s is not implemented", m);
  if (j->counted) atomic_fetch_sub(j->write ? &a->writes_in_flight : &a->reads_in_flight, 1);
  job_free(j);
}

/* ---------------------------------------------------------------- lifecycle */

watch_cache *apiserver_cache(apiserver *a, const api_kind *k) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  return a->caches[k - ks];
}

/* Gauges read from the caches when /metrics is scraped. */
static void refresh_metrics(void *arg) {
  apiserver *a = arg;
  for (size_t i = 0; i < a->ncaches; i++) {
    metric_set(a->m_objects[i], (double)watch_cache_object_count(a->caches[i]));
    metric_set(a->m_watchers[i], (double)watch_cache_watcher_count(a->caches[i]));
    metric_set(a->m_revision[i], (double)watch_cache_revision(a->caches[i]));
  }
  metric_set(a->m_reads, atomic_load(&a->reads_in_flight));
  metric_set(a->m_writes, atomic_load(&a->writes_in_flight));
}

static void register_metrics(apiserver *a) {
  metrics_registry *reg = metrics_default();
  metric_family *objects = metrics_gauge(reg, "keel_apiserver_watch_cache_objects",
                                         "Objects in the watch cache, by resource.", 1, "resource");
  metric_family *watchers = metrics_gauge(reg, "keel_apiserver_watchers", "Open watches, by resource.", 1,
                                          "resource");
  metric_family *revision = metrics_gauge(reg, "keel_apiserver_watch_cache_revision",
                                          "Store revision the watch cache has seen, by resource.", 1, "resource");
  metric_family *in_flight = metrics_gauge(reg, "keel_apiserver_requests_in_flight",
                                           "Requests being served, by kind (read or write).", 1, "kind");
  size_t n;
  const api_kind *ks = api_kinds(&n);
  a->m_objects = calloc(n, sizeof *a->m_objects);
  a->m_watchers = calloc(n, sizeof *a->m_watchers);
  a->m_revision = calloc(n, sizeof *a->m_revision);
  if (!a->m_objects || !a->m_watchers || !a->m_revision) return;
  for (size_t i = 0; i < n; i++) {
    a->m_objects[i] = metric_child(objects, ks[i].resource);
    a->m_watchers[i] = metric_child(watchers, ks[i].resource);
    a->m_revision[i] = metric_child(revision, ks[i].resource);
  }
  a->m_reads = metric_child(in_flight, "read");
  a->m_writes = metric_child(in_flight, "write");
  /* The hook outlives nothing: main stops the HTTP side before destroying a. */
  metrics_on_render(reg, refresh_metrics, a);
}

/* Kubernetes' bootstrap namespaces exist from the first start on, so "default"
 * can be written to at once. */
static int ensure_system_namespaces(apiserver *a, keel_error *err) {
  static const char *const names[] = {"default", "kube-system", "kube-public"};
  const api_kind *k = api_kind_by_resource("namespaces");
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    cache_object *o;
    if (watch_cache_get(apiserver_cache(a, k), "", names[i], &o, NULL) == 0) {
      cache_object_unref(o);
      continue;
    }
    char json_uid[37];
    apiserver_new_uid(json_uid);
    Keel__Api__V1__Namespace ns = KEEL__API__V1__NAMESPACE__INIT;
    Keel__Api__V1__ObjectMeta meta = KEEL__API__V1__OBJECT_META__INIT;
    Keel__Api__V1__NamespaceSpec spec = KEEL__API__V1__NAMESPACE_SPEC__INIT;
    Keel__Api__V1__NamespaceStatus status = KEEL__API__V1__NAMESPACE_STATUS__INIT;
    Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
    char *finalizers[] = {"kubernetes"};
    created.seconds = time(NULL);
    meta.name = (char *)names[i];
    meta.uid = json_uid;
    meta.generation = 1;
    meta.creation_timestamp = &created;
    spec.n_finalizers = 1;
    spec.finalizers = finalizers;
    status.phase = "Active";
    ns.metadata = &meta;
    ns.spec = &spec;
    ns.status = &status;
    int64_t rev;
    int rc = objstore_create(a->store, k, &ns.base, NULL, &rev, err);
    if (rc < 0 && rc != -EEXIST) return keel_error_wrap(err, "create namespace %s", names[i]);
  }
  keel_error_clear(err);
  return 0;
}

apiserver *apiserver_create(const apiserver_options *opts, keel_error *err) {
  apiserver *a = calloc(1, sizeof *a);
  if (!a) {
    keel_error_set(err, ENOMEM, "apiserver: out of memory");
    return NULL;
  }
  a->opts = *opts;
  /* Workers wait on the store (synchronous calls): their number is how many
   * store calls can be in flight, not a CPU count. */
  if (a->opts.read_workers <= 0) a->opts.read_workers = 32;
  if (a->opts.write_workers <= 0) a->opts.write_workers = 64;
  if (a->opts.max_reads_in_flight <= 0) a->opts.max_reads_in_flight = 400;
  if (a->opts.max_writes_in_flight <= 0) a->opts.max_writes_in_flight = 200;
  if (!a->opts.service_cidr) a->opts.service_cidr = "10.96.0.0/16";
  if (a->opts.node_port_min <= 0) a->opts.node_port_min = 30000;
  if (a->opts.node_port_max <= 0) a->opts.node_port_max = 32767;
  if (apiserver_ops_init(a, err) < 0 || apiserver_rest_init(a, err) < 0 || apiserver_podio_init(a, err) < 0)
    goto fail;
  a->store = objstore_new(opts->etcd, opts->storage_prefix, err);
  if (!a->store) goto fail;
  /* keel-store announces itself; its progress notifications can be trusted
   * (see watch_cache_options.progress_trusted). */
  int health = 0;
  bool trusted = etcd_health(opts->etcd, ETCD_KEEL_STORE_HEALTH_SERVICE, &health, NULL) == 0 && health == 1;
  LOG_INFO("apiserver: store", "kind", trusted ? "keel-store" : "etcd", "progress_notify",
           trusted ? "trusted" : "untrusted: consistent reads go to the store");
  size_t n;
  const api_kind *ks = api_kinds(&n);
  a->ncaches = n;
  a->caches = calloc(n, sizeof *a->caches);
  a->ctxs = calloc(n, sizeof(kind_ctx));
  if (!a->caches || !a->ctxs) {
    keel_error_set(err, ENOMEM, "apiserver: out of memory");
    goto fail;
  }
  for (size_t i = 0; i < n; i++) {
    watch_cache_options co = {
        .kind = &ks[i],
        .store = a->store,
        .window_events = opts->watch_window,
        .bookmark_interval_ms = opts->bookmark_interval_ms,
        .watcher_queue = opts->watcher_queue,
        .progress_trusted = trusted,
    };
    a->caches[i] = watch_cache_start(&co, err);
    if (!a->caches[i]) goto fail;
    ((kind_ctx *)a->ctxs)[i] = (kind_ctx){.a = a, .kind = &ks[i]};
  }
  if (ensure_system_namespaces(a, err) < 0) goto fail;
  register_metrics(a);
  a->reads = sched_create(a->opts.read_workers, "api-read");
  a->writes = sched_create(a->opts.write_workers, "api-write");
  if (!a->reads || !a->writes) {
    keel_error_set(err, EAGAIN, "apiserver: cannot start worker threads");
    goto fail;
  }
  return a;
fail:
  apiserver_destroy(a);
  return NULL;
}

int apiserver_register(apiserver *a, rpc_server *srv, keel_error *err) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++) {
    const ProtobufCServiceDescriptor *sd = ks[i].service;
    rpc_method_handler h[16];
    if (sd->n_methods > 16) return keel_error_set(err, EINVAL, "%s: too many methods", sd->name);
    for (unsigned m = 0; m < sd->n_methods; m++) {
      if (strcmp(ks[i].resource, "pods") == 0 && apiserver_podio_handler(sd->methods[m].name, &h[m])) continue;
      bool stream = strcmp(sd->methods[m].name, "Watch") == 0;
      h[m] = (rpc_method_handler){
          .name = sd->methods[m].name,
          .kind = stream ? RPC_SERVER_STREAMING : RPC_UNARY,
          .on_request = on_request,
      };
    }
    if (rpc_server_add_service(srv, sd, h, sd->n_methods, &((kind_ctx *)a->ctxs)[i], err) < 0) return -1;
  }
  return rpc_server_add_descriptors(srv, keel_api_descriptor_set, keel_api_descriptor_set_len, err);
}

void apiserver_destroy(apiserver *a) {
  if (!a) return;
  apiserver_podio_destroy(a); /* its relays' cleanup may still be running */
  if (a->reads) sched_destroy(a->reads);
  if (a->writes) sched_destroy(a->writes);
  for (size_t i = 0; a->caches && i < a->ncaches; i++) watch_cache_stop(a->caches[i]);
  free(a->caches);
  free(a->ctxs);
  free(a->m_objects);
  free(a->m_watchers);
  free(a->m_revision);
  objstore_free(a->store);
  apiserver_ops_destroy(a);
  apiserver_rest_destroy(a);
  free(a);
}
