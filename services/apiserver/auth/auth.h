/* services/apiserver/auth/auth.h — who is calling keel-apiserver, and may they.
 *
 * Transport-neutral: the gRPC path (auth_authenticate_call) and the REST
 * gateway (auth_authenticate with the HTTP Authorization header and the client
 * certificate) end in the same functions, so both answer alike.
 *
 * AUTHENTICATION turns a request's credentials into an auth_identity:
 *   - a bearer token ("authorization: Bearer <token>" metadata, or the HTTP
 *     header; the scheme is case-insensitive) looked up in Kubernetes' static
 *     token file (token_file.h), compared in constant time;
 *   - a client certificate (mTLS, only when auth_config.client_certs): the
 *     subject CN is the user, every O is a group. The TLS layer has already
 *     verified it against the client CA; this module only reads the names.
 * A request that carries an Authorization header is judged by it alone: a bad
 * token is UNAUTHENTICATED even if a good certificate came with it (no silent
 * fallback to another identity). No credentials is UNAUTHENTICATED.
 * With anonymous_admin (only allowed when neither tokens nor certificates are
 * configured) authentication is off: every request is AUTH_ANONYMOUS_USER in
 * groups AUTH_ANONYMOUS_GROUPS, which makes it an admin; credentials are ignored.
 * Messages never contain a token.
 *
 * AUTHORIZATION maps an identity to built-in roles, Kubernetes-flavoured:
 *
 *   identity                                              role
 *   group system:masters or keel:admins                   admin
 *   group keel:viewers                                    viewer
 *   user system:node:<name> in group system:nodes         node (<name>)
 *   user system:kube-controller-manager, group keel:controllers   controller
 *   user system:kube-scheduler, group keel:schedulers     scheduler
 *
 * An identity may hold several roles; a request is allowed when one of them
 * allows it. verbs: get list watch create update delete. "read" = get/list/watch.
 *
 *   admin       everything
 *   viewer      read every resource (and deployments|replicasets/scale)
 *   controller  read everything;
 *               create/update/delete pods, replicasets, deployments, endpoints,
 *                 events, leases; update pods/status, replicasets|deployments
 *                 /status and /scale;
 *               namespaces: update, update status, delete (the namespace
 *                 controller; Keel has no finalize subresource, so dropping a
 *                 spec finalizer is an update);
 *               nodes: update (taints, node IPAM's podCIDR), update status,
 *                 delete (node lifecycle);
 *               services: delete (emptying a terminating namespace)
 *   scheduler   read pods, nodes, namespaces, services, replicasets;
 *               create pods/binding (Bind); update pods/status;
 *               create/update events; get/create/update leases
 *   node        read pods, nodes, services, endpoints, namespaces;
 *               create/update its own Node, update its own nodes/status;
 *               update pods/status and delete pods bound to it;
 *               create events;
 *               get any lease; create/update its own Lease
 *                 (AUTH_NODE_LEASE_NAMESPACE/<name>)
 *
 * NODE RESTRICTION (admission, Kubernetes' NodeRestriction and Node
 * authorizer) applies to every node identity, whatever other roles it holds:
 *   - pods: no create (Keel has no mirror pods), no bind; update, status and
 *     delete only of pods whose stored spec.nodeName is the node (unknown
 *     stored node = refused), and never a change of spec.nodeName;
 *   - nodes: create/update/status/delete only of the Node named like itself;
 *   - leases: create/update/delete only of its own Lease.
 *
 * Refusals are PERMISSION_DENIED (-EACCES) with a message naming who, what and
 * which object:
 *   user "system:node:n1" (groups system:nodes) cannot update pods/status
 *     "default/web-1": pod is bound to node "n2"
 *   user "alice" (groups keel:viewers) cannot create pods in namespace "default"
 */
#ifndef KEEL_SERVICES_APISERVER_AUTH_AUTH_H
#define KEEL_SERVICES_APISERVER_AUTH_AUTH_H

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"

#define AUTH_ANONYMOUS_USER "system:anonymous"
#define AUTH_ANONYMOUS_GROUPS {"system:unauthenticated", "keel:admins"}
#define AUTH_NODE_USER_PREFIX "system:node:"
#define AUTH_NODE_LEASE_NAMESPACE "kube-node-lease"
/* Longest Authorization header and client certificate PEM accepted. */
#define AUTH_HEADER_MAX 8192
#define AUTH_CERT_PEM_MAX 65536

/* ------------------------------------------------------------ identity */

/* Owned strings; uid may be "" (certificates have none), never NULL once
 * filled. Zero-initialise before use. */
typedef struct auth_identity {
  char *user;
  char *uid;
  char **groups;
  size_t ngroups;
} auth_identity;

/* Frees the members and zeroes *id (safe on a zeroed identity). */
void auth_identity_clear(auth_identity *id);
/* Deep copy into *dst (which is overwritten, not freed). -ENOMEM on failure. */
int auth_identity_copy(auth_identity *dst, const auth_identity *src);
/* Fills *id from borrowed strings (tests, internal identities). */
int auth_identity_set(auth_identity *id, const char *user, const char *uid,
                      const char *const *groups, size_t ngroups);
bool auth_identity_in_group(const auth_identity *id, const char *group);

enum {
  AUTH_ROLE_ADMIN = 1u << 0,
  AUTH_ROLE_VIEWER = 1u << 1,
  AUTH_ROLE_NODE = 1u << 2,
  AUTH_ROLE_CONTROLLER = 1u << 3,
  AUTH_ROLE_SCHEDULER = 1u << 4,
};
/* The identity's roles, AUTH_ROLE_* bits, per the table above. */
unsigned auth_identity_roles(const auth_identity *id);
/* For a node identity (system:node:<name> in system:nodes) the node's name,
 * borrowed from id->user; NULL otherwise. */
const char *auth_identity_node_name(const auth_identity *id);
/* "admin", "viewer", ... for one AUTH_ROLE_* bit; "unknown" otherwise. */
const char *auth_role_name(unsigned role);

/* ------------------------------------------------------------ authentication */

typedef struct auth_config {
  const char *token_file; /* static token file, or NULL for no bearer tokens */
  bool client_certs;      /* mTLS: identities from client certificates */
  bool anonymous_admin;   /* no authentication at all: --anonymous-admin */
} auth_config;

typedef struct authenticator authenticator;

/* Loads the token file. EINVAL when anonymous_admin is combined with tokens or
 * certificates; the token file's own errors name the file and line. A config
 * with nothing enabled is valid and refuses every request (UNAUTHENTICATED). */
authenticator *auth_create(const auth_config *cfg, keel_error *err);
/* Re-reads the token file (SIGHUP). On failure the old tokens stay in force.
 * 0 when there is no token file. Safe while other threads authenticate. */
int auth_reload_tokens(authenticator *a, keel_error *err);
void auth_destroy(authenticator *a);
/* Tokens currently loaded (for logs). */
size_t auth_token_count(const authenticator *a);

/* Authenticates one request. authorization_header is the header value
 * ("Bearer x") or NULL when absent; cert_pem is the verified client
 * certificate in PEM or NULL (ignored unless client_certs). Returns 0 with *id
 * filled (the caller clears it), or a negative value with *code set
 * (UNAUTHENTICATED; INTERNAL for -ENOMEM) and err holding the message; *id is
 * then zeroed. -EPERM for refused credentials. */
int auth_authenticate(const authenticator *a, const char *authorization_header,
                      const char *cert_pem, auth_identity *id, grpc_status_code *code,
                      keel_error *err);

/* The same with a length-delimited header value, as gRPC metadata and HTTP
 * libraries hand them out (not NUL-terminated; a NUL inside is refused). */
int auth_authenticate_n(const authenticator *a, const char *authorization, size_t authorization_len,
                        const char *cert_pem, auth_identity *id, grpc_status_code *code,
                        keel_error *err);

/* Where a transport finds a request's credentials. metadata returns the first
 * value of a lowercase key (borrowed, length in *len) or NULL; auth_property
 * returns a malloc'ed copy of a peer auth property or NULL. */
typedef struct auth_credential_source {
  const char *(*metadata)(void *ctx, const char *key, size_t *len);
  char *(*auth_property)(void *ctx, const char *name);
  void *ctx;
} auth_credential_source;

/* Reads "authorization" and, when client_certs, the "x509_pem_cert" property,
 * then authenticates as auth_authenticate_n. */
int auth_authenticate_source(const authenticator *a, const auth_credential_source *src,
                             auth_identity *id, grpc_status_code *code, keel_error *err);

/* The gRPC path: auth_authenticate_source over rpc_call_metadata and
 * rpc_call_auth_property. */
int auth_authenticate_call(const authenticator *a, rpc_call *call, auth_identity *id,
                           grpc_status_code *code, keel_error *err);

/* ------------------------------------------------------------ authorization */

typedef struct auth_request {
  const char *verb;        /* get list watch create update delete */
  const api_kind *kind;
  const char *subresource; /* NULL (or ""), "status", "binding", "scale" */
  const char *namespace_;  /* "" for cluster-scoped kinds and all-namespaces lists */
  const char *name;        /* "" for list/watch and create without a name */
  /* pods only: spec.nodeName of the stored object (update, status, delete,
   * bind); NULL when unknown. "" = stored and unbound. */
  const char *object_node;
  /* pods only: spec.nodeName of the object sent with create or update; NULL
   * when no object is sent. Ignored for subresources: UpdateStatus keeps the
   * stored spec, and setting the node is what Bind is for. */
  const char *new_object_node;
} auth_request;

/* 0 = allowed; otherwise -EACCES with the PERMISSION_DENIED message in err
 * (-EINVAL for a request without verb or kind, also a refusal). */
int auth_authorize(const auth_identity *id, const auth_request *req, keel_error *err);

/* The verb and subresource of a keel.api.v1 method: "Create" -> create,
 * "UpdateStatus" -> update status, "Bind" -> create binding, "GetScale" -> get
 * scale, "UpdateScale" -> update scale, ... A full path
 * ("/keel.api.v1.Pods/Bind") is accepted. *subresource is NULL for the object
 * itself. -ENOENT for an unknown method. */
int auth_verb_for_method(const char *method, const char **verb, const char **subresource);

#endif
