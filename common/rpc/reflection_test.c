/* common/rpc/reflection_test.c — health.c and reflection.c against a fake
 * runtime.
 *
 * The fake implements the rpc_server_* and rpc_call_* functions the two
 * services call, with the runtime's documented semantics (references, send
 * results, a cancel callback that runs at once when set on a call already
 * cancelled), and records what each call was sent and how it was finished.
 * Handlers are reached through the tables the services register, so the
 * declared kinds and names are checked too. Optionally every fake rpc_* entry
 * re-enters the health service: a service that called the runtime while
 * holding its own lock would deadlock there (an alarm turns that into a
 * failure). The real runtime is tested end to end in its own tests. */
#define _GNU_SOURCE /* vasprintf */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "common/rpc/descriptor_index.h"
#include "common/rpc/rpc.h"
#include "common/rpc/services.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1/reflection.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

extern const unsigned char keel_runtime_descriptor_set[];
extern const unsigned long keel_runtime_descriptor_set_len;
extern const unsigned char keel_echo_descriptor_set[];
extern const unsigned long keel_echo_descriptor_set_len;

/* ================================================================ fake runtime */

typedef struct {
  char *name;
  const ProtobufCServiceDescriptor *desc;
  const rpc_method_handler *handlers;
  size_t nhandlers;
  void *ctx;
} fake_service;

struct rpc_server {
  fake_service services[16];
  size_t nservices;
  struct {
    const unsigned char *set;
    size_t len;
  } sets[8];
  size_t nsets;
  int fail_add_service; /* fail the n-th add (1-based); 0 never */
  int adds;
};

typedef struct {
  uint8_t *data;
  size_t len;
} fake_msg;

struct rpc_call {
  pthread_mutex_t mu;
  int refs; /* the runtime's one reference counts */
  rpc_server *srv;
  fake_msg *sent;
  size_t nsent, sent_cap;
  bool finished, replied, cancelled, cancel_fired;
  grpc_status_code code;
  char *message;
  void (*cancel_fn)(rpc_call *, void *);
  void *cancel_arg;
  void *user_data;
  void (*user_destroy)(void *);
  size_t max_bytes; /* 0 = no limit */
  int fail_sends;   /* -ENOBUFS: too slow, closes the call (RPC_SLOW_CLOSE) */
};

/* Re-entry probe: when set, every fake rpc_* entry calls back into health. */
static rpc_health *reenter_health;

static void reenter(void) {
  rpc_health *h = reenter_health;
  if (h) rpc_health_set(h, "reentry-probe", RPC_HEALTH_SERVING);
}

static rpc_server *fake_server_new(void) {
  rpc_server *s = calloc(1, sizeof(*s));
  assert_non_null(s);
  return s;
}

static void fake_server_free(rpc_server *s) {
  for (size_t i = 0; i < s->nservices; i++) free(s->services[i].name);
  free(s);
}

static void fake_server_add_set(rpc_server *s, const void *set, size_t len) {
  s->sets[s->nsets].set = set;
  s->sets[s->nsets].len = len;
  s->nsets++;
}

static int fake_add(rpc_server *srv, const char *name, const ProtobufCServiceDescriptor *desc,
                    const rpc_method_handler *handlers, size_t nhandlers, void *ctx,
                    keel_error *err) {
  if (++srv->adds == srv->fail_add_service)
    return keel_error_set(err, EEXIST, "service %s already registered", name);
  assert_int_equal(nhandlers, desc->n_methods);
  for (size_t i = 0; i < desc->n_methods; i++) {
    size_t hits = 0;
    for (size_t k = 0; k < nhandlers; k++)
      if (strcmp(handlers[k].name, desc->methods[i].name) == 0) hits++;
    assert_int_equal(hits, 1);
  }
  for (size_t k = 0; k < nhandlers; k++) {
    const rpc_method_handler *hd = &handlers[k];
    if (hd->kind == RPC_UNARY || hd->kind == RPC_SERVER_STREAMING)
      assert_non_null(hd->on_request);
    else
      assert_true(hd->on_message && hd->on_half_close);
  }
  fake_service *fs = &srv->services[srv->nservices++];
  fs->name = strdup(name);
  fs->desc = desc;
  fs->handlers = handlers;
  fs->nhandlers = nhandlers;
  fs->ctx = ctx;
  return 0;
}

int rpc_server_add_service(rpc_server *srv, const ProtobufCServiceDescriptor *desc,
                           const rpc_method_handler *handlers, size_t nhandlers, void *ctx,
                           keel_error *err) {
  return fake_add(srv, desc->name, desc, handlers, nhandlers, ctx, err);
}

int rpc_server_add_service_as(rpc_server *srv, const char *name,
                              const ProtobufCServiceDescriptor *desc,
                              const rpc_method_handler *handlers, size_t nhandlers, void *ctx,
                              keel_error *err) {
  return fake_add(srv, name, desc, handlers, nhandlers, ctx, err);
}

size_t rpc_server_service_count(const rpc_server *srv) { return srv->nservices; }

const char *rpc_server_service_name(const rpc_server *srv, size_t i) {
  return i < srv->nservices ? srv->services[i].name : NULL;
}

size_t rpc_server_descriptor_set_count(const rpc_server *srv) { return srv->nsets; }

void rpc_server_descriptor_set(const rpc_server *srv, size_t i, const unsigned char **set,
                               size_t *len) {
  *set = srv->sets[i].set;
  *len = srv->sets[i].len;
}

static rpc_call *fake_call_new(rpc_server *srv) {
  rpc_call *c = calloc(1, sizeof(*c));
  assert_non_null(c);
  pthread_mutex_init(&c->mu, NULL);
  c->refs = 1;
  c->srv = srv;
  return c;
}

void rpc_call_ref(rpc_call *c) {
  reenter();
  pthread_mutex_lock(&c->mu);
  c->refs++;
  pthread_mutex_unlock(&c->mu);
}

void rpc_call_unref(rpc_call *c) {
  reenter();
  pthread_mutex_lock(&c->mu);
  int left = --c->refs;
  pthread_mutex_unlock(&c->mu);
  assert_true(left >= 0);
  if (left) return;
  if (c->user_destroy) c->user_destroy(c->user_data);
  for (size_t i = 0; i < c->nsent; i++) free(c->sent[i].data);
  free(c->sent);
  free(c->message);
  pthread_mutex_destroy(&c->mu);
  free(c);
}

static int refs_of(rpc_call *c) {
  pthread_mutex_lock(&c->mu);
  int r = c->refs;
  pthread_mutex_unlock(&c->mu);
  return r;
}

static size_t nsent_of(rpc_call *c) {
  pthread_mutex_lock(&c->mu);
  size_t n = c->nsent;
  pthread_mutex_unlock(&c->mu);
  return n;
}

rpc_server *rpc_call_server(const rpc_call *c) { return c->srv; }

void rpc_call_set_user_data(rpc_call *c, void *ptr, void (*destroy)(void *)) {
  reenter();
  c->user_data = ptr;
  c->user_destroy = destroy;
}

void *rpc_call_user_data(const rpc_call *c) {
  reenter();
  return c->user_data;
}

void rpc_call_on_cancel(rpc_call *c, void (*fn)(rpc_call *, void *), void *arg) {
  reenter();
  pthread_mutex_lock(&c->mu);
  c->cancel_fn = fn;
  c->cancel_arg = arg;
  bool now = c->cancelled && !c->finished && !c->cancel_fired && fn;
  if (now) c->cancel_fired = true;
  pthread_mutex_unlock(&c->mu);
  if (now) fn(c, arg);
}

/* The client goes away: later sends fail, the callback runs once. */
static void fake_cancel(rpc_call *c) {
  pthread_mutex_lock(&c->mu);
  bool was = c->cancelled;
  c->cancelled = true;
  void (*fn)(rpc_call *, void *) = NULL;
  if (!was && !c->finished && !c->cancel_fired && c->cancel_fn) {
    c->cancel_fired = true;
    fn = c->cancel_fn;
  }
  pthread_mutex_unlock(&c->mu);
  if (fn) fn(c, c->cancel_arg);
}

static int finish_locked(rpc_call *c, grpc_status_code code, char *msg) {
  if (c->cancelled) {
    free(msg);
    return -ECANCELED;
  }
  if (c->finished) {
    free(msg);
    return -EALREADY;
  }
  c->finished = true;
  c->code = code;
  c->message = msg;
  return 0;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *m) {
  reenter();
  size_t len = protobuf_c_message_get_packed_size(m);
  pthread_mutex_lock(&c->mu);
  int r = 0;
  if (c->cancelled) {
    r = -ECANCELED;
  } else if (c->finished) {
    r = -EALREADY;
  } else if (c->max_bytes && len > c->max_bytes) {
    r = -EINVAL;
  } else if (c->fail_sends) {
    r = c->fail_sends;
    if (r == -ENOBUFS) finish_locked(c, GRPC_STATUS_RESOURCE_EXHAUSTED, strdup("too slow"));
  } else {
    if (c->nsent == c->sent_cap) {
      c->sent_cap = c->sent_cap ? c->sent_cap * 2 : 8;
      c->sent = realloc(c->sent, c->sent_cap * sizeof(*c->sent));
    }
    uint8_t *data = malloc(len ? len : 1);
    protobuf_c_message_pack(m, data);
    c->sent[c->nsent++] = (fake_msg){.data = data, .len = len};
  }
  pthread_mutex_unlock(&c->mu);
  return r;
}

int rpc_call_reply(rpc_call *c, const ProtobufCMessage *m) {
  int r = rpc_call_send(c, m);
  if (r < 0) return r;
  pthread_mutex_lock(&c->mu);
  c->replied = true;
  r = finish_locked(c, GRPC_STATUS_OK, NULL);
  pthread_mutex_unlock(&c->mu);
  return r;
}

int rpc_call_finish(rpc_call *c, grpc_status_code code, const char *fmt, ...) {
  reenter();
  char *msg = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
    va_end(ap);
  }
  pthread_mutex_lock(&c->mu);
  int r = finish_locked(c, code, msg);
  pthread_mutex_unlock(&c->mu);
  return r;
}

static const fake_service *find_service(const rpc_server *srv, const char *name) {
  for (size_t i = 0; i < srv->nservices; i++)
    if (strcmp(srv->services[i].name, name) == 0) return &srv->services[i];
  return NULL;
}

static const rpc_method_handler *find_handler(const rpc_server *srv, const char *service,
                                              const char *method, void **ctx) {
  const fake_service *fs = find_service(srv, service);
  assert_non_null(fs);
  for (size_t k = 0; k < fs->nhandlers; k++) {
    if (strcmp(fs->handlers[k].name, method) == 0) {
      *ctx = fs->ctx;
      return &fs->handlers[k];
    }
  }
  fail_msg("no handler %s/%s", service, method);
  return NULL;
}

/* ================================================================ health */

static Grpc__Health__V1__HealthCheckResponse *health_msg(rpc_call *c, size_t i) {
  pthread_mutex_lock(&c->mu);
  assert_true(i < c->nsent);
  Grpc__Health__V1__HealthCheckResponse *r =
      grpc__health__v1__health_check_response__unpack(NULL, c->sent[i].len, c->sent[i].data);
  pthread_mutex_unlock(&c->mu);
  assert_non_null(r);
  return r;
}

static int health_status_at(rpc_call *c, size_t i) {
  Grpc__Health__V1__HealthCheckResponse *r = health_msg(c, i);
  int st = r->status;
  grpc__health__v1__health_check_response__free_unpacked(r, NULL);
  return st;
}

typedef struct {
  rpc_server *srv;
  rpc_health *h;
} health_fixture;

static int health_setup(void **state) {
  health_fixture *f = calloc(1, sizeof(*f));
  f->srv = fake_server_new();
  /* A daemon's own service, registered before health (as the runtime does). */
  f->srv->services[f->srv->nservices++].name = strdup("keel.echo.v1.Echo");
  f->h = rpc_health_create();
  assert_non_null(f->h);
  keel_error err = {0};
  assert_int_equal(rpc_health_register(f->h, f->srv, &err), 0);
  *state = f;
  alarm(30); /* a deadlock fails the test instead of hanging it */
  return 0;
}

static int health_teardown(void **state) {
  health_fixture *f = *state;
  reenter_health = NULL;
  rpc_health_destroy(f->h);
  fake_server_free(f->srv);
  free(f);
  alarm(0);
  return 0;
}

/* Runs Check; returns the status, or -code when the call failed. */
static int check(health_fixture *f, const char *service, char **message) {
  void *ctx;
  const rpc_method_handler *hd = find_handler(f->srv, "grpc.health.v1.Health", "Check", &ctx);
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  rpc_call *c = fake_call_new(f->srv);
  hd->on_request(c, &req.base, ctx);
  assert_true(c->finished);
  int r;
  if (c->code == GRPC_STATUS_OK) {
    assert_true(c->replied);
    assert_int_equal(c->nsent, 1);
    r = health_status_at(c, 0);
  } else {
    assert_int_equal(c->nsent, 0);
    r = -(int)c->code;
    if (message) *message = c->message ? strdup(c->message) : NULL;
  }
  assert_int_equal(refs_of(c), 1);
  rpc_call_unref(c);
  return r;
}

static rpc_call *watch_on(health_fixture *f, rpc_call *c, const char *service) {
  void *ctx;
  const rpc_method_handler *hd = find_handler(f->srv, "grpc.health.v1.Health", "Watch", &ctx);
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)service;
  hd->on_request(c, &req.base, ctx);
  return c;
}

static rpc_call *watch(health_fixture *f, const char *service) {
  return watch_on(f, fake_call_new(f->srv), service);
}

static void test_health_register(void **state) {
  health_fixture *f = *state;
  const fake_service *fs = find_service(f->srv, "grpc.health.v1.Health");
  assert_non_null(fs);
  void *ctx;
  assert_int_equal(find_handler(f->srv, "grpc.health.v1.Health", "Check", &ctx)->kind, RPC_UNARY);
  assert_int_equal(find_handler(f->srv, "grpc.health.v1.Health", "Watch", &ctx)->kind,
                   RPC_SERVER_STREAMING);
  assert_int_equal(check(f, "", NULL), RPC_HEALTH_SERVING);
  assert_int_equal(check(f, "keel.echo.v1.Echo", NULL), RPC_HEALTH_SERVING);
  assert_int_equal(check(f, "grpc.health.v1.Health", NULL), RPC_HEALTH_SERVING);
  char *msg = NULL;
  assert_int_equal(check(f, "no.such.Service", &msg), -GRPC_STATUS_NOT_FOUND);
  assert_non_null(msg);
  assert_non_null(strstr(msg, "no.such.Service"));
  free(msg);
  rpc_health_set(f->h, "keel.echo.v1.Echo", RPC_HEALTH_NOT_SERVING);
  assert_int_equal(check(f, "keel.echo.v1.Echo", NULL), RPC_HEALTH_NOT_SERVING);
  rpc_health_set(f->h, "", RPC_HEALTH_NOT_SERVING);
  assert_int_equal(check(f, "", NULL), RPC_HEALTH_NOT_SERVING);
  rpc_health_set(f->h, NULL, RPC_HEALTH_SERVING); /* ignored */
  rpc_health_set(NULL, "x", RPC_HEALTH_SERVING);

  /* A registration failure is reported with context. */
  rpc_server *srv = fake_server_new();
  srv->fail_add_service = 1;
  rpc_health *h = rpc_health_create();
  keel_error err = {0};
  assert_true(rpc_health_register(h, srv, &err) < 0);
  assert_non_null(strstr(err.message, "grpc.health.v1.Health"));
  rpc_health_destroy(h);
  fake_server_free(srv);
}

static void test_health_watch_changes(void **state) {
  health_fixture *f = *state;
  rpc_call *c = watch(f, "keel.echo.v1.Echo");
  assert_false(c->finished);
  assert_int_equal(refs_of(c), 2); /* the runtime's and the watcher's */
  assert_int_equal(c->nsent, 1);
  assert_int_equal(health_status_at(c, 0), RPC_HEALTH_SERVING);
  rpc_health_set(f->h, "keel.echo.v1.Echo", RPC_HEALTH_NOT_SERVING);
  assert_int_equal(c->nsent, 2);
  assert_int_equal(health_status_at(c, 1), RPC_HEALTH_NOT_SERVING);
  /* Same status again, or another service: nothing new. */
  rpc_health_set(f->h, "keel.echo.v1.Echo", RPC_HEALTH_NOT_SERVING);
  rpc_health_set(f->h, "", RPC_HEALTH_NOT_SERVING);
  rpc_health_set(f->h, "other", RPC_HEALTH_SERVING);
  assert_int_equal(c->nsent, 2);
  rpc_health_set(f->h, "keel.echo.v1.Echo", RPC_HEALTH_SERVING);
  assert_int_equal(c->nsent, 3);
  assert_int_equal(health_status_at(c, 2), RPC_HEALTH_SERVING);

  /* Two watchers of "", one of them cancelled. */
  rpc_call *a = watch(f, "");
  rpc_call *b = watch(f, "");
  assert_int_equal(health_status_at(a, 0), RPC_HEALTH_NOT_SERVING);
  fake_cancel(a);
  assert_int_equal(refs_of(a), 1);
  rpc_health_set(f->h, "", RPC_HEALTH_SERVING);
  assert_int_equal(a->nsent, 1);
  assert_int_equal(b->nsent, 2);
  assert_int_equal(health_status_at(b, 1), RPC_HEALTH_SERVING);
  assert_false(c->finished || b->finished);
  rpc_call_unref(a);
  rpc_call_unref(b); /* the runtime's; the watcher keeps the call alive */
  fake_cancel(c);
  assert_int_equal(refs_of(c), 1);
  rpc_call_unref(c);
}

static void test_health_watch_unknown(void **state) {
  health_fixture *f = *state;
  rpc_call *c = watch(f, "later.Service");
  assert_int_equal(c->nsent, 1);
  assert_int_equal(health_status_at(c, 0), RPC_HEALTH_SERVICE_UNKNOWN);
  assert_false(c->finished); /* keeps watching, per the spec */
  rpc_health_set(f->h, "later.Service", RPC_HEALTH_SERVING);
  assert_int_equal(c->nsent, 2);
  assert_int_equal(health_status_at(c, 1), RPC_HEALTH_SERVING);
  fake_cancel(c);
  rpc_call_unref(c);
}

/* A call cancelled before the handler ran: the cancel callback runs from
 * rpc_call_on_cancel, inside the handler, and must neither deadlock nor leak. */
static void test_health_watch_already_cancelled(void **state) {
  health_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  fake_cancel(c);
  watch_on(f, c, "");
  assert_int_equal(c->nsent, 0);
  assert_int_equal(refs_of(c), 1);
  rpc_health_set(f->h, "", RPC_HEALTH_NOT_SERVING);
  assert_int_equal(c->nsent, 0);
  rpc_call_unref(c);
}

/* A send that fails (receiver too slow: the runtime closed the stream) drops
 * the watcher. */
static void test_health_watch_send_fails(void **state) {
  health_fixture *f = *state;
  rpc_call *c = watch(f, "");
  assert_int_equal(refs_of(c), 2);
  c->fail_sends = -ENOBUFS;
  rpc_health_set(f->h, "", RPC_HEALTH_NOT_SERVING);
  assert_true(c->finished);
  assert_int_equal(c->code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_int_equal(refs_of(c), 1);
  c->fail_sends = 0;
  rpc_health_set(f->h, "", RPC_HEALTH_SERVING);
  assert_int_equal(c->nsent, 1);
  rpc_call_unref(c);
}

static void test_health_shutdown(void **state) {
  health_fixture *f = *state;
  rpc_call *a = watch(f, "");
  rpc_call *b = watch(f, "keel.echo.v1.Echo");
  rpc_call *u = watch(f, "unknown.Service");
  rpc_health_begin_shutdown(f->h);
  /* Watchers hear NOT_SERVING and are released: the runtime ends the streams. */
  assert_int_equal(a->nsent, 2);
  assert_int_equal(health_status_at(a, 1), RPC_HEALTH_NOT_SERVING);
  assert_int_equal(b->nsent, 2);
  assert_int_equal(health_status_at(b, 1), RPC_HEALTH_NOT_SERVING);
  assert_int_equal(u->nsent, 1); /* still SERVICE_UNKNOWN */
  assert_int_equal(refs_of(a), 1);
  assert_int_equal(refs_of(b), 1);
  assert_int_equal(refs_of(u), 1);
  assert_false(a->finished);
  /* Later sets are ignored; Check says NOT_SERVING. */
  rpc_health_set(f->h, "", RPC_HEALTH_SERVING);
  rpc_health_set(f->h, "new.Service", RPC_HEALTH_SERVING);
  assert_int_equal(check(f, "", NULL), RPC_HEALTH_NOT_SERVING);
  assert_int_equal(check(f, "keel.echo.v1.Echo", NULL), RPC_HEALTH_NOT_SERVING);
  assert_int_equal(check(f, "new.Service", NULL), -GRPC_STATUS_NOT_FOUND);
  assert_int_equal(a->nsent, 2);
  /* A Watch arriving now gets the status and holds no reference. */
  rpc_call *late = watch(f, "");
  assert_int_equal(late->nsent, 1);
  assert_int_equal(health_status_at(late, 0), RPC_HEALTH_NOT_SERVING);
  assert_int_equal(refs_of(late), 1);
  rpc_health_begin_shutdown(f->h); /* idempotent */
  assert_int_equal(a->nsent, 2);
  /* Cancel callbacks after shutdown find nothing to do. */
  fake_cancel(a);
  rpc_call_unref(a);
  rpc_call_unref(b);
  rpc_call_unref(u);
  rpc_call_unref(late);
}

/* destroy releases the calls of watchers still listed. */
static void test_health_destroy_releases(void **state) {
  health_fixture *f = *state;
  rpc_call *a = watch(f, "");
  rpc_call *b = watch(f, "x");
  rpc_call_ref(a);
  rpc_call_ref(b);
  rpc_call_unref(a); /* the runtime's reference goes... */
  rpc_call_unref(b);
  assert_int_equal(refs_of(a), 2); /* ...ours and the watcher's remain */
  rpc_health_destroy(f->h);
  f->h = rpc_health_create();
  assert_int_equal(refs_of(a), 1);
  assert_int_equal(refs_of(b), 1);
  rpc_call_unref(a);
  rpc_call_unref(b);
}

/* Every runtime entry re-enters health: no rpc_call_* runs under health's lock. */
static void test_health_reentrant(void **state) {
  health_fixture *f = *state;
  reenter_health = f->h;
  rpc_call *a = watch(f, "");
  rpc_call *b = watch(f, "reentry-probe");
  assert_int_equal(check(f, "", NULL), RPC_HEALTH_SERVING);
  rpc_health_set(f->h, "", RPC_HEALTH_NOT_SERVING);
  assert_int_equal(a->nsent, 2);
  fake_cancel(a);
  rpc_call *c = fake_call_new(f->srv);
  fake_cancel(c);
  watch_on(f, c, "");
  rpc_health_begin_shutdown(f->h);
  assert_int_equal(health_status_at(b, b->nsent - 1), RPC_HEALTH_NOT_SERVING);
  reenter_health = NULL;
  rpc_call_unref(a);
  rpc_call_unref(b);
  rpc_call_unref(c);
}

/* Threads flip a status while others open and cancel watchers. Afterwards every
 * surviving watcher's last message is the final status, and no watcher ever
 * got the same status twice in a row. */
typedef struct {
  health_fixture *f;
  int seed;
  atomic_int *stop;
} stress_arg;

static void *stress_setter(void *p) {
  stress_arg *a = p;
  unsigned s = (unsigned)a->seed;
  for (int i = 0; i < 3000; i++) {
    s = s * 1103515245u + 12345u;
    rpc_health_set(a->f->h, "svc", (s >> 16) % 2 ? RPC_HEALTH_SERVING : RPC_HEALTH_NOT_SERVING);
  }
  return NULL;
}

#define STRESS_WATCHERS 200

static void check_no_repeats(rpc_call *c) {
  int prev = -1;
  for (size_t i = 0; i < nsent_of(c); i++) {
    int st = health_status_at(c, i);
    assert_int_not_equal(st, prev);
    prev = st;
  }
}

static void *stress_watcher(void *p) {
  stress_arg *a = p;
  for (int i = 0; i < STRESS_WATCHERS; i++) {
    rpc_call *c = watch(a->f, "svc");
    if (i % 2) fake_cancel(c);
    check_no_repeats(c);
    rpc_call_unref(c);
  }
  return NULL;
}

static void test_health_stress(void **state) {
  health_fixture *f = *state;
  rpc_health_set(f->h, "svc", RPC_HEALTH_SERVING);
  rpc_call *kept[4];
  for (int i = 0; i < 4; i++) {
    kept[i] = watch(f, "svc");
  }
  pthread_t th[6];
  stress_arg args[6];
  for (int i = 0; i < 6; i++) {
    args[i] = (stress_arg){.f = f, .seed = i + 1};
    pthread_create(&th[i], NULL, i < 3 ? stress_setter : stress_watcher, &args[i]);
  }
  for (int i = 0; i < 6; i++) pthread_join(th[i], NULL);
  char *msg = NULL;
  int final = check(f, "svc", &msg);
  for (int i = 0; i < 4; i++) {
    check_no_repeats(kept[i]);
    assert_int_equal(health_status_at(kept[i], nsent_of(kept[i]) - 1), final);
    fake_cancel(kept[i]);
    assert_int_equal(refs_of(kept[i]), 1);
    rpc_call_unref(kept[i]);
  }
}

/* ================================================================ reflection */

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_resp;
typedef Google__Protobuf__FileDescriptorProto FileProto;

#define V1A "grpc.reflection.v1alpha.ServerReflection"
#define V1 "grpc.reflection.v1.ServerReflection"

/* A set with imports and extensions (the embedded ones have neither):
 *   app/svc.proto  imports dep/other.proto, dep/base.proto
 *   dep/other.proto imports dep/base.proto
 *   app/ext.proto  imports dep/base.proto; extends dep.Base with 100 and 7 */
static uint8_t *app_set;
static size_t app_set_len;

static void build_app_set(void) {
  Google__Protobuf__DescriptorProto base_msg = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  base_msg.name = "Base";
  Google__Protobuf__DescriptorProto plain = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  plain.name = "Plain";
  Google__Protobuf__DescriptorProto *base_msgs[] = {&base_msg, &plain};
  FileProto base = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  base.name = "dep/base.proto";
  base.package = "dep";
  base.n_message_type = 2;
  base.message_type = base_msgs;

  Google__Protobuf__FieldDescriptorProto ref = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
  ref.name = "base";
  ref.has_number = 1;
  ref.number = 1;
  Google__Protobuf__FieldDescriptorProto *other_fields[] = {&ref};
  Google__Protobuf__DescriptorProto other_msg = GOOGLE__PROTOBUF__DESCRIPTOR_PROTO__INIT;
  other_msg.name = "Other";
  other_msg.n_field = 1;
  other_msg.field = other_fields;
  Google__Protobuf__DescriptorProto *other_msgs[] = {&other_msg};
  char *other_deps[] = {"dep/base.proto"};
  FileProto other = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  other.name = "dep/other.proto";
  other.package = "dep";
  other.n_dependency = 1;
  other.dependency = other_deps;
  other.n_message_type = 1;
  other.message_type = other_msgs;

  Google__Protobuf__MethodDescriptorProto m = GOOGLE__PROTOBUF__METHOD_DESCRIPTOR_PROTO__INIT;
  m.name = "Do";
  m.input_type = ".dep.Other";
  m.output_type = ".dep.Base";
  m.has_server_streaming = 1;
  m.server_streaming = 1;
  Google__Protobuf__MethodDescriptorProto *methods[] = {&m};
  Google__Protobuf__ServiceDescriptorProto svc = GOOGLE__PROTOBUF__SERVICE_DESCRIPTOR_PROTO__INIT;
  svc.name = "Svc";
  svc.n_method = 1;
  svc.method = methods;
  Google__Protobuf__ServiceDescriptorProto *svcs[] = {&svc};
  char *app_deps[] = {"dep/other.proto", "dep/base.proto"};
  FileProto app = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  app.name = "app/svc.proto";
  app.package = "app";
  app.n_dependency = 2;
  app.dependency = app_deps;
  app.n_service = 1;
  app.service = svcs;

  Google__Protobuf__FieldDescriptorProto e1 = GOOGLE__PROTOBUF__FIELD_DESCRIPTOR_PROTO__INIT;
  e1.name = "hundred";
  e1.has_number = 1;
  e1.number = 100;
  e1.extendee = ".dep.Base";
  Google__Protobuf__FieldDescriptorProto e2 = e1;
  e2.name = "seven";
  e2.number = 7;
  Google__Protobuf__FieldDescriptorProto *exts[] = {&e1, &e2};
  char *ext_deps[] = {"dep/base.proto"};
  FileProto ext = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_PROTO__INIT;
  ext.name = "app/ext.proto";
  ext.package = "app";
  ext.n_dependency = 1;
  ext.dependency = ext_deps;
  ext.n_extension = 2;
  ext.extension = exts;

  FileProto *files[] = {&base, &other, &app, &ext};
  Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  set.n_file = 4;
  set.file = files;
  app_set_len = google__protobuf__file_descriptor_set__get_packed_size(&set);
  app_set = malloc(app_set_len);
  google__protobuf__file_descriptor_set__pack(&set, app_set);
}

typedef struct {
  rpc_server *srv;
  rpc_health *h;
  rpc_reflection *r;
} refl_fixture;

static int refl_setup(void **state) {
  refl_fixture *f = calloc(1, sizeof(*f));
  f->srv = fake_server_new();
  fake_server_add_set(f->srv, keel_runtime_descriptor_set, keel_runtime_descriptor_set_len);
  fake_server_add_set(f->srv, keel_echo_descriptor_set, keel_echo_descriptor_set_len);
  fake_server_add_set(f->srv, app_set, app_set_len);
  f->srv->services[f->srv->nservices++].name = strdup("keel.echo.v1.Echo");
  keel_error err = {0};
  f->r = rpc_reflection_create(f->srv, &err);
  assert_non_null(f->r);
  f->h = rpc_health_create();
  assert_int_equal(rpc_health_register(f->h, f->srv, &err), 0);
  assert_int_equal(rpc_reflection_register(f->r, f->srv, &err), 0);
  *state = f;
  return 0;
}

static int refl_teardown(void **state) {
  refl_fixture *f = *state;
  rpc_reflection_destroy(f->r);
  rpc_health_destroy(f->h);
  fake_server_free(f->srv);
  free(f);
  return 0;
}

/* Sends one request on stream c (through `service`'s registered handler) and
 * returns the one response it produced. */
static refl_resp *ask_on(refl_fixture *f, const char *service, rpc_call *c, const refl_req *req) {
  void *ctx;
  const rpc_method_handler *hd = find_handler(f->srv, service, "ServerReflectionInfo", &ctx);
  size_t before = c->nsent;
  hd->on_message(c, &req->base, ctx);
  assert_int_equal(c->nsent, before + 1);
  refl_resp *resp = grpc__reflection__v1alpha__server_reflection_response__unpack(
      NULL, c->sent[before].len, c->sent[before].data);
  assert_non_null(resp);
  return resp;
}

static refl_resp *ask(refl_fixture *f, rpc_call *c, const refl_req *req) {
  return ask_on(f, V1A, c, req);
}

static refl_req symbol_req(const char *sym) {
  refl_req req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = (char *)sym;
  return req;
}

static refl_req file_req(const char *name) {
  refl_req req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME;
  req.file_by_filename = (char *)name;
  return req;
}

/* "a.proto,b.proto" for a file response; fails on anything else. */
static char *file_names(const refl_resp *resp) {
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
  static char buf[1024];
  buf[0] = '\0';
  const Grpc__Reflection__V1alpha__FileDescriptorResponse *fdr = resp->file_descriptor_response;
  for (size_t i = 0; i < fdr->n_file_descriptor_proto; i++) {
    FileProto *fd = google__protobuf__file_descriptor_proto__unpack(
        NULL, fdr->file_descriptor_proto[i].len, fdr->file_descriptor_proto[i].data);
    assert_non_null(fd);
    if (i) strcat(buf, ",");
    strcat(buf, fd->name);
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
  }
  return buf;
}

static void expect_error(const refl_resp *resp, int code, const char *in_message) {
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
  assert_int_equal(resp->error_response->error_code, code);
  if (!strstr(resp->error_response->error_message, in_message))
    fail_msg("error \"%s\" lacks \"%s\"", resp->error_response->error_message, in_message);
}

static void free_resp(refl_resp *r) {
  grpc__reflection__v1alpha__server_reflection_response__free_unpacked(r, NULL);
}

static void test_refl_register_and_kinds(void **state) {
  refl_fixture *f = *state;
  void *ctx;
  assert_int_equal(find_handler(f->srv, V1A, "ServerReflectionInfo", &ctx)->kind,
                   RPC_BIDI_STREAMING);
  assert_int_equal(find_handler(f->srv, V1, "ServerReflectionInfo", &ctx)->kind,
                   RPC_BIDI_STREAMING);
  assert_ptr_equal(ctx, f->r);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/keel.echo.v1.Echo/Echo"), RPC_UNARY);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/keel.echo.v1.Echo/Expand"),
                   RPC_SERVER_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/keel.echo.v1.Echo/Collect"),
                   RPC_CLIENT_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/keel.echo.v1.Echo/Chat"), RPC_BIDI_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/grpc.health.v1.Health/Watch"),
                   RPC_SERVER_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/" V1 "/ServerReflectionInfo"),
                   RPC_BIDI_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/app.Svc/Do"), RPC_SERVER_STREAMING);
  assert_int_equal(rpc_reflection_method_kind(f->r, "/app.Svc/Nope"), -1);

  /* Registration failures are reported with the service name. */
  rpc_server *srv = fake_server_new();
  keel_error err = {0};
  srv->fail_add_service = 2;
  assert_true(rpc_reflection_register(f->r, srv, &err) < 0);
  assert_non_null(strstr(err.message, V1));
  fake_server_free(srv);
}

static void test_refl_list_services(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  refl_req req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.host = "localhost:7000";
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = "*";
  refl_resp *resp = ask(f, c, &req);
  assert_string_equal(resp->valid_host, "localhost:7000");
  assert_non_null(resp->original_request);
  assert_int_equal(resp->original_request->message_request_case, req.message_request_case);
  assert_string_equal(resp->original_request->list_services, "*");
  assert_string_equal(resp->original_request->host, "localhost:7000");
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE);
  const Grpc__Reflection__V1alpha__ListServiceResponse *l = resp->list_services_response;
  const char *want[] = {"keel.echo.v1.Echo", "grpc.health.v1.Health", V1A, V1};
  assert_int_equal(l->n_service, 4);
  for (size_t i = 0; i < 4; i++) assert_string_equal(l->service[i]->name, want[i]);
  free_resp(resp);
  assert_false(c->finished);
  void *ctx;
  find_handler(f->srv, V1A, "ServerReflectionInfo", &ctx)->on_half_close(c, ctx);
  assert_true(c->finished);
  assert_int_equal(c->code, GRPC_STATUS_OK);
  rpc_call_unref(c);
}

static void test_refl_symbol_with_dependencies(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  refl_req req = symbol_req("app.Svc");
  refl_resp *resp = ask(f, c, &req);
  /* The requested file first, then its imports, each import before its importers. */
  assert_string_equal(file_names(resp), "app/svc.proto,dep/base.proto,dep/other.proto");
  assert_string_equal(resp->valid_host, "");
  assert_string_equal(resp->original_request->file_containing_symbol, "app.Svc");
  /* The bytes are the set's own. */
  descriptor_index *ix = descriptor_index_create();
  assert_int_equal(descriptor_index_add_set(ix, app_set, app_set_len, NULL), 0);
  const uint8_t *data;
  size_t len;
  descriptor_index_file_bytes(ix, (size_t)descriptor_index_find_file(ix, "dep/other.proto"), &data,
                              &len);
  assert_int_equal(resp->file_descriptor_response->file_descriptor_proto[2].len, len);
  assert_memory_equal(resp->file_descriptor_response->file_descriptor_proto[2].data, data, len);
  descriptor_index_destroy(ix);
  free_resp(resp);

  /* Same stream: what was sent is not sent again, but the requested file always is. */
  req = file_req("dep/other.proto");
  resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "dep/other.proto");
  free_resp(resp);
  req = symbol_req("app.Svc.Do");
  resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "app/svc.proto");
  free_resp(resp);
  req = symbol_req(".dep.Base");
  resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "dep/base.proto");
  free_resp(resp);

  /* A new stream starts from nothing. */
  rpc_call *d = fake_call_new(f->srv);
  req = symbol_req("dep.Other.base");
  resp = ask(f, d, &req);
  assert_string_equal(file_names(resp), "dep/other.proto,dep/base.proto");
  free_resp(resp);
  req = symbol_req("app.Svc");
  resp = ask(f, d, &req);
  assert_string_equal(file_names(resp), "app/svc.proto");
  free_resp(resp);
  rpc_call_unref(c);
  rpc_call_unref(d);
}

static void test_refl_runtime_symbols(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  struct {
    const char *sym, *file;
  } cases[] = {
      {"grpc.health.v1.Health", "grpc/health/v1/health.proto"},
      {"grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"},
      {"grpc.health.v1.HealthCheckResponse.SERVING", "grpc/health/v1/health.proto"},
      {"keel.echo.v1.Echo", "keel/echo/v1/echo.proto"},
      {"keel.echo.v1.EchoRequest.delay_ms", "keel/echo/v1/echo.proto"},
      {V1, "grpc/reflection/v1/reflection.proto"},
      {"grpc.reflection.v1alpha.ServerReflectionRequest",
       "grpc/reflection/v1alpha/reflection.proto"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
    refl_req req = symbol_req(cases[i].sym);
    refl_resp *resp = ask(f, c, &req);
    assert_string_equal(file_names(resp), cases[i].file);
    free_resp(resp);
  }
  rpc_call_unref(c);
}

static void test_refl_not_found_and_invalid(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  refl_req req = symbol_req("no.such.Symbol");
  refl_resp *resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "no.such.Symbol");
  assert_string_equal(resp->original_request->file_containing_symbol, "no.such.Symbol");
  free_resp(resp);
  req = file_req("no/such.proto");
  resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "no/such.proto");
  free_resp(resp);
  req = symbol_req("");
  resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "symbol not found");
  free_resp(resp);
  refl_req empty = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  empty.host = "h";
  resp = ask(f, c, &empty);
  expect_error(resp, GRPC_STATUS_INVALID_ARGUMENT, "empty request");
  assert_string_equal(resp->valid_host, "h");
  free_resp(resp);
  /* A very long name is cut in the message. */
  char *longname = malloc(10001);
  memset(longname, 'x', 10000);
  longname[10000] = '\0';
  req = symbol_req(longname);
  resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "symbol not found: xxx");
  assert_true(strlen(resp->error_response->error_message) < 300);
  free_resp(resp);
  free(longname);
  /* Cut on a character boundary: "x" then 2-byte characters, so byte 256 is
   * the second byte of one. */
  char utf8[1 + 2 * 200 + 1] = "x";
  for (int i = 0; i < 200; i++) memcpy(utf8 + 1 + 2 * i, "\xc3\xa9", 2);
  utf8[sizeof(utf8) - 1] = '\0';
  req = symbol_req(utf8);
  resp = ask(f, c, &req);
  const char *cutname = strstr(resp->error_response->error_message, "x\xc3\xa9");
  assert_non_null(cutname);
  assert_int_equal(strlen(cutname), 255);
  assert_int_equal((unsigned char)cutname[254], 0xa9);
  free_resp(resp);
  /* The stream goes on after errors. */
  req = symbol_req("app.Svc");
  resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "app/svc.proto,dep/base.proto,dep/other.proto");
  free_resp(resp);
  assert_false(c->finished);
  rpc_call_unref(c);
}

static void test_refl_extensions(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  Grpc__Reflection__V1alpha__ExtensionRequest er =
      GRPC__REFLECTION__V1ALPHA__EXTENSION_REQUEST__INIT;
  er.containing_type = "dep.Base";
  er.extension_number = 100;
  refl_req req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_EXTENSION;
  req.file_containing_extension = &er;
  refl_resp *resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "app/ext.proto,dep/base.proto");
  assert_int_equal(resp->original_request->file_containing_extension->extension_number, 100);
  free_resp(resp);
  er.extension_number = 8;
  resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "dep.Base");
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "8");
  free_resp(resp);
  req.file_containing_extension = NULL; /* the case set without a message: not found */
  resp = ask(f, c, &req);
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE);
  free_resp(resp);

  refl_req nums = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  nums.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE;
  nums.all_extension_numbers_of_type = "dep.Base";
  resp = ask(f, c, &nums);
  assert_int_equal(
      resp->message_response_case,
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE);
  assert_string_equal(resp->all_extension_numbers_response->base_type_name, "dep.Base");
  assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 2);
  assert_int_equal(resp->all_extension_numbers_response->extension_number[0], 7);
  assert_int_equal(resp->all_extension_numbers_response->extension_number[1], 100);
  free_resp(resp);
  nums.all_extension_numbers_of_type = "dep.Plain";
  resp = ask(f, c, &nums);
  assert_int_equal(resp->all_extension_numbers_response->n_extension_number, 0);
  free_resp(resp);
  nums.all_extension_numbers_of_type = "dep.Nope";
  resp = ask(f, c, &nums);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "dep.Nope");
  free_resp(resp);
  nums.all_extension_numbers_of_type = "app.Svc"; /* a service, not a message */
  resp = ask(f, c, &nums);
  expect_error(resp, GRPC_STATUS_NOT_FOUND, "app.Svc");
  free_resp(resp);
  rpc_call_unref(c);
}

/* The v1 name serves the same handler, and its answers decode as v1 messages. */
static void test_refl_v1_wire(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  /* A v1 request as a client would send it, decoded as the runtime would. */
  Grpc__Reflection__V1__ServerReflectionRequest v1req =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__INIT;
  v1req.host = "v1host";
  v1req.message_request_case =
      GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  v1req.file_containing_symbol = "app.Svc";
  size_t len = grpc__reflection__v1__server_reflection_request__get_packed_size(&v1req);
  uint8_t *buf = malloc(len);
  grpc__reflection__v1__server_reflection_request__pack(&v1req, buf);
  refl_req *req = grpc__reflection__v1alpha__server_reflection_request__unpack(NULL, len, buf);
  assert_non_null(req);
  refl_resp *resp = ask_on(f, V1, c, req);
  free_resp(resp);
  Grpc__Reflection__V1__ServerReflectionResponse *v1 =
      grpc__reflection__v1__server_reflection_response__unpack(NULL, c->sent[0].len,
                                                               c->sent[0].data);
  assert_non_null(v1);
  assert_string_equal(v1->valid_host, "v1host");
  assert_string_equal(v1->original_request->file_containing_symbol, "app.Svc");
  assert_int_equal(
      v1->message_response_case,
      GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE);
  assert_int_equal(v1->file_descriptor_response->n_file_descriptor_proto, 3);
  grpc__reflection__v1__server_reflection_response__free_unpacked(v1, NULL);
  grpc__reflection__v1alpha__server_reflection_request__free_unpacked(req, NULL);
  free(buf);
  void *ctx;
  find_handler(f->srv, V1, "ServerReflectionInfo", &ctx)->on_half_close(c, ctx);
  assert_int_equal(c->code, GRPC_STATUS_OK);
  rpc_call_unref(c);
}

/* Too large for one message: the requested file alone, then an in-band error. */
static void test_refl_size_limit(void **state) {
  refl_fixture *f = *state;
  rpc_call *c = fake_call_new(f->srv);
  refl_req req = symbol_req("app.Svc");
  /* Measure the full answer, then allow a bit less. */
  refl_resp *full = ask(f, c, &req);
  size_t full_len = c->sent[0].len;
  free_resp(full);
  rpc_call_unref(c);

  c = fake_call_new(f->srv);
  c->max_bytes = full_len - 1;
  refl_resp *resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "app/svc.proto");
  free_resp(resp);
  /* The imports were not marked sent: with room they come now. */
  c->max_bytes = 0;
  resp = ask(f, c, &req);
  assert_string_equal(file_names(resp), "app/svc.proto,dep/base.proto,dep/other.proto");
  free_resp(resp);
  rpc_call_unref(c);

  c = fake_call_new(f->srv);
  c->max_bytes = 70;
  resp = ask(f, c, &req);
  expect_error(resp, GRPC_STATUS_RESOURCE_EXHAUSTED, "size limit");
  free_resp(resp);
  assert_false(c->finished);
  rpc_call_unref(c);
}

/* After a send fails the stream is over: later requests are dropped quietly. */
static void test_refl_send_failure(void **state) {
  refl_fixture *f = *state;
  void *ctx;
  const rpc_method_handler *hd = find_handler(f->srv, V1A, "ServerReflectionInfo", &ctx);
  rpc_call *c = fake_call_new(f->srv);
  c->fail_sends = -ENOBUFS;
  refl_req req = symbol_req("app.Svc");
  hd->on_message(c, &req.base, ctx);
  assert_true(c->finished);
  c->fail_sends = 0;
  hd->on_message(c, &req.base, ctx);
  assert_int_equal(c->nsent, 0);
  rpc_call_unref(c);

  c = fake_call_new(f->srv);
  fake_cancel(c);
  hd->on_message(c, &req.base, ctx);
  hd->on_half_close(c, ctx);
  assert_int_equal(c->nsent, 0);
  assert_false(c->finished);
  rpc_call_unref(c);
}

static void test_refl_create_fails_on_bad_set(void **state) {
  (void)state;
  rpc_server *srv = fake_server_new();
  fake_server_add_set(srv, keel_runtime_descriptor_set, keel_runtime_descriptor_set_len);
  static const uint8_t junk[] = {0x0a, 0x10, 0x01};
  fake_server_add_set(srv, junk, sizeof(junk));
  keel_error err = {0};
  assert_null(rpc_reflection_create(srv, &err));
  assert_int_equal(err.code, EINVAL);
  assert_non_null(strstr(err.message, "descriptor set 2 of 2"));
  fake_server_free(srv);

  /* No sets at all: an empty index that answers NOT_FOUND. */
  srv = fake_server_new();
  rpc_reflection *r = rpc_reflection_create(srv, &err);
  assert_non_null(r);
  assert_int_equal(rpc_reflection_method_kind(r, "/grpc.health.v1.Health/Check"), -1);
  rpc_reflection_destroy(r);
  rpc_reflection_destroy(NULL);
  fake_server_free(srv);
}

int main(void) {
  build_app_set();
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_health_register, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_watch_changes, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_watch_unknown, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_watch_already_cancelled, health_setup,
                                      health_teardown),
      cmocka_unit_test_setup_teardown(test_health_watch_send_fails, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_shutdown, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_destroy_releases, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_reentrant, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_health_stress, health_setup, health_teardown),
      cmocka_unit_test_setup_teardown(test_refl_register_and_kinds, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_list_services, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_symbol_with_dependencies, refl_setup,
                                      refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_runtime_symbols, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_not_found_and_invalid, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_extensions, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_v1_wire, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_size_limit, refl_setup, refl_teardown),
      cmocka_unit_test_setup_teardown(test_refl_send_failure, refl_setup, refl_teardown),
      cmocka_unit_test(test_refl_create_fails_on_bad_set),
  };
  int failed = cmocka_run_group_tests(tests, NULL, NULL);
  free(app_set);
  return failed;
}
