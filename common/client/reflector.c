/* common/client/reflector.c — the informer's thread: list, then watch, and
 * resume or relist when a watch ends (client-go's Reflector).
 *
 * Two halves meet at a queue. The watch callbacks (channel threads, must not
 * block) only clone each event's object and append it, tagged with the
 * stream's generation, to the informer's `pending` list; this thread takes
 * the list in batches and, in order, updates the cache and calls the handlers
 * (informer.c). A stream's end arrives as one last CLOSE entry, so what to do
 * next is decided only after every event of that stream has been delivered:
 * the version a resume starts from is exactly the last one delivered, which is
 * what makes a resume lose and repeat nothing. Entries of an older generation
 * (a stream given up) are dropped.
 *
 * After a stream ends: OUT_OF_RANGE (too old) -> relist at once; a stream that
 * delivered something (or was cut for overflow) -> resume at once; otherwise
 * back off, and relist after relist_after_failures such resumes in a row. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/informer_internal.h"
#include "common/log/log.h"

typedef struct watch_ctx {
  informer *inf;
  uint64_t gen;
  client_watch *w;
  pending *close; /* allocated up front: the end is never lost to OOM */
} watch_ctx;

/* ---------------------------------------------------------------- waiting */

static bool stopping(informer *inf) {
  pthread_mutex_lock(&inf->mu);
  bool s = inf->stopping;
  pthread_mutex_unlock(&inf->mu);
  return s;
}

/* Resyncs when due (and synced); returns the next due time. */
static int64_t maybe_resync(informer *inf, int64_t *due) {
  if (inf->o.resync_ms <= 0) return INT64_MAX;
  if (informer_now_ms() >= *due) {
    if (informer_has_synced(inf)) informer_resync(inf);
    *due = informer_now_ms() + inf->o.resync_ms;
  }
  return *due;
}

/* Sleeps about *backoff (half to all of it, jittered), doubling it for next
 * time; resyncs meanwhile when due. False when stopping. */
static bool sleep_backoff(informer *inf, int64_t *backoff, int64_t *resync_due, unsigned *seed) {
  int64_t wait = *backoff / 2 + (int64_t)(rand_r(seed) % (unsigned)(*backoff / 2 + 1));
  *backoff = *backoff * 2 > inf->o.backoff_max_ms ? inf->o.backoff_max_ms : *backoff * 2;
  int64_t until = informer_now_ms() + wait;
  for (;;) {
    int64_t next = maybe_resync(inf, resync_due);
    pthread_mutex_lock(&inf->mu);
    if (inf->stopping) {
      pthread_mutex_unlock(&inf->mu);
      return false;
    }
    int64_t now = informer_now_ms();
    if (now >= until) {
      pthread_mutex_unlock(&inf->mu);
      return true;
    }
    struct timespec ts = informer_abs_ms(next < until ? next : until);
    pthread_cond_timedwait(&inf->cond, &inf->mu, &ts);
    pthread_mutex_unlock(&inf->mu);
  }
}

/* ---------------------------------------------------------------- list */

typedef struct list_call {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int refs; /* the informer's and the callback's */
  bool done;
  client_status st;
  ProtobufCMessage *resp;
} list_call;

static void list_call_unref(list_call *lc) {
  pthread_mutex_lock(&lc->mu);
  bool last = --lc->refs == 0;
  pthread_mutex_unlock(&lc->mu);
  if (!last) return;
  if (lc->resp) protobuf_c_message_free_unpacked(lc->resp, NULL);
  pthread_mutex_destroy(&lc->mu);
  pthread_cond_destroy(&lc->cond);
  free(lc);
}

static void list_done(void *arg, const client_status *st, ProtobufCMessage *resp) {
  list_call *lc = arg;
  pthread_mutex_lock(&lc->mu);
  lc->st = *st;
  lc->resp = resp;
  lc->done = true;
  pthread_cond_broadcast(&lc->cond);
  pthread_mutex_unlock(&lc->mu);
  list_call_unref(lc);
}

/* One List page, asynchronously so that informer_stop never waits for it.
 * 0 with *resp, -1 with *st, or -ECANCELED when stopping. */
static int list_page(informer *inf, const char *cont, ProtobufCMessage **resp, client_status *st) {
  Keel__Api__V1__ListRequest req = KEEL__API__V1__LIST_REQUEST__INIT;
  req.namespace_ = inf->ns ? inf->ns : "";
  req.label_selector = inf->label_selector ? inf->label_selector : "";
  req.field_selector = inf->field_selector ? inf->field_selector : "";
  req.limit = inf->o.page_size > 0 ? inf->o.page_size : 0;
  req.continue_ = (char *)(cont ? cont : "");
  list_call *lc = calloc(1, sizeof(*lc));
  if (!lc) {
    st->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    snprintf(st->message, sizeof(st->message), "out of memory");
    return -1;
  }
  pthread_mutex_init(&lc->mu, NULL);
  pthread_cond_init(&lc->cond, NULL);
  lc->refs = 2;
  client_call_options co = {.timeout_ms = inf->o.list_timeout_ms};
  if (client_call_async(inf->c, inf->k, CLIENT_LIST, &req.base, &co, list_done, lc, st) < 0) {
    lc->refs = 1;
    list_call_unref(lc);
    return -1;
  }
  pthread_mutex_lock(&lc->mu);
  while (!lc->done) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&lc->cond, &lc->mu, &ts);
    if (!lc->done && stopping(inf)) {
      pthread_mutex_unlock(&lc->mu);
      list_call_unref(lc); /* the callback frees the answer when it comes */
      return -ECANCELED;
    }
  }
  *st = lc->st;
  *resp = lc->resp;
  lc->resp = NULL;
  pthread_mutex_unlock(&lc->mu);
  list_call_unref(lc);
  return st->code == GRPC_STATUS_OK && *resp ? 0 : -1;
}

/* The items of a list response, stolen out of it (each is a separate
 * protobuf-c allocation, so it can be freed on its own). */
static size_t steal_items(const api_kind *k, ProtobufCMessage *list, ProtobufCMessage ***out) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(k->list, "items");
  size_t *n = (size_t *)((char *)list + f->quantifier_offset);
  ProtobufCMessage ***arr = (ProtobufCMessage ***)((char *)list + f->offset);
  size_t count = *n;
  *out = *arr;
  *arr = NULL;
  *n = 0;
  return count;
}

static const Keel__Api__V1__ListMeta *list_meta(const api_kind *k, const ProtobufCMessage *list) {
  const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(k->list, "metadata");
  return f ? *(Keel__Api__V1__ListMeta *const *)((const char *)list + f->offset) : NULL;
}

typedef struct listed {
  ProtobufCMessage **items;
  size_t n, cap;
} listed;

static void listed_free(listed *l) {
  for (size_t i = 0; i < l->n; i++)
    if (l->items[i]) protobuf_c_message_free_unpacked(l->items[i], NULL);
  free(l->items);
}

/* Lists every page; on success the cache holds the list and *rv its version.
 * 0, -1 (failed: st), -ECANCELED. */
static int do_list(informer *inf, int64_t *rv, client_status *st) {
  listed l = {0};
  char *cont = NULL;
  int64_t list_rv = -1;
  int rc = 0;
  for (;;) {
    ProtobufCMessage *resp = NULL;
    rc = list_page(inf, cont, &resp, st);
    free(cont);
    cont = NULL;
    if (rc < 0) break;
    const Keel__Api__V1__ListMeta *m = list_meta(inf->k, resp);
    if (list_rv < 0) list_rv = m && m->resource_version ? strtoll(m->resource_version, NULL, 10) : 0;
    if (m && m->continue_ && *m->continue_) cont = strdup(m->continue_);
    ProtobufCMessage **items;
    size_t n = steal_items(inf->k, resp, &items);
    if (l.n + n > l.cap) {
      size_t cap = l.cap ? l.cap : 64;
      while (cap < l.n + n) cap *= 2;
      ProtobufCMessage **a = realloc(l.items, cap * sizeof(*a));
      if (!a) {
        for (size_t i = 0; i < n; i++) protobuf_c_message_free_unpacked(items[i], NULL);
        free(items);
        protobuf_c_message_free_unpacked(resp, NULL);
        st->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(st->message, sizeof(st->message), "out of memory");
        rc = -1;
        break;
      }
      l.items = a;
      l.cap = cap;
    }
    if (n) memcpy(l.items + l.n, items, n * sizeof(*items));
    l.n += n;
    free(items);
    protobuf_c_message_free_unpacked(resp, NULL);
    if (!cont) break;
  }
  free(cont);
  if (rc == 0) {
    informer_replace(inf, l.items, l.n); /* takes every item */
    free(l.items);
    *rv = list_rv;
  } else {
    listed_free(&l);
  }
  return rc;
}

/* ---------------------------------------------------------------- watch */

static void push_locked(informer *inf, pending *p) {
  p->next = NULL;
  if (inf->qtail) inf->qtail->next = p;
  else inf->qhead = p;
  inf->qtail = p;
  inf->qlen++;
  pthread_cond_broadcast(&inf->cond);
}

static void on_watch_event(const char *type, const ProtobufCMessage *object, int64_t rv, void *arg) {
  watch_ctx *ctx = arg;
  informer *inf = ctx->inf;
  int t = strcmp(type, "ADDED") == 0      ? P_ADDED
          : strcmp(type, "MODIFIED") == 0 ? P_MODIFIED
          : strcmp(type, "DELETED") == 0  ? P_DELETED
          : strcmp(type, "BOOKMARK") == 0 ? P_BOOKMARK
                                          : -1;
  if (t < 0) {
    LOG_WARN("informer: unknown watch event type ignored", "informer", inf->name, "type", type);
    return;
  }
  pthread_mutex_lock(&inf->mu);
  bool drop = ctx->gen != inf->gen || ctx->gen == inf->cut_gen;
  if (!drop && inf->qlen >= inf->o.max_pending) {
    /* The handlers are too far behind: stop reading this stream; the thread
     * cancels it and resumes from the last version queued. */
    inf->cut_gen = ctx->gen;
    inf->cut_requested = true;
    inf->stats.stream_cuts++;
    pthread_cond_broadcast(&inf->cond);
    drop = true;
  }
  pthread_mutex_unlock(&inf->mu);
  if (drop) return;
  pending *p = calloc(1, sizeof(*p));
  if (!p) goto oom;
  p->type = t;
  p->gen = ctx->gen;
  p->rv = rv;
  if (t != P_BOOKMARK && !(p->obj = api_message_clone(object))) {
    free(p);
    goto oom;
  }
  pthread_mutex_lock(&inf->mu);
  push_locked(inf, p);
  pthread_mutex_unlock(&inf->mu);
  return;
oom:
  /* Losing an event silently would corrupt the cache: cut the stream instead,
   * it resumes from the last event queued. */
  pthread_mutex_lock(&inf->mu);
  if (ctx->gen == inf->gen) {
    inf->cut_gen = ctx->gen;
    inf->cut_requested = true;
    pthread_cond_broadcast(&inf->cond);
  }
  pthread_mutex_unlock(&inf->mu);
}

static void on_watch_close(const client_status *st, void *arg) {
  watch_ctx *ctx = arg;
  informer *inf = ctx->inf;
  pending *p = ctx->close;
  ctx->close = NULL;
  p->type = P_CLOSE;
  p->gen = ctx->gen;
  p->st = *st;
  pthread_mutex_lock(&inf->mu);
  push_locked(inf, p);
  pthread_mutex_unlock(&inf->mu);
}

typedef struct watch_result {
  client_status st;   /* how it ended */
  bool healthy;       /* delivered something (or was cut): resume at once */
  bool cut;
} watch_result;

/* Runs one watch stream from inf->last_rv until it ends or the informer
 * stops: 0 with *res, -1 if it could not start, -ECANCELED when stopping. */
static int run_watch(informer *inf, int64_t *resync_due, watch_result *res) {
  memset(res, 0, sizeof(*res));
  watch_ctx *ctx = calloc(1, sizeof(*ctx));
  if (!ctx || !(ctx->close = calloc(1, sizeof(pending)))) {
    free(ctx);
    return -1;
  }
  ctx->inf = inf;
  char rvbuf[32];
  pthread_mutex_lock(&inf->mu);
  ctx->gen = ++inf->gen;
  inf->cut_requested = false;
  snprintf(rvbuf, sizeof(rvbuf), "%" PRId64, inf->last_rv);
  inf->stats.watches++;
  pthread_mutex_unlock(&inf->mu);
  Keel__Api__V1__WatchRequest req = KEEL__API__V1__WATCH_REQUEST__INIT;
  req.namespace_ = inf->ns ? inf->ns : "";
  req.label_selector = inf->label_selector ? inf->label_selector : "";
  req.field_selector = inf->field_selector ? inf->field_selector : "";
  req.resource_version = rvbuf;
  req.allow_watch_bookmarks = true;
  req.timeout_seconds = inf->o.watch_timeout_s > 0 ? inf->o.watch_timeout_s : 0;
  client_watch_handlers h = {.on_event = on_watch_event, .on_close = on_watch_close};
  keel_error err = {0};
  client_watch *w = client_watch_start(inf->c, inf->k, &req, &h, ctx, &err);
  if (!w) {
    LOG_WARN("informer: watch did not start", "informer", inf->name, "error", err.message);
    free(ctx->close);
    free(ctx);
    return -1;
  }
  ctx->w = w;
  bool closed = false, stop = false;
  while (!closed && !stop) {
    int64_t next = maybe_resync(inf, resync_due);
    pthread_mutex_lock(&inf->mu);
    while (!inf->qhead && !inf->stopping && !inf->cut_requested && informer_now_ms() < next) {
      struct timespec ts = informer_abs_ms(next);
      pthread_cond_timedwait(&inf->cond, &inf->mu, &ts);
    }
    stop = inf->stopping;
    bool cut = inf->cut_requested;
    inf->cut_requested = false;
    pending *batch = inf->qhead;
    inf->qhead = inf->qtail = NULL;
    inf->qlen = 0;
    pthread_mutex_unlock(&inf->mu);
    if (cut) {
      res->cut = true;
      client_watch_cancel(w);
    }
    for (pending *p = batch; p && !stop; p = p->next) {
      if (p->gen != ctx->gen) continue;
      if (p->type == P_CLOSE) {
        res->st = p->st;
        closed = true;
      } else if (p->type == P_BOOKMARK) {
        pthread_mutex_lock(&inf->mu);
        inf->stats.bookmarks++;
        pthread_mutex_unlock(&inf->mu);
        res->healthy = true;
        informer_set_delivered(inf, p->rv);
      } else {
        res->healthy = true;
        informer_apply_event(inf, p);
      }
    }
    informer_pending_free(batch);
  }
  client_watch_stop(w); /* returns once on_close ran: nothing refers to ctx after */
  free(ctx->close);
  free(ctx);
  if (res->cut) res->healthy = true;
  return stop ? -ECANCELED : 0;
}

/* ---------------------------------------------------------------- thread */

void *informer_reflector_run(void *arg) {
  informer *inf = arg;
  unsigned seed = (unsigned)informer_now_ms() ^ (unsigned)(uintptr_t)inf;
  int64_t backoff = inf->o.backoff_initial_ms;
  int64_t resync_due = inf->o.resync_ms > 0 ? informer_now_ms() + inf->o.resync_ms : INT64_MAX;
  bool need_list = true;
  int failures = 0;
  while (!stopping(inf)) {
    if (need_list) {
      int64_t rv = 0;
      client_status st = {0};
      int rc = do_list(inf, &rv, &st);
      if (rc == -ECANCELED) break;
      if (rc < 0) {
        LOG_WARN("informer: list failed", "informer", inf->name, "code", rpc_status_code_name(st.code), "error",
                 st.message);
        if (!sleep_backoff(inf, &backoff, &resync_due, &seed)) break;
        continue;
      }
      pthread_mutex_lock(&inf->mu);
      inf->last_rv = rv; /* a relist may move back (another apiserver): the list rules */
      if (rv > inf->delivered_rv || !inf->synced) inf->delivered_rv = rv;
      inf->synced = true;
      inf->stats.lists++;
      pthread_cond_broadcast(&inf->progress);
      pthread_mutex_unlock(&inf->mu);
      LOG_DEBUG("informer: listed", "informer", inf->name, "rv", log_int(rv), "objects",
                log_int((long long)indexer_count(inf->ix)));
      need_list = false;
      failures = 0;
      backoff = inf->o.backoff_initial_ms;
    }
    watch_result res;
    int rc = run_watch(inf, &resync_due, &res);
    if (rc == -ECANCELED) break;
    if (rc == 0 && client_is_too_old(&res.st)) {
      LOG_INFO("informer: watch too old, relisting", "informer", inf->name, "error", res.st.message);
      pthread_mutex_lock(&inf->mu);
      inf->stats.relists_too_old++;
      pthread_mutex_unlock(&inf->mu);
      need_list = true;
      continue;
    }
    if (rc == 0 && res.healthy) {
      failures = 0;
      backoff = inf->o.backoff_initial_ms;
    } else {
      failures++;
    }
    if (rc == 0 && res.st.code != GRPC_STATUS_OK && !res.cut)
      LOG_DEBUG("informer: watch ended, resuming", "informer", inf->name, "code", rpc_status_code_name(res.st.code),
                "error", res.st.message, "rv", log_int(informer_last_rv(inf)));
    if (failures >= inf->o.relist_after_failures) {
      LOG_WARN("informer: watch keeps failing, relisting", "informer", inf->name, "code",
               rpc_status_code_name(res.st.code), "error", res.st.message);
      pthread_mutex_lock(&inf->mu);
      inf->stats.relists_failures++;
      pthread_mutex_unlock(&inf->mu);
      failures = 0;
      need_list = true;
    }
    pthread_mutex_lock(&inf->mu);
    inf->stats.resumes += need_list ? 0 : 1;
    pthread_mutex_unlock(&inf->mu);
    /* A stream that worked is resumed at once; a failing one waits. */
    if (!(rc == 0 && res.healthy) && !sleep_backoff(inf, &backoff, &resync_due, &seed)) break;
  }
  return NULL;
}
