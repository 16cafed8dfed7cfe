/* common/httpd/httpd.h — the HTTP side of every daemon (libmicrohttpd).
 *
 * Serves GET /metrics (the registry rendered in Prometheus text format 0.0.4,
 * Content-Type "text/plain; version=0.0.4") and GET /healthz ("ok" with 200 while
 * the health callback returns true, "shutting down" with 503 otherwise). More
 * other path goes to an optional handler (keel-apiserver's REST gateway), in
 * libmicrohttpd's access-handler style. libmicrohttpd runs its own thread(s);
 * nothing here touches gRPC threads. */
#ifndef KEEL_COMMON_HTTPD_HTTPD_H
#define KEEL_COMMON_HTTPD_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"
#include "common/metrics/metrics.h"

typedef struct httpd httpd;

typedef bool (*httpd_health_fn)(void *arg);

/* A handler for every path but /metrics and /healthz, called like an MHD
 * access handler: first with *req_cls NULL (headers only), then with body
 * chunks until *upload_data_size is 0 on the last call, when it must queue a
 * response. *req_cls is the handler's own per-request pointer. */
typedef enum MHD_Result (*httpd_handler_fn)(void *arg, struct MHD_Connection *conn, const char *url,
                                            const char *method, const char *upload_data,
                                            size_t *upload_data_size, void **req_cls);
/* Runs once per request the handler saw, when it ends (sent, or the client
 * went away), with the handler's *req_cls: the place to free it. */
typedef void (*httpd_completed_fn)(void *arg, void *req_cls);

typedef struct httpd_options {
  const char *listen;         /* "127.0.0.1:9100", "0.0.0.0:0" (port 0: pick one) */
  metrics_registry *registry; /* rendered at /metrics; NULL = metrics_default() */
  httpd_health_fn healthy;    /* NULL = always healthy */
  void *health_arg;
  httpd_handler_fn handler;   /* other paths; NULL = 404 */
  httpd_completed_fn completed;
  void *handler_arg;
  /* A thread per connection instead of one epoll thread, so the handler may
   * block (synchronous store calls, a watch stream waiting for events).
   * Connections stay bounded (128), so threads do too. */
  bool thread_per_connection;
  /* HTTPS: PEM files of the server's certificate and key. With a client CA,
   * clients are asked for a certificate (optional at the TLS level: the
   * handler decides, through httpd_client_cert_pem). */
  const char *tls_cert_file;
  const char *tls_key_file;
  const char *tls_client_ca_file;
} httpd_options;

httpd *httpd_start(const httpd_options *opts, keel_error *err);
/* The client certificate of an HTTPS connection, in PEM (malloc'ed), when the
 * client sent one that verifies against tls_client_ca_file; NULL otherwise
 * (plain HTTP, no certificate, or one that does not verify). */
char *httpd_client_cert_pem(struct MHD_Connection *conn);

/* Port actually bound (useful with port 0). */
int httpd_port(const httpd *h);
/* Stops accepting, finishes in-flight requests, frees. NULL is fine. */
void httpd_stop(httpd *h);

#endif
