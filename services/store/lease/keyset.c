/* services/store/lease/keyset.c — one lease's key set; see keyset.h.
 *
 * Load factor stays at or below 3/4 (capacity doubles before the insert that would
 * pass it) and a set shrinks to half when it falls below 1/8 full, so a set of n keys
 * holds between n*4/3 and 8n slots, and a one-key lease costs one 4-slot table. A
 * failed shrink just keeps the larger table: removal never fails. */
#include "services/store/lease/keyset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_CAP 4

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

/* Eight bytes at a time; keys are paths of a few dozen bytes. */
uint32_t lease_keyset_hash(const uint8_t *key, size_t len) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)len;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, key, 8);
    h = ((h << 23 | h >> 41) ^ w) * 0xff51afd7ed558ccdull;
    key += 8;
    len -= 8;
  }
  if (len) {
    uint64_t w = 0;
    memcpy(&w, key, len);
    h = ((h << 23 | h >> 41) ^ w) * 0xff51afd7ed558ccdull;
  }
  return (uint32_t)mix64(h);
}

static bool slot_is(const lease_keyslot *sl, const uint8_t *key, size_t len, uint32_t hash) {
  return sl->hash == hash && sl->len == len && (len == 0 || memcmp(sl->key, key, len) == 0);
}

/* The slot holding key, or the empty slot that ends its probe chain. */
static size_t probe(const lease_keyset *s, const uint8_t *key, size_t len, uint32_t hash) {
  size_t mask = s->cap - 1;
  size_t i = hash & mask;
  while (s->slots[i].key && !slot_is(&s->slots[i], key, len, hash)) i = (i + 1) & mask;
  return i;
}

/* Moves every key into a table of newcap slots; -ENOMEM leaves the set as it was. */
static int resize(lease_keyset *s, size_t newcap) {
  lease_keyslot *slots = calloc(newcap, sizeof(*slots));
  if (!slots) return -ENOMEM;
  size_t mask = newcap - 1;
  for (size_t i = 0; i < s->cap; i++) {
    if (!s->slots[i].key) continue;
    size_t j = s->slots[i].hash & mask;
    while (slots[j].key) j = (j + 1) & mask;
    slots[j] = s->slots[i];
  }
  free(s->slots);
  s->slots = slots;
  s->cap = newcap;
  return 0;
}

int lease_keyset_add(lease_keyset *s, const uint8_t *key, size_t len) {
  if (len > UINT32_MAX) return -EINVAL;
  uint32_t hash = lease_keyset_hash(key, len);
  if (s->cap && s->slots[probe(s, key, len, hash)].key) return 0;
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM;
  if (len) memcpy(copy, key, len);
  if ((s->n + 1) * 4 > s->cap * 3 && resize(s, s->cap ? s->cap * 2 : MIN_CAP) < 0) {
    free(copy);
    return -ENOMEM;
  }
  size_t i = probe(s, key, len, hash);
  s->slots[i] = (lease_keyslot){.key = copy, .len = (uint32_t)len, .hash = hash};
  s->n++;
  return 1;
}

/* Empties slot i and shifts later members of the probe run back, so every key stays
 * reachable from its home slot without tombstones. */
static void delete_at(lease_keyset *s, size_t i) {
  size_t mask = s->cap - 1;
  size_t j = i;
  for (;;) {
    s->slots[i].key = NULL;
    for (;;) {
      j = (j + 1) & mask;
      if (!s->slots[j].key) return;
      size_t home = s->slots[j].hash & mask;
      /* The key at j may move to i only if its home is not cyclically in (i, j]. */
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    s->slots[i] = s->slots[j];
    i = j;
  }
}

int lease_keyset_remove(lease_keyset *s, const uint8_t *key, size_t len) {
  if (!s->cap || len > UINT32_MAX) return 0;
  size_t i = probe(s, key, len, lease_keyset_hash(key, len));
  if (!s->slots[i].key) return 0;
  free(s->slots[i].key);
  delete_at(s, i);
  s->n--;
  if (s->n == 0) {
    lease_keyset_release_table(s);
  } else if (s->cap > MIN_CAP && s->n * 8 < s->cap) {
    (void)resize(s, s->cap / 2); /* on failure the larger table stays valid */
  }
  return 1;
}

bool lease_keyset_contains(const lease_keyset *s, const uint8_t *key, size_t len) {
  if (!s->cap || len > UINT32_MAX) return false;
  return s->slots[probe(s, key, len, lease_keyset_hash(key, len))].key != NULL;
}

void lease_keyset_clear(lease_keyset *s) {
  for (size_t i = 0; i < s->cap; i++) free(s->slots[i].key);
  lease_keyset_release_table(s);
}

void lease_keyset_release_table(lease_keyset *s) {
  free(s->slots);
  *s = (lease_keyset){0};
}

size_t lease_keyset_bytes(const lease_keyset *s) {
  size_t bytes = s->cap * sizeof(lease_keyslot);
  for (size_t i = 0; i < s->cap; i++)
    if (s->slots[i].key) bytes += s->slots[i].len ? s->slots[i].len : 1;
  return bytes;
}

int lease_keyset_verify(const lease_keyset *s) {
  if (s->cap == 0) return s->n == 0 && s->slots == NULL ? 0 : -EFAULT;
  if ((s->cap & (s->cap - 1)) != 0 || s->n * 4 > s->cap * 3) return -EFAULT;
  size_t n = 0;
  for (size_t i = 0; i < s->cap; i++) {
    const lease_keyslot *sl = &s->slots[i];
    if (!sl->key) continue;
    n++;
    if (sl->hash != lease_keyset_hash(sl->key, sl->len)) return -EFAULT;
    /* Reachable: the probe from its home finds this very slot. */
    if (probe(s, sl->key, sl->len, sl->hash) != i) return -EFAULT;
  }
  return n == s->n ? 0 : -EFAULT;
}
