/* services/store/wal/snapshot.h — keel-store's snapshot files: a stream of
 * opaque chunks (the MVCC state, encoded by the caller) as of one WAL index.
 *
 * Files live in one directory (keel-store uses <data-dir>/member/snap):
 *   <index>.snap         a complete snapshot; index = 16 lowercase hex digits
 *   <index>.snap.tmp     being written (a leftover one is removed by the next write)
 *   <index>.snap.broken  failed verification on load; kept for inspection, ignored
 *
 * Layout of a .snap (little-endian):
 *   header  32 bytes: "KEELSNP\n", u32 version = 1, u32 crc32c of the header
 *           (this field zeroed), u64 index, u64 reserved = 0
 *   chunks  [u32 length 1..SNAPSHOT_MAX_CHUNK][u32 crc32c of payload][payload]
 *   trailer [u32 0][u32 crc32c of the next 24 bytes][u64 chunks][u64 payload
 *           bytes][u64 index], then end of file.
 * The trailer proves the file is complete: a snapshot missing its tail, with an
 * extra chunk, a damaged chunk, or trailing bytes fails verification.
 *
 * Writing is crash-safe: the file is written as .tmp (its writeback started
 * as it goes, so the final fsync is short), fsynced, renamed, and the
 * directory fsynced; a crash leaves either the old set of snapshots or the
 * new one. After a write, only the SNAPSHOT_KEEP newest snapshots are kept.
 *
 * Loading verifies a whole file before the first chunk is delivered, so the
 * caller never sees part of a damaged snapshot. A damaged newest snapshot is
 * renamed .broken with a warning and the next older one is tried. Therefore:
 * truncate the WAL only up to the OLDEST kept snapshot (snapshot_write reports
 * it), or falling back would find records missing.
 *
 * One process at a time: both calls hold an exclusive flock on the directory
 * (a concurrent call waits). */
#ifndef KEEL_STORE_WAL_SNAPSHOT_H
#define KEEL_STORE_WAL_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

#define SNAPSHOT_KEEP 2
#define SNAPSHOT_MAX_CHUNK (64u << 20)

typedef struct snapshot_sink snapshot_sink;

/* Appends one chunk (copied; buffered). The reader gets exactly the same
 * chunks, same boundaries, same order. Returns 0, -EINVAL (len 0),
 * -EMSGSIZE (len > SNAPSHOT_MAX_CHUNK) or -errno of a failed write (sticky:
 * snapshot_write then fails). */
int snapshot_sink_write(snapshot_sink *sink, const void *chunk, size_t len);

/* The file offset at which the payload of the next chunk written will start
 * (keel-store records where each value lands, to read it back later with
 * pread from the finished file). */
uint64_t snapshot_sink_offset(const snapshot_sink *sink);

/* Writes the content: calls snapshot_sink_write any number of times, returns 0
 * or a negative errno (the snapshot is then abandoned). */
typedef int (*snapshot_produce_fn)(void *arg, snapshot_sink *sink);

/* Writes <dir>/<index>.snap (creating dir and parents if needed) with the
 * chunks produce writes, durably, then deletes all but the SNAPSHOT_KEEP newest
 * snapshots (never the one just written). *oldest_kept (may be NULL) is set to
 * the index of the oldest snapshot still kept: pass it to wal_truncate_before.
 * A snapshot with the same index is replaced. Returns 0 or a negative errno;
 * on failure no new .snap exists and the old ones are untouched. */
int snapshot_write(const char *dir, uint64_t index, snapshot_produce_fn produce, void *arg,
                   uint64_t *oldest_kept, keel_error *err);

/* Receives one verified chunk; valid during the call. Return 0 or a negative
 * errno to stop loading. */
typedef int (*snapshot_chunk_fn)(void *arg, const uint8_t *chunk, size_t len);

/* Loads the newest snapshot in dir that verifies, calling fn per chunk.
 * Returns 1 (loaded; *index set), 0 (no valid snapshot, or no dir: *index =
 * 0, fn not called) or a negative errno: an I/O error, or fn's own error (no
 * fallback then: the file was intact, the content was refused). */
int snapshot_load_latest(const char *dir, snapshot_chunk_fn fn, void *arg, uint64_t *index,
                         keel_error *err);

/* Like snapshot_load_latest, but fn also gets each chunk's payload offset in
 * the file and a descriptor of that very file (valid during the call; dup it
 * to keep it): values can be read back from it with pread later, even after
 * the file is renamed over or unlinked. */
typedef int (*snapshot_chunk_at_fn)(void *arg, const uint8_t *chunk, size_t len, uint64_t offset,
                                    int fd);
int snapshot_load_latest_at(const char *dir, snapshot_chunk_at_fn fn, void *arg, uint64_t *index,
                            keel_error *err);

/* Verifies an in-memory snapshot image (a whole .snap file) and, when it is
 * valid and fn is not NULL, delivers its chunks. Returns 0 (sets *index), a
 * negative errno from fn, or -EBADMSG with *why (static text) and *offset set.
 * For tools, tests and fuzzers. */
int snapshot_parse(const uint8_t *data, size_t size, snapshot_chunk_fn fn, void *arg,
                   uint64_t *index, const char **why, size_t *offset);

#endif
