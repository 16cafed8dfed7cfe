/* common/client/testenv.h — real keel-store and keel-apiserver processes for
 * common/client's tests (test only).
 *
 * Daemons are started with fork/exec and PR_SET_PDEATHSIG (they die with the
 * test), on port 0 or unix sockets, each reporting what it bound in a
 * --ready-file. Everything lives in a private directory under /tmp (short
 * enough for unix socket paths) removed at cleanup. Only pids started here
 * are ever signalled. The process steps (spawn, ready file, stop, logs) are
 * common/etcd/testproc's, which this header includes. */
#ifndef KEEL_COMMON_CLIENT_TESTENV_H
#define KEEL_COMMON_CLIENT_TESTENV_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/client/client.h"
#include "common/etcd/testproc.h"
#include "keel/api/v1/core.pb-c.h"

typedef struct testenv_proc {
  const char *name;
  pid_t pid;
  char log[PATH_MAX];
  char ready[PATH_MAX];
  char endpoint[300]; /* from the ready file: "127.0.0.1:PORT" or "unix:/path" */
} testenv_proc;

typedef struct testenv {
  char dir[64];
  char store_bin[PATH_MAX];
  char api_bin[PATH_MAX];
  testenv_proc store;
  char store_url[320]; /* http://127.0.0.1:PORT */
  int napis;           /* apiservers started, for log names */
} testenv;

/* Makes the directory and starts keel-store. 0, or -1 after printing why. */
int testenv_init(testenv *e, const char *store_bin, const char *api_bin);
/* Starts keel-apiserver on the store with --anonymous-admin (unless args name
 * another authenticator). listen NULL = 127.0.0.1:0; args NULL-terminated
 * extra flags (may be NULL). Waits until it serves. 0 or -1. */
int testenv_start_apiserver(testenv *e, testenv_proc *p, const char *listen, const char *const *args);
/* SIGTERM, wait up to 15 s (then SIGKILL). Returns the exit status, or -1
 * when it had to be killed or died by a signal. Prints the log tail when the
 * status is not 0 or the log holds a sanitizer report (then returns -2). */
int testenv_stop(testenv_proc *p);
/* Sends sig to the process (no wait). */
void testenv_signal(testenv_proc *p, int sig);
/* Reaps a process known to be dead (after SIGKILL). */
void testenv_reap(testenv_proc *p);
/* Stops everything and removes the directory. */
void testenv_cleanup(testenv *e);

/* A client to endpoint (insecure, token optional). NULL after printing why. */
client *testenv_client(const char *endpoint, const char *token);

/* A path inside the env's directory. */
const char *testenv_path(const testenv *e, const char *name, char *buf, size_t len);

int64_t testenv_now_ms(void);
void testenv_sleep_ms(int64_t ms);
/* 3 under sanitizers (KEEL_SANITIZED), else 1: scales timing bounds. */
int testenv_slow(void);

/* --- objects (heap-built: free with protobuf_c_message_free_unpacked) */

/* A valid Pod: one container "web" (nginx), node ("" = unbound), labels as
 * key, value, ..., NULL (may be NULL). */
Keel__Api__V1__Pod *testenv_pod(const char *ns, const char *name, const char *node, const char *const *labels);
/* Sets (adds or replaces) a label; "" value allowed. */
void testenv_set_label(Keel__Api__V1__ObjectMeta *m, const char *key, const char *value);
/* Sets metadata.resourceVersion. */
void testenv_set_rv(Keel__Api__V1__ObjectMeta *m, const char *rv);

#endif
