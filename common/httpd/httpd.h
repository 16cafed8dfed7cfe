/* common/httpd/httpd.h — the HTTP side of every daemon (libmicrohttpd).
 *
 * Serves GET /metrics (the registry rendered in Prometheus text format 0.0.4,
 * Content-Type "text/plain; version=0.0.4") and GET /healthz ("ok" with 200 while
 * the health callback returns true, "shutting down" with 503 otherwise). More
 * paths can be routed with httpd_handle (the apiserver's REST gateway, later).
 * libmicrohttpd runs its own thread(s); nothing here touches gRPC threads. */
#ifndef KEEL_COMMON_HTTPD_HTTPD_H
#define KEEL_COMMON_HTTPD_HTTPD_H

#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"
#include "common/metrics/metrics.h"

typedef struct httpd httpd;

typedef bool (*httpd_health_fn)(void *arg);

typedef struct httpd_options {
  const char *listen;         /* "127.0.0.1:9100", "0.0.0.0:0" (port 0: pick one) */
  metrics_registry *registry; /* rendered at /metrics; NULL = metrics_default() */
  httpd_health_fn healthy;    /* NULL = always healthy */
  void *health_arg;
} httpd_options;

httpd *httpd_start(const httpd_options *opts, keel_error *err);
/* Port actually bound (useful with port 0). */
int httpd_port(const httpd *h);
/* Stops accepting, finishes in-flight requests, frees. NULL is fine. */
void httpd_stop(httpd *h);

#endif
