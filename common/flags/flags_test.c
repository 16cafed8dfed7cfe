/* common/flags/flags_test.c — tests for flags.h: every accepted form, every
 * error message, --help output, the number grammars, and list ownership. */
#define _GNU_SOURCE
#include "common/flags/flags.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/base/cleanup.h"

/* One table shared by most tests; reset() restores the defaults. */
static char *g_listen;
static int64_t g_threads;
static bool g_verbose;
static bool g_cache;
static bool g_no_color;
static int64_t g_timeout;
static int64_t g_max_size;
static flag_string_list g_peers;
static const char *g_peer_defaults[] = {"a:1", "b:2"};

static const flag_def g_defs[] = {
    FLAG_STRING("listen", &g_listen, "address to serve gRPC on"),
    FLAG_INT("threads", &g_threads, "completion-queue threads"),
    FLAG_BOOL("verbose", &g_verbose, "log more"),
    FLAG_BOOL("cache", &g_cache, "keep a cache"),
    FLAG_BOOL("no-color", &g_no_color, "plain output"),
    FLAG_DURATION("timeout", &g_timeout, "per-call deadline"),
    FLAG_BYTES("max-size", &g_max_size, "largest message"),
    FLAG_STRING_LIST("peers", &g_peers, "peer addresses"),
    FLAG_END,
};

static int reset(void **state) {
  (void)state;
  g_listen = "127.0.0.1:7000";
  g_threads = 2;
  g_verbose = false;
  g_cache = true;
  g_no_color = false;
  g_timeout = 5000;
  g_max_size = 1 << 20;
  g_peers = (flag_string_list){g_peer_defaults, 2};
  return 0;
}

static int release(void **state) {
  (void)state;
  flags_free_lists(g_defs);
  return 0;
}

#define ARGC(a) ((int)KEEL_ARRAY_LEN(a))

/* Parses and returns the result; positional words land in *pos / *npos. */
static int parse(char **argv, int argc, char ***pos, int *npos, keel_error *err) {
  keel_error_clear(err);
  return flags_parse("keel-test", "A test binary.", g_defs, argc, argv, pos, npos, err);
}

static void assert_parse_error(char **argv, int argc, int code, const char *message) {
  keel_error err;
  char **pos = (char **)1;
  int npos = -1;
  assert_int_equal(parse(argv, argc, &pos, &npos, &err), -code);
  assert_int_equal(err.code, code);
  assert_string_equal(err.message, message);
  assert_null(pos); /* nothing to free on failure */
  assert_int_equal(npos, 0);
}

static void test_value_forms(void **state) {
  (void)state;
  char *argv[] = {"prog", "--listen=unix:/run/k.sock", "--threads", "8", "--timeout=250ms",
                  "--max-size", "1.5Mi"};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), 0);
  assert_string_equal(g_listen, "unix:/run/k.sock");
  assert_ptr_equal(g_listen, argv[1] + 9); /* points into argv, nothing to free */
  assert_int_equal(g_threads, 8);
  assert_int_equal(g_timeout, 250);
  assert_int_equal(g_max_size, 1572864);
}

static void test_defaults_kept_and_last_wins(void **state) {
  (void)state;
  char *argv[] = {"prog", "--threads=3", "--threads", "-5", "--listen="};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), 0);
  assert_int_equal(g_threads, -5); /* "-5" is a value, not a flag */
  assert_string_equal(g_listen, "");
  assert_int_equal(g_timeout, 5000);
  assert_int_equal(g_peers.count, 2);
  assert_ptr_equal(g_peers.items, g_peer_defaults);
}

static void test_bool_forms(void **state) {
  (void)state;
  keel_error err;
  char *a1[] = {"prog", "--verbose", "--no-cache", "--no-color"};
  assert_int_equal(parse(a1, ARGC(a1), NULL, NULL, &err), 0);
  assert_true(g_verbose);
  assert_false(g_cache);
  assert_true(g_no_color); /* an exact name beats the no- prefix */

  char *a2[] = {"prog", "--verbose=false", "--cache=true", "--no-color=0"};
  assert_int_equal(parse(a2, ARGC(a2), NULL, NULL, &err), 0);
  assert_false(g_verbose);
  assert_true(g_cache);
  assert_false(g_no_color);

  char *a3[] = {"prog", "--verbose=1", "--cache=0"};
  assert_int_equal(parse(a3, ARGC(a3), NULL, NULL, &err), 0);
  assert_true(g_verbose);
  assert_false(g_cache);
}

/* A bool never eats the next word: it stays positional. */
static void test_bool_does_not_take_next_word(void **state) {
  (void)state;
  char *argv[] = {"prog", "--verbose", "false"};
  char **pos = NULL;
  int npos = 0;
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), &pos, &npos, &err), 0);
  assert_true(g_verbose);
  assert_int_equal(npos, 1);
  assert_string_equal(pos[0], "false");
  flags_free_positional(pos);
}

static void test_positional_and_terminator(void **state) {
  (void)state;
  char *argv[] = {"prog", "apply", "--threads=4", "-", "--", "--verbose", "-h", "x"};
  char **pos = NULL;
  int npos = 0;
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), &pos, &npos, &err), 0);
  assert_int_equal(g_threads, 4);
  assert_false(g_verbose); /* after "--" */
  assert_int_equal(npos, 5);
  const char *want[] = {"apply", "-", "--verbose", "-h", "x"};
  for (int i = 0; i < npos; i++) {
    assert_string_equal(pos[i], want[i]);
  }
  assert_null(pos[npos]);
  flags_free_positional(pos);
}

static void test_no_positional_wanted(void **state) {
  (void)state;
  char *argv[] = {"prog", "--threads=4", "stray"};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), -EINVAL);
  assert_string_equal(err.message, "unexpected argument \"stray\"");

  char *none[] = {"prog"};
  char **pos = NULL;
  int npos = -1;
  assert_int_equal(parse(none, ARGC(none), &pos, &npos, &err), 0);
  assert_non_null(pos);
  assert_null(pos[0]);
  assert_int_equal(npos, 0);
  flags_free_positional(pos);
}

static void test_errors_name_the_flag(void **state) {
  (void)state;
  char *a1[] = {"prog", "--threads=abc"};
  assert_parse_error(a1, ARGC(a1), EINVAL, "flag --threads: invalid integer \"abc\"");
  char *a2[] = {"prog", "--foo=1"};
  assert_parse_error(a2, ARGC(a2), EINVAL, "unknown flag --foo");
  char *a3[] = {"prog", "--listen"};
  assert_parse_error(a3, ARGC(a3), EINVAL, "flag --listen: missing value");
  char *a4[] = {"prog", "--listen", "--threads", "2"};
  assert_parse_error(a4, ARGC(a4), EINVAL, "flag --listen: missing value");
  char *a5[] = {"prog", "-threads", "2"};
  assert_parse_error(a5, ARGC(a5), EINVAL, "unknown flag -threads");
  char *a6[] = {"prog", "--threads", "99999999999999999999"};
  assert_parse_error(a6, ARGC(a6), ERANGE,
                     "flag --threads: integer out of range \"99999999999999999999\"");
  char *a7[] = {"prog", "--threads= 1"};
  assert_parse_error(a7, ARGC(a7), EINVAL, "flag --threads: invalid integer \" 1\"");
  char *a8[] = {"prog", "--threads="};
  assert_parse_error(a8, ARGC(a8), EINVAL, "flag --threads: invalid integer \"\"");
  char *a9[] = {"prog", "--timeout=5x"};
  assert_parse_error(a9, ARGC(a9), EINVAL,
                     "flag --timeout: invalid duration \"5x\" (want e.g. 250ms, 5s, 2m, 1h)");
  char *a10[] = {"prog", "--max-size=1Xi"};
  assert_parse_error(a10, ARGC(a10), EINVAL,
                     "flag --max-size: invalid byte size \"1Xi\" (want e.g. 1048576, 512Ki, 10MB)");
  char *a11[] = {"prog", "--verbose=maybe"};
  assert_parse_error(a11, ARGC(a11), EINVAL,
                     "flag --verbose: invalid boolean \"maybe\" (want true or false)");
  char *a12[] = {"prog", "--no-cache=true"};
  assert_parse_error(a12, ARGC(a12), EINVAL, "flag --no-cache: takes no value");
  char *a13[] = {"prog", "--no-threads"};
  assert_parse_error(a13, ARGC(a13), EINVAL, "unknown flag --no-threads");
  char *a14[] = {"prog", "--max-size=9999999Ti"};
  assert_parse_error(a14, ARGC(a14), ERANGE,
                     "flag --max-size: byte size out of range \"9999999Ti\"");
  char *a15[] = {"prog", "--peers=a", "--bogus"};
  assert_parse_error(a15, ARGC(a15), EINVAL, "unknown flag --bogus");
  /* a15 allocated a list before failing; release() frees it (ASan checks). */
}

/* Runs flags_parse with stdout captured; returns what it printed (caller frees). */
static char *parse_capturing_stdout(char **argv, int argc, int *rc) {
  const char *dir = getenv("TEST_TMPDIR");
  char path[4096];
  snprintf(path, sizeof(path), "%s/flags_test.XXXXXX", dir ? dir : "/tmp");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  unlink(path);
  fflush(stdout);
  int saved = dup(STDOUT_FILENO);
  dup2(fd, STDOUT_FILENO);
  char **pos = (char **)1;
  keel_error err;
  *rc = parse(argv, argc, &pos, NULL, &err);
  assert_null(pos);
  fflush(stdout);
  dup2(saved, STDOUT_FILENO);
  close(saved);
  off_t size = lseek(fd, 0, SEEK_END);
  char *out = calloc((size_t)size + 1, 1);
  assert_int_equal(pread(fd, out, (size_t)size, 0), size);
  close(fd);
  return out;
}

static const char kUsage[] =
    "Usage: keel-test [flags]\n"
    "\n"
    "A test binary.\n"
    "\n"
    "Flags:\n"
    "  --listen string     address to serve gRPC on (default \"127.0.0.1:7000\")\n"
    "  --threads int       completion-queue threads (default 2)\n"
    "  --verbose           log more\n"
    "  --cache             keep a cache (default true)\n"
    "  --no-color          plain output\n"
    "  --timeout duration  per-call deadline (default 5s)\n"
    "  --max-size bytes    largest message (default 1Mi)\n"
    "  --peers list        peer addresses (default \"a:1,b:2\")\n"
    "  -h, --help          print this help and exit\n";

static void test_help(void **state) {
  (void)state;
  int rc;
  char *a1[] = {"prog", "--threads=9", "--help", "--bogus"};
  cleanup_free char *out = parse_capturing_stdout(a1, ARGC(a1), &rc);
  assert_int_equal(rc, FLAGS_HELP);
  /* Defaults shown are the targets' values when --help is reached. */
  assert_non_null(strstr(out, "(default 9)"));

  reset(NULL);
  char *a2[] = {"prog", "-h"};
  cleanup_free char *out2 = parse_capturing_stdout(a2, ARGC(a2), &rc);
  assert_int_equal(rc, FLAGS_HELP);
  assert_string_equal(out2, kUsage);
}

static void test_print_usage_units(void **state) {
  (void)state;
  int64_t d1 = 90000, d2 = 1500, d3 = 7200000, d4 = 0, b1 = 10000000, b2 = 1000, b3 = 0;
  char *s = NULL;
  const flag_def defs[] = {
      FLAG_DURATION("d1", &d1, "a"), FLAG_DURATION("d2", &d2, "b"), FLAG_DURATION("d3", &d3, NULL),
      FLAG_DURATION("d4", &d4, "d"), FLAG_BYTES("b1", &b1, "e"),    FLAG_BYTES("b2", &b2, "f"),
      FLAG_BYTES("b3", &b3, "g"),    FLAG_STRING("s", &s, "h"),     FLAG_END,
  };
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_non_null(f);
  flags_print_usage(f, "x", NULL, defs);
  fclose(f);
  assert_string_equal(buf,
                      "Usage: x [flags]\n"
                      "\n"
                      "Flags:\n"
                      "  --d1 duration  a (default 90s)\n"
                      "  --d2 duration  b (default 1500ms)\n"
                      "  --d3 duration   (default 2h)\n"
                      "  --d4 duration  d (default 0s)\n"
                      "  --b1 bytes     e (default 10MB)\n"
                      "  --b2 bytes     f (default 1000)\n"
                      "  --b3 bytes     g (default 0)\n"
                      "  --s string     h\n"
                      "  -h, --help     print this help and exit\n");
  free(buf);
}

static void test_durations(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t ms;
  } ok[] = {
      {"250ms", 250}, {"5s", 5000},       {"2m", 120000},    {"1h", 3600000}, {"1500", 1500},
      {"0", 0},       {"1.5s", 1500},     {"1h30m", 5400000}, {"1m0.25s", 60250},
      {"0.5ms", 0},   {"2.000000001h", 7200000},
      {"9223372036854775807", INT64_MAX},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(ok); i++) {
    int64_t v = -1;
    assert_int_equal(flags_parse_duration_ms(ok[i].text, &v), 0);
    assert_int_equal(v, ok[i].ms);
  }
  static const char *const bad[] = {"", "s", "-5s", "+5s", "5 s", "5S", "1d", "1h30", "1.s",
                                    ".5s", "5ss", "1.0000000001s", " 5s", "5s "};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
    int64_t v = 42;
    assert_int_equal(flags_parse_duration_ms(bad[i], &v), -EINVAL);
    assert_int_equal(v, 42); /* untouched on failure */
  }
  int64_t v;
  assert_int_equal(flags_parse_duration_ms(NULL, &v), -EINVAL);
  assert_int_equal(flags_parse_duration_ms("9223372036854775808", &v), -ERANGE);
  assert_int_equal(flags_parse_duration_ms("2562047788016h", &v), -ERANGE);
  assert_int_equal(flags_parse_duration_ms("2562047788015h2562047788015h", &v), -ERANGE);
}

static void test_bytes(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int64_t bytes;
  } ok[] = {
      {"1048576", 1048576},   {"512Ki", 524288},      {"1.5Mi", 1572864}, {"2Gi", 2147483648LL},
      {"1Ti", 1LL << 40},     {"10MB", 10000000},     {"1K", 1000},       {"1k", 1000},
      {"1KB", 1000},          {"3M", 3000000},        {"2G", 2000000000}, {"1.5GB", 1500000000},
      {"1T", 1000000000000LL}, {"0", 0},              {"7B", 7},          {"0.5", 0},
      {"0.001Ki", 1},         {"1.999999999Ti", 2199023254452LL},
      {"8388607.5Ti", INT64_MAX - (1LL << 39) + 1}, {"9223372036854775807", INT64_MAX},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(ok); i++) {
    int64_t v = -1;
    assert_int_equal(flags_parse_bytes(ok[i].text, &v), 0);
    assert_int_equal(v, ok[i].bytes);
  }
  static const char *const bad[] = {"", "Mi", "-1", "1 Mi", "1mi", "1MiB", "1Mb", "1.Mi", "1e6",
                                    "1,5Mi", "1.0000000001Mi"};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
    int64_t v = 42;
    assert_int_equal(flags_parse_bytes(bad[i], &v), -EINVAL);
    assert_int_equal(v, 42);
  }
  int64_t v;
  assert_int_equal(flags_parse_bytes(NULL, &v), -EINVAL);
  assert_int_equal(flags_parse_bytes("8388608Ti", &v), -ERANGE);
  assert_int_equal(flags_parse_bytes("9223372036854775808", &v), -ERANGE);
}

static void test_lists(void **state) {
  (void)state;
  char *argv[] = {"prog", "--peers=x:1,y:2", "--peers", "z:3", "--peers=,,w:4,"};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), 0);
  /* The first use replaced the defaults; later uses appended; empty items skipped. */
  assert_int_equal(g_peers.count, 4);
  const char *want[] = {"x:1", "y:2", "z:3", "w:4"};
  for (int i = 0; i < 4; i++) assert_string_equal(g_peers.items[i], want[i]);
  assert_true(g_peers.owned);
  flags_free_lists(g_defs);
  assert_int_equal(g_peers.count, 0);
  assert_null(g_peers.items);
  flags_free_lists(g_defs); /* idempotent */
}

static void test_list_empty_value_clears_default(void **state) {
  (void)state;
  char *argv[] = {"prog", "--peers="};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), 0);
  assert_int_equal(g_peers.count, 0);
}

/* Freeing an unused list must leave a static default alone (ASan would flag it). */
static void test_free_lists_spares_static_default(void **state) {
  (void)state;
  char *argv[] = {"prog"};
  keel_error err;
  assert_int_equal(parse(argv, ARGC(argv), NULL, NULL, &err), 0);
  flags_free_lists(g_defs);
  assert_ptr_equal(g_peers.items, g_peer_defaults);
  assert_int_equal(g_peers.count, 2);
}

/* A second parse replaces (and frees) what the first allocated. */
static void test_parse_twice_does_not_leak(void **state) {
  (void)state;
  char *a1[] = {"prog", "--peers=a,b,c"};
  char *a2[] = {"prog", "--peers=d"};
  keel_error err;
  assert_int_equal(parse(a1, ARGC(a1), NULL, NULL, &err), 0);
  assert_int_equal(parse(a2, ARGC(a2), NULL, NULL, &err), 0);
  assert_int_equal(g_peers.count, 1);
  assert_string_equal(g_peers.items[0], "d");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_value_forms, reset, release),
      cmocka_unit_test_setup_teardown(test_defaults_kept_and_last_wins, reset, release),
      cmocka_unit_test_setup_teardown(test_bool_forms, reset, release),
      cmocka_unit_test_setup_teardown(test_bool_does_not_take_next_word, reset, release),
      cmocka_unit_test_setup_teardown(test_positional_and_terminator, reset, release),
      cmocka_unit_test_setup_teardown(test_no_positional_wanted, reset, release),
      cmocka_unit_test_setup_teardown(test_errors_name_the_flag, reset, release),
      cmocka_unit_test_setup_teardown(test_help, reset, release),
      cmocka_unit_test(test_print_usage_units),
      cmocka_unit_test(test_durations),
      cmocka_unit_test(test_bytes),
      cmocka_unit_test_setup_teardown(test_lists, reset, release),
      cmocka_unit_test_setup_teardown(test_list_empty_value_clears_default, reset, release),
      cmocka_unit_test_setup_teardown(test_free_lists_spares_static_default, reset, release),
      cmocka_unit_test_setup_teardown(test_parse_twice_does_not_leak, reset, release),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
