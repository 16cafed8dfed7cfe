/* common/etcd/watch.c — one watcher per Watch stream.
 *
 * The stream carries one create request, then progress requests; responses
 * are turned into callbacks on the channel thread. A normal response's events
 * are handed out borrowed from the decoded message (no copy); only the earlier
 * parts of a fragmented response are copied, since their messages are freed
 * before the last part arrives.
 *
 * Lifetime. The watch is freed by etcd_watch_stop, never by the stream. stop
 * marks it stopped (no user callback starts after that), cancels the stream,
 * then either waits for the running callback and the stream's on_close (from a
 * plain thread) or, from a callback thread where that wait could deadlock the
 * channel, leaves the free to the last on_close. `open_streams` counts streams
 * whose on_close has not finished: while it is nonzero rpc may still call in
 * with w as its argument.
 *
 * A stream that fails to connect before the server acknowledged the create is
 * restarted on the next endpoint (the channel has failed over already), once
 * per endpoint; any other end is reported through on_end.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/etcd/etcd.h"
#include "common/etcd/internal.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "etcd/mvccpb/kv.pb-c.h"

#define M_WATCH "/etcdserverpb.Watch/Watch"
#define STACK_EVENTS 32

typedef struct frag_event {
  etcd_event ev;
  void *mem; /* key, value, prev key, prev value */
} frag_event;

struct etcd_watch {
  etcd_client *c;
  etcd_watch_callbacks cb;
  void *arg;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rpc_stream *stream; /* the current stream */
  int open_streams;
  int in_callback;
  bool stopped;      /* etcd_watch_stop was called */
  bool ended;        /* on_end delivered or being delivered */
  bool free_on_close;
  bool created;      /* the current stream's create was acknowledged */
  size_t restarts;
  /* The create request, kept for restarts. */
  unsigned char *key, *range_end;
  size_t key_len, range_end_len;
  int64_t start_revision;
  bool prev_kv, progress_notify, fragment;
  char what[160];
  /* Parts of a fragmented response (channel thread only). */
  frag_event *frags;
  size_t nfrags, cap_frags;
};

/* ---------------------------------------------------------------- callbacks */

static bool cb_enter(etcd_watch *w, bool end) {
  pthread_mutex_lock(&w->mu);
  bool go = !w->stopped && !w->ended;
  if (go) {
    w->in_callback++;
    if (end) w->ended = true;
  }
  pthread_mutex_unlock(&w->mu);
  if (go) etcd_in_callback++;
  return go;
}

static void cb_exit(etcd_watch *w) {
  etcd_in_callback--;
  pthread_mutex_lock(&w->mu);
  w->in_callback--;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
}

static void deliver_end(etcd_watch *w, int64_t compact_revision, const keel_error *why) {
  if (!cb_enter(w, true)) return;
  if (w->cb.on_end) w->cb.on_end(w->arg, compact_revision, why);
  cb_exit(w);
}

/* ---------------------------------------------------------------- events */

static void event_fill(etcd_event *d, const Mvccpb__Event *s) {
  memset(d, 0, sizeof(*d));
  d->type = (int)s->type;
  if (s->kv) {
    d->kv.key = (char *)s->kv->key.data;
    d->kv.key_len = s->kv->key.len;
    d->kv.value = s->kv->value.len ? s->kv->value.data : NULL;
    d->kv.value_len = s->kv->value.len;
    d->kv.create_revision = s->kv->create_revision;
    d->kv.mod_revision = s->kv->mod_revision;
    d->kv.version = s->kv->version;
    d->kv.lease = s->kv->lease;
  }
  if (s->prev_kv) {
    d->has_prev_kv = true;
    d->prev_kv.key = (char *)s->prev_kv->key.data;
    d->prev_kv.key_len = s->prev_kv->key.len;
    d->prev_kv.value = s->prev_kv->value.len ? s->prev_kv->value.data : NULL;
    d->prev_kv.value_len = s->prev_kv->value.len;
    d->prev_kv.create_revision = s->prev_kv->create_revision;
    d->prev_kv.mod_revision = s->prev_kv->mod_revision;
    d->prev_kv.version = s->prev_kv->version;
    d->prev_kv.lease = s->prev_kv->lease;
  }
}

static void frags_clear(etcd_watch *w) {
  for (size_t i = 0; i < w->nfrags; i++) free(w->frags[i].mem);
  w->nfrags = 0;
}

static void *copy_into(char **p, const void *src, size_t n) {
  if (n == 0) return NULL;
  void *d = *p;
  memcpy(d, src, n);
  *p += n;
  return d;
}

/* Keeps a copy of a fragment's events until the last fragment arrives. */
static int frags_append(etcd_watch *w, const Etcdserverpb__WatchResponse *r) {
  if (w->nfrags + r->n_events > w->cap_frags) {
    size_t cap = w->cap_frags ? w->cap_frags : 64;
    while (cap < w->nfrags + r->n_events) cap *= 2;
    frag_event *f = realloc(w->frags, cap * sizeof(*f));
    if (!f) return -ENOMEM;
    w->frags = f;
    w->cap_frags = cap;
  }
  for (size_t i = 0; i < r->n_events; i++) {
    etcd_event ev;
    event_fill(&ev, r->events[i]);
    size_t n = ev.kv.key_len + ev.kv.value_len + ev.prev_kv.key_len + ev.prev_kv.value_len;
    char *mem = malloc(n ? n : 1);
    if (!mem) return -ENOMEM;
    char *p = mem;
    ev.kv.key = copy_into(&p, ev.kv.key, ev.kv.key_len);
    ev.kv.value = copy_into(&p, ev.kv.value, ev.kv.value_len);
    ev.prev_kv.key = copy_into(&p, ev.prev_kv.key, ev.prev_kv.key_len);
    ev.prev_kv.value = copy_into(&p, ev.prev_kv.value, ev.prev_kv.value_len);
    w->frags[w->nfrags].ev = ev;
    w->frags[w->nfrags].mem = mem;
    w->nfrags++;
  }
  return 0;
}

static void fail_stream(etcd_watch *w, rpc_stream *s, int code, const char *detail) {
  keel_error e = {0};
  keel_error_set(&e, code, "etcd %s: %s", w->what, detail);
  deliver_end(w, 0, &e);
  rpc_stream_cancel(s);
}

static void on_message(rpc_stream *s, const ProtobufCMessage *msg, void *arg) {
  etcd_watch *w = arg;
  const Etcdserverpb__WatchResponse *r = (const Etcdserverpb__WatchResponse *)msg;
  int64_t rev = r->header ? r->header->revision : 0;
  if (r->created) {
    pthread_mutex_lock(&w->mu);
    w->created = true;
    pthread_mutex_unlock(&w->mu);
  }
  if (r->compact_revision > 0) {
    keel_error e = {0};
    keel_error_set(&e, ETCD_ECOMPACTED,
                   "etcd %s: etcdserver: mvcc: required revision has been compacted "
                   "(compact revision %lld, start revision %lld)",
                   w->what, (long long)r->compact_revision, (long long)w->start_revision);
    deliver_end(w, r->compact_revision, &e);
    rpc_stream_cancel(s);
    return;
  }
  if (r->canceled) {
    const char *reason = r->cancel_reason && r->cancel_reason[0] ? r->cancel_reason : "watch canceled by the server";
    int code = strstr(reason, "future revision") ? ETCD_EFUTURE : ECANCELED;
    fail_stream(w, s, code, reason);
    return;
  }
  if (r->n_events == 0) {
    /* The create's acknowledgement, or progress (etcd 3.4 sends requested
     * progress with watch_id -1, periodic progress with the watcher's id). */
    if (!r->created && !r->fragment && w->cb.on_progress && cb_enter(w, false)) {
      w->cb.on_progress(w->arg, rev);
      cb_exit(w);
    }
    return;
  }
  if (r->fragment) {
    if (frags_append(w, r) < 0)
      fail_stream(w, s, ENOMEM, "out of memory joining watch fragments");
    return;
  }
  size_t n = w->nfrags + r->n_events;
  etcd_event stack[STACK_EVENTS];
  etcd_event *evs = n <= STACK_EVENTS ? stack : malloc(n * sizeof(*evs));
  if (!evs) {
    frags_clear(w);
    fail_stream(w, s, ENOMEM, "out of memory for watch events");
    return;
  }
  for (size_t i = 0; i < w->nfrags; i++) evs[i] = w->frags[i].ev;
  for (size_t i = 0; i < r->n_events; i++) event_fill(&evs[w->nfrags + i], r->events[i]);
  if (w->cb.on_events && cb_enter(w, false)) {
    w->cb.on_events(w->arg, rev, evs, n);
    cb_exit(w);
  }
  if (evs != stack) free(evs);
  frags_clear(w);
}

/* ---------------------------------------------------------------- streams */

static void on_close(rpc_stream *s, const rpc_status *st, void *arg);

static rpc_stream *stream_open(etcd_watch *w, keel_error *err) {
  static const char leader_value[] = "true";
  /* etcd's clientv3 sends this on watches: a member without a leader then ends
   * the stream with "etcdserver: no leader" instead of going silent. */
  rpc_metadata md = {.key = "hasleader", .value = leader_value, .value_len = sizeof(leader_value) - 1};
  rpc_call_options o = {.timeout_ms = 0, .metadata = &md, .nmetadata = 1};
  rpc_stream_callbacks cb = {.on_message = on_message, .on_close = on_close};
  rpc_stream *s = rpc_stream_start(w->c->ch, M_WATCH, RPC_BIDI_STREAMING, NULL,
                                   &etcdserverpb__watch_response__descriptor, &o, &cb, w, err);
  if (!s) return NULL;
  Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
  cr.key.data = w->key;
  cr.key.len = w->key_len;
  cr.range_end.data = w->range_end;
  cr.range_end.len = w->range_end_len;
  cr.start_revision = w->start_revision;
  cr.prev_kv = w->prev_kv;
  cr.progress_notify = w->progress_notify;
  cr.fragment = w->fragment;
  Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
  req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
  req.create_request = &cr;
  int rc = rpc_stream_write(s, &req.base);
  /* The stream is started: on_close will run and report, whatever happens now. */
  if (rc < 0) rpc_stream_cancel(s);
  return s;
}

static void watch_free(etcd_watch *w) {
  if (w->stream) rpc_stream_release(w->stream);
  frags_clear(w);
  free(w->frags);
  free(w->key);
  free(w->range_end);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

/* The stream's on_close has done its work: w may go. */
static void stream_closed(etcd_watch *w) {
  pthread_mutex_lock(&w->mu);
  w->open_streams--;
  bool free_now = w->free_on_close && w->open_streams == 0;
  pthread_cond_broadcast(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (free_now) watch_free(w);
}

static void on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  etcd_watch *w = arg;
  frags_clear(w);
  pthread_mutex_lock(&w->mu);
  bool restart = !w->stopped && !w->ended && !w->created && etcd_status_unsent(st) &&
                 w->restarts + 1 < w->c->nendpoints && !atomic_load(&w->c->closing);
  if (restart) {
    w->restarts++;
    w->open_streams++;
  }
  pthread_mutex_unlock(&w->mu);
  keel_error e = {0};
  if (restart) {
    rpc_stream *ns = stream_open(w, &e);
    pthread_mutex_lock(&w->mu);
    if (ns) {
      w->stream = ns;
      if (w->stopped) rpc_stream_cancel(ns);
    } else {
      w->open_streams--;
    }
    pthread_mutex_unlock(&w->mu);
    if (ns) {
      rpc_stream_release(s); /* ours; rpc keeps it alive until this callback returns */
      stream_closed(w);
      return;
    }
  } else if (st->code == GRPC_STATUS_OK) {
    keel_error_set(&e, EPIPE, "etcd %s: the server ended the watch stream", w->what);
  } else {
    etcd_status_error(st, w->what, &e);
  }
  deliver_end(w, 0, &e);
  stream_closed(w);
}

/* ---------------------------------------------------------------- API */

static unsigned char *dup_bytes(const void *p, size_t n) {
  unsigned char *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

etcd_watch *etcd_watch_start(etcd_client *c, const etcd_watch_options *opts,
                             const etcd_watch_callbacks *cb, void *arg, keel_error *err) {
  if (!opts || !cb || (opts->key_len && !opts->key) || (opts->range_end_len && !opts->range_end)) {
    keel_error_set(err, EINVAL, "etcd Watch: missing options, callbacks or key");
    return NULL;
  }
  if (atomic_load(&c->closing)) {
    keel_error_set(err, ECANCELED, "etcd Watch: client closing");
    return NULL;
  }
  etcd_watch *w = calloc(1, sizeof(*w));
  if (!w) {
    keel_error_set(err, ENOMEM, "etcd Watch: out of memory");
    return NULL;
  }
  w->c = c;
  w->cb = *cb;
  w->arg = arg;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->key = dup_bytes(opts->key, opts->key_len);
  w->key_len = opts->key_len;
  w->range_end = opts->range_end && opts->range_end_len ? dup_bytes(opts->range_end, opts->range_end_len) : NULL;
  w->range_end_len = w->range_end ? opts->range_end_len : 0;
  w->start_revision = opts->start_revision;
  w->prev_kv = opts->prev_kv;
  w->progress_notify = opts->progress_notify;
  w->fragment = opts->fragment;
  etcd_describe(w->what, sizeof(w->what), "Watch", opts->key, opts->key_len);
  if (!w->key || (opts->range_end && opts->range_end_len && !w->range_end)) {
    keel_error_set(err, ENOMEM, "%s: out of memory", w->what);
    watch_free(w);
    return NULL;
  }
  w->open_streams = 1;
  pthread_mutex_lock(&w->mu); /* on_close for this stream may not look at w->stream before this */
  w->stream = stream_open(w, err);
  if (!w->stream) {
    pthread_mutex_unlock(&w->mu);
    keel_error_wrap(err, "etcd Watch");
    watch_free(w);
    return NULL;
  }
  pthread_mutex_unlock(&w->mu);
  return w;
}

int etcd_watch_request_progress(etcd_watch *w) {
  Etcdserverpb__WatchProgressRequest pr = ETCDSERVERPB__WATCH_PROGRESS_REQUEST__INIT;
  Etcdserverpb__WatchRequest req = ETCDSERVERPB__WATCH_REQUEST__INIT;
  req.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST;
  req.progress_request = &pr;
  pthread_mutex_lock(&w->mu);
  int rc = (w->stopped || w->ended || !w->stream) ? -EPIPE : rpc_stream_write(w->stream, &req.base);
  pthread_mutex_unlock(&w->mu);
  return rc;
}

void etcd_watch_stop(etcd_watch *w) {
  if (!w) return;
  pthread_mutex_lock(&w->mu);
  w->stopped = true;
  /* Under the lock: a restart in on_close swaps and releases streams under it. */
  if (w->open_streams > 0 && w->stream) rpc_stream_cancel(w->stream);
  if (etcd_in_callback) {
    /* A wait here could be a wait for this very thread. */
    bool free_now = w->open_streams == 0;
    w->free_on_close = !free_now;
    pthread_mutex_unlock(&w->mu);
    if (free_now) watch_free(w);
    return;
  }
  while (w->in_callback > 0 || w->open_streams > 0) pthread_cond_wait(&w->cv, &w->mu);
  pthread_mutex_unlock(&w->mu);
  watch_free(w);
}
