/* services/store/wal/wal.h — keel-store's write-ahead log: an append-only,
 * checksummed, group-committed log of opaque records (see record.h for what
 * keel-store puts in them).
 *
 * Every record gets an index: 1, 2, 3, ... with no gaps, in append order. The
 * log lives in one directory (keel-store uses <data-dir>/member/wal) as
 * segment files "<seq>-<first_index>.wal" (16 lowercase hex digits each);
 * wal_format.h has the byte layout, README.md the directory layout.
 *
 * Durability contract: a done callback with status 0 means the record and
 * every record before it are on stable storage (written and fdatasync'ed);
 * after a crash at any instant, wal_open replays every such record. A record
 * whose callback reported an error, or never ran, may or may not come back.
 *
 * Group commit: appends from any number of threads go into a bounded queue; one
 * writer thread takes everything queued, writes it with one pwritev (split only
 * past IOV_MAX = 512 records), calls fdatasync once, and hands the batch to a
 * completer thread, which runs each record's done callback in index order
 * while the writer goes on with the next batch (a batch of one record whose
 * completer is idle is completed on the writer, saving a thread wake-up). While
 * one batch syncs, the next one gathers, so N concurrent appenders share about
 * one fsync per batch, and slow callbacks delay the next fsync only through the
 * queue's bounds.
 *
 * Recovery (wal_open) checks everything before replaying anything:
 * - The last segment may end in a torn or corrupt tail (a short header, a
 *   short payload, a checksum mismatch, a bad length, zeroed preallocated
 *   space). The log ends at the last valid record; the bytes after it are
 *   copied to "<segment>.<offset>.broken" in the same directory (unless they
 *   are all zero) and the segment is truncated there; appends continue there.
 *   A checksum cannot tell a torn write from a flipped bit, so damage to a
 *   record of the last segment ends the log at that record; the .broken copy
 *   keeps what was cut.
 * - Anything else is a hard error naming the file and offset: a bad record in
 *   any segment but the last, a segment whose header is damaged while it holds
 *   data, missing or overlapping indexes among the records wal_open must
 *   replay. Acknowledged data is never skipped silently.
 * - A last segment whose header was torn before any record reached it (it is
 *   shorter than a header, or zero after it) is recreated.
 *
 * Errors: after a failed write or fsync the log is poisoned: the failed batch
 * and every later append complete with that error (an fsync error can leave
 * the page cache claiming data the disk lacks; retrying is not safe). Close
 * and reopen (in practice: restart) to continue from what is on disk. */
#ifndef KEEL_STORE_WAL_WAL_H
#define KEEL_STORE_WAL_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

/* Largest payload wal_append accepts (a frame's length field above it is
 * corruption to recovery). */
#define WAL_MAX_RECORD_BYTES (64u << 20)
#define WAL_DEFAULT_SEGMENT_BYTES (64ull << 20)
#define WAL_DEFAULT_QUEUE_RECORDS 4096
#define WAL_DEFAULT_QUEUE_BYTES (64u << 20)

typedef struct wal wal;

/* One group commit, reported to wal_options.on_sync on the writer thread. */
typedef struct wal_sync_info {
  uint64_t first_index; /* the batch's records: first_index .. last_index */
  uint64_t last_index;
  uint64_t bytes;    /* frame bytes written (headers included) */
  uint64_t write_ns; /* time in pwritev */
  uint64_t fsync_ns; /* time in fdatasync */
} wal_sync_info;

typedef struct wal_options {
  /* Index of the newest snapshot (0: none). wal_open replays only records with
   * a greater index, and requires every one of them to be present. */
  uint64_t start_index;
  /* A new segment starts at the first batch that finds the current one at or
   * past this size (a soft limit: one batch may go beyond it). New segments
   * are preallocated to this size with fallocate. 0: 64 MiB. Minimum 4096. */
  uint64_t segment_bytes;
  /* Backpressure: at most this many records, and this many payload bytes,
   * queued or being written (one record is always admitted into an empty
   * queue, whatever its size). 0: defaults above. */
  size_t queue_records;
  size_t queue_bytes;
  /* Tests and benchmarks only: skip every fsync (a crash may lose data). */
  bool unsafe_no_fsync;
  /* Optional, called on the writer thread after each batch's fsync, before
   * the batch's done callbacks: feed a latency histogram from here. */
  void (*on_sync)(void *arg, const wal_sync_info *info);
  void *on_sync_arg;
} wal_options;

/* Called by wal_open for each record with index > start_index, in order.
 * payload is valid during the call only. Return 0, or a negative errno to make
 * wal_open fail with it. */
typedef int (*wal_replay_fn)(void *arg, uint64_t index, const uint8_t *payload, size_t len);

/* Called once per appended record, in index order, on the completer thread
 * (or the writer thread; never two at once).
 * status: 0 = durable, or a negative errno (the record's fate is unknown).
 * Keep it short (hand work off): later callbacks wait for it, and the queue's
 * room is freed only as callbacks finish. It may call
 * wal_try_append; wal_append from here behaves like wal_try_append. */
typedef void (*wal_done_fn)(void *arg, uint64_t index, int status);

/* Opens (creating it and its parents if needed) the log in dir, recovers it as
 * described above, calls replay for each record past opts->start_index, and
 * starts the writer and completer threads. opts may be NULL (defaults). The directory is
 * locked (flock) against a second opener: -EBUSY. Returns NULL on failure with
 * err set; replay has then not been called unless replay itself failed. */
wal *wal_open(const char *dir, const wal_options *opts, wal_replay_fn replay, void *arg,
              keel_error *err);

/* Queues payload[0..len) as the next record and returns its index (>= 1).
 * payload is BORROWED: it must stay valid and unchanged until done runs (done
 * may be NULL when the caller does not need to know; then the payload must
 * outlive the record's batch anyway, e.g. by wal_close). Thread-safe. Blocks
 * while the queue is full. Errors (negative): -EINVAL (len 0 or above
 * WAL_MAX_RECORD_BYTES), -ESHUTDOWN (closing), or the poisoning error. */
int64_t wal_append(wal *w, const void *payload, size_t len, wal_done_fn done, void *arg);

/* Like wal_append but never blocks: -EAGAIN when the queue is full. For
 * threads that must not wait on disk (gRPC completion-queue threads). */
int64_t wal_try_append(wal *w, const void *payload, size_t len, wal_done_fn done, void *arg);

/* Appends and waits until the record is durable. Returns 0 and sets *index
 * (may be NULL), or a negative errno. Not from a done callback (-EDEADLK). */
int wal_append_sync(wal *w, const void *payload, size_t len, uint64_t *index);

/* Removes, oldest first, every segment whose records all have index <= index
 * (never the segment being written), then fsyncs the directory. Call it with
 * the index of the OLDEST snapshot kept (snapshot.h), so that falling back to
 * it still finds every later record. Returns the number of segments removed
 * or a negative errno. Thread-safe. */
int wal_truncate_before(wal *w, uint64_t index, keel_error *err);

typedef struct wal_stats {
  /* Write path. */
  uint64_t appends;        /* records accepted (indexes assigned) */
  uint64_t records;        /* records written and synced */
  uint64_t bytes;          /* frame bytes written */
  uint64_t fsyncs;         /* group commits (one fdatasync each) */
  uint64_t fsync_ns_total; /* sum of fdatasync latencies */
  uint64_t fsync_ns_max;
  uint64_t fsync_ns_last;
  uint64_t batch_records_max; /* largest group commit */
  uint64_t queue_full;        /* appends that blocked or got -EAGAIN on a full queue */
  uint64_t segments_created;
  uint64_t segments_removed;
  uint64_t last_index;  /* newest durable index (after open: the last replayed one) */
  uint64_t first_index; /* oldest index still on disk */
  int error;            /* the poisoning error, 0 if none */
  /* Recovery, from wal_open. */
  uint64_t replayed;             /* records passed to replay */
  uint64_t tail_truncated_bytes; /* non-zero bytes cut from the last segment's tail */
} wal_stats;

void wal_get_stats(wal *w, wal_stats *out);

/* Index the next append will get. */
uint64_t wal_next_index(wal *w);

/* Writes and syncs everything queued (running its callbacks), stops the
 * writer, closes the files and frees w. No other call on w may run
 * concurrently or after (appends made from done callbacks meanwhile get
 * -ESHUTDOWN). Returns 0 or the poisoning error. NULL is fine. */
int wal_close(wal *w);

#endif
