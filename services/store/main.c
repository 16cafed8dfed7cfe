/* keel-store: an etcd v3-compatible single-member store. Only flags and wiring
 * live here: the engine is services/store/engine, the gRPC services are
 * services/store/server. Flags carry etcd's names where they mean the same, so
 * scripts that start etcd start keel-store unchanged. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jemalloc/jemalloc.h>

#include "common/flags/flags.h"
#include "common/httpd/httpd.h"
#include "common/log/log.h"
#include "common/metrics/jemalloc_stats.h"
#include "common/metrics/metrics.h"
#include "common/rpc/rpc.h"
#include "services/store/engine/store.h"
#include "services/store/server/etcd_config.h"
#include "services/store/server/kv_service.h"
#include "services/store/server/lease_service.h"
#include "services/store/watch/watch_hub.h"
#include "services/store/watch/watch_service.h"
#include "common/ready/ready_file.h"
#include "services/store/server/store_metrics.h"

#define MAX_METRICS_LISTENERS 8

static bool server_healthy(void *arg) { return !rpc_server_shutting_down(arg); }

/* The engine calls this once a snapshot's values were freed from memory:
 * jemalloc would return those pages only as its decay gets to them (seconds
 * to minutes), so purge every arena now. Harmless when malloc is not
 * jemalloc's (sanitizer builds): it then purges nothing. */
static void release_memory(void) {
  char name[64];
  mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
  snprintf(name, sizeof(name), "arena.%u.purge", (unsigned)MALLCTL_ARENAS_ALL);
  mallctl(name, NULL, NULL, NULL, 0);
}

/* What the flags say, checked. Strings point into argv or the flag lists. */
typedef struct config {
  char *name, *data_dir;
  flag_string_list listen_client, advertise_client, listen_peer, advertise_peer, initial_cluster;
  char *initial_cluster_state, *initial_cluster_token;
  char *cert_file, *key_file, *trusted_ca_file;
  bool client_cert_auth;
  int64_t max_request_bytes;
  char *auto_compaction_mode, *auto_compaction_retention;
  int64_t snapshot_count;
  flag_string_list listen_metrics;
  char *log_level, *log_format, *ready_file;
  bool unsafe_no_fsync;
  /* derived */
  etcd_url *client_urls;
  etcd_url *metrics_urls;
  etcd_auto_compaction compaction;
} config;

static int check_config(config *c, keel_error *err) {
  int lvl = log_level_parse(c->log_level);
  if (lvl < 0 && (strcmp(c->log_level, "panic") == 0 || strcmp(c->log_level, "fatal") == 0))
    lvl = LOG_ERROR; /* etcd's two levels above error */
  if (lvl < 0)
    return keel_error_set(err, EINVAL, "flag --log-level: invalid value \"%s\" (debug, info, warn or error)",
                          c->log_level);
  int fmt = log_format_parse(c->log_format);
  if (fmt < 0)
    return keel_error_set(err, EINVAL, "flag --log-format: invalid value \"%s\" (text or json)",
                          c->log_format);
  log_set_level((log_level)lvl);
  log_set_format((log_format)fmt);

  if (!c->name[0]) return keel_error_set(err, EINVAL, "flag --name: must not be empty");
  if (c->max_request_bytes <= 0 || c->max_request_bytes > INT32_MAX - KV_SERVICE_GRPC_OVERHEAD_BYTES)
    return keel_error_set(err, EINVAL, "flag --max-request-bytes: must be 1..%lld, got %lld",
                          (long long)(INT32_MAX - KV_SERVICE_GRPC_OVERHEAD_BYTES),
                          (long long)c->max_request_bytes);
  if (c->snapshot_count < 0)
    return keel_error_set(err, EINVAL, "flag --snapshot-count: must not be negative");
  if (strcmp(c->initial_cluster_state, "new") != 0 && strcmp(c->initial_cluster_state, "existing") != 0)
    return keel_error_set(err, EINVAL,
                          "flag --initial-cluster-state: unexpected clusterState \"%s\" (new or existing)",
                          c->initial_cluster_state);

  if (etcd_url_parse_list("listen-client-urls", c->listen_client.items, c->listen_client.count,
                          &c->client_urls, err) < 0)
    return -EINVAL;
  etcd_url *tmp = NULL;
  if (c->advertise_client.count) {
    if (etcd_url_parse_list("advertise-client-urls", c->advertise_client.items,
                            c->advertise_client.count, &tmp, err) < 0)
      return -EINVAL;
    free(tmp);
  }
  /* Peer URLs: nothing listens on them (one member, no raft), but they are
   * what MemberList reports, so they must be well formed as in etcd. */
  if (etcd_url_parse_list("listen-peer-urls", c->listen_peer.items, c->listen_peer.count, &tmp, err) < 0)
    return -EINVAL;
  free(tmp);
  if (etcd_url_parse_list("initial-advertise-peer-urls", c->advertise_peer.items,
                          c->advertise_peer.count, &tmp, err) < 0)
    return -EINVAL;
  free(tmp);
  if (c->initial_cluster.count &&
      etcd_initial_cluster_check(c->name, c->initial_cluster.items, c->initial_cluster.count,
                                 c->advertise_peer.items, c->advertise_peer.count, err) < 0)
    return -EINVAL;

  if (etcd_auto_compaction_parse(c->auto_compaction_mode, c->auto_compaction_retention,
                                 &c->compaction, err) < 0)
    return -EINVAL;

  if ((c->cert_file == NULL) != (c->key_file == NULL))
    return keel_error_set(err, EINVAL, "flags --cert-file and --key-file go together");
  if (c->client_cert_auth && !c->trusted_ca_file)
    return keel_error_set(err, EINVAL, "flag --client-cert-auth needs --trusted-ca-file");
  if (c->trusted_ca_file && !c->cert_file)
    return keel_error_set(err, EINVAL, "flag --trusted-ca-file needs --cert-file and --key-file");
  for (int i = 0; i < c->listen_client.count; i++) {
    if (etcd_url_is_tls(&c->client_urls[i]) && !c->cert_file)
      return keel_error_set(err, EINVAL,
                            "flag --listen-client-urls: %s needs --cert-file and --key-file",
                            c->listen_client.items[i]);
    if (!etcd_url_is_tls(&c->client_urls[i]) && c->cert_file)
      LOG_WARN("TLS flags are ignored for a plain listener", "url", c->listen_client.items[i]);
  }

  if (c->listen_metrics.count > MAX_METRICS_LISTENERS)
    return keel_error_set(err, EINVAL, "flag --listen-metrics-urls: at most %d URLs",
                          MAX_METRICS_LISTENERS);
  if (c->listen_metrics.count) {
    if (etcd_url_parse_list("listen-metrics-urls", c->listen_metrics.items, c->listen_metrics.count,
                            &c->metrics_urls, err) < 0)
      return -EINVAL;
    for (int i = 0; i < c->listen_metrics.count; i++)
      if (c->metrics_urls[i].scheme != ETCD_URL_HTTP)
        return keel_error_set(err, EINVAL, "flag --listen-metrics-urls: only http://host:port is "
                              "supported: %s", c->listen_metrics.items[i]);
  }
  return 0;
}

int main(int argc, char **argv) {
  rpc_block_shutdown_signals();

  static const char *default_listen_client[] = {"http://localhost:2379"};
  static const char *default_peer[] = {"http://localhost:2380"};
  config c = {
      .name = "default",
      .listen_client = {default_listen_client, 1},
      .listen_peer = {default_peer, 1},
      .advertise_peer = {default_peer, 1},
      .initial_cluster_state = "new",
      .initial_cluster_token = "etcd-cluster",
      .max_request_bytes = KV_SERVICE_DEFAULT_MAX_REQUEST_BYTES,
      .auto_compaction_mode = "periodic",
      .auto_compaction_retention = "0",
      .snapshot_count = 100000,
      .log_level = "info",
      .log_format = "text",
  };
  const flag_def defs[] = {
      FLAG_STRING("name", &c.name, "human-readable name for this member"),
      FLAG_STRING("data-dir", &c.data_dir, "path to the data directory (default <name>.etcd)"),
      FLAG_STRING_LIST("listen-client-urls", &c.listen_client,
                       "URLs to serve clients on, comma-separated: http://host:port, "
                       "https://host:port (needs --cert-file/--key-file), unix://path, unixs://path; "
                       "port 0 picks a free port (see --ready-file)"),
      FLAG_STRING_LIST("advertise-client-urls", &c.advertise_client,
                       "client URLs reported by member list (default: the listen URLs as bound)"),
      FLAG_STRING_LIST("listen-peer-urls", &c.listen_peer,
                       "accepted for etcd compatibility; a single member has no peers to listen for"),
      FLAG_STRING_LIST("initial-advertise-peer-urls", &c.advertise_peer,
                       "this member's peer URLs, as member list reports them"),
      FLAG_STRING_LIST("initial-cluster", &c.initial_cluster,
                       "NAME=URL,...: this member only (default <name>=<initial-advertise-peer-urls>); "
                       "another member is an error"),
      FLAG_STRING("initial-cluster-state", &c.initial_cluster_state, "new or existing (accepted)"),
      FLAG_STRING("initial-cluster-token", &c.initial_cluster_token, "accepted for etcd compatibility"),
      FLAG_STRING("cert-file", &c.cert_file, "PEM certificate for https/unixs client URLs"),
      FLAG_STRING("key-file", &c.key_file, "PEM private key for --cert-file"),
      FLAG_STRING("trusted-ca-file", &c.trusted_ca_file,
                  "PEM CA: clients must present a certificate signed by it (as etcd, this alone "
                  "turns on client certificate checks)"),
      FLAG_BOOL("client-cert-auth", &c.client_cert_auth,
                "require client certificates signed by --trusted-ca-file"),
      FLAG_BYTES("max-request-bytes", &c.max_request_bytes,
                 "largest write request accepted; gRPC's limit is this + 512 KiB"),
      FLAG_STRING("auto-compaction-mode", &c.auto_compaction_mode,
                  "periodic or revision"),
      FLAG_STRING("auto-compaction-retention", &c.auto_compaction_retention,
                  "periodic: a duration or whole hours of history to keep; revision: how "
                  "many revisions to keep; 0 = off"),
      FLAG_INT("snapshot-count", &c.snapshot_count, "WAL records between snapshots (0: the default)"),
      FLAG_STRING_LIST("listen-metrics-urls", &c.listen_metrics,
                       "http://host:port URLs serving /metrics and /healthz (default: none)"),
      FLAG_STRING("log-level", &c.log_level, "debug, info, warn or error"),
      FLAG_STRING("log-format", &c.log_format, "text or json (keel)"),
      FLAG_STRING("ready-file", &c.ready_file,
                  "write grpc=ADDR, client-url=URL and http=ADDR lines here once serving (keel)"),
      FLAG_BOOL("unsafe-no-fsync", &c.unsafe_no_fsync,
                "do not fsync the write-ahead log: data loss on a crash (tests only)"),
      FLAG_END,
  };
  keel_error err = {0};
  int rc = flags_parse("keel-store", "An etcd v3-compatible key-value store (one member).", defs,
                       argc, argv, NULL, NULL, &err);
  if (rc == FLAGS_HELP) return 0;
  if (rc < 0) {
    fprintf(stderr, "keel-store: %s\n", err.message);
    flags_free_lists(defs);
    return 2;
  }
  char *data_dir_default = NULL;
  if (check_config(&c, &err) < 0) {
    fprintf(stderr, "keel-store: %s\n", err.message);
    free(c.client_urls);
    free(c.metrics_urls);
    flags_free_lists(defs);
    return 2;
  }
  if (!c.data_dir || !c.data_dir[0]) {
    if (asprintf(&data_dir_default, "%s.etcd", c.name) < 0) return 1;
    c.data_dir = data_dir_default;
  }

  jemalloc_stats_register(metrics_default()); /* -ENOTSUP under sanitizers: fine */
  store *st = NULL;
  store_metrics *smetrics = NULL;
  rpc_server *srv = NULL;
  kv_service *svc = NULL;
  watch_hub *hub = NULL;
  httpd *http[MAX_METRICS_LISTENERS] = {0};
  ready_file_lines ready = {0};
  char **client_url_text = calloc((size_t)c.listen_client.count, sizeof(char *));
  int exit_code = 1;
  if (!client_url_text) goto out;

  store_options sopts = {.data_dir = c.data_dir,
                         .name = c.name,
                         .unsafe_no_fsync = c.unsafe_no_fsync,
                         .snapshot_count = (uint64_t)c.snapshot_count,
                         .auto_compaction_retention_ms = c.compaction.retention_ms,
                         .auto_compaction_retention_revs = c.compaction.retention_revs,
                         .release_memory = release_memory};
  /* Crash tests only (e2e/store crash_cycles): slow every snapshot down so that
   * kills land while one is being written. Not a flag: nobody should tune it. */
  const char *delay = getenv("KEEL_STORE_TEST_SNAPSHOT_CHUNK_DELAY_US");
  if (delay && *delay) {
    sopts.snapshot_chunk_delay_us = strtoll(delay, NULL, 10);
    LOG_WARN("keel-store: KEEL_STORE_TEST_SNAPSHOT_CHUNK_DELAY_US is set (tests only)", "us",
             log_int(sopts.snapshot_chunk_delay_us));
  }
  st = store_open(&sopts, &err);
  if (!st) goto out;
  smetrics = store_metrics_register(metrics_default(), st);

  /* etcd limits what it receives, never what it sends (a large range is fine). */
  rpc_server_options ropts = {.max_message_bytes = kv_service_max_message_bytes(c.max_request_bytes),
                              .max_send_message_bytes = -1,
                              .name = "keel-store"};
  srv = rpc_server_create(&ropts, &err);
  if (!srv) goto out;
  rpc_tls_config tls = {.cert_file = c.cert_file,
                        .key_file = c.key_file,
                        .ca_file = c.trusted_ca_file};
  for (int i = 0; i < c.listen_client.count; i++) {
    char addr[300];
    etcd_url_listen_addr(&c.client_urls[i], addr, sizeof(addr));
    int port = rpc_server_add_listener(srv, addr, etcd_url_is_tls(&c.client_urls[i]) ? &tls : NULL, &err);
    if (port < 0) {
      keel_error_wrap(&err, "listen on %s", c.listen_client.items[i]);
      goto out;
    }
    char url[320];
    etcd_url_format(&c.client_urls[i], port, url, sizeof(url));
    client_url_text[i] = strdup(url);
    if (!client_url_text[i]) goto out;
    ready_file_add_grpc(&ready, addr, port);
    ready_file_add(&ready, "client-url", url);
  }
  /* Without --advertise-client-urls, member list reports the listen URLs as
   * bound (etcd insists on the flag; port 0 makes a default useful here). */
  bool advertised = c.advertise_client.count > 0;
  kv_service_options kopts = {
      .max_request_bytes = c.max_request_bytes,
      .name = c.name,
      .peer_urls = c.advertise_peer.items,
      .npeer_urls = (size_t)c.advertise_peer.count,
      .client_urls = advertised ? c.advertise_client.items : (const char *const *)client_url_text,
      .nclient_urls = (size_t)(advertised ? c.advertise_client.count : c.listen_client.count),
  };
  svc = kv_service_create(st, &kopts, &err);
  if (!svc || kv_service_register(svc, srv, &err) < 0 || lease_service_register(st, srv, &err) < 0)
    goto out;
  /* Watch: the hub becomes the store's event sink; responses are cut into
   * fragments at the same size the clients accept. */
  watch_hub_options wopts = {.max_send_bytes = kv_service_max_message_bytes(c.max_request_bytes)};
  hub = watch_hub_create(st, &wopts, &err);
  if (!hub || watch_service_register(hub, srv, &err) < 0) goto out;
  store_metrics_set_watch_hub(smetrics, hub);
  if (rpc_server_start(srv, &err) < 0) goto out;
  /* Who we are, for clients that care: keel-store sends a watch's progress
   * notification only once the watch has delivered everything before it
   * (etcd 3.4 may send it earlier), so keel-apiserver can trust it. */
  rpc_server_set_health(srv, "keel-store", 1);
  for (int i = 0; i < c.listen_metrics.count; i++) {
    char addr[300];
    etcd_url_listen_addr(&c.metrics_urls[i], addr, sizeof(addr));
    httpd_options hopts = {.listen = addr, .healthy = server_healthy, .health_arg = srv};
    http[i] = httpd_start(&hopts, &err);
    if (!http[i]) {
      keel_error_wrap(&err, "listen on %s", c.listen_metrics.items[i]);
      goto out;
    }
    ready_file_add_http(&ready, addr, httpd_port(http[i]));
  }
  if (c.ready_file && ready_file_write(&ready, c.ready_file, &err) < 0) goto out;
  LOG_INFO("keel-store serving", "name", c.name, "data_dir", c.data_dir, "client", ready.grpc_first,
           "metrics", ready.http_first[0] ? ready.http_first : "off", "etcd_version", KV_SERVICE_ETCD_VERSION,
           "tls", c.cert_file ? (c.trusted_ca_file ? "mutual" : "server") : "off",
           "max_request_bytes", log_int(c.max_request_bytes), "unsafe_no_fsync",
           c.unsafe_no_fsync ? "true" : "false");
  if (c.compaction.retention_ms || c.compaction.retention_revs)
    LOG_INFO("auto compaction on", "mode", c.auto_compaction_mode, "retention",
             c.auto_compaction_retention);
  rpc_server_run(srv);
  exit_code = 0;
out:
  if (exit_code != 0) fprintf(stderr, "keel-store: %s\n", err.message[0] ? err.message : "out of memory");
  /* Calls first (in-flight writes finish within the grace period), then the
   * HTTP side (its scrapes read the store), then the store, which completes
   * whatever is still submitted and so drops the last call references. */
  if (srv) rpc_server_shutdown(srv);
  for (int i = 0; i < MAX_METRICS_LISTENERS; i++) httpd_stop(http[i]);
  /* The hub's catch-up thread reads the store: stop it before the store
   * closes; the store may still deliver events while closing, so the hub's
   * memory goes only after. */
  if (hub) watch_hub_stop(hub);
  store_close(st);
  store_metrics_set_watch_hub(smetrics, NULL);
  watch_hub_destroy(hub);
  rpc_server_destroy(srv);
  kv_service_destroy(svc);
  store_metrics_free(smetrics);
  ready_file_lines_free(&ready);
  for (int i = 0; client_url_text && i < c.listen_client.count; i++) free(client_url_text[i]);
  free(client_url_text);
  free(c.client_urls);
  free(c.metrics_urls);
  free(data_dir_default);
  flags_free_lists(defs);
  metrics_shutdown();
  return exit_code;
}
