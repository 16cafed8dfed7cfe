/* bench/store/load.c — the one etcd v3 load client that keel-store and etcd are
 * both measured with: raw gRPC C core and protobuf-c (the same client, the same
 * requests, the same connections for both servers), in the manner of
 * bench/rpc/load.c.
 *
 *   load --target=127.0.0.1:PORT --mode=put   [--clients=16] [--keys=100000] [--value-size=256]
 *   load --target=127.0.0.1:PORT --mode=range [--range=key|prefix] [--clients=16]
 *   load --target=127.0.0.1:PORT --mode=watch [--watchers=1000] [--rate=100] [--value-size=256]
 *   load --target=127.0.0.1:PORT --mode=fill  [--keys=100000] [--value-size=1024] [--clients=256]
 *   common: --duration=5 --warmup=1 --channels=1 --prefix=/bench/ --server-pid=PID
 *
 * put:   keeps exactly --clients Put calls open (a finished call is replaced at
 *        once by a Put of the next key: keys cycle through --keys distinct keys,
 *        so no two open calls write the same key). Counts the calls that
 *        complete inside the window (after --warmup) and their latency from
 *        start to status.
 * range: first writes 100 keys under PREFIX/range/ (value --value-size), then
 *        keeps --clients Range calls open: --range=key reads one of them,
 *        --range=prefix reads all 100 (range_end = prefix + 1). Linearizable
 *        reads (etcd's default, what etcdctl get and kube-apiserver use);
 *        --serializable asks for serializable ones. The first response on each
 *        channel is decoded and its key count checked.
 * watch: opens --watchers Watch streams spread over --channels connections,
 *        each creating one watcher on PREFIX/watch/, and waits for every
 *        `created`. Then a writer on its own connection starts Puts under that
 *        prefix at a fixed --rate (open loop: it does not wait for acks) for
 *        --duration seconds. Each value starts with the put's sequence number;
 *        the writer records when it sent that put and when the ack came back
 *        (same process, same clock). Every received event is timed: from the put's
 *        send (includes the durable write) and from its acknowledgement (the
 *        delivery cost alone; negative when an event overtakes its ack). After
 *        the writer stops it waits up to 5 s for the remaining events, then
 *        cancels the streams. If the server answers the first stream with
 *        UNIMPLEMENTED, it prints `served=0` and exits 0.
 * fill:  writes --keys distinct keys once each with --clients calls open and
 *        reports the rate over the whole fill.
 *
 * Each channel has its own completion queue and thread, and a distinct channel
 * argument so that it is its own TCP connection; calls are dealt to channels
 * round-robin. The channel runs without retries, channelz or the full filter
 * stack (LOAD_FULL_STACK=1 keeps gRPC's defaults), as in bench/rpc.
 *
 * Prints one line of key=value pairs (run.sh parses it), e.g.
 *   mode=put clients=16 channels=1 rate=5123 p50_us=3012 p99_us=6100 ok=25615 errors=0 secs=5.00
 *   srv_cpu_pct=80 srv_us_per_op=... cli_cpu_pct=... other_cpu_pct=... steal_pct=...
 * Exit status 1 when any call failed (the failure is printed on stderr). */
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"

enum mode { MODE_PUT, MODE_RANGE, MODE_WATCH, MODE_FILL };

typedef struct options {
  const char *target;
  const char *prefix;
  int server_pid;
  enum mode mode;
  int clients, channels, value_size, watchers;
  long keys;
  bool range_prefix, serializable;
  double duration, warmup, rate;
} options;

static options g_opt = {
    .prefix = "/bench/",
    .mode = MODE_PUT,
    .clients = -1, /* per-mode default */
    .channels = 1,
    .value_size = -1,
    .watchers = 1000,
    .keys = 100000,
    .duration = 5.0,
    .warmup = 1.0,
    .rate = 100,
};

#define RANGE_KEYS 100

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "load: %s\n", what);
  exit(1);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (p == NULL) die("out of memory");
  return p;
}

static void *xcalloc(size_t n, size_t m) {
  void *p = calloc(n ? n : 1, m ? m : 1);
  if (p == NULL) die("out of memory");
  return p;
}

/* ------------------------------------------------------------ latencies */

typedef struct lat_vec {
  int64_t *v;
  size_t n, cap;
} lat_vec;

static void lat_push(lat_vec *l, int64_t x) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1 << 14;
    l->v = realloc(l->v, l->cap * sizeof *l->v);
    if (l->v == NULL) die("out of memory");
  }
  l->v[l->n++] = x;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Percentile q (0..100) of a sorted vector, in microseconds. */
static double pct_us(const lat_vec *l, double q) {
  if (l->n == 0) return 0;
  size_t i = (size_t)((double)l->n * q / 100.0);
  if (i >= l->n) i = l->n - 1;
  return (double)l->v[i] / 1e3;
}

/* ------------------------------------------------------------ channels */

static grpc_channel *make_channel(int id) {
  grpc_arg args[8];
  size_t n = 0;
  /* A distinct channel arg per channel keeps each on its own connection. */
  args[n++] = (grpc_arg){GRPC_ARG_INTEGER, "keel.bench.channel", {.integer = id}};
  args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, {.integer = -1}};
  if (!getenv("LOAD_FULL_STACK")) {
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_RETRIES, {.integer = 0}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_ENABLE_CHANNELZ, {.integer = 0}};
    args[n++] = (grpc_arg){GRPC_ARG_INTEGER, GRPC_ARG_MINIMAL_STACK, {.integer = 1}};
  }
  grpc_channel_args ca = {n, args};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  grpc_channel *ch = grpc_channel_create(g_opt.target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}

static grpc_slice slice_from_buffer(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) die("byte buffer reader");
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  grpc_byte_buffer_reader_destroy(&r);
  return s;
}

static gpr_timespec deadline_ms(int ms) {
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* ------------------------------------------------------------ requests */

static unsigned char *g_value; /* --value-size bytes of filler */

static void key_name(char *buf, size_t len, const char *sub, long i) {
  snprintf(buf, len, "%s%s%08ld", g_opt.prefix, sub, i);
}

static grpc_slice pack_put(const char *key, const unsigned char *value, size_t vlen) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key.data = (uint8_t *)key;
  req.key.len = strlen(key);
  req.value.data = (uint8_t *)value;
  req.value.len = vlen;
  size_t len = etcdserverpb__put_request__get_packed_size(&req);
  grpc_slice s = grpc_slice_malloc(len);
  etcdserverpb__put_request__pack(&req, GRPC_SLICE_START_PTR(s));
  return s;
}

/* One blocking unary call on its own queue (setup only). */
static grpc_status_code blocking_call(grpc_channel *ch, const char *method, grpc_slice req,
                                      grpc_slice *resp_out, char *err, size_t errlen) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice m = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                             gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                          gpr_time_from_seconds(30, GPR_TIMESPAN)),
                                             NULL);
  grpc_metadata_array imd, tmd;
  grpc_metadata_array_init(&imd);
  grpc_metadata_array_init(&tmd);
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&req, 1), *recv = NULL;
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &details;
  if (grpc_call_start_batch(call, ops, 6, (void *)1, NULL) != GRPC_CALL_OK) die("start_batch");
  grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (ev.type != GRPC_OP_COMPLETE || !ev.success) die("setup call failed");
  if (err) {
    char *d = grpc_slice_to_c_string(details);
    snprintf(err, errlen, "%s", d);
    gpr_free(d);
  }
  if (resp_out) *resp_out = recv ? slice_from_buffer(recv) : grpc_empty_slice();
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&imd);
  grpc_metadata_array_destroy(&tmd);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return status;
}

/* ------------------------------------------------------------ unary engine
 * (put, range, fill): every worker keeps its share of --clients calls open. */

typedef struct uslot {
  grpc_call *call;
  int64_t started_ns;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *send, *recv;
  grpc_status_code status;
  grpc_slice details;
  bool open;
} uslot;

typedef struct uworker {
  pthread_t th;
  int id, nslots;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  void *method;
  grpc_slice range_req; /* range: the request, encoded once */
  uslot *slots;
  int64_t warm_ns, end_ns;
  bool checked; /* range: first response decoded */
  uint64_t ok, errors;
  lat_vec lat;
  int open_calls;
  grpc_status_code last_error;
  char last_detail[256];
} uworker;

static atomic_long g_next_key; /* put/fill: the next key index */
static atomic_long g_fill_done;

/* The next request, or false when there is none (fill: all keys issued). */
static bool next_request(uworker *w, grpc_slice *out) {
  if (g_opt.mode == MODE_RANGE) {
    *out = grpc_slice_ref(w->range_req);
    return true;
  }
  long i = atomic_fetch_add(&g_next_key, 1);
  if (g_opt.mode == MODE_FILL && i >= g_opt.keys) return false;
  char key[256];
  key_name(key, sizeof key, g_opt.mode == MODE_FILL ? "fill/" : "put/", i % g_opt.keys);
  *out = pack_put(key, g_value, (size_t)g_opt.value_size);
  return true;
}

static bool start_ucall(uworker *w, uslot *s) {
  grpc_slice req;
  if (!next_request(w, &req)) return false;
  s->call = grpc_channel_create_registered_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, w->method,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (s->call == NULL) die("create_registered_call failed");
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->recv = NULL;
  s->details = grpc_empty_slice();
  s->open = true;
  s->started_ns = now_ns();
  w->open_calls++;
  s->send = grpc_raw_byte_buffer_create(&req, 1);
  grpc_slice_unref(req);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  ops[n++].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n++].data.send_message.send_message = s->send;
  ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n++].data.recv_message.recv_message = &s->recv;
  ops[n].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[n].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[n].data.recv_status_on_client.status = &s->status;
  ops[n++].data.recv_status_on_client.status_details = &s->details;
  if (grpc_call_start_batch(s->call, ops, n, s, NULL) != GRPC_CALL_OK) die("start_batch");
  return true;
}

static void check_range_response(uworker *w, grpc_byte_buffer *bb) {
  grpc_slice sl = slice_from_buffer(bb);
  Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(
      NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  if (r == NULL) die("range: undecodable RangeResponse");
  size_t want = g_opt.range_prefix ? RANGE_KEYS : 1;
  if (r->n_kvs != want) {
    fprintf(stderr, "load: range returned %zu keys, expected %zu\n", r->n_kvs, want);
    exit(1);
  }
  etcdserverpb__range_response__free_unpacked(r, NULL);
  w->checked = true;
}

static void finish_ucall(uworker *w, uslot *s) {
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

static void *uworker_main(void *arg) {
  uworker *w = arg;
  bool stopping = false, fill = g_opt.mode == MODE_FILL;
  for (;;) {
    int64_t t = now_ns();
    if (!fill && !stopping && t >= w->end_ns) {
      stopping = true;
      for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].open) grpc_call_cancel(w->slots[i].call, NULL);
    }
    if ((stopping || fill) && w->open_calls == 0) break;
    grpc_event ev = grpc_completion_queue_next(w->cq, deadline_ms(50), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    uslot *s = ev.tag;
    t = now_ns();
    bool in_window = fill || (t >= w->warm_ns && t < w->end_ns);
    if (!ev.success) die("call batch failed");
    if (s->status == GRPC_STATUS_OK) {
      if (g_opt.mode == MODE_RANGE && !w->checked && s->recv) check_range_response(w, s->recv);
      if (in_window) {
        w->ok++;
        lat_push(&w->lat, t - s->started_ns);
      }
      if (fill) atomic_fetch_add(&g_fill_done, 1);
    } else if (!stopping) {
      w->errors++;
      w->last_error = s->status;
      char *d = grpc_slice_to_c_string(s->details);
      snprintf(w->last_detail, sizeof w->last_detail, "%s", d);
      gpr_free(d);
    }
    finish_ucall(w, s);
    if (!stopping) start_ucall(w, s);
  }
  return NULL;
}

/* ------------------------------------------------------------ CPU accounting */

static double proc_cpu_seconds(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (p == NULL) return -1;
  unsigned long long utime, stime;
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
    return -1;
  return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void machine_cpu_seconds(double *busy, double *steal) {
  unsigned long long v[8] = {0};
  *busy = *steal = -1;
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return;
  int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                 &v[5], &v[6], &v[7]);
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

typedef struct cpu_mark {
  double srv, self, busy, steal;
} cpu_mark;

static cpu_mark cpu_now(void) {
  cpu_mark m;
  m.srv = g_opt.server_pid ? proc_cpu_seconds(g_opt.server_pid) : -1;
  m.self = self_cpu_seconds();
  machine_cpu_seconds(&m.busy, &m.steal);
  return m;
}

/* srv_cpu_pct and srv_us_per_op etc. over [a, b] of secs seconds with done ops. */
static void cpu_report(char *out, size_t len, cpu_mark a, cpu_mark b, double secs, uint64_t done) {
  double srv = a.srv >= 0 && b.srv >= 0 ? b.srv - a.srv : -1, cli = b.self - a.self;
  double other = a.busy >= 0 && b.busy >= 0 ? b.busy - a.busy - cli - (srv > 0 ? srv : 0) : -1;
  snprintf(out, len,
           "srv_cpu_pct=%.0f srv_us_per_op=%.2f cli_cpu_pct=%.0f cli_us_per_op=%.2f "
           "other_cpu_pct=%.0f steal_pct=%.0f",
           srv >= 0 ? 100 * srv / secs : -1, srv >= 0 && done ? 1e6 * srv / (double)done : -1,
           100 * cli / secs, done ? 1e6 * cli / (double)done : -1,
           other >= 0 ? 100 * other / secs : 0, a.steal >= 0 ? 100 * (b.steal - a.steal) / secs : -1);
}

static void sleep_until(int64_t t_ns) {
  int64_t d;
  while ((d = t_ns - now_ns()) > 0) {
    struct timespec ts = {d / 1000000000, d % 1000000000};
    nanosleep(&ts, NULL);
  }
}

/* range: write the RANGE_KEYS keys the reads find. */
static void range_setup(grpc_channel *ch) {
  for (int i = 0; i < RANGE_KEYS; i++) {
    char key[256], err[256];
    key_name(key, sizeof key, "range/", i);
    grpc_slice req = pack_put(key, g_value, (size_t)g_opt.value_size);
    grpc_status_code st = blocking_call(ch, "/etcdserverpb.KV/Put", req, NULL, err, sizeof err);
    grpc_slice_unref(req);
    if (st != GRPC_STATUS_OK) {
      fprintf(stderr, "load: range setup: Put %s failed: status %d %s\n", key, (int)st, err);
      exit(1);
    }
  }
}

static grpc_slice pack_range(void) {
  char key[256], end[256];
  Etcdserverpb__RangeRequest req = ETCDSERVERPB__RANGE_REQUEST__INIT;
  if (g_opt.range_prefix) {
    snprintf(key, sizeof key, "%srange/", g_opt.prefix);
    snprintf(end, sizeof end, "%s", key);
    end[strlen(end) - 1]++; /* "/" + 1: the prefix's range end */
    req.range_end.data = (uint8_t *)end;
    req.range_end.len = strlen(end);
  } else {
    key_name(key, sizeof key, "range/", RANGE_KEYS / 2);
  }
  req.key.data = (uint8_t *)key;
  req.key.len = strlen(key);
  req.serializable = g_opt.serializable;
  size_t len = etcdserverpb__range_request__get_packed_size(&req);
  grpc_slice s = grpc_slice_malloc(len);
  etcdserverpb__range_request__pack(&req, GRPC_SLICE_START_PTR(s));
  return s;
}

static int run_unary(void) {
  int nch = g_opt.channels;
  uworker *ws = xcalloc((size_t)nch, sizeof *ws);
  const char *method = g_opt.mode == MODE_RANGE ? "/etcdserverpb.KV/Range" : "/etcdserverpb.KV/Put";
  for (int i = 0; i < nch; i++) {
    uworker *w = &ws[i];
    w->id = i;
    w->ch = make_channel(i);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->method = grpc_channel_register_call(w->ch, method, NULL, NULL);
    w->nslots = g_opt.clients / nch + (i < g_opt.clients % nch);
    w->slots = xcalloc((size_t)w->nslots, sizeof *w->slots);
  }
  if (g_opt.mode == MODE_RANGE) {
    range_setup(ws[0].ch);
    for (int i = 0; i < nch; i++) ws[i].range_req = pack_range();
  }
  int64_t start = now_ns();
  bool fill = g_opt.mode == MODE_FILL;
  int64_t warm = fill ? start : start + (int64_t)(g_opt.warmup * 1e9);
  int64_t end = warm + (int64_t)(g_opt.duration * 1e9);
  cpu_mark c0 = {0};
  if (fill) c0 = cpu_now();
  for (int i = 0; i < nch; i++) {
    ws[i].warm_ns = warm;
    ws[i].end_ns = end;
    for (int j = 0; j < ws[i].nslots; j++) start_ucall(&ws[i], &ws[i].slots[j]);
  }
  for (int i = 0; i < nch; i++)
    if (pthread_create(&ws[i].th, NULL, uworker_main, &ws[i]) != 0) die("pthread_create");
  if (!fill) {
    sleep_until(warm);
    c0 = cpu_now();
    sleep_until(end);
  }
  cpu_mark c1 = cpu_now();
  uint64_t ok = 0, errors = 0;
  lat_vec all = {0};
  grpc_status_code last_error = GRPC_STATUS_OK;
  const char *last_detail = "";
  for (int i = 0; i < nch; i++) {
    pthread_join(ws[i].th, NULL);
    ok += ws[i].ok;
    errors += ws[i].errors;
    for (size_t k = 0; k < ws[i].lat.n; k++) lat_push(&all, ws[i].lat.v[k]);
    if (ws[i].errors) {
      last_error = ws[i].last_error;
      last_detail = ws[i].last_detail;
    }
  }
  double secs = g_opt.duration;
  if (fill) {
    c1 = cpu_now();
    secs = (double)(now_ns() - start) / 1e9;
  }
  qsort(all.v, all.n, sizeof *all.v, cmp_i64);
  char cpu[256];
  cpu_report(cpu, sizeof cpu, c0, c1, secs, ok);
  const char *name = g_opt.mode == MODE_PUT ? "put" : g_opt.mode == MODE_FILL ? "fill" : "range";
  char extra[96] = "";
  if (g_opt.mode == MODE_RANGE)
    snprintf(extra, sizeof extra, " range=%s serializable=%d", g_opt.range_prefix ? "prefix" : "key",
             g_opt.serializable);
  else
    snprintf(extra, sizeof extra, " keys=%ld value_size=%d", g_opt.keys, g_opt.value_size);
  printf("mode=%s clients=%d channels=%d%s rate=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f ok=%llu "
         "errors=%llu secs=%.2f %s\n",
         name, g_opt.clients, nch, extra, (double)ok / secs, pct_us(&all, 50), pct_us(&all, 99),
         all.n ? (double)all.v[all.n - 1] / 1e3 : 0, (unsigned long long)ok,
         (unsigned long long)errors, secs, cpu);
  if (errors)
    fprintf(stderr, "load: %s: %llu calls failed, last status %d \"%s\"\n", name,
            (unsigned long long)errors, (int)last_error, last_detail);
  if (fill && ok != (uint64_t)g_opt.keys) {
    fprintf(stderr, "load: fill wrote %llu of %ld keys\n", (unsigned long long)ok, g_opt.keys);
    errors++;
  }
  for (int i = 0; i < nch; i++) {
    uworker *w = &ws[i];
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w->cq);
    grpc_channel_destroy(w->ch);
    if (g_opt.mode == MODE_RANGE) grpc_slice_unref(w->range_req);
    free(w->slots);
    free(w->lat.v);
  }
  free(all.v);
  free(ws);
  return errors ? 1 : 0;
}

/* ------------------------------------------------------------ watch */

/* Tags: stream pointer | kind (streams are at least 8-byte aligned). */
#define TAG_START 0u
#define TAG_RECV 1u
#define TAG_STATUS 2u
#define TAG_MASK 3u

typedef struct wstream {
  grpc_call *call;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *send, *recv;
  grpc_status_code status;
  grpc_slice details;
  bool start_pending, recv_pending, status_pending;
  bool created;
} wstream;

typedef struct event_rec {
  uint32_t seq;
  int64_t recv_ns;
} event_rec;

typedef struct wworker {
  pthread_t th;
  int id, nstreams;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  wstream *streams;
  event_rec *ev;
  size_t nev, capev;
  uint64_t bad;    /* undecodable responses or events outside the puts we made */
  uint64_t cancel; /* watchers the server canceled */
  uint64_t msgs;   /* WatchResponses that carried events */
} wworker;

static atomic_int g_created, g_failed_streams, g_first_fail_status = -1;
static char g_first_fail_detail[256];
static atomic_llong g_events;
static atomic_bool g_wstop;
static grpc_slice g_watch_create;

/* The writer's record of every put: send and ack time by sequence number. */
static int64_t *g_send_ns, *g_ack_ns;
static uint32_t g_max_puts;

static void wtag_batch(wstream *s, grpc_op *ops, size_t n, unsigned kind) {
  if (grpc_call_start_batch(s->call, ops, n, (void *)((uintptr_t)s | kind), NULL) != GRPC_CALL_OK)
    die("watch start_batch");
}

static void start_wrecv(wstream *s) {
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &s->recv;
  s->recv_pending = true;
  wtag_batch(s, &op, 1, TAG_RECV);
}

static void start_stream(wworker *w, wstream *s, void *method) {
  s->call = grpc_channel_create_registered_call(w->ch, NULL, GRPC_PROPAGATE_DEFAULTS, w->cq, method,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (s->call == NULL) die("create_registered_call failed");
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->details = grpc_empty_slice();
  s->send = grpc_raw_byte_buffer_create(&g_watch_create, 1);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[2].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  s->start_pending = true;
  wtag_batch(s, ops, 3, TAG_START);
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[0].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  ops[0].data.recv_status_on_client.status = &s->status;
  ops[0].data.recv_status_on_client.status_details = &s->details;
  s->status_pending = true;
  wtag_batch(s, ops, 1, TAG_STATUS);
  start_wrecv(s);
}

static void on_watch_response(wworker *w, wstream *s, grpc_byte_buffer *bb, int64_t t) {
  grpc_slice sl = slice_from_buffer(bb);
  Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(
      NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  if (r == NULL) {
    w->bad++;
    return;
  }
  if (r->created && !s->created) {
    s->created = true;
    atomic_fetch_add(&g_created, 1);
  }
  if (r->canceled) w->cancel++;
  for (size_t i = 0; i < r->n_events; i++) {
    Mvccpb__KeyValue *kv = r->events[i]->kv;
    uint32_t seq;
    if (kv == NULL || kv->value.len < sizeof seq) {
      w->bad++;
      continue;
    }
    memcpy(&seq, kv->value.data, sizeof seq);
    if (seq >= g_max_puts) {
      w->bad++;
      continue;
    }
    if (w->nev == w->capev) {
      w->capev = w->capev ? w->capev * 2 : 1 << 14;
      w->ev = realloc(w->ev, w->capev * sizeof *w->ev);
      if (w->ev == NULL) die("out of memory");
    }
    w->ev[w->nev++] = (event_rec){seq, t};
  }
  if (r->n_events) {
    w->msgs++;
    atomic_fetch_add(&g_events, (long long)r->n_events);
  }
  etcdserverpb__watch_response__free_unpacked(r, NULL);
}

static bool wstream_busy(const wstream *s) {
  return s->start_pending || s->recv_pending || s->status_pending;
}

static void *wworker_main(void *arg) {
  wworker *w = arg;
  bool stopping = false;
  for (;;) {
    if (!stopping && atomic_load(&g_wstop)) {
      stopping = true;
      for (int i = 0; i < w->nstreams; i++)
        if (w->streams[i].status_pending) grpc_call_cancel(w->streams[i].call, NULL);
    }
    if (stopping) {
      bool busy = false;
      for (int i = 0; i < w->nstreams && !busy; i++) busy = wstream_busy(&w->streams[i]);
      if (!busy) break;
    }
    grpc_event ev = grpc_completion_queue_next(w->cq, deadline_ms(50), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    int64_t t = now_ns();
    uintptr_t tv = (uintptr_t)ev.tag;
    wstream *s = (wstream *)(tv & ~(uintptr_t)TAG_MASK);
    switch ((unsigned)(tv & TAG_MASK)) {
      case TAG_START:
        s->start_pending = false;
        break;
      case TAG_RECV:
        s->recv_pending = false;
        if (ev.success && s->recv) {
          on_watch_response(w, s, s->recv, t);
          grpc_byte_buffer_destroy(s->recv);
          s->recv = NULL;
          if (!stopping && s->status_pending) start_wrecv(s);
        }
        break;
      case TAG_STATUS:
        s->status_pending = false;
        if (!stopping) {
          int expected = -1;
          if (atomic_compare_exchange_strong(&g_first_fail_status, &expected, (int)s->status)) {
            char *d = grpc_slice_to_c_string(s->details);
            snprintf(g_first_fail_detail, sizeof g_first_fail_detail, "%s", d);
            gpr_free(d);
          }
          atomic_fetch_add(&g_failed_streams, 1);
        }
        break;
    }
  }
  for (int i = 0; i < w->nstreams; i++) {
    wstream *s = &w->streams[i];
    if (s->call == NULL) continue;
    grpc_byte_buffer_destroy(s->send);
    grpc_metadata_array_destroy(&s->initial_md);
    grpc_metadata_array_destroy(&s->trailing_md);
    grpc_slice_unref(s->details);
    grpc_call_unref(s->call);
    s->call = NULL;
  }
  return NULL;
}

/* The writer: Puts at a fixed rate on its own channel, open loop. */
typedef struct writer {
  pthread_t th;
  grpc_channel *ch;
  grpc_completion_queue *cq;
  void *method;
  int64_t start_ns;
  uint32_t sent, acked;
  uint64_t errors;
  grpc_status_code last_error;
  char last_detail[256];
  lat_vec put_lat;
} writer;

typedef struct wcall {
  grpc_call *call;
  uint32_t seq;
  grpc_metadata_array initial_md, trailing_md;
  grpc_byte_buffer *send, *recv;
  grpc_status_code status;
  grpc_slice details;
} wcall;

static void writer_start_put(writer *wr, uint32_t seq) {
  wcall *c = xcalloc(1, sizeof *c);
  c->seq = seq;
  unsigned char *value = xmalloc((size_t)g_opt.value_size);
  memcpy(value, g_value, (size_t)g_opt.value_size);
  memcpy(value, &seq, sizeof seq);
  char key[256];
  key_name(key, sizeof key, "watch/", (long)(seq % 100));
  grpc_slice req = pack_put(key, value, (size_t)g_opt.value_size);
  free(value);
  c->call = grpc_channel_create_registered_call(wr->ch, NULL, GRPC_PROPAGATE_DEFAULTS, wr->cq, wr->method,
                                                gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  grpc_metadata_array_init(&c->initial_md);
  grpc_metadata_array_init(&c->trailing_md);
  c->details = grpc_empty_slice();
  c->send = grpc_raw_byte_buffer_create(&req, 1);
  grpc_slice_unref(req);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = c->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &c->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &c->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &c->trailing_md;
  ops[5].data.recv_status_on_client.status = &c->status;
  ops[5].data.recv_status_on_client.status_details = &c->details;
  g_send_ns[seq] = now_ns();
  if (grpc_call_start_batch(c->call, ops, 6, c, NULL) != GRPC_CALL_OK) die("writer start_batch");
}

static void *writer_main(void *arg) {
  writer *wr = arg;
  uint32_t total = (uint32_t)(g_opt.rate * g_opt.duration);
  uint32_t open = 0;
  for (;;) {
    int64_t due = wr->sent < total ? wr->start_ns + (int64_t)((double)wr->sent * 1e9 / g_opt.rate)
                                   : INT64_MAX;
    int64_t t = now_ns();
    while (wr->sent < total && t >= due) {
      writer_start_put(wr, wr->sent++);
      open++;
      due = wr->sent < total ? wr->start_ns + (int64_t)((double)wr->sent * 1e9 / g_opt.rate) : INT64_MAX;
    }
    if (wr->sent >= total && open == 0) break;
    int64_t wait_ns = due == INT64_MAX ? 50000000 : due - t;
    if (wait_ns > 50000000) wait_ns = 50000000;
    if (wait_ns < 0) wait_ns = 0;
    grpc_event ev = grpc_completion_queue_next(
        wr->cq, gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_nanos(wait_ns, GPR_TIMESPAN)),
        NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    wcall *c = ev.tag;
    int64_t at = now_ns();
    open--;
    if (c->status == GRPC_STATUS_OK) {
      g_ack_ns[c->seq] = at;
      wr->acked++;
      lat_push(&wr->put_lat, at - g_send_ns[c->seq]);
    } else {
      wr->errors++;
      wr->last_error = c->status;
      char *d = grpc_slice_to_c_string(c->details);
      snprintf(wr->last_detail, sizeof wr->last_detail, "%s", d);
      gpr_free(d);
    }
    if (c->recv) grpc_byte_buffer_destroy(c->recv);
    grpc_byte_buffer_destroy(c->send);
    grpc_metadata_array_destroy(&c->initial_md);
    grpc_metadata_array_destroy(&c->trailing_md);
    grpc_slice_unref(c->details);
    grpc_call_unref(c->call);
    free(c);
  }
  return NULL;
}

static int run_watch(void) {
  if (g_opt.value_size < 8) g_opt.value_size = 8;
  g_max_puts = (uint32_t)(g_opt.rate * g_opt.duration) + 1;
  g_send_ns = xcalloc(g_max_puts, sizeof *g_send_ns);
  g_ack_ns = xcalloc(g_max_puts, sizeof *g_ack_ns);
  {
    char key[256], end[256];
    snprintf(key, sizeof key, "%swatch/", g_opt.prefix);
    snprintf(end, sizeof end, "%s", key);
    end[strlen(end) - 1]++;
    Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    cr.key.data = (uint8_t *)key;
    cr.key.len = strlen(key);
    cr.range_end.data = (uint8_t *)end;
    cr.range_end.len = strlen(end);
    Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
    req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    req.create_request = &cr;
    size_t len = etcdserverpb__watch_request__get_packed_size(&req);
    g_watch_create = grpc_slice_malloc(len);
    etcdserverpb__watch_request__pack(&req, GRPC_SLICE_START_PTR(g_watch_create));
  }
  int nch = g_opt.channels;
  wworker *ws = xcalloc((size_t)nch, sizeof *ws);
  int64_t t0 = now_ns();
  for (int i = 0; i < nch; i++) {
    wworker *w = &ws[i];
    w->id = i;
    w->ch = make_channel(i);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->nstreams = g_opt.watchers / nch + (i < g_opt.watchers % nch);
    w->streams = xcalloc((size_t)w->nstreams, sizeof *w->streams);
    void *method = grpc_channel_register_call(w->ch, "/etcdserverpb.Watch/Watch", NULL, NULL);
    for (int j = 0; j < w->nstreams; j++) start_stream(w, &w->streams[j], method);
  }
  for (int i = 0; i < nch; i++)
    if (pthread_create(&ws[i].th, NULL, wworker_main, &ws[i]) != 0) die("pthread_create");
  /* Every watcher created, or a stream failed, or 30 s. */
  int64_t limit = t0 + 30000000000LL;
  while (atomic_load(&g_created) < g_opt.watchers && atomic_load(&g_failed_streams) == 0 &&
         now_ns() < limit)
    sleep_until(now_ns() + 1000000);
  double setup_s = (double)(now_ns() - t0) / 1e9;
  int created = atomic_load(&g_created);
  int rc = 0;
  if (created < g_opt.watchers) {
    int st = atomic_load(&g_first_fail_status);
    atomic_store(&g_wstop, true);
    for (int i = 0; i < nch; i++) pthread_join(ws[i].th, NULL);
    if (st == GRPC_STATUS_UNIMPLEMENTED) {
      printf("mode=watch watchers=%d channels=%d served=0 status=%d detail=\"%s\"\n", g_opt.watchers,
             nch, st, g_first_fail_detail);
    } else {
      printf("mode=watch watchers=%d channels=%d served=1 created=%d failed_streams=%d status=%d "
             "setup_s=%.2f\n",
             g_opt.watchers, nch, created, atomic_load(&g_failed_streams), st, setup_s);
      fprintf(stderr, "load: watch: only %d of %d watchers created (first failure status %d \"%s\")\n",
              created, g_opt.watchers, st, g_first_fail_detail);
      rc = 1;
    }
    goto out;
  }
  {
    /* The writer. */
    writer wr = {0};
    wr.ch = make_channel(nch);
    wr.cq = grpc_completion_queue_create_for_next(NULL);
    wr.method = grpc_channel_register_call(wr.ch, "/etcdserverpb.KV/Put", NULL, NULL);
    /* Let the streams settle, then write. */
    sleep_until(now_ns() + (int64_t)(g_opt.warmup * 1e9));
    cpu_mark c0 = cpu_now();
    wr.start_ns = now_ns();
    if (pthread_create(&wr.th, NULL, writer_main, &wr) != 0) die("pthread_create");
    pthread_join(wr.th, NULL);
    int64_t wend = now_ns();
    long long expected = (long long)wr.acked * g_opt.watchers;
    int64_t drain_limit = wend + 5000000000LL;
    while (atomic_load(&g_events) < expected && now_ns() < drain_limit) sleep_until(now_ns() + 1000000);
    int64_t drained = now_ns();
    cpu_mark c1 = cpu_now();
    atomic_store(&g_wstop, true);
    for (int i = 0; i < nch; i++) pthread_join(ws[i].th, NULL);
    /* Latencies: from the put's send, and from its ack. */
    lat_vec from_send = {0}, from_ack = {0};
    uint64_t bad = 0, canceled = 0, msgs = 0;
    for (int i = 0; i < nch; i++) {
      msgs += ws[i].msgs;
      bad += ws[i].bad;
      canceled += ws[i].cancel;
      for (size_t k = 0; k < ws[i].nev; k++) {
        event_rec e = ws[i].ev[k];
        lat_push(&from_send, e.recv_ns - g_send_ns[e.seq]);
        if (g_ack_ns[e.seq]) lat_push(&from_ack, e.recv_ns - g_ack_ns[e.seq]);
      }
    }
    qsort(from_send.v, from_send.n, sizeof *from_send.v, cmp_i64);
    qsort(from_ack.v, from_ack.n, sizeof *from_ack.v, cmp_i64);
    qsort(wr.put_lat.v, wr.put_lat.n, sizeof *wr.put_lat.v, cmp_i64);
    double secs = (double)(drained - wr.start_ns) / 1e9;
    char cpu[256];
    cpu_report(cpu, sizeof cpu, c0, c1, secs, from_send.n);
    long long got = (long long)from_send.n;
    printf("mode=watch watchers=%d channels=%d served=1 put_rate=%.0f puts=%u acked=%u events=%lld "
           "expected=%lld missing=%lld responses=%llu bad=%llu canceled=%llu setup_s=%.2f drain_s=%.2f "
           "event_rate=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f "
           "put_p50_us=%.0f put_p99_us=%.0f secs=%.2f %s\n",
           g_opt.watchers, nch, g_opt.rate, wr.sent, wr.acked, got, expected, expected - got,
           (unsigned long long)msgs, (unsigned long long)bad, (unsigned long long)canceled, setup_s, (double)(drained - wend) / 1e9,
           (double)got / secs, pct_us(&from_send, 50), pct_us(&from_send, 99),
           from_send.n ? (double)from_send.v[from_send.n - 1] / 1e3 : 0, pct_us(&from_ack, 50),
           pct_us(&from_ack, 99), pct_us(&wr.put_lat, 50), pct_us(&wr.put_lat, 99), secs, cpu);
    if (wr.errors) {
      fprintf(stderr, "load: watch writer: %llu puts failed, last status %d \"%s\"\n",
              (unsigned long long)wr.errors, (int)wr.last_error, wr.last_detail);
      rc = 1;
    }
    if (got != expected || bad || canceled) {
      fprintf(stderr, "load: watch: received %lld of %lld events (%llu bad, %llu watchers canceled)\n", got,
              expected, (unsigned long long)bad, (unsigned long long)canceled);
      rc = 1;
    }
    free(from_send.v);
    free(from_ack.v);
    free(wr.put_lat.v);
    grpc_completion_queue_shutdown(wr.cq);
    while (grpc_completion_queue_next(wr.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(wr.cq);
    grpc_channel_destroy(wr.ch);
  }
out:
  for (int i = 0; i < nch; i++) {
    wworker *w = &ws[i];
    grpc_completion_queue_shutdown(w->cq);
    while (grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(w->cq);
    grpc_channel_destroy(w->ch);
    free(w->streams);
    free(w->ev);
  }
  free(ws);
  free(g_send_ns);
  free(g_ack_ns);
  grpc_slice_unref(g_watch_create);
  return rc;
}

/* ------------------------------------------------------------ main */

static const char *flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  if (strncmp(arg, name, n) == 0 && arg[n] == '=') return arg + n + 1;
  return NULL;
}

static void usage(void) {
  fprintf(stderr,
          "usage: load --target=HOST:PORT --mode=put|range|watch|fill [--clients=N] [--channels=1]\n"
          "            [--keys=100000] [--value-size=BYTES] [--range=key|prefix] [--serializable]\n"
          "            [--watchers=1000] [--rate=100] [--duration=5] [--warmup=1] [--prefix=/bench/]\n"
          "            [--server-pid=PID]\n");
  exit(2);
}

int main(int argc, char **argv) {
  const char *v;
  for (int i = 1; i < argc; i++) {
    if ((v = flag_value(argv[i], "--target")))
      g_opt.target = v;
    else if ((v = flag_value(argv[i], "--mode"))) {
      if (strcmp(v, "put") == 0)
        g_opt.mode = MODE_PUT;
      else if (strcmp(v, "range") == 0)
        g_opt.mode = MODE_RANGE;
      else if (strcmp(v, "watch") == 0)
        g_opt.mode = MODE_WATCH;
      else if (strcmp(v, "fill") == 0)
        g_opt.mode = MODE_FILL;
      else
        usage();
    } else if ((v = flag_value(argv[i], "--range"))) {
      if (strcmp(v, "key") == 0)
        g_opt.range_prefix = false;
      else if (strcmp(v, "prefix") == 0)
        g_opt.range_prefix = true;
      else
        usage();
    } else if (strcmp(argv[i], "--serializable") == 0)
      g_opt.serializable = true;
    else if ((v = flag_value(argv[i], "--server-pid")))
      g_opt.server_pid = atoi(v);
    else if ((v = flag_value(argv[i], "--clients")))
      g_opt.clients = atoi(v);
    else if ((v = flag_value(argv[i], "--channels")))
      g_opt.channels = atoi(v);
    else if ((v = flag_value(argv[i], "--keys")))
      g_opt.keys = atol(v);
    else if ((v = flag_value(argv[i], "--value-size")))
      g_opt.value_size = atoi(v);
    else if ((v = flag_value(argv[i], "--watchers")))
      g_opt.watchers = atoi(v);
    else if ((v = flag_value(argv[i], "--rate")))
      g_opt.rate = atof(v);
    else if ((v = flag_value(argv[i], "--prefix")))
      g_opt.prefix = v;
    else if ((v = flag_value(argv[i], "--duration")))
      g_opt.duration = atof(v);
    else if ((v = flag_value(argv[i], "--warmup")))
      g_opt.warmup = atof(v);
    else
      usage();
  }
  if (g_opt.clients < 0) g_opt.clients = g_opt.mode == MODE_FILL ? 256 : 16;
  if (g_opt.value_size < 0) g_opt.value_size = g_opt.mode == MODE_FILL ? 1024 : 256;
  int units = g_opt.mode == MODE_WATCH ? g_opt.watchers : g_opt.clients;
  if (g_opt.target == NULL || units < 1 || g_opt.channels < 1 || g_opt.channels > units ||
      g_opt.keys < 1 || g_opt.value_size > (1 << 20) || g_opt.duration <= 0 || g_opt.warmup < 0 ||
      g_opt.rate <= 0 || strlen(g_opt.prefix) > 200 || g_opt.prefix[0] == 0)
    usage();
  if (g_opt.mode == MODE_PUT && g_opt.keys < g_opt.clients) {
    fprintf(stderr, "load: --keys must be at least --clients (no two open calls on one key)\n");
    exit(2);
  }
  g_value = xmalloc((size_t)g_opt.value_size);
  memset(g_value, 'v', (size_t)g_opt.value_size);

  grpc_init();
  int rc = g_opt.mode == MODE_WATCH ? run_watch() : run_unary();
  free(g_value);
  grpc_shutdown();
  return rc;
}
