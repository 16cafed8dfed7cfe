/* services/store/lease/lessor_bench.c — the lessor's costs at scale: grant, keepalive
 * (renew), grant+revoke churn, attach, expired listing, bytes per lease.
 *   bazel run -c opt //services/store/lease:lessor_bench -- [leases]   (default 100000) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "services/store/lease/lessor.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void) {
  uint64_t x = rng_state;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return rng_state = x;
}

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void report(const char *what, double t0, size_t ops) {
  printf("%-44s %9zu ops %8.1f ns/op\n", what, ops, (now_ns() - t0) / (double)ops);
}

int main(int argc, char **argv) {
  size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 100000;
  const size_t ops = 1000000;
  if (n == 0) return 2;
  lessor *l = lessor_create();
  int64_t *ids = malloc(n * sizeof(*ids));
  if (!l || !ids) return 1;
  int64_t now = 0;

  double t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    ids[i] = lessor_next_id(l);
    if (lessor_grant(l, ids[i], 600 + (int64_t)(rng() % 600), now) != 0) return 1;
    now += i % 10 == 0;
  }
  report("grant (next_id + grant) into empty..n", t0, n);

  t0 = now_ns();
  size_t found = 0;
  for (size_t i = 0; i < ops; i++) found += lessor_exists(l, ids[rng() % n]);
  report("exists, random lease (lookup alone)", t0, ops);
  if (found != ops) return 1;

  t0 = now_ns();
  for (size_t i = 0; i < ops; i++)
    if (lessor_keepalive(l, ids[rng() % n], now) < 0) return 1;
  report("keepalive, random lease, same now", t0, ops);

  t0 = now_ns();
  for (size_t i = 0; i < ops; i++)
    if (lessor_keepalive(l, ids[rng() % n], now += i % 10 == 0) < 0) return 1;
  report("keepalive, random lease, advancing now", t0, ops);

  t0 = now_ns();
  for (size_t i = 0; i < ops; i++) {
    size_t j = rng() % n;
    if (lessor_revoke(l, ids[j], NULL) != 0) return 1;
    ids[j] = lessor_next_id(l);
    if (lessor_grant(l, ids[j], 600 + (int64_t)(rng() % 600), now += i % 10 == 0) != 0) return 1;
  }
  report("revoke + next_id + grant at n leases", t0, ops);

  char key[64];
  t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    int len = snprintf(key, sizeof(key), "/registry/events/default/event-%zu", i);
    if (lessor_attach(l, ids[i], (const uint8_t *)key, (size_t)len) != 0) return 1;
  }
  report("attach one key per lease", t0, n);
  printf("memory: %zu bytes, %.1f bytes per lease with one key\n", lessor_memory_bytes(l),
         (double)lessor_memory_bytes(l) / (double)n);

  int64_t *out = malloc(1000 * sizeof(*out));
  if (!out) return 1;
  int64_t later = now + 1200 * 1000;
  size_t calls = 1000;
  t0 = now_ns();
  size_t got = 0;
  for (size_t i = 0; i < calls; i++) got += lessor_expired(l, later, out, 1000);
  report("expired (all expired), cap 1000, per call", t0, calls);
  if (got != calls * (n < 1000 ? n : 1000)) return 1;

  t0 = now_ns();
  lessor_renew_all(l, later);
  report("renew_all, per lease", t0, n);

  lessor_keys keys = {0};
  t0 = now_ns();
  for (size_t i = 0; i < n; i++) {
    if (lessor_revoke(l, ids[i], &keys) != 0 || keys.n != 1) return 1;
    lessor_keys_free(&keys);
  }
  report("revoke with one key", t0, n);
  free(out);
  free(ids);
  lessor_destroy(l);
  return 0;
}
