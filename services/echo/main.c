/* keel-echo: the echo service on Keel's gRPC runtime (tests, interop, bench/rpc).
 * Only flags and wiring live here; see echo_service.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/flags/flags.h"
#include "common/httpd/httpd.h"
#include "common/log/log.h"
#include "common/metrics/jemalloc_stats.h"
#include "common/metrics/metrics.h"
#include "common/rpc/rpc.h"
#include "common/sched/sched.h"
#include "services/echo/echo_service.h"
#include "common/ready/ready_file.h"

extern const unsigned char keel_echo_descriptor_set[];
extern const unsigned long keel_echo_descriptor_set_len;

static bool server_healthy(void *arg) { return !rpc_server_shutting_down(arg); }

int main(int argc, char **argv) {
  rpc_block_shutdown_signals();

  flag_string_list listen = {0};
  char *tls_cert = NULL, *tls_key = NULL, *tls_client_ca = NULL;
  char *http_listen = "127.0.0.1:0";
  char *ready_file = NULL;
  char *level_name = "info", *format_name = "text";
  int64_t threads = 0;
  int64_t max_message_bytes = 4 << 20;
  int64_t shutdown_grace_ms = 1500;
  const flag_def defs[] = {
      FLAG_STRING_LIST("listen", &listen,
                       "gRPC listen address (repeatable): host:port, [::1]:port or unix:/path "
                       "(default 127.0.0.1:0)"),
      FLAG_STRING("tls-cert", &tls_cert, "PEM certificate: serve TLS"),
      FLAG_STRING("tls-key", &tls_key, "PEM private key for --tls-cert"),
      FLAG_STRING("tls-client-ca", &tls_client_ca,
                  "PEM CA: require client certificates signed by it (mutual TLS)"),
      FLAG_STRING("http-listen", &http_listen, "address for /metrics and /healthz (\"\" disables)"),
      FLAG_INT("threads", &threads, "completion-queue threads (0: half the cores, 1..4)"),
      FLAG_BYTES("max-message-bytes", &max_message_bytes, "largest message received or sent"),
      FLAG_DURATION("shutdown-grace", &shutdown_grace_ms,
                    "how long in-flight calls may finish after SIGTERM"),
      FLAG_STRING("ready-file", &ready_file,
                  "write grpc=ADDR and http=ADDR lines here once serving"),
      FLAG_STRING("log-level", &level_name, "debug, info, warn or error"),
      FLAG_STRING("log-format", &format_name, "text or json"),
      FLAG_END,
  };
  keel_error err = {0};
  int rc = flags_parse("keel-echo", "Serves keel.echo.v1.Echo: one method of each RPC kind.", defs,
                       argc, argv, NULL, NULL, &err);
  if (rc == FLAGS_HELP) return 0;
  if (rc < 0) {
    fprintf(stderr, "keel-echo: %s\n", err.message);
    return 2;
  }
  int lvl = log_level_parse(level_name), fmt = log_format_parse(format_name);
  if (lvl < 0 || fmt < 0) {
    fprintf(stderr, "keel-echo: flag --%s: invalid value \"%s\"\n", lvl < 0 ? "log-level" : "log-format",
            lvl < 0 ? level_name : format_name);
    return 2;
  }
  log_set_level((log_level)lvl);
  log_set_format((log_format)fmt);
  if ((tls_cert == NULL) != (tls_key == NULL) || (tls_client_ca && !tls_cert)) {
    fprintf(stderr, "keel-echo: --tls-cert and --tls-key go together; --tls-client-ca needs them\n");
    return 2;
  }
  if (threads < 0 || threads > 64) {
    fprintf(stderr, "keel-echo: flag --threads: must be 0..64, got %lld\n", (long long)threads);
    return 2;
  }

  jemalloc_stats_register(metrics_default()); /* -ENOTSUP under sanitizers: fine */
  sched *timers = sched_create(1, "echo-timers");
  echo_service *svc = echo_service_create(timers);
  rpc_server_options opts = {.cq_threads = (int)threads,
                             .max_message_bytes = max_message_bytes,
                             .shutdown_grace_ms = (int)shutdown_grace_ms,
                             .name = "keel-echo"};
  rpc_server *srv = rpc_server_create(&opts, &err);
  rpc_tls_config tls = {.cert_file = tls_cert, .key_file = tls_key, .ca_file = tls_client_ca};
  ready_file_lines ready = {0};
  httpd *http = NULL;
  int exit_code = 1;
  if (!srv || echo_service_register(svc, srv, &err) < 0 ||
      rpc_server_add_descriptors(srv, keel_echo_descriptor_set, keel_echo_descriptor_set_len, &err) < 0)
    goto out;
  const char *default_listen[] = {"127.0.0.1:0"};
  const char **addrs = listen.count ? listen.items : default_listen;
  int naddrs = listen.count ? listen.count : 1;
  for (int i = 0; i < naddrs; i++) {
    int port = rpc_server_add_listener(srv, addrs[i], tls_cert ? &tls : NULL, &err);
    if (port < 0) goto out;
    ready_file_add_grpc(&ready, addrs[i], port);
  }
  if (rpc_server_start(srv, &err) < 0) goto out;
  if (http_listen && http_listen[0]) {
    httpd_options hopts = {.listen = http_listen, .healthy = server_healthy, .health_arg = srv};
    http = httpd_start(&hopts, &err);
    if (!http) goto out;
    ready_file_add_http(&ready, http_listen, httpd_port(http));
  }
  if (ready_file && ready_file_write(&ready, ready_file, &err) < 0) goto out;
  LOG_INFO("keel-echo serving", "grpc", ready.grpc_first, "http", ready.http_first[0] ? ready.http_first : "off",
           "threads", log_int(threads), "tls", tls_cert ? (tls_client_ca ? "mutual" : "server") : "off");
  rpc_server_run(srv);
  exit_code = 0;
out:
  if (exit_code != 0) fprintf(stderr, "keel-echo: %s\n", err.message);
  if (srv) rpc_server_shutdown(srv);
  httpd_stop(http);
  sched_destroy(timers); /* drops pending timers and their call references */
  rpc_server_destroy(srv);
  echo_service_destroy(svc);
  ready_file_lines_free(&ready);
  flags_free_lists(defs);
  metrics_shutdown();
  return exit_code;
}
