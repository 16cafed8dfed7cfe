/* services/store/mvcc/btree.h — an ordered map of byte-string keys, the tree under
 * mvcc_index (etcd's treeIndex uses google/btree the same way).
 *
 * The tree holds pointers to caller-owned items and never copies keys: every item
 * carries its own key, which the tree reads in place at two offsets fixed when the
 * tree is created (a uint32_t length and the first key byte). Keys order by memcmp,
 * a shorter key first when it is a prefix of the other (etcd's bytes.Compare).
 *
 * Items may be replaced in place through the slot pointers that find and the
 * iterator hand out (the caller reallocates an item), as long as the replacement
 * carries the same key. Any insert or delete invalidates slots and iterators. */
#ifndef KEEL_SERVICES_STORE_MVCC_BTREE_H
#define KEEL_SERVICES_STORE_MVCC_BTREE_H

#include <stddef.h>
#include <stdint.h>

typedef struct mvcc_btree mvcc_btree;
typedef struct mvcc_btree_node mvcc_btree_node;

/* The tree's key order: <0, 0, >0 as a sorts before, with or after b. A NULL pointer
 * is allowed with length 0. */
int mvcc_btree_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* An empty tree whose items keep their key length (uint32_t) at len_offset and their
 * key bytes from key_offset. NULL when out of memory. */
mvcc_btree *mvcc_btree_create(size_t len_offset, size_t key_offset);

/* Frees the tree; free_item (if not NULL) is called once for every item. */
void mvcc_btree_destroy(mvcc_btree *t, void (*free_item)(void *item));

/* The slot holding the item whose key is key, or NULL. keylen 0 is the empty key
 * (key may then be NULL). */
void **mvcc_btree_find(const mvcc_btree *t, const uint8_t *key, size_t keylen);

/* Inserts item (borrowed: the caller still owns it). -EEXIST when an item with the
 * same key is present (the tree is unchanged), -ENOMEM when a node cannot be allocated. */
int mvcc_btree_insert(mvcc_btree *t, void *item);

/* Removes the item whose key is key and returns it (ownership stays with the caller),
 * or NULL when there is none. key may point into the item itself. */
void *mvcc_btree_delete(mvcc_btree *t, const uint8_t *key, size_t keylen);

size_t mvcc_btree_count(const mvcc_btree *t);
/* Heap bytes of the tree's own nodes (items not included). */
size_t mvcc_btree_memory_bytes(const mvcc_btree *t);

/* Checks every invariant (order, node fill, equal leaf depth, count); 0 when the tree
 * is sound, -EFAULT otherwise. For tests: it visits the whole tree. */
int mvcc_btree_verify(const mvcc_btree *t);

/* In-order iteration. A cursor is a path from the root; the tree's height is bounded
 * (at 32 items per node and more, 16 levels hold more items than memory can). */
#define MVCC_BTREE_MAX_DEPTH 16
typedef struct mvcc_btree_iter {
  int depth; /* frames in use; 0 = past the end */
  struct {
    mvcc_btree_node *node;
    int pos;
  } path[MVCC_BTREE_MAX_DEPTH];
} mvcc_btree_iter;

/* Positions it on the first item whose key is >= key (lower bound); keylen 0 seeks
 * the first item. */
void mvcc_btree_seek(const mvcc_btree *t, mvcc_btree_iter *it, const uint8_t *key, size_t keylen);
/* The slot of the current item, or NULL past the end. */
void **mvcc_btree_iter_slot(const mvcc_btree_iter *it);
/* Moves to the next item in key order. */
void mvcc_btree_iter_next(mvcc_btree_iter *it);

#endif
