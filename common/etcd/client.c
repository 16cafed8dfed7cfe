/* common/etcd/client.c — the client: endpoints, the channel, errors, and the
 * one place where etcd's retry rules live (etcd.h RETRIES).
 *
 * Idempotent requests go to common/rpc marked idempotent: it retries
 * UNAVAILABLE with backoff on the next endpoint. Everything else is re-sent
 * only when the status proves the request never left this process: gRPC's
 * pick failure ("failed to connect to all addresses", DNS failures) fails a
 * call before it gets a transport stream. The channel has already moved to the
 * next endpoint then, so the re-send goes there at once, at most once per
 * endpoint. An async call keeps a packed copy of its request for that (the
 * caller's buffers are only borrowed for the call), and only when there is
 * another endpoint to go to.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/etcd/etcd.h"
#include "common/etcd/internal.h"
#include "grpc/health/v1/health.pb-c.h"

#define DEFAULT_TIMEOUT_MS 5000
#define DEFAULT_MAX_MESSAGE_BYTES (8 * 1024 * 1024)

__thread int etcd_in_callback;

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------- endpoints */

typedef enum { SCHEME_NONE, SCHEME_PLAIN, SCHEME_TLS } scheme;

static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

/* etcd URL -> gRPC target. http(s)://host:port[/] -> host:port; unix(s):x ->
 * unix:x; a bare target is kept. */
static int endpoint_target(const char *in, char **out, scheme *sch, keel_error *err) {
  const char *rest = in;
  *sch = SCHEME_NONE;
  bool is_unix = false;
  if (has_prefix(in, "http://")) {
    rest = in + 7;
    *sch = SCHEME_PLAIN;
  } else if (has_prefix(in, "https://")) {
    rest = in + 8;
    *sch = SCHEME_TLS;
  } else if (has_prefix(in, "unixs:")) {
    rest = in + 6;
    *sch = SCHEME_TLS;
    is_unix = true;
  } else if (has_prefix(in, "unix:")) {
    rest = in + 5;
    is_unix = true;
  } else if (strstr(in, "://")) {
    return keel_error_set(err, EINVAL, "etcd endpoint \"%s\": unsupported scheme (http, https, unix, unixs)", in);
  }
  size_t n = strlen(rest);
  if (!is_unix) {
    while (n > 0 && rest[n - 1] == '/') n--;
    if (memchr(rest, '/', n))
      return keel_error_set(err, EINVAL, "etcd endpoint \"%s\": a URL path is not supported", in);
  }
  if (n == 0) return keel_error_set(err, EINVAL, "etcd endpoint \"%s\": empty address", in);
  if (asprintf(out, "%s%.*s", is_unix ? "unix:" : "", (int)n, rest) < 0) {
    *out = NULL;
    return keel_error_set(err, ENOMEM, "etcd endpoint \"%s\": out of memory", in);
  }
  return 0;
}

etcd_client *etcd_client_create(const etcd_client_options *opts, keel_error *err) {
  if (!opts || !opts->endpoints || opts->nendpoints == 0) {
    keel_error_set(err, EINVAL, "etcd client: no endpoints");
    return NULL;
  }
  char **targets = calloc(opts->nendpoints, sizeof(*targets));
  if (!targets) {
    keel_error_set(err, ENOMEM, "etcd client: out of memory");
    return NULL;
  }
  etcd_client *c = NULL;
  bool plain = false, tls = false;
  for (size_t i = 0; i < opts->nendpoints; i++) {
    scheme s;
    if (!opts->endpoints[i] || endpoint_target(opts->endpoints[i], &targets[i], &s, err) < 0) {
      if (!opts->endpoints[i]) keel_error_set(err, EINVAL, "etcd client: endpoint %zu is NULL", i);
      goto out;
    }
    plain |= s == SCHEME_PLAIN;
    tls |= s == SCHEME_TLS;
  }
  if (plain && tls) {
    keel_error_set(err, EINVAL, "etcd client: http and https endpoints cannot be mixed");
    goto out;
  }
  if (plain && opts->tls) {
    keel_error_set(err, EINVAL, "etcd client: TLS configured for http:// endpoints");
    goto out;
  }
  /* https:// without a TLS config: server authentication against the system roots. */
  static const rpc_tls_config system_roots = {0};
  rpc_channel_options co = {
      .endpoints = (const char *const *)targets,
      .nendpoints = opts->nendpoints,
      .tls = opts->tls ? opts->tls : (tls ? &system_roots : NULL),
      .max_message_bytes =
          opts->max_message_bytes > 0 ? opts->max_message_bytes : DEFAULT_MAX_MESSAGE_BYTES,
      .max_receive_message_bytes = opts->max_receive_message_bytes > 0 ? opts->max_receive_message_bytes : -1,
      .cq_threads = opts->cq_threads > 0 ? opts->cq_threads : 1,
  };
  c = calloc(1, sizeof(*c));
  if (!c) {
    keel_error_set(err, ENOMEM, "etcd client: out of memory");
    goto out;
  }
  c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEFAULT_TIMEOUT_MS;
  c->nendpoints = opts->nendpoints;
  atomic_init(&c->closing, false);
  c->ch = rpc_channel_create(&co, err);
  if (!c->ch) {
    keel_error_wrap(err, "etcd client");
    free(c);
    c = NULL;
  }
out:
  for (size_t i = 0; i < opts->nendpoints; i++) free(targets[i]);
  free(targets);
  return c;
}

void etcd_client_destroy(etcd_client *c) {
  if (!c) return;
  atomic_store(&c->closing, true);
  rpc_channel_destroy(c->ch);
  free(c);
}

const char *etcd_client_endpoint(const etcd_client *c) { return rpc_channel_current_endpoint(c->ch); }

/* ---------------------------------------------------------------- errors */

void etcd_describe(char *buf, size_t size, const char *method, const void *key, size_t key_len) {
  size_t n = (size_t)snprintf(buf, size, "%s", method);
  if (n >= size || !key || key_len == 0) return;
  const unsigned char *k = key;
  const size_t max_shown = 96;
  if (n + 1 < size) buf[n++] = ' ';
  for (size_t i = 0; i < key_len && i < max_shown && n + 5 < size; i++) {
    if (isprint(k[i]) && k[i] != '\\') buf[n++] = (char)k[i];
    else n += (size_t)snprintf(buf + n, size - n, "\\x%02x", k[i]);
  }
  if (key_len > max_shown && n + 4 < size) n += (size_t)snprintf(buf + n, size - n, "...");
  buf[n < size ? n : size - 1] = 0;
}

bool etcd_status_unsent(const rpc_status *st) {
  if (st->code != GRPC_STATUS_UNAVAILABLE || !st->message) return false;
  const char *m = st->message;
  return strstr(m, "failed to connect to all addresses") || strstr(m, "DNS resolution failed") ||
         strstr(m, "empty address list") || strstr(m, "Failed to connect to remote host");
}

static int errno_for(const rpc_status *st) {
  const char *m = st->message ? st->message : "";
  switch (st->code) {
    case GRPC_STATUS_OK: return 0;
    case GRPC_STATUS_CANCELLED: return ECANCELED;
    case GRPC_STATUS_INVALID_ARGUMENT: return strstr(m, "request is too large") ? E2BIG : EINVAL;
    case GRPC_STATUS_DEADLINE_EXCEEDED: return ETIMEDOUT;
    case GRPC_STATUS_NOT_FOUND: return ENOENT;
    case GRPC_STATUS_ALREADY_EXISTS: return EEXIST;
    case GRPC_STATUS_PERMISSION_DENIED:
    case GRPC_STATUS_UNAUTHENTICATED: return EACCES;
    case GRPC_STATUS_RESOURCE_EXHAUSTED:
      if (strstr(m, "space exceeded")) return ENOSPC;
      if (strstr(m, "larger than max")) return E2BIG;
      return ENOBUFS;
    case GRPC_STATUS_FAILED_PRECONDITION: return strstr(m, "already exists") ? EEXIST : EBUSY;
    case GRPC_STATUS_ABORTED: return ECONNABORTED;
    case GRPC_STATUS_OUT_OF_RANGE:
      return strstr(m, "required revision has been compacted") ? ETCD_ECOMPACTED : ETCD_EFUTURE;
    case GRPC_STATUS_UNIMPLEMENTED: return ENOSYS;
    case GRPC_STATUS_UNAVAILABLE: return etcd_status_unsent(st) ? ECONNREFUSED : EAGAIN;
    default: return EIO; /* UNKNOWN, INTERNAL, DATA_LOSS */
  }
}

int etcd_status_error(const rpc_status *st, const char *what, keel_error *err) {
  int code = errno_for(st);
  if (code == 0) code = EIO; /* OK is not an error: a caller bug, but never return 0 */
  const char *m = st->message && st->message[0] ? st->message : rpc_status_code_name(st->code);
  return keel_error_set(err, code, "etcd %s: %s", what, m);
}

/* ---------------------------------------------------------------- calls */

int etcd_call(etcd_client *c, const char *method, const char *what, const ProtobufCMessage *req,
              const ProtobufCMessageDescriptor *resp_desc, bool idempotent,
              ProtobufCMessage **resp, keel_error *err) {
  int64_t deadline = now_ms() + c->timeout_ms;
  for (size_t attempt = 1;; attempt++) {
    rpc_call_options o = {.timeout_ms = deadline - now_ms(), .idempotent = idempotent};
    if (o.timeout_ms < 1) o.timeout_ms = 1;
    rpc_status st;
    if (rpc_unary(c->ch, method, req, resp_desc, resp, &o, &st) == 0) {
      rpc_status_clear(&st);
      return 0;
    }
    bool again = !idempotent && etcd_status_unsent(&st) && attempt < c->nendpoints &&
                 !atomic_load(&c->closing) && now_ms() < deadline;
    if (!again) {
      int rc = etcd_status_error(&st, what, err);
      rpc_status_clear(&st);
      return rc;
    }
    rpc_status_clear(&st);
  }
}

typedef struct async_call {
  etcd_client *c;
  const char *method; /* a string literal */
  const ProtobufCMessageDescriptor *req_desc, *resp_desc;
  uint8_t *packed; /* the request, kept for a re-send; NULL when none can happen */
  size_t packed_len;
  size_t attempts;
  int64_t deadline_ms;
  etcd_async_done done;
  char what[160];
} async_call;

static void async_finish(async_call *a, ProtobufCMessage *resp, const keel_error *err) {
  etcd_in_callback++;
  a->done.finish(&a->done, resp, err);
  etcd_in_callback--;
  free(a->packed);
  free(a);
}

static void on_unary_done(void *arg, const rpc_status *st, ProtobufCMessage *resp) {
  async_call *a = arg;
  if (st->code == GRPC_STATUS_OK) {
    async_finish(a, resp, NULL);
    return;
  }
  if (resp) protobuf_c_message_free_unpacked(resp, NULL);
  etcd_client *c = a->c;
  int64_t left = a->deadline_ms - now_ms();
  if (a->packed && etcd_status_unsent(st) && a->attempts < c->nendpoints &&
      !atomic_load(&c->closing) && left > 0) {
    ProtobufCMessage *m = protobuf_c_message_unpack(a->req_desc, NULL, a->packed_len, a->packed);
    if (m) {
      rpc_call_options o = {.timeout_ms = left};
      a->attempts++;
      int rc = rpc_unary_async(c->ch, a->method, m, a->resp_desc, &o, on_unary_done, a);
      protobuf_c_message_free_unpacked(m, NULL);
      if (rc == 0) return;
    }
  }
  keel_error e = {0};
  etcd_status_error(st, a->what, &e);
  async_finish(a, NULL, &e);
}

int etcd_call_async(etcd_client *c, const char *method, const char *what,
                    const ProtobufCMessage *req, const ProtobufCMessageDescriptor *resp_desc,
                    bool idempotent, const etcd_async_done *done, keel_error *err) {
  if (atomic_load(&c->closing)) return keel_error_set(err, ECANCELED, "etcd %s: client closing", what);
  async_call *a = calloc(1, sizeof(*a));
  if (!a) return keel_error_set(err, ENOMEM, "etcd %s: out of memory", what);
  a->c = c;
  a->method = method;
  a->req_desc = req->descriptor;
  a->resp_desc = resp_desc;
  a->attempts = 1;
  a->deadline_ms = now_ms() + c->timeout_ms;
  a->done = *done;
  snprintf(a->what, sizeof(a->what), "%s", what);
  if (!idempotent && c->nendpoints > 1) {
    a->packed_len = protobuf_c_message_get_packed_size(req);
    a->packed = malloc(a->packed_len ? a->packed_len : 1);
    if (!a->packed) {
      free(a);
      return keel_error_set(err, ENOMEM, "etcd %s: out of memory", what);
    }
    protobuf_c_message_pack(req, a->packed);
  }
  rpc_call_options o = {.timeout_ms = c->timeout_ms, .idempotent = idempotent};
  int rc = rpc_unary_async(c->ch, method, req, resp_desc, &o, on_unary_done, a);
  if (rc < 0) {
    free(a->packed);
    free(a);
    return keel_error_set(err, -rc, "etcd %s: cannot start call", what);
  }
  return 0;
}

/* ---------------------------------------------------------------- health */

int etcd_health(etcd_client *c, const char *service, int *status, keel_error *err) {
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  req.service = (char *)(service ? service : "");
  ProtobufCMessage *resp = NULL;
  char what[160];
  snprintf(what, sizeof what, "Health.Check \"%.100s\"", req.service);
  int rc = etcd_call(c, "/grpc.health.v1.Health/Check", what, &req.base,
                     &grpc__health__v1__health_check_response__descriptor, true, &resp, err);
  if (rc < 0) return rc;
  *status = ((Grpc__Health__V1__HealthCheckResponse *)resp)->status;
  protobuf_c_message_free_unpacked(resp, NULL);
  return 0;
}
