/* services/store/engine/store.c — see store.h.
 *
 * Threads: callers submit; one applier at a time (see "Who applies") owns every
 * change to the kv (under the write lock) and hands WAL records to the WAL; the WAL's writer thread
 * group-commits them and its completer thread runs wal_done, which publishes
 * the revision and completes the requests in order (sends the replies), while
 * the writer already syncs the next batch. Readers take the read lock.
 *
 * Ordering: WAL completions arrive in index order, and the applier
 * appends in apply order, so the published revision only moves forward and a
 * reply never overtakes an earlier write. A request that wrote nothing waits
 * for the newest record appended before it was applied (it may have read that
 * record's effects); with nothing pending it completes at once. */
#include "services/store/engine/store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "services/store/lease/lessor.h"
#include "services/store/wal/record.h"
#include "services/store/wal/snapshot.h"
#include "services/store/wal/wal.h"

typedef enum { OP_PUT, OP_DELETE_RANGE, OP_TXN, OP_COMPACT, OP_LEASE_GRANT, OP_LEASE_REVOKE } op_kind;

typedef struct store_op {
  struct store_op *next;
  struct store *store;
  op_kind kind;
  ProtobufCMessage *req; /* owned copy */
  store_done_fn done;
  void *arg;
  /* Filled by the applier. */
  bool applied;      /* apply_one ran; only the WAL append is left (len > 0) */
  int len;           /* payload length (0: nothing to log) */
  ProtobufCMessage *resp;
  kv_error err;
  bool failed;
  int64_t revision;  /* header revision */
  uint8_t *payload;  /* WAL record bytes (owned until durable) */
  store_event_batch *events; /* for watchers, delivered once durable */
  uint64_t wait_index; /* read-only ops: complete once this index is durable */
} store_op;

struct store {
  store_options opts;
  char *data_dir;
  kv *kv;
  pthread_rwlock_t lock; /* kv */
  wal *wal;

  pthread_mutex_t mu; /* the apply queue and the waiter list */
  pthread_cond_t cond;     /* the apply thread waits here: queued ops, closing, snap_done */
  pthread_cond_t lease_cv; /* the lease thread's timed sleep; only closing cuts it short */
  store_op *head, *tail;
  int queued;
  /* The applier role (see "Who applies" below): held by at most one thread. */
  bool applying;
  bool apply_handoff; /* the role was handed to the apply thread with it set */
  atomic_uint_fast64_t apply_handoffs; /* how often (store_status) */
  bool closing;
  pthread_t apply_thread;
  bool apply_started;

  /* Read-only ops waiting for an index to become durable (FIFO, by index). */
  store_op *wait_head, *wait_tail;
  uint64_t last_appended;  /* newest WAL index handed out (the applier) */
  atomic_uint_fast64_t durable_index;
  atomic_int_fast64_t published;
  atomic_int failed_errno;
  uint64_t raft_term;

  store_event_sink_fn sink;
  void *sink_arg;
  const _Atomic bool *want_prev;

  /* Leases: lease_mu guards the lessor (the applier takes it inside the kv
   * write lock through the kv's lease hooks; keepalives take only lease_mu). */
  pthread_mutex_t lease_mu;
  lessor *leases;
  pthread_t lease_thread;
  bool lease_started;
  int64_t *revoking; /* expired ids with a revoke in the pipeline */
  size_t nrevoking, caprevoking;

  /* Auto compaction (timer thread only). */
  struct {
    int64_t t_ms, rev;
  } samples[16]; /* periodic mode: revision samples, oldest first */
  int nsamples;
  int64_t next_check_ms;
  atomic_uint_fast64_t auto_compactions;

  /* Snapshots (see the snapshots section). Apply thread only: */
  char snap_dir[4096];
  uint64_t snap_base;     /* WAL index the last snapshot started at (or was loaded from) */
  bool snap_running;      /* snap_thread exists; joined once snap_done */
  pthread_t snap_thread;
  store_op *held_head, *held_tail; /* compactions held while it runs, in order */
  /* Shared with the snapshot thread and readers of the status: */
  atomic_bool snap_done;   /* the snapshot thread is finishing (set under mu: wakes the apply thread) */
  atomic_bool snap_cancel; /* closing: abandon the running snapshot */
  atomic_bool snap_active; /* a snapshot is being written (status) */
  atomic_uint_fast64_t held_count;
  atomic_uint_fast64_t snapshot_index; /* WAL index of the newest snapshot on disk */
  atomic_uint_fast64_t snapshots;      /* written by this process */
};

const char STORE_ERR_LEASE_EXISTS[] = "etcdserver: lease already exists";
const char STORE_ERR_LEASE_TTL[] = "etcdserver: too large lease TTL";

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* kv lease hooks: called by the applier (and in recovery) under the kv lock. */
static bool hook_exists(void *arg, int64_t id) {
  store *s = arg;
  pthread_mutex_lock(&s->lease_mu);
  bool e = lessor_exists(s->leases, id);
  pthread_mutex_unlock(&s->lease_mu);
  return e;
}
static void hook_attach(void *arg, int64_t id, const uint8_t *key, size_t keylen) {
  store *s = arg;
  pthread_mutex_lock(&s->lease_mu);
  lessor_attach(s->leases, id, key, keylen);
  pthread_mutex_unlock(&s->lease_mu);
}
static void hook_detach(void *arg, int64_t id, const uint8_t *key, size_t keylen) {
  store *s = arg;
  pthread_mutex_lock(&s->lease_mu);
  lessor_detach(s->leases, id, key, keylen);
  pthread_mutex_unlock(&s->lease_mu);
}

/* ------------------------------------------------------------------ copies */

/* A deep copy by a pack/unpack round trip. *malformed: protobuf-c accepted the
 * request but cannot decode its own re-encoding of it (an over-long field-0
 * tag, found by fuzzing): the request is bad, not the memory. */
static ProtobufCMessage *copy_message(const ProtobufCMessage *m, bool *malformed) {
  *malformed = false;
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  if (!buf) return NULL;
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *c = protobuf_c_message_unpack(m->descriptor, NULL, n, buf);
  free(buf);
  if (!c) *malformed = true;
  return c;
}

static uint64_t id_from_name(const char *name, uint64_t salt) {
  /* FNV-1a: stable ids from the member name, so restarts keep them. */
  uint64_t h = 1469598103934665603ull ^ salt;
  for (const char *p = name; *p; p++) {
    h ^= (uint8_t)*p;
    h *= 1099511628211ull;
  }
  return h ? h : 1;
}

/* ------------------------------------------------------------------ recovery */

typedef struct replay_ctx {
  store *s;
  int64_t txn_rev;
  int64_t pending_revoke;
  keel_error *err;
} replay_ctx;

static int replay_txn(void *arg, int64_t revision, size_t nchanges, int64_t revoke_lease) {
  (void)nchanges;
  replay_ctx *rc = arg;
  rc->txn_rev = revision;
  rc->pending_revoke = revoke_lease;
  return 0;
}

static int replay_change(void *arg, int64_t revision, size_t sub, const store_change *ch) {
  replay_ctx *rc = arg;
  int r = kv_replay(rc->s->kv, (mvcc_revision){revision, (int64_t)sub}, ch->type == STORE_CHANGE_DELETE,
                    ch->key.data, ch->key.len, ch->value.data, ch->value.len, ch->lease);
  if (r < 0)
    return keel_error_set(rc->err, -r, "replay revision %lld.%zu: the log does not follow from the state",
                          (long long)revision, sub);
  return 0;
}

static int replay_compact(void *arg, int64_t revision) {
  replay_ctx *rc = arg;
  kv_compact(rc->s->kv, revision);
  return 0;
}

static int replay_lease_grant(void *arg, int64_t id, int64_t ttl) {
  replay_ctx *rc = arg;
  int r = lessor_grant(rc->s->leases, id, ttl, now_ms());
  return r == -EEXIST ? 0 : r;
}

static int replay_lease_revoke(void *arg, int64_t id) {
  replay_ctx *rc = arg;
  int r = lessor_revoke(rc->s->leases, id, NULL);
  return r == -ENOENT ? 0 : r;
}

/* Snapshot records never belong in the log. */
static int replay_refuse_meta(void *arg, int64_t r, int64_t c, uint64_t i) {
  (void)arg, (void)r, (void)c, (void)i;
  return -EBADMSG;
}
static int replay_refuse_kv(void *arg, const store_snapshot_kv *kv) {
  (void)arg, (void)kv;
  return -EBADMSG;
}

/* A txn's revoke_lease is applied after its changes (the key deletions). */
static int replay_txn_end(replay_ctx *rc) {
  if (rc->pending_revoke) {
    lessor_revoke(rc->s->leases, rc->pending_revoke, NULL);
    rc->pending_revoke = 0;
  }
  return 0;
}

static int replay_record(void *arg, uint64_t index, const uint8_t *payload, size_t len) {
  (void)index;
  replay_ctx *rc = arg;
  static const store_record_visitor v = {.txn = replay_txn,
                                         .change = replay_change,
                                         .compact = replay_compact,
                                         .lease_grant = replay_lease_grant,
                                         .lease_revoke = replay_lease_revoke,
                                         .snapshot_meta = replay_refuse_meta,
                                         .snapshot_kv = replay_refuse_kv};
  int r = store_record_decode(payload, len, &v, rc, rc->err);
  if (r == 0) replay_txn_end(rc);
  return r;
}

/* ------------------------------------------------------------------ completion */

/* WAL writer thread, once per group commit: etcd's fsync histogram (same name,
 * so dashboards built for etcd read it). */
static void on_wal_sync(void *arg, const wal_sync_info *info) {
  metric *m = arg;
  if (m) metric_observe(m, (double)info->fsync_ns / 1e9);
}

static void complete(store *s, store_op *op) {
  if (!op->failed) {
    /* The header belongs to the response's first field for every kind here. */
    Etcdserverpb__ResponseHeader *h = malloc(sizeof(*h));
    if (h) {
      etcdserverpb__response_header__init(h);
      store_fill_header(s, h);
      h->revision = op->revision;
      switch (op->kind) {
        case OP_PUT: ((Etcdserverpb__PutResponse *)op->resp)->header = h; break;
        case OP_DELETE_RANGE: ((Etcdserverpb__DeleteRangeResponse *)op->resp)->header = h; break;
        case OP_TXN: ((Etcdserverpb__TxnResponse *)op->resp)->header = h; break;
        case OP_COMPACT: ((Etcdserverpb__CompactionResponse *)op->resp)->header = h; break;
        case OP_LEASE_GRANT: ((Etcdserverpb__LeaseGrantResponse *)op->resp)->header = h; break;
        case OP_LEASE_REVOKE: ((Etcdserverpb__LeaseRevokeResponse *)op->resp)->header = h; break;
      }
    }
    if (op->done) op->done(op->arg, NULL, op->resp);
    else protobuf_c_message_free_unpacked(op->resp, NULL);
  } else {
    if (op->resp) protobuf_c_message_free_unpacked(op->resp, NULL);
    if (op->done) op->done(op->arg, &op->err, NULL);
  }
  if (op->kind == OP_LEASE_REVOKE && !op->done) {
    /* An expiry revoke finished: the id may be reported as expired again. */
    int64_t id = ((const Etcdserverpb__LeaseRevokeRequest *)op->req)->id;
    pthread_mutex_lock(&s->lease_mu);
    for (size_t i = 0; i < s->nrevoking; i++)
      if (s->revoking[i] == id) {
        s->revoking[i] = s->revoking[--s->nrevoking];
        break;
      }
    pthread_mutex_unlock(&s->lease_mu);
  }
  protobuf_c_message_free_unpacked(op->req, NULL);
  free(op->payload);
  store_event_batch_free(op->events);
  free(op);
}

static void fail_op(store_op *op, grpc_status_code code, const char *message) {
  op->failed = true;
  op->err.code = code;
  op->err.message = message;
}

/* Completes read-only ops whose index is durable now. */
static void release_waiters(store *s, uint64_t durable) {
  store_op *ready = NULL, **tail = &ready;
  pthread_mutex_lock(&s->mu);
  while (s->wait_head && s->wait_head->wait_index <= durable) {
    store_op *op = s->wait_head;
    s->wait_head = op->next;
    if (!s->wait_head) s->wait_tail = NULL;
    op->next = NULL;
    *tail = op;
    tail = &op->next;
  }
  pthread_mutex_unlock(&s->mu);
  while (ready) {
    store_op *op = ready;
    ready = op->next;
    complete(s, op);
  }
}

static const char STORAGE_FAILURE[] =
    "etcdserver: storage failure: the write-ahead log failed; restart keel-store";

/* WAL completion (its completer thread, or its writer for a lone record), in
 * index order: the record is durable (or the log failed). */
static void wal_done(void *arg, uint64_t index, int status) {
  store_op *op = arg;
  store *s = op->store;
  if (status < 0) {
    atomic_store(&s->failed_errno, -status);
    fail_op(op, GRPC_STATUS_UNAVAILABLE, STORAGE_FAILURE);
  } else {
    atomic_store(&s->durable_index, index);
    if (op->revision > atomic_load(&s->published)) atomic_store(&s->published, op->revision);
    if (op->events && s->sink) {
      s->sink(s->sink_arg, op->events); /* the sink takes the batch */
      op->events = NULL;
    }
  }
  complete(s, op);
  release_waiters(s, status < 0 ? UINT64_MAX : index);
}

/* ------------------------------------------------------------------ apply */

/* Encodes the write's changes as one WAL record into op->payload. */
static int encode_record(const kv_write *w, int64_t revision, store_op *op) {
  store_change stack[16];
  store_change *changes = w->nchanges <= 16 ? stack : malloc(w->nchanges * sizeof(*changes));
  if (!changes) return -ENOMEM;
  for (size_t i = 0; i < w->nchanges; i++) {
    const kv_record *rec = w->changes[i].rec;
    changes[i].type = w->changes[i].is_delete ? STORE_CHANGE_DELETE : STORE_CHANGE_PUT;
    changes[i].key = (store_slice){kv_record_key(rec), rec->key_len};
    changes[i].value = (store_slice){kv_record_value(rec), rec->value_len};
    changes[i].lease = rec->lease;
  }
  store_record r = {.kind = STORE_RECORD_TXN,
                    .txn = {.revision = revision, .changes = changes, .nchanges = w->nchanges}};
  size_t size = 0, len = 0;
  int rc = store_record_encoded_size(&r, &size);
  if (rc == 0) {
    op->payload = malloc(size ? size : 1);
    rc = op->payload ? store_record_encode(&r, op->payload, size, &len) : -ENOMEM;
  }
  if (changes != stack) free(changes);
  return rc < 0 ? rc : (int)len;
}

static int encode_compact(int64_t revision, store_op *op) {
  store_record r = {.kind = STORE_RECORD_COMPACT, .compact = {.revision = revision}};
  size_t size = 0, len = 0;
  int rc = store_record_encoded_size(&r, &size);
  if (rc < 0) return rc;
  op->payload = malloc(size);
  if (!op->payload) return -ENOMEM;
  rc = store_record_encode(&r, op->payload, size, &len);
  return rc < 0 ? rc : (int)len;
}

/* ------------------------------------------------------------------ events */

/* Copies one change into e; values on disk are read (-EIO when that fails).
 * live: the change was just applied (its value is in memory); a prev that
 * cannot be read is then left out (has_prev false: a watcher that wants it
 * replays the revision from history) rather than failing the write. */
static int fill_event(store *s, store_event *e, bool is_delete, mvcc_revision rev, const kv_record *rec,
                      bool with_prev, bool live) {
  memset(e, 0, sizeof(*e));
  e->is_delete = is_delete;
  e->rev = rev;
  e->keylen = rec->key_len;
  e->key = malloc(rec->key_len ? rec->key_len : 1);
  if (!e->key) return -ENOMEM;
  memcpy(e->key, kv_record_key(rec), rec->key_len);
  if (!is_delete) {
    e->valuelen = rec->value_len;
    e->value = malloc(rec->value_len ? rec->value_len : 1);
    if (!e->value) return -ENOMEM;
    int rc = kv_record_read_value(rec, e->value);
    if (rc < 0) return rc;
    e->create_revision = rec->create_revision;
    e->version = rec->version;
    e->lease = rec->lease;
  }
  if (with_prev) {
    /* The key's version just before this revision (changes of one revision
     * never touch a key twice, etcd refuses duplicate keys in a txn). */
    mvcc_revision pm;
    const kv_record *prev = kv_live(s->kv, kv_record_key(rec), rec->key_len, rev.main - 1, &pm);
    if (prev) {
      e->prev_valuelen = prev->value_len;
      e->prev_value = malloc(prev->value_len ? prev->value_len : 1);
      if (!e->prev_value) return -ENOMEM;
      int rc = kv_record_read_value(prev, e->prev_value);
      if (rc < 0) {
        if (!live) return rc;
        free(e->prev_value);
        e->prev_value = NULL;
        e->prev_valuelen = 0;
        return 0;
      }
      e->has_prev = true;
      e->prev_create_revision = prev->create_revision;
      e->prev_mod_revision = pm.main;
      e->prev_version = prev->version;
      e->prev_lease = prev->lease;
    }
  }
  return 0;
}

static store_event_batch *capture_events(store *s, const kv_write *w, int64_t rev) {
  store_event_batch *b = calloc(1, sizeof(*b));
  if (!b) return NULL;
  b->revision = rev;
  b->events = calloc(w->nchanges ? w->nchanges : 1, sizeof(*b->events));
  if (!b->events) {
    free(b);
    return NULL;
  }
  bool with_prev = s->want_prev && atomic_load(s->want_prev);
  for (size_t i = 0; i < w->nchanges; i++) {
    b->n = i + 1;
    if (fill_event(s, &b->events[i], w->changes[i].is_delete, w->changes[i].rev, w->changes[i].rec,
                   with_prev, true) < 0) {
      store_event_batch_free(b);
      return NULL;
    }
  }
  return b;
}

void store_event_batch_free(store_event_batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->n; i++) {
    free(b->events[i].key);
    free(b->events[i].value);
    free(b->events[i].prev_value);
  }
  free(b->events);
  free(b);
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (d && n) memcpy(d, p, n);
  return d;
}

store_event_batch *store_event_batch_copy(const store_event_batch *b) {
  store_event_batch *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->revision = b->revision;
  c->events = calloc(b->n ? b->n : 1, sizeof(*c->events));
  if (!c->events) {
    free(c);
    return NULL;
  }
  for (size_t i = 0; i < b->n; i++) {
    store_event *e = &c->events[i];
    *e = b->events[i];
    e->key = dup_bytes(b->events[i].key, b->events[i].keylen);
    e->value = b->events[i].value ? dup_bytes(b->events[i].value, b->events[i].valuelen) : NULL;
    e->prev_value = b->events[i].has_prev ? dup_bytes(b->events[i].prev_value, b->events[i].prev_valuelen) : NULL;
    c->n = i + 1;
    if (!e->key || (b->events[i].value && !e->value) || (b->events[i].has_prev && !e->prev_value)) {
      store_event_batch_free(c);
      return NULL;
    }
  }
  return c;
}

void store_set_event_sink(store *s, store_event_sink_fn fn, void *arg,
                          const _Atomic bool *want_prev) {
  pthread_rwlock_wrlock(&s->lock);
  s->sink = fn;
  s->sink_arg = arg;
  s->want_prev = want_prev;
  pthread_rwlock_unlock(&s->lock);
}

typedef struct history_ctx {
  store *s;
  const uint8_t *key, *end;
  size_t keylen, endlen;
  bool with_prev;
  store_event_fn fn;
  void *arg;
  store_event_batch batch; /* the revision being gathered */
  size_t cap;
  int rc;
} history_ctx;

static void batch_clear(store_event_batch *b) {
  for (size_t i = 0; i < b->n; i++) {
    free(b->events[i].key);
    free(b->events[i].value);
    free(b->events[i].prev_value);
  }
  b->n = 0;
}

static int history_flush(history_ctx *h) {
  if (h->batch.n) h->fn(h->arg, &h->batch);
  batch_clear(&h->batch);
  return 0;
}

static int history_visit(void *arg, mvcc_revision rev, const kv_record *rec) {
  history_ctx *h = arg;
  if (!kv_in_range(kv_record_key(rec), rec->key_len, h->key, h->keylen, h->end, h->endlen)) return 0;
  if (h->batch.n && h->batch.revision != rev.main) history_flush(h);
  h->batch.revision = rev.main;
  if (h->batch.n == h->cap) {
    size_t ncap = h->cap ? h->cap * 2 : 8;
    store_event *p = realloc(h->batch.events, ncap * sizeof(*p));
    if (!p) return h->rc = -ENOMEM;
    h->batch.events = p;
    h->cap = ncap;
  }
  int rc = fill_event(h->s, &h->batch.events[h->batch.n], rec->tombstone, rev, rec, h->with_prev, false);
  h->batch.n++;
  return rc < 0 ? (h->rc = rc) : 0;
}

int store_history(store *s, const uint8_t *key, size_t keylen, const uint8_t *end, size_t endlen,
                  int64_t from_rev, int64_t to_rev, bool with_prev, store_event_fn fn, void *arg,
                  kv_error *err) {
  pthread_rwlock_rdlock(&s->lock);
  int64_t published = atomic_load(&s->published);
  if (to_rev <= 0 || to_rev > published) to_rev = published;
  /* etcd: a start below the compacted revision is compacted; at it, still served. */
  if (from_rev > 0 && from_rev < kv_compact_rev(s->kv)) {
    pthread_rwlock_unlock(&s->lock);
    err->code = GRPC_STATUS_OUT_OF_RANGE;
    err->message = KV_ERR_COMPACTED;
    return -1;
  }
  history_ctx h = {.s = s, .key = key, .keylen = keylen, .end = end, .endlen = endlen,
                   .with_prev = with_prev, .fn = fn, .arg = arg};
  revstore_each(kv_revstore(s->kv), from_rev - 1, to_rev, history_visit, &h);
  if (h.rc == 0) history_flush(&h);
  batch_clear(&h.batch);
  free(h.batch.events);
  pthread_rwlock_unlock(&s->lock);
  if (h.rc < 0) {
    err->code = h.rc == -EIO ? GRPC_STATUS_INTERNAL : GRPC_STATUS_RESOURCE_EXHAUSTED;
    err->message = h.rc == -EIO ? KV_ERR_VALUE_READ : "etcdserver: out of memory";
    return -1;
  }
  return 0;
}

static int encode_simple(const store_record *r, store_op *op) {
  size_t size = 0, len = 0;
  int rc = store_record_encoded_size(r, &size);
  if (rc < 0) return rc;
  op->payload = malloc(size ? size : 1);
  if (!op->payload) return -ENOMEM;
  rc = store_record_encode(r, op->payload, size, &len);
  return rc < 0 ? rc : (int)len;
}

/* Encodes a revoke: its key deletions and the lease in one Txn record, or a
 * LeaseRevoke record when it had no keys (no revision then, as etcd). */
static int encode_revoke(const kv_write *w, int64_t revision, int64_t id, store_op *op) {
  if (!revision) {
    store_record r = {.kind = STORE_RECORD_LEASE_REVOKE, .lease_revoke = {.id = id}};
    return encode_simple(&r, op);
  }
  store_change stack[16];
  store_change *changes = w->nchanges <= 16 ? stack : malloc(w->nchanges * sizeof(*changes));
  if (!changes) return -ENOMEM;
  for (size_t i = 0; i < w->nchanges; i++) {
    const kv_record *rec = w->changes[i].rec;
    changes[i] = (store_change){.type = STORE_CHANGE_DELETE,
                                .key = {kv_record_key(rec), rec->key_len}};
  }
  store_record r = {.kind = STORE_RECORD_TXN,
                    .txn = {.revision = revision, .changes = changes, .nchanges = w->nchanges,
                            .revoke_lease = id}};
  int len = encode_simple(&r, op);
  if (changes != stack) free(changes);
  return len;
}

/* Applies one op under the write lock; returns the WAL payload length (0: no
 * record) or a negative errno for a storage-level failure. */
static int apply_one(store *s, store_op *op) {
  kv_write w;
  int len = 0;
  pthread_rwlock_wrlock(&s->lock);
  kv_write_begin(s->kv, &w);
  int rc = 0;
  switch (op->kind) {
    case OP_PUT: {
      Etcdserverpb__PutResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      rc = r ? kv_put(&w, (const Etcdserverpb__PutRequest *)op->req, r, &op->err) : -1;
      break;
    }
    case OP_DELETE_RANGE: {
      Etcdserverpb__DeleteRangeResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      rc = r ? kv_delete_range(&w, (const Etcdserverpb__DeleteRangeRequest *)op->req, r, &op->err) : -1;
      break;
    }
    case OP_TXN: {
      Etcdserverpb__TxnResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      rc = r ? kv_txn(&w, (const Etcdserverpb__TxnRequest *)op->req, r, &op->err) : -1;
      break;
    }
    case OP_LEASE_GRANT: {
      Etcdserverpb__LeaseGrantResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      if (!r) {
        rc = -1;
        break;
      }
      etcdserverpb__lease_grant_response__init(r);
      const Etcdserverpb__LeaseGrantRequest *req = (const Etcdserverpb__LeaseGrantRequest *)op->req;
      pthread_mutex_lock(&s->lease_mu);
      int64_t id = req->id ? req->id : lessor_next_id(s->leases);
      int64_t ttl = req->ttl < LESSOR_MIN_TTL ? LESSOR_MIN_TTL : req->ttl;
      int g = lessor_grant(s->leases, id, ttl, now_ms());
      pthread_mutex_unlock(&s->lease_mu);
      if (g == -EEXIST) {
        rc = -1;
        op->err = (kv_error){GRPC_STATUS_FAILED_PRECONDITION, STORE_ERR_LEASE_EXISTS};
      } else if (g == -ERANGE) {
        rc = -1;
        op->err = (kv_error){GRPC_STATUS_OUT_OF_RANGE, STORE_ERR_LEASE_TTL};
      } else if (g < 0) {
        rc = -1;
        op->err = (kv_error){GRPC_STATUS_INVALID_ARGUMENT, "etcdserver: invalid lease"};
      } else {
        r->id = id;
        r->ttl = ttl;
        store_record rec = {.kind = STORE_RECORD_LEASE_GRANT, .lease_grant = {.id = id, .ttl = ttl}};
        len = encode_simple(&rec, op);
      }
      break;
    }
    case OP_LEASE_REVOKE: {
      Etcdserverpb__LeaseRevokeResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      if (!r) {
        rc = -1;
        break;
      }
      etcdserverpb__lease_revoke_response__init(r);
      int64_t id = ((const Etcdserverpb__LeaseRevokeRequest *)op->req)->id;
      lessor_keys keys = {0};
      pthread_mutex_lock(&s->lease_mu);
      int v = lessor_revoke(s->leases, id, &keys);
      pthread_mutex_unlock(&s->lease_mu);
      if (v < 0) {
        rc = -1;
        op->err = (kv_error){GRPC_STATUS_NOT_FOUND, KV_ERR_LEASE_NOT_FOUND};
        break;
      }
      const uint8_t **kp = malloc((keys.n ? keys.n : 1) * sizeof(*kp));
      size_t *kl = malloc((keys.n ? keys.n : 1) * sizeof(*kl));
      if (!kp || !kl) {
        free(kp);
        free(kl);
        lessor_keys_free(&keys);
        len = -ENOMEM;
        break;
      }
      for (size_t i = 0; i < keys.n; i++) {
        kp[i] = keys.keys[i].key;
        kl[i] = keys.keys[i].len;
      }
      /* The keys are detached already; deleting them must not touch the lessor. */
      if (kv_delete_keys(&w, kp, kl, keys.n) < 0) len = -ENOMEM;
      free(kp);
      free(kl);
      lessor_keys_free(&keys);
      if (len < 0) break;
      int64_t rev = kv_write_commit(&w);
      op->revision = rev ? rev : kv_rev(s->kv);
      len = encode_revoke(&w, rev, id, op);
      if (len >= 0 && rev && s->sink) {
        op->events = capture_events(s, &w, rev);
        if (!op->events) len = -ENOMEM;
      }
      kv_write_release(&w);
      pthread_rwlock_unlock(&s->lock);
      return len;
    }
    case OP_COMPACT: {
      Etcdserverpb__CompactionResponse *r = malloc(sizeof(*r));
      op->resp = &r->base;
      if (!r) {
        rc = -1;
        break;
      }
      etcdserverpb__compaction_response__init(r);
      const Etcdserverpb__CompactionRequest *req = (const Etcdserverpb__CompactionRequest *)op->req;
      rc = kv_compact_check(s->kv, req->revision, &op->err);
      if (rc == 0 && req->revision > 0) {
        kv_compact(s->kv, req->revision);
        len = encode_compact(req->revision, op);
      }
      break;
    }
  }
  if (!op->resp) {
    rc = -1;
    op->err.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
    op->err.message = "etcdserver: out of memory";
  }
  if (rc < 0 && w.nchanges > 0) {
    /* Failed after its first change (a value it had to read was unreadable,
     * or memory ran out): the kv holds a partial write that must never be
     * committed or logged. Stop writing, as for a WAL failure; a restart
     * recovers from disk, where none of it is. */
    LOG_ERROR("store: a write failed half-applied; refusing writes until restart", "code",
              log_int(op->err.code), "error", op->err.message ? op->err.message : "?");
    kv_write_release(&w);
    pthread_rwlock_unlock(&s->lock);
    return -EIO;
  }
  if (rc < 0) {
    op->failed = true;
    kv_write_release(&w);
    pthread_rwlock_unlock(&s->lock);
    return 0;
  }
  int64_t rev = kv_write_commit(&w);
  op->revision = rev ? rev : kv_rev(s->kv);
  if (rev) len = encode_record(&w, rev, op);
  if (rev && s->sink) {
    op->events = capture_events(s, &w, rev);
    if (!op->events) len = -ENOMEM;
  }
  kv_write_release(&w);
  pthread_rwlock_unlock(&s->lock);
  return len;
}

/* ------------------------------------------------------------------ snapshots
 *
 * A snapshot is a stream of WAL-codec records, one per chunk: SnapshotMeta
 * (revision, compacted revision, WAL index), a LeaseGrant per lease, then a
 * SnapshotKv for every record the revision store holds, in revision order.
 *
 * It is written off the write path. Between two ops, once snapshot_count
 * records were appended since the last one started, the applier captures
 * a point: the WAL index I of the last record appended, the revision R and the
 * compacted revision C, and a copy of the lease table (id, TTL). All of it is
 * the state as of I: every change to the kv and the leases goes through the
 * applier in log order (keepalives change no TTL that is logged). It hands that
 * to a snapshot thread and goes on with the next op.
 *
 * The snapshot thread waits for I to be durable (a snapshot never holds a
 * write the log could lose), then walks every record with main <= R in chunks
 * of at most SNAP_CHUNK_RECORDS / SNAP_CHUNK_BYTES: it takes the read lock,
 * encodes a chunk into its own buffer, drops the lock, and only then writes it
 * to the file. Writes go on between chunks: they only append records above R,
 * which the walk never reads; it resumes by revision, never by pointer (an
 * append may move the revision store's slot vector).
 *
 * Records at or below R change only by compaction (it frees them), so a
 * compaction submitted while a snapshot runs is held: the applier sets it
 * aside, unapplied and unlogged, and applies it in submission order once the
 * snapshot is over. Its reply waits for that; no write does. That is a valid
 * order: the compaction takes effect after writes submitted after it, and no
 * client was told otherwise. Nothing else frees a record.
 *
 * snapshot_write makes the file durable (.tmp, fsync, rename, directory fsync;
 * every chunk CRC'd and a trailer that proves the end) and only then is the WAL
 * truncated, up to the oldest snapshot kept. A kill at any instant leaves the
 * earlier snapshots and every WAL record after the oldest of them. */

#define SNAP_CHUNK_RECORDS 1024
#define SNAP_CHUNK_BYTES (256u << 10)

typedef struct snap_lease {
  int64_t id, ttl;
} snap_lease;

typedef struct snap_job {
  store *s;
  uint64_t index;
  int64_t revision, compact_revision;
  snap_lease *leases;
  size_t nleases, capleases;
} snap_job;

/* A value the new file holds: the record at (main, sub) can read it at off. */
typedef struct snap_move {
  int64_t main, sub;
  uint64_t off;
} snap_move;

typedef struct snap_writer {
  store *s;
  snap_job *job;
  snapshot_sink *sink;
  uint8_t *buf; /* one record: meta, leases */
  size_t cap;
  /* One chunk of encoded SnapshotKv records, each [u32 length][bytes], and
   * for each whether it carries a value. */
  uint8_t *chunk;
  size_t chunk_len, chunk_cap, chunk_records;
  bool *has_value;
  size_t has_value_cap;
  uint8_t *vbuf; /* a value read back from the previous snapshot file */
  size_t vcap;
  /* Where every value landed in the file (for the repoint once it is durable). */
  snap_move *moves;
  size_t nmoves, capmoves;
  bool moves_oom;
  mvcc_revision next; /* where the walk resumes */
  uint64_t records, bytes;
  int64_t produced_ms; /* when the last chunk was handed to the file */
  int rc;
} snap_writer;

static void snap_hook(store *s, int phase, uint64_t index, uint64_t records) {
  if (s->opts.snapshot_hook) s->opts.snapshot_hook(s->opts.snapshot_hook_arg, phase, index, records);
}

static int snap_emit(snap_writer *w, const store_record *r) {
  size_t size = 0, len = 0;
  int rc = store_record_encoded_size(r, &size);
  if (rc < 0) return rc;
  if (size > w->cap) {
    uint8_t *b = realloc(w->buf, size);
    if (!b) return -ENOMEM;
    w->buf = b;
    w->cap = size;
  }
  rc = store_record_encode(r, w->buf, w->cap, &len);
  if (rc < 0) return rc;
  return snapshot_sink_write(w->sink, w->buf, len);
}

/* Under the read lock: encodes one record into the chunk; 1 = the chunk is full. */
static int snap_collect(void *arg, mvcc_revision rev, const kv_record *rec) {
  snap_writer *w = arg;
  const uint8_t *value = kv_record_value(rec);
  if (rec->on_disk) {
    /* Copied from the previous snapshot file into this one. */
    if (rec->value_len > w->vcap) {
      uint8_t *p = realloc(w->vbuf, rec->value_len);
      if (!p) {
        w->rc = -ENOMEM;
        return 1;
      }
      w->vbuf = p;
      w->vcap = rec->value_len;
    }
    if (kv_record_read_value(rec, w->vbuf) < 0) {
      w->rc = -EIO;
      return 1;
    }
    value = w->vbuf;
  }
  if (w->chunk_records == w->has_value_cap) {
    size_t ncap = w->has_value_cap ? w->has_value_cap * 2 : SNAP_CHUNK_RECORDS;
    bool *p = realloc(w->has_value, ncap * sizeof(*p));
    if (!p) {
      w->rc = -ENOMEM;
      return 1;
    }
    w->has_value = p;
    w->has_value_cap = ncap;
  }
  w->has_value[w->chunk_records] = !rec->tombstone && rec->value_len > 0;
  store_record r = {.kind = STORE_RECORD_SNAPSHOT_KV,
                    .snapshot_kv = {.main = rev.main,
                                    .sub = rev.sub,
                                    .key = {kv_record_key(rec), rec->key_len},
                                    .value = {value, rec->value_len},
                                    .create_revision = rec->create_revision,
                                    .version = rec->version,
                                    .lease = rec->lease,
                                    .tombstone = rec->tombstone}};
  size_t size = 0, len = 0;
  int rc = store_record_encoded_size(&r, &size);
  if (rc < 0) {
    w->rc = rc;
    return 1;
  }
  if (w->chunk_len + 4 + size > w->chunk_cap) {
    size_t ncap = w->chunk_cap ? w->chunk_cap : SNAP_CHUNK_BYTES + 4096;
    while (ncap < w->chunk_len + 4 + size) ncap *= 2;
    uint8_t *p = realloc(w->chunk, ncap);
    if (!p) {
      w->rc = -ENOMEM;
      return 1;
    }
    w->chunk = p;
    w->chunk_cap = ncap;
  }
  rc = store_record_encode(&r, w->chunk + w->chunk_len + 4, size, &len);
  if (rc < 0) {
    w->rc = rc;
    return 1;
  }
  uint32_t l32 = (uint32_t)len;
  memcpy(w->chunk + w->chunk_len, &l32, 4);
  w->chunk_len += 4 + len;
  w->chunk_records++;
  w->next = (mvcc_revision){rev.main, rev.sub + 1};
  return w->chunk_len >= SNAP_CHUNK_BYTES || w->chunk_records >= SNAP_CHUNK_RECORDS;
}

typedef struct value_at {
  const uint8_t *base;
  snap_move *move;
} value_at;

static int find_value(void *arg, const store_snapshot_kv *kv) {
  value_at *v = arg;
  *v->move = (snap_move){kv->main, kv->sub, (uint64_t)(kv->value.data - v->base)};
  return 0;
}

/* Notes where the value of the SnapshotKv record rec[0..len) starts in the
 * file, given that its chunk payload starts at `at`. The decoder hands out
 * slices into the buffer, so the value's position is exact whatever the
 * encoding. Best effort: a record not noted keeps its value in memory. */
static void note_move(snap_writer *w, const uint8_t *rec, size_t len, uint64_t at) {
  if (w->moves_oom) return;
  if (w->nmoves == w->capmoves) {
    size_t ncap = w->capmoves ? w->capmoves * 2 : 4096;
    snap_move *p = realloc(w->moves, ncap * sizeof(*p));
    if (!p) {
      w->moves_oom = true;
      return;
    }
    w->moves = p;
    w->capmoves = ncap;
  }
  static const store_record_visitor v = {.snapshot_kv = find_value};
  value_at va = {rec, &w->moves[w->nmoves]};
  if (store_record_decode(rec, len, &v, &va, NULL) == 0) {
    w->moves[w->nmoves].off += at;
    w->nmoves++;
  }
}

static int snap_produce(void *arg, snapshot_sink *sink) {
  snap_writer *w = arg;
  store *s = w->s;
  snap_job *job = w->job;
  w->sink = sink;
  store_record meta = {.kind = STORE_RECORD_SNAPSHOT_META,
                       .snapshot_meta = {.revision = job->revision,
                                         .compact_revision = job->compact_revision,
                                         .wal_index = job->index}};
  int rc = snap_emit(w, &meta);
  for (size_t i = 0; rc == 0 && i < job->nleases; i++) {
    store_record r = {.kind = STORE_RECORD_LEASE_GRANT,
                      .lease_grant = {.id = job->leases[i].id, .ttl = job->leases[i].ttl}};
    rc = snap_emit(w, &r);
  }
  if (rc < 0) return rc;
  for (;;) {
    if (atomic_load(&s->snap_cancel)) return -ECANCELED;
    w->chunk_len = w->chunk_records = 0;
    pthread_rwlock_rdlock(&s->lock);
    int more = revstore_each_from(kv_revstore(s->kv), w->next, job->revision, snap_collect, w);
    pthread_rwlock_unlock(&s->lock);
    if (w->rc < 0) return w->rc;
    /* The file is written with no lock held. */
    size_t k = 0;
    for (size_t off = 0; off < w->chunk_len; k++) {
      uint32_t len;
      memcpy(&len, w->chunk + off, 4);
      uint64_t at = snapshot_sink_offset(sink);
      rc = snapshot_sink_write(sink, w->chunk + off + 4, len);
      if (rc < 0) return rc;
      if (w->has_value[k]) note_move(w, w->chunk + off + 4, len, at);
      off += 4 + (size_t)len;
      w->bytes += len;
    }
    w->records += w->chunk_records;
    snap_hook(s, STORE_SNAPSHOT_CHUNK, job->index, w->records);
    if (s->opts.snapshot_chunk_delay_us > 0) {
      struct timespec ts = {s->opts.snapshot_chunk_delay_us / 1000000,
                            (long)(s->opts.snapshot_chunk_delay_us % 1000000) * 1000};
      nanosleep(&ts, NULL);
    }
    if (!more) {
      w->produced_ms = now_ms();
      return 0;
    }
  }
}

#define REPOINT_BATCH 1024

/* On the snapshot thread, once the file is durable and renamed, with
 * compaction still held (nothing at or below R can be freed meanwhile): every
 * value the file holds is served from it from now on and its in-memory copy
 * (or its reference into an older snapshot file) is dropped. Under the write
 * lock, REPOINT_BATCH records at a time: records are only replaced under the
 * write lock, so nothing that reads under the read lock, or in the apply
 * thread's write, ever sees one go. */
static size_t snap_repoint(store *s, snap_writer *w, uint64_t index) {
  if (w->nmoves == 0) return 0;
  char path[sizeof(s->snap_dir) + 32];
  snprintf(path, sizeof(path), "%s/%016llx.snap", s->snap_dir, (unsigned long long)index);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    LOG_WARN("store: cannot open the new snapshot to read values from; they stay in memory", "file",
             path, "error", strerror(errno));
    return 0;
  }
  value_file *f = value_file_adopt(fd, path, index);
  if (!f) return 0;
  size_t moved = 0;
  bool stop = false;
  for (size_t i = 0; i < w->nmoves && !stop && !atomic_load(&s->snap_cancel);) {
    pthread_rwlock_wrlock(&s->lock);
    revstore *rs = kv_revstore(s->kv);
    for (size_t end = i + REPOINT_BATCH; i < w->nmoves && i < end; i++) {
      mvcc_revision rev = {w->moves[i].main, w->moves[i].sub};
      const kv_record *old = revstore_get(rs, rev);
      if (!old || old->tombstone || old->value_len == 0) continue;
      if (old->on_disk && kv_record_ref(old).file == f) continue;
      kv_record *nr = kv_record_new_on_disk(kv_record_key(old), old->key_len, old->value_len, f,
                                            w->moves[i].off, old->create_revision, old->version,
                                            old->lease);
      if (!nr) {
        stop = true; /* out of memory: the rest stays where it is */
        break;
      }
      kv_record_free(revstore_replace(rs, rev, nr));
      moved++;
    }
    pthread_rwlock_unlock(&s->lock);
  }
  value_file_unref(f);
  /* The freed values are spread over many pages: hand them back now rather
   * than when the allocator's decay gets to them, so VmRSS shows it. */
  if (s->opts.release_memory) s->opts.release_memory();
  return moved;
}

static void *snap_main(void *arg) {
  snap_job *job = arg;
  store *s = job->s;
  int64_t t0 = now_ms();
  LOG_INFO("store: snapshot started", "index", log_int((long long)job->index), "revision",
           log_int(job->revision));
  snap_hook(s, STORE_SNAPSHOT_STARTED, job->index, 0);
  /* Durable state only: the record at I may still be in the group commit. */
  int rc = 0;
  while (atomic_load(&s->durable_index) < job->index) {
    if (atomic_load(&s->failed_errno) || atomic_load(&s->snap_cancel)) {
      rc = -ECANCELED;
      break;
    }
    struct timespec ts = {0, 200000};
    nanosleep(&ts, NULL);
  }
  keel_error err = {0};
  snap_writer w = {.s = s, .job = job};
  uint64_t oldest = 0;
  if (rc == 0) rc = snapshot_write(s->snap_dir, job->index, snap_produce, &w, &oldest, &err);
  free(w.buf);
  free(w.chunk);
  free(w.vbuf);
  free(w.has_value);
  if (rc < 0) {
    /* Not fatal: the WAL still holds everything; the next one comes after
     * another snapshot_count records. */
    if (atomic_load(&s->snap_cancel) || atomic_load(&s->failed_errno))
      LOG_INFO("store: snapshot abandoned", "index", log_int((long long)job->index));
    else
      LOG_ERROR("store: snapshot failed", "index", log_int((long long)job->index), "error",
                err.message);
    snap_hook(s, STORE_SNAPSHOT_ABANDONED, job->index, w.records);
  } else {
    atomic_store(&s->snapshot_index, job->index);
    atomic_fetch_add(&s->snapshots, 1);
    snap_hook(s, STORE_SNAPSHOT_WRITTEN, job->index, w.records);
    /* Only now, and only up to the oldest snapshot kept (falling back to it
     * must find every later record). */
    int removed = wal_truncate_before(s->wal, oldest, &err);
    if (removed < 0) LOG_WARN("store: WAL truncation failed", "error", err.message);
    int64_t t_written = now_ms();
    size_t moved = snap_repoint(s, &w, job->index);
    snap_hook(s, STORE_SNAPSHOT_REPOINTED, job->index, moved);
    pthread_rwlock_rdlock(&s->lock);
    size_t resident = revstore_value_bytes_resident(kv_revstore(s->kv));
    pthread_rwlock_unlock(&s->lock);
    LOG_INFO("store: snapshot written", "index", log_int((long long)job->index), "revision",
             log_int(job->revision), "records", log_int((long long)w.records), "bytes",
             log_int((long long)w.bytes), "ms", log_int(t_written - t0), "sync_ms",
             log_int(t_written - w.produced_ms), "wal_segments_removed", log_int(removed),
             "values_moved_to_file", log_int((long long)moved), "repoint_ms",
             log_int(now_ms() - t_written), "value_bytes_resident", log_int((long long)resident));
  }
  free(w.moves);
  free(job->leases);
  free(job);
  pthread_mutex_lock(&s->mu);
  atomic_store(&s->snap_active, false);
  atomic_store(&s->snap_done, true);
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int snap_capture_lease(void *arg, int64_t id, int64_t ttl) {
  snap_job *job = arg;
  if (job->nleases == job->capleases) {
    size_t ncap = job->capleases ? job->capleases * 2 : 64;
    snap_lease *p = realloc(job->leases, ncap * sizeof(*p));
    if (!p) return -ENOMEM;
    job->leases = p;
    job->capleases = ncap;
  }
  job->leases[job->nleases++] = (snap_lease){id, ttl};
  return 0;
}

/* By the applier, between ops: starts a snapshot when one is due. */
static void maybe_snapshot(store *s) {
  if (s->snap_running || s->last_appended < s->snap_base + s->opts.snapshot_count ||
      atomic_load(&s->snap_cancel))
    return;
  /* Due: the next one counts from here, whatever becomes of this one. */
  s->snap_base = s->last_appended;
  snap_job *job = calloc(1, sizeof(*job));
  int rc = job ? 0 : -ENOMEM;
  if (job) {
    *job = (snap_job){.s = s,
                      .index = s->last_appended,
                      .revision = kv_rev(s->kv),
                      .compact_revision = kv_compact_rev(s->kv)};
    pthread_mutex_lock(&s->lease_mu);
    rc = lessor_foreach(s->leases, snap_capture_lease, job);
    pthread_mutex_unlock(&s->lease_mu);
  }
  atomic_store(&s->snap_done, false);
  atomic_store(&s->snap_active, true);
  if (rc == 0 && pthread_create(&s->snap_thread, NULL, snap_main, job) == 0) {
    s->snap_running = true;
    return;
  }
  atomic_store(&s->snap_active, false);
  LOG_ERROR("store: cannot start a snapshot", "index", log_int((long long)s->last_appended), "error",
            log_int(rc < 0 ? rc : -EAGAIN));
  if (job) free(job->leases);
  free(job);
}

static void requeue_front(store *s, store_op *ops);

/* Puts the held compactions back at the front of the apply queue, in order,
 * for the applier's drain (a snapshot may start again among them: the rest
 * are held again). */
static void release_held(store *s) {
  store_op *ops = s->held_head;
  s->held_head = s->held_tail = NULL;
  if (!ops) return;
  for (store_op *op = ops; op; op = op->next) atomic_fetch_sub(&s->held_count, 1);
  pthread_mutex_lock(&s->mu);
  requeue_front(s, ops);
  pthread_mutex_unlock(&s->mu);
}

/* By the applier: joins a finished snapshot and releases what it held. */
static void snapshot_poll(store *s) {
  if (!s->snap_running || !atomic_load(&s->snap_done)) return;
  pthread_join(s->snap_thread, NULL);
  s->snap_running = false;
  atomic_store(&s->snap_done, false);
  release_held(s);
}

/* By the apply thread, closing: abandons a running snapshot (its .tmp is
 * removed; the WAL still holds everything) and releases what it held. */
static void snapshot_stop(store *s) {
  atomic_store(&s->snap_cancel, true); /* and maybe_snapshot starts no other */
  if (s->snap_running) {
    pthread_join(s->snap_thread, NULL);
    s->snap_running = false;
    atomic_store(&s->snap_done, false);
  }
  release_held(s);
}

/* A compaction that would free history while a snapshot reads it waits. One
 * that etcd refuses (or a no-op) goes through now. */
static bool hold_compaction(store *s, store_op *op) {
  if (op->kind != OP_COMPACT || !s->snap_running) return false;
  const Etcdserverpb__CompactionRequest *req = (const Etcdserverpb__CompactionRequest *)op->req;
  kv_error e;
  /* The applier is the only writer of the kv: no lock needed to read it. */
  if (req->revision <= 0 || kv_compact_check(s->kv, req->revision, &e) < 0) return false;
  op->next = NULL;
  if (s->held_tail) s->held_tail->next = op;
  else s->held_head = op;
  s->held_tail = op;
  atomic_fetch_add(&s->held_count, 1);
  return true;
}

typedef struct snap_loader {
  store *s;
  int64_t revision, compact_revision;
  uint64_t wal_index;
  bool have_meta;
  /* The file values are read back from (one reference held by the loader),
   * and the chunk being loaded with its offset in that file. */
  value_file *file;
  bool no_file; /* could not keep the file open: values are copied into memory */
  const uint8_t *chunk;
  uint64_t chunk_off;
  keel_error *err;
} snap_loader;

static int load_meta(void *arg, int64_t revision, int64_t compact_revision, uint64_t wal_index) {
  snap_loader *l = arg;
  l->revision = revision;
  l->compact_revision = compact_revision;
  l->wal_index = wal_index;
  l->have_meta = true;
  return 0;
}

static int load_lease(void *arg, int64_t id, int64_t ttl) {
  snap_loader *l = arg;
  int rc = lessor_grant(l->s->leases, id, ttl, now_ms());
  return rc == -EEXIST ? 0 : rc;
}

static int load_kv(void *arg, const store_snapshot_kv *kv) {
  snap_loader *l = arg;
  if (!l->have_meta) return -EBADMSG;
  /* The decoder's slices point into the chunk: the value's place in the file. */
  uint64_t value_off = l->chunk_off + (uint64_t)(kv->value.data - l->chunk);
  int rc = kv_restore_at(l->s->kv, (mvcc_revision){kv->main, kv->sub}, kv->key.data, kv->key.len,
                         kv->value.data, kv->value.len, l->file, value_off, kv->create_revision,
                         kv->version, kv->lease, kv->tombstone, l->compact_revision);
  if (rc < 0)
    return keel_error_set(l->err, -rc, "snapshot: record %lld.%lld does not fit the state",
                          (long long)kv->main, (long long)kv->sub);
  return 0;
}

/* A record of a kind that never belongs in a snapshot. */
static int load_refuse_txn(void *arg, int64_t r, size_t n, int64_t l) {
  (void)arg, (void)r, (void)n, (void)l;
  return -EBADMSG;
}
static int load_refuse_rev(void *arg, int64_t r) {
  (void)arg, (void)r;
  return -EBADMSG;
}

static int load_chunk(void *arg, const uint8_t *chunk, size_t len, uint64_t offset, int fd) {
  snap_loader *l = arg;
  if (l->have_meta && !l->file && !l->no_file) {
    char path[sizeof(l->s->snap_dir) + 32];
    snprintf(path, sizeof(path), "%s/%016llx.snap", l->s->snap_dir, (unsigned long long)l->wal_index);
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    l->file = own >= 0 ? value_file_adopt(own, path, l->wal_index) : NULL;
    if (!l->file) {
      l->no_file = true;
      LOG_WARN("store: cannot keep the snapshot open; its values are loaded into memory", "file", path);
    }
  }
  l->chunk = chunk;
  l->chunk_off = offset;
  static const store_record_visitor v = {.txn = load_refuse_txn,
                                         .compact = load_refuse_rev,
                                         .lease_grant = load_lease,
                                         .lease_revoke = load_refuse_rev,
                                         .snapshot_meta = load_meta,
                                         .snapshot_kv = load_kv};
  return store_record_decode(chunk, len, &v, l, l->err);
}

/* Who applies. Ops are applied one at a time, in queue order, by whichever
 * thread holds the applier role: usually the thread that submitted into an
 * idle pipeline (a completion-queue thread), which then drains the queue,
 * including what other threads queue meanwhile. Applying is in-memory work
 * and the WAL append it ends with never blocks there (wal_try_append); when
 * the WAL's queue is full, the role and the rest of the queue go to the apply
 * thread, which may wait for room. The apply thread also takes the role to
 * join a finished snapshot and at close. Before, every write was handed to
 * the apply thread: on this project's 2-vCPU VMs a thread wake-up costs about
 * 50 us, a tenth of a one-client put. */

enum { OP_DONE = 0, OP_WOULD_BLOCK = 1 };

/* One op, by the applier: apply, log, or complete. Returns OP_WOULD_BLOCK
 * (only when !may_block) if the op is applied but the WAL has no room yet: call
 * again with the same op, before any other. */
static int process_op(store *s, store_op *op, bool may_block) {
  op->store = s;
  op->next = NULL; /* the caller has taken its successor */
  if (!op->applied) {
    int failed = atomic_load(&s->failed_errno);
    if (failed) {
      fail_op(op, GRPC_STATUS_UNAVAILABLE, STORAGE_FAILURE);
      complete(s, op);
      return OP_DONE;
    }
    if (hold_compaction(s, op)) return OP_DONE;
    int len = apply_one(s, op);
    if (len < 0) {
      /* The kv changed but the record cannot be written: stop writing. */
      atomic_store(&s->failed_errno, -len);
      LOG_ERROR("store: cannot apply or encode a write; refusing writes until restart", "error",
                log_int(len));
      fail_op(op, GRPC_STATUS_UNAVAILABLE, STORAGE_FAILURE);
      complete(s, op);
      return OP_DONE;
    }
    op->applied = true;
    op->len = len;
  }
  if (op->len > 0) {
    int64_t index = may_block ? wal_append(s->wal, op->payload, (size_t)op->len, wal_done, op)
                              : wal_try_append(s->wal, op->payload, (size_t)op->len, wal_done, op);
    if (index == -EAGAIN && !may_block) return OP_WOULD_BLOCK;
    if (index < 0) {
      atomic_store(&s->failed_errno, (int)-index);
      fail_op(op, GRPC_STATUS_UNAVAILABLE, STORAGE_FAILURE);
      complete(s, op);
      return OP_DONE;
    }
    s->last_appended = (uint64_t)index;
    /* Between ops, so a snapshot never splits one. */
    maybe_snapshot(s);
    return OP_DONE; /* wal_done completes it */
  }
  /* Nothing to log: wait for what it may have read to be durable. */
  if (op->failed || s->last_appended <= atomic_load(&s->durable_index)) {
    complete(s, op);
    return OP_DONE;
  }
  op->wait_index = s->last_appended;
  pthread_mutex_lock(&s->mu);
  if (s->wait_tail) s->wait_tail->next = op;
  else s->wait_head = op;
  s->wait_tail = op;
  pthread_mutex_unlock(&s->mu);
  /* The record may have become durable meanwhile. */
  release_waiters(s, atomic_load(&s->durable_index));
  return OP_DONE;
}

/* Under s->mu: puts ops (a chain) back at the front of the queue. */
static void requeue_front(store *s, store_op *ops) {
  store_op *last = ops;
  int n = 1;
  while (last->next) {
    last = last->next;
    n++;
  }
  last->next = s->head;
  if (!s->head) s->tail = last;
  s->head = ops;
  s->queued += n;
}

/* Under s->mu, giving up the role: wakes the apply thread if it has work that
 * needed the role (a finished snapshot to join, closing). */
static void release_role(store *s) {
  s->applying = false;
  if (s->closing || atomic_load(&s->snap_done)) pthread_cond_signal(&s->cond);
}

/* Holding the applier role: applies everything queued until the queue is
 * empty. Without may_block (any thread but the apply thread) it then gives
 * the role up, or hands it to the apply thread as soon as the WAL's queue is
 * full; with may_block (the apply thread) it keeps the role. */
static void drain(store *s, bool may_block) {
  for (;;) {
    pthread_mutex_lock(&s->mu);
    store_op *batch = s->head;
    s->head = s->tail = NULL;
    s->queued = 0;
    if (!batch) {
      if (!may_block) release_role(s);
      pthread_mutex_unlock(&s->mu);
      return;
    }
    pthread_mutex_unlock(&s->mu);
    snapshot_poll(s);
    while (batch) {
      store_op *op = batch;
      batch = op->next;
      if (process_op(s, op, may_block) == OP_WOULD_BLOCK) {
        op->next = batch;
        pthread_mutex_lock(&s->mu);
        requeue_front(s, op);
        s->apply_handoff = true;
        atomic_fetch_add(&s->apply_handoffs, 1);
        pthread_cond_signal(&s->cond);
        pthread_mutex_unlock(&s->mu);
        return;
      }
      snapshot_poll(s);
    }
  }
}

static void *apply_main(void *arg) {
  store *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->apply_handoff &&
           (s->applying || !(s->closing || atomic_load(&s->snap_done) || s->head)))
      pthread_cond_wait(&s->cond, &s->mu);
    s->apply_handoff = false;
    s->applying = true;
    pthread_mutex_unlock(&s->mu);
    snapshot_poll(s);
    drain(s, true);
    pthread_mutex_lock(&s->mu);
    if (s->closing && !s->head) break; /* keeps the role: nothing applies after close */
    s->applying = false;
  }
  pthread_mutex_unlock(&s->mu);
  snapshot_stop(s);
  drain(s, true); /* the compactions it held */
  return NULL;
}

static int submit(store *s, op_kind kind, const ProtobufCMessage *req, store_done_fn done, void *arg) {
  store_op *op = calloc(1, sizeof(*op));
  if (!op) return -ENOMEM;
  op->kind = kind;
  bool malformed;
  op->req = copy_message(req, &malformed);
  op->done = done;
  op->arg = arg;
  op->store = s;
  if (!op->req) {
    free(op);
    return malformed ? -EINVAL : -ENOMEM;
  }
  pthread_mutex_lock(&s->mu);
  if (s->closing || s->queued >= s->opts.apply_queue_max) {
    bool closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    protobuf_c_message_free_unpacked(op->req, NULL);
    free(op);
    return closing ? -ESHUTDOWN : -EAGAIN;
  }
  if (s->tail) s->tail->next = op;
  else s->head = op;
  s->tail = op;
  s->queued++;
  if (s->applying) {
    /* The applier takes it. The apply thread may hold the role asleep in
     * wal_append, or be waiting for it (then it needs no signal). Only the
     * apply thread waits on cond: the lease thread has its own. */
    pthread_mutex_unlock(&s->mu);
    return 0;
  }
  s->applying = true;
  pthread_mutex_unlock(&s->mu);
  drain(s, false);
  return 0;
}

int store_submit_put(store *s, const Etcdserverpb__PutRequest *req, store_done_fn done, void *arg) {
  return submit(s, OP_PUT, &req->base, done, arg);
}
int store_submit_delete_range(store *s, const Etcdserverpb__DeleteRangeRequest *req,
                              store_done_fn done, void *arg) {
  return submit(s, OP_DELETE_RANGE, &req->base, done, arg);
}
int store_submit_txn(store *s, const Etcdserverpb__TxnRequest *req, store_done_fn done, void *arg) {
  return submit(s, OP_TXN, &req->base, done, arg);
}
int store_submit_compact(store *s, const Etcdserverpb__CompactionRequest *req, store_done_fn done,
                         void *arg) {
  return submit(s, OP_COMPACT, &req->base, done, arg);
}

int store_submit_lease_grant(store *s, const Etcdserverpb__LeaseGrantRequest *req,
                             store_done_fn done, void *arg) {
  return submit(s, OP_LEASE_GRANT, &req->base, done, arg);
}
int store_submit_lease_revoke(store *s, const Etcdserverpb__LeaseRevokeRequest *req,
                              store_done_fn done, void *arg) {
  return submit(s, OP_LEASE_REVOKE, &req->base, done, arg);
}

int store_lease_keepalive(store *s, int64_t id, int64_t *ttl) {
  pthread_mutex_lock(&s->lease_mu);
  int64_t r = lessor_keepalive(s->leases, id, now_ms());
  pthread_mutex_unlock(&s->lease_mu);
  if (r < 0) return -ENOENT;
  *ttl = r;
  return 0;
}

int store_lease_time_to_live(store *s, const Etcdserverpb__LeaseTimeToLiveRequest *req,
                             Etcdserverpb__LeaseTimeToLiveResponse *out) {
  etcdserverpb__lease_time_to_live_response__init(out);
  out->header = malloc(sizeof(*out->header));
  if (!out->header) return -ENOMEM;
  etcdserverpb__response_header__init(out->header);
  store_fill_header(s, out->header);
  out->id = req->id;
  lessor_keys keys = {0};
  int64_t granted = 0, remaining = -1;
  pthread_mutex_lock(&s->lease_mu);
  int r = lessor_time_to_live(s->leases, req->id, now_ms(), &granted, &remaining,
                              req->keys ? &keys : NULL);
  pthread_mutex_unlock(&s->lease_mu);
  if (r == -ENOMEM) return -ENOMEM;
  out->ttl = r < 0 ? -1 : remaining;
  out->grantedttl = r < 0 ? 0 : granted;
  if (r == 0 && keys.n) {
    out->keys = calloc(keys.n, sizeof(*out->keys));
    if (!out->keys) {
      lessor_keys_free(&keys);
      return -ENOMEM;
    }
    for (size_t i = 0; i < keys.n; i++) {
      out->keys[i].data = keys.keys[i].key; /* ownership moves to the response */
      out->keys[i].len = keys.keys[i].len;
      keys.keys[i].key = NULL;
    }
    out->n_keys = keys.n;
  }
  free(keys.keys);
  return 0;
}

int store_lease_leases(store *s, Etcdserverpb__LeaseLeasesResponse *out) {
  etcdserverpb__lease_leases_response__init(out);
  out->header = malloc(sizeof(*out->header));
  if (!out->header) return -ENOMEM;
  etcdserverpb__response_header__init(out->header);
  store_fill_header(s, out->header);
  pthread_mutex_lock(&s->lease_mu);
  size_t n = lessor_count(s->leases);
  int64_t *ids = malloc((n ? n : 1) * sizeof(*ids));
  if (ids) n = lessor_list(s->leases, ids, n);
  pthread_mutex_unlock(&s->lease_mu);
  if (!ids) return -ENOMEM;
  out->leases = calloc(n ? n : 1, sizeof(*out->leases));
  if (!out->leases) {
    free(ids);
    return -ENOMEM;
  }
  for (size_t i = 0; i < n; i++) {
    Etcdserverpb__LeaseStatus *ls = malloc(sizeof(*ls));
    if (!ls) break;
    etcdserverpb__lease_status__init(ls);
    ls->id = ids[i];
    out->leases[out->n_leases++] = ls;
  }
  free(ids);
  return 0;
}

static void compact_done(void *arg, const kv_error *err, ProtobufCMessage *resp) {
  store *s = arg;
  if (!err) atomic_fetch_add(&s->auto_compactions, 1);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
}

/* etcd's auto compaction, on the timer thread; the compaction itself goes
 * through the pipeline (logged, ordered with writes) like a client's. */
static void maybe_auto_compact(store *s) {
  int64_t now = now_ms();
  if (now < s->next_check_ms) return;
  int64_t target = 0;
  if (s->opts.auto_compaction_retention_ms > 0) {
    int64_t period = s->opts.auto_compaction_retention_ms;
    int64_t interval = s->opts.auto_compaction_check_ms > 0 ? s->opts.auto_compaction_check_ms
                       : period / 10 < 3600000             ? period / 10
                                                           : 3600000;
    if (interval < 1) interval = 1;
    s->next_check_ms = now + interval;
    /* The newest sample at least one retention old is what to keep history from. */
    int keep = -1;
    for (int i = 0; i < s->nsamples; i++)
      if (s->samples[i].t_ms <= now - period) keep = i;
    if (keep >= 0) {
      target = s->samples[keep].rev;
      memmove(s->samples, s->samples + keep + 1, (size_t)(s->nsamples - keep - 1) * sizeof(s->samples[0]));
      s->nsamples -= keep + 1;
    }
    if (s->nsamples == (int)(sizeof(s->samples) / sizeof(s->samples[0]))) {
      memmove(s->samples, s->samples + 1, (size_t)(s->nsamples - 1) * sizeof(s->samples[0]));
      s->nsamples--;
    }
    s->samples[s->nsamples].t_ms = now;
    s->samples[s->nsamples].rev = atomic_load(&s->published);
    s->nsamples++;
  } else if (s->opts.auto_compaction_retention_revs > 0) {
    s->next_check_ms = now + (s->opts.auto_compaction_check_ms > 0 ? s->opts.auto_compaction_check_ms
                                                                   : 5 * 60 * 1000);
    target = atomic_load(&s->published) - s->opts.auto_compaction_retention_revs;
  } else {
    s->next_check_ms = INT64_MAX;
    return;
  }
  pthread_rwlock_rdlock(&s->lock);
  int64_t compacted = kv_compact_rev(s->kv);
  pthread_rwlock_unlock(&s->lock);
  if (target <= compacted || target <= 1) return;
  Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  req.revision = target;
  LOG_INFO("store: auto compaction", "revision", log_int(target));
  submit(s, OP_COMPACT, &req.base, compact_done, s);
}

/* Revokes expired leases through the pipeline, so their key deletions are
 * logged and watched like any write. */
static void *lease_main(void *arg) {
  store *s = arg;
  int64_t expired[256];
  for (;;) {
    pthread_mutex_lock(&s->mu);
    if (!s->closing) {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      ts.tv_nsec += (long)s->opts.lease_check_ms * 1000000L;
      ts.tv_sec += ts.tv_nsec / 1000000000L;
      ts.tv_nsec %= 1000000000L;
      pthread_cond_timedwait(&s->lease_cv, &s->mu, &ts);
    }
    bool closing = s->closing;
    pthread_mutex_unlock(&s->mu);
    if (closing) break;
    size_t n = 0;
    pthread_mutex_lock(&s->lease_mu);
    size_t found = lessor_expired(s->leases, now_ms(), expired, 256);
    for (size_t i = 0; i < found; i++) {
      bool pending = false;
      for (size_t k = 0; k < s->nrevoking; k++) pending |= s->revoking[k] == expired[i];
      if (pending) continue;
      if (s->nrevoking == s->caprevoking) {
        size_t ncap = s->caprevoking ? s->caprevoking * 2 : 64;
        int64_t *p = realloc(s->revoking, ncap * sizeof(*p));
        if (!p) break;
        s->revoking = p;
        s->caprevoking = ncap;
      }
      s->revoking[s->nrevoking++] = expired[i];
      expired[n++] = expired[i];
    }
    pthread_mutex_unlock(&s->lease_mu);
    maybe_auto_compact(s);
    for (size_t i = 0; i < n; i++) {
      Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
      req.id = expired[i];
      if (submit(s, OP_LEASE_REVOKE, &req.base, NULL, NULL) < 0) {
        pthread_mutex_lock(&s->lease_mu);
        for (size_t k = 0; k < s->nrevoking; k++)
          if (s->revoking[k] == expired[i]) {
            s->revoking[k] = s->revoking[--s->nrevoking];
            break;
          }
        pthread_mutex_unlock(&s->lease_mu);
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------ reads, status */

void store_fill_header(store *s, Etcdserverpb__ResponseHeader *h) {
  h->cluster_id = s->opts.cluster_id;
  h->member_id = s->opts.member_id;
  h->raft_term = s->raft_term;
  h->revision = atomic_load(&s->published);
}

int store_range(store *s, const Etcdserverpb__RangeRequest *req, Etcdserverpb__RangeResponse *out,
                kv_error *err) {
  pthread_rwlock_rdlock(&s->lock);
  int64_t at = atomic_load(&s->published);
  int rc = kv_range(s->kv, req, at, out, err);
  pthread_rwlock_unlock(&s->lock);
  if (rc == 0) {
    /* The header names the revision the data was read at (a list-then-watch
     * client resumes from it), not whatever was published a moment later. */
    out->header = malloc(sizeof(*out->header));
    if (!out->header) {
      err->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
      err->message = "etcdserver: out of memory";
      return -1;
    }
    etcdserverpb__response_header__init(out->header);
    store_fill_header(s, out->header);
    out->header->revision = at;
  }
  return rc;
}

void store_get_status(store *s, store_status *out) {
  memset(out, 0, sizeof(*out));
  pthread_rwlock_rdlock(&s->lock);
  out->compact_revision = kv_compact_rev(s->kv);
  out->keys = kv_key_count(s->kv);
  out->memory_bytes = kv_memory_bytes(s->kv);
  out->value_bytes_resident = revstore_value_bytes_resident(kv_revstore(s->kv));
  out->value_bytes_on_disk = revstore_value_bytes_on_disk(kv_revstore(s->kv));
  pthread_rwlock_unlock(&s->lock);
  out->value_files_open = (uint64_t)value_file_open_count();
  pthread_mutex_lock(&s->lease_mu);
  out->leases = lessor_count(s->leases);
  pthread_mutex_unlock(&s->lease_mu);
  out->revision = atomic_load(&s->published);
  out->raft_term = s->raft_term;
  out->cluster_id = s->opts.cluster_id;
  out->member_id = s->opts.member_id;
  wal_stats ws;
  wal_get_stats(s->wal, &ws);
  out->raft_index = ws.last_index;
  out->wal_fsyncs = ws.fsyncs;
  out->apply_handoffs = atomic_load(&s->apply_handoffs);
  out->wal_records = ws.records;
  out->snapshots = atomic_load(&s->snapshots);
  out->auto_compactions = atomic_load(&s->auto_compactions);
  out->snapshot_index = atomic_load(&s->snapshot_index);
  out->snapshot_running = atomic_load(&s->snap_active);
  out->compactions_held = atomic_load(&s->held_count);
}

/* ------------------------------------------------------------------ open, close */

store *store_open(const store_options *opts, keel_error *err) {
  store *s = calloc(1, sizeof(*s));
  if (!s) {
    keel_error_set(err, ENOMEM, "open store: out of memory");
    return NULL;
  }
  s->opts = *opts;
  if (!s->opts.name) s->opts.name = "default";
  if (s->opts.apply_queue_max <= 0) s->opts.apply_queue_max = 65536;
  if (s->opts.lease_check_ms <= 0) s->opts.lease_check_ms = 500;
  if (s->opts.snapshot_count == 0) s->opts.snapshot_count = 100000;
  if (!s->opts.cluster_id) s->opts.cluster_id = id_from_name(s->opts.name, 0x6b65656cull);
  if (!s->opts.member_id) s->opts.member_id = id_from_name(s->opts.name, 0);
  s->raft_term = 2; /* etcd: a fresh single member reports term 2 */
  pthread_rwlock_init(&s->lock, NULL);
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cond, NULL);
  pthread_cond_init(&s->lease_cv, NULL);
  pthread_mutex_init(&s->lease_mu, NULL);
  s->kv = kv_create();
  s->leases = lessor_create();
  if (!s->kv || !s->leases) {
    keel_error_set(err, ENOMEM, "open store: out of memory");
    store_close(s);
    return NULL;
  }
  /* Lease ids the store picks are random, not a fixed sequence across restarts. */
  lessor_seed(s->leases, (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32));
  kv_lease_hooks hooks = {.exists = hook_exists, .attach = hook_attach, .detach = hook_detach, .arg = s};
  kv_set_lease_hooks(s->kv, &hooks);
  char path[4096];
  if (snprintf(path, sizeof(path), "%s/member/wal", opts->data_dir) >= (int)sizeof(path)) {
    keel_error_set(err, ENAMETOOLONG, "open store: data dir %s: path too long", opts->data_dir);
    store_close(s);
    return NULL;
  }
  if (snprintf(s->snap_dir, sizeof(s->snap_dir), "%s/member/snap", opts->data_dir) >=
      (int)sizeof(s->snap_dir)) {
    keel_error_set(err, ENAMETOOLONG, "open store: data dir %s: path too long", opts->data_dir);
    store_close(s);
    return NULL;
  }
  snap_loader loader = {.s = s, .err = err};
  uint64_t snap_index = 0;
  int loaded = snapshot_load_latest_at(s->snap_dir, load_chunk, &loader, &snap_index, err);
  value_file_unref(loader.file); /* the records hold theirs */
  if (loaded < 0) {
    keel_error_wrap(err, "open store %s: load snapshot", opts->data_dir);
    store_close(s);
    return NULL;
  }
  if (loaded == 1) {
    kv_restore_finish(s->kv, loader.revision, loader.compact_revision);
    atomic_store(&s->snapshot_index, snap_index);
    s->snap_base = snap_index;
  }
  metric_family *fsync_family = metrics_histogram(
      metrics_default(), "etcd_disk_wal_fsync_duration_seconds",
      "Latency of the WAL's fdatasync, one per group commit.", metrics_latency_buckets,
      metrics_latency_buckets_len, 0);
  wal_options wopts = {.unsafe_no_fsync = opts->unsafe_no_fsync,
                       .start_index = snap_index,
                       .segment_bytes = opts->wal_segment_bytes,
                       .queue_records = opts->wal_queue_records,
                       .on_sync = on_wal_sync,
                       .on_sync_arg = fsync_family ? metric_child(fsync_family) : NULL};
  replay_ctx rc = {.s = s, .err = err};
  s->wal = wal_open(path, &wopts, replay_record, &rc, err);
  if (!s->wal) {
    keel_error_wrap(err, "open store %s", opts->data_dir);
    store_close(s);
    return NULL;
  }
  if (s->opts.release_memory) s->opts.release_memory();
  wal_stats ws;
  wal_get_stats(s->wal, &ws);
  s->last_appended = ws.last_index;
  atomic_store(&s->durable_index, ws.last_index);
  atomic_store(&s->published, kv_rev(s->kv));
  /* etcd extends every lease on recovery: clients get a full TTL to reconnect. */
  lessor_renew_all(s->leases, now_ms());
  if (pthread_create(&s->apply_thread, NULL, apply_main, s) != 0) {
    keel_error_set(err, EAGAIN, "open store: cannot start the apply thread");
    store_close(s);
    return NULL;
  }
  s->apply_started = true;
  if (pthread_create(&s->lease_thread, NULL, lease_main, s) == 0) s->lease_started = true;
  LOG_INFO("store: recovered", "data_dir", opts->data_dir, "revision", log_int(kv_rev(s->kv)),
           "compacted", log_int(kv_compact_rev(s->kv)), "wal_records", log_int((long long)ws.replayed),
           "keys", log_int((long long)kv_key_count(s->kv)), "value_bytes_resident",
           log_int((long long)revstore_value_bytes_resident(kv_revstore(s->kv))), "value_bytes_on_disk",
           log_int((long long)revstore_value_bytes_on_disk(kv_revstore(s->kv))));
  return s;
}

void store_close(store *s) {
  if (!s) return;
  if (s->apply_started) {
    pthread_mutex_lock(&s->mu);
    s->closing = true;
    pthread_cond_broadcast(&s->cond);
    pthread_cond_broadcast(&s->lease_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->lease_started) pthread_join(s->lease_thread, NULL);
    pthread_join(s->apply_thread, NULL);
  }
  /* Closing the WAL syncs what is queued and runs its completions. */
  if (s->wal) wal_close(s->wal);
  release_waiters(s, UINT64_MAX);
  kv_destroy(s->kv);
  lessor_destroy(s->leases);
  free(s->revoking);
  pthread_mutex_destroy(&s->lease_mu);
  pthread_rwlock_destroy(&s->lock);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cond);
  pthread_cond_destroy(&s->lease_cv);
  free(s);
}
