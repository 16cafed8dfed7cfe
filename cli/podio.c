/* cli/podio.c — `keel logs` and `keel exec`, over keel.api.v1 Pods/Log and
 * Pods/Exec, which keel-apiserver relays to the pod's node agent.
 *
 * Both first read the pod (as kubectl does) to pick the container: -c, else
 * the only one, else the first with a "Defaulted container" note on stderr.
 * A workload (deployment/NAME, replicaset/NAME) stands for one of its pods,
 * chosen as kubectl does (running and ready first); `logs -l SELECTOR` reads
 * every matching pod.
 * Then bytes flow: log chunks to stdout; exec's stdout and stderr to ours, our
 * stdin (-i) to the command, and the command's exit code becomes ours, with
 * kubectl's "command terminated with exit code N" on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/printers.h"

/* ---------------------------------------------------------------- containers */

/* How kubectl picks the pod of a workload: running before not, ready before
 * not, then the oldest name first (a stable choice). Lower is better. */
static int pod_rank(const Keel__Api__V1__Pod *p) {
  const Keel__Api__V1__PodStatus *st = p->status;
  bool running = st && st->phase && strcmp(st->phase, "Running") == 0;
  bool ready = false;
  for (size_t i = 0; st && i < st->n_conditions; i++)
    if (st->conditions[i]->type && strcmp(st->conditions[i]->type, "Ready") == 0 && st->conditions[i]->status &&
        strcmp(st->conditions[i]->status, "True") == 0)
      ready = true;
  return (running ? 0 : 2) + (ready ? 0 : 1);
}

/* The pods of ns matching selector (a label selector string), in a list the
 * caller frees; NULL after printing the error. */
static Keel__Api__V1__PodList *list_pods(cli *x, client *c, const char *selector) {
  Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
  lr.namespace_ = (char *)cli_namespace(x);
  lr.label_selector = (char *)selector;
  ProtobufCMessage *list = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_list(c, api_kind_by_name("Pod"), &lr, &list, &co, &st) < 0) return cli_server_error(x, &st, NULL), NULL;
  return (Keel__Api__V1__PodList *)list;
}

/* A copy of the best pod of a workload's selector; NULL after printing. */
static Keel__Api__V1__Pod *workload_pod(cli *x, client *c, const api_kind *k, const char *name) {
  ProtobufCMessage *obj = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_get(c, k, cli_namespace(x), name, NULL, &obj, &co, &st) < 0) return cli_server_error(x, &st, NULL), NULL;
  const Keel__Api__V1__LabelSelector *sel = NULL;
  if (strcmp(k->kind, "Deployment") == 0) {
    const Keel__Api__V1__Deployment *d = (const Keel__Api__V1__Deployment *)obj;
    sel = d->spec ? d->spec->selector : NULL;
  } else {
    const Keel__Api__V1__ReplicaSet *rs = (const Keel__Api__V1__ReplicaSet *)obj;
    sel = rs->spec ? rs->spec->selector : NULL;
  }
  char *text = sel ? printers_selector_text(sel) : NULL;
  Keel__Api__V1__PodList *pods = text && strcmp(text, "<none>") != 0 ? list_pods(x, c, text) : NULL;
  if (text && strcmp(text, "<none>") == 0) cli_error(x, "%s %s has no selector", k->resource, name);
  free(text);
  protobuf_c_message_free_unpacked(obj, NULL);
  if (!pods) return NULL;
  Keel__Api__V1__Pod *best = NULL;
  for (size_t i = 0; i < pods->n_items; i++) {
    Keel__Api__V1__Pod *p = pods->items[i];
    if (!best || pod_rank(p) < pod_rank(best) ||
        (pod_rank(p) == pod_rank(best) && strcmp(p->metadata->name, best->metadata->name) < 0))
      best = p;
  }
  Keel__Api__V1__Pod *copy = best ? (Keel__Api__V1__Pod *)api_message_clone(&best->base) : NULL;
  if (!best) cli_error(x, "no pods found for %s/%s", k->resource, name);
  else if (pods->n_items > 1) fprintf(stderr, "Found %zu pods, using pod/%s\n", pods->n_items, best->metadata->name);
  protobuf_c_message_free_unpacked(&pods->base, NULL);
  return copy;
}

/* The pod arg names: "web", "pod/web", or a workload ("deployment/web",
 * "rs/web-5d9f") standing for one of its pods. NULL after printing. */
static Keel__Api__V1__Pod *resolve_pod(cli *x, client *c, char *arg, const char *verb) {
  const char *name = arg;
  if (strchr(arg, '/')) { /* TYPE/NAME, checked as every command checks it */
    cli_ref *refs = NULL;
    size_t n = 0;
    if (cli_parse_refs(x, &arg, 1, false, &refs, &n) < 0) return NULL;
    const api_kind *k = refs[0].kind;
    name = refs[0].name; /* points into arg */
    free(refs);
    if (strcmp(k->kind, "Deployment") == 0 || strcmp(k->kind, "ReplicaSet") == 0) return workload_pod(x, c, k, name);
    if (strcmp(k->kind, "Pod") != 0)
      return cli_error(x, "cannot %s %s: only pods and their workloads have containers", verb, arg), NULL;
  }
  ProtobufCMessage *obj = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_get(c, api_kind_by_name("Pod"), cli_namespace(x), name, NULL, &obj, &co, &st) < 0)
    return cli_server_error(x, &st, NULL), NULL;
  return (Keel__Api__V1__Pod *)obj;
}

/* p's container: -c (a container or an init container), else the first
 * (named on stderr when there are several, as kubectl does). NULL after
 * printing. quiet: no "Defaulted container" note (logs -l). */
static const char *pick_container(cli *x, const Keel__Api__V1__Pod *p, const char *container, bool quiet) {
  const Keel__Api__V1__PodSpec *spec = p->spec;
  size_t n = spec ? spec->n_containers : 0;
  if (container && *container) {
    for (size_t i = 0; i < n; i++)
      if (spec->containers[i]->name && strcmp(spec->containers[i]->name, container) == 0)
        return spec->containers[i]->name;
    for (size_t i = 0; spec && i < spec->n_init_containers; i++)
      if (spec->init_containers[i]->name && strcmp(spec->init_containers[i]->name, container) == 0)
        return spec->init_containers[i]->name;
    return cli_error(x, "container %s is not valid for pod %s", container, p->metadata->name), NULL;
  }
  if (n == 0) return cli_error(x, "pod %s has no containers", p->metadata->name), NULL;
  if (n > 1 && !quiet) {
    fprintf(stderr, "Defaulted container \"%s\" out of: ", spec->containers[0]->name);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? ", " : "", spec->containers[i]->name);
    fprintf(stderr, "\n");
  }
  return spec->containers[0]->name;
}

/* Writes all of buf to fd (a pipe may take it in pieces). */
static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    len -= (size_t)w;
  }
  return 0;
}

/* One stream's end, waited for by the command's thread. */
typedef struct stream_end {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int open; /* streams not yet closed */
  client_status first_error;
  bool failed;
  bool output_broken; /* stdout went away (e.g. `| head`) */
} stream_end;

static void stream_end_init(stream_end *e, int open) {
  memset(e, 0, sizeof *e);
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cond, NULL);
  e->open = open;
}

static void stream_end_close(stream_end *e, const rpc_status *st) {
  pthread_mutex_lock(&e->mu);
  if (st->code != GRPC_STATUS_OK && !e->failed) {
    e->failed = true;
    e->first_error.code = st->code;
    snprintf(e->first_error.message, sizeof e->first_error.message, "%s", st->message ? st->message : "");
  }
  e->open--;
  pthread_cond_broadcast(&e->cond);
  pthread_mutex_unlock(&e->mu);
}

static void stream_end_wait(stream_end *e) {
  pthread_mutex_lock(&e->mu);
  while (e->open > 0) pthread_cond_wait(&e->cond, &e->mu);
  pthread_mutex_unlock(&e->mu);
}

static void stream_end_destroy(stream_end *e) {
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cond);
}

/* ---------------------------------------------------------------- logs */

/* One container's log to read. */
typedef struct log_target {
  const char *ns, *pod, *container; /* borrowed from the pods */
} log_target;

/* One open log stream. With a prefix, output goes out in whole lines, each
 * after "[pod/NAME/CONTAINER] ", so parallel streams never mix inside a line. */
typedef struct log_stream {
  stream_end *end;
  pthread_mutex_t *out_mu; /* one writer to stdout at a time */
  char prefix[800];        /* "" = none */
  char *partial;           /* a line not yet ended (with a prefix only) */
  size_t plen, pcap;
} log_stream;

static int write_prefixed_locked(log_stream *ls, const uint8_t *data, size_t len, bool flush) {
  size_t start = 0;
  for (size_t i = 0; i <= len; i++) {
    bool end_of_line = i < len && data[i] == '\n';
    if (!end_of_line && i < len) continue;
    size_t seg = i - start + (end_of_line ? 1 : 0);
    if (!end_of_line) { /* the tail: keep it until its line ends */
      if (seg && ls->plen + seg > ls->pcap) {
        size_t cap = ls->pcap ? ls->pcap * 2 : 4096;
        while (cap < ls->plen + seg) cap *= 2;
        char *grown = realloc(ls->partial, cap);
        if (!grown) return -1;
        ls->partial = grown;
        ls->pcap = cap;
      }
      if (seg) memcpy(ls->partial + ls->plen, data + start, seg);
      ls->plen += seg;
      break;
    }
    if (write_all(STDOUT_FILENO, ls->prefix, strlen(ls->prefix)) < 0 ||
        write_all(STDOUT_FILENO, ls->partial, ls->plen) < 0 || write_all(STDOUT_FILENO, data + start, seg) < 0)
      return -1;
    ls->plen = 0;
    start = i + 1;
  }
  if (flush && ls->plen) {
    if (write_all(STDOUT_FILENO, ls->prefix, strlen(ls->prefix)) < 0 ||
        write_all(STDOUT_FILENO, ls->partial, ls->plen) < 0 || write_all(STDOUT_FILENO, "\n", 1) < 0)
      return -1;
    ls->plen = 0;
  }
  return 0;
}

static void log_on_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  log_stream *ls = arg;
  const Keel__Api__V1__PodLogChunk *ch = (const Keel__Api__V1__PodLogChunk *)m;
  /* Writing here holds the stream's thread, so a slow stdout slows the
   * apiserver and the agent down instead of filling memory. */
  pthread_mutex_lock(ls->out_mu);
  int rc = ls->prefix[0] ? write_prefixed_locked(ls, ch->data.data, ch->data.len, false)
                         : (ch->data.len ? write_all(STDOUT_FILENO, ch->data.data, ch->data.len) : 0);
  pthread_mutex_unlock(ls->out_mu);
  if (rc < 0) {
    pthread_mutex_lock(&ls->end->mu);
    ls->end->output_broken = true;
    pthread_mutex_unlock(&ls->end->mu);
    rpc_stream_cancel(s);
  }
}

static void log_on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  log_stream *ls = arg;
  if (ls->prefix[0]) {
    pthread_mutex_lock(ls->out_mu);
    write_prefixed_locked(ls, NULL, 0, true);
    pthread_mutex_unlock(ls->out_mu);
  }
  stream_end_close(ls->end, st);
}

/* Reads the logs of targets[0..n): one after the other, or all at once with
 * -f (a followed log never ends on its own). */
static int stream_logs(cli *x, client *c, const log_target *targets, size_t n, const Keel__Api__V1__PodLogOptions *base,
                       bool prefix, bool parallel) {
  stream_end e;
  pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
  log_stream *ls = calloc(n ? n : 1, sizeof *ls);
  rpc_stream **streams = calloc(n ? n : 1, sizeof *streams);
  int rc = 0;
  if (!ls || !streams) {
    free(ls);
    free(streams);
    return cli_error(x, "out of memory");
  }
  client_call_options co = {.timeout_ms = 0};
  rpc_stream_callbacks cb = {.on_message = log_on_message, .on_close = log_on_close};
  size_t batch = parallel ? n : 1;
  for (size_t at = 0; at < n && rc == 0; at += batch) {
    size_t m = at + batch <= n ? batch : n - at;
    stream_end_init(&e, (int)m);
    for (size_t i = at; i < at + m; i++) {
      ls[i].end = &e;
      ls[i].out_mu = &out_mu;
      if (prefix) snprintf(ls[i].prefix, sizeof ls[i].prefix, "[pod/%s/%s] ", targets[i].pod, targets[i].container);
      Keel__Api__V1__PodLogOptions o = *base;
      o.namespace_ = (char *)targets[i].ns;
      o.name = (char *)targets[i].pod;
      o.container = (char *)targets[i].container;
      keel_error err = {0};
      streams[i] = client_stream_start(c, "/keel.api.v1.Pods/Log", RPC_SERVER_STREAMING, &o.base,
                                       &keel__api__v1__pod_log_chunk__descriptor, &co, &cb, &ls[i], &err);
      if (!streams[i]) {
        rc = cli_error(x, "%s", err.message);
        pthread_mutex_lock(&e.mu);
        e.open -= (int)(at + m - i);
        pthread_mutex_unlock(&e.mu);
        for (size_t j = at; j < i; j++) rpc_stream_cancel(streams[j]);
        break;
      }
    }
    stream_end_wait(&e);
    if (rc == 0 && e.output_broken) rc = 1; /* a closed stdout: quietly, as a pipe reader expects */
    else if (rc == 0 && e.failed) rc = cli_server_error(x, &e.first_error, NULL);
    stream_end_destroy(&e);
  }
  for (size_t i = 0; i < n; i++) {
    rpc_stream_release(streams[i]);
    free(ls[i].partial);
  }
  free(streams);
  free(ls);
  pthread_mutex_destroy(&out_mu);
  return rc;
}

/* Appends p's containers to be read: every one (init containers first), or
 * the one pick_container chooses. -1 after printing. */
static int add_pod_targets(cli *x, const Keel__Api__V1__Pod *p, const char *container, bool all, bool quiet,
                           log_target **t, size_t *n) {
  const Keel__Api__V1__PodSpec *spec = p->spec;
  size_t want = all && spec ? spec->n_init_containers + spec->n_containers : 1;
  log_target *grown = realloc(*t, (*n + want) * sizeof **t);
  if (!grown) return cli_error(x, "out of memory"), -1;
  *t = grown;
  log_target base = {.ns = p->metadata->namespace_, .pod = p->metadata->name};
  if (all && spec) {
    for (size_t i = 0; i < spec->n_init_containers; i++)
      (*t)[(*n)++] = (log_target){base.ns, base.pod, spec->init_containers[i]->name};
    for (size_t i = 0; i < spec->n_containers; i++)
      (*t)[(*n)++] = (log_target){base.ns, base.pod, spec->containers[i]->name};
    return 0;
  }
  const char *cname = pick_container(x, p, container, quiet);
  if (!cname) return -1;
  (*t)[(*n)++] = (log_target){base.ns, base.pod, cname};
  return 0;
}

int cmd_logs(cli *x, int argc, char **argv) {
  char *container = NULL, *since = NULL, *selector = NULL;
  bool follow = false, previous = false, timestamps = false, all_containers = false, prefix = false;
  int64_t tail = -1, limit_bytes = 0, max_requests = 5;
  flag_def defs[] = {
      FLAG_STRING("container", &container, "the container (-c; default: the first)"),
      FLAG_BOOL("follow", &follow, "keep streaming new lines"),
      FLAG_BOOL("previous", &previous, "the previous instance of the container (-p)"),
      FLAG_BOOL("timestamps", &timestamps, "prefix each line with its time"),
      FLAG_BOOL("all-containers", &all_containers, "every container of the pod (init containers first)"),
      FLAG_STRING("selector", &selector, "every pod matching this label selector (-l), instead of POD"),
      FLAG_BOOL("prefix", &prefix, "begin each line with [pod/NAME/CONTAINER]"),
      FLAG_INT("max-log-requests", &max_requests, "with -l and -f: how many logs may be followed at once"),
      FLAG_INT("tail", &tail, "only the last N lines (-1: all; with -l the default is 10)"),
      FLAG_INT("limit-bytes", &limit_bytes, "stop after this many bytes (0: no limit)"),
      FLAG_STRING("since", &since, "only lines newer than this (e.g. 5s, 2m)"),
      FLAG_END,
  };
  /* kubectl spells --follow -f, which elsewhere is --filename. */
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "-f") == 0) argv[i] = "--follow";
    else if (strcmp(argv[i], "--") == 0) break;
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel logs (POD | TYPE/NAME | -l SELECTOR) [-c CONTAINER] [-f]",
                      "Print a container's log (through its node agent).", defs, CLI_FLAGS_CONNECT, argc, argv, &pos,
                      &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  int64_t since_ms = 0;
  bool tail_set = tail != -1;
  if (selector && npos != 0) {
    cli_error(x, "only a selector (-l) or a POD name is allowed");
  } else if (!selector && npos != 1) {
    cli_error(x, "expected one pod name: keel logs POD [-c CONTAINER]");
  } else if (since && (cli_parse_timeout(since, &since_ms) < 0 || since_ms <= 0)) {
    cli_error(x, "invalid --since \"%s\" (want e.g. 5s, 2m)", since);
  } else if (tail < -1 || limit_bytes < 0 || max_requests < 1) {
    cli_error(x, "%s", tail < -1 ? "--tail must be -1 or more"
                       : limit_bytes < 0 ? "--limit-bytes must be 0 or more"
                                         : "--max-log-requests must be 1 or more");
  } else if (all_containers && container) {
    cli_error(x, "--container and --all-containers cannot be used together");
  } else {
    client *c = cli_client(x);
    Keel__Api__V1__PodList *pods = NULL;
    Keel__Api__V1__Pod *pod = NULL;
    log_target *targets = NULL;
    size_t n = 0;
    int ok = -1;
    if (c && selector) {
      pods = list_pods(x, c, selector);
      if (pods && pods->n_items == 0) {
        fprintf(stderr, "No resources found in %s namespace.\n", cli_namespace(x));
        ok = rc = 0;
      } else if (pods) {
        ok = 0;
        for (size_t i = 0; i < pods->n_items && ok == 0; i++)
          ok = add_pod_targets(x, pods->items[i], container, all_containers, true, &targets, &n);
      }
      if (!tail_set) tail = 10; /* kubectl's default with a selector */
    } else if (c) {
      pod = resolve_pod(x, c, pos[0], "get logs of");
      if (pod) ok = add_pod_targets(x, pod, container, all_containers, false, &targets, &n);
    }
    if (ok == 0 && n > 0 && follow && n > (size_t)max_requests) {
      cli_error(x,
                "you are attempting to follow %zu log streams, but maximum allowed concurrency is %lld, use "
                "--max-log-requests to increase the limit",
                n, (long long)max_requests);
    } else if (ok == 0 && n > 0) {
      Keel__Api__V1__PodLogOptions o = KEEL__API__V1__POD_LOG_OPTIONS__INIT;
      Google__Protobuf__Int64Value tail_v = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
      Google__Protobuf__Int64Value since_v = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
      Google__Protobuf__Int64Value limit_v = GOOGLE__PROTOBUF__INT64_VALUE__INIT;
      o.follow = follow;
      o.previous = previous;
      o.timestamps = timestamps;
      if (tail >= 0) tail_v.value = tail, o.tail_lines = &tail_v;
      if (since_ms > 0) since_v.value = (since_ms + 999) / 1000, o.since_seconds = &since_v;
      if (limit_bytes > 0) limit_v.value = limit_bytes, o.limit_bytes = &limit_v;
      rc = stream_logs(x, c, targets, n, &o, prefix, follow);
    }
    free(targets);
    if (pods) protobuf_c_message_free_unpacked(&pods->base, NULL);
    if (pod) protobuf_c_message_free_unpacked(&pod->base, NULL);
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}

/* ---------------------------------------------------------------- exec */

typedef struct exec_session {
  stream_end end;
  rpc_stream *s;
  pthread_mutex_t mu; /* guards the fields below */
  pthread_cond_t writable;
  bool can_write;  /* no -ENOBUFS outstanding */
  bool closed;     /* the stream ended: stop feeding stdin */
  bool have_exit;
  int exit_code;
  int wake[2];     /* the stdin thread polls this to learn the stream ended */
  int winch;       /* -t: readable after the terminal was resized (SIGWINCH); -1 = none */
} exec_session;

/* SIGWINCH -> a byte on this pipe, read by the stdin thread (a handler may
 * only do async-signal-safe things). */
static int g_winch_pipe[2] = {-1, -1};

static void on_sigwinch(int sig) {
  (void)sig;
  int saved = errno;
  if (write(g_winch_pipe[1], "w", 1) < 0) { /* full: a resize is pending anyway */
  }
  errno = saved;
}

/* The terminal's size as a resize message; false when stdout is no terminal. */
static bool terminal_size(Keel__Api__V1__TerminalSize *size) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) != 0 || !ws.ws_col) return false;
  size->width = ws.ws_col;
  size->height = ws.ws_row;
  return true;
}

static void exec_on_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  exec_session *x = arg;
  const Keel__Api__V1__ExecResponse *r = (const Keel__Api__V1__ExecResponse *)m;
  bool broken = (r->stdout.len && write_all(STDOUT_FILENO, r->stdout.data, r->stdout.len) < 0) ||
                (r->stderr.len && write_all(STDERR_FILENO, r->stderr.data, r->stderr.len) < 0);
  pthread_mutex_lock(&x->mu);
  if (r->exit_code) {
    x->have_exit = true;
    x->exit_code = r->exit_code->value;
  }
  pthread_mutex_unlock(&x->mu);
  if (broken) rpc_stream_cancel(s);
}

static void exec_on_writable(rpc_stream *s, void *arg) {
  (void)s;
  exec_session *x = arg;
  pthread_mutex_lock(&x->mu);
  x->can_write = true;
  pthread_cond_broadcast(&x->writable);
  pthread_mutex_unlock(&x->mu);
}

static void exec_on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  exec_session *x = arg;
  pthread_mutex_lock(&x->mu);
  x->closed = true;
  pthread_cond_broadcast(&x->writable);
  pthread_mutex_unlock(&x->mu);
  if (write(x->wake[1], "x", 1) < 0) { /* the stdin thread also checks closed */
  }
  stream_end_close(&x->end, st);
}

/* Sends one ExecRequest, waiting while the stream's queue is full. false once
 * the stream ended. */
static bool exec_send(exec_session *x, const Keel__Api__V1__ExecRequest *m) {
  for (;;) {
    int rc = rpc_stream_write(x->s, &m->base);
    if (rc != -ENOBUFS) return rc == 0;
    pthread_mutex_lock(&x->mu);
    x->can_write = false;
    while (!x->can_write && !x->closed) pthread_cond_wait(&x->writable, &x->mu);
    bool closed = x->closed;
    pthread_mutex_unlock(&x->mu);
    if (closed) return false;
  }
}

/* -i: our stdin to the command until EOF (then close_stdin and the
 * half-close) or until the stream ends. */
static void *exec_stdin_thread(void *arg) {
  exec_session *x = arg;
  char buf[32 * 1024];
  for (;;) {
    struct pollfd fds[3] = {{.fd = STDIN_FILENO, .events = POLLIN},
                            {.fd = x->wake[0], .events = POLLIN},
                            {.fd = x->winch, .events = POLLIN}}; /* fd -1 is skipped */
    if (poll(fds, 3, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) return NULL; /* the stream ended */
    if (fds[2].revents) {
      char drain[16];
      if (read(x->winch, drain, sizeof drain) < 0) { /* nonblocking: EAGAIN when already drained */
      }
      Keel__Api__V1__TerminalSize size = KEEL__API__V1__TERMINAL_SIZE__INIT;
      Keel__Api__V1__ExecRequest resize = KEEL__API__V1__EXEC_REQUEST__INIT;
      resize.resize = &size;
      if (terminal_size(&size) && !exec_send(x, &resize)) return NULL;
      if (!fds[0].revents) continue;
    }
    ssize_t r = read(STDIN_FILENO, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    Keel__Api__V1__ExecRequest m = KEEL__API__V1__EXEC_REQUEST__INIT;
    m.stdin.data = (uint8_t *)buf;
    m.stdin.len = (size_t)r;
    if (!exec_send(x, &m)) return NULL;
  }
  Keel__Api__V1__ExecRequest eof = KEEL__API__V1__EXEC_REQUEST__INIT;
  eof.close_stdin = true;
  if (exec_send(x, &eof)) rpc_stream_close_send(x->s);
  return NULL;
}

/* -t with a terminal on stdin: raw mode (keys go to the command as typed),
 * restored on the way out. */
static bool terminal_raw(struct termios *saved) {
  if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, saved) < 0) return false;
  struct termios raw = *saved;
  cfmakeraw(&raw);
  return tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
}

static int run_exec(cli *x, client *c, const Keel__Api__V1__Pod *p, const char *cname, char **command, size_t ncmd,
                    bool use_stdin, bool tty) {
  exec_session s;
  memset(&s, 0, sizeof s);
  stream_end_init(&s.end, 1);
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.writable, NULL);
  s.can_write = true;
  s.winch = -1;
  if (pipe2(s.wake, O_CLOEXEC) < 0) {
    stream_end_destroy(&s.end);
    return cli_error(x, "pipe: %s", strerror(errno));
  }
  client_call_options co = {.timeout_ms = 0};
  rpc_stream_callbacks cb = {.on_message = exec_on_message, .on_close = exec_on_close, .on_writable = exec_on_writable};
  keel_error err = {0};
  int rc = 0;
  struct termios saved;
  struct sigaction old_winch;
  bool raw = false;
  s.s = client_stream_start(c, "/keel.api.v1.Pods/Exec", RPC_BIDI_STREAMING, NULL,
                            &keel__api__v1__exec_response__descriptor, &co, &cb, &s, &err);
  if (!s.s) {
    rc = cli_error(x, "%s", err.message);
    goto out;
  }
  Keel__Api__V1__PodExecOptions o = KEEL__API__V1__POD_EXEC_OPTIONS__INIT;
  o.namespace_ = p->metadata->namespace_;
  o.name = p->metadata->name;
  o.container = (char *)cname;
  o.command = command;
  o.n_command = ncmd;
  o.stdin = use_stdin;
  o.tty = tty;
  Keel__Api__V1__ExecRequest first = KEEL__API__V1__EXEC_REQUEST__INIT;
  first.start = &o;
  pthread_t feeder;
  bool feeding = false;
  if (exec_send(&s, &first)) {
    if (tty && use_stdin) raw = terminal_raw(&saved);
    Keel__Api__V1__TerminalSize size = KEEL__API__V1__TERMINAL_SIZE__INIT;
    Keel__Api__V1__ExecRequest resize = KEEL__API__V1__EXEC_REQUEST__INIT;
    resize.resize = &size;
    if (tty && terminal_size(&size)) {
      exec_send(&s, &resize);
      /* Later resizes follow the terminal (the stdin thread sends them). */
      if (use_stdin && pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
        struct sigaction sa = {.sa_handler = on_sigwinch, .sa_flags = SA_RESTART};
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGWINCH, &sa, &old_winch) == 0) s.winch = g_winch_pipe[0];
      }
    }
    if (use_stdin) feeding = pthread_create(&feeder, NULL, exec_stdin_thread, &s) == 0;
    else rpc_stream_close_send(s.s); /* nothing to send: the agent sees stdin's end */
  }
  stream_end_wait(&s.end);
  if (feeding) pthread_join(feeder, NULL);
  if (raw) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
  if (s.winch >= 0) sigaction(SIGWINCH, &old_winch, NULL);
  if (g_winch_pipe[0] >= 0) {
    close(g_winch_pipe[0]);
    close(g_winch_pipe[1]);
    g_winch_pipe[0] = g_winch_pipe[1] = -1;
  }
  rpc_stream_release(s.s);
  if (s.end.failed) {
    rc = cli_server_error(x, &s.end.first_error, NULL);
  } else if (!s.have_exit) {
    rc = cli_error(x, "the node agent ended exec without an exit code");
  } else if (s.exit_code != 0) {
    fprintf(stderr, "command terminated with exit code %d\n", s.exit_code);
    rc = s.exit_code > 0 && s.exit_code < 256 ? s.exit_code : 1;
  }
out:
  close(s.wake[0]);
  close(s.wake[1]);
  pthread_cond_destroy(&s.writable);
  pthread_mutex_destroy(&s.mu);
  stream_end_destroy(&s.end);
  return rc;
}

int cmd_exec(cli *x, int argc, char **argv) {
  char *container = NULL;
  bool stdin_ = false, tty = false;
  flag_def defs[] = {
      FLAG_STRING("container", &container, "the container (-c; default: the first)"),
      FLAG_BOOL("stdin", &stdin_, "pass standard input to the command (-i)"),
      FLAG_BOOL("tty", &tty, "allocate a terminal (-t)"),
      FLAG_END,
  };
  /* The command is everything after "--". */
  int cmd_at = argc;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      cmd_at = i;
      break;
    }
  char **pos = NULL;
  int npos = 0;
  int prc = cli_parse(x, "keel exec (POD | TYPE/NAME) [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
                      "Run a command in a container (through its node agent).", defs, CLI_FLAGS_CONNECT, cmd_at, argv,
                      &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  int ncmd = cmd_at < argc ? argc - cmd_at - 1 : 0;
  if (npos < 1) {
    cli_error(x, "expected a pod name: keel exec POD -- COMMAND");
  } else if (npos > 1) {
    cli_error(x, "exec [POD] [COMMAND] is not supported: put the command after --: keel exec %s -- %s", pos[0], pos[1]);
  } else if (ncmd == 0) {
    cli_error(x, "you must specify at least one command for the container");
  } else {
    client *c = cli_client(x);
    Keel__Api__V1__Pod *p = c ? resolve_pod(x, c, pos[0], "exec in") : NULL;
    const char *cname = p ? pick_container(x, p, container, false) : NULL;
    if (cname) rc = run_exec(x, c, p, cname, argv + cmd_at + 1, (size_t)ncmd, stdin_, tty);
    if (p) protobuf_c_message_free_unpacked(&p->base, NULL);
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
