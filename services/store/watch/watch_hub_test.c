/* Tests of the watch hub against a real store in a temp dir, with a fake
 * transport whose queue the test fills and drains at will: etcd's request rules,
 * history replay, filters, prev_kv, compaction, progress, fragments, and the
 * synced/unsynced boundary of a watcher whose queue is full. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/store/watch/watch_hub.h"
#include "services/store/watch/watch_internal.h"
#include "services/store/watch/watch_fake.h"
#include "services/store/watch/watch_testutil.h"

/* ------------------------------------------------------------------ tests */

static void test_create_events_cancel(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  int64_t r0 = trev(x->ts.s);
  wcreate(f, (copts){.key = "a"});
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(m->created);
  assert_false(m->canceled);
  assert_int_equal(m->watch_id, 0);
  assert_int_equal(m->header->revision, r0);
  assert_int_equal(m->n_events, 0);
  assert_true(m->header->cluster_id != 0 && m->header->member_id != 0);

  int64_t r1 = tput(x->ts.s, "a", "1");
  tput(x->ts.s, "b", "1");
  m = next(f, &i);
  assert_int_equal(m->watch_id, 0);
  assert_int_equal(m->header->revision, r1);
  assert_int_equal(m->n_events, 1);
  Mvccpb__Event *e = m->events[0];
  assert_int_equal(e->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
  assert_true(key_is(e->kv, "a") && value_is(e->kv, "1"));
  assert_int_equal(e->kv->create_revision, r1);
  assert_int_equal(e->kv->mod_revision, r1);
  assert_int_equal(e->kv->version, 1);
  assert_null(e->prev_kv);
  /* Nothing for b: the next response is the progress. */
  wprogress(f);
  m = next(f, &i);
  assert_true(is_progress(m));
  assert_int_equal(m->header->revision, r1 + 1);

  int64_t r3 = tdel(x->ts.s, "a", NULL);
  m = next(f, &i);
  assert_int_equal(m->n_events, 1);
  e = m->events[0];
  assert_int_equal(e->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
  assert_true(key_is(e->kv, "a"));
  assert_int_equal(e->kv->mod_revision, r3);
  assert_int_equal(e->kv->value.len, 0);
  assert_int_equal(e->kv->create_revision, 0);
  assert_int_equal(e->kv->version, 0);

  wcancel(f, 0);
  m = next(f, &i);
  assert_true(m->canceled);
  assert_false(m->created);
  assert_int_equal(m->watch_id, 0);
  wcancel(f, 987654); /* unknown: no response */
  Etcdserverpb__WatchRequest empty = ETCDSERVERPB__WATCH_REQUEST__INIT;
  watch_stream_request(f->st, &empty); /* ignored */
  tput(x->ts.s, "a", "2");             /* canceled: no event */
  wprogress(f);
  m = next(f, &i);
  assert_true(is_progress(m));
  assert_int_equal(resp_log_count(&f->log), i);
  assert_int_equal(stats(x).watchers, 0);
  fake_close(f);
  fx_close(x);
}

static void test_ids_and_create_errors(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "a", .id = 1});
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(m->created && !m->canceled);
  assert_int_equal(m->watch_id, 1);
  wcreate(f, (copts){.key = "a"});
  assert_int_equal(next(f, &i)->watch_id, 0);
  wcreate(f, (copts){.key = "a"});
  assert_int_equal(next(f, &i)->watch_id, 2); /* 1 is taken */
  wcreate(f, (copts){.key = "b", .id = 2});
  m = next(f, &i);
  assert_true(m->created && m->canceled);
  assert_int_equal(m->watch_id, -1);
  assert_string_equal(m->cancel_reason, "mvcc: duplicate watch ID provided on the WatchStream");
  wcreate(f, (copts){.key = "b", .end = "a"});
  m = next(f, &i);
  assert_true(m->created && m->canceled);
  assert_int_equal(m->watch_id, -1);
  assert_string_equal(m->cancel_reason, "mvcc: watcher range is empty");
  wcreate(f, (copts){.key = "b", .end = "b"});
  assert_string_equal(next(f, &i)->cancel_reason, "mvcc: watcher range is empty");
  wcreate(f, (copts){.key = "a"});
  assert_int_equal(next(f, &i)->watch_id, 3);
  assert_int_equal(stats(x).watchers, 4);
  /* Ids are per stream: another stream starts at 0 again. */
  fake *g = fake_open(x->hub);
  size_t j = 0;
  wcreate(g, (copts){.key = "a"});
  assert_int_equal(next(g, &j)->watch_id, 0);
  /* One put reaches all five watchers, each once. */
  tput(x->ts.s, "a", "v");
  int seen[4] = {0};
  for (int k = 0; k < 4; k++) {
    m = next(f, &i);
    assert_int_equal(m->n_events, 1);
    seen[m->watch_id]++;
  }
  assert_int_equal(seen[0] + seen[1] + seen[2] + seen[3], 4);
  assert_int_equal(next(g, &j)->n_events, 1);
  fake_close(g);
  fake_close(f);
  assert_int_equal(stats(x).watchers, 0);
  assert_int_equal(stats(x).streams, 0);
  fx_close(x);
}

/* Collects n events for watch_id from response i on, checking that no
 * revision is split over two responses; returns copies' pointers into the log. */
typedef struct evlist {
  Mvccpb__Event *e[4096];
  int n;
} evlist;

static void collect(fake *f, size_t *i, int64_t watch_id, int n, evlist *out) {
  out->n = 0;
  int64_t last_rev = 0;
  while (out->n < n) {
    Etcdserverpb__WatchResponse *m = next(f, i);
    if (m->watch_id != watch_id || m->n_events == 0) continue;
    assert_true(m->events[0]->kv->mod_revision > last_rev); /* a revision is never split */
    for (size_t k = 0; k < m->n_events; k++) {
      assert_true(m->header->revision >= m->events[k]->kv->mod_revision);
      out->e[out->n++] = m->events[k];
      last_rev = m->events[k]->kv->mod_revision;
    }
  }
  assert_int_equal(out->n, n);
}

static void check_kv(const Mvccpb__KeyValue *kv, const char *key, const char *value, int64_t create,
                     int64_t mod, int64_t version) {
  assert_non_null(kv);
  assert_true(key_is(kv, key));
  assert_true(value_is(kv, value));
  assert_int_equal(kv->create_revision, create);
  assert_int_equal(kv->mod_revision, mod);
  assert_int_equal(kv->version, version);
}

static void test_history_replay_prev_kv(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  int64_t r = trev(s);
  tput(s, "w/k", "v1");
  tput(s, "w/k", "v2");
  const char *keys[] = {"w/t1", "w/t2"}, *vals[] = {"a", "b"};
  ttxn_puts(s, keys, vals, 2);
  tdel(s, "w/", "w0");
  tput(s, "x", "outside");
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "w/", .end = "w0", .start = r + 1, .prev_kv = true});
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(m->created);
  assert_int_equal(m->header->revision, r + 5);
  evlist ev;
  collect(f, &i, 0, 7, &ev);
  check_kv(ev.e[0]->kv, "w/k", "v1", r + 1, r + 1, 1);
  assert_null(ev.e[0]->prev_kv);
  check_kv(ev.e[1]->kv, "w/k", "v2", r + 1, r + 2, 2);
  check_kv(ev.e[1]->prev_kv, "w/k", "v1", r + 1, r + 1, 1);
  check_kv(ev.e[2]->kv, "w/t1", "a", r + 3, r + 3, 1);
  check_kv(ev.e[3]->kv, "w/t2", "b", r + 3, r + 3, 1);
  for (int k = 4; k < 7; k++) {
    assert_int_equal(ev.e[k]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
    assert_int_equal(ev.e[k]->kv->mod_revision, r + 4);
    assert_int_equal(ev.e[k]->kv->version, 0);
  }
  check_kv(ev.e[4]->kv, "w/k", "", 0, r + 4, 0);
  check_kv(ev.e[4]->prev_kv, "w/k", "v2", r + 1, r + 2, 2);
  check_kv(ev.e[5]->prev_kv, "w/t1", "a", r + 3, r + 3, 1);
  check_kv(ev.e[6]->prev_kv, "w/t2", "b", r + 3, r + 3, 1);
  /* Live after the replay, with prevs. */
  int64_t r6 = tput(s, "w/k", "v3");
  collect(f, &i, 0, 1, &ev);
  check_kv(ev.e[0]->kv, "w/k", "v3", r6, r6, 1);
  assert_null(ev.e[0]->prev_kv); /* recreated after the delete */
  int64_t r7 = tput(s, "w/k", "v4");
  collect(f, &i, 0, 1, &ev);
  check_kv(ev.e[0]->prev_kv, "w/k", "v3", r6, r6, 1);
  assert_int_equal(ev.e[0]->kv->mod_revision, r7);
  assert_true(stats(x).history_events >= 7);
  fake_close(f);
  fx_close(x);
}

static void test_filters_and_prev_flag(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  size_t i = 0;
  assert_false(atomic_load(&x->hub->want_prev));
  wcreate(f, (copts){.key = "f/", .end = "f0", .noput = true, .prev_kv = true, .id = 100});
  assert_true(next(f, &i)->created);
  assert_true(atomic_load(&x->hub->want_prev));
  wcreate(f, (copts){.key = "f/", .end = "f0", .nodelete = true, .id = 200});
  assert_true(next(f, &i)->created);
  tput(s, "f/b", "2");
  int64_t rd = tdel(s, "f/b", NULL);
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_int_equal(m->watch_id, 200);
  assert_int_equal(m->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__PUT);
  m = next(f, &i);
  assert_int_equal(m->watch_id, 100);
  assert_int_equal(m->n_events, 1);
  assert_int_equal(m->events[0]->type, MVCCPB__EVENT__EVENT_TYPE__DELETE);
  assert_int_equal(m->events[0]->kv->mod_revision, rd);
  assert_true(value_is(m->events[0]->prev_kv, "2"));
  wprogress(f);
  assert_true(is_progress(next(f, &i)));
  wcancel(f, 100);
  assert_true(next(f, &i)->canceled);
  assert_false(atomic_load(&x->hub->want_prev));
  fake_close(f);
  fx_close(x);
}

static void test_key_kinds_and_future_start(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "k"});                    /* 0: single key */
  wcreate(f, (copts){.key = "k", .end = "l"});        /* 1: prefix k */
  wcreate(f, (copts){.key = "m", .from_key = true});  /* 2: >= m */
  wcreate(f, (copts){.key = NULL, .from_key = true}); /* 3: every key */
  wcreate(f, (copts){.key = NULL});                   /* 4: the key "\0" only */
  for (int k = 0; k < 5; k++) assert_true(next(f, &i)->created);
  tput(s, "k", "1");
  tput(s, "kk", "1");
  tput(s, "z", "1");
  tput(s, "a", "1");
  char got[5][16] = {{0}};
  for (int total = 0; total < 8;) {
    Etcdserverpb__WatchResponse *m = next(f, &i);
    assert_true(m->watch_id >= 0 && m->watch_id < 4);
    for (size_t k = 0; k < m->n_events; k++, total++) {
      char *g = got[m->watch_id];
      size_t n = strlen(g);
      snprintf(g + n, 16 - n, "%.*s,", (int)m->events[k]->kv->key.len, m->events[k]->kv->key.data);
    }
  }
  assert_string_equal(got[0], "k,");
  assert_string_equal(got[1], "k,kk,");
  assert_string_equal(got[2], "z,");
  assert_string_equal(got[3], "k,kk,z,a,");

  int64_t r = trev(s);
  wcreate(f, (copts){.key = "fut", .start = r + 2});
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(m->created);
  assert_int_equal(m->watch_id, 5);
  tput(s, "fut", "skipped");
  tput(s, "fut", "seen");
  for (;;) {
    m = next(f, &i);
    if (m->watch_id == 5) break;
  }
  assert_int_equal(m->n_events, 1);
  assert_true(value_is(m->events[0]->kv, "seen"));
  assert_int_equal(m->events[0]->kv->mod_revision, r + 2);
  fake_close(f);
  fx_close(x);
}

typedef struct writer {
  store *s;
  int from, n;
  put_counter c;
} writer;

static void *write_main(void *arg) {
  writer *w = arg;
  for (int k = w->from; k < w->from + w->n; k++) {
    char v[16];
    snprintf(v, sizeof(v), "%d", k);
    tput_async(w->s, "slow/k", v, &w->c);
  }
  return NULL;
}

/* Events for watch_id from response *i on, until n arrived; checks order,
 * values and that each revision is new. */
static void expect_sequence(fake *f, size_t *i, int64_t watch_id, int from, int n,
                            int64_t *last_rev, bool drain_as_we_go) {
  int want = from;
  while (want < from + n) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&f->log, *i, drain_as_we_go ? 2 : T);
    if (!m) {
      if (!drain_as_we_go) fail_msg("stuck at event %d", want);
      drain(f);
      continue;
    }
    (*i)++;
    if (m->watch_id != watch_id) continue;
    for (size_t k = 0; k < m->n_events; k++) {
      char v[16];
      snprintf(v, sizeof(v), "%d", want);
      if (!value_is(m->events[k]->kv, v))
        fail_msg("event %d: got %.*s", want, (int)m->events[k]->kv->value.len,
                 m->events[k]->kv->value.data);
      assert_true(m->events[k]->kv->mod_revision > *last_rev);
      *last_rev = m->events[k]->kv->mod_revision;
      want++;
    }
  }
}

/* A watcher whose client stops reading: writers are never held up, memory stays
 * at the queue bound, and later the watcher gets every event once, in order,
 * across the synced -> unsynced -> synced boundary, while writes continue. */
static void test_slow_watcher(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "slow/k", .prev_kv = true});
  assert_true(next(f, &i)->created);
  set_capacity(f, 5); /* 4 events fit, then the queue is full for good */

  writer w1 = {.s = x->ts.s, .from = 0, .n = 500};
  put_counter_init(&w1.c);
  write_main(&w1);
  assert_int_equal(put_counter_wait(&w1.c, 500, 20000), 500); /* nobody waited for the reader */
  assert_int_equal(w1.c.failed, 0);
  settle(x);
  assert_int_equal(resp_log_count(&f->log), 5);
  watch_hub_stats st = stats(x);
  assert_true(st.fell_behind >= 1);
  assert_int_equal(st.unsynced, 1);

  /* Drain with a tiny queue while another 1000 writes race the catch-up. */
  pthread_t t;
  writer w2 = {.s = x->ts.s, .from = 500, .n = 1000};
  put_counter_init(&w2.c);
  assert_int_equal(pthread_create(&t, NULL, write_main, &w2), 0);
  int64_t last = 0;
  expect_sequence(f, &i, 0, 0, 1500, &last, true);
  pthread_join(t, NULL);
  assert_int_equal(put_counter_wait(&w2.c, 1000, 20000), 1000);
  /* Back in sync: a new write arrives live. */
  set_capacity(f, -1);
  drain(f);
  for (int k = 0; k < 200 && stats(x).unsynced; k++) usleep(10000);
  assert_int_equal(stats(x).unsynced, 0);
  tput(x->ts.s, "slow/k", "1500");
  expect_sequence(f, &i, 0, 1500, 1, &last, false);
  /* Nothing beyond. */
  wprogress(f);
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(is_progress(m));
  assert_int_equal(m->header->revision, last);
  assert_true(stats(x).history_events > 0);
  fake_close(f);
  fx_close(x);
}

static void test_compaction_cancel(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  store *s = x->ts.s;
  int64_t r1 = tput(s, "c/k", "v1");
  int64_t r2 = tput(s, "c/k", "v2");
  int64_t r3 = tput(s, "c/k", "v3");
  tcompact(s, r2);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "c/k", .start = r1});
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_true(m->created && !m->canceled);
  assert_int_equal(m->watch_id, 0);
  m = next(f, &i);
  assert_true(m->canceled);
  assert_false(m->created);
  assert_int_equal(m->watch_id, 0);
  assert_int_equal(m->compact_revision, r2);
  assert_int_equal(m->header->revision, 0);
  assert_string_equal(m->cancel_reason, "");
  assert_int_equal(m->n_events, 0);
  assert_int_equal(stats(x).compacted, 1);
  assert_int_equal(stats(x).watchers, 0);
  /* At the compacted revision: served. */
  wcreate(f, (copts){.key = "c/k", .start = r2});
  assert_true(next(f, &i)->created);
  evlist ev;
  collect(f, &i, 1, 2, &ev);
  assert_true(value_is(ev.e[0]->kv, "v2"));
  assert_int_equal(ev.e[0]->kv->mod_revision, r2);
  assert_true(value_is(ev.e[1]->kv, "v3"));
  assert_int_equal(ev.e[1]->kv->mod_revision, r3);
  fake_close(f);
  fx_close(x);
}

/* A progress response promises every event up to its revision was sent: it
 * waits while a watcher of the stream is behind. */
static void test_progress_waits_for_sync(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "p"});
  assert_true(next(f, &i)->created);
  stall(f);
  int64_t rp = tput(x->ts.s, "p", "1");
  wprogress(f);
  usleep(100000);
  assert_int_equal(resp_log_count(&f->log), 1);
  set_capacity(f, -1);
  drain(f);
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_int_equal(m->n_events, 1);
  assert_int_equal(m->events[0]->kv->mod_revision, rp);
  m = next(f, &i);
  assert_true(is_progress(m));
  assert_true(m->header->revision >= rp);
  fake_close(f);
  fx_close(x);
}

static void test_progress_notify_interval(void **state) {
  (void)state;
  watch_hub_options o = {.progress_interval_ms = 100};
  fx *x = fx_open(&o);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "q", .progress = true});
  wcreate(f, (copts){.key = "q2"});
  assert_true(next(f, &i)->created);
  assert_true(next(f, &i)->created);
  usleep(550000);
  size_t n = resp_log_count(&f->log);
  int progress = 0;
  for (; i < n; i++) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&f->log, i, 0);
    assert_int_equal(m->watch_id, 0); /* only the watcher that asked */
    assert_int_equal(m->n_events, 0);
    assert_false(m->created || m->canceled);
    assert_int_equal(m->header->revision, trev(x->ts.s));
    progress++;
  }
  assert_true(progress >= 3 && progress <= 6);
  fake_close(f);
  fx_close(x);
}

static void txn_big(store *s, const char *prefix, int n, size_t valuelen) {
  const char *keys[64], *vals[64];
  char kb[64][32];
  char *v = malloc(valuelen + 1);
  memset(v, 'x', valuelen);
  v[valuelen] = 0;
  for (int k = 0; k < n; k++) {
    snprintf(kb[k], sizeof(kb[k]), "%s%02d", prefix, k);
    keys[k] = kb[k];
    vals[k] = v;
  }
  ttxn_puts(s, keys, vals, (size_t)n);
  free(v);
}

/* Checks fragments of one revision: n events in key order, fragment set on
 * all but the last response. Returns the number of responses. */
static int expect_fragments(fake *f, size_t *i, int64_t watch_id, int n, const char *prefix) {
  int got = 0, responses = 0;
  bool done = false;
  while (!done) {
    Etcdserverpb__WatchResponse *m = next(f, i);
    if (m->watch_id != watch_id) continue;
    responses++;
    for (size_t k = 0; k < m->n_events; k++, got++) {
      char key[32];
      snprintf(key, sizeof(key), "%s%02d", prefix, got);
      assert_true(key_is(m->events[k]->kv, key));
    }
    done = !m->fragment;
  }
  assert_int_equal(got, n);
  return responses;
}

static void test_fragments(void **state) {
  (void)state;
  watch_hub_options o = {.fragment_bytes = 1024};
  fx *x = fx_open(&o);
  fake *f = fake_open(x->hub);
  size_t i = 0;
  wcreate(f, (copts){.key = "fr/", .end = "fr0", .fragment = true});
  wcreate(f, (copts){.key = "fr/", .end = "fr0"});
  assert_true(next(f, &i)->created);
  assert_true(next(f, &i)->created);
  txn_big(x->ts.s, "fr/", 10, 300);
  size_t j = i;
  assert_true(expect_fragments(f, &i, 0, 10, "fr/") >= 4); /* ~3 events of 300 B per KiB */
  assert_int_equal(expect_fragments(f, &j, 1, 10, "fr/"), 1);
  /* Small revisions are never fragmented. */
  tput(x->ts.s, "fr/small", "1");
  Etcdserverpb__WatchResponse *m = next(f, &i);
  assert_false(m->fragment);
  settle(x);

  /* The queue fills after two fragments: the rest follow the drain, nothing
   * twice, nothing lost. */
  wcancel(f, 1);
  size_t n0 = resp_log_count(&f->log);
  i = n0;
  pthread_mutex_lock(&f->mu);
  f->capacity = f->queued + 2;
  pthread_mutex_unlock(&f->mu);
  txn_big(x->ts.s, "fr/", 10, 300);
  assert_int_equal(resp_log_wait(&f->log, n0 + 2, T), n0 + 2);
  usleep(50000);
  assert_int_equal(resp_log_count(&f->log), n0 + 2);
  set_capacity(f, -1);
  drain(f);
  /* Two fragments went out before the queue filled; the rest resume after. */
  assert_true(expect_fragments(f, &i, 0, 10, "fr/") >= 4);
  fake_close(f);
  fx_close(x);
}

/* 1000 single-key watchers on one stream and 1000 spread over 10 streams. */
static void test_many_watchers(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  enum { N = 1000, S = 10 };
  fake *one = fake_open(x->hub);
  fake *many[S];
  for (int k = 0; k < S; k++) many[k] = fake_open(x->hub);
  char key[32];
  for (int k = 0; k < N; k++) {
    snprintf(key, sizeof(key), "m/%04d", k);
    wcreate(one, (copts){.key = key});
    wcreate(many[k % S], (copts){.key = key});
  }
  wcreate(one, (copts){.key = "m/", .end = "m0"}); /* and one prefix watcher: id N */
  assert_int_equal(resp_log_wait(&one->log, N + 1, T), N + 1);
  for (int k = 0; k < S; k++) assert_int_equal(resp_log_wait(&many[k]->log, N / S, T), N / S);
  assert_int_equal(stats(x).watchers, 2 * N + 1);
  /* 1000 keys in 20 txns of 50. */
  for (int t = 0; t < N / 50; t++) {
    const char *keys[50], *vals[50];
    char kb[50][32];
    for (int k = 0; k < 50; k++) {
      snprintf(kb[k], sizeof(kb[k]), "m/%04d", t * 50 + k);
      keys[k] = kb[k];
      vals[k] = kb[k];
    }
    ttxn_puts(x->ts.s, keys, vals, 50);
  }
  /* Stream one: N single-event responses, plus the prefix watcher's 1000
   * events in at most 20 responses (whole txns of 50; several in one when the
   * fan-out found them queued together). */
  settle(x);
  size_t want = resp_log_count(&one->log);
  assert_true(want >= N + 1 + N + 1 && want <= N + 1 + N + N / 50);
  int *seen = calloc(N + 1, sizeof(int));
  int prefix_events = 0;
  for (size_t k = N + 1; k < want; k++) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&one->log, k, 0);
    if (m->watch_id == N) {
      assert_int_equal(m->n_events % 50, 0);
      prefix_events += (int)m->n_events;
      continue;
    }
    assert_int_equal(m->n_events, 1);
    snprintf(key, sizeof(key), "m/%04d", (int)m->watch_id);
    assert_true(key_is(m->events[0]->kv, key));
    seen[m->watch_id]++;
  }
  assert_int_equal(prefix_events, N);
  for (int k = 0; k < N; k++) assert_int_equal(seen[k], 1);
  for (int s = 0; s < S; s++) {
    size_t w = N / S * 2;
    assert_int_equal(resp_log_wait(&many[s]->log, w, T), w);
    usleep(s == 0 ? 50000 : 0);
    assert_int_equal(resp_log_count(&many[s]->log), w);
    for (size_t k = N / S; k < w; k++) {
      Etcdserverpb__WatchResponse *m = resp_log_get(&many[s]->log, k, 0);
      assert_int_equal(m->n_events, 1);
      int idx = (int)m->watch_id * S + s; /* stream s's watcher j watches key j*S+s */
      snprintf(key, sizeof(key), "m/%04d", idx);
      assert_true(key_is(m->events[0]->kv, key));
    }
  }
  free(seen);
  fake_close(one);
  for (int k = 0; k < S; k++) fake_close(many[k]);
  assert_int_equal(stats(x).watchers, 0);
  fx_close(x);
}

/* 1000 watchers on one stream fall behind together and catch up with one
 * history read per round. */
static void test_many_unsynced_catch_up(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  enum { N = 1000 };
  fake *f = fake_open(x->hub);
  char key[32];
  for (int k = 0; k < N; k++) {
    snprintf(key, sizeof(key), "u/%04d", k);
    wcreate(f, (copts){.key = key, .prev_kv = (k % 2) == 0});
  }
  assert_int_equal(resp_log_wait(&f->log, N, T), N);
  stall(f);
  for (int round = 0; round < 3; round++) {
    for (int t = 0; t < N / 100; t++) {
      const char *keys[100], *vals[100];
      char kb[100][32];
      for (int k = 0; k < 100; k++) {
        snprintf(kb[k], sizeof(kb[k]), "u/%04d", t * 100 + k);
        keys[k] = kb[k];
        vals[k] = round == 0 ? "a" : round == 1 ? "b" : "c";
      }
      ttxn_puts(x->ts.s, keys, vals, 100);
    }
  }
  settle(x);
  assert_int_equal(stats(x).unsynced, N);
  set_capacity(f, 64);
  int *count = calloc(N, sizeof(int));
  size_t i = N;
  for (int got = 0; got < 3 * N;) {
    Etcdserverpb__WatchResponse *m = resp_log_get(&f->log, i, 2);
    if (!m) {
      drain(f);
      continue;
    }
    i++;
    for (size_t k = 0; k < m->n_events; k++, got++) {
      const char *want = count[m->watch_id] == 0 ? "a" : count[m->watch_id] == 1 ? "b" : "c";
      snprintf(key, sizeof(key), "u/%04d", (int)m->watch_id);
      assert_true(key_is(m->events[k]->kv, key));
      assert_true(value_is(m->events[k]->kv, want));
      if (m->watch_id % 2 == 0 && count[m->watch_id] > 0) assert_non_null(m->events[k]->prev_kv);
      if (m->watch_id % 2 == 1) assert_null(m->events[k]->prev_kv);
      count[m->watch_id]++;
    }
  }
  for (int k = 0; k < N; k++) assert_int_equal(count[k], 3);
  set_capacity(f, -1);
  drain(f);
  for (int k = 0; k < 200 && stats(x).unsynced; k++) usleep(10000);
  assert_int_equal(stats(x).unsynced, 0);
  free(count);
  fake_close(f);
  fx_close(x);
}

typedef struct churn {
  store *s;
  atomic_bool stop;
  put_counter c;
  int n;
} churn;

static void *churn_main(void *arg) {
  churn *c = arg;
  while (!atomic_load(&c->stop)) {
    tput_async(c->s, "pk", "v", &c->c);
    c->n++;
    if (c->n % 64 == 0) put_counter_wait(&c->c, c->n - 32, 1000); /* keep the queue short */
  }
  return NULL;
}

/* want_prev flips on with each new prev_kv watcher while writes stream in: a
 * write applied just before the flip has no prev, and the watcher must still
 * get one (it replays that revision from history). */
static void test_prev_kv_set_while_writing(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  tput(x->ts.s, "pk", "first");
  churn c = {.s = x->ts.s};
  put_counter_init(&c.c);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, churn_main, &c), 0);
  for (int round = 0; round < 100; round++) {
    fake *f = fake_open(x->hub);
    size_t i = 0;
    wcreate(f, (copts){.key = "pk", .prev_kv = true});
    assert_true(next(f, &i)->created);
    int got = 0;
    int64_t last = 0;
    while (got < 3) {
      Etcdserverpb__WatchResponse *m = next(f, &i);
      for (size_t k = 0; k < m->n_events; k++, got++) {
        assert_non_null(m->events[k]->prev_kv);
        assert_int_equal(m->events[k]->prev_kv->mod_revision + 1, m->events[k]->kv->mod_revision);
        assert_true(m->events[k]->kv->mod_revision > last);
        last = m->events[k]->kv->mod_revision;
      }
    }
    fake_close(f); /* the last prev_kv watcher: want_prev turns off again */
  }
  atomic_store(&c.stop, true);
  pthread_join(t, NULL);
  put_counter_wait(&c.c, c.n, 20000);
  fx_close(x);
}

/* A client that keeps creating watchers but never reads is ended. */
static void test_control_flood_aborts(void **state) {
  (void)state;
  watch_hub_options o = {.max_pending_control = 8};
  fx *x = fx_open(&o);
  fake *f = fake_open(x->hub);
  set_capacity(f, 0);
  for (int k = 0; k < 20; k++) wcreate(f, (copts){.key = "a"});
  assert_true(f->aborted);
  assert_int_equal(stats(x).watchers, 0);
  assert_int_equal(stats(x).streams, 0);
  wcreate(f, (copts){.key = "a"}); /* closed: ignored */
  assert_int_equal(stats(x).watchers, 0);
  fake_close(f);
  fx_close(x);
}

/* A stream released while the sync thread may be working on it, and a hub
 * destroyed while a stream is still open. */
static void test_lifecycle(void **state) {
  (void)state;
  fx *x = fx_open(NULL);
  for (int k = 0; k < 20; k++) tput(x->ts.s, "l", "v");
  for (int round = 0; round < 50; round++) {
    fake *f = fake_open(x->hub);
    wcreate(f, (copts){.key = "l", .start = 1});
    if (round % 2) stall(f);
    fake_close(f);
  }
  fake *open = fake_open(x->hub);
  wcreate(open, (copts){.key = "l", .start = 1});
  watch_hub_stop(x->hub);
  test_store_close(&x->ts);
  watch_hub_destroy(x->hub);
  fake_close(open); /* the last reference frees the hub */
  free(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_events_cancel),
      cmocka_unit_test(test_ids_and_create_errors),
      cmocka_unit_test(test_history_replay_prev_kv),
      cmocka_unit_test(test_filters_and_prev_flag),
      cmocka_unit_test(test_key_kinds_and_future_start),
      cmocka_unit_test(test_slow_watcher),
      cmocka_unit_test(test_compaction_cancel),
      cmocka_unit_test(test_progress_waits_for_sync),
      cmocka_unit_test(test_progress_notify_interval),
      cmocka_unit_test(test_fragments),
      cmocka_unit_test(test_many_watchers),
      cmocka_unit_test(test_many_unsynced_catch_up),
      cmocka_unit_test(test_prev_kv_set_while_writing),
      cmocka_unit_test(test_control_flood_aborts),
      cmocka_unit_test(test_lifecycle),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
