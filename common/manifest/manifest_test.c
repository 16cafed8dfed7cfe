/* common/manifest/manifest_test.c — manifests as the Kubernetes documentation
 * writes them (testdata/) into keel.api.v1 objects, field by field; printed
 * as YAML and JSON and read back to byte-identical protobuf; errors with the
 * file and line that the user must fix; lists, multi-document files,
 * directories and standard input. */
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/manifest/testutil.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

static protojson *g_pj;

static int setup(void **state) {
  (void)state;
  g_pj = tu_pj();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  protojson_destroy(g_pj);
  return 0;
}

static manifest_object *decode_file(const char *file, size_t *n) {
  manifest_object *objs;
  keel_error err = {0};
  char path[256];
  snprintf(path, sizeof(path), TESTDATA "%s", file);
  if (manifest_decode_file(g_pj, path, &objs, n, &err) < 0) fail_msg("%s", err.message);
  return objs;
}

/* The quantity under key in a map<string, Quantity> field (NULL if absent). */
#define QUANTITY(entries, n, k)                                                    \
  ({                                                                               \
    const char *q_ = NULL;                                                         \
    for (size_t i_ = 0; i_ < (n); i_++)                                            \
      if (strcmp((entries)[i_]->key, (k)) == 0) q_ = (entries)[i_]->value->string; \
    q_;                                                                            \
  })

/* ---------------------------------------------------------------- documentation manifests */

static void test_deployment(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("deployment.yaml", &n);
  assert_int_equal(n, 1);
  assert_string_equal(objs[0].kind->kind, "Deployment");
  assert_string_equal(objs[0].source, TESTDATA "deployment.yaml");
  assert_int_equal(objs[0].line, 3);
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)objs[0].msg;
  assert_string_equal(d->api_version, "apps/v1");
  assert_string_equal(d->metadata->name, "nginx-deployment");
  assert_non_null(d->spec->replicas);
  assert_int_equal(d->spec->replicas->value, 3);
  assert_int_equal(d->spec->selector->n_match_labels, 1);
  Keel__Api__V1__Container *c = d->spec->template_->spec->containers[0];
  assert_string_equal(c->name, "nginx");
  assert_string_equal(c->image, "nginx:1.14.2");
  assert_int_equal(c->ports[0]->container_port, 80);
  /* Quantities as written; a bare number is kept as its text. */
  Keel__Api__V1__ResourceRequirements *r = c->resources;
  assert_string_equal(QUANTITY(r->requests, r->n_requests, "memory"), "64Mi");
  assert_string_equal(QUANTITY(r->requests, r->n_requests, "cpu"), "250m");
  assert_string_equal(QUANTITY(r->limits, r->n_limits, "memory"), "128Mi");
  assert_string_equal(QUANTITY(r->limits, r->n_limits, "cpu"), "1");
  /* Where fields are, for the server's errors. */
  assert_int_equal(manifest_object_line(&objs[0], "spec.template.spec.containers[0].image"), 21);
  assert_int_equal(manifest_object_line(&objs[0], "spec.replicas: must be >= 0"), 10);
  assert_int_equal(manifest_object_line(&objs[0], "nothing.here"), 3);
  manifest_objects_free(objs, n);
}

static void test_service(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("service.yaml", &n);
  assert_int_equal(n, 1);
  Keel__Api__V1__Service *s = (Keel__Api__V1__Service *)objs[0].msg;
  assert_string_equal(s->spec->type, "NodePort");
  assert_int_equal(s->spec->n_ports, 2);
  /* targetPort as a number and as a port name. */
  assert_int_equal(s->spec->ports[0]->target_port->type, 0);
  assert_int_equal(s->spec->ports[0]->target_port->int_val, 80);
  assert_int_equal(s->spec->ports[0]->node_port, 30007);
  assert_int_equal(s->spec->ports[1]->target_port->type, 1);
  assert_string_equal(s->spec->ports[1]->target_port->str_val, "http-web-svc");
  assert_string_equal(s->spec->selector[0]->key, "app.kubernetes.io/name");
  manifest_objects_free(objs, n);

  objs = decode_file("service.json", &n);
  assert_int_equal(n, 1);
  s = (Keel__Api__V1__Service *)objs[0].msg;
  assert_string_equal(s->spec->cluster_ip, "None");
  assert_string_equal(s->spec->ports[0]->target_port->str_val, "dns");
  assert_int_equal(objs[0].line, 1);
  assert_int_equal(manifest_object_line(&objs[0], "spec.ports[0].targetPort"), 17);
  manifest_objects_free(objs, n);
}

static void test_namespace(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("namespace.yaml", &n);
  assert_int_equal(n, 1);
  Keel__Api__V1__Namespace *ns = (Keel__Api__V1__Namespace *)objs[0].msg;
  assert_string_equal(ns->metadata->name, "development");
  assert_string_equal(ns->metadata->labels[0]->value, "development");
  keel_error err = {0};
  char *json = manifest_to_json(g_pj, objs[0].msg, 0, &err);
  assert_non_null(json);
  /* kubectl -o json's layout. */
  assert_string_equal(json,
                      "{\n"
                      "    \"apiVersion\": \"v1\",\n"
                      "    \"kind\": \"Namespace\",\n"
                      "    \"metadata\": {\n"
                      "        \"name\": \"development\",\n"
                      "        \"labels\": {\n"
                      "            \"name\": \"development\"\n"
                      "        }\n"
                      "    }\n"
                      "}\n");
  free(json);
  manifest_objects_free(objs, n);
}

static void test_pod(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("pod.yaml", &n);
  assert_int_equal(n, 1);
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)objs[0].msg;
  assert_string_equal(p->metadata->annotations[0]->value,
                      "A pod with every kind of probe.\nSecond line.\n");
  Keel__Api__V1__PodSpec *s = p->spec;
  assert_int_equal(s->n_containers, 2);
  Keel__Api__V1__Container *c = s->containers[0];
  assert_int_equal(c->readiness_probe->tcp_socket->port->type, 0);
  assert_int_equal(c->readiness_probe->tcp_socket->port->int_val, 8080);
  assert_int_equal(c->readiness_probe->initial_delay_seconds, 15);
  assert_int_equal(c->liveness_probe->http_get->port->type, 1);
  assert_string_equal(c->liveness_probe->http_get->port->str_val, "liveness-port");
  assert_string_equal(c->liveness_probe->http_get->http_headers[0]->value, "Awesome");
  assert_int_equal(c->n_env, 3);
  assert_string_equal(c->env[0]->value, "Hello from the environment");
  assert_string_equal(c->env[2]->value_from->field_ref->field_path, "spec.nodeName");
  assert_string_equal(c->resources->requests[0]->value->string, "500m");
  assert_string_equal(c->resources->requests[1]->value->string, "128Mi");
  Keel__Api__V1__Container *l = s->containers[1];
  assert_int_equal(l->n_args, 3);
  assert_string_equal(l->args[2], "touch /tmp/healthy; sleep 30; rm -f /tmp/healthy; sleep 600");
  assert_string_equal(l->liveness_probe->exec->command[1], "/tmp/healthy");
  assert_string_equal(s->volumes[0]->empty_dir->size_limit->string, "500Mi");
  assert_string_equal(s->node_selector[0]->value, "ssd");
  assert_int_equal(s->n_tolerations, 2);
  assert_string_equal(s->tolerations[0]->operator_, "Exists");
  assert_int_equal(s->tolerations[1]->toleration_seconds->value, 6000);
  Keel__Api__V1__NodeSelectorRequirement *req =
      s->affinity->node_affinity->required_during_scheduling_ignored_during_execution
          ->node_selector_terms[0]
          ->match_expressions[0];
  assert_string_equal(req->key, "topology.kubernetes.io/zone");
  assert_int_equal(req->n_values, 2);
  assert_string_equal(req->values[1], "antarctica-west1");
  manifest_objects_free(objs, n);
}

/* ---------------------------------------------------------------- round trips */

/* Every object of file: YAML out, read back, byte-identical protobuf; the
 * YAML printed again is the same text; the same through JSON. */
static void roundtrip_file(const char *file) {
  size_t n;
  manifest_object *objs = decode_file(file, &n);
  assert_true(n > 0);
  keel_error err = {0};
  const ProtobufCMessage **msgs = calloc(n, sizeof(*msgs));
  for (size_t i = 0; i < n; i++) msgs[i] = objs[i].msg;
  char *yaml = manifest_list_to_yaml(g_pj, msgs, n, 0, &err);
  if (!yaml) fail_msg("%s: to_yaml: %s", file, err.message);
  size_t n2;
  manifest_object *back = tu_decode(g_pj, "out.yaml", yaml, &n2);
  assert_int_equal(n2, n);
  for (size_t i = 0; i < n; i++) tu_assert_same_message(objs[i].msg, back[i].msg);
  const ProtobufCMessage **msgs2 = calloc(n, sizeof(*msgs2));
  for (size_t i = 0; i < n; i++) msgs2[i] = back[i].msg;
  char *yaml2 = manifest_list_to_yaml(g_pj, msgs2, n, 0, &err);
  assert_string_equal(yaml2, yaml);
  /* JSON: a List for several objects. */
  char *json = manifest_list_to_json(g_pj, msgs, n, 0, &err);
  assert_non_null(json);
  size_t n3;
  manifest_object *fromjson = tu_decode(g_pj, "out.json", json, &n3);
  assert_int_equal(n3, n);
  for (size_t i = 0; i < n; i++) tu_assert_same_message(objs[i].msg, fromjson[i].msg);
  manifest_objects_free(fromjson, n3);
  free(json);
  free(yaml2);
  free(msgs2);
  manifest_objects_free(back, n2);
  free(yaml);
  free(msgs);
  manifest_objects_free(objs, n);
}

static void test_roundtrips(void **state) {
  (void)state;
  static const char *const files[] = {
      "deployment.yaml", "service.yaml", "namespace.yaml", "pod.yaml",
      "multi.yaml",      "list.yaml",    "service.json",   "anchors.yaml",
  };
  for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) roundtrip_file(files[i]);
}

static void test_yaml_output(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("deployment.yaml", &n);
  keel_error err = {0};
  char *yaml = manifest_to_yaml(g_pj, objs[0].msg, 0, &err);
  assert_non_null(yaml);
  /* Fields in proto order (apiVersion, kind, metadata, spec; name first in a
   * container), lists at their key's column, "1" quoted as kubectl does. */
  assert_string_equal(yaml,
                      "apiVersion: apps/v1\n"
                      "kind: Deployment\n"
                      "metadata:\n"
                      "  name: nginx-deployment\n"
                      "  labels:\n"
                      "    app: nginx\n"
                      "spec:\n"
                      "  replicas: 3\n"
                      "  selector:\n"
                      "    matchLabels:\n"
                      "      app: nginx\n"
                      "  template:\n"
                      "    metadata:\n"
                      "      labels:\n"
                      "        app: nginx\n"
                      "    spec:\n"
                      "      containers:\n"
                      "      - name: nginx\n"
                      "        image: nginx:1.14.2\n"
                      "        ports:\n"
                      "        - containerPort: 80\n"
                      "        resources:\n"
                      "          limits:\n"
                      "            cpu: \"1\"\n"
                      "            memory: 128Mi\n"
                      "          requests:\n"
                      "            cpu: 250m\n"
                      "            memory: 64Mi\n");
  free(yaml);
  /* kubectl's own order: keys sorted. */
  yaml = manifest_to_yaml(g_pj, objs[0].msg, MANIFEST_SORT_KEYS, &err);
  assert_non_null(strstr(yaml,
                         "      containers:\n"
                         "      - image: nginx:1.14.2\n"
                         "        name: nginx\n"));
  free(yaml);
  manifest_objects_free(objs, n);

  /* A multi-line annotation as a | block. */
  objs = decode_file("pod.yaml", &n);
  yaml = manifest_to_yaml(g_pj, objs[0].msg, 0, &err);
  assert_non_null(strstr(yaml,
                         "  annotations:\n"
                         "    description: |\n"
                         "      A pod with every kind of probe.\n"
                         "      Second line.\n"));
  assert_non_null(strstr(yaml,
                         "      httpGet:\n"
                         "        path: /healthz\n"
                         "        port: liveness-port\n"));
  assert_non_null(strstr(yaml,
                         "      tcpSocket:\n"
                         "        port: 8080\n"));
  free(yaml);
  manifest_objects_free(objs, n);
}

static void test_type_meta_filled(void **state) {
  (void)state;
  /* Objects come from the store without apiVersion and kind. */
  Keel__Api__V1__Pod pod = KEEL__API__V1__POD__INIT;
  Keel__Api__V1__ObjectMeta meta = KEEL__API__V1__OBJECT_META__INIT;
  meta.name = "web-0";
  pod.metadata = &meta;
  keel_error err = {0};
  char *yaml = manifest_to_yaml(g_pj, &pod.base, 0, &err);
  assert_string_equal(yaml, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n");
  free(yaml);
  Keel__Api__V1__Namespace ns = KEEL__API__V1__NAMESPACE__INIT;
  const ProtobufCMessage *two[] = {&pod.base, &ns.base};
  yaml = manifest_list_to_yaml(g_pj, two, 2, 0, &err);
  assert_string_equal(yaml,
                      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web-0\n---\n"
                      "apiVersion: v1\nkind: Namespace\n");
  free(yaml);
  yaml = manifest_list_to_yaml(g_pj, two, 2, MANIFEST_AS_LIST, &err);
  assert_string_equal(yaml,
                      "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n"
                      "  metadata:\n    name: web-0\n- apiVersion: v1\n  kind: Namespace\n");
  free(yaml);
  char *json = manifest_list_to_json(g_pj, two, 1, 0, &err);
  assert_string_equal(json,
                      "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"Pod\",\n"
                      "    \"metadata\": {\n        \"name\": \"web-0\"\n    }\n}\n");
  free(json);
  json = manifest_list_to_json(g_pj, two, 0, 0, &err);
  assert_string_equal(json,
                      "{\n    \"apiVersion\": \"v1\",\n    \"kind\": \"List\",\n"
                      "    \"items\": []\n}\n");
  free(json);
}

/* ---------------------------------------------------------------- streams and lists */

static void test_multi_documents(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("multi.yaml", &n);
  assert_int_equal(n, 3);
  assert_string_equal(objs[0].kind->kind, "Namespace");
  assert_int_equal(objs[0].line, 3);
  assert_string_equal(objs[1].kind->kind, "Deployment");
  assert_int_equal(objs[1].line, 10);
  assert_string_equal(objs[2].kind->kind, "Service");
  assert_int_equal(objs[2].line, 21);
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)objs[1].msg;
  assert_string_equal(d->spec->template_->spec->containers[0]->image, "nginx:1.25");
  manifest_objects_free(objs, n);
  /* Nothing but comments and separators: no objects, no error. */
  manifest_object *none = tu_decode(g_pj, "empty.yaml", "# nothing\n---\n---\n", &n);
  assert_int_equal(n, 0);
  manifest_objects_free(none, n);
}

static void test_lists(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("list.yaml", &n);
  assert_int_equal(n, 2);
  assert_string_equal(objs[0].kind->kind, "Namespace");
  assert_int_equal(objs[0].line, 4);
  assert_string_equal(objs[1].kind->kind, "Pod");
  assert_int_equal(objs[1].line, 8);
  manifest_objects_free(objs, n);
  /* A typed list (what the REST API returns): items without kind. */
  objs = tu_decode(
      g_pj, "pods.json",
      "{\"apiVersion\": \"v1\", \"kind\": \"PodList\", \"metadata\": {},\n"
      " \"items\": [{\"metadata\": {\"name\": \"a\"}}, {\"metadata\": {\"name\": \"b\"}}]}",
      &n);
  assert_int_equal(n, 2);
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)objs[1].msg;
  assert_string_equal(p->metadata->name, "b");
  assert_string_equal(p->kind, "Pod");
  assert_string_equal(p->api_version, "v1");
  manifest_objects_free(objs, n);
  /* A top-level sequence of objects. */
  objs = tu_decode(g_pj, "seq.yaml",
                   "- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n"
                   "- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n",
                   &n);
  assert_int_equal(n, 2);
  assert_int_equal(objs[1].line, 2);
  manifest_objects_free(objs, n);
  /* JSON objects one after another, as kubectl reads a JSON stream. */
  objs = tu_decode(g_pj, "two.json",
                   "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\"}\n"
                   "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\"}\n",
                   &n);
  assert_int_equal(n, 2);
  manifest_objects_free(objs, n);
}

static void test_anchors(void **state) {
  (void)state;
  size_t n;
  manifest_object *objs = decode_file("anchors.yaml", &n);
  assert_int_equal(n, 1);
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)objs[0].msg;
  assert_int_equal(p->metadata->n_annotations, 2);
  assert_string_equal(p->metadata->annotations[0]->key, "app");
  assert_string_equal(p->metadata->annotations[1]->value, "overridden");
  Keel__Api__V1__Container *b = p->spec->containers[1];
  assert_string_equal(b->name, "b");
  assert_string_equal(b->image, "busybox");
  assert_int_equal(b->n_command, 3);
  assert_int_equal(b->n_args, 3);
  assert_string_equal(b->args[2], "sleep 3600");
  manifest_objects_free(objs, n);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state) {
  (void)state;
  static const char deployment[] =
      "apiVersion: apps/v1\n"               /* 1 */
      "kind: Deployment\n"                  /* 2 */
      "metadata:\n"                         /* 3 */
      "  name: web\n"                       /* 4 */
      "spec:\n"                             /* 5 */
      "  selector:\n"                       /* 6 */
      "    matchLabels: {app: web}\n"       /* 7 */
      "  template:\n"                       /* 8 */
      "    spec:\n"                         /* 9 */
      "      containers:\n"                 /* 10 */
      "      - name: web\n"                 /* 11 */
      "        image: nginx\n"              /* 12 */
      "        imagePullPolicyy: Always\n"; /* 13 */
  tu_expect_error(g_pj, "web.yaml", deployment,
                  "web.yaml:13: spec.template.spec.containers[0].imagePullPolicyy: unknown field "
                  "\"imagePullPolicyy\"");
  /* The kind and apiVersion must be the registry's. */
  tu_expect_error(g_pj, "pod.yaml", "apiVersion: apps/v1\nkind: Pod\n",
                  "pod.yaml:1: apiVersion \"apps/v1\" does not serve kind Pod (Pod is \"v1\")");
  tu_expect_error(g_pj, "d.yaml", "# c\napiVersion: apps/v1\nkind: Deploymnet\n",
                  "d.yaml:3: kind \"Deploymnet\" is not served (apiVersion \"apps/v1\")");
  tu_expect_error(g_pj, "d.yaml", "apiVersion: apps/v1\nkind: deployment\n",
                  "d.yaml:2: kind \"deployment\" is not served (apiVersion \"apps/v1\"); did you "
                  "mean \"Deployment\"?");
  tu_expect_error(g_pj, "x.yaml", "\n\nmetadata:\n  name: x\n", "x.yaml:3: kind is not set");
  tu_expect_error(g_pj, "x.yaml", "kind: Pod\n", "x.yaml:1: apiVersion is not set");
  tu_expect_error(g_pj, "x.yaml", "kind: [Pod]\n", "x.yaml:1: kind must be a string");
  tu_expect_error(g_pj, "x.yaml", "just a string\n",
                  "x.yaml:1: expected a Kubernetes object (a mapping with apiVersion and kind), "
                  "got a string");
  /* YAML 1.1 booleans where a string belongs: kubectl refuses them too. */
  tu_expect_error(g_pj, "env.yaml",
                  "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    env:\n"
                  "    - name: DEBUG\n      value: yes\n",
                  "env.yaml:8: spec.containers[0].env[0].value: expected a string, got boolean "
                  "true (YAML reads unquoted yes/no/on/off/true/false as booleans and digits as "
                  "numbers: quote the value)");
  tu_expect_error(g_pj, "l.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  labels:\n    v: 2\n",
                  "l.yaml:5: metadata.labels[\"v\"]: expected a string, got number 2 (YAML reads "
                  "unquoted yes/no/on/off/true/false as booleans and digits as numbers: quote the "
                  "value)");
  tu_expect_error(g_pj, "r.yaml",
                  "apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: three\n",
                  "r.yaml:4: spec.replicas: expected an integer, got string \"three\"");
  /* A field written with its proto name: the line is still found. */
  tu_expect_error(g_pj, "s.yaml",
                  "apiVersion: v1\nkind: Pod\nstatus:\n  phase: Running\n  pod_ip: 1\n",
                  "s.yaml:5: status.podIP: expected a string, got number 1 (YAML reads unquoted "
                  "yes/no/on/off/true/false as booleans and digits as numbers: quote the value)");
  /* Syntax: line and column. */
  tu_expect_error(g_pj, "tab.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n\tname: x\n",
                  "tab.yaml:4:1: found character that cannot start any token (a tab: YAML indents "
                  "with spaces only) (while scanning for the next token at line 4)");
  tu_expect_error(g_pj, "ind.yaml",
                  "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   labels: {}\n",
                  "ind.yaml:5:10: mapping values are not allowed in this context");
  tu_expect_error(g_pj, "dup.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n  name: y\n",
                  "dup.yaml:5:3: duplicate key \"name\" (first at line 4)");
  tu_expect_error(g_pj, "bad.json", "{\"apiVersion\": \"v1\",\n \"kind\": \"Pod\",,}",
                  "bad.json:2:16: invalid JSON: string or '}' expected near ','");
  /* In a later document, in a List item. */
  tu_expect_error(g_pj, "m.yaml",
                  "apiVersion: v1\nkind: Namespace\n---\napiVersion: v1\nkind: Namespace\n"
                  "metadata:\n  nmae: x\n",
                  "m.yaml:7: metadata.nmae: unknown field \"nmae\"");
  tu_expect_error(g_pj, "list.yaml",
                  "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n"
                  "- apiVersion: v1\n  kind: Pod\n  spec:\n    containers:\n    - name: a\n"
                  "      imagee: b\n",
                  "list.yaml:11: items[1].spec.containers[0].imagee: unknown field \"imagee\"");
  tu_expect_error(g_pj, "list.yaml", "apiVersion: v1\nkind: List\nitems:\n- 3\n",
                  "list.yaml:4: items[0]: expected a Kubernetes object (a mapping with apiVersion "
                  "and kind), got a number");
  tu_expect_error(g_pj, "list.yaml", "apiVersion: v1\nkind: List\nitemz: []\n",
                  "list.yaml:3: itemz: unknown field \"itemz\" (a List has apiVersion, kind, "
                  "metadata and items)");
  tu_expect_error(g_pj, "list.yaml", "apiVersion: v1\nkind: PodList\nitems:\n- kind: Service\n",
                  "list.yaml:4: items[0]: kind Service in a PodList");
  /* An error deep inside an alias names the anchor's line. */
  tu_expect_error(g_pj, "a.yaml",
                  "apiVersion: v1\nkind: Pod\nmetadata:\n  name: &n {bad: 1}\n  labels: *n\n",
                  "a.yaml:4: metadata.name: expected a string, got object");
}

/* ---------------------------------------------------------------- files */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_dir_and_stdin(void **state) {
  (void)state;
  const char *tmp = getenv("TEST_TMPDIR");
  char dir[512], p[600];
  snprintf(dir, sizeof(dir), "%s/manifests-XXXXXX", tmp ? tmp : "/tmp");
  assert_non_null(mkdtemp(dir));
  snprintf(p, sizeof(p), "%s/b.yaml", dir);
  write_file(p, "apiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n");
  snprintf(p, sizeof(p), "%s/a.json", dir);
  write_file(p,
             "{\"apiVersion\": \"v1\", \"kind\": \"Namespace\", \"metadata\": {\"name\": \"a\"}}");
  snprintf(p, sizeof(p), "%s/c.yml", dir);
  write_file(p, "apiVersion: v1\nkind: Namespace\nmetadata: {name: c}\n");
  snprintf(p, sizeof(p), "%s/notes.txt", dir);
  write_file(p, "not a manifest: [\n");
  snprintf(p, sizeof(p), "%s/sub.yaml", dir); /* a directory: skipped, not recursed into */
  assert_int_equal(mkdir(p, 0755), 0);
  snprintf(p, sizeof(p), "%s/sub.yaml/d.yaml", dir);
  write_file(p, "apiVersion: v1\nkind: Namespace\nmetadata: {name: d}\n");

  manifest_object *objs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(manifest_decode_path(g_pj, dir, &objs, &n, &err), 0);
  assert_int_equal(n, 3);
  const char *want[] = {"a", "b", "c"};
  for (size_t i = 0; i < n; i++) {
    Keel__Api__V1__Namespace *ns = (Keel__Api__V1__Namespace *)objs[i].msg;
    assert_string_equal(ns->metadata->name, want[i]);
  }
  snprintf(p, sizeof(p), "%s/c.yml", dir);
  assert_string_equal(objs[2].source, p);
  manifest_objects_free(objs, n);

  /* An error names the file it is in. */
  snprintf(p, sizeof(p), "%s/b2.yaml", dir);
  write_file(p, "apiVersion: v1\nkind: Namespace\nspec: {finalizerz: []}\n");
  assert_int_equal(manifest_decode_dir(g_pj, dir, &objs, &n, &err), -EINVAL);
  char msg[700];
  snprintf(msg, sizeof(msg), "%s:3: spec.finalizerz: unknown field \"finalizerz\"", p);
  assert_string_equal(err.message, msg);
  assert_null(objs);

  /* A missing file. */
  assert_int_equal(manifest_decode_path(g_pj, "/nonexistent/x.yaml", &objs, &n, &err), -ENOENT);
  assert_string_equal(err.message, "open /nonexistent/x.yaml: No such file or directory");

  /* "-" reads standard input. */
  snprintf(p, sizeof(p), "%s/c.yml", dir);
  int saved = dup(STDIN_FILENO);
  int fd = open(p, O_RDONLY);
  assert_true(fd >= 0);
  dup2(fd, STDIN_FILENO);
  close(fd);
  int rc = manifest_decode_path(g_pj, "-", &objs, &n, &err);
  dup2(saved, STDIN_FILENO);
  close(saved);
  assert_int_equal(rc, 0);
  assert_int_equal(n, 1);
  assert_string_equal(objs[0].source, "-");
  manifest_objects_free(objs, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deployment),
      cmocka_unit_test(test_service),
      cmocka_unit_test(test_namespace),
      cmocka_unit_test(test_pod),
      cmocka_unit_test(test_roundtrips),
      cmocka_unit_test(test_yaml_output),
      cmocka_unit_test(test_type_meta_filled),
      cmocka_unit_test(test_multi_documents),
      cmocka_unit_test(test_lists),
      cmocka_unit_test(test_anchors),
      cmocka_unit_test(test_errors),
      cmocka_unit_test(test_dir_and_stdin),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
