/* services/store/watch/watch_batch.h — one revision's changes as mvccpb.Events.
 *
 * A batch from the store is converted once, however many watchers it goes to:
 * every event in two shapes (without and with prev_kv) plus its packed size, so
 * fan-out only picks pointers and response sizes are known before encoding
 * (fragmenting needs them). The messages borrow the store batch's bytes.
 *
 * etcd's shapes: a PUT carries the whole KeyValue; a DELETE's kv holds only the
 * key and mod_revision (the deletion's revision); prev_kv is the key's previous
 * live version. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_BATCH_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/mvccpb/kv.pb-c.h"
#include "services/store/engine/store.h"

typedef struct watch_batch {
  int64_t revision;
  size_t n;
  const store_event *events; /* borrowed from the store batch */
  Mvccpb__KeyValue *kv, *prev;
  Mvccpb__Event *plain;       /* no prev_kv */
  Mvccpb__Event *with_prev;   /* prev_kv when the store computed one */
  size_t *plain_size, *with_prev_size; /* packed size of each Event */
  store_event_batch *owned;   /* the copy this view owns, or NULL */
} watch_batch;

/* Builds the view over b (borrowed: valid while b is). Returns 0 or -ENOMEM. */
int watch_batch_init(watch_batch *v, const store_event_batch *b);
/* Same over a copy of b that the view owns (for history kept past the callback). */
int watch_batch_init_copy(watch_batch *v, const store_event_batch *b);
void watch_batch_release(watch_batch *v);

/* Does e have a previous version (so a prev_kv watcher must get one)? Deletes
 * always do; a put does unless it created the key (version 1). */
bool watch_event_has_predecessor(const store_event *e);

/* Bytes a length-delimited field of `size` bytes takes in a message. */
size_t watch_field_size(size_t size);

#endif
