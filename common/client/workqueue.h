/* common/client/workqueue.h — a rate-limited queue of keys, as client-go's
 * workqueue: what sits between an informer's handlers and a controller's
 * sync(key).
 *
 * Keys are strings (usually "namespace/name"). The queue guarantees:
 *   - dedup: a key added while it is already queued is queued once;
 *   - exclusion: a key handed out by workqueue_get is not handed out again
 *     until workqueue_done(key); if it is added meanwhile it is queued again
 *     at done, so the change is never lost and never processed twice at once;
 *   - fairness: FIFO among queued keys;
 *   - delays: workqueue_add_after makes a key eligible after a delay (several
 *     delayed adds of one key keep the earliest); workqueue_add_rate_limited
 *     delays by base * 2^failures, capped at max, per key, until
 *     workqueue_forget(key) resets the count;
 *   - shutdown: workqueue_shutdown stops handing keys out at once (queued and
 *     delayed keys are dropped, later adds are ignored); keys already handed
 *     out finish normally, and workqueue_run returns once they have.
 * Every function is thread-safe. Delayed keys need no timer thread: waiting
 * getters sleep until the earliest due time and move due keys into the queue. */
#ifndef KEEL_COMMON_CLIENT_WORKQUEUE_H
#define KEEL_COMMON_CLIENT_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct workqueue workqueue;

typedef struct workqueue_options {
  int64_t base_delay_ms; /* first rate-limited delay; default 5 */
  int64_t max_delay_ms;  /* cap of the exponential backoff; default 300000 (5 min) */
  const char *name;      /* for logs */
} workqueue_options;

/* NULL opts = defaults. NULL only when out of memory. */
workqueue *workqueue_new(const workqueue_options *opts);
/* Frees the queue and every key in it. Only once no thread uses it (after
 * workqueue_run returned, or after the last workqueue_get/done). */
void workqueue_free(workqueue *q);

/* Queues key (copied) unless it is queued already, or remembers it for after
 * done while it is being processed. Ignored after shutdown. */
void workqueue_add(workqueue *q, const char *key);
/* workqueue_add once delay_ms has passed (<= 0: now). */
void workqueue_add_after(workqueue *q, const char *key, int64_t delay_ms);
/* workqueue_add_after with the key's backoff: base * 2^n after n earlier
 * rate-limited adds since the last forget, capped at max. */
void workqueue_add_rate_limited(workqueue *q, const char *key);
/* Resets key's backoff (after a successful sync). */
void workqueue_forget(workqueue *q, const char *key);
/* Rate-limited adds of key since its last forget. */
int workqueue_num_requeues(workqueue *q, const char *key);
/* The delay the next rate-limited add of key would get (does not count as one). */
int64_t workqueue_next_delay_ms(workqueue *q, const char *key);

/* Blocks until a key is ready and returns it (malloc'ed, the caller frees it
 * after workqueue_done), or NULL once the queue is shut down. */
char *workqueue_get(workqueue *q);
/* Like workqueue_get, giving up after timeout_ms: NULL with *shutdown false. */
char *workqueue_get_timeout(workqueue *q, int64_t timeout_ms, bool *shutdown);
/* The key handed out by get is processed; if it was added meanwhile it is
 * queued again now. */
void workqueue_done(workqueue *q, const char *key);

/* Keys ready to hand out (not counting delayed or in-process keys). */
size_t workqueue_len(workqueue *q);
/* Keys handed out and not done yet. */
size_t workqueue_in_flight(workqueue *q);

/* Stops handing out keys (getters return NULL), drops queued and delayed
 * keys, ignores later adds. Does not wait. Idempotent. */
void workqueue_shutdown(workqueue *q);
bool workqueue_shutting_down(workqueue *q);
/* Blocks until no key is in process (call after workqueue_shutdown when you
 * drive get/done yourself; workqueue_run already does it). */
void workqueue_wait_idle(workqueue *q);

/* A controller's sync: 0 = done (the key's backoff is forgotten), negative =
 * failed (the key is added again rate-limited). */
typedef int (*workqueue_sync_fn)(const char *key, void *arg);

/* Runs `workers` threads, each looping get -> sync -> forget or
 * add_rate_limited -> done, until the queue is shut down; returns once every
 * worker has finished its key and exited (0), or -errno if no thread could be
 * started. Call workqueue_shutdown from another thread (or from a sync) to end it. */
int workqueue_run(workqueue *q, int workers, workqueue_sync_fn sync, void *arg);

#endif
