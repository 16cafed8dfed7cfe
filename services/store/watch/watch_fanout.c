/* services/store/watch/watch_fanout.c — the hand-off from the store and the
 * fan-out thread.
 *
 * The hand-off. The store calls the sink on its WAL thread, after publishing a
 * revision and before acknowledging the write and starting the next group
 * commit, so the sink only appends the batch to a queue under its own lock
 * (qmu) and wakes the fan-out thread. It never waits for hub->mu, which the
 * fan-out and sync threads hold while sending: with no synced watcher and
 * nothing queued it may *try* the lock to move cur_rev itself and skip the
 * thread wake-up (the common case of writes nobody watches). The queue is
 * bounded by max_pending_bytes: above it a revision is not queued but
 * recorded as part of a dropped run (an entry without a batch), and the
 * fan-out thread sends every synced watcher that may have needed that run to
 * history, as if its stream had been full. Writers never wait for watchers.
 *
 * The fan-out thread takes the whole queue at once (swapping arrays) and fans
 * out entry by entry under hub->mu, in revision order, moving cur_rev as it
 * goes; hub->cur_rev still means "every revision up to here went to every
 * synced watcher that needed it", so the synced/unsynced rule of watch_hub.c
 * holds unchanged: a watcher joins the synced index only when cur_rev <
 * next_rev, and fan-out skips revisions below a watcher's next_rev.
 *
 * Encoding. A revision that reaches at least one watcher is encoded once
 * (watch_batch.h); each watcher's response is its prefix plus ranges of it.
 *
 * Rounds. For each revision (and each flush of held-back events) the fan-out
 * thread first decides every watcher's fate and lists the sends as jobs, then
 * has the sender pool send them all (watch_senders.c, several streams at
 * once), then applies the results: positions, unsynced watchers, cancels. It
 * holds hub->mu throughout, so to everyone else a round is one step, as the
 * single sends were.
 *
 * Coalescing. Every response costs the transport the same fixed work however
 * few events it carries, so a stream whose transport already has a response
 * waiting behind the one being written (WATCH_COALESCE_DEPTH) gets no new
 * response: its watchers hold their events back (references to the shared
 * encodings, bounded per watcher) and the fan-out thread sends each watcher's
 * held events as one response of several revisions once the transport has
 * drained, checking at every revision it fans out and every
 * BACKLOG_POLL_US while any are held. The fan-out thread itself groups the
 * same way: when it finds several revisions queued (it fell behind the
 * writes), every watcher holds its events of up to GROUP_REVS of them and
 * gets them in one response, like a group commit. Under load, responses grow
 * instead of queueing up, the way a catch-up from history batches revisions.
 * A watcher holding events back stays synced (hub->cur_rev then means
 * delivered *or held*); if it has to leave the synced index its position goes
 * back to its oldest held revision, so nothing is lost, and a progress
 * request waits until nothing is held. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "services/store/watch/watch_internal.h"

#define DEFAULT_MAX_PENDING_BYTES (64 * 1024 * 1024)
#define QUEUE_INITIAL 256
/* Events a watcher may hold back before it goes unsynced instead, and for how
 * long a stream may hold any (a client that stopped reading then waits in
 * history, where the transport's writable callback wakes it, instead of
 * being polled). */
#define BACKLOG_MAX_BYTES (1024 * 1024)
#define BACKLOG_MAX_MS 2000
/* How often held-back events are retried while the fan-out is idle. */
#define BACKLOG_POLL_US 1000
/* Queued revisions the fan-out thread folds into one response per watcher. */
#define GROUP_REVS 64

/* What a batch holds in memory, roughly. */
static size_t batch_bytes(const store_event_batch *b) {
  size_t n = sizeof(*b) + b->n * sizeof(store_event);
  for (size_t i = 0; i < b->n; i++)
    n += b->events[i].keylen + b->events[i].valuelen + b->events[i].prev_valuelen;
  return n;
}

/* ------------------------------------------------------------------ hand-off */

static bool queue_grow(watch_hub *h) {
  size_t n = h->qcap * 2;
  fanout_entry *q = realloc(h->q, n * sizeof(*q));
  if (!q) return false;
  h->q = q;
  h->qcap = n;
  return true;
}

/* Adds rev to the dropped run at the tail, or starts one. Under qmu. */
static void drop_revision(watch_hub *h, int64_t rev) {
  fanout_entry *tail = h->qlen ? &h->q[h->qlen - 1] : NULL;
  h->overflowed++;
  if (tail && !tail->b) {
    tail->to = rev;
  } else if (h->qlen < h->qcap) {
    h->q[h->qlen++] = (fanout_entry){.from = rev, .to = rev};
  } else {
    /* Full and out of memory: the tail batch joins the run. */
    store_event_batch_free(tail->b);
    h->qbytes -= tail->bytes;
    tail->b = NULL;
    tail->bytes = 0;
    tail->to = rev;
  }
}

void watch_fanout_sink(void *arg, store_event_batch *b) {
  watch_hub *h = arg;
  size_t bytes = batch_bytes(b);
  pthread_mutex_lock(&h->qmu);
  if (h->q_stopping) {
    pthread_mutex_unlock(&h->qmu);
    store_event_batch_free(b);
    return;
  }
  if (h->qlen == 0 && h->q_inhand == 0 && pthread_mutex_trylock(&h->mu) == 0) {
    /* Nothing is ahead of b and nobody could need it: it is fanned out. */
    bool idle = !h->stopping && watch_group_size(h->synced) == 0 && h->nprogress == 0;
    if (idle && b->revision > h->cur_rev) h->cur_rev = b->revision;
    pthread_mutex_unlock(&h->mu);
    if (idle) {
      pthread_mutex_unlock(&h->qmu);
      store_event_batch_free(b);
      return;
    }
  }
  bool pending = h->qlen || h->q_inhand;
  store_event_batch *dropped = NULL;
  if ((pending && h->qbytes + bytes > (size_t)h->opts.max_pending_bytes) ||
      (h->qlen == h->qcap && !queue_grow(h))) {
    drop_revision(h, b->revision);
    dropped = b;
  } else {
    h->q[h->qlen++] =
        (fanout_entry){.b = b, .from = b->revision, .to = b->revision, .bytes = bytes};
    h->qbytes += bytes;
  }
  if (h->q_waiting) pthread_cond_signal(&h->qcond);
  pthread_mutex_unlock(&h->qmu);
  store_event_batch_free(dropped);
}

/* ------------------------------------------------------------------ fan-out */

typedef struct match_ctx {
  watch_hub *h;
  int64_t rev;
  size_t index;
  const store_event *e;
} match_ctx;

static void match_one(void *arg, void *item) {
  match_ctx *c = arg;
  watcher *w = item;
  watch_hub *h = c->h;
  if (w->next_rev > c->rev) return; /* starts later */
  if (c->e->is_delete ? w->no_delete : w->no_put) return;
  if (w->stamp != h->stamp) {
    w->stamp = h->stamp;
    w->nmatch = 0;
    w->refs++; /* a send may end the stream and remove its watchers */
    h->touched[h->ntouched++] = w; /* capacity > watchers, kept by create */
  }
  if (w->nmatch == SIZE_MAX) return;
  if (w->nmatch == w->match_cap) {
    size_t n = w->match_cap ? w->match_cap * 2 : 4;
    size_t *p = realloc(w->match, n * sizeof(*p));
    if (!p) {
      w->nmatch = SIZE_MAX; /* lost track: replay this revision from history */
      return;
    }
    w->match = p;
    w->match_cap = n;
  }
  w->match[w->nmatch++] = c->index;
}

/* Room for n more events in hub->job_evs. */
static int job_evs_reserve(watch_hub *h, size_t n) {
  if (h->njob_evs + n <= h->job_evs_cap) return 0;
  size_t cap = h->job_evs_cap ? h->job_evs_cap : 64;
  while (cap < h->njob_evs + n) cap *= 2;
  watch_ev *e = realloc(h->job_evs, cap * sizeof(*e));
  if (!e) return -ENOMEM;
  h->job_evs = e;
  h->job_evs_cap = cap;
  return 0;
}

/* ------------------------------------------------------------------ held back */

int64_t watch_backlog_clear(watcher *w) {
  if (!w->bl_n) return 0;
  int64_t first = w->bl[0].rev;
  for (size_t i = 0; i < w->bl_n; i++) watch_batch_drop(w->bl[i].hold);
  w->bl_n = 0;
  w->bl_bytes = 0;
  w->stream->nbacklog--;
  free(w->bl);
  w->bl = NULL;
  w->bl_cap = 0;
  return first;
}

static int64_t monotonic_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool backed_up(watch_stream *st) {
  return st->ops.queued && st->ops.queued(st->ctx) >= WATCH_COALESCE_DEPTH;
}

/* Holds evs (one revision, each with its batch) back for w. */
static int backlog_push(watch_hub *h, watcher *w, const watch_ev *evs, size_t n) {
  if (w->bl_n + n > w->bl_cap) {
    size_t cap = w->bl_cap ? w->bl_cap : 8;
    while (cap < w->bl_n + n) cap *= 2;
    watch_ev *p = realloc(w->bl, cap * sizeof(*p));
    if (!p) return -ENOMEM;
    w->bl = p;
    w->bl_cap = cap;
  }
  watch_stream *st = w->stream;
  if (!w->bl_n && st->nbacklog++ == 0) st->bl_since_ms = monotonic_ms();
  for (size_t i = 0; i < n; i++) {
    watch_batch_hold(evs[i].hold);
    w->bl[w->bl_n++] = evs[i];
    w->bl_bytes += evs[i].len;
  }
  h->held_back += n;
  if (!st->on_backlog) {
    st->on_backlog = true;
    st->refs++;
    st->b_next = h->backlog_head;
    h->backlog_head = st;
    atomic_store(&h->backlogged, true);
  }
  return 0;
}

/* A watcher that did not get revision rev: unsynced, positioned at rev (or at
 * the oldest event it held back). */
static void fall_behind(watcher *w, int64_t rev) {
  watch_stream *st = w->stream;
  int64_t held = watch_backlog_clear(w);
  w->next_rev = held && held < rev ? held : rev;
  w->skip = 0;
  watch_make_unsynced(w);
  if (!st->blocked) watch_enqueue(st);
}

/* Takes w's held-back events out of w into job (a round's job of several
 * revisions per response). They stay held until sent: the transport takes its
 * own references. */
static void backlog_take(watcher *w, watch_send_job *job) {
  *job = (watch_send_job){.w = w, .evs = w->bl, .n = w->bl_n};
  w->bl = NULL;
  w->bl_n = w->bl_cap = 0;
  w->bl_bytes = 0;
  w->stream->nbacklog--;
}

/* After job (from backlog_take) was sent: what did not go out is replayed from
 * history. */
static void backlog_sent(watch_hub *h, const watch_send_job *job) {
  watcher *w = job->w;
  if (job->rc == -EINVAL) {
    if (!w->removed) watch_cancel_too_large(w, job->evs[job->sent].len);
  } else if (job->sent < job->n && !w->removed && w->synced) {
    h->fell_behind++;
    watch_make_unsynced(w); /* from where watch_emit_revisions left it */
    if (job->rc == -ENOMEM) watch_schedule_retry(h);
  }
  for (size_t i = 0; i < job->n; i++) watch_batch_drop(job->evs[i].hold);
  free((watch_ev *)job->evs);
}

/* Sends what w held back, several revisions per response (a cancel's
 * request: one watcher, on the caller's thread). */
void watch_backlog_send(watch_hub *h, watcher *w) {
  watch_send_job job;
  backlog_take(w, &job);
  job.sent = watch_emit_revisions(w->stream, w, 0, job.evs, job.n, &job.rc);
  backlog_sent(h, &job);
}

/* The watchers of st that hold events: sent in this round (referenced until
 * it ends), or to history when st is blocked or stuck. */
static void backlog_collect(watch_hub *h, watch_stream *st, bool stuck) {
  for (watcher *w = st->watchers; w; w = w->s_next) {
    if (!w->bl_n) continue;
    if (st->blocked || stuck) {
      h->fell_behind++;
      fall_behind(w, w->bl[0].rev);
      continue;
    }
    w->refs++; /* a later job's result may end the stream and remove w */
    backlog_take(w, &h->jobs[h->njobs++]); /* capacity > watchers */
  }
}

/* Sends held-back events of every stream whose transport has drained, all in
 * one round of the sender pool; a blocked stream's watchers go to history
 * instead. */
static void backlog_flush(watch_hub *h) {
  h->njobs = 0;
  for (watch_stream *st = h->backlog_head; st; st = st->b_next) {
    if (st->closed || !st->nbacklog) continue;
    bool stuck = false;
    if (!st->blocked && backed_up(st)) {
      stuck = monotonic_ms() - st->bl_since_ms > BACKLOG_MAX_MS;
      if (!stuck) continue; /* still busy: keep holding */
    }
    backlog_collect(h, st, stuck);
  }
  size_t n = h->njobs;
  watch_senders_run(h, h->jobs, n);
  for (size_t i = 0; i < n; i++) backlog_sent(h, &h->jobs[i]);
  for (size_t i = 0; i < n; i++) watch_unref(h->jobs[i].w);
  h->njobs = 0;
  /* The list's references keep its streams; a send may have closed one. */
  watch_stream **pp = &h->backlog_head;
  while (*pp) {
    watch_stream *st = *pp;
    if (!st->closed && st->progress_pending) watch_try_progress(st);
    if (st->closed || !st->nbacklog) {
      *pp = st->b_next;
      st->b_next = NULL;
      st->on_backlog = false;
      watch_stream_unref(st);
      continue;
    }
    pp = &st->b_next;
  }
  atomic_store(&h->backlogged, h->backlog_head != NULL);
}

void watch_backlog_release_all(watch_hub *h) {
  while (h->backlog_head) {
    watch_stream *st = h->backlog_head;
    h->backlog_head = st->b_next;
    st->b_next = NULL;
    st->on_backlog = false;
    watch_stream_unref(st);
  }
  atomic_store(&h->backlogged, false);
}

/* ------------------------------------------------------------------ delivery */

/* Decides what w gets of revision b (its matched events): nothing (history),
 * held back, or a job of this round (its events at the end of job_evs). */
static void deliver(watch_hub *h, watcher *w, const store_event_batch *b, watch_batch *v) {
  watch_stream *st = w->stream;
  int64_t rev = b->revision;
  if (st->blocked) {
    h->fell_behind++;
    fall_behind(w, rev);
    return;
  }
  if (job_evs_reserve(h, w->nmatch) < 0) {
    fall_behind(w, rev);
    watch_schedule_retry(h);
    return;
  }
  watch_ev *evs = h->job_evs + h->njob_evs;
  size_t n = 0;
  for (size_t i = 0; i < w->nmatch; i++) {
    size_t x = w->match[i];
    const store_event *e = &b->events[x];
    if (w->prev_kv && watch_event_has_predecessor(e) && !e->has_prev) {
      fall_behind(w, rev); /* applied before want_prev was set */
      return;
    }
    watch_ev ev = watch_batch_event(v, x, w->prev_kv);
    ev.hold = v;
    evs[n++] = ev;
  }
  if (h->grouping || st->nbacklog || backed_up(st)) {
    /* More revisions of this group follow, events are already held back
     * (per-stream order), or the transport has enough to write: hold. */
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) bytes += evs[i].len;
    if (w->bl_bytes + bytes <= BACKLOG_MAX_BYTES && backlog_push(h, w, evs, n) == 0) return;
    h->fell_behind++;
    fall_behind(w, rev);
    return;
  }
  h->jobs[h->njobs++] =
      (watch_send_job){.w = w, .ev0 = h->njob_evs, .n = n, .header_rev = rev};
  h->njob_evs += n;
}

/* After job (one revision) was sent: w moves past what went out; the rest is
 * replayed from history. */
static void delivered(watch_hub *h, const watch_send_job *job) {
  watcher *w = job->w;
  if (w->removed) return; /* an earlier job's cancel ended its stream */
  if (job->rc == -EINVAL) {
    watch_cancel_too_large(w, job->evs[job->sent].len);
    return;
  }
  if (job->sent) w->had_events = true;
  watch_advance(w, job->evs, job->sent, job->n, job->header_rev);
  if (job->sent < job->n) {
    h->fell_behind++;
    watch_make_unsynced(w); /* writable (or the retry) -> catch-up from where advance left it */
    if (job->rc == -ENOMEM) watch_schedule_retry(h);
  }
}

static void fan_out_batch(watch_hub *h, const store_event_batch *b) {
  if (watch_group_size(h->synced) == 0) return;
  h->stamp++;
  h->ntouched = 0;
  match_ctx c = {.h = h, .rev = b->revision};
  for (size_t i = 0; i < b->n; i++) {
    c.index = i;
    c.e = &b->events[i];
    watch_group_match(h->synced, c.e->key, c.e->keylen, match_one, &c);
  }
  if (h->ntouched == 0) return;
  watch_batch *v = watch_batch_new(b);
  h->njobs = 0;
  h->njob_evs = 0;
  for (size_t i = 0; i < h->ntouched; i++) {
    watcher *w = h->touched[i];
    if (w->removed || !w->synced) continue;
    if (!v || w->nmatch == SIZE_MAX) {
      fall_behind(w, b->revision);
      watch_schedule_retry(h);
      continue;
    }
    deliver(h, w, b, v);
  }
  /* job_evs no longer moves. */
  for (size_t i = 0; i < h->njobs; i++) h->jobs[i].evs = h->job_evs + h->jobs[i].ev0;
  watch_senders_run(h, h->jobs, h->njobs);
  for (size_t i = 0; i < h->njobs; i++) delivered(h, &h->jobs[i]);
  h->njobs = 0;
  for (size_t i = 0; i < h->ntouched; i++) watch_unref(h->touched[i]);
  h->ntouched = 0;
  if (v) watch_batch_drop(v); /* queued sends and held events keep it */
}

/* Revisions from..to were dropped from the hand-off: every synced watcher that
 * may need one of them replays them from history. */
static void fan_out_gap(watch_hub *h, int64_t from, int64_t to) {
  for (watch_stream *st = h->streams; st; st = st->h_next) {
    for (watcher *w = st->watchers; w; w = w->s_next) {
      if (!w->synced || w->next_rev > to) continue;
      h->fell_behind++;
      fall_behind(w, w->next_rev > from ? w->next_rev : from);
    }
  }
}

static void fan_out(watch_hub *h, const fanout_entry *e) {
  /* Held events go before newer ones (in a group they are all held). */
  if (h->backlog_head && !h->grouping) backlog_flush(h);
  if (e->b) fan_out_batch(h, e->b);
  else fan_out_gap(h, e->from, e->to);
  if (e->to > h->cur_rev) h->cur_rev = e->to;
  if (h->nprogress) watch_progress_check(h);
}

static void *fanout_main(void *arg) {
  watch_hub *h = arg;
  pthread_mutex_lock(&h->qmu);
  for (;;) {
    while (!h->qlen && !h->q_stopping) {
      h->q_waiting = true;
      if (!atomic_load(&h->backlogged)) {
        pthread_cond_wait(&h->qcond, &h->qmu);
        h->q_waiting = false;
        continue;
      }
      struct timespec ts;
      clock_gettime(CLOCK_MONOTONIC, &ts);
      ts.tv_nsec += BACKLOG_POLL_US * 1000;
      if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
      }
      int timed_out = pthread_cond_timedwait(&h->qcond, &h->qmu, &ts) == ETIMEDOUT;
      h->q_waiting = false;
      if (timed_out && !h->qlen) {
        /* Idle with events held back: retry them. */
        pthread_mutex_unlock(&h->qmu);
        pthread_mutex_lock(&h->mu);
        if (!h->stopping && h->backlog_head) backlog_flush(h);
        pthread_mutex_unlock(&h->mu);
        pthread_mutex_lock(&h->qmu);
      }
    }
    if (h->q_stopping) break;
    fanout_entry *es = h->q;
    size_t n = h->qlen, cap = h->qcap;
    h->q = h->q_spare;
    h->qcap = h->q_spare_cap;
    h->qlen = 0;
    h->q_spare = NULL;
    h->q_spare_cap = 0;
    h->q_inhand = n;
    pthread_mutex_unlock(&h->qmu);

    size_t freed = 0;
    for (size_t i = 0; i < n; i++) {
      /* Several revisions waiting: hold each group's events and send them
       * together at its end. */
      bool end = i + 1 == n || (i + 1) % GROUP_REVS == 0;
      pthread_mutex_lock(&h->mu);
      if (!h->stopping) {
        h->grouping = n > 1;
        fan_out(h, &es[i]);
        h->grouping = false;
        if (n > 1 && end && h->backlog_head) backlog_flush(h);
      }
      pthread_mutex_unlock(&h->mu);
      freed += es[i].bytes;
      store_event_batch_free(es[i].b);
    }

    pthread_mutex_lock(&h->qmu);
    h->qbytes -= freed;
    h->q_inhand = 0;
    h->q_spare = es;
    h->q_spare_cap = cap;
  }
  pthread_mutex_unlock(&h->qmu);
  return NULL;
}

/* ------------------------------------------------------------------ lifecycle */

/* qmu and qcond are initialized by watch_hub_create, destroyed by
 * watch_fanout_free. */
int watch_fanout_start(watch_hub *h, keel_error *err) {
  if (h->opts.max_pending_bytes <= 0) h->opts.max_pending_bytes = DEFAULT_MAX_PENDING_BYTES;
  h->q = malloc(QUEUE_INITIAL * sizeof(*h->q));
  h->q_spare = malloc(QUEUE_INITIAL * sizeof(*h->q_spare));
  if (!h->q || !h->q_spare) return keel_error_set(err, ENOMEM, "watch hub: out of memory");
  h->qcap = h->q_spare_cap = QUEUE_INITIAL;
  if (watch_senders_start(h, err) < 0) return -1;
  int rc = pthread_create(&h->fanout, NULL, fanout_main, h);
  if (rc != 0) return keel_error_set_errno(err, rc, "watch hub: start the fan-out thread");
  pthread_setname_np(h->fanout, "watch-fanout");
  h->fanout_started = true;
  return 0;
}

void watch_fanout_stop(watch_hub *h) {
  pthread_mutex_lock(&h->qmu);
  bool join = h->fanout_started;
  h->fanout_started = false;
  h->q_stopping = true;
  pthread_cond_broadcast(&h->qcond);
  pthread_mutex_unlock(&h->qmu);
  if (join) pthread_join(h->fanout, NULL);
  watch_senders_stop(h); /* idle: only the fan-out thread starts rounds */
  pthread_mutex_lock(&h->qmu);
  for (size_t i = 0; i < h->qlen; i++) store_event_batch_free(h->q[i].b);
  h->qlen = 0;
  h->qbytes = 0;
  pthread_mutex_unlock(&h->qmu);
}

void watch_fanout_free(watch_hub *h) {
  watch_senders_free(h);
  free(h->q);
  free(h->q_spare);
  pthread_cond_destroy(&h->qcond);
  pthread_mutex_destroy(&h->qmu);
}
