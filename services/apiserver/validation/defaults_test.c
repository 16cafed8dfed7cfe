/* services/apiserver/validation/defaults_test.c — Kubernetes' defaults for
 * every kind, idempotence, and the image-tag rule behind imagePullPolicy. */
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

/* ---------------------------------------------------------------- defaults */

static void test_pod_defaults(void **state) {
  (void)state;
  Keel__Api__V1__Pod *p = tpod();
  Keel__Api__V1__Container *c = p->spec->containers[0];
  Keel__Api__V1__Container *latest = TPUSH(p->spec, containers, tcontainer("side", "registry:5000/tools"));
  Keel__Api__V1__Container *digest =
      TPUSH(p->spec, init_containers, tcontainer("init", "busybox@sha256:0123456789abcdef"));
  TPUSH(latest, ports, tport(NULL, 9000));
  latest->liveness_probe = tnew(&keel__api__v1__probe__descriptor);
  latest->liveness_probe->http_get = tnew(&keel__api__v1__httpget_action__descriptor);
  latest->liveness_probe->http_get->port = tios_int(9000);
  TPUSH(p->spec, tolerations, ttoleration("dedicated", NULL, "infra", "NoSchedule"));
  Keel__Api__V1__Volume *v = TPUSH(p->spec, volumes, tnew(&keel__api__v1__volume__descriptor));
  tstr(&v->name, "scratch");
  api_default(tkind_of(K_POD), &p->base);

  assert_string_equal(p->spec->restart_policy, "Always");
  assert_string_equal(p->spec->dns_policy, "ClusterFirst");
  assert_string_equal(p->spec->scheduler_name, "default-scheduler");
  assert_non_null(p->spec->termination_grace_period_seconds);
  assert_int_equal(p->spec->termination_grace_period_seconds->value, 30);
  assert_string_equal(c->image_pull_policy, "IfNotPresent");
  assert_string_equal(latest->image_pull_policy, "Always");
  assert_string_equal(digest->image_pull_policy, "IfNotPresent");
  assert_string_equal(c->termination_message_path, "/dev/termination-log");
  assert_string_equal(c->termination_message_policy, "File");
  assert_string_equal(c->ports[0]->protocol, "TCP");
  assert_string_equal(latest->ports[0]->protocol, "TCP");
  assert_int_equal(latest->ports[0]->host_port, 0);
  /* readiness probe: the path was given, the rest defaulted */
  Keel__Api__V1__Probe *rp = c->readiness_probe;
  assert_int_equal(rp->timeout_seconds, 1);
  assert_int_equal(rp->period_seconds, 10);
  assert_int_equal(rp->success_threshold, 1);
  assert_int_equal(rp->failure_threshold, 3);
  assert_string_equal(rp->http_get->scheme, "HTTP");
  assert_string_equal(rp->http_get->path, "/healthz");
  assert_string_equal(latest->liveness_probe->http_get->path, "/");
  assert_string_equal(p->spec->tolerations[0]->operator_, "Equal");
  assert_non_null(v->empty_dir);
  /* limits copied into missing requests: memory added, cpu kept */
  Keel__Api__V1__ResourceRequirements *r = c->resources;
  assert_int_equal(r->n_requests, 2);
  assert_string_equal(r->requests[0]->key, "cpu");
  assert_string_equal(r->requests[0]->value->string, "250m");
  assert_string_equal(r->requests[1]->key, "memory");
  assert_string_equal(r->requests[1]->value->string, "128Mi");

  keel_error err;
  assert_int_equal(tvalidate(K_POD, &p->base, NULL, NULL, &err), 0);
  tfree(p);
}

static void test_host_network_defaults_host_port(void **state) {
  (void)state;
  Keel__Api__V1__Pod *p = tpod();
  p->spec->host_network = 1;
  api_default(tkind_of(K_POD), &p->base);
  assert_int_equal(p->spec->containers[0]->ports[0]->host_port, 80);
  keel_error err;
  assert_int_equal(tvalidate(K_POD, &p->base, NULL, NULL, &err), 0);
  tfree(p);
}

static void test_template_defaults_keep_requests(void **state) {
  (void)state;
  /* Kubernetes copies limits into requests for Pods only, not templates. */
  Keel__Api__V1__Deployment *d = tdeployment();
  api_default(tkind_of(K_DEP), &d->base);
  Keel__Api__V1__PodSpec *s = d->spec->template_->spec;
  assert_int_equal(s->containers[0]->resources->n_requests, 1);
  assert_string_equal(s->restart_policy, "Always");
  assert_string_equal(s->containers[0]->image_pull_policy, "IfNotPresent");
  tfree(d);
}

static void test_service_defaults(void **state) {
  (void)state;
  Keel__Api__V1__Service *s = tservice();
  Keel__Api__V1__ServicePort *p2 = TPUSH(s->spec, ports, tservice_port("dns", 53));
  tstr(&p2->protocol, "UDP");
  Keel__Api__V1__ServicePort *p3 = TPUSH(s->spec, ports, tservice_port("metrics", 9100));
  p3->target_port = tios_str("");
  api_default(tkind_of(K_SVC), &s->base);
  assert_string_equal(s->spec->type, "ClusterIP");
  assert_string_equal(s->spec->session_affinity, "None");
  assert_string_equal(s->spec->internal_traffic_policy, "Cluster");
  assert_string_equal(s->spec->external_traffic_policy, "");
  assert_string_equal(s->spec->ports[0]->protocol, "TCP");
  assert_int_equal(s->spec->ports[0]->target_port->int_val, 8080);
  assert_string_equal(p2->protocol, "UDP");
  assert_non_null(p2->target_port);
  assert_int_equal(p2->target_port->type, 0);
  assert_int_equal(p2->target_port->int_val, 53);
  assert_int_equal(p3->target_port->type, 0);
  assert_int_equal(p3->target_port->int_val, 9100);
  keel_error err;
  assert_int_equal(tvalidate(K_SVC, &s->base, NULL, NULL, &err), 0);
  tfree(s);

  s = tservice();
  tstr(&s->spec->type, "NodePort");
  tstr(&s->spec->cluster_ip, "10.96.0.10");
  api_default(tkind_of(K_SVC), &s->base);
  assert_string_equal(s->spec->external_traffic_policy, "Cluster");
  assert_int_equal(s->spec->n_cluster_ips, 1);
  assert_string_equal(s->spec->cluster_ips[0], "10.96.0.10");
  assert_int_equal(tvalidate(K_SVC, &s->base, NULL, NULL, &err), 0);
  tfree(s);
}

static void test_workload_defaults(void **state) {
  (void)state;
  Keel__Api__V1__Deployment *d = tdeployment();
  google__protobuf__int32_value__free_unpacked(d->spec->replicas, NULL);
  d->spec->replicas = NULL;
  api_default(tkind_of(K_DEP), &d->base);
  assert_int_equal(d->spec->replicas->value, 1);
  assert_string_equal(d->spec->strategy->type, "RollingUpdate");
  assert_int_equal(d->spec->strategy->rolling_update->max_surge->type, 1);
  assert_string_equal(d->spec->strategy->rolling_update->max_surge->str_val, "25%");
  assert_string_equal(d->spec->strategy->rolling_update->max_unavailable->str_val, "25%");
  assert_int_equal(d->spec->revision_history_limit->value, 10);
  assert_int_equal(d->spec->progress_deadline_seconds->value, 600);
  assert_string_equal(d->spec->template_->spec->dns_policy, "ClusterFirst");
  tfree(d);

  /* Recreate gets no rollingUpdate; given values are kept. */
  d = tdeployment();
  d->spec->strategy = tnew(&keel__api__v1__deployment_strategy__descriptor);
  tstr(&d->spec->strategy->type, "Recreate");
  d->spec->revision_history_limit = tint32(0);
  api_default(tkind_of(K_DEP), &d->base);
  assert_null(d->spec->strategy->rolling_update);
  assert_int_equal(d->spec->revision_history_limit->value, 0);
  assert_int_equal(d->spec->replicas->value, 2);
  tfree(d);

  Keel__Api__V1__ReplicaSet *rs = treplica_set();
  google__protobuf__int32_value__free_unpacked(rs->spec->replicas, NULL);
  rs->spec->replicas = NULL;
  api_default(tkind_of(K_RS), &rs->base);
  assert_int_equal(rs->spec->replicas->value, 1);
  assert_string_equal(rs->spec->template_->spec->scheduler_name, "default-scheduler");
  tfree(rs);
}

static void test_cluster_defaults(void **state) {
  (void)state;
  Keel__Api__V1__Namespace *ns = tnamespace();
  api_default(tkind_of(K_NS), &ns->base);
  assert_string_equal(ns->status->phase, "Active");
  assert_int_equal(ns->spec->n_finalizers, 1);
  assert_string_equal(ns->spec->finalizers[0], "kubernetes");
  tfree(ns);

  /* A terminating namespace whose finalizer was removed keeps it removed. */
  ns = tnamespace();
  ns->spec = tnew(&keel__api__v1__namespace_spec__descriptor);
  ns->status = tnew(&keel__api__v1__namespace_status__descriptor);
  tstr(&ns->status->phase, "Terminating");
  api_default(tkind_of(K_NS), &ns->base);
  assert_int_equal(ns->spec->n_finalizers, 0);
  tfree(ns);

  Keel__Api__V1__Endpoints *ep = tendpoints();
  tstr(&ep->subsets[0]->ports[0]->protocol, "");
  api_default(tkind_of(K_EP), &ep->base);
  assert_string_equal(ep->subsets[0]->ports[0]->protocol, "TCP");
  tfree(ep);

  /* Node, Event, Lease: nothing changes. */
  for (enum tkind k = K_NODE; k <= K_LEASE; k++) {
    if (k == K_NS || k == K_EP) continue;
    ProtobufCMessage *o = tbuild(k);
    ProtobufCMessage *before = tclone(o);
    api_default(tkind_of(k), o);
    size_t n1 = protobuf_c_message_get_packed_size(o), n2 = protobuf_c_message_get_packed_size(before);
    assert_int_equal(n1, n2);
    tfree(before);
    tfree(o);
  }
}

static void test_defaults_idempotent(void **state) {
  (void)state;
  for (enum tkind k = K_POD; k <= K_LEASE; k++) {
    ProtobufCMessage *o = tvalid(k);
    size_t n = protobuf_c_message_get_packed_size(o);
    uint8_t *a = malloc(n), *b = NULL;
    assert_non_null(a);
    protobuf_c_message_pack(o, a);
    api_default(tkind_of(k), o);
    assert_int_equal(protobuf_c_message_get_packed_size(o), n);
    b = malloc(n);
    assert_non_null(b);
    protobuf_c_message_pack(o, b);
    assert_memory_equal(a, b, n);
    free(a);
    free(b);
    tfree(o);
  }
}

static void test_image_tags(void **state) {
  (void)state;
  assert_true(api_image_has_latest_tag("nginx"));
  assert_true(api_image_has_latest_tag("nginx:latest"));
  assert_true(api_image_has_latest_tag("localhost:5000/nginx"));
  assert_true(api_image_has_latest_tag("localhost:5000/nginx:latest"));
  assert_false(api_image_has_latest_tag("localhost:5000/nginx:1.25"));
  assert_false(api_image_has_latest_tag("nginx:1.25"));
  assert_false(api_image_has_latest_tag("nginx@sha256:abc"));
  assert_false(api_image_has_latest_tag("nginx:latest2"));
  assert_true(api_image_has_latest_tag("nginx:latest@sha256:abc"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_pod_defaults),
      cmocka_unit_test(test_host_network_defaults_host_port),
      cmocka_unit_test(test_template_defaults_keep_requests),
      cmocka_unit_test(test_service_defaults),
      cmocka_unit_test(test_workload_defaults),
      cmocka_unit_test(test_cluster_defaults),
      cmocka_unit_test(test_defaults_idempotent),
      cmocka_unit_test(test_image_tags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
