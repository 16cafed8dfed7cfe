/* services/store/wal/wal_kill_test.c — kill -9 at a random instant loses no
 * acknowledged write.
 *
 * Each round forks a child that opens the log (recovering whatever the last
 * round left), and appends from 8 threads with real fdatasync; after each
 * append is acknowledged (wal_append_sync returned 0) it reports
 * (index, length, crc32c) through a pipe. The parent kills it with SIGKILL at
 * a random moment — sometimes within the first milliseconds, while it is still
 * recovering — then reopens the log itself and checks that every record
 * acknowledged in ANY round so far is present with the same bytes, and that
 * the indexes run 1..N without a gap. The same directory is used by every
 * round, so recovery runs on top of recovery. Segments are small (256 KiB) so
 * kills also land while segments are being cut. */
#define _GNU_SOURCE
#include "services/store/wal/wal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log/log.h"
#include "services/store/wal/crc32c.h"
#include "services/store/wal/testutil.h"

#define ROUNDS 20
#define THREADS 8
#define MAX_PAYLOAD 1024
#define SEGMENT (256u << 10)

typedef struct ack {
  uint64_t index;
  uint32_t len;
  uint32_t crc;
} ack;

/* ---------- child ---------- */

typedef struct child_thread {
  wal *w;
  int fd;
  uint64_t seed;
} child_thread;

static void *child_appender(void *arg) {
  child_thread *t = arg;
  uint8_t buf[MAX_PAYLOAD];
  for (uint64_t i = 0;; i++) {
    size_t len = 1 + (size_t)((t->seed * 7 + i * 131) % MAX_PAYLOAD);
    tu_payload(t->seed * 1000003 + i, buf, len);
    uint64_t index;
    int rc = wal_append_sync(t->w, buf, len, &index);
    if (rc != 0) _exit(3);
    ack a = {index, (uint32_t)len, crc32c(0, buf, len)};
    if (write(t->fd, &a, sizeof(a)) != (ssize_t)sizeof(a)) _exit(4);
  }
  return NULL;
}

__attribute__((noreturn)) static void child_main(const char *dir, int fd, uint64_t seed) {
  alarm(30); /* never outlive a parent that failed to kill us */
  log_set_level(LOG_ERROR);
  keel_error err = {0};
  wal *w = wal_open(dir, &(wal_options){.segment_bytes = SEGMENT}, NULL, NULL, &err);
  if (!w) {
    fprintf(stderr, "child: wal_open: %s\n", err.message);
    _exit(2);
  }
  child_thread ts[THREADS];
  pthread_t tid[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ts[i] = (child_thread){w, fd, seed * 100 + (uint64_t)i};
    if (pthread_create(&tid[i], NULL, child_appender, &ts[i]) != 0) _exit(5);
  }
  for (;;) pause();
}

/* ---------- parent ---------- */

static uint64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t read_acks(int fd, ack **acks, size_t *n, size_t *cap) {
  size_t got = 0;
  static uint8_t pending[sizeof(ack)];
  static size_t npending;
  uint8_t buf[4096];
  ssize_t r = read(fd, buf, sizeof(buf));
  if (r <= 0) return 0;
  for (ssize_t i = 0; i < r; i++) {
    pending[npending++] = buf[i];
    if (npending == sizeof(ack)) {
      if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *acks = realloc(*acks, *cap * sizeof(ack));
      }
      memcpy(&(*acks)[(*n)++], pending, sizeof(ack));
      npending = 0;
      got++;
    }
  }
  return got;
}

static void test_kill9_loses_no_acknowledged_write(void **state) {
  (void)state;
  char *dir = tu_mkdtemp("wal_kill");
  ack *acks = NULL;
  size_t nacks = 0, cap = 0;
  srand((unsigned)now_us());
  uint64_t t_start = now_us();
  size_t total_recovered = 0;
  int early_kills = 0, torn_tails = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      child_main(dir, p[1], (uint64_t)round + 1);
    }
    close(p[1]);
    /* A quarter of the kills land in the first 3 ms (during recovery). */
    uint64_t delay =
        (rand() % 4 == 0) ? (uint64_t)(rand() % 3000) : 5000 + (uint64_t)(rand() % 120000);
    if (delay < 3000) early_kills++;
    uint64_t deadline = now_us() + delay;
    size_t before = nacks;
    for (;;) {
      uint64_t now = now_us();
      if (now >= deadline) break;
      struct pollfd pfd = {p[0], POLLIN, 0};
      int timeout_ms = (int)((deadline - now) / 1000);
      if (poll(&pfd, 1, timeout_ms) > 0 && read_acks(p[0], &acks, &nacks, &cap) == 0 &&
          (pfd.revents & POLLHUP))
        break; /* the child died on its own */
    }
    kill(pid, SIGKILL);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    while (read_acks(p[0], &acks, &nacks, &cap) > 0) {
    }
    close(p[0]);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
      fail_msg("round %d: child ended with status %d, not by our SIGKILL", round, status);

    /* Every acknowledged record of every round must be there. */
    tu_log got = {0};
    keel_error err = {0};
    wal *w = wal_open(dir, &(wal_options){.segment_bytes = SEGMENT}, tu_collect, &got, &err);
    if (!w) fail_msg("round %d: reopen after kill -9 failed: %s", round, err.message);
    for (size_t i = 0; i < got.n; i++) assert_int_equal(got.index[i], i + 1);
    for (size_t i = 0; i < nacks; i++) {
      const ack *a = &acks[i];
      if (a->index == 0 || a->index > got.n)
        fail_msg("round %d: acknowledged index %" PRIu64 " lost (log has %zu records)", round,
                 a->index, got.n);
      size_t k = (size_t)a->index - 1;
      assert_int_equal(got.len[k], a->len);
      assert_int_equal(crc32c(0, got.data[k], got.len[k]), a->crc);
    }
    wal_stats st;
    wal_get_stats(w, &st);
    if (st.tail_truncated_bytes) torn_tails++;
    printf("round %2d: killed after %5.1f ms, %4zu new acks, log has %zu records%s\n", round,
           (double)delay / 1000.0, nacks - before, got.n,
           st.tail_truncated_bytes ? " (torn tail cut)" : "");
    total_recovered = got.n;
    assert_int_equal(wal_close(w), 0);
    tu_log_free(&got);
  }
  double secs = (double)(now_us() - t_start) / 1e6;
  printf(
      "kill -9: %d rounds (%d during startup, %d left a torn tail), %zu acknowledged records "
      "checked, %zu in the log, %.1f s\n",
      ROUNDS, early_kills, torn_tails, nacks, total_recovered, secs);
  assert_true(nacks > 0);
  free(acks);
  tu_rm_rf(dir);
  free(dir);
}

int main(void) {
  log_set_level(LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill9_loses_no_acknowledged_write),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
