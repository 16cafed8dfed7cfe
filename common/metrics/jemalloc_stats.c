/* common/metrics/jemalloc_stats.c — see jemalloc_stats.h.
 *
 * jemalloc's stats are a snapshot that only moves when someone writes its
 * "epoch"; reading them without that returns whatever the last refresh saw.
 * So a render hook bumps the epoch once per scrape, and each gauge then reads
 * its own value from that same snapshot. Nothing is cached here: the gauges'
 * arguments are the mallctl names, so registering into several registries, or
 * twice into one, needs no state to own or free. */
#include "common/metrics/jemalloc_stats.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/base/cleanup.h"

static const struct {
  const char *metric;
  const char *mallctl;
  const char *help;
} jemalloc_gauges[] = {
    {"keel_jemalloc_allocated_bytes", "stats.allocated",
     "Bytes allocated by the application (jemalloc stats.allocated)."},
    {"keel_jemalloc_active_bytes", "stats.active",
     "Bytes in active pages allocated by the application (jemalloc stats.active)."},
    {"keel_jemalloc_resident_bytes", "stats.resident",
     "Bytes in physically resident data pages mapped by jemalloc (jemalloc stats.resident)."},
    {"keel_jemalloc_mapped_bytes", "stats.mapped",
     "Bytes in active extents mapped by jemalloc (jemalloc stats.mapped)."},
    {"keel_jemalloc_retained_bytes", "stats.retained",
     "Bytes in virtual memory retained by jemalloc, not returned to the OS (jemalloc "
     "stats.retained)."},
    {"keel_jemalloc_metadata_bytes", "stats.metadata",
     "Bytes dedicated to jemalloc metadata (jemalloc stats.metadata)."},
};

static void refresh_epoch(void *arg) {
  (void)arg;
  uint64_t epoch = 1;
  size_t sz = sizeof(epoch);
  mallctl("epoch", &epoch, &sz, &epoch, sz);
}

static double read_stat(void *arg) {
  size_t v, sz = sizeof(v);
  if (mallctl((const char *)arg, &v, &sz, NULL, 0) != 0) return NAN;
  return (double)v;
}

static uint64_t thread_allocated(bool *ok) {
  uint64_t v = 0;
  size_t sz = sizeof(v);
  *ok = *ok && mallctl("thread.allocated", &v, &sz, NULL, 0) == 0;
  return v;
}

/* mallctl answering is not enough: under ASan (or any interposed allocator)
 * libjemalloc is still loaded and answers, while malloc goes elsewhere. So
 * allocate and see whether jemalloc's per-thread byte counter moved. The call
 * goes through a volatile pointer so the compiler cannot elide the pair. */
static bool jemalloc_is_allocator(void) {
  const char *version = NULL;
  size_t sz = sizeof(version);
  if (mallctl("version", &version, &sz, NULL, 0) != 0 || !version) return false;
  void *(*volatile alloc)(size_t) = malloc;
  bool ok = true;
  uint64_t before = thread_allocated(&ok);
  cleanup_free void *p = alloc(4096);
  uint64_t after = thread_allocated(&ok);
  return ok && p && after > before;
}

int jemalloc_stats_register(metrics_registry *reg) {
  if (!reg) return -EINVAL;
  if (!jemalloc_is_allocator()) return -ENOTSUP;
  int ret = metrics_on_render(reg, refresh_epoch, NULL);
  if (ret < 0) return ret;
  for (size_t i = 0; i < KEEL_ARRAY_LEN(jemalloc_gauges); i++) {
    /* Same name, fn and arg again returns the existing family; NULL means the
     * name is taken by something else (or memory ran out). */
    if (!metrics_gauge_func(reg, jemalloc_gauges[i].metric, jemalloc_gauges[i].help, read_stat,
                            (void *)jemalloc_gauges[i].mallctl))
      return -EEXIST;
  }
  return 0;
}
