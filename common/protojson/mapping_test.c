/* common/protojson/mapping_test.c — the generic mapping on test-only messages
 * (testdata/pjtest.proto, pjtest2.proto): every scalar type, enums, bytes,
 * maps with every key type, oneofs, well-known types, proto2 presence, and
 * the names of messages absent from the descriptor sets. */
#include <math.h>

#include "common/protojson/testdata/pjtest.pb-c.h"
#include "common/protojson/testdata/pjtest2.pb-c.h"
#include "common/protojson/testdata/testutil.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "google/protobuf/wrappers.pb-c.h"

static protojson *g_pj;

static int setup(void **state) {
  (void)state;
  g_pj = tu_create();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  protojson_destroy(g_pj);
  return 0;
}

#define SCALARS (&keel__protojson__test__scalars__descriptor)
#define REPEATS (&keel__protojson__test__repeats__descriptor)
#define MAPS (&keel__protojson__test__maps__descriptor)
#define ONEOFS (&keel__protojson__test__oneofs__descriptor)
#define WKT (&keel__protojson__test__wkt__descriptor)
#define LEGACY (&keel__protojson__test2__legacy__descriptor)

static ProtobufCMessage *parse(const ProtobufCMessageDescriptor *desc, const char *text) {
  keel_error err = {0};
  ProtobufCMessage *m = protojson_from_string(g_pj, desc, text, strlen(text), &err);
  if (!m) fail_msg("%s: %s", text, err.message);
  return m;
}

static void test_scalars(void **state) {
  (void)state;
  Keel__Protojson__Test__Scalars *s = (Keel__Protojson__Test__Scalars *)tu_roundtrip(
      g_pj, SCALARS,
      "{\"i32\":-2147483648,\"i64\":-9223372036854775807,\"u32\":4294967295,"
      "\"u64\":\"18446744073709551615\",\"s32\":-5,\"s64\":-6,\"f32\":7,\"f64\":8,"
      "\"sf32\":-9,\"sf64\":-10,\"fl\":1.5,\"db\":0.1,\"b\":true,\"s\":\"héllo\\n\","
      "\"by\":\"aGVsbG8=\",\"color\":\"GREEN\",\"renamed\":\"r\",\"snakeCaseField\":\"x\"}",
      NULL);
  assert_int_equal(s->i32, INT32_MIN);
  assert_int_equal(s->i64, -INT64_MAX);
  assert_int_equal(s->u32, UINT32_MAX);
  assert_true(s->u64 == UINT64_MAX);
  assert_int_equal(s->s32, -5);
  assert_true(s->fl == 1.5f);
  assert_true(s->db == 0.1);
  assert_string_equal(s->s, "héllo\n");
  assert_int_equal(s->by.len, 5);
  assert_memory_equal(s->by.data, "hello", 5);
  assert_int_equal(s->color, KEEL__PROTOJSON__TEST__COLOR__GREEN);
  assert_string_equal(s->custom_name, "r");
  protobuf_c_message_free_unpacked(&s->base, NULL);

  /* uint64 up to INT64_MAX is a number; above, a decimal string. */
  /* (jansson reads no integer above INT64_MAX: such values come as strings.) */
  tu_roundtrip_free(g_pj, SCALARS,
                    "{\"u64\":\"9223372036854775807\",\"f64\":\"9223372036854775808\"}",
                    "{\"u64\":9223372036854775807,\"f64\":\"9223372036854775808\"}");
  /* All defaults: {}. */
  tu_roundtrip_free(
      g_pj, SCALARS,
      "{\"i32\":0,\"i64\":\"0\",\"fl\":0,\"db\":-0.0,\"b\":false,\"s\":\"\",\"by\":\"\","
      "\"color\":\"COLOR_UNSPECIFIED\"}",
      "{}");
}

/* What the input side takes beyond what the output writes. */
static void test_scalar_inputs(void **state) {
  (void)state;
  /* Integers as decimal strings, integral reals, exponents. */
  tu_roundtrip_free(g_pj, SCALARS,
                    "{\"i32\":\"42\",\"i64\":\"-9007199254740993\",\"u32\":\"7\",\"s64\":1e3,"
                    "\"sf32\":3.0,\"u64\":\"0018446744073709551615\"}",
                    "{\"i32\":42,\"i64\":-9007199254740993,\"u32\":7,\"s64\":1000,\"sf32\":3,"
                    "\"u64\":\"18446744073709551615\"}");
  /* Floats: numbers, numeric strings, the special values. */
  tu_roundtrip_free(g_pj, SCALARS, "{\"fl\":\"-2.5\",\"db\":\"1e3\"}",
                    "{\"fl\":-2.5,\"db\":1000.0}");
  Keel__Protojson__Test__Scalars *s = (Keel__Protojson__Test__Scalars *)tu_roundtrip(
      g_pj, SCALARS, "{\"fl\":\"NaN\",\"db\":\"-Infinity\"}", NULL);
  assert_true(isnan(s->fl));
  assert_true(isinf(s->db) && s->db < 0);
  protobuf_c_message_free_unpacked(&s->base, NULL);
  tu_roundtrip_free(g_pj, SCALARS, "{\"db\":\"Infinity\",\"fl\":3.5}", NULL);
  /* Enums by number; a number the enum does not name stays a number. */
  tu_roundtrip_free(g_pj, SCALARS, "{\"color\":1}", "{\"color\":\"RED\"}");
  tu_roundtrip_free(g_pj, SCALARS, "{\"color\":7}", NULL);
  /* bytes: URL-safe alphabet, padding optional. */
  s = (Keel__Protojson__Test__Scalars *)tu_roundtrip(g_pj, SCALARS, "{\"by\":\"-_8\"}",
                                                     "{\"by\":\"+/8=\"}");
  assert_int_equal(s->by.len, 2);
  assert_int_equal(s->by.data[0], 0xfb);
  assert_int_equal(s->by.data[1], 0xff);
  protobuf_c_message_free_unpacked(&s->base, NULL);
  tu_roundtrip_free(g_pj, SCALARS, "{\"by\":\"YQ\"}", "{\"by\":\"YQ==\"}");
  tu_roundtrip_free(g_pj, SCALARS, "{\"by\":\"YWI\"}", "{\"by\":\"YWI=\"}");
  /* Proto names. */
  tu_roundtrip_free(g_pj, SCALARS, "{\"custom_name\":\"a\",\"snake_case_field\":\"b\"}",
                    "{\"renamed\":\"a\",\"snakeCaseField\":\"b\"}");
}

static void test_repeated(void **state) {
  (void)state;
  Keel__Protojson__Test__Repeats *r = (Keel__Protojson__Test__Repeats *)tu_roundtrip(
      g_pj, REPEATS,
      "{\"i32\":[1,-2,0],\"i64\":[9007199254740993,-1],\"u64\":[\"18446744073709551615\",0],"
      "\"fl\":[0.5,\"NaN\"],\"db\":[1e-300],\"b\":[true,false],\"s\":[\"\",\"x\"],"
      "\"by\":[\"\",\"AA==\"],\"color\":[\"RED\",\"COLOR_UNSPECIFIED\",5],"
      "\"msgs\":[{},{\"i32\":1}],\"times\":[\"1970-01-01T00:00:00Z\"]}",
      NULL);
  assert_int_equal(r->n_i32, 3);
  assert_int_equal(r->i32[1], -2);
  assert_int_equal(r->n_s, 2);
  assert_string_equal(r->s[0], "");
  assert_int_equal(r->n_by, 2);
  assert_int_equal(r->by[0].len, 0);
  assert_int_equal(r->by[1].len, 1);
  assert_int_equal(r->n_color, 3);
  assert_int_equal(r->color[2], 5);
  assert_int_equal(r->n_msgs, 2);
  assert_int_equal(r->msgs[1]->i32, 1);
  assert_int_equal(r->times[0]->seconds, 0);
  protobuf_c_message_free_unpacked(&r->base, NULL);
  /* Empty lists are omitted. */
  tu_roundtrip_free(g_pj, REPEATS, "{\"i32\":[],\"msgs\":[],\"s\":null}", "{}");
}

static void test_maps(void **state) {
  (void)state;
  Keel__Protojson__Test__Maps *m = (Keel__Protojson__Test__Maps *)tu_roundtrip(
      g_pj, MAPS,
      "{\"ss\":{\"b\":\"2\",\"a\":\"\"},\"i32s\":{\"7\":\"b\",\"-1\":\"a\",\"0\":\"z\"},"
      "\"i64m\":{\"-9223372036854775808\":{},\"5\":{\"s\":\"x\"}},"
      "\"u32b\":{\"4294967295\":true,\"1\":false},"
      "\"u64i\":{\"18446744073709551615\":\"-5\"},\"bs\":{\"true\":\"t\",\"false\":\"f\"},"
      "\"se\":{\"x\":\"RED\",\"y\":0},\"sby\":{\"k\":\"AQI=\"},\"s32s\":{\"-3\":\"m\"},"
      "\"f64s\":{\"18446744073709551615\":\"max\"}}",
      "{\"ss\":{\"a\":\"\",\"b\":\"2\"},\"i32s\":{\"-1\":\"a\",\"0\":\"z\",\"7\":\"b\"},"
      "\"i64m\":{\"-9223372036854775808\":{},\"5\":{\"s\":\"x\"}},"
      "\"u32b\":{\"1\":false,\"4294967295\":true},"
      "\"u64i\":{\"18446744073709551615\":-5},\"bs\":{\"false\":\"f\",\"true\":\"t\"},"
      "\"se\":{\"x\":\"RED\",\"y\":\"COLOR_UNSPECIFIED\"},\"sby\":{\"k\":\"AQI=\"},"
      "\"s32s\":{\"-3\":\"m\"},\"f64s\":{\"18446744073709551615\":\"max\"}}");
  assert_int_equal(m->n_i32s, 3);
  assert_int_equal(m->n_u64i, 1);
  assert_true(m->u64i[0]->key == UINT64_MAX);
  assert_int_equal(m->u64i[0]->value, -5);
  assert_int_equal(m->i64m[0]->key, INT64_MIN);
  assert_non_null(m->i64m[0]->value);
  protobuf_c_message_free_unpacked(&m->base, NULL);

  /* Output sorts keys as values of their type. */
  keel_error err = {0};
  m = (Keel__Protojson__Test__Maps *)parse(MAPS,
                                           "{\"i32s\":{\"10\":\"a\",\"-2\":\"b\",\"9\":\"c\"}}");
  char *s = protojson_to_string(g_pj, &m->base, 0, &err);
  assert_string_equal(s, "{\"i32s\":{\"-2\":\"b\",\"9\":\"c\",\"10\":\"a\"}}");
  free(s);
  protobuf_c_message_free_unpacked(&m->base, NULL);

  /* A map value that is NULL in C is written as the empty value. */
  Keel__Protojson__Test__Maps__I64mEntry e = KEEL__PROTOJSON__TEST__MAPS__I64M_ENTRY__INIT;
  Keel__Protojson__Test__Maps__I64mEntry *entries[] = {&e};
  Keel__Protojson__Test__Maps mm = KEEL__PROTOJSON__TEST__MAPS__INIT;
  e.key = 4;
  mm.n_i64m = 1;
  mm.i64m = entries;
  s = protojson_to_string(g_pj, &mm.base, 0, &err);
  assert_string_equal(s, "{\"i64m\":{\"4\":{}}}");
  free(s);
}

static void test_oneofs(void **state) {
  (void)state;
  /* A selected member is written even at its default. */
  Keel__Protojson__Test__Oneofs *o =
      (Keel__Protojson__Test__Oneofs *)tu_roundtrip(g_pj, ONEOFS, "{\"num\":0}", NULL);
  assert_int_equal(o->choice_case, KEEL__PROTOJSON__TEST__ONEOFS__CHOICE_NUM);
  protobuf_c_message_free_unpacked(&o->base, NULL);
  o = (Keel__Protojson__Test__Oneofs *)tu_roundtrip(g_pj, ONEOFS, "{\"text\":\"\",\"other\":\"o\"}",
                                                    NULL);
  assert_int_equal(o->choice_case, KEEL__PROTOJSON__TEST__ONEOFS__CHOICE_TEXT);
  assert_string_equal(o->text, "");
  protobuf_c_message_free_unpacked(&o->base, NULL);
  tu_roundtrip_free(g_pj, ONEOFS, "{\"msg\":{}}", NULL);
  tu_roundtrip_free(g_pj, ONEOFS, "{\"raw\":\"AAE=\"}", NULL);
  tu_roundtrip_free(g_pj, ONEOFS, "{\"text\":\"t\"}", NULL);
  /* null for one member, a value for another: fine. */
  tu_roundtrip_free(g_pj, ONEOFS, "{\"num\":null,\"text\":\"t\"}", "{\"text\":\"t\"}");
  tu_roundtrip_free(g_pj, ONEOFS, "{}", NULL);
  tu_expect_error(g_pj, ONEOFS, "{\"num\":1,\"msg\":{}}",
                  "msg: only one field of a oneof may be set, and num is");
  tu_expect_error(g_pj, ONEOFS, "{\"text\":\"a\",\"raw\":\"\"}",
                  "raw: only one field of a oneof may be set, and text is");
}

static void test_well_known_types(void **state) {
  (void)state;
  /* Wrappers are their bare value, written even at the default. */
  Keel__Protojson__Test__Wkt *w = (Keel__Protojson__Test__Wkt *)tu_roundtrip(
      g_pj, WKT,
      "{\"dv\":0,\"fv\":0,\"i64v\":0,\"u64v\":0,\"i32v\":0,\"u32v\":0,\"bv\":false,\"sv\":\"\","
      "\"byv\":\"\"}",
      "{\"dv\":0.0,\"fv\":0.0,\"i64v\":0,\"u64v\":0,\"i32v\":0,\"u32v\":0,\"bv\":false,\"sv\":\"\","
      "\"byv\":\"\"}");
  assert_non_null(w->dv);
  assert_non_null(w->byv);
  assert_false(w->bv->value);
  assert_null(w->ts);
  protobuf_c_message_free_unpacked(&w->base, NULL);
  w = (Keel__Protojson__Test__Wkt *)tu_roundtrip(
      g_pj, WKT,
      "{\"dv\":2.5,\"fv\":\"Infinity\",\"i64v\":\"-9007199254740993\",\"u64v\":"
      "\"18446744073709551615\","
      "\"i32v\":\"7\",\"u32v\":8,\"bv\":true,\"sv\":\"s\",\"byv\":\"AA==\",\"ri\":[1,0,-1],"
      "\"mt\":{\"a\":\"2024-05-01T10:00:00Z\"},\"ts\":\"2024-05-01T10:00:00.000000001Z\"}",
      "{\"dv\":2.5,\"fv\":\"Infinity\",\"i64v\":-9007199254740993,\"u64v\":"
      "\"18446744073709551615\","
      "\"i32v\":7,\"u32v\":8,\"bv\":true,\"sv\":\"s\",\"byv\":\"AA==\",\"ri\":[1,0,-1],"
      "\"mt\":{\"a\":\"2024-05-01T10:00:00Z\"},\"ts\":\"2024-05-01T10:00:00.000000001Z\"}");
  assert_int_equal(w->i64v->value, -9007199254740993LL);
  assert_int_equal(w->n_ri, 3);
  assert_int_equal(w->ri[1]->value, 0);
  assert_int_equal(w->ts->nanos, 1);
  protobuf_c_message_free_unpacked(&w->base, NULL);

  /* A well-known type at the top level is its bare value too. */
  keel_error err = {0};
  Google__Protobuf__Int64Value *v = (Google__Protobuf__Int64Value *)protojson_from_string(
      g_pj, &google__protobuf__int64_value__descriptor, "\"12\"", 4, &err);
  assert_non_null(v);
  assert_int_equal(v->value, 12);
  char *s = protojson_to_string(g_pj, &v->base, 0, &err);
  assert_string_equal(s, "12");
  free(s);
  protobuf_c_message_free_unpacked(&v->base, NULL);
}

static void ts_case(const char *in, const char *out, int64_t seconds, int32_t nanos) {
  keel_error err = {0};
  char text[128];
  snprintf(text, sizeof(text), "\"%s\"", in);
  Google__Protobuf__Timestamp *t = (Google__Protobuf__Timestamp *)protojson_from_string(
      g_pj, &google__protobuf__timestamp__descriptor, text, strlen(text), &err);
  if (!t) fail_msg("%s: %s", in, err.message);
  assert_int_equal(t->seconds, seconds);
  assert_int_equal(t->nanos, nanos);
  char *s = protojson_to_string(g_pj, &t->base, 0, &err);
  snprintf(text, sizeof(text), "\"%s\"", out);
  assert_string_equal(s, text);
  free(s);
  protobuf_c_message_free_unpacked(&t->base, NULL);
}

static void test_timestamps(void **state) {
  (void)state;
  ts_case("2024-05-01T10:00:00Z", "2024-05-01T10:00:00Z", 1714557600, 0);
  /* Fractions: 3, 6 or 9 digits out, 1 to 9 in. */
  ts_case("2024-05-01T10:00:00.5Z", "2024-05-01T10:00:00.500Z", 1714557600, 500000000);
  ts_case("2024-05-01T10:00:00.000001Z", "2024-05-01T10:00:00.000001Z", 1714557600, 1000);
  ts_case("2024-05-01T10:00:00.123456789Z", "2024-05-01T10:00:00.123456789Z", 1714557600,
          123456789);
  ts_case("2024-05-01T10:00:00.1200Z", "2024-05-01T10:00:00.120Z", 1714557600, 120000000);
  /* Offsets, lowercase t and z. */
  ts_case("2024-05-01T12:00:00+02:00", "2024-05-01T10:00:00Z", 1714557600, 0);
  ts_case("2024-05-01T12:00:00.25+02:00", "2024-05-01T10:00:00.250Z", 1714557600, 250000000);
  ts_case("2024-05-01T05:30:00-04:30", "2024-05-01T10:00:00Z", 1714557600, 0);
  ts_case("2024-05-01t10:00:00z", "2024-05-01T10:00:00Z", 1714557600, 0);
  ts_case("2024-05-01T00:30:00+01:00", "2024-04-30T23:30:00Z", 1714519800, 0);
  /* Calendar edges. */
  ts_case("2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z", 1709164800, 0);
  ts_case("2000-02-29T23:59:59Z", "2000-02-29T23:59:59Z", 951868799, 0);
  ts_case("1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z", -1, 999000000);
  ts_case("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z", -62135596800LL, 0);
  ts_case("9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59.999999999Z", 253402300799LL,
          999999999);
  const char *bad[] = {
      "2023-02-29T00:00:00Z",
      "2024-13-01T00:00:00Z",
      "2024-04-31T00:00:00Z",
      "2024-05-01T24:00:00Z",
      "2024-05-01T10:60:00Z",
      "2024-05-01T10:00:60Z",
      "2024-05-01 10:00:00Z",
      "2024-05-01T10:00:00",
      "2024-05-01T10:00:00.Z",
      "2024-05-01T10:00:00.1234567890Z",
      "2024-05-01T10:00:00+2:00",
      "2024-05-01T10:00:00+24:00",
      "2024-05-01T10:00:00Zjunk",
      "2024-5-01T10:00:00Z",
      "0000-12-31T23:59:59Z",
      "0001-01-01T00:00:00+00:01",
      "9999-12-31T23:59:59-00:01",
      "10000-01-01T00:00:00Z",
      "",
      "2024-05-01",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char text[96], want[256];
    snprintf(text, sizeof(text), "\"%s\"", bad[i]);
    snprintf(want, sizeof(want),
             "invalid RFC 3339 timestamp \"%s\" (want 2006-01-02T15:04:05Z, in years 1 to 9999)",
             bad[i]);
    tu_expect_error(g_pj, &google__protobuf__timestamp__descriptor, text, want);
  }
}

static void test_proto2(void **state) {
  (void)state;
  /* has_ presence: zero values given are written; the default string is not. */
  Keel__Protojson__Test2__Legacy *l = (Keel__Protojson__Test2__Legacy *)tu_roundtrip(
      g_pj, LEGACY,
      "{\"id\":\"a\",\"count\":0,\"flag\":false,\"blob\":\"\",\"inner\":{\"x\":0},"
      "\"m\":{\"1\":\"one\"}}",
      NULL);
  assert_true(l->has_count);
  assert_true(l->has_flag);
  assert_true(l->has_blob);
  assert_string_equal(l->note, "none");
  assert_ptr_equal(l->note, keel__protojson__test2__legacy__note__default_value);
  protobuf_c_message_free_unpacked(&l->base, NULL);
  l = (Keel__Protojson__Test2__Legacy *)tu_roundtrip(g_pj, LEGACY, "{\"id\":\"\",\"note\":\"n\"}",
                                                     NULL);
  assert_false(l->has_count);
  assert_string_equal(l->note, "n");
  protobuf_c_message_free_unpacked(&l->base, NULL);
  tu_expect_error(g_pj, LEGACY, "{}", "id: required field missing");
  tu_expect_error(g_pj, LEGACY, "{\"id\":null}", "id: required field missing");
  tu_expect_error(g_pj, LEGACY, "{\"id\":\"a\",\"inner\":{}}", "inner.x: required field missing");
}

/* Without the test protos' descriptor set: lowerCamelCase names, maps by shape. */
static void test_absent_from_sets(void **state) {
  (void)state;
  keel_error err = {0};
  protojson_descriptor_set api = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  protojson *pj = protojson_create(&api, 1, &err);
  assert_non_null(pj);
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(SCALARS, "custom_name");
  assert_string_equal(protojson_field_json_name(pj, SCALARS, f), "customName");
  assert_string_equal(protojson_field_json_name(g_pj, SCALARS, f), "renamed");
  tu_roundtrip_free(pj, SCALARS, "{\"customName\":\"a\",\"snake_case_field\":\"b\"}",
                    "{\"customName\":\"a\",\"snakeCaseField\":\"b\"}");
  tu_expect_error(pj, SCALARS, "{\"renamed\":\"a\"}", "renamed: unknown field \"renamed\"");
  tu_roundtrip_free(pj, MAPS, "{\"i32s\":{\"1\":\"a\"},\"i64m\":{\"2\":{\"i32\":3}}}", NULL);
  protojson_destroy(pj);
}

/* The nesting limit, both ways, on a recursive message. */
static void test_depth_limit(void **state) {
  (void)state;
  const ProtobufCMessageDescriptor *tree = &keel__protojson__test__tree__descriptor;
  /* 63 nested children under the root: 64 levels, the most there may be. */
  char text[2048], path[1024];
  for (int levels = 63; levels <= 64; levels++) {
    size_t n = 0, p = 0;
    for (int i = 0; i < levels; i++)
      n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"child\":");
    n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"name\":\"leaf\"}");
    for (int i = 0; i < levels; i++) text[n++] = '}';
    text[n] = 0;
    for (int i = 0; i < levels; i++)
      p += (size_t)snprintf(path + p, sizeof(path) - p, "%schild", i ? "." : "");
    if (levels == 63) {
      tu_roundtrip_free(g_pj, tree, text, NULL);
    } else {
      char want[1200];
      snprintf(want, sizeof(want), "%s: nesting exceeds the maximum depth of 64", path);
      tu_expect_error(g_pj, tree, text, want);
    }
  }
  /* Through lists and maps too. */
  size_t n = 0;
  for (int i = 0; i < 70; i++) n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"children\":[");
  n += (size_t)snprintf(text + n, sizeof(text) - n, "{}");
  for (int i = 0; i < 70; i++) n += (size_t)snprintf(text + n, sizeof(text) - n, "]}");
  keel_error err = {0};
  assert_null(protojson_from_string(g_pj, tree, text, n, &err));
  assert_non_null(strstr(err.message, "nesting exceeds the maximum depth of 64"));
  assert_non_null(strstr(err.message, "children[0].children[0]"));

  /* A hostile json_t far deeper than any text jansson parses (it stops at
   * 2048): refused at 64 without recursing further. */
  json_t *root = json_object(), *cur = root;
  for (int i = 0; i < 100000; i++) {
    json_t *next = json_object();
    json_object_set_new(cur, i % 2 ? "child" : "named",
                        i % 2 ? next : json_pack("{s:o}", "k", next));
    cur = next;
  }
  assert_null(protojson_from_json(g_pj, tree, root, &err));
  assert_int_equal(err.code, EINVAL);
  assert_non_null(strstr(err.message, "nesting exceeds the maximum depth of 64"));
  assert_non_null(strstr(err.message, "named[\"k\"].child"));
  /* jansson frees nested values recursively: unwind it iteratively. */
  while (json_object_size(root)) {
    json_t *child = json_object_get(root, "named")
                        ? json_object_get(json_object_get(root, "named"), "k")
                        : json_object_get(root, "child");
    json_incref(child);
    json_decref(root);
    root = child;
  }
  json_decref(root);

  /* Encoding a chain deeper than 64 fails the same way. */
  enum { CHAIN = 80 };
  Keel__Protojson__Test__Tree nodes[CHAIN];
  for (int i = 0; i < CHAIN; i++) {
    keel__protojson__test__tree__init(&nodes[i]);
    if (i) nodes[i - 1].child = &nodes[i];
  }
  assert_null(protojson_to_json(g_pj, &nodes[0].base, &err));
  assert_non_null(strstr(err.message, "nesting exceeds the maximum depth of 64"));
  nodes[63].child = NULL;
  json_t *j = protojson_to_json(g_pj, &nodes[0].base, &err);
  assert_non_null(j);
  json_decref(j);
}

static void test_create_errors(void **state) {
  (void)state;
  keel_error err = {0};
  const unsigned char junk[] = {0x0a, 0x05, 0x01};
  protojson_descriptor_set bad = {junk, sizeof(junk)};
  assert_null(protojson_create(&bad, 1, &err));
  assert_int_equal(err.code, EINVAL);
  assert_string_equal(err.message, "descriptor set 0 is not a FileDescriptorSet");
  /* An empty set is a valid, empty FileDescriptorSet. */
  protojson_descriptor_set empty = {junk, 0};
  protojson *pj = protojson_create(&empty, 1, &err);
  assert_non_null(pj);
  protojson_destroy(pj);
  /* The same set twice: the first wins, nothing leaks. */
  protojson_descriptor_set twice[] = {{keel_api_descriptor_set, keel_api_descriptor_set_len},
                                      {keel_api_descriptor_set, keel_api_descriptor_set_len}};
  pj = protojson_create(twice, 2, &err);
  assert_non_null(pj);
  protojson_destroy(pj);
  protojson_destroy(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scalars),          cmocka_unit_test(test_scalar_inputs),
      cmocka_unit_test(test_repeated),         cmocka_unit_test(test_maps),
      cmocka_unit_test(test_oneofs),           cmocka_unit_test(test_well_known_types),
      cmocka_unit_test(test_timestamps),       cmocka_unit_test(test_proto2),
      cmocka_unit_test(test_absent_from_sets), cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_create_errors),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
