/* Tests of authentication: bearer tokens, client certificates (made here with
 * the OpenSSL API), no credentials, anonymous admin mode, reload, and the
 * credential-source path behind auth_authenticate_call. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "services/apiserver/auth/auth.h"

static char token_path[4096];

static void write_tokens(const char *text) {
  FILE *f = fopen(token_path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static const char TOKENS[] =
    "# token,user,uid,groups\n"
    "admin-token-123,alice,uid-alice,\"keel:admins\"\n"
    "viewer-token-456,bob,uid-bob,\"keel:viewers,team-b\"\n"
    "node-token-789,system:node:n2,uid-n2,\"system:nodes\"\n"
    "nogroups-tok,carol,uid-carol\n";

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TEST_TMPDIR");
  snprintf(token_path, sizeof(token_path), "%s/auth_test_tokens.csv", tmp ? tmp : "/tmp");
  write_tokens(TOKENS);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unlink(token_path);
  return 0;
}

static authenticator *create(const char *token_file, bool client_certs, bool anonymous) {
  auth_config cfg = {.token_file = token_file, .client_certs = client_certs, .anonymous_admin = anonymous};
  keel_error err = {0};
  authenticator *a = auth_create(&cfg, &err);
  if (!a) fail_msg("auth_create: %s", err.message);
  return a;
}

static void assert_groups(const auth_identity *id, size_t n, ...) {
  assert_int_equal(id->ngroups, n);
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) assert_string_equal(id->groups[i], va_arg(ap, const char *));
  va_end(ap);
}

/* Authentication must succeed; returns the identity (caller clears). */
static auth_identity expect_ok(const authenticator *a, const char *header, const char *pem) {
  auth_identity id;
  grpc_status_code code = GRPC_STATUS_UNKNOWN;
  keel_error err = {0};
  int rc = auth_authenticate(a, header, pem, &id, &code, &err);
  if (rc != 0) fail_msg("refused (%d): %s", rc, err.message);
  assert_int_equal(code, GRPC_STATUS_OK);
  assert_non_null(id.user);
  assert_non_null(id.uid);
  return id;
}

static void expect_refused(const authenticator *a, const char *header, const char *pem,
                           const char *message) {
  auth_identity id;
  memset(&id, 0x5a, sizeof(id));
  grpc_status_code code = GRPC_STATUS_OK;
  keel_error err = {0};
  assert_int_equal(auth_authenticate(a, header, pem, &id, &code, &err), -EPERM);
  assert_int_equal(code, GRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(err.message, message);
  assert_null(id.user);
  assert_null(id.groups);
  assert_int_equal(id.ngroups, 0);
  /* A token never comes back in a message. */
  if (header && strlen(header) > 7) assert_null(strstr(err.message, header + 7));
}

/* ------------------------------------------------------------ certificates */

/* A self-signed certificate whose subject is the given (field, value) pairs
 * (UTF8String, set raw so that even an empty O or a control character gets in),
 * e.g. "CN", "system:node:n1", "O", "system:nodes". PEM, malloc'ed. */
static char *make_cert(size_t npairs, ...) {
  EVP_PKEY *key = EVP_EC_gen("P-256");
  assert_non_null(key);
  X509 *x = X509_new();
  assert_non_null(x);
  assert_true(X509_set_version(x, 2));
  assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), 42));
  assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
  assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
  assert_true(X509_set_pubkey(x, key));
  X509_NAME *name = X509_get_subject_name(x);
  va_list ap;
  va_start(ap, npairs);
  for (size_t i = 0; i < npairs; i++) {
    const char *field = va_arg(ap, const char *);
    const char *value = va_arg(ap, const char *);
    assert_true(X509_NAME_add_entry_by_txt(name, field, V_ASN1_UTF8STRING, (const unsigned char *)value,
                                           -1, -1, 0));
  }
  va_end(ap);
  assert_true(X509_set_issuer_name(x, name));
  assert_true(X509_sign(x, key, EVP_sha256()) > 0);
  BIO *bio = BIO_new(BIO_s_mem());
  assert_true(PEM_write_bio_X509(bio, x));
  char *data = NULL;
  long len = BIO_get_mem_data(bio, &data);
  char *pem = malloc((size_t)len + 1);
  memcpy(pem, data, (size_t)len);
  pem[len] = '\0';
  BIO_free(bio);
  X509_free(x);
  EVP_PKEY_free(key);
  return pem;
}

/* ------------------------------------------------------------ tests */

static void test_bearer_tokens(void **state) {
  (void)state;
  authenticator *a = create(token_path, false, false);
  assert_int_equal(auth_token_count(a), 4);

  auth_identity id = expect_ok(a, "Bearer admin-token-123", NULL);
  assert_string_equal(id.user, "alice");
  assert_string_equal(id.uid, "uid-alice");
  assert_groups(&id, 1, "keel:admins");
  assert_int_equal(auth_identity_roles(&id), AUTH_ROLE_ADMIN);
  auth_identity_clear(&id);
  assert_null(id.user);

  /* The scheme is case-insensitive; blanks around are tolerated. */
  id = expect_ok(a, "  bearer \t viewer-token-456  ", NULL);
  assert_string_equal(id.user, "bob");
  assert_groups(&id, 2, "keel:viewers", "team-b");
  auth_identity_clear(&id);
  id = expect_ok(a, "BEARER node-token-789", NULL);
  assert_string_equal(id.user, "system:node:n2");
  assert_string_equal(auth_identity_node_name(&id), "n2");
  auth_identity_clear(&id);
  id = expect_ok(a, "Bearer nogroups-tok", NULL);
  assert_string_equal(id.user, "carol");
  assert_int_equal(id.ngroups, 0);
  auth_identity_clear(&id);

  expect_refused(a, "Bearer admin-token-12", NULL, "invalid bearer token");
  expect_refused(a, "Bearer admin-token-1234", NULL, "invalid bearer token");
  expect_refused(a, "Bearer ADMIN-TOKEN-123", NULL, "invalid bearer token");
  expect_refused(a, "Bearer uid-alice", NULL, "invalid bearer token");
  expect_refused(a, "Basic YWxpY2U6cHc=", NULL,
                 "unsupported authorization scheme (want \"authorization: Bearer <token>\")");
  expect_refused(a, "Bearerx admin-token-123", NULL,
                 "unsupported authorization scheme (want \"authorization: Bearer <token>\")");
  expect_refused(a, "admin-token-123", NULL,
                 "unsupported authorization scheme (want \"authorization: Bearer <token>\")");
  expect_refused(a, "Bearer", NULL, "malformed authorization header (want \"authorization: Bearer <token>\")");
  expect_refused(a, "Bearer   ", NULL, "malformed authorization header (want \"authorization: Bearer <token>\")");
  expect_refused(a, "", NULL, "malformed authorization header (want \"authorization: Bearer <token>\")");
  expect_refused(a, "Bearer admin-token-123 extra", NULL,
                 "malformed authorization header (want \"authorization: Bearer <token>\")");
  expect_refused(a, "Bearer admin-token-123\r\nX: y", NULL,
                 "malformed authorization header (want \"authorization: Bearer <token>\")");
  expect_refused(a, NULL, NULL, "no credentials: send a bearer token (want \"authorization: Bearer <token>\")");

  char *huge = malloc(AUTH_HEADER_MAX + 2);
  memset(huge, 'x', AUTH_HEADER_MAX + 1);
  memcpy(huge, "Bearer ", 7);
  huge[AUTH_HEADER_MAX + 1] = '\0';
  expect_refused(a, huge, NULL, "authorization header too long");
  huge[AUTH_HEADER_MAX] = '\0';
  expect_refused(a, huge, NULL, "invalid bearer token");
  free(huge);

  /* Length-delimited values: bytes past len are not part of the token, and a
   * NUL inside is refused rather than cutting the token short. */
  auth_identity idn;
  grpc_status_code code;
  keel_error err = {0};
  const char buf[] = "Bearer nogroups-tokGARBAGE";
  assert_int_equal(auth_authenticate_n(a, buf, strlen("Bearer nogroups-tok"), NULL, &idn, &code, &err), 0);
  assert_string_equal(idn.user, "carol");
  auth_identity_clear(&idn);
  const char nul[] = "Bearer nogroups-tok\0rest";
  assert_int_equal(auth_authenticate_n(a, nul, sizeof(nul) - 1, NULL, &idn, &code, &err), -EPERM);
  assert_int_equal(code, GRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(err.message, "malformed authorization header (want \"authorization: Bearer <token>\")");

  auth_destroy(a);
}

static void test_client_certificates(void **state) {
  (void)state;
  char *node = make_cert(2, "CN", "system:node:n1", "O", "system:nodes");
  char *two_o = make_cert(4, "O", "keel:viewers", "CN", "dave", "OU", "ignored", "O", "team-a");
  char *no_cn = make_cert(1, "O", "system:masters");
  char *two_cn = make_cert(2, "CN", "alice", "CN", "system:kube-scheduler");
  char *empty_o = make_cert(2, "CN", "erin", "O", "");
  char *ctl = make_cert(2, "CN", "eve\x01", "O", "system:masters");

  authenticator *a = create(NULL, true, false);
  auth_identity id = expect_ok(a, NULL, node);
  assert_string_equal(id.user, "system:node:n1");
  assert_string_equal(id.uid, "");
  assert_groups(&id, 1, "system:nodes");
  assert_int_equal(auth_identity_roles(&id), AUTH_ROLE_NODE);
  assert_string_equal(auth_identity_node_name(&id), "n1");
  auth_identity_clear(&id);

  id = expect_ok(a, NULL, two_o);
  assert_string_equal(id.user, "dave");
  assert_groups(&id, 2, "keel:viewers", "team-a");
  assert_int_equal(auth_identity_roles(&id), AUTH_ROLE_VIEWER);
  auth_identity_clear(&id);

  id = expect_ok(a, NULL, empty_o);
  assert_string_equal(id.user, "erin");
  assert_int_equal(id.ngroups, 0);
  auth_identity_clear(&id);

  expect_refused(a, NULL, no_cn, "invalid client certificate: the subject has no common name (the user)");
  expect_refused(a, NULL, two_cn, "invalid client certificate: the subject has several common names");
  expect_refused(a, NULL, ctl, "invalid client certificate: a name contains control characters");
  expect_refused(a, NULL, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                 "invalid client certificate: not a PEM certificate");
  expect_refused(a, NULL, "junk", "invalid client certificate: not a PEM certificate");
  expect_refused(a, NULL, NULL, "no credentials: present a client certificate");
  expect_refused(a, NULL, "", "no credentials: present a client certificate");
  /* A header is judged alone: with no token file it cannot succeed, even with
   * a good certificate beside it. */
  expect_refused(a, "Bearer whatever", node, "invalid bearer token (the server accepts no bearer tokens)");
  auth_destroy(a);

  /* Tokens and certificates together: each works; a bad token does not fall
   * back to the certificate. */
  a = create(token_path, true, false);
  id = expect_ok(a, NULL, node);
  assert_string_equal(id.user, "system:node:n1");
  auth_identity_clear(&id);
  id = expect_ok(a, "Bearer viewer-token-456", node);
  assert_string_equal(id.user, "bob");
  auth_identity_clear(&id);
  expect_refused(a, "Bearer wrong-token", node, "invalid bearer token");
  expect_refused(a, NULL, NULL,
                 "no credentials: present a client certificate or a bearer token "
                 "(want \"authorization: Bearer <token>\")");
  auth_destroy(a);

  /* Without client_certs a certificate is ignored. */
  a = create(token_path, false, false);
  expect_refused(a, NULL, node, "no credentials: send a bearer token (want \"authorization: Bearer <token>\")");
  auth_destroy(a);

  free(node);
  free(two_o);
  free(no_cn);
  free(two_cn);
  free(empty_o);
  free(ctl);
}

static void test_anonymous_and_unconfigured(void **state) {
  (void)state;
  /* Nothing configured and no --anonymous-admin: every request is refused. */
  authenticator *a = create(NULL, false, false);
  char *cert = make_cert(2, "CN", "alice", "O", "system:masters");
  expect_refused(a, NULL, NULL,
                 "no credentials: the server accepts neither client certificates nor bearer tokens");
  expect_refused(a, NULL, cert,
                 "no credentials: the server accepts neither client certificates nor bearer tokens");
  expect_refused(a, "Bearer admin-token-123", NULL,
                 "invalid bearer token (the server accepts no bearer tokens)");
  assert_int_equal(auth_token_count(a), 0);
  auth_destroy(a);

  /* Anonymous admin: everyone is system:anonymous, an admin; credentials ignored. */
  a = create(NULL, false, true);
  const char *headers[] = {NULL, "Bearer admin-token-123", "garbage"};
  for (size_t i = 0; i < 3; i++) {
    auth_identity id = expect_ok(a, headers[i], i == 0 ? cert : NULL);
    assert_string_equal(id.user, AUTH_ANONYMOUS_USER);
    assert_groups(&id, 2, "system:unauthenticated", "keel:admins");
    assert_int_equal(auth_identity_roles(&id), AUTH_ROLE_ADMIN);
    auth_identity_clear(&id);
  }
  auth_destroy(a);
  free(cert);

  /* Anonymous admin only when nothing else is configured. */
  keel_error err = {0};
  auth_config cfg = {.token_file = token_path, .anonymous_admin = true};
  assert_null(auth_create(&cfg, &err));
  assert_int_equal(err.code, EINVAL);
  assert_string_equal(err.message,
                      "anonymous admin mode turns authentication off; it cannot be combined with a token file");
  cfg = (auth_config){.client_certs = true, .anonymous_admin = true};
  assert_null(auth_create(&cfg, &err));
  assert_string_equal(err.message,
                      "anonymous admin mode turns authentication off; it cannot be combined with "
                      "client certificates");
}

static void test_bad_token_file(void **state) {
  (void)state;
  write_tokens("ok,alice,1\nbroken,line\n");
  keel_error err = {0};
  auth_config cfg = {.token_file = token_path};
  assert_null(auth_create(&cfg, &err));
  char want[4200];
  snprintf(want, sizeof(want),
           "%s:2: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found 2", token_path);
  assert_string_equal(err.message, want);
  cfg.token_file = "/nonexistent/keel/tokens.csv";
  assert_null(auth_create(&cfg, &err));
  assert_int_equal(err.code, ENOENT);
  write_tokens(TOKENS);
}

static void test_reload(void **state) {
  (void)state;
  authenticator *a = create(token_path, false, false);
  write_tokens("fresh-token,zed,uid-z,\"keel:viewers\"\n");
  keel_error err = {0};
  assert_int_equal(auth_reload_tokens(a, &err), 0);
  assert_int_equal(auth_token_count(a), 1);
  expect_refused(a, "Bearer admin-token-123", NULL, "invalid bearer token");
  auth_identity id = expect_ok(a, "Bearer fresh-token", NULL);
  assert_string_equal(id.user, "zed");
  auth_identity_clear(&id);

  /* A broken file keeps the tokens in force. */
  write_tokens("fresh-token,zed,uid-z\nfresh-token,other,uid\n");
  assert_int_equal(auth_reload_tokens(a, &err), -EINVAL);
  assert_non_null(strstr(err.message, ":2: duplicate token (already on line 1)"));
  id = expect_ok(a, "Bearer fresh-token", NULL);
  assert_string_equal(id.user, "zed");
  auth_identity_clear(&id);
  auth_destroy(a);
  write_tokens(TOKENS);

  /* No token file: nothing to reload. */
  a = create(NULL, true, false);
  assert_int_equal(auth_reload_tokens(a, &err), 0);
  auth_destroy(a);
}

/* Reloads race with lookups: identities are copies, tables are swapped whole. */
typedef struct race {
  authenticator *a;
  int failures;
} race;

static void *race_reader(void *arg) {
  race *r = arg;
  for (int i = 0; i < 2000; i++) {
    auth_identity id;
    grpc_status_code code;
    keel_error err;
    if (auth_authenticate(r->a, "Bearer viewer-token-456", NULL, &id, &code, &err) != 0 ||
        strcmp(id.user, "bob") != 0)
      r->failures++;
    auth_identity_clear(&id);
  }
  return NULL;
}

static void test_reload_concurrent(void **state) {
  (void)state;
  race r = {.a = create(token_path, false, false)};
  pthread_t t[2];
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&t[i], NULL, race_reader, &r), 0);
  for (int i = 0; i < 30; i++) {
    keel_error err;
    assert_int_equal(auth_reload_tokens(r.a, &err), 0);
  }
  for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
  assert_int_equal(r.failures, 0);
  auth_destroy(r.a);
}

/* ------------------------------------------------------------ credential source */

typedef struct fake_call {
  const char *authorization; /* value bytes, not NUL-terminated at len */
  size_t authorization_len;
  const char *pem;
  int metadata_calls, property_calls;
  char keys[4][64], props[4][64];
} fake_call;

static const char *fake_metadata(void *ctx, const char *key, size_t *len) {
  fake_call *c = ctx;
  snprintf(c->keys[c->metadata_calls++ % 4], 64, "%s", key);
  if (strcmp(key, "authorization") != 0 || !c->authorization) return NULL;
  *len = c->authorization_len;
  return c->authorization;
}

static char *fake_property(void *ctx, const char *name) {
  fake_call *c = ctx;
  snprintf(c->props[c->property_calls++ % 4], 64, "%s", name);
  return strcmp(name, "x509_pem_cert") == 0 && c->pem ? strdup(c->pem) : NULL;
}

static int run_source(const authenticator *a, fake_call *c, auth_identity *id, grpc_status_code *code,
                      keel_error *err) {
  const auth_credential_source src = {.metadata = fake_metadata, .auth_property = fake_property, .ctx = c};
  return auth_authenticate_source(a, &src, id, code, err);
}

static void test_credential_source(void **state) {
  (void)state;
  char *cert = make_cert(2, "CN", "system:kube-scheduler", "O", "team");
  authenticator *a = create(token_path, true, false);
  auth_identity id;
  grpc_status_code code;
  keel_error err = {0};

  /* Metadata values are length-delimited slices. */
  static const char md[] = "Bearer viewer-token-456trailing-bytes-of-another-slice";
  fake_call c = {.authorization = md, .authorization_len = strlen("Bearer viewer-token-456"), .pem = cert};
  assert_int_equal(run_source(a, &c, &id, &code, &err), 0);
  assert_string_equal(id.user, "bob");
  assert_int_equal(c.metadata_calls, 1);
  assert_string_equal(c.keys[0], "authorization");
  assert_int_equal(c.property_calls, 0); /* the header decides; no certificate copy */
  auth_identity_clear(&id);

  /* No header: the certificate from the "x509_pem_cert" property. */
  c = (fake_call){.pem = cert};
  assert_int_equal(run_source(a, &c, &id, &code, &err), 0);
  assert_string_equal(id.user, "system:kube-scheduler");
  assert_groups(&id, 1, "team");
  assert_int_equal(auth_identity_roles(&id), AUTH_ROLE_SCHEDULER);
  assert_int_equal(c.property_calls, 1);
  assert_string_equal(c.props[0], "x509_pem_cert");
  auth_identity_clear(&id);

  /* A bad header value. */
  c = (fake_call){.authorization = "Bearer nope", .authorization_len = 11, .pem = cert};
  assert_int_equal(run_source(a, &c, &id, &code, &err), -EPERM);
  assert_int_equal(code, GRPC_STATUS_UNAUTHENTICATED);
  assert_string_equal(err.message, "invalid bearer token");

  /* Nothing at all. */
  c = (fake_call){0};
  assert_int_equal(run_source(a, &c, &id, &code, &err), -EPERM);
  assert_int_equal(code, GRPC_STATUS_UNAUTHENTICATED);
  auth_destroy(a);

  /* Without client_certs the property is never read. */
  a = create(token_path, false, false);
  c = (fake_call){.pem = cert};
  assert_int_equal(run_source(a, &c, &id, &code, &err), -EPERM);
  assert_int_equal(c.property_calls, 0);
  assert_string_equal(err.message,
                      "no credentials: send a bearer token (want \"authorization: Bearer <token>\")");
  auth_destroy(a);

  /* Anonymous admin reads nothing. */
  a = create(NULL, false, true);
  c = (fake_call){.authorization = "Bearer x", .authorization_len = 8, .pem = cert};
  assert_int_equal(run_source(a, &c, &id, &code, &err), 0);
  assert_string_equal(id.user, AUTH_ANONYMOUS_USER);
  assert_int_equal(c.metadata_calls + c.property_calls, 0);
  auth_identity_clear(&id);
  auth_destroy(a);
  free(cert);
}

static void test_identity_helpers(void **state) {
  (void)state;
  const char *groups[] = {"a", "b"};
  auth_identity x, y;
  assert_int_equal(auth_identity_set(&x, "u", NULL, groups, 2), 0);
  assert_string_equal(x.uid, "");
  assert_int_equal(auth_identity_copy(&y, &x), 0);
  auth_identity_clear(&x);
  assert_string_equal(y.user, "u");
  assert_groups(&y, 2, "a", "b");
  assert_true(auth_identity_in_group(&y, "b"));
  assert_false(auth_identity_in_group(&y, "c"));
  auth_identity_clear(&y);
  auth_identity_clear(&y); /* twice is fine */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bearer_tokens),
      cmocka_unit_test(test_client_certificates),
      cmocka_unit_test(test_anonymous_and_unconfigured),
      cmocka_unit_test(test_bad_token_file),
      cmocka_unit_test(test_reload),
      cmocka_unit_test(test_reload_concurrent),
      cmocka_unit_test(test_credential_source),
      cmocka_unit_test(test_identity_helpers),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
