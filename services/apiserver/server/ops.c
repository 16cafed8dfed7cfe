/* services/apiserver/server/ops.c — the write verbs: Create, Update,
 * UpdateStatus, Delete, Pods/Bind and the Scale subresource.
 *
 * Each is a read-modify-write against the store: read the stored object,
 * authorize against it (node restriction needs the pod's node), carry over
 * what the server owns (uid, creationTimestamp, generation, deletion state,
 * status on a spec update), default, validate, admit, then a txn guarded by
 * the mod_revision that was read. A conflict with a client-given
 * resourceVersion is FAILED_PRECONDITION; without one the verb re-reads and
 * tries again, as Kubernetes' GuaranteedUpdate does. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "common/apimachinery/labels.h"
#include "common/base/cleanup.h"
#include "common/log/log.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "services/apiserver/server/internal.h"
#include "services/apiserver/validation/validation.h"

#define UPDATE_ATTEMPTS 8

/* ---------------------------------------------------------------- small helpers */

static Google__Protobuf__Timestamp *timestamp_at(time_t secs) {
  Google__Protobuf__Timestamp *t = malloc(sizeof *t);
  if (!t) return NULL;
  google__protobuf__timestamp__init(t);
  t->seconds = secs;
  return t;
}

static void set_timestamp(Google__Protobuf__Timestamp **slot, Google__Protobuf__Timestamp *t) {
  if (*slot) protobuf_c_message_free_unpacked(&(*slot)->base, NULL);
  *slot = t;
}

static Google__Protobuf__Timestamp *clone_timestamp(const Google__Protobuf__Timestamp *t) {
  return t ? (Google__Protobuf__Timestamp *)api_message_clone(&t->base) : NULL;
}

void apiserver_new_uid(char out[37]) {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
    for (size_t i = 0; i < sizeof b; i++) b[i] = (unsigned char)rand();
  }
  b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
  b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
  snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
           b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Kubernetes' generateName suffix alphabet (no vowels, no look-alikes). */
static void random_suffix(char *out, size_t n) {
  static const char alphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  unsigned char b[16];
  if (n > sizeof b) n = sizeof b;
  if (getrandom(b, n, 0) != (ssize_t)n)
    for (size_t i = 0; i < n; i++) b[i] = (unsigned char)rand();
  for (size_t i = 0; i < n; i++) out[i] = alphabet[b[i] % (sizeof alphabet - 1)];
  out[n] = '\0';
}

static const char *pod_node(const api_kind *k, const ProtobufCMessage *obj) {
  if (!obj || strcmp(k->kind, "Pod") != 0) return NULL;
  const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)obj;
  return p->spec && p->spec->node_name ? p->spec->node_name : "";
}

static bool submessage_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  if (!a || !b) return a == b;
  size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
  if (la != lb) return false;
  cleanup_free uint8_t *ba = malloc(la ? la : 1);
  cleanup_free uint8_t *bb = malloc(lb ? lb : 1);
  if (!ba || !bb) return false;
  protobuf_c_message_pack(a, ba);
  protobuf_c_message_pack(b, bb);
  return memcmp(ba, bb, la) == 0;
}

static void replace_submessage(ProtobufCMessage **slot, ProtobufCMessage *value) {
  if (*slot) protobuf_c_message_free_unpacked(*slot, NULL);
  *slot = value;
}

static bool dry_run(const api_responder *call) {
  return call->dry_run;
}

static void respond_error(const api_responder *call, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void respond_error(const api_responder *call, grpc_status_code code, const char *fmt, ...) {
  char msg[KEEL_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  call->error(call->arg, code, msg);
}

static void reply_object(const api_responder *call, const api_kind *k, ProtobufCMessage *obj, int64_t rev) {
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, obj);
  char rv[24];
  snprintf(rv, sizeof rv, "%lld", (long long)rev);
  if (rev > 0) api_string_set(&m->resource_version, rv);
  api_object_set_type_meta(k, obj);
  call->object(call->arg, k, obj);
}

static void finish_rc(const api_responder *call, int rc, const keel_error *err) {
  respond_error(call, apiserver_status_for(rc), "%s", err->message[0] ? err->message : strerror(-rc));
}

static int authorize(const auth_identity *id, const api_kind *k, const char *verb, const char *sub,
                     const char *ns, const char *name, const char *object_node, const char *new_node,
                     keel_error *err) {
  auth_request r = {.verb = verb,
                    .kind = k,
                    .subresource = sub,
                    .namespace_ = ns,
                    .name = name,
                    .object_node = object_node,
                    .new_object_node = new_node};
  return auth_authorize(id, &r, err);
}

/* Read-your-writes: waits (bounded) until the cache of kind k has seen every
 * write this apiserver made to k, so a decision taken from the cache right
 * after our own write (a namespace just marked Terminating, a pod just
 * deleted) sees it. Each such write is an event of that very cache, so this
 * needs no progress notification from the store. */
static void wait_own_writes(apiserver *a, const api_kind *k) {
  int64_t rev = objstore_last_write(a->store, k);
  if (rev > 0) watch_cache_wait(apiserver_cache(a, k), rev, 3000);
}

/* Namespace lifecycle admission: nothing is created in a namespace that does
 * not exist or is being deleted. */
static int admit_namespace(apiserver *a, const api_kind *k, const char *ns, keel_error *err) {
  if (!k->namespaced) return 0;
  const api_kind *nsk = api_kind_by_resource("namespaces");
  wait_own_writes(a, nsk);
  cache_object *o;
  if (watch_cache_get(apiserver_cache(a, nsk), "", ns, &o, NULL) < 0) {
    /* The cache may trail a namespace created a moment ago: ask the store. */
    ProtobufCMessage *obj = NULL;
    if (objstore_get(a->store, nsk, "", ns, &obj, NULL, NULL) < 0)
      return keel_error_set(err, ENOENT, "namespaces \"%s\" not found", ns);
    const Keel__Api__V1__Namespace *n = (const Keel__Api__V1__Namespace *)obj;
    bool terminating = n->metadata && n->metadata->deletion_timestamp;
    protobuf_c_message_free_unpacked(obj, NULL);
    if (terminating) goto terminating;
    return 0;
  }
  const Keel__Api__V1__Namespace *n = (const Keel__Api__V1__Namespace *)cache_object_msg(o);
  bool terminating = (n->metadata && n->metadata->deletion_timestamp) ||
                     (n->status && n->status->phase && strcmp(n->status->phase, "Terminating") == 0);
  cache_object_unref(o);
  if (!terminating) return 0;
terminating:
  return keel_error_set(err, EACCES,
                        "%s is forbidden: unable to create new content in namespace %s because it is being "
                        "terminated",
                        k->resource, ns);
}

/* ---------------------------------------------------------------- Event leases, the service ranges */

/* The store lease an Event's key is attached to, so Events expire after
 * --event-ttl as Kubernetes' do. Like kube-apiserver's lease manager, one
 * lease serves every Event created within a minute (TTL + that minute), so a
 * burst of Events costs one LeaseGrant, not one each. 0 when none could be
 * granted (the Event is then kept without expiry). */
#define EVENT_LEASE_REUSE_S 60
static int64_t event_lease(apiserver *a) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  /* A TTL shorter than the reuse window (tests) shortens the window too. */
  int64_t reuse = a->opts.event_ttl_s < EVENT_LEASE_REUSE_S ? a->opts.event_ttl_s : EVENT_LEASE_REUSE_S;
  pthread_mutex_lock(&a->lease_mu);
  if (a->event_lease && now.tv_sec - a->event_lease_granted < reuse) {
    int64_t id = a->event_lease;
    pthread_mutex_unlock(&a->lease_mu);
    return id;
  }
  int64_t id = 0;
  keel_error err = {0};
  if (etcd_lease_grant(objstore_etcd(a->store), a->opts.event_ttl_s + reuse, &id, &err) < 0) {
    LOG_WARN("events: cannot grant a store lease; the event will not expire", "error", err.message);
    id = 0;
  } else {
    a->event_lease = id;
    a->event_lease_granted = now.tv_sec;
  }
  pthread_mutex_unlock(&a->lease_mu);
  return id;
}

int apiserver_ops_init(apiserver *a, keel_error *err) {
  pthread_mutex_init(&a->lease_mu, NULL);
  if (a->opts.event_ttl_s <= 0) a->opts.event_ttl_s = 3600;
  char buf[64];
  snprintf(buf, sizeof buf, "%s", a->opts.service_cidr);
  char *slash = strchr(buf, '/');
  int bits = slash ? atoi(slash + 1) : -1;
  if (slash) *slash = '\0';
  struct in_addr addr;
  if (!slash || bits < 8 || bits > 30 || inet_pton(AF_INET, buf, &addr) != 1)
    return keel_error_set(err, EINVAL, "flag --service-cluster-ip-range: \"%s\" is not an IPv4 CIDR of /8 to /30",
                          a->opts.service_cidr);
  a->service_size = 1u << (32 - bits);
  a->service_net = ntohl(addr.s_addr) & ~(a->service_size - 1);
  if (api_validation_set_node_port_range(a->opts.node_port_min, a->opts.node_port_max) < 0)
    return keel_error_set(err, EINVAL, "flag --service-node-port-range: %d-%d is not a valid range",
                          a->opts.node_port_min, a->opts.node_port_max);
  return 0;
}

void apiserver_ops_destroy(apiserver *a) {
  pthread_mutex_destroy(&a->lease_mu);
}

/* ---------------------------------------------------------------- Create */

/* Status a new object starts with, as Kubernetes' PrepareForCreate. */
static void reset_status_for_create(const api_kind *k, ProtobufCMessage *obj) {
  ProtobufCMessage **st = api_object_status_slot(k, obj);
  if (!st) return;
  if (strcmp(k->kind, "Node") == 0) return; /* the agent registers with its status */
  replace_submessage(st, NULL);
  if (strcmp(k->kind, "Pod") == 0) {
    Keel__Api__V1__PodStatus *ps = (Keel__Api__V1__PodStatus *)api_message_new(&keel__api__v1__pod_status__descriptor);
    if (ps) api_string_set(&ps->phase, "Pending");
    *st = &ps->base;
  } else if (strcmp(k->kind, "Namespace") == 0) {
    Keel__Api__V1__NamespaceStatus *ns =
        (Keel__Api__V1__NamespaceStatus *)api_message_new(&keel__api__v1__namespace_status__descriptor);
    if (ns) api_string_set(&ns->phase, "Active");
    *st = &ns->base;
  }
}

void apiserver_do_create(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *obj) {
  keel_error err = {0};
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, obj);
  if (!m) return (void)respond_error(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  api_string_set(&m->namespace_, apiserver_request_namespace(k, m->namespace_));
  if ((!m->name || !*m->name) && m->generate_name && *m->generate_name) {
    char name[300], suffix[6];
    random_suffix(suffix, 5);
    snprintf(name, sizeof name, "%.247s%s", m->generate_name, suffix);
    api_string_set(&m->name, name);
  }
  int rc = authorize(id, k, "create", NULL, m->namespace_, m->name, NULL, pod_node(k, obj), &err);
  if (rc < 0) return finish_rc(call, rc, &err);
  /* What the server owns. */
  char uid[37];
  apiserver_new_uid(uid);
  api_string_set(&m->uid, uid);
  api_string_set(&m->resource_version, NULL);
  m->generation = 1;
  set_timestamp(&m->creation_timestamp, timestamp_at(time(NULL)));
  set_timestamp(&m->deletion_timestamp, NULL);
  if (m->deletion_grace_period_seconds) {
    protobuf_c_message_free_unpacked(&m->deletion_grace_period_seconds->base, NULL);
    m->deletion_grace_period_seconds = NULL;
  }
  reset_status_for_create(k, obj);
  api_default(k, obj);
  if ((rc = api_validate(k, obj, NULL, NULL, &err)) < 0) return finish_rc(call, rc, &err);
  if ((rc = admit_namespace(a, k, m->namespace_, &err)) < 0) return finish_rc(call, rc, &err);
  int64_t rev = 0;
  if (dry_run(call)) return reply_object(call, k, obj, 0);
  if (strcmp(k->kind, "Service") == 0) {
    rc = apiserver_service_create(a, k, (Keel__Api__V1__Service *)obj, &rev, &err);
  } else {
    objstore_extra extra = {.lease = strcmp(k->kind, "Event") == 0 ? event_lease(a) : 0};
    rc = objstore_create(a->store, k, obj, &extra, &rev, &err);
  }
  if (rc == -EEXIST) keel_error_set(&err, EEXIST, "%s \"%s\" already exists", k->resource, m->name);
  if (rc < 0) return finish_rc(call, rc, &err);
  reply_object(call, k, obj, rev);
}

/* ---------------------------------------------------------------- Update */

/* Shared with the reads (apiserver.c), which accept "0" ("any version"); a
 * write's precondition names a version that was written, so the write verbs
 * treat "0" themselves. */
int parse_rv(const char *s, int64_t *rv, bool *set, keel_error *err) {
  *set = s && *s;
  *rv = 0;
  if (!*set) return 0;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || v < 0)
    return keel_error_set(err, EINVAL, "resourceVersion: Invalid value: \"%s\": must be a non-negative integer", s);
  *rv = v;
  return 0;
}

static int conflict(keel_error *err, const api_kind *k, const char *name) {
  return keel_error_set(err, ESTALE,
                        "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please apply "
                        "your changes to the latest version and try again",
                        k->resource, name);
}

/* Copies into next what the server owns from the stored object cur. */
static void carry_server_fields(const api_kind *k, ProtobufCMessage *next, const ProtobufCMessage *cur) {
  Keel__Api__V1__ObjectMeta *nm = api_object_meta_ensure(k, next);
  const Keel__Api__V1__ObjectMeta *cm = api_object_meta(k, cur);
  api_string_set(&nm->uid, cm->uid);
  nm->generation = cm->generation;
  set_timestamp(&nm->creation_timestamp, clone_timestamp(cm->creation_timestamp));
  set_timestamp(&nm->deletion_timestamp, clone_timestamp(cm->deletion_timestamp));
  if (nm->deletion_grace_period_seconds)
    protobuf_c_message_free_unpacked(&nm->deletion_grace_period_seconds->base, NULL);
  nm->deletion_grace_period_seconds =
      cm->deletion_grace_period_seconds
          ? (Google__Protobuf__Int64Value *)api_message_clone(&cm->deletion_grace_period_seconds->base)
          : NULL;
}

static bool has_finalizers(const api_kind *k, const ProtobufCMessage *obj) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  return m && m->n_finalizers > 0;
}

static bool being_deleted(const api_kind *k, const ProtobufCMessage *obj) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  return m && m->deletion_timestamp;
}

static int delete_stored(apiserver *a, const api_kind *k, const ProtobufCMessage *cur, int64_t cur_rev,
                         int64_t *rev, keel_error *err) {
  if (strcmp(k->kind, "Service") == 0) /* releases its ClusterIP and NodePorts */
    return apiserver_service_delete(a, k, (const Keel__Api__V1__Service *)cur, cur_rev, rev, err);
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, cur);
  return objstore_delete(a->store, k, m->namespace_, m->name, cur_rev, NULL, rev, err);
}

void apiserver_do_update(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *req, const char *sub) {
  keel_error err = {0};
  Keel__Api__V1__ObjectMeta *rm = api_object_meta_ensure(k, req);
  api_string_set(&rm->namespace_, apiserver_request_namespace(k, rm->namespace_));
  const char *ns = rm->namespace_, *name = rm->name;
  if (!name || !*name) return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT, "metadata.name: Required value");
  int64_t want_rv;
  bool has_rv;
  keel_error bad_rv;
  if (parse_rv(rm->resource_version, &want_rv, &has_rv, &bad_rv) < 0 || (has_rv && want_rv == 0))
    return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "metadata.resourceVersion: Invalid value: \"%s\": must be a positive integer",
                                 rm->resource_version);
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
    ProtobufCMessage *cur = NULL, *next = NULL;
    int64_t cur_rev = 0, rev = 0;
    int rc = objstore_get(a->store, k, ns, name, &cur, &cur_rev, &err);
    if (rc < 0) return finish_rc(call, rc, &err);
    rc = authorize(id, k, "update", sub, ns, name, pod_node(k, cur), pod_node(k, req), &err);
    if (rc < 0) goto fail;
    if (has_rv && want_rv != cur_rev) {
      rc = conflict(&err, k, name);
      goto fail;
    }
    const Keel__Api__V1__ObjectMeta *cm = api_object_meta(k, cur);
    if (rm->uid && *rm->uid && cm && strcmp(rm->uid, cm->uid) != 0) {
      /* The client updates another incarnation of the object (deleted and
       * created again under the same name). */
      rc = keel_error_set(&err, ESTALE,
                          "Precondition failed: UID in precondition: %s, UID in object meta: %s", cm->uid, rm->uid);
      goto fail;
    }
    if (sub) {
      /* UpdateStatus: the stored object with the new status. */
      next = api_message_clone(cur);
      ProtobufCMessage **ns_slot = api_object_status_slot(k, next), **rs = api_object_status_slot(k, req);
      if (!next || !ns_slot) {
        rc = keel_error_set(&err, ENOMEM, "out of memory");
        goto fail;
      }
      replace_submessage(ns_slot, *rs ? api_message_clone(*rs) : NULL);
    } else {
      next = api_message_clone(req);
      if (!next) {
        rc = keel_error_set(&err, ENOMEM, "out of memory");
        goto fail;
      }
      carry_server_fields(k, next, cur);
      ProtobufCMessage **st = api_object_status_slot(k, next), **cst = api_object_status_slot(k, cur);
      if (st) replace_submessage(st, *cst ? api_message_clone(*cst) : NULL);
      api_default(k, next);
      /* After defaulting: ports are matched by protocol, the type is known. */
      if (strcmp(k->kind, "Service") == 0)
        apiserver_service_prepare_update((Keel__Api__V1__Service *)next, (const Keel__Api__V1__Service *)cur);
      ProtobufCMessage **sp = api_object_spec_slot(k, next), **csp = api_object_spec_slot(k, cur);
      if (sp && !submessage_equal(*sp, *csp)) api_object_meta(k, next)->generation++;
    }
    if ((rc = api_validate(k, next, cur, sub, &err)) < 0) goto fail;
    bool service_spec = !sub && strcmp(k->kind, "Service") == 0;
    if (dry_run(call)) {
      /* A Service shows the NodePorts it would get and refuses taken ones. */
      if (service_spec && (rc = apiserver_service_update(a, k, (Keel__Api__V1__Service *)next,
                                                          (const Keel__Api__V1__Service *)cur, cur_rev, true,
                                                          NULL, &err)) < 0)
        goto fail;
      reply_object(call, k, next, cur_rev);
      protobuf_c_message_free_unpacked(cur, NULL);
      protobuf_c_message_free_unpacked(next, NULL);
      return;
    }
    if (being_deleted(k, next) && !has_finalizers(k, next) && strcmp(k->kind, "Pod") != 0) {
      /* The last finalizer is gone: deletion completes. */
      rc = delete_stored(a, k, cur, cur_rev, &rev, &err);
    } else if (service_spec) {
      /* NodePorts are taken and released in the Service's own txn. */
      rc = apiserver_service_update(a, k, (Keel__Api__V1__Service *)next, (const Keel__Api__V1__Service *)cur,
                                    cur_rev, false, &rev, &err);
    } else {
      /* An updated Event (count + 1) lives another TTL from now. */
      objstore_extra extra = {.lease = strcmp(k->kind, "Event") == 0 ? event_lease(a) : 0};
      rc = objstore_update(a->store, k, next, cur_rev, &extra, &rev, &err);
    }
    if (rc == -ESTALE && !has_rv) {
      protobuf_c_message_free_unpacked(cur, NULL);
      protobuf_c_message_free_unpacked(next, NULL);
      continue; /* somebody else wrote first: read again */
    }
    if (rc < 0) goto fail;
    reply_object(call, k, next, rev);
    protobuf_c_message_free_unpacked(cur, NULL);
    protobuf_c_message_free_unpacked(next, NULL);
    return;
  fail:
    if (cur) protobuf_c_message_free_unpacked(cur, NULL);
    if (next) protobuf_c_message_free_unpacked(next, NULL);
    return finish_rc(call, rc, &err);
  }
  respond_error(call, GRPC_STATUS_ABORTED, "%s \"%s\": too many concurrent writers; try again", k->resource, name);
}

/* ---------------------------------------------------------------- Delete */

/* True when no object of any namespaced kind is left in ns. */
static bool namespace_empty(apiserver *a, const char *ns) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++) {
    if (!ks[i].namespaced) continue;
    wait_own_writes(a, &ks[i]);
    cache_filter f = {.ns = ns};
    cache_object **items;
    size_t count;
    int64_t rev;
    if (watch_cache_list(apiserver_cache(a, &ks[i]), &f, &items, &count, &rev) < 0) return false;
    cache_objects_release(items, count);
    if (count) return false;
  }
  return true;
}

void apiserver_do_delete(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *reqm) {
  const Keel__Api__V1__DeleteRequest *req = (const Keel__Api__V1__DeleteRequest *)reqm;
  keel_error err = {0};
  const char *ns = apiserver_request_namespace(k, req->namespace_);
  if (!req->name || !*req->name) return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT, "name: Required value");
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
    ProtobufCMessage *cur = NULL;
    int64_t cur_rev = 0, rev = 0;
    int rc = objstore_get(a->store, k, ns, req->name, &cur, &cur_rev, &err);
    if (rc < 0) return finish_rc(call, rc, &err);
    Keel__Api__V1__ObjectMeta *cm = api_object_meta_ensure(k, cur);
    rc = authorize(id, k, "delete", NULL, ns, req->name, pod_node(k, cur), NULL, &err);
    if (rc < 0) goto done;
    if (strcmp(k->kind, "Namespace") == 0 &&
        (strcmp(req->name, "default") == 0 || strcmp(req->name, "kube-system") == 0 ||
         strcmp(req->name, "kube-public") == 0)) {
      rc = keel_error_set(&err, EACCES, "namespaces \"%s\" is forbidden: this namespace may not be deleted",
                          req->name);
      goto done;
    }
    if (req->preconditions) {
      const char *puid = req->preconditions->uid, *prv = req->preconditions->resource_version;
      if (puid && *puid && strcmp(puid, cm->uid) != 0) {
        rc = keel_error_set(&err, ESTALE,
                            "Precondition failed: UID in precondition: %s, UID in object meta: %s", puid, cm->uid);
        goto done;
      }
      int64_t want;
      bool set;
      if (prv && *prv && (parse_rv(prv, &want, &set, &err) < 0 || want != cur_rev)) {
        rc = keel_error_set(&err, ESTALE,
                            "Precondition failed: ResourceVersion in precondition: %s, ResourceVersion in object "
                            "meta: %lld",
                            prv, (long long)cur_rev);
        goto done;
      }
    }
    /* Graceful deletion: a pod bound to a node gets a deletionTimestamp and its
     * agent finishes the delete; an object with finalizers waits for them; a
     * namespace terminates. */
    int64_t grace = 0;
    bool is_pod = strcmp(k->kind, "Pod") == 0, is_ns = strcmp(k->kind, "Namespace") == 0;
    if (is_pod) {
      const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)cur;
      grace = req->grace_period_seconds ? req->grace_period_seconds->value
              : p->spec && p->spec->termination_grace_period_seconds ? p->spec->termination_grace_period_seconds->value
                                                                      : 30;
      if (!p->spec || !p->spec->node_name || !*p->spec->node_name) grace = 0;
    }
    bool mark = has_finalizers(k, cur) || grace > 0 || is_ns;
    if (is_ns && has_finalizers(k, cur) == false) mark = false;
    if (is_ns) {
      /* Namespaces carry spec.finalizers ["kubernetes"]: the namespace
       * controller empties them. Until Keel has one, an empty namespace is
       * finalized here at once. */
      Keel__Api__V1__Namespace *n = (Keel__Api__V1__Namespace *)cur;
      bool spec_fin = n->spec && n->spec->n_finalizers > 0;
      mark = has_finalizers(k, cur) || (spec_fin && !namespace_empty(a, req->name));
    }
    if (mark) {
      if (!cm->deletion_timestamp || (is_pod && grace == 0)) {
        set_timestamp(&cm->deletion_timestamp, timestamp_at(time(NULL) + grace));
        if (cm->deletion_grace_period_seconds)
          protobuf_c_message_free_unpacked(&cm->deletion_grace_period_seconds->base, NULL);
        cm->deletion_grace_period_seconds = malloc(sizeof *cm->deletion_grace_period_seconds);
        if (cm->deletion_grace_period_seconds) {
          google__protobuf__int64_value__init(cm->deletion_grace_period_seconds);
          cm->deletion_grace_period_seconds->value = grace;
        }
        if (is_ns) {
          Keel__Api__V1__Namespace *n = (Keel__Api__V1__Namespace *)cur;
          if (!n->status)
            n->status = (Keel__Api__V1__NamespaceStatus *)api_message_new(&keel__api__v1__namespace_status__descriptor);
          if (n->status) api_string_set(&n->status->phase, "Terminating");
        }
        if (is_pod && grace == 0 && !has_finalizers(k, cur)) goto delete_now;
        if (dry_run(call)) {
          reply_object(call, k, cur, cur_rev);
          protobuf_c_message_free_unpacked(cur, NULL);
          return;
        }
        rc = objstore_update(a->store, k, cur, cur_rev, NULL, &rev, &err);
        if (rc == -ESTALE) {
          protobuf_c_message_free_unpacked(cur, NULL);
          continue;
        }
        if (rc < 0) goto done;
        reply_object(call, k, cur, rev);
      } else {
        reply_object(call, k, cur, cur_rev); /* already being deleted */
      }
      protobuf_c_message_free_unpacked(cur, NULL);
      return;
    }
  delete_now:
    if (dry_run(call)) {
      reply_object(call, k, cur, cur_rev);
      protobuf_c_message_free_unpacked(cur, NULL);
      return;
    }
    rc = delete_stored(a, k, cur, cur_rev, &rev, &err);
    if (rc == -ESTALE) {
      protobuf_c_message_free_unpacked(cur, NULL);
      continue;
    }
    if (rc == 0) {
      reply_object(call, k, cur, rev);
      protobuf_c_message_free_unpacked(cur, NULL);
      return;
    }
  done:
    protobuf_c_message_free_unpacked(cur, NULL);
    return finish_rc(call, rc, &err);
  }
  respond_error(call, GRPC_STATUS_ABORTED, "%s \"%s\": too many concurrent writers; try again", k->resource,
                  req->name);
}

/* ---------------------------------------------------------------- Pods/Bind */

void apiserver_do_bind(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                       ProtobufCMessage *reqm) {
  const Keel__Api__V1__Binding *b = (const Keel__Api__V1__Binding *)reqm;
  keel_error err = {0};
  const char *ns = apiserver_request_namespace(k, b->metadata ? b->metadata->namespace_ : NULL);
  const char *name = b->metadata ? b->metadata->name : NULL;
  if (!name || !*name) return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT, "metadata.name: Required value");
  if (!b->target || !b->target->name || !*b->target->name)
    return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "Binding \"%s\" is invalid: target.name: Required value", name);
  if (b->target->kind && *b->target->kind && strcmp(b->target->kind, "Node") != 0)
    return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT,
                                 "Binding \"%s\" is invalid: target.kind: Unsupported value: \"%s\": supported values: "
                                 "\"Node\"",
                                 name, b->target->kind);
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
    ProtobufCMessage *cur = NULL, *old = NULL;
    int64_t cur_rev = 0, rev = 0;
    int rc = objstore_get(a->store, k, ns, name, &cur, &cur_rev, &err);
    if (rc < 0) return finish_rc(call, rc, &err);
    Keel__Api__V1__Pod *pod = (Keel__Api__V1__Pod *)cur;
    old = api_message_clone(cur); /* to validate the binding against */
    rc = authorize(id, k, "create", "binding", ns, name, pod_node(k, cur), b->target->name, &err);
    if (rc < 0) goto done;
    if (pod->spec && pod->spec->node_name && *pod->spec->node_name) {
      rc = keel_error_set(&err, ESTALE, "Operation cannot be fulfilled on pods/binding \"%s\": pod %s is already "
                                        "assigned to node \"%s\"",
                          name, name, pod->spec->node_name);
      goto done;
    }
    if (being_deleted(k, cur)) {
      rc = keel_error_set(&err, ESTALE, "Operation cannot be fulfilled on pods/binding \"%s\": pod %s is being deleted",
                          name, name);
      goto done;
    }
    if (!pod->spec) pod->spec = (Keel__Api__V1__PodSpec *)api_message_new(&keel__api__v1__pod_spec__descriptor);
    api_string_set(&pod->spec->node_name, b->target->name);
    /* PodScheduled=True, replacing an earlier PodScheduled condition. */
    if (!pod->status) pod->status = (Keel__Api__V1__PodStatus *)api_message_new(&keel__api__v1__pod_status__descriptor);
    Keel__Api__V1__PodCondition *cond = NULL;
    for (size_t i = 0; i < pod->status->n_conditions; i++)
      if (strcmp(pod->status->conditions[i]->type, "PodScheduled") == 0) cond = pod->status->conditions[i];
    if (!cond) {
      Keel__Api__V1__PodCondition **grown =
          realloc(pod->status->conditions, (pod->status->n_conditions + 1) * sizeof *grown);
      cond = (Keel__Api__V1__PodCondition *)api_message_new(&keel__api__v1__pod_condition__descriptor);
      if (!grown || !cond) {
        if (grown) pod->status->conditions = grown;
        if (cond) protobuf_c_message_free_unpacked(&cond->base, NULL);
        rc = keel_error_set(&err, ENOMEM, "out of memory");
        goto done;
      }
      pod->status->conditions = grown;
      pod->status->conditions[pod->status->n_conditions++] = cond;
      api_string_set(&cond->type, "PodScheduled");
    }
    api_string_set(&cond->status, "True");
    set_timestamp(&cond->last_transition_time, timestamp_at(time(NULL)));
    /* The bound pod as a whole must still be valid (a node name that is no
     * DNS subdomain would make every later update of it fail). */
    if (!old) {
      rc = keel_error_set(&err, ENOMEM, "out of memory");
      goto done;
    }
    if ((rc = api_validate(k, cur, old, "binding", &err)) < 0) goto done;
    if (dry_run(call)) {
      reply_object(call, k, cur, cur_rev);
      protobuf_c_message_free_unpacked(cur, NULL);
      protobuf_c_message_free_unpacked(old, NULL);
      return;
    }
    rc = objstore_update(a->store, k, cur, cur_rev, NULL, &rev, &err);
    if (rc == -ESTALE) {
      protobuf_c_message_free_unpacked(cur, NULL);
      protobuf_c_message_free_unpacked(old, NULL);
      continue;
    }
    if (rc < 0) goto done;
    reply_object(call, k, cur, rev);
    protobuf_c_message_free_unpacked(cur, NULL);
    protobuf_c_message_free_unpacked(old, NULL);
    return;
  done:
    protobuf_c_message_free_unpacked(cur, NULL);
    if (old) protobuf_c_message_free_unpacked(old, NULL);
    return finish_rc(call, rc, &err);
  }
  respond_error(call, GRPC_STATUS_ABORTED, "pods/binding \"%s\": too many concurrent writers", name);
}

/* ---------------------------------------------------------------- Scale */

/* spec.replicas of a Deployment or ReplicaSet (both: Int32Value field 1). */
static Google__Protobuf__Int32Value **replicas_slot(const api_kind *k, ProtobufCMessage *obj) {
  ProtobufCMessage **spec = api_object_spec_slot(k, obj);
  if (!spec || !*spec) return NULL;
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name((*spec)->descriptor, "replicas");
  return f ? (Google__Protobuf__Int32Value **)((char *)*spec + f->offset) : NULL;
}

static char *selector_text(const api_kind *k, ProtobufCMessage *obj) {
  ProtobufCMessage **spec = api_object_spec_slot(k, obj);
  const ProtobufCFieldDescriptor *f =
      spec && *spec ? protobuf_c_message_descriptor_get_field_by_name((*spec)->descriptor, "selector") : NULL;
  const Keel__Api__V1__LabelSelector *ls = f ? *(Keel__Api__V1__LabelSelector **)((char *)*spec + f->offset) : NULL;
  if (!ls) return strdup("");
  const char **keys = calloc(ls->n_match_labels + 1, sizeof *keys), **vals = calloc(ls->n_match_labels + 1, sizeof *vals);
  labels_expression *ex = calloc(ls->n_match_expressions + 1, sizeof *ex);
  char *out = NULL;
  if (keys && vals && ex) {
    for (size_t i = 0; i < ls->n_match_labels; i++) {
      keys[i] = ls->match_labels[i]->key;
      vals[i] = ls->match_labels[i]->value;
    }
    for (size_t i = 0; i < ls->n_match_expressions; i++) {
      ex[i] = (labels_expression){.key = ls->match_expressions[i]->key,
                                  .op = ls->match_expressions[i]->operator_,
                                  .values = (const char *const *)ls->match_expressions[i]->values,
                                  .n_values = ls->match_expressions[i]->n_values};
    }
    labels_selector *sel = NULL;
    if (labels_selector_from_label_selector(keys, vals, ls->n_match_labels, ex, ls->n_match_expressions, &sel, NULL) == 0) {
      out = labels_selector_string(sel);
      labels_selector_free(sel);
    }
  }
  free(keys);
  free(vals);
  free(ex);
  return out ? out : strdup("");
}

static void reply_scale(const api_responder *call, const api_kind *k, ProtobufCMessage *obj, int64_t rev) {
  Keel__Api__V1__Scale sc = KEEL__API__V1__SCALE__INIT;
  Keel__Api__V1__ScaleSpec spec = KEEL__API__V1__SCALE_SPEC__INIT;
  Keel__Api__V1__ScaleStatus status = KEEL__API__V1__SCALE_STATUS__INIT;
  Keel__Api__V1__ObjectMeta meta = KEEL__API__V1__OBJECT_META__INIT;
  const Keel__Api__V1__ObjectMeta *om = api_object_meta(k, obj);
  char rv[24];
  snprintf(rv, sizeof rv, "%lld", (long long)rev);
  meta.name = om->name;
  meta.namespace_ = om->namespace_;
  meta.uid = om->uid;
  meta.resource_version = rv;
  meta.creation_timestamp = om->creation_timestamp;
  sc.api_version = "autoscaling/v1";
  sc.kind = "Scale";
  sc.metadata = &meta;
  Google__Protobuf__Int32Value **r = replicas_slot(k, obj);
  spec.replicas = r && *r ? (*r)->value : 1;
  ProtobufCMessage **st = api_object_status_slot(k, obj);
  if (st && *st) {
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name((*st)->descriptor, "replicas");
    if (f) status.replicas = *(int32_t *)((char *)*st + f->offset);
  }
  char *sel = selector_text(k, obj);
  status.selector = sel ? sel : "";
  sc.spec = &spec;
  sc.status = &status;
  call->object(call->arg, NULL, &sc.base);
  free(sel);
}

void apiserver_do_get_scale(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                            ProtobufCMessage *reqm) {
  const Keel__Api__V1__GetRequest *req = (const Keel__Api__V1__GetRequest *)reqm;
  keel_error err = {0};
  const char *ns = apiserver_request_namespace(k, req->namespace_);
  int rc = authorize(id, k, "get", "scale", ns, req->name, NULL, NULL, &err);
  if (rc < 0) return finish_rc(call, rc, &err);
  ProtobufCMessage *cur = NULL;
  int64_t rev;
  if ((rc = objstore_get(a->store, k, ns, req->name ? req->name : "", &cur, &rev, &err)) < 0)
    return finish_rc(call, rc, &err);
  reply_scale(call, k, cur, rev);
  protobuf_c_message_free_unpacked(cur, NULL);
}

void apiserver_do_update_scale(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                               ProtobufCMessage *reqm) {
  const Keel__Api__V1__Scale *req = (const Keel__Api__V1__Scale *)reqm;
  keel_error err = {0};
  const char *ns = apiserver_request_namespace(k, req->metadata ? req->metadata->namespace_ : NULL);
  const char *name = req->metadata ? req->metadata->name : NULL;
  if (!name || !*name) return (void)respond_error(call, GRPC_STATUS_INVALID_ARGUMENT, "metadata.name: Required value");
  char owner[300];
  snprintf(owner, sizeof owner, "%s \"%s\"", k->kind, name);
  int rc = api_validate_scale(owner, req, &err);
  if (rc < 0) return finish_rc(call, rc, &err);
  int64_t want_rv;
  bool has_rv;
  keel_error ignored;
  /* A resourceVersion that is no written version is no precondition here. */
  if (parse_rv(req->metadata->resource_version, &want_rv, &has_rv, &ignored) < 0 || want_rv == 0) has_rv = false;
  for (int attempt = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
    ProtobufCMessage *cur = NULL;
    int64_t cur_rev = 0, rev = 0;
    if ((rc = objstore_get(a->store, k, ns, name, &cur, &cur_rev, &err)) < 0) return finish_rc(call, rc, &err);
    if ((rc = authorize(id, k, "update", "scale", ns, name, NULL, NULL, &err)) < 0) goto done;
    if (has_rv && want_rv != cur_rev) {
      rc = conflict(&err, k, name);
      goto done;
    }
    Google__Protobuf__Int32Value **r = replicas_slot(k, cur);
    if (!r) {
      rc = keel_error_set(&err, EINVAL, "%s has no spec", owner);
      goto done;
    }
    if (!*r) {
      *r = malloc(sizeof **r);
      if (!*r) {
        rc = keel_error_set(&err, ENOMEM, "out of memory");
        goto done;
      }
      google__protobuf__int32_value__init(*r);
    }
    int32_t want = req->spec ? req->spec->replicas : 0;
    if ((*r)->value != want) {
      (*r)->value = want;
      api_object_meta(k, cur)->generation++;
    }
    if (dry_run(call)) {
      reply_scale(call, k, cur, cur_rev);
      protobuf_c_message_free_unpacked(cur, NULL);
      return;
    }
    rc = objstore_update(a->store, k, cur, cur_rev, NULL, &rev, &err);
    if (rc == -ESTALE && !has_rv) {
      protobuf_c_message_free_unpacked(cur, NULL);
      continue;
    }
    if (rc < 0) goto done;
    reply_scale(call, k, cur, rev);
    protobuf_c_message_free_unpacked(cur, NULL);
    return;
  done:
    protobuf_c_message_free_unpacked(cur, NULL);
    return finish_rc(call, rc, &err);
  }
  respond_error(call, GRPC_STATUS_ABORTED, "%s: too many concurrent writers", owner);
}
