/* common/etcd/testproc.h — the daemon processes of a test (test only): the
 * fork/exec, ready-file, stop and clean-up steps that common/etcd/testenv
 * (keel-store and etcd), common/client/testenv (keel-store and
 * keel-apiserver) and tests that restart servers share.
 *
 * A child is PR_SET_PDEATHSIG'ed, so it dies with the test; only pids a test
 * started are ever signalled. Daemons report what they bound as KEY=VALUE
 * lines in a --ready-file they write atomically once they serve. */
#ifndef KEEL_COMMON_ETCD_TESTPROC_H
#define KEEL_COMMON_ETCD_TESTPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Monotonic milliseconds; a sleep that resumes after signals. */
int64_t testproc_now_ms(void);
void testproc_sleep_ms(int64_t ms);

/* fork/exec argv[0] with stdin on /dev/null, stderr (and stdout, unless
 * out_fd) appended to log, no signals blocked. With out_fd, stdout is a pipe
 * whose read end (close-on-exec) is stored there. Returns the pid or -1. */
pid_t testproc_spawn(char *const argv[], const char *log, int *out_fd);

/* True (and reaped, status stored when not NULL) once pid has exited. */
bool testproc_exited(pid_t pid, int *status);

/* Polls the ready file every 20 ms until it holds a line "KEY=VALUE" (VALUE
 * copied to value). 0 when found; -1 when pid exited first (it is reaped);
 * -2 after timeout_ms (pid still runs). Prints nothing. */
int testproc_wait_ready(pid_t pid, const char *ready, const char *key, char *value, size_t len,
                        int64_t timeout_ms);

/* SIGTERM, then up to timeout_ms for the exit, then (with a line on stderr
 * naming name) SIGKILL. Returns the exit status, or -1 when it died by a
 * signal or had to be killed. pid <= 0: nothing, 0. */
int testproc_stop(pid_t pid, const char *name, int64_t timeout_ms);

/* The last max_bytes of a log on stderr, between marker lines. */
void testproc_dump_log(const char *path, size_t max_bytes);

/* Removes dir and everything below it (no links followed); errors ignored. */
void testproc_rmtree(const char *dir);

#endif
