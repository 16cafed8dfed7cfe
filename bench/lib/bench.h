/* bench/lib/bench.h — what the raw-gRPC load clients under bench/ (bench/rpc
 * and bench/store) share, so that every server is measured the same way:
 * clocks, latency vectors and percentiles, the CPU accounting behind the
 * srv_/cli_/other_/steal_ fields of their result lines, channels on their own
 * connections, and the one-batch client call.
 *
 * Everything here is for a short-lived benchmark process: allocation failures
 * and refused gRPC batches end it (bench_die), nothing is retried. */
#ifndef KEEL_BENCH_LIB_BENCH_H
#define KEEL_BENCH_LIB_BENCH_H

#include <grpc/grpc.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- basics */

/* CLOCK_MONOTONIC in nanoseconds; sleeps until that clock reads t_ns. */
int64_t bench_now_ns(void);
void bench_sleep_until(int64_t t_ns);
/* "load: WHAT" on stderr, exit status 1. */
void bench_die(const char *what) __attribute__((noreturn));
/* malloc / calloc that die instead of returning NULL (0 sizes allowed). */
void *bench_xmalloc(size_t n);
void *bench_xcalloc(size_t n, size_t size);
/* The value of "--name=VALUE" when arg is that flag, else NULL. */
const char *bench_flag_value(const char *arg, const char *name);

/* ---------------------------------------------------------------- latencies */

typedef struct bench_lat {
  int64_t *v; /* nanoseconds */
  size_t n, cap;
} bench_lat;

void bench_lat_push(bench_lat *l, int64_t ns);
void bench_lat_append(bench_lat *into, const bench_lat *from);
void bench_lat_sort(bench_lat *l);
/* Percentile q (0..100) of a sorted vector in microseconds: the element at
 * n * q / 100 (the last for q = 100); 0 when empty. */
double bench_lat_pct_us(const bench_lat *l, double q);
/* The largest of a sorted vector in microseconds; 0 when empty. */
double bench_lat_max_us(const bench_lat *l);
void bench_lat_free(bench_lat *l);

/* ---------------------------------------------------------------- CPU */

/* CPU seconds used so far by the server (-1: no pid or unreadable), this
 * process, and the whole machine: busy = user + nice + system of /proc/stat
 * (what processes are charged; interrupt and softirq time, which carries most
 * of the loopback TCP work, is charged to no process and left out), steal =
 * what the hypervisor took (-1 when unreadable). */
typedef struct bench_cpu_mark {
  double srv, self, busy, steal;
} bench_cpu_mark;

bench_cpu_mark bench_cpu_now(int server_pid);
/* "srv_cpu_pct=.. srv_us_per_op=.. cli_cpu_pct=.. cli_us_per_op=..
 * other_cpu_pct=.. steal_pct=.." over [a, b], secs seconds long, with ops
 * operations done; 100% = one core; other = what unrelated processes used
 * meanwhile (busy less ours and the server's); -1 for what is unknown. */
void bench_cpu_report(char *out, size_t len, bench_cpu_mark a, bench_cpu_mark b, double secs, uint64_t ops);

/* ---------------------------------------------------------------- gRPC */

/* An insecure channel to target on its own TCP connection (a distinct
 * channel argument per id), without retries, channelz or the full filter
 * stack unless LOAD_FULL_STACK is set in the environment; with
 * unlimited_receive, responses of any size. */
grpc_channel *bench_channel_create(const char *target, int id, bool unlimited_receive);
/* Shuts cq down, drains it and destroys it. */
void bench_cq_destroy(grpc_completion_queue *cq);
/* A call of a registered method on cq, no deadline; dies when gRPC refuses. */
grpc_call *bench_registered_call(grpc_channel *ch, grpc_completion_queue *cq, void *method);

/* A client call whose request goes out in one batch. */
typedef struct bench_call {
  grpc_call *call;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *send, *recv;
  grpc_status_code status;
  grpc_slice details;
} bench_call;

/* Takes call (owned from now on) and a copy of the request req (the caller
 * keeps its ref); recv NULL, details empty. */
void bench_call_init(bench_call *c, grpc_call *call, grpc_slice req);
/* Starts the batch: initial metadata, the request, half-close, the response's
 * initial metadata, (with recv_message) the response message, and the
 * status. Its completion under tag means the call is over. Dies when gRPC
 * refuses the batch. */
void bench_call_start(bench_call *c, bool recv_message, void *tag);
/* Releases the call, its buffers, metadata and details (after the status). */
void bench_call_release(bench_call *c);

#endif
