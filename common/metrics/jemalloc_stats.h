/* common/metrics/jemalloc_stats.h — jemalloc's allocator statistics as gauges.
 *
 * Registers keel_jemalloc_{allocated,active,resident,mapped,retained,metadata}_bytes
 * in reg; each render refreshes jemalloc's "epoch" once and reads the stats
 * through mallctl. Every daemon links jemalloc (//common/metrics:jemalloc) so
 * malloc is jemalloc's; calling this with another allocator returns -ENOTSUP. */
#ifndef KEEL_COMMON_METRICS_JEMALLOC_STATS_H
#define KEEL_COMMON_METRICS_JEMALLOC_STATS_H

#include "common/metrics/metrics.h"

int jemalloc_stats_register(metrics_registry *reg);

#endif
