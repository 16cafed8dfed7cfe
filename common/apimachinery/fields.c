/* common/apimachinery/fields.c — see fields.h.
 *
 * Two passes as in Kubernetes: split the selector into terms at commas not
 * preceded by a backslash (the backslash stays in the term), then split each
 * term at the first operator, scanning left to right and trying "!=" before
 * "==" before "=" at each position. The field part has no escaping, so that
 * first operator is always the split point; the value is then unescaped.
 * Kubernetes sorts the raw terms before building; we sort the built terms
 * (field, operator, value) instead, so "a==b" and "a=b" land in the same place
 * and print -> parse -> print is a fixed point. */
#include "common/apimachinery/fields.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/text.h"
#include "common/base/cleanup.h"

/* Bytes of a term or field quoted in an error message. */
#define SHOW_MAX 128
#define SHOW_SIZE (SHOW_MAX * 4 + 8)

static void req_clear(fields_requirement *r) {
  free(r->field);
  free(r->value);
}

void fields_selector_free(fields_selector *sel) {
  if (!sel) return;
  for (size_t i = 0; i < sel->n_reqs; i++) req_clear(&sel->reqs[i]);
  free(sel->reqs);
  free(sel);
}

bool fields_selector_empty(const fields_selector *sel) {
  return !sel || sel->n_reqs == 0;
}

/* ---- escaping ------------------------------------------------------------------ */

char *fields_escape_value(const char *value) {
  apim_buf b = {0};
  for (const char *p = value ? value : ""; *p; p++) {
    if (*p == '\\' || *p == ',' || *p == '=') apim_buf_putc(&b, '\\');
    apim_buf_putc(&b, *p);
  }
  return apim_buf_steal(&b);
}

/* Unescapes s[0..n). */
static int unescape(const char *s, size_t n, char **out, keel_error *err) {
  *out = NULL;
  cleanup_free char *v = malloc(n + 1);
  if (!v) return keel_error_set(err, ENOMEM, "field selector: out of memory");
  size_t w = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '\\') {
      if (i + 1 == n)
        return keel_error_set(err, EINVAL,
                              "invalid escape sequence: a value may not end with '\\'");
      c = s[++i];
      if (c != '\\' && c != ',' && c != '=') {
        char raw[2] = {c, '\0'}, q[16];
        return keel_error_set(err, EINVAL, "invalid escape sequence: '\\' followed by %s",
                              apim_quote(q, sizeof(q), raw, 1));
      }
    } else if (c == ',' || c == '=') {
      return keel_error_set(err, EINVAL, "unescaped '%c' in value", c);
    }
    v[w++] = c;
  }
  v[w] = '\0';
  *out = steal_pointer(&v);
  return 0;
}

int fields_unescape_value(const char *s, char **out, keel_error *err) {
  s = s ? s : "";
  int rc = unescape(s, strlen(s), out, err);
  if (rc == -EINVAL) keel_error_wrap(err, "invalid field selector value");
  return rc;
}

/* ---- parsing ------------------------------------------------------------------- */

/* Any total order on (field, operator, value) makes the printed form canonical:
 * parsing a printed selector gives back the same terms, which sort the same. */
static int cmp_req(const void *a, const void *b) {
  const fields_requirement *x = a, *y = b;
  int c = strcmp(x->field, y->field);
  if (c) return c;
  if (x->op != y->op) return x->op < y->op ? -1 : 1;
  return strcmp(x->value, y->value);
}

/* Splits term[0..n) at its first operator. */
static bool split_term(const char *term, size_t n, size_t *lhs_len, fields_operator *op,
                       size_t *rhs_off) {
  for (size_t i = 0; i < n; i++) {
    if (term[i] == '!' && i + 1 < n && term[i + 1] == '=') {
      *lhs_len = i, *op = FIELDS_OP_NOT_EQUALS, *rhs_off = i + 2;
      return true;
    }
    if (term[i] == '=') {
      bool dbl = i + 1 < n && term[i + 1] == '=';
      *lhs_len = i, *op = FIELDS_OP_EQUALS, *rhs_off = i + (dbl ? 2 : 1);
      return true;
    }
  }
  return false;
}

static int parse_term(const char *term, size_t n, fields_requirement *r, keel_error *err) {
  size_t lhs_len, rhs_off;
  char show[SHOW_SIZE];
  if (!split_term(term, n, &lhs_len, &r->op, &rhs_off)) {
    cleanup_free char *t = strndup(term, n);
    return keel_error_set(err, EINVAL, "invalid field selector: term %s: no operator (=, == or !=)",
                          apim_quote(show, sizeof(show), t ? t : "", SHOW_MAX));
  }
  int rc = unescape(term + rhs_off, n - rhs_off, &r->value, err);
  if (rc == -EINVAL) {
    cleanup_free char *t = strndup(term, n);
    return keel_error_wrap(err, "invalid field selector: term %s",
                           apim_quote(show, sizeof(show), t ? t : "", SHOW_MAX));
  }
  if (rc < 0) return rc;
  if (!(r->field = strndup(term, lhs_len)))
    return keel_error_set(err, ENOMEM, "field selector: out of memory");
  return 0;
}

int fields_selector_parse(const char *s, fields_selector **out, keel_error *err) {
  *out = NULL;
  s = s ? s : "";
  fields_selector *sel = calloc(1, sizeof(*sel));
  if (!sel) return keel_error_set(err, ENOMEM, "field selector: out of memory");
  size_t cap = 0, start = 0;
  bool escaped = false;
  for (size_t i = 0;; i++) {
    char c = s[i];
    if (escaped && c) {
      escaped = false;
      continue;
    }
    if (c == '\\') {
      escaped = true;
      continue;
    }
    if (c != ',' && c != '\0') continue;
    if (i > start) {
      if (sel->n_reqs == cap) {
        size_t nc = cap ? cap * 2 : 4;
        fields_requirement *p = realloc(sel->reqs, nc * sizeof(*p));
        if (!p) {
          fields_selector_free(sel);
          return keel_error_set(err, ENOMEM, "field selector: out of memory");
        }
        sel->reqs = p;
        cap = nc;
      }
      fields_requirement *r = &sel->reqs[sel->n_reqs++];
      memset(r, 0, sizeof(*r));
      int rc = parse_term(s + start, i - start, r, err);
      if (rc < 0) {
        fields_selector_free(sel);
        return rc;
      }
    }
    if (c == '\0') break;
    start = i + 1;
  }
  if (sel->n_reqs > 1) qsort(sel->reqs, sel->n_reqs, sizeof(*sel->reqs), cmp_req);
  *out = sel;
  return 0;
}

/* ---- matching ------------------------------------------------------------------ */

static int unsupported(keel_error *err, const char *field) {
  char show[SHOW_SIZE];
  apim_quote(show, sizeof(show), field, SHOW_MAX);
  /* Kubernetes prints the label bare; quote only when it needs escaping. */
  size_t n = strlen(show);
  bool plain = n >= 2 && strlen(field) + 2 == n;
  if (plain && n > 2) {
    show[n - 1] = '\0';
    return keel_error_set(err, EINVAL, "field label not supported: %s", show + 1);
  }
  return keel_error_set(err, EINVAL, "field label not supported: %s", show);
}

int fields_selector_matches(const fields_selector *sel, fields_get_fn get, void *obj,
                            keel_error *err) {
  if (!sel) return 1;
  int result = 1;
  for (size_t i = 0; i < sel->n_reqs; i++) {
    const fields_requirement *r = &sel->reqs[i];
    const char *v = get(obj, r->field);
    if (!v) return unsupported(err, r->field);
    bool eq = strcmp(v, r->value) == 0;
    if (eq != (r->op == FIELDS_OP_EQUALS)) result = 0;
  }
  return result;
}

int fields_selector_validate(const fields_selector *sel, const char *const *allowed,
                             size_t n_allowed, keel_error *err) {
  for (size_t i = 0; sel && i < sel->n_reqs; i++) {
    size_t k = 0;
    while (k < n_allowed && strcmp(allowed[k], sel->reqs[i].field) != 0) k++;
    if (k == n_allowed) return unsupported(err, sel->reqs[i].field);
  }
  return 0;
}

const char *fields_selector_requires_exact_match(const fields_selector *sel, const char *field) {
  for (size_t i = 0; sel && i < sel->n_reqs; i++)
    if (sel->reqs[i].op == FIELDS_OP_EQUALS && strcmp(sel->reqs[i].field, field) == 0)
      return sel->reqs[i].value;
  return NULL;
}

/* ---- printing ------------------------------------------------------------------ */

char *fields_selector_string(const fields_selector *sel) {
  apim_buf b = {0};
  for (size_t i = 0; sel && i < sel->n_reqs; i++) {
    const fields_requirement *r = &sel->reqs[i];
    if (i) apim_buf_putc(&b, ',');
    apim_buf_puts(&b, r->field);
    apim_buf_puts(&b, r->op == FIELDS_OP_EQUALS ? "=" : "!=");
    for (const char *p = r->value; *p; p++) {
      if (*p == '\\' || *p == ',' || *p == '=') apim_buf_putc(&b, '\\');
      apim_buf_putc(&b, *p);
    }
  }
  return apim_buf_steal(&b);
}
