/* services/store/watch/watch_batch.h — one revision's changes, encoded once.
 *
 * A batch from the store (live, or a revision of history) is encoded once
 * however many watchers it goes to: each event as a finished entry of
 * WatchResponse.events (watch_wire.h), all in one buffer shared with the
 * transport (rpc_shared_message), in two shapes: without prev_kv, and with it
 * when the store computed prevs. A watcher's response is then its own short
 * prefix plus ranges of that buffer: nothing is packed per watcher and the
 * bytes are never copied. Entries of one shape are contiguous in event order,
 * so a watcher that gets consecutive events of a revision gets one range.
 *
 * etcd's shapes: a PUT carries the whole KeyValue; a DELETE's kv holds only the
 * key and mod_revision (the deletion's revision); prev_kv is the key's previous
 * live version. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_BATCH_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rpc/rpc.h"
#include "services/store/engine/store.h"

struct watch_batch;

/* One event as a watcher gets it: a range of its revision's encoding. */
typedef struct watch_ev {
  int64_t rev;                   /* main revision */
  const rpc_shared_message *enc; /* borrowed from the batch */
  size_t off, len;               /* the whole events entry: tag, length, mvccpb.Event */
  struct watch_batch *hold;      /* a heap batch to hold while the event waits, or NULL */
} watch_ev;

typedef struct watch_batch {
  int64_t revision;
  size_t n;
  rpc_shared_message *enc; /* NULL when n == 0 */
  /* [i]: event i without prev_kv; [n + i]: with prev_kv (the same bytes as
   * [i] when the store computed no prev for it). */
  size_t *off, *len;
  size_t bytes; /* the encoding's size */
  int refs;     /* heap batches (watch_batch_new): holders */
} watch_batch;

/* Encodes b (borrowed only during the call). Returns 0 or -ENOMEM. */
int watch_batch_encode(watch_batch *v, const store_event_batch *b);
/* Drops the batch's reference to its encoding: sends still queued keep it. */
void watch_batch_release(watch_batch *v);

/* The same on the heap, for events that may wait in watchers after the
 * fan-out moved on: one reference; hold/drop are not thread-safe (the hub's
 * lock guards them); the last drop releases and frees it. NULL when out of
 * memory. */
watch_batch *watch_batch_new(const store_event_batch *b);
void watch_batch_hold(watch_batch *v);
void watch_batch_drop(watch_batch *v);

static inline watch_ev watch_batch_event(const watch_batch *v, size_t i, bool with_prev) {
  size_t k = with_prev ? v->n + i : i;
  return (watch_ev){v->revision, v->enc, v->off[k], v->len[k], NULL};
}

/* Does e have a previous version (so a prev_kv watcher must get one)? Deletes
 * always do; a put does unless it created the key (version 1). */
bool watch_event_has_predecessor(const store_event *e);

#endif
