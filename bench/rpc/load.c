/* bench/rpc/load.c — the one load client every server in bench/rpc is measured
 * with, on the raw gRPC C core (one completion queue and one channel per
 * thread), so differences come from the servers.
 *
 *   load --target=127.0.0.1:PORT --mode=unary  [--inflight=64] [--duration=5] [--warmup=1]
 *   load --target=127.0.0.1:PORT --mode=stream [--streams=2]   [--duration=5] [--warmup=1]
 *   common: --payload=16 (bytes of EchoRequest.payload / ExpandRequest.payload)
 *           --threads=1  (each thread: its own channel, queue, and share of the load)
 *
 * unary:  keeps exactly --inflight Echo calls open (a finished call is replaced
 *         at once), counts the calls that complete inside the measured window
 *         (after --warmup seconds) and their latency from start to status.
 * stream: opens --streams Expand calls with a huge count, receives with one
 *         RECV_MESSAGE at a time per stream, counts messages in the window.
 * At the end every open call is canceled and drained before exit.
 *
 * The channel runs without retries, channelz or the full filter stack (the
 * client is the bottleneck on 2 shared cores, and this is the same for every
 * server); LOAD_FULL_STACK=1 in the environment keeps the defaults.
 * --server-pid=PID adds the server's CPU use inside the window (from /proc),
 * ours, and what unrelated processes used meanwhile.
 *
 * Prints one line of key=value pairs (run.sh parses it), e.g.
 *   mode=unary inflight=64 rate=31241 p50_us=2005 p99_us=5442 ok=93723 errors=0 secs=3.00
 *   srv_cpu_pct=93 srv_us_per_op=29.88 cli_cpu_pct=94 cli_us_per_op=30.08 other_cpu_pct=0
 *   steal_pct=1 */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keel/echo/v1/echo.pb-c.h"

typedef struct options {
  const char *target;
  int server_pid;
  bool stream;
  int inflight, streams, threads, payload;
  double duration, warmup;
} options;

static options g_opt = {NULL, 0, false, 64, 2, 1, 16, 5.0, 1.0};

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "load: %s\n", what);
  exit(1);
}

/* One call slot: a unary call or a stream. */
typedef struct slot {
  int idx;
  grpc_call *call;
  int64_t started_ns;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *send; /* the request, kept until its batch completes */
  grpc_byte_buffer *recv;
  grpc_status_code status;
  grpc_slice details;
  bool open;         /* status not yet received */
  bool recv_pending; /* stream: a RECV_MESSAGE batch outstanding */
} slot;

/* Tag encoding: slot pointer with the low bit set for a stream's RECV_MESSAGE. */
#define RECV_BIT ((uintptr_t)1)

typedef struct worker {
  pthread_t th;
  int id, nslots;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  void *method;
  grpc_slice request; /* encoded once, reused by every call */
  slot *slots;
  int64_t warm_ns, end_ns;
  /* results */
  uint64_t ok, errors, messages;
  int64_t *lat;
  size_t nlat, caplat;
  int open_calls;
  grpc_status_code last_error;
} worker;

static void lat_push(worker *w, int64_t v) {
  if (w->nlat == w->caplat) {
    w->caplat = w->caplat ? w->caplat * 2 : 1 << 16;
    w->lat = realloc(w->lat, w->caplat * sizeof *w->lat);
    if (w->lat == NULL) die("out of memory");
  }
  w->lat[w->nlat++] = v;
}

static void start_call(worker *w, slot *s) {
  s->call =
      grpc_channel_create_registered_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, w->method,
                                          gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (s->call == NULL) die("create_registered_call failed");
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->recv = NULL;
  s->details = grpc_empty_slice();
  s->open = true;
  s->started_ns = now_ns();
  w->open_calls++;

  s->send = grpc_raw_byte_buffer_create(&w->request, 1);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = s->send;
  ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  if (!g_opt.stream) {
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &s->recv;
  }
  ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[n].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[n].data.recv_status_on_client.status = &s->status;
  ops[n++].data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, ops, n, s, NULL) != GRPC_CALL_OK) die("start_batch");
}

static void start_recv(worker *w, slot *s) {
  (void)w;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv;
  s->recv_pending = true;
  if (grpc_call_start_batch(s->call, &op, 1, (void *)((uintptr_t)s | RECV_BIT), NULL) !=
      GRPC_CALL_OK)
    die("start_batch (recv)");
}

static void finish_call(worker *w, slot *s) {
  w->open_calls--;
  s->open = false;
  if (s->recv) grpc_byte_buffer_destroy(s->recv);
  s->recv = NULL;
  grpc_byte_buffer_destroy(s->send);
  s->send = NULL;
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  s->call = NULL;
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bool stopping = false;
  for (;;) {
    int64_t t = now_ns();
    if (!stopping && t >= w->end_ns) {
      stopping = true;
      for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].open) grpc_call_cancel(w->slots[i].call, NULL);
    }
    if (stopping && w->open_calls == 0) {
      /* Stream slots may still hold a RECV_MESSAGE whose completion is queued. */
      bool pending = false;
      for (int i = 0; i < w->nslots; i++) pending |= w->slots[i].recv_pending;
      if (!pending) break;
    }
    grpc_event ev = grpc_completion_queue_next(
        w->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(50, GPR_TIMESPAN)),
        NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    uintptr_t tagv = (uintptr_t)ev.tag;
    slot *s = (slot *)(tagv & ~RECV_BIT);
    t = now_ns();
    bool in_window = t >= w->warm_ns && t < w->end_ns;
    if (tagv & RECV_BIT) { /* stream message (or end of stream) */
      s->recv_pending = false;
      if (ev.success && s->recv) {
        if (in_window) w->messages++;
        grpc_byte_buffer_destroy(s->recv);
        s->recv = NULL;
        if (s->open && !stopping) start_recv(w, s);
      }
      continue;
    }
    if (!ev.success) die("call batch failed");
    /* The batch carrying RECV_STATUS_ON_CLIENT has completed: the call is over. */
    if (s->status == GRPC_STATUS_OK) {
      if (!g_opt.stream && in_window) {
        w->ok++;
        lat_push(w, t - s->started_ns);
      }
    } else if (!stopping) {
      w->errors++;
      w->last_error = s->status;
    }
    finish_call(w, s);
    if (!stopping && !g_opt.stream) start_call(w, s);
  }
  return NULL;
}

/* CPU seconds (user + system) used so far by process pid, from /proc; -1 if
 * unreadable. Jiffies: 10 ms resolution, fine over a window of seconds. */
static double proc_cpu_seconds(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* comm may contain spaces */
  if (p == NULL) return -1;
  unsigned long long utime, stime;
  /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Machine-wide CPU seconds from /proc/stat: busy = user + nice + system (what
 * processes are charged; interrupt and softirq time, which carries most of the
 * loopback TCP work, is left out as it is not charged to processes either) and
 * steal (taken by the hypervisor). */
static void machine_cpu_seconds(double *busy, double *steal) {
  unsigned long long v[8] = {0};
  *busy = *steal = -1;
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                 &v[4], &v[5], &v[6], &v[7]);
  fclose(f);
  if (n != 8) return;
  double tck = (double)sysconf(_SC_CLK_TCK);
  *busy = (double)(v[0] + v[1] + v[2]) / tck;
  *steal = (double)v[7] / tck;
}

static double self_cpu_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_until(int64_t t_ns) {
  int64_t d;
  while ((d = t_ns - now_ns()) > 0) {
    struct timespec ts = {d / 1000000000, d % 1000000000};
    nanosleep(&ts, NULL);
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

static const char *flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) == 0 && arg[n] == '=') return arg + n + 1;
  return NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: load --target=HOST:PORT --mode=unary|stream [--inflight=64] [--streams=2]\n"
          "            [--duration=5] [--warmup=1] [--payload=16] [--threads=1]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *v;
  for (int i = 1; i < argc; i++) {
    if ((v = flag_value(argv[i], "--target")))
      g_opt.target = v;
    else if ((v = flag_value(argv[i], "--mode"))) {
      if (strcmp(v, "unary") == 0)
        g_opt.stream = false;
      else if (strcmp(v, "stream") == 0)
        g_opt.stream = true;
      else
        usage();
    } else if ((v = flag_value(argv[i], "--server-pid")))
      g_opt.server_pid = atoi(v);
    else if ((v = flag_value(argv[i], "--inflight")))
      g_opt.inflight = atoi(v);
    else if ((v = flag_value(argv[i], "--streams")))
      g_opt.streams = atoi(v);
    else if ((v = flag_value(argv[i], "--threads")))
      g_opt.threads = atoi(v);
    else if ((v = flag_value(argv[i], "--payload")))
      g_opt.payload = atoi(v);
    else if ((v = flag_value(argv[i], "--duration")))
      g_opt.duration = atof(v);
    else if ((v = flag_value(argv[i], "--warmup")))
      g_opt.warmup = atof(v);
    else
      usage();
  }
  int total = g_opt.stream ? g_opt.streams : g_opt.inflight;
  if (g_opt.target == NULL || total < 1 || g_opt.threads < 1 || g_opt.threads > total ||
      g_opt.payload < 0 || g_opt.duration <= 0 || g_opt.warmup < 0)
    usage();

  /* The request, encoded once. */
  unsigned char *payload = calloc(1, (size_t)g_opt.payload + 1);
  memset(payload, 'x', (size_t)g_opt.payload);
  size_t len;
  unsigned char *buf;
  if (g_opt.stream) {
    Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
    req.count = UINT64_C(1) << 50; /* "forever": the client cancels */
    req.payload.data = payload;
    req.payload.len = (size_t)g_opt.payload;
    len = keel__echo__v1__expand_request__get_packed_size(&req);
    buf = malloc(len + 1);
    keel__echo__v1__expand_request__pack(&req, buf);
  } else {
    Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
    req.payload.data = payload;
    req.payload.len = (size_t)g_opt.payload;
    len = keel__echo__v1__echo_request__get_packed_size(&req);
    buf = malloc(len + 1);
    keel__echo__v1__echo_request__pack(&req, buf);
  }

  grpc_init();
  int64_t start = now_ns();
  int64_t warm = start + (int64_t)(g_opt.warmup * 1e9);
  int64_t end = warm + (int64_t)(g_opt.duration * 1e9);
  worker *ws = calloc((size_t)g_opt.threads, sizeof *ws);
  for (int i = 0; i < g_opt.threads; i++) {
    worker *w = &ws[i];
    w->id = i;
    w->nslots = total / g_opt.threads + (i < total % g_opt.threads);
    w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
    /* A distinct channel arg per worker keeps each on its own connection. */
    grpc_arg argv_[8];
    size_t nargs = 0;
    argv_[nargs++] = (grpc_arg){GRPC_ARG_INTEGER, "keel.bench.worker", {.integer = i}};
    if (!getenv("LOAD_FULL_STACK")) {
      argv_[nargs++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_RETRIES, {.integer = 0}};
      argv_[nargs++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_CHANNELZ, {.integer = 0}};
      argv_[nargs++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MINIMAL_STACK, {.integer = 1}};
    }
    grpc_channel_args args = {nargs, argv_};
    grpc_channel_credentials *creds = grpc_insecure_credentials_create();
    w->ch = grpc_channel_create(g_opt.target, creds, &args);
    grpc_channel_credentials_release(creds);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->method = grpc_channel_register_call(
        w->ch, g_opt.stream ? "/keel.echo.v1.Echo/Expand" : "/keel.echo.v1.Echo/Echo", NULL, NULL);
    w->request = grpc_slice_from_copied_buffer((const char *)buf, len);
    w->warm_ns = warm;
    w->end_ns = end;
    for (int j = 0; j < w->nslots; j++) {
      w->slots[j].idx = j;
      start_call(w, &w->slots[j]);
      if (g_opt.stream) start_recv(w, &w->slots[j]);
    }
  }
  for (int i = 0; i < g_opt.threads; i++)
    if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) die("pthread_create");
  /* CPU used inside the measured window, by the server (if known) and by us. */
  sleep_until(warm);
  double srv0 = g_opt.server_pid ? proc_cpu_seconds(g_opt.server_pid) : -1;
  double self0 = self_cpu_seconds();
  double busy0, steal0, busy1, steal1;
  machine_cpu_seconds(&busy0, &steal0);
  sleep_until(end);
  machine_cpu_seconds(&busy1, &steal1);
  double srv1 = g_opt.server_pid ? proc_cpu_seconds(g_opt.server_pid) : -1;
  double self1 = self_cpu_seconds();
  uint64_t ok = 0, errors = 0, messages = 0;
  size_t nlat = 0;
  grpc_status_code last_error = GRPC_STATUS_OK;
  for (int i = 0; i < g_opt.threads; i++) {
    pthread_join(ws[i].th, NULL);
    ok += ws[i].ok;
    errors += ws[i].errors;
    messages += ws[i].messages;
    nlat += ws[i].nlat;
    if (ws[i].errors) last_error = ws[i].last_error;
  }
  int64_t *lat = malloc((nlat + 1) * sizeof *lat);
  size_t k = 0;
  for (int i = 0; i < g_opt.threads; i++) {
    if (ws[i].nlat == 0) continue;
    memcpy(lat + k, ws[i].lat, ws[i].nlat * sizeof *lat);
    k += ws[i].nlat;
  }
  qsort(lat, nlat, sizeof *lat, cmp_i64);
  double secs = g_opt.duration;
  uint64_t done = g_opt.stream ? messages : ok;
  /* CPU per completed call (or message), in microseconds, and as a share of one core. */
  double srv_cpu = srv0 >= 0 && srv1 >= 0 ? srv1 - srv0 : -1, cli_cpu = self1 - self0;
  /* Everything else that ran on the machine meanwhile (other users, the
   * kernel's unattributed work), and what the hypervisor stole: both show how
   * much the numbers can be trusted. Percent of one core. */
  double other =
      busy0 >= 0 && busy1 >= 0 ? busy1 - busy0 - cli_cpu - (srv_cpu > 0 ? srv_cpu : 0) : -1;
  char cpu[256];
  snprintf(cpu, sizeof cpu,
           "srv_cpu_pct=%.0f srv_us_per_op=%.2f cli_cpu_pct=%.0f cli_us_per_op=%.2f "
           "other_cpu_pct=%.0f steal_pct=%.0f",
           srv_cpu >= 0 ? 100 * srv_cpu / secs : -1,
           srv_cpu >= 0 && done ? 1e6 * srv_cpu / (double)done : -1, 100 * cli_cpu / secs,
           done ? 1e6 * cli_cpu / (double)done : -1, other >= 0 ? 100 * other / secs : 0,
           steal0 >= 0 ? 100 * (steal1 - steal0) / secs : -1);
  if (g_opt.stream) {
    printf("mode=stream streams=%d rate=%.0f messages=%llu errors=%llu secs=%.2f %s\n",
           g_opt.streams, (double)messages / secs, (unsigned long long)messages,
           (unsigned long long)errors, secs, cpu);
  } else {
    double p50 = nlat ? lat[nlat / 2] / 1e3 : 0, p99 = nlat ? lat[(nlat * 99) / 100] / 1e3 : 0;
    printf(
        "mode=unary inflight=%d rate=%.0f p50_us=%.0f p99_us=%.0f ok=%llu errors=%llu "
        "secs=%.2f %s\n",
        g_opt.inflight, (double)ok / secs, p50, p99, (unsigned long long)ok,
        (unsigned long long)errors, secs, cpu);
  }
  if (errors)
    fprintf(stderr, "load: %llu calls failed, last status %d\n", (unsigned long long)errors,
            (int)last_error);

  for (int i = 0; i < g_opt.threads; i++) {
    worker *w = &ws[i];
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w->cq);
    grpc_channel_destroy(w->ch);
    grpc_slice_unref(w->request);
    free(w->slots);
    free(w->lat);
  }
  free(ws);
  free(lat);
  free(buf);
  free(payload);
  grpc_shutdown();
  return errors ? 1 : 0;
}
