/* common/protojson/protojson_test.c — Kubernetes manifests through keel.api.v1:
 * JSON -> proto -> JSON gives the manifest again, and the C structs hold what
 * the manifest says. */
#include "common/protojson/testdata/manifests.h"
#include "common/protojson/testdata/testutil.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

static protojson *g_pj;

static int setup(void **state) {
  (void)state;
  g_pj = tu_create();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  protojson_destroy(g_pj);
  return 0;
}

/* The Quantity under key in a map<string, Quantity>, or NULL. */
static const char *quantity(size_t n, Keel__Api__V1__ResourceRequirements__LimitsEntry **e,
                            const char *key) {
  for (size_t i = 0; i < n; i++)
    if (strcmp(e[i]->key, key) == 0) return e[i]->value ? e[i]->value->string : NULL;
  return NULL;
}

static void test_deployment(void **state) {
  (void)state;
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)tu_roundtrip(
      g_pj, &keel__api__v1__deployment__descriptor, pj_deployment_json, NULL);
  assert_string_equal(d->api_version, "apps/v1");
  assert_string_equal(d->metadata->name, "nginx-deployment");
  assert_non_null(d->spec->replicas);
  assert_int_equal(d->spec->replicas->value, 3);
  assert_int_equal(d->spec->revision_history_limit->value, 10);
  assert_null(d->spec->progress_deadline_seconds);
  assert_int_equal(d->spec->selector->n_match_labels, 1);
  assert_string_equal(d->spec->selector->match_labels[0]->key, "app");
  assert_string_equal(d->spec->selector->match_labels[0]->value, "nginx");
  Keel__Api__V1__RollingUpdateDeployment *ru = d->spec->strategy->rolling_update;
  assert_int_equal(ru->max_surge->type, 0);
  assert_int_equal(ru->max_surge->int_val, 1);
  assert_int_equal(ru->max_unavailable->type, 1);
  assert_string_equal(ru->max_unavailable->str_val, "25%");
  Keel__Api__V1__PodSpec *ps = d->spec->template_->spec;
  assert_int_equal(ps->n_containers, 1);
  Keel__Api__V1__Container *c = ps->containers[0];
  assert_string_equal(c->image, "nginx:1.14.2");
  assert_int_equal(c->n_ports, 1);
  assert_int_equal(c->ports[0]->container_port, 80);
  assert_string_equal(c->ports[0]->protocol, "TCP");
  assert_string_equal(c->ports[0]->name, ""); /* absent: protobuf-c's shared default */
  assert_ptr_equal(c->ports[0]->name, protobuf_c_empty_string);
  Keel__Api__V1__ResourceRequirements *r = c->resources;
  assert_int_equal(r->n_requests, 2);
  assert_string_equal(quantity(r->n_requests, (void *)r->requests, "cpu"), "250m");
  assert_string_equal(quantity(r->n_requests, (void *)r->requests, "memory"), "64Mi");
  assert_string_equal(quantity(r->n_limits, r->limits, "cpu"), "500m");
  assert_string_equal(quantity(r->n_limits, r->limits, "memory"), "128Mi");
  protobuf_c_message_free_unpacked(&d->base, NULL);
}

static void test_service(void **state) {
  (void)state;
  Keel__Api__V1__Service *s = (Keel__Api__V1__Service *)tu_roundtrip(
      g_pj, &keel__api__v1__service__descriptor, pj_service_json, NULL);
  assert_string_equal(s->spec->type, "NodePort");
  assert_int_equal(s->spec->n_ports, 2);
  Keel__Api__V1__ServicePort *web = s->spec->ports[0], *metrics = s->spec->ports[1];
  assert_int_equal(web->port, 80);
  assert_int_equal(web->target_port->type, 0);
  assert_int_equal(web->target_port->int_val, 80);
  assert_int_equal(web->node_port, 30007);
  assert_int_equal(metrics->target_port->type, 1);
  assert_string_equal(metrics->target_port->str_val, "http");
  assert_int_equal(metrics->node_port, 0);
  assert_string_equal(s->spec->cluster_ip, "10.96.0.12");
  assert_int_equal(s->spec->n_cluster_ips, 1);
  assert_string_equal(s->spec->selector[0]->key, "app.kubernetes.io/name");
  protobuf_c_message_free_unpacked(&s->base, NULL);
}

static void test_pod_spec(void **state) {
  (void)state;
  Keel__Api__V1__Pod *p =
      (Keel__Api__V1__Pod *)tu_roundtrip(g_pj, &keel__api__v1__pod__descriptor, pj_pod_json, NULL);
  assert_int_equal(p->metadata->generation, 3);
  assert_int_equal(p->metadata->creation_timestamp->seconds, 1714557600); /* 2024-05-01T10:00:00Z */
  assert_int_equal(p->metadata->creation_timestamp->nanos, 0);
  Keel__Api__V1__PodSpec *s = p->spec;
  assert_true(s->host_network);
  assert_int_equal(s->termination_grace_period_seconds->value, 30);
  assert_int_equal(s->n_node_selector, 1);
  assert_string_equal(s->node_selector[0]->key, "disktype");
  assert_string_equal(s->node_selector[0]->value, "ssd");
  assert_int_equal(s->n_containers, 2);
  Keel__Api__V1__Container *c = s->containers[0];
  assert_string_equal(c->liveness_probe->http_get->path, "/healthz");
  assert_int_equal(c->liveness_probe->http_get->port->type, 0);
  assert_int_equal(c->liveness_probe->http_get->port->int_val, 8080);
  assert_string_equal(c->liveness_probe->http_get->http_headers[0]->value, "Awesome");
  assert_int_equal(c->liveness_probe->period_seconds, 3);
  assert_int_equal(c->readiness_probe->tcp_socket->port->type, 1);
  assert_string_equal(c->readiness_probe->tcp_socket->port->str_val, "http");
  assert_null(c->readiness_probe->http_get);
  assert_int_equal(c->n_env, 2);
  assert_string_equal(c->env[1]->value_from->field_ref->field_path, "status.podIP");
  assert_string_equal(c->resources->limits[0]->value->string, "1");
  Keel__Api__V1__ExecAction *ex = s->containers[1]->liveness_probe->exec;
  assert_int_equal(ex->n_command, 2);
  assert_string_equal(ex->command[1], "/tmp/healthy");
  assert_int_equal(s->containers[1]->n_command, 3);
  assert_int_equal(s->n_tolerations, 2);
  assert_null(s->tolerations[0]->toleration_seconds);
  assert_int_equal(s->tolerations[1]->toleration_seconds->value, 3600);
  Keel__Api__V1__NodeAffinity *na = s->affinity->node_affinity;
  Keel__Api__V1__NodeSelectorRequirement *req =
      na->required_during_scheduling_ignored_during_execution->node_selector_terms[0]
          ->match_expressions[0];
  assert_string_equal(req->operator_, "In");
  assert_int_equal(req->n_values, 2);
  assert_string_equal(req->values[1], "antarctica-west1");
  assert_int_equal(na->preferred_during_scheduling_ignored_during_execution[0]->weight, 1);
  assert_string_equal(s->volumes[0]->empty_dir->size_limit->string, "500Mi");
  protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void test_pod_status(void **state) {
  (void)state;
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)tu_roundtrip(g_pj, &keel__api__v1__pod__descriptor,
                                                             pj_pod_status_json, NULL);
  Keel__Api__V1__PodStatus *st = p->status;
  assert_string_equal(st->phase, "Running");
  assert_string_equal(st->pod_ip, "10.244.1.5");
  assert_string_equal(st->host_ip, "172.18.0.3");
  assert_int_equal(st->n_pod_ips, 2);
  assert_string_equal(st->pod_ips[1]->ip, "fd00:10:244:1::5");
  assert_int_equal(st->start_time->seconds, 1714557600);
  Keel__Api__V1__ContainerStatus *cs = st->container_statuses[0];
  assert_true(cs->ready);
  assert_int_equal(cs->restart_count, 2);
  assert_true(cs->started->value);
  assert_int_equal(cs->state->running->started_at->seconds, 1714557603);
  assert_int_equal(cs->last_state->terminated->exit_code, 137);
  assert_int_equal(cs->last_state->terminated->finished_at->nanos, 250000000);
  assert_string_equal(cs->container_id, "containerd://9a8b7c6d5e4f");
  assert_true(p->metadata->owner_references[0]->controller->value);
  assert_int_equal(p->spec->priority->value, 0); /* set to 0: kept, written back */
  protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void test_node(void **state) {
  (void)state;
  Keel__Api__V1__Node *n = (Keel__Api__V1__Node *)tu_roundtrip(
      g_pj, &keel__api__v1__node__descriptor, pj_node_json, NULL);
  assert_string_equal(n->spec->pod_cidr, "10.244.1.0/24");
  assert_string_equal(n->spec->pod_cidrs[0], "10.244.1.0/24");
  Keel__Api__V1__NodeStatus *st = n->status;
  assert_int_equal(st->n_capacity, 5);
  assert_string_equal(quantity(st->n_capacity, (void *)st->capacity, "cpu"), "8");
  assert_string_equal(quantity(st->n_allocatable, (void *)st->allocatable, "cpu"), "7800m");
  assert_string_equal(quantity(st->n_capacity, (void *)st->capacity, "pods"), "110");
  assert_int_equal(st->n_conditions, 2);
  assert_string_equal(st->conditions[1]->type, "Ready");
  assert_int_equal(st->conditions[1]->last_transition_time->seconds, 1714554030);
  assert_int_equal(st->daemon_endpoints->kubelet_endpoint->port, 10250);
  assert_string_equal(st->node_info->machine_id, "3b1e4c1f0b3d4f6c9d6a2b7e8f9a0b1c");
  assert_int_equal(n->spec->taints[0]->time_added->seconds, 1714554000);
  protobuf_c_message_free_unpacked(&n->base, NULL);
}

static void test_namespace(void **state) {
  (void)state;
  Keel__Api__V1__Namespace *ns = (Keel__Api__V1__Namespace *)tu_roundtrip(
      g_pj, &keel__api__v1__namespace__descriptor, pj_namespace_json, NULL);
  assert_string_equal(ns->spec->finalizers[0], "kubernetes");
  assert_string_equal(ns->status->phase, "Active");
  protobuf_c_message_free_unpacked(&ns->base, NULL);
}

/* kubectl create --dry-run -o json writes nulls and defaults; omitempty drops
 * them, and a set but empty message stays {}. */
static void test_kubectl_defaults_normalised(void **state) {
  (void)state;
  const char *in =
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"creationTimestamp\":null,"
      "\"name\":\"x\",\"labels\":{},\"generation\":0},\"spec\":{\"containers\":[{\"name\":\"x\","
      "\"image\":\"busybox\",\"resources\":{},\"ports\":[],\"stdin\":false}],"
      "\"hostNetwork\":false,\"dnsPolicy\":\"ClusterFirst\",\"restartPolicy\":\"Always\","
      "\"nodeName\":\"\",\"priority\":null},\"status\":{}}";
  const char *want =
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\"},\"spec\":{"
      "\"containers\":[{\"name\":\"x\",\"image\":\"busybox\",\"resources\":{}}],"
      "\"dnsPolicy\":\"ClusterFirst\",\"restartPolicy\":\"Always\"},\"status\":{}}";
  Keel__Api__V1__Pod *p =
      (Keel__Api__V1__Pod *)tu_roundtrip(g_pj, &keel__api__v1__pod__descriptor, in, want);
  assert_null(p->metadata->creation_timestamp);
  assert_null(p->spec->priority);
  assert_non_null(p->status);
  assert_non_null(p->spec->containers[0]->resources);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  /* restartCount: 0 and ready: false are omitted, as every proto3 default. */
  tu_roundtrip_free(g_pj, &keel__api__v1__container_status__descriptor,
                    "{\"name\":\"c\",\"ready\":false,\"restartCount\":0,\"started\":false}",
                    "{\"name\":\"c\",\"started\":false}");
}

/* "cpu: 1" in YAML: a number becomes the quantity's decimal text. */
static void test_quantity_numbers(void **state) {
  (void)state;
  tu_roundtrip_free(g_pj, &keel__api__v1__resource_requirements__descriptor,
                    "{\"limits\":{\"cpu\":1,\"memory\":134217728,\"ephemeral\":0.5,\"big\":1e3}}",
                    "{\"limits\":{\"cpu\":\"1\",\"memory\":\"134217728\",\"ephemeral\":\"0.5\","
                    "\"big\":\"1000\"}}");
  /* Quantity syntax is the apiserver's to check. */
  tu_roundtrip_free(g_pj, &keel__api__v1__resource_requirements__descriptor,
                    "{\"limits\":{\"cpu\":\"not a quantity\",\"x\":\"\"}}", NULL);
}

static void test_to_string(void **state) {
  (void)state;
  keel_error err = {0};
  const char *in =
      "{\"kind\":\"Namespace\",\"apiVersion\":\"v1\",\"metadata\":{\"name\":\"dev\","
      "\"labels\":{\"b\":\"2\",\"a\":\"1\"}},\"status\":{}}";
  ProtobufCMessage *m =
      protojson_from_string(g_pj, &keel__api__v1__namespace__descriptor, in, strlen(in), &err);
  assert_non_null(m);
  /* Fields in proto order, map keys sorted (as Go writes them). */
  char *s = protojson_to_string(g_pj, m, 0, &err);
  assert_string_equal(s,
                      "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\",\"metadata\":{\"name\":"
                      "\"dev\",\"labels\":{\"a\":\"1\",\"b\":\"2\"}},\"status\":{}}");
  free(s);
  s = protojson_to_string(g_pj, m, PROTOJSON_PRETTY, &err);
  assert_string_equal(s,
                      "{\n"
                      "  \"apiVersion\": \"v1\",\n"
                      "  \"kind\": \"Namespace\",\n"
                      "  \"metadata\": {\n"
                      "    \"name\": \"dev\",\n"
                      "    \"labels\": {\n"
                      "      \"a\": \"1\",\n"
                      "      \"b\": \"2\"\n"
                      "    }\n"
                      "  },\n"
                      "  \"status\": {}\n"
                      "}");
  free(s);
  protobuf_c_message_free_unpacked(m, NULL);
  /* An empty message is {}. */
  Keel__Api__V1__Pod pod = KEEL__API__V1__POD__INIT;
  s = protojson_to_string(g_pj, &pod.base, 0, &err);
  assert_string_equal(s, "{}");
  free(s);
}

static void test_json_names(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *st = &keel__api__v1__pod_status__descriptor;
  const ProtobufCFieldDescriptor *pod_ip =
      protobuf_c_message_descriptor_get_field_by_name(st, "pod_ip");
  const ProtobufCFieldDescriptor *start =
      protobuf_c_message_descriptor_get_field_by_name(st, "start_time");
  assert_string_equal(protojson_field_json_name(g_pj, st, pod_ip), "podIP");
  assert_string_equal(protojson_field_json_name(g_pj, st, start), "startTime");
  const ProtobufCMessageDescriptor *de = &keel__api__v1__daemon_endpoint__descriptor;
  assert_string_equal(protojson_field_json_name(g_pj, de, &de->fields[0]), "Port");
  const ProtobufCMessageDescriptor *ns = &keel__api__v1__node_spec__descriptor;
  assert_string_equal(
      protojson_field_json_name(g_pj, ns, protobuf_c_message_descriptor_get_field(ns, 2)),
      "podCIDRs");

  /* Without descriptor sets every name is lowerCamelCase, and the pointer
   * handed out stays the same. */
  keel_error err = {0};
  protojson *bare = protojson_create(NULL, 0, &err);
  assert_non_null(bare);
  const char *a = protojson_field_json_name(bare, st, pod_ip);
  assert_string_equal(a, "podIp");
  assert_ptr_equal(protojson_field_json_name(bare, st, pod_ip), a);
  assert_string_equal(protojson_field_json_name(bare, st, start), "startTime");
  /* ... so podIP is then unknown, and podIp / pod_ip are what it takes. */
  const char *in = "{\"status\":{\"podIp\":\"10.0.0.1\"}}";
  tu_roundtrip_free(bare, &keel__api__v1__pod__descriptor, in, NULL);
  tu_expect_error(bare, &keel__api__v1__pod__descriptor, "{\"status\":{\"podIP\":\"10.0.0.1\"}}",
                  "status.podIP: unknown field \"podIP\"");
  /* Maps are still maps (recognised by the shape protoc gives entries). */
  tu_roundtrip_free(bare, &keel__api__v1__pod__descriptor,
                    "{\"metadata\":{\"labels\":{\"a\":\"b\"}}}", NULL);
  protojson_destroy(bare);
}

/* proto3 JSON parsers take the proto field name too; output uses JSON names. */
static void test_proto_names_accepted(void **state) {
  (void)state;
  tu_roundtrip_free(
      g_pj, &keel__api__v1__pod__descriptor,
      "{\"api_version\":\"v1\",\"metadata\":{\"creation_timestamp\":"
      "\"2024-05-01T10:00:00Z\",\"resource_version\":\"7\"},"
      "\"status\":{\"pod_ip\":\"10.0.0.1\",\"host_ip\":\"10.0.0.2\",\"pod_ips\":[{\"ip\":"
      "\"10.0.0.1\"}]}}",
      "{\"apiVersion\":\"v1\",\"metadata\":{\"creationTimestamp\":"
      "\"2024-05-01T10:00:00Z\",\"resourceVersion\":\"7\"},"
      "\"status\":{\"podIP\":\"10.0.0.1\",\"hostIP\":\"10.0.0.2\",\"podIPs\":[{\"ip\":"
      "\"10.0.0.1\"}]}}");
  /* Both spellings of one field is an error, not a silent overwrite. */
  tu_expect_error(g_pj, &keel__api__v1__pod__descriptor,
                  "{\"status\":{\"podIP\":\"10.0.0.1\",\"pod_ip\":\"10.0.0.2\"}}",
                  "status.podIP: field given twice (under its JSON and its proto name)");
  /* null under one name and a value under the other is fine. */
  tu_roundtrip_free(g_pj, &keel__api__v1__pod__descriptor,
                    "{\"status\":{\"podIP\":null,\"pod_ip\":\"10.0.0.2\"}}",
                    "{\"status\":{\"podIP\":\"10.0.0.2\"}}");
}

/* from_json on a value built with jansson (the apiserver's REST gateway, the
 * CLI's YAML loader), and to_json's new reference. */
static void test_from_json_value(void **state) {
  (void)state;
  json_t *j = json_pack("{s:s, s:{s:s, s:I}, s:{s:i, s:{s:{s:s}}}}", "kind", "Deployment",
                        "metadata", "name", "web", "generation", (json_int_t)9007199254740993LL,
                        "spec", "replicas", 2, "selector", "matchLabels", "app", "web");
  assert_non_null(j);
  keel_error err = {0};
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)protojson_from_json(
      g_pj, &keel__api__v1__deployment__descriptor, j, &err);
  assert_non_null(d);
  assert_int_equal(d->metadata->generation, 9007199254740993LL);
  assert_int_equal(d->spec->replicas->value, 2);
  json_t *back = protojson_to_json(g_pj, &d->base, &err);
  tu_assert_json_equal(back, j);
  assert_int_equal(back->refcount, 1);
  json_decref(back);
  json_decref(j);
  protobuf_c_message_free_unpacked(&d->base, NULL);
}

/* Every manifest also round-trips pretty-printed, and from a set of its own. */
static void test_manifests_pretty(void **state) {
  (void)state;
  for (size_t i = 0; i < pj_manifest_count; i++) {
    keel_error err = {0};
    const pj_manifest *mf = &pj_manifests[i];
    ProtobufCMessage *m = protojson_from_string(g_pj, mf->desc, mf->json, strlen(mf->json), &err);
    assert_non_null(m);
    char *pretty = protojson_to_string(g_pj, m, PROTOJSON_PRETTY, &err);
    assert_non_null(pretty);
    assert_non_null(strchr(pretty, '\n'));
    tu_roundtrip_free(g_pj, mf->desc, pretty, mf->json);
    free(pretty);
    protobuf_c_message_free_unpacked(m, NULL);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deployment),
      cmocka_unit_test(test_service),
      cmocka_unit_test(test_pod_spec),
      cmocka_unit_test(test_pod_status),
      cmocka_unit_test(test_node),
      cmocka_unit_test(test_namespace),
      cmocka_unit_test(test_kubectl_defaults_normalised),
      cmocka_unit_test(test_quantity_numbers),
      cmocka_unit_test(test_to_string),
      cmocka_unit_test(test_json_names),
      cmocka_unit_test(test_proto_names_accepted),
      cmocka_unit_test(test_from_json_value),
      cmocka_unit_test(test_manifests_pretty),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
