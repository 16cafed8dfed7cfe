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
 *        channel is decoded and its key count checked. --range-over=fill
 *        writes nothing and reads what an earlier --mode=fill wrote instead:
 *        key fill/00050050, or the 100 keys fill/00050000..99 (values of the
 *        fill's size; in keel-store, served from its snapshot file).
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
 * Exit status 1 when any call failed (the failure is printed on stderr).
 * Clocks, latencies, CPU accounting, channels and the call batch are
 * bench/lib's, shared with bench/rpc/load.c. */
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

#include "bench/lib/bench.h"
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
  bool range_fill; /* --range-over=fill: read keys an earlier fill wrote */
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

/* ------------------------------------------------------------ channels */

static grpc_slice slice_from_buffer(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) bench_die("byte buffer reader");
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
  bench_call c;
  bench_call_init(&c,
                  grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, m, NULL,
                                           gpr_time_add(gpr_now(GPR_CLOCK_REALTIME),
                                                        gpr_time_from_seconds(30, GPR_TIMESPAN)),
                                           NULL),
                  req);
  bench_call_start(&c, true, (void *)1);
  grpc_event ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  if (ev.type != GRPC_OP_COMPLETE || !ev.success) bench_die("setup call failed");
  if (err) {
    char *d = grpc_slice_to_c_string(c.details);
    snprintf(err, errlen, "%s", d);
    gpr_free(d);
  }
  if (resp_out) *resp_out = c.recv ? slice_from_buffer(c.recv) : grpc_empty_slice();
  grpc_status_code status = c.status;
  bench_call_release(&c);
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
  bench_call c;
  int64_t started_ns;
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
  bench_lat lat;
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
  bench_call_init(&s->c, bench_registered_call(w->ch, w->cq, w->method), req);
  grpc_slice_unref(req);
  s->open = true;
  s->started_ns = bench_now_ns();
  w->open_calls++;
  bench_call_start(&s->c, true, s);
  return true;
}

static void check_range_response(uworker *w, grpc_byte_buffer *bb) {
  grpc_slice sl = slice_from_buffer(bb);
  Etcdserverpb__RangeResponse *r = etcdserverpb__range_response__unpack(
      NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  if (r == NULL) bench_die("range: undecodable RangeResponse");
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
  bench_call_release(&s->c);
}

static void *uworker_main(void *arg) {
  uworker *w = arg;
  bool stopping = false, fill = g_opt.mode == MODE_FILL;
  for (;;) {
    int64_t t = bench_now_ns();
    if (!fill && !stopping && t >= w->end_ns) {
      stopping = true;
      for (int i = 0; i < w->nslots; i++)
        if (w->slots[i].open) grpc_call_cancel(w->slots[i].c.call, NULL);
    }
    if ((stopping || fill) && w->open_calls == 0) break;
    grpc_event ev = grpc_completion_queue_next(w->cq, deadline_ms(50), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    uslot *s = ev.tag;
    t = bench_now_ns();
    bool in_window = fill || (t >= w->warm_ns && t < w->end_ns);
    if (!ev.success) bench_die("call batch failed");
    if (s->c.status == GRPC_STATUS_OK) {
      if (g_opt.mode == MODE_RANGE && !w->checked && s->c.recv) check_range_response(w, s->c.recv);
      if (in_window) {
        w->ok++;
        bench_lat_push(&w->lat, t - s->started_ns);
      }
      if (fill) atomic_fetch_add(&g_fill_done, 1);
    } else if (!stopping) {
      w->errors++;
      w->last_error = s->c.status;
      char *d = grpc_slice_to_c_string(s->c.details);
      snprintf(w->last_detail, sizeof w->last_detail, "%s", d);
      gpr_free(d);
    }
    finish_ucall(w, s);
    if (!stopping) start_ucall(w, s);
  }
  return NULL;
}

/* ------------------------------------------------------------ CPU accounting */

static bench_cpu_mark cpu_now(void) { return bench_cpu_now(g_opt.server_pid); }

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
  if (g_opt.range_fill) {
    /* fill/00050000 .. fill/00050099 (a fill of at least 50100 keys wrote them). */
    snprintf(key, sizeof key, "%sfill/000500", g_opt.prefix);
    snprintf(end, sizeof end, "%sfill/000501", g_opt.prefix);
    if (g_opt.range_prefix) {
      req.range_end.data = (uint8_t *)end;
      req.range_end.len = strlen(end);
    } else {
      key_name(key, sizeof key, "fill/", 50050);
    }
  } else if (g_opt.range_prefix) {
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
  uworker *ws = bench_xcalloc((size_t)nch, sizeof *ws);
  const char *method = g_opt.mode == MODE_RANGE ? "/etcdserverpb.KV/Range" : "/etcdserverpb.KV/Put";
  for (int i = 0; i < nch; i++) {
    uworker *w = &ws[i];
    w->id = i;
    w->ch = bench_channel_create(g_opt.target, i, true);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->method = grpc_channel_register_call(w->ch, method, NULL, NULL);
    w->nslots = g_opt.clients / nch + (i < g_opt.clients % nch);
    w->slots = bench_xcalloc((size_t)w->nslots, sizeof *w->slots);
  }
  if (g_opt.mode == MODE_RANGE) {
    if (!g_opt.range_fill) range_setup(ws[0].ch);
    for (int i = 0; i < nch; i++) ws[i].range_req = pack_range();
  }
  int64_t start = bench_now_ns();
  bool fill = g_opt.mode == MODE_FILL;
  int64_t warm = fill ? start : start + (int64_t)(g_opt.warmup * 1e9);
  int64_t end = warm + (int64_t)(g_opt.duration * 1e9);
  bench_cpu_mark c0 = {0};
  if (fill) c0 = cpu_now();
  for (int i = 0; i < nch; i++) {
    ws[i].warm_ns = warm;
    ws[i].end_ns = end;
    for (int j = 0; j < ws[i].nslots; j++) start_ucall(&ws[i], &ws[i].slots[j]);
  }
  for (int i = 0; i < nch; i++)
    if (pthread_create(&ws[i].th, NULL, uworker_main, &ws[i]) != 0) bench_die("pthread_create");
  if (!fill) {
    bench_sleep_until(warm);
    c0 = cpu_now();
    bench_sleep_until(end);
  }
  bench_cpu_mark c1 = cpu_now();
  uint64_t ok = 0, errors = 0;
  bench_lat all = {0};
  grpc_status_code last_error = GRPC_STATUS_OK;
  const char *last_detail = "";
  for (int i = 0; i < nch; i++) {
    pthread_join(ws[i].th, NULL);
    ok += ws[i].ok;
    errors += ws[i].errors;
    bench_lat_append(&all, &ws[i].lat);
    if (ws[i].errors) {
      last_error = ws[i].last_error;
      last_detail = ws[i].last_detail;
    }
  }
  double secs = g_opt.duration;
  if (fill) {
    c1 = cpu_now();
    secs = (double)(bench_now_ns() - start) / 1e9;
  }
  bench_lat_sort(&all);
  char cpu[256];
  bench_cpu_report(cpu, sizeof cpu, c0, c1, secs, ok);
  const char *name = g_opt.mode == MODE_PUT ? "put" : g_opt.mode == MODE_FILL ? "fill" : "range";
  char extra[96] = "";
  if (g_opt.mode == MODE_RANGE)
    snprintf(extra, sizeof extra, " range=%s serializable=%d", g_opt.range_prefix ? "prefix" : "key",
             g_opt.serializable);
  else
    snprintf(extra, sizeof extra, " keys=%ld value_size=%d", g_opt.keys, g_opt.value_size);
  printf("mode=%s clients=%d channels=%d%s rate=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f ok=%llu "
         "errors=%llu secs=%.2f %s\n",
         name, g_opt.clients, nch, extra, (double)ok / secs, bench_lat_pct_us(&all, 50), bench_lat_pct_us(&all, 99),
         bench_lat_max_us(&all), (unsigned long long)ok,
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
    bench_cq_destroy(w->cq);
    grpc_channel_destroy(w->ch);
    if (g_opt.mode == MODE_RANGE) grpc_slice_unref(w->range_req);
    free(w->slots);
    bench_lat_free(&w->lat);
  }
  bench_lat_free(&all);
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
    bench_die("watch start_batch");
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
  if (s->call == NULL) bench_die("create_registered_call failed");
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
      if (w->ev == NULL) bench_die("out of memory");
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
    int64_t t = bench_now_ns();
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
  bench_lat put_lat;
} writer;

typedef struct wcall {
  bench_call c;
  uint32_t seq;
} wcall;

static void writer_start_put(writer *wr, uint32_t seq) {
  wcall *c = bench_xcalloc(1, sizeof *c);
  c->seq = seq;
  unsigned char *value = bench_xmalloc((size_t)g_opt.value_size);
  memcpy(value, g_value, (size_t)g_opt.value_size);
  memcpy(value, &seq, sizeof seq);
  char key[256];
  key_name(key, sizeof key, "watch/", (long)(seq % 100));
  grpc_slice req = pack_put(key, value, (size_t)g_opt.value_size);
  free(value);
  bench_call_init(&c->c, bench_registered_call(wr->ch, wr->cq, wr->method), req);
  grpc_slice_unref(req);
  g_send_ns[seq] = bench_now_ns();
  bench_call_start(&c->c, true, c);
}

static void *writer_main(void *arg) {
  writer *wr = arg;
  uint32_t total = (uint32_t)(g_opt.rate * g_opt.duration);
  uint32_t open = 0;
  for (;;) {
    int64_t due = wr->sent < total ? wr->start_ns + (int64_t)((double)wr->sent * 1e9 / g_opt.rate)
                                   : INT64_MAX;
    int64_t t = bench_now_ns();
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
    int64_t at = bench_now_ns();
    open--;
    if (c->c.status == GRPC_STATUS_OK) {
      g_ack_ns[c->seq] = at;
      wr->acked++;
      bench_lat_push(&wr->put_lat, at - g_send_ns[c->seq]);
    } else {
      wr->errors++;
      wr->last_error = c->c.status;
      char *d = grpc_slice_to_c_string(c->c.details);
      snprintf(wr->last_detail, sizeof wr->last_detail, "%s", d);
      gpr_free(d);
    }
    bench_call_release(&c->c);
    free(c);
  }
  return NULL;
}

static int run_watch(void) {
  if (g_opt.value_size < 8) g_opt.value_size = 8;
  g_max_puts = (uint32_t)(g_opt.rate * g_opt.duration) + 1;
  g_send_ns = bench_xcalloc(g_max_puts, sizeof *g_send_ns);
  g_ack_ns = bench_xcalloc(g_max_puts, sizeof *g_ack_ns);
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
  wworker *ws = bench_xcalloc((size_t)nch, sizeof *ws);
  int64_t t0 = bench_now_ns();
  for (int i = 0; i < nch; i++) {
    wworker *w = &ws[i];
    w->id = i;
    w->ch = bench_channel_create(g_opt.target, i, true);
    w->cq = grpc_completion_queue_create_for_next(NULL);
    w->nstreams = g_opt.watchers / nch + (i < g_opt.watchers % nch);
    w->streams = bench_xcalloc((size_t)w->nstreams, sizeof *w->streams);
    void *method = grpc_channel_register_call(w->ch, "/etcdserverpb.Watch/Watch", NULL, NULL);
    for (int j = 0; j < w->nstreams; j++) start_stream(w, &w->streams[j], method);
  }
  for (int i = 0; i < nch; i++)
    if (pthread_create(&ws[i].th, NULL, wworker_main, &ws[i]) != 0) bench_die("pthread_create");
  /* Every watcher created, or a stream failed, or 30 s. */
  int64_t limit = t0 + 30000000000LL;
  while (atomic_load(&g_created) < g_opt.watchers && atomic_load(&g_failed_streams) == 0 &&
         bench_now_ns() < limit)
    bench_sleep_until(bench_now_ns() + 1000000);
  double setup_s = (double)(bench_now_ns() - t0) / 1e9;
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
    wr.ch = bench_channel_create(g_opt.target, nch, true);
    wr.cq = grpc_completion_queue_create_for_next(NULL);
    wr.method = grpc_channel_register_call(wr.ch, "/etcdserverpb.KV/Put", NULL, NULL);
    /* Let the streams settle, then write. */
    bench_sleep_until(bench_now_ns() + (int64_t)(g_opt.warmup * 1e9));
    bench_cpu_mark c0 = cpu_now();
    wr.start_ns = bench_now_ns();
    if (pthread_create(&wr.th, NULL, writer_main, &wr) != 0) bench_die("pthread_create");
    pthread_join(wr.th, NULL);
    int64_t wend = bench_now_ns();
    long long expected = (long long)wr.acked * g_opt.watchers;
    int64_t drain_limit = wend + 5000000000LL;
    while (atomic_load(&g_events) < expected && bench_now_ns() < drain_limit) bench_sleep_until(bench_now_ns() + 1000000);
    int64_t drained = bench_now_ns();
    bench_cpu_mark c1 = cpu_now();
    atomic_store(&g_wstop, true);
    for (int i = 0; i < nch; i++) pthread_join(ws[i].th, NULL);
    /* Latencies: from the put's send, and from its ack. */
    bench_lat from_send = {0}, from_ack = {0};
    uint64_t bad = 0, canceled = 0, msgs = 0;
    for (int i = 0; i < nch; i++) {
      msgs += ws[i].msgs;
      bad += ws[i].bad;
      canceled += ws[i].cancel;
      for (size_t k = 0; k < ws[i].nev; k++) {
        event_rec e = ws[i].ev[k];
        bench_lat_push(&from_send, e.recv_ns - g_send_ns[e.seq]);
        if (g_ack_ns[e.seq]) bench_lat_push(&from_ack, e.recv_ns - g_ack_ns[e.seq]);
      }
    }
    bench_lat_sort(&from_send);
    bench_lat_sort(&from_ack);
    bench_lat_sort(&wr.put_lat);
    double secs = (double)(drained - wr.start_ns) / 1e9;
    char cpu[256];
    bench_cpu_report(cpu, sizeof cpu, c0, c1, secs, from_send.n);
    long long got = (long long)from_send.n;
    printf("mode=watch watchers=%d channels=%d served=1 put_rate=%.0f puts=%u acked=%u events=%lld "
           "expected=%lld missing=%lld responses=%llu bad=%llu canceled=%llu setup_s=%.2f drain_s=%.2f "
           "event_rate=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f "
           "put_p50_us=%.0f put_p99_us=%.0f secs=%.2f %s\n",
           g_opt.watchers, nch, g_opt.rate, wr.sent, wr.acked, got, expected, expected - got,
           (unsigned long long)msgs, (unsigned long long)bad, (unsigned long long)canceled, setup_s, (double)(drained - wend) / 1e9,
           (double)got / secs, bench_lat_pct_us(&from_send, 50), bench_lat_pct_us(&from_send, 99),
           bench_lat_max_us(&from_send), bench_lat_pct_us(&from_ack, 50),
           bench_lat_pct_us(&from_ack, 99), bench_lat_pct_us(&wr.put_lat, 50), bench_lat_pct_us(&wr.put_lat, 99), secs, cpu);
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
    bench_lat_free(&from_send);
    bench_lat_free(&from_ack);
    bench_lat_free(&wr.put_lat);
    bench_cq_destroy(wr.cq);
    grpc_channel_destroy(wr.ch);
  }
out:
  for (int i = 0; i < nch; i++) {
    wworker *w = &ws[i];
    bench_cq_destroy(w->cq);
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
    if ((v = bench_flag_value(argv[i], "--target")))
      g_opt.target = v;
    else if ((v = bench_flag_value(argv[i], "--mode"))) {
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
    } else if ((v = bench_flag_value(argv[i], "--range"))) {
      if (strcmp(v, "key") == 0)
        g_opt.range_prefix = false;
      else if (strcmp(v, "prefix") == 0)
        g_opt.range_prefix = true;
      else
        usage();
    } else if ((v = bench_flag_value(argv[i], "--range-over"))) {
      if (strcmp(v, "fill") == 0)
        g_opt.range_fill = true;
      else if (strcmp(v, "range") != 0)
        usage();
    } else if (strcmp(argv[i], "--serializable") == 0)
      g_opt.serializable = true;
    else if ((v = bench_flag_value(argv[i], "--server-pid")))
      g_opt.server_pid = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--clients")))
      g_opt.clients = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--channels")))
      g_opt.channels = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--keys")))
      g_opt.keys = atol(v);
    else if ((v = bench_flag_value(argv[i], "--value-size")))
      g_opt.value_size = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--watchers")))
      g_opt.watchers = atoi(v);
    else if ((v = bench_flag_value(argv[i], "--rate")))
      g_opt.rate = atof(v);
    else if ((v = bench_flag_value(argv[i], "--prefix")))
      g_opt.prefix = v;
    else if ((v = bench_flag_value(argv[i], "--duration")))
      g_opt.duration = atof(v);
    else if ((v = bench_flag_value(argv[i], "--warmup")))
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
  g_value = bench_xmalloc((size_t)g_opt.value_size);
  memset(g_value, 'v', (size_t)g_opt.value_size);

  grpc_init();
  int rc = g_opt.mode == MODE_WATCH ? run_watch() : run_unary();
  free(g_value);
  grpc_shutdown();
  return rc;
}
