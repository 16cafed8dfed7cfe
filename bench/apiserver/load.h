/* bench/apiserver/load.h — the parts of the load client (bench/apiserver/load):
 * options, latency vectors, CPU accounting, the closed-loop call engine and the
 * benchmark pod. Internal to this folder; see load.c for what each subcommand
 * measures. */
#ifndef KEEL_BENCH_APISERVER_LOAD_H
#define KEEL_BENCH_APISERVER_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/apiserver/lite.pb-c.h"
#include "bench/lib/bench.h"
#include "common/rpc/rpc.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/services.pb-c.h"

/* ---------------------------------------------------------------- options */

typedef struct options {
  const char *target;     /* keel-apiserver gRPC host:port */
  const char *store;      /* raw: the store's client URL (http://127.0.0.1:2379) */
  const char *ns;         /* namespace of the pods */
  const char *prefix;     /* pod names: <prefix><index> */
  const char *rv;         /* get/list: resourceVersion ("0": watch cache; "": consistent) */
  const char *selector;   /* list: label selector */
  const char *op;         /* raw: create or get */
  const char *key_prefix; /* raw: where the apiserver keeps pods ("/registry/pods/") */
  const char *raw_prefix; /* raw create: where the copies go ("/rawbench/pods/") */
  long count;             /* create: pods; get: pods to pick from; list: items expected */
  long start;             /* create: first index */
  int clients, channels, watchers, repeat, pods;
  double duration, warmup, rate, drain, setup_timeout;
  int server_pid, store_pid;
} options;

extern options g_opt;

void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---------------------------------------------------------------- CPU */

/* CPU seconds used so far by the apiserver (--server-pid), the store
 * (--store-pid), this process, and the whole machine (busy, steal). */
typedef struct cpu_mark {
  double srv, store, self, busy, steal;
} cpu_mark;

cpu_mark cpu_now(void);
/* "srv_cpu_pct=.. srv_us_per_op=.. store_cpu_pct=.. store_us_per_op=.. cli_cpu_pct=..
 * cli_us_per_op=.. other_cpu_pct=.. steal_pct=.." over secs seconds and ops
 * operations; 100% = one core. other = what unrelated processes used. */
void cpu_report(char *out, size_t len, cpu_mark a, cpu_mark b, double secs, uint64_t ops);
/* VmRSS of pid in KiB, 0 if unknown. */
long rss_kib(int pid);

/* ---------------------------------------------------------------- channels */

/* A channel to --target with its own TCP connection and completion-queue
 * thread; responses up to 1 GiB (a list of many pods). */
rpc_channel *open_channel(void);
/* Creates namespace ns through the apiserver; AlreadyExists is fine. */
void ensure_namespace(rpc_channel *ch, const char *ns);

/* ---------------------------------------------------------------- the engine
 *
 * Closed loop: every slot keeps one call open; a finished call is replaced at
 * once by the next. Count mode (create): stops when `count` calls were issued.
 * Timed mode (get): runs until end_ns; only calls that complete inside
 * [warm_ns, end_ns) count. A slot's completions always arrive on the same
 * thread (its channel's), so its counters need no lock. */

typedef struct engine engine;

typedef struct eslot {
  engine *e;
  int id;
  int64_t started_ns, last_done_ns;
  long index; /* what the call in flight is about (pod index) */
  bench_lat lat;
  uint64_t ok, errors;
  grpc_status_code last_code;
  char last_msg[200];
  void *user; /* the op's per-slot state */
} eslot;

struct engine {
  int nslots;
  eslot *slots;
  /* Starts the next call of s: true when one was started (its completion
   * calls engine_done), false when there is nothing left to do (or the start
   * failed, counted with engine_fail). */
  bool (*issue)(eslot *s);
  void *arg;
  bool timed;
  long count;
  int64_t warm_ns, end_ns;
  atomic_long next; /* count mode: the next index to issue */
  atomic_int running;
  pthread_mutex_t mu;
  pthread_cond_t cv;
};

/* Allocates the slots (user = NULL). */
void engine_init(engine *e, int nslots);
/* Issues the first call of every slot; returns at once. */
void engine_run(engine *e);
/* Until every slot is done (timed mode: after end_ns and its calls' ends). */
void engine_wait(engine *e);
/* From a completion: records the outcome (code OK = success; msg for errors)
 * and issues the slot's next call. */
void engine_done(eslot *s, grpc_status_code code, const char *msg);
/* From issue(): the call could not be started; the slot stops. */
void engine_fail(eslot *s, const char *msg);
/* Totals over the slots; lat sorted. */
typedef struct engine_totals {
  uint64_t ok, errors;
  bench_lat lat;
  grpc_status_code last_code;
  char last_msg[200];
  int64_t last_done_ns;
} engine_totals;
void engine_totals_get(engine *e, engine_totals *t);
void engine_destroy(engine *e);

/* ---------------------------------------------------------------- the pod
 *
 * A Pod as a ReplicaSet's pod template makes it, about 1 KiB encoded: labels,
 * an owner reference, one container with image, args, two ports, six env vars
 * (one from the downward API), requests and limits, a readiness probe, an
 * emptyDir volume and its mount, and the two default tolerations. Every message lives inside the struct: setting the
 * name and the annotation allocates nothing. */

typedef struct bench_pod {
  Keel__Api__V1__Pod pod;
  Keel__Api__V1__ObjectMeta meta;
  Keel__Api__V1__ObjectMeta__LabelsEntry labels[4], *label_ptrs[4];
  Keel__Api__V1__ObjectMeta__AnnotationsEntry ann, *ann_ptrs[1];
  Keel__Api__V1__OwnerReference owner, *owner_ptrs[1];
  Google__Protobuf__BoolValue yes;
  Keel__Api__V1__PodSpec spec;
  Keel__Api__V1__Container container, *container_ptrs[1];
  char *args[2];
  Keel__Api__V1__ContainerPort ports[2], *port_ptrs[2];
  Keel__Api__V1__EnvVar env[6], *env_ptrs[6];
  Keel__Api__V1__VolumeMount mount, *mount_ptrs[1];
  Keel__Api__V1__Volume vol, *vol_ptrs[1];
  Keel__Api__V1__EmptyDirVolumeSource empty_dir;
  Keel__Api__V1__EnvVarSource env_src;
  Keel__Api__V1__ObjectFieldSelector field_ref;
  Keel__Api__V1__ResourceRequirements res;
  Keel__Api__V1__ResourceRequirements__LimitsEntry limits[2], *limit_ptrs[2];
  Keel__Api__V1__ResourceRequirements__RequestsEntry requests[2], *request_ptrs[2];
  Keel__Api__V1__Quantity qty[4];
  Keel__Api__V1__Probe readiness;
  Keel__Api__V1__HTTPGetAction http_get;
  Keel__Api__V1__IntOrString probe_port;
  Keel__Api__V1__Toleration tol[2], *tol_ptrs[2];
  Google__Protobuf__Int64Value tol_secs, grace;
  char name[128], shard[8], seq[24];
} bench_pod;

void bench_pod_init(bench_pod *p, const char *ns);
/* Names the pod; label shard=<index % 10>; with seq != NULL, the annotation
 * bench.keel.dev/seq=<seq> (the watch benchmark's event id). */
void bench_pod_set(bench_pod *p, const char *name, long index, const char *seq);

#define SEQ_ANNOTATION "bench.keel.dev/seq"

/* ---------------------------------------------------------------- subcommands */

int run_raw(void);
int run_watch(void);

#endif
