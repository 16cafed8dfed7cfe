/* services/store/engine/revstore.h — the revision store: every version of every
 * key, addressed by revision (etcd keeps these in bbolt keyed by revision).
 *
 * Main revisions above the compacted one are dense (each write txn takes the
 * next one), so that part is a vector indexed by main revision; each slot holds
 * its changes in sub-revision order (one record inline, more in an array).
 * What compaction keeps at or below the compacted revision is sparse (one
 * record per live key), so it moves to a sorted array searched by binary
 * search: memory follows the live keys, not the revisions ever written.
 * A record is one allocation: metadata, then the key and value bytes; or,
 * once a durable snapshot holds its value, metadata, the key and a reference
 * {snapshot file, offset} the value is read back from (value_file.h).
 *
 * Compaction frees every record at or below the compaction revision that the
 * key index did not ask to keep (mvcc_index_compact's keep set). Not
 * thread-safe: the store's lock. */
#ifndef KEEL_SERVICES_STORE_ENGINE_REVSTORE_H
#define KEEL_SERVICES_STORE_ENGINE_REVSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <string.h>

#include "services/store/engine/value_file.h"
#include "services/store/mvcc/index.h"

typedef struct kv_record {
  int64_t create_revision; /* 0 for a tombstone */
  int64_t version;         /* 0 for a tombstone */
  int64_t lease;
  uint32_t key_len;
  uint32_t value_len;
  bool tombstone;
  bool keep;    /* compaction mark */
  bool on_disk; /* the value is in a snapshot file: data holds a kv_value_ref after the key */
  uint8_t data[]; /* key bytes, then value bytes (or the kv_value_ref, unaligned) */
} kv_record;

/* Where an on-disk value is: value_len bytes at off in file. */
typedef struct kv_value_ref {
  value_file *file; /* the record holds one reference */
  uint64_t off;
} kv_value_ref;

static inline const uint8_t *kv_record_key(const kv_record *r) { return r->data; }
/* The value bytes of an in-memory record; NULL when the value is on disk (use
 * kv_record_read_value, which works for both). */
static inline const uint8_t *kv_record_value(const kv_record *r) {
  return r->on_disk ? NULL : r->data + r->key_len;
}
static inline kv_value_ref kv_record_ref(const kv_record *r) {
  kv_value_ref ref = {0};
  if (r->on_disk) memcpy(&ref, r->data + r->key_len, sizeof(ref));
  return ref;
}

/* Copies the value (value_len bytes) into dst: from memory, or with a pread
 * from its snapshot file. 0 or -EIO (logged by value_file_read). */
int kv_record_read_value(const kv_record *r, uint8_t *dst);

/* The value as bytes: in memory, a pointer into the record (*owned NULL);
 * on disk, read into a malloc'ed buffer (*owned set: free it). NULL with
 * *rc -EIO or -ENOMEM; an empty value is a valid non-NULL pointer. */
const uint8_t *kv_record_value_bytes(const kv_record *r, uint8_t **owned, int *rc);

/* A new record (malloc'ed); NULL when out of memory. */
kv_record *kv_record_new(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                         int64_t create_revision, int64_t version, int64_t lease, bool tombstone);
/* A new record whose value_len-byte value is at off in file (takes a new
 * reference to file); NULL when out of memory. */
kv_record *kv_record_new_on_disk(const uint8_t *key, size_t key_len, size_t value_len,
                                 value_file *file, uint64_t off, int64_t create_revision,
                                 int64_t version, int64_t lease);
/* Frees a record (dropping its file reference). */
void kv_record_free(kv_record *r);

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

/* Puts rec (taken) in place of the record at rev (same key, metadata and
 * value; only where the value lives differs) and returns the old one for the
 * caller to free (kv_record_free), or NULL (nothing at rev: rec not taken). */
kv_record *revstore_replace(revstore *rs, mvcc_revision rev, kv_record *rec);

/* Marks rev as still needed by the next revstore_compact. */
void revstore_mark_keep(revstore *rs, mvcc_revision rev);
/* Frees every unmarked record with main <= rev; clears the marks. */
void revstore_compact(revstore *rs, int64_t rev);

/* Main revision of the newest slot (0 when empty). */
int64_t revstore_last_main(const revstore *rs);
/* Heap bytes held by records (key + in-memory value + metadata). */
size_t revstore_bytes(const revstore *rs);
/* Value bytes held in memory, and value bytes read from snapshot files. */
size_t revstore_value_bytes_resident(const revstore *rs);
size_t revstore_value_bytes_on_disk(const revstore *rs);
size_t revstore_records(const revstore *rs);

#endif
