/* common/client/strmap.h — a string-keyed hash map (internal to common/client).
 *
 * Separate chaining over a power-of-two bucket array that doubles when the
 * load passes 1, so lookups stay O(1) from ten keys to a million. Keys are
 * copied in; values are opaque pointers the caller owns. Not thread-safe:
 * every user (work queue, informer cache and its indexes) holds its own lock. */
#ifndef KEEL_COMMON_CLIENT_STRMAP_H
#define KEEL_COMMON_CLIENT_STRMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct strmap_entry {
  char *key;
  void *value;
  uint64_t hash;
  struct strmap_entry *next;
} strmap_entry;

typedef struct strmap {
  strmap_entry **buckets;
  size_t nbuckets;
  size_t count;
} strmap;

void strmap_init(strmap *m);
/* Frees every entry (calling free_value on each value when not NULL). The map
 * is empty and reusable afterwards. */
void strmap_clear(strmap *m, void (*free_value)(void *));

strmap_entry *strmap_find(const strmap *m, const char *key);
void *strmap_get(const strmap *m, const char *key);
bool strmap_has(const strmap *m, const char *key);
/* Inserts key or replaces its value; *old (if not NULL) receives the value it
 * replaced (NULL when new). Returns the entry (its key is the map's copy), or
 * NULL when out of memory (nothing changed). */
strmap_entry *strmap_put(strmap *m, const char *key, void *value, void **old);
/* Removes key; returns true when it was there, with its value in *value. */
bool strmap_remove(strmap *m, const char *key, void **value);

/* Iteration: for (strmap_entry *e = strmap_first(m, &i); e; e = strmap_next(m, e, &i)).
 * The map must not change during it. */
strmap_entry *strmap_first(const strmap *m, size_t *iter);
strmap_entry *strmap_next(const strmap *m, strmap_entry *e, size_t *iter);

#endif
