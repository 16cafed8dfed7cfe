/* services/store/wal/wal_test.c — the write-ahead log's behaviour with no
 * crash involved: round trips, segment rolling and naming, replay from a
 * snapshot index, group commit under 16 and 256 concurrent appenders (distinct
 * increasing indexes, callbacks in order, fewer fsyncs than records),
 * backpressure, a stuck callback not holding the next fsync, closing with
 * work queued, re-entrant callbacks, the directory
 * lock, truncation of covered segments, a snapshot ahead of the log, a
 * refusing replay callback, and poisoning after a write error.
 * Crash recovery lives in wal_crash_test.c and wal_kill_test.c. */
#define _GNU_SOURCE
#include "services/store/wal/wal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/store/wal/testutil.h"
#include "services/store/wal/wal_format.h"

/* Checks on helper threads are counted, not asserted (cmocka longjmps). */
static int g_thread_failures;
#define THREAD_CHECK(cond)                                                     \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      __atomic_add_fetch(&g_thread_failures, 1, __ATOMIC_SEQ_CST);             \
    }                                                                          \
  } while (0)

static char *g_dir;

static int setup(void **state) {
  (void)state;
  g_dir = tu_mkdtemp("wal_test");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_rm_rf(g_dir);
  free(g_dir);
  int n = __atomic_exchange_n(&g_thread_failures, 0, __ATOMIC_SEQ_CST);
  return n ? -1 : 0;
}

static wal *open_or_fail(const char *dir, const wal_options *o, tu_log *log) {
  keel_error err = {0};
  wal *w = wal_open(dir, o, log ? tu_collect : NULL, log, &err);
  if (!w) fail_msg("wal_open %s: %s", dir, err.message);
  return w;
}

static void append_n(wal *w, tu_log *want, int n, uint64_t seed, size_t maxlen) {
  uint8_t *buf = malloc(maxlen);
  for (int i = 0; i < n; i++) {
    size_t len = 1 + (size_t)((seed + (uint64_t)i) * 7919 % maxlen);
    tu_payload(seed + (uint64_t)i, buf, len);
    uint64_t idx = 0;
    assert_int_equal(wal_append_sync(w, buf, len, &idx), 0);
    if (want) {
      assert_int_equal(idx, want->n ? want->index[want->n - 1] + 1 : idx);
      tu_log_add(want, idx, buf, len);
    }
  }
  free(buf);
}

static void test_empty_open_creates_preallocated_segment(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 1 << 16};
  wal *w = open_or_fail(g_dir, &o, NULL);
  assert_int_equal(wal_next_index(w), 1);
  assert_int_equal(wal_close(w), 0);
  const char *seg = tu_join(g_dir, "0000000000000001-0000000000000001.wal");
  struct stat st;
  assert_int_equal(stat(seg, &st), 0);
  assert_int_equal(st.st_size, 1 << 16);        /* preallocated */
  assert_true(st.st_blocks * 512 >= (1 << 16)); /* really allocated, not sparse */
  tu_log got = {0};
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 0);
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
  tu_log_free(&got);
}

static void test_round_trip_and_continue(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 1 << 20};
  tu_log want = {0}, got = {0};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, &want, 100, 1, 5000);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.records, 100);
  assert_int_equal(st.appends, 100);
  assert_int_equal(st.last_index, 100);
  uint64_t bytes = 0;
  for (size_t i = 0; i < want.n; i++) bytes += 8 + want.len[i];
  assert_int_equal(st.bytes, bytes);
  assert_true(st.fsyncs >= 1 && st.fsyncs <= 100);
  assert_int_equal(wal_close(w), 0);

  w = open_or_fail(g_dir, &o, &got);
  assert_true(tu_log_prefix_equal(&got, &want, 100));
  assert_int_equal(wal_next_index(w), 101);
  wal_get_stats(w, &st);
  assert_int_equal(st.replayed, 100);
  assert_int_equal(st.last_index, 100);
  append_n(w, &want, 50, 1000, 300);
  assert_int_equal(wal_close(w), 0);

  tu_log_clear(&got);
  w = open_or_fail(g_dir, &o, &got);
  assert_true(tu_log_prefix_equal(&got, &want, 150));
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
  tu_log_free(&want);
  tu_log_free(&got);
}

static void test_start_index_skips_covered_records(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 8192};
  tu_log want = {0}, got = {0};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, &want, 100, 7, 400);
  assert_int_equal(wal_close(w), 0);
  o.start_index = 40;
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 60);
  for (size_t i = 0; i < 60; i++) {
    assert_int_equal(got.index[i], 41 + i);
    assert_int_equal(got.len[i], want.len[40 + i]);
    assert_memory_equal(got.data[i], want.data[40 + i], got.len[i]);
  }
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.replayed, 60);
  assert_int_equal(wal_next_index(w), 101);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&want);
  tu_log_free(&got);
}

static void test_segments_roll_with_names_and_exact_ends(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 4096};
  tu_log want = {0}, got = {0};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, &want, 200, 3, 300);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(wal_close(w), 0);
  int n;
  char **names = tu_list(g_dir, ".wal", &n);
  assert_true(n >= 5);
  assert_int_equal(st.segments_created, (uint64_t)n);
  uint64_t next_first = 1;
  for (int i = 0; i < n; i++) {
    uint64_t seq, first;
    assert_true(wal_segment_name_parse(names[i], &seq, &first));
    assert_int_equal(seq, (uint64_t)i + 1);
    assert_int_equal(first, next_first);
    size_t len;
    uint8_t *data = tu_read_file(tu_join(g_dir, names[i]), &len);
    wal_scan_result r;
    wal_scan_frames(data, len, WAL_SEGMENT_HEADER_SIZE, NULL, NULL, &r);
    if (i + 1 < n) {
      /* A finished segment ends exactly at its last frame. */
      assert_int_equal(r.stop, WAL_SCAN_END);
      assert_int_equal(r.end, len);
      assert_true(len >= 4096);
    } else {
      assert_int_equal(len, 4096);
      assert_true(r.tail_zero);
    }
    next_first = first + r.records;
    free(data);
  }
  assert_int_equal(next_first, 201);
  tu_free_names(names, n);
  w = open_or_fail(g_dir, &o, &got);
  assert_true(tu_log_prefix_equal(&got, &want, 200));
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&want);
  tu_log_free(&got);
}

/* ---------- group commit ---------- */

typedef struct gc_shared {
  wal *w;
  int per_thread;
  bool pipelined;     /* fire all appends, then wait; else one at a time */
  uint64_t last_done; /* written by done callbacks only (one at a time, under the WAL's order) */
  int out_of_order;
} gc_shared;

typedef struct gc_thread {
  gc_shared *sh;
  pthread_t tid;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done;
  int status_errors;
  uint64_t *index;    /* as returned by wal_append */
  uint64_t *cb_index; /* as reported to the callback */
  uint8_t payload[64];
} gc_thread;

typedef struct gc_ack {
  gc_thread *t;
  int slot;
} gc_ack;

static void gc_done(void *arg, uint64_t index, int status) {
  gc_ack *a = arg;
  gc_thread *t = a->t;
  if (index <= t->sh->last_done) t->sh->out_of_order++;
  t->sh->last_done = index;
  t->cb_index[a->slot] = index;
  pthread_mutex_lock(&t->mu);
  if (status != 0) t->status_errors++;
  t->done++;
  pthread_cond_signal(&t->cv);
  pthread_mutex_unlock(&t->mu);
}

static void *gc_main(void *arg) {
  gc_thread *t = arg;
  int n = t->sh->per_thread;
  gc_ack *acks = calloc((size_t)n, sizeof(*acks));
  for (int i = 0; i < n; i++) {
    acks[i] = (gc_ack){t, i};
    int64_t idx = wal_append(t->sh->w, t->payload, sizeof(t->payload), gc_done, &acks[i]);
    THREAD_CHECK(idx > 0);
    t->index[i] = (uint64_t)idx;
    if (!t->sh->pipelined) {
      pthread_mutex_lock(&t->mu);
      while (t->done < i + 1) pthread_cond_wait(&t->cv, &t->mu);
      pthread_mutex_unlock(&t->mu);
    }
  }
  pthread_mutex_lock(&t->mu);
  while (t->done < n) pthread_cond_wait(&t->cv, &t->mu);
  pthread_mutex_unlock(&t->mu);
  free(acks);
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static void group_commit(int nthreads, int per_thread, bool pipelined) {
  tu_rm_rf(g_dir);
  wal_options o = {.segment_bytes = 1 << 20};
  wal *w = open_or_fail(g_dir, &o, NULL);
  gc_shared sh = {.w = w, .per_thread = per_thread, .pipelined = pipelined};
  gc_thread *ts = calloc((size_t)nthreads, sizeof(*ts));
  uint64_t t0 = 0;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int i = 0; i < nthreads; i++) {
    ts[i].sh = &sh;
    pthread_mutex_init(&ts[i].mu, NULL);
    pthread_cond_init(&ts[i].cv, NULL);
    ts[i].index = calloc((size_t)per_thread, sizeof(uint64_t));
    ts[i].cb_index = calloc((size_t)per_thread, sizeof(uint64_t));
    tu_payload((uint64_t)i, ts[i].payload, sizeof(ts[i].payload));
    assert_int_equal(pthread_create(&ts[i].tid, NULL, gc_main, &ts[i]), 0);
  }
  for (int i = 0; i < nthreads; i++) pthread_join(ts[i].tid, NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  (void)t0;
  double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
  int total = nthreads * per_thread;
  uint64_t *all = calloc((size_t)total, sizeof(uint64_t));
  for (int i = 0; i < nthreads; i++) {
    assert_int_equal(ts[i].status_errors, 0);
    for (int j = 0; j < per_thread; j++) {
      assert_int_equal(ts[i].index[j], ts[i].cb_index[j]);
      if (j) assert_true(ts[i].index[j] > ts[i].index[j - 1]);
      all[i * per_thread + j] = ts[i].index[j];
    }
  }
  qsort(all, (size_t)total, sizeof(*all), cmp_u64);
  for (int i = 0; i < total; i++) assert_int_equal(all[i], (uint64_t)i + 1);
  assert_int_equal(sh.out_of_order, 0);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.records, (uint64_t)total);
  assert_true(st.fsyncs < (uint64_t)total);
  printf("group commit: %d appenders (%s), %d records, %" PRIu64
         " fsyncs, %.1f records/fsync, "
         "largest batch %" PRIu64 ", fsync avg %.0f us max %.0f us, %.0f records/s\n",
         nthreads, pipelined ? "pipelined" : "one in flight each", total, st.fsyncs,
         (double)total / (double)st.fsyncs, st.batch_records_max,
         (double)st.fsync_ns_total / (double)st.fsyncs / 1e3, (double)st.fsync_ns_max / 1e3,
         (double)total / secs);
  assert_int_equal(wal_close(w), 0);
  tu_log got = {0};
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, (size_t)total);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
  for (int i = 0; i < nthreads; i++) {
    free(ts[i].index);
    free(ts[i].cb_index);
    pthread_mutex_destroy(&ts[i].mu);
    pthread_cond_destroy(&ts[i].cv);
  }
  free(ts);
  free(all);
}

static void test_group_commit_16(void **state) {
  (void)state;
  group_commit(16, 100, false);
}

static void test_group_commit_256(void **state) {
  (void)state;
  group_commit(256, 20, false);
}

static void test_group_commit_pipelined(void **state) {
  (void)state;
  group_commit(8, 2000, true);
}

static void test_single_appender_one_fsync_each(void **state) {
  (void)state;
  wal *w = open_or_fail(g_dir, &(wal_options){0}, NULL);
  append_n(w, NULL, 200, 5, 100);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.fsyncs, 200);
  printf("fsync latency, one appender: avg %.0f us, max %.0f us over %" PRIu64 " fsyncs\n",
         (double)st.fsync_ns_total / (double)st.fsyncs / 1e3, (double)st.fsync_ns_max / 1e3,
         st.fsyncs);
  assert_int_equal(wal_close(w), 0);
}

/* ---------- backpressure ---------- */

typedef struct gate {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int entered;
  bool open;
} gate;

/* Counts the caller in, then waits until the gate opens. */
static void gate_pass(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->entered++;
  pthread_cond_broadcast(&g->cv);
  while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static void gate_on_sync(void *arg, const wal_sync_info *info) {
  (void)info;
  gate_pass(arg);
}

typedef struct blocked_append {
  wal *w;
  int64_t result;
  int returned;
} blocked_append;

static void *blocked_main(void *arg) {
  blocked_append *b = arg;
  static const char p[] = "blocked";
  b->result = wal_append(b->w, p, sizeof(p), NULL, NULL);
  __atomic_store_n(&b->returned, 1, __ATOMIC_SEQ_CST);
  return NULL;
}

static void test_backpressure(void **state) {
  (void)state;
  gate g = {.open = false};
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  wal_options o = {
      .queue_records = 8, .queue_bytes = 1000, .on_sync = gate_on_sync, .on_sync_arg = &g};
  wal *w = open_or_fail(g_dir, &o, NULL);
  static uint8_t small[10], big[5000];
  assert_int_equal(wal_append(w, small, sizeof(small), NULL, NULL), 1);
  pthread_mutex_lock(&g.mu);
  while (g.entered == 0) pthread_cond_wait(&g.cv, &g.mu);
  pthread_mutex_unlock(&g.mu);
  /* The writer holds the first batch (1 record, 10 bytes) in on_sync. */
  assert_int_equal(wal_try_append(w, big, 991, NULL, NULL), -EAGAIN); /* 10 + 991 > 1000 */
  int accepted = 0;
  while (wal_try_append(w, small, 10, NULL, NULL) > 0) accepted++;
  assert_int_equal(accepted, 7); /* 8 slots, one in flight */
  wal_stats st;
  wal_get_stats(w, &st);
  assert_true(st.queue_full >= 2);
  blocked_append b = {.w = w};
  pthread_t tid;
  assert_int_equal(pthread_create(&tid, NULL, blocked_main, &b), 0);
  usleep(50 * 1000);
  assert_int_equal(__atomic_load_n(&b.returned, __ATOMIC_SEQ_CST), 0);
  pthread_mutex_lock(&g.mu);
  g.open = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  pthread_join(tid, NULL);
  assert_int_equal(b.result, 9);
  /* One record larger than queue_bytes still goes through an empty queue. */
  uint64_t idx;
  assert_int_equal(wal_append_sync(w, big, sizeof(big), &idx), 0);
  assert_int_equal(idx, 10);
  assert_int_equal(wal_close(w), 0);
  pthread_mutex_destroy(&g.mu);
  pthread_cond_destroy(&g.cv);
}

/* A callback that waits on the gate (a reply that takes long to send). */
static void gate_done(void *arg, uint64_t index, int status) {
  (void)index;
  THREAD_CHECK(status == 0);
  gate_pass(arg);
}

static void open_gate(gate *g) {
  pthread_mutex_lock(&g->mu);
  g->open = true;
  pthread_cond_broadcast(&g->cv);
  pthread_mutex_unlock(&g->mu);
}

static void wait_entered(gate *g, int n) {
  pthread_mutex_lock(&g->mu);
  while (g->entered < n) pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

/* Callbacks run on the completer: while one of a batch's callbacks is stuck,
 * the writer still writes and syncs what comes next (keel-store sends replies
 * from its callbacks; the next fsync must not wait for them). */
static void test_slow_callback_does_not_hold_next_sync(void **state) {
  (void)state;
  gate sync_gate = {.open = false}, cb_gate = {.open = false};
  pthread_mutex_init(&sync_gate.mu, NULL);
  pthread_cond_init(&sync_gate.cv, NULL);
  pthread_mutex_init(&cb_gate.mu, NULL);
  pthread_cond_init(&cb_gate.cv, NULL);
  wal_options o = {.on_sync = gate_on_sync, .on_sync_arg = &sync_gate};
  wal *w = open_or_fail(g_dir, &o, NULL);
  static const char p[] = "record";
  assert_int_equal(wal_append(w, p, sizeof(p), NULL, NULL), 1);
  wait_entered(&sync_gate, 1); /* the writer holds batch 1 in on_sync */
  /* Records 2 and 3 queue up behind it and become one batch of two. */
  assert_int_equal(wal_append(w, p, sizeof(p), gate_done, &cb_gate), 2);
  assert_int_equal(wal_append(w, p, sizeof(p), NULL, NULL), 3);
  open_gate(&sync_gate);
  wait_entered(&cb_gate, 1); /* record 2's callback is stuck */
  assert_int_equal(wal_append(w, p, sizeof(p), NULL, NULL), 4);
  wal_stats st = {0};
  for (int i = 0; i < 10000; i++) { /* up to 10 s; a writer held by the callback never gets there */
    wal_get_stats(w, &st);
    if (st.last_index >= 4) break;
    usleep(1000);
  }
  assert_int_equal(st.last_index, 4);
  assert_int_equal(st.fsyncs, 3);
  open_gate(&cb_gate);
  assert_int_equal(wal_close(w), 0);
  pthread_mutex_destroy(&sync_gate.mu);
  pthread_cond_destroy(&sync_gate.cv);
  pthread_mutex_destroy(&cb_gate.mu);
  pthread_cond_destroy(&cb_gate.cv);
}

static void test_invalid_arguments_and_lock(void **state) {
  (void)state;
  keel_error err = {0};
  wal_options tiny = {.segment_bytes = 100};
  assert_null(wal_open(g_dir, &tiny, NULL, NULL, &err));
  assert_int_equal(err.code, EINVAL);
  wal *w = open_or_fail(g_dir, NULL, NULL);
  static uint8_t p[4];
  assert_int_equal(wal_append(w, p, 0, NULL, NULL), -EINVAL);
  assert_int_equal(wal_append(w, NULL, 4, NULL, NULL), -EINVAL);
  assert_int_equal(wal_append(w, p, (size_t)WAL_MAX_RECORD_BYTES + 1, NULL, NULL), -EINVAL);
  assert_int_equal(wal_try_append(w, p, 0, NULL, NULL), -EINVAL);
  assert_int_equal(wal_append_sync(w, p, 0, NULL), -EINVAL);
  /* A second opener of the same directory is refused. */
  assert_null(wal_open(g_dir, NULL, NULL, NULL, &err));
  assert_int_equal(err.code, EBUSY);
  assert_int_equal(wal_close(w), 0);
  w = open_or_fail(g_dir, NULL, NULL); /* the lock went with the close */
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(wal_close(NULL), 0);
  /* Parents are created. */
  char *deep = strdup(tu_join(g_dir, "a/b/c/wal"));
  w = open_or_fail(deep, NULL, NULL);
  assert_int_equal(wal_close(w), 0);
  assert_true(tu_exists(tu_join(deep, "0000000000000001-0000000000000001.wal")));
  free(deep);
}

/* ---------- close, callbacks ---------- */

typedef struct counter {
  int ok, failed;
  uint64_t last;
  int out_of_order;
} counter;

static void count_done(void *arg, uint64_t index, int status) {
  counter *c = arg;
  if (status == 0)
    c->ok++;
  else
    c->failed++;
  if (index <= c->last) c->out_of_order++;
  c->last = index;
}

static void test_close_drains_queue(void **state) {
  (void)state;
  wal *w = open_or_fail(g_dir, &(wal_options){.segment_bytes = 8192}, NULL);
  enum { N = 3000 };
  static uint8_t payloads[N][16];
  counter c = {0};
  for (int i = 0; i < N; i++) {
    tu_payload((uint64_t)i, payloads[i], 16);
    assert_int_equal(wal_append(w, payloads[i], 16, count_done, &c), i + 1);
  }
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(c.ok, N);
  assert_int_equal(c.failed, 0);
  assert_int_equal(c.out_of_order, 0);
  tu_log got = {0};
  w = open_or_fail(g_dir, NULL, &got);
  assert_int_equal(got.n, N);
  for (int i = 0; i < N; i++) assert_memory_equal(got.data[i], payloads[i], 16);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
}

typedef struct reentry {
  wal *w;
  int64_t inner;
  int sync_rc;
  int calls;
} reentry;

static void reenter_done(void *arg, uint64_t index, int status) {
  (void)index;
  reentry *r = arg;
  int calls = __atomic_add_fetch(&r->calls, 1, __ATOMIC_SEQ_CST);
  THREAD_CHECK(status == 0);
  if (calls > 1) return; /* the inner record's own callback */
  static const char inner[] = "appended from a callback";
  r->inner = wal_try_append(r->w, inner, sizeof(inner), reenter_done, r);
  r->sync_rc = wal_append_sync(r->w, inner, sizeof(inner), NULL);
}

static void test_callback_reentrancy(void **state) {
  (void)state;
  wal *w = open_or_fail(g_dir, NULL, NULL);
  reentry r = {.w = w};
  static const char outer[] = "outer";
  assert_int_equal(wal_append(w, outer, sizeof(outer), reenter_done, &r), 1);
  for (int i = 0; i < 10000 && __atomic_load_n(&r.calls, __ATOMIC_SEQ_CST) < 2; i++) usleep(1000);
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(r.inner, 2);
  assert_int_equal(r.sync_rc, -EDEADLK);
  assert_int_equal(r.calls, 2);
  tu_log got = {0};
  w = open_or_fail(g_dir, NULL, &got);
  assert_int_equal(got.n, 2);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
}

/* ---------- truncation, snapshot index ---------- */

static void test_truncate_before(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 4096};
  tu_log want = {0}, got = {0};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, &want, 300, 11, 200);
  int n0 = tu_count_suffix(g_dir, ".wal");
  assert_true(n0 >= 6);
  keel_error err = {0};
  assert_int_equal(wal_truncate_before(w, 0, &err), 0);
  /* Find a cut: the first index of the 4th segment minus one. */
  int n;
  char **names = tu_list(g_dir, ".wal", &n);
  uint64_t seq, first4;
  assert_true(wal_segment_name_parse(names[3], &seq, &first4));
  tu_free_names(names, n);
  assert_int_equal(wal_truncate_before(w, first4 - 2, &err), 2); /* segment 3 holds first4-2 */
  assert_int_equal(wal_truncate_before(w, first4 - 1, &err), 1);
  assert_int_equal(tu_count_suffix(g_dir, ".wal"), n0 - 3);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.segments_removed, 3);
  assert_int_equal(st.first_index, first4);
  append_n(w, &want, 10, 99, 200);
  assert_int_equal(wal_close(w), 0);

  /* A snapshot at first4-1 covers what was removed... */
  o.start_index = first4 - 1;
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 310 - (first4 - 1));
  assert_int_equal(got.index[0], first4);
  assert_int_equal(got.index[got.n - 1], 310);
  /* The segment being written is never removed, whatever the index. */
  assert_true(wal_truncate_before(w, UINT64_MAX, &err) >= 1);
  assert_int_equal(tu_count_suffix(g_dir, ".wal"), 1);
  append_n(w, NULL, 1, 5, 10);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
  /* ...an older snapshot does not: records are missing, a hard error. */
  o.start_index = 5;
  assert_null(wal_open(g_dir, &o, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  assert_non_null(strstr(err.message, "missing"));
  /* A snapshot at the last index opens the single remaining segment. */
  o.start_index = 311;
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 0);
  assert_int_equal(wal_next_index(w), 312);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
  tu_log_free(&want);
}

static void test_snapshot_ahead_of_log(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 8192};
  tu_log want = {0}, got = {0};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, NULL, 10, 1, 50);
  assert_int_equal(wal_close(w), 0);
  o.start_index = 20;
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 0);
  assert_int_equal(wal_next_index(w), 21);
  append_n(w, &want, 3, 50, 50);
  assert_int_equal(want.index[0], 21);
  assert_int_equal(wal_close(w), 0);
  assert_true(tu_exists(tu_join(g_dir, "0000000000000002-0000000000000015.wal")));
  w = open_or_fail(g_dir, &o, &got);
  assert_true(tu_log_prefix_equal(&got, &want, 3));
  assert_int_equal(wal_close(w), 0);
  keel_error err = {0};
  o.start_index = 5; /* 11..20 were never written */
  assert_null(wal_open(g_dir, &o, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  /* An empty directory with a snapshot starts right after it. */
  char *fresh = strdup(tu_join(g_dir, "fresh"));
  o.start_index = 1000;
  w = open_or_fail(fresh, &o, NULL);
  assert_int_equal(wal_next_index(w), 1001);
  assert_int_equal(wal_close(w), 0);
  free(fresh);
  tu_log_free(&want);
  tu_log_free(&got);
}

static int refuse_at_5(void *arg, uint64_t index, const uint8_t *p, size_t len) {
  (void)p;
  (void)len;
  int *calls = arg;
  (*calls)++;
  return index == 5 ? -EIO : 0;
}

static void test_replay_refusal_changes_nothing(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 4096};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, NULL, 20, 1, 100);
  assert_int_equal(wal_close(w), 0);
  /* Add a torn tail so there would be something to repair. */
  const char *seg = tu_join(g_dir, "0000000000000001-0000000000000001.wal");
  size_t len;
  uint8_t *before = tu_read_file(seg, &len);
  wal_scan_result r;
  wal_scan_frames(before, len, WAL_SEGMENT_HEADER_SIZE, NULL, NULL, &r);
  before[r.end] = 0x33;
  tu_write_file(seg, before, len);
  int calls = 0;
  keel_error err = {0};
  assert_null(wal_open(g_dir, &o, refuse_at_5, &calls, &err));
  assert_int_equal(calls, 5);
  assert_int_equal(err.code, EIO);
  assert_non_null(strstr(err.message, "index 5"));
  size_t len2;
  uint8_t *after = tu_read_file(seg, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(before, after, len);
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
  free(before);
  free(after);
}

static void test_leftovers_and_foreign_files(void **state) {
  (void)state;
  wal *w = open_or_fail(g_dir, NULL, NULL);
  append_n(w, NULL, 3, 1, 10);
  assert_int_equal(wal_close(w), 0);
  tu_write_file(tu_join(g_dir, "0000000000000002-0000000000000004.wal.tmp"), "junk", 4);
  tu_write_file(tu_join(g_dir, "notes.txt"), "keep", 4);
  tu_write_file(tu_join(g_dir, "0000000000000001-0000000000000001.wal.0000000000000040.broken"),
                "x", 1);
  tu_log got = {0};
  w = open_or_fail(g_dir, NULL, &got);
  assert_int_equal(got.n, 3);
  assert_int_equal(wal_close(w), 0);
  assert_false(tu_exists(tu_join(g_dir, "0000000000000002-0000000000000004.wal.tmp")));
  assert_true(tu_exists(tu_join(g_dir, "notes.txt")));
  tu_log_free(&got);
}

/* A write error (the file size limit, EFBIG) poisons the log; it runs in a
 * child so the limit cannot touch the test runner. */
static void test_write_error_poisons(void **state) {
  (void)state;
  wal_options o = {.segment_bytes = 4096};
  wal *w = open_or_fail(g_dir, &o, NULL);
  append_n(w, NULL, 5, 1, 100);
  assert_int_equal(wal_close(w), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGXFSZ, SIG_IGN);
    wal *cw = wal_open(g_dir, &o, NULL, NULL, NULL);
    if (!cw) _exit(10);
    struct rlimit rl = {8192, 8192};
    setrlimit(RLIMIT_FSIZE, &rl);
    static uint8_t big[10000];
    counter c = {0};
    int rc = wal_append_sync(cw, big, sizeof(big), NULL);
    if (rc != -EFBIG) _exit(11);
    if (wal_append(cw, big, 10, count_done, &c) != -EFBIG) _exit(12);
    wal_stats st;
    wal_get_stats(cw, &st);
    if (st.error != EFBIG) _exit(13);
    if (wal_close(cw) != -EFBIG) _exit(14);
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  assert_true(WIFEXITED(status));
  assert_int_equal(WEXITSTATUS(status), 0);
  /* What the failed write left behind is a torn tail: cut, the rest kept. */
  tu_log got = {0};
  w = open_or_fail(g_dir, &o, &got);
  assert_int_equal(got.n, 5);
  assert_int_equal(wal_next_index(w), 6);
  wal_stats st;
  wal_get_stats(w, &st);
  assert_true(st.tail_truncated_bytes > 0);
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 1);
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_empty_open_creates_preallocated_segment, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_round_trip_and_continue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_start_index_skips_covered_records, setup, teardown),
      cmocka_unit_test_setup_teardown(test_segments_roll_with_names_and_exact_ends, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_single_appender_one_fsync_each, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_commit_16, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_commit_256, setup, teardown),
      cmocka_unit_test_setup_teardown(test_group_commit_pipelined, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_callback_does_not_hold_next_sync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_invalid_arguments_and_lock, setup, teardown),
      cmocka_unit_test_setup_teardown(test_close_drains_queue, setup, teardown),
      cmocka_unit_test_setup_teardown(test_callback_reentrancy, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncate_before, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_ahead_of_log, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay_refusal_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_leftovers_and_foreign_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_write_error_poisons, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
