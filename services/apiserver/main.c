/* keel-apiserver: the API gateway, the only client of the store. Only flags
 * and wiring live here; see server/apiserver.h. Flag names follow
 * kube-apiserver's where they mean the same. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/etcd/etcd.h"
#include "common/flags/flags.h"
#include "common/httpd/httpd.h"
#include "common/log/log.h"
#include "common/metrics/jemalloc_stats.h"
#include "common/metrics/metrics.h"
#include "common/ready/ready_file.h"
#include "common/rpc/rpc.h"
#include "services/apiserver/auth/auth.h"
#include "services/apiserver/server/apiserver.h"

static bool server_healthy(void *arg) {
  return !rpc_server_shutting_down(arg);
}

static int parse_port_range(const char *s, int *lo, int *hi) {
  char *end;
  long a = strtol(s, &end, 10);
  if (*end != '-') return -1;
  long b = strtol(end + 1, &end, 10);
  if (*end || a < 1 || b > 65535 || a > b) return -1;
  *lo = (int)a;
  *hi = (int)b;
  return 0;
}

int main(int argc, char **argv) {
  rpc_block_shutdown_signals();

  flag_string_list listen = {0}, etcd_servers = {0};
  char *tls_cert = NULL, *tls_key = NULL, *client_ca = NULL, *token_file = NULL;
  char *etcd_ca = NULL, *etcd_cert = NULL, *etcd_key = NULL, *etcd_prefix = "/registry";
  char *http_listen = "127.0.0.1:0", *ready_file = NULL;
  char *kubelet_cert = NULL, *kubelet_key = NULL, *kubelet_ca = NULL;
  char *service_cidr = "10.96.0.0/16", *node_port_range = "30000-32767";
  char *level_name = "info", *format_name = "text";
  bool anonymous_admin = false;
  int64_t threads = 2, max_reads = 400, max_writes = 200, watch_cache_size = 10000;
  int64_t read_workers = 32, write_workers = 64;
  int64_t max_request_bytes = 3 << 20, bookmark_ms = 10000, shutdown_grace_ms = 1500, event_ttl_ms = 3600 * 1000;
  const flag_def defs[] = {
      FLAG_STRING_LIST("listen", &listen,
                       "gRPC listen address (repeatable): host:port or unix:/path (default 127.0.0.1:0)"),
      FLAG_STRING_LIST("etcd-servers", &etcd_servers,
                       "etcd v3 endpoints (keel-store or etcd), comma-separated or repeated: "
                       "http://127.0.0.1:2379, unix:/path"),
      FLAG_STRING("etcd-prefix", &etcd_prefix, "key prefix of every object in the store"),
      FLAG_STRING("etcd-cafile", &etcd_ca, "CA to verify the store's certificate"),
      FLAG_STRING("etcd-certfile", &etcd_cert, "client certificate for the store (mutual TLS)"),
      FLAG_STRING("etcd-keyfile", &etcd_key, "key of --etcd-certfile"),
      FLAG_STRING("tls-cert-file", &tls_cert, "PEM certificate: serve TLS"),
      FLAG_STRING("tls-private-key-file", &tls_key, "PEM key of --tls-cert-file"),
      FLAG_STRING("client-ca-file", &client_ca,
                  "PEM CA: accept client certificates signed by it (CN = user, O = groups)"),
      FLAG_STRING("kubelet-client-certificate", &kubelet_cert,
                  "client certificate for node agents (Pods/Log, Pods/Exec): reach them over TLS"),
      FLAG_STRING("kubelet-client-key", &kubelet_key, "key of --kubelet-client-certificate"),
      FLAG_STRING("kubelet-certificate-authority", &kubelet_ca, "CA to verify node agents' certificates"),
      FLAG_STRING("token-auth-file", &token_file, "static bearer tokens: token,user,uid,\"group1,group2\""),
      FLAG_BOOL("anonymous-admin", &anonymous_admin,
                "no authentication: every caller is an admin (local development only)"),
      FLAG_STRING("service-cluster-ip-range", &service_cidr, "IPv4 CIDR Service ClusterIPs come from"),
      FLAG_STRING("service-node-port-range", &node_port_range, "NodePort range, e.g. 30000-32767"),
      FLAG_INT("max-requests-inflight", &max_reads, "reads in flight before RESOURCE_EXHAUSTED"),
      FLAG_INT("max-mutating-requests-inflight", &max_writes, "writes in flight before RESOURCE_EXHAUSTED"),
      FLAG_BYTES("max-request-bytes", &max_request_bytes, "largest request accepted"),
      FLAG_DURATION("event-ttl", &event_ttl_ms, "how long Events are kept (a store lease expires them)"),
      FLAG_INT("watch-cache-size", &watch_cache_size, "recent events kept per resource for watches"),
      FLAG_DURATION("bookmark-interval", &bookmark_ms, "how often watchers that allow them get bookmarks"),
      /* Two queues even on 2 cores: Debian's libgrpc checks every completion
       * against all of its queue's outstanding operations (a debug build), so
       * 10,000 watches on one queue cost a linear scan per event; two halve it
       * for a few more thread hand-offs (bench/apiserver/README.md). */
      FLAG_INT("threads", &threads,
               "completion-queue threads; open watches are spread over them (0: half the cores)"),
      FLAG_INT("read-workers", &read_workers, "threads serving reads that go to the store"),
      FLAG_INT("write-workers", &write_workers, "threads serving writes (each waits on one store call)"),
      FLAG_DURATION("shutdown-grace", &shutdown_grace_ms, "how long in-flight calls may finish after SIGTERM"),
      FLAG_STRING("http-listen", &http_listen,
                  "address of the REST/JSON gateway, /metrics and /healthz (\"\" disables)"),
      FLAG_STRING("ready-file", &ready_file, "write grpc=ADDR and http=ADDR lines here once serving"),
      FLAG_STRING("log-level", &level_name, "debug, info, warn or error"),
      FLAG_STRING("log-format", &format_name, "text or json"),
      FLAG_END,
  };
  keel_error err = {0};
  int rc = flags_parse("keel-apiserver",
                       "Serves the keel.api.v1 resources over gRPC, backed by keel-store or etcd.", defs, argc,
                       argv, NULL, NULL, &err);
  if (rc == FLAGS_HELP) return 0;
  if (rc < 0) {
    fprintf(stderr, "keel-apiserver: %s\n", err.message);
    return 2;
  }
  int lvl = log_level_parse(level_name), fmt = log_format_parse(format_name);
  int np_lo = 0, np_hi = 0;
  const char *bad = NULL;
  if (lvl < 0) bad = "--log-level: expected debug, info, warn or error";
  else if (fmt < 0) bad = "--log-format: expected text or json";
  else if (etcd_servers.count == 0) bad = "--etcd-servers: required (keel-store or etcd endpoints)";
  else if ((tls_cert == NULL) != (tls_key == NULL)) bad = "--tls-cert-file and --tls-private-key-file go together";
  else if (client_ca && !tls_cert) bad = "--client-ca-file needs --tls-cert-file";
  else if (parse_port_range(node_port_range, &np_lo, &np_hi) < 0) bad = "--service-node-port-range: expected LOW-HIGH";
  else if (max_reads < 1 || max_writes < 1) bad = "--max-requests-inflight and --max-mutating-requests-inflight: at least 1";
  else if (watch_cache_size < 100) bad = "--watch-cache-size: at least 100";
  else if (read_workers < 1 || read_workers > 1024 || write_workers < 1 || write_workers > 1024)
    bad = "--read-workers and --write-workers: 1..1024";
  else if (threads < 0 || threads > 64) bad = "--threads: 0..64";
  else if (!anonymous_admin && !token_file && !client_ca)
    bad = "no way to authenticate: give --token-auth-file and/or --client-ca-file, or --anonymous-admin";
  if (bad) {
    fprintf(stderr, "keel-apiserver: flag %s\n", bad);
    flags_free_lists(defs);
    return 2;
  }
  log_set_level((log_level)lvl);
  log_set_format((log_format)fmt);
  jemalloc_stats_register(metrics_default());

  int exit_code = 1;
  rpc_server *srv = NULL;
  httpd *http = NULL;
  apiserver *api = NULL;
  etcd_client *etcd = NULL;
  ready_file_lines ready = {0};
  auth_config ac = {.token_file = token_file, .client_certs = client_ca != NULL, .anonymous_admin = anonymous_admin};
  authenticator *auth = auth_create(&ac, &err);
  if (!auth) goto out;
  rpc_tls_config etcd_tls = {.ca_file = etcd_ca, .cert_file = etcd_cert, .key_file = etcd_key};
  etcd_client_options eo = {
      .endpoints = (const char *const *)etcd_servers.items,
      .nendpoints = (size_t)etcd_servers.count,
      .tls = etcd_ca || etcd_cert ? &etcd_tls : NULL,
  };
  etcd = etcd_client_create(&eo, &err);
  if (!etcd) goto out;
  apiserver_options ao = {
      .etcd = etcd,
      .storage_prefix = etcd_prefix,
      .auth = auth,
      .read_workers = (int)read_workers,
      .write_workers = (int)write_workers,
      .max_reads_in_flight = (int)max_reads,
      .max_writes_in_flight = (int)max_writes,
      .service_cidr = service_cidr,
      .node_port_min = np_lo,
      .node_port_max = np_hi,
      .watch_window = (size_t)watch_cache_size,
      .bookmark_interval_ms = (int)bookmark_ms,
      .event_ttl_s = event_ttl_ms < 1000 ? 1 : event_ttl_ms / 1000,
      .kubelet_client_cert = kubelet_cert,
      .kubelet_client_key = kubelet_key,
      .kubelet_ca = kubelet_ca,
  };
  api = apiserver_create(&ao, &err);
  if (!api) goto out;
  rpc_server_options so = {.cq_threads = (int)threads,
                           .max_message_bytes = max_request_bytes,
                           .max_send_message_bytes = -1, /* lists may be large */
                           .shutdown_grace_ms = (int)shutdown_grace_ms,
                           .name = "keel-apiserver"};
  srv = rpc_server_create(&so, &err);
  if (!srv || apiserver_register(api, srv, &err) < 0) goto out;
  /* A client certificate is one credential among others: verified when sent,
   * not required (a token-only client must reach authentication to be told
   * UNAUTHENTICATED, or to be let in). */
  rpc_tls_config tls = {.cert_file = tls_cert, .key_file = tls_key, .ca_file = client_ca, .client_cert_optional = true};
  const char *default_listen[] = {"127.0.0.1:0"};
  const char **addrs = listen.count ? (const char **)listen.items : default_listen;
  int naddrs = listen.count ? listen.count : 1;
  for (int i = 0; i < naddrs; i++) {
    int port = rpc_server_add_listener(srv, addrs[i], tls_cert ? &tls : NULL, &err);
    if (port < 0) goto out;
    ready_file_add_grpc(&ready, addrs[i], port);
  }
  if (rpc_server_start(srv, &err) < 0) goto out;
  if (http_listen && http_listen[0]) {
    httpd_options hopts = {.listen = http_listen, .healthy = server_healthy, .health_arg = srv};
    apiserver_http_options(api, &hopts); /* the REST/JSON gateway */
    /* The gateway serves HTTPS with the gRPC side's certificate and client CA. */
    hopts.tls_cert_file = tls_cert;
    hopts.tls_key_file = tls_key;
    hopts.tls_client_ca_file = client_ca;
    http = httpd_start(&hopts, &err);
    if (!http) goto out;
    ready_file_add_http(&ready, http_listen, httpd_port(http));
  }
  if (ready_file && ready_file_write(&ready, ready_file, &err) < 0) goto out;
  LOG_INFO("keel-apiserver serving", "grpc", ready.grpc_first, "store", etcd_servers.items[0], "tls",
           tls_cert ? (client_ca ? "mutual" : "server") : "off", "tokens", log_int((int64_t)auth_token_count(auth)));
  rpc_server_run(srv);
  exit_code = 0;
out:
  if (exit_code != 0) fprintf(stderr, "keel-apiserver: %s\n", err.message);
  if (srv) rpc_server_shutdown(srv);
  if (api) apiserver_http_shutdown(api);
  httpd_stop(http);
  apiserver_destroy(api);
  rpc_server_destroy(srv);
  if (etcd) etcd_client_destroy(etcd);
  auth_destroy(auth);
  ready_file_lines_free(&ready);
  flags_free_lists(defs);
  metrics_shutdown();
  return exit_code;
}
