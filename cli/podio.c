/* cli/podio.c — `keel logs` and `keel exec`, over keel.api.v1 Pods/Log and
 * Pods/Exec, which keel-apiserver relays to the pod's node agent.
 *
 * Both first read the pod (as kubectl does) to pick the container: -c, else
 * the only one, else the first with a "Defaulted container" note on stderr.
 * Then bytes flow: log chunks to stdout; exec's stdout and stderr to ours, our
 * stdin (-i) to the command, and the command's exit code becomes ours, with
 * kubectl's "command terminated with exit code N" on stderr. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"

/* ---------------------------------------------------------------- containers */

/* The pod named by arg ("web" or "pod/web"; other kinds have no containers
 * of their own) and its container: -c, else the first (named on stderr when
 * there are several, as kubectl does). *pod_out is the caller's to free. */
static int resolve_container(cli *x, client *c, const char *arg, const char *container, const char *verb,
                             Keel__Api__V1__Pod **pod_out, const char **cname) {
  const char *name = arg;
  const char *slash = strchr(arg, '/');
  if (slash) {
    char *type = strndup(arg, (size_t)(slash - arg));
    const api_kind *k = type ? cli_kind(x, type) : NULL;
    free(type);
    if (!k) return -1;
    if (strcmp(k->kind, "Pod") != 0)
      return cli_error(x, "cannot %s %s: only pods have containers (name a pod)", verb, arg), -1;
    name = slash + 1;
  }
  const api_kind *pk = api_kind_by_name("Pod");
  ProtobufCMessage *obj = NULL;
  client_status st;
  client_call_options co = cli_call_opts(x, false);
  if (client_get(c, pk, cli_namespace(x), name, NULL, &obj, &co, &st) < 0) return cli_server_error(x, &st, NULL), -1;
  Keel__Api__V1__Pod *p = (Keel__Api__V1__Pod *)obj;
  size_t n = p->spec ? p->spec->n_containers : 0;
  *cname = NULL;
  if (container && *container) {
    for (size_t i = 0; i < n; i++)
      if (p->spec->containers[i]->name && strcmp(p->spec->containers[i]->name, container) == 0)
        *cname = p->spec->containers[i]->name;
    for (size_t i = 0; !*cname && p->spec && i < p->spec->n_init_containers; i++)
      if (p->spec->init_containers[i]->name && strcmp(p->spec->init_containers[i]->name, container) == 0)
        *cname = p->spec->init_containers[i]->name;
    if (!*cname) {
      cli_error(x, "container %s is not valid for pod %s", container, name);
      protobuf_c_message_free_unpacked(obj, NULL);
      return -1;
    }
  } else if (n > 0) {
    *cname = p->spec->containers[0]->name;
    if (n > 1) {
      fprintf(stderr, "Defaulted container \"%s\" out of: ", *cname);
      for (size_t i = 0; i < n; i++) fprintf(stderr, "%s%s", i ? ", " : "", p->spec->containers[i]->name);
      fprintf(stderr, "\n");
    }
  } else {
    cli_error(x, "pod %s has no containers", name);
    protobuf_c_message_free_unpacked(obj, NULL);
    return -1;
  }
  *pod_out = p;
  return 0;
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

static void log_on_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  stream_end *e = arg;
  const Keel__Api__V1__PodLogChunk *ch = (const Keel__Api__V1__PodLogChunk *)m;
  /* Writing here holds the stream's thread, so a slow stdout slows the
   * apiserver and the agent down instead of filling memory. */
  if (ch->data.len && write_all(STDOUT_FILENO, ch->data.data, ch->data.len) < 0) {
    pthread_mutex_lock(&e->mu);
    e->output_broken = true;
    pthread_mutex_unlock(&e->mu);
    rpc_stream_cancel(s);
  }
}

static void log_on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  stream_end_close(arg, st);
}

/* Streams the logs of every container in names (in parallel: with -f they
 * never end on their own). */
static int stream_logs(cli *x, client *c, const Keel__Api__V1__Pod *p, const char *const *names, size_t n,
                       const Keel__Api__V1__PodLogOptions *base) {
  stream_end e;
  stream_end_init(&e, (int)n);
  rpc_stream **streams = calloc(n, sizeof *streams);
  int rc = 0;
  if (!streams) {
    stream_end_destroy(&e);
    return cli_error(x, "out of memory");
  }
  client_call_options co = {.timeout_ms = 0};
  rpc_stream_callbacks cb = {.on_message = log_on_message, .on_close = log_on_close};
  for (size_t i = 0; i < n; i++) {
    Keel__Api__V1__PodLogOptions o = *base;
    o.namespace_ = p->metadata->namespace_;
    o.name = p->metadata->name;
    o.container = (char *)names[i];
    keel_error err = {0};
    streams[i] = client_stream_start(c, "/keel.api.v1.Pods/Log", RPC_SERVER_STREAMING, &o.base,
                                     &keel__api__v1__pod_log_chunk__descriptor, &co, &cb, &e, &err);
    if (!streams[i]) {
      rc = cli_error(x, "%s", err.message);
      pthread_mutex_lock(&e.mu);
      e.open -= (int)(n - i);
      pthread_mutex_unlock(&e.mu);
      for (size_t j = 0; j < i; j++) rpc_stream_cancel(streams[j]);
      break;
    }
  }
  stream_end_wait(&e);
  for (size_t i = 0; i < n; i++) rpc_stream_release(streams[i]);
  free(streams);
  if (rc == 0 && e.output_broken) rc = 1; /* a closed stdout: quietly, as a pipe reader expects */
  else if (rc == 0 && e.failed) rc = cli_server_error(x, &e.first_error, NULL);
  stream_end_destroy(&e);
  return rc;
}

int cmd_logs(cli *x, int argc, char **argv) {
  char *container = NULL, *since = NULL;
  bool follow = false, previous = false, timestamps = false, all_containers = false;
  int64_t tail = -1, limit_bytes = 0;
  flag_def defs[] = {
      FLAG_STRING("container", &container, "the container (-c; default: the first)"),
      FLAG_BOOL("follow", &follow, "keep streaming new lines"),
      FLAG_BOOL("previous", &previous, "the previous instance of the container (-p)"),
      FLAG_BOOL("timestamps", &timestamps, "prefix each line with its time"),
      FLAG_BOOL("all-containers", &all_containers, "every container of the pod (init containers first)"),
      FLAG_INT("tail", &tail, "only the last N lines (-1: all)"),
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
  int prc = cli_parse(x, "keel logs POD [-c CONTAINER] [-f]", "Print a container's log (through its node agent).",
                      defs, CLI_FLAGS_CONNECT, argc, argv, &pos, &npos);
  if (prc) return prc < 0 ? 1 : 0;
  int rc = 1;
  int64_t since_ms = 0;
  if (npos != 1) {
    cli_error(x, "expected one pod name: keel logs POD [-c CONTAINER]");
  } else if (since && (cli_parse_timeout(since, &since_ms) < 0 || since_ms <= 0)) {
    cli_error(x, "invalid --since \"%s\" (want e.g. 5s, 2m)", since);
  } else if (tail < -1 || limit_bytes < 0) {
    cli_error(x, "%s must be %s", tail < -1 ? "--tail" : "--limit-bytes", tail < -1 ? "-1 or more" : "0 or more");
  } else if (all_containers && container) {
    cli_error(x, "--container and --all-containers cannot be used together");
  } else {
    client *c = cli_client(x);
    Keel__Api__V1__Pod *p = NULL;
    const char *cname = NULL;
    if (c && resolve_container(x, c, pos[0], container, "get logs of", &p, &cname) == 0) {
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
      const Keel__Api__V1__PodSpec *spec = p->spec;
      size_t n = 0;
      const char **names = NULL;
      if (all_containers && spec) {
        names = calloc(spec->n_init_containers + spec->n_containers, sizeof *names);
        for (size_t i = 0; names && i < spec->n_init_containers; i++) names[n++] = spec->init_containers[i]->name;
        for (size_t i = 0; names && i < spec->n_containers; i++) names[n++] = spec->containers[i]->name;
      } else {
        names = calloc(1, sizeof *names);
        if (names) names[n++] = cname;
      }
      rc = names ? stream_logs(x, c, p, names, n, &o) : cli_error(x, "out of memory");
      free(names);
      protobuf_c_message_free_unpacked(&p->base, NULL);
    }
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
} exec_session;

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
    struct pollfd fds[2] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = x->wake[0], .events = POLLIN}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) return NULL; /* the stream ended */
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
  if (pipe2(s.wake, O_CLOEXEC) < 0) {
    stream_end_destroy(&s.end);
    return cli_error(x, "pipe: %s", strerror(errno));
  }
  client_call_options co = {.timeout_ms = 0};
  rpc_stream_callbacks cb = {.on_message = exec_on_message, .on_close = exec_on_close, .on_writable = exec_on_writable};
  keel_error err = {0};
  int rc = 0;
  struct termios saved;
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
    struct winsize ws;
    if (tty && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col) {
      Keel__Api__V1__TerminalSize size = KEEL__API__V1__TERMINAL_SIZE__INIT;
      size.width = ws.ws_col;
      size.height = ws.ws_row;
      Keel__Api__V1__ExecRequest resize = KEEL__API__V1__EXEC_REQUEST__INIT;
      resize.resize = &size;
      exec_send(&s, &resize);
    }
    if (use_stdin) feeding = pthread_create(&feeder, NULL, exec_stdin_thread, &s) == 0;
    else rpc_stream_close_send(s.s); /* nothing to send: the agent sees stdin's end */
  }
  stream_end_wait(&s.end);
  if (feeding) pthread_join(feeder, NULL);
  if (raw) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
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
  int prc = cli_parse(x, "keel exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARG...]",
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
    Keel__Api__V1__Pod *p = NULL;
    const char *cname = NULL;
    if (c && resolve_container(x, c, pos[0], container, "exec in", &p, &cname) == 0) {
      rc = run_exec(x, c, p, cname, argv + cmd_at + 1, (size_t)ncmd, stdin_, tty);
      protobuf_c_message_free_unpacked(&p->base, NULL);
    }
  }
  flags_free_positional(pos);
  cli_parse_done(defs);
  return rc;
}
