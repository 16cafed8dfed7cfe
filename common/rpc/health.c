/* common/rpc/health.c — grpc.health.v1.Health (see services.h).
 *
 * State: a small table of service -> status (a server has a handful of
 * services, so a linear scan beats anything cleverer) and a list of watchers,
 * one per open Watch stream, each holding a reference on its call.
 *
 * Locking. h->mu guards the table, the list and the shutdown flag, and is never
 * held across an rpc_call_* function: the runtime may call back into us (a
 * cancel callback runs synchronously from rpc_call_on_cancel when the call is
 * already gone) and may hold its own call lock while doing so. Sends to one
 * watcher are serialized by that watcher's send_mu, and each send re-reads the
 * *current* status under h->mu, so whichever update sends last sends the
 * latest value: a watcher never ends on a stale status, and never gets the
 * same status twice in a row (as grpc-go's health server behaves). Lock order:
 * send_mu, then h->mu (briefly), never the other way.
 *
 * Lifetime. A watcher is reference counted: the list holds one reference,
 * whoever is sending holds another. The last reference drops the call
 * reference, outside every lock. Watchers leave the list when the call is
 * cancelled, when a send fails (the stream is over), or when shutdown begins:
 * after that no status changes again, so there is nothing left to watch for and
 * the runtime ends the streams itself. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/rpc/rpc.h"
#include "common/rpc/services.h"
#include "grpc/health/v1/health.pb-c.h"

typedef struct watcher {
  struct watcher *prev, *next; /* in h->watchers while listed */
  bool listed;                 /* guarded by h->mu */
  atomic_int refs;
  rpc_call *call; /* one reference, dropped with the watcher */
  char *service;
  pthread_mutex_t send_mu;
  int last_sent; /* guarded by send_mu; -1 before the first send */
  bool done;     /* guarded by send_mu: a send failed, the stream is over */
} watcher;

typedef struct {
  char *service;
  int status;
} health_entry;

struct rpc_health {
  pthread_mutex_t mu;
  health_entry *entries;
  size_t nentries, cap;
  watcher *watchers; /* doubly linked, head */
  bool shutting_down;
};

/* ------------------------------------------------------------ status table */

static health_entry *find_entry(rpc_health *h, const char *service) {
  for (size_t i = 0; i < h->nentries; i++)
    if (strcmp(h->entries[i].service, service) == 0) return &h->entries[i];
  return NULL;
}

/* The status a watcher of `service` should see now. Caller holds h->mu. */
static int current_status(rpc_health *h, const char *service) {
  health_entry *e = find_entry(h, service);
  return e ? e->status : RPC_HEALTH_SERVICE_UNKNOWN;
}

/* Caller holds h->mu. */
static int upsert(rpc_health *h, const char *service, int status) {
  health_entry *e = find_entry(h, service);
  if (e) {
    e->status = status;
    return 0;
  }
  if (h->nentries == h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 8;
    health_entry *p = realloc(h->entries, cap * sizeof(*p));
    if (!p) return -ENOMEM;
    h->entries = p;
    h->cap = cap;
  }
  char *copy = strdup(service);
  if (!copy) return -ENOMEM;
  h->entries[h->nentries++] = (health_entry){.service = copy, .status = status};
  return 0;
}

/* ------------------------------------------------------------ watchers */

static void watcher_unref(watcher *w) {
  if (atomic_fetch_sub(&w->refs, 1) != 1) return;
  rpc_call_unref(w->call);
  pthread_mutex_destroy(&w->send_mu);
  free(w->service);
  free(w);
}

/* Caller holds h->mu; the list's reference passes to the caller. */
static void unlink_locked(rpc_health *h, watcher *w) {
  if (w->prev)
    w->prev->next = w->next;
  else
    h->watchers = w->next;
  if (w->next) w->next->prev = w->prev;
  w->prev = w->next = NULL;
  w->listed = false;
}

static void watcher_remove(rpc_health *h, watcher *w) {
  pthread_mutex_lock(&h->mu);
  bool was_listed = w->listed;
  if (was_listed) unlink_locked(h, w);
  pthread_mutex_unlock(&h->mu);
  if (was_listed) watcher_unref(w);
}

/* Sends the current status to w unless it already has it. Caller holds a
 * reference on w and no lock. */
static void watcher_sync(rpc_health *h, watcher *w) {
  pthread_mutex_lock(&w->send_mu);
  bool failed = false;
  if (!w->done) {
    pthread_mutex_lock(&h->mu);
    int status = current_status(h, w->service);
    pthread_mutex_unlock(&h->mu);
    if (status != w->last_sent) {
      Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
      resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
      if (rpc_call_send(w->call, &resp.base) == 0) {
        w->last_sent = status;
      } else {
        /* Cancelled, finished, or too slow (and so finished): no more sends. */
        w->done = failed = true;
      }
    }
  }
  pthread_mutex_unlock(&w->send_mu);
  if (failed) watcher_remove(h, w);
}

/* Syncs every watcher in ws (each referenced by the caller) and drops the
 * references. */
static void sync_and_release(rpc_health *h, watcher **ws, size_t n) {
  for (size_t i = 0; i < n; i++) {
    watcher_sync(h, ws[i]);
    watcher_unref(ws[i]);
  }
}

static void on_watch_cancel(rpc_call *call, void *arg) {
  rpc_health *h = arg;
  watcher *found = NULL;
  pthread_mutex_lock(&h->mu);
  for (watcher *w = h->watchers; w; w = w->next) {
    if (w->call == call) {
      found = w;
      unlink_locked(h, w);
      break;
    }
  }
  pthread_mutex_unlock(&h->mu);
  if (found) watcher_unref(found);
}

/* ------------------------------------------------------------ handlers */

static const char *request_service(const ProtobufCMessage *request) {
  const Grpc__Health__V1__HealthCheckRequest *req =
      (const Grpc__Health__V1__HealthCheckRequest *)request;
  return req && req->service ? req->service : "";
}

static void handle_check(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
  rpc_health *h = ctx;
  const char *service = request_service(request);
  pthread_mutex_lock(&h->mu);
  health_entry *e = find_entry(h, service);
  int status = e ? e->status : -1;
  pthread_mutex_unlock(&h->mu);
  if (status < 0) {
    /* Cut: a status message travels in a trailer, whose size is bounded. */
    rpc_call_finish(call, GRPC_STATUS_NOT_FOUND, "unknown service \"%.256s\"", service);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)status;
  rpc_call_reply(call, &resp.base);
}

static void handle_watch(rpc_call *call, const ProtobufCMessage *request, void *ctx) {
  rpc_health *h = ctx;
  watcher *w = calloc(1, sizeof(*w));
  char *service = strdup(request_service(request));
  if (!w || !service) {
    free(w);
    free(service);
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "health watch: out of memory");
    return;
  }
  rpc_call_ref(call);
  w->call = call;
  w->service = service;
  w->last_sent = -1;
  pthread_mutex_init(&w->send_mu, NULL);
  atomic_init(&w->refs, 1); /* ours */

  pthread_mutex_lock(&h->mu);
  /* After shutdown began nothing changes any more: send the status, keep no
   * reference, and let the runtime end the stream. */
  bool listed = !h->shutting_down;
  if (listed) {
    atomic_fetch_add(&w->refs, 1); /* the list's */
    w->listed = true;
    w->next = h->watchers;
    if (h->watchers) h->watchers->prev = w;
    h->watchers = w;
  }
  pthread_mutex_unlock(&h->mu);

  /* Listed before the first send, so no update can fall between the two. */
  watcher_sync(h, w);
  /* May run on_watch_cancel right here if the call is already cancelled. */
  if (listed) rpc_call_on_cancel(call, on_watch_cancel, h);
  watcher_unref(w);
}

static const rpc_method_handler health_handlers[] = {
    {.name = "Check", .kind = RPC_UNARY, .on_request = handle_check},
    {.name = "Watch", .kind = RPC_SERVER_STREAMING, .on_request = handle_watch},
};

/* ------------------------------------------------------------ public */

rpc_health *rpc_health_create(void) {
  rpc_health *h = calloc(1, sizeof(*h));
  if (!h) return NULL;
  pthread_mutex_init(&h->mu, NULL);
  if (upsert(h, "", RPC_HEALTH_SERVING) < 0) {
    rpc_health_destroy(h);
    return NULL;
  }
  return h;
}

int rpc_health_register(rpc_health *h, rpc_server *srv, keel_error *err) {
  int r = rpc_server_add_service(srv, &grpc__health__v1__health__descriptor, health_handlers,
                                 KEEL_ARRAY_LEN(health_handlers), h, err);
  if (r < 0) return keel_error_wrap(err, "register grpc.health.v1.Health");
  size_t n = rpc_server_service_count(srv);
  for (size_t i = 0; i < n; i++) {
    const char *name = rpc_server_service_name(srv, i);
    if (name) rpc_health_set(h, name, RPC_HEALTH_SERVING);
  }
  return 0;
}

void rpc_health_set(rpc_health *h, const char *service, int status) {
  if (!h || !service) return;
  watcher *stack_ws[16];
  watcher **ws = stack_ws;
  size_t n = 0;
  pthread_mutex_lock(&h->mu);
  if (h->shutting_down) {
    pthread_mutex_unlock(&h->mu);
    return;
  }
  health_entry *e = find_entry(h, service);
  bool changed = !e || e->status != status;
  if (upsert(h, service, status) < 0) changed = false; /* out of memory: nothing to tell */
  size_t count = 0;
  if (changed)
    for (watcher *w = h->watchers; w; w = w->next)
      if (strcmp(w->service, service) == 0) count++;
  if (count > KEEL_ARRAY_LEN(stack_ws)) {
    ws = malloc(count * sizeof(*ws));
    if (!ws) { /* the first few hear now, the others at the next change */
      ws = stack_ws;
      count = KEEL_ARRAY_LEN(stack_ws);
    }
  }
  for (watcher *w = h->watchers; w && n < count; w = w->next) {
    if (strcmp(w->service, service) == 0) {
      atomic_fetch_add(&w->refs, 1);
      ws[n++] = w;
    }
  }
  pthread_mutex_unlock(&h->mu);
  sync_and_release(h, ws, n);
  if (ws != stack_ws) free(ws);
}

void rpc_health_begin_shutdown(rpc_health *h) {
  if (!h) return;
  pthread_mutex_lock(&h->mu);
  if (h->shutting_down) {
    pthread_mutex_unlock(&h->mu);
    return;
  }
  h->shutting_down = true;
  for (size_t i = 0; i < h->nentries; i++) h->entries[i].status = RPC_HEALTH_NOT_SERVING;
  /* Detach the whole list: its references become ours, and the chain, no
   * longer reachable from h, is ours to walk without the lock. */
  watcher *chain = h->watchers;
  h->watchers = NULL;
  for (watcher *w = chain; w; w = w->next) w->listed = false;
  pthread_mutex_unlock(&h->mu);
  while (chain) {
    watcher *w = chain;
    chain = w->next;
    w->prev = w->next = NULL;
    watcher_sync(h, w);
    watcher_unref(w);
  }
}

void rpc_health_destroy(rpc_health *h) {
  if (!h) return;
  /* Watchers still listed belong to calls the runtime has closed by now. */
  watcher *w = h->watchers;
  h->watchers = NULL;
  while (w) {
    watcher *next = w->next;
    w->listed = false;
    watcher_unref(w);
    w = next;
  }
  for (size_t i = 0; i < h->nentries; i++) free(h->entries[i].service);
  free(h->entries);
  pthread_mutex_destroy(&h->mu);
  free(h);
}
