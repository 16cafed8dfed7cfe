/* services/apiserver/validation/cluster.c — Nodes, Namespaces, Events and
 * Leases, after Kubernetes' ValidateNode, ValidateNamespace, the core/v1 event
 * rules and ValidateLease. */
#include <stdio.h>
#include <string.h>

#include "common/kinds/kinds.h"
#include "services/apiserver/validation/internal.h"

/* ---------------------------------------------------------------- node */

static void check_taints(validation_errors *errs, const Keel__Api__V1__NodeSpec *s) {
  static const char *const effects[] = {"NoSchedule", "PreferNoSchedule", "NoExecute", NULL};
  vpath base = vp_root("spec.taints");
  for (size_t i = 0; i < s->n_taints; i++) {
    const Keel__Api__V1__Taint *t = s->taints[i];
    if (!t) continue;
    vpath ip = vp_index(&base, i);
    vpath kp = vp_child(&ip, "key"), vp = vp_child(&ip, "value"), ep = vp_child(&ip, "effect");
    validation_qualified_name(errs, kp.s, t->key);
    if (!vempty(t->value)) validation_label_value(errs, vp.s, t->value);
    if (!vcheck_enum(errs, ep.s, t->effect, effects, true)) continue;
    for (size_t j = 0; j < i; j++) {
      const Keel__Api__V1__Taint *o = s->taints[j];
      if (o && vstreq(o->key, t->key) && vstreq(o->effect, t->effect)) {
        char text[200], q[160];
        snprintf(text, sizeof text, "%.100s:%s", vstr(t->key), t->effect);
        validation_errors_addf(errs, "%s: Duplicate value: %s: taints must be unique by key and effect pair",
                               ip.s, vquote(q, sizeof q, text));
        break;
      }
    }
  }
}

static void check_resource_map(validation_errors *errs, const char *path, ProtobufCMessage *const *entries,
                               size_t n) {
  vpath base = vp_root(path);
  for (size_t i = 0; i < n; i++) {
    const Keel__Api__V1__NodeStatus__CapacityEntry *e =
        (const Keel__Api__V1__NodeStatus__CapacityEntry *)entries[i];
    if (!e) continue;
    vpath kp = vp_key(&base, e->key);
    if (validation_qualified_name(errs, kp.s, e->key)) vcheck_quantity(errs, kp.s, e->value, NULL);
  }
}

static void check_node_status(validation_errors *errs, const Keel__Api__V1__NodeStatus *st) {
  if (!st) return;
  check_resource_map(errs, "status.capacity", (ProtobufCMessage *const *)st->capacity, st->n_capacity);
  check_resource_map(errs, "status.allocatable", (ProtobufCMessage *const *)st->allocatable,
                     st->n_allocatable);
  vpath base = vp_root("status.addresses");
  for (size_t i = 0; i < st->n_addresses; i++) {
    const Keel__Api__V1__NodeAddress *a = st->addresses[i];
    if (!a) continue;
    vpath ip = vp_index(&base, i);
    vpath ap = vp_child(&ip, "address");
    bool is_ip_type = vstreq(a->type, "InternalIP") || vstreq(a->type, "ExternalIP");
    if (is_ip_type && !vis_ip(a->address))
      validation_errors_add_invalid(errs, ap.s, a->address, "must be a valid IP address");
  }
}

void vcheck_node(validation_errors *errs, const Keel__Api__V1__Node *node, const Keel__Api__V1__Node *old,
                 const char *subresource) {
  vcheck_object_meta(errs, node->metadata, false, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, node->metadata, old->metadata);
  check_node_status(errs, node->status);
  if (vstreq(subresource, "status")) return;
  const Keel__Api__V1__NodeSpec *s = node->spec;
  if (!s) return;
  check_taints(errs, s);
  if (!vempty(s->pod_cidr) && !vis_cidr(s->pod_cidr))
    validation_errors_add_invalid(errs, "spec.podCIDR", s->pod_cidr, "must be a valid CIDR");
  vpath cidrs = vp_root("spec.podCIDRs");
  for (size_t i = 0; i < s->n_pod_cidrs; i++) {
    vpath p = vp_index(&cidrs, i);
    if (!vis_cidr(s->pod_cidrs[i]))
      validation_errors_add_invalid(errs, p.s, s->pod_cidrs[i], "must be a valid CIDR");
  }
  if (s->n_pod_cidrs > 0 && !vempty(s->pod_cidr) && vis_cidr(s->pod_cidrs[0]) &&
      !vstreq(s->pod_cidrs[0], s->pod_cidr))
    validation_errors_add_invalid(errs, "spec.podCIDRs[0]", s->pod_cidrs[0], "must match `podCIDR`");
  if (old && old->spec && !vempty(old->spec->pod_cidr) && !vstreq(old->spec->pod_cidr, s->pod_cidr))
    verr_forbidden(errs, "spec.podCIDR",
                   "node updates may not change podCIDR except from \"\" to a valid value");
}

/* ---------------------------------------------------------------- namespace */

void vcheck_namespace(validation_errors *errs, const Keel__Api__V1__Namespace *ns,
                      const Keel__Api__V1__Namespace *old, const char *subresource) {
  static const char *const phases[] = {"Active", "Terminating", NULL};
  vcheck_object_meta(errs, ns->metadata, false, VNAME_DNS1123_LABEL);
  if (old) vcheck_object_meta_update(errs, ns->metadata, old->metadata);
  if (ns->status && !vempty(ns->status->phase))
    vcheck_enum(errs, "status.phase", ns->status->phase, phases, false);
  if (vstreq(subresource, "status") || !ns->spec) return;
  vpath base = vp_root("spec.finalizers");
  for (size_t i = 0; i < ns->spec->n_finalizers; i++) {
    vpath p = vp_index(&base, i);
    const char *f = ns->spec->finalizers[i];
    if (!validation_qualified_name(errs, p.s, f)) continue;
    /* Without a domain only Kubernetes' own finalizer is meaningful. */
    if (!strchr(f, '/') && strcmp(f, "kubernetes") != 0)
      validation_errors_add_invalid(errs, p.s, f,
                                    "name is neither a standard finalizer name nor is it fully qualified");
  }
}

/* ---------------------------------------------------------------- event */

void vcheck_event(validation_errors *errs, const Keel__Api__V1__Event *ev, const Keel__Api__V1__Event *old,
                  const char *subresource) {
  static const char *const types[] = {"Normal", "Warning", NULL};
  (void)subresource;
  vcheck_object_meta(errs, ev->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, ev->metadata, old->metadata);
  const Keel__Api__V1__ObjectReference *io = ev->involved_object;
  static const Keel__Api__V1__ObjectReference none = KEEL__API__V1__OBJECT_REFERENCE__INIT;
  if (!io) io = &none;
  if (vempty(io->kind)) validation_errors_add_required(errs, "involvedObject.kind", NULL);
  if (vempty(io->name)) validation_errors_add_required(errs, "involvedObject.name", NULL);
  const char *ev_ns = ev->metadata ? vstr(ev->metadata->namespace_) : "";
  if (!vempty(io->namespace_)) {
    const api_kind *k = vempty(io->kind) ? NULL : api_kind_by_name(io->kind);
    if (k && !k->namespaced)
      validation_errors_add_invalid(errs, "involvedObject.namespace", io->namespace_,
                                    "not allowed for a cluster-scoped object");
    else if (strcmp(io->namespace_, ev_ns) != 0)
      validation_errors_add_invalid(errs, "involvedObject.namespace", io->namespace_,
                                    "does not match event.namespace");
  } else {
    /* Events about cluster-scoped objects live in "default", as in Kubernetes. */
    const api_kind *k = vempty(io->kind) ? NULL : api_kind_by_name(io->kind);
    if (k && k->namespaced)
      validation_errors_add_required(errs, "involvedObject.namespace", "the involved object is namespaced");
    else if (ev_ns[0] && strcmp(ev_ns, "default") != 0)
      validation_errors_add_invalid(errs, "involvedObject.namespace", io->namespace_,
                                    "does not match event.namespace");
  }
  if (!vempty(ev->type)) vcheck_enum(errs, "type", ev->type, types, false);
  if (ev->count < 0)
    validation_errors_add_invalid_int(errs, "count", ev->count, "must be greater than or equal to 0");
}

/* ---------------------------------------------------------------- lease */

void vcheck_lease(validation_errors *errs, const Keel__Api__V1__Lease *lease, const Keel__Api__V1__Lease *old,
                  const char *subresource) {
  (void)subresource;
  vcheck_object_meta(errs, lease->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, lease->metadata, old->metadata);
  const Keel__Api__V1__LeaseSpec *s = lease->spec;
  if (!s) return;
  if (s->lease_duration_seconds && s->lease_duration_seconds->value <= 0)
    validation_errors_add_invalid_int(errs, "spec.leaseDurationSeconds", s->lease_duration_seconds->value,
                                      "must be greater than 0");
  if (s->lease_transitions && s->lease_transitions->value < 0)
    validation_errors_add_invalid_int(errs, "spec.leaseTransitions", s->lease_transitions->value,
                                      "must be greater than or equal to 0");
}
