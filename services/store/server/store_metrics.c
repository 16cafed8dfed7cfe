/* services/store/server/store_metrics.c — see store_metrics.h. */
#include "services/store/server/store_metrics.h"

#include <stddef.h>
#include <stdlib.h>

struct store_metrics {
  store *store;
  watch_hub *hub;
  store_status st; /* written by the render hook, read by the gauges, both under the registry lock */
  watch_hub_stats ws;
};

static void snapshot(void *arg) {
  store_metrics *m = arg;
  store_get_status(m->store, &m->st);
  if (m->hub) watch_hub_get_stats(m->hub, &m->ws);
}

#define GAUGE(field)                                    \
  static double gauge_##field(void *arg) {              \
    return (double)((store_metrics *)arg)->st.field;    \
  }
GAUGE(revision)
GAUGE(compact_revision)
GAUGE(keys)
GAUGE(memory_bytes)
GAUGE(value_bytes_resident)
GAUGE(value_bytes_on_disk)
GAUGE(value_files_open)
GAUGE(raft_index)
GAUGE(wal_fsyncs)
GAUGE(wal_records)
GAUGE(leases)
GAUGE(snapshots)
GAUGE(snapshot_index)
GAUGE(snapshot_running)
GAUGE(compactions_held)
GAUGE(auto_compactions)
GAUGE(apply_handoffs)
#undef GAUGE

#define WGAUGE(field)                                   \
  static double wgauge_##field(void *arg) {             \
    return (double)((store_metrics *)arg)->ws.field;    \
  }
WGAUGE(watchers)
WGAUGE(streams)
WGAUGE(unsynced)
WGAUGE(fell_behind)
WGAUGE(pending)
WGAUGE(overflowed)
WGAUGE(held_back)
#undef WGAUGE

static double gauge_one(void *arg) {
  (void)arg;
  return 1;
}

static const struct {
  const char *name, *help;
  metric_gauge_fn fn;
} gauges[] = {
    {"keel_store_revision", "The published (durable, visible) revision.", gauge_revision},
    {"keel_store_compact_revision", "The revision history is compacted up to.", gauge_compact_revision},
    {"keel_store_keys", "Keys in the index: live, or deleted with history not yet compacted.", gauge_keys},
    {"keel_store_memory_bytes", "Bytes of key-value state held in memory.", gauge_memory_bytes},
    {"keel_store_value_bytes_resident",
     "Value bytes held in memory: those written since the last snapshot (older ones are read from it).",
     gauge_value_bytes_resident},
    {"keel_store_value_bytes_on_disk", "Value bytes served from snapshot files (pread).",
     gauge_value_bytes_on_disk},
    {"keel_store_value_files_open", "Snapshot files held open because records read their values there.",
     gauge_value_files_open},
    {"keel_store_raft_index", "WAL records durable (etcd's raft index).", gauge_raft_index},
    {"keel_store_wal_fsyncs", "fdatasync calls by the WAL since start.", gauge_wal_fsyncs},
    {"keel_store_wal_records", "Records the WAL wrote since start.", gauge_wal_records},
    {"keel_store_leases", "Leases granted and not yet revoked.", gauge_leases},
    {"keel_store_snapshots", "Snapshots written since start.", gauge_snapshots},
    {"keel_store_snapshot_index", "WAL index of the newest snapshot on disk.", gauge_snapshot_index},
    {"keel_store_snapshot_running", "1 while a snapshot is being written (writes go on).",
     gauge_snapshot_running},
    {"keel_store_compactions_held", "Compactions waiting for the running snapshot to end.",
     gauge_compactions_held},
    {"keel_store_auto_compactions", "Compactions made by --auto-compaction since start.",
     gauge_auto_compactions},
    {"keel_store_apply_handoffs", "Times a full WAL queue moved applying from a request thread to the apply thread.",
     gauge_apply_handoffs},
    {"etcd_debugging_mvcc_watcher_total", "Watchers, all streams.", wgauge_watchers},
    {"keel_store_watch_streams", "Open Watch streams.", wgauge_streams},
    {"keel_store_watchers_unsynced", "Watchers catching up from history (slow or historical).",
     wgauge_unsynced},
    {"keel_store_watchers_fell_behind", "Times a watcher's queue was full and it went unsynced.",
     wgauge_fell_behind},
    {"keel_store_watch_fanout_pending", "Revisions handed to the watch fan-out thread, not yet sent.",
     wgauge_pending},
    {"keel_store_watch_fanout_overflowed",
     "Revisions dropped from the fan-out hand-off since start (their watchers replay them from history).",
     wgauge_overflowed},
    {"keel_store_watch_events_held_back",
     "Events held back while their stream's transport was busy, then sent together, since start.",
     wgauge_held_back},
    {"etcd_server_has_leader", "Whether a leader exists: always 1 for keel-store's single member.",
     gauge_one},
    {"etcd_mvcc_db_total_size_in_bytes", "keel-store: bytes of key-value state held in memory.",
     gauge_memory_bytes},
};

store_metrics *store_metrics_register(metrics_registry *reg, store *s) {
  store_metrics *m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->store = s;
  if (metrics_on_render(reg, snapshot, m) < 0) {
    free(m);
    return NULL;
  }
  for (size_t i = 0; i < sizeof(gauges) / sizeof(gauges[0]); i++)
    metrics_gauge_func(reg, gauges[i].name, gauges[i].help, gauges[i].fn, m);
  return m;
}

void store_metrics_free(store_metrics *m) { free(m); }

void store_metrics_set_watch_hub(store_metrics *m, watch_hub *hub) {
  if (m) m->hub = hub;
}
