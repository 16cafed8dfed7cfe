/* Tests of the sender pool (watch_senders.c) through the hub, with the fake
 * transport: a round's sends really run on several threads at once; with
 * them, every watcher still gets every event exactly once and in order
 * through full queues (history), held-back events and grouped revisions;
 * streams whose transport fails or that close during a round, and a hub
 * stopped during one, leave everything consistent. The pool's minimum is
 * lowered to 2 streams, so that every round that can be parallel is. */
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
#include <unistd.h>

#include <cmocka.h>

#include "services/store/watch/watch_fake.h"
#include "services/store/watch/watch_hub.h"
#include "services/store/watch/watch_internal.h"
#include "services/store/watch/watch_testutil.h"

enum { NS = 32 }; /* streams */

static fx *open_hub(int threads) {
  watch_hub_options o = {.sender_threads = threads};
  fx *x = fx_open(&o);
  pthread_mutex_lock(&x->hub->mu); /* the fan-out thread reads it under the lock */
  x->hub->senders.min_streams = 2;
  pthread_mutex_unlock(&x->hub->mu);
  return x;
}

/* One watcher on "p/" per stream, created and confirmed. */
static void open_streams(fx *x, fake **f, int n) {
  for (int s = 0; s < n; s++) {
    f[s] = fake_open(x->hub);
    wcreate(f[s], (copts){.key = "p/", .end = "p0"});
    size_t i = 0;
    assert_true(next(f[s], &i)->created);
  }
}

static int ival(const Mvccpb__KeyValue *kv) {
  char b[16];
  size_t n = kv->value.len < sizeof(b) - 1 ? kv->value.len : sizeof(b) - 1;
  memcpy(b, kv->value.data, n);
  b[n] = 0;
  return atoi(b);
}

/* The values of watch_id's events in f's log, in order, from response *i
 * up to a progress response (which it waits for). */
static int collect_until_progress(fake *f, int64_t watch_id, int *out, int cap) {
  int n = 0;
  for (size_t i = 0;;) {
    Etcdserverpb__WatchResponse *m = next(f, &i);
    if (is_progress(m)) return n;
    if (m->watch_id != watch_id) continue;
    for (size_t e = 0; e < m->n_events; e++) {
      if (n == cap) fail_msg("watcher %lld: more than %d events", (long long)watch_id, cap);
      out[n++] = ival(m->events[e]->kv);
    }
  }
}

/* Values must be exactly 0..n-1 (step 1) or want[] when given. */
static void expect_exactly(const int *got, int ngot, const int *want, int nwant, const char *what) {
  if (ngot != nwant) fail_msg("%s: %d events, want %d", what, ngot, nwant);
  for (int k = 0; k < nwant; k++)
    if (got[k] != want[k]) fail_msg("%s: event %d is %d, want %d", what, k, got[k], want[k]);
}

static void put_int(store *s, const char *key, int v) {
  char b[16];
  snprintf(b, sizeof(b), "%d", v);
  tput(s, key, b);
}

/* ------------------------------------------------------------------ tests */

/* Two streams whose transports get stuck inside a send are both stuck at once:
 * only possible if the round's sends run on more than one thread. The rest of
 * the round, and the next revisions, still reach everyone once, in order. */
static void test_round_sends_on_several_threads(void **state) {
  (void)state;
  fx *x = open_hub(4);
  fake *f[NS];
  open_streams(x, f, NS);
  set_block(f[3], true);
  set_block(f[20], true);
  put_int(x->ts.s, "p/a", 0);
  assert_true(wait_stuck_ms(f[3], T));
  assert_true(wait_stuck_ms(f[20], T)); /* a single sender would still be in f[3] */
  set_block(f[3], false);
  set_block(f[20], false);
  for (int v = 1; v < 5; v++) put_int(x->ts.s, "p/a", v);
  settle(x);
  const int want[5] = {0, 1, 2, 3, 4};
  for (int s = 0; s < NS; s++) {
    wprogress(f[s]);
    int got[8];
    int n = collect_until_progress(f[s], 0, got, 8);
    expect_exactly(got, n, want, 5, "stream");
  }
  for (int s = 0; s < NS; s++) fake_close(f[s]);
  fx_close(x);
}

/* With one sender thread nothing is sent concurrently: the second stuck
 * transport is only reached once the first is released. (The pool can be
 * switched off, and the test above can fail.) */
static void test_one_sender_sends_alone(void **state) {
  (void)state;
  fx *x = open_hub(1);
  fake *f[NS];
  open_streams(x, f, NS);
  set_block(f[3], true);
  set_block(f[20], true);
  put_int(x->ts.s, "p/a", 0);
  fake *first = NULL;
  for (int k = 0; k < T && !first; k++) {
    if (wait_stuck_ms(f[3], 0)) first = f[3];
    else if (wait_stuck_ms(f[20], 0)) first = f[20];
    else usleep(1000);
  }
  assert_non_null(first);
  fake *second = first == f[3] ? f[20] : f[3];
  /* Cannot happen with one sender however long it waits. */
  assert_false(wait_stuck_ms(second, 200));
  set_block(first, false);
  assert_true(wait_stuck_ms(second, T));
  set_block(second, false);
  settle(x);
  for (int s = 0; s < NS; s++) fake_close(f[s]);
  fx_close(x);
}

/* ---- order through every path, with the pool */

enum { OR_PUTS = 400 };

typedef struct or_world {
  fake *f[NS];
  atomic_bool stop;
  atomic_bool paused; /* no draining: queues fill and events are held back whatever the timing */
} or_world;

/* Streams 1 mod 4 have a queue of 3 and streams 2 mod 4 report their undrained
 * responses as backed up (events held back and coalesced): both drained every
 * millisecond, so their watchers keep crossing into history and back. */
static void *or_drainer(void *arg) {
  or_world *w = arg;
  while (!atomic_load(&w->stop)) {
    if (!atomic_load(&w->paused))
      for (int s = 0; s < NS; s++)
        if (s % 4 == 1 || s % 4 == 2) drain(w->f[s]);
    usleep(1000);
  }
  return NULL;
}

/* Every stream has a prefix watcher (id 1) and a prev_kv watcher of one key
 * (id 2); writes alternate between two keys, sometimes two per revision, while
 * streams fill up, hold back and drain. Each watcher gets exactly its events,
 * in order, prevs right: nothing lost or sent twice between the pool's rounds,
 * history and held-back events. */
static void test_parallel_rounds_keep_each_watchers_order(void **state) {
  (void)state;
  fx *x = open_hub(4);
  store *st = x->ts.s;
  or_world w = {0};
  for (int s = 0; s < NS; s++) {
    w.f[s] = fake_open(x->hub);
    if (s % 4 == 1) set_capacity(w.f[s], 3);
    if (s % 4 == 2) w.f[s]->auto_depth = true;
    wcreate(w.f[s], (copts){.key = "p/", .end = "p0", .id = 1});
    wcreate(w.f[s], (copts){.key = "p/k1", .id = 2, .prev_kv = true});
  }
  pthread_t td;
  assert_int_equal(pthread_create(&td, NULL, or_drainer, &w), 0);
  /* Value v goes to p/k(v % 2); every 5th revision writes v and v + 1 in one
   * txn. */
  int all[OR_PUTS], k1[OR_PUTS], nall = 0, nk1 = 0;
  for (int v = 0; v < OR_PUTS;) {
    /* Writes 100..149 meet undrained streams: history and held-back events
     * are used for sure, not only when the machine's timing allows. */
    atomic_store(&w.paused, v >= 100 && v < 150);
    char a[16], b[16];
    snprintf(a, sizeof(a), "%d", v);
    snprintf(b, sizeof(b), "%d", v + 1);
    if (v % 10 == 4 && v + 1 < OR_PUTS) {
      const char *keys[2] = {"p/k0", "p/k1"}, *vals[2] = {a, b};
      ttxn_puts(st, keys, vals, 2);
      all[nall++] = v;
      all[nall++] = v + 1;
      k1[nk1++] = v + 1;
      v += 2;
      continue;
    }
    tput(st, v % 2 ? "p/k1" : "p/k0", a);
    all[nall++] = v;
    if (v % 2) k1[nk1++] = v;
    v++;
  }
  settle(x);
  atomic_store(&w.stop, true);
  pthread_join(td, NULL);
  for (int s = 0; s < NS; s++) {
    set_capacity(w.f[s], -1);
    pthread_mutex_lock(&w.f[s]->mu);
    w.f[s]->auto_depth = false;
    pthread_mutex_unlock(&w.f[s]->mu);
    drain(w.f[s]);
  }
  int *got = malloc(2 * OR_PUTS * sizeof(*got));
  for (int s = 0; s < NS; s++) {
    wprogress(w.f[s]);
    char what[64];
    snprintf(what, sizeof(what), "stream %d, prefix watcher", s);
    int n = collect_until_progress(w.f[s], 1, got, 2 * OR_PUTS);
    expect_exactly(got, n, all, nall, what);
    snprintf(what, sizeof(what), "stream %d, key watcher", s);
    n = collect_until_progress(w.f[s], 2, got, 2 * OR_PUTS);
    expect_exactly(got, n, k1, nk1, what);
    /* prevs: the key's previous value, none for its first write */
    size_t i = 0;
    int seen = 0;
    for (;;) {
      Etcdserverpb__WatchResponse *m = next(w.f[s], &i);
      if (is_progress(m)) break;
      if (m->watch_id != 2) continue;
      for (size_t e = 0; e < m->n_events; e++, seen++) {
        const Mvccpb__KeyValue *prev = m->events[e]->prev_kv;
        if (seen == 0) {
          assert_null(prev);
          continue;
        }
        char pv[16];
        snprintf(pv, sizeof(pv), "%d", k1[seen - 1]);
        assert_non_null(prev);
        assert_true(value_is(prev, pv));
      }
    }
  }
  free(got);
  for (int s = 0; s < NS; s++) assert_false(w.f[s]->overlapped);
  watch_hub_stats hs = stats(x);
  assert_true(hs.fell_behind > 0); /* history was used */
  assert_true(hs.held_back > 0);   /* and held-back events */
  for (int s = 0; s < NS; s++) fake_close(w.f[s]);
  fx_close(x);
}

/* ---- streams failing or closing during a round; the hub stopping */

typedef struct closer {
  fake *f;
  atomic_bool done;
} closer;

static void *close_stream(void *arg) {
  closer *c = arg;
  fake_close(c->f); /* waits for the round: it holds the hub's lock */
  atomic_store(&c->done, true);
  return NULL;
}

/* While a round is stuck in one transport: another stream's transport fails
 * every send (a client gone), and a third stream is released. Once the round
 * ends, the released stream is gone, the failed one sent nothing and is not
 * retried in a loop, and every other watcher got every event once. */
static void test_streams_fail_and_close_during_a_round(void **state) {
  (void)state;
  fx *x = open_hub(4);
  fake *f[NS];
  open_streams(x, f, NS);
  set_fail(f[7], -ECANCELED);
  set_block(f[0], true);
  put_int(x->ts.s, "p/a", 0);
  assert_true(wait_stuck_ms(f[0], T));
  closer c = {.f = f[9]};
  pthread_t tc;
  assert_int_equal(pthread_create(&tc, NULL, close_stream, &c), 0);
  set_block(f[0], false);
  pthread_join(tc, NULL);
  assert_true(atomic_load(&c.done));
  f[9] = NULL;
  for (int v = 1; v < 10; v++) put_int(x->ts.s, "p/a", v);
  settle(x);
  const int want[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  for (int s = 0; s < NS; s++) {
    if (s == 7 || s == 9) continue;
    wprogress(f[s]);
    int got[16];
    int n = collect_until_progress(f[s], 0, got, 16);
    expect_exactly(got, n, want, 10, "stream");
  }
  watch_hub_stats hs = stats(x);
  assert_int_equal(hs.watchers, NS - 1);
  assert_int_equal(hs.unsynced, 1); /* f[7]'s: its stream blocked, waiting for writable */
  assert_int_equal(resp_log_count(&f[7]->log), 1); /* only created */
  for (int s = 0; s < NS; s++)
    if (f[s]) fake_close(f[s]);
  fx_close(x);
}

static void *stop_hub(void *arg) {
  watch_hub_stop(arg);
  return NULL;
}

/* watch_hub_stop during a round waits for it (a stuck transport holds it),
 * then stops the fan-out thread and the helpers: later writes reach nobody,
 * and streams released afterwards free everything (ASan checks). */
static void test_stop_during_a_round(void **state) {
  (void)state;
  fx *x = open_hub(4);
  fake *f[NS];
  open_streams(x, f, NS);
  set_block(f[5], true);
  put_int(x->ts.s, "p/a", 0);
  assert_true(wait_stuck_ms(f[5], T));
  pthread_t ts;
  assert_int_equal(pthread_create(&ts, NULL, stop_hub, x->hub), 0);
  set_block(f[5], false);
  pthread_join(ts, NULL);
  put_int(x->ts.s, "p/a", 1); /* the hub is stopped: ignored */
  for (int s = 0; s < NS; s++) {
    size_t n = resp_log_count(&f[s]->log);
    assert_int_equal(n, 2); /* created, then 0 */
    Etcdserverpb__WatchResponse *m = resp_log_get(&f[s]->log, 1, 0);
    assert_int_equal(m->n_events, 1);
    assert_true(value_is(m->events[0]->kv, "0"));
  }
  for (int s = 0; s < NS; s++) fake_close(f[s]);
  fx_close(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_sends_on_several_threads),
      cmocka_unit_test(test_one_sender_sends_alone),
      cmocka_unit_test(test_parallel_rounds_keep_each_watchers_order),
      cmocka_unit_test(test_streams_fail_and_close_during_a_round),
      cmocka_unit_test(test_stop_during_a_round),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
