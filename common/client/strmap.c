/* common/client/strmap.c — see strmap.h. FNV-1a hashes; chains are short
 * because the table doubles at load 1. */
#include "common/client/strmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

void strmap_init(strmap *m) { memset(m, 0, sizeof(*m)); }

void strmap_clear(strmap *m, void (*free_value)(void *)) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    strmap_entry *e = m->buckets[i];
    while (e) {
      strmap_entry *next = e->next;
      if (free_value) free_value(e->value);
      free(e->key);
      free(e);
      e = next;
    }
  }
  free(m->buckets);
  memset(m, 0, sizeof(*m));
}

strmap_entry *strmap_find(const strmap *m, const char *key) {
  if (!m->nbuckets) return NULL;
  uint64_t h = hash_str(key);
  for (strmap_entry *e = m->buckets[h & (m->nbuckets - 1)]; e; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0) return e;
  return NULL;
}

void *strmap_get(const strmap *m, const char *key) {
  strmap_entry *e = strmap_find(m, key);
  return e ? e->value : NULL;
}

bool strmap_has(const strmap *m, const char *key) { return strmap_find(m, key) != NULL; }

static bool grow(strmap *m) {
  size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
  strmap_entry **b = calloc(n, sizeof(*b));
  if (!b) return false;
  for (size_t i = 0; i < m->nbuckets; i++) {
    strmap_entry *e = m->buckets[i];
    while (e) {
      strmap_entry *next = e->next;
      e->next = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
      e = next;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = n;
  return true;
}

strmap_entry *strmap_put(strmap *m, const char *key, void *value, void **old) {
  strmap_entry *e = strmap_find(m, key);
  if (e) {
    if (old) *old = e->value;
    e->value = value;
    return e;
  }
  if (old) *old = NULL;
  if (m->count >= m->nbuckets && !grow(m) && !m->nbuckets) return NULL;
  e = malloc(sizeof(*e));
  if (!e) return NULL;
  e->key = strdup(key);
  if (!e->key) {
    free(e);
    return NULL;
  }
  e->value = value;
  e->hash = hash_str(key);
  size_t i = e->hash & (m->nbuckets - 1);
  e->next = m->buckets[i];
  m->buckets[i] = e;
  m->count++;
  return e;
}

bool strmap_remove(strmap *m, const char *key, void **value) {
  if (!m->nbuckets) return false;
  uint64_t h = hash_str(key);
  strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];
  for (; *pp; pp = &(*pp)->next) {
    strmap_entry *e = *pp;
    if (e->hash == h && strcmp(e->key, key) == 0) {
      *pp = e->next;
      if (value) *value = e->value;
      free(e->key);
      free(e);
      m->count--;
      return true;
    }
  }
  return false;
}

strmap_entry *strmap_first(const strmap *m, size_t *iter) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    if (m->buckets[i]) {
      *iter = i;
      return m->buckets[i];
    }
  }
  return NULL;
}

strmap_entry *strmap_next(const strmap *m, strmap_entry *e, size_t *iter) {
  if (e->next) return e->next;
  for (size_t i = *iter + 1; i < m->nbuckets; i++) {
    if (m->buckets[i]) {
      *iter = i;
      return m->buckets[i];
    }
  }
  return NULL;
}
