/* services/apiserver/cache/watch_cache.h — one kind's objects and recent events
 * in memory, fed by a single store watch, serving List, Get and Watch.
 *
 * As kube-apiserver's cacher: the cache lists the kind's prefix once, then
 * watches it from the list's revision. It keeps every current object (decoded
 * and encoded once, immutable, shared by reference) and a window of the most
 * recent events. Thousands of API watchers cost one store watch: each event is
 * matched against every watcher's filter and its encoding is shared by all the
 * streams it goes to.
 *
 * Revisions: `revision` is the store revision up to which the cache has seen
 * everything (events, or a progress notification from the store). A watch from
 * resourceVersion R replays the window's events after R; when R is older than
 * the window the watch is refused with WATCH_CACHE_TOO_OLD so the client
 * relists. A consistent read waits until `revision` reaches the store's current
 * revision (watch_cache_wait).
 *
 * Watchers: each has a bounded queue of pending events in front of its sink (the
 * RPC stream, which takes a message when it has room); a watcher that falls
 * further behind than its bound is ended with RESOURCE_EXHAUSTED and re-watches
 * from the last version it saw. A slow watcher never blocks the cache or other
 * watchers, and never grows memory beyond its bound.
 *
 * If the store watch fails it is re-established from revision+1; if that
 * revision was compacted the cache relists and ends every watcher (they resume
 * or relist, as after an apiserver restart). */
#ifndef KEEL_SERVICES_APISERVER_CACHE_WATCH_CACHE_H
#define KEEL_SERVICES_APISERVER_CACHE_WATCH_CACHE_H

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"
#include "services/apiserver/storage/objstore.h"

#define WATCH_CACHE_TOO_OLD EXDEV /* asked revision older than the window */

typedef struct watch_cache watch_cache;

/* A cached object: decoded (with apiVersion, kind, resourceVersion set) and
 * encoded; immutable; reference counted. */
typedef struct cache_object cache_object;
const ProtobufCMessage *cache_object_msg(const cache_object *o);
const uint8_t *cache_object_wire(const cache_object *o, size_t *len);
int64_t cache_object_revision(const cache_object *o);
void cache_object_ref(cache_object *o);
void cache_object_unref(cache_object *o);

typedef struct watch_cache_options {
  const api_kind *kind;
  objstore *store;          /* borrowed; its etcd client carries the watch */
  size_t window_events;     /* recent events kept; default 10000 */
  int bookmark_interval_ms; /* bookmarks to watchers that allow them; default 10000 */
  size_t watcher_queue;     /* pending events per watcher beyond its initial state; default 1000 */
  /* The store sends a watch's progress notifications only once every earlier
   * event was delivered: keel-store does; etcd 3.4.23 may not (etcd issue
   * 15220). Untrusted, the cache's revision moves only with events, and
   * consistent reads go to the store. (A response's header revision is never
   * such a promise: catch-up responses all carry the revision the whole
   * catch-up reaches.) */
  bool progress_trusted;
} watch_cache_options;

/* Lists the kind and starts the store watch; returns once the cache holds the
 * listed state. */
watch_cache *watch_cache_start(const watch_cache_options *opts, keel_error *err);
/* Ends every watcher (UNAVAILABLE), stops the store watch, frees. */
void watch_cache_stop(watch_cache *c);

int64_t watch_cache_revision(watch_cache *c);
bool watch_cache_progress_trusted(const watch_cache *c);
/* Blocks until the cache has seen revision rev, asking the store for a progress
 * notification. 0, or -ETIMEDOUT. */
int watch_cache_wait(watch_cache *c, int64_t rev, int timeout_ms);

/* Filter: namespace (NULL or "" = all) plus a predicate (NULL = all). */
typedef struct cache_filter {
  const char *ns;
  bool (*match)(const api_kind *k, const ProtobufCMessage *obj, void *arg);
  void *arg;
} cache_filter;

/* The matching objects, sorted by namespace/name, each referenced (release with
 * cache_objects_release), and the revision they are current at. */
int watch_cache_list(watch_cache *c, const cache_filter *f, cache_object ***items, size_t *n,
                     int64_t *rev);
void cache_objects_release(cache_object **items, size_t n);
/* One object, referenced; -ENOENT when absent. */
int watch_cache_get(watch_cache *c, const char *ns, const char *name, cache_object **obj, int64_t *rev);

/* --- watchers */

typedef struct cache_watcher cache_watcher;

typedef struct cache_watcher_sink {
  /* Takes one encoded XWatchEvent: 0 when queued, -ENOBUFS when full (the sink
   * calls watch_cache_watcher_writable later), other negative: the stream is
   * gone (the watcher stops delivering). Called with the watcher's lock held:
   * must not call back into the cache. */
  int (*send)(void *arg, const rpc_shared_message *event);
  /* The cache ends the watch (too slow, cache reset, shutdown). Called at most
   * once, without cache locks held; the sink finishes its stream. */
  void (*end)(void *arg, grpc_status_code code, const char *message);
  void *arg;
} cache_watcher_sink;

typedef struct cache_watch_options {
  cache_filter filter; /* the match predicate's arg must outlive the watcher */
  /* Start: send_initial = every matching current object as ADDED first (a watch
   * from "" or "0"), then changes; otherwise changes after from_revision. */
  bool send_initial;
  int64_t from_revision;
  bool bookmarks;
} cache_watch_options;

/* Registers a watcher. -WATCH_CACHE_TOO_OLD (err names both revisions) when
 * from_revision is older than the window. */
int watch_cache_watch(watch_cache *c, const cache_watch_options *opts, const cache_watcher_sink *sink,
                      cache_watcher **out, keel_error *err);
/* The sink has room again after -ENOBUFS. */
void watch_cache_watcher_writable(cache_watcher *w);
/* Unregisters and frees; no sink callback runs after it returns. Every
 * watcher is released this way, also one the cache ended and also after
 * watch_cache_stop (then it only frees); never concurrently with
 * watch_cache_stop. */
void watch_cache_watcher_stop(cache_watcher *w);

/* Counters for metrics. */
size_t watch_cache_watcher_count(watch_cache *c);
size_t watch_cache_object_count(watch_cache *c);

#endif
