/* services/store/mvcc/index_bench.c — mvcc_index at scale: insert, get, range,
 * update + compaction throughput and memory per key. Prints numbers only.
 *
 *   bazel run -c opt //services/store/mvcc:index_bench -- [keys]   (default 1000000)
 *
 * Keys look like Kubernetes' ("/registry/pods/ns-0042/web-5f2a9c1d", ~35 bytes) and
 * are generated before any timing starts. Times are the thread's CPU time (memory
 * stalls included), so that other work on a shared machine does not inflate them. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "services/store/mvcc/index.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

typedef struct keyset {
  char *bytes;
  uint32_t *off;
  uint8_t *len;
  size_t n;
} keyset;

static int count_visit(void *arg, const uint8_t *key, size_t keylen, mvcc_revision mod, mvcc_revision created,
                       int64_t version) {
  (void)key, (void)keylen, (void)mod, (void)created, (void)version;
  ++*(size_t *)arg;
  return 0;
}

static void count_keep(void *arg, mvcc_revision r) {
  (void)r;
  ++*(size_t *)arg;
}

static void die(const char *what) {
  fprintf(stderr, "index_bench: %s\n", what);
  exit(1);
}

/* One run: n keys inserted in the order of perm. */
static void run(const keyset *ks, const size_t *perm, const char *order) {
  mvcc_index *idx = mvcc_index_create();
  if (!idx) die("out of memory");
  int64_t rev = 1;
  double t0 = now();
  for (size_t i = 0; i < ks->n; i++) {
    size_t k = perm[i];
    if (mvcc_index_put(idx, (const uint8_t *)ks->bytes + ks->off[k], ks->len[k], (mvcc_revision){rev++, 0}) <
        0)
      die("put");
  }
  double t_insert = now() - t0;
  size_t mem = mvcc_index_memory_bytes(idx);
  size_t keybytes = 0;
  for (size_t i = 0; i < ks->n; i++) keybytes += ks->len[i];

  t0 = now();
  for (size_t i = 0; i < ks->n; i++) {
    size_t k = perm[(i * 7919) % ks->n];
    if (mvcc_index_get(idx, (const uint8_t *)ks->bytes + ks->off[k], ks->len[k], rev, NULL, NULL, NULL) < 0)
      die("get");
  }
  double t_get = now() - t0;

  size_t seen = 0;
  t0 = now();
  mvcc_index_range(idx, (const uint8_t *)"", 0, (const uint8_t *)"\0", 1, rev, count_visit, &seen);
  double t_scan = now() - t0;
  if (seen != ks->n) die("scan count");

  /* 1000 prefix ranges of one namespace each */
  t0 = now();
  size_t in_ns = 0;
  for (int ns = 0; ns < 1000; ns++) {
    char from[32], to[32];
    int a = snprintf(from, sizeof from, "/registry/pods/ns-%04d/", ns);
    int b = snprintf(to, sizeof to, "/registry/pods/ns-%04d0", ns); /* '/' + 1 */
    mvcc_index_range(idx, (const uint8_t *)from, (size_t)a, (const uint8_t *)to, (size_t)b, rev, count_visit,
                     &in_ns);
  }
  double t_prefix = now() - t0;

  /* three more revisions of every key, then a compaction back to one each */
  t0 = now();
  for (int round = 0; round < 3; round++)
    for (size_t i = 0; i < ks->n; i++) {
      size_t k = perm[i];
      if (mvcc_index_put(idx, (const uint8_t *)ks->bytes + ks->off[k], ks->len[k],
                         (mvcc_revision){rev++, 0}) < 0)
        die("update");
    }
  double t_update = now() - t0;
  size_t mem_hist = mvcc_index_memory_bytes(idx);
  size_t kept = 0;
  t0 = now();
  mvcc_index_compact(idx, rev - 1, count_keep, &kept);
  double t_compact = now() - t0;
  size_t mem_compacted = mvcc_index_memory_bytes(idx);
  if (kept != ks->n) die("kept count");

  double n = (double)ks->n;
  printf("%s order, %zu keys (avg key %.1f bytes):\n", order, ks->n, (double)keybytes / n);
  printf("  insert        %7.3f s  (%5.0f ns/key)\n", t_insert, t_insert / n * 1e9);
  printf("  get           %7.3f s  (%5.0f ns/get)\n", t_get, t_get / n * 1e9);
  printf("  full scan     %7.3f s  (%5.1f ns/key)\n", t_scan, t_scan / n * 1e9);
  printf("  1000 prefix ranges %7.3f s (%zu keys)\n", t_prefix, in_ns);
  printf("  3x update     %7.3f s  (%5.0f ns/put)\n", t_update, t_update / n / 3 * 1e9);
  printf("  compact       %7.3f s  (%5.0f ns/key)\n", t_compact, t_compact / n * 1e9);
  printf(
      "  memory: %.1f bytes/key after insert (%.1f without key bytes), %.1f with 4 revisions, %.1f after "
      "compaction\n",
      (double)mem / n, (double)(mem - keybytes) / n, (double)mem_hist / n, (double)mem_compacted / n);
  mvcc_index_destroy(idx);
}

int main(int argc, char **argv) {
  keyset ks = {.n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000};
  if (ks.n == 0 || ks.n > 100000000) die("keys: 1..100000000");
  ks.bytes = malloc(ks.n * 40);
  ks.off = malloc(ks.n * sizeof(uint32_t));
  ks.len = malloc(ks.n);
  size_t *perm = malloc(ks.n * sizeof(size_t));
  if (!ks.bytes || !ks.off || !ks.len || !perm) die("out of memory");
  /* keys in sorted order: namespace, then a unique per-key hex name */
  size_t at = 0;
  for (size_t i = 0; i < ks.n; i++) {
    ks.off[i] = (uint32_t)at;
    int l = snprintf(ks.bytes + at, 40, "/registry/pods/ns-%04zu/web-%08zx", i * 1000 / ks.n, i);
    ks.len[i] = (uint8_t)l;
    at += (size_t)l;
  }
  for (size_t i = 0; i < ks.n; i++) perm[i] = i;
  run(&ks, perm, "sorted");
  for (size_t i = ks.n; i > 1; i--) {
    size_t j = rng() % i, x = perm[i - 1];
    perm[i - 1] = perm[j];
    perm[j] = x;
  }
  run(&ks, perm, "random");
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  printf("max RSS %ld MiB (includes the key set and permutation)\n", ru.ru_maxrss / 1024);
  free(ks.bytes);
  free(ks.off);
  free(ks.len);
  free(perm);
  return 0;
}
