/* common/etcd/testenv.h — the servers etcd_test runs its table against (test only).
 *
 * keel-store and a real etcd, each started with fork/exec (PR_SET_PDEATHSIG,
 * so they die with the test) on loopback ports chosen by binding port 0, with
 * data and logs in a private dir under $TEST_TMPDIR that is removed at stop.
 * Only the pids started here are ever signalled. */
#ifndef KEEL_COMMON_ETCD_TESTENV_H
#define KEEL_COMMON_ETCD_TESTENV_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/etcd/etcd.h"

typedef struct testenv_backend {
  const char *name; /* "keel-store" or "etcd" */
  pid_t pid;
  char dir[PATH_MAX];
  char log[PATH_MAX + 16];
  char endpoint[256]; /* "127.0.0.1:PORT" */
  etcd_client *c;     /* the backend's own client */
  /* A loopback port bound by nobody listening: connecting is refused. One per
   * backend, so reconnect backoff gRPC keeps for it never crosses groups. */
  int dead_fd;
  int dead_port;
} testenv_backend;

/* Both return 0 when the server answers, or -1 after printing why (and its log). */
int testenv_start_keel_store(testenv_backend *b, const char *bin, int max_request_bytes);
int testenv_start_etcd(testenv_backend *b, const char *bin, int max_request_bytes);
/* Destroys the client, stops the server (SIGTERM, then SIGKILL), removes the dir. */
void testenv_stop(testenv_backend *b);

/* A client for tests, destroyed by testenv_release_clients even when the test
 * aborts halfway (a leaked channel would keep gRPC's shared reconnect backoff
 * for a dead address alive into later tests). NULL after printing the error. */
etcd_client *testenv_client(const char *const *endpoints, size_t n);
void testenv_client_destroy(etcd_client *c);
void testenv_release_clients(void);

int64_t testenv_now_ms(void);
void testenv_sleep_ms(int ms);

#endif
