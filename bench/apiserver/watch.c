/* bench/apiserver/watch.c — `load watch`: event delivery from one writer to
 * --watchers Pod watches.
 *
 * 1. A consistent List of --ns (label selector matching nothing) gives the
 *    current resourceVersion RV.
 * 2. --watchers Pods/Watch streams on --ns from RV, dealt round-robin over
 *    --channels connections (each its own TCP connection and client thread;
 *    one connection carries many streams).
 * 3. A sentinel pod is created; once every watcher has received it, every
 *    watcher is known to be registered with the apiserver's watch cache. A
 *    stream the server ends before that (RESOURCE_EXHAUSTED for a burst over
 *    --max-requests-inflight, say) is opened again after 100 ms from the same
 *    RV, and counted (setup_restarts): events are never lost by that, since a
 *    watch from RV replays what happened after RV.
 * 4. The writer, on its own connection, writes --rate pods per second for
 *    --duration seconds, open loop (it does not wait for answers): write i
 *    creates pod w<RV>-<i> for the first --pods writes and then updates pod
 *    w<RV>-<i mod pods>, always with annotation bench.keel.dev/seq=<i>. It
 *    records when it sent write i and when the answer came.
 * 5. Every event a watcher receives is identified by its seq annotation and
 *    timed against write i: from its send (the latency a user sees: the
 *    apiserver's write, the store's fsync, the store watch to the apiserver's
 *    cache and the fan-out) and from its answer (the fan-out alone; negative
 *    when the event overtakes the answer). Both times come from this
 *    process's CLOCK_MONOTONIC, so no clocks are compared across processes;
 *    the seq identifies the write, so no timestamp needs to travel in the pod.
 * 6. After the writer stops it waits for the remaining events until all are
 *    in, or none arrived for --drain seconds (60 s at most), then cancels the
 *    streams: a late event still counts, with its latency. Every (watcher, acknowledged write)
 *    pair must have arrived exactly once: missing and duplicate events are
 *    counted from a bitmap per watcher, and streams the server ended are
 *    reported with the first status. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/apiserver/load.h"

enum { W_OPEN = 0, W_CLOSED = 1 };

typedef struct watcher {
  int id, chan;
  rpc_stream *s;
  atomic_bool synced;
  atomic_int state;
  atomic_llong closed_ns;
  uint32_t dups; /* channel thread only */
  uint8_t *seen; /* bitmap over seq; channel thread only */
} watcher;

typedef struct event_rec {
  uint32_t seq;
  int64_t recv_ns;
} event_rec;

typedef struct chan_state {
  rpc_channel *ch;
  event_rec *ev; /* channel thread only */
  size_t nev, cap;
  uint64_t bad; /* events that are not one of our writes */
} chan_state;

static watcher *g_w;
static chan_state *g_ch;
static uint32_t g_total;              /* writes planned */
static int64_t *g_send_ns, *g_ack_ns; /* per write */
static atomic_int g_synced, g_ended, g_restarts;
static atomic_bool g_measuring, g_stopping;
static atomic_llong g_events;
static atomic_uint g_writes_done;
static pthread_mutex_t g_fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_first_fail[256];
static Keel__Api__V1__WatchRequest g_watch_req = KEEL__API__V1__WATCH_REQUEST__INIT;

static void note_failure(const rpc_status *st) {
  pthread_mutex_lock(&g_fail_mu);
  if (!g_first_fail[0])
    snprintf(g_first_fail, sizeof g_first_fail, "%s: %s", rpc_status_code_name(st->code),
             st->message ? st->message : "");
  pthread_mutex_unlock(&g_fail_mu);
}

static const char *seq_of(const Keel__Bench__V1__WatchEventHead *ev) {
  const Keel__Bench__V1__MetaHead *m = ev->object ? ev->object->metadata : NULL;
  for (size_t i = 0; m && i < m->n_annotations; i++)
    if (strcmp(m->annotations[i]->key, SEQ_ANNOTATION) == 0) return m->annotations[i]->value;
  return NULL;
}

static void on_event(rpc_stream *s, const ProtobufCMessage *msg, void *arg) {
  (void)s;
  int64_t t = bench_now_ns();
  watcher *w = arg;
  chan_state *c = &g_ch[w->chan];
  const char *seq = seq_of((const Keel__Bench__V1__WatchEventHead *)msg);
  if (!seq) {
    c->bad++;
    return;
  }
  if (strcmp(seq, "sync") == 0) {
    if (!atomic_exchange(&w->synced, true)) atomic_fetch_add(&g_synced, 1);
    return;
  }
  char *end;
  unsigned long i = strtoul(seq, &end, 10);
  if (*end || i >= g_total) {
    c->bad++;
    return;
  }
  if (w->seen[i / 8] & (1u << (i % 8))) {
    w->dups++;
    return;
  }
  w->seen[i / 8] |= (uint8_t)(1u << (i % 8));
  if (c->nev == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 1 << 14;
    c->ev = realloc(c->ev, c->cap * sizeof *c->ev);
    if (!c->ev) die("out of memory");
  }
  c->ev[c->nev++] = (event_rec){(uint32_t)i, t};
  atomic_fetch_add(&g_events, 1);
}

static void on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  watcher *w = arg;
  atomic_store(&w->closed_ns, bench_now_ns());
  atomic_store(&w->state, W_CLOSED);
  if (atomic_load(&g_stopping)) return;
  note_failure(st);
  if (atomic_load(&w->synced)) atomic_fetch_add(&g_ended, 1);
}

static const rpc_stream_callbacks g_cb = {.on_message = on_event, .on_close = on_close};

static void start_watcher(watcher *w) {
  keel_error err = {0};
  rpc_call_options o = {.wait_for_ready = true};
  atomic_store(&w->state, W_OPEN);
  w->s = rpc_stream_start(g_ch[w->chan].ch, "/keel.api.v1.Pods/Watch", RPC_SERVER_STREAMING, &g_watch_req.base,
                          &keel__bench__v1__watch_event_head__descriptor, &o, &g_cb, w, &err);
  if (!w->s) die("watch stream: %s", err.message);
}

/* ---------------------------------------------------------------- the writer */

static bench_lat g_write_lat; /* the writer channel's thread only */
static uint64_t g_write_errors;
static char g_write_error[256];

static void write_done(void *arg, const rpc_status *st, ProtobufCMessage *resp) {
  uint32_t i = (uint32_t)(uintptr_t)arg;
  int64_t t = bench_now_ns();
  if (st->code == GRPC_STATUS_OK) {
    g_ack_ns[i] = t;
    bench_lat_push(&g_write_lat, t - g_send_ns[i]);
  } else {
    g_write_errors++;
    snprintf(g_write_error, sizeof g_write_error, "write %u: %s: %s", i, rpc_status_code_name(st->code),
             st->message ? st->message : "");
  }
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  atomic_fetch_add(&g_writes_done, 1);
}

static char *current_rv(rpc_channel *ch) {
  Keel__Api__V1__ListRequest req = KEEL__API__V1__LIST_REQUEST__INIT;
  req.namespace_ = (char *)g_opt.ns;
  req.label_selector = "bench.keel.dev/none=none";
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  rpc_call_options o = {.timeout_ms = 30000, .wait_for_ready = true};
  if (rpc_unary(ch, "/keel.api.v1.Pods/List", &req.base, &keel__bench__v1__list_head__descriptor, &resp, &o, &st) < 0)
    die("list %s: %s: %s", g_opt.ns, rpc_status_code_name(st.code), st.message ? st.message : "");
  rpc_status_clear(&st);
  const Keel__Bench__V1__ListHead *l = (const Keel__Bench__V1__ListHead *)resp;
  if (!l->metadata || !l->metadata->resource_version[0]) die("list %s: no resourceVersion", g_opt.ns);
  char *rv = strdup(l->metadata->resource_version);
  protobuf_c_message_free_unpacked(resp, NULL);
  return rv;
}

int run_watch(void) {
  int nw = g_opt.watchers, nch = g_opt.channels;
  g_total = (uint32_t)(g_opt.rate * g_opt.duration);
  if (g_total < 1) g_total = 1;
  uint32_t pods = (uint32_t)g_opt.pods;
  if (pods < (uint32_t)g_opt.rate) pods = (uint32_t)g_opt.rate; /* a pod is updated at most once a second */
  g_send_ns = bench_xcalloc(g_total, sizeof *g_send_ns);
  g_ack_ns = bench_xcalloc(g_total, sizeof *g_ack_ns);

  rpc_channel *wch = open_channel();
  ensure_namespace(wch, g_opt.ns);
  char *rv = current_rv(wch);
  g_watch_req.namespace_ = (char *)g_opt.ns;
  g_watch_req.resource_version = rv;

  long rss0 = rss_kib(g_opt.server_pid);
  g_ch = bench_xcalloc((size_t)nch, sizeof *g_ch);
  for (int i = 0; i < nch; i++) g_ch[i].ch = open_channel();
  g_w = bench_xcalloc((size_t)nw, sizeof *g_w);
  size_t bitmap = (g_total + 7) / 8;
  int64_t t0 = bench_now_ns();
  for (int i = 0; i < nw; i++) {
    watcher *w = &g_w[i];
    w->id = i;
    w->chan = i % nch;
    w->seen = bench_xcalloc(bitmap, 1);
    start_watcher(w);
  }

  /* The sentinel: every watcher that receives it is registered. */
  bench_pod wp;
  bench_pod_init(&wp, g_opt.ns);
  char name[160];
  snprintf(name, sizeof name, "w%s-sync", rv);
  bench_pod_set(&wp, name, 0, "sync");
  rpc_call_options wo = {.timeout_ms = 30000, .wait_for_ready = true};
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  if (rpc_unary(wch, "/keel.api.v1.Pods/Create", &wp.pod.base, &keel__bench__v1__object_head__descriptor, &resp, &wo,
                &st) < 0)
    die("create the sentinel pod: %s: %s", rpc_status_code_name(st.code), st.message ? st.message : "");
  rpc_status_clear(&st);
  protobuf_c_message_free_unpacked(resp, NULL);
  int64_t setup_limit = t0 + (int64_t)(g_opt.setup_timeout * 1e9);
  while (atomic_load(&g_synced) < nw && bench_now_ns() < setup_limit) {
    bench_sleep_until(bench_now_ns() + 10000000);
    int64_t t = bench_now_ns();
    for (int i = 0; i < nw; i++) {
      watcher *w = &g_w[i];
      if (atomic_load(&w->state) != W_CLOSED || atomic_load(&w->synced) || t - atomic_load(&w->closed_ns) < 100000000)
        continue;
      rpc_stream_release(w->s);
      atomic_fetch_add(&g_restarts, 1);
      start_watcher(w);
    }
  }
  double setup_s = (double)(bench_now_ns() - t0) / 1e9;
  int synced = atomic_load(&g_synced);
  long rss1 = rss_kib(g_opt.server_pid);
  char setup_fail[256];
  pthread_mutex_lock(&g_fail_mu);
  snprintf(setup_fail, sizeof setup_fail, "%s", g_first_fail);
  g_first_fail[0] = 0;
  pthread_mutex_unlock(&g_fail_mu);

  /* The writer: open loop at --rate. */
  bench_sleep_until(bench_now_ns() + (int64_t)(g_opt.warmup * 1e9));
  atomic_store(&g_measuring, true);
  cpu_mark c0 = cpu_now();
  int64_t wstart = bench_now_ns();
  char seq[24];
  for (uint32_t i = 0; i < g_total; i++) {
    bench_sleep_until(wstart + (int64_t)((double)i * 1e9 / g_opt.rate));
    uint32_t idx = i % pods;
    snprintf(name, sizeof name, "w%s-%u", rv, idx);
    snprintf(seq, sizeof seq, "%u", i);
    bench_pod_set(&wp, name, idx, seq);
    g_send_ns[i] = bench_now_ns();
    if (rpc_unary_async(wch, i < pods ? "/keel.api.v1.Pods/Create" : "/keel.api.v1.Pods/Update", &wp.pod.base,
                        &keel__bench__v1__object_head__descriptor, &wo, write_done, (void *)(uintptr_t)i) < 0)
      die("cannot start write %u", i);
  }
  int64_t wend = bench_now_ns();
  while (atomic_load(&g_writes_done) < g_total && bench_now_ns() < wend + 30000000000LL) bench_sleep_until(bench_now_ns() + 1000000);
  uint32_t acked = 0;
  for (uint32_t i = 0; i < g_total; i++) acked += g_ack_ns[i] != 0;
  long long expected = (long long)acked * synced;
  /* Drain: until every event is in, or none came for --drain seconds (60 s at
   * most): late events still count, with their latency; only events that never
   * come are missing. */
  int64_t drain_cap = bench_now_ns() + 60000000000LL, last_progress = bench_now_ns();
  long long seen_events = atomic_load(&g_events);
  while (seen_events < expected && bench_now_ns() < drain_cap && bench_now_ns() - last_progress < (int64_t)(g_opt.drain * 1e9)) {
    bench_sleep_until(bench_now_ns() + 1000000);
    long long e = atomic_load(&g_events);
    if (e != seen_events) {
      seen_events = e;
      last_progress = bench_now_ns();
    }
  }
  int64_t drained = bench_now_ns();
  cpu_mark c1 = cpu_now();
  atomic_store(&g_stopping, true);
  for (int i = 0; i < nw; i++) rpc_stream_release(g_w[i].s);
  for (int i = 0; i < nch; i++) rpc_channel_destroy(g_ch[i].ch);
  rpc_channel_destroy(wch);

  /* Tally. */
  bench_lat from_send = {0}, from_ack = {0};
  uint64_t bad = 0, dups = 0;
  for (int c = 0; c < nch; c++) {
    bad += g_ch[c].bad;
    for (size_t k = 0; k < g_ch[c].nev; k++) {
      event_rec e = g_ch[c].ev[k];
      bench_lat_push(&from_send, e.recv_ns - g_send_ns[e.seq]);
      if (g_ack_ns[e.seq]) bench_lat_push(&from_ack, e.recv_ns - g_ack_ns[e.seq]);
    }
    free(g_ch[c].ev);
  }
  long long missing = 0;
  int short_watchers = 0;
  for (int i = 0; i < nw; i++) {
    watcher *w = &g_w[i];
    dups += w->dups;
    if (!atomic_load(&w->synced)) continue;
    long long m = 0;
    for (uint32_t s = 0; s < g_total; s++)
      if (g_ack_ns[s] && !(w->seen[s / 8] & (1u << (s % 8)))) m++;
    missing += m;
    short_watchers += m > 0;
    free(w->seen);
  }
  bench_lat_sort(&from_send);
  bench_lat_sort(&from_ack);
  bench_lat_sort(&g_write_lat);
  double secs = (double)(drained - wstart) / 1e9;
  char cpu[400];
  cpu_report(cpu, sizeof cpu, c0, c1, secs, from_send.n);
  printf(
      "mode=watch ns=%s watchers=%d channels=%d rate=%.0f writes=%u acked=%u synced=%d setup_s=%.2f "
      "setup_restarts=%d events=%zu expected=%lld missing=%lld short_watchers=%d dups=%llu bad=%llu ended=%d "
      "p50_us=%.0f p99_us=%.0f max_us=%.0f ack_p50_us=%.0f ack_p99_us=%.0f write_p50_us=%.0f write_p99_us=%.0f "
      "drain_s=%.2f srv_rss_kib_before=%ld srv_rss_kib_watching=%ld secs=%.2f %s\n",
      g_opt.ns, nw, nch, g_opt.rate, g_total, acked, synced, setup_s, atomic_load(&g_restarts), from_send.n, expected,
      missing, short_watchers, (unsigned long long)dups, (unsigned long long)bad, atomic_load(&g_ended),
      bench_lat_pct_us(&from_send, 50), bench_lat_pct_us(&from_send, 99), bench_lat_max_us(&from_send), bench_lat_pct_us(&from_ack, 50),
      bench_lat_pct_us(&from_ack, 99), bench_lat_pct_us(&g_write_lat, 50), bench_lat_pct_us(&g_write_lat, 99),
      (double)(drained - wend) / 1e9, rss0, rss1, secs, cpu);
  fflush(stdout);
  int rc = 0;
  if (synced < nw) {
    fprintf(stderr, "load: watch: only %d of %d watchers registered within %.0f s (%d restarts; first failure: %s)\n",
            synced, nw, g_opt.setup_timeout, atomic_load(&g_restarts), setup_fail[0] ? setup_fail : "none");
    rc = 1;
  } else if (atomic_load(&g_restarts)) {
    fprintf(stderr, "load: watch: %d watch streams were refused during setup and opened again (first: %s)\n",
            atomic_load(&g_restarts), setup_fail);
  }
  if (g_write_errors) {
    fprintf(stderr, "load: watch: %llu writes failed, last: %s\n", (unsigned long long)g_write_errors, g_write_error);
    rc = 1;
  }
  if (missing || dups || bad || atomic_load(&g_ended)) {
    fprintf(stderr,
            "load: watch: %lld events missing (%d watchers short), %llu duplicates, %llu unexpected, %d streams "
            "ended by the server (first: %s)\n",
            missing, short_watchers, (unsigned long long)dups, (unsigned long long)bad, atomic_load(&g_ended),
            g_first_fail[0] ? g_first_fail : "none");
    rc = 1;
  }
  bench_lat_free(&from_send);
  bench_lat_free(&from_ack);
  bench_lat_free(&g_write_lat);
  for (int i = 0; i < nw; i++)
    if (!atomic_load(&g_w[i].synced)) free(g_w[i].seen);
  free(g_w);
  free(g_ch);
  free(g_send_ns);
  free(g_ack_ns);
  free(rv);
  return rc;
}
