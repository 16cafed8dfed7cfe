/* services/store/wal/snapshot_test.c — snapshot files: round trips with exact
 * chunk boundaries (small, empty, larger than the write buffer), keeping the
 * two newest, falling back past a damaged newest one (renamed .broken, nothing
 * of it delivered), every truncation and every bit flip of a small snapshot
 * rejected, a failing producer leaving nothing behind, a refusing reader, and
 * stale temp files. */
#define _GNU_SOURCE
#include "services/store/wal/snapshot.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log/log.h"
#include "services/store/wal/testutil.h"

static char *g_dir;

static int setup(void **state) {
  (void)state;
  g_dir = tu_mkdtemp("snapshot_test");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_rm_rf(g_dir);
  free(g_dir);
  return 0;
}

/* Content: nchunks chunks, chunk i of size sizes[i % nsizes], bytes from (seed, i). */
typedef struct content {
  uint64_t seed;
  int nchunks;
  const size_t *sizes;
  int nsizes;
  int fail_at; /* produce returns -EIO before this chunk (0 = never) */
} content;

static size_t chunk_size(const content *c, int i) {
  return c->sizes[i % c->nsizes];
}

static int produce(void *arg, snapshot_sink *sink) {
  const content *c = arg;
  for (int i = 0; i < c->nchunks; i++) {
    if (c->fail_at && i == c->fail_at) return -EIO;
    size_t n = chunk_size(c, i);
    uint8_t *buf = malloc(n);
    tu_payload(c->seed * 7919 + (uint64_t)i, buf, n);
    int rc = snapshot_sink_write(sink, buf, n);
    free(buf);
    if (rc < 0) return rc;
  }
  return 0;
}

typedef struct checker {
  const content *c;
  int next;
  int bad;
  int refuse_at; /* return -EPROTO on this chunk (-1 = never) */
} checker;

static int check_chunk(void *arg, const uint8_t *p, size_t len) {
  checker *k = arg;
  if (k->refuse_at == k->next) return -EPROTO;
  int i = k->next++;
  if (!k->c || i >= k->c->nchunks || len != chunk_size(k->c, i)) {
    k->bad++;
    return 0;
  }
  uint8_t *want = malloc(len);
  tu_payload(k->c->seed * 7919 + (uint64_t)i, want, len);
  if (memcmp(want, p, len) != 0) k->bad++;
  free(want);
  return 0;
}

static void write_ok(const content *c, uint64_t index, uint64_t *oldest) {
  keel_error err = {0};
  int rc = snapshot_write(g_dir, index, produce, (void *)c, oldest, &err);
  if (rc != 0) fail_msg("snapshot_write %" PRIu64 ": %s", index, err.message);
}

static void load_expect(const content *c, uint64_t index) {
  checker k = {.c = c, .refuse_at = -1};
  uint64_t got = 99;
  keel_error err = {0};
  int rc = snapshot_load_latest(g_dir, check_chunk, &k, &got, &err);
  if (rc < 0) fail_msg("load: %s", err.message);
  assert_int_equal(rc, 1);
  assert_int_equal(got, index);
  assert_int_equal(k.bad, 0);
  assert_int_equal(k.next, c->nchunks);
}

static const size_t k_sizes[] = {1, 100, 4096, 17, 65536, 3};

static void test_round_trip(void **state) {
  (void)state;
  content c = {.seed = 1, .nchunks = 200, .sizes = k_sizes, .nsizes = 6};
  uint64_t oldest = 0;
  write_ok(&c, 1234, &oldest);
  assert_int_equal(oldest, 1234);
  assert_true(tu_exists(tu_join(g_dir, "00000000000004d2.snap")));
  load_expect(&c, 1234);
  /* Chunks larger than the 1 MiB write buffer, and an empty snapshot. */
  static const size_t big[] = {3 << 20, 10, (1 << 20) + 1};
  content cb = {.seed = 2, .nchunks = 5, .sizes = big, .nsizes = 3};
  write_ok(&cb, 2000, &oldest);
  load_expect(&cb, 2000);
  content empty = {.seed = 3, .nchunks = 0, .sizes = k_sizes, .nsizes = 1};
  write_ok(&empty, 3000, &oldest);
  load_expect(&empty, 3000);
  assert_int_equal(oldest, 2000);
}

static void test_none(void **state) {
  (void)state;
  uint64_t idx = 5;
  assert_int_equal(snapshot_load_latest(tu_join(g_dir, "absent"), check_chunk, NULL, &idx, NULL),
                   0);
  assert_int_equal(idx, 0);
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, NULL, &idx, NULL), 0);
  tu_write_file(tu_join(g_dir, "README"), "x", 1);
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, NULL, &idx, NULL), 0);
}

static void test_keeps_two_newest(void **state) {
  (void)state;
  content c = {.seed = 4, .nchunks = 3, .sizes = k_sizes, .nsizes = 6};
  uint64_t oldest = 0;
  for (uint64_t i = 1; i <= 5; i++) {
    c.seed = i;
    write_ok(&c, i * 100, &oldest);
    assert_int_equal(oldest, i == 1 ? 100 : (i - 1) * 100);
  }
  int n;
  char **names = tu_list(g_dir, ".snap", &n);
  assert_int_equal(n, 2);
  assert_string_equal(names[0], "0000000000000190.snap"); /* 400 */
  assert_string_equal(names[1], "00000000000001f4.snap"); /* 500 */
  tu_free_names(names, n);
  c.seed = 5;
  load_expect(&c, 500);
  /* Writing an older index keeps it (it was just written) and the two newest. */
  c.seed = 9;
  write_ok(&c, 50, &oldest);
  assert_int_equal(oldest, 50);
  assert_int_equal(tu_count_suffix(g_dir, ".snap"), 3);
  /* Same index again replaces it. */
  c.seed = 10;
  write_ok(&c, 500, &oldest);
  load_expect(&c, 500);
}

static void test_damaged_newest_falls_back(void **state) {
  (void)state;
  content old = {.seed = 20, .nchunks = 10, .sizes = k_sizes, .nsizes = 6};
  content newer = {.seed = 21, .nchunks = 10, .sizes = k_sizes, .nsizes = 6};
  write_ok(&old, 10, NULL);
  write_ok(&newer, 20, NULL);
  const char *path = tu_join(g_dir, "0000000000000014.snap");
  size_t len;
  uint8_t *d = tu_read_file(path, &len);
  d[len / 2] ^= 1;
  tu_write_file(path, d, len);
  free(d);
  load_expect(&old, 10);
  assert_false(tu_exists(path));
  assert_true(tu_exists(tu_join(g_dir, "0000000000000014.snap.broken")));
  /* Both damaged: no snapshot at all (the WAL must then hold everything). */
  path = tu_join(g_dir, "000000000000000a.snap");
  d = tu_read_file(path, &len);
  tu_write_file(path, d, len - 1);
  free(d);
  uint64_t idx = 7;
  checker k = {.refuse_at = -1};
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, &k, &idx, NULL), 0);
  assert_int_equal(idx, 0);
  assert_int_equal(k.next, 0);
  /* A later write works and is not confused by the .broken files. */
  write_ok(&old, 30, NULL);
  load_expect(&old, 30);
}

/* Every truncation and every single-bit flip of a small snapshot is rejected
 * by the parser, and load never delivers a chunk of it. */
static void test_every_truncation_and_flip_rejected(void **state) {
  (void)state;
  static const size_t sizes[] = {5, 40, 1};
  content c = {.seed = 30, .nchunks = 4, .sizes = sizes, .nsizes = 3};
  write_ok(&c, 77, NULL);
  const char *path = tu_join(g_dir, "000000000000004d.snap");
  size_t len;
  uint8_t *good = tu_read_file(path, &len);
  uint64_t idx;
  const char *why;
  size_t off;
  assert_int_equal(snapshot_parse(good, len, NULL, NULL, &idx, &why, &off), 0);
  assert_int_equal(idx, 77);
  uint8_t *d = malloc(len + 1);
  for (size_t cut = 0; cut < len; cut++) {
    memcpy(d, good, cut);
    why = NULL;
    assert_int_equal(snapshot_parse(cut ? d : NULL, cut, NULL, NULL, &idx, &why, &off), -EBADMSG);
    assert_non_null(why);
  }
  for (size_t bit = 0; bit < len * 8; bit++) {
    memcpy(d, good, len);
    d[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    checker k = {.c = &c, .refuse_at = -1};
    assert_int_equal(snapshot_parse(d, len, check_chunk, &k, &idx, &why, &off), -EBADMSG);
    assert_int_equal(k.next, 0);
  }
  /* One extra byte at the end. */
  memcpy(d, good, len);
  d[len] = 0;
  assert_int_equal(snapshot_parse(d, len + 1, NULL, NULL, &idx, &why, &off), -EBADMSG);
  /* Through load: a truncated only-snapshot is skipped, nothing delivered. */
  tu_write_file(path, good, len - 3);
  checker k = {.c = &c, .refuse_at = -1};
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, &k, &idx, NULL), 0);
  assert_int_equal(k.next, 0);
  free(d);
  free(good);
}

static void test_failing_producer_leaves_nothing(void **state) {
  (void)state;
  content old = {.seed = 40, .nchunks = 3, .sizes = k_sizes, .nsizes = 6};
  write_ok(&old, 5, NULL);
  content bad = {.seed = 41, .nchunks = 10, .sizes = k_sizes, .nsizes = 6, .fail_at = 4};
  keel_error err = {0};
  assert_int_equal(snapshot_write(g_dir, 9, produce, &bad, NULL, &err), -EIO);
  assert_int_equal(err.code, EIO);
  assert_int_equal(tu_count_suffix(g_dir, ".tmp"), 0);
  assert_false(tu_exists(tu_join(g_dir, "0000000000000009.snap")));
  load_expect(&old, 5);
}

static int bad_chunks(void *arg, snapshot_sink *sink) {
  (void)arg;
  static uint8_t b[8];
  if (snapshot_sink_write(sink, b, 0) != -EINVAL) return -EBADE;
  if (snapshot_sink_write(sink, NULL, 3) != -EINVAL) return -EBADE;
  if (snapshot_sink_write(sink, b, (size_t)SNAPSHOT_MAX_CHUNK + 1) != -EMSGSIZE) return -EBADE;
  return snapshot_sink_write(sink, b, sizeof(b));
}

static void test_sink_argument_checks(void **state) {
  (void)state;
  keel_error err = {0};
  assert_int_equal(snapshot_write(g_dir, 1, bad_chunks, NULL, NULL, &err), 0);
  checker k = {.refuse_at = -1};
  uint64_t idx;
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, &k, &idx, NULL), 1);
  assert_int_equal(k.next, 1);
}

static void test_reader_refusal_is_returned(void **state) {
  (void)state;
  content c = {.seed = 50, .nchunks = 5, .sizes = k_sizes, .nsizes = 6};
  content older = {.seed = 51, .nchunks = 5, .sizes = k_sizes, .nsizes = 6};
  write_ok(&older, 1, NULL);
  write_ok(&c, 2, NULL);
  checker k = {.c = &c, .refuse_at = 2};
  uint64_t idx = 0;
  keel_error err = {0};
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, &k, &idx, &err), -EPROTO);
  assert_int_equal(err.code, EPROTO);
  assert_int_equal(k.next, 2);
  /* No fallback, nothing renamed: the file was fine. */
  assert_true(tu_exists(tu_join(g_dir, "0000000000000002.snap")));
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
}

static void test_stale_tmp_removed(void **state) {
  (void)state;
  tu_write_file(tu_join(g_dir, "0000000000000063.snap.tmp"), "partial", 7);
  content c = {.seed = 60, .nchunks = 2, .sizes = k_sizes, .nsizes = 6};
  /* Load ignores it... */
  assert_int_equal(snapshot_load_latest(g_dir, check_chunk, NULL, NULL, NULL), 0);
  /* ...the next write removes it. */
  write_ok(&c, 10, NULL);
  assert_int_equal(tu_count_suffix(g_dir, ".tmp"), 0);
  load_expect(&c, 10);
}

int main(void) {
  log_set_level(LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_none, setup, teardown),
      cmocka_unit_test_setup_teardown(test_keeps_two_newest, setup, teardown),
      cmocka_unit_test_setup_teardown(test_damaged_newest_falls_back, setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_truncation_and_flip_rejected, setup, teardown),
      cmocka_unit_test_setup_teardown(test_failing_producer_leaves_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_sink_argument_checks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_reader_refusal_is_returned, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stale_tmp_removed, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
