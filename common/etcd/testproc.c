/* common/etcd/testproc.c — see testproc.h. */
#define _GNU_SOURCE
#include "common/etcd/testproc.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int64_t testproc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void testproc_sleep_ms(int64_t ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

pid_t testproc_spawn(char *const argv[], const char *log, int *out_fd) {
  int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return -1;
  int pipefd[2] = {-1, -1};
  if (out_fd && pipe2(pipefd, O_CLOEXEC) < 0) {
    close(fd);
    return -1;
  }
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    /* Only async-signal-safe calls between fork and exec (gRPC threads run). */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    int nul = open("/dev/null", O_RDONLY);
    if (nul >= 0) dup2(nul, 0);
    dup2(out_fd ? pipefd[1] : fd, 1);
    dup2(fd, 2);
    /* The test blocks no signals the daemons rely on, but be explicit. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execv(argv[0], argv);
    _exit(127);
  }
  close(fd);
  if (out_fd) {
    close(pipefd[1]);
    if (pid < 0)
      close(pipefd[0]);
    else
      *out_fd = pipefd[0];
  }
  return pid;
}

bool testproc_exited(pid_t pid, int *status) {
  int st;
  if (waitpid(pid, &st, WNOHANG) != pid) return false;
  if (status) *status = st;
  return true;
}

/* The value of the first "key=" line of path into value; false if none yet. */
static bool read_ready(const char *path, const char *key, char *value, size_t len) {
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t klen = strlen(key);
  bool found = false;
  char line[512];
  while (!found && fgets(line, sizeof(line), f)) {
    line[strcspn(line, "\r\n")] = 0;
    if (strncmp(line, key, klen) == 0 && line[klen] == '=') {
      snprintf(value, len, "%s", line + klen + 1);
      found = true;
    }
  }
  fclose(f);
  return found;
}

int testproc_wait_ready(pid_t pid, const char *ready, const char *key, char *value, size_t len,
                        int64_t timeout_ms) {
  int64_t deadline = testproc_now_ms() + timeout_ms;
  for (;;) {
    if (read_ready(ready, key, value, len)) return 0;
    if (testproc_exited(pid, NULL)) return -1;
    if (testproc_now_ms() > deadline) return -2;
    testproc_sleep_ms(20);
  }
}

int testproc_stop(pid_t pid, const char *name, int64_t timeout_ms) {
  if (pid <= 0) return 0;
  kill(pid, SIGTERM);
  int64_t deadline = testproc_now_ms() + timeout_ms;
  int status = 0;
  bool done = false;
  while (!(done = testproc_exited(pid, &status)) && testproc_now_ms() < deadline) testproc_sleep_ms(10);
  if (!done) {
    fprintf(stderr, "%s (pid %d) ignored SIGTERM for %lld ms: killing it\n", name, (int)pid,
            (long long)timeout_ms);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void testproc_dump_log(const char *path, size_t max_bytes) {
  FILE *f = fopen(path, "r");
  if (!f) return;
  char *buf = malloc(max_bytes + 1);
  if (!buf) {
    fclose(f);
    return;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, size > (long)max_bytes ? size - (long)max_bytes : 0, SEEK_SET);
  size_t n = fread(buf, 1, max_bytes, f);
  buf[n] = 0;
  fclose(f);
  fprintf(stderr, "----- %s -----\n%s\n----- end -----\n", path, buf);
  free(buf);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void testproc_rmtree(const char *dir) {
  if (dir && dir[0]) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
