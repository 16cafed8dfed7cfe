/* services/apiserver/auth/token_file.c — see token_file.h.
 *
 * The parser works line by line over the whole file in memory (files are small
 * and bounded); a quoted field therefore cannot span lines, which Kubernetes'
 * encoding/csv reader would allow but no token file needs. Duplicates are found
 * after parsing by sorting digests, so loading stays O(n log n). The file's
 * bytes, which hold every token in clear, are wiped before they are freed. */
#include "services/apiserver/auth/token_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/cleanup.h"

#define MAX_COLUMNS 4

struct auth_token_table {
  auth_token_entry *entries;
  size_t n, cap;
};

bool auth_ct_equal(const void *a, const void *b, size_t len) {
  return CRYPTO_memcmp(a, b, len) == 0;
}

static int digest(const char *token, size_t len, unsigned char out[AUTH_TOKEN_DIGEST_LEN]) {
  unsigned int outlen = 0;
  if (!EVP_Digest(token, len, out, &outlen, EVP_sha256(), NULL) || outlen != AUTH_TOKEN_DIGEST_LEN)
    return -1;
  return 0;
}

static void entry_clear(auth_token_entry *e) {
  free(e->user);
  free(e->uid);
  for (size_t i = 0; i < e->ngroups; i++) free(e->groups[i]);
  free(e->groups);
  memset(e, 0, sizeof(*e));
}

void auth_token_table_free(auth_token_table *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) entry_clear(&t->entries[i]);
  free(t->entries);
  free(t);
}

size_t auth_token_table_count(const auth_token_table *t) {
  return t ? t->n : 0;
}

const auth_token_entry *auth_token_table_entry(const auth_token_table *t, size_t i) {
  return t && i < t->n ? &t->entries[i] : NULL;
}

const auth_token_entry *auth_token_table_find(const auth_token_table *t, const char *token,
                                              size_t len, size_t *compared) {
  if (compared) *compared = 0;
  if (!t || !token) return NULL;
  unsigned char d[AUTH_TOKEN_DIGEST_LEN];
  if (digest(token, len, d) < 0) return NULL;
  const auth_token_entry *found = NULL;
  size_t n = 0;
  /* Every entry is compared, whatever matched before: no early exit. */
  for (size_t i = 0; i < t->n; i++, n++) {
    bool eq = auth_ct_equal(t->entries[i].digest, d, sizeof(d));
    if (eq && !found) found = &t->entries[i];
  }
  OPENSSL_cleanse(d, sizeof(d));
  if (compared) *compared = n;
  return found;
}

/* ------------------------------------------------------------------ parsing */

static bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

static bool has_control(const char *s) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p < 0x20 || *p == 0x7f) return true;
  return false;
}

typedef struct record {
  char *col[MAX_COLUMNS];
  size_t n; /* columns seen, may exceed MAX_COLUMNS */
} record;

static void record_clear(record *r) {
  for (size_t i = 0; i < MAX_COLUMNS; i++) {
    if (r->col[i]) OPENSSL_cleanse(r->col[i], strlen(r->col[i]));
    free(r->col[i]);
    r->col[i] = NULL;
  }
  r->n = 0;
}

#define LINE_ERR(...) keel_error_set(err, EINVAL, __VA_ARGS__)

/* Splits one line [p, end) into CSV fields (encoding/csv with TrimLeadingSpace,
 * plus trailing blanks of unquoted fields dropped). */
static int parse_record(const char *name, unsigned lineno, const char *p, const char *end,
                        record *r, keel_error *err) {
  for (;;) {
    size_t column = r->n + 1;
    while (p < end && is_blank(*p)) p++;
    cleanup_free char *field = malloc((size_t)(end - p) + 1);
    if (!field) return keel_error_set(err, ENOMEM, "%s:%u: out of memory", name, lineno);
    size_t flen = 0;
    if (p < end && *p == '"') {
      p++;
      for (;;) {
        if (p >= end)
          return LINE_ERR("%s:%u: column %zu: unterminated quoted field", name, lineno, column);
        if (*p == '"') {
          if (p + 1 < end && p[1] == '"') {
            field[flen++] = '"';
            p += 2;
            continue;
          }
          p++;
          break;
        }
        field[flen++] = *p++;
      }
      while (p < end && is_blank(*p)) p++;
      if (p < end && *p != ',')
        return LINE_ERR("%s:%u: column %zu: text after the closing quote", name, lineno, column);
    } else {
      const char *start = p;
      while (p < end && *p != ',') {
        if (*p == '"')
          return LINE_ERR("%s:%u: column %zu: bare \" in an unquoted field (quote the whole field)",
                          name, lineno, column);
        p++;
      }
      const char *stop = p;
      while (stop > start && is_blank(stop[-1])) stop--;
      flen = (size_t)(stop - start);
      memcpy(field, start, flen);
    }
    field[flen] = '\0';
    if (r->n < MAX_COLUMNS) {
      r->col[r->n] = steal_pointer(&field);
    } else {
      OPENSSL_cleanse(field, flen);
    }
    r->n++;
    if (p < end && *p == ',') {
      p++;
      continue;
    }
    return 0;
  }
}

/* Splits "a, b,,c" into non-empty, trimmed groups. */
static int split_groups(const char *name, unsigned lineno, const char *s, auth_token_entry *e,
                        keel_error *err) {
  size_t cap = 1;
  for (const char *q = s; *q; q++)
    if (*q == ',') cap++;
  e->groups = calloc(cap, sizeof(char *));
  if (!e->groups) return keel_error_set(err, ENOMEM, "%s:%u: out of memory", name, lineno);
  for (const char *q = s;;) {
    const char *comma = strchr(q, ',');
    const char *stop = comma ? comma : q + strlen(q);
    const char *start = q;
    while (start < stop && is_blank(*start)) start++;
    while (stop > start && is_blank(stop[-1])) stop--;
    if (stop > start) {
      char *g = strndup(start, (size_t)(stop - start));
      if (!g) return keel_error_set(err, ENOMEM, "%s:%u: out of memory", name, lineno);
      e->groups[e->ngroups++] = g;
    }
    if (!comma) break;
    q = comma + 1;
  }
  return 0;
}

static int record_to_entry(const char *name, unsigned lineno, record *r, auth_token_entry *e,
                           keel_error *err) {
  if (r->n < 3 || r->n > MAX_COLUMNS)
    return LINE_ERR("%s:%u: expected 3 or 4 columns (token,user,uid,\"group1,group2\"), found %zu%s",
                    name, lineno, r->n,
                    r->n > MAX_COLUMNS ? " (quote the groups column when it has several groups)" : "");
  const char *token = r->col[0];
  size_t tlen = strlen(token);
  if (tlen == 0) return LINE_ERR("%s:%u: empty token", name, lineno);
  if (tlen > AUTH_TOKEN_MAX)
    return LINE_ERR("%s:%u: token longer than %d bytes", name, lineno, AUTH_TOKEN_MAX);
  for (size_t i = 0; i < tlen; i++) {
    unsigned char c = (unsigned char)token[i];
    if (c <= 0x20 || c >= 0x7f)
      return LINE_ERR("%s:%u: token contains blanks, control or non-ASCII characters", name,
                      lineno);
  }
  if (!*r->col[1]) return LINE_ERR("%s:%u: empty user name", name, lineno);
  if (has_control(r->col[1]))
    return LINE_ERR("%s:%u: user name contains control characters", name, lineno);
  if (has_control(r->col[2]))
    return LINE_ERR("%s:%u: uid contains control characters", name, lineno);
  if (r->n == 4 && has_control(r->col[3]))
    return LINE_ERR("%s:%u: groups contain control characters", name, lineno);

  e->line = lineno;
  if (digest(token, tlen, e->digest) < 0)
    return keel_error_set(err, EIO, "%s:%u: SHA-256 failed", name, lineno);
  e->user = strdup(r->col[1]);
  e->uid = strdup(r->col[2]);
  if (!e->user || !e->uid) return keel_error_set(err, ENOMEM, "%s:%u: out of memory", name, lineno);
  if (r->n == 4) return split_groups(name, lineno, r->col[3], e, err);
  return 0;
}

static int table_add(auth_token_table *t, auth_token_entry *e) {
  if (t->n == t->cap) {
    size_t ncap = t->cap ? t->cap * 2 : 16;
    auth_token_entry *p = realloc(t->entries, ncap * sizeof(*p));
    if (!p) return -ENOMEM;
    t->entries = p;
    t->cap = ncap;
  }
  t->entries[t->n++] = *e;
  memset(e, 0, sizeof(*e));
  return 0;
}

static int cmp_digest(const void *a, const void *b) {
  const auth_token_entry *x = *(const auth_token_entry *const *)a;
  const auth_token_entry *y = *(const auth_token_entry *const *)b;
  int c = memcmp(x->digest, y->digest, AUTH_TOKEN_DIGEST_LEN);
  if (c) return c;
  return x->line < y->line ? -1 : x->line > y->line;
}

/* Sorted by (digest, line), each token's definitions form a run; the second
 * line of a run is a duplicate of the first. The earliest such line is reported,
 * as a line-by-line reader would have. */
static int check_duplicates(const char *name, const auth_token_table *t, keel_error *err) {
  if (t->n < 2) return 0;
  cleanup_free const auth_token_entry **v = malloc(t->n * sizeof(*v));
  if (!v) return keel_error_set(err, ENOMEM, "%s: out of memory", name);
  for (size_t i = 0; i < t->n; i++) v[i] = &t->entries[i];
  qsort(v, t->n, sizeof(*v), cmp_digest);
  const auth_token_entry *dup = NULL, *first = NULL;
  for (size_t i = 1; i < t->n; i++) {
    bool run_start = i == 1 || memcmp(v[i - 2]->digest, v[i - 1]->digest, AUTH_TOKEN_DIGEST_LEN) != 0;
    if (run_start && memcmp(v[i - 1]->digest, v[i]->digest, AUTH_TOKEN_DIGEST_LEN) == 0 &&
        (!dup || v[i]->line < dup->line)) {
      dup = v[i];
      first = v[i - 1];
    }
  }
  if (dup)
    return LINE_ERR("%s:%u: duplicate token (already on line %u)", name, dup->line, first->line);
  return 0;
}

auth_token_table *auth_token_table_parse(const char *name, const char *text, size_t len,
                                         keel_error *err) {
  if (!name) name = "token file";
  if (len > AUTH_TOKEN_FILE_MAX) {
    keel_error_set(err, EFBIG, "%s: larger than %u bytes", name, AUTH_TOKEN_FILE_MAX);
    return NULL;
  }
  auth_token_table *t = calloc(1, sizeof(*t));
  if (!t) {
    keel_error_set(err, ENOMEM, "%s: out of memory", name);
    return NULL;
  }
  const char *p = text, *end = text + len;
  unsigned lineno = 0;
  while (p < end) {
    lineno++;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t linelen = nl ? (size_t)(nl - p) : (size_t)(end - p);
    const char *next = nl ? nl + 1 : end;
    if (linelen > 0 && p[linelen - 1] == '\r') linelen--;
    const char *eol = p + linelen;
    if (memchr(p, '\0', linelen)) {
      LINE_ERR("%s:%u: NUL byte", name, lineno);
      goto fail;
    }
    const char *q = p;
    while (q < eol && is_blank(*q)) q++;
    if (q == eol || *q == '#') {
      p = next;
      continue;
    }
    record r = {0};
    auth_token_entry e = {0};
    int rc = parse_record(name, lineno, p, eol, &r, err);
    if (rc == 0) rc = record_to_entry(name, lineno, &r, &e, err);
    record_clear(&r);
    if (rc == 0 && table_add(t, &e) < 0) rc = keel_error_set(err, ENOMEM, "%s: out of memory", name);
    if (rc < 0) {
      entry_clear(&e);
      goto fail;
    }
    p = next;
  }
  if (check_duplicates(name, t, err) < 0) goto fail;
  return t;
fail:
  auth_token_table_free(t);
  return NULL;
}

auth_token_table *auth_token_table_load(const char *path, keel_error *err) {
  cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    keel_error_set_errno(err, errno, "open token file %s", path);
    return NULL;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    keel_error_set_errno(err, errno, "stat token file %s", path);
    return NULL;
  }
  if (!S_ISREG(st.st_mode)) {
    keel_error_set(err, EINVAL, "token file %s: not a regular file", path);
    return NULL;
  }
  if ((uint64_t)st.st_size > AUTH_TOKEN_FILE_MAX) {
    keel_error_set(err, EFBIG, "%s: larger than %u bytes", path, AUTH_TOKEN_FILE_MAX);
    return NULL;
  }
  size_t cap = (size_t)st.st_size + 1, len = 0;
  char *buf = malloc(cap);
  if (!buf) {
    keel_error_set(err, ENOMEM, "%s: out of memory", path);
    return NULL;
  }
  /* Read to EOF, not to st_size: the file may change under us; stay bounded. */
  for (;;) {
    if (len == cap) {
      if (cap > AUTH_TOKEN_FILE_MAX) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        keel_error_set(err, EFBIG, "%s: larger than %u bytes", path, AUTH_TOKEN_FILE_MAX);
        return NULL;
      }
      char *nb = malloc(cap * 2);
      if (!nb) {
        OPENSSL_cleanse(buf, len);
        free(buf);
        keel_error_set(err, ENOMEM, "%s: out of memory", path);
        return NULL;
      }
      memcpy(nb, buf, len);
      OPENSSL_cleanse(buf, len);
      free(buf);
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      OPENSSL_cleanse(buf, len);
      free(buf);
      keel_error_set_errno(err, e, "read token file %s", path);
      return NULL;
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  auth_token_table *t = auth_token_table_parse(path, buf, len, err);
  OPENSSL_cleanse(buf, cap);
  free(buf);
  return t;
}
