/* services/apiserver/validation/container.c — one container of a pod spec:
 * name, image, ports, env, resources, volume mounts and probes, as
 * Kubernetes' validateContainers and its helpers word them.
 *
 * Pod-wide rules (unique names across init and app containers, host ports,
 * volume names) live in pod.c, which hands each container the context it
 * needs through vcontainer_ctx. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/quantity.h"
#include "services/apiserver/validation/internal.h"

static const char *const protocols[] = {"TCP", "UDP", "SCTP", NULL};

/* ---------------------------------------------------------------- shared */

void vcheck_port_num_or_name(validation_errors *errs, const char *path,
                             const Keel__Api__V1__IntOrString *port) {
  if (!port) {
    validation_errors_add_required(errs, path, NULL);
    return;
  }
  if (port->type == 0)
    validation_port_number(errs, path, port->int_val);
  else if (port->type == 1)
    validation_port_name(errs, path, port->str_val);
  else
    validation_errors_add_invalid_int(errs, path, port->type, "must be an integer or a string");
}

bool vcheck_quantity(validation_errors *errs, const char *path, const Keel__Api__V1__Quantity *q,
                     quantity *out) {
  keel_error qerr = {0};
  quantity tmp;
  const char *text = q ? vstr(q->string) : "";
  if (quantity_parse(text, 0, out ? out : &tmp, &qerr) == 0) return true;
  /* quantity_parse words it as `quantity "<text>": <reason>`: keep the reason,
   * the value is quoted by the Invalid value error itself. */
  const char *reason = qerr.message, *p = qerr.message;
  while ((p = strstr(p, "\": ")) != NULL) reason = (p += 3);
  validation_errors_add_invalid(errs, path, text, reason);
  return false;
}

/* ---------------------------------------------------------------- resources */

static bool has_prefix(const char *s, const char *prefix) { return strncmp(s, prefix, strlen(prefix)) == 0; }

/* cpu, memory, ephemeral-storage, hugepages-<size>: what a container may ask
 * for without a domain. */
static bool standard_container_resource(const char *name) {
  return strcmp(name, "cpu") == 0 || strcmp(name, "memory") == 0 || strcmp(name, "ephemeral-storage") == 0 ||
         has_prefix(name, "hugepages-");
}

/* Kubernetes' IsNativeResource: no domain, or a kubernetes.io one. */
static bool native_resource(const char *name) {
  return !strchr(name, '/') || strstr(name, "kubernetes.io/") != NULL;
}

/* Overcommit (request below limit) is allowed for native resources other than
 * hugepages; extended resources and hugepages need request == limit. */
static bool overcommit_allowed(const char *name) {
  return native_resource(name) && !has_prefix(name, "hugepages-");
}

static void check_resource_name(validation_errors *errs, const char *path, const char *name) {
  if (!validation_qualified_name(errs, path, name)) return;
  if (!strchr(name, '/')) {
    if (!standard_container_resource(name))
      validation_errors_add_invalid(errs, path, name, "must be a standard resource for containers");
  } else if (!native_resource(name) && has_prefix(name, "requests.")) {
    validation_errors_add_invalid(errs, path, name, "doesn't follow extended resource name standard");
  }
}

/* One map (limits or requests): names and quantities; parsed values are
 * returned in vals (NULL entries for bad ones) for the cross-check. */
static void check_resource_list(validation_errors *errs, const vpath *path, ProtobufCMessage *const *entries,
                                size_t n, quantity *vals, bool *ok) {
  for (size_t i = 0; i < n; i++) {
    ok[i] = false;
    const Keel__Api__V1__ResourceRequirements__LimitsEntry *e =
        (const Keel__Api__V1__ResourceRequirements__LimitsEntry *)entries[i];
    if (!e) continue;
    vpath kp = vp_key(path, e->key);
    size_t before = validation_errors_count(errs);
    check_resource_name(errs, kp.s, vstr(e->key));
    if (vcheck_quantity(errs, kp.s, e->value, &vals[i]) && validation_errors_count(errs) == before) {
      if (!native_resource(vstr(e->key))) { /* extended resources come in whole units */
        int64_t milli = 0;
        if (quantity_milli_value(&vals[i], &milli) == 0 && milli % 1000 != 0) {
          validation_errors_add_invalid(errs, kp.s, e->value->string, "must be an integer");
          continue;
        }
      }
      ok[i] = true;
    }
    for (size_t j = 0; j < i; j++) {
      const Keel__Api__V1__ResourceRequirements__LimitsEntry *o =
          (const Keel__Api__V1__ResourceRequirements__LimitsEntry *)entries[j];
      if (o && vstreq(o->key, e->key)) {
        verr_duplicate(errs, kp.s, e->key);
        break;
      }
    }
  }
}

static void check_resources(validation_errors *errs, const vpath *path,
                            const Keel__Api__V1__ResourceRequirements *r) {
  if (!r) return;
  vpath lp = vp_child(path, "limits"), rp = vp_child(path, "requests");
  size_t nl = r->n_limits, nr = r->n_requests;
  quantity *lv = calloc(nl + 1, sizeof *lv), *rv = calloc(nr + 1, sizeof *rv);
  bool *lok = calloc(nl + 1, sizeof *lok), *rok = calloc(nr + 1, sizeof *rok);
  if (!lv || !rv || !lok || !rok) {
    validation_errors_addf(errs, "%s: Internal error: out of memory", path->s);
    goto out;
  }
  check_resource_list(errs, &lp, (ProtobufCMessage *const *)r->limits, nl, lv, lok);
  check_resource_list(errs, &rp, (ProtobufCMessage *const *)r->requests, nr, rv, rok);
  for (size_t i = 0; i < nr; i++) {
    if (!rok[i]) continue;
    const char *name = r->requests[i]->key;
    vpath kp = vp_key(&rp, name);
    size_t j = 0;
    while (j < nl && !(r->limits[j] && vstreq(r->limits[j]->key, name))) j++;
    if (j == nl) {
      if (!overcommit_allowed(name)) {
        vpath lk = vp_key(&lp, name);
        validation_errors_add_required(errs, lk.s, "Limit must be set for non overcommitable resources");
      }
      continue;
    }
    if (!lok[j]) continue;
    char detail[160], lim[QUANTITY_STRING_MAX];
    int c = quantity_cmp(&rv[i], &lv[j]);
    quantity_string(&lv[j], lim, sizeof lim);
    if (c != 0 && !overcommit_allowed(name)) {
      snprintf(detail, sizeof detail, "must be equal to %.64s limit of %s", name, lim);
      validation_errors_add_invalid(errs, kp.s, r->requests[i]->value->string, detail);
    } else if (c > 0) {
      snprintf(detail, sizeof detail, "must be less than or equal to %.64s limit of %s", name, lim);
      validation_errors_add_invalid(errs, kp.s, r->requests[i]->value->string, detail);
    }
  }
out:
  free(lv);
  free(rv);
  free(lok);
  free(rok);
}

/* ---------------------------------------------------------------- ports */

static void check_ports(validation_errors *errs, const vpath *path, const Keel__Api__V1__Container *c) {
  vpath base = vp_child(path, "ports");
  for (size_t i = 0; i < c->n_ports; i++) {
    const Keel__Api__V1__ContainerPort *p = c->ports[i];
    if (!p) continue;
    vpath ip = vp_index(&base, i);
    if (!vempty(p->name)) {
      vpath np = vp_child(&ip, "name");
      if (validation_port_name(errs, np.s, p->name)) {
        for (size_t j = 0; j < i; j++)
          if (c->ports[j] && vstreq(c->ports[j]->name, p->name)) {
            verr_duplicate(errs, np.s, p->name);
            break;
          }
      }
    }
    vpath cp = vp_child(&ip, "containerPort");
    if (p->container_port == 0)
      validation_errors_add_required(errs, cp.s, NULL);
    else
      validation_port_number(errs, cp.s, p->container_port);
    if (p->host_port != 0) {
      vpath hp = vp_child(&ip, "hostPort");
      validation_port_number(errs, hp.s, p->host_port);
    }
    vpath pp = vp_child(&ip, "protocol");
    vcheck_enum(errs, pp.s, p->protocol, protocols, true);
    if (!vempty(p->host_ip) && !vis_ip(p->host_ip)) {
      vpath hp = vp_child(&ip, "hostIP");
      validation_errors_add_invalid(errs, hp.s, p->host_ip, "must be a valid IP address");
    }
  }
}

/* ---------------------------------------------------------------- env */

static bool valid_field_path(const char *fp) {
  static const char *const exact[] = {"metadata.name", "metadata.namespace",      "metadata.uid",
                                      "spec.nodeName", "spec.serviceAccountName", "status.hostIP",
                                      "status.podIP",  "status.podIPs",           NULL};
  for (size_t i = 0; exact[i]; i++)
    if (strcmp(fp, exact[i]) == 0) return true;
  /* metadata.labels['key'] and metadata.annotations['key'] */
  static const char *const subscripted[] = {"metadata.labels['", "metadata.annotations['", NULL};
  for (size_t i = 0; subscripted[i]; i++) {
    size_t pl = strlen(subscripted[i]), l = strlen(fp);
    if (l > pl + 2 && strncmp(fp, subscripted[i], pl) == 0 && strcmp(fp + l - 2, "']") == 0) return true;
  }
  return false;
}

static void check_key_ref(validation_errors *errs, const vpath *path, const Keel__Api__V1__KeyRef *ref) {
  vpath np = vp_child(path, "name"), kp = vp_child(path, "key");
  if (vempty(ref->name)) validation_errors_add_required(errs, np.s, NULL);
  if (vempty(ref->key)) {
    validation_errors_add_required(errs, kp.s, NULL);
    return;
  }
  /* A ConfigMap/Secret key: [-._a-zA-Z0-9]+, at most 253 bytes. */
  bool ok = strlen(ref->key) <= 253;
  for (const char *p = ref->key; *p && ok; p++)
    ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
         *p == '.' || *p == '_';
  if (!ok)
    validation_errors_add_invalid(
        errs, kp.s, ref->key, "a valid config key must consist of alphanumeric characters, '-', '_' or '.'");
}

static void check_env_source(validation_errors *errs, const vpath *path,
                             const Keel__Api__V1__EnvVarSource *src) {
  int n = (src->field_ref != NULL) + (src->resource_field_ref != NULL) + (src->config_map_key_ref != NULL) +
          (src->secret_key_ref != NULL);
  if (n == 0) {
    validation_errors_add_invalid(
        errs, path->s, "",
        "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`");
    return;
  }
  if (n > 1) {
    validation_errors_add_invalid(errs, path->s, "", "may not have more than one field specified at a time");
    return;
  }
  if (src->field_ref) {
    vpath fr = vp_child(path, "fieldRef");
    vpath av = vp_child(&fr, "apiVersion"), fp = vp_child(&fr, "fieldPath");
    if (vempty(src->field_ref->api_version)) validation_errors_add_required(errs, av.s, NULL);
    if (vempty(src->field_ref->field_path)) {
      validation_errors_add_required(errs, fp.s, NULL);
    } else if (!valid_field_path(src->field_ref->field_path)) {
      static const char *const supported[] = {"metadata.annotations",
                                              "metadata.labels",
                                              "metadata.name",
                                              "metadata.namespace",
                                              "metadata.uid",
                                              "spec.nodeName",
                                              "spec.serviceAccountName",
                                              "status.hostIP",
                                              "status.podIP",
                                              "status.podIPs",
                                              NULL};
      verr_unsupported(errs, fp.s, src->field_ref->field_path, supported);
    }
  }
  if (src->resource_field_ref) {
    static const char *const resources[] = {"limits.cpu",
                                            "limits.ephemeral-storage",
                                            "limits.memory",
                                            "requests.cpu",
                                            "requests.ephemeral-storage",
                                            "requests.memory",
                                            NULL};
    vpath rf = vp_child(path, "resourceFieldRef");
    vpath rp = vp_child(&rf, "resource");
    vcheck_enum(errs, rp.s, src->resource_field_ref->resource, resources, true);
    if (src->resource_field_ref->divisor && !vempty(src->resource_field_ref->divisor->string)) {
      vpath dp = vp_child(&rf, "divisor");
      vcheck_quantity(errs, dp.s, src->resource_field_ref->divisor, NULL);
    }
  }
  if (src->config_map_key_ref) {
    vpath p = vp_child(path, "configMapKeyRef");
    check_key_ref(errs, &p, src->config_map_key_ref);
  }
  if (src->secret_key_ref) {
    vpath p = vp_child(path, "secretKeyRef");
    check_key_ref(errs, &p, src->secret_key_ref);
  }
}

static void check_env(validation_errors *errs, const vpath *path, const Keel__Api__V1__Container *c) {
  vpath base = vp_child(path, "env");
  for (size_t i = 0; i < c->n_env; i++) {
    const Keel__Api__V1__EnvVar *e = c->env[i];
    if (!e) continue;
    vpath ip = vp_index(&base, i);
    vpath np = vp_child(&ip, "name");
    if (vempty(e->name))
      validation_errors_add_required(errs, np.s, NULL);
    else
      validation_env_var_name(errs, np.s, e->name);
    if (e->value_from) {
      vpath vf = vp_child(&ip, "valueFrom");
      if (!vempty(e->value))
        validation_errors_add_invalid(errs, vf.s, "", "may not be specified when `value` is not empty");
      else
        check_env_source(errs, &vf, e->value_from);
    }
  }
}

/* ---------------------------------------------------------------- mounts */

static void check_volume_mounts(validation_errors *errs, const vpath *path, const Keel__Api__V1__Container *c,
                                const vcontainer_ctx *ctx) {
  vpath base = vp_child(path, "volumeMounts");
  for (size_t i = 0; i < c->n_volume_mounts; i++) {
    const Keel__Api__V1__VolumeMount *m = c->volume_mounts[i];
    if (!m) continue;
    vpath ip = vp_index(&base, i);
    vpath np = vp_child(&ip, "name"), mp = vp_child(&ip, "mountPath"), sp = vp_child(&ip, "subPath");
    if (vempty(m->name)) {
      validation_errors_add_required(errs, np.s, NULL);
    } else {
      bool found = false;
      for (size_t v = 0; v < ctx->n_volume_names && !found; v++)
        found = vstreq(ctx->volume_names[v], m->name);
      if (!found) verr_not_found(errs, np.s, m->name);
    }
    if (vempty(m->mount_path)) {
      validation_errors_add_required(errs, mp.s, NULL);
    } else if (m->mount_path[0] != '/') {
      validation_errors_add_invalid(errs, mp.s, m->mount_path, "must be an absolute path");
    } else {
      for (size_t j = 0; j < i; j++)
        if (c->volume_mounts[j] && vstreq(c->volume_mounts[j]->mount_path, m->mount_path)) {
          validation_errors_add_invalid(errs, mp.s, m->mount_path, "must be unique");
          break;
        }
    }
    if (!vempty(m->sub_path)) {
      const char *s = m->sub_path;
      if (s[0] == '/') {
        validation_errors_add_invalid(errs, sp.s, s, "must be a relative path");
      } else {
        /* no ".." path element */
        for (const char *p = s; p; p = strchr(p, '/') ? strchr(p, '/') + 1 : NULL) {
          if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || p[2] == '\0')) {
            validation_errors_add_invalid(errs, sp.s, s, "must not contain '..'");
            break;
          }
        }
      }
    }
  }
}

/* ---------------------------------------------------------------- probes */

static void check_min(validation_errors *errs, const vpath *path, const char *field, int64_t v, int64_t min) {
  if (v >= min) return;
  vpath p = vp_child(path, field);
  validation_errors_add_invalid_int(
      errs, p.s, v, min == 0 ? "must be greater than or equal to 0" : "must be greater than or equal to 1");
}

static bool http_header_name(const char *s) {
  /* RFC 7230 token */
  if (vempty(s)) return false;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p <= 0x20 || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p)) return false;
  }
  return true;
}

static void check_probe(validation_errors *errs, const vpath *path, const Keel__Api__V1__Probe *p,
                        bool need_success_1) {
  if (!p) return;
  int handlers = 0;
  const char *extra = NULL;
  if (p->exec) handlers++;
  if (p->http_get && handlers++) extra = "httpGet";
  if (p->tcp_socket && handlers++ && !extra) extra = "tcpSocket";
  if (p->grpc && handlers++ && !extra) extra = "grpc";
  if (handlers == 0) {
    validation_errors_add_required(errs, path->s, "must specify a handler type");
  } else if (handlers > 1) {
    vpath xp = vp_child(path, extra);
    verr_forbidden(errs, xp.s, "may not specify more than 1 handler type");
  } else if (p->exec) {
    vpath ep = vp_child(path, "exec");
    vpath cp = vp_child(&ep, "command");
    if (p->exec->n_command == 0) validation_errors_add_required(errs, cp.s, NULL);
  } else if (p->http_get) {
    static const char *const schemes[] = {"HTTP", "HTTPS", NULL};
    vpath hp = vp_child(path, "httpGet");
    vpath pp = vp_child(&hp, "path"), port = vp_child(&hp, "port"), sp = vp_child(&hp, "scheme");
    vpath headers = vp_child(&hp, "httpHeaders");
    if (vempty(p->http_get->path)) validation_errors_add_required(errs, pp.s, NULL);
    vcheck_port_num_or_name(errs, port.s, p->http_get->port);
    vcheck_enum(errs, sp.s, p->http_get->scheme, schemes, true);
    for (size_t i = 0; i < p->http_get->n_http_headers; i++) {
      const Keel__Api__V1__HTTPHeader *h = p->http_get->http_headers[i];
      vpath ih = vp_index(&headers, i);
      vpath nh = vp_child(&ih, "name");
      if (h && !http_header_name(h->name))
        validation_errors_add_invalid(
            errs, nh.s, h->name,
            "a valid HTTP header must consist of alphanumeric characters, '-', '_' or '.'");
    }
  } else if (p->tcp_socket) {
    vpath tp = vp_child(path, "tcpSocket");
    vpath port = vp_child(&tp, "port");
    vcheck_port_num_or_name(errs, port.s, p->tcp_socket->port);
  } else {
    vpath gp = vp_child(path, "grpc");
    vpath port = vp_child(&gp, "port");
    validation_port_number(errs, port.s, p->grpc->port);
  }
  check_min(errs, path, "initialDelaySeconds", p->initial_delay_seconds, 0);
  check_min(errs, path, "timeoutSeconds", p->timeout_seconds, 1);
  check_min(errs, path, "periodSeconds", p->period_seconds, 1);
  check_min(errs, path, "successThreshold", p->success_threshold, 1);
  check_min(errs, path, "failureThreshold", p->failure_threshold, 1);
  if (need_success_1 && p->success_threshold > 1) {
    vpath st = vp_child(path, "successThreshold");
    validation_errors_add_invalid_int(errs, st.s, p->success_threshold, "must be 1");
  }
  if (p->termination_grace_period_seconds && p->termination_grace_period_seconds->value <= 0) {
    vpath tg = vp_child(path, "terminationGracePeriodSeconds");
    validation_errors_add_invalid_int(errs, tg.s, p->termination_grace_period_seconds->value,
                                      "must be greater than 0");
  }
}

/* ---------------------------------------------------------------- container */

void vcheck_container(validation_errors *errs, const vpath *path, const Keel__Api__V1__Container *c,
                      const vcontainer_ctx *ctx) {
  static const char *const pull_policies[] = {"Always", "IfNotPresent", "Never", NULL};
  static const char *const message_policies[] = {"File", "FallbackToLogsOnError", NULL};
  vpath np = vp_child(path, "name"), ip = vp_child(path, "image");
  if (vempty(c->name))
    validation_errors_add_required(errs, np.s, NULL);
  else
    validation_dns1123_label(errs, np.s, c->name);
  if (vempty(c->image)) {
    validation_errors_add_required(errs, ip.s, NULL);
  } else {
    size_t l = strlen(c->image);
    if (strchr(" \t\n\r\f\v", c->image[0]) || strchr(" \t\n\r\f\v", c->image[l - 1]))
      validation_errors_add_invalid(errs, ip.s, c->image, "must not have leading or trailing whitespace");
  }
  check_ports(errs, path, c);
  check_env(errs, path, c);
  vpath rp = vp_child(path, "resources");
  check_resources(errs, &rp, c->resources);
  check_volume_mounts(errs, path, c, ctx);
  vpath lp = vp_child(path, "livenessProbe"), rdp = vp_child(path, "readinessProbe"),
        sp = vp_child(path, "startupProbe");
  if (ctx->init) {
    if (c->liveness_probe) verr_forbidden(errs, lp.s, "may not be set for init containers");
    if (c->readiness_probe) verr_forbidden(errs, rdp.s, "may not be set for init containers");
    if (c->startup_probe) verr_forbidden(errs, sp.s, "may not be set for init containers");
  } else {
    check_probe(errs, &lp, c->liveness_probe, true);
    check_probe(errs, &rdp, c->readiness_probe, false);
    check_probe(errs, &sp, c->startup_probe, true);
  }
  vpath pp = vp_child(path, "imagePullPolicy"), mp = vp_child(path, "terminationMessagePolicy");
  vcheck_enum(errs, pp.s, c->image_pull_policy, pull_policies, true);
  vcheck_enum(errs, mp.s, c->termination_message_policy, message_policies, true);
}
