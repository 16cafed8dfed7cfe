/* services/apiserver/validation/internal.h — what the per-kind files share.
 *
 * Field paths are built in fixed buffers (vpath) the way Kubernetes' field.Path
 * prints them: "spec.containers[0].ports[1].containerPort", map keys as
 * "spec.resources.limits[cpu]". A path longer than VPATH_MAX is cut, which
 * only shortens a message.
 *
 * Errors go into common/apimachinery's validation_errors; the verr_* helpers
 * add the error types that collector has no helper for (Unsupported value,
 * Forbidden, Duplicate value, Not found), worded as Kubernetes' field.Error. */
#ifndef KEEL_SERVICES_APISERVER_VALIDATION_INTERNAL_H
#define KEEL_SERVICES_APISERVER_VALIDATION_INTERNAL_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/apimachinery/quantity.h"
#include "common/apimachinery/validation.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"

/* ---- paths */

#define VPATH_MAX 256

typedef struct vpath {
  char s[VPATH_MAX];
} vpath;

vpath vp_root(const char *name);
vpath vp_child(const vpath *p, const char *name); /* p.name */
vpath vp_index(const vpath *p, size_t i);         /* p[i] */
vpath vp_key(const vpath *p, const char *key);    /* p[key] */

/* ---- errors (errs may be NULL: the check only answers) */

/* "<path>: Unsupported value: \"v\": supported values: \"a\", \"b\"";
 * supported is NULL-terminated. */
void verr_unsupported(validation_errors *errs, const char *path, const char *value,
                      const char *const *supported);
/* "<path>: Forbidden: <detail>". */
void verr_forbidden(validation_errors *errs, const char *path, const char *detail);
/* "<path>: Duplicate value: \"v\"" and the numeric form. */
void verr_duplicate(validation_errors *errs, const char *path, const char *value);
void verr_duplicate_int(validation_errors *errs, const char *path, int64_t value);
/* "<path>: Not found: \"v\"". */
void verr_not_found(validation_errors *errs, const char *path, const char *value);

/* True when value is one of supported; otherwise adds Unsupported value (an
 * empty value is "Required value" instead when required). */
bool vcheck_enum(validation_errors *errs, const char *path, const char *value, const char *const *supported,
                 bool required);

/* Go-style %q of s (at most 128 input bytes), into out. */
const char *vquote(char *out, size_t size, const char *s);

/* ---- small predicates */

static inline bool vempty(const char *s) { return s == NULL || s[0] == '\0'; }
static inline const char *vstr(const char *s) { return s ? s : ""; }
bool vstreq(const char *a, const char *b); /* NULL reads as "" */

/* Dotted-quad IPv4 / IPv6 text as Go's net.ParseIP accepts (no zone). */
bool vis_ipv4(const char *s);
bool vis_ip(const char *s);
/* "a.b.c.d/n" or an IPv6 CIDR. */
bool vis_cidr(const char *s);

/* Deep equality of two messages of one type, by descriptor: strings compare
 * NULL as "", map fields compare as unordered sets of keys. */
bool vmsg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b);

/* ---- string maps (protobuf-c map entries: field 1 key, field 2 value) */

typedef struct vkv {
  const char **keys;
  const char **values;
  size_t n;
} vkv;

/* Borrows the key/value strings of n map entries (any string->string map);
 * returns false when out of memory. vkv_free frees only the arrays. */
bool vkv_collect(vkv *out, const void *entries, size_t n);
void vkv_free(vkv *kv);
/* Looks a key up in a string->string map; NULL when absent. */
const char *vmap_get(const void *entries, size_t n, const char *key);

/* metadata.labels-style map check (qualified-name keys, label values). */
void vcheck_labels(validation_errors *errs, const char *path, const void *entries, size_t n);

/* ---- shared validators (meta.c) */

typedef enum vname_rule {
  VNAME_DNS1123_SUBDOMAIN,
  VNAME_DNS1123_LABEL,
  VNAME_DNS1035_LABEL,
} vname_rule;

/* ObjectMeta of a top-level object. */
void vcheck_object_meta(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m, bool namespaced,
                        vname_rule rule);
/* ObjectMeta immutability on update (name, namespace). */
void vcheck_object_meta_update(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m,
                               const Keel__Api__V1__ObjectMeta *old);
/* A metav1.LabelSelector's syntax. */
void vcheck_label_selector(validation_errors *errs, const char *path,
                           const Keel__Api__V1__LabelSelector *sel);
/* A finalizer name: a qualified name. */
void vcheck_finalizer(validation_errors *errs, const char *path, const char *name);

/* ---- containers (container.c) */

typedef struct vcontainer_ctx {
  bool init;                       /* an init container */
  const char *const *volume_names; /* the pod's volumes, for volumeMounts */
  size_t n_volume_names;
} vcontainer_ctx;

void vcheck_container(validation_errors *errs, const vpath *path, const Keel__Api__V1__Container *c,
                      const vcontainer_ctx *ctx);
/* An int-or-string port: 1..65535 or an IANA_SVC_NAME; NULL is Required. */
void vcheck_port_num_or_name(validation_errors *errs, const char *path,
                             const Keel__Api__V1__IntOrString *port);
/* A non-negative quantity; the parsed value in *out when out is not NULL. */
bool vcheck_quantity(validation_errors *errs, const char *path, const Keel__Api__V1__Quantity *q,
                     quantity *out);

/* ---- pods (pod.c) */

typedef struct vpod_opts {
  /* Allowed restartPolicy values for a template ("Always" for ReplicaSets and
   * Deployments); NULL = every Pod value. */
  const char *const *restart_policies;
} vpod_opts;

void vcheck_pod_spec(validation_errors *errs, const vpath *path, const Keel__Api__V1__PodSpec *spec,
                     const vpod_opts *opts);
void vcheck_pod_template(validation_errors *errs, const vpath *path, const Keel__Api__V1__PodTemplateSpec *t,
                         const vpod_opts *opts);

/* ---- per kind: all errors of obj into errs (old NULL on create; subresource
 * NULL, "status", or for Pods "binding") */

void vcheck_pod(validation_errors *errs, const Keel__Api__V1__Pod *pod, const Keel__Api__V1__Pod *old,
                const char *subresource);
void vcheck_service(validation_errors *errs, const Keel__Api__V1__Service *svc,
                    const Keel__Api__V1__Service *old, const char *subresource);
void vcheck_endpoints(validation_errors *errs, const Keel__Api__V1__Endpoints *ep,
                      const Keel__Api__V1__Endpoints *old, const char *subresource);
void vcheck_replica_set(validation_errors *errs, const Keel__Api__V1__ReplicaSet *rs,
                        const Keel__Api__V1__ReplicaSet *old, const char *subresource);
void vcheck_deployment(validation_errors *errs, const Keel__Api__V1__Deployment *d,
                       const Keel__Api__V1__Deployment *old, const char *subresource);
void vcheck_node(validation_errors *errs, const Keel__Api__V1__Node *node, const Keel__Api__V1__Node *old,
                 const char *subresource);
void vcheck_namespace(validation_errors *errs, const Keel__Api__V1__Namespace *ns,
                      const Keel__Api__V1__Namespace *old, const char *subresource);
void vcheck_event(validation_errors *errs, const Keel__Api__V1__Event *ev, const Keel__Api__V1__Event *old,
                  const char *subresource);
void vcheck_lease(validation_errors *errs, const Keel__Api__V1__Lease *lease, const Keel__Api__V1__Lease *old,
                  const char *subresource);

void vcheck_scale(validation_errors *errs, const Keel__Api__V1__Scale *scale);

/* The configured nodePort range (validation.c). */
void vnode_port_range(int *min, int *max);

#endif
