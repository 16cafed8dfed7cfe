/* services/apiserver/auth/token_file.h — Kubernetes' static token file.
 *
 * One CSV record per line, as kube-apiserver's --token-auth-file reads it:
 *
 *   token,user,uid[,"group1,group2"]
 *
 * `#` starts a comment line, blank lines are skipped, leading and trailing blanks
 * around a field are dropped, a field may be double-quoted ("" is a quote inside
 * one). The groups column is optional and is split on commas. Anything else is
 * rejected at load with the file name and line number: fewer than three or more
 * than four columns (unquoted groups, the classic mistake), an empty token or
 * user, a token with blanks or control characters, a duplicate token. No error
 * message ever contains a token.
 *
 * Tokens are kept only as SHA-256 digests. A lookup hashes the presented token
 * and compares its digest with every entry using CRYPTO_memcmp, never stopping
 * early, so its time depends neither on where (or whether) the token matches
 * nor on how much of it is right. */
#ifndef KEEL_SERVICES_APISERVER_AUTH_TOKEN_FILE_H
#define KEEL_SERVICES_APISERVER_AUTH_TOKEN_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"

#define AUTH_TOKEN_MAX 4096               /* bytes in one token */
#define AUTH_TOKEN_FILE_MAX (16u << 20)   /* bytes in the whole file */
#define AUTH_TOKEN_DIGEST_LEN 32          /* SHA-256 */

typedef struct auth_token_entry {
  unsigned char digest[AUTH_TOKEN_DIGEST_LEN];
  char *user;     /* never empty */
  char *uid;      /* may be "" */
  char **groups;  /* ngroups non-empty strings */
  size_t ngroups;
  unsigned line;  /* where it was defined, for messages */
} auth_token_entry;

typedef struct auth_token_table auth_token_table;

/* Parses a token file's contents; `name` (the path) prefixes every message:
 * "tokens.csv:3: expected 3 or 4 columns (token,user,uid,\"groups\"), found 2".
 * An empty file (or comments only) is a valid, empty table. NULL with err
 * (EINVAL, or ENOMEM) on failure. */
auth_token_table *auth_token_table_parse(const char *name, const char *text, size_t len,
                                         keel_error *err);

/* Reads and parses the file at path. */
auth_token_table *auth_token_table_load(const char *path, keel_error *err);

void auth_token_table_free(auth_token_table *t);

size_t auth_token_table_count(const auth_token_table *t);
/* The i-th entry in file order (tests, listings). */
const auth_token_entry *auth_token_table_entry(const auth_token_table *t, size_t i);

/* The entry whose token is token[0..len), or NULL. Constant-time as described
 * above; *compared (if not NULL) receives the number of digest comparisons made,
 * which is always the table's size. */
const auth_token_entry *auth_token_table_find(const auth_token_table *t, const char *token,
                                              size_t len, size_t *compared);

/* Equality of two byte strings of the same length in time that depends only on
 * the length (CRYPTO_memcmp). */
bool auth_ct_equal(const void *a, const void *b, size_t len);

#endif
