/* bench/apiserver/load.c — the one load client keel-apiserver is measured with,
 * on keel-store and on etcd alike: common/rpc channels (the client Keel's own
 * components use), async unary calls with many in flight, server-streaming
 * watches; and, for the store underneath, common/etcd (the client the
 * apiserver itself uses).
 *
 *   load create --target=H:P [--ns=bench] [--prefix=bench-] [--count=10000] [--start=0] [--clients=128]
 *   load get    --target=H:P [--ns=bench] [--prefix=bench-] [--count=10000] [--rv=0|""] [--clients=64]
 *                            [--duration=3] [--warmup=1]
 *   load list   --target=H:P [--ns=bench] [--selector=shard=3] [--rv=""] [--repeat=5] [--count=N]
 *   load watch  --target=H:P [--ns=bench-watch] [--watchers=1000] [--rate=20] [--duration=5] [--pods=100]
 *   load raw    --store=http://H:P --op=create|get [--ns=bench] [--prefix=bench-] [--count=10000] ...
 *   common: --channels=N (connections, each with its own thread) --server-pid=PID --store-pid=PID
 *
 * create: creates --count pods named <prefix><index> (the pod of load.h,
 *   ~1 KiB) with --clients calls open; reports the rate over the whole run and
 *   the latency (start of the call to its status) p50/p99/max. Every response
 *   is checked (the pod's name, a resourceVersion).
 * get:    keeps --clients Gets open, each for a random one of --count existing
 *   pods, for --duration seconds after --warmup; --rv=0 is served from the
 *   watch cache, --rv= (empty) is a consistent read from the store.
 * list:   one List at a time, --repeat times after one untimed warm-up; the
 *   items and the bytes received (checked against --count when given).
 * watch:  see watch.c. raw: see raw.c.
 *
 * Responses are decoded with lite.proto (the object heads), not the full
 * keel.api.v1 messages: see lite.proto.
 *
 * Prints one line of key=value pairs (run.sh parses it), e.g.
 *   mode=create clients=128 channels=2 count=10000 ok=10000 errors=0 rate=9123 p50_us=..
 *   p99_us=.. max_us=.. secs=.. srv_cpu_pct=.. srv_us_per_op=.. store_cpu_pct=.. ...
 * Exit status 1 when any call failed (the last failure is printed on stderr). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/apiserver/load.h"

options g_opt = {
    .ns = NULL,
    .prefix = "bench-",
    .rv = NULL,
    .selector = "",
    .op = "create",
    .key_prefix = "/registry/pods/",
    .raw_prefix = "/rawbench/pods/",
    .count = -1,
    .clients = -1,
    .channels = -1,
    .watchers = 1000,
    .repeat = 5,
    .pods = 100,
    .duration = -1,
    .warmup = 1.0,
    .rate = 20,
    .drain = 5,
    .setup_timeout = 60,
};

/* ---------------------------------------------------------------- small helpers */

void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "load: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* ---------------------------------------------------------------- CPU */

static double proc_cpu_seconds(int pid) {
  if (pid <= 0) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  unsigned long long utime, stime;
  if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2) return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

long rss_kib(int pid) {
  if (pid <= 0) return 0;
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", pid);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  long kib = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmRSS: %ld", &kib) == 1) break;
  fclose(f);
  return kib;
}

cpu_mark cpu_now(void) {
  cpu_mark m = {.busy = -1, .steal = -1};
  m.srv = proc_cpu_seconds(g_opt.server_pid);
  m.store = proc_cpu_seconds(g_opt.store_pid);
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  m.self = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f) {
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
               &v[7]) == 8) {
      double tck = (double)sysconf(_SC_CLK_TCK);
      m.busy = (double)(v[0] + v[1] + v[2] + v[5] + v[6]) / tck;
      m.steal = (double)v[7] / tck;
    }
    fclose(f);
  }
  return m;
}

void cpu_report(char *out, size_t len, cpu_mark a, cpu_mark b, double secs, uint64_t ops) {
  double srv = a.srv >= 0 && b.srv >= 0 ? b.srv - a.srv : -1;
  double store = a.store >= 0 && b.store >= 0 ? b.store - a.store : -1;
  double cli = b.self - a.self;
  double other =
      a.busy >= 0 && b.busy >= 0 ? b.busy - a.busy - cli - (srv > 0 ? srv : 0) - (store > 0 ? store : 0) : -1;
  if (secs <= 0) secs = 1e-9;
  double per = ops ? 1e6 / (double)ops : -1;
  snprintf(out, len,
           "srv_cpu_pct=%.0f srv_us_per_op=%.1f store_cpu_pct=%.0f store_us_per_op=%.1f cli_cpu_pct=%.0f "
           "cli_us_per_op=%.1f other_cpu_pct=%.0f steal_pct=%.0f",
           srv >= 0 ? 100 * srv / secs : -1, srv >= 0 && ops ? srv * per : -1, store >= 0 ? 100 * store / secs : -1,
           store >= 0 && ops ? store * per : -1, 100 * cli / secs, ops ? cli * per : -1,
           other >= 0 ? (other > 0 ? 100 * other / secs : 0) : -1,
           a.steal >= 0 ? 100 * (b.steal - a.steal) / secs : -1);
}

/* ---------------------------------------------------------------- channels */

rpc_channel *open_channel(void) {
  const char *eps[1] = {g_opt.target};
  rpc_channel_options o = {
      .endpoints = eps,
      .nendpoints = 1,
      .max_message_bytes = (int64_t)1 << 30,
      .cq_threads = 1,
  };
  keel_error err = {0};
  rpc_channel *ch = rpc_channel_create(&o, &err);
  if (!ch) die("channel to %s: %s", g_opt.target, err.message);
  return ch;
}

static const rpc_call_options g_call = {.timeout_ms = 30000, .wait_for_ready = true};

void ensure_namespace(rpc_channel *ch, const char *ns) {
  Keel__Api__V1__Namespace n = KEEL__API__V1__NAMESPACE__INIT;
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  m.name = (char *)ns;
  n.metadata = &m;
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  if (rpc_unary(ch, "/keel.api.v1.Namespaces/Create", &n.base, &keel__bench__v1__object_head__descriptor, &resp,
                &g_call, &st) == 0)
    protobuf_c_message_free_unpacked(resp, NULL);
  else if (st.code != GRPC_STATUS_ALREADY_EXISTS)
    die("create namespace %s: %s: %s", ns, rpc_status_code_name(st.code), st.message ? st.message : "");
  rpc_status_clear(&st);
}

/* ---------------------------------------------------------------- the engine */

void engine_init(engine *e, int nslots) {
  memset(e, 0, sizeof *e);
  e->nslots = nslots;
  e->slots = bench_xcalloc((size_t)nslots, sizeof *e->slots);
  for (int i = 0; i < nslots; i++) {
    e->slots[i].e = e;
    e->slots[i].id = i;
  }
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
}

static void slot_finished(engine *e) {
  if (atomic_fetch_sub(&e->running, 1) != 1) return;
  pthread_mutex_lock(&e->mu);
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
}

void engine_run(engine *e) {
  atomic_store(&e->running, e->nslots);
  for (int i = 0; i < e->nslots; i++)
    if (!e->issue(&e->slots[i])) slot_finished(e);
}

void engine_wait(engine *e) {
  pthread_mutex_lock(&e->mu);
  while (atomic_load(&e->running) > 0) pthread_cond_wait(&e->cv, &e->mu);
  pthread_mutex_unlock(&e->mu);
}

static void slot_error(eslot *s, grpc_status_code code, const char *msg) {
  s->errors++;
  s->last_code = code;
  snprintf(s->last_msg, sizeof s->last_msg, "%s", msg ? msg : "");
}

void engine_done(eslot *s, grpc_status_code code, const char *msg) {
  engine *e = s->e;
  int64_t t = bench_now_ns();
  bool in_window = !e->timed || (t >= e->warm_ns && t < e->end_ns);
  if (code == GRPC_STATUS_OK) {
    if (in_window) {
      s->ok++;
      bench_lat_push(&s->lat, t - s->started_ns);
    }
  } else if (!e->timed || t < e->end_ns) {
    slot_error(s, code, msg);
  }
  s->last_done_ns = t;
  /* UNAVAILABLE: the server is gone; more calls would only spin. */
  bool more = (!e->timed || t < e->end_ns) && code != GRPC_STATUS_UNAVAILABLE && s->errors < 1000;
  if (more && e->issue(s)) return;
  slot_finished(e);
}

void engine_fail(eslot *s, const char *msg) { slot_error(s, GRPC_STATUS_INTERNAL, msg); }

void engine_totals_get(engine *e, engine_totals *t) {
  memset(t, 0, sizeof *t);
  for (int i = 0; i < e->nslots; i++) {
    eslot *s = &e->slots[i];
    t->ok += s->ok;
    t->errors += s->errors;
    bench_lat_append(&t->lat, &s->lat);
    if (s->errors) {
      t->last_code = s->last_code;
      snprintf(t->last_msg, sizeof t->last_msg, "%s", s->last_msg);
    }
    if (s->last_done_ns > t->last_done_ns) t->last_done_ns = s->last_done_ns;
  }
  bench_lat_sort(&t->lat);
}

void engine_destroy(engine *e) {
  for (int i = 0; i < e->nslots; i++) {
    bench_lat_free(&e->slots[i].lat);
    free(e->slots[i].user);
  }
  free(e->slots);
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
}

/* ---------------------------------------------------------------- create and get */

static rpc_channel **g_chans;
static int g_nchans;
static atomic_long g_obj_bytes; /* the size of one response object */

typedef struct call_state {
  bench_pod pod; /* create */
  char name[128];
} call_state;

/* The response must be the pod asked for, with a resourceVersion. */
static void object_done(void *arg, const rpc_status *st, ProtobufCMessage *resp) {
  eslot *s = arg;
  call_state *u = s->user;
  grpc_status_code code = st->code;
  char msg[200];
  snprintf(msg, sizeof msg, "%s", st->message ? st->message : "");
  if (code == GRPC_STATUS_OK) {
    const Keel__Bench__V1__ObjectHead *o = (const Keel__Bench__V1__ObjectHead *)resp;
    if (!o->metadata || strcmp(o->metadata->name, u->name) != 0 || !o->metadata->resource_version[0]) {
      code = GRPC_STATUS_INTERNAL;
      snprintf(msg, sizeof msg, "response for %s names \"%s\" rv \"%s\"", u->name, o->metadata ? o->metadata->name : "",
               o->metadata ? o->metadata->resource_version : "");
    } else if (atomic_load(&g_obj_bytes) == 0) {
      atomic_store(&g_obj_bytes, (long)protobuf_c_message_get_packed_size(resp));
    }
  }
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  engine_done(s, code, msg);
}

static bool issue_create(eslot *s) {
  engine *e = s->e;
  long i = atomic_fetch_add(&e->next, 1);
  if (i >= e->count) return false;
  call_state *u = s->user;
  s->index = g_opt.start + i;
  snprintf(u->name, sizeof u->name, "%s%ld", g_opt.prefix, s->index);
  bench_pod_set(&u->pod, u->name, s->index, NULL);
  s->started_ns = bench_now_ns();
  if (rpc_unary_async(g_chans[s->id % g_nchans], "/keel.api.v1.Pods/Create", &u->pod.pod.base,
                      &keel__bench__v1__object_head__descriptor, &g_call, object_done, s) < 0) {
    engine_fail(s, "cannot start a Create call");
    return false;
  }
  return true;
}

static bool issue_get(eslot *s) {
  call_state *u = s->user;
  unsigned seed = (unsigned)(s->id * 7919 + bench_now_ns());
  s->index = g_opt.start + (long)((unsigned)rand_r(&seed) % (unsigned)g_opt.count);
  snprintf(u->name, sizeof u->name, "%s%ld", g_opt.prefix, s->index);
  Keel__Api__V1__GetRequest req = KEEL__API__V1__GET_REQUEST__INIT;
  req.namespace_ = (char *)g_opt.ns;
  req.name = u->name;
  req.resource_version = (char *)g_opt.rv;
  s->started_ns = bench_now_ns();
  if (rpc_unary_async(g_chans[s->id % g_nchans], "/keel.api.v1.Pods/Get", &req.base,
                      &keel__bench__v1__object_head__descriptor, &g_call, object_done, s) < 0) {
    engine_fail(s, "cannot start a Get call");
    return false;
  }
  return true;
}

static void open_channels(void) {
  g_nchans = g_opt.channels;
  g_chans = bench_xcalloc((size_t)g_nchans, sizeof *g_chans);
  for (int i = 0; i < g_nchans; i++) g_chans[i] = open_channel();
  /* Connect each (and make sure the namespace exists) before anything is timed. */
  for (int i = 0; i < g_nchans; i++) ensure_namespace(g_chans[i], g_opt.ns);
}

static void close_channels(void) {
  for (int i = 0; i < g_nchans; i++) rpc_channel_destroy(g_chans[i]);
  free(g_chans);
}

static int run_unary(bool create) {
  open_channels();
  engine e;
  engine_init(&e, g_opt.clients);
  for (int i = 0; i < e.nslots; i++) {
    call_state *u = bench_xcalloc(1, sizeof *u);
    bench_pod_init(&u->pod, g_opt.ns);
    e.slots[i].user = u;
  }
  e.issue = create ? issue_create : issue_get;
  e.timed = !create;
  e.count = g_opt.count;
  int64_t start = bench_now_ns();
  e.warm_ns = start + (int64_t)(g_opt.warmup * 1e9);
  e.end_ns = e.warm_ns + (int64_t)(g_opt.duration * 1e9);
  cpu_mark c0 = cpu_now(), c1;
  engine_run(&e);
  double secs;
  if (create) {
    engine_wait(&e);
    c1 = cpu_now();
  } else {
    bench_sleep_until(e.warm_ns);
    c0 = cpu_now();
    bench_sleep_until(e.end_ns);
    c1 = cpu_now();
    engine_wait(&e);
  }
  engine_totals t;
  engine_totals_get(&e, &t);
  secs = create ? (double)(t.last_done_ns - start) / 1e9 : g_opt.duration;
  char cpu[400];
  cpu_report(cpu, sizeof cpu, c0, c1, secs, t.ok);
  if (create)
    printf(
        "mode=create ns=%s clients=%d channels=%d count=%ld ok=%llu errors=%llu rate=%.0f p50_us=%.0f "
        "p99_us=%.0f max_us=%.0f secs=%.2f obj_bytes=%ld %s\n",
        g_opt.ns, g_opt.clients, g_nchans, g_opt.count, (unsigned long long)t.ok, (unsigned long long)t.errors,
        secs > 0 ? (double)t.ok / secs : 0, bench_lat_pct_us(&t.lat, 50), bench_lat_pct_us(&t.lat, 99), bench_lat_max_us(&t.lat), secs,
        atomic_load(&g_obj_bytes), cpu);
  else
    printf(
        "mode=get ns=%s rv=%s clients=%d channels=%d pods=%ld ok=%llu errors=%llu rate=%.0f p50_us=%.0f "
        "p99_us=%.0f max_us=%.0f secs=%.2f obj_bytes=%ld %s\n",
        g_opt.ns, g_opt.rv[0] ? g_opt.rv : "\"\"", g_opt.clients, g_nchans, g_opt.count, (unsigned long long)t.ok,
        (unsigned long long)t.errors, (double)t.ok / secs, bench_lat_pct_us(&t.lat, 50), bench_lat_pct_us(&t.lat, 99),
        bench_lat_max_us(&t.lat), secs, atomic_load(&g_obj_bytes), cpu);
  fflush(stdout);
  if (t.errors)
    fprintf(stderr, "load: %s: %llu calls failed, last: %s: %s\n", create ? "create" : "get",
            (unsigned long long)t.errors, rpc_status_code_name(t.last_code), t.last_msg);
  int rc = t.errors || (create && t.ok != (uint64_t)g_opt.count) ? 1 : 0;
  bench_lat_free(&t.lat);
  engine_destroy(&e);
  close_channels();
  return rc;
}

/* ---------------------------------------------------------------- list */

static int run_list(void) {
  g_opt.channels = 1;
  open_channels();
  Keel__Api__V1__ListRequest req = KEEL__API__V1__LIST_REQUEST__INIT;
  req.namespace_ = (char *)g_opt.ns;
  req.label_selector = (char *)g_opt.selector;
  req.resource_version = (char *)g_opt.rv;
  bench_lat lat = {0};
  size_t items = 0, bytes = 0;
  int rc = 0;
  cpu_mark c0 = {0};
  int64_t t_start = 0;
  for (int r = -1; r < g_opt.repeat; r++) { /* r == -1: the untimed warm-up */
    if (r == 0) {
      c0 = cpu_now();
      t_start = bench_now_ns();
    }
    ProtobufCMessage *resp = NULL;
    rpc_status st;
    int64_t t0 = bench_now_ns();
    int ok = rpc_unary(g_chans[0], "/keel.api.v1.Pods/List", &req.base, &keel__bench__v1__list_head__descriptor, &resp,
                       &g_call, &st);
    int64_t t1 = bench_now_ns();
    if (ok < 0) {
      fprintf(stderr, "load: list: %s: %s\n", rpc_status_code_name(st.code), st.message ? st.message : "");
      rpc_status_clear(&st);
      rc = 1;
      break;
    }
    rpc_status_clear(&st);
    const Keel__Bench__V1__ListHead *l = (const Keel__Bench__V1__ListHead *)resp;
    items = l->n_items;
    bytes = protobuf_c_message_get_packed_size(resp);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (g_opt.count >= 0 && items != (size_t)g_opt.count) {
      fprintf(stderr, "load: list returned %zu items, expected %ld\n", items, g_opt.count);
      rc = 1;
    }
    if (r >= 0) bench_lat_push(&lat, t1 - t0);
  }
  cpu_mark c1 = cpu_now();
  double secs = (double)(bench_now_ns() - t_start) / 1e9;
  bench_lat_sort(&lat);
  char cpu[400];
  cpu_report(cpu, sizeof cpu, c0, c1, secs, lat.n);
  printf(
      "mode=list ns=%s selector=%s rv=%s repeat=%zu items=%zu bytes=%zu min_us=%.0f p50_us=%.0f max_us=%.0f "
      "secs=%.2f %s\n",
      g_opt.ns, g_opt.selector[0] ? g_opt.selector : "none", g_opt.rv[0] ? g_opt.rv : "\"\"", lat.n, items, bytes,
      bench_lat_pct_us(&lat, 0), bench_lat_pct_us(&lat, 50), bench_lat_max_us(&lat), secs, cpu);
  bench_lat_free(&lat);
  close_channels();
  return rc;
}

/* ---------------------------------------------------------------- main */

static const char *flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: load create|get|list|watch --target=HOST:PORT [flags]\n"
          "       load raw --store=http://HOST:PORT --op=create|get [flags]\n"
          "  --ns=NS --prefix=bench- --count=N --start=0 --clients=N --channels=N --rv=0|\"\"\n"
          "  --selector=SEL --repeat=5 --duration=S --warmup=1 --watchers=1000 --rate=20 --pods=100\n"
          "  --drain=5 --setup-timeout=60 --key-prefix=/registry/pods/ --raw-prefix=/rawbench/pods/\n"
          "  --server-pid=PID --store-pid=PID   (see the top of bench/apiserver/load.c)\n");
  exit(2);
}

int main(int argc, char **argv) {
  if (argc < 2) usage();
  const char *mode = argv[1];
  const char *v;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if ((v = flag_value(a, "--target")))
      g_opt.target = v;
    else if ((v = flag_value(a, "--store")))
      g_opt.store = v;
    else if ((v = flag_value(a, "--ns")))
      g_opt.ns = v;
    else if ((v = flag_value(a, "--prefix")))
      g_opt.prefix = v;
    else if ((v = flag_value(a, "--rv")))
      g_opt.rv = strcmp(v, "\"\"") == 0 ? "" : v;
    else if ((v = flag_value(a, "--selector")))
      g_opt.selector = v;
    else if ((v = flag_value(a, "--op")))
      g_opt.op = v;
    else if ((v = flag_value(a, "--key-prefix")))
      g_opt.key_prefix = v;
    else if ((v = flag_value(a, "--raw-prefix")))
      g_opt.raw_prefix = v;
    else if ((v = flag_value(a, "--count")))
      g_opt.count = atol(v);
    else if ((v = flag_value(a, "--start")))
      g_opt.start = atol(v);
    else if ((v = flag_value(a, "--clients")))
      g_opt.clients = atoi(v);
    else if ((v = flag_value(a, "--channels")))
      g_opt.channels = atoi(v);
    else if ((v = flag_value(a, "--watchers")))
      g_opt.watchers = atoi(v);
    else if ((v = flag_value(a, "--repeat")))
      g_opt.repeat = atoi(v);
    else if ((v = flag_value(a, "--pods")))
      g_opt.pods = atoi(v);
    else if ((v = flag_value(a, "--duration")))
      g_opt.duration = atof(v);
    else if ((v = flag_value(a, "--warmup")))
      g_opt.warmup = atof(v);
    else if ((v = flag_value(a, "--rate")))
      g_opt.rate = atof(v);
    else if ((v = flag_value(a, "--drain")))
      g_opt.drain = atof(v);
    else if ((v = flag_value(a, "--setup-timeout")))
      g_opt.setup_timeout = atof(v);
    else if ((v = flag_value(a, "--server-pid")))
      g_opt.server_pid = atoi(v);
    else if ((v = flag_value(a, "--store-pid")))
      g_opt.store_pid = atoi(v);
    else
      usage();
  }
  bool is_raw = strcmp(mode, "raw") == 0, is_watch = strcmp(mode, "watch") == 0;
  bool is_create = strcmp(mode, "create") == 0, is_get = strcmp(mode, "get") == 0;
  bool is_list = strcmp(mode, "list") == 0;
  if (!is_raw && !is_watch && !is_create && !is_get && !is_list) usage();
  if (is_raw ? !g_opt.store : !g_opt.target) usage();
  bool raw_create = is_raw && strcmp(g_opt.op, "create") == 0;
  if (is_raw && !raw_create && strcmp(g_opt.op, "get") != 0) usage();
  /* Per-mode defaults. */
  if (!g_opt.ns) g_opt.ns = is_watch ? "bench-watch" : "bench";
  if (!g_opt.rv) g_opt.rv = is_get ? "0" : ""; /* list: consistent, as clients list by default */
  if (g_opt.count < 0 && !is_list) g_opt.count = 10000;
  if (g_opt.clients < 0) g_opt.clients = is_create || raw_create ? 128 : 64;
  if (g_opt.channels < 0) g_opt.channels = is_watch ? 8 : 2;
  if (g_opt.duration < 0) g_opt.duration = is_watch ? 5 : 3;
  if (g_opt.clients < 1 || g_opt.channels < 1 || g_opt.watchers < 1 || g_opt.repeat < 1 || g_opt.pods < 1 ||
      g_opt.duration <= 0 || g_opt.warmup < 0 || g_opt.rate <= 0 || (!is_list && g_opt.count < 1) ||
      strlen(g_opt.prefix) > 64)
    usage();
  if (g_opt.channels > g_opt.clients && !is_watch && !is_list) g_opt.channels = g_opt.clients;

  rpc_library_init();
  int rc;
  if (is_raw)
    rc = run_raw();
  else if (is_watch)
    rc = run_watch();
  else if (is_list)
    rc = run_list();
  else
    rc = run_unary(is_create);
  rpc_library_shutdown();
  return rc;
}
