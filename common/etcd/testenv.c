/* common/etcd/testenv.c — see testenv.h. */
#define _GNU_SOURCE
#include "common/etcd/testenv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t testenv_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void testenv_sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

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

static pid_t spawn(char *const argv[], const char *log) {
  int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* Only async-signal-safe calls between fork and exec (gRPC threads run). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fd);
  return pid;
}

/* True (and reaped) once pid has exited. */
static bool exited(pid_t pid) {
  int status;
  return waitpid(pid, &status, WNOHANG) == pid;
}

static void stop_pid(pid_t pid) {
  if (pid <= 0) return;
  kill(pid, SIGTERM);
  int64_t deadline = testenv_now_ms() + 5000;
  while (testenv_now_ms() < deadline) {
    if (exited(pid)) return;
    testenv_sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

static void dump_log(const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, size > 4000 ? size - 4000 : 0, SEEK_SET);
  char buf[4001];
  size_t n = fread(buf, 1, 4000, f);
  buf[n] = 0;
  fclose(f);
  fprintf(stderr, "----- %s -----\n%s\n----- end -----\n", path, buf);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

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
  if (b->dir[0]) nftw(b->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
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

int testenv_start_keel_store(testenv_backend *b, const char *bin, int max_request_bytes) {
  if (prepare(b, "keel-store") < 0) return -1;
  char data[PATH_MAX + 32], ready[PATH_MAX + 16], ready_flag[PATH_MAX + 32], max_req[64];
  snprintf(data, sizeof(data), "--data-dir=%s/data", b->dir);
  snprintf(ready, sizeof(ready), "%s/ready", b->dir);
  snprintf(ready_flag, sizeof(ready_flag), "--ready-file=%s", ready);
  snprintf(b->log, sizeof(b->log), "%s/log", b->dir);
  snprintf(max_req, sizeof(max_req), "--max-request-bytes=%d", max_request_bytes);
  char *argv[] = {(char *)bin, "--name=etcd-test", data,
                  "--listen-client-urls=http://127.0.0.1:0",
                  "--advertise-client-urls=http://127.0.0.1:0", ready_flag, max_req,
                  "--log-level=warn", NULL};
  b->pid = spawn(argv, b->log);
  if (b->pid < 0) return -1;
  /* The ready file appears (atomically) once it serves: `grpc=127.0.0.1:PORT`. */
  int64_t deadline = testenv_now_ms() + 30000;
  while (!b->endpoint[0]) {
    FILE *f = fopen(ready, "r");
    if (f) {
      char line[256];
      while (!b->endpoint[0] && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (strncmp(line, "grpc=", 5) == 0) snprintf(b->endpoint, sizeof(b->endpoint), "%s", line + 5);
      }
      fclose(f);
    }
    if (b->endpoint[0]) break;
    if (exited(b->pid) || testenv_now_ms() > deadline) {
      fprintf(stderr, "keel-store did not become ready\n");
      dump_log(b->log);
      return -1;
    }
    testenv_sleep_ms(20);
  }
  b->c = own_client(b);
  return b->c ? 0 : -1;
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
    b->pid = spawn(argv, b->log);
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
      } else if (exited(b->pid)) {
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
    dump_log(b->log);
    fprintf(stderr, "etcd attempt %d did not become ready%s\n", attempt,
            died ? " (it exited: a port taken meanwhile?), retrying" : "");
    if (!died) return -1;
  }
  return -1;
}
