/* common/apimachinery/labels_test.c — tests for labels.h: the selector grammar
 * (good and bad strings as Kubernetes' own tables have them), error messages
 * with positions, canonical printing, matching, and LabelSelector building. */
#include "common/apimachinery/labels.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"

/* Parses s, expecting success, and returns its canonical string. */
static char *canon(const char *s) {
  labels_selector *sel = NULL;
  keel_error err;
  keel_error_clear(&err);
  int rc = labels_selector_parse(s, &sel, &err);
  if (rc != 0) fail_msg("\"%s\": unexpected error: %s", s, err.message);
  char *out = labels_selector_string(sel);
  assert_non_null(out);
  labels_selector_free(sel);
  return out;
}

static void expect_canon(const char *in, const char *want) {
  cleanup_free char *got = canon(in);
  if (strcmp(got, want) != 0) fail_msg("\"%s\": got \"%s\", want \"%s\"", in, got, want);
  cleanup_free char *again = canon(got);
  if (strcmp(again, got) != 0) fail_msg("\"%s\": reprinted as \"%s\"", got, again);
}

/* Expects s to fail; the message must contain want. */
static void expect_error(const char *s, const char *want) {
  labels_selector *sel = (labels_selector *)1;
  keel_error err;
  keel_error_clear(&err);
  int rc = labels_selector_parse(s, &sel, &err);
  if (rc != -EINVAL) fail_msg("\"%s\": rc %d, want -EINVAL", s, rc);
  assert_null(sel);
  assert_int_equal(err.code, EINVAL);
  if (!strstr(err.message, want))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err.message, want);
}

static void test_good_strings(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } table[] = {
      {"", ""},
      {"   ", ""},
      {"x=a,y=b,z=c", "x=a,y=b,z=c"},
      {"z=c,y=b,x=a", "x=a,y=b,z=c"},
      {"x!=a,y=b", "x!=a,y=b"},
      {"x=", "x="},
      {"x= ", "x="},
      {"x=,z= ", "x=,z="},
      {"x= ,z= ", "x=,z="},
      {"x==a", "x==a"},
      {"!x", "!x"},
      {"x", "x"},
      {"x>1", "x>1"},
      {"x<1", "x<1"},
      {"x>1,z<5", "x>1,z<5"},
      {"x>-1", NULL}, /* see below: a label value may not start with '-' */
      {"x in (foo,bar)", "x in (bar,foo)"},
      {"x in (foo, bar, foo)", "x in (bar,foo)"},
      {"x notin (foo,bar)", "x notin (bar,foo)"},
      {"x in(a)", "x in (a)"},
      {"x in ()", "x in ()"},
      {"x in (,a)", "x in (,a)"},
      {"x in (a,)", "x in (,a)"},
      {"x in (a,,b)", "x in (,a,b)"},
      {"x notin ()", "x notin ()"},
      {"  env in ( prod , qa ) ,\ttier notin (fe)\n, partition , !canary ",
       "!canary,env in (prod,qa),partition,tier notin (fe)"},
      {"in", "in"},
      {"notin", "notin"},
      {"in in (in, notin)", "in in (in,notin)"},
      {"x=in", "x=in"},
      {"example.com/app=web,app.kubernetes.io/name=x",
       "app.kubernetes.io/name=x,example.com/app=web"},
      {"a=1,a!=2", "a=1,a!=2"},
      {"a!=2,a=1", "a=1,a!=2"},
      {"Upper_Case.ok=Value_1", "Upper_Case.ok=Value_1"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++)
    if (table[i].want) expect_canon(table[i].in, table[i].want);

  char key63[64], key64[65];
  memset(key63, 'k', 63), key63[63] = '\0';
  memset(key64, 'k', 64), key64[64] = '\0';
  char buf[256];
  snprintf(buf, sizeof(buf), "%s=%s", key63, key63);
  expect_canon(buf, buf);
  snprintf(buf, sizeof(buf), "%s", key64);
  expect_error(buf, "name part must be no more than 63 characters");
  snprintf(buf, sizeof(buf), "a=%s", key64);
  expect_error(buf, "must be no more than 63 characters");
  snprintf(buf, sizeof(buf), "a in (b,%s)", key64);
  expect_error(buf, "at position 8");
}

static void test_bad_strings(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } table[] = {
      {"x=a||y=b", "invalid label value \"a||y\" for key \"x\""},
      {"x==a==b", "position 4: found \"==\", expected: ',' or 'end of string'"},
      {"!x=a", "position 2: found \"=\", expected: ',' or 'end of string'"},
      {"x<a", "for 'Gt', 'Lt' operators, the value must be an integer"},
      {"x>1.1", "the value must be an integer"},
      {"x>", "the value must be an integer"},
      {"x>99999999999999999999", "the value must be an integer"},
      {"x>-1", "invalid label value \"-1\""},
      {"env in (prod qa)",
       "unable to parse requirement at position 13: found \"qa\", expected: ',' or ')'"},
      {"a,",
       "invalid label selector at position 2: found end of string, expected: identifier after ','"},
      {",a",
       "invalid label selector at position 0: found \",\", expected: !, identifier, or 'end of "
       "string'"},
      {"a,,b", "position 2: found \",\", expected: identifier after ','"},
      {"a b", "position 2: found \"b\", expected: in, notin, =, ==, !=, >, <"},
      {"x in", "found end of string, expected: '('"},
      {"x in a", "found \"a\", expected: '('"},
      {"x in (a", "found end of string, expected: ',' or ')'"},
      {"x in (a b)", "found \"b\", expected: ',' or ')'"},
      {"x in (=)", "found \"=\", expected: ',', ')' or identifier"},
      {"x in (a,=)", "found \"=\", expected: ',', or identifier"},
      {"x in (,", "found end of string, expected: ',', or identifier"},
      {"x notin", "found end of string, expected: '('"},
      {"a=(", "found \"(\", expected: identifier"},
      {"a=b c", "found \"c\", expected: ',' or 'end of string'"},
      {"a=b)", "found \")\", expected: ',' or 'end of string'"},
      {"!", "found end of string, expected: identifier"},
      {"!!a", "found \"!\", expected: identifier"},
      {"(", "found \"(\", expected: !, identifier"},
      {"Ab_c-=1",
       "unable to parse requirement at position 0: invalid label key \"Ab_c-\": name part must "
       "consist of"},
      {"a=b_", "invalid label value \"b_\" for key \"a\": a valid label must be"},
      {"a/b/c", "a qualified name must consist of"},
      {"Example.com/a", "prefix part a lowercase RFC 1123 subdomain"},
      {"a=\x01", "invalid label value \"\\x01\""},
      {"a in (\xff)", "invalid label value \"\\xff\""},
      {"x <= 1", "found \"=\", expected: identifier"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) expect_error(table[i].in, table[i].want);
}

typedef struct labelset {
  const char *keys[8];
  const char *values[8];
  size_t n;
} labelset;

static bool matches(const char *selector, labelset ls) {
  labels_selector *sel = NULL;
  keel_error err;
  if (labels_selector_parse(selector, &sel, &err) != 0) fail_msg("%s: %s", selector, err.message);
  bool m = labels_selector_matches(sel, ls.keys, ls.values, ls.n);
  labels_selector_free(sel);
  return m;
}

#define LS(...) ((labelset){__VA_ARGS__})

static void test_matches(void **state) {
  (void)state;
  labelset none = LS(.n = 0);
  labelset xy = LS({"x"}, {"y"}, 1);
  labelset xz = LS({"x"}, {"z"}, 1);
  labelset xy_zw = LS({"x", "z"}, {"y", "w"}, 2);
  labelset x_empty = LS({"x"}, {""}, 1);

  assert_true(matches("", none));
  assert_true(matches("", xy));
  assert_true(matches("x=y", xy));
  assert_true(matches("x==y", xy));
  assert_false(matches("x=y", xz));
  assert_false(matches("x=y", none));
  assert_true(matches("x=y,z=w", xy_zw));
  assert_false(matches("x=y,z=w", xy));
  assert_true(matches("x!=z", xy));
  assert_true(matches("x!=z", none)); /* != holds when the label is absent */
  assert_false(matches("x!=y", xy));
  assert_true(matches("x in (y,z)", xy));
  assert_true(matches("x in (y,z)", xz));
  assert_false(matches("x in (a,b)", xy));
  assert_false(matches("x in (y)", none));
  assert_true(matches("x notin (a)", xy));
  assert_true(matches("x notin (a)", none));
  assert_false(matches("x notin (y,z)", xz));
  assert_true(matches("x", xy));
  assert_true(matches("x", x_empty));
  assert_false(matches("x", none));
  assert_true(matches("!x", none));
  assert_false(matches("!x", x_empty));
  assert_true(matches("!a", xy));
  assert_true(matches("x=", x_empty));
  assert_false(matches("x=", xy));
  assert_false(matches("x=", none));
  assert_true(matches("x in (,a)", x_empty));
  assert_true(matches("x in ()", x_empty));
  assert_false(matches("x notin ()", x_empty));
  assert_true(matches("x notin ()", none));

  labelset two = LS({"n"}, {"2"}, 1);
  labelset neg = LS({"n"}, {"-3"}, 1);
  labelset word = LS({"n"}, {"two"}, 1);
  labelset big = LS({"n"}, {"9223372036854775807"}, 1);
  labelset huge = LS({"n"}, {"9223372036854775808"}, 1);
  assert_true(matches("n>1", two));
  assert_false(matches("n>2", two));
  assert_true(matches("n<3", two));
  assert_false(matches("n<2", two));
  assert_true(matches("n<0", neg)); /* the label set's value is only parsed, not validated */
  assert_false(matches("n>1", word));
  assert_false(matches("n<1", word));
  assert_false(matches("n>1", none));
  assert_false(matches("n<1", none));
  assert_true(matches("n>9223372036854775806", big));
  assert_false(matches("n>1", huge));
  assert_false(matches("n<1", huge));

  /* Several requirements on one key all apply. */
  labelset five = LS({"n"}, {"5"}, 1);
  assert_true(matches("n>1,n<9,n!=4", five));
  assert_false(matches("n>1,n<9,n!=5", five));
  /* NULL entries: a NULL key is skipped, a NULL value reads as "". */
  labelset nulls = LS({NULL, "x"}, {"y", NULL}, 2);
  assert_true(matches("x=", nulls));
  /* A NULL selector matches everything. */
  assert_true(labels_selector_matches(NULL, NULL, NULL, 0));
  assert_true(labels_selector_empty(NULL));
}

static const char *getter(void *ctx, const char *key) {
  const labelset *ls = ctx;
  for (size_t i = 0; i < ls->n; i++)
    if (strcmp(ls->keys[i], key) == 0) return ls->values[i];
  return NULL;
}

static void test_matches_fn_and_exact(void **state) {
  (void)state;
  labels_selector *sel = NULL;
  keel_error err;
  assert_int_equal(labels_selector_parse("app=web,tier in (fe),!canary,env in (a,b)", &sel, &err),
                   0);
  labelset ls = LS({"app", "tier", "env"}, {"web", "fe", "b"}, 3);
  assert_true(labels_selector_matches_fn(sel, getter, &ls));
  ls.values[2] = "c";
  assert_false(labels_selector_matches_fn(sel, getter, &ls));
  assert_false(labels_selector_empty(sel));
  assert_int_equal(sel->n_reqs, 4);
  assert_string_equal(sel->reqs[0].key, "app");
  assert_int_equal(sel->reqs[0].op, LABELS_OP_EQUALS);
  assert_string_equal(labels_selector_requires_exact_match(sel, "app"), "web");
  assert_string_equal(labels_selector_requires_exact_match(sel, "tier"), "fe");
  assert_null(labels_selector_requires_exact_match(sel, "env"));
  assert_null(labels_selector_requires_exact_match(sel, "canary"));
  assert_null(labels_selector_requires_exact_match(sel, "nope"));
  labels_selector_free(sel);

  assert_int_equal(labels_selector_parse("a!=b", &sel, &err), 0);
  assert_null(labels_selector_requires_exact_match(sel, "a"));
  labels_selector_free(sel);
  assert_int_equal(labels_selector_parse("", &sel, &err), 0);
  assert_true(labels_selector_empty(sel));
  assert_null(labels_selector_requires_exact_match(sel, "a"));
  labels_selector_free(sel);
  labels_selector_free(NULL);
}

static void test_from_label_selector(void **state) {
  (void)state;
  labels_selector *sel = NULL;
  keel_error err;
  keel_error_clear(&err);
  const char *mk[] = {"tier", "app"};
  const char *mv[] = {"fe", "web"};
  const char *envs[] = {"qa", "prod", "qa"};
  labels_expression exprs[] = {
      {"env", "In", envs, 3},
      {"canary", "DoesNotExist", NULL, 0},
      {"track", "NotIn", envs, 1},
      {"partition", "Exists", NULL, 0},
  };
  assert_int_equal(labels_selector_from_label_selector(mk, mv, 2, exprs, 4, &sel, &err), 0);
  cleanup_free char *s = labels_selector_string(sel);
  assert_string_equal(s, "app=web,!canary,env in (prod,qa),partition,tier=fe,track notin (qa)");
  labelset ls = LS({"app", "tier", "env", "partition"}, {"web", "fe", "prod", ""}, 4);
  assert_true(labels_selector_matches(sel, ls.keys, ls.values, ls.n));
  ls.values[2] = "dev";
  assert_false(labels_selector_matches(sel, ls.keys, ls.values, ls.n));
  labels_selector_free(sel);

  /* Nothing at all selects everything. */
  assert_int_equal(labels_selector_from_label_selector(NULL, NULL, 0, NULL, 0, &sel, &err), 0);
  assert_true(labels_selector_empty(sel));
  labels_selector_free(sel);

  const struct {
    labels_expression e;
    const char *want;
  } bad[] = {
      {{"env", "in", NULL, 0},
       "matchExpressions[0]: \"in\" is not a valid label selector operator"},
      {{"env", "", NULL, 0}, "\"\" is not a valid label selector operator"},
      {{"env", NULL, NULL, 0}, "\"\" is not a valid label selector operator"},
      {{"env", "In", NULL, 0},
       "matchExpressions[0]: for 'in', 'notin' operators, values set can't be empty"},
      {{"env", "NotIn", NULL, 0}, "values set can't be empty"},
      {{"env", "Exists", envs, 1}, "values set must be empty for exists and does not exist"},
      {{"env", "DoesNotExist", envs, 2}, "values set must be empty"},
      {{"bad key", "Exists", NULL, 0}, "invalid label key \"bad key\""},
      {{"", "Exists", NULL, 0}, "invalid label key \"\": name part must be non-empty"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(bad); i++) {
    sel = (labels_selector *)1;
    assert_int_equal(labels_selector_from_label_selector(NULL, NULL, 0, &bad[i].e, 1, &sel, &err),
                     -EINVAL);
    assert_null(sel);
    if (!strstr(err.message, bad[i].want))
      fail_msg("%zu: \"%s\" lacks \"%s\"", i, err.message, bad[i].want);
  }
  const char *bad_values[] = {"-x"};
  labels_expression bv = {"env", "In", bad_values, 1};
  assert_int_equal(labels_selector_from_label_selector(NULL, NULL, 0, &bv, 1, &sel, &err), -EINVAL);
  assert_non_null(strstr(err.message, "invalid label value \"-x\" for key \"env\""));

  const char *bk[] = {"app", "Bad/"};
  const char *bvv[] = {"web", "x"};
  assert_int_equal(labels_selector_from_label_selector(bk, bvv, 2, NULL, 0, &sel, &err), -EINVAL);
  assert_non_null(strstr(err.message, "matchLabels: invalid label key \"Bad/\""));
  const char *gk[] = {"app"};
  const char *gv[] = {"we b"};
  assert_int_equal(labels_selector_from_label_selector(gk, gv, 1, NULL, 0, &sel, &err), -EINVAL);
  assert_non_null(strstr(err.message, "matchLabels: invalid label value \"we b\" for key \"app\""));
  /* An empty matchLabels value is a valid label value. */
  const char *ev[] = {""};
  assert_int_equal(labels_selector_from_label_selector(gk, ev, 1, NULL, 0, &sel, &err), 0);
  cleanup_free char *es = labels_selector_string(sel);
  assert_string_equal(es, "app=");
  labels_selector_free(sel);
}

static void test_long_inputs(void **state) {
  (void)state;
  /* 20k requirements: linear time, no recursion, all kept. */
  size_t n = 20000;
  cleanup_free char *s = malloc(n * 8 + 1);
  assert_non_null(s);
  size_t len = 0;
  for (size_t i = 0; i < n; i++)
    len += (size_t)sprintf(s + len, "%sk%zu=v", i ? "," : "", i % 1000);
  labels_selector *sel = NULL;
  keel_error err;
  assert_int_equal(labels_selector_parse(s, &sel, &err), 0);
  assert_int_equal(sel->n_reqs, n);
  labels_selector_free(sel);

  /* Many parentheses are just tokens. */
  memset(s, '(', 10000);
  s[10000] = '\0';
  expect_error(s, "position 0");
  memcpy(s, "x in ", 5);
  expect_error(s, "position 6");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_good_strings),
      cmocka_unit_test(test_bad_strings),
      cmocka_unit_test(test_matches),
      cmocka_unit_test(test_matches_fn_and_exact),
      cmocka_unit_test(test_from_label_selector),
      cmocka_unit_test(test_long_inputs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
