/* services/store/watch/watch_hub.c — see watch_hub.h. Lifecycle, the sync
 * thread that replays history to unsynced watchers, and progress; the
 * hand-off from the store and the fan-out thread are in watch_fanout.c.
 *
 * The synced/unsynced boundary. hub->cur_rev is the newest revision the
 * fan-out has finished (every synced watcher that needed it got it); the store
 * publishes a revision before handing it over, so history always reaches at
 * least cur_rev. A watcher at next_rev is moved into the synced index, under
 * hub->mu, only when cur_rev < next_rev: every revision it still needs is then
 * yet to be fanned out, and the fan-out skips revisions below a watcher's
 * next_rev, so history and fan-out can overlap but never leave a gap or send a
 * revision twice. A sync round reads history without the lock (the fan-out
 * keeps running), then sends under it; if the fan-out moved past what the
 * round read, the next round reads the rest.
 *
 * prev_kv: the store computes prevs only while want_prev is set, and a write
 * may have been applied just before a prev_kv watcher set it. A synced prev_kv
 * watcher that meets an event lacking the prev it must have (any delete, or a
 * put of an existing key) goes unsynced and replays that revision from history,
 * which computes prevs itself. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log/log.h"
#include "services/store/watch/watch_internal.h"

#define DEFAULT_PROGRESS_MS (10 * 60 * 1000)
#define DEFAULT_FRAGMENT_BYTES (1536 * 1024 + 512 * 1024)
#define DEFAULT_MAX_SEND_BYTES (4 * 1024 * 1024)
#define DEFAULT_MAX_CONTROL 4096

/* One sync round reads at most this many revisions of history and keeps at
 * most about this many bytes of events for sending (plus one revision). */
#define SYNC_WINDOW_REVS 1000
#define SYNC_BUDGET_BYTES (2 * 1024 * 1024)
/* Rounds on one stream before the next stream gets a turn. */
#define SYNC_ROUNDS_PER_TURN 8
/* After an allocation failure, retry unsynced watchers this much later. */
#define SYNC_RETRY_MS 100

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void watch_schedule_retry(watch_hub *h) {
  if (h->retry_at) return;
  h->retry_at = now_ms() + SYNC_RETRY_MS;
  pthread_cond_signal(&h->cond);
}

/* ------------------------------------------------------------------ sync rounds */

typedef struct pick pick;

typedef struct sync_round {
  watch_hub *h;
  watcher **ws;
  size_t nws;
  watch_group *index; /* over ws, when there are many */
  watcher **hits;
  int64_t covered; /* every revision up to here was read */
  size_t bytes;
  bool full, oom;
  watch_batch *views; /* copies of the picked events, one per revision */
  size_t nviews, vcap;
  pick *picks; /* the batch being collected: (watcher, event) pairs */
  size_t npicks, picks_cap;
} sync_round;

static int push_event(watcher *w, watch_ev ev) {
  if (w->cu_n == w->cu_cap) {
    size_t n = w->cu_cap ? w->cu_cap * 2 : 16;
    watch_ev *pe = realloc(w->cu_evs, n * sizeof(*pe));
    if (!pe) return -ENOMEM;
    w->cu_evs = pe;
    w->cu_cap = n;
  }
  w->cu_evs[w->cu_n++] = ev;
  return 0;
}

typedef struct hit_ctx {
  watcher **hits;
  size_t n;
} hit_ctx;

static void collect_hit(void *arg, void *item) {
  hit_ctx *c = arg;
  c->hits[c->n++] = item;
}

struct pick {
  watcher *w;
  size_t index; /* into the store batch */
};

static int push_pick(sync_round *r, watcher *w, size_t index) {
  if (r->npicks == r->picks_cap) {
    size_t n = r->picks_cap ? r->picks_cap * 2 : 64;
    pick *p = realloc(r->picks, n * sizeof(*p));
    if (!p) return -ENOMEM;
    r->picks = p;
    r->picks_cap = n;
  }
  r->picks[r->npicks++] = (pick){w, index};
  return 0;
}

/* store_history's callback, under the store's read lock: picks each snapshot
 * watcher's events and encodes just those, once for all of them. Only
 * immutable watcher fields and the sync thread's own scratch are touched, so
 * hub->mu is not needed. */
static void sync_collect(void *arg, const store_event_batch *b) {
  sync_round *r = arg;
  if (r->full || r->oom) return;
  r->npicks = 0;
  size_t nsel = 0;
  bool *selected = calloc(b->n ? b->n : 1, sizeof(*selected));
  size_t *newidx = malloc((b->n ? b->n : 1) * sizeof(*newidx));
  if (!selected || !newidx) goto oom;
  for (size_t i = 0; i < b->n; i++) {
    const store_event *e = &b->events[i];
    hit_ctx hc = {.hits = r->hits};
    if (r->index) {
      watch_group_match(r->index, e->key, e->keylen, collect_hit, &hc);
    } else {
      for (size_t j = 0; j < r->nws; j++)
        if (watch_range_contains(&r->ws[j]->range, e->key, e->keylen)) hc.hits[hc.n++] = r->ws[j];
    }
    for (size_t j = 0; j < hc.n; j++) {
      watcher *w = hc.hits[j];
      if (b->revision < w->cu_next) continue;
      if (e->is_delete ? w->no_delete : w->no_put) continue;
      if (b->revision == w->cu_next && w->cu_seen++ < w->cu_skip) continue; /* already sent */
      if (push_pick(r, w, i) < 0) goto oom;
      if (!selected[i]) {
        selected[i] = true;
        newidx[i] = nsel++;
      }
    }
  }
  if (nsel) {
    /* A shallow batch of the selected events, encoded while they are lent. */
    store_event *evs = malloc(nsel * sizeof(*evs));
    if (!evs) goto oom;
    for (size_t i = 0; i < b->n; i++)
      if (selected[i]) evs[newidx[i]] = b->events[i];
    store_event_batch sub = {.revision = b->revision, .n = nsel, .events = evs};
    if (r->nviews == r->vcap) {
      size_t n = r->vcap ? r->vcap * 2 : 16;
      watch_batch *p = realloc(r->views, n * sizeof(*p));
      if (!p) {
        free(evs);
        goto oom;
      }
      r->views = p;
      r->vcap = n;
    }
    int rc = watch_batch_encode(&r->views[r->nviews], &sub);
    free(evs);
    if (rc < 0) goto oom;
    watch_batch *v = &r->views[r->nviews++];
    r->bytes += v->bytes;
    for (size_t k = 0; k < r->npicks; k++) {
      watcher *w = r->picks[k].w;
      size_t x = newidx[r->picks[k].index];
      if (push_event(w, watch_batch_event(v, x, w->prev_kv)) < 0) goto oom;
    }
  }
  free(selected);
  free(newidx);
  r->covered = b->revision;
  if (r->bytes >= SYNC_BUDGET_BYTES) r->full = true;
  return;
oom:
  free(selected);
  free(newidx);
  r->oom = true;
}

/* Compares a + (asucc ? "\0" : "") with b + (bsucc ? "\0" : ""). */
static int end_cmp(const uint8_t *a, size_t alen, bool asucc, const uint8_t *b, size_t blen,
                   bool bsucc) {
  size_t la = alen + asucc, lb = blen + bsucc;
  size_t n = la < lb ? la : lb;
  for (size_t i = 0; i < n; i++) {
    uint8_t x = i < alen ? a[i] : 0, y = i < blen ? b[i] : 0;
    if (x != y) return x < y ? -1 : 1;
  }
  return la < lb ? -1 : la > lb ? 1 : 0;
}

/* The smallest range holding every snapshot watcher's (etcd's end rules): one
 * history read serves them all. */
static void bounding_range(sync_round *r, const uint8_t **lo, size_t *lolen, uint8_t **hi_owned,
                           const uint8_t **hi, size_t *hilen) {
  static const uint8_t zero = 0;
  *hi_owned = NULL;
  if (r->nws == 1) {
    const watch_range *w = &r->ws[0]->range;
    *lo = w->key, *lolen = w->keylen, *hi = w->end, *hilen = w->endlen;
    return;
  }
  const watch_range *min = &r->ws[0]->range;
  const uint8_t *max = NULL;
  size_t maxlen = 0;
  bool unbounded = false, max_succ = false;
  for (size_t i = 0; i < r->nws; i++) {
    const watch_range *w = &r->ws[i]->range;
    if (end_cmp(w->key, w->keylen, false, min->key, min->keylen, false) < 0) min = w;
    if (watch_range_is_from_key(w)) {
      unbounded = true;
      continue;
    }
    /* The end of a single key k is its successor k + "\0". */
    bool succ = watch_range_is_single(w);
    const uint8_t *e = succ ? w->key : w->end;
    size_t elen = succ ? w->keylen : w->endlen;
    if (!max || end_cmp(e, elen, succ, max, maxlen, max_succ) > 0)
      max = e, maxlen = elen, max_succ = succ;
  }
  *lo = min->key, *lolen = min->keylen;
  *hi = &zero, *hilen = 1; /* from-key: everything above lo */
  if (unbounded || !max) return;
  if (!max_succ) {
    *hi = max, *hilen = maxlen;
    return;
  }
  *hi_owned = malloc(maxlen + 1);
  if (!*hi_owned) return;
  memcpy(*hi_owned, max, maxlen);
  (*hi_owned)[maxlen] = 0;
  *hi = *hi_owned, *hilen = maxlen + 1;
}

/* Sends w's collected events, whole revisions per response. Under hub->mu. */
static void sync_send(watch_hub *h, watcher *w, int64_t covered) {
  watch_stream *st = w->stream;
  int rc;
  size_t sent = watch_emit_revisions(st, w, covered, w->cu_evs, w->cu_n, &rc);
  h->history_events += sent;
  if (rc == -EINVAL) {
    watch_cancel_too_large(w, w->cu_evs[sent].len);
    return;
  }
  if (sent < w->cu_n) {
    if (rc == -ENOMEM) watch_schedule_retry(h);
    return;
  }
  if (!w->removed && w->next_rev <= covered) {
    w->next_rev = covered + 1;
    w->skip = 0;
  }
}

static void round_free(sync_round *r) {
  for (size_t i = 0; i < r->nws; i++) {
    r->ws[i]->cu_n = 0;
    watch_unref(r->ws[i]);
  }
  for (size_t i = 0; i < r->nviews; i++) watch_batch_release(&r->views[i]);
  free(r->views);
  free(r->picks);
  free(r->ws);
  free(r->hits);
  watch_group_destroy(r->index);
}

/* One round for st: called and returns with hub->mu held (released while the
 * store is read). Returns false when the stream needs no further round now. */
static bool sync_round_run(watch_hub *h, watch_stream *st) {
  sync_round r = {.h = h};
  r.ws = malloc(st->nunsynced * sizeof(*r.ws));
  r.hits = malloc(st->nunsynced * sizeof(*r.hits));
  if (!r.ws || !r.hits) {
    free(r.ws);
    free(r.hits);
    watch_schedule_retry(h);
    return false;
  }
  int64_t from = INT64_MAX;
  bool with_prev = false;
  for (watcher *w = st->unsynced, *next; w; w = next) {
    next = w->u_next;
    if (h->cur_rev < w->next_rev && w->skip == 0) {
      watch_make_synced(w); /* needs nothing fanned out already */
      if (w->synced) continue;
    }
    w->refs++;
    w->cu_next = w->next_rev;
    w->cu_skip = w->skip;
    w->cu_seen = 0;
    w->cu_n = 0;
    if (w->next_rev < from) from = w->next_rev;
    with_prev |= w->prev_kv;
    r.ws[r.nws++] = w;
  }
  if (r.nws == 0) {
    round_free(&r);
    watch_try_progress(st);
    return false;
  }
  if (r.nws > 8) {
    r.index = watch_group_create();
    for (size_t i = 0; r.index && i < r.nws; i++)
      if (watch_group_add(r.index, &r.ws[i]->range, r.ws[i]) < 0) {
        watch_group_destroy(r.index);
        r.index = NULL;
      }
  }
  pthread_mutex_unlock(&h->mu);

  Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(h->store, &hdr);
  int64_t to = hdr.revision;
  if (to - from >= SYNC_WINDOW_REVS) to = from + SYNC_WINDOW_REVS - 1;
  r.covered = from - 1;
  const uint8_t *lo, *hi;
  size_t lolen, hilen;
  uint8_t *hi_owned;
  bounding_range(&r, &lo, &lolen, &hi_owned, &hi, &hilen);
  kv_error kerr = {0};
  int rc = 0;
  if (to >= from)
    rc = store_history(h->store, lo, lolen, hi, hilen, from, to, with_prev, sync_collect, &r,
                       &kerr);
  free(hi_owned);
  int64_t compact_rev = 0;
  bool compacted = rc < 0 && kerr.message && strcmp(kerr.message, KV_ERR_COMPACTED) == 0;
  if (compacted) {
    store_status ss;
    store_get_status(h->store, &ss);
    compact_rev = ss.compact_revision;
  }
  if (!r.full && !r.oom && rc == 0 && to > r.covered) r.covered = to;

  pthread_mutex_lock(&h->mu);
  bool again = true;
  if (rc < 0 && !compacted) {
    LOG_WARN("watch: reading history failed", "error", kerr.message ? kerr.message : "?");
    watch_schedule_retry(h);
    again = false;
  } else if (compacted) {
    for (size_t i = 0; i < r.nws; i++) {
      watcher *w = r.ws[i];
      if (w->removed || w->next_rev >= compact_rev) continue;
      /* etcd: created first, then canceled with compact_revision and header
       * revision 0, no reason. */
      ctrl_msg m = {.watch_id = w->id, .header_rev = 0, .canceled = true,
                    .compact_revision = compact_rev};
      h->compacted++;
      watch_remove(w);
      watch_ctrl(st, &m);
    }
  } else {
    if (r.oom) watch_schedule_retry(h);
    for (size_t i = 0; i < r.nws && !st->closed; i++) {
      watcher *w = r.ws[i];
      if (w->removed || st->blocked) continue;
      /* Only whole revisions go out: an allocation failure may have cut the
       * last one short. */
      while (w->cu_n && w->cu_evs[w->cu_n - 1].rev > r.covered) w->cu_n--;
      if (r.covered >= w->cu_next) sync_send(h, w, r.covered);
      if (!w->removed && !st->blocked && h->cur_rev < w->next_rev && w->skip == 0)
        watch_make_synced(w);
    }
    if (r.oom) again = false;
  }
  round_free(&r);
  if (st->closed || st->blocked || !st->nunsynced) again = false;
  watch_try_progress(st);
  return again;
}

static void sync_stream(watch_hub *h, watch_stream *st) {
  for (int i = 0; i < SYNC_ROUNDS_PER_TURN; i++) {
    if (st->closed || st->blocked || !st->nunsynced) {
      watch_try_progress(st);
      return;
    }
    if (!sync_round_run(h, st)) return;
  }
  if (!st->closed && !st->blocked && st->nunsynced) watch_enqueue(st); /* the others' turn */
}

/* ------------------------------------------------------------------ progress */

static void progress_tick(watch_hub *h) {
  for (watch_stream *st = h->streams; st; st = st->h_next) {
    for (watcher *w = st->watchers; w; w = w->s_next) {
      if (w->progress_notify && w->synced && !w->had_events && !w->bl_n && !st->blocked &&
          !st->ctrl_head) {
        Etcdserverpb__ResponseHeader hdr = h->base_header;
        hdr.revision = h->cur_rev;
        Etcdserverpb__WatchResponse resp = ETCDSERVERPB__WATCH_RESPONSE__INIT;
        resp.header = &hdr;
        resp.watch_id = w->id;
        watch_send(st, &resp); /* dropped when full, as etcd does */
      }
      w->had_events = false;
    }
  }
}

void watch_progress_check(watch_hub *h) {
  for (watch_stream *st = h->streams; st && h->nprogress; st = st->h_next)
    if (st->progress_pending) watch_try_progress(st);
}

/* ------------------------------------------------------------------ sync thread */

static void *sync_main(void *arg) {
  watch_hub *h = arg;
  int64_t interval = h->opts.progress_interval_ms;
  int64_t next_tick = interval > 0 ? now_ms() + interval : INT64_MAX;
  pthread_mutex_lock(&h->mu);
  while (!h->stopping) {
    int64_t now = now_ms();
    if (now >= next_tick) {
      progress_tick(h);
      next_tick = now + interval;
    }
    if (h->retry_at && now >= h->retry_at) {
      h->retry_at = 0;
      for (watch_stream *st = h->streams; st; st = st->h_next)
        if (st->nunsynced && !st->blocked) watch_enqueue(st);
    }
    if (h->work_head) {
      watch_stream *st = h->work_head;
      h->work_head = st->q_next;
      if (!h->work_head) h->work_tail = NULL;
      st->q_next = NULL;
      st->queued = false;
      sync_stream(h, st);
      watch_stream_unref(st);
      continue;
    }
    int64_t wake = next_tick;
    if (h->retry_at && h->retry_at < wake) wake = h->retry_at;
    if (wake == INT64_MAX) {
      pthread_cond_wait(&h->cond, &h->mu);
    } else {
      struct timespec ts = {.tv_sec = wake / 1000, .tv_nsec = (wake % 1000) * 1000000};
      pthread_cond_timedwait(&h->cond, &h->mu, &ts);
    }
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

watch_hub *watch_hub_create(store *s, const watch_hub_options *opts, keel_error *err) {
  watch_hub *h = calloc(1, sizeof(*h));
  if (!h) {
    keel_error_set(err, ENOMEM, "watch hub: out of memory");
    return NULL;
  }
  if (opts) h->opts = *opts;
  if (h->opts.progress_interval_ms == 0) h->opts.progress_interval_ms = DEFAULT_PROGRESS_MS;
  if (h->opts.fragment_bytes <= 0) h->opts.fragment_bytes = DEFAULT_FRAGMENT_BYTES;
  if (h->opts.max_send_bytes <= 0) h->opts.max_send_bytes = DEFAULT_MAX_SEND_BYTES;
  if (h->opts.max_pending_control <= 0) h->opts.max_pending_control = DEFAULT_MAX_CONTROL;
  h->store = s;
  Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
  store_fill_header(s, &hdr);
  h->base_header = hdr;
  h->base_header.revision = 0;
  h->cur_rev = hdr.revision;
  atomic_init(&h->want_prev, false);
  atomic_init(&h->refs, 1);
  pthread_mutex_init(&h->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&h->cond, &ca);
  pthread_cond_init(&h->qcond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&h->qmu, NULL);
  atomic_init(&h->backlogged, false);
  h->synced = watch_group_create();
  if (!h->synced) {
    keel_error_set(err, ENOMEM, "watch hub: out of memory");
    watch_hub_destroy(h);
    return NULL;
  }
  if (watch_fanout_start(h, err) < 0) {
    watch_hub_destroy(h);
    return NULL;
  }
  int rc = pthread_create(&h->worker, NULL, sync_main, h);
  if (rc != 0) {
    keel_error_set_errno(err, rc, "watch hub: start the sync thread");
    watch_hub_destroy(h);
    return NULL;
  }
  pthread_setname_np(h->worker, "watch-sync");
  h->worker_started = true;
  store_set_event_sink(s, watch_fanout_sink, h, &h->want_prev);
  return h;
}

void watch_hub_stop(watch_hub *h) {
  pthread_mutex_lock(&h->mu);
  bool join = h->worker_started;
  h->worker_started = false;
  h->stopping = true; /* the fan-out thread fans out nothing more */
  pthread_cond_broadcast(&h->cond);
  pthread_mutex_unlock(&h->mu);
  if (join) pthread_join(h->worker, NULL);
  watch_fanout_stop(h);
}

void watch_hub_destroy(watch_hub *h) {
  if (!h) return;
  watch_hub_stop(h);
  pthread_mutex_lock(&h->mu);
  while (h->work_head) {
    watch_stream *st = h->work_head;
    h->work_head = st->q_next;
    st->queued = false;
    watch_stream_unref(st);
  }
  h->work_tail = NULL;
  watch_backlog_release_all(h);
  pthread_mutex_unlock(&h->mu);
  watch_hub_unref(h);
}

void watch_hub_unref(watch_hub *h) {
  if (atomic_fetch_sub(&h->refs, 1) != 1) return;
  watch_group_destroy(h->synced);
  watch_fanout_free(h);
  free(h->touched);
  free(h->jobs);
  free(h->job_evs);
  pthread_cond_destroy(&h->cond);
  pthread_mutex_destroy(&h->mu);
  free(h);
}

void watch_hub_get_stats(watch_hub *h, watch_hub_stats *out) {
  pthread_mutex_lock(&h->mu);
  out->revision = h->cur_rev;
  out->streams = h->nstreams;
  out->watchers = h->nwatchers;
  out->unsynced = h->nunsynced;
  out->synced = h->nwatchers - h->nunsynced;
  out->fell_behind = h->fell_behind;
  out->history_events = h->history_events;
  out->compacted = h->compacted;
  out->held_back = h->held_back;
  pthread_mutex_unlock(&h->mu);
  pthread_mutex_lock(&h->qmu);
  out->pending = h->qlen + h->q_inhand;
  out->overflowed = h->overflowed;
  pthread_mutex_unlock(&h->qmu);
}
