/* services/store/watch/watch_group.h — watchers indexed by the keys they watch
 * (etcd's watcherGroup).
 *
 * A published event must find its watchers without looking at every watcher:
 * single-key watchers (the common case: one object) sit in a hash table on the
 * exact key; range watchers (prefixes, from-key) sit in a list that is scanned.
 * Items are opaque to the group; each item's range is borrowed and must stay
 * valid and unchanged while the item is in the group.
 *
 * Not thread-safe: the hub holds its lock around every call. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_GROUP_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A key range by etcd's end rules: endlen 0 = the single key; end "\0" (one
 * zero byte) = every key >= key; otherwise [key, end). */
typedef struct watch_range {
  uint8_t *key;
  size_t keylen;
  uint8_t *end;
  size_t endlen;
} watch_range;

bool watch_range_is_single(const watch_range *r);
bool watch_range_is_from_key(const watch_range *r);
bool watch_range_contains(const watch_range *r, const uint8_t *key, size_t keylen);

typedef struct watch_group watch_group;

/* NULL when out of memory. */
watch_group *watch_group_create(void);
void watch_group_destroy(watch_group *g);

/* Adds item watching r (borrowed). Returns 0 or -ENOMEM. An item may be added
 * once. */
int watch_group_add(watch_group *g, const watch_range *r, void *item);
/* Removes item (added with the same r); a no-op when absent. */
void watch_group_remove(watch_group *g, const watch_range *r, void *item);
size_t watch_group_size(const watch_group *g);

/* Calls fn(arg, item) for every item whose range holds key. fn must not change
 * the group. */
typedef void (*watch_group_fn)(void *arg, void *item);
void watch_group_match(const watch_group *g, const uint8_t *key, size_t keylen, watch_group_fn fn,
                       void *arg);

#endif
