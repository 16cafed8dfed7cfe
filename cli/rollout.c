/* cli/rollout.c — `keel rollout status|history|undo|restart|pause|resume`
 * for deployments, as kubectl does them.
 *
 * status watches the Deployment and prints kubectl's progress lines until
 * the controller has observed the newest generation and every replica is
 * updated and available ("deployment \"web\" successfully rolled out", exit
 * 0), the Progressing condition says ProgressDeadlineExceeded (exit 1), or
 * --timeout passes (exit 1). history and undo read the Deployment's
 * ReplicaSets (those whose controller ownerReference is the Deployment's
 * uid) and their "deployment.kubernetes.io/revision" annotations: undo puts
 * a revision's pod template back into the Deployment (without the
 * pod-template-hash label the controller adds). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/describe.h"
#include "cli/printers.h"
#include "cli/wait.h"

#define REVISION_ANNOTATION "deployment.kubernetes.io/revision"
#define CHANGE_CAUSE_ANNOTATION "kubernetes.io/change-cause"
#define TEMPLATE_HASH_LABEL "pod-template-hash"

typedef struct str_entry {
  ProtobufCMessage base;
  char *key;
  char *value;
} str_entry;

static const char *annotation(const Keel__Api__V1__ObjectMeta *m, const char *key) {
  for (size_t i = 0; m && i < m->n_annotations; i++) {
    const str_entry *e = (const str_entry *)m->annotations[i];
    if (e->key && strcmp(e->key, key) == 0) return e->value;
  }
  return NULL;
}

static const api_kind *deployment_ref(cli *x, char **pos, int npos, const char **name) {
  cli_ref *refs = NULL;
  size_t n = 0;
  if (cli_parse_refs(x, pos, npos, false, &refs, &n) < 0) return NULL;
  const api_kind *k = NULL;
  if (n != 1) cli_error(x, "name one deployment (deployment/NAME)");
  else if (strcmp(refs[0].kind->kind, "Deployment") != 0)
    cli_error(x, "no rollout for %s: only deployments are supported", refs[0].kind->resource);
  else {
    k = refs[0].kind;
    *name = refs[0].name;
  }
  free(refs);
  return k;
}

/* ---------------------------------------------------------------- status */

typedef struct status_ctx {
  char last[512];
  bool failed;
  char failure[512];
} status_ctx;

/* kubectl's DeploymentStatusViewer: a message, and whether it is done. */
static bool rollout_message(const Keel__Api__V1__Deployment *d, char *msg, size_t len, bool *failed, char *failure,
                            size_t flen) {
  const char *name = d->metadata ? d->metadata->name : "";
  const Keel__Api__V1__DeploymentStatus *st = d->status;
  int64_t gen = d->metadata ? d->metadata->generation : 0;
  if (!st || gen > st->observed_generation) {
    snprintf(msg, len, "Waiting for deployment spec update to be observed...");
    return false;
  }
  for (size_t i = 0; i < st->n_conditions; i++) {
    const Keel__Api__V1__DeploymentCondition *c = st->conditions[i];
    if (c->type && strcmp(c->type, "Progressing") == 0 && c->reason && strcmp(c->reason, "ProgressDeadlineExceeded") == 0) {
      *failed = true;
      snprintf(failure, flen, "deployment \"%s\" exceeded its progress deadline", name);
      return true;
    }
  }
  int32_t want = d->spec && d->spec->replicas ? d->spec->replicas->value : 1;
  if (st->updated_replicas < want) {
    snprintf(msg, len, "Waiting for deployment \"%s\" rollout to finish: %d out of %d new replicas have been updated...",
             name, st->updated_replicas, want);
    return false;
  }
  if (st->replicas > st->updated_replicas) {
    snprintf(msg, len, "Waiting for deployment \"%s\" rollout to finish: %d old replicas are pending termination...",
             name, st->replicas - st->updated_replicas);
    return false;
  }
  if (st->available_replicas < st->updated_replicas) {
    snprintf(msg, len, "Waiting for deployment \"%s\" rollout to finish: %d of %d updated replicas are available...",
             name, st->available_replicas, st->updated_replicas);
    return false;
  }
  snprintf(msg, len, "deployment \"%s\" successfully rolled out", name);
  return true;
}

static bool status_check(const ProtobufCMessage *obj, void *arg) {
  status_ctx *s = arg;
  if (!obj) {
    s->failed = true;
    snprintf(s->failure, sizeof(s->failure), "the deployment was deleted");
    return true;
  }
  char msg[512];
  bool done = rollout_message((const Keel__Api__V1__Deployment *)obj, msg, sizeof(msg), &s->failed, s->failure,
                              sizeof(s->failure));
  if (!s->failed && strcmp(msg, s->last) != 0) {
    printf("%s\n", msg);
    fflush(stdout);
    snprintf(s->last, sizeof(s->last), "%s", msg);
  }
  return done;
}

static int rollout_status(cli *x, int argc, char **argv) {
  char *timeout = "0";
  bool watch = true;
  flag_def defs[] = {
      FLAG_STRING("timeout", &timeout, "give up after this long (e.g. 30s, 5m; 0: never)"),
      FLAG_BOOL("watch", &watch, "wait for the rollout to finish (--watch=false: print the state once) (-w)"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel rollout status deployment/NAME",
                      "Show a deployment's rollout until it completes, fails, or --timeout passes.", defs,
                      CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  const char *name = NULL;
  int64_t timeout_ms = 0;
  const api_kind *k = deployment_ref(x, pos, npos, &name);
  client *c = k ? cli_client(x) : NULL;
  if (!c) {
    rc = 1;
  } else if (cli_parse_timeout(timeout, &timeout_ms) < 0) {
    rc = cli_error(x, "invalid --timeout \"%s\" (want e.g. 30s, 5m)", timeout);
  } else if (!watch) {
    ProtobufCMessage *obj = NULL;
    client_status st;
    client_call_options co = cli_call_opts(x, false);
    if (client_get(c, k, cli_namespace(x), name, NULL, &obj, &co, &st) < 0) {
      rc = cli_server_error(x, &st, NULL);
    } else {
      char msg[512], failure[512];
      bool failed = false;
      rollout_message((const Keel__Api__V1__Deployment *)obj, msg, sizeof(msg), &failed, failure, sizeof(failure));
      if (failed) rc = cli_error(x, "%s", failure);
      else printf("%s\n", msg);
      protobuf_c_message_free_unpacked(obj, NULL);
    }
  } else {
    status_ctx s = {0};
    wait_result wr = wait_for_object(x, c, k, cli_namespace(x), name, NULL, timeout_ms, status_check, &s);
    if (wr == WAIT_TIMEOUT) rc = cli_error(x, "timed out waiting for the condition");
    else if (wr == WAIT_ERROR) rc = 1;
    else if (s.failed) rc = cli_error(x, "%s", s.failure);
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

/* ---------------------------------------------------------------- history */

typedef struct revision {
  long long number;
  const Keel__Api__V1__ReplicaSet *rs; /* borrowed from the list */
} revision;

static int revision_cmp(const void *a, const void *b) {
  const revision *x = a, *y = b;
  return x->number < y->number ? -1 : x->number > y->number;
}

/* The deployment and its revisions, oldest first. The caller frees *dep and
 * *list. -1 after printing. */
static int load_revisions(cli *x, client *c, const api_kind *k, const char *name, ProtobufCMessage **dep,
                          ProtobufCMessage **list, revision **revs, size_t *nrevs) {
  *dep = *list = NULL;
  *revs = NULL;
  *nrevs = 0;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_get(c, k, cli_namespace(x), name, NULL, dep, &co, &st) < 0) return cli_server_error(x, &st, NULL), -1;
  const Keel__Api__V1__Deployment *d = (const Keel__Api__V1__Deployment *)*dep;
  const api_kind *rk = api_kind_by_name("ReplicaSet");
  Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
  lr.namespace_ = (char *)cli_namespace(x);
  if (client_list(c, rk, &lr, list, &co, &st) < 0) return cli_server_error(x, &st, NULL), -1;
  const Keel__Api__V1__ReplicaSetList *l = (const Keel__Api__V1__ReplicaSetList *)*list;
  *revs = calloc(l->n_items + 1, sizeof(**revs));
  if (!*revs) return cli_error(x, "out of memory"), -1;
  for (size_t i = 0; i < l->n_items; i++) {
    const Keel__Api__V1__ReplicaSet *rs = l->items[i];
    const Keel__Api__V1__ObjectMeta *m = rs->metadata;
    bool owned = false;
    for (size_t j = 0; m && j < m->n_owner_references; j++) {
      const Keel__Api__V1__OwnerReference *o = m->owner_references[j];
      if (o->uid && d->metadata && d->metadata->uid && strcmp(o->uid, d->metadata->uid) == 0 && o->controller &&
          o->controller->value)
        owned = true;
    }
    if (!owned) continue;
    const char *r = annotation(m, REVISION_ANNOTATION);
    (*revs)[(*nrevs)++] = (revision){r ? strtoll(r, NULL, 10) : 0, rs};
  }
  qsort(*revs, *nrevs, sizeof(**revs), revision_cmp);
  return 0;
}

static int rollout_history(cli *x, int argc, char **argv) {
  int64_t want = 0;
  flag_def defs[] = {
      FLAG_INT("revision", &want, "show the pod template of this revision"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel rollout history deployment/NAME", "List a deployment's revisions.", defs,
                      CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  const char *name = NULL;
  ProtobufCMessage *dep = NULL, *list = NULL;
  revision *revs = NULL;
  size_t n = 0;
  const api_kind *k = deployment_ref(x, pos, npos, &name);
  client *c = k ? cli_client(x) : NULL;
  if (!c || load_revisions(x, c, k, name, &dep, &list, &revs, &n) < 0) {
    rc = 1;
    goto out;
  }
  char ref[128];
  printers_kind_ref(k, ref, sizeof(ref));
  if (want > 0) {
    for (size_t i = 0; i < n; i++) {
      if (revs[i].number != want) continue;
      printf("%s/%s with revision #%lld\n", ref, name, revs[i].number);
      tabwriter *tw = tabwriter_new(DESCRIBE_MINWIDTH, DESCRIBE_PADDING, 0);
      describe_pod_template(tw, revs[i].rs->spec ? revs[i].rs->spec->template_ : NULL);
      tabwriter_flush(tw, stdout);
      tabwriter_free(tw);
      goto out;
    }
    rc = cli_error(x, "unable to find the specified revision");
    goto out;
  }
  if (n == 0) {
    printf("No rollout history found.\n");
    goto out;
  }
  printf("%s/%s \n", ref, name);
  tabwriter *tw = printers_table_new();
  tabwriter_write(tw, "REVISION\tCHANGE-CAUSE\n");
  for (size_t i = 0; i < n; i++) {
    const char *cause = annotation(revs[i].rs->metadata, CHANGE_CAUSE_ANNOTATION);
    tabwriter_printf(tw, "%lld\t%s\n", revs[i].number, cause && *cause ? cause : "<none>");
  }
  tabwriter_write(tw, "\n");
  tabwriter_flush(tw, stdout);
  tabwriter_free(tw);
out:
  free(revs);
  if (dep) protobuf_c_message_free_unpacked(dep, NULL);
  if (list) protobuf_c_message_free_unpacked(list, NULL);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

/* ---------------------------------------------------------------- undo */

/* Removes the pod-template-hash label the controller added to a template. */
static void drop_hash_label(Keel__Api__V1__PodTemplateSpec *t) {
  Keel__Api__V1__ObjectMeta *m = t ? t->metadata : NULL;
  for (size_t i = 0; m && i < m->n_labels; i++) {
    const str_entry *e = (const str_entry *)m->labels[i];
    if (!e->key || strcmp(e->key, TEMPLATE_HASH_LABEL) != 0) continue;
    protobuf_c_message_free_unpacked(&m->labels[i]->base, NULL);
    memmove(&m->labels[i], &m->labels[i + 1], (m->n_labels - i - 1) * sizeof(m->labels[0]));
    m->n_labels--;
    return;
  }
}

static bool same_message(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  if (!a || !b) return a == b;
  size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
  if (la != lb) return false;
  uint8_t *ba = malloc(la + 1), *bb = malloc(lb + 1);
  bool eq = ba && bb;
  if (eq) {
    protobuf_c_message_pack(a, ba);
    protobuf_c_message_pack(b, bb);
    eq = memcmp(ba, bb, la) == 0;
  }
  free(ba);
  free(bb);
  return eq;
}

static int rollout_undo(cli *x, int argc, char **argv) {
  int64_t to = 0;
  char *dry_run = "none";
  flag_def defs[] = {
      FLAG_INT("to-revision", &to, "the revision to roll back to (0: the previous one)"),
      FLAG_STRING("dry-run", &dry_run, "none or server"),
      FLAG_END,
  };
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel rollout undo deployment/NAME [--to-revision=N]",
                      "Roll a deployment back to an earlier revision's pod template.", defs, CLI_FLAGS_CONNECT, argc,
                      argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  const char *name = NULL;
  ProtobufCMessage *dep = NULL, *list = NULL, *out = NULL;
  ProtobufCMessage *tmpl = NULL;
  revision *revs = NULL;
  size_t n = 0;
  bool server_dry = strcmp(dry_run, "server") == 0;
  const api_kind *k = deployment_ref(x, pos, npos, &name);
  client *c = k ? cli_client(x) : NULL;
  if (!c || load_revisions(x, c, k, name, &dep, &list, &revs, &n) < 0) {
    rc = 1;
    goto out;
  }
  const revision *target = NULL;
  if (to > 0) {
    for (size_t i = 0; i < n; i++)
      if (revs[i].number == to) target = &revs[i];
    if (!target) {
      rc = cli_error(x, "unable to find specified revision %lld in history", (long long)to);
      goto out;
    }
  } else if (n >= 2) {
    target = &revs[n - 2];
  } else {
    rc = cli_error(x, "no rollout history found for deployment \"%s\"", name);
    goto out;
  }
  char ref[128];
  printers_kind_ref(k, ref, sizeof(ref));
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)dep;
  if (!d->spec || !target->rs->spec || !target->rs->spec->template_) {
    rc = cli_error(x, "revision %lld has no pod template", target->number);
    goto out;
  }
  tmpl = api_message_clone(&target->rs->spec->template_->base);
  if (!tmpl) {
    rc = cli_error(x, "out of memory");
    goto out;
  }
  drop_hash_label((Keel__Api__V1__PodTemplateSpec *)tmpl);
  if (same_message(tmpl, d->spec->template_ ? &d->spec->template_->base : NULL)) {
    printf("%s/%s skipped rollback (current template already matches revision %lld)\n", ref, name, target->number);
    goto out;
  }
  if (d->spec->template_) protobuf_c_message_free_unpacked(&d->spec->template_->base, NULL);
  d->spec->template_ = (Keel__Api__V1__PodTemplateSpec *)tmpl;
  tmpl = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, server_dry);
  if (client_update(c, k, dep, &out, &co, &st) < 0) {
    rc = cli_server_error(x, &st, NULL);
    goto out;
  }
  printf("%s/%s rolled back%s\n", ref, name, server_dry ? " (server dry run)" : "");
out:
  if (tmpl) protobuf_c_message_free_unpacked(tmpl, NULL);
  if (out) protobuf_c_message_free_unpacked(out, NULL);
  free(revs);
  if (dep) protobuf_c_message_free_unpacked(dep, NULL);
  if (list) protobuf_c_message_free_unpacked(list, NULL);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

/* ---------------------------------------------------------------- restart, pause, resume */

typedef enum { CHANGE_RESTART, CHANGE_PAUSE, CHANGE_RESUME } change;

static int add_template_annotation(Keel__Api__V1__Deployment *d, const char *key, const char *value) {
  if (!d->spec->template_) {
    d->spec->template_ = (Keel__Api__V1__PodTemplateSpec *)api_message_new(&keel__api__v1__pod_template_spec__descriptor);
    if (!d->spec->template_) return -1;
  }
  Keel__Api__V1__PodTemplateSpec *t = d->spec->template_;
  if (!t->metadata) {
    t->metadata = (Keel__Api__V1__ObjectMeta *)api_message_new(&keel__api__v1__object_meta__descriptor);
    if (!t->metadata) return -1;
  }
  Keel__Api__V1__ObjectMeta *m = t->metadata;
  for (size_t i = 0; i < m->n_annotations; i++) {
    str_entry *e = (str_entry *)m->annotations[i];
    if (e->key && strcmp(e->key, key) == 0) {
      cli_set_str(&e->value, value);
      return 0;
    }
  }
  Keel__Api__V1__ObjectMeta__AnnotationsEntry *e =
      (Keel__Api__V1__ObjectMeta__AnnotationsEntry *)api_message_new(&keel__api__v1__object_meta__annotations_entry__descriptor);
  Keel__Api__V1__ObjectMeta__AnnotationsEntry **a = realloc(m->annotations, (m->n_annotations + 1) * sizeof(*a));
  if (!e || !a) {
    if (e) protobuf_c_message_free_unpacked(&e->base, NULL);
    if (a) m->annotations = a;
    return -1;
  }
  cli_set_str(&e->key, key);
  cli_set_str(&e->value, value);
  m->annotations = a;
  m->annotations[m->n_annotations++] = e;
  return 0;
}

static int rollout_change(cli *x, int argc, char **argv, change what) {
  static const char *const usage[] = {"keel rollout restart deployment/NAME", "keel rollout pause deployment/NAME",
                                      "keel rollout resume deployment/NAME"};
  static const char *const summary[] = {"Restart a deployment's pods (a new rollout of the same template).",
                                        "Pause a deployment's rollouts.", "Resume a paused deployment's rollouts."};
  flag_def defs[] = {FLAG_END};
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, usage[what], summary[what], defs, CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 0;
  const char *name = NULL;
  ProtobufCMessage *dep = NULL, *out = NULL;
  const api_kind *k = deployment_ref(x, pos, npos, &name);
  client *c = k ? cli_client(x) : NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (!c) {
    rc = 1;
    goto out;
  }
  if (client_get(c, k, cli_namespace(x), name, NULL, &dep, &co, &st) < 0) {
    rc = cli_server_error(x, &st, NULL);
    goto out;
  }
  Keel__Api__V1__Deployment *d = (Keel__Api__V1__Deployment *)dep;
  char ref[128];
  printers_kind_ref(k, ref, sizeof(ref));
  if (!d->spec) {
    rc = cli_error(x, "%s/%s has no spec", ref, name);
    goto out;
  }
  const char *done = "restarted";
  if (what == CHANGE_PAUSE || what == CHANGE_RESUME) {
    bool pause = what == CHANGE_PAUSE;
    done = pause ? "paused" : "resumed";
    if (d->spec->paused == pause) {
      rc = cli_error(x, "%s/%s is %s", ref, name, pause ? "already paused" : "not paused");
      goto out;
    }
    d->spec->paused = pause;
  } else {
    if (d->spec->paused) {
      rc = cli_error(x, "can't restart paused deployment (run rollout resume first)");
      goto out;
    }
    char now[64];
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(now, sizeof(now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (add_template_annotation(d, "kubectl.kubernetes.io/restartedAt", now) < 0) {
      rc = cli_error(x, "out of memory");
      goto out;
    }
  }
  if (client_update(c, k, dep, &out, &co, &st) < 0) {
    rc = cli_server_error(x, &st, NULL);
    goto out;
  }
  printf("%s/%s %s\n", ref, name, done);
out:
  if (dep) protobuf_c_message_free_unpacked(dep, NULL);
  if (out) protobuf_c_message_free_unpacked(out, NULL);
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

int cmd_rollout(cli *x, int argc, char **argv) {
  const char *sub = argc > 1 ? argv[1] : "";
  if (strcmp(sub, "status") == 0) return rollout_status(x, argc - 1, argv + 1);
  if (strcmp(sub, "history") == 0) return rollout_history(x, argc - 1, argv + 1);
  if (strcmp(sub, "undo") == 0) return rollout_undo(x, argc - 1, argv + 1);
  if (strcmp(sub, "restart") == 0) return rollout_change(x, argc - 1, argv + 1, CHANGE_RESTART);
  if (strcmp(sub, "pause") == 0) return rollout_change(x, argc - 1, argv + 1, CHANGE_PAUSE);
  if (strcmp(sub, "resume") == 0) return rollout_change(x, argc - 1, argv + 1, CHANGE_RESUME);
  bool help = strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || !*sub;
  FILE *f = help ? stdout : stderr;
  if (!help) cli_error(x, "unknown rollout command \"%s\"", sub);
  fprintf(f,
          "Usage: keel rollout COMMAND deployment/NAME [flags]\n\n"
          "Manage a deployment's rollouts.\n\n"
          "Commands:\n"
          "  status    show the rollout until it completes (--timeout)\n"
          "  history   list revisions (--revision=N: its pod template)\n"
          "  undo      roll back to the previous revision (--to-revision=N)\n"
          "  restart   restart the pods with a new rollout\n"
          "  pause     pause rollouts\n"
          "  resume    resume rollouts\n");
  return help ? 0 : 1;
}
