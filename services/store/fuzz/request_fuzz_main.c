/* services/store/fuzz/request_fuzz_main.c — a standalone driver for the fuzz target
 * in request_fuzz.c, for builds without libFuzzer (gcc, or no clang): runs any
 * files or directories given, then mutates the built-in seeds at random
 * (bit flips, byte sets, truncation, insertion, splicing, request type and
 * store variant changes, protobuf varints)
 * until -max_total_time=S seconds or -runs=N executions. Accepts and ignores
 * other libFuzzer-style "-flag=value" arguments, so one command line works for
 * both. Prints "#<execs> DONE" and executions per second at the end. On a
 * crash (abort, a signal, or a sanitizer report) the input being run is written
 * to <-artifact_prefix>crash-standalone-<pid>, as libFuzzer writes crash-<sha1>. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "services/store/fuzz/request_fuzz.h"

/* The input being run, for the crash artifact. */
static const uint8_t *volatile g_cur;
static volatile size_t g_cur_len;
static char g_artifact[4096];

static void save_current(void) {
  if (!g_cur || !g_artifact[0]) return;
  int fd = open(g_artifact, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return;
  ssize_t w = write(fd, (const void *)g_cur, g_cur_len);
  (void)w;
  close(fd);
  static const char msg[] = "request_fuzz (standalone driver): crashing input written to ";
  w = write(2, msg, sizeof(msg) - 1);
  w = write(2, g_artifact, strlen(g_artifact));
  w = write(2, "\n", 1);
  g_cur = NULL;
}

static void on_signal(int sig) {
  save_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

/* ASan and UBSan die through _exit, not abort: their death callback saves the input. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

static void run_one(const uint8_t *d, size_t n) {
  g_cur = d;
  g_cur_len = n;
  LLVMFuzzerTestOneInput(d, n);
  g_cur = NULL;
}

typedef struct pool {
  uint8_t **data;
  size_t *len;
  size_t n, cap;
} pool;

static void pool_add(void *arg, const uint8_t *d, size_t n) {
  pool *p = arg;
  if (p->n == p->cap) {
    p->cap = p->cap ? p->cap * 2 : 64;
    p->data = realloc(p->data, p->cap * sizeof(*p->data));
    p->len = realloc(p->len, p->cap * sizeof(*p->len));
  }
  p->data[p->n] = malloc(n ? n : 1);
  memcpy(p->data[p->n], d, n);
  p->len[p->n++] = n;
}

static uint64_t g_rng;
static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void run_file(const char *path, pool *p) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  static uint8_t buf[1 << 20];
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

static size_t mutate(uint8_t *buf, size_t len, size_t cap, const pool *p) {
  int steps = 1 + (int)(rnd() % 4);
  for (int s = 0; s < steps; s++) {
    switch (rnd() % 8) {
      case 0: /* flip a bit */
        if (len) buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8));
        break;
      case 1: /* set a byte to an interesting value */
        if (len) {
          static const uint8_t v[] = {0, 1, 0x7f, 0x80, 0xff, 0x08, 0x12, 0x0a};
          buf[rnd() % len] = v[rnd() % sizeof(v)];
        }
        break;
      case 2: /* truncate */
        if (len) len = rnd() % len;
        break;
      case 3: /* insert random bytes */
        if (len < cap - 16) {
          size_t at = len ? rnd() % len : 0, k = 1 + rnd() % 8;
          memmove(buf + at + k, buf + at, len - at);
          for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)rnd();
          len += k;
        }
        break;
      case 4: /* splice: append part of another input */
        if (p->n) {
          size_t j = rnd() % p->n, from = p->len[j] ? rnd() % p->len[j] : 0;
          size_t k = p->len[j] - from;
          if (len + k > cap) k = cap - len;
          memcpy(buf + len, p->data[j] + from, k);
          len += k;
        }
        break;
      case 5: /* another request type / store variant / mode */
        if (len) buf[0] = (uint8_t)rnd();
        break;
      case 6: /* duplicate a range */
        if (len > 4 && len * 2 < cap) {
          size_t from = rnd() % len, k = 1 + rnd() % (len - from);
          memcpy(buf + len, buf + from, k);
          len += k;
        }
        break;
      case 7: /* a protobuf varint edge value (revisions, limits, enums, lengths) */
        if (len < cap - 16) {
          static const uint64_t v[] = {0, 1, 2, 3, 4, 5, 9, 10, 127, 128, 0x7fffffffffffffffull,
                                       0xffffffffffffffffull, 0x8000000000000000ull};
          uint64_t x = v[rnd() % (sizeof(v) / sizeof(v[0]))];
          uint8_t tmp[10];
          size_t k = 0;
          do {
            tmp[k] = (uint8_t)(x & 0x7f);
            x >>= 7;
            if (x) tmp[k] |= 0x80;
            k++;
          } while (x);
          size_t at = len ? 1 + rnd() % len : 0;
          if (at > len) at = len;
          memmove(buf + at + k, buf + at, len - at);
          memcpy(buf + at, tmp, k);
          len += k;
        }
        break;
    }
  }
  return len;
}

static const pool *g_pool;
static size_t byte_mutate(uint8_t *buf, size_t len, size_t cap) { return mutate(buf, len, cap, g_pool); }

int main(int argc, char **argv) {
  double max_time = 3;
  long runs = -1;
  g_rng = (uint64_t)time(NULL) | 1;
  pool p = {0};
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
  request_fuzz_seeds(pool_add, &p);
  size_t cap = 1 << 16;
  uint8_t *buf = malloc(cap);
  double start = now_s();
  long execs = 0;
  printf("request_fuzz (standalone driver): %zu inputs given, %zu seeds, seed=%llu\n", given,
         p.n - given, (unsigned long long)g_rng);
  fflush(stdout);
  /* The built-in seeds once as they are. */
  for (size_t i = given; i < p.n && (runs < 0 || execs < runs); i++, execs++) run_one(p.data[i], p.len[i]);
  for (;;) {
    if (runs >= 0 && execs >= runs) break;
    if ((execs & 63) == 0 && now_s() - start >= max_time) break;
    size_t j = rnd() % p.n;
    size_t len = p.len[j] < cap ? p.len[j] : cap;
    memcpy(buf, p.data[j], len);
    /* Mostly structure-aware (request_fuzz_mutator.c), else byte-level. */
    g_pool = &p;
    len = request_fuzz_mutate(buf, len, cap, (unsigned)rnd(), byte_mutate);
    run_one(buf, len);
    execs++;
    /* Keep some mutants as new starting points. */
    if (rnd() % 64 == 0 && p.n < 4096) pool_add(&p, buf, len);
  }
  double secs = now_s() - start;
  printf("#%ld DONE   execs: %ld in %.1f s (%.0f exec/s)\n", execs, execs, secs,
         secs > 0 ? (double)execs / secs : 0.0);
  for (size_t i = 0; i < p.n; i++) free(p.data[i]);
  free(p.data);
  free(p.len);
  free(buf);
  return 0;
}
