/* services/store/watch/watch_hub.h — keel-store's watchable store (etcd's
 * watchableStore + watchStream): every watcher of every Watch stream, fed by
 * the store's published events and, when behind, by its history.
 *
 * A watcher remembers its position: the next revision it needs (next_rev).
 * SYNCED watchers sit in an index by key (watch_group.h) and get each revision
 * as the store publishes it, on the store's WAL thread, through their stream's
 * bounded send queue. A watcher whose stream's queue is full, or that starts in
 * the past, is UNSYNCED: the hub's sync thread replays the store's history from
 * next_rev once the stream drains, then moves it back to the synced index at a
 * moment when no published revision can fall between the two paths. Nothing
 * blocks the WAL thread and no stream holds more than its queue bound. A
 * watcher whose next_rev was compacted gets etcd's canceled response with
 * compact_revision and is removed.
 *
 * Lifecycle (the store outlives the hub's use of it):
 *   store_open -> watch_hub_create -> (serve) -> rpc_server_shutdown ->
 *   watch_hub_stop -> store_close -> watch_hub_destroy
 * Streams keep the hub's memory alive until they are released, so the rpc
 * server may be destroyed before or after the hub. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_HUB_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_HUB_H

#include <stdint.h>

#include "common/base/error.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/store.h"

typedef struct watch_hub watch_hub;

typedef struct watch_hub_options {
  /* Period of progress notifications for watchers created with progress_notify
   * (etcd: 10 minutes). 0 = default; negative = never. */
  int64_t progress_interval_ms;
  /* Responses to watchers created with fragment=true are split above this
   * (etcd: --max-request-bytes 1.5 MiB + 512 KiB gRPC overhead). 0 = default. */
  int64_t fragment_bytes;
  /* The transport's largest message (the rpc server's max_message_bytes); any
   * response above it is split into fragments. 0 = 4 MiB. */
  int64_t max_send_bytes;
  /* Control responses (created, canceled, progress) that may wait behind a full
   * stream before the stream is ended as too slow. 0 = 4096. */
  int max_pending_control;
} watch_hub_options;

/* Creates the hub, installs it as s's event sink (before any write) and starts
 * its sync thread. opts may be NULL. */
watch_hub *watch_hub_create(store *s, const watch_hub_options *opts, keel_error *err);
/* Stops the sync thread; later store events are ignored. Call before
 * store_close. Idempotent. */
void watch_hub_stop(watch_hub *hub);
/* Stops (if needed) and drops the creator's reference; call after store_close. */
void watch_hub_destroy(watch_hub *hub);

typedef struct watch_hub_stats {
  int64_t revision;         /* the newest revision the hub has fanned out */
  uint64_t streams;
  uint64_t watchers;
  uint64_t synced, unsynced;
  uint64_t fell_behind;     /* times a watcher went unsynced on a full queue */
  uint64_t history_events;  /* events sent from history (replays and catch-ups) */
  uint64_t compacted;       /* watchers canceled with compact_revision */
} watch_hub_stats;

void watch_hub_get_stats(watch_hub *hub, watch_hub_stats *out);

/* ---- streams: one per Watch call; watch_service.c is the gRPC side */

typedef struct watch_stream watch_stream;

typedef struct watch_stream_ops {
  /* Queues one response without blocking; called with the hub's lock held, so
   * it must not call into the hub. Returns 0, -ENOBUFS when the queue is full
   * (then watch_stream_writable must follow once it has room), -EINVAL when the
   * message is too large, or another negative value when the stream is gone. */
  int (*send)(void *ctx, const Etcdserverpb__WatchResponse *resp);
  /* Ends the stream with RESOURCE_EXHAUSTED and message (a client that sends
   * requests but never reads). Called with the hub's lock held. */
  void (*abort)(void *ctx, const char *message);
} watch_stream_ops;

/* ops is copied; ctx is the transport's (an rpc_call). NULL when out of memory. */
watch_stream *watch_stream_open(watch_hub *hub, const watch_stream_ops *ops, void *ctx);
/* Handles one WatchRequest (create, cancel, progress; others are ignored). */
void watch_stream_request(watch_stream *st, const Etcdserverpb__WatchRequest *req);
/* The transport's queue has room again after a -ENOBUFS. */
void watch_stream_writable(watch_stream *st);
/* The transport is gone: removes every watcher; nothing is sent afterwards.
 * Idempotent. */
void watch_stream_close(watch_stream *st);
/* Closes (if needed) and drops the opener's reference. */
void watch_stream_release(watch_stream *st);

#endif
