/* Tests of authorization: the identity -> role mapping, every role against
 * every kind, subresource and verb (checked against a spec written out here,
 * independently of the rule table), node restriction, and the exact
 * PERMISSION_DENIED messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "services/apiserver/auth/auth.h"

static auth_identity ident(const char *user, size_t ngroups, ...) {
  const char *groups[16];
  va_list ap;
  va_start(ap, ngroups);
  for (size_t i = 0; i < ngroups; i++) groups[i] = va_arg(ap, const char *);
  va_end(ap);
  auth_identity id;
  assert_int_equal(auth_identity_set(&id, user, "uid", groups, ngroups), 0);
  return id;
}

static const api_kind *kind(const char *resource) {
  const api_kind *k = api_kind_by_resource(resource);
  assert_non_null(k);
  return k;
}

/* One decision; `message` NULL = must be allowed, otherwise the exact refusal. */
static void check(const auth_identity *id, const char *verb, const char *resource, const char *sub,
                  const char *ns, const char *name, const char *object_node,
                  const char *new_object_node, const char *message) {
  auth_request r = {
      .verb = verb,
      .kind = kind(resource),
      .subresource = sub,
      .namespace_ = ns,
      .name = name,
      .object_node = object_node,
      .new_object_node = new_object_node,
  };
  keel_error err = {0};
  int rc = auth_authorize(id, &r, &err);
  if (!message) {
    if (rc != 0) fail_msg("denied: %s", err.message);
    return;
  }
  if (rc == 0)
    fail_msg("%s allowed to %s %s%s%s %s/%s", id->user, verb, resource, sub ? "/" : "", sub ? sub : "",
             ns, name);
  assert_int_equal(rc, -EACCES);
  assert_int_equal(err.code, EACCES);
  assert_string_equal(err.message, message);
}

#define ALLOW NULL

/* ------------------------------------------------------------ roles */

static void test_role_mapping(void **state) {
  (void)state;
  struct {
    auth_identity id;
    unsigned roles;
    const char *node;
  } cases[] = {
      {ident("root", 1, "system:masters"), AUTH_ROLE_ADMIN, NULL},
      {ident("alice", 2, "team", "keel:admins"), AUTH_ROLE_ADMIN, NULL},
      {ident("bob", 1, "keel:viewers"), AUTH_ROLE_VIEWER, NULL},
      {ident("system:node:n1", 1, "system:nodes"), AUTH_ROLE_NODE, "n1"},
      {ident("system:node:n1", 0), 0, NULL},                /* no system:nodes group */
      {ident("n1", 1, "system:nodes"), 0, NULL},            /* not system:node:<name> */
      {ident("system:node:", 1, "system:nodes"), 0, NULL},  /* empty node name */
      {ident("system:kube-controller-manager", 0), AUTH_ROLE_CONTROLLER, NULL},
      {ident("ctl", 1, "keel:controllers"), AUTH_ROLE_CONTROLLER, NULL},
      {ident("system:kube-scheduler", 0), AUTH_ROLE_SCHEDULER, NULL},
      {ident("sched", 1, "keel:schedulers"), AUTH_ROLE_SCHEDULER, NULL},
      {ident("mallory", 2, "system:authenticated", "keel:admin"), 0, NULL},
      {ident("system:node:n9", 2, "system:nodes", "keel:viewers"), AUTH_ROLE_NODE | AUTH_ROLE_VIEWER, "n9"},
      {ident("system:kube-scheduler", 1, "keel:controllers"), AUTH_ROLE_SCHEDULER | AUTH_ROLE_CONTROLLER,
       NULL},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    if (auth_identity_roles(&cases[i].id) != cases[i].roles)
      fail_msg("case %zu (%s): roles %#x, want %#x", i, cases[i].id.user,
               auth_identity_roles(&cases[i].id), cases[i].roles);
    const char *node = auth_identity_node_name(&cases[i].id);
    if (cases[i].node)
      assert_string_equal(node, cases[i].node);
    else
      assert_null(node);
    auth_identity_clear(&cases[i].id);
  }
  assert_int_equal(auth_identity_roles(NULL), 0);
  assert_string_equal(auth_role_name(AUTH_ROLE_ADMIN), "admin");
  assert_string_equal(auth_role_name(AUTH_ROLE_VIEWER), "viewer");
  assert_string_equal(auth_role_name(AUTH_ROLE_NODE), "node");
  assert_string_equal(auth_role_name(AUTH_ROLE_CONTROLLER), "controller");
  assert_string_equal(auth_role_name(AUTH_ROLE_SCHEDULER), "scheduler");
  assert_string_equal(auth_role_name(3), "unknown");
}

/* ------------------------------------------------------------ the matrix */

static const char *const VERBS[] = {"get", "list", "watch", "create", "update", "delete"};

/* Spec entries are "resource[/sub]:verb,verb"; resource or sub may be "*" and
 * the verbs "*". The spec is the role's documented grant, written out again. */
static bool word_in(const char *list, const char *word) {
  size_t n = strlen(word);
  for (const char *p = list; *p;) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    if ((len == n && strncmp(p, word, n) == 0) || (len == 1 && *p == '*')) return true;
    if (!comma) break;
    p = comma + 1;
  }
  return false;
}

static bool spec_allows(const char *const *spec, const char *resource, const char *sub,
                        const char *verb) {
  for (size_t i = 0; spec[i]; i++) {
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", spec[i]);
    char *colon = strchr(buf, ':');
    assert_non_null(colon);
    *colon = '\0';
    const char *verbs = colon + 1;
    char *slash = strchr(buf, '/');
    const char *sres = buf, *ssub = "";
    if (slash) {
      *slash = '\0';
      ssub = slash + 1;
    }
    if (strcmp(sres, "*") != 0 && strcmp(sres, resource) != 0) continue;
    if (strcmp(ssub, "*") != 0 && strcmp(ssub, sub) != 0) continue;
    if (word_in(verbs, verb)) return true;
  }
  return false;
}

/* Every kind x (object + each subresource it has) x verb, for one identity.
 * Requests name objects the identity could own: for a node, its own Node, its
 * own Lease and pods bound to it, so only the role's grant decides. */
static void check_matrix(const auth_identity *id, const char *const *spec) {
  size_t nkinds;
  const api_kind *kinds = api_kinds(&nkinds);
  const char *node = auth_identity_node_name(id);
  static const struct {
    const char *name;
    unsigned bit;
  } subs[] = {{"", 0}, {"status", API_SUB_STATUS}, {"binding", API_SUB_BIND}, {"scale", API_SUB_SCALE},
              {"log", API_SUB_LOG}, {"exec", API_SUB_EXEC}};
  size_t checked = 0;
  for (size_t k = 0; k < nkinds; k++) {
    const api_kind *kd = &kinds[k];
    for (size_t s = 0; s < sizeof(subs) / sizeof(subs[0]); s++) {
      if (subs[s].bit && !(kd->subresources & subs[s].bit)) continue;
      for (size_t v = 0; v < sizeof(VERBS) / sizeof(VERBS[0]); v++) {
        const char *ns = !kd->namespaced                         ? ""
                         : strcmp(kd->resource, "leases") == 0 ? AUTH_NODE_LEASE_NAMESPACE
                                                               : "default";
        auth_request r = {
            .verb = VERBS[v],
            .kind = kd,
            .subresource = subs[s].bit ? subs[s].name : NULL,
            .namespace_ = ns,
            .name = node ? node : "obj",
            .object_node = node ? node : "n1",
            .new_object_node = node ? node : "n1",
        };
        keel_error err = {0};
        bool allowed = auth_authorize(id, &r, &err) == 0;
        bool want = spec_allows(spec, kd->resource, subs[s].name, VERBS[v]);
        if (allowed != want)
          fail_msg("%s: %s %s%s%s: %s, want %s (%s)", id->user, VERBS[v], kd->resource,
                   subs[s].bit ? "/" : "", subs[s].name, allowed ? "allowed" : "denied",
                   want ? "allowed" : "denied", err.message);
        checked++;
      }
    }
  }
  assert_true(checked >= 9 * 6);
}

static void test_matrix(void **state) {
  (void)state;
  static const char *const admin[] = {"*/*:*", NULL};
  static const char *const viewer[] = {"*/*:get,list,watch", NULL};
  static const char *const controller[] = {
      "*/*:get,list,watch",
      "pods:create,update,delete",        "pods/status:update",
      "replicasets:create,update,delete", "replicasets/status:update", "replicasets/scale:update",
      "deployments:create,update,delete", "deployments/status:update", "deployments/scale:update",
      "endpoints:create,update,delete",   "events:create,update,delete", "leases:create,update,delete",
      "namespaces:update,delete",         "namespaces/status:update",
      "nodes:update,delete",              "nodes/status:update",
      "services:delete",                  NULL,
  };
  static const char *const scheduler[] = {
      "pods:get,list,watch",   "nodes:get,list,watch", "namespaces:get,list,watch",
      "services:get,list,watch", "replicasets:get,list,watch",
      "pods/binding:create",   "pods/status:update",
      "events:create,update",  "leases:get,create,update", NULL,
  };
  static const char *const node[] = {
      "pods:get,list,watch,delete", "pods/status:update",
      "nodes:get,list,watch,create,update", "nodes/status:update",
      "services:get,list,watch", "endpoints:get,list,watch", "namespaces:get,list,watch",
      "events:create", "leases:get,create,update", NULL,
  };
  static const char *const nothing[] = {NULL};

  auth_identity id = ident("root", 1, "system:masters");
  check_matrix(&id, admin);
  auth_identity_clear(&id);
  id = ident("alice", 1, "keel:admins");
  check_matrix(&id, admin);
  auth_identity_clear(&id);
  id = ident("bob", 1, "keel:viewers");
  check_matrix(&id, viewer);
  auth_identity_clear(&id);
  id = ident("system:kube-controller-manager", 0);
  check_matrix(&id, controller);
  auth_identity_clear(&id);
  id = ident("kcm", 1, "keel:controllers");
  check_matrix(&id, controller);
  auth_identity_clear(&id);
  id = ident("system:kube-scheduler", 0);
  check_matrix(&id, scheduler);
  auth_identity_clear(&id);
  id = ident("ks", 1, "keel:schedulers");
  check_matrix(&id, scheduler);
  auth_identity_clear(&id);
  id = ident("system:node:n1", 1, "system:nodes");
  check_matrix(&id, node);
  auth_identity_clear(&id);
  id = ident("mallory", 0);
  check_matrix(&id, nothing);
  auth_identity_clear(&id);
  id = ident("system:node:n1", 0); /* a node name without the group is nobody */
  check_matrix(&id, nothing);
  auth_identity_clear(&id);
  id = ident(AUTH_ANONYMOUS_USER, 2, "system:unauthenticated", "keel:admins");
  check_matrix(&id, admin);
  auth_identity_clear(&id);
}

/* ------------------------------------------------------------ node restriction */

#define N1 "user \"system:node:n1\" (groups system:nodes) cannot "

static void test_node_restriction(void **state) {
  (void)state;
  auth_identity n1 = ident("system:node:n1", 1, "system:nodes");

  /* Pods bound to itself: status and delete; bound elsewhere: never. */
  check(&n1, "update", "pods", "status", "default", "web-1", "n1", "n1", ALLOW);
  check(&n1, "delete", "pods", NULL, "default", "web-1", "n1", NULL, ALLOW);
  check(&n1, "update", "pods", "status", "default", "web-1", "n2", "n2",
        N1 "update pods/status \"default/web-1\": pod is bound to node \"n2\"");
  check(&n1, "delete", "pods", NULL, "default", "web-1", "n2", NULL,
        N1 "delete pods \"default/web-1\": pod is bound to node \"n2\"");
  check(&n1, "update", "pods", "status", "default", "web-1", "", NULL,
        N1 "update pods/status \"default/web-1\": pod is not bound to a node");
  check(&n1, "delete", "pods", NULL, "default", "web-1", NULL, NULL,
        N1 "delete pods \"default/web-1\": the pod's node is not known");
  /* Status updates keep the stored spec: the sent nodeName does not matter. */
  check(&n1, "update", "pods", "status", "default", "web-1", "n1", "", ALLOW);
  /* No pod spec updates, no creates, no binds. */
  check(&n1, "update", "pods", NULL, "default", "web-1", "n1", "n1", N1 "update pods \"default/web-1\"");
  check(&n1, "create", "pods", NULL, "default", "", NULL, "n1",
        N1 "create pods in namespace \"default\": a node may not create pods");
  check(&n1, "create", "pods", NULL, "default", "mirror", NULL, "",
        N1 "create pods \"default/mirror\": a node may not create pods");
  check(&n1, "create", "pods", "binding", "default", "web-1", "", NULL,
        N1 "create pods/binding \"default/web-1\": a node may not bind pods");
  /* Reads are not narrowed. */
  check(&n1, "get", "pods", NULL, "default", "web-2", "n2", NULL, ALLOW);
  check(&n1, "list", "pods", NULL, "", "", NULL, NULL, ALLOW);
  check(&n1, "watch", "nodes", NULL, "", "", NULL, NULL, ALLOW);
  check(&n1, "get", "nodes", NULL, "", "n2", NULL, NULL, ALLOW);

  /* Its own Node only. */
  check(&n1, "create", "nodes", NULL, "", "n1", NULL, NULL, ALLOW);
  check(&n1, "update", "nodes", NULL, "", "n1", NULL, NULL, ALLOW);
  check(&n1, "update", "nodes", "status", "", "n1", NULL, NULL, ALLOW);
  check(&n1, "create", "nodes", NULL, "", "n2", NULL, NULL,
        N1 "create nodes \"n2\": a node may only change its own Node \"n1\"");
  check(&n1, "update", "nodes", NULL, "", "n2", NULL, NULL,
        N1 "update nodes \"n2\": a node may only change its own Node \"n1\"");
  check(&n1, "update", "nodes", "status", "", "n10", NULL, NULL,
        N1 "update nodes/status \"n10\": a node may only change its own Node \"n1\"");
  check(&n1, "create", "nodes", NULL, "", "", NULL, NULL,
        N1 "create nodes at the cluster scope: a node may only change its own Node \"n1\"");
  check(&n1, "delete", "nodes", NULL, "", "n2", NULL, NULL,
        N1 "delete nodes \"n2\": a node may only change its own Node \"n1\"");
  check(&n1, "delete", "nodes", NULL, "", "n1", NULL, NULL, N1 "delete nodes \"n1\"");

  /* Its own Lease only; reading any lease is fine. */
  check(&n1, "update", "leases", NULL, "kube-node-lease", "n1", NULL, NULL, ALLOW);
  check(&n1, "create", "leases", NULL, "kube-node-lease", "n1", NULL, NULL, ALLOW);
  check(&n1, "get", "leases", NULL, "kube-system", "kube-scheduler", NULL, NULL, ALLOW);
  check(&n1, "update", "leases", NULL, "kube-system", "kube-scheduler", NULL, NULL,
        N1 "update leases \"kube-system/kube-scheduler\": a node may only change its own Lease "
           "\"kube-node-lease/n1\"");
  check(&n1, "update", "leases", NULL, "kube-node-lease", "n2", NULL, NULL,
        N1 "update leases \"kube-node-lease/n2\": a node may only change its own Lease "
           "\"kube-node-lease/n1\"");
  check(&n1, "update", "leases", NULL, "default", "n1", NULL, NULL,
        N1 "update leases \"default/n1\": a node may only change its own Lease \"kube-node-lease/n1\"");
  check(&n1, "list", "leases", NULL, "", "", NULL, NULL, N1 "list leases at the cluster scope");

  /* Events: create only; nothing else writable. */
  check(&n1, "create", "events", NULL, "default", "", NULL, NULL, ALLOW);
  check(&n1, "update", "events", NULL, "default", "e1", NULL, NULL, N1 "update events \"default/e1\"");
  check(&n1, "update", "services", NULL, "default", "web", NULL, NULL, N1 "update services \"default/web\"");
  check(&n1, "delete", "namespaces", NULL, "", "default", NULL, NULL, N1 "delete namespaces \"default\"");
  check(&n1, "get", "deployments", NULL, "default", "web", NULL, NULL, N1 "get deployments \"default/web\"");
  auth_identity_clear(&n1);

  /* Node restriction binds a node even when it holds more roles. */
  auth_identity boss = ident("system:node:n1", 2, "system:nodes", "system:masters");
#define BOSS "user \"system:node:n1\" (groups system:nodes, system:masters) cannot "
  check(&boss, "create", "pods", NULL, "default", "p", NULL, "n1",
        BOSS "create pods \"default/p\": a node may not create pods");
  check(&boss, "update", "pods", NULL, "default", "p", "n1", "n2",
        BOSS "update pods \"default/p\": a node may not change a pod's spec.nodeName");
  check(&boss, "update", "pods", NULL, "default", "p", "n1", "n1", ALLOW);
  check(&boss, "update", "pods", NULL, "default", "p", "n2", "n2",
        BOSS "update pods \"default/p\": pod is bound to node \"n2\"");
  check(&boss, "update", "nodes", NULL, "", "n2", NULL, NULL,
        BOSS "update nodes \"n2\": a node may only change its own Node \"n1\"");
  check(&boss, "delete", "deployments", NULL, "default", "web", NULL, NULL, ALLOW);
  auth_identity_clear(&boss);

  /* Someone who is not a node is not narrowed by node rules. */
  auth_identity sched = ident("system:kube-scheduler", 0);
  check(&sched, "create", "pods", "binding", "default", "web-1", "", NULL, ALLOW);
  check(&sched, "update", "pods", "status", "default", "web-1", "n2", NULL, ALLOW);
  check(&sched, "update", "leases", NULL, "kube-system", "kube-scheduler", NULL, NULL, ALLOW);
  auth_identity_clear(&sched);
}

/* ------------------------------------------------------------ messages */

static void test_messages(void **state) {
  (void)state;
  auth_identity alice = ident("alice", 1, "keel:viewers");
  check(&alice, "create", "pods", NULL, "default", "", NULL, NULL,
        "user \"alice\" (groups keel:viewers) cannot create pods in namespace \"default\"");
  check(&alice, "update", "deployments", "scale", "prod", "web", NULL, NULL,
        "user \"alice\" (groups keel:viewers) cannot update deployments/scale \"prod/web\"");
  check(&alice, "delete", "namespaces", NULL, "", "prod", NULL, NULL,
        "user \"alice\" (groups keel:viewers) cannot delete namespaces \"prod\"");
  check(&alice, "get", "pods", NULL, "default", "x", NULL, NULL, ALLOW);
  auth_identity_clear(&alice);

  auth_identity m = ident("mallory", 0);
  check(&m, "list", "pods", NULL, "", "", NULL, NULL,
        "user \"mallory\" (no groups) cannot list pods at the cluster scope");
  check(&m, "watch", "nodes", NULL, "", "", NULL, NULL,
        "user \"mallory\" (no groups) cannot watch nodes at the cluster scope");
  check(&m, "get", "nodes", NULL, "", "n5", NULL, NULL, "user \"mallory\" (no groups) cannot get nodes \"n5\"");
  /* Client-controlled text is escaped and bounded. */
  check(&m, "get", "pods", NULL, "default", "a\"b\n\\c", NULL, NULL,
        "user \"mallory\" (no groups) cannot get pods \"default/a\\\"b\\x0a\\\\c\"");
  char longname[400];
  memset(longname, 'z', sizeof(longname) - 1);
  longname[sizeof(longname) - 1] = '\0';
  char want[512];
  snprintf(want, sizeof(want), "user \"mallory\" (no groups) cannot get pods \"default/%.128s...\"", longname);
  check(&m, "get", "pods", NULL, "default", longname, NULL, NULL, want);
  /* Unknown verbs and subresources are refused, for everyone. */
  check(&m, "patch", "pods", NULL, "default", "x", NULL, NULL,
        "user \"mallory\" (no groups) cannot patch pods \"default/x\": unknown verb");
  auth_identity_clear(&m);

  auth_identity root = ident("root", 1, "system:masters");
  check(&root, "patch", "pods", NULL, "default", "x", NULL, NULL,
        "user \"root\" (groups system:masters) cannot patch pods \"default/x\": unknown verb");
  check(&root, "get", "pods", "attach", "default", "x", NULL, NULL,
        "user \"root\" (groups system:masters) cannot get pods/attach \"default/x\": unknown subresource");
  check(&root, "create", "nodes", "exec", "", "n1", NULL, NULL,
        "user \"root\" (groups system:masters) cannot create nodes/exec \"n1\": no such subresource");
  check(&root, "create", "nodes", "binding", "", "n1", NULL, NULL,
        "user \"root\" (groups system:masters) cannot create nodes/binding \"n1\": no such subresource");
  check(&root, "update", "events", "status", "default", "e", NULL, NULL,
        "user \"root\" (groups system:masters) cannot update events/status \"default/e\": no such subresource");
  check(&root, "update", "pods", "", "default", "x", NULL, NULL, ALLOW); /* "" = no subresource */
  auth_identity_clear(&root);

  auth_identity many = ident("gus", 10, "g1", "g2", "g3", "g4", "g5", "g6", "g7", "g8", "g9", "g10");
  check(&many, "delete", "leases", NULL, "kube-system", "l", NULL, NULL,
        "user \"gus\" (groups g1, g2, g3, g4, g5, g6, g7, g8, ...) cannot delete leases \"kube-system/l\"");
  auth_identity_clear(&many);

  auth_identity sched = ident("system:kube-scheduler", 0);
  check(&sched, "create", "deployments", NULL, "default", "", NULL, NULL,
        "user \"system:kube-scheduler\" (no groups) cannot create deployments in namespace \"default\"");
  check(&sched, "delete", "pods", NULL, "default", "web-1", "n1", NULL,
        "user \"system:kube-scheduler\" (no groups) cannot delete pods \"default/web-1\"");
  auth_identity_clear(&sched);

  /* Nobody and malformed requests. */
  auth_identity anon = {0};
  check(&anon, "get", "pods", NULL, "default", "x", NULL, NULL,
        "user \"\" (no groups) cannot get pods \"default/x\": not authenticated");
  keel_error err = {0};
  auth_request bad = {.verb = "get"};
  assert_int_equal(auth_authorize(&anon, &bad, &err), -EINVAL);
  assert_int_equal(auth_authorize(&anon, NULL, &err), -EINVAL);
  auth_request none = {.verb = "get", .kind = kind("pods")}; /* NULL namespace and name */
  assert_int_equal(auth_authorize(NULL, &none, &err), -EACCES);
  assert_string_equal(err.message, "user \"\" (no groups) cannot get pods at the cluster scope: not authenticated");
}

static void test_verb_for_method(void **state) {
  (void)state;
  struct {
    const char *method, *verb, *sub;
  } cases[] = {
      {"Create", "create", NULL},
      {"Get", "get", NULL},
      {"List", "list", NULL},
      {"Update", "update", NULL},
      {"Delete", "delete", NULL},
      {"Watch", "watch", NULL},
      {"UpdateStatus", "update", "status"},
      {"/keel.api.v1.Pods/Bind", "create", "binding"},
      {"GetScale", "get", "scale"},
      {"/keel.api.v1.Deployments/UpdateScale", "update", "scale"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    const char *verb = NULL, *sub = "x";
    assert_int_equal(auth_verb_for_method(cases[i].method, &verb, &sub), 0);
    assert_string_equal(verb, cases[i].verb);
    if (cases[i].sub)
      assert_string_equal(sub, cases[i].sub);
    else
      assert_null(sub);
  }
  const char *verb, *sub;
  assert_int_equal(auth_verb_for_method("Patch", &verb, &sub), -ENOENT);
  assert_int_equal(auth_verb_for_method("/keel.api.v1.Pods/", &verb, &sub), -ENOENT);
  assert_int_equal(auth_verb_for_method(NULL, &verb, &sub), -ENOENT);

  /* Every method of every kind's service maps to a verb. */
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++)
    for (unsigned m = 0; m < ks[i].service->n_methods; m++)
      if (auth_verb_for_method(ks[i].service->methods[m].name, &verb, &sub) != 0)
        fail_msg("%s/%s has no verb", ks[i].service->name, ks[i].service->methods[m].name);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_role_mapping),     cmocka_unit_test(test_matrix),
      cmocka_unit_test(test_node_restriction), cmocka_unit_test(test_messages),
      cmocka_unit_test(test_verb_for_method),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
