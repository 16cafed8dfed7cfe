/* services/apiserver/auth/auth.c — identities and authentication (see auth.h).
 *
 * The token table is swapped whole on reload under a read-write lock: requests
 * take the read side only for the lookup and the copy of the identity, so a
 * reload never waits on a slow request and never frees a table in use.
 * Identities are deep copies; nothing in one points into the table. */
#include "services/apiserver/auth/auth.h"

#include <errno.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/base/cleanup.h"
#include "services/apiserver/auth/token_file.h"

/* Longest CN or O taken from a certificate. */
#define CERT_NAME_MAX 1024

/* The one failure of certificate parsing that is ours, not the client's. */
static const char OOM[] = "out of memory";

struct authenticator {
  char *token_file;
  bool client_certs;
  bool anonymous_admin;
  pthread_rwlock_t lock; /* guards tokens */
  auth_token_table *tokens;
};

/* ------------------------------------------------------------ identity */

void auth_identity_clear(auth_identity *id) {
  if (!id) return;
  free(id->user);
  free(id->uid);
  for (size_t i = 0; i < id->ngroups; i++) free(id->groups[i]);
  free(id->groups);
  memset(id, 0, sizeof(*id));
}

int auth_identity_set(auth_identity *id, const char *user, const char *uid,
                      const char *const *groups, size_t ngroups) {
  memset(id, 0, sizeof(*id));
  id->user = strdup(user ? user : "");
  id->uid = strdup(uid ? uid : "");
  if (ngroups) id->groups = calloc(ngroups, sizeof(char *));
  if (!id->user || !id->uid || (ngroups && !id->groups)) goto nomem;
  for (size_t i = 0; i < ngroups; i++) {
    id->groups[i] = strdup(groups[i]);
    if (!id->groups[i]) goto nomem;
    id->ngroups++;
  }
  return 0;
nomem:
  auth_identity_clear(id);
  return -ENOMEM;
}

int auth_identity_copy(auth_identity *dst, const auth_identity *src) {
  return auth_identity_set(dst, src->user, src->uid, (const char *const *)src->groups,
                           src->ngroups);
}

bool auth_identity_in_group(const auth_identity *id, const char *group) {
  for (size_t i = 0; i < id->ngroups; i++)
    if (id->groups[i] && strcmp(id->groups[i], group) == 0) return true;
  return false;
}

/* ------------------------------------------------------------ lifecycle */

authenticator *auth_create(const auth_config *cfg, keel_error *err) {
  static const auth_config none = {0};
  if (!cfg) cfg = &none;
  if (cfg->anonymous_admin && (cfg->token_file || cfg->client_certs)) {
    keel_error_set(err, EINVAL,
                   "anonymous admin mode turns authentication off; it cannot be combined with %s",
                   cfg->token_file ? "a token file" : "client certificates");
    return NULL;
  }
  authenticator *a = calloc(1, sizeof(*a));
  if (!a) {
    keel_error_set(err, ENOMEM, "authenticator: out of memory");
    return NULL;
  }
  a->client_certs = cfg->client_certs;
  a->anonymous_admin = cfg->anonymous_admin;
  int rc = pthread_rwlock_init(&a->lock, NULL);
  if (rc) {
    free(a);
    keel_error_set_errno(err, rc, "authenticator: rwlock");
    return NULL;
  }
  if (cfg->token_file) {
    a->token_file = strdup(cfg->token_file);
    if (!a->token_file) {
      keel_error_set(err, ENOMEM, "authenticator: out of memory");
      auth_destroy(a);
      return NULL;
    }
    a->tokens = auth_token_table_load(a->token_file, err);
    if (!a->tokens) {
      auth_destroy(a);
      return NULL;
    }
  }
  return a;
}

int auth_reload_tokens(authenticator *a, keel_error *err) {
  if (!a->token_file) return 0;
  auth_token_table *t = auth_token_table_load(a->token_file, err);
  if (!t) return -(err && err->code ? err->code : EINVAL);
  pthread_rwlock_wrlock(&a->lock);
  auth_token_table *old = a->tokens;
  a->tokens = t;
  pthread_rwlock_unlock(&a->lock);
  auth_token_table_free(old);
  return 0;
}

void auth_destroy(authenticator *a) {
  if (!a) return;
  auth_token_table_free(a->tokens);
  pthread_rwlock_destroy(&a->lock);
  free(a->token_file);
  free(a);
}

size_t auth_token_count(const authenticator *a) {
  pthread_rwlock_t *lock = (pthread_rwlock_t *)&a->lock;
  pthread_rwlock_rdlock(lock);
  size_t n = auth_token_table_count(a->tokens);
  pthread_rwlock_unlock(lock);
  return n;
}

/* ------------------------------------------------------------ authentication */

static int refuse(grpc_status_code *code, keel_error *err, const char *msg) {
  *code = GRPC_STATUS_UNAUTHENTICATED;
  return keel_error_set(err, EPERM, "%s", msg);
}

static int out_of_memory(grpc_status_code *code, keel_error *err) {
  *code = GRPC_STATUS_INTERNAL;
  return keel_error_set(err, ENOMEM, "authentication: out of memory");
}

static bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

#define WANT_BEARER "(want \"authorization: Bearer <token>\")"

static int authenticate_token(const authenticator *a, const char *h, size_t len, auth_identity *id,
                              grpc_status_code *code, keel_error *err) {
  if (len > AUTH_HEADER_MAX) return refuse(code, err, "authorization header too long");
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)h[i];
    if ((c < 0x20 && c != '\t') || c == 0x7f)
      return refuse(code, err, "malformed authorization header " WANT_BEARER);
  }
  const char *p = h, *end = h + len;
  while (p < end && is_blank(*p)) p++;
  while (end > p && is_blank(end[-1])) end--;
  const char *scheme = p;
  while (p < end && !is_blank(*p)) p++;
  size_t scheme_len = (size_t)(p - scheme);
  if (scheme_len == 0) return refuse(code, err, "malformed authorization header " WANT_BEARER);
  if (scheme_len != 6 || strncasecmp(scheme, "bearer", 6) != 0)
    return refuse(code, err, "unsupported authorization scheme " WANT_BEARER);
  while (p < end && is_blank(*p)) p++;
  const char *token = p;
  size_t token_len = (size_t)(end - p);
  if (token_len == 0 || memchr(token, ' ', token_len) || memchr(token, '\t', token_len))
    return refuse(code, err, "malformed authorization header " WANT_BEARER);
  if (!a->token_file) return refuse(code, err, "invalid bearer token (the server accepts no bearer tokens)");
  if (token_len > AUTH_TOKEN_MAX) return refuse(code, err, "invalid bearer token");

  pthread_rwlock_t *lock = (pthread_rwlock_t *)&a->lock;
  pthread_rwlock_rdlock(lock);
  const auth_token_entry *e = auth_token_table_find(a->tokens, token, token_len, NULL);
  int rc = 0;
  if (e)
    rc = auth_identity_set(id, e->user, e->uid, (const char *const *)e->groups, e->ngroups);
  pthread_rwlock_unlock(lock);
  if (!e) return refuse(code, err, "invalid bearer token");
  if (rc < 0) return out_of_memory(code, err);
  return 0;
}

/* A name entry as a NUL-terminated UTF-8 string without control characters,
 * or NULL (with *why) when it is not one. */
static char *name_entry_text(X509_NAME_ENTRY *entry, const char **why) {
  unsigned char *utf8 = NULL;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
  if (n < 0) {
    *why = "a name is not valid text";
    return NULL;
  }
  char *out = NULL;
  if (n > CERT_NAME_MAX) {
    *why = "a name is too long";
  } else if (memchr(utf8, '\0', (size_t)n)) {
    *why = "a name contains a NUL byte";
  } else {
    bool ctl = false;
    for (int i = 0; i < n; i++)
      if (utf8[i] < 0x20 || utf8[i] == 0x7f) ctl = true;
    if (ctl) {
      *why = "a name contains control characters";
    } else {
      out = malloc((size_t)n + 1);
      if (out) {
        memcpy(out, utf8, (size_t)n);
        out[n] = '\0';
      }
      if (!out) *why = OOM;
    }
  }
  OPENSSL_free(utf8);
  return out;
}

static int cert_refuse(grpc_status_code *code, keel_error *err, const char *why) {
  *code = GRPC_STATUS_UNAUTHENTICATED;
  return keel_error_set(err, EPERM, "invalid client certificate: %s", why);
}

static int authenticate_cert(const char *pem, auth_identity *id, grpc_status_code *code,
                             keel_error *err) {
  size_t len = strnlen(pem, AUTH_CERT_PEM_MAX + 1);
  if (len > AUTH_CERT_PEM_MAX) return cert_refuse(code, err, "too large");
  BIO *bio = BIO_new_mem_buf(pem, (int)len);
  if (!bio) return out_of_memory(code, err);
  X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
  BIO_free(bio);
  if (!x) {
    ERR_clear_error();
    return cert_refuse(code, err, "not a PEM certificate");
  }
  const X509_NAME *subject = X509_get_subject_name(x);
  int n = subject ? X509_NAME_entry_count(subject) : 0;
  cleanup_free char *cn = NULL;
  cleanup_free char **groups = calloc((size_t)n + 1, sizeof(char *));
  size_t ngroups = 0;
  const char *why = NULL;
  if (!groups) why = OOM;
  for (int i = 0; i < n && !why; i++) {
    X509_NAME_ENTRY *entry = X509_NAME_get_entry(subject, i);
    int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry));
    if (nid != NID_commonName && nid != NID_organizationName) continue;
    char *text = name_entry_text(entry, &why);
    if (!text) break;
    if (nid == NID_commonName) {
      if (cn) {
        why = "the subject has several common names";
        free(text);
        break;
      }
      cn = text;
    } else if (!*text) {
      free(text); /* an empty O names no group */
    } else {
      groups[ngroups++] = text;
    }
  }
  X509_free(x);
  ERR_clear_error();
  if (!why && (!cn || !*cn)) why = "the subject has no common name (the user)";
  int rc = 0;
  if (why) {
    rc = why == OOM ? out_of_memory(code, err) : cert_refuse(code, err, why);
  } else if (auth_identity_set(id, cn, "", (const char *const *)groups, ngroups) < 0) {
    rc = out_of_memory(code, err);
  }
  for (size_t i = 0; i < ngroups; i++) free(groups[i]);
  return rc;
}

static int no_credentials(const authenticator *a, grpc_status_code *code, keel_error *err) {
  if (a->token_file && a->client_certs)
    return refuse(code, err, "no credentials: present a client certificate or a bearer token " WANT_BEARER);
  if (a->token_file) return refuse(code, err, "no credentials: send a bearer token " WANT_BEARER);
  if (a->client_certs) return refuse(code, err, "no credentials: present a client certificate");
  return refuse(code, err,
                "no credentials: the server accepts neither client certificates nor bearer tokens");
}

int auth_authenticate_n(const authenticator *a, const char *authorization, size_t authorization_len,
                        const char *cert_pem, auth_identity *id, grpc_status_code *code,
                        keel_error *err) {
  memset(id, 0, sizeof(*id));
  *code = GRPC_STATUS_OK;
  if (a->anonymous_admin) {
    static const char *const groups[] = AUTH_ANONYMOUS_GROUPS;
    if (auth_identity_set(id, AUTH_ANONYMOUS_USER, "", groups, KEEL_ARRAY_LEN(groups)) < 0)
      return out_of_memory(code, err);
    return 0;
  }
  int rc;
  if (authorization)
    rc = authenticate_token(a, authorization, authorization_len, id, code, err);
  else if (a->client_certs && cert_pem && *cert_pem)
    rc = authenticate_cert(cert_pem, id, code, err);
  else
    rc = no_credentials(a, code, err);
  if (rc < 0) auth_identity_clear(id);
  return rc;
}

int auth_authenticate(const authenticator *a, const char *authorization_header,
                      const char *cert_pem, auth_identity *id, grpc_status_code *code,
                      keel_error *err) {
  size_t len = authorization_header ? strlen(authorization_header) : 0;
  return auth_authenticate_n(a, authorization_header, len, cert_pem, id, code, err);
}

int auth_authenticate_source(const authenticator *a, const auth_credential_source *src,
                             auth_identity *id, grpc_status_code *code, keel_error *err) {
  size_t len = 0;
  const char *authz = NULL;
  cleanup_free char *pem = NULL;
  if (!a->anonymous_admin) {
    if (src->metadata) authz = src->metadata(src->ctx, "authorization", &len);
    /* The certificate is fetched (a copy) only when it will be read. */
    if (!authz && a->client_certs && src->auth_property)
      pem = src->auth_property(src->ctx, "x509_pem_cert");
  }
  return auth_authenticate_n(a, authz, authz ? len : 0, pem, id, code, err);
}

static const char *call_metadata(void *ctx, const char *key, size_t *len) {
  return rpc_call_metadata((const rpc_call *)ctx, key, len);
}

static char *call_auth_property(void *ctx, const char *name) {
  return rpc_call_auth_property((const rpc_call *)ctx, name);
}

int auth_authenticate_call(const authenticator *a, rpc_call *call, auth_identity *id,
                           grpc_status_code *code, keel_error *err) {
  const auth_credential_source src = {
      .metadata = call_metadata,
      .auth_property = call_auth_property,
      .ctx = call,
  };
  return auth_authenticate_source(a, &src, id, code, err);
}
