/* common/etcd/kv.c — KV (Range, Put, DeleteRange, Txn, Compact) and Lease
 * grant/revoke.
 *
 * Requests are built on the stack (or in one calloc'ed block for a txn) and
 * point at the caller's buffers: the request is encoded inside the rpc call,
 * so nothing is copied before the wire. Results keep the decoded response and
 * point into it (etcd.h): a Range costs one extra allocation (the etcd_kv
 * array), a Txn one (its op results and every kv of every op in one block).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/etcd/etcd.h"
#include "common/etcd/internal.h"
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "etcd/mvccpb/kv.pb-c.h"

#define M_RANGE "/etcdserverpb.KV/Range"
#define M_PUT "/etcdserverpb.KV/Put"
#define M_DELETE "/etcdserverpb.KV/DeleteRange"
#define M_TXN "/etcdserverpb.KV/Txn"
#define M_COMPACT "/etcdserverpb.KV/Compact"
#define M_LEASE_GRANT "/etcdserverpb.Lease/LeaseGrant"
#define M_LEASE_REVOKE "/etcdserverpb.Lease/LeaseRevoke"

static ProtobufCBinaryData bin(const void *p, size_t len) {
  ProtobufCBinaryData b = {.len = p ? len : 0, .data = (uint8_t *)p};
  return b;
}

static int64_t header_rev(const Etcdserverpb__ResponseHeader *h) { return h ? h->revision : 0; }

static void kv_fill(etcd_kv *d, const Mvccpb__KeyValue *s) {
  d->key = (char *)s->key.data;
  d->key_len = s->key.len;
  d->value = s->value.len ? s->value.data : NULL;
  d->value_len = s->value.len;
  d->create_revision = s->create_revision;
  d->mod_revision = s->mod_revision;
  d->version = s->version;
  d->lease = s->lease;
}

static void kvs_fill(etcd_kv *d, Mvccpb__KeyValue *const *s, size_t n) {
  for (size_t i = 0; i < n; i++) kv_fill(&d[i], s[i]);
}

int etcd_prefix_end(const void *prefix, size_t len, unsigned char **end, size_t *end_len) {
  const unsigned char *p = prefix;
  size_t n = len;
  while (n > 0 && p[n - 1] == 0xff) n--;
  unsigned char *e = malloc(n ? n : 1);
  if (!e) return -ENOMEM;
  if (n == 0) {
    e[0] = 0; /* every key from the prefix on */
    *end_len = 1;
  } else {
    memcpy(e, p, n);
    e[n - 1]++;
    *end_len = n;
  }
  *end = e;
  return 0;
}

/* ---------------------------------------------------------------- range */

void etcd_range_result_clear(etcd_range_result *r) {
  if (!r) return;
  if (r->owner_) {
    free(r->kvs);
    protobuf_c_message_free_unpacked(r->owner_, NULL);
  }
  memset(r, 0, sizeof(*r));
}

/* Takes resp (freed on failure). */
static int range_result_take(Etcdserverpb__RangeResponse *resp, etcd_range_result *out,
                             keel_error *err) {
  memset(out, 0, sizeof(*out));
  if (resp->n_kvs) {
    out->kvs = malloc(resp->n_kvs * sizeof(*out->kvs));
    if (!out->kvs) {
      protobuf_c_message_free_unpacked(&resp->base, NULL);
      return keel_error_set(err, ENOMEM, "etcd Range: out of memory for %zu kvs", resp->n_kvs);
    }
    kvs_fill(out->kvs, resp->kvs, resp->n_kvs);
  }
  out->nkvs = resp->n_kvs;
  out->revision = header_rev(resp->header);
  out->more = resp->more;
  out->count = resp->count;
  out->owner_ = resp;
  return 0;
}

static void range_request(Etcdserverpb__RangeRequest *r, const void *key, size_t key_len,
                          const void *range_end, size_t range_end_len, int64_t revision,
                          int64_t limit, bool keys_only, bool count_only) {
  Etcdserverpb__RangeRequest init = ETCDSERVERPB__RANGE_REQUEST__INIT;
  *r = init;
  r->key = bin(key, key_len);
  r->range_end = bin(range_end, range_end_len);
  r->revision = revision;
  r->limit = limit;
  r->keys_only = keys_only;
  r->count_only = count_only;
}

int etcd_range(etcd_client *c, const void *key, size_t key_len, const void *range_end,
               size_t range_end_len, int64_t revision, int64_t limit, bool keys_only,
               bool count_only, etcd_range_result *out, keel_error *err) {
  memset(out, 0, sizeof(*out));
  Etcdserverpb__RangeRequest req;
  range_request(&req, key, key_len, range_end, range_end_len, revision, limit, keys_only, count_only);
  char what[160];
  etcd_describe(what, sizeof(what), "Range", key, key_len);
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_RANGE, what, &req.base, &etcdserverpb__range_response__descriptor, true,
                     &resp, err);
  if (rc < 0) return rc;
  return range_result_take((Etcdserverpb__RangeResponse *)resp, out, err);
}

static void range_finish(const etcd_async_done *d, ProtobufCMessage *resp, const keel_error *err) {
  if (!resp) {
    d->user.range(d->arg, NULL, err);
    return;
  }
  etcd_range_result r;
  keel_error e = {0};
  if (range_result_take((Etcdserverpb__RangeResponse *)resp, &r, &e) < 0) d->user.range(d->arg, NULL, &e);
  else d->user.range(d->arg, &r, NULL);
}

int etcd_range_async(etcd_client *c, const void *key, size_t key_len, const void *range_end,
                     size_t range_end_len, int64_t revision, int64_t limit, bool keys_only,
                     bool count_only, etcd_range_done done, void *arg, keel_error *err) {
  if (!done) return keel_error_set(err, EINVAL, "etcd Range: no done callback");
  Etcdserverpb__RangeRequest req;
  range_request(&req, key, key_len, range_end, range_end_len, revision, limit, keys_only, count_only);
  char what[160];
  etcd_describe(what, sizeof(what), "Range", key, key_len);
  etcd_async_done d = {.finish = range_finish, .user.range = done, .arg = arg};
  return etcd_call_async(c, M_RANGE, what, &req.base, &etcdserverpb__range_response__descriptor,
                         true, &d, err);
}

/* ---------------------------------------------------------------- put, delete */

int etcd_put(etcd_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
             int64_t lease, int64_t *revision, keel_error *err) {
  Etcdserverpb__PutRequest req = ETCDSERVERPB__PUT_REQUEST__INIT;
  req.key = bin(key, key_len);
  req.value = bin(value, value_len);
  req.lease = lease;
  char what[160];
  etcd_describe(what, sizeof(what), "Put", key, key_len);
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_PUT, what, &req.base, &etcdserverpb__put_response__descriptor, false,
                     &resp, err);
  if (rc < 0) return rc;
  if (revision) *revision = header_rev(((Etcdserverpb__PutResponse *)resp)->header);
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}

int etcd_delete(etcd_client *c, const void *key, size_t key_len, const void *range_end,
                size_t range_end_len, int64_t *deleted, int64_t *revision, keel_error *err) {
  Etcdserverpb__DeleteRangeRequest req = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  req.key = bin(key, key_len);
  req.range_end = bin(range_end, range_end_len);
  char what[160];
  etcd_describe(what, sizeof(what), "DeleteRange", key, key_len);
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_DELETE, what, &req.base, &etcdserverpb__delete_range_response__descriptor,
                     false, &resp, err);
  if (rc < 0) return rc;
  Etcdserverpb__DeleteRangeResponse *r = (Etcdserverpb__DeleteRangeResponse *)resp;
  if (deleted) *deleted = r->deleted;
  if (revision) *revision = header_rev(r->header);
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}

/* ---------------------------------------------------------------- compact, lease */

int etcd_compact(etcd_client *c, int64_t revision, bool physical, keel_error *err) {
  Etcdserverpb__CompactionRequest req = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
  req.revision = revision;
  req.physical = physical;
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_COMPACT, "Compact", &req.base, &etcdserverpb__compaction_response__descriptor,
                     true, &resp, err);
  if (rc == 0) protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

int etcd_lease_grant_ttl(etcd_client *c, int64_t ttl_seconds, int64_t *id, int64_t *granted_ttl,
                         keel_error *err) {
  Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  req.ttl = ttl_seconds;
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_LEASE_GRANT, "LeaseGrant", &req.base,
                     &etcdserverpb__lease_grant_response__descriptor, false, &resp, err);
  if (rc < 0) return rc;
  Etcdserverpb__LeaseGrantResponse *r = (Etcdserverpb__LeaseGrantResponse *)resp;
  if (r->error && r->error[0]) rc = keel_error_set(err, EIO, "etcd LeaseGrant: %s", r->error);
  else {
    *id = r->id;
    if (granted_ttl) *granted_ttl = r->ttl;
  }
  protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

int etcd_lease_grant(etcd_client *c, int64_t ttl_seconds, int64_t *id, keel_error *err) {
  return etcd_lease_grant_ttl(c, ttl_seconds, id, NULL, err);
}

int etcd_lease_revoke(etcd_client *c, int64_t id, keel_error *err) {
  Etcdserverpb__LeaseRevokeRequest req = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
  req.id = id;
  ProtobufCMessage *resp = NULL;
  int rc = etcd_call(c, M_LEASE_REVOKE, "LeaseRevoke", &req.base,
                     &etcdserverpb__lease_revoke_response__descriptor, true, &resp, err);
  if (rc == 0) protobuf_c_message_free_unpacked(resp, NULL);
  return rc;
}

/* ---------------------------------------------------------------- txn */

typedef struct op_slot {
  Etcdserverpb__RequestOp op;
  union {
    Etcdserverpb__RangeRequest range;
    Etcdserverpb__PutRequest put;
    Etcdserverpb__DeleteRangeRequest del;
  } u;
} op_slot;

typedef struct txn_request {
  Etcdserverpb__TxnRequest req;
  void *block; /* every compare, op and pointer array, when they do not fit a txn_stack */
  bool read_only;
  char what[160];
} txn_request;

static int op_build(op_slot *s, const etcd_op *o, keel_error *err) {
  Etcdserverpb__RequestOp init = ETCDSERVERPB__REQUEST_OP__INIT;
  s->op = init;
  switch (o->type) {
    case ETCD_OP_RANGE:
      range_request(&s->u.range, o->key, o->key_len, o->range_end, o->range_end_len, 0, 0, false,
                    false);
      s->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
      s->op.request_range = &s->u.range;
      return 0;
    case ETCD_OP_PUT: {
      Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
      p.key = bin(o->key, o->key_len);
      p.value = bin(o->value, o->value_len);
      p.lease = o->lease;
      p.prev_kv = o->prev_kv;
      s->u.put = p;
      s->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
      s->op.request_put = &s->u.put;
      return 0;
    }
    case ETCD_OP_DELETE: {
      Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
      d.key = bin(o->key, o->key_len);
      d.range_end = bin(o->range_end, o->range_end_len);
      d.prev_kv = o->prev_kv;
      s->u.del = d;
      s->op.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
      s->op.request_delete_range = &s->u.del;
      return 0;
    }
  }
  return keel_error_set(err, EINVAL, "etcd Txn: unknown op type %d", (int)o->type);
}

static int cmp_build(Etcdserverpb__Compare *d, const etcd_compare *s, size_t i, keel_error *err) {
  Etcdserverpb__Compare init = ETCDSERVERPB__COMPARE__INIT;
  *d = init;
  d->key = bin(s->key, s->key_len);
  switch (s->result) {
    case ETCD_CMP_EQUAL: d->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL; break;
    case ETCD_CMP_NOT_EQUAL: d->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL; break;
    case ETCD_CMP_GREATER: d->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER; break;
    case ETCD_CMP_LESS: d->result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS; break;
    default:
      return keel_error_set(err, EINVAL, "etcd Txn: compare %zu: unknown result %d", i, (int)s->result);
  }
  switch (s->target) {
    case ETCD_CMP_VERSION:
      d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
      d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
      d->version = s->number;
      return 0;
    case ETCD_CMP_CREATE:
      d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE;
      d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
      d->create_revision = s->number;
      return 0;
    case ETCD_CMP_MOD:
      d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
      d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
      d->mod_revision = s->number;
      return 0;
    case ETCD_CMP_VALUE:
      d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
      d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
      d->value = bin(s->value, s->value_len);
      return 0;
    case ETCD_CMP_LEASE:
      d->target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE;
      d->target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
      d->lease = s->number;
      return 0;
  }
  return keel_error_set(err, EINVAL, "etcd Txn: compare %zu: unknown target %d", i, (int)s->target);
}

/* Room for the usual txn (a few compares and ops) without an allocation. */
typedef union txn_stack {
  max_align_t align;
  char bytes[1536];
} txn_stack;

static int txn_build(txn_request *t, const etcd_compare *cmps, size_t ncmps, const etcd_op *success,
                     size_t nsuccess, const etcd_op *failure, size_t nfailure, txn_stack *stack,
                     keel_error *err) {
  Etcdserverpb__TxnRequest init = ETCDSERVERPB__TXN_REQUEST__INIT;
  t->req = init;
  t->block = NULL;
  t->read_only = true;
  const void *first_key = ncmps ? cmps[0].key : nsuccess ? success[0].key : nfailure ? failure[0].key : NULL;
  size_t first_len = ncmps ? cmps[0].key_len : nsuccess ? success[0].key_len : nfailure ? failure[0].key_len : 0;
  etcd_describe(t->what, sizeof(t->what), "Txn", first_key, first_len);
  if ((ncmps && !cmps) || (nsuccess && !success) || (nfailure && !failure))
    return keel_error_set(err, EINVAL, "etcd %s: NULL array with a nonzero count", t->what);
  size_t nops = nsuccess + nfailure;
  size_t size = ncmps * (sizeof(Etcdserverpb__Compare) + sizeof(Etcdserverpb__Compare *)) +
                nops * (sizeof(op_slot) + sizeof(Etcdserverpb__RequestOp *));
  if (size == 0) return 0;
  char *b;
  if (size <= sizeof(stack->bytes)) {
    b = stack->bytes;
    memset(b, 0, size);
  } else {
    b = calloc(1, size);
    if (!b) return keel_error_set(err, ENOMEM, "etcd %s: out of memory", t->what);
    t->block = b;
  }
  /* Structs first (largest alignment), pointer arrays after. */
  Etcdserverpb__Compare *cs = (Etcdserverpb__Compare *)b;
  op_slot *slots = (op_slot *)(cs + ncmps);
  Etcdserverpb__Compare **cps = (Etcdserverpb__Compare **)(slots + nops);
  Etcdserverpb__RequestOp **ops = (Etcdserverpb__RequestOp **)(cps + ncmps);
  for (size_t i = 0; i < ncmps; i++) {
    if (cmp_build(&cs[i], &cmps[i], i, err) < 0) return -EINVAL;
    cps[i] = &cs[i];
  }
  for (size_t i = 0; i < nops; i++) {
    const etcd_op *o = i < nsuccess ? &success[i] : &failure[i - nsuccess];
    if (op_build(&slots[i], o, err) < 0) return -EINVAL;
    if (o->type != ETCD_OP_RANGE) t->read_only = false;
    ops[i] = &slots[i].op;
  }
  t->req.n_compare = ncmps;
  t->req.compare = ncmps ? cps : NULL;
  t->req.n_success = nsuccess;
  t->req.success = nsuccess ? ops : NULL;
  t->req.n_failure = nfailure;
  t->req.failure = nfailure ? ops + nsuccess : NULL;
  return 0;
}

void etcd_txn_result_clear(etcd_txn_result *r) {
  if (!r) return;
  free(r->results); /* the kvs of every op share this block */
  if (r->owner_) protobuf_c_message_free_unpacked(r->owner_, NULL);
  memset(r, 0, sizeof(*r));
}

/* Takes resp (freed on failure). */
static int txn_result_take(Etcdserverpb__TxnResponse *resp, etcd_txn_result *out, keel_error *err) {
  memset(out, 0, sizeof(*out));
  size_t nkvs = 0;
  for (size_t i = 0; i < resp->n_responses; i++) {
    const Etcdserverpb__ResponseOp *o = resp->responses[i];
    switch (o->response_case) {
      case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE: nkvs += o->response_range->n_kvs; break;
      case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT: nkvs += o->response_put->prev_kv != NULL; break;
      case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
        nkvs += o->response_delete_range->n_prev_kvs;
        break;
      default:
        protobuf_c_message_free_unpacked(&resp->base, NULL);
        return keel_error_set(err, EPROTO, "etcd Txn: response op %zu of an unexpected kind %d", i,
                              (int)o->response_case);
    }
  }
  if (resp->n_responses) {
    out->results = malloc(resp->n_responses * sizeof(etcd_op_result) + nkvs * sizeof(etcd_kv));
    if (!out->results) {
      protobuf_c_message_free_unpacked(&resp->base, NULL);
      return keel_error_set(err, ENOMEM, "etcd Txn: out of memory");
    }
  }
  etcd_kv *kv = (etcd_kv *)(out->results + resp->n_responses);
  for (size_t i = 0; i < resp->n_responses; i++) {
    const Etcdserverpb__ResponseOp *o = resp->responses[i];
    etcd_op_result *d = &out->results[i];
    memset(d, 0, sizeof(*d));
    switch (o->response_case) {
      case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE: {
        const Etcdserverpb__RangeResponse *r = o->response_range;
        d->type = ETCD_OP_RANGE;
        d->range.revision = header_rev(r->header);
        d->range.more = r->more;
        d->range.count = r->count;
        d->range.nkvs = r->n_kvs;
        d->range.kvs = r->n_kvs ? kv : NULL;
        kvs_fill(kv, r->kvs, r->n_kvs);
        kv += r->n_kvs;
        break;
      }
      case ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
        d->type = ETCD_OP_PUT;
        if (o->response_put->prev_kv) {
          d->prev_kvs = kv;
          d->nprev_kvs = 1;
          kv_fill(kv++, o->response_put->prev_kv);
        }
        break;
      default: {
        const Etcdserverpb__DeleteRangeResponse *r = o->response_delete_range;
        d->type = ETCD_OP_DELETE;
        d->deleted = r->deleted;
        d->nprev_kvs = r->n_prev_kvs;
        d->prev_kvs = r->n_prev_kvs ? kv : NULL;
        kvs_fill(kv, r->prev_kvs, r->n_prev_kvs);
        kv += r->n_prev_kvs;
        break;
      }
    }
  }
  out->nresults = resp->n_responses;
  out->succeeded = resp->succeeded;
  out->revision = header_rev(resp->header);
  out->owner_ = resp;
  return 0;
}

int etcd_txn(etcd_client *c, const etcd_compare *cmps, size_t ncmps, const etcd_op *success,
             size_t nsuccess, const etcd_op *failure, size_t nfailure, etcd_txn_result *out,
             keel_error *err) {
  memset(out, 0, sizeof(*out));
  txn_request t;
  txn_stack stack;
  int rc = txn_build(&t, cmps, ncmps, success, nsuccess, failure, nfailure, &stack, err);
  ProtobufCMessage *resp = NULL;
  if (rc == 0)
    rc = etcd_call(c, M_TXN, t.what, &t.req.base, &etcdserverpb__txn_response__descriptor,
                   t.read_only, &resp, err);
  free(t.block);
  if (rc < 0) return rc;
  return txn_result_take((Etcdserverpb__TxnResponse *)resp, out, err);
}

static void txn_finish(const etcd_async_done *d, ProtobufCMessage *resp, const keel_error *err) {
  if (!resp) {
    d->user.txn(d->arg, NULL, err);
    return;
  }
  etcd_txn_result r;
  keel_error e = {0};
  if (txn_result_take((Etcdserverpb__TxnResponse *)resp, &r, &e) < 0) d->user.txn(d->arg, NULL, &e);
  else d->user.txn(d->arg, &r, NULL);
}

int etcd_txn_async(etcd_client *c, const etcd_compare *cmps, size_t ncmps, const etcd_op *success,
                   size_t nsuccess, const etcd_op *failure, size_t nfailure, etcd_txn_done done,
                   void *arg, keel_error *err) {
  if (!done) return keel_error_set(err, EINVAL, "etcd Txn: no done callback");
  txn_request t;
  txn_stack stack;
  int rc = txn_build(&t, cmps, ncmps, success, nsuccess, failure, nfailure, &stack, err);
  if (rc == 0) {
    etcd_async_done d = {.finish = txn_finish, .user.txn = done, .arg = arg};
    rc = etcd_call_async(c, M_TXN, t.what, &t.req.base, &etcdserverpb__txn_response__descriptor,
                         t.read_only, &d, err);
  }
  free(t.block);
  return rc;
}
