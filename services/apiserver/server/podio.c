/* services/apiserver/server/podio.c — Pods/Log and Pods/Exec: relays to the
 * pod's node agent (keel.agent.v1.Agent, proto/keel/agent/v1/agent.proto).
 *
 * The apiserver does what only it can: authenticate and authorize the user
 * (pods/log is "get", pods/exec is "create", as in Kubernetes' RBAC), check the
 * options, and resolve the pod to its uid, its container and its node's agent
 * endpoint. The agent gets the options with container and pod_uid filled in.
 * Then bytes only flow: every agent message is passed on as it is, and the
 * agent's final status becomes the caller's.
 *
 * Flow control, both ways, with bounded memory: when the caller's send queue
 * is full, the one refused message is kept (stash) and reads from the agent
 * stop (rpc_stream_pause_reads) until the queue drains; gRPC's own flow control
 * then holds the agent back. Exec stdin in the other direction likewise: when
 * the agent stream's queue is full, the refused message is kept and reading
 * from the caller pauses (rpc_call_pause_reads) until the queue drains.
 *
 * The REST gateway reads logs through the same relay (apiserver_pod_log_open):
 * there the output waits in a bounded buffer (REST_LOG_HIGH) that its
 * connection thread drains, and the agent is paused while it is full.
 *
 * Lifetimes: a relay is shared by the caller (the gRPC call's user data, or
 * the REST reader) and the agent stream. Each agent stream has its own channel (one per relay: logs and
 * execs are few and long), and after the stream closes the stream and the
 * channel are released on this module's worker, since a channel cannot be
 * destroyed from its own callback thread. Shutdown cancels the open streams
 * and waits for their cleanup. */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log/log.h"
#include "common/metrics/metrics.h"
#include "common/sched/sched.h"
#include "keel/api/v1/core.pb-c.h"
#include "services/apiserver/server/internal.h"

#define AGENT_ENDPOINT_ANNOTATION "agent.keel.dev/endpoint"
#define TARGET_MAX 640
/* REST readers: pause the agent above this much unread output, resume below
 * a quarter of it. */
#define REST_LOG_HIGH (1u << 20)

typedef struct pod_relay relay; /* pod_log_reader to the REST gateway */

struct podio {
  apiserver *a;
  sched *cleanup; /* releases finished agent streams and their channels */
  pthread_mutex_t mu;
  pthread_cond_t idle;
  relay *open;  /* relays with an agent stream not yet cleaned up */
  int cleaning; /* agent streams started and not yet cleaned up */
  bool stopping;
  metric *m_relays[2];    /* open relays: [0] Log, [1] Exec */
  metric *m_pauses[2];    /* flow-control pauses: [0] the agent's output (a slow caller),
                           * [1] the caller's Exec input (a slow agent) */
};

struct pod_relay {
  podio *p;
  pthread_mutex_t mu;
  int refs; /* the caller's call (user data) + the agent stream while it lives */
  rpc_call *call;
  rpc_channel *ch;
  rpc_stream *agent;
  rpc_shared_message *stash; /* a reply the caller's queue refused; agent reads paused */
  ProtobufCMessage *stdin_stash; /* Exec input the agent's queue refused; caller reads paused */
  bool call_done;            /* the caller's call was finished or closed: send nothing */
  bool exec_started;         /* Exec: the start message went to the agent */
  bool exec_stdin;           /* Exec: the caller asked for stdin */
  bool exec;                 /* Exec, else Log (for the open-relays gauge) */
  auth_identity id;
  char target[TARGET_MAX];   /* "pod ns/name container c on node n (agent ep)" */
  relay *prev, *next;        /* in p->open */
  /* A REST reader (call == NULL): output and the end wait here. */
  pthread_cond_t rest_cond;
  unsigned char *rest_buf;
  size_t rest_len, rest_off, rest_cap;
  bool rest_paused; /* agent reads paused: the buffer is over REST_LOG_HIGH */
  grpc_status_code rest_code;
  char rest_msg[1024];
};

/* ---------------------------------------------------------------- relays */

static relay *relay_new(podio *p, rpc_call *call) {
  relay *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->p = p;
  r->call = call;
  r->refs = 1;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->rest_cond, NULL);
  return r;
}

static void relay_unref(relay *r) {
  pthread_mutex_lock(&r->mu);
  bool last = --r->refs == 0;
  pthread_mutex_unlock(&r->mu);
  if (!last) return;
  rpc_shared_message_free(r->stash);
  if (r->stdin_stash) protobuf_c_message_free_unpacked(r->stdin_stash, NULL);
  auth_identity_clear(&r->id);
  free(r->rest_buf);
  pthread_cond_destroy(&r->rest_cond);
  pthread_mutex_destroy(&r->mu);
  free(r);
}

/* The call's user data: the caller's side is gone. */
static void relay_call_freed(void *arg) {
  relay_unref(arg);
}

/* Finishes the caller's call once; later attempts do nothing. */
static void relay_finish(relay *r, grpc_status_code code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void relay_finish(relay *r, grpc_status_code code, const char *fmt, ...) {
  char msg[sizeof r->rest_msg] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_lock(&r->mu);
  bool done = r->call_done;
  r->call_done = true;
  if (!done && !r->call) { /* a REST reader: the end waits for it */
    r->rest_code = code;
    memcpy(r->rest_msg, msg, sizeof msg);
    pthread_cond_broadcast(&r->rest_cond);
    done = true;
  }
  pthread_mutex_unlock(&r->mu);
  if (!done) rpc_call_finish(r->call, code, fmt ? "%s" : NULL, msg);
}

/* On the cleanup worker: the agent stream closed. */
static void relay_cleanup(void *arg) {
  relay *r = arg;
  podio *p = r->p;
  /* p->mu first: relay_start holds it until r->agent is set. */
  pthread_mutex_lock(&p->mu);
  if (r->prev) r->prev->next = r->next;
  else p->open = r->next;
  if (r->next) r->next->prev = r->prev;
  pthread_mutex_unlock(&p->mu);
  pthread_mutex_lock(&r->mu);
  rpc_stream *agent = r->agent;
  r->agent = NULL; /* from here on nobody writes to or cancels it */
  pthread_mutex_unlock(&r->mu);
  rpc_stream_release(agent);
  rpc_channel_destroy(r->ch);
  metric_add(p->m_relays[r->exec], -1);
  if (r->call) rpc_call_unref(r->call);
  relay_unref(r);
  /* Last: podio_destroy may free p once the list is empty. */
  pthread_mutex_lock(&p->mu);
  p->cleaning--;
  if (!p->open && !p->cleaning) pthread_cond_broadcast(&p->idle);
  pthread_mutex_unlock(&p->mu);
}

/* A REST reader's chunk: appended to its buffer; a full buffer pauses the agent. */
static int rest_append_locked(relay *r, rpc_stream *s, const ProtobufCMessage *msg) {
  const Keel__Api__V1__PodLogChunk *ch = (const Keel__Api__V1__PodLogChunk *)msg;
  if (r->rest_off == r->rest_len) r->rest_off = r->rest_len = 0;
  if (r->rest_len + ch->data.len > r->rest_cap) {
    size_t cap = r->rest_cap ? r->rest_cap : 64 * 1024;
    while (cap < r->rest_len + ch->data.len) cap *= 2;
    unsigned char *grown = realloc(r->rest_buf, cap);
    if (!grown) return -ENOMEM;
    r->rest_buf = grown;
    r->rest_cap = cap;
  }
  memcpy(r->rest_buf + r->rest_len, ch->data.data, ch->data.len);
  r->rest_len += ch->data.len;
  if (r->rest_len - r->rest_off > REST_LOG_HIGH && !r->rest_paused) {
    r->rest_paused = true;
    rpc_stream_pause_reads(s);
    metric_inc(r->p->m_pauses[0]);
  }
  pthread_cond_broadcast(&r->rest_cond);
  return 0;
}

static void agent_on_message(rpc_stream *s, const ProtobufCMessage *msg, void *arg) {
  relay *r = arg;
  pthread_mutex_lock(&r->mu);
  if (!r->call) {
    int rc = r->call_done ? -ECANCELED : rest_append_locked(r, s, msg);
    pthread_mutex_unlock(&r->mu);
    if (rc < 0) rpc_stream_cancel(s);
    return;
  }
  int rc = r->call_done ? -ECANCELED : rpc_call_send(r->call, msg);
  if (rc == -ENOBUFS) {
    /* Keep it and stop reading until the caller catches up (on_writable). */
    r->stash = rpc_shared_message_new(msg);
    if (r->stash) {
      rpc_stream_pause_reads(s);
      metric_inc(r->p->m_pauses[0]);
    } else {
      rc = -ENOMEM;
    }
  }
  pthread_mutex_unlock(&r->mu);
  if (rc < 0 && rc != -ENOBUFS) rpc_stream_cancel(s); /* s lives until on_close */
}

static void call_on_writable(rpc_call *call, void *arg) {
  relay *r = arg;
  pthread_mutex_lock(&r->mu);
  if (r->stash && !r->call_done && r->agent) {
    int rc = rpc_call_send_shared(call, r->stash);
    if (rc != -ENOBUFS) { /* sent, or the call is gone: either way, read on */
      rpc_shared_message_free(r->stash);
      r->stash = NULL;
      rpc_stream_resume_reads(r->agent);
    }
  }
  pthread_mutex_unlock(&r->mu);
}

/* The agent's queue drained after it refused Exec input: send what was kept,
 * then read from the caller again. */
static void agent_on_writable(rpc_stream *s, void *arg) {
  relay *r = arg;
  pthread_mutex_lock(&r->mu);
  if (r->stdin_stash && !r->call_done) {
    int rc = rpc_stream_write(s, r->stdin_stash);
    if (rc != -ENOBUFS) { /* sent, or the stream ended (its status reaches the caller) */
      protobuf_c_message_free_unpacked(r->stdin_stash, NULL);
      r->stdin_stash = NULL;
      rpc_call_resume_reads(r->call);
    }
  }
  pthread_mutex_unlock(&r->mu);
}

static void agent_on_close(rpc_stream *s, const rpc_status *st, void *arg) {
  (void)s;
  relay *r = arg;
  if (st->code == GRPC_STATUS_OK) {
    relay_finish(r, GRPC_STATUS_OK, NULL);
  } else if (st->code == GRPC_STATUS_UNAVAILABLE || st->code == GRPC_STATUS_DEADLINE_EXCEEDED) {
    relay_finish(r, st->code, "%s: the agent did not answer: %s", r->target, st->message ? st->message : "");
  } else {
    /* The agent's own answer (NOT_FOUND, FAILED_PRECONDITION, ...) as it is. */
    relay_finish(r, st->code, "%s", st->message ? st->message : "");
  }
  if (sched_submit(r->p->cleanup, relay_cleanup, r) < 0)
    LOG_ERROR("apiserver: pod relay cleanup refused (shutting down)", "target", r->target);
}

static void call_on_cancel(rpc_call *call, void *arg) {
  (void)call;
  relay *r = arg;
  pthread_mutex_lock(&r->mu);
  r->call_done = true;
  if (r->agent) rpc_stream_cancel(r->agent); /* runs no callback: safe under r->mu */
  pthread_mutex_unlock(&r->mu);
}

static const rpc_stream_callbacks agent_callbacks = {
    .on_message = agent_on_message,
    .on_close = agent_on_close,
    .on_writable = agent_on_writable,
};

/* ---------------------------------------------------------------- targets */

typedef struct target {
  char pod_uid[64];
  char container[256];
  char node[256];
  char endpoint[512];
} target;

static const char *meta_annotation(const Keel__Api__V1__ObjectMeta *m, const char *key) {
  for (size_t i = 0; m && i < m->n_annotations; i++)
    if (m->annotations[i]->key && strcmp(m->annotations[i]->key, key) == 0) return m->annotations[i]->value;
  return NULL;
}

/* The node's agent: the annotation, else its preferred address with the
 * kubelet endpoint port. */
static int node_agent_endpoint(const Keel__Api__V1__Node *n, const char *node, char *out, size_t cap,
                               keel_error *err) {
  const char *ep = meta_annotation(n->metadata, AGENT_ENDPOINT_ANNOTATION);
  if (ep && *ep) {
    bool unix_path = strncmp(ep, "unix:", 5) == 0 && ep[5];
    const char *colon = strrchr(ep, ':');
    if ((!unix_path && (!colon || colon == ep || !colon[1])) || strlen(ep) >= cap || strpbrk(ep, " \t\r\n"))
      return keel_error_set(err, EINVAL,
                            "node \"%s\": annotation " AGENT_ENDPOINT_ANNOTATION
                            " is not \"host:port\" or \"unix:/path\": \"%.200s\"",
                            node, ep);
    snprintf(out, cap, "%s", ep);
    return 0;
  }
  const Keel__Api__V1__NodeStatus *s = n->status;
  int port = s && s->daemon_endpoints && s->daemon_endpoints->kubelet_endpoint
                 ? s->daemon_endpoints->kubelet_endpoint->port
                 : 0;
  if (port <= 0 || port > 65535)
    return keel_error_set(err, EAGAIN,
                          "node \"%s\" has no agent endpoint (no " AGENT_ENDPOINT_ANNOTATION
                          " annotation, status.daemonEndpoints.kubeletEndpoint.Port is %d)",
                          node, port);
  static const char *const preferred[] = {"InternalIP", "Hostname", "ExternalIP"};
  for (size_t p = 0; p < sizeof preferred / sizeof preferred[0]; p++) {
    for (size_t i = 0; i < s->n_addresses; i++) {
      const Keel__Api__V1__NodeAddress *ad = s->addresses[i];
      if (!ad->type || strcmp(ad->type, preferred[p]) != 0 || !ad->address || !*ad->address) continue;
      bool v6 = strchr(ad->address, ':') != NULL;
      if ((size_t)snprintf(out, cap, v6 ? "[%s]:%d" : "%s:%d", ad->address, port) >= cap) continue;
      return 0;
    }
  }
  return keel_error_set(err, EAGAIN, "node \"%s\" has no InternalIP, Hostname or ExternalIP address to reach its agent",
                        node);
}

/* Appends the names of cs to buf as "a b c". */
static void container_names(char *buf, size_t cap, Keel__Api__V1__Container **cs, size_t n) {
  size_t len = strlen(buf);
  for (size_t i = 0; i < n && len + 1 < cap; i++) {
    int w = snprintf(buf + len, cap - len, "%s%s", len ? " " : "", cs[i]->name ? cs[i]->name : "");
    if (w < 0) break;
    len += (size_t)w < cap - len ? (size_t)w : cap - len - 1;
  }
}

static bool has_container(Keel__Api__V1__Container **cs, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (cs[i]->name && strcmp(cs[i]->name, name) == 0) return true;
  return false;
}

/* Resolves ns/name and container (may be empty: the only container) to the
 * pod's uid and its node's agent. Errors carry Kubernetes' messages. */
static int resolve(apiserver *a, const char *ns, const char *name, const char *container, bool exec, target *t,
                   keel_error *err) {
  const api_kind *pods = api_kind_by_resource("pods");
  const api_kind *nodes = api_kind_by_resource("nodes");
  if (!name || !*name) return keel_error_set(err, EINVAL, "name: Required value");
  cache_object *po;
  if (strlen(name) > 253 || watch_cache_get(apiserver_cache(a, pods), ns, name, &po, NULL) < 0)
    return keel_error_set(err, ENOENT, "pods \"%.253s\" not found", name);
  const Keel__Api__V1__Pod *pod = (const Keel__Api__V1__Pod *)cache_object_msg(po);
  const Keel__Api__V1__PodSpec *spec = pod->spec;
  int rc = 0;
  memset(t, 0, sizeof *t);
  snprintf(t->pod_uid, sizeof t->pod_uid, "%s", pod->metadata && pod->metadata->uid ? pod->metadata->uid : "");
  size_t nc = spec ? spec->n_containers : 0, ni = spec ? spec->n_init_containers : 0;
  if (container && *container) {
    if (!has_container(spec ? spec->containers : NULL, nc, container) &&
        !has_container(spec ? spec->init_containers : NULL, ni, container)) {
      rc = keel_error_set(err, EINVAL, "container %.253s is not valid for pod %s", container, name);
      goto out;
    }
    snprintf(t->container, sizeof t->container, "%s", container);
  } else if (nc == 1) {
    snprintf(t->container, sizeof t->container, "%s", spec->containers[0]->name ? spec->containers[0]->name : "");
  } else {
    char names[512] = "", inits[512] = "";
    container_names(names, sizeof names, spec ? spec->containers : NULL, nc);
    container_names(inits, sizeof inits, spec ? spec->init_containers : NULL, ni);
    rc = keel_error_set(err, EINVAL, "a container name must be specified for pod %s, choose one of: [%s]%s%s%s", name,
                        names, ni ? " or one of the init containers: [" : "", inits, ni ? "]" : "");
    goto out;
  }
  const char *phase = pod->status && pod->status->phase ? pod->status->phase : "";
  if (exec && (strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0)) {
    rc = keel_error_set(err, ESTALE, "cannot exec into a container in a completed pod; current phase is %s", phase);
    goto out;
  }
  if (!spec || !spec->node_name || !*spec->node_name) {
    rc = keel_error_set(err, ESTALE, "pod %s does not have a host assigned", name);
    goto out;
  }
  snprintf(t->node, sizeof t->node, "%s", spec->node_name);
  cache_object *no;
  if (watch_cache_get(apiserver_cache(a, nodes), "", t->node, &no, NULL) < 0) {
    rc = keel_error_set(err, ESTALE, "pod %s is bound to node \"%s\", which does not exist", name, t->node);
    goto out;
  }
  rc = node_agent_endpoint((const Keel__Api__V1__Node *)cache_object_msg(no), t->node, t->endpoint,
                           sizeof t->endpoint, err);
  if (rc == -EINVAL) rc = -ESTALE; /* the node's fault, not the caller's */
  cache_object_unref(no);
out:
  cache_object_unref(po);
  return rc;
}

/* Opens the agent stream; the relay joins p->open. The first message (a log
 * request, or nothing for exec) is sent at once. */
static int relay_start(relay *r, const target *t, const char *method, rpc_kind kind, const ProtobufCMessage *request,
                       const ProtobufCMessageDescriptor *reply, keel_error *err) {
  podio *p = r->p;
  const apiserver_options *o = &p->a->opts;
  rpc_tls_config tls = {
      .cert_file = o->kubelet_client_cert,
      .key_file = o->kubelet_client_key,
      .ca_file = o->kubelet_ca,
      /* Agents' serving certificates name their node (keel up makes them so);
       * an endpoint may be a unix socket with no host name at all. */
      .server_name_override = t->node,
  };
  bool secure = o->kubelet_client_cert || o->kubelet_ca;
  const char *eps[] = {t->endpoint};
  rpc_channel_options co = {
      .endpoints = eps,
      .nendpoints = 1,
      .tls = secure ? &tls : NULL,
      .retry_max_attempts = 1,
  };
  r->ch = rpc_channel_create(&co, err);
  if (!r->ch) return keel_error_wrap(err, "%s", r->target), -EAGAIN;
  int64_t remaining = r->call ? rpc_call_remaining_ms(r->call) : 0;
  rpc_call_options call_opts = {.timeout_ms = remaining > 0 ? remaining : 0};
  pthread_mutex_lock(&p->mu);
  if (p->stopping) {
    pthread_mutex_unlock(&p->mu);
    rpc_channel_destroy(r->ch);
    r->ch = NULL;
    return keel_error_set(err, ESHUTDOWN, "server shutting down");
  }
  /* The agent stream's references: the relay itself and the caller's call. */
  pthread_mutex_lock(&r->mu);
  r->refs++;
  pthread_mutex_unlock(&r->mu);
  if (r->call) rpc_call_ref(r->call);
  r->next = p->open;
  if (p->open) p->open->prev = r;
  p->open = r;
  p->cleaning++;
  metric_inc(p->m_relays[r->exec]);
  /* Under p->mu: shutdown cannot cancel a stream that is still being set. */
  pthread_mutex_lock(&r->mu);
  r->agent = rpc_stream_start(r->ch, method, kind, request, reply, &call_opts, &agent_callbacks, r, err);
  bool failed = r->agent == NULL;
  pthread_mutex_unlock(&r->mu);
  pthread_mutex_unlock(&p->mu);
  if (failed) {
    relay_cleanup(r); /* undoes the above: list, channel, refs */
    return keel_error_wrap(err, "%s", r->target), -EAGAIN;
  }
  return 0;
}

static void describe_target(relay *r, const char *ns, const char *name, const target *t) {
  /* Long names are cut: the message stays one readable line. */
  int n = snprintf(r->target, sizeof r->target, "pod %.64s/%.253s container %.64s", ns, name, t->container);
  if (n > 0 && (size_t)n < sizeof r->target)
    snprintf(r->target + n, sizeof r->target - (size_t)n, " on node %.64s (agent %.100s)", t->node, t->endpoint);
}

static void finish_err(rpc_call *call, int rc, const keel_error *err) {
  rpc_call_finish(call, apiserver_status_for(rc), "%s", err->message[0] ? err->message : strerror(-rc));
}

static int authorize_pod(const auth_identity *id, const char *verb, const char *sub, const char *ns,
                         const char *name, keel_error *err) {
  auth_request q = {
      .verb = verb,
      .kind = api_kind_by_resource("pods"),
      .subresource = sub,
      .namespace_ = ns,
      .name = name ? name : "",
  };
  return auth_authorize(id, &q, err);
}

/* ---------------------------------------------------------------- Pods/Log */

static int check_log_options(const Keel__Api__V1__PodLogOptions *o, keel_error *err) {
  if (o->tail_lines && o->tail_lines->value < 0)
    return keel_error_set(err, EINVAL, "tailLines: Invalid value: %lld: must be greater than or equal to 0",
                          (long long)o->tail_lines->value);
  if (o->since_seconds && o->since_seconds->value < 1)
    return keel_error_set(err, EINVAL, "sinceSeconds: Invalid value: %lld: must be greater than 0",
                          (long long)o->since_seconds->value);
  if (o->limit_bytes && o->limit_bytes->value < 1)
    return keel_error_set(err, EINVAL, "limitBytes: Invalid value: %lld: must be greater than 0",
                          (long long)o->limit_bytes->value);
  if (o->since_seconds && o->since_time)
    return keel_error_set(err, EINVAL, "at most one of `sinceTime` or `sinceSeconds` may be specified");
  return 0;
}

/* Authorizes, checks the options and resolves the target of a log request;
 * *ns is the request's namespace (defaulted). */
static int log_prepare(apiserver *a, const auth_identity *id, const Keel__Api__V1__PodLogOptions *o,
                       const char **ns, target *t, keel_error *err) {
  *ns = apiserver_request_namespace(api_kind_by_resource("pods"), o->namespace_);
  int rc = authorize_pod(id, "get", "log", *ns, o->name, err);
  if (rc == 0) rc = check_log_options(o, err);
  if (rc == 0) rc = resolve(a, *ns, o->name, o->container, false, t, err);
  return rc;
}

/* Opens the agent's Log stream for r with o's options, container and uid filled. */
static int log_start(relay *r, const Keel__Api__V1__PodLogOptions *o, const char *ns, const target *t,
                     keel_error *err) {
  describe_target(r, ns, o->name, t);
  Keel__Api__V1__PodLogOptions fwd = *o; /* borrowed fields: encoded at once */
  fwd.namespace_ = (char *)ns;
  fwd.container = (char *)t->container;
  fwd.pod_uid = (char *)t->pod_uid;
  return relay_start(r, t, "/keel.agent.v1.Agent/Log", RPC_SERVER_STREAMING, &fwd.base,
                     &keel__api__v1__pod_log_chunk__descriptor, err);
}

static void on_log(rpc_call *call, const ProtobufCMessage *request, void *service_ctx) {
  apiserver *a = ((kind_ctx *)service_ctx)->a;
  const Keel__Api__V1__PodLogOptions *o = (const Keel__Api__V1__PodLogOptions *)request;
  keel_error err = {0};
  grpc_status_code code;
  auth_identity id = {0};
  if (auth_authenticate_call(a->opts.auth, call, &id, &code, &err) < 0)
    return (void)rpc_call_finish(call, code, "%s", err.message);
  const char *ns;
  target t;
  int rc = log_prepare(a, &id, o, &ns, &t, &err);
  if (rc < 0) {
    auth_identity_clear(&id);
    return finish_err(call, rc, &err);
  }
  relay *r = relay_new(a->podio, call);
  if (!r) {
    auth_identity_clear(&id);
    return (void)rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  r->id = id;
  rpc_call_set_user_data(call, r, relay_call_freed);
  rpc_call_set_slow_policy(call, RPC_SLOW_REJECT);
  rpc_call_on_writable(call, call_on_writable, r);
  if ((rc = log_start(r, o, ns, &t, &err)) < 0) return relay_finish(r, apiserver_status_for(rc), "%s", err.message);
  rpc_call_on_cancel(call, call_on_cancel, r);
}

/* ---------------------------------------------------------------- REST readers */

int apiserver_pod_log_open(apiserver *a, const auth_identity *id, const Keel__Api__V1__PodLogOptions *o,
                           pod_log_reader **out, keel_error *err) {
  const char *ns;
  target t;
  int rc = log_prepare(a, id, o, &ns, &t, err);
  if (rc < 0) return rc;
  relay *r = relay_new(a->podio, NULL);
  if (!r) return keel_error_set(err, ENOMEM, "out of memory");
  if ((rc = log_start(r, o, ns, &t, err)) < 0) {
    relay_unref(r);
    return rc;
  }
  *out = r;
  return 0;
}

ssize_t apiserver_pod_log_read(pod_log_reader *reader, void *buf, size_t max, int wait_ms, grpc_status_code *code,
                               char *msg, size_t msg_len) {
  relay *r = reader;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += wait_ms / 1000;
  until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&r->mu);
  while (r->rest_len == r->rest_off && !r->call_done)
    if (pthread_cond_timedwait(&r->rest_cond, &r->mu, &until) == ETIMEDOUT) break;
  ssize_t n = 0;
  if (r->rest_len > r->rest_off) {
    size_t take = r->rest_len - r->rest_off;
    if (take > max) take = max;
    memcpy(buf, r->rest_buf + r->rest_off, take);
    r->rest_off += take;
    n = (ssize_t)take;
    if (r->rest_paused && r->rest_len - r->rest_off < REST_LOG_HIGH / 4 && r->agent) {
      r->rest_paused = false;
      rpc_stream_resume_reads(r->agent);
    }
  } else if (r->call_done) {
    *code = r->rest_code;
    snprintf(msg, msg_len, "%s", r->rest_msg);
    n = -1;
  }
  pthread_mutex_unlock(&r->mu);
  return n;
}

void apiserver_pod_log_close(pod_log_reader *reader) {
  relay *r = reader;
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  r->call_done = true; /* nothing is buffered from here on */
  if (r->agent) rpc_stream_cancel(r->agent);
  pthread_mutex_unlock(&r->mu);
  relay_unref(r);
}

void apiserver_podio_http_shutdown(apiserver *a) {
  podio *p = a->podio;
  if (!p) return;
  pthread_mutex_lock(&p->mu);
  for (relay *r = p->open; r; r = r->next) {
    if (r->call) continue;
    relay_finish(r, GRPC_STATUS_UNAVAILABLE, "server shutting down");
    pthread_mutex_lock(&r->mu);
    if (r->agent) rpc_stream_cancel(r->agent);
    pthread_mutex_unlock(&r->mu);
  }
  pthread_mutex_unlock(&p->mu);
}

/* ---------------------------------------------------------------- Pods/Exec */

static void on_exec_start(rpc_call *call, void *service_ctx) {
  apiserver *a = ((kind_ctx *)service_ctx)->a;
  keel_error err = {0};
  grpc_status_code code;
  auth_identity id = {0};
  if (auth_authenticate_call(a->opts.auth, call, &id, &code, &err) < 0)
    return (void)rpc_call_finish(call, code, "%s", err.message);
  relay *r = relay_new(a->podio, call);
  if (!r) {
    auth_identity_clear(&id);
    return (void)rpc_call_finish(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
  }
  r->id = id;
  r->exec = true;
  rpc_call_set_user_data(call, r, relay_call_freed);
  rpc_call_set_slow_policy(call, RPC_SLOW_REJECT);
  rpc_call_on_writable(call, call_on_writable, r);
  rpc_call_on_cancel(call, call_on_cancel, r);
}

static void exec_begin(relay *r, const Keel__Api__V1__ExecRequest *m) {
  apiserver *a = r->p->a;
  const Keel__Api__V1__PodExecOptions *o = m->start;
  keel_error err = {0};
  if (!o || m->stdin.len || m->close_stdin || m->resize)
    return relay_finish(r, GRPC_STATUS_INVALID_ARGUMENT,
                        "the first ExecRequest must carry start (the pod, container and command) and nothing else");
  const char *ns = apiserver_request_namespace(api_kind_by_resource("pods"), o->namespace_);
  target t;
  int rc = authorize_pod(&r->id, "create", "exec", ns, o->name, &err);
  if (rc == 0 && o->n_command == 0)
    rc = keel_error_set(&err, EINVAL, "command: Required value: you must specify at least one command for the container");
  for (size_t i = 0; rc == 0 && i < o->n_command; i++)
    if (!o->command[i]) rc = keel_error_set(&err, EINVAL, "command[%zu]: Required value", i);
  if (rc == 0) rc = resolve(a, ns, o->name, o->container, true, &t, &err);
  if (rc < 0) return relay_finish(r, apiserver_status_for(rc), "%s", err.message);
  describe_target(r, ns, o->name, &t);
  r->exec_stdin = o->stdin;
  if ((rc = relay_start(r, &t, "/keel.agent.v1.Agent/Exec", RPC_BIDI_STREAMING, NULL,
                        &keel__api__v1__exec_response__descriptor, &err)) < 0)
    return relay_finish(r, apiserver_status_for(rc), "%s", err.message);
  Keel__Api__V1__PodExecOptions fwd = *o;
  fwd.namespace_ = (char *)ns;
  fwd.container = t.container;
  fwd.pod_uid = t.pod_uid;
  Keel__Api__V1__ExecRequest first = KEEL__API__V1__EXEC_REQUEST__INIT;
  first.start = &fwd;
  pthread_mutex_lock(&r->mu);
  r->exec_started = true;
  if (r->agent && rpc_stream_write(r->agent, &first.base) < 0) rpc_stream_cancel(r->agent);
  pthread_mutex_unlock(&r->mu);
}

static void on_exec_message(rpc_call *call, const ProtobufCMessage *message, void *service_ctx) {
  (void)service_ctx;
  relay *r = rpc_call_user_data(call);
  if (!r) return; /* on_exec_start refused the call */
  const Keel__Api__V1__ExecRequest *m = (const Keel__Api__V1__ExecRequest *)message;
  pthread_mutex_lock(&r->mu);
  bool done = r->call_done, started = r->exec_started;
  pthread_mutex_unlock(&r->mu);
  if (done) return;
  if (!started) return exec_begin(r, m);
  if (m->start)
    return relay_finish(r, GRPC_STATUS_INVALID_ARGUMENT, "%s: only the first ExecRequest may carry start", r->target);
  if ((m->stdin.len || m->close_stdin) && !r->exec_stdin)
    return relay_finish(r, GRPC_STATUS_INVALID_ARGUMENT, "%s: stdin was not requested (start.stdin is false)",
                        r->target);
  pthread_mutex_lock(&r->mu);
  int rc = r->agent ? rpc_stream_write(r->agent, message) : -EPIPE;
  bool lost = false;
  if (rc == -ENOBUFS) {
    /* Keep it and stop reading from the caller until the agent's queue
     * drains (agent_on_writable). */
    r->stdin_stash = api_message_clone(message);
    if (r->stdin_stash) {
      rpc_call_pause_reads(call);
      metric_inc(r->p->m_pauses[1]);
    }
    else lost = true, rpc_stream_cancel(r->agent);
  }
  pthread_mutex_unlock(&r->mu);
  if (lost) relay_finish(r, GRPC_STATUS_RESOURCE_EXHAUSTED, "%s: out of memory", r->target);
  /* -EPIPE: the agent stream already ended; its status reaches the caller. */
}

static void on_exec_half_close(rpc_call *call, void *service_ctx) {
  (void)service_ctx;
  relay *r = rpc_call_user_data(call);
  if (!r) return;
  pthread_mutex_lock(&r->mu);
  bool done = r->call_done, started = r->exec_started;
  pthread_mutex_unlock(&r->mu);
  if (done) return;
  if (!started) return relay_finish(r, GRPC_STATUS_INVALID_ARGUMENT, "Exec: no ExecRequest with start was sent");
  pthread_mutex_lock(&r->mu);
  if (r->agent) rpc_stream_close_send(r->agent); /* the agent reads it as stdin's end */
  pthread_mutex_unlock(&r->mu);
}

/* ---------------------------------------------------------------- module */

bool apiserver_podio_handler(const char *method, rpc_method_handler *h) {
  if (strcmp(method, "Log") == 0) {
    *h = (rpc_method_handler){.name = "Log", .kind = RPC_SERVER_STREAMING, .on_request = on_log};
    return true;
  }
  if (strcmp(method, "Exec") == 0) {
    *h = (rpc_method_handler){
        .name = "Exec",
        .kind = RPC_BIDI_STREAMING,
        .on_start = on_exec_start,
        .on_message = on_exec_message,
        .on_half_close = on_exec_half_close,
    };
    return true;
  }
  return false;
}

int apiserver_podio_init(apiserver *a, keel_error *err) {
  podio *p = calloc(1, sizeof *p);
  if (!p) return keel_error_set(err, ENOMEM, "apiserver: out of memory");
  p->a = a;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->idle, NULL);
  p->cleanup = sched_create(1, "api-podio");
  if (!p->cleanup) {
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->mu);
    free(p);
    return keel_error_set(err, EAGAIN, "apiserver: cannot start the pod I/O worker");
  }
  metrics_registry *reg = metrics_default();
  metric_family *relays = metrics_gauge(reg, "keel_apiserver_pod_relays",
                                        "Pods/Log and Pods/Exec calls relayed to node agents right now.", 1, "method");
  p->m_relays[0] = metric_child(relays, "Log");
  p->m_relays[1] = metric_child(relays, "Exec");
  metric_family *pauses = metrics_counter(reg, "keel_apiserver_pod_relay_pauses_total",
                                          "Times a pod log/exec relay paused one side for the other (flow "
                                          "control, nothing dropped): paused=agent when the caller was too slow "
                                          "for the agent's output, paused=caller when the agent was too slow for "
                                          "the caller's Exec input.",
                                          1, "paused");
  p->m_pauses[0] = metric_child(pauses, "agent");
  p->m_pauses[1] = metric_child(pauses, "caller");
  a->podio = p;
  return 0;
}

void apiserver_podio_destroy(apiserver *a) {
  podio *p = a->podio;
  if (!p) return;
  /* Cancel every open agent stream and wait until each is cleaned up (their
   * on_close submits the cleanup, which needs the worker still running). */
  pthread_mutex_lock(&p->mu);
  p->stopping = true;
  for (relay *r = p->open; r; r = r->next) {
    pthread_mutex_lock(&r->mu);
    if (r->agent) rpc_stream_cancel(r->agent);
    pthread_mutex_unlock(&r->mu);
  }
  while (p->open || p->cleaning) pthread_cond_wait(&p->idle, &p->mu);
  pthread_mutex_unlock(&p->mu);
  sched_destroy(p->cleanup);
  pthread_cond_destroy(&p->idle);
  pthread_mutex_destroy(&p->mu);
  free(p);
  a->podio = NULL;
}
