/* common/manifest/testutil.h — helpers shared by the cmocka tests. */
#ifndef KEEL_COMMON_MANIFEST_TESTUTIL_H
#define KEEL_COMMON_MANIFEST_TESTUTIL_H

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

#include "common/manifest/manifest.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;

#define TESTDATA "common/manifest/testdata/"

static inline protojson *tu_pj(void) {
  protojson_descriptor_set set = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  keel_error err = {0};
  protojson *pj = protojson_create(&set, 1, &err);
  if (!pj) fail_msg("protojson_create: %s", err.message);
  return pj;
}

/* The whole file (NUL-terminated, malloc'ed); fails the test when unreadable. */
static inline char *tu_read(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) fail_msg("open %s: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  assert_non_null(buf);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n - 1 == 0) {
      cap *= 2;
      buf = realloc(buf, cap);
      assert_non_null(buf);
    }
  }
  fclose(f);
  buf[n] = 0;
  if (len) *len = n;
  return buf;
}

/* The message's wire bytes (malloc'ed), for byte-identical comparisons. */
static inline uint8_t *tu_pack(const ProtobufCMessage *m, size_t *n) {
  *n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(*n ? *n : 1);
  assert_non_null(buf);
  assert_int_equal(protobuf_c_message_pack(m, buf), *n);
  return buf;
}

static inline void tu_assert_same_message(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  assert_ptr_equal(a->descriptor, b->descriptor);
  size_t na, nb;
  uint8_t *pa = tu_pack(a, &na), *pb = tu_pack(b, &nb);
  assert_int_equal(na, nb);
  assert_memory_equal(pa, pb, na);
  free(pa);
  free(pb);
}

/* Decodes text named name; fails the test on error. */
static inline manifest_object *tu_decode(const protojson *pj, const char *name, const char *text,
                                         size_t *n) {
  manifest_object *objs = NULL;
  keel_error err = {0};
  int rc = manifest_decode(pj, name, text, strlen(text), &objs, n, &err);
  if (rc < 0) fail_msg("decode %s: %s", name, err.message);
  return objs;
}

/* Decoding text must fail with exactly want. */
static inline void tu_expect_error(const protojson *pj, const char *name, const char *text,
                                   const char *want) {
  manifest_object *objs = (manifest_object *)1;
  size_t n = 99;
  keel_error err = {0};
  int rc = manifest_decode(pj, name, text, strlen(text), &objs, &n, &err);
  if (rc == 0) {
    manifest_objects_free(objs, n);
    fail_msg("decoded, want error \"%s\"\ninput:\n%s", want, text);
  }
  assert_null(objs);
  assert_int_equal(n, 0);
  if (strcmp(err.message, want) != 0)
    fail_msg("error:\n  got  %s\n  want %s\ninput:\n%s", err.message, want, text);
}

/* JSON equality where 3 and 3.0 are the same number (YAML writes 3.0 as 3). */
static inline int tu_json_same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b)) return 0;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!tu_json_same(json_array_get(a, i), json_array_get(b, i))) return 0;
    return 1;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
      const json_t *w = json_object_get(b, k);
      if (!w || !tu_json_same(v, w)) return 0;
    }
    return 1;
  }
  return json_equal(a, b);
}

#endif
