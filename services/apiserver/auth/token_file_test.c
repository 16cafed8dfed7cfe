/* Tests of the static token file: parsing, line-numbered errors, duplicates,
 * constant-time lookup. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/apiserver/auth/token_file.h"

static auth_token_table *parse(const char *text, keel_error *err) {
  return auth_token_table_parse("tokens.csv", text, strlen(text), err);
}

static const auth_token_entry *find(const auth_token_table *t, const char *token) {
  return auth_token_table_find(t, token, strlen(token), NULL);
}

static void assert_groups(const auth_token_entry *e, size_t n, ...) {
  assert_non_null(e);
  assert_int_equal(e->ngroups, n);
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) assert_string_equal(e->groups[i], va_arg(ap, const char *));
  va_end(ap);
}

static void test_valid_lines(void **state) {
  (void)state;
  keel_error err = {0};
  auth_token_table *t = parse(
      "# Keel users\n"
      "\n"
      "   \t\n"
      "admintoken,admin,uid-1,\"system:masters\"\n"
      "  # an indented comment\n"
      "nodetok, system:node:n1 , uid-2 , \"system:nodes, keel:viewers\"\n"
      "plain,alice,uid-3\n"
      "crlf,bob,uid-4,\"keel:viewers\"\r\n"
      "trailing,carol,,\n"
      "\"quoted\",\"dave \"\"the\"\" user\",uid-5,\"a,,b , \"\n"
      "unquotedgroup,erin,uid-6,keel:viewers\n"
      "last,frank,uid-7",
      &err);
  if (!t) fail_msg("%s", err.message);
  assert_int_equal(auth_token_table_count(t), 8);

  const auth_token_entry *e = find(t, "admintoken");
  assert_non_null(e);
  assert_string_equal(e->user, "admin");
  assert_string_equal(e->uid, "uid-1");
  assert_int_equal(e->line, 4);
  assert_groups(e, 1, "system:masters");

  e = find(t, "nodetok");
  assert_non_null(e);
  assert_string_equal(e->user, "system:node:n1");
  assert_string_equal(e->uid, "uid-2");
  assert_groups(e, 2, "system:nodes", "keel:viewers");

  e = find(t, "plain");
  assert_non_null(e);
  assert_string_equal(e->user, "alice");
  assert_groups(e, 0);

  e = find(t, "crlf");
  assert_non_null(e);
  assert_groups(e, 1, "keel:viewers");

  e = find(t, "trailing");
  assert_non_null(e);
  assert_string_equal(e->user, "carol");
  assert_string_equal(e->uid, "");
  assert_groups(e, 0);

  e = find(t, "quoted");
  assert_non_null(e);
  assert_string_equal(e->user, "dave \"the\" user");
  assert_groups(e, 2, "a", "b");

  assert_groups(find(t, "unquotedgroup"), 1, "keel:viewers");
  e = find(t, "last");
  assert_non_null(e);
  assert_int_equal(e->line, 12);
  assert_string_equal(auth_token_table_entry(t, 7)->user, "frank");
  assert_null(auth_token_table_entry(t, 8));

  auth_token_table_free(t);
}

static void test_empty_file(void **state) {
  (void)state;
  keel_error err = {0};
  auth_token_table *t = parse("", &err);
  assert_non_null(t);
  assert_int_equal(auth_token_table_count(t), 0);
  size_t compared = 99;
  assert_null(auth_token_table_find(t, "x", 1, &compared));
  assert_int_equal(compared, 0);
  auth_token_table_free(t);
  t = parse("# nothing here\n\n", &err);
  assert_non_null(t);
  assert_int_equal(auth_token_table_count(t), 0);
  auth_token_table_free(t);
}

/* Each malformed file is refused with exactly this message, which never
 * contains the secret. */
static void expect_error(const char *text, const char *message) {
  keel_error err = {0};
  auth_token_table *t = parse(text, &err);
  if (t) {
    auth_token_table_free(t);
    fail_msg("accepted: %s", text);
  }
  assert_int_equal(err.code, EINVAL);
  assert_string_equal(err.message, message);
  assert_null(strstr(err.message, "s3cret"));
}

static void test_malformed_lines(void **state) {
  (void)state;
  expect_error("ok,u,1\ns3cret,user\n",
               "tokens.csv:2: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found 2");
  expect_error("# c\n\ns3cret\n",
               "tokens.csv:3: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found 1");
  expect_error("s3cret,u,1,g1,g2\n",
               "tokens.csv:1: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found 5 "
               "(quote the groups column when it has several groups)");
  expect_error("a,u,1\n,user,1\n", "tokens.csv:2: empty token");
  expect_error("\"\",user,1\n", "tokens.csv:1: empty token");
  expect_error("s3cret,,1\n", "tokens.csv:1: empty user name");
  expect_error("s3cret,  \"\" ,1\n", "tokens.csv:1: empty user name");
  expect_error("\"s3cret x\",u,1\n",
               "tokens.csv:1: token contains blanks, control or non-ASCII characters");
  expect_error("\"s3cret\xc3\xa9\",u,1\n",
               "tokens.csv:1: token contains blanks, control or non-ASCII characters");
  expect_error("s3cret,u\x01,1\n", "tokens.csv:1: user name contains control characters");
  expect_error("s3cret,u,1\x1b\n", "tokens.csv:1: uid contains control characters");
  expect_error("s3cret,u,1,\"g\x7f\"\n", "tokens.csv:1: groups contain control characters");
  expect_error("x,y,z\ns3cret,u\"ser,1\n",
               "tokens.csv:2: column 2: bare \" in an unquoted field (quote the whole field)");
  expect_error("s3cret,u,1,\"g1,g2\n", "tokens.csv:1: column 4: unterminated quoted field");
  expect_error("s3cret,\"u\"x,1\n", "tokens.csv:1: column 2: text after the closing quote");
  /* A quoted field never spans lines. */
  expect_error("s3cret,u,1,\"g1,\ng2\"\n", "tokens.csv:1: column 4: unterminated quoted field");

  keel_error err = {0};
  const char nul[] = "a,b,c\ns3cret,u\0x,1\n";
  assert_null(auth_token_table_parse("tokens.csv", nul, sizeof(nul) - 1, &err));
  assert_string_equal(err.message, "tokens.csv:2: NUL byte");

  /* The longest token is accepted, one byte more is not. */
  char *line = malloc(AUTH_TOKEN_MAX + 16);
  memset(line, 'k', AUTH_TOKEN_MAX);
  strcpy(line + AUTH_TOKEN_MAX, ",u,1\n");
  auth_token_table *t = parse(line, &err);
  assert_non_null(t);
  assert_non_null(auth_token_table_find(t, line, AUTH_TOKEN_MAX, NULL));
  auth_token_table_free(t);
  memset(line, 'k', AUTH_TOKEN_MAX + 1);
  strcpy(line + AUTH_TOKEN_MAX + 1, ",u,1\n");
  assert_null(parse(line, &err));
  assert_string_equal(err.message, "tokens.csv:1: token longer than 4096 bytes");
  free(line);
}

static void test_duplicates(void **state) {
  (void)state;
  expect_error("s3cret,a,1\nother,b,2\n\n# c\ns3cret,c,3\n",
               "tokens.csv:5: duplicate token (already on line 1)");
  /* Quoting does not make a different token. */
  expect_error("x,a,1\ns3cret,a,1\ny,b,2\n\"s3cret\",b,2\n",
               "tokens.csv:4: duplicate token (already on line 2)");
  /* Several duplicates: the first one a reader meets is reported. */
  expect_error("s3cretB,a,1\ns3cretA,a,1\ns3cretA,b,2\ns3cretB,c,3\ns3cretA,d,4\n",
               "tokens.csv:3: duplicate token (already on line 2)");
  expect_error("s3cretA,a,1\ns3cretB,a,1\ns3cretC,b,2\ns3cretB,c,3\ns3cretA,d,4\n",
               "tokens.csv:4: duplicate token (already on line 2)");
}

static void test_lookup_constant_time(void **state) {
  (void)state;
  keel_error err = {0};
  auth_token_table *t = parse("first,a,1\nsecond,b,2\nthird,c,3\nfourth,d,4\nfifth,e,5\n", &err);
  assert_non_null(t);
  /* Whether the token is first, last, a near miss or absent, every entry's
   * digest is compared: nothing stops the scan early. */
  const char *probes[] = {"first", "fifth", "third", "firs", "firstt", "Fifth", "", "nope"};
  const char *want[] = {"a", "e", "c", NULL, NULL, NULL, NULL, NULL};
  for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
    size_t compared = 0;
    const auth_token_entry *e = auth_token_table_find(t, probes[i], strlen(probes[i]), &compared);
    assert_int_equal(compared, 5);
    if (want[i]) {
      assert_non_null(e);
      assert_string_equal(e->user, want[i]);
    } else {
      assert_null(e);
    }
  }
  /* A presented token is length-delimited: bytes after len do not count. */
  assert_non_null(auth_token_table_find(t, "secondXYZ", 6, NULL));
  assert_null(auth_token_table_find(t, "secon", 5, NULL));
  auth_token_table_free(t);

  assert_true(auth_ct_equal("abcdef", "abcdef", 6));
  assert_false(auth_ct_equal("abcdef", "abcdeg", 6));
  assert_false(auth_ct_equal("xbcdef", "abcdef", 6));
  assert_true(auth_ct_equal("", "", 0));
}

static void test_load_file(void **state) {
  (void)state;
  const char *tmp = getenv("TEST_TMPDIR");
  char path[4096];
  snprintf(path, sizeof(path), "%s/tokens.csv", tmp ? tmp : "/tmp");
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs("# users\ntok1,alice,1,\"keel:viewers\"\ntok2,bob,2\n", f);
  fclose(f);
  keel_error err = {0};
  auth_token_table *t = auth_token_table_load(path, &err);
  if (!t) fail_msg("%s", err.message);
  assert_int_equal(auth_token_table_count(t), 2);
  assert_string_equal(find(t, "tok2")->user, "bob");
  auth_token_table_free(t);

  f = fopen(path, "w");
  fputs("tok1,alice,1\nbroken\n", f);
  fclose(f);
  assert_null(auth_token_table_load(path, &err));
  char want[4200];
  snprintf(want, sizeof(want),
           "%s:2: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found 1", path);
  assert_string_equal(err.message, want);
  unlink(path);

  assert_null(auth_token_table_load(path, &err));
  assert_int_equal(err.code, ENOENT);
  assert_non_null(strstr(err.message, "open token file "));
  assert_null(auth_token_table_load(tmp ? tmp : "/tmp", &err));
  assert_int_equal(err.code, EINVAL);
  assert_non_null(strstr(err.message, "not a regular file"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_valid_lines),     cmocka_unit_test(test_empty_file),
      cmocka_unit_test(test_malformed_lines), cmocka_unit_test(test_duplicates),
      cmocka_unit_test(test_lookup_constant_time), cmocka_unit_test(test_load_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
