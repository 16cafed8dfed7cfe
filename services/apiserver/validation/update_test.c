/* services/apiserver/validation/update_test.c — the update rules: what a Pod
 * update may change, nodeName and binding, status updates, immutable
 * clusterIP, selectors and podCIDR, the nodePort range and Scale. */
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

/* ---------------------------------------------------------------- updates */

/* Validates an update of a defaulted valid object after mutate; returns the message ("" if valid). */
static const char *update_result(enum tkind k, void (*mutate)(ProtobufCMessage *), const char *sub,
                                 keel_error *err) {
  ProtobufCMessage *old = tvalid(k);
  ProtobufCMessage *o = tclone(old);
  mutate(o);
  api_default(tkind_of(k), o);
  int rc = tvalidate(k, o, old, sub, err);
  if (rc == 0) err->message[0] = '\0';
  tfree(o);
  tfree(old);
  return err->message;
}

static void u_image(ProtobufCMessage *o) { tstr(&C0(o)->image, "nginx:1.26"); }
static void u_grace(ProtobufCMessage *o) { POD(o)->spec->termination_grace_period_seconds->value = 5; }
static void u_add_toleration(ProtobufCMessage *o) {
  TPUSH(POD(o)->spec, tolerations, ttoleration("dedicated", "Exists", NULL, "NoSchedule"));
}
static void u_active_deadline(ProtobufCMessage *o) { POD(o)->spec->active_deadline_seconds = tint64(600); }
static void u_node_selector(ProtobufCMessage *o) {
  Keel__Api__V1__PodSpec *s = POD(o)->spec;
  tmap(&s->n_node_selector, &s->node_selector, &keel__api__v1__pod_spec__node_selector_entry__descriptor,
       "disk", "ssd");
}
static void u_container_port(ProtobufCMessage *o) { C0(o)->ports[0]->container_port = 81; }
static void u_labels(ProtobufCMessage *o) { TLABEL(POD(o)->metadata, "tier", "frontend"); }
static void u_set_node_name(ProtobufCMessage *o) { tstr(&POD(o)->spec->node_name, "node-1"); }
static void u_rename(ProtobufCMessage *o) { tstr(&POD(o)->metadata->name, "web2"); }

static void test_pod_update_rules(void **state) {
  (void)state;
  keel_error err;
  assert_string_equal(update_result(K_POD, u_image, NULL, &err), "");
  assert_string_equal(update_result(K_POD, u_grace, NULL, &err), "");
  assert_string_equal(update_result(K_POD, u_add_toleration, NULL, &err), "");
  assert_string_equal(update_result(K_POD, u_active_deadline, NULL, &err), "");
  assert_string_equal(update_result(K_POD, u_labels, NULL, &err), "");
  const char *forbidden =
      "Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than "
      "`spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, "
      "`spec.tolerations` (only additions to existing tolerations), `spec.terminationGracePeriodSeconds`";
  assert_string_equal(update_result(K_POD, u_node_selector, NULL, &err), forbidden);
  assert_string_equal(update_result(K_POD, u_container_port, NULL, &err), forbidden);
  assert_string_equal(
      update_result(K_POD, u_set_node_name, NULL, &err),
      "Pod \"web\" is invalid: spec.nodeName: Forbidden: may not be set by an update: bind the pod "
      "(Pods/Bind)");
  assert_string_equal(update_result(K_POD, u_set_node_name, "binding", &err), "");
  assert_string_equal(update_result(K_POD, u_rename, NULL, &err),
                      "Pod \"web2\" is invalid: metadata.name: Invalid value: \"web2\": field is immutable");
  /* status updates ignore spec differences (the apiserver keeps the stored spec) */
  assert_string_equal(update_result(K_POD, u_node_selector, "status", &err), "");
}

static void test_pod_update_node_name_and_tolerations(void **state) {
  (void)state;
  keel_error err;
  ProtobufCMessage *old = tvalid(K_POD);
  tstr(&POD(old)->spec->node_name, "node-1");
  TPUSH(POD(old)->spec, tolerations, ttoleration("dedicated", "Equal", "infra", "NoExecute"));
  POD(old)->spec->tolerations[0]->toleration_seconds = tint64(300);
  POD(old)->spec->active_deadline_seconds = tint64(600);

  /* nodeName may not change once set */
  ProtobufCMessage *o = tclone(old);
  tstr(&POD(o)->spec->node_name, "node-2");
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Pod \"web\" is invalid: spec.nodeName: Invalid value: \"node-2\": field is immutable");
  assert_int_equal(tvalidate(K_POD, o, old, "binding", &err), -EINVAL);
  tfree(o);

  /* tolerationSeconds may change; removing a toleration may not */
  o = tclone(old);
  POD(o)->spec->tolerations[0]->toleration_seconds->value = 60;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), 0);
  tfree(o);
  o = tclone(old);
  tfree(POD(o)->spec->tolerations[0]);
  POD(o)->spec->n_tolerations = 0;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Pod \"web\" is invalid: spec.tolerations: Forbidden: existing toleration can not "
                      "be modified except its tolerationSeconds");
  tfree(o);

  /* activeDeadlineSeconds may only shrink, and not go away */
  o = tclone(old);
  POD(o)->spec->active_deadline_seconds->value = 900;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Pod \"web\" is invalid: spec.activeDeadlineSeconds: Invalid value: 900: must be "
                      "less than or equal to previous value");
  POD(o)->spec->active_deadline_seconds->value = 300;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), 0);
  tfree(o);
  o = tclone(old);
  google__protobuf__int64_value__free_unpacked(POD(o)->spec->active_deadline_seconds, NULL);
  POD(o)->spec->active_deadline_seconds = NULL;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), -EINVAL);
  assert_non_null(strstr(err.message,
                         "spec.activeDeadlineSeconds: Invalid value: \"nil\": must not update from a "
                         "positive integer to nil value"));
  tfree(o);
  tfree(old);
}

static void test_pod_update_map_order(void **state) {
  (void)state;
  /* The same labels or limits in another order are not a change. */
  ProtobufCMessage *old = tvalid(K_POD);
  Keel__Api__V1__PodSpec *s = POD(old)->spec;
  tmap(&s->n_node_selector, &s->node_selector, &keel__api__v1__pod_spec__node_selector_entry__descriptor, "a",
       "1");
  tmap(&s->n_node_selector, &s->node_selector, &keel__api__v1__pod_spec__node_selector_entry__descriptor, "b",
       "2");
  ProtobufCMessage *o = tclone(old);
  Keel__Api__V1__PodSpec *n = POD(o)->spec;
  Keel__Api__V1__PodSpec__NodeSelectorEntry *tmp = n->node_selector[0];
  n->node_selector[0] = n->node_selector[1];
  n->node_selector[1] = tmp;
  Keel__Api__V1__ResourceRequirements *r = n->containers[0]->resources;
  Keel__Api__V1__ResourceRequirements__LimitsEntry *l = r->limits[0];
  r->limits[0] = r->limits[1];
  r->limits[1] = l;
  keel_error err;
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), 0);
  tstr(&n->node_selector[0]->value, "3");
  assert_int_equal(tvalidate(K_POD, o, old, NULL, &err), -EINVAL);
  tfree(o);
  tfree(old);
}

static void s_phase(ProtobufCMessage *o) {
  POD(o)->status = tnew(&keel__api__v1__pod_status__descriptor);
  tstr(&POD(o)->status->phase, "Sleeping");
}
static void s_pod_ip(ProtobufCMessage *o) {
  POD(o)->status = tnew(&keel__api__v1__pod_status__descriptor);
  tstr(&POD(o)->status->phase, "Running");
  tstr(&POD(o)->status->pod_ip, "10.244.1.300");
}
static void s_ok(ProtobufCMessage *o) {
  POD(o)->status = tnew(&keel__api__v1__pod_status__descriptor);
  tstr(&POD(o)->status->phase, "Running");
  tstr(&POD(o)->status->pod_ip, "10.244.1.7");
  tstr(&POD(o)->status->host_ip, "10.0.0.11");
  Keel__Api__V1__PodIP *ip = TPUSH(POD(o)->status, pod_ips, tnew(&keel__api__v1__pod_ip__descriptor));
  tstr(&ip->ip, "10.244.1.7");
}
static void s_ips_mismatch(ProtobufCMessage *o) {
  s_ok(o);
  tstr(&POD(o)->status->pod_ips[0]->ip, "10.244.1.8");
}

static void test_pod_status_update(void **state) {
  (void)state;
  keel_error err;
  assert_string_equal(update_result(K_POD, s_ok, "status", &err), "");
  assert_string_equal(
      update_result(K_POD, s_phase, "status", &err),
      "Pod \"web\" is invalid: status.phase: Unsupported value: \"Sleeping\": supported values: "
      "\"Pending\", \"Running\", \"Succeeded\", \"Failed\", \"Unknown\"");
  assert_string_equal(
      update_result(K_POD, s_pod_ip, "status", &err),
      "Pod \"web\" is invalid: status.podIP: Invalid value: \"10.244.1.300\": must be a valid IP address");
  assert_string_equal(
      update_result(K_POD, s_ips_mismatch, "status", &err),
      "Pod \"web\" is invalid: status.podIPs[0].ip: Invalid value: \"10.244.1.8\": must match `podIP`");

  /* a terminal phase is final */
  ProtobufCMessage *old = tvalid(K_POD);
  POD(old)->status = tnew(&keel__api__v1__pod_status__descriptor);
  tstr(&POD(old)->status->phase, "Succeeded");
  ProtobufCMessage *o = tclone(old);
  tstr(&POD(o)->status->phase, "Running");
  assert_int_equal(tvalidate(K_POD, o, old, "status", &err), -EINVAL);
  assert_string_equal(err.message,
                      "Pod \"web\" is invalid: status.phase: Forbidden: may not transition from a "
                      "terminal phase (Succeeded, Failed)");
  tfree(o);
  tfree(old);
}

static void test_service_update_cluster_ip(void **state) {
  (void)state;
  keel_error err;
  ProtobufCMessage *old = tbuild(K_SVC);
  tstr(&SVC(old)->spec->cluster_ip, "10.96.0.20");
  api_default(tkind_of(K_SVC), old);
  ProtobufCMessage *o = tclone(old);
  tstr(&SVC(o)->spec->cluster_ip, "10.96.0.21");
  tstr(&SVC(o)->spec->cluster_ips[0], "10.96.0.21");
  assert_int_equal(tvalidate(K_SVC, o, old, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Service \"web\" is invalid: spec.clusterIP: Invalid value: \"10.96.0.21\": field is "
                      "immutable");
  tfree(o);
  /* leaving it empty keeps the allocated one (the apiserver copies it) */
  o = tclone(old);
  tstr(&SVC(o)->spec->cluster_ip, "");
  SVC(o)->spec->n_cluster_ips = 0;
  free(SVC(o)->spec->cluster_ips[0]);
  assert_int_equal(tvalidate(K_SVC, o, old, NULL, &err), 0);
  /* type ClusterIP -> NodePort is allowed */
  tstr(&SVC(o)->spec->type, "NodePort");
  SVC(o)->spec->ports[0]->node_port = 30080;
  tstr(&SVC(o)->spec->external_traffic_policy, "Cluster");
  assert_int_equal(tvalidate(K_SVC, o, old, NULL, &err), 0);
  tfree(o);
  tfree(old);
}

static void test_node_port_range(void **state) {
  (void)state;
  keel_error err;
  int min, max;
  api_validation_node_port_range(&min, &max);
  assert_int_equal(min, 30000);
  assert_int_equal(max, 32767);
  assert_int_equal(api_validation_set_node_port_range(40000, 30000), -EINVAL);
  assert_int_equal(api_validation_set_node_port_range(0, 100), -EINVAL);
  assert_int_equal(api_validation_set_node_port_range(20000, 20100), 0);
  ProtobufCMessage *o = tbuild(K_SVC);
  tstr(&SVC(o)->spec->type, "NodePort");
  SVC(o)->spec->ports[0]->node_port = 20050;
  api_default(tkind_of(K_SVC), o);
  assert_int_equal(tvalidate(K_SVC, o, NULL, NULL, &err), 0);
  SVC(o)->spec->ports[0]->node_port = 30080;
  assert_int_equal(tvalidate(K_SVC, o, NULL, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided "
                      "port is not in the valid range. The range of valid ports is 20000-20100");
  SVC(o)->spec->ports[0]->node_port = 0; /* 0: the apiserver allocates one */
  assert_int_equal(tvalidate(K_SVC, o, NULL, NULL, &err), 0);
  assert_int_equal(api_validation_set_node_port_range(30000, 32767), 0);
  tfree(o);
}

static void test_selector_immutable(void **state) {
  (void)state;
  keel_error err;
  for (enum tkind k = K_RS; k <= K_DEP; k++) {
    ProtobufCMessage *old = tvalid(k);
    ProtobufCMessage *o = tclone(old);
    Keel__Api__V1__LabelSelector *sel = k == K_RS ? RS(o)->spec->selector : DEP(o)->spec->selector;
    Keel__Api__V1__PodTemplateSpec *t = k == K_RS ? RS(o)->spec->template_ : DEP(o)->spec->template_;
    tmap(&sel->n_match_labels, &sel->match_labels,
         &keel__api__v1__label_selector__match_labels_entry__descriptor, "tier", "fe");
    TLABEL(t->metadata, "tier", "fe");
    assert_int_equal(tvalidate(k, o, old, NULL, &err), -EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%sspec.selector: Invalid value: \"app=web,tier=fe\": field is immutable",
             tprefix(k));
    assert_string_equal(err.message, want);
    /* other spec changes are fine */
    tfree(o);
    o = tclone(old);
    if (k == K_RS)
      RS(o)->spec->replicas->value = 7;
    else
      DEP(o)->spec->replicas->value = 7;
    assert_int_equal(tvalidate(k, o, old, NULL, &err), 0);
    tfree(o);
    tfree(old);
  }
}

static void test_workload_status(void **state) {
  (void)state;
  keel_error err;
  ProtobufCMessage *old = tvalid(K_DEP);
  ProtobufCMessage *o = tclone(old);
  DEP(o)->status = tnew(&keel__api__v1__deployment_status__descriptor);
  DEP(o)->status->replicas = 2;
  DEP(o)->status->ready_replicas = 2;
  DEP(o)->status->available_replicas = 3;
  assert_int_equal(tvalidate(K_DEP, o, old, "status", &err), -EINVAL);
  assert_string_equal(err.message,
                      "Deployment.apps \"web\" is invalid: 2 errors: status.availableReplicas: Invalid "
                      "value: 3: cannot be greater than status.replicas; status.availableReplicas: "
                      "Invalid value: 3: cannot be greater than readyReplicas");
  DEP(o)->status->available_replicas = 2;
  assert_int_equal(tvalidate(K_DEP, o, old, "status", &err), 0);
  tfree(o);
  tfree(old);

  old = tvalid(K_RS);
  o = tclone(old);
  RS(o)->status = tnew(&keel__api__v1__replica_set_status__descriptor);
  RS(o)->status->replicas = -1;
  assert_int_equal(tvalidate(K_RS, o, old, "status", &err), -EINVAL);
  assert_string_equal(
      err.message,
      "ReplicaSet.apps \"web-rs\" is invalid: status.replicas: Invalid value: -1: must be greater than "
      "or equal to 0");
  tfree(o);
  tfree(old);
}

static void test_node_update(void **state) {
  (void)state;
  keel_error err;
  ProtobufCMessage *old = tvalid(K_NODE);
  ProtobufCMessage *o = tclone(old);
  tstr(&NODE(o)->spec->pod_cidr, "10.244.2.0/24");
  assert_int_equal(tvalidate(K_NODE, o, old, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Node \"node-1\" is invalid: spec.podCIDR: Forbidden: node updates may not change "
                      "podCIDR except from \"\" to a valid value");
  tfree(o);
  /* from "" to a value is fine */
  tstr(&NODE(old)->spec->pod_cidr, "");
  o = tclone(old);
  tstr(&NODE(o)->spec->pod_cidr, "10.244.2.0/24");
  NODE(o)->spec->unschedulable = 1;
  assert_int_equal(tvalidate(K_NODE, o, old, NULL, &err), 0);
  /* status updates check the status */
  tstr(&NODE(o)->status->allocatable[0]->value->string, "7 Gi");
  assert_int_equal(tvalidate(K_NODE, o, old, "status", &err), -EINVAL);
  assert_non_null(strstr(err.message, "status.allocatable[memory]: Invalid value: \"7 Gi\""));
  tfree(o);
  tfree(old);
}

static void test_scale(void **state) {
  (void)state;
  keel_error err;
  Keel__Api__V1__Scale *s = tnew(&keel__api__v1__scale__descriptor);
  s->metadata = tmeta("web", "default");
  s->spec = tnew(&keel__api__v1__scale_spec__descriptor);
  s->spec->replicas = 4;
  assert_int_equal(api_validate_scale("Deployment.apps", s, &err), 0);
  s->spec->replicas = -1;
  assert_int_equal(api_validate_scale("Deployment.apps", s, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be "
                      "greater than or equal to 0");
  assert_int_equal(api_validate_scale(NULL, s, &err), -EINVAL);
  assert_non_null(strstr(err.message, "Scale \"web\" is invalid"));
  tfree(s);
}

static void test_event_cluster_scoped_object(void **state) {
  (void)state;
  keel_error err;
  ProtobufCMessage *o = tvalid(K_EV);
  tstr(&EV(o)->involved_object->kind, "Node");
  tstr(&EV(o)->involved_object->name, "node-1");
  tstr(&EV(o)->involved_object->namespace_, "");
  tstr(&EV(o)->metadata->namespace_, "kube-system");
  assert_int_equal(tvalidate(K_EV, o, NULL, NULL, &err), -EINVAL);
  assert_string_equal(err.message,
                      "Event \"web.17a8f9c\" is invalid: involvedObject.namespace: Invalid value: \"\": "
                      "does not match event.namespace");
  tstr(&EV(o)->metadata->namespace_, "default");
  assert_int_equal(tvalidate(K_EV, o, NULL, NULL, &err), 0);
  tfree(o);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pod_update_rules),
      cmocka_unit_test(test_pod_update_node_name_and_tolerations),
      cmocka_unit_test(test_pod_update_map_order),
      cmocka_unit_test(test_pod_status_update),
      cmocka_unit_test(test_service_update_cluster_ip),
      cmocka_unit_test(test_node_port_range),
      cmocka_unit_test(test_selector_immutable),
      cmocka_unit_test(test_workload_status),
      cmocka_unit_test(test_node_update),
      cmocka_unit_test(test_scale),
      cmocka_unit_test(test_event_cluster_scoped_object),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
