/* common/client/indexer.h — the informer's cache: a thread-safe store of
 * immutable, reference-counted objects keyed "namespace/name", with indexes
 * (client-go's ThreadSafeStore + Indexer). Internal to common/client; the
 * public read API is informer.h's.
 *
 * One writer (the informer's thread) and any number of readers share a
 * rwlock. Every index maps a value to the set of objects holding it; an
 * object's links into its buckets are kept with it, so replacing or removing
 * an object costs O(its index values), whatever the bucket sizes. Index
 * functions run before the lock is taken (on the writer's thread). */
#ifndef KEEL_COMMON_CLIENT_INDEXER_H
#define KEEL_COMMON_CLIENT_INDEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/apimachinery/labels.h"
#include "common/client/informer.h"
#include "common/kinds/kinds.h"

/* A new object holding msg (taken), with 1 reference (the caller's). NULL
 * when out of memory (msg is freed then). */
informer_object *informer_object_new(ProtobufCMessage *msg, const char *key, int64_t rv);

typedef struct indexer indexer;

indexer *indexer_new(const api_kind *k);
void indexer_free(indexer *ix);
/* Before the first put. -EEXIST for a name taken, -ENOMEM. */
int indexer_add_index(indexer *ix, const char *name, informer_index_fn fn, void *arg);
bool indexer_has_index(indexer *ix, const char *name);

/* Inserts or replaces obj under its key, taking the caller's reference. *old
 * (may be NULL) receives the replaced object with its reference (caller
 * unrefs), or NULL. -ENOMEM leaves the cache unchanged (obj is unref'ed). */
int indexer_put(indexer *ix, informer_object *obj, informer_object **old);
/* Removes key; *old receives the removed object (caller unrefs). -ENOENT. */
int indexer_remove(indexer *ix, const char *key, informer_object **old);

informer_object *indexer_get(indexer *ix, const char *key);
size_t indexer_count(indexer *ix);
/* Snapshots of references (malloc'ed arrays, informer_objects_release),
 * sorted by key. */
int indexer_list(indexer *ix, const char *ns, const labels_selector *sel, informer_object ***objs, size_t *n);
int indexer_list_by_index(indexer *ix, const char *index, const char *value, informer_object ***objs, size_t *n);
int indexer_index_values(indexer *ix, const char *index, char ***values, size_t *n);

#endif
