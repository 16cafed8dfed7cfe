/* common/protojson/testdata/testutil.h — helpers shared by the cmocka tests. */
#ifndef KEEL_COMMON_PROTOJSON_TESTDATA_TESTUTIL_H
#define KEEL_COMMON_PROTOJSON_TESTDATA_TESTUTIL_H

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "common/protojson/protojson.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;
extern const unsigned char keel_pjtest_descriptor_set[];
extern const unsigned long keel_pjtest_descriptor_set_len;

/* keel.api.v1 and the test protos. */
static inline protojson *tu_create(void) {
  protojson_descriptor_set sets[] = {
      {keel_api_descriptor_set, keel_api_descriptor_set_len},
      {keel_pjtest_descriptor_set, keel_pjtest_descriptor_set_len},
  };
  keel_error err = {0};
  protojson *pj = protojson_create(sets, 2, &err);
  if (!pj) fail_msg("protojson_create: %s", err.message);
  return pj;
}

static inline json_t *tu_load(const char *text) {
  json_error_t je;
  json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
  if (!j) fail_msg("bad JSON in the test at %d:%d: %s", je.line, je.column, je.text);
  return j;
}

static inline void tu_assert_json_equal(const json_t *got, const json_t *want) {
  if (json_equal(got, want)) return;
  char *g = json_dumps(got, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  char *w = json_dumps(want, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
  print_error("got:\n%s\nwant:\n%s\n", g, w);
  free(g);
  free(w);
  fail();
}

/* text parsed as desc must convert back to expect (text when NULL), pass
 * protobuf_c_message_check, and pack + unpack to a message with the same JSON.
 * Returns the parsed message (free with protobuf_c_message_free_unpacked). */
static inline ProtobufCMessage *tu_roundtrip(const protojson *pj,
                                             const ProtobufCMessageDescriptor *desc,
                                             const char *text, const char *expect) {
  keel_error err = {0};
  ProtobufCMessage *m = protojson_from_string(pj, desc, text, strlen(text), &err);
  if (!m) fail_msg("from_string: %s\ninput: %s", err.message, text);
  assert_true(protobuf_c_message_check(m));
  json_t *got = protojson_to_json(pj, m, &err);
  if (!got) fail_msg("to_json: %s", err.message);
  json_t *want = tu_load(expect ? expect : text);
  tu_assert_json_equal(got, want);
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  assert_non_null(buf);
  assert_int_equal(protobuf_c_message_pack(m, buf), n);
  ProtobufCMessage *u = protobuf_c_message_unpack(desc, NULL, n, buf);
  assert_non_null(u);
  json_t *again = protojson_to_json(pj, u, &err);
  if (!again) fail_msg("to_json after unpack: %s", err.message);
  tu_assert_json_equal(again, got);
  json_decref(again);
  protobuf_c_message_free_unpacked(u, NULL);
  free(buf);
  json_decref(want);
  json_decref(got);
  return m;
}

/* Like tu_roundtrip, for when the message itself is not needed. */
static inline void tu_roundtrip_free(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                     const char *text, const char *expect) {
  protobuf_c_message_free_unpacked(tu_roundtrip(pj, desc, text, expect), NULL);
}

/* text must be refused with EINVAL and exactly this message. */
static inline void tu_expect_error(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                   const char *text, const char *message) {
  keel_error err = {0};
  ProtobufCMessage *m = protojson_from_string(pj, desc, text, strlen(text), &err);
  if (m) {
    char *s = protojson_to_string(pj, m, 0, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
    fail_msg("accepted %s\nas %s\nwant error: %s", text, s ? s : "?", message);
  }
  assert_int_equal(err.code, EINVAL);
  if (strcmp(err.message, message) != 0)
    fail_msg("input: %s\n got error: %s\nwant error: %s", text, err.message, message);
}

#endif
