/* services/store/watch/watch_internal.h — state shared by watch_fanout.c (the
 * hand-off from the store and the fan-out thread), watch_hub.c (lifecycle, the
 * sync thread, progress) and watch_stream.c (the client side: requests,
 * control responses, sending). Not a contract.
 *
 * One lock, hub->mu, guards everything here (as etcd's watchableStore.mu):
 * the synced index, every watcher's position and list membership, every
 * stream's state, and every send, so a stream's responses leave in the order
 * they were decided. Store calls (history, headers) are never made under it.
 * The hand-off queue has its own lock, hub->qmu, which the WAL thread takes;
 * it never waits for hub->mu (it only tries it).
 *
 * One exception to "one thread under hub->mu": while the fan-out thread holds
 * it, the sender pool (watch_senders.c) sends one round of responses on
 * several threads at once, each stream's on one thread; those threads touch
 * only their streams' send state and watchers' positions, and the round ends
 * before the fan-out thread goes on. */
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
  int refs;        /* the stream's, plus the fan-out's or sync thread's while it works on it */

  watcher *s_prev, *s_next; /* stream->watchers */
  watcher *u_prev, *u_next; /* stream->unsynced */
  watcher *id_next;         /* stream->ids chain */

  /* Fan-out scratch (fan-out thread, under hub->mu). */
  uint64_t stamp;
  size_t *match;
  size_t nmatch, match_cap;

  /* Held back: live events decided while the stream's transport was backed
   * up or the fan-out was grouping revisions, oldest first, each holding its
   * batch; they go out together (watch_fanout.c). Only a synced watcher has
   * them. */
  watch_ev *bl;
  size_t bl_n, bl_cap, bl_bytes;

  /* Catch-up scratch (sync thread only). */
  int64_t cu_next;
  size_t cu_skip, cu_seen;
  watch_ev *cu_evs;
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
  int refs; /* the opener's, plus the work queue's and the backlog list's */

  bool closed;
  bool blocked;          /* a send failed: nothing more until writable */
  bool queued;           /* on the hub's work queue */
  bool progress_pending; /* a progress request waits for every watcher to sync */
  int64_t progress_rev;  /* ...and for the fan-out to reach this (published when asked) */
  int64_t next_auto_id;

  watcher **ids; /* watch_id -> watcher, chained, power-of-two buckets */
  size_t nid_buckets, nids;
  watcher *watchers;
  watcher *unsynced;
  size_t nunsynced;

  ctrl_msg *ctrl_head, *ctrl_tail;
  size_t nctrl;

  size_t nbacklog;     /* watchers holding events back */
  int64_t bl_since_ms; /* monotonic: when the first of them started */
  bool on_backlog;     /* on the hub's backlog list (holds a reference) */

  /* Sender pool scratch (watch_senders.c, fan-out thread): this stream's last
   * job of the round being grouped, valid while send_stamp is the round's. */
  uint64_t send_stamp;
  size_t send_tail;

  watch_stream *h_prev, *h_next; /* hub->streams */
  watch_stream *q_next;          /* hub work queue */
  watch_stream *b_next;          /* hub backlog list */
};

/* One watcher's response(s), decided by the fan-out thread under hub->mu and
 * sent by the sender pool (watch_senders.c); the fan-out thread applies the
 * result (position, unsynced, canceled) once the whole round is sent. */
typedef struct watch_send_job {
  watcher *w;          /* referenced by the fan-out thread for the round */
  const watch_ev *evs; /* in revision order */
  size_t n;
  size_t ev0;          /* where evs start in hub->job_evs (fan-out of one revision) */
  /* One revision's response with this header revision (watch_emit), or 0:
   * held-back events, several revisions per response (watch_emit_revisions). */
  int64_t header_rev;
  size_t sent; /* result: events that went out */
  int rc;      /* result: the failing send's error, or 0 */
  size_t next; /* the stream's next job in the round, or SIZE_MAX */
} watch_send_job;

/* Threads that send a round's responses together with the fan-out thread. */
typedef struct watch_senders {
  int n;              /* threads sending, the fan-out thread included */
  size_t min_streams; /* fewer streams in a round: the fan-out thread sends alone */
  pthread_t *threads; /* n - 1 helpers */
  int started;
  pthread_mutex_t mu;
  pthread_cond_t wake, done;
  uint64_t gen; /* rounds started: a helper works once per new value */
  bool open;    /* the round takes helpers (until the fan-out thread has claimed every unit) */
  int active;   /* helpers that joined the round and are still working on it */
  bool stop;
  /* The round: jobs, and the first job of each stream (a unit), taken in
   * turn by whichever thread is free. */
  watch_send_job *jobs;
  const size_t *units;
  size_t nunits;
  atomic_size_t next_unit;
  uint64_t stamp;
  size_t *unit_buf;
  size_t unit_cap;
} watch_senders;

/* A published revision handed to the fan-out thread, or (b NULL) a run of them
 * dropped from the hand-off when it was full. */
typedef struct fanout_entry {
  store_event_batch *b; /* owned */
  int64_t from, to;     /* b's revision, or the dropped run */
  size_t bytes;
} fanout_entry;

struct watch_hub {
  store *store;
  watch_hub_options opts;
  Etcdserverpb__ResponseHeader base_header; /* cluster, member, term */
  _Atomic bool want_prev;
  atomic_int refs; /* the creator's plus one per open stream */

  /* The hand-off (qmu): appended by the WAL thread, taken whole by the
   * fan-out thread, which swaps in its emptied array. */
  pthread_mutex_t qmu;
  pthread_cond_t qcond;
  fanout_entry *q, *q_spare;
  size_t qlen, qcap, q_spare_cap;
  size_t qbytes;     /* queued or in the fan-out thread's hands */
  size_t q_inhand;   /* entries the fan-out thread took and has not finished */
  bool q_waiting;    /* the fan-out thread sleeps on qcond */
  bool q_stopping;
  bool fanout_started;
  pthread_t fanout;
  uint64_t overflowed;

  pthread_mutex_t mu;
  pthread_cond_t cond; /* wakes the sync thread */
  int64_t cur_rev;     /* the newest revision fanned out (delivered or held) */
  watch_group *synced;
  size_t nprev_watchers;
  size_t nprogress; /* streams with progress_pending */
  watch_stream *streams;
  watch_stream *work_head, *work_tail;
  watch_stream *backlog_head; /* streams with held-back events */
  bool grouping;              /* the fan-out holds every event until its group ends */
  atomic_bool backlogged;     /* backlog_head != NULL, for the fan-out thread's sleep */
  bool stopping;
  bool worker_started;
  pthread_t worker;

  int64_t retry_at; /* monotonic ms: retry unsynced watchers (0: none) */

  /* Fan-out scratch (fan-out thread). */
  uint64_t stamp;
  watcher **touched; /* capacity > nwatchers, kept by create */
  size_t ntouched, touched_cap;
  watch_send_job *jobs; /* capacity touched_cap: at most one job per watcher */
  size_t njobs;
  watch_ev *job_evs; /* the jobs' events, for one revision's fan-out */
  size_t njob_evs, job_evs_cap;
  watch_senders senders;

  uint64_t nstreams, nwatchers, nunsynced;
  uint64_t fell_behind, history_events, compacted, held_back;
};

/* ---- watch_stream.c, all under hub->mu */

/* Sends one response; any failure blocks the stream until writable. */
int watch_send(watch_stream *st, const Etcdserverpb__WatchResponse *resp);
/* Sends evs (in revision order) to w as etcd would: one response, or fragments
 * when too large; each response is w's prefix plus ranges of the events'
 * shared encodings. Returns how many events went out; *rc is the failing
 * send's error or 0 (-ENOMEM: no room for the ranges; the stream is not
 * blocked then, retry later). */
size_t watch_emit(watch_stream *st, watcher *w, int64_t header_rev, const watch_ev *evs, size_t n,
                  int *rc);
/* Moves w's position past k of the n events just offered (evs in revision
 * order); when all went out, to end_rev + 1. */
void watch_advance(watcher *w, const watch_ev *evs, size_t k, size_t n, int64_t end_rev);
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

/* Sends evs (whole revisions, in order) to w in responses of at most
 * WATCH_RESPONSE_BYTES and WATCH_RESPONSE_REVS revisions each, advancing w;
 * header_rev 0 gives each response its newest revision. Returns the events
 * sent; *rc like watch_emit. */
size_t watch_emit_revisions(watch_stream *st, watcher *w, int64_t header_rev, const watch_ev *evs,
                            size_t n, int *rc);
#define WATCH_RESPONSE_BYTES (256 * 1024)
#define WATCH_RESPONSE_REVS 1000

/* Marks a progress request of st answered or dropped. */
void watch_progress_done(watch_stream *st);

/* ---- watch_hub.c */

void watch_hub_unref(watch_hub *hub);
/* After an allocation failure: unsynced watchers are retried a little later. */
void watch_schedule_retry(watch_hub *hub);
/* Answers the progress requests that waited for the fan-out. Under hub->mu. */
void watch_progress_check(watch_hub *hub);

/* ---- watch_senders.c (fan-out thread) */

/* Starts opts.sender_threads - 1 helpers (0: one thread per CPU). */
int watch_senders_start(watch_hub *hub, keel_error *err);
/* Sends every job (each stream's in order, on one thread), several streams
 * at once when there are enough; returns when all are done. Under hub->mu. */
void watch_senders_run(watch_hub *hub, watch_send_job *jobs, size_t n);
/* Ends the helpers (the fan-out thread has stopped). */
void watch_senders_stop(watch_hub *hub);
void watch_senders_free(watch_hub *hub);

/* ---- watch_fanout.c */

/* Drops w's held-back events; returns the revision of the oldest (0: none),
 * where w's position must go if it leaves the synced index. */
int64_t watch_backlog_clear(watcher *w);
/* Sends w's held-back events now (the transport queues them whatever its
 * depth), or sends w to history if that fails. */
void watch_backlog_send(watch_hub *hub, watcher *w);
/* Unlinks every stream from the backlog list (destroy). */
void watch_backlog_release_all(watch_hub *hub);

/* The store's event sink (WAL thread): takes b. */
void watch_fanout_sink(void *arg, store_event_batch *b);
int watch_fanout_start(watch_hub *hub, keel_error *err);
/* Stops the fan-out thread and frees what it had not fanned out. */
void watch_fanout_stop(watch_hub *hub);
void watch_fanout_free(watch_hub *hub);

#endif
