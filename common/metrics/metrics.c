/* common/metrics/metrics.c — see metrics.h.
 *
 * Three levels, three kinds of synchronization:
 *  - The registry keeps its families in an array sorted by name, under one
 *    mutex. Registration is rare, and rendering wants sorted output anyway, so
 *    a sorted array (binary search to find, memmove to insert) beats a hash.
 *  - A family keeps its children in creation order (a list, for rendering) and
 *    in a small chained hash table (for metric_child), under the family's own
 *    mutex, so looking up children of different families never contends.
 *    Lock order is registry -> family; nothing takes them the other way.
 *  - A child's values are C11 atomics updated without any lock. Doubles live in
 *    uint64_t bit patterns updated by compare-and-swap loops. A counter also has
 *    an integer part so metric_inc (the common case) is one fetch_add, as the
 *    Go client does. A histogram keeps per-bucket (not cumulative) counts so an
 *    observation touches one bucket; the render makes them cumulative and takes
 *    _count from the same snapshot, so "+Inf" always equals _count even while
 *    observations race with the scrape.
 * Relaxed memory order everywhere: a scrape needs each value to be some recent
 * value, not a consistent cut across metrics. The structures are in
 * metrics_internal.h; the text format is metrics_render.c. */
#include "common/metrics/metrics.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/metrics/metrics_internal.h"

const double metrics_latency_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                          0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                          1,      2.5,     5,      10};
const size_t metrics_latency_buckets_len = KEEL_ARRAY_LEN(metrics_latency_buckets);

/* ---- atomic doubles ---------------------------------------------------- */

static void atomic_add_double(_Atomic uint64_t *p, double v) {
  uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
  /* On failure the CAS reloads old, so each retry adds to the newest value. */
  while (!atomic_compare_exchange_weak_explicit(p, &old, double_bits(bits_double(old) + v),
                                                memory_order_relaxed, memory_order_relaxed)) {
  }
}

/* ---- names ------------------------------------------------------------- */

static bool is_alpha_(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* [a-zA-Z_:][a-zA-Z0-9_:]* */
static bool valid_metric_name(const char *s) {
  if (!s || !*s) return false;
  for (size_t i = 0; s[i]; i++)
    if (!is_alpha_(s[i]) && s[i] != ':' && !(i > 0 && is_digit(s[i]))) return false;
  return true;
}

/* [a-zA-Z_][a-zA-Z0-9_]*, and "__" is reserved for Prometheus itself. */
static bool valid_label_name(const char *s) {
  if (!s || !*s || strncmp(s, "__", 2) == 0) return false;
  for (size_t i = 0; s[i]; i++)
    if (!is_alpha_(s[i]) && !(i > 0 && is_digit(s[i]))) return false;
  return true;
}

/* ---- families ---------------------------------------------------------- */

static void child_free(metric *m) {
  for (int i = 0; i < METRICS_MAX_LABELS; i++) free(m->values[i]);
  free(m->buckets);
  free(m);
}

static void family_free(metric_family *f) {
  if (!f) return;
  for (metric *m = f->first, *next; m; m = next) {
    next = m->next;
    child_free(m);
  }
  for (int i = 0; i < f->nlabels; i++) free(f->labels[i]);
  free(f->table);
  free(f->bounds);
  free(f->name);
  free(f->help);
  pthread_mutex_destroy(&f->lock);
  free(f);
}

/* Index of name in the sorted array, or where it would be inserted (*found false). */
static size_t family_search(const metrics_registry *reg, const char *name, bool *found) {
  size_t lo = 0, hi = reg->nfamilies;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int c = strcmp(reg->families[mid]->name, name);
    if (c == 0) {
      *found = true;
      return mid;
    }
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  *found = false;
  return lo;
}

static bool family_matches(const metric_family *f, metric_kind kind, int nlabels,
                           const char *const *labels, const double *bounds, size_t nbounds,
                           metric_gauge_fn fn, void *arg) {
  if (f->kind != kind || f->nlabels != nlabels || f->fn != fn || f->fn_arg != arg) return false;
  for (int i = 0; i < nlabels; i++)
    if (strcmp(f->labels[i], labels[i]) != 0) return false;
  if (f->nbounds != nbounds) return false;
  for (size_t i = 0; i < nbounds; i++)
    if (f->bounds[i] != bounds[i]) return false;
  return true;
}

static metric *child_get(metric_family *f, const char *const *values);

static metric_family *family_new(const char *name, const char *help, metric_kind kind,
                                 int nlabels, const char *const *labels, const double *bounds,
                                 size_t nbounds, metric_gauge_fn fn, void *arg) {
  metric_family *f = calloc(1, sizeof(*f));
  if (!f) return NULL;
  pthread_mutex_init(&f->lock, NULL);
  f->kind = kind;
  f->fn = fn;
  f->fn_arg = arg;
  f->name = strdup(name);
  f->help = strdup(help ? help : "");
  bool ok = f->name && f->help;
  for (int i = 0; ok && i < nlabels; i++) {
    f->labels[i] = strdup(labels[i]);
    ok = f->labels[i] != NULL;
    f->nlabels = i + 1;
  }
  if (ok && nbounds > 0) {
    f->bounds = malloc(nbounds * sizeof(double));
    ok = f->bounds != NULL;
    if (ok) memcpy(f->bounds, bounds, nbounds * sizeof(double));
    f->nbounds = nbounds;
  }
  /* A family without labels has exactly one child; creating it now makes it
   * render as 0 from the first scrape, as Prometheus clients do. */
  if (ok && nlabels == 0 && !fn) ok = child_get(f, NULL) != NULL;
  if (!ok) {
    family_free(f);
    return NULL;
  }
  return f;
}

static metric_family *family_register(metrics_registry *reg, const char *name, const char *help,
                                      metric_kind kind, int nlabels, const char *const *labels,
                                      const double *bounds, size_t nbounds, metric_gauge_fn fn,
                                      void *arg) {
  if (!reg || !valid_metric_name(name)) return NULL;
  for (int i = 0; i < nlabels; i++) {
    if (!valid_label_name(labels[i])) return NULL;
    if (kind == KIND_HISTOGRAM && strcmp(labels[i], "le") == 0) return NULL;
    for (int j = 0; j < i; j++)
      if (strcmp(labels[i], labels[j]) == 0) return NULL;
  }
  if (nbounds > 0 && !bounds) return NULL;
  /* +Inf is implicit; accept it spelled out as the last bound too. */
  if (nbounds > 0 && bounds[nbounds - 1] == (double)INFINITY) nbounds--;
  for (size_t i = 0; i < nbounds; i++)
    if (bounds[i] != bounds[i] || (i > 0 && !(bounds[i] > bounds[i - 1]))) return NULL;

  metric_family *ret = NULL;
  pthread_mutex_lock(&reg->lock);
  bool found;
  size_t at = family_search(reg, name, &found);
  if (found) {
    metric_family *f = reg->families[at];
    if (family_matches(f, kind, nlabels, labels, bounds, nbounds, fn, arg)) ret = f;
    goto out;
  }
  if (reg->nfamilies == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 16;
    metric_family **fs = realloc(reg->families, cap * sizeof(*fs));
    if (!fs) goto out;
    reg->families = fs;
    reg->cap = cap;
  }
  ret = family_new(name, help, kind, nlabels, labels, bounds, nbounds, fn, arg);
  if (!ret) goto out;
  memmove(&reg->families[at + 1], &reg->families[at],
          (reg->nfamilies - at) * sizeof(*reg->families));
  reg->families[at] = ret;
  reg->nfamilies++;
out:
  pthread_mutex_unlock(&reg->lock);
  return ret;
}

/* Reads nlabels `const char *` varargs; false if nlabels is out of range. */
#define COLLECT_LABELS(names, nlabels, last)                          \
  const char *names[METRICS_MAX_LABELS] = {0};                        \
  if ((nlabels) < 0 || (nlabels) > METRICS_MAX_LABELS) return NULL;   \
  do {                                                                \
    va_list ap_;                                                      \
    va_start(ap_, last);                                              \
    for (int i_ = 0; i_ < (nlabels); i_++) names[i_] = va_arg(ap_, const char *); \
    va_end(ap_);                                                      \
  } while (0)

metric_family *metrics_counter(metrics_registry *reg, const char *name, const char *help,
                               int nlabels, ...) {
  COLLECT_LABELS(labels, nlabels, nlabels);
  return family_register(reg, name, help, KIND_COUNTER, nlabels, labels, NULL, 0, NULL, NULL);
}

metric_family *metrics_gauge(metrics_registry *reg, const char *name, const char *help,
                             int nlabels, ...) {
  COLLECT_LABELS(labels, nlabels, nlabels);
  return family_register(reg, name, help, KIND_GAUGE, nlabels, labels, NULL, 0, NULL, NULL);
}

metric_family *metrics_histogram(metrics_registry *reg, const char *name, const char *help,
                                 const double *bounds, size_t nbounds, int nlabels, ...) {
  COLLECT_LABELS(labels, nlabels, nlabels);
  return family_register(reg, name, help, KIND_HISTOGRAM, nlabels, labels, bounds, nbounds,
                         NULL, NULL);
}

metric_family *metrics_gauge_func(metrics_registry *reg, const char *name, const char *help,
                                  metric_gauge_fn fn, void *arg) {
  if (!fn) return NULL;
  return family_register(reg, name, help, KIND_GAUGE, 0, NULL, NULL, 0, fn, arg);
}

/* ---- children ---------------------------------------------------------- */

/* FNV-1a over the values, each followed by a byte no UTF-8 text contains, so
 * ("ab","c") and ("a","bc") hash apart. */
static uint64_t values_hash(int n, const char *const *values) {
  uint64_t h = 14695981039346656037ULL;
  for (int i = 0; i < n; i++) {
    for (const unsigned char *p = (const unsigned char *)values[i]; *p; p++)
      h = (h ^ *p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
  }
  return h;
}

static bool values_equal(const metric *m, int n, const char *const *values) {
  for (int i = 0; i < n; i++)
    if (strcmp(m->values[i], values[i]) != 0) return false;
  return true;
}

/* Doubles the table; caller holds f->lock. False (and the old table kept) on OOM. */
static bool table_grow(metric_family *f) {
  size_t size = f->table_size ? f->table_size * 2 : 8;
  metric **t = calloc(size, sizeof(*t));
  if (!t) return false;
  for (metric *m = f->first; m; m = m->next) {
    size_t b = m->hash & (size - 1);
    m->chain = t[b];
    t[b] = m;
  }
  free(f->table);
  f->table = t;
  f->table_size = size;
  return true;
}

static metric *child_new(metric_family *f, uint64_t hash, const char *const *values) {
  metric *m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->kind = f->kind;
  m->family = f;
  m->hash = hash;
  for (int i = 0; i < f->nlabels; i++) {
    if (!(m->values[i] = strdup(values[i]))) goto fail;
  }
  if (f->kind == KIND_HISTOGRAM) {
    m->buckets = calloc(f->nbounds + 1, sizeof(*m->buckets));
    if (!m->buckets) goto fail;
  }
  return m;
fail:
  child_free(m);
  return NULL;
}

static metric *child_get(metric_family *f, const char *const *values) {
  for (int i = 0; i < f->nlabels; i++)
    if (!values[i]) return NULL;
  uint64_t hash = values_hash(f->nlabels, values);
  metric *m = NULL;
  pthread_mutex_lock(&f->lock);
  if (f->table_size) {
    for (m = f->table[hash & (f->table_size - 1)]; m; m = m->chain)
      if (m->hash == hash && values_equal(m, f->nlabels, values)) goto out;
  }
  if (f->nchildren >= METRICS_MAX_CHILDREN) goto out;
  if (f->nchildren >= f->table_size && !table_grow(f)) goto out;
  if (!(m = child_new(f, hash, values))) goto out;
  size_t b = hash & (f->table_size - 1);
  m->chain = f->table[b];
  f->table[b] = m;
  if (f->last)
    f->last->next = m;
  else
    f->first = m;
  f->last = m;
  f->nchildren++;
out:
  pthread_mutex_unlock(&f->lock);
  return m;
}

metric *metric_child_v(metric_family *f, const char *const *values) {
  if (!f || f->fn || (f->nlabels > 0 && !values)) return NULL;
  return child_get(f, values);
}

metric *metric_child(metric_family *f, ...) {
  if (!f) return NULL;
  const char *values[METRICS_MAX_LABELS] = {0};
  va_list ap;
  va_start(ap, f);
  for (int i = 0; i < f->nlabels; i++) values[i] = va_arg(ap, const char *);
  va_end(ap);
  return metric_child_v(f, values);
}

/* ---- hot path ---------------------------------------------------------- */

void metric_inc(metric *m) {
  if (!m) return;
  if (m->kind == KIND_COUNTER)
    atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
  else if (m->kind == KIND_GAUGE)
    atomic_add_double(&m->bits, 1.0);
}

void metric_add(metric *m, double v) {
  if (!m) return;
  if (m->kind == KIND_GAUGE) {
    atomic_add_double(&m->bits, v);
  } else if (m->kind == KIND_COUNTER) {
    /* A counter only goes up; !(v >= 0) also drops NaN. */
    if (!(v >= 0)) return;
    if (v < 18446744073709551616.0 && v == (double)(uint64_t)v)
      atomic_fetch_add_explicit(&m->count, (uint64_t)v, memory_order_relaxed);
    else
      atomic_add_double(&m->bits, v);
  }
}

void metric_set(metric *m, double v) {
  if (m && m->kind == KIND_GAUGE)
    atomic_store_explicit(&m->bits, double_bits(v), memory_order_relaxed);
}

void metric_observe(metric *m, double v) {
  if (!m || m->kind != KIND_HISTOGRAM) return;
  const metric_family *f = m->family;
  /* First bound >= v; NaN compares false everywhere and lands in +Inf, as in
   * the Go client. */
  size_t lo = 0, hi = f->nbounds;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (v <= f->bounds[mid])
      hi = mid;
    else
      lo = mid + 1;
  }
  atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
  atomic_add_double(&m->bits, v);
}

static uint64_t histogram_count(const metric *m) {
  uint64_t n = 0;
  for (size_t i = 0; i <= m->family->nbounds; i++)
    n += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
  return n;
}

double metric_value(const metric *m) {
  if (!m) return 0;
  switch (m->kind) {
  case KIND_COUNTER:
    return (double)atomic_load_explicit((_Atomic uint64_t *)&m->count, memory_order_relaxed) +
           load_double(&m->bits);
  case KIND_GAUGE:
    return load_double(&m->bits);
  case KIND_HISTOGRAM:
    return (double)histogram_count(m);
  }
  return 0;
}

/* ---- registries -------------------------------------------------------- */

metrics_registry *metrics_registry_create(void) {
  metrics_registry *reg = calloc(1, sizeof(*reg));
  if (reg) pthread_mutex_init(&reg->lock, NULL);
  return reg;
}

void metrics_registry_destroy(metrics_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->nfamilies; i++) family_free(reg->families[i]);
  free(reg->families);
  free(reg->hooks);
  pthread_mutex_destroy(&reg->lock);
  free(reg);
}

int metrics_on_render(metrics_registry *reg, metrics_render_hook_fn fn, void *arg) {
  if (!reg || !fn) return -EINVAL;
  int ret = 0;
  pthread_mutex_lock(&reg->lock);
  for (size_t i = 0; i < reg->nhooks; i++)
    if (reg->hooks[i].fn == fn && reg->hooks[i].arg == arg) goto out;
  render_hook *hooks = realloc(reg->hooks, (reg->nhooks + 1) * sizeof(*hooks));
  if (!hooks) {
    ret = -ENOMEM;
    goto out;
  }
  hooks[reg->nhooks++] = (render_hook){fn, arg};
  reg->hooks = hooks;
out:
  pthread_mutex_unlock(&reg->lock);
  return ret;
}

/* The default registry is created once (pthread_once makes the first use from
 * several threads safe) and, after metrics_shutdown, stays NULL: late users get
 * the NULL-tolerant no-ops instead of a registry nobody would free. */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static _Atomic(metrics_registry *) default_registry;

static void default_create(void) {
  atomic_store(&default_registry, metrics_registry_create());
}

static void default_skip(void) {}

metrics_registry *metrics_default(void) {
  pthread_once(&default_once, default_create);
  return atomic_load(&default_registry);
}

void metrics_shutdown(void) {
  pthread_once(&default_once, default_skip);
  metrics_registry_destroy(atomic_exchange(&default_registry, NULL));
}
