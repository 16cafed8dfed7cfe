/* cli/get.c — `keel get`: tables, -o yaml|json|name|wide, and -w streaming.
 *
 * A get is a list per kind given alone and a Get per name given, printed in
 * the order asked. With several kinds, each gets its own table (separated by
 * a blank line) and names read kind/name, as kubectl prints them.
 *
 * -w lists first (unless --watch-only), prints the table, then watches from
 * the list's resourceVersion and prints one row per event, flushed at once so
 * that a pipe or a file sees each line when it happens. The tabwriter
 * remembers column widths across flushes, so later rows stay aligned under
 * the header. The stream is resumed when the server ends it (timeout) or
 * drops a slow watcher; any other end is an error. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/printers.h"

int cli_print_objects(cli *x, const ProtobufCMessage *const *objs, size_t n, const char *output, bool single) {
  protojson *pj = cli_pj(x);
  if (!pj) return 1;
  keel_error err = {0};
  char *text = NULL;
  if (strcmp(output, "name") == 0) {
    for (size_t i = 0; i < n; i++) {
      const api_kind *k = api_kind_by_object(objs[i]->descriptor);
      char name[512];
      printers_object_name(k, objs[i], name, sizeof(name));
      printf("%s\n", name);
    }
    fflush(stdout);
    return 0;
  }
  bool yaml = strcmp(output, "yaml") == 0;
  if (single && n == 1) text = yaml ? manifest_to_yaml(pj, objs[0], MANIFEST_SORT_KEYS, &err)
                                    : manifest_to_json(pj, objs[0], MANIFEST_SORT_KEYS, &err);
  else text = yaml ? manifest_list_to_yaml(pj, objs, n, MANIFEST_SORT_KEYS | MANIFEST_AS_LIST, &err)
                   : manifest_list_to_json(pj, objs, n, MANIFEST_SORT_KEYS | MANIFEST_AS_LIST, &err);
  if (!text) return cli_error(x, "%s", err.message);
  fputs(text, stdout);
  fflush(stdout);
  free(text);
  return 0;
}

typedef struct get_opts {
  char *output;
  char *selector, *field_selector;
  bool all_ns, watch, watch_only, no_headers, show_labels, watch_events, ignore_not_found;
  flag_string_list files;
} get_opts;

static bool output_is_table(const char *o) {
  return !*o || strcmp(o, "wide") == 0;
}

/* The objects of one list response, borrowed from it. */
static ProtobufCMessage **list_items(const api_kind *k, ProtobufCMessage *list, size_t *n) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(k->list, "items");
  *n = *(const size_t *)((const char *)list + f->quantifier_offset);
  return *(ProtobufCMessage ***)((char *)list + f->offset);
}

static const char *list_rv(const api_kind *k, const ProtobufCMessage *list) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(k->list, "metadata");
  const Keel__Api__V1__ListMeta *m = *(Keel__Api__V1__ListMeta *const *)((const char *)list + f->offset);
  return m && m->resource_version ? m->resource_version : "";
}

static void no_resources(cli *x, const api_kind *k, bool all_ns) {
  fflush(stdout);
  if (all_ns || !k->namespaced) fprintf(stderr, "No resources found\n");
  else fprintf(stderr, "No resources found in %s namespace.\n", cli_namespace(x));
}

/* ---------------------------------------------------------------- watch */

typedef struct watcher {
  cli *x;
  const api_kind *k;
  const get_opts *go;
  tabwriter *tw;
  printer_opts po;
  bool header_done;
  size_t printed;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool closed;
  client_status st;
  char rv[64];
} watcher;

static void watch_print(watcher *w, const char *type, const ProtobufCMessage *obj) {
  const char *o = w->go->output;
  if (output_is_table(o)) {
    w->po.now = time(NULL);
    if (!w->header_done && !w->go->no_headers) printers_header(w->tw, w->k, &w->po);
    w->header_done = true;
    printers_row(w->tw, w->k, obj, &w->po, type);
    tabwriter_flush(w->tw, stdout);
  } else if (strcmp(o, "name") == 0) {
    cli_print_objects(w->x, &obj, 1, "name", true);
  } else {
    if (strcmp(o, "yaml") == 0 && w->printed > 0) fputs("---\n", stdout);
    cli_print_objects(w->x, &obj, 1, o, true);
  }
  w->printed++;
  fflush(stdout);
}

static void on_event(const char *type, const ProtobufCMessage *obj, int64_t rv, void *arg) {
  watcher *w = arg;
  pthread_mutex_lock(&w->mu);
  if (rv > 0) snprintf(w->rv, sizeof(w->rv), "%lld", (long long)rv);
  if (strcmp(type, "BOOKMARK") != 0) watch_print(w, type, obj);
  pthread_mutex_unlock(&w->mu);
}

static void on_close(const client_status *st, void *arg) {
  watcher *w = arg;
  pthread_mutex_lock(&w->mu);
  w->st = *st;
  w->closed = true;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static int run_watch(cli *x, client *c, const api_kind *k, const char *name, const get_opts *go, printer_opts po) {
  char *fs = NULL;
  if (name && *name) {
    if (asprintf(&fs, "metadata.name=%s%s%s", name, go->field_selector && *go->field_selector ? "," : "",
                 go->field_selector ? go->field_selector : "") < 0)
      return cli_error(x, "out of memory");
  } else if (go->field_selector) {
    fs = strdup(go->field_selector);
  }
  const char *ns = go->all_ns || !k->namespaced ? "" : cli_namespace(x);
  Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
  lr.namespace_ = (char *)ns;
  lr.label_selector = go->selector ? go->selector : "";
  lr.field_selector = fs ? fs : "";
  ProtobufCMessage *list = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_list(c, k, &lr, &list, &co, &st) < 0) {
    free(fs);
    return cli_server_error(x, &st, NULL);
  }
  watcher w = {.x = x, .k = k, .go = go, .po = po};
  w.tw = printers_table_new();
  pthread_mutex_init(&w.mu, NULL);
  pthread_cond_init(&w.cond, NULL);
  snprintf(w.rv, sizeof(w.rv), "%s", list_rv(k, list));
  size_t n;
  ProtobufCMessage **items = list_items(k, list, &n);
  if (!go->watch_only) {
    if (n == 0 && output_is_table(go->output)) no_resources(x, k, go->all_ns);
    for (size_t i = 0; i < n; i++) watch_print(&w, "ADDED", items[i]);
  }
  protobuf_c_message_free_unpacked(list, NULL);
  int rc = 0;
  for (;;) {
    Keel__Api__V1__WatchRequest wr = KEEL__API__V1__WATCH_REQUEST__INIT;
    wr.namespace_ = (char *)ns;
    wr.label_selector = go->selector ? go->selector : "";
    wr.field_selector = fs ? fs : "";
    wr.resource_version = w.rv;
    wr.allow_watch_bookmarks = true;
    client_watch_handlers h = {.on_event = on_event, .on_close = on_close};
    keel_error err = {0};
    w.closed = false;
    client_watch *cw = client_watch_start(c, k, &wr, &h, &w, &err);
    if (!cw) {
      rc = cli_error(x, "%s", err.message);
      break;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.closed) pthread_cond_wait(&w.cond, &w.mu);
    client_status end = w.st;
    pthread_mutex_unlock(&w.mu);
    client_watch_stop(cw);
    if (end.code == GRPC_STATUS_OK || end.code == GRPC_STATUS_RESOURCE_EXHAUSTED) continue;
    rc = cli_server_error(x, &end, NULL);
    break;
  }
  tabwriter_free(w.tw);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  free(fs);
  return rc;
}

/* ---------------------------------------------------------------- get */

typedef struct found {
  const api_kind *kind;
  ProtobufCMessage *obj; /* owned, or borrowed from a list in `lists` */
  bool owned;
} found;

typedef struct results {
  found *items;
  size_t n, cap;
  ProtobufCMessage **lists;
  size_t nlists;
} results;

static int add_found(results *r, const api_kind *k, ProtobufCMessage *obj, bool owned) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    found *f = realloc(r->items, cap * sizeof(*f));
    if (!f) return -1;
    r->items = f;
    r->cap = cap;
  }
  r->items[r->n++] = (found){k, obj, owned};
  return 0;
}

static void results_free(results *r) {
  for (size_t i = 0; i < r->n; i++)
    if (r->items[i].owned) protobuf_c_message_free_unpacked(r->items[i].obj, NULL);
  for (size_t i = 0; i < r->nlists; i++) protobuf_c_message_free_unpacked(r->lists[i], NULL);
  free(r->items);
  free(r->lists);
}

int cmd_get(cli *x, int argc, char **argv) {
  get_opts go = {.output = ""};
  flag_def defs[] = {
      FLAG_STRING("output", &go.output, "output format (-o): wide, yaml, json, name"),
      FLAG_STRING("selector", &go.selector, "label selector (-l), e.g. app=nginx,tier in (web,api)"),
      FLAG_STRING("field-selector", &go.field_selector, "field selector, e.g. status.phase=Running"),
      FLAG_BOOL("all-namespaces", &go.all_ns, "every namespace (-A)"),
      FLAG_BOOL("watch", &go.watch, "after listing, print each change (-w)"),
      FLAG_BOOL("watch-only", &go.watch_only, "print changes only, not the current objects"),
      FLAG_BOOL("output-watch-events", &go.watch_events, "an EVENT column (ADDED, MODIFIED, DELETED) with -w"),
      FLAG_BOOL("no-headers", &go.no_headers, "tables without their header line"),
      FLAG_BOOL("show-labels", &go.show_labels, "a LABELS column"),
      FLAG_BOOL("ignore-not-found", &go.ignore_not_found, "a named object that does not exist is not an error"),
      FLAG_STRING_LIST("filename", &go.files, "the objects of these manifests (-f): files, directories, -"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel get (TYPE[,TYPE...] [NAME...] | TYPE/NAME... | -f FILE)",
                      "Show objects as tables (kubectl's columns), YAML, JSON or names; -w streams changes.", defs,
                      CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  cli_targets t = {0};
  results res = {0};
  tabwriter *tw = NULL;
  const char *o = go.output;
  if (*o && strcmp(o, "wide") && strcmp(o, "yaml") && strcmp(o, "json") && strcmp(o, "name")) {
    rc = cli_error(x, "unable to match a printer suitable for the output format \"%s\", allowed formats are: "
                      "json,name,wide,yaml", o);
    goto out;
  }
  if (go.watch_only) go.watch = true;
  if (go.files.count > 0) {
    if (npos > 0) {
      rc = cli_error(x, "give objects either with -f or as arguments, not both");
      goto out;
    }
  }
  if (cli_targets_read(x, &go.files, pos, npos, true, &t) < 0) {
    rc = 1;
    goto out;
  }
  client *c = cli_client(x);
  if (!c) {
    rc = 1;
    goto out;
  }
  printer_opts po = {.wide = strcmp(o, "wide") == 0, .namespace_col = go.all_ns, .show_labels = go.show_labels,
                     .event_col = go.watch_events, .color = x->color_out, .now = time(NULL)};
  if (go.watch) {
    if (t.nrefs != 1) {
      rc = cli_error(x, "you may only specify a single resource type (and at most one name) with -w");
      goto out;
    }
    rc = run_watch(x, c, t.refs[0].kind, t.refs[0].name, &go, po);
    goto out;
  }
  size_t nkinds = 0;
  for (size_t i = 0; i < t.nrefs; i++) {
    bool seen = false;
    for (size_t j = 0; j < i; j++) seen = seen || t.refs[j].kind == t.refs[i].kind;
    if (!seen) nkinds++;
  }
  bool any_kind_only = false, listed_any = false;
  client_call_options co = cli_call_opts(x, false);
  for (size_t i = 0; i < t.nrefs; i++) {
    const api_kind *k = t.refs[i].kind;
    client_status st;
    if (!*t.refs[i].name) {
      any_kind_only = true;
      Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
      lr.namespace_ = (char *)(go.all_ns || !k->namespaced ? "" : cli_namespace(x));
      lr.label_selector = go.selector ? go.selector : "";
      lr.field_selector = go.field_selector ? go.field_selector : "";
      ProtobufCMessage *list = NULL;
      if (client_list(c, k, &lr, &list, &co, &st) < 0) {
        rc = cli_server_error(x, &st, NULL);
        continue;
      }
      ProtobufCMessage **ls = realloc(res.lists, (res.nlists + 1) * sizeof(*ls));
      if (!ls) {
        protobuf_c_message_free_unpacked(list, NULL);
        rc = cli_error(x, "out of memory");
        break;
      }
      res.lists = ls;
      res.lists[res.nlists++] = list;
      size_t n;
      ProtobufCMessage **items = list_items(k, list, &n);
      for (size_t j = 0; j < n; j++) add_found(&res, k, items[j], false);
      if (n) listed_any = true;
    } else {
      const char *ns = cli_targets_namespace(x, &t, i);
      ProtobufCMessage *obj = NULL;
      if (client_get(c, k, ns, t.refs[i].name, NULL, &obj, &co, &st) < 0) {
        if (!(go.ignore_not_found && client_is_not_found(&st))) rc = cli_server_error(x, &st, NULL);
        continue;
      }
      add_found(&res, k, obj, true);
    }
  }
  if (!output_is_table(o)) {
    const ProtobufCMessage **objs = calloc(res.n ? res.n : 1, sizeof(*objs));
    if (!objs) {
      rc = cli_error(x, "out of memory");
      goto out;
    }
    for (size_t i = 0; i < res.n; i++) objs[i] = res.items[i].obj;
    bool single = !any_kind_only && t.nrefs == 1;
    if (res.n > 0 || strcmp(o, "name") != 0) {
      if (!(single && res.n == 0) && cli_print_objects(x, objs, res.n, o, single)) rc = 1;
    } else if (any_kind_only && rc == 0) {
      no_resources(x, t.refs[0].kind, go.all_ns);
    }
    free(objs);
    goto out;
  }
  if (any_kind_only && !listed_any && res.n == 0 && rc == 0) {
    no_resources(x, t.refs[0].kind, go.all_ns);
    goto out;
  }
  po.with_kind = nkinds > 1;
  tw = printers_table_new();
  bool first_table = true;
  for (size_t i = 0; i < res.n;) {
    const api_kind *k = res.items[i].kind;
    size_t j = i;
    /* One table per run of one kind; a new table has its own widths. */
    tabwriter_free(tw);
    tw = printers_table_new();
    if (!first_table) fputs("\n", stdout);
    first_table = false;
    if (!go.no_headers) printers_header(tw, k, &po);
    for (; j < res.n && res.items[j].kind == k; j++) printers_row(tw, k, res.items[j].obj, &po, NULL);
    if (tabwriter_flush(tw, stdout) < 0) rc = cli_error(x, "writing the table failed");
    i = j;
  }
out:
  tabwriter_free(tw);
  results_free(&res);
  cli_targets_free(&t);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
