/* common/rpc/server.c — the server half of the runtime (contract in rpc.h).
 *
 * Design. Each completion queue has one polling thread. Every method is
 * registered with the core; unary and server-streaming methods ask the core to
 * read the request with the accept (GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER),
 * which saves a batch. A fixed number of accept "slots" per method per queue
 * stays outstanding and each is re-armed as soon as it fires. A generic slot
 * catches methods nobody registered and answers UNIMPLEMENTED.
 *
 * A call's events all arrive on the queue its slot was armed on, so callbacks
 * for one call never run concurrently; other threads (timers, watch producers)
 * only reach a call through the rpc_call_* functions, which take its mutex.
 *
 * Batches. A unary handler that replies before returning costs one batch:
 * SEND_INITIAL_METADATA + SEND_MESSAGE + SEND_STATUS + RECV_CLOSE. A handler that
 * replies later gets RECV_CLOSE started when it returns, so cancellation reaches
 * it. Streams start RECV_CLOSE at once. Sends go one at a time from a bounded
 * queue (sendq.h); the status goes after the last queued message.
 *
 * Lifetime. A call is reference counted: one reference per outstanding batch,
 * one while a callback runs, plus the handler's own (rpc_call_ref). The last
 * unref frees it and releases the core's call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/rpc/codec.h"
#include "common/rpc/internal.h"
#include "common/rpc/rpc.h"
#include "common/rpc/sendq.h"
#include "common/rpc/services.h"

extern const unsigned char keel_runtime_descriptor_set[];
extern const unsigned long keel_runtime_descriptor_set_len;

#define MAX_STATUS_CODE 16

typedef struct rpc_method_entry {
  char *path; /* "/pkg.Service/Method" */
  const ProtobufCMessageDescriptor *input;
  const ProtobufCMessageDescriptor *output;
  rpc_method_handler handler;
  void *ctx;
  void *registered; /* the core's handle */
  metric_family *handled_family;
  _Atomic(metric *) handled[MAX_STATUS_CODE + 1];
  metric *latency;
  metric *started;
} rpc_method_entry;

/* An outstanding accept. method == NULL: the generic slot (unknown methods). */
typedef struct rpc_slot {
  rpc_tag tag;
  struct rpc_server *srv;
  rpc_method_entry *method;
  int cq_index;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details; /* generic slot only */
  grpc_byte_buffer *payload;
  struct rpc_slot *next_all; /* every slot, for freeing */
} rpc_slot;

typedef struct shutdown_hook_entry {
  rpc_shutdown_hook fn;
  void *arg;
} shutdown_hook_entry;

typedef struct md_list {
  grpc_metadata *items;
  size_t count, cap;
} md_list;

struct rpc_call {
  ProtobufCMessage *request; /* unary/server-streaming: during on_request, until taken */
  rpc_tag recv_close_tag;
  rpc_tag send_tag;
  rpc_tag recv_msg_tag;
  struct rpc_server *srv;
  rpc_method_entry *method; /* NULL for unknown methods */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md_in;
  char *unknown_path; /* unknown methods: the path the client asked for */
  double start_seconds;

  pthread_mutex_t mu;
  atomic_int refs;
  struct rpc_call *live_prev, *live_next;

  /* Guarded by mu. */
  bool in_handler;
  bool recv_close_started;
  bool initial_md_sent;
  bool send_in_flight;
  bool finish_requested; /* a status was chosen (by the handler or the runtime) */
  bool handler_finished; /* ...by the handler: no cancel callback after that */
  bool status_sent;      /* the status batch was started */
  bool cancelled;
  bool reads_paused;     /* rpc_call_pause_reads: no new RECV_MESSAGE */
  bool read_parked;      /* a RECV_MESSAGE is owed to rpc_call_resume_reads */
  bool closed; /* RECV_CLOSE completed */
  bool want_writable;
  bool folded_reply; /* the reply batch also carries RECV_CLOSE (one completion) */
  bool recorded;     /* counted in the handled metrics */
  int recv_close_cancelled;
  rpc_slow_policy slow_policy;
  rpc_sendq queue;
  grpc_status_code final_code;
  char *final_message;
  void *final_details;
  size_t final_details_len;
  md_list initial_md;
  md_list trailing_md;
  /* The batch in flight owns these until it completes. */
  grpc_byte_buffer *inflight_message;
  grpc_slice inflight_status_slice;
  bool inflight_has_status_slice;

  void (*cancel_fn)(rpc_call *, void *);
  void *cancel_arg;
  bool cancel_fired;
  void (*writable_fn)(rpc_call *, void *);
  void *writable_arg;
  void *user_data;
  void (*user_destroy)(void *);

  grpc_byte_buffer *recv_buffer; /* client/bidi: the message being read */
};

struct rpc_server {
  rpc_server_options opts;
  char *name;
  grpc_server *server;
  grpc_completion_queue **cqs;
  pthread_t *threads;
  int nthreads_started;
  bool started;

  rpc_method_entry **methods;
  size_t nmethods;
  char **services;
  size_t nservices;
  struct {
    const unsigned char *set;
    size_t len;
  } *descriptor_sets;
  size_t ndescriptor_sets;
  shutdown_hook_entry *hooks;
  size_t nhooks;

  rpc_slot *all_slots;
  /* Every batch start passes this gate; shutdown closes it before shutting the
   * queues down, since a batch started on a shut-down queue aborts the process.
   * Writer-preferring, so a busy server cannot starve the shutdown. */
  pthread_rwlock_t batch_gate;
  bool gate_closed;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  rpc_call *live; /* every call not yet freed */
  size_t nlive;
  atomic_bool shutting_down;
  bool shutdown_notified;
  bool shutdown_done;

  rpc_tag shutdown_tag;
  rpc_health *health;
  rpc_reflection *reflection;
  metric *started_calls;
  metric *active_calls;
};

static void call_unref(rpc_call *c);
static void start_status_batch_locked(rpc_call *c);
static void try_start_send_locked(rpc_call *c);
static void release_inflight_locked(rpc_call *c);

/* grpc_call_start_batch behind the gate: after shutdown closed it, nothing starts
 * and the caller takes its failure path (the call is over anyway). */
static grpc_call_error gated_start_batch(rpc_server *srv, grpc_call *call, const grpc_op *ops,
                                         size_t nops, void *tag) {
  pthread_rwlock_rdlock(&srv->batch_gate);
  grpc_call_error e = srv->gate_closed ? GRPC_CALL_ERROR_ALREADY_FINISHED
                                       : grpc_call_start_batch(call, ops, nops, tag, NULL);
  pthread_rwlock_unlock(&srv->batch_gate);
  return e;
}

/* ---------------------------------------------------------------- options */

static void apply_defaults(rpc_server_options *o) {
  if (o->cq_threads <= 0) {
    /* Measured (bench/rpc): on 2 cores a second queue thread costs more in
     * hand-offs between threads than it gains. Half the cores, 1 to 4. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o->cq_threads = cores >= 8 ? 4 : cores >= 4 ? (int)(cores / 2) : 1;
  }
  if (o->max_message_bytes <= 0) o->max_message_bytes = RPC_DEFAULT_MAX_MESSAGE_BYTES;
  if (o->max_send_message_bytes == 0) o->max_send_message_bytes = o->max_message_bytes;
  if (o->max_send_message_bytes < 0 || o->max_send_message_bytes > INT32_MAX)
    o->max_send_message_bytes = INT32_MAX;
  if (o->requests_per_method <= 0) o->requests_per_method = 8;
  if (o->stream_queue_messages <= 0) o->stream_queue_messages = 1024;
  if (o->stream_queue_bytes <= 0) o->stream_queue_bytes = 4 * 1024 * 1024;
  if (o->shutdown_grace_ms <= 0) o->shutdown_grace_ms = 1500;
  if (!o->name) o->name = "keel";
}

rpc_server *rpc_server_create(const rpc_server_options *opts, keel_error *err) {
  rpc_server *srv = calloc(1, sizeof(*srv));
  if (!srv) {
    keel_error_set(err, ENOMEM, "create rpc server: out of memory");
    return NULL;
  }
  if (opts) srv->opts = *opts;
  apply_defaults(&srv->opts);
  srv->name = strdup(srv->opts.name);
  srv->opts.name = srv->name;
  pthread_mutex_init(&srv->mu, NULL);
  pthread_cond_init(&srv->cond, NULL);
  pthread_rwlockattr_t gate_attr;
  pthread_rwlockattr_init(&gate_attr);
  pthread_rwlockattr_setkind_np(&gate_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&srv->batch_gate, &gate_attr);
  pthread_rwlockattr_destroy(&gate_attr);
  rpc_library_init();

  grpc_arg args[3];
  args[0].type = GRPC_ARG_INTEGER;
  args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[0].value.integer = (int)srv->opts.max_message_bytes;
  args[1].type = GRPC_ARG_INTEGER;
  args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[1].value.integer = (int)srv->opts.max_send_message_bytes;
  /* Two servers must never share a port by accident (tests pick port 0). */
  args[2].type = GRPC_ARG_INTEGER;
  args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
  args[2].value.integer = 0;
  grpc_channel_args cargs = {.num_args = 3, .args = args};
  srv->server = grpc_server_create(&cargs, NULL);

  srv->cqs = calloc((size_t)srv->opts.cq_threads, sizeof(*srv->cqs));
  srv->threads = calloc((size_t)srv->opts.cq_threads, sizeof(*srv->threads));
  for (int i = 0; i < srv->opts.cq_threads; i++) {
    srv->cqs[i] = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(srv->server, srv->cqs[i], NULL);
  }
  srv->health = rpc_health_create();
  rpc_server_add_descriptors(srv, keel_runtime_descriptor_set,
                             (size_t)keel_runtime_descriptor_set_len, NULL);
  if (!srv->opts.disable_metrics) {
    metrics_registry *reg = metrics_default();
    metric_family *f = metrics_counter(reg, "keel_rpc_server_started_total",
                                       "RPCs started on the server.", 0);
    srv->started_calls = f ? metric_child(f) : NULL;
    f = metrics_gauge(reg, "keel_rpc_server_active_calls", "RPCs in progress.", 0);
    srv->active_calls = f ? metric_child(f) : NULL;
  }
  return srv;
}

/* ---------------------------------------------------------------- listeners */

int rpc_server_add_listener(rpc_server *srv, const char *addr, const rpc_tls_config *tls,
                            keel_error *err) {
  if (srv->started) return keel_error_set(err, EBUSY, "listen %s: server already started", addr);
  grpc_server_credentials *creds;
  if (tls) {
    if (!tls->cert_file || !tls->key_file)
      return keel_error_set(err, EINVAL, "listen %s: TLS needs both a certificate and a key", addr);
    char *cert = NULL, *key = NULL, *ca = NULL;
    if (rpc_read_file(tls->cert_file, &cert, err) < 0 || rpc_read_file(tls->key_file, &key, err) < 0 ||
        (tls->ca_file && rpc_read_file(tls->ca_file, &ca, err) < 0)) {
      free(cert);
      free(key);
      return keel_error_wrap(err, "listen %s: TLS", addr);
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(
        ca, &pair, 1,
        !ca ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
        : tls->client_cert_optional ? GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY
                                    : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY,
        NULL);
    free(cert);
    free(key);
    free(ca);
    if (!creds) return keel_error_set(err, EINVAL, "listen %s: invalid TLS certificate or key", addr);
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  int port = grpc_server_add_http2_port(srv->server, addr, creds);
  grpc_server_credentials_release(creds);
  if (port == 0)
    return keel_error_set(err, EADDRNOTAVAIL, "listen %s: %s", addr,
                          tls ? "cannot listen: address in use or invalid, or the TLS certificate, "
                                "key and CA were rejected (see the log line before this one)"
                              : "cannot bind: address in use or invalid");
  if (strncmp(addr, "unix:", 5) == 0) return 0;
  return port;
}

/* ---------------------------------------------------------------- registration */

static int add_service(rpc_server *srv, const char *full_name, const ProtobufCServiceDescriptor *desc,
                       const rpc_method_handler *handlers, size_t nhandlers, void *ctx,
                       keel_error *err) {
  if (srv->started) return keel_error_set(err, EBUSY, "add service %s: server already started", full_name);
  for (size_t i = 0; i < srv->nservices; i++)
    if (strcmp(srv->services[i], full_name) == 0)
      return keel_error_set(err, EEXIST, "add service %s: already registered", full_name);
  /* Every method is implemented exactly once and every handler names a method. */
  for (size_t h = 0; h < nhandlers; h++) {
    bool found = false;
    for (unsigned m = 0; m < desc->n_methods; m++)
      if (strcmp(desc->methods[m].name, handlers[h].name) == 0) found = true;
    if (!found)
      return keel_error_set(err, EINVAL, "add service %s: handler for unknown method %s", full_name,
                            handlers[h].name);
  }
  for (unsigned m = 0; m < desc->n_methods; m++) {
    const rpc_method_handler *hit = NULL;
    int count = 0;
    for (size_t h = 0; h < nhandlers; h++)
      if (strcmp(desc->methods[m].name, handlers[h].name) == 0) {
        hit = &handlers[h];
        count++;
      }
    if (count != 1)
      return keel_error_set(err, EINVAL, "add service %s: method %s has %d handlers, want 1",
                            full_name, desc->methods[m].name, count);
    bool single = hit->kind == RPC_UNARY || hit->kind == RPC_SERVER_STREAMING;
    if ((single && !hit->on_request) || (!single && (!hit->on_message || !hit->on_half_close)))
      return keel_error_set(err, EINVAL, "add service %s: method %s (%s) lacks its callbacks",
                            full_name, desc->methods[m].name, rpc_kind_name(hit->kind));
  }
  rpc_method_entry **methods =
      realloc(srv->methods, sizeof(*methods) * (srv->nmethods + desc->n_methods));
  char **services = realloc(srv->services, sizeof(*services) * (srv->nservices + 1));
  if (methods) srv->methods = methods;
  if (services) srv->services = services;
  if (!methods || !services) return keel_error_set(err, ENOMEM, "add service %s: out of memory", full_name);
  for (unsigned m = 0; m < desc->n_methods; m++) {
    rpc_method_entry *e = calloc(1, sizeof(*e));
    const rpc_method_handler *hit = NULL;
    for (size_t h = 0; h < nhandlers; h++)
      if (strcmp(desc->methods[m].name, handlers[h].name) == 0) hit = &handlers[h];
    size_t n = strlen(full_name) + strlen(desc->methods[m].name) + 3;
    e->path = malloc(n);
    snprintf(e->path, n, "/%s/%s", full_name, desc->methods[m].name);
    e->input = desc->methods[m].input;
    e->output = desc->methods[m].output;
    e->handler = *hit;
    e->ctx = ctx;
    srv->methods[srv->nmethods++] = e;
  }
  srv->services[srv->nservices++] = strdup(full_name);
  return 0;
}

int rpc_server_add_service(rpc_server *srv, const ProtobufCServiceDescriptor *desc,
                           const rpc_method_handler *handlers, size_t nhandlers, void *service_ctx,
                           keel_error *err) {
  return add_service(srv, desc->name, desc, handlers, nhandlers, service_ctx, err);
}

int rpc_server_add_service_as(rpc_server *srv, const char *full_service_name,
                              const ProtobufCServiceDescriptor *desc,
                              const rpc_method_handler *handlers, size_t nhandlers,
                              void *service_ctx, keel_error *err) {
  return add_service(srv, full_service_name, desc, handlers, nhandlers, service_ctx, err);
}

int rpc_server_add_descriptors(rpc_server *srv, const unsigned char *set, size_t len,
                               keel_error *err) {
  if (srv->started) return keel_error_set(err, EBUSY, "add descriptors: server already started");
  void *p = realloc(srv->descriptor_sets, sizeof(*srv->descriptor_sets) * (srv->ndescriptor_sets + 1));
  if (!p) return keel_error_set(err, ENOMEM, "add descriptors: out of memory");
  srv->descriptor_sets = p;
  srv->descriptor_sets[srv->ndescriptor_sets].set = set;
  srv->descriptor_sets[srv->ndescriptor_sets].len = len;
  srv->ndescriptor_sets++;
  return 0;
}

size_t rpc_server_service_count(const rpc_server *srv) { return srv->nservices; }
const char *rpc_server_service_name(const rpc_server *srv, size_t i) {
  return i < srv->nservices ? srv->services[i] : NULL;
}
size_t rpc_server_descriptor_set_count(const rpc_server *srv) { return srv->ndescriptor_sets; }
void rpc_server_descriptor_set(const rpc_server *srv, size_t i, const unsigned char **set,
                               size_t *len) {
  *set = srv->descriptor_sets[i].set;
  *len = srv->descriptor_sets[i].len;
}

void rpc_server_on_shutdown(rpc_server *srv, rpc_shutdown_hook hook, void *arg) {
  void *p = realloc(srv->hooks, sizeof(*srv->hooks) * (srv->nhooks + 1));
  if (!p) return;
  srv->hooks = p;
  srv->hooks[srv->nhooks].fn = hook;
  srv->hooks[srv->nhooks].arg = arg;
  srv->nhooks++;
}

void rpc_server_set_health(rpc_server *srv, const char *service, int status) {
  rpc_health_set(srv->health, service, status);
}

bool rpc_server_shutting_down(const rpc_server *srv) { return atomic_load(&srv->shutting_down); }

/* ---------------------------------------------------------------- metrics */

static void method_metrics_init(rpc_server *srv, rpc_method_entry *e) {
  if (srv->opts.disable_metrics) return;
  metrics_registry *reg = metrics_default();
  e->handled_family = metrics_counter(reg, "keel_rpc_server_handled_total",
                                      "RPCs completed on the server, by method and status code.",
                                      2, "method", "code");
  metric_family *lat = metrics_histogram(reg, "keel_rpc_server_handling_seconds",
                                         "Time from accepting an RPC to sending its status.",
                                         metrics_latency_buckets, metrics_latency_buckets_len, 1,
                                         "method");
  if (lat) e->latency = metric_child(lat, e->path);
}

/* Caller holds c->mu. Every call is counted once: by the status it sent, or as
 * CANCELLED / DEADLINE_EXCEEDED when it closed without one. */
static void record_handled(rpc_call *c, grpc_status_code code) {
  rpc_method_entry *e = c->method;
  if (c->recorded) return;
  c->recorded = true;
  if (!e || !e->handled_family) return;
  int idx = ((int)code >= 0 && (int)code <= MAX_STATUS_CODE) ? (int)code : GRPC_STATUS_UNKNOWN;
  metric *m = atomic_load(&e->handled[idx]);
  if (!m) {
    m = metric_child(e->handled_family, e->path, rpc_status_code_name((grpc_status_code)idx));
    atomic_store(&e->handled[idx], m);
  }
  if (m) metric_inc(m);
  if (e->latency) metric_observe(e->latency, rpc_now_seconds() - c->start_seconds);
}

/* ---------------------------------------------------------------- accept slots */

static void arm_slot(rpc_slot *s) {
  rpc_server *srv = s->srv;
  grpc_completion_queue *cq = srv->cqs[s->cq_index];
  grpc_metadata_array_init(&s->md);
  s->call = NULL;
  s->payload = NULL;
  grpc_call_error e;
  pthread_rwlock_rdlock(&srv->batch_gate);
  if (srv->gate_closed || atomic_load(&srv->shutting_down)) {
    /* Shutting down: this slot stays idle and is freed with the server. */
    pthread_rwlock_unlock(&srv->batch_gate);
    grpc_metadata_array_destroy(&s->md);
    return;
  }
  if (s->method) {
    bool with_payload = s->method->handler.kind == RPC_UNARY ||
                        s->method->handler.kind == RPC_SERVER_STREAMING;
    e = grpc_server_request_registered_call(srv->server, s->method->registered, &s->call,
                                            &s->deadline, &s->md,
                                            with_payload ? &s->payload : NULL, cq, cq, &s->tag);
  } else {
    grpc_call_details_init(&s->details);
    e = grpc_server_request_call(srv->server, &s->call, &s->details, &s->md, cq, cq, &s->tag);
  }
  pthread_rwlock_unlock(&srv->batch_gate);
  if (e != GRPC_CALL_OK)
    LOG_ERROR("rpc: cannot arm accept", "server", srv->name, "error", log_int(e));
}

static rpc_slot *new_slot(rpc_server *srv, rpc_method_entry *m, int cq_index) {
  rpc_slot *s = calloc(1, sizeof(*s));
  s->tag.kind = RPC_TAG_REQUEST;
  s->srv = srv;
  s->method = m;
  s->cq_index = cq_index;
  s->next_all = srv->all_slots;
  srv->all_slots = s;
  return s;
}

/* ---------------------------------------------------------------- calls */

static rpc_call *call_new(rpc_slot *s) {
  rpc_server *srv = s->srv;
  rpc_call *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->recv_close_tag.kind = RPC_TAG_RECV_CLOSE;
  c->send_tag.kind = RPC_TAG_SEND;
  c->recv_msg_tag.kind = RPC_TAG_RECV_MESSAGE;
  c->srv = srv;
  c->method = s->method;
  c->call = s->call;
  c->deadline = s->deadline;
  c->md_in = s->md; /* moved: the slot re-inits its own */
  c->start_seconds = rpc_now_seconds();
  pthread_mutex_init(&c->mu, NULL);
  atomic_init(&c->refs, 1); /* the dispatch reference */
  rpc_sendq_init(&c->queue, srv->opts.stream_queue_messages, srv->opts.stream_queue_bytes);
  pthread_mutex_lock(&srv->mu);
  c->live_next = srv->live;
  if (srv->live) srv->live->live_prev = c;
  srv->live = c;
  srv->nlive++;
  pthread_mutex_unlock(&srv->mu);
  if (srv->started_calls) metric_inc(srv->started_calls);
  if (srv->active_calls) metric_add(srv->active_calls, 1);
  return c;
}

static void md_list_free(md_list *l) {
  for (size_t i = 0; i < l->count; i++) {
    grpc_slice_unref(l->items[i].key);
    grpc_slice_unref(l->items[i].value);
  }
  free(l->items);
  memset(l, 0, sizeof(*l));
}

static void call_free(rpc_call *c) {
  rpc_server *srv = c->srv;
  if (c->user_destroy) c->user_destroy(c->user_data);
  rpc_sendq_destroy(&c->queue);
  md_list_free(&c->initial_md);
  md_list_free(&c->trailing_md);
  grpc_metadata_array_destroy(&c->md_in);
  free(c->final_message);
  free(c->final_details);
  free(c->unknown_path);
  if (c->recv_buffer) grpc_byte_buffer_destroy(c->recv_buffer);
  grpc_call_unref(c->call);
  pthread_mutex_destroy(&c->mu);
  if (srv->active_calls) metric_add(srv->active_calls, -1);
  pthread_mutex_lock(&srv->mu);
  if (c->live_prev) c->live_prev->live_next = c->live_next;
  else srv->live = c->live_next;
  if (c->live_next) c->live_next->live_prev = c->live_prev;
  srv->nlive--;
  if (srv->nlive == 0) pthread_cond_broadcast(&srv->cond);
  pthread_mutex_unlock(&srv->mu);
  free(c);
}

void rpc_call_ref(rpc_call *c) { atomic_fetch_add(&c->refs, 1); }

/* A ref taken from the server's list of live calls: a call whose count already
 * reached zero is being freed (it is unlinked under srv->mu only after its
 * user data is destroyed) and must not be revived. Caller holds srv->mu. */
static bool call_try_ref(rpc_call *c) {
  int n = atomic_load(&c->refs);
  while (n > 0)
    if (atomic_compare_exchange_weak(&c->refs, &n, n + 1)) return true;
  return false;
}
static void call_unref(rpc_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) call_free(c);
}
void rpc_call_unref(rpc_call *c) { call_unref(c); }

const char *rpc_call_method(const rpc_call *c) {
  return c->method ? c->method->path : (c->unknown_path ? c->unknown_path : "");
}
rpc_kind rpc_call_kind(const rpc_call *c) { return c->method ? c->method->handler.kind : RPC_UNARY; }
rpc_server *rpc_call_server(const rpc_call *c) { return c->srv; }

const char *rpc_call_metadata(const rpc_call *c, const char *key, size_t *len) {
  for (size_t i = 0; i < c->md_in.count; i++) {
    if (rpc_slice_eq_cstr(c->md_in.metadata[i].key, key)) {
      if (len) *len = GRPC_SLICE_LENGTH(c->md_in.metadata[i].value);
      return (const char *)GRPC_SLICE_START_PTR(c->md_in.metadata[i].value);
    }
  }
  return NULL;
}

int64_t rpc_call_remaining_ms(const rpc_call *c) {
  gpr_timespec d = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
  if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0) return INT64_MAX;
  gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
  return gpr_time_to_millis(left);
}

bool rpc_call_deadline_passed(const rpc_call *c) {
  return rpc_call_remaining_ms(c) <= RPC_DEADLINE_SLACK_MS;
}

char *rpc_call_peer(const rpc_call *c) {
  char *p = grpc_call_get_peer(c->call);
  char *out = p ? strdup(p) : NULL;
  gpr_free(p);
  return out;
}

char *rpc_call_auth_property(const rpc_call *c, const char *name) {
  grpc_auth_context *ctx = grpc_call_auth_context(c->call);
  if (!ctx) return NULL;
  grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
  const grpc_auth_property *prop = grpc_auth_property_iterator_next(&it);
  char *out = NULL;
  if (prop) {
    out = malloc(prop->value_length + 1);
    if (out) {
      memcpy(out, prop->value, prop->value_length);
      out[prop->value_length] = '\0';
    }
  }
  grpc_auth_context_release(ctx);
  return out;
}

static int md_list_add(md_list *l, const char *key, const char *value, size_t len) {
  if (l->count == l->cap) {
    size_t ncap = l->cap ? l->cap * 2 : 4;
    void *p = realloc(l->items, ncap * sizeof(*l->items));
    if (!p) return -ENOMEM;
    l->items = p;
    l->cap = ncap;
  }
  grpc_metadata *m = &l->items[l->count++];
  memset(m, 0, sizeof(*m));
  m->key = grpc_slice_from_copied_string(key);
  m->value = grpc_slice_from_copied_buffer(value, len);
  return 0;
}

int rpc_call_add_initial_metadata(rpc_call *c, const char *key, const char *value, size_t len) {
  pthread_mutex_lock(&c->mu);
  int rc = c->initial_md_sent ? -EALREADY : md_list_add(&c->initial_md, key, value, len);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int rpc_call_add_trailing_metadata(rpc_call *c, const char *key, const char *value, size_t len) {
  pthread_mutex_lock(&c->mu);
  int rc = c->status_sent ? -EALREADY : md_list_add(&c->trailing_md, key, value, len);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

void rpc_call_set_user_data(rpc_call *c, void *ptr, void (*destroy)(void *)) {
  pthread_mutex_lock(&c->mu);
  c->user_data = ptr;
  c->user_destroy = destroy;
  pthread_mutex_unlock(&c->mu);
}
void *rpc_call_user_data(const rpc_call *c) { return c->user_data; }

ProtobufCMessage *rpc_call_take_request(rpc_call *c) {
  /* Only the handler's own thread, inside on_request, ever sees c->request. */
  ProtobufCMessage *req = c->request;
  c->request = NULL;
  return req;
}

bool rpc_call_is_cancelled(const rpc_call *c) {
  rpc_call *mc = (rpc_call *)c;
  pthread_mutex_lock(&mc->mu);
  bool v = mc->cancelled;
  pthread_mutex_unlock(&mc->mu);
  return v;
}

void rpc_call_on_cancel(rpc_call *c, void (*fn)(rpc_call *, void *), void *arg) {
  pthread_mutex_lock(&c->mu);
  c->cancel_fn = fn;
  c->cancel_arg = arg;
  bool fire_now = c->closed && !c->handler_finished && !c->cancel_fired && fn;
  if (fire_now) c->cancel_fired = true;
  pthread_mutex_unlock(&c->mu);
  if (fire_now) fn(c, arg);
}

void rpc_call_set_slow_policy(rpc_call *c, rpc_slow_policy policy) {
  pthread_mutex_lock(&c->mu);
  c->slow_policy = policy;
  pthread_mutex_unlock(&c->mu);
}

void rpc_call_on_writable(rpc_call *c, void (*fn)(rpc_call *, void *), void *arg) {
  pthread_mutex_lock(&c->mu);
  c->writable_fn = fn;
  c->writable_arg = arg;
  pthread_mutex_unlock(&c->mu);
}

int rpc_call_queued(const rpc_call *c) {
  rpc_call *mc = (rpc_call *)c;
  pthread_mutex_lock(&mc->mu);
  int n = mc->queue.count;
  pthread_mutex_unlock(&mc->mu);
  return n;
}

/* ---------------------------------------------------------------- batches */

static void start_recv_close_locked(rpc_call *c) {
  if (c->recv_close_started) return;
  c->recv_close_started = true;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  op.data.recv_close_on_server.cancelled = &c->recv_close_cancelled;
  rpc_call_ref(c);
  grpc_call_error e = gated_start_batch(c->srv, c->call, &op, 1, &c->recv_close_tag);
  if (e != GRPC_CALL_OK) {
    if (e != GRPC_CALL_ERROR_ALREADY_FINISHED) /* expected once shutdown closed the gate */
      LOG_ERROR("rpc: start RECV_CLOSE failed", "method", rpc_call_method(c), "error", log_int(e));
    c->closed = true;
    atomic_fetch_sub(&c->refs, 1); /* cannot be the last: the caller holds one */
  }
}

/* Fills ops with SEND_INITIAL_METADATA if it has not gone out yet. */
static size_t add_initial_md_op(rpc_call *c, grpc_op *ops) {
  if (c->initial_md_sent) return 0;
  c->initial_md_sent = true;
  memset(ops, 0, sizeof(*ops));
  ops->op = GRPC_OP_SEND_INITIAL_METADATA;
  ops->data.send_initial_metadata.count = c->initial_md.count;
  ops->data.send_initial_metadata.metadata = c->initial_md.items;
  return 1;
}

static void start_batch_locked(rpc_call *c, grpc_op *ops, size_t nops) {
  c->send_in_flight = true;
  rpc_call_ref(c);
  grpc_call_error e = gated_start_batch(c->srv, c->call, ops, nops, &c->send_tag);
  if (e != GRPC_CALL_OK) {
    if (e != GRPC_CALL_ERROR_ALREADY_FINISHED) /* expected once shutdown closed the gate */
      LOG_ERROR("rpc: start send batch failed", "method", rpc_call_method(c), "error", log_int(e));
    c->send_in_flight = false;
    if (c->inflight_message) grpc_byte_buffer_destroy(c->inflight_message);
    c->inflight_message = NULL;
    if (c->inflight_has_status_slice) grpc_slice_unref(c->inflight_status_slice);
    c->inflight_has_status_slice = false;
    atomic_fetch_sub(&c->refs, 1);
  }
}

/* Sends the status (plus the reply message, if one is queued and nothing is in
 * flight, so a unary reply is a single batch). Caller checked !send_in_flight. */
static void start_status_batch_locked(rpc_call *c) {
  grpc_op ops[4];
  size_t n = add_initial_md_op(c, ops);
  grpc_byte_buffer *msg = rpc_sendq_pop(&c->queue);
  if (msg) {
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = msg;
    c->inflight_message = msg;
    n++;
  }
  if (c->queue.count > 0) {
    /* More messages wait: this batch only carries one of them. */
    start_batch_locked(c, ops, n);
    return;
  }
  if (c->final_details) {
    /* Details ride as binary trailing metadata. */
    md_list_add(&c->trailing_md, "grpc-status-details-bin", c->final_details, c->final_details_len);
    free(c->final_details);
    c->final_details = NULL;
  }
  memset(&ops[n], 0, sizeof(ops[n]));
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = c->final_code;
  ops[n].data.send_status_from_server.trailing_metadata_count = c->trailing_md.count;
  ops[n].data.send_status_from_server.trailing_metadata = c->trailing_md.items;
  if (c->final_message && c->final_message[0]) {
    c->inflight_status_slice = grpc_slice_from_copied_string(c->final_message);
    c->inflight_has_status_slice = true;
    ops[n].data.send_status_from_server.status_details = &c->inflight_status_slice;
  }
  n++;
  if (!c->recv_close_started && c->in_handler) {
    /* A unary handler replying before it returns: fold RECV_CLOSE into the reply. */
    c->recv_close_started = true;
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->recv_close_cancelled;
    n++;
    c->status_sent = true;
    record_handled(c, c->final_code);
    /* This batch completes both the send and the close, on recv_close_tag. */
    rpc_call_ref(c);
    c->send_in_flight = true;
    c->folded_reply = true;
    grpc_call_error e = gated_start_batch(c->srv, c->call, ops, n, &c->recv_close_tag);
    if (e != GRPC_CALL_OK) {
      if (e != GRPC_CALL_ERROR_ALREADY_FINISHED) /* expected once shutdown closed the gate */
      LOG_ERROR("rpc: start reply batch failed", "method", rpc_call_method(c), "error", log_int(e));
      c->send_in_flight = false;
      c->folded_reply = false;
      c->closed = true;
      release_inflight_locked(c);
      atomic_fetch_sub(&c->refs, 1);
    }
    return;
  }
  c->status_sent = true;
  record_handled(c, c->final_code);
  start_batch_locked(c, ops, n);
}

/* Starts the next send if none is in flight: a queued message, or the status. */
static void try_start_send_locked(rpc_call *c) {
  if (c->send_in_flight || c->status_sent) return;
  if (c->finish_requested) {
    start_status_batch_locked(c);
    return;
  }
  grpc_byte_buffer *msg = rpc_sendq_pop(&c->queue);
  if (!msg) return;
  grpc_op ops[2];
  size_t n = add_initial_md_op(c, ops);
  memset(&ops[n], 0, sizeof(ops[n]));
  ops[n].op = GRPC_OP_SEND_MESSAGE;
  ops[n].data.send_message.send_message = msg;
  /* Another message follows at once: let the transport coalesce the writes.
   * The last queued message goes without the hint and flushes them. Never on the
   * batch carrying initial metadata: gRPC 1.51 then stalls the stream. */
  if (c->queue.count > 0 && n == 0) ops[n].flags = GRPC_WRITE_BUFFER_HINT;
  c->inflight_message = msg;
  n++;
  start_batch_locked(c, ops, n);
}

/* ---------------------------------------------------------------- handler API */

/* by_handler: the handler chose this status. Otherwise the runtime ends the call
 * (shutdown, slow receiver, undecodable message) and the handler still hears of
 * it through its cancel callback when the call closes. */
static int finish_locked(rpc_call *c, grpc_status_code code, char *message_take, void *details_take,
                         size_t details_len, bool by_handler) {
  if (c->cancelled) {
    free(message_take);
    free(details_take);
    return -ECANCELED;
  }
  if (c->finish_requested) {
    free(message_take);
    free(details_take);
    return -EALREADY;
  }
  c->finish_requested = true;
  c->handler_finished = by_handler;
  c->final_code = code;
  c->final_message = message_take;
  c->final_details = details_take;
  c->final_details_len = details_len;
  c->want_writable = false;
  try_start_send_locked(c);
  return 0;
}

/* Sends an encoded reply (takes bb) and status OK. */
static int reply_buffer(rpc_call *c, grpc_byte_buffer *bb, size_t size) {
  pthread_mutex_lock(&c->mu);
  int rc;
  if (c->cancelled) rc = -ECANCELED;
  else if (c->finish_requested) rc = -EALREADY;
  else if ((int64_t)size > c->srv->opts.max_send_message_bytes) {
    rc = 0;
    grpc_byte_buffer_destroy(bb);
    bb = NULL;
    char *m = NULL;
    if (asprintf(&m, "response of %zu bytes exceeds the %lld-byte limit", size,
                 (long long)c->srv->opts.max_send_message_bytes) < 0)
      m = NULL;
    finish_locked(c, GRPC_STATUS_RESOURCE_EXHAUSTED, m, NULL, 0, true);
  } else {
    /* The queue is empty for unary calls; the reply rides with the status. */
    rpc_sendq_push(&c->queue, bb, size);
    bb = NULL;
    rc = finish_locked(c, GRPC_STATUS_OK, NULL, NULL, 0, true);
  }
  pthread_mutex_unlock(&c->mu);
  if (bb) grpc_byte_buffer_destroy(bb);
  return rc;
}

int rpc_call_reply(rpc_call *c, const ProtobufCMessage *response) {
  size_t size;
  grpc_byte_buffer *bb = rpc_codec_encode(response, &size);
  return reply_buffer(c, bb, size);
}

int rpc_call_reply_bytes(rpc_call *c, grpc_slice encoded) {
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&encoded, 1);
  size_t size = GRPC_SLICE_LENGTH(encoded);
  grpc_slice_unref(encoded);
  return reply_buffer(c, bb, size);
}

/* Queues an encoded message (takes bb) under the stream send policy. */
static int send_buffer(rpc_call *c, grpc_byte_buffer *bb, size_t size) {
  if ((int64_t)size > c->srv->opts.max_send_message_bytes) {
    grpc_byte_buffer_destroy(bb);
    return -EINVAL;
  }
  pthread_mutex_lock(&c->mu);
  int rc = 0;
  if (c->cancelled) rc = -ECANCELED;
  else if (c->finish_requested) rc = -EALREADY;
  else if (!c->send_in_flight && c->queue.count == 0) {
    rpc_sendq_push(&c->queue, bb, size);
    bb = NULL;
    try_start_send_locked(c);
  } else if (rpc_sendq_push(&c->queue, bb, size)) {
    bb = NULL;
  } else {
    rc = -ENOBUFS;
    if (c->slow_policy == RPC_SLOW_CLOSE) {
      /* Memory stays bounded: drop what the receiver has not taken and end the
       * stream with a status that tells a watcher to relist. */
      int queued = c->queue.count;
      rpc_sendq_clear(&c->queue);
      char *m = NULL;
      if (asprintf(&m, "stream receiver too slow: %d messages queued", queued) < 0) m = NULL;
      LOG_WARN("rpc: closing slow stream", "method", rpc_call_method(c), "queued", log_int(queued));
      finish_locked(c, GRPC_STATUS_RESOURCE_EXHAUSTED, m, NULL, 0, false);
    } else {
      c->want_writable = true;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (bb) grpc_byte_buffer_destroy(bb);
  return rc;
}

int rpc_call_send(rpc_call *c, const ProtobufCMessage *message) {
  size_t size;
  grpc_byte_buffer *bb = rpc_codec_encode(message, &size);
  return send_buffer(c, bb, size);
}

struct rpc_shared_message {
  grpc_slice slice; /* refcounted by gRPC; each send's byte buffer takes a ref */
};

rpc_shared_message *rpc_shared_message_new(const ProtobufCMessage *msg) {
  rpc_shared_message *m = malloc(sizeof *m);
  if (!m) return NULL;
  size_t len = protobuf_c_message_get_packed_size(msg);
  m->slice = grpc_slice_malloc(len);
  protobuf_c_message_pack(msg, GRPC_SLICE_START_PTR(m->slice));
  return m;
}

rpc_shared_message *rpc_shared_message_from_bytes(const void *data, size_t len) {
  rpc_shared_message *m = malloc(sizeof *m);
  if (!m) return NULL;
  m->slice = grpc_slice_from_copied_buffer(data, len);
  return m;
}

size_t rpc_shared_message_size(const rpc_shared_message *m) {
  return GRPC_SLICE_LENGTH(m->slice);
}

const unsigned char *rpc_shared_message_data(const rpc_shared_message *m, size_t *len) {
  *len = GRPC_SLICE_LENGTH(m->slice);
  return GRPC_SLICE_START_PTR(m->slice);
}

void rpc_shared_message_free(rpc_shared_message *m) {
  if (!m) return;
  grpc_slice_unref(m->slice);
  free(m);
}

int rpc_call_send_shared(rpc_call *c, const rpc_shared_message *m) {
  grpc_slice s = m->slice;
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1); /* refs the slice */
  return send_buffer(c, bb, GRPC_SLICE_LENGTH(m->slice));
}

rpc_shared_message *rpc_shared_message_wrap(void *data, size_t len, void (*destroy)(void *)) {
  rpc_shared_message *m = malloc(sizeof *m);
  if (!m) return NULL;
  /* The slice's refcount owns data from here; destroy runs at its last unref. */
  m->slice = grpc_slice_new(data, len, destroy);
  return m;
}

/* The byte buffer is one slice per piece: the prefix copied (inlined by gRPC
 * when it is tiny), each range a sub-slice that refs its message's slice (gRPC
 * copies ranges of a few bytes instead). Nothing is packed again. */
int rpc_call_send_prefixed(rpc_call *c, const void *prefix, size_t prefix_len,
                           const rpc_shared_range *parts, size_t nparts) {
  size_t total = prefix_len;
  for (size_t i = 0; i < nparts; i++) {
    size_t mlen = GRPC_SLICE_LENGTH(parts[i].m->slice);
    if (parts[i].offset > mlen || parts[i].len > mlen - parts[i].offset) return -ERANGE;
    total += parts[i].len;
  }
  if ((int64_t)total > c->srv->opts.max_send_message_bytes) return -EINVAL;
  grpc_slice stack[17];
  size_t n = nparts + (prefix_len ? 1 : 0);
  grpc_slice *slices = n <= 17 ? stack : malloc(n * sizeof(*slices));
  if (!slices) return -ENOMEM;
  size_t k = 0;
  if (prefix_len) slices[k++] = grpc_slice_from_copied_buffer(prefix, prefix_len);
  for (size_t i = 0; i < nparts; i++)
    slices[k++] = grpc_slice_sub(parts[i].m->slice, parts[i].offset, parts[i].offset + parts[i].len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(slices, k); /* refs each slice */
  for (size_t i = 0; i < k; i++) grpc_slice_unref(slices[i]);
  if (slices != stack) free(slices);
  return send_buffer(c, bb, total);
}

static int finish_common(rpc_call *c, grpc_status_code code, char *message_take, void *details_take,
                         size_t details_len, bool by_handler) {
  pthread_mutex_lock(&c->mu);
  int rc = finish_locked(c, code, message_take, details_take, details_len, by_handler);
  pthread_mutex_unlock(&c->mu);
  return rc;
}

int rpc_call_finish(rpc_call *c, grpc_status_code code, const char *fmt, ...) {
  char *m = NULL;
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&m, fmt, ap) < 0) m = NULL;
    va_end(ap);
  }
  return finish_common(c, code, m, NULL, 0, true);
}

int rpc_call_finish_details(rpc_call *c, grpc_status_code code, const char *message,
                            const void *details, size_t details_len) {
  void *d = NULL;
  if (details && details_len) {
    d = malloc(details_len);
    if (d) memcpy(d, details, details_len);
  }
  return finish_common(c, code, message ? strdup(message) : NULL, d, d ? details_len : 0, true);
}

/* ---------------------------------------------------------------- event handlers */

static void fire_cancel(rpc_call *c) {
  void (*fn)(rpc_call *, void *) = NULL;
  void *arg = NULL;
  pthread_mutex_lock(&c->mu);
  if (c->closed && !c->handler_finished && !c->cancel_fired && c->cancel_fn) {
    c->cancel_fired = true;
    fn = c->cancel_fn;
    arg = c->cancel_arg;
  }
  pthread_mutex_unlock(&c->mu);
  if (fn) fn(c, arg);
}

static void release_inflight_locked(rpc_call *c) {
  if (c->inflight_message) {
    grpc_byte_buffer_destroy(c->inflight_message);
    c->inflight_message = NULL;
  }
  if (c->inflight_has_status_slice) {
    grpc_slice_unref(c->inflight_status_slice);
    c->inflight_has_status_slice = false;
  }
  c->send_in_flight = false;
}

static void on_recv_close(rpc_call *c, bool ok) {
  pthread_mutex_lock(&c->mu);
  if (c->folded_reply) {
    /* The unary reply batch: its send part is done too. */
    c->folded_reply = false;
    release_inflight_locked(c);
  }
  c->closed = true;
  if (c->recv_close_cancelled || !ok) {
    /* Nothing more will reach the client: drop queued messages now, and tell a
     * handler that has not finished the call. */
    rpc_sendq_clear(&c->queue);
    c->want_writable = false;
    c->cancelled = true;
    record_handled(c, rpc_call_deadline_passed(c) ? GRPC_STATUS_DEADLINE_EXCEEDED
                                                   : GRPC_STATUS_CANCELLED);
  }
  pthread_mutex_unlock(&c->mu);
  fire_cancel(c);
}

static void on_send_done(rpc_call *c, bool ok) {
  void (*writable)(rpc_call *, void *) = NULL;
  void *warg = NULL;
  pthread_mutex_lock(&c->mu);
  release_inflight_locked(c);
  if (!ok) {
    /* The call is broken (cancelled, or the peer went away). */
    rpc_sendq_clear(&c->queue);
    if (!c->finish_requested) c->cancelled = true;
  } else {
    try_start_send_locked(c);
    if (c->want_writable && c->queue.count <= c->queue.max_messages / 2 && c->writable_fn &&
        !c->finish_requested) {
      c->want_writable = false;
      writable = c->writable_fn;
      warg = c->writable_arg;
    }
  }
  pthread_mutex_unlock(&c->mu);
  if (writable) writable(c, warg);
}

static void start_recv_message(rpc_call *c) {
  grpc_op op;
  memset(&op, 0, sizeof(op));
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->recv_buffer;
  rpc_call_ref(c);
  if (gated_start_batch(c->srv, c->call, &op, 1, &c->recv_msg_tag) != GRPC_CALL_OK) {
    LOG_ERROR("rpc: start RECV_MESSAGE failed", "method", rpc_call_method(c));
    atomic_fetch_sub(&c->refs, 1);
  }
}

static void on_recv_message(rpc_call *c, bool ok) {
  grpc_byte_buffer *bb = c->recv_buffer;
  c->recv_buffer = NULL;
  const rpc_method_entry *m = c->method;
  if (!ok || !bb) {
    if (bb) grpc_byte_buffer_destroy(bb);
    /* The end of the client's messages is either its half-close or a cancel
     * (RST_STREAM, deadline). A cancelled upload must never look complete to the
     * handler: it hears of it through its cancel callback instead. */
    bool failed = !ok || grpc_call_failed_before_recv_message(c->call);
    pthread_mutex_lock(&c->mu);
    if (failed) c->cancelled = true;
    bool live = !c->cancelled;
    pthread_mutex_unlock(&c->mu);
    if (live) m->handler.on_half_close(c, m->ctx);
    return;
  }
  ProtobufCMessage *msg = rpc_codec_decode(m->input, bb);
  grpc_byte_buffer_destroy(bb);
  if (!msg) {
    char *text = NULL;
    if (asprintf(&text, "%s: cannot decode message as %s", m->path, m->input->name) < 0) text = NULL;
    finish_common(c, GRPC_STATUS_INVALID_ARGUMENT, text, NULL, 0, false);
    return;
  }
  m->handler.on_message(c, msg, m->ctx);
  protobuf_c_message_free_unpacked(msg, NULL);
  pthread_mutex_lock(&c->mu);
  bool more = !c->cancelled && !c->finish_requested;
  if (more && c->reads_paused) {
    c->read_parked = true;
    more = false;
  }
  pthread_mutex_unlock(&c->mu);
  if (more) start_recv_message(c);
}

void rpc_call_pause_reads(rpc_call *c) {
  pthread_mutex_lock(&c->mu);
  c->reads_paused = true;
  pthread_mutex_unlock(&c->mu);
}

void rpc_call_resume_reads(rpc_call *c) {
  pthread_mutex_lock(&c->mu);
  c->reads_paused = false;
  bool start = c->read_parked && !c->cancelled && !c->finish_requested;
  c->read_parked = false;
  pthread_mutex_unlock(&c->mu);
  if (start) start_recv_message(c);
}

static void dispatch_unknown(rpc_call *c, grpc_call_details *details) {
  c->unknown_path = rpc_slice_to_cstr(details->method);
  pthread_mutex_lock(&c->mu);
  c->in_handler = true;
  char *m = NULL;
  if (asprintf(&m, "unknown method %s", c->unknown_path ? c->unknown_path : "?") < 0) m = NULL;
  finish_locked(c, GRPC_STATUS_UNIMPLEMENTED, m, NULL, 0, true);
  c->in_handler = false;
  pthread_mutex_unlock(&c->mu);
}

static void dispatch(rpc_call *c, grpc_byte_buffer *payload) {
  rpc_method_entry *m = c->method;
  rpc_kind kind = m->handler.kind;
  if (kind == RPC_UNARY || kind == RPC_SERVER_STREAMING) {
    ProtobufCMessage *req = payload ? rpc_codec_decode(m->input, payload) : NULL;
    if (payload) grpc_byte_buffer_destroy(payload);
    pthread_mutex_lock(&c->mu);
    if (kind == RPC_SERVER_STREAMING) start_recv_close_locked(c);
    c->in_handler = true;
    pthread_mutex_unlock(&c->mu);
    if (!req) {
      rpc_call_finish(c, GRPC_STATUS_INVALID_ARGUMENT, "%s: %s", m->path,
                      payload ? "cannot decode request" : "request message missing");
    } else {
      c->request = req;
      m->handler.on_request(c, req, m->ctx);
      if (c->request) protobuf_c_message_free_unpacked(c->request, NULL);
      c->request = NULL;
    }
    pthread_mutex_lock(&c->mu);
    c->in_handler = false;
    start_recv_close_locked(c); /* no-op when the reply already folded it in */
    pthread_mutex_unlock(&c->mu);
    return;
  }
  pthread_mutex_lock(&c->mu);
  start_recv_close_locked(c);
  pthread_mutex_unlock(&c->mu);
  if (m->handler.on_start) m->handler.on_start(c, m->ctx);
  pthread_mutex_lock(&c->mu);
  bool more = !c->cancelled && !c->finish_requested;
  pthread_mutex_unlock(&c->mu);
  if (more) start_recv_message(c);
}

static void on_request(rpc_slot *s, bool ok) {
  rpc_server *srv = s->srv;
  if (!ok) {
    /* Shutdown: the core fails outstanding accepts. The slot stays in all_slots
     * and is freed with the server. */
    grpc_metadata_array_destroy(&s->md);
    if (!s->method) grpc_call_details_destroy(&s->details);
    return;
  }
  rpc_call *c = call_new(s);
  grpc_call *core_call = s->call;
  grpc_byte_buffer *payload = s->payload;
  grpc_call_details details;
  if (!s->method) details = s->details;
  if (!atomic_load(&srv->shutting_down)) arm_slot(s);
  if (!c) {
    grpc_call_cancel_with_status(core_call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory", NULL);
    grpc_call_unref(core_call);
    if (payload) grpc_byte_buffer_destroy(payload);
    if (!s->method) grpc_call_details_destroy(&details);
    return;
  }
  if (c->method) {
    dispatch(c, payload);
  } else {
    dispatch_unknown(c, &details);
    grpc_call_details_destroy(&details);
  }
  call_unref(c); /* the dispatch reference */
}

static void *cq_thread(void *arg) {
  grpc_completion_queue *cq = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *tag = ev.tag;
    bool ok = ev.success != 0;
    switch (tag->kind) {
      case RPC_TAG_REQUEST:
        on_request((rpc_slot *)tag, ok);
        break;
      case RPC_TAG_RECV_CLOSE: {
        rpc_call *c = RPC_CONTAINER_OF(tag, rpc_call, recv_close_tag);
        on_recv_close(c, ok);
        call_unref(c);
        break;
      }
      case RPC_TAG_SEND: {
        rpc_call *c = RPC_CONTAINER_OF(tag, rpc_call, send_tag);
        on_send_done(c, ok);
        call_unref(c);
        break;
      }
      case RPC_TAG_RECV_MESSAGE: {
        rpc_call *c = RPC_CONTAINER_OF(tag, rpc_call, recv_msg_tag);
        on_recv_message(c, ok);
        call_unref(c);
        break;
      }
      case RPC_TAG_SHUTDOWN: {
        rpc_server *srv = RPC_CONTAINER_OF(tag, rpc_server, shutdown_tag);
        pthread_mutex_lock(&srv->mu);
        srv->shutdown_notified = true;
        pthread_cond_broadcast(&srv->cond);
        pthread_mutex_unlock(&srv->mu);
        break;
      }
      default:
        LOG_ERROR("rpc: unexpected completion-queue tag", "kind", log_int(tag->kind));
        break;
    }
  }
  return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

int rpc_server_start(rpc_server *srv, keel_error *err) {
  if (srv->started) return keel_error_set(err, EBUSY, "start %s: already started", srv->name);
  srv->reflection = rpc_reflection_create(srv, err);
  if (!srv->reflection) return keel_error_wrap(err, "start %s", srv->name);
  /* Reflection first, so health marks every service, reflection included, SERVING. */
  if (rpc_reflection_register(srv->reflection, srv, err) < 0 ||
      rpc_health_register(srv->health, srv, err) < 0)
    return keel_error_wrap(err, "start %s", srv->name);
  /* Kinds are declared by hand (protobuf-c descriptors lack them); the .proto's
   * own descriptors settle any disagreement before a client can see it. The
   * reflection v1 alias is served with v1alpha's wire-identical types. */
  for (size_t i = 0; i < srv->nmethods; i++) {
    rpc_method_entry *e = srv->methods[i];
    int declared = rpc_reflection_method_kind(srv->reflection, e->path);
    if (declared >= 0 && declared != (int)e->handler.kind)
      return keel_error_set(err, EINVAL, "start %s: method %s declared %s but its .proto says %s",
                            srv->name, e->path, rpc_kind_name(e->handler.kind),
                            rpc_kind_name((rpc_kind)declared));
  }
  for (size_t i = 0; i < srv->nmethods; i++) {
    rpc_method_entry *e = srv->methods[i];
    bool with_payload = e->handler.kind == RPC_UNARY || e->handler.kind == RPC_SERVER_STREAMING;
    e->registered = grpc_server_register_method(
        srv->server, e->path, NULL,
        with_payload ? GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER : GRPC_SRM_PAYLOAD_NONE, 0);
    if (!e->registered) return keel_error_set(err, EINVAL, "start %s: cannot register %s", srv->name, e->path);
    method_metrics_init(srv, e);
  }
  grpc_server_start(srv->server);
  srv->started = true;
  for (int q = 0; q < srv->opts.cq_threads; q++) {
    for (size_t i = 0; i < srv->nmethods; i++)
      for (int k = 0; k < srv->opts.requests_per_method; k++)
        arm_slot(new_slot(srv, srv->methods[i], q));
    for (int k = 0; k < 2; k++) arm_slot(new_slot(srv, NULL, q));
  }
  for (int q = 0; q < srv->opts.cq_threads; q++) {
    if (pthread_create(&srv->threads[q], NULL, cq_thread, srv->cqs[q]) != 0) {
      keel_error_set(err, EAGAIN, "start %s: cannot create completion-queue thread", srv->name);
      rpc_server_shutdown(srv);
      return -EAGAIN;
    }
    srv->nthreads_started++;
  }
  return 0;
}

/* Ends every open stream whose handler has not: UNAVAILABLE after what is queued. */
static void finish_open_streams(rpc_server *srv) {
  pthread_mutex_lock(&srv->mu);
  size_t n = 0;
  rpc_call **calls = malloc(sizeof(*calls) * (srv->nlive + 1));
  for (rpc_call *c = srv->live; c && calls; c = c->live_next) {
    if (c->method && c->method->handler.kind != RPC_UNARY && call_try_ref(c)) calls[n++] = c;
  }
  pthread_mutex_unlock(&srv->mu);
  for (size_t i = 0; i < n; i++) {
    finish_common(calls[i], GRPC_STATUS_UNAVAILABLE, strdup("server shutting down"), NULL, 0, false);
    call_unref(calls[i]);
  }
  free(calls);
}

static bool wait_until(rpc_server *srv, bool *flag, int64_t deadline_ms) {
  struct timespec ts;
  pthread_mutex_lock(&srv->mu);
  while (!*flag) {
    int64_t left = deadline_ms - rpc_now_ms();
    if (deadline_ms != INT64_MAX && left <= 0) break;
    if (deadline_ms == INT64_MAX) {
      pthread_cond_wait(&srv->cond, &srv->mu);
    } else {
      clock_gettime(CLOCK_REALTIME, &ts);
      int64_t ns = ts.tv_nsec + (left % 1000) * 1000000;
      ts.tv_sec += left / 1000 + ns / 1000000000;
      ts.tv_nsec = ns % 1000000000;
      pthread_cond_timedwait(&srv->cond, &srv->mu, &ts);
    }
  }
  bool v = *flag;
  pthread_mutex_unlock(&srv->mu);
  return v;
}

void rpc_server_shutdown(rpc_server *srv) {
  bool expected = false;
  if (!atomic_compare_exchange_strong(&srv->shutting_down, &expected, true)) {
    /* Someone else is shutting down: wait for them to finish. */
    if (srv->started) wait_until(srv, &srv->shutdown_done, INT64_MAX);
    return;
  }
  if (!srv->started) {
    srv->shutdown_done = true;
    return;
  }
  int64_t deadline = rpc_now_ms() + srv->opts.shutdown_grace_ms;
  LOG_INFO("rpc: shutting down", "server", srv->name, "grace_ms", log_int(srv->opts.shutdown_grace_ms));
  rpc_health_begin_shutdown(srv->health);
  for (size_t i = 0; i < srv->nhooks; i++) srv->hooks[i].fn(srv, srv->hooks[i].arg);
  srv->shutdown_tag.kind = RPC_TAG_SHUTDOWN;
  grpc_server_shutdown_and_notify(srv->server, srv->cqs[0], &srv->shutdown_tag);
  finish_open_streams(srv);
  /* The core's notification also waits for clients to drop their connections;
   * once no call is open there is nothing left to wait for, so disconnect them. */
  pthread_mutex_lock(&srv->mu);
  while (!srv->shutdown_notified && srv->nlive > 0 && rpc_now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t left = deadline - rpc_now_ms();
    if (left > 10) left = 10; /* nlive drops without a broadcast from every path */
    ts.tv_nsec += left * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&srv->cond, &srv->mu, &ts);
  }
  bool idle = srv->nlive == 0;
  pthread_mutex_unlock(&srv->mu);
  if (idle) grpc_server_cancel_all_calls(srv->server);
  if (!wait_until(srv, &srv->shutdown_notified, deadline)) {
    LOG_WARN("rpc: grace period over, cancelling calls still open", "server", srv->name,
             "open", log_int((long long)srv->nlive));
    grpc_server_cancel_all_calls(srv->server);
    wait_until(srv, &srv->shutdown_notified, INT64_MAX);
  }
  /* Every call is over, but completions can still chain new batches (a send
   * completing after its client left starts the next one): close the gate first
   * so nothing starts on a queue being shut down. Calls may still be referenced
   * by handlers (a timer about to fire); they only see -ECANCELED from now on. */
  pthread_rwlock_wrlock(&srv->batch_gate);
  srv->gate_closed = true;
  pthread_rwlock_unlock(&srv->batch_gate);
  for (int q = 0; q < srv->opts.cq_threads; q++) grpc_completion_queue_shutdown(srv->cqs[q]);
  for (int q = 0; q < srv->nthreads_started; q++) pthread_join(srv->threads[q], NULL);
  srv->nthreads_started = 0;
  pthread_mutex_lock(&srv->mu);
  srv->shutdown_done = true;
  pthread_cond_broadcast(&srv->cond);
  pthread_mutex_unlock(&srv->mu);
  LOG_INFO("rpc: shut down", "server", srv->name);
}

void rpc_block_shutdown_signals(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  /* A peer closing a socket must not kill the daemon. */
  signal(SIGPIPE, SIG_IGN);
}

int rpc_server_run(rpc_server *srv) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  if (sigwait(&set, &sig) != 0) return -errno;
  LOG_INFO("rpc: signal received", "server", srv->name, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  rpc_server_shutdown(srv);
  return 0;
}

void rpc_server_destroy(rpc_server *srv) {
  if (!srv) return;
  if (srv->started && !srv->shutdown_done) rpc_server_shutdown(srv);
  /* Handlers must drop their call references before this point (after
   * rpc_server_shutdown their timers and producers can only see -ECANCELED). */
  pthread_mutex_lock(&srv->mu);
  int64_t deadline = rpc_now_ms() + 5000;
  while (srv->nlive > 0 && rpc_now_ms() < deadline) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 10 * 1000000;
    if (ts.tv_nsec >= 1000000000) {
      ts.tv_sec++;
      ts.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait(&srv->cond, &srv->mu, &ts);
  }
  size_t leaked = srv->nlive;
  pthread_mutex_unlock(&srv->mu);
  if (leaked) LOG_ERROR("rpc: calls still referenced at destroy", "server", srv->name, "calls", log_int((long long)leaked));
  if (!srv->started) {
    /* The core insists on a shutdown even for a server that never started
     * (its listeners are bound); nobody polls, so wait for the tag here. */
    srv->shutdown_tag.kind = RPC_TAG_SHUTDOWN;
    grpc_server_shutdown_and_notify(srv->server, srv->cqs[0], &srv->shutdown_tag);
    for (;;) {
      grpc_event ev = grpc_completion_queue_next(srv->cqs[0], gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
      if (ev.type != GRPC_OP_COMPLETE || ev.tag == &srv->shutdown_tag) break;
    }
    for (int q = 0; q < srv->opts.cq_threads; q++) grpc_completion_queue_shutdown(srv->cqs[q]);
  }
  for (int q = 0; q < srv->opts.cq_threads; q++) {
    /* Drain anything left (never-started servers) before destroying. */
    while (grpc_completion_queue_next(srv->cqs[q], gpr_inf_past(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(srv->cqs[q]);
  }
  grpc_server_destroy(srv->server);
  for (rpc_slot *s = srv->all_slots; s;) {
    rpc_slot *next = s->next_all;
    free(s);
    s = next;
  }
  for (size_t i = 0; i < srv->nmethods; i++) {
    free(srv->methods[i]->path);
    free(srv->methods[i]);
  }
  free(srv->methods);
  for (size_t i = 0; i < srv->nservices; i++) free(srv->services[i]);
  free(srv->services);
  free(srv->descriptor_sets);
  free(srv->hooks);
  if (srv->reflection) rpc_reflection_destroy(srv->reflection);
  rpc_health_destroy(srv->health);
  free(srv->cqs);
  free(srv->threads);
  pthread_cond_destroy(&srv->cond);
  pthread_mutex_destroy(&srv->mu);
  pthread_rwlock_destroy(&srv->batch_gate);
  free(srv->name);
  free(srv);
  rpc_library_shutdown();
}
