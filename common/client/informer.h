/* common/client/informer.h — list + watch of one kind into a local indexed
 * cache, with event handlers: client-go's shared informer, in C.
 *
 * LIFE. informer_start lists (consistently, paginated when page_size is set)
 * and then watches from the list's resourceVersion with bookmarks. The watch
 * resumes from the last resourceVersion seen (an event's or a bookmark's)
 * when it ends for any reason but one, so a broken connection, an apiserver
 * restart or RESOURCE_EXHAUSTED ("too slow") loses and repeats nothing. The
 * exception is OUT_OF_RANGE ("too old resource version": the server's window
 * moved past us), which relists; so does a resume that keeps failing
 * (relist_after_failures in a row without an event). Every retry waits an
 * exponential backoff with jitter (backoff_initial_ms .. backoff_max_ms),
 * reset by a watch that delivers. A relist diffs the new list against the
 * cache and reports only differences: on_add for new objects, on_update for
 * changed ones (resourceVersion differs), on_delete(final_state_unknown=true)
 * for objects gone (their last known state).
 *
 * ONE THREAD. Every handler of every registration runs on the informer's own
 * thread, one event at a time, in resourceVersion order, after the cache
 * already reflects the event. Handlers may read the cache and block briefly
 * (they hold up later events, not the network: events are buffered, up to
 * max_pending, beyond which the stream is cut and later resumed from the last
 * buffered version, so memory stays bounded). A typical handler computes a key
 * and adds it to a work queue.
 *
 * RESYNC. Every resync_ms, every handler gets on_update(obj, obj) for every
 * cached object (level-triggered controllers re-check everything).
 *
 * CACHE. Objects are keyed "namespace/name" (or "name"; client_object_key),
 * indexed by namespace (always) and by caller-defined index functions (by a
 * field such as spec.nodeName, by a label, or any function of the object).
 * Reads are thread-safe and return REFERENCES to immutable cached objects:
 * an informer_object stays valid (and unchanged) until its last unref, even if
 * the cache has moved on. Never modify one; clone (api_message_clone) to edit.
 */
#ifndef KEEL_COMMON_CLIENT_INFORMER_H
#define KEEL_COMMON_CLIENT_INFORMER_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/client/client.h"
#include "common/kinds/kinds.h"

typedef struct informer informer;

/* ---------------------------------------------------------------- objects */

/* A cached object: immutable, reference counted. */
typedef struct informer_object informer_object;
const ProtobufCMessage *informer_object_msg(const informer_object *o);
const char *informer_object_key(const informer_object *o);
int64_t informer_object_rv(const informer_object *o);
informer_object *informer_object_ref(informer_object *o);
void informer_object_unref(informer_object *o);
/* Unrefs every element and frees the array (from the list functions). */
void informer_objects_release(informer_object **objs, size_t n);

/* ---------------------------------------------------------------- setup */

typedef struct informer_options {
  client *client;        /* borrowed; must outlive the informer */
  const api_kind *kind;
  const char *ns;             /* NULL or "" = all namespaces */
  const char *label_selector; /* NULL = everything */
  const char *field_selector;
  int64_t resync_ms;          /* 0 = never */
  int64_t backoff_initial_ms; /* default 200 */
  int64_t backoff_max_ms;     /* default 10000 */
  int64_t list_timeout_ms;    /* per List call; default 60000 */
  int64_t page_size;          /* List limit per page; 0 = one List */
  int64_t watch_timeout_s;    /* the server ends each watch after this (it resumes at once); 0 = never */
  size_t max_pending;         /* events buffered ahead of the handlers; default 100000 */
  int relist_after_failures;  /* resumes failing in a row before a relist; default 8 */
  const char *name;           /* for logs; default the kind's resource */
} informer_options;

informer *informer_new(const informer_options *opts, keel_error *err);
/* Stops (if running) and frees; references handed out stay valid. */
void informer_free(informer *inf);

typedef struct informer_handlers {
  /* A new object (initial list, watch ADDED, or found by a relist). */
  void (*on_add)(const ProtobufCMessage *obj, void *arg);
  /* A changed object; old == new (same pointer) on resync. */
  void (*on_update)(const ProtobufCMessage *old_obj, const ProtobufCMessage *new_obj, void *arg);
  /* A deleted object: the DELETED event's object, or (final_state_unknown)
   * the last state this informer had when a relist found it gone. */
  void (*on_delete)(const ProtobufCMessage *obj, bool final_state_unknown, void *arg);
  void *arg;
} informer_handlers;

/* Registers handlers (any callback may be NULL); before informer_start.
 * Objects passed to handlers are borrowed for the call (informer_get gives a
 * reference that lasts). */
int informer_add_handlers(informer *inf, const informer_handlers *h, keel_error *err);

/* An index function: the object's values for the index, written as up to max
 * malloc'ed strings into values (the informer takes them). Returns how many. */
typedef size_t (*informer_index_fn)(const api_kind *k, const ProtobufCMessage *obj, char **values, size_t max,
                                    void *arg);
#define INFORMER_INDEX_MAX_VALUES 16
/* Registers an index; before informer_start. "namespace" is built in. */
int informer_add_index(informer *inf, const char *name, informer_index_fn fn, void *arg, keel_error *err);
/* An index named field_path ("spec.nodeName", "status.phase") whose value is
 * api_object_field_text's text of that field (an unset string indexes as ""). */
int informer_add_field_index(informer *inf, const char *field_path, keel_error *err);
/* An index named "label:<key>" whose value is the label's value (objects
 * without the label are not in it). */
int informer_add_label_index(informer *inf, const char *label_key, keel_error *err);

/* Starts the informer's thread (list, then watch). */
int informer_start(informer *inf, keel_error *err);
/* Stops the watch and the thread; no handler runs after it returns. The cache
 * stays readable. Idempotent. Not from a handler. */
void informer_stop(informer *inf);

/* True once the first list has been delivered to every handler. */
bool informer_has_synced(informer *inf);
/* Waits until synced (true) or timeout_ms passed (false). */
bool informer_wait_synced(informer *inf, int64_t timeout_ms);
/* Waits until the informer has seen resourceVersion rv (an event, a bookmark
 * or a list at or after it) and delivered it to the handlers: true, or false
 * after timeout_ms. Lets a writer wait for its own write. A filtered informer
 * hears of versions it has no event for only through bookmarks, so for it
 * this can take up to the apiserver's --bookmark-interval. */
bool informer_wait_rv(informer *inf, int64_t rv, int64_t timeout_ms);
/* The resourceVersion the next watch resumes from (0 before the first list). */
int64_t informer_last_rv(informer *inf);

/* ---------------------------------------------------------------- reads */

/* A reference to the cached object, or NULL when absent. */
informer_object *informer_get(informer *inf, const char *ns, const char *name);
informer_object *informer_get_by_key(informer *inf, const char *key);
size_t informer_count(informer *inf);

/* References to the cached objects in namespace ns (NULL or "" = all)
 * matching label_selector (NULL or "" = all), sorted by key. *objs is
 * malloc'ed (release with informer_objects_release). -EINVAL with err on a
 * bad selector. */
int informer_list(informer *inf, const char *ns, const char *label_selector, informer_object ***objs,
                  size_t *n, keel_error *err);
/* References to the objects whose index `index` holds value, sorted by key.
 * -ENOENT when there is no such index. */
int informer_list_by_index(informer *inf, const char *index, const char *value, informer_object ***objs,
                           size_t *n, keel_error *err);
/* The values index holds (malloc'ed array of malloc'ed strings, sorted). */
int informer_index_values(informer *inf, const char *index, char ***values, size_t *n, keel_error *err);

/* ---------------------------------------------------------------- stats */

typedef struct informer_stats {
  uint64_t lists;         /* successful lists, the first included */
  uint64_t relists_too_old; /* relists caused by OUT_OF_RANGE */
  uint64_t relists_failures; /* relists after failed resumes */
  uint64_t watches;       /* watch streams started */
  uint64_t resumes;       /* watches resumed from a last-seen version */
  uint64_t events;        /* ADDED/MODIFIED/DELETED delivered */
  uint64_t bookmarks;
  uint64_t stale_events;  /* events at or below the last version seen: dropped */
  uint64_t stream_cuts;   /* streams cut because max_pending was reached */
  uint64_t resyncs;
} informer_stats;
void informer_get_stats(informer *inf, informer_stats *st);

#endif
