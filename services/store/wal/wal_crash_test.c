/* services/store/wal/wal_crash_test.c — recovery after damage, exhaustively.
 *
 * A small log (two or three segments of 4 KiB) is written, kept in memory, and
 * restored into the directory before each case:
 * - the last segment truncated at EVERY byte offset: recovery yields exactly
 *   the records wholly before the cut, and appends continue after them;
 * - any other segment truncated at every offset: a hard error;
 * - one bit flipped at EVERY byte offset of every file: in the last segment's
 *   records, exactly the records before the damaged one come back (then
 *   appends continue); in its zeroed tail, all of them; in any segment header
 *   holding data, or anywhere in an earlier segment, a hard error that names
 *   the file and offset and changes nothing on disk;
 * plus a torn batch with stray valid-looking frames behind it, a zeroed
 * preallocated tail, a torn segment creation, and missing/renamed segments.
 * fsync is off and the directory is on tmpfs when possible: these cases are
 * about what recovery accepts, not about the disk (wal_kill_test is). */
#define _GNU_SOURCE
#include "services/store/wal/wal.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log/log.h"
#include "services/store/wal/testutil.h"
#include "services/store/wal/wal_format.h"

#define SEG 4096

static char *g_dir;
static const wal_options k_opts = {.segment_bytes = SEG, .unsafe_no_fsync = true};

typedef struct image {
  int nfiles;
  char **names;
  uint8_t **data;
  size_t *size;
  /* Per file: records and the end offset of each frame. */
  uint64_t *first_index;
  size_t *nframes;
  size_t **frame_end;
  tu_log want; /* every record written */
} image;

static int collect_end(void *arg, size_t off, const uint8_t *p, size_t len) {
  (void)p;
  size_t **ends = arg;
  *(*ends)++ = off + WAL_FRAME_HEADER_SIZE + len;
  return 0;
}

/* Writes nrec records into a fresh log and captures its files. */
static void build(image *im, int nrec, uint64_t seed) {
  tu_rm_rf(g_dir);
  memset(im, 0, sizeof(*im));
  keel_error err = {0};
  wal *w = wal_open(g_dir, &k_opts, NULL, NULL, &err);
  assert_non_null(w);
  uint8_t buf[256];
  for (int i = 0; i < nrec; i++) {
    size_t len = 1 + (size_t)((seed * 31 + (uint64_t)i * 53) % 150);
    tu_payload(seed + (uint64_t)i, buf, len);
    uint64_t idx;
    assert_int_equal(wal_append_sync(w, buf, len, &idx), 0);
    tu_log_add(&im->want, idx, buf, len);
  }
  assert_int_equal(wal_close(w), 0);
  im->names = tu_list(g_dir, ".wal", &im->nfiles);
  im->data = calloc((size_t)im->nfiles, sizeof(*im->data));
  im->size = calloc((size_t)im->nfiles, sizeof(*im->size));
  im->first_index = calloc((size_t)im->nfiles, sizeof(*im->first_index));
  im->nframes = calloc((size_t)im->nfiles, sizeof(*im->nframes));
  im->frame_end = calloc((size_t)im->nfiles, sizeof(*im->frame_end));
  for (int i = 0; i < im->nfiles; i++) {
    im->data[i] = tu_read_file(tu_join(g_dir, im->names[i]), &im->size[i]);
    uint64_t seq;
    assert_true(wal_segment_name_parse(im->names[i], &seq, &im->first_index[i]));
    im->frame_end[i] = calloc(im->size[i] / WAL_FRAME_HEADER_SIZE + 1, sizeof(size_t));
    size_t *cursor = im->frame_end[i];
    wal_scan_result r;
    wal_scan_frames(im->data[i], im->size[i], WAL_SEGMENT_HEADER_SIZE, collect_end, &cursor, &r);
    im->nframes[i] = r.records;
  }
}

static void image_free(image *im) {
  for (int i = 0; i < im->nfiles; i++) {
    free(im->data[i]);
    free(im->frame_end[i]);
  }
  tu_free_names(im->names, im->nfiles);
  free(im->data);
  free(im->size);
  free(im->first_index);
  free(im->nframes);
  free(im->frame_end);
  tu_log_free(&im->want);
}

/* Puts the pristine files back; file `which` gets `data` (len bytes) instead. */
static void restore(const image *im, int which, const uint8_t *data, size_t len) {
  /* Remove whatever the last case added (segments, .broken files), rewrite the
   * image's files; cheaper than recreating the directory. */
  int n;
  char **names = tu_list(g_dir, "", &n);
  for (int i = 0; i < n; i++) {
    bool ours = false;
    for (int j = 0; j < im->nfiles && !ours; j++) ours = strcmp(names[i], im->names[j]) == 0;
    if (!ours) unlink(tu_join(g_dir, names[i]));
  }
  tu_free_names(names, n);
  for (int i = 0; i < im->nfiles; i++) {
    if (i == which)
      tu_write_file(tu_join(g_dir, im->names[i]), data, len);
    else
      tu_write_file(tu_join(g_dir, im->names[i]), im->data[i], im->size[i]);
  }
}

/* Opens; expects exactly the first `expect` records; appends one more; reopens
 * and expects expect+1 with the new one last. */
static void expect_prefix(const image *im, size_t expect, const char *what, size_t off) {
  tu_log got = {0};
  keel_error err = {0};
  wal *w = wal_open(g_dir, &k_opts, tu_collect, &got, &err);
  if (!w) fail_msg("%s at offset %zu: open failed: %s", what, off, err.message);
  if (!tu_log_prefix_equal(&got, &im->want, expect))
    fail_msg("%s at offset %zu: recovered %zu records, expected the first %zu", what, off, got.n,
             expect);
  static const char after[] = "appended after recovery";
  uint64_t idx;
  assert_int_equal(wal_append_sync(w, after, sizeof(after), &idx), 0);
  assert_int_equal(idx, expect + 1);
  assert_int_equal(wal_close(w), 0);
  tu_log_clear(&got);
  w = wal_open(g_dir, &k_opts, tu_collect, &got, &err);
  if (!w) fail_msg("%s at offset %zu: reopen after append failed: %s", what, off, err.message);
  assert_int_equal(got.n, expect + 1);
  for (size_t i = 0; i < expect; i++) {
    assert_int_equal(got.index[i], im->want.index[i]);
    assert_int_equal(got.len[i], im->want.len[i]);
    assert_memory_equal(got.data[i], im->want.data[i], got.len[i]);
  }
  assert_int_equal(got.index[expect], expect + 1);
  assert_int_equal(got.len[expect], sizeof(after));
  assert_memory_equal(got.data[expect], after, sizeof(after));
  assert_int_equal(wal_close(w), 0);
  tu_log_free(&got);
}

/* Opens; expects a hard EBADMSG naming `file`, and no file changed. */
static void expect_hard_error(const image *im, int which, const uint8_t *data, size_t len,
                              const char *what, size_t off) {
  keel_error err = {0};
  wal *w = wal_open(g_dir, &k_opts, NULL, NULL, &err);
  if (w)
    fail_msg("%s at offset %zu of %s: open succeeded, expected a hard error", what, off,
             im->names[which]);
  assert_int_equal(err.code, EBADMSG);
  if (!strstr(err.message, "offset"))
    fail_msg("%s: error does not name an offset: %s", what, err.message);
  for (int i = 0; i < im->nfiles; i++) {
    size_t n;
    uint8_t *now = tu_read_file(tu_join(g_dir, im->names[i]), &n);
    const uint8_t *expect = i == which ? data : im->data[i];
    size_t expect_len = i == which ? len : im->size[i];
    assert_non_null(now);
    assert_int_equal(n, expect_len);
    assert_memory_equal(now, expect, n);
    free(now);
  }
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
}

static size_t records_before(const image *im, int file) {
  size_t n = 0;
  for (int i = 0; i < file; i++) n += im->nframes[i];
  return n;
}

/* Records of `file` wholly inside [0, off). */
static size_t frames_within(const image *im, int file, size_t off) {
  size_t n = 0;
  while (n < im->nframes[file] && im->frame_end[file][n] <= off) n++;
  return n;
}

static void test_truncate_last_segment_at_every_offset(void **state) {
  (void)state;
  image im;
  build(&im, 90, 1);
  assert_true(im.nfiles >= 2);
  int last = im.nfiles - 1;
  size_t base = records_before(&im, last);
  assert_true(im.nframes[last] >= 10);
  assert_int_equal(im.size[last], SEG);
  for (size_t off = 0; off <= im.size[last]; off++) {
    restore(&im, last, im.data[last], off);
    size_t expect = base + (off < WAL_SEGMENT_HEADER_SIZE ? 0 : frames_within(&im, last, off));
    expect_prefix(&im, expect, "truncated last segment", off);
  }
  image_free(&im);
}

static void test_truncate_earlier_segment_is_hard_error(void **state) {
  (void)state;
  image im;
  build(&im, 130, 2);
  assert_true(im.nfiles >= 3);
  for (int f = 0; f < im.nfiles - 1; f++) {
    for (size_t off = 0; off < im.size[f]; off++) {
      restore(&im, f, im.data[f], off);
      expect_hard_error(&im, f, im.data[f], off, "truncated earlier segment", off);
    }
  }
  image_free(&im);
}

static void test_bit_flip_at_every_offset(void **state) {
  (void)state;
  image im;
  build(&im, 60, 3);
  assert_true(im.nfiles >= 2);
  int last = im.nfiles - 1;
  size_t used = im.frame_end[last][im.nframes[last] - 1];
  uint8_t *copy = malloc(SEG * 4);
  size_t cases_prefix = 0, cases_error = 0;
  for (int f = 0; f < im.nfiles; f++) {
    for (size_t off = 0; off < im.size[f]; off++) {
      memcpy(copy, im.data[f], im.size[f]);
      copy[off] ^= (uint8_t)(1u << (off % 8));
      restore(&im, f, copy, im.size[f]);
      if (f != last || off < WAL_SEGMENT_HEADER_SIZE) {
        expect_hard_error(&im, f, copy, im.size[f], "bit flip", off);
        cases_error++;
        continue;
      }
      size_t expect = records_before(&im, last);
      if (off >= used) {
        expect += im.nframes[last]; /* damage in the zeroed tail */
      } else {
        size_t k = 0; /* the frame holding off */
        while (im.frame_end[last][k] <= off) k++;
        expect += k;
      }
      expect_prefix(&im, expect, "bit flip", off);
      cases_prefix++;
    }
  }
  printf("bit flips: %zu recovered a prefix, %zu were hard errors\n", cases_prefix, cases_error);
  free(copy);
  image_free(&im);
}

/* A batch torn by a crash: part of one frame, then zeros, then a complete
 * stray frame (sectors land out of order). Recovery cuts at the torn frame,
 * keeps the cut bytes in a .broken file, and the stray frame never returns. */
static void test_torn_batch_with_stray_frames(void **state) {
  (void)state;
  image im;
  build(&im, 20, 4);
  assert_int_equal(im.nfiles, 1);
  size_t used = im.frame_end[0][im.nframes[0] - 1];
  uint8_t *d = malloc(SEG);
  memcpy(d, im.data[0], SEG);
  uint8_t payload[100];
  tu_payload(777, payload, sizeof(payload));
  wal_frame_header(d + used, payload, sizeof(payload));
  memcpy(d + used + 8, payload, 40); /* torn: 40 of 100 bytes */
  size_t stray = used + 8 + 100 + 200;
  wal_frame_header(d + stray, payload, sizeof(payload));
  memcpy(d + stray + 8, payload, sizeof(payload));
  restore(&im, 0, d, SEG);
  expect_prefix(&im, 20, "torn batch", used);
  int n;
  char **b = tu_list(g_dir, ".broken", &n);
  assert_int_equal(n, 1);
  char expect_name[128];
  snprintf(expect_name, sizeof(expect_name), "%s.%016zx.broken", im.names[0], used);
  assert_string_equal(b[0], expect_name);
  size_t blen;
  uint8_t *saved = tu_read_file(tu_join(g_dir, b[0]), &blen);
  assert_int_equal(blen, stray + 8 + 100 - used);
  assert_memory_equal(saved, d + used, blen);
  free(saved);
  tu_free_names(b, n);
  free(d);
  image_free(&im);
}

static void test_preallocated_zero_tail(void **state) {
  (void)state;
  image im;
  build(&im, 10, 5);
  size_t used = im.frame_end[0][im.nframes[0] - 1];
  restore(&im, -1, NULL, 0);
  tu_log got = {0};
  keel_error err = {0};
  wal *w = wal_open(g_dir, &k_opts, tu_collect, &got, &err);
  assert_non_null(w);
  assert_true(tu_log_prefix_equal(&got, &im.want, 10));
  wal_stats st;
  wal_get_stats(w, &st);
  assert_int_equal(st.tail_truncated_bytes, 0);
  static const char next[] = "next";
  assert_int_equal(wal_append_sync(w, next, sizeof(next), NULL), 0);
  assert_int_equal(wal_close(w), 0);
  assert_int_equal(tu_count_suffix(g_dir, ".broken"), 0);
  size_t len;
  uint8_t *d = tu_read_file(tu_join(g_dir, im.names[0]), &len);
  assert_int_equal(len, SEG);                            /* still preallocated, not grown */
  assert_int_equal(wal_get_u32(d + used), sizeof(next)); /* appended right after */
  wal_scan_result r;
  wal_scan_frames(d, len, WAL_SEGMENT_HEADER_SIZE, NULL, NULL, &r);
  assert_int_equal(r.records, 11);
  assert_true(r.tail_zero);
  free(d);
  tu_log_free(&got);
  image_free(&im);
}

static void test_mid_log_corruption_names_file_and_offset(void **state) {
  (void)state;
  image im;
  build(&im, 130, 6);
  assert_true(im.nfiles >= 3);
  uint8_t *d = malloc(im.size[1]);
  memcpy(d, im.data[1], im.size[1]);
  size_t frame = im.frame_end[1][4]; /* the 6th record of segment 2 */
  d[frame + 8 + 1] ^= 0x40;          /* its payload */
  restore(&im, 1, d, im.size[1]);
  keel_error err = {0};
  assert_null(wal_open(g_dir, &k_opts, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  char where[64];
  snprintf(where, sizeof(where), "offset %zu", frame);
  assert_non_null(strstr(err.message, im.names[1]));
  assert_non_null(strstr(err.message, where));
  assert_non_null(strstr(err.message, "checksum mismatch"));
  printf("mid-log corruption: %s\n", err.message);
  free(d);
  image_free(&im);
}

static void test_missing_and_renamed_segments(void **state) {
  (void)state;
  image im;
  build(&im, 130, 7);
  assert_true(im.nfiles >= 3);
  keel_error err = {0};
  /* A middle segment lost. */
  restore(&im, -1, NULL, 0);
  unlink(tu_join(g_dir, im.names[1]));
  assert_null(wal_open(g_dir, &k_opts, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  assert_non_null(strstr(err.message, "missing"));
  /* A segment whose name disagrees with its header. */
  restore(&im, -1, NULL, 0);
  char renamed[64];
  wal_segment_name(renamed, 2, im.first_index[1] + 1);
  rename(tu_join(g_dir, im.names[1]), tu_join(g_dir, renamed));
  assert_null(wal_open(g_dir, &k_opts, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  /* Not a segment at all (bad magic) in the middle. */
  uint8_t junk[SEG];
  memset(junk, 'j', sizeof(junk));
  restore(&im, 1, junk, sizeof(junk));
  assert_null(wal_open(g_dir, &k_opts, NULL, NULL, &err));
  assert_int_equal(err.code, EBADMSG);
  assert_non_null(strstr(err.message, "magic"));
  image_free(&im);
}

/* A crash while a new segment was being created, before any record reached
 * it (a zeroed header): recreated, appends go there. */
static void test_torn_segment_creation(void **state) {
  (void)state;
  image im;
  build(&im, 90, 8);
  assert_true(im.nfiles >= 2);
  int last = im.nfiles - 1;
  size_t expect = records_before(&im, last) + im.nframes[last];
  uint8_t zeros[SEG] = {0};
  char name[64];
  wal_segment_name(name, (uint64_t)im.nfiles + 1, expect + 1);
  restore(&im, -1, NULL, 0);
  tu_write_file(tu_join(g_dir, name), zeros, sizeof(zeros));
  tu_log got = {0};
  keel_error err = {0};
  wal *w = wal_open(g_dir, &k_opts, tu_collect, &got, &err);
  if (!w) fail_msg("open: %s", err.message);
  assert_true(tu_log_prefix_equal(&got, &im.want, expect));
  uint64_t idx;
  assert_int_equal(wal_append_sync(w, "x", 1, &idx), 0);
  assert_int_equal(idx, expect + 1);
  assert_int_equal(wal_close(w), 0);
  size_t len;
  uint8_t *d = tu_read_file(tu_join(g_dir, name), &len);
  uint64_t seq, first;
  assert_null(wal_segment_header_decode(d, len, &seq, &first));
  assert_int_equal(first, expect + 1);
  free(d);
  tu_log_free(&got);
  image_free(&im);
}

static int setup(void **state) {
  (void)state;
  g_dir = tu_mkdtemp_fast("wal_crash");
  return 0;
}

static int teardown(void **state) {
  (void)state;
  tu_rm_rf(g_dir);
  free(g_dir);
  return 0;
}

int main(void) {
  log_set_level(LOG_ERROR); /* thousands of expected "tail cut" warnings */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_truncate_last_segment_at_every_offset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_truncate_earlier_segment_is_hard_error, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bit_flip_at_every_offset, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_batch_with_stray_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_preallocated_zero_tail, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mid_log_corruption_names_file_and_offset, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_missing_and_renamed_segments, setup, teardown),
      cmocka_unit_test_setup_teardown(test_torn_segment_creation, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
