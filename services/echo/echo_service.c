/* services/echo/echo_service.c — see echo_service.h. */
#include "services/echo/echo_service.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "keel/echo/v1/echo.pb-c.h"

/* Collect keeps at most this much of the joined messages (memory stays bounded). */
#define JOINED_MAX (64 * 1024)

struct echo_service {
  sched *timers;
  atomic_ullong cancelled_calls;
  atomic_ullong deadline_exceeded_calls;
  atomic_ullong completed_calls;
  atomic_llong active_streams;
};

echo_service *echo_service_create(sched *timers) {
  echo_service *svc = calloc(1, sizeof(*svc));
  if (svc) svc->timers = timers;
  return svc;
}

void echo_service_destroy(echo_service *svc) { free(svc); }

static void count_cancel(echo_service *svc, rpc_call *call) {
  atomic_fetch_add(&svc->cancelled_calls, 1);
  if (rpc_call_deadline_passed(call)) atomic_fetch_add(&svc->deadline_exceeded_calls, 1);
}

/* Request metadata "x-echo" comes back in initial and trailing metadata. */
static const char *echo_metadata(rpc_call *call, char **copy) {
  size_t len = 0;
  const char *v = rpc_call_metadata(call, "x-echo", &len);
  *copy = NULL;
  if (!v) return NULL;
  rpc_call_add_initial_metadata(call, "x-echo-initial", v, len);
  rpc_call_add_trailing_metadata(call, "x-echo-trailing", v, len);
  *copy = strndup(v, len);
  return *copy;
}

/* ------------------------------------------------------------ Echo (unary) */

typedef struct pending_echo {
  echo_service *svc;
  rpc_call *call;
  sched_timer_id timer;
  char *message;
  ProtobufCBinaryData payload;
  uint32_t status_code;
  char *status_message;
  char *echo_md;
} pending_echo;

static void pending_echo_free(void *p) {
  pending_echo *pe = p;
  free(pe->message);
  free(pe->payload.data);
  free(pe->status_message);
  free(pe->echo_md);
  free(pe);
}

static void echo_respond(echo_service *svc, rpc_call *call, const char *message,
                         ProtobufCBinaryData payload, uint32_t status_code,
                         const char *status_message, const char *echo_md) {
  int rc;
  if (status_code != 0) {
    rc = rpc_call_finish(call, (grpc_status_code)status_code, "%s", status_message ? status_message : "");
  } else {
    Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
    resp.message = (char *)(message ? message : "");
    resp.payload = payload;
    resp.echo_metadata = (char *)(echo_md ? echo_md : "");
    rc = rpc_call_reply(call, &resp.base);
  }
  if (rc == 0) atomic_fetch_add(&svc->completed_calls, 1);
}

static void pending_echo_fire(void *arg) {
  pending_echo *pe = arg;
  echo_respond(pe->svc, pe->call, pe->message, pe->payload, pe->status_code, pe->status_message,
               pe->echo_md);
  rpc_call_unref(pe->call);
}

static void pending_echo_drop(void *arg) {
  pending_echo *pe = arg;
  rpc_call_unref(pe->call);
}

static void pending_echo_cancelled(rpc_call *call, void *arg) {
  pending_echo *pe = arg;
  count_cancel(pe->svc, call);
  /* If the timer has not started, it never will; otherwise its reply simply fails. */
  sched_cancel(pe->svc->timers, pe->timer);
}

static void echo_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  echo_service *svc = ctx;
  const Keel__Echo__V1__EchoRequest *req = (const Keel__Echo__V1__EchoRequest *)m;
  char *md_copy;
  const char *md = echo_metadata(call, &md_copy);
  if (req->delay_ms == 0) {
    echo_respond(svc, call, req->message, req->payload, req->status_code, req->status_message, md);
    free(md_copy);
    return;
  }
  pending_echo *pe = calloc(1, sizeof(*pe));
  if (!pe) {
    free(md_copy);
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "echo: out of memory");
    return;
  }
  pe->svc = svc;
  pe->call = call;
  pe->message = strdup(req->message ? req->message : "");
  if (req->payload.len) {
    pe->payload.data = malloc(req->payload.len);
    memcpy(pe->payload.data, req->payload.data, req->payload.len);
    pe->payload.len = req->payload.len;
  }
  pe->status_code = req->status_code;
  pe->status_message = strdup(req->status_message ? req->status_message : "");
  pe->echo_md = md_copy;
  /* The call owns the pending state, so the cancel callback and the timer can
   * both reach it for as long as either holds the call. */
  rpc_call_set_user_data(call, pe, pending_echo_free);
  rpc_call_ref(call); /* the timer's */
  pe->timer = sched_after(svc->timers, req->delay_ms, pending_echo_fire, pending_echo_drop, pe);
  if (pe->timer == 0) {
    rpc_call_unref(call);
    rpc_call_finish(call, GRPC_STATUS_UNAVAILABLE, "echo: shutting down");
    return;
  }
  rpc_call_on_cancel(call, pending_echo_cancelled, pe);
}

/* ------------------------------------------------------------ Expand (server streaming) */

typedef struct expand_state {
  echo_service *svc;
  rpc_call *call;
  uint64_t count, sent;
  char *message;
  ProtobufCBinaryData payload;
  uint32_t interval_ms;
  _Atomic sched_timer_id timer; /* written by the tick, read by the cancel callback */
  atomic_bool stopped;
} expand_state;

static void expand_free(void *p) {
  expand_state *st = p;
  atomic_fetch_sub(&st->svc->active_streams, 1);
  free(st->message);
  free(st->payload.data);
  free(st);
}

/* Sends until done or the queue is full; the writable callback resumes it. */
static void expand_pump(rpc_call *call, void *arg) {
  expand_state *st = arg;
  while (!atomic_load(&st->stopped) && st->sent < st->count) {
    Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
    resp.message = st->message;
    resp.payload = st->payload;
    resp.sequence = st->sent;
    int rc = rpc_call_send(call, &resp.base);
    if (rc == -ENOBUFS) return;
    if (rc < 0) return;
    st->sent++;
  }
  if (!atomic_load(&st->stopped) && rpc_call_finish(call, GRPC_STATUS_OK, NULL) == 0)
    atomic_fetch_add(&st->svc->completed_calls, 1);
}

static void expand_tick(void *arg);

static void expand_tick_drop(void *arg) {
  expand_state *st = arg;
  rpc_call_unref(st->call);
}

static void expand_tick(void *arg) {
  expand_state *st = arg;
  rpc_call *call = st->call;
  if (!atomic_load(&st->stopped) && st->sent < st->count) {
    Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
    resp.message = st->message;
    resp.payload = st->payload;
    resp.sequence = st->sent;
    if (rpc_call_send(call, &resp.base) == 0) st->sent++;
    else atomic_store(&st->stopped, true);
  }
  if (!atomic_load(&st->stopped) && st->sent < st->count) {
    st->timer = sched_after(st->svc->timers, st->interval_ms, expand_tick, expand_tick_drop, st);
    if (st->timer != 0) return; /* the next tick keeps the reference */
  } else if (!atomic_load(&st->stopped) &&
             rpc_call_finish(call, GRPC_STATUS_OK, NULL) == 0) {
    atomic_fetch_add(&st->svc->completed_calls, 1);
  }
  rpc_call_unref(call);
}

static void expand_cancelled(rpc_call *call, void *arg) {
  expand_state *st = arg;
  atomic_store(&st->stopped, true);
  count_cancel(st->svc, call);
  if (st->interval_ms) sched_cancel(st->svc->timers, st->timer);
}

static void expand_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  echo_service *svc = ctx;
  const Keel__Echo__V1__ExpandRequest *req = (const Keel__Echo__V1__ExpandRequest *)m;
  expand_state *st = calloc(1, sizeof(*st));
  if (!st) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "expand: out of memory");
    return;
  }
  st->svc = svc;
  st->call = call;
  st->count = req->count;
  st->message = strdup(req->message ? req->message : "");
  if (req->payload.len) {
    st->payload.data = malloc(req->payload.len);
    memcpy(st->payload.data, req->payload.data, req->payload.len);
    st->payload.len = req->payload.len;
  }
  st->interval_ms = req->interval_ms;
  atomic_fetch_add(&svc->active_streams, 1);
  rpc_call_set_user_data(call, st, expand_free);
  rpc_call_on_cancel(call, expand_cancelled, st);
  if (st->interval_ms == 0) {
    /* Flow-controlled: fill the queue, resume when it drains. */
    rpc_call_set_slow_policy(call, RPC_SLOW_REJECT);
    rpc_call_on_writable(call, expand_pump, st);
    expand_pump(call, st);
    return;
  }
  rpc_call_ref(call); /* the tick's */
  expand_tick(st);
}

/* ------------------------------------------------------------ Collect (client streaming) */

typedef struct collect_state {
  uint64_t count, bytes;
  char *joined;
  size_t joined_len;
} collect_state;

static void collect_free(void *p) {
  collect_state *st = p;
  free(st->joined);
  free(st);
}

static void collect_on_start(rpc_call *call, void *ctx) {
  (void)ctx;
  collect_state *st = calloc(1, sizeof(*st));
  rpc_call_set_user_data(call, st, collect_free);
}

static void collect_on_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)ctx;
  collect_state *st = rpc_call_user_data(call);
  const Keel__Echo__V1__EchoRequest *req = (const Keel__Echo__V1__EchoRequest *)m;
  if (!st) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "collect: out of memory");
    return;
  }
  size_t mlen = req->message ? strlen(req->message) : 0;
  st->count++;
  st->bytes += mlen + req->payload.len;
  size_t need = st->joined_len + (st->count > 1 ? 1 : 0) + mlen;
  if (need <= JOINED_MAX) {
    char *j = realloc(st->joined, need + 1);
    if (!j) return;
    st->joined = j;
    if (st->count > 1) st->joined[st->joined_len++] = ',';
    memcpy(st->joined + st->joined_len, req->message ? req->message : "", mlen);
    st->joined_len += mlen;
    st->joined[st->joined_len] = '\0';
  }
}

static void collect_on_half_close(rpc_call *call, void *ctx) {
  echo_service *svc = ctx;
  collect_state *st = rpc_call_user_data(call);
  Keel__Echo__V1__CollectResponse resp = KEEL__ECHO__V1__COLLECT_RESPONSE__INIT;
  if (st) {
    resp.count = st->count;
    resp.bytes = st->bytes;
    resp.joined = st->joined ? st->joined : "";
  }
  if (rpc_call_reply(call, &resp.base) == 0) atomic_fetch_add(&svc->completed_calls, 1);
}

/* ------------------------------------------------------------ Chat (bidi) */

typedef struct chat_state {
  echo_service *svc;
  uint64_t sequence;
} chat_state;

static void chat_free(void *p) {
  chat_state *st = p;
  atomic_fetch_sub(&st->svc->active_streams, 1);
  free(st);
}

static void chat_cancelled(rpc_call *call, void *arg) {
  chat_state *st = arg;
  count_cancel(st->svc, call);
}

static void chat_on_start(rpc_call *call, void *ctx) {
  echo_service *svc = ctx;
  chat_state *st = calloc(1, sizeof(*st));
  if (!st) return;
  st->svc = svc;
  atomic_fetch_add(&svc->active_streams, 1);
  rpc_call_set_user_data(call, st, chat_free);
  rpc_call_on_cancel(call, chat_cancelled, st);
}

static void chat_on_message(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)ctx;
  chat_state *st = rpc_call_user_data(call);
  const Keel__Echo__V1__EchoRequest *req = (const Keel__Echo__V1__EchoRequest *)m;
  if (!st) {
    rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "chat: out of memory");
    return;
  }
  if (req->status_code != 0) {
    rpc_call_finish(call, (grpc_status_code)req->status_code, "%s",
                    req->status_message ? req->status_message : "");
    return;
  }
  Keel__Echo__V1__EchoResponse resp = KEEL__ECHO__V1__ECHO_RESPONSE__INIT;
  resp.message = req->message;
  resp.payload = req->payload;
  resp.sequence = st->sequence++;
  rpc_call_send(call, &resp.base); /* a slow reader is closed by the runtime */
}

static void chat_on_half_close(rpc_call *call, void *ctx) {
  echo_service *svc = ctx;
  if (rpc_call_finish(call, GRPC_STATUS_OK, NULL) == 0) atomic_fetch_add(&svc->completed_calls, 1);
}

/* ------------------------------------------------------------ Stats */

static void stats_on_request(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  echo_service *svc = ctx;
  Keel__Echo__V1__StatsResponse resp = KEEL__ECHO__V1__STATS_RESPONSE__INIT;
  resp.cancelled_calls = atomic_load(&svc->cancelled_calls);
  resp.deadline_exceeded_calls = atomic_load(&svc->deadline_exceeded_calls);
  resp.completed_calls = atomic_load(&svc->completed_calls);
  long long active = atomic_load(&svc->active_streams);
  resp.active_streams = active > 0 ? (uint64_t)active : 0;
  rpc_call_reply(call, &resp.base);
}

int echo_service_register(echo_service *svc, rpc_server *srv, keel_error *err) {
  static const rpc_method_handler handlers[] = {
      {.name = "Echo", .kind = RPC_UNARY, .on_request = echo_on_request},
      {.name = "Expand", .kind = RPC_SERVER_STREAMING, .on_request = expand_on_request},
      {.name = "Collect",
       .kind = RPC_CLIENT_STREAMING,
       .on_start = collect_on_start,
       .on_message = collect_on_message,
       .on_half_close = collect_on_half_close},
      {.name = "Chat",
       .kind = RPC_BIDI_STREAMING,
       .on_start = chat_on_start,
       .on_message = chat_on_message,
       .on_half_close = chat_on_half_close},
      {.name = "Stats", .kind = RPC_UNARY, .on_request = stats_on_request},
  };
  return rpc_server_add_service(srv, &keel__echo__v1__echo__descriptor, handlers,
                                sizeof(handlers) / sizeof(handlers[0]), svc, err);
}
