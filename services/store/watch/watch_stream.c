/* services/store/watch/watch_stream.c — one Watch stream: its requests (etcd
 * 3.4's serverWatchStream.recvLoop rules), its watchers, its control responses,
 * and every send to it.
 *
 * Ordering on a stream: every send happens under hub->mu, so responses leave in
 * the order they were decided (the sender pool's threads send while the
 * fan-out thread holds it, each stream's responses on one of them, in order). A created response always precedes the
 * watcher's events: the watcher becomes visible to the fan-out only after it.
 * When a send finds the queue full the stream is BLOCKED: no further sends
 * until the transport reports room (watch_stream_writable). Control responses
 * decided meanwhile wait in a bounded list and go first; watchers that had
 * events meanwhile are unsynced and catch up from history afterwards. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/store/watch/watch_internal.h"
#include "services/store/watch/watch_wire.h"

static const char ERR_DUPLICATE_ID[] = "mvcc: duplicate watch ID provided on the WatchStream";
static const char ERR_EMPTY_RANGE[] = "mvcc: watcher range is empty";

/* ------------------------------------------------------------------ watch ids */

static size_t id_slot(const watch_stream *st, int64_t id) {
  uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 32) & (st->nid_buckets - 1);
}

static watcher *id_find(const watch_stream *st, int64_t id) {
  for (watcher *w = st->ids[id_slot(st, id)]; w; w = w->id_next)
    if (w->id == id) return w;
  return NULL;
}

static void id_grow(watch_stream *st) {
  size_t n = st->nid_buckets * 2;
  watcher **b = calloc(n, sizeof(*b));
  if (!b) return; /* longer chains, still correct */
  watcher **old = st->ids;
  size_t oldn = st->nid_buckets;
  st->ids = b;
  st->nid_buckets = n;
  for (size_t i = 0; i < oldn; i++) {
    watcher *w = old[i];
    while (w) {
      watcher *next = w->id_next;
      size_t s = id_slot(st, w->id);
      w->id_next = b[s];
      b[s] = w;
      w = next;
    }
  }
  free(old);
}

static void id_insert(watch_stream *st, watcher *w) {
  if (st->nids >= st->nid_buckets) id_grow(st);
  size_t s = id_slot(st, w->id);
  w->id_next = st->ids[s];
  st->ids[s] = w;
  st->nids++;
}

static void id_remove(watch_stream *st, watcher *w) {
  for (watcher **p = &st->ids[id_slot(st, w->id)]; *p; p = &(*p)->id_next) {
    if (*p == w) {
      *p = w->id_next;
      st->nids--;
      return;
    }
  }
}

/* ------------------------------------------------------------------ lists */

static void unsynced_link(watcher *w) {
  watch_stream *st = w->stream;
  w->u_prev = NULL;
  w->u_next = st->unsynced;
  if (st->unsynced) st->unsynced->u_prev = w;
  st->unsynced = w;
  st->nunsynced++;
  st->hub->nunsynced++;
}

static void unsynced_unlink(watcher *w) {
  watch_stream *st = w->stream;
  if (w->u_prev) w->u_prev->u_next = w->u_next;
  else st->unsynced = w->u_next;
  if (w->u_next) w->u_next->u_prev = w->u_prev;
  w->u_prev = w->u_next = NULL;
  st->nunsynced--;
  st->hub->nunsynced--;
}

void watch_make_synced(watcher *w) {
  if (w->synced || w->removed) return;
  if (watch_group_add(w->stream->hub->synced, &w->range, w) < 0) return; /* retried later */
  unsynced_unlink(w);
  w->synced = true;
}

void watch_make_unsynced(watcher *w) {
  if (!w->synced || w->removed) return;
  watch_group_remove(w->stream->hub->synced, &w->range, w);
  w->synced = false;
  unsynced_link(w);
}

static void watcher_free(watcher *w) {
  free(w->range.key);
  free(w->range.end);
  free(w->match);
  free(w->cu_evs);
  free(w);
}

void watch_unref(watcher *w) {
  if (--w->refs == 0) watcher_free(w);
}

void watch_remove(watcher *w) {
  if (w->removed) return;
  watch_stream *st = w->stream;
  watch_hub *h = st->hub;
  w->removed = true;
  if (w->synced) watch_group_remove(h->synced, &w->range, w);
  else unsynced_unlink(w);
  w->synced = false;
  id_remove(st, w);
  if (w->s_prev) w->s_prev->s_next = w->s_next;
  else st->watchers = w->s_next;
  if (w->s_next) w->s_next->s_prev = w->s_prev;
  if (w->prev_kv && --h->nprev_watchers == 0) atomic_store(&h->want_prev, false);
  h->nwatchers--;
  watch_backlog_clear(w);
  watch_unref(w);
}

void watch_enqueue(watch_stream *st) {
  watch_hub *h = st->hub;
  if (st->queued || st->closed) return;
  st->queued = true;
  st->refs++;
  st->q_next = NULL;
  if (h->work_tail) h->work_tail->q_next = st;
  else h->work_head = st;
  h->work_tail = st;
  pthread_cond_signal(&h->cond);
}

/* ------------------------------------------------------------------ sending */

static void header_at(const watch_hub *h, Etcdserverpb__ResponseHeader *hdr, int64_t rev) {
  *hdr = h->base_header;
  hdr->revision = rev;
}

/* A failed send blocks the stream until the transport reports room, except
 * when it can never succeed (-EINVAL: too large) or failed for want of memory
 * here (-ENOMEM: no writable callback would follow; the caller retries). */
static void after_send(watch_stream *st, int rc) {
  if (rc < 0 && rc != -EINVAL && rc != -ENOMEM) st->blocked = true;
}

int watch_send(watch_stream *st, const Etcdserverpb__WatchResponse *resp) {
  if (st->closed) return -EPIPE;
  int rc = st->ops.send(st->ctx, resp);
  after_send(st, rc);
  return rc;
}

/* Ranges of a response: on the stack, unless it has many (several revisions,
 * each its own encoding). Not the hub's: sender threads call this at once. */
#define STACK_PARTS 16

/* One response of evs to w: its prefix, then the events' encodings as ranges,
 * adjacent ones merged (a run of one revision is usually a single range). */
static int send_events(watch_stream *st, watcher *w, int64_t header_rev, const watch_ev *evs,
                       size_t n, bool fragment) {
  watch_hub *h = st->hub;
  if (st->closed) return -EPIPE;
  rpc_shared_range stack[STACK_PARTS];
  rpc_shared_range *parts = n <= STACK_PARTS ? stack : malloc(n * sizeof(*parts));
  if (!parts) return -ENOMEM;
  size_t np = 0;
  for (size_t i = 0; i < n; i++) {
    rpc_shared_range *last = np ? &parts[np - 1] : NULL;
    if (last && last->m == evs[i].enc && last->offset + last->len == evs[i].off)
      last->len += evs[i].len;
    else
      parts[np++] = (rpc_shared_range){evs[i].enc, evs[i].off, evs[i].len};
  }
  uint8_t prefix[WATCH_PREFIX_MAX];
  size_t plen = watch_wire_prefix(prefix, &h->base_header, header_rev, w->id, fragment);
  int rc = st->ops.send_parts(st->ctx, prefix, plen, parts, np);
  if (parts != stack) free(parts);
  after_send(st, rc);
  return rc;
}

size_t watch_emit(watch_stream *st, watcher *w, int64_t header_rev, const watch_ev *evs, size_t n,
                  int *rc) {
  watch_hub *h = st->hub;
  uint8_t scratch[WATCH_PREFIX_MAX];
  /* With the fragment flag: the largest prefix this response can have. */
  size_t base = watch_wire_prefix(scratch, &h->base_header, header_rev, w->id, true);
  size_t total = base;
  for (size_t i = 0; i < n; i++) total += evs[i].len;
  size_t max_send = (size_t)h->opts.max_send_bytes;
  size_t limit = max_send;
  bool split;
  if (w->fragment) {
    if ((size_t)h->opts.fragment_bytes < limit) limit = (size_t)h->opts.fragment_bytes;
    split = total >= limit; /* etcd's sendFragments: Size() < maxRequestBytes goes whole */
  } else {
    /* etcd would send it whole; the transport cannot, so it is fragmented too
     * (clients reassemble fragments whether or not they asked). */
    split = total > max_send;
  }
  *rc = 0;
  if (n < 2 || !split) {
    int r = send_events(st, w, header_rev, evs, n, false);
    if (r < 0) {
      *rc = r;
      return 0;
    }
    return n;
  }
  size_t i = 0;
  while (i < n) {
    size_t j = i, sz = base + evs[i].len;
    j++;
    while (j < n && sz + evs[j].len < limit) sz += evs[j++].len;
    int r = send_events(st, w, header_rev, evs + i, j - i, j < n);
    if (r < 0) {
      *rc = r;
      return i;
    }
    i = j;
  }
  return n;
}

size_t watch_emit_revisions(watch_stream *st, watcher *w, int64_t header_rev, const watch_ev *evs,
                            size_t n, int *rc) {
  size_t i = 0;
  *rc = 0;
  while (i < n && !w->removed && !st->blocked) {
    size_t j = i, bytes = 0, revs = 0;
    while (j < n) {
      int64_t rev = evs[j].rev;
      size_t k = j, rb = 0;
      while (k < n && evs[k].rev == rev) rb += evs[k++].len;
      if (j > i && (bytes + rb > WATCH_RESPONSE_BYTES || revs >= WATCH_RESPONSE_REVS)) break;
      bytes += rb;
      revs++;
      j = k;
    }
    int64_t last = evs[j - 1].rev;
    size_t sent = watch_emit(st, w, header_rev ? header_rev : last, evs + i, j - i, rc);
    if (sent) w->had_events = true;
    if (*rc == -EINVAL) return i + sent;
    watch_advance(w, evs + i, sent, j - i, last);
    i += sent;
    if (i < j) return i;
  }
  return i;
}

void watch_advance(watcher *w, const watch_ev *evs, size_t k, size_t n, int64_t end_rev) {
  if (k == n) {
    if (end_rev + 1 > w->next_rev) {
      w->next_rev = end_rev + 1;
      w->skip = 0;
    }
    return;
  }
  int64_t r = evs[k].rev;
  size_t same = 0;
  for (size_t i = k; i > 0 && evs[i - 1].rev == r; i--) same++;
  if (r == w->next_rev) {
    w->skip += same;
  } else {
    w->next_rev = r;
    w->skip = same;
  }
}

static int send_ctrl(watch_stream *st, const ctrl_msg *m) {
  Etcdserverpb__ResponseHeader hdr;
  header_at(st->hub, &hdr, m->header_rev);
  Etcdserverpb__WatchResponse resp = ETCDSERVERPB__WATCH_RESPONSE__INIT;
  resp.header = &hdr;
  resp.watch_id = m->watch_id;
  resp.created = m->created;
  resp.canceled = m->canceled;
  resp.compact_revision = m->compact_revision;
  const char *reason = m->owned_reason ? m->owned_reason : m->cancel_reason;
  if (reason) resp.cancel_reason = (char *)reason;
  return watch_send(st, &resp);
}

static void ctrl_free(ctrl_msg *m) {
  free(m->owned_reason);
  free(m);
}

static void close_locked(watch_stream *st);

void watch_ctrl(watch_stream *st, const ctrl_msg *m) {
  if (st->closed) return;
  if (!st->blocked && !st->ctrl_head) {
    int rc = send_ctrl(st, m);
    if (rc == 0 || rc == -EINVAL) return;
  }
  if (st->nctrl >= (size_t)st->hub->opts.max_pending_control) {
    /* The client keeps asking but does not read: end it, as the runtime ends
     * any stream whose receiver is too slow. */
    st->ops.abort(st->ctx, "stream receiver too slow: watch responses pending");
    close_locked(st);
    return;
  }
  ctrl_msg *c = calloc(1, sizeof(*c));
  if (!c) return;
  *c = *m;
  c->next = NULL;
  if (m->owned_reason) c->owned_reason = strdup(m->owned_reason);
  if (st->ctrl_tail) st->ctrl_tail->next = c;
  else st->ctrl_head = c;
  st->ctrl_tail = c;
  st->nctrl++;
}

static void ctrl_flush(watch_stream *st) {
  while (st->ctrl_head && !st->closed) {
    ctrl_msg *m = st->ctrl_head;
    int rc = send_ctrl(st, m);
    if (rc < 0 && rc != -EINVAL) return;
    st->ctrl_head = m->next;
    if (!st->ctrl_head) st->ctrl_tail = NULL;
    st->nctrl--;
    ctrl_free(m);
  }
}

void watch_progress_done(watch_stream *st) {
  if (!st->progress_pending) return;
  st->progress_pending = false;
  st->hub->nprogress--;
}

void watch_try_progress(watch_stream *st) {
  if (!st->progress_pending || st->closed || st->blocked || st->ctrl_head || st->nunsynced ||
      st->nbacklog)
    return;
  /* The fan-out has not reached what was published when the client asked
   * (the fan-out thread calls again as it moves). */
  if (st->hub->cur_rev < st->progress_rev) return;
  /* Every watcher here is synced and its stream never refused a send, so every
   * event up to cur_rev that it watches is queued before this response. */
  ctrl_msg m = {.watch_id = -1, .header_rev = st->hub->cur_rev};
  if (send_ctrl(st, &m) == 0) watch_progress_done(st);
}

void watch_cancel_too_large(watcher *w, size_t bytes) {
  watch_stream *st = w->stream;
  ctrl_msg m = {.watch_id = w->id, .header_rev = st->hub->cur_rev, .canceled = true};
  char buf[160];
  snprintf(buf, sizeof(buf),
           "etcdserver: watch event of %zu bytes exceeds the %lld-byte message limit", bytes,
           (long long)st->hub->opts.max_send_bytes);
  m.owned_reason = buf;
  watch_remove(w);
  watch_ctrl(st, &m);
}

/* ------------------------------------------------------------------ requests */

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  size_t n = alen < blen ? alen : blen;
  int c = n ? memcmp(a, b, n) : 0;
  if (c) return c;
  return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* The fan-out thread's per-watcher scratch (touched, jobs) always has room for
 * every watcher, so it never fails for want of it. */
static int grow_touched(watch_hub *h) {
  if (h->touched_cap > h->nwatchers) return 0;
  size_t n = h->touched_cap ? h->touched_cap * 2 : 64;
  watch_send_job *j = realloc(h->jobs, n * sizeof(*j));
  if (!j) return -ENOMEM;
  h->jobs = j;
  watcher **p = realloc(h->touched, n * sizeof(*p));
  if (!p) return -ENOMEM;
  h->touched = p;
  h->touched_cap = n;
  return 0;
}

static void handle_create(watch_stream *st, const Etcdserverpb__WatchCreateRequest *c,
                          int64_t published) {
  watch_hub *h = st->hub;
  /* etcd: an empty key is "\0", the smallest key; range_end "\0" is from-key;
   * a non-empty range_end not above key is an empty range. */
  static const uint8_t zero = 0;
  const uint8_t *key = c->key.len ? c->key.data : &zero;
  size_t keylen = c->key.len ? c->key.len : 1;
  int64_t wsrev = published > h->cur_rev ? published : h->cur_rev;
  bool from_key = c->range_end.len == 1 && c->range_end.data[0] == 0;
  if (c->range_end.len && !from_key &&
      key_cmp(key, keylen, c->range_end.data, c->range_end.len) >= 0) {
    ctrl_msg m = {.watch_id = -1, .header_rev = wsrev, .created = true, .canceled = true,
                  .cancel_reason = ERR_EMPTY_RANGE};
    watch_ctrl(st, &m);
    return;
  }
  int64_t id = c->watch_id;
  if (id == 0) {
    while (id_find(st, st->next_auto_id)) st->next_auto_id++;
    id = st->next_auto_id++;
  } else if (id_find(st, id)) {
    ctrl_msg m = {.watch_id = -1, .header_rev = wsrev, .created = true, .canceled = true,
                  .cancel_reason = ERR_DUPLICATE_ID};
    watch_ctrl(st, &m);
    return;
  }
  watcher *w = calloc(1, sizeof(*w));
  if (w) {
    w->range.key = dup_bytes(key, keylen);
    w->range.keylen = keylen;
    if (c->range_end.len) {
      w->range.end = dup_bytes(c->range_end.data, c->range_end.len);
      w->range.endlen = c->range_end.len;
    }
  }
  if (!w || !w->range.key || (c->range_end.len && !w->range.end) || grow_touched(h) < 0) {
    if (w) watcher_free(w);
    st->ops.abort(st->ctx, "etcdserver: out of memory creating a watcher");
    close_locked(st);
    return;
  }
  w->id = id;
  w->stream = st;
  w->refs = 1;
  w->prev_kv = c->prev_kv;
  w->fragment = c->fragment;
  w->progress_notify = c->progress_notify;
  for (size_t i = 0; i < c->n_filters; i++) {
    if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NOPUT) w->no_put = true;
    if (c->filters[i] == ETCDSERVERPB__WATCH_CREATE_REQUEST__FILTER_TYPE__NODELETE)
      w->no_delete = true;
  }
  w->next_rev = c->start_revision == 0 ? wsrev + 1 : c->start_revision;
  if (w->next_rev < 1) w->next_rev = 1;

  /* Registered on the stream (for ids) but not yet in the fan-out. */
  id_insert(st, w);
  w->s_next = st->watchers;
  if (st->watchers) st->watchers->s_prev = w;
  st->watchers = w;
  h->nwatchers++;
  if (w->prev_kv && h->nprev_watchers++ == 0) atomic_store(&h->want_prev, true);
  unsynced_link(w);

  ctrl_msg m = {.watch_id = id, .header_rev = wsrev, .created = true};
  watch_ctrl(st, &m);
  if (st->closed) return;
  if (st->blocked) return; /* writable -> catch-up */
  /* Every revision up to cur_rev has been fanned out: a watcher that needs none
   * of them is synced now; one that does replays history first. */
  if (h->cur_rev < w->next_rev) watch_make_synced(w);
  if (!w->synced) watch_enqueue(st);
}

static void handle_cancel(watch_stream *st, int64_t id) {
  watcher *w = id_find(st, id);
  if (!w) return; /* etcd answers nothing */
  /* Events decided before the cancel still go before its response. */
  if (w->bl_n && !st->blocked) {
    w->refs++;
    watch_backlog_send(st->hub, w);
    bool gone = w->removed;
    watch_unref(w);
    if (gone) return; /* canceled as too large, or the stream ended */
  }
  watch_remove(w);
  ctrl_msg m = {.watch_id = id, .header_rev = st->hub->cur_rev, .canceled = true};
  watch_ctrl(st, &m);
}

void watch_stream_request(watch_stream *st, const Etcdserverpb__WatchRequest *req) {
  watch_hub *h = st->hub;
  int64_t published = 0;
  if (req->request_union_case == ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST ||
      req->request_union_case == ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST) {
    Etcdserverpb__ResponseHeader hdr = ETCDSERVERPB__RESPONSE_HEADER__INIT;
    store_fill_header(h->store, &hdr); /* outside hub->mu */
    published = hdr.revision;
  }
  pthread_mutex_lock(&h->mu);
  if (!st->closed) {
    switch (req->request_union_case) {
      case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST:
        if (req->create_request) handle_create(st, req->create_request, published);
        break;
      case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST:
        if (req->cancel_request) handle_cancel(st, req->cancel_request->watch_id);
        break;
      case ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_PROGRESS_REQUEST:
        /* Answered once every watcher is synced and the fan-out has reached
         * the revision published now (requests meanwhile share the answer). */
        if (!st->progress_pending) h->nprogress++;
        st->progress_pending = true;
        if (published > st->progress_rev) st->progress_rev = published;
        watch_try_progress(st);
        break;
      default: /* an empty request: etcd ignores it */
        break;
    }
  }
  pthread_mutex_unlock(&h->mu);
}

void watch_stream_writable(watch_stream *st) {
  watch_hub *h = st->hub;
  pthread_mutex_lock(&h->mu);
  if (!st->closed) {
    st->blocked = false;
    ctrl_flush(st);
    if (!st->blocked) {
      if (st->nunsynced) watch_enqueue(st);
      watch_try_progress(st);
    }
  }
  pthread_mutex_unlock(&h->mu);
}

/* ------------------------------------------------------------------ lifecycle */

watch_stream *watch_stream_open(watch_hub *hub, const watch_stream_ops *ops, void *ctx) {
  watch_stream *st = calloc(1, sizeof(*st));
  if (!st) return NULL;
  st->nid_buckets = 16;
  st->ids = calloc(st->nid_buckets, sizeof(*st->ids));
  if (!st->ids) {
    free(st);
    return NULL;
  }
  st->hub = hub;
  st->ops = *ops;
  st->ctx = ctx;
  st->refs = 1;
  atomic_fetch_add(&hub->refs, 1);
  pthread_mutex_lock(&hub->mu);
  st->h_next = hub->streams;
  if (hub->streams) hub->streams->h_prev = st;
  hub->streams = st;
  hub->nstreams++;
  pthread_mutex_unlock(&hub->mu);
  return st;
}

static void close_locked(watch_stream *st) {
  if (st->closed) return;
  watch_hub *h = st->hub;
  st->closed = true;
  watch_progress_done(st);
  while (st->watchers) watch_remove(st->watchers);
  while (st->ctrl_head) {
    ctrl_msg *m = st->ctrl_head;
    st->ctrl_head = m->next;
    ctrl_free(m);
  }
  st->ctrl_tail = NULL;
  st->nctrl = 0;
  if (st->h_prev) st->h_prev->h_next = st->h_next;
  else h->streams = st->h_next;
  if (st->h_next) st->h_next->h_prev = st->h_prev;
  st->h_prev = st->h_next = NULL;
  h->nstreams--;
}

void watch_stream_close(watch_stream *st) {
  pthread_mutex_lock(&st->hub->mu);
  close_locked(st);
  pthread_mutex_unlock(&st->hub->mu);
}

/* Under hub->mu. Frees st at the last reference; its hub reference is the
 * caller's to drop (after unlocking) when this returns true. */
static bool stream_unref_locked(watch_stream *st) {
  if (--st->refs > 0) return false;
  free(st->ids);
  free(st);
  return true;
}

void watch_stream_unref(watch_stream *st) {
  watch_hub *h = st->hub;
  if (stream_unref_locked(st)) {
    /* Never the last hub reference here: the sync thread and destroy, the only
     * callers, run while the creator still holds one. */
    atomic_fetch_sub(&h->refs, 1);
  }
}

void watch_stream_release(watch_stream *st) {
  watch_hub *h = st->hub;
  pthread_mutex_lock(&h->mu);
  close_locked(st);
  bool freed = stream_unref_locked(st);
  pthread_mutex_unlock(&h->mu);
  if (freed) watch_hub_unref(h);
}
