/* services/apiserver/validation/validation_test.c — every kind's valid object
 * passes; a table of invalid objects each fails with exactly one error naming
 * the exact field; several errors are all listed; nothing a client can send
 * (missing sub-messages, empty objects) crashes defaulting or validation. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/kinds/kinds.h"
#include "services/apiserver/validation/testdata.h"
#include "services/apiserver/validation/validation.h"

/* ---------------------------------------------------------------- valid */

static void test_valid_objects_pass(void **state) {
  (void)state;
  for (enum tkind k = K_POD; k <= K_LEASE; k++) {
    ProtobufCMessage *o = tvalid(k);
    keel_error err;
    int rc = tvalidate(k, o, NULL, NULL, &err);
    if (rc != 0) fail_msg("%s: %s", tkind_of(k)->kind, err.message);
    /* An update that changes nothing is valid too, and so is its status. */
    ProtobufCMessage *same = tclone(o);
    rc = tvalidate(k, same, o, NULL, &err);
    if (rc != 0) fail_msg("%s update: %s", tkind_of(k)->kind, err.message);
    if (tkind_of(k)->subresources & API_SUB_STATUS) {
      rc = tvalidate(k, same, o, "status", &err);
      if (rc != 0) fail_msg("%s status: %s", tkind_of(k)->kind, err.message);
    }
    tfree(same);
    tfree(o);
  }
}

static void test_generate_name_without_name(void **state) {
  (void)state;
  ProtobufCMessage *o = tvalid(K_POD);
  tstr(&POD(o)->metadata->name, "");
  tstr(&POD(o)->metadata->generate_name, "web-");
  keel_error err;
  assert_int_equal(tvalidate(K_POD, o, NULL, NULL, &err), 0);
  tfree(o);
}

/* ---------------------------------------------------------------- invalid table */

/* Mutators: each breaks one rule of a valid object. */
static char *big_string(size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, 'a', n);
  s[n] = '\0';
  return s;
}

/* metadata */
static void m_no_name(ProtobufCMessage *o) { tstr(&POD(o)->metadata->name, ""); }
static void m_bad_name(ProtobufCMessage *o) { tstr(&POD(o)->metadata->name, "Web_1"); }
static void m_bad_generate_name(ProtobufCMessage *o) { tstr(&POD(o)->metadata->generate_name, "Web-"); }
static void m_no_namespace(ProtobufCMessage *o) { tstr(&POD(o)->metadata->namespace_, ""); }
static void m_bad_namespace(ProtobufCMessage *o) { tstr(&POD(o)->metadata->namespace_, "Team"); }
static void m_node_namespace(ProtobufCMessage *o) { tstr(&NODE(o)->metadata->namespace_, "default"); }
static void m_bad_label_key(ProtobufCMessage *o) { TLABEL(POD(o)->metadata, "bad key", "x"); }
static void m_long_label_value(ProtobufCMessage *o) {
  char *v = big_string(64);
  TLABEL(POD(o)->metadata, "tier", v);
  free(v);
}
static void m_big_annotations(ProtobufCMessage *o) {
  char *v = big_string(256 * 1024);
  TANNOTATION(POD(o)->metadata, "example.com/blob", v);
  free(v);
}
static void m_bad_annotation_key(ProtobufCMessage *o) { TANNOTATION(POD(o)->metadata, "a/b/c", "x"); }
static void m_bad_finalizer(ProtobufCMessage *o) {
  tstrs(&POD(o)->metadata->n_finalizers, &POD(o)->metadata->finalizers, "example.com/bad finalizer");
}
static void m_owner_no_uid(ProtobufCMessage *o) {
  Keel__Api__V1__OwnerReference *r = tnew(&keel__api__v1__owner_reference__descriptor);
  tstr(&r->api_version, "apps/v1");
  tstr(&r->kind, "ReplicaSet");
  tstr(&r->name, "web-rs");
  TPUSH(POD(o)->metadata, owner_references, r);
}
static void m_owner_no_version(ProtobufCMessage *o) {
  Keel__Api__V1__OwnerReference *r = tnew(&keel__api__v1__owner_reference__descriptor);
  tstr(&r->api_version, "apps/");
  tstr(&r->kind, "ReplicaSet");
  tstr(&r->name, "web-rs");
  tstr(&r->uid, "6d5f0c1e");
  TPUSH(POD(o)->metadata, owner_references, r);
}
static void m_svc_bad_name(ProtobufCMessage *o) { tstr(&SVC(o)->metadata->name, "1web"); }
static void m_ns_dotted_name(ProtobufCMessage *o) { tstr(&NS(o)->metadata->name, "team.a"); }

/* pod spec */
static void m_no_containers(ProtobufCMessage *o) {
  tfree(C0(o));
  POD(o)->spec->n_containers = 0;
}
static void m_no_image(ProtobufCMessage *o) { tstr(&C0(o)->image, ""); }
static void m_image_space(ProtobufCMessage *o) { tstr(&C0(o)->image, "nginx "); }
static void m_bad_container_name(ProtobufCMessage *o) { tstr(&C0(o)->name, "App"); }
static void m_dup_container(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, containers, tcontainer("app", "busybox"));
}
static void m_dup_init_container(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, init_containers, tcontainer("app", "busybox"));
}
static void m_port_70000(ProtobufCMessage *o) { C0(o)->ports[0]->container_port = 70000; }
static void m_port_0(ProtobufCMessage *o) { C0(o)->ports[0]->container_port = 0; }
static void m_host_port_bad(ProtobufCMessage *o) { C0(o)->ports[0]->host_port = 70000; }
static void m_port_protocol(ProtobufCMessage *o) { tstr(&C0(o)->ports[0]->protocol, "ICMP"); }
static void m_port_name(ProtobufCMessage *o) { tstr(&C0(o)->ports[0]->name, "web--x"); }
static void m_port_dup_name(ProtobufCMessage *o) { TPUSH(C0(o), ports, tport("http", 81)); }
static void m_env_bad_name(ProtobufCMessage *o) {
  Keel__Api__V1__EnvVar *e = TPUSH(C0(o), env, tnew(&keel__api__v1__env_var__descriptor));
  tstr(&e->name, "1BAD");
}
static void m_env_value_and_from(ProtobufCMessage *o) {
  Keel__Api__V1__EnvVar *e = TPUSH(C0(o), env, tnew(&keel__api__v1__env_var__descriptor));
  tstr(&e->name, "POD_NAME");
  tstr(&e->value, "x");
  e->value_from = tnew(&keel__api__v1__env_var_source__descriptor);
  e->value_from->field_ref = tnew(&keel__api__v1__object_field_selector__descriptor);
  tstr(&e->value_from->field_ref->field_path, "metadata.name");
}
static void m_env_from_nothing(ProtobufCMessage *o) {
  Keel__Api__V1__EnvVar *e = TPUSH(C0(o), env, tnew(&keel__api__v1__env_var__descriptor));
  tstr(&e->name, "X");
  e->value_from = tnew(&keel__api__v1__env_var_source__descriptor);
}
static void m_env_bad_field_path(ProtobufCMessage *o) {
  Keel__Api__V1__EnvVar *e = TPUSH(C0(o), env, tnew(&keel__api__v1__env_var__descriptor));
  tstr(&e->name, "X");
  e->value_from = tnew(&keel__api__v1__env_var_source__descriptor);
  e->value_from->field_ref = tnew(&keel__api__v1__object_field_selector__descriptor);
  tstr(&e->value_from->field_ref->field_path, "spec.hostname");
}
static void m_env_secret_no_key(ProtobufCMessage *o) {
  Keel__Api__V1__EnvVar *e = TPUSH(C0(o), env, tnew(&keel__api__v1__env_var__descriptor));
  tstr(&e->name, "PASSWORD");
  e->value_from = tnew(&keel__api__v1__env_var_source__descriptor);
  e->value_from->secret_key_ref = tnew(&keel__api__v1__key_ref__descriptor);
  tstr(&e->value_from->secret_key_ref->name, "db");
}
static void m_bad_quantity(ProtobufCMessage *o) { tstr(&C0(o)->resources->limits[0]->value->string, "12x"); }
static void m_negative_quantity(ProtobufCMessage *o) {
  tstr(&C0(o)->resources->limits[1]->value->string, "-1");
}
static void m_request_over_limit(ProtobufCMessage *o) {
  tstr(&C0(o)->resources->requests[0]->value->string, "1");
}
static void m_bad_resource_name(ProtobufCMessage *o) { tlimit(C0(o), "gpu", "1"); }
static void m_extended_no_limit(ProtobufCMessage *o) { trequest(C0(o), "example.com/gpu", "1"); }
static void m_extended_fraction(ProtobufCMessage *o) {
  tlimit(C0(o), "example.com/gpu", "1500m");
  trequest(C0(o), "example.com/gpu", "1");
}
static void m_probe_no_handler(ProtobufCMessage *o) {
  tfree(C0(o)->readiness_probe->http_get);
  C0(o)->readiness_probe->http_get = NULL;
}
static void m_probe_two_handlers(ProtobufCMessage *o) {
  C0(o)->readiness_probe->tcp_socket = tnew(&keel__api__v1__tcpsocket_action__descriptor);
  C0(o)->readiness_probe->tcp_socket->port = tios_int(80);
}
static void m_probe_port_0(ProtobufCMessage *o) { C0(o)->readiness_probe->http_get->port->int_val = 0; }
static void m_probe_port_name(ProtobufCMessage *o) {
  tfree(C0(o)->readiness_probe->http_get->port);
  C0(o)->readiness_probe->http_get->port = tios_str("web--x");
}
static void m_probe_exec_empty(ProtobufCMessage *o) {
  Keel__Api__V1__Probe *p = tnew(&keel__api__v1__probe__descriptor);
  p->exec = tnew(&keel__api__v1__exec_action__descriptor);
  C0(o)->liveness_probe = p;
}
static void m_liveness_success_2(ProtobufCMessage *o) {
  C0(o)->liveness_probe = tprobe_http("/healthz", 80);
  C0(o)->liveness_probe->success_threshold = 2;
}
static void m_probe_period_negative(ProtobufCMessage *o) { C0(o)->readiness_probe->period_seconds = -1; }
static void m_probe_timeout_zero(ProtobufCMessage *o) { C0(o)->readiness_probe->timeout_seconds = 0; }
static void m_probe_bad_scheme(ProtobufCMessage *o) {
  tstr(&C0(o)->readiness_probe->http_get->scheme, "FTP");
}
static void m_restart_policy(ProtobufCMessage *o) { tstr(&POD(o)->spec->restart_policy, "Sometimes"); }
static void m_restart_policy_empty(ProtobufCMessage *o) { tstr(&POD(o)->spec->restart_policy, ""); }
static void m_dup_volume(ProtobufCMessage *o) { TPUSH(POD(o)->spec, volumes, tvolume_empty_dir("data")); }
static void m_volume_two_sources(ProtobufCMessage *o) {
  Keel__Api__V1__Volume *v = POD(o)->spec->volumes[0];
  v->host_path = tnew(&keel__api__v1__host_path_volume_source__descriptor);
  tstr(&v->host_path->path, "/srv");
}
static void m_volume_no_source(ProtobufCMessage *o) {
  Keel__Api__V1__Volume *v = POD(o)->spec->volumes[0];
  tfree(v->empty_dir);
  v->empty_dir = NULL;
}
static void m_host_path_empty(ProtobufCMessage *o) {
  Keel__Api__V1__Volume *v = TPUSH(POD(o)->spec, volumes, tnew(&keel__api__v1__volume__descriptor));
  tstr(&v->name, "host");
  v->host_path = tnew(&keel__api__v1__host_path_volume_source__descriptor);
}
static void m_mount_unknown(ProtobufCMessage *o) { tstr(&C0(o)->volume_mounts[0]->name, "cache"); }
static void m_mount_relative(ProtobufCMessage *o) { tstr(&C0(o)->volume_mounts[0]->mount_path, "data"); }
static void m_toleration_exists_value(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, tolerations, ttoleration("dedicated", "Exists", "infra", "NoSchedule"));
}
static void m_toleration_operator(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, tolerations, ttoleration("dedicated", "Like", NULL, "NoSchedule"));
}
static void m_toleration_effect(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, tolerations, ttoleration("dedicated", "Equal", "infra", "NoWay"));
}
static void m_toleration_seconds(ProtobufCMessage *o) {
  Keel__Api__V1__Toleration *t =
      TPUSH(POD(o)->spec, tolerations, ttoleration("dedicated", "Equal", "infra", "NoSchedule"));
  t->toleration_seconds = tint64(30);
}
static void m_toleration_empty_key(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, tolerations, ttoleration(NULL, "Equal", NULL, NULL));
}
static void m_node_selector_value(ProtobufCMessage *o) {
  Keel__Api__V1__PodSpec *s = POD(o)->spec;
  tmap(&s->n_node_selector, &s->node_selector, &keel__api__v1__pod_spec__node_selector_entry__descriptor,
       "disk", "fast ssd");
}
static Keel__Api__V1__NodeSelectorRequirement *add_required_term(ProtobufCMessage *o, const char *op) {
  Keel__Api__V1__PodSpec *s = POD(o)->spec;
  s->affinity = tnew(&keel__api__v1__affinity__descriptor);
  s->affinity->node_affinity = tnew(&keel__api__v1__node_affinity__descriptor);
  Keel__Api__V1__NodeSelector *sel = tnew(&keel__api__v1__node_selector__descriptor);
  s->affinity->node_affinity->required_during_scheduling_ignored_during_execution = sel;
  Keel__Api__V1__NodeSelectorTerm *t =
      TPUSH(sel, node_selector_terms, tnew(&keel__api__v1__node_selector_term__descriptor));
  Keel__Api__V1__NodeSelectorRequirement *r =
      TPUSH(t, match_expressions, tnew(&keel__api__v1__node_selector_requirement__descriptor));
  tstr(&r->key, "disk");
  tstr(&r->operator_, op);
  return r;
}
static void m_affinity_in_no_values(ProtobufCMessage *o) { add_required_term(o, "In"); }
static void m_affinity_gt_text(ProtobufCMessage *o) {
  Keel__Api__V1__NodeSelectorRequirement *r = add_required_term(o, "Gt");
  tstrs(&r->n_values, &r->values, "abc");
}
static void m_affinity_exists_values(ProtobufCMessage *o) {
  Keel__Api__V1__NodeSelectorRequirement *r = add_required_term(o, "Exists");
  tstrs(&r->n_values, &r->values, "ssd");
}
static void m_affinity_operator(ProtobufCMessage *o) {
  Keel__Api__V1__NodeSelectorRequirement *r = add_required_term(o, "Near");
  tstrs(&r->n_values, &r->values, "ssd");
}
static void m_affinity_no_terms(ProtobufCMessage *o) {
  Keel__Api__V1__NodeSelectorRequirement *r = add_required_term(o, "In");
  (void)r;
  Keel__Api__V1__NodeSelector *sel =
      POD(o)->spec->affinity->node_affinity->required_during_scheduling_ignored_during_execution;
  tfree(sel->node_selector_terms[0]);
  sel->n_node_selector_terms = 0;
}
static void m_preferred_weight(ProtobufCMessage *o) {
  Keel__Api__V1__PodSpec *s = POD(o)->spec;
  s->affinity = tnew(&keel__api__v1__affinity__descriptor);
  s->affinity->node_affinity = tnew(&keel__api__v1__node_affinity__descriptor);
  Keel__Api__V1__PreferredSchedulingTerm *t = tnew(&keel__api__v1__preferred_scheduling_term__descriptor);
  t->weight = 101;
  t->preference = tnew(&keel__api__v1__node_selector_term__descriptor);
  TPUSH(s->affinity->node_affinity, preferred_during_scheduling_ignored_during_execution, t);
}
static void m_grace_negative(ProtobufCMessage *o) {
  POD(o)->spec->termination_grace_period_seconds = tint64(-1);
}
static void m_dns_policy(ProtobufCMessage *o) { tstr(&POD(o)->spec->dns_policy, "Custom"); }
static void m_active_deadline_zero(ProtobufCMessage *o) { POD(o)->spec->active_deadline_seconds = tint64(0); }
static void m_host_network_ports(ProtobufCMessage *o) {
  POD(o)->spec->host_network = 1;
  C0(o)->ports[0]->host_port = 8080;
}
static void m_dup_host_port(ProtobufCMessage *o) {
  C0(o)->ports[0]->host_port = 8080;
  Keel__Api__V1__Container *c = TPUSH(POD(o)->spec, containers, tcontainer("sidecar", "busybox:1.36"));
  Keel__Api__V1__ContainerPort *p = TPUSH(c, ports, tport(NULL, 9090));
  p->host_port = 8080;
}
static void m_pull_policy(ProtobufCMessage *o) { tstr(&C0(o)->image_pull_policy, "Sometimes"); }
static void m_init_probe(ProtobufCMessage *o) {
  Keel__Api__V1__Container *c = TPUSH(POD(o)->spec, init_containers, tcontainer("setup", "busybox:1.36"));
  c->liveness_probe = tprobe_http("/", 80);
}
static void m_node_name(ProtobufCMessage *o) { tstr(&POD(o)->spec->node_name, "Node_1"); }

/* service */
static void m_svc_no_ports(ProtobufCMessage *o) {
  tfree(SVC(o)->spec->ports[0]);
  SVC(o)->spec->n_ports = 0;
}
static void m_svc_type(ProtobufCMessage *o) { tstr(&SVC(o)->spec->type, "LoadBalancer"); }
static void m_svc_port_0(ProtobufCMessage *o) { SVC(o)->spec->ports[0]->port = 0; }
static void m_svc_target_port(ProtobufCMessage *o) { SVC(o)->spec->ports[0]->target_port->int_val = 70000; }
static void m_svc_target_port_name(ProtobufCMessage *o) {
  tfree(SVC(o)->spec->ports[0]->target_port);
  SVC(o)->spec->ports[0]->target_port = tios_str("Http");
}
static void m_svc_node_port_cluster_ip(ProtobufCMessage *o) { SVC(o)->spec->ports[0]->node_port = 30080; }
static void m_svc_node_port_range(ProtobufCMessage *o) {
  tstr(&SVC(o)->spec->type, "NodePort");
  SVC(o)->spec->ports[0]->node_port = 8080;
}
static void m_svc_unnamed_second(ProtobufCMessage *o) {
  TPUSH(SVC(o)->spec, ports, tservice_port(NULL, 443));
}
static void m_svc_dup_port(ProtobufCMessage *o) { TPUSH(SVC(o)->spec, ports, tservice_port("http2", 80)); }
static void m_svc_dup_name(ProtobufCMessage *o) { TPUSH(SVC(o)->spec, ports, tservice_port("http", 81)); }
static void m_svc_cluster_ip(ProtobufCMessage *o) { tstr(&SVC(o)->spec->cluster_ip, "10.0.0.300"); }
static void m_svc_headless_node_port(ProtobufCMessage *o) {
  tstr(&SVC(o)->spec->type, "NodePort");
  tstr(&SVC(o)->spec->cluster_ip, "None");
}
static void m_svc_affinity(ProtobufCMessage *o) { tstr(&SVC(o)->spec->session_affinity, "Sticky"); }
static void m_svc_selector(ProtobufCMessage *o) {
  Keel__Api__V1__ServiceSpec *s = SVC(o)->spec;
  tmap(&s->n_selector, &s->selector, &keel__api__v1__service_spec__selector_entry__descriptor, "-app", "web");
}
static void m_svc_protocol(ProtobufCMessage *o) { tstr(&SVC(o)->spec->ports[0]->protocol, "ICMP"); }
static void m_svc_external_ip(ProtobufCMessage *o) {
  tstrs(&SVC(o)->spec->n_external_ips, &SVC(o)->spec->external_ips, "example.com");
}

/* workloads */
static void m_rs_no_selector(ProtobufCMessage *o) {
  tfree(RS(o)->spec->selector);
  RS(o)->spec->selector = NULL;
}
static void m_rs_selector_mismatch(ProtobufCMessage *o) {
  tstr(&RS(o)->spec->selector->match_labels[0]->value, "api");
}
static void m_rs_replicas(ProtobufCMessage *o) { RS(o)->spec->replicas->value = -1; }
static void m_rs_restart_never(ProtobufCMessage *o) {
  tstr(&RS(o)->spec->template_->spec->restart_policy, "Never");
}
static void m_rs_no_template(ProtobufCMessage *o) {
  tfree(RS(o)->spec->template_);
  RS(o)->spec->template_ = NULL;
}
static void m_dep_empty_selector(ProtobufCMessage *o) {
  Keel__Api__V1__LabelSelector *s = DEP(o)->spec->selector;
  tfree(s->match_labels[0]);
  s->n_match_labels = 0;
}
static void m_dep_strategy(ProtobufCMessage *o) {
  DEP(o)->spec->strategy = tnew(&keel__api__v1__deployment_strategy__descriptor);
  tstr(&DEP(o)->spec->strategy->type, "BlueGreen");
}
static void m_dep_recreate_rolling(ProtobufCMessage *o) {
  DEP(o)->spec->strategy = tnew(&keel__api__v1__deployment_strategy__descriptor);
  tstr(&DEP(o)->spec->strategy->type, "Recreate");
  DEP(o)->spec->strategy->rolling_update = tnew(&keel__api__v1__rolling_update_deployment__descriptor);
}
static Keel__Api__V1__RollingUpdateDeployment *rolling(ProtobufCMessage *o) {
  DEP(o)->spec->strategy = tnew(&keel__api__v1__deployment_strategy__descriptor);
  tstr(&DEP(o)->spec->strategy->type, "RollingUpdate");
  DEP(o)->spec->strategy->rolling_update = tnew(&keel__api__v1__rolling_update_deployment__descriptor);
  return DEP(o)->spec->strategy->rolling_update;
}
static void m_dep_max_unavailable_150(ProtobufCMessage *o) { rolling(o)->max_unavailable = tios_str("150%"); }
static void m_dep_max_surge_text(ProtobufCMessage *o) { rolling(o)->max_surge = tios_str("abc"); }
static void m_dep_both_zero(ProtobufCMessage *o) {
  Keel__Api__V1__RollingUpdateDeployment *r = rolling(o);
  r->max_surge = tios_int(0);
  r->max_unavailable = tios_str("0%");
}
static void m_dep_max_surge_negative(ProtobufCMessage *o) { rolling(o)->max_surge = tios_int(-1); }
static void m_dep_history(ProtobufCMessage *o) { DEP(o)->spec->revision_history_limit = tint32(-1); }
static void m_dep_deadline(ProtobufCMessage *o) {
  DEP(o)->spec->min_ready_seconds = 30;
  DEP(o)->spec->progress_deadline_seconds = tint32(30);
}
static void m_dep_template_image(ProtobufCMessage *o) {
  tstr(&DEP(o)->spec->template_->spec->containers[0]->image, "");
}
static void m_dep_expression_no_values(ProtobufCMessage *o) {
  Keel__Api__V1__LabelSelectorRequirement *r = tnew(&keel__api__v1__label_selector_requirement__descriptor);
  tstr(&r->key, "tier");
  tstr(&r->operator_, "In");
  TPUSH(DEP(o)->spec->selector, match_expressions, r);
}
static void m_dep_expression_operator(ProtobufCMessage *o) {
  Keel__Api__V1__LabelSelectorRequirement *r = tnew(&keel__api__v1__label_selector_requirement__descriptor);
  tstr(&r->key, "tier");
  tstr(&r->operator_, "Has");
  TPUSH(DEP(o)->spec->selector, match_expressions, r);
}
static void m_dep_replicas(ProtobufCMessage *o) { DEP(o)->spec->replicas->value = -2; }

/* node, namespace, endpoints, event, lease */
static void m_taint_no_effect(ProtobufCMessage *o) { tstr(&NODE(o)->spec->taints[0]->effect, ""); }
static void m_taint_dup(ProtobufCMessage *o) {
  Keel__Api__V1__Taint *t = tnew(&keel__api__v1__taint__descriptor);
  tstr(&t->key, "dedicated");
  tstr(&t->value, "other");
  tstr(&t->effect, "NoSchedule");
  TPUSH(NODE(o)->spec, taints, t);
}
static void m_taint_key(ProtobufCMessage *o) { tstr(&NODE(o)->spec->taints[0]->key, "-dedicated"); }
static void m_pod_cidr(ProtobufCMessage *o) { tstr(&NODE(o)->spec->pod_cidr, "10.244.1.0/33"); }
static void m_capacity(ProtobufCMessage *o) { tstr(&NODE(o)->status->capacity[0]->value->string, "four"); }
static void m_node_address(ProtobufCMessage *o) { tstr(&NODE(o)->status->addresses[0]->address, "10.0.0"); }
static void m_ns_phase(ProtobufCMessage *o) { tstr(&NS(o)->status->phase, "Gone"); }
static void m_ns_finalizer(ProtobufCMessage *o) { tstr(&NS(o)->spec->finalizers[0], "custom"); }
static void m_ep_ip(ProtobufCMessage *o) { tstr(&EP(o)->subsets[0]->addresses[0]->ip, "10.244.1"); }
static void m_ep_port(ProtobufCMessage *o) { EP(o)->subsets[0]->ports[0]->port = 0; }
static void m_ep_protocol(ProtobufCMessage *o) { tstr(&EP(o)->subsets[0]->ports[0]->protocol, "HTTP"); }
static void m_ep_no_addresses(ProtobufCMessage *o) {
  tfree(EP(o)->subsets[0]->addresses[0]);
  EP(o)->subsets[0]->n_addresses = 0;
}
static void m_ev_no_name(ProtobufCMessage *o) { tstr(&EV(o)->involved_object->name, ""); }
static void m_ev_no_kind(ProtobufCMessage *o) { tstr(&EV(o)->involved_object->kind, ""); }
static void m_ev_namespace(ProtobufCMessage *o) { tstr(&EV(o)->involved_object->namespace_, "other"); }
static void m_ev_type(ProtobufCMessage *o) { tstr(&EV(o)->type, "Info"); }
static void m_lease_duration(ProtobufCMessage *o) { LEASE(o)->spec->lease_duration_seconds->value = 0; }
static void m_lease_transitions(ProtobufCMessage *o) { LEASE(o)->spec->lease_transitions = tint32(-1); }

typedef struct invalid_case {
  const char *name;
  enum tkind kind;
  void (*mutate)(ProtobufCMessage *o);
  bool after_defaults; /* mutate the defaulted object (to undo a default) */
  const char *want;    /* the one error; a leading '!' means the whole message */
} invalid_case;

#define QNAME_CHARS                                                                                        \
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric " \
  "character"

static const invalid_case invalid_cases[] = {
    /* metadata */
    {"no name", K_POD, m_no_name, false,
     "!Pod \"\" is invalid: metadata.name: Required value: name or generateName is required"},
    {"bad name", K_POD, m_bad_name, false,
     "!Pod \"Web_1\" is invalid: metadata.name: Invalid value: \"Web_1\": a lowercase RFC 1123 subdomain "
     "must "
     "consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
     "character"},
    {"bad generateName", K_POD, m_bad_generate_name, false,
     "metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain must consist of lower "
     "case "
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"},
    {"no namespace", K_POD, m_no_namespace, false, "metadata.namespace: Required value"},
    {"bad namespace", K_POD, m_bad_namespace, false,
     "metadata.namespace: Invalid value: \"Team\": a lowercase RFC 1123 label must consist of lower case "
     "alphanumeric characters or '-', and must start and end with an alphanumeric character"},
    {"namespace on a node", K_NODE, m_node_namespace, false,
     "metadata.namespace: Forbidden: not allowed on this type"},
    {"label key", K_POD, m_bad_label_key, false,
     "metadata.labels: Invalid value: \"bad key\": name part " QNAME_CHARS},
    {"label value length", K_POD, m_long_label_value, false,
     "metadata.labels: Invalid value: \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": "
     "must be "
     "no more than 63 characters"},
    {"annotations size", K_POD, m_big_annotations, false,
     "metadata.annotations: Too long: must have at most 262144 bytes"},
    {"annotation key", K_POD, m_bad_annotation_key, false,
     "metadata.annotations: Invalid value: \"a/b/c\": a qualified name " QNAME_CHARS
     " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"},
    {"finalizer", K_POD, m_bad_finalizer, false,
     "metadata.finalizers[0]: Invalid value: \"example.com/bad finalizer\": name part " QNAME_CHARS},
    {"ownerReference uid", K_POD, m_owner_no_uid, false,
     "metadata.ownerReferences[0].uid: Invalid value: \"\": uid must not be empty"},
    {"ownerReference apiVersion", K_POD, m_owner_no_version, false,
     "metadata.ownerReferences[0].apiVersion: Invalid value: \"apps/\": version must not be empty"},
    {"service name is DNS-1035", K_SVC, m_svc_bad_name, false,
     "!Service \"1web\" is invalid: metadata.name: Invalid value: \"1web\": a DNS-1035 label must consist of "
     "lower "
     "case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric "
     "character"},
    {"namespace name is a label", K_NS, m_ns_dotted_name, false,
     "!Namespace \"team.a\" is invalid: metadata.name: Invalid value: \"team.a\": must not contain dots"},

    /* pod spec */
    {"no containers", K_POD, m_no_containers, false, "spec.containers: Required value"},
    {"no image", K_POD, m_no_image, false, "spec.containers[0].image: Required value"},
    {"image whitespace", K_POD, m_image_space, false,
     "spec.containers[0].image: Invalid value: \"nginx \": must not have leading or trailing whitespace"},
    {"container name", K_POD, m_bad_container_name, false,
     "spec.containers[0].name: Invalid value: \"App\": a lowercase RFC 1123 label must consist of lower case "
     "alphanumeric characters or '-', and must start and end with an alphanumeric character"},
    {"duplicate container", K_POD, m_dup_container, false,
     "spec.containers[1].name: Duplicate value: \"app\""},
    {"init container shares a name", K_POD, m_dup_init_container, false,
     "spec.containers[0].name: Duplicate value: \"app\""},
    {"containerPort 70000", K_POD, m_port_70000, false,
     "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, "
     "inclusive"},
    {"containerPort 0", K_POD, m_port_0, false, "spec.containers[0].ports[0].containerPort: Required value"},
    {"hostPort", K_POD, m_host_port_bad, false,
     "spec.containers[0].ports[0].hostPort: Invalid value: 70000: must be between 1 and 65535, inclusive"},
    {"port protocol", K_POD, m_port_protocol, false,
     "spec.containers[0].ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", "
     "\"SCTP\""},
    {"port name", K_POD, m_port_name, false,
     "spec.containers[0].ports[0].name: Invalid value: \"web--x\": must not contain consecutive hyphens"},
    {"duplicate port name", K_POD, m_port_dup_name, false,
     "spec.containers[0].ports[1].name: Duplicate value: \"http\""},
    {"env name", K_POD, m_env_bad_name, false,
     "spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name must "
     "consist of "
     "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"},
    {"env value and valueFrom", K_POD, m_env_value_and_from, false,
     "spec.containers[0].env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not "
     "empty"},
    {"env valueFrom empty", K_POD, m_env_from_nothing, false,
     "spec.containers[0].env[0].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, "
     "`resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"},
    {"env fieldRef path", K_POD, m_env_bad_field_path, false,
     "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.hostname\": "
     "supported "
     "values: \"metadata.annotations\", \"metadata.labels\", \"metadata.name\", \"metadata.namespace\", "
     "\"metadata.uid\", \"spec.nodeName\", \"spec.serviceAccountName\", \"status.hostIP\", \"status.podIP\", "
     "\"status.podIPs\""},
    {"env secretKeyRef key", K_POD, m_env_secret_no_key, false,
     "spec.containers[0].env[0].valueFrom.secretKeyRef.key: Required value"},
    {"quantity syntax", K_POD, m_bad_quantity, false,
     "spec.containers[0].resources.limits[cpu]: Invalid value: \"12x\": must match the regular "
     "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"},
    {"negative quantity", K_POD, m_negative_quantity, true,
     "spec.containers[0].resources.limits[memory]: Invalid value: \"-1\": must be greater than or equal to "
     "0"},
    {"request over limit", K_POD, m_request_over_limit, false,
     "spec.containers[0].resources.requests[cpu]: Invalid value: \"1\": must be less than or equal to cpu "
     "limit of "
     "500m"},
    {"resource name", K_POD, m_bad_resource_name, true,
     "spec.containers[0].resources.limits[gpu]: Invalid value: \"gpu\": must be a standard resource for "
     "containers"},
    {"extended resource without limit", K_POD, m_extended_no_limit, false,
     "spec.containers[0].resources.limits[example.com/gpu]: Required value: Limit must be set for non "
     "overcommitable resources"},
    {"extended resource fraction", K_POD, m_extended_fraction, false,
     "spec.containers[0].resources.limits[example.com/gpu]: Invalid value: \"1500m\": must be an integer"},
    {"probe without handler", K_POD, m_probe_no_handler, false,
     "spec.containers[0].readinessProbe: Required value: must specify a handler type"},
    {"probe with two handlers", K_POD, m_probe_two_handlers, false,
     "spec.containers[0].readinessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type"},
    {"probe port 0", K_POD, m_probe_port_0, false,
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, "
     "inclusive"},
    {"probe port name", K_POD, m_probe_port_name, false,
     "spec.containers[0].readinessProbe.httpGet.port: Invalid value: \"web--x\": must not contain "
     "consecutive "
     "hyphens"},
    {"probe exec without command", K_POD, m_probe_exec_empty, false,
     "spec.containers[0].livenessProbe.exec.command: Required value"},
    {"liveness successThreshold", K_POD, m_liveness_success_2, false,
     "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"},
    {"probe periodSeconds", K_POD, m_probe_period_negative, false,
     "spec.containers[0].readinessProbe.periodSeconds: Invalid value: -1: must be greater than or equal to "
     "1"},
    {"probe timeoutSeconds undefaulted", K_POD, m_probe_timeout_zero, true,
     "spec.containers[0].readinessProbe.timeoutSeconds: Invalid value: 0: must be greater than or equal to "
     "1"},
    {"probe scheme", K_POD, m_probe_bad_scheme, false,
     "spec.containers[0].readinessProbe.httpGet.scheme: Unsupported value: \"FTP\": supported values: "
     "\"HTTP\", "
     "\"HTTPS\""},
    {"restartPolicy", K_POD, m_restart_policy, false,
     "spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \"OnFailure\", "
     "\"Never\""},
    {"restartPolicy undefaulted", K_POD, m_restart_policy_empty, true, "spec.restartPolicy: Required value"},
    {"duplicate volume", K_POD, m_dup_volume, false, "spec.volumes[1].name: Duplicate value: \"data\""},
    {"volume with two sources", K_POD, m_volume_two_sources, false,
     "spec.volumes[0].hostPath: Forbidden: may not specify more than 1 volume type"},
    {"volume without source", K_POD, m_volume_no_source, true,
     "spec.volumes[0]: Required value: must specify a volume type"},
    {"hostPath without path", K_POD, m_host_path_empty, false,
     "spec.volumes[1].hostPath.path: Required value"},
    {"mount of an unknown volume", K_POD, m_mount_unknown, false,
     "spec.containers[0].volumeMounts[0].name: Not found: \"cache\""},
    {"relative mountPath", K_POD, m_mount_relative, false,
     "spec.containers[0].volumeMounts[0].mountPath: Invalid value: \"data\": must be an absolute path"},
    {"toleration Exists with value", K_POD, m_toleration_exists_value, false,
     "spec.tolerations[0].operator: Invalid value: \"Exists\": value must be empty when `operator` is "
     "'Exists'"},
    {"toleration operator", K_POD, m_toleration_operator, false,
     "spec.tolerations[0].operator: Unsupported value: \"Like\": supported values: \"Equal\", \"Exists\""},
    {"toleration effect", K_POD, m_toleration_effect, false,
     "spec.tolerations[0].effect: Unsupported value: \"NoWay\": supported values: \"NoSchedule\", "
     "\"PreferNoSchedule\", \"NoExecute\""},
    {"tolerationSeconds without NoExecute", K_POD, m_toleration_seconds, false,
     "spec.tolerations[0].effect: Invalid value: \"NoSchedule\": effect must be 'NoExecute' when "
     "`tolerationSeconds` is set"},
    {"toleration without key", K_POD, m_toleration_empty_key, false,
     "spec.tolerations[0].operator: Invalid value: \"Equal\": operator must be Exists when `key` is empty, "
     "which "
     "means \"match all values and all keys\""},
    {"nodeSelector value", K_POD, m_node_selector_value, false,
     "spec.nodeSelector: Invalid value: \"fast ssd\": a valid label must be an empty string or consist of "
     "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"},
    {"affinity In without values", K_POD, m_affinity_in_no_values, false,
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
     "matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"},
    {"affinity Gt not an integer", K_POD, m_affinity_gt_text, false,
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
     "matchExpressions[0].values[0]: Invalid value: \"abc\": must be an integer"},
    {"affinity Exists with values", K_POD, m_affinity_exists_values, false,
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
     "matchExpressions[0].values: Forbidden: may not be specified when `operator` is 'Exists' or "
     "'DoesNotExist'"},
    {"affinity operator", K_POD, m_affinity_operator, false,
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]."
     "matchExpressions[0].operator: Unsupported value: \"Near\": supported values: \"In\", \"NotIn\", "
     "\"Exists\", "
     "\"DoesNotExist\", \"Gt\", \"Lt\""},
    {"affinity without terms", K_POD, m_affinity_no_terms, false,
     "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required "
     "value: "
     "must have at least one node selector term"},
    {"preferred weight", K_POD, m_preferred_weight, false,
     "spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight: Invalid value: "
     "101: "
     "must be in the range 1-100"},
    {"negative grace period", K_POD, m_grace_negative, false,
     "spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"},
    {"dnsPolicy", K_POD, m_dns_policy, false,
     "spec.dnsPolicy: Unsupported value: \"Custom\": supported values: \"ClusterFirst\", "
     "\"ClusterFirstWithHostNet\", \"Default\""},
    {"activeDeadlineSeconds 0", K_POD, m_active_deadline_zero, false,
     "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive"},
    {"hostNetwork port mismatch", K_POD, m_host_network_ports, false,
     "spec.containers[0].ports[0].containerPort: Invalid value: 80: must match `hostPort` when `hostNetwork` "
     "is true"},
    {"duplicate hostPort", K_POD, m_dup_host_port, false,
     "spec.containers[1].ports[0].hostPort: Duplicate value: \"8080/TCP\""},
    {"imagePullPolicy", K_POD, m_pull_policy, false,
     "spec.containers[0].imagePullPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", "
     "\"IfNotPresent\", \"Never\""},
    {"init container probe", K_POD, m_init_probe, false,
     "spec.initContainers[0].livenessProbe: Forbidden: may not be set for init containers"},
    {"nodeName syntax", K_POD, m_node_name, false,
     "spec.nodeName: Invalid value: \"Node_1\": a lowercase RFC 1123 subdomain must consist of lower case "
     "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"},

    /* service */
    {"service without ports", K_SVC, m_svc_no_ports, false, "spec.ports: Required value"},
    {"service type", K_SVC, m_svc_type, false,
     "spec.type: Unsupported value: \"LoadBalancer\": supported values: \"ClusterIP\", \"NodePort\""},
    {"service port 0", K_SVC, m_svc_port_0, false,
     "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"},
    {"targetPort", K_SVC, m_svc_target_port, false,
     "spec.ports[0].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive"},
    {"targetPort name", K_SVC, m_svc_target_port_name, false,
     "spec.ports[0].targetPort: Invalid value: \"Http\": must contain only alpha-numeric characters (a-z, "
     "0-9), and "
     "hyphens (-)"},
    {"nodePort on ClusterIP", K_SVC, m_svc_node_port_cluster_ip, false,
     "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"},
    {"nodePort range", K_SVC, m_svc_node_port_range, false,
     "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of "
     "valid ports "
     "is 30000-32767"},
    {"second port without name", K_SVC, m_svc_unnamed_second, false, "spec.ports[1].name: Required value"},
    {"duplicate port", K_SVC, m_svc_dup_port, false, "spec.ports[1]: Duplicate value: \"80/TCP\""},
    {"duplicate port name", K_SVC, m_svc_dup_name, false, "spec.ports[1].name: Duplicate value: \"http\""},
    {"clusterIP", K_SVC, m_svc_cluster_ip, false,
     "spec.clusterIP: Invalid value: \"10.0.0.300\": must be a valid IPv4 address (e.g. 10.9.8.7)"},
    {"headless NodePort", K_SVC, m_svc_headless_node_port, false,
     "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services"},
    {"sessionAffinity", K_SVC, m_svc_affinity, false,
     "spec.sessionAffinity: Unsupported value: \"Sticky\": supported values: \"None\", \"ClientIP\""},
    {"selector key", K_SVC, m_svc_selector, false,
     "spec.selector: Invalid value: \"-app\": name part " QNAME_CHARS},
    {"service protocol", K_SVC, m_svc_protocol, false,
     "spec.ports[0].protocol: Unsupported value: \"ICMP\": supported values: \"TCP\", \"UDP\", \"SCTP\""},
    {"externalIPs", K_SVC, m_svc_external_ip, false,
     "spec.externalIPs[0]: Invalid value: \"example.com\": must be a valid IP address"},

    /* workloads */
    {"replicaset without selector", K_RS, m_rs_no_selector, false, "spec.selector: Required value"},
    {"selector does not match template", K_RS, m_rs_selector_mismatch, false,
     "spec.template.metadata.labels: Invalid value: \"app=web\": `selector` does not match template "
     "`labels`"},
    {"negative replicas", K_RS, m_rs_replicas, false,
     "spec.replicas: Invalid value: -1: must be greater than or equal to 0"},
    {"template restartPolicy", K_RS, m_rs_restart_never, false,
     "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\""},
    {"replicaset without template", K_RS, m_rs_no_template, false, "spec.template: Required value"},
    {"empty selector", K_DEP, m_dep_empty_selector, false,
     "spec.selector: Invalid value: \"{}\": empty selector is invalid for deployment"},
    {"strategy type", K_DEP, m_dep_strategy, false,
     "spec.strategy.type: Unsupported value: \"BlueGreen\": supported values: \"Recreate\", "
     "\"RollingUpdate\""},
    {"Recreate with rollingUpdate", K_DEP, m_dep_recreate_rolling, false,
     "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"},
    {"maxUnavailable over 100%", K_DEP, m_dep_max_unavailable_150, false,
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"150%\": must not be greater than 100%"},
    {"maxSurge not a percentage", K_DEP, m_dep_max_surge_text, false,
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: \"abc\": a valid percent string must be a numeric "
     "string "
     "followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')"},
    {"maxSurge and maxUnavailable both 0", K_DEP, m_dep_both_zero, false,
     "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0"},
    {"negative maxSurge", K_DEP, m_dep_max_surge_negative, false,
     "spec.strategy.rollingUpdate.maxSurge: Invalid value: -1: must be greater than or equal to 0"},
    {"revisionHistoryLimit", K_DEP, m_dep_history, false,
     "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"},
    {"progressDeadlineSeconds", K_DEP, m_dep_deadline, false,
     "spec.progressDeadlineSeconds: Invalid value: 30: must be greater than minReadySeconds"},
    {"template image", K_DEP, m_dep_template_image, false,
     "spec.template.spec.containers[0].image: Required value"},
    {"selector expression without values", K_DEP, m_dep_expression_no_values, false,
     "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or "
     "'NotIn'"},
    {"selector expression operator", K_DEP, m_dep_expression_operator, false,
     "spec.selector.matchExpressions[0].operator: Unsupported value: \"Has\": supported values: \"In\", "
     "\"NotIn\", "
     "\"Exists\", \"DoesNotExist\""},
    {"deployment replicas", K_DEP, m_dep_replicas, false,
     "spec.replicas: Invalid value: -2: must be greater than or equal to 0"},

    /* node */
    {"taint without effect", K_NODE, m_taint_no_effect, false, "spec.taints[0].effect: Required value"},
    {"duplicate taint", K_NODE, m_taint_dup, false,
     "spec.taints[1]: Duplicate value: \"dedicated:NoSchedule\": taints must be unique by key and effect "
     "pair"},
    {"taint key", K_NODE, m_taint_key, false,
     "spec.taints[0].key: Invalid value: \"-dedicated\": name part " QNAME_CHARS},
    {"podCIDR", K_NODE, m_pod_cidr, false,
     "spec.podCIDR: Invalid value: \"10.244.1.0/33\": must be a valid CIDR"},
    {"capacity quantity", K_NODE, m_capacity, false,
     "status.capacity[cpu]: Invalid value: \"four\": must match the regular expression "
     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"},
    {"node address", K_NODE, m_node_address, false,
     "status.addresses[0].address: Invalid value: \"10.0.0\": must be a valid IP address"},

    /* namespace */
    {"namespace phase", K_NS, m_ns_phase, true,
     "status.phase: Unsupported value: \"Gone\": supported values: \"Active\", \"Terminating\""},
    {"namespace finalizer", K_NS, m_ns_finalizer, true,
     "spec.finalizers[0]: Invalid value: \"custom\": name is neither a standard finalizer name nor is it "
     "fully "
     "qualified"},

    /* endpoints */
    {"endpoint address", K_EP, m_ep_ip, false,
     "subsets[0].addresses[0].ip: Invalid value: \"10.244.1\": must be a valid IP address"},
    {"endpoint port", K_EP, m_ep_port, false,
     "subsets[0].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"},
    {"endpoint protocol", K_EP, m_ep_protocol, false,
     "subsets[0].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"TCP\", \"UDP\", "
     "\"SCTP\""},
    {"endpoint subset without addresses", K_EP, m_ep_no_addresses, false,
     "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"},

    /* event */
    {"event involvedObject.name", K_EV, m_ev_no_name, false, "involvedObject.name: Required value"},
    {"event involvedObject.kind", K_EV, m_ev_no_kind, false, "involvedObject.kind: Required value"},
    {"event namespace mismatch", K_EV, m_ev_namespace, false,
     "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace"},
    {"event type", K_EV, m_ev_type, false,
     "type: Unsupported value: \"Info\": supported values: \"Normal\", \"Warning\""},

    /* lease */
    {"leaseDurationSeconds", K_LEASE, m_lease_duration, false,
     "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"},
    {"leaseTransitions", K_LEASE, m_lease_transitions, false,
     "spec.leaseTransitions: Invalid value: -1: must be greater than or equal to 0"},
};

static void test_invalid_objects(void **state) {
  (void)state;
  size_t failures = 0;
  for (size_t i = 0; i < sizeof invalid_cases / sizeof invalid_cases[0]; i++) {
    const invalid_case *c = &invalid_cases[i];
    ProtobufCMessage *o = tbuild(c->kind);
    if (!c->after_defaults) c->mutate(o);
    api_default(tkind_of(c->kind), o);
    if (c->after_defaults) c->mutate(o);
    keel_error err;
    int rc = tvalidate(c->kind, o, NULL, NULL, &err);
    char want[4096];
    if (c->want[0] == '!')
      snprintf(want, sizeof want, "%s", c->want + 1);
    else
      snprintf(want, sizeof want, "%s%s", tprefix(c->kind), c->want);
    if (rc != -EINVAL || err.code != EINVAL || strcmp(err.message, want) != 0) {
      print_error("case \"%s\":\n  want: %s\n  got:  (%d) %s\n", c->name, want, rc, err.message);
      failures++;
    }
    tfree(o);
  }
  if (failures)
    fail_msg("%zu of %zu invalid cases failed", failures, sizeof invalid_cases / sizeof invalid_cases[0]);
  assert_true(sizeof invalid_cases / sizeof invalid_cases[0] >= 60);
}

/* ---------------------------------------------------------------- several errors */

static void test_several_errors_listed(void **state) {
  (void)state;
  ProtobufCMessage *o = tbuild(K_POD);
  tstr(&C0(o)->image, "");
  C0(o)->ports[0]->container_port = 70000;
  tstr(&POD(o)->spec->restart_policy, "Sometimes");
  api_default(tkind_of(K_POD), o);
  keel_error err;
  assert_int_equal(tvalidate(K_POD, o, NULL, NULL, &err), -EINVAL);
  assert_string_equal(
      err.message,
      "Pod \"web\" is invalid: 3 errors: spec.containers[0].image: Required value; "
      "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, "
      "inclusive; spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", "
      "\"OnFailure\", \"Never\"");
  tfree(o);
}

static void test_long_report_is_cut(void **state) {
  (void)state;
  ProtobufCMessage *o = tbuild(K_POD);
  for (int i = 0; i < 40; i++) {
    char key[32];
    snprintf(key, sizeof key, "bad key %d", i);
    TLABEL(POD(o)->metadata, key, "v");
  }
  api_default(tkind_of(K_POD), o);
  keel_error err;
  assert_int_equal(tvalidate(K_POD, o, NULL, NULL, &err), -EINVAL);
  size_t len = strlen(err.message);
  assert_int_equal(len, sizeof err.message - 1);
  assert_string_equal(err.message + len - 3, "...");
  assert_non_null(strstr(err.message,
                         "Pod \"web\" is invalid: 40 errors: metadata.labels: Invalid value: \"bad key 0\""));
  tfree(o);
}

static void test_bad_arguments(void **state) {
  (void)state;
  ProtobufCMessage *pod = tvalid(K_POD);
  keel_error err;
  assert_int_equal(api_validate(tkind_of(K_SVC), pod, NULL, NULL, &err), -EINVAL);
  assert_non_null(strstr(err.message, "not a Service"));
  assert_int_equal(api_validate(tkind_of(K_POD), pod, NULL, "scale", &err), -EINVAL);
  assert_non_null(strstr(err.message, "unknown subresource"));
  assert_int_equal(api_validate(tkind_of(K_POD), pod, NULL, NULL, NULL), 0);
  api_default(tkind_of(K_SVC), pod); /* wrong kind: ignored */
  tfree(pod);
}

/* ---------------------------------------------------------------- robustness */

/* Visits the non-NULL singular sub-messages of m depth first; the target-th
 * one (0-based) is freed and set to NULL. Returns true once it removed one. */
static bool drop_submessage(ProtobufCMessage *m, int *counter, int target) {
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)((char *)m + f->quantifier_offset);
      ProtobufCMessage **arr = *(ProtobufCMessage ***)((char *)m + f->offset);
      for (size_t k = 0; k < n; k++)
        if (drop_submessage(arr[k], counter, target)) return true;
      continue;
    }
    ProtobufCMessage **slot = (ProtobufCMessage **)((char *)m + f->offset);
    if (!*slot) continue;
    if ((*counter)++ == target) {
      tfree(*slot);
      *slot = NULL;
      return true;
    }
    if (drop_submessage(*slot, counter, target)) return true;
  }
  return false;
}

/* Every object with any one sub-message missing is defaulted and validated
 * (create, update, status) without crashing; ASan checks the memory. */
static void test_missing_submessages_do_not_crash(void **state) {
  (void)state;
  static const char *const subs[] = {NULL, "status", "binding"};
  for (enum tkind k = K_POD; k <= K_LEASE; k++) {
    ProtobufCMessage *full = tvalid(k);
    for (int target = 0;; target++) {
      for (int pass = 0; pass < 2; pass++) {
        ProtobufCMessage *o = pass ? tclone(full) : tbuild(k);
        int counter = 0;
        if (!drop_submessage(o, &counter, target)) {
          tfree(o);
          if (pass) goto next_kind;
          continue;
        }
        keel_error err;
        for (size_t s = 0; s < 3; s++) {
          if (s == 2 && k != K_POD) continue;
          (void)tvalidate(k, o, NULL, subs[s], &err);
          (void)tvalidate(k, o, full, subs[s], &err);
          (void)tvalidate(k, full, o, subs[s], &err);
        }
        api_default(tkind_of(k), o);
        (void)tvalidate(k, o, NULL, NULL, &err);
        (void)tvalidate(k, o, full, NULL, &err);
        tfree(o);
      }
    }
  next_kind:
    tfree(full);
  }
}

static void test_empty_objects(void **state) {
  (void)state;
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++) {
    ProtobufCMessage *o = api_message_new(ks[i].object);
    assert_non_null(o);
    keel_error err;
    assert_int_equal(api_validate(&ks[i], o, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "metadata.name: Required value"));
    (void)api_validate(&ks[i], o, o, "status", &err);
    api_default(&ks[i], o);
    assert_int_equal(api_validate(&ks[i], o, NULL, NULL, &err), -EINVAL);
    tfree(o);
  }
}

/* Map entries whose value message is absent (legal on the wire). */
static void test_absent_map_values(void **state) {
  (void)state;
  ProtobufCMessage *o = tbuild(K_POD);
  Keel__Api__V1__ResourceRequirements *r = C0(o)->resources;
  tfree(r->limits[1]->value);
  r->limits[1]->value = NULL;
  api_default(tkind_of(K_POD), o);
  assert_int_equal(r->n_requests, 1); /* nothing to copy from an absent value */
  keel_error err;
  assert_int_equal(tvalidate(K_POD, o, NULL, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Pod \"web\" is invalid: spec.containers[0].resources.limits[memory]: Invalid value: "
                      "\"\": must not be empty");
  tfree(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_objects_pass),
      cmocka_unit_test(test_generate_name_without_name),
      cmocka_unit_test(test_invalid_objects),
      cmocka_unit_test(test_several_errors_listed),
      cmocka_unit_test(test_long_report_is_cut),
      cmocka_unit_test(test_bad_arguments),
      cmocka_unit_test(test_missing_submessages_do_not_crash),
      cmocka_unit_test(test_empty_objects),
      cmocka_unit_test(test_absent_map_values),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
