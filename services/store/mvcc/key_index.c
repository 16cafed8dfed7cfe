/* services/store/mvcc/key_index.c — one key's generations and revisions in one block.
 *
 * Layout of the block (8-byte aligned pieces):
 *
 *   header (16 bytes) | key bytes, padded to 8 | ki_gen[ngens] | mvcc_revision[nrevs] | free
 *
 * All revisions of all generations sit in one ascending array, generation after
 * generation; a generation record keeps how many of them are its own. A key put once
 * costs 16 + key + 32 + 16 bytes in one malloc; each further revision 16 bytes,
 * amortised by growing the block 2x while small and 1.5x beyond 256 bytes.
 * Compaction moves the survivors to the front and gives back the space when half
 * of the block is free.
 *
 * etcd's rules are followed line by line (server/storage/mvcc/key_index.go): the
 * generation search of get (findGeneration), doCompact's walk to the first
 * generation whose tombstone is >= the compaction revision, and keep's exclusion of
 * a tombstone. Revisions are searched by binary search within a generation. */
#include "services/store/mvcc/key_index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct ki_gen {
  mvcc_revision created; /* the put that started the generation (or restored) */
  int64_t ver;           /* puts in the generation, its tombstone included (etcd's ver) */
  uint32_t nrevs;        /* its revisions still held (compaction drops older ones) */
  uint32_t pad;
} ki_gen;

#define KI_MAX_GENS 0x7fffffffu

static size_t key_area(size_t keylen) {
  return (sizeof(mvcc_key_index) + keylen + 7) & ~(size_t)7;
}

static ki_gen *ki_gens(const mvcc_key_index *ki) {
  return (ki_gen *)((char *)ki + key_area(ki->keylen));
}

static mvcc_revision *ki_revs(const mvcc_key_index *ki) {
  return (mvcc_revision *)(ki_gens(ki) + ki->ngens);
}

static size_t ki_used(const mvcc_key_index *ki) {
  return (size_t)ki->ngens * sizeof(ki_gen) + (size_t)ki->nrevs * sizeof(mvcc_revision);
}

mvcc_key_index *mvcc_key_index_new(const uint8_t *key, size_t keylen) {
  if (keylen > UINT32_MAX) return NULL;
  /* Room for the first generation and revision: every key index gets them at once. */
  const size_t first = sizeof(ki_gen) + sizeof(mvcc_revision);
  mvcc_key_index *ki = malloc(key_area(keylen) + first);
  if (!ki) return NULL;
  ki->nrevs = 0;
  ki->cap = (uint32_t)first;
  ki->ngens = 0;
  ki->closed = 0;
  ki->keylen = (uint32_t)keylen;
  if (keylen) memcpy(ki->key, key, keylen);
  return ki;
}

void mvcc_key_index_free(mvcc_key_index *ki) {
  free(ki);
}

/* Room for extra_gens more generation records and extra_revs more revisions. */
static int reserve(mvcc_key_index **kip, uint32_t extra_gens, uint32_t extra_revs) {
  mvcc_key_index *ki = *kip;
  if ((uint64_t)ki->nrevs + extra_revs > UINT32_MAX || (uint64_t)ki->ngens + extra_gens > KI_MAX_GENS)
    return -EOVERFLOW;
  size_t need = ki_used(ki) + extra_gens * sizeof(ki_gen) + extra_revs * sizeof(mvcc_revision);
  if (need <= ki->cap) return 0;
  /* small blocks double (a key rarely gets one update only), big ones grow by half */
  size_t cap = ki->cap < 256 ? ki->cap * 2 : ki->cap + ki->cap / 2;
  if (cap < need) cap = need;
  cap = (cap + 15) & ~(size_t)15;
  if (cap > UINT32_MAX) cap = need;
  if (cap > UINT32_MAX) return -EOVERFLOW;
  mvcc_key_index *grown = realloc(ki, key_area(ki->keylen) + cap);
  if (!grown) return -ENOMEM;
  grown->cap = (uint32_t)cap;
  *kip = grown;
  return 0;
}

/* Gives the block back down to what it uses when at least half of it (and 32 bytes)
 * is free: after a compaction most keys are back to one revision. */
static void shrink(mvcc_key_index **kip) {
  mvcc_key_index *ki = *kip;
  size_t used = ki_used(ki);
  if (ki->cap - used < 32 || ki->cap / 2 < used) return;
  mvcc_key_index *small = realloc(ki, key_area(ki->keylen) + used);
  if (!small) return; /* keeping the larger block is harmless */
  small->cap = (uint32_t)used;
  *kip = small;
}

/* Appends an empty generation record (room reserved by the caller). */
static ki_gen *add_gen(mvcc_key_index *ki, mvcc_revision created) {
  mvcc_revision *revs = ki_revs(ki);
  memmove(revs + 2, revs, ki->nrevs * sizeof(mvcc_revision)); /* one ki_gen = two revisions */
  ki_gen *g = &ki_gens(ki)[ki->ngens++];
  g->created = created;
  g->ver = 0;
  g->nrevs = 0;
  g->pad = 0;
  ki->closed = 0;
  return g;
}

_Static_assert(sizeof(ki_gen) == 2 * sizeof(mvcc_revision), "add_gen shifts revisions by one record");

/* Appends rev to the newest generation as one more version (room reserved). */
static void append_rev(mvcc_key_index *ki, mvcc_revision rev) {
  ki_revs(ki)[ki->nrevs++] = rev;
  ki_gen *g = &ki_gens(ki)[ki->ngens - 1];
  g->nrevs++;
  g->ver++;
}

mvcc_revision mvcc_key_index_modified(const mvcc_key_index *ki) {
  if (ki->nrevs == 0) return (mvcc_revision){0, 0};
  return ki_revs(ki)[ki->nrevs - 1];
}

/* rev must be newer than everything recorded (etcd panics otherwise). */
static bool is_newer(const mvcc_key_index *ki, mvcc_revision rev) {
  return ki->nrevs == 0 || mvcc_revision_cmp(rev, ki_revs(ki)[ki->nrevs - 1]) > 0;
}

bool mvcc_key_index_is_empty(const mvcc_key_index *ki) {
  return ki->ngens == 0;
}

bool mvcc_key_index_is_live(const mvcc_key_index *ki) {
  return ki->ngens > 0 && !ki->closed;
}

int mvcc_key_index_put(mvcc_key_index **kip, mvcc_revision rev) {
  if (!is_newer(*kip, rev)) return -EINVAL;
  bool fresh = !mvcc_key_index_is_live(*kip);
  int rc = reserve(kip, fresh ? 1 : 0, 1);
  if (rc < 0) return rc;
  if (fresh) add_gen(*kip, rev);
  append_rev(*kip, rev);
  return 0;
}

int mvcc_key_index_tombstone(mvcc_key_index **kip, mvcc_revision rev) {
  if (!mvcc_key_index_is_live(*kip)) return -ENOENT;
  if (!is_newer(*kip, rev)) return -EINVAL;
  int rc = reserve(kip, 0, 1);
  if (rc < 0) return rc;
  append_rev(*kip, rev);
  (*kip)->closed = 1;
  return 0;
}

int mvcc_key_index_restore(mvcc_key_index **kip, mvcc_revision created, mvcc_revision modified,
                           int64_t version) {
  if (mvcc_key_index_is_live(*kip)) return -EEXIST;
  if (!is_newer(*kip, modified) || mvcc_revision_cmp(created, modified) > 0 || version < 1) return -EINVAL;
  int rc = reserve(kip, 1, 1);
  if (rc < 0) return rc;
  ki_gen *g = add_gen(*kip, created);
  append_rev(*kip, modified);
  g->ver = version; /* the stored record's version, not a count of what is left */
  return 0;
}

int mvcc_key_index_restore_tombstone(mvcc_key_index **kip, mvcc_revision rev) {
  if (mvcc_key_index_is_live(*kip)) return -EEXIST;
  if (!is_newer(*kip, rev)) return -EINVAL;
  int rc = reserve(kip, 1, 1);
  if (rc < 0) return rc;
  add_gen(*kip, (mvcc_revision){0, 0});
  append_rev(*kip, rev);
  (*kip)->closed = 1;
  return 0;
}

/* The index of the last of n ascending revisions whose main is <= at, or -1
 * (etcd's generation.findRevisionIndex). */
static long last_at_or_before(const mvcc_revision *r, size_t n, int64_t at) {
  size_t lo = 0, hi = n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r[mid].main <= at)
      lo = mid + 1;
    else
      hi = mid;
  }
  return (long)lo - 1;
}

int mvcc_key_index_get(const mvcc_key_index *ki, int64_t at_rev, mvcc_revision *mod, mvcc_revision *created,
                       int64_t *version) {
  const ki_gen *g = ki_gens(ki);
  const mvcc_revision *r = ki_revs(ki);
  size_t end = ki->nrevs;
  /* findGeneration: newest first; a closed generation whose tombstone is at or
   * before at_rev means the key was deleted then (and not yet re-created). */
  for (size_t i = ki->ngens; i-- > 0;) {
    size_t start = end - g[i].nrevs;
    bool closed = i != (size_t)ki->ngens - 1 || ki->closed;
    if (closed && r[end - 1].main <= at_rev) return -ENOENT;
    if (r[start].main <= at_rev) {
      long n = last_at_or_before(r + start, g[i].nrevs, at_rev);
      if (mod) *mod = r[start + (size_t)n];
      if (created) *created = g[i].created;
      if (version) *version = g[i].ver - (int64_t)(g[i].nrevs - (size_t)n - 1);
      return 0;
    }
    end = start;
  }
  return -ENOENT;
}

/* etcd's doCompact: the first generation that holds rev or starts after it (gen;
 * ngens when none is left), the index of its first revision (first), and the index
 * within it of the newest revision <= rev (-1 when none). */
typedef struct compact_point {
  size_t gen, first;
  long at;
} compact_point;

static compact_point find_compact_point(const mvcc_key_index *ki, int64_t rev) {
  const ki_gen *g = ki_gens(ki);
  const mvcc_revision *r = ki_revs(ki);
  /* etcd walks while genIdx < len(generations)-1; its list ends with an empty
   * generation exactly when ours is closed. */
  size_t etcd_last = (size_t)ki->ngens - 1 + ki->closed;
  compact_point p = {0, 0, -1};
  while (p.gen < etcd_last) {
    if (r[p.first + g[p.gen].nrevs - 1].main >= rev) break; /* its tombstone */
    p.first += g[p.gen].nrevs;
    p.gen++;
  }
  if (p.gen < ki->ngens) p.at = last_at_or_before(r + p.first, g[p.gen].nrevs, rev);
  return p;
}

void mvcc_key_index_compact(mvcc_key_index **kip, int64_t rev, void (*keep)(void *arg, mvcc_revision r),
                            void *arg) {
  mvcc_key_index *ki = *kip;
  if (ki->ngens == 0) return;
  compact_point p = find_compact_point(ki, rev);
  if (p.gen == ki->ngens) { /* every generation ended at or before rev */
    ki->ngens = 0;
    ki->nrevs = 0;
    ki->closed = 0;
    shrink(kip);
    return;
  }
  ki_gen *g = ki_gens(ki);
  mvcc_revision *r = ki_revs(ki);
  size_t drop_revs = p.first;
  if (p.at >= 0) {
    if (keep) keep(arg, r[p.first + (size_t)p.at]);
    drop_revs += (size_t)p.at;
    g[p.gen].nrevs -= (uint32_t)p.at;
  }
  if (p.gen == 0 && drop_revs == 0) return;
  size_t ngens = ki->ngens - p.gen, nrevs = ki->nrevs - drop_revs;
  memmove(g, g + p.gen, ngens * sizeof(ki_gen));
  memmove(g + ngens, r + drop_revs, nrevs * sizeof(mvcc_revision));
  ki->ngens = (uint32_t)ngens;
  ki->nrevs = (uint32_t)nrevs;
  shrink(kip);
}

void mvcc_key_index_keep(const mvcc_key_index *ki, int64_t rev, void (*keep)(void *arg, mvcc_revision r),
                         void *arg) {
  if (ki->ngens == 0 || !keep) return;
  compact_point p = find_compact_point(ki, rev);
  if (p.gen == ki->ngens || p.at < 0) return;
  const ki_gen *g = &ki_gens(ki)[p.gen];
  bool closed = p.gen != (size_t)ki->ngens - 1 || ki->closed;
  if (closed && (size_t)p.at == g->nrevs - 1) return; /* a tombstone is not kept for the hash */
  keep(arg, ki_revs(ki)[p.first + (size_t)p.at]);
}

size_t mvcc_key_index_bytes(const mvcc_key_index *ki) {
  return key_area(ki->keylen) + ki->cap;
}

size_t mvcc_key_index_generations(const mvcc_key_index *ki) {
  return (size_t)ki->ngens + ki->closed;
}

void mvcc_key_index_generation(const mvcc_key_index *ki, size_t gi, mvcc_revision *created, int64_t *ver,
                               const mvcc_revision **revs, size_t *nrevs) {
  *created = (mvcc_revision){0, 0};
  *ver = 0;
  *revs = NULL;
  *nrevs = 0;
  if (gi >= ki->ngens) return; /* etcd's trailing empty generation */
  const ki_gen *g = ki_gens(ki);
  size_t first = 0;
  for (size_t i = 0; i < gi; i++) first += g[i].nrevs;
  *created = g[gi].created;
  *ver = g[gi].ver;
  *revs = ki_revs(ki) + first;
  *nrevs = g[gi].nrevs;
}
