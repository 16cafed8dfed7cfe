/* services/apiserver/cache/watch_cache.c — see watch_cache.h.
 *
 * Locks: c->mu guards the object map, the event window, the watcher list and
 * the revision; w->mu guards one watcher's pending queue and its sink. Order:
 * c->mu before w->mu; sinks are called under w->mu only and never call back.
 * Store callbacks (events, progress, end) run on the etcd client's thread; the
 * bookmark/restart timer runs on the cache's own thread. */
#include "services/apiserver/cache/watch_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log/log.h"

/* ---------------------------------------------------------------- objects */

struct cache_object {
  atomic_int refs;
  char *key; /* "ns/name" or "name" */
  ProtobufCMessage *msg;
  uint8_t *wire;
  size_t wire_len;
  int64_t rev;
};

const ProtobufCMessage *cache_object_msg(const cache_object *o) {
  return o->msg;
}
const uint8_t *cache_object_wire(const cache_object *o, size_t *len) {
  *len = o->wire_len;
  return o->wire;
}
int64_t cache_object_revision(const cache_object *o) {
  return o->rev;
}
void cache_object_ref(cache_object *o) {
  atomic_fetch_add(&o->refs, 1);
}
void cache_object_unref(cache_object *o) {
  if (!o || atomic_fetch_sub(&o->refs, 1) != 1) return;
  free(o->key);
  if (o->msg) protobuf_c_message_free_unpacked(o->msg, NULL);
  free(o->wire);
  free(o);
}

/* Takes msg. The key is derived from its metadata. */
static cache_object *object_new(const api_kind *k, ProtobufCMessage *msg, int64_t rev) {
  cache_object *o = calloc(1, sizeof *o);
  if (!o) goto fail;
  atomic_init(&o->refs, 1);
  o->msg = msg;
  o->rev = rev;
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, msg);
  const char *ns = m && m->namespace_ ? m->namespace_ : "";
  const char *name = m && m->name ? m->name : "";
  if (k->namespaced ? asprintf(&o->key, "%s/%s", ns, name) < 0 : !(o->key = strdup(name))) {
    o->key = NULL;
    goto fail;
  }
  o->wire_len = protobuf_c_message_get_packed_size(msg);
  o->wire = malloc(o->wire_len ? o->wire_len : 1);
  if (!o->wire) goto fail;
  protobuf_c_message_pack(msg, o->wire);
  return o;
fail:
  if (o) {
    o->msg = NULL;
    free(o->key);
    free(o->wire);
    free(o);
  }
  protobuf_c_message_free_unpacked(msg, NULL);
  return NULL;
}

/* A copy of o's object with resourceVersion rev (the DELETED event's object). */
static cache_object *object_at_revision(const api_kind *k, const cache_object *o, int64_t rev) {
  ProtobufCMessage *copy = protobuf_c_message_unpack(k->object, NULL, o->wire_len, o->wire);
  if (!copy) return NULL;
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, copy);
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", (long long)rev);
  char *rv = strdup(buf);
  if (!rv) {
    protobuf_c_message_free_unpacked(copy, NULL);
    return NULL;
  }
  if (m->resource_version != protobuf_c_empty_string) free(m->resource_version);
  m->resource_version = rv;
  return object_new(k, copy, rev);
}

/* ---------------------------------------------------------------- events */

enum { EV_ADDED, EV_MODIFIED, EV_DELETED, EV_BOOKMARK };
static const char *const event_type_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK"};

/* One change: obj is the new state (NULL for a delete), prev the old (NULL for
 * a create). Encodings per delivered type are built on first use and shared. */
typedef struct cache_event {
  atomic_int refs;
  int64_t rev;
  cache_object *obj, *prev;
  pthread_mutex_t mu; /* guards the lazily built members below */
  rpc_shared_message *wire[4];
  cache_object *deleted_obj; /* prev at rev */
} cache_event;

static cache_event *event_new(int64_t rev, cache_object *obj_take, cache_object *prev_take) {
  cache_event *e = calloc(1, sizeof *e);
  if (!e) {
    cache_object_unref(obj_take);
    cache_object_unref(prev_take);
    return NULL;
  }
  atomic_init(&e->refs, 1);
  e->rev = rev;
  e->obj = obj_take;
  e->prev = prev_take;
  pthread_mutex_init(&e->mu, NULL);
  return e;
}

static void event_ref(cache_event *e) {
  atomic_fetch_add(&e->refs, 1);
}

static void event_unref(cache_event *e) {
  if (!e || atomic_fetch_sub(&e->refs, 1) != 1) return;
  cache_object_unref(e->obj);
  cache_object_unref(e->prev);
  cache_object_unref(e->deleted_obj);
  for (int i = 0; i < 4; i++) rpc_shared_message_free(e->wire[i]);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

static size_t put_varint(uint8_t *p, uint64_t v) {
  size_t n = 0;
  do {
    p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
    v >>= 7;
  } while (v);
  return n;
}

/* XWatchEvent{type, object} encoded by hand: field 1 (string) and field 2
 * (the object's cached encoding), so no object is re-encoded per event. */
static rpc_shared_message *encode_event(const char *type, const uint8_t *obj, size_t obj_len) {
  size_t tlen = strlen(type);
  size_t cap = 1 + 10 + tlen + 1 + 10 + obj_len;
  uint8_t *buf = malloc(cap);
  if (!buf) return NULL;
  size_t n = 0;
  buf[n++] = 0x0a; /* field 1, length-delimited */
  n += put_varint(buf + n, tlen);
  memcpy(buf + n, type, tlen);
  n += tlen;
  buf[n++] = 0x12; /* field 2, length-delimited */
  n += put_varint(buf + n, obj_len);
  memcpy(buf + n, obj, obj_len);
  n += obj_len;
  rpc_shared_message *m = rpc_shared_message_from_bytes(buf, n);
  free(buf);
  return m;
}

/* The encoding of e delivered as `type`; NULL on allocation failure. */
static const rpc_shared_message *event_wire(const api_kind *k, cache_event *e, int type) {
  pthread_mutex_lock(&e->mu);
  if (!e->wire[type] && type != EV_BOOKMARK) {
    const cache_object *o = type == EV_DELETED ? NULL : e->obj;
    if (type == EV_DELETED) {
      if (!e->deleted_obj && e->prev) e->deleted_obj = object_at_revision(k, e->prev, e->rev);
      o = e->deleted_obj;
    }
    if (o) e->wire[type] = encode_event(event_type_names[type], o->wire, o->wire_len);
  }
  const rpc_shared_message *m = e->wire[type];
  pthread_mutex_unlock(&e->mu);
  return m;
}

/* A BOOKMARK's object: only metadata.resourceVersion. */
static rpc_shared_message *bookmark_wire(const api_kind *k, int64_t rev) {
  ProtobufCMessage *obj = api_message_new(k->object);
  if (!obj) return NULL;
  Keel__Api__V1__ObjectMeta *m = api_object_meta_ensure(k, obj);
  char buf[24];
  snprintf(buf, sizeof buf, "%lld", (long long)rev);
  m->resource_version = strdup(buf);
  if (!m->resource_version) m->resource_version = (char *)protobuf_c_empty_string;
  api_object_set_type_meta(k, obj);
  size_t len = protobuf_c_message_get_packed_size(obj);
  uint8_t *wire = malloc(len ? len : 1);
  rpc_shared_message *out = NULL;
  if (wire) {
    protobuf_c_message_pack(obj, wire);
    out = encode_event("BOOKMARK", wire, len);
    free(wire);
  }
  protobuf_c_message_free_unpacked(obj, NULL);
  return out;
}

/* ---------------------------------------------------------------- object map */

/* Chained hash map key -> cache_object (holding one reference). */
typedef struct map_entry {
  struct map_entry *next;
  cache_object *obj;
} map_entry;

typedef struct object_map {
  map_entry **buckets;
  size_t nbuckets; /* power of two */
  size_t count;
} object_map;

static uint64_t hash_key(const char *s) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static map_entry **map_find(object_map *m, const char *key) {
  map_entry **pp = &m->buckets[hash_key(key) & (m->nbuckets - 1)];
  while (*pp && strcmp((*pp)->obj->key, key) != 0) pp = &(*pp)->next;
  return pp;
}

static int map_init(object_map *m) {
  m->nbuckets = 1024;
  m->count = 0;
  m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
  return m->buckets ? 0 : -ENOMEM;
}

static void map_grow(object_map *m) {
  size_t nb = m->nbuckets * 2;
  map_entry **b = calloc(nb, sizeof *b);
  if (!b) return; /* stay at the current size; lookups still work */
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (map_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      size_t j = hash_key(e->obj->key) & (nb - 1);
      e->next = b[j];
      b[j] = e;
    }
  }
  free(m->buckets);
  m->buckets = b;
  m->nbuckets = nb;
}

/* Puts obj (taking the caller's reference); returns the replaced object's
 * reference (or NULL). */
static cache_object *map_put(object_map *m, cache_object *obj) {
  map_entry **pp = map_find(m, obj->key);
  if (*pp) {
    cache_object *old = (*pp)->obj;
    (*pp)->obj = obj;
    return old;
  }
  map_entry *e = malloc(sizeof *e);
  if (!e) {
    cache_object_unref(obj);
    return NULL;
  }
  e->obj = obj;
  e->next = NULL;
  *pp = e;
  if (++m->count > m->nbuckets) map_grow(m);
  return NULL;
}

/* Removes key; returns the removed object's reference (or NULL). */
static cache_object *map_remove(object_map *m, const char *key) {
  map_entry **pp = map_find(m, key);
  if (!*pp) return NULL;
  map_entry *e = *pp;
  cache_object *o = e->obj;
  *pp = e->next;
  free(e);
  m->count--;
  return o;
}

static void map_clear(object_map *m) {
  for (size_t i = 0; i < m->nbuckets; i++) {
    for (map_entry *e = m->buckets[i], *next; e; e = next) {
      next = e->next;
      cache_object_unref(e->obj);
      free(e);
    }
    m->buckets[i] = NULL;
  }
  m->count = 0;
}

/* ---------------------------------------------------------------- the cache */

struct cache_watcher {
  atomic_int refs;
  watch_cache *cache; /* NULL once the cache stopped (under w->mu) */
  const api_kind *kind;
  struct cache_watcher *prev_w, *next_w; /* c->watchers, under c->mu */
  bool registered;                        /* under c->mu */
  cache_watch_options opts;
  cache_watcher_sink sink;
  pthread_mutex_t mu;
  /* Pending deliveries: events with the type to deliver them as. */
  struct pending {
    cache_event *ev; /* NULL for a bookmark */
    rpc_shared_message *bookmark;
    int type;
  } *queue;
  size_t qhead, qcount, qcap, qlimit;
  bool blocked; /* the sink said -ENOBUFS; waiting for writable */
  bool dead;    /* sink gone or ended: deliver nothing more */
  bool ended;   /* end() was called or is owed */
  grpc_status_code end_code;
  char end_message[200];
  int64_t last_rev; /* revision of the last event queued */
};

struct watch_cache {
  watch_cache_options opts;
  const api_kind *kind;
  char prefix[OBJSTORE_KEY_MAX];
  size_t prefix_len;
  pthread_mutex_t mu;
  pthread_cond_t advanced; /* revision moved */
  object_map objects;
  int64_t revision;     /* everything up to here is in the cache */
  int64_t window_start; /* events after this revision are all in the window */
  cache_event **window; /* ring */
  size_t whead, wcount;
  cache_watcher *watchers;
  size_t nwatchers;
  etcd_watch *watch;
  bool watch_broken; /* the store watch ended; the timer thread restarts it */
  bool need_relist;  /* ...and its next revision was compacted: list again */
  bool stopping;
  pthread_t timer;
  pthread_cond_t timer_wake;
};

static void watcher_unref(cache_watcher *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1) return;
  for (size_t i = 0; i < w->qcount; i++) {
    struct pending *p = &w->queue[(w->qhead + i) % w->qcap];
    event_unref(p->ev);
    rpc_shared_message_free(p->bookmark);
  }
  free(w->queue);
  pthread_mutex_destroy(&w->mu);
  free(w);
}

/* Under w->mu: hands pending events to the sink until it is full. */
static void watcher_flush_locked(cache_watcher *w) {
  const api_kind *k = w->kind;
  while (w->qcount > 0 && !w->blocked && !w->dead) {
    struct pending *p = &w->queue[w->qhead];
    const rpc_shared_message *m = p->ev ? event_wire(k, p->ev, p->type) : p->bookmark;
    int rc = m ? w->sink.send(w->sink.arg, m) : -ENOMEM;
    if (rc == -ENOBUFS) {
      w->blocked = true;
      break;
    }
    if (rc < 0) {
      w->dead = true;
      break;
    }
    event_unref(p->ev);
    rpc_shared_message_free(p->bookmark);
    w->qhead = (w->qhead + 1) % w->qcap;
    w->qcount--;
  }
}

/* Under w->mu: queues a delivery (taking ev's reference or bookmark). False
 * when the queue is at its bound: the watcher must be ended. */
static bool watcher_push_locked(cache_watcher *w, cache_event *ev, rpc_shared_message *bookmark, int type,
                                int64_t rev) {
  if (w->dead) {
    event_unref(ev);
    rpc_shared_message_free(bookmark);
    return true;
  }
  if (w->qcount == w->qcap) {
    size_t ncap = w->qcap ? w->qcap * 2 : 16;
    if (w->qcount >= w->qlimit || !(ncap = ncap > w->qlimit ? w->qlimit : ncap) || ncap <= w->qcap) {
      event_unref(ev);
      rpc_shared_message_free(bookmark);
      return false;
    }
    struct pending *q = malloc(ncap * sizeof *q);
    if (!q) {
      event_unref(ev);
      rpc_shared_message_free(bookmark);
      return false;
    }
    for (size_t i = 0; i < w->qcount; i++) q[i] = w->queue[(w->qhead + i) % w->qcap];
    free(w->queue);
    w->queue = q;
    w->qhead = 0;
    w->qcap = ncap;
  }
  w->queue[(w->qhead + w->qcount) % w->qcap] = (struct pending){.ev = ev, .bookmark = bookmark, .type = type};
  w->qcount++;
  w->last_rev = rev;
  return true;
}

static bool filter_matches(const watch_cache *c, const cache_filter *f, const cache_object *o) {
  if (!o) return false;
  if (f->ns && *f->ns) {
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(c->kind, o->msg);
    if (!m || !m->namespace_ || strcmp(m->namespace_, f->ns) != 0) return false;
  }
  return !f->match || f->match(c->kind, o->msg, f->arg);
}

/* Under c->mu: the type a watcher sees for ev (Kubernetes' rule: a change that
 * moves an object into the filter is ADDED, out of it DELETED), or -1. */
static int delivered_type(const watch_cache *c, const cache_watcher *w, const cache_event *ev) {
  bool now = filter_matches(c, &w->opts.filter, ev->obj);
  bool before = filter_matches(c, &w->opts.filter, ev->prev);
  if (now && before) return EV_MODIFIED;
  if (now) return EV_ADDED;
  if (before) return EV_DELETED;
  return -1;
}

/* Marks w ended (the caller calls end_watchers after dropping c->mu). */
static void watcher_mark_ended(cache_watcher *w, grpc_status_code code, const char *msg) {
  if (w->ended) return;
  w->ended = true;
  w->dead = true;
  w->end_code = code;
  snprintf(w->end_message, sizeof w->end_message, "%s", msg);
}

static void unlink_watcher_locked(watch_cache *c, cache_watcher *w) {
  if (!w->registered) return;
  if (w->prev_w) w->prev_w->next_w = w->next_w;
  else c->watchers = w->next_w;
  if (w->next_w) w->next_w->prev_w = w->prev_w;
  w->prev_w = w->next_w = NULL;
  w->registered = false;
  c->nwatchers--;
  /* For good: the owner's watch_cache_watcher_stop must not touch c, which
   * may be stopped and freed by then. */
  pthread_mutex_lock(&w->mu);
  w->cache = NULL;
  pthread_mutex_unlock(&w->mu);
}

/* Calls end() for the watchers in list (taking their references). The sink's
 * end runs under w->mu, so watch_cache_watcher_stop (which clears it under the
 * same lock) guarantees no callback after it returns. */
static void end_watchers(cache_watcher **list, size_t n) {
  for (size_t i = 0; i < n; i++) {
    cache_watcher *w = list[i];
    pthread_mutex_lock(&w->mu);
    if (w->sink.end) w->sink.end(w->sink.arg, w->end_code, w->end_message);
    w->sink.end = NULL;
    pthread_mutex_unlock(&w->mu);
    watcher_unref(w);
  }
  free(list);
}

/* Under c->mu: delivers ev to every watcher; watchers that overflow are
 * unlinked and collected in *ended (references moved). */
static void dispatch_locked(watch_cache *c, cache_event *ev, cache_watcher ***ended, size_t *nended) {
  for (cache_watcher *w = c->watchers, *next; w; w = next) {
    next = w->next_w;
    if (ev->rev <= w->opts.from_revision) continue;
    int type = delivered_type(c, w, ev);
    if (type < 0) continue;
    pthread_mutex_lock(&w->mu);
    event_ref(ev);
    bool ok = watcher_push_locked(w, ev, NULL, type, ev->rev);
    if (ok) watcher_flush_locked(w);
    else watcher_mark_ended(w, GRPC_STATUS_RESOURCE_EXHAUSTED,
                            "watch receiver too slow: pending events over the limit; watch again from the last "
                            "resourceVersion received");
    pthread_mutex_unlock(&w->mu);
    if (!ok) {
      unlink_watcher_locked(c, w);
      cache_watcher **grown = realloc(*ended, (*nended + 1) * sizeof **ended);
      if (grown) {
        *ended = grown;
        (*ended)[(*nended)++] = w; /* the registration's reference moves here */
      } else {
        watcher_unref(w);
      }
    }
  }
}

/* Under c->mu: appends ev to the window (taking the reference). */
static void window_append_locked(watch_cache *c, cache_event *ev) {
  size_t cap = c->opts.window_events;
  if (c->wcount == cap) {
    cache_event *old = c->window[c->whead];
    c->window_start = old->rev;
    event_unref(old);
    c->whead = (c->whead + 1) % cap;
    c->wcount--;
  }
  c->window[(c->whead + c->wcount) % cap] = ev;
  c->wcount++;
}

/* ---------------------------------------------------------------- store side */

static void on_store_events(void *arg, int64_t revision, const etcd_event *events, size_t n) {
  watch_cache *c = arg;
  cache_watcher **ended = NULL;
  size_t nended = 0;
  pthread_mutex_lock(&c->mu);
  for (size_t i = 0; i < n; i++) {
    const etcd_event *e = &events[i];
    int64_t rev = e->kv.mod_revision;
    if (rev < c->revision) continue; /* replayed: already applied (one txn shares a revision) */
    const char *relkey_start = e->kv.key + c->prefix_len;
    size_t relkey_len = e->kv.key_len - c->prefix_len;
    cache_event *ev = NULL;
    if (e->type == 0) {
      keel_error err;
      ProtobufCMessage *msg = objstore_decode(c->kind, e->kv.value, e->kv.value_len, rev, &err);
      if (!msg) {
        LOG_ERROR("watch cache: skipping an undecodable object", "resource", c->kind->resource,
                  "error", err.message);
        continue;
      }
      cache_object *o = object_new(c->kind, msg, rev);
      if (!o) continue;
      cache_object_ref(o);
      cache_object *prev = map_put(&c->objects, o);
      ev = event_new(rev, o, prev);
    } else {
      char key[OBJSTORE_KEY_MAX];
      if (relkey_len >= sizeof key) continue;
      memcpy(key, relkey_start, relkey_len);
      key[relkey_len] = '\0';
      cache_object *prev = map_remove(&c->objects, key);
      if (!prev) continue; /* never seen (not decodable): nothing to delete */
      ev = event_new(rev, NULL, prev);
    }
    if (!ev) continue;
    c->revision = rev;
    dispatch_locked(c, ev, &ended, &nended);
    window_append_locked(c, ev);
  }
  /* Not the response's header revision, on any store: a catch-up from
   * history arrives in several responses that all carry the revision the
   * whole catch-up reaches (keel-store: its round's end; etcd: the store's
   * revision), so later responses still hold events below it. Only a
   * progress notification says nothing at or below a revision is pending. */
  (void)revision;
  pthread_cond_broadcast(&c->advanced);
  pthread_mutex_unlock(&c->mu);
  if (nended) end_watchers(ended, nended);
  else free(ended);
}

static void on_store_progress(void *arg, int64_t revision) {
  watch_cache *c = arg;
  if (!c->opts.progress_trusted) return; /* may overtake events still on their way */
  pthread_mutex_lock(&c->mu);
  if (revision > c->revision) {
    c->revision = revision;
    pthread_cond_broadcast(&c->advanced);
  }
  pthread_mutex_unlock(&c->mu);
}

static void on_store_end(void *arg, int64_t compact_revision, const keel_error *why) {
  watch_cache *c = arg;
  LOG_WARN("watch cache: store watch ended", "resource", c->kind->resource, "error",
           why ? why->message : "", "compact_revision", log_int(compact_revision));
  pthread_mutex_lock(&c->mu);
  c->watch_broken = true;
  if (compact_revision > 0) c->need_relist = true;
  pthread_cond_signal(&c->timer_wake);
  pthread_mutex_unlock(&c->mu);
}

static const etcd_watch_callbacks store_callbacks = {
    .on_events = on_store_events,
    .on_progress = on_store_progress,
    .on_end = on_store_end,
};

static etcd_watch *start_store_watch(watch_cache *c, int64_t from, keel_error *err) {
  unsigned char *end = NULL;
  size_t end_len = 0;
  if (etcd_prefix_end(c->prefix, c->prefix_len, &end, &end_len) < 0) {
    keel_error_set(err, ENOMEM, "watch cache: out of memory");
    return NULL;
  }
  etcd_watch_options wo = {
      .key = c->prefix,
      .key_len = c->prefix_len,
      .range_end = end,
      .range_end_len = end_len,
      .start_revision = from,
      .prev_kv = false,
      .progress_notify = true,
      .fragment = true,
  };
  etcd_watch *w = etcd_watch_start(objstore_etcd(c->opts.store), &wo, &store_callbacks, c, err);
  free(end);
  return w;
}

/* Lists the prefix into a fresh map at one revision, in pages. */
static int list_store(watch_cache *c, object_map *into, int64_t *rev, keel_error *err) {
  unsigned char *end = NULL;
  size_t end_len = 0;
  if (etcd_prefix_end(c->prefix, c->prefix_len, &end, &end_len) < 0)
    return keel_error_set(err, ENOMEM, "watch cache: out of memory");
  etcd_client *etcd = objstore_etcd(c->opts.store);
  char *from = malloc(c->prefix_len + 1);
  size_t from_len = c->prefix_len;
  if (!from) {
    free(end);
    return keel_error_set(err, ENOMEM, "watch cache: out of memory");
  }
  memcpy(from, c->prefix, c->prefix_len);
  int64_t at = 0;
  int rc = 0;
  for (;;) {
    etcd_range_result r;
    rc = etcd_range(etcd, from, from_len, end, end_len, at, 500, false, false, &r, err);
    if (rc < 0) break;
    if (at == 0) at = r.revision;
    for (size_t i = 0; i < r.nkvs; i++) {
      ProtobufCMessage *msg = objstore_decode(c->kind, r.kvs[i].value, r.kvs[i].value_len,
                                              r.kvs[i].mod_revision, NULL);
      if (!msg) {
        LOG_ERROR("watch cache: skipping an undecodable object", "resource", c->kind->resource);
        continue;
      }
      cache_object *o = object_new(c->kind, msg, r.kvs[i].mod_revision);
      if (o) cache_object_unref(map_put(into, o));
    }
    bool more = r.more && r.nkvs > 0;
    if (more) {
      /* Next page: the last key plus a zero byte. */
      const etcd_kv *last = &r.kvs[r.nkvs - 1];
      char *next = malloc(last->key_len + 1);
      if (!next) {
        etcd_range_result_clear(&r);
        rc = keel_error_set(err, ENOMEM, "watch cache: out of memory");
        break;
      }
      memcpy(next, last->key, last->key_len);
      next[last->key_len] = '\0';
      free(from);
      from = next;
      from_len = last->key_len + 1;
    }
    etcd_range_result_clear(&r);
    if (!more) break;
  }
  free(from);
  free(end);
  if (rc == 0) *rev = at;
  return rc;
}

/* Under c->mu: drops the window and ends every watcher (collected in *ended). */
static void reset_watchers_locked(watch_cache *c, const char *why, cache_watcher ***ended, size_t *nended) {
  while (c->watchers) {
    cache_watcher *w = c->watchers;
    pthread_mutex_lock(&w->mu);
    watcher_mark_ended(w, GRPC_STATUS_UNAVAILABLE, why);
    pthread_mutex_unlock(&w->mu);
    unlink_watcher_locked(c, w);
    cache_watcher **grown = realloc(*ended, (*nended + 1) * sizeof **ended);
    if (grown) {
      *ended = grown;
      (*ended)[(*nended)++] = w;
    } else {
      watcher_unref(w);
    }
  }
}

/* The timer thread: bookmarks, and re-establishing a broken store watch. */
static void *timer_main(void *arg) {
  watch_cache *c = arg;
  int backoff_ms = 100;
  pthread_mutex_lock(&c->mu);
  while (!c->stopping) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    int wait_ms = c->watch_broken ? backoff_ms : c->opts.bookmark_interval_ms;
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
      until.tv_sec++;
      until.tv_nsec -= 1000000000L;
    }
    int rc = pthread_cond_timedwait(&c->timer_wake, &c->mu, &until);
    if (c->stopping) break;
    if (c->watch_broken) {
      if (rc != ETIMEDOUT) continue; /* woken by the break itself: back off first */
      etcd_watch *old = c->watch;
      c->watch = NULL;
      bool relist = c->need_relist;
      /* Clear the flags now, while the lock is held: the new watch may fail
       * (on_store_end sets them again) before this thread takes the lock back,
       * and that failure must not be overwritten. */
      c->watch_broken = false;
      c->need_relist = false;
      int64_t from = c->revision + 1;
      pthread_mutex_unlock(&c->mu);
      if (old) etcd_watch_stop(old);
      keel_error err = {0};
      bool listed = false;
      if (relist) {
        /* Events were lost to compaction: start over from a new list. Every
         * watcher ends; its re-watch is too old for the new window, so its
         * client relists too. The new state is in place before the new watch
         * starts, so none of its events is applied to the old one. */
        object_map fresh = {0};
        int64_t list_rev = 0;
        listed = map_init(&fresh) == 0 && list_store(c, &fresh, &list_rev, &err) == 0;
        if (listed) {
          cache_watcher **ended = NULL;
          size_t nended = 0;
          pthread_mutex_lock(&c->mu);
          map_clear(&c->objects);
          free(c->objects.buckets);
          c->objects = fresh;
          fresh.buckets = NULL;
          for (size_t i = 0; i < c->wcount; i++) event_unref(c->window[(c->whead + i) % c->opts.window_events]);
          c->whead = c->wcount = 0;
          c->revision = c->window_start = list_rev;
          reset_watchers_locked(c, "watch cache reinitialized after compaction: watch again", &ended, &nended);
          pthread_cond_broadcast(&c->advanced);
          pthread_mutex_unlock(&c->mu);
          if (nended) end_watchers(ended, nended);
          else free(ended);
          from = list_rev + 1;
        }
        if (fresh.buckets) {
          map_clear(&fresh);
          free(fresh.buckets);
        }
      }
      etcd_watch *w = (!relist || listed) ? start_store_watch(c, from, &err) : NULL;
      pthread_mutex_lock(&c->mu);
      if (w) {
        c->watch = w;
        backoff_ms = 100;
      } else {
        c->watch_broken = true;
        if (relist && !listed) c->need_relist = true;
        LOG_WARN("watch cache: cannot restart the store watch", "resource", c->kind->resource, "error",
                 err.message);
        backoff_ms = backoff_ms < 5000 ? backoff_ms * 2 : 5000;
      }
      continue;
    }
    /* Bookmarks: tell watchers that asked how far the cache has got, so a
     * re-watch after a disconnect starts from a recent version. */
    if (c->watch) etcd_watch_request_progress(c->watch);
    int64_t rev = c->revision;
    cache_event *bm = NULL;
    for (cache_watcher *w = c->watchers; w; w = w->next_w) {
      if (!w->opts.bookmarks) continue;
      pthread_mutex_lock(&w->mu);
      if (w->last_rev < rev && w->qcount == 0 && !w->dead) {
        if (!bm && (bm = event_new(rev, NULL, NULL)) && !(bm->wire[EV_BOOKMARK] = bookmark_wire(c->kind, rev))) {
          event_unref(bm);
          bm = NULL;
        }
        if (bm) {
          event_ref(bm);
          if (watcher_push_locked(w, bm, NULL, EV_BOOKMARK, rev)) watcher_flush_locked(w);
        }
      }
      pthread_mutex_unlock(&w->mu);
    }
    event_unref(bm);
  }
  pthread_mutex_unlock(&c->mu);
  return NULL;
}

/* ---------------------------------------------------------------- history */

/* Before serving, the window is filled with the store's own history of this
 * prefix: the events in (from, listed revision], read with a watch that starts
 * in the past. A client that was watching through a previous apiserver process
 * (or another apiserver) resumes from its last resourceVersion and gets
 * exactly the events after it, with no relist, as long as the store has not
 * compacted them. */
typedef struct history_fill {
  watch_cache *c;
  int64_t until;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done;
  bool ended;
  int64_t compacted; /* > 0: `from` was compacted; this is the oldest revision left */
  const unsigned char *sentinel; /* the key whose write marks the end of history */
  size_t sentinel_len;
  cache_event **events;
  size_t n, cap;
} history_fill;

static cache_object *decode_kv(const api_kind *k, const etcd_kv *kv) {
  ProtobufCMessage *msg = objstore_decode(k, kv->value, kv->value_len, kv->mod_revision, NULL);
  return msg ? object_new(k, msg, kv->mod_revision) : NULL;
}

static void history_on_events(void *arg, int64_t revision, const etcd_event *events, size_t n) {
  (void)revision;
  history_fill *h = arg;
  pthread_mutex_lock(&h->mu);
  for (size_t i = 0; i < n && !h->done; i++) {
    const etcd_event *e = &events[i];
    if (e->kv.key_len == h->sentinel_len && memcmp(e->kv.key, h->sentinel, h->sentinel_len) == 0) {
      /* Our own write: everything before it has been delivered. (Its
       * revision may not be known yet if the put's answer is slower than the
       * event; any sentinel write after `until` proves the same.) */
      if (e->kv.mod_revision > h->until) h->done = true;
      continue;
    }
    if (e->kv.mod_revision > h->until) continue; /* the live watch takes these */
    cache_object *obj = e->type == 0 ? decode_kv(h->c->kind, &e->kv) : NULL;
    cache_object *prev = e->has_prev_kv ? decode_kv(h->c->kind, &e->prev_kv) : NULL;
    if (!obj && !prev) continue;
    if (h->n == h->cap) {
      size_t ncap = h->cap ? h->cap * 2 : 64;
      cache_event **grown = realloc(h->events, ncap * sizeof *grown);
      if (!grown) {
        cache_object_unref(obj);
        cache_object_unref(prev);
        continue;
      }
      h->events = grown;
      h->cap = ncap;
    }
    cache_event *ev = event_new(e->kv.mod_revision, obj, prev);
    if (ev) h->events[h->n++] = ev;
  }
  if (h->done) pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->mu);
}

static void history_on_end(void *arg, int64_t compact_revision, const keel_error *why) {
  (void)why;
  history_fill *h = arg;
  pthread_mutex_lock(&h->mu);
  h->ended = true;
  h->compacted = compact_revision;
  pthread_cond_signal(&h->cond);
  pthread_mutex_unlock(&h->mu);
}

/* Fills c's window with the events in (from - 1, until]; sets window_start.
 * Best effort: without history (compacted, or the store does not answer in
 * time) the window starts at `until`, as a fresh cache's does. */
static void fill_history(watch_cache *c, int64_t until) {
  c->window_start = until;
  int64_t from = until - (int64_t)c->opts.window_events + 1;
  if (from < 1) from = 1;
  if (from > until) return;
  static const etcd_watch_callbacks cb = {.on_events = history_on_events, .on_end = history_on_end};
  /* The end of the history is marked by a write of our own: the key right
   * after the kind's range (its prefix end, "/registry/pods0" for pods),
   * which the history watch covers and nothing else uses. Its event arrives
   * after every earlier one, on any store, whereas a progress notification
   * may overtake history on etcd 3.4. */
  unsigned char *end = NULL;
  size_t end_len = 0;
  if (etcd_prefix_end(c->prefix, c->prefix_len, &end, &end_len) < 0) return;
  unsigned char *sentinel_end = malloc(end_len + 1);
  if (!sentinel_end) {
    free(end);
    return;
  }
  memcpy(sentinel_end, end, end_len);
  sentinel_end[end_len] = '\0'; /* [prefix, end + "\0") = the kind's keys and `end` itself */
  for (int attempt = 0; attempt < 3; attempt++) {
    history_fill h = {.c = c, .until = until};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cond, NULL);
    etcd_watch *w = NULL;
    etcd_watch_options wo = {.key = c->prefix, .key_len = c->prefix_len, .range_end = sentinel_end,
                             .range_end_len = end_len + 1, .start_revision = from, .prev_kv = true,
                             .fragment = true};
    h.sentinel = end;
    h.sentinel_len = end_len;
    w = etcd_watch_start(objstore_etcd(c->opts.store), &wo, &cb, &h, NULL);
    bool complete = false;
    if (w) {
      if (etcd_put(objstore_etcd(c->opts.store), end, end_len, "sentinel", 8, 0, NULL, NULL) == 0) {
        struct timespec until_ts;
        clock_gettime(CLOCK_REALTIME, &until_ts);
        until_ts.tv_sec += 10;
        pthread_mutex_lock(&h.mu);
        while (!h.done && !h.ended)
          if (pthread_cond_timedwait(&h.cond, &h.mu, &until_ts) == ETIMEDOUT) break;
      } else {
        pthread_mutex_lock(&h.mu);
      }
      complete = h.done;
      pthread_mutex_unlock(&h.mu);
      etcd_watch_stop(w);
    }
    if (complete) {
      for (size_t i = 0; i < h.n; i++) window_append_locked(c, h.events[i]);
      /* Everything after from - 1 is in the window, unless it overflowed
       * (window_append moved window_start past what it dropped). */
      if (h.n <= c->opts.window_events) c->window_start = from - 1;
    } else {
      for (size_t i = 0; i < h.n; i++) event_unref(h.events[i]);
    }
    free(h.events);
    int64_t compacted = h.compacted;
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cond);
    if (complete || compacted <= from || compacted > until) break;
    from = compacted; /* the history before it is gone: take what is left */
  }
  free(end);
  free(sentinel_end);
}

watch_cache *watch_cache_start(const watch_cache_options *opts, keel_error *err) {
  watch_cache *c = calloc(1, sizeof *c);
  if (!c) {
    keel_error_set(err, ENOMEM, "watch cache: out of memory");
    return NULL;
  }
  c->opts = *opts;
  if (!c->opts.window_events) c->opts.window_events = 10000;
  if (c->opts.bookmark_interval_ms <= 0) c->opts.bookmark_interval_ms = 10000;
  if (!c->opts.watcher_queue) c->opts.watcher_queue = 1000;
  c->kind = opts->kind;
  if (objstore_prefix(opts->store, c->kind, NULL, c->prefix, sizeof c->prefix) < 0) {
    keel_error_set(err, ENAMETOOLONG, "watch cache %s: prefix too long", c->kind->resource);
    free(c);
    return NULL;
  }
  c->prefix_len = strlen(c->prefix);
  pthread_mutex_init(&c->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&c->advanced, &ca);
  pthread_cond_init(&c->timer_wake, &ca);
  pthread_condattr_destroy(&ca);
  c->window = calloc(c->opts.window_events, sizeof *c->window);
  if (!c->window || map_init(&c->objects) < 0) {
    keel_error_set(err, ENOMEM, "watch cache: out of memory");
    goto fail;
  }
  int64_t rev = 0;
  if (list_store(c, &c->objects, &rev, err) < 0) {
    keel_error_wrap(err, "watch cache %s: list", c->kind->resource);
    goto fail;
  }
  c->revision = rev;
  fill_history(c, rev);
  c->watch = start_store_watch(c, rev + 1, err);
  if (!c->watch) {
    keel_error_wrap(err, "watch cache %s: watch", c->kind->resource);
    goto fail;
  }
  if (pthread_create(&c->timer, NULL, timer_main, c) != 0) {
    keel_error_set(err, EAGAIN, "watch cache %s: cannot start its thread", c->kind->resource);
    etcd_watch_stop(c->watch);
    goto fail;
  }
  return c;
fail:
  if (c->objects.buckets) {
    map_clear(&c->objects);
    free(c->objects.buckets);
  }
  free(c->window);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->advanced);
  pthread_cond_destroy(&c->timer_wake);
  free(c);
  return NULL;
}

void watch_cache_stop(watch_cache *c) {
  if (!c) return;
  pthread_mutex_lock(&c->mu);
  c->stopping = true;
  pthread_cond_signal(&c->timer_wake);
  pthread_mutex_unlock(&c->mu);
  pthread_join(c->timer, NULL);
  if (c->watch) etcd_watch_stop(c->watch);
  cache_watcher **ended = NULL;
  size_t nended = 0;
  pthread_mutex_lock(&c->mu);
  reset_watchers_locked(c, "server shutting down", &ended, &nended);
  pthread_mutex_unlock(&c->mu);
  if (nended) end_watchers(ended, nended);
  else free(ended);
  for (size_t i = 0; i < c->wcount; i++) event_unref(c->window[(c->whead + i) % c->opts.window_events]);
  free(c->window);
  map_clear(&c->objects);
  free(c->objects.buckets);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->advanced);
  pthread_cond_destroy(&c->timer_wake);
  free(c);
}

bool watch_cache_progress_trusted(const watch_cache *c) {
  return c->opts.progress_trusted;
}

int64_t watch_cache_revision(watch_cache *c) {
  pthread_mutex_lock(&c->mu);
  int64_t r = c->revision;
  pthread_mutex_unlock(&c->mu);
  return r;
}

int watch_cache_wait(watch_cache *c, int64_t rev, int timeout_ms) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) {
    until.tv_sec++;
    until.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&c->mu);
  bool asked = false;
  int rc = 0;
  while (c->revision < rev && rc == 0) {
    if (!asked && c->watch) {
      /* Nothing of this kind may change for a while: ask the store to confirm
       * how far the watch has got. */
      etcd_watch_request_progress(c->watch);
      asked = true;
    }
    rc = pthread_cond_timedwait(&c->advanced, &c->mu, &until);
  }
  bool ok = c->revision >= rev;
  pthread_mutex_unlock(&c->mu);
  return ok ? 0 : -ETIMEDOUT;
}

static int compare_objects(const void *a, const void *b) {
  return strcmp((*(cache_object *const *)a)->key, (*(cache_object *const *)b)->key);
}

int watch_cache_list(watch_cache *c, const cache_filter *f, cache_object ***items, size_t *n,
                     int64_t *rev) {
  pthread_mutex_lock(&c->mu);
  cache_object **out = malloc((c->objects.count ? c->objects.count : 1) * sizeof *out);
  if (!out) {
    pthread_mutex_unlock(&c->mu);
    return -ENOMEM;
  }
  size_t count = 0;
  for (size_t i = 0; i < c->objects.nbuckets; i++) {
    for (map_entry *e = c->objects.buckets[i]; e; e = e->next) {
      if (!filter_matches(c, f, e->obj)) continue;
      cache_object_ref(e->obj);
      out[count++] = e->obj;
    }
  }
  *rev = c->revision;
  pthread_mutex_unlock(&c->mu);
  qsort(out, count, sizeof *out, compare_objects);
  *items = out;
  *n = count;
  return 0;
}

void cache_objects_release(cache_object **items, size_t n) {
  for (size_t i = 0; i < n; i++) cache_object_unref(items[i]);
  free(items);
}

int watch_cache_get(watch_cache *c, const char *ns, const char *name, cache_object **obj, int64_t *rev) {
  char key[OBJSTORE_KEY_MAX];
  int n = c->kind->namespaced ? snprintf(key, sizeof key, "%s/%s", ns, name) : snprintf(key, sizeof key, "%s", name);
  if (n < 0 || (size_t)n >= sizeof key) return -ENOENT;
  pthread_mutex_lock(&c->mu);
  map_entry **pp = map_find(&c->objects, key);
  cache_object *o = *pp ? (*pp)->obj : NULL;
  if (o) cache_object_ref(o);
  if (rev) *rev = c->revision;
  pthread_mutex_unlock(&c->mu);
  *obj = o;
  return o ? 0 : -ENOENT;
}

int watch_cache_watch(watch_cache *c, const cache_watch_options *opts, const cache_watcher_sink *sink,
                      cache_watcher **out, keel_error *err) {
  cache_watcher *w = calloc(1, sizeof *w);
  if (!w) return keel_error_set(err, ENOMEM, "watch: out of memory");
  atomic_init(&w->refs, 2); /* the caller's and the registration's */
  w->cache = c;
  w->kind = c->kind;
  w->opts = *opts;
  w->sink = *sink;
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_lock(&c->mu);
  w->qlimit = c->opts.watcher_queue;
  if (opts->send_initial) {
    /* The current state as ADDED events, at the cache's revision. */
    size_t count = 0;
    for (size_t i = 0; i < c->objects.nbuckets; i++)
      for (map_entry *e = c->objects.buckets[i]; e; e = e->next)
        if (filter_matches(c, &opts->filter, e->obj)) count++;
    w->qlimit += count;
    cache_object **objs = malloc((count ? count : 1) * sizeof *objs);
    size_t k = 0;
    if (objs) {
      for (size_t i = 0; i < c->objects.nbuckets; i++)
        for (map_entry *e = c->objects.buckets[i]; e; e = e->next)
          if (filter_matches(c, &opts->filter, e->obj)) objs[k++] = e->obj;
      qsort(objs, k, sizeof *objs, compare_objects);
    }
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < k; i++) {
      cache_object_ref(objs[i]);
      cache_event *ev = event_new(objs[i]->rev, objs[i], NULL);
      if (ev) watcher_push_locked(w, ev, NULL, EV_ADDED, objs[i]->rev);
    }
    pthread_mutex_unlock(&w->mu);
    free(objs);
    w->opts.from_revision = c->revision;
  } else {
    int64_t from = opts->from_revision;
    if (from < c->window_start) {
      pthread_mutex_unlock(&c->mu);
      pthread_mutex_destroy(&w->mu);
      free(w);
      return keel_error_set(err, WATCH_CACHE_TOO_OLD,
                            "too old resource version: %lld (%lld): the %s watch window starts after "
                            "%lld; list again and watch from the list's resourceVersion",
                            (long long)from, (long long)(c->window_start + 1), c->kind->resource,
                            (long long)c->window_start);
    }
    /* Replay the window's events after `from` that this watcher sees. */
    pthread_mutex_lock(&w->mu);
    size_t cap = c->opts.window_events;
    size_t replay = 0;
    for (size_t i = 0; i < c->wcount; i++)
      if (c->window[(c->whead + i) % cap]->rev > from) replay++;
    w->qlimit += replay;
    for (size_t i = 0; i < c->wcount; i++) {
      cache_event *ev = c->window[(c->whead + i) % cap];
      if (ev->rev <= from) continue;
      int type = delivered_type(c, w, ev);
      if (type < 0) continue;
      event_ref(ev);
      watcher_push_locked(w, ev, NULL, type, ev->rev);
    }
    pthread_mutex_unlock(&w->mu);
    w->opts.from_revision = from > c->revision ? from : c->revision;
  }
  if (w->last_rev < w->opts.from_revision) w->last_rev = w->opts.from_revision;
  /* Live events from here on (dispatch skips those at or below from_revision). */
  w->next_w = c->watchers;
  if (c->watchers) c->watchers->prev_w = w;
  c->watchers = w;
  w->registered = true;
  c->nwatchers++;
  pthread_mutex_lock(&w->mu);
  watcher_flush_locked(w);
  pthread_mutex_unlock(&w->mu);
  pthread_mutex_unlock(&c->mu);
  *out = w;
  return 0;
}

void watch_cache_watcher_writable(cache_watcher *w) {
  pthread_mutex_lock(&w->mu);
  w->blocked = false;
  watcher_flush_locked(w);
  pthread_mutex_unlock(&w->mu);
}

void watch_cache_watcher_stop(cache_watcher *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  watch_cache *c = w->cache; /* NULL: the cache stopped and unregistered it */
  pthread_mutex_unlock(&w->mu);
  bool was_registered = false;
  if (c) {
    pthread_mutex_lock(&c->mu);
    was_registered = w->registered;
    unlink_watcher_locked(c, w);
    pthread_mutex_unlock(&c->mu);
  }
  pthread_mutex_lock(&w->mu);
  w->dead = true;
  w->sink.end = NULL; /* no callback after we return */
  pthread_mutex_unlock(&w->mu);
  if (was_registered) watcher_unref(w); /* the registration's reference */
  watcher_unref(w);                     /* the caller's */
}

size_t watch_cache_watcher_count(watch_cache *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->nwatchers;
  pthread_mutex_unlock(&c->mu);
  return n;
}

size_t watch_cache_object_count(watch_cache *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->objects.count;
  pthread_mutex_unlock(&c->mu);
  return n;
}
