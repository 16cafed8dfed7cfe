/* services/apiserver/fuzz/api_fuzz_seeds.c — the built-in seeds (api_fuzz.h):
 * the manifests of seeds.json (embedded at build time) as JSON and as
 * protobuf, and requests with the selectors kubectl users write. */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "services/apiserver/fuzz/api_fuzz.h"

extern const unsigned char api_fuzz_seeds_json[];
extern const unsigned long api_fuzz_seeds_json_len;

#define MAX_KINDS 64

typedef struct manifest {
  size_t kind_index;
  char *json; /* compact */
  ProtobufCMessage *obj;
} manifest;

static manifest *g_manifests;
static size_t g_n;
/* The decoded manifests by kind index, for api_fuzz_objects. */
static ProtobufCMessage **g_by_kind[MAX_KINDS];
static size_t g_n_by_kind[MAX_KINDS];

static void load(void) {
  if (g_manifests) return;
  json_error_t je;
  json_t *all = json_loadb((const char *)api_fuzz_seeds_json, api_fuzz_seeds_json_len, 0, &je);
  if (!json_is_array(all)) {
    fprintf(stderr, "api_fuzz: seeds.json:%d:%d: %s\n", je.line, je.column, je.text);
    abort();
  }
  size_t nk;
  const api_kind *kinds = api_kinds(&nk);
  if (nk > MAX_KINDS) abort();
  g_n = json_array_size(all);
  g_manifests = calloc(g_n ? g_n : 1, sizeof *g_manifests);
  if (!g_manifests) abort();
  for (size_t i = 0; i < g_n; i++) {
    json_t *m = json_array_get(all, i);
    const api_kind *k = api_kind_by_name(json_string_value(json_object_get(m, "kind")));
    keel_error err = {0};
    ProtobufCMessage *obj = k ? protojson_from_json(api_fuzz_protojson(), k->object, m, &err) : NULL;
    char *text = json_dumps(m, JSON_COMPACT);
    if (!obj || !text) {
      fprintf(stderr, "api_fuzz: seeds.json[%zu]: %s\n", i, k ? err.message : "unknown kind");
      abort();
    }
    size_t ki = (size_t)(k - kinds);
    g_manifests[i] = (manifest){.kind_index = ki, .json = text, .obj = obj};
    ProtobufCMessage **grown = realloc(g_by_kind[ki], (g_n_by_kind[ki] + 1) * sizeof *grown);
    if (!grown) abort();
    grown[g_n_by_kind[ki]++] = obj;
    g_by_kind[ki] = grown;
  }
  json_decref(all);
}

ProtobufCMessage *const *api_fuzz_objects(const api_kind *k, size_t *n) {
  load();
  size_t nk;
  size_t ki = (size_t)(k - api_kinds(&nk));
  *n = g_n_by_kind[ki];
  return g_by_kind[ki];
}

/* ---------------------------------------------------------------- framing */

typedef struct sink {
  void (*add)(void *arg, const uint8_t *data, size_t len);
  void *arg;
} sink;

/* Emits header bytes followed by up to two parts. */
static void emit(const sink *s, const uint8_t *head, size_t nhead, const uint8_t *a, size_t na,
                 const uint8_t *b, size_t nb) {
  uint8_t *buf = malloc(nhead + na + nb + 1);
  if (!buf) abort();
  memcpy(buf, head, nhead);
  if (na) memcpy(buf + nhead, a, na);
  if (nb) memcpy(buf + nhead + na, b, nb);
  s->add(s->arg, buf, nhead + na + nb);
  free(buf);
}

static uint8_t *pack_msg(const ProtobufCMessage *m, size_t *n) {
  *n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*n ? *n : 1);
  if (!b) abort();
  protobuf_c_message_pack(m, b);
  return b;
}

/* Path 0: the object, and with a stored object (old may be NULL). */
static void emit_object(const sink *s, size_t ki, const ProtobufCMessage *obj, const ProtobufCMessage *old) {
  size_t n, nold = 0;
  uint8_t *b = pack_msg(obj, &n), *bold = old ? pack_msg(old, &nold) : NULL;
  if (n <= 0xffff) {
    uint8_t head[3] = {API_FUZZ_HEADER(API_FUZZ_PATH_PROTOBUF, ki), (uint8_t)n, (uint8_t)(n >> 8)};
    emit(s, head, sizeof head, b, n, bold, nold);
  }
  free(bold);
  free(b);
}

static void emit_request(const sink *s, size_t ki, int type, const ProtobufCMessage *req) {
  size_t n;
  uint8_t *b = pack_msg(req, &n);
  uint8_t head[2] = {API_FUZZ_HEADER(API_FUZZ_PATH_REQUEST, ki), (uint8_t)type};
  emit(s, head, sizeof head, b, n, NULL, 0);
  free(b);
}

/* ---------------------------------------------------------------- requests */

static const char *const label_selectors[] = {
    "",
    "app=redis",
    "app in (redis, guestbook),tier notin (frontend)",
    "!canary,role",
    "environment==production,tier!=backend",
    "pod-template-hash=5d8f7c9b6",
    "kubernetes.io/hostname=worker-2,node-role.kubernetes.io/worker",
    "partition in (),revision>2,generation<10",
};

static const char *const field_selectors[] = {
    "",
    "metadata.name=frontend",
    "metadata.namespace!=kube-system",
    "spec.nodeName=worker-2",
    "status.phase=Running,spec.nodeName!=",
    "spec.unschedulable==true",
    "spec.clusterIP=None,spec.type!=NodePort",
    "status.replicas=1,metadata.name=a\\,b\\=c",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void emit_requests(const sink *s, size_t ki, const api_kind *k) {
  size_t nobjs;
  ProtobufCMessage *const *objs = api_fuzz_objects(k, &nobjs);
  const Keel__Api__V1__ObjectMeta *meta = nobjs ? api_object_meta(k, objs[0]) : NULL;
  char *ns = (char *)(k->namespaced ? (meta && *meta->namespace_ ? meta->namespace_ : "default") : "");
  char *name = (char *)(meta && *meta->name ? meta->name : "web-0");

  Keel__Api__V1__GetRequest get = KEEL__API__V1__GET_REQUEST__INIT;
  get.namespace_ = ns;
  get.name = name;
  get.resource_version = "0";
  emit_request(s, ki, API_FUZZ_REQ_GET, &get.base);

  for (size_t i = 0; i < NELEM(label_selectors); i++) {
    Keel__Api__V1__ListRequest list = KEEL__API__V1__LIST_REQUEST__INIT;
    list.namespace_ = i % 2 ? ns : "";
    list.label_selector = (char *)label_selectors[i];
    list.field_selector = (char *)field_selectors[(i + ki) % NELEM(field_selectors)];
    list.resource_version = i % 3 ? "" : "4821";
    list.resource_version_match = i % 3 ? "" : "NotOlderThan";
    emit_request(s, ki, API_FUZZ_REQ_LIST, &list.base);
  }
  for (size_t i = 0; i < 3; i++) {
    Keel__Api__V1__WatchRequest watch = KEEL__API__V1__WATCH_REQUEST__INIT;
    watch.namespace_ = ns;
    watch.label_selector = (char *)label_selectors[(2 * i + 1) % NELEM(label_selectors)];
    watch.field_selector = (char *)field_selectors[(3 * i + ki) % NELEM(field_selectors)];
    watch.resource_version = "88231";
    watch.allow_watch_bookmarks = i == 1;
    watch.timeout_seconds = 300;
    emit_request(s, ki, API_FUZZ_REQ_WATCH, &watch.base);
  }

  Google__Protobuf__Int64Value grace = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
  grace.value = 30;
  Keel__Api__V1__Preconditions pre = KEEL__API__V1__PRECONDITIONS__INIT;
  pre.uid = meta && *meta->uid ? meta->uid : "4f3c2b1a-0e9d-4c8b-a7f6-5e4d3c2b1a09";
  pre.resource_version = "88231";
  Keel__Api__V1__DeleteRequest del = KEEL__API__V1__DELETE_REQUEST__INIT;
  del.namespace_ = ns;
  del.name = name;
  del.grace_period_seconds = &grace;
  del.preconditions = &pre;
  del.propagation_policy = "Foreground";
  emit_request(s, ki, API_FUZZ_REQ_DELETE, &del.base);

  if (k->subresources & API_SUB_SCALE) {
    Keel__Api__V1__ObjectMeta sm = KEEL__API__V1__OBJECT_META__INIT;
    sm.name = name;
    sm.namespace_ = ns;
    sm.resource_version = "90412";
    Keel__Api__V1__ScaleSpec spec = KEEL__API__V1__SCALE_SPEC__INIT;
    spec.replicas = 5;
    Keel__Api__V1__ScaleStatus status = KEEL__API__V1__SCALE_STATUS__INIT;
    status.replicas = 3;
    status.selector = "app=redis,role in (follower),!canary";
    Keel__Api__V1__Scale scale = KEEL__API__V1__SCALE__INIT;
    scale.api_version = "autoscaling/v1";
    scale.kind = "Scale";
    scale.metadata = &sm;
    scale.spec = &spec;
    scale.status = &status;
    emit_request(s, ki, API_FUZZ_REQ_SCALE, &scale.base);
  }
}

/* ---------------------------------------------------------------- all */

void api_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg) {
  load();
  sink s = {add, arg};
  for (size_t i = 0; i < g_n; i++) {
    const manifest *m = &g_manifests[i];
    uint8_t head = API_FUZZ_HEADER(API_FUZZ_PATH_JSON, m->kind_index);
    emit(&s, &head, 1, (const uint8_t *)m->json, strlen(m->json), NULL, 0);
    emit_object(&s, m->kind_index, m->obj, NULL);
    /* Updates: against each manifest of the same kind, itself included. */
    for (size_t j = 0; j < g_n; j++)
      if (g_manifests[j].kind_index == m->kind_index)
        emit_object(&s, m->kind_index, m->obj, g_manifests[j].obj);
  }
  size_t nk;
  const api_kind *kinds = api_kinds(&nk);
  for (size_t ki = 0; ki < nk; ki++) emit_requests(&s, ki, &kinds[ki]);
}
