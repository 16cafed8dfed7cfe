/* services/apiserver/server/internal.h — shared between apiserver.c (the RPC
 * side), ops.c (the write verbs) and the files they call on (list.c, rest.c,
 * service_alloc.c, ...). Not a public contract. */
#ifndef KEEL_SERVICES_APISERVER_SERVER_INTERNAL_H
#define KEEL_SERVICES_APISERVER_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/kinds/kinds.h"
#include "common/rpc/rpc.h"
#include "common/sched/sched.h"
#include "keel/api/v1/core.pb-c.h"
#include "services/apiserver/auth/auth.h"
#include "services/apiserver/cache/watch_cache.h"
#include "services/apiserver/server/apiserver.h"
#include "services/apiserver/storage/objstore.h"

/* A keel.api.v1 service's context: which kind it serves. */
typedef struct kind_ctx {
  struct apiserver *a;
  const api_kind *kind;
} kind_ctx;

typedef struct podio podio;

struct apiserver {
  apiserver_options opts;
  objstore *store;
  watch_cache **caches; /* one per kind, in api_kinds() order */
  size_t ncaches;
  void *ctxs;           /* kind_ctx per kind: the services' contexts */
  sched *reads, *writes;
  atomic_int reads_in_flight, writes_in_flight;
  uint32_t service_net, service_size; /* ClusterIP range (host order) */
  struct protojson *json;              /* the REST gateway's JSON mapping */
  struct metric **m_objects, **m_watchers, **m_revision; /* per kind, refreshed per scrape */
  struct metric *m_reads, *m_writes;
  pthread_mutex_t lease_mu; /* Events share a store lease for a minute (ops.c) */
  int64_t event_lease;
  int64_t event_lease_granted; /* monotonic seconds */
  pthread_mutex_t http_mu;             /* guards http_watches, http_stopping */
  struct rest_watch *http_watches;     /* open REST watch streams */
  bool http_stopping;
  podio *podio;                        /* Pods/Log and Pods/Exec relays (podio.c) */
};

/* Pods/Log and Pods/Exec (podio.c): relays to the pod's node agent. */
int apiserver_podio_init(apiserver *a, keel_error *err);
/* Cancels the open relays and waits for them; after the rpc server stopped. */
void apiserver_podio_destroy(apiserver *a);
/* The handler of a Pods method that podio serves ("Log", "Exec"); false for
 * any other method. Its service context is the kind_ctx. */
bool apiserver_podio_handler(const char *method, rpc_method_handler *h);

/* Pods/Log for the REST gateway: the same authorization, checks and relay as
 * the gRPC call, with the output buffered for a reader thread (bounded: the
 * agent is paused while the reader lags). -errno with err (apiserver_status_for
 * gives the code). */
typedef struct pod_relay pod_log_reader;
struct Keel__Api__V1__PodLogOptions;
int apiserver_pod_log_open(apiserver *a, const auth_identity *id, const struct Keel__Api__V1__PodLogOptions *o,
                           pod_log_reader **out, keel_error *err);
/* Up to max bytes, waiting at most wait_ms: > 0 bytes copied, 0 nothing yet,
 * -1 the log ended: *code is OK at a clean end, else why (msg). */
ssize_t apiserver_pod_log_read(pod_log_reader *r, void *buf, size_t max, int wait_ms, grpc_status_code *code,
                               char *msg, size_t msg_len);
/* Cancels the agent's stream if still open; frees. */
void apiserver_pod_log_close(pod_log_reader *r);
/* Ends every REST reader (they answer "server shutting down"): before httpd_stop. */
void apiserver_podio_http_shutdown(apiserver *a);

/* The REST gateway (rest.c). */
int apiserver_rest_init(apiserver *a, keel_error *err);
void apiserver_rest_destroy(apiserver *a);

watch_cache *apiserver_cache(apiserver *a, const api_kind *k);
grpc_status_code apiserver_status_for(int rc);
/* The request's namespace: "" for cluster-scoped kinds, "default" when unset. */
const char *apiserver_request_namespace(const api_kind *k, const char *ns);

/* Label and field selectors of a List or Watch, checked against the kind
 * (an unsupported field is INVALID_ARGUMENT "field label not supported"). */
typedef struct selectors {
  const api_kind *kind;
  struct labels_selector *labels;
  struct fields_selector *fields;
} selectors;
int selectors_parse(selectors *s, const api_kind *k, const char *label_sel, const char *field_sel,
                    keel_error *err);
void selectors_free(selectors *s);
/* A cache_filter predicate; arg is a selectors. */
bool selectors_match(const api_kind *k, const ProtobufCMessage *obj, void *arg);

/* A list read from the store (list.c): objects with resourceVersion set, the
 * revision the list is at, and a continue token when more remain. */
typedef struct store_list {
  ProtobufCMessage **items;
  size_t n;
  int64_t revision;
  char *continue_token; /* NULL when complete */
} store_list;
/* exact_rev 0 = newest. limit 0 = everything. -EXDEV (OUT_OF_RANGE) when the
 * revision was compacted; -EINVAL for a bad continue token. */
int apiserver_list_from_store(apiserver *a, const api_kind *k, const char *ns, selectors *sel, int64_t exact_rev,
                              int64_t limit, const char *continue_token, store_list *out, keel_error *err);
void store_list_clear(store_list *l);

/* A random (version 4) UID, as Kubernetes gives every object. */
void apiserver_new_uid(char out[37]);

/* A resourceVersion: "" -> 0 with *set false; decimal digits -> the value
 * (0 included) with *set true; anything else -EINVAL with err. (ops.c) */
int parse_rv(const char *s, int64_t *rv, bool *set, keel_error *err);

/* A Service's ClusterIP and NodePorts, allocated as keys in its own txn
 * (service_alloc.c). Each returns 0 or a negative errno with err (-EINVAL for
 * a client-chosen IP or port that is taken, -ENOSPC when random picks keep
 * colliding). */
/* Creates svc (validated), picking the ClusterIP and the nodePorts it leaves empty. */
int apiserver_service_create(apiserver *a, const api_kind *k, Keel__Api__V1__Service *svc, int64_t *rev,
                             keel_error *err);
/* Before validating an update (after defaulting next): carries the ClusterIP
 * and the nodePorts of ports the client left empty over from cur, and drops
 * the nodePorts of a Service that leaves type NodePort. */
void apiserver_service_prepare_update(Keel__Api__V1__Service *next, const Keel__Api__V1__Service *cur);
/* Writes next over cur (read at cur_rev): new ports' nodePorts are taken,
 * removed ones released, in the same txn. -ESTALE when cur changed. dry_run
 * fills next and checks client-chosen nodePorts, writing nothing. */
int apiserver_service_update(apiserver *a, const api_kind *k, Keel__Api__V1__Service *next,
                             const Keel__Api__V1__Service *cur, int64_t cur_rev, bool dry_run, int64_t *rev,
                             keel_error *err);
/* Deletes cur (read at cur_rev) and releases its ClusterIP and NodePorts. */
int apiserver_service_delete(apiserver *a, const api_kind *k, const Keel__Api__V1__Service *cur, int64_t cur_rev,
                             int64_t *rev, keel_error *err);

int apiserver_ops_init(apiserver *a, keel_error *err);
void apiserver_ops_destroy(apiserver *a);

/* Where a verb's answer goes: the gRPC call or the REST gateway's response.
 * Exactly one of the two callbacks runs, once. object's message is borrowed
 * (apiVersion, kind and resourceVersion set; kind NULL for a Scale). */
typedef struct api_responder {
  void (*object)(void *arg, const api_kind *k, const ProtobufCMessage *obj);
  void (*error)(void *arg, grpc_status_code code, const char *message);
  void *arg;
  bool dry_run; /* validate and admit, write nothing */
} api_responder;

/* The verbs. req is the decoded request, owned by the caller (a verb may
 * change it in place). */
void apiserver_do_create(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *req);
void apiserver_do_update(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *req, const char *subresource);
void apiserver_do_delete(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                         ProtobufCMessage *req);
void apiserver_do_bind(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                       ProtobufCMessage *req);
void apiserver_do_get_scale(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                            ProtobufCMessage *req);
void apiserver_do_update_scale(apiserver *a, const api_kind *k, const api_responder *call, const auth_identity *id,
                               ProtobufCMessage *req);

#endif
