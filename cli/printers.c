/* cli/printers.c — see printers.h. Column choices and the values in them
 * follow kubectl's printers (k8s.io/kubernetes/pkg/printers/internalversion)
 * so that a table reads the same as kubectl's: the Pod STATUS logic, the
 * Service PORT(S) and EXTERNAL-IP spellings, "<none>" for absent values. */
#define _GNU_SOURCE
#include "cli/printers.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

/* Every protobuf-c map<string,string> entry has this layout. */
typedef struct str_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
} str_entry;

#define GREEN "\x1b[32m"
#define YELLOW "\x1b[33m"
#define RED "\x1b[31m"

tabwriter *printers_table_new(void) {
  return tabwriter_new(PRINTERS_MINWIDTH, PRINTERS_PADDING, TABWRITER_REMEMBER_WIDTHS);
}

/* ---------------------------------------------------------------- ages */

void printers_human_duration(int64_t seconds, char *buf, size_t len) {
  if (seconds < -1) {
    snprintf(buf, len, "<invalid>");
    return;
  }
  if (seconds < 0) seconds = 0;
  if (seconds < 60 * 2) {
    snprintf(buf, len, "%llds", (long long)seconds);
    return;
  }
  int64_t minutes = seconds / 60;
  if (minutes < 10) {
    int64_t s = seconds % 60;
    if (s == 0) snprintf(buf, len, "%lldm", (long long)minutes);
    else snprintf(buf, len, "%lldm%llds", (long long)minutes, (long long)s);
    return;
  }
  if (minutes < 60 * 3) {
    snprintf(buf, len, "%lldm", (long long)minutes);
    return;
  }
  int64_t hours = seconds / 3600;
  if (hours < 8) {
    int64_t m = minutes % 60;
    if (m == 0) snprintf(buf, len, "%lldh", (long long)hours);
    else snprintf(buf, len, "%lldh%lldm", (long long)hours, (long long)m);
    return;
  }
  if (hours < 48) {
    snprintf(buf, len, "%lldh", (long long)hours);
    return;
  }
  if (hours < 24 * 8) {
    int64_t h = hours % 24;
    if (h == 0) snprintf(buf, len, "%lldd", (long long)(hours / 24));
    else snprintf(buf, len, "%lldd%lldh", (long long)(hours / 24), (long long)h);
    return;
  }
  if (hours < 24 * 365 * 2) {
    snprintf(buf, len, "%lldd", (long long)(hours / 24));
    return;
  }
  if (hours < 24 * 365 * 8) {
    int64_t dy = (hours / 24) % 365;
    if (dy == 0) snprintf(buf, len, "%lldy", (long long)(hours / 24 / 365));
    else snprintf(buf, len, "%lldy%lldd", (long long)(hours / 24 / 365), (long long)dy);
    return;
  }
  snprintf(buf, len, "%lldy", (long long)(hours / 24 / 365));
}

void printers_age(const Google__Protobuf__Timestamp *ts, time_t now, char *buf, size_t len) {
  if (!ts || (ts->seconds == 0 && ts->nanos == 0)) {
    snprintf(buf, len, "<unknown>");
    return;
  }
  printers_human_duration((int64_t)now - ts->seconds, buf, len);
}

/* ---------------------------------------------------------------- names */

void printers_kind_ref(const api_kind *k, char *buf, size_t len) {
  if (k->group && *k->group) snprintf(buf, len, "%s.%s", k->singular, k->group);
  else snprintf(buf, len, "%s", k->singular);
}

void printers_object_name(const api_kind *k, const ProtobufCMessage *obj, char *buf, size_t len) {
  char ref[128];
  printers_kind_ref(k, ref, sizeof(ref));
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  snprintf(buf, len, "%s/%s", ref, m && m->name ? m->name : "");
}

static int entry_cmp(const void *a, const void *b) {
  const str_entry *x = *(const str_entry *const *)a, *y = *(const str_entry *const *)b;
  return strcmp(x->key ? x->key : "", y->key ? y->key : "");
}

char *printers_map_text(void *const *entries, size_t n, const char *sep) {
  if (n == 0) return strdup("<none>");
  const str_entry **sorted = malloc(n * sizeof(*sorted));
  if (!sorted) return NULL;
  for (size_t i = 0; i < n; i++) sorted[i] = entries[i];
  qsort(sorted, n, sizeof(*sorted), entry_cmp);
  char *out = NULL;
  size_t olen = 0;
  FILE *f = open_memstream(&out, &olen);
  if (!f) {
    free(sorted);
    return NULL;
  }
  for (size_t i = 0; i < n; i++)
    fprintf(f, "%s%s=%s", i ? sep : "", sorted[i]->key ? sorted[i]->key : "",
            sorted[i]->value ? sorted[i]->value : "");
  fclose(f);
  free(sorted);
  return out;
}

char *printers_selector_text(const Keel__Api__V1__LabelSelector *sel) {
  if (!sel || (sel->n_match_labels == 0 && sel->n_match_expressions == 0)) return strdup("<none>");
  char *out = NULL;
  size_t olen = 0;
  FILE *f = open_memstream(&out, &olen);
  if (!f) return NULL;
  bool first = true;
  if (sel->n_match_labels) {
    char *ml = printers_map_text((void *const *)sel->match_labels, sel->n_match_labels, ",");
    fputs(ml ? ml : "", f);
    free(ml);
    first = false;
  }
  for (size_t i = 0; i < sel->n_match_expressions; i++) {
    const Keel__Api__V1__LabelSelectorRequirement *r = sel->match_expressions[i];
    const char *op = r->operator_ ? r->operator_ : "";
    fputs(first ? "" : ",", f);
    first = false;
    if (strcmp(op, "Exists") == 0) {
      fprintf(f, "%s", r->key);
    } else if (strcmp(op, "DoesNotExist") == 0) {
      fprintf(f, "!%s", r->key);
    } else {
      fprintf(f, "%s %s (", r->key, strcmp(op, "NotIn") == 0 ? "notin" : "in");
      for (size_t j = 0; j < r->n_values; j++) fprintf(f, "%s%s", j ? "," : "", r->values[j]);
      fputs(")", f);
    }
  }
  fclose(f);
  return out;
}

const char *printers_status_color(const char *s) {
  if (!s || !*s || strcmp(s, "<none>") == 0 || strcmp(s, "<unknown>") == 0) return "";
  static const char *const green[] = {"Running", "Ready", "Active", "Completed", "Succeeded", "Normal", "True", NULL};
  static const char *const yellow[] = {"Pending", "Terminating", "ContainerCreating", "PodInitializing",
                                       "Warning", "Unknown", NULL};
  for (const char *const *g = green; *g; g++)
    if (strcmp(s, *g) == 0) return GREEN;
  for (const char *const *y = yellow; *y; y++)
    if (strcmp(s, *y) == 0) return YELLOW;
  if (strncmp(s, "Init:", 5) == 0 && strchr("0123456789", s[5])) return YELLOW;
  if (strncmp(s, "Ready,", 6) == 0) return YELLOW; /* Ready,SchedulingDisabled */
  return RED;
}

/* ---------------------------------------------------------------- rows */

/* One line of cells, each sanitized and tab-terminated; the last tab becomes
 * the newline. */
typedef struct row {
  char *buf;
  size_t len;
  FILE *f;
  const printer_opts *o;
} row;

static void row_begin(row *r, const printer_opts *o) {
  r->buf = NULL;
  r->len = 0;
  r->o = o;
  r->f = open_memstream(&r->buf, &r->len);
}

static void cell_raw(row *r, const char *color, const char *s) {
  if (!r->f) return;
  bool c = color && *color && r->o->color;
  if (c) fputs(color, r->f);
  for (const char *p = s ? s : ""; *p; p++) fputc(*p == '\t' || *p == '\n' || *p == '\r' ? ' ' : *p, r->f);
  if (c) fputs(PRINTERS_COLOR_RESET, r->f);
  fputc('\t', r->f);
}

static void cell(row *r, const char *s) {
  cell_raw(r, NULL, s);
}

static void cellf(row *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void cellf(row *r, const char *fmt, ...) {
  char *s = NULL;
  va_list ap;
  va_start(ap, fmt);
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  cell(r, n < 0 ? "" : s);
  free(s);
}

static void cell_status(row *r, const char *s) {
  cell_raw(r, printers_status_color(s), s);
}

static void cell_or_none(row *r, const char *s) {
  cell(r, s && *s ? s : "<none>");
}

static void cell_take(row *r, char *s) {
  cell(r, s ? s : "");
  free(s);
}

static void row_end(row *r, tabwriter *tw) {
  if (!r->f) return;
  fclose(r->f);
  r->f = NULL;
  if (r->len > 0 && r->buf[r->len - 1] == '\t') r->buf[r->len - 1] = '\n';
  tabwriter_write(tw, r->buf);
  free(r->buf);
}

static void age_cell(row *r, const Google__Protobuf__Timestamp *ts) {
  char age[32];
  printers_age(ts, r->o->now, age, sizeof(age));
  cell(r, age);
}

/* ---------------------------------------------------------------- columns */

static const char *const pod_cols[] = {"READY", "STATUS", "RESTARTS", "AGE", NULL};
static const char *const pod_wide[] = {"IP", "NODE", "NOMINATED NODE", "READINESS GATES", NULL};
static const char *const deploy_cols[] = {"READY", "UP-TO-DATE", "AVAILABLE", "AGE", NULL};
static const char *const workload_wide[] = {"CONTAINERS", "IMAGES", "SELECTOR", NULL};
static const char *const rs_cols[] = {"DESIRED", "CURRENT", "READY", "AGE", NULL};
static const char *const svc_cols[] = {"TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", NULL};
static const char *const svc_wide[] = {"SELECTOR", NULL};
static const char *const node_cols[] = {"STATUS", "ROLES", "AGE", "VERSION", NULL};
static const char *const node_wide[] = {"INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                                        "CONTAINER-RUNTIME", NULL};
static const char *const ns_cols[] = {"STATUS", "AGE", NULL};
static const char *const ep_cols[] = {"ENDPOINTS", "AGE", NULL};
static const char *const lease_cols[] = {"HOLDER", "AGE", NULL};
static const char *const age_cols[] = {"AGE", NULL};
static const char *const event_cols[] = {"LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE", NULL};
static const char *const event_wide[] = {"SUBOBJECT", "SOURCE", "FIRST SEEN", "COUNT", "NAME", NULL};
static const char *const none[] = {NULL};

static bool is(const api_kind *k, const char *kind) {
  return strcmp(k->kind, kind) == 0;
}

static void columns(const api_kind *k, const char *const **cols, const char *const **wide) {
  *wide = none;
  if (is(k, "Pod")) *cols = pod_cols, *wide = pod_wide;
  else if (is(k, "Deployment")) *cols = deploy_cols, *wide = workload_wide;
  else if (is(k, "ReplicaSet")) *cols = rs_cols, *wide = workload_wide;
  else if (is(k, "Service")) *cols = svc_cols, *wide = svc_wide;
  else if (is(k, "Node")) *cols = node_cols, *wide = node_wide;
  else if (is(k, "Namespace")) *cols = ns_cols;
  else if (is(k, "Endpoints")) *cols = ep_cols;
  else if (is(k, "Lease")) *cols = lease_cols;
  else if (is(k, "Event")) *cols = event_cols, *wide = event_wide;
  else *cols = age_cols;
}

void printers_header(tabwriter *tw, const api_kind *k, const printer_opts *o) {
  const char *const *cols, *const *wide;
  columns(k, &cols, &wide);
  printer_opts plain = *o;
  plain.color = false;
  row r;
  row_begin(&r, &plain);
  if (o->event_col) cell(&r, "EVENT");
  if (o->namespace_col && k->namespaced) cell(&r, "NAMESPACE");
  if (!is(k, "Event")) cell(&r, "NAME");
  for (const char *const *c = cols; *c; c++) cell(&r, *c);
  if (o->wide)
    for (const char *const *c = wide; *c; c++) cell(&r, *c);
  if (o->show_labels) cell(&r, "LABELS");
  row_end(&r, tw);
}

/* ---------------------------------------------------------------- Pod */

void printers_pod_status(const ProtobufCMessage *msg, char *buf, size_t len) {
  const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)msg;
  const Keel__Api__V1__PodStatus *st = p->status;
  const Keel__Api__V1__PodSpec *sp = p->spec;
  char reason[256];
  snprintf(reason, sizeof(reason), "%s", st && st->phase ? st->phase : "");
  if (st && st->reason && *st->reason) snprintf(reason, sizeof(reason), "%s", st->reason);
  bool initializing = false;
  size_t n_init = sp ? sp->n_init_containers : 0;
  for (size_t i = 0; st && i < st->n_init_container_statuses; i++) {
    const Keel__Api__V1__ContainerStatus *cs = st->init_container_statuses[i];
    const Keel__Api__V1__ContainerState *s = cs->state;
    if (s && s->terminated && s->terminated->exit_code == 0) continue;
    if (s && s->terminated) {
      if (s->terminated->reason && *s->terminated->reason)
        snprintf(reason, sizeof(reason), "Init:%s", s->terminated->reason);
      else if (s->terminated->signal != 0)
        snprintf(reason, sizeof(reason), "Init:Signal:%d", s->terminated->signal);
      else
        snprintf(reason, sizeof(reason), "Init:ExitCode:%d", s->terminated->exit_code);
    } else if (s && s->waiting && s->waiting->reason && *s->waiting->reason &&
               strcmp(s->waiting->reason, "PodInitializing") != 0) {
      snprintf(reason, sizeof(reason), "Init:%s", s->waiting->reason);
    } else {
      snprintf(reason, sizeof(reason), "Init:%zu/%zu", i, n_init);
    }
    initializing = true;
    break;
  }
  if (!initializing && st) {
    bool has_running = false;
    for (size_t i = st->n_container_statuses; i-- > 0;) {
      const Keel__Api__V1__ContainerStatus *cs = st->container_statuses[i];
      const Keel__Api__V1__ContainerState *s = cs->state;
      if (s && s->waiting && s->waiting->reason && *s->waiting->reason) {
        snprintf(reason, sizeof(reason), "%s", s->waiting->reason);
      } else if (s && s->terminated && s->terminated->reason && *s->terminated->reason) {
        snprintf(reason, sizeof(reason), "%s", s->terminated->reason);
      } else if (s && s->terminated) {
        if (s->terminated->signal != 0) snprintf(reason, sizeof(reason), "Signal:%d", s->terminated->signal);
        else snprintf(reason, sizeof(reason), "ExitCode:%d", s->terminated->exit_code);
      } else if (cs->ready && s && s->running) {
        has_running = true;
      }
    }
    if (strcmp(reason, "Completed") == 0 && has_running) {
      bool ready = false;
      for (size_t i = 0; i < st->n_conditions; i++)
        if (st->conditions[i]->type && strcmp(st->conditions[i]->type, "Ready") == 0)
          ready = st->conditions[i]->status && strcmp(st->conditions[i]->status, "True") == 0;
      snprintf(reason, sizeof(reason), "%s", ready ? "Running" : "NotReady");
    }
  }
  const Keel__Api__V1__ObjectMeta *m = p->metadata;
  if (m && m->deletion_timestamp) {
    if (st && st->reason && strcmp(st->reason, "NodeLost") == 0) snprintf(reason, sizeof(reason), "Unknown");
    else snprintf(reason, sizeof(reason), "Terminating");
  }
  snprintf(buf, len, "%s", reason);
}

static void pod_row(row *r, const Keel__Api__V1__Pod *p) {
  const Keel__Api__V1__PodStatus *st = p->status;
  size_t total = p->spec ? p->spec->n_containers : 0, ready = 0;
  int64_t restarts = 0;
  bool initializing = false;
  for (size_t i = 0; st && i < st->n_init_container_statuses; i++) {
    const Keel__Api__V1__ContainerStatus *cs = st->init_container_statuses[i];
    restarts += cs->restart_count;
    if (!(cs->state && cs->state->terminated && cs->state->terminated->exit_code == 0)) {
      initializing = true;
      break;
    }
  }
  if (!initializing) restarts = 0;
  for (size_t i = 0; st && i < st->n_container_statuses; i++) {
    const Keel__Api__V1__ContainerStatus *cs = st->container_statuses[i];
    if (!initializing) restarts += cs->restart_count;
    if (cs->ready && cs->state && cs->state->running) ready++;
  }
  char status[256];
  printers_pod_status(&p->base, status, sizeof(status));
  cellf(r, "%zu/%zu", ready, total);
  cell_status(r, status);
  cellf(r, "%lld", (long long)restarts);
  age_cell(r, p->metadata ? p->metadata->creation_timestamp : NULL);
  if (r->o->wide) {
    cell_or_none(r, st ? st->pod_ip : NULL);
    cell_or_none(r, p->spec ? p->spec->node_name : NULL);
    cell_or_none(r, st ? st->nominated_node_name : NULL);
    cell(r, "<none>");
  }
}

/* ---------------------------------------------------------------- workloads */

static void template_cells(row *r, const Keel__Api__V1__PodTemplateSpec *t, const Keel__Api__V1__LabelSelector *sel) {
  char *names = NULL, *images = NULL;
  size_t nl = 0, il = 0;
  FILE *fn = open_memstream(&names, &nl), *fi = open_memstream(&images, &il);
  const Keel__Api__V1__PodSpec *sp = t ? t->spec : NULL;
  for (size_t i = 0; sp && i < sp->n_containers && fn && fi; i++) {
    fprintf(fn, "%s%s", i ? "," : "", sp->containers[i]->name ? sp->containers[i]->name : "");
    fprintf(fi, "%s%s", i ? "," : "", sp->containers[i]->image ? sp->containers[i]->image : "");
  }
  if (fn) fclose(fn);
  if (fi) fclose(fi);
  cell(r, names ? names : "");
  cell(r, images ? images : "");
  free(names);
  free(images);
  cell_take(r, printers_selector_text(sel));
}

static void deployment_row(row *r, const Keel__Api__V1__Deployment *d) {
  const Keel__Api__V1__DeploymentStatus *st = d->status;
  int32_t want = d->spec && d->spec->replicas ? d->spec->replicas->value : 1;
  cellf(r, "%d/%d", st ? st->ready_replicas : 0, want);
  cellf(r, "%d", st ? st->updated_replicas : 0);
  cellf(r, "%d", st ? st->available_replicas : 0);
  age_cell(r, d->metadata ? d->metadata->creation_timestamp : NULL);
  if (r->o->wide) template_cells(r, d->spec ? d->spec->template_ : NULL, d->spec ? d->spec->selector : NULL);
}

static void replicaset_row(row *r, const Keel__Api__V1__ReplicaSet *rs) {
  const Keel__Api__V1__ReplicaSetStatus *st = rs->status;
  cellf(r, "%d", rs->spec && rs->spec->replicas ? rs->spec->replicas->value : 1);
  cellf(r, "%d", st ? st->replicas : 0);
  cellf(r, "%d", st ? st->ready_replicas : 0);
  age_cell(r, rs->metadata ? rs->metadata->creation_timestamp : NULL);
  if (r->o->wide) template_cells(r, rs->spec ? rs->spec->template_ : NULL, rs->spec ? rs->spec->selector : NULL);
}

/* ---------------------------------------------------------------- Service */

static char *service_ports(const Keel__Api__V1__ServiceSpec *sp) {
  if (!sp || sp->n_ports == 0) return strdup("<none>");
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f) return NULL;
  for (size_t i = 0; i < sp->n_ports; i++) {
    const Keel__Api__V1__ServicePort *p = sp->ports[i];
    const char *proto = p->protocol && *p->protocol ? p->protocol : "TCP";
    if (p->node_port) fprintf(f, "%s%d:%d/%s", i ? "," : "", p->port, p->node_port, proto);
    else fprintf(f, "%s%d/%s", i ? "," : "", p->port, proto);
  }
  fclose(f);
  return out;
}

static char *join_strings(char *const *v, size_t n, const char *sep) {
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  if (!f) return NULL;
  for (size_t i = 0; i < n; i++) fprintf(f, "%s%s", i ? sep : "", v[i]);
  fclose(f);
  return out;
}

static char *service_external_ip(const Keel__Api__V1__Service *s) {
  const Keel__Api__V1__ServiceSpec *sp = s->spec;
  const char *type = sp && sp->type && *sp->type ? sp->type : "ClusterIP";
  if (strcmp(type, "LoadBalancer") == 0) {
    const Keel__Api__V1__LoadBalancerStatus *lb = s->status ? s->status->load_balancer : NULL;
    if (!lb || lb->n_ingress == 0) return strdup("<pending>");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    for (size_t i = 0; i < lb->n_ingress; i++)
      fprintf(f, "%s%s", i ? "," : "", lb->ingress[i]->ip && *lb->ingress[i]->ip ? lb->ingress[i]->ip
                                                                                  : lb->ingress[i]->hostname);
    fclose(f);
    return out;
  }
  if (sp && sp->n_external_ips > 0) return join_strings(sp->external_ips, sp->n_external_ips, ",");
  return strdup("<none>");
}

static void service_row(row *r, const Keel__Api__V1__Service *s) {
  const Keel__Api__V1__ServiceSpec *sp = s->spec;
  cell(r, sp && sp->type && *sp->type ? sp->type : "ClusterIP");
  cell_or_none(r, sp ? sp->cluster_ip : NULL);
  cell_take(r, service_external_ip(s));
  cell_take(r, service_ports(sp));
  age_cell(r, s->metadata ? s->metadata->creation_timestamp : NULL);
  if (r->o->wide) cell_take(r, sp ? printers_map_text((void *const *)sp->selector, sp->n_selector, ",") : strdup("<none>"));
}

/* ---------------------------------------------------------------- Node */

static void node_row(row *r, const Keel__Api__V1__Node *n) {
  const Keel__Api__V1__NodeStatus *st = n->status;
  const char *ready = "Unknown";
  for (size_t i = 0; st && i < st->n_conditions; i++) {
    const Keel__Api__V1__NodeCondition *c = st->conditions[i];
    if (!c->type || strcmp(c->type, "Ready") != 0) continue;
    if (c->status && strcmp(c->status, "True") == 0) ready = "Ready";
    else if (c->status && strcmp(c->status, "False") == 0) ready = "NotReady";
  }
  char status[64];
  snprintf(status, sizeof(status), "%s%s", ready, n->spec && n->spec->unschedulable ? ",SchedulingDisabled" : "");
  cell_status(r, status);
  /* ROLES: node-role.kubernetes.io/<role> labels and kubernetes.io/role. */
  const Keel__Api__V1__ObjectMeta *m = n->metadata;
  char *roles = NULL;
  size_t rl = 0;
  FILE *f = open_memstream(&roles, &rl);
  size_t nroles = 0;
  if (f && m) {
    str_entry **sorted = malloc((m->n_labels + 1) * sizeof(*sorted));
    for (size_t i = 0; sorted && i < m->n_labels; i++) sorted[i] = (str_entry *)m->labels[i];
    if (sorted) qsort(sorted, m->n_labels, sizeof(*sorted), entry_cmp);
    for (size_t i = 0; sorted && i < m->n_labels; i++) {
      const char *key = sorted[i]->key, *role = NULL;
      if (strncmp(key, "node-role.kubernetes.io/", 24) == 0) role = key + 24;
      else if (strcmp(key, "kubernetes.io/role") == 0) role = sorted[i]->value;
      if (role && *role) fprintf(f, "%s%s", nroles++ ? "," : "", role);
    }
    free(sorted);
  }
  if (f) fclose(f);
  cell(r, nroles ? roles : "<none>");
  free(roles);
  age_cell(r, m ? m->creation_timestamp : NULL);
  const Keel__Api__V1__NodeSystemInfo *info = st ? st->node_info : NULL;
  cell(r, info && info->kubelet_version ? info->kubelet_version : "");
  if (r->o->wide) {
    const char *internal = NULL, *external = NULL;
    for (size_t i = 0; st && i < st->n_addresses; i++) {
      const Keel__Api__V1__NodeAddress *a = st->addresses[i];
      if (!a->type) continue;
      if (!internal && strcmp(a->type, "InternalIP") == 0) internal = a->address;
      if (!external && strcmp(a->type, "ExternalIP") == 0) external = a->address;
    }
    cell_or_none(r, internal);
    cell_or_none(r, external);
    cell_or_none(r, info ? info->os_image : NULL);
    cell_or_none(r, info ? info->kernel_version : NULL);
    cell_or_none(r, info ? info->container_runtime_version : NULL);
  }
}

/* ---------------------------------------------------------------- others */

static void endpoints_row(row *r, const Keel__Api__V1__Endpoints *e) {
  enum { MAX_SHOWN = 3 };
  char *out = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&out, &len);
  size_t count = 0;
  for (size_t i = 0; f && i < e->n_subsets; i++) {
    const Keel__Api__V1__EndpointSubset *s = e->subsets[i];
    for (size_t a = 0; a < s->n_addresses; a++) {
      const char *ip = s->addresses[a]->ip ? s->addresses[a]->ip : "";
      if (s->n_ports == 0) {
        if (count++ < MAX_SHOWN) fprintf(f, "%s%s", count > 1 ? "," : "", ip);
      }
      for (size_t p = 0; p < s->n_ports; p++)
        if (count++ < MAX_SHOWN) fprintf(f, "%s%s:%d", count > 1 ? "," : "", ip, s->ports[p]->port);
    }
  }
  if (f && count > MAX_SHOWN) fprintf(f, " + %zu more...", count - MAX_SHOWN);
  if (f) fclose(f);
  cell(r, count ? out : "<none>");
  free(out);
  age_cell(r, e->metadata ? e->metadata->creation_timestamp : NULL);
}

static const Google__Protobuf__Timestamp *nonzero(const Google__Protobuf__Timestamp *t) {
  return t && (t->seconds || t->nanos) ? t : NULL;
}

static void event_row(row *r, const Keel__Api__V1__Event *e) {
  const Google__Protobuf__Timestamp *created = e->metadata ? e->metadata->creation_timestamp : NULL;
  /* kubectl: lastTimestamp, else eventTime. Events written without either
   * (by hand) fall back to when they were created. */
  const Google__Protobuf__Timestamp *last = nonzero(e->last_timestamp);
  if (!last) last = nonzero(e->event_time);
  if (!last) last = created;
  age_cell(r, last);
  cell_status(r, e->type ? e->type : "");
  cell(r, e->reason ? e->reason : "");
  const Keel__Api__V1__ObjectReference *io = e->involved_object;
  char *kind = strdup(io && io->kind ? io->kind : "");
  for (char *p = kind; p && *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  cellf(r, "%s/%s", kind ? kind : "", io && io->name ? io->name : "");
  free(kind);
  /* The message is the last column: trim it as kubectl does. */
  const char *msg = e->message ? e->message : "";
  while (*msg == ' ' || *msg == '\n' || *msg == '\t') msg++;
  size_t ml = strlen(msg);
  while (ml > 0 && (msg[ml - 1] == ' ' || msg[ml - 1] == '\n' || msg[ml - 1] == '\t')) ml--;
  cellf(r, "%.*s", (int)ml, msg);
  if (r->o->wide) {
    cell(r, io && io->field_path ? io->field_path : "");
    const Keel__Api__V1__EventSource *src = e->source;
    if (src && src->host && *src->host) cellf(r, "%s, %s", src->component ? src->component : "", src->host);
    else cell(r, src && src->component && *src->component ? src->component : (e->reporting_component ? e->reporting_component : ""));
    const Google__Protobuf__Timestamp *first = nonzero(e->first_timestamp);
    if (!first) first = nonzero(e->event_time);
    if (!first) first = created;
    age_cell(r, first);
    cellf(r, "%d", e->count);
    cell(r, e->metadata && e->metadata->name ? e->metadata->name : "");
  }
}

static void lease_row(row *r, const Keel__Api__V1__Lease *l) {
  const Keel__Api__V1__LeaseSpec *sp = l->spec;
  cell(r, sp && sp->holder_identity ? sp->holder_identity->value : "");
  age_cell(r, l->metadata ? l->metadata->creation_timestamp : NULL);
}

void printers_row(tabwriter *tw, const api_kind *k, const ProtobufCMessage *obj, const printer_opts *o,
                  const char *event) {
  row r;
  row_begin(&r, o);
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (o->event_col) cell(&r, event ? event : "ADDED");
  if (o->namespace_col && k->namespaced) cell(&r, m && m->namespace_ ? m->namespace_ : "");
  if (!is(k, "Event")) {
    if (o->with_kind) {
      char name[512];
      printers_object_name(k, obj, name, sizeof(name));
      cell(&r, name);
    } else {
      cell(&r, m && m->name ? m->name : "");
    }
  }
  if (is(k, "Pod")) pod_row(&r, (const Keel__Api__V1__Pod *)obj);
  else if (is(k, "Deployment")) deployment_row(&r, (const Keel__Api__V1__Deployment *)obj);
  else if (is(k, "ReplicaSet")) replicaset_row(&r, (const Keel__Api__V1__ReplicaSet *)obj);
  else if (is(k, "Service")) service_row(&r, (const Keel__Api__V1__Service *)obj);
  else if (is(k, "Node")) node_row(&r, (const Keel__Api__V1__Node *)obj);
  else if (is(k, "Namespace")) {
    const Keel__Api__V1__Namespace *n = (const Keel__Api__V1__Namespace *)obj;
    cell_status(&r, n->status && n->status->phase ? n->status->phase : "");
    age_cell(&r, m ? m->creation_timestamp : NULL);
  } else if (is(k, "Endpoints")) endpoints_row(&r, (const Keel__Api__V1__Endpoints *)obj);
  else if (is(k, "Event")) event_row(&r, (const Keel__Api__V1__Event *)obj);
  else if (is(k, "Lease")) lease_row(&r, (const Keel__Api__V1__Lease *)obj);
  else age_cell(&r, m ? m->creation_timestamp : NULL);
  if (o->show_labels) cell_take(&r, m ? printers_map_text((void *const *)m->labels, m->n_labels, ",") : strdup("<none>"));
  row_end(&r, tw);
}
