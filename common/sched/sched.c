/* common/sched/sched.c — see sched.h.
 *
 * One mutex guards one min-heap of tasks ordered by (due, seq). Immediate work
 * (sched_submit) is a task due "now", so a single structure gives one ordering
 * rule for everything: earlier due first, then submission order. The pool is
 * small and tasks are coarse (a retry, a disk write), so one lock is cheaper to
 * reason about than per-thread queues with stealing.
 *
 * Cancelation needs to find a timer inside the heap by id. Ids are sequential,
 * so a chained hash with `id & mask` spreads them perfectly; each task records
 * its heap index, making cancel O(log n). Submitted tasks have id 0 and are
 * never indexed, since nobody can cancel them.
 *
 * Wakeups: a push that becomes the new top signals one worker (the wait
 * deadline changed). A worker that pops a task signals another if tasks remain,
 * so while it runs, someone else watches the next due time; without that, an
 * idle worker could sleep untimed while a timer comes due.
 *
 * Waits use a condition variable on CLOCK_MONOTONIC, so a wall-clock jump
 * (NTP, a VM resume) neither fires timers early nor holds them back. */
#define _GNU_SOURCE
#include "common/sched/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct task {
  sched_fn fn;
  sched_fn drop;
  void *arg;
  int64_t due;             /* CLOCK_MONOTONIC ms */
  uint64_t seq;            /* FIFO among equal due times */
  sched_timer_id id;       /* 0: submitted, not cancelable, not indexed */
  size_t heap_index;       /* kept current by every heap move, for cancel */
  struct task *next_by_id; /* hash chain */
} task;

struct sched {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  task **heap;
  size_t len, cap;
  task **by_id; /* buckets, a power of two */
  size_t nbuckets, nindexed;
  uint64_t next_seq;
  sched_timer_id next_id;
  bool stopping;
  int64_t cutoff; /* at shutdown, tasks due at or before this still run */
  pthread_t *threads;
  int nthreads;
  char name[16]; /* the kernel's limit for thread names, with the NUL */
};

#define INITIAL_BUCKETS 64
/* Bounds one condition wait so a far-future due time never meets the limits
 * of timespec arithmetic; waking hourly to recheck costs nothing. */
#define MAX_WAIT_MS (3600 * 1000)

int64_t sched_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- heap ------------------------------------------------------------------- */

static bool task_before(const task *a, const task *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void heap_set(sched *s, size_t i, task *t) {
  s->heap[i] = t;
  t->heap_index = i;
}

static void sift_up(sched *s, size_t i) {
  task *t = s->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!task_before(t, s->heap[parent])) break;
    heap_set(s, i, s->heap[parent]);
    i = parent;
  }
  heap_set(s, i, t);
}

static void sift_down(sched *s, size_t i) {
  task *t = s->heap[i];
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= s->len) break;
    if (child + 1 < s->len && task_before(s->heap[child + 1], s->heap[child])) child++;
    if (!task_before(s->heap[child], t)) break;
    heap_set(s, i, s->heap[child]);
    i = child;
  }
  heap_set(s, i, t);
}

/* Capacity is reserved before a task is accepted, so pushing cannot fail. */
static int heap_reserve(sched *s) {
  if (s->len < s->cap) return 0;
  size_t cap = s->cap ? s->cap * 2 : 64;
  task **heap = realloc(s->heap, cap * sizeof(*heap));
  if (!heap) return -ENOMEM;
  s->heap = heap;
  s->cap = cap;
  return 0;
}

static void heap_push(sched *s, task *t) {
  heap_set(s, s->len++, t);
  sift_up(s, t->heap_index);
}

/* The last task fills the hole and moves whichever way restores the order. */
static void heap_remove(sched *s, size_t i) {
  s->len--;
  if (i == s->len) return;
  task *moved = s->heap[s->len];
  heap_set(s, i, moved);
  sift_down(s, i);
  sift_up(s, moved->heap_index);
}

/* ---- id index --------------------------------------------------------------- */

static task **bucket_of(sched *s, sched_timer_id id) {
  return &s->by_id[id & (s->nbuckets - 1)];
}

/* Growing is best effort: if it fails the chains just get longer. */
static void index_maybe_grow(sched *s) {
  if (s->nindexed < s->nbuckets) return;
  size_t n = s->nbuckets * 2;
  task **buckets = calloc(n, sizeof(*buckets));
  if (!buckets) return;
  for (size_t b = 0; b < s->nbuckets; b++) {
    for (task *t = s->by_id[b], *next; t; t = next) {
      next = t->next_by_id;
      task **head = &buckets[t->id & (n - 1)];
      t->next_by_id = *head;
      *head = t;
    }
  }
  free(s->by_id);
  s->by_id = buckets;
  s->nbuckets = n;
}

static void index_add(sched *s, task *t) {
  index_maybe_grow(s);
  task **head = bucket_of(s, t->id);
  t->next_by_id = *head;
  *head = t;
  s->nindexed++;
}

static task *index_find(sched *s, sched_timer_id id) {
  for (task *t = *bucket_of(s, id); t; t = t->next_by_id)
    if (t->id == id) return t;
  return NULL;
}

static void index_remove(sched *s, task *t) {
  for (task **p = bucket_of(s, t->id); *p; p = &(*p)->next_by_id)
    if (*p == t) {
      *p = t->next_by_id;
      s->nindexed--;
      return;
    }
}

/* Takes t out of both structures; the caller owns it afterwards. */
static void task_detach(sched *s, task *t) {
  heap_remove(s, t->heap_index);
  if (t->id) index_remove(s, t);
}

/* ---- workers ---------------------------------------------------------------- */

static void wait_until(sched *s, int64_t due) {
  int64_t now = sched_now_ms();
  if (due - now > MAX_WAIT_MS) due = now + MAX_WAIT_MS;
  struct timespec ts = {.tv_sec = due / 1000, .tv_nsec = (due % 1000) * 1000000};
  pthread_cond_timedwait(&s->cv, &s->mu, &ts);
}

static void *worker_main(void *arg) {
  sched *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    task *t = s->len ? s->heap[0] : NULL;
    /* During shutdown the clock stops at the cutoff: what was due when destroy
     * began still runs; what came due later is dropped, deterministically. */
    int64_t now = s->stopping ? s->cutoff : sched_now_ms();
    if (t && t->due <= now) {
      task_detach(s, t);
      if (s->len) pthread_cond_signal(&s->cv);
      pthread_mutex_unlock(&s->mu);
      t->fn(t->arg);
      free(t);
      pthread_mutex_lock(&s->mu);
    } else if (s->stopping) {
      break;
    } else if (t) {
      wait_until(s, t->due);
    } else {
      pthread_cond_wait(&s->cv, &s->mu);
    }
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* ---- public API ------------------------------------------------------------- */

sched *sched_create(int nthreads, const char *name) {
  if (nthreads <= 0) {
    errno = EINVAL;
    return NULL;
  }
  sched *s = calloc(1, sizeof(*s));
  if (!s) return NULL;
  snprintf(s->name, sizeof(s->name), "%s", name ? name : "sched");
  s->next_id = 1;
  s->nbuckets = INITIAL_BUCKETS;
  s->by_id = calloc(s->nbuckets, sizeof(*s->by_id));
  s->threads = calloc((size_t)nthreads, sizeof(*s->threads));
  pthread_condattr_t attr;
  pthread_condattr_init(&attr);
  pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  pthread_cond_init(&s->cv, &attr);
  pthread_condattr_destroy(&attr);
  pthread_mutex_init(&s->mu, NULL);
  if (!s->by_id || !s->threads) {
    sched_destroy(s);
    errno = ENOMEM;
    return NULL;
  }
  for (int i = 0; i < nthreads; i++) {
    int rc = pthread_create(&s->threads[i], NULL, worker_main, s);
    if (rc != 0) {
      sched_destroy(s); /* joins the s->nthreads already started */
      errno = rc;
      return NULL;
    }
    s->nthreads++;
    /* "name-N" in top and gdb; the kernel truncates to 15 bytes. */
    char tname[16];
    snprintf(tname, sizeof(tname), "%.*s-%d", 12 - (i >= 10) - (i >= 100), s->name, i);
    pthread_setname_np(s->threads[i], tname);
  }
  return s;
}

void sched_destroy(sched *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stopping = true;
  s->cutoff = sched_now_ms();
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  for (int i = 0; i < s->nthreads; i++) pthread_join(s->threads[i], NULL);

  /* Drop what never came due, one at a time under the lock: a drop callback
   * may still call sched_cancel or sched_after (which then returns 0). */
  for (;;) {
    pthread_mutex_lock(&s->mu);
    task *t = s->len ? s->heap[0] : NULL;
    if (t) task_detach(s, t);
    pthread_mutex_unlock(&s->mu);
    if (!t) break;
    if (t->drop) t->drop(t->arg);
    free(t);
  }
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  free(s->heap);
  free(s->by_id);
  free(s->threads);
  free(s);
}

/* Queues a task; returns 0 or a negative errno. *id gets the timer id when
 * cancelable, else 0. */
static int enqueue(sched *s, int64_t delay_ms, bool cancelable, sched_fn fn, sched_fn drop,
                   void *arg, sched_timer_id *id) {
  *id = 0;
  task *t = malloc(sizeof(*t));
  if (!t) return -ENOMEM;
  *t = (task){.fn = fn, .drop = drop, .arg = arg};
  pthread_mutex_lock(&s->mu);
  int rc = s->stopping ? -ESHUTDOWN : heap_reserve(s);
  if (rc < 0) {
    pthread_mutex_unlock(&s->mu);
    free(t);
    return rc;
  }
  /* Read the clock under the lock so due times never decrease along seq:
   * two submits are then always run in the order they were accepted. */
  int64_t now = sched_now_ms();
  t->due = delay_ms > INT64_MAX - now ? INT64_MAX : now + delay_ms;
  t->seq = s->next_seq++;
  if (cancelable) {
    t->id = s->next_id++;
    index_add(s, t);
  }
  heap_push(s, t);
  if (t->heap_index == 0) pthread_cond_signal(&s->cv);
  *id = t->id; /* read before unlocking: a worker may run and free t at once */
  pthread_mutex_unlock(&s->mu);
  return 0;
}

int sched_submit(sched *s, sched_fn fn, void *arg) {
  sched_timer_id unused;
  return enqueue(s, 0, false, fn, NULL, arg, &unused);
}

sched_timer_id sched_after(sched *s, int64_t delay_ms, sched_fn fn, sched_fn drop, void *arg) {
  sched_timer_id id;
  return enqueue(s, delay_ms < 0 ? 0 : delay_ms, true, fn, drop, arg, &id) < 0 ? 0 : id;
}

bool sched_cancel(sched *s, sched_timer_id id) {
  if (!s || id == 0) return false;
  pthread_mutex_lock(&s->mu);
  task *t = index_find(s, id);
  if (t) task_detach(s, t);
  pthread_mutex_unlock(&s->mu);
  if (!t) return false;
  if (t->drop) t->drop(t->arg);
  free(t);
  return true;
}
