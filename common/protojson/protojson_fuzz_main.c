/* common/protojson/protojson_fuzz_main.c — a standalone driver for the fuzz
 * target in protojson_fuzz.c, for builds without libFuzzer: runs the files
 * and directories given, then mutates the built-in seeds (bit flips, JSON
 * tokens, deletions, splices, another type byte) until -max_total_time=S or
 * -runs=N. Other "-flag=value" arguments are ignored, so libFuzzer's command
 * line works. Prints "#<execs> DONE" at the end; a crashing input is written
 * to <-artifact_prefix>crash-standalone-<pid>. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/protojson/protojson_fuzz.h"

#define CAP (1 << 16)

static const uint8_t *volatile g_cur;
static volatile size_t g_cur_len;
static char g_artifact[4096];

static void save_current(void) {
  if (!g_cur || !g_artifact[0]) return;
  int fd = open(g_artifact, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return;
  ssize_t w = write(fd, (const void *)g_cur, g_cur_len);
  close(fd);
  static const char msg[] = "protojson_fuzz (standalone driver): crashing input written to ";
  w = write(2, msg, sizeof(msg) - 1);
  w = write(2, g_artifact, strlen(g_artifact));
  w = write(2, "\n", 1);
  (void)w;
  g_cur = NULL;
}

static void on_signal(int sig) {
  save_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

typedef struct pool {
  uint8_t **data;
  size_t *len;
  size_t n, cap;
} pool;

static void pool_add(void *arg, const uint8_t *d, size_t n) {
  pool *p = arg;
  if (n > CAP) n = CAP;
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 64;
    p->data = realloc(p->data, p->cap * sizeof(*p->data));
    p->len = realloc(p->len, p->cap * sizeof(*p->len));
    if (!p->data || !p->len) abort();
  }
  p->data[p->n] = malloc(n ? n : 1);
  if (!p->data[p->n]) abort();
  memcpy(p->data[p->n], d, n);
  p->len[p->n++] = n;
}

static void run_one(const uint8_t *d, size_t n) {
  g_cur = d;
  g_cur_len = n;
  LLVMFuzzerTestOneInput(d, n);
  g_cur = NULL;
}

static void run_file(const char *path, pool *p) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  static uint8_t buf[CAP];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  run_one(buf, n);
  pool_add(p, buf, n);
}

static void run_path(const char *path, pool *p) {
  struct stat st;
  if (stat(path, &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    run_file(path, p);
    return;
  }
  DIR *d = opendir(path);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", path, de->d_name);
    run_file(full, p);
  }
  if (d) closedir(d);
}

static uint64_t g_rng;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static const char *const tokens[] = {
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e99",
    "0.5",
    "\"\"",
    "{}",
    "[]",
    "\"x\":1,",
    "\"2024-05-01T10:00:00Z\"",
    "\"25%\"",
    "\\u0000",
    "99999999999999999999",
    "\"name\":",
    "\"spec\":{",
    "\"metadata\":{",
};

static size_t mutate(uint8_t *buf, size_t len, const pool *p) {
  int steps = 1 + (int)(rnd() % 4);
  for (int s = 0; s < steps; s++) {
    size_t at = len ? rnd() % len : 0;
    switch (rnd() % 7) {
      case 0:
        if (len) buf[at] ^= (uint8_t)(1u << (rnd() % 8));
        break;
      case 1:
        if (len) buf[at] = (uint8_t) "{}[]:,\"0-.e \\aZ"[rnd() % 15];
        break;
      case 2: { /* delete */
        size_t k = 1 + rnd() % 16;
        if (at + k > len) k = len - at;
        memmove(buf + at, buf + at + k, len - at - k);
        len -= k;
        break;
      }
      case 3: { /* insert a token */
        const char *t = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
        size_t k = strlen(t);
        if (len + k <= CAP) {
          memmove(buf + at + k, buf + at, len - at);
          memcpy(buf + at, t, k);
          len += k;
        }
        break;
      }
      case 4: /* splice in part of another input */
        if (p->n) {
          size_t j = rnd() % p->n, from = p->len[j] ? rnd() % p->len[j] : 0;
          size_t k = (p->len[j] - from) / (1 + rnd() % 4);
          if (at + k > CAP) k = CAP - at;
          memcpy(buf + at, p->data[j] + from, k);
          if (at + k > len) len = at + k;
        }
        break;
      case 5: /* another message type */
        if (len) buf[0] = (uint8_t)rnd();
        break;
      case 6: /* truncate */
        len = at;
        break;
    }
  }
  return len;
}

int main(int argc, char **argv) {
  double max_time = 3;
  long runs = -1;
  g_rng = (uint64_t)time(NULL) | 1;
  const char *prefix = "";
  for (int i = 1; i < argc; i++)
    if (strncmp(argv[i], "-artifact_prefix=", 17) == 0) prefix = argv[i] + 17;
  snprintf(g_artifact, sizeof(g_artifact), "%scrash-standalone-%ld", prefix, (long)getpid());
  signal(SIGABRT, on_signal);
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGILL, on_signal);
  if (__sanitizer_set_death_callback) __sanitizer_set_death_callback(save_current);
  LLVMFuzzerInitialize(&argc, &argv);
  pool p = {0};
  for (int i = 1; i < argc; i++) {
    if (strncmp(argv[i], "-max_total_time=", 16) == 0)
      max_time = atof(argv[i] + 16);
    else if (strncmp(argv[i], "-runs=", 6) == 0)
      runs = atol(argv[i] + 6);
    else if (strncmp(argv[i], "-seed=", 6) == 0)
      g_rng = (uint64_t)atoll(argv[i] + 6) | 1;
    else if (argv[i][0] != '-')
      run_path(argv[i], &p);
  }
  size_t given = p.n;
  protojson_fuzz_seeds(pool_add, &p);
  printf("protojson_fuzz (standalone driver): %zu inputs given, %zu seeds, seed=%llu\n", given,
         p.n - given, (unsigned long long)g_rng);
  fflush(stdout);
  uint8_t *buf = malloc(CAP);
  if (!buf) abort();
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  long execs = 0;
  double secs = 0;
  for (size_t i = given; i < p.n && (runs < 0 || execs < runs); i++, execs++)
    run_one(p.data[i], p.len[i]);
  for (;;) {
    clock_gettime(CLOCK_MONOTONIC, &t);
    secs = (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
    if ((runs >= 0 && execs >= runs) || (runs < 0 && secs >= max_time)) break;
    size_t j = rnd() % p.n;
    size_t len = p.len[j];
    memcpy(buf, p.data[j], len);
    len = mutate(buf, len, &p);
    run_one(buf, len);
    execs++;
    if (rnd() % 64 == 0 && p.n < 4096) pool_add(&p, buf, len);
  }
  printf("#%ld DONE   execs: %ld in %.1f s (%.0f exec/s)\n", execs, execs, secs,
         secs > 0 ? (double)execs / secs : 0.0);
  for (size_t i = 0; i < p.n; i++) free(p.data[i]);
  free(p.data);
  free(p.len);
  free(buf);
  return 0;
}
