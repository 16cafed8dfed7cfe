/* services/store/engine/revstore.c — see revstore.h. */
#include "services/store/engine/revstore.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct rev_slot {
  uint32_t n;   /* records in this main revision */
  uint32_t cap; /* > 1: `many` is in use */
  union {
    kv_record *one;
    kv_record **many;
  } u;
} rev_slot;

typedef struct old_record {
  mvcc_revision rev;
  kv_record *rec;
} old_record;

struct revstore {
  /* Above the compacted revision: dense slots; slots[i] is main base + i, live
   * from index start to len. */
  rev_slot *slots;
  size_t start, len, cap;
  int64_t base;
  int64_t last; /* newest main revision appended (0: none) */
  /* At or below `compacted`: what compaction kept, sorted by revision. */
  old_record *old;
  size_t old_n, old_cap;
  int64_t compacted;
  size_t bytes;
  size_t records;
  size_t value_resident, value_on_disk;
};

/* The header and key of a record with `tail` bytes after the key (the value,
 * or a kv_value_ref when on_disk). */
static kv_record *record_alloc(const uint8_t *key, size_t key_len, size_t tail, size_t value_len,
                               int64_t create_revision, int64_t version, int64_t lease,
                               bool tombstone, bool on_disk) {
  kv_record *r = malloc(sizeof(*r) + key_len + tail);
  if (!r) return NULL;
  r->create_revision = create_revision;
  r->version = version;
  r->lease = lease;
  r->key_len = (uint32_t)key_len;
  r->value_len = (uint32_t)value_len;
  r->tombstone = tombstone;
  r->keep = false;
  r->on_disk = on_disk;
  if (key_len) memcpy(r->data, key, key_len);
  return r;
}

kv_record *kv_record_new(const uint8_t *key, size_t key_len, const uint8_t *value, size_t value_len,
                         int64_t create_revision, int64_t version, int64_t lease, bool tombstone) {
  kv_record *r = record_alloc(key, key_len, value_len, value_len, create_revision, version, lease,
                              tombstone, false);
  if (r && value_len) memcpy(r->data + key_len, value, value_len);
  return r;
}

kv_record *kv_record_new_on_disk(const uint8_t *key, size_t key_len, size_t value_len,
                                 value_file *file, uint64_t off, int64_t create_revision,
                                 int64_t version, int64_t lease) {
  kv_record *r = record_alloc(key, key_len, sizeof(kv_value_ref), value_len, create_revision,
                              version, lease, false, true);
  if (!r) return NULL;
  value_file_ref(file);
  kv_value_ref ref = {file, off};
  memcpy(r->data + key_len, &ref, sizeof(ref));
  return r;
}

void kv_record_free(kv_record *r) {
  if (!r) return;
  if (r->on_disk) value_file_unref(kv_record_ref(r).file);
  free(r);
}

int kv_record_read_value(const kv_record *r, uint8_t *dst) {
  if (r->value_len == 0) return 0;
  if (!r->on_disk) {
    memcpy(dst, r->data + r->key_len, r->value_len);
    return 0;
  }
  kv_value_ref ref = kv_record_ref(r);
  return value_file_read(ref.file, ref.off, dst, r->value_len);
}

const uint8_t *kv_record_value_bytes(const kv_record *r, uint8_t **owned, int *rc) {
  *owned = NULL;
  *rc = 0;
  if (!r->on_disk) return r->data + r->key_len;
  uint8_t *b = malloc(r->value_len ? r->value_len : 1);
  if (!b) {
    *rc = -ENOMEM;
    return NULL;
  }
  if ((*rc = kv_record_read_value(r, b)) < 0) {
    free(b);
    return NULL;
  }
  *owned = b;
  return b;
}

static size_t record_bytes(const kv_record *r) {
  return sizeof(*r) + r->key_len + (r->on_disk ? sizeof(kv_value_ref) : r->value_len);
}

/* Counters, as a record enters (+1) or leaves (-1) the store. */
static void account(revstore *rs, const kv_record *r, int dir) {
  size_t b = record_bytes(r);
  size_t *v = r->on_disk ? &rs->value_on_disk : &rs->value_resident;
  if (dir > 0) {
    rs->bytes += b;
    rs->records++;
    *v += r->value_len;
  } else {
    rs->bytes -= b;
    rs->records--;
    *v -= r->value_len;
  }
}

revstore *revstore_create(void) {
  return calloc(1, sizeof(revstore));
}

static kv_record **slot_records(rev_slot *s) { return s->cap > 1 ? s->u.many : &s->u.one; }

static void slot_free(rev_slot *s) {
  kv_record **recs = slot_records(s);
  for (uint32_t i = 0; i < s->n; i++) kv_record_free(recs[i]);
  if (s->cap > 1) free(s->u.many);
  memset(s, 0, sizeof(*s));
}

void revstore_destroy(revstore *rs) {
  if (!rs) return;
  for (size_t i = rs->start; i < rs->len; i++) slot_free(&rs->slots[i]);
  for (size_t i = 0; i < rs->old_n; i++) kv_record_free(rs->old[i].rec);
  free(rs->slots);
  free(rs->old);
  free(rs);
}

int64_t revstore_last_main(const revstore *rs) { return rs->last; }

static int add_slot(revstore *rs) {
  if (rs->len == rs->cap) {
    if (rs->start > rs->cap / 2) {
      /* Half the vector is compacted away: slide instead of growing. */
      memmove(rs->slots, rs->slots + rs->start, (rs->len - rs->start) * sizeof(*rs->slots));
      rs->base += (int64_t)rs->start;
      rs->len -= rs->start;
      rs->start = 0;
    } else {
      size_t ncap = rs->cap ? rs->cap * 2 : 1024;
      rev_slot *p = realloc(rs->slots, ncap * sizeof(*p));
      if (!p) return -ENOMEM;
      rs->slots = p;
      rs->cap = ncap;
    }
  }
  memset(&rs->slots[rs->len], 0, sizeof(rev_slot));
  rs->len++;
  return 0;
}

int revstore_append(revstore *rs, mvcc_revision rev, kv_record *rec) {
  bool empty = rs->start == rs->len;
  if (rev.sub == 0 && (rev.main == rs->last + 1 || (rs->last == 0 && rev.main > 0))) {
    if (empty) {
      /* Nothing dense is live: the vector restarts at this revision. */
      rs->start = rs->len = 0;
      rs->base = rev.main;
    }
    int rc = add_slot(rs);
    if (rc < 0) return rc;
    rs->last = rev.main;
  } else if (!(rev.main == rs->last && !empty && rs->base + (int64_t)rs->len - 1 == rev.main)) {
    return -EINVAL;
  }
  rev_slot *s = &rs->slots[rs->len - 1];
  if ((int64_t)s->n != rev.sub) return -EINVAL;
  if (s->n == 0) {
    s->u.one = rec;
  } else {
    if (s->cap <= 1) {
      kv_record **many = malloc(4 * sizeof(*many));
      if (!many) return -ENOMEM;
      many[0] = s->u.one;
      s->u.many = many;
      s->cap = 4;
    } else if (s->n == s->cap) {
      kv_record **many = realloc(s->u.many, (size_t)s->cap * 2 * sizeof(*many));
      if (!many) return -ENOMEM;
      s->u.many = many;
      s->cap *= 2;
    }
    s->u.many[s->n] = rec;
  }
  s->n++;
  account(rs, rec, 1);
  return 0;
}

static int old_push(revstore *rs, mvcc_revision rev, kv_record *rec) {
  if (rs->old_n == rs->old_cap) {
    size_t ncap = rs->old_cap ? rs->old_cap * 2 : 64;
    old_record *p = realloc(rs->old, ncap * sizeof(*p));
    if (!p) return -ENOMEM;
    rs->old = p;
    rs->old_cap = ncap;
  }
  rs->old[rs->old_n++] = (old_record){rev, rec};
  return 0;
}

int revstore_restore_compacted(revstore *rs, mvcc_revision rev, kv_record *rec, int64_t compacted) {
  if (rs->len > 0 || rev.main > compacted) return -EINVAL;
  if (rs->old_n && mvcc_revision_cmp(rs->old[rs->old_n - 1].rev, rev) >= 0) return -EINVAL;
  int rc = old_push(rs, rev, rec);
  if (rc < 0) return rc;
  rs->compacted = compacted;
  if (compacted > rs->last) rs->last = compacted;
  account(rs, rec, 1);
  return 0;
}

static rev_slot *slot_at(const revstore *rs, int64_t main) {
  if (main < rs->base) return NULL;
  size_t i = (size_t)(main - rs->base);
  if (i < rs->start || i >= rs->len) return NULL;
  return &rs->slots[i];
}

static const old_record *old_find(const revstore *rs, mvcc_revision rev) {
  size_t lo = 0, hi = rs->old_n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = mvcc_revision_cmp(rs->old[mid].rev, rev);
    if (c == 0) return &rs->old[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid;
  }
  return NULL;
}

kv_record *revstore_get(const revstore *rs, mvcc_revision rev) {
  if (rev.main <= rs->compacted) {
    const old_record *o = old_find(rs, rev);
    return o ? o->rec : NULL;
  }
  rev_slot *s = slot_at(rs, rev.main);
  if (!s || rev.sub < 0 || rev.sub >= (int64_t)s->n) return NULL;
  return slot_records(s)[rev.sub];
}

int revstore_each(const revstore *rs, int64_t from_main, int64_t to_main,
                  int (*fn)(void *arg, mvcc_revision rev, const kv_record *rec), void *arg) {
  for (size_t i = 0; i < rs->old_n; i++) {
    if (rs->old[i].rev.main <= from_main) continue;
    if (rs->old[i].rev.main > to_main) return 0;
    int rc = fn(arg, rs->old[i].rev, rs->old[i].rec);
    if (rc) return rc;
  }
  for (size_t i = rs->start; i < rs->len; i++) {
    int64_t m = rs->base + (int64_t)i;
    if (m <= from_main) continue;
    if (m > to_main) break;
    rev_slot *s = &rs->slots[i];
    kv_record **recs = slot_records(s);
    for (uint32_t k = 0; k < s->n; k++) {
      int rc = fn(arg, (mvcc_revision){m, k}, recs[k]);
      if (rc) return rc;
    }
  }
  return 0;
}

int revstore_each_from(const revstore *rs, mvcc_revision from, int64_t to_main,
                       int (*fn)(void *arg, mvcc_revision rev, const kv_record *rec), void *arg) {
  size_t lo = 0, hi = rs->old_n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (mvcc_revision_cmp(rs->old[mid].rev, from) < 0) lo = mid + 1;
    else hi = mid;
  }
  for (size_t i = lo; i < rs->old_n; i++) {
    if (rs->old[i].rev.main > to_main) return 0;
    int rc = fn(arg, rs->old[i].rev, rs->old[i].rec);
    if (rc) return rc;
  }
  size_t i = rs->start;
  if (from.main > rs->base + (int64_t)rs->start) {
    int64_t d = from.main - rs->base;
    if (d >= (int64_t)rs->len) return 0;
    i = (size_t)d;
  }
  for (; i < rs->len; i++) {
    int64_t m = rs->base + (int64_t)i;
    if (m > to_main) break;
    rev_slot *s = &rs->slots[i];
    kv_record **recs = slot_records(s);
    uint32_t k = m == from.main && from.sub > 0 ? (uint32_t)from.sub : 0;
    for (; k < s->n; k++) {
      int rc = fn(arg, (mvcc_revision){m, k}, recs[k]);
      if (rc) return rc;
    }
  }
  return 0;
}

kv_record *revstore_replace(revstore *rs, mvcc_revision rev, kv_record *rec) {
  kv_record **ref = NULL;
  if (rev.main <= rs->compacted) {
    const old_record *o = old_find(rs, rev);
    if (o) ref = &rs->old[o - rs->old].rec;
  } else {
    rev_slot *s = slot_at(rs, rev.main);
    if (s && rev.sub >= 0 && rev.sub < (int64_t)s->n) ref = &slot_records(s)[rev.sub];
  }
  if (!ref) return NULL;
  kv_record *old = *ref;
  rec->keep = old->keep;
  account(rs, old, -1);
  account(rs, rec, 1);
  *ref = rec;
  return old;
}

void revstore_mark_keep(revstore *rs, mvcc_revision rev) {
  kv_record *r = revstore_get(rs, rev);
  if (r) r->keep = true;
}

void revstore_compact(revstore *rs, int64_t rev) {
  if (rev <= rs->compacted) return;
  /* Survivors of earlier compactions, then the slots now at or below rev, in
   * revision order: the kept ones form the new sorted array. */
  old_record *prev = rs->old;
  size_t prev_n = rs->old_n;
  rs->old = NULL;
  rs->old_n = rs->old_cap = 0;
  for (size_t i = 0; i < prev_n; i++) {
    kv_record *r = prev[i].rec;
    if (r->keep && old_push(rs, prev[i].rev, r) == 0) {
      r->keep = false;
    } else {
      account(rs, r, -1);
      kv_record_free(r);
    }
  }
  free(prev);
  while (rs->start < rs->len && rs->base + (int64_t)rs->start <= rev) {
    rev_slot *s = &rs->slots[rs->start];
    kv_record **recs = slot_records(s);
    for (uint32_t k = 0; k < s->n; k++) {
      kv_record *r = recs[k];
      mvcc_revision rv = {rs->base + (int64_t)rs->start, k};
      if (r->keep && old_push(rs, rv, r) == 0) {
        r->keep = false;
      } else {
        account(rs, r, -1);
        kv_record_free(r);
      }
    }
    if (s->cap > 1) free(s->u.many);
    memset(s, 0, sizeof(*s));
    rs->start++;
  }
  rs->compacted = rev;
}

size_t revstore_bytes(const revstore *rs) { return rs->bytes; }
size_t revstore_records(const revstore *rs) { return rs->records; }
size_t revstore_value_bytes_resident(const revstore *rs) { return rs->value_resident; }
size_t revstore_value_bytes_on_disk(const revstore *rs) { return rs->value_on_disk; }
