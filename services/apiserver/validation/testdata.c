/* services/apiserver/validation/testdata.c — see testdata.h. */
#include "services/apiserver/validation/testdata.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/validation/validation.h"

static void *must(void *p) {
  if (!p) {
    fprintf(stderr, "testdata: out of memory\n");
    abort();
  }
  return p;
}

void *tnew(const ProtobufCMessageDescriptor *d) {
  ProtobufCMessage *m = must(malloc(d->sizeof_message));
  protobuf_c_message_init(d, m);
  return m;
}

void tstr(char **slot, const char *value) {
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = must(strdup(value));
}

void tstrs(size_t *n, char ***arr, const char *value) {
  *arr = must(realloc(*arr, (*n + 1) * sizeof **arr));
  (*arr)[(*n)++] = must(strdup(value));
}

void *tpush(size_t *n, void *arr_slot, void *item) {
  void ***arr = arr_slot;
  *arr = must(realloc(*arr, (*n + 1) * sizeof **arr));
  (*arr)[(*n)++] = item;
  return item;
}

Google__Protobuf__Int32Value *tint32(int32_t v) {
  Google__Protobuf__Int32Value *w = tnew(&google__protobuf__int32_value__descriptor);
  w->value = v;
  return w;
}

Google__Protobuf__Int64Value *tint64(int64_t v) {
  Google__Protobuf__Int64Value *w = tnew(&google__protobuf__int64_value__descriptor);
  w->value = v;
  return w;
}

Google__Protobuf__BoolValue *tbool(int v) {
  Google__Protobuf__BoolValue *w = tnew(&google__protobuf__bool_value__descriptor);
  w->value = v != 0;
  return w;
}

Keel__Api__V1__IntOrString *tios_int(int32_t v) {
  Keel__Api__V1__IntOrString *x = tnew(&keel__api__v1__int_or_string__descriptor);
  x->type = 0;
  x->int_val = v;
  return x;
}

Keel__Api__V1__IntOrString *tios_str(const char *s) {
  Keel__Api__V1__IntOrString *x = tnew(&keel__api__v1__int_or_string__descriptor);
  x->type = 1;
  tstr(&x->str_val, s);
  return x;
}

Keel__Api__V1__Quantity *tqty(const char *s) {
  Keel__Api__V1__Quantity *q = tnew(&keel__api__v1__quantity__descriptor);
  tstr(&q->string, s);
  return q;
}

/* Every string->string map entry has the layout {base, key, value}. */
typedef struct {
  ProtobufCMessage base;
  char *key;
  char *value;
} str_entry;

void tmap(size_t *n, void *arr_slot, const ProtobufCMessageDescriptor *entry_desc, const char *key,
          const char *value) {
  str_entry *e = tnew(entry_desc);
  tstr(&e->key, key);
  tstr(&e->value, value);
  tpush(n, arr_slot, e);
}

void tlimit(Keel__Api__V1__Container *c, const char *resource, const char *q) {
  if (!c->resources) c->resources = tnew(&keel__api__v1__resource_requirements__descriptor);
  Keel__Api__V1__ResourceRequirements__LimitsEntry *e =
      tnew(&keel__api__v1__resource_requirements__limits_entry__descriptor);
  tstr(&e->key, resource);
  e->value = tqty(q);
  TPUSH(c->resources, limits, e);
}

void trequest(Keel__Api__V1__Container *c, const char *resource, const char *q) {
  if (!c->resources) c->resources = tnew(&keel__api__v1__resource_requirements__descriptor);
  Keel__Api__V1__ResourceRequirements__RequestsEntry *e =
      tnew(&keel__api__v1__resource_requirements__requests_entry__descriptor);
  tstr(&e->key, resource);
  e->value = tqty(q);
  TPUSH(c->resources, requests, e);
}

Keel__Api__V1__ObjectMeta *tmeta(const char *name, const char *ns) {
  Keel__Api__V1__ObjectMeta *m = tnew(&keel__api__v1__object_meta__descriptor);
  if (name) tstr(&m->name, name);
  if (ns) tstr(&m->namespace_, ns);
  return m;
}

Keel__Api__V1__Container *tcontainer(const char *name, const char *image) {
  Keel__Api__V1__Container *c = tnew(&keel__api__v1__container__descriptor);
  tstr(&c->name, name);
  tstr(&c->image, image);
  return c;
}

Keel__Api__V1__ContainerPort *tport(const char *name, int32_t port) {
  Keel__Api__V1__ContainerPort *p = tnew(&keel__api__v1__container_port__descriptor);
  if (name) tstr(&p->name, name);
  p->container_port = port;
  return p;
}

Keel__Api__V1__Volume *tvolume_empty_dir(const char *name) {
  Keel__Api__V1__Volume *v = tnew(&keel__api__v1__volume__descriptor);
  tstr(&v->name, name);
  v->empty_dir = tnew(&keel__api__v1__empty_dir_volume_source__descriptor);
  return v;
}

Keel__Api__V1__Toleration *ttoleration(const char *key, const char *op, const char *value,
                                       const char *effect) {
  Keel__Api__V1__Toleration *t = tnew(&keel__api__v1__toleration__descriptor);
  if (key) tstr(&t->key, key);
  if (op) tstr(&t->operator_, op);
  if (value) tstr(&t->value, value);
  if (effect) tstr(&t->effect, effect);
  return t;
}

Keel__Api__V1__Probe *tprobe_http(const char *path, int32_t port) {
  Keel__Api__V1__Probe *p = tnew(&keel__api__v1__probe__descriptor);
  p->http_get = tnew(&keel__api__v1__httpget_action__descriptor);
  if (path) tstr(&p->http_get->path, path);
  p->http_get->port = tios_int(port);
  return p;
}

Keel__Api__V1__PodSpec *tpod_spec(void) {
  Keel__Api__V1__PodSpec *s = tnew(&keel__api__v1__pod_spec__descriptor);
  Keel__Api__V1__Container *c = TPUSH(s, containers, tcontainer("app", "nginx:1.25"));
  TPUSH(c, ports, tport("http", 80));
  tlimit(c, "cpu", "500m");
  tlimit(c, "memory", "128Mi");
  trequest(c, "cpu", "250m");
  TPUSH(s, volumes, tvolume_empty_dir("data"));
  Keel__Api__V1__VolumeMount *m = tnew(&keel__api__v1__volume_mount__descriptor);
  tstr(&m->name, "data");
  tstr(&m->mount_path, "/data");
  TPUSH(c, volume_mounts, m);
  c->readiness_probe = tprobe_http("/healthz", 80);
  return s;
}

Keel__Api__V1__PodTemplateSpec *ttemplate(const char *app) {
  Keel__Api__V1__PodTemplateSpec *t = tnew(&keel__api__v1__pod_template_spec__descriptor);
  t->metadata = tmeta(NULL, NULL);
  TLABEL(t->metadata, "app", app);
  t->spec = tpod_spec();
  return t;
}

Keel__Api__V1__ServicePort *tservice_port(const char *name, int32_t port) {
  Keel__Api__V1__ServicePort *p = tnew(&keel__api__v1__service_port__descriptor);
  if (name) tstr(&p->name, name);
  p->port = port;
  return p;
}

Keel__Api__V1__Pod *tpod(void) {
  Keel__Api__V1__Pod *p = tnew(&keel__api__v1__pod__descriptor);
  p->metadata = tmeta("web", "default");
  TLABEL(p->metadata, "app", "web");
  TANNOTATION(p->metadata, "example.com/owner", "team-a");
  p->spec = tpod_spec();
  return p;
}

Keel__Api__V1__Service *tservice(void) {
  Keel__Api__V1__Service *s = tnew(&keel__api__v1__service__descriptor);
  s->metadata = tmeta("web", "default");
  s->spec = tnew(&keel__api__v1__service_spec__descriptor);
  Keel__Api__V1__ServicePort *p = TPUSH(s->spec, ports, tservice_port("http", 80));
  p->target_port = tios_int(8080);
  tmap(&s->spec->n_selector, &s->spec->selector, &keel__api__v1__service_spec__selector_entry__descriptor,
       "app", "web");
  return s;
}

static Keel__Api__V1__LabelSelector *tselector(const char *app) {
  Keel__Api__V1__LabelSelector *sel = tnew(&keel__api__v1__label_selector__descriptor);
  tmap(&sel->n_match_labels, &sel->match_labels,
       &keel__api__v1__label_selector__match_labels_entry__descriptor, "app", app);
  return sel;
}

Keel__Api__V1__ReplicaSet *treplica_set(void) {
  Keel__Api__V1__ReplicaSet *rs = tnew(&keel__api__v1__replica_set__descriptor);
  rs->metadata = tmeta("web-rs", "default");
  rs->spec = tnew(&keel__api__v1__replica_set_spec__descriptor);
  rs->spec->replicas = tint32(3);
  rs->spec->selector = tselector("web");
  rs->spec->template_ = ttemplate("web");
  return rs;
}

Keel__Api__V1__Deployment *tdeployment(void) {
  Keel__Api__V1__Deployment *d = tnew(&keel__api__v1__deployment__descriptor);
  d->metadata = tmeta("web", "default");
  d->spec = tnew(&keel__api__v1__deployment_spec__descriptor);
  d->spec->replicas = tint32(2);
  d->spec->selector = tselector("web");
  d->spec->template_ = ttemplate("web");
  return d;
}

Keel__Api__V1__Node *tnode(void) {
  Keel__Api__V1__Node *n = tnew(&keel__api__v1__node__descriptor);
  n->metadata = tmeta("node-1", NULL);
  TLABEL(n->metadata, "kubernetes.io/hostname", "node-1");
  n->spec = tnew(&keel__api__v1__node_spec__descriptor);
  tstr(&n->spec->pod_cidr, "10.244.1.0/24");
  Keel__Api__V1__Taint *t = tnew(&keel__api__v1__taint__descriptor);
  tstr(&t->key, "dedicated");
  tstr(&t->value, "infra");
  tstr(&t->effect, "NoSchedule");
  TPUSH(n->spec, taints, t);
  n->status = tnew(&keel__api__v1__node_status__descriptor);
  Keel__Api__V1__NodeStatus__CapacityEntry *c = tnew(&keel__api__v1__node_status__capacity_entry__descriptor);
  tstr(&c->key, "cpu");
  c->value = tqty("4");
  TPUSH(n->status, capacity, c);
  Keel__Api__V1__NodeStatus__AllocatableEntry *a =
      tnew(&keel__api__v1__node_status__allocatable_entry__descriptor);
  tstr(&a->key, "memory");
  a->value = tqty("7Gi");
  TPUSH(n->status, allocatable, a);
  Keel__Api__V1__NodeAddress *addr = tnew(&keel__api__v1__node_address__descriptor);
  tstr(&addr->type, "InternalIP");
  tstr(&addr->address, "10.0.0.11");
  TPUSH(n->status, addresses, addr);
  return n;
}

Keel__Api__V1__Namespace *tnamespace(void) {
  Keel__Api__V1__Namespace *ns = tnew(&keel__api__v1__namespace__descriptor);
  ns->metadata = tmeta("team-a", NULL);
  return ns;
}

Keel__Api__V1__Endpoints *tendpoints(void) {
  Keel__Api__V1__Endpoints *ep = tnew(&keel__api__v1__endpoints__descriptor);
  ep->metadata = tmeta("web", "default");
  Keel__Api__V1__EndpointSubset *ss = TPUSH(ep, subsets, tnew(&keel__api__v1__endpoint_subset__descriptor));
  Keel__Api__V1__EndpointAddress *a =
      TPUSH(ss, addresses, tnew(&keel__api__v1__endpoint_address__descriptor));
  tstr(&a->ip, "10.244.1.5");
  Keel__Api__V1__EndpointPort *p = TPUSH(ss, ports, tnew(&keel__api__v1__endpoint_port__descriptor));
  tstr(&p->name, "http");
  p->port = 8080;
  tstr(&p->protocol, "TCP");
  return ep;
}

Keel__Api__V1__Event *tevent(void) {
  Keel__Api__V1__Event *ev = tnew(&keel__api__v1__event__descriptor);
  ev->metadata = tmeta("web.17a8f9c", "default");
  ev->involved_object = tnew(&keel__api__v1__object_reference__descriptor);
  tstr(&ev->involved_object->kind, "Pod");
  tstr(&ev->involved_object->name, "web");
  tstr(&ev->involved_object->namespace_, "default");
  tstr(&ev->reason, "Scheduled");
  tstr(&ev->type, "Normal");
  ev->count = 1;
  return ev;
}

Keel__Api__V1__Lease *tlease(void) {
  Keel__Api__V1__Lease *l = tnew(&keel__api__v1__lease__descriptor);
  l->metadata = tmeta("keel-scheduler", "kube-system");
  l->spec = tnew(&keel__api__v1__lease_spec__descriptor);
  l->spec->lease_duration_seconds = tint32(15);
  return l;
}

void tfree(void *msg) {
  if (msg) protobuf_c_message_free_unpacked(msg, NULL);
}

const api_kind *tkind_of(enum tkind k) {
  static const char *const names[] = {"Pod",       "Service",   "ReplicaSet", "Deployment", "Node",
                                      "Namespace", "Endpoints", "Event",      "Lease"};
  return must((void *)api_kind_by_name(names[k]));
}

ProtobufCMessage *tbuild(enum tkind k) {
  switch (k) {
  case K_POD:
    return &tpod()->base;
  case K_SVC:
    return &tservice()->base;
  case K_RS:
    return &treplica_set()->base;
  case K_DEP:
    return &tdeployment()->base;
  case K_NODE:
    return &tnode()->base;
  case K_NS:
    return &tnamespace()->base;
  case K_EP:
    return &tendpoints()->base;
  case K_EV:
    return &tevent()->base;
  case K_LEASE:
    return &tlease()->base;
  }
  abort();
}

ProtobufCMessage *tvalid(enum tkind k) {
  ProtobufCMessage *o = tbuild(k);
  api_default(tkind_of(k), o);
  return o;
}

const char *tprefix(enum tkind k) {
  switch (k) {
  case K_POD:
    return "Pod \"web\" is invalid: ";
  case K_SVC:
    return "Service \"web\" is invalid: ";
  case K_RS:
    return "ReplicaSet.apps \"web-rs\" is invalid: ";
  case K_DEP:
    return "Deployment.apps \"web\" is invalid: ";
  case K_NODE:
    return "Node \"node-1\" is invalid: ";
  case K_NS:
    return "Namespace \"team-a\" is invalid: ";
  case K_EP:
    return "Endpoints \"web\" is invalid: ";
  case K_EV:
    return "Event \"web.17a8f9c\" is invalid: ";
  case K_LEASE:
    return "Lease.coordination.k8s.io \"keel-scheduler\" is invalid: ";
  }
  return "";
}

ProtobufCMessage *tclone(const ProtobufCMessage *o) { return must(api_message_clone(o)); }

int tvalidate(enum tkind k, const ProtobufCMessage *o, const ProtobufCMessage *old, const char *sub,
              keel_error *err) {
  keel_error_clear(err);
  return api_validate(tkind_of(k), o, old, sub, err);
}
