/* common/etcd/etcd.h — an etcd v3 client (KV, Txn, Compact, Lease, Watch) over
 * common/rpc, for keel-store and for a real etcd 3.4.
 *
 * CLIENT. One etcd_client is one rpc_channel over the endpoint list (failover to
 * the next endpoint on UNAVAILABLE), created once and shared by every thread:
 * all functions are thread-safe. Synchronous calls block the caller; the _async
 * variants and every watch callback run on the client's channel threads
 * (cq_threads), which must never block: do not call the synchronous functions
 * from a callback.
 *
 * RESULTS ARE ZERO-COPY. A result keeps the decoded protobuf-c response alive
 * and its etcd_kv entries point into it: keys and values are BORROWED from the
 * result, valid until its _clear function, NOT NUL-terminated (use key_len and
 * value_len; an empty value may be NULL). Only the etcd_kv arrays are allocated
 * here (one block per result). Watch events are borrowed for the callback only.
 *
 * ERRORS. Functions return 0 or a negative errno and fill keel_error (may be
 * NULL) with the positive errno and "etcd <Method> <key>: <server message>",
 * where the server's text is kept verbatim, e.g.
 * "etcd Range /a: etcdserver: mvcc: required revision has been compacted".
 *   ETCD_ECOMPACTED (ESTALE)  the revision asked for is compacted (OUT_OF_RANGE
 *                             "required revision has been compacted"): relist.
 *                             etcd sends the compacted revision only to
 *                             watches: on_end's compact_revision.
 *   ETCD_EFUTURE (ERANGE)     the revision asked for is in the future.
 *   ECONNREFUSED              UNAVAILABLE before anything was sent (no endpoint
 *                             could be connected to): nothing happened, any
 *                             request is safe to retry.
 *   EAGAIN                    other UNAVAILABLE (connection lost, "etcdserver:
 *                             no leader", "request timed out"): for a write the
 *                             OUTCOME IS UNKNOWN, see RETRIES.
 *   ETIMEDOUT                 DEADLINE_EXCEEDED: for a write, outcome unknown.
 *   EINVAL                    INVALID_ARGUMENT ("key is not provided", "duplicate
 *                             key given in txn request", ...).
 *   E2BIG                     request or response over a size limit ("request is
 *                             too large", gRPC's "larger than max").
 *   ENOSPC / ENOBUFS          RESOURCE_EXHAUSTED: "database space exceeded" /
 *                             others ("too many requests").
 *   ENOENT                    NOT_FOUND ("requested lease not found").
 *   ECANCELED, EACCES, EBUSY, ENOSYS, EIO  CANCELLED, PERMISSION_DENIED or
 *                             UNAUTHENTICATED, FAILED_PRECONDITION, UNIMPLEMENTED,
 *                             INTERNAL/UNKNOWN/DATA_LOSS.
 *
 * RETRIES. A retry is safe only if running the request twice has the effect
 * AND the answer of running it once.
 *   - Range, a Txn whose ops are all RANGE, Compact and LeaseRevoke are sent as
 *     idempotent: common/rpc retries them on UNAVAILABLE with backoff on the next
 *     endpoint within timeout_ms. (A retried Compact may answer ETCD_ECOMPACTED
 *     and a retried revoke ENOENT when the first attempt took effect; both mean
 *     "done".)
 *   - Put, DeleteRange, LeaseGrant and every Txn that writes are never re-sent
 *     once they may have reached a server. They are re-sent, to the next
 *     endpoint, only when gRPC reports that no connection could be made (the
 *     request never left this process), so a client over [dead, live]
 *     endpoints still writes.
 *   - A Txn guarded by compares on create_revision (== 0: create) or
 *     mod_revision (== M: update) can never apply twice: after the first attempt
 *     applied, the guard fails. But the second ANSWER is wrong (succeeded=false:
 *     a conflict for a write that happened), so it is not retried blindly
 *     either. When such a txn fails with EAGAIN or ETIMEDOUT the caller
 *     verifies: read the key (a Range, safe to retry). If its mod_revision is
 *     newer than the guard (or it exists, for a create) and its value is
 *     byte-identical to the value written, the first attempt applied at that
 *     mod_revision; otherwise it did not (or another writer has since won) and
 *     the caller re-runs its read-modify-write. Values that carry a uid and a
 *     generation, as Keel's objects do, make "identical" mean "ours". Putting the
 *     guarded key's Range in the failure branch gives the same answer in the
 *     same round trip when the caller simply re-sends the txn.
 */
#ifndef KEEL_COMMON_ETCD_ETCD_H
#define KEEL_COMMON_ETCD_ETCD_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/rpc/rpc.h"

#define ETCD_ECOMPACTED ESTALE
#define ETCD_EFUTURE ERANGE

/* ------------------------------------------------------------------ client */

typedef struct etcd_client etcd_client;

typedef struct etcd_client_options {
  /* "127.0.0.1:2379", "unix:/path", or URLs as etcd users write them:
   * "http://host:port", "https://host:port" (TLS; system roots when tls is
   * NULL), "unix:///abs/path", "unixs:///abs/path". A trailing "/" is ignored.
   * http and https endpoints cannot be mixed. Copied. */
  const char *const *endpoints;
  size_t nendpoints;
  const rpc_tls_config *tls; /* NULL = insecure (unless https://); paths copied by rpc */
  int64_t timeout_ms;        /* per call (watches have none); default 5000 */
  int64_t max_message_bytes; /* largest request sent; default 8 MiB */
  /* Largest response received; default (0): no limit (2 GiB), as etcd's
   * clientv3 (MaxCallRecvMsgSize): a Range over a large prefix must not fail
   * because the objects add up past a few MiB. */
  int64_t max_receive_message_bytes;
  int cq_threads;            /* threads running async and watch callbacks; default 1 */
} etcd_client_options;

etcd_client *etcd_client_create(const etcd_client_options *opts, keel_error *err);
/* Every watch must be stopped first. Async calls still in flight complete
 * (their done runs) before this returns, with ECANCELED if they had no answer
 * yet: for a write, outcome unknown. */
void etcd_client_destroy(etcd_client *c);
/* The endpoint calls currently go to (after failovers). */
const char *etcd_client_endpoint(const etcd_client *c);

/* grpc.health.v1 Check of `service` on the current endpoint: *status is the
 * answer (1 SERVING, 2 NOT_SERVING); ENOENT (NOT_FOUND) when the server does
 * not know the service. keel-store announces itself as the service
 * "keel-store" (see ETCD_KEEL_STORE_HEALTH_SERVICE), which is how a client
 * learns it talks to keel-store rather than etcd. */
#define ETCD_KEEL_STORE_HEALTH_SERVICE "keel-store"
int etcd_health(etcd_client *c, const char *service, int *status, keel_error *err);

/* --------------------------------------------------------------- key-values */

/* One key-value, borrowed from the result (or event) it belongs to. */
typedef struct etcd_kv {
  char *key; /* not NUL-terminated */
  size_t key_len;
  unsigned char *value; /* not NUL-terminated; NULL when value_len == 0 */
  size_t value_len;
  int64_t create_revision, mod_revision, version, lease;
} etcd_kv;

typedef struct etcd_range_result {
  int64_t revision; /* header revision: the store's revision the read saw */
  etcd_kv *kvs;
  size_t nkvs;
  bool more;     /* more keys in the range than returned (limit) */
  int64_t count; /* keys in the range */
  void *owner_;  /* private: the response; NULL inside a txn result */
} etcd_range_result;

/* Frees what the result owns and zeroes it. Ranges inside an etcd_txn_result
 * belong to it: clearing one of them only zeroes it. */
void etcd_range_result_clear(etcd_range_result *r);

/* Range [key, range_end). range_end NULL (or range_end_len 0) = the single key;
 * etcd_prefix_end() for a prefix; "\0" = every key >= key. revision 0 = newest;
 * limit 0 = no limit. keys_only: values empty; count_only: no kvs, only count.
 * out is zeroed on failure. */
int etcd_range(etcd_client *c, const void *key, size_t key_len, const void *range_end,
               size_t range_end_len, int64_t revision, int64_t limit, bool keys_only,
               bool count_only, etcd_range_result *out, keel_error *err);

/* etcd's prefix range end: the prefix with its last byte below 0xff incremented
 * and the rest dropped ("a/" -> "a0", "a\xff" -> "b"); "\0" when every byte is
 * 0xff or the prefix is empty. *end is malloc'ed (caller frees). 0 or -ENOMEM. */
int etcd_prefix_end(const void *prefix, size_t len, unsigned char **end, size_t *end_len);

/* Runs on a channel thread, once. On success result != NULL and err == NULL:
 * done OWNS *result's contents and must etcd_range_result_clear(result) or move
 * the struct elsewhere (copy it by value) before returning; the struct itself
 * is gone after. On failure result == NULL and err says why. */
typedef void (*etcd_range_done)(void *arg, etcd_range_result *result, const keel_error *err);
/* Returns 0 (done will run) or a negative errno (done will not run). */
int etcd_range_async(etcd_client *c, const void *key, size_t key_len, const void *range_end,
                     size_t range_end_len, int64_t revision, int64_t limit, bool keys_only,
                     bool count_only, etcd_range_done done, void *arg, keel_error *err);

/* Unconditional put (KV.Put). *revision (may be NULL) = the write's revision. */
int etcd_put(etcd_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
             int64_t lease, int64_t *revision, keel_error *err);
/* Unconditional delete of [key, range_end) (range_end NULL = the key). *deleted
 * and *revision may be NULL; the revision does not move if nothing was deleted. */
int etcd_delete(etcd_client *c, const void *key, size_t key_len, const void *range_end,
                size_t range_end_len, int64_t *deleted, int64_t *revision, keel_error *err);

/* Compacts the history below revision (physical: wait until the backend applied
 * it). ETCD_ECOMPACTED if already compacted at or past it; ETCD_EFUTURE if in
 * the future. */
int etcd_compact(etcd_client *c, int64_t revision, bool physical, keel_error *err);

/* A lease with ttl_seconds (etcd raises small TTLs to its minimum); *id is the
 * server-chosen ID, *granted_ttl (may be NULL) the TTL granted. */
int etcd_lease_grant(etcd_client *c, int64_t ttl_seconds, int64_t *id, keel_error *err);
int etcd_lease_grant_ttl(etcd_client *c, int64_t ttl_seconds, int64_t *id, int64_t *granted_ttl,
                         keel_error *err);
/* Revokes a lease and deletes its keys. ENOENT if unknown. */
int etcd_lease_revoke(etcd_client *c, int64_t id, keel_error *err);

/* --------------------------------------------------------------------- txn */

typedef enum { ETCD_CMP_EQUAL, ETCD_CMP_NOT_EQUAL, ETCD_CMP_GREATER, ETCD_CMP_LESS } etcd_cmp_result;
typedef enum {
  ETCD_CMP_VERSION,
  ETCD_CMP_CREATE, /* create_revision; == 0 means "absent" */
  ETCD_CMP_MOD,    /* mod_revision */
  ETCD_CMP_VALUE,  /* value, bytewise */
  ETCD_CMP_LEASE,
} etcd_cmp_target;

/* target <result> number (or value for ETCD_CMP_VALUE). Borrowed for the call. */
typedef struct etcd_compare {
  const void *key;
  size_t key_len;
  etcd_cmp_target target;
  etcd_cmp_result result;
  int64_t number;
  const void *value;
  size_t value_len;
} etcd_compare;

typedef enum { ETCD_OP_RANGE, ETCD_OP_PUT, ETCD_OP_DELETE } etcd_op_type;

/* One op of a branch. RANGE and DELETE use [key, range_end) (range_end NULL =
 * the key); PUT uses value and lease; prev_kv asks PUT and DELETE for the
 * previous pair(s). Borrowed for the call. */
typedef struct etcd_op {
  etcd_op_type type;
  const void *key;
  size_t key_len;
  const void *range_end;
  size_t range_end_len;
  const void *value;
  size_t value_len;
  int64_t lease;
  bool prev_kv;
} etcd_op;

/* One op's answer. RANGE: range. PUT: prev_kvs (0 or 1 when prev_kv).
 * DELETE: deleted, prev_kvs. */
typedef struct etcd_op_result {
  etcd_op_type type;
  etcd_range_result range;
  etcd_kv *prev_kvs;
  size_t nprev_kvs;
  int64_t deleted;
} etcd_op_result;

typedef struct etcd_txn_result {
  bool succeeded;   /* every compare held: the success branch ran */
  int64_t revision; /* header revision: the txn's revision if it wrote */
  etcd_op_result *results; /* one per op of the branch that ran */
  size_t nresults;
  void *owner_; /* private: the response */
} etcd_txn_result;

/* If every compare holds, runs success, else failure; atomically, at one
 * revision. See RETRIES for what is re-sent. out is zeroed on failure. */
int etcd_txn(etcd_client *c, const etcd_compare *cmps, size_t ncmps, const etcd_op *success,
             size_t nsuccess, const etcd_op *failure, size_t nfailure, etcd_txn_result *out,
             keel_error *err);
void etcd_txn_result_clear(etcd_txn_result *r);

/* As etcd_range_done, for txns: done owns *result's contents. */
typedef void (*etcd_txn_done)(void *arg, etcd_txn_result *result, const keel_error *err);
int etcd_txn_async(etcd_client *c, const etcd_compare *cmps, size_t ncmps, const etcd_op *success,
                   size_t nsuccess, const etcd_op *failure, size_t nfailure, etcd_txn_done done,
                   void *arg, keel_error *err);

/* ------------------------------------------------------------------- watch */

/* One watcher on its own Watch stream (with etcd's "hasleader" metadata, so a
 * member that loses its leader ends the watch instead of going quiet). */
typedef struct etcd_watch etcd_watch;

typedef struct etcd_event {
  int type; /* 0 PUT, 1 DELETE, as mvccpb.Event.EventType */
  etcd_kv kv; /* DELETE: the key, mod_revision = the deletion's revision */
  etcd_kv prev_kv;
  bool has_prev_kv;
} etcd_event;

/* Callbacks run on a channel thread, one at a time per watch, in order. */
typedef struct etcd_watch_callbacks {
  /* One WatchResponse's events (a fragmented response arrives joined), in
   * revision order; revision is the response's header revision. Borrowed until
   * the callback returns. */
  void (*on_events)(void *arg, int64_t revision, const etcd_event *events, size_t n);
  /* A progress notification (requested or periodic): no events at or below
   * revision remain undelivered. May be NULL. */
  void (*on_progress)(void *arg, int64_t revision);
  /* Once, last. compact_revision > 0: start_revision was compacted (why->code
   * ETCD_ECOMPACTED): relist at or after compact_revision. Otherwise the stream
   * failed or the server canceled the watch (why says how; EPIPE if the server
   * ended the stream cleanly). The watch does not resume by itself: watch again
   * from the last revision seen + 1. Never runs once etcd_watch_stop was called.
   * May be NULL. */
  void (*on_end)(void *arg, int64_t compact_revision, const keel_error *why);
} etcd_watch_callbacks;

typedef struct etcd_watch_options {
  const void *key; /* copied */
  size_t key_len;
  const void *range_end; /* NULL = the key alone; copied */
  size_t range_end_len;
  int64_t start_revision; /* 0 = from the next revision; else inclusive, may be in the past */
  bool prev_kv;           /* events carry the previous pair */
  bool progress_notify;   /* periodic progress notifications when idle */
  bool fragment;          /* let the server split huge revisions (joined here) */
} etcd_watch_options;

/* Starts the watch; returns at once (the server confirms asynchronously; a
 * watch starting at a revision <= the current one replays history first). If
 * the stream cannot connect, it is restarted on the next endpoint before
 * on_end is considered. NULL with err if the stream could not be started. */
etcd_watch *etcd_watch_start(etcd_client *c, const etcd_watch_options *opts,
                             const etcd_watch_callbacks *cb, void *arg, keel_error *err);
/* Asks the server for a progress notification (on_progress). 0, or -EPIPE if
 * the watch ended. */
int etcd_watch_request_progress(etcd_watch *w);
/* Cancels the watch and frees it; required for every watch, ended or not. From
 * any other thread it waits until no callback of w runs and the stream is
 * closed; no callback (on_end included) runs after it returns. From inside a
 * callback (of w, of another watch, or an async done) it does not wait: no
 * further callback of w starts, and the memory goes when the stream closes. */
void etcd_watch_stop(etcd_watch *w);

#endif
