/* common/protojson/robust_test.c — thousands of damaged manifests (a fixed
 * seed; bytes mutated, values replaced by other JSON types, keys misspelt)
 * through protojson_from_string for Pod, Deployment, Service, Node and
 * Namespace. No crash, no leak (ASan), every refusal is EINVAL with a message,
 * and every acceptance is stable: to_json(from_json(x)) converts to the same
 * JSON again, passes protobuf_c_message_check, and survives pack + unpack. */
#include "common/protojson/testdata/manifests.h"
#include "common/protojson/testdata/testutil.h"

#define ROUNDS_PER_MANIFEST 1500

static protojson *g_pj;
static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static size_t g_accepted, g_rejected;

static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

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

static void check(const ProtobufCMessageDescriptor *desc, const char *text, size_t len) {
  keel_error err = {0};
  ProtobufCMessage *m = protojson_from_string(g_pj, desc, text, len, &err);
  if (!m) {
    if (err.code != EINVAL || !err.message[0])
      fail_msg("refused with code %d \"%s\": %.*s", err.code, err.message, (int)len, text);
    g_rejected++;
    return;
  }
  g_accepted++;
  assert_true(protobuf_c_message_check(m));
  json_t *j1 = protojson_to_json(g_pj, m, &err);
  if (!j1) fail_msg("accepted but not converted back (%s): %.*s", err.message, (int)len, text);
  ProtobufCMessage *m2 = protojson_from_json(g_pj, desc, j1, &err);
  if (!m2) fail_msg("own output refused (%s): %.*s", err.message, (int)len, text);
  json_t *j2 = protojson_to_json(g_pj, m2, &err);
  assert_non_null(j2);
  tu_assert_json_equal(j2, j1);
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *buf = malloc(n ? n : 1);
  assert_non_null(buf);
  protobuf_c_message_pack(m, buf);
  ProtobufCMessage *u = protobuf_c_message_unpack(desc, NULL, n, buf);
  assert_non_null(u);
  json_t *j3 = protojson_to_json(g_pj, u, &err);
  assert_non_null(j3);
  tu_assert_json_equal(j3, j1);
  json_decref(j3);
  protobuf_c_message_free_unpacked(u, NULL);
  free(buf);
  json_decref(j2);
  json_decref(j1);
  protobuf_c_message_free_unpacked(m2, NULL);
  protobuf_c_message_free_unpacked(m, NULL);
}

/* ------------------------------------------------------------ byte mutations */

static const char *const tokens[] = {"{",        "}",
                                     "[",        "]",
                                     ":",        ",",
                                     "\"",       "null",
                                     "true",     "false",
                                     "0",        "-1",
                                     "1e999",    "0.5",
                                     "\\u0000",  "\\ud800",
                                     "\xc3",     "\"\":",
                                     "{}",       "[]",
                                     "\"x\":1,", "99999999999999999999"};

static size_t mutate_bytes(char *buf, size_t len, size_t cap) {
  int steps = 1 + (int)(rnd() % 3);
  for (int s = 0; s < steps; s++) {
    size_t at = len ? rnd() % len : 0;
    switch (rnd() % 6) {
      case 0: /* flip a bit */
        if (len) buf[at] ^= (char)(1u << (rnd() % 8));
        break;
      case 1: /* set a byte */
        if (len) buf[at] = "{}[]:,\"0-.e \\aZ"[rnd() % 15];
        break;
      case 2: /* delete a range */
        if (len) {
          size_t k = 1 + rnd() % 8;
          if (at + k > len) k = len - at;
          memmove(buf + at, buf + at + k, len - at - k);
          len -= k;
        }
        break;
      case 3: { /* insert a token */
        const char *t = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
        size_t k = strlen(t);
        if (len + k <= cap) {
          memmove(buf + at + k, buf + at, len - at);
          memcpy(buf + at, t, k);
          len += k;
        }
        break;
      }
      case 4: /* truncate */
        len = at;
        break;
      case 5: /* duplicate a range */
        if (len) {
          size_t k = 1 + rnd() % 32;
          if (at + k > len) k = len - at;
          if (len + k <= cap) {
            char chunk[32];
            size_t to = rnd() % (len + 1);
            memcpy(chunk, buf + at, k);
            memmove(buf + to + k, buf + to, len - to);
            memcpy(buf + to, chunk, k);
            len += k;
          }
        }
        break;
    }
  }
  return len;
}

/* ------------------------------------------------------------ value mutations */

static const char *const values[] = {
    "null",
    "true",
    "false",
    "0",
    "-1",
    "42",
    "1.5",
    "1e300",
    "-0.0",
    "9223372036854775807",
    "-9223372036854775808",
    "\"18446744073709551615\"",
    "\"\"",
    "\"x\"",
    "\"25%\"",
    "\"3\"",
    "\"2024-05-01T10:00:00Z\"",
    "\"2024-05-01T10:00:00.5+02:00\"",
    "\"AA==\"",
    "\"http\"",
    "\"250m\"",
    "[]",
    "{}",
    "[1,\"a\",null]",
    "{\"a\":1}",
    "{\"name\":\"n\"}",
    "[{}]",
    "[\"a\",\"b\"]",
    "{\"podIP\":\"1\",\"pod_ip\":\"2\"}",
    "{\"app\":\"x\"}",
    "[{\"name\":\"c\"}]",
};

typedef struct slot {
  json_t *parent;
  const char *key; /* NULL: an array element */
  size_t index;
} slot;

static void collect(json_t *v, slot *out, size_t *n, size_t cap) {
  if (json_is_object(v)) {
    const char *k;
    json_t *c;
    json_object_foreach(v, k, c) {
      if (*n < cap) out[(*n)++] = (slot){v, k, 0};
      collect(c, out, n, cap);
    }
  } else if (json_is_array(v)) {
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (*n < cap) out[(*n)++] = (slot){v, NULL, i};
      collect(json_array_get(v, i), out, n, cap);
    }
  }
}

/* One structural change somewhere in doc: another JSON type for a value, a
 * misspelt or proto-named key, a removed member, a value moved elsewhere. */
static void mutate_value(json_t *doc) {
  slot slots[2048];
  size_t n = 0;
  collect(doc, slots, &n, 2048);
  if (!n) return;
  slot *s = &slots[rnd() % n];
  json_t *nv =
      json_loads(values[rnd() % (sizeof(values) / sizeof(values[0]))], JSON_DECODE_ANY, NULL);
  assert_non_null(nv);
  switch (rnd() % 5) {
    case 0:
    case 1: /* another value */
      if (s->key)
        json_object_set_new(s->parent, s->key, nv);
      else
        json_array_set_new(s->parent, s->index, nv);
      return;
    case 2: /* a misspelt key */
      if (s->key) {
        char k[256];
        snprintf(k, sizeof(k), "%s%c", s->key, 'a' + (int)(rnd() % 26));
        json_object_set(s->parent, k, json_object_get(s->parent, s->key));
        json_object_del(s->parent, s->key);
      }
      break;
    case 3: /* removed */
      if (s->key)
        json_object_del(s->parent, s->key);
      else
        json_array_remove(s->parent, s->index);
      break;
    case 4: { /* a copy of another value here */
      slot *o = &slots[rnd() % n];
      json_t *v = o->key ? json_object_get(o->parent, o->key) : json_array_get(o->parent, o->index);
      json_t *copy = json_deep_copy(v);
      if (copy && s->key)
        json_object_set_new(s->parent, s->key, copy);
      else if (copy)
        json_array_set_new(s->parent, s->index, copy);
      break;
    }
  }
  json_decref(nv);
}

static void test_mutated_manifests(void **state) {
  (void)state;
  enum { CAP = 1 << 16 };
  char *buf = malloc(CAP);
  assert_non_null(buf);
  for (size_t i = 0; i < pj_manifest_count; i++) {
    const pj_manifest *mf = &pj_manifests[i];
    size_t base_len = strlen(mf->json);
    json_t *base = tu_load(mf->json);
    check(mf->desc, mf->json, base_len);
    for (int r = 0; r < ROUNDS_PER_MANIFEST; r++) {
      /* Bytes. */
      memcpy(buf, mf->json, base_len);
      size_t len = mutate_bytes(buf, base_len, CAP);
      check(mf->desc, buf, len);
      /* Values, one to three changes. */
      json_t *doc = json_deep_copy(base);
      int k = 1 + (int)(rnd() % 3);
      for (int j = 0; j < k; j++) mutate_value(doc);
      char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
      assert_non_null(text);
      check(mf->desc, text, strlen(text));
      free(text);
      json_decref(doc);
      /* Another message type for the same text. */
      const pj_manifest *other = &pj_manifests[rnd() % pj_manifest_count];
      if (r % 16 == 0) check(other->desc, mf->json, base_len);
    }
    json_decref(base);
  }
  free(buf);
  print_message("%zu documents accepted, %zu refused\n", g_accepted, g_rejected);
  /* Both sides must have been exercised for the test to mean anything. */
  assert_true(g_accepted > 1000);
  assert_true(g_rejected > 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_mutated_manifests),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
