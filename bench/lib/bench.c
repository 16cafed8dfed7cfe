/* bench/lib/bench.c — see bench.h. */
#include "bench/lib/bench.h"

#include <grpc/byte_buffer.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- basics */

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void bench_sleep_until(int64_t t_ns) {
  int64_t d;
  while ((d = t_ns - bench_now_ns()) > 0) {
    struct timespec ts = {d / 1000000000, d % 1000000000};
    nanosleep(&ts, NULL);
  }
}

void bench_die(const char *what) {
  fprintf(stderr, "load: %s\n", what);
  exit(1);
}

void *bench_xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) bench_die("out of memory");
  return p;
}

void *bench_xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (p == NULL) bench_die("out of memory");
  return p;
}

const char *bench_flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) == 0 && arg[n] == '=') return arg + n + 1;
  return NULL;
}

/* ---------------------------------------------------------------- latencies */

void bench_lat_push(bench_lat *l, int64_t ns) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1 << 14;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (l->v == NULL) bench_die("out of memory");
  }
  l->v[l->n++] = ns;
}

void bench_lat_append(bench_lat *into, const bench_lat *from) {
  for (size_t i = 0; i < from->n; i++) bench_lat_push(into, from->v[i]);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

void bench_lat_sort(bench_lat *l) {
  if (l->n) qsort(l->v, l->n, sizeof *l->v, cmp_i64);
}

double bench_lat_pct_us(const bench_lat *l, double q) {
  if (l->n == 0) return 0;
  size_t i = (size_t)((double)l->n * q / 100.0);
  if (i >= l->n) i = l->n - 1;
  return (double)l->v[i] / 1e3;
}

double bench_lat_max_us(const bench_lat *l) { return l->n ? (double)l->v[l->n - 1] / 1e3 : 0; }

void bench_lat_free(bench_lat *l) {
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

/* ---------------------------------------------------------------- CPU */

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

static void machine_cpu_seconds(double *busy, double *steal) {
  unsigned long long v[8] = {0};
  *busy = *steal = -1;
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                 &v[6], &v[7]);
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

bench_cpu_mark bench_cpu_now(int server_pid) {
  bench_cpu_mark m;
  m.srv = server_pid ? proc_cpu_seconds(server_pid) : -1;
  m.self = self_cpu_seconds();
  machine_cpu_seconds(&m.busy, &m.steal);
  return m;
}

void bench_cpu_report(char *out, size_t len, bench_cpu_mark a, bench_cpu_mark b, double secs, uint64_t ops) {
  double srv = a.srv >= 0 && b.srv >= 0 ? b.srv - a.srv : -1, cli = b.self - a.self;
  double other = a.busy >= 0 && b.busy >= 0 ? b.busy - a.busy - cli - (srv > 0 ? srv : 0) : -1;
  snprintf(out, len,
           "srv_cpu_pct=%.0f srv_us_per_op=%.2f cli_cpu_pct=%.0f cli_us_per_op=%.2f "
           "other_cpu_pct=%.0f steal_pct=%.0f",
           srv >= 0 ? 100 * srv / secs : -1, srv >= 0 && ops ? 1e6 * srv / (double)ops : -1, 100 * cli / secs,
           ops ? 1e6 * cli / (double)ops : -1, other >= 0 ? 100 * other / secs : 0,
           a.steal >= 0 ? 100 * (b.steal - a.steal) / secs : -1);
}

/* ---------------------------------------------------------------- gRPC */

grpc_channel *bench_channel_create(const char *target, int id, bool unlimited_receive) {
  grpc_arg args[8];
  size_t n = 0;
  /* A distinct channel arg per channel keeps each on its own connection. */
  args[n++] = (grpc_arg){GRPC_ARG_INTEGER, "keel.bench.channel", {.integer = id}};
  if (unlimited_receive)
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}};
  if (!getenv("LOAD_FULL_STACK")) {
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_RETRIES, {.integer = 0}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_CHANNELZ, {.integer = 0}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MINIMAL_STACK, {.integer = 1}};
  }
  grpc_channel_args ca = {n, args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}

void bench_cq_destroy(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
}

grpc_call *bench_registered_call(grpc_channel *ch, grpc_completion_queue *cq, void *method) {
  grpc_call *call = grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method,
                                                        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (call == NULL) bench_die("create_registered_call failed");
  return call;
}

void bench_call_init(bench_call *c, grpc_call *call, grpc_slice req) {
  c->call = call;
  grpc_metadata_array_init(&c->initial_md);
  grpc_metadata_array_init(&c->trailing_md);
  c->send = grpc_raw_byte_buffer_create(&req, 1);
  c->recv = NULL;
  c->status = GRPC_STATUS_UNKNOWN;
  c->details = grpc_empty_slice();
}

void bench_call_start(bench_call *c, bool recv_message, void *tag) {
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = c->send;
  ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[n++].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
  if (recv_message) {
    ops[n].op = GRPC_OP_RECV_MESSAGE;
    ops[n++].data.recv_message.recv_message = &c->recv;
  }
  ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[n].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
  ops[n].data.recv_status_on_client.status = &c->status;
  ops[n++].data.recv_status_on_client.status_details = &c->details;
  if (grpc_call_start_batch(c->call, ops, n, tag, NULL) != GRPC_CALL_OK) bench_die("start_batch");
}

void bench_call_release(bench_call *c) {
  if (c->recv) grpc_byte_buffer_destroy(c->recv);
  c->recv = NULL;
  if (c->send) grpc_byte_buffer_destroy(c->send);
  c->send = NULL;
  grpc_metadata_array_destroy(&c->initial_md);
  grpc_metadata_array_destroy(&c->trailing_md);
  grpc_slice_unref(c->details);
  c->details = grpc_empty_slice();
  if (c->call) grpc_call_unref(c->call);
  c->call = NULL;
}
