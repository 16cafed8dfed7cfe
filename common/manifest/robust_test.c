/* common/manifest/robust_test.c — thousands of damaged manifests (a fixed
 * seed) through manifest_decode: bytes flipped, YAML's special characters and
 * words inserted, tabs, indentation moved, lines swapped, duplicated and cut.
 * No crash and no leak (ASan); every refusal is EINVAL or E2BIG with a
 * "NAME:LINE" message; every acceptance round-trips: printed as YAML it reads
 * back to byte-identical protobuf and prints the same text again. At the YAML
 * layer, whatever parses is written and read back to the same value. */
#include "common/manifest/testutil.h"

#define ROUNDS_PER_FILE 700

static protojson *g_pj;
static uint64_t g_rng = 0x2545f4914f6cdd1dull;
static size_t g_accepted, g_rejected, g_yaml_ok;

static uint64_t rnd(void) {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

static int setup(void **state) {
  (void)state;
  g_pj = tu_pj();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  protojson_destroy(g_pj);
  return 0;
}

static const char *const tokens[] = {
    ": ",          "- ",   "\t",     "  ",     "\n",        "&a ",   "*a",
    "<<: *a\n",    "'",    "\"",     "{",      "}",         "[",     "]",
    ", ",          "|\n",  ">-\n",   "#",      "---\n",     "...\n", "yes",
    "0x1F",        "~",    "!!int ", "!!str ", "!!binary ", "? ",    "\\u00e9",
    "é",           "\xff", "1e999",  ".inf",   "null",      "0644",  "&b [*a, *a, *a]",
    "%YAML 1.1\n",
};

static char *mutate(const char *src, size_t len, size_t *outlen) {
  size_t cap = len * 2 + 256;
  char *s = malloc(cap);
  assert_non_null(s);
  memcpy(s, src, len);
  size_t n = len;
  int ops = 1 + (int)(rnd() % 4);
  for (int k = 0; k < ops; k++) {
    size_t at = n ? rnd() % (n + 1) : 0;
    switch (rnd() % 8) {
      case 0: /* flip a byte */
        if (at < n) s[at] = (char)(rnd() & 0xff);
        break;
      case 1:
      case 2: { /* insert a token */
        const char *t = tokens[rnd() % (sizeof(tokens) / sizeof(tokens[0]))];
        size_t tl = strlen(t);
        if (n + tl >= cap) break;
        memmove(s + at + tl, s + at, n - at);
        memcpy(s + at, t, tl);
        n += tl;
        break;
      }
      case 3: { /* delete a span */
        size_t span = rnd() % 12;
        if (at + span > n) span = n - at;
        memmove(s + at, s + at + span, n - at - span);
        n -= span;
        break;
      }
      case 4: { /* duplicate a line (a duplicate key, or a second list item) */
        size_t b = at;
        while (b > 0 && s[b - 1] != '\n') b--;
        size_t e = at;
        while (e < n && s[e] != '\n') e++;
        if (e < n) e++;
        size_t l = e - b;
        if (n + l >= cap) break;
        memmove(s + e + l, s + e, n - e);
        memcpy(s + e, s + b, l);
        n += l;
        break;
      }
      case 5: { /* move the indentation of a line by one space */
        size_t b = at;
        while (b > 0 && s[b - 1] != '\n') b--;
        if (rnd() & 1) {
          if (n + 1 >= cap) break;
          memmove(s + b + 1, s + b, n - b);
          s[b] = ' ';
          n++;
        } else if (b < n && s[b] == ' ') {
          memmove(s + b, s + b + 1, n - b - 1);
          n--;
        }
        break;
      }
      case 6: /* truncate */
        n = at;
        break;
      case 7: { /* swap a value for an anchor and its alias elsewhere */
        const char *t = (rnd() & 1) ? "&x " : "*x\n";
        size_t tl = strlen(t);
        if (n + tl >= cap) break;
        memmove(s + at + tl, s + at, n - at);
        memcpy(s + at, t, tl);
        n += tl;
        break;
      }
    }
  }
  *outlen = n;
  return s;
}

static void check_yaml_layer(const char *text, size_t len) {
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  if (manifest_text_parse(text, len, NULL, &docs, &n, &err) < 0) {
    if (err.code != EINVAL && err.code != E2BIG)
      fail_msg("yaml refused with %d: %s", err.code, err.message);
    return;
  }
  g_yaml_ok++;
  const json_t **vs = calloc(n ? n : 1, sizeof(*vs));
  for (size_t i = 0; i < n; i++) vs[i] = docs[i].root;
  char *y = manifest_json_to_yaml_stream(vs, n, 0, &err);
  if (!y) fail_msg("to_yaml: %s", err.message);
  manifest_doc *back;
  size_t nb;
  if (manifest_yaml_parse(y, strlen(y), NULL, &back, &nb, &err) < 0)
    fail_msg("own YAML refused (%s):\n%s\ninput:\n%.*s", err.message, y, (int)len, text);
  if (n > 0 || nb > 0) assert_int_equal(nb, n);
  for (size_t i = 0; i < n; i++)
    if (!tu_json_same(docs[i].root, back[i].root))
      fail_msg("document %zu changed:\n%s\ninput:\n%.*s", i, y, (int)len, text);
  manifest_docs_free(back, nb);
  free(y);
  free(vs);
  manifest_docs_free(docs, n);
}

static void check(const char *text, size_t len) {
  check_yaml_layer(text, len);
  manifest_object *objs;
  size_t n;
  keel_error err = {0};
  if (manifest_decode(g_pj, "m.yaml", text, len, &objs, &n, &err) < 0) {
    if ((err.code != EINVAL && err.code != E2BIG) || strncmp(err.message, "m.yaml:", 7) != 0)
      fail_msg("refused with %d \"%s\":\n%.*s", err.code, err.message, (int)len, text);
    assert_null(objs);
    g_rejected++;
    return;
  }
  g_accepted++;
  const ProtobufCMessage **msgs = calloc(n ? n : 1, sizeof(*msgs));
  for (size_t i = 0; i < n; i++) {
    assert_true(protobuf_c_message_check(objs[i].msg));
    msgs[i] = objs[i].msg;
  }
  char *y = manifest_list_to_yaml(g_pj, msgs, n, 0, &err);
  if (!y) fail_msg("accepted but not printed (%s):\n%.*s", err.message, (int)len, text);
  manifest_object *back;
  size_t nb;
  if (manifest_decode(g_pj, "out.yaml", y, strlen(y), &back, &nb, &err) < 0)
    fail_msg("own output refused (%s):\n%s\ninput:\n%.*s", err.message, y, (int)len, text);
  assert_int_equal(nb, n);
  for (size_t i = 0; i < n; i++) tu_assert_same_message(objs[i].msg, back[i].msg);
  const ProtobufCMessage **msgs2 = calloc(n ? n : 1, sizeof(*msgs2));
  for (size_t i = 0; i < n; i++) msgs2[i] = back[i].msg;
  char *y2 = manifest_list_to_yaml(g_pj, msgs2, n, 0, &err);
  assert_non_null(y2);
  assert_string_equal(y2, y);
  free(y2);
  free(msgs2);
  manifest_objects_free(back, nb);
  free(y);
  free(msgs);
  manifest_objects_free(objs, n);
}

static void test_mutations(void **state) {
  (void)state;
  static const char *const files[] = {
      "deployment.yaml", "service.yaml", "namespace.yaml", "pod.yaml",
      "multi.yaml",      "list.yaml",    "service.json",   "anchors.yaml",
  };
  for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++) {
    char path[256];
    snprintf(path, sizeof(path), TESTDATA "%s", files[f]);
    size_t len;
    char *text = tu_read(path, &len);
    check(text, len); /* the original is accepted */
    assert_true(g_accepted > 0);
    for (int r = 0; r < ROUNDS_PER_FILE; r++) {
      size_t mlen;
      char *m = mutate(text, len, &mlen);
      check(m, mlen);
      free(m);
    }
    free(text);
  }
  print_message("robust: %zu accepted, %zu refused, %zu parsed as YAML\n", g_accepted, g_rejected,
                g_yaml_ok);
  /* The mutations must exercise both outcomes. */
  assert_true(g_accepted > 200);
  assert_true(g_rejected > 1000);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_mutations)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
