/* cli/apply.c — `keel apply -f` and `keel create`.
 *
 * apply, per object of the manifests: Get it; absent -> Create ("created");
 * present -> the file's object becomes the new object, with what the server
 * owns kept (uid, creationTimestamp, generation, status, a Service's
 * allocated ClusterIP and NodePorts: the apiserver carries those over on
 * Update), and the finalizers and ownerReferences the server has when the
 * file does not write those fields at all (`finalizers: []` clears them). Whether that changes anything is asked of the server
 * itself: an Update in dry-run mode returns the object as it would be stored
 * (defaults applied), which is compared with the current one; equal ->
 * "unchanged" and nothing is written, else the Update is sent
 * ("configured"). kubectl's three-way merge with last-applied-configuration
 * is not done: a field removed from the file is removed from the object (the
 * file is the whole truth for what it describes).
 *
 * The Update carries the resourceVersion the file gives (so applying an old
 * `get -o yaml` over a newer object is a Conflict, as with kubectl), else the
 * one just read; a race with another writer is retried with a fresh read. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/printers.h"

typedef struct apply_opts {
  flag_string_list files;
  char *dry_run;
  char *output;
  bool server_dry, client_dry;
} apply_opts;

typedef struct collected {
  ProtobufCMessage **objs;
  size_t n;
} collected;

static void collect(collected *col, ProtobufCMessage *obj) {
  ProtobufCMessage **o = realloc(col->objs, (col->n + 1) * sizeof(*o));
  if (!o) {
    protobuf_c_message_free_unpacked(obj, NULL);
    return;
  }
  col->objs = o;
  col->objs[col->n++] = obj;
}

static void collected_free(collected *col) {
  for (size_t i = 0; i < col->n; i++) protobuf_c_message_free_unpacked(col->objs[i], NULL);
  free(col->objs);
}

static int parse_dry_run(cli *x, apply_opts *ao) {
  const char *d = ao->dry_run ? ao->dry_run : "none";
  if (strcmp(d, "none") == 0 || strcmp(d, "false") == 0) return 0;
  if (strcmp(d, "server") == 0) ao->server_dry = true;
  else if (strcmp(d, "client") == 0 || strcmp(d, "true") == 0) ao->client_dry = true;
  else return cli_error(x, "invalid dry-run value (%s); must be \"none\", \"server\", or \"client\"", d), -1;
  return 0;
}

static const char *dry_suffix(const apply_opts *ao) {
  return ao->server_dry ? " (server dry run)" : ao->client_dry ? " (dry run)" : "";
}

/* "error when creating \"web.yaml:14\": " with the line of the field the
 * server names ("Deployment.apps \"web\" is invalid: spec.replicas: ..."). */
static void error_context(const manifest_object *mo, const client_status *st, const char *verb, char *buf,
                          size_t len) {
  int line = mo->line;
  const char *inv = strstr(st->message, "is invalid: ");
  if (inv) {
    const char *p = inv + strlen("is invalid: ");
    if (*p == '[') p++;
    const char *end = strstr(p, ": ");
    if (end && end - p < 256) {
      char path[256];
      snprintf(path, sizeof(path), "%.*s", (int)(end - p), p);
      line = manifest_object_line(mo, path);
    }
  }
  snprintf(buf, len, "error when %s \"%s:%d\": ", verb, mo->source, line);
}

/* Sets the object's namespace from -n / the context, refusing a conflict. */
static int resolve_namespace(cli *x, manifest_object *mo) {
  const api_kind *k = mo->kind;
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, mo->msg);
  if (!k->namespaced) {
    cli_set_str(&m->namespace_, NULL);
    return 0;
  }
  if (m->namespace_ && *m->namespace_) {
    if (x->namespace_ && *x->namespace_ && strcmp(x->namespace_, m->namespace_) != 0) {
      cli_error(x,
                "%s:%d: the namespace from the provided object \"%s\" does not match the namespace \"%s\". You "
                "must pass '--namespace=%s' to perform this operation.",
                mo->source, mo->line, m->namespace_, x->namespace_, m->namespace_);
      return -1;
    }
    return 0;
  }
  cli_set_str(&m->namespace_, cli_namespace(x));
  return 0;
}

static void print_result(const api_kind *k, const ProtobufCMessage *obj, const char *what, const apply_opts *ao) {
  char name[512];
  printers_object_name(k, obj, name, sizeof(name));
  if (ao->output && strcmp(ao->output, "name") == 0) printf("%s\n", name);
  else if (!ao->output || !*ao->output) printf("%s %s%s\n", name, what, dry_suffix(ao));
  fflush(stdout);
}

static int create_one(cli *x, client *c, manifest_object *mo, const apply_opts *ao, collected *col) {
  client_call_options co = cli_call_opts(x, ao->server_dry);
  ProtobufCMessage *out = NULL;
  client_status st;
  if (ao->client_dry) {
    print_result(mo->kind, mo->msg, "created", ao);
    return 0;
  }
  if (client_create(c, mo->kind, mo->msg, &out, &co, &st) < 0) {
    char ctx[1024];
    error_context(mo, &st, "creating", ctx, sizeof(ctx));
    return cli_server_error(x, &st, ctx);
  }
  print_result(mo->kind, out, "created", ao);
  collect(col, out);
  return 0;
}

/* Copies a repeated message field (OwnerReference) from cur into next. */
static void carry_owner_refs(Keel__Api__V1__ObjectMeta *next, const Keel__Api__V1__ObjectMeta *cur) {
  if (next->n_owner_references || !cur->n_owner_references) return;
  next->owner_references = calloc(cur->n_owner_references, sizeof(*next->owner_references));
  if (!next->owner_references) return;
  for (size_t i = 0; i < cur->n_owner_references; i++) {
    ProtobufCMessage *o = api_message_clone(&cur->owner_references[i]->base);
    if (!o) break;
    next->owner_references[next->n_owner_references++] = (Keel__Api__V1__OwnerReference *)o;
  }
}

static void carry_finalizers(Keel__Api__V1__ObjectMeta *next, const Keel__Api__V1__ObjectMeta *cur) {
  if (next->n_finalizers || !cur->n_finalizers) return;
  next->finalizers = calloc(cur->n_finalizers, sizeof(char *));
  if (!next->finalizers) return;
  for (size_t i = 0; i < cur->n_finalizers; i++) {
    char *f = strdup(cur->finalizers[i]);
    if (!f) break;
    next->finalizers[next->n_finalizers++] = f;
  }
}

/* Whether the manifest writes the field at path at all. */
static bool file_has(const manifest_object *mo, const char *path) {
  return mo->pos && manifest_pos_find(mo->pos, path, NULL, NULL) == strlen(path);
}

static bool same_object(cli *x, const ProtobufCMessage *a, const ProtobufCMessage *b) {
  json_t *ja = cli_object_json_for_compare(x, a), *jb = cli_object_json_for_compare(x, b);
  bool eq = ja && jb && json_equal(ja, jb);
  json_decref(ja);
  json_decref(jb);
  return eq;
}

static int apply_one(cli *x, client *c, manifest_object *mo, const apply_opts *ao, collected *col) {
  const api_kind *k = mo->kind;
  const Keel__Api__V1__ObjectMeta *fm = api_object_meta(k, mo->msg);
  if (!fm || !fm->name || !*fm->name)
    return cli_error(x, "%s:%d: %s has no metadata.name (apply needs a name; generateName is for create)",
                     mo->source, mo->line, k->kind);
  const char *ns = fm->namespace_ ? fm->namespace_ : "";
  bool file_rv = fm->resource_version && *fm->resource_version;
  client_call_options get_opts = cli_call_opts(x, false);
  char ctx[1024];
  for (int attempt = 0;; attempt++) {
    ProtobufCMessage *cur = NULL;
    client_status st;
    if (client_get(c, k, ns, fm->name, NULL, &cur, &get_opts, &st) < 0) {
      if (client_is_not_found(&st)) return create_one(x, c, mo, ao, col);
      snprintf(ctx, sizeof(ctx), "error when retrieving current configuration of \"%s:%d\": ", mo->source,
               mo->line);
      return cli_server_error(x, &st, ctx);
    }
    ProtobufCMessage *next = api_message_clone(mo->msg);
    if (!next) {
      protobuf_c_message_free_unpacked(cur, NULL);
      return cli_error(x, "out of memory");
    }
    Keel__Api__V1__ObjectMeta *nm = api_object_meta_ensure(k, next);
    const Keel__Api__V1__ObjectMeta *cm = api_object_meta(k, cur);
    if (!file_rv && cm) cli_set_str(&nm->resource_version, cm->resource_version);
    /* Written in the file (even as []): the file's. Not written: the server's. */
    if (cm && !file_has(mo, "metadata.ownerReferences")) carry_owner_refs(nm, cm);
    if (cm && !file_has(mo, "metadata.finalizers")) carry_finalizers(nm, cm);
    /* What the object would become, asked of the server without writing. */
    client_call_options dry = cli_call_opts(x, true);
    ProtobufCMessage *would = NULL;
    int rc = client_update(c, k, next, &would, &dry, &st);
    if (rc == 0 && same_object(x, would, cur)) {
      print_result(k, cur, "unchanged", ao);
      collect(col, cur);
      protobuf_c_message_free_unpacked(next, NULL);
      protobuf_c_message_free_unpacked(would, NULL);
      return 0;
    }
    if (rc == 0 && (ao->server_dry || ao->client_dry)) {
      print_result(k, would, "configured", ao);
      collect(col, would);
      protobuf_c_message_free_unpacked(next, NULL);
      protobuf_c_message_free_unpacked(cur, NULL);
      return 0;
    }
    if (would) protobuf_c_message_free_unpacked(would, NULL);
    ProtobufCMessage *out = NULL;
    if (rc == 0) {
      client_call_options wo = cli_call_opts(x, false);
      rc = client_update(c, k, next, &out, &wo, &st);
    }
    protobuf_c_message_free_unpacked(next, NULL);
    protobuf_c_message_free_unpacked(cur, NULL);
    if (rc == 0) {
      print_result(k, out, "configured", ao);
      collect(col, out);
      return 0;
    }
    if (client_is_conflict(&st) && !file_rv && attempt < 3) continue; /* somebody wrote in between */
    error_context(mo, &st, "applying", ctx, sizeof(ctx));
    return cli_server_error(x, &st, ctx);
  }
}

static int run(cli *x, int argc, char **argv, bool create) {
  apply_opts ao = {.dry_run = "none", .output = ""};
  flag_def defs[] = {
      FLAG_STRING_LIST("filename", &ao.files, "manifests (-f): a file, a directory of *.yaml/*.yml/*.json, or -"),
      FLAG_STRING("dry-run", &ao.dry_run, "none, server (validated by the server, nothing stored) or client"),
      FLAG_STRING("output", &ao.output, "-o name, yaml or json: print the objects instead of what happened"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = create ? cli_parse(x, "keel create (-f FILE | namespace NAME)",
                               "Create objects from manifests (an existing object is an error).", defs,
                               CLI_FLAGS_CONNECT, argc, argv, &pos, &npos)
                   : cli_parse(x, "keel apply -f FILE|DIR|-",
                               "Create or update objects from manifests (multi-document YAML or JSON).\n"
                               "An existing object is replaced by the file's, keeping what the server owns "
                               "(status, uid, allocated IPs and ports).",
                               defs, CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  manifest_object *objs = NULL;
  size_t n = 0;
  collected col = {0};
  if (parse_dry_run(x, &ao) < 0) {
    rc = 1;
    goto out;
  }
  if (*ao.output && strcmp(ao.output, "name") && strcmp(ao.output, "yaml") && strcmp(ao.output, "json")) {
    rc = cli_error(x, "unable to match a printer suitable for the output format \"%s\", allowed formats are: "
                      "json,name,yaml", ao.output);
    goto out;
  }
  if (create && npos > 0) {
    /* keel create namespace NAME */
    if (npos != 2 || !api_kind_by_name(pos[0]) || strcmp(api_kind_by_name(pos[0])->kind, "Namespace") != 0) {
      rc = cli_error(x, "keel create takes -f FILE, or `namespace NAME`");
      goto out;
    }
    if (!cli_pj(x)) {
      rc = 1;
      goto out;
    }
    char *text = NULL;
    keel_error err = {0};
    json_t *doc = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind", "Namespace", "metadata", "name", pos[1]);
    if (doc) text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text || manifest_decode(x->pj, "namespace", text, strlen(text), &objs, &n, &err) < 0) {
      rc = cli_error(x, "%s", text ? err.message : "out of memory");
      free(text);
      goto out;
    }
    free(text);
  } else {
    if (npos > 0) {
      rc = cli_error(x, "unexpected arguments; give the objects with -f FILE");
      goto out;
    }
    if (ao.files.count == 0) {
      rc = cli_error(x, "must specify one of -f and -k");
      goto out;
    }
    if (cli_read_manifests(x, &ao.files, &objs, &n) < 0) {
      rc = 1;
      goto out;
    }
    if (n == 0) {
      rc = cli_error(x, "no objects passed to %s", create ? "create" : "apply");
      goto out;
    }
  }
  client *c = cli_client(x);
  if (!c) {
    rc = 1;
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (resolve_namespace(x, &objs[i]) < 0) {
      rc = 1;
      continue;
    }
    if ((create ? create_one(x, c, &objs[i], &ao, &col) : apply_one(x, c, &objs[i], &ao, &col)) != 0) rc = 1;
  }
  if (*ao.output && strcmp(ao.output, "name") != 0 && col.n > 0 &&
      cli_print_objects(x, (const ProtobufCMessage *const *)col.objs, col.n, ao.output, col.n == 1))
    rc = 1;
out:
  collected_free(&col);
  manifest_objects_free(objs, n);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

int cmd_apply(cli *x, int argc, char **argv) {
  return run(x, argc, argv, false);
}

int cmd_create(cli *x, int argc, char **argv) {
  return run(x, argc, argv, true);
}
