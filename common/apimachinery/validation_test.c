/* common/apimachinery/validation_test.c — tests for validation.h: each rule over
 * the valid and invalid values Kubernetes' own tables use (edge lengths
 * included), the exact message shapes, and the error collection. */
#include "common/apimachinery/validation.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"

/* A malloc'ed string of n copies of c. */
static char *rep(char c, size_t n) {
  char *s = malloc(n + 1);
  assert_non_null(s);
  memset(s, c, n);
  s[n] = '\0';
  return s;
}

static char *cat3(const char *a, const char *b, const char *c) {
  size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
  char *s = malloc(n);
  assert_non_null(s);
  snprintf(s, n, "%s%s%s", a, b, c);
  return s;
}

static void expect_rule(validation_rule rule, const char *const *good, size_t n_good,
                        const char *const *bad, size_t n_bad) {
  const char *msgs[VALIDATION_MSGS_MAX];
  for (size_t i = 0; i < n_good; i++) {
    size_t n = validation_messages(rule, good[i], msgs);
    if (n) fail_msg("rule %d: %s: unexpected error: %s", rule, good[i], msgs[0]);
  }
  for (size_t i = 0; i < n_bad; i++) {
    if (validation_messages(rule, bad[i], msgs) == 0)
      fail_msg("rule %d: \"%s\" accepted", rule, bad[i]);
  }
}

#define EXPECT_RULE(rule, good, bad) \
  expect_rule(rule, good, KEEL_ARRAY_LEN(good), bad, KEEL_ARRAY_LEN(bad))

static void test_dns1123_label(void **state) {
  (void)state;
  static const char *const good[] = {"a", "ab", "abc", "a1", "a-1", "a--1--2--b",
                                     "0", "01", "012", "1a", "1-a", "1--a--b--2"};
  static const char *const bad[] = {
      "",   "A",   "ABC", "aBc", "A1", "A-1", "1-A", "-",  "a-",  "-a",       "1-",  "-1",
      "_",  "a_",  "_a",  "a_b", "1_", "_1",  "1_2", ".",  "a.",  ".a",       "a.b", "1.",
      ".1", "1.2", " ",   "a ",  " a", "a b", "1 ",  " 1", "1 2", "a\xc3\xa9"};
  EXPECT_RULE(VALIDATION_DNS1123_LABEL, good, bad);

  cleanup_free char *l63 = rep('a', 63);
  cleanup_free char *l64 = rep('a', 64);
  const char *msgs[VALIDATION_MSGS_MAX];
  assert_int_equal(validation_messages(VALIDATION_DNS1123_LABEL, l63, msgs), 0);
  assert_int_equal(validation_messages(VALIDATION_DNS1123_LABEL, l64, msgs), 1);
  assert_string_equal(msgs[0], "must be no more than 63 characters");
  /* A valid subdomain that is not a label is told about its dots. */
  assert_int_equal(validation_messages(VALIDATION_DNS1123_LABEL, "a.b", msgs), 1);
  assert_string_equal(msgs[0], "must not contain dots");
  assert_int_equal(validation_messages(VALIDATION_DNS1123_LABEL, "A_b", msgs), 1);
  assert_non_null(strstr(msgs[0], "a lowercase RFC 1123 label must consist of"));
}

static void test_dns1123_subdomain(void **state) {
  (void)state;
  static const char *const good[] = {
      "a",           "ab",
      "abc",         "a1",
      "a-1",         "a--1--2--b",
      "0",           "01",
      "012",         "1a",
      "1-a",         "1--a--b--2",
      "a.a",         "ab.a",
      "abc.a",       "a1.a",
      "a-1.a",       "a--1--2--b.a",
      "a.1",         "ab.1",
      "abc.1",       "a1.1",
      "a-1.1",       "a--1--2--b.1",
      "0.a",         "01.a",
      "012.a",       "1a.a",
      "1-a.a",       "1--a--b--2",
      "0.1",         "01.1",
      "012.1",       "1a.1",
      "1-a.1",       "1--a--b--2.1",
      "a.b.c.d.e",   "aa.bb.cc.dd.ee",
      "1.2.3.4.5",   "11.22.33.44.55",
      "example.com",
  };
  static const char *const bad[] = {
      "",
      "A",
      "ABC",
      "aBc",
      "A1",
      "A-1",
      "1-A",
      "-",
      "a-",
      "-a",
      "1-",
      "-1",
      "_",
      "a_",
      "_a",
      "a_b",
      "1_",
      "_1",
      "1_2",
      ".",
      "a.",
      ".a",
      "a..b",
      "1.",
      ".1",
      "1..2",
      " ",
      "a ",
      " a",
      "a b",
      "1 ",
      " 1",
      "1 2",
      "A.a",
      "aB.a",
      "ab.A",
      "A1.a",
      "a1.A",
      "A.1",
      "aB.1",
      "A1.1",
      "1A.1",
      "0.A",
      "01.A",
      "012.A",
      "1A.a",
      "1a.A",
      "A.B.C.D.E",
      "AA.BB.CC.DD.EE",
      "a.B.c.d.e",
      "aa.bB.cc.dd.ee",
      "a@b",
      "a,b",
      "a_b",
      "a;b",
      "a:b",
      "a%b",
      "a?b",
      "a$b",
      "a-.b",
      "a.-b",
  };
  EXPECT_RULE(VALIDATION_DNS1123_SUBDOMAIN, good, bad);

  const char *msgs[VALIDATION_MSGS_MAX];
  cleanup_free char *s253 = rep('a', 253);
  cleanup_free char *s254 = rep('a', 254);
  assert_int_equal(validation_messages(VALIDATION_DNS1123_SUBDOMAIN, s253, msgs), 0);
  assert_int_equal(validation_messages(VALIDATION_DNS1123_SUBDOMAIN, s254, msgs), 1);
  assert_string_equal(msgs[0], "must be no more than 253 characters");
  /* Labels inside a subdomain have no length limit of their own. */
  cleanup_free char *long_part = rep('b', 100);
  cleanup_free char *dotted = cat3(long_part, ".", long_part);
  assert_int_equal(validation_messages(VALIDATION_DNS1123_SUBDOMAIN, dotted, msgs), 0);
  /* Too long and bad characters: both reasons. */
  cleanup_free char *bad254 = rep('A', 254);
  assert_int_equal(validation_messages(VALIDATION_DNS1123_SUBDOMAIN, bad254, msgs), 2);
}

static void test_dns1035_label(void **state) {
  (void)state;
  static const char *const good[] = {"a", "ab", "abc", "a1", "a-1", "a--1--2--b"};
  static const char *const bad[] = {
      "0",  "01", "012", "1a", "1-a", "1--a--b--2", "",   "A",  "ABC", "aBc", "A1", "A-1", "1-A",
      "-",  "a-", "-a",  "1-", "-1",  "_",          "a_", "_a", "a_b", "1_",  "_1", "1_2", ".",
      "a.", ".a", "a.b", "1.", ".1",  "1.2",        " ",  "a ", " a",  "a b", "1 ", " 1",  "1 2"};
  EXPECT_RULE(VALIDATION_DNS1035_LABEL, good, bad);
  const char *msgs[VALIDATION_MSGS_MAX];
  cleanup_free char *l63 = rep('a', 63);
  cleanup_free char *l64 = rep('a', 64);
  assert_int_equal(validation_messages(VALIDATION_DNS1035_LABEL, l63, msgs), 0);
  assert_int_equal(validation_messages(VALIDATION_DNS1035_LABEL, l64, msgs), 1);
  assert_int_equal(validation_messages(VALIDATION_DNS1035_LABEL, "1abc", msgs), 1);
  assert_non_null(strstr(msgs[0], "start with an alphabetic character"));
}

static void test_qualified_name(void **state) {
  (void)state;
  cleanup_free char *n63 = rep('a', 63);
  cleanup_free char *n64 = rep('a', 64);
  cleanup_free char *p253 = rep('p', 253);
  cleanup_free char *p254 = rep('p', 254);
  cleanup_free char *max = cat3(p253, "/", n63);
  cleanup_free char *long_prefix = cat3(p254, "/", "a");
  cleanup_free char *long_name = cat3("example.com", "/", n64);
  const char *good[] = {
      "simple",
      "now-with-dashes",
      "1-starts-with-num",
      "1234",
      "simple/simple",
      "now-with-dashes/simple",
      "now-with-dashes/now-with-dashes",
      "now.with.dots/simple",
      "now-with.dashes-and.dots/simple",
      "1-num.2-num/3-num",
      "1234/5678",
      "1.2.3.4/5678",
      "Uppercase_Is_OK_123",
      "example.com/Uppercase_Is_OK_123",
      "requests.storage-foo",
      "app.kubernetes.io/name",
      "a.b_c-d",
      n63,
      max,
  };
  const char *bad[] = {
      "",
      "nospecialchars%^=@",
      "cantendwithadash-",
      "-cantstartwithadash-",
      "only/one/slash",
      "Example.com/abc",
      "example_com/abc",
      "example.com/",
      "/simple",
      "_underscore",
      "dot.",
      n64,
      long_prefix,
      long_name,
  };
  EXPECT_RULE(VALIDATION_QUALIFIED_NAME, good, bad);

  const char *msgs[VALIDATION_MSGS_MAX];
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, "Example.com/abc", msgs), 1);
  assert_non_null(strstr(msgs[0], "prefix part a lowercase RFC 1123 subdomain"));
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, "/simple", msgs), 1);
  assert_string_equal(msgs[0], "prefix part must be non-empty");
  /* An empty name part is both empty and not matching the name rule. */
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, "example.com/", msgs), 2);
  assert_string_equal(msgs[0], "name part must be non-empty");
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, n64, msgs), 1);
  assert_string_equal(msgs[0], "name part must be no more than 63 characters");
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, long_prefix, msgs), 1);
  assert_string_equal(msgs[0], "prefix part must be no more than 253 characters");
  assert_int_equal(validation_messages(VALIDATION_QUALIFIED_NAME, "a/b/c", msgs), 1);
  assert_non_null(strstr(msgs[0], "a qualified name must consist of"));
  assert_non_null(strstr(msgs[0], "'example.com/MyName'"));
}

static void test_label_value(void **state) {
  (void)state;
  cleanup_free char *v63 = rep('a', 63);
  cleanup_free char *v64 = rep('a', 64);
  const char *good[] = {"simple",
                        "now-with-dashes",
                        "1-starts-with-num",
                        "end-with-num-1",
                        "1234",
                        "Uppercase_Is_OK_123",
                        "a.b",
                        "",
                        v63};
  const char *bad[] = {"nospecialchars%^=@",
                       "Tama-nui-te-r\xc4\x81",
                       "cantendwithadash-",
                       "-cantstartwithadash",
                       "only/one/slash",
                       "Example.com/abc",
                       "example_com/abc",
                       "example.com/",
                       "/simple",
                       " ",
                       "a b",
                       v64};
  EXPECT_RULE(VALIDATION_LABEL_VALUE, good, bad);
  const char *msgs[VALIDATION_MSGS_MAX];
  assert_int_equal(validation_messages(VALIDATION_LABEL_VALUE, v64, msgs), 1);
  assert_string_equal(msgs[0], "must be no more than 63 characters");
  assert_int_equal(validation_messages(VALIDATION_LABEL_VALUE, "-x", msgs), 1);
  assert_non_null(strstr(msgs[0], "a valid label must be an empty string or consist of"));
}

static void test_env_and_c_identifier(void **state) {
  (void)state;
  static const char *const env_good[] = {
      "a",   "abc", "A",   "ABC",  "aBc",         "a1",          "a_1",
      "A_1", "a-1", "a.1", "_a",   "a_",          "a__b",        "-a",
      ".a",  "a.",  "a-",  "a..b", "MY_ENV.NAME", "my.env-name", "MyEnvName1"};
  static const char *const env_bad[] = {"",    "1", "123", "1a",  "a b",      "a$b",
                                        "a=b", ".", "..",  "..a", "a\xc3\xa9"};
  EXPECT_RULE(VALIDATION_ENV_VAR_NAME, env_good, env_bad);
  const char *msgs[VALIDATION_MSGS_MAX];
  assert_int_equal(validation_messages(VALIDATION_ENV_VAR_NAME, "..", msgs), 1);
  assert_string_equal(msgs[0], "must not be '..'");
  assert_int_equal(validation_messages(VALIDATION_ENV_VAR_NAME, "..a", msgs), 1);
  assert_string_equal(msgs[0], "must not start with '..'");
  assert_int_equal(validation_messages(VALIDATION_ENV_VAR_NAME, "1a", msgs), 1);
  assert_non_null(strstr(msgs[0], "must not start with a digit"));

  static const char *const c_good[] = {"a",   "ab", "abc", "a1", "_a", "a_",  "a_b",
                                       "a_1", "_",  "__",  "A",  "AB", "A_1", "__init__"};
  static const char *const c_bad[] = {"",    "1",  "123", "1a",  "-",  "a-",  "-a", "a-b",
                                      "a b", "1 ", " 1",  "1 2", "#a", "a.b", "a$"};
  EXPECT_RULE(VALIDATION_C_IDENTIFIER, c_good, c_bad);
}

static void test_ports(void **state) {
  (void)state;
  static const int64_t good[] = {1, 2, 1000, 16384, 65535};
  static const int64_t bad[] = {0, -1, 65536, 100000, INT64_MIN, INT64_MAX};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(good); i++)
    assert_true(validation_port_number(NULL, "p", good[i]));
  for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++)
    assert_false(validation_port_number(NULL, "p", bad[i]));
  validation_errors errs = VALIDATION_ERRORS_INIT;
  assert_false(validation_port_number(&errs, "spec.ports[0].port", 0));
  assert_int_equal(errs.n, 1);
  assert_string_equal(
      errs.items[0],
      "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive");
  validation_errors_free(&errs);

  static const char *const name_good[] = {
      "telnet",    "re-mail-ck",      "pop3", "a", "a-1", "1-a", "a-1-b-2-c",
      "1-a-2-b-3", "abcdefghijklmno", "http"};
  static const char *const name_bad[] = {"",        "telnet-", "-telnet", "re--mail",
                                         "re_mail", "123",     "UPPER",   "abcdefghijklmnop",
                                         "a b",     "-",       "--"};
  EXPECT_RULE(VALIDATION_PORT_NAME, name_good, name_bad);
  const char *msgs[VALIDATION_MSGS_MAX];
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "123", msgs), 1);
  assert_string_equal(msgs[0], "must contain at least one letter (a-z)");
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "re--mail", msgs), 1);
  assert_string_equal(msgs[0], "must not contain consecutive hyphens");
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "-telnet", msgs), 1);
  assert_string_equal(msgs[0], "must not begin or end with a hyphen");
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "abcdefghijklmnop", msgs), 1);
  assert_string_equal(msgs[0], "must be no more than 15 characters");
  /* "" has no valid characters and no letter. */
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "", msgs), 2);
  /* "-" breaks three rules at once. */
  assert_int_equal(validation_messages(VALIDATION_PORT_NAME, "--", msgs), 3);
}

static void test_path_segment(void **state) {
  (void)state;
  static const char *const good[] = {"a", "a.b", "...", "x..y"};
  static const char *const bad[] = {".", "..", "a/b", "50%", "/"};
  EXPECT_RULE(VALIDATION_PATH_SEGMENT_NAME, good, bad);
}

static void test_messages_name_the_path(void **state) {
  (void)state;
  validation_errors errs = VALIDATION_ERRORS_INIT;
  assert_true(validation_dns1123_subdomain(&errs, "metadata.name", "web-1.example"));
  assert_false(validation_dns1123_subdomain(&errs, "metadata.name", "Foo_bar"));
  assert_int_equal(errs.n, 1);
  assert_string_equal(
      errs.items[0],
      "metadata.name: Invalid value: \"Foo_bar\": a lowercase RFC 1123 subdomain must "
      "consist of lower case alphanumeric characters, '-' or '.', and must start and "
      "end with an alphanumeric character");
  assert_false(validation_dns1035_label(&errs, "metadata.name", "1svc"));
  assert_false(validation_dns1123_label(&errs, "metadata.namespace", "a.b"));
  assert_false(validation_env_var_name(&errs, "spec.containers[0].env[0].name", "1X"));
  assert_false(validation_c_identifier(&errs, "x", "a-b"));
  assert_false(validation_port_name(&errs, "spec.ports[0].name", "HTTP"));
  assert_false(validation_qualified_name(&errs, "k", "a/b/c"));
  assert_false(validation_label_value(&errs, "v", "-"));
  assert_int_equal(errs.n, 9); /* "HTTP": bad characters and no lower-case letter */
  assert_string_equal(errs.items[2],
                      "metadata.namespace: Invalid value: \"a.b\": must not contain dots");
  validation_errors_free(&errs);
  assert_int_equal(errs.n, 0);
  assert_null(errs.items);

  /* Values are quoted like Go's %q; valid UTF-8 is kept, other bytes escaped. */
  validation_errors_add_invalid(&errs, "p", "a\"b\\c\n\x01\xff r\xc4\x81", "why");
  assert_string_equal(errs.items[0],
                      "p: Invalid value: \"a\\\"b\\\\c\\n\\x01\\xff r\xc4\x81\": why");
  cleanup_free char *huge = rep('x', 1000);
  validation_errors_add_invalid(&errs, "p", huge, "why");
  assert_non_null(strstr(errs.items[1], "xxx\"...: why"));
  assert_true(strlen(errs.items[1]) < 300);
  validation_errors_add_required(&errs, "metadata.name", "name or generateName is required");
  assert_string_equal(errs.items[2],
                      "metadata.name: Required value: name or generateName is required");
  validation_errors_add_required(&errs, "spec", NULL);
  assert_string_equal(errs.items[3], "spec: Required value");
  validation_errors_add_invalid_int(&errs, "spec.replicas", -1,
                                    "must be greater than or equal to 0");
  assert_string_equal(errs.items[4],
                      "spec.replicas: Invalid value: -1: must be greater than or equal to 0");
  validation_errors_free(&errs);
}

static void test_labels_and_annotations(void **state) {
  (void)state;
  const char *keys[] = {"app", "example.com/tier", "Bad_", "ok"};
  const char *values[] = {"web", "", "x", "-no"};
  validation_errors errs = VALIDATION_ERRORS_INIT;
  assert_true(validation_labels(&errs, "metadata.labels", keys, values, 2));
  assert_int_equal(errs.n, 0);
  assert_false(validation_labels(&errs, "metadata.labels", keys, values, 4));
  assert_int_equal(errs.n, 2);
  assert_non_null(
      strstr(errs.items[0], "metadata.labels: Invalid value: \"Bad_\": name part must consist of"));
  assert_non_null(
      strstr(errs.items[1], "metadata.labels: Invalid value: \"-no\": a valid label must be"));
  validation_errors_free(&errs);

  /* Annotation keys are checked lower-cased (an upper-case prefix passes),
   * values are free-form. */
  const char *akeys[] = {"Example.COM/Thing", "note"};
  const char *avalues[] = {"anything at all: \x01", ""};
  assert_true(validation_annotations(&errs, "metadata.annotations", akeys, avalues, 2));
  const char *lkeys[] = {"Example.COM/Thing"};
  const char *lvalues[] = {"v"};
  assert_false(validation_labels(NULL, "metadata.labels", lkeys, lvalues, 1));
  const char *badkeys[] = {"a/b/c"};
  assert_false(validation_annotations(&errs, "metadata.annotations", badkeys, avalues, 1));
  assert_int_equal(errs.n, 1);
  validation_errors_free(&errs);

  /* 256 KiB in total is allowed; one byte more is not. */
  size_t total = VALIDATION_ANNOTATIONS_TOTAL_MAX;
  cleanup_free char *big = rep('v', total - 1);
  const char *k1[] = {"k"};
  const char *v1[] = {big};
  assert_true(
      validation_annotations(&errs, "metadata.annotations", k1, (const char *const *)v1, 1));
  const char *k2[] = {"kk"};
  assert_false(
      validation_annotations(&errs, "metadata.annotations", k2, (const char *const *)v1, 1));
  assert_int_equal(errs.n, 1);
  assert_string_equal(errs.items[0],
                      "metadata.annotations: Too long: must have at most 262144 bytes");
  validation_errors_free(&errs);
}

static void test_collection_and_format(void **state) {
  (void)state;
  validation_errors errs = VALIDATION_ERRORS_INIT;
  keel_error err;
  keel_error_clear(&err);
  cleanup_free char *none = validation_errors_format(&errs);
  assert_string_equal(none, "");
  assert_int_equal(validation_errors_to_error(&errs, &err), 0);

  validation_errors_addf(&errs, "a: %d", 1);
  cleanup_free char *one = validation_errors_format(&errs);
  assert_string_equal(one, "a: 1");
  validation_errors_addf(&errs, "b");
  validation_errors_addf(&errs, "c");
  cleanup_free char *three = validation_errors_format(&errs);
  assert_string_equal(three, "3 errors: a: 1; b; c");
  assert_int_equal(validation_errors_to_error(&errs, &err), -EINVAL);
  assert_int_equal(err.code, EINVAL);
  assert_string_equal(err.message, "3 errors: a: 1; b; c");
  validation_errors_free(&errs);

  /* Only VALIDATION_ERRORS_MAX are kept; the rest are counted. */
  for (int i = 0; i < 150; i++) validation_errors_addf(&errs, "e%d", i);
  assert_int_equal(errs.n, VALIDATION_ERRORS_MAX);
  assert_int_equal(validation_errors_count(&errs), 150);
  cleanup_free char *many = validation_errors_format(&errs);
  assert_true(strncmp(many, "150 errors: e0; e1; ", 20) == 0);
  assert_non_null(strstr(many, "e99, and 50 more"));
  /* The keel_error is cut, never overflowed. */
  assert_int_equal(validation_errors_to_error(&errs, &err), -EINVAL);
  assert_int_equal(strlen(err.message), KEEL_ERROR_MESSAGE_MAX - 1);
  validation_errors_free(&errs);

  /* A NULL list is allowed everywhere checks run. */
  validation_errors_addf(NULL, "ignored");
  assert_false(validation_dns1123_label(NULL, "x", "A"));
  assert_int_equal(validation_errors_count(NULL), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dns1123_label),
      cmocka_unit_test(test_dns1123_subdomain),
      cmocka_unit_test(test_dns1035_label),
      cmocka_unit_test(test_qualified_name),
      cmocka_unit_test(test_label_value),
      cmocka_unit_test(test_env_and_c_identifier),
      cmocka_unit_test(test_ports),
      cmocka_unit_test(test_path_segment),
      cmocka_unit_test(test_messages_name_the_path),
      cmocka_unit_test(test_labels_and_annotations),
      cmocka_unit_test(test_collection_and_format),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
