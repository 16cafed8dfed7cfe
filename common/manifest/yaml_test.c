/* common/manifest/yaml_test.c — the YAML layer alone: how scalars resolve
 * (kubectl's YAML 1.1 rules), keys, block and flow collections, block
 * scalars, anchors, aliases and merge keys, limits, multi-document streams,
 * syntax errors with their lines, JSON input, position lookups by protojson
 * path, and the writer's quoting and layout (what it writes reads back). */
#include <math.h>

#include "common/manifest/testutil.h"

/* Parses text as one YAML document; fails the test on error. Caller frees. */
static manifest_doc *parse1(const char *text) {
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  int rc = manifest_yaml_parse(text, strlen(text), NULL, &docs, &n, &err);
  if (rc < 0) fail_msg("parse: %s\ninput:\n%s", err.message, text);
  if (n != 1) fail_msg("%zu documents, want 1\ninput:\n%s", n, text);
  return docs;
}

/* text must parse to the JSON want (compact, keys in document order). */
static void expect_json(const char *text, const char *want) {
  manifest_doc *d = parse1(text);
  char *got = json_dumps(d->root, JSON_COMPACT | JSON_ENCODE_ANY);
  if (strcmp(got, want) != 0) fail_msg("input:\n%s\ngot  %s\nwant %s", text, got, want);
  free(got);
  manifest_docs_free(d, 1);
}

/* text must fail to parse with code and exactly the message want. */
static void expect_error(const char *text, int code, const char *want) {
  manifest_doc *docs = (manifest_doc *)1;
  size_t n = 7;
  keel_error err = {0};
  int rc = manifest_yaml_parse(text, strlen(text), NULL, &docs, &n, &err);
  if (rc == 0) {
    manifest_docs_free(docs, n);
    fail_msg("parsed, want error \"%s\"\ninput:\n%s", want, text);
  }
  assert_null(docs);
  assert_int_equal(n, 0);
  assert_int_equal(rc, -code);
  if (strcmp(err.message, want) != 0)
    fail_msg("input:\n%s\nerror:\n  got  %s\n  want %s", text, err.message, want);
}

/* ---------------------------------------------------------------- scalars */

static void test_plain_scalars(void **state) {
  (void)state;
  static const struct {
    const char *yaml, *json;
  } cases[] = {
      /* YAML 1.1 booleans, as go-yaml v2 (kubectl) reads them. */
      {"true", "true"},
      {"True", "true"},
      {"FALSE", "false"},
      {"yes", "true"},
      {"Yes", "true"},
      {"NO", "false"},
      {"on", "true"},
      {"Off", "false"},
      {"y", "true"},
      {"n", "false"},
      {"yEs", "\"yEs\""},
      {"tru", "\"tru\""},
      /* Nulls. */
      {"~", "null"},
      {"null", "null"},
      {"NULL", "null"},
      {"", "null"},
      {"nul", "\"nul\""},
      /* Integers: decimal, signs, hex, 0o and YAML 1.1 leading-0 octal, binary, '_'. */
      {"0", "0"},
      {"42", "42"},
      {"-17", "-17"},
      {"+12", "12"},
      {"0x1F", "31"},
      {"-0x10", "-16"},
      {"0o17", "15"},
      {"0644", "420"},
      {"0b101", "5"},
      {"1_000_000", "1000000"},
      {"9223372036854775807", "9223372036854775807"},
      {"-9223372036854775808", "-9223372036854775808"},
      {"0x", "\"0x\""},
      /* Floats; "08" is no octal, so go-yaml reads it as the float 8. */
      {"1.5", "1.5"},
      {".5", "0.5"},
      {"1.", "1.0"},
      {"1e3", "1000.0"},
      {"-2.5E-1", "-0.25"},
      {"08", "8.0"},
      {"1e999", "\"1e999\""},
      {"18446744073709551615", "1.8446744073709552e19"},
      /* Strings that look a little like something else. */
      {"1.2.3", "\"1.2.3\""},
      {"12:30", "\"12:30\""},
      {"2001-12-14", "\"2001-12-14\""},
      {"2001-12-14T21:59:43.10-05:00", "\"2001-12-14T21:59:43.10-05:00\""},
      {"500m", "\"500m\""},
      {"128Mi", "\"128Mi\""},
      {"-x", "\"-x\""},
      {"nginx:1.14.2", "\"nginx:1.14.2\""},
      {"a b  c", "\"a b  c\""},
      {"<<", "\"<<\""},
      {"é", "\"é\""},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char text[256], want[256];
    snprintf(text, sizeof(text), "v: %s\n", cases[i].yaml);
    snprintf(want, sizeof(want), "{\"v\":%s}", cases[i].json);
    expect_json(text, want);
  }
}

static void test_quoted_and_tagged_scalars(void **state) {
  (void)state;
  /* Quoted scalars are always strings. */
  expect_json("a: 'yes'\nb: \"1\"\nc: ''\nd: \"~\"\ne: '0x1F'\n",
              "{\"a\":\"yes\",\"b\":\"1\",\"c\":\"\",\"d\":\"~\",\"e\":\"0x1F\"}");
  /* Escapes in double quotes; '' in single quotes. */
  expect_json("a: \"tab\\there\\n\\u00e9\"\nb: 'it''s'\n",
              "{\"a\":\"tab\\there\\né\",\"b\":\"it's\"}");
  /* Tags. */
  expect_json(
      "a: !!str 12\nb: !!int \"12\"\nc: !!float 1\nd: !!bool yes\ne: !!null ''\n"
      "f: ! 12\ng: !custom 12\nh: !!timestamp 2001-12-14\n",
      "{\"a\":\"12\",\"b\":12,\"c\":1.0,\"d\":true,\"e\":null,\"f\":\"12\",\"g\":\"12\","
      "\"h\":\"2001-12-14\"}");
  expect_error("a: !!int twelve\n", EINVAL, "1:4: \"twelve\" is not a valid !!int");
  expect_error("a: !!bool 1\n", EINVAL, "1:4: \"1\" is not a valid !!bool");
  expect_error("a: !!binary aGVsbG8=\n", EINVAL,
               "1:4: a scalar tagged tag:yaml.org,2002:binary is not supported");
  /* JSON has no infinity or NaN. */
  expect_error("a: .inf\n", EINVAL,
               "1:4: \".inf\" is not a number JSON can hold (quote it to make it a string)");
  expect_error("a:\n  b: -.Inf\n", EINVAL,
               "2:6: \"-.Inf\" is not a number JSON can hold (quote it to make it a string)");
  expect_json("a: '.inf'\n", "{\"a\":\".inf\"}");
}

static void test_block_scalars(void **state) {
  (void)state;
  expect_json("a: |\n  line 1\n  line 2\nb: x\n", "{\"a\":\"line 1\\nline 2\\n\",\"b\":\"x\"}");
  expect_json("a: |-\n  line 1\n  line 2\n", "{\"a\":\"line 1\\nline 2\"}");
  expect_json("a: |+\n  line\n\nb: 1\n", "{\"a\":\"line\\n\\n\",\"b\":1}");
  expect_json("a: >\n  folded\n  text\n\n  next\n", "{\"a\":\"folded text\\nnext\\n\"}");
  expect_json("a: >-\n  one\n  two\n", "{\"a\":\"one two\"}");
  expect_json("a: |2\n    indented\n  less\n", "{\"a\":\"  indented\\nless\\n\"}");
  /* A plain scalar over several lines folds too. */
  expect_json("a: one\n  two\n  three\n", "{\"a\":\"one two three\"}");
}

/* ---------------------------------------------------------------- keys */

static void test_keys(void **state) {
  (void)state;
  /* Non-string scalar keys become text, as sigs.k8s.io/yaml writes them. */
  expect_json("1: a\n0x10: b\nyes: c\n1.5: d\n1e6: e\n",
              "{\"1\":\"a\",\"16\":\"b\",\"true\":\"c\","
              "\"1.5\":\"d\",\"1e+06\":\"e\"}");
  expect_json("'yes': a\n\"1\": b\n", "{\"yes\":\"a\",\"1\":\"b\"}");
  expect_json("? explicit\n: value\n", "{\"explicit\":\"value\"}");
  expect_error("~: a\n", EINVAL,
               "1:1: a mapping key cannot be null (~, null or empty); quote it for a string");
  expect_error("null: a\n", EINVAL,
               "1:1: a mapping key cannot be null (~, null or empty); quote it for a string");
  /* YAML 1.1 reads the keys y, n, on and off as booleans too: kubectl turns
   * `y: 1` into {"true": 1}, and so do we (quote them to keep them). */
  expect_json("x: 1\ny: 2\nn: 3\n'on': 4\n", "{\"x\":1,\"true\":2,\"false\":3,\"on\":4}");
  expect_error("? [a, b]\n: c\n", EINVAL, "1:3: a mapping key must be a string, not a sequence");
  expect_error("{a: 1}: c\n", EINVAL, "1:1: a mapping key must be a string, not a mapping");
  expect_error("\"a\\0b\": c\n", EINVAL, "1:1: a mapping key cannot contain a NUL character");
  /* Duplicates, also after resolution, name both lines. */
  expect_error("metadata:\n  name: a\n  labels: {}\n  name: b\n", EINVAL,
               "4:3: duplicate key \"name\" (first at line 2)");
  expect_error("a: 1\nyes: 1\n\"true\": 2\n", EINVAL,
               "3:1: duplicate key \"true\" (first at line 2)");
  expect_error("{a: 1, a: 2}\n", EINVAL, "1:8: duplicate key \"a\" (first at line 1)");
}

/* ---------------------------------------------------------------- collections */

static void test_collections(void **state) {
  (void)state;
  /* Block style, lists indented or not under their key. */
  expect_json("a:\n  - 1\n  - 2\nb:\n- p: 1\n  q: 2\n- z\n",
              "{\"a\":[1,2],\"b\":[{\"p\":1,\"q\":2},\"z\"]}");
  /* Flow style, nested, with a trailing comma and plain scalars with colons. */
  expect_json("{a: [1, two, {b: c}], d: {}, e: [], f: [a:b, 'x'],}\n",
              "{\"a\":[1,\"two\",{\"b\":\"c\"}],\"d\":{},\"e\":[],\"f\":[\"a:b\",\"x\"]}");
  /* A compact nested sequence. */
  expect_json("- - a\n  - b\n- - c\n", "[[\"a\",\"b\"],[\"c\"]]");
  /* Comments anywhere. */
  expect_json("# head\na: 1 # trailing\n# between\nb: # after key\n  - x # item\n",
              "{\"a\":1,\"b\":[\"x\"]}");
  /* A top-level scalar is a document too. */
  expect_json("hello\n", "\"hello\"");
}

static void test_anchors_and_merges(void **state) {
  (void)state;
  expect_json("a: &x 1\nb: *x\nc: &l [1, 2]\nd: *l\n", "{\"a\":1,\"b\":1,\"c\":[1,2],\"d\":[1,2]}");
  /* Merge keys: explicit keys win wherever they are, then earlier sources. */
  expect_json(
      "base: &b {x: 1, w: 2}\nmore: &m {w: 3, z: 4}\n"
      "c:\n  x: 0\n  <<: [*b, *m]\n",
      "{\"base\":{\"x\":1,\"w\":2},\"more\":{\"w\":3,\"z\":4},\"c\":{\"x\":0,\"w\":2,\"z\":4}}");
  expect_json("c:\n  <<: {a: 1}\n  b: 2\n", "{\"c\":{\"b\":2,\"a\":1}}");
  /* A quoted "<<" is an ordinary key. */
  expect_json("\"<<\": 1\n", "{\"<<\":1}");
  /* An anchor may be redefined; an alias takes the latest. */
  expect_json("a: &x 1\nb: &x 2\nc: *x\n", "{\"a\":1,\"b\":2,\"c\":2}");
  /* An alias as a key. */
  expect_json("k: &k name\n*k : v\n", "{\"k\":\"name\",\"name\":\"v\"}");
  expect_error("a: *nope\n", EINVAL,
               "1:4: unknown anchor \"nope\" (an alias must follow its anchor)");
  /* A collection cannot contain itself: its anchor exists only once it ends. */
  expect_error("a: &x [1, *x]\n", EINVAL,
               "1:11: unknown anchor \"x\" (an alias must follow its anchor)");
  /* Anchors do not cross documents. */
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  const char *two = "a: &x 1\n---\nb: *x\n";
  assert_int_equal(manifest_yaml_parse(two, strlen(two), NULL, &docs, &n, &err), -EINVAL);
  assert_string_equal(err.message, "3:4: unknown anchor \"x\" (an alias must follow its anchor)");
  expect_error("a: &x 1\nb:\n  <<: *x\n", EINVAL,
               "3:7: the value of a merge key (<<) must be a mapping or a list of mappings");
}

static void test_billion_laughs(void **state) {
  (void)state;
  /* 9^9 strings from 9 lines: refused once the expansion passes the limit,
   * without building it (the test would run out of memory otherwise). */
  const char *lol =
      "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
      "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
      "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
      "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
      "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
      "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
      "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
      "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(manifest_yaml_parse(lol, strlen(lol), NULL, &docs, &n, &err), -E2BIG);
  assert_non_null(strstr(err.message, "the stream expands to more than 1048576 values"));
  /* A smaller limit of the caller's. */
  manifest_limits lim = {.max_nodes = 100};
  const char *small =
      "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n";
  assert_int_equal(manifest_yaml_parse(small, strlen(small), &lim, &docs, &n, &err), -E2BIG);
  assert_string_equal(err.message,
                      "2:33: the stream expands to more than 100 values (aliases are counted as "
                      "what they expand to)");
  lim.max_nodes = 200;
  assert_int_equal(manifest_yaml_parse(small, strlen(small), &lim, &docs, &n, &err), 0);
  assert_int_equal(json_array_size(json_object_get(docs[0].root, "b")), 9);
  manifest_docs_free(docs, n);
  /* Deep nesting. */
  char deep[2100];
  memset(deep, '[', 1000);
  memset(deep + 1000, ']', 1000);
  deep[2000] = 0;
  assert_int_equal(manifest_yaml_parse(deep, strlen(deep), NULL, &docs, &n, &err), -E2BIG);
  assert_string_equal(err.message, "1:257: nesting deeper than 256 levels");
}

/* ---------------------------------------------------------------- streams */

static void test_documents(void **state) {
  (void)state;
  const char *text =
      "# leading comment\n"
      "a: 1\n"
      "---\n"
      "---\n"
      "# only a comment\n"
      "---\n"
      "b: 2\n"
      "...\n"
      "---\n"
      "- c\n";
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(manifest_yaml_parse(text, strlen(text), NULL, &docs, &n, &err), 0);
  assert_int_equal(n, 5);
  assert_int_equal(docs[0].line, 2);
  assert_true(json_is_object(docs[0].root));
  assert_true(json_is_null(docs[1].root));
  assert_true(json_is_null(docs[2].root));
  assert_int_equal(docs[3].line, 7);
  assert_int_equal(json_integer_value(json_object_get(docs[3].root, "b")), 2);
  assert_int_equal(docs[4].line, 10);
  assert_true(json_is_array(docs[4].root));
  manifest_docs_free(docs, n);
  /* Nothing but comments and blank lines: no document at all. */
  const char *none = "# nothing\n\n   # here\n";
  assert_int_equal(manifest_yaml_parse(none, strlen(none), NULL, &docs, &n, &err), 0);
  assert_int_equal(n, 0);
  assert_null(docs);
  assert_int_equal(manifest_yaml_parse("", 0, NULL, &docs, &n, &err), 0);
  assert_int_equal(n, 0);
}

static void test_syntax_errors(void **state) {
  (void)state;
  /* A tab where indentation is expected. */
  expect_error("metadata:\n\tname: x\n", EINVAL,
               "2:1: found character that cannot start any token (a tab: YAML indents with "
               "spaces only) (while scanning for the next token at line 2)");
  /* Bad indentation: a key indented too far, and too little in a list item. */
  expect_error("metadata:\n  name: x\n   labels: y\n", EINVAL,
               "3:10: mapping values are not allowed in this context");
  expect_error("spec:\n  containers:\n  - name: a\n   image: b\n", EINVAL,
               "4:4: did not find expected key (while parsing a block mapping at line 2)");
  expect_error("a: [1, 2\nb: 3\n", EINVAL,
               "2:2: did not find expected ',' or ']' (while parsing a flow sequence at line 1)");
  expect_error("a: 'unterminated\n", EINVAL,
               "2:1: found unexpected end of stream (while scanning a quoted scalar at line 1)");
  /* Invalid UTF-8 is refused by libyaml's reader, with where. */
  expect_error("a: 1\nb: \xff\n", EINVAL, "2:4: invalid leading UTF-8 octet");
}

/* ---------------------------------------------------------------- JSON */

static void test_json_input(void **state) {
  (void)state;
  const char *text =
      "\xEF\xBB\xBF{\"a\": {\"b.c\": [1, {\"d\": \"\\ud83d\\ude00\"}]}}\n"
      "  {\"e\":\n   true}  [\"f\"]";
  manifest_doc *docs;
  size_t n;
  keel_error err = {0};
  assert_int_equal(manifest_json_parse(text, strlen(text), NULL, &docs, &n, &err), 0);
  assert_int_equal(n, 3);
  assert_string_equal(
      json_string_value(json_object_get(
          json_array_get(json_object_get(json_object_get(docs[0].root, "a"), "b.c"), 1), "d")),
      "\xF0\x9F\x98\x80");
  int line, col;
  assert_true(manifest_pos_find(docs[0].pos, "a[\"b.c\"][1].d: x", &line, &col) > 0);
  assert_int_equal(line, 1);
  assert_int_equal(col, 20);
  assert_int_equal(docs[1].line, 2);
  assert_int_equal(docs[1].column, 3);
  manifest_pos_find(docs[1].pos, "e", &line, &col);
  assert_int_equal(line, 2);
  assert_int_equal(col, 4);
  assert_int_equal(docs[2].line, 3);
  assert_int_equal(docs[2].column, 11);
  manifest_docs_free(docs, n);

  const char *bad = "{\n  \"a\": 1,\n  \"b\": }\n";
  assert_int_equal(manifest_json_parse(bad, strlen(bad), NULL, &docs, &n, &err), -EINVAL);
  assert_string_equal(err.message, "3:8: invalid JSON: unexpected token near '}'");
  const char *dup = "{\"a\": 1, \"a\": 2}";
  assert_int_equal(manifest_json_parse(dup, strlen(dup), NULL, &docs, &n, &err), -EINVAL);
  assert_non_null(strstr(err.message, "duplicate object key"));

  /* manifest_text_parse: JSON first for { and [, YAML's flow style otherwise. */
  const char *flow = "{apiVersion: v1, kind: Namespace}\n";
  assert_int_equal(manifest_text_parse(flow, strlen(flow), NULL, &docs, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_string_equal(json_string_value(json_object_get(docs[0].root, "kind")), "Namespace");
  manifest_docs_free(docs, n);
  /* Neither: the JSON error is the one reported. */
  const char *neither = "{\"a\": [1, }\n";
  assert_int_equal(manifest_text_parse(neither, strlen(neither), NULL, &docs, &n, &err), -EINVAL);
  assert_string_equal(err.message, "1:11: invalid JSON: unexpected token near '}'");
  /* Duplicate keys in JSON: YAML's message names both lines. */
  const char *jdup = "{\n\"a\": 1,\n\"a\": 2\n}\n";
  assert_int_equal(manifest_text_parse(jdup, strlen(jdup), NULL, &docs, &n, &err), -EINVAL);
  assert_string_equal(err.message, "3:1: duplicate key \"a\" (first at line 2)");
}

/* ---------------------------------------------------------------- positions */

static void test_positions(void **state) {
  (void)state;
  const char *text =
      "apiVersion: v1\n"                                        /* 1 */
      "kind: Pod\n"                                             /* 2 */
      "metadata:\n"                                             /* 3 */
      "  labels:\n"                                             /* 4 */
      "    app.kubernetes.io/name: web\n"                       /* 5 */
      "    \"we\\\"ird\": x\n"                                  /* 6 */
      "spec:\n"                                                 /* 7 */
      "  containers:\n"                                         /* 8 */
      "  - name: a\n"                                           /* 9 */
      "    image: busybox\n"                                    /* 10 */
      "  - name: b\n"                                           /* 11 */
      "    imagePullPolicyy: Always\n"                          /* 12 */
      "    ports: [{containerPort: 80}, {containerPort: 81}]\n" /* 13 */
      "status:\n"                                               /* 14 */
      "  pod_ip: 5\n";                                          /* 15 */
  manifest_doc *d = parse1(text);
  static const struct {
    const char *path;
    int line, col;
    size_t matched; /* (size_t)-1: all of the path before ": " */
  } cases[] = {
      {"kind", 2, 1, 4},
      {"spec.containers[1].imagePullPolicyy: unknown field \"imagePullPolicyy\"", 12, 5, 35},
      {"spec.containers[0].image", 10, 5, 24},
      {"spec.containers[1]", 11, 5, 18},
      {"spec.containers[1].ports[1].containerPort", 13, 35, 41},
      {"metadata.labels[\"app.kubernetes.io/name\"]: expected", 5, 5, 41},
      {"metadata.labels[\"we\\\"ird\"]", 6, 5, 26},
      /* The proto name in the text, the JSON name in the path. */
      {"status.podIP: expected a string, got number 5", 15, 3, 12},
      /* Paths that go further than the document: the deepest part that exists. */
      {"spec.containers[7].image", 8, 3, 15},
      {"spec.nope.x", 7, 1, 4},
      {"", 1, 1, 0},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    int line = -1, col = -1;
    size_t m = manifest_pos_find(d->pos, cases[i].path, &line, &col);
    if (line != cases[i].line || col != cases[i].col || m != cases[i].matched)
      fail_msg("%s: got %d:%d (%zu), want %d:%d (%zu)", cases[i].path, line, col, m, cases[i].line,
               cases[i].col, cases[i].matched);
  }
  assert_true(manifest_pos_plain_nonstring(d->pos, "status.podIP: expected a string"));
  assert_false(manifest_pos_plain_nonstring(d->pos, "kind"));
  assert_false(manifest_pos_plain_nonstring(d->pos, "status"));
  manifest_docs_free(d, 1);

  /* Long keys are cut in protojson's messages; the cut form still finds them. */
  char longkey[200], path[300];
  memset(longkey, 'k', 100);
  longkey[100] = 0;
  char doc[400];
  snprintf(doc, sizeof(doc), "a:\n  b: 1\n  %s:\n    c: 2\n", longkey);
  d = parse1(doc);
  snprintf(path, sizeof(path), "a.%.64s....c: unknown field", longkey);
  int line;
  manifest_pos_find(d->pos, path, &line, NULL);
  assert_int_equal(line, 4);
  manifest_docs_free(d, 1);

  /* An alias's value keeps the anchor's lines; its key, the alias's. */
  d = parse1("base: &b\n  x: 1\n  w: 2\nother:\n  z: *b\n");
  manifest_pos_find(d->pos, "other.z", &line, NULL);
  assert_int_equal(line, 5);
  manifest_pos_find(d->pos, "other.z.w", &line, NULL);
  assert_int_equal(line, 3);
  manifest_docs_free(d, 1);
}

/* ---------------------------------------------------------------- writing */

static char *to_yaml(const char *json, unsigned flags) {
  json_error_t je;
  json_t *v = json_loads(json, JSON_DECODE_ANY, &je);
  if (!v) fail_msg("bad JSON in the test: %s", je.text);
  keel_error err = {0};
  char *y = manifest_json_to_yaml(v, flags, &err);
  if (!y) fail_msg("to_yaml: %s", err.message);
  json_decref(v);
  return y;
}

static void expect_yaml(const char *json, const char *want) {
  char *got = to_yaml(json, 0);
  if (strcmp(got, want) != 0) fail_msg("JSON %s\ngot:\n%s\nwant:\n%s", json, got, want);
  free(got);
}

static void test_writer_layout(void **state) {
  (void)state;
  expect_yaml(
      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"x\","
      "\"labels\":{\"app\":\"web\"}},\"spec\":{\"containers\":[{\"name\":\"a\","
      "\"args\":[\"-c\",\"echo hi\"],\"ports\":[{\"containerPort\":80}],"
      "\"resources\":{}}],\"tolerations\":[]},\"status\":{}}",
      "apiVersion: v1\n"
      "kind: Pod\n"
      "metadata:\n"
      "  name: x\n"
      "  labels:\n"
      "    app: web\n"
      "spec:\n"
      "  containers:\n"
      "  - name: a\n"
      "    args:\n"
      "    - -c\n"
      "    - echo hi\n"
      "    ports:\n"
      "    - containerPort: 80\n"
      "    resources: {}\n"
      "  tolerations: []\n"
      "status: {}\n");
  expect_yaml(
      "[[1, 2], {\"a\": null}, true, 1.5, 1e21, 100000.0, 1000000.0, 0.00001, -0.0]",
      "- - 1\n  - 2\n- a: null\n- true\n- 1.5\n- 1e+21\n- 100000\n- 1e+06\n- 1e-05\n- -0\n");
  expect_yaml("\"top\"", "top\n");
  /* Byte order with MANIFEST_SORT_KEYS, as kubectl's -o yaml. */
  char *sorted = to_yaml("{\"b\": 1, \"a\": {\"z\": 1, \"x\": 2}}", MANIFEST_SORT_KEYS);
  assert_string_equal(sorted, "a:\n  x: 2\n  z: 1\nb: 1\n");
  free(sorted);
  /* A stream. */
  json_t *vs[3] = {json_pack("{s:i}", "a", 1), json_pack("[s]", "x"), json_null()};
  keel_error err = {0};
  char *s = manifest_json_to_yaml_stream((const json_t *const *)vs, 3, 0, &err);
  assert_string_equal(s, "a: 1\n---\n- x\n--- null\n");
  free(s);
  s = manifest_json_to_yaml_stream(NULL, 0, 0, &err);
  assert_string_equal(s, "");
  free(s);
  for (int i = 0; i < 3; i++) json_decref(vs[i]);
}

static void test_writer_quoting(void **state) {
  (void)state;
  /* What kubectl writes: double quotes where YAML would read another type,
   * single quotes where plain style cannot be, | for several lines. */
  static const struct {
    const char *s, *yaml;
  } cases[] = {
      {"web", "web"},
      {"nginx:1.14.2", "nginx:1.14.2"},
      {"500m", "500m"},
      {"true", "\"true\""},
      {"yes", "\"yes\""},
      {"Off", "\"Off\""},
      {"y", "\"y\""},
      {"1", "\"1\""},
      {"0644", "\"0644\""},
      {"1e3", "\"1e3\""},
      {".5", "\".5\""},
      {"", "\"\""},
      {"~", "\"~\""},
      {"null", "\"null\""},
      {"2024-05-01T10:00:00Z", "\"2024-05-01T10:00:00Z\""},
      {"12:30", "\"12:30\""},
      {"<<", "\"<<\""},
      {"a: b", "'a: b'"},
      {"- x", "'- x'"},
      {"*star", "'*star'"},
      {"&amp", "'&amp'"},
      {"#hash", "'#hash'"},
      {"x #y", "'x #y'"},
      {" lead", "' lead'"},
      {"trail ", "'trail '"},
      {"{a}", "'{a}'"},
      {"@at", "'@at'"},
      {"%pct", "'%pct'"},
      {"it's", "it's"},
      {"tab\there", "\"tab\\there\""},
      {"bell\a", "\"bell\\a\""},
      {"é", "é"},
      {"two\nlines", "|-\n  two\n  lines"},
      {"two\nlines\n", "|\n  two\n  lines"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    json_t *v = json_pack("{s:s}", "k", cases[i].s);
    keel_error err = {0};
    char *got = manifest_json_to_yaml(v, 0, &err);
    assert_non_null(got);
    char want[256];
    snprintf(want, sizeof(want), "k: %s\n", cases[i].yaml);
    if (strcmp(got, want) != 0) fail_msg("\"%s\":\ngot:\n%s\nwant:\n%s", cases[i].s, got, want);
    /* And it reads back as the same string. */
    manifest_doc *d = parse1(got);
    if (!json_equal(d->root, v)) fail_msg("\"%s\" did not read back from:\n%s", cases[i].s, got);
    manifest_docs_free(d, 1);
    free(got);
    json_decref(v);
  }
  /* Keys are quoted the same way. */
  expect_yaml("{\"true\": 1, \"1\": 2, \"a: b\": 3, \"ok\": 4}",
              "\"true\": 1\n\"1\": 2\n'a: b': 3\nok: 4\n");
}

/* Everything the parser reads, the writer writes back to the same value. */
static void test_writer_reads_back(void **state) {
  (void)state;
  static const char *const texts[] = {
      "a: [1, -2, 3.25, 1e-7, 12345678901234567890, yes, ~, 'yes', \"\", 0x1F]\n",
      "s: \"  spaces  \\n and\\ttabs\\r\\n\"\nt: |+\n  keep\n\n\nu: \"\\x01\\x7f\"\n",
      "long: this is a long plain scalar that goes on and on past the eighty columns the writer "
      "folds at, with words\n",
      "nested: [[[[{a: [{b: {c: [1]}}]}]]]]\n",
      "k: \"line\\n  indented second\\n\"\n",
      "\"multi\\nline key\": 1\n",
  };
  for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
    manifest_doc *d = parse1(texts[i]);
    keel_error err = {0};
    char *y = manifest_json_to_yaml(d->root, 0, &err);
    assert_non_null(y);
    manifest_doc *d2 = parse1(y);
    if (!tu_json_same(d->root, d2->root)) fail_msg("input:\n%s\nwritten:\n%s", texts[i], y);
    manifest_docs_free(d2, 1);
    manifest_docs_free(d, 1);
    free(y);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_plain_scalars),  cmocka_unit_test(test_quoted_and_tagged_scalars),
      cmocka_unit_test(test_block_scalars),  cmocka_unit_test(test_keys),
      cmocka_unit_test(test_collections),    cmocka_unit_test(test_anchors_and_merges),
      cmocka_unit_test(test_billion_laughs), cmocka_unit_test(test_documents),
      cmocka_unit_test(test_syntax_errors),  cmocka_unit_test(test_json_input),
      cmocka_unit_test(test_positions),      cmocka_unit_test(test_writer_layout),
      cmocka_unit_test(test_writer_quoting), cmocka_unit_test(test_writer_reads_back),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
