/* services/apiserver/server/apiserver.h — keel-apiserver's generic API: one
 * implementation of every keel.api.v1 service, driven by common/kinds.
 *
 * Requests are authenticated and authorized on the completion-queue thread,
 * then run on a worker pool (reads and writes separately, each with a bound on
 * requests in flight beyond which callers get RESOURCE_EXHAUSTED): workers
 * talk to the store synchronously. Reads come from the watch caches; writes are
 * compare-and-swap txns through storage/objstore. Watches register with the
 * kind's watch cache and stream shared, pre-encoded events. */
#ifndef KEEL_SERVICES_APISERVER_SERVER_APISERVER_H
#define KEEL_SERVICES_APISERVER_SERVER_APISERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/etcd/etcd.h"
#include "common/httpd/httpd.h"
#include "common/rpc/rpc.h"
#include "services/apiserver/auth/auth.h"

typedef struct apiserver apiserver;

typedef struct apiserver_options {
  etcd_client *etcd;            /* borrowed */
  const char *storage_prefix;   /* default "/registry" */
  const authenticator *auth;    /* borrowed */
  int read_workers, write_workers;        /* store calls in flight; default 32 and 64 */
  int max_reads_in_flight, max_writes_in_flight; /* default 400 and 200 */
  const char *service_cidr;     /* ClusterIP range, default "10.96.0.0/16" */
  int node_port_min, node_port_max;      /* default 30000-32767 */
  size_t watch_window;          /* events kept per kind; default 10000 */
  int bookmark_interval_ms;     /* default 10000 */
  size_t watcher_queue;         /* pending events per watcher; default 1000 */
  int64_t event_ttl_s;          /* Events expire after this long; default 3600 */
  /* Pods/Log and Pods/Exec reach node agents over TLS when any is set:
   * --kubelet-client-certificate, --kubelet-client-key,
   * --kubelet-certificate-authority. Otherwise insecure (tests, unix sockets). */
  const char *kubelet_client_cert, *kubelet_client_key, *kubelet_ca;
} apiserver_options;

/* Starts a watch cache per kind (listing the store) and the worker pools. */
apiserver *apiserver_create(const apiserver_options *opts, keel_error *err);
/* Registers every kind's service and the API descriptors on srv. */
int apiserver_register(apiserver *a, rpc_server *srv, keel_error *err);
/* The REST/JSON gateway (Kubernetes' paths: /api/v1/namespaces/{ns}/pods,
 * /apis/apps/v1/..., ?watch=1 as a stream of JSON events) as the handler of an
 * httpd: fills handler, completed, handler_arg and thread_per_connection. */
void apiserver_http_options(apiserver *a, httpd_options *opts);
/* Ends open REST watch streams (call before httpd_stop). */
void apiserver_http_shutdown(apiserver *a);
/* After the rpc server shut down: stops caches and workers, frees. */
void apiserver_destroy(apiserver *a);

#endif
