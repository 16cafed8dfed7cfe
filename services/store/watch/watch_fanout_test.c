/* Tests of the fan-out thread and the hand-off from the store, against a real
 * store with the fake transport (watch_fake.h): writes never wait for
 * watchers (a transport stuck inside a send, a full hand-off), events held
 * back while a transport is busy and sent together (coalescing, grouping, the
 * bounds that send a watcher to history instead), and many writers racing
 * watchers created and canceled on streams of every kind, checked against the
 * store's history: nothing lost, nothing twice, nothing out of order. */
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

/* ------------------------------------------------------------------ tests */

/* A transport stuck inside a send holds the fan-out thread, and with it the
 * hub's lock: writes still complete (the WAL thread only hands revisions
 * over), and once the transport moves again every watcher gets every event,
 * in order. */
static void test_stuck_transport_never_blocks_writers(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  fake *g = fake_open(x->hub);
  size_t i = 0, j = 0;
  wcreate(f, (copts){.key = "s/", .end = "s0"});
  wcreate(g, (copts){.key = "s/", .end = "s0", .prev_kv = true});
  assert_true(next(f, &i)->created);
  assert_true(next(g, &j)->created);
  enum { N = 301 };
  set_block(f, true);
  tput(s, "s/k", "0");
  wait_stuck(f);
  char v[16];
  for (int k = 1; k < N; k++) {
    snprintf(v, sizeof(v), "%d", k);
    tput(s, "s/k", v); /* would hang if a write waited for the fan-out */
  }
  tput(s, "elsewhere", "x");
  pthread_mutex_lock(&f->mu);
  assert_true(f->in_send); /* still stuck through all of it */
  pthread_mutex_unlock(&f->mu);
  set_block(f, false);
  int want[N];
  for (int k = 0; k < N; k++) want[k] = k;
  size_t j0 = j;
  expect_values(f, &i, 0, want, N, 0);
  expect_values(g, &j, 0, want, N, 1);
  /* The fan-out found the 300 revisions queued together: each watcher got
   * them in groups, a response per 64 revisions, not one per revision. */
  assert_true(j - j0 <= 8);
  assert_true(stats(x).held_back >= 2 * (N - 1));
  settle(x);
  wprogress(f);
  assert_true(is_progress(next(f, &i)));
  fake_close(f);
  fake_close(g);
  fx_close(x);
}

/* With the hand-off full (a 1-byte bound and the fan-out thread stuck), the
 * WAL thread drops revisions instead of queueing them: the watchers that
 * needed them replay history, still exactly once and in order, prev_kv
 * included. */
static void test_hand_off_overflow_replays_history(void **state) {
  (void)state;
  watch_hub_options o = {.max_pending_bytes = 1};
  fx *x = fx_open(&o);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  fake *g = fake_open(x->hub);
  size_t i = 0, j = 0;
  wcreate(f, (copts){.key = "o/k0"});
  assert_true(next(f, &i)->created);
  wcreate(g, (copts){.key = "o/", .end = "o0"});                 /* 0: everything */
  wcreate(g, (copts){.key = "o/k1"});                            /* 1: odd values */
  wcreate(g, (copts){.key = "o/", .end = "o0", .prev_kv = true}); /* 2: with prevs */
  for (int k = 0; k < 3; k++) assert_true(next(g, &j)->created);
  enum { N = 201 };
  set_block(f, true);
  tput(s, "o/k0", "0");
  wait_stuck(f);
  char v[16];
  for (int k = 1; k < N; k++) {
    snprintf(v, sizeof(v), "%d", k);
    tput(s, k % 2 ? "o/k1" : "o/k0", v);
  }
  set_block(f, false);
  int all[N], even[N], odd[N], ne = 0, no = 0;
  for (int k = 0; k < N; k++) {
    all[k] = k;
    if (k % 2) odd[no++] = k;
    else even[ne++] = k;
  }
  size_t j1 = j, j2 = j;
  expect_values(f, &i, 0, even, ne, 0);
  expect_values(g, &j, 0, all, N, 0);
  expect_values(g, &j1, 1, odd, no, 0);
  expect_values(g, &j2, 2, all, N, 2);
  settle(x);
  watch_hub_stats st = stats(x);
  assert_true(st.overflowed >= N / 2);
  assert_true(st.history_events > 0);
  /* Live again afterwards. */
  for (int k = 0; k < 200 && stats(x).unsynced; k++) usleep(10000);
  assert_int_equal(stats(x).unsynced, 0);
  tput(s, "o/k0", "1000");
  int last = 1000;
  expect_values(f, &i, 0, &last, 1, 0);
  fake_close(f);
  fake_close(g);
  fx_close(x);
}

/* While the transport reports a response waiting behind the one it writes,
 * new events are held back; once it drains they go out together, one
 * response per watcher with every revision held (header: the newest), in
 * order, prevs kept. A progress request waits for them. A canceled watcher's
 * held events are dropped, a closed stream's freed. */
static void test_coalesce_while_transport_busy(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "co/", .end = "co0", .prev_kv = true}); /* 0 */
  wcreate(f, (copts){.key = "co/k"});                               /* 1 */
  assert_true(next(f, &i)->created);
  assert_true(next(f, &i)->created);
  set_depth(f, 1);
  enum { N = 50 };
  int64_t last = 0;
  char v[16];
  for (int k = 0; k < N; k++) {
    snprintf(v, sizeof(v), "%d", k);
    last = tput(s, "co/k", v);
  }
  settle(x);
  assert_int_equal(resp_log_count(&f->log), i); /* nothing sent while busy */
  assert_int_equal(stats(x).held_back, 2 * N);
  wprogress(f);
  usleep(20000);
  assert_int_equal(resp_log_count(&f->log), i); /* the progress waits for them */
  set_depth(f, 0);
  bool seen[2] = {false, false};
  for (int r = 0; r < 2; r++) {
    Etcdserverpb__WatchResponse *m = next(f, &i);
    assert_true(m->watch_id == 0 || m->watch_id == 1);
    assert_false(seen[m->watch_id]);
    seen[m->watch_id] = true;
    assert_int_equal(m->n_events, N); /* all in one response */
    assert_int_equal(m->header->revision, last);
    for (int k = 0; k < N; k++) {
      snprintf(v, sizeof(v), "%d", k);
      assert_true(value_is(m->events[k]->kv, v));
      assert_int_equal(m->events[k]->kv->mod_revision, last - N + 1 + k);
      if (m->watch_id == 0 && k > 0) {
        snprintf(v, sizeof(v), "%d", k - 1);
        assert_true(value_is(m->events[k]->prev_kv, v));
      }
      if (m->watch_id == 1) assert_null(m->events[k]->prev_kv);
    }
  }
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(is_progress(m));
  assert_int_equal(m->header->revision, last);

  /* Held, then canceled: watcher 1's held events go before its canceled
   * response; watcher 0 keeps holding its own until the transport drains. */
  set_depth(f, 1);
  for (int k = N; k < N + 3; k++) {
    snprintf(v, sizeof(v), "%d", k);
    tput(s, "co/k", v);
  }
  settle(x);
  wcancel(f, 1);
  int want[3] = {N, N + 1, N + 2};
  size_t i1 = i;
  expect_values(f, &i1, 1, want, 3, 0);
  m = next(f, &i1);
  assert_true(m->canceled);
  assert_int_equal(m->watch_id, 1);
  assert_int_equal(resp_log_count(&f->log), i1);
  set_depth(f, 0);
  expect_values(f, &i, 0, want, 3, 1);
  /* Held when the stream closes: freed (the sanitizer run checks). */
  set_depth(f, 1);
  tput(s, "co/k", "x");
  settle(x);
  fake_close(f);
  fx_close(x);
}

/* A watcher holds back at most about 1 MiB: past that it goes to history,
 * from its oldest held revision, and still gets everything once, in order. */
static void test_held_back_overflow_goes_to_history(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "hb/k"});
  assert_true(next(f, &i)->created);
  set_depth(f, 1);
  enum { N = 40, SIZE = 64 * 1024 };
  char *val = malloc(SIZE);
  for (int k = 0; k < N; k++) {
    memset(val, 'a' + k % 26, SIZE);
    int n = snprintf(val, 16, "%d:", k);
    val[n] = ':';
    tput_bytes(s, "hb/k", val, SIZE);
  }
  settle(x);
  watch_hub_stats st = stats(x);
  assert_true(st.fell_behind >= 1);
  assert_true(st.held_back >= 10);
  /* The catch-up does not wait for the transport; what was held again after
   * it goes once the transport drains. */
  set_depth(f, 0);
  int got = 0;
  while (got < N) {
    Etcdserverpb__WatchResponse *m = next(f, &i);
    for (size_t e = 0; e < m->n_events; e++, got++) {
      char want[16];
      int n = snprintf(want, sizeof(want), "%d:", got);
      assert_int_equal(m->events[e]->kv->value.len, SIZE);
      assert_memory_equal(m->events[e]->kv->value.data, want, (size_t)n);
    }
  }
  wprogress(f);
  assert_true(is_progress(next(f, &i)));
  assert_int_equal(resp_log_count(&f->log), i);
  free(val);
  fake_close(f);
  fx_close(x);
}

/* A transport that stays backed up (a client that stopped reading with a
 * response still queued): after about two seconds its watchers stop holding
 * and go to history, which does not wait for the transport, so nothing is
 * polled forever and the events still arrive, once, in order. */
static void test_held_back_too_long_goes_to_history(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "hl/k"});
  assert_true(next(f, &i)->created);
  set_depth(f, 1);
  char v[16];
  for (int k = 0; k < 5; k++) {
    snprintf(v, sizeof(v), "%d", k);
    tput(x->ts.s, "hl/k", v);
  }
  settle(x);
  assert_int_equal(resp_log_count(&f->log), i);
  int want[5] = {0, 1, 2, 3, 4};
  expect_values(f, &i, 0, want, 5, 0); /* within next()'s 5 s */
  watch_hub_stats st = stats(x);
  assert_true(st.fell_behind >= 1);
  assert_true(st.history_events >= 5);
  fake_close(f);
  fx_close(x);
}

/* ---- many writers, watchers created and canceled meanwhile */

enum { CH_KEYS = 7, CH_STREAMS = 4, CH_MAX_IDS = 512, CH_OPS = 700 };
static const char *const ch_keys[CH_KEYS] = {"c/a0", "c/a1", "c/a2", "c/a3", "c/b0", "c/b1", "d/x"};

typedef struct ch_rev {
  int nev;
  int key[2];
  bool del[2];
} ch_rev;

typedef struct ch_world {
  store *s;
  int64_t base;
  ch_rev *revs; /* by revision - base */
  size_t nrevs;
  atomic_int writers_done;
  atomic_int created; /* watchers the churn loop has created */
  atomic_bool stop;
  fake *f[CH_STREAMS];
} ch_world;

static void ch_log(ch_world *w, int64_t rev, int nev, const int *key, const bool *del) {
  size_t at = (size_t)(rev - w->base);
  assert_true(at < w->nrevs);
  w->revs[at].nev = nev;
  for (int k = 0; k < nev; k++) {
    w->revs[at].key[k] = key[k];
    w->revs[at].del[k] = del[k];
  }
}

/* Halfway through, a writer waits until the churn loop has created
 * CH_MIN_CREATED watchers (at most ~20 s: the final count is asserted), so
 * watchers come and go while writes go on however fast the store writes. */
enum { CH_MIN_CREATED = 32 };
static void ch_halfway(ch_world *w, int n) {
  if (n != CH_OPS / 2) return;
  for (int i = 0; i < 20000 && atomic_load(&w->created) < CH_MIN_CREATED; i++) usleep(1000);
}

/* Writer A: puts on c/a0..3, sometimes deleting one it knows exists. */
static void *ch_writer_a(void *arg) {
  ch_world *w = arg;
  bool exists[4] = {false};
  for (int n = 0; n < CH_OPS; n++) {
    ch_halfway(w, n);
    int k = n % 4;
    char v[16];
    snprintf(v, sizeof(v), "%d", n);
    bool del = exists[k] && n % 7 == 3;
    int64_t rev = del ? tdel(w->s, ch_keys[k], NULL) : tput(w->s, ch_keys[k], v);
    exists[k] = !del;
    ch_log(w, rev, 1, &k, &del);
  }
  atomic_fetch_add(&w->writers_done, 1);
  return NULL;
}

/* Writer B: two-key txns on c/b0, c/b1 (two events in one revision) and
 * puts on d/x, outside the prefix. */
static void *ch_writer_b(void *arg) {
  ch_world *w = arg;
  for (int n = 0; n < CH_OPS; n++) {
    ch_halfway(w, n);
    char v[16];
    snprintf(v, sizeof(v), "%d", n);
    if (n % 4 == 3) {
      int k = 6;
      bool del = false;
      ch_log(w, tput(w->s, ch_keys[6], v), 1, &k, &del);
    } else {
      const char *keys[2] = {ch_keys[4], ch_keys[5]}, *vals[2] = {v, v};
      int ks[2] = {4, 5};
      bool dels[2] = {false, false};
      ch_log(w, ttxn_puts(w->s, keys, vals, 2), 2, ks, dels);
    }
  }
  atomic_fetch_add(&w->writers_done, 1);
  return NULL;
}

/* Streams 2 and 3 hold 8 and 2 responses and are drained every millisecond:
 * their watchers keep crossing the synced/unsynced boundary. Stream 1 is
 * drained every 20 ms. */
static void *ch_drainer(void *arg) {
  ch_world *w = arg;
  for (int n = 0; !atomic_load(&w->stop); n++) {
    drain(w->f[2]);
    drain(w->f[3]);
    if (n % 20 == 0) drain(w->f[1]);
    usleep(1000);
  }
  return NULL;
}

/* Watcher kinds: what they watch and how they were asked. */
enum { K_PREFIX, K_PREFIX_PREV, K_KEY, K_PREFIX_PAST, K_DELETES, K_FROM_KEY, K_KINDS };

typedef struct ch_watcher {
  bool used;
  int kind;
  int64_t start; /* start_revision asked (0: from now) */
  int64_t created_rev;
  bool created, canceled;
  /* what arrived: (revision, key, delete, prev mod revision or 0) */
  int64_t *rev, *prev;
  int *key;
  bool *del;
  size_t n, cap;
} ch_watcher;

static bool ch_matches(int kind, int key, bool del) {
  switch (kind) {
    case K_PREFIX:
    case K_PREFIX_PREV:
    case K_PREFIX_PAST: return key < 6;
    case K_KEY: return key == 1;
    case K_DELETES: return key < 6 && del;
    case K_FROM_KEY: return key >= 4; /* >= "c/b": c/b0, c/b1, d/x */
  }
  return false;
}

static void ch_create(fake *f, int kind, int64_t start) {
  copts o = {.key = "c/", .end = "c0"};
  if (kind == K_PREFIX_PREV) o.prev_kv = true;
  if (kind == K_KEY) o = (copts){.key = "c/a1", .prev_kv = true};
  if (kind == K_PREFIX_PAST) o.start = start;
  if (kind == K_DELETES) o.noput = true;
  if (kind == K_FROM_KEY) o = (copts){.key = "c/b", .from_key = true};
  wcreate(f, o);
}

/* The revision at which key was last written before rev, if by a put (the
 * prev_kv etcd gives); 0 when it did not exist. */
static int64_t ch_prev(const ch_world *w, int key, int64_t rev) {
  for (int64_t r = rev - 1; r > w->base; r--) {
    const ch_rev *cr = &w->revs[r - w->base];
    for (int k = 0; k < cr->nev; k++)
      if (cr->key[k] == key) return cr->del[k] ? 0 : r;
  }
  return 0;
}

static void ch_check(const ch_world *w, ch_watcher *cw, int64_t id, int64_t final) {
  assert_true(cw->created);
  int64_t from = cw->start ? cw->start : cw->created_rev + 1;
  size_t k = 0;
  for (int64_t r = from; r <= final; r++) {
    const ch_rev *cr = &w->revs[r - w->base];
    for (int e = 0; e < cr->nev; e++) {
      if (!ch_matches(cw->kind, cr->key[e], cr->del[e])) continue;
      if (k == cw->n) {
        /* A canceled watcher may stop anywhere; a live one gets everything. */
        if (!cw->canceled)
          fail_msg("watcher %lld (kind %d): missing revision %lld", (long long)id, cw->kind,
                   (long long)r);
        return;
      }
      if (cw->rev[k] != r || cw->key[k] != cr->key[e] || cw->del[k] != cr->del[e])
        fail_msg("watcher %lld (kind %d): event %zu is rev %lld key %d, want rev %lld key %d",
                 (long long)id, cw->kind, k, (long long)cw->rev[k], cw->key[k], (long long)r,
                 cr->key[e]);
      if (cw->kind == K_PREFIX_PREV || cw->kind == K_KEY) {
        int64_t want = ch_prev(w, cr->key[e], r);
        if (cw->prev[k] != want)
          fail_msg("watcher %lld: rev %lld prev %lld, want %lld", (long long)id, (long long)r,
                   (long long)cw->prev[k], (long long)want);
      }
      k++;
    }
  }
  if (k != cw->n)
    fail_msg("watcher %lld: %zu events beyond the last revision", (long long)id, cw->n - k);
}

static int key_index(const Mvccpb__KeyValue *kv) {
  for (int k = 0; k < CH_KEYS; k++)
    if (key_is(kv, ch_keys[k])) return k;
  return -1;
}

/* Two writers (single puts, deletes, two-key txns, writes outside the range)
 * while watchers of six kinds are created and canceled on four streams (0
 * plain; 1 and 2 report a backlog, so events are held back and coalesced; 2
 * and 3 small and drained constantly). Every watcher gets exactly
 * the store's history for its range from its start: nothing lost, nothing
 * twice, in order, prevs right; one canceled gets a prefix of it and nothing
 * after the canceled response. */
static void test_concurrent_writes_and_churn(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  ch_world w = {.s = x->ts.s};
  w.base = trev(x->ts.s);
  w.nrevs = 4 * CH_OPS + 16;
  w.revs = calloc(w.nrevs, sizeof(*w.revs));
  for (int k = 0; k < CH_STREAMS; k++) w.f[k] = fake_open(x->hub);
  set_capacity(w.f[2], 8);
  set_capacity(w.f[3], 2);
  /* Streams 1 and 2 report what the client has not taken yet as waiting in
   * the transport: their events are held back and coalesced until the next
   * drain (stream 1, unbounded, every 20 ms). */
  w.f[1]->auto_depth = true;
  w.f[2]->auto_depth = true;
  ch_watcher *ws = calloc(CH_STREAMS * CH_MAX_IDS, sizeof(*ws));
  int next_id[CH_STREAMS] = {0};
  int live[CH_STREAMS][CH_MAX_IDS], nlive[CH_STREAMS] = {0};
  pthread_t ta, tb, td;
  assert_int_equal(pthread_create(&td, NULL, ch_drainer, &w), 0);
  assert_int_equal(pthread_create(&ta, NULL, ch_writer_a, &w), 0);
  assert_int_equal(pthread_create(&tb, NULL, ch_writer_b, &w), 0);
  unsigned seed = 12345;
  while (atomic_load(&w.writers_done) < 2) {
    int st = rand_r(&seed) % CH_STREAMS;
    if (next_id[st] < CH_MAX_IDS && (nlive[st] < 4 || rand_r(&seed) % 2)) {
      int id = next_id[st]++;
      ch_watcher *cw = &ws[st * CH_MAX_IDS + id];
      cw->used = true;
      cw->kind = rand_r(&seed) % K_KINDS;
      if (cw->kind == K_PREFIX_PAST) {
        int64_t now = trev(x->ts.s);
        cw->start = now - rand_r(&seed) % 50;
        if (cw->start <= w.base) cw->start = w.base + 1;
      }
      ch_create(w.f[st], cw->kind, cw->start);
      atomic_fetch_add(&w.created, 1);
      live[st][nlive[st]++] = id;
    } else if (nlive[st]) {
      int at = rand_r(&seed) % nlive[st];
      wcancel(w.f[st], live[st][at]);
      live[st][at] = live[st][--nlive[st]];
    }
    usleep(300);
  }
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  int64_t final = trev(x->ts.s);
  settle(x);
  /* Every stream answers a progress request: all its watchers are synced and
   * every event up to there is in its log. */
  size_t end[CH_STREAMS];
  for (int st = 0; st < CH_STREAMS; st++) {
    wprogress(w.f[st]);
    for (size_t i = 0;;) {
      Etcdserverpb__WatchResponse *m = next(w.f[st], &i);
      if (is_progress(m)) {
        assert_true(m->header->revision >= final);
        end[st] = i;
        break;
      }
    }
  }
  atomic_store(&w.stop, true);
  pthread_join(td, NULL);
  watch_hub_stats hs = stats(x);
  assert_true(hs.fell_behind > 0); /* the boundary was crossed */

  for (int st = 0; st < CH_STREAMS; st++) {
    for (size_t i = 0; i < end[st]; i++) {
      Etcdserverpb__WatchResponse *m = resp_log_get(&w.f[st]->log, i, 0);
      if (m->watch_id < 0) continue; /* progress */
      assert_true(m->watch_id < CH_MAX_IDS);
      ch_watcher *cw = &ws[st * CH_MAX_IDS + m->watch_id];
      assert_true(cw->used);
      if (m->created) {
        assert_false(cw->created);
        cw->created = true;
        cw->created_rev = m->header->revision;
        continue;
      }
      if (m->canceled) {
        assert_false(cw->canceled);
        cw->canceled = true;
        continue;
      }
      assert_true(cw->created);
      assert_false(cw->canceled); /* nothing after the canceled response */
      for (size_t e = 0; e < m->n_events; e++) {
        if (cw->n == cw->cap) {
          cw->cap = cw->cap ? cw->cap * 2 : 64;
          cw->rev = realloc(cw->rev, cw->cap * sizeof(*cw->rev));
          cw->prev = realloc(cw->prev, cw->cap * sizeof(*cw->prev));
          cw->key = realloc(cw->key, cw->cap * sizeof(*cw->key));
          cw->del = realloc(cw->del, cw->cap * sizeof(*cw->del));
        }
        const Mvccpb__Event *ev = m->events[e];
        cw->rev[cw->n] = ev->kv->mod_revision;
        cw->key[cw->n] = key_index(ev->kv);
        cw->del[cw->n] = ev->type == MVCCPB__EVENT__EVENT_TYPE__DELETE;
        cw->prev[cw->n] = ev->prev_kv ? ev->prev_kv->mod_revision : 0;
        assert_true(m->header->revision >= ev->kv->mod_revision);
        cw->n++;
      }
    }
  }
  int checked = 0;
  for (int st = 0; st < CH_STREAMS; st++)
    for (int id = 0; id < next_id[st]; id++) {
      ch_watcher *cw = &ws[st * CH_MAX_IDS + id];
      ch_check(&w, cw, id, final);
      checked++;
      free(cw->rev);
      free(cw->prev);
      free(cw->key);
      free(cw->del);
    }
  assert_true(checked >= CH_MIN_CREATED);
  free(ws);
  free(w.revs);
  for (int k = 0; k < CH_STREAMS; k++) fake_close(w.f[k]);
  fx_close(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_stuck_transport_never_blocks_writers),
      cmocka_unit_test(test_hand_off_overflow_replays_history),
      cmocka_unit_test(test_coalesce_while_transport_busy),
      cmocka_unit_test(test_held_back_overflow_goes_to_history),
      cmocka_unit_test(test_held_back_too_long_goes_to_history),
      cmocka_unit_test(test_concurrent_writes_and_churn),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
