/* services/store/wal/record.c — see record.h.
 *
 * nanopb generates keel_store_v1_* structs whose repeated and bytes fields are
 * pb_callback_t (no max_size/max_count options: nothing is fixed-size). The
 * encoder points those callbacks at the caller's arrays; the decoder points
 * them at functions that capture (pointer, length) pairs inside the input.
 *
 * Capturing in place relies on one nanopb fact: a stream made by
 * pb_istream_from_buffer keeps the read position in stream->state (a byte
 * pointer), and substreams share it. Every stream here is such a stream, and
 * each captured range is checked against the input bounds anyway.
 *
 * Txn and SnapshotKv live inside the WalRecord.body union, so their callbacks
 * (changes; key and value) cannot be set before decoding (union members
 * overlap, and nanopb zeroes a member when the oneof switches). wal.options asks
 * nanopb for a message-level callback (cb_body) that runs once the member is
 * known and before it is decoded; that is where those callbacks are installed.
 *
 * Decoding a txn is two passes over the same bytes: the first validates
 * everything and counts changes, the second calls the visitor. Records are
 * small and parsing is cheap next to the fsync that wrote them. Every other
 * kind is delivered from the first pass, after it succeeded (a snapshot kv's
 * key and value are captured as slices during it). */
#include "services/store/wal/record.h"

#include <errno.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdbool.h>
#include <string.h>

#include "keel/store/v1/wal.pb.h"

static const uint8_t k_empty[1] = {0};

/* ---------- encode ---------- */

static bool slice_valid(const store_slice *s) {
  return s->data != NULL || s->len == 0;
}

static int record_check(const store_record *r) {
  if (!r) return -EINVAL;
  switch (r->kind) {
    case STORE_RECORD_TXN:
      if (r->txn.nchanges > 0 && !r->txn.changes) return -EINVAL;
      for (size_t i = 0; i < r->txn.nchanges; i++) {
        const store_change *c = &r->txn.changes[i];
        if (c->type != STORE_CHANGE_PUT && c->type != STORE_CHANGE_DELETE) return -EINVAL;
        if (!slice_valid(&c->key)) return -EINVAL;
        if (c->type == STORE_CHANGE_PUT && !slice_valid(&c->value)) return -EINVAL;
      }
      return 0;
    case STORE_RECORD_SNAPSHOT_KV:
      if (!slice_valid(&r->snapshot_kv.key) || !slice_valid(&r->snapshot_kv.value)) return -EINVAL;
      return 0;
    case STORE_RECORD_COMPACT:
    case STORE_RECORD_LEASE_GRANT:
    case STORE_RECORD_LEASE_REVOKE:
    case STORE_RECORD_SNAPSHOT_META:
      return 0;
  }
  return -EINVAL;
}

/* proto3: an empty bytes field is not written at all. */
static bool encode_slice(pb_ostream_t *stream, const pb_field_t *field, void *const *arg) {
  const store_slice *s = *arg;
  if (s->len == 0) return true;
  if (!pb_encode_tag_for_field(stream, field)) return false;
  return pb_encode_string(stream, s->data, s->len);
}

static bool encode_changes(pb_ostream_t *stream, const pb_field_t *field, void *const *arg) {
  const store_record *r = *arg;
  for (size_t i = 0; i < r->txn.nchanges; i++) {
    const store_change *c = &r->txn.changes[i];
    keel_store_v1_Change m = keel_store_v1_Change_init_zero;
    m.type = (keel_store_v1_Change_Type)c->type;
    m.key.funcs.encode = encode_slice;
    m.key.arg = (void *)&c->key;
    if (c->type == STORE_CHANGE_PUT) {
      m.value.funcs.encode = encode_slice;
      m.value.arg = (void *)&c->value;
      m.lease = c->lease;
    }
    if (!pb_encode_tag_for_field(stream, field)) return false;
    if (!pb_encode_submessage(stream, keel_store_v1_Change_fields, &m)) return false;
  }
  return true;
}

static void record_to_pb(const store_record *r, keel_store_v1_WalRecord *m) {
  memset(m, 0, sizeof(*m));
  m->which_body = (pb_size_t)r->kind;
  switch (r->kind) {
    case STORE_RECORD_TXN:
      m->body.txn.revision = r->txn.revision;
      m->body.txn.revoke_lease = r->txn.revoke_lease;
      if (r->txn.nchanges > 0) {
        m->body.txn.changes.funcs.encode = encode_changes;
        m->body.txn.changes.arg = (void *)r;
      }
      break;
    case STORE_RECORD_COMPACT:
      m->body.compact.revision = r->compact.revision;
      break;
    case STORE_RECORD_LEASE_GRANT:
      m->body.lease_grant.id = r->lease_grant.id;
      m->body.lease_grant.ttl = r->lease_grant.ttl;
      break;
    case STORE_RECORD_LEASE_REVOKE:
      m->body.lease_revoke.id = r->lease_revoke.id;
      break;
    case STORE_RECORD_SNAPSHOT_META:
      m->body.snapshot_meta.revision = r->snapshot_meta.revision;
      m->body.snapshot_meta.compact_revision = r->snapshot_meta.compact_revision;
      m->body.snapshot_meta.wal_index = r->snapshot_meta.wal_index;
      break;
    case STORE_RECORD_SNAPSHOT_KV: {
      const store_snapshot_kv *kv = &r->snapshot_kv;
      keel_store_v1_SnapshotKv *p = &m->body.snapshot_kv;
      p->main = kv->main;
      p->sub = kv->sub;
      p->key.funcs.encode = encode_slice;
      p->key.arg = (void *)&kv->key;
      p->value.funcs.encode = encode_slice;
      p->value.arg = (void *)&kv->value;
      p->create_revision = kv->create_revision;
      p->version = kv->version;
      p->lease = kv->lease;
      p->tombstone = kv->tombstone;
      break;
    }
  }
}

int store_record_encoded_size(const store_record *r, size_t *size) {
  int rc = record_check(r);
  if (rc < 0) return rc;
  keel_store_v1_WalRecord m;
  record_to_pb(r, &m);
  size_t n = 0;
  if (!pb_get_encoded_size(&n, keel_store_v1_WalRecord_fields, &m)) return -EINVAL;
  *size = n;
  return 0;
}

int store_record_encode(const store_record *r, uint8_t *buf, size_t cap, size_t *len) {
  int rc = record_check(r);
  if (rc < 0) return rc;
  if (!buf && cap > 0) return -EINVAL;
  keel_store_v1_WalRecord m;
  record_to_pb(r, &m);
  pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
  if (!pb_encode(&os, keel_store_v1_WalRecord_fields, &m)) {
    /* The only failure over a buffer stream with valid input is running out
     * of room ("stream full"). */
    return -ENOSPC;
  }
  *len = os.bytes_written;
  return 0;
}

/* ---------- decode ---------- */

typedef struct decode_ctx decode_ctx;

typedef struct slice_capture {
  decode_ctx *ctx;
  store_slice *out;
} slice_capture;

struct decode_ctx {
  const uint8_t *buf; /* the whole input, for bounds checks */
  size_t len;
  bool visit; /* second pass: call the visitor */
  const store_record_visitor *v;
  void *arg;
  int64_t revision; /* pass 2: the txn's revision, known from pass 1 */
  size_t nchanges;  /* changes seen so far in this pass */
  int bodies;       /* WalRecord.body occurrences in this pass */
  int visitor_rc;   /* a visitor's non-zero return */
  const char *why;  /* our own validation failure */

  /* A snapshot kv's key and value, captured in buf by its callbacks. */
  store_slice kv_key, kv_value;
  slice_capture kv_key_cap, kv_value_cap;
};

static bool decode_slice(pb_istream_t *stream, const pb_field_t *field, void **arg) {
  (void)field;
  slice_capture *cap = *arg;
  const uint8_t *p = (const uint8_t *)stream->state;
  size_t n = stream->bytes_left;
  const decode_ctx *ctx = cap->ctx;
  if (p < ctx->buf || p > ctx->buf + ctx->len || n > (size_t)(ctx->buf + ctx->len - p)) {
    cap->ctx->why = "bytes field outside the record";
    return false;
  }
  if (!pb_read(stream, NULL, n)) return false;
  cap->out->data = n ? p : k_empty;
  cap->out->len = n;
  return true;
}

static bool decode_change(pb_istream_t *stream, const pb_field_t *field, void **arg) {
  (void)field;
  decode_ctx *ctx = *arg;
  store_change c = {.key = {k_empty, 0}, .value = {k_empty, 0}};
  slice_capture kc = {ctx, &c.key}, vc = {ctx, &c.value};
  keel_store_v1_Change m = keel_store_v1_Change_init_zero;
  m.key.funcs.decode = decode_slice;
  m.key.arg = &kc;
  m.value.funcs.decode = decode_slice;
  m.value.arg = &vc;
  if (!pb_decode(stream, keel_store_v1_Change_fields, &m)) return false;
  if (m.type != keel_store_v1_Change_Type_PUT && m.type != keel_store_v1_Change_Type_DELETE) {
    ctx->why = "unknown change type";
    return false;
  }
  c.type = (store_change_type)m.type;
  c.lease = m.lease;
  size_t sub = ctx->nchanges++;
  if (ctx->visit && ctx->v && ctx->v->change) {
    int rc = ctx->v->change(ctx->arg, ctx->revision, sub, &c);
    if (rc != 0) {
      ctx->visitor_rc = rc < 0 ? rc : -ECANCELED;
      return false;
    }
  }
  return true;
}

/* cb_body: the oneof member is known and its struct zeroed; install callbacks.
 * Protobuf would accept the body twice (the last member wins, or the same
 * member merges) but our encoder never writes that, and visiting changes of a
 * member that is later discarded would be wrong: it is rejected. */
static bool decode_body(pb_istream_t *stream, const pb_field_t *field, void **arg) {
  (void)stream;
  decode_ctx *ctx = *arg;
  if (++ctx->bodies > 1) {
    ctx->why = "body set more than once";
    return false;
  }
  if (field->tag == keel_store_v1_WalRecord_txn_tag) {
    keel_store_v1_Txn *txn = field->pData;
    txn->changes.funcs.decode = decode_change;
    txn->changes.arg = *arg;
  } else if (field->tag == keel_store_v1_WalRecord_snapshot_kv_tag) {
    keel_store_v1_SnapshotKv *kv = field->pData;
    ctx->kv_key = (store_slice){k_empty, 0};
    ctx->kv_value = (store_slice){k_empty, 0};
    ctx->kv_key_cap = (slice_capture){ctx, &ctx->kv_key};
    ctx->kv_value_cap = (slice_capture){ctx, &ctx->kv_value};
    kv->key.funcs.decode = decode_slice;
    kv->key.arg = &ctx->kv_key_cap;
    kv->value.funcs.decode = decode_slice;
    kv->value.arg = &ctx->kv_value_cap;
  }
  return true;
}

static int decode_pass(decode_ctx *ctx, keel_store_v1_WalRecord *m, keel_error *err) {
  memset(m, 0, sizeof(*m));
  m->cb_body.funcs.decode = decode_body;
  m->cb_body.arg = ctx;
  ctx->nchanges = 0;
  ctx->bodies = 0;
  pb_istream_t is = pb_istream_from_buffer(ctx->buf, ctx->len);
  if (!pb_decode(&is, keel_store_v1_WalRecord_fields, m)) {
    if (ctx->visitor_rc) return ctx->visitor_rc;
    return keel_error_set(err, EBADMSG, "decode wal record: %s",
                          ctx->why ? ctx->why : PB_GET_ERROR(&is));
  }
  switch (m->which_body) {
    case keel_store_v1_WalRecord_txn_tag:
    case keel_store_v1_WalRecord_compact_tag:
    case keel_store_v1_WalRecord_lease_grant_tag:
    case keel_store_v1_WalRecord_lease_revoke_tag:
    case keel_store_v1_WalRecord_snapshot_meta_tag:
    case keel_store_v1_WalRecord_snapshot_kv_tag:
      return 0;
    case 0:
      return keel_error_set(err, EBADMSG,
                            "decode wal record: no known body (empty, or written by a newer "
                            "keel-store)");
  }
  return keel_error_set(err, EBADMSG, "decode wal record: unknown body %u",
                        (unsigned)m->which_body);
}

static int decode_common(const uint8_t *buf, size_t len, const store_record_visitor *v, void *arg,
                         bool visit, keel_error *err) {
  if (!buf && len > 0) return keel_error_set(err, EINVAL, "decode wal record: NULL buffer");
  if (!buf) buf = k_empty;
  decode_ctx ctx = {.buf = buf, .len = len, .v = v, .arg = arg};
  keel_store_v1_WalRecord m;
  int rc = decode_pass(&ctx, &m, err);
  if (rc < 0) return rc;
  int kind = (int)m.which_body;
  if (!visit || !v) return kind;
  switch (kind) {
    case STORE_RECORD_TXN: {
      if (v->txn) {
        rc = v->txn(arg, m.body.txn.revision, ctx.nchanges, m.body.txn.revoke_lease);
        if (rc != 0) return rc < 0 ? rc : -ECANCELED;
      }
      if (!v->change || ctx.nchanges == 0) return kind;
      ctx.visit = true;
      ctx.revision = m.body.txn.revision;
      rc = decode_pass(&ctx, &m, err);
      return rc < 0 ? rc : kind;
    }
    case STORE_RECORD_COMPACT:
      rc = v->compact ? v->compact(arg, m.body.compact.revision) : 0;
      break;
    case STORE_RECORD_LEASE_GRANT:
      rc = v->lease_grant ? v->lease_grant(arg, m.body.lease_grant.id, m.body.lease_grant.ttl) : 0;
      break;
    case STORE_RECORD_LEASE_REVOKE:
      rc = v->lease_revoke ? v->lease_revoke(arg, m.body.lease_revoke.id) : 0;
      break;
    case STORE_RECORD_SNAPSHOT_META:
      rc = v->snapshot_meta ? v->snapshot_meta(arg, m.body.snapshot_meta.revision,
                                               m.body.snapshot_meta.compact_revision,
                                               m.body.snapshot_meta.wal_index)
                            : 0;
      break;
    case STORE_RECORD_SNAPSHOT_KV:
      if (v->snapshot_kv) {
        const keel_store_v1_SnapshotKv *p = &m.body.snapshot_kv;
        store_snapshot_kv kv = {.main = p->main,
                                .sub = p->sub,
                                .key = ctx.kv_key,
                                .value = ctx.kv_value,
                                .create_revision = p->create_revision,
                                .version = p->version,
                                .lease = p->lease,
                                .tombstone = p->tombstone};
        rc = v->snapshot_kv(arg, &kv);
      }
      break;
  }
  if (rc != 0) return rc < 0 ? rc : -ECANCELED;
  return kind;
}

int store_record_decode(const uint8_t *buf, size_t len, const store_record_visitor *v, void *arg,
                        keel_error *err) {
  int rc = decode_common(buf, len, v, arg, true, err);
  return rc < 0 ? rc : 0;
}

int store_record_kind_of(const uint8_t *buf, size_t len, keel_error *err) {
  return decode_common(buf, len, NULL, NULL, false, err);
}
