/* services/store/mvcc/index.c — the key -> key index map (etcd's treeIndex).
 *
 * A B-tree (btree.c) of key index blocks (key_index.c); each block owns its key
 * bytes and the tree reads them in place, so a key is stored once. A write finds
 * the key's slot, lets the key index grow its block, and writes the possibly moved
 * block back into the same slot: no second descent, no node change. A new key costs
 * one more descent to insert.
 *
 * Compaction walks every key in order, compacts it in place and removes keys left
 * without history, re-seeking after each removal (a removal reshapes the tree under
 * the cursor); this needs no scratch memory, so compaction cannot fail. */
#include "services/store/mvcc/index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "services/store/mvcc/btree.h"
#include "services/store/mvcc/key_index.h"

struct mvcc_index {
  mvcc_btree *tree;
  size_t ki_bytes; /* sum of mvcc_key_index_bytes over the tree's key indexes */
};

int mvcc_revision_cmp(mvcc_revision a, mvcc_revision b) {
  if (a.main != b.main) return a.main < b.main ? -1 : 1;
  if (a.sub != b.sub) return a.sub < b.sub ? -1 : 1;
  return 0;
}

mvcc_index *mvcc_index_create(void) {
  mvcc_index *idx = calloc(1, sizeof(*idx));
  if (!idx) return NULL;
  idx->tree = mvcc_btree_create(offsetof(mvcc_key_index, keylen), offsetof(mvcc_key_index, key));
  if (!idx->tree) {
    free(idx);
    return NULL;
  }
  return idx;
}

static void free_key_index(void *ki) {
  mvcc_key_index_free(ki);
}

void mvcc_index_destroy(mvcc_index *idx) {
  if (!idx) return;
  mvcc_btree_destroy(idx->tree, free_key_index);
  free(idx);
}

typedef enum write_kind { WRITE_PUT, WRITE_TOMBSTONE, WRITE_RESTORE, WRITE_RESTORE_TOMBSTONE } write_kind;

typedef struct write_op {
  write_kind kind;
  mvcc_revision rev, created;
  int64_t version;
} write_op;

static int apply(mvcc_key_index **kip, const write_op *op) {
  switch (op->kind) {
  case WRITE_PUT:
    return mvcc_key_index_put(kip, op->rev);
  case WRITE_TOMBSTONE:
    return mvcc_key_index_tombstone(kip, op->rev);
  case WRITE_RESTORE:
    return mvcc_key_index_restore(kip, op->created, op->rev, op->version);
  case WRITE_RESTORE_TOMBSTONE:
    return mvcc_key_index_restore_tombstone(kip, op->rev);
  }
  return -EINVAL;
}

static int write_key(mvcc_index *idx, const uint8_t *key, size_t keylen, const write_op *op) {
  if ((!key && keylen) || keylen > UINT32_MAX) return -EINVAL;
  void **slot = mvcc_btree_find(idx->tree, key, keylen);
  if (slot) {
    mvcc_key_index *ki = *slot;
    size_t before = mvcc_key_index_bytes(ki);
    int rc = apply(&ki, op);
    *slot = ki; /* the block may have moved; its key, hence its place, is the same */
    idx->ki_bytes = idx->ki_bytes - before + mvcc_key_index_bytes(ki);
    return rc;
  }
  if (op->kind == WRITE_TOMBSTONE) return -ENOENT; /* etcd: ErrRevisionNotFound */
  mvcc_key_index *ki = mvcc_key_index_new(key, keylen);
  if (!ki) return -ENOMEM;
  int rc = apply(&ki, op);
  if (rc == 0) rc = mvcc_btree_insert(idx->tree, ki);
  if (rc < 0) {
    mvcc_key_index_free(ki);
    return rc;
  }
  idx->ki_bytes += mvcc_key_index_bytes(ki);
  return 0;
}

int mvcc_index_put(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev) {
  return write_key(idx, key, keylen, &(write_op){.kind = WRITE_PUT, .rev = rev});
}

int mvcc_index_tombstone(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev) {
  return write_key(idx, key, keylen, &(write_op){.kind = WRITE_TOMBSTONE, .rev = rev});
}

int mvcc_index_restore(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision created,
                       mvcc_revision modified, int64_t version) {
  return write_key(
      idx, key, keylen,
      &(write_op){.kind = WRITE_RESTORE, .rev = modified, .created = created, .version = version});
}

int mvcc_index_restore_tombstone(mvcc_index *idx, const uint8_t *key, size_t keylen, mvcc_revision rev) {
  return write_key(idx, key, keylen, &(write_op){.kind = WRITE_RESTORE_TOMBSTONE, .rev = rev});
}

int mvcc_index_get(const mvcc_index *idx, const uint8_t *key, size_t keylen, int64_t at_rev,
                   mvcc_revision *mod, mvcc_revision *created, int64_t *version) {
  if (!key && keylen) return -EINVAL;
  void **slot = mvcc_btree_find(idx->tree, key, keylen);
  if (!slot) return -ENOENT;
  return mvcc_key_index_get(*slot, at_rev, mod, created, version);
}

/* Calls fn for ki when it is live at at_rev; fn's answer, or 0. */
static int visit(const mvcc_key_index *ki, int64_t at_rev, mvcc_index_visit_fn fn, void *arg) {
  mvcc_revision mod, created;
  int64_t version;
  if (mvcc_key_index_get(ki, at_rev, &mod, &created, &version) < 0) return 0;
  return fn(arg, ki->key, ki->keylen, mod, created, version);
}

int mvcc_index_range(const mvcc_index *idx, const uint8_t *key, size_t keylen, const uint8_t *end,
                     size_t endlen, int64_t at_rev, mvcc_index_visit_fn fn, void *arg) {
  if (!key && keylen) return -EINVAL;
  if (!end || endlen == 0) {
    void **slot = mvcc_btree_find(idx->tree, key, keylen);
    return slot ? visit(*slot, at_rev, fn, arg) : 0;
  }
  bool to_last = endlen == 1 && end[0] == 0; /* etcd's "\0": every key >= key */
  mvcc_btree_iter it;
  mvcc_btree_seek(idx->tree, &it, key, keylen);
  for (void **slot; (slot = mvcc_btree_iter_slot(&it)); mvcc_btree_iter_next(&it)) {
    const mvcc_key_index *ki = *slot;
    if (!to_last && mvcc_btree_key_cmp(ki->key, ki->keylen, end, endlen) >= 0) break;
    int rc = visit(ki, at_rev, fn, arg);
    if (rc) return rc;
  }
  return 0;
}

void mvcc_index_compact(mvcc_index *idx, int64_t rev, void (*keep)(void *arg, mvcc_revision r), void *arg) {
  mvcc_btree_iter it;
  mvcc_btree_seek(idx->tree, &it, NULL, 0);
  void **slot;
  while ((slot = mvcc_btree_iter_slot(&it))) {
    mvcc_key_index *ki = *slot;
    size_t before = mvcc_key_index_bytes(ki);
    mvcc_key_index_compact(&ki, rev, keep, arg);
    *slot = ki;
    idx->ki_bytes = idx->ki_bytes - before + mvcc_key_index_bytes(ki);
    if (!mvcc_key_index_is_empty(ki)) {
      mvcc_btree_iter_next(&it);
      continue;
    }
    mvcc_btree_delete(idx->tree, ki->key, ki->keylen);
    /* The next key is the first one after the removed key, still readable in ki. */
    mvcc_btree_seek(idx->tree, &it, ki->key, ki->keylen);
    idx->ki_bytes -= mvcc_key_index_bytes(ki);
    mvcc_key_index_free(ki);
  }
}

void mvcc_index_keep(const mvcc_index *idx, int64_t rev, void (*keep)(void *arg, mvcc_revision r),
                     void *arg) {
  mvcc_btree_iter it;
  mvcc_btree_seek(idx->tree, &it, NULL, 0);
  for (void **slot; (slot = mvcc_btree_iter_slot(&it)); mvcc_btree_iter_next(&it))
    mvcc_key_index_keep(*slot, rev, keep, arg);
}

size_t mvcc_index_key_count(const mvcc_index *idx) {
  return mvcc_btree_count(idx->tree);
}

size_t mvcc_index_memory_bytes(const mvcc_index *idx) {
  return sizeof(*idx) + mvcc_btree_memory_bytes(idx->tree) + idx->ki_bytes;
}
