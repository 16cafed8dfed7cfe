/* services/store/watch/watch_internal.h — state shared by watch_hub.c (the
 * store side: event fan-out, the sync thread) and watch_stream.c (the client
 * side: requests, control responses, sending). Not a contract.
 *
 * One lock, hub->mu, guards everything here (as etcd's watchableStore.mu):
 * the synced index, every watcher's position and list membership, every
 * stream's state, and every send, so a stream's responses leave in the order
 * they were decided. Store calls (history, headers) are never made under it. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_INTERNAL_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/store/watch/watch_batch.h"
#include "services/store/watch/watch_group.h"
#include "services/store/watch/watch_hub.h"

typedef struct watcher watcher;

struct watcher {
  int64_t id;
  watch_stream *stream;
  watch_range range; /* owns its bytes */
  bool prev_kv, fragment, progress_notify, no_put, no_delete;

  /* Position: the next revision this watcher needs, and how many of its
   * events of that revision already went out (a fragmented response cut short
   * by a full queue; otherwise 0). */
  int64_t next_rev;
  size_t skip;

  bool synced;     /* in hub->synced; otherwise on stream->unsynced */
  bool removed;    /* canceled or its stream closed */
  bool had_events; /* since the last progress tick */
  int refs;        /* the stream's, plus the sync thread's while it works on it */

  watcher *s_prev, *s_next; /* stream->watchers */
  watcher *u_prev, *u_next; /* stream->unsynced */
  watcher *id_next;         /* stream->ids chain */

  /* Fan-out scratch (sink, under hub->mu). */
  uint64_t stamp;
  size_t *match;
  size_t nmatch, match_cap;

  /* Catch-up scratch (sync thread only). */
  int64_t cu_next;
  size_t cu_skip, cu_seen;
  Mvccpb__Event **cu_evs;
  size_t *cu_sizes;
  size_t cu_n, cu_cap;
};

/* A control response waiting behind a full queue. */
typedef struct ctrl_msg {
  struct ctrl_msg *next;
  int64_t watch_id;
  int64_t header_rev;
  bool created, canceled;
  int64_t compact_revision;
  const char *cancel_reason; /* static */
  char *owned_reason;        /* or this, owned */
} ctrl_msg;

struct watch_stream {
  watch_hub *hub;
  watch_stream_ops ops;
  void *ctx;
  int refs; /* the opener's, plus the work queue's */

  bool closed;
  bool blocked;          /* a send failed: nothing more until writable */
  bool queued;           /* on the hub's work queue */
  bool progress_pending; /* a progress request waits for every watcher to sync */
  int64_t next_auto_id;

  watcher **ids; /* watch_id -> watcher, chained, power-of-two buckets */
  size_t nid_buckets, nids;
  watcher *watchers;
  watcher *unsynced;
  size_t nunsynced;

  ctrl_msg *ctrl_head, *ctrl_tail;
  size_t nctrl;

  watch_stream *h_prev, *h_next; /* hub->streams */
  watch_stream *q_next;          /* hub work queue */
};

struct watch_hub {
  store *store;
  watch_hub_options opts;
  Etcdserverpb__ResponseHeader base_header; /* cluster, member, term */
  _Atomic bool want_prev;
  atomic_int refs; /* the creator's plus one per open stream */

  pthread_mutex_t mu;
  pthread_cond_t cond; /* wakes the sync thread */
  int64_t cur_rev;     /* the newest revision fanned out (sink) */
  watch_group *synced;
  size_t nprev_watchers;
  watch_stream *streams;
  watch_stream *work_head, *work_tail;
  bool stopping;
  bool worker_started;
  pthread_t worker;

  int64_t retry_at; /* monotonic ms: retry unsynced watchers (0: none) */

  /* Fan-out scratch (sink). */
  uint64_t stamp;
  watcher **touched; /* capacity > nwatchers, kept by create */
  size_t ntouched, touched_cap;
  Mvccpb__Event **scratch_evs;
  size_t *scratch_sizes;
  size_t scratch_cap;

  uint64_t nstreams, nwatchers, nunsynced;
  uint64_t fell_behind, history_events, compacted;
};

/* ---- watch_stream.c, all under hub->mu */

/* Sends one response; any failure blocks the stream until writable. */
int watch_send(watch_stream *st, const Etcdserverpb__WatchResponse *resp);
/* Sends evs (in revision order) to w as etcd would: one response, or fragments
 * when too large. Returns how many events went out; *rc is the failing send's
 * error or 0. */
size_t watch_emit(watch_stream *st, watcher *w, int64_t header_rev, Mvccpb__Event **evs,
                  const size_t *sizes, size_t n, int *rc);
/* Moves w's position past k of the n events just offered (evs in revision
 * order); when all went out, to end_rev + 1. */
void watch_advance(watcher *w, Mvccpb__Event *const *evs, size_t k, size_t n, int64_t end_rev);
/* A control response: sent now when the stream is free, else queued. */
void watch_ctrl(watch_stream *st, const ctrl_msg *m);
void watch_make_synced(watcher *w);
/* Takes w out of the synced index (the caller has set its position). */
void watch_make_unsynced(watcher *w);
/* Cancels w and frees it when unreferenced (no response is sent). */
void watch_remove(watcher *w);
void watch_unref(watcher *w);
/* Puts st on the sync thread's queue (if not there) and wakes it. */
void watch_enqueue(watch_stream *st);
/* Answers a pending progress request if every watcher of st is synced. */
void watch_try_progress(watch_stream *st);
/* A watcher whose send can never succeed (a single event above the message
 * limit): canceled with a reason. */
void watch_cancel_too_large(watcher *w, size_t bytes);
void watch_stream_unref(watch_stream *st);

/* ---- watch_hub.c */

void watch_hub_unref(watch_hub *hub);

#endif
