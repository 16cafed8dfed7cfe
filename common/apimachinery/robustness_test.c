/* common/apimachinery/robustness_test.c — every parser on a few thousand
 * random and mutated inputs (deterministic seed): nothing crashes or leaks
 * (run under --config=asan), errors always come with a message, and whatever
 * is accepted is a fixed point of print -> parse -> print that matches the same
 * label and field sets as the original. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/apimachinery/fields.h"
#include "common/apimachinery/labels.h"
#include "common/apimachinery/quantity.h"
#include "common/apimachinery/validation.h"
#include "common/base/cleanup.h"

#define ROUNDS 4000
#define MAX_LEN 48

static uint64_t g_rng;

static uint64_t rnd(void) {
  /* xorshift64*: small, deterministic on every platform. */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return g_rng * 0x2545f4914f6cdd1dULL;
}

static size_t rnd_below(size_t n) {
  return n ? (size_t)(rnd() % n) : 0;
}

/* A random non-NUL byte, mostly from `alphabet`. */
static char rnd_char(const char *alphabet) {
  if (rnd_below(8) == 0) return (char)(1 + rnd_below(255));
  return alphabet[rnd_below(strlen(alphabet))];
}

static void rnd_string(char *out, size_t cap, const char *alphabet) {
  size_t n = rnd_below(cap < MAX_LEN ? cap : MAX_LEN);
  for (size_t i = 0; i < n; i++) out[i] = rnd_char(alphabet);
  out[n] = '\0';
}

/* 1-4 edits of a seed: insert, delete, replace, or duplicate a chunk. */
static void mutate(char *out, size_t cap, const char *seed, const char *alphabet) {
  snprintf(out, cap, "%s", seed);
  int edits = 1 + (int)rnd_below(4);
  for (int e = 0; e < edits; e++) {
    size_t len = strlen(out), at = rnd_below(len + 1);
    switch (rnd_below(4)) {
      case 0:
        if (len + 2 < cap) {
          memmove(out + at + 1, out + at, len - at + 1);
          out[at] = rnd_char(alphabet);
        }
        break;
      case 1:
        if (at < len) memmove(out + at, out + at + 1, len - at);
        break;
      case 2:
        if (at < len) out[at] = rnd_char(alphabet);
        break;
      default: {
        size_t from = rnd_below(len + 1), n = rnd_below(len - from + 1);
        if (len + n + 1 < cap) {
          char chunk[256];
          if (n >= sizeof(chunk)) n = sizeof(chunk) - 1;
          memcpy(chunk, out + from, n);
          memmove(out + at + n, out + at, len - at + 1);
          memcpy(out + at, chunk, n);
        }
      }
    }
  }
}

static void next_input(char *buf, size_t cap, int round, const char *const *seeds, size_t n_seeds,
                       const char *alphabet) {
  if (round % 2)
    rnd_string(buf, cap, alphabet);
  else
    mutate(buf, cap, seeds[rnd_below(n_seeds)], alphabet);
}

/* ---- labels ---------------------------------------------------------------------- */

static const char *const label_seeds[] = {
    "",
    "app=web",
    "env in (prod, qa),tier notin (fe)",
    "!canary,partition",
    "x>1,y<5",
    "example.com/app==v1.2_3",
    "a!=b,c in (,d),e notin ()",
    "in in (in,notin)",
    "k=,k2= ,  k3 ",
};
static const char label_alphabet[] = "abcxyz019=!(),<> \t-_./inot";

static const char *const set_keys[] = {"a", "app", "env", "x", "y", "k", "in", "tier", "c"};
static const char *const set_values[] = {"", "web", "prod", "1", "5", "-3", "b", "d", "fe"};

static void test_labels(void **state) {
  (void)state;
  g_rng = 0x6b65656c2d6c626cULL;
  char buf[256];
  size_t accepted = 0;
  for (int round = 0; round < ROUNDS; round++) {
    next_input(buf, sizeof(buf), round, label_seeds, KEEL_ARRAY_LEN(label_seeds), label_alphabet);
    labels_selector *sel = NULL;
    keel_error err;
    keel_error_clear(&err);
    int rc = labels_selector_parse(buf, &sel, &err);
    if (rc != 0) {
      assert_int_equal(rc, -EINVAL);
      assert_null(sel);
      assert_true(err.message[0] != '\0');
      continue;
    }
    accepted++;
    cleanup_free char *s1 = labels_selector_string(sel);
    labels_selector *again = NULL;
    if (labels_selector_parse(s1, &again, &err) != 0)
      fail_msg("\"%s\" printed as \"%s\", which does not parse: %s", buf, s1, err.message);
    cleanup_free char *s2 = labels_selector_string(again);
    if (strcmp(s1, s2) != 0) fail_msg("\"%s\": \"%s\" reprinted as \"%s\"", buf, s1, s2);
    /* Both match the same random label sets. */
    for (int t = 0; t < 8; t++) {
      const char *keys[4], *values[4];
      size_t n = rnd_below(5);
      for (size_t i = 0; i < n; i++) {
        keys[i] = set_keys[rnd_below(KEEL_ARRAY_LEN(set_keys))];
        values[i] = set_values[rnd_below(KEEL_ARRAY_LEN(set_values))];
      }
      assert_int_equal(labels_selector_matches(sel, keys, values, n),
                       labels_selector_matches(again, keys, values, n));
    }
    for (size_t i = 0; i < KEEL_ARRAY_LEN(set_keys); i++) {
      const char *a = labels_selector_requires_exact_match(sel, set_keys[i]);
      const char *b = labels_selector_requires_exact_match(again, set_keys[i]);
      assert_true((a == NULL) == (b == NULL));
      if (a) assert_string_equal(a, b);
    }
    labels_selector_free(again);
    labels_selector_free(sel);
  }
  /* The seeds and their mutations must exercise both outcomes. */
  assert_true(accepted > ROUNDS / 20);
  assert_true(accepted < ROUNDS);
}

static void test_label_selector_builder(void **state) {
  (void)state;
  g_rng = 0x6c6162656c736c63ULL;
  static const char *const ops[] = {"In", "NotIn", "Exists", "DoesNotExist", "in", ""};
  char words[16][32];
  for (int round = 0; round < ROUNDS / 4; round++) {
    for (size_t i = 0; i < 16; i++) {
      if (rnd_below(3))
        snprintf(words[i], sizeof(words[i]), "%s",
                 set_values[rnd_below(KEEL_ARRAY_LEN(set_values))]);
      else
        rnd_string(words[i], sizeof(words[i]), label_alphabet);
    }
    const char *mk[3], *mv[3], *vals[4];
    size_t n_match = rnd_below(4), n_exprs = rnd_below(3);
    for (size_t i = 0; i < n_match; i++) mk[i] = words[i], mv[i] = words[4 + i];
    for (size_t i = 0; i < 4; i++) vals[i] = words[8 + i];
    labels_expression exprs[2];
    for (size_t i = 0; i < n_exprs; i++)
      exprs[i] = (labels_expression){words[12 + i], ops[rnd_below(KEEL_ARRAY_LEN(ops))], vals,
                                     rnd_below(5)};
    labels_selector *sel = NULL;
    keel_error err;
    int rc = labels_selector_from_label_selector(mk, mv, n_match, exprs, n_exprs, &sel, &err);
    if (rc != 0) {
      assert_int_equal(rc, -EINVAL);
      assert_null(sel);
      continue;
    }
    cleanup_free char *s1 = labels_selector_string(sel);
    labels_selector *again = NULL;
    if (labels_selector_parse(s1, &again, &err) != 0)
      fail_msg("built selector \"%s\" does not parse: %s", s1, err.message);
    cleanup_free char *s2 = labels_selector_string(again);
    assert_string_equal(s1, s2);
    labels_selector_free(again);
    labels_selector_free(sel);
  }
}

/* ---- fields ---------------------------------------------------------------------- */

static const char *const field_seeds[] = {
    "",
    "metadata.name=foo",
    "metadata.name=foo,spec.nodeName!=,status.phase=Running",
    "x=a\\,b\\=c\\\\d",
    "a==b,c!=d",
    ",,a=b,,",
    "a\\=b",
};
static const char field_alphabet[] = "abmn.=!,\\ xyz";

static const char *field_get(void *obj, const char *field) {
  (void)obj;
  if (strcmp(field, "a") == 0) return "b";
  if (strcmp(field, "metadata.name") == 0) return "foo";
  if (strcmp(field, "x") == 0) return "a,b=c\\d";
  if (strcmp(field, "c") == 0) return "";
  if (field[0] == 'z') return NULL;
  return "";
}

static void test_fields(void **state) {
  (void)state;
  g_rng = 0x6b65656c2d666c64ULL;
  char buf[256];
  size_t accepted = 0;
  for (int round = 0; round < ROUNDS; round++) {
    next_input(buf, sizeof(buf), round, field_seeds, KEEL_ARRAY_LEN(field_seeds), field_alphabet);
    fields_selector *sel = NULL;
    keel_error err;
    keel_error_clear(&err);
    int rc = fields_selector_parse(buf, &sel, &err);
    if (rc != 0) {
      assert_int_equal(rc, -EINVAL);
      assert_null(sel);
      assert_true(err.message[0] != '\0');
      continue;
    }
    accepted++;
    cleanup_free char *s1 = fields_selector_string(sel);
    fields_selector *again = NULL;
    if (fields_selector_parse(s1, &again, &err) != 0)
      fail_msg("\"%s\" printed as \"%s\", which does not parse: %s", buf, s1, err.message);
    cleanup_free char *s2 = fields_selector_string(again);
    if (strcmp(s1, s2) != 0) fail_msg("\"%s\": \"%s\" reprinted as \"%s\"", buf, s1, s2);
    assert_int_equal(sel->n_reqs, again->n_reqs);
    for (size_t i = 0; i < sel->n_reqs; i++) {
      assert_string_equal(sel->reqs[i].field, again->reqs[i].field);
      assert_string_equal(sel->reqs[i].value, again->reqs[i].value);
      assert_int_equal(sel->reqs[i].op, again->reqs[i].op);
    }
    keel_error e1, e2;
    assert_int_equal(fields_selector_matches(sel, field_get, NULL, &e1),
                     fields_selector_matches(again, field_get, NULL, &e2));
    static const char *const allowed[] = {"a", "metadata.name", "x"};
    assert_int_equal(fields_selector_validate(sel, allowed, 3, &e1),
                     fields_selector_validate(again, allowed, 3, &e2));
    fields_selector_free(again);
    fields_selector_free(sel);

    /* Escaping any value round-trips through unescape. */
    cleanup_free char *esc = fields_escape_value(buf);
    char *back = NULL;
    assert_int_equal(fields_unescape_value(esc, &back, &err), 0);
    assert_string_equal(back, buf);
    free(back);
  }
  assert_true(accepted > ROUNDS / 20);
  assert_true(accepted < ROUNDS);
}

/* ---- quantities ------------------------------------------------------------------ */

static const char *const quantity_seeds[] = {
    "500m",
    "1",
    "0.5",
    "128Mi",
    "1Gi",
    "2k",
    "1e3",
    "1.5G",
    "+1",
    "100M",
    "-1.5e-3",
    ".001Ki",
    "9Ei",
    "1.",
    "3.001n",
    "1E18",
    "0.000000000001Ki",
    "9223372036854775807",
};
static const char quantity_alphabet[] = "0123456789.+-eEinumkKMGTP";

static void test_quantities(void **state) {
  (void)state;
  g_rng = 0x6b65656c2d717479ULL;
  char buf[256];
  size_t accepted = 0;
  for (int round = 0; round < ROUNDS; round++) {
    next_input(buf, sizeof(buf), round, quantity_seeds, KEEL_ARRAY_LEN(quantity_seeds),
               quantity_alphabet);
    quantity q;
    keel_error err;
    keel_error_clear(&err);
    int rc = quantity_parse(buf, QUANTITY_ALLOW_NEGATIVE, &q, &err);
    if (rc != 0) {
      assert_int_equal(rc, -EINVAL);
      assert_true(err.message[0] != '\0');
      continue;
    }
    accepted++;
    char s1[QUANTITY_STRING_MAX], s2[QUANTITY_STRING_MAX];
    assert_true(quantity_string(&q, s1, sizeof(s1)) < QUANTITY_STRING_MAX);
    quantity again;
    if (quantity_parse(s1, QUANTITY_ALLOW_NEGATIVE, &again, &err) != 0)
      fail_msg("\"%s\" printed as \"%s\", which does not parse: %s", buf, s1, err.message);
    if (quantity_cmp(&q, &again) != 0) fail_msg("\"%s\" -> \"%s\" changed value", buf, s1);
    quantity_string(&again, s2, sizeof(s2));
    if (strcmp(s1, s2) != 0) fail_msg("\"%s\": \"%s\" reprinted as \"%s\"", buf, s1, s2);
    /* Conversions are total and consistent with the sign. */
    int64_t v = quantity_value(&q), m;
    int mrc = quantity_milli_value(&q, &m);
    assert_true(mrc == 0 || mrc == -ERANGE);
    assert_true((v > 0) == (quantity_sign(&q) > 0) && (v < 0) == (quantity_sign(&q) < 0));
    assert_true((m > 0) == (quantity_sign(&q) > 0) && (m < 0) == (quantity_sign(&q) < 0));
    for (int scale = -9; scale <= 18; scale += 3)
      assert_true(quantity_scaled_value(&q, scale, &m) <= 0);
    /* Without QUANTITY_ALLOW_NEGATIVE only the sign decides. */
    quantity nonneg;
    assert_int_equal(quantity_parse(buf, 0, &nonneg, &err) == 0, quantity_sign(&q) >= 0);
  }
  assert_true(accepted > ROUNDS / 20);
  assert_true(accepted < ROUNDS);
}

/* ---- validation ------------------------------------------------------------------ */

static void test_validation(void **state) {
  (void)state;
  g_rng = 0x6b65656c2d76616cULL;
  static const char *const seeds[] = {"web-1", "example.com/app", "a.b.c", "MY_VAR", "http", ".."};
  char buf[512];
  for (int round = 0; round < ROUNDS; round++) {
    next_input(buf, sizeof(buf), round, seeds, KEEL_ARRAY_LEN(seeds), "abzAZ09-._/%");
    const char *msgs[VALIDATION_MSGS_MAX];
    for (int rule = VALIDATION_DNS1123_SUBDOMAIN; rule <= VALIDATION_PATH_SEGMENT_NAME; rule++)
      assert_true(validation_messages((validation_rule)rule, buf, msgs) <= VALIDATION_MSGS_MAX);
    /* Cross-checks between rules. */
    size_t len = strlen(buf);
    bool label = validation_messages(VALIDATION_DNS1123_LABEL, buf, msgs) == 0;
    bool sub = validation_messages(VALIDATION_DNS1123_SUBDOMAIN, buf, msgs) == 0;
    bool l1035 = validation_messages(VALIDATION_DNS1035_LABEL, buf, msgs) == 0;
    bool qname = validation_messages(VALIDATION_QUALIFIED_NAME, buf, msgs) == 0;
    bool value = validation_messages(VALIDATION_LABEL_VALUE, buf, msgs) == 0;
    if (label) assert_true(sub && len <= 63);
    if (l1035) assert_true(label);
    if (sub && len <= 63 && !strchr(buf, '.')) assert_true(label);
    if (label) assert_true(qname && value);
    if (value && len > 0) assert_true(qname);
    validation_errors errs = VALIDATION_ERRORS_INIT;
    validation_check(&errs, "metadata.name", VALIDATION_DNS1123_SUBDOMAIN, buf);
    validation_check(&errs, "metadata.labels", VALIDATION_QUALIFIED_NAME, buf);
    cleanup_free char *report = validation_errors_format(&errs);
    assert_non_null(report);
    validation_errors_free(&errs);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_labels),     cmocka_unit_test(test_label_selector_builder),
      cmocka_unit_test(test_fields),     cmocka_unit_test(test_quantities),
      cmocka_unit_test(test_validation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
