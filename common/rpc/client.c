/* common/rpc/client.c — the client half of the runtime (contract in rpc.h).
 *
 * A channel keeps one core channel per endpoint and an index of the current one.
 * A call that ends UNAVAILABLE moves the index on (compare-and-swap, so many
 * failing calls move it once); idempotent calls then retry there after an
 * exponential backoff with full jitter, as long as their deadline allows.
 *
 * Synchronous unary calls run one batch on a private pluck queue (as gRPC's C++
 * blocking calls do) and sleep between retries on the caller's thread. Async
 * unary calls and streams complete on the channel's own completion queue and
 * threads; async retries wait on a sched timer, never on a queue thread.
 *
 * Streams: one batch sends initial metadata (and for server-streaming calls the
 * request and half-close), one waits for the status, one read is outstanding at
 * a time, and writes go one at a time through the same bounded queue as the
 * server (sendq.h). on_close runs once both the status and the end of the
 * messages are in, so no message is delivered after it.
 */
#include <errno.h>
#include <limits.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log/log.h"
#include "common/rpc/codec.h"
#include "common/rpc/internal.h"
#include "common/rpc/rpc.h"
#include "common/rpc/sendq.h"
#include "common/sched/sched.h"

struct rpc_channel {
  rpc_channel_options opts;
  char **endpoints;
  size_t nendpoints;
  grpc_channel **channels;
  atomic_size_t current;
  grpc_completion_queue *cq;
  pthread_t *threads;
  int nthreads;
  sched *timers;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  size_t active; /* async calls and streams not yet completed */
  struct client_op *ops; /* the same, for cancellation at destroy */
  bool destroying;
};

/* What async unary calls and streams share: membership in the channel's list. */
typedef struct client_op {
  struct client_op *prev, *next;
  grpc_call *call; /* NULL between retry attempts */
  bool is_stream;  /* the op of an rpc_stream (its read may be parked) */
} client_op;

/* ---------------------------------------------------------------- helpers */

void rpc_status_clear(rpc_status *st) {
  if (!st) return;
  free(st->message);
  for (size_t i = 0; i < st->ntrailing; i++) {
    free((char *)st->trailing[i].key);
    free((char *)st->trailing[i].value);
  }
  free(st->trailing);
  memset(st, 0, sizeof(*st));
}

const char *rpc_status_trailer(const rpc_status *st, const char *key, size_t *len) {
  for (size_t i = 0; i < st->ntrailing; i++) {
    if (strcmp(st->trailing[i].key, key) == 0) {
      if (len) *len = st->trailing[i].value_len;
      return st->trailing[i].value;
    }
  }
  return NULL;
}

static void status_fill(rpc_status *st, grpc_status_code code, grpc_slice details,
                        const grpc_metadata_array *trailing) {
  memset(st, 0, sizeof(*st));
  st->code = code;
  st->message = rpc_slice_to_cstr(details);
  if (trailing && trailing->count) {
    st->trailing = calloc(trailing->count, sizeof(*st->trailing));
    if (st->trailing) {
      for (size_t i = 0; i < trailing->count; i++) {
        st->trailing[i].key = rpc_slice_to_cstr(trailing->metadata[i].key);
        st->trailing[i].value = rpc_slice_to_cstr(trailing->metadata[i].value);
        st->trailing[i].value_len = GRPC_SLICE_LENGTH(trailing->metadata[i].value);
      }
      st->ntrailing = trailing->count;
    }
  }
}

static void status_set(rpc_status *st, grpc_status_code code, const char *message) {
  memset(st, 0, sizeof(*st));
  st->code = code;
  st->message = strdup(message);
}

static size_t pick_endpoint(rpc_channel *ch) { return atomic_load(&ch->current) % ch->nendpoints; }

static void endpoint_failed(rpc_channel *ch, size_t idx) {
  size_t expected = idx;
  size_t next = (idx + 1) % ch->nendpoints;
  if (ch->nendpoints > 1 && atomic_compare_exchange_strong(&ch->current, &expected, next))
    LOG_INFO("rpc: endpoint unavailable, failing over", "from", ch->endpoints[idx], "to",
             ch->endpoints[next]);
}

const char *rpc_channel_current_endpoint(const rpc_channel *ch) {
  return ch->endpoints[atomic_load(&((rpc_channel *)ch)->current) % ch->nendpoints];
}

/* Full jitter: a uniform wait in [backoff/2, backoff], so retrying clients spread out. */
static int64_t jittered(int64_t backoff_ms) {
  unsigned seed = (unsigned)rpc_now_ms() ^ (unsigned)(uintptr_t)&backoff_ms;
  return backoff_ms / 2 + (int64_t)(rand_r(&seed) % (unsigned)(backoff_ms / 2 + 1));
}

static grpc_metadata *metadata_to_core(const rpc_call_options *opts) {
  if (!opts || opts->nmetadata == 0) return NULL;
  grpc_metadata *md = calloc(opts->nmetadata, sizeof(*md));
  if (!md) return NULL;
  for (size_t i = 0; i < opts->nmetadata; i++) {
    md[i].key = grpc_slice_from_copied_string(opts->metadata[i].key);
    md[i].value = grpc_slice_from_copied_buffer(opts->metadata[i].value, opts->metadata[i].value_len);
  }
  return md;
}

static void metadata_free(grpc_metadata *md, size_t n) {
  if (!md) return;
  for (size_t i = 0; i < n; i++) {
    grpc_slice_unref(md[i].key);
    grpc_slice_unref(md[i].value);
  }
  free(md);
}

static uint32_t initial_md_flags(const rpc_call_options *opts) {
  return (opts && opts->wait_for_ready)
             ? GRPC_INITIAL_METADATA_WAIT_FOR_READY | GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
             : 0;
}

/* Links op into the channel's open operations. Returns false when the channel
 * is being destroyed: destroy already canceled what it found, so an op started
 * now (from a callback) must cancel itself or it would hold destroy until its
 * deadline. A call already created is canceled here. */
static bool op_link(rpc_channel *ch, client_op *op) {
  pthread_mutex_lock(&ch->mu);
  op->prev = NULL;
  op->next = ch->ops;
  if (ch->ops) ch->ops->prev = op;
  ch->ops = op;
  ch->active++;
  bool open = !ch->destroying;
  if (!open && op->call) grpc_call_cancel(op->call, NULL);
  pthread_mutex_unlock(&ch->mu);
  return open;
}

static void op_unlink(rpc_channel *ch, client_op *op) {
  pthread_mutex_lock(&ch->mu);
  if (op->prev) op->prev->next = op->next;
  else ch->ops = op->next;
  if (op->next) op->next->prev = op->prev;
  ch->active--;
  if (ch->active == 0) pthread_cond_broadcast(&ch->cond);
  pthread_mutex_unlock(&ch->mu);
}

/* ---------------------------------------------------------------- channel */

static void *channel_thread(void *arg);

rpc_channel *rpc_channel_create(const rpc_channel_options *opts, keel_error *err) {
  if (!opts || opts->nendpoints == 0) {
    keel_error_set(err, EINVAL, "create channel: no endpoints");
    return NULL;
  }
  rpc_channel *ch = calloc(1, sizeof(*ch));
  ch->opts = *opts;
  if (ch->opts.max_message_bytes <= 0) ch->opts.max_message_bytes = RPC_DEFAULT_MAX_MESSAGE_BYTES;
  if (ch->opts.retry_max_attempts <= 0) ch->opts.retry_max_attempts = 5;
  if (ch->opts.retry_initial_backoff_ms <= 0) ch->opts.retry_initial_backoff_ms = 50;
  if (ch->opts.retry_max_backoff_ms <= 0) ch->opts.retry_max_backoff_ms = 2000;
  if (ch->opts.cq_threads <= 0) ch->opts.cq_threads = 1;
  ch->opts.endpoints = NULL;
  ch->opts.tls = NULL;
  pthread_mutex_init(&ch->mu, NULL);
  pthread_cond_init(&ch->cond, NULL);
  rpc_library_init();

  grpc_channel_credentials *creds = NULL;
  if (opts->tls) {
    char *ca = NULL, *cert = NULL, *key = NULL;
    if ((opts->tls->ca_file && rpc_read_file(opts->tls->ca_file, &ca, err) < 0) ||
        (opts->tls->cert_file && rpc_read_file(opts->tls->cert_file, &cert, err) < 0) ||
        (opts->tls->key_file && rpc_read_file(opts->tls->key_file, &key, err) < 0)) {
      free(ca);
      free(cert);
      keel_error_wrap(err, "create channel: TLS");
      pthread_mutex_destroy(&ch->mu);
      pthread_cond_destroy(&ch->cond);
      free(ch);
      rpc_library_shutdown();
      return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_credentials_create(ca, (cert && key) ? &pair : NULL, NULL, NULL);
    free(ca);
    free(cert);
    free(key);
  } else {
    creds = grpc_insecure_credentials_create();
  }

  grpc_arg args[4];
  size_t nargs = 0;
  int max_bytes = ch->opts.max_message_bytes > INT_MAX ? INT_MAX : (int)ch->opts.max_message_bytes;
  int64_t recv = ch->opts.max_receive_message_bytes;
  int max_recv = recv == 0 ? max_bytes : recv < 0 || recv > INT_MAX ? INT_MAX : (int)recv;
  args[nargs].type = GRPC_ARG_INTEGER;
  args[nargs].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
  args[nargs++].value.integer = max_recv;
  args[nargs].type = GRPC_ARG_INTEGER;
  args[nargs].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
  args[nargs++].value.integer = max_bytes;
  /* gRPC shares subchannels (and their reconnect backoff) process-wide by
   * default: a dead endpoint another channel keeps dialing would hold this
   * channel's failover behind that backoff. Each channel keeps its own. */
  args[nargs].type = GRPC_ARG_INTEGER;
  args[nargs].key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL;
  args[nargs++].value.integer = 1;
  if (opts->tls && opts->tls->server_name_override) {
    args[nargs].type = GRPC_ARG_STRING;
    args[nargs].key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG;
    args[nargs++].value.string = (char *)opts->tls->server_name_override;
  }
  grpc_channel_args cargs = {.num_args = nargs, .args = args};

  ch->nendpoints = opts->nendpoints;
  ch->endpoints = calloc(ch->nendpoints, sizeof(*ch->endpoints));
  ch->channels = calloc(ch->nendpoints, sizeof(*ch->channels));
  for (size_t i = 0; i < ch->nendpoints; i++) {
    ch->endpoints[i] = strdup(opts->endpoints[i]);
    ch->channels[i] = grpc_channel_create(ch->endpoints[i], creds, &cargs);
  }
  grpc_channel_credentials_release(creds);
  ch->cq = grpc_completion_queue_create_for_next(NULL);
  ch->timers = sched_create(1, "rpc-retry");
  ch->threads = calloc((size_t)ch->opts.cq_threads, sizeof(*ch->threads));
  for (int i = 0; i < ch->opts.cq_threads; i++) {
    if (pthread_create(&ch->threads[i], NULL, channel_thread, ch) != 0) break;
    ch->nthreads++;
  }
  return ch;
}

/* ---------------------------------------------------------------- sync unary */

static void unary_once(rpc_channel *ch, size_t idx, const char *method, grpc_byte_buffer *req,
                       const ProtobufCMessageDescriptor *resp_desc, ProtobufCMessage **resp,
                       const rpc_call_options *opts, gpr_timespec deadline, rpc_status *st) {
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  grpc_slice method_slice = grpc_slice_from_static_string(method);
  grpc_call *call = grpc_channel_create_call(ch->channels[idx], NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                             method_slice, NULL, deadline, NULL);
  grpc_metadata *md = metadata_to_core(opts);
  size_t nmd = md ? opts->nmetadata : 0;
  grpc_metadata_array init_md, trail_md;
  grpc_metadata_array_init(&init_md);
  grpc_metadata_array_init(&trail_md);
  grpc_byte_buffer *send = grpc_byte_buffer_copy(req);
  grpc_byte_buffer *recv = NULL;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = initial_md_flags(opts);
  ops[0].data.send_initial_metadata.count = nmd;
  ops[0].data.send_initial_metadata.metadata = md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &trail_md;
  ops[5].data.recv_status_on_client.status = &code;
  ops[5].data.recv_status_on_client.status_details = &details;
  grpc_call_error e = grpc_call_start_batch(call, ops, 6, call, NULL);
  if (e == GRPC_CALL_OK) {
    grpc_completion_queue_pluck(cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    status_fill(st, code, details, &trail_md);
  } else {
    status_set(st, GRPC_STATUS_INTERNAL, "cannot start call");
  }
  if (st->code == GRPC_STATUS_OK) {
    if (!recv) {
      rpc_status_clear(st);
      status_set(st, GRPC_STATUS_INTERNAL, "server sent no response message");
    } else {
      *resp = rpc_codec_decode(resp_desc, recv);
      if (!*resp) {
        rpc_status_clear(st);
        char m[256];
        snprintf(m, sizeof(m), "cannot decode response as %s", resp_desc->name);
        status_set(st, GRPC_STATUS_INTERNAL, m);
      }
    }
  }
  if (recv) grpc_byte_buffer_destroy(recv);
  grpc_byte_buffer_destroy(send);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&init_md);
  grpc_metadata_array_destroy(&trail_md);
  metadata_free(md, nmd);
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  grpc_completion_queue_destroy(cq);
}

int rpc_unary(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
              const ProtobufCMessageDescriptor *response_desc, ProtobufCMessage **response,
              const rpc_call_options *opts, rpc_status *st) {
  *response = NULL;
  memset(st, 0, sizeof(*st));
  int64_t timeout = opts ? opts->timeout_ms : 0;
  int64_t deadline_ms = timeout > 0 ? rpc_now_ms() + timeout : 0;
  gpr_timespec deadline = rpc_deadline_from_timeout(timeout);
  grpc_byte_buffer *req = rpc_codec_encode(request, NULL);
  int64_t backoff = ch->opts.retry_initial_backoff_ms;
  for (int attempt = 1;; attempt++) {
    size_t idx = pick_endpoint(ch);
    unary_once(ch, idx, method, req, response_desc, response, opts, deadline, st);
    if (st->code == GRPC_STATUS_OK) break;
    if (st->code == GRPC_STATUS_UNAVAILABLE) endpoint_failed(ch, idx);
    bool retry = opts && opts->idempotent && st->code == GRPC_STATUS_UNAVAILABLE &&
                 attempt < ch->opts.retry_max_attempts;
    int64_t wait = jittered(backoff);
    if (retry && deadline_ms && rpc_now_ms() + wait >= deadline_ms) retry = false;
    if (!retry) break;
    rpc_status_clear(st);
    usleep((useconds_t)wait * 1000);
    backoff = backoff * 2 > ch->opts.retry_max_backoff_ms ? ch->opts.retry_max_backoff_ms : backoff * 2;
  }
  grpc_byte_buffer_destroy(req);
  return st->code == GRPC_STATUS_OK ? 0 : -1;
}

/* ---------------------------------------------------------------- async unary */

typedef struct async_unary {
  rpc_tag tag;
  client_op op;
  rpc_channel *ch;
  char *method; /* owned: retries restart the call with it */
  grpc_byte_buffer *request;
  const ProtobufCMessageDescriptor *resp_desc;
  rpc_unary_done done;
  void *arg;
  bool idempotent;
  bool wait_for_ready;
  grpc_metadata *md;
  size_t nmd;
  gpr_timespec deadline;
  int64_t deadline_ms;
  int attempt;
  int64_t backoff;
  size_t idx;
  /* Per attempt. */
  grpc_byte_buffer *send;
  grpc_byte_buffer *recv;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code code;
  grpc_slice details;
} async_unary;

static void async_unary_free(async_unary *a) {
  grpc_byte_buffer_destroy(a->request);
  metadata_free(a->md, a->nmd);
  free(a->method);
  free(a);
}

static void async_unary_complete(async_unary *a, rpc_status *st) {
  ProtobufCMessage *resp = NULL;
  if (st->code == GRPC_STATUS_OK) {
    resp = a->recv ? rpc_codec_decode(a->resp_desc, a->recv) : NULL;
    if (!resp) {
      rpc_status_clear(st);
      status_set(st, GRPC_STATUS_INTERNAL,
                 a->recv ? "cannot decode response" : "server sent no response message");
    }
  }
  if (a->recv) grpc_byte_buffer_destroy(a->recv);
  a->recv = NULL;
  rpc_channel *ch = a->ch;
  a->done(a->arg, st, resp);
  rpc_status_clear(st);
  op_unlink(ch, &a->op);
  async_unary_free(a);
}

static int async_unary_start(async_unary *a) {
  rpc_channel *ch = a->ch;
  a->idx = pick_endpoint(ch);
  grpc_call *call = grpc_channel_create_call(ch->channels[a->idx], NULL, GRPC_PROPAGATE_DEFAULTS,
                                             ch->cq, grpc_slice_from_static_string(a->method), NULL,
                                             a->deadline, NULL);
  pthread_mutex_lock(&ch->mu);
  a->op.call = call;
  pthread_mutex_unlock(&ch->mu);
  grpc_metadata_array_init(&a->init_md);
  grpc_metadata_array_init(&a->trail_md);
  a->send = grpc_byte_buffer_copy(a->request);
  a->recv = NULL;
  a->code = GRPC_STATUS_UNKNOWN;
  a->details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof(ops));
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = a->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY |
                                         GRPC_INITIAL_METADATA_WAIT_FOR_READY_EXPLICITLY_SET
                                   : 0;
  ops[0].data.send_initial_metadata.count = a->nmd;
  ops[0].data.send_initial_metadata.metadata = a->md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = a->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &a->init_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &a->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &a->trail_md;
  ops[5].data.recv_status_on_client.status = &a->code;
  ops[5].data.recv_status_on_client.status_details = &a->details;
  if (grpc_call_start_batch(call, ops, 6, &a->tag, NULL) != GRPC_CALL_OK) {
    grpc_byte_buffer_destroy(a->send);
    grpc_metadata_array_destroy(&a->init_md);
    grpc_metadata_array_destroy(&a->trail_md);
    pthread_mutex_lock(&ch->mu);
    a->op.call = NULL;
    pthread_mutex_unlock(&ch->mu);
    grpc_call_unref(call);
    return -EIO;
  }
  return 0;
}

static void async_retry_fire(void *arg) {
  async_unary *a = arg;
  pthread_mutex_lock(&a->ch->mu);
  bool destroying = a->ch->destroying;
  pthread_mutex_unlock(&a->ch->mu);
  if (destroying || async_unary_start(a) < 0) {
    rpc_status st;
    status_set(&st, destroying ? GRPC_STATUS_CANCELLED : GRPC_STATUS_INTERNAL,
               destroying ? "channel closed" : "cannot start call");
    async_unary_complete(a, &st);
  }
}

static void async_retry_drop(void *arg) {
  async_unary *a = arg;
  rpc_status st;
  status_set(&st, GRPC_STATUS_CANCELLED, "channel closed");
  async_unary_complete(a, &st);
}

static void on_async_unary(async_unary *a, bool ok) {
  rpc_channel *ch = a->ch;
  rpc_status st;
  if (ok) status_fill(&st, a->code, a->details, &a->trail_md);
  else status_set(&st, GRPC_STATUS_INTERNAL, "call batch failed");
  grpc_slice_unref(a->details);
  grpc_metadata_array_destroy(&a->init_md);
  grpc_metadata_array_destroy(&a->trail_md);
  grpc_byte_buffer_destroy(a->send);
  pthread_mutex_lock(&ch->mu);
  grpc_call *call = a->op.call;
  a->op.call = NULL;
  bool destroying = ch->destroying;
  pthread_mutex_unlock(&ch->mu);
  grpc_call_unref(call);
  if (st.code == GRPC_STATUS_UNAVAILABLE) endpoint_failed(ch, a->idx);
  if (st.code == GRPC_STATUS_UNAVAILABLE && a->idempotent && !destroying &&
      a->attempt < ch->opts.retry_max_attempts) {
    int64_t wait = jittered(a->backoff);
    if (!a->deadline_ms || rpc_now_ms() + wait < a->deadline_ms) {
      a->attempt++;
      a->backoff = a->backoff * 2 > ch->opts.retry_max_backoff_ms ? ch->opts.retry_max_backoff_ms
                                                                   : a->backoff * 2;
      if (a->recv) grpc_byte_buffer_destroy(a->recv);
      a->recv = NULL;
      if (sched_after(ch->timers, wait, async_retry_fire, async_retry_drop, a) != 0) {
        rpc_status_clear(&st);
        return;
      }
    }
  }
  async_unary_complete(a, &st);
}

int rpc_unary_async(rpc_channel *ch, const char *method, const ProtobufCMessage *request,
                    const ProtobufCMessageDescriptor *response_desc, const rpc_call_options *opts,
                    rpc_unary_done done, void *arg) {
  async_unary *a = calloc(1, sizeof(*a));
  if (!a) return -ENOMEM;
  a->tag.kind = RPC_TAG_CLIENT_UNARY;
  a->ch = ch;
  a->method = strdup(method);
  a->request = rpc_codec_encode(request, NULL);
  a->resp_desc = response_desc;
  a->done = done;
  a->arg = arg;
  a->idempotent = opts && opts->idempotent;
  a->wait_for_ready = opts && opts->wait_for_ready;
  a->md = metadata_to_core(opts);
  a->nmd = a->md ? opts->nmetadata : 0;
  int64_t timeout = opts ? opts->timeout_ms : 0;
  a->deadline = rpc_deadline_from_timeout(timeout);
  a->deadline_ms = timeout > 0 ? rpc_now_ms() + timeout : 0;
  a->attempt = 1;
  a->backoff = ch->opts.retry_initial_backoff_ms;
  int rc = op_link(ch, &a->op) ? async_unary_start(a) : -ESHUTDOWN;
  if (rc < 0) {
    op_unlink(ch, &a->op);
    async_unary_free(a);
  }
  return rc;
}

/* ---------------------------------------------------------------- streams */

struct rpc_stream {
  rpc_tag start_tag, send_tag, recv_tag, status_tag;
  client_op op;
  rpc_channel *ch;
  size_t idx;
  grpc_call *call;
  rpc_kind kind;
  const ProtobufCMessageDescriptor *resp_desc;
  rpc_stream_callbacks cb;
  void *arg;
  pthread_mutex_t mu;
  atomic_int refs;
  rpc_sendq queue;
  bool send_in_flight;
  bool want_writable; /* a write hit -ENOBUFS: tell the producer when there is room */
  bool close_send_requested;
  bool close_send_started;
  bool status_received;
  bool reads_done;
  bool close_fired;
  bool cancelled;
  bool reads_paused;  /* rpc_stream_pause_reads: no new RECV_MESSAGE */
  bool read_parked;   /* a read is owed: started by rpc_stream_resume_reads */
  grpc_metadata *md;
  size_t nmd;
  grpc_byte_buffer *start_message;
  grpc_byte_buffer *inflight;
  grpc_byte_buffer *recv_bb;
  grpc_metadata_array init_md, trail_md;
  grpc_status_code code;
  grpc_slice details;
};

static void stream_unref(rpc_stream *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  rpc_sendq_destroy(&s->queue);
  metadata_free(s->md, s->nmd);
  if (s->start_message) grpc_byte_buffer_destroy(s->start_message);
  if (s->recv_bb) grpc_byte_buffer_destroy(s->recv_bb);
  grpc_metadata_array_destroy(&s->init_md);
  grpc_metadata_array_destroy(&s->trail_md);
  grpc_slice_unref(s->details);
  grpc_call_unref(s->call);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

static bool stream_batch(rpc_stream *s, grpc_op *ops, size_t n, rpc_tag *tag) {
  atomic_fetch_add(&s->refs, 1);
  if (grpc_call_start_batch(s->call, ops, n, tag, NULL) != GRPC_CALL_OK) {
    atomic_fetch_sub(&s->refs, 1);
    return false;
  }
  return true;
}

/* Next write or the half-close, one at a time. */
static void stream_pump_locked(rpc_stream *s) {
  if (s->send_in_flight || s->close_send_started || s->cancelled || s->status_received) return;
  grpc_op op;
  memset(&op, 0, sizeof(op));
  grpc_byte_buffer *bb = rpc_sendq_pop(&s->queue);
  if (bb) {
    op.op = GRPC_OP_SEND_MESSAGE;
    op.data.send_message.send_message = bb;
    s->inflight = bb;
  } else if (s->close_send_requested) {
    op.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    s->close_send_started = true;
  } else {
    return;
  }
  s->send_in_flight = true;
  if (!stream_batch(s, &op, 1, &s->send_tag)) {
    s->send_in_flight = false;
    if (s->inflight) grpc_byte_buffer_destroy(s->inflight);
    s->inflight = NULL;
  }
}

static void stream_maybe_close(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  bool fire = s->status_received && s->reads_done && !s->close_fired;
  if (fire) s->close_fired = true;
  pthread_mutex_unlock(&s->mu);
  if (!fire) return;
  rpc_status st;
  status_fill(&st, s->code, s->details, &s->trail_md);
  if (st.code == GRPC_STATUS_UNAVAILABLE) endpoint_failed(s->ch, s->idx);
  if (s->cb.on_close) s->cb.on_close(s, &st, s->arg);
  rpc_status_clear(&st);
  op_unlink(s->ch, &s->op);
}

static void stream_start_read(rpc_stream *s, bool with_initial_md) {
  grpc_op ops[2];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  if (with_initial_md) {
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n++].data.recv_initial_metadata.recv_initial_metadata = &s->init_md;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n++].data.recv_message.recv_message = &s->recv_bb;
  if (!stream_batch(s, ops, n, &s->recv_tag)) {
    pthread_mutex_lock(&s->mu);
    s->reads_done = true;
    pthread_mutex_unlock(&s->mu);
    stream_maybe_close(s);
  }
}

rpc_stream *rpc_stream_start(rpc_channel *ch, const char *method, rpc_kind kind,
                             const ProtobufCMessage *request,
                             const ProtobufCMessageDescriptor *response_desc,
                             const rpc_call_options *opts, const rpc_stream_callbacks *cb,
                             void *arg, keel_error *err) {
  if ((kind == RPC_SERVER_STREAMING) != (request != NULL) || kind == RPC_UNARY) {
    keel_error_set(err, EINVAL, "stream %s: a %s call %s a first request", method,
                   rpc_kind_name(kind), kind == RPC_SERVER_STREAMING ? "needs" : "takes no");
    return NULL;
  }
  rpc_stream *s = calloc(1, sizeof(*s));
  s->start_tag.kind = RPC_TAG_CLIENT_START;
  s->send_tag.kind = RPC_TAG_CLIENT_SEND;
  s->recv_tag.kind = RPC_TAG_CLIENT_RECV;
  s->status_tag.kind = RPC_TAG_CLIENT_STATUS;
  s->ch = ch;
  s->kind = kind;
  s->resp_desc = response_desc;
  if (cb) s->cb = *cb;
  s->arg = arg;
  pthread_mutex_init(&s->mu, NULL);
  atomic_init(&s->refs, 1); /* the caller's */
  rpc_sendq_init(&s->queue, 1024, 4 * 1024 * 1024);
  grpc_metadata_array_init(&s->init_md);
  grpc_metadata_array_init(&s->trail_md);
  s->details = grpc_empty_slice();
  s->md = metadata_to_core(opts);
  s->nmd = s->md ? opts->nmetadata : 0;
  s->idx = pick_endpoint(ch);
  /* The core takes its own reference to the method slice. */
  grpc_slice method_slice = grpc_slice_from_copied_string(method);
  s->call = grpc_channel_create_call(ch->channels[s->idx], NULL, GRPC_PROPAGATE_DEFAULTS, ch->cq,
                                     method_slice, NULL,
                                     rpc_deadline_from_timeout(opts ? opts->timeout_ms : 0), NULL);
  grpc_slice_unref(method_slice);
  s->op.call = s->call;
  s->op.is_stream = true;
  (void)op_link(ch, &s->op); /* canceled at once when the channel is closing: on_close reports it */

  grpc_op ops[3];
  memset(ops, 0, sizeof(ops));
  size_t n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[n].flags = initial_md_flags(opts);
  ops[n].data.send_initial_metadata.count = s->nmd;
  ops[n++].data.send_initial_metadata.metadata = s->md;
  if (request) {
    s->start_message = rpc_codec_encode(request, NULL);
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = s->start_message;
    ops[n++].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    s->close_send_requested = s->close_send_started = true;
  }
  /* Writes wait until the initial metadata is out. */
  s->send_in_flight = true;
  bool ok = stream_batch(s, ops, n, &s->start_tag);
  grpc_op st;
  memset(&st, 0, sizeof(st));
  st.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  st.data.recv_status_on_client.trailing_metadata = &s->trail_md;
  st.data.recv_status_on_client.status = &s->code;
  st.data.recv_status_on_client.status_details = &s->details;
  ok = ok && stream_batch(s, &st, 1, &s->status_tag);
  if (!ok) {
    keel_error_set(err, EIO, "stream %s: cannot start call", method);
    grpc_call_cancel(s->call, NULL);
    op_unlink(ch, &s->op);
    stream_unref(s); /* batches that did start hold their own references */
    return NULL;
  }
  stream_start_read(s, true);
  return s;
}

int rpc_stream_write(rpc_stream *s, const ProtobufCMessage *message) {
  size_t size;
  grpc_byte_buffer *bb = rpc_codec_encode(message, &size);
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (s->close_send_requested || s->cancelled || s->status_received) rc = -EPIPE;
  else if ((int64_t)size > s->ch->opts.max_message_bytes) rc = -EINVAL;
  else if (!rpc_sendq_push(&s->queue, bb, size)) {
    rc = -ENOBUFS;
    s->want_writable = true;
  } else {
    bb = NULL;
  }
  if (rc == 0) stream_pump_locked(s);
  pthread_mutex_unlock(&s->mu);
  if (bb) grpc_byte_buffer_destroy(bb);
  return rc;
}

int rpc_stream_close_send(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  int rc = 0;
  if (s->close_send_requested) rc = -EALREADY;
  else {
    s->close_send_requested = true;
    stream_pump_locked(s);
  }
  pthread_mutex_unlock(&s->mu);
  return rc;
}

void rpc_stream_cancel(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->cancelled = true;
  rpc_sendq_clear(&s->queue);
  /* A parked read is started now: on the canceled call it ends at once, on
   * the channel's thread, which then reports on_close as always. */
  bool parked = s->read_parked;
  s->read_parked = false;
  pthread_mutex_unlock(&s->mu);
  grpc_call_cancel(s->call, NULL);
  if (parked) stream_start_read(s, false);
}

void rpc_stream_pause_reads(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->reads_paused = true;
  pthread_mutex_unlock(&s->mu);
}

void rpc_stream_resume_reads(rpc_stream *s) {
  pthread_mutex_lock(&s->mu);
  s->reads_paused = false;
  bool start = s->read_parked && !s->cancelled;
  s->read_parked = false;
  pthread_mutex_unlock(&s->mu);
  if (start) stream_start_read(s, false);
}

void rpc_stream_release(rpc_stream *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  bool open = !s->close_fired;
  pthread_mutex_unlock(&s->mu);
  if (open) rpc_stream_cancel(s);
  stream_unref(s);
}

static void on_stream_event(rpc_stream *s, rpc_tag *tag, bool ok) {
  if (tag == &s->start_tag || tag == &s->send_tag) {
    pthread_mutex_lock(&s->mu);
    s->send_in_flight = false;
    if (s->inflight) grpc_byte_buffer_destroy(s->inflight);
    s->inflight = NULL;
    if (tag == &s->start_tag && s->start_message) {
      grpc_byte_buffer_destroy(s->start_message);
      s->start_message = NULL;
    }
    bool writable = false;
    if (ok) {
      stream_pump_locked(s);
      if (s->want_writable && s->queue.count <= s->queue.max_messages / 2 && !s->cancelled &&
          !s->status_received) {
        s->want_writable = false;
        writable = s->cb.on_writable != NULL;
      }
    } else {
      rpc_sendq_clear(&s->queue);
    }
    pthread_mutex_unlock(&s->mu);
    if (writable) s->cb.on_writable(s, s->arg);
  } else if (tag == &s->status_tag) {
    pthread_mutex_lock(&s->mu);
    s->status_received = true;
    rpc_sendq_clear(&s->queue);
    pthread_mutex_unlock(&s->mu);
    stream_maybe_close(s);
  } else if (tag == &s->recv_tag) {
    grpc_byte_buffer *bb = s->recv_bb;
    s->recv_bb = NULL;
    if (!ok || !bb) {
      if (bb) grpc_byte_buffer_destroy(bb);
      pthread_mutex_lock(&s->mu);
      s->reads_done = true;
      pthread_mutex_unlock(&s->mu);
      stream_maybe_close(s);
      return;
    }
    ProtobufCMessage *msg = rpc_codec_decode(s->resp_desc, bb);
    grpc_byte_buffer_destroy(bb);
    if (!msg) {
      grpc_call_cancel_with_status(s->call, GRPC_STATUS_INTERNAL, "cannot decode stream message",
                                   NULL);
      pthread_mutex_lock(&s->mu);
      s->reads_done = true;
      pthread_mutex_unlock(&s->mu);
      stream_maybe_close(s);
      return;
    }
    if (s->cb.on_message) s->cb.on_message(s, msg, s->arg);
    protobuf_c_message_free_unpacked(msg, NULL);
    pthread_mutex_lock(&s->mu);
    bool park = s->reads_paused && !s->cancelled;
    if (park) s->read_parked = true;
    pthread_mutex_unlock(&s->mu);
    if (!park) stream_start_read(s, false);
  }
}

/* ---------------------------------------------------------------- event loop */

static void *channel_thread(void *arg) {
  rpc_channel *ch = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(ch->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *tag = ev.tag;
    bool ok = ev.success != 0;
    switch (tag->kind) {
      case RPC_TAG_CLIENT_UNARY:
        on_async_unary((async_unary *)tag, ok);
        break;
      case RPC_TAG_CLIENT_START: {
        rpc_stream *s = RPC_CONTAINER_OF(tag, rpc_stream, start_tag);
        on_stream_event(s, tag, ok);
        stream_unref(s);
        break;
      }
      case RPC_TAG_CLIENT_SEND: {
        rpc_stream *s = RPC_CONTAINER_OF(tag, rpc_stream, send_tag);
        on_stream_event(s, tag, ok);
        stream_unref(s);
        break;
      }
      case RPC_TAG_CLIENT_RECV: {
        rpc_stream *s = RPC_CONTAINER_OF(tag, rpc_stream, recv_tag);
        on_stream_event(s, tag, ok);
        stream_unref(s);
        break;
      }
      case RPC_TAG_CLIENT_STATUS: {
        rpc_stream *s = RPC_CONTAINER_OF(tag, rpc_stream, status_tag);
        on_stream_event(s, tag, ok);
        stream_unref(s);
        break;
      }
      default:
        LOG_ERROR("rpc: unexpected client tag", "kind", log_int(tag->kind));
    }
  }
  return NULL;
}

void rpc_channel_destroy(rpc_channel *ch) {
  if (!ch) return;
  pthread_mutex_lock(&ch->mu);
  ch->destroying = true;
  /* Streams are canceled through rpc_stream_cancel, outside ch->mu, so that a
   * stream whose reads are paused starts its last read and can close. A
   * linked stream always holds a reference (its status batch's). */
  size_t nstreams = 0;
  for (client_op *op = ch->ops; op; op = op->next) nstreams += op->is_stream;
  rpc_stream **streams = nstreams ? calloc(nstreams, sizeof *streams) : NULL;
  size_t n = 0;
  for (client_op *op = ch->ops; op; op = op->next) {
    if (op->is_stream && streams) {
      rpc_stream *st = RPC_CONTAINER_OF(op, rpc_stream, op);
      atomic_fetch_add(&st->refs, 1);
      streams[n++] = st;
    } else if (op->call) {
      grpc_call_cancel(op->call, NULL);
    }
  }
  pthread_mutex_unlock(&ch->mu);
  for (size_t i = 0; i < n; i++) {
    rpc_stream_cancel(streams[i]);
    stream_unref(streams[i]);
  }
  free(streams);
  /* Pending retries are dropped (their callbacks report CANCELLED). */
  sched_destroy(ch->timers);
  pthread_mutex_lock(&ch->mu);
  while (ch->active > 0) pthread_cond_wait(&ch->cond, &ch->mu);
  pthread_mutex_unlock(&ch->mu);
  grpc_completion_queue_shutdown(ch->cq);
  for (int i = 0; i < ch->nthreads; i++) pthread_join(ch->threads[i], NULL);
  grpc_completion_queue_destroy(ch->cq);
  for (size_t i = 0; i < ch->nendpoints; i++) {
    grpc_channel_destroy(ch->channels[i]);
    free(ch->endpoints[i]);
  }
  free(ch->channels);
  free(ch->endpoints);
  free(ch->threads);
  pthread_cond_destroy(&ch->cond);
  pthread_mutex_destroy(&ch->mu);
  free(ch);
  rpc_library_shutdown();
}
