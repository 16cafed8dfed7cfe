/* Tests of rpc_call_send_prefixed and rpc_shared_message_wrap over real gRPC:
 * one shared encoding sent on many server streams, each message a per-stream
 * prefix plus ranges of the shared bytes; the bytes are freed only after the
 * last send that used them is done (a client that stops reading keeps them
 * alive), the receiver decodes exactly the message it would have got from
 * rpc_call_send, and the error and flow-control paths behave like
 * rpc_call_send's. The server runs the echo service's descriptor with this
 * file's own handlers, so the test drives every send itself. */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/rpc/rpc.h"
#include "keel/echo/v1/echo.pb-c.h"

extern const unsigned char keel_echo_descriptor_set[];
extern const unsigned long keel_echo_descriptor_set_len;

#define MAX_MESSAGE (1024 * 1024)
#define QUEUE_MESSAGES 8
#define NSTREAMS 16

/* ------------------------------------------------------------------ server */

typedef struct fixture {
  rpc_server *srv;
  rpc_channel *ch;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  rpc_call *calls[NSTREAMS];
  int ncalls;
  atomic_int writable;
} fixture;

static fixture *g_fx; /* the handlers' view of the fixture */

static void on_writable(rpc_call *call, void *arg) {
  (void)call;
  fixture *f = arg;
  atomic_fetch_add(&f->writable, 1);
}

/* Expand: the call is kept for the test, which sends on it, at the slot the
 * request's count names (the client's stream index). "reject" in its message
 * selects RPC_SLOW_REJECT. */
static void expand_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  fixture *f = ctx;
  const Keel__Echo__V1__ExpandRequest *req = (const Keel__Echo__V1__ExpandRequest *)m;
  if (req->message && strcmp(req->message, "reject") == 0) {
    rpc_call_set_slow_policy(call, RPC_SLOW_REJECT);
    rpc_call_on_writable(call, on_writable, f);
  }
  if (req->count >= NSTREAMS) {
    rpc_call_finish(call, GRPC_STATUS_INVALID_ARGUMENT, "bad index");
    return;
  }
  rpc_call_ref(call);
  pthread_mutex_lock(&f->mu);
  f->calls[req->count] = call;
  f->ncalls++;
  pthread_cond_broadcast(&f->cond);
  pthread_mutex_unlock(&f->mu);
}

static void unary_reply(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m, (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, "not in this test");
}

static void stream_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)call, (void)m, (void)ctx;
}

static void stream_half_close(rpc_call *call, void *ctx) {
  (void)ctx;
  rpc_call_finish(call, GRPC_STATUS_UNIMPLEMENTED, "not in this test");
}

static int setup(void **state) {
  fixture *f = calloc(1, sizeof(*f));
  pthread_mutex_init(&f->mu, NULL);
  pthread_cond_init(&f->cond, NULL);
  keel_error err = {0};
  rpc_server_options so = {.name = "shared-send-test", .max_message_bytes = MAX_MESSAGE,
                           .stream_queue_messages = QUEUE_MESSAGES, .shutdown_grace_ms = 500};
  f->srv = rpc_server_create(&so, &err);
  assert_non_null(f->srv);
  static const rpc_method_handler handlers[] = {
      {.name = "Echo", .kind = RPC_UNARY, .on_request = unary_reply},
      {.name = "Expand", .kind = RPC_SERVER_STREAMING, .on_request = expand_on_request},
      {.name = "Collect", .kind = RPC_CLIENT_STREAMING, .on_message = stream_message,
       .on_half_close = stream_half_close},
      {.name = "Chat", .kind = RPC_BIDI_STREAMING, .on_message = stream_message,
       .on_half_close = stream_half_close},
      {.name = "Stats", .kind = RPC_UNARY, .on_request = unary_reply},
  };
  assert_int_equal(rpc_server_add_service(f->srv, &keel__echo__v1__echo__descriptor, handlers, 5,
                                          f, &err), 0);
  assert_int_equal(rpc_server_add_descriptors(f->srv, keel_echo_descriptor_set,
                                              keel_echo_descriptor_set_len, &err), 0);
  int port = rpc_server_add_listener(f->srv, "127.0.0.1:0", NULL, &err);
  assert_true(port > 0);
  char addr[64];
  snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
  if (rpc_server_start(f->srv, &err) != 0) fail_msg("start: %s", err.message);
  const char *eps[] = {addr};
  rpc_channel_options co = {.endpoints = eps, .nendpoints = 1};
  f->ch = rpc_channel_create(&co, &err);
  assert_non_null(f->ch);
  g_fx = f;
  *state = f;
  return 0;
}

/* Holds every reader that has one in its first message (see reader.gate). */
static atomic_bool g_gate;

static int teardown(void **state) {
  fixture *f = *state;
  atomic_store(&g_gate, true); /* a failed test may have left it closed */
  for (int i = 0; i < NSTREAMS; i++)
    if (f->calls[i]) rpc_call_unref(f->calls[i]);
  rpc_channel_destroy(f->ch);
  rpc_server_shutdown(f->srv);
  rpc_server_destroy(f->srv);
  pthread_mutex_destroy(&f->mu);
  pthread_cond_destroy(&f->cond);
  free(f);
  g_fx = NULL;
  return 0;
}

static void wait_calls(fixture *f, int n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += 10;
  pthread_mutex_lock(&f->mu);
  while (f->ncalls < n)
    if (pthread_cond_timedwait(&f->cond, &f->mu, &ts) != 0) break;
  int got = f->ncalls;
  pthread_mutex_unlock(&f->mu);
  assert_int_equal(got, n);
}

/* ------------------------------------------------------------------ shared bytes */

static atomic_int g_destroyed;

static void counting_free(void *p) {
  free(p);
  atomic_fetch_add(&g_destroyed, 1);
}

static void fill_pattern(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)(i * 131 + seed);
}

/* An EchoResponse {message, payload} encoded into malloc'ed bytes, wrapped;
 * *message_at / *payload_at get each field's range in it. */
static rpc_shared_message *shared_response(const char *message, size_t payload_len, unsigned seed,
                                           rpc_shared_range *message_at,
                                           rpc_shared_range *payload_at) {
  Keel__Echo__V1__EchoResponse r = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
  r.message = (char *)message;
  uint8_t *payload = malloc(payload_len);
  fill_pattern(payload, payload_len, seed);
  r.payload.data = payload;
  r.payload.len = payload_len;
  size_t n = keel__echo__v1__echo_response__get_packed_size(&r);
  uint8_t *buf = malloc(n);
  assert_int_equal(keel__echo__v1__echo_response__pack(&r, buf), n);
  free(payload);
  rpc_shared_message *m = rpc_shared_message_wrap(buf, n, counting_free);
  assert_non_null(m);
  /* field 1 (message) comes first: tag, one-byte length, bytes. */
  size_t mlen = 2 + strlen(message);
  *message_at = (rpc_shared_range){m, 0, mlen};
  *payload_at = (rpc_shared_range){m, mlen, n - mlen};
  return m;
}

/* The per-stream part: sequence (3) and echo_metadata (4). */
static size_t stream_prefix(uint8_t *out, uint64_t sequence, const char *md) {
  size_t n = 0;
  out[n++] = 0x18;
  do {
    uint8_t b = sequence & 0x7f;
    sequence >>= 7;
    out[n++] = sequence ? (uint8_t)(b | 0x80) : b;
  } while (sequence);
  out[n++] = 0x22;
  out[n++] = (uint8_t)strlen(md);
  memcpy(out + n, md, strlen(md));
  return n + strlen(md);
}

/* ------------------------------------------------------------------ client */

typedef struct reader {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int index;
  size_t payload_len;
  unsigned seed;
  int messages, bad;
  bool closed;
  grpc_status_code code;
  /* The first message blocks the channel's only callback thread until
   * released: nothing more is read on any stream meanwhile. */
  atomic_bool *gate;
  atomic_bool in_first;
  /* The first message pauses the stream's reads (rpc_stream_pause_reads). */
  bool pause_first;
} reader;

static void on_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  reader *r = arg;
  if (r->pause_first && r->messages == 0) rpc_stream_pause_reads(s);
  if (r->gate) {
    atomic_store(&r->in_first, true);
    while (!atomic_load(r->gate)) usleep(1000);
  }
  const Keel__Echo__V1__EchoResponse *e = (const Keel__Echo__V1__EchoResponse *)m;
  pthread_mutex_lock(&r->mu);
  int k = r->messages++;
  char md[32];
  snprintf(md, sizeof(md), "stream-%d", r->index);
  bool ok = e->sequence == (uint64_t)(r->index * 10 + k) && strcmp(e->echo_metadata, md) == 0;
  if (k % 3 == 1) {
    /* The prefix alone. */
    ok = ok && e->message[0] == 0 && e->payload.len == 0;
  } else {
    ok = ok && strcmp(e->message, "shared") == 0 && e->payload.len == r->payload_len;
    if (ok) {
      uint8_t *want = malloc(r->payload_len);
      fill_pattern(want, r->payload_len, r->seed);
      ok = memcmp(want, e->payload.data, r->payload_len) == 0;
      free(want);
    }
  }
  if (!ok) r->bad++;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
}

static void on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  reader *r = arg;
  pthread_mutex_lock(&r->mu);
  r->closed = true;
  r->code = st->code;
  pthread_cond_broadcast(&r->cond);
  pthread_mutex_unlock(&r->mu);
}

static const rpc_stream_callbacks reader_cb = {.on_message = on_message, .on_close = on_close};

static rpc_stream *open_reader(fixture *f, reader *r, const char *mode) {
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cond, NULL);
  Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
  req.message = (char *)mode;
  req.count = (uint64_t)r->index;
  keel_error err = {0};
  rpc_stream *s = rpc_stream_start(f->ch, "/keel.echo.v1.Echo/Expand", RPC_SERVER_STREAMING,
                                   &req.base, &keel__echo__v1__echo_response__descriptor, NULL,
                                   &reader_cb, r, &err);
  if (!s) fail_msg("stream: %s", err.message);
  return s;
}

static bool wait_messages(reader *r, int n, int timeout_s) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += timeout_s;
  pthread_mutex_lock(&r->mu);
  while (r->messages < n && !r->closed)
    if (pthread_cond_timedwait(&r->cond, &r->mu, &ts) != 0) break;
  bool ok = r->messages >= n;
  pthread_mutex_unlock(&r->mu);
  return ok;
}

static void wait_destroyed(int n) {
  for (int i = 0; i < 1000 && atomic_load(&g_destroyed) < n; i++) usleep(5000);
  assert_int_equal(atomic_load(&g_destroyed), n);
}

/* ------------------------------------------------------------------ tests */

/* 16 streams share one 600 KiB encoding; each gets three messages: prefix +
 * the whole encoding, the prefix alone, and prefix + the encoding's two fields
 * in the other order. The client stops reading first, so the sends are still
 * queued when the owner frees the shared message: its bytes must stay alive
 * until the last of them is done, and then go exactly once. */
static void test_shared_on_many_streams(void **state) {
  fixture *f = *state;
  atomic_store(&g_destroyed, 0);
  /* On the heap: a failed assertion leaves the streams running. */
  atomic_bool *gate = &g_gate;
  atomic_store(gate, false);
  reader *rs = calloc(NSTREAMS, sizeof(*rs));
  rpc_stream *ss[NSTREAMS];
  size_t payload_len = 600 * 1024;
  for (int i = 0; i < NSTREAMS; i++) {
    rs[i].index = i;
    rs[i].payload_len = payload_len;
    rs[i].seed = 7;
    rs[i].gate = gate;
    ss[i] = open_reader(f, &rs[i], "");
  }
  wait_calls(f, NSTREAMS);
  rpc_shared_range msg_at, payload_at;
  rpc_shared_message *m = shared_response("shared", payload_len, 7, &msg_at, &payload_at);
  size_t whole_len = rpc_shared_message_size(m);
  for (int k = 0; k < 3; k++) {
    for (int c = 0; c < NSTREAMS; c++) {
      rpc_call *call = f->calls[c];
      int idx = c;
      uint8_t prefix[64];
      char md[32];
      snprintf(md, sizeof(md), "stream-%d", idx);
      size_t plen = stream_prefix(prefix, (uint64_t)(idx * 10 + k), md);
      int rc;
      if (k == 0) {
        rpc_shared_range whole = {m, 0, whole_len};
        rc = rpc_call_send_prefixed(call, prefix, plen, &whole, 1);
      } else if (k == 1) {
        rc = rpc_call_send_prefixed(call, prefix, plen, NULL, 0);
      } else {
        rpc_shared_range parts[2] = {payload_at, msg_at};
        rc = rpc_call_send_prefixed(call, prefix, plen, parts, 2);
      }
      assert_int_equal(rc, 0);
    }
  }
  /* Wait until the client is stuck in its first message. */
  for (int i = 0; i < 1000; i++) {
    bool any = false;
    for (int s = 0; s < NSTREAMS; s++) any |= atomic_load(&rs[s].in_first);
    if (any) break;
    usleep(1000);
  }
  /* The owner is done; the sends are not. The client's transport may still
   * take what its flow-control windows allow, but while any send is queued
   * the bytes must live. */
  rpc_shared_message_free(m);
  int destroyed = atomic_load(&g_destroyed);
  int queued = 0;
  for (int c = 0; c < NSTREAMS; c++) queued += rpc_call_queued(f->calls[c]);
  assert_false(destroyed && queued > 0);
  atomic_store(gate, true);
  for (int s = 0; s < NSTREAMS; s++) assert_true(wait_messages(&rs[s], 3, 20));
  wait_destroyed(1);
  for (int c = 0; c < NSTREAMS; c++) rpc_call_finish(f->calls[c], GRPC_STATUS_OK, NULL);
  for (int s = 0; s < NSTREAMS; s++) {
    pthread_mutex_lock(&rs[s].mu);
    while (!rs[s].closed) pthread_cond_wait(&rs[s].cond, &rs[s].mu);
    pthread_mutex_unlock(&rs[s].mu);
    assert_int_equal(rs[s].code, GRPC_STATUS_OK);
    rpc_stream_release(ss[s]);
  }
  int bad = 0;
  for (int s = 0; s < NSTREAMS; s++) bad += rs[s].bad;
  free(rs);
  assert_int_equal(bad, 0);
}

/* Ranges outside their message and messages above the limit are refused and
 * leave nothing queued; a full queue under RPC_SLOW_REJECT refuses with
 * -ENOBUFS, the writable callback follows the drain, and everything accepted
 * arrives once, in order. The shared bytes go after the last send. */
static void test_errors_and_flow_control(void **state) {
  fixture *f = *state;
  atomic_store(&g_destroyed, 0);
  /* On the heap: a failed assertion leaves the stream running. */
  atomic_bool *gate = &g_gate;
  atomic_store(gate, false);
  reader *r = calloc(1, sizeof(*r));
  r->index = 0;
  r->payload_len = 100 * 1024;
  r->seed = 3;
  r->gate = gate;
  rpc_stream *s = open_reader(f, r, "reject");
  wait_calls(f, 1);
  rpc_call *call = f->calls[0];
  rpc_shared_range msg_at, payload_at;
  rpc_shared_message *m = shared_response("shared", r->payload_len, 3, &msg_at, &payload_at);
  size_t whole_len = rpc_shared_message_size(m);
  uint8_t prefix[64];
  size_t plen = stream_prefix(prefix, 0, "stream-0");

  rpc_shared_range bad = {m, whole_len - 1, 2};
  assert_int_equal(rpc_call_send_prefixed(call, prefix, plen, &bad, 1), -ERANGE);
  bad = (rpc_shared_range){m, whole_len + 1, 0};
  assert_int_equal(rpc_call_send_prefixed(call, prefix, plen, &bad, 1), -ERANGE);
  rpc_shared_range big[11];
  for (int i = 0; i < 11; i++) big[i] = (rpc_shared_range){m, 0, whole_len}; /* > 1 MiB */
  assert_int_equal(rpc_call_send_prefixed(call, prefix, plen, big, 11), -EINVAL);
  assert_int_equal(rpc_call_queued(call), 0);

  /* The first message stops the client reading; then fill: whatever the
   * transport still takes, plus QUEUE_MESSAGES queued, then -ENOBUFS. */
  int sent = 0, rc = 0;
  for (; sent < 1000; sent++) {
    if (sent == 1)
      for (int i = 0; i < 1000 && !atomic_load(&r->in_first); i++) usleep(1000);
    plen = stream_prefix(prefix, (uint64_t)sent, "stream-0");
    if (sent % 3 == 1) {
      rc = rpc_call_send_prefixed(call, prefix, plen, NULL, 0);
    } else {
      rpc_shared_range whole = {m, 0, whole_len};
      rc = rpc_call_send_prefixed(call, prefix, plen, &whole, 1);
    }
    if (rc != 0) break;
  }
  assert_int_equal(rc, -ENOBUFS);
  assert_true(sent >= QUEUE_MESSAGES && sent < 1000);
  assert_int_equal(rpc_call_queued(call), QUEUE_MESSAGES);
  /* The transport may still drain what the client's flow-control window
   * takes, but while anything is queued the bytes must live. */
  rpc_shared_message_free(m);
  int destroyed = atomic_load(&g_destroyed);
  int queued = rpc_call_queued(call);
  assert_false(destroyed && queued > 0);
  atomic_store(gate, true);
  for (int i = 0; i < 1000 && atomic_load(&f->writable) == 0; i++) usleep(5000);
  assert_int_equal(atomic_load(&f->writable), 1);
  assert_true(wait_messages(r, sent, 20));
  wait_destroyed(1);
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
  pthread_mutex_lock(&r->mu);
  while (!r->closed) pthread_cond_wait(&r->cond, &r->mu);
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(r->code, GRPC_STATUS_OK);
  assert_int_equal(r->messages, sent); /* the refused one never went */
  assert_int_equal(r->bad, 0);
  rpc_stream_release(s);
  free(r);
}

/* Sends the test's message sequence on call until it is refused; returns how
 * many were accepted. */
static int send_until_full(rpc_call *call, rpc_shared_message *m, int *rc) {
  int sent = 0;
  size_t whole_len = rpc_shared_message_size(m);
  uint8_t prefix[64];
  for (; sent < 1000; sent++) {
    size_t plen = stream_prefix(prefix, (uint64_t)sent, "stream-0");
    rpc_shared_range whole = {m, 0, whole_len};
    *rc = sent % 3 == 1 ? rpc_call_send_prefixed(call, prefix, plen, NULL, 0)
                        : rpc_call_send_prefixed(call, prefix, plen, &whole, 1);
    if (*rc != 0) break;
  }
  return sent;
}

/* rpc_stream_pause_reads: after the first message the client reads nothing
 * more, so the server's queue fills (-ENOBUFS) while on_message stays at 1;
 * resume reads on and every accepted message arrives once, in order. A
 * stream canceled while paused still reports on_close. */
static void test_pause_reads(void **state) {
  fixture *f = *state;
  atomic_store(&g_destroyed, 0);
  atomic_store(&f->writable, 0);
  reader *r = calloc(1, sizeof(*r));
  r->payload_len = 100 * 1024;
  r->seed = 5;
  r->pause_first = true;
  rpc_stream *s = open_reader(f, r, "reject");
  wait_calls(f, 1);
  rpc_call *call = f->calls[0];
  rpc_shared_range msg_at, payload_at;
  rpc_shared_message *m = shared_response("shared", r->payload_len, 5, &msg_at, &payload_at);
  int rc = 0;
  int sent = send_until_full(call, m, &rc);
  assert_int_equal(rc, -ENOBUFS);
  assert_true(sent >= QUEUE_MESSAGES && sent < 1000);
  assert_true(wait_messages(r, 1, 10));
  usleep(200 * 1000); /* paused: nothing more is delivered however long we wait */
  pthread_mutex_lock(&r->mu);
  assert_int_equal(r->messages, 1);
  pthread_mutex_unlock(&r->mu);
  /* (The transport may have taken a few queued messages into the client's
   * flow-control window meanwhile, so the writable callback may have run.) */
  rpc_stream_resume_reads(s);
  assert_true(wait_messages(r, sent, 20));
  for (int i = 0; i < 1000 && atomic_load(&f->writable) == 0; i++) usleep(5000);
  assert_int_equal(atomic_load(&f->writable), 1);
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
  pthread_mutex_lock(&r->mu);
  while (!r->closed) pthread_cond_wait(&r->cond, &r->mu);
  pthread_mutex_unlock(&r->mu);
  assert_int_equal(r->code, GRPC_STATUS_OK);
  assert_int_equal(r->messages, sent);
  assert_int_equal(r->bad, 0);
  rpc_stream_release(s);
  free(r);

  /* Paused, then canceled: on_close runs (CANCELLED), nothing hangs. */
  reader *r2 = calloc(1, sizeof(*r2));
  r2->index = 1;
  r2->payload_len = 100 * 1024;
  r2->seed = 5;
  r2->pause_first = true;
  rpc_stream *s2 = open_reader(f, r2, "reject");
  wait_calls(f, 2);
  rpc_call *call2 = f->calls[1];
  uint8_t prefix[64];
  for (int i = 0; i < 3; i++) {
    size_t plen = stream_prefix(prefix, (uint64_t)(10 + i), "stream-1");
    rpc_shared_range whole = {m, 0, rpc_shared_message_size(m)};
    assert_int_equal(rpc_call_send_prefixed(call2, prefix, plen, &whole, 1), 0);
  }
  assert_true(wait_messages(r2, 1, 10));
  rpc_stream_cancel(s2);
  pthread_mutex_lock(&r2->mu);
  while (!r2->closed) pthread_cond_wait(&r2->cond, &r2->mu);
  pthread_mutex_unlock(&r2->mu);
  assert_int_equal(r2->code, GRPC_STATUS_CANCELLED);
  rpc_stream_release(s2);
  free(r2);
  rpc_shared_message_free(m);
  wait_destroyed(1);
}

/* The same bytes through rpc_call_send and through prefix + shared ranges
 * decode to equal messages (the receiver cannot tell them apart). */
static void test_same_as_send(void **state) {
  fixture *f = *state;
  atomic_store(&g_destroyed, 0);
  reader *r = calloc(1, sizeof(*r));
  r->payload_len = 5; /* below gRPC's inlining size: ranges are copied, not referenced */
  r->seed = 9;
  rpc_stream *s = open_reader(f, r, "");
  wait_calls(f, 1);
  rpc_call *call = f->calls[0];
  rpc_shared_range msg_at, payload_at;
  rpc_shared_message *m = shared_response("shared", r->payload_len, 9, &msg_at, &payload_at);
  Keel__Echo__V1__EchoResponse e = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
  uint8_t payload[5];
  fill_pattern(payload, 5, 9);
  e.message = "shared";
  e.payload.data = payload;
  e.payload.len = 5;
  e.sequence = 0;
  e.echo_metadata = "stream-0";
  assert_int_equal(rpc_call_send(call, &e.base), 0);
  uint8_t prefix[64];
  size_t plen = stream_prefix(prefix, 1, "stream-0");
  assert_int_equal(rpc_call_send_prefixed(call, prefix, plen, NULL, 0), 0);
  plen = stream_prefix(prefix, 2, "stream-0");
  rpc_shared_range parts[2] = {msg_at, payload_at};
  assert_int_equal(rpc_call_send_prefixed(call, prefix, plen, parts, 2), 0);
  rpc_shared_message_free(m);
  assert_true(wait_messages(r, 3, 10));
  wait_destroyed(1);
  assert_int_equal(r->bad, 0);
  rpc_call_finish(call, GRPC_STATUS_OK, NULL);
  pthread_mutex_lock(&r->mu);
  while (!r->closed) pthread_cond_wait(&r->cond, &r->mu);
  pthread_mutex_unlock(&r->mu);
  rpc_stream_release(s);
  free(r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_shared_on_many_streams, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errors_and_flow_control, setup, teardown),
      cmocka_unit_test_setup_teardown(test_same_as_send, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pause_reads, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
