/* common/fuzz/standalone_main.c — the standalone driver of every libFuzzer
 * target in the tree, for builds without libFuzzer (Bazel's gcc, with or
 * without --config=asan, or a machine whose clang lacks -fsanitize=fuzzer).
 * It takes libFuzzer's command line, so one sh_test and one command by hand
 * work with either build:
 *
 *   FUZZER [-flag=value...] [FILE|DIR...]
 *
 *  1. LLVMFuzzerInitialize (when the target has one) sees argc/argv first.
 *  2. Every FILE given, and every file in each DIR, is run once and joins the
 *     pool of inputs to mutate.
 *  3. The target's built-in seeds (keel_fuzz_seeds, below) are run once each,
 *     as they are, and join the pool (-runs=N counts these runs too).
 *  4. Until -max_total_time=S seconds (default 3) or -runs=N executions: take
 *     an input from the pool, mutate it, run it; one mutant in 64 joins the
 *     pool. The mutation is the target's LLVMFuzzerCustomMutator when it has
 *     one (it may call LLVMFuzzerMutate, as under libFuzzer), otherwise
 *     LLVMFuzzerMutate: byte-level changes for protobuf, JSON and
 *     length-prefixed formats alike (bit flips, interesting bytes, truncation,
 *     insertions, deletions, splices, the leading mode/type bytes, protobuf
 *     varint and little-endian u32 edge values, JSON tokens).
 * Also -seed=N (the random seed, printed at the start), -max_len=N (the
 * largest mutant, default 65536), -artifact_prefix=P, -exact_artifact_path=F
 * and -print_final_stats=1; other "-flag=value" arguments are ignored.
 * -runs=0 only runs the inputs given (reproducing a crash).
 *
 * Each input runs from a heap buffer of exactly its size, as under libFuzzer,
 * so ASan sees a read past its end. On a crash (abort, a fatal signal, a
 * sanitizer report) the input is written to <prefix>crash-standalone-<pid>
 * (or -exact_artifact_path) before the process dies, as libFuzzer writes
 * crash-<sha1>. Prints "<name> (standalone driver): ..." at the start and
 * "#<execs> DONE ..." at the end, which the fuzzers' sh_tests read.
 *
 * Seeds: a target hands its built-in seeds over as
 *   void keel_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg);
 * //bazel:fuzz.bzl links the target's own function under that name
 * (-Wl,--defsym=keel_fuzz_seeds=<function>, the `seeds` attribute), so targets
 * keep their names. Without it the pool starts from the inputs given, or from
 * one empty input. */
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

/* The target's side. Only LLVMFuzzerTestOneInput is required. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned int seed)
    __attribute__((weak));
void keel_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg)
    __attribute__((weak));
/* The driver's byte-level mutator, under libFuzzer's name for its own. */
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);

/* ASan and UBSan die through _exit, not abort: their death callback saves the input. */
void __sanitizer_set_death_callback(void (*cb)(void)) __attribute__((weak));

#define MAX_FILE (1u << 20) /* the largest input file read */
#define MAX_POOL 4096

static const char *g_name = "fuzzer";

/* ---------------------------------------------------------------- crash artifacts */

static const uint8_t *volatile g_cur; /* the input being run */
static volatile size_t g_cur_len;
static char g_artifact[4096];

static void save_current(void) {
  const uint8_t *cur = g_cur;
  if (!cur || !g_artifact[0]) return;
  g_cur = NULL;
  int fd = open(g_artifact, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return;
  ssize_t w = write(fd, (const void *)cur, g_cur_len);
  close(fd);
  static const char msg[] = " (standalone driver): crashing input written to ";
  w = write(2, g_name, strlen(g_name));
  w = write(2, msg, sizeof(msg) - 1);
  w = write(2, g_artifact, strlen(g_artifact));
  w = write(2, "\n", 1);
  (void)w;
}

static void on_signal(int sig) {
  save_current();
  signal(sig, SIG_DFL);
  raise(sig);
}

static void catch_crashes(void) {
  signal(SIGABRT, on_signal);
  if (__sanitizer_set_death_callback) {
    /* The sanitizers handle SIGSEGV and friends themselves (and report them
     * better): let them, and save the input from their death callback. */
    __sanitizer_set_death_callback(save_current);
    return;
  }
  signal(SIGSEGV, on_signal);
  signal(SIGBUS, on_signal);
  signal(SIGFPE, on_signal);
  signal(SIGILL, on_signal);
}

/* Runs one input from a copy of exactly its size. */
static void run_one(const uint8_t *d, size_t n) {
  uint8_t *copy = malloc(n ? n : 1);
  if (!copy) abort();
  memcpy(copy, d, n);
  g_cur_len = n;
  g_cur = copy;
  LLVMFuzzerTestOneInput(copy, n);
  g_cur = NULL;
  free(copy);
}

/* ---------------------------------------------------------------- the pool */

typedef struct pool {
  uint8_t **data;
  size_t *len;
  size_t n, cap;
  size_t max_len; /* entries are cut to this */
} pool;

static pool g_pool;

static void pool_add(void *arg, const uint8_t *d, size_t n) {
  pool *p = arg;
  if (n > p->max_len) n = p->max_len;
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

static void pool_free(pool *p) {
  for (size_t i = 0; i < p->n; i++) free(p->data[i]);
  free(p->data);
  free(p->len);
  memset(p, 0, sizeof(*p));
}

static void run_file(const char *path, pool *p) {
  FILE *f = fopen(path, "rb");
  if (!f) return;
  uint8_t *buf = malloc(MAX_FILE);
  if (!buf) abort();
  size_t n = fread(buf, 1, MAX_FILE, f);
  fclose(f);
  run_one(buf, n);
  pool_add(p, buf, n);
  free(buf);
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

/* ---------------------------------------------------------------- mutations */

static uint64_t g_rng;

static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static size_t below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

/* Makes room for k bytes at `at` (at <= len, len + k <= max). */
static void open_gap(uint8_t *buf, size_t len, size_t at, size_t k) {
  memmove(buf + at + k, buf + at, len - at);
}

// clang-format off
static const uint8_t k_bytes[] = {
    0, 1, 0x7f, 0x80, 0xff, 0x08, 0x12, 0x0a,
    '{', '}', '[', ']', ':', ',', '"', '0', '-', '.', 'e', ' ', '\\', 'a', 'Z',
};
/* Revisions, limits, enum values and lengths at their edges. */
static const uint64_t k_varints[] = {
    0, 1, 2, 3, 4, 5, 9, 10, 127, 128,
    0x7fffffffffffffffull, 0xffffffffffffffffull, 0x8000000000000000ull,
};
/* Length fields of length-prefixed formats (the WAL's frames). */
static const uint32_t k_u32s[] = {0, 1, 0xffffffffu, 64u << 20, (64u << 20) + 1, 4096};
static const char *const k_tokens[] = {
    "{", "}", "[", "]", ":", ",", "\"", "null", "true", "false", "0", "-1", "1e99", "0.5",
    "\"\"", "{}", "[]", "\"x\":1,", "\"2024-05-01T10:00:00Z\"", "\"25%\"", "\\u0000",
    "99999999999999999999", "\"name\":", "\"spec\":{", "\"metadata\":{",
};
// clang-format on

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

size_t LLVMFuzzerMutate(uint8_t *buf, size_t len, size_t max) {
  if (len > max) len = max;
  int steps = 1 + (int)below(4);
  for (int s = 0; s < steps; s++) {
    size_t at = below(len);
    switch (below(11)) {
      case 0: /* flip a bit */
        if (len) buf[at] ^= (uint8_t)(1u << below(8));
        break;
      case 1: /* an interesting byte */
        if (len) buf[at] = k_bytes[below(NELEM(k_bytes))];
        break;
      case 2: /* truncate */
        len = at;
        break;
      case 3: { /* insert random bytes */
        size_t k = 1 + below(8);
        if (len + k <= max) {
          open_gap(buf, len, at, k);
          for (size_t i = 0; i < k; i++) buf[at + i] = (uint8_t)rnd();
          len += k;
        }
        break;
      }
      case 4: { /* delete a range */
        size_t k = 1 + below(16);
        if (at + k > len) k = len - at;
        memmove(buf + at, buf + at + k, len - at - k);
        len -= k;
        break;
      }
      case 5: { /* splice part of another input in, over the rest or appended */
        if (!g_pool.n) break;
        size_t j = below(g_pool.n), from = below(g_pool.len[j]);
        size_t k = (g_pool.len[j] - from) / (1 + below(4));
        size_t to = below(2) ? at : len;
        if (to + k > max) k = max - to;
        memmove(buf + to, g_pool.data[j] + from, k);
        if (to + k > len) len = to + k;
        break;
      }
      case 6: { /* the leading bytes: the mode, type, kind or options of every target here */
        size_t i = below(2);
        if (len > i) buf[i] = (uint8_t)rnd();
        break;
      }
      case 7: { /* duplicate a range at the end */
        if (!len) break;
        size_t k = 1 + below(len - at);
        if (len + k <= max) {
          memmove(buf + len, buf + at, k);
          len += k;
        }
        break;
      }
      case 8: { /* a protobuf varint edge value, after the first byte */
        uint64_t x = k_varints[below(NELEM(k_varints))];
        uint8_t tmp[10];
        size_t k = 0;
        do {
          tmp[k] = (uint8_t)(x & 0x7f);
          x >>= 7;
          if (x) tmp[k] |= 0x80;
          k++;
        } while (x);
        size_t to = len ? 1 + below(len) : 0;
        if (len + k <= max) {
          open_gap(buf, len, to, k);
          memcpy(buf + to, tmp, k);
          len += k;
        }
        break;
      }
      case 9: /* a little-endian u32 edge value over 4 bytes */
        if (len >= 4) {
          size_t to = below(len - 3);
          uint32_t x = k_u32s[below(NELEM(k_u32s))];
          for (int i = 0; i < 4; i++) buf[to + i] = (uint8_t)(x >> (8 * i));
        }
        break;
      case 10: { /* a JSON token */
        const char *t = k_tokens[below(NELEM(k_tokens))];
        size_t k = strlen(t);
        if (len + k <= max) {
          open_gap(buf, len, at, k);
          memcpy(buf + at, t, k);
          len += k;
        }
        break;
      }
    }
  }
  return len;
}

/* ---------------------------------------------------------------- main */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *flag_value(const char *arg, const char *name) {
  size_t n = strlen(name);
  return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

int main(int argc, char **argv) {
  double max_time = 3;
  long runs = -1;
  long max_len = 1 << 16;
  int final_stats = 0;
  const char *prefix = "", *exact = NULL, *v;
  g_rng = (uint64_t)time(NULL) | 1;
  g_name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
  for (int i = 1; i < argc; i++) {
    if ((v = flag_value(argv[i], "-artifact_prefix"))) prefix = v;
    if ((v = flag_value(argv[i], "-exact_artifact_path"))) exact = v;
  }
  if (exact)
    snprintf(g_artifact, sizeof(g_artifact), "%s", exact);
  else
    snprintf(g_artifact, sizeof(g_artifact), "%scrash-standalone-%ld", prefix, (long)getpid());
  catch_crashes();
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);

  for (int i = 1; i < argc; i++) {
    if ((v = flag_value(argv[i], "-max_total_time")))
      max_time = atof(v);
    else if ((v = flag_value(argv[i], "-runs")))
      runs = atol(v);
    else if ((v = flag_value(argv[i], "-seed")))
      g_rng = (uint64_t)atoll(v) | 1;
    else if ((v = flag_value(argv[i], "-max_len")))
      max_len = atol(v);
    else if ((v = flag_value(argv[i], "-print_final_stats")))
      final_stats = atoi(v);
  }
  if (max_len < 1) max_len = 1;
  if (max_len > (long)MAX_FILE) max_len = MAX_FILE;
  pool *p = &g_pool;
  p->max_len = (size_t)max_len;
  for (int i = 1; i < argc; i++)
    if (argv[i][0] != '-') run_path(argv[i], p);
  size_t given = p->n;
  if (keel_fuzz_seeds) keel_fuzz_seeds(pool_add, p);
  printf("%s (standalone driver): %zu inputs given, %zu seeds, seed=%llu\n", g_name, given, p->n - given,
         (unsigned long long)g_rng);
  fflush(stdout);
  if (!p->n) pool_add(p, (const uint8_t *)"", 0);

  uint8_t *buf = malloc((size_t)max_len);
  if (!buf) abort();
  double start = now_s(), secs = 0;
  long execs = 0;
  /* The built-in seeds once as they are. */
  for (size_t i = given; i < p->n && (runs < 0 || execs < runs); i++, execs++) run_one(p->data[i], p->len[i]);
  for (;;) {
    if (runs >= 0 && execs >= runs) break;
    if ((execs & 15) == 0 && now_s() - start >= max_time) break;
    size_t j = below(p->n);
    size_t len = p->len[j];
    memcpy(buf, p->data[j], len);
    if (LLVMFuzzerCustomMutator)
      len = LLVMFuzzerCustomMutator(buf, len, (size_t)max_len, (unsigned)rnd());
    else
      len = LLVMFuzzerMutate(buf, len, (size_t)max_len);
    if (len > (size_t)max_len) len = (size_t)max_len;
    run_one(buf, len);
    execs++;
    /* Keep some mutants as new starting points. */
    if (below(64) == 0 && p->n < MAX_POOL) pool_add(p, buf, len);
  }
  secs = now_s() - start;
  double rate = secs > 0 ? (double)execs / secs : 0.0;
  printf("#%ld DONE   execs: %ld in %.1f s (%.0f exec/s)\n", execs, execs, secs, rate);
  if (final_stats)
    printf("stat::number_of_executed_units: %ld\nstat::average_exec_per_sec: %.0f\n", execs, rate);
  pool_free(p);
  free(buf);
  return 0;
}
