/* services/store/lease/lessor.c — the lease table; see lessor.h.
 *
 * Three structures share one heap-allocated record per lease:
 *  - the id table: open addressing over lease pointers, linear probing on a mixed id,
 *    backward-shift deletion (no tombstones), load <= 3/4; etcd's leaseMap.
 *  - the expiry heap: a binary min-heap of {expiry, lease pointer} entries ordered by
 *    (expiry, id); every lease knows its position, so a renew or a revoke fixes the
 *    heap in place in O(log n) (etcd's LeaseExpiredNotifier is a heap too, but lazily
 *    re-pushes). Keeping the expiry in the entry lets a sift compare inside the array;
 *    it dereferences leases only to break ties and to store the moved ones' positions.
 *  - the lease's own key set (keyset.h).
 * Equal expiries order by id so that lessor_expired is a function of the state alone,
 * not of the order of calls that built it.
 *
 * lessor_expired must list the expired prefix in order without popping it (expired
 * leases stay until revoked). It walks the heap best-first: a small second heap (the
 * frontier) of heap positions starts at the root; taking its minimum reports a lease
 * and offers that node's two children. Every heap node enters the frontier at most
 * once, so a scratch array as long as the heap always suffices; it grows together with
 * the heap inside lessor_grant, where -ENOMEM can still be reported, and
 * lessor_expired itself can neither allocate nor fail.
 *
 * Growth of any table happens before the first change of a call, so -ENOMEM leaves
 * the lessor as it was. */
#include "services/store/lease/lessor.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "services/store/lease/keyset.h"

typedef struct lease {
  int64_t id;
  int64_t ttl_s;
  size_t heap_pos; /* its entry in the expiry heap, which also holds its expiry */
  lease_keyset keys;
} lease;

/* The expiry sits in the heap entry, not in the lease, so a sift compares within the
 * array and touches a lease only to update the position of one it moves. */
typedef struct heap_entry {
  int64_t expiry_ms;
  lease *le;
} heap_entry;

struct lessor {
  lease **table; /* NULL = empty slot */
  size_t table_cap; /* a power of two */
  size_t count;
  heap_entry *heap; /* heap[0 .. count) */
  size_t *scratch; /* lessor_expired's frontier; as long as the heap's capacity */
  size_t heap_cap;
  uint64_t id_seed, id_counter;
  size_t key_count; /* attached keys over all leases */
};

#define MIN_TABLE_CAP 16
#define DEFAULT_SEED 0x6b65656c6c656173ull /* "keellease" */

static uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x;
}

static size_t home_slot(const lessor *l, int64_t id) {
  return (size_t)mix64((uint64_t)id) & (l->table_cap - 1);
}

/* now + ttl seconds, saturating instead of overflowing. */
static int64_t expiry_of(int64_t now_ms, int64_t ttl_s) {
  int64_t ms = ttl_s * 1000; /* ttl_s <= LESSOR_MAX_TTL: no overflow */
  if (now_ms > 0 && ms > INT64_MAX - now_ms) return INT64_MAX;
  return now_ms + ms;
}

/* ---- id table ---- */

/* The slot holding id, or the empty slot that ends its probe chain. */
static size_t table_probe(const lessor *l, int64_t id) {
  size_t mask = l->table_cap - 1;
  size_t i = home_slot(l, id);
  while (l->table[i] && l->table[i]->id != id) i = (i + 1) & mask;
  return i;
}

static lease *table_find(const lessor *l, int64_t id) {
  return l->table[table_probe(l, id)];
}

static int table_resize(lessor *l, size_t newcap) {
  lease **table = calloc(newcap, sizeof(*table));
  if (!table) return -ENOMEM;
  lease **old = l->table;
  size_t oldcap = l->table_cap;
  l->table = table;
  l->table_cap = newcap;
  for (size_t i = 0; i < oldcap; i++)
    if (old[i]) l->table[table_probe(l, old[i]->id)] = old[i];
  free(old);
  return 0;
}

static void table_delete_at(lessor *l, size_t i) {
  size_t mask = l->table_cap - 1;
  size_t j = i;
  for (;;) {
    l->table[i] = NULL;
    for (;;) {
      j = (j + 1) & mask;
      if (!l->table[j]) return;
      size_t home = home_slot(l, l->table[j]->id);
      bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
      if (!stays) break;
    }
    l->table[i] = l->table[j];
    i = j;
  }
}

/* ---- expiry heap ---- */

static bool earlier(const heap_entry *a, const heap_entry *b) {
  return a->expiry_ms < b->expiry_ms || (a->expiry_ms == b->expiry_ms && a->le->id < b->le->id);
}

static int64_t expiry(const lessor *l, const lease *le) {
  return l->heap[le->heap_pos].expiry_ms;
}

static void heap_set(lessor *l, size_t pos, heap_entry e) {
  l->heap[pos] = e;
  e.le->heap_pos = pos;
}

static void sift_up(lessor *l, size_t pos) {
  heap_entry e = l->heap[pos];
  while (pos > 0) {
    size_t parent = (pos - 1) / 2;
    if (!earlier(&e, &l->heap[parent])) break;
    heap_set(l, pos, l->heap[parent]);
    pos = parent;
  }
  heap_set(l, pos, e);
}

static void sift_down(lessor *l, size_t pos) {
  heap_entry e = l->heap[pos];
  size_t n = l->count;
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && earlier(&l->heap[child + 1], &l->heap[child])) child++;
    if (!earlier(&l->heap[child], &e)) break;
    heap_set(l, pos, l->heap[child]);
    pos = child;
  }
  heap_set(l, pos, e);
}

/* Sets the expiry of the lease at pos and restores the heap, whichever way it moved. */
static void heap_update(lessor *l, size_t pos, int64_t expiry_ms) {
  l->heap[pos].expiry_ms = expiry_ms;
  if (pos > 0 && earlier(&l->heap[pos], &l->heap[(pos - 1) / 2]))
    sift_up(l, pos);
  else
    sift_down(l, pos);
}

/* Removes the entry at pos; count is already decremented to the new size. */
static void heap_remove(lessor *l, size_t pos) {
  if (pos == l->count) return;
  heap_set(l, pos, l->heap[l->count]);
  heap_update(l, pos, l->heap[pos].expiry_ms);
}

static int heap_reserve(lessor *l, size_t need) {
  if (need <= l->heap_cap) return 0;
  size_t cap = l->heap_cap ? l->heap_cap * 2 : MIN_TABLE_CAP;
  heap_entry *heap = realloc(l->heap, cap * sizeof(*heap));
  if (!heap) return -ENOMEM;
  l->heap = heap;
  size_t *scratch = realloc(l->scratch, cap * sizeof(*scratch));
  if (!scratch) return -ENOMEM; /* the larger heap array is harmless */
  l->scratch = scratch;
  l->heap_cap = cap;
  return 0;
}

/* ---- keys ---- */

static int key_cmp(const void *a, const void *b) {
  const lessor_key *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = n ? memcmp(x->key, y->key, n) : 0;
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* Fills out with le's keys, moved (steal) or copied, in etcd's byte order. */
static int export_keys(lease *le, bool steal, lessor_keys *out) {
  *out = (lessor_keys){0};
  if (le->keys.n == 0) return 0;
  lessor_key *v = malloc(le->keys.n * sizeof(*v));
  if (!v) return -ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < le->keys.cap; i++) {
    const lease_keyslot *sl = &le->keys.slots[i];
    if (!sl->key) continue;
    if (steal) {
      v[n].key = sl->key;
    } else {
      v[n].key = malloc(sl->len ? sl->len : 1);
      if (!v[n].key) {
        out->keys = v;
        out->n = n;
        lessor_keys_free(out);
        return -ENOMEM;
      }
      if (sl->len) memcpy(v[n].key, sl->key, sl->len);
    }
    v[n++].len = sl->len;
  }
  qsort(v, n, sizeof(*v), key_cmp);
  out->keys = v;
  out->n = n;
  return 0;
}

void lessor_keys_free(lessor_keys *k) {
  if (!k) return;
  for (size_t i = 0; i < k->n; i++) free(k->keys[i].key);
  free(k->keys);
  *k = (lessor_keys){0};
}

/* ---- the contract ---- */

lessor *lessor_create(void) {
  lessor *l = calloc(1, sizeof(*l));
  if (!l) return NULL;
  l->table = calloc(MIN_TABLE_CAP, sizeof(*l->table));
  if (!l->table) {
    free(l);
    return NULL;
  }
  l->table_cap = MIN_TABLE_CAP;
  l->id_seed = DEFAULT_SEED;
  return l;
}

void lessor_destroy(lessor *l) {
  if (!l) return;
  for (size_t i = 0; i < l->count; i++) {
    lease_keyset_clear(&l->heap[i].le->keys);
    free(l->heap[i].le);
  }
  free(l->heap);
  free(l->scratch);
  free(l->table);
  free(l);
}

void lessor_seed(lessor *l, uint64_t seed) {
  l->id_seed = seed;
  l->id_counter = 0;
}

/* mix64 is a bijection and the Weyl sequence seed + k*golden visits every 64-bit
 * value once per 2^64 steps, so ids repeat only after 2^64 calls (modulo the sign bit
 * dropped to stay positive). Ids in use are skipped. */
int64_t lessor_next_id(lessor *l) {
  for (;;) {
    uint64_t x = mix64(l->id_seed + ++l->id_counter * 0x9e3779b97f4a7c15ull);
    int64_t id = (int64_t)(x & (uint64_t)INT64_MAX);
    if (id != 0 && !table_find(l, id)) return id;
  }
}

int lessor_grant(lessor *l, int64_t id, int64_t ttl_s, int64_t now_ms) {
  if (id == 0) return -EINVAL;
  if (ttl_s > LESSOR_MAX_TTL) return -ERANGE;
  size_t slot = table_probe(l, id);
  if (l->table[slot]) return -EEXIST;
  if ((l->count + 1) * 4 > l->table_cap * 3) {
    if (table_resize(l, l->table_cap * 2) < 0) return -ENOMEM;
    slot = table_probe(l, id);
  }
  if (heap_reserve(l, l->count + 1) < 0) return -ENOMEM;
  lease *le = calloc(1, sizeof(*le));
  if (!le) return -ENOMEM;
  le->id = id;
  le->ttl_s = ttl_s < LESSOR_MIN_TTL ? LESSOR_MIN_TTL : ttl_s;
  l->table[slot] = le;
  heap_set(l, l->count++, (heap_entry){.expiry_ms = expiry_of(now_ms, le->ttl_s), .le = le});
  sift_up(l, le->heap_pos);
  return 0;
}

bool lessor_exists(const lessor *l, int64_t id) {
  return table_find(l, id) != NULL;
}

size_t lessor_count(const lessor *l) {
  return l->count;
}

int lessor_attach(lessor *l, int64_t id, const uint8_t *key, size_t keylen) {
  lease *le = table_find(l, id);
  if (!le) return -ENOENT;
  int rc = lease_keyset_add(&le->keys, key, keylen);
  if (rc < 0) return rc;
  l->key_count += (size_t)rc;
  return 0;
}

int lessor_detach(lessor *l, int64_t id, const uint8_t *key, size_t keylen) {
  lease *le = table_find(l, id);
  if (!le) return -ENOENT;
  l->key_count -= (size_t)lease_keyset_remove(&le->keys, key, keylen);
  return 0;
}

size_t lessor_key_count(const lessor *l, int64_t id) {
  const lease *le = table_find(l, id);
  return le ? le->keys.n : 0;
}

int lessor_revoke(lessor *l, int64_t id, lessor_keys *out) {
  size_t slot = table_probe(l, id);
  lease *le = l->table[slot];
  if (!le) return -ENOENT;
  if (out) {
    int rc = export_keys(le, true, out);
    if (rc < 0) return rc;
  }
  l->key_count -= le->keys.n;
  if (out)
    lease_keyset_release_table(&le->keys); /* the key copies now belong to out */
  else
    lease_keyset_clear(&le->keys);
  table_delete_at(l, slot);
  l->count--;
  heap_remove(l, le->heap_pos);
  free(le);
  return 0;
}

int64_t lessor_keepalive(lessor *l, int64_t id, int64_t now_ms) {
  lease *le = table_find(l, id);
  if (!le) return -ENOENT;
  if (expiry(l, le) <= now_ms) return -ETIME;
  heap_update(l, le->heap_pos, expiry_of(now_ms, le->ttl_s));
  return le->ttl_s;
}

int lessor_time_to_live(const lessor *l, int64_t id, int64_t now_ms, int64_t *granted_ttl,
                        int64_t *remaining_ttl_s, lessor_keys *keys_or_NULL) {
  lease *le = table_find(l, id);
  if (!le) {
    *granted_ttl = 0;
    *remaining_ttl_s = -1;
    return -ENOENT;
  }
  if (keys_or_NULL) {
    int rc = export_keys(le, false, keys_or_NULL);
    if (rc < 0) return rc;
  }
  *granted_ttl = le->ttl_s;
  /* The difference of two int64 fits in uint64 when it is positive. */
  int64_t exp = expiry(l, le);
  *remaining_ttl_s = exp > now_ms ? (int64_t)(((uint64_t)exp - (uint64_t)now_ms) / 1000) : 0;
  return 0;
}

/* Max-heap of ids in ids[0 .. n): keeps the smallest ids seen at the top's expense. */
static void id_sift_down(int64_t *ids, size_t n, size_t pos) {
  int64_t v = ids[pos];
  for (;;) {
    size_t child = 2 * pos + 1;
    if (child >= n) break;
    if (child + 1 < n && ids[child + 1] > ids[child]) child++;
    if (ids[child] <= v) break;
    ids[pos] = ids[child];
    pos = child;
  }
  ids[pos] = v;
}

static int id_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

size_t lessor_list(const lessor *l, int64_t *ids, size_t cap) {
  if (cap == 0) return 0;
  size_t n = 0;
  for (size_t i = 0; i < l->count; i++) {
    int64_t id = l->heap[i].le->id;
    if (n < cap) {
      ids[n++] = id;
      if (n == cap)
        for (size_t j = cap / 2; j-- > 0;) id_sift_down(ids, cap, j);
    } else if (id < ids[0]) {
      ids[0] = id;
      id_sift_down(ids, cap, 0);
    }
  }
  qsort(ids, n, sizeof(*ids), id_cmp);
  return n;
}

static bool frontier_before(const lessor *l, size_t a, size_t b) {
  return earlier(&l->heap[a], &l->heap[b]);
}

static void frontier_push(lessor *l, size_t *n, size_t pos) {
  size_t *f = l->scratch;
  size_t i = (*n)++;
  while (i > 0 && frontier_before(l, pos, f[(i - 1) / 2])) {
    f[i] = f[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  f[i] = pos;
}

static size_t frontier_pop(lessor *l, size_t *n) {
  size_t *f = l->scratch;
  size_t top = f[0], v = f[--*n], i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= *n) break;
    if (child + 1 < *n && frontier_before(l, f[child + 1], f[child])) child++;
    if (!frontier_before(l, f[child], v)) break;
    f[i] = f[child];
    i = child;
  }
  f[i] = v;
  return top;
}

size_t lessor_expired(lessor *l, int64_t now_ms, int64_t *ids, size_t cap) {
  size_t out = 0, nf = 0;
  if (cap == 0 || l->count == 0 || l->heap[0].expiry_ms > now_ms) return 0;
  frontier_push(l, &nf, 0);
  while (out < cap && nf > 0) {
    size_t pos = frontier_pop(l, &nf);
    ids[out++] = l->heap[pos].le->id;
    for (size_t c = 2 * pos + 1; c <= 2 * pos + 2 && c < l->count; c++)
      if (l->heap[c].expiry_ms <= now_ms) frontier_push(l, &nf, c);
  }
  return out;
}

void lessor_renew_all(lessor *l, int64_t now_ms) {
  for (size_t i = 0; i < l->count; i++)
    l->heap[i].expiry_ms = expiry_of(now_ms, l->heap[i].le->ttl_s);
  for (size_t i = l->count / 2; i-- > 0;) sift_down(l, i);
}

int lessor_foreach(const lessor *l, lessor_visit_fn fn, void *arg) {
  for (size_t i = 0; i < l->count; i++) {
    int rc = fn(arg, l->heap[i].le->id, l->heap[i].le->ttl_s);
    if (rc) return rc;
  }
  return 0;
}

size_t lessor_memory_bytes(const lessor *l) {
  size_t bytes = sizeof(*l) + l->table_cap * sizeof(*l->table) +
                 l->heap_cap * (sizeof(*l->heap) + sizeof(*l->scratch));
  for (size_t i = 0; i < l->count; i++)
    bytes += sizeof(lease) + lease_keyset_bytes(&l->heap[i].le->keys);
  return bytes;
}

int lessor_verify(const lessor *l) {
  size_t in_table = 0, keys = 0;
  if (l->table_cap < MIN_TABLE_CAP || (l->table_cap & (l->table_cap - 1)) != 0) return -EFAULT;
  if (l->count * 4 > l->table_cap * 3 || l->count > l->heap_cap) return -EFAULT;
  for (size_t i = 0; i < l->table_cap; i++) {
    const lease *le = l->table[i];
    if (!le) continue;
    in_table++;
    if (le->id == 0 || le->ttl_s < LESSOR_MIN_TTL || le->ttl_s > LESSOR_MAX_TTL) return -EFAULT;
    if (table_probe(l, le->id) != i) return -EFAULT; /* unreachable or duplicate id */
    if (le->heap_pos >= l->count || l->heap[le->heap_pos].le != le) return -EFAULT;
    if (lease_keyset_verify(&le->keys) < 0) return -EFAULT;
    keys += le->keys.n;
  }
  if (in_table != l->count || keys != l->key_count) return -EFAULT;
  for (size_t i = 1; i < l->count; i++)
    if (earlier(&l->heap[i], &l->heap[(i - 1) / 2])) return -EFAULT;
  return 0;
}
