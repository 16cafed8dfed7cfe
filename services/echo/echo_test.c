/* Component tests of common/rpc through the echo service: a real server and the
 * real client in one process, over loopback TCP. Interop with other clients is
 * in e2e/rpc. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rpc/rpc.h"
#include "common/sched/sched.h"
#include "keel/echo/v1/echo.pb-c.h"
#include "services/echo/echo_service.h"

extern const unsigned char keel_echo_descriptor_set[];
extern const unsigned long keel_echo_descriptor_set_len;

typedef struct fixture {
  sched *timers;
  echo_service *svc;
  rpc_server *srv;
  rpc_channel *ch;
  char addr[64];
} fixture;

static fixture *start_server(const rpc_server_options *opts) {
  fixture *f = calloc(1, sizeof(*f));
  keel_error err = {0};
  f->timers = sched_create(1, "test-timers");
  f->svc = echo_service_create(f->timers);
  f->srv = rpc_server_create(opts, &err);
  assert_non_null(f->srv);
  assert_int_equal(echo_service_register(f->svc, f->srv, &err), 0);
  assert_int_equal(rpc_server_add_descriptors(f->srv, keel_echo_descriptor_set,
                                              keel_echo_descriptor_set_len, &err), 0);
  int port = rpc_server_add_listener(f->srv, "127.0.0.1:0", NULL, &err);
  assert_true(port > 0);
  snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%d", port);
  if (rpc_server_start(f->srv, &err) != 0) fail_msg("start: %s", err.message);
  const char *eps[] = {f->addr};
  rpc_channel_options copts = {.endpoints = eps, .nendpoints = 1};
  f->ch = rpc_channel_create(&copts, &err);
  assert_non_null(f->ch);
  return f;
}

static int setup(void **state) {
  rpc_server_options opts = {.name = "echo-test", .max_message_bytes = 64 * 1024,
                             .stream_queue_messages = 64, .shutdown_grace_ms = 500};
  *state = start_server(&opts);
  return 0;
}

static int teardown(void **state) {
  fixture *f = *state;
  rpc_channel_destroy(f->ch);
  rpc_server_shutdown(f->srv);
  sched_destroy(f->timers);
  rpc_server_destroy(f->srv);
  echo_service_destroy(f->svc);
  free(f);
  return 0;
}

static Keel__Echo__V1__EchoResponse *call_echo(fixture *f, Keel__Echo__V1__EchoRequest *req,
                                               const rpc_call_options *opts, rpc_status *st) {
  ProtobufCMessage *resp = NULL;
  rpc_unary(f->ch, "/keel.echo.v1.Echo/Echo", &req->base, &keel__echo__v1__echo_response__descriptor,
            &resp, opts, st);
  return (Keel__Echo__V1__EchoResponse *)resp;
}

static Keel__Echo__V1__StatsResponse *get_stats(fixture *f) {
  Keel__Echo__V1__StatsRequest req = KEEL__ECHO__V1__STATS_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  assert_int_equal(rpc_unary(f->ch, "/keel.echo.v1.Echo/Stats", &req.base,
                             &keel__echo__v1__stats_response__descriptor, &resp, NULL, &st), 0);
  rpc_status_clear(&st);
  return (Keel__Echo__V1__StatsResponse *)resp;
}

static void test_unary_roundtrip_with_metadata(void **state) {
  fixture *f = *state;
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.message = "hello";
  rpc_metadata md[] = {{"x-echo", "tag-7", 5}};
  rpc_call_options opts = {.timeout_ms = 5000, .metadata = md, .nmetadata = 1};
  rpc_status st;
  Keel__Echo__V1__EchoResponse *resp = call_echo(f, &req, &opts, &st);
  assert_int_equal(st.code, GRPC_STATUS_OK);
  assert_non_null(resp);
  assert_string_equal(resp->message, "hello");
  assert_string_equal(resp->echo_metadata, "tag-7");
  size_t len = 0;
  const char *trailer = rpc_status_trailer(&st, "x-echo-trailing", &len);
  assert_non_null(trailer);
  assert_int_equal(len, 5);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  rpc_status_clear(&st);
}

static void test_error_status_passthrough(void **state) {
  fixture *f = *state;
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.status_code = GRPC_STATUS_NOT_FOUND;
  req.status_message = "pods \"web\" not found";
  rpc_status st;
  assert_null(call_echo(f, &req, NULL, &st));
  assert_int_equal(st.code, GRPC_STATUS_NOT_FOUND);
  assert_string_equal(st.message, "pods \"web\" not found");
  rpc_status_clear(&st);
}

static void test_deadline_exceeded_reaches_handler(void **state) {
  fixture *f = *state;
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.delay_ms = 2000;
  rpc_call_options opts = {.timeout_ms = 100};
  rpc_status st;
  assert_null(call_echo(f, &req, &opts, &st));
  assert_int_equal(st.code, GRPC_STATUS_DEADLINE_EXCEEDED);
  rpc_status_clear(&st);
  /* The handler's cancel callback runs when the server sees the deadline. */
  for (int i = 0; i < 100; i++) {
    Keel__Echo__V1__StatsResponse *s = get_stats(f);
    uint64_t n = s->deadline_exceeded_calls;
    protobuf_c_message_free_unpacked(&s->base, NULL);
    if (n >= 1) return;
    usleep(20000);
  }
  fail_msg("handler never observed the deadline");
}

static void test_unknown_method_unimplemented(void **state) {
  fixture *f = *state;
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  assert_int_equal(rpc_unary(f->ch, "/keel.echo.v1.Echo/Nope", &req.base,
                             &keel__echo__v1__echo_response__descriptor, &resp, NULL, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_UNIMPLEMENTED);
  assert_non_null(strstr(st.message, "/keel.echo.v1.Echo/Nope"));
  rpc_status_clear(&st);
}

static void test_oversize_request_resource_exhausted(void **state) {
  fixture *f = *state;
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  uint8_t *big = calloc(1, 100 * 1024);
  req.payload.data = big;
  req.payload.len = 100 * 1024;
  rpc_status st;
  assert_null(call_echo(f, &req, NULL, &st));
  assert_int_equal(st.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  rpc_status_clear(&st);
  free(big);
}

/* A stream collector: counts messages and waits for on_close. */
typedef struct collector {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  uint64_t messages;
  uint64_t next_sequence;
  bool sequence_ok;
  bool closed;
  grpc_status_code code;
  char message[256];
  useconds_t sleep_first_message; /* a reader stuck on its first message */
} collector;

static void collector_init(collector *c) {
  memset(c, 0, sizeof(*c));
  pthread_mutex_init(&c->mu, NULL);
  pthread_cond_init(&c->cond, NULL);
  c->sequence_ok = true;
}

static void on_stream_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  (void)s;
  collector *c = arg;
  if (c->sleep_first_message && c->messages == 0) usleep(c->sleep_first_message);
  pthread_mutex_lock(&c->mu);
  /* Collect's one response is a CollectResponse: only EchoResponses carry a sequence. */
  if (m->descriptor == &keel__echo__v1__echo_response__descriptor &&
      ((const Keel__Echo__V1__EchoResponse *)m)->sequence != c->next_sequence)
    c->sequence_ok = false;
  c->next_sequence++;
  c->messages++;
  pthread_mutex_unlock(&c->mu);
}

static void on_stream_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  collector *c = arg;
  pthread_mutex_lock(&c->mu);
  c->closed = true;
  c->code = st->code;
  snprintf(c->message, sizeof(c->message), "%s", st->message ? st->message : "");
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
}

static void collector_wait(collector *c) {
  pthread_mutex_lock(&c->mu);
  while (!c->closed) pthread_cond_wait(&c->cond, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

static const rpc_stream_callbacks stream_cb = {on_stream_message, on_stream_close};

static void test_server_streaming_flow_control(void **state) {
  fixture *f = *state;
  /* Far more messages than the 64-message send queue: the handler must follow
   * the writable callback, and nothing may be lost or reordered. */
  Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
  req.message = "m";
  req.count = 20000;
  collector c;
  collector_init(&c);
  keel_error err = {0};
  rpc_stream *s = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Expand", RPC_SERVER_STREAMING,
                                   &req.base, &keel__echo__v1__echo_response__descriptor, NULL,
                                   &stream_cb, &c, &err);
  assert_non_null(s);
  collector_wait(&c);
  assert_int_equal(c.code, GRPC_STATUS_OK);
  assert_int_equal(c.messages, 20000);
  assert_true(c.sequence_ok);
  rpc_stream_release(s);
}

static void test_client_streaming_collect(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  /* Collect is client-streaming: its single response arrives as one message. */
  collector c;
  collector_init(&c);
  rpc_stream *s = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Collect", RPC_CLIENT_STREAMING, NULL,
                                   &keel__echo__v1__collect_response__descriptor, NULL, &stream_cb,
                                   &c, &err);
  assert_non_null(s);
  const char *words[] = {"a", "bb", "ccc"};
  for (int i = 0; i < 3; i++) {
    Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
    req.message = (char *)words[i];
    assert_int_equal(rpc_stream_write(s, &req.base), 0);
  }
  assert_int_equal(rpc_stream_close_send(s), 0);
  collector_wait(&c);
  assert_int_equal(c.code, GRPC_STATUS_OK);
  assert_int_equal(c.messages, 1);
  rpc_stream_release(s);
}

static void test_bidi_chat_and_error(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  collector c;
  collector_init(&c);
  rpc_stream *s = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Chat", RPC_BIDI_STREAMING, NULL,
                                   &keel__echo__v1__echo_response__descriptor, NULL, &stream_cb, &c,
                                   &err);
  assert_non_null(s);
  for (int i = 0; i < 10; i++) {
    Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
    req.message = "ping";
    assert_int_equal(rpc_stream_write(s, &req.base), 0);
  }
  Keel__Echo__V1__EchoRequest bad = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  bad.status_code = GRPC_STATUS_ABORTED;
  bad.status_message = "stop";
  assert_int_equal(rpc_stream_write(s, &bad.base), 0);
  collector_wait(&c);
  assert_int_equal(c.code, GRPC_STATUS_ABORTED);
  assert_string_equal(c.message, "stop");
  assert_int_equal(c.messages, 10);
  assert_true(c.sequence_ok);
  rpc_stream_release(s);
}

static void test_client_cancel_reaches_handler(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  Keel__Echo__V1__StatsResponse *before = get_stats(f);
  uint64_t cancelled_before = before->cancelled_calls;
  protobuf_c_message_free_unpacked(&before->base, NULL);
  Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
  req.count = 1000000;
  req.interval_ms = 50;
  collector c;
  collector_init(&c);
  rpc_stream *s = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Expand", RPC_SERVER_STREAMING,
                                   &req.base, &keel__echo__v1__echo_response__descriptor, NULL,
                                   &stream_cb, &c, &err);
  assert_non_null(s);
  usleep(200000);
  rpc_stream_cancel(s);
  collector_wait(&c);
  assert_int_equal(c.code, GRPC_STATUS_CANCELLED);
  rpc_stream_release(s);
  for (int i = 0; i < 100; i++) {
    Keel__Echo__V1__StatsResponse *st = get_stats(f);
    uint64_t n = st->cancelled_calls;
    protobuf_c_message_free_unpacked(&st->base, NULL);
    if (n > cancelled_before) return;
    usleep(20000);
  }
  fail_msg("handler never observed the client's cancellation");
}

static void test_slow_receiver_is_closed(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  /* Chat uses the default policy (close slow receivers). The client stops
   * reading (stuck on its first message) while it keeps writing, so the server's
   * bounded queue overflows. Two channel threads: one stuck reading, one
   * completing writes. */
  const char *eps[] = {f->addr};
  rpc_channel_options copts = {.endpoints = eps, .nendpoints = 1, .cq_threads = 2};
  rpc_channel *ch = rpc_channel_create(&copts, &err);
  collector c;
  collector_init(&c);
  c.sleep_first_message = 1500 * 1000;
  rpc_stream *s = rpc_stream_start(ch, "/keel.echo.v1.Echo/Chat", RPC_BIDI_STREAMING, NULL,
                                   &keel__echo__v1__echo_response__descriptor, NULL, &stream_cb, &c,
                                   &err);
  assert_non_null(s);
  static uint8_t payload[16 * 1024];
  int written = 0;
  for (int i = 0; i < 4000; i++) {
    Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
    req.payload.data = payload;
    req.payload.len = sizeof(payload);
    int rc = rpc_stream_write(s, &req.base);
    if (rc == -ENOBUFS) {
      usleep(1000);
      continue;
    }
    if (rc < 0) break; /* the server closed the stream */
    written++;
  }
  rpc_stream_close_send(s);
  collector_wait(&c);
  assert_int_equal(c.code, GRPC_STATUS_RESOURCE_EXHAUSTED);
  assert_non_null(strstr(c.message, "too slow"));
  assert_true(written > 64); /* more than the server's queue could hold */
  rpc_stream_release(s);
  rpc_channel_destroy(ch);
}

static void test_failover_and_retry(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  /* The first endpoint refuses connections (a port nothing listens on: bound
   * and closed again by a throwaway server). */
  rpc_server *tmp = rpc_server_create(NULL, &err);
  int dead_port = rpc_server_add_listener(tmp, "127.0.0.1:0", NULL, &err);
  rpc_server_destroy(tmp);
  char dead[64];
  snprintf(dead, sizeof(dead), "127.0.0.1:%d", dead_port);
  const char *eps[] = {dead, f->addr};
  rpc_channel_options copts = {.endpoints = eps, .nendpoints = 2, .retry_initial_backoff_ms = 10};
  rpc_channel *ch = rpc_channel_create(&copts, &err);
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.message = "failover";
  ProtobufCMessage *resp = NULL;
  rpc_status st;
  rpc_call_options opts = {.timeout_ms = 5000, .idempotent = true};
  assert_int_equal(rpc_unary(ch, "/keel.echo.v1.Echo/Echo", &req.base,
                             &keel__echo__v1__echo_response__descriptor, &resp, &opts, &st), 0);
  assert_string_equal(((Keel__Echo__V1__EchoResponse *)resp)->message, "failover");
  assert_string_equal(rpc_channel_current_endpoint(ch), f->addr);
  protobuf_c_message_free_unpacked(resp, NULL);
  rpc_status_clear(&st);
  rpc_channel_destroy(ch);

  /* Only dead endpoints: a non-idempotent call fails once, UNAVAILABLE. */
  const char *dead_only[] = {dead};
  rpc_channel_options dopts = {.endpoints = dead_only, .nendpoints = 1};
  ch = rpc_channel_create(&dopts, &err);
  rpc_call_options once = {.timeout_ms = 5000};
  assert_int_equal(rpc_unary(ch, "/keel.echo.v1.Echo/Echo", &req.base,
                             &keel__echo__v1__echo_response__descriptor, &resp, &once, &st), -1);
  assert_int_equal(st.code, GRPC_STATUS_UNAVAILABLE);
  rpc_status_clear(&st);
  rpc_channel_destroy(ch);
}

typedef struct async_result {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done;
  int ok;
} async_result;

static void on_async_done(void *arg, const rpc_status *st, ProtobufCMessage *resp) {
  async_result *r = arg;
  pthread_mutex_lock(&r->mu);
  r->done++;
  if (st->code == GRPC_STATUS_OK && resp &&
      strcmp(((Keel__Echo__V1__EchoResponse *)resp)->message, "async") == 0)
    r->ok++;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
}

static void test_async_unary_many_in_flight(void **state) {
  fixture *f = *state;
  async_result r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.message = "async";
  for (int i = 0; i < 500; i++)
    assert_int_equal(rpc_unary_async(f->ch, "/keel.echo.v1.Echo/Echo", &req.base,
                                     &keel__echo__v1__echo_response__descriptor, NULL,
                                     on_async_done, &r), 0);
  pthread_mutex_lock(&r.mu);
  while (r.done < 500) pthread_cond_wait(&r.cond, &r.mu);
  pthread_mutex_unlock(&r.mu);
  assert_int_equal(r.ok, 500);
}

static void test_shutdown_ends_open_streams(void **state) {
  fixture *f = *state;
  keel_error err = {0};
  enum { N = 20 };
  collector cs[N];
  rpc_stream *ss[N];
  for (int i = 0; i < N; i++) {
    collector_init(&cs[i]);
    Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
    req.count = 1000000;
    req.interval_ms = 100;
    ss[i] = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Expand", RPC_SERVER_STREAMING, &req.base,
                             &keel__echo__v1__echo_response__descriptor, NULL, &stream_cb, &cs[i],
                             &err);
    assert_non_null(ss[i]);
  }
  usleep(200000);
  rpc_server_shutdown(f->srv);
  for (int i = 0; i < N; i++) {
    collector_wait(&cs[i]);
    assert_int_equal(cs[i].code, GRPC_STATUS_UNAVAILABLE);
    rpc_stream_release(ss[i]);
  }
}

static void never_request(rpc_call *c, const ProtobufCMessage *m, void *ctx) {
  (void)c, (void)m, (void)ctx;
  fail_msg("a server that refused to start must not run handlers");
}
static void never_close(rpc_call *c, void *ctx) {
  (void)c, (void)ctx;
  fail_msg("a server that refused to start must not run handlers");
}

static void test_declared_kind_must_match_proto(void **state) {
  (void)state;
  keel_error err = {0};
  rpc_server *srv = rpc_server_create(NULL, &err);
  /* Echo declared server-streaming although echo.proto says unary. */
  rpc_method_handler handlers[5];
  memset(handlers, 0, sizeof(handlers));
  const char *names[] = {"Echo", "Expand", "Collect", "Chat", "Stats"};
  rpc_kind kinds[] = {RPC_SERVER_STREAMING, RPC_SERVER_STREAMING, RPC_CLIENT_STREAMING,
                      RPC_BIDI_STREAMING, RPC_UNARY};
  for (int i = 0; i < 5; i++) {
    handlers[i].name = names[i];
    handlers[i].kind = kinds[i];
    handlers[i].on_request = never_request;
    handlers[i].on_message = never_request;
    handlers[i].on_half_close = never_close;
  }
  assert_int_equal(rpc_server_add_service(srv, &keel__echo__v1__echo__descriptor, handlers, 5, NULL,
                                          &err), 0);
  rpc_server_add_descriptors(srv, keel_echo_descriptor_set, keel_echo_descriptor_set_len, &err);
  assert_true(rpc_server_start(srv, &err) < 0);
  assert_non_null(strstr(err.message, "/keel.echo.v1.Echo/Echo"));
  assert_non_null(strstr(err.message, "unary"));
  rpc_server_destroy(srv);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_unary_roundtrip_with_metadata, setup, teardown),
      cmocka_unit_test_setup_teardown(test_error_status_passthrough, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deadline_exceeded_reaches_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unknown_method_unimplemented, setup, teardown),
      cmocka_unit_test_setup_teardown(test_oversize_request_resource_exhausted, setup, teardown),
      cmocka_unit_test_setup_teardown(test_server_streaming_flow_control, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_streaming_collect, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bidi_chat_and_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_client_cancel_reaches_handler, setup, teardown),
      cmocka_unit_test_setup_teardown(test_slow_receiver_is_closed, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failover_and_retry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_async_unary_many_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shutdown_ends_open_streams, setup, teardown),
      cmocka_unit_test(test_declared_kind_must_match_proto),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
