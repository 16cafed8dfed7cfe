/* services/store/watch/watch_senders.c — the sender pool: the threads that
 * send one round of the fan-out thread's responses (one revision's, or the
 * held-back events of every drained stream) together with it.
 *
 * Why. A send is cheap for keel (a prefix and references to the shared
 * encoding) but not for the transport: gRPC starts the write on the calling
 * thread when the connection is idle, so the fan-out thread itself spent most
 * of each send in sendmsg and in waking a completion-queue thread, ~1000
 * times per revision, and the last watcher heard of a write ~14 ms after the
 * first. Spread over a few threads the round ends sooner, and sends to one
 * connection that meet a write in progress join it instead of writing alone.
 *
 * How it stays correct. The fan-out thread decides everything under hub->mu
 * (which watchers, which events, hold or send) and keeps holding the lock
 * while the round is sent, so no other hub work (requests, the sync thread,
 * writable callbacks) runs meanwhile, exactly as when it sent alone. A
 * stream's jobs form one unit, sent in order by one thread: a stream's
 * responses still leave in the order they were decided, and its send state
 * (blocked) and its watchers' positions are only touched by that thread. The
 * threads share nothing else (no batch references are taken or dropped: the
 * transport takes its own); the results are applied by the fan-out thread
 * after the round, which is what gives it (and every later holder of hub->mu)
 * the helpers' writes. */
#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "services/store/watch/watch_internal.h"

/* Default thread count: one per CPU, at most this many. */
#define MAX_DEFAULT_SENDERS 8
/* A round over fewer streams is sent by the fan-out thread alone: waking a
 * helper costs more than a few sends. */
#define DEFAULT_MIN_STREAMS 16

/* ------------------------------------------------------------------ one job */

static void send_job(watch_send_job *j) {
  watcher *w = j->w;
  watch_stream *st = w->stream;
  j->sent = 0;
  j->rc = 0;
  if (j->header_rev == 0) {
    j->sent = watch_emit_revisions(st, w, 0, j->evs, j->n, &j->rc);
    return;
  }
  /* An earlier job of this round may have filled the stream's queue. */
  if (st->closed || st->blocked) {
    j->rc = st->closed ? -EPIPE : -ENOBUFS;
    return;
  }
  j->sent = watch_emit(st, w, j->header_rev, j->evs, j->n, &j->rc);
}

/* Takes units until none are left. */
static void work(watch_senders *p) {
  for (;;) {
    size_t u = atomic_fetch_add(&p->next_unit, 1);
    if (u >= p->nunits) return;
    for (size_t i = p->units[u]; i != SIZE_MAX; i = p->jobs[i].next) send_job(&p->jobs[i]);
  }
}

/* A helper joins a round only while it is open: one that is scheduled late,
 * after the fan-out thread has claimed every unit itself, skips it, so a round
 * never waits for a helper that did not get a CPU in time (on 2 busy cores
 * that can be milliseconds per revision). */
static void *helper_main(void *arg) {
  watch_senders *p = arg;
  uint64_t seen = 0;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (p->gen == seen && !p->stop) pthread_cond_wait(&p->wake, &p->mu);
    if (p->stop) break;
    seen = p->gen;
    if (!p->open) continue; /* too late for this round */
    p->active++;
    pthread_mutex_unlock(&p->mu);
    work(p);
    pthread_mutex_lock(&p->mu);
    if (--p->active == 0 && !p->open) pthread_cond_signal(&p->done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* ------------------------------------------------------------------ rounds */

/* Chains each stream's jobs (in job order) and lists the first of each as a
 * unit. Returns the number of units, or 0 when out of memory. */
static size_t group_by_stream(watch_senders *p, watch_send_job *jobs, size_t n) {
  if (n > p->unit_cap) {
    size_t *u = realloc(p->unit_buf, n * sizeof(*u));
    if (!u) return 0;
    p->unit_buf = u;
    p->unit_cap = n;
  }
  p->stamp++;
  size_t nunits = 0;
  for (size_t i = 0; i < n; i++) {
    watch_stream *st = jobs[i].w->stream;
    jobs[i].next = SIZE_MAX;
    if (st->send_stamp == p->stamp) {
      jobs[st->send_tail].next = i;
    } else {
      st->send_stamp = p->stamp;
      p->unit_buf[nunits++] = i;
    }
    st->send_tail = i;
  }
  return nunits;
}

void watch_senders_run(watch_hub *h, watch_send_job *jobs, size_t n) {
  watch_senders *p = &h->senders;
  if (n == 0) return;
  size_t nunits = p->started ? group_by_stream(p, jobs, n) : 0;
  if (nunits < p->min_streams || nunits < 2) {
    /* In job order: each stream's jobs stay in order. */
    for (size_t i = 0; i < n; i++) send_job(&jobs[i]);
    return;
  }
  pthread_mutex_lock(&p->mu);
  p->jobs = jobs;
  p->units = p->unit_buf;
  p->nunits = nunits;
  atomic_store(&p->next_unit, 0);
  p->open = true;
  p->gen++;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  work(p); /* returns once every unit is claimed */
  pthread_mutex_lock(&p->mu);
  p->open = false;
  /* Only the helpers that joined may still be sending a unit they claimed. */
  while (p->active) pthread_cond_wait(&p->done, &p->mu);
  p->jobs = NULL;
  p->units = NULL;
  p->nunits = 0;
  pthread_mutex_unlock(&p->mu);
}

/* ------------------------------------------------------------------ lifecycle */

static int default_threads(void) {
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus < 1) return 1;
  return cpus > MAX_DEFAULT_SENDERS ? MAX_DEFAULT_SENDERS : (int)cpus;
}

/* The mutex and conditions are initialized here (n > 0 says so) and
 * destroyed by watch_senders_free, which runs whether or not this succeeded. */
int watch_senders_start(watch_hub *h, keel_error *err) {
  watch_senders *p = &h->senders;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->wake, NULL);
  pthread_cond_init(&p->done, NULL);
  atomic_init(&p->next_unit, 0);
  p->n = h->opts.sender_threads > 0 ? h->opts.sender_threads : default_threads();
  p->min_streams = DEFAULT_MIN_STREAMS;
  if (p->n == 1) return 0;
  p->threads = calloc((size_t)p->n - 1, sizeof(*p->threads));
  if (!p->threads) return keel_error_set(err, ENOMEM, "watch hub: out of memory");
  for (int i = 0; i < p->n - 1; i++) {
    int rc = pthread_create(&p->threads[i], NULL, helper_main, p);
    if (rc != 0) return keel_error_set_errno(err, rc, "watch hub: start a sender thread");
    pthread_setname_np(p->threads[i], "watch-send");
    p->started++;
  }
  return 0;
}

void watch_senders_stop(watch_hub *h) {
  watch_senders *p = &h->senders;
  if (!p->n) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_broadcast(&p->wake);
  pthread_mutex_unlock(&p->mu);
  for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
  p->started = 0;
}

void watch_senders_free(watch_hub *h) {
  watch_senders *p = &h->senders;
  free(p->threads);
  free(p->unit_buf);
  if (!p->n) return; /* never started */
  pthread_cond_destroy(&p->wake);
  pthread_cond_destroy(&p->done);
  pthread_mutex_destroy(&p->mu);
}
