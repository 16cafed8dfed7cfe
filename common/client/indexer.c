/* common/client/indexer.c — see indexer.h.
 *
 * objects: key -> entry { object, links[] }. Each index: value -> bucket, a
 * doubly linked list of links (entry, bucket); an entry owns one link per
 * (index, value) it holds. Index 0 is "namespace". */
#define _GNU_SOURCE
#include "common/client/indexer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/strmap.h"

struct informer_object {
  atomic_int refs;
  ProtobufCMessage *msg;
  char *key;
  int64_t rv;
};

informer_object *informer_object_new(ProtobufCMessage *msg, const char *key, int64_t rv) {
  informer_object *o = malloc(sizeof(*o));
  char *k = strdup(key);
  if (!o || !k) {
    free(o);
    free(k);
    protobuf_c_message_free_unpacked(msg, NULL);
    return NULL;
  }
  atomic_init(&o->refs, 1);
  o->msg = msg;
  o->key = k;
  o->rv = rv;
  return o;
}

const ProtobufCMessage *informer_object_msg(const informer_object *o) { return o->msg; }
const char *informer_object_key(const informer_object *o) { return o->key; }
int64_t informer_object_rv(const informer_object *o) { return o->rv; }

informer_object *informer_object_ref(informer_object *o) {
  if (o) atomic_fetch_add(&o->refs, 1);
  return o;
}

void informer_object_unref(informer_object *o) {
  if (!o || atomic_fetch_sub(&o->refs, 1) != 1) return;
  protobuf_c_message_free_unpacked(o->msg, NULL);
  free(o->key);
  free(o);
}

void informer_objects_release(informer_object **objs, size_t n) {
  for (size_t i = 0; i < n; i++) informer_object_unref(objs[i]);
  free(objs);
}

/* ---------------------------------------------------------------- structure */

typedef struct bucket bucket;
typedef struct entry entry;

typedef struct link {
  struct link *prev, *next;
  entry *e;
  bucket *b;
} link_t;

struct bucket {
  link_t *head;
  size_t count;
  size_t index; /* which index it belongs to */
  char *value;  /* the index map's copy of the key */
};

struct entry {
  informer_object *obj;
  link_t *links;
  size_t nlinks;
};

typedef struct index_def {
  char *name;
  informer_index_fn fn;
  void *arg;
  strmap buckets; /* value -> bucket */
} index_def;

struct indexer {
  const api_kind *kind;
  pthread_rwlock_t lock;
  strmap objects; /* key -> entry */
  index_def *indexes;
  size_t nindexes;
};

static size_t namespace_index(const api_kind *k, const ProtobufCMessage *obj, char **values, size_t max, void *arg) {
  (void)arg;
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (max < 1) return 0;
  values[0] = strdup(m && m->namespace_ ? m->namespace_ : "");
  return values[0] ? 1 : 0;
}

indexer *indexer_new(const api_kind *k) {
  indexer *ix = calloc(1, sizeof(*ix));
  if (!ix) return NULL;
  ix->kind = k;
  pthread_rwlock_init(&ix->lock, NULL);
  strmap_init(&ix->objects);
  if (indexer_add_index(ix, "namespace", namespace_index, NULL) < 0) {
    indexer_free(ix);
    return NULL;
  }
  return ix;
}

static void free_bucket(void *p) { free(p); }

static void free_entry(void *p) {
  entry *e = p;
  informer_object_unref(e->obj);
  free(e->links);
  free(e);
}

void indexer_free(indexer *ix) {
  if (!ix) return;
  strmap_clear(&ix->objects, free_entry);
  for (size_t i = 0; i < ix->nindexes; i++) {
    strmap_clear(&ix->indexes[i].buckets, free_bucket);
    free(ix->indexes[i].name);
  }
  free(ix->indexes);
  pthread_rwlock_destroy(&ix->lock);
  free(ix);
}

bool indexer_has_index(indexer *ix, const char *name) {
  for (size_t i = 0; i < ix->nindexes; i++)
    if (strcmp(ix->indexes[i].name, name) == 0) return true;
  return false;
}

int indexer_add_index(indexer *ix, const char *name, informer_index_fn fn, void *arg) {
  if (indexer_has_index(ix, name)) return -EEXIST;
  index_def *d = realloc(ix->indexes, (ix->nindexes + 1) * sizeof(*d));
  if (!d) return -ENOMEM;
  ix->indexes = d;
  d = &ix->indexes[ix->nindexes];
  memset(d, 0, sizeof(*d));
  if (!(d->name = strdup(name))) return -ENOMEM;
  d->fn = fn;
  d->arg = arg;
  strmap_init(&d->buckets);
  ix->nindexes++;
  return 0;
}

/* ---------------------------------------------------------------- writes */

/* Values of every index for obj, computed before locking. */
typedef struct index_values {
  char **values; /* flat */
  size_t *index_of;
  size_t n;
} index_values;

static void index_values_free(index_values *v) {
  for (size_t i = 0; i < v->n; i++) free(v->values[i]);
  free(v->values);
  free(v->index_of);
}

static int compute_values(indexer *ix, const ProtobufCMessage *msg, index_values *v) {
  size_t cap = ix->nindexes * INFORMER_INDEX_MAX_VALUES;
  memset(v, 0, sizeof(*v));
  v->values = calloc(cap ? cap : 1, sizeof(*v->values));
  v->index_of = calloc(cap ? cap : 1, sizeof(*v->index_of));
  if (!v->values || !v->index_of) {
    index_values_free(v);
    return -ENOMEM;
  }
  char *tmp[INFORMER_INDEX_MAX_VALUES];
  for (size_t i = 0; i < ix->nindexes; i++) {
    size_t got = ix->indexes[i].fn(ix->kind, msg, tmp, INFORMER_INDEX_MAX_VALUES, ix->indexes[i].arg);
    if (got > INFORMER_INDEX_MAX_VALUES) got = INFORMER_INDEX_MAX_VALUES;
    for (size_t j = 0; j < got; j++) {
      if (!tmp[j]) continue;
      bool dup = false; /* one link per (index, value) */
      for (size_t q = 0; q < v->n && !dup; q++) dup = v->index_of[q] == i && strcmp(v->values[q], tmp[j]) == 0;
      if (dup) {
        free(tmp[j]);
        continue;
      }
      v->values[v->n] = tmp[j];
      v->index_of[v->n++] = i;
    }
  }
  return 0;
}

static void unlink_all_locked(indexer *ix, entry *e) {
  for (size_t i = 0; i < e->nlinks; i++) {
    link_t *l = &e->links[i];
    bucket *b = l->b;
    if (l->prev) l->prev->next = l->next;
    else b->head = l->next;
    if (l->next) l->next->prev = l->prev;
    if (--b->count == 0) {
      bucket *gone = NULL;
      strmap_remove(&ix->indexes[b->index].buckets, b->value, (void **)&gone);
      free(gone);
    }
  }
  free(e->links);
  e->links = NULL;
  e->nlinks = 0;
}

/* Links e into the buckets of v; links array allocated by the caller. */
static int link_all_locked(indexer *ix, entry *e, const index_values *v, link_t *links) {
  e->links = links;
  e->nlinks = 0;
  for (size_t i = 0; i < v->n; i++) {
    index_def *d = &ix->indexes[v->index_of[i]];
    strmap_entry *me = strmap_find(&d->buckets, v->values[i]);
    bucket *b = me ? me->value : NULL;
    if (!b) {
      b = calloc(1, sizeof(*b));
      if (!b) return -ENOMEM;
      me = strmap_put(&d->buckets, v->values[i], b, NULL);
      if (!me) {
        free(b);
        return -ENOMEM;
      }
      b->index = v->index_of[i];
      b->value = me->key;
    }
    link_t *l = &links[e->nlinks++];
    l->e = e;
    l->b = b;
    l->prev = NULL;
    l->next = b->head;
    if (b->head) b->head->prev = l;
    b->head = l;
    b->count++;
  }
  return 0;
}

int indexer_put(indexer *ix, informer_object *obj, informer_object **old) {
  if (old) *old = NULL;
  index_values v;
  if (compute_values(ix, obj->msg, &v) < 0) {
    informer_object_unref(obj);
    return -ENOMEM;
  }
  link_t *links = calloc(v.n ? v.n : 1, sizeof(*links));
  entry *fresh = calloc(1, sizeof(*fresh));
  if (!links || !fresh) {
    free(links);
    free(fresh);
    index_values_free(&v);
    informer_object_unref(obj);
    return -ENOMEM;
  }
  pthread_rwlock_wrlock(&ix->lock);
  entry *e = strmap_get(&ix->objects, obj->key);
  informer_object *prev = NULL;
  if (e) {
    free(fresh);
    unlink_all_locked(ix, e);
    prev = e->obj;
  } else if (strmap_put(&ix->objects, obj->key, fresh, NULL)) {
    e = fresh;
  } else {
    pthread_rwlock_unlock(&ix->lock);
    free(fresh);
    free(links);
    index_values_free(&v);
    informer_object_unref(obj);
    return -ENOMEM;
  }
  e->obj = obj;
  /* A bucket allocation failing leaves the object in fewer buckets: it is
   * still cached, only missing from an index until its next update. */
  (void)link_all_locked(ix, e, &v, links);
  pthread_rwlock_unlock(&ix->lock);
  index_values_free(&v);
  if (old) *old = prev;
  else informer_object_unref(prev);
  return 0;
}

int indexer_remove(indexer *ix, const char *key, informer_object **old) {
  if (old) *old = NULL;
  pthread_rwlock_wrlock(&ix->lock);
  entry *e = NULL;
  if (!strmap_remove(&ix->objects, key, (void **)&e)) {
    pthread_rwlock_unlock(&ix->lock);
    return -ENOENT;
  }
  unlink_all_locked(ix, e);
  pthread_rwlock_unlock(&ix->lock);
  if (old) *old = e->obj;
  else informer_object_unref(e->obj);
  free(e);
  return 0;
}

/* ---------------------------------------------------------------- reads */

informer_object *indexer_get(indexer *ix, const char *key) {
  pthread_rwlock_rdlock(&ix->lock);
  entry *e = strmap_get(&ix->objects, key);
  informer_object *o = e ? informer_object_ref(e->obj) : NULL;
  pthread_rwlock_unlock(&ix->lock);
  return o;
}

size_t indexer_count(indexer *ix) {
  pthread_rwlock_rdlock(&ix->lock);
  size_t n = ix->objects.count;
  pthread_rwlock_unlock(&ix->lock);
  return n;
}

static int by_key(const void *a, const void *b) {
  const informer_object *x = *(informer_object *const *)a, *y = *(informer_object *const *)b;
  return strcmp(x->key, y->key);
}

typedef struct labels_view {
  const Keel__Api__V1__ObjectMeta *m;
} labels_view;

static const char *label_get(void *ctx, const char *key) {
  const Keel__Api__V1__ObjectMeta *m = ((labels_view *)ctx)->m;
  if (!m) return NULL;
  for (size_t i = 0; i < m->n_labels; i++)
    if (m->labels[i]->key && strcmp(m->labels[i]->key, key) == 0) return m->labels[i]->value ? m->labels[i]->value : "";
  return NULL;
}

static bool matches(indexer *ix, const informer_object *o, const labels_selector *sel) {
  if (!sel || labels_selector_empty(sel)) return true;
  labels_view v = {.m = api_object_meta(ix->kind, o->msg)};
  return labels_selector_matches_fn(sel, label_get, &v);
}

int indexer_list(indexer *ix, const char *ns, const labels_selector *sel, informer_object ***objs, size_t *n) {
  *objs = NULL;
  *n = 0;
  pthread_rwlock_rdlock(&ix->lock);
  bucket *b = NULL;
  size_t cap;
  if (ns && *ns) {
    b = strmap_get(&ix->indexes[0].buckets, ns);
    cap = b ? b->count : 0;
  } else {
    cap = ix->objects.count;
  }
  informer_object **out = malloc((cap ? cap : 1) * sizeof(*out));
  if (!out) {
    pthread_rwlock_unlock(&ix->lock);
    return -ENOMEM;
  }
  size_t k = 0;
  if (ns && *ns) {
    for (link_t *l = b ? b->head : NULL; l; l = l->next)
      if (matches(ix, l->e->obj, sel)) out[k++] = informer_object_ref(l->e->obj);
  } else {
    size_t it;
    for (strmap_entry *me = strmap_first(&ix->objects, &it); me; me = strmap_next(&ix->objects, me, &it)) {
      entry *e = me->value;
      if (matches(ix, e->obj, sel)) out[k++] = informer_object_ref(e->obj);
    }
  }
  pthread_rwlock_unlock(&ix->lock);
  qsort(out, k, sizeof(*out), by_key);
  *objs = out;
  *n = k;
  return 0;
}

static index_def *find_index(indexer *ix, const char *name) {
  for (size_t i = 0; i < ix->nindexes; i++)
    if (strcmp(ix->indexes[i].name, name) == 0) return &ix->indexes[i];
  return NULL;
}

int indexer_list_by_index(indexer *ix, const char *index, const char *value, informer_object ***objs, size_t *n) {
  *objs = NULL;
  *n = 0;
  index_def *d = find_index(ix, index);
  if (!d) return -ENOENT;
  pthread_rwlock_rdlock(&ix->lock);
  bucket *b = strmap_get(&d->buckets, value);
  size_t cap = b ? b->count : 0;
  informer_object **out = malloc((cap ? cap : 1) * sizeof(*out));
  if (!out) {
    pthread_rwlock_unlock(&ix->lock);
    return -ENOMEM;
  }
  size_t k = 0;
  for (link_t *l = b ? b->head : NULL; l; l = l->next) out[k++] = informer_object_ref(l->e->obj);
  pthread_rwlock_unlock(&ix->lock);
  qsort(out, k, sizeof(*out), by_key);
  *objs = out;
  *n = k;
  return 0;
}

static int by_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int indexer_index_values(indexer *ix, const char *index, char ***values, size_t *n) {
  *values = NULL;
  *n = 0;
  index_def *d = find_index(ix, index);
  if (!d) return -ENOENT;
  pthread_rwlock_rdlock(&ix->lock);
  size_t cap = d->buckets.count, k = 0;
  char **out = calloc(cap ? cap : 1, sizeof(*out));
  int rc = out ? 0 : -ENOMEM;
  size_t it;
  for (strmap_entry *me = out ? strmap_first(&d->buckets, &it) : NULL; me; me = strmap_next(&d->buckets, me, &it)) {
    if (!(out[k] = strdup(me->key))) {
      rc = -ENOMEM;
      break;
    }
    k++;
  }
  pthread_rwlock_unlock(&ix->lock);
  if (rc < 0) {
    for (size_t i = 0; i < k; i++) free(out[i]);
    free(out);
    return rc;
  }
  qsort(out, k, sizeof(*out), by_str);
  *values = out;
  *n = k;
  return 0;
}
