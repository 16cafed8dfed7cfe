/* common/sched/sched_test.c — tests for sched.h: timer order, cancel and drop,
 * shutdown semantics, re-entrant submits, parallelism, and many submitters.
 * Waits are bounded (generous, for sanitizer builds) so a bug fails, not hangs. */
#define _GNU_SOURCE
#include "common/sched/sched.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#define WAIT_MS 10000

/* cmocka's assert_* longjmps, which is only safe on the test's own thread; code
 * running on pool or helper threads counts failures here instead, and each
 * test's teardown fails the test if any were counted. */
static int g_thread_failures;
#define THREAD_CHECK(cond)                                                  \
  do {                                                                      \
    if (!(cond)) __atomic_add_fetch(&g_thread_failures, 1, __ATOMIC_SEQ_CST); \
  } while (0)

static int check_threads(void **state) {
  (void)state;
  int n = __atomic_exchange_n(&g_thread_failures, 0, __ATOMIC_SEQ_CST);
  if (n) fprintf(stderr, "%d check(s) failed on pool threads\n", n);
  return n ? -1 : 0;
}

/* A counter threads can wait on. */
typedef struct counter {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int n;
} counter;

static void counter_init(counter *c) {
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cv, NULL);
  c->n = 0;
}

static void counter_destroy(counter *c) {
  pthread_cond_destroy(&c->cv);
  pthread_mutex_destroy(&c->mu);
}

static void counter_add(counter *c) {
  pthread_mutex_lock(&c->mu);
  c->n++;
  pthread_cond_broadcast(&c->cv);
  pthread_mutex_unlock(&c->mu);
}

static int counter_get(counter *c) {
  pthread_mutex_lock(&c->mu);
  int n = c->n;
  pthread_mutex_unlock(&c->mu);
  return n;
}

/* Waits until the count reaches want; false on timeout. */
static bool counter_wait(counter *c, int want, int timeout_ms) {
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
  if (deadline.tv_nsec >= 1000000000L) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  while (c->n < want && rc == 0) rc = pthread_cond_timedwait(&c->cv, &c->mu, &deadline);
  bool ok = c->n >= want;
  pthread_mutex_unlock(&c->mu);
  return ok;
}

static void count_fn(void *arg) {
  counter_add(arg);
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* ---- order ------------------------------------------------------------------ */

typedef struct order_log {
  pthread_mutex_t mu;
  int seen[1000];
  int n;
  counter done;
  counter dropped;
} order_log;

typedef struct order_item {
  order_log *log;
  int tag;
  int64_t not_before; /* earliest CLOCK_MONOTONIC ms the task may run */
  int64_t ran_at;
} order_item;

static void order_fn(void *arg) {
  order_item *it = arg;
  it->ran_at = sched_now_ms();
  pthread_mutex_lock(&it->log->mu);
  it->log->seen[it->log->n++] = it->tag;
  pthread_mutex_unlock(&it->log->mu);
  counter_add(&it->log->done);
}

static void order_log_init(order_log *l) {
  memset(l, 0, sizeof(*l));
  pthread_mutex_init(&l->mu, NULL);
  counter_init(&l->done);
  counter_init(&l->dropped);
}

static void order_log_destroy(order_log *l) {
  counter_destroy(&l->done);
  counter_destroy(&l->dropped);
  pthread_mutex_destroy(&l->mu);
}

/* Timers fire by due time, never early, whatever order they were added in. */
static void test_timers_fire_in_due_order(void **state) {
  (void)state;
  sched *s = sched_create(1, "order");
  assert_non_null(s);
  order_log log;
  order_log_init(&log);
  static const int delays[] = {120, 40, 80, 0, 160, 20};
  order_item items[6];
  int64_t start = sched_now_ms();
  for (int i = 0; i < 6; i++) {
    items[i] = (order_item){&log, delays[i], start + delays[i], 0};
    assert_int_not_equal(sched_after(s, delays[i], order_fn, NULL, &items[i]), 0);
  }
  assert_true(counter_wait(&log.done, 6, WAIT_MS));
  const int want[] = {0, 20, 40, 80, 120, 160};
  for (int i = 0; i < 6; i++) assert_int_equal(log.seen[i], want[i]);
  for (int i = 0; i < 6; i++) assert_true(items[i].ran_at >= items[i].not_before);
  sched_destroy(s);
  order_log_destroy(&log);
}

static void gate_fn(void *arg) {
  counter *gate = arg;
  THREAD_CHECK(counter_wait(gate, 1, WAIT_MS));
}

/* Equal due times run in submission order, submits and zero-delay timers alike. */
static void test_fifo_among_due_tasks(void **state) {
  (void)state;
  sched *s = sched_create(1, "fifo");
  assert_non_null(s);
  counter gate;
  counter_init(&gate);
  order_log log;
  order_log_init(&log);
  order_item items[200];
  assert_int_equal(sched_submit(s, gate_fn, &gate), 0); /* holds the only worker */
  for (int i = 0; i < 200; i++) {
    items[i] = (order_item){&log, i, 0, 0};
    if (i % 3 == 0)
      assert_int_not_equal(sched_after(s, 0, order_fn, NULL, &items[i]), 0);
    else
      assert_int_equal(sched_submit(s, order_fn, &items[i]), 0);
  }
  counter_add(&gate);
  assert_true(counter_wait(&log.done, 200, WAIT_MS));
  for (int i = 0; i < 200; i++) assert_int_equal(log.seen[i], i);
  sched_destroy(s);
  order_log_destroy(&log);
  counter_destroy(&gate);
}

/* ---- cancel ----------------------------------------------------------------- */

typedef struct probe {
  counter ran;
  counter dropped;
} probe;

static void probe_init(probe *p) {
  counter_init(&p->ran);
  counter_init(&p->dropped);
}

static void probe_destroy(probe *p) {
  counter_destroy(&p->ran);
  counter_destroy(&p->dropped);
}

static void probe_run(void *arg) {
  counter_add(&((probe *)arg)->ran);
}

static void probe_drop(void *arg) {
  counter_add(&((probe *)arg)->dropped);
}

static void test_cancel_before_run_drops(void **state) {
  (void)state;
  sched *s = sched_create(2, "cancel");
  assert_non_null(s);
  probe p;
  probe_init(&p);
  sched_timer_id id = sched_after(s, 200, probe_run, probe_drop, &p);
  assert_int_not_equal(id, 0);
  assert_true(sched_cancel(s, id));
  assert_int_equal(counter_get(&p.dropped), 1); /* synchronously, on this thread */
  assert_false(sched_cancel(s, id));            /* only once */
  sleep_ms(400);
  assert_int_equal(counter_get(&p.ran), 0); /* a canceled timer never runs */
  assert_int_equal(counter_get(&p.dropped), 1);

  /* Canceling a timer without a drop callback just removes it. */
  id = sched_after(s, 200, probe_run, NULL, &p);
  assert_true(sched_cancel(s, id));
  sched_destroy(s);
  assert_int_equal(counter_get(&p.ran), 0);
  probe_destroy(&p);
}

static void test_cancel_after_run_is_false(void **state) {
  (void)state;
  sched *s = sched_create(1, "cancel");
  assert_non_null(s);
  probe p;
  probe_init(&p);
  sched_timer_id id = sched_after(s, 0, probe_run, probe_drop, &p);
  assert_true(counter_wait(&p.ran, 1, WAIT_MS));
  assert_false(sched_cancel(s, id));
  assert_int_equal(counter_get(&p.dropped), 0);
  assert_false(sched_cancel(s, 0));
  assert_false(sched_cancel(s, id + 1000)); /* never issued */
  assert_false(sched_cancel(NULL, id));
  sched_destroy(s);
  probe_destroy(&p);
}

typedef struct blocker {
  counter started;
  counter release;
} blocker;

static void blocker_fn(void *arg) {
  blocker *b = arg;
  counter_add(&b->started);
  THREAD_CHECK(counter_wait(&b->release, 1, WAIT_MS));
}

static void blocker_drop(void *arg) {
  (void)arg;
  THREAD_CHECK(!"drop called for a running task");
}

static void test_cancel_while_running_is_false(void **state) {
  (void)state;
  sched *s = sched_create(1, "cancel");
  assert_non_null(s);
  blocker b;
  counter_init(&b.started);
  counter_init(&b.release);
  sched_timer_id id = sched_after(s, 0, blocker_fn, blocker_drop, &b);
  assert_true(counter_wait(&b.started, 1, WAIT_MS));
  assert_false(sched_cancel(s, id));
  counter_add(&b.release);
  sched_destroy(s);
  counter_destroy(&b.started);
  counter_destroy(&b.release);
}

/* Many timers canceled in random order: exercises heap removal from the middle
 * and index growth; the survivors still fire in due order. */
static void order_drop(void *arg) {
  counter_add(&((order_item *)arg)->log->dropped);
}

static void test_cancel_many(void **state) {
  (void)state;
  enum { N = 1000 };
  sched *s = sched_create(1, "cancel-many");
  assert_non_null(s);
  order_log log;
  order_log_init(&log);
  static order_item items[N];
  static sched_timer_id ids[N];
  int64_t start = sched_now_ms();
  for (int i = 0; i < N; i++) {
    /* Later timers are due sooner: heap order opposes insertion order. Kept
     * timers (every 8th) are 8 ms apart, so their order is unambiguous. */
    items[i] = (order_item){&log, i, start + 300 + (N - i), 0};
    ids[i] = sched_after(s, 300 + (N - i), order_fn, order_drop, &items[i]);
    assert_int_not_equal(ids[i], 0);
  }
  static int victims[N];
  int nvictims = 0;
  for (int i = 0; i < N; i++)
    if (i % 8 != 0) victims[nvictims++] = i;
  unsigned seed = 7;
  for (int i = nvictims - 1; i > 0; i--) {
    int j = (int)(rand_r(&seed) % (unsigned)(i + 1));
    int t = victims[i];
    victims[i] = victims[j];
    victims[j] = t;
  }
  for (int i = 0; i < nvictims; i++) assert_true(sched_cancel(s, ids[victims[i]]));
  assert_int_equal(counter_get(&log.dropped), nvictims);

  int kept = N - nvictims;
  assert_true(counter_wait(&log.done, kept, WAIT_MS));
  for (int k = 0; k < kept; k++) {
    int tag = log.seen[k];
    assert_int_equal(tag, (kept - 1 - k) * 8);
    assert_true(items[tag].ran_at >= items[tag].not_before);
  }
  sched_destroy(s);
  assert_int_equal(counter_get(&log.dropped), nvictims);
  order_log_destroy(&log);
}

/* ---- shutdown --------------------------------------------------------------- */

static void slow_fn(void *arg) {
  sleep_ms(100);
  counter_add(arg);
}

/* Everything due when destroy begins runs; everything later is dropped. */
static void test_destroy_runs_due_and_drops_pending(void **state) {
  (void)state;
  sched *s = sched_create(1, "destroy");
  assert_non_null(s);
  counter ran;
  counter_init(&ran);
  probe later;
  probe_init(&later);
  assert_int_equal(sched_submit(s, slow_fn, &ran), 0); /* keeps the queue backed up */
  for (int i = 0; i < 100; i++) assert_int_equal(sched_submit(s, count_fn, &ran), 0);
  for (int i = 0; i < 5; i++) assert_int_not_equal(sched_after(s, 0, count_fn, NULL, &ran), 0);
  for (int i = 0; i < 7; i++)
    assert_int_not_equal(sched_after(s, 60000, probe_run, probe_drop, &later), 0);
  assert_int_not_equal(sched_after(s, 60000, probe_run, NULL, &later), 0); /* no drop: fine */
  sched_destroy(s);
  assert_int_equal(counter_get(&ran), 106);
  assert_int_equal(counter_get(&later.ran), 0);
  assert_int_equal(counter_get(&later.dropped), 7);
  counter_destroy(&ran);
  probe_destroy(&later);
}

typedef struct reentry {
  sched *s;
  int submit_rc;
  sched_timer_id after_id;
  bool cancel_other;
  sched_timer_id other;
  probe other_probe;
} reentry;

/* Runs during destroy: new work is refused, canceling a pending timer works. */
static void reentry_drop(void *arg) {
  reentry *r = arg;
  r->submit_rc = sched_submit(r->s, count_fn, NULL);
  r->after_id = sched_after(r->s, 0, count_fn, NULL, NULL);
  r->cancel_other = sched_cancel(r->s, r->other);
}

static void test_destroy_refuses_new_work(void **state) {
  (void)state;
  reentry r = {0};
  probe_init(&r.other_probe);
  r.s = sched_create(2, "refuse");
  assert_non_null(r.s);
  /* Due first, so its drop runs while the other is still pending. */
  assert_int_not_equal(sched_after(r.s, 50000, count_fn, reentry_drop, &r), 0);
  r.other = sched_after(r.s, 60000, probe_run, probe_drop, &r.other_probe);
  assert_int_not_equal(r.other, 0);
  sched_destroy(r.s);
  assert_int_equal(r.submit_rc, -ESHUTDOWN);
  assert_int_equal(r.after_id, 0);
  assert_true(r.cancel_other);
  assert_int_equal(counter_get(&r.other_probe.dropped), 1); /* exactly once */
  assert_int_equal(counter_get(&r.other_probe.ran), 0);
  probe_destroy(&r.other_probe);
}

/* ---- submitting from tasks and threads -------------------------------------- */

typedef struct chain {
  sched *s;
  int remaining;
  counter done;
} chain;

static void chain_fn(void *arg) {
  chain *c = arg;
  if (--c->remaining > 0) {
    THREAD_CHECK(sched_submit(c->s, chain_fn, c) == 0);
  } else {
    counter_add(&c->done);
  }
}

/* Tasks submit their successors; one at a time, so no lock is needed on c. */
static void test_submit_from_task(void **state) {
  (void)state;
  chain c = {.remaining = 1000};
  counter_init(&c.done);
  c.s = sched_create(3, "chain");
  assert_non_null(c.s);
  assert_int_equal(sched_submit(c.s, chain_fn, &c), 0);
  assert_true(counter_wait(&c.done, 1, WAIT_MS));
  assert_int_equal(c.remaining, 0);
  sched_destroy(c.s);
  counter_destroy(&c.done);
}

typedef struct rendezvous {
  counter arrived;
  int parties;
  counter met;
} rendezvous;

static void rendezvous_fn(void *arg) {
  rendezvous *r = arg;
  counter_add(&r->arrived);
  if (counter_wait(&r->arrived, r->parties, WAIT_MS)) counter_add(&r->met);
}

/* N tasks that each wait for all N to start can only finish on N threads at
 * once: checks that a busy worker hands queued work to idle ones. */
static void test_workers_run_in_parallel(void **state) {
  (void)state;
  enum { THREADS = 4 };
  rendezvous r = {.parties = THREADS};
  counter_init(&r.arrived);
  counter_init(&r.met);
  sched *s = sched_create(THREADS, "parallel");
  assert_non_null(s);
  for (int i = 0; i < THREADS; i++) assert_int_equal(sched_submit(s, rendezvous_fn, &r), 0);
  assert_true(counter_wait(&r.met, THREADS, WAIT_MS));
  sched_destroy(s);
  counter_destroy(&r.arrived);
  counter_destroy(&r.met);
}

typedef struct hammer {
  sched *s;
  probe p;
  counter submitted; /* tasks and timers that must end in run or drop */
} hammer;

enum { HAMMER_THREADS = 8, HAMMER_EACH = 2000 };

static void *hammer_main(void *arg) {
  hammer *h = arg;
  for (int i = 0; i < HAMMER_EACH; i++) {
    if (i % 4 == 0) {
      sched_timer_id id = sched_after(h->s, i % 7, probe_run, probe_drop, &h->p);
      THREAD_CHECK(id != 0);
      counter_add(&h->submitted);
      if (i % 8 == 0) sched_cancel(h->s, id); /* may win or lose the race */
    } else {
      THREAD_CHECK(sched_submit(h->s, probe_run, &h->p) == 0);
      counter_add(&h->submitted);
    }
  }
  return NULL;
}

/* Many threads submit, schedule and cancel at once: every task ends exactly
 * once, either run or dropped. */
static void test_concurrent_submitters(void **state) {
  (void)state;
  hammer h;
  probe_init(&h.p);
  counter_init(&h.submitted);
  h.s = sched_create(4, "hammer");
  assert_non_null(h.s);
  pthread_t th[HAMMER_THREADS];
  for (int i = 0; i < HAMMER_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h), 0);
  for (int i = 0; i < HAMMER_THREADS; i++) pthread_join(th[i], NULL);
  int total = counter_get(&h.submitted);
  assert_int_equal(total, HAMMER_THREADS * HAMMER_EACH);
  /* Timers are at most 6 ms out; wait until everything not dropped has run. */
  for (int64_t end = sched_now_ms() + WAIT_MS; sched_now_ms() < end;) {
    if (counter_get(&h.p.ran) + counter_get(&h.p.dropped) == total) break;
    sleep_ms(5);
  }
  sched_destroy(h.s);
  assert_int_equal(counter_get(&h.p.ran) + counter_get(&h.p.dropped), total);
  assert_true(counter_get(&h.p.dropped) <= HAMMER_THREADS * HAMMER_EACH / 8);
  probe_destroy(&h.p);
  counter_destroy(&h.submitted);
}

/* ---- small things ----------------------------------------------------------- */

static void test_create_and_clock(void **state) {
  (void)state;
  errno = 0;
  assert_null(sched_create(0, "x"));
  assert_int_equal(errno, EINVAL);
  assert_null(sched_create(-3, "x"));
  sched_destroy(NULL);

  /* An idle pool with a long name and no work shuts down cleanly. */
  sched *s = sched_create(12, "a-rather-long-pool-name");
  assert_non_null(s);
  sched_destroy(s);

  int64_t a = sched_now_ms();
  sleep_ms(20);
  int64_t b = sched_now_ms();
  assert_true(b - a >= 20);
  assert_true(b - a < 5000);
}

/* A negative delay means now; a huge one never overflows the due time. */
static void test_delay_edges(void **state) {
  (void)state;
  sched *s = sched_create(1, "edges");
  assert_non_null(s);
  probe p;
  probe_init(&p);
  assert_int_not_equal(sched_after(s, -5, probe_run, probe_drop, &p), 0);
  assert_true(counter_wait(&p.ran, 1, WAIT_MS));
  sched_timer_id far = sched_after(s, INT64_MAX, probe_run, probe_drop, &p);
  assert_int_not_equal(far, 0);
  sleep_ms(20);
  assert_int_equal(counter_get(&p.ran), 1);
  sched_destroy(s); /* far is dropped */
  assert_int_equal(counter_get(&p.dropped), 1);
  probe_destroy(&p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_timers_fire_in_due_order, check_threads),
      cmocka_unit_test_teardown(test_fifo_among_due_tasks, check_threads),
      cmocka_unit_test_teardown(test_cancel_before_run_drops, check_threads),
      cmocka_unit_test_teardown(test_cancel_after_run_is_false, check_threads),
      cmocka_unit_test_teardown(test_cancel_while_running_is_false, check_threads),
      cmocka_unit_test_teardown(test_cancel_many, check_threads),
      cmocka_unit_test_teardown(test_destroy_runs_due_and_drops_pending, check_threads),
      cmocka_unit_test_teardown(test_destroy_refuses_new_work, check_threads),
      cmocka_unit_test_teardown(test_submit_from_task, check_threads),
      cmocka_unit_test_teardown(test_workers_run_in_parallel, check_threads),
      cmocka_unit_test_teardown(test_concurrent_submitters, check_threads),
      cmocka_unit_test_teardown(test_create_and_clock, check_threads),
      cmocka_unit_test_teardown(test_delay_edges, check_threads),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
