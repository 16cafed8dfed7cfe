/* common/metrics/metrics.h — a Prometheus text-format metrics registry.
 *
 * A family has a name, help, type and fixed label names; a child is one label
 * value combination. Hot paths hold child pointers and update them with atomics
 * (no locks, no allocation); looking a child up by label values takes a lock and
 * is meant for setup time or rare paths. Families and children live as long as
 * the registry. metrics_render writes the text exposition format 0.0.4, families
 * sorted by name, children in creation order.
 *
 *   metric_family *f = metrics_counter(reg, "keel_rpc_server_handled_total",
 *                                      "RPCs completed, by method and code.", 2, "method", "code");
 *   metric *m = metric_child(f, "/keel.echo.v1.Echo/Echo", "OK");
 *   metric_inc(m);
 */
#ifndef KEEL_COMMON_METRICS_METRICS_H
#define KEEL_COMMON_METRICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct metrics_registry metrics_registry;
typedef struct metric_family metric_family;
typedef struct metric metric;

/* The process-wide registry every module registers into (created on first use,
 * freed by metrics_shutdown). Tests may create private registries. */
metrics_registry *metrics_default(void);
metrics_registry *metrics_registry_create(void);
void metrics_registry_destroy(metrics_registry *reg);
/* Frees the default registry (end of main; keeps valgrind quiet). */
void metrics_shutdown(void);

/* Registering the same name twice returns the existing family when the type and
 * label names match (and, for histograms, the bounds), NULL otherwise. At most 8
 * label names. Invalid metric or label names (Prometheus rules; "__" prefixes
 * and a histogram's "le" are reserved) return NULL. Every function below accepts
 * a NULL registry, family or metric and does nothing, so a failed registration
 * never crashes a hot path. */
metric_family *metrics_counter(metrics_registry *reg, const char *name, const char *help,
                               int nlabels, ...);
metric_family *metrics_gauge(metrics_registry *reg, const char *name, const char *help,
                             int nlabels, ...);
/* bounds: ascending upper bounds (seconds for latencies), copied; +Inf is implicit. */
metric_family *metrics_histogram(metrics_registry *reg, const char *name, const char *help,
                                 const double *bounds, size_t nbounds, int nlabels, ...);

/* Child for these label values (exactly nlabels strings), created on first use.
 * NULL past 10000 children in one family: a runaway label cannot eat memory. */
metric *metric_child(metric_family *f, ...);
/* Same with values in an array. */
metric *metric_child_v(metric_family *f, const char *const *values);

void metric_inc(metric *m);                 /* counter or gauge += 1 */
void metric_add(metric *m, double v);       /* counter (v >= 0) or gauge += v */
void metric_set(metric *m, double v);       /* gauge */
void metric_observe(metric *m, double v);   /* histogram */
double metric_value(const metric *m);       /* counter/gauge value; histogram count */

/* A gauge whose value is computed when rendering (e.g. jemalloc stats). The
 * callback runs under the registry lock: it must not register metrics. */
typedef double (*metric_gauge_fn)(void *arg);
metric_family *metrics_gauge_func(metrics_registry *reg, const char *name, const char *help,
                                  metric_gauge_fn fn, void *arg);

/* Runs fn(arg) once at the start of every metrics_render, under the registry
 * lock and before any gauge callback: a collector that snapshots state once per
 * scrape (jemalloc's "epoch") hooks in here. Registering the same fn and arg
 * again is a no-op. Returns 0, -EINVAL or -ENOMEM. */
typedef void (*metrics_render_hook_fn)(void *arg);
int metrics_on_render(metrics_registry *reg, metrics_render_hook_fn fn, void *arg);

/* Renders every family; returns a malloc'ed NUL-terminated string (*len set). */
char *metrics_render(metrics_registry *reg, size_t *len);

/* Latency buckets in seconds, 100us .. 10s, for RPC and disk histograms. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_buckets_len;

#endif
