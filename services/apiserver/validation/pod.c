/* services/apiserver/validation/pod.c — Pods and pod templates: the pod spec
 * (volumes, containers, scheduling constraints, tolerations), the update rule
 * (a pod's spec is nearly immutable) and status updates, after Kubernetes'
 * ValidatePodSpec, ValidatePodUpdate and ValidatePodStatusUpdate.
 *
 * The update rule is checked the way Kubernetes does it: take the new spec,
 * put back the old values of the few fields that may change (images, the
 * active deadline, tolerations, the grace period, and nodeName, which has its
 * own message), and require what is left to equal the old spec. The "munged"
 * spec is a shallow copy pointing into both objects; nothing is deep-copied. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/validation/internal.h"

static const char *const restart_policies[] = {"Always", "OnFailure", "Never", NULL};
static const char *const taint_effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};

/* ---------------------------------------------------------------- volumes */

static void check_volumes(validation_errors *errs, const vpath *spec_path,
                          const Keel__Api__V1__PodSpec *spec) {
  static const char *const host_path_types[] = {
      "",           "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
      "CharDevice", "BlockDevice",       NULL};
  vpath base = vp_child(spec_path, "volumes");
  for (size_t i = 0; i < spec->n_volumes; i++) {
    const Keel__Api__V1__Volume *v = spec->volumes[i];
    if (!v) continue;
    vpath ip = vp_index(&base, i);
    vpath np = vp_child(&ip, "name");
    if (vempty(v->name)) {
      validation_errors_add_required(errs, np.s, NULL);
    } else if (validation_dns1123_label(errs, np.s, v->name)) {
      for (size_t j = 0; j < i; j++)
        if (spec->volumes[j] && vstreq(spec->volumes[j]->name, v->name)) {
          verr_duplicate(errs, np.s, v->name);
          break;
        }
    }
    int sources = (v->empty_dir != NULL) + (v->host_path != NULL);
    if (sources == 0) {
      validation_errors_add_required(errs, ip.s, "must specify a volume type");
      continue;
    }
    if (sources > 1) {
      vpath hp = vp_child(&ip, "hostPath");
      verr_forbidden(errs, hp.s, "may not specify more than 1 volume type");
      continue;
    }
    if (v->host_path) {
      vpath hp = vp_child(&ip, "hostPath");
      vpath pp = vp_child(&hp, "path"), tp = vp_child(&hp, "type");
      const char *path = v->host_path->path;
      if (vempty(path)) {
        validation_errors_add_required(errs, pp.s, NULL);
      } else {
        for (const char *p = path; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL)
          if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
            validation_errors_add_invalid(errs, pp.s, path, "must not contain '..'");
            break;
          }
      }
      vcheck_enum(errs, tp.s, v->host_path->type, host_path_types, false);
    }
    if (v->empty_dir && v->empty_dir->size_limit && !vempty(v->empty_dir->size_limit->string)) {
      vpath ep = vp_child(&ip, "emptyDir");
      vpath sp = vp_child(&ep, "sizeLimit");
      vcheck_quantity(errs, sp.s, v->empty_dir->size_limit, NULL);
    }
  }
}

/* ---------------------------------------------------------------- containers */

static void check_containers(validation_errors *errs, const vpath *spec_path,
                             const Keel__Api__V1__PodSpec *spec) {
  const char **volume_names = calloc(spec->n_volumes + 1, sizeof *volume_names);
  if (!volume_names) {
    validation_errors_addf(errs, "%s: Internal error: out of memory", spec_path->s);
    return;
  }
  for (size_t i = 0; i < spec->n_volumes; i++)
    volume_names[i] = spec->volumes[i] ? spec->volumes[i]->name : "";
  vpath cpath = vp_child(spec_path, "containers"), ipath = vp_child(spec_path, "initContainers");
  if (spec->n_containers == 0) validation_errors_add_required(errs, cpath.s, NULL);

  /* Names are unique across init and app containers: each is checked against
   * every container before it, init containers first. */
  size_t total = spec->n_init_containers + spec->n_containers;
  for (size_t k = 0; k < total; k++) {
    bool init = k < spec->n_init_containers;
    size_t i = init ? k : k - spec->n_init_containers;
    const Keel__Api__V1__Container *c = init ? spec->init_containers[i] : spec->containers[i];
    if (!c) continue;
    vpath p = vp_index(init ? &ipath : &cpath, i);
    vcontainer_ctx ctx = {.init = init, .volume_names = volume_names, .n_volume_names = spec->n_volumes};
    vcheck_container(errs, &p, c, &ctx);
    if (!vempty(c->name)) {
      for (size_t j = 0; j < k; j++) {
        bool jinit = j < spec->n_init_containers;
        const Keel__Api__V1__Container *o =
            jinit ? spec->init_containers[j] : spec->containers[j - spec->n_init_containers];
        if (o && vstreq(o->name, c->name)) {
          vpath np = vp_child(&p, "name");
          verr_duplicate(errs, np.s, c->name);
          break;
        }
      }
    }
    /* With hostNetwork the pod shares the node's ports: they must agree. */
    for (size_t j = 0; spec->host_network && j < c->n_ports; j++) {
      const Keel__Api__V1__ContainerPort *port = c->ports[j];
      if (port && port->host_port != 0 && port->host_port != port->container_port) {
        vpath ports = vp_child(&p, "ports");
        vpath pp = vp_index(&ports, j);
        vpath cp = vp_child(&pp, "containerPort");
        validation_errors_add_invalid_int(errs, cp.s, port->container_port,
                                          "must match `hostPort` when `hostNetwork` is true");
      }
    }
  }
  /* hostPort/protocol pairs are unique across the app containers. */
  for (size_t i = 0; i < spec->n_containers; i++) {
    const Keel__Api__V1__Container *c = spec->containers[i];
    for (size_t j = 0; c && j < c->n_ports; j++) {
      const Keel__Api__V1__ContainerPort *port = c->ports[j];
      if (!port || port->host_port == 0) continue;
      bool dup = false;
      for (size_t ci = 0; ci <= i && !dup; ci++) {
        const Keel__Api__V1__Container *o = spec->containers[ci];
        size_t end = ci == i ? j : (o ? o->n_ports : 0);
        for (size_t pj = 0; pj < end && !dup; pj++)
          dup = o->ports[pj] && o->ports[pj]->host_port == port->host_port &&
                vstreq(o->ports[pj]->protocol, port->protocol) &&
                vstreq(o->ports[pj]->host_ip, port->host_ip);
      }
      if (dup) {
        vpath cp = vp_index(&cpath, i);
        vpath ports = vp_child(&cp, "ports");
        vpath pp = vp_index(&ports, j);
        vpath hp = vp_child(&pp, "hostPort");
        char text[64];
        snprintf(text, sizeof text, "%d/%.16s", port->host_port, vstr(port->protocol));
        verr_duplicate(errs, hp.s, text);
      }
    }
  }
  free(volume_names);
}

/* ---------------------------------------------------------------- scheduling */

static bool is_int64_text(const char *s) {
  if (vempty(s)) return false;
  char *end = NULL;
  errno = 0;
  (void)strtoll(s, &end, 10);
  return errno == 0 && *end == '\0' && (s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9'));
}

static void check_node_selector_requirement(validation_errors *errs, const vpath *path,
                                            const Keel__Api__V1__NodeSelectorRequirement *r) {
  static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt", NULL};
  vpath op = vp_child(path, "operator"), values = vp_child(path, "values"), key = vp_child(path, "key");
  const char *o = vstr(r->operator_);
  if (!strcmp(o, "In") || !strcmp(o, "NotIn")) {
    if (r->n_values == 0)
      validation_errors_add_required(errs, values.s, "must be specified when `operator` is 'In' or 'NotIn'");
  } else if (!strcmp(o, "Exists") || !strcmp(o, "DoesNotExist")) {
    if (r->n_values > 0)
      verr_forbidden(errs, values.s, "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
  } else if (!strcmp(o, "Gt") || !strcmp(o, "Lt")) {
    if (r->n_values != 1) {
      validation_errors_add_required(errs, values.s,
                                     "must be specified single value when `operator` is 'Lt' or 'Gt'");
    } else if (!is_int64_text(r->values[0])) {
      vpath v0 = vp_index(&values, 0);
      validation_errors_add_invalid(errs, v0.s, r->values[0], "must be an integer");
    }
  } else {
    vcheck_enum(errs, op.s, o, ops, true);
  }
  validation_qualified_name(errs, key.s, r->key);
}

static void check_node_field_requirement(validation_errors *errs, const vpath *path,
                                         const Keel__Api__V1__NodeSelectorRequirement *r) {
  static const char *const ops[] = {"In", "NotIn", NULL};
  static const char *const keys[] = {"metadata.name", NULL};
  vpath op = vp_child(path, "operator"), values = vp_child(path, "values"), key = vp_child(path, "key");
  if (vcheck_enum(errs, op.s, r->operator_, ops, true) && r->n_values != 1)
    validation_errors_add_required(
        errs, values.s, "must be only one value when `operator` is 'In' or 'NotIn' for node field selector");
  vcheck_enum(errs, key.s, r->key, keys, true);
}

static void check_node_selector_term(validation_errors *errs, const vpath *path,
                                     const Keel__Api__V1__NodeSelectorTerm *t) {
  vpath me = vp_child(path, "matchExpressions"), mf = vp_child(path, "matchFields");
  for (size_t i = 0; i < t->n_match_expressions; i++) {
    vpath p = vp_index(&me, i);
    if (t->match_expressions[i]) check_node_selector_requirement(errs, &p, t->match_expressions[i]);
  }
  for (size_t i = 0; i < t->n_match_fields; i++) {
    vpath p = vp_index(&mf, i);
    if (t->match_fields[i]) check_node_field_requirement(errs, &p, t->match_fields[i]);
  }
}

static void check_affinity(validation_errors *errs, const vpath *spec_path,
                           const Keel__Api__V1__Affinity *a) {
  if (!a || !a->node_affinity) return;
  vpath ap = vp_child(spec_path, "affinity");
  vpath na = vp_child(&ap, "nodeAffinity");
  const Keel__Api__V1__NodeAffinity *n = a->node_affinity;
  if (n->required_during_scheduling_ignored_during_execution) {
    vpath rp = vp_child(&na, "requiredDuringSchedulingIgnoredDuringExecution");
    vpath tp = vp_child(&rp, "nodeSelectorTerms");
    const Keel__Api__V1__NodeSelector *sel = n->required_during_scheduling_ignored_during_execution;
    if (sel->n_node_selector_terms == 0)
      validation_errors_add_required(errs, tp.s, "must have at least one node selector term");
    for (size_t i = 0; i < sel->n_node_selector_terms; i++) {
      vpath p = vp_index(&tp, i);
      if (sel->node_selector_terms[i]) check_node_selector_term(errs, &p, sel->node_selector_terms[i]);
    }
  }
  vpath pp = vp_child(&na, "preferredDuringSchedulingIgnoredDuringExecution");
  for (size_t i = 0; i < n->n_preferred_during_scheduling_ignored_during_execution; i++) {
    const Keel__Api__V1__PreferredSchedulingTerm *t =
        n->preferred_during_scheduling_ignored_during_execution[i];
    if (!t) continue;
    vpath p = vp_index(&pp, i);
    vpath wp = vp_child(&p, "weight"), prefp = vp_child(&p, "preference");
    if (t->weight < 1 || t->weight > 100)
      validation_errors_add_invalid_int(errs, wp.s, t->weight, "must be in the range 1-100");
    if (t->preference)
      check_node_selector_term(errs, &prefp, t->preference);
    else
      validation_errors_add_required(errs, prefp.s, NULL);
  }
}

static void check_tolerations(validation_errors *errs, const vpath *path,
                              Keel__Api__V1__Toleration *const *tols, size_t n) {
  static const char *const ops[] = {"Equal", "Exists", NULL};
  for (size_t i = 0; i < n; i++) {
    const Keel__Api__V1__Toleration *t = tols[i];
    if (!t) continue;
    vpath ip = vp_index(path, i);
    vpath kp = vp_child(&ip, "key"), op = vp_child(&ip, "operator"), vp = vp_child(&ip, "value"),
          ep = vp_child(&ip, "effect");
    const char *o = vstr(t->operator_);
    if (!vempty(t->key)) validation_qualified_name(errs, kp.s, t->key);
    if (vempty(t->key) && strcmp(o, "Exists") != 0)
      validation_errors_add_invalid(
          errs, op.s, o,
          "operator must be Exists when `key` is empty, which means \"match all values and all keys\"");
    if (t->toleration_seconds && !vstreq(t->effect, "NoExecute"))
      validation_errors_add_invalid(errs, ep.s, t->effect,
                                    "effect must be 'NoExecute' when `tolerationSeconds` is set");
    if (o[0] == '\0' || !strcmp(o, "Equal")) {
      validation_label_value(errs, vp.s, t->value);
    } else if (!strcmp(o, "Exists")) {
      if (!vempty(t->value))
        validation_errors_add_invalid(errs, op.s, o, "value must be empty when `operator` is 'Exists'");
    } else {
      verr_unsupported(errs, op.s, o, ops);
    }
    if (!vempty(t->effect)) vcheck_enum(errs, ep.s, t->effect, taint_effects, false);
  }
}

/* ---------------------------------------------------------------- spec */

static const char *const pod_restart_policies_always[] = {"Always", NULL};

void vcheck_pod_spec(validation_errors *errs, const vpath *path, const Keel__Api__V1__PodSpec *spec,
                     const vpod_opts *opts) {
  static const char *const dns_policies[] = {"ClusterFirst", "ClusterFirstWithHostNet", "Default", NULL};
  if (!spec) {
    validation_errors_add_required(errs, path->s, NULL);
    return;
  }
  check_volumes(errs, path, spec);
  check_containers(errs, path, spec);

  vpath rp = vp_child(path, "restartPolicy");
  vcheck_enum(errs, rp.s, spec->restart_policy,
              opts && opts->restart_policies ? opts->restart_policies : restart_policies, true);
  vpath dp = vp_child(path, "dnsPolicy");
  if (vstreq(spec->dns_policy, "None")) {
    vpath cp = vp_child(path, "dnsConfig");
    validation_errors_add_required(errs, cp.s, "must provide `dnsConfig` when `dnsPolicy` is None");
  } else {
    vcheck_enum(errs, dp.s, spec->dns_policy, dns_policies, true);
  }
  if (spec->termination_grace_period_seconds && spec->termination_grace_period_seconds->value < 0) {
    vpath tp = vp_child(path, "terminationGracePeriodSeconds");
    validation_errors_add_invalid_int(errs, tp.s, spec->termination_grace_period_seconds->value,
                                      "must be greater than or equal to 0");
  }
  if (spec->active_deadline_seconds) {
    int64_t v = spec->active_deadline_seconds->value;
    vpath ap = vp_child(path, "activeDeadlineSeconds");
    if (v < 1 || v > 2147483647)
      validation_errors_add_invalid_int(errs, ap.s, v, "must be between 1 and 2147483647, inclusive");
  }
  vpath ns = vp_child(path, "nodeSelector");
  vcheck_labels(errs, ns.s, spec->node_selector, spec->n_node_selector);
  struct {
    const char *field, *value;
    validation_rule rule;
  } names[] = {
      {"serviceAccountName", spec->service_account_name, VALIDATION_DNS1123_SUBDOMAIN},
      {"nodeName", spec->node_name, VALIDATION_DNS1123_SUBDOMAIN},
      {"hostname", spec->hostname, VALIDATION_DNS1123_LABEL},
      {"subdomain", spec->subdomain, VALIDATION_DNS1123_LABEL},
      {"schedulerName", spec->scheduler_name, VALIDATION_DNS1123_SUBDOMAIN},
      {"priorityClassName", spec->priority_class_name, VALIDATION_DNS1123_SUBDOMAIN},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (vempty(names[i].value)) continue;
    vpath fp = vp_child(path, names[i].field);
    validation_check(errs, fp.s, names[i].rule, names[i].value);
  }
  check_affinity(errs, path, spec->affinity);
  vpath tp = vp_child(path, "tolerations");
  check_tolerations(errs, &tp, spec->tolerations, spec->n_tolerations);
}

void vcheck_pod_template(validation_errors *errs, const vpath *path, const Keel__Api__V1__PodTemplateSpec *t,
                         const vpod_opts *opts) {
  if (!t) {
    validation_errors_add_required(errs, path->s, NULL);
    return;
  }
  vpath mp = vp_child(path, "metadata");
  if (t->metadata) {
    vpath lp = vp_child(&mp, "labels"), ap = vp_child(&mp, "annotations");
    vcheck_labels(errs, lp.s, t->metadata->labels, t->metadata->n_labels);
    if (t->metadata->n_annotations) {
      vkv kv;
      if (vkv_collect(&kv, t->metadata->annotations, t->metadata->n_annotations)) {
        validation_annotations(errs, ap.s, kv.keys, kv.values, kv.n);
        vkv_free(&kv);
      }
    }
  }
  vpath sp = vp_child(path, "spec");
  vpod_opts o = {.restart_policies = pod_restart_policies_always};
  if (opts) o = *opts;
  vcheck_pod_spec(errs, &sp, t->spec, &o);
  if (t->spec && t->spec->active_deadline_seconds) {
    vpath ap = vp_child(&sp, "activeDeadlineSeconds");
    verr_forbidden(errs, ap.s, "activeDeadlineSeconds in ReplicaSet is not Supported");
  }
}

/* ---------------------------------------------------------------- update */

#define POD_UPDATABLE                                                                       \
  "pod updates may not change fields other than `spec.containers[*].image`, "               \
  "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only " \
  "additions to existing tolerations), `spec.terminationGracePeriodSeconds`"

static bool toleration_equal_but_seconds(const Keel__Api__V1__Toleration *a,
                                         const Keel__Api__V1__Toleration *b) {
  return vstreq(a->key, b->key) && vstreq(a->operator_, b->operator_) && vstreq(a->value, b->value) &&
         vstreq(a->effect, b->effect);
}

static void check_only_added_tolerations(validation_errors *errs, const Keel__Api__V1__PodSpec *spec,
                                         const Keel__Api__V1__PodSpec *old) {
  for (size_t i = 0; i < old->n_tolerations; i++) {
    const Keel__Api__V1__Toleration *o = old->tolerations[i];
    bool found = false;
    for (size_t j = 0; o && j < spec->n_tolerations && !found; j++)
      found = spec->tolerations[j] && toleration_equal_but_seconds(o, spec->tolerations[j]);
    if (o && !found) {
      verr_forbidden(errs, "spec.tolerations",
                     "existing toleration can not be modified except its tolerationSeconds");
      return;
    }
  }
}

/* A shallow copy of n containers with the images of old (when the counts
 * match; otherwise the arrays differ anyway). Caller frees *store and the result. */
static Keel__Api__V1__Container **with_old_images(Keel__Api__V1__Container *const *cs, size_t n,
                                                  Keel__Api__V1__Container *const *old, size_t n_old,
                                                  Keel__Api__V1__Container **store) {
  *store = NULL;
  if (n != n_old || n == 0) return NULL;
  Keel__Api__V1__Container *copies = calloc(n, sizeof *copies);
  Keel__Api__V1__Container **ptrs = calloc(n, sizeof *ptrs);
  if (!copies || !ptrs) {
    free(copies);
    free(ptrs);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    if (!cs[i] || !old[i]) {
      ptrs[i] = cs[i];
      continue;
    }
    copies[i] = *cs[i];
    copies[i].image = old[i]->image;
    ptrs[i] = &copies[i];
  }
  *store = copies;
  return ptrs;
}

static void check_pod_spec_update(validation_errors *errs, const Keel__Api__V1__PodSpec *spec,
                                  const Keel__Api__V1__PodSpec *old, bool binding) {
  if (!spec || !old) {
    if (spec != old) verr_forbidden(errs, "spec", POD_UPDATABLE);
    return;
  }
  bool node_name_ok = vstreq(spec->node_name, old->node_name) || (binding && vempty(old->node_name));
  if (!node_name_ok) {
    if (vempty(old->node_name))
      verr_forbidden(errs, "spec.nodeName", "may not be set by an update: bind the pod (Pods/Bind)");
    else
      validation_errors_add_invalid(errs, "spec.nodeName", spec->node_name, "field is immutable");
  }
  if (old->active_deadline_seconds) {
    if (!spec->active_deadline_seconds)
      validation_errors_add_invalid(errs, "spec.activeDeadlineSeconds", "nil",
                                    "must not update from a positive integer to nil value");
    else if (spec->active_deadline_seconds->value > old->active_deadline_seconds->value)
      validation_errors_add_invalid_int(errs, "spec.activeDeadlineSeconds",
                                        spec->active_deadline_seconds->value,
                                        "must be less than or equal to previous value");
  }
  check_only_added_tolerations(errs, spec, old);

  Keel__Api__V1__PodSpec munged = *spec;
  munged.node_name = old->node_name;
  munged.active_deadline_seconds = old->active_deadline_seconds;
  munged.termination_grace_period_seconds = old->termination_grace_period_seconds;
  munged.n_tolerations = old->n_tolerations;
  munged.tolerations = old->tolerations;
  Keel__Api__V1__Container *cstore, *istore;
  Keel__Api__V1__Container **cs =
      with_old_images(spec->containers, spec->n_containers, old->containers, old->n_containers, &cstore);
  Keel__Api__V1__Container **is = with_old_images(spec->init_containers, spec->n_init_containers,
                                                  old->init_containers, old->n_init_containers, &istore);
  if (cs) munged.containers = cs;
  if (is) munged.init_containers = is;
  if (!vmsg_equal(&munged.base, &old->base)) verr_forbidden(errs, "spec", POD_UPDATABLE);
  free(cs);
  free(cstore);
  free(is);
  free(istore);
}

/* ---------------------------------------------------------------- status */

static void check_pod_status(validation_errors *errs, const Keel__Api__V1__PodStatus *st,
                             const Keel__Api__V1__PodStatus *old) {
  static const char *const phases[] = {"Pending", "Running", "Succeeded", "Failed", "Unknown", NULL};
  if (!st) return;
  if (!vempty(st->phase)) vcheck_enum(errs, "status.phase", st->phase, phases, false);
  if (old && (vstreq(old->phase, "Succeeded") || vstreq(old->phase, "Failed")) &&
      !vstreq(st->phase, old->phase))
    verr_forbidden(errs, "status.phase", "may not transition from a terminal phase (Succeeded, Failed)");
  if (!vempty(st->pod_ip) && !vis_ip(st->pod_ip))
    validation_errors_add_invalid(errs, "status.podIP", st->pod_ip, "must be a valid IP address");
  if (!vempty(st->host_ip) && !vis_ip(st->host_ip))
    validation_errors_add_invalid(errs, "status.hostIP", st->host_ip, "must be a valid IP address");
  vpath ips = vp_root("status.podIPs");
  for (size_t i = 0; i < st->n_pod_ips; i++) {
    vpath ip = vp_index(&ips, i);
    vpath f = vp_child(&ip, "ip");
    const char *a = st->pod_ips[i] ? st->pod_ips[i]->ip : "";
    if (!vis_ip(a)) {
      validation_errors_add_invalid(errs, f.s, a, "must be a valid IP address");
    } else {
      for (size_t j = 0; j < i; j++)
        if (st->pod_ips[j] && vstreq(st->pod_ips[j]->ip, a)) {
          verr_duplicate(errs, f.s, a);
          break;
        }
    }
  }
  if (st->n_pod_ips > 0 && !vempty(st->pod_ip) && st->pod_ips[0] && !vstreq(st->pod_ips[0]->ip, st->pod_ip))
    validation_errors_add_invalid(errs, "status.podIPs[0].ip", st->pod_ips[0]->ip, "must match `podIP`");
  if (!vempty(st->nominated_node_name))
    validation_dns1123_subdomain(errs, "status.nominatedNodeName", st->nominated_node_name);
}

/* ---------------------------------------------------------------- pod */

void vcheck_pod(validation_errors *errs, const Keel__Api__V1__Pod *pod, const Keel__Api__V1__Pod *old,
                const char *subresource) {
  vcheck_object_meta(errs, pod->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, pod->metadata, old->metadata);
  if (vstreq(subresource, "status")) {
    /* The apiserver keeps the stored spec; only status is the client's. */
    check_pod_status(errs, pod->status, old ? old->status : NULL);
    return;
  }
  vpath sp = vp_root("spec");
  vcheck_pod_spec(errs, &sp, pod->spec, NULL);
  if (old) check_pod_spec_update(errs, pod->spec, old->spec, vstreq(subresource, "binding"));
}
