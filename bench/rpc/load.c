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
 *   steal_pct=1
 * Clocks, latencies, CPU accounting and the call batch are bench/lib's. */
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

#include "bench/lib/bench.h"
#include "keel/echo/v1/echo.pb-c.h"

typedef struct options {
  const char *target;
  int server_pid;
  bool stream;
  int inflight, streams, threads, payload;
  double duration, warmup;
} options;

static options g_opt = {NULL, 0, false, 64, 2, 1, 16, 5.0, 1.0};

/* One call slot: a unary call or a stream. */
typedef struct slot {
  int idx;
  bench_call c; /* c.send: the request, kept until its batch completes */
  int64_t started_ns;
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
  bench_lat lat;
  int open_calls;
  grpc_status_code last_error;
} worker;

static void start_call(worker *w, slot *s) {
  bench_call_init(&s->c, bench_registered_call(w->ch, w->cq, w->method), w->request);
  s->open = true;
  s->started_ns = bench_now_ns();
  w->open_calls++;
  bench_call_start(&s->c, !g_opt.stream, s);
}

static void start_recv(worker *w, slot *s) {
  (void)w;
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->c.recv;
  s->recv_pending = true;
  if (grpc_call_start_batch(s->c.call, &op, 1, (void *)((uintptr_t)s | RECV_BIT), NULL) !=
      GRPC_CALL_OK)
    bench_die("start_batch (recv)");
}

static void finish_call(worker *w, slot *s) {
  w->open_calls--;
  s->open = false;
  bench_call_release(&s->c);
}

static void *worker_main(void *arg) {
  worker *w = arg;
  bool stopping = false;
  for (;;) {
    int64_t t = bench_now_ns();
    if (!stopping && t >= w->end_ns) {
      stopping = true;
      for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].open) grpc_call_cancel(w->slots[i].c.call, NULL);
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
    t = bench_now_ns();
    bool in_window = t >= w->warm_ns && t < w->end_ns;
    if (tagv & RECV_BIT) { /* stream message (or end of stream) */
      s->recv_pending = false;
      if (ev.success && s->c.recv) {
        if (in_window) w->messages++;
        grpc_byte_buffer_destroy(s->c.recv);
        s->c.recv = NULL;
        if (s->open && !stopping) start_recv(w, s);
      }
      continue;
    }
    if (!ev.success) bench_die("call batch failed");
    /* The batch carrying RECV_STATUS_ON_CLIENT has completed: the call is over. */
    if (s->c.status == GRPC_STATUS_OK) {
      if (!g_opt.stream && in_window) {
        w->ok++;
        bench_lat_push(&w->lat, t - s->started_ns);
      }
    } else if (!stopping) {
      w->errors++;
      w->last_error = s->c.status;
    }
    finish_call(w, s);
    if (!stopping && !g_opt.stream) start_call(w, s);
  }
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
    if ((v = bench_flag_value(argv[i], "--target")))
      g_opt.target = v;
    else if ((v = bench_flag_value(argv[i], "--mode"))) {
      if (strcmp(v, "unary") == 0)
        g_opt.stream = false;
      else if (strcmp(v, "stream") == 0)
        g_opt.stream = true;
      else
        usage();
    } else if ((v = bench_flag_value(argv[i], "--server-pid")))
      g_opt.server_pid = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--inflight")))
      g_opt.inflight = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--streams")))
      g_opt.streams = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--threads")))
      g_opt.threads = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--payload")))
      g_opt.payload = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--duration")))
      g_opt.duration = atof(v);
    else if ((v = bench_flag_value(argv[i], "--warmup")))
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
  int64_t start = bench_now_ns();
  int64_t warm = start + (int64_t)(g_opt.warmup * 1e9);
  int64_t end = warm + (int64_t)(g_opt.duration * 1e9);
  worker *ws = calloc((size_t)g_opt.threads, sizeof *ws);
  for (int i = 0; i < g_opt.threads; i++) {
    worker *w = &ws[i];
    w->id = i;
    w->nslots = total / g_opt.threads + (i < total % g_opt.threads);
    w->slots = calloc((size_t)w->nslots, sizeof *w->slots);
    w->ch = bench_channel_create(g_opt.target, i, false);
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
    if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) bench_die("pthread_create");
  /* CPU used inside the measured window, by the server (if known) and by us. */
  bench_sleep_until(warm);
  bench_cpu_mark c0 = bench_cpu_now(g_opt.server_pid);
  bench_sleep_until(end);
  bench_cpu_mark c1 = bench_cpu_now(g_opt.server_pid);
  uint64_t ok = 0, errors = 0, messages = 0;
  bench_lat lat = {0};
  grpc_status_code last_error = GRPC_STATUS_OK;
  for (int i = 0; i < g_opt.threads; i++) {
    pthread_join(ws[i].th, NULL);
    ok += ws[i].ok;
    errors += ws[i].errors;
    messages += ws[i].messages;
    bench_lat_append(&lat, &ws[i].lat);
    if (ws[i].errors) last_error = ws[i].last_error;
  }
  bench_lat_sort(&lat);
  double secs = g_opt.duration;
  uint64_t done = g_opt.stream ? messages : ok;
  /* CPU per completed call (or message), in microseconds, and as a share of
   * one core; other% and steal% show how much the numbers can be trusted. */
  char cpu[256];
  bench_cpu_report(cpu, sizeof cpu, c0, c1, secs, done);
  if (g_opt.stream) {
    printf("mode=stream streams=%d rate=%.0f messages=%llu errors=%llu secs=%.2f %s\n",
           g_opt.streams, (double)messages / secs, (unsigned long long)messages,
           (unsigned long long)errors, secs, cpu);
  } else {
    double p50 = bench_lat_pct_us(&lat, 50), p99 = bench_lat_pct_us(&lat, 99);
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
    bench_cq_destroy(w->cq);
    grpc_channel_destroy(w->ch);
    grpc_slice_unref(w->request);
    free(w->slots);
    bench_lat_free(&w->lat);
  }
  free(ws);
  bench_lat_free(&lat);
  free(buf);
  free(payload);
  grpc_shutdown();
  return errors ? 1 : 0;
}
