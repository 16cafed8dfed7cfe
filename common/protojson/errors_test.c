/* common/protojson/errors_test.c — every refusal with its exact message: unknown
 * fields at several depths, each JSON type where another is expected, ranges,
 * syntax, null handling; and what to_json refuses. ASan checks that nothing
 * half-built leaks. */
#include "common/protojson/testdata/pjtest.pb-c.h"
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

#define POD (&keel__api__v1__pod__descriptor)
#define DEPLOYMENT (&keel__api__v1__deployment__descriptor)
#define SERVICE (&keel__api__v1__service__descriptor)
#define SCALARS (&keel__protojson__test__scalars__descriptor)
#define MAPS (&keel__protojson__test__maps__descriptor)

static void test_unknown_fields(void **state) {
  (void)state;
  tu_expect_error(g_pj, POD, "{\"kindd\":\"Pod\"}", "kindd: unknown field \"kindd\"");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":\"x\",\"lables\":{}}}",
                  "metadata.lables: unknown field \"lables\"");
  tu_expect_error(
      g_pj, POD,
      "{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\",\"imagePullPolicyy\":"
      "\"Always\"}]}}",
      "spec.containers[1].imagePullPolicyy: unknown field \"imagePullPolicyy\"");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":[{\"imagePullPolicyy\":\"Always\"}]}}",
                  "spec.containers[0].imagePullPolicyy: unknown field \"imagePullPolicyy\"");
  tu_expect_error(
      g_pj, POD,
      "{\"spec\":{\"affinity\":{\"nodeAffinity\":{"
      "\"requiredDuringSchedulingIgnoredDuringExecution\":"
      "{\"nodeSelectorTerms\":[{\"matchExpressions\":[{\"key\":\"k\",\"valuez\":[]}]}]}}}}}",
      "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
      "nodeSelectorTerms[0].matchExpressions[0].valuez: unknown field \"valuez\"");
  /* Inside a map value; the path names the key. */
  tu_expect_error(g_pj, MAPS, "{\"i64m\":{\"5\":{\"nope\":1}}}",
                  "i64m[\"5\"].nope: unknown field \"nope\"");
  /* Field names are case-sensitive, as Kubernetes' strict decoding. */
  tu_expect_error(g_pj, POD, "{\"Kind\":\"Pod\"}", "Kind: unknown field \"Kind\"");
  /* Odd keys are quoted and cut in the message. */
  tu_expect_error(g_pj, POD, "{\"a\\\"b\\n\":1}", "a\\\"b\\x0a: unknown field \"a\\\"b\\x0a\"");
  char text[400], want[400];
  snprintf(text, sizeof(text), "{\"%0100d\":1}", 0);
  snprintf(want, sizeof(want), "%064d...: unknown field \"%064d\"...", 0, 0);
  tu_expect_error(g_pj, POD, text, want);
}

static void test_wrong_types(void **state) {
  (void)state;
  /* An Int32Value */
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":\"three\"}}",
                  "spec.replicas: expected an integer, got string \"three\"");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":true}}",
                  "spec.replicas: expected an integer, got boolean true");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":{}}}",
                  "spec.replicas: expected an integer, got object");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":[3]}}",
                  "spec.replicas: expected an integer, got array");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":1.5}}",
                  "spec.replicas: 1.5 is not an integer");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":3000000000}}",
                  "spec.replicas: 3000000000 is out of range for int32");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":\"-3000000000\"}}",
                  "spec.replicas: \"-3000000000\" is out of range for int32");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":\" 3\"}}",
                  "spec.replicas: expected an integer, got string \" 3\"");
  tu_expect_error(g_pj, DEPLOYMENT, "{\"spec\":{\"replicas\":\"\"}}",
                  "spec.replicas: expected an integer, got string \"\"");
  /* A plain int32 */
  tu_expect_error(
      g_pj, POD, "{\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":\"http\"}]}]}}",
      "spec.containers[0].ports[0].containerPort: expected an integer, got string \"http\"");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":[{\"ports\":[{\"containerPort\":1e10}]}]}}",
                  "spec.containers[0].ports[0].containerPort: 1e+10 is out of range for int32");
  /* int64 */
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"generation\":\"9223372036854775808\"}}",
                  "metadata.generation: \"9223372036854775808\" is out of range for int64");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"generation\":\"99999999999999999999999\"}}",
                  "metadata.generation: \"99999999999999999999999\" is out of range for int64");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"generation\":1e19}}",
                  "metadata.generation: 1e+19 is out of range for int64");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"generation\":\"1e3\"}}",
                  "metadata.generation: expected an integer, got string \"1e3\"");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"generation\":false}}",
                  "metadata.generation: expected an integer, got boolean false");
  /* uint */
  tu_expect_error(g_pj, SCALARS, "{\"u32\":-1}", "u32: -1 is out of range for uint32");
  tu_expect_error(g_pj, SCALARS, "{\"u32\":4294967296}",
                  "u32: 4294967296 is out of range for uint32");
  tu_expect_error(g_pj, SCALARS, "{\"u64\":\"-1\"}", "u64: \"-1\" is out of range for uint64");
  tu_expect_error(g_pj, SCALARS, "{\"u64\":\"18446744073709551616\"}",
                  "u64: \"18446744073709551616\" is out of range for uint64");
  tu_expect_error(g_pj, SCALARS, "{\"u64\":-0.5}", "u64: -0.5 is not an integer");
  /* float, double */
  tu_expect_error(g_pj, SCALARS, "{\"fl\":1e39}", "fl: 1e+39 is out of range for float");
  tu_expect_error(g_pj, SCALARS, "{\"db\":\"1e999\"}", "db: \"1e999\" is out of range for double");
  tu_expect_error(g_pj, SCALARS, "{\"db\":\"inf\"}", "db: expected a number, got string \"inf\"");
  tu_expect_error(g_pj, SCALARS, "{\"db\":\"0x10\"}", "db: expected a number, got string \"0x10\"");
  tu_expect_error(g_pj, SCALARS, "{\"db\":true}", "db: expected a number, got boolean true");
  tu_expect_error(g_pj, SCALARS, "{\"db\":[]}", "db: expected a number, got array");
  /* bool */
  tu_expect_error(g_pj, POD, "{\"spec\":{\"hostNetwork\":\"true\"}}",
                  "spec.hostNetwork: expected a boolean, got string \"true\"");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"hostNetwork\":1}}",
                  "spec.hostNetwork: expected a boolean, got number 1");
  /* string */
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":5}}",
                  "metadata.name: expected a string, got number 5");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":-0.25}}",
                  "metadata.name: expected a string, got number -0.25");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":true}}",
                  "metadata.name: expected a string, got boolean true");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":{\"a\":1}}}",
                  "metadata.name: expected a string, got object");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"name\":[\"a\"]}}",
                  "metadata.name: expected a string, got array");
  /* enum, bytes */
  tu_expect_error(g_pj, SCALARS, "{\"color\":\"BLUE\"}",
                  "color: unknown value \"BLUE\" for enum keel.protojson.test.Color");
  tu_expect_error(g_pj, SCALARS, "{\"color\":true}",
                  "color: expected an enum name or number, got boolean true");
  tu_expect_error(g_pj, SCALARS, "{\"color\":1.5}", "color: 1.5 is not an integer");
  tu_expect_error(g_pj, SCALARS, "{\"by\":\"!!\"}",
                  "by: expected a base64 string, got string \"!!\"");
  tu_expect_error(g_pj, SCALARS, "{\"by\":\"Y\"}",
                  "by: expected a base64 string, got string \"Y\"");
  tu_expect_error(g_pj, SCALARS, "{\"by\":\"YQ=\"}",
                  "by: expected a base64 string, got string \"YQ=\"");
  tu_expect_error(g_pj, SCALARS, "{\"by\":\"Y=Q=\"}",
                  "by: expected a base64 string, got string \"Y=Q=\"");
  tu_expect_error(g_pj, SCALARS, "{\"by\":7}", "by: expected a base64 string, got number 7");
  /* message, list, map */
  tu_expect_error(g_pj, POD, "{\"spec\":\"x\"}", "spec: expected an object, got string \"x\"");
  tu_expect_error(g_pj, POD, "{\"spec\":[]}", "spec: expected an object, got array");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":{}}}",
                  "spec.containers: expected an array, got object");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":\"nginx\"}}",
                  "spec.containers: expected an array, got string \"nginx\"");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":[{\"args\":[\"a\",3]}]}}",
                  "spec.containers[0].args[1]: expected a string, got number 3");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":[1]}}",
                  "spec.containers[0]: expected an object, got number 1");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"labels\":[]}}",
                  "metadata.labels: expected an object, got array");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"labels\":{\"app\":1}}}",
                  "metadata.labels[\"app\"]: expected a string, got number 1");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"labels\":{\"a\\\"b\":true}}}",
                  "metadata.labels[\"a\\\"b\"]: expected a string, got boolean true");
  /* The root */
  tu_expect_error(g_pj, POD, "[1]", "expected an object, got array");
  tu_expect_error(g_pj, POD, "\"Pod\"", "expected an object, got string \"Pod\"");
  tu_expect_error(g_pj, POD, "null", "expected an object, got null");
  tu_expect_error(g_pj, POD, "42", "expected an object, got number 42");
  /* Long strings are cut in the message. */
  char text[300], want[300];
  snprintf(text, sizeof(text), "{\"metadata\":{\"name\":[]},\"spec\":{\"hostNetwork\":\"%060d\"}}",
           0);
  tu_expect_error(g_pj, POD, text, "metadata.name: expected a string, got array");
  snprintf(text, sizeof(text), "{\"spec\":{\"hostNetwork\":\"%060d\"}}", 0);
  snprintf(want, sizeof(want), "spec.hostNetwork: expected a boolean, got string \"%040d\"...", 0);
  tu_expect_error(g_pj, POD, text, want);
}

static void test_kubernetes_types(void **state) {
  (void)state;
  tu_expect_error(g_pj, SERVICE, "{\"spec\":{\"ports\":[{\"targetPort\":true}]}}",
                  "spec.ports[0].targetPort: expected an integer or a string, got boolean true");
  tu_expect_error(g_pj, SERVICE, "{\"spec\":{\"ports\":[{\"targetPort\":{\"intVal\":80}}]}}",
                  "spec.ports[0].targetPort: expected an integer or a string, got object");
  tu_expect_error(g_pj, SERVICE, "{\"spec\":{\"ports\":[{\"port\":80},{\"targetPort\":80.5}]}}",
                  "spec.ports[1].targetPort: 80.5 is not an integer");
  tu_expect_error(g_pj, SERVICE, "{\"spec\":{\"ports\":[{\"targetPort\":2147483648}]}}",
                  "spec.ports[0].targetPort: 2147483648 is out of range for int32");
  tu_expect_error(g_pj, POD,
                  "{\"spec\":{\"containers\":[{\"resources\":{\"limits\":{\"cpu\":{\"m\":5}}}}]}}",
                  "spec.containers[0].resources.limits[\"cpu\"]: expected a quantity (a string or "
                  "a number), got object");
  tu_expect_error(
      g_pj, POD, "{\"spec\":{\"containers\":[{\"resources\":{\"requests\":{\"memory\":null}}}]}}",
      "spec.containers[0].resources.requests[\"memory\"]: expected a quantity (a string "
      "or a number), got null");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"creationTimestamp\":1714557600}}",
                  "metadata.creationTimestamp: expected an RFC 3339 timestamp string, got number "
                  "1714557600");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"creationTimestamp\":\"yesterday\"}}",
                  "metadata.creationTimestamp: invalid RFC 3339 timestamp \"yesterday\" (want "
                  "2006-01-02T15:04:05Z, in years 1 to 9999)");
  tu_expect_error(g_pj, POD, "{\"spec\":{\"terminationGracePeriodSeconds\":\"30s\"}}",
                  "spec.terminationGracePeriodSeconds: expected an integer, got string \"30s\"");
  tu_expect_error(g_pj, POD, "{\"status\":{\"containerStatuses\":[{\"started\":\"yes\"}]}}",
                  "status.containerStatuses[0].started: expected a boolean, got string \"yes\"");
}

static void test_map_keys(void **state) {
  (void)state;
  tu_expect_error(g_pj, MAPS, "{\"i32s\":{\"x\":\"a\"}}",
                  "i32s[\"x\"]: expected an integer, got string \"x\"");
  tu_expect_error(g_pj, MAPS, "{\"i32s\":{\"01\":\"a\"}}",
                  "i32s[\"01\"]: map key must be a decimal integer without leading zeros");
  tu_expect_error(g_pj, MAPS, "{\"i32s\":{\"-0\":\"a\"}}",
                  "i32s[\"-0\"]: map key must be a decimal integer without leading zeros");
  tu_expect_error(g_pj, MAPS, "{\"i32s\":{\"2147483648\":\"a\"}}",
                  "i32s[\"2147483648\"]: \"2147483648\" is out of range for int32");
  tu_expect_error(g_pj, MAPS, "{\"u32b\":{\"-1\":true}}",
                  "u32b[\"-1\"]: \"-1\" is out of range for uint32");
  tu_expect_error(g_pj, MAPS, "{\"bs\":{\"True\":\"a\"}}",
                  "bs[\"True\"]: map key must be \"true\" or \"false\"");
  tu_expect_error(g_pj, MAPS, "{\"ss\":{\"a\":\"1\",\"b\":null}}",
                  "ss[\"b\"]: expected a string, got null");
  tu_expect_error(g_pj, MAPS, "{\"i64m\":{\"1\":{},\"2\":[]}}",
                  "i64m[\"2\"]: expected an object, got array");
}

static void test_syntax(void **state) {
  (void)state;
  tu_expect_error(g_pj, POD, "{\n  \"kind\": \"Pod\",\n  \"spec\": {\n    \"x\" 1\n  }\n}",
                  "invalid JSON at 4:9: ':' expected near '1'");
  tu_expect_error(g_pj, POD, "{\"kind\":\"Pod\",}",
                  "invalid JSON at 1:15: string or '}' expected near '}'");
  tu_expect_error(g_pj, POD, "", "invalid JSON at 1:0: unexpected token near end of file");
  tu_expect_error(g_pj, POD, "{\"kind\":\"Pod\",\"kind\":\"Pod\"}",
                  "invalid JSON at 1:20: duplicate object key near '\"kind\"'");
  tu_expect_error(g_pj, POD, "{\"kind\":\"Pod\"} x",
                  "invalid JSON at 1:16: end of file expected near 'x'");
  tu_expect_error(g_pj, POD, "{\"kind\":\"P\\u0000d\"}",
                  "invalid JSON at 1:18: \\u0000 is not allowed near '\"P\\u0000d\"'");
  /* Bytes that are not UTF-8 are refused by the parser; the message stays printable. */
  keel_error err = {0};
  const char bad[] = "{\"kind\":\"\xff\x01\"}";
  assert_null(protojson_from_string(g_pj, POD, bad, sizeof(bad) - 1, &err));
  assert_int_equal(err.code, EINVAL);
  assert_true(strncmp(err.message, "invalid JSON at 1:", 18) == 0);
  for (const char *p = err.message; *p; p++)
    assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x80);
  /* Text with a NUL byte in the middle: len is what counts. */
  const char nul[] = "{\"kind\":\"Pod\"}\0junk";
  ProtobufCMessage *m = protojson_from_string(g_pj, POD, nul, 14, &err);
  assert_non_null(m);
  protobuf_c_message_free_unpacked(m, NULL);
  assert_null(protojson_from_string(g_pj, POD, nul, sizeof(nul) - 1, &err));
  assert_true(strncmp(err.message, "invalid JSON at", 15) == 0);
  /* Jansson stops at 2048 levels, well before anything here could recurse. */
  size_t n = 100000;
  char *deep = malloc(2 * n + 1);
  for (size_t i = 0; i < n; i++) deep[i] = '[', deep[n + i] = ']';
  deep[2 * n] = 0;
  assert_null(protojson_from_string(g_pj, POD, deep, 2 * n, &err));
  assert_non_null(strstr(err.message, "maximum parsing depth"));
  free(deep);
}

static void test_nulls(void **state) {
  (void)state;
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)tu_roundtrip(
      g_pj, DEPLOYMENT,
      "{\"apiVersion\":null,\"metadata\":{\"name\":\"web\",\"creationTimestamp\":null,"
      "\"labels\":null,\"finalizers\":null,\"generation\":null},\"spec\":{\"replicas\":null,"
      "\"selector\":null,\"template\":{\"metadata\":null,\"spec\":{\"containers\":null}},"
      "\"strategy\":{\"rollingUpdate\":{\"maxSurge\":null}}},\"status\":null}",
      "{\"metadata\":{\"name\":\"web\"},\"spec\":{\"template\":{\"spec\":{}},\"strategy\":{"
      "\"rollingUpdate\":{}}}}");
  assert_null(d->spec->replicas);
  assert_null(d->metadata->creation_timestamp);
  assert_null(d->status);
  assert_null(d->spec->strategy->rolling_update->max_surge);
  assert_ptr_equal(d->api_version, protobuf_c_empty_string);
  protobuf_c_message_free_unpacked(&d->base, NULL);
  /* null inside a list is not "absent": it is an error. */
  tu_expect_error(g_pj, POD, "{\"spec\":{\"containers\":[null]}}",
                  "spec.containers[0]: expected an object, got null");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"finalizers\":[\"a\",null]}}",
                  "metadata.finalizers[1]: expected a string, got null");
  tu_expect_error(g_pj, POD, "{\"metadata\":{\"labels\":{\"a\":null}}}",
                  "metadata.labels[\"a\"]: expected a string, got null");
}

/* Failures late in a big document free everything built before them. */
static void test_no_partial_leaks(void **state) {
  (void)state;
  tu_expect_error(
      g_pj, DEPLOYMENT,
      "{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"y\",\"z\":\"w\"},"
      "\"ownerReferences\":[{\"name\":\"o\",\"controller\":true}]},"
      "\"spec\":{\"replicas\":2,\"template\":{\"spec\":{\"containers\":["
      "{\"name\":\"c\",\"args\":[\"1\",\"2\"],\"resources\":{\"limits\":{\"cpu\":\"1\"}}},"
      "{\"name\":\"d\",\"env\":[{\"name\":\"E\",\"value\":\"v\"},"
      "{\"name\":\"F\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":7}}}]}]}}}}",
      "spec.template.spec.containers[1].env[1].valueFrom.fieldRef.fieldPath: "
      "expected a string, got number 7");
  tu_expect_error(
      g_pj, MAPS,
      "{\"ss\":{\"a\":\"1\"},\"i64m\":{\"1\":{\"s\":\"x\",\"by\":\"AA==\"},\"2\":{\"by\":\"%\"}}}",
      "i64m[\"2\"].by: expected a base64 string, got string \"%\"");
  tu_expect_error(g_pj, MAPS, "{\"sby\":{\"a\":\"AA==\",\"b\":\"?\"}}",
                  "sby[\"b\"]: expected a base64 string, got string \"?\"");
}

/* from_json of values jansson can hold but JSON text cannot express. */
static void test_from_json_odd_values(void **state) {
  (void)state;
  keel_error err = {0};
  json_t *j = json_pack("{s:{s:s%}}", "metadata", "name", "a\0b", (size_t)3);
  assert_non_null(j);
  assert_null(protojson_from_json(g_pj, POD, j, &err));
  assert_string_equal(err.message, "metadata.name: string contains a NUL character");
  json_decref(j);
  assert_null(protojson_from_json(g_pj, POD, NULL, &err));
  assert_null(protojson_from_json(g_pj, NULL, NULL, NULL)); /* err may be NULL */
}

static void test_to_json_errors(void **state) {
  (void)state;
  keel_error err = {0};
  /* Invalid UTF-8 (protobuf-c's unpack does not check). */
  Keel__Api__V1__ObjectMeta meta = KEEL__API__V1__OBJECT_META__INIT;
  Keel__Api__V1__Pod pod = KEEL__API__V1__POD__INIT;
  pod.metadata = &meta;
  meta.name = "bad\xc3";
  assert_null(protojson_to_json(g_pj, &pod.base, &err));
  assert_int_equal(err.code, EINVAL);
  assert_string_equal(err.message, "metadata.name: string is not valid UTF-8");
  meta.name = "ok";
  /* A Timestamp outside its range. */
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.nanos = -1;
  meta.creation_timestamp = &ts;
  assert_null(protojson_to_json(g_pj, &pod.base, &err));
  assert_string_equal(err.message,
                      "metadata.creationTimestamp: timestamp out of range (seconds 0, nanos -1)");
  ts.nanos = 0;
  ts.seconds = 253402300800LL;
  assert_null(protojson_to_json(g_pj, &pod.base, &err));
  assert_string_equal(
      err.message,
      "metadata.creationTimestamp: timestamp out of range (seconds 253402300800, nanos 0)");
  meta.creation_timestamp = NULL;
  /* An IntOrString of neither type. */
  Keel__Api__V1__IntOrString ios = KEEL__API__V1__INT_OR_STRING__INIT;
  ios.type = 7;
  Keel__Api__V1__ServicePort sp = KEEL__API__V1__SERVICE_PORT__INIT, *ports[] = {&sp};
  Keel__Api__V1__ServiceSpec spec = KEEL__API__V1__SERVICE_SPEC__INIT;
  Keel__Api__V1__Service svc = KEEL__API__V1__SERVICE__INIT;
  sp.target_port = &ios;
  spec.n_ports = 1;
  spec.ports = ports;
  svc.spec = &spec;
  assert_null(protojson_to_json(g_pj, &svc.base, &err));
  assert_string_equal(
      err.message,
      "spec.ports[0].targetPort: IntOrString type 7 is neither 0 (int) nor 1 (string)");
  /* A map key that is not UTF-8. */
  ios.type = 0;
  Keel__Api__V1__ServiceSpec__SelectorEntry sel = KEEL__API__V1__SERVICE_SPEC__SELECTOR_ENTRY__INIT,
                                            *sels[] = {&sel};
  sel.key = "\xff";
  sel.value = "v";
  spec.n_selector = 1;
  spec.selector = sels;
  assert_null(protojson_to_json(g_pj, &svc.base, &err));
  assert_string_equal(err.message, "spec.selector[\"\\xff\"]: map key is not valid UTF-8");
  /* A sub-message of the wrong type. */
  spec.n_selector = 0;
  svc.spec = (Keel__Api__V1__ServiceSpec *)&meta;
  assert_null(protojson_to_json(g_pj, &svc.base, &err));
  assert_string_equal(err.message,
                      "spec: a keel.api.v1.ObjectMeta where a keel.api.v1.ServiceSpec belongs");
  svc.spec = &spec;
  /* A repeated field with a count but no array. */
  spec.ports = NULL;
  assert_null(protojson_to_json(g_pj, &svc.base, &err));
  assert_string_equal(err.message, "spec.ports: repeated field has 1 elements but no array");
  assert_null(protojson_to_string(g_pj, &svc.base, 0, &err));
  assert_null(protojson_to_json(g_pj, NULL, &err));
  assert_string_equal(err.message, "protojson_to_json: no message");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unknown_fields),   cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_kubernetes_types), cmocka_unit_test(test_map_keys),
      cmocka_unit_test(test_syntax),           cmocka_unit_test(test_nulls),
      cmocka_unit_test(test_no_partial_leaks), cmocka_unit_test(test_from_json_odd_values),
      cmocka_unit_test(test_to_json_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
