/* common/client/informer_internal.h — what informer.c (cache, handlers,
 * reads) and reflector.c (list, watch, resume, relist) share. Internal. */
#ifndef KEEL_COMMON_CLIENT_INFORMER_INTERNAL_H
#define KEEL_COMMON_CLIENT_INFORMER_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/client/indexer.h"
#include "common/client/informer.h"

/* A watch callback's hand-off to the informer's thread. */
enum { P_ADDED, P_MODIFIED, P_DELETED, P_BOOKMARK, P_CLOSE };

typedef struct pending {
  struct pending *next;
  int type;
  uint64_t gen;
  int64_t rv;
  ProtobufCMessage *obj; /* owned clone; NULL for bookmarks and CLOSE */
  client_status st;      /* CLOSE */
} pending;

typedef struct registration {
  informer_handlers h;
} registration;

typedef struct field_index {
  char *path;
  char *label;
} field_index;

struct informer {
  informer_options o;
  char *ns, *label_selector, *field_selector, *name;
  client *c;
  const api_kind *k;
  indexer *ix;
  registration *regs;
  size_t nregs;
  field_index **field_indexes; /* args of field/label index functions */
  size_t nfield_indexes;

  pthread_mutex_t mu;
  pthread_cond_t cond;     /* pending, cut request or stop (monotonic clock) */
  pthread_cond_t progress; /* synced or delivered_rv moved */
  pending *qhead, *qtail;
  size_t qlen;
  uint64_t gen;     /* the current stream's generation */
  uint64_t cut_gen; /* a stream cut for overflow: its later events are dropped */
  bool cut_requested;
  bool started, stopping, synced;
  int64_t last_rv;      /* resume version: the last event or bookmark delivered */
  int64_t delivered_rv; /* same, for informer_wait_rv (kept under mu) */
  informer_stats stats;
  pthread_t thread;
};


static inline int64_t informer_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline struct timespec informer_abs_ms(int64_t t) {
  return (struct timespec){.tv_sec = t / 1000, .tv_nsec = (long)(t % 1000) * 1000000L};
}

/* informer.c, for the reflector (all on the informer's thread). */
void informer_pending_free(pending *p);
/* One watch event, into the cache and to the handlers (takes p->obj). */
void informer_apply_event(informer *inf, pending *p);
/* A list's items (every one taken; the array stays the caller's) replace the
 * cache; handlers hear the differences. */
void informer_replace(informer *inf, ProtobufCMessage **items, size_t n);
/* on_update(obj, obj) for every cached object. */
void informer_resync(informer *inf);
/* rv is delivered: resume from it, wake informer_wait_rv. */
void informer_set_delivered(informer *inf, int64_t rv);

/* reflector.c: the informer's thread. */
void *informer_reflector_run(void *arg);

#endif
