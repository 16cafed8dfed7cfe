/* common/apimachinery/labels.c — see labels.h.
 *
 * A hand-written lexer and recursive-descent parser with one token of
 * lookahead, shaped like Kubernetes' own so that the same inputs are accepted
 * and the same corner cases come out the same way: keywords "in"/"notin" are
 * identifiers wherever a value (or key) is expected, "(" "," ")" inside a set
 * produce empty values the way Kubernetes does ("(,a)" is {"", "a"}), and an
 * "=" with nothing after it means the empty value.
 *
 * Unlike Kubernetes, keys and values are validated as soon as their token is
 * read, so an error points at the offending token's byte position rather than
 * at the whole requirement. Everything is linear in the input; no recursion
 * depth depends on it. */
#include "common/apimachinery/labels.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/text.h"
#include "common/apimachinery/validation.h"
#include "common/base/cleanup.h"

/* Bytes of a token shown in an error message. */
#define TOKEN_SHOW_MAX 64

/* ---- requirements ------------------------------------------------------------ */

static void req_clear(labels_requirement *r) {
  free(r->key);
  for (size_t i = 0; i < r->n_values; i++) free(r->values[i]);
  free(r->values);
  memset(r, 0, sizeof(*r));
}

void labels_selector_free(labels_selector *sel) {
  if (!sel) return;
  for (size_t i = 0; i < sel->n_reqs; i++) req_clear(&sel->reqs[i]);
  free(sel->reqs);
  free(sel);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorts and deduplicates r->values in place. */
static void req_normalize_values(labels_requirement *r) {
  if (r->n_values < 2) return;
  qsort(r->values, r->n_values, sizeof(char *), cmp_str);
  size_t w = 1;
  for (size_t i = 1; i < r->n_values; i++) {
    if (strcmp(r->values[i], r->values[w - 1]) == 0)
      free(r->values[i]);
    else
      r->values[w++] = r->values[i];
  }
  r->n_values = w;
}

static int cmp_req(const void *a, const void *b) {
  const labels_requirement *x = a, *y = b;
  int c = strcmp(x->key, y->key);
  if (c) return c;
  if (x->op != y->op) return x->op < y->op ? -1 : 1;
  for (size_t i = 0; i < x->n_values && i < y->n_values; i++)
    if ((c = strcmp(x->values[i], y->values[i]))) return c;
  return x->n_values < y->n_values ? -1 : x->n_values > y->n_values;
}

/* strconv.ParseInt(s, 10, 64): optional sign, at least one digit, in range. */
static bool parse_int64(const char *s, int64_t *out) {
  bool neg = false;
  if (*s == '+' || *s == '-') neg = *s++ == '-';
  if (!*s) return false;
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* Writes "<what> \"<s>\": reason; reason" for a key or value breaking its rule.
 * Returns false (and fills msg) when s is invalid. */
static bool check_rule(validation_rule rule, const char *s, const char *what, const char *key,
                       char *msg, size_t size) {
  const char *reasons[VALIDATION_MSGS_MAX];
  size_t n = validation_messages(rule, s, reasons);
  if (n == 0) return true;
  char qs[TOKEN_SHOW_MAX * 4 + 8], qk[TOKEN_SHOW_MAX * 4 + 8];
  int w;
  if (key)
    w = snprintf(msg, size, "invalid %s %s for key %s: ", what,
                 apim_quote(qs, sizeof(qs), s, TOKEN_SHOW_MAX),
                 apim_quote(qk, sizeof(qk), key, TOKEN_SHOW_MAX));
  else
    w = snprintf(msg, size, "invalid %s %s: ", what, apim_quote(qs, sizeof(qs), s, TOKEN_SHOW_MAX));
  size_t off = w < 0 ? 0 : (size_t)w;
  for (size_t i = 0; i < n && off < size; i++) {
    w = snprintf(msg + off, size - off, "%s%s", i ? "; " : "", reasons[i]);
    if (w < 0) break;
    off += (size_t)w;
  }
  return false;
}

static bool check_key(const char *key, char *msg, size_t size) {
  return check_rule(VALIDATION_QUALIFIED_NAME, key, "label key", NULL, msg, size);
}

/* Checks one value of a requirement on key with operator op. */
static bool check_value(labels_operator op, const char *key, const char *value, char *msg,
                        size_t size) {
  int64_t ignored;
  if ((op == LABELS_OP_GREATER_THAN || op == LABELS_OP_LESS_THAN) &&
      !parse_int64(value, &ignored)) {
    snprintf(msg, size, "for 'Gt', 'Lt' operators, the value must be an integer");
    return false;
  }
  return check_rule(VALIDATION_LABEL_VALUE, value, "label value", key, msg, size);
}

/* Checks a whole requirement as Kubernetes' NewRequirement does. */
static bool check_requirement(const char *key, labels_operator op, const char *const *values,
                              size_t n, char *msg, size_t size) {
  if (!check_key(key, msg, size)) return false;
  switch (op) {
    case LABELS_OP_IN:
    case LABELS_OP_NOT_IN:
      if (n == 0) {
        snprintf(msg, size, "for 'in', 'notin' operators, values set can't be empty");
        return false;
      }
      break;
    case LABELS_OP_EQUALS:
    case LABELS_OP_DOUBLE_EQUALS:
    case LABELS_OP_NOT_EQUALS:
      if (n != 1) {
        snprintf(msg, size, "exact-match compatibility requires one single value");
        return false;
      }
      break;
    case LABELS_OP_EXISTS:
    case LABELS_OP_DOES_NOT_EXIST:
      if (n != 0) {
        snprintf(msg, size, "values set must be empty for exists and does not exist");
        return false;
      }
      break;
    case LABELS_OP_GREATER_THAN:
    case LABELS_OP_LESS_THAN:
      if (n != 1) {
        snprintf(msg, size, "for 'Gt', 'Lt' operators, exactly one value is required");
        return false;
      }
      break;
  }
  for (size_t i = 0; i < n; i++)
    if (!check_value(op, key, values[i] ? values[i] : "", msg, size)) return false;
  return true;
}

/* ---- a growing list of requirements ------------------------------------------ */

typedef struct req_list {
  labels_requirement *items;
  size_t n, cap;
} req_list;

static labels_requirement *req_list_push(req_list *l) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 4;
    labels_requirement *p = realloc(l->items, cap * sizeof(*p));
    if (!p) return NULL;
    l->items = p;
    l->cap = cap;
  }
  labels_requirement *r = &l->items[l->n++];
  memset(r, 0, sizeof(*r));
  return r;
}

static void req_list_free(req_list *l) {
  for (size_t i = 0; i < l->n; i++) req_clear(&l->items[i]);
  free(l->items);
  memset(l, 0, sizeof(*l));
}

/* Appends a copy of s[0..n) to r->values. */
static int req_add_value(labels_requirement *r, size_t *cap, const char *s, size_t n) {
  if (r->n_values == *cap) {
    size_t c = *cap ? *cap * 2 : 2;
    char **p = realloc(r->values, c * sizeof(*p));
    if (!p) return -ENOMEM;
    r->values = p;
    *cap = c;
  }
  char *v = strndup(s, n);
  if (!v) return -ENOMEM;
  r->values[r->n_values++] = v;
  return 0;
}

/* Moves the list into a new selector in canonical order. */
static int finish(req_list *l, labels_selector **out) {
  labels_selector *sel = calloc(1, sizeof(*sel));
  if (!sel) return -ENOMEM;
  for (size_t i = 0; i < l->n; i++) req_normalize_values(&l->items[i]);
  if (l->n > 1) qsort(l->items, l->n, sizeof(*l->items), cmp_req);
  sel->reqs = l->items;
  sel->n_reqs = l->n;
  memset(l, 0, sizeof(*l));
  *out = sel;
  return 0;
}

/* ---- lexer --------------------------------------------------------------------- */

typedef enum tok_kind {
  T_IDENT,
  T_IN,
  T_NOTIN,
  T_EQ,  /* = */
  T_DEQ, /* == */
  T_NEQ, /* != */
  T_GT,  /* > */
  T_LT,  /* < */
  T_NOT, /* ! */
  T_COMMA,
  T_OPEN,
  T_CLOSE,
  T_EOS,
} tok_kind;

typedef struct token {
  tok_kind kind;
  const char *lit;
  size_t len;
  size_t pos; /* byte offset in the selector */
} token;

typedef struct parser {
  const char *s;
  size_t pos;
  token la;
  bool has_la;
  keel_error *err;
} parser;

static bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}
static bool is_special(char c) {
  return c == '=' || c == '!' || c == '(' || c == ')' || c == ',' || c == '>' || c == '<';
}

static token lex(parser *p) {
  while (is_space(p->s[p->pos])) p->pos++;
  token t = {T_EOS, p->s + p->pos, 0, p->pos};
  char c = p->s[p->pos];
  if (c == '\0') return t;
  if (is_special(c)) {
    char d = p->s[p->pos + 1];
    t.len = 1;
    switch (c) {
      case '=':
        t.kind = T_EQ;
        if (d == '=') t.kind = T_DEQ, t.len = 2;
        break;
      case '!':
        t.kind = T_NOT;
        if (d == '=') t.kind = T_NEQ, t.len = 2;
        break;
      case '(': t.kind = T_OPEN; break;
      case ')': t.kind = T_CLOSE; break;
      case ',': t.kind = T_COMMA; break;
      case '>': t.kind = T_GT; break;
      default: t.kind = T_LT; break;
    }
    p->pos += t.len;
    return t;
  }
  while (p->s[p->pos] && !is_space(p->s[p->pos]) && !is_special(p->s[p->pos])) p->pos++;
  t.len = p->pos - t.pos;
  t.kind = T_IDENT;
  if (t.len == 2 && memcmp(t.lit, "in", 2) == 0) t.kind = T_IN;
  if (t.len == 5 && memcmp(t.lit, "notin", 5) == 0) t.kind = T_NOTIN;
  return t;
}

/* Where a value (or key) is expected the keywords are plain identifiers. */
enum { CTX_VALUES, CTX_OPERATOR };

static token peek(parser *p, int ctx) {
  if (!p->has_la) {
    p->la = lex(p);
    p->has_la = true;
  }
  token t = p->la;
  if (ctx == CTX_VALUES && (t.kind == T_IN || t.kind == T_NOTIN)) t.kind = T_IDENT;
  return t;
}

static token next(parser *p, int ctx) {
  token t = peek(p, ctx);
  p->has_la = false;
  return t;
}

/* "end of string" or the quoted token text. */
static const char *show(token t, char *buf, size_t size) {
  if (t.kind == T_EOS) return "end of string";
  char raw[TOKEN_SHOW_MAX + 1];
  size_t n = t.len < TOKEN_SHOW_MAX ? t.len : TOKEN_SHOW_MAX;
  memcpy(raw, t.lit, n);
  raw[n] = '\0';
  apim_quote(buf, size, raw, TOKEN_SHOW_MAX);
  if (t.len > n && strlen(buf) + 4 <= size) strcat(buf, "...");
  return buf;
}

#define SHOW_SIZE (TOKEN_SHOW_MAX * 4 + 8)

static int fail_req(parser *p, size_t pos, const char *msg) {
  return keel_error_set(p->err, EINVAL, "unable to parse requirement at position %zu: %s", pos,
                        msg);
}

static int fail_found(parser *p, bool in_req, token t, const char *expected) {
  char buf[SHOW_SIZE];
  if (in_req)
    return keel_error_set(p->err, EINVAL,
                          "unable to parse requirement at position %zu: found %s, expected: %s",
                          t.pos, show(t, buf, sizeof(buf)), expected);
  return keel_error_set(p->err, EINVAL,
                        "invalid label selector at position %zu: found %s, expected: %s", t.pos,
                        show(t, buf, sizeof(buf)), expected);
}

/* ---- parser -------------------------------------------------------------------- */

/* Reads one value token into r, validating it for r's key and operator. */
static int take_value(parser *p, labels_requirement *r, size_t *cap, token t) {
  int rc = req_add_value(r, cap, t.lit, t.len);
  if (rc < 0) return keel_error_set(p->err, ENOMEM, "label selector: out of memory");
  char msg[KEEL_ERROR_MESSAGE_MAX];
  if (!check_value(r->op, r->key, r->values[r->n_values - 1], msg, sizeof(msg)))
    return fail_req(p, t.pos, msg);
  return 0;
}

static int take_empty_value(parser *p, labels_requirement *r, size_t *cap, size_t pos) {
  token t = {T_IDENT, "", 0, pos};
  return take_value(p, r, cap, t);
}

/* "(" [values] ")" after in/notin. */
static int parse_set(parser *p, labels_requirement *r, size_t *cap) {
  token t = next(p, CTX_VALUES);
  if (t.kind != T_OPEN) return fail_found(p, true, t, "'('");
  token la = peek(p, CTX_VALUES);
  if (la.kind == T_CLOSE) {
    next(p, CTX_VALUES);
    return take_empty_value(p, r, cap, la.pos);
  }
  if (la.kind != T_IDENT && la.kind != T_COMMA)
    return fail_found(p, true, la, "',', ')' or identifier");
  for (;;) {
    int rc;
    t = next(p, CTX_VALUES);
    if (t.kind == T_IDENT) {
      if ((rc = take_value(p, r, cap, t)) < 0) return rc;
      la = peek(p, CTX_VALUES);
      if (la.kind == T_CLOSE) break;
      if (la.kind != T_COMMA) return fail_found(p, true, la, "',' or ')'");
    } else if (t.kind == T_COMMA) {
      /* A comma with nothing before or after it stands for "". */
      if (r->n_values == 0 && (rc = take_empty_value(p, r, cap, t.pos)) < 0) return rc;
      la = peek(p, CTX_VALUES);
      if (la.kind == T_CLOSE) {
        if ((rc = take_empty_value(p, r, cap, la.pos)) < 0) return rc;
        break;
      }
      if (la.kind == T_COMMA) {
        next(p, CTX_VALUES);
        if ((rc = take_empty_value(p, r, cap, la.pos)) < 0) return rc;
      }
    } else {
      return fail_found(p, true, t, "',', or identifier");
    }
  }
  t = next(p, CTX_VALUES);
  if (t.kind != T_CLOSE) return fail_found(p, true, t, "')'");
  return 0;
}

static int parse_requirement(parser *p, labels_requirement *r) {
  token t = next(p, CTX_VALUES);
  bool not = t.kind == T_NOT;
  if (not ) t = next(p, CTX_VALUES);
  if (t.kind != T_IDENT) return fail_found(p, true, t, "identifier");
  if (!(r->key = strndup(t.lit, t.len)))
    return keel_error_set(p->err, ENOMEM, "label selector: out of memory");
  char msg[KEEL_ERROR_MESSAGE_MAX];
  if (!check_key(r->key, msg, sizeof(msg))) return fail_req(p, t.pos, msg);

  token la = peek(p, CTX_VALUES);
  if (la.kind == T_EOS || la.kind == T_COMMA) {
    r->op = not ? LABELS_OP_DOES_NOT_EXIST : LABELS_OP_EXISTS;
    return 0;
  }
  if (not ) return fail_found(p, true, la, "',' or 'end of string'");

  t = next(p, CTX_OPERATOR);
  switch (t.kind) {
    case T_IN: r->op = LABELS_OP_IN; break;
    case T_NOTIN: r->op = LABELS_OP_NOT_IN; break;
    case T_EQ: r->op = LABELS_OP_EQUALS; break;
    case T_DEQ: r->op = LABELS_OP_DOUBLE_EQUALS; break;
    case T_NEQ: r->op = LABELS_OP_NOT_EQUALS; break;
    case T_GT: r->op = LABELS_OP_GREATER_THAN; break;
    case T_LT: r->op = LABELS_OP_LESS_THAN; break;
    default: return fail_found(p, true, t, "in, notin, =, ==, !=, >, <");
  }

  size_t cap = 0;
  if (r->op == LABELS_OP_IN || r->op == LABELS_OP_NOT_IN) return parse_set(p, r, &cap);
  la = peek(p, CTX_VALUES);
  if (la.kind == T_EOS || la.kind == T_COMMA) return take_empty_value(p, r, &cap, la.pos);
  t = next(p, CTX_VALUES);
  if (t.kind != T_IDENT) return fail_found(p, true, t, "identifier");
  return take_value(p, r, &cap, t);
}

int labels_selector_parse(const char *s, labels_selector **out, keel_error *err) {
  *out = NULL;
  parser p = {.s = s ? s : "", .err = err};
  req_list l = {0};
  int rc = 0;
  for (;;) {
    token la = peek(&p, CTX_VALUES);
    if (la.kind == T_EOS) break;
    if (la.kind != T_IDENT && la.kind != T_NOT) {
      rc = fail_found(&p, false, la, "!, identifier, or 'end of string'");
      break;
    }
    labels_requirement *r = req_list_push(&l);
    if (!r) {
      rc = keel_error_set(err, ENOMEM, "label selector: out of memory");
      break;
    }
    if ((rc = parse_requirement(&p, r)) < 0) break;
    token t = next(&p, CTX_VALUES);
    if (t.kind == T_EOS) break;
    if (t.kind != T_COMMA) {
      rc = fail_found(&p, false, t, "',' or 'end of string'");
      break;
    }
    la = peek(&p, CTX_VALUES);
    if (la.kind != T_IDENT && la.kind != T_NOT) {
      rc = fail_found(&p, false, la, "identifier after ','");
      break;
    }
  }
  if (rc == 0) rc = finish(&l, out);
  if (rc == -ENOMEM) keel_error_set(err, ENOMEM, "label selector: out of memory");
  req_list_free(&l);
  return rc;
}

/* ---- from a metav1.LabelSelector --------------------------------------------- */

static int add_requirement(req_list *l, const char *key, labels_operator op,
                           const char *const *values, size_t n) {
  labels_requirement *r = req_list_push(l);
  if (!r) return -ENOMEM;
  r->op = op;
  if (!(r->key = strdup(key))) return -ENOMEM;
  size_t cap = 0;
  for (size_t i = 0; i < n; i++) {
    const char *v = values[i] ? values[i] : "";
    if (req_add_value(r, &cap, v, strlen(v)) < 0) return -ENOMEM;
  }
  return 0;
}

int labels_selector_from_label_selector(const char *const *match_keys,
                                        const char *const *match_values, size_t n_match,
                                        const labels_expression *exprs, size_t n_exprs,
                                        labels_selector **out, keel_error *err) {
  static const struct {
    const char *name;
    labels_operator op;
  } ops[] = {
      {"In", LABELS_OP_IN},
      {"NotIn", LABELS_OP_NOT_IN},
      {"Exists", LABELS_OP_EXISTS},
      {"DoesNotExist", LABELS_OP_DOES_NOT_EXIST},
  };
  *out = NULL;
  req_list l = {0};
  char msg[KEEL_ERROR_MESSAGE_MAX];
  int rc = 0;
  for (size_t i = 0; i < n_match && rc == 0; i++) {
    const char *key = match_keys[i] ? match_keys[i] : "";
    const char *value = match_values[i] ? match_values[i] : "";
    if (!check_requirement(key, LABELS_OP_EQUALS, &value, 1, msg, sizeof(msg)))
      rc = keel_error_set(err, EINVAL, "matchLabels: %s", msg);
    else
      rc = add_requirement(&l, key, LABELS_OP_EQUALS, &value, 1);
  }
  for (size_t i = 0; i < n_exprs && rc == 0; i++) {
    const labels_expression *e = &exprs[i];
    const char *key = e->key ? e->key : "";
    const char *opname = e->op ? e->op : "";
    size_t k = 0;
    while (k < KEEL_ARRAY_LEN(ops) && strcmp(ops[k].name, opname) != 0) k++;
    if (k == KEEL_ARRAY_LEN(ops)) {
      char q[TOKEN_SHOW_MAX * 4 + 8];
      rc = keel_error_set(err, EINVAL,
                          "matchExpressions[%zu]: %s is not a valid label selector operator", i,
                          apim_quote(q, sizeof(q), opname, TOKEN_SHOW_MAX));
    } else if (!check_requirement(key, ops[k].op, e->values, e->n_values, msg, sizeof(msg))) {
      rc = keel_error_set(err, EINVAL, "matchExpressions[%zu]: %s", i, msg);
    } else {
      rc = add_requirement(&l, key, ops[k].op, e->values, e->n_values);
    }
  }
  if (rc == 0) rc = finish(&l, out);
  if (rc == -ENOMEM) keel_error_set(err, ENOMEM, "label selector: out of memory");
  req_list_free(&l);
  return rc;
}

/* ---- matching ------------------------------------------------------------------ */

bool labels_selector_empty(const labels_selector *sel) {
  return !sel || sel->n_reqs == 0;
}

static bool has_value(const labels_requirement *r, const char *v) {
  return bsearch(&v, r->values, r->n_values, sizeof(char *), cmp_str) != NULL;
}

/* v is the label's value, NULL when the label is absent. */
static bool req_matches(const labels_requirement *r, const char *v) {
  int64_t have, want;
  switch (r->op) {
    case LABELS_OP_EQUALS:
    case LABELS_OP_DOUBLE_EQUALS:
    case LABELS_OP_IN: return v && has_value(r, v);
    case LABELS_OP_NOT_EQUALS:
    case LABELS_OP_NOT_IN: return !v || !has_value(r, v);
    case LABELS_OP_EXISTS: return v != NULL;
    case LABELS_OP_DOES_NOT_EXIST: return v == NULL;
    case LABELS_OP_GREATER_THAN:
    case LABELS_OP_LESS_THAN:
      if (!v || r->n_values != 1 || !parse_int64(v, &have) || !parse_int64(r->values[0], &want))
        return false;
      return r->op == LABELS_OP_GREATER_THAN ? have > want : have < want;
  }
  return false;
}

typedef struct arrays {
  const char *const *keys;
  const char *const *values;
  size_t n;
} arrays;

static const char *arrays_get(void *ctx, const char *key) {
  const arrays *a = ctx;
  for (size_t i = 0; i < a->n; i++)
    if (a->keys[i] && strcmp(a->keys[i], key) == 0) return a->values[i] ? a->values[i] : "";
  return NULL;
}

bool labels_selector_matches_fn(const labels_selector *sel, labels_get_fn get, void *ctx) {
  if (!sel) return true;
  for (size_t i = 0; i < sel->n_reqs; i++)
    if (!req_matches(&sel->reqs[i], get(ctx, sel->reqs[i].key))) return false;
  return true;
}

bool labels_selector_matches(const labels_selector *sel, const char *const *keys,
                             const char *const *values, size_t n) {
  arrays a = {keys, values, n};
  return labels_selector_matches_fn(sel, arrays_get, &a);
}

const char *labels_selector_requires_exact_match(const labels_selector *sel, const char *key) {
  if (!sel) return NULL;
  for (size_t i = 0; i < sel->n_reqs; i++) {
    const labels_requirement *r = &sel->reqs[i];
    if (strcmp(r->key, key) != 0) continue;
    if ((r->op == LABELS_OP_EQUALS || r->op == LABELS_OP_DOUBLE_EQUALS || r->op == LABELS_OP_IN) &&
        r->n_values == 1)
      return r->values[0];
    return NULL;
  }
  return NULL;
}

/* ---- printing ------------------------------------------------------------------ */

char *labels_selector_string(const labels_selector *sel) {
  apim_buf b = {0};
  for (size_t i = 0; sel && i < sel->n_reqs; i++) {
    const labels_requirement *r = &sel->reqs[i];
    if (i) apim_buf_putc(&b, ',');
    if (r->op == LABELS_OP_DOES_NOT_EXIST) apim_buf_putc(&b, '!');
    apim_buf_puts(&b, r->key);
    const char *op = NULL;
    bool set = false;
    switch (r->op) {
      case LABELS_OP_EQUALS: op = "="; break;
      case LABELS_OP_DOUBLE_EQUALS: op = "=="; break;
      case LABELS_OP_NOT_EQUALS: op = "!="; break;
      case LABELS_OP_IN: op = " in ", set = true; break;
      case LABELS_OP_NOT_IN: op = " notin ", set = true; break;
      case LABELS_OP_GREATER_THAN: op = ">"; break;
      case LABELS_OP_LESS_THAN: op = "<"; break;
      case LABELS_OP_EXISTS:
      case LABELS_OP_DOES_NOT_EXIST: break;
    }
    if (!op) continue;
    apim_buf_puts(&b, op);
    if (set) apim_buf_putc(&b, '(');
    for (size_t j = 0; j < r->n_values; j++) {
      if (j) apim_buf_putc(&b, ',');
      apim_buf_puts(&b, r->values[j]);
    }
    if (set) apim_buf_putc(&b, ')');
  }
  return apim_buf_steal(&b);
}
