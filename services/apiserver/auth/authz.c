/* services/apiserver/auth/authz.c — roles, node restriction, refusals (auth.h).
 *
 * The roles are one static rule table in the spirit of Kubernetes' bootstrap
 * ClusterRoles: (roles, resource, subresource, verbs). A request is allowed when
 * a rule of one of the identity's roles covers it. Node restriction runs first
 * and only for node identities: it narrows writes to the node's own objects
 * whatever the rules would grant (even to a node that is also an admin), and
 * explains why in the refusal. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "services/apiserver/auth/auth.h"

enum {
  V_GET = 1u << 0,
  V_LIST = 1u << 1,
  V_WATCH = 1u << 2,
  V_CREATE = 1u << 3,
  V_UPDATE = 1u << 4,
  V_DELETE = 1u << 5,
  V_READ = V_GET | V_LIST | V_WATCH,
  V_WRITE = V_CREATE | V_UPDATE | V_DELETE,
  V_ALL = V_READ | V_WRITE,
};

static const struct {
  const char *name;
  unsigned bit;
} verb_names[] = {
    {"get", V_GET},       {"list", V_LIST},     {"watch", V_WATCH},
    {"create", V_CREATE}, {"update", V_UPDATE}, {"delete", V_DELETE},
};

#define ADMIN AUTH_ROLE_ADMIN
#define VIEWER AUTH_ROLE_VIEWER
#define NODE AUTH_ROLE_NODE
#define CONTROLLER AUTH_ROLE_CONTROLLER
#define SCHEDULER AUTH_ROLE_SCHEDULER

/* resource "*" = every kind; sub "" = the object itself, "*" = the object and
 * every subresource. */
typedef struct rule {
  unsigned roles;
  const char *resource;
  const char *sub;
  unsigned verbs;
} rule;

static const rule rules[] = {
    {ADMIN, "*", "*", V_ALL},
    {VIEWER | CONTROLLER, "*", "*", V_READ},

    {CONTROLLER, "pods", "", V_WRITE},
    {CONTROLLER | SCHEDULER | NODE, "pods", "status", V_UPDATE},
    {CONTROLLER, "replicasets", "", V_WRITE},
    {CONTROLLER, "replicasets", "status", V_UPDATE},
    {CONTROLLER, "replicasets", "scale", V_UPDATE},
    {CONTROLLER, "deployments", "", V_WRITE},
    {CONTROLLER, "deployments", "status", V_UPDATE},
    {CONTROLLER, "deployments", "scale", V_UPDATE},
    {CONTROLLER, "endpoints", "", V_WRITE},
    {CONTROLLER, "events", "", V_WRITE},
    {CONTROLLER, "leases", "", V_WRITE},
    {CONTROLLER, "namespaces", "", V_UPDATE | V_DELETE},
    {CONTROLLER, "namespaces", "status", V_UPDATE},
    {CONTROLLER, "nodes", "", V_UPDATE | V_DELETE},
    {CONTROLLER, "nodes", "status", V_UPDATE},
    {CONTROLLER, "services", "", V_DELETE},

    {SCHEDULER | NODE, "pods", "", V_READ},
    {SCHEDULER | NODE, "nodes", "", V_READ},
    {SCHEDULER | NODE, "namespaces", "", V_READ},
    {SCHEDULER | NODE, "services", "", V_READ},
    {SCHEDULER, "replicasets", "", V_READ},
    {SCHEDULER, "pods", "binding", V_CREATE},
    {SCHEDULER, "events", "", V_CREATE | V_UPDATE},
    {SCHEDULER | NODE, "leases", "", V_GET | V_CREATE | V_UPDATE},

    {NODE, "endpoints", "", V_READ},
    {NODE, "nodes", "", V_CREATE | V_UPDATE},
    {NODE, "nodes", "status", V_UPDATE},
    {NODE, "pods", "", V_DELETE},
    {NODE, "events", "", V_CREATE},
};

/* ------------------------------------------------------------ roles */

const char *auth_identity_node_name(const auth_identity *id) {
  static const size_t plen = sizeof(AUTH_NODE_USER_PREFIX) - 1;
  if (!id || !id->user || strncmp(id->user, AUTH_NODE_USER_PREFIX, plen) != 0) return NULL;
  if (!id->user[plen] || !auth_identity_in_group(id, "system:nodes")) return NULL;
  return id->user + plen;
}

unsigned auth_identity_roles(const auth_identity *id) {
  unsigned roles = 0;
  if (!id || !id->user) return 0;
  if (auth_identity_in_group(id, "system:masters") || auth_identity_in_group(id, "keel:admins"))
    roles |= AUTH_ROLE_ADMIN;
  if (auth_identity_in_group(id, "keel:viewers")) roles |= AUTH_ROLE_VIEWER;
  if (auth_identity_node_name(id)) roles |= AUTH_ROLE_NODE;
  if (strcmp(id->user, "system:kube-controller-manager") == 0 ||
      auth_identity_in_group(id, "keel:controllers"))
    roles |= AUTH_ROLE_CONTROLLER;
  if (strcmp(id->user, "system:kube-scheduler") == 0 || auth_identity_in_group(id, "keel:schedulers"))
    roles |= AUTH_ROLE_SCHEDULER;
  return roles;
}

const char *auth_role_name(unsigned role) {
  switch (role) {
    case AUTH_ROLE_ADMIN: return "admin";
    case AUTH_ROLE_VIEWER: return "viewer";
    case AUTH_ROLE_NODE: return "node";
    case AUTH_ROLE_CONTROLLER: return "controller";
    case AUTH_ROLE_SCHEDULER: return "scheduler";
    default: return "unknown";
  }
}

/* ------------------------------------------------------------ messages */

/* A bounded string builder: output past the end is dropped, never overflowed. */
typedef struct sbuf {
  char *p;
  size_t cap, len;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
  for (size_t i = 0; i < n && b->len + 1 < b->cap; i++) b->p[b->len++] = s[i];
  b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) {
  sb_add(b, s, strlen(s));
}

/* Client-controlled text (names, namespaces) goes into messages escaped and
 * shortened, so a message always reads as one line and keeps its tail. */
#define TEXT_MAX 128

static void sb_text(sbuf *b, const char *s) {
  size_t n = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
    if (n == TEXT_MAX) {
      sb_str(b, "...");
      return;
    }
    char esc[8];
    if (*p == '"' || *p == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*p;
      sb_add(b, esc, 2);
    } else if (*p < 0x20 || *p == 0x7f) {
      snprintf(esc, sizeof(esc), "\\x%02x", *p);
      sb_str(b, esc);
    } else {
      sb_add(b, (const char *)p, 1);
    }
  }
}

static void sb_quoted(sbuf *b, const char *s) {
  sb_str(b, "\"");
  sb_text(b, s);
  sb_str(b, "\"");
}

#define GROUPS_SHOWN 8

/* user "U" (groups a, b) cannot VERB RES[/SUB] TARGET[: REASON] */
static int deny(const auth_identity *id, const auth_request *r, const char *reason, keel_error *err) {
  char msg[KEEL_ERROR_MESSAGE_MAX];
  sbuf b = {msg, sizeof(msg), 0};
  msg[0] = '\0';
  sb_str(&b, "user ");
  sb_quoted(&b, id && id->user ? id->user : "");
  if (!id || id->ngroups == 0) {
    sb_str(&b, " (no groups)");
  } else {
    sb_str(&b, " (groups ");
    for (size_t i = 0; i < id->ngroups && i < GROUPS_SHOWN; i++) {
      if (i) sb_str(&b, ", ");
      sb_text(&b, id->groups[i]);
    }
    if (id->ngroups > GROUPS_SHOWN) sb_str(&b, ", ...");
    sb_str(&b, ")");
  }
  sb_str(&b, " cannot ");
  sb_text(&b, r->verb ? r->verb : "?");
  sb_str(&b, " ");
  sb_text(&b, r->kind ? r->kind->resource : "?");
  if (r->subresource && *r->subresource) {
    sb_str(&b, "/");
    sb_text(&b, r->subresource);
  }
  const char *ns = r->namespace_ ? r->namespace_ : "";
  const char *name = r->name ? r->name : "";
  bool namespaced = r->kind && r->kind->namespaced;
  if (*name) {
    sb_str(&b, " \"");
    if (namespaced && *ns) {
      sb_text(&b, ns);
      sb_str(&b, "/");
    }
    sb_text(&b, name);
    sb_str(&b, "\"");
  } else if (namespaced && *ns) {
    sb_str(&b, " in namespace ");
    sb_quoted(&b, ns);
  } else {
    sb_str(&b, " at the cluster scope");
  }
  if (reason) {
    sb_str(&b, ": ");
    sb_str(&b, reason);
  }
  return keel_error_set(err, EACCES, "%s", msg);
}

/* ------------------------------------------------------------ decisions */

static unsigned verb_bit(const char *verb) {
  for (size_t i = 0; i < KEEL_ARRAY_LEN(verb_names); i++)
    if (strcmp(verb_names[i].name, verb) == 0) return verb_names[i].bit;
  return 0;
}

static unsigned sub_bit(const char *sub) {
  if (strcmp(sub, "status") == 0) return API_SUB_STATUS;
  if (strcmp(sub, "binding") == 0) return API_SUB_BIND;
  if (strcmp(sub, "scale") == 0) return API_SUB_SCALE;
  if (strcmp(sub, "log") == 0) return API_SUB_LOG;
  if (strcmp(sub, "exec") == 0) return API_SUB_EXEC;
  return 0;
}

/* Why node `node` may not make request r (a reason for the message, written
 * into buf when it names something), or NULL when node restriction has no
 * objection. Reads are never restricted here. */
static const char *node_restriction(const char *node, const auth_request *r, unsigned verb,
                                    const char *sub, char *buf, size_t buflen) {
  const char *res = r->kind->resource;
  const char *ns = r->namespace_ ? r->namespace_ : "";
  const char *name = r->name ? r->name : "";
  sbuf b = {buf, buflen, 0};
  buf[0] = '\0';
  if (!(verb & V_WRITE)) return NULL;
  if (strcmp(res, "pods") == 0) {
    if (strcmp(sub, "binding") == 0) return "a node may not bind pods";
    if (verb == V_CREATE) return "a node may not create pods";
    if (!r->object_node) return "the pod's node is not known";
    if (!*r->object_node) return "pod is not bound to a node";
    if (strcmp(r->object_node, node) != 0) {
      sb_str(&b, "pod is bound to node ");
      sb_quoted(&b, r->object_node);
      return buf;
    }
    if (!*sub && r->new_object_node && strcmp(r->new_object_node, r->object_node) != 0)
      return "a node may not change a pod's spec.nodeName";
    return NULL;
  }
  if (strcmp(res, "nodes") == 0) {
    if (strcmp(name, node) == 0) return NULL;
    sb_str(&b, "a node may only change its own Node ");
    sb_quoted(&b, node);
    return buf;
  }
  if (strcmp(res, "leases") == 0) {
    if (strcmp(ns, AUTH_NODE_LEASE_NAMESPACE) == 0 && strcmp(name, node) == 0) return NULL;
    sb_str(&b, "a node may only change its own Lease \"" AUTH_NODE_LEASE_NAMESPACE "/");
    sb_text(&b, node);
    sb_str(&b, "\"");
    return buf;
  }
  return NULL;
}

static bool rules_allow(unsigned roles, const char *resource, const char *sub, unsigned verb) {
  for (size_t i = 0; i < KEEL_ARRAY_LEN(rules); i++) {
    const rule *ru = &rules[i];
    if (!(ru->roles & roles) || !(ru->verbs & verb)) continue;
    if (strcmp(ru->resource, "*") != 0 && strcmp(ru->resource, resource) != 0) continue;
    if (strcmp(ru->sub, "*") != 0 && strcmp(ru->sub, sub) != 0) continue;
    return true;
  }
  return false;
}

int auth_authorize(const auth_identity *id, const auth_request *r, keel_error *err) {
  if (!r || !r->verb || !r->kind)
    return keel_error_set(err, EINVAL, "authorization request without a verb or a kind");
  if (!id || !id->user || !*id->user) return deny(id, r, "not authenticated", err);
  unsigned verb = verb_bit(r->verb);
  if (!verb) return deny(id, r, "unknown verb", err);
  const char *sub = r->subresource ? r->subresource : "";
  if (*sub) {
    unsigned bit = sub_bit(sub);
    if (!bit) return deny(id, r, "unknown subresource", err);
    if (!(r->kind->subresources & bit)) return deny(id, r, "no such subresource", err);
  }
  const char *node = auth_identity_node_name(id);
  if (node) {
    char buf[KEEL_ERROR_MESSAGE_MAX / 2];
    const char *why = node_restriction(node, r, verb, sub, buf, sizeof(buf));
    if (why) return deny(id, r, why, err);
  }
  if (rules_allow(auth_identity_roles(id), r->kind->resource, sub, verb)) return 0;
  return deny(id, r, NULL, err);
}

int auth_verb_for_method(const char *method, const char **verb, const char **subresource) {
  static const struct {
    const char *method, *verb, *sub;
  } methods[] = {
      {"Create", "create", NULL},        {"Get", "get", NULL},
      {"List", "list", NULL},            {"Update", "update", NULL},
      {"Delete", "delete", NULL},        {"Watch", "watch", NULL},
      {"UpdateStatus", "update", "status"}, {"Bind", "create", "binding"},
      {"GetScale", "get", "scale"},      {"UpdateScale", "update", "scale"},
      {"Log", "get", "log"},             {"Exec", "create", "exec"},
  };
  if (!method) return -ENOENT;
  const char *slash = strrchr(method, '/');
  if (slash) method = slash + 1;
  for (size_t i = 0; i < KEEL_ARRAY_LEN(methods); i++) {
    if (strcmp(methods[i].method, method) == 0) {
      *verb = methods[i].verb;
      *subresource = methods[i].sub;
      return 0;
    }
  }
  return -ENOENT;
}
