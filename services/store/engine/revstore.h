/* services/store/engine/revstore.h — the revision store: every version of every
 * key, addressed by revision (etcd keeps these in bbolt keyed by revision).
 *
 * Main revisions above the compacted one are dense (each write txn takes the
 * next one), so that part is a vector indexed by main revision; each slot holds
 * its changes in sub-revision order (one record inline, more in an array).
 * What compaction keeps at or below the compacted revision is sparse (one
 * record per live key), so it moves to a sorted array searched by binary
 * search: memory follows the live keys, not the revisions ever written.
 * A record is one allocation: metadata, then the key and value bytes.
 *
 * Compaction frees every record at or below the compaction revision that the
 * key index did not ask to keep (mvcc_index_compact's keep set). Not
 * thread-safe: the store's lock. */
#ifndef KEEL_SERVICES_STORE_ENGINE_REVSTORE_H
#define KEEL_SERVICES_STORE_ENGINE_REVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/store/mvcc/index.h"

typedef struct kv_record {
  int64_t create_revision; /* 0 for a tombstone */
  int64_t version;         /* 0 for a tombstone */
  int64_t lease;
  uint32_t key_len;
  uint32_t value_len;
  bool tombstone;
  bool keep; /* compaction mark */
  uint8_t data[];          /* key bytes, then value bytes */
} kv_record;

static inline const uint8_t *kv_record_key(const kv_record *r) { return r->data; }
static inline const uint8_t *kv_record_value(const kv_record *r) { return r->data + r->key_len; }

/* A new record (malloc'ed); NULL when out of memory. */
kv_record *kv_record_new(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                         int64_t create_revision, int64_t version, int64_t lease, bool tombstone);

typedef struct revstore revstore;

revstore *revstore_create(void);
void revstore_destroy(revstore *rs);

/* Appends rec (taken) at rev: rev.main is the newest main revision with
 * rev.sub equal to its count of changes, or the next main revision with sub 0
 * (any main revision when the store is empty). -EINVAL otherwise, -ENOMEM. */
int revstore_append(revstore *rs, mvcc_revision rev, kv_record *rec);

/* Restore from a snapshot: rec (taken) at rev, a record kept by an earlier
 * compaction at `compacted` (rev.main <= compacted); revisions increasing,
 * before any revstore_append. */
int revstore_restore_compacted(revstore *rs, mvcc_revision rev, kv_record *rec, int64_t compacted);

/* The record at rev, or NULL (compacted away or never written). */
kv_record *revstore_get(const revstore *rs, mvcc_revision rev);

/* Calls fn for every record with from_main < main <= to_main, in revision
 * order (watch replay); stops when fn returns non-zero and returns that. */
int revstore_each(const revstore *rs, int64_t from_main, int64_t to_main,
                  int (*fn)(void *arg, mvcc_revision rev, const kv_record *rec), void *arg);

/* Like revstore_each, resumable: every record at or after `from` (main and
 * sub) with main <= to_main, in revision order, until fn returns non-zero
 * (returned). Binary search, then a walk: a reader that walks in chunks
 * resumes at the revision after the last one it saw (positions, not pointers:
 * appends may move the slots). */
int revstore_each_from(const revstore *rs, mvcc_revision from, int64_t to_main,
                       int (*fn)(void *arg, mvcc_revision rev, const kv_record *rec), void *arg);

/* Marks rev as still needed by the next revstore_compact. */
void revstore_mark_keep(revstore *rs, mvcc_revision rev);
/* Frees every unmarked record with main <= rev; clears the marks. */
void revstore_compact(revstore *rs, int64_t rev);

/* Main revision of the newest slot (0 when empty). */
int64_t revstore_last_main(const revstore *rs);
/* Heap bytes held by records (key + value + metadata). */
size_t revstore_bytes(const revstore *rs);
size_t revstore_records(const revstore *rs);

#endif
