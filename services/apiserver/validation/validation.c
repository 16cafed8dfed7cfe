/* services/apiserver/validation/validation.c — the entry points: dispatch by
 * kind, and the one-line report kube-apiserver gives,
 *   <Kind>[.<group>] "<name>" is invalid: <path>: <problem>[; ...]
 * built from common/apimachinery's validation_errors. */
#include "services/apiserver/validation/validation.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/validation/internal.h"

/* ---------------------------------------------------------------- nodePorts */

static int node_port_min = 30000, node_port_max = 32767;

int api_validation_set_node_port_range(int min, int max) {
  if (min < 1 || max > 65535 || min > max) return -EINVAL;
  node_port_min = min;
  node_port_max = max;
  return 0;
}

void api_validation_node_port_range(int *min, int *max) {
  *min = node_port_min;
  *max = node_port_max;
}

void vnode_port_range(int *min, int *max) { api_validation_node_port_range(min, max); }

/* ---------------------------------------------------------------- report */

/* Fills err with `<what> "<name>" is invalid: <errors>`, cut with "..." when
 * it does not fit; returns -EINVAL (0 when there is nothing to report). */
static int report(const char *what, const char *name, const validation_errors *errs, keel_error *err) {
  if (validation_errors_count(errs) == 0) return 0;
  char *body = validation_errors_format(errs);
  char q[160];
  keel_error_set(err, EINVAL, "%s %s is invalid: %s", what, vquote(q, sizeof q, name),
                 body ? body : "(out of memory formatting the errors)");
  if (err && body) {
    size_t want = strlen(what) + strlen(q) + strlen(" is invalid: ") + 1 + strlen(body);
    if (want >= sizeof err->message) memcpy(err->message + sizeof err->message - 4, "...", 4);
  }
  free(body);
  return -EINVAL;
}

static const char *object_name(const Keel__Api__V1__ObjectMeta *m) {
  if (!m) return "";
  return vempty(m->name) ? vstr(m->generate_name) : m->name;
}

int api_validate(const api_kind *k, const ProtobufCMessage *obj, const ProtobufCMessage *old,
                 const char *subresource, keel_error *err) {
  if (!k || !obj || obj->descriptor != k->object)
    return keel_error_set(err, EINVAL, "validate: object is not a %s", k ? k->kind : "known kind");
  if (old && old->descriptor != k->object)
    return keel_error_set(err, EINVAL, "validate: stored object is not a %s", k->kind);
  if (subresource && strcmp(subresource, "status") != 0 && strcmp(subresource, "binding") != 0)
    return keel_error_set(err, EINVAL, "validate: unknown subresource \"%.64s\"", subresource);

  validation_errors errs = VALIDATION_ERRORS_INIT;
  const ProtobufCMessageDescriptor *d = k->object;
  if (d == &keel__api__v1__pod__descriptor)
    vcheck_pod(&errs, (const Keel__Api__V1__Pod *)obj, (const Keel__Api__V1__Pod *)old, subresource);
  else if (d == &keel__api__v1__service__descriptor)
    vcheck_service(&errs, (const Keel__Api__V1__Service *)obj, (const Keel__Api__V1__Service *)old,
                   subresource);
  else if (d == &keel__api__v1__endpoints__descriptor)
    vcheck_endpoints(&errs, (const Keel__Api__V1__Endpoints *)obj, (const Keel__Api__V1__Endpoints *)old,
                     subresource);
  else if (d == &keel__api__v1__replica_set__descriptor)
    vcheck_replica_set(&errs, (const Keel__Api__V1__ReplicaSet *)obj, (const Keel__Api__V1__ReplicaSet *)old,
                       subresource);
  else if (d == &keel__api__v1__deployment__descriptor)
    vcheck_deployment(&errs, (const Keel__Api__V1__Deployment *)obj, (const Keel__Api__V1__Deployment *)old,
                      subresource);
  else if (d == &keel__api__v1__node__descriptor)
    vcheck_node(&errs, (const Keel__Api__V1__Node *)obj, (const Keel__Api__V1__Node *)old, subresource);
  else if (d == &keel__api__v1__namespace__descriptor)
    vcheck_namespace(&errs, (const Keel__Api__V1__Namespace *)obj, (const Keel__Api__V1__Namespace *)old,
                     subresource);
  else if (d == &keel__api__v1__event__descriptor)
    vcheck_event(&errs, (const Keel__Api__V1__Event *)obj, (const Keel__Api__V1__Event *)old, subresource);
  else if (d == &keel__api__v1__lease__descriptor)
    vcheck_lease(&errs, (const Keel__Api__V1__Lease *)obj, (const Keel__Api__V1__Lease *)old, subresource);
  else /* a kind added to the registry without rules here: at least its metadata */
    vcheck_object_meta(&errs, api_object_meta(k, obj), k->namespaced, VNAME_DNS1123_SUBDOMAIN);

  char what[128];
  if (k->group && k->group[0])
    snprintf(what, sizeof what, "%s.%s", k->kind, k->group);
  else
    snprintf(what, sizeof what, "%s", k->kind);
  int rc = report(what, object_name(api_object_meta(k, obj)), &errs, err);
  validation_errors_free(&errs);
  return rc;
}

int api_validate_scale(const char *owner, const Keel__Api__V1__Scale *scale, keel_error *err) {
  if (!scale) return keel_error_set(err, EINVAL, "validate: no Scale");
  validation_errors errs = VALIDATION_ERRORS_INIT;
  vcheck_scale(&errs, scale);
  int rc = report(owner ? owner : "Scale", object_name(scale->metadata), &errs, err);
  validation_errors_free(&errs);
  return rc;
}
