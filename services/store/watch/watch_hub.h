/* services/store/watch/watch_hub.h — keel-store's watchable store (etcd's
 * watchableStore + watchStream): every watcher of every Watch stream, fed by
 * the store's published events and, when behind, by its history.
 *
 * A watcher remembers its position: the next revision it needs (next_rev).
 * SYNCED watchers sit in an index by key (watch_group.h) and get each revision
 * from the hub's FAN-OUT thread, through their stream's bounded send queue.
 * The store's WAL thread only hands each published revision over (a queue
 * append, never the hub's lock), so fan-out never delays durability or the
 * acknowledgement of the next writes. Each revision's events are encoded once
 * (watch_batch.h); a watcher's response is its own few header bytes plus
 * ranges of that encoding. A watcher whose stream's queue is full, or that
 * starts in the past, is UNSYNCED: the hub's sync thread replays the store's
 * history from next_rev once the stream drains, then moves it back to the
 * synced index at a moment when no revision can fall between the two paths.
 * Nothing blocks the WAL thread and no stream holds more than its queue bound;
 * revisions waiting for the fan-out thread are bounded too (above the bound
 * they are dropped from the hand-off and replayed from history instead). A
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
#include "common/rpc/rpc.h"
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
  /* Published events waiting for the fan-out thread (bytes of keys and values,
   * roughly). Above it the WAL thread stops queueing them: the watchers that
   * needed them replay those revisions from history. 0 = 64 MiB. */
  int64_t max_pending_bytes;
  /* Threads that send a revision's responses, the fan-out thread included
   * (each stream's on one of them, in order). 0 = one per CPU, at most 8;
   * 1 = the fan-out thread alone. */
  int sender_threads;
} watch_hub_options;

/* Creates the hub, installs it as s's event sink (before any write) and starts
 * its fan-out and sync threads. opts may be NULL. */
watch_hub *watch_hub_create(store *s, const watch_hub_options *opts, keel_error *err);
/* Stops the fan-out and sync threads; later store events are ignored. Call
 * before store_close. Idempotent. */
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
  uint64_t pending;         /* revisions handed over, not yet fanned out */
  uint64_t overflowed;      /* revisions dropped from the hand-off (replayed from history) */
  uint64_t held_back;       /* events held back while their stream's transport was busy */
} watch_hub_stats;

void watch_hub_get_stats(watch_hub *hub, watch_hub_stats *out);

/* ---- streams: one per Watch call; watch_service.c is the gRPC side */

typedef struct watch_stream watch_stream;

/* See watch_stream_ops.queued. */
#define WATCH_COALESCE_DEPTH 1

typedef struct watch_stream_ops {
  /* Queues one response without blocking; called with the hub's lock held, so
   * it must not call into the hub. Sends to different streams may run on
   * several threads at once (the sender pool); one stream's never do.
   * Returns 0, -ENOBUFS when the queue is full
   * (then watch_stream_writable must follow once it has room), -EINVAL when the
   * message is too large, or another negative value when the stream is gone. */
  int (*send)(void *ctx, const Etcdserverpb__WatchResponse *resp);
  /* The same for a response of events: prefix (copied) then the ranges of
   * shared encodings in parts, in order (rpc_call_send_prefixed's contract:
   * the ranges are referenced, not copied). */
  int (*send_parts)(void *ctx, const uint8_t *prefix, size_t prefix_len,
                    const rpc_shared_range *parts, size_t nparts);
  /* Responses waiting in the transport behind the one being written (NULL:
   * never backed up). While that is at least WATCH_COALESCE_DEPTH, new events
   * are held back and sent together once it drains. Called with the hub's
   * lock held. */
  int (*queued)(void *ctx);
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
