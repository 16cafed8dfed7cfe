/* common/client/workqueue_test.c — the work queue alone: dedup, exclusion,
 * delays and backoff (loose bounds), 8 workers under stress, shutdown. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/client/workqueue.h"

/* Sanitized builds run slower; upper bounds of timings scale with it. */
static int slow(void) { return getenv("KEEL_SANITIZED") ? 3 : 1; }

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static char *get_now(workqueue *q) {
  bool shut;
  return workqueue_get_timeout(q, 0, &shut);
}

static void test_dedup(void **state) {
  (void)state;
  workqueue *q = workqueue_new(NULL);
  workqueue_add(q, "default/a");
  workqueue_add(q, "default/b");
  workqueue_add(q, "default/a");
  assert_int_equal(workqueue_len(q), 2);
  char *k = get_now(q);
  assert_string_equal(k, "default/a"); /* FIFO */
  assert_int_equal(workqueue_in_flight(q), 1);
  /* Added while processing: remembered, not handed out again. */
  workqueue_add(q, "default/a");
  workqueue_add(q, "default/a");
  assert_int_equal(workqueue_len(q), 1);
  char *k2 = get_now(q);
  assert_string_equal(k2, "default/b");
  assert_null(get_now(q)); /* a is in process */
  workqueue_done(q, k);
  assert_int_equal(workqueue_len(q), 1); /* queued again, once */
  char *k3 = get_now(q);
  assert_string_equal(k3, "default/a");
  workqueue_done(q, k3);
  workqueue_done(q, k2);
  assert_int_equal(workqueue_len(q), 0);
  assert_int_equal(workqueue_in_flight(q), 0);
  assert_null(get_now(q));
  free(k);
  free(k2);
  free(k3);
  workqueue_free(q);
}

static void test_add_after(void **state) {
  (void)state;
  workqueue *q = workqueue_new(NULL);
  int64_t t0 = now_ms();
  workqueue_add_after(q, "late", 300);
  workqueue_add_after(q, "early", 100);
  workqueue_add_after(q, "late", 1000); /* the earlier due time stays */
  assert_int_equal(workqueue_len(q), 0);
  assert_null(get_now(q));
  char *k = workqueue_get(q);
  int64_t t1 = now_ms() - t0;
  assert_string_equal(k, "early");
  assert_true(t1 >= 95 && t1 < 100 + 400 * slow());
  workqueue_done(q, k);
  free(k);
  k = workqueue_get(q);
  int64_t t2 = now_ms() - t0;
  assert_string_equal(k, "late");
  assert_true(t2 >= 295 && t2 < 300 + 400 * slow());
  workqueue_done(q, k);
  free(k);
  /* A delayed key that is also added now is handed out now, once. */
  workqueue_add_after(q, "x", 200);
  workqueue_add(q, "x");
  k = get_now(q);
  assert_string_equal(k, "x");
  workqueue_done(q, k);
  free(k);
  sleep_ms(250);
  k = get_now(q); /* the delayed add arrives too: a second processing, by design */
  assert_string_equal(k, "x");
  workqueue_done(q, k);
  free(k);
  assert_null(get_now(q));
  workqueue_free(q);
}

static void test_backoff(void **state) {
  (void)state;
  workqueue_options o = {.base_delay_ms = 20, .max_delay_ms = 160};
  workqueue *q = workqueue_new(&o);
  const int64_t want[] = {20, 40, 80, 160, 160};
  for (int i = 0; i < 5; i++) {
    assert_int_equal(workqueue_next_delay_ms(q, "k"), want[i]);
    int64_t t0 = now_ms();
    workqueue_add_rate_limited(q, "k");
    assert_int_equal(workqueue_num_requeues(q, "k"), i + 1);
    char *k = workqueue_get(q);
    int64_t dt = now_ms() - t0;
    assert_string_equal(k, "k");
    if (dt < want[i] - 5 || dt > want[i] + 300 * slow()) fail_msg("backoff %d: waited %lld ms, want %lld", i, (long long)dt, (long long)want[i]);
    workqueue_done(q, k);
    free(k);
  }
  /* Other keys have their own count. */
  assert_int_equal(workqueue_num_requeues(q, "other"), 0);
  assert_int_equal(workqueue_next_delay_ms(q, "other"), 20);
  workqueue_forget(q, "k");
  assert_int_equal(workqueue_num_requeues(q, "k"), 0);
  assert_int_equal(workqueue_next_delay_ms(q, "k"), 20);
  int64_t t0 = now_ms();
  workqueue_add_rate_limited(q, "k");
  char *k = workqueue_get(q);
  int64_t dt = now_ms() - t0;
  assert_true(dt >= 15 && dt < 20 + 300 * slow());
  workqueue_done(q, k);
  free(k);
  workqueue_free(q);
}

/* ------------------------------------------------------------------ stress */

#define NKEYS 32
#define NPRODUCERS 4
#define ADDS_PER_PRODUCER 20000

typedef struct stress {
  workqueue *q;
  atomic_int busy[NKEYS];     /* workers inside sync for the key: must stay <= 1 */
  atomic_long gen[NKEYS];     /* bumped before every add */
  atomic_long seen[NKEYS];    /* gen read at the start of the key's latest sync */
  atomic_long syncs;
  atomic_int violations;
  atomic_int failures_left;   /* some syncs fail, exercising the rate-limited path */
} stress;

static int key_index(const char *key) { return atoi(key + 1); }

static int stress_sync(const char *key, void *arg) {
  stress *s = arg;
  int i = key_index(key);
  if (atomic_fetch_add(&s->busy[i], 1) != 0) atomic_fetch_add(&s->violations, 1);
  atomic_store(&s->seen[i], atomic_load(&s->gen[i]));
  atomic_fetch_add(&s->syncs, 1);
  if (rand() % 4 == 0) usleep((useconds_t)(rand() % 200));
  int rc = 0;
  if (atomic_load(&s->failures_left) > 0 && rand() % 50 == 0 && atomic_fetch_sub(&s->failures_left, 1) > 0) rc = -1;
  atomic_fetch_sub(&s->busy[i], 1);
  return rc;
}

static void *producer(void *arg) {
  stress *s = arg;
  unsigned seed = (unsigned)(uintptr_t)pthread_self();
  char key[16];
  for (int n = 0; n < ADDS_PER_PRODUCER; n++) {
    int i = (int)(rand_r(&seed) % NKEYS);
    snprintf(key, sizeof key, "k%d", i);
    atomic_fetch_add(&s->gen[i], 1);
    workqueue_add(s->q, key);
    if (n % 1000 == 0) usleep(100);
  }
  return NULL;
}

typedef struct runner {
  stress *s;
  int rc;
} runner;

static void *run_workers(void *arg) {
  runner *r = arg;
  r->rc = workqueue_run(r->s->q, 8, stress_sync, r->s);
  return NULL;
}

static void test_stress_exclusion(void **state) {
  (void)state;
  srand(42);
  stress *s = calloc(1, sizeof(*s));
  workqueue_options o = {.base_delay_ms = 1, .max_delay_ms = 8};
  s->q = workqueue_new(&o);
  atomic_store(&s->failures_left, 200);
  runner r = {.s = s};
  pthread_t rt, pt[NPRODUCERS];
  assert_int_equal(pthread_create(&rt, NULL, run_workers, &r), 0);
  for (int i = 0; i < NPRODUCERS; i++) assert_int_equal(pthread_create(&pt[i], NULL, producer, s), 0);
  for (int i = 0; i < NPRODUCERS; i++) pthread_join(pt[i], NULL);
  /* Every key must be processed after its last add: wait for that. */
  int64_t deadline = now_ms() + 20000;
  bool caught_up = false;
  while (!caught_up && now_ms() < deadline) {
    caught_up = workqueue_len(s->q) == 0 && workqueue_in_flight(s->q) == 0;
    for (int i = 0; caught_up && i < NKEYS; i++)
      if (atomic_load(&s->seen[i]) != atomic_load(&s->gen[i])) caught_up = false;
    if (!caught_up) sleep_ms(10);
  }
  workqueue_shutdown(s->q);
  pthread_join(rt, NULL);
  assert_int_equal(r.rc, 0);
  assert_int_equal(atomic_load(&s->violations), 0);
  for (int i = 0; i < NKEYS; i++)
    if (atomic_load(&s->seen[i]) != atomic_load(&s->gen[i]))
      fail_msg("key k%d: last add (gen %ld) never processed (saw gen %ld)", i, atomic_load(&s->gen[i]), atomic_load(&s->seen[i]));
  long syncs = atomic_load(&s->syncs);
  /* Dedup: far fewer syncs than adds, and at least one per key. */
  assert_true(syncs >= NKEYS && syncs < NPRODUCERS * ADDS_PER_PRODUCER);
  print_message("stress: %d adds -> %ld syncs, 0 concurrent syncs of a key\n", NPRODUCERS * ADDS_PER_PRODUCER, syncs);
  workqueue_free(s->q);
  free(s);
}

/* ------------------------------------------------------------------ shutdown */

typedef struct slow_ctx {
  workqueue *q;
  atomic_int started, finished;
  atomic_bool shutdown_seen_unfinished;
} slow_ctx;

static int slow_sync(const char *key, void *arg) {
  (void)key;
  slow_ctx *c = arg;
  atomic_fetch_add(&c->started, 1);
  sleep_ms(300);
  atomic_fetch_add(&c->finished, 1);
  return 0;
}

typedef struct slow_runner {
  slow_ctx *c;
  atomic_bool returned;
} slow_runner;

static void *run_slow(void *arg) {
  slow_runner *r = arg;
  workqueue_run(r->c->q, 4, slow_sync, r->c);
  atomic_store(&r->returned, true);
  return NULL;
}

static void test_shutdown(void **state) {
  (void)state;
  slow_ctx c = {0};
  c.q = workqueue_new(NULL);
  char key[16];
  for (int i = 0; i < 20; i++) {
    snprintf(key, sizeof key, "k%d", i);
    workqueue_add(c.q, key);
  }
  workqueue_add_after(c.q, "delayed", 60000); /* dropped at shutdown (freed: ASan checks) */
  slow_runner r = {.c = &c};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, run_slow, &r), 0);
  while (atomic_load(&c.started) < 4) sleep_ms(5);
  workqueue_shutdown(c.q);
  assert_true(workqueue_shutting_down(c.q));
  /* In-flight syncs are not interrupted: run has not returned yet. */
  assert_false(atomic_load(&r.returned));
  assert_true(atomic_load(&c.finished) < 4);
  pthread_join(t, NULL);
  assert_true(atomic_load(&r.returned));
  /* Exactly the 4 keys in flight were processed, each to its end. */
  assert_int_equal(atomic_load(&c.started), 4);
  assert_int_equal(atomic_load(&c.finished), 4);
  assert_int_equal(workqueue_in_flight(c.q), 0);
  /* After shutdown: adds are ignored and get returns NULL at once. */
  workqueue_add(c.q, "late");
  workqueue_add_rate_limited(c.q, "late");
  assert_int_equal(workqueue_len(c.q), 0);
  int64_t t0 = now_ms();
  assert_null(workqueue_get(c.q));
  assert_true(now_ms() - t0 < 100);
  workqueue_free(c.q);
}

/* A getter blocked on an empty queue wakes on shutdown. */
static void *blocked_get(void *arg) {
  return workqueue_get(arg);
}

static void test_shutdown_wakes_getters(void **state) {
  (void)state;
  workqueue *q = workqueue_new(NULL);
  workqueue_add_after(q, "k", 60000);
  pthread_t t[3];
  for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, blocked_get, q);
  sleep_ms(50);
  workqueue_shutdown(q);
  for (int i = 0; i < 3; i++) {
    void *ret;
    pthread_join(t[i], &ret);
    assert_null(ret);
  }
  workqueue_free(q);
}

/* A key added while in process, then the queue shut down: done drops it. */
static void test_done_after_shutdown(void **state) {
  (void)state;
  workqueue *q = workqueue_new(NULL);
  workqueue_add(q, "a");
  char *k = get_now(q);
  workqueue_add(q, "a");
  workqueue_shutdown(q);
  workqueue_done(q, k);
  free(k);
  assert_int_equal(workqueue_len(q), 0);
  workqueue_wait_idle(q);
  workqueue_free(q);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dedup),
      cmocka_unit_test(test_add_after),
      cmocka_unit_test(test_backoff),
      cmocka_unit_test(test_stress_exclusion),
      cmocka_unit_test(test_shutdown),
      cmocka_unit_test(test_shutdown_wakes_getters),
      cmocka_unit_test(test_done_after_shutdown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
