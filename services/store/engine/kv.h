/* services/store/engine/kv.h — the MVCC key-value state and etcd's request
 * semantics over it (etcd's mvcc kvstore + applierV3's Range/Put/DeleteRange/
 * Txn/Compact rules).
 *
 * State: the key index (mvcc/index.h), the revision store (revstore.h), the
 * newest revision and the compacted revision. A fresh store is at revision 1
 * (as etcd: the first write gets revision 2).
 *
 * Writes happen inside a kv_write: one main revision whose changes get sub
 * revisions 0, 1, ... in order. Reads inside the write see its earlier changes
 * (etcd's txn semantics). A write that changes nothing (a delete of missing
 * keys, a read-only txn) takes no revision. Everything a write changed is
 * listed in kv_write.changes for the caller: the WAL record and watch events.
 *
 * Requests are validated completely before anything is written (etcd checks
 * a txn's chosen path before applying it), so a refused request never leaves a
 * partial write. Responses are built deep-owned (keys and values copied) and
 * are freed with protobuf_c_message_free_unpacked(msg, NULL).
 *
 * Not thread-safe: the store holds its lock around every call. */
#ifndef KEEL_SERVICES_STORE_ENGINE_KV_H
#define KEEL_SERVICES_STORE_ENGINE_KV_H

#include <grpc/status.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/revstore.h"
#include "services/store/mvcc/index.h"

/* An error as etcd reports it: a gRPC code and etcd's exact message. */
typedef struct kv_error {
  grpc_status_code code;
  const char *message; /* static */
} kv_error;

extern const char KV_ERR_COMPACTED[];     /* etcdserver: mvcc: required revision has been compacted */
extern const char KV_ERR_FUTURE_REV[];    /* etcdserver: mvcc: required revision is a future revision */
extern const char KV_ERR_EMPTY_KEY[];     /* etcdserver: key is not provided */
extern const char KV_ERR_KEY_NOT_FOUND[]; /* etcdserver: key not found */
extern const char KV_ERR_VALUE_PROVIDED[];
extern const char KV_ERR_LEASE_PROVIDED[];
extern const char KV_ERR_LEASE_NOT_FOUND[];
extern const char KV_ERR_DUPLICATE_KEY[];
extern const char KV_ERR_TOO_MANY_OPS[];
/* A value held in a snapshot file could not be read (EIO, or the file was cut
 * short): the request fails with GRPC_STATUS_INTERNAL and this message, and
 * writes nothing when no change was made yet (a txn that fails after its first
 * change leaves a partial write behind: the caller must not commit it, see
 * store.c). */
extern const char KV_ERR_VALUE_READ[];

#define KV_MAX_TXN_OPS 128

typedef struct kv kv;

/* The store's leases, as the kv needs them: whether one exists, and which keys
 * are attached to which lease (put with a lease attaches; overwrite or delete
 * detaches). */
typedef struct kv_lease_hooks {
  bool (*exists)(void *arg, int64_t lease);
  void (*attach)(void *arg, int64_t lease, const uint8_t *key, size_t keylen);
  void (*detach)(void *arg, int64_t lease, const uint8_t *key, size_t keylen);
  void *arg;
} kv_lease_hooks;

kv *kv_create(void);
void kv_destroy(kv *kv);
void kv_set_lease_hooks(kv *kv, const kv_lease_hooks *hooks);

int64_t kv_rev(const kv *kv);
int64_t kv_compact_rev(const kv *kv);
size_t kv_key_count(const kv *kv);
size_t kv_memory_bytes(const kv *kv);
revstore *kv_revstore(kv *kv);

/* Range as etcd: at req->revision (<= 0: at `current`), limit, sort, keys_only,
 * count_only, min/max mod and create revision filters; count is every key in
 * the range, `more` whether the limit cut any. Returns 0 or -1 with err. */
int kv_range(const kv *kv, const Etcdserverpb__RangeRequest *req, int64_t current,
             Etcdserverpb__RangeResponse *out, kv_error *err);

typedef struct kv_change {
  bool is_delete;
  mvcc_revision rev;
  const kv_record *rec; /* the new record (a tombstone for deletes), owned by the revstore */
} kv_change;

typedef struct kv_write {
  kv *kv;
  int64_t main; /* the revision this write takes if it changes anything */
  kv_change *changes;
  size_t nchanges, cap;
} kv_write;

void kv_write_begin(kv *kv, kv_write *w);
/* Makes the write's revision the newest (if it changed anything) and returns
 * it, or 0 when nothing changed. The changes stay listed until release. */
int64_t kv_write_commit(kv_write *w);
void kv_write_release(kv_write *w);

/* Each fills *out (header.revision left for the caller) and returns 0, or -1
 * with err and nothing written. */
int kv_put(kv_write *w, const Etcdserverpb__PutRequest *req, Etcdserverpb__PutResponse *out,
           kv_error *err);
int kv_delete_range(kv_write *w, const Etcdserverpb__DeleteRangeRequest *req,
                    Etcdserverpb__DeleteRangeResponse *out, kv_error *err);
int kv_txn(kv_write *w, const Etcdserverpb__TxnRequest *req, Etcdserverpb__TxnResponse *out,
           kv_error *err);

/* Checks a compaction at rev (etcd: rev <= the compacted revision is
 * "compacted" unless nothing was ever compacted, rev > newest is "future"). */
int kv_compact_check(const kv *kv, int64_t rev, kv_error *err);
/* Compacts: frees history at or below rev that no read at rev needs. */
void kv_compact(kv *kv, int64_t rev);

/* Recovery: re-applies one logged change at rev (in revision order). */
int kv_replay(kv *kv, mvcc_revision rev, bool is_delete, const uint8_t *key, size_t keylen,
              const uint8_t *value, size_t valuelen, int64_t lease);
/* Recovery: the newest revision after replaying (sets it when the log's last
 * revision was a compaction-only or lease-only record). */
void kv_set_rev(kv *kv, int64_t rev);

/* Restore from a snapshot: records in revision order, exactly as stored (create
 * revision, version, sub revision, tombstones kept by compaction). Records at or
 * below compact_rev are what an earlier compaction kept. Then kv_restore_finish
 * sets the revisions and re-attaches every live key to its lease. */
int kv_restore(kv *kv, mvcc_revision rev, const uint8_t *key, size_t keylen, const uint8_t *value,
               size_t valuelen, int64_t create_revision, int64_t version, int64_t lease,
               bool tombstone, int64_t compact_rev);
/* kv_restore with the value in a snapshot file: file (not NULL) holds the
 * valuelen bytes at value_off; the record references it instead of copying
 * value (which may be NULL). Tombstones and empty values stay in memory. */
int kv_restore_at(kv *kv, mvcc_revision rev, const uint8_t *key, size_t keylen, const uint8_t *value,
                  size_t valuelen, value_file *file, uint64_t value_off, int64_t create_revision,
                  int64_t version, int64_t lease, bool tombstone, int64_t compact_rev);
void kv_restore_finish(kv *kv, int64_t rev, int64_t compact_rev);

/* Deletes every key in keys[] within w (lease revoke: one revision for all). */
int kv_delete_keys(kv_write *w, const uint8_t *const *keys, const size_t *keylens, size_t n);

/* The key's live record as of rev (NULL when absent); *mod gets its revision. */
const kv_record *kv_live(const kv *kv, const uint8_t *key, size_t keylen, int64_t rev,
                         mvcc_revision *mod);

/* Is key inside [start, end) by etcd's rules (end empty: just start; "\0": every
 * key >= start)? */
bool kv_in_range(const uint8_t *key, size_t keylen, const uint8_t *start, size_t startlen,
                 const uint8_t *end, size_t endlen);

/* Fills a KeyValue (deep copy; value omitted when keys_only, else read into
 * the response: memcpy, or pread from the snapshot file). 0, -ENOMEM or -EIO
 * (out keeps what it got: free it with the response). */
int kv_fill_keyvalue(Mvccpb__KeyValue *out, const kv_record *rec, mvcc_revision mod, bool keys_only);

#endif
