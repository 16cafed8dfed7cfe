/* services/apiserver/validation/defaults.c — Kubernetes' SetDefaults_* for Keel's kinds.
 *
 * Defaulting runs before validation on Create, Update and UpdateStatus and only
 * fills what is unset, so running it twice changes nothing. Everything it adds
 * is malloc'ed (strings with strdup, sub-messages with api_message_new) so
 * protobuf_c_message_free_unpacked(obj, NULL) frees it; a string slot holding
 * protobuf_c_empty_string is replaced, never freed. When an allocation fails
 * the field is simply left unset: validation then reports it, which is better
 * than a daemon that aborts.
 *
 * What follows Kubernetes (pkg/apis/core/v1/defaults.go, apps/v1/defaults.go):
 *   - the pod-level-only rule (limits copied into missing requests) applies to
 *     Pods, not to templates, exactly as SetDefaults_Pod does;
 *   - a volume with no source becomes an emptyDir (SetDefaults_Volume);
 *   - with hostNetwork, a container port's hostPort defaults to its containerPort.
 * What is Keel's own: a toleration's empty operator is written as "Equal"
 * (Kubernetes treats "" as Equal without writing it), and a Namespace gets the
 * "kubernetes" spec finalizer here (Kubernetes does it in the create strategy)
 * unless it is already terminating, so a controller that removed it while
 * finalizing does not see it come back. */
#include <stdlib.h>
#include <string.h>

#include "common/kinds/kinds.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "services/apiserver/validation/internal.h"
#include "services/apiserver/validation/validation.h"

/* ---------------------------------------------------------------- helpers */

static bool str_empty(const char *s) { return s == NULL || s[0] == '\0'; }

/* Replaces an empty string field with a copy of value. */
static void default_str(char **slot, const char *value) {
  if (!str_empty(*slot)) return;
  char *copy = strdup(value);
  if (!copy) return;
  if (*slot && *slot != protobuf_c_empty_string) free(*slot);
  *slot = copy;
}

static Google__Protobuf__Int64Value *new_int64(int64_t v) {
  Google__Protobuf__Int64Value *w =
      (Google__Protobuf__Int64Value *)api_message_new(&google__protobuf__int64_value__descriptor);
  if (w) w->value = v;
  return w;
}

static Google__Protobuf__Int32Value *new_int32(int32_t v) {
  Google__Protobuf__Int32Value *w =
      (Google__Protobuf__Int32Value *)api_message_new(&google__protobuf__int32_value__descriptor);
  if (w) w->value = v;
  return w;
}

static Keel__Api__V1__IntOrString *new_int_or_string_str(const char *s) {
  Keel__Api__V1__IntOrString *v =
      (Keel__Api__V1__IntOrString *)api_message_new(&keel__api__v1__int_or_string__descriptor);
  if (!v) return NULL;
  v->type = 1;
  default_str(&v->str_val, s);
  if (str_empty(v->str_val)) {
    protobuf_c_message_free_unpacked(&v->base, NULL);
    return NULL;
  }
  return v;
}

/* Appends a string to a repeated string field. */
static void append_str(size_t *n, char ***arr, const char *value) {
  char *copy = strdup(value);
  if (!copy) return;
  char **grown = realloc(*arr, (*n + 1) * sizeof **arr);
  if (!grown) {
    free(copy);
    return;
  }
  grown[*n] = copy;
  *arr = grown;
  (*n)++;
}

/* ---------------------------------------------------------------- images */

bool api_image_has_latest_tag(const char *image) {
  /* Kubernetes' parsers.ParseImageName: the tag is after the last ':' of the
   * last path component; no tag and no digest means "latest", a digest without
   * a tag means no tag at all. */
  if (str_empty(image)) return true;
  const char *at = strchr(image, '@');
  size_t len = at ? (size_t)(at - image) : strlen(image);
  const char *last_slash = NULL;
  for (size_t i = 0; i < len; i++)
    if (image[i] == '/') last_slash = image + i;
  const char *name = last_slash ? last_slash + 1 : image;
  const char *colon = NULL;
  for (const char *p = name; p < image + len; p++)
    if (*p == ':') colon = p;
  if (!colon) return at == NULL;
  size_t tag_len = (size_t)(image + len - (colon + 1));
  return tag_len == 6 && strncmp(colon + 1, "latest", 6) == 0;
}

/* ---------------------------------------------------------------- pod spec */

static void default_probe(Keel__Api__V1__Probe *p) {
  if (!p) return;
  if (p->timeout_seconds == 0) p->timeout_seconds = 1;
  if (p->period_seconds == 0) p->period_seconds = 10;
  if (p->success_threshold == 0) p->success_threshold = 1;
  if (p->failure_threshold == 0) p->failure_threshold = 3;
  if (p->http_get) {
    default_str(&p->http_get->path, "/");
    default_str(&p->http_get->scheme, "HTTP");
  }
}

static void default_container(Keel__Api__V1__Container *c, bool host_network) {
  if (!c) return;
  default_str(&c->image_pull_policy, api_image_has_latest_tag(c->image) ? "Always" : "IfNotPresent");
  default_str(&c->termination_message_path, "/dev/termination-log");
  default_str(&c->termination_message_policy, "File");
  for (size_t i = 0; i < c->n_ports; i++) {
    Keel__Api__V1__ContainerPort *port = c->ports[i];
    if (!port) continue;
    default_str(&port->protocol, "TCP");
    if (host_network && port->host_port == 0) port->host_port = port->container_port;
  }
  for (size_t i = 0; i < c->n_env; i++) {
    Keel__Api__V1__EnvVar *e = c->env[i];
    if (e && e->value_from && e->value_from->field_ref)
      default_str(&e->value_from->field_ref->api_version, "v1");
  }
  default_probe(c->liveness_probe);
  default_probe(c->readiness_probe);
  default_probe(c->startup_probe);
}

void api_default_pod_spec(Keel__Api__V1__PodSpec *spec) {
  if (!spec) return;
  default_str(&spec->restart_policy, "Always");
  default_str(&spec->dns_policy, "ClusterFirst");
  default_str(&spec->scheduler_name, "default-scheduler");
  if (!spec->termination_grace_period_seconds) spec->termination_grace_period_seconds = new_int64(30);
  for (size_t i = 0; i < spec->n_volumes; i++) {
    Keel__Api__V1__Volume *v = spec->volumes[i];
    if (v && !v->empty_dir && !v->host_path)
      v->empty_dir = (Keel__Api__V1__EmptyDirVolumeSource *)api_message_new(
          &keel__api__v1__empty_dir_volume_source__descriptor);
  }
  for (size_t i = 0; i < spec->n_init_containers; i++)
    default_container(spec->init_containers[i], spec->host_network);
  for (size_t i = 0; i < spec->n_containers; i++) default_container(spec->containers[i], spec->host_network);
  for (size_t i = 0; i < spec->n_tolerations; i++)
    if (spec->tolerations[i]) default_str(&spec->tolerations[i]->operator_, "Equal");
}

/* SetDefaults_Pod: a limit with no request for the same resource becomes the
 * request too (the container asked for exactly that much). */
static void default_requests_from_limits(Keel__Api__V1__Container *c) {
  if (!c || !c->resources || c->resources->n_limits == 0) return;
  Keel__Api__V1__ResourceRequirements *r = c->resources;
  for (size_t i = 0; i < r->n_limits; i++) {
    Keel__Api__V1__ResourceRequirements__LimitsEntry *lim = r->limits[i];
    if (!lim || !lim->value) continue;
    bool found = false;
    for (size_t j = 0; j < r->n_requests && !found; j++)
      found = r->requests[j] && r->requests[j]->key && strcmp(r->requests[j]->key, lim->key) == 0;
    if (found) continue;
    Keel__Api__V1__ResourceRequirements__RequestsEntry *req =
        (Keel__Api__V1__ResourceRequirements__RequestsEntry *)api_message_new(
            &keel__api__v1__resource_requirements__requests_entry__descriptor);
    if (!req) return;
    req->value = (Keel__Api__V1__Quantity *)api_message_clone(&lim->value->base);
    default_str(&req->key, lim->key);
    if (!req->value || str_empty(req->key)) {
      protobuf_c_message_free_unpacked(&req->base, NULL);
      return;
    }
    Keel__Api__V1__ResourceRequirements__RequestsEntry **grown =
        realloc(r->requests, (r->n_requests + 1) * sizeof *r->requests);
    if (!grown) {
      protobuf_c_message_free_unpacked(&req->base, NULL);
      return;
    }
    r->requests = grown;
    r->requests[r->n_requests++] = req;
  }
}

static void default_pod(Keel__Api__V1__Pod *pod) {
  if (!pod->spec) return;
  api_default_pod_spec(pod->spec);
  for (size_t i = 0; i < pod->spec->n_init_containers; i++)
    default_requests_from_limits(pod->spec->init_containers[i]);
  for (size_t i = 0; i < pod->spec->n_containers; i++) default_requests_from_limits(pod->spec->containers[i]);
}

static void default_template(Keel__Api__V1__PodTemplateSpec *t) {
  if (t) api_default_pod_spec(t->spec);
}

/* ---------------------------------------------------------------- services */

static void default_service(Keel__Api__V1__Service *svc) {
  Keel__Api__V1__ServiceSpec *s = svc->spec;
  if (!s) return;
  default_str(&s->type, "ClusterIP");
  default_str(&s->session_affinity, "None");
  default_str(&s->internal_traffic_policy, "Cluster");
  if (strcmp(s->type, "NodePort") == 0) default_str(&s->external_traffic_policy, "Cluster");
  if (s->n_cluster_ips == 0 && !str_empty(s->cluster_ip))
    append_str(&s->n_cluster_ips, &s->cluster_ips, s->cluster_ip);
  else if (s->n_cluster_ips > 0 && str_empty(s->cluster_ip) && !str_empty(s->cluster_ips[0]))
    default_str(&s->cluster_ip, s->cluster_ips[0]);
  for (size_t i = 0; i < s->n_ports; i++) {
    Keel__Api__V1__ServicePort *p = s->ports[i];
    if (!p) continue;
    default_str(&p->protocol, "TCP");
    Keel__Api__V1__IntOrString *tp = p->target_port;
    bool unset = !tp || (tp->type == 0 && tp->int_val == 0) || (tp->type == 1 && str_empty(tp->str_val));
    if (!unset) continue;
    if (!tp) {
      tp = (Keel__Api__V1__IntOrString *)api_message_new(&keel__api__v1__int_or_string__descriptor);
      if (!tp) continue;
      p->target_port = tp;
    }
    tp->type = 0;
    tp->int_val = p->port;
  }
}

static void default_endpoints(Keel__Api__V1__Endpoints *ep) {
  for (size_t i = 0; i < ep->n_subsets; i++) {
    Keel__Api__V1__EndpointSubset *ss = ep->subsets[i];
    for (size_t j = 0; ss && j < ss->n_ports; j++)
      if (ss->ports[j]) default_str(&ss->ports[j]->protocol, "TCP");
  }
}

/* ---------------------------------------------------------------- workloads */

static void default_replica_set(Keel__Api__V1__ReplicaSet *rs) {
  Keel__Api__V1__ReplicaSetSpec *s = rs->spec;
  if (!s) return;
  if (!s->replicas) s->replicas = new_int32(1);
  default_template(s->template_);
}

static void default_deployment(Keel__Api__V1__Deployment *d) {
  Keel__Api__V1__DeploymentSpec *s = d->spec;
  if (!s) return;
  if (!s->replicas) s->replicas = new_int32(1);
  if (!s->strategy)
    s->strategy =
        (Keel__Api__V1__DeploymentStrategy *)api_message_new(&keel__api__v1__deployment_strategy__descriptor);
  if (s->strategy) {
    default_str(&s->strategy->type, "RollingUpdate");
    if (strcmp(s->strategy->type, "RollingUpdate") == 0) {
      if (!s->strategy->rolling_update)
        s->strategy->rolling_update = (Keel__Api__V1__RollingUpdateDeployment *)api_message_new(
            &keel__api__v1__rolling_update_deployment__descriptor);
      Keel__Api__V1__RollingUpdateDeployment *ru = s->strategy->rolling_update;
      if (ru && !ru->max_unavailable) ru->max_unavailable = new_int_or_string_str("25%");
      if (ru && !ru->max_surge) ru->max_surge = new_int_or_string_str("25%");
    }
  }
  if (!s->revision_history_limit) s->revision_history_limit = new_int32(10);
  if (!s->progress_deadline_seconds) s->progress_deadline_seconds = new_int32(600);
  default_template(s->template_);
}

/* ---------------------------------------------------------------- cluster */

static void default_namespace(Keel__Api__V1__Namespace *ns) {
  if (!ns->status)
    ns->status =
        (Keel__Api__V1__NamespaceStatus *)api_message_new(&keel__api__v1__namespace_status__descriptor);
  if (ns->status) default_str(&ns->status->phase, "Active");
  bool terminating = (ns->metadata && ns->metadata->deletion_timestamp) ||
                     (ns->status && strcmp(ns->status->phase, "Terminating") == 0);
  if (terminating) return;
  if (!ns->spec)
    ns->spec = (Keel__Api__V1__NamespaceSpec *)api_message_new(&keel__api__v1__namespace_spec__descriptor);
  if (ns->spec && ns->spec->n_finalizers == 0)
    append_str(&ns->spec->n_finalizers, &ns->spec->finalizers, "kubernetes");
}

void api_default(const api_kind *k, ProtobufCMessage *obj) {
  if (!k || !obj || obj->descriptor != k->object) return;
  const ProtobufCMessageDescriptor *d = k->object;
  if (d == &keel__api__v1__pod__descriptor)
    default_pod((Keel__Api__V1__Pod *)obj);
  else if (d == &keel__api__v1__service__descriptor)
    default_service((Keel__Api__V1__Service *)obj);
  else if (d == &keel__api__v1__endpoints__descriptor)
    default_endpoints((Keel__Api__V1__Endpoints *)obj);
  else if (d == &keel__api__v1__replica_set__descriptor)
    default_replica_set((Keel__Api__V1__ReplicaSet *)obj);
  else if (d == &keel__api__v1__deployment__descriptor)
    default_deployment((Keel__Api__V1__Deployment *)obj);
  else if (d == &keel__api__v1__namespace__descriptor)
    default_namespace((Keel__Api__V1__Namespace *)obj);
  /* Node, Event, Lease: nothing to default (as in Kubernetes, bar
   * fields Keel does not have). */
}
