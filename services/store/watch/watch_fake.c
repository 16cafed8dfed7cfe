/* services/store/watch/watch_fake.c — see watch_fake.h. */
#define _GNU_SOURCE
#include "services/store/watch/watch_fake.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/store/watch/watch_internal.h"

/* ------------------------------------------------------------------ fake transport */

static int fake_send(void *ctx, const Etcdserverpb__WatchResponse *r) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  while (f->block) {
    f->in_send = true;
    pthread_cond_broadcast(&f->cond);
    pthread_cond_wait(&f->cond, &f->mu);
  }
  f->in_send = false;
  if (f->fail_rc) {
    int rc = f->fail_rc;
    pthread_mutex_unlock(&f->mu);
    return rc;
  }
  if (f->capacity >= 0 && f->queued >= f->capacity) {
    f->refused++;
    pthread_mutex_unlock(&f->mu);
    return -ENOBUFS;
  }
  f->queued++;
  pthread_mutex_unlock(&f->mu);
  resp_log_add(&f->log, r);
  return 0;
}

/* A response of events arrives as prefix + shared ranges: the fake decodes the
 * concatenation, so every test checks the bytes a client would get. */
static int fake_send_parts_in(void *ctx, const uint8_t *prefix, size_t prefix_len,
                              const rpc_shared_range *parts, size_t nparts);

/* Notes sends that overlap on one stream (never allowed: a stream's
 * responses leave in the order decided). */
static int fake_send_parts(void *ctx, const uint8_t *prefix, size_t prefix_len,
                           const rpc_shared_range *parts, size_t nparts) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  if (f->inside++) f->overlapped = true;
  pthread_mutex_unlock(&f->mu);
  int rc = fake_send_parts_in(ctx, prefix, prefix_len, parts, nparts);
  pthread_mutex_lock(&f->mu);
  f->inside--;
  pthread_mutex_unlock(&f->mu);
  return rc;
}

static int fake_send_parts_in(void *ctx, const uint8_t *prefix, size_t prefix_len,
                              const rpc_shared_range *parts, size_t nparts) {
  size_t total = prefix_len;
  for (size_t i = 0; i < nparts; i++) total += parts[i].len;
  uint8_t *buf = malloc(total ? total : 1);
  memcpy(buf, prefix, prefix_len);
  size_t at = prefix_len;
  for (size_t i = 0; i < nparts; i++) {
    size_t len;
    const unsigned char *data = rpc_shared_message_data(parts[i].m, &len);
    assert_true(parts[i].offset + parts[i].len <= len);
    memcpy(buf + at, data + parts[i].offset, parts[i].len);
    at += parts[i].len;
  }
  Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, total, buf);
  free(buf);
  if (!r) fail_msg("undecodable watch response of %zu bytes", total);
  int rc = fake_send(ctx, r);
  etcdserverpb__watch_response__free_unpacked(r, NULL);
  return rc;
}

static int fake_queued(void *ctx) {
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  int d = f->auto_depth ? f->queued : f->depth;
  pthread_mutex_unlock(&f->mu);
  return d;
}

static void fake_abort(void *ctx, const char *message) {
  (void)message;
  fake *f = ctx;
  pthread_mutex_lock(&f->mu);
  f->aborted = true;
  pthread_mutex_unlock(&f->mu);
}

static const watch_stream_ops fake_ops = {
    .send = fake_send, .send_parts = fake_send_parts, .queued = fake_queued, .abort = fake_abort};

fake *fake_open(watch_hub *hub) {
  fake *f = calloc(1, sizeof(*f));
  resp_log_init(&f->log);
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cond, NULL);
  f->capacity = -1;
  f->st = watch_stream_open(hub, &fake_ops, f);
  assert_non_null(f->st);
  return f;
}

void fake_close(fake *f) {
  watch_stream_release(f->st);
  resp_log_free(&f->log);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cond);
  free(f);
}

void set_capacity(fake *f, int cap) {
  pthread_mutex_lock(&f->mu);
  f->capacity = cap;
  pthread_mutex_unlock(&f->mu);
}

/* Fills the queue: nothing more is accepted until drained. */
void stall(fake *f) {
  pthread_mutex_lock(&f->mu);
  f->capacity = f->queued;
  pthread_mutex_unlock(&f->mu);
}

void set_depth(fake *f, int depth) {
  pthread_mutex_lock(&f->mu);
  f->depth = depth;
  pthread_mutex_unlock(&f->mu);
}

void set_block(fake *f, bool block) {
  pthread_mutex_lock(&f->mu);
  f->block = block;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->mu);
}

/* Waits until a send is stuck in f (the fan-out thread, holding the hub's
 * lock). */
void wait_stuck(fake *f) {
  pthread_mutex_lock(&f->mu);
  while (!f->in_send) pthread_cond_wait(&f->cond, &f->mu);
  pthread_mutex_unlock(&f->mu);
}

bool wait_stuck_ms(fake *f, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000;
  if (ts.tv_nsec >= 1000000000) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000;
  }
  pthread_mutex_lock(&f->mu);
  int rc = 0;
  while (!f->in_send && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&f->cond, &f->mu, &ts);
  bool stuck = f->in_send;
  pthread_mutex_unlock(&f->mu);
  return stuck;
}

void set_fail(fake *f, int rc) {
  pthread_mutex_lock(&f->mu);
  f->fail_rc = rc;
  pthread_mutex_unlock(&f->mu);
}

/* The client took everything queued; the transport reports room. */
void drain(fake *f) {
  pthread_mutex_lock(&f->mu);
  f->queued = 0;
  pthread_mutex_unlock(&f->mu);
  watch_stream_writable(f->st);
}

/* ------------------------------------------------------------------ requests */

void wcreate(fake *f, copts o) {
  Etcdserverpb__WatchCreateRequest c = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
  static uint8_t zero = 0;
  c.key.data = (uint8_t *)o.key;
  c.key.len = o.key ? strlen(o.key) : 0;
  if (o.from_key) {
    c.range_end.data = &zero;
    c.range_end.len = 1;
  } else if (o.end) {
    c.range_end.data = (uint8_t *)o.end;
    c.range_end.len = strlen(o.end);
  }
  c.start_revision = o.start;
  c.watch_id = o.id;
  c.prev_kv = o.prev_kv;
  c.fragment = o.fragment;
  c.progress_notify = o.progress;
  Etcdserverpb__WatchCreateRequest__FilterType filters[2];
  if (o.noput) filters[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT;
  if (o.nodelete)
    filters[c.n_filters++] = ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE;
  c.filters = filters;
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  r.create_request = &c;
  watch_stream_request(f->st, &r);
}

void wcancel(fake *f, int64_t id) {
  Etcdserverpb__WatchCancelRequest c = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
  c.watch_id = id;
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
  r.cancel_request = &c;
  watch_stream_request(f->st, &r);
}

void wprogress(fake *f) {
  Etcdserverpb__WatchProgressRequest p = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
  Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
  r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
  r.progress_request = &p;
  watch_stream_request(f->st, &r);
}

Etcdserverpb__WatchResponse *next(fake *f, size_t *i) {
  Etcdserverpb__WatchResponse *r = resp_log_get(&f->log, *i, T);
  if (!r) fail_msg("no response #%zu", *i);
  (*i)++;
  return r;
}

bool is_progress(const Etcdserverpb__WatchResponse *r) {
  return r->watch_id == -1 && !r->created && !r->canceled && r->n_events == 0;
}

/* ------------------------------------------------------------------ fixture */

fx *fx_open(const watch_hub_options *o) {
  fx *x = calloc(1, sizeof(*x));
  test_store_open(&x->ts);
  keel_error err = {0};
  x->hub = watch_hub_create(x->ts.s, o, &err);
  if (!x->hub) fail_msg("hub: %s", err.message);
  return x;
}

void fx_close(fx *x) {
  watch_hub_stop(x->hub);
  test_store_close(&x->ts);
  watch_hub_destroy(x->hub);
  free(x);
}

watch_hub_stats stats(fx *x) {
  watch_hub_stats s;
  watch_hub_get_stats(x->hub, &s);
  return s;
}

/* Waits until the fan-out thread has handed every published revision to the
 * watchers (writes return once durable, before their fan-out). */
void settle(fx *x) {
  int64_t rev = trev(x->ts.s);
  for (int k = 0; k < 5000; k++) {
    watch_hub_stats s = stats(x);
    if (s.revision >= rev && s.pending == 0) return;
    usleep(1000);
  }
  fail_msg("fan-out did not reach revision %lld", (long long)rev);
}

/* Events for watch_id from response *i on: their values must be want[0..n),
 * in order; with prev_step, each prev_kv must hold the value prev_step before
 * (none for the first prev_step). */
void expect_values(fake *f, size_t *i, int64_t watch_id, const int *want, int n,
                          int prev_step) {
  int k = 0;
  while (k < n) {
    Etcdserverpb__WatchResponse *m = next(f, i);
    if (m->watch_id != watch_id) continue;
    for (size_t e = 0; e < m->n_events; e++, k++) {
      char v[16];
      if (k >= n) fail_msg("watcher %lld: more than %d events", (long long)watch_id, n);
      snprintf(v, sizeof(v), "%d", want[k]);
      if (!value_is(m->events[e]->kv, v))
        fail_msg("watcher %lld, event %d: want %s, got %.*s", (long long)watch_id, k, v,
                 (int)m->events[e]->kv->value.len, m->events[e]->kv->value.data);
      if (prev_step) {
        if (want[k] < prev_step) {
          assert_null(m->events[e]->prev_kv);
        } else {
          snprintf(v, sizeof(v), "%d", want[k] - prev_step);
          assert_non_null(m->events[e]->prev_kv);
          assert_true(value_is(m->events[e]->prev_kv, v));
        }
      }
    }
  }
}
