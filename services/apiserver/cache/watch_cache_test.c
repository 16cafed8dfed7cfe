/* services/apiserver/cache tests: the watch cache against a real keel-store
 * (and a real etcd 3.4 for the table that does not restart servers), started
 * by common/etcd/testenv on loopback ports it picks, data in private temp dirs.
 *
 * Watchers deliver into a fake sink that decodes every event as
 * keel.api.v1.PodWatchEvent and records type, object name and resourceVersion;
 * it can refuse (-ENOBUFS) to play a full stream queue, and flags any callback
 * that arrives after watch_cache_watcher_stop returned.
 *
 * Groups: "keel-store" and "etcd" run the same table on one shared server
 * (each test under its own key prefix; the cache trusts progress
 * notifications from keel-store only); "restart" tests start, stop and
 * restart their own keel-store (same port, same data dir); "shutdown" holds
 * the watch_cache_stop test, which detects a use of the stopped cache's mutex
 * through its own pthread_mutex_lock (ASan does not see into libpthread).
 *
 * usage: watch_cache_test KEEL_STORE_BIN [GROUP...]   (default: every group)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/etcd/etcd.h"
#include "common/etcd/testenv.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "keel/api/v1/services.pb-c.h"
#include "services/apiserver/cache/watch_cache.h"
#include "services/apiserver/storage/objstore.h"

#define ETCD_BIN "/usr/bin/etcd"
#define MAX_REQUEST_BYTES (1536 * 1024)
#define WAIT_MS 10000    /* for things that should happen at once */
#define RESTART_MS 15000 /* for a cache to find a restarted store (gRPC reconnect backoff) */

#define now_ms testenv_now_ms
#define sleep_ms testenv_sleep_ms

static char g_store_bin[PATH_MAX];

/* ------------------------------------------------------------------ the sink */

typedef struct rec_event {
  char type[12];
  int64_t rv;
  char ns[32], name[64], app[16], kind[16];
  bool bare; /* no name, namespace, labels, spec or status: a bookmark's object */
} rec_event;

typedef struct sink {
  pthread_mutex_t mu;
  bool decode; /* record events; otherwise only count them */
  rec_event *evs;
  size_t n, cap;
  size_t accepted; /* messages taken */
  size_t refusals; /* -ENOBUFS answers */
  long budget;     /* messages still taken before refusing; -1 = unlimited */
  int ends;
  grpc_status_code code;
  char msg[256];
  int undecodable;
  int64_t last_rv;
  int out_of_order;      /* an event with a lower resourceVersion than the one before */
  atomic_bool gate;      /* while set, send blocks (up to 30 s): a consumer that stalls */
  atomic_bool stopped;   /* set right after watch_cache_watcher_stop returned */
  atomic_int after_stop; /* callbacks that came anyway */
} sink;

static int sink_send(void *arg, const rpc_shared_message *m) {
  sink *s = arg;
  if (atomic_load(&s->stopped)) atomic_fetch_add(&s->after_stop, 1);
  for (int64_t until = now_ms() + 30000; atomic_load(&s->gate) && now_ms() < until;) sleep_ms(5);
  pthread_mutex_lock(&s->mu);
  if (s->budget == 0) {
    s->refusals++;
    pthread_mutex_unlock(&s->mu);
    return -ENOBUFS;
  }
  if (s->budget > 0) s->budget--;
  s->accepted++;
  if (s->decode) {
    size_t len = 0;
    const unsigned char *data = rpc_shared_message_data(m, &len);
    Keel__Api__V1__PodWatchEvent *ev = keel__api__v1__pod_watch_event__unpack(NULL, len, data);
    if (!ev || !ev->object || !ev->object->metadata) {
      s->undecodable++;
    } else {
      if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->evs = realloc(s->evs, s->cap * sizeof *s->evs);
      }
      rec_event *r = &s->evs[s->n++];
      memset(r, 0, sizeof *r);
      const Keel__Api__V1__ObjectMeta *md = ev->object->metadata;
      snprintf(r->type, sizeof r->type, "%s", ev->type);
      snprintf(r->kind, sizeof r->kind, "%s/%s", ev->object->api_version, ev->object->kind);
      r->rv = strtoll(md->resource_version, NULL, 10);
      snprintf(r->ns, sizeof r->ns, "%s", md->namespace_);
      snprintf(r->name, sizeof r->name, "%s", md->name);
      for (size_t i = 0; i < md->n_labels; i++)
        if (strcmp(md->labels[i]->key, "app") == 0)
          snprintf(r->app, sizeof r->app, "%s", md->labels[i]->value);
      r->bare =
          !md->name[0] && !md->namespace_[0] && md->n_labels == 0 && !ev->object->spec && !ev->object->status;
      if (r->rv < s->last_rv) s->out_of_order++;
      s->last_rv = r->rv;
    }
    if (ev) keel__api__v1__pod_watch_event__free_unpacked(ev, NULL);
  }
  pthread_mutex_unlock(&s->mu);
  return 0;
}

static void sink_end(void *arg, grpc_status_code code, const char *message) {
  sink *s = arg;
  if (atomic_load(&s->stopped)) atomic_fetch_add(&s->after_stop, 1);
  pthread_mutex_lock(&s->mu);
  s->ends++;
  s->code = code;
  snprintf(s->msg, sizeof s->msg, "%s", message ? message : "");
  pthread_mutex_unlock(&s->mu);
}

static size_t sink_accepted(sink *s) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->accepted;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static int sink_ends(sink *s) {
  pthread_mutex_lock(&s->mu);
  int n = s->ends;
  pthread_mutex_unlock(&s->mu);
  return n;
}

static void sink_set_budget(sink *s, long budget) {
  pthread_mutex_lock(&s->mu);
  s->budget = budget;
  pthread_mutex_unlock(&s->mu);
}

/* A copy of the recorded events (the sink keeps recording). */
static size_t sink_events(sink *s, rec_event **out) {
  pthread_mutex_lock(&s->mu);
  size_t n = s->n;
  *out = malloc((n ? n : 1) * sizeof **out);
  memcpy(*out, s->evs, n * sizeof **out);
  pthread_mutex_unlock(&s->mu);
  return n;
}

static bool wait_accepted(sink *s, size_t n, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (sink_accepted(s) < n) {
    if (now_ms() > deadline) return false;
    sleep_ms(2);
  }
  return true;
}

static bool wait_ends(sink *s, int n, int timeout_ms) {
  int64_t deadline = now_ms() + timeout_ms;
  while (sink_ends(s) < n) {
    if (now_ms() > deadline) return false;
    sleep_ms(2);
  }
  return true;
}

/* ------------------------------------------------------------------ fixtures */

typedef struct fixture {
  testenv_backend *group; /* the group's shared server, or NULL */
  testenv_backend own;    /* a restart test's own server */
  bool own_used;
  int restarts;
  etcd_client *c;  /* the cache's client */
  etcd_client *wc; /* the writers' client */
  objstore *s;     /* the cache's store */
  objstore *ws;    /* the same prefix, written through wc */
  char prefix[64];
  watch_cache *caches[8];
  size_t ncaches;
  cache_watcher **watchers; /* still to stop at teardown (NULL once stopped) */
  size_t nwatchers, capwatchers;
  sink **sinks;
  size_t nsinks, capsinks;
} fixture;

static fixture F;
static int g_seq;

static int setup_none(void **state) {
  *state = NULL;
  return 0;
}

/* Clients and objstores for the prefix on endpoint. */
static int connect_to(const char *endpoint) {
  const char *eps[] = {endpoint};
  F.c = testenv_client(eps, 1);
  F.wc = testenv_client(eps, 1);
  if (!F.c || !F.wc) return -1;
  keel_error err = {0};
  F.s = objstore_new(F.c, F.prefix, &err);
  F.ws = objstore_new(F.wc, F.prefix, &err);
  return F.s && F.ws ? 0 : -1;
}

static int setup_test(void **state) {
  memset(&F, 0, sizeof F);
  F.group = *state;
  snprintf(F.prefix, sizeof F.prefix, "/wct%d-%d", (int)getpid(), ++g_seq);
  if (F.group) return connect_to(F.group->endpoint);
  return 0;
}

/* Everything a test left, in dependency order: watchers, caches, stores,
 * clients, sinks, its own server. */
static int teardown_test(void **state) {
  (void)state;
  for (size_t i = 0; i < F.nwatchers; i++)
    if (F.watchers[i]) watch_cache_watcher_stop(F.watchers[i]);
  free(F.watchers);
  for (size_t i = 0; i < F.ncaches; i++) watch_cache_stop(F.caches[i]);
  objstore_free(F.s);
  objstore_free(F.ws);
  testenv_release_clients();
  for (size_t i = 0; i < F.nsinks; i++) {
    pthread_mutex_destroy(&F.sinks[i]->mu);
    free(F.sinks[i]->evs);
    free(F.sinks[i]);
  }
  free(F.sinks);
  if (F.own_used) testenv_stop(&F.own);
  memset(&F, 0, sizeof F);
  return 0;
}

static sink *new_sink(bool decode) {
  sink *s = calloc(1, sizeof *s);
  pthread_mutex_init(&s->mu, NULL);
  s->decode = decode;
  s->budget = -1;
  atomic_init(&s->stopped, false);
  atomic_init(&s->gate, false);
  atomic_init(&s->after_stop, 0);
  if (F.nsinks == F.capsinks) {
    F.capsinks = F.capsinks ? F.capsinks * 2 : 16;
    F.sinks = realloc(F.sinks, F.capsinks * sizeof *F.sinks);
  }
  F.sinks[F.nsinks++] = s;
  return s;
}

static const api_kind *pods(void) {
  const api_kind *k = api_kind_by_resource("pods");
  assert_non_null(k);
  return k;
}

/* keel-store promises that a progress notification comes after every earlier
 * event; etcd 3.4.23 does not (etcd issue 15220). */
static bool trusted(void) {
  return F.own_used || (F.group && strcmp(F.group->name, "keel-store") == 0);
}

static watch_cache *start_cache_on(objstore *store, const api_kind *k, size_t window, int bookmark_ms,
                                   size_t queue) {
  keel_error err = {0};
  watch_cache_options o = {.kind = k,
                           .store = store,
                           .window_events = window,
                           .bookmark_interval_ms = bookmark_ms,
                           .watcher_queue = queue,
                           .progress_trusted = trusted()};
  watch_cache *c = watch_cache_start(&o, &err);
  if (!c) fail_msg("watch_cache_start: %s", err.message);
  assert_true(F.ncaches < 8);
  F.caches[F.ncaches++] = c;
  return c;
}

static watch_cache *start_cache(size_t window, int bookmark_ms, size_t queue) {
  return start_cache_on(F.s, pods(), window, bookmark_ms, queue);
}

static void forget_cache(watch_cache *c) {
  for (size_t i = 0; i < F.ncaches; i++)
    if (F.caches[i] == c) F.caches[i] = F.caches[--F.ncaches];
}

/* Registers a watcher (stopped at teardown unless stop_watcher ran). */
static int watch_into(watch_cache *c, const cache_watch_options *o, sink *s, cache_watcher **out,
                      keel_error *err) {
  cache_watcher_sink cs = {.send = sink_send, .end = sink_end, .arg = s};
  int rc = watch_cache_watch(c, o, &cs, out, err);
  if (rc == 0) {
    if (F.nwatchers == F.capwatchers) {
      F.capwatchers = F.capwatchers ? F.capwatchers * 2 : 16;
      F.watchers = realloc(F.watchers, F.capwatchers * sizeof *F.watchers);
    }
    F.watchers[F.nwatchers++] = *out;
  }
  return rc;
}

static cache_watcher *watch_from(watch_cache *c, int64_t from, const cache_filter *f, bool bookmarks,
                                 sink *s) {
  cache_watch_options o = {.from_revision = from, .bookmarks = bookmarks};
  if (f) o.filter = *f;
  keel_error err = {0};
  cache_watcher *w = NULL;
  if (watch_into(c, &o, s, &w, &err) != 0) fail_msg("watch from %lld: %s", (long long)from, err.message);
  return w;
}

/* Stops w and marks its sink: any callback from now on is a violation. Safe
 * from any thread (the fixture's slot is cleared by pointer). */
static pthread_mutex_t g_stop_mu = PTHREAD_MUTEX_INITIALIZER;
static void stop_watcher(cache_watcher *w, sink *s) {
  pthread_mutex_lock(&g_stop_mu);
  for (size_t i = 0; i < F.nwatchers; i++)
    if (F.watchers[i] == w) F.watchers[i] = NULL;
  pthread_mutex_unlock(&g_stop_mu);
  watch_cache_watcher_stop(w);
  if (s) atomic_store(&s->stopped, true);
}

/* ------------------------------------------------------------------ servers */

/* SIGTERM to a pid this test started, then SIGKILL after 10 s. */
static void stop_pid(pid_t pid) { testproc_stop(pid, "keel-store", 10000); }

static int endpoint_port(const char *endpoint) {
  const char *colon = strrchr(endpoint, ':');
  return colon ? atoi(colon + 1) : 0;
}

/* The test's own keel-store, with the cache's and the writers' clients on it. */
static void own_store_start(void) {
  if (testenv_start_keel_store(&F.own, g_store_bin, MAX_REQUEST_BYTES) < 0) {
    testenv_stop(&F.own);
    fail_msg("cannot start keel-store");
  }
  F.own_used = true;
  assert_int_equal(connect_to(F.own.endpoint), 0);
}

static void own_store_stop(void) {
  stop_pid(F.own.pid);
  F.own.pid = 0;
}

/* The same data dir on another port: returns its pid, *client and *store on it. */
static pid_t own_store_aside(etcd_client **client, objstore **store) {
  char ep[256];
  pid_t pid = testenv_spawn_keel_store(&F.own, 0, ++F.restarts, ep, sizeof ep);
  if (pid < 0) fail_msg("cannot start keel-store aside");
  assert_int_not_equal(endpoint_port(ep), endpoint_port(F.own.endpoint));
  const char *eps[] = {ep};
  *client = testenv_client(eps, 1);
  assert_non_null(*client);
  keel_error err = {0};
  *store = objstore_new(*client, F.prefix, &err);
  assert_non_null(*store);
  return pid;
}

/* Back on the original port, same data dir. */
static void own_store_restart(void) {
  char ep[256];
  int port = endpoint_port(F.own.endpoint);
  pid_t pid = -1;
  for (int attempt = 0; attempt < 50 && pid < 0; attempt++) {
    pid = testenv_spawn_keel_store(&F.own, port, ++F.restarts, ep, sizeof ep);
    if (pid < 0) sleep_ms(100); /* the port may linger a moment */
  }
  if (pid < 0) fail_msg("cannot restart keel-store on port %d", port);
  assert_string_equal(ep, F.own.endpoint);
  F.own.pid = pid;
}

/* Until the writers' client gets answers again (its channel reconnects). */
static int64_t wait_store_answers(objstore *s) {
  int64_t deadline = now_ms() + RESTART_MS;
  for (;;) {
    int64_t rev = 0;
    keel_error err = {0};
    if (objstore_current_revision(s, &rev, &err) == 0) return rev;
    if (now_ms() > deadline) fail_msg("store does not answer: %s", err.message);
    sleep_ms(50);
  }
}

/* ------------------------------------------------------------------ pods */

typedef struct tpod {
  Keel__Api__V1__Pod pod;
  Keel__Api__V1__ObjectMeta meta;
  Keel__Api__V1__PodSpec spec;
  Keel__Api__V1__ObjectMeta__LabelsEntry label, *labels[1];
  Keel__Api__V1__ObjectMeta__AnnotationsEntry ann, *anns[1];
  char ns[32], name[64], app[16], node[32], uid[128];
} tpod;

static void tpod_init(tpod *p, const char *ns, const char *name, const char *app, const char *node) {
  memset(p, 0, sizeof *p);
  p->pod = (Keel__Api__V1__Pod)KEEL__API__V1__POD__INIT;
  p->meta = (Keel__Api__V1__ObjectMeta)KEEL__API__V1__OBJECT_META__INIT;
  p->spec = (Keel__Api__V1__PodSpec)KEEL__API__V1__POD_SPEC__INIT;
  p->label = (Keel__Api__V1__ObjectMeta__LabelsEntry)KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT;
  p->ann = (Keel__Api__V1__ObjectMeta__AnnotationsEntry)KEEL__API__V1__OBJECT_META__ANNOTATIONS_ENTRY__INIT;
  snprintf(p->ns, sizeof p->ns, "%s", ns);
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->app, sizeof p->app, "%s", app ? app : "");
  snprintf(p->node, sizeof p->node, "%s", node ? node : "");
  snprintf(p->uid, sizeof p->uid, "uid-%s-%s", ns, name);
  p->pod.metadata = &p->meta;
  p->pod.spec = &p->spec;
  p->meta.name = p->name;
  p->meta.namespace_ = p->ns;
  p->meta.uid = p->uid;
  if (app) {
    p->label.key = "app";
    p->label.value = p->app;
    p->labels[0] = &p->label;
    p->meta.labels = p->labels;
    p->meta.n_labels = 1;
  }
  p->spec.node_name = p->node;
}

static void tpod_annotate(tpod *p, char *value) {
  p->ann.key = "note";
  p->ann.value = value;
  p->anns[0] = &p->ann;
  p->meta.annotations = p->anns;
  p->meta.n_annotations = 1;
}

static int64_t create_pod_in(objstore *s, const char *ns, const char *name, const char *app,
                             const char *node) {
  tpod p;
  tpod_init(&p, ns, name, app, node);
  int64_t rev = 0;
  keel_error err = {0};
  int rc = objstore_create(s, pods(), &p.pod.base, NULL, &rev, &err);
  if (rc != 0) fail_msg("create %s/%s: %s", ns, name, err.message);
  return rev;
}

static int64_t create_pod(const char *ns, const char *name, const char *app) {
  return create_pod_in(F.ws, ns, name, app, NULL);
}

static int64_t update_pod_in(objstore *s, const char *ns, const char *name, const char *app, const char *node,
                             int64_t expected) {
  tpod p;
  tpod_init(&p, ns, name, app, node);
  int64_t rev = 0;
  keel_error err = {0};
  int rc = objstore_update(s, pods(), &p.pod.base, expected, NULL, &rev, &err);
  if (rc != 0) fail_msg("update %s/%s: %s", ns, name, err.message);
  return rev;
}

static int64_t update_pod(const char *ns, const char *name, const char *app, const char *node,
                          int64_t expected) {
  return update_pod_in(F.ws, ns, name, app, node, expected);
}

static int64_t delete_pod_in(objstore *s, const char *ns, const char *name, int64_t expected) {
  int64_t rev = 0;
  keel_error err = {0};
  int rc = objstore_delete(s, pods(), ns, name, expected, NULL, &rev, &err);
  if (rc != 0) fail_msg("delete %s/%s: %s", ns, name, err.message);
  return rev;
}

static int64_t delete_pod(const char *ns, const char *name, int64_t expected) {
  return delete_pod_in(F.ws, ns, name, expected);
}

/* A write outside every cache's prefix: moves the store's revision only. */
static int64_t put_elsewhere(void) {
  char key[128];
  snprintf(key, sizeof key, "/elsewhere%s", F.prefix);
  int64_t rev = 0;
  keel_error err = {0};
  if (etcd_put(F.wc, key, strlen(key), "x", 1, 0, &rev, &err) != 0) fail_msg("put: %s", err.message);
  return rev;
}

static int64_t store_revision(objstore *s) {
  int64_t rev = 0;
  keel_error err = {0};
  if (objstore_current_revision(s, &rev, &err) != 0) fail_msg("current revision: %s", err.message);
  return rev;
}

static void wait_cache(watch_cache *c, int64_t rev) {
  int rc = watch_cache_wait(c, rev, WAIT_MS);
  if (rc != 0)
    fail_msg("cache did not reach revision %lld (at %lld)", (long long)rev,
             (long long)watch_cache_revision(c));
}

static const char *meta_rv(const cache_object *o) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(pods(), cache_object_msg(o));
  assert_non_null(m);
  return m->resource_version;
}

static bool match_app(const api_kind *k, const ProtobufCMessage *obj, void *arg) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (!m) return false;
  for (size_t i = 0; i < m->n_labels; i++)
    if (strcmp(m->labels[i]->key, "app") == 0) return strcmp(m->labels[i]->value, (const char *)arg) == 0;
  return false;
}

static void expect_event(const rec_event *e, const char *type, int64_t rv, const char *name) {
  if (strcmp(e->kind, "v1/Pod") != 0) fail_msg("event object of kind \"%s\", want v1/Pod", e->kind);
  if (strcmp(e->type, type) != 0 || e->rv != rv || (name && strcmp(e->name, name) != 0))
    fail_msg("event: got %s %s/%s rv %lld, want %s %s rv %lld", e->type, e->ns, e->name, (long long)e->rv,
             type, name ? name : "*", (long long)rv);
}

/* ------------------------------------------------------------------ list, get */

static void test_list_and_get(void **state) {
  (void)state;
  keel_error err = {0};
  /* Objects in several namespaces, written out of order. */
  int64_t r_b2 = create_pod("b", "p2", "web");
  int64_t r_a1 = create_pod("a", "p1", "web");
  int64_t r_a3 = create_pod("a", "p3", "db");
  int64_t r_c0 = create_pod("c", "p0", NULL);
  int64_t r_b1 = create_pod("b", "p1", "db");
  /* Next to the prefix but not under it, and an undecodable value under it. */
  char key[256];
  snprintf(key, sizeof key, "%s/podsx/a/p9", F.prefix);
  assert_int_equal(etcd_put(F.wc, key, strlen(key), "x", 1, 0, NULL, &err), 0);
  snprintf(key, sizeof key, "%s/pods/a/corrupt", F.prefix);
  const char junk[] = {0x1a, 0x64, 0x0a};
  assert_int_equal(etcd_put(F.wc, key, strlen(key), junk, sizeof junk, 0, NULL, &err), 0);
  int64_t store_rev = store_revision(F.ws);

  watch_cache *c = start_cache(0, 0, 0);
  assert_int_equal(watch_cache_revision(c), store_rev);
  assert_int_equal(watch_cache_object_count(c), 5);
  assert_int_equal(watch_cache_watcher_count(c), 0);

  cache_object **items = NULL;
  size_t n = 0;
  int64_t rev = 0;
  cache_filter all = {0};
  assert_int_equal(watch_cache_list(c, &all, &items, &n, &rev), 0);
  assert_int_equal(rev, store_rev);
  assert_int_equal(n, 5);
  const char *want[] = {"a/p1", "a/p3", "b/p1", "b/p2", "c/p0"};
  const int64_t want_rev[] = {r_a1, r_a3, r_b1, r_b2, r_c0};
  for (size_t i = 0; i < n; i++) {
    const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)cache_object_msg(items[i]);
    char got[128];
    snprintf(got, sizeof got, "%s/%s", p->metadata->namespace_, p->metadata->name);
    assert_string_equal(got, want[i]);
    assert_int_equal(cache_object_revision(items[i]), want_rev[i]);
    char rvs[24];
    snprintf(rvs, sizeof rvs, "%lld", (long long)want_rev[i]);
    assert_string_equal(p->metadata->resource_version, rvs);
    assert_string_equal(p->api_version, "v1");
    assert_string_equal(p->kind, "Pod");
    /* The shared encoding is the decoded object, resourceVersion included. */
    size_t len = 0;
    const uint8_t *wire = cache_object_wire(items[i], &len);
    Keel__Api__V1__Pod *back = keel__api__v1__pod__unpack(NULL, len, wire);
    assert_non_null(back);
    assert_string_equal(back->metadata->name, p->metadata->name);
    assert_string_equal(back->metadata->resource_version, rvs);
    assert_string_equal(back->kind, "Pod");
    keel__api__v1__pod__free_unpacked(back, NULL);
  }
  /* References outlive the cache's own (taken and released by the caller). */
  cache_object_ref(items[0]);
  cache_object *kept = items[0];
  cache_objects_release(items, n);
  assert_string_equal(((const Keel__Api__V1__Pod *)cache_object_msg(kept))->metadata->name, "p1");
  cache_object_unref(kept);

  /* Namespace filter; predicate; both. */
  cache_filter fb = {.ns = "b"};
  assert_int_equal(watch_cache_list(c, &fb, &items, &n, &rev), 0);
  assert_int_equal(n, 2);
  cache_objects_release(items, n);
  cache_filter web = {.match = match_app, .arg = "web"};
  assert_int_equal(watch_cache_list(c, &web, &items, &n, &rev), 0);
  assert_int_equal(n, 2);
  assert_string_equal(((const Keel__Api__V1__Pod *)cache_object_msg(items[0]))->metadata->namespace_, "a");
  assert_string_equal(((const Keel__Api__V1__Pod *)cache_object_msg(items[1]))->metadata->namespace_, "b");
  cache_objects_release(items, n);
  cache_filter a_db = {.ns = "a", .match = match_app, .arg = "db"};
  assert_int_equal(watch_cache_list(c, &a_db, &items, &n, &rev), 0);
  assert_int_equal(n, 1);
  assert_string_equal(((const Keel__Api__V1__Pod *)cache_object_msg(items[0]))->metadata->name, "p3");
  cache_objects_release(items, n);
  cache_filter none = {.ns = "zzz"};
  assert_int_equal(watch_cache_list(c, &none, &items, &n, &rev), 0);
  assert_int_equal(n, 0);
  cache_objects_release(items, n);

  /* Get: hit and miss. */
  cache_object *o = NULL;
  rev = 0;
  assert_int_equal(watch_cache_get(c, "b", "p1", &o, &rev), 0);
  assert_int_equal(rev, store_rev);
  assert_int_equal(cache_object_revision(o), r_b1);
  char rvs[24];
  snprintf(rvs, sizeof rvs, "%lld", (long long)r_b1);
  assert_string_equal(meta_rv(o), rvs);
  cache_object_unref(o);
  o = (cache_object *)1;
  assert_int_equal(watch_cache_get(c, "a", "p2", &o, &rev), -ENOENT);
  assert_null(o);
  assert_int_equal(watch_cache_get(c, "c", "p1", &o, NULL), -ENOENT);
  assert_int_equal(watch_cache_get(c, "a", "corrupt", &o, NULL), -ENOENT);
  assert_int_equal(watch_cache_get(c, "", "p1", &o, NULL), -ENOENT);
}

/* More objects than one list page (500), and a cluster-scoped kind. */
static void test_list_pages_and_cluster_scoped(void **state) {
  (void)state;
  keel_error err = {0};
  const int total = 1100, per_txn = 100;
  for (int t = 0; t < total / per_txn; t++) {
    etcd_op ops[100];
    char keys[100][128];
    uint8_t *vals[100];
    for (int i = 0; i < per_txn; i++) {
      int idx = t * per_txn + i;
      tpod p;
      char name[32];
      snprintf(name, sizeof name, "p%04d", idx);
      tpod_init(&p, idx % 2 ? "odd" : "even", name, "web", NULL);
      size_t len = 0;
      vals[i] = objstore_encode(pods(), &p.pod.base, &len);
      objstore_key(F.ws, pods(), p.ns, p.name, keys[i], sizeof keys[i]);
      ops[i] = (etcd_op){.type = ETCD_OP_PUT,
                         .key = keys[i],
                         .key_len = strlen(keys[i]),
                         .value = vals[i],
                         .value_len = len};
    }
    etcd_txn_result r;
    assert_int_equal(etcd_txn(F.wc, NULL, 0, ops, per_txn, NULL, 0, &r, &err), 0);
    etcd_txn_result_clear(&r);
    for (int i = 0; i < per_txn; i++) free(vals[i]);
  }
  /* Nodes under the same prefix: a different cache, keys without namespace. */
  const api_kind *nodes = api_kind_by_resource("nodes");
  assert_non_null(nodes);
  for (int i = 2; i >= 0; i--) {
    Keel__Api__V1__Node n = KEEL__API__V1__NODE__INIT;
    Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
    char name[16];
    snprintf(name, sizeof name, "node-%d", i);
    m.name = name;
    n.metadata = &m;
    int64_t rev = 0;
    assert_int_equal(objstore_create(F.ws, nodes, &n.base, NULL, &rev, &err), 0);
  }
  int64_t store_rev = store_revision(F.ws);

  watch_cache *c = start_cache(0, 0, 0);
  assert_int_equal(watch_cache_object_count(c), total);
  cache_object **items = NULL;
  size_t n = 0;
  int64_t rev = 0;
  cache_filter all = {0};
  assert_int_equal(watch_cache_list(c, &all, &items, &n, &rev), 0);
  assert_int_equal(n, total);
  assert_int_equal(rev, store_rev);
  for (size_t i = 1; i < n; i++) {
    const Keel__Api__V1__ObjectMeta *a = api_object_meta(pods(), cache_object_msg(items[i - 1]));
    const Keel__Api__V1__ObjectMeta *b = api_object_meta(pods(), cache_object_msg(items[i]));
    char ka[128], kb[128];
    snprintf(ka, sizeof ka, "%s/%s", a->namespace_, a->name);
    snprintf(kb, sizeof kb, "%s/%s", b->namespace_, b->name);
    assert_true(strcmp(ka, kb) < 0);
  }
  cache_objects_release(items, n);
  cache_filter odd = {.ns = "odd"};
  assert_int_equal(watch_cache_list(c, &odd, &items, &n, &rev), 0);
  assert_int_equal(n, total / 2);
  cache_objects_release(items, n);

  watch_cache *nc = start_cache_on(F.s, nodes, 0, 0, 0);
  assert_int_equal(watch_cache_object_count(nc), 3);
  assert_int_equal(watch_cache_list(nc, &all, &items, &n, &rev), 0);
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++) {
    char want[32];
    snprintf(want, sizeof want, "node-%zu", i);
    assert_string_equal(api_object_meta(nodes, cache_object_msg(items[i]))->name, want);
  }
  cache_objects_release(items, n);
  cache_object *o = NULL;
  assert_int_equal(watch_cache_get(nc, "", "node-1", &o, NULL), 0);
  assert_string_equal(((const Keel__Api__V1__Node *)cache_object_msg(o))->kind, "Node");
  cache_object_unref(o);
  /* The namespace argument is ignored for a cluster-scoped kind. */
  assert_int_equal(watch_cache_get(nc, "default", "node-2", &o, NULL), 0);
  cache_object_unref(o);
  /* A node deleted shows in the node cache only. */
  int64_t rd = 0;
  assert_int_equal(objstore_delete(F.ws, nodes, "", "node-0", 0, NULL, &rd, &err), 0);
  wait_cache(nc, rd);
  if (trusted()) wait_cache(c, rd); /* through progress: nothing of pods changed */
  assert_int_equal(watch_cache_object_count(nc), 2);
  assert_int_equal(watch_cache_object_count(c), total);
  assert_int_equal(watch_cache_get(nc, "", "node-0", &o, NULL), -ENOENT);
}

/* ------------------------------------------------------------------ live events */

static void test_live_events_and_wait(void **state) {
  (void)state;
  int64_t r0 = store_revision(F.ws);
  watch_cache *c = start_cache(0, 0, 0);
  assert_int_equal(watch_cache_revision(c), r0);
  assert_int_equal(watch_cache_object_count(c), 0);
  assert_int_equal(watch_cache_progress_trusted(c), trusted());
  /* Already there: returns at once, even with no time to wait. */
  assert_int_equal(watch_cache_wait(c, r0, 0), 0);

  int64_t r1 = create_pod("a", "p1", "web");
  wait_cache(c, r1);
  cache_object *o = NULL;
  int64_t rev = 0;
  assert_int_equal(watch_cache_get(c, "a", "p1", &o, &rev), 0);
  assert_true(rev >= r1);
  assert_int_equal(cache_object_revision(o), r1);
  cache_object_unref(o);

  int64_t r2 = update_pod("a", "p1", "db", "n1", r1);
  wait_cache(c, r2);
  assert_int_equal(watch_cache_get(c, "a", "p1", &o, NULL), 0);
  assert_int_equal(cache_object_revision(o), r2);
  const Keel__Api__V1__Pod *p = (const Keel__Api__V1__Pod *)cache_object_msg(o);
  assert_string_equal(p->metadata->labels[0]->value, "db");
  assert_string_equal(p->spec->node_name, "n1");
  char rvs[24];
  snprintf(rvs, sizeof rvs, "%lld", (long long)r2);
  assert_string_equal(p->metadata->resource_version, rvs);
  assert_string_equal(p->kind, "Pod");
  /* The old version stays valid for whoever holds it. */
  cache_object *old = o;
  int64_t r3 = delete_pod("a", "p1", r2);
  wait_cache(c, r3);
  assert_int_equal(watch_cache_get(c, "a", "p1", &o, NULL), -ENOENT);
  assert_int_equal(watch_cache_object_count(c), 0);
  assert_string_equal(((const Keel__Api__V1__Pod *)cache_object_msg(old))->metadata->name, "p1");
  cache_object_unref(old);

  /* A consistent read after a write elsewhere: with a store whose progress
   * can be trusted the cache learns the revision from a progress
   * notification (nothing of this kind changed); otherwise only events move
   * it, and the caller reads from the store. */
  int64_t r4 = put_elsewhere();
  int64_t t0 = now_ms();
  if (trusted()) {
    assert_int_equal(watch_cache_wait(c, r4, WAIT_MS), 0);
    assert_true(watch_cache_revision(c) >= r4);
    assert_true(now_ms() - t0 < 5000);
  } else {
    assert_int_equal(watch_cache_wait(c, r4, 300), -ETIMEDOUT);
    assert_int_equal(watch_cache_revision(c), r3);
  }

  /* A future revision: times out, after about the time asked. */
  t0 = now_ms();
  assert_int_equal(watch_cache_wait(c, r4 + 1000, 300), -ETIMEDOUT);
  int64_t took = now_ms() - t0;
  assert_true(took >= 250);
  assert_true(took < 5000);
  assert_int_equal(watch_cache_wait(c, r4 + 1000, 0), -ETIMEDOUT);

  /* A waiter wakes as soon as the revision arrives (an event of this kind). */
  int64_t target = store_revision(F.ws) + 1;
  assert_int_equal(watch_cache_wait(c, target, 50), -ETIMEDOUT);
  int64_t r5 = create_pod("a", "p2", NULL);
  assert_int_equal(r5, target);
  assert_int_equal(watch_cache_wait(c, target, WAIT_MS), 0);
  assert_int_equal(watch_cache_object_count(c), 1);
}

/* ------------------------------------------------------------------ watchers */

typedef struct write_log {
  size_t n;
  int64_t rev[400];
  char type[400][12];
  atomic_size_t done;
  atomic_bool finished;
  char error[600];
} write_log;

/* 10 pods cycled through create, update, update, delete: every write is one
 * revision of this prefix and one event of a known type. Runs on its own
 * thread: records a failure instead of failing the test. */
static void *writer_main(void *arg) {
  write_log *wl = arg;
  int64_t cur[10] = {0};
  for (size_t i = 0; i < wl->n; i++) {
    int idx = (int)(i % 10);
    int phase = (int)((i / 10) % 4);
    char name[16];
    snprintf(name, sizeof name, "w%d", idx);
    tpod p;
    tpod_init(&p, "a", name, "web", phase == 2 ? "n2" : "n1");
    const char *type;
    int64_t rev = 0;
    keel_error err = {0};
    int rc;
    if (phase == 0) {
      rc = objstore_create(F.ws, pods(), &p.pod.base, NULL, &rev, &err);
      type = "ADDED";
    } else if (phase == 3) {
      rc = objstore_delete(F.ws, pods(), "a", name, cur[idx], NULL, &rev, &err);
      type = "DELETED";
    } else {
      rc = objstore_update(F.ws, pods(), &p.pod.base, cur[idx], NULL, &rev, &err);
      type = "MODIFIED";
    }
    if (rc != 0) {
      snprintf(wl->error, sizeof wl->error, "write %zu: %s", i, err.message);
      wl->n = i;
      break;
    }
    cur[idx] = rev;
    wl->rev[i] = rev;
    snprintf(wl->type[i], sizeof wl->type[i], "%s", type);
    atomic_store(&wl->done, i + 1);
  }
  atomic_store(&wl->finished, true);
  return NULL;
}

static void wait_written(write_log *wl, size_t n) {
  while (atomic_load(&wl->done) < n && !atomic_load(&wl->finished)) sleep_ms(1);
}

static void check_written(write_log *wl) {
  if (wl->error[0]) fail_msg("writer: %s", wl->error);
}

static void check_against_log(sink *s, const write_log *wl, int64_t from) {
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  size_t j = 0;
  for (size_t i = 0; i < wl->n; i++) {
    if (wl->rev[i] <= from) continue;
    if (j >= n) fail_msg("missing event rv %lld (got %zu events)", (long long)wl->rev[i], n);
    expect_event(&evs[j], wl->type[i], wl->rev[i], NULL);
    j++;
  }
  if (j != n) fail_msg("%zu extra events after rv %lld", n - j, (long long)evs[j].rv);
  free(evs);
}

/* A watch from a revision: the window's events after it, then live ones, no
 * duplicate and no gap at the seam, while a writer keeps writing. */
static void test_watch_from_revision(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 0);
  write_log *wl = calloc(1, sizeof *wl);
  wl->n = 240;
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, writer_main, wl), 0);
  wait_written(wl, 60);
  /* From a revision in the past (replay + live), from the cache's current
   * revision at that moment (live only), and from one ahead of the cache. */
  int64_t from_past = wl->rev[30];
  sink *s1 = new_sink(true), *s2 = new_sink(true), *s3 = new_sink(true);
  watch_from(c, from_past, NULL, false, s1);
  int64_t from_now = watch_cache_revision(c);
  watch_from(c, from_now, NULL, false, s2);
  wait_written(wl, 100);
  int64_t from_ahead = watch_cache_revision(c) + 20;
  watch_from(c, from_ahead, NULL, false, s3);
  pthread_join(t, NULL);
  check_written(wl);
  int64_t last = wl->rev[wl->n - 1];
  wait_cache(c, last);
  size_t want1 = 0, want2 = 0, want3 = 0;
  for (size_t i = 0; i < wl->n; i++) {
    want1 += wl->rev[i] > from_past;
    want2 += wl->rev[i] > from_now;
    want3 += wl->rev[i] > from_ahead;
  }
  assert_true(wait_accepted(s1, want1, WAIT_MS));
  assert_true(wait_accepted(s2, want2, WAIT_MS));
  assert_true(wait_accepted(s3, want3, WAIT_MS));
  sleep_ms(50); /* nothing more may come */
  check_against_log(s1, wl, from_past);
  check_against_log(s2, wl, from_now);
  check_against_log(s3, wl, from_ahead);
  assert_int_equal(s1->out_of_order + s2->out_of_order + s3->out_of_order, 0);
  assert_int_equal(s1->undecodable + s2->undecodable + s3->undecodable, 0);
  assert_int_equal(s1->ends + s2->ends + s3->ends, 0);
  assert_int_equal(watch_cache_watcher_count(c), 3);
  free(wl);
}

static void test_send_initial(void **state) {
  (void)state;
  int64_t r_a2 = create_pod("a", "p2", "web");
  int64_t r_a1 = create_pod("a", "p1", "web");
  create_pod("b", "p1", "web");
  watch_cache *c = start_cache(0, 0, 0);
  /* Changed after the cache started: the initial state has its latest version. */
  r_a2 = update_pod("a", "p2", "web", "n1", r_a2);
  wait_cache(c, r_a2);

  sink *s = new_sink(true);
  cache_watch_options o = {.filter = {.ns = "a"}, .send_initial = true};
  keel_error err = {0};
  cache_watcher *w = NULL;
  assert_int_equal(watch_into(c, &o, s, &w, &err), 0);
  assert_true(wait_accepted(s, 2, WAIT_MS));
  int64_t r_mod = update_pod("a", "p1", "web", "n2", r_a1);
  int64_t r_add = create_pod("a", "p3", "db");
  create_pod("b", "p9", "web"); /* another namespace: not seen */
  int64_t r_del = delete_pod("a", "p2", 0);
  wait_cache(c, r_del);
  assert_true(wait_accepted(s, 5, WAIT_MS));
  sleep_ms(50);
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  assert_int_equal(n, 5);
  /* The initial ADDED events, sorted by name, each at its own version. */
  expect_event(&evs[0], "ADDED", r_a1, "p1");
  expect_event(&evs[1], "ADDED", r_a2, "p2");
  expect_event(&evs[2], "MODIFIED", r_mod, "p1");
  expect_event(&evs[3], "ADDED", r_add, "p3");
  expect_event(&evs[4], "DELETED", r_del, "p2");
  for (size_t i = 0; i < n; i++) assert_string_equal(evs[i].ns, "a");
  free(evs);

  /* send_initial on an empty match: nothing, then live events. */
  sink *e = new_sink(true);
  cache_watch_options eo = {.filter = {.ns = "empty"}, .send_initial = true};
  assert_int_equal(watch_into(c, &eo, e, &w, &err), 0);
  int64_t r_e = create_pod("empty", "x", NULL);
  wait_cache(c, r_e);
  assert_true(wait_accepted(e, 1, WAIT_MS));
  n = sink_events(e, &evs);
  assert_int_equal(n, 1);
  expect_event(&evs[0], "ADDED", r_e, "x");
  free(evs);
}

/* Kubernetes' rule for filtered watches: into the filter = ADDED, out of it =
 * DELETED carrying the object as it was, at the change's revision; inside =
 * MODIFIED. Live and replayed alike. */
static void test_filter_transitions(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  cache_filter f = {.ns = "a", .match = match_app, .arg = "web"};
  sink *live = new_sink(true);
  watch_from(c, r0, &f, false, live);

  int64_t r1 = create_pod("a", "p1", "web");           /* in: ADDED */
  int64_t r2 = update_pod("a", "p1", "db", NULL, r1);  /* out: DELETED (as web) */
  int64_t r3 = update_pod("a", "p1", "db", "n1", r2);  /* outside: nothing */
  int64_t r4 = update_pod("a", "p1", "web", "n1", r3); /* in again: ADDED */
  int64_t r5 = update_pod("a", "p1", "web", "n2", r4); /* inside: MODIFIED */
  create_pod("b", "p1", "web");                        /* other namespace */
  int64_t r7 = create_pod("a", "p2", "db");            /* never matches */
  int64_t r8 = delete_pod("a", "p1", r5);              /* DELETED */
  int64_t r9 = delete_pod("a", "p2", r7);              /* nothing */
  wait_cache(c, r9);
  assert_true(wait_accepted(live, 5, WAIT_MS));
  sleep_ms(50);

  /* The same from the window. */
  sink *replay = new_sink(true);
  watch_from(c, r0, &f, false, replay);
  assert_true(wait_accepted(replay, 5, WAIT_MS));
  sleep_ms(50);

  sink *sinks[] = {live, replay};
  for (int k = 0; k < 2; k++) {
    rec_event *evs = NULL;
    size_t n = sink_events(sinks[k], &evs);
    assert_int_equal(n, 5);
    expect_event(&evs[0], "ADDED", r1, "p1");
    assert_string_equal(evs[0].app, "web");
    expect_event(&evs[1], "DELETED", r2, "p1");
    assert_string_equal(evs[1].app, "web"); /* the object as it was, at the new revision */
    expect_event(&evs[2], "ADDED", r4, "p1");
    expect_event(&evs[3], "MODIFIED", r5, "p1");
    expect_event(&evs[4], "DELETED", r8, "p1");
    assert_string_equal(evs[4].app, "web");
    for (size_t i = 0; i < n; i++) assert_string_equal(evs[i].ns, "a");
    free(evs);
  }
  /* An unfiltered watcher from r0 sees all nine. */
  sink *all = new_sink(true);
  watch_from(c, r0, NULL, false, all);
  assert_true(wait_accepted(all, 9, WAIT_MS));
  rec_event *evs = NULL;
  size_t n = sink_events(all, &evs);
  assert_int_equal(n, 9);
  expect_event(&evs[1], "MODIFIED", r2, "p1");
  expect_event(&evs[7], "DELETED", r8, "p1");
  assert_string_equal(evs[7].app, "web");
  free(evs);
}

/* ------------------------------------------------------------------ window */

static void test_window_too_old(void **state) {
  (void)state;
  watch_cache *c = start_cache(10, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  /* However the window was first filled, nothing older than 10 revisions
   * before the list can be in it. */
  keel_error err = {0};
  cache_watcher *w = NULL;
  sink *s0 = new_sink(true);
  cache_watch_options o = {.from_revision = r0 - 11};
  if (r0 > 11) {
    assert_int_equal(watch_into(c, &o, s0, &w, &err), -WATCH_CACHE_TOO_OLD);
    assert_non_null(strstr(err.message, "too old resource version"));
  }

  int64_t revs[20];
  for (int i = 0; i < 20; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%02d", i);
    revs[i] = create_pod("a", name, NULL);
  }
  wait_cache(c, revs[19]);
  /* The window holds the last 10 events; events after revs[9] are all there. */
  memset(&err, 0, sizeof err);
  o.from_revision = revs[9] - 1;
  w = (cache_watcher *)1;
  assert_int_equal(watch_into(c, &o, s0, &w, &err), -WATCH_CACHE_TOO_OLD);
  assert_int_equal(err.code, WATCH_CACHE_TOO_OLD);
  assert_non_null(strstr(err.message, "too old resource version"));
  char num[24];
  snprintf(num, sizeof num, "%lld", (long long)(revs[9] - 1));
  assert_non_null(strstr(err.message, num)); /* names the revision asked for */
  o.from_revision = revs[0];
  assert_int_equal(watch_into(c, &o, s0, &w, &err), -WATCH_CACHE_TOO_OLD);
  assert_int_equal(watch_cache_watcher_count(c), 0);
  assert_int_equal(s0->accepted + (size_t)s0->ends, 0);

  /* Exactly the window's start works: the 10 events after it. */
  sink *s = new_sink(true);
  watch_from(c, revs[9], NULL, false, s);
  assert_true(wait_accepted(s, 10, WAIT_MS));
  sleep_ms(50);
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  assert_int_equal(n, 10);
  for (int i = 0; i < 10; i++) expect_event(&evs[i], "ADDED", revs[10 + i], NULL);
  free(evs);
  /* So does the newest revision (nothing to replay) and send_initial. */
  sink *s2 = new_sink(true);
  watch_from(c, revs[19], NULL, false, s2);
  cache_watch_options init = {.send_initial = true};
  sink *s3 = new_sink(true);
  assert_int_equal(watch_into(c, &init, s3, &w, &err), 0);
  assert_true(wait_accepted(s3, 20, WAIT_MS));
  int64_t r = create_pod("a", "late", NULL);
  assert_true(wait_accepted(s2, 1, WAIT_MS));
  assert_true(wait_accepted(s3, 21, WAIT_MS));
  assert_true(wait_accepted(s, 11, WAIT_MS));
  n = sink_events(s2, &evs);
  assert_int_equal(n, 1);
  expect_event(&evs[0], "ADDED", r, "late");
  free(evs);
}

/* The window starts with the store's own recent history of the prefix: a
 * client that was watching through another cache (another apiserver, or this
 * one before a restart) resumes from its last resourceVersion, no relist. */
static void test_window_from_history(void **state) {
  (void)state;
  int64_t h1 = create_pod("a", "p1", "web");
  int64_t h2 = update_pod("a", "p1", "db", NULL, h1);
  int64_t h3 = create_pod("a", "p2", "web");
  int64_t h4 = delete_pod("a", "p1", h2);
  put_elsewhere();
  watch_cache *c = start_cache(100, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  assert_true(r0 > h4);
  sink *all = new_sink(true), *web = new_sink(true);
  cache_filter fweb = {.match = match_app, .arg = "web"};
  keel_error err = {0};
  cache_watch_options o = {.from_revision = h1};
  cache_watcher *w = NULL;
  int rc = watch_into(c, &o, all, &w, &err);
  if (rc != 0)
    fail_msg("watch from %lld (cache listed at %lld): %s", (long long)h1, (long long)r0, err.message);
  watch_from(c, h1, &fweb, false, web);
  int64_t r5 = create_pod("a", "p3", "web");
  wait_cache(c, r5);
  wait_accepted(all, 4, WAIT_MS);
  wait_accepted(web, 3, WAIT_MS);
  sleep_ms(50);
  rec_event *evs = NULL;
  size_t n = sink_events(all, &evs);
  if (n != 4)
    fail_msg("watch from %lld of a cache listed at %lld: %zu events, want 4 (%s %lld first)", (long long)h1,
             (long long)r0, n, n ? evs[0].type : "-", n ? (long long)evs[0].rv : 0LL);
  expect_event(&evs[0], "MODIFIED", h2, "p1");
  assert_string_equal(evs[0].app, "db");
  expect_event(&evs[1], "ADDED", h3, "p2");
  expect_event(&evs[2], "DELETED", h4, "p1");
  assert_string_equal(evs[2].app, "db");
  expect_event(&evs[3], "ADDED", r5, "p3");
  free(evs);
  /* Filtered, from history: p1 left the filter at h2 (DELETED, as it was). */
  n = sink_events(web, &evs);
  assert_int_equal(n, 3);
  expect_event(&evs[0], "DELETED", h2, "p1");
  assert_string_equal(evs[0].app, "web");
  expect_event(&evs[1], "ADDED", h3, "p2");
  expect_event(&evs[2], "ADDED", r5, "p3");
  free(evs);
}

/* ------------------------------------------------------------------ slow watchers */

static void test_slow_watcher_ended(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 5);
  int64_t r0 = watch_cache_revision(c);
  sink *slow = new_sink(true), *ok = new_sink(true);
  slow->budget = 0; /* its stream queue is full, always */
  cache_watcher *ws = watch_from(c, r0, NULL, false, slow);
  watch_from(c, r0, NULL, false, ok);
  int64_t revs[16];
  /* Up to watcher_queue (5) pending: kept. */
  for (int i = 0; i < 5; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%02d", i);
    int64_t t0 = now_ms();
    revs[i] = create_pod("a", name, NULL);
    assert_true(now_ms() - t0 < 5000); /* the writer is never held up */
  }
  wait_cache(c, revs[4]);
  assert_true(wait_accepted(ok, 5, WAIT_MS));
  sleep_ms(50);
  assert_int_equal(sink_ends(slow), 0);
  assert_int_equal(watch_cache_watcher_count(c), 2);
  assert_true(slow->refusals >= 1);
  assert_int_equal(slow->accepted, 0);
  /* One more: over the bound, ended with RESOURCE_EXHAUSTED. */
  revs[5] = create_pod("a", "p05", NULL);
  wait_cache(c, revs[5]);
  assert_true(wait_ends(slow, 1, WAIT_MS));
  assert_int_equal(slow->code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_true(strlen(slow->msg) > 0);
  assert_int_equal(watch_cache_watcher_count(c), 1);
  /* The others go on; the ended one gets nothing more, not even when its
   * stream has room again. */
  for (int i = 6; i < 16; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%02d", i);
    revs[i] = create_pod("a", name, NULL);
  }
  wait_cache(c, revs[15]);
  assert_true(wait_accepted(ok, 16, WAIT_MS));
  sink_set_budget(slow, -1);
  watch_cache_watcher_writable(ws);
  sleep_ms(50);
  assert_int_equal(slow->accepted, 0);
  assert_int_equal(sink_ends(slow), 1);
  rec_event *evs = NULL;
  size_t n = sink_events(ok, &evs);
  assert_int_equal(n, 16);
  for (int i = 0; i < 16; i++) expect_event(&evs[i], "ADDED", revs[i], NULL);
  free(evs);
  assert_int_equal(ok->ends, 0);
  stop_watcher(ws, slow);
  assert_int_equal(atomic_load(&slow->after_stop), 0);
}

static void test_writable_resumes(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 5);
  int64_t r0 = watch_cache_revision(c);
  sink *s = new_sink(true);
  s->budget = 0;
  cache_watcher *w = watch_from(c, r0, NULL, false, s);
  int64_t revs[10];
  for (int i = 0; i < 4; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    revs[i] = create_pod("a", name, NULL);
  }
  wait_cache(c, revs[3]);
  sleep_ms(20);
  assert_int_equal(s->accepted, 0);
  /* Room for two: two go, then it blocks again. */
  sink_set_budget(s, 2);
  watch_cache_watcher_writable(w);
  assert_int_equal(sink_accepted(s), 2);
  /* More pending meanwhile (4 - 2 + 2 = 4, under the bound). */
  revs[4] = create_pod("a", "p4", NULL);
  revs[5] = create_pod("a", "p5", NULL);
  wait_cache(c, revs[5]);
  sleep_ms(20);
  assert_int_equal(sink_accepted(s), 2);
  /* Room for all: everything, in order; then live again. */
  sink_set_budget(s, -1);
  watch_cache_watcher_writable(w);
  assert_int_equal(sink_accepted(s), 6);
  for (int i = 6; i < 10; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    revs[i] = create_pod("a", name, NULL);
  }
  wait_cache(c, revs[9]);
  assert_true(wait_accepted(s, 10, WAIT_MS));
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  assert_int_equal(n, 10);
  for (int i = 0; i < 10; i++) expect_event(&evs[i], "ADDED", revs[i], NULL);
  free(evs);
  assert_int_equal(sink_ends(s), 0);
  /* A spurious writable changes nothing. */
  watch_cache_watcher_writable(w);
  assert_int_equal(sink_accepted(s), 10);
}

/* A sink whose stream is gone (a negative answer other than -ENOBUFS): the
 * watcher delivers nothing more and does not disturb the others. */
static int gone_send(void *arg, const rpc_shared_message *m) {
  (void)m;
  atomic_fetch_add((atomic_int *)arg, 1);
  return -EPIPE;
}

static void test_sink_gone(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 5);
  int64_t r0 = watch_cache_revision(c);
  atomic_int calls;
  atomic_init(&calls, 0);
  cache_watcher_sink gs = {.send = gone_send, .arg = &calls};
  cache_watch_options o = {.from_revision = r0};
  cache_watcher *gw = NULL;
  keel_error err = {0};
  assert_int_equal(watch_cache_watch(c, &o, &gs, &gw, &err), 0);
  sink *ok = new_sink(true);
  watch_from(c, r0, NULL, false, ok);
  int64_t last = 0;
  for (int i = 0; i < 20; i++) {
    char name[16];
    snprintf(name, sizeof name, "p%d", i);
    last = create_pod("a", name, NULL);
  }
  wait_cache(c, last);
  assert_true(wait_accepted(ok, 20, WAIT_MS));
  assert_int_equal(atomic_load(&calls), 1);
  watch_cache_watcher_stop(gw);
}

/* ------------------------------------------------------------------ bookmarks */

static void test_bookmarks(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 100, 0);
  int64_t r0 = watch_cache_revision(c);
  /* Three watchers on namespace "a"; changes in "b" move the cache along
   * without an event for them. */
  cache_filter fa = {.ns = "a"};
  sink *with = new_sink(true), *without = new_sink(true), *blocked = new_sink(true);
  watch_from(c, r0, &fa, true, with);
  watch_from(c, r0, &fa, false, without);
  cache_watcher *bw = watch_from(c, r0, &fa, true, blocked);
  int64_t r1 = create_pod("a", "p1", NULL);
  assert_true(wait_accepted(with, 1, WAIT_MS));
  assert_true(wait_accepted(blocked, 1, WAIT_MS));
  sink_set_budget(blocked, 0);              /* its stream is full from now on */
  int64_t r2 = create_pod("a", "p2", NULL); /* pending for `blocked` */
  int64_t r3 = create_pod("b", "q1", NULL);
  wait_cache(c, r3);
  /* `with` learns r3 in a bookmark within a few intervals. */
  int64_t deadline = now_ms() + WAIT_MS;
  bool got = false;
  while (!got && now_ms() < deadline) {
    rec_event *evs = NULL;
    size_t n = sink_events(with, &evs);
    for (size_t i = 0; i < n; i++) got |= strcmp(evs[i].type, "BOOKMARK") == 0 && evs[i].rv >= r3;
    free(evs);
    if (!got) sleep_ms(10);
  }
  assert_true(got);
  int64_t r4 = 0;
  if (trusted()) r4 = put_elsewhere(); /* progress moves the cache: one more bookmark */
  sleep_ms(400);

  rec_event *evs = NULL;
  size_t n = sink_events(with, &evs);
  assert_true(n >= 3);
  expect_event(&evs[0], "ADDED", r1, "p1");
  expect_event(&evs[1], "ADDED", r2, "p2");
  int64_t last = r2;
  int bookmarks = 0;
  for (size_t i = 2; i < n; i++) {
    if (strcmp(evs[i].type, "BOOKMARK") != 0) fail_msg("unexpected %s", evs[i].type);
    assert_true(evs[i].bare);      /* only metadata.resourceVersion */
    assert_true(evs[i].rv > last); /* only when the cache moved past what it sent */
    assert_true(evs[i].rv <= store_revision(F.ws));
    last = evs[i].rv;
    bookmarks++;
  }
  /* Nothing changes after r3 (r4): no bookmark every interval regardless. */
  assert_true(bookmarks >= 1);
  assert_true(bookmarks <= 2);
  if (trusted()) {
    if (last < r4)
      fail_msg("no bookmark at the revision learnt from progress (%lld, last %lld)", (long long)r4,
               (long long)last);
  } else {
    assert_int_equal(last, r3);
  }
  free(evs);
  /* Without bookmarks: only the events. */
  n = sink_events(without, &evs);
  assert_int_equal(n, 2);
  expect_event(&evs[0], "ADDED", r1, "p1");
  expect_event(&evs[1], "ADDED", r2, "p2");
  free(evs);
  /* A watcher with an undelivered event gets no bookmark past it; once it
   * drains, the bookmark follows the event. */
  n = sink_events(blocked, &evs);
  assert_int_equal(n, 1);
  free(evs);
  sink_set_budget(blocked, -1);
  watch_cache_watcher_writable(bw);
  assert_int_equal(sink_accepted(blocked), 2);
  sleep_ms(300);
  n = sink_events(blocked, &evs);
  assert_true(n >= 2);
  expect_event(&evs[1], "ADDED", r2, "p2");
  for (size_t i = 2; i < n; i++) {
    assert_string_equal(evs[i].type, "BOOKMARK");
    assert_true(evs[i].rv > r2);
  }
  free(evs);
}

/* The cache's own store watch falls behind (its callback thread stalls while
 * the store takes many writes): the store then sends the backlog from history
 * (keel-store: responses of up to 256 KiB, each with the header revision of
 * the whole catch-up round; etcd: batches with the store's current revision).
 * Every event must still reach the cache. */
static void test_store_catchup_after_stall(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  sink *staller = new_sink(false), *ok = new_sink(true);
  watch_from(c, r0, NULL, false, staller);
  watch_from(c, r0, NULL, false, ok);
  atomic_store(&staller->gate, true);
  int64_t first = create_pod("a", "first", NULL);
  /* The cache's callback thread is now held in the staller's send. */
  /* Enough to overflow the store's send queue for the stream (1024 messages
   * or 4 MiB) plus the HTTP/2 windows, then more than one catch-up response. */
  enum { N = 1500, NOTE = 16000 };
  char *note = malloc(NOTE + 1);
  memset(note, 'n', NOTE);
  note[NOTE] = '\0';
  keel_error err = {0};
  int64_t *revs = calloc(N, sizeof *revs);
  for (int i = 0; i < N; i++) {
    tpod p;
    char name[16];
    snprintf(name, sizeof name, "s%04d", i);
    tpod_init(&p, "a", name, NULL, NULL);
    tpod_annotate(&p, note);
    if (objstore_create(F.ws, pods(), &p.pod.base, NULL, &revs[i], &err) != 0) {
      atomic_store(&staller->gate, false);
      fail_msg("create %s: %s", name, err.message);
    }
  }
  free(note);
  atomic_store(&staller->gate, false);
  int64_t last = revs[N - 1];
  int rc = watch_cache_wait(c, last, 30000);
  if (rc != 0) fail_msg("cache at %lld, want %lld", (long long)watch_cache_revision(c), (long long)last);
  wait_accepted(ok, N + 1, WAIT_MS);
  size_t objects = watch_cache_object_count(c);
  rec_event *evs = NULL;
  size_t n = sink_events(ok, &evs);
  size_t missing = 0;
  int64_t first_missing = 0;
  size_t j = 0;
  for (int i = 0; i < N; i++) {
    while (j < n && evs[j].rv < revs[i]) j++;
    if (j >= n || evs[j].rv != revs[i]) {
      if (!missing++) first_missing = revs[i];
    }
  }
  free(evs);
  free(revs);
  if (objects != N + 1 || n != N + 1 || missing)
    fail_msg(
        "after a stall of the store watch (first event %lld): cache holds %zu objects (want %d), watcher got "
        "%zu events (want %d), %zu writes never seen, first rv %lld",
        (long long)first, objects, N + 1, n, N + 1, missing, (long long)first_missing);
}

/* ------------------------------------------------------------------ many watchers */

#define MANY 1000

typedef struct stopper {
  cache_watcher **ws;
  sink **sinks;
  size_t from, to;
  write_log *wl;
} stopper;

/* Stops watchers [from, to) one by one while the writer writes. */
static void *stopper_main(void *arg) {
  stopper *st = arg;
  wait_written(st->wl, 5);
  for (size_t i = st->from; i < st->to; i++) {
    stop_watcher(st->ws[i], st->sinks[i]);
    if (i % 25 == 0) sleep_ms(1);
  }
  return NULL;
}

static void test_many_watchers(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  cache_watcher **ws = calloc(MANY, sizeof *ws);
  sink **sinks = calloc(MANY, sizeof *sinks);
  for (size_t i = 0; i < MANY; i++) {
    sinks[i] = new_sink(i % 100 == 0); /* a few record, the rest count */
    ws[i] = watch_from(c, r0, NULL, false, sinks[i]);
  }
  assert_int_equal(watch_cache_watcher_count(c), MANY);
  write_log *wl = calloc(1, sizeof *wl);
  wl->n = 80;
  pthread_t wt, st1, st2;
  /* Two threads stop the odd-numbered half (in two runs), the writer writes. */
  stopper a = {.ws = ws, .sinks = sinks, .from = MANY / 2, .to = MANY * 3 / 4, .wl = wl};
  stopper b = {.ws = ws, .sinks = sinks, .from = MANY * 3 / 4, .to = MANY, .wl = wl};
  assert_int_equal(pthread_create(&wt, NULL, writer_main, wl), 0);
  assert_int_equal(pthread_create(&st1, NULL, stopper_main, &a), 0);
  assert_int_equal(pthread_create(&st2, NULL, stopper_main, &b), 0);
  pthread_join(wt, NULL);
  pthread_join(st1, NULL);
  pthread_join(st2, NULL);
  check_written(wl);
  int64_t last = wl->rev[wl->n - 1];
  wait_cache(c, last);
  assert_int_equal(watch_cache_watcher_count(c), MANY / 2);
  for (size_t i = 0; i < MANY / 2; i++) {
    if (!wait_accepted(sinks[i], wl->n, WAIT_MS))
      fail_msg("watcher %zu got %zu of %zu events", i, sink_accepted(sinks[i]), wl->n);
  }
  sleep_ms(50);
  for (size_t i = 0; i < MANY; i++) {
    assert_int_equal(atomic_load(&sinks[i]->after_stop), 0);
    assert_int_equal(sinks[i]->ends, 0);
    if (i < MANY / 2) assert_int_equal(sinks[i]->accepted, wl->n);
    else assert_true(sinks[i]->accepted <= wl->n);
    if (sinks[i]->decode && i < MANY / 2) check_against_log(sinks[i], wl, r0);
  }
  /* After the writes: stopped watchers stay silent. */
  int64_t r = create_pod("b", "after", NULL);
  wait_cache(c, r);
  assert_true(wait_accepted(sinks[0], wl->n + 1, WAIT_MS));
  sleep_ms(50);
  for (size_t i = MANY / 2; i < MANY; i++) assert_int_equal(atomic_load(&sinks[i]->after_stop), 0);
  free(ws);
  free(sinks);
  free(wl);
}

/* Stop racing delivery to the same watcher, many times: stop may run while
 * its watcher is inside send. */
static int slow_send(void *arg, const rpc_shared_message *m) {
  sink *s = arg;
  int rc = sink_send(s, m);
  usleep(200);
  return rc;
}

static void test_stop_during_send(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 0);
  write_log *wl = calloc(1, sizeof *wl);
  wl->n = 120;
  pthread_t wt;
  assert_int_equal(pthread_create(&wt, NULL, writer_main, wl), 0);
  int rounds = 0;
  while (!atomic_load(&wl->finished)) {
    sink *s = new_sink(false);
    cache_watcher_sink cs = {.send = slow_send, .end = sink_end, .arg = s};
    cache_watch_options o = {.from_revision = watch_cache_revision(c)};
    cache_watcher *w = NULL;
    keel_error err = {0};
    assert_int_equal(watch_cache_watch(c, &o, &cs, &w, &err), 0);
    sleep_ms(rounds % 3);
    watch_cache_watcher_stop(w);
    atomic_store(&s->stopped, true);
    sleep_ms(1);
    assert_int_equal(atomic_load(&s->after_stop), 0);
    rounds++;
  }
  pthread_join(wt, NULL);
  check_written(wl);
  assert_true(rounds > 5);
  assert_int_equal(watch_cache_watcher_count(c), 0);
  free(wl);
}

/* ------------------------------------------------------------------ store restarts */

static void test_store_restart(void **state) {
  (void)state;
  own_store_start();
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  sink *s = new_sink(true);
  watch_from(c, r0, NULL, false, s);
  int64_t r1 = create_pod("a", "p1", "web");
  wait_cache(c, r1);
  assert_true(wait_accepted(s, 1, WAIT_MS));

  /* Down; meanwhile the same data changes through another port. */
  own_store_stop();
  sleep_ms(300); /* the cache notices and keeps retrying */
  etcd_client *qc = NULL;
  objstore *qs = NULL;
  pid_t aside = own_store_aside(&qc, &qs);
  int64_t r2 = create_pod_in(qs, "a", "p2", "web", NULL);
  int64_t r3 = update_pod_in(qs, "a", "p1", "db", "n1", r1);
  int64_t r4 = delete_pod_in(qs, "a", "p2", r2);
  objstore_free(qs);
  testenv_client_destroy(qc);
  stop_pid(aside);

  /* Back on the same port: the cache resumes from where it was, and what
   * happens after the restart arrives too. */
  own_store_restart();
  wait_store_answers(F.ws);
  int64_t r5 = create_pod("a", "p3", NULL);
  int rc = watch_cache_wait(c, r5, RESTART_MS);
  if (rc != 0)
    fail_msg("cache stuck at %lld after the restart (want %lld)", (long long)watch_cache_revision(c),
             (long long)r5);
  assert_true(wait_accepted(s, 5, WAIT_MS));
  sleep_ms(50);
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  assert_int_equal(n, 5);
  expect_event(&evs[0], "ADDED", r1, "p1");
  expect_event(&evs[1], "ADDED", r2, "p2");
  expect_event(&evs[2], "MODIFIED", r3, "p1");
  expect_event(&evs[3], "DELETED", r4, "p2");
  expect_event(&evs[4], "ADDED", r5, "p3");
  free(evs);
  assert_int_equal(sink_ends(s), 0); /* a plain restart ends no watcher */
  assert_int_equal(watch_cache_object_count(c), 2);
  cache_object *o = NULL;
  assert_int_equal(watch_cache_get(c, "a", "p1", &o, NULL), 0);
  assert_int_equal(cache_object_revision(o), r3);
  cache_object_unref(o);
  /* The window kept its events across the restart. */
  sink *late = new_sink(true);
  watch_from(c, r0, NULL, false, late);
  assert_true(wait_accepted(late, 5, WAIT_MS));
}

/* The store stays down for a while: the cache keeps trying (every attempt
 * fails at once) and must be watching again soon after the store is back. */
static void test_store_down_for_a_while(void **state) {
  (void)state;
  own_store_start();
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  sink *s = new_sink(true);
  watch_from(c, r0, NULL, false, s);
  int64_t r1 = create_pod("a", "p1", NULL);
  wait_cache(c, r1);
  own_store_stop();
  /* Meanwhile a consistent read of a revision the cache cannot reach times out. */
  int64_t t0 = now_ms();
  assert_int_equal(watch_cache_wait(c, r1 + 1, 500), -ETIMEDOUT);
  assert_true(now_ms() - t0 < 5000);
  sleep_ms(2500);
  own_store_restart();
  wait_store_answers(F.ws);
  int64_t r2 = create_pod("a", "p2", NULL);
  int rc = watch_cache_wait(c, r2, RESTART_MS);
  if (rc != 0)
    fail_msg(
        "cache stuck at %lld, %d s after the store came back (want %lld): its store watch is not being "
        "re-established",
        (long long)watch_cache_revision(c), RESTART_MS / 1000, (long long)r2);
  assert_true(wait_accepted(s, 2, WAIT_MS));
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  assert_int_equal(n, 2);
  expect_event(&evs[1], "ADDED", r2, "p2");
  free(evs);
}

/* A restart after more than one watch response's worth of changes (keel-store
 * sends catch-up in responses of up to 256 KiB, etcd of up to 1000 revisions):
 * the cache must get every one of them. */
static void test_store_restart_large_catchup(void **state) {
  (void)state;
  own_store_start();
  watch_cache *c = start_cache(0, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  sink *s = new_sink(true);
  watch_from(c, r0, NULL, false, s);
  int64_t r1 = create_pod("a", "first", NULL);
  wait_cache(c, r1);

  own_store_stop();
  etcd_client *qc = NULL;
  objstore *qs = NULL;
  pid_t aside = own_store_aside(&qc, &qs);
  enum { N = 150, NOTE = 3000 };
  char *note = malloc(NOTE + 1);
  memset(note, 'n', NOTE);
  note[NOTE] = '\0';
  keel_error err = {0};
  int64_t revs[N];
  for (int i = 0; i < N; i++) {
    tpod p;
    char name[16];
    snprintf(name, sizeof name, "big%03d", i);
    tpod_init(&p, "a", name, NULL, NULL);
    tpod_annotate(&p, note);
    assert_int_equal(objstore_create(qs, pods(), &p.pod.base, NULL, &revs[i], &err), 0);
  }
  free(note);
  objstore_free(qs);
  testenv_client_destroy(qc);
  stop_pid(aside);

  own_store_restart();
  wait_store_answers(F.ws);
  int64_t r_after = create_pod("a", "after", NULL);
  int rc = watch_cache_wait(c, r_after, RESTART_MS);
  if (rc != 0)
    fail_msg("cache stuck at %lld after the restart (want %lld)", (long long)watch_cache_revision(c),
             (long long)r_after);
  wait_accepted(s, N + 2, WAIT_MS);
  sleep_ms(50);
  size_t objects = watch_cache_object_count(c);
  rec_event *evs = NULL;
  size_t n = sink_events(s, &evs);
  size_t missing = 0;
  int64_t first_missing = 0;
  for (int i = 0; i < N; i++) {
    bool seen = false;
    for (size_t j = 0; j < n && !seen; j++) seen = evs[j].rv == revs[i];
    if (!seen && !missing++) first_missing = revs[i];
  }
  free(evs);
  if (objects != N + 2 || n != N + 2 || missing)
    fail_msg(
        "after a %d-event catch-up: cache holds %zu objects (want %d), watcher got %zu events (want %d), "
        "%zu of the catch-up events missing, first rv %lld",
        N, objects, N + 2, n, N + 2, missing, (long long)first_missing);
}

/* Compaction past the cache's revision while its store watch is down: the
 * cache lists again, ends every watcher with UNAVAILABLE, and its window
 * starts over (a re-watch from before is too old). */
static void test_compaction_relists(void **state) {
  (void)state;
  own_store_start();
  watch_cache *c = start_cache(100, 0, 0);
  int64_t r0 = watch_cache_revision(c);
  sink *s1 = new_sink(true), *s2 = new_sink(true);
  watch_from(c, r0, NULL, false, s1);
  cache_watch_options init = {.send_initial = true, .filter = {.ns = "a"}};
  cache_watcher *w2 = NULL;
  keel_error err = {0};
  assert_int_equal(watch_into(c, &init, s2, &w2, &err), 0);
  int64_t r1 = create_pod("a", "p1", NULL);
  int64_t r2 = create_pod("a", "p2", NULL);
  wait_cache(c, r2);
  assert_true(wait_accepted(s1, 2, WAIT_MS));

  own_store_stop();
  etcd_client *qc = NULL;
  objstore *qs = NULL;
  pid_t aside = own_store_aside(&qc, &qs);
  int64_t r3 = delete_pod_in(qs, "a", "p1", r1);
  int64_t r4 = create_pod_in(qs, "a", "p3", NULL, NULL);
  int64_t r5 = update_pod_in(qs, "a", "p2", "web", NULL, r2);
  assert_true(r3 < r4 && r4 < r5);
  assert_int_equal(etcd_compact(qc, r5, true, &err), 0);
  objstore_free(qs);
  testenv_client_destroy(qc);
  stop_pid(aside);

  own_store_restart();
  wait_store_answers(F.ws);
  /* Every watcher ends, once, with UNAVAILABLE. */
  if (!wait_ends(s1, 1, RESTART_MS))
    fail_msg("watchers not ended after the relist (cache at %lld)", (long long)watch_cache_revision(c));
  assert_true(wait_ends(s2, 1, WAIT_MS));
  assert_int_equal(s1->code, GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(s2->code, GRPC_STATUS_UNAVAILABLE);
  assert_true(strlen(s1->msg) > 0);
  assert_int_equal(watch_cache_watcher_count(c), 0);
  /* The events lost to compaction were never delivered. */
  assert_int_equal(sink_accepted(s1), 2);
  /* The cache holds the store's state. */
  assert_true(watch_cache_revision(c) >= r5);
  cache_object **items = NULL;
  size_t n = 0;
  int64_t rev = 0;
  cache_filter all = {0};
  assert_int_equal(watch_cache_list(c, &all, &items, &n, &rev), 0);
  assert_int_equal(n, 2);
  assert_string_equal(api_object_meta(pods(), cache_object_msg(items[0]))->name, "p2");
  assert_int_equal(cache_object_revision(items[0]), r5);
  assert_string_equal(api_object_meta(pods(), cache_object_msg(items[1]))->name, "p3");
  assert_int_equal(cache_object_revision(items[1]), r4);
  cache_objects_release(items, n);
  assert_true(rev >= r5);
  /* Re-watching from what the watchers saw is too old: they relist. */
  sink *again = new_sink(true);
  cache_watch_options o = {.from_revision = r2};
  cache_watcher *w = NULL;
  memset(&err, 0, sizeof err);
  assert_int_equal(watch_into(c, &o, again, &w, &err), -WATCH_CACHE_TOO_OLD);
  assert_non_null(strstr(err.message, "too old resource version"));
  /* From the new list's revision, live events flow again. */
  watch_from(c, rev, NULL, false, again);
  int64_t r6 = create_pod("a", "p4", NULL);
  wait_cache(c, r6);
  assert_true(wait_accepted(again, 1, WAIT_MS));
  rec_event *evs = NULL;
  n = sink_events(again, &evs);
  assert_int_equal(n, 1);
  expect_event(&evs[0], "ADDED", r6, "p4");
  free(evs);
  /* The ended watchers' handles are still released by their owners. */
  for (size_t i = 0; i < F.nwatchers; i++) {
    if (F.watchers[i] == w2) stop_watcher(w2, s2);
  }
  assert_int_equal(atomic_load(&s2->after_stop), 0);
}

/* ------------------------------------------------------------------ shutdown */

/* A use of a stopped cache's lock is invisible to ASan (pthread_mutex_lock is
 * not instrumented), so the test watches for it itself: this definition takes
 * the place of libc's for the libraries of this binary; on the thread that
 * armed it, it counts locks of one address (a stopped cache's mutex). */
static int (*_Atomic g_real_lock)(pthread_mutex_t *);
static _Thread_local const void *g_watched_lock;
static _Thread_local bool g_capture;
static _Thread_local int g_watched_hits;

int pthread_mutex_lock(pthread_mutex_t *m) {
  int (*real)(pthread_mutex_t *) = atomic_load(&g_real_lock);
  if (!real) {
    real = (int (*)(pthread_mutex_t *))dlsym(RTLD_NEXT, "pthread_mutex_lock");
    atomic_store(&g_real_lock, real);
  }
  if (g_capture && !g_watched_lock) g_watched_lock = m;
  else if (g_watched_lock && (const void *)m == g_watched_lock) g_watched_hits++;
  return real(m);
}

/* watch_cache_stop ends live watchers with UNAVAILABLE (a blocked one too);
 * their owners then release their handles with watch_cache_watcher_stop, as
 * the RPC layer does when the stream goes. */
static void test_stop_cache_ends_watchers(void **state) {
  (void)state;
  watch_cache *c = start_cache(0, 0, 5);
  int64_t r0 = watch_cache_revision(c);
  sink *a = new_sink(true), *blocked = new_sink(true), *stopped = new_sink(true);
  blocked->budget = 0;
  cache_watcher *wa = watch_from(c, r0, NULL, false, a);
  cache_watcher *wb = watch_from(c, r0, NULL, false, blocked);
  cache_watcher *ws = watch_from(c, r0, NULL, false, stopped);
  int64_t r1 = create_pod("a", "p1", NULL);
  wait_cache(c, r1);
  assert_true(wait_accepted(a, 1, WAIT_MS));
  stop_watcher(ws, stopped);

  /* The cache's own mutex: the first lock watch_cache_revision takes. */
  g_watched_lock = NULL;
  g_capture = true;
  watch_cache_revision(c);
  g_capture = false;
  assert_non_null(g_watched_lock);
  forget_cache(c);
  watch_cache_stop(c);
  g_watched_hits = 0;
  assert_int_equal(sink_ends(a), 1);
  assert_int_equal(a->code, GRPC_STATUS_UNAVAILABLE);
  assert_true(strlen(a->msg) > 0);
  assert_int_equal(sink_ends(blocked), 1);
  assert_int_equal(blocked->code, GRPC_STATUS_UNAVAILABLE);
  assert_int_equal(sink_ends(stopped), 0); /* stopped before: no callback */
  assert_int_equal(atomic_load(&stopped->after_stop), 0);
  /* The owners release their handles after the cache is gone, without
   * touching it (its memory is freed). */
  stop_watcher(wa, a);
  stop_watcher(wb, blocked);
  int hits = g_watched_hits;
  g_watched_lock = NULL;
  if (hits)
    fail_msg("watch_cache_watcher_stop locked the stopped (freed) cache's mutex %d times: use after free",
             hits);
  assert_int_equal(atomic_load(&a->after_stop), 0);
  assert_int_equal(atomic_load(&blocked->after_stop), 0);
}

/* ------------------------------------------------------------------ main */

#define T(f) cmocka_unit_test_setup_teardown(f, setup_test, teardown_test)
#define SHARED_TABLE                                                                                       \
  {                                                                                                        \
    T(test_list_and_get), T(test_list_pages_and_cluster_scoped), T(test_live_events_and_wait),             \
        T(test_watch_from_revision), T(test_send_initial), T(test_filter_transitions),                     \
        T(test_window_too_old), T(test_window_from_history), T(test_slow_watcher_ended),                   \
        T(test_writable_resumes), T(test_sink_gone), T(test_bookmarks), T(test_store_catchup_after_stall), \
        T(test_many_watchers), T(test_stop_during_send),                                                   \
  }

static bool want_group(int argc, char **argv, const char *name) {
  if (argc <= 2) return true;
  for (int i = 2; i < argc; i++)
    if (strcmp(argv[i], name) == 0) return true;
  return false;
}

int main(int argc, char **argv) {
  if (argc < 2 || !realpath(argv[1], g_store_bin)) {
    fprintf(stderr, "usage: %s KEEL_STORE_BIN [keel-store|etcd|restart|shutdown]...\n", argv[0]);
    return 2;
  }
  testenv_configure(g_store_bin, ETCD_BIN, MAX_REQUEST_BYTES);
  signal(SIGPIPE, SIG_IGN);
  int failed = 0;
  if (want_group(argc, argv, "keel-store")) {
    const struct CMUnitTest t[] = SHARED_TABLE;
    failed += cmocka_run_group_tests_name("watch cache on keel-store", t, testenv_group_setup_keel_store,
                                          testenv_group_teardown);
  }
  if (want_group(argc, argv, "etcd")) {
    const struct CMUnitTest t[] = SHARED_TABLE;
    failed += cmocka_run_group_tests_name("watch cache on etcd", t, testenv_group_setup_etcd,
                                          testenv_group_teardown);
  }
  if (want_group(argc, argv, "restart")) {
    const struct CMUnitTest t[] = {T(test_store_restart), T(test_store_down_for_a_while),
                                   T(test_compaction_relists), T(test_store_restart_large_catchup)};
    failed += cmocka_run_group_tests_name("watch cache across store restarts", t, setup_none, NULL);
  }
  if (want_group(argc, argv, "shutdown")) {
    const struct CMUnitTest t[] = {T(test_stop_cache_ends_watchers)};
    failed += cmocka_run_group_tests_name("watch cache shutdown", t, testenv_group_setup_keel_store,
                                          testenv_group_teardown);
  }
  return failed ? 1 : 0;
}
