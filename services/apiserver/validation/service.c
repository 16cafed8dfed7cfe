/* services/apiserver/validation/service.c — Services and Endpoints, after
 * Kubernetes' ValidateService, ValidateServiceUpdate and ValidateEndpoints.
 *
 * Keel serves ClusterIP and NodePort services over IPv4; LoadBalancer and
 * ExternalName are "Unsupported value". The nodePort range is the apiserver's
 * (api_validation_set_node_port_range). On update an empty clusterIP means
 * "keep what was allocated" (the apiserver copies it, as Kubernetes' service
 * REST update does); a different non-empty one is rejected. */
#include <stdio.h>
#include <string.h>

#include "services/apiserver/validation/internal.h"

static const char *const protocols[] = {"TCP", "UDP", "SCTP", NULL};

static void check_ports(validation_errors *errs, const Keel__Api__V1__ServiceSpec *s, bool node_port_type) {
  vpath base = vp_root("spec.ports");
  int min, max;
  vnode_port_range(&min, &max);
  for (size_t i = 0; i < s->n_ports; i++) {
    const Keel__Api__V1__ServicePort *p = s->ports[i];
    if (!p) continue;
    vpath ip = vp_index(&base, i);
    vpath np = vp_child(&ip, "name"), pp = vp_child(&ip, "port"), prp = vp_child(&ip, "protocol"),
          tp = vp_child(&ip, "targetPort"), nodep = vp_child(&ip, "nodePort"),
          ap = vp_child(&ip, "appProtocol");
    if (vempty(p->name)) {
      if (s->n_ports > 1) validation_errors_add_required(errs, np.s, NULL);
    } else if (validation_dns1123_label(errs, np.s, p->name)) {
      for (size_t j = 0; j < i; j++)
        if (s->ports[j] && vstreq(s->ports[j]->name, p->name)) {
          verr_duplicate(errs, np.s, p->name);
          break;
        }
    }
    validation_port_number(errs, pp.s, p->port);
    bool proto_ok = vcheck_enum(errs, prp.s, p->protocol, protocols, true);
    vcheck_port_num_or_name(errs, tp.s, p->target_port);
    if (!vempty(p->app_protocol)) validation_qualified_name(errs, ap.s, p->app_protocol);
    if (p->node_port != 0) {
      if (!node_port_type) {
        verr_forbidden(errs, nodep.s, "may not be used when `type` is 'ClusterIP'");
      } else if (p->node_port < min || p->node_port > max) {
        char detail[128];
        snprintf(detail, sizeof detail,
                 "provided port is not in the valid range. The range of valid ports is %d-%d", min, max);
        validation_errors_add_invalid_int(errs, nodep.s, p->node_port, detail);
      } else {
        for (size_t j = 0; j < i; j++)
          if (s->ports[j] && s->ports[j]->node_port == p->node_port &&
              vstreq(s->ports[j]->protocol, p->protocol)) {
            verr_duplicate_int(errs, nodep.s, p->node_port);
            break;
          }
      }
    }
    if (proto_ok && p->port >= 1 && p->port <= 65535) {
      for (size_t j = 0; j < i; j++)
        if (s->ports[j] && s->ports[j]->port == p->port && vstreq(s->ports[j]->protocol, p->protocol)) {
          char text[48];
          snprintf(text, sizeof text, "%d/%.8s", p->port, vstr(p->protocol));
          verr_duplicate(errs, ip.s, text);
          break;
        }
    }
  }
}

static void check_cluster_ips(validation_errors *errs, const Keel__Api__V1__ServiceSpec *s,
                              bool node_port_type) {
  bool headless = vstreq(s->cluster_ip, "None");
  if (headless) {
    if (node_port_type)
      validation_errors_add_invalid(errs, "spec.clusterIP", s->cluster_ip,
                                    "may not be set to 'None' for NodePort services");
  } else if (!vempty(s->cluster_ip) && !vis_ipv4(s->cluster_ip)) {
    validation_errors_add_invalid(errs, "spec.clusterIP", s->cluster_ip,
                                  "must be a valid IPv4 address (e.g. 10.9.8.7)");
  }
  vpath base = vp_root("spec.clusterIPs");
  if (s->n_cluster_ips > 1) {
    vpath p = vp_index(&base, 1);
    verr_forbidden(errs, p.s, "Keel services are single-stack IPv4: at most one cluster IP");
  }
  if (s->n_cluster_ips > 0) {
    vpath p = vp_index(&base, 0);
    const char *ip0 = s->cluster_ips[0];
    if (!vempty(s->cluster_ip) && !vstreq(ip0, s->cluster_ip))
      validation_errors_add_invalid(errs, p.s, ip0, "must match `clusterIP`");
    else if (vempty(s->cluster_ip))
      validation_errors_add_required(errs, "spec.clusterIP", "must be set when `clusterIPs` is set");
  }
}

static void check_service_spec(validation_errors *errs, const Keel__Api__V1__ServiceSpec *s) {
  static const char *const types[] = {"ClusterIP", "NodePort", NULL};
  static const char *const affinities[] = {"None", "ClientIP", NULL};
  static const char *const policies[] = {"Cluster", "Local", NULL};
  static const char *const families[] = {"IPv4", NULL};
  static const char *const family_policies[] = {"SingleStack", NULL};
  if (!s) {
    validation_errors_add_required(errs, "spec", NULL);
    return;
  }
  vcheck_enum(errs, "spec.type", s->type, types, true);
  bool node_port_type = vstreq(s->type, "NodePort");
  if (s->n_ports == 0 && !vstreq(s->cluster_ip, "None"))
    validation_errors_add_required(errs, "spec.ports", NULL);
  check_ports(errs, s, node_port_type);
  check_cluster_ips(errs, s, node_port_type);
  vcheck_labels(errs, "spec.selector", s->selector, s->n_selector);
  vcheck_enum(errs, "spec.sessionAffinity", s->session_affinity, affinities, true);
  if (node_port_type)
    vcheck_enum(errs, "spec.externalTrafficPolicy", s->external_traffic_policy, policies, true);
  else if (!vempty(s->external_traffic_policy))
    validation_errors_add_invalid(errs, "spec.externalTrafficPolicy", s->external_traffic_policy,
                                  "may only be set when `type` is 'NodePort'");
  vcheck_enum(errs, "spec.internalTrafficPolicy", s->internal_traffic_policy, policies, true);
  vpath ext = vp_root("spec.externalIPs");
  for (size_t i = 0; i < s->n_external_ips; i++) {
    vpath p = vp_index(&ext, i);
    if (!vis_ip(s->external_ips[i]))
      validation_errors_add_invalid(errs, p.s, s->external_ips[i], "must be a valid IP address");
  }
  vpath fam = vp_root("spec.ipFamilies");
  for (size_t i = 0; i < s->n_ip_families; i++) {
    vpath p = vp_index(&fam, i);
    vcheck_enum(errs, p.s, s->ip_families[i], families, true);
  }
  if (!vempty(s->ip_family_policy))
    vcheck_enum(errs, "spec.ipFamilyPolicy", s->ip_family_policy, family_policies, false);
}

static void check_service_status(validation_errors *errs, const Keel__Api__V1__ServiceStatus *st) {
  if (!st || !st->load_balancer) return;
  vpath base = vp_root("status.loadBalancer.ingress");
  for (size_t i = 0; i < st->load_balancer->n_ingress; i++) {
    const Keel__Api__V1__LoadBalancerIngress *in = st->load_balancer->ingress[i];
    if (!in) continue;
    vpath p = vp_index(&base, i);
    vpath ipp = vp_child(&p, "ip"), hp = vp_child(&p, "hostname");
    if (!vempty(in->ip) && !vis_ip(in->ip))
      validation_errors_add_invalid(errs, ipp.s, in->ip, "must be a valid IP address");
    if (!vempty(in->hostname)) validation_dns1123_subdomain(errs, hp.s, in->hostname);
  }
}

void vcheck_service(validation_errors *errs, const Keel__Api__V1__Service *svc,
                    const Keel__Api__V1__Service *old, const char *subresource) {
  vcheck_object_meta(errs, svc->metadata, true, VNAME_DNS1035_LABEL);
  if (old) vcheck_object_meta_update(errs, svc->metadata, old->metadata);
  if (vstreq(subresource, "status")) {
    check_service_status(errs, svc->status);
    return;
  }
  check_service_spec(errs, svc->spec);
  if (old && old->spec && svc->spec) {
    const char *was = old->spec->cluster_ip, *now = svc->spec->cluster_ip;
    if (!vempty(was) && !vempty(now) && !vstreq(was, now))
      validation_errors_add_invalid(errs, "spec.clusterIP", now, "field is immutable");
  }
}

/* ---------------------------------------------------------------- endpoints */

static void check_endpoint_address(validation_errors *errs, const vpath *path,
                                   const Keel__Api__V1__EndpointAddress *a) {
  vpath ip = vp_child(path, "ip"), hp = vp_child(path, "hostname"), np = vp_child(path, "nodeName");
  if (!vis_ip(a->ip)) validation_errors_add_invalid(errs, ip.s, a->ip, "must be a valid IP address");
  if (!vempty(a->hostname)) validation_dns1123_label(errs, hp.s, a->hostname);
  if (a->node_name && !vempty(a->node_name->value))
    validation_dns1123_subdomain(errs, np.s, a->node_name->value);
}

void vcheck_endpoints(validation_errors *errs, const Keel__Api__V1__Endpoints *ep,
                      const Keel__Api__V1__Endpoints *old, const char *subresource) {
  (void)subresource;
  vcheck_object_meta(errs, ep->metadata, true, VNAME_DNS1123_SUBDOMAIN);
  if (old) vcheck_object_meta_update(errs, ep->metadata, old->metadata);
  vpath base = vp_root("subsets");
  for (size_t i = 0; i < ep->n_subsets; i++) {
    const Keel__Api__V1__EndpointSubset *ss = ep->subsets[i];
    if (!ss) continue;
    vpath sp = vp_index(&base, i);
    if (ss->n_addresses == 0 && ss->n_not_ready_addresses == 0)
      validation_errors_add_required(errs, sp.s, "must specify `addresses` or `notReadyAddresses`");
    vpath ap = vp_child(&sp, "addresses"), nrp = vp_child(&sp, "notReadyAddresses"),
          pp = vp_child(&sp, "ports");
    for (size_t j = 0; j < ss->n_addresses; j++) {
      vpath p = vp_index(&ap, j);
      if (ss->addresses[j]) check_endpoint_address(errs, &p, ss->addresses[j]);
    }
    for (size_t j = 0; j < ss->n_not_ready_addresses; j++) {
      vpath p = vp_index(&nrp, j);
      if (ss->not_ready_addresses[j]) check_endpoint_address(errs, &p, ss->not_ready_addresses[j]);
    }
    for (size_t j = 0; j < ss->n_ports; j++) {
      const Keel__Api__V1__EndpointPort *port = ss->ports[j];
      if (!port) continue;
      vpath p = vp_index(&pp, j);
      vpath np = vp_child(&p, "name"), portp = vp_child(&p, "port"), prp = vp_child(&p, "protocol"),
            app = vp_child(&p, "appProtocol");
      if (vempty(port->name)) {
        if (ss->n_ports > 1) validation_errors_add_required(errs, np.s, NULL);
      } else if (validation_dns1123_label(errs, np.s, port->name)) {
        for (size_t k = 0; k < j; k++)
          if (ss->ports[k] && vstreq(ss->ports[k]->name, port->name)) {
            verr_duplicate(errs, np.s, port->name);
            break;
          }
      }
      validation_port_number(errs, portp.s, port->port);
      vcheck_enum(errs, prp.s, port->protocol, protocols, true);
      if (!vempty(port->app_protocol)) validation_qualified_name(errs, app.s, port->app_protocol);
    }
  }
}
