/* common/client/client_test.c — the generic client against a real
 * keel-apiserver on keel-store: every verb, errors carrying the server's
 * message, async calls, watch, dry run, failover, bearer tokens from a config
 * file. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/client/client.h"
#include "common/client/config.h"
#include "common/client/testenv.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

static const char *g_store_bin, *g_api_bin;
static testenv g_env;
static testenv_proc g_api;
static client *g_c;
static const api_kind *POD, *LEASE, *DEPLOY;

static int setup(void **state) {
  (void)state;
  POD = api_kind_by_name("Pod");
  LEASE = api_kind_by_name("Lease");
  DEPLOY = api_kind_by_name("Deployment");
  if (testenv_init(&g_env, g_store_bin, g_api_bin) < 0) return -1;
  if (testenv_start_apiserver(&g_env, &g_api, NULL, NULL) < 0) return -1;
  g_c = testenv_client(g_api.endpoint, NULL);
  return g_c ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  client_free(g_c);
  int rc = testenv_stop(&g_api);
  testenv_cleanup(&g_env);
  return rc == 0 ? 0 : -1;
}

static void expect_ok(int rc, const client_status *st, const char *what) {
  if (rc != 0) fail_msg("%s: %s %s", what, rpc_status_code_name(st->code), st->message);
}

static void test_crud(void **state) {
  (void)state;
  client_status st;
  const char *labels[] = {"app", "web", NULL};
  Keel__Api__V1__Pod *p = testenv_pod("default", "crud-1", NULL, labels);
  ProtobufCMessage *out = NULL;
  expect_ok(client_create(g_c, POD, &p->base, &out, NULL, &st), &st, "create");
  Keel__Api__V1__Pod *created = (Keel__Api__V1__Pod *)out;
  assert_string_equal(created->metadata->name, "crud-1");
  assert_true(client_object_rv(POD, out) > 0);
  assert_true(created->metadata->uid && *created->metadata->uid);

  /* AlreadyExists keeps the server's message. */
  ProtobufCMessage *dup = NULL;
  assert_int_equal(client_create(g_c, POD, &p->base, &dup, NULL, &st), -1);
  assert_true(client_is_already_exists(&st));
  assert_non_null(strstr(st.message, "crud-1"));
  assert_null(dup);

  ProtobufCMessage *got = NULL;
  expect_ok(client_get(g_c, POD, "default", "crud-1", NULL, &got, NULL, &st), &st, "get");
  assert_int_equal(client_object_rv(POD, got), client_object_rv(POD, out));
  char key[256];
  assert_string_equal(client_object_key(POD, got, key, sizeof(key)), "default/crud-1");

  /* List with a label selector. */
  Keel__Api__V1__ListRequest lr = KEEL__API__V1__LIST_REQUEST__INIT;
  lr.namespace_ = "default";
  lr.label_selector = "app=web";
  ProtobufCMessage *list = NULL;
  expect_ok(client_list(g_c, POD, &lr, &list, NULL, &st), &st, "list");
  Keel__Api__V1__PodList *pl = (Keel__Api__V1__PodList *)list;
  assert_int_equal(pl->n_items, 1);
  assert_true(strtoll(pl->metadata->resource_version, NULL, 10) >= client_object_rv(POD, got));
  protobuf_c_message_free_unpacked(list, NULL);
  lr.label_selector = "app=other";
  expect_ok(client_list(g_c, POD, &lr, &list, NULL, &st), &st, "list other");
  assert_int_equal(((Keel__Api__V1__PodList *)list)->n_items, 0);
  protobuf_c_message_free_unpacked(list, NULL);
  lr.label_selector = "app in (";
  assert_int_equal(client_list(g_c, POD, &lr, &list, NULL, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_INVALID_ARGUMENT);

  /* Update: a new label; then a stale resourceVersion is a conflict. */
  Keel__Api__V1__Pod *upd = (Keel__Api__V1__Pod *)got;
  testenv_set_label(upd->metadata, "tier", "front");
  ProtobufCMessage *updated = NULL;
  expect_ok(client_update(g_c, POD, got, &updated, NULL, &st), &st, "update");
  assert_true(client_object_rv(POD, updated) > client_object_rv(POD, got));
  ProtobufCMessage *stale = NULL;
  assert_int_equal(client_update(g_c, POD, got, &stale, NULL, &st), -1);
  assert_true(client_is_conflict(&st));
  assert_non_null(strstr(st.message, "crud-1"));
  print_message("stale update: %s: %s\n", rpc_status_code_name(st.code), st.message);

  /* UpdateStatus, then Bind. */
  Keel__Api__V1__Pod *us = (Keel__Api__V1__Pod *)api_message_clone(updated);
  if (us->status) protobuf_c_message_free_unpacked(&us->status->base, NULL); /* the server's default */
  us->status = malloc(sizeof(*us->status));
  keel__api__v1__pod_status__init(us->status);
  us->status->phase = strdup("Pending");
  ProtobufCMessage *after_status = NULL;
  expect_ok(client_update_status(g_c, POD, &us->base, &after_status, NULL, &st), &st, "update status");
  assert_string_equal(((Keel__Api__V1__Pod *)after_status)->status->phase, "Pending");
  Keel__Api__V1__Pod *bound = NULL;
  expect_ok(client_bind(g_c, "default", "crud-1", "node-a", &bound, NULL, &st), &st, "bind");
  ProtobufCMessage *after_bind = NULL;
  expect_ok(client_get(g_c, POD, "default", "crud-1", "", &after_bind, NULL, &st), &st, "get after bind");
  assert_string_equal(((Keel__Api__V1__Pod *)after_bind)->spec->node_name, "node-a");
  assert_int_equal(client_bind(g_c, "default", "crud-1", "node-b", NULL, NULL, &st), -1);
  print_message("second bind: %s: %s\n", rpc_status_code_name(st.code), st.message);

  /* Delete (bound pod, grace 0: gone at once), then NotFound with the server's words. */
  ProtobufCMessage *deleted = NULL;
  expect_ok(client_delete(g_c, POD, "default", "crud-1", 0, &deleted, NULL, &st), &st, "delete");
  ProtobufCMessage *none = NULL;
  assert_int_equal(client_get(g_c, POD, "default", "crud-1", NULL, &none, NULL, &st), -1);
  assert_true(client_is_not_found(&st));
  assert_non_null(strstr(st.message, "\"crud-1\" not found"));
  assert_null(none);

  ProtobufCMessage *msgs[] = {&p->base, out, got, updated, &us->base, after_status, &bound->base, after_bind, deleted};
  for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++)
    if (msgs[i]) protobuf_c_message_free_unpacked(msgs[i], NULL);
}

static void test_local_errors(void **state) {
  (void)state;
  client_status st;
  ProtobufCMessage *out = NULL;
  Keel__Api__V1__Lease l = KEEL__API__V1__LEASE__INIT;
  /* Leases have no status subresource: refused before anything is sent. */
  assert_int_equal(client_update_status(g_c, LEASE, &l.base, &out, NULL, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(st.message, "client: leases have no UpdateStatus"));
  /* A request of the wrong type. */
  assert_int_equal(client_create(g_c, POD, &l.base, &out, NULL, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_INVALID_ARGUMENT);
  assert_non_null(strstr(st.message, "keel.api.v1.Pod"));
  assert_string_equal(client_verb_method(CLIENT_UPDATE_SCALE), "UpdateScale");
  char ns[64], name[64];
  assert_int_equal(client_split_key("default/web", ns, sizeof ns, name, sizeof name), 0);
  assert_string_equal(ns, "default");
  assert_string_equal(name, "web");
  assert_int_equal(client_split_key("node-1", ns, sizeof ns, name, sizeof name), 0);
  assert_string_equal(ns, "");
  assert_string_equal(name, "node-1");
}

static void test_dry_run_and_scale(void **state) {
  (void)state;
  client_status st;
  Keel__Api__V1__Pod *p = testenv_pod("default", "dry", NULL, NULL);
  ProtobufCMessage *out = NULL;
  client_call_options dry = {.dry_run = true};
  expect_ok(client_create(g_c, POD, &p->base, &out, &dry, &st), &st, "dry-run create");
  ProtobufCMessage *none = NULL;
  assert_int_equal(client_get(g_c, POD, "default", "dry", NULL, &none, NULL, &st), -1);
  assert_true(client_is_not_found(&st));
  protobuf_c_message_free_unpacked(out, NULL);
  protobuf_c_message_free_unpacked(&p->base, NULL);

  /* A Deployment and its scale subresource. */
  Keel__Api__V1__Deployment *d = malloc(sizeof(*d));
  keel__api__v1__deployment__init(d);
  d->metadata = malloc(sizeof(*d->metadata));
  keel__api__v1__object_meta__init(d->metadata);
  d->metadata->name = strdup("web");
  d->metadata->namespace_ = strdup("default");
  d->spec = malloc(sizeof(*d->spec));
  keel__api__v1__deployment_spec__init(d->spec);
  d->spec->replicas = malloc(sizeof(*d->spec->replicas));
  google__protobuf__int32_value__init(d->spec->replicas);
  d->spec->replicas->value = 2;
  d->spec->selector = malloc(sizeof(*d->spec->selector));
  keel__api__v1__label_selector__init(d->spec->selector);
  d->spec->template_ = malloc(sizeof(*d->spec->template_));
  keel__api__v1__pod_template_spec__init(d->spec->template_);
  Keel__Api__V1__Pod *tp = testenv_pod("default", "x", NULL, NULL);
  d->spec->template_->metadata = tp->metadata;
  d->spec->template_->spec = tp->spec;
  tp->metadata = NULL;
  tp->spec = NULL;
  protobuf_c_message_free_unpacked(&tp->base, NULL);
  free(d->spec->template_->metadata->name);
  d->spec->template_->metadata->name = (char *)protobuf_c_empty_string;
  free(d->spec->template_->metadata->namespace_);
  d->spec->template_->metadata->namespace_ = (char *)protobuf_c_empty_string;
  testenv_set_label(d->spec->template_->metadata, "app", "web");
  d->spec->selector->match_labels = malloc(sizeof(*d->spec->selector->match_labels));
  Keel__Api__V1__LabelSelector__MatchLabelsEntry *ml = malloc(sizeof(*ml));
  keel__api__v1__label_selector__match_labels_entry__init(ml);
  ml->key = strdup("app");
  ml->value = strdup("web");
  d->spec->selector->match_labels[0] = ml;
  d->spec->selector->n_match_labels = 1;
  ProtobufCMessage *created = NULL;
  expect_ok(client_create(g_c, DEPLOY, &d->base, &created, NULL, &st), &st, "create deployment");
  Keel__Api__V1__Scale *scale = NULL;
  expect_ok(client_get_scale(g_c, DEPLOY, "default", "web", &scale, NULL, &st), &st, "get scale");
  assert_int_equal(scale->spec->replicas, 2);
  scale->spec->replicas = 5;
  Keel__Api__V1__Scale *scaled = NULL;
  expect_ok(client_update_scale(g_c, DEPLOY, scale, &scaled, NULL, &st), &st, "update scale");
  assert_int_equal(scaled->spec->replicas, 5);
  ProtobufCMessage *got = NULL;
  expect_ok(client_get(g_c, DEPLOY, "default", "web", NULL, &got, NULL, &st), &st, "get deployment");
  assert_int_equal(((Keel__Api__V1__Deployment *)got)->spec->replicas->value, 5);
  expect_ok(client_delete(g_c, DEPLOY, "default", "web", -1, NULL, NULL, &st), &st, "delete deployment");
  protobuf_c_message_free_unpacked(&d->base, NULL);
  protobuf_c_message_free_unpacked(created, NULL);
  protobuf_c_message_free_unpacked(&scale->base, NULL);
  protobuf_c_message_free_unpacked(&scaled->base, NULL);
  protobuf_c_message_free_unpacked(got, NULL);
}

/* ------------------------------------------------------------------ async */

typedef struct waiter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done;
  client_status st[8];
  ProtobufCMessage *resp[8];
} waiter;

static void on_done(void *arg, const client_status *st, ProtobufCMessage *resp) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  w->st[w->done] = *st;
  w->resp[w->done] = resp;
  w->done++;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static void wait_done(waiter *w, int n) {
  pthread_mutex_lock(&w->mu);
  while (w->done < n) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static void test_async(void **state) {
  (void)state;
  waiter w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  client_status st;
  Keel__Api__V1__Pod *p = testenv_pod("default", "async-1", NULL, NULL);
  assert_int_equal(client_call_async(g_c, POD, CLIENT_CREATE, &p->base, NULL, on_done, &w, &st), 0);
  wait_done(&w, 1);
  assert_int_equal(w.st[0].code, GRPC_STATUS_OK);
  assert_non_null(w.resp[0]);
  /* The same again: the server's AlreadyExists comes back through done. */
  assert_int_equal(client_call_async(g_c, POD, CLIENT_CREATE, &p->base, NULL, on_done, &w, &st), 0);
  wait_done(&w, 2);
  assert_int_equal(w.st[1].code, GRPC_STATUS_ALREADY_EXISTS);
  assert_null(w.resp[1]);
  assert_non_null(strstr(w.st[1].message, "async-1"));
  /* A local refusal: done never runs. */
  Keel__Api__V1__Lease l = KEEL__API__V1__LEASE__INIT;
  assert_int_equal(client_call_async(g_c, POD, CLIENT_CREATE, &l.base, NULL, on_done, &w, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_INVALID_ARGUMENT);
  Keel__Api__V1__DeleteRequest dr = KEEL__API__V1__DELETE_REQUEST__INIT;
  dr.namespace_ = "default";
  dr.name = "async-1";
  assert_int_equal(client_call_async(g_c, POD, CLIENT_DELETE, &dr.base, NULL, on_done, &w, &st), 0);
  wait_done(&w, 3);
  assert_int_equal(w.st[2].code, GRPC_STATUS_OK);
  for (int i = 0; i < 3; i++)
    if (w.resp[i]) protobuf_c_message_free_unpacked(w.resp[i], NULL);
  protobuf_c_message_free_unpacked(&p->base, NULL);
}

/* ------------------------------------------------------------------ watch */

typedef struct watch_log {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  char types[16][16];
  char names[16][64];
  int n;
  bool closed;
  client_status st;
} watch_log;

static void on_event(const char *type, const ProtobufCMessage *obj, int64_t rv, void *arg) {
  watch_log *l = arg;
  (void)rv;
  if (strcmp(type, "BOOKMARK") == 0) return;
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(POD, obj);
  pthread_mutex_lock(&l->mu);
  if (l->n < 16) {
    snprintf(l->types[l->n], 16, "%s", type);
    snprintf(l->names[l->n], 64, "%s", m ? m->name : "");
    l->n++;
  }
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->mu);
}

static void on_close(const client_status *st, void *arg) {
  watch_log *l = arg;
  pthread_mutex_lock(&l->mu);
  l->closed = true;
  l->st = *st;
  pthread_cond_broadcast(&l->cond);
  pthread_mutex_unlock(&l->mu);
}

static void test_watch(void **state) {
  (void)state;
  client_status st;
  ProtobufCMessage *list = NULL;
  expect_ok(client_list(g_c, POD, NULL, &list, NULL, &st), &st, "list");
  Keel__Api__V1__WatchRequest req = KEEL__API__V1__WATCH_REQUEST__INIT;
  req.namespace_ = "default";
  char rv[32];
  snprintf(rv, sizeof rv, "%s", ((Keel__Api__V1__PodList *)list)->metadata->resource_version);
  req.resource_version = rv;
  watch_log l = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  client_watch_handlers h = {.on_event = on_event, .on_close = on_close};
  keel_error err = {0};
  client_watch *w = client_watch_start(g_c, POD, &req, &h, &l, &err);
  assert_non_null(w);
  protobuf_c_message_free_unpacked(list, NULL);
  Keel__Api__V1__Pod *p = testenv_pod("default", "watched", NULL, NULL);
  ProtobufCMessage *out = NULL;
  expect_ok(client_create(g_c, POD, &p->base, &out, NULL, &st), &st, "create");
  expect_ok(client_delete(g_c, POD, "default", "watched", 0, NULL, NULL, &st), &st, "delete");
  pthread_mutex_lock(&l.mu);
  int64_t deadline = testenv_now_ms() + 10000;
  while (l.n < 2 && testenv_now_ms() < deadline) {
    pthread_mutex_unlock(&l.mu);
    testenv_sleep_ms(10);
    pthread_mutex_lock(&l.mu);
  }
  assert_int_equal(l.n, 2);
  assert_string_equal(l.types[0], "ADDED");
  assert_string_equal(l.names[0], "watched");
  assert_string_equal(l.types[1], "DELETED");
  pthread_mutex_unlock(&l.mu);
  client_watch_stop(w);
  assert_true(l.closed);
  assert_int_equal(l.st.code, GRPC_STATUS_CANCELLED);

  /* timeout_seconds: the server ends the stream with OK. */
  watch_log l2 = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  req.timeout_seconds = 1;
  int64_t t0 = testenv_now_ms();
  w = client_watch_start(g_c, POD, &req, &h, &l2, &err);
  assert_non_null(w);
  pthread_mutex_lock(&l2.mu);
  while (!l2.closed) pthread_cond_wait(&l2.cond, &l2.mu);
  pthread_mutex_unlock(&l2.mu);
  client_watch_stop(w);
  if (l2.st.code != GRPC_STATUS_OK) fail_msg("watch ended %s: %s", rpc_status_code_name(l2.st.code), l2.st.message);
  assert_true(testenv_now_ms() - t0 >= 900);
  /* The replay from the old version came first: the two events again. */
  assert_int_equal(l2.n, 2);
  protobuf_c_message_free_unpacked(&p->base, NULL);
  protobuf_c_message_free_unpacked(out, NULL);
}

/* ------------------------------------------------------------------ failover */

static void test_failover(void **state) {
  (void)state;
  /* A port nobody listens on first: reads fail over to the live endpoint. */
  const char *eps[] = {"127.0.0.1:1", g_api.endpoint};
  client_options o = {.endpoints = eps, .nendpoints = 2, .timeout_ms = 10000};
  keel_error err = {0};
  client *c = client_new(&o, &err);
  assert_non_null(c);
  client_status st;
  ProtobufCMessage *list = NULL;
  expect_ok(client_list(c, POD, NULL, &list, NULL, &st), &st, "list over failover");
  protobuf_c_message_free_unpacked(list, NULL);
  assert_string_equal(rpc_channel_current_endpoint(client_channel(c)), g_api.endpoint);
  client_free(c);
}

/* ------------------------------------------------------------------ tokens */

static void test_token_from_config(void **state) {
  (void)state;
  char tokens[PATH_MAX], tokfile[PATH_MAX], cfgpath[PATH_MAX];
  testenv_path(&g_env, "tokens.csv", tokens, sizeof tokens);
  testenv_path(&g_env, "admin.token", tokfile, sizeof tokfile);
  testenv_path(&g_env, "config.json", cfgpath, sizeof cfgpath);
  FILE *f = fopen(tokens, "w");
  fprintf(f, "s3cret-admin,alice,1,\"keel:admins\"\ns3cret-viewer,bob,2,\"keel:viewers\"\n");
  fclose(f);
  f = fopen(tokfile, "w");
  fprintf(f, "s3cret-admin\n");
  fclose(f);
  char flag[PATH_MAX + 32];
  snprintf(flag, sizeof flag, "--token-auth-file=%s", tokens);
  const char *args[] = {flag, NULL};
  testenv_proc api;
  assert_int_equal(testenv_start_apiserver(&g_env, &api, NULL, args), 0);
  f = fopen(cfgpath, "w");
  fprintf(f,
          "{\"current-context\": \"admin\",\n"
          " \"clusters\": [{\"name\": \"c\", \"cluster\": {\"endpoints\": [\"%s\"]}}],\n"
          " \"users\": [{\"name\": \"alice\", \"user\": {\"token-file\": \"admin.token\"}},\n"
          "           {\"name\": \"bob\", \"user\": {\"token\": \"s3cret-viewer\"}},\n"
          "           {\"name\": \"mallory\", \"user\": {\"token\": \"wrong\"}}],\n"
          " \"contexts\": [{\"name\": \"admin\", \"context\": {\"cluster\": \"c\", \"user\": \"alice\"}},\n"
          "              {\"name\": \"viewer\", \"context\": {\"cluster\": \"c\", \"user\": \"bob\"}},\n"
          "              {\"name\": \"bad\", \"context\": {\"cluster\": \"c\", \"user\": \"mallory\"}},\n"
          "              {\"name\": \"anon\", \"context\": {\"cluster\": \"c\"}}]}\n",
          api.endpoint);
  fclose(f);
  const char *ctxs[] = {"admin", "viewer", "bad", "anon"};
  const grpc_status_code want_create[] = {GRPC_STATUS_OK, GRPC_STATUS_PERMISSION_DENIED, GRPC_STATUS_UNAUTHENTICATED,
                                          GRPC_STATUS_UNAUTHENTICATED};
  for (int i = 0; i < 4; i++) {
    client_config cfg;
    keel_error err = {0};
    if (client_config_load(cfgpath, i == 0 ? NULL : ctxs[i], &cfg, &err) < 0) fail_msg("%s", err.message);
    assert_string_equal(cfg.context, ctxs[i]);
    client *c = client_new_from_config(&cfg, &err);
    assert_non_null(c);
    client_status st;
    char name[32];
    snprintf(name, sizeof name, "tok-%d", i);
    Keel__Api__V1__Pod *p = testenv_pod(cfg.namespace_, name, NULL, NULL);
    ProtobufCMessage *out = NULL;
    int rc = client_create(c, POD, &p->base, &out, NULL, &st);
    print_message("context %s: create -> %s %s\n", ctxs[i], rpc_status_code_name(st.code), st.message);
    assert_int_equal(st.code, want_create[i]);
    assert_int_equal(rc, want_create[i] == GRPC_STATUS_OK ? 0 : -1);
    if (i == 1) { /* a viewer may read */
      ProtobufCMessage *got = NULL;
      expect_ok(client_get(c, POD, "default", "tok-0", NULL, &got, NULL, &st), &st, "viewer get");
      protobuf_c_message_free_unpacked(got, NULL);
    }
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    protobuf_c_message_free_unpacked(&p->base, NULL);
    client_free(c);
    client_config_clear(&cfg);
  }
  assert_int_equal(testenv_stop(&api), 0);
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
      cmocka_unit_test(test_crud),
      cmocka_unit_test(test_local_errors),
      cmocka_unit_test(test_dry_run_and_scale),
      cmocka_unit_test(test_async),
      cmocka_unit_test(test_watch),
      cmocka_unit_test(test_failover),
      cmocka_unit_test(test_token_from_config),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
