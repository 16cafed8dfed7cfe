/* services/store/lease/keyset.h — the set of keys attached to one lease (etcd's
 * Lease.itemSet), internal to the lessor.
 *
 * An open-addressing hash table with linear probing and backward-shift deletion (no
 * tombstones, so attach/detach churn never degrades probes). A slot is 16 bytes: the
 * key copy, its length and a 32-bit hash that also makes rehashing free of rehashing.
 * An empty set holds no memory, which matters because most leases carry one key or
 * none; a set that shrinks far below its capacity gives memory back. */
#ifndef KEEL_SERVICES_STORE_LEASE_KEYSET_H
#define KEEL_SERVICES_STORE_LEASE_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct lease_keyslot {
  uint8_t *key; /* owned copy; NULL = empty slot */
  uint32_t len;
  uint32_t hash;
} lease_keyslot;

/* A zeroed struct is an empty set. */
typedef struct lease_keyset {
  lease_keyslot *slots;
  size_t cap; /* 0 or a power of two */
  size_t n;
} lease_keyset;

/* The hash the set stores for a key. */
uint32_t lease_keyset_hash(const uint8_t *key, size_t len);

/* Adds a copy of key: 1 when added, 0 when present, -EINVAL when len > UINT32_MAX,
 * -ENOMEM (set unchanged). */
int lease_keyset_add(lease_keyset *s, const uint8_t *key, size_t len);
/* Removes key and frees its copy: 1 when removed, 0 when absent. */
int lease_keyset_remove(lease_keyset *s, const uint8_t *key, size_t len);
bool lease_keyset_contains(const lease_keyset *s, const uint8_t *key, size_t len);

/* Frees every key copy and the table; the set is empty again. */
void lease_keyset_clear(lease_keyset *s);
/* Frees the table only: the caller took the key copies (steal). */
void lease_keyset_release_table(lease_keyset *s);

/* Heap bytes: the table plus the key copies. */
size_t lease_keyset_bytes(const lease_keyset *s);

/* 0 when n, hashes and probe chains are consistent, -EFAULT otherwise. */
int lease_keyset_verify(const lease_keyset *s);

#endif
