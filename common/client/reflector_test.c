/* common/client/reflector_test.c — the informer's resume/relist decisions,
 * against a scripted fake keel.api.v1.Pods service (common/rpc's server), so
 * every way a watch can end is produced exactly and the resourceVersion each
 * new watch asks for can be checked:
 *
 *   watch 0 (from the list, rv 10): MODIFIED a@11, BOOKMARK@15, then
 *           RESOURCE_EXHAUSTED (a slow watcher)   -> resume from 15 at once
 *   watch 1 (15): ADDED b@16, a stale repeat of b@16, then UNAVAILABLE
 *                                                  -> resume from 16 at once
 *   watch 2 (16): OUT_OF_RANGE "too old resource version" -> relist (rv 20:
 *           a gone, b unchanged, c@19 new)
 *   watch 3..5 (20): INTERNAL, nothing delivered   -> back off; after 3 in a
 *           row (relist_after_failures) relist
 *   watch 6 (20): stays open until the informer stops (CANCELLED).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/client.h"
#include "common/client/informer.h"
#include "common/client/testenv.h"
#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"
#include "keel/api/v1/services.pb-c.h"

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_watches, g_lists;
static char g_watch_rv[16][32];
static bool g_bookmarks_asked = true;

static Keel__Api__V1__Pod *pod(const char *name, const char *rv) {
  Keel__Api__V1__Pod *p = testenv_pod("default", name, NULL, NULL);
  testenv_set_rv(p->metadata, rv);
  return p;
}

static void send_event(rpc_call *call, const char *type, Keel__Api__V1__Pod *p) {
  Keel__Api__V1__PodWatchEvent ev = KEEL__API__V1__POD_WATCH_EVENT__INIT;
  ev.type = (char *)type;
  ev.object = p;
  assert_int_equal(rpc_call_send(call, &ev.base), 0);
  protobuf_c_message_free_unpacked(&p->base, NULL);
}

static void on_list(rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)req;
  (void)ctx;
  pthread_mutex_lock(&g_mu);
  int n = g_lists++;
  pthread_mutex_unlock(&g_mu);
  Keel__Api__V1__PodList l = KEEL__API__V1__POD_LIST__INIT;
  Keel__Api__V1__ListMeta m = KEEL__API__V1__LIST_META__INIT;
  Keel__Api__V1__Pod *items[2];
  l.metadata = &m;
  l.items = items;
  if (n == 0) {
    m.resource_version = "10";
    items[0] = pod("a", "10");
    l.n_items = 1;
  } else {
    m.resource_version = "20";
    items[0] = pod("b", "16");
    items[1] = pod("c", "19");
    l.n_items = 2;
  }
  rpc_call_reply(call, &l.base);
  for (size_t i = 0; i < l.n_items; i++) protobuf_c_message_free_unpacked(&items[i]->base, NULL);
}

static void drop_ref(rpc_call *call, void *arg) {
  (void)arg;
  rpc_call_unref(call);
}

static void on_watch(rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)ctx;
  const Keel__Api__V1__WatchRequest *w = (const Keel__Api__V1__WatchRequest *)req;
  pthread_mutex_lock(&g_mu);
  int n = g_watches++;
  if (n < 16) snprintf(g_watch_rv[n], sizeof g_watch_rv[n], "%s", w->resource_version);
  if (!w->allow_watch_bookmarks) g_bookmarks_asked = false;
  pthread_mutex_unlock(&g_mu);
  Keel__Api__V1__Pod *bm;
  switch (n) {
    case 0:
      send_event(call, "MODIFIED", pod("a", "11"));
      bm = malloc(sizeof(*bm));
      keel__api__v1__pod__init(bm);
      bm->metadata = malloc(sizeof(*bm->metadata));
      keel__api__v1__object_meta__init(bm->metadata);
      testenv_set_rv(bm->metadata, "15");
      send_event(call, "BOOKMARK", bm);
      rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "stream receiver too slow");
      break;
    case 1:
      send_event(call, "ADDED", pod("b", "16"));
      send_event(call, "MODIFIED", pod("b", "16")); /* a repeat: must be dropped */
      rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "server shutting down");
      break;
    case 2:
      rpc_call_finish(call, GRPC_STATUS_OUT_OF_RANGE, "too old resource version: 16 (17)");
      break;
    case 3:
    case 4:
    case 5:
      rpc_call_finish(call, GRPC_STATUS_INTERNAL, "boom");
      break;
    default: /* open until the client goes */
      rpc_call_ref(call);
      rpc_call_on_cancel(call, drop_ref, NULL);
      break;
  }
}

static void unimplemented(rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  (void)req;
  (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, "fake");
}

static void unimplemented_stream(rpc_call *call, void *ctx) {
  (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, "not in this test");
}

static void ignore_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)call, (void)m, (void)ctx;
}

typedef struct seen {
  pthread_mutex_t mu;
  char log[64][48];
  int n;
} seen;

static void note(seen *s, const char *what, const ProtobufCMessage *obj) {
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(api_kind_by_name("Pod"), obj);
  pthread_mutex_lock(&s->mu);
  if (s->n < 64) snprintf(s->log[s->n++], 48, "%s %s@%s", what, m->name, m->resource_version);
  pthread_mutex_unlock(&s->mu);
}
static void s_add(const ProtobufCMessage *o, void *a) { note(a, "add", o); }
static void s_update(const ProtobufCMessage *o, const ProtobufCMessage *n, void *a) {
  (void)o;
  note(a, "update", n);
}
static void s_delete(const ProtobufCMessage *o, bool unknown, void *a) { note(a, unknown ? "gone" : "delete", o); }

static void test_resume_and_relist_decisions(void **state) {
  (void)state;
  keel_error err = {0};
  rpc_server_options so = {.name = "fake-apiserver", .shutdown_grace_ms = 200};
  rpc_server *srv = rpc_server_create(&so, &err);
  assert_non_null(srv);
  const rpc_method_handler handlers[] = {
      {.name = "Create", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "Get", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "List", .kind = RPC_UNARY, .on_request = on_list},
      {.name = "Update", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "Delete", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "Watch", .kind = RPC_SERVER_STREAMING, .on_request = on_watch},
      {.name = "UpdateStatus", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "Bind", .kind = RPC_UNARY, .on_request = unimplemented},
      {.name = "Log", .kind = RPC_SERVER_STREAMING, .on_request = unimplemented},
      {.name = "Exec", .kind = RPC_BIDI_STREAMING, .on_start = unimplemented_stream,
       .on_message = ignore_message, .on_half_close = unimplemented_stream},
  };
  if (rpc_server_add_service(srv, &keel__api__v1__pods__descriptor, handlers, 10, NULL, &err) < 0)
    fail_msg("%s", err.message);
  int port = rpc_server_add_listener(srv, "127.0.0.1:0", NULL, &err);
  assert_true(port > 0);
  assert_int_equal(rpc_server_start(srv, &err), 0);
  char ep[64];
  snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
  client *c = testenv_client(ep, NULL);

  seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  informer_options o = {.client = c, .kind = api_kind_by_name("Pod"), .backoff_initial_ms = 10,
                        .backoff_max_ms = 50, .relist_after_failures = 3};
  informer *inf = informer_new(&o, &err);
  informer_handlers h = {.on_add = s_add, .on_update = s_update, .on_delete = s_delete, .arg = &s};
  assert_int_equal(informer_add_handlers(inf, &h, &err), 0);
  assert_int_equal(informer_start(inf, &err), 0);
  int64_t deadline = testenv_now_ms() + 10000;
  for (;;) {
    pthread_mutex_lock(&g_mu);
    bool done = g_watches >= 7;
    pthread_mutex_unlock(&g_mu);
    if (done || testenv_now_ms() > deadline) break;
    testenv_sleep_ms(5);
  }
  informer_stats st;
  informer_get_stats(inf, &st);
  informer_free(inf);
  client_free(c);
  rpc_server_shutdown(srv);
  rpc_server_destroy(srv);

  const char *want_rv[] = {"10", "15", "16", "20", "20", "20", "20"};
  assert_true(g_watches >= 7);
  for (int i = 0; i < 7; i++)
    if (strcmp(g_watch_rv[i], want_rv[i]) != 0) fail_msg("watch %d asked rv %s, want %s", i, g_watch_rv[i], want_rv[i]);
  assert_true(g_bookmarks_asked);
  assert_int_equal(g_lists, 3);
  const char *want_log[] = {"add a@10", "update a@11", "add b@16", "gone a@11", "add c@19"};
  assert_int_equal(s.n, 5);
  for (int i = 0; i < 5; i++) assert_string_equal(s.log[i], want_log[i]);
  assert_int_equal(st.lists, 3);
  assert_int_equal(st.relists_too_old, 1);
  assert_int_equal(st.relists_failures, 1);
  assert_int_equal(st.stale_events, 1);
  assert_int_equal(st.bookmarks, 1);
  assert_int_equal(st.events, 2);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_resume_and_relist_decisions)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
