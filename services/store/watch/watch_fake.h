/* services/store/watch/watch_fake.h — the hub tests' harness: a real store in
 * a temp dir with a hub on it (fx), and a fake transport (fake) whose queue
 * capacity, reported depth and sends the test controls; every response of
 * events is decoded from its wire bytes (prefix + shared ranges) as a client
 * would. Not thread-safe across one fake except where noted. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_FAKE_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/store/watch/watch_hub.h"
#include "services/store/watch/watch_testutil.h"

#define T 5000 /* ms to wait for an expected response */

typedef struct fake {
  resp_log log;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int capacity; /* -1: unlimited */
  int queued;
  int refused;
  bool aborted;
  bool block;      /* a transport stuck inside send (until unblocked) */
  int depth;       /* responses the transport says wait behind the one being written */
  bool auto_depth; /* ...or as many as were sent since the last drain */
  bool in_send;    /* a send is stuck there now */
  int fail_rc;     /* nonzero: every send fails with it (a transport gone) */
  int inside;      /* threads inside a send now */
  bool overlapped; /* two were at once: the hub sent on one stream from two threads */
  watch_stream *st;
} fake;

fake *fake_open(watch_hub *hub);
void fake_close(fake *f);
/* Responses the transport accepts before -ENOBUFS (-1: unlimited). */
void set_capacity(fake *f, int cap);
/* Fills the queue: nothing more is accepted until drained. */
void stall(fake *f);
/* What the transport reports as waiting behind the response being written. */
void set_depth(fake *f, int depth);
/* Sends block inside the transport until unblocked. */
void set_block(fake *f, bool block);
/* Waits until a send is stuck in f (the fan-out thread, holding the hub's
 * lock). */
void wait_stuck(fake *f);
/* The same, giving up after ms: false when no send got stuck. */
bool wait_stuck_ms(fake *f, int ms);
/* Every send fails with rc from now on (0: works again). */
void set_fail(fake *f, int rc);
/* The client took everything queued; the transport reports room. */
void drain(fake *f);

typedef struct copts {
  const char *key, *end;
  bool from_key;
  int64_t start, id;
  bool prev_kv, fragment, progress, noput, nodelete;
} copts;

void wcreate(fake *f, copts o);
void wcancel(fake *f, int64_t id);
void wprogress(fake *f);
/* Response *i (waiting up to T), then *i + 1. */
Etcdserverpb__WatchResponse *next(fake *f, size_t *i);
bool is_progress(const Etcdserverpb__WatchResponse *r);

typedef struct fx {
  test_store ts;
  watch_hub *hub;
} fx;

fx *fx_open(const watch_hub_options *o);
void fx_close(fx *x);
watch_hub_stats stats(fx *x);
/* Waits until the fan-out thread has handed every published revision to the
 * watchers (writes return once durable, before their fan-out). */
void settle(fx *x);
/* Events for watch_id from response *i on: their values must be want[0..n),
 * in order; with prev_step, each prev_kv must hold the value prev_step before
 * (none for the first prev_step). */
void expect_values(fake *f, size_t *i, int64_t watch_id, const int *want, int n, int prev_step);

#endif
