/* common/kinds/kinds.c — the kind table and generic object access.
 *
 * The table is static; the field descriptors of the common fields (apiVersion,
 * kind, metadata, spec, status) are looked up once, on first use, under
 * pthread_once, so lookups afterwards are plain reads. */
#include "common/kinds/kinds.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "keel/api/v1/services.pb-c.h"

static const char *const pod_fields[] = {
    "spec.nodeName",      "spec.restartPolicy", "spec.schedulerName",       "spec.serviceAccountName",
    "spec.hostNetwork",   "status.phase",       "status.nominatedNodeName", "status.podIP",
    NULL,
};
static const char *const node_fields[] = {"spec.unschedulable", NULL};
static const char *const namespace_fields[] = {"status.phase", NULL};
static const char *const service_fields[] = {"spec.clusterIP", "spec.type", NULL};
static const char *const event_fields[] = {
    "involvedObject.kind",       "involvedObject.namespace",       "involvedObject.name",
    "involvedObject.uid",        "involvedObject.apiVersion",      "involvedObject.resourceVersion",
    "involvedObject.fieldPath",  "reason",                         "reportingComponent",
    "type",                      NULL,
};
static const char *const replicaset_fields[] = {"status.replicas", NULL};
static const char *const no_fields[] = {NULL};

#define KIND(K, RES, SING, SHORT, GROUP, APIV, NS, SUB, OBJ, SVC, FIELDS)                       \
  {                                                                                          \
    .kind = K, .resource = RES, .singular = SING, .short_names = SHORT, .group = GROUP,      \
    .api_version = APIV, .namespaced = NS, .subresources = SUB,                              \
    .object = &keel__api__v1__##OBJ##__descriptor,                                           \
    .list = &keel__api__v1__##OBJ##_list__descriptor,                                        \
    .watch_event = &keel__api__v1__##OBJ##_watch_event__descriptor,                          \
    .service = &keel__api__v1__##SVC##__descriptor, .selectable_fields = FIELDS,             \
  }

static api_kind kind_table[] = {
    KIND("Namespace", "namespaces", "namespace", "ns", "", "v1", false, API_SUB_STATUS, namespace,
         namespaces, namespace_fields),
    KIND("Node", "nodes", "node", "no", "", "v1", false, API_SUB_STATUS, node, nodes, node_fields),
    KIND("Pod", "pods", "pod", "po", "", "v1", true, API_SUB_STATUS | API_SUB_BIND | API_SUB_LOG | API_SUB_EXEC, pod, pods,
         pod_fields),
    KIND("Service", "services", "service", "svc", "", "v1", true, API_SUB_STATUS, service, services,
         service_fields),
    KIND("Endpoints", "endpoints", "endpoints", "ep", "", "v1", true, 0, endpoints, endpoints_service,
         no_fields),
    KIND("Event", "events", "event", "ev", "", "v1", true, 0, event, events, event_fields),
    KIND("ReplicaSet", "replicasets", "replicaset", "rs", "apps", "apps/v1", true,
         API_SUB_STATUS | API_SUB_SCALE, replica_set, replica_sets, replicaset_fields),
    KIND("Deployment", "deployments", "deployment", "deploy", "apps", "apps/v1", true,
         API_SUB_STATUS | API_SUB_SCALE, deployment, deployments, no_fields),
    KIND("Lease", "leases", "lease", "", "coordination.k8s.io", "coordination.k8s.io/v1", true, 0,
         lease, leases, no_fields),
};

static pthread_once_t kinds_once = PTHREAD_ONCE_INIT;

static void kinds_init(void) {
  for (size_t i = 0; i < sizeof kind_table / sizeof kind_table[0]; i++) {
    api_kind *k = &kind_table[i];
    k->f_api_version = protobuf_c_message_descriptor_get_field_by_name(k->object, "api_version");
    k->f_kind = protobuf_c_message_descriptor_get_field_by_name(k->object, "kind");
    k->f_metadata = protobuf_c_message_descriptor_get_field_by_name(k->object, "metadata");
    k->f_spec = protobuf_c_message_descriptor_get_field_by_name(k->object, "spec");
    k->f_status = protobuf_c_message_descriptor_get_field_by_name(k->object, "status");
  }
}

const api_kind *api_kinds(size_t *n) {
  pthread_once(&kinds_once, kinds_init);
  *n = sizeof kind_table / sizeof kind_table[0];
  return kind_table;
}

const api_kind *api_kind_by_resource(const char *resource) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(ks[i].resource, resource) == 0) return &ks[i];
  return NULL;
}

static bool in_comma_list(const char *list, const char *name) {
  size_t len = strlen(name);
  for (const char *p = list; *p;) {
    const char *end = strchr(p, ',');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    if (n == len && strncasecmp(p, name, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

const api_kind *api_kind_by_name(const char *name) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  if (!name || !*name) return NULL;
  for (size_t i = 0; i < n; i++) {
    const api_kind *k = &ks[i];
    if (strcasecmp(k->kind, name) == 0 || strcasecmp(k->resource, name) == 0 ||
        strcasecmp(k->singular, name) == 0 || in_comma_list(k->short_names, name))
      return k;
  }
  return NULL;
}

const api_kind *api_kind_by_service(const char *full_service_name) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(ks[i].service->name, full_service_name) == 0) return &ks[i];
  return NULL;
}

const api_kind *api_kind_by_object(const ProtobufCMessageDescriptor *desc) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++)
    if (ks[i].object == desc) return &ks[i];
  return NULL;
}

/* The address of a field's storage inside a message. */
static void *field_slot(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  return (char *)msg + f->offset;
}

Keel__Api__V1__ObjectMeta *api_object_meta(const api_kind *k, const ProtobufCMessage *obj) {
  return *(Keel__Api__V1__ObjectMeta **)field_slot(obj, k->f_metadata);
}

Keel__Api__V1__ObjectMeta *api_object_meta_ensure(const api_kind *k, ProtobufCMessage *obj) {
  Keel__Api__V1__ObjectMeta **slot = field_slot(obj, k->f_metadata);
  if (!*slot) *slot = (Keel__Api__V1__ObjectMeta *)api_message_new(&keel__api__v1__object_meta__descriptor);
  return *slot;
}

ProtobufCMessage **api_object_spec_slot(const api_kind *k, ProtobufCMessage *obj) {
  return k->f_spec ? field_slot(obj, k->f_spec) : NULL;
}

ProtobufCMessage **api_object_status_slot(const api_kind *k, ProtobufCMessage *obj) {
  return k->f_status ? field_slot(obj, k->f_status) : NULL;
}

bool api_message_is_conflict(const char *message) {
  return message && (strncmp(message, "Operation cannot be fulfilled", 29) == 0 ||
                     strncmp(message, "Precondition failed", 19) == 0);
}

void api_string_set(char **slot, const char *value) {
  /* Copy first: value may be the string being replaced. */
  char *copy = value && *value ? strdup(value) : NULL;
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = copy ? copy : (char *)protobuf_c_empty_string;
}

void api_object_set_type_meta(const api_kind *k, ProtobufCMessage *obj) {
  api_string_set(field_slot(obj, k->f_api_version), k->api_version);
  api_string_set(field_slot(obj, k->f_kind), k->kind);
}

void api_object_clear_type_meta(const api_kind *k, ProtobufCMessage *obj) {
  api_string_set(field_slot(obj, k->f_api_version), NULL);
  api_string_set(field_slot(obj, k->f_kind), NULL);
}

/* "podIP" matches "pod_ip": equal ignoring case and underscores. */
static bool segment_matches(const char *seg, size_t seglen, const char *field_name) {
  size_t i = 0;
  for (const char *p = field_name; *p; p++) {
    if (*p == '_') continue;
    if (i >= seglen) return false;
    char a = seg[i++], b = *p;
    if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
    if (b >= 'A' && b <= 'Z') b = (char)(b - 'A' + 'a');
    if (a != b) return false;
  }
  return i == seglen;
}

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *d, const char *seg,
                                                  size_t seglen) {
  for (unsigned i = 0; i < d->n_fields; i++)
    if (segment_matches(seg, seglen, d->fields[i].name)) return &d->fields[i];
  return NULL;
}

const char *api_object_field_text(const api_kind *k, const ProtobufCMessage *obj, const char *path,
                                  char *buf, size_t buflen) {
  const ProtobufCMessageDescriptor *d = k->object;
  const ProtobufCMessage *m = obj;
  const char *p = path;
  if (buflen == 0) return NULL;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t seglen = dot ? (size_t)(dot - p) : strlen(p);
    const ProtobufCFieldDescriptor *f = find_field(d, p, seglen);
    if (!f || f->label == PROTOBUF_C_LABEL_REPEATED) return NULL;
    if (dot) {
      if (f->type != PROTOBUF_C_TYPE_MESSAGE) return NULL;
      d = f->descriptor;
      /* An unset parent reads as the default of every field below it. */
      m = m ? *(const ProtobufCMessage **)field_slot(m, f) : NULL;
      p = dot + 1;
      continue;
    }
    const void *slot = m ? field_slot(m, f) : NULL;
    switch (f->type) {
      case PROTOBUF_C_TYPE_STRING: {
        const char *s = slot ? *(const char *const *)slot : "";
        snprintf(buf, buflen, "%s", s ? s : "");
        return buf;
      }
      case PROTOBUF_C_TYPE_BOOL:
        snprintf(buf, buflen, "%s", slot && *(const protobuf_c_boolean *)slot ? "true" : "false");
        return buf;
      case PROTOBUF_C_TYPE_INT32:
      case PROTOBUF_C_TYPE_SINT32:
      case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, buflen, "%" PRId32, slot ? *(const int32_t *)slot : 0);
        return buf;
      case PROTOBUF_C_TYPE_INT64:
      case PROTOBUF_C_TYPE_SINT64:
      case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, buflen, "%" PRId64, slot ? *(const int64_t *)slot : 0);
        return buf;
      default:
        return NULL;
    }
  }
}

bool api_kind_field_selectable(const api_kind *k, const char *field) {
  if (strcmp(field, "metadata.name") == 0) return true;
  if (strcmp(field, "metadata.namespace") == 0) return k->namespaced;
  for (const char *const *f = k->selectable_fields; *f; f++)
    if (strcmp(*f, field) == 0) return true;
  return false;
}

ProtobufCMessage *api_message_new(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *m = malloc(desc->sizeof_message);
  if (m) protobuf_c_message_init(desc, m);
  return m;
}

ProtobufCMessage *api_message_clone(const ProtobufCMessage *msg) {
  size_t len = protobuf_c_message_get_packed_size(msg);
  uint8_t small[4096];
  uint8_t *buf = len <= sizeof small ? small : malloc(len);
  if (!buf) return NULL;
  protobuf_c_message_pack(msg, buf);
  ProtobufCMessage *copy = protobuf_c_message_unpack(msg->descriptor, NULL, len, buf);
  if (buf != small) free(buf);
  return copy;
}

void api_message_strip_unknown(ProtobufCMessage *msg) {
  if (!msg) return;
  for (unsigned i = 0; i < msg->n_unknown_fields; i++) free(msg->unknown_fields[i].data);
  free(msg->unknown_fields);
  msg->unknown_fields = NULL;
  msg->n_unknown_fields = 0;
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    void *slot = (char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)((char *)msg + f->quantifier_offset);
      ProtobufCMessage **items = *(ProtobufCMessage ***)slot;
      for (size_t j = 0; j < n; j++) api_message_strip_unknown(items[j]);
    } else {
      api_message_strip_unknown(*(ProtobufCMessage **)slot);
    }
  }
}

/* A map field: repeated XxxEntry messages with key (1) and value (2). */
static bool is_map_entry(const ProtobufCMessageDescriptor *d) {
  size_t len = strlen(d->name);
  return d->n_fields == 2 && len > 5 && strcmp(d->name + len - 5, "Entry") == 0 && d->fields[0].id == 1 &&
         strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 && strcmp(d->fields[1].name, "value") == 0;
}

/* Keeps the last entry for each key of a map field (string keys; other key
 * types compare their raw storage). */
static void dedupe_map(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f) {
  size_t *n = (size_t *)((char *)msg + f->quantifier_offset);
  ProtobufCMessage **items = *(ProtobufCMessage ***)((char *)msg + f->offset);
  const ProtobufCFieldDescriptor *kf = &((const ProtobufCMessageDescriptor *)f->descriptor)->fields[0];
  size_t out = 0;
  for (size_t i = 0; i < *n; i++) {
    bool later = false;
    for (size_t j = i + 1; j < *n && !later; j++) {
      const void *a = (const char *)items[i] + kf->offset, *b = (const char *)items[j] + kf->offset;
      if (kf->type == PROTOBUF_C_TYPE_STRING) {
        const char *sa = *(const char *const *)a, *sb = *(const char *const *)b;
        later = strcmp(sa ? sa : "", sb ? sb : "") == 0;
      } else if (kf->type == PROTOBUF_C_TYPE_INT64 || kf->type == PROTOBUF_C_TYPE_UINT64 ||
                 kf->type == PROTOBUF_C_TYPE_SINT64 || kf->type == PROTOBUF_C_TYPE_FIXED64 ||
                 kf->type == PROTOBUF_C_TYPE_SFIXED64) {
        later = memcmp(a, b, 8) == 0;
      } else if (kf->type == PROTOBUF_C_TYPE_BOOL) {
        later = *(const protobuf_c_boolean *)a == *(const protobuf_c_boolean *)b;
      } else {
        later = memcmp(a, b, 4) == 0;
      }
    }
    if (later) protobuf_c_message_free_unpacked(items[i], NULL);
    else items[out++] = items[i];
  }
  *n = out;
}

void api_message_normalize(ProtobufCMessage *msg) {
  if (!msg) return;
  api_message_strip_unknown(msg);
  const ProtobufCMessageDescriptor *d = msg->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    void *slot = (char *)msg + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      if (is_map_entry(f->descriptor)) dedupe_map(msg, f);
      size_t n = *(size_t *)((char *)msg + f->quantifier_offset);
      ProtobufCMessage **items = *(ProtobufCMessage ***)slot;
      for (size_t j = 0; j < n; j++) api_message_normalize(items[j]);
    } else {
      api_message_normalize(*(ProtobufCMessage **)slot);
    }
  }
}
