/* bench/apiserver/pod.c — the benchmark pod (see load.h): the shape of a pod
 * a Deployment's ReplicaSet creates, so the apiserver validates, defaults and
 * stores what it would in a real cluster. */
#include <stdio.h>
#include <string.h>

#include "bench/apiserver/load.h"

static void label(Keel__Api__V1__ObjectMeta__LabelsEntry *e, const char *k, char *v) {
  keel__api__v1__object_meta__labels_entry__init(e);
  e->key = (char *)k;
  e->value = v;
}

static void env(Keel__Api__V1__EnvVar *e, const char *name, const char *value) {
  keel__api__v1__env_var__init(e);
  e->name = (char *)name;
  e->value = (char *)value;
}

void bench_pod_init(bench_pod *p, const char *ns) {
  memset(p, 0, sizeof *p);
  keel__api__v1__pod__init(&p->pod);
  keel__api__v1__object_meta__init(&p->meta);
  p->pod.metadata = &p->meta;
  p->pod.spec = &p->spec;
  p->meta.name = p->name;
  p->meta.namespace_ = (char *)ns;

  label(&p->labels[0], "app", "web-frontend");
  label(&p->labels[1], "tier", "frontend");
  label(&p->labels[2], "pod-template-hash", "7d9c8b6f5");
  label(&p->labels[3], "shard", p->shard);
  for (int i = 0; i < 4; i++) p->label_ptrs[i] = &p->labels[i];
  p->meta.labels = p->label_ptrs;
  p->meta.n_labels = 4;
  keel__api__v1__object_meta__annotations_entry__init(&p->ann);
  p->ann.key = SEQ_ANNOTATION;
  p->ann.value = p->seq;
  p->ann_ptrs[0] = &p->ann;

  keel__api__v1__owner_reference__init(&p->owner);
  google__protobuf__bool_value__init(&p->yes);
  p->yes.value = 1;
  p->owner.api_version = "apps/v1";
  p->owner.kind = "ReplicaSet";
  p->owner.name = "web-frontend-7d9c8b6f5";
  p->owner.uid = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  p->owner.controller = &p->yes;
  p->owner.block_owner_deletion = &p->yes;
  p->owner_ptrs[0] = &p->owner;
  p->meta.owner_references = p->owner_ptrs;
  p->meta.n_owner_references = 1;

  Keel__Api__V1__Container *c = &p->container;
  keel__api__v1__container__init(c);
  c->name = "web";
  c->image = "registry.example.com/shop/web-frontend:v2.14.3";
  c->image_pull_policy = "IfNotPresent";
  p->args[0] = "--listen=:8080";
  p->args[1] = "--metrics-listen=:9090";
  c->args = p->args;
  c->n_args = 2;
  const char *port_names[2] = {"http", "metrics"};
  const int port_numbers[2] = {8080, 9090};
  for (int i = 0; i < 2; i++) {
    keel__api__v1__container_port__init(&p->ports[i]);
    p->ports[i].name = (char *)port_names[i];
    p->ports[i].container_port = port_numbers[i];
    p->ports[i].protocol = "TCP";
    p->port_ptrs[i] = &p->ports[i];
  }
  c->ports = p->port_ptrs;
  c->n_ports = 2;
  env(&p->env[0], "LOG_LEVEL", "info");
  env(&p->env[1], "UPSTREAM_URL", "http://catalog.shop.svc.cluster.local:8080");
  env(&p->env[2], "CACHE_TTL_SECONDS", "300");
  env(&p->env[3], "FEATURE_FLAGS", "checkout-v2,search-suggest");
  env(&p->env[4], "OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability.svc:4317");
  env(&p->env[5], "POD_NAME", "");
  keel__api__v1__env_var_source__init(&p->env_src);
  keel__api__v1__object_field_selector__init(&p->field_ref);
  p->field_ref.api_version = "v1";
  p->field_ref.field_path = "metadata.name";
  p->env_src.field_ref = &p->field_ref;
  p->env[5].value_from = &p->env_src;
  for (int i = 0; i < 6; i++) p->env_ptrs[i] = &p->env[i];
  c->env = p->env_ptrs;
  c->n_env = 6;
  keel__api__v1__volume_mount__init(&p->mount);
  p->mount.name = "cache";
  p->mount.mount_path = "/var/cache/web";
  p->mount_ptrs[0] = &p->mount;
  c->volume_mounts = p->mount_ptrs;
  c->n_volume_mounts = 1;

  keel__api__v1__resource_requirements__init(&p->res);
  const char *quantities[4] = {"250m", "256Mi", "1", "512Mi"};
  for (int i = 0; i < 4; i++) {
    keel__api__v1__quantity__init(&p->qty[i]);
    p->qty[i].string = (char *)quantities[i];
  }
  const char *resources[2] = {"cpu", "memory"};
  for (int i = 0; i < 2; i++) {
    keel__api__v1__resource_requirements__requests_entry__init(&p->requests[i]);
    p->requests[i].key = (char *)resources[i];
    p->requests[i].value = &p->qty[i];
    p->request_ptrs[i] = &p->requests[i];
    keel__api__v1__resource_requirements__limits_entry__init(&p->limits[i]);
    p->limits[i].key = (char *)resources[i];
    p->limits[i].value = &p->qty[2 + i];
    p->limit_ptrs[i] = &p->limits[i];
  }
  p->res.requests = p->request_ptrs;
  p->res.n_requests = 2;
  p->res.limits = p->limit_ptrs;
  p->res.n_limits = 2;
  c->resources = &p->res;

  keel__api__v1__probe__init(&p->readiness);
  keel__api__v1__httpget_action__init(&p->http_get);
  keel__api__v1__int_or_string__init(&p->probe_port);
  p->probe_port.type = 1;
  p->probe_port.str_val = "http";
  p->http_get.path = "/healthz";
  p->http_get.port = &p->probe_port;
  p->readiness.http_get = &p->http_get;
  p->readiness.period_seconds = 5;
  p->readiness.failure_threshold = 3;
  c->readiness_probe = &p->readiness;
  p->container_ptrs[0] = c;

  Keel__Api__V1__PodSpec *s = &p->spec;
  keel__api__v1__pod_spec__init(s);
  keel__api__v1__volume__init(&p->vol);
  keel__api__v1__empty_dir_volume_source__init(&p->empty_dir);
  p->vol.name = "cache";
  p->vol.empty_dir = &p->empty_dir;
  p->vol_ptrs[0] = &p->vol;
  s->volumes = p->vol_ptrs;
  s->n_volumes = 1;
  s->containers = p->container_ptrs;
  s->n_containers = 1;
  s->restart_policy = "Always";
  google__protobuf__int64_value__init(&p->grace);
  p->grace.value = 30;
  s->termination_grace_period_seconds = &p->grace;
  s->dns_policy = "ClusterFirst";
  s->service_account_name = "web-frontend";
  google__protobuf__int64_value__init(&p->tol_secs);
  p->tol_secs.value = 300;
  const char *taints[2] = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"};
  for (int i = 0; i < 2; i++) {
    keel__api__v1__toleration__init(&p->tol[i]);
    p->tol[i].key = (char *)taints[i];
    p->tol[i].operator_ = "Exists";
    p->tol[i].effect = "NoExecute";
    p->tol[i].toleration_seconds = &p->tol_secs;
    p->tol_ptrs[i] = &p->tol[i];
  }
  s->tolerations = p->tol_ptrs;
  s->n_tolerations = 2;
}

void bench_pod_set(bench_pod *p, const char *name, long index, const char *seq) {
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->shard, sizeof p->shard, "%ld", index % 10);
  if (seq) {
    snprintf(p->seq, sizeof p->seq, "%s", seq);
    p->meta.annotations = p->ann_ptrs;
    p->meta.n_annotations = 1;
  } else {
    p->meta.annotations = NULL;
    p->meta.n_annotations = 0;
  }
}
