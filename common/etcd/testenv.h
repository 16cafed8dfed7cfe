/* common/etcd/testenv.h — the servers etcd_test runs its table against (test only).
 *
 * keel-store and a real etcd, each started with fork/exec (PR_SET_PDEATHSIG,
 * so they die with the test) on loopback ports chosen by binding port 0, with
 * data and logs in a private dir under $TEST_TMPDIR that is removed at stop.
 * Only the pids started here are ever signalled. The process steps are
 * common/etcd/testproc's. */
#ifndef KEEL_COMMON_ETCD_TESTENV_H
#define KEEL_COMMON_ETCD_TESTENV_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/etcd/etcd.h"
#include "common/etcd/testproc.h"

typedef struct testenv_backend {
  const char *name; /* "keel-store" or "etcd" */
  pid_t pid;
  char dir[PATH_MAX];
  char log[PATH_MAX + 16];
  char endpoint[256]; /* "127.0.0.1:PORT" */
  char bin[PATH_MAX];  /* keel-store: the binary, for testenv_spawn_keel_store */
  int max_request_bytes;
  etcd_client *c;     /* the backend's own client */
  /* A loopback port bound by nobody listening: connecting is refused. One per
   * backend, so reconnect backoff gRPC keeps for it never crosses groups. */
  int dead_fd;
  int dead_port;
} testenv_backend;

/* Both return 0 when the server answers, or -1 after printing why (and its log). */
int testenv_start_keel_store(testenv_backend *b, const char *bin, int max_request_bytes);
int testenv_start_etcd(testenv_backend *b, const char *bin, int max_request_bytes);
/* Another keel-store process on the data dir of b (started by
 * testenv_start_keel_store; stop b's own first unless port is 0), on port (0:
 * any), with log and ready file suffixed ".TAG". Returns its pid with its
 * endpoint in endpoint, or -1 after printing why (nothing left running).
 * Stop it with testproc_stop. */
pid_t testenv_spawn_keel_store(const testenv_backend *b, int port, int tag, char *endpoint, size_t len);
/* Destroys the client, stops the server (SIGTERM, then SIGKILL), removes the dir. */
void testenv_stop(testenv_backend *b);

/* cmocka group fixtures (int f(void **state)): *state = a started
 * testenv_backend on the heap, or NULL and -1 after printing why (a group
 * whose setup fails gets no teardown, so nothing is left running). Binaries
 * and the request limit are testenv_configure's, called first. */
void testenv_configure(const char *store_bin, const char *etcd_bin, int max_request_bytes);
int testenv_group_setup_keel_store(void **state);
int testenv_group_setup_etcd(void **state);
/* Stops and frees *state's backend (NULL is fine). */
int testenv_group_teardown(void **state);

/* A client for tests, destroyed by testenv_release_clients even when the test
 * aborts halfway (a leaked channel would keep gRPC's shared reconnect backoff
 * for a dead address alive into later tests). NULL after printing the error. */
etcd_client *testenv_client(const char *const *endpoints, size_t n);
void testenv_client_destroy(etcd_client *c);
void testenv_release_clients(void);

int64_t testenv_now_ms(void);
void testenv_sleep_ms(int ms);

#endif
