/* cli/describe.c — `keel describe TYPE [NAME...] [-l SELECTOR]`: an
 * object's details as kubectl's describers lay them out, and the Events that
 * name it (field selector involvedObject.name/namespace/kind), newest last.
 *
 * Pods, Deployments, ReplicaSets and Services have their own layouts
 * (containers, probes, environment, mounts, conditions, volumes,
 * tolerations; replicas and strategy; ports and endpoints). Every other kind
 * is described from its JSON form: each field of spec and status under a
 * label made the way kubectl's generic describer makes them ("podCIDR" ->
 * "Pod CIDR"). */
#define _GNU_SOURCE
#include "cli/describe.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/printers.h"

typedef struct str_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
} str_entry;

/* ---------------------------------------------------------------- writer */

static void w(tabwriter *tw, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void w(tabwriter *tw, int level, const char *fmt, ...) {
  for (int i = 0; i < level; i++) tabwriter_write(tw, "  ");
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) >= 0) tabwriter_write(tw, s);
  va_end(ap);
  free(s);
}

static const char *or_str(const char *s, const char *dflt) {
  return s && *s ? s : dflt;
}

void describe_time(const Google__Protobuf__Timestamp *ts, char *buf, size_t len) {
  if (!ts) {
    snprintf(buf, len, "<unset>");
    return;
  }
  time_t t = (time_t)ts->seconds;
  struct tm tm;
  localtime_r(&t, &tm);
  strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

static int entry_cmp(const void *a, const void *b) {
  const str_entry *x = *(const str_entry *const *)a, *y = *(const str_entry *const *)b;
  return strcmp(x->key, y->key);
}

static const str_entry **sorted_entries(void *const *entries, size_t n) {
  const str_entry **s = malloc((n + 1) * sizeof(*s));
  if (!s) return NULL;
  for (size_t i = 0; i < n; i++) s[i] = entries[i];
  qsort(s, n, sizeof(*s), entry_cmp);
  return s;
}

/* "Labels:\tk=v\n\tk2=v2\n" (kubectl's printLabelsMultiline). */
static void labels_multiline(tabwriter *tw, int level, const char *title, void *const *entries, size_t n,
                             const char *sep) {
  w(tw, level, "%s:\t", title);
  if (n == 0) {
    tabwriter_write(tw, "<none>\n");
    return;
  }
  const str_entry **s = sorted_entries(entries, n);
  for (size_t i = 0; s && i < n; i++) {
    if (i) w(tw, level, "\t");
    /* A multi-line value continues on lines of its own under it. */
    const char *v = s[i]->value ? s[i]->value : "";
    size_t vl = strlen(v);
    while (vl > 0 && v[vl - 1] == '\n') vl--;
    tabwriter_printf(tw, "%s%s", s[i]->key, sep);
    for (size_t j = 0; j < vl; j++) {
      if (v[j] == '\n') {
        tabwriter_write(tw, "\n");
        w(tw, level, "\t  ");
      } else {
        char c[2] = {v[j] == '\t' ? ' ' : v[j], 0};
        tabwriter_write(tw, c);
      }
    }
    tabwriter_write(tw, "\n");
  }
  free(s);
}

static void common_header(tabwriter *tw, const api_kind *k, const Keel__Api__V1__ObjectMeta *m, bool created) {
  w(tw, 0, "Name:\t%s\n", or_str(m ? m->name : NULL, ""));
  if (k->namespaced) w(tw, 0, "Namespace:\t%s\n", or_str(m ? m->namespace_ : NULL, ""));
  if (created) {
    char t[64];
    describe_time(m ? m->creation_timestamp : NULL, t, sizeof(t));
    w(tw, 0, "CreationTimestamp:\t%s\n", t);
  }
  labels_multiline(tw, 0, "Labels", m ? (void *const *)m->labels : NULL, m ? m->n_labels : 0, "=");
  labels_multiline(tw, 0, "Annotations", m ? (void *const *)m->annotations : NULL, m ? m->n_annotations : 0, ": ");
}

static void controlled_by(tabwriter *tw, const Keel__Api__V1__ObjectMeta *m) {
  for (size_t i = 0; m && i < m->n_owner_references; i++) {
    const Keel__Api__V1__OwnerReference *o = m->owner_references[i];
    if (o->controller && o->controller->value) w(tw, 0, "Controlled By:\t%s/%s\n", o->kind, o->name);
  }
}

/* ---------------------------------------------------------------- containers */

static void int_or_string(const Keel__Api__V1__IntOrString *v, char *buf, size_t len) {
  if (!v) snprintf(buf, len, "%s", "");
  else if (v->type == 1) snprintf(buf, len, "%s", v->str_val ? v->str_val : "");
  else snprintf(buf, len, "%d", v->int_val);
}

static void probe_text(const Keel__Api__V1__Probe *p, char *buf, size_t len) {
  char attrs[160];
  snprintf(attrs, sizeof(attrs), "delay=%ds timeout=%ds period=%ds #success=%d #failure=%d",
           p->initial_delay_seconds, p->timeout_seconds, p->period_seconds, p->success_threshold,
           p->failure_threshold);
  char port[64];
  if (p->exec) {
    char cmd[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < p->exec->n_command && off < sizeof(cmd); i++)
      off += (size_t)snprintf(cmd + off, sizeof(cmd) - off, "%s%s", i ? " " : "", p->exec->command[i]);
    snprintf(buf, len, "exec [%s] %s", cmd, attrs);
  } else if (p->http_get) {
    int_or_string(p->http_get->port, port, sizeof(port));
    char scheme[16];
    snprintf(scheme, sizeof(scheme), "%s", or_str(p->http_get->scheme, "HTTP"));
    for (char *c = scheme; *c; c++) *c = (char)tolower((unsigned char)*c);
    snprintf(buf, len, "http-get %s://%s:%s%s %s", scheme, or_str(p->http_get->host, ""), port,
             or_str(p->http_get->path, ""), attrs);
  } else if (p->tcp_socket) {
    int_or_string(p->tcp_socket->port, port, sizeof(port));
    snprintf(buf, len, "tcp-socket %s:%s %s", or_str(p->tcp_socket->host, ""), port, attrs);
  } else if (p->grpc) {
    snprintf(buf, len, "grpc <pod>:%d %s %s", p->grpc->port, p->grpc->service ? p->grpc->service->value : "",
             attrs);
  } else {
    snprintf(buf, len, "unknown %s", attrs);
  }
}

static void resources(tabwriter *tw, const char *title, void *const *entries, size_t n) {
  if (n == 0) return;
  w(tw, 2, "%s:\n", title);
  /* map<string, Quantity>: the value is a message with one string. */
  typedef struct qentry {
    ProtobufCMessage base;
    char *key;
    Keel__Api__V1__Quantity *value;
  } qentry;
  const qentry **s = malloc(n * sizeof(*s));
  if (!s) return;
  for (size_t i = 0; i < n; i++) s[i] = entries[i];
  qsort(s, n, sizeof(*s), entry_cmp);
  for (size_t i = 0; i < n; i++) w(tw, 3, "%s:\t%s\n", s[i]->key, s[i]->value ? s[i]->value->string : "");
  free(s);
}

static void container_state(tabwriter *tw, const char *label, const Keel__Api__V1__ContainerState *s) {
  char t[64];
  if (s && s->running) {
    w(tw, 2, "%s:\tRunning\n", label);
    describe_time(s->running->started_at, t, sizeof(t));
    w(tw, 3, "Started:\t%s\n", t);
  } else if (s && s->terminated) {
    w(tw, 2, "%s:\tTerminated\n", label);
    if (s->terminated->reason && *s->terminated->reason) w(tw, 3, "Reason:\t%s\n", s->terminated->reason);
    if (s->terminated->message && *s->terminated->message) w(tw, 3, "Message:\t%s\n", s->terminated->message);
    w(tw, 3, "Exit Code:\t%d\n", s->terminated->exit_code);
    if (s->terminated->signal) w(tw, 3, "Signal:\t%d\n", s->terminated->signal);
    describe_time(s->terminated->started_at, t, sizeof(t));
    w(tw, 3, "Started:\t%s\n", t);
    describe_time(s->terminated->finished_at, t, sizeof(t));
    w(tw, 3, "Finished:\t%s\n", t);
  } else if (s && s->waiting) {
    w(tw, 2, "%s:\tWaiting\n", label);
    if (s->waiting->reason && *s->waiting->reason) w(tw, 3, "Reason:\t%s\n", s->waiting->reason);
    if (s->waiting->message && *s->waiting->message) w(tw, 3, "Message:\t%s\n", s->waiting->message);
  } else {
    w(tw, 2, "%s:\tWaiting\n", label);
  }
}

static void string_list(tabwriter *tw, const char *title, char *const *v, size_t n) {
  if (n == 0) return;
  w(tw, 2, "%s:\n", title);
  for (size_t i = 0; i < n; i++) w(tw, 3, "%s\n", v[i]);
}

/* name_indent: "  " in a pod, "   " in a template (as kubectl prints them). */
static void containers(tabwriter *tw, const char *title, Keel__Api__V1__Container *const *cs, size_t n,
                       Keel__Api__V1__ContainerStatus *const *sts, size_t nst, const char *name_indent) {
  if (n == 0) return;
  w(tw, 0, "%s%s:\n", strcmp(name_indent, "  ") == 0 ? "" : "  ", title);
  for (size_t i = 0; i < n; i++) {
    const Keel__Api__V1__Container *c = cs[i];
    const Keel__Api__V1__ContainerStatus *st = NULL;
    for (size_t j = 0; j < nst; j++)
      if (sts[j]->name && c->name && strcmp(sts[j]->name, c->name) == 0) st = sts[j];
    w(tw, 0, "%s%s:\n", name_indent, or_str(c->name, ""));
    if (sts) w(tw, 2, "Container ID:\t%s\n", st ? or_str(st->container_id, "") : "");
    w(tw, 2, "Image:\t%s\n", or_str(c->image, ""));
    if (sts) w(tw, 2, "Image ID:\t%s\n", st ? or_str(st->image_id, "") : "");
    if (c->n_ports == 0) {
      w(tw, 2, "Port:\t<none>\n");
      w(tw, 2, "Host Port:\t<none>\n");
    } else {
      char ports[512] = "", hports[512] = "";
      size_t po = 0, ho = 0;
      for (size_t p = 0; p < c->n_ports; p++) {
        const char *proto = or_str(c->ports[p]->protocol, "TCP");
        po += (size_t)snprintf(ports + po, po < sizeof(ports) ? sizeof(ports) - po : 0, "%s%d/%s", p ? ", " : "",
                               c->ports[p]->container_port, proto);
        ho += (size_t)snprintf(hports + ho, ho < sizeof(hports) ? sizeof(hports) - ho : 0, "%s%d/%s", p ? ", " : "",
                               c->ports[p]->host_port, proto);
      }
      w(tw, 2, "%s:\t%s\n", c->n_ports > 1 ? "Ports" : "Port", ports);
      w(tw, 2, "%s:\t%s\n", c->n_ports > 1 ? "Host Ports" : "Host Port", hports);
    }
    string_list(tw, "Command", c->command, c->n_command);
    string_list(tw, "Args", c->args, c->n_args);
    if (st) {
      container_state(tw, "State", st->state);
      if (st->last_state && (st->last_state->running || st->last_state->terminated || st->last_state->waiting))
        container_state(tw, "Last State", st->last_state);
      w(tw, 2, "Ready:\t%s\n", st->ready ? "True" : "False");
      w(tw, 2, "Restart Count:\t%d\n", st->restart_count);
    }
    if (c->resources) {
      resources(tw, "Limits", (void *const *)c->resources->limits, c->resources->n_limits);
      resources(tw, "Requests", (void *const *)c->resources->requests, c->resources->n_requests);
    }
    char probe[768];
    if (c->liveness_probe) probe_text(c->liveness_probe, probe, sizeof(probe)), w(tw, 2, "Liveness:\t%s\n", probe);
    if (c->readiness_probe) probe_text(c->readiness_probe, probe, sizeof(probe)), w(tw, 2, "Readiness:\t%s\n", probe);
    if (c->startup_probe) probe_text(c->startup_probe, probe, sizeof(probe)), w(tw, 2, "Startup:\t%s\n", probe);
    if (c->n_env == 0) {
      w(tw, 2, "Environment:\t<none>\n");
    } else {
      w(tw, 2, "Environment:\n");
      for (size_t e = 0; e < c->n_env; e++) {
        const Keel__Api__V1__EnvVar *ev = c->env[e];
        const Keel__Api__V1__EnvVarSource *vf = ev->value_from;
        if (!vf) w(tw, 3, "%s:\t%s\n", or_str(ev->name, ""), or_str(ev->value, ""));
        else if (vf->field_ref)
          w(tw, 3, "%s:\t (%s:%s)\n", or_str(ev->name, ""), or_str(vf->field_ref->api_version, "v1"),
            or_str(vf->field_ref->field_path, ""));
        else if (vf->resource_field_ref)
          w(tw, 3, "%s:\t%s (%s)\n", or_str(ev->name, ""), or_str(vf->resource_field_ref->container_name, ""),
            or_str(vf->resource_field_ref->resource, ""));
        else if (vf->config_map_key_ref)
          w(tw, 3, "%s:\t<set to the key '%s' of config map '%s'>\n", or_str(ev->name, ""),
            or_str(vf->config_map_key_ref->key, ""), or_str(vf->config_map_key_ref->name, ""));
        else if (vf->secret_key_ref)
          w(tw, 3, "%s:\t<set to the key '%s' in secret '%s'>\n", or_str(ev->name, ""),
            or_str(vf->secret_key_ref->key, ""), or_str(vf->secret_key_ref->name, ""));
        else w(tw, 3, "%s:\t\n", or_str(ev->name, ""));
      }
    }
    if (c->n_volume_mounts == 0) {
      w(tw, 2, "Mounts:\t<none>\n");
    } else {
      w(tw, 2, "Mounts:\n");
      for (size_t v = 0; v < c->n_volume_mounts; v++) {
        const Keel__Api__V1__VolumeMount *vm = c->volume_mounts[v];
        w(tw, 3, "%s from %s (%s%s%s)\n", or_str(vm->mount_path, ""), or_str(vm->name, ""), vm->read_only ? "ro" : "rw",
          vm->sub_path && *vm->sub_path ? ",path=" : "", vm->sub_path && *vm->sub_path ? vm->sub_path : "");
      }
    }
  }
}

static void volumes(tabwriter *tw, int level, Keel__Api__V1__Volume *const *vs, size_t n) {
  if (n == 0) {
    w(tw, level, "Volumes:\t<none>\n");
    return;
  }
  w(tw, level, "Volumes:\n");
  for (size_t i = 0; i < n; i++) {
    const Keel__Api__V1__Volume *v = vs[i];
    w(tw, level + 1, "%s:\n", or_str(v->name, ""));
    if (v->empty_dir) {
      w(tw, level + 2, "Type:\tEmptyDir (a temporary directory that shares a pod's lifetime)\n");
      w(tw, level + 2, "Medium:\t%s\n", or_str(v->empty_dir->medium, ""));
      w(tw, level + 2, "SizeLimit:\t%s\n", v->empty_dir->size_limit ? v->empty_dir->size_limit->string : "<unset>");
    } else if (v->host_path) {
      w(tw, level + 2, "Type:\tHostPath (bare host directory volume)\n");
      w(tw, level + 2, "Path:\t%s\n", or_str(v->host_path->path, ""));
      w(tw, level + 2, "HostPathType:\t%s\n", or_str(v->host_path->type, ""));
    } else {
      w(tw, level + 2, "Type:\t<unknown>\n");
    }
  }
}

void describe_pod_template(tabwriter *tw, const Keel__Api__V1__PodTemplateSpec *t) {
  w(tw, 0, "Pod Template:\n");
  const Keel__Api__V1__ObjectMeta *m = t ? t->metadata : NULL;
  labels_multiline(tw, 1, "Labels", m ? (void *const *)m->labels : NULL, m ? m->n_labels : 0, "=");
  if (m && m->n_annotations)
    labels_multiline(tw, 1, "Annotations", (void *const *)m->annotations, m->n_annotations, ": ");
  const Keel__Api__V1__PodSpec *sp = t ? t->spec : NULL;
  if (sp && sp->service_account_name && *sp->service_account_name)
    w(tw, 1, "Service Account:\t%s\n", sp->service_account_name);
  if (sp) {
    containers(tw, "Init Containers", sp->init_containers, sp->n_init_containers, NULL, 0, "   ");
    containers(tw, "Containers", sp->containers, sp->n_containers, NULL, 0, "   ");
  }
  volumes(tw, 1, sp ? sp->volumes : NULL, sp ? sp->n_volumes : 0);
}

/* ---------------------------------------------------------------- kinds */

static void describe_pod(tabwriter *tw, const api_kind *k, const Keel__Api__V1__Pod *p) {
  const Keel__Api__V1__ObjectMeta *m = p->metadata;
  const Keel__Api__V1__PodSpec *sp = p->spec;
  const Keel__Api__V1__PodStatus *st = p->status;
  char t[64];
  w(tw, 0, "Name:\t%s\n", or_str(m ? m->name : NULL, ""));
  w(tw, 0, "Namespace:\t%s\n", or_str(m ? m->namespace_ : NULL, ""));
  if (sp && sp->priority) w(tw, 0, "Priority:\t%d\n", sp->priority->value);
  if (sp && sp->priority_class_name && *sp->priority_class_name)
    w(tw, 0, "Priority Class Name:\t%s\n", sp->priority_class_name);
  w(tw, 0, "Service Account:\t%s\n", or_str(sp ? sp->service_account_name : NULL, "default"));
  if (sp && sp->node_name && *sp->node_name)
    w(tw, 0, "Node:\t%s%s%s\n", sp->node_name, st && st->host_ip && *st->host_ip ? "/" : "",
      st && st->host_ip ? st->host_ip : "");
  else w(tw, 0, "Node:\t<none>\n");
  if (st && st->start_time) {
    describe_time(st->start_time, t, sizeof(t));
    w(tw, 0, "Start Time:\t%s\n", t);
  }
  labels_multiline(tw, 0, "Labels", m ? (void *const *)m->labels : NULL, m ? m->n_labels : 0, "=");
  labels_multiline(tw, 0, "Annotations", m ? (void *const *)m->annotations : NULL, m ? m->n_annotations : 0, ": ");
  if (m && m->deletion_timestamp) {
    describe_time(m->deletion_timestamp, t, sizeof(t));
    w(tw, 0, "Status:\tTerminating (lasts until %s)\n", t);
  } else {
    w(tw, 0, "Status:\t%s\n", or_str(st ? st->phase : NULL, ""));
  }
  if (st && st->reason && *st->reason) w(tw, 0, "Reason:\t%s\n", st->reason);
  if (st && st->message && *st->message) w(tw, 0, "Message:\t%s\n", st->message);
  w(tw, 0, "IP:\t%s\n", st ? or_str(st->pod_ip, "") : "");
  if (st && st->n_pod_ips) {
    w(tw, 0, "IPs:\n");
    for (size_t i = 0; i < st->n_pod_ips; i++) w(tw, 1, "IP:\t%s\n", or_str(st->pod_ips[i]->ip, ""));
  } else {
    w(tw, 0, "IPs:\t<none>\n");
  }
  controlled_by(tw, m);
  if (sp) {
    Keel__Api__V1__ContainerStatus *const *ist = st ? st->init_container_statuses : NULL;
    Keel__Api__V1__ContainerStatus *const *cst = st ? st->container_statuses : NULL;
    static Keel__Api__V1__ContainerStatus *const none[1] = {NULL};
    containers(tw, "Init Containers", sp->init_containers, sp->n_init_containers, ist ? ist : none,
               st ? st->n_init_container_statuses : 0, "  ");
    containers(tw, "Containers", sp->containers, sp->n_containers, cst ? cst : none,
               st ? st->n_container_statuses : 0, "  ");
  }
  if (st && st->n_conditions) {
    w(tw, 0, "Conditions:\n");
    w(tw, 1, "Type\tStatus\n");
    for (size_t i = 0; i < st->n_conditions; i++)
      w(tw, 1, "%s\t%s \n", or_str(st->conditions[i]->type, ""), or_str(st->conditions[i]->status, ""));
  }
  volumes(tw, 0, sp ? sp->volumes : NULL, sp ? sp->n_volumes : 0);
  if (st && st->qos_class && *st->qos_class) w(tw, 0, "QoS Class:\t%s\n", st->qos_class);
  labels_multiline(tw, 0, "Node-Selectors", sp ? (void *const *)sp->node_selector : NULL, sp ? sp->n_node_selector : 0,
                   "=");
  w(tw, 0, "Tolerations:\t");
  if (!sp || sp->n_tolerations == 0) tabwriter_write(tw, "<none>\n");
  for (size_t i = 0; sp && i < sp->n_tolerations; i++) {
    const Keel__Api__V1__Toleration *to = sp->tolerations[i];
    if (i) w(tw, 0, "\t");
    if (to->value && *to->value) tabwriter_printf(tw, "%s=%s", or_str(to->key, ""), to->value);
    else tabwriter_printf(tw, "%s", or_str(to->key, ""));
    if (to->effect && *to->effect) tabwriter_printf(tw, ":%s", to->effect);
    if (to->operator_ && strcmp(to->operator_, "Exists") == 0 && !(to->value && *to->value))
      tabwriter_write(tw, to->key && *to->key ? " op=Exists" : "op=Exists");
    if (to->toleration_seconds) tabwriter_printf(tw, " for %llds", (long long)to->toleration_seconds->value);
    tabwriter_write(tw, "\n");
  }
  (void)k;
}

static void conditions_table(tabwriter *tw, const char *const *types, const char *const *statuses,
                             const char *const *reasons, size_t n) {
  if (n == 0) return;
  w(tw, 0, "Conditions:\n");
  w(tw, 1, "Type\tStatus\tReason\n");
  w(tw, 1, "----\t------\t------\n");
  for (size_t i = 0; i < n; i++) w(tw, 1, "%s\t%s\t%s\n", or_str(types[i], ""), or_str(statuses[i], ""), or_str(reasons[i], ""));
}

static void describe_deployment(tabwriter *tw, const api_kind *k, const Keel__Api__V1__Deployment *d) {
  const Keel__Api__V1__DeploymentSpec *sp = d->spec;
  const Keel__Api__V1__DeploymentStatus *st = d->status;
  common_header(tw, k, d->metadata, true);
  char *sel = printers_selector_text(sp ? sp->selector : NULL);
  w(tw, 0, "Selector:\t%s\n", sel ? sel : "");
  free(sel);
  int32_t want = sp && sp->replicas ? sp->replicas->value : 1;
  w(tw, 0, "Replicas:\t%d desired | %d updated | %d total | %d available | %d unavailable\n", want,
    st ? st->updated_replicas : 0, st ? st->replicas : 0, st ? st->available_replicas : 0,
    st ? st->unavailable_replicas : 0);
  const char *type = sp && sp->strategy && sp->strategy->type && *sp->strategy->type ? sp->strategy->type : "RollingUpdate";
  w(tw, 0, "StrategyType:\t%s\n", type);
  w(tw, 0, "MinReadySeconds:\t%d\n", sp ? sp->min_ready_seconds : 0);
  if (strcmp(type, "RollingUpdate") == 0 && sp && sp->strategy && sp->strategy->rolling_update) {
    char mu[32], ms[32];
    int_or_string(sp->strategy->rolling_update->max_unavailable, mu, sizeof(mu));
    int_or_string(sp->strategy->rolling_update->max_surge, ms, sizeof(ms));
    w(tw, 0, "RollingUpdateStrategy:\t%s max unavailable, %s max surge\n", mu, ms);
  }
  if (sp && sp->paused) w(tw, 0, "Paused:\ttrue\n");
  describe_pod_template(tw, sp ? sp->template_ : NULL);
  if (st && st->n_conditions) {
    const char **ty = calloc(st->n_conditions, sizeof(char *)), **ss = calloc(st->n_conditions, sizeof(char *)),
               **rs = calloc(st->n_conditions, sizeof(char *));
    for (size_t i = 0; ty && ss && rs && i < st->n_conditions; i++) {
      ty[i] = st->conditions[i]->type;
      ss[i] = st->conditions[i]->status;
      rs[i] = st->conditions[i]->reason;
    }
    if (ty && ss && rs) conditions_table(tw, ty, ss, rs, st->n_conditions);
    free(ty);
    free(ss);
    free(rs);
  }
}

static void describe_replicaset(tabwriter *tw, const api_kind *k, const Keel__Api__V1__ReplicaSet *rs) {
  const Keel__Api__V1__ReplicaSetSpec *sp = rs->spec;
  const Keel__Api__V1__ReplicaSetStatus *st = rs->status;
  w(tw, 0, "Name:\t%s\n", or_str(rs->metadata ? rs->metadata->name : NULL, ""));
  w(tw, 0, "Namespace:\t%s\n", or_str(rs->metadata ? rs->metadata->namespace_ : NULL, ""));
  char *sel = printers_selector_text(sp ? sp->selector : NULL);
  w(tw, 0, "Selector:\t%s\n", sel ? sel : "");
  free(sel);
  const Keel__Api__V1__ObjectMeta *m = rs->metadata;
  labels_multiline(tw, 0, "Labels", m ? (void *const *)m->labels : NULL, m ? m->n_labels : 0, "=");
  labels_multiline(tw, 0, "Annotations", m ? (void *const *)m->annotations : NULL, m ? m->n_annotations : 0, ": ");
  controlled_by(tw, m);
  w(tw, 0, "Replicas:\t%d current / %d desired\n", st ? st->replicas : 0, sp && sp->replicas ? sp->replicas->value : 1);
  describe_pod_template(tw, sp ? sp->template_ : NULL);
  (void)k;
}

static void describe_service(tabwriter *tw, const api_kind *k, const Keel__Api__V1__Service *s,
                             const Keel__Api__V1__Endpoints *ep) {
  const Keel__Api__V1__ServiceSpec *sp = s->spec;
  const Keel__Api__V1__ObjectMeta *m = s->metadata;
  w(tw, 0, "Name:\t%s\n", or_str(m ? m->name : NULL, ""));
  w(tw, 0, "Namespace:\t%s\n", or_str(m ? m->namespace_ : NULL, ""));
  labels_multiline(tw, 0, "Labels", m ? (void *const *)m->labels : NULL, m ? m->n_labels : 0, "=");
  labels_multiline(tw, 0, "Annotations", m ? (void *const *)m->annotations : NULL, m ? m->n_annotations : 0, ": ");
  char *sel = sp ? printers_map_text((void *const *)sp->selector, sp->n_selector, ",") : strdup("<none>");
  w(tw, 0, "Selector:\t%s\n", sel ? sel : "");
  free(sel);
  w(tw, 0, "Type:\t%s\n", or_str(sp ? sp->type : NULL, "ClusterIP"));
  if (sp && sp->ip_family_policy && *sp->ip_family_policy) w(tw, 0, "IP Family Policy:\t%s\n", sp->ip_family_policy);
  if (sp && sp->n_ip_families) {
    w(tw, 0, "IP Families:\t");
    for (size_t i = 0; i < sp->n_ip_families; i++) tabwriter_printf(tw, "%s%s", i ? "," : "", sp->ip_families[i]);
    tabwriter_write(tw, "\n");
  }
  w(tw, 0, "IP:\t%s\n", or_str(sp ? sp->cluster_ip : NULL, "None"));
  if (sp && sp->n_cluster_ips) {
    w(tw, 0, "IPs:\t");
    for (size_t i = 0; i < sp->n_cluster_ips; i++) tabwriter_printf(tw, "%s%s", i ? "," : "", sp->cluster_ips[i]);
    tabwriter_write(tw, "\n");
  }
  for (size_t i = 0; sp && i < sp->n_external_ips; i++) w(tw, 0, "External IPs:\t%s\n", sp->external_ips[i]);
  for (size_t i = 0; sp && i < sp->n_ports; i++) {
    const Keel__Api__V1__ServicePort *p = sp->ports[i];
    const char *name = or_str(p->name, "<unset>");
    const char *proto = or_str(p->protocol, "TCP");
    w(tw, 0, "Port:\t%s  %d/%s\n", name, p->port, proto);
    char tp[64];
    int_or_string(p->target_port, tp, sizeof(tp));
    if (p->target_port && p->target_port->type == 1) w(tw, 0, "TargetPort:\t%s/%s\n", tp, proto);
    else w(tw, 0, "TargetPort:\t%s/%s\n", p->target_port ? tp : "", proto);
    if (p->node_port) w(tw, 0, "NodePort:\t%s  %d/%s\n", name, p->node_port, proto);
    /* Endpoints of this port: ip:port for every ready address. */
    char eps[512] = "";
    size_t off = 0, count = 0;
    for (size_t s2 = 0; ep && s2 < ep->n_subsets; s2++) {
      const Keel__Api__V1__EndpointSubset *sub = ep->subsets[s2];
      for (size_t pp = 0; pp < sub->n_ports; pp++) {
        const char *pn = sub->ports[pp]->name ? sub->ports[pp]->name : "";
        if (strcmp(pn, p->name ? p->name : "") != 0 && sub->n_ports > 1) continue;
        for (size_t a = 0; a < sub->n_addresses && off < sizeof(eps); a++, count++)
          off += (size_t)snprintf(eps + off, sizeof(eps) - off, "%s%s:%d", count ? "," : "", sub->addresses[a]->ip,
                                  sub->ports[pp]->port);
      }
    }
    w(tw, 0, "Endpoints:\t%s\n", count ? eps : "<none>");
  }
  w(tw, 0, "Session Affinity:\t%s\n", or_str(sp ? sp->session_affinity : NULL, "None"));
  if (sp && sp->external_traffic_policy && *sp->external_traffic_policy)
    w(tw, 0, "External Traffic Policy:\t%s\n", sp->external_traffic_policy);
  (void)k;
}

/* ---------------------------------------------------------------- generic */

/* kubectl's smartLabelFor: "podCIDR" -> "Pod CIDR", "nodeInfo" -> "Node Info". */
static void smart_label(const char *field, char *buf, size_t len) {
  size_t o = 0, n = strlen(field);
  for (size_t i = 0; i < n && o + 2 < len; i++) {
    char c = field[i];
    bool upper = isupper((unsigned char)c);
    bool prev_lower = i > 0 && (islower((unsigned char)field[i - 1]) || isdigit((unsigned char)field[i - 1]));
    bool next_lower = i + 1 < n && islower((unsigned char)field[i + 1]);
    bool prev_upper = i > 0 && isupper((unsigned char)field[i - 1]);
    if (i > 0 && upper && (prev_lower || (prev_upper && next_lower))) buf[o++] = ' ';
    buf[o++] = i == 0 ? (char)toupper((unsigned char)c) : c;
  }
  buf[o] = 0;
}

static void scalar_text(const json_t *v, char *buf, size_t len) {
  switch (json_typeof(v)) {
    case JSON_STRING: snprintf(buf, len, "%s", json_string_value(v)); break;
    case JSON_INTEGER: snprintf(buf, len, "%lld", (long long)json_integer_value(v)); break;
    case JSON_REAL: snprintf(buf, len, "%g", json_real_value(v)); break;
    case JSON_TRUE: snprintf(buf, len, "true"); break;
    case JSON_FALSE: snprintf(buf, len, "false"); break;
    default: snprintf(buf, len, "<nil>"); break;
  }
}

static void json_fields(tabwriter *tw, int level, const json_t *obj) {
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)obj, key, v) {
    char label[256];
    smart_label(key, label, sizeof(label));
    if (json_is_object(v)) {
      w(tw, level, "%s:\n", label);
      json_fields(tw, level + 1, v);
    } else if (json_is_array(v)) {
      size_t i;
      json_t *e;
      bool scalars = true;
      json_array_foreach(v, i, e) scalars = scalars && !json_is_object(e) && !json_is_array(e);
      if (scalars) {
        w(tw, level, "%s:\t", label);
        json_array_foreach(v, i, e) {
          char t[1024];
          scalar_text(e, t, sizeof(t));
          tabwriter_printf(tw, "%s%s", i ? ", " : "", t);
        }
        tabwriter_write(tw, "\n");
      } else {
        w(tw, level, "%s:\n", label);
        json_array_foreach(v, i, e) {
          if (json_is_object(e)) json_fields(tw, level + 1, e);
        }
      }
    } else {
      char t[4096];
      scalar_text(v, t, sizeof(t));
      for (char *c = t; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
      w(tw, level, "%s:\t%s\n", label, t);
    }
  }
}

static void describe_generic(cli *x, tabwriter *tw, const api_kind *k, const ProtobufCMessage *obj) {
  common_header(tw, k, api_object_meta(k, obj), false);
  char t[64];
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  describe_time(m ? m->creation_timestamp : NULL, t, sizeof(t));
  w(tw, 0, "CreationTimestamp:\t%s\n", t);
  protojson *pj = cli_pj(x);
  json_t *j = pj ? protojson_to_json(pj, obj, NULL) : NULL;
  if (!j) return;
  json_object_del(j, "apiVersion");
  json_object_del(j, "kind");
  json_object_del(j, "metadata");
  json_fields(tw, 0, j);
  json_decref(j);
}

/* ---------------------------------------------------------------- events */

static int event_cmp(const void *a, const void *b) {
  const Keel__Api__V1__Event *x = *(Keel__Api__V1__Event *const *)a, *y = *(Keel__Api__V1__Event *const *)b;
  int64_t tx = x->last_timestamp ? x->last_timestamp->seconds : (x->metadata && x->metadata->creation_timestamp ? x->metadata->creation_timestamp->seconds : 0);
  int64_t ty = y->last_timestamp ? y->last_timestamp->seconds : (y->metadata && y->metadata->creation_timestamp ? y->metadata->creation_timestamp->seconds : 0);
  return tx < ty ? -1 : tx > ty;
}

static const Google__Protobuf__Timestamp *first_set(const Google__Protobuf__Timestamp *a,
                                                    const Google__Protobuf__Timestamp *b,
                                                    const Google__Protobuf__Timestamp *c) {
  if (a && (a->seconds || a->nanos)) return a;
  if (b && (b->seconds || b->nanos)) return b;
  return c;
}

/* The Events section. Returns -1 when listing failed (printed). */
static int describe_events(cli *x, client *c, tabwriter *tw, const api_kind *k, const ProtobufCMessage *obj) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  const api_kind *ek = api_kind_by_name("Event");
  char *fs = NULL;
  if (asprintf(&fs, "involvedObject.kind=%s,involvedObject.name=%s%s%s", k->kind, m && m->name ? m->name : "",
               k->namespaced ? ",involvedObject.namespace=" : "", k->namespaced && m ? m->namespace_ : "") < 0)
    return -1;
  Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
  lr.namespace_ = (char *)(k->namespaced && m ? m->namespace_ : "");
  lr.field_selector = fs;
  ProtobufCMessage *list = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  int rc = client_list(c, ek, &lr, &list, &co, &st);
  free(fs);
  if (rc < 0) {
    tabwriter_flush(tw, stdout);
    cli_server_error(x, &st, "listing the events: ");
    return -1;
  }
  Keel__Api__V1__EventList *el = (Keel__Api__V1__EventList *)list;
  if (el->n_items == 0) {
    w(tw, 0, "Events:\t<none>\n");
  } else {
    tabwriter_flush(tw, stdout); /* the events table has its own columns */
    qsort(el->items, el->n_items, sizeof(*el->items), event_cmp);
    w(tw, 0, "Events:\n");
    w(tw, 1, "Type\tReason\tAge\tFrom\tMessage\n");
    w(tw, 1, "----\t------\t----\t----\t-------\n");
    time_t now = time(NULL);
    for (size_t i = 0; i < el->n_items; i++) {
      const Keel__Api__V1__Event *e = el->items[i];
      const Google__Protobuf__Timestamp *created = e->metadata ? e->metadata->creation_timestamp : NULL;
      char first[32], last[32], interval[96];
      printers_age(first_set(e->first_timestamp, e->event_time, created), now, first, sizeof(first));
      if (e->count > 1) {
        printers_age(first_set(e->last_timestamp, e->event_time, created), now, last, sizeof(last));
        snprintf(interval, sizeof(interval), "%s (x%d over %s)", last, e->count, first);
      } else {
        snprintf(interval, sizeof(interval), "%s", first);
      }
      const char *from = e->source && e->source->component && *e->source->component ? e->source->component
                                                                                    : or_str(e->reporting_component, "");
      char *msg = strdup(or_str(e->message, ""));
      if (msg) {
        for (char *p = msg; *p; p++)
          if (*p == '\n' || *p == '\t') *p = ' ';
        size_t ml = strlen(msg);
        while (ml > 0 && msg[ml - 1] == ' ') msg[--ml] = 0;
      }
      const char *type = or_str(e->type, "");
      const char *color = x->color_out ? printers_status_color(type) : "";
      w(tw, 1, "%s%s%s\t%s\t%s\t%s\t%s\n", color, type, *color ? PRINTERS_COLOR_RESET : "", or_str(e->reason, ""),
        interval, from, msg ? msg : "");
      free(msg);
    }
  }
  protobuf_c_message_free_unpacked(list, NULL);
  return 0;
}

/* ---------------------------------------------------------------- command */

static int describe_one(cli *x, client *c, const api_kind *k, const ProtobufCMessage *obj) {
  tabwriter *tw = tabwriter_new(DESCRIBE_MINWIDTH, DESCRIBE_PADDING, 0);
  if (!tw) return cli_error(x, "out of memory");
  if (strcmp(k->kind, "Pod") == 0) describe_pod(tw, k, (const Keel__Api__V1__Pod *)obj);
  else if (strcmp(k->kind, "Deployment") == 0) describe_deployment(tw, k, (const Keel__Api__V1__Deployment *)obj);
  else if (strcmp(k->kind, "ReplicaSet") == 0) describe_replicaset(tw, k, (const Keel__Api__V1__ReplicaSet *)obj);
  else if (strcmp(k->kind, "Service") == 0) {
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
    ProtobufCMessage *ep = NULL;
    client_status st;
    client_call_options co = cli_call_opts(x, false);
    if (m) client_get(c, api_kind_by_name("Endpoints"), m->namespace_, m->name, NULL, &ep, &co, &st);
    describe_service(tw, k, (const Keel__Api__V1__Service *)obj, (const Keel__Api__V1__Endpoints *)ep);
    if (ep) protobuf_c_message_free_unpacked(ep, NULL);
  } else {
    describe_generic(x, tw, k, obj);
  }
  int rc = strcmp(k->kind, "Event") == 0 ? 0 : describe_events(x, c, tw, k, obj);
  if (tabwriter_flush(tw, stdout) < 0) rc = -1;
  tabwriter_free(tw);
  return rc < 0 ? 1 : 0;
}

int cmd_describe(cli *x, int argc, char **argv) {
  char *selector = NULL;
  bool all_ns = false;
  flag_string_list files = {0};
  flag_def defs[] = {
      FLAG_STRING("selector", &selector, "describe the objects matching this label selector (-l)"),
      FLAG_BOOL("all-namespaces", &all_ns, "in every namespace (-A)"),
      FLAG_STRING_LIST("filename", &files, "describe the objects of these manifests (-f)"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel describe (TYPE [NAME...] | TYPE/NAME... | -f FILE)",
                      "Show an object's details and its events.", defs, CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  cli_targets t = {0};
  if (cli_targets_read(x, &files, pos, npos, true, &t) < 0) {
    rc = 1;
    goto out;
  }
  client *c = cli_client(x);
  if (!c) {
    rc = 1;
    goto out;
  }
  bool first = true;
  client_call_options co = cli_call_opts(x, false);
  for (size_t i = 0; i < t.nrefs; i++) {
    const api_kind *k = t.refs[i].kind;
    client_status st;
    if (*t.refs[i].name) {
      const char *ns = cli_targets_namespace(x, &t, i);
      ProtobufCMessage *obj = NULL;
      if (client_get(c, k, ns, t.refs[i].name, NULL, &obj, &co, &st) < 0) {
        rc = cli_server_error(x, &st, NULL);
        continue;
      }
      if (!first) fputs("\n\n", stdout);
      first = false;
      if (describe_one(x, c, k, obj)) rc = 1;
      protobuf_c_message_free_unpacked(obj, NULL);
      continue;
    }
    Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
    lr.namespace_ = (char *)(all_ns || !k->namespaced ? "" : cli_namespace(x));
    lr.label_selector = selector ? selector : "";
    ProtobufCMessage *list = NULL;
    if (client_list(c, k, &lr, &list, &co, &st) < 0) {
      rc = cli_server_error(x, &st, NULL);
      continue;
    }
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(k->list, "items");
    size_t n = *(const size_t *)((const char *)list + f->quantifier_offset);
    ProtobufCMessage **items = *(ProtobufCMessage ***)((char *)list + f->offset);
    if (n == 0) {
      if (all_ns || !k->namespaced) fprintf(stderr, "No resources found\n");
      else fprintf(stderr, "No resources found in %s namespace.\n", cli_namespace(x));
    }
    for (size_t j = 0; j < n; j++) {
      if (!first) fputs("\n\n", stdout);
      first = false;
      if (describe_one(x, c, k, items[j])) rc = 1;
    }
    protobuf_c_message_free_unpacked(list, NULL);
  }
  fflush(stdout);
out:
  cli_targets_free(&t);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
