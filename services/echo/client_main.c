/* keel-echo-client: a small CLI over Keel's own client runtime (common/rpc),
 * talking to keel-echo. It is the seed of the `keel` CLI, so it keeps kubectl's
 * habits: one command per run, results on stdout in a shape scripts can read,
 * errors on stderr naming the server's status code and message, and exit codes
 * 0 ok / 1 the call failed (or the server says not SERVING) / 2 usage.
 *
 * Unary commands use rpc_unary. Streaming commands use rpc_stream_*: callbacks
 * run on the channel's completion-queue thread, and the main thread waits on a
 * condition variable until on_close (or, for chat, until each echo is back, so
 * the conversation really is ping-pong). Reflection answers are copied out of
 * the callback as packed bytes and decoded on the main thread. Everything is
 * freed before exit, so the binary runs clean under valgrind. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/base/cleanup.h"
#include "common/flags/flags.h"
#include "common/log/log.h"
#include "common/rpc/rpc.h"
#include "google/protobuf/descriptor.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"
#include "keel/echo/v1/echo.pb-c.h"

#define PROGRAM "keel-echo-client"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static const char SUMMARY[] =
    "Calls keel-echo through Keel's gRPC client runtime.\n"
    "\n"
    "Commands:\n"
    "  echo MESSAGE          unary Echo; prints the response message\n"
    "                        (--delay-ms, --status-code, --status-message)\n"
    "  expand MESSAGE COUNT  server streaming; prints \"SEQUENCE: MESSAGE\" per response\n"
    "                        (--interval-ms)\n"
    "  collect WORD...       client streaming; prints count, bytes and joined\n"
    "  chat WORD...          bidi streaming; sends each word, prints each echo\n"
    "  health [SERVICE]      grpc.health.v1 Check; prints the status, exit 1 unless SERVING\n"
    "  services              lists services, sorted (reflection v1alpha list_services)\n"
    "  describe SERVICE      prints a service's methods (reflection file_containing_symbol)\n"
    "  stats                 the server's call counters\n"
    "\n"
    "--server defaults to $KEEL_ECHO_SERVER. Exit status: 0 ok, 1 the call failed\n"
    "(the error on stderr names the status code), 2 usage.";

/* ------------------------------------------------------------ the session */

typedef struct cli {
  rpc_channel *ch;
  int64_t timeout_ms;
  const char *command;
  char *servers; /* as given, for error messages */
  size_t nendpoints;
} cli;

/* Server text goes to a terminal: control characters are shown, not obeyed. */
static void put_clean(FILE *f, const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p < 0x20 || *p == 0x7f) fprintf(f, "\\x%02x", *p);
    else fputc(*p, f);
  }
}

/* Prints "keel-echo-client: COMMAND: CODE: message" and returns EXIT_FAIL. */
static int report_status(const cli *c, grpc_status_code code, const char *message) {
  fprintf(stderr, PROGRAM ": %s: %s", c->command, rpc_status_code_name(code));
  if (message && *message) {
    fputs(": ", stderr);
    put_clean(stderr, message);
  }
  if (code == GRPC_STATUS_UNAVAILABLE)
    fprintf(stderr, " (server%s %s)", c->nendpoints > 1 ? "s" : "", c->servers);
  fputc('\n', stderr);
  return EXIT_FAIL;
}

static int report_local(const cli *c, const char *what) {
  fprintf(stderr, PROGRAM ": %s: %s\n", c->command, what);
  return EXIT_FAIL;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs(PROGRAM ": ", stderr);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs(" (see --help)\n", stderr);
  return EXIT_USAGE;
}

/* Read-only calls: the runtime retries them on UNAVAILABLE, on the next endpoint. */
static int call_unary(cli *c, const char *method, const ProtobufCMessage *request,
                      const ProtobufCMessageDescriptor *response_desc,
                      ProtobufCMessage **response) {
  rpc_call_options opts = {.timeout_ms = c->timeout_ms, .idempotent = true};
  rpc_status st;
  int rc = rpc_unary(c->ch, method, request, response_desc, response, &opts, &st);
  int exit_code = rc == 0 ? EXIT_OK : report_status(c, st.code, st.message);
  rpc_status_clear(&st);
  return exit_code;
}

/* ------------------------------------------------------------ streams */

/* One stream and the main thread waiting on it. on_message runs on the channel
 * thread with mu held; closed/code/message are set by on_close. */
typedef struct stream_wait {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  void (*on_message)(struct stream_wait *w, const ProtobufCMessage *m);
  void *ctx;
  uint64_t received;
  bool closed;
  grpc_status_code code;
  char *message;
} stream_wait;

static void stream_wait_init(stream_wait *w,
                             void (*on_message)(stream_wait *w, const ProtobufCMessage *m),
                             void *ctx) {
  memset(w, 0, sizeof(*w));
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cond, NULL);
  w->on_message = on_message;
  w->ctx = ctx;
}

static void stream_wait_reset(stream_wait *w) {
  free(w->message);
  w->message = NULL;
  w->received = 0;
  w->closed = false;
}

static void stream_wait_destroy(stream_wait *w) {
  free(w->message);
  pthread_cond_destroy(&w->cond);
  pthread_mutex_destroy(&w->mu);
}

static void cb_message(rpc_stream *s, const ProtobufCMessage *m, void *arg) {
  (void)s;
  stream_wait *w = arg;
  pthread_mutex_lock(&w->mu);
  if (w->on_message) w->on_message(w, m);
  w->received++;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

static void cb_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  stream_wait *w = arg;
  pthread_mutex_lock(&w->mu);
  w->code = st->code;
  w->message = st->message ? strdup(st->message) : NULL;
  w->closed = true;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

/* Waits until the stream closed or delivered more than `count` messages. */
static void stream_wait_for(stream_wait *w, uint64_t count) {
  pthread_mutex_lock(&w->mu);
  while (!w->closed && w->received <= count) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

static void stream_wait_closed(stream_wait *w) {
  pthread_mutex_lock(&w->mu);
  while (!w->closed) pthread_cond_wait(&w->cond, &w->mu);
  pthread_mutex_unlock(&w->mu);
}

/* Writes one message, waiting while the stream's send queue is full. The client
 * stream API has no writable callback (servers have rpc_call_on_writable), so a
 * full queue is polled every millisecond; the deadline bounds the wait, since a
 * closed stream fails the write with -EPIPE. Returns 0, or the write's error:
 * -EPIPE (closed: its status says why) or -EINVAL (too large, reported here). */
static int stream_write_all(cli *c, rpc_stream *s, const ProtobufCMessage *m) {
  for (;;) {
    int rc = rpc_stream_write(s, m);
    if (rc != -ENOBUFS) {
      if (rc == -EINVAL) {
        report_local(c, "a message exceeds the channel's size limit");
        rpc_stream_cancel(s);
      }
      return rc;
    }
    struct timespec ms = {.tv_sec = 0, .tv_nsec = 1000000};
    nanosleep(&ms, NULL);
  }
}

static rpc_stream *stream_open(cli *c, const char *method, rpc_kind kind,
                               const ProtobufCMessage *request,
                               const ProtobufCMessageDescriptor *response_desc, stream_wait *w) {
  static const rpc_stream_callbacks cbs = {.on_message = cb_message, .on_close = cb_close};
  rpc_call_options opts = {.timeout_ms = c->timeout_ms};
  keel_error err = {0};
  rpc_stream *s =
      rpc_stream_start(c->ch, method, kind, request, response_desc, &opts, &cbs, w, &err);
  if (!s) report_local(c, err.message);
  return s;
}

/* Runs a read-only stream to its end: the request (server streaming) or the
 * messages (client/bidi, then half-close). Streams are not retried by the
 * runtime; since these calls are read-only, an UNAVAILABLE before any answer is
 * retried here once per endpoint (the channel has moved to the next one). */
static int stream_run(cli *c, const char *method, rpc_kind kind, const ProtobufCMessage *request,
                      const ProtobufCMessage *const *messages, size_t nmessages,
                      const ProtobufCMessageDescriptor *response_desc, stream_wait *w) {
  for (size_t attempt = 0;; attempt++) {
    rpc_stream *s = stream_open(c, method, kind, request, response_desc, w);
    if (!s) return EXIT_FAIL;
    int wrc = 0;
    for (size_t i = 0; i < nmessages && wrc == 0; i++) wrc = stream_write_all(c, s, messages[i]);
    if (kind != RPC_SERVER_STREAMING) rpc_stream_close_send(s);
    stream_wait_closed(w);
    rpc_stream_release(s);
    if (wrc == -EINVAL) return EXIT_FAIL;
    if (w->code == GRPC_STATUS_OK) return EXIT_OK;
    if (w->code != GRPC_STATUS_UNAVAILABLE || w->received > 0 || attempt + 1 >= c->nendpoints)
      return report_status(c, w->code, w->message);
    stream_wait_reset(w);
  }
}

/* ------------------------------------------------------------ echo */

/* "NOT_FOUND", "not_found" or a number 0..16. */
static int parse_status_code(const char *text, grpc_status_code *out) {
  for (int i = 0; i <= GRPC_STATUS_UNAUTHENTICATED; i++) {
    char num[16];
    snprintf(num, sizeof(num), "%d", i);
    if (strcasecmp(text, rpc_status_code_name((grpc_status_code)i)) == 0 ||
        strcmp(text, num) == 0) {
      *out = (grpc_status_code)i;
      return 0;
    }
  }
  return -EINVAL;
}

typedef struct echo_flags {
  int64_t delay_ms;
  int64_t interval_ms;
  char *status_code;
  char *status_message;
} echo_flags;

static int cmd_echo(cli *c, char **args, const echo_flags *f) {
  Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
  req.message = args[0];
  req.delay_ms = (uint32_t)f->delay_ms;
  if (f->status_code) {
    grpc_status_code code;
    if (parse_status_code(f->status_code, &code) < 0)
      return usage_error("flag --status-code: \"%s\" is not a status code name or number",
                         f->status_code);
    req.status_code = (uint32_t)code;
    req.status_message = f->status_message ? f->status_message : "";
  }
  Keel__Echo__V1__EchoResponse *resp = NULL;
  int rc = call_unary(c, "/keel.echo.v1.Echo/Echo", &req.base,
                      &keel__echo__v1__echo_response__descriptor, (ProtobufCMessage **)&resp);
  if (rc == EXIT_OK) printf("%s\n", resp->message);
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* Expand and chat print "SEQUENCE: MESSAGE" as each response arrives. */
static void print_sequenced(stream_wait *w, const ProtobufCMessage *m) {
  (void)w;
  const Keel__Echo__V1__EchoResponse *r = (const Keel__Echo__V1__EchoResponse *)m;
  printf("%llu: %s\n", (unsigned long long)r->sequence, r->message);
  fflush(stdout);
}

static int parse_count(const char *text, uint64_t *out) {
  if (!*text || strspn(text, "0123456789") != strlen(text) || strlen(text) > 9) return -EINVAL;
  *out = strtoull(text, NULL, 10);
  return 0;
}

static int cmd_expand(cli *c, char **args, const echo_flags *f) {
  Keel__Echo__V1__ExpandRequest req = KEEL__ECHO__V1__EXPAND_REQUEST__INIT;
  req.message = args[0];
  if (parse_count(args[1], &req.count) < 0)
    return usage_error("expand: COUNT must be a number from 0 to 999999999, got \"%s\"", args[1]);
  req.interval_ms = (uint32_t)f->interval_ms;
  stream_wait w;
  stream_wait_init(&w, print_sequenced, NULL);
  int rc = stream_run(c, "/keel.echo.v1.Echo/Expand", RPC_SERVER_STREAMING, &req.base, NULL, 0,
                      &keel__echo__v1__echo_response__descriptor, &w);
  stream_wait_destroy(&w);
  return rc;
}

/* The answer, copied: the message is only valid in the callback. */
typedef struct collect_result {
  uint64_t count, bytes;
  char *joined;
} collect_result;

static void keep_collect(stream_wait *w, const ProtobufCMessage *m) {
  collect_result *out = w->ctx;
  const Keel__Echo__V1__CollectResponse *r = (const Keel__Echo__V1__CollectResponse *)m;
  out->count = r->count;
  out->bytes = r->bytes;
  free(out->joined);
  out->joined = strdup(r->joined ? r->joined : "");
}

static int cmd_collect(cli *c, char **args, int nargs) {
  Keel__Echo__V1__EchoRequest *reqs = calloc((size_t)nargs, sizeof(*reqs));
  const ProtobufCMessage **msgs = calloc((size_t)nargs, sizeof(*msgs));
  if (!reqs || !msgs) {
    free(reqs);
    free(msgs);
    return report_local(c, "out of memory");
  }
  for (int i = 0; i < nargs; i++) {
    keel__echo__v1__echo_request__init(&reqs[i]);
    reqs[i].message = args[i];
    msgs[i] = &reqs[i].base;
  }
  collect_result out = {0};
  stream_wait w;
  stream_wait_init(&w, keep_collect, &out);
  /* Not retried: the server may have counted the messages already. */
  rpc_stream *s = stream_open(c, "/keel.echo.v1.Echo/Collect", RPC_CLIENT_STREAMING, NULL,
                              &keel__echo__v1__collect_response__descriptor, &w);
  int rc = EXIT_FAIL;
  if (s) {
    int wrc = 0;
    for (int i = 0; i < nargs && wrc == 0; i++) wrc = stream_write_all(c, s, msgs[i]);
    rpc_stream_close_send(s);
    stream_wait_closed(&w);
    rpc_stream_release(s);
    if (wrc == -EINVAL) rc = EXIT_FAIL;
    else if (w.code != GRPC_STATUS_OK) rc = report_status(c, w.code, w.message);
    else if (w.received != 1) rc = report_local(c, "the server sent no CollectResponse");
    else {
      printf("count: %llu\nbytes: %llu\njoined: %s\n", (unsigned long long)out.count,
             (unsigned long long)out.bytes, out.joined);
      rc = EXIT_OK;
    }
  }
  stream_wait_destroy(&w);
  free(out.joined);
  free(reqs);
  free(msgs);
  return rc;
}

/* Ping-pong: each word goes out only after the previous echo came back. */
static int cmd_chat(cli *c, char **args, int nargs) {
  stream_wait w;
  stream_wait_init(&w, print_sequenced, NULL);
  rpc_stream *s = stream_open(c, "/keel.echo.v1.Echo/Chat", RPC_BIDI_STREAMING, NULL,
                              &keel__echo__v1__echo_response__descriptor, &w);
  int rc = EXIT_FAIL;
  if (s) {
    int wrc = 0;
    for (int i = 0; i < nargs; i++) {
      Keel__Echo__V1__EchoRequest req = KEEL__ECHO__V1__ECHO_REQUEST__INIT;
      req.message = args[i];
      wrc = stream_write_all(c, s, &req.base);
      if (wrc < 0) break;
      stream_wait_for(&w, (uint64_t)i);
    }
    rpc_stream_close_send(s);
    stream_wait_closed(&w);
    rpc_stream_release(s);
    if (wrc == -EINVAL) rc = EXIT_FAIL;
    else rc = w.code == GRPC_STATUS_OK ? EXIT_OK : report_status(c, w.code, w.message);
  }
  stream_wait_destroy(&w);
  return rc;
}

static int cmd_stats(cli *c) {
  Keel__Echo__V1__StatsRequest req = KEEL__ECHO__V1__STATS_REQUEST__INIT;
  Keel__Echo__V1__StatsResponse *resp = NULL;
  int rc = call_unary(c, "/keel.echo.v1.Echo/Stats", &req.base,
                      &keel__echo__v1__stats_response__descriptor, (ProtobufCMessage **)&resp);
  if (rc == EXIT_OK)
    printf("completed_calls: %llu\ncancelled_calls: %llu\ndeadline_exceeded_calls: %llu\n"
           "active_streams: %llu\n",
           (unsigned long long)resp->completed_calls, (unsigned long long)resp->cancelled_calls,
           (unsigned long long)resp->deadline_exceeded_calls,
           (unsigned long long)resp->active_streams);
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* ------------------------------------------------------------ health */

static int cmd_health(cli *c, char **args, int nargs) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = nargs > 0 ? args[0] : "";
  Grpc__Health__V1__HealthCheckResponse *resp = NULL;
  int rc = call_unary(c, "/grpc.health.v1.Health/Check", &req.base,
                      &grpc__health__v1__health_check_response__descriptor,
                      (ProtobufCMessage **)&resp);
  if (rc == EXIT_OK) {
    const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
        &grpc__health__v1__health_check_response__serving_status__descriptor, (int)resp->status);
    if (v) printf("%s\n", v->name);
    else printf("UNKNOWN_STATUS(%d)\n", (int)resp->status);
    if (resp->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING)
      rc = EXIT_FAIL;
  }
  if (resp) protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* ------------------------------------------------------------ reflection */

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_request;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_response;

#define REFLECTION_METHOD "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"

/* The first answer, packed: the message itself is only valid in the callback. */
static void keep_packed(stream_wait *w, const ProtobufCMessage *m) {
  ProtobufCBinaryData *out = w->ctx;
  if (out->data) return;
  size_t n = protobuf_c_message_get_packed_size(m);
  out->data = malloc(n ? n : 1);
  if (!out->data) return;
  out->len = protobuf_c_message_pack(m, out->data);
}

/* One request, one answer. Returns EXIT_OK with *out set (free it with
 * protobuf_c_message_free_unpacked), or reports the failure. An in-band
 * ErrorResponse is reported here too. */
static int reflect(cli *c, const refl_request *req, refl_response **out) {
  *out = NULL;
  ProtobufCBinaryData packed = {0};
  stream_wait w;
  stream_wait_init(&w, keep_packed, &packed);
  const ProtobufCMessage *msgs[] = {&req->base};
  int rc = stream_run(c, REFLECTION_METHOD, RPC_BIDI_STREAMING, NULL, msgs, 1,
                      &grpc__reflection__v1alpha__server_reflection_response__descriptor, &w);
  stream_wait_destroy(&w);
  if (rc == EXIT_OK && !packed.data) rc = report_local(c, "the server sent no reflection answer");
  if (rc == EXIT_OK) {
    *out = grpc__reflection__v1alpha__server_reflection_response__unpack(NULL, packed.len,
                                                                         packed.data);
    if (!*out) rc = report_local(c, "cannot decode the reflection answer");
  }
  free(packed.data);
  if (rc == EXIT_OK &&
      (*out)->message_response_case ==
          GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE) {
    const Grpc__Reflection__V1alpha__ErrorResponse *e = (*out)->error_response;
    rc = report_status(c, (grpc_status_code)e->error_code, e->error_message);
    protobuf_c_message_free_unpacked(&(*out)->base, NULL);
    *out = NULL;
  }
  return rc;
}

static int by_service_name(const void *a, const void *b) {
  typedef Grpc__Reflection__V1alpha__ServiceResponse service;
  const service *x = *(service *const *)a, *y = *(service *const *)b;
  return strcmp(x->name ? x->name : "", y->name ? y->name : "");
}

static int cmd_services(cli *c) {
  refl_request req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES;
  req.list_services = "*";
  refl_response *resp;
  int rc = reflect(c, &req, &resp);
  if (rc != EXIT_OK) return rc;
  if (resp->message_response_case ==
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE) {
    /* Sorted, as grpcurl lists them: the server's order is registration order. */
    Grpc__Reflection__V1alpha__ListServiceResponse *l = resp->list_services_response;
    qsort(l->service, l->n_service, sizeof(*l->service), by_service_name);
    for (size_t i = 0; i < l->n_service; i++) {
      put_clean(stdout, l->service[i]->name);
      fputc('\n', stdout);
    }
  } else {
    rc = report_local(c, "the server answered list_services with something else");
  }
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* ".keel.echo.v1.EchoRequest" in package keel.echo.v1 -> "EchoRequest", as the
 * .proto would spell it; types from other packages keep their full name. */
static const char *type_name(const char *t, const char *package) {
  if (t[0] == '.') t++;
  size_t n = package ? strlen(package) : 0;
  if (n && strncmp(t, package, n) == 0 && t[n] == '.') t += n + 1;
  return t;
}

static void print_service(const Google__Protobuf__FileDescriptorProto *f,
                          const Google__Protobuf__ServiceDescriptorProto *svc, const char *full) {
  printf("service %s (%s)\n", full, f->name ? f->name : "?");
  for (size_t i = 0; i < svc->n_method; i++) {
    const Google__Protobuf__MethodDescriptorProto *m = svc->method[i];
    printf("  rpc %s(%s%s) returns (%s%s)\n", m->name, m->client_streaming ? "stream " : "",
           type_name(m->input_type, f->package), m->server_streaming ? "stream " : "",
           type_name(m->output_type, f->package));
  }
}

static int cmd_describe(cli *c, const char *symbol) {
  refl_request req = GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__INIT;
  req.message_request_case =
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL;
  req.file_containing_symbol = (char *)symbol;
  refl_response *resp;
  int rc = reflect(c, &req, &resp);
  if (rc != EXIT_OK) return rc;
  if (resp->message_response_case !=
      GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE) {
    protobuf_c_message_free_unpacked(&resp->base, NULL);
    return report_local(c, "the server answered file_containing_symbol with something else");
  }
  /* The file that defines the symbol comes first, then its imports. */
  const Grpc__Reflection__V1alpha__FileDescriptorResponse *fdr = resp->file_descriptor_response;
  bool found = false, decoded = true;
  const char *defined_in = NULL;
  Google__Protobuf__FileDescriptorProto *first = NULL;
  for (size_t i = 0; i < fdr->n_file_descriptor_proto && !found; i++) {
    Google__Protobuf__FileDescriptorProto *f = google__protobuf__file_descriptor_proto__unpack(
        NULL, fdr->file_descriptor_proto[i].len, fdr->file_descriptor_proto[i].data);
    if (!f) {
      decoded = false;
      break;
    }
    for (size_t j = 0; j < f->n_service && !found; j++) {
      char full[512];
      if (f->package && *f->package)
        snprintf(full, sizeof(full), "%s.%s", f->package, f->service[j]->name);
      else
        snprintf(full, sizeof(full), "%s", f->service[j]->name);
      if (strcmp(full, symbol) == 0) {
        print_service(f, f->service[j], full);
        found = true;
      }
    }
    if (i == 0) first = f;
    else protobuf_c_message_free_unpacked(&f->base, NULL);
  }
  if (first) defined_in = first->name;
  if (!decoded) {
    rc = report_local(c, "cannot decode a FileDescriptorProto from the server");
  } else if (!found) {
    fprintf(stderr, PROGRAM ": %s: %s is not a service (it is defined in %s)\n", c->command, symbol,
            defined_in ? defined_in : "an unnamed file");
    rc = EXIT_FAIL;
  }
  if (first) protobuf_c_message_free_unpacked(&first->base, NULL);
  protobuf_c_message_free_unpacked(&resp->base, NULL);
  return rc;
}

/* ------------------------------------------------------------ main */

/* "a,b" -> endpoints; the array and the strings are malloc'ed. */
static size_t split_servers(const char *text, char ***out) {
  size_t n = 0;
  char **items = calloc(strlen(text) / 2 + 2, sizeof(*items));
  cleanup_free char *copy = strdup(text);
  if (!items || !copy) {
    free(items);
    *out = NULL;
    return 0;
  }
  char *save = NULL;
  for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
    items[n++] = strdup(tok);
  *out = items;
  return n;
}

typedef struct command {
  const char *name;
  int min_args, max_args; /* max -1: any */
  const char *usage;
} command;

static const command COMMANDS[] = {
    {"echo", 1, 1, "echo MESSAGE"},
    {"expand", 2, 2, "expand MESSAGE COUNT"},
    {"collect", 1, -1, "collect WORD..."},
    {"chat", 1, -1, "chat WORD..."},
    {"health", 0, 1, "health [SERVICE]"},
    {"services", 0, 0, "services"},
    {"describe", 1, 1, "describe SERVICE"},
    {"stats", 0, 0, "stats"},
};

static int run(cli *c, const command *cmd, char **args, int nargs, const echo_flags *ef) {
  const char *n = cmd->name;
  if (strcmp(n, "echo") == 0) return cmd_echo(c, args, ef);
  if (strcmp(n, "expand") == 0) return cmd_expand(c, args, ef);
  if (strcmp(n, "collect") == 0) return cmd_collect(c, args, nargs);
  if (strcmp(n, "chat") == 0) return cmd_chat(c, args, nargs);
  if (strcmp(n, "health") == 0) return cmd_health(c, args, nargs);
  if (strcmp(n, "services") == 0) return cmd_services(c);
  if (strcmp(n, "describe") == 0) return cmd_describe(c, args[0]);
  return cmd_stats(c);
}

int main(int argc, char **argv) {
  flag_string_list servers = {0};
  int64_t timeout_ms = 5000;
  char *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL, *tls_server_name = NULL;
  char *level_name = "warn";
  echo_flags ef = {0};
  const flag_def defs[] = {
      FLAG_STRING_LIST("server", &servers,
                       "server address(es), comma-separated or repeated: host:port or "
                       "unix:/path; calls fail over in order"),
      FLAG_DURATION("timeout", &timeout_ms, "deadline of each call (0 = none)"),
      FLAG_STRING("tls-ca", &tls_ca, "PEM CA that signed the server's certificate: use TLS"),
      FLAG_STRING("tls-cert", &tls_cert, "PEM client certificate (mutual TLS)"),
      FLAG_STRING("tls-key", &tls_key, "PEM private key for --tls-cert"),
      FLAG_STRING("tls-server-name", &tls_server_name,
                  "check the server certificate against this name instead of the host"),
      FLAG_INT("delay-ms", &ef.delay_ms, "echo: the server answers after this many ms"),
      FLAG_STRING("status-code", &ef.status_code,
                  "echo: the server fails with this status (name or number)"),
      FLAG_STRING("status-message", &ef.status_message, "echo: the message for --status-code"),
      FLAG_INT("interval-ms", &ef.interval_ms, "expand: ms between responses"),
      FLAG_STRING("log-level", &level_name, "runtime log level: debug, info, warn or error"),
      FLAG_END,
  };
  keel_error err = {0};
  char **pos = NULL;
  int npos = 0;
  int rc = flags_parse(PROGRAM " COMMAND [ARGS...]", SUMMARY, defs, argc, argv, &pos, &npos, &err);
  cli c = {.timeout_ms = timeout_ms};
  char **endpoints = NULL;
  size_t nendpoints = 0;
  const command *cmd = NULL;
  if (rc == FLAGS_HELP) {
    rc = EXIT_OK;
    goto out;
  }
  if (rc < 0) {
    rc = usage_error("%s", err.message);
    goto out;
  }
  rc = EXIT_USAGE;
  if (npos == 0) {
    usage_error("%s", "missing command");
    goto out;
  }
  for (size_t i = 0; i < KEEL_ARRAY_LEN(COMMANDS); i++)
    if (strcmp(pos[0], COMMANDS[i].name) == 0) cmd = &COMMANDS[i];
  if (!cmd) {
    usage_error("unknown command \"%s\"", pos[0]);
    goto out;
  }
  c.command = cmd->name;
  int nargs = npos - 1;
  if (nargs < cmd->min_args || (cmd->max_args >= 0 && nargs > cmd->max_args)) {
    usage_error("usage: " PROGRAM " [flags] %s", cmd->usage);
    goto out;
  }
  bool is_echo = strcmp(cmd->name, "echo") == 0;
  if (!is_echo && (ef.delay_ms || ef.status_code || ef.status_message)) {
    usage_error("%s", "--delay-ms, --status-code and --status-message apply to echo only");
    goto out;
  }
  if (strcmp(cmd->name, "expand") != 0 && ef.interval_ms) {
    usage_error("%s", "--interval-ms applies to expand only");
    goto out;
  }
  if (ef.delay_ms > UINT32_MAX || ef.interval_ms > UINT32_MAX || ef.delay_ms < 0 ||
      ef.interval_ms < 0) {
    usage_error("%s", "--delay-ms and --interval-ms must be 0..4294967295");
    goto out;
  }
  if (ef.status_message && !ef.status_code) {
    usage_error("%s", "--status-message needs --status-code");
    goto out;
  }
  if ((tls_cert == NULL) != (tls_key == NULL)) {
    usage_error("%s", "--tls-cert and --tls-key go together");
    goto out;
  }
  if ((tls_cert || tls_server_name) && !tls_ca) {
    usage_error("%s", "--tls-cert, --tls-key and --tls-server-name need --tls-ca");
    goto out;
  }
  int lvl = log_level_parse(level_name);
  if (lvl < 0) {
    usage_error("flag --log-level: invalid value \"%s\"", level_name);
    goto out;
  }
  log_set_level((log_level)lvl);

  /* Endpoints: --server, else $KEEL_ECHO_SERVER. */
  const char *env = getenv("KEEL_ECHO_SERVER");
  if (servers.count > 0) {
    size_t len = 1;
    for (int i = 0; i < servers.count; i++) len += strlen(servers.items[i]) + 1;
    c.servers = calloc(1, len);
    endpoints = calloc((size_t)servers.count, sizeof(*endpoints));
    for (int i = 0; c.servers && endpoints && i < servers.count; i++) {
      if (i) strcat(c.servers, ",");
      strcat(c.servers, servers.items[i]);
      endpoints[nendpoints++] = strdup(servers.items[i]);
    }
  } else if (env && *env) {
    c.servers = strdup(env);
    nendpoints = split_servers(env, &endpoints);
  }
  if (nendpoints == 0) {
    usage_error("%s", "no server: pass --server ADDR or set KEEL_ECHO_SERVER");
    goto out;
  }
  c.nendpoints = nendpoints;

  rpc_tls_config tls = {.ca_file = tls_ca,
                        .cert_file = tls_cert,
                        .key_file = tls_key,
                        .server_name_override = tls_server_name};
  rpc_channel_options copts = {.endpoints = (const char *const *)endpoints,
                               .nendpoints = nendpoints,
                               .tls = tls_ca ? &tls : NULL};
  c.ch = rpc_channel_create(&copts, &err);
  if (!c.ch) {
    rc = report_local(&c, err.message);
    goto out;
  }
  rc = run(&c, cmd, pos + 1, nargs, &ef);
  fflush(stdout);

out:
  rpc_channel_destroy(c.ch);
  for (size_t i = 0; i < nendpoints; i++) free(endpoints[i]);
  free(endpoints);
  free(c.servers);
  flags_free_positional(pos);
  flags_free_lists(defs);
  return rc;
}
