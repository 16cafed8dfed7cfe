/* services/apiserver/server/rest.c — the REST/JSON gateway.
 *
 * Kubernetes' URL layout over the same verbs the gRPC services use:
 *   /api/v1/namespaces/{ns}/{resource}[/{name}[/{subresource}]]   core, namespaced
 *   /api/v1/{resource}[/{name}[/status]]                           cluster-scoped,
 *                                                                  or every namespace
 *   /apis/{group}/{version}/...                                    the same for groups
 * GET (get, list, ?watch=1), POST (create; pods/{name}/binding), PUT (update,
 * /status, /scale), DELETE. JSON is common/protojson's mapping with
 * Kubernetes' field names; errors are Kubernetes Status objects with the HTTP
 * code kubectl expects. Authentication is the gRPC side's: a bearer token (the
 * Authorization header) or, over HTTPS, a client certificate verified against
 * the same client CA.
 *
 * Threading: httpd runs a thread per connection for this handler, so a
 * request runs its verb synchronously, and a watch stream's content callback
 * blocks until its next event (or a keep-alive newline every few seconds,
 * which is also how a gone client is noticed). */
#define _GNU_SOURCE /* strptime, timegm */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/apimachinery/fields.h"
#include "common/apimachinery/labels.h"
#include "common/log/log.h"
#include "common/protojson/protojson.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/services.pb-c.h"
#include "services/apiserver/server/internal.h"

extern const unsigned char keel_api_descriptor_set[];
extern const size_t keel_api_descriptor_set_len;

#define REST_MAX_BODY (3u << 20)
#define REST_WATCH_QUEUE 1024
#define REST_KEEPALIVE_S 5

/* ---------------------------------------------------------------- responses */

typedef struct http_status_map {
  grpc_status_code code;
  unsigned http;
  const char *reason;
} http_status_map;

/* gRPC code -> Kubernetes' HTTP status and StatusReason. */
static const http_status_map status_map[] = {
    {GRPC_STATUS_NOT_FOUND, 404, "NotFound"},
    {GRPC_STATUS_ALREADY_EXISTS, 409, "AlreadyExists"},
    {GRPC_STATUS_FAILED_PRECONDITION, 409, "Conflict"},
    {GRPC_STATUS_ABORTED, 409, "Conflict"},
    {GRPC_STATUS_INVALID_ARGUMENT, 422, "Invalid"},
    {GRPC_STATUS_PERMISSION_DENIED, 403, "Forbidden"},
    {GRPC_STATUS_UNAUTHENTICATED, 401, "Unauthorized"},
    {GRPC_STATUS_RESOURCE_EXHAUSTED, 429, "TooManyRequests"},
    {GRPC_STATUS_OUT_OF_RANGE, 410, "Expired"},
    {GRPC_STATUS_UNAVAILABLE, 503, "ServiceUnavailable"},
    {GRPC_STATUS_DEADLINE_EXCEEDED, 504, "Timeout"},
    {GRPC_STATUS_UNIMPLEMENTED, 405, "MethodNotAllowed"},
};

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned http, json_t *body) {
  char *text = json_dumps(body, JSON_COMPACT);
  json_decref(body);
  if (!text) return MHD_NO;
  size_t len = strlen(text);
  char *with_nl = realloc(text, len + 2);
  if (with_nl) {
    text = with_nl;
    text[len++] = '\n';
    text[len] = '\0';
  }
  struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
  if (!resp) {
    free(text);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
  enum MHD_Result r = MHD_queue_response(conn, http, resp);
  MHD_destroy_response(resp);
  return r;
}

static json_t *status_json(grpc_status_code code, const char *message, unsigned *http_out) {
  unsigned http = 500;
  const char *reason = "InternalError";
  if ((code == GRPC_STATUS_INVALID_ARGUMENT && strstr(message, "is invalid") == NULL) ||
      (code == GRPC_STATUS_FAILED_PRECONDITION && !api_message_is_conflict(message))) {
    http = 400;
    reason = "BadRequest";
  } else {
    for (size_t i = 0; i < sizeof status_map / sizeof status_map[0]; i++)
      if (status_map[i].code == code) {
        http = status_map[i].http;
        reason = status_map[i].reason;
      }
  }
  if (http_out) *http_out = http;
  return json_pack("{s:s, s:s, s:{}, s:s, s:s, s:s, s:i}", "kind", "Status", "apiVersion", "v1", "metadata",
                   "status", "Failure", "message", message, "reason", reason, "code", (int)http);
}

static enum MHD_Result respond_status(struct MHD_Connection *conn, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result respond_status(struct MHD_Connection *conn, grpc_status_code code, const char *fmt, ...) {
  char msg[KEEL_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned http;
  json_t *body = status_json(code, msg, &http);
  return respond_json(conn, http, body);
}

static json_t *object_json(apiserver *a, const ProtobufCMessage *obj) {
  return protojson_to_json(a->json, obj, NULL);
}

/* ---------------------------------------------------------------- the request */

typedef struct rest_req {
  apiserver *a;
  char *body;
  size_t body_len;
  bool too_large;
  bool started;
} rest_req;

/* A parsed path. */
typedef struct rest_path {
  const api_kind *kind;
  char ns[254];
  char name[254];
  char sub[16];
  bool has_ns;
} rest_path;

static int split_path(const char *url, char parts[8][254], size_t *n) {
  *n = 0;
  const char *p = url;
  while (*p == '/') p++;
  while (*p) {
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (*n == 8 || len >= 254) return -1;
    memcpy(parts[*n], p, len);
    parts[*n][len] = '\0';
    (*n)++;
    p += len;
    while (*p == '/') p++;
  }
  return 0;
}

/* 0 with *path filled; 1 when the URL is a discovery path (answered by the
 * caller); -1 when it names nothing. */
static int parse_path(const char *url, rest_path *path, char *group, size_t glen, char *version, size_t vlen) {
  char parts[8][254];
  size_t n;
  memset(path, 0, sizeof *path);
  if (split_path(url, parts, &n) < 0 || n == 0) return -1;
  size_t i;
  if (strcmp(parts[0], "api") == 0) {
    if (n == 1) return snprintf(group, glen, "%s", ""), snprintf(version, vlen, "%s", ""), 1;
    snprintf(group, glen, "%s", "");
    snprintf(version, vlen, "%s", parts[1]);
    i = 2;
  } else if (strcmp(parts[0], "apis") == 0) {
    if (n == 1) return snprintf(group, glen, "%s", ""), snprintf(version, vlen, "%s", ""), 1;
    if (n < 3) return -1;
    snprintf(group, glen, "%s", parts[1]);
    snprintf(version, vlen, "%s", parts[2]);
    i = 3;
  } else {
    return -1;
  }
  if (i == n) return 1; /* /api/v1 or /apis/apps/v1: the resource list */
  size_t rest = n - i;
  const char *resource;
  if (strcmp(parts[i], "namespaces") == 0 && rest >= 3 && strcmp(parts[i + 2], "status") != 0 &&
      strcmp(parts[i + 2], "finalize") != 0) {
    snprintf(path->ns, sizeof path->ns, "%s", parts[i + 1]);
    path->has_ns = true;
    i += 2;
    rest -= 2;
  }
  resource = parts[i];
  if (rest >= 2) snprintf(path->name, sizeof path->name, "%s", parts[i + 1]);
  if (rest >= 3) snprintf(path->sub, sizeof path->sub, "%s", parts[i + 2]);
  if (rest > 3) return -1;
  path->kind = api_kind_by_resource(resource);
  if (!path->kind) return -1;
  /* The kind must live at this group/version. */
  char want[512];
  if (*group) snprintf(want, sizeof want, "%s/%s", group, version);
  else snprintf(want, sizeof want, "%s", version);
  if (strcmp(path->kind->api_version, want) != 0) return -1;
  if (path->has_ns && !path->kind->namespaced) return -1;
  return 0;
}

static const char *query(struct MHD_Connection *conn, const char *key) {
  return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

static bool query_true(struct MHD_Connection *conn, const char *key) {
  const char *v = query(conn, key);
  return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

/* ---------------------------------------------------------------- discovery */

static enum MHD_Result serve_discovery(struct MHD_Connection *conn, const char *group, const char *version,
                                       const char *url) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  if (strcmp(url, "/api") == 0 || strcmp(url, "/api/") == 0)
    return respond_json(conn, 200, json_pack("{s:s, s:[s]}", "kind", "APIVersions", "versions", "v1"));
  if (strcmp(url, "/apis") == 0 || strcmp(url, "/apis/") == 0) {
    json_t *groups = json_array();
    const char *seen[16];
    size_t nseen = 0;
    for (size_t i = 0; i < n; i++) {
      if (!*ks[i].group) continue;
      bool dup = false;
      for (size_t j = 0; j < nseen; j++) dup = dup || strcmp(seen[j], ks[i].group) == 0;
      if (dup || nseen == 16) continue;
      seen[nseen++] = ks[i].group;
      json_array_append_new(groups, json_pack("{s:s, s:[{s:s, s:s}], s:{s:s, s:s}}", "name", ks[i].group,
                                              "versions", "groupVersion", ks[i].api_version, "version", "v1",
                                              "preferredVersion", "groupVersion", ks[i].api_version, "version",
                                              "v1"));
    }
    return respond_json(conn, 200, json_pack("{s:s, s:s, s:o}", "kind", "APIGroupList", "apiVersion", "v1",
                                             "groups", groups));
  }
  char gv[512];
  if (*group) snprintf(gv, sizeof gv, "%s/%s", group, version);
  else snprintf(gv, sizeof gv, "%s", version);
  json_t *resources = json_array();
  for (size_t i = 0; i < n; i++) {
    if (strcmp(ks[i].api_version, gv) != 0) continue;
    json_t *verbs = json_pack("[s,s,s,s,s,s]", "create", "delete", "get", "list", "update", "watch");
    json_t *r = json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", ks[i].resource, "singularName", ks[i].singular,
                          "namespaced", ks[i].namespaced, "kind", ks[i].kind, "verbs", verbs);
    if (*ks[i].short_names) json_object_set_new(r, "shortNames", json_pack("[s]", ks[i].short_names));
    json_array_append_new(resources, r);
    if (ks[i].subresources & API_SUB_STATUS)
      json_array_append_new(resources,
                            json_pack("{s:s+, s:b, s:s, s:[s,s]}", "name", ks[i].resource, "/status", "namespaced",
                                      ks[i].namespaced, "kind", ks[i].kind, "verbs", "get", "update"));
  }
  if (json_array_size(resources) == 0) {
    json_decref(resources);
    return respond_status(conn, GRPC_STATUS_NOT_FOUND, "the server could not find the requested resource");
  }
  return respond_json(conn, 200, json_pack("{s:s, s:s, s:s, s:o}", "kind", "APIResourceList", "apiVersion", "v1",
                                           "groupVersion", gv, "resources", resources));
}

/* ---------------------------------------------------------------- verbs */

typedef struct rest_responder {
  apiserver *a;
  struct MHD_Connection *conn;
  unsigned ok_code;
  enum MHD_Result result;
} rest_responder;

static void rest_object(void *arg, const api_kind *k, const ProtobufCMessage *obj) {
  (void)k;
  rest_responder *rr = arg;
  json_t *j = object_json(rr->a, obj);
  rr->result = j ? respond_json(rr->conn, rr->ok_code, j)
                 : respond_status(rr->conn, GRPC_STATUS_INTERNAL, "cannot encode the object as JSON");
}

static void rest_error(void *arg, grpc_status_code code, const char *message) {
  rest_responder *rr = arg;
  rr->result = respond_status(rr->conn, code, "%s", message);
}

/* The body decoded as desc; on failure a 400 was queued and *result set. */
static ProtobufCMessage *decode_body(apiserver *a, struct MHD_Connection *conn, rest_req *rq,
                                     const ProtobufCMessageDescriptor *desc, enum MHD_Result *result) {
  keel_error err = {0};
  if (!rq->body_len) {
    *result = respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "the request has no body");
    return NULL;
  }
  ProtobufCMessage *m = protojson_from_string(a->json, desc, rq->body, rq->body_len, &err);
  if (!m) *result = respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.message);
  return m;
}

/* Checks (and fills) the object's namespace and name against the URL's. */
static bool path_matches_object(struct MHD_Connection *conn, const rest_path *p, const api_kind *k,
                                ProtobufCMessage *obj, bool need_name, enum MHD_Result *result) {
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, obj);
  if (k->namespaced) {
    if (m->namespace_ && *m->namespace_ && strcmp(m->namespace_, p->ns) != 0) {
      *result = respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT,
                               "the namespace of the provided object does not match the namespace sent on the "
                               "request");
      return false;
    }
    api_string_set(&m->namespace_, p->ns);
  }
  if (need_name) {
    if (m->name && *m->name && strcmp(m->name, p->name) != 0) {
      *result = respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT,
                               "the name of the object (%s) does not match the name on the URL (%s)", m->name,
                               p->name);
      return false;
    }
    api_string_set(&m->name, p->name);
  }
  return true;
}

static int authorize_read(apiserver *a, const auth_identity *id, const api_kind *k, const char *verb,
                          const char *ns, const char *name, keel_error *err) {
  (void)a;
  auth_request r = {.verb = verb, .kind = k, .namespace_ = ns, .name = name ? name : ""};
  return auth_authorize(id, &r, err);
}

static enum MHD_Result do_rest_get(apiserver *a, struct MHD_Connection *conn, const rest_path *p,
                                   const auth_identity *id) {
  keel_error err = {0};
  const api_kind *k = p->kind;
  const char *ns = k->namespaced ? p->ns : "";
  if (authorize_read(a, id, k, "get", ns, p->name, &err) < 0)
    return respond_status(conn, apiserver_status_for(-err.code), "%s", err.message);
  const char *rv = query(conn, "resourceVersion");
  ProtobufCMessage *obj = NULL;
  if (!rv || !*rv) {
    int rc = objstore_get(a->store, k, ns, p->name, &obj, NULL, &err);
    if (rc == -ENOENT) return respond_status(conn, GRPC_STATUS_NOT_FOUND, "%s \"%s\" not found", k->resource, p->name);
    if (rc < 0) return respond_status(conn, apiserver_status_for(rc), "%s", err.message);
    json_t *j = object_json(a, obj);
    protobuf_c_message_free_unpacked(obj, NULL);
    return j ? respond_json(conn, 200, j) : respond_status(conn, GRPC_STATUS_INTERNAL, "cannot encode JSON");
  }
  cache_object *o;
  if (watch_cache_get(apiserver_cache(a, k), ns, p->name, &o, NULL) < 0)
    return respond_status(conn, GRPC_STATUS_NOT_FOUND, "%s \"%s\" not found", k->resource, p->name);
  json_t *j = object_json(a, cache_object_msg(o));
  cache_object_unref(o);
  return j ? respond_json(conn, 200, j) : respond_status(conn, GRPC_STATUS_INTERNAL, "cannot encode JSON");
}

static enum MHD_Result do_rest_list(apiserver *a, struct MHD_Connection *conn, const rest_path *p,
                                    const auth_identity *id) {
  keel_error err = {0};
  const api_kind *k = p->kind;
  const char *ns = p->has_ns ? p->ns : "";
  if (authorize_read(a, id, k, "list", ns, "", &err) < 0)
    return respond_status(conn, apiserver_status_for(-err.code), "%s", err.message);
  const char *rvs = query(conn, "resourceVersion");
  const char *limit_s = query(conn, "limit"), *cont = query(conn, "continue"), *match = query(conn, "resourceVersionMatch");
  long long limit = limit_s ? atoll(limit_s) : 0;
  bool exact = match && strcmp(match, "Exact") == 0;
  if (limit < 0) return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "limit: Invalid value: %lld", limit);
  selectors sel;
  if (selectors_parse(&sel, k, query(conn, "labelSelector"), query(conn, "fieldSelector"), &err) < 0)
    return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.message);
  watch_cache *c = apiserver_cache(a, k);
  long long asked = rvs && *rvs ? atoll(rvs) : -1;
  bool untrusted_fresh = !watch_cache_progress_trusted(c) && (asked < 0 || asked > watch_cache_revision(c));
  if (limit > 0 || (cont && *cont) || exact || untrusted_fresh) {
    /* Pages and exact versions come from the store (see list.c), and so do
     * consistent reads when the cache cannot prove it is current. */
    int64_t exact_rev = exact && rvs ? atoll(rvs) : 0;
    if (exact && exact_rev <= 0) {
      selectors_free(&sel);
      return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT,
                            "resourceVersionMatch \"Exact\" needs a non-zero resourceVersion");
    }
    store_list sl;
    int rc = apiserver_list_from_store(a, k, ns, &sel, exact_rev, limit, cont, &sl, &err);
    selectors_free(&sel);
    if (rc < 0) return respond_status(conn, apiserver_status_for(rc), "%s", err.message);
    json_t *arr = json_array();
    for (size_t i = 0; i < sl.n; i++) {
      json_t *j = object_json(a, sl.items[i]);
      if (j) json_array_append_new(arr, j);
    }
    char kind_list[64], rv[24];
    snprintf(kind_list, sizeof kind_list, "%sList", k->kind);
    snprintf(rv, sizeof rv, "%lld", (long long)sl.revision);
    json_t *meta = json_pack("{s:s}", "resourceVersion", rv);
    if (sl.continue_token) json_object_set_new(meta, "continue", json_string(sl.continue_token));
    store_list_clear(&sl);
    return respond_json(conn, 200, json_pack("{s:s, s:s, s:o, s:o}", "kind", kind_list, "apiVersion", k->api_version,
                                             "metadata", meta, "items", arr));
  }
  int64_t want = 0;
  if (!rvs || !*rvs) {
    if (objstore_current_revision(a->store, &want, &err) < 0) {
      selectors_free(&sel);
      return respond_status(conn, GRPC_STATUS_UNAVAILABLE, "%s", err.message);
    }
  } else {
    char *end;
    want = strtoll(rvs, &end, 10);
    if (*end || want < 0) {
      selectors_free(&sel);
      return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "resourceVersion: Invalid value: \"%s\"", rvs);
    }
  }
  if (want > 0 && watch_cache_wait(c, want, 3000) < 0) {
    selectors_free(&sel);
    return respond_status(conn, GRPC_STATUS_DEADLINE_EXCEEDED, "too large resource version: %lld, current: %lld",
                          (long long)want, (long long)watch_cache_revision(c));
  }
  cache_filter f = {.ns = ns, .match = selectors_match, .arg = &sel};
  cache_object **items;
  size_t n;
  int64_t at;
  int rc = watch_cache_list(c, &f, &items, &n, &at);
  selectors_free(&sel);
  if (rc < 0) return respond_status(conn, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) {
    json_t *j = object_json(a, cache_object_msg(items[i]));
    if (j) json_array_append_new(arr, j);
  }
  cache_objects_release(items, n);
  char kind_list[64], rv[24];
  snprintf(kind_list, sizeof kind_list, "%sList", k->kind);
  snprintf(rv, sizeof rv, "%lld", (long long)at);
  return respond_json(conn, 200, json_pack("{s:s, s:s, s:{s:s}, s:o}", "kind", kind_list, "apiVersion",
                                           k->api_version, "metadata", "resourceVersion", rv, "items", arr));
}

/* A 200 whose body read() produces until it ends the stream; free_cls(cls)
 * runs when the response is gone (also when it could not be made). */
static enum MHD_Result respond_stream(struct MHD_Connection *conn, const char *content_type, size_t block,
                                      MHD_ContentReaderCallback read, void *cls,
                                      MHD_ContentReaderFreeCallback free_cls) {
  struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, block, read, cls, free_cls);
  if (!resp) {
    free_cls(cls);
    return MHD_NO;
  }
  MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  enum MHD_Result r = MHD_queue_response(conn, 200, resp);
  MHD_destroy_response(resp);
  return r;
}

/* ---------------------------------------------------------------- watch streams */

typedef struct rest_event {
  unsigned char *data; /* encoded XWatchEvent */
  size_t len;
} rest_event;

struct rest_watch {
  apiserver *a;
  const api_kind *kind;
  struct rest_watch *next, *prev; /* a->http_watches, under a->http_mu */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  rest_event queue[REST_WATCH_QUEUE];
  size_t head, count;
  bool blocked; /* the cache was told -ENOBUFS */
  bool ended;
  grpc_status_code end_code;
  char end_message[200];
  cache_watcher *w;
  selectors sel;
  char ns[254];
  int64_t deadline_s; /* timeoutSeconds; 0 = none */
  /* Output not yet handed to MHD. */
  char *out;
  size_t out_len, out_off;
  bool finished;      /* the next read ends the stream */
  bool end_after_out; /* end once rw->out is sent */
};

static int rest_sink_send(void *arg, const rpc_shared_message *m) {
  struct rest_watch *rw = arg;
  size_t len;
  const unsigned char *data = rpc_shared_message_data(m, &len);
  pthread_mutex_lock(&rw->mu);
  int rc = 0;
  if (rw->ended) {
    rc = -EPIPE;
  } else if (rw->count == REST_WATCH_QUEUE) {
    rw->blocked = true;
    rc = -ENOBUFS;
  } else {
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy) {
      rc = -ENOMEM;
    } else {
      memcpy(copy, data, len);
      rw->queue[(rw->head + rw->count) % REST_WATCH_QUEUE] = (rest_event){.data = copy, .len = len};
      rw->count++;
      pthread_cond_signal(&rw->cond);
    }
  }
  pthread_mutex_unlock(&rw->mu);
  return rc;
}

static void rest_sink_end(void *arg, grpc_status_code code, const char *message) {
  struct rest_watch *rw = arg;
  pthread_mutex_lock(&rw->mu);
  if (!rw->ended) {
    rw->ended = true;
    rw->end_code = code;
    snprintf(rw->end_message, sizeof rw->end_message, "%s", message);
  }
  pthread_cond_signal(&rw->cond);
  pthread_mutex_unlock(&rw->mu);
}

/* {"type": T, "object": {...}}\n for one encoded event; NULL on failure. */
static char *event_line(struct rest_watch *rw, const rest_event *ev, size_t *len) {
  ProtobufCMessage *e = protobuf_c_message_unpack(rw->kind->watch_event, NULL, ev->len, ev->data);
  if (!e) return NULL;
  const ProtobufCFieldDescriptor *ft = protobuf_c_message_descriptor_get_field_by_name(e->descriptor, "type");
  const ProtobufCFieldDescriptor *fo = protobuf_c_message_descriptor_get_field_by_name(e->descriptor, "object");
  const char *type = *(const char **)((char *)e + ft->offset);
  const ProtobufCMessage *obj = *(const ProtobufCMessage **)((char *)e + fo->offset);
  json_t *o = obj ? object_json(rw->a, obj) : json_object();
  char *text = NULL;
  if (o) {
    json_t *line = json_pack("{s:s, s:o}", "type", type, "object", o);
    text = line ? json_dumps(line, JSON_COMPACT) : NULL;
    json_decref(line);
  }
  protobuf_c_message_free_unpacked(e, NULL);
  if (!text) return NULL;
  size_t n = strlen(text);
  char *t = realloc(text, n + 2);
  if (!t) {
    free(text);
    return NULL;
  }
  t[n++] = '\n';
  t[n] = '\0';
  *len = n;
  return t;
}

static ssize_t rest_watch_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  struct rest_watch *rw = cls;
  if (rw->finished) return MHD_CONTENT_READER_END_OF_STREAM;
  for (;;) {
    if (rw->out) {
      size_t n = rw->out_len - rw->out_off;
      if (n > max) n = max;
      memcpy(buf, rw->out + rw->out_off, n);
      rw->out_off += n;
      if (rw->out_off == rw->out_len) {
        free(rw->out);
        rw->out = NULL;
        if (rw->end_after_out) rw->finished = true;
      }
      return (ssize_t)n;
    }
    pthread_mutex_lock(&rw->mu);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += REST_KEEPALIVE_S;
    bool timed_out = false;
    while (rw->count == 0 && !rw->ended && !timed_out) {
      if (pthread_cond_timedwait(&rw->cond, &rw->mu, &until) == ETIMEDOUT) timed_out = true;
      if (rw->deadline_s && time(NULL) >= rw->deadline_s) {
        rw->ended = true;
        rw->end_code = GRPC_STATUS_OK;
      }
    }
    if (rw->count > 0) {
      rest_event ev = rw->queue[rw->head];
      rw->head = (rw->head + 1) % REST_WATCH_QUEUE;
      rw->count--;
      bool resume = rw->blocked && rw->count < REST_WATCH_QUEUE / 2;
      if (resume) rw->blocked = false;
      pthread_mutex_unlock(&rw->mu);
      if (resume) watch_cache_watcher_writable(rw->w);
      rw->out = event_line(rw, &ev, &rw->out_len);
      rw->out_off = 0;
      free(ev.data);
      continue;
    }
    if (rw->ended) {
      grpc_status_code code = rw->end_code;
      char msg[sizeof rw->end_message];
      memcpy(msg, rw->end_message, sizeof msg);
      pthread_mutex_unlock(&rw->mu);
      rw->finished = true; /* after what is in rw->out */
      if (code == GRPC_STATUS_OK) return MHD_CONTENT_READER_END_OF_STREAM;
      /* Kubernetes ends a failed watch with an ERROR event carrying a Status. */
      json_t *line = json_pack("{s:s, s:o}", "type", "ERROR", "object", status_json(code, msg, NULL));
      char *text = line ? json_dumps(line, JSON_COMPACT) : NULL;
      json_decref(line);
      if (!text) return MHD_CONTENT_READER_END_OF_STREAM;
      size_t n = strlen(text);
      size_t m = n > max ? max : n;
      memcpy(buf, text, m);
      if (m < n) {
        /* The rest goes out on the next calls; then the stream ends. */
        rw->out = text;
        rw->out_len = n;
        rw->out_off = m;
        rw->finished = false;
        rw->end_after_out = true;
      } else {
        free(text);
      }
      return (ssize_t)m;
    }
    pthread_mutex_unlock(&rw->mu);
    /* Quiet: a newline between JSON values keeps proxies (and us) aware of a
     * client that went away. */
    buf[0] = '\n';
    return 1;
  }
}

static void rest_watch_free(void *cls) {
  struct rest_watch *rw = cls;
  apiserver *a = rw->a;
  watch_cache_watcher_stop(rw->w);
  pthread_mutex_lock(&a->http_mu);
  if (rw->prev) rw->prev->next = rw->next;
  else if (a->http_watches == rw) a->http_watches = rw->next;
  if (rw->next) rw->next->prev = rw->prev;
  pthread_mutex_unlock(&a->http_mu);
  for (size_t i = 0; i < rw->count; i++) free(rw->queue[(rw->head + i) % REST_WATCH_QUEUE].data);
  selectors_free(&rw->sel);
  free(rw->out);
  pthread_mutex_destroy(&rw->mu);
  pthread_cond_destroy(&rw->cond);
  free(rw);
}

static enum MHD_Result do_rest_watch(apiserver *a, struct MHD_Connection *conn, const rest_path *p,
                                     const auth_identity *id) {
  keel_error err = {0};
  const api_kind *k = p->kind;
  const char *ns = p->has_ns ? p->ns : "";
  if (authorize_read(a, id, k, "watch", ns, "", &err) < 0)
    return respond_status(conn, apiserver_status_for(-err.code), "%s", err.message);
  const char *rvs = query(conn, "resourceVersion");
  int64_t rv = 0;
  if (rvs && *rvs) {
    char *end;
    rv = strtoll(rvs, &end, 10);
    if (*end || rv < 0)
      return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "resourceVersion: Invalid value: \"%s\"", rvs);
  }
  struct rest_watch *rw = calloc(1, sizeof *rw);
  if (!rw) return respond_status(conn, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  rw->a = a;
  rw->kind = k;
  snprintf(rw->ns, sizeof rw->ns, "%s", ns);
  pthread_mutex_init(&rw->mu, NULL);
  pthread_cond_init(&rw->cond, NULL);
  const char *ts = query(conn, "timeoutSeconds");
  if (ts && atoll(ts) > 0) rw->deadline_s = time(NULL) + atoll(ts);
  if (selectors_parse(&rw->sel, k, query(conn, "labelSelector"), query(conn, "fieldSelector"), &err) < 0) {
    pthread_mutex_destroy(&rw->mu);
    pthread_cond_destroy(&rw->cond);
    free(rw);
    return respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "%s", err.message);
  }
  cache_watch_options wo = {
      .filter = {.ns = rw->ns, .match = selectors_match, .arg = &rw->sel},
      .send_initial = rv == 0,
      .from_revision = rv,
      .bookmarks = query_true(conn, "allowWatchBookmarks"),
  };
  cache_watcher_sink sink = {.send = rest_sink_send, .end = rest_sink_end, .arg = rw};
  pthread_mutex_lock(&a->http_mu);
  bool stopping = a->http_stopping;
  if (!stopping) {
    rw->next = a->http_watches;
    if (a->http_watches) a->http_watches->prev = rw;
    a->http_watches = rw;
  }
  pthread_mutex_unlock(&a->http_mu);
  int rc = stopping ? keel_error_set(&err, ESHUTDOWN, "server shutting down")
                    : watch_cache_watch(apiserver_cache(a, k), &wo, &sink, &rw->w, &err);
  if (rc < 0) {
    rw->w = NULL;
    if (!stopping) rest_watch_free(rw);
    else {
      selectors_free(&rw->sel);
      pthread_mutex_destroy(&rw->mu);
      pthread_cond_destroy(&rw->cond);
      free(rw);
    }
    return respond_status(conn, apiserver_status_for(rc), "%s", err.message);
  }
  return respond_stream(conn, "application/json", 16 * 1024, rest_watch_read, rw, rest_watch_free);
}

/* ---------------------------------------------------------------- pod logs */

/* GET .../pods/{name}/log: the container's log as text/plain, relayed from
 * the node agent (podio.c), with kubelet's query parameters. */
typedef struct rest_log {
  apiserver *a;
  pod_log_reader *reader;
  char first[16 * 1024]; /* read before the headers went out */
  size_t first_len, first_off;
} rest_log;

static ssize_t rest_log_read(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  rest_log *rl = cls;
  if (rl->first_off < rl->first_len) {
    size_t n = rl->first_len - rl->first_off;
    if (n > max) n = max;
    memcpy(buf, rl->first + rl->first_off, n);
    rl->first_off += n;
    return (ssize_t)n;
  }
  for (;;) {
    grpc_status_code code;
    char msg[64];
    ssize_t n = apiserver_pod_log_read(rl->reader, buf, max, 1000, &code, msg, sizeof msg);
    if (n > 0) return n;
    /* The headers are out: an error mid-stream can only end it, as the
     * kubelet's does. */
    if (n < 0) return MHD_CONTENT_READER_END_OF_STREAM;
    pthread_mutex_lock(&rl->a->http_mu);
    bool stopping = rl->a->http_stopping;
    pthread_mutex_unlock(&rl->a->http_mu);
    if (stopping) return MHD_CONTENT_READER_END_OF_STREAM;
  }
}

static void rest_log_free(void *cls) {
  rest_log *rl = cls;
  apiserver_pod_log_close(rl->reader);
  free(rl);
}

/* An optional integer query parameter into *slot (set only when present). */
static int query_int64(struct MHD_Connection *conn, const char *key, Google__Protobuf__Int64Value *v,
                       Google__Protobuf__Int64Value **slot, keel_error *err) {
  const char *text = query(conn, key);
  if (!text) return 0;
  char *end;
  errno = 0;
  long long n = strtoll(text, &end, 10);
  if (errno || !*text || *end) return keel_error_set(err, EINVAL, "%s: Invalid value: \"%.64s\": not an integer", key, text);
  v->value = n;
  *slot = v;
  return 0;
}

static enum MHD_Result do_rest_log(apiserver *a, struct MHD_Connection *conn, const rest_path *p,
                                   const auth_identity *id) {
  Keel__Api__V1__PodLogOptions o = KEEL__API__V1__POD_LOG_OPTIONS__INIT;
  Google__Protobuf__Int64Value tail = GOOGLE__PROTOBUF__INT64_VALUE__INIT, since = tail, limit = tail;
  Google__Protobuf__Timestamp since_time = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  keel_error err = {0};
  o.namespace_ = (char *)p->ns;
  o.name = (char *)p->name;
  o.container = (char *)query(conn, "container");
  o.follow = query_true(conn, "follow");
  o.previous = query_true(conn, "previous");
  o.timestamps = query_true(conn, "timestamps");
  int rc = query_int64(conn, "tailLines", &tail, &o.tail_lines, &err);
  if (rc == 0) rc = query_int64(conn, "sinceSeconds", &since, &o.since_seconds, &err);
  if (rc == 0) rc = query_int64(conn, "limitBytes", &limit, &o.limit_bytes, &err);
  const char *st = query(conn, "sinceTime");
  if (rc == 0 && st) {
    struct tm tm = {0};
    const char *end = strptime(st, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end) rc = keel_error_set(&err, EINVAL, "sinceTime: Invalid value: \"%.64s\": not RFC 3339 (UTC)", st);
    since_time.seconds = timegm(&tm);
    o.since_time = &since_time;
  }
  pod_log_reader *reader = NULL;
  if (rc == 0) rc = apiserver_pod_log_open(a, id, &o, &reader, &err);
  if (rc < 0) return respond_status(conn, apiserver_status_for(rc), "%s", err.message);
  rest_log *rl = calloc(1, sizeof *rl);
  if (!rl) {
    apiserver_pod_log_close(reader);
    return respond_status(conn, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  rl->a = a;
  rl->reader = reader;
  /* Wait a moment for the first bytes or the end, so that the agent's refusal
   * (or an unreachable agent) is a Status with its HTTP code, not an empty 200. */
  grpc_status_code code = GRPC_STATUS_OK;
  char msg[1024];
  ssize_t n = apiserver_pod_log_read(reader, rl->first, sizeof rl->first, 1000, &code, msg, sizeof msg);
  if (n < 0 && code != GRPC_STATUS_OK) {
    rest_log_free(rl);
    return respond_status(conn, code, "%s", msg);
  }
  rl->first_len = n > 0 ? (size_t)n : 0;
  return respond_stream(conn, "text/plain", 32 * 1024, rest_log_read, rl, rest_log_free);
}

/* ---------------------------------------------------------------- dispatch */

static enum MHD_Result dispatch(apiserver *a, struct MHD_Connection *conn, const char *url, const char *method,
                                rest_req *rq) {
  char group[254], version[254];
  rest_path p;
  int kind = parse_path(url, &p, group, sizeof group, version, sizeof version);
  if (kind < 0)
    return respond_status(conn, GRPC_STATUS_NOT_FOUND, "the server could not find the requested resource (%s)", url);
  /* Everyone authenticates, discovery included (as kube-apiserver without
   * anonymous access). */
  const char *authz = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
  auth_identity id = {0};
  grpc_status_code code;
  keel_error err = {0};
  char *cert = authz ? NULL : httpd_client_cert_pem(conn); /* a token decides alone */
  int arc = auth_authenticate(a->opts.auth, authz, cert, &id, &code, &err);
  free(cert);
  if (arc < 0) return respond_status(conn, code, "%s", err.message);
  enum MHD_Result result;
  if (kind == 1) {
    result = strcmp(method, "GET") == 0 ? serve_discovery(conn, group, version, url)
                                        : respond_status(conn, GRPC_STATUS_UNIMPLEMENTED, "method %s not allowed", method);
    auth_identity_clear(&id);
    return result;
  }
  const api_kind *k = p.kind;
  if (rq->too_large) {
    auth_identity_clear(&id);
    return respond_status(conn, GRPC_STATUS_RESOURCE_EXHAUSTED, "the request body exceeds %u bytes", REST_MAX_BODY);
  }
  const char *dry = query(conn, "dryRun");
  rest_responder rr = {.a = a, .conn = conn, .ok_code = 200, .result = MHD_NO};
  api_responder r = {.object = rest_object, .error = rest_error, .arg = &rr, .dry_run = dry && strcmp(dry, "All") == 0};
  bool named = p.name[0] != '\0';
  if (k->namespaced && named && !p.has_ns) {
    result = respond_status(conn, GRPC_STATUS_NOT_FOUND, "%s are namespaced: use /namespaces/{namespace}/%s/%s",
                            k->resource, k->resource, p.name);
  } else if (named && strcmp(p.sub, "log") == 0 && (k->subresources & API_SUB_LOG) &&
             strcmp(method, "GET") == 0) {
    result = do_rest_log(a, conn, &p, &id);
  } else if (named && strcmp(p.sub, "exec") == 0 && (k->subresources & API_SUB_EXEC)) {
    /* exec over HTTP needs kubectl's SPDY/WebSocket upgrade: gRPC only. */
    result = respond_status(conn, GRPC_STATUS_UNIMPLEMENTED,
                            "pods/exec is served over gRPC only (keel.api.v1.Pods/Exec, as `keel exec` uses it)");
  } else if (strcmp(method, "GET") == 0) {
    if (!named) result = query_true(conn, "watch") ? do_rest_watch(a, conn, &p, &id) : do_rest_list(a, conn, &p, &id);
    else if (!p.sub[0]) result = do_rest_get(a, conn, &p, &id);
    else if (strcmp(p.sub, "scale") == 0 && (k->subresources & API_SUB_SCALE)) {
      Keel__Api__V1__GetRequest g = KEEL__API__V1__GET_REQUEST__INIT;
      g.namespace_ = p.ns;
      g.name = p.name;
      apiserver_do_get_scale(a, k, &r, &id, &g.base);
      result = rr.result;
    } else if (strcmp(p.sub, "status") == 0 && (k->subresources & API_SUB_STATUS)) {
      result = do_rest_get(a, conn, &p, &id);
    } else {
      result = respond_status(conn, GRPC_STATUS_NOT_FOUND, "%s has no subresource \"%s\"", k->resource, p.sub);
    }
  } else if (strcmp(method, "POST") == 0) {
    if (!named && k->namespaced && !p.has_ns) {
      result = respond_status(conn, GRPC_STATUS_INVALID_ARGUMENT, "create %s: the URL names no namespace", k->resource);
    } else if (!named) {
      ProtobufCMessage *obj = decode_body(a, conn, rq, k->object, &result);
      if (obj && path_matches_object(conn, &p, k, obj, false, &result)) {
        rr.ok_code = 201;
        apiserver_do_create(a, k, &r, &id, obj);
        result = rr.result;
      }
      if (obj) protobuf_c_message_free_unpacked(obj, NULL);
    } else if (strcmp(p.sub, "binding") == 0 && (k->subresources & API_SUB_BIND)) {
      ProtobufCMessage *b = decode_body(a, conn, rq, &keel__api__v1__binding__descriptor, &result);
      if (b) {
        Keel__Api__V1__Binding *bind = (Keel__Api__V1__Binding *)b;
        if (!bind->metadata)
          bind->metadata = (Keel__Api__V1__ObjectMeta *)api_message_new(&keel__api__v1__object_meta__descriptor);
        api_string_set(&bind->metadata->namespace_, p.ns);
        api_string_set(&bind->metadata->name, p.name);
        rr.ok_code = 201;
        apiserver_do_bind(a, k, &r, &id, b);
        result = rr.result;
        protobuf_c_message_free_unpacked(b, NULL);
      }
    } else {
      result = respond_status(conn, GRPC_STATUS_UNIMPLEMENTED, "POST %s is not supported", url);
    }
  } else if (strcmp(method, "PUT") == 0 && named) {
    bool scale = strcmp(p.sub, "scale") == 0 && (k->subresources & API_SUB_SCALE);
    bool status = strcmp(p.sub, "status") == 0 && (k->subresources & API_SUB_STATUS);
    if (p.sub[0] && !scale && !status) {
      result = respond_status(conn, GRPC_STATUS_NOT_FOUND, "%s has no subresource \"%s\"", k->resource, p.sub);
    } else if (scale) {
      ProtobufCMessage *s = decode_body(a, conn, rq, &keel__api__v1__scale__descriptor, &result);
      if (s) {
        Keel__Api__V1__Scale *sc = (Keel__Api__V1__Scale *)s;
        if (!sc->metadata)
          sc->metadata = (Keel__Api__V1__ObjectMeta *)api_message_new(&keel__api__v1__object_meta__descriptor);
        api_string_set(&sc->metadata->namespace_, p.ns);
        api_string_set(&sc->metadata->name, p.name);
        apiserver_do_update_scale(a, k, &r, &id, s);
        result = rr.result;
        protobuf_c_message_free_unpacked(s, NULL);
      }
    } else {
      ProtobufCMessage *obj = decode_body(a, conn, rq, k->object, &result);
      if (obj && path_matches_object(conn, &p, k, obj, true, &result)) {
        apiserver_do_update(a, k, &r, &id, obj, status ? "status" : NULL);
        result = rr.result;
      }
      if (obj) protobuf_c_message_free_unpacked(obj, NULL);
    }
  } else if (strcmp(method, "DELETE") == 0 && named && !p.sub[0]) {
    Keel__Api__V1__DeleteRequest d = KEEL__API__V1__DELETE_REQUEST__INIT;
    Google__Protobuf__Int64Value grace = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
    Keel__Api__V1__Preconditions pre = KEEL__API__V1__PRECONDITIONS__INIT;
    d.namespace_ = p.ns;
    d.name = p.name;
    const char *gq = query(conn, "gracePeriodSeconds");
    json_t *opts = rq->body_len ? json_loadb(rq->body, rq->body_len, 0, NULL) : NULL;
    json_t *g = opts ? json_object_get(opts, "gracePeriodSeconds") : NULL;
    if (gq || json_is_integer(g)) {
      grace.value = gq ? atoll(gq) : json_integer_value(g);
      d.grace_period_seconds = &grace;
    }
    json_t *pc = opts ? json_object_get(opts, "preconditions") : NULL;
    if (json_is_object(pc)) {
      json_t *u = json_object_get(pc, "uid"), *v = json_object_get(pc, "resourceVersion");
      pre.uid = json_is_string(u) ? (char *)json_string_value(u) : (char *)"";
      pre.resource_version = json_is_string(v) ? (char *)json_string_value(v) : (char *)"";
      d.preconditions = &pre;
    }
    apiserver_do_delete(a, k, &r, &id, &d.base);
    result = rr.result;
    json_decref(opts);
  } else {
    result = respond_status(conn, GRPC_STATUS_UNIMPLEMENTED, "method %s is not allowed on %s", method, url);
  }
  auth_identity_clear(&id);
  return result;
}

static enum MHD_Result rest_handler(void *arg, struct MHD_Connection *conn, const char *url, const char *method,
                                    const char *upload_data, size_t *upload_data_size, void **req_cls) {
  apiserver *a = arg;
  rest_req *rq = *req_cls;
  if (!rq) {
    rq = calloc(1, sizeof *rq);
    if (!rq) return MHD_NO;
    rq->a = a;
    *req_cls = rq;
    return MHD_YES;
  }
  if (*upload_data_size) {
    /* Body bytes: keep them, up to the limit (the rest is read and dropped so
     * the answer can still be sent). */
    size_t n = *upload_data_size;
    if (!rq->too_large && rq->body_len + n <= REST_MAX_BODY) {
      char *grown = realloc(rq->body, rq->body_len + n + 1);
      if (grown) {
        rq->body = grown;
        memcpy(rq->body + rq->body_len, upload_data, n);
        rq->body_len += n;
        rq->body[rq->body_len] = '\0';
      } else {
        rq->too_large = true;
      }
    } else {
      rq->too_large = true;
    }
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (rq->started) return MHD_YES;
  rq->started = true;
  return dispatch(a, conn, url, method, rq);
}

static void rest_completed(void *arg, void *req_cls) {
  (void)arg;
  rest_req *rq = req_cls;
  if (!rq) return;
  free(rq->body);
  free(rq);
}

/* ---------------------------------------------------------------- lifecycle */

int apiserver_rest_init(apiserver *a, keel_error *err) {
  pthread_mutex_init(&a->http_mu, NULL);
  protojson_descriptor_set set = {.data = keel_api_descriptor_set, .len = keel_api_descriptor_set_len};
  a->json = protojson_create(&set, 1, err);
  return a->json ? 0 : -EINVAL;
}

void apiserver_rest_destroy(apiserver *a) {
  if (a->json) protojson_destroy(a->json);
  pthread_mutex_destroy(&a->http_mu);
}

void apiserver_http_options(apiserver *a, httpd_options *opts) {
  opts->handler = rest_handler;
  opts->completed = rest_completed;
  opts->handler_arg = a;
  opts->thread_per_connection = true;
}

void apiserver_http_shutdown(apiserver *a) {
  apiserver_podio_http_shutdown(a); /* log readers end, so their connections close */
  pthread_mutex_lock(&a->http_mu);
  a->http_stopping = true;
  for (struct rest_watch *rw = a->http_watches; rw; rw = rw->next) rest_sink_end(rw, GRPC_STATUS_OK, "");
  pthread_mutex_unlock(&a->http_mu);
}
