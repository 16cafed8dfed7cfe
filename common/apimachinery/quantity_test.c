/* common/apimachinery/quantity_test.c — tests for quantity.h: Kubernetes'
 * parse table (including its rounding and "written by trolls" cases), the
 * canonical String() forms, invalid strings, Value/MilliValue/ScaledValue
 * rounding, comparison, sums and the constructors. */
#include "common/apimachinery/quantity.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/base/cleanup.h"

static quantity parse_ok(const char *s) {
  quantity q;
  keel_error err;
  keel_error_clear(&err);
  if (quantity_parse(s, QUANTITY_ALLOW_NEGATIVE, &q, &err) != 0)
    fail_msg("\"%s\": %s", s, err.message);
  return q;
}

static void expect_text(const char *in, const char *want) {
  quantity q = parse_ok(in);
  char buf[QUANTITY_STRING_MAX];
  quantity_string(&q, buf, sizeof(buf));
  if (strcmp(buf, want) != 0) fail_msg("\"%s\": got \"%s\", want \"%s\"", in, buf, want);
  /* The printed text parses to the same value and prints the same. */
  quantity again = parse_ok(buf);
  assert_int_equal(quantity_cmp(&q, &again), 0);
  char buf2[QUANTITY_STRING_MAX];
  quantity_string(&again, buf2, sizeof(buf2));
  assert_string_equal(buf, buf2);
}

static void test_parse_table(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } table[] = {
      {"0", "0"},
      {"0n", "0"},
      {"0u", "0"},
      {"0m", "0"},
      {"0Ki", "0"},
      {"0k", "0"},
      {"0Mi", "0"},
      {"0M", "0"},
      {"0Gi", "0"},
      {"0G", "0"},
      {"0Ti", "0"},
      {"0T", "0"},
      {"00000", "0"},
      {"0.000", "0"},
      /* Binary suffixes */
      {"1", "1"},
      {"1Ki", "1Ki"},
      {"8Ki", "8Ki"},
      {"7Mi", "7Mi"},
      {"6Gi", "6Gi"},
      {"5Ti", "5Ti"},
      {"4Pi", "4Pi"},
      {"3Ei", "3Ei"},
      {"10Ti", "10Ti"},
      {"100Ti", "100Ti"},
      {"128Mi", "128Mi"},
      /* Decimal suffixes */
      {"5n", "5n"},
      {"4u", "4u"},
      {"3m", "3m"},
      {"9", "9"},
      {"8k", "8k"},
      {"50k", "50k"},
      {"7M", "7M"},
      {"6G", "6G"},
      {"5T", "5T"},
      {"40T", "40T"},
      {"300T", "300T"},
      {"2P", "2P"},
      {"1E", "1E"},
      {"100M", "100M"},
      /* Decimal exponents keep their format. */
      {"1E-3", "1e-3"},
      {"1e3", "1e3"},
      {"1E6", "1e6"},
      {"1e9", "1e9"},
      {"1E12", "1e12"},
      {"1e15", "1e15"},
      {"1E18", "1e18"},
      {"1e14", "100e12"},
      {"1e13", "10e12"},
      {"1e+3", "1e3"},
      {"1e0", "1"},
      {"100.035k", "100035"},
      /* Things that look like floating point */
      {"0.001", "1m"},
      {"0.0005k", "500m"},
      {"0.005", "5m"},
      {"0.05", "50m"},
      {"0.5", "500m"},
      {"0.00050k", "500m"},
      {"0.00500", "5m"},
      {"0.05000", "50m"},
      {"0.50000", "500m"},
      {"0.5e0", "500e-3"},
      {"0.5e-1", "50e-3"},
      {"0.5e-2", "5e-3"},
      {"10.035M", "10035k"},
      {"1.2e3", "1200"},
      {"1.3E+6", "1300e3"},
      {"1.40e9", "1400e6"},
      {"1.53E12", "1530e9"},
      {"1.6e15", "1600e12"},
      {"1.7E18", "1700e15"},
      {"9.01", "9010m"},
      {"8.1k", "8100"},
      {"7.123456M", "7123456"},
      {"6.987654321G", "6987654321"},
      {"5.444T", "5444G"},
      {"40.1T", "40100G"},
      {"300.2T", "300200G"},
      {"2.5P", "2500T"},
      {"1.01E", "1010P"},
      {"1.5G", "1500M"},
      {"1000m", "1"},
      {"1000M", "1G"},
      {"1024Mi", "1Gi"},
      {"1536Mi", "1536Mi"},
      {"1.5Gi", "1536Mi"},
      {"+1", "1"},
      {"-1", "-1"},
      {"2k", "2k"},
      {"500m", "500m"},
      {"1.5e3", "1500"},
      {"0.001e0", "1e-3"},
      /* Things that round up to the next nano */
      {"3.001n", "4n"},
      {"1.1E-9", "2e-9"},
      {"0.0000000001", "1n"},
      {"0.0000000005", "1n"},
      {"0.00000000050", "1n"},
      {"0.5e-9", "1e-9"},
      {"0.9n", "1n"},
      {"0.00000012345", "124n"},
      {"0.00000012354", "124n"},
      {"1e-99999", "1e-9"},
      {"-0.1n", "-1n"},
      /* Things that saturate at 2^63-1 units */
      {"9Ei", "9223372036854775807"},
      {"8Ei", "9223372036854775807"},
      {"7Ei", "7Ei"},
      {"9223372036854775807Ki", "9223372036854775807"},
      {"9223372036854775807", "9223372036854775807"},
      {"9223372036854775808", "9223372036854775807"},
      {"-9223372036854775808", "-9223372036854775807"},
      {"1e99999", "9223372036854775807"},
      /* Fractional binary values */
      {"100.035Ki", "102435840m"},
      {"0.5Mi", "512Ki"},
      {"0.05Gi", "53687091200m"},
      {"0.025Ti", "27487790694400m"},
      {"0.5Ki", "512"},
      {"1.5Ki", "1536"},
      {"1.1Ki", "1126400m"},
      /* Written by trolls */
      {"0.000000000001Ki", "2n"},
      {".001", "1m"},
      {".0001k", "100m"},
      {"1.", "1"},
      {"1.G", "1G"},
      {"0001", "1"},
      {"-0", "0"},
      {"+0.0Mi", "0"},
      /* Kubernetes' ParseEmit table */
      {".001Ki", "1024m"},
      {".000001Ki", "1024u"},
      {".000000001Ki", "1024n"},
      {"-1024Mi", "-1Gi"},
      {"-.001Ki", "-1024m"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) expect_text(table[i].in, table[i].want);

  /* Leading zeros, a thousand of them, and a long fraction cost nothing. */
  char buf[4096];
  memset(buf, '0', 3000);
  strcpy(buf + 3000, "1.5");
  expect_text(buf, "1500m");
  strcpy(buf, "0.");
  memset(buf + 2, '0', 3000);
  strcpy(buf + 3002, "1");
  expect_text(buf, "1n");
  strcpy(buf, "1.");
  memset(buf + 2, '0', 3000);
  strcpy(buf + 3002, "1Ei");
  /* 2^60 units and a sliver: rounded up to the next nano. */
  expect_text(buf, "1152921504606846976000000001n");
  memset(buf, '9', 3000);
  strcpy(buf + 3000, "Ki");
  expect_text(buf, "9223372036854775807");
}

static void test_invalid(void **state) {
  (void)state;
  static const struct {
    const char *in, *want;
  } table[] = {
      {"", "quantity \"\": must not be empty"},
      {"1.1.M", "must match the regular expression"},
      {"1+1.0M", "must match the regular expression"},
      {"0.1mi", "unable to parse quantity's suffix"},
      {"0.1am", "must match the regular expression"},
      {"aoeu", "must match the regular expression"},
      {".5i", "suffix"},
      {"1i", "suffix"},
      {"-3.01i", "suffix"},
      {"-3.01e-", "suffix"},
      {" 1", "quantity \" 1\": must match the regular expression"},
      {"1 ", "must match"},
      {"12x", "quantity \"12x\": must match"},
      {"1.2.3", "quantity \"1.2.3\": must match"},
      {"Mi", "quantity \"Mi\": unable to parse numeric part of quantity"},
      {"m", "numeric part"},
      {"k", "numeric part"},
      {"e3", "numeric part"},
      {"-", "quantity \"-\": unable to parse numeric part"},
      {"+", "numeric part"},
      {".", "numeric part"},
      {"-.", "numeric part"},
      {"+-1", "numeric part"},
      {"--1", "numeric part"},
      {"1-1", "suffix"},
      {"1e", "suffix"},
      {"1e+", "suffix"},
      {"1E-", "suffix"},
      {"1KiB", "must match"},
      {"1ki", "suffix"},
      {"1K", "suffix"},
      {"1mm", "suffix"},
      {"1Kii", "suffix"},
      {"1e1.5", "must match"},
      {"1e3e3", "must match"},
      {"1Mi3", "suffix"},
      {"0x10", "must match"},
      {"1_000", "must match"},
      {"1,5", "must match"},
      {"\xe2\x88\x9e", "quantity \"\xe2\x88\x9e\": must match"},
      {"1e99999999999999999999", "suffix"},
      {"1\n", "quantity \"1\\n\": must match"},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) {
    quantity q;
    keel_error err;
    keel_error_clear(&err);
    if (quantity_parse(table[i].in, QUANTITY_ALLOW_NEGATIVE, &q, &err) != -EINVAL)
      fail_msg("\"%s\" parsed", table[i].in);
    assert_int_equal(err.code, EINVAL);
    if (!strstr(err.message, table[i].want))
      fail_msg("\"%s\": \"%s\" lacks \"%s\"", table[i].in, err.message, table[i].want);
  }
  quantity q;
  keel_error err;
  assert_int_equal(quantity_parse(NULL, 0, &q, &err), -EINVAL);
}

static void test_negative(void **state) {
  (void)state;
  quantity q;
  keel_error err;
  assert_int_equal(quantity_parse("-1", 0, &q, &err), -EINVAL);
  assert_string_equal(err.message, "quantity \"-1\": must be greater than or equal to 0");
  assert_int_equal(quantity_parse("-0.5m", 0, &q, &err), -EINVAL);
  assert_int_equal(quantity_parse("-0", 0, &q, &err), 0);
  assert_true(quantity_is_zero(&q));
  assert_int_equal(quantity_parse("-0Mi", 0, &q, &err), 0);
  assert_int_equal(quantity_parse("-1", QUANTITY_ALLOW_NEGATIVE, &q, &err), 0);
  assert_int_equal(quantity_sign(&q), -1);
  assert_int_equal(quantity_parse("+1", 0, &q, &err), 0);
  assert_int_equal(quantity_sign(&q), 1);
}

static void test_values(void **state) {
  (void)state;
  static const struct {
    const char *in;
    int64_t value, milli;
    int milli_rc;
  } table[] = {
      {"0", 0, 0, 0},
      {"1", 1, 1000, 0},
      {"1.2", 2, 1200, 0},
      {"-1.2", -2, -1200, 0},
      {"500m", 1, 500, 0},
      {"0.5", 1, 500, 0},
      {"1n", 1, 1, 0},
      {"-1n", -1, -1, 0},
      {"1001n", 1, 1, 0},
      {"1000001n", 1, 2, 0},
      {"100m", 1, 100, 0},
      {"1.5", 2, 1500, 0},
      {"1Ki", 1024, 1024000, 0},
      {"128Mi", 134217728, 134217728000, 0},
      {"1Gi", 1073741824, 1073741824000, 0},
      {"2k", 2000, 2000000, 0},
      {"1e3", 1000, 1000000, 0},
      {"9223372036854775", 9223372036854775, 9223372036854775000, 0},
      {"9223372036854776", 9223372036854776, INT64_MAX, -ERANGE},
      {"9Ei", INT64_MAX, INT64_MAX, -ERANGE},
      {"-9Ei", -INT64_MAX, INT64_MIN, -ERANGE},
      {"-9223372036854775.808", -9223372036854776, INT64_MIN, 0},
      {"-9223372036854775.809", -9223372036854776, INT64_MIN, -ERANGE},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) {
    quantity q = parse_ok(table[i].in);
    int64_t milli = 12345;
    if (quantity_value(&q) != table[i].value)
      fail_msg("%s: value %" PRId64 ", want %" PRId64, table[i].in, quantity_value(&q),
               table[i].value);
    int rc = quantity_milli_value(&q, &milli);
    if (rc != table[i].milli_rc || milli != table[i].milli)
      fail_msg("%s: milli %" PRId64 " rc %d, want %" PRId64 " rc %d", table[i].in, milli, rc,
               table[i].milli, table[i].milli_rc);
  }

  /* Kubernetes' RoundUp table, as ScaledValue. */
  static const struct {
    const char *in;
    int scale;
    int64_t want;
  } scaled[] = {
      {"9.01", -3, 9010}, {"9.01", -2, 901},     {"9.01", -1, 91},     {"9.01", 0, 10},
      {"9.01", 1, 1},     {"9.01", 2, 1},        {"-9.01", -3, -9010}, {"-9.01", -2, -901},
      {"-9.01", -1, -91}, {"-9.01", 0, -10},     {"-9.01", 1, -1},     {"-9.01", 2, -1},
      {"1n", -9, 1},      {"1", -9, 1000000000}, {"1E", 18, 1},        {"1500k", 6, 2},
      {"1", 18, 1},       {"0", 5, 0},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(scaled); i++) {
    quantity q = parse_ok(scaled[i].in);
    int64_t v;
    assert_int_equal(quantity_scaled_value(&q, scaled[i].scale, &v), 0);
    if (v != scaled[i].want)
      fail_msg("%s at 10^%d: %" PRId64 ", want %" PRId64, scaled[i].in, scaled[i].scale, v,
               scaled[i].want);
  }
  quantity q = parse_ok("1");
  int64_t v;
  assert_int_equal(quantity_scaled_value(&q, 19, &v), -EINVAL);
  assert_int_equal(quantity_scaled_value(&q, -10, &v), -EINVAL);
  q = parse_ok("9Ei");
  assert_int_equal(quantity_scaled_value(&q, -9, &v), -ERANGE);
  assert_int_equal(v, INT64_MAX);
}

static void test_cmp(void **state) {
  (void)state;
  static const struct {
    const char *a, *b;
    int want;
  } table[] = {
      {"0", "0", 0},          {"100m", "50m", 1},       {"50m", "100m", -1},
      {"10000T", "100Gi", 1}, {"1Gi", "1073741824", 0}, {"1k", "1000", 0},
      {"1e3", "1k", 0},       {"-1", "0", -1},          {"0Mi", "0", 0},
      {"1n", "0", 1},         {"9Ei", "8Ei", 0},        {"1Ki", "1k", 1},
  };
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) {
    quantity a = parse_ok(table[i].a), b = parse_ok(table[i].b);
    assert_int_equal(quantity_cmp(&a, &b), table[i].want);
    assert_int_equal(quantity_cmp(&b, &a), -table[i].want);
  }
}

static void test_constructors_and_add(void **state) {
  (void)state;
  static const struct {
    int64_t v;
    quantity_format f;
    const char *units, *milli;
  } table[] = {
      {1, QUANTITY_DECIMAL_SI, "1", "1m"},
      {1000, QUANTITY_DECIMAL_SI, "1k", "1"},
      {1234000, QUANTITY_DECIMAL_SI, "1234k", "1234"},
      {1024, QUANTITY_BINARY_SI, "1Ki", "1024m"},
      {1000000, QUANTITY_DECIMAL_EXPONENT, "1e6", "1e3"},
      {1024 * 1024, QUANTITY_BINARY_SI, "1Mi", "1048576m"},
      {0, QUANTITY_BINARY_SI, "0", "0"},
      {-1536, QUANTITY_BINARY_SI, "-1536", "-1536m"},
  };
  char buf[QUANTITY_STRING_MAX];
  for (size_t i = 0; i < KEEL_ARRAY_LEN(table); i++) {
    quantity q = quantity_from_int64(table[i].v, table[i].f);
    quantity_string(&q, buf, sizeof(buf));
    assert_string_equal(buf, table[i].units);
    assert_int_equal(quantity_value(&q), table[i].v);
    q = quantity_from_milli(table[i].v, table[i].f);
    quantity_string(&q, buf, sizeof(buf));
    assert_string_equal(buf, table[i].milli);
    int64_t m;
    assert_int_equal(quantity_milli_value(&q, &m), 0);
    assert_int_equal(m, table[i].v);
  }
  quantity min = quantity_from_int64(INT64_MIN, QUANTITY_DECIMAL_SI);
  assert_int_equal(quantity_value(&min), -INT64_MAX);
  quantity mmin = quantity_from_milli(INT64_MIN, QUANTITY_DECIMAL_SI);
  int64_t m;
  assert_int_equal(quantity_milli_value(&mmin, &m), 0);
  assert_int_equal(m, INT64_MIN);

  quantity a = parse_ok("1"), b = parse_ok("500m");
  assert_int_equal(quantity_add(&a, &b), 0);
  quantity_string(&a, buf, sizeof(buf));
  assert_string_equal(buf, "1500m");
  /* Adding to zero takes the other's format, as Kubernetes does. */
  a = parse_ok("0");
  b = parse_ok("1Ki");
  quantity_add(&a, &b);
  quantity_string(&a, buf, sizeof(buf));
  assert_string_equal(buf, "1Ki");
  a = parse_ok("9Ei");
  b = parse_ok("1");
  assert_int_equal(quantity_add(&a, &b), -ERANGE);
  assert_int_equal(quantity_value(&a), INT64_MAX);
  a = parse_ok("-9Ei");
  b = parse_ok("-9Ei");
  assert_int_equal(quantity_add(&a, &b), -ERANGE);
  assert_int_equal(quantity_value(&a), -INT64_MAX);
}

static void test_string_buffer(void **state) {
  (void)state;
  quantity q = parse_ok("-123456789012345678901234m");
  char small[4];
  size_t n = quantity_string(&q, small, sizeof(small));
  char full[QUANTITY_STRING_MAX];
  assert_int_equal(quantity_string(&q, full, sizeof(full)), n);
  assert_int_equal(strlen(full), n);
  assert_true(strncmp(small, full, 3) == 0 && small[3] == '\0');
  assert_int_equal(quantity_string(&q, NULL, 0), n);
  /* The longest strings fit QUANTITY_STRING_MAX. */
  static const char *const longest[] = {"-9223372036854775.807001", "-9223372036854775807",
                                        "-0.000000001e-0", "-1.000000001Ei"};
  for (size_t i = 0; i < KEEL_ARRAY_LEN(longest); i++) {
    q = parse_ok(longest[i]);
    assert_true(quantity_string(&q, full, sizeof(full)) < QUANTITY_STRING_MAX);
  }
}

/* Deterministic random milli values survive print -> parse exactly. */
static void test_random_round_trip(void **state) {
  (void)state;
  uint64_t x = 0x9e3779b97f4a7c15u;
  static const quantity_format formats[] = {QUANTITY_DECIMAL_SI, QUANTITY_BINARY_SI,
                                            QUANTITY_DECIMAL_EXPONENT};
  for (int i = 0; i < 20000; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    int64_t v = (int64_t)(x >> (x % 60));
    if (x & 1) v = -v;
    quantity q =
        i % 2 ? quantity_from_milli(v, formats[i % 3]) : quantity_from_int64(v, formats[i % 3]);
    char buf[QUANTITY_STRING_MAX];
    quantity_string(&q, buf, sizeof(buf));
    quantity back = parse_ok(buf);
    if (quantity_cmp(&q, &back) != 0)
      fail_msg("%" PRId64 ": \"%s\" parsed back differently", v, buf);
    if (i % 2) {
      int64_t m;
      assert_int_equal(quantity_milli_value(&back, &m), 0);
      assert_int_equal(m, v);
    }
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_table),   cmocka_unit_test(test_invalid),
      cmocka_unit_test(test_negative),      cmocka_unit_test(test_values),
      cmocka_unit_test(test_cmp),           cmocka_unit_test(test_constructors_and_add),
      cmocka_unit_test(test_string_buffer), cmocka_unit_test(test_random_round_trip),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
