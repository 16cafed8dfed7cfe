/* common/sched/sched.h — a small worker pool with timers.
 *
 * gRPC completion-queue threads must never block or sleep; work that waits (a
 * delayed reply, a retry backoff, disk I/O) goes here. Tasks run on one of the
 * pool's threads, in submission order per due time. Timers are a min-heap keyed
 * on CLOCK_MONOTONIC due time; a canceled timer never runs.
 *
 * Shutdown (sched_destroy) stops the threads after running every task that is
 * already due; pending timers are dropped, each one's `drop` callback (if any)
 * called so owners can release what the task held. */
#ifndef KEEL_COMMON_SCHED_SCHED_H
#define KEEL_COMMON_SCHED_SCHED_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sched sched;
typedef void (*sched_fn)(void *arg);

/* Handle to a scheduled task, for cancelation. 0 is never a valid id. */
typedef uint64_t sched_timer_id;

/* nthreads >= 1; name (15 bytes at most with the "-N" suffix) names the threads.
 * Returns NULL with errno set on failure. */
sched *sched_create(int nthreads, const char *name);
/* Must not be called from one of s's own tasks (it joins their threads). While
 * it runs, drop callbacks may still call sched_cancel / sched_after on s. */
void sched_destroy(sched *s);

/* Run fn(arg) as soon as a worker is free. Returns 0, or -ESHUTDOWN after destroy began
 * (-ENOMEM if out of memory); on failure fn never runs and arg stays the caller's. */
int sched_submit(sched *s, sched_fn fn, void *arg);

/* Run fn(arg) after delay_ms (negative counts as 0). drop(arg), if not NULL, runs instead
 * when the task is canceled or dropped at shutdown. Returns the timer id, or 0 after
 * destroy began (or out of memory); on 0 neither fn nor drop runs. */
sched_timer_id sched_after(sched *s, int64_t delay_ms, sched_fn fn, sched_fn drop, void *arg);

/* Cancels a timer that has not started: calls its drop callback and returns true.
 * Returns false if it already ran, is running, or is unknown. */
bool sched_cancel(sched *s, sched_timer_id id);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t sched_now_ms(void);

#endif
