/* services/store/engine/kv.c — see kv.h. Rules cited as "etcd:" were observed
 * against etcd 3.4.23 by e2e/store's conformance suite. */
#include "services/store/engine/kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char KV_ERR_COMPACTED[] = "etcdserver: mvcc: required revision has been compacted";
const char KV_ERR_FUTURE_REV[] = "etcdserver: mvcc: required revision is a future revision";
const char KV_ERR_EMPTY_KEY[] = "etcdserver: key is not provided";
const char KV_ERR_KEY_NOT_FOUND[] = "etcdserver: key not found";
const char KV_ERR_VALUE_PROVIDED[] = "etcdserver: value is provided";
const char KV_ERR_LEASE_PROVIDED[] = "etcdserver: lease is provided";
const char KV_ERR_LEASE_NOT_FOUND[] = "etcdserver: requested lease not found";
const char KV_ERR_DUPLICATE_KEY[] = "etcdserver: duplicate key given in txn request";
const char KV_ERR_TOO_MANY_OPS[] = "etcdserver: too many operations in txn request";
const char KV_ERR_VALUE_READ[] =
    "keel-store: cannot read a value from its snapshot file (I/O error, see the server log)";

struct kv {
  mvcc_index *index;
  revstore *revs;
  int64_t rev;         /* newest committed revision */
  int64_t compact_rev; /* 0: never compacted */
  kv_lease_hooks leases;
};

static int fail(kv_error *err, grpc_status_code code, const char *message) {
  if (err) {
    err->code = code;
    err->message = message;
  }
  return -1;
}

/* A failed internal step as the client sees it: an unreadable value (-EIO) or
 * out of memory. */
static int fail_rc(kv_error *err, int rc) {
  if (rc == -EIO) return fail(err, GRPC_STATUS_INTERNAL, KV_ERR_VALUE_READ);
  return fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
}

/* The errno a kv_error stands for (to pass a nested failure up). */
static int err_rc(const kv_error *err) {
  return err->code == GRPC_STATUS_INTERNAL && err->message == KV_ERR_VALUE_READ ? -EIO : -ENOMEM;
}

kv *kv_create(void) {
  kv *k = calloc(1, sizeof(*k));
  if (!k) return NULL;
  k->index = mvcc_index_create();
  k->revs = revstore_create();
  k->rev = 1; /* etcd: a fresh store is at revision 1 */
  if (!k->index || !k->revs) {
    kv_destroy(k);
    return NULL;
  }
  return k;
}

void kv_destroy(kv *k) {
  if (!k) return;
  mvcc_index_destroy(k->index);
  revstore_destroy(k->revs);
  free(k);
}

void kv_set_lease_hooks(kv *k, const kv_lease_hooks *hooks) { k->leases = *hooks; }
int64_t kv_rev(const kv *k) { return k->rev; }
int64_t kv_compact_rev(const kv *k) { return k->compact_rev; }
size_t kv_key_count(const kv *k) { return mvcc_index_key_count(k->index); }
size_t kv_memory_bytes(const kv *k) {
  return mvcc_index_memory_bytes(k->index) + revstore_bytes(k->revs);
}
revstore *kv_revstore(kv *k) { return k->revs; }

static bool lease_exists(const kv *k, int64_t lease) {
  return lease == 0 || (k->leases.exists && k->leases.exists(k->leases.arg, lease));
}

/* ------------------------------------------------------------------ range */

int kv_fill_keyvalue(Mvccpb__KeyValue *out, const kv_record *rec, mvcc_revision mod, bool keys_only) {
  mvccpb__key_value__init(out);
  out->key.len = rec->key_len;
  out->key.data = malloc(rec->key_len ? rec->key_len : 1);
  if (!out->key.data) return -ENOMEM;
  memcpy(out->key.data, kv_record_key(rec), rec->key_len);
  out->mod_revision = mod.main;
  if (rec->tombstone) return 0; /* etcd: a DELETE event's kv holds only key and mod_revision */
  out->create_revision = rec->create_revision;
  out->version = rec->version;
  out->lease = rec->lease;
  if (!keys_only && rec->value_len) {
    /* Straight into the response: from memory, or a pread from the snapshot file. */
    out->value.data = malloc(rec->value_len);
    if (!out->value.data) return -ENOMEM;
    out->value.len = rec->value_len;
    if (kv_record_read_value(rec, out->value.data) < 0) return -EIO;
  }
  return 0;
}

typedef struct range_hit {
  const kv_record *rec;
  mvcc_revision mod;
  const uint8_t *value; /* sort by value only: the value bytes */
} range_hit;

typedef struct range_collect {
  const kv *kv;
  const Etcdserverpb__RangeRequest *req;
  range_hit *hits;
  size_t n, cap;
  int64_t count;  /* every key in the range */
  size_t fetch;   /* stop collecting past this many (0: all) */
  bool oom;
} range_collect;

static int range_visit(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod,
                       mvcc_revision created, int64_t version) {
  (void)key, (void)keylen, (void)created, (void)version;
  range_collect *rc = arg;
  rc->count++;
  if (rc->req->count_only) return 0;
  if (rc->fetch && rc->n >= rc->fetch) return 0; /* keep counting */
  const kv_record *rec = revstore_get(rc->kv->revs, mod);
  if (!rec) return 0;
  const Etcdserverpb__RangeRequest *r = rc->req;
  /* etcd prunes by these filters after fetching; count stays the range's. */
  if (r->max_mod_revision && mod.main > r->max_mod_revision) return 0;
  if (r->min_mod_revision && mod.main < r->min_mod_revision) return 0;
  if (r->max_create_revision && rec->create_revision > r->max_create_revision) return 0;
  if (r->min_create_revision && rec->create_revision < r->min_create_revision) return 0;
  if (rc->n == rc->cap) {
    size_t ncap = rc->cap ? rc->cap * 2 : 16;
    range_hit *p = realloc(rc->hits, ncap * sizeof(*p));
    if (!p) {
      rc->oom = true;
      return 1;
    }
    rc->hits = p;
    rc->cap = ncap;
  }
  rc->hits[rc->n].rec = rec;
  rc->hits[rc->n].mod = mod;
  rc->n++;
  return 0;
}

static int cmp_bytes(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static int64_t hit_field(const range_hit *h, int target) {
  switch (target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION: return h->rec->version;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE: return h->rec->create_revision;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD: return h->mod.main;
    default: return 0;
  }
}

/* qsort has no context argument and readers run concurrently: the comparator
 * reads its sort target from a thread-local. */
static __thread int tls_sort_target;

/* Sorted by the target, in the requested order; ties always by key ascending,
 * as etcd's stable sort over key-ordered results leaves them. */
static __thread int tls_sort_descend;

static int cmp_hits(const void *pa, const void *pb) {
  const range_hit *a = pa, *b = pb;
  int c;
  switch (tls_sort_target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY:
      c = cmp_bytes(kv_record_key(a->rec), a->rec->key_len, kv_record_key(b->rec), b->rec->key_len);
      return tls_sort_descend ? -c : c;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE:
      c = cmp_bytes(a->value, a->rec->value_len, b->value, b->rec->value_len);
      break;
    default: {
      int64_t x = hit_field(a, tls_sort_target), y = hit_field(b, tls_sort_target);
      c = x < y ? -1 : x > y ? 1 : 0;
    }
  }
  if (tls_sort_descend) c = -c;
  if (c) return c;
  return cmp_bytes(kv_record_key(a->rec), a->rec->key_len, kv_record_key(b->rec), b->rec->key_len);
}

/* Revision checks shared by Range and watch: 0 or -1 with err. */
static int check_read_rev(const kv *k, int64_t rev, int64_t current, kv_error *err) {
  if (rev > current) return fail(err, GRPC_STATUS_OUT_OF_RANGE, KV_ERR_FUTURE_REV);
  if (rev > 0 && rev < k->compact_rev) return fail(err, GRPC_STATUS_OUT_OF_RANGE, KV_ERR_COMPACTED);
  return 0;
}

/* Everything that can refuse a range, checked before anything runs (a txn
 * validates its ranges with this before its first write). */
static int check_range(const kv *k, const Etcdserverpb__RangeRequest *req, int64_t current,
                       kv_error *err) {
  if (req->key.len == 0) return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
  if ((int)req->sort_order < 0 || req->sort_order > ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND)
    return fail(err, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: invalid sort order");
  if ((int)req->sort_target < 0 || req->sort_target > ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE)
    return fail(err, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: invalid sort target");
  return check_read_rev(k, req->revision, current, err);
}

int kv_range(const kv *k, const Etcdserverpb__RangeRequest *req, int64_t current,
             Etcdserverpb__RangeResponse *out, kv_error *err) {
  etcdserverpb__range_response__init(out);
  if (check_range(k, req, current, err) < 0) return -1;
  int64_t at = req->revision > 0 ? req->revision : current;

  int sort_order = req->sort_order;
  /* etcd: results come sorted by key; any other target sorts ascending by default. */
  if (sort_order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE &&
      req->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY)
    sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  bool filtered = req->min_mod_revision || req->max_mod_revision || req->min_create_revision ||
                  req->max_create_revision;
  range_collect rc = {.kv = k, .req = req};
  /* Without sorting or filters only limit+1 hits are needed (the +1 sets `more`). */
  if (req->limit > 0 && sort_order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE && !filtered)
    rc.fetch = (size_t)req->limit + 1;
  mvcc_index_range(k->index, req->key.data, req->key.len, req->range_end.data, req->range_end.len, at,
                   range_visit, &rc);
  if (rc.oom) {
    free(rc.hits);
    return fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
  }
  if (sort_order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE && rc.n > 1) {
    uint8_t **owned = NULL;
    if (req->sort_target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE) {
      /* Values on disk are read once each for the sort, then dropped. */
      owned = calloc(rc.n, sizeof(*owned));
      int vrc = owned ? 0 : -ENOMEM;
      for (size_t i = 0; vrc == 0 && i < rc.n; i++)
        rc.hits[i].value = kv_record_value_bytes(rc.hits[i].rec, &owned[i], &vrc);
      if (vrc < 0) {
        for (size_t i = 0; owned && i < rc.n; i++) free(owned[i]);
        free(owned);
        free(rc.hits);
        return fail_rc(err, vrc);
      }
    }
    tls_sort_target = req->sort_target;
    tls_sort_descend = sort_order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    /* Results arrive in key order: ascending by key needs no sort. */
    if (!(!tls_sort_descend && req->sort_target == ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY))
      qsort(rc.hits, rc.n, sizeof(*rc.hits), cmp_hits);
    for (size_t i = 0; owned && i < rc.n; i++) free(owned[i]);
    free(owned);
  }
  size_t n = rc.n;
  if (req->limit > 0 && n > (size_t)req->limit) {
    n = (size_t)req->limit;
    out->more = true;
  }
  out->count = rc.count;
  if (n > 0) {
    out->kvs = calloc(n, sizeof(*out->kvs));
    if (!out->kvs) {
      free(rc.hits);
      return fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
    }
    for (size_t i = 0; i < n; i++) {
      out->kvs[i] = malloc(sizeof(Mvccpb__KeyValue));
      int frc = out->kvs[i] ? kv_fill_keyvalue(out->kvs[i], rc.hits[i].rec, rc.hits[i].mod, req->keys_only)
                            : -ENOMEM;
      if (frc < 0) {
        if (out->kvs[i]) {
          out->n_kvs = i + 1;
        } else {
          out->n_kvs = i;
        }
        free(rc.hits);
        return fail_rc(err, frc);
      }
      out->n_kvs = i + 1;
    }
  }
  free(rc.hits);
  return 0;
}

/* ------------------------------------------------------------------ writes */

void kv_write_begin(kv *k, kv_write *w) {
  memset(w, 0, sizeof(*w));
  w->kv = k;
  w->main = k->rev + 1;
}

int64_t kv_write_commit(kv_write *w) {
  if (w->nchanges == 0) return 0;
  w->kv->rev = w->main;
  return w->main;
}

void kv_write_release(kv_write *w) {
  free(w->changes);
  w->changes = NULL;
  w->nchanges = w->cap = 0;
}

/* The revision a read inside this write sees: its own changes included. */
static int64_t write_read_rev(const kv_write *w) { return w->nchanges ? w->main : w->kv->rev; }

static int record_change(kv_write *w, bool is_delete, const kv_record *rec, mvcc_revision rev) {
  if (w->nchanges == w->cap) {
    size_t ncap = w->cap ? w->cap * 2 : 4;
    kv_change *p = realloc(w->changes, ncap * sizeof(*p));
    if (!p) return -ENOMEM;
    w->changes = p;
    w->cap = ncap;
  }
  w->changes[w->nchanges++] = (kv_change){.is_delete = is_delete, .rev = rev, .rec = rec};
  return 0;
}

/* The live record of key as of rev, or NULL. */
static const kv_record *live_record(const kv *k, const uint8_t *key, size_t keylen, int64_t rev,
                                    mvcc_revision *mod_out) {
  mvcc_revision mod, created;
  int64_t version;
  if (mvcc_index_get(k->index, key, keylen, rev, &mod, &created, &version) < 0) return NULL;
  if (mod_out) *mod_out = mod;
  return revstore_get(k->revs, mod);
}

/* Writes a put at rev (already validated); prev is the key's live record
 * before it. *out gets the new record. */
static int write_put(kv *k, mvcc_revision rev, const uint8_t *key, size_t keylen,
                     const uint8_t *value, size_t valuelen, int64_t lease, const kv_record *prev,
                     const kv_record **out) {
  int64_t create = prev ? prev->create_revision : rev.main;
  int64_t version = prev ? prev->version + 1 : 1;
  kv_record *rec = kv_record_new(key, keylen, value, valuelen, create, version, lease, false);
  if (!rec) return -ENOMEM;
  int rc = revstore_append(k->revs, rev, rec);
  if (rc < 0) {
    kv_record_free(rec);
    return rc;
  }
  rc = mvcc_index_put(k->index, key, keylen, rev);
  if (rc < 0) return rc; /* cannot happen for increasing revisions */
  if (prev && prev->lease && prev->lease != lease && k->leases.detach)
    k->leases.detach(k->leases.arg, prev->lease, key, keylen);
  if (lease && (!prev || prev->lease != lease) && k->leases.attach)
    k->leases.attach(k->leases.arg, lease, key, keylen);
  *out = rec;
  return 0;
}

static int write_delete(kv *k, mvcc_revision rev, const uint8_t *key, size_t keylen,
                        const kv_record *prev, const kv_record **out) {
  kv_record *tomb = kv_record_new(key, keylen, NULL, 0, 0, 0, 0, true);
  if (!tomb) return -ENOMEM;
  int rc = revstore_append(k->revs, rev, tomb);
  if (rc < 0) {
    kv_record_free(tomb);
    return rc;
  }
  rc = mvcc_index_tombstone(k->index, key, keylen, rev);
  if (rc < 0) return rc;
  if (prev && prev->lease && k->leases.detach) k->leases.detach(k->leases.arg, prev->lease, key, keylen);
  *out = tomb;
  return 0;
}

static int apply_put(kv_write *w, const uint8_t *key, size_t keylen, const uint8_t *value,
                     size_t valuelen, int64_t lease, const kv_record *prev) {
  mvcc_revision rev = {w->main, (int64_t)w->nchanges};
  const kv_record *rec;
  int rc = write_put(w->kv, rev, key, keylen, value, valuelen, lease, prev, &rec);
  return rc < 0 ? rc : record_change(w, false, rec, rev);
}

static int apply_delete_one(kv_write *w, const uint8_t *key, size_t keylen, const kv_record *prev) {
  mvcc_revision rev = {w->main, (int64_t)w->nchanges};
  const kv_record *rec;
  int rc = write_delete(w->kv, rev, key, keylen, prev, &rec);
  return rc < 0 ? rc : record_change(w, true, rec, rev);
}

static int check_put(const kv_write *w, const Etcdserverpb__PutRequest *req, kv_error *err) {
  const kv *k = w->kv;
  if (req->key.len == 0) return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
  if (req->ignore_value && req->value.len != 0)
    return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_VALUE_PROVIDED);
  if (req->ignore_lease && req->lease != 0)
    return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_LEASE_PROVIDED);
  if (req->ignore_value || req->ignore_lease) {
    if (!live_record(k, req->key.data, req->key.len, write_read_rev(w), NULL))
      return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_KEY_NOT_FOUND);
  }
  if (!req->ignore_lease && !lease_exists(k, req->lease))
    return fail(err, GRPC_STATUS_NOT_FOUND, KV_ERR_LEASE_NOT_FOUND);
  return 0;
}

static int do_put(kv_write *w, const Etcdserverpb__PutRequest *req, Etcdserverpb__PutResponse *out) {
  kv *k = w->kv;
  mvcc_revision prev_mod;
  const kv_record *prev = live_record(k, req->key.data, req->key.len, write_read_rev(w), &prev_mod);
  const uint8_t *value = req->value.data;
  size_t valuelen = req->value.len;
  uint8_t *owned = NULL;
  int rc = 0;
  if (req->ignore_value && prev) {
    value = kv_record_value_bytes(prev, &owned, &rc);
    if (!value) return rc;
    valuelen = prev->value_len;
  }
  /* etcd: ignore_lease keeps the key's lease; a put without it sets the given one
   * (so ignore_value alone drops the old lease). */
  int64_t lease = req->ignore_lease && prev ? prev->lease : req->lease;
  if (req->prev_kv && prev) {
    out->prev_kv = malloc(sizeof(Mvccpb__KeyValue));
    rc = out->prev_kv ? kv_fill_keyvalue(out->prev_kv, prev, prev_mod, false) : -ENOMEM;
  }
  /* Every read is done before the write: a failed one writes nothing. The value
   * may point into prev, which stays alive: records are only freed by
   * compaction, and replaced only under the write lock this write holds. */
  if (rc == 0) rc = apply_put(w, req->key.data, req->key.len, value, valuelen, lease, prev);
  free(owned);
  return rc;
}

int kv_put(kv_write *w, const Etcdserverpb__PutRequest *req, Etcdserverpb__PutResponse *out,
           kv_error *err) {
  etcdserverpb__put_response__init(out);
  if (check_put(w, req, err) < 0) return -1;
  int rc = do_put(w, req, out);
  if (rc < 0) return fail_rc(err, rc);
  return 0;
}

typedef struct key_list {
  struct {
    const kv_record *rec;
    mvcc_revision mod;
  } *items;
  size_t n, cap;
  bool oom;
} key_list;

static int collect_live(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod,
                        mvcc_revision created, int64_t version) {
  (void)key, (void)keylen, (void)created, (void)version;
  key_list *l = arg;
  if (l->n == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 8;
    void *p = realloc(l->items, ncap * sizeof(*l->items));
    if (!p) {
      l->oom = true;
      return 1;
    }
    l->items = p;
    l->cap = ncap;
  }
  l->items[l->n].rec = NULL;
  l->items[l->n].mod = mod;
  l->n++;
  return 0;
}

static int do_delete_range(kv_write *w, const Etcdserverpb__DeleteRangeRequest *req,
                           Etcdserverpb__DeleteRangeResponse *out) {
  kv *k = w->kv;
  key_list l = {0};
  mvcc_index_range(k->index, req->key.data, req->key.len, req->range_end.data, req->range_end.len,
                   write_read_rev(w), collect_live, &l);
  if (l.oom) {
    free(l.items);
    return -ENOMEM;
  }
  if (req->prev_kv && l.n) {
    out->prev_kvs = calloc(l.n, sizeof(*out->prev_kvs));
    if (!out->prev_kvs) {
      free(l.items);
      return -ENOMEM;
    }
  }
  /* Every prev_kv is read before the first delete: a failed read writes nothing. */
  for (size_t i = 0; i < l.n; i++) {
    const kv_record *prev = revstore_get(k->revs, l.items[i].mod);
    l.items[i].rec = prev;
    if (!prev || !req->prev_kv) continue;
    Mvccpb__KeyValue *kvp = malloc(sizeof(*kvp));
    int rc = kvp ? kv_fill_keyvalue(kvp, prev, l.items[i].mod, false) : -ENOMEM;
    if (kvp) out->prev_kvs[out->n_prev_kvs++] = kvp;
    if (rc < 0) {
      free(l.items);
      return rc;
    }
  }
  for (size_t i = 0; i < l.n; i++) {
    const kv_record *prev = l.items[i].rec;
    if (!prev) continue;
    int rc = apply_delete_one(w, kv_record_key(prev), prev->key_len, prev);
    if (rc < 0) {
      free(l.items);
      return rc;
    }
    out->deleted++;
  }
  free(l.items);
  return 0;
}

int kv_delete_range(kv_write *w, const Etcdserverpb__DeleteRangeRequest *req,
                    Etcdserverpb__DeleteRangeResponse *out, kv_error *err) {
  etcdserverpb__delete_range_response__init(out);
  if (req->key.len == 0) return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
  int rc = do_delete_range(w, req, out);
  if (rc < 0) return fail_rc(err, rc);
  return 0;
}

int kv_delete_keys(kv_write *w, const uint8_t *const *keys, const size_t *keylens, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const kv_record *prev = live_record(w->kv, keys[i], keylens[i], write_read_rev(w), NULL);
    if (!prev) continue;
    int rc = apply_delete_one(w, keys[i], keylens[i], prev);
    if (rc < 0) return rc;
  }
  return 0;
}

const kv_record *kv_live(const kv *k, const uint8_t *key, size_t keylen, int64_t rev,
                         mvcc_revision *mod) {
  return live_record(k, key, keylen, rev, mod);
}

bool kv_in_range(const uint8_t *key, size_t keylen, const uint8_t *start, size_t startlen,
                 const uint8_t *end, size_t endlen) {
  int c = cmp_bytes(key, keylen, start, startlen);
  if (endlen == 0) return c == 0;
  if (c < 0) return false;
  if (endlen == 1 && end[0] == 0) return true;
  return cmp_bytes(key, keylen, end, endlen) < 0;
}

/* ------------------------------------------------------------------ txn */

/* etcd: a VALUE compare on a missing key is false whatever the operator; the
 * other targets see a missing key as 0. A compare over a range holds when it
 * holds for every key in it. */
typedef struct compare_ctx {
  const kv *kv;
  const Etcdserverpb__Compare *c;
  bool result;
  bool any;
  int *rc;
} compare_ctx;

/* *rc gets -EIO/-ENOMEM when a value on disk cannot be read (the result is
 * then meaningless: the txn fails). */
static bool compare_one(const Etcdserverpb__Compare *c, const kv_record *rec, mvcc_revision mod,
                        int *rc) {
  int cmp;
  if (c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) {
    if (!rec) return false;
    const uint8_t *want = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE
                              ? c->value.data
                              : NULL;
    size_t wantlen = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE ? c->value.len : 0;
    uint8_t *owned;
    const uint8_t *have = kv_record_value_bytes(rec, &owned, rc);
    if (!have) return false;
    cmp = cmp_bytes(have, rec->value_len, want, wantlen);
    free(owned);
  } else {
    /* target_union is a C union: a member only counts when it is the one the
     * target names; otherwise etcd reads the wanted value as 0. */
    int64_t have = 0, want = 0;
    switch (c->target) {
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        have = rec ? rec->version : 0;
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION) want = c->version;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        have = rec ? rec->create_revision : 0;
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION)
          want = c->create_revision;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        have = rec ? mod.main : 0;
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION)
          want = c->mod_revision;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        have = rec ? rec->lease : 0;
        if (c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE) want = c->lease;
        break;
      default:
        return false;
    }
    cmp = have < want ? -1 : have > want ? 1 : 0;
  }
  switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL: return cmp == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER: return cmp > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS: return cmp < 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL: return cmp != 0;
    default: return false;
  }
}

static int compare_visit(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod,
                         mvcc_revision created, int64_t version) {
  (void)key, (void)keylen, (void)created, (void)version;
  compare_ctx *cc = arg;
  cc->any = true;
  if (!compare_one(cc->c, revstore_get(cc->kv->revs, mod), mod, cc->rc)) {
    cc->result = false;
    return 1;
  }
  return 0;
}

static bool evaluate_compare(const kv *k, const Etcdserverpb__Compare *c, int64_t rev, int *rc) {
  if (c->range_end.len == 0) {
    mvcc_revision mod = {0, 0};
    const kv_record *rec = live_record(k, c->key.data, c->key.len, rev, &mod);
    return compare_one(c, rec, mod, rc);
  }
  compare_ctx cc = {.kv = k, .c = c, .result = true, .rc = rc};
  mvcc_index_range(k->index, c->key.data, c->key.len, c->range_end.data, c->range_end.len, rev,
                   compare_visit, &cc);
  /* etcd: an empty range compares like a missing key. */
  if (!cc.any) return compare_one(c, NULL, (mvcc_revision){0, 0}, rc);
  return cc.result;
}

static bool txn_succeeds(const kv *k, const Etcdserverpb__TxnRequest *t, int64_t rev, int *rc) {
  for (size_t i = 0; i < t->n_compare; i++)
    if (!evaluate_compare(k, t->compare[i], rev, rc) || *rc < 0) return false;
  return true;
}

/* ---- duplicate-key check (etcd's checkIntervals), per branch, before anything runs */

typedef struct interval {
  const uint8_t *key, *end;
  size_t keylen, endlen;
} interval;

typedef struct interval_set {
  interval *items;
  size_t n, cap;
} interval_set;

static int set_add(interval_set *s, const uint8_t *key, size_t keylen, const uint8_t *end, size_t endlen) {
  if (s->n == s->cap) {
    size_t ncap = s->cap ? s->cap * 2 : 8;
    interval *p = realloc(s->items, ncap * sizeof(*p));
    if (!p) return -ENOMEM;
    s->items = p;
    s->cap = ncap;
  }
  s->items[s->n++] = (interval){key, end, keylen, endlen};
  return 0;
}

/* Does the delete interval d cover key? end "\0" means every key >= key. */
static bool interval_has(const interval *d, const uint8_t *key, size_t keylen) {
  if (cmp_bytes(key, keylen, d->key, d->keylen) < 0) return false;
  if (d->endlen == 0) return cmp_bytes(key, keylen, d->key, d->keylen) == 0;
  if (d->endlen == 1 && d->end[0] == 0) return true;
  return cmp_bytes(key, keylen, d->end, d->endlen) < 0;
}

static bool puts_have(const interval_set *puts, const uint8_t *key, size_t keylen) {
  for (size_t i = 0; i < puts->n; i++)
    if (cmp_bytes(puts->items[i].key, puts->items[i].keylen, key, keylen) == 0) return true;
  return false;
}

static bool dels_cover(const interval_set *dels, const uint8_t *key, size_t keylen) {
  for (size_t i = 0; i < dels->n; i++)
    if (interval_has(&dels->items[i], key, keylen)) return true;
  return false;
}

/* etcd's checkIntervals, in its order: this level's deletes; then each nested
 * txn's puts (checked against what is collected so far; a key both branches
 * put is fine, they are exclusive) and deletes; then this level's puts, checked
 * against all of it. Collects into dels/puts; -1 on a duplicate. */
static int check_intervals(Etcdserverpb__RequestOp *const *ops, size_t n, interval_set *dels,
                           interval_set *puts, kv_error *err) {
  for (size_t i = 0; i < n; i++) {
    if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE) continue;
    const Etcdserverpb__DeleteRangeRequest *d = ops[i]->request_delete_range;
    if (set_add(dels, d->key.data, d->key.len, d->range_end.data, d->range_end.len) < 0) return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN) continue;
    const Etcdserverpb__TxnRequest *t = ops[i]->request_txn;
    interval_set td = {0}, tp = {0}, ed = {0}, ep = {0};
    int rc = check_intervals(t->success, t->n_success, &td, &tp, err);
    if (rc == 0) rc = check_intervals(t->failure, t->n_failure, &ed, &ep, err);
    for (size_t k = 0; rc == 0 && k < tp.n; k++) {
      if (puts_have(puts, tp.items[k].key, tp.items[k].keylen) ||
          dels_cover(dels, tp.items[k].key, tp.items[k].keylen))
        rc = fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_DUPLICATE_KEY);
      else if (set_add(puts, tp.items[k].key, tp.items[k].keylen, NULL, 0) < 0)
        rc = -1;
    }
    for (size_t k = 0; rc == 0 && k < ep.n; k++) {
      bool then_too = puts_have(&tp, ep.items[k].key, ep.items[k].keylen);
      if ((puts_have(puts, ep.items[k].key, ep.items[k].keylen) && !then_too) ||
          dels_cover(dels, ep.items[k].key, ep.items[k].keylen))
        rc = fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_DUPLICATE_KEY);
      else if (!then_too && set_add(puts, ep.items[k].key, ep.items[k].keylen, NULL, 0) < 0)
        rc = -1;
    }
    for (int b = 0; rc == 0 && b < 2; b++) {
      interval_set *bd = b ? &ed : &td;
      for (size_t k = 0; rc == 0 && k < bd->n; k++)
        if (set_add(dels, bd->items[k].key, bd->items[k].keylen, bd->items[k].end, bd->items[k].endlen) < 0)
          rc = -1;
    }
    free(td.items);
    free(tp.items);
    free(ed.items);
    free(ep.items);
    if (rc < 0) return -1;
  }
  for (size_t i = 0; i < n; i++) {
    if (ops[i]->request_case != ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT) continue;
    const Etcdserverpb__PutRequest *p = ops[i]->request_put;
    if (puts_have(puts, p->key.data, p->key.len) || dels_cover(dels, p->key.data, p->key.len))
      return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_DUPLICATE_KEY);
    if (set_add(puts, p->key.data, p->key.len, NULL, 0) < 0) return -1;
  }
  return 0;
}

static int check_txn_shape(const Etcdserverpb__TxnRequest *t, kv_error *err) {
  if (t->n_success > KV_MAX_TXN_OPS || t->n_failure > KV_MAX_TXN_OPS)
    return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_TOO_MANY_OPS);
  for (int branch = 0; branch < 2; branch++) {
    Etcdserverpb__RequestOp *const *ops = branch ? t->failure : t->success;
    size_t n = branch ? t->n_failure : t->n_success;
    for (size_t i = 0; i < n; i++) {
      switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
          if (ops[i]->request_range->key.len == 0)
            return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
          if (ops[i]->request_put->key.len == 0)
            return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
          if (ops[i]->request_delete_range->key.len == 0)
            return fail(err, GRPC_STATUS_INVALID_ARGUMENT, KV_ERR_EMPTY_KEY);
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
          if (check_txn_shape(ops[i]->request_txn, err) < 0) return -1;
          break;
        default:
          return fail(err, GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: unknown request in txn");
      }
    }
  }
  interval_set dels = {0}, puts = {0};
  int rc = 0;
  for (int branch = 0; branch < 2 && rc == 0; branch++) {
    dels.n = puts.n = 0;
    rc = check_intervals(branch ? t->failure : t->success, branch ? t->n_failure : t->n_success,
                         &dels, &puts, err);
  }
  free(dels.items);
  free(puts.items);
  return rc;
}

/* etcd checks the chosen path's puts (leases, ignore_*) and ranges (revisions)
 * before applying any of it. Compares of nested txns are all evaluated first,
 * against the state before the txn. `path` records the branch per txn, in
 * depth-first order. */
typedef struct txn_path {
  bool *taken;
  size_t n, cap;
} txn_path;

static int path_push(txn_path *p, bool v) {
  if (p->n == p->cap) {
    size_t ncap = p->cap ? p->cap * 2 : 8;
    bool *q = realloc(p->taken, ncap);
    if (!q) return -ENOMEM;
    p->taken = q;
    p->cap = ncap;
  }
  p->taken[p->n++] = v;
  return 0;
}

static int choose_path(const kv_write *w, const Etcdserverpb__TxnRequest *t, txn_path *p, kv_error *err) {
  int crc = 0;
  bool ok = txn_succeeds(w->kv, t, write_read_rev(w), &crc);
  if (crc < 0) return fail_rc(err, crc);
  if (path_push(p, ok) < 0) return fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "etcdserver: out of memory");
  Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  for (size_t i = 0; i < n; i++) {
    switch (ops[i]->request_case) {
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        if (check_put(w, ops[i]->request_put, err) < 0) return -1;
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        /* The revision a range sees can only grow during the txn, so a range
         * valid now stays valid when it runs. */
        if (check_range(w->kv, ops[i]->request_range, write_read_rev(w), err) < 0) return -1;
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        if (choose_path(w, ops[i]->request_txn, p, err) < 0) return -1;
        break;
      default:
        break;
    }
  }
  return 0;
}

static Etcdserverpb__ResponseHeader *header_at(int64_t rev) {
  Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));
  if (!h) return NULL;
  etcdserverpb__response_header__init(h);
  h->revision = rev;
  return h;
}

static int apply_txn(kv_write *w, const Etcdserverpb__TxnRequest *t, const txn_path *p, size_t *pos,
                     Etcdserverpb__TxnResponse *out) {
  bool ok = p->taken[(*pos)++];
  out->succeeded = ok;
  Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  if (n == 0) return 0;
  out->responses = calloc(n, sizeof(*out->responses));
  if (!out->responses) return -ENOMEM;
  for (size_t i = 0; i < n; i++) {
    Etcdserverpb__ResponseOp *r = malloc(sizeof(*r));
    if (!r) return -ENOMEM;
    etcdserverpb__response_op__init(r);
    out->responses[out->n_responses++] = r;
    kv_error err;
    switch (ops[i]->request_case) {
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE: {
        Etcdserverpb__RangeResponse *rr = malloc(sizeof(*rr));
        if (!rr) return -ENOMEM;
        r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
        r->response_range = rr;
        if (kv_range(w->kv, ops[i]->request_range, write_read_rev(w), rr, &err) < 0) return err_rc(&err);
        rr->header = header_at(write_read_rev(w));
        break;
      }
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT: {
        Etcdserverpb__PutResponse *pr = malloc(sizeof(*pr));
        if (!pr) return -ENOMEM;
        etcdserverpb__put_response__init(pr);
        r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
        r->response_put = pr;
        int prc = do_put(w, ops[i]->request_put, pr);
        if (prc < 0) return prc;
        pr->header = header_at(write_read_rev(w));
        break;
      }
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
        Etcdserverpb__DeleteRangeResponse *dr = malloc(sizeof(*dr));
        if (!dr) return -ENOMEM;
        etcdserverpb__delete_range_response__init(dr);
        r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
        r->response_delete_range = dr;
        int drc = do_delete_range(w, ops[i]->request_delete_range, dr);
        if (drc < 0) return drc;
        dr->header = header_at(write_read_rev(w));
        break;
      }
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN: {
        Etcdserverpb__TxnResponse *tr = malloc(sizeof(*tr));
        if (!tr) return -ENOMEM;
        etcdserverpb__txn_response__init(tr);
        r->response_case = ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN;
        r->response_txn = tr;
        /* etcd: a nested txn's own header stays empty. */
        tr->header = header_at(0);
        if (!tr->header) return -ENOMEM;
        int trc = apply_txn(w, ops[i]->request_txn, p, pos, tr);
        if (trc < 0) return trc;
        break;
      }
      default:
        break;
    }
  }
  return 0;
}

int kv_txn(kv_write *w, const Etcdserverpb__TxnRequest *req, Etcdserverpb__TxnResponse *out,
           kv_error *err) {
  etcdserverpb__txn_response__init(out);
  if (check_txn_shape(req, err) < 0) return -1;
  txn_path p = {0};
  if (choose_path(w, req, &p, err) < 0) {
    free(p.taken);
    return -1;
  }
  size_t pos = 0;
  int rc = apply_txn(w, req, &p, &pos, out);
  free(p.taken);
  if (rc < 0) return fail_rc(err, rc);
  return 0;
}

/* ------------------------------------------------------------------ compaction, recovery */

int kv_compact_check(const kv *k, int64_t rev, kv_error *err) {
  /* etcd: Compact(0) on a never-compacted store succeeds; otherwise rev <= the
   * compacted revision is "compacted". */
  if (rev <= k->compact_rev && !(k->compact_rev == 0 && rev <= 0))
    return fail(err, GRPC_STATUS_OUT_OF_RANGE, KV_ERR_COMPACTED);
  if (rev > k->rev) return fail(err, GRPC_STATUS_OUT_OF_RANGE, KV_ERR_FUTURE_REV);
  return 0;
}

static void keep_rev(void *arg, mvcc_revision r) { revstore_mark_keep(arg, r); }

void kv_compact(kv *k, int64_t rev) {
  if (rev <= 0) return;
  mvcc_index_compact(k->index, rev, keep_rev, k->revs);
  revstore_compact(k->revs, rev);
  if (rev > k->compact_rev) k->compact_rev = rev;
}

int kv_replay(kv *k, mvcc_revision rev, bool is_delete, const uint8_t *key, size_t keylen,
              const uint8_t *value, size_t valuelen, int64_t lease) {
  /* Changes come back in revision order: the next sub of the newest main
   * revision, or sub 0 of the one after (revstore_append checks it). */
  if (rev.main != k->rev && rev.main != k->rev + 1) return -EINVAL;
  const kv_record *prev = live_record(k, key, keylen, rev.main, NULL);
  const kv_record *rec;
  int rc;
  if (is_delete) {
    if (!prev) return -EINVAL; /* the log never records a delete of a missing key */
    rc = write_delete(k, rev, key, keylen, prev, &rec);
  } else {
    rc = write_put(k, rev, key, keylen, value, valuelen, lease, prev, &rec);
  }
  if (rc < 0) return rc;
  k->rev = rev.main;
  return 0;
}

int kv_restore(kv *k, mvcc_revision rev, const uint8_t *key, size_t keylen, const uint8_t *value,
               size_t valuelen, int64_t create_revision, int64_t version, int64_t lease,
               bool tombstone, int64_t compact_rev) {
  return kv_restore_at(k, rev, key, keylen, value, valuelen, NULL, 0, create_revision, version,
                       lease, tombstone, compact_rev);
}

int kv_restore_at(kv *k, mvcc_revision rev, const uint8_t *key, size_t keylen, const uint8_t *value,
                  size_t valuelen, value_file *file, uint64_t value_off, int64_t create_revision,
                  int64_t version, int64_t lease, bool tombstone, int64_t compact_rev) {
  kv_record *rec =
      file && !tombstone && valuelen
          ? kv_record_new_on_disk(key, keylen, valuelen, file, value_off, create_revision, version, lease)
          : kv_record_new(key, keylen, value, valuelen, tombstone ? 0 : create_revision,
                          tombstone ? 0 : version, tombstone ? 0 : lease, tombstone);
  if (!rec) return -ENOMEM;
  int rc = rev.main <= compact_rev ? revstore_restore_compacted(k->revs, rev, rec, compact_rev)
                                   : revstore_append(k->revs, rev, rec);
  if (rc < 0) {
    kv_record_free(rec);
    return rc;
  }
  /* etcd's restoreIntoIndex: a key's first surviving record restores its
   * generation from the stored create revision and version; later ones are
   * ordinary puts and tombstones. */
  bool live = mvcc_index_get(k->index, key, keylen, rev.main, NULL, NULL, NULL) == 0;
  if (tombstone) {
    rc = live ? mvcc_index_tombstone(k->index, key, keylen, rev)
              : mvcc_index_restore_tombstone(k->index, key, keylen, rev);
  } else if (live) {
    rc = mvcc_index_put(k->index, key, keylen, rev);
  } else {
    rc = mvcc_index_restore(k->index, key, keylen, (mvcc_revision){create_revision, 0}, rev, version);
  }
  return rc;
}

static int attach_live(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod,
                       mvcc_revision created, int64_t version) {
  (void)created, (void)version;
  kv *k = arg;
  const kv_record *rec = revstore_get(k->revs, mod);
  if (rec && rec->lease && k->leases.attach) k->leases.attach(k->leases.arg, rec->lease, key, keylen);
  return 0;
}

void kv_restore_finish(kv *k, int64_t rev, int64_t compact_rev) {
  if (rev > k->rev) k->rev = rev;
  if (compact_rev > k->compact_rev) k->compact_rev = compact_rev;
  static const uint8_t zero = 0;
  mvcc_index_range(k->index, &zero, 1, &zero, 1, k->rev, attach_live, k);
}

void kv_set_rev(kv *k, int64_t rev) {
  if (rev > k->rev) k->rev = rev;
}
