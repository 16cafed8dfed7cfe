/* services/store/wal/record.h — keel-store's WAL record codec (nanopb, no heap).
 *
 * A record is one keel.store.v1.WalRecord (proto/keel/store/v1/wal.proto): a
 * txn (one main revision and its changes), a compaction, a lease grant or a
 * lease revoke in the WAL; a snapshot meta (revision, compacted revision, WAL
 * index), a snapshot kv (one record of the revision store with its MVCC
 * metadata) or a lease grant in a snapshot. The WAL (wal.h) and snapshots
 * (snapshot.h) store records as opaque payloads; this module turns them into
 * bytes and back. Which kinds may appear where is the caller's rule: decoding
 * accepts every kind, and a visitor without a kind's callback skips it (give a
 * callback that returns -EBADMSG to refuse a kind).
 *
 * Encoding writes into a buffer the caller provides, from structs that point at
 * the caller's own key/value bytes (store_slice): nothing is copied or
 * allocated; nanopb callbacks stream the changes straight into the buffer.
 *
 *   store_change ch[] = {{.type = STORE_CHANGE_PUT, .key = STORE_SLICE_STR("a"),
 *                         .value = STORE_SLICE_STR("1")}};
 *   store_record r = {.kind = STORE_RECORD_TXN,
 *                     .txn = {.revision = 7, .changes = ch, .nchanges = 1}};
 *   size_t n, len;
 *   store_record_encoded_size(&r, &n);          // exact size
 *   uint8_t *buf = ...n bytes...;
 *   store_record_encode(&r, buf, n, &len);      // len == n
 *
 * Decoding reads a buffer in place and calls a visitor; every slice it hands
 * out points into that buffer (valid as long as the buffer is). It also never
 * allocates. The record is checked completely (a first pass) before the first
 * visitor call, so a visitor never sees part of a malformed record: either the
 * whole record is delivered or decode fails with nothing delivered.
 *
 * Strictness: a record with no body, or with a body member this binary does
 * not know (a newer schema), or a change type other than PUT/DELETE, is an
 * error (-EBADMSG), never skipped: skipping would silently lose a write.
 * Unknown fields inside a known message are ignored (protobuf rules), so
 * adding a field to Txn/Change later stays readable by older binaries. */
#ifndef KEEL_STORE_WAL_RECORD_H
#define KEEL_STORE_WAL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

/* Bytes owned by someone else. data may be NULL only when len is 0. */
typedef struct store_slice {
  const uint8_t *data;
  size_t len;
} store_slice;

#define STORE_SLICE_STR(s) ((store_slice){(const uint8_t *)(s), sizeof(s) - 1})

/* Values are the wire values of keel.store.v1.Change.Type. */
typedef enum { STORE_CHANGE_PUT = 0, STORE_CHANGE_DELETE = 1 } store_change_type;

typedef struct store_change {
  store_change_type type;
  store_slice key;
  store_slice value; /* PUT only; encode ignores it for DELETE */
  int64_t lease;     /* PUT only; 0 = none */
} store_change;

/* Values are the field numbers of WalRecord.body. */
typedef enum {
  STORE_RECORD_TXN = 1,
  STORE_RECORD_COMPACT = 2,
  STORE_RECORD_LEASE_GRANT = 3,
  STORE_RECORD_LEASE_REVOKE = 4,
  STORE_RECORD_SNAPSHOT_META = 5,
  STORE_RECORD_SNAPSHOT_KV = 6,
} store_record_kind;

/* One record of the revision store in a snapshot (keel.store.v1.SnapshotKv):
 * everything needed to restore it exactly, including what a txn replay cannot
 * recompute once older revisions are compacted away. The codec stores these
 * values as given and checks none of their meaning. */
typedef struct store_snapshot_kv {
  int64_t main; /* revision (main, sub) */
  int64_t sub;
  store_slice key;
  store_slice value;
  int64_t create_revision; /* 0 for a tombstone */
  int64_t version;         /* 0 for a tombstone */
  int64_t lease;           /* 0 = none */
  bool tombstone;
} store_snapshot_kv;

/* A record to encode. Only the member named by kind is read. */
typedef struct store_record {
  store_record_kind kind;
  union {
    struct {
      int64_t revision;
      const store_change *changes; /* borrowed: nchanges entries (sub revision = position) */
      size_t nchanges;
      int64_t revoke_lease; /* 0 = none */
    } txn;
    struct {
      int64_t revision;
    } compact;
    struct {
      int64_t id;
      int64_t ttl;
    } lease_grant;
    struct {
      int64_t id;
    } lease_revoke;
    struct {
      int64_t revision;         /* the store's revision */
      int64_t compact_revision; /* its compacted revision */
      uint64_t wal_index;       /* the last WAL index the snapshot includes */
    } snapshot_meta;
    store_snapshot_kv snapshot_kv; /* key and value borrowed */
  };
} store_record;

/* Exact number of bytes store_record_encode will write for r.
 * Returns 0, or -EINVAL for an invalid record (unknown kind, unknown change
 * type, NULL changes with nchanges > 0, NULL slice data with len > 0, in a
 * change or a snapshot kv). */
int store_record_encoded_size(const store_record *r, size_t *size);

/* Encodes r into buf[0..cap) and sets *len to the bytes written. Returns 0,
 * -EINVAL (as above) or -ENOSPC when cap is too small (buf then holds garbage).
 * No allocation; safe to call from any number of threads on distinct buffers. */
int store_record_encode(const store_record *r, uint8_t *buf, size_t cap, size_t *len);

/* Called in record order. A callback returns 0 to go on or a negative errno to
 * stop; store_record_decode then returns that value. NULL callbacks are
 * skipped. Slices point into the decoded buffer; an absent key or value is an
 * empty slice with non-NULL data. */
typedef struct store_record_visitor {
  /* A txn: called once, before its changes, with their count. */
  int (*txn)(void *arg, int64_t revision, size_t nchanges, int64_t revoke_lease);
  /* One change of the txn just announced; sub = its position (sub revision). */
  int (*change)(void *arg, int64_t revision, size_t sub, const store_change *change);
  int (*compact)(void *arg, int64_t revision);
  int (*lease_grant)(void *arg, int64_t id, int64_t ttl);
  int (*lease_revoke)(void *arg, int64_t id);
  int (*snapshot_meta)(void *arg, int64_t revision, int64_t compact_revision, uint64_t wal_index);
  /* kv is valid during the call; its key and value point into the buffer. */
  int (*snapshot_kv)(void *arg, const store_snapshot_kv *kv);
} store_record_visitor;

/* Decodes buf[0..len) and calls v's callbacks (see the top of this file for
 * the all-or-nothing rule). Returns 0, -EBADMSG for a malformed or unknown
 * record (err says why), or a visitor's negative return. err may be NULL. */
int store_record_decode(const uint8_t *buf, size_t len, const store_record_visitor *v, void *arg,
                        keel_error *err);

/* The kind of an encoded record without visiting it: >0 (store_record_kind),
 * or -EBADMSG. Checks the whole record like store_record_decode. */
int store_record_kind_of(const uint8_t *buf, size_t len, keel_error *err);

#endif
