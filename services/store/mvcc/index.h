/* services/store/mvcc/index.h — keel-store's in-memory index: etcd's mvcc treeIndex.
 *
 * Maps every key with history to its key index (generations of revisions, see
 * key_index.h), ordered by key bytes. The revision store keeps the values under
 * revisions; this index answers "which revision of key K is visible at revision R",
 * ranges over keys, and decides what a compaction may free. Semantics are etcd's
 * (server/storage/mvcc/index.go, key_index.go), including its corner cases.
 *
 * Not thread-safe: the caller serialises writers against readers (etcd uses a
 * RWMutex around the tree). Errors are negative errno values. */
#ifndef KEEL_SERVICES_STORE_MVCC_INDEX_H
#define KEEL_SERVICES_STORE_MVCC_INDEX_H

#include <stddef.h>
#include <stdint.h>

/* A revision: main is the store revision of a txn, sub the position of the change
 * within it. Ordered by main, then sub. */
typedef struct mvcc_revision {
  int64_t main;
  int64_t sub;
} mvcc_revision;
/* <0, 0, >0 as a is older than, equal to or newer than b. */
int mvcc_revision_cmp(mvcc_revision a, mvcc_revision b);

typedef struct mvcc_index mvcc_index;

/* An empty index; NULL when out of memory. */
mvcc_index *mvcc_index_create(void);
/* Frees the index and every key index in it. NULL is allowed. */
void mvcc_index_destroy(mvcc_index *idx);

/* A put of key at rev: appends rev to the key's current generation, starting a new
 * generation (created = rev, version 1) when the key is not live. rev must be greater
 * than every revision already recorded for this key (else -EINVAL). -ENOMEM leaves
 * the index unchanged. */
int mvcc_index_put(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev);

/* A delete of a live key at rev: records the tombstone and closes the generation.
 * -ENOENT when the key is not live (etcd then writes nothing); -EINVAL when rev is not
 * greater than every revision recorded for the key. */
int mvcc_index_tombstone(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev);

/* The key's state as of at_rev (the newest revision <= at_rev in the generation live
 * at at_rev): its modification revision, creation revision and version. -ENOENT if
 * not live at at_rev. Any of mod, created, version may be NULL. Answers are exact for
 * at_rev >= the last compaction revision only (the caller refuses older ones, as
 * etcd does with ErrCompacted). */
int mvcc_index_get(const mvcc_index *idx, const uint8_t *key, size_t keylen, int64_t at_rev,
                   mvcc_revision *mod, mvcc_revision *created, int64_t *version);

/* Visits keys live at at_rev in [key, end) in ascending byte order. etcd's end
 * conventions: end == NULL/endlen 0 -> the single key; end == "\0" (endlen 1, byte 0)
 * -> every key >= key. fn returns non-zero to stop early (limits). Returns 0, or fn's
 * non-zero value. The key bytes handed to fn are valid during the call only; fn must
 * not change the index. */
typedef int (*mvcc_index_visit_fn)(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod,
                                   mvcc_revision created, int64_t version);
int mvcc_index_range(const mvcc_index *idx, const uint8_t *key, size_t keylen, const uint8_t *end,
                     size_t endlen, int64_t at_rev, mvcc_index_visit_fn fn, void *arg);

/* Compaction at rev, as etcd's keyIndex.compact: for each key drop every revision
 * older than the newest revision <= rev of each generation (keep that one unless it
 * is a tombstone older than rev; a tombstone at exactly rev is kept, as etcd does
 * since etcd-io/etcd#18089, so a watch from rev still sees the delete), drop empty
 * generations and keys whose only content is gone. keep(arg, r) is called for every
 * revision <= rev that is still needed (the "available" set the revision store must
 * keep); all other revisions <= rev may be freed by the caller. keep may be NULL.
 * Visits every key (O(keys)). */
void mvcc_index_compact(mvcc_index *idx, int64_t rev, void (*keep)(void *arg, mvcc_revision r), void *arg);

/* Keys with any history (live or not), i.e. the keys in the tree. */
size_t mvcc_index_key_count(const mvcc_index *idx);
/* Approximate heap use (tree nodes + key index blocks), for metrics. */
size_t mvcc_index_memory_bytes(const mvcc_index *idx);

/* ---- additions beyond the fixed contract ---- */

/* Rebuilding the index from the revision store after a restart (etcd's
 * restoreIntoIndex): feed stored records in revision order. The first surviving
 * record of a key that is a put goes to restore (its stored create revision and
 * version, since older revisions may be compacted away); one that is a tombstone goes
 * to restore_tombstone; every later record goes to put / tombstone as usual.
 * restore: -EEXIST when the key is live; -EINVAL as for put, or when created >
 * modified or version < 1. */
int mvcc_index_restore(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision created,
                       mvcc_revision modified, int64_t version);
/* The key gets a closed generation {created (0,0), version 1, [rev(t)]}: not live at
 * any revision, but its tombstone survives a compaction at rev. Errors as restore. */
int mvcc_index_restore_tombstone(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev);

/* etcd's treeIndex.Keep, for HashKV: calls keep for the revisions compact(rev) would
 * keep, except a tombstone at exactly rev (etcd leaves it out of the hash). Changes
 * nothing. */
void mvcc_index_keep(const mvcc_index *idx, int64_t rev, void (*keep)(void *arg, mvcc_revision r), void *arg);

#endif
