/* services/store/mvcc/key_index.h — the revisions of one key, etcd's keyIndex.
 *
 * A key's history is a list of generations. A generation starts with the put that
 * creates the key (its created revision, version 1), gathers every later put, and is
 * closed by a tombstone: the delete's revision is its last revision. etcd then
 * appends an empty generation; here a flag says "the newest generation is closed",
 * which means the same thing and costs no memory.
 *
 *   put 2, put 4, delete 6, put 8, put 10, delete 12, put 14, put 15.1, delete 16:
 *     {2, 4, 6(t)} {8, 10, 12(t)} {14, 15.1, 16(t)} {empty}
 *
 * Memory: one heap block per key holding the header, the key bytes, the generation
 * records and every revision (no allocation per revision). Functions that may grow
 * or shrink the block take `mvcc_key_index **` and update it; the block moves. */
#ifndef KEEL_SERVICES_STORE_MVCC_KEY_INDEX_H
#define KEEL_SERVICES_STORE_MVCC_KEY_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "services/store/mvcc/index.h"

/* The header is public only so the B-tree can read the key in place
 * (offsetof(mvcc_key_index, keylen), offsetof(mvcc_key_index, key)); its fields
 * belong to key_index.c. */
typedef struct mvcc_key_index {
  uint32_t nrevs;      /* revisions in all generations */
  uint32_t cap;        /* bytes after the (8-aligned) key for generations + revisions */
  uint32_t ngens : 31; /* non-empty generations; 0 = no history (etcd's isEmpty) */
  uint32_t closed : 1; /* the newest generation ends with a tombstone: not live */
  uint32_t keylen;
  uint8_t key[]; /* keylen bytes, padding to 8, generation records, revisions */
} mvcc_key_index;

/* A key index with no history for a copy of key. NULL when out of memory or when
 * keylen does not fit in 32 bits. */
mvcc_key_index *mvcc_key_index_new(const uint8_t *key, size_t keylen);
void mvcc_key_index_free(mvcc_key_index *ki);

/* etcd's keyIndex.put: appends rev to the newest generation, or starts a new one
 * (created = rev, version 1) when the key is not live. -EINVAL unless rev is greater
 * than every revision recorded; -ENOMEM / -EOVERFLOW leave *ki unchanged. */
int mvcc_key_index_put(mvcc_key_index **ki, mvcc_revision rev);

/* etcd's keyIndex.tombstone: records the delete at rev as the last revision of the
 * live generation and closes it. -ENOENT when the key is not live; -EINVAL when rev
 * is not greater than every revision recorded. */
int mvcc_key_index_tombstone(mvcc_key_index **ki, mvcc_revision rev);

/* etcd's keyIndex.restore, for rebuilding the index from stored records whose older
 * revisions were compacted away: starts a generation {created, version, [modified]}.
 * Allowed when the key is not live; -EEXIST when it is, -EINVAL when modified is not
 * greater than every revision recorded, created > modified or version < 1. */
int mvcc_key_index_restore(mvcc_key_index **ki, mvcc_revision created, mvcc_revision modified,
                           int64_t version);

/* etcd's keyIndex.restoreTombstone: the oldest stored record of a key is a tombstone
 * kept by a compaction at its revision. Adds the closed generation
 * {created (0,0), version 1, [rev(t)]}. Same errors as restore. */
int mvcc_key_index_restore_tombstone(mvcc_key_index **ki, mvcc_revision rev);

/* etcd's keyIndex.get: the newest revision <= at_rev of the generation live at
 * at_rev, with that generation's created revision and the version at that revision.
 * -ENOENT when the key is not live at at_rev. */
int mvcc_key_index_get(const mvcc_key_index *ki, int64_t at_rev, mvcc_revision *mod, mvcc_revision *created,
                       int64_t *version);

/* etcd's keyIndex.compact at rev: drops every generation whose tombstone is older
 * than rev and, in the first remaining generation, every revision older than its
 * newest revision <= rev. That revision (if any) is reported to keep; it may be a
 * tombstone whose revision is exactly rev (etcd keeps it since the fix for
 * etcd-io/etcd#18089, so that a watch from rev still sees the delete). Afterwards
 * mvcc_key_index_is_empty() says whether the key has any history left. The block
 * may shrink (and move). */
void mvcc_key_index_compact(mvcc_key_index **ki, int64_t rev, void (*keep)(void *arg, mvcc_revision r),
                            void *arg);

/* etcd's keyIndex.keep: what compact(rev) would report, minus a tombstone (etcd's
 * HashKV relies on this difference); does not change ki. */
void mvcc_key_index_keep(const mvcc_key_index *ki, int64_t rev, void (*keep)(void *arg, mvcc_revision r),
                         void *arg);

bool mvcc_key_index_is_empty(const mvcc_key_index *ki); /* no history at all */
bool mvcc_key_index_is_live(const mvcc_key_index *ki);  /* newest generation is open */
/* The newest revision recorded ((0,0) when empty): etcd's keyIndex.modified. */
mvcc_revision mvcc_key_index_modified(const mvcc_key_index *ki);
/* Heap bytes of the block. */
size_t mvcc_key_index_bytes(const mvcc_key_index *ki);

/* Generations in etcd's terms, for tests and debugging: the count includes etcd's
 * trailing empty generation when the key is not live; generation g reports its
 * created revision, version count and revisions (none for the empty one). */
size_t mvcc_key_index_generations(const mvcc_key_index *ki);
void mvcc_key_index_generation(const mvcc_key_index *ki, size_t g, mvcc_revision *created, int64_t *ver,
                               const mvcc_revision **revs, size_t *nrevs);

#endif
