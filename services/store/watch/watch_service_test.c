/* Component tests of etcdserverpb.Watch over real gRPC: an in-process rpc
 * server with the watch service on a real store, driven by common/rpc's client
 * streams. The sequence etcd 3.4 shows the conformance suite (e2e/store), a
 * client that stops reading, compaction, fragments, and 1000 watchers on one
 * stream and across streams. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rpc/rpc.h"
#include "services/store/watch/watch_hub.h"
#include "services/store/watch/watch_internal.h"
#include "services/store/watch/watch_service.h"
#include "services/store/watch/watch_testutil.h"

extern const unsigned char keel_etcd_descriptor_set[];
extern const unsigned long keel_etcd_descriptor_set_len;

#define T 10000
#define MAX_MESSAGE (64 * 1024)
#define QUEUE_MESSAGES 16

typedef struct fx {
  test_store ts;
  watch_hub *hub;
  rpc_server *srv;
  rpc_channel *ch;
  char addr[64];
} fx;

static int setup(void **state) {
  fx *x = calloc(1, sizeof(*x));
  test_store_open(&x->ts);
  keel_error err = {0};
  watch_hub_options ho = {.fragment_bytes = 4096, .max_send_bytes = MAX_MESSAGE};
  x->hub = watch_hub_create(x->ts.s, &ho, &err);
  assert_non_null(x->hub);
  rpc_server_options so = {.name = "watch-test", .max_message_bytes = MAX_MESSAGE,
                           .stream_queue_messages = QUEUE_MESSAGES, .shutdown_grace_ms = 500};
  x->srv = rpc_server_create(&so, &err);
  assert_non_null(x->srv);
  if (watch_service_register(x->hub, x->srv, &err) != 0) fail_msg("register: %s", err.message);
  assert_int_equal(rpc_server_add_descriptors(x->srv, keel_etcd_descriptor_set,
                                              keel_etcd_descriptor_set_len, &err), 0);
  int port = rpc_server_add_listener(x->srv, "127.0.0.1:0", NULL, &err);
  assert_true(port > 0);
  snprintf(x->addr, sizeof(x->addr), "127.0.0.1:%d", port);
  if (rpc_server_start(x->srv, &err) != 0) fail_msg("start: %s", err.message);
  const char *eps[] = {x->addr};
  rpc_channel_options co = {.endpoints = eps, .nendpoints = 1, .cq_threads = 2};
  x->ch = rpc_channel_create(&co, &err);
  assert_non_null(x->ch);
  *state = x;
  return 0;
}

static int teardown(void **state) {
  fx *x = *state;
  rpc_channel_destroy(x->ch);
  /* Let the server free the calls the clients closed before shutting it down:
   * rpc_server_shutdown racing a call being freed can free it twice (a
   * common/rpc bug reported to the lead: finish_open_streams refs calls whose
   * count already reached zero). Each freed call releases its stream's hub
   * reference, so the hub's count says when they are gone. */
  for (int i = 0; i < 500 && atomic_load(&x->hub->refs) > 1; i++) usleep(10000);
  usleep(20000);
  rpc_server_shutdown(x->srv);
  watch_hub_stop(x->hub);
  test_store_close(&x->ts);
  watch_hub_destroy(x->hub);
  rpc_server_destroy(x->srv);
  free(x);
  return 0;
}

/* ------------------------------------------------------------------ client */

typedef struct client {
  resp_log log;
  rpc_stream *s;
  useconds_t block_first; /* a reader stuck on its first event */
  atomic_int seen;
  int64_t unblocked_ms;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool closed;
  grpc_status_code code;
} client;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  (void)s;
  client *c = arg;
  const Etcdserverpb__WatchResponse *r = (const Etcdserverpb__WatchResponse *)m;
  if (c->block_first && r->n_events && atomic_fetch_add(&c->seen, 1) == 0) {
    usleep(c->block_first);
    c->unblocked_ms = now_ms();
  }
  resp_log_add(&c->log, r);
}

static void on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  client *c = arg;
  pthread_mutex_lock(&c->mu);
  c->closed = true;
  c->code = st->code;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
}

static const rpc_stream_callbacks cbs = {.on_message = on_message, .on_close = on_close};

static client *client_open(fx *x, useconds_t block_first) {
  client *c = calloc(1, sizeof(*c));
  resp_log_init(&c->log);
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->block_first = block_first;
  /* etcdctl sends "hasleader: true" on watch streams. */
  rpc_metadata md[] = {{"hasleader", "true", 4}};
  rpc_call_options o = {.metadata = md, .nmetadata = 1};
  keel_error err = {0};
  c->s = rpc_stream_start(x->ch, "/etcdserverpb.Watch/Watch", RPC_BIDI_STREAMING, NULL,
                          &etcdserverpb__watch_response__descriptor, &o, &cbs, c, &err);
  if (!c->s) fail_msg("stream: %s", err.message);
  return c;
}

static void client_close(client *c) {
  rpc_stream_cancel(c->s);
  pthread_mutex_lock(&c->mu);
  while (!c->closed) pthread_cond_wait(&c->cond, &c->mu);
  pthread_mutex_unlock(&c->mu);
  rpc_stream_release(c->s);
  resp_log_free(&c->log);
  free(c);
}

static void write_req(client *c, const Etcdserverpb__WatchRequest *r) {
  int rc;
  while ((rc = rpc_stream_write(c->s, &r->base)) == -ENOBUFS) usleep(1000);
  assert_int_equal(rc, 0);
}

typedef struct copts {
  const char *key, *end;
  int64_t start, id;
  bool prev_kv, fragment, noput;
} copts;

static void wcreate(client *c, copts o) {
  Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
  cr.key.data = (uint8_t *)o.key;
  cr.key.len = strlen(o.key);
  if (o.end) {
    cr.range_end.data = (uint8_t *)o.end;
    cr.range_end.len = strlen(o.end);
  }
  cr.start_revision = o.start;
  cr.watch_id = o.id;
  cr.prev_kv = o.prev_kv;
  cr.fragment = o.fragment;
  Etcdserverpb__WatchCreateRequest__FilterType noput =
      ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
  if (o.noput) {
    cr.n_filters = 1;
    cr.filters = &noput;
  }
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  r.create_request = &cr;
  write_req(c, &r);
}

static void wcancel(client *c, int64_t id) {
  Etcdserverpb__WatchCancelRequest cr = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
  cr.watch_id = id;
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
  r.cancel_request = &cr;
  write_req(c, &r);
}

static void wprogress(client *c) {
  Etcdserverpb__WatchProgressRequest p = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
  r.progress_request = &p;
  write_req(c, &r);
}

static Etcdserverpb__WatchResponse *next(client *c, size_t *i) {
  Etcdserverpb__WatchResponse *r = resp_log_get(&c->log, *i, T);
  if (!r) fail_msg("no response #%zu", *i);
  (*i)++;
  return r;
}

/* ------------------------------------------------------------------ tests */

/* The conformance suite's watch sequence, as real etcd 3.4 answers it. */
static void test_etcd_sequence(void **state) {
  fx *x = *state;
  store *s = x->ts.s;
  client *c = client_open(x, 0);
  size_t i = 0;
  int64_t r = trev(s);
  wcreate(c, (copts){.key = "w/a"});
  Etcdserverpb__WatchResponse *m = next(c, &i);
  assert_true(m->created && !m->canceled && m->n_events == 0);
  assert_int_equal(m->header->revision, r);
  int64_t wid_a = m->watch_id;
  assert_int_equal(wid_a, 0);
  tput(s, "w/a", "1");
  tput(s, "w/b", "1");
  m = next(c, &i);
  assert_int_equal(m->watch_id, wid_a);
  assert_int_equal(m->n_events, 1);
  assert_true(key_is(m->events[0]->kv, "w/a"));
  assert_int_equal(m->events[0]->kv->mod_revision, r + 1);
  assert_int_equal(m->header->revision, r + 1);

  wcreate(c, (copts){.key = "w/", .end = "w0", .noput = true, .prev_kv = true, .id = 100});
  m = next(c, &i);
  assert_true(m->created);
  assert_int_equal(m->watch_id, 100);
  wcreate(c, (copts){.key = "w/", .id = 100});
  m = next(c, &i);
  assert_true(m->created && m->canceled);
  assert_int_equal(m->watch_id, -1);
  assert_string_equal(m->cancel_reason, "mvcc: duplicate watch ID provided on the WatchStream");
  wcreate(c, (copts){.key = "w/c"});
  m = next(c, &i);
  assert_true(m->created);
  int64_t wid_c = m->watch_id;
  assert_true(wid_c != wid_a && wid_c != 100);
  tput(s, "w/b", "2");
  r = trev(s);
  tdel(s, "w/b", NULL);
  m = next(c, &i);
  assert_int_equal(m->watch_id, 100);
  assert_int_equal(m->n_events, 1);
  assert_int_equal(m->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
  assert_int_equal(m->events[0]->kv->mod_revision, r + 1);
  assert_true(value_is(m->events[0]->prev_kv, "2"));
  wcancel(c, 100);
  m = next(c, &i);
  assert_true(m->canceled);
  assert_int_equal(m->watch_id, 100);
  wprogress(c);
  m = next(c, &i);
  assert_true(m->n_events == 0 && !m->created && !m->canceled);
  assert_int_equal(m->header->revision, trev(s));
  assert_int_equal(m->watch_id, -1);
  wcancel(c, wid_c);
  m = next(c, &i);
  assert_true(m->canceled);
  assert_int_equal(m->watch_id, wid_c);
  wcancel(c, 987654);
  wprogress(c);
  m = next(c, &i);
  assert_true(m->watch_id == -1 && !m->canceled);
  tput(s, "w/c", "1");
  wprogress(c);
  m = next(c, &i);
  assert_int_equal(m->n_events, 0);

  r = trev(s);
  wcreate(c, (copts){.key = "w/f", .start = r + 2});
  assert_true(next(c, &i)->created);
  tput(s, "w/f", "skipped");
  tput(s, "w/f", "seen");
  m = next(c, &i);
  assert_int_equal(m->n_events, 1);
  assert_true(value_is(m->events[0]->kv, "seen"));

  Etcdserverpb__WatchRequest empty = ETCDSERVERPB__WATCH_REQUEST__INIT;
  write_req(c, &empty);
  wprogress(c);
  m = next(c, &i);
  assert_int_equal(m->watch_id, -1);
  client_close(c);
}

static void test_history_replay(void **state) {
  fx *x = *state;
  store *s = x->ts.s;
  int64_t r = trev(s);
  tput(s, "h/k", "v1");
  tput(s, "h/k", "v2");
  const char *keys[] = {"h/t1", "h/t2"}, *vals[] = {"a", "b"};
  ttxn_puts(s, keys, vals, 2);
  tdel(s, "h/", "h0");
  client *c = client_open(x, 0);
  size_t i = 0;
  wcreate(c, (copts){.key = "h/", .end = "h0", .start = r + 1, .prev_kv = true});
  assert_true(next(c, &i)->created);
  const char *want_keys[] = {"h/k", "h/k", "h/t1", "h/t2", "h/k", "h/t1", "h/t2"};
  int64_t want_revs[] = {r + 1, r + 2, r + 3, r + 3, r + 4, r + 4, r + 4};
  int n = 0;
  int64_t last_rev = 0;
  while (n < 7) {
    Etcdserverpb__WatchResponse *m = next(c, &i);
    assert_true(m->events[0]->kv->mod_revision > last_rev); /* a revision is never split */
    for (size_t k = 0; k < m->n_events; k++, n++) {
      assert_true(key_is(m->events[k]->kv, want_keys[n]));
      assert_int_equal(m->events[k]->kv->mod_revision, want_revs[n]);
      assert_int_equal(m->events[k]->type, n >= 4 ? MVCCPB__EVENT__EVENT_TYPE__DELETE
                                                  : MVCCPB__EVENT__EVENT_TYPE__PUT);
      if (n == 0 || n == 2 || n == 3) assert_null(m->events[k]->prev_kv);
      else assert_non_null(m->events[k]->prev_kv);
      last_rev = m->events[k]->kv->mod_revision;
    }
  }
  client_close(c);
}

typedef struct writer {
  store *s;
  int n;
  put_counter c;
  int64_t done_ms;
} writer;

static void *write_main(void *arg) {
  writer *w = arg;
  for (int k = 0; k < w->n; k++) {
    char v[16];
    snprintf(v, sizeof(v), "%d", k);
    tput_async(w->s, k % 2 ? "slow/b" : "slow/a", v, &w->c);
  }
  put_counter_wait(&w->c, w->n, 60000);
  w->done_ms = now_ms();
  return NULL;
}

/* A client that stops reading: its events wait (held back behind the
 * transport's queue, then in it or in history), every write still completes
 * at once, the stream stays open, and the client later receives every event
 * in order, once. */
static void test_slow_client(void **state) {
  fx *x = *state;
  enum { N = 3000 };
  client *c = client_open(x, 3000 * 1000);
  size_t i = 0;
  wcreate(c, (copts){.key = "slow/", .end = "slow0", .prev_kv = true});
  assert_true(next(c, &i)->created);
  writer w = {.s = x->ts.s, .n = N};
  put_counter_init(&w.c);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, write_main, &w), 0);
  pthread_join(t, NULL);
  assert_int_equal(w.c.done, N);
  assert_int_equal(w.c.failed, 0);
  watch_hub_stats st;
  int64_t rev = trev(x->ts.s);
  for (int k = 0; k < 2000; k++) {
    watch_hub_get_stats(x->hub, &st);
    if (st.revision >= rev && st.pending == 0) break;
    usleep(1000);
  }
  assert_true(st.fell_behind >= 1 || st.held_back >= 1);
  int got = 0;
  int64_t last = 0;
  while (got < N) {
    Etcdserverpb__WatchResponse *m = next(c, &i);
    for (size_t k = 0; k < m->n_events; k++, got++) {
      char v[16];
      snprintf(v, sizeof(v), "%d", got);
      if (!value_is(m->events[k]->kv, v))
        fail_msg("event %d: got %.*s", got, (int)m->events[k]->kv->value.len,
                 m->events[k]->kv->value.data);
      if (last) assert_int_equal(m->events[k]->kv->mod_revision, last + 1); /* no gap, no repeat */
      last = m->events[k]->kv->mod_revision;
      if (got >= 2) assert_non_null(m->events[k]->prev_kv);
    }
  }
  /* The writers finished while the reader was still stuck on its first event. */
  assert_true(c->unblocked_ms > 0);
  assert_true(w.done_ms < c->unblocked_ms);
  /* Nothing more, and the stream is still up. */
  wprogress(c);
  Etcdserverpb__WatchResponse *m = next(c, &i);
  assert_int_equal(m->watch_id, -1);
  assert_int_equal(m->header->revision, last);
  assert_false(c->closed);
  client_close(c);
}

static void test_compacted_start(void **state) {
  fx *x = *state;
  store *s = x->ts.s;
  int64_t r1 = tput(s, "cmp/k", "v1");
  int64_t r2 = tput(s, "cmp/k", "v2");
  tput(s, "cmp/k", "v3");
  tcompact(s, r2);
  client *c = client_open(x, 0);
  size_t i = 0;
  wcreate(c, (copts){.key = "cmp/k", .start = r1});
  Etcdserverpb__WatchResponse *m = next(c, &i);
  assert_true(m->created && !m->canceled);
  m = next(c, &i);
  assert_true(m->canceled);
  assert_int_equal(m->compact_revision, r2);
  assert_int_equal(m->header->revision, 0);
  assert_string_equal(m->cancel_reason, "");
  assert_int_equal(m->n_events, 0);
  wcreate(c, (copts){.key = "cmp/k", .start = r2});
  assert_true(next(c, &i)->created);
  int n = 0;
  while (n < 2) n += (int)next(c, &i)->n_events;
  client_close(c);
}

static void test_fragments_and_oversize(void **state) {
  fx *x = *state;
  client *c = client_open(x, 0);
  size_t i = 0;
  wcreate(c, (copts){.key = "fr/", .end = "fr0", .fragment = true});
  assert_true(next(c, &i)->created);
  wcreate(c, (copts){.key = "big/", .end = "big0"});
  assert_true(next(c, &i)->created);
  char *v = malloc(10 * 1024 + 1);
  memset(v, 'v', 10 * 1024);
  v[10 * 1024] = 0;
  /* 10 values of 1 KiB: above the 4 KiB fragment threshold. */
  char *kib = malloc(1025);
  memset(kib, 'k', 1024);
  kib[1024] = 0;
  const char *keys[10], *vals[10];
  char kb[10][16];
  for (int k = 0; k < 10; k++) {
    snprintf(kb[k], sizeof(kb[k]), "fr/%02d", k);
    keys[k] = kb[k];
    vals[k] = kib;
  }
  ttxn_puts(x->ts.s, keys, vals, 10);
  int n = 0, responses = 0;
  for (bool more = true; more; responses++) {
    Etcdserverpb__WatchResponse *m = next(c, &i);
    for (size_t k = 0; k < m->n_events; k++, n++) assert_true(key_is(m->events[k]->kv, kb[n]));
    more = m->fragment;
  }
  assert_int_equal(n, 10);
  assert_true(responses >= 3);
  /* A non-fragment watcher's revision above the message limit (10 x 10 KiB >
   * 64 KiB) still arrives, split: nothing is lost. */
  for (int k = 0; k < 10; k++) {
    snprintf(kb[k], sizeof(kb[k]), "big/%02d", k);
    vals[k] = v;
  }
  ttxn_puts(x->ts.s, keys, vals, 10);
  n = 0;
  for (bool more = true; more;) {
    Etcdserverpb__WatchResponse *m = next(c, &i);
    assert_int_equal(m->watch_id, 1);
    for (size_t k = 0; k < m->n_events; k++, n++) assert_true(key_is(m->events[k]->kv, kb[n]));
    more = m->fragment;
  }
  assert_int_equal(n, 10);
  free(v);
  free(kib);
  client_close(c);
}

static void put_range(store *s, const char *fmt, int n) {
  for (int t = 0; t < n / 50; t++) {
    const char *keys[50], *vals[50];
    char kb[50][32];
    for (int k = 0; k < 50; k++) {
      snprintf(kb[k], sizeof(kb[k]), fmt, t * 50 + k);
      keys[k] = kb[k];
      vals[k] = "v";
    }
    ttxn_puts(s, keys, vals, 50);
  }
}

static void test_1000_watchers_one_stream(void **state) {
  fx *x = *state;
  enum { N = 1000 };
  client *c = client_open(x, 0);
  char key[32];
  for (int k = 0; k < N; k++) {
    snprintf(key, sizeof(key), "one/%04d", k);
    wcreate(c, (copts){.key = key});
  }
  assert_int_equal(resp_log_wait(&c->log, N, T), N);
  for (size_t k = 0; k < N; k++) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&c->log, k, 0);
    assert_true(m->created);
    assert_int_equal(m->watch_id, (int64_t)k);
  }
  put_range(x->ts.s, "one/%04d", N);
  assert_int_equal(resp_log_wait(&c->log, 2 * N, T), 2 * N);
  int *seen = calloc(N, sizeof(int));
  for (size_t k = N; k < 2 * N; k++) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&c->log, k, 0);
    assert_int_equal(m->n_events, 1);
    snprintf(key, sizeof(key), "one/%04d", (int)m->watch_id);
    assert_true(key_is(m->events[0]->kv, key));
    seen[m->watch_id]++;
  }
  for (int k = 0; k < N; k++) assert_int_equal(seen[k], 1);
  free(seen);
  size_t i = 2 * N;
  wprogress(c);
  assert_int_equal(next(c, &i)->watch_id, -1); /* nothing extra */
  client_close(c);
}

static void test_1000_watchers_across_streams(void **state) {
  fx *x = *state;
  enum { S = 100, W = 10 };
  client *cs[S];
  char key[32];
  for (int s = 0; s < S; s++) {
    cs[s] = client_open(x, 0);
    for (int w = 0; w < W; w++) {
      snprintf(key, sizeof(key), "many/%04d", s * W + w);
      wcreate(cs[s], (copts){.key = key});
    }
  }
  for (int s = 0; s < S; s++) assert_int_equal(resp_log_wait(&cs[s]->log, W, T), W);
  watch_hub_stats st;
  watch_hub_get_stats(x->hub, &st);
  assert_int_equal(st.watchers, S * W);
  assert_int_equal(st.streams, S);
  put_range(x->ts.s, "many/%04d", S * W);
  for (int s = 0; s < S; s++) {
    assert_int_equal(resp_log_wait(&cs[s]->log, 2 * W, T), 2 * W);
    for (int k = W; k < 2 * W; k++) {
      Etcdserverpb__WatchResponse *m = resp_log_get(&cs[s]->log, k, 0);
      assert_int_equal(m->n_events, 1);
      snprintf(key, sizeof(key), "many/%04d", s * W + (int)m->watch_id);
      assert_true(key_is(m->events[0]->kv, key));
    }
  }
  for (int s = 0; s < S; s++) client_close(cs[s]);
  for (int k = 0; k < 200; k++) {
    watch_hub_get_stats(x->hub, &st);
    if (st.streams == 0) break;
    usleep(10000);
  }
  assert_int_equal(st.streams, 0);
  assert_int_equal(st.watchers, 0);
}

/* etcd keeps a half-closed watch stream open and sending. */
static void test_half_close_keeps_stream(void **state) {
  fx *x = *state;
  client *c = client_open(x, 0);
  size_t i = 0;
  wcreate(c, (copts){.key = "hc"});
  assert_true(next(c, &i)->created);
  assert_int_equal(rpc_stream_close_send(c->s), 0);
  usleep(50000);
  tput(x->ts.s, "hc", "after");
  Etcdserverpb__WatchResponse *m = next(c, &i);
  assert_true(value_is(m->events[0]->kv, "after"));
  assert_false(c->closed);
  client_close(c);
}

/* Server shutdown ends open watch streams with UNAVAILABLE and frees them. */
static void test_shutdown_with_open_streams(void **state) {
  fx *x = *state;
  client *c = client_open(x, 0);
  size_t i = 0;
  wcreate(c, (copts){.key = "sd"});
  assert_true(next(c, &i)->created);
  rpc_server_shutdown(x->srv);
  pthread_mutex_lock(&c->mu);
  while (!c->closed) pthread_cond_wait(&c->cond, &c->mu);
  pthread_mutex_unlock(&c->mu);
  assert_int_equal(c->code, GRPC_STATUS_UNAVAILABLE);
  watch_hub_stats st;
  watch_hub_get_stats(x->hub, &st);
  assert_int_equal(st.streams, 0);
  client_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_etcd_sequence, setup, teardown),
      cmocka_unit_test_setup_teardown(test_history_replay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_client, setup, teardown),
      cmocka_unit_test_setup_teardown(test_compacted_start, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fragments_and_oversize, setup, teardown),
      cmocka_unit_test_setup_teardown(test_1000_watchers_one_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_1000_watchers_across_streams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_half_close_keeps_stream, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_with_open_streams, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
