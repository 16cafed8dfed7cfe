/* common/client/informer_test.c — informers against real keel-apiserver
 * processes on one keel-store.
 *
 *   basic        handlers, indexes (namespace, field, label, custom), reads,
 *                references outliving the cache, resync, stop.
 *   resume       the apiserver is SIGTERMed mid-stream and restarted on the
 *                same socket while a writer keeps writing through a second
 *                apiserver: the informer sees every write exactly once, in
 *                order, without relisting.
 *   too old      the informer's apiserver (--watch-cache-size=100) is down
 *                while 300 writes happen: the resumed watch is too old, the
 *                informer relists and reports only the differences.
 *   churn        creates/updates/deletes from several threads (fixed seeds);
 *                afterwards every informer (all pods; a label selector; a
 *                field selector; a tiny max_pending with a slow handler, so
 *                its stream is cut and resumed) equals a fresh List, and so
 *                does the state its handlers built.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/client.h"
#include "common/client/informer.h"
#include "common/client/testenv.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/core.pb-c.h"

static const char *g_store_bin, *g_api_bin;
static testenv g_env;
static testenv_proc g_writer_api; /* TCP, stays up: writes go through it */
static client *g_w;               /* client of g_writer_api */
static const api_kind *POD, *NS;

static int setup(void **state) {
  (void)state;
  POD = api_kind_by_name("Pod");
  NS = api_kind_by_name("Namespace");
  if (testenv_init(&g_env, g_store_bin, g_api_bin) < 0) return -1;
  const char *args[] = {"--bookmark-interval=500ms", NULL};
  if (testenv_start_apiserver(&g_env, &g_writer_api, NULL, args) < 0) return -1;
  g_w = testenv_client(g_writer_api.endpoint, NULL);
  return g_w ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  client_free(g_w);
  int rc = testenv_stop(&g_writer_api);
  testenv_cleanup(&g_env);
  return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ helpers */

static void must_ok(int rc, const client_status *st, const char *what) {
  if (rc != 0) fail_msg("%s: %s %s", what, rpc_status_code_name(st->code), st->message);
}

static void make_namespace(const char *name) {
  Keel__Api__V1__Namespace n = KEEL__API__V1__NAMESPACE__INIT;
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  m.name = (char *)name;
  n.metadata = &m;
  client_status st;
  ProtobufCMessage *out = NULL;
  must_ok(client_create(g_w, NS, &n.base, &out, NULL, &st), &st, "create namespace");
  protobuf_c_message_free_unpacked(out, NULL);
}

/* Creates a pod, returns the created object (caller frees). */
static Keel__Api__V1__Pod *create_pod(client *c, const char *ns, const char *name, const char *node,
                                      const char *const *labels) {
  Keel__Api__V1__Pod *p = testenv_pod(ns, name, node, labels);
  client_status st;
  ProtobufCMessage *out = NULL;
  must_ok(client_create(c, POD, &p->base, &out, NULL, &st), &st, "create pod");
  protobuf_c_message_free_unpacked(&p->base, NULL);
  return (Keel__Api__V1__Pod *)out;
}

/* Updates cur (a label) and replaces it with the result. */
static void relabel(client *c, Keel__Api__V1__Pod **cur, const char *key, const char *value) {
  testenv_set_label((*cur)->metadata, key, value);
  client_status st;
  ProtobufCMessage *out = NULL;
  must_ok(client_update(c, POD, &(*cur)->base, &out, NULL, &st), &st, "update pod");
  protobuf_c_message_free_unpacked(&(*cur)->base, NULL);
  *cur = (Keel__Api__V1__Pod *)out;
}

static int64_t delete_pod(client *c, const char *ns, const char *name) {
  client_status st;
  ProtobufCMessage *out = NULL;
  must_ok(client_delete(c, POD, ns, name, 0, &out, NULL, &st), &st, "delete pod");
  int64_t rv = client_object_rv(POD, out);
  protobuf_c_message_free_unpacked(out, NULL);
  return rv;
}

static int64_t rv_of(const Keel__Api__V1__Pod *p) { return client_object_rv(POD, &p->base); }

static informer *start_informer(informer_options *o, const informer_handlers *h) {
  keel_error err = {0};
  informer *inf = informer_new(o, &err);
  if (!inf) fail_msg("informer_new: %s", err.message);
  if (h && informer_add_handlers(inf, h, &err) < 0) fail_msg("%s", err.message);
  return inf;
}

static void start(informer *inf) {
  keel_error err = {0};
  if (informer_start(inf, &err) < 0) fail_msg("informer_start: %s", err.message);
}

/* The freshest List as key -> (rv, packed bytes) compared with the cache. */
static ProtobufCMessage *fresh_list(const char *ns, const char *labels, const char *fields, int64_t *rv) {
  Keel__Api__V1__ListRequest req = KEEL__API__V1__LIST_REQUEST__INIT;
  req.namespace_ = (char *)(ns ? ns : "");
  req.label_selector = (char *)(labels ? labels : "");
  req.field_selector = (char *)(fields ? fields : "");
  client_status st;
  ProtobufCMessage *list = NULL;
  must_ok(client_list(g_w, POD, &req, &list, NULL, &st), &st, "list");
  *rv = strtoll(((Keel__Api__V1__PodList *)list)->metadata->resource_version, NULL, 10);
  return list;
}

static bool same_bytes(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  size_t la = protobuf_c_message_get_packed_size(a), lb = protobuf_c_message_get_packed_size(b);
  if (la != lb) return false;
  uint8_t *x = malloc(la + 1), *y = malloc(lb + 1);
  protobuf_c_message_pack(a, x);
  protobuf_c_message_pack(b, y);
  bool eq = memcmp(x, y, la) == 0;
  free(x);
  free(y);
  return eq;
}

/* objs (sorted by key) must be exactly the list's items (sorted by ns/name), byte for byte. */
static void expect_same(const char *what, informer_object **objs, size_t n, const Keel__Api__V1__PodList *l) {
  if (n != l->n_items) fail_msg("%s: informer has %zu objects, List %zu", what, n, l->n_items);
  for (size_t i = 0; i < n; i++) {
    char key[256];
    client_object_key(POD, &l->items[i]->base, key, sizeof key);
    if (strcmp(key, informer_object_key(objs[i])) != 0)
      fail_msg("%s: item %zu: informer %s, List %s", what, i, informer_object_key(objs[i]), key);
    if (!same_bytes(informer_object_msg(objs[i]), &l->items[i]->base))
      fail_msg("%s: %s differs (informer rv %lld, List rv %s)", what, key, (long long)informer_object_rv(objs[i]),
               l->items[i]->metadata->resource_version);
  }
}

/* ------------------------------------------------------------------ recorder */

/* Handlers that record every event and rebuild state from events alone. */
#define MAX_EVENTS 4096
typedef struct event_rec {
  char type; /* 'A' add, 'U' update, 'D' delete, 'X' delete (final state unknown), 'R' resync */
  char key[96];
  int64_t rv;
} event_rec;

typedef struct recorder {
  pthread_mutex_t mu;
  event_rec ev[MAX_EVENTS];
  int n;
  int overflow;
  /* key -> last rv, rebuilt from events (a tiny open-addressing table) */
  char keys[1024][96];
  int64_t rvs[1024];
  bool live[1024];
  int order_violations; /* an add/update whose rv did not grow */
  pthread_t thread;
  bool thread_set;
  int other_threads;
  int sleep_us;         /* slow handler */
} recorder;

static int slot(recorder *r, const char *key) {
  unsigned h = 5381;
  for (const char *p = key; *p; p++) h = h * 33 + (unsigned char)*p;
  for (unsigned i = 0; i < 1024; i++) {
    unsigned s = (h + i) % 1024;
    if (!r->keys[s][0] || strcmp(r->keys[s], key) == 0) return (int)s;
  }
  return -1;
}

static void record(recorder *r, char type, const ProtobufCMessage *obj) {
  char key[96];
  client_object_key(POD, obj, key, sizeof key);
  int64_t rv = client_object_rv(POD, obj);
  if (r->sleep_us) usleep((useconds_t)r->sleep_us);
  pthread_mutex_lock(&r->mu);
  if (!r->thread_set) {
    r->thread = pthread_self();
    r->thread_set = true;
  } else if (!pthread_equal(r->thread, pthread_self())) {
    r->other_threads++;
  }
  if (type != 'R') {
    if (r->n < MAX_EVENTS) {
      event_rec *e = &r->ev[r->n++];
      e->type = type;
      snprintf(e->key, sizeof e->key, "%s", key);
      e->rv = rv;
    } else {
      r->overflow++;
    }
  }
  int s = slot(r, key);
  if (s >= 0) {
    snprintf(r->keys[s], sizeof r->keys[s], "%s", key);
    if (type == 'A' || type == 'U') {
      if (r->live[s] && rv <= r->rvs[s]) r->order_violations++;
      if (type == 'A' && r->live[s]) r->order_violations++; /* add of a live key */
      r->live[s] = true;
      r->rvs[s] = rv;
    } else if (type == 'D' || type == 'X') {
      r->live[s] = false;
    }
  }
  pthread_mutex_unlock(&r->mu);
}

static void rec_add(const ProtobufCMessage *obj, void *arg) { record(arg, 'A', obj); }
static void rec_update(const ProtobufCMessage *o, const ProtobufCMessage *n, void *arg) {
  record(arg, o == n ? 'R' : 'U', n);
}
static void rec_delete(const ProtobufCMessage *obj, bool unknown, void *arg) { record(arg, unknown ? 'X' : 'D', obj); }

static informer_handlers rec_handlers(recorder *r) {
  return (informer_handlers){.on_add = rec_add, .on_update = rec_update, .on_delete = rec_delete, .arg = r};
}

static recorder *recorder_new(void) {
  recorder *r = calloc(1, sizeof(*r));
  pthread_mutex_init(&r->mu, NULL);
  return r;
}

/* The recorder's live state must be the list's (keys and rvs). */
static void expect_recorder_matches(const char *what, recorder *r, const Keel__Api__V1__PodList *l) {
  pthread_mutex_lock(&r->mu);
  size_t live = 0;
  for (int i = 0; i < 1024; i++) live += r->live[i];
  if (live != l->n_items) fail_msg("%s: handlers built %zu live objects, List has %zu", what, live, l->n_items);
  for (size_t i = 0; i < l->n_items; i++) {
    char key[96];
    client_object_key(POD, &l->items[i]->base, key, sizeof key);
    int s = slot(r, key);
    if (s < 0 || !r->live[s] || r->rvs[s] != rv_of(l->items[i]))
      fail_msg("%s: handlers' state for %s is %s rv %lld, List rv %lld", what, key,
               s >= 0 && r->live[s] ? "live" : "absent", s >= 0 ? (long long)r->rvs[s] : 0LL,
               (long long)rv_of(l->items[i]));
  }
  assert_int_equal(r->order_violations, 0);
  assert_int_equal(r->other_threads, 0);
  pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------ basic */

static size_t image_index(const api_kind *k, const ProtobufCMessage *obj, char **values, size_t max, void *arg) {
  (void)k;
  (void)arg;
  const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)obj;
  size_t n = 0;
  for (size_t i = 0; p->spec && i < p->spec->n_containers && n < max; i++) values[n++] = strdup(p->spec->containers[i]->image);
  return n;
}

static void expect_keys(informer_object **objs, size_t n, const char *const *want) {
  size_t i = 0;
  for (; want[i]; i++) {
    if (i >= n) fail_msg("missing %s (got %zu objects)", want[i], n);
    assert_string_equal(informer_object_key(objs[i]), want[i]);
  }
  assert_int_equal(n, i);
}

static void test_basic(void **state) {
  (void)state;
  make_namespace("basic");
  const char *web[] = {"app", "web", NULL}, *db[] = {"app", "db", NULL};
  Keel__Api__V1__Pod *p1 = create_pod(g_w, "basic", "b-1", "n1", web);
  Keel__Api__V1__Pod *p2 = create_pod(g_w, "basic", "b-2", "n2", web);
  Keel__Api__V1__Pod *p3 = create_pod(g_w, "basic", "b-3", NULL, db);
  /* Noise in another namespace: not ours. */
  make_namespace("basic-other");
  Keel__Api__V1__Pod *px = create_pod(g_w, "basic-other", "x-1", "n1", web);

  recorder *r = recorder_new();
  informer_handlers h = rec_handlers(r);
  informer_options o = {.client = g_w, .kind = POD, .ns = "basic", .resync_ms = 300, .backoff_initial_ms = 50,
                        .backoff_max_ms = 500};
  informer *inf = start_informer(&o, &h);
  keel_error err = {0};
  assert_int_equal(informer_add_field_index(inf, "spec.nodeName", &err), 0);
  assert_int_equal(informer_add_label_index(inf, "app", &err), 0);
  assert_int_equal(informer_add_index(inf, "image", image_index, NULL, &err), 0);
  assert_true(informer_add_index(inf, "image", image_index, NULL, &err) < 0);
  assert_non_null(strstr(err.message, "exists"));
  start(inf);
  assert_true(informer_wait_synced(inf, 10000));
  assert_true(informer_has_synced(inf));
  assert_int_equal(informer_add_handlers(inf, &h, &err), -EBUSY);
  assert_int_equal(informer_count(inf), 3);
  pthread_mutex_lock(&r->mu);
  int adds = 0;
  for (int i = 0; i < r->n; i++) adds += r->ev[i].type == 'A';
  assert_int_equal(adds, 3);
  pthread_mutex_unlock(&r->mu);

  informer_object *o1 = informer_get(inf, "basic", "b-1");
  assert_non_null(o1);
  assert_int_equal(informer_object_rv(o1), rv_of(p1));
  assert_null(informer_get(inf, "basic-other", "x-1"));
  informer_object_unref(o1);

  informer_object **objs;
  size_t n;
  assert_int_equal(informer_list(inf, "basic", "app=web", &objs, &n, &err), 0);
  expect_keys(objs, n, (const char *[]){"basic/b-1", "basic/b-2", NULL});
  informer_objects_release(objs, n);
  assert_int_equal(informer_list(inf, NULL, "app notin (web)", &objs, &n, &err), 0);
  expect_keys(objs, n, (const char *[]){"basic/b-3", NULL});
  informer_objects_release(objs, n);
  assert_true(informer_list(inf, NULL, "app in (", &objs, &n, &err) < 0);
  assert_int_equal(informer_list_by_index(inf, "namespace", "basic", &objs, &n, &err), 0);
  assert_int_equal(n, 3);
  informer_objects_release(objs, n);
  assert_int_equal(informer_list_by_index(inf, "spec.nodeName", "n1", &objs, &n, &err), 0);
  expect_keys(objs, n, (const char *[]){"basic/b-1", NULL});
  informer_objects_release(objs, n);
  assert_int_equal(informer_list_by_index(inf, "spec.nodeName", "", &objs, &n, &err), 0);
  expect_keys(objs, n, (const char *[]){"basic/b-3", NULL});
  informer_objects_release(objs, n);
  assert_int_equal(informer_list_by_index(inf, "image", "nginx:1.25", &objs, &n, &err), 0);
  assert_int_equal(n, 3);
  informer_objects_release(objs, n);
  assert_int_equal(informer_list_by_index(inf, "nope", "x", &objs, &n, &err), -ENOENT);
  char **values;
  assert_int_equal(informer_index_values(inf, "label:app", &values, &n, &err), 0);
  assert_int_equal(n, 2);
  assert_string_equal(values[0], "db");
  assert_string_equal(values[1], "web");
  for (size_t i = 0; i < n; i++) free(values[i]);
  free(values);

  /* An update moves b-3 between label buckets; the empty bucket goes. */
  informer_object *old3 = informer_get(inf, "basic", "b-3");
  relabel(g_w, &p3, "app", "web");
  assert_true(informer_wait_rv(inf, rv_of(p3), 10000));
  assert_int_equal(informer_index_values(inf, "label:app", &values, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_string_equal(values[0], "web");
  free(values[0]);
  free(values);
  /* The reference taken before still shows the old state. */
  const Keel__Api__V1__Pod *old3p = (const Keel__Api__V1__Pod *)informer_object_msg(old3);
  assert_string_equal(old3p->metadata->labels[0]->value, "db");
  informer_object_unref(old3);

  /* A delete: handlers see the final state; references outlive the cache. */
  informer_object *held = informer_get(inf, "basic", "b-2");
  int64_t drv = delete_pod(g_w, "basic", "b-2");
  assert_true(informer_wait_rv(inf, drv, 10000));
  assert_null(informer_get(inf, "basic", "b-2"));
  assert_string_equal(((const Keel__Api__V1__Pod *)informer_object_msg(held))->metadata->name, "b-2");
  informer_object_unref(held);
  pthread_mutex_lock(&r->mu);
  event_rec last = r->ev[r->n - 1];
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(last.type, 'D');
  assert_string_equal(last.key, "basic/b-2");
  assert_int_equal(last.rv, drv);

  /* Resync: on_update(obj, obj) for everything, periodically. */
  testenv_sleep_ms(800);
  informer_stats st;
  informer_get_stats(inf, &st);
  assert_true(st.resyncs >= 1);
  assert_int_equal(st.lists, 1);
  assert_int_equal(st.stale_events, 0);
  assert_true(st.events >= 2);

  int64_t lrv;
  ProtobufCMessage *list = fresh_list("basic", NULL, NULL, &lrv);
  assert_int_equal(informer_list(inf, NULL, NULL, &objs, &n, &err), 0);
  expect_same("basic", objs, n, (Keel__Api__V1__PodList *)list);
  informer_objects_release(objs, n);
  expect_recorder_matches("basic", r, (Keel__Api__V1__PodList *)list);
  protobuf_c_message_free_unpacked(list, NULL);

  informer_stop(inf);
  informer_stop(inf); /* idempotent */
  assert_int_equal(informer_count(inf), 2); /* still readable */
  informer_free(inf);
  free(r);
  Keel__Api__V1__Pod *ps[] = {p1, p2, p3, px};
  for (int i = 0; i < 4; i++) protobuf_c_message_free_unpacked(&ps[i]->base, NULL);
}

/* An informer whose server is gone stops promptly, even mid-list. */
static void test_stop_while_unreachable(void **state) {
  (void)state;
  char sock[PATH_MAX], ep[PATH_MAX + 8];
  snprintf(ep, sizeof ep, "unix:%s", testenv_path(&g_env, "nobody.sock", sock, sizeof sock));
  client *c = testenv_client(ep, NULL);
  informer_options o = {.client = c, .kind = POD, .backoff_initial_ms = 20, .backoff_max_ms = 100};
  informer *inf = start_informer(&o, NULL);
  start(inf);
  testenv_sleep_ms(300);
  assert_false(informer_has_synced(inf));
  assert_false(informer_wait_synced(inf, 50));
  int64_t t0 = testenv_now_ms();
  informer_free(inf);
  assert_true(testenv_now_ms() - t0 < 1000);
  client_free(c);
}

/* ------------------------------------------------------------------ resume */

typedef struct writer {
  client *c;
  const char *ns;
  atomic_bool stop;
  atomic_int writes;
  pthread_mutex_t mu;
  event_rec log[MAX_EVENTS];
  int n;
} writer;

static void writer_log(writer *w, char type, const char *name, int64_t rv) {
  pthread_mutex_lock(&w->mu);
  if (w->n < MAX_EVENTS) {
    event_rec *e = &w->log[w->n++];
    e->type = type;
    snprintf(e->key, sizeof e->key, "%s/%s", w->ns, name);
    e->rv = rv;
  }
  pthread_mutex_unlock(&w->mu);
  atomic_fetch_add(&w->writes, 1);
}

/* Pod r-i: created, relabeled twice, every third one deleted. */
static void *writer_thread(void *arg) {
  writer *w = arg;
  for (int i = 0; !atomic_load(&w->stop) && i < 1000; i++) {
    char name[32];
    snprintf(name, sizeof name, "r-%d", i);
    Keel__Api__V1__Pod *p = create_pod(w->c, w->ns, name, NULL, NULL);
    writer_log(w, 'A', name, rv_of(p));
    for (int j = 0; j < 2; j++) {
      char v[16];
      snprintf(v, sizeof v, "v%d", j);
      relabel(w->c, &p, "step", v);
      writer_log(w, 'U', name, rv_of(p));
    }
    if (i % 3 == 0) writer_log(w, 'D', name, delete_pod(w->c, w->ns, name));
    protobuf_c_message_free_unpacked(&p->base, NULL);
    testenv_sleep_ms(5);
  }
  return NULL;
}

static void wait_writes(writer *w, int n) {
  int64_t deadline = testenv_now_ms() + 20000 * testenv_slow();
  while (atomic_load(&w->writes) < n && testenv_now_ms() < deadline) testenv_sleep_ms(5);
  assert_true(atomic_load(&w->writes) >= n);
}

static void test_resume_after_apiserver_restart(void **state) {
  (void)state;
  make_namespace("resume");
  char sock[PATH_MAX], listen[PATH_MAX + 8];
  snprintf(listen, sizeof listen, "unix:%s", testenv_path(&g_env, "a.sock", sock, sizeof sock));
  testenv_proc a;
  assert_int_equal(testenv_start_apiserver(&g_env, &a, listen, NULL), 0);
  client *c = testenv_client(a.endpoint, NULL);
  recorder *r = recorder_new();
  informer_handlers h = rec_handlers(r);
  informer_options o = {.client = c, .kind = POD, .ns = "resume", .backoff_initial_ms = 50, .backoff_max_ms = 300,
                        .relist_after_failures = 1000};
  informer *inf = start_informer(&o, &h);
  start(inf);
  assert_true(informer_wait_synced(inf, 10000));

  writer *w = calloc(1, sizeof(*w));
  w->c = g_w;
  w->ns = "resume";
  pthread_mutex_init(&w->mu, NULL);
  pthread_t t;
  pthread_create(&t, NULL, writer_thread, w);
  wait_writes(w, 60);
  /* Mid-stream: the informer's apiserver goes away (graceful: its watches end
   * UNAVAILABLE) while writes continue through the other one. */
  int before = atomic_load(&w->writes);
  assert_int_equal(testenv_stop(&a), 0);
  wait_writes(w, before + 30); /* writes the informer cannot see now */
  assert_int_equal(testenv_start_apiserver(&g_env, &a, listen, NULL), 0);
  before = atomic_load(&w->writes);
  wait_writes(w, before + 60);
  atomic_store(&w->stop, true);
  pthread_join(t, NULL);
  int64_t last = w->log[w->n - 1].rv;
  if (!informer_wait_rv(inf, last, 30000 * testenv_slow()))
    fail_msg("informer stuck at rv %lld, writer at %lld", (long long)informer_last_rv(inf), (long long)last);

  /* Exactly the writer's writes, in order, each once. */
  pthread_mutex_lock(&r->mu);
  int skip = 0; /* events before the writer started: none (the namespace was empty) */
  if (r->n - skip != w->n) fail_msg("informer saw %d events, writer made %d writes", r->n - skip, w->n);
  for (int i = 0; i < w->n; i++) {
    const event_rec *got = &r->ev[skip + i], *want = &w->log[i];
    if (got->type != want->type || got->rv != want->rv || strcmp(got->key, want->key) != 0)
      fail_msg("event %d: informer %c %s@%lld, writer %c %s@%lld", i, got->type, got->key, (long long)got->rv,
               want->type, want->key, (long long)want->rv);
  }
  pthread_mutex_unlock(&r->mu);
  informer_stats st;
  informer_get_stats(inf, &st);
  print_message("resume: %d writes, %llu watches, %llu resumes, %llu lists, %llu bookmarks\n", w->n,
                (unsigned long long)st.watches, (unsigned long long)st.resumes, (unsigned long long)st.lists,
                (unsigned long long)st.bookmarks);
  assert_int_equal(st.lists, 1); /* resumed, never relisted */
  assert_int_equal(st.relists_too_old + st.relists_failures, 0);
  assert_int_equal(st.stale_events, 0);
  assert_true(st.watches >= 2);

  int64_t lrv;
  ProtobufCMessage *list = fresh_list("resume", NULL, NULL, &lrv);
  informer_object **objs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(informer_list(inf, NULL, NULL, &objs, &n, &err), 0);
  expect_same("resume", objs, n, (Keel__Api__V1__PodList *)list);
  informer_objects_release(objs, n);
  expect_recorder_matches("resume", r, (Keel__Api__V1__PodList *)list);
  protobuf_c_message_free_unpacked(list, NULL);
  informer_free(inf);
  client_free(c);
  assert_int_equal(testenv_stop(&a), 0);
  free(w);
  free(r);
}

/* ------------------------------------------------------------------ too old */

static void test_too_old_relists(void **state) {
  (void)state;
  make_namespace("old");
  Keel__Api__V1__Pod *pods[40] = {0};
  for (int i = 0; i < 20; i++) {
    char name[32];
    snprintf(name, sizeof name, "o-%d", i);
    pods[i] = create_pod(g_w, "old", name, NULL, NULL);
  }
  char sock[PATH_MAX], listen[PATH_MAX + 8];
  snprintf(listen, sizeof listen, "unix:%s", testenv_path(&g_env, "c.sock", sock, sizeof sock));
  const char *args[] = {"--watch-cache-size=100", NULL};
  testenv_proc cp;
  assert_int_equal(testenv_start_apiserver(&g_env, &cp, listen, args), 0);
  client *c = testenv_client(cp.endpoint, NULL);
  recorder *r = recorder_new();
  informer_handlers h = rec_handlers(r);
  informer_options o = {.client = c, .kind = POD, .ns = "old", .backoff_initial_ms = 50, .backoff_max_ms = 300,
                        .relist_after_failures = 1000};
  informer *inf = start_informer(&o, &h);
  start(inf);
  assert_true(informer_wait_synced(inf, 10000));
  assert_int_equal(informer_count(inf), 20);

  /* The informer's watch is paused (its apiserver is down) while 300 writes
   * happen: 20 more pods, 260 updates, 20 deletes (10 old, 10 new). */
  assert_int_equal(testenv_stop(&cp), 0);
  int writes = 0;
  for (int i = 20; i < 40; i++, writes++) {
    char name[32];
    snprintf(name, sizeof name, "o-%d", i);
    pods[i] = create_pod(g_w, "old", name, NULL, NULL);
  }
  for (int round = 0; writes < 280; round++) {
    for (int i = 0; i < 40 && writes < 280; i++, writes++) {
      char v[16];
      snprintf(v, sizeof v, "r%d", round);
      relabel(g_w, &pods[i], "round", v);
    }
  }
  int64_t last = 0;
  for (int i = 0; i < 40; i += 2, writes++) last = delete_pod(g_w, "old", pods[i]->metadata->name);
  assert_int_equal(writes, 300);
  /* Back, with a window of 100 events: the informer's version is too old. */
  assert_int_equal(testenv_start_apiserver(&g_env, &cp, listen, args), 0);
  if (!informer_wait_rv(inf, last, 30000 * testenv_slow()))
    fail_msg("informer stuck at rv %lld, last write %lld", (long long)informer_last_rv(inf), (long long)last);
  informer_stats st;
  informer_get_stats(inf, &st);
  print_message("too old: %llu lists, %llu too-old relists, %llu watches\n", (unsigned long long)st.lists,
                (unsigned long long)st.relists_too_old, (unsigned long long)st.watches);
  assert_int_equal(st.relists_too_old, 1);
  assert_int_equal(st.lists, 2);

  int64_t lrv;
  ProtobufCMessage *list = fresh_list("old", NULL, NULL, &lrv);
  informer_object **objs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(informer_list(inf, NULL, NULL, &objs, &n, &err), 0);
  expect_same("too old", objs, n, (Keel__Api__V1__PodList *)list);
  informer_objects_release(objs, n);
  expect_recorder_matches("too old", r, (Keel__Api__V1__PodList *)list);
  /* The relist reported differences only: 10 of the first 20 gone (final
   * state unknown), 10 new ones added, the 20 left updated once each. */
  pthread_mutex_lock(&r->mu);
  int x = 0, a = 0, u = 0, d = 0;
  for (int i = 20; i < r->n; i++) {
    x += r->ev[i].type == 'X';
    a += r->ev[i].type == 'A';
    u += r->ev[i].type == 'U';
    d += r->ev[i].type == 'D';
  }
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(x, 10);
  assert_int_equal(a, 10);
  assert_int_equal(u, 10);
  assert_int_equal(d, 0);
  protobuf_c_message_free_unpacked(list, NULL);
  informer_free(inf);
  client_free(c);
  assert_int_equal(testenv_stop(&cp), 0);
  for (int i = 0; i < 40; i++) protobuf_c_message_free_unpacked(&pods[i]->base, NULL);
  free(r);
}

/* ------------------------------------------------------------------ churn */

#define CHURN_THREADS 4
#define CHURN_OPS 150
#define CHURN_NAMES 12

typedef struct churner {
  int id;
  unsigned seed;
  int64_t last_rv;
} churner;

static void *churn_thread(void *arg) {
  churner *ch = arg;
  Keel__Api__V1__Pod *live[CHURN_NAMES] = {0};
  static const char *const groups[] = {"a", "b", "c"};
  static const char *const nodes[] = {"node-0", "node-1", "node-2", ""};
  for (int op = 0; op < CHURN_OPS; op++) {
    int i = (int)(rand_r(&ch->seed) % CHURN_NAMES);
    char ns[32], name[32];
    snprintf(ns, sizeof ns, "churn-%d", i % 3);
    snprintf(name, sizeof name, "c%d-%d", ch->id, i);
    if (!live[i]) {
      const char *labels[] = {"group", groups[rand_r(&ch->seed) % 3], NULL};
      live[i] = create_pod(g_w, ns, name, nodes[rand_r(&ch->seed) % 4], labels);
      ch->last_rv = rv_of(live[i]);
    } else if (rand_r(&ch->seed) % 10 < 6) {
      relabel(g_w, &live[i], "group", groups[rand_r(&ch->seed) % 3]);
      ch->last_rv = rv_of(live[i]);
    } else {
      ch->last_rv = delete_pod(g_w, ns, name);
      protobuf_c_message_free_unpacked(&live[i]->base, NULL);
      live[i] = NULL;
    }
  }
  for (int i = 0; i < CHURN_NAMES; i++)
    if (live[i]) protobuf_c_message_free_unpacked(&live[i]->base, NULL);
  return NULL;
}

typedef struct churn_informer {
  const char *what;
  const char *ns, *labels, *fields;
  size_t max_pending;
  int sleep_us;
  informer *inf;
  recorder *r;
} churn_informer;

static void test_churn_matches_list(void **state) {
  (void)state;
  for (int i = 0; i < 3; i++) {
    char ns[32];
    snprintf(ns, sizeof ns, "churn-%d", i);
    make_namespace(ns);
  }
  client *c = testenv_client(g_writer_api.endpoint, NULL);
  churn_informer cis[] = {
      {.what = "all pods"},
      {.what = "group=a", .labels = "group=a"},
      {.what = "node-1 in churn-1", .ns = "churn-1", .fields = "spec.nodeName=node-1"},
      {.what = "cut streams", .max_pending = 3, .sleep_us = 2000},
  };
  const size_t nci = sizeof(cis) / sizeof(cis[0]);
  for (size_t i = 0; i < nci; i++) {
    cis[i].r = recorder_new();
    cis[i].r->sleep_us = cis[i].sleep_us;
    informer_handlers h = rec_handlers(cis[i].r);
    informer_options o = {.client = c, .kind = POD, .ns = cis[i].ns, .label_selector = cis[i].labels,
                          .field_selector = cis[i].fields, .max_pending = cis[i].max_pending,
                          .backoff_initial_ms = 20, .backoff_max_ms = 200, .resync_ms = 1000};
    cis[i].inf = start_informer(&o, &h);
    keel_error err = {0};
    assert_int_equal(informer_add_field_index(cis[i].inf, "spec.nodeName", &err), 0);
    assert_int_equal(informer_add_label_index(cis[i].inf, "group", &err), 0);
    start(cis[i].inf);
  }
  for (size_t i = 0; i < nci; i++) assert_true(informer_wait_synced(cis[i].inf, 10000));

  churner ch[CHURN_THREADS];
  pthread_t t[CHURN_THREADS];
  for (int i = 0; i < CHURN_THREADS; i++) {
    ch[i] = (churner){.id = i, .seed = 1000u + (unsigned)i};
    pthread_create(&t[i], NULL, churn_thread, &ch[i]);
  }
  for (int i = 0; i < CHURN_THREADS; i++) pthread_join(t[i], NULL);

  for (size_t i = 0; i < nci; i++) {
    int64_t lrv;
    char ns_all[16] = "";
    ProtobufCMessage *list = fresh_list(cis[i].ns, cis[i].labels, cis[i].fields, &lrv);
    /* Filtered informers learn the version from bookmarks (500 ms). */
    if (!informer_wait_rv(cis[i].inf, lrv, 30000 * testenv_slow()))
      fail_msg("%s: stuck at rv %lld, List at %lld", cis[i].what, (long long)informer_last_rv(cis[i].inf),
               (long long)lrv);
    informer_object **objs;
    size_t n;
    keel_error err = {0};
    assert_int_equal(informer_list(cis[i].inf, ns_all, NULL, &objs, &n, &err), 0);
    expect_same(cis[i].what, objs, n, (Keel__Api__V1__PodList *)list);
    informer_objects_release(objs, n);
    expect_recorder_matches(cis[i].what, cis[i].r, (Keel__Api__V1__PodList *)list);
    protobuf_c_message_free_unpacked(list, NULL);
    informer_stats st;
    informer_get_stats(cis[i].inf, &st);
    print_message("%s: %llu events, %llu bookmarks, %llu watches, %llu cuts, %llu resyncs\n", cis[i].what,
                  (unsigned long long)st.events, (unsigned long long)st.bookmarks, (unsigned long long)st.watches,
                  (unsigned long long)st.stream_cuts, (unsigned long long)st.resyncs);
    assert_int_equal(st.stale_events, 0);
    assert_int_equal(st.relists_too_old + st.relists_failures, 0);
    if (cis[i].max_pending) assert_true(st.stream_cuts > 0);
  }

  /* The unfiltered informer's indexes against the server's selectors. */
  informer *all = cis[0].inf;
  static const char *const nodes[] = {"node-0", "node-1", "node-2", ""};
  for (int i = 0; i < 4; i++) {
    char fs[64];
    snprintf(fs, sizeof fs, "spec.nodeName=%s", nodes[i]);
    int64_t lrv;
    ProtobufCMessage *list = fresh_list(NULL, NULL, fs, &lrv);
    informer_object **objs;
    size_t n;
    keel_error err = {0};
    assert_int_equal(informer_list_by_index(all, "spec.nodeName", nodes[i], &objs, &n, &err), 0);
    expect_same(fs, objs, n, (Keel__Api__V1__PodList *)list);
    informer_objects_release(objs, n);
    protobuf_c_message_free_unpacked(list, NULL);
  }
  static const char *const groups[] = {"a", "b", "c"};
  for (int i = 0; i < 3; i++) {
    char ls[32];
    snprintf(ls, sizeof ls, "group=%s", groups[i]);
    int64_t lrv;
    ProtobufCMessage *list = fresh_list(NULL, ls, NULL, &lrv);
    informer_object **objs;
    size_t n;
    keel_error err = {0};
    assert_int_equal(informer_list_by_index(all, "label:group", groups[i], &objs, &n, &err), 0);
    expect_same(ls, objs, n, (Keel__Api__V1__PodList *)list);
    informer_objects_release(objs, n);
    protobuf_c_message_free_unpacked(list, NULL);
    /* And by namespace + selector, through the namespace index. */
    list = fresh_list("churn-2", ls, NULL, &lrv);
    assert_int_equal(informer_list(all, "churn-2", ls, &objs, &n, &err), 0);
    expect_same("churn-2 + selector", objs, n, (Keel__Api__V1__PodList *)list);
    informer_objects_release(objs, n);
    protobuf_c_message_free_unpacked(list, NULL);
  }
  for (size_t i = 0; i < nci; i++) {
    informer_free(cis[i].inf);
    free(cis[i].r);
  }
  client_free(c);
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s KEEL_STORE KEEL_APISERVER\n", argv[0]);
    return 2;
  }
  g_store_bin = argv[1];
  g_api_bin = argv[2];
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_basic),
      cmocka_unit_test(test_stop_while_unreachable),
      cmocka_unit_test(test_resume_after_apiserver_restart),
      cmocka_unit_test(test_too_old_relists),
      cmocka_unit_test(test_churn_matches_list),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
