/* common/metrics/metrics_internal.h — the structures metrics.c (registry,
 * children, atomics) and metrics_render.c (text format) share. Not a contract:
 * nothing outside this package includes it. */
#ifndef KEEL_COMMON_METRICS_METRICS_INTERNAL_H
#define KEEL_COMMON_METRICS_METRICS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "common/metrics/metrics.h"

#define METRICS_MAX_LABELS 8
#define METRICS_MAX_CHILDREN 10000

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

struct metric {
  metric_kind kind; /* copied from the family: hot paths avoid a pointer chase */
  metric_family *family;
  struct metric *next;  /* creation order */
  struct metric *chain; /* hash bucket */
  uint64_t hash;
  char *values[METRICS_MAX_LABELS];
  _Atomic uint64_t count;    /* counter: integral increments */
  _Atomic uint64_t bits;     /* counter: fractional part; gauge: value; histogram: sum */
  _Atomic uint64_t *buckets; /* histogram: nbounds + 1 counts, the last is +Inf */
};

struct metric_family {
  char *name;
  char *help;
  metric_kind kind;
  int nlabels;
  char *labels[METRICS_MAX_LABELS];
  double *bounds;
  size_t nbounds;
  metric_gauge_fn fn; /* non-NULL: a callback gauge without children */
  void *fn_arg;
  pthread_mutex_t lock; /* guards everything below */
  metric *first, *last;
  metric **table;
  size_t table_size; /* power of two */
  size_t nchildren;
};

typedef struct render_hook {
  metrics_render_hook_fn fn;
  void *arg;
} render_hook;

struct metrics_registry {
  pthread_mutex_t lock;
  metric_family **families; /* sorted by name */
  size_t nfamilies, cap;
  render_hook *hooks;
  size_t nhooks;
};

/* Doubles are stored as their bit patterns so they can live in atomics. */
static inline uint64_t double_bits(double d) {
  uint64_t u;
  memcpy(&u, &d, sizeof(u));
  return u;
}

static inline double bits_double(uint64_t u) {
  double d;
  memcpy(&d, &u, sizeof(d));
  return d;
}

static inline double load_double(const _Atomic uint64_t *p) {
  return bits_double(atomic_load_explicit((_Atomic uint64_t *)p, memory_order_relaxed));
}

#endif
