/* cli/delete.c — `keel delete (-f FILE | TYPE NAME... | TYPE/NAME... |
 * TYPE -l SELECTOR | TYPE --all) [--wait]`.
 *
 * Each object is deleted with one Delete call and reported as kubectl does
 * (`pod "web" deleted`). An object with finalizers, or a Pod bound to a node
 * (its agent confirms the containers stopped), is only marked for deletion
 * and goes later: --wait watches each one until it is gone (or replaced by
 * another object of the same name), up to --timeout. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/printers.h"
#include "cli/wait.h"

typedef struct victim {
  const api_kind *kind;
  char *ns, *name, *uid;
} victim;

static bool gone(const ProtobufCMessage *obj, void *arg) {
  (void)arg;
  return obj == NULL;
}

static void victims_free(victim *v, size_t n) {
  for (size_t i = 0; i < n; i++) {
    free(v[i].ns);
    free(v[i].name);
    free(v[i].uid);
  }
  free(v);
}

int cmd_delete(cli *x, int argc, char **argv) {
  flag_string_list files = {0};
  char *selector = NULL, *timeout = "60s", *dry_run = "none";
  bool wait = false, all = false, ignore_not_found = false, now = false, force = false, all_ns = false;
  int64_t grace = -1;
  flag_def defs[] = {
      FLAG_STRING_LIST("filename", &files, "delete the objects of these manifests (-f)"),
      FLAG_STRING("selector", &selector, "delete the objects matching this label selector (-l)"),
      FLAG_BOOL("all", &all, "delete every object of the type in the namespace"),
      FLAG_BOOL("all-namespaces", &all_ns, "with -l or --all: in every namespace (-A)"),
      FLAG_BOOL("wait", &wait, "wait until the objects are gone"),
      FLAG_STRING("timeout", &timeout, "how long --wait waits (e.g. 30s, 2m; 0: forever)"),
      FLAG_INT("grace-period", &grace, "seconds a pod gets to stop (-1: its own terminationGracePeriodSeconds)"),
      FLAG_BOOL("now", &now, "grace period 1 (stop at once)"),
      FLAG_BOOL("force", &force, "grace period 0: remove the object without waiting for its node"),
      FLAG_BOOL("ignore-not-found", &ignore_not_found, "an object that does not exist is not an error"),
      FLAG_STRING("dry-run", &dry_run, "none or server (checked by the server, nothing deleted)"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel delete (-f FILE | TYPE NAME... | TYPE/NAME... | TYPE -l SELECTOR | TYPE --all)",
                      "Delete objects; --wait waits until they are gone.", defs, CLI_FLAGS_CONNECT, argc, argv, &pos,
                      &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  cli_ref *refs = NULL;
  size_t nrefs = 0;
  manifest_object *mobjs = NULL;
  size_t nm = 0;
  victim *victims = NULL;
  size_t nv = 0;
  int64_t timeout_ms = 0;
  bool server_dry = strcmp(dry_run, "server") == 0;
  if (!server_dry && strcmp(dry_run, "none") != 0) {
    rc = cli_error(x, "invalid dry-run value (%s); must be \"none\" or \"server\"", dry_run);
    goto out;
  }
  if (cli_parse_timeout(timeout, &timeout_ms) < 0) {
    rc = cli_error(x, "invalid --timeout \"%s\" (want e.g. 30s, 2m)", timeout);
    goto out;
  }
  if (now) grace = 1;
  if (force) grace = 0;
  if (files.count > 0) {
    if (npos > 0) {
      rc = cli_error(x, "give objects either with -f or as arguments, not both");
      goto out;
    }
    if (cli_read_manifests(x, &files, &mobjs, &nm) < 0) {
      rc = 1;
      goto out;
    }
  } else if (cli_parse_refs(x, pos, npos, true, &refs, &nrefs) < 0) {
    rc = 1;
    goto out;
  }
  for (size_t i = 0; i < nrefs; i++)
    if (!*refs[i].name && !selector && !all) {
      rc = cli_error(x, "resource(s) were provided, but no name was specified (give NAME, -l SELECTOR or --all)");
      goto out;
    }
  client *c = cli_client(x);
  if (!c) {
    rc = 1;
    goto out;
  }
  victims = calloc(nm + nrefs + 1, sizeof(*victims));
  if (!victims) {
    rc = cli_error(x, "out of memory");
    goto out;
  }
  /* What to delete: names, objects of files, or everything a list returns. */
  size_t cap = nm + nrefs + 1;
  for (size_t i = 0; i < nm; i++) {
    const api_kind *k = mobjs[i].kind;
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, mobjs[i].msg);
    victims[nv].kind = k;
    victims[nv].ns = strdup(k->namespaced ? (m && m->namespace_ && *m->namespace_ ? m->namespace_ : cli_namespace(x)) : "");
    victims[nv].name = strdup(m && m->name ? m->name : "");
    nv++;
  }
  client_call_options co = cli_call_opts(x, false);
  for (size_t i = 0; i < nrefs; i++) {
    const api_kind *k = refs[i].kind;
    if (*refs[i].name) {
      victims[nv].kind = k;
      victims[nv].ns = strdup(cli_object_namespace(x, k));
      victims[nv].name = strdup(refs[i].name);
      nv++;
      continue;
    }
    Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
    lr.namespace_ = (char *)(all_ns || !k->namespaced ? "" : cli_namespace(x));
    lr.label_selector = selector ? selector : "";
    ProtobufCMessage *list = NULL;
    client_status st;
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
    victim *grown = realloc(victims, (cap + n) * sizeof(*grown));
    if (!grown) {
      protobuf_c_message_free_unpacked(list, NULL);
      rc = cli_error(x, "out of memory");
      goto out;
    }
    victims = grown;
    cap += n;
    for (size_t j = 0; j < n; j++) {
      const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, items[j]);
      victims[nv] = (victim){.kind = k, .ns = strdup(m && m->namespace_ ? m->namespace_ : ""),
                             .name = strdup(m && m->name ? m->name : "")};
      nv++;
    }
    protobuf_c_message_free_unpacked(list, NULL);
  }
  client_call_options dco = cli_call_opts(x, server_dry);
  for (size_t i = 0; i < nv; i++) {
    victim *v = &victims[i];
    if (!v->ns || !v->name) {
      rc = cli_error(x, "out of memory");
      break;
    }
    ProtobufCMessage *out = NULL;
    client_status st;
    if (client_delete(c, v->kind, v->ns, v->name, grace, &out, &dco, &st) < 0) {
      if (!(ignore_not_found && client_is_not_found(&st))) rc = cli_server_error(x, &st, NULL);
      free(v->name);
      v->name = NULL; /* nothing to wait for */
      continue;
    }
    const Keel__Api__V1__ObjectMeta *m = out ? api_object_meta(v->kind, out) : NULL;
    v->uid = m && m->uid ? strdup(m->uid) : NULL;
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    char ref[128];
    printers_kind_ref(v->kind, ref, sizeof(ref));
    printf("%s \"%s\" deleted%s\n", ref, v->name, server_dry ? " (server dry run)" : "");
    fflush(stdout);
  }
  if (wait && !server_dry) {
    int64_t start = cli_now_ms();
    for (size_t i = 0; i < nv; i++) {
      victim *v = &victims[i];
      if (!v->name) continue;
      int64_t left = 0;
      if (timeout_ms > 0) {
        left = timeout_ms - (cli_now_ms() - start);
        if (left <= 0) left = 1;
      }
      wait_result wr = wait_for_object(x, c, v->kind, v->ns, v->name, v->uid, left, gone, NULL);
      if (wr == WAIT_TIMEOUT)
        rc = cli_error(x, "timed out waiting for the condition on %s/%s", v->kind->resource, v->name);
      else if (wr == WAIT_ERROR)
        rc = 1;
    }
  }
out:
  victims_free(victims, nv);
  manifest_objects_free(mobjs, nm);
  free(refs);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
