/* services/store/fuzz/request_fuzz.c — fuzz target for keel-store request
 * decoding and application: etcd requests unpacked with protobuf-c and applied
 * to the in-memory engine (services/store/engine/kv.h) plus the lessor, the
 * way store.c's apply thread does, against an independent model.
 *
 * LLVMFuzzerTestOneInput is the libFuzzer entry point; common/fuzz/standalone_main.c
 * drives the same function without libFuzzer. Input:
 *
 *   byte 0   bits 0-2  request type (single mode):
 *                      0 RangeRequest       4 CompactionRequest
 *                      1 PutRequest         5 LeaseGrantRequest
 *                      2 DeleteRangeRequest 6 LeaseRevokeRequest
 *                      3 TxnRequest         7 WatchRequest (create: history replay)
 *            bit 3     the seeded store is compacted at revision 5
 *            bit 4     start from an empty store instead of the seeded one
 *            bit 5     then add 100 keys /registry/pods/default/pNN (every
 *                      tenth with lease 9) and /registry/svc/sNN in one txn:
 *                      enough for B-tree splits, merges and key prefixes
 *            bit 7     sequence mode: the rest is up to 64 frames
 *                      [type][length][message], applied in order
 *   rest     the protobuf message (single mode)
 *
 * The seeded store: leases 7, 8, 9 and revisions 2..9 over keys a, b (lease 7,
 * deleted once), c/x, c/y, d (lease 8). Every request is checked against a
 * model that keeps every change ever made (key, value, lease, create revision
 * and version computed by the model itself) and the lease table:
 *   - decoding: pack(unpack(x)) unpacks again to the same bytes;
 *   - the revision never decreases; a write that changes something takes
 *     exactly the next revision, one that changes nothing takes none;
 *   - a refused request left nothing in its kv_write, kv_rev, the revision
 *     store and the index unchanged, and gave the error the model predicts
 *     (txns: one of the errors the request really contains);
 *   - an accepted request is one the model accepts, its changes are the
 *     model's (same keys, values, leases, create revisions, versions, sub
 *     revisions), no key is changed twice in one revision, and its response
 *     (prev_kv, deleted, txn branches and nested responses, range results)
 *     matches the model;
 *   - after each request that changed the store, and at the end of every
 *     input: full ranges at the newest, the pre-request and the compacted
 *     revision match the model; the revision store holds exactly
 *     the model's history (everything above the compacted revision, what
 *     etcd's compaction keeps at or below it); every lease's key set is the
 *     live keys carrying it; lessor_verify passes;
 *   - responses pass protobuf_c_message_check, pack and unpack, and free with
 *     protobuf_c_message_free_unpacked (leaks and bad frees: ASan/LSan).
 * A violated property prints "request_fuzz: VIOLATION [id] ..." and aborts.
 * KEEL_REQUEST_FUZZ_TOLERATE=id,id,... skips inputs that hit those violation
 * ids instead (counted, printed at exit), so a long run can get past a known
 * finding. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/kv.h"
#include "services/store/fuzz/request_fuzz.h"
#include "services/store/lease/lessor.h"

enum {
  T_RANGE = RF_RANGE,
  T_PUT = RF_PUT,
  T_DELETE = RF_DELETE,
  T_TXN = RF_TXN,
  T_COMPACT = RF_COMPACT,
  T_LEASE_GRANT = RF_LEASE_GRANT,
  T_LEASE_REVOKE = RF_LEASE_REVOKE,
  T_WATCH = RF_WATCH,
  T_COUNT = RF_NTYPES
};
static const char *const k_type_names[T_COUNT] = {"Range",      "Put",         "DeleteRange",
                                                  "Txn",        "Compaction",  "LeaseGrant",
                                                  "LeaseRevoke", "Watch"};

#define FUZZ_MAX_INPUT (64u << 10)
#define MAX_SEQUENCE RF_MAX_SEQUENCE
#define FLAG_COMPACTED RF_FLAG_COMPACTED
#define FLAG_EMPTY RF_FLAG_EMPTY
#define FLAG_SEQUENCE RF_FLAG_SEQUENCE
#define FLAG_LARGE RF_FLAG_LARGE

/* ------------------------------------------------------------------ reporting */

typedef struct stats {
  unsigned long inputs, requests[T_COUNT], undecodable[T_COUNT], refused[T_COUNT], accepted[T_COUNT],
      revisions, compactions, tolerated;
} stats;
static stats g_stats;

typedef struct tolerated {
  char id[48];
  unsigned long count;
} tolerated;
static tolerated g_tol[16];
static size_t g_ntol;
static bool g_tol_loaded;
static jmp_buf g_bail;
static bool g_in_input;
static int g_req_index = -1, g_req_type = -1;
/* Set while checking a request that hits a known root cause: every
 * violation there is reported under this id, with this explanation. */
static const char *g_blame, *g_blame_why;

static void load_tolerated(void) {
  if (g_tol_loaded) return;
  g_tol_loaded = true;
  const char *s = getenv("KEEL_REQUEST_FUZZ_TOLERATE");
  while (s && *s && g_ntol < sizeof(g_tol) / sizeof(g_tol[0])) {
    size_t n = strcspn(s, ",");
    if (n && n < sizeof(g_tol[0].id)) {
      memcpy(g_tol[g_ntol].id, s, n);
      g_tol[g_ntol++].id[n] = 0;
    }
    s += n;
    if (*s == ',') s++;
  }
}

static void violation(const char *id, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void violation(const char *id, const char *file, int line, const char *fmt, ...) {
  load_tolerated();
  const char *orig = id;
  if (g_blame) id = g_blame;
  for (size_t i = 0; i < g_ntol; i++) {
    if (strcmp(g_tol[i].id, id) == 0 && g_in_input) {
      g_tol[i].count++;
      g_stats.tolerated++;
      longjmp(g_bail, 1);
    }
  }
  fprintf(stderr, "request_fuzz: VIOLATION [%s] at %s:%d (request #%d, %s): ", id, file, line,
          g_req_index, g_req_type >= 0 && g_req_type < T_COUNT ? k_type_names[g_req_type] : "seed");
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  if (orig != id) fprintf(stderr, " [found as %s; %s]", orig, g_blame_why);
  fputc('\n', stderr);
  abort();
}

#define STAT(field)                                     \
  do {                                                  \
    if (g_req_type >= 0) g_stats.field[g_req_type]++;   \
  } while (0)
#define VIOL(id, ...) violation(id, __FILE__, __LINE__, __VA_ARGS__)
#define CHECK(cond)                                     \
  do {                                                  \
    if (!(cond)) VIOL("property", "%s", #cond);         \
  } while (0)
#define CHECKV(id, cond, ...)              \
  do {                                     \
    if (!(cond)) VIOL(id, __VA_ARGS__);    \
  } while (0)

static void print_stats(void) {
  if (!g_stats.inputs) return;
  fprintf(stderr, "request_fuzz: %lu inputs, %lu revisions written, %lu compactions\n", g_stats.inputs,
          g_stats.revisions, g_stats.compactions);
  for (int t = 0; t < T_COUNT; t++)
    fprintf(stderr, "request_fuzz:   %-12s %9lu requests: %9lu undecodable, %9lu refused, %9lu accepted\n",
            k_type_names[t], g_stats.requests[t], g_stats.undecodable[t], g_stats.refused[t],
            g_stats.accepted[t]);
  for (size_t i = 0; i < g_ntol; i++)
    fprintf(stderr, "request_fuzz: tolerated violation [%s]: %lu inputs skipped\n", g_tol[i].id,
            g_tol[i].count);
}

/* The model's own helpers are left out of coverage instrumentation: their
 * comparisons are not the code under test and would cost most of the time. */
#if defined(__clang__)
#define NO_COV __attribute__((no_sanitize("coverage")))
#elif defined(__has_attribute)
#if __has_attribute(no_sanitize_coverage)
#define NO_COV __attribute__((no_sanitize_coverage))
#endif
#endif
#ifndef NO_COV
#define NO_COV
#endif

/* ------------------------------------------------------------------ bytes */

/* A plain loop, not memcmp: libFuzzer intercepts memcmp everywhere to learn
 * from the bytes compared, which for the model is only cost. */
NO_COV static int bytes_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
  size_t n = al < bl ? al : bl;
  for (size_t i = 0; i < n; i++)
    if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
  return al < bl ? -1 : al > bl ? 1 : 0;
}

NO_COV static bool bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl) {
  return al == bl && bytes_cmp(a, al, b, bl) == 0;
}

NO_COV static int cmp64(int64_t a, int64_t b) { return a < b ? -1 : a > b ? 1 : 0; }

/* etcd's [key, end): end empty = key alone; end "\0" = every key >= key. */
NO_COV static bool in_range(const uint8_t *k, size_t kl, const uint8_t *s, size_t sl, const uint8_t *e,
                     size_t el) {
  int c = bytes_cmp(k, kl, s, sl);
  if (el == 0) return c == 0;
  if (c < 0) return false;
  if (el == 1 && e[0] == 0) return true;
  return bytes_cmp(k, kl, e, el) < 0;
}

static uint8_t *dup_bytes(const uint8_t *p, size_t n) {
  uint8_t *d = malloc(n ? n : 1);
  if (!d) abort();
  if (n) memcpy(d, p, n);
  return d;
}

/* ------------------------------------------------------------------ model
 *
 * Every change ever made, in revision order, with the create revision and
 * version the model computes itself; the leases granted. Changes at
 * [pend, n) belong to the write in progress (revision rev + 1). Keys are
 * interned: a table in key order, each key with its changes in order, so
 * lookups do not scan the history. */

typedef struct mch {
  int64_t main, sub;
  bool del;
  size_t kid;
  const uint8_t *key; /* the interned key's bytes */
  size_t keylen;
  uint8_t *val;
  size_t vallen;
  int64_t lease, create, version;
} mch;

typedef struct mkey {
  uint8_t *key;
  size_t len;
  size_t *ch; /* indexes into model.ch, in order */
  size_t n, cap;
} mkey;

typedef struct model {
  mch *ch;
  size_t n, cap, pend;
  int64_t rev, compact;
  mkey *keys;
  size_t nkeys, capkeys;
  size_t *sorted; /* key ids in key order */
  int64_t *leases;
  size_t nleases, capl;
} model;

static int64_t m_view(const model *m) { return m->n > m->pend ? m->rev + 1 : m->rev; }

/* Position of the first key >= k in m->sorted. */
NO_COV static size_t m_lower_bound(const model *m, const uint8_t *k, size_t kl) {
  size_t lo = 0, hi = m->nkeys;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const mkey *x = &m->keys[m->sorted[mid]];
    if (bytes_cmp(x->key, x->len, k, kl) < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

NO_COV static long m_find(const model *m, const uint8_t *k, size_t kl) {
  size_t pos = m_lower_bound(m, k, kl);
  if (pos < m->nkeys && bytes_eq(m->keys[m->sorted[pos]].key, m->keys[m->sorted[pos]].len, k, kl))
    return (long)m->sorted[pos];
  return -1;
}

static size_t m_intern(model *m, const uint8_t *k, size_t kl) {
  long id = m_find(m, k, kl);
  if (id >= 0) return (size_t)id;
  if (m->nkeys == m->capkeys) {
    m->capkeys = m->capkeys ? m->capkeys * 2 : 64;
    m->keys = realloc(m->keys, m->capkeys * sizeof(*m->keys));
    m->sorted = realloc(m->sorted, m->capkeys * sizeof(*m->sorted));
    if (!m->keys || !m->sorted) abort();
  }
  size_t pos = m_lower_bound(m, k, kl);
  m->keys[m->nkeys] = (mkey){.key = dup_bytes(k, kl), .len = kl};
  memmove(m->sorted + pos + 1, m->sorted + pos, (m->nkeys - pos) * sizeof(*m->sorted));
  m->sorted[pos] = m->nkeys;
  return m->nkeys++;
}

/* The key's newest change at or before at (tombstones included), or -1. */
NO_COV static long m_latest(const model *m, size_t kid, int64_t at) {
  const mkey *k = &m->keys[kid];
  for (size_t j = k->n; j-- > 0;)
    if (m->ch[k->ch[j]].main <= at) return (long)k->ch[j];
  return -1;
}

/* Index of the key's live change as of at, or -1. */
NO_COV static long m_get(const model *m, const uint8_t *k, size_t kl, int64_t at) {
  long kid = m_find(m, k, kl);
  if (kid < 0) return -1;
  long i = m_latest(m, (size_t)kid, at);
  return i >= 0 && !m->ch[i].del ? i : -1;
}

static void m_append(model *m, bool del, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                     int64_t lease) {
  /* Copy the value before anything grows: v may point into a change's value. */
  uint8_t *val = del ? NULL : dup_bytes(v, vl);
  long prev = m_get(m, k, kl, m_view(m));
  int64_t create = 0, version = 0;
  if (!del) {
    create = prev >= 0 ? m->ch[prev].create : m->rev + 1;
    version = prev >= 0 ? m->ch[prev].version + 1 : 1;
  }
  size_t kid = m_intern(m, k, kl);
  if (m->n == m->cap) {
    m->cap = m->cap ? m->cap * 2 : 64;
    m->ch = realloc(m->ch, m->cap * sizeof(*m->ch));
    if (!m->ch) abort();
  }
  mkey *key = &m->keys[kid];
  if (key->n == key->cap) {
    key->cap = key->cap ? key->cap * 2 : 4;
    key->ch = realloc(key->ch, key->cap * sizeof(*key->ch));
    if (!key->ch) abort();
  }
  key->ch[key->n++] = m->n;
  m->ch[m->n] = (mch){.main = m->rev + 1,
                      .sub = (int64_t)(m->n - m->pend),
                      .del = del,
                      .kid = kid,
                      .key = key->key,
                      .keylen = key->len,
                      .val = val,
                      .vallen = del ? 0 : vl,
                      .lease = del ? 0 : lease,
                      .create = create,
                      .version = version};
  m->n++;
}

static void m_commit(model *m) {
  if (m->n > m->pend) m->rev++;
  m->pend = m->n;
}

static void m_abort(model *m) {
  for (size_t i = m->n; i-- > m->pend;) {
    m->keys[m->ch[i].kid].n--; /* its newest change */
    free(m->ch[i].val);
  }
  m->n = m->pend;
}

static void m_free(model *m) {
  m->pend = 0;
  m_abort(m);
  for (size_t i = 0; i < m->nkeys; i++) {
    free(m->keys[i].key);
    free(m->keys[i].ch);
  }
  free(m->keys);
  free(m->sorted);
  free(m->ch);
  free(m->leases);
  memset(m, 0, sizeof(*m));
}

static bool m_lease_has(const model *m, int64_t id) {
  for (size_t i = 0; i < m->nleases; i++)
    if (m->leases[i] == id) return true;
  return false;
}

static void m_lease_add(model *m, int64_t id) {
  if (m->nleases == m->capl) {
    m->capl = m->capl ? m->capl * 2 : 8;
    m->leases = realloc(m->leases, m->capl * sizeof(*m->leases));
    if (!m->leases) abort();
  }
  m->leases[m->nleases++] = id;
}

static void m_lease_remove(model *m, int64_t id) {
  for (size_t i = 0; i < m->nleases; i++)
    if (m->leases[i] == id) m->leases[i] = m->leases[--m->nleases];
}

/* Is change i what etcd's compaction at m->compact keeps (or above it)? The
 * newest change of its key at or below the compacted revision, unless that
 * is a tombstone below it. */
NO_COV static bool m_kept(const model *m, size_t i) {
  const mch *c = &m->ch[i];
  if (c->main > m->compact) return true;
  if (m_latest(m, c->kid, m->compact) != (long)i) return false;
  return !(c->del && c->main < m->compact);
}

/* ------------------------------------------------------------------ per-input state */

typedef struct fz {
  kv *kv;
  lessor *ls;
  model m;
  kv_write w;
  bool w_open;
  int64_t last_rev;
  lessor_keys keys;
  ProtobufCMessage *req, *resp;
  void **scratch; /* freed at the end of each request */
  size_t nscratch, capscratch;
} fz;
static fz g_f;

static void *scratch(size_t n) {
  if (g_f.nscratch == g_f.capscratch) {
    g_f.capscratch = g_f.capscratch ? g_f.capscratch * 2 : 16;
    g_f.scratch = realloc(g_f.scratch, g_f.capscratch * sizeof(*g_f.scratch));
    if (!g_f.scratch) abort();
  }
  void *p = calloc(1, n ? n : 1);
  if (!p) abort();
  g_f.scratch[g_f.nscratch++] = p;
  return p;
}

/* Frees p early when it is the newest scratch allocation. */
static void scratch_pop(void *p) {
  if (g_f.nscratch && g_f.scratch[g_f.nscratch - 1] == p) {
    free(p);
    g_f.nscratch--;
  }
}

static void end_request(void) {
  g_blame = g_blame_why = NULL;
  if (g_f.w_open) {
    kv_write_release(&g_f.w);
    g_f.w_open = false;
  }
  m_abort(&g_f.m);
  lessor_keys_free(&g_f.keys);
  if (g_f.req) protobuf_c_message_free_unpacked(g_f.req, NULL);
  if (g_f.resp) protobuf_c_message_free_unpacked(g_f.resp, NULL);
  g_f.req = g_f.resp = NULL;
  for (size_t i = 0; i < g_f.nscratch; i++) free(g_f.scratch[i]);
  g_f.nscratch = 0;
}

/* The live changes in [k, e) at rev, in key order (indexes into m->ch). */
typedef struct idxlist {
  size_t *v;
  size_t n;
} idxlist;

NO_COV static idxlist m_live_range(const model *m, const uint8_t *k, size_t kl, const uint8_t *e,
                                   size_t el, int64_t at) {
  idxlist out = {scratch((m->nkeys + 1) * sizeof(size_t)), 0};
  for (size_t pos = m_lower_bound(m, k, kl); pos < m->nkeys; pos++) {
    const mkey *key = &m->keys[m->sorted[pos]];
    if (!in_range(key->key, key->len, k, kl, e, el)) break; /* keys ascend: none further */
    long i = m_latest(m, m->sorted[pos], at);
    if (i >= 0 && !m->ch[i].del) out.v[out.n++] = (size_t)i;
  }
  return out;
}

/* ------------------------------------------------------------------ errors */

enum {
  E_COMPACTED = 1 << 0,
  E_FUTURE = 1 << 1,
  E_EMPTY_KEY = 1 << 2,
  E_KEY_NOT_FOUND = 1 << 3,
  E_VALUE_PROVIDED = 1 << 4,
  E_LEASE_PROVIDED = 1 << 5,
  E_LEASE_NOT_FOUND = 1 << 6,
  E_DUPLICATE = 1 << 7,
  E_TOO_MANY = 1 << 8,
  E_SORT_ORDER = 1 << 9,
  E_SORT_TARGET = 1 << 10,
  E_UNKNOWN_OP = 1 << 11,
  E_NERRORS = 12
};

typedef struct errdef {
  const char *msg;
  grpc_status_code code;
} errdef;

static const errdef k_errors[E_NERRORS] = {
    {KV_ERR_COMPACTED, GRPC_STATUS_OUT_OF_RANGE},
    {KV_ERR_FUTURE_REV, GRPC_STATUS_OUT_OF_RANGE},
    {KV_ERR_EMPTY_KEY, GRPC_STATUS_INVALID_ARGUMENT},
    {KV_ERR_KEY_NOT_FOUND, GRPC_STATUS_INVALID_ARGUMENT},
    {KV_ERR_VALUE_PROVIDED, GRPC_STATUS_INVALID_ARGUMENT},
    {KV_ERR_LEASE_PROVIDED, GRPC_STATUS_INVALID_ARGUMENT},
    {KV_ERR_LEASE_NOT_FOUND, GRPC_STATUS_NOT_FOUND},
    {KV_ERR_DUPLICATE_KEY, GRPC_STATUS_INVALID_ARGUMENT},
    {KV_ERR_TOO_MANY_OPS, GRPC_STATUS_INVALID_ARGUMENT},
    {"etcdserver: invalid sort order", GRPC_STATUS_INVALID_ARGUMENT},
    {"etcdserver: invalid sort target", GRPC_STATUS_INVALID_ARGUMENT},
    {"etcdserver: unknown request in txn", GRPC_STATUS_INVALID_ARGUMENT},
};

static unsigned err_bit(const kv_error *err) {
  for (int i = 0; i < E_NERRORS; i++)
    if (err->message && strcmp(err->message, k_errors[i].msg) == 0 && err->code == k_errors[i].code)
      return 1u << i;
  return 0;
}

static const char *bits_str(unsigned bits) {
  static char buf[512];
  buf[0] = 0;
  for (int i = 0; i < E_NERRORS; i++)
    if (bits & (1u << i)) {
      strncat(buf, buf[0] ? " | " : "", sizeof(buf) - strlen(buf) - 1);
      strncat(buf, k_errors[i].msg, sizeof(buf) - strlen(buf) - 1);
    }
  return buf[0] ? buf : "(none)";
}

/* ------------------------------------------------------------------ decoding and responses */

static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n) {
  ProtobufCMessage *msg = protobuf_c_message_unpack(d, NULL, n, p);
  if (!msg) return NULL;
  /* Decoding is stable: what unpack produced packs to bytes that unpack to
   * the same message (same bytes again). */
  g_f.req = msg; /* freed by end_request, also after a tolerated violation */
  size_t len = protobuf_c_message_get_packed_size(msg), len2 = 0;
  uint8_t *a = scratch(len), *b = NULL;
  bool packed = protobuf_c_message_pack(msg, a) == len;
  ProtobufCMessage *again = packed ? protobuf_c_message_unpack(d, NULL, len, a) : NULL;
  bool same = false;
  if (again) {
    len2 = protobuf_c_message_get_packed_size(again);
    b = scratch(len2);
    protobuf_c_message_pack(again, b);
    same = len2 == len && memcmp(a, b, len) == 0;
    protobuf_c_message_free_unpacked(again, NULL);
  }
  CHECKV("decode-roundtrip", packed && again && same,
         "%s: pack(unpack(input)) is not stable (packed %d, unpacks again %d, %zu vs %zu bytes)",
         d->name, (int)packed, again != NULL, len, len2);
  return msg;
}

/* A response must be a valid message: check, pack, unpack. Freed in end_request. */
static bool g_fast_seed;
static void check_response(const ProtobufCMessage *resp) {
  if (g_fast_seed) return;
  CHECKV("response-invalid", protobuf_c_message_check(resp), "%s fails protobuf_c_message_check",
         resp->descriptor->name);
  size_t len = protobuf_c_message_get_packed_size(resp);
  uint8_t *buf = scratch(len);
  bool packed = protobuf_c_message_pack(resp, buf) == len;
  ProtobufCMessage *u = packed ? protobuf_c_message_unpack(resp->descriptor, NULL, len, buf) : NULL;
  if (u) protobuf_c_message_free_unpacked(u, NULL);
  CHECKV("response-invalid", packed && u, "%s: packs %d, unpacks after packing %d",
         resp->descriptor->name, (int)packed, u != NULL);
}

static void check_kv(const Mvccpb__KeyValue *kvp, const mch *c, bool keys_only, const char *what) {
  CHECKV("response-mismatch", kvp != NULL, "%s: missing KeyValue", what);
  CHECKV("response-mismatch", bytes_eq(kvp->key.data, kvp->key.len, c->key, c->keylen),
         "%s: key %.*s, model %.*s", what, (int)kvp->key.len, (const char *)kvp->key.data,
         (int)c->keylen, (const char *)c->key);
  CHECKV("response-mismatch",
         kvp->mod_revision == c->main && kvp->create_revision == c->create &&
             kvp->version == c->version && kvp->lease == c->lease,
         "%s: key %.*s mod/create/version/lease %lld/%lld/%lld/%lld, model %lld/%lld/%lld/%lld", what,
         (int)c->keylen, (const char *)c->key, (long long)kvp->mod_revision,
         (long long)kvp->create_revision, (long long)kvp->version, (long long)kvp->lease,
         (long long)c->main, (long long)c->create, (long long)c->version, (long long)c->lease);
  if (keys_only)
    CHECKV("response-mismatch", kvp->value.len == 0, "%s: keys_only returned a value", what);
  else
    CHECKV("response-mismatch", bytes_eq(kvp->value.data, kvp->value.len, c->val, c->vallen),
           "%s: key %.*s value differs from the model's", what, (int)c->keylen, (const char *)c->key);
}

/* ------------------------------------------------------------------ range */

/* Every error of a Range request; kv_range reports the lowest bit (its order
 * of checks), a txn may report any (choose_path checks revisions first). */
static unsigned m_range_errors(const model *m, const Etcdserverpb__RangeRequest *r, int64_t current) {
  unsigned e = 0;
  if (r->key.len == 0) e |= E_EMPTY_KEY;
  if ((int)r->sort_order < 0 || (int)r->sort_order > ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND)
    e |= E_SORT_ORDER;
  if ((int)r->sort_target < 0 || (int)r->sort_target > ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE)
    e |= E_SORT_TARGET;
  if (r->revision > current) e |= E_FUTURE;
  if (r->revision > 0 && r->revision < m->compact) e |= E_COMPACTED;
  return e;
}

/* The error kv_range reports first: empty key, sort order, sort target, revision. */
static unsigned first_range_error(unsigned e) {
  static const unsigned order[] = {E_EMPTY_KEY, E_SORT_ORDER, E_SORT_TARGET, E_FUTURE, E_COMPACTED};
  for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
    if (e & order[i]) return order[i];
  return 0;
}

static int g_sort_target;
static bool g_sort_desc;
NO_COV static int cmp_sorted(const mch *a, const mch *b) {
  int c;
  switch (g_sort_target) {
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY:
      c = bytes_cmp(a->key, a->keylen, b->key, b->keylen);
      return g_sort_desc ? -c : c;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION: c = cmp64(a->version, b->version); break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__CREATE: c = cmp64(a->create, b->create); break;
    case ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD: c = cmp64(a->main, b->main); break;
    default: c = bytes_cmp(a->val, a->vallen, b->val, b->vallen); break;
  }
  if (g_sort_desc) c = -c;
  /* kv.h: ties by key ascending. */
  return c ? c : bytes_cmp(a->key, a->keylen, b->key, b->keylen);
}

/* Checks a successful Range response against the model (read at `current`). */
static void m_check_range(const model *m, const Etcdserverpb__RangeRequest *r, int64_t current,
                          const Etcdserverpb__RangeResponse *out, const char *what) {
  int64_t at = r->revision > 0 ? r->revision : current;
  idxlist live = m_live_range(m, r->key.data, r->key.len, r->range_end.data, r->range_end.len, at);
  CHECKV("range-mismatch", out->count == (int64_t)live.n, "%s: count %lld, model %zu", what,
         (long long)out->count, live.n);
  if (r->count_only) {
    CHECKV("range-mismatch", out->n_kvs == 0 && !out->more, "%s: count_only returned kvs", what);
    return;
  }
  idxlist f = {live.v, 0};
  for (size_t i = 0; i < live.n; i++) {
    const mch *c = &m->ch[live.v[i]];
    if (r->max_mod_revision && c->main > r->max_mod_revision) continue;
    if (r->min_mod_revision && c->main < r->min_mod_revision) continue;
    if (r->max_create_revision && c->create > r->max_create_revision) continue;
    if (r->min_create_revision && c->create < r->min_create_revision) continue;
    f.v[f.n++] = live.v[i];
  }
  int order = r->sort_order;
  if (order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE &&
      r->sort_target != ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__KEY)
    order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__ASCEND;
  if (order != ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__NONE) {
    g_sort_target = r->sort_target;
    g_sort_desc = order == ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    for (size_t i = 1; i < f.n; i++) /* insertion sort: stable, inputs are small */
      for (size_t j = i; j > 0 && cmp_sorted(&m->ch[f.v[j - 1]], &m->ch[f.v[j]]) > 0; j--) {
        size_t t = f.v[j];
        f.v[j] = f.v[j - 1];
        f.v[j - 1] = t;
      }
  }
  size_t n = f.n;
  bool more = false;
  if (r->limit > 0 && n > (size_t)r->limit) {
    n = (size_t)r->limit;
    more = true;
  }
  CHECKV("range-mismatch", out->n_kvs == n && (bool)out->more == more,
         "%s: %zu kvs more=%d, model %zu more=%d (at %lld)", what, out->n_kvs, (int)out->more, n,
         (int)more, (long long)at);
  for (size_t i = 0; i < n; i++) check_kv(out->kvs[i], &m->ch[f.v[i]], r->keys_only, what);
}

/* ------------------------------------------------------------------ writes: common */

typedef struct state0 {
  int64_t rev, compact;
  size_t records, keys, bytes;
} state0;

static state0 snap_state(void) {
  return (state0){kv_rev(g_f.kv), kv_compact_rev(g_f.kv), revstore_records(kv_revstore(g_f.kv)),
                  kv_key_count(g_f.kv), kv_memory_bytes(g_f.kv)};
}

static void begin_write(void) {
  kv_write_begin(g_f.kv, &g_f.w);
  g_f.w_open = true;
  CHECK(g_f.w.main == kv_rev(g_f.kv) + 1 && g_f.w.nchanges == 0);
  CHECK(g_f.m.n == g_f.m.pend);
}

/* A refused request: nothing written, the expected error. `allowed` is the set
 * of errors the model finds in the request. */
static void finish_refused(const state0 *s0, const kv_error *err, unsigned allowed) {
  CHECKV("refused-partial-write", !g_f.w_open || g_f.w.nchanges == 0,
         "refused with \"%s\" but its kv_write holds %zu changes (revision %lld's index and revision "
         "store entries stay behind without a commit)",
         err->message ? err->message : "?", g_f.w.nchanges, (long long)g_f.w.main);
  unsigned bit = err_bit(err);
  CHECKV("unexpected-error", bit && (bit & allowed),
         "refused with code %d \"%s\"; the model expected %s", (int)err->code,
         err->message ? err->message : "(null)", bits_str(allowed));
  if (g_f.w_open) {
    kv_write_release(&g_f.w);
    g_f.w_open = false;
  }
  m_abort(&g_f.m);
  state0 s1 = snap_state();
  CHECKV("refused-changed-state",
         s1.rev == s0->rev && s1.compact == s0->compact && s1.records == s0->records &&
             s1.keys == s0->keys && s1.bytes == s0->bytes,
         "refused request changed rev %lld->%lld, records %zu->%zu, keys %zu->%zu, bytes %zu->%zu",
         (long long)s0->rev, (long long)s1.rev, s0->records, s1.records, s0->keys, s1.keys, s0->bytes,
         s1.bytes);
  STAT(refused);
}

/* Compares the kv_write's changes with the model's pending ones. */
static void check_changes(void) {
  if (g_fast_seed) return;
  const model *m = &g_f.m;
  const kv_write *w = &g_f.w;
  size_t np = m->n - m->pend;
  CHECKV("changes-mismatch", w->nchanges == np, "the write has %zu changes, the model %zu",
         w->nchanges, np);
  for (size_t i = 0; i < np; i++) {
    const kv_change *c = &w->changes[i];
    const mch *x = &m->ch[m->pend + i];
    const kv_record *rec = c->rec;
    CHECK(rec != NULL);
    CHECKV("changes-mismatch", c->rev.main == m->rev + 1 && c->rev.sub == (int64_t)i,
           "change %zu at %lld.%lld, expected %lld.%zu", i, (long long)c->rev.main,
           (long long)c->rev.sub, (long long)(m->rev + 1), i);
    CHECKV("changes-mismatch",
           c->is_delete == x->del && rec->tombstone == x->del &&
               bytes_eq(kv_record_key(rec), rec->key_len, x->key, x->keylen),
           "change %zu: %s of %.*s, model %s of %.*s", i, c->is_delete ? "delete" : "put",
           (int)rec->key_len, (const char *)kv_record_key(rec), x->del ? "delete" : "put",
           (int)x->keylen, (const char *)x->key);
    CHECKV("changes-mismatch",
           bytes_eq(kv_record_value(rec), rec->value_len, x->val, x->vallen) &&
               rec->lease == x->lease && rec->create_revision == x->create &&
               rec->version == x->version,
           "change %zu of %.*s: value/lease/create/version differ from the model (lease %lld/%lld "
           "create %lld/%lld version %lld/%lld)",
           i, (int)x->keylen, (const char *)x->key, (long long)rec->lease, (long long)x->lease,
           (long long)rec->create_revision, (long long)x->create, (long long)rec->version,
           (long long)x->version);
    for (size_t j = 0; j < i; j++) {
      const kv_record *o = w->changes[j].rec;
      CHECKV("key-twice-in-revision",
             !bytes_eq(kv_record_key(o), o->key_len, kv_record_key(rec), rec->key_len),
             "revision %lld changes key %.*s twice (sub %zu: %s, sub %zu: %s); etcd refuses such a "
             "txn with \"%s\"",
             (long long)c->rev.main, (int)rec->key_len, (const char *)kv_record_key(rec), j,
             w->changes[j].is_delete ? "delete" : "put", i, c->is_delete ? "delete" : "put",
             KV_ERR_DUPLICATE_KEY);
    }
  }
}

static void finish_accepted(const state0 *s0) {
  check_changes();
  size_t np = g_f.m.n - g_f.m.pend;
  int64_t r = kv_write_commit(&g_f.w);
  if (np == 0)
    CHECKV("revision-order", r == 0 && kv_rev(g_f.kv) == s0->rev,
           "a write without changes took revision %lld (kv_rev %lld -> %lld)", (long long)r,
           (long long)s0->rev, (long long)kv_rev(g_f.kv));
  else
    CHECKV("revision-order", r == s0->rev + 1 && kv_rev(g_f.kv) == r,
           "a write with %zu changes committed as %lld (kv_rev %lld -> %lld)", np, (long long)r,
           (long long)s0->rev, (long long)kv_rev(g_f.kv));
  kv_write_release(&g_f.w);
  g_f.w_open = false;
  m_commit(&g_f.m);
  if (np && g_req_type >= 0) g_stats.revisions++;
  STAT(accepted);
}

/* ------------------------------------------------------------------ Range, Put, DeleteRange */

static void apply_range(const Etcdserverpb__RangeRequest *req) {
  state0 s0 = snap_state();
  unsigned want = first_range_error(m_range_errors(&g_f.m, req, s0.rev));
  Etcdserverpb__RangeResponse *out = malloc(sizeof(*out));
  CHECK(out != NULL);
  g_f.resp = &out->base;
  kv_error err = {0};
  int rc = kv_range(g_f.kv, req, s0.rev, out, &err);
  if (rc < 0) {
    finish_refused(&s0, &err, want);
    CHECKV("unexpected-error", err_bit(&err) == want, "Range refused with \"%s\", model: %s",
           err.message, bits_str(want));
  } else {
    CHECKV("accepted-invalid", want == 0, "Range accepted; the model refuses it: %s", bits_str(want));
    m_check_range(&g_f.m, req, s0.rev, out, "Range");
    STAT(accepted);
  }
  check_response(g_f.resp);
}

static unsigned m_put_error(const model *m, const Etcdserverpb__PutRequest *r) {
  if (r->key.len == 0) return E_EMPTY_KEY;
  if (r->ignore_value && r->value.len != 0) return E_VALUE_PROVIDED;
  if (r->ignore_lease && r->lease != 0) return E_LEASE_PROVIDED;
  if ((r->ignore_value || r->ignore_lease) && m_get(m, r->key.data, r->key.len, m_view(m)) < 0)
    return E_KEY_NOT_FOUND;
  if (!r->ignore_lease && r->lease != 0 && !m_lease_has(m, r->lease)) return E_LEASE_NOT_FOUND;
  return 0;
}

/* Applies an accepted put to the model and checks its response. */
static void m_apply_put(model *m, const Etcdserverpb__PutRequest *r, const Etcdserverpb__PutResponse *out) {
  long prev = m_get(m, r->key.data, r->key.len, m_view(m));
  if (r->prev_kv && prev >= 0)
    check_kv(out->prev_kv, &m->ch[prev], false, "Put prev_kv");
  else
    CHECKV("response-mismatch", out->prev_kv == NULL, "Put returned a prev_kv the model has not");
  const uint8_t *v = r->value.data;
  size_t vl = r->value.len;
  int64_t lease = r->lease;
  if (prev >= 0 && r->ignore_value) {
    v = m->ch[prev].val;
    vl = m->ch[prev].vallen;
  }
  if (prev >= 0 && r->ignore_lease) lease = m->ch[prev].lease;
  m_append(m, false, r->key.data, r->key.len, v, vl, lease);
}

static void apply_put(const Etcdserverpb__PutRequest *req) {
  state0 s0 = snap_state();
  unsigned want = m_put_error(&g_f.m, req);
  begin_write();
  Etcdserverpb__PutResponse *out = malloc(sizeof(*out));
  CHECK(out != NULL);
  g_f.resp = &out->base;
  kv_error err = {0};
  if (kv_put(&g_f.w, req, out, &err) < 0) {
    finish_refused(&s0, &err, want);
    CHECKV("unexpected-error", err_bit(&err) == want, "Put refused with \"%s\", model: %s",
           err.message, bits_str(want));
  } else {
    CHECKV("accepted-invalid", want == 0, "Put accepted; the model refuses it: %s", bits_str(want));
    m_apply_put(&g_f.m, req, out);
    finish_accepted(&s0);
  }
  check_response(g_f.resp);
}

static void m_apply_delete(model *m, const Etcdserverpb__DeleteRangeRequest *r,
                           const Etcdserverpb__DeleteRangeResponse *out) {
  idxlist live = m_live_range(m, r->key.data, r->key.len, r->range_end.data, r->range_end.len, m_view(m));
  CHECKV("response-mismatch", out->deleted == (int64_t)live.n, "DeleteRange deleted %lld, model %zu",
         (long long)out->deleted, live.n);
  if (r->prev_kv) {
    CHECKV("response-mismatch", out->n_prev_kvs == live.n, "DeleteRange: %zu prev_kvs, model %zu",
           out->n_prev_kvs, live.n);
    for (size_t i = 0; i < live.n; i++) check_kv(out->prev_kvs[i], &m->ch[live.v[i]], false, "DeleteRange prev_kvs");
  } else {
    CHECKV("response-mismatch", out->n_prev_kvs == 0, "DeleteRange returned prev_kvs unasked");
  }
  for (size_t i = 0; i < live.n; i++) {
    const mch *c = &m->ch[live.v[i]];
    m_append(m, true, c->key, c->keylen, NULL, 0, 0);
  }
}

static void apply_delete(const Etcdserverpb__DeleteRangeRequest *req) {
  state0 s0 = snap_state();
  unsigned want = req->key.len == 0 ? E_EMPTY_KEY : 0;
  begin_write();
  Etcdserverpb__DeleteRangeResponse *out = malloc(sizeof(*out));
  CHECK(out != NULL);
  g_f.resp = &out->base;
  kv_error err = {0};
  if (kv_delete_range(&g_f.w, req, out, &err) < 0) {
    finish_refused(&s0, &err, want);
  } else {
    CHECKV("accepted-invalid", want == 0, "DeleteRange accepted with an empty key");
    m_apply_delete(&g_f.m, req, out);
    finish_accepted(&s0);
  }
  check_response(g_f.resp);
}

/* ------------------------------------------------------------------ Txn */

/* etcd's compare (server/etcdserver/txn: compareKV over the oneof getters). With
 * as_union, the non-value targets read the union regardless of which member is
 * set (how a C reader of protobuf-c's union could see it), to classify a
 * mismatch. */
static bool m_compare_one(const Etcdserverpb__Compare *c, const mch *rec, bool as_union) {
  int cmp;
  if (c->target == ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE) {
    if (!rec) return false;
    bool set = c->target_union_case == ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    cmp = bytes_cmp(rec->val, rec->vallen, set ? c->value.data : NULL, set ? c->value.len : 0);
  } else {
    int64_t have, want;
    Etcdserverpb__Compare__TargetUnionCase need;
    switch (c->target) {
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION:
        have = rec ? rec->version : 0;
        want = c->version;
        need = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE:
        have = rec ? rec->create : 0;
        want = c->create_revision;
        need = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD:
        have = rec ? rec->main : 0;
        want = c->mod_revision;
        need = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
        break;
      case ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE:
        have = rec ? rec->lease : 0;
        want = c->lease;
        need = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
        break;
      default:
        return false;
    }
    if (!as_union && c->target_union_case != need) want = 0; /* Go's GetVersion() etc. */
    cmp = cmp64(have, want);
  }
  switch (c->result) {
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL: return cmp == 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER: return cmp > 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS: return cmp < 0;
    case ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL: return cmp != 0;
    default: return false;
  }
}

/* kv.h: a compare over a range holds when it holds for every key in it; an
 * empty range compares like a missing key. */
static bool m_compare(const model *m, const Etcdserverpb__Compare *c, int64_t at, bool as_union) {
  if (c->range_end.len == 0) {
    long i = m_get(m, c->key.data, c->key.len, at);
    return m_compare_one(c, i >= 0 ? &m->ch[i] : NULL, as_union);
  }
  idxlist live = m_live_range(m, c->key.data, c->key.len, c->range_end.data, c->range_end.len, at);
  bool ok = true;
  for (size_t i = 0; i < live.n && ok; i++) ok = m_compare_one(c, &m->ch[live.v[i]], as_union);
  scratch_pop(live.v);
  return live.n ? ok : m_compare_one(c, NULL, as_union);
}

static bool m_txn_succeeds(const model *m, const Etcdserverpb__TxnRequest *t, int64_t at, bool as_union) {
  for (size_t i = 0; i < t->n_compare; i++)
    if (!m_compare(m, t->compare[i], at, as_union)) return false;
  return true;
}

/* Shape errors anywhere in the tree (both branches), duplicates aside. */
static unsigned m_txn_shape(const Etcdserverpb__TxnRequest *t) {
  unsigned e = 0;
  if (t->n_success > KV_MAX_TXN_OPS || t->n_failure > KV_MAX_TXN_OPS) e |= E_TOO_MANY;
  for (int b = 0; b < 2; b++) {
    Etcdserverpb__RequestOp *const *ops = b ? t->failure : t->success;
    size_t n = b ? t->n_failure : t->n_success;
    for (size_t i = 0; i < n; i++) {
      switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
          if (ops[i]->request_range->key.len == 0) e |= E_EMPTY_KEY;
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
          if (ops[i]->request_put->key.len == 0) e |= E_EMPTY_KEY;
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
          if (ops[i]->request_delete_range->key.len == 0) e |= E_EMPTY_KEY;
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
          e |= m_txn_shape(ops[i]->request_txn);
          break;
        default:
          e |= E_UNKNOWN_OP;
      }
    }
  }
  return e;
}

/* Puts and delete ranges anywhere in the tree, for a conservative duplicate
 * check: a duplicate is possible only if a put key repeats or lies in a
 * deleted range. */
typedef struct opkeys {
  const ProtobufCBinaryData *puts[1024];
  const Etcdserverpb__DeleteRangeRequest *dels[1024];
  size_t nputs, ndels;
  bool overflow;
} opkeys;

static void collect_ops(const Etcdserverpb__TxnRequest *t, opkeys *k) {
  for (int b = 0; b < 2; b++) {
    Etcdserverpb__RequestOp *const *ops = b ? t->failure : t->success;
    size_t n = b ? t->n_failure : t->n_success;
    for (size_t i = 0; i < n; i++) {
      switch (ops[i]->request_case) {
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
          if (k->nputs < 1024)
            k->puts[k->nputs++] = &ops[i]->request_put->key;
          else
            k->overflow = true;
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
          if (k->ndels < 1024)
            k->dels[k->ndels++] = ops[i]->request_delete_range;
          else
            k->overflow = true;
          break;
        case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
          collect_ops(ops[i]->request_txn, k);
          break;
        default:
          break;
      }
    }
  }
}

static bool m_dup_possible(const Etcdserverpb__TxnRequest *t) {
  opkeys *k = scratch(sizeof(*k));
  collect_ops(t, k);
  if (k->overflow) return true;
  for (size_t i = 0; i < k->nputs; i++) {
    for (size_t j = i + 1; j < k->nputs; j++)
      if (bytes_eq(k->puts[i]->data, k->puts[i]->len, k->puts[j]->data, k->puts[j]->len)) return true;
    for (size_t j = 0; j < k->ndels; j++) {
      const Etcdserverpb__DeleteRangeRequest *d = k->dels[j];
      if (in_range(k->puts[i]->data, k->puts[i]->len, d->key.data, d->key.len, d->range_end.data,
                   d->range_end.len))
        return true;
    }
  }
  return false;
}

/* The branch each txn takes, depth-first, all decided before anything is
 * applied (etcd: compares of nested txns see the state before the txn), and
 * the errors on the chosen path: puts' lease and ignore_* rules, ranges'
 * revisions, sort order and target. */
typedef struct mpath {
  bool taken[4096];
  bool as_union_differs;
  size_t n;
  bool overflow;
} mpath;

static unsigned m_txn_path(const model *m, const Etcdserverpb__TxnRequest *t, mpath *p) {
  int64_t at = m_view(m);
  bool ok = m_txn_succeeds(m, t, at, false);
  if (ok != m_txn_succeeds(m, t, at, true)) p->as_union_differs = true;
  if (p->n == sizeof(p->taken) / sizeof(p->taken[0])) {
    p->overflow = true;
    return 0;
  }
  p->taken[p->n++] = ok;
  Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  unsigned e = 0;
  for (size_t i = 0; i < n; i++) {
    switch (ops[i]->request_case) {
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        e |= m_put_error(m, ops[i]->request_put);
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        e |= m_range_errors(m, ops[i]->request_range, at);
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        e |= m_txn_path(m, ops[i]->request_txn, p);
        break;
      default:
        break;
    }
  }
  return e;
}

static void check_header(const Etcdserverpb__ResponseHeader *h, int64_t rev, const char *what) {
  CHECKV("response-mismatch", h != NULL && h->revision == rev, "%s: header revision %lld, model %lld",
         what, h ? (long long)h->revision : -1LL, (long long)rev);
}

static bool g_union_note; /* the txn's compares read differently through the union */

static void m_apply_txn(model *m, const Etcdserverpb__TxnRequest *t, const mpath *p, size_t *pos,
                        const Etcdserverpb__TxnResponse *out) {
  CHECK(*pos < p->n);
  bool ok = p->taken[(*pos)++];
  CHECKV("txn-branch-mismatch", (bool)out->succeeded == ok,
         "txn took the %s branch, the model (etcd's compare rules) the %s one%s",
         out->succeeded ? "success" : "failure", ok ? "success" : "failure",
         g_union_note ? " (a Compare sets a target_union member other than its target's: etcd reads "
                        "the target's value as 0; kv.c before a591e6d read the union member)"
                      : "");
  Etcdserverpb__RequestOp *const *ops = ok ? t->success : t->failure;
  size_t n = ok ? t->n_success : t->n_failure;
  CHECKV("response-mismatch", out->n_responses == n, "txn: %zu responses for %zu ops", out->n_responses, n);
  for (size_t i = 0; i < n; i++) {
    const Etcdserverpb__ResponseOp *r = out->responses[i];
    CHECK(r != NULL);
    switch (ops[i]->request_case) {
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE:
        CHECKV("response-mismatch", r->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE,
               "txn op %zu: response type %d", i, (int)r->response_case);
        m_check_range(m, ops[i]->request_range, m_view(m), r->response_range, "Txn range");
        check_header(r->response_range->header, m_view(m), "Txn range");
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT:
        CHECKV("response-mismatch", r->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_PUT,
               "txn op %zu: response type %d", i, (int)r->response_case);
        m_apply_put(m, ops[i]->request_put, r->response_put);
        check_header(r->response_put->header, m_view(m), "Txn put");
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
        CHECKV("response-mismatch",
               r->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE,
               "txn op %zu: response type %d", i, (int)r->response_case);
        m_apply_delete(m, ops[i]->request_delete_range, r->response_delete_range);
        check_header(r->response_delete_range->header, m_view(m), "Txn delete");
        break;
      case ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN:
        CHECKV("response-mismatch", r->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_TXN,
               "txn op %zu: response type %d", i, (int)r->response_case);
        check_header(r->response_txn->header, 0, "nested txn");
        m_apply_txn(m, ops[i]->request_txn, p, pos, r->response_txn);
        break;
      default:
        CHECK(0);
    }
  }
}

static void apply_txn(const Etcdserverpb__TxnRequest *req) {
  state0 s0 = snap_state();
  unsigned shape = m_txn_shape(req);
  mpath *path = scratch(sizeof(*path));
  unsigned perr = m_txn_path(&g_f.m, req, path);
  if (path->overflow) return; /* deeper than the model follows */
  unsigned want = shape | perr;
  unsigned allowed = want | (m_dup_possible(req) ? E_DUPLICATE : 0);
  g_union_note = path->as_union_differs;
  begin_write();
  Etcdserverpb__TxnResponse *out = malloc(sizeof(*out));
  CHECK(out != NULL);
  g_f.resp = &out->base;
  kv_error err = {0};
  if (kv_txn(&g_f.w, req, out, &err) < 0) {
    if ((want & (E_SORT_ORDER | E_SORT_TARGET)) && err.message &&
        strcmp(err.message, "etcdserver: out of memory") == 0) {
      g_blame = "txn-range-sort";
      g_blame_why =
          "a range op on the txn's chosen path has an out-of-range sort_order/sort_target: "
          "choose_path does not check them, apply_txn's kv_range then fails and kv_txn reports it as "
          "RESOURCE_EXHAUSTED \"etcdserver: out of memory\" after applying the ops before it";
    }
    finish_refused(&s0, &err, allowed);
    if (!want)
      CHECKV("unexpected-error", err_bit(&err) == E_DUPLICATE,
             "Txn refused with \"%s\"; the model finds nothing wrong", err.message);
  } else {
    CHECKV("accepted-invalid", want == 0, "Txn accepted; the model refuses it: %s", bits_str(want));
    size_t pos = 0;
    m_apply_txn(&g_f.m, req, path, &pos, out);
    CHECK(pos == path->n);
    finish_accepted(&s0);
  }
  check_response(g_f.resp);
}

/* ------------------------------------------------------------------ Compaction */

static void apply_compact(const Etcdserverpb__CompactionRequest *req) {
  state0 s0 = snap_state();
  model *m = &g_f.m;
  int64_t rev = req->revision;
  unsigned want = 0;
  if (rev <= m->compact && !(m->compact == 0 && rev <= 0))
    want = E_COMPACTED;
  else if (rev > m->rev)
    want = E_FUTURE;
  kv_error err = {0};
  if (kv_compact_check(g_f.kv, rev, &err) < 0) {
    finish_refused(&s0, &err, want);
    CHECK(err_bit(&err) == want);
    return;
  }
  CHECKV("accepted-invalid", want == 0, "Compaction at %lld accepted; the model: %s", (long long)rev,
         bits_str(want));
  if (rev > 0) {
    kv_compact(g_f.kv, rev);
    m->compact = rev;
    if (g_req_type >= 0) g_stats.compactions++;
  }
  CHECKV("revision-order", kv_rev(g_f.kv) == s0.rev && kv_compact_rev(g_f.kv) == m->compact,
         "after Compaction(%lld): rev %lld (was %lld), compacted %lld (model %lld)", (long long)rev,
         (long long)kv_rev(g_f.kv), (long long)s0.rev, (long long)kv_compact_rev(g_f.kv),
         (long long)m->compact);
  STAT(accepted);
}

/* ------------------------------------------------------------------ leases (store.c's apply) */

static void apply_lease_grant(const Etcdserverpb__LeaseGrantRequest *req) {
  model *m = &g_f.m;
  state0 s0 = snap_state();
  int64_t id = req->id ? req->id : lessor_next_id(g_f.ls);
  if (!req->id) CHECKV("lease-mismatch", id > 0 && !m_lease_has(m, id), "lessor_next_id gave %lld", (long long)id);
  int64_t ttl = req->ttl < LESSOR_MIN_TTL ? LESSOR_MIN_TTL : req->ttl;
  int want = ttl > LESSOR_MAX_TTL ? -ERANGE : m_lease_has(m, id) ? -EEXIST : 0;
  int g = lessor_grant(g_f.ls, id, ttl, 0);
  CHECKV("lease-mismatch", g == want, "lessor_grant(%lld, ttl %lld) = %d, model %d", (long long)id,
         (long long)ttl, g, want);
  if (g == 0) {
    m_lease_add(m, id);
    STAT(accepted);
  } else {
    STAT(refused);
  }
  CHECK(kv_rev(g_f.kv) == s0.rev); /* a grant takes no revision */
}

static void apply_lease_revoke(const Etcdserverpb__LeaseRevokeRequest *req) {
  model *m = &g_f.m;
  state0 s0 = snap_state();
  int v = lessor_revoke(g_f.ls, req->id, &g_f.keys);
  CHECKV("lease-mismatch", (v == 0) == m_lease_has(m, req->id), "lessor_revoke(%lld) = %d, model %s",
         (long long)req->id, v, m_lease_has(m, req->id) ? "has it" : "has not");
  if (v < 0) {
    STAT(refused);
    return;
  }
  /* The keys handed back are exactly the live keys carrying the lease, sorted. */
  idxlist live = m_live_range(m, (const uint8_t *)"", 0, (const uint8_t *)"", 1, m->rev);
  size_t nk = 0;
  for (size_t i = 0; i < live.n; i++) {
    const mch *c = &m->ch[live.v[i]];
    if (c->lease != req->id) continue;
    CHECKV("lease-keys-mismatch",
           nk < g_f.keys.n && bytes_eq(g_f.keys.keys[nk].key, g_f.keys.keys[nk].len, c->key, c->keylen),
           "revoke of %lld: lessor key %zu differs from the model's live key %.*s", (long long)req->id, nk,
           (int)c->keylen, (const char *)c->key);
    nk++;
  }
  CHECKV("lease-keys-mismatch", nk == g_f.keys.n, "revoke of %lld: the lessor had %zu keys, the model %zu",
         (long long)req->id, g_f.keys.n, nk);
  m_lease_remove(m, req->id);
  begin_write();
  const uint8_t **kp = scratch((g_f.keys.n + 1) * sizeof(*kp));
  size_t *kl = scratch((g_f.keys.n + 1) * sizeof(*kl));
  for (size_t i = 0; i < g_f.keys.n; i++) {
    kp[i] = g_f.keys.keys[i].key;
    kl[i] = g_f.keys.keys[i].len;
    long live_i = m_get(m, kp[i], kl[i], m_view(m));
    CHECK(live_i >= 0);
    m_append(m, true, kp[i], kl[i], NULL, 0, 0);
  }
  CHECK(kv_delete_keys(&g_f.w, kp, kl, g_f.keys.n) == 0);
  finish_accepted(&s0);
}

/* ------------------------------------------------------------------ Watch: history replay */

typedef struct hist {
  const uint8_t *key, *end;
  size_t keylen, endlen;
  size_t *want; /* model change indexes expected, in order */
  size_t nwant, pos;
  const char *what;
} hist;

NO_COV static int hist_visit(void *arg, mvcc_revision rev, const kv_record *rec) {
  hist *h = arg;
  if (h->key && !kv_in_range(kv_record_key(rec), rec->key_len, h->key, h->keylen, h->end, h->endlen))
    return 0;
  const model *m = &g_f.m;
  CHECKV("history-mismatch", h->pos < h->nwant,
         "%s: the revision store has an extra record %lld.%lld %s %.*s", h->what, (long long)rev.main,
         (long long)rev.sub, rec->tombstone ? "delete" : "put", (int)rec->key_len,
         (const char *)kv_record_key(rec));
  const mch *c = &m->ch[h->want[h->pos]];
  CHECKV("history-mismatch",
         rev.main == c->main && rev.sub == c->sub && rec->tombstone == c->del &&
             bytes_eq(kv_record_key(rec), rec->key_len, c->key, c->keylen),
         "%s: record %zu is %lld.%lld %s %.*s, the model's %lld.%lld %s %.*s", h->what, h->pos,
         (long long)rev.main, (long long)rev.sub, rec->tombstone ? "delete" : "put", (int)rec->key_len,
         (const char *)kv_record_key(rec), (long long)c->main, (long long)c->sub,
         c->del ? "delete" : "put", (int)c->keylen, (const char *)c->key);
  CHECKV("history-mismatch",
         bytes_eq(kv_record_value(rec), rec->value_len, c->val, c->vallen) && rec->lease == c->lease &&
             rec->create_revision == c->create && rec->version == c->version,
         "%s: record %lld.%lld of %.*s: value/lease/create/version differ from the model", h->what,
         (long long)rev.main, (long long)rev.sub, (int)c->keylen, (const char *)c->key);
  h->pos++;
  return 0;
}

/* Replays [from, to] through revstore_each (filtered to the range when key is
 * set) and compares it with the model's kept changes there. */
NO_COV static void check_history(const uint8_t *key, size_t keylen, const uint8_t *end, size_t endlen,
                          int64_t from, int64_t to, const char *what) {
  const model *m = &g_f.m;
  hist h = {.key = key, .end = end, .keylen = keylen, .endlen = endlen, .what = what};
  h.want = scratch(m->n * sizeof(size_t));
  for (size_t i = 0; i < m->n; i++) {
    const mch *c = &m->ch[i];
    if (c->main < from || c->main > to || !m_kept(m, i)) continue;
    if (key && !in_range(c->key, c->keylen, key, keylen, end, endlen)) continue;
    h.want[h.nwant++] = i;
  }
  revstore_each(kv_revstore(g_f.kv), from - 1, to, hist_visit, &h);
  CHECKV("history-mismatch", h.pos == h.nwant, "%s: the revision store lacks %zu of the model's records "
         "(first missing: %lld.%lld %.*s)", what, h.nwant - h.pos,
         h.pos < h.nwant ? (long long)m->ch[h.want[h.pos]].main : 0LL,
         h.pos < h.nwant ? (long long)m->ch[h.want[h.pos]].sub : 0LL,
         h.pos < h.nwant ? (int)m->ch[h.want[h.pos]].keylen : 0,
         h.pos < h.nwant ? (const char *)m->ch[h.want[h.pos]].key : "");
}

static void apply_watch(const Etcdserverpb__WatchRequest *req) {
  if (req->request_union_case != ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST ||
      !req->create_request) {
    STAT(accepted); /* cancel / progress: nothing in the engine */
    return;
  }
  const Etcdserverpb__WatchCreateRequest *cr = req->create_request;
  const model *m = &g_f.m;
  int64_t from = cr->start_revision, cur = kv_rev(g_f.kv);
  /* store_history: a start below the compacted revision is compacted; at it, served. */
  if (from > 0 && from < kv_compact_rev(g_f.kv)) {
    CHECK(from < m->compact);
    STAT(refused);
    return;
  }
  if (from > 0 && from <= cur) {
    check_history(cr->key.data, cr->key.len, cr->range_end.data, cr->range_end.len, from, cur, "Watch replay");
    if (cr->prev_kv) {
      /* Each event's prev_kv (store.c's fill_event: the key as of main - 1). */
      for (size_t i = 0; i < m->n; i++) {
        const mch *c = &m->ch[i];
        if (c->main < from || c->main - 1 < m->compact || c->main - 1 < 1) continue;
        if (!in_range(c->key, c->keylen, cr->key.data, cr->key.len, cr->range_end.data, cr->range_end.len))
          continue;
        mvcc_revision pm = {0, 0};
        const kv_record *prev = kv_live(g_f.kv, c->key, c->keylen, c->main - 1, &pm);
        long mi = m_get(m, c->key, c->keylen, c->main - 1);
        CHECKV("history-mismatch", (prev != NULL) == (mi >= 0) && (!prev || pm.main == m->ch[mi].main),
               "Watch prev_kv of %.*s at %lld: engine %s (mod %lld), model %s", (int)c->keylen,
               (const char *)c->key, (long long)c->main, prev ? "live" : "absent", (long long)pm.main,
               mi >= 0 ? "live" : "absent");
      }
    }
  }
  STAT(accepted);
}

/* ------------------------------------------------------------------ audit after every request */

static void audit_range_at(int64_t rev) {
  static const uint8_t zero = 0;
  Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
  r.key = (ProtobufCBinaryData){1, (uint8_t *)&zero};
  r.range_end = (ProtobufCBinaryData){1, (uint8_t *)&zero};
  r.revision = rev;
  Etcdserverpb__RangeResponse *out = malloc(sizeof(*out));
  CHECK(out != NULL);
  kv_error err = {0};
  CHECK(g_f.resp == NULL);
  g_f.resp = &out->base; /* freed by end_request */
  int rc = kv_range(g_f.kv, &r, kv_rev(g_f.kv), out, &err);
  CHECKV("range-mismatch", rc == 0, "audit: full range at %lld refused: %s", (long long)rev,
         err.message ? err.message : "?");
  char what[64];
  snprintf(what, sizeof(what), "audit: full range at %lld", (long long)rev);
  m_check_range(&g_f.m, &r, kv_rev(g_f.kv), out, what);
  protobuf_c_message_free_unpacked(&out->base, NULL);
  g_f.resp = NULL;
}

/* Revisions always; with full, the store's contents and the leases too. */
static void audit(int64_t rev_before, bool full) {
  model *m = &g_f.m;
  int64_t rev = kv_rev(g_f.kv);
  CHECKV("revision-order", rev >= g_f.last_rev, "kv_rev went back from %lld to %lld",
         (long long)g_f.last_rev, (long long)rev);
  g_f.last_rev = rev;
  CHECKV("revision-order", rev == m->rev && kv_compact_rev(g_f.kv) == m->compact,
         "kv_rev %lld / compacted %lld, model %lld / %lld", (long long)rev,
         (long long)kv_compact_rev(g_f.kv), (long long)m->rev, (long long)m->compact);
  CHECKV("lease-mismatch", lessor_count(g_f.ls) == m->nleases, "lessor has %zu leases, model %zu",
         lessor_count(g_f.ls), m->nleases);
  if (!full) return;
  audit_range_at(0);
  if (rev_before >= m->compact && rev_before >= 1 && rev_before != rev) audit_range_at(rev_before);
  if (m->compact > 0 && m->compact != rev && m->compact != rev_before) audit_range_at(m->compact);
  check_history(NULL, 0, NULL, 0, 0, INT64_MAX, "audit: revision store");
  /* Leases: the lessor's key sets are the live keys carrying each lease. */
  CHECKV("lease-mismatch", lessor_verify(g_f.ls) == 0, "lessor_verify failed");
  idxlist live = m_live_range(m, (const uint8_t *)"", 0, (const uint8_t *)"", 1, m->rev);
  for (size_t li = 0; li < m->nleases; li++) {
    int64_t id = m->leases[li];
    lessor_keys keys = {0};
    int64_t granted = 0, remaining = 0;
    CHECKV("lease-mismatch", lessor_time_to_live(g_f.ls, id, 0, &granted, &remaining, &keys) == 0,
           "lease %lld unknown to the lessor", (long long)id);
    size_t nk = 0;
    bool same = true;
    for (size_t i = 0; i < live.n && same; i++) {
      const mch *c = &m->ch[live.v[i]];
      if (c->lease != id) continue;
      same = nk < keys.n && bytes_eq(keys.keys[nk].key, keys.keys[nk].len, c->key, c->keylen);
      nk++;
    }
    same = same && nk == keys.n;
    size_t lessor_n = keys.n;
    lessor_keys_free(&keys);
    CHECKV("lease-keys-mismatch", same,
           "lease %lld: the lessor has %zu attached keys, the model %zu live keys with that lease "
           "(or they differ)",
           (long long)id, lessor_n, nk);
  }
}

/* ------------------------------------------------------------------ dispatch */

static bool g_full_audited; /* the store was fully audited since the last change */

static void apply_message(int type, const ProtobufCMessage *msg) {
  int64_t before = kv_rev(g_f.kv);
  state0 s0 = snap_state();
  size_t leases0 = lessor_count(g_f.ls);
  switch (type) {
    case T_RANGE: apply_range((const Etcdserverpb__RangeRequest *)msg); break;
    case T_PUT: apply_put((const Etcdserverpb__PutRequest *)msg); break;
    case T_DELETE: apply_delete((const Etcdserverpb__DeleteRangeRequest *)msg); break;
    case T_TXN: apply_txn((const Etcdserverpb__TxnRequest *)msg); break;
    case T_COMPACT: apply_compact((const Etcdserverpb__CompactionRequest *)msg); break;
    case T_LEASE_GRANT: apply_lease_grant((const Etcdserverpb__LeaseGrantRequest *)msg); break;
    case T_LEASE_REVOKE: apply_lease_revoke((const Etcdserverpb__LeaseRevokeRequest *)msg); break;
    case T_WATCH: apply_watch((const Etcdserverpb__WatchRequest *)msg); break;
  }
  end_request();
  /* The seeded store is the same for every input: audited once, when built. */
  if (g_req_type >= 0) {
    state0 s1 = snap_state();
    bool changed = s1.rev != s0.rev || s1.compact != s0.compact || s1.records != s0.records ||
                   s1.keys != s0.keys || s1.bytes != s0.bytes || lessor_count(g_f.ls) != leases0;
    audit(before, changed);
    g_full_audited = changed;
    end_request();
  }
}

static void apply_bytes(int type, const uint8_t *p, size_t n) {
  g_stats.requests[type]++;
  g_req_type = type;
  ProtobufCMessage *msg = decode(request_fuzz_descriptors[type], p, n);
  if (!msg) {
    g_stats.undecodable[type]++;
    return;
  }
  apply_message(type, msg);
}

/* ------------------------------------------------------------------ the seeded store */

static bool hook_exists(void *arg, int64_t id) { return lessor_exists(arg, id); }
static void hook_attach(void *arg, int64_t id, const uint8_t *k, size_t kl) { lessor_attach(arg, id, k, kl); }
static void hook_detach(void *arg, int64_t id, const uint8_t *k, size_t kl) { lessor_detach(arg, id, k, kl); }

#define BIN(s) ((ProtobufCBinaryData){sizeof(s) - 1, (uint8_t *)(s)})

static void seed_put(const char *k, const char *v, int64_t lease) {
  Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
  r.key = (ProtobufCBinaryData){strlen(k), (uint8_t *)k};
  r.value = (ProtobufCBinaryData){strlen(v), (uint8_t *)v};
  r.lease = lease;
  apply_message(T_PUT, &r.base);
}

static void seed_grant(int64_t id) {
  Etcdserverpb__LeaseGrantRequest r = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
  r.id = id;
  r.ttl = 60;
  apply_message(T_LEASE_GRANT, &r.base);
}

/* 100 keys in one txn; lease 9 on every tenth when it exists. */
#define LARGE_KEYS 100
static void seed_large(uint8_t flags) {
  static Etcdserverpb__PutRequest puts[LARGE_KEYS];
  static Etcdserverpb__RequestOp ops[LARGE_KEYS];
  static Etcdserverpb__RequestOp *ptrs[LARGE_KEYS];
  static char keys[LARGE_KEYS][40];
  for (int i = 0; i < LARGE_KEYS; i++) {
    puts[i] = (Etcdserverpb__PutRequest)ETCDSERVERPB__PUT_REQUEST__INIT;
    int n = i < 70 ? snprintf(keys[i], sizeof(keys[i]), "/registry/pods/default/p%02d", i)
                   : snprintf(keys[i], sizeof(keys[i]), "/registry/svc/s%02d", i - 70);
    puts[i].key = (ProtobufCBinaryData){(size_t)n, (uint8_t *)keys[i]};
    puts[i].value = (ProtobufCBinaryData){(size_t)n - 10, (uint8_t *)keys[i] + 10};
    puts[i].lease = (i % 10 == 0 && !(flags & FLAG_EMPTY)) ? 9 : 0;
    ops[i] = (Etcdserverpb__RequestOp)ETCDSERVERPB__REQUEST_OP__INIT;
    ops[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
    ops[i].request_put = &puts[i];
    ptrs[i] = &ops[i];
  }
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.success = ptrs;
  t.n_success = LARGE_KEYS;
  apply_message(T_TXN, &t.base);
}

/* g_fast_seed: this store variant was verified once; its seeding is not re-checked. */

static void seed_store(uint8_t flags) {
  static bool audited[4];
  int variant = ((flags & FLAG_COMPACTED) != 0) | ((flags & FLAG_LARGE) != 0) << 1;
  if (flags & FLAG_EMPTY) variant = 0;
  g_fast_seed = audited[variant] && !(flags & FLAG_EMPTY);
  g_f.kv = kv_create();
  g_f.ls = lessor_create();
  if (!g_f.kv || !g_f.ls) abort();
  lessor_seed(g_f.ls, 42);
  kv_lease_hooks hooks = {hook_exists, hook_attach, hook_detach, g_f.ls};
  kv_set_lease_hooks(g_f.kv, &hooks);
  g_f.m.rev = kv_rev(g_f.kv);
  g_f.last_rev = g_f.m.rev;
  g_req_type = -1;
  if (flags & FLAG_EMPTY) {
    if (flags & FLAG_LARGE) seed_large(flags);
    return;
  }
  seed_grant(7);
  seed_grant(8);
  seed_grant(9);
  seed_put("a", "1", 0);  /* 2 */
  seed_put("b", "2", 7);  /* 3 */
  seed_put("a", "3", 0);  /* 4 */
  seed_put("c/x", "4", 0); /* 5 */
  Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
  d.key = BIN("b");
  apply_message(T_DELETE, &d.base); /* 6 */
  Etcdserverpb__PutRequest p1 = ETCDSERVERPB__PUT_REQUEST__INIT, p2 = ETCDSERVERPB__PUT_REQUEST__INIT;
  p1.key = BIN("c/y");
  p1.value = BIN("5");
  p2.key = BIN("d");
  p2.lease = 8;
  Etcdserverpb__RequestOp o1 = ETCDSERVERPB__REQUEST_OP__INIT, o2 = ETCDSERVERPB__REQUEST_OP__INIT;
  o1.request_case = o2.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  o1.request_put = &p1;
  o2.request_put = &p2;
  Etcdserverpb__RequestOp *ops[2] = {&o1, &o2};
  Etcdserverpb__TxnRequest t = ETCDSERVERPB__TXN_REQUEST__INIT;
  t.success = ops;
  t.n_success = 2;
  apply_message(T_TXN, &t.base); /* 7 */
  seed_put("b", "6", 7);    /* 8 */
  seed_put("c/x", "44", 0); /* 9 */
  if (flags & FLAG_COMPACTED) {
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = 5;
    apply_message(T_COMPACT, &c.base);
  }
  if (flags & FLAG_LARGE) seed_large(flags);
  if (!audited[variant]) {
    audited[variant] = true;
    audit(1, true);
    end_request();
  }
  g_fast_seed = false;
}

static void teardown(void) {
  end_request();
  kv_destroy(g_f.kv);
  lessor_destroy(g_f.ls);
  m_free(&g_f.m);
  free(g_f.scratch);
  memset(&g_f, 0, sizeof(g_f));
}

/* ------------------------------------------------------------------ entry points */

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  load_tolerated();
  atexit(print_stats);
  const char *seeds = getenv("KEEL_REQUEST_FUZZ_SEEDS");
  if (seeds && *seeds) request_fuzz_write_seeds(seeds);
  return 0;
}

static void run_input(const uint8_t *data, size_t size) {
  uint8_t head = data[0];
  seed_store(head);
  g_full_audited = true;
  data++;
  size--;
  if (!(head & FLAG_SEQUENCE)) {
    g_req_index = 0;
    apply_bytes(head & 7, data, size);
  } else {
    for (int i = 0; i < MAX_SEQUENCE && size >= 2; i++) {
      size_t len = data[1] < size - 2 ? data[1] : size - 2;
      g_req_index = i;
      apply_bytes(data[0] & 7, data + 2, len);
      data += 2 + len;
      size -= 2 + len;
    }
  }
  /* Reads and refusals are audited in full once, at the end of the input. */
  if (!g_full_audited) {
    g_req_index = -1;
    g_req_type = -1;
    audit(kv_rev(g_f.kv), true);
    end_request();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > FUZZ_MAX_INPUT) return 0;
  g_stats.inputs++;
  g_in_input = true;
  g_req_index = -1;
  g_req_type = -1;
  if (setjmp(g_bail) == 0) run_input(data, size); /* else: a tolerated violation dropped it */
  teardown();
  g_in_input = false;
  return 0;
}

/* ------------------------------------------------------------------ seeds */

typedef void (*emit_fn)(void *arg, const uint8_t *d, size_t n);

static size_t pack_into(const ProtobufCMessage *msg, uint8_t *buf, size_t cap) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > cap) abort();
  return protobuf_c_message_pack(msg, buf);
}

static void emit_single(emit_fn fn, void *arg, int type, const ProtobufCMessage *msg) {
  uint8_t buf[4096];
  size_t n = pack_into(msg, buf + 1, sizeof(buf) - 1);
  static const uint8_t variants[4] = {0, FLAG_COMPACTED, FLAG_EMPTY, FLAG_LARGE | FLAG_COMPACTED};
  for (int v = 0; v < 4; v++) {
    buf[0] = (uint8_t)(type | variants[v]);
    fn(arg, buf, n + 1);
  }
}

typedef struct seq {
  uint8_t buf[4096];
  size_t n;
} seq;

static void seq_add(seq *s, int type, const ProtobufCMessage *msg) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  if (n > 255 || s->n + 2 + n > sizeof(s->buf)) abort();
  s->buf[s->n++] = (uint8_t)type;
  s->buf[s->n++] = (uint8_t)n;
  s->n += protobuf_c_message_pack(msg, s->buf + s->n);
}

static Etcdserverpb__RequestOp op_put(Etcdserverpb__PutRequest *p) {
  Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
  o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
  o.request_put = p;
  return o;
}
static Etcdserverpb__RequestOp op_range(Etcdserverpb__RangeRequest *r) {
  Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
  o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
  o.request_range = r;
  return o;
}
static Etcdserverpb__RequestOp op_delete(Etcdserverpb__DeleteRangeRequest *d) {
  Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
  o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
  o.request_delete_range = d;
  return o;
}
static Etcdserverpb__RequestOp op_txn(Etcdserverpb__TxnRequest *t) {
  Etcdserverpb__RequestOp o = ETCDSERVERPB__REQUEST_OP__INIT;
  o.request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN;
  o.request_txn = t;
  return o;
}

void request_fuzz_seeds(emit_fn fn, void *arg) {
  /* Range */
  {
    Etcdserverpb__RangeRequest r[8];
    for (int i = 0; i < 8; i++) r[i] = (Etcdserverpb__RangeRequest)ETCDSERVERPB__RANGE_REQUEST__INIT;
    r[0].key = BIN("a");
    r[1].key = BIN("a");
    r[1].range_end = BIN("\0");
    r[2].key = BIN("\0");
    r[2].range_end = BIN("\0");
    r[2].revision = 3;
    r[3].key = BIN("a");
    r[3].range_end = BIN("z");
    r[3].limit = 2;
    r[3].sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    r[3].sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__MOD;
    r[4].key = BIN("c/");
    r[4].range_end = BIN("c0");
    r[4].count_only = true;
    r[5].key = BIN("c/");
    r[5].range_end = BIN("c0");
    r[5].keys_only = true;
    r[5].min_mod_revision = 6;
    r[5].sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VALUE;
    r[6].key = BIN("a");
    r[6].revision = 100;
    r[7].key = BIN("\0");
    r[7].range_end = BIN("\0");
    r[7].revision = 2;
    r[7].max_create_revision = 5;
    r[7].sort_target = ETCDSERVERPB__RANGE_REQUEST__SORT_TARGET__VERSION;
    for (int i = 0; i < 8; i++) emit_single(fn, arg, T_RANGE, &r[i].base);
  }
  /* Put */
  {
    Etcdserverpb__PutRequest p[6];
    for (int i = 0; i < 6; i++) p[i] = (Etcdserverpb__PutRequest)ETCDSERVERPB__PUT_REQUEST__INIT;
    p[0].key = BIN("a");
    p[0].value = BIN("x");
    p[1].key = BIN("b");
    p[1].value = BIN("y");
    p[1].lease = 8;
    p[1].prev_kv = true;
    p[2].key = BIN("a");
    p[2].ignore_value = true;
    p[2].lease = 9;
    p[3].key = BIN("b");
    p[3].value = BIN("z");
    p[3].ignore_lease = true;
    p[4].key = BIN("e");
    p[4].lease = 99;
    p[5].key = BIN("d");
    p[5].value = BIN("new");
    p[5].prev_kv = true;
    for (int i = 0; i < 6; i++) emit_single(fn, arg, T_PUT, &p[i].base);
  }
  /* DeleteRange */
  {
    Etcdserverpb__DeleteRangeRequest d[4];
    for (int i = 0; i < 4; i++) d[i] = (Etcdserverpb__DeleteRangeRequest)ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d[0].key = BIN("a");
    d[1].key = BIN("c/");
    d[1].range_end = BIN("c0");
    d[1].prev_kv = true;
    d[2].key = BIN("\0");
    d[2].range_end = BIN("\0");
    d[3].key = BIN("zz");
    for (int i = 0; i < 4; i++) emit_single(fn, arg, T_DELETE, &d[i].base);
  }
  /* Txn */
  {
    Etcdserverpb__Compare c[4];
    for (int i = 0; i < 4; i++) c[i] = (Etcdserverpb__Compare)ETCDSERVERPB__COMPARE__INIT;
    c[0].key = BIN("a");
    c[0].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION;
    c[0].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
    c[0].version = 2;
    c[1].key = BIN("c/");
    c[1].range_end = BIN("c0");
    c[1].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD;
    c[1].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER;
    c[1].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
    c[1].mod_revision = 4;
    c[2].key = BIN("b");
    c[2].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE;
    c[2].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
    c[2].value = BIN("6");
    c[3].key = BIN("d");
    c[3].target = ETCDSERVERPB__COMPARE__COMPARE_TARGET__LEASE;
    c[3].result = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL;
    c[3].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_LEASE;
    c[3].lease = 7;
    Etcdserverpb__PutRequest pa = ETCDSERVERPB__PUT_REQUEST__INIT, pe = ETCDSERVERPB__PUT_REQUEST__INIT;
    pa.key = BIN("a");
    pa.value = BIN("t");
    pa.prev_kv = true;
    pe.key = BIN("e");
    pe.value = BIN("u");
    pe.lease = 9;
    Etcdserverpb__RangeRequest ra = ETCDSERVERPB__RANGE_REQUEST__INIT, rall = ETCDSERVERPB__RANGE_REQUEST__INIT;
    ra.key = BIN("a");
    rall.key = BIN("\0");
    rall.range_end = BIN("\0");
    Etcdserverpb__DeleteRangeRequest dc = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    dc.key = BIN("c/");
    dc.range_end = BIN("c0");
    dc.prev_kv = true;
    Etcdserverpb__Compare *cs1[1] = {&c[0]}, *cs2[3] = {&c[1], &c[2], &c[3]};
    Etcdserverpb__RequestOp o_pa = op_put(&pa), o_pe = op_put(&pe), o_ra = op_range(&ra),
                            o_rall = op_range(&rall), o_dc = op_delete(&dc);
    Etcdserverpb__RequestOp *s1[3] = {&o_pa, &o_rall, &o_pe}, *f1[1] = {&o_ra};
    Etcdserverpb__TxnRequest t1 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t1.compare = cs1;
    t1.n_compare = 1;
    t1.success = s1;
    t1.n_success = 3;
    t1.failure = f1;
    t1.n_failure = 1;
    emit_single(fn, arg, T_TXN, &t1.base);
    /* Nested: the inner txn's compares see the state before the outer one. */
    Etcdserverpb__RequestOp o_t1 = op_txn(&t1);
    Etcdserverpb__RequestOp *s2[3] = {&o_dc, &o_t1, &o_rall};
    Etcdserverpb__TxnRequest t2 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t2.compare = cs2;
    t2.n_compare = 3;
    t2.success = s2;
    t2.n_success = 3;
    t2.failure = s1;
    t2.n_failure = 2;
    emit_single(fn, arg, T_TXN, &t2.base);
    /* A read-only txn, and one refused (put of a missing lease on the chosen path). */
    Etcdserverpb__RequestOp *s3[2] = {&o_ra, &o_rall};
    Etcdserverpb__TxnRequest t3 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t3.success = s3;
    t3.n_success = 2;
    emit_single(fn, arg, T_TXN, &t3.base);
    pe.lease = 1234;
    emit_single(fn, arg, T_TXN, &t1.base);
    /* Deletes inside a nested txn, after and before outer puts. */
    Etcdserverpb__DeleteRangeRequest da = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    da.key = BIN("a");
    da.prev_kv = true;
    Etcdserverpb__RequestOp o_da = op_delete(&da);
    Etcdserverpb__RequestOp *s5[1] = {&o_dc}, *f5[1] = {&o_da};
    Etcdserverpb__TxnRequest t5 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t5.compare = cs1;
    t5.n_compare = 1;
    t5.success = s5;
    t5.n_success = 1;
    t5.failure = f5;
    t5.n_failure = 1;
    pe.lease = 9;
    Etcdserverpb__RequestOp o_t5 = op_txn(&t5);
    Etcdserverpb__RequestOp *s6[3] = {&o_pe, &o_t5, &o_ra};
    Etcdserverpb__TxnRequest t6 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t6.success = s6;
    t6.n_success = 3;
    emit_single(fn, arg, T_TXN, &t6.base);
    /* One op more than a branch may have. */
    Etcdserverpb__RequestOp *many[KV_MAX_TXN_OPS + 1];
    for (int i = 0; i <= KV_MAX_TXN_OPS; i++) many[i] = &o_ra;
    Etcdserverpb__TxnRequest t7 = ETCDSERVERPB__TXN_REQUEST__INIT;
    t7.failure = many;
    t7.n_failure = KV_MAX_TXN_OPS + 1;
    emit_single(fn, arg, T_TXN, &t7.base);
  }
  /* Compaction */
  {
    static const int64_t revs[5] = {4, 9, 0, 100, 5};
    for (int i = 0; i < 5; i++) {
      Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
      c.revision = revs[i];
      emit_single(fn, arg, T_COMPACT, &c.base);
    }
  }
  /* Leases */
  {
    static const int64_t grants[4][2] = {{0, 10}, {7, 10}, {42, 5}, {43, LESSOR_MAX_TTL + 1}};
    for (int i = 0; i < 4; i++) {
      Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
      g.id = grants[i][0];
      g.ttl = grants[i][1];
      emit_single(fn, arg, T_LEASE_GRANT, &g.base);
    }
    static const int64_t revokes[3] = {7, 9, 1234};
    for (int i = 0; i < 3; i++) {
      Etcdserverpb__LeaseRevokeRequest r = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
      r.id = revokes[i];
      emit_single(fn, arg, T_LEASE_REVOKE, &r.base);
    }
  }
  /* Watch */
  {
    Etcdserverpb__WatchCreateRequest w[3];
    for (int i = 0; i < 3; i++) w[i] = (Etcdserverpb__WatchCreateRequest)ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    w[0].key = BIN("a");
    w[0].start_revision = 2;
    w[1].key = BIN("\0");
    w[1].range_end = BIN("\0");
    w[1].start_revision = 1;
    w[1].prev_kv = true;
    w[2].key = BIN("c/");
    w[2].range_end = BIN("c0");
    w[2].start_revision = 5;
    w[2].prev_kv = true;
    for (int i = 0; i < 3; i++) {
      Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
      r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
      r.create_request = &w[i];
      emit_single(fn, arg, T_WATCH, &r.base);
    }
    Etcdserverpb__WatchCancelRequest cancel = ETCDSERVERPB__WATCH_CANCEL_REQUEST__INIT;
    cancel.watch_id = 1;
    Etcdserverpb__WatchRequest r = ETCDSERVERPB__WATCH_REQUEST__INIT;
    r.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CANCEL_REQUEST;
    r.cancel_request = &cancel;
    emit_single(fn, arg, T_WATCH, &r.base);
  }
  /* Sequences: lease lifecycle, compaction between writes, watch after it. */
  {
    seq *s = calloc(1, sizeof(*s));
    if (!s) abort();
    s->buf[s->n++] = FLAG_SEQUENCE;
    Etcdserverpb__LeaseGrantRequest g = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    g.id = 50;
    g.ttl = 5;
    seq_add(s, T_LEASE_GRANT, &g.base);
    Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;
    p.key = BIN("f");
    p.value = BIN("1");
    p.lease = 50;
    seq_add(s, T_PUT, &p.base);
    p.key = BIN("a");
    seq_add(s, T_PUT, &p.base);
    Etcdserverpb__CompactionRequest c = ETCDSERVERPB__COMPACTION_REQUEST__INIT;
    c.revision = 10;
    seq_add(s, T_COMPACT, &c.base);
    Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;
    d.key = BIN("c/");
    d.range_end = BIN("c0");
    seq_add(s, T_DELETE, &d.base);
    Etcdserverpb__LeaseRevokeRequest rv = ETCDSERVERPB__LEASE_REVOKE_REQUEST__INIT;
    rv.id = 50;
    seq_add(s, T_LEASE_REVOKE, &rv.base);
    c.revision = 12;
    seq_add(s, T_COMPACT, &c.base);
    Etcdserverpb__WatchCreateRequest wc = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
    wc.key = BIN("\0");
    wc.range_end = BIN("\0");
    wc.start_revision = 12;
    wc.prev_kv = true;
    Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
    wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
    wr.create_request = &wc;
    seq_add(s, T_WATCH, &wr.base);
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT;
    r.key = BIN("\0");
    r.range_end = BIN("\0");
    r.revision = 12;
    seq_add(s, T_RANGE, &r.base);
    fn(arg, s->buf, s->n);
    s->buf[0] = FLAG_SEQUENCE | FLAG_EMPTY;
    fn(arg, s->buf, s->n);
    /* The large store: delete ranges that empty B-tree nodes, compact, re-put. */
    s->n = 0;
    s->buf[s->n++] = FLAG_SEQUENCE | FLAG_LARGE;
    d.key = BIN("/registry/pods/default/p1");
    d.range_end = BIN("/registry/pods/default/p5");
    d.prev_kv = false;
    seq_add(s, T_DELETE, &d.base);
    r.key = BIN("/registry/");
    r.range_end = BIN("/registry0");
    r.revision = 0;
    r.limit = 10;
    r.sort_order = ETCDSERVERPB__RANGE_REQUEST__SORT_ORDER__DESCEND;
    seq_add(s, T_RANGE, &r.base);
    c.revision = 12;
    seq_add(s, T_COMPACT, &c.base);
    p.key = BIN("/registry/pods/default/p50");
    p.lease = 9;
    seq_add(s, T_PUT, &p.base);
    rv.id = 9;
    seq_add(s, T_LEASE_REVOKE, &rv.base);
    d.key = BIN("/registry/svc/");
    d.range_end = BIN("/registry/svc0");
    seq_add(s, T_DELETE, &d.base);
    c.revision = 15;
    seq_add(s, T_COMPACT, &c.base);
    wc.key = BIN("/registry/");
    wc.range_end = BIN("/registry0");
    wc.start_revision = 15;
    seq_add(s, T_WATCH, &wr.base);
    fn(arg, s->buf, s->n);
    free(s);
  }
}

static void write_seed(void *arg, const uint8_t *d, size_t n) {
  static int count;
  char p[4096];
  snprintf(p, sizeof(p), "%s/seed-%03d", (const char *)arg, count++);
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return;
  if (write(fd, d, n) != (ssize_t)n) perror("write seed");
  close(fd);
}

void request_fuzz_write_seeds(const char *dir) {
  mkdir(dir, 0700);
  request_fuzz_seeds(write_seed, (void *)dir);
}
