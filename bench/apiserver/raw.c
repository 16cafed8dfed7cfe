/* bench/apiserver/raw.c — `load raw`: the store calls the apiserver makes for
 * a create and a consistent get, made straight to the store through
 * common/etcd (the apiserver's own etcd client), so apiserver/raw is the
 * apiserver's overhead.
 *
 *   --op=create  --count txns, --clients open, each what objstore_create sends:
 *                compare create_revision(key) == 0, then put the pod, else
 *                range the key. The value is the stored bytes of a pod the
 *                apiserver created (<key-prefix><ns>/bench-0; the client's own
 *                pod encoding if there is none: template=client), renamed
 *                <prefix><index> and encoded before the clock starts. Keys are <raw-prefix><ns>/<prefix><index>:
 *                outside the apiserver's watched prefix, so a running apiserver
 *                spends nothing on them while they are measured.
 *   --op=get     linearizable single-key ranges of the pods the apiserver
 *                created (<key-prefix><ns>/<prefix><random index below
 *                --count>), --clients open, for --duration after --warmup:
 *                what a consistent Get (resourceVersion "") sends.
 * The etcd client has one connection and one callback thread, as the
 * apiserver's has. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/apiserver/load.h"
#include "common/etcd/etcd.h"

static etcd_client *g_etcd;
static char **g_keys;      /* create: the key of each index */
static uint8_t **g_values; /* create: the value of each index */
static size_t *g_value_lens;
static const char *g_template = "";

typedef struct raw_state {
  char key[512];
} raw_state;

static void raw_txn_done(void *arg, etcd_txn_result *r, const keel_error *err) {
  eslot *s = arg;
  if (!r) {
    engine_done(s, GRPC_STATUS_UNKNOWN, err ? err->message : "txn failed");
    return;
  }
  bool ok = r->succeeded;
  etcd_txn_result_clear(r);
  engine_done(s, ok ? GRPC_STATUS_OK : GRPC_STATUS_ALREADY_EXISTS, ok ? "" : "key exists");
}

static bool issue_raw_create(eslot *s) {
  engine *e = s->e;
  long i = atomic_fetch_add(&e->next, 1);
  if (i >= e->count) return false;
  s->index = i;
  const char *key = g_keys[i];
  size_t klen = strlen(key);
  etcd_compare cmp = {.key = key, .key_len = klen, .target = ETCD_CMP_CREATE, .result = ETCD_CMP_EQUAL};
  etcd_op put = {.type = ETCD_OP_PUT, .key = key, .key_len = klen, .value = g_values[i], .value_len = g_value_lens[i]};
  etcd_op get = {.type = ETCD_OP_RANGE, .key = key, .key_len = klen};
  keel_error err = {0};
  s->started_ns = bench_now_ns();
  if (etcd_txn_async(g_etcd, &cmp, 1, &put, 1, &get, 1, raw_txn_done, s, &err) < 0) {
    engine_fail(s, err.message);
    return false;
  }
  return true;
}

static void raw_range_done(void *arg, etcd_range_result *r, const keel_error *err) {
  eslot *s = arg;
  if (!r) {
    engine_done(s, GRPC_STATUS_UNKNOWN, err ? err->message : "range failed");
    return;
  }
  bool ok = r->nkvs == 1 && r->kvs[0].value_len > 0;
  etcd_range_result_clear(r);
  engine_done(s, ok ? GRPC_STATUS_OK : GRPC_STATUS_NOT_FOUND, ok ? "" : "key not found");
}

static bool issue_raw_get(eslot *s) {
  raw_state *u = s->user;
  unsigned seed = (unsigned)(s->id * 7919 + bench_now_ns());
  s->index = g_opt.start + (long)((unsigned)rand_r(&seed) % (unsigned)g_opt.count);
  snprintf(u->key, sizeof u->key, "%s%s/%s%ld", g_opt.key_prefix, g_opt.ns, g_opt.prefix, s->index);
  keel_error err = {0};
  s->started_ns = bench_now_ns();
  if (etcd_range_async(g_etcd, u->key, strlen(u->key), NULL, 0, 0, 0, false, false, raw_range_done, s, &err) < 0) {
    engine_fail(s, err.message);
    return false;
  }
  return true;
}

/* The values of the create run: the template pod renamed, encoded. */
static void prepare_values(void) {
  char tkey[512];
  snprintf(tkey, sizeof tkey, "%s%s/bench-0", g_opt.key_prefix, g_opt.ns);
  etcd_range_result r;
  keel_error err = {0};
  Keel__Api__V1__Pod *tpl = NULL;
  bench_pod own;
  if (etcd_range(g_etcd, tkey, strlen(tkey), NULL, 0, 0, 0, false, false, &r, &err) == 0 && r.nkvs == 1) {
    tpl = keel__api__v1__pod__unpack(NULL, r.kvs[0].value_len, r.kvs[0].value);
    if (!tpl || !tpl->metadata) die("raw: %s does not decode as a Pod", tkey);
    g_template = "stored";
  } else {
    bench_pod_init(&own, g_opt.ns);
    g_template = "client";
  }
  if (r.owner_) etcd_range_result_clear(&r);
  g_keys = bench_xcalloc((size_t)g_opt.count, sizeof *g_keys);
  g_values = bench_xcalloc((size_t)g_opt.count, sizeof *g_values);
  g_value_lens = bench_xcalloc((size_t)g_opt.count, sizeof *g_value_lens);
  char name[160], *saved = tpl ? tpl->metadata->name : NULL;
  for (long i = 0; i < g_opt.count; i++) {
    long idx = g_opt.start + i;
    snprintf(name, sizeof name, "%s%ld", g_opt.prefix, idx);
    const ProtobufCMessage *m;
    if (tpl) {
      tpl->metadata->name = name;
      m = &tpl->base;
    } else {
      bench_pod_set(&own, name, idx, NULL);
      m = &own.pod.base;
    }
    size_t len = protobuf_c_message_get_packed_size(m);
    g_values[i] = malloc(len ? len : 1);
    if (!g_values[i]) die("out of memory");
    protobuf_c_message_pack(m, g_values[i]);
    g_value_lens[i] = len;
    if (asprintf(&g_keys[i], "%s%s/%s", g_opt.raw_prefix, g_opt.ns, name) < 0) die("out of memory");
  }
  if (tpl) {
    tpl->metadata->name = saved;
    keel__api__v1__pod__free_unpacked(tpl, NULL);
  }
}

int run_raw(void) {
  bool create = strcmp(g_opt.op, "create") == 0;
  const char *eps[1] = {g_opt.store};
  etcd_client_options eo = {.endpoints = eps, .nendpoints = 1, .timeout_ms = 30000};
  keel_error err = {0};
  g_etcd = etcd_client_create(&eo, &err);
  if (!g_etcd) die("etcd client for %s: %s", g_opt.store, err.message);
  /* Connected before anything is timed. */
  etcd_range_result warm;
  if (etcd_range(g_etcd, "/", 1, NULL, 0, 0, 1, true, true, &warm, &err) < 0)
    die("store %s: %s", g_opt.store, err.message);
  etcd_range_result_clear(&warm);
  if (create) prepare_values();

  engine e;
  engine_init(&e, g_opt.clients);
  for (int i = 0; i < e.nslots; i++) e.slots[i].user = bench_xcalloc(1, sizeof(raw_state));
  e.issue = create ? issue_raw_create : issue_raw_get;
  e.timed = !create;
  e.count = g_opt.count;
  int64_t start = bench_now_ns();
  e.warm_ns = start + (int64_t)(g_opt.warmup * 1e9);
  e.end_ns = e.warm_ns + (int64_t)(g_opt.duration * 1e9);
  cpu_mark c0 = cpu_now(), c1;
  engine_run(&e);
  if (!create) {
    bench_sleep_until(e.warm_ns);
    c0 = cpu_now();
    bench_sleep_until(e.end_ns);
  }
  engine_wait(&e);
  c1 = cpu_now();
  engine_totals t;
  engine_totals_get(&e, &t);
  double secs = create ? (double)(t.last_done_ns - start) / 1e9 : g_opt.duration;
  char cpu[400];
  cpu_report(cpu, sizeof cpu, c0, c1, secs, t.ok);
  printf(
      "mode=raw-%s ns=%s clients=%d channels=1 count=%ld ok=%llu errors=%llu rate=%.0f p50_us=%.0f p99_us=%.0f "
      "max_us=%.0f secs=%.2f value_bytes=%zu template=%s %s\n",
      g_opt.op, g_opt.ns, g_opt.clients, g_opt.count, (unsigned long long)t.ok, (unsigned long long)t.errors,
      secs > 0 ? (double)t.ok / secs : 0, bench_lat_pct_us(&t.lat, 50), bench_lat_pct_us(&t.lat, 99), bench_lat_max_us(&t.lat), secs,
      create ? g_value_lens[0] : 0, create ? g_template : "-", cpu);
  fflush(stdout);
  if (t.errors)
    fprintf(stderr, "load: raw %s: %llu calls failed, last: %s\n", g_opt.op, (unsigned long long)t.errors, t.last_msg);
  int rc = t.errors || (create && t.ok != (uint64_t)g_opt.count) ? 1 : 0;
  bench_lat_free(&t.lat);
  engine_destroy(&e);
  etcd_client_destroy(g_etcd);
  if (create) {
    for (long i = 0; i < g_opt.count; i++) {
      free(g_keys[i]);
      free(g_values[i]);
    }
    free(g_keys);
    free(g_values);
    free(g_value_lens);
  }
  return rc;
}
