/* common/client/config_test.c — the config file: contexts, endpoints and
 * schemes, TLS and token material, relative paths, errors that name the key. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/client/config.h"

static const char *FULL =
    "{\"apiVersion\": \"v1\", \"kind\": \"Config\", \"preferences\": {},\n"
    " \"current-context\": \"prod\",\n"
    " \"clusters\": [\n"
    "   {\"name\": \"local\", \"cluster\": {\"endpoints\": [\"127.0.0.1:6443\", \"unix:/run/keel/api.sock\"]}},\n"
    "   {\"name\": \"prod\", \"cluster\": {\"server\": \"https://api.example:6443/\",\n"
    "      \"endpoints\": [\"https://api2.example:6443\"],\n"
    "      \"certificate-authority\": \"pki/ca.pem\", \"tls-server-name\": \"keel\"}}],\n"
    " \"users\": [\n"
    "   {\"name\": \"admin\", \"user\": {\"client-certificate\": \"pki/admin.pem\", \"client-key\": \"/abs/admin-key.pem\"}},\n"
    "   {\"name\": \"dev\", \"user\": {\"token\": \"abc123\"}}],\n"
    " \"contexts\": [\n"
    "   {\"name\": \"prod\", \"context\": {\"cluster\": \"prod\", \"user\": \"admin\", \"namespace\": \"web\"}},\n"
    "   {\"name\": \"dev\", \"context\": {\"cluster\": \"local\", \"user\": \"dev\"}}]}\n";

static void test_current_context_tls(void **state) {
  (void)state;
  client_config c;
  keel_error err = {0};
  if (client_config_parse(FULL, strlen(FULL), "/home/me/.keel", NULL, &c, &err) < 0) fail_msg("%s", err.message);
  assert_string_equal(c.context, "prod");
  assert_string_equal(c.cluster, "prod");
  assert_string_equal(c.user, "admin");
  assert_string_equal(c.namespace_, "web");
  assert_int_equal(c.nendpoints, 2);
  assert_string_equal(c.endpoints[0], "api2.example:6443"); /* endpoints first, then server */
  assert_string_equal(c.endpoints[1], "api.example:6443");
  assert_true(c.tls);
  assert_string_equal(c.ca_file, "/home/me/.keel/pki/ca.pem");
  assert_string_equal(c.server_name, "keel");
  assert_string_equal(c.cert_file, "/home/me/.keel/pki/admin.pem");
  assert_string_equal(c.key_file, "/abs/admin-key.pem");
  assert_null(c.token);
  client_options o;
  rpc_tls_config tls;
  client_config_options(&c, &o, &tls);
  assert_int_equal(o.nendpoints, 2);
  assert_ptr_equal(o.tls, &tls);
  assert_string_equal(tls.ca_file, c.ca_file);
  assert_string_equal(tls.server_name_override, "keel");
  assert_null(o.token);
  client_config_clear(&c);
}

static void test_named_context_token(void **state) {
  (void)state;
  client_config c;
  keel_error err = {0};
  if (client_config_parse(FULL, strlen(FULL), NULL, "dev", &c, &err) < 0) fail_msg("%s", err.message);
  assert_string_equal(c.context, "dev");
  assert_string_equal(c.namespace_, "default");
  assert_int_equal(c.nendpoints, 2);
  assert_string_equal(c.endpoints[0], "127.0.0.1:6443");
  assert_string_equal(c.endpoints[1], "unix:/run/keel/api.sock");
  assert_false(c.tls);
  assert_string_equal(c.token, "abc123");
  client_options o;
  rpc_tls_config tls;
  client_config_options(&c, &o, &tls);
  assert_null(o.tls);
  assert_string_equal(o.token, "abc123");
  client_config_clear(&c);
}

static void test_token_file_relative(void **state) {
  (void)state;
  char dir[] = "/tmp/keel-config-test.XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256], tok[256];
  snprintf(tok, sizeof tok, "%s/tok", dir);
  snprintf(path, sizeof path, "%s/config", dir);
  FILE *f = fopen(tok, "w");
  fputs("  t0ken-from-file\n\n", f);
  fclose(f);
  f = fopen(path, "w");
  fputs("{\"current-context\": \"x\", \"clusters\": [{\"name\": \"c\", \"cluster\": {\"server\": \"http://10.0.0.1:80\"}}],"
        " \"users\": [{\"name\": \"u\", \"user\": {\"token-file\": \"tok\"}}],"
        " \"contexts\": [{\"name\": \"x\", \"context\": {\"cluster\": \"c\", \"user\": \"u\"}}]}",
        f);
  fclose(f);
  client_config c;
  keel_error err = {0};
  if (client_config_load(path, NULL, &c, &err) < 0) fail_msg("%s", err.message);
  assert_string_equal(c.token, "t0ken-from-file");
  assert_string_equal(c.endpoints[0], "10.0.0.1:80");
  assert_false(c.tls);
  client_config_clear(&c);
  unlink(tok);
  /* A missing token file names it. */
  assert_true(client_config_load(path, NULL, &c, &err) < 0);
  assert_non_null(strstr(err.message, "tok"));
  assert_non_null(strstr(err.message, path));
  unlink(path);
  rmdir(dir);
  assert_true(client_config_load(path, NULL, &c, &err) < 0);
  assert_non_null(strstr(err.message, "No such file"));
}

static void expect_error(const char *text, const char *context, const char *part) {
  client_config c;
  keel_error err = {0};
  int rc = client_config_parse(text, strlen(text), NULL, context, &c, &err);
  if (rc >= 0) fail_msg("parsed, want an error containing %s", part);
  if (!strstr(err.message, part)) fail_msg("error %s, want it to contain %s", err.message, part);
  /* Nothing leaks on failure and the struct is cleared. */
  assert_null(c.context);
  assert_int_equal(c.nendpoints, 0);
}

static void test_errors(void **state) {
  (void)state;
  expect_error("{", NULL, "line 1");
  expect_error("[]", NULL, "expected a JSON object");
  expect_error("{\"clusters\": []}", NULL, "no current-context");
  expect_error("{\"current-context\": \"a\"}", NULL, "contexts: no entry named \"a\"");
  expect_error("{\"current-context\": \"a\", \"contexts\": [{\"name\": \"a\", \"context\": {\"clustr\": \"c\"}}]}", NULL,
               "contexts[0].context: unknown key \"clustr\"");
  expect_error("{\"current-context\": \"a\", \"contexts\": [{\"name\": \"a\", \"context\": {\"cluster\": \"c\"}}]}", NULL,
               "clusters: no entry named \"c\"");
  const char *base =
      "{\"current-context\": \"a\", \"contexts\": [{\"name\": \"a\", \"context\": {\"cluster\": \"c\", \"user\": \"u\"}}],"
      " \"clusters\": [{\"name\": \"c\", \"cluster\": %s}], \"users\": [{\"name\": \"u\", \"user\": %s}]}";
  char buf[1024];
  snprintf(buf, sizeof buf, base, "{}", "{}");
  expect_error(buf, NULL, "clusters[0].cluster: no endpoints");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"ftp://x:1\"]}", "{}");
  expect_error(buf, NULL, "unknown scheme");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": \"x:1\"}", "{}");
  expect_error(buf, NULL, "clusters[0].cluster.endpoints: expected a list");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"x:1\"]}", "{\"token\": \"a\", \"token-file\": \"b\"}");
  expect_error(buf, NULL, "token and token-file are exclusive");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"x:1\"]}", "{\"client-certificate\": \"a\"}");
  expect_error(buf, NULL, "client-certificate and client-key go together");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"http://x:1\"], \"certificate-authority\": \"ca\"}", "{}");
  expect_error(buf, NULL, "http:// endpoint with TLS");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"x:1\"]}", "{\"password\": \"a\"}");
  expect_error(buf, NULL, "users[0].user: unknown key \"password\"");
  snprintf(buf, sizeof buf, base, "{\"endpoints\": [\"x:1\"]}", "{\"token\": 5}");
  expect_error(buf, NULL, "users[0].user.token: expected a string");
  expect_error("{\"current-context\": \"a\", \"bogus\": 1}", NULL, "config: unknown key \"bogus\"");
  expect_error("{\"a\": 1, \"a\": 2}", NULL, "duplicate");
}

static void test_default_path(void **state) {
  (void)state;
  char buf[512];
  setenv("KEELCONFIG", "/etc/keel/admin.json", 1);
  assert_string_equal(client_config_default_path(buf, sizeof buf), "/etc/keel/admin.json");
  unsetenv("KEELCONFIG");
  setenv("HOME", "/home/me", 1);
  assert_string_equal(client_config_default_path(buf, sizeof buf), "/home/me/.keel/config");
  assert_null(client_config_default_path(buf, 4));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_current_context_tls), cmocka_unit_test(test_named_context_token),
      cmocka_unit_test(test_token_file_relative), cmocka_unit_test(test_errors),
      cmocka_unit_test(test_default_path),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
