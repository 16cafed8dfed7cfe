/* services/apiserver/validation/meta.c — ObjectMeta, label selectors and
 * finalizers, as Kubernetes' ValidateObjectMeta and ValidateLabelSelector.
 *
 * Only what a client writes is checked: uid, resourceVersion, generation and
 * the timestamps belong to the apiserver, which sets them before validating. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/validation/internal.h"

static validation_rule rule_of(vname_rule r) {
  switch (r) {
  case VNAME_DNS1123_LABEL:
    return VALIDATION_DNS1123_LABEL;
  case VNAME_DNS1035_LABEL:
    return VALIDATION_DNS1035_LABEL;
  case VNAME_DNS1123_SUBDOMAIN:
    break;
  }
  return VALIDATION_DNS1123_SUBDOMAIN;
}

/* generateName is a prefix the apiserver appends random characters to, so a
 * trailing '-' is fine: Kubernetes checks it with the dash masked. */
static void check_generate_name(validation_errors *errs, const char *value, validation_rule rule) {
  size_t len = strlen(value);
  char *masked = strdup(value);
  if (!masked) {
    validation_errors_addf(errs, "metadata.generateName: Internal error: out of memory");
    return;
  }
  if (len > 0 && masked[len - 1] == '-') masked[len - 1] = 'a';
  const char *msgs[VALIDATION_MSGS_MAX];
  size_t n = validation_messages(rule, masked, msgs);
  for (size_t i = 0; i < n; i++) validation_errors_add_invalid(errs, "metadata.generateName", value, msgs[i]);
  free(masked);
}

void vcheck_finalizer(validation_errors *errs, const char *path, const char *name) {
  validation_qualified_name(errs, path, name);
}

static void check_owner_references(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m) {
  vpath base = vp_root("metadata.ownerReferences");
  const char *controller = NULL;
  for (size_t i = 0; i < m->n_owner_references; i++) {
    const Keel__Api__V1__OwnerReference *r = m->owner_references[i];
    vpath p = vp_index(&base, i);
    if (!r) continue;
    /* apiVersion is "group/version" or "version": the version part must exist. */
    const char *slash = strrchr(vstr(r->api_version), '/');
    const char *version = slash ? slash + 1 : vstr(r->api_version);
    if (vempty(version)) {
      vpath f = vp_child(&p, "apiVersion");
      validation_errors_add_invalid(errs, f.s, r->api_version, "version must not be empty");
    }
    if (vempty(r->kind)) {
      vpath f = vp_child(&p, "kind");
      validation_errors_add_invalid(errs, f.s, r->kind, "kind must not be empty");
    }
    if (vempty(r->name)) {
      vpath f = vp_child(&p, "name");
      validation_errors_add_invalid(errs, f.s, r->name, "name must not be empty");
    }
    if (vempty(r->uid)) {
      vpath f = vp_child(&p, "uid");
      validation_errors_add_invalid(errs, f.s, r->uid, "uid must not be empty");
    }
    if (r->controller && r->controller->value) {
      if (controller) {
        char detail[256];
        vpath f = vp_child(&p, "controller");
        snprintf(detail, sizeof detail,
                 "Only one reference can have Controller set to true. Found \"true\" in references for %.80s "
                 "and %.80s",
                 controller, vstr(r->name));
        validation_errors_add_invalid(errs, f.s, "true", detail);
      } else {
        controller = vstr(r->name);
      }
    }
  }
}

static void check_finalizers(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m) {
  vpath base = vp_root("metadata.finalizers");
  bool orphan = false, foreground = false;
  for (size_t i = 0; i < m->n_finalizers; i++) {
    vpath p = vp_index(&base, i);
    vcheck_finalizer(errs, p.s, m->finalizers[i]);
    orphan |= vstreq(m->finalizers[i], "orphan");
    foreground |= vstreq(m->finalizers[i], "foregroundDeletion");
  }
  if (orphan && foreground)
    validation_errors_add_invalid(errs, base.s, "orphan, foregroundDeletion",
                                  "finalizer orphan and foregroundDeletion cannot be both set");
}

void vcheck_object_meta(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m, bool namespaced,
                        vname_rule name_rule) {
  static const Keel__Api__V1__ObjectMeta empty = KEEL__API__V1__OBJECT_META__INIT;
  if (!m) m = &empty;
  validation_rule rule = rule_of(name_rule);
  if (!vempty(m->generate_name)) check_generate_name(errs, m->generate_name, rule);
  if (!vempty(m->name))
    validation_check(errs, "metadata.name", rule, m->name);
  else if (vempty(m->generate_name))
    validation_errors_add_required(errs, "metadata.name", "name or generateName is required");
  if (namespaced) {
    if (vempty(m->namespace_))
      validation_errors_add_required(errs, "metadata.namespace", NULL);
    else
      validation_dns1123_label(errs, "metadata.namespace", m->namespace_);
  } else if (!vempty(m->namespace_)) {
    verr_forbidden(errs, "metadata.namespace", "not allowed on this type");
  }
  vcheck_labels(errs, "metadata.labels", m->labels, m->n_labels);
  if (m->n_annotations) {
    vkv kv;
    if (vkv_collect(&kv, m->annotations, m->n_annotations)) {
      validation_annotations(errs, "metadata.annotations", kv.keys, kv.values, kv.n);
      vkv_free(&kv);
    } else {
      validation_errors_addf(errs, "metadata.annotations: Internal error: out of memory");
    }
  }
  check_owner_references(errs, m);
  check_finalizers(errs, m);
}

void vcheck_object_meta_update(validation_errors *errs, const Keel__Api__V1__ObjectMeta *m,
                               const Keel__Api__V1__ObjectMeta *old) {
  if (!m || !old) return;
  if (!vstreq(m->name, old->name))
    validation_errors_add_invalid(errs, "metadata.name", m->name, "field is immutable");
  if (!vstreq(m->namespace_, old->namespace_))
    validation_errors_add_invalid(errs, "metadata.namespace", m->namespace_, "field is immutable");
}

void vcheck_label_selector(validation_errors *errs, const char *path,
                           const Keel__Api__V1__LabelSelector *sel) {
  /* metav1 ValidateLabelSelector: matchLabels as labels, each expression's key a
   * qualified name, In/NotIn with values, Exists/DoesNotExist without. */
  static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", NULL};
  if (!sel) return;
  vpath base = vp_root(path);
  vpath ml = vp_child(&base, "matchLabels");
  vcheck_labels(errs, ml.s, sel->match_labels, sel->n_match_labels);
  vpath me = vp_child(&base, "matchExpressions");
  for (size_t i = 0; i < sel->n_match_expressions; i++) {
    const Keel__Api__V1__LabelSelectorRequirement *r = sel->match_expressions[i];
    if (!r) continue;
    vpath p = vp_index(&me, i);
    vpath op = vp_child(&p, "operator");
    vpath values = vp_child(&p, "values");
    vpath key = vp_child(&p, "key");
    if (vcheck_enum(errs, op.s, r->operator_, ops, false)) {
      bool set_op = vstreq(r->operator_, "In") || vstreq(r->operator_, "NotIn");
      if (set_op && r->n_values == 0)
        validation_errors_add_required(errs, values.s,
                                       "must be specified when `operator` is 'In' or 'NotIn'");
      if (!set_op && r->n_values > 0)
        verr_forbidden(errs, values.s, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
    }
    validation_qualified_name(errs, key.s, r->key);
    for (size_t j = 0; j < r->n_values; j++) {
      vpath v = vp_index(&values, j);
      validation_label_value(errs, v.s, r->values[j]);
    }
  }
}
