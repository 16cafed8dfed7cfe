/* common/etcd/testenv.c — see testenv.h. */
#define _GNU_SOURCE
#include "common/etcd/testenv.h"

#include "common/etcd/testproc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int64_t testenv_now_ms(void) { return testproc_now_ms(); }

void testenv_sleep_ms(int ms) { testproc_sleep_ms(ms); }

/* ------------------------------------------------------------------ clients */

#define MAX_CLIENTS 64
static etcd_client *g_clients[MAX_CLIENTS];

etcd_client *testenv_client(const char *const *endpoints, size_t n) {
  keel_error err = {0};
  etcd_client_options o = {.endpoints = endpoints, .nendpoints = n, .timeout_ms = 5000};
  etcd_client *c = etcd_client_create(&o, &err);
  if (!c) {
    fprintf(stderr, "etcd client: %s\n", err.message);
    return NULL;
  }
  for (int i = 0; i < MAX_CLIENTS; i++) {
    if (!g_clients[i]) {
      g_clients[i] = c;
      break;
    }
  }
  return c;
}

void testenv_client_destroy(etcd_client *c) {
  for (int i = 0; i < MAX_CLIENTS; i++)
    if (g_clients[i] == c) g_clients[i] = NULL;
  etcd_client_destroy(c);
}

void testenv_release_clients(void) {
  for (int i = 0; i < MAX_CLIENTS; i++) {
    etcd_client_destroy(g_clients[i]);
    g_clients[i] = NULL;
  }
}

/* ------------------------------------------------------------------ processes */

static void stop_pid(pid_t pid) { testproc_stop(pid, "test server", 5000); }

static int prepare(testenv_backend *b, const char *name) {
  memset(b, 0, sizeof(*b));
  b->name = name;
  b->dead_fd = -1;
  const char *base = getenv("TEST_TMPDIR");
  snprintf(b->dir, sizeof(b->dir), "%s/etcd_test.%s.XXXXXX", base && base[0] ? base : "/tmp", name);
  if (!mkdtemp(b->dir)) {
    fprintf(stderr, "mkdtemp %s: %s\n", b->dir, strerror(errno));
    b->dir[0] = 0;
    return -1;
  }
  b->dead_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof(a);
  if (b->dead_fd < 0 || bind(b->dead_fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
      getsockname(b->dead_fd, (struct sockaddr *)&a, &len) != 0) {
    fprintf(stderr, "dead port: %s\n", strerror(errno));
    return -1;
  }
  b->dead_port = ntohs(a.sin_port);
  return 0;
}

void testenv_stop(testenv_backend *b) {
  etcd_client_destroy(b->c);
  b->c = NULL;
  stop_pid(b->pid);
  b->pid = 0;
  if (b->dead_fd >= 0) close(b->dead_fd);
  b->dead_fd = -1;
  testproc_rmtree(b->dir);
  b->dir[0] = 0;
}

/* Free loopback ports: bound to 0 together (so they differ), then released. A
 * race with another process is caught by the server exiting, and retried. */
static int free_ports(int *ports, int n) {
  int fds[4];
  int rc = 0;
  for (int i = 0; i < n; i++) {
    fds[i] = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fds[i], (struct sockaddr *)&a, &len) != 0)
      rc = -1;
    ports[i] = ntohs(a.sin_port);
  }
  for (int i = 0; i < n; i++)
    if (fds[i] >= 0) close(fds[i]);
  return rc;
}

static etcd_client *own_client(testenv_backend *b) {
  const char *eps[] = {b->endpoint};
  keel_error err = {0};
  etcd_client_options o = {.endpoints = eps, .nendpoints = 1, .timeout_ms = 5000};
  etcd_client *c = etcd_client_create(&o, &err);
  if (!c) fprintf(stderr, "%s client: %s\n", b->name, err.message);
  return c;
}

/* ------------------------------------------------------------------ servers */

/* keel-store on b's data dir and port (0: any), log and ready file named with
 * suffix; its endpoint into endpoint. The pid, or -1 (how far it got in *why:
 * -1 it exited, -2 no answer in 30 s, -3 it could not be started). */
static pid_t spawn_keel_store(const testenv_backend *b, int port, const char *suffix, char *endpoint, size_t len,
                              char *log, size_t loglen, int *why) {
  char data[PATH_MAX + 32], ready[PATH_MAX + 32], ready_flag[PATH_MAX + 48], listen[96], adv[96], max_req[64];
  snprintf(data, sizeof(data), "--data-dir=%s/data", b->dir);
  snprintf(ready, sizeof(ready), "%s/ready%s", b->dir, suffix);
  snprintf(ready_flag, sizeof(ready_flag), "--ready-file=%s", ready);
  snprintf(log, loglen, "%s/log%s", b->dir, suffix);
  snprintf(listen, sizeof(listen), "--listen-client-urls=http://127.0.0.1:%d", port);
  snprintf(adv, sizeof(adv), "--advertise-client-urls=http://127.0.0.1:%d", port);
  snprintf(max_req, sizeof(max_req), "--max-request-bytes=%d", b->max_request_bytes);
  unlink(ready);
  char *argv[] = {(char *)b->bin, "--name=etcd-test", data, listen, adv, ready_flag, max_req, "--log-level=warn",
                  NULL};
  endpoint[0] = 0;
  pid_t pid = testproc_spawn(argv, log, NULL);
  if (pid < 0) {
    *why = -3;
    return -1;
  }
  /* The ready file appears (atomically) once it serves: `grpc=127.0.0.1:PORT`. */
  *why = testproc_wait_ready(pid, ready, "grpc", endpoint, len, 30000);
  if (*why == 0) return pid;
  if (*why == -2) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
  }
  return -1;
}

int testenv_start_keel_store(testenv_backend *b, const char *bin, int max_request_bytes) {
  if (prepare(b, "keel-store") < 0) return -1;
  snprintf(b->bin, sizeof(b->bin), "%s", bin);
  b->max_request_bytes = max_request_bytes;
  int why;
  b->pid = spawn_keel_store(b, 0, "", b->endpoint, sizeof(b->endpoint), b->log, sizeof(b->log), &why);
  if (b->pid < 0) {
    b->pid = 0;
    fprintf(stderr, "keel-store did not become ready\n");
    testproc_dump_log(b->log, 4000);
    return -1;
  }
  b->c = own_client(b);
  return b->c ? 0 : -1;
}

pid_t testenv_spawn_keel_store(const testenv_backend *b, int port, int tag, char *endpoint, size_t len) {
  char suffix[16], log[PATH_MAX + 32];
  snprintf(suffix, sizeof(suffix), ".%d", tag);
  int why;
  pid_t pid = spawn_keel_store(b, port, suffix, endpoint, len, log, sizeof(log), &why);
  if (pid < 0) fprintf(stderr, "keel-store (port %d) did not become ready; see %s\n", port, log);
  return pid;
}

int testenv_start_etcd(testenv_backend *b, const char *bin, int max_request_bytes) {
  if (prepare(b, "etcd") < 0) return -1;
  for (int attempt = 1; attempt <= 5; attempt++) {
    int ports[2];
    if (free_ports(ports, 2) < 0) return -1;
    char data[PATH_MAX + 32], client[64], peer[64];
    snprintf(data, sizeof(data), "--data-dir=%s/data%d", b->dir, attempt);
    snprintf(b->log, sizeof(b->log), "%s/log%d", b->dir, attempt);
    snprintf(client, sizeof(client), "http://127.0.0.1:%d", ports[0]);
    snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", ports[1]);
    snprintf(b->endpoint, sizeof(b->endpoint), "127.0.0.1:%d", ports[0]);
    char lc[96], ac[96], lp[96], ap[96], ic[128], tok[96], max_req[64];
    snprintf(lc, sizeof(lc), "--listen-client-urls=%s", client);
    snprintf(ac, sizeof(ac), "--advertise-client-urls=%s", client);
    snprintf(lp, sizeof(lp), "--listen-peer-urls=%s", peer);
    snprintf(ap, sizeof(ap), "--initial-advertise-peer-urls=%s", peer);
    snprintf(ic, sizeof(ic), "--initial-cluster=etcd-test=%s", peer);
    snprintf(tok, sizeof(tok), "--initial-cluster-token=etcd-test-%d-%d", (int)getpid(), attempt);
    snprintf(max_req, sizeof(max_req), "--max-request-bytes=%d", max_request_bytes);
    char *argv[] = {(char *)bin, "--name=etcd-test", data, lc, ac, lp, ap, ic,
                    "--initial-cluster-state=new", tok, max_req, "--logger=zap",
                    "--log-level=warn", NULL};
    b->pid = testproc_spawn(argv, b->log, NULL);
    if (b->pid < 0) return -1;
    b->c = own_client(b);
    if (!b->c) return -1;
    /* Ready when a (linearizable) Range succeeds: the member elected itself. */
    int64_t deadline = testenv_now_ms() + 30000;
    bool ready = false, died = false;
    while (!ready && !died && testenv_now_ms() < deadline) {
      etcd_range_result r;
      if (etcd_range(b->c, "probe", 5, NULL, 0, 0, 0, false, false, &r, NULL) == 0) {
        etcd_range_result_clear(&r);
        ready = true;
      } else if (testproc_exited(b->pid, NULL)) {
        died = true;
      } else {
        testenv_sleep_ms(50);
      }
    }
    if (ready) return 0;
    etcd_client_destroy(b->c);
    b->c = NULL;
    if (!died) stop_pid(b->pid);
    b->pid = 0;
    testproc_dump_log(b->log, 4000);
    fprintf(stderr, "etcd attempt %d did not become ready%s\n", attempt,
            died ? " (it exited: a port taken meanwhile?), retrying" : "");
    if (!died) return -1;
  }
  return -1;
}

/* ------------------------------------------------------------------ group fixtures */

static struct {
  const char *store_bin, *etcd_bin;
  int max_request_bytes;
} g_cfg;

void testenv_configure(const char *store_bin, const char *etcd_bin, int max_request_bytes) {
  g_cfg.store_bin = store_bin;
  g_cfg.etcd_bin = etcd_bin;
  g_cfg.max_request_bytes = max_request_bytes;
}

static int group_setup(void **state, bool etcd) {
  testenv_backend *b = calloc(1, sizeof(*b));
  int rc = !b ? -1
           : etcd ? testenv_start_etcd(b, g_cfg.etcd_bin, g_cfg.max_request_bytes)
                  : testenv_start_keel_store(b, g_cfg.store_bin, g_cfg.max_request_bytes);
  if (rc < 0 && b) {
    testenv_stop(b);
    free(b);
    b = NULL;
  }
  *state = b;
  return rc;
}

int testenv_group_setup_keel_store(void **state) { return group_setup(state, false); }

int testenv_group_setup_etcd(void **state) { return group_setup(state, true); }

int testenv_group_teardown(void **state) {
  testenv_backend *b = *state;
  if (!b) return 0;
  testenv_stop(b);
  free(b);
  *state = NULL;
  return 0;
}
