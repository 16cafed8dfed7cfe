/* services/store/engine/store.h — keel-store's engine: the kv state (kv.h),
 * the write-ahead log (wal/), and the apply pipeline between them.
 *
 * Writes are submitted and complete later, on the WAL's thread, once durable:
 *   handler --submit--> apply queue --applier--> kv (write lock) + WAL record
 *           <--done(resp)-- WAL completer (after group commit) -- published revision moves
 * The applier is the submitting thread when nobody else is applying (it drains
 * what others queue meanwhile), or the apply thread when the WAL's queue is
 * full: so done may run on the caller's thread before submit returns (a
 * read-only txn with nothing pending, a refusal), and submit never waits on
 * disk.
 * Nothing a write changed is visible to reads (store_range) or acknowledged
 * before its WAL record is on disk. Requests that write nothing (a read-only
 * txn, a delete of missing keys) complete once every earlier write they may
 * have observed is durable.
 *
 * Reads run on the caller's thread under the read lock, at the published
 * revision (or an older one not yet compacted).
 *
 * Snapshots: every snapshot_count records the applier captures a point
 * (WAL index I, revision R, the lease table) between two ops and a snapshot
 * thread writes the state as of R (<data_dir>/member/snap) in bounded chunks
 * under the read lock, while writes go on; once the file is complete and
 * synced, WAL segments older than the oldest snapshot kept are removed. A
 * compaction submitted meanwhile is held (applied and answered after the
 * snapshot: it would free records the snapshot still reads). store.c has the
 * details.
 *
 * Values: once a snapshot is durable, the values it holds are read from the
 * file (pread) and their in-memory copies freed; only values written since
 * stay in memory (they are in the WAL too). See value_file.h.
 *
 * Recovery (store_open) loads the newest valid snapshot (its index and
 * metadata; values stay in the file) and replays the WAL records after it into
 * a fresh kv. A storage failure puts
 * the store in a failed state: every later write completes with UNAVAILABLE
 * "etcdserver: storage failure: ..."; a restart recovers from disk. */
#ifndef KEEL_SERVICES_STORE_ENGINE_STORE_H
#define KEEL_SERVICES_STORE_ENGINE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/base/error.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/kv.h"

typedef struct store store;

typedef struct store_options {
  const char *data_dir;      /* WAL in <data_dir>/member/wal, as etcd lays it out */
  const char *name;          /* member name (etcd --name) */
  uint64_t cluster_id;       /* 0: derived from the name */
  uint64_t member_id;        /* 0: derived from the name */
  bool unsafe_no_fsync;      /* tests and benchmarks only */
  int apply_queue_max;       /* pending submitted writes before submit refuses; default 65536 */
  int lease_check_ms;        /* how often expired leases are revoked; default 500 (etcd's) */
  uint64_t snapshot_count;   /* WAL records between snapshots (etcd --snapshot-count); default 100000 */
  uint64_t wal_segment_bytes; /* WAL segment size; default 64 MiB (tests use small ones) */
  size_t wal_queue_records;   /* WAL records queued or being written; 0: the WAL's default (tests use tiny ones) */
  /* Auto compaction, as etcd's --auto-compaction-mode/-retention. Periodic: keep
   * the history of the last retention_ms (a revision is sampled every tenth of
   * it, at most hourly; compaction goes to the revision sampled retention_ms
   * ago). Revision: keep the newest retention_revs revisions, checked every
   * 5 minutes. 0 = off. auto_compaction_check_ms overrides the check interval
   * (tests). */
  int64_t auto_compaction_retention_ms;
  int64_t auto_compaction_retention_revs;
  int64_t auto_compaction_check_ms;
  /* Tests only. snapshot_hook runs on the snapshot thread outside every lock
   * (it may block to hold a snapshot open; writes go on): STARTED, then CHUNK
   * after each chunk of records copied (records: how many so far), then
   * WRITTEN once the file is durable (before the WAL is truncated), or ABANDONED.
   * snapshot_chunk_delay_us sleeps after every chunk (slow snapshots for crash
   * tests). */
  void (*snapshot_hook)(void *arg, int phase, uint64_t index, uint64_t records);
  void *snapshot_hook_arg;
  int64_t snapshot_chunk_delay_us;
  /* Called (on the snapshot thread) after a snapshot's values were dropped
   * from memory, and after recovery: give freed memory back to the OS
   * (keel-store purges jemalloc's arenas). NULL: nothing. */
  void (*release_memory)(void);
} store_options;

/* Snapshot hook phases. REPOINTED follows WRITTEN once the file's values are
 * served from it and their in-memory copies freed (records: values moved). */
enum {
  STORE_SNAPSHOT_STARTED,
  STORE_SNAPSHOT_CHUNK,
  STORE_SNAPSHOT_WRITTEN,
  STORE_SNAPSHOT_ABANDONED,
  STORE_SNAPSHOT_REPOINTED
};

store *store_open(const store_options *opts, keel_error *err);
/* Completes (with their results) every write already submitted, then closes. */
void store_close(store *s);

/* Fills cluster_id, member_id, raft_term and revision (the published one). */
void store_fill_header(store *s, Etcdserverpb__ResponseHeader *h);

/* A read at the published revision; out is deep-owned (free its fields) and
 * its header names the revision read at. */
int store_range(store *s, const Etcdserverpb__RangeRequest *req, Etcdserverpb__RangeResponse *out,
                kv_error *err);

/* Completion of a submitted write, on the WAL's thread, or on whichever thread
 * is applying (possibly the caller's, inside submit) for a refusal or a
 * request that wrote nothing. It may run for other callers' requests on the
 * caller's thread: it must not wait for anything the caller holds. err NULL = success and resp (owned by the callee, free
 * with protobuf_c_message_free_unpacked) has its header filled; otherwise resp
 * is NULL. Keep it short: reply and return. */
typedef void (*store_done_fn)(void *arg, const kv_error *err, ProtobufCMessage *resp);

/* Submit copies the request. Returns 0, -EAGAIN when the apply queue is full
 * (the caller answers RESOURCE_EXHAUSTED), -EINVAL for a request protobuf-c
 * cannot re-encode (INVALID_ARGUMENT), -ENOMEM, or -ESHUTDOWN; done is not
 * called then. */
int store_submit_put(store *s, const Etcdserverpb__PutRequest *req, store_done_fn done, void *arg);
int store_submit_delete_range(store *s, const Etcdserverpb__DeleteRangeRequest *req,
                              store_done_fn done, void *arg);
int store_submit_txn(store *s, const Etcdserverpb__TxnRequest *req, store_done_fn done, void *arg);
int store_submit_compact(store *s, const Etcdserverpb__CompactionRequest *req, store_done_fn done,
                         void *arg);

/* ---- watch support */

/* An owned copy of one change, made on the apply thread (revstore records may be
 * compacted away before watchers see them). */
typedef struct store_event {
  bool is_delete;
  mvcc_revision rev;
  uint8_t *key;
  size_t keylen;
  uint8_t *value; /* NULL for deletes */
  size_t valuelen;
  int64_t create_revision, version, lease; /* 0 for deletes */
  /* The key's previous live version (only when the sink asked for prevs). */
  bool has_prev;
  uint8_t *prev_value;
  size_t prev_valuelen;
  int64_t prev_create_revision, prev_mod_revision, prev_version, prev_lease;
} store_event;

/* Every change of one main revision, in sub-revision order. */
typedef struct store_event_batch {
  int64_t revision;
  size_t n;
  store_event *events;
} store_event_batch;

/* A batch lent to a callback (history): valid during the call. */
typedef void (*store_event_fn)(void *arg, const store_event_batch *batch);

/* Called on the WAL thread after each write's revision is published, in
 * revision order. The sink takes the batch (store_event_batch_free) and must
 * only hand it on: the next group commit and the write's reply wait for it. */
typedef void (*store_event_sink_fn)(void *arg, store_event_batch *batch);

/* Installs the sink (one; before any write). *want_prev is read on the apply
 * thread for every write: set it while some watcher asked for prev_kv. */
void store_set_event_sink(store *s, store_event_sink_fn fn, void *arg,
                          const _Atomic bool *want_prev);

/* Replays history for a watcher catching up: every change with
 * from_rev <= revision <= to_rev on keys in [key, end) (etcd's end rules), in
 * revision order, one batch per revision, filtered to the range. Runs under the
 * read lock on the caller's thread. Fails with etcd's "compacted" error when
 * from_rev < the compacted revision (and from_rev > 0). to_rev 0 = published. */
int store_history(store *s, const uint8_t *key, size_t keylen, const uint8_t *end, size_t endlen,
                  int64_t from_rev, int64_t to_rev, bool with_prev, store_event_fn fn, void *arg,
                  kv_error *err);

/* Frees a batch's contents (for sinks that keep a copy: use store_event_batch_copy). */
store_event_batch *store_event_batch_copy(const store_event_batch *b);
void store_event_batch_free(store_event_batch *b);

/* ---- leases (etcd's Lease service semantics) */

extern const char STORE_ERR_LEASE_EXISTS[];   /* etcdserver: lease already exists */
extern const char STORE_ERR_LEASE_TTL[];      /* etcdserver: too large lease TTL */

/* Grant (id 0: the store picks one; TTLs below 2 s become 2) and revoke (deletes
 * every attached key in one revision) go through the log like any write. */
int store_submit_lease_grant(store *s, const Etcdserverpb__LeaseGrantRequest *req,
                             store_done_fn done, void *arg);
int store_submit_lease_revoke(store *s, const Etcdserverpb__LeaseRevokeRequest *req,
                              store_done_fn done, void *arg);
/* Renews a lease; *ttl gets its TTL. -ENOENT for an unknown or expired lease
 * (the service answers TTL 0, as etcd does). Not logged: after a restart every
 * lease gets its full TTL again, as etcd extends leases on recovery. */
int store_lease_keepalive(store *s, int64_t id, int64_t *ttl);
/* Fills out (header included); an unknown lease gets TTL -1, grantedTTL 0. */
int store_lease_time_to_live(store *s, const Etcdserverpb__LeaseTimeToLiveRequest *req,
                             Etcdserverpb__LeaseTimeToLiveResponse *out);
int store_lease_leases(store *s, Etcdserverpb__LeaseLeasesResponse *out);

typedef struct store_status {
  int64_t revision;         /* published */
  int64_t compact_revision;
  uint64_t raft_index;      /* WAL records durable: moves with every write */
  uint64_t raft_term;
  uint64_t cluster_id, member_id;
  uint64_t keys;
  uint64_t leases;
  uint64_t memory_bytes;    /* kv state held in memory (dbSize's stand-in) */
  uint64_t value_bytes_resident; /* value bytes held in memory (written since the last snapshot) */
  uint64_t value_bytes_on_disk;  /* value bytes served from snapshot files */
  uint64_t value_files_open;     /* snapshot files held open for their values */
  uint64_t wal_fsyncs;
  uint64_t wal_records;
  uint64_t snapshots;       /* written by this process */
  uint64_t snapshot_index;  /* WAL index of the newest snapshot on disk */
  bool snapshot_running;    /* a snapshot is being written */
  uint64_t compactions_held; /* compactions waiting for the running snapshot */
  uint64_t auto_compactions;
  uint64_t apply_handoffs;  /* times a full WAL queue moved applying to the apply thread */
} store_status;

void store_get_status(store *s, store_status *out);

#endif
