/* common/apimachinery/fields_test.c — tests for fields.h: splitting and
 * escaping as Kubernetes does them, canonical printing, matching through a
 * getter, and the "field label not supported" check. */
#include "common/apimachinery/fields.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"

static fields_selector *parse_ok(const char *s) {
  fields_selector *sel = NULL;
  keel_error err;
  keel_error_clear(&err);
  if (fields_selector_parse(s, &sel, &err) != 0) fail_msg("\"%s\": %s", s, err.message);
  return sel;
}

static void expect_canon(const char *in, const char *want) {
  fields_selector *sel = parse_ok(in);
  cleanup_free char *got = fields_selector_string(sel);
  fields_selector_free(sel);
  if (strcmp(got, want) != 0) fail_msg("\"%s\": got \"%s\", want \"%s\"", in, got, want);
  sel = parse_ok(got);
  cleanup_free char *again = fields_selector_string(sel);
  fields_selector_free(sel);
  if (strcmp(again, got) != 0) fail_msg("\"%s\": reprinted as \"%s\"", got, again);
}

static void expect_error(const char *s, const char *want) {
  fields_selector *sel = (fields_selector *)1;
  keel_error err;
  keel_error_clear(&err);
  assert_int_equal(fields_selector_parse(s, &sel, &err), -EINVAL);
  assert_null(sel);
  if (!strstr(err.message, want))
    fail_msg("\"%s\": message \"%s\" lacks \"%s\"", s, err.message, want);
}

static void test_parse_and_print(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } table[] = {
      {"", ""},
      {",", ""},
      {",,a=b,,", "a=b"},
      {"a=b", "a=b"},
      {"a==b", "a=b"},
      {"a!=b", "a!=b"},
      {"a=", "a="},
      {"a!=", "a!="},
      {"=b", "=b"},
      {"metadata.name=foo,spec.nodeName!=,status.phase=Running",
       "metadata.name=foo,spec.nodeName!=,status.phase=Running"},
      {"z=1,a=2,m!=3", "a=2,m!=3,z=1"},
      {"a!=1,a=1", "a=1,a!=1"},
      /* Escapes in the value. */
      {"x=a\\,b", "x=a\\,b"},
      {"x=a\\=b", "x=a\\=b"},
      {"x=a\\\\b", "x=a\\\\b"},
      {"x=\\,\\=\\\\", "x=\\,\\=\\\\"},
      /* The first operator splits; "!=" and "==" win over "=" at one position. */
      {"a=!b", "a=!b"},
      {"a!=\\=b", "a!=\\=b"},
      {"a===b", NULL},
      /* No trimming: spaces belong to the field and the value. */
      {" a = b ", " a = b "},
      /* A backslash in the field is kept as written. */
      {"a\\,b=c", "a\\,b=c"},
      {"a\\=b", "a\\=b"},
      {"a!!=b", "a!!=b"},
      {"r\xc4\x81=\xc4\x81", "r\xc4\x81=\xc4\x81"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++)
    if (table[i].want) expect_canon(table[i].in, table[i].want);

  fields_selector *sel = parse_ok(" a = b ");
  assert_int_equal(sel->n_reqs, 1);
  assert_string_equal(sel->reqs[0].field, " a ");
  assert_string_equal(sel->reqs[0].value, " b ");
  fields_selector_free(sel);

  sel = parse_ok("x=a\\,b\\=c\\\\d,y==e");
  assert_int_equal(sel->n_reqs, 2);
  assert_string_equal(sel->reqs[0].field, "x");
  assert_string_equal(sel->reqs[0].value, "a,b=c\\d");
  assert_int_equal(sel->reqs[1].op, FIELDS_OP_EQUALS);
  fields_selector_free(sel);

  /* "a\=b": the field is "a\" (no escaping on the left). */
  sel = parse_ok("a\\=b");
  assert_string_equal(sel->reqs[0].field, "a\\");
  assert_string_equal(sel->reqs[0].value, "b");
  fields_selector_free(sel);

  sel = parse_ok("");
  assert_true(fields_selector_empty(sel));
  fields_selector_free(sel);
  assert_true(fields_selector_empty(NULL));
  fields_selector_free(NULL);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("a", "invalid field selector: term \"a\": no operator (=, == or !=)");
  expect_error("a=b,c", "term \"c\": no operator");
  expect_error("a=b=c", "term \"a=b=c\": unescaped '=' in value");
  expect_error("a===b", "unescaped '=' in value");
  expect_error("a!==b", "term \"a!==b\": unescaped '=' in value");
  expect_error("a\\=b=c", "term \"a\\\\=b=c\": unescaped '=' in value");
  expect_error("x=a\\q", "invalid escape sequence: '\\' followed by \"q\"");
  expect_error("x=a\\", "a value may not end with '\\'");
  expect_error("x=a\\\\\\", "a value may not end with '\\'");
  expect_error("x=\\\x01", "'\\' followed by \"\\x01\"");
  expect_error("!", "no operator");
  expect_error("a!b", "no operator");
}

typedef struct pod {
  const char *name, *ns, *node, *phase;
} pod;

static const char *pod_get(void *obj, const char *field) {
  const pod *p = obj;
  if (strcmp(field, "metadata.name") == 0) return p->name;
  if (strcmp(field, "metadata.namespace") == 0) return p->ns;
  if (strcmp(field, "spec.nodeName") == 0) return p->node;
  if (strcmp(field, "status.phase") == 0) return p->phase;
  return NULL;
}

static int match(const char *s, pod *p, keel_error *err) {
  fields_selector *sel = parse_ok(s);
  int rc = fields_selector_matches(sel, pod_get, p, err);
  fields_selector_free(sel);
  return rc;
}

static void test_matches(void **state) {
  (void)state;
  keel_error err;
  pod bound = {"web-1", "default", "n1", "Running"};
  pod pending = {"web-2", "default", "", "Pending"};
  pod comma = {"a,b=c", "default", "", "Pending"};

  assert_int_equal(match("", &bound, &err), 1);
  assert_int_equal(match("spec.nodeName=n1", &bound, &err), 1);
  assert_int_equal(match("spec.nodeName=n1", &pending, &err), 0);
  assert_int_equal(match("spec.nodeName!=", &bound, &err), 1);
  assert_int_equal(match("spec.nodeName!=", &pending, &err), 0);
  assert_int_equal(match("spec.nodeName=", &pending, &err), 1);
  assert_int_equal(match("metadata.name=web-1,status.phase=Running", &bound, &err), 1);
  assert_int_equal(match("metadata.name=web-1,status.phase!=Running", &bound, &err), 0);
  assert_int_equal(match("metadata.name==web-2,metadata.namespace=default", &pending, &err), 1);
  assert_int_equal(match("metadata.name=a\\,b\\=c", &comma, &err), 1);

  keel_error_clear(&err);
  assert_int_equal(match("metadata.name=web-1,spec.foo=x", &bound, &err), -EINVAL);
  assert_string_equal(err.message, "field label not supported: spec.foo");
  assert_int_equal(match("bad\x01=x", &bound, &err), -EINVAL);
  assert_string_equal(err.message, "field label not supported: \"bad\\x01\"");
  assert_int_equal(fields_selector_matches(NULL, pod_get, &bound, &err), 1);
}

static void test_validate_and_exact(void **state) {
  (void)state;
  static const char *const pod_fields[] = {"metadata.name", "metadata.namespace", "spec.nodeName",
                                           "status.phase"};
  keel_error err;
  keel_error_clear(&err);
  fields_selector *sel = parse_ok("spec.nodeName=n1,status.phase!=Failed");
  assert_int_equal(fields_selector_validate(sel, pod_fields, 4, &err), 0);
  assert_string_equal(fields_selector_requires_exact_match(sel, "spec.nodeName"), "n1");
  assert_null(fields_selector_requires_exact_match(sel, "status.phase"));
  assert_null(fields_selector_requires_exact_match(sel, "metadata.name"));
  fields_selector_free(sel);

  sel = parse_ok("metadata.name=x,spec.hostNetwork=true");
  assert_int_equal(fields_selector_validate(sel, pod_fields, 4, &err), -EINVAL);
  assert_string_equal(err.message, "field label not supported: spec.hostNetwork");
  assert_int_equal(fields_selector_validate(sel, NULL, 0, &err), -EINVAL);
  assert_string_equal(err.message, "field label not supported: metadata.name");
  fields_selector_free(sel);
  assert_int_equal(fields_selector_validate(NULL, NULL, 0, &err), 0);

  sel = parse_ok("spec.nodeName==");
  assert_string_equal(fields_selector_requires_exact_match(sel, "spec.nodeName"), "");
  fields_selector_free(sel);
}

static void test_escape_functions(void **state) {
  (void)state;
  static const char *const values[] = {"",     "plain", "a,b",      "a=b",
                                       "a\\b", "\\,=",  ",,==\\\\", "r\xc4\x81"};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(values); i++) {
    cleanup_free char *esc = fields_escape_value(values[i]);
    assert_non_null(esc);
    char *back = NULL;
    keel_error err;
    assert_int_equal(fields_unescape_value(esc, &back, &err), 0);
    assert_string_equal(back, values[i]);
    free(back);
  }
  cleanup_free char *e = fields_escape_value("a,b=c\\d");
  assert_string_equal(e, "a\\,b\\=c\\\\d");
  char *out = (char *)1;
  keel_error err;
  assert_int_equal(fields_unescape_value("a,b", &out, &err), -EINVAL);
  assert_null(out);
  assert_non_null(strstr(err.message, "invalid field selector value: unescaped ',' in value"));
  assert_int_equal(fields_unescape_value("a\\", &out, &err), -EINVAL);
  assert_int_equal(fields_unescape_value("a\\n", &out, &err), -EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_and_print),  cmocka_unit_test(test_errors),
      cmocka_unit_test(test_matches),          cmocka_unit_test(test_validate_and_exact),
      cmocka_unit_test(test_escape_functions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
