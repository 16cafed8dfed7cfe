/* services/store/server/store_metrics.h — the engine's state as Prometheus
 * gauges on /metrics: keel_store_revision, keel_store_compact_revision,
 * keel_store_keys, keel_store_memory_bytes, keel_store_raft_index,
 * keel_store_wal_fsyncs, keel_store_wal_records, and etcd's
 * etcd_server_has_leader (always 1) and etcd_mvcc_db_total_size_in_bytes
 * (the memory size, as Maintenance.Status's dbSize), so dashboards made for
 * etcd find something.
 *
 * One store_get_status per scrape (a render hook); the gauges read that
 * snapshot. The registry keeps the callbacks for its lifetime, so the store
 * and this object must outlive every render: stop the HTTP side first. */
#ifndef KEEL_SERVICES_STORE_SERVER_STORE_METRICS_H
#define KEEL_SERVICES_STORE_SERVER_STORE_METRICS_H

#include "common/metrics/metrics.h"
#include "services/store/engine/store.h"
#include "services/store/watch/watch_hub.h"

typedef struct store_metrics store_metrics;

store_metrics *store_metrics_register(metrics_registry *reg, store *s);
void store_metrics_free(store_metrics *m);
/* Adds the watch hub's gauges (watchers, streams, unsynced); hub borrowed, and
 * must outlive the metrics or be detached with NULL before it goes. */
void store_metrics_set_watch_hub(store_metrics *m, watch_hub *hub);

#endif
