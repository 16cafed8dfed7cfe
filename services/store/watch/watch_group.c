/* services/store/watch/watch_group.c — see watch_group.h.
 *
 * Exact keys: a chained hash table (FNV-1a, power-of-two buckets, doubled at
 * load 1) whose entries own a copy of the key and list the items watching it.
 * An event costs one hash lookup however many single-key watchers exist.
 * Ranges: one array scanned per event; Keel's clients hold few range watches
 * (a prefix per resource type), many single-key ones. */
#include "services/store/watch/watch_group.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool watch_range_is_single(const watch_range *r) { return r->endlen == 0; }

bool watch_range_is_from_key(const watch_range *r) { return r->endlen == 1 && r->end[0] == 0; }

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

bool watch_range_contains(const watch_range *r, const uint8_t *key, size_t keylen) {
  if (watch_range_is_single(r))
    return keylen == r->keylen && (keylen == 0 || memcmp(key, r->key, keylen) == 0);
  if (key_cmp(key, keylen, r->key, r->keylen) < 0) return false;
  return watch_range_is_from_key(r) || key_cmp(key, keylen, r->end, r->endlen) < 0;
}

typedef struct key_entry {
  struct key_entry *next;
  uint64_t hash;
  uint8_t *key;
  size_t keylen;
  void **items;
  size_t n, cap;
} key_entry;

typedef struct range_item {
  const watch_range *r;
  void *item;
} range_item;

struct watch_group {
  key_entry **buckets;
  size_t nbuckets; /* power of two */
  size_t nkeys;
  size_t nitems;
  range_item *ranges;
  size_t nranges, rcap;
};

static uint64_t hash_key(const uint8_t *k, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; i++) {
    h ^= k[i];
    h *= 1099511628211ull;
  }
  return h;
}

watch_group *watch_group_create(void) {
  watch_group *g = calloc(1, sizeof(*g));
  if (!g) return NULL;
  g->nbuckets = 64;
  g->buckets = calloc(g->nbuckets, sizeof(*g->buckets));
  if (!g->buckets) {
    free(g);
    return NULL;
  }
  return g;
}

static void entry_free(key_entry *e) {
  free(e->key);
  free(e->items);
  free(e);
}

void watch_group_destroy(watch_group *g) {
  if (!g) return;
  for (size_t i = 0; i < g->nbuckets; i++) {
    key_entry *e = g->buckets[i];
    while (e) {
      key_entry *next = e->next;
      entry_free(e);
      e = next;
    }
  }
  free(g->buckets);
  free(g->ranges);
  free(g);
}

size_t watch_group_size(const watch_group *g) { return g->nitems; }

static key_entry **find_slot(const watch_group *g, uint64_t h, const uint8_t *key, size_t keylen) {
  key_entry **p = &g->buckets[h & (g->nbuckets - 1)];
  while (*p && !((*p)->hash == h && (*p)->keylen == keylen &&
                 (keylen == 0 || memcmp((*p)->key, key, keylen) == 0)))
    p = &(*p)->next;
  return p;
}

static void grow(watch_group *g) {
  size_t n = g->nbuckets * 2;
  key_entry **b = calloc(n, sizeof(*b));
  if (!b) return; /* stays correct, only slower */
  for (size_t i = 0; i < g->nbuckets; i++) {
    key_entry *e = g->buckets[i];
    while (e) {
      key_entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(g->buckets);
  g->buckets = b;
  g->nbuckets = n;
}

static int push_item(void ***items, size_t *n, size_t *cap, void *item) {
  if (*n == *cap) {
    size_t nc = *cap ? *cap * 2 : 2;
    void **p = realloc(*items, nc * sizeof(*p));
    if (!p) return -ENOMEM;
    *items = p;
    *cap = nc;
  }
  (*items)[(*n)++] = item;
  return 0;
}

int watch_group_add(watch_group *g, const watch_range *r, void *item) {
  if (!watch_range_is_single(r)) {
    if (g->nranges == g->rcap) {
      size_t nc = g->rcap ? g->rcap * 2 : 8;
      range_item *p = realloc(g->ranges, nc * sizeof(*p));
      if (!p) return -ENOMEM;
      g->ranges = p;
      g->rcap = nc;
    }
    g->ranges[g->nranges++] = (range_item){r, item};
    g->nitems++;
    return 0;
  }
  uint64_t h = hash_key(r->key, r->keylen);
  key_entry **slot = find_slot(g, h, r->key, r->keylen);
  key_entry *e = *slot;
  if (!e) {
    e = calloc(1, sizeof(*e));
    if (!e) return -ENOMEM;
    e->key = malloc(r->keylen ? r->keylen : 1);
    if (!e->key) {
      free(e);
      return -ENOMEM;
    }
    if (r->keylen) memcpy(e->key, r->key, r->keylen);
    e->keylen = r->keylen;
    e->hash = h;
    if (push_item(&e->items, &e->n, &e->cap, item) < 0) {
      entry_free(e);
      return -ENOMEM;
    }
    *slot = e;
    g->nkeys++;
    g->nitems++;
    if (g->nkeys > g->nbuckets) grow(g);
    return 0;
  }
  if (push_item(&e->items, &e->n, &e->cap, item) < 0) return -ENOMEM;
  g->nitems++;
  return 0;
}

void watch_group_remove(watch_group *g, const watch_range *r, void *item) {
  if (!watch_range_is_single(r)) {
    for (size_t i = 0; i < g->nranges; i++) {
      if (g->ranges[i].item == item) {
        /* Order among range watchers does not matter: swap in the last. */
        g->ranges[i] = g->ranges[--g->nranges];
        g->nitems--;
        return;
      }
    }
    return;
  }
  key_entry **slot = find_slot(g, hash_key(r->key, r->keylen), r->key, r->keylen);
  key_entry *e = *slot;
  if (!e) return;
  for (size_t i = 0; i < e->n; i++) {
    if (e->items[i] == item) {
      e->items[i] = e->items[--e->n];
      g->nitems--;
      break;
    }
  }
  if (e->n == 0) {
    *slot = e->next;
    entry_free(e);
    g->nkeys--;
  }
}

void watch_group_match(const watch_group *g, const uint8_t *key, size_t keylen, watch_group_fn fn,
                       void *arg) {
  if (g->nkeys) {
    key_entry *e = *find_slot(g, hash_key(key, keylen), key, keylen);
    if (e)
      for (size_t i = 0; i < e->n; i++) fn(arg, e->items[i]);
  }
  for (size_t i = 0; i < g->nranges; i++)
    if (watch_range_contains(g->ranges[i].r, key, keylen)) fn(arg, g->ranges[i].item);
}
