/* services/apiserver/validation/workloads.c — ReplicaSets and Deployments
 * (apps/v1), after Kubernetes' ValidateReplicaSet, ValidateDeployment and
 * their Update/StatusUpdate forms.
 *
 * The selector is what ties a workload to its pods, so it must be non-empty,
 * must select the template's own labels (or the controller would create pods
 * it never sees), and, as in apps/v1, may not change after creation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/labels.h"
#include "services/apiserver/validation/internal.h"

/* ---------------------------------------------------------------- selector */

/* The selector as a labels_selector, or NULL when it is malformed (its own
 * errors are reported by vcheck_label_selector). */
static labels_selector *build_selector(const Keel__Api__V1__LabelSelector *sel) {
  vkv ml;
  labels_selector *out = NULL;
  if (!vkv_collect(&ml, sel->match_labels, sel->n_match_labels)) return NULL;
  labels_expression *exprs = calloc(sel->n_match_expressions + 1, sizeof *exprs);
  if (exprs) {
    for (size_t i = 0; i < sel->n_match_expressions; i++) {
      const Keel__Api__V1__LabelSelectorRequirement *r = sel->match_expressions[i];
      exprs[i] = (labels_expression){
          .key = r ? r->key : "",
          .op = r ? r->operator_ : "",
          .values = r ? (const char *const *)r->values : NULL,
          .n_values = r ? r->n_values : 0,
      };
    }
    if (labels_selector_from_label_selector(ml.keys, ml.values, ml.n, exprs, sel->n_match_expressions, &out,
                                            NULL) != 0)
      out = NULL;
  }
  free(exprs);
  vkv_free(&ml);
  return out;
}

/* Canonical text of a selector for messages ("app=web,tier in (fe)"); "{}" when
 * it cannot be built. Malloc'ed or NULL. */
static char *selector_text(const Keel__Api__V1__LabelSelector *sel) {
  if (!sel) return strdup("null");
  labels_selector *ls = build_selector(sel);
  char *s = ls ? labels_selector_string(ls) : strdup("{}");
  labels_selector_free(ls);
  return s;
}

/* "k=v,k2=v2" for a label map, in the order given. */
static char *labels_text(const void *entries, size_t n) {
  vkv kv;
  if (!vkv_collect(&kv, entries, n)) return NULL;
  size_t len = 1;
  for (size_t i = 0; i < kv.n; i++) len += strlen(kv.keys[i]) + strlen(kv.values[i]) + 2;
  char *out = malloc(len);
  if (out) {
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < kv.n; i++)
      o += (size_t)snprintf(out + o, len - o, "%s%s=%s", i ? "," : "", kv.keys[i], kv.values[i]);
  }
  vkv_free(&kv);
  return out;
}

/* Selector present, non-empty, well-formed, and matching the template's labels. */
static void check_selector_and_template(validation_errors *errs, const Keel__Api__V1__LabelSelector *sel,
                                        const Keel__Api__V1__PodTemplateSpec *t, const char *what) {
  if (!sel) {
    validation_errors_add_required(errs, "spec.selector", NULL);
    return;
  }
  size_t before = validation_errors_count(errs);
  vcheck_label_selector(errs, "spec.selector", sel);
  if (sel->n_match_labels + sel->n_match_expressions == 0) {
    char detail[64];
    snprintf(detail, sizeof detail, "empty selector is invalid for %s", what);
    validation_errors_add_invalid(errs, "spec.selector", "{}", detail);
    return;
  }
  if (validation_errors_count(errs) != before || !t) return;
  labels_selector *ls = build_selector(sel);
  if (!ls) return;
  const Keel__Api__V1__ObjectMeta *tm = t->metadata;
  vkv kv = {0};
  if (vkv_collect(&kv, tm ? (const void *)tm->labels : NULL, tm ? tm->n_labels : 0) &&
      !labels_selector_matches(ls, kv.keys, kv.values, kv.n)) {
    char *text = labels_text(tm ? (const void *)tm->labels : NULL, tm ? tm->n_labels : 0);
    validation_errors_add_invalid(errs, "spec.template.metadata.labels", text ? text : "",
                                  "`selector` does not match template `labels`");
    free(text);
  }
  vkv_free(&kv);
  labels_selector_free(ls);
}

static void check_selector_update(validation_errors *errs, const Keel__Api__V1__LabelSelector *sel,
                                  const Keel__Api__V1__LabelSelector *old) {
  if (vmsg_equal(sel ? &sel->base : NULL, old ? &old->base : NULL)) return;
  char *text = selector_text(sel);
  validation_errors_add_invalid(errs, "spec.selector", text ? text : "", "field is immutable");
  free(text);
}

/* ---------------------------------------------------------------- numbers */

static void nonneg(validation_errors *errs, const char *path, int64_t v) {
  if (v < 0) validation_errors_add_invalid_int(errs, path, v, "must be greater than or equal to 0");
}

/* v <= limit; a negative limit is reported on its own and compared with nothing. */
static void not_above(validation_errors *errs, const char *path, int64_t v, int64_t limit,
                      const char *limit_name) {
  if (limit >= 0 && v > limit) {
    char detail[96];
    snprintf(detail, sizeof detail, "cannot be greater than %s", limit_name);
    validation_errors_add_invalid_int(errs, path, v, detail);
  }
}

/* ---------------------------------------------------------------- replica set */

void vcheck_replica_set(validation_errors *errs, const Keel__Api__V1__ReplicaSet *rs,
                        const Keel__Api__V1__ReplicaSet *old, const char *subresource) {
  vcheck_object_meta(errs, rs->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, rs->metadata, old->metadata);
  if (vstreq(subresource, "status")) {
    const Keel__Api__V1__ReplicaSetStatus *st = rs->status;
    if (!st) return;
    nonneg(errs, "status.replicas", st->replicas);
    nonneg(errs, "status.fullyLabeledReplicas", st->fully_labeled_replicas);
    nonneg(errs, "status.readyReplicas", st->ready_replicas);
    nonneg(errs, "status.availableReplicas", st->available_replicas);
    nonneg(errs, "status.observedGeneration", st->observed_generation);
    not_above(errs, "status.fullyLabeledReplicas", st->fully_labeled_replicas, st->replicas,
              "status.replicas");
    not_above(errs, "status.readyReplicas", st->ready_replicas, st->replicas, "status.replicas");
    not_above(errs, "status.availableReplicas", st->available_replicas, st->replicas, "status.replicas");
    not_above(errs, "status.availableReplicas", st->available_replicas, st->ready_replicas, "readyReplicas");
    return;
  }
  const Keel__Api__V1__ReplicaSetSpec *s = rs->spec;
  if (!s) {
    validation_errors_add_required(errs, "spec", NULL);
    return;
  }
  if (s->replicas) nonneg(errs, "spec.replicas", s->replicas->value);
  nonneg(errs, "spec.minReadySeconds", s->min_ready_seconds);
  check_selector_and_template(errs, s->selector, s->template_, "replicaset");
  vpath tp = vp_root("spec.template");
  vcheck_pod_template(errs, &tp, s->template_, NULL);
  if (old && old->spec) check_selector_update(errs, s->selector, old->spec->selector);
}

/* ---------------------------------------------------------------- deployment */

/* maxSurge / maxUnavailable: an int >= 0 or "N%". Returns the value as a
 * percentage or count in *v and whether it is a percentage, false when invalid. */
static bool check_int_or_percent(validation_errors *errs, const char *path,
                                 const Keel__Api__V1__IntOrString *x, int64_t *v, bool *percent) {
  *v = 0;
  *percent = false;
  if (!x) return true;
  if (x->type == 0) {
    *v = x->int_val;
    if (x->int_val < 0) {
      validation_errors_add_invalid_int(errs, path, x->int_val, "must be greater than or equal to 0");
      return false;
    }
    return true;
  }
  const char *s = vstr(x->str_val);
  size_t l = strlen(s);
  bool ok = l >= 2 && l <= 11 && s[l - 1] == '%';
  int64_t n = 0;
  for (size_t i = 0; ok && i + 1 < l; i++) {
    ok = s[i] >= '0' && s[i] <= '9';
    n = n * 10 + (s[i] - '0');
  }
  if (!ok) {
    validation_errors_add_invalid(errs, path, s,
                                  "a valid percent string must be a numeric string followed by an ending '%' "
                                  "(e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')");
    return false;
  }
  *v = n;
  *percent = true;
  return true;
}

static void check_strategy(validation_errors *errs, const Keel__Api__V1__DeploymentStrategy *st) {
  static const char *const types[] = {"Recreate", "RollingUpdate", NULL};
  if (!st) {
    validation_errors_add_required(errs, "spec.strategy", NULL);
    return;
  }
  if (!vcheck_enum(errs, "spec.strategy.type", st->type, types, true)) return;
  if (vstreq(st->type, "Recreate")) {
    if (st->rolling_update)
      verr_forbidden(errs, "spec.strategy.rollingUpdate",
                     "may not be specified when strategy `type` is 'Recreate'");
    return;
  }
  const Keel__Api__V1__RollingUpdateDeployment *ru = st->rolling_update;
  if (!ru) {
    validation_errors_add_required(errs, "spec.strategy.rollingUpdate",
                                   "this should be defaulted and never be nil");
    return;
  }
  int64_t mu, ms;
  bool mu_pct, ms_pct;
  const char *mu_path = "spec.strategy.rollingUpdate.maxUnavailable";
  bool mu_ok = check_int_or_percent(errs, mu_path, ru->max_unavailable, &mu, &mu_pct);
  bool ms_ok =
      check_int_or_percent(errs, "spec.strategy.rollingUpdate.maxSurge", ru->max_surge, &ms, &ms_pct);
  if (mu_ok && mu_pct && mu > 100) {
    validation_errors_add_invalid(errs, mu_path, ru->max_unavailable->str_val,
                                  "must not be greater than 100%");
  } else if (mu_ok && ms_ok && mu == 0 && ms == 0) {
    if (ru->max_unavailable && ru->max_unavailable->type == 1)
      validation_errors_add_invalid(errs, mu_path, ru->max_unavailable->str_val,
                                    "may not be 0 when `maxSurge` is 0");
    else
      validation_errors_add_invalid_int(errs, mu_path, 0, "may not be 0 when `maxSurge` is 0");
  }
}

void vcheck_deployment(validation_errors *errs, const Keel__Api__V1__Deployment *d,
                       const Keel__Api__V1__Deployment *old, const char *subresource) {
  vcheck_object_meta(errs, d->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, d->metadata, old->metadata);
  if (vstreq(subresource, "status")) {
    const Keel__Api__V1__DeploymentStatus *st = d->status;
    if (!st) return;
    nonneg(errs, "status.observedGeneration", st->observed_generation);
    nonneg(errs, "status.replicas", st->replicas);
    nonneg(errs, "status.updatedReplicas", st->updated_replicas);
    nonneg(errs, "status.readyReplicas", st->ready_replicas);
    nonneg(errs, "status.availableReplicas", st->available_replicas);
    nonneg(errs, "status.unavailableReplicas", st->unavailable_replicas);
    if (st->collision_count) nonneg(errs, "status.collisionCount", st->collision_count->value);
    not_above(errs, "status.updatedReplicas", st->updated_replicas, st->replicas, "status.replicas");
    not_above(errs, "status.readyReplicas", st->ready_replicas, st->replicas, "status.replicas");
    not_above(errs, "status.availableReplicas", st->available_replicas, st->replicas, "status.replicas");
    not_above(errs, "status.availableReplicas", st->available_replicas, st->ready_replicas, "readyReplicas");
    if (old && old->status && old->status->collision_count &&
        (!st->collision_count || st->collision_count->value < old->status->collision_count->value))
      validation_errors_add_invalid_int(errs, "status.collisionCount",
                                        st->collision_count ? st->collision_count->value : 0,
                                        "cannot be decremented");
    return;
  }
  const Keel__Api__V1__DeploymentSpec *s = d->spec;
  if (!s) {
    validation_errors_add_required(errs, "spec", NULL);
    return;
  }
  if (s->replicas) nonneg(errs, "spec.replicas", s->replicas->value);
  check_selector_and_template(errs, s->selector, s->template_, "deployment");
  vpath tp = vp_root("spec.template");
  vcheck_pod_template(errs, &tp, s->template_, NULL);
  check_strategy(errs, s->strategy);
  nonneg(errs, "spec.minReadySeconds", s->min_ready_seconds);
  if (s->revision_history_limit) nonneg(errs, "spec.revisionHistoryLimit", s->revision_history_limit->value);
  if (s->progress_deadline_seconds) {
    int64_t pd = s->progress_deadline_seconds->value;
    if (pd < 0)
      nonneg(errs, "spec.progressDeadlineSeconds", pd);
    else if (pd <= s->min_ready_seconds)
      validation_errors_add_invalid_int(errs, "spec.progressDeadlineSeconds", pd,
                                        "must be greater than minReadySeconds");
  }
  if (old && old->spec) check_selector_update(errs, s->selector, old->spec->selector);
}

/* ---------------------------------------------------------------- scale */

void vcheck_scale(validation_errors *errs, const Keel__Api__V1__Scale *scale) {
  if (!scale->spec) return;
  nonneg(errs, "spec.replicas", scale->spec->replicas);
}
