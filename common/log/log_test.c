/* common/log/log_test.c — tests for log.h: exact line shapes, escaping in both
 * formats, level filtering, the log_int ring, and whole lines under threads. */
#define _GNU_SOURCE
#include "common/log/log.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* Lines go to an unlinked temp file, read back with pread. */
static int g_fd = -1;

static int setup(void **state) {
  (void)state;
  const char *dir = getenv("TEST_TMPDIR");
  char path[4096];
  snprintf(path, sizeof(path), "%s/log_test.XXXXXX", dir ? dir : "/tmp");
  g_fd = mkstemp(path);
  if (g_fd < 0) return -1;
  unlink(path);
  log_set_fd(g_fd);
  log_set_level(LOG_INFO);
  log_set_format(LOG_FORMAT_TEXT);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  log_set_fd(STDERR_FILENO);
  close(g_fd);
  g_fd = -1;
  return 0;
}

/* Everything written so far, NUL-terminated; caller frees. */
static char *captured(void) {
  off_t size = lseek(g_fd, 0, SEEK_END);
  assert_true(size >= 0);
  char *buf = malloc((size_t)size + 1);
  assert_non_null(buf);
  assert_int_equal(pread(g_fd, buf, (size_t)size, 0), size);
  buf[size] = '\0';
  return buf;
}

/* Checks the "2026-11-22T15:40:01.123Z " prefix and that it is close to now. */
static void assert_timestamp(const char *line) {
  assert_true(strlen(line) >= 25);
  for (int i = 0; i < 24; i++) {
    char c = line[i];
    switch (i) {
      case 4: case 7: assert_int_equal(c, '-'); break;
      case 10: assert_int_equal(c, 'T'); break;
      case 13: case 16: assert_int_equal(c, ':'); break;
      case 19: assert_int_equal(c, '.'); break;
      case 23: assert_int_equal(c, 'Z'); break;
      default: assert_true(c >= '0' && c <= '9');
    }
  }
  assert_int_equal(line[24], ' ');
  struct tm tm = {0};
  assert_non_null(strptime(line, "%Y-%m-%dT%H:%M:%S", &tm));
  time_t t = timegm(&tm);
  time_t now = time(NULL);
  assert_true(t <= now && now - t < 60);
}

/* Asserts the capture is exactly one line: a timestamp, then `rest`. */
static void assert_one_text_line(const char *rest) {
  char *out = captured();
  assert_timestamp(out);
  assert_string_equal(out + 25, rest);
  free(out);
}

static void test_text_line_shape(void **state) {
  (void)state;
  LOG_INFO("rpc server listening", "addr", "127.0.0.1:7000", "threads", log_int(2));
  assert_one_text_line("INFO  rpc server listening addr=127.0.0.1:7000 threads=2\n");
}

static void test_text_level_names(void **state) {
  (void)state;
  log_set_level(LOG_DEBUG);
  LOG_DEBUG("d");
  LOG_WARN("w");
  LOG_ERROR("e");
  char *out = captured();
  char *save = NULL;
  const char *want[] = {"DEBUG d", "WARN  w", "ERROR e"};
  int i = 0;
  for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), i++) {
    assert_true(i < 3);
    assert_timestamp(line);
    assert_string_equal(line + 25, want[i]);
  }
  assert_int_equal(i, 3);
  free(out);
}

static void test_text_quoting(void **state) {
  (void)state;
  LOG_INFO("m", "plain", "abc", "space", "a b", "quote", "say \"hi\"", "eq", "k=v", "empty", "",
           "nul", (const char *)NULL, "nl", "x\ny", "bs", "c:\\dir", "bsq", "a \\ b", "ctl", "\x01");
  assert_one_text_line(
      "INFO  m plain=abc space=\"a b\" quote=\"say \\\"hi\\\"\" eq=\"k=v\" empty=\"\" nul=(null) "
      "nl=\"x\\ny\" bs=c:\\dir bsq=\"a \\\\ b\" ctl=\"\\x01\"\n");
}

/* A message or key with a newline must not become two lines. */
static void test_text_message_stays_one_line(void **state) {
  (void)state;
  LOG_WARN("first\nERROR forged", "k\r", "v");
  assert_one_text_line("WARN  first\\nERROR forged k\\r=v\n");
}

/* The macros' double NULL makes a dangling key safe instead of UB. */
static void test_dangling_key(void **state) {
  (void)state;
  LOG_INFO("m", "lonely");
  assert_one_text_line("INFO  m lonely=(null)\n");
}

static void test_json_line_shape(void **state) {
  (void)state;
  log_set_format(LOG_FORMAT_JSON);
  LOG_INFO("rpc server listening", "addr", "127.0.0.1:7000", "threads", log_int(2));
  char *out = captured();
  assert_memory_equal(out, "{\"ts\":\"", 7);
  assert_int_equal(out[7 + 24], '"');
  out[7 + 24] = ' '; /* so assert_timestamp sees its terminator */
  assert_timestamp(out + 7);
  assert_string_equal(out + 7 + 24,
                      " ,\"level\":\"info\",\"msg\":\"rpc server listening\","
                      "\"addr\":\"127.0.0.1:7000\",\"threads\":\"2\"}\n");
  free(out);
}

static void assert_json_tail(const char *tail) {
  char *out = captured();
  const char *p = strstr(out, "\"msg\":");
  assert_non_null(p);
  assert_string_equal(p, tail);
  free(out);
}

static void test_json_escaping(void **state) {
  (void)state;
  log_set_format(LOG_FORMAT_JSON);
  LOG_ERROR("q\"b\\", "ctl", "\n\r\t\b\f\x01\x1f", "utf8", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80",
            "nul", (const char *)NULL, "k\"ey", "");
  assert_json_tail(
      "\"msg\":\"q\\\"b\\\\\",\"ctl\":\"\\n\\r\\t\\b\\f\\u0001\\u001f\","
      "\"utf8\":\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\",\"nul\":\"(null)\",\"k\\\"ey\":\"\"}\n");
}

/* Invalid UTF-8 becomes U+FFFD per bad byte so the line stays valid JSON. */
static void test_json_invalid_utf8(void **state) {
  (void)state;
  log_set_format(LOG_FORMAT_JSON);
  LOG_INFO("m", "lone", "a\xff" "b", "overlong", "\xc0\xaf", "surrogate", "\xed\xa0\x80", "cut",
           "x\xe2\x9c", "big", "\xf4\x90\x80\x80");
  assert_json_tail(
      "\"msg\":\"m\",\"lone\":\"a\\ufffdb\",\"overlong\":\"\\ufffd\\ufffd\","
      "\"surrogate\":\"\\ufffd\\ufffd\\ufffd\",\"cut\":\"x\\ufffd\\ufffd\","
      "\"big\":\"\\ufffd\\ufffd\\ufffd\\ufffd\"}\n");
}

static int g_evaluated;
static const char *count_eval(void) {
  g_evaluated++;
  return "x";
}

static void test_level_filtering(void **state) {
  (void)state;
  log_set_level(LOG_WARN);
  assert_int_equal(log_get_level(), LOG_WARN);
  LOG_INFO("dropped");
  g_evaluated = 0;
  LOG_DEBUG("dropped", "k", count_eval());
  assert_int_equal(g_evaluated, 0); /* below the level, arguments are not even built */
  char *out = captured();
  assert_string_equal(out, "");
  free(out);
  LOG_WARN("kept");
  assert_one_text_line("WARN  kept\n");
}

static void test_parse_names(void **state) {
  (void)state;
  assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
  assert_int_equal(log_level_parse("info"), LOG_INFO);
  assert_int_equal(log_level_parse("warn"), LOG_WARN);
  assert_int_equal(log_level_parse("error"), LOG_ERROR);
  assert_int_equal(log_level_parse("INFO"), -1);
  assert_int_equal(log_level_parse("warning"), -1);
  assert_int_equal(log_level_parse(""), -1);
  assert_int_equal(log_level_parse(NULL), -1);
  assert_int_equal(log_format_parse("text"), LOG_FORMAT_TEXT);
  assert_int_equal(log_format_parse("json"), LOG_FORMAT_JSON);
  assert_int_equal(log_format_parse("yaml"), -1);
  assert_int_equal(log_format_parse(NULL), -1);
}

static void test_log_int_ring(void **state) {
  (void)state;
  const char *p[16];
  for (int i = 0; i < 16; i++) p[i] = log_int(i * 1000 - 5);
  char want[32];
  for (int i = 0; i < 16; i++) {
    snprintf(want, sizeof(want), "%d", i * 1000 - 5);
    assert_string_equal(p[i], want); /* all 16 still valid */
  }
  assert_string_equal(log_int(LLONG_MIN), "-9223372036854775808");
  assert_string_equal(log_int(LLONG_MAX), "9223372036854775807");
  assert_string_equal(log_int(0), "0");
}

/* Longer than the stack buffer: exercises the heap path, still one intact line. */
static void test_long_line(void **state) {
  (void)state;
  size_t n = 20000;
  char *big = malloc(n + 1);
  assert_non_null(big);
  memset(big, 'a', n);
  big[n] = '\0';
  LOG_INFO("long", "v", big, "after", "1");
  char *out = captured();
  assert_timestamp(out);
  assert_int_equal(strlen(out), 25 + strlen("INFO  long v=") + n + strlen(" after=1\n"));
  assert_memory_equal(out + 25 + 13, big, n);
  assert_string_equal(out + 25 + 13 + n, " after=1\n");
  free(out);
  free(big);
}

static void test_errno_preserved(void **state) {
  (void)state;
  errno = ENOENT;
  LOG_ERROR("open failed", "path", "/nope");
  assert_int_equal(errno, ENOENT);
}

#define THREADS 8
#define LINES 400

static void *writer(void *arg) {
  long id = (long)(intptr_t)arg;
  char pad[300];
  memset(pad, 'a' + (int)id, sizeof(pad) - 1);
  pad[sizeof(pad) - 1] = '\0';
  for (int i = 0; i < LINES; i++) LOG_INFO("w", "t", log_int(id), "i", log_int(i), "pad", pad);
  return NULL;
}

/* Every line from every thread comes out whole: one write per line. */
static void test_concurrent_lines_are_whole(void **state) {
  (void)state;
  pthread_t th[THREADS];
  for (long t = 0; t < THREADS; t++)
    assert_int_equal(pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t), 0);
  for (int t = 0; t < THREADS; t++) pthread_join(th[t], NULL);

  char *out = captured();
  int next_i[THREADS] = {0};
  int lines = 0;
  char *save = NULL;
  for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    int t = -1, i = -1, used = 0;
    assert_timestamp(line);
    assert_int_equal(sscanf(line + 25, "INFO  w t=%d i=%d pad=%n", &t, &i, &used), 2);
    assert_true(used > 0 && t >= 0 && t < THREADS);
    assert_int_equal(i, next_i[t]); /* one thread's lines keep their order */
    next_i[t]++;
    const char *pad = line + 25 + used;
    assert_int_equal(strlen(pad), 299);
    for (int k = 0; k < 299; k++) assert_int_equal(pad[k], 'a' + t);
    lines++;
  }
  assert_int_equal(lines, THREADS * LINES);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_text_line_shape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_level_names, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_quoting, setup, teardown),
      cmocka_unit_test_setup_teardown(test_text_message_stays_one_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_dangling_key, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_line_shape, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_escaping, setup, teardown),
      cmocka_unit_test_setup_teardown(test_json_invalid_utf8, setup, teardown),
      cmocka_unit_test_setup_teardown(test_level_filtering, setup, teardown),
      cmocka_unit_test(test_parse_names),
      cmocka_unit_test(test_log_int_ring),
      cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
      cmocka_unit_test_setup_teardown(test_errno_preserved, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_lines_are_whole, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
