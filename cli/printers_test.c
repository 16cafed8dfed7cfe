/* cli/printers_test.c — kubectl's human ages, the tabwriter's alignment and
 * kubectl's table rows, checked as exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "cli/printers.h"
#include "cli/tabwriter.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

#define NOW 1700000000

static void test_human_duration(void **state) {
  (void)state;
  static const struct {
    int64_t s;
    const char *want;
  } cases[] = {
      {-5, "<invalid>"}, {-1, "0s"},     {0, "0s"},
      {5, "5s"},         {59, "59s"},    {119, "119s"},
      {120, "2m"},       {182, "3m2s"},  {599, "9m59s"},
      {600, "10m"},      {10799, "179m"}, {3 * 3600, "3h"},
      {4 * 3600, "4h"},  {4 * 3600 + 60 * 5, "4h5m"}, {8 * 3600 - 60, "7h59m"},
      {8 * 3600, "8h"},  {47 * 3600, "47h"}, {48 * 3600, "2d"},
      {(2 * 24 + 3) * 3600, "2d3h"}, {(7 * 24 + 23) * 3600, "7d23h"}, {8 * 24 * 3600, "8d"},
      {45 * 24 * 3600, "45d"}, {729LL * 24 * 3600, "729d"}, {730LL * 24 * 3600, "2y"},
      {(730LL + 10) * 24 * 3600, "2y10d"}, {8LL * 365 * 24 * 3600, "8y"}, {20LL * 365 * 24 * 3600, "20y"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char buf[32];
    printers_human_duration(cases[i].s, buf, sizeof(buf));
    if (strcmp(buf, cases[i].want) != 0) fail_msg("%lld s: got %s, want %s", (long long)cases[i].s, buf, cases[i].want);
  }
  char buf[32];
  printers_age(NULL, NOW, buf, sizeof(buf));
  assert_string_equal(buf, "<unknown>");
  Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  ts.seconds = NOW - 3725;
  printers_age(&ts, NOW, buf, sizeof(buf));
  assert_string_equal(buf, "62m");
}

static char *render(tabwriter *tw) {
  char *s = tabwriter_flush_string(tw);
  assert_non_null(s);
  return s;
}

static void test_tabwriter_alignment(void **state) {
  (void)state;
  tabwriter *tw = tabwriter_new(6, 3, 0);
  tabwriter_write(tw, "NAME\tREADY\tSTATUS\tAGE\n");
  tabwriter_write(tw, "a\t1/1\tRunning\t5s\n");
  tabwriter_write(tw, "longer-name\t0/1\tPending\t3m2s\n");
  char *s = render(tw);
  assert_string_equal(s,
                      "NAME          READY   STATUS    AGE\n"
                      "a             1/1     Running   5s\n"
                      "longer-name   0/1     Pending   3m2s\n");
  free(s);
  /* minwidth: a narrow column is still 6 wide; the last cell is never padded. */
  tabwriter_write(tw, "A\tB\n");
  tabwriter_write(tw, "x\tyyyyyyyyyy\n");
  s = render(tw);
  assert_string_equal(s, "A     B\nx     yyyyyyyyyy\n");
  free(s);
  /* Column blocks: a line with fewer cells ends the block. */
  tabwriter_write(tw, "k:\tv\nheader\nkey-long:\tv\n");
  s = render(tw);
  assert_string_equal(s, "k:    v\nheader\nkey-long:   v\n");
  free(s);
  /* Nothing written: empty, not NULL. */
  s = render(tw);
  assert_string_equal(s, "");
  free(s);
  tabwriter_free(tw);
}

static void test_tabwriter_remember_widths(void **state) {
  (void)state;
  tabwriter *tw = tabwriter_new(6, 3, TABWRITER_REMEMBER_WIDTHS);
  tabwriter_write(tw, "NAME\tSTATUS\tAGE\nweb-1\tRunning\t1s\n");
  char *s = render(tw);
  assert_string_equal(s, "NAME    STATUS    AGE\nweb-1   Running   1s\n");
  free(s);
  /* A later, narrower row keeps the table's columns. */
  tabwriter_write(tw, "a\tb\t2s\n");
  s = render(tw);
  assert_string_equal(s, "a       b         2s\n");
  free(s);
  /* A wider one widens its column from then on. */
  tabwriter_write(tw, "a-very-long-name\tPending\t3s\n");
  s = render(tw);
  assert_string_equal(s, "a-very-long-name   Pending   3s\n");
  free(s);
  tabwriter_write(tw, "b\tc\t4s\n");
  s = render(tw);
  assert_string_equal(s, "b                  c         4s\n");
  free(s);
  tabwriter_free(tw);
}

static void test_tabwriter_width_ignores_color(void **state) {
  (void)state;
  assert_int_equal(tabwriter_text_width("\x1b[32mRunning\x1b[0m", strlen("\x1b[32mRunning\x1b[0m")), 7);
  assert_int_equal(tabwriter_text_width("h\xc3\xa9llo", 6), 5); /* UTF-8: characters, not bytes */
  tabwriter *tw = tabwriter_new(6, 3, 0);
  tabwriter_write(tw, "STATUS\tAGE\n\x1b[32mRunning\x1b[0m\t1s\nPending\t2s\n");
  char *s = render(tw);
  assert_string_equal(s, "STATUS    AGE\n\x1b[32mRunning\x1b[0m   1s\nPending   2s\n");
  free(s);
  tabwriter_free(tw);
}

/* ---------------------------------------------------------------- rows */

static Google__Protobuf__Timestamp created = GOOGLE__PROTOBUF__TIMESTAMP__INIT;

static char *table(const api_kind *k, const ProtobufCMessage *const *objs, size_t n, const printer_opts *o) {
  tabwriter *tw = printers_table_new();
  printers_header(tw, k, o);
  for (size_t i = 0; i < n; i++) printers_row(tw, k, objs[i], o, NULL);
  char *s = render(tw);
  tabwriter_free(tw);
  return s;
}

static void test_pod_table(void **state) {
  (void)state;
  created.seconds = NOW - 62;
  Keel__Api__V1__ObjectMeta m1 = KEEL__API__V1__OBJECT_META__INIT, m2 = KEEL__API__V1__OBJECT_META__INIT;
  m1.name = "nginx-7fb96c846b-abcde";
  m1.namespace_ = "default";
  m1.creation_timestamp = &created;
  m2.name = "db";
  m2.namespace_ = "prod";
  m2.creation_timestamp = &created;
  Keel__Api__V1__Container c1 = KEEL__API__V1__CONTAINER__INIT, c2 = KEEL__API__V1__CONTAINER__INIT;
  c1.name = "web";
  c2.name = "sidecar";
  Keel__Api__V1__Container *cs[] = {&c1, &c2};
  Keel__Api__V1__PodSpec spec = KEEL__API__V1__POD_SPEC__INIT;
  spec.n_containers = 2;
  spec.containers = cs;
  spec.node_name = "node-1";
  Keel__Api__V1__ContainerStateRunning running = KEEL__API__V1__CONTAINER_STATE_RUNNING__INIT;
  Keel__Api__V1__ContainerState st_run = KEEL__API__V1__CONTAINER_STATE__INIT;
  st_run.running = &running;
  Keel__Api__V1__ContainerStateWaiting waiting = KEEL__API__V1__CONTAINER_STATE_WAITING__INIT;
  waiting.reason = "CrashLoopBackOff";
  Keel__Api__V1__ContainerState st_wait = KEEL__API__V1__CONTAINER_STATE__INIT;
  st_wait.waiting = &waiting;
  Keel__Api__V1__ContainerStatus s1 = KEEL__API__V1__CONTAINER_STATUS__INIT, s2 = KEEL__API__V1__CONTAINER_STATUS__INIT;
  s1.name = "web";
  s1.ready = true;
  s1.state = &st_run;
  s1.restart_count = 1;
  s2.name = "sidecar";
  s2.state = &st_wait;
  s2.restart_count = 4;
  Keel__Api__V1__ContainerStatus *sts[] = {&s1, &s2};
  Keel__Api__V1__PodStatus status = KEEL__API__V1__POD_STATUS__INIT;
  status.phase = "Running";
  status.pod_ip = "10.244.1.7";
  status.n_container_statuses = 2;
  status.container_statuses = sts;
  Keel__Api__V1__Pod p1 = KEEL__API__V1__POD__INIT;
  p1.metadata = &m1;
  p1.spec = &spec;
  p1.status = &status;
  Keel__Api__V1__PodSpec spec2 = KEEL__API__V1__POD_SPEC__INIT;
  spec2.n_containers = 1;
  spec2.containers = cs;
  Keel__Api__V1__PodStatus status2 = KEEL__API__V1__POD_STATUS__INIT;
  status2.phase = "Pending";
  Keel__Api__V1__Pod p2 = KEEL__API__V1__POD__INIT;
  p2.metadata = &m2;
  p2.spec = &spec2;
  p2.status = &status2;
  const ProtobufCMessage *objs[] = {&p1.base, &p2.base};
  const api_kind *k = api_kind_by_name("pods");
  printer_opts o = {.now = NOW};
  char *s = table(k, objs, 2, &o);
  assert_string_equal(s,
                      "NAME                     READY   STATUS             RESTARTS   AGE\n"
                      "nginx-7fb96c846b-abcde   1/2     CrashLoopBackOff   5          62s\n"
                      "db                       0/1     Pending            0          62s\n");
  free(s);
  o.wide = true;
  o.namespace_col = true;
  s = table(k, objs, 2, &o);
  assert_string_equal(s,
                      "NAMESPACE   NAME                     READY   STATUS             RESTARTS   AGE   IP           "
                      "NODE     NOMINATED NODE   READINESS GATES\n"
                      "default     nginx-7fb96c846b-abcde   1/2     CrashLoopBackOff   5          62s   10.244.1.7   "
                      "node-1   <none>           <none>\n"
                      "prod        db                       0/1     Pending            0          62s   <none>       "
                      "<none>   <none>           <none>\n");
  free(s);
  /* Terminating wins over everything; colors only when asked. */
  Google__Protobuf__Timestamp del = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  del.seconds = NOW;
  m2.deletion_timestamp = &del;
  printer_opts oc = {.now = NOW, .color = true, .with_kind = true};
  const ProtobufCMessage *one[] = {&p2.base};
  s = table(k, one, 1, &oc);
  assert_string_equal(s,
                      "NAME     READY   STATUS        RESTARTS   AGE\n"
                      "pod/db   0/1     \x1b[33mTerminating\x1b[0m   0          62s\n");
  free(s);
}

static void test_pod_status_init_and_completed(void **state) {
  (void)state;
  Keel__Api__V1__Container c = KEEL__API__V1__CONTAINER__INIT;
  Keel__Api__V1__Container *cs[] = {&c, &c};
  Keel__Api__V1__PodSpec spec = KEEL__API__V1__POD_SPEC__INIT;
  spec.n_init_containers = 2;
  spec.init_containers = cs;
  spec.n_containers = 1;
  spec.containers = cs;
  Keel__Api__V1__ContainerStateTerminated done = KEEL__API__V1__CONTAINER_STATE_TERMINATED__INIT;
  done.reason = "Completed";
  Keel__Api__V1__ContainerState st_done = KEEL__API__V1__CONTAINER_STATE__INIT;
  st_done.terminated = &done;
  Keel__Api__V1__ContainerStatus i1 = KEEL__API__V1__CONTAINER_STATUS__INIT, i2 = KEEL__API__V1__CONTAINER_STATUS__INIT;
  i1.state = &st_done;
  Keel__Api__V1__ContainerStatus *inits[] = {&i1, &i2};
  Keel__Api__V1__PodStatus status = KEEL__API__V1__POD_STATUS__INIT;
  status.phase = "Pending";
  status.n_init_container_statuses = 2;
  status.init_container_statuses = inits;
  Keel__Api__V1__Pod p = KEEL__API__V1__POD__INIT;
  p.spec = &spec;
  p.status = &status;
  char buf[64];
  printers_pod_status(&p.base, buf, sizeof(buf));
  assert_string_equal(buf, "Init:1/2");
  Keel__Api__V1__ContainerStateTerminated failed = KEEL__API__V1__CONTAINER_STATE_TERMINATED__INIT;
  failed.exit_code = 3;
  Keel__Api__V1__ContainerState st_failed = KEEL__API__V1__CONTAINER_STATE__INIT;
  st_failed.terminated = &failed;
  i2.state = &st_failed;
  printers_pod_status(&p.base, buf, sizeof(buf));
  assert_string_equal(buf, "Init:ExitCode:3");
  /* All init containers done; the main one completed. */
  i2.state = &st_done;
  Keel__Api__V1__ContainerStatus m = KEEL__API__V1__CONTAINER_STATUS__INIT;
  m.state = &st_done;
  Keel__Api__V1__ContainerStatus *ms[] = {&m};
  status.n_container_statuses = 1;
  status.container_statuses = ms;
  status.phase = "Succeeded";
  printers_pod_status(&p.base, buf, sizeof(buf));
  assert_string_equal(buf, "Completed");
}

static void test_workload_and_service_tables(void **state) {
  (void)state;
  created.seconds = NOW - (2 * 24 + 3) * 3600;
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  m.name = "nginx-deployment";
  m.creation_timestamp = &created;
  Google__Protobuf__Int32Value replicas = GOOGLE__PROTOBUF__INT32_VALUE__INIT;
  replicas.value = 3;
  Keel__Api__V1__ObjectMeta__LabelsEntry le = KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT;
  le.key = "app";
  le.value = "nginx";
  Keel__Api__V1__LabelSelector__MatchLabelsEntry ml = KEEL__API__V1__LABEL_SELECTOR__MATCH_LABELS_ENTRY__INIT;
  ml.key = "app";
  ml.value = "nginx";
  Keel__Api__V1__LabelSelector__MatchLabelsEntry *mls[] = {&ml};
  Keel__Api__V1__LabelSelector sel = KEEL__API__V1__LABEL_SELECTOR__INIT;
  sel.n_match_labels = 1;
  sel.match_labels = mls;
  Keel__Api__V1__Container c = KEEL__API__V1__CONTAINER__INIT;
  c.name = "nginx";
  c.image = "nginx:1.14.2";
  Keel__Api__V1__Container *cs[] = {&c};
  Keel__Api__V1__PodSpec ps = KEEL__API__V1__POD_SPEC__INIT;
  ps.n_containers = 1;
  ps.containers = cs;
  Keel__Api__V1__PodTemplateSpec t = KEEL__API__V1__POD_TEMPLATE_SPEC__INIT;
  t.spec = &ps;
  Keel__Api__V1__DeploymentSpec ds = KEEL__API__V1__DEPLOYMENT_SPEC__INIT;
  ds.replicas = &replicas;
  ds.selector = &sel;
  ds.template_ = &t;
  Keel__Api__V1__DeploymentStatus dst = KEEL__API__V1__DEPLOYMENT_STATUS__INIT;
  dst.ready_replicas = 2;
  dst.updated_replicas = 3;
  dst.available_replicas = 2;
  Keel__Api__V1__Deployment d = KEEL__API__V1__DEPLOYMENT__INIT;
  d.metadata = &m;
  d.spec = &ds;
  d.status = &dst;
  const ProtobufCMessage *objs[] = {&d.base};
  printer_opts o = {.now = NOW, .wide = true};
  char *s = table(api_kind_by_name("deploy"), objs, 1, &o);
  assert_string_equal(s,
                      "NAME               READY   UP-TO-DATE   AVAILABLE   AGE    CONTAINERS   IMAGES         SELECTOR\n"
                      "nginx-deployment   2/3     3            2           2d3h   nginx        nginx:1.14.2   app=nginx\n");
  free(s);

  Keel__Api__V1__ReplicaSetSpec rss = KEEL__API__V1__REPLICA_SET_SPEC__INIT;
  rss.replicas = &replicas;
  Keel__Api__V1__ReplicaSetStatus rst = KEEL__API__V1__REPLICA_SET_STATUS__INIT;
  rst.replicas = 3;
  rst.ready_replicas = 1;
  Keel__Api__V1__ReplicaSet rs = KEEL__API__V1__REPLICA_SET__INIT;
  rs.metadata = &m;
  rs.spec = &rss;
  rs.status = &rst;
  objs[0] = &rs.base;
  o.wide = false;
  s = table(api_kind_by_name("rs"), objs, 1, &o);
  assert_string_equal(s,
                      "NAME               DESIRED   CURRENT   READY   AGE\n"
                      "nginx-deployment   3         3         1       2d3h\n");
  free(s);

  created.seconds = NOW - 45 * 24 * 3600;
  Keel__Api__V1__ServicePort p1 = KEEL__API__V1__SERVICE_PORT__INIT, p2 = KEEL__API__V1__SERVICE_PORT__INIT;
  p1.port = 80;
  p1.node_port = 30007;
  p1.protocol = "TCP";
  p2.port = 53;
  p2.protocol = "UDP";
  Keel__Api__V1__ServicePort *ports[] = {&p1, &p2};
  Keel__Api__V1__ServiceSpec ss = KEEL__API__V1__SERVICE_SPEC__INIT;
  ss.type = "NodePort";
  ss.cluster_ip = "10.96.0.10";
  ss.n_ports = 2;
  ss.ports = ports;
  Keel__Api__V1__Service svc = KEEL__API__V1__SERVICE__INIT;
  Keel__Api__V1__ObjectMeta sm = KEEL__API__V1__OBJECT_META__INIT;
  sm.name = "my-service";
  sm.creation_timestamp = &created;
  svc.metadata = &sm;
  svc.spec = &ss;
  Keel__Api__V1__ServiceSpec hs = KEEL__API__V1__SERVICE_SPEC__INIT;
  hs.cluster_ip = "None";
  Keel__Api__V1__Service headless = KEEL__API__V1__SERVICE__INIT;
  Keel__Api__V1__ObjectMeta hm = KEEL__API__V1__OBJECT_META__INIT;
  hm.name = "db";
  headless.metadata = &hm;
  headless.spec = &hs;
  const ProtobufCMessage *svcs[] = {&svc.base, &headless.base};
  s = table(api_kind_by_name("svc"), svcs, 2, &o);
  assert_string_equal(s,
                      "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)               AGE\n"
                      "my-service   NodePort    10.96.0.10   <none>        80:30007/TCP,53/UDP   45d\n"
                      "db           ClusterIP   None         <none>        <none>                <unknown>\n");
  free(s);
  (void)le;
}

static void test_node_namespace_event_tables(void **state) {
  (void)state;
  created.seconds = NOW - 4 * 3600;
  Keel__Api__V1__ObjectMeta__LabelsEntry l1 = KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT,
                                          l2 = KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT;
  l1.key = "node-role.kubernetes.io/worker";
  l1.value = "";
  l2.key = "node-role.kubernetes.io/control-plane";
  l2.value = "";
  Keel__Api__V1__ObjectMeta__LabelsEntry *ls[] = {&l1, &l2};
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  m.name = "node-1";
  m.creation_timestamp = &created;
  m.n_labels = 2;
  m.labels = ls;
  Keel__Api__V1__NodeCondition ready = KEEL__API__V1__NODE_CONDITION__INIT;
  ready.type = "Ready";
  ready.status = "True";
  Keel__Api__V1__NodeCondition *conds[] = {&ready};
  Keel__Api__V1__NodeSystemInfo info = KEEL__API__V1__NODE_SYSTEM_INFO__INIT;
  info.kubelet_version = "v0.1.0";
  Keel__Api__V1__NodeStatus ns = KEEL__API__V1__NODE_STATUS__INIT;
  ns.n_conditions = 1;
  ns.conditions = conds;
  ns.node_info = &info;
  Keel__Api__V1__NodeSpec nsp = KEEL__API__V1__NODE_SPEC__INIT;
  nsp.unschedulable = true;
  Keel__Api__V1__Node n = KEEL__API__V1__NODE__INIT;
  n.metadata = &m;
  n.spec = &nsp;
  n.status = &ns;
  const ProtobufCMessage *objs[] = {&n.base};
  printer_opts o = {.now = NOW, .show_labels = false};
  char *s = table(api_kind_by_name("nodes"), objs, 1, &o);
  assert_string_equal(s,
                      "NAME     STATUS                     ROLES                  AGE   VERSION\n"
                      "node-1   Ready,SchedulingDisabled   control-plane,worker   4h    v0.1.0\n");
  free(s);

  Keel__Api__V1__NamespaceStatus nss = KEEL__API__V1__NAMESPACE_STATUS__INIT;
  nss.phase = "Active";
  Keel__Api__V1__ObjectMeta nm = KEEL__API__V1__OBJECT_META__INIT;
  nm.name = "development";
  nm.creation_timestamp = &created;
  Keel__Api__V1__ObjectMeta__LabelsEntry nl = KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT;
  nl.key = "name";
  nl.value = "development";
  Keel__Api__V1__ObjectMeta__LabelsEntry *nls[] = {&nl};
  nm.n_labels = 1;
  nm.labels = nls;
  Keel__Api__V1__Namespace nso = KEEL__API__V1__NAMESPACE__INIT;
  nso.metadata = &nm;
  nso.status = &nss;
  objs[0] = &nso.base;
  o.show_labels = true;
  o.namespace_col = true; /* cluster-scoped: no NAMESPACE column anyway */
  s = table(api_kind_by_name("ns"), objs, 1, &o);
  assert_string_equal(s,
                      "NAME          STATUS   AGE   LABELS\n"
                      "development   Active   4h    name=development\n");
  free(s);

  Keel__Api__V1__ObjectReference io = KEEL__API__V1__OBJECT_REFERENCE__INIT;
  io.kind = "Pod";
  io.name = "goproxy";
  Google__Protobuf__Timestamp last = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
  last.seconds = NOW - 182;
  Keel__Api__V1__Event e = KEEL__API__V1__EVENT__INIT;
  Keel__Api__V1__ObjectMeta em = KEEL__API__V1__OBJECT_META__INIT;
  em.name = "goproxy.1";
  em.namespace_ = "default";
  e.metadata = &em;
  e.involved_object = &io;
  e.reason = "Unhealthy";
  e.type = "Warning";
  e.message = "  Liveness probe failed\n";
  e.last_timestamp = &last;
  objs[0] = &e.base;
  o.show_labels = false;
  s = table(api_kind_by_name("ev"), objs, 1, &o);
  assert_string_equal(s,
                      "NAMESPACE   LAST SEEN   TYPE      REASON      OBJECT        MESSAGE\n"
                      "default     3m2s        Warning   Unhealthy   pod/goproxy   Liveness probe failed\n");
  free(s);
}

static void test_names_and_selectors(void **state) {
  (void)state;
  char buf[128];
  printers_kind_ref(api_kind_by_name("deploy"), buf, sizeof(buf));
  assert_string_equal(buf, "deployment.apps");
  printers_kind_ref(api_kind_by_name("pods"), buf, sizeof(buf));
  assert_string_equal(buf, "pod");
  printers_kind_ref(api_kind_by_name("lease"), buf, sizeof(buf));
  assert_string_equal(buf, "lease.coordination.k8s.io");
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  m.name = "web";
  Keel__Api__V1__Deployment d = KEEL__API__V1__DEPLOYMENT__INIT;
  d.metadata = &m;
  printers_object_name(api_kind_by_name("Deployment"), &d.base, buf, sizeof(buf));
  assert_string_equal(buf, "deployment.apps/web");

  Keel__Api__V1__LabelSelector__MatchLabelsEntry a = KEEL__API__V1__LABEL_SELECTOR__MATCH_LABELS_ENTRY__INIT,
                                                 b = KEEL__API__V1__LABEL_SELECTOR__MATCH_LABELS_ENTRY__INIT;
  a.key = "tier";
  a.value = "web";
  b.key = "app";
  b.value = "shop";
  Keel__Api__V1__LabelSelector__MatchLabelsEntry *mls[] = {&a, &b};
  char *vals[] = {"a", "b"};
  Keel__Api__V1__LabelSelectorRequirement in = KEEL__API__V1__LABEL_SELECTOR_REQUIREMENT__INIT,
                                          ex = KEEL__API__V1__LABEL_SELECTOR_REQUIREMENT__INIT;
  in.key = "zone";
  in.operator_ = "NotIn";
  in.n_values = 2;
  in.values = vals;
  ex.key = "canary";
  ex.operator_ = "DoesNotExist";
  Keel__Api__V1__LabelSelectorRequirement *reqs[] = {&in, &ex};
  Keel__Api__V1__LabelSelector sel = KEEL__API__V1__LABEL_SELECTOR__INIT;
  sel.n_match_labels = 2;
  sel.match_labels = mls;
  sel.n_match_expressions = 2;
  sel.match_expressions = reqs;
  char *s = printers_selector_text(&sel);
  assert_string_equal(s, "app=shop,tier=web,zone notin (a,b),!canary");
  free(s);
  s = printers_selector_text(NULL);
  assert_string_equal(s, "<none>");
  free(s);
  assert_string_equal(printers_status_color("Running"), "\x1b[32m");
  assert_string_equal(printers_status_color("Init:0/1"), "\x1b[33m");
  assert_string_equal(printers_status_color("CrashLoopBackOff"), "\x1b[31m");
  assert_string_equal(printers_status_color("<none>"), "");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_human_duration),
      cmocka_unit_test(test_tabwriter_alignment),
      cmocka_unit_test(test_tabwriter_remember_widths),
      cmocka_unit_test(test_tabwriter_width_ignores_color),
      cmocka_unit_test(test_pod_table),
      cmocka_unit_test(test_pod_status_init_and_completed),
      cmocka_unit_test(test_workload_and_service_tables),
      cmocka_unit_test(test_node_namespace_event_tables),
      cmocka_unit_test(test_names_and_selectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
