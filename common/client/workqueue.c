/* common/client/workqueue.c — see workqueue.h.
 *
 * State, all under one mutex (a queue is touched a few times per sync, so one
 * lock is never the bottleneck of a controller):
 *   queue       FIFO of keys ready to hand out (each also in `dirty`)
 *   dirty       keys that must be processed: queued, or added while processing
 *   processing  keys handed out and not done
 *   waiting     delayed keys: a min-heap on due time plus a map key -> item
 *   failures    rate-limited adds per key since its last forget
 * A key in dirty and in processing is not in the queue: done puts it there.
 * Getters wait on a CLOCK_MONOTONIC condition until the earliest due time, so
 * delayed keys become ready without a timer thread. */
#define _GNU_SOURCE
#include "common/client/workqueue.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/client/strmap.h"

typedef struct qnode {
  struct qnode *next;
  char key[];
} qnode;

typedef struct wait_item {
  int64_t due_ms;
  uint64_t seq; /* FIFO among equal due times */
  size_t pos;   /* index in the heap */
  char *key;    /* the waiting map's copy */
} wait_item;

struct workqueue {
  workqueue_options opts;
  pthread_mutex_t mu;
  pthread_cond_t cond; /* a key is ready, a due time moved, or shutdown */
  pthread_cond_t idle; /* processing became empty */
  qnode *head, *tail;
  size_t qlen;
  strmap dirty, processing, failures, waiting;
  wait_item **heap;
  size_t nheap, heapcap;
  uint64_t seq;
  bool shutting_down;
};

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

workqueue *workqueue_new(const workqueue_options *opts) {
  workqueue *q = calloc(1, sizeof(*q));
  if (!q) return NULL;
  if (opts) q->opts = *opts;
  if (q->opts.base_delay_ms <= 0) q->opts.base_delay_ms = 5;
  if (q->opts.max_delay_ms <= 0) q->opts.max_delay_ms = 300000;
  if (q->opts.max_delay_ms < q->opts.base_delay_ms) q->opts.max_delay_ms = q->opts.base_delay_ms;
  q->opts.name = NULL; /* not kept: the caller's string may not outlive us */
  pthread_mutex_init(&q->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&q->cond, &ca);
  pthread_condattr_destroy(&ca);
  pthread_cond_init(&q->idle, NULL);
  strmap_init(&q->dirty);
  strmap_init(&q->processing);
  strmap_init(&q->failures);
  strmap_init(&q->waiting);
  return q;
}

static void drop_queued_locked(workqueue *q) {
  while (q->head) {
    qnode *n = q->head;
    q->head = n->next;
    free(n);
  }
  q->tail = NULL;
  q->qlen = 0;
  for (size_t i = 0; i < q->nheap; i++) free(q->heap[i]);
  q->nheap = 0;
  strmap_clear(&q->waiting, NULL);
  /* Keys added while processing stay dirty until done, which then drops them. */
  strmap_clear(&q->dirty, NULL);
}

void workqueue_free(workqueue *q) {
  if (!q) return;
  drop_queued_locked(q);
  free(q->heap);
  strmap_clear(&q->processing, NULL);
  strmap_clear(&q->failures, NULL);
  pthread_cond_destroy(&q->cond);
  pthread_cond_destroy(&q->idle);
  pthread_mutex_destroy(&q->mu);
  free(q);
}

/* ---------------------------------------------------------------- queue */

static void push_locked(workqueue *q, const char *key) {
  size_t len = strlen(key);
  qnode *n = malloc(sizeof(*n) + len + 1);
  if (!n) return;
  memcpy(n->key, key, len + 1);
  n->next = NULL;
  if (q->tail) q->tail->next = n;
  else q->head = n;
  q->tail = n;
  q->qlen++;
  pthread_cond_signal(&q->cond);
}

static void add_locked(workqueue *q, const char *key) {
  if (q->shutting_down || strmap_has(&q->dirty, key)) return;
  if (!strmap_put(&q->dirty, key, NULL, NULL)) return;
  if (strmap_has(&q->processing, key)) return; /* done queues it */
  push_locked(q, key);
}

void workqueue_add(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  add_locked(q, key);
  pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------------- delays */

static bool item_before(const wait_item *a, const wait_item *b) {
  return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->seq < b->seq);
}

static void heap_swap(workqueue *q, size_t i, size_t j) {
  wait_item *t = q->heap[i];
  q->heap[i] = q->heap[j];
  q->heap[j] = t;
  q->heap[i]->pos = i;
  q->heap[j]->pos = j;
}

static void sift_up(workqueue *q, size_t i) {
  while (i > 0 && item_before(q->heap[i], q->heap[(i - 1) / 2])) {
    heap_swap(q, i, (i - 1) / 2);
    i = (i - 1) / 2;
  }
}

static void sift_down(workqueue *q, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < q->nheap && item_before(q->heap[l], q->heap[m])) m = l;
    if (r < q->nheap && item_before(q->heap[r], q->heap[m])) m = r;
    if (m == i) return;
    heap_swap(q, i, m);
    i = m;
  }
}

static void add_after_locked(workqueue *q, const char *key, int64_t delay_ms) {
  if (q->shutting_down) return;
  if (delay_ms <= 0) {
    add_locked(q, key);
    return;
  }
  int64_t due = now_ms() + delay_ms;
  wait_item *w = strmap_get(&q->waiting, key);
  if (w) {
    if (due < w->due_ms) { /* the earliest wins */
      w->due_ms = due;
      sift_up(q, w->pos);
      pthread_cond_broadcast(&q->cond);
    }
    return;
  }
  if (q->nheap == q->heapcap) {
    size_t cap = q->heapcap ? q->heapcap * 2 : 16;
    wait_item **h = realloc(q->heap, cap * sizeof(*h));
    if (!h) return;
    q->heap = h;
    q->heapcap = cap;
  }
  w = calloc(1, sizeof(*w));
  if (!w) return;
  strmap_entry *e = strmap_put(&q->waiting, key, w, NULL);
  if (!e) {
    free(w);
    return;
  }
  w->key = e->key;
  w->due_ms = due;
  w->seq = q->seq++;
  w->pos = q->nheap;
  q->heap[q->nheap++] = w;
  sift_up(q, w->pos);
  /* Waiting getters may need to wake earlier than they planned. */
  pthread_cond_broadcast(&q->cond);
}

void workqueue_add_after(workqueue *q, const char *key, int64_t delay_ms) {
  pthread_mutex_lock(&q->mu);
  add_after_locked(q, key, delay_ms);
  pthread_mutex_unlock(&q->mu);
}

/* Due keys into the queue; returns the next due time, or INT64_MAX. */
static int64_t move_due_locked(workqueue *q) {
  int64_t now = now_ms();
  while (q->nheap > 0 && q->heap[0]->due_ms <= now) {
    wait_item *w = q->heap[0];
    q->heap[0] = q->heap[--q->nheap];
    q->heap[0]->pos = 0;
    if (q->nheap > 0) sift_down(q, 0);
    /* The map owns w->key: add first, then remove the entry (which frees it). */
    add_locked(q, w->key);
    char *k = w->key;
    strmap_remove(&q->waiting, k, NULL);
    free(w);
  }
  return q->nheap > 0 ? q->heap[0]->due_ms : INT64_MAX;
}

static int64_t backoff_ms(const workqueue *q, intptr_t failures) {
  int64_t d = q->opts.base_delay_ms;
  for (intptr_t i = 0; i < failures && d < q->opts.max_delay_ms; i++) d *= 2;
  return d > q->opts.max_delay_ms ? q->opts.max_delay_ms : d;
}

void workqueue_add_rate_limited(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  if (!q->shutting_down) {
    intptr_t n = (intptr_t)strmap_get(&q->failures, key);
    strmap_put(&q->failures, key, (void *)(n + 1), NULL);
    add_after_locked(q, key, backoff_ms(q, n));
  }
  pthread_mutex_unlock(&q->mu);
}

void workqueue_forget(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  strmap_remove(&q->failures, key, NULL);
  pthread_mutex_unlock(&q->mu);
}

int workqueue_num_requeues(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  intptr_t n = (intptr_t)strmap_get(&q->failures, key);
  pthread_mutex_unlock(&q->mu);
  return (int)n;
}

int64_t workqueue_next_delay_ms(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  int64_t d = backoff_ms(q, (intptr_t)strmap_get(&q->failures, key));
  pthread_mutex_unlock(&q->mu);
  return d;
}

/* ---------------------------------------------------------------- get/done */

static void wait_until(workqueue *q, int64_t due_ms) {
  if (due_ms == INT64_MAX) {
    pthread_cond_wait(&q->cond, &q->mu);
    return;
  }
  struct timespec ts = {.tv_sec = due_ms / 1000, .tv_nsec = (long)(due_ms % 1000) * 1000000L};
  pthread_cond_timedwait(&q->cond, &q->mu, &ts);
}

char *workqueue_get_timeout(workqueue *q, int64_t timeout_ms, bool *shutdown) {
  int64_t give_up = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
  char *key = NULL;
  pthread_mutex_lock(&q->mu);
  for (;;) {
    if (q->shutting_down) break;
    int64_t next_due = move_due_locked(q);
    if (q->head) {
      qnode *n = q->head;
      char *k = strdup(n->key);
      if (!k || !strmap_put(&q->processing, n->key, NULL, NULL)) {
        /* Out of memory: leave it queued rather than lose it or break exclusion. */
        free(k);
        wait_until(q, now_ms() + 10);
        continue;
      }
      q->head = n->next;
      if (!q->head) q->tail = NULL;
      q->qlen--;
      strmap_remove(&q->dirty, n->key, NULL);
      free(n);
      key = k;
      break;
    }
    if (now_ms() >= give_up) break;
    wait_until(q, next_due < give_up ? next_due : give_up);
  }
  if (shutdown) *shutdown = q->shutting_down;
  pthread_mutex_unlock(&q->mu);
  return key;
}

char *workqueue_get(workqueue *q) {
  return workqueue_get_timeout(q, -1, NULL);
}

void workqueue_done(workqueue *q, const char *key) {
  pthread_mutex_lock(&q->mu);
  if (strmap_remove(&q->processing, key, NULL)) {
    if (strmap_has(&q->dirty, key)) {
      if (q->shutting_down) strmap_remove(&q->dirty, key, NULL);
      else push_locked(q, key);
    }
    if (q->processing.count == 0) pthread_cond_broadcast(&q->idle);
  }
  pthread_mutex_unlock(&q->mu);
}

size_t workqueue_len(workqueue *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->qlen;
  pthread_mutex_unlock(&q->mu);
  return n;
}

size_t workqueue_in_flight(workqueue *q) {
  pthread_mutex_lock(&q->mu);
  size_t n = q->processing.count;
  pthread_mutex_unlock(&q->mu);
  return n;
}

/* ---------------------------------------------------------------- shutdown */

void workqueue_shutdown(workqueue *q) {
  pthread_mutex_lock(&q->mu);
  if (!q->shutting_down) {
    q->shutting_down = true;
    drop_queued_locked(q);
  }
  pthread_cond_broadcast(&q->cond);
  pthread_mutex_unlock(&q->mu);
}

bool workqueue_shutting_down(workqueue *q) {
  pthread_mutex_lock(&q->mu);
  bool s = q->shutting_down;
  pthread_mutex_unlock(&q->mu);
  return s;
}

void workqueue_wait_idle(workqueue *q) {
  pthread_mutex_lock(&q->mu);
  while (q->processing.count > 0) pthread_cond_wait(&q->idle, &q->mu);
  pthread_mutex_unlock(&q->mu);
}

/* ---------------------------------------------------------------- run */

typedef struct run_ctx {
  workqueue *q;
  workqueue_sync_fn sync;
  void *arg;
} run_ctx;

static void *worker(void *p) {
  run_ctx *r = p;
  char *key;
  while ((key = workqueue_get(r->q)) != NULL) {
    int rc = r->sync(key, r->arg);
    if (rc == 0) workqueue_forget(r->q, key);
    else workqueue_add_rate_limited(r->q, key);
    workqueue_done(r->q, key);
    free(key);
  }
  return NULL;
}

int workqueue_run(workqueue *q, int workers, workqueue_sync_fn sync, void *arg) {
  if (workers < 1) workers = 1;
  run_ctx r = {.q = q, .sync = sync, .arg = arg};
  pthread_t *t = calloc((size_t)workers, sizeof(*t));
  if (!t) return -ENOMEM;
  int started = 0, rc = 0;
  for (int i = 0; i < workers; i++) {
    if ((rc = pthread_create(&t[started], NULL, worker, &r)) != 0) break;
    started++;
  }
  if (started == 0) {
    free(t);
    return -rc;
  }
  for (int i = 0; i < started; i++) pthread_join(t[i], NULL);
  free(t);
  workqueue_wait_idle(q);
  return 0;
}
