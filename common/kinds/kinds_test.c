/* Tests for the kind registry and generic object access. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/kinds/kinds.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/services.pb-c.h"

static void test_lookups(void **state) {
  (void)state;
  size_t n;
  const api_kind *ks = api_kinds(&n);
  assert_int_equal(n, 9);
  for (size_t i = 0; i < n; i++) {
    assert_non_null(ks[i].f_metadata);
    assert_non_null(ks[i].f_api_version);
    assert_non_null(ks[i].f_kind);
    assert_ptr_equal(api_kind_by_resource(ks[i].resource), &ks[i]);
    assert_ptr_equal(api_kind_by_service(ks[i].service->name), &ks[i]);
    assert_ptr_equal(api_kind_by_object(ks[i].object), &ks[i]);
    assert_ptr_equal(api_kind_by_name(ks[i].kind), &ks[i]);
  }
  const api_kind *pod = api_kind_by_name("po");
  assert_non_null(pod);
  assert_string_equal(pod->kind, "Pod");
  assert_ptr_equal(api_kind_by_name("PODS"), pod);
  assert_ptr_equal(api_kind_by_name("pod"), pod);
  assert_string_equal(api_kind_by_name("deploy")->api_version, "apps/v1");
  assert_null(api_kind_by_name("p"));
  assert_null(api_kind_by_name(""));
  assert_null(api_kind_by_resource("Pods"));
  assert_null(api_kind_by_service("keel.api.v1.Nope"));
  assert_null(api_kind_by_name("endpoints")->f_spec);
  assert_non_null(api_kind_by_name("ns")->f_status);
  assert_false(api_kind_by_name("ns")->namespaced);
  assert_true(api_kind_by_name("svc")->namespaced);
}

static void test_field_text(void **state) {
  (void)state;
  const api_kind *k = api_kind_by_resource("pods");
  Keel__Api__V1__Pod *pod = (Keel__Api__V1__Pod *)api_message_new(k->object);
  char buf[64];
  /* Unset parents read as defaults. */
  assert_string_equal(api_object_field_text(k, &pod->base, "spec.nodeName", buf, sizeof buf), "");
  assert_string_equal(api_object_field_text(k, &pod->base, "spec.hostNetwork", buf, sizeof buf), "false");
  Keel__Api__V1__ObjectMeta *meta = api_object_meta_ensure(k, &pod->base);
  meta->name = strdup("web-1");
  ProtobufCMessage **spec = api_object_spec_slot(k, &pod->base);
  *spec = api_message_new(&keel__api__v1__pod_spec__descriptor);
  ((Keel__Api__V1__PodSpec *)*spec)->node_name = strdup("node-a");
  ((Keel__Api__V1__PodSpec *)*spec)->host_network = 1;
  ProtobufCMessage **status = api_object_status_slot(k, &pod->base);
  *status = api_message_new(&keel__api__v1__pod_status__descriptor);
  ((Keel__Api__V1__PodStatus *)*status)->pod_ip = strdup("10.0.0.7");
  assert_string_equal(api_object_field_text(k, &pod->base, "metadata.name", buf, sizeof buf), "web-1");
  assert_string_equal(api_object_field_text(k, &pod->base, "spec.nodeName", buf, sizeof buf), "node-a");
  assert_string_equal(api_object_field_text(k, &pod->base, "spec.hostNetwork", buf, sizeof buf), "true");
  assert_string_equal(api_object_field_text(k, &pod->base, "status.podIP", buf, sizeof buf), "10.0.0.7");
  assert_null(api_object_field_text(k, &pod->base, "spec.containers", buf, sizeof buf));
  assert_null(api_object_field_text(k, &pod->base, "spec.nope", buf, sizeof buf));
  assert_null(api_object_field_text(k, &pod->base, "spec", buf, sizeof buf));
  assert_null(api_object_field_text(k, &pod->base, "metadata.name.x", buf, sizeof buf));
  assert_true(api_kind_field_selectable(k, "spec.nodeName"));
  assert_true(api_kind_field_selectable(k, "metadata.namespace"));
  assert_false(api_kind_field_selectable(k, "spec.containers"));
  assert_false(api_kind_field_selectable(api_kind_by_resource("nodes"), "metadata.namespace"));

  api_object_set_type_meta(k, &pod->base);
  assert_string_equal(pod->api_version, "v1");
  assert_string_equal(pod->kind, "Pod");
  Keel__Api__V1__Pod *copy = (Keel__Api__V1__Pod *)api_message_clone(&pod->base);
  assert_non_null(copy);
  assert_string_equal(copy->metadata->name, "web-1");
  assert_string_equal(copy->spec->node_name, "node-a");
  api_object_clear_type_meta(k, &copy->base);
  assert_string_equal(copy->kind, "");
  protobuf_c_message_free_unpacked(&copy->base, NULL);
  protobuf_c_message_free_unpacked(&pod->base, NULL);
}

/* A repeated map key: the last entry wins; unknown fields are dropped. */
static void test_normalize(void **state) {
  (void)state;
  const api_kind *k = api_kind_by_resource("pods");
  Keel__Api__V1__Pod *pod = (Keel__Api__V1__Pod *)api_message_new(k->object);
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, &pod->base);
  const char *keys[] = {"app", "tier", "app"}, *values[] = {"guestbook", "fe", "payment"};
  m->labels = calloc(3, sizeof *m->labels);
  for (int i = 0; i < 3; i++) {
    m->labels[i] = (Keel__Api__V1__ObjectMeta__LabelsEntry *)api_message_new(
        &keel__api__v1__object_meta__labels_entry__descriptor);
    m->labels[i]->key = strdup(keys[i]);
    m->labels[i]->value = strdup(values[i]);
  }
  m->n_labels = 3;
  /* An unknown field (number 999) on the metadata. */
  m->base.n_unknown_fields = 1;
  m->base.unknown_fields = calloc(1, sizeof *m->base.unknown_fields);
  m->base.unknown_fields[0].tag = 999;
  m->base.unknown_fields[0].wire_type = PROTOBUF_C_WIRE_TYPE_VARINT;
  m->base.unknown_fields[0].len = 1;
  m->base.unknown_fields[0].data = calloc(1, 1);
  api_message_normalize(&pod->base);
  assert_int_equal(m->n_labels, 2);
  assert_string_equal(m->labels[0]->key, "tier");
  assert_string_equal(m->labels[1]->key, "app");
  assert_string_equal(m->labels[1]->value, "payment");
  assert_int_equal(m->base.n_unknown_fields, 0);
  protobuf_c_message_free_unpacked(&pod->base, NULL);
}

/* api_string_set: copies, frees what it replaces (ASan sees a leak or a bad
 * free), takes its value from the old string, and leaves the shared empty
 * string for NULL and "". */
static void test_string_set(void **state) {
  (void)state;
  Keel__Api__V1__ObjectMeta *m =
      (Keel__Api__V1__ObjectMeta *)api_message_new(&keel__api__v1__object_meta__descriptor);
  api_string_set(&m->name, "web");
  assert_string_equal(m->name, "web");
  api_string_set(&m->name, m->name + 1); /* a value inside the old string */
  assert_string_equal(m->name, "eb");
  api_string_set(&m->name, "");
  assert_ptr_equal(m->name, protobuf_c_empty_string);
  api_string_set(&m->namespace_, NULL);
  assert_ptr_equal(m->namespace_, protobuf_c_empty_string);
  api_string_set(&m->uid, "u-1");
  protobuf_c_message_free_unpacked(&m->base, NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lookups),
      cmocka_unit_test(test_field_text),
      cmocka_unit_test(test_normalize),
      cmocka_unit_test(test_string_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
