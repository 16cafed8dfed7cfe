/* common/apimachinery/validation.c — see validation.h.
 *
 * Each rule is a hand-written scan equivalent to the anchored regular
 * expression Kubernetes uses (Go's RE2 `^...$`, where `$` is only the end of
 * text), returning the same set of reasons Kubernetes returns for a value: a
 * length problem and a character problem are reported separately, so a value
 * can fail with both. Reasons are static strings; only the collecting layer
 * allocates. */
#define _GNU_SOURCE /* vasprintf */
#include "common/apimachinery/validation.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/text.h"

/* Values are quoted in messages up to this many bytes. */
#define QUOTE_MAX 256

/* ---- messages -------------------------------------------------------------- */

#define MSG_EMPTY "must be non-empty"
#define MSG_MAX_15 "must be no more than 15 characters"
#define MSG_MAX_63 "must be no more than 63 characters"
#define MSG_MAX_253 "must be no more than 253 characters"
#define MSG_DNS1123_LABEL                                                                  \
  "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', " \
  "and must start and end with an alphanumeric character"
#define MSG_NO_DOTS "must not contain dots"
#define MSG_DNS1123_SUBDOMAIN                                                           \
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, " \
  "'-' or '.', and must start and end with an alphanumeric character"
#define MSG_DNS1035_LABEL                                                                   \
  "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with " \
  "an alphabetic character, and end with an alphanumeric character"
#define MSG_QNAME_CHARS                                                                    \
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with " \
  "an alphanumeric character"
#define MSG_QNAME_SLASHES                                 \
  "a qualified name " MSG_QNAME_CHARS                     \
  " with an optional DNS subdomain prefix and '/' (e.g. " \
  "'example.com/MyName')"
#define MSG_LABEL_VALUE                                                                    \
  "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
  "or '.', and must start and end with an alphanumeric character"
#define MSG_ENV_VAR                                                                        \
  "a valid environment variable name must consist of alphabetic characters, digits, '_', " \
  "'-', or '.', and must not start with a digit"
#define MSG_C_IDENT                                                                         \
  "a valid C identifier must start with alphabetic character or '_', followed by a string " \
  "of alphanumeric characters or '_'"
#define MSG_PORT_RANGE "must be between 1 and 65535, inclusive"

/* ---- character classes ---------------------------------------------------- */

static bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
static bool is_lower(unsigned char c) {
  return c >= 'a' && c <= 'z';
}
static bool is_alpha(unsigned char c) {
  return is_lower(c) || (c >= 'A' && c <= 'Z');
}
static bool is_alnum(unsigned char c) {
  return is_alpha(c) || is_digit(c);
}
static unsigned char fold(unsigned char c, bool fold_case) {
  return fold_case && c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n) (first may also need a letter). */
static bool dns_label_chars(const unsigned char *s, size_t n, bool letter_first, bool fold_case) {
  if (n == 0) return false;
  unsigned char first = fold(s[0], fold_case), last = fold(s[n - 1], fold_case);
  if (letter_first ? !is_lower(first) : !(is_lower(first) || is_digit(first))) return false;
  if (!(is_lower(last) || is_digit(last))) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = fold(s[i], fold_case);
    if (!(is_lower(c) || is_digit(c) || c == '-')) return false;
  }
  return true;
}

/* label(\.label)* over s[0..n). */
static bool dns_subdomain_chars(const unsigned char *s, size_t n, bool fold_case) {
  size_t start = 0;
  for (size_t i = 0; i <= n; i++) {
    if (i == n || s[i] == '.') {
      if (!dns_label_chars(s + start, i - start, false, fold_case)) return false;
      start = i + 1;
    }
  }
  return true;
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] over s[0..n). */
static bool qname_chars(const unsigned char *s, size_t n) {
  if (n == 0 || !is_alnum(s[0]) || !is_alnum(s[n - 1])) return false;
  for (size_t i = 0; i < n; i++)
    if (!(is_alnum(s[i]) || s[i] == '-' || s[i] == '_' || s[i] == '.')) return false;
  return true;
}

/* ---- rules ----------------------------------------------------------------- */

static size_t add_msg(const char **msgs, size_t n, const char *m) {
  if (n < VALIDATION_MSGS_MAX) msgs[n++] = m;
  return n;
}

static size_t subdomain_msgs(const unsigned char *s, size_t len, bool fold_case, const char **msgs,
                             size_t n, bool prefix_part) {
  if (len > VALIDATION_DNS1123_SUBDOMAIN_MAX)
    n = add_msg(msgs, n, prefix_part ? "prefix part " MSG_MAX_253 : MSG_MAX_253);
  if (!dns_subdomain_chars(s, len, fold_case))
    n = add_msg(msgs, n,
                prefix_part ? "prefix part " MSG_DNS1123_SUBDOMAIN : MSG_DNS1123_SUBDOMAIN);
  return n;
}

static size_t qualified_name_msgs(const unsigned char *s, bool fold_case, const char **msgs) {
  size_t n = 0, len = strlen((const char *)s);
  const unsigned char *slash = (const unsigned char *)strchr((const char *)s, '/');
  const unsigned char *name = s;
  if (slash) {
    if (strchr((const char *)slash + 1, '/')) return add_msg(msgs, n, MSG_QNAME_SLASHES);
    size_t plen = (size_t)(slash - s);
    if (plen == 0)
      n = add_msg(msgs, n, "prefix part " MSG_EMPTY);
    else
      n = subdomain_msgs(s, plen, fold_case, msgs, n, true);
    name = slash + 1;
  }
  size_t nlen = len - (size_t)(name - s);
  if (nlen == 0)
    n = add_msg(msgs, n, "name part " MSG_EMPTY);
  else if (nlen > VALIDATION_QUALIFIED_NAME_MAX)
    n = add_msg(msgs, n, "name part " MSG_MAX_63);
  if (!qname_chars(name, nlen)) n = add_msg(msgs, n, "name part " MSG_QNAME_CHARS);
  return n;
}

static size_t port_name_msgs(const unsigned char *s, const char **msgs) {
  size_t n = 0, len = strlen((const char *)s);
  bool charset = len > 0, letter = false;
  for (size_t i = 0; i < len; i++) {
    if (is_lower(s[i])) letter = true;
    if (!(is_lower(s[i]) || is_digit(s[i]) || s[i] == '-')) charset = false;
  }
  if (len > VALIDATION_PORT_NAME_MAX) n = add_msg(msgs, n, MSG_MAX_15);
  if (!charset)
    n = add_msg(msgs, n, "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (!letter) n = add_msg(msgs, n, "must contain at least one letter (a-z)");
  if (strstr((const char *)s, "--")) n = add_msg(msgs, n, "must not contain consecutive hyphens");
  if (len > 0 && (s[0] == '-' || s[len - 1] == '-'))
    n = add_msg(msgs, n, "must not begin or end with a hyphen");
  return n;
}

size_t validation_messages(validation_rule rule, const char *value,
                           const char *msgs[VALIDATION_MSGS_MAX]) {
  const unsigned char *s = (const unsigned char *)(value ? value : "");
  size_t len = strlen((const char *)s), n = 0;
  switch (rule) {
    case VALIDATION_DNS1123_SUBDOMAIN: return subdomain_msgs(s, len, false, msgs, 0, false);
    case VALIDATION_DNS1123_LABEL:
      if (len > VALIDATION_DNS1123_LABEL_MAX) n = add_msg(msgs, n, MSG_MAX_63);
      if (!dns_label_chars(s, len, false, false)) {
        /* A valid subdomain that is not a label can only be one with dots. */
        n = add_msg(msgs, n, dns_subdomain_chars(s, len, false) ? MSG_NO_DOTS : MSG_DNS1123_LABEL);
      }
      return n;
    case VALIDATION_DNS1035_LABEL:
      if (len > VALIDATION_DNS1035_LABEL_MAX) n = add_msg(msgs, n, MSG_MAX_63);
      if (!dns_label_chars(s, len, true, false)) n = add_msg(msgs, n, MSG_DNS1035_LABEL);
      return n;
    case VALIDATION_QUALIFIED_NAME: return qualified_name_msgs(s, false, msgs);
    case VALIDATION_LABEL_VALUE:
      if (len > VALIDATION_LABEL_VALUE_MAX) n = add_msg(msgs, n, MSG_MAX_63);
      if (len > 0 && !qname_chars(s, len)) n = add_msg(msgs, n, MSG_LABEL_VALUE);
      return n;
    case VALIDATION_ENV_VAR_NAME: {
      bool ok = len > 0 && !is_digit(s[0]);
      for (size_t i = 0; i < len && ok; i++)
        ok = is_alnum(s[i]) || s[i] == '-' || s[i] == '.' || s[i] == '_';
      if (!ok) n = add_msg(msgs, n, MSG_ENV_VAR);
      if (strcmp((const char *)s, ".") == 0)
        n = add_msg(msgs, n, "must not be '.'");
      else if (strcmp((const char *)s, "..") == 0)
        n = add_msg(msgs, n, "must not be '..'");
      else if (strncmp((const char *)s, "..", 2) == 0)
        n = add_msg(msgs, n, "must not start with '..'");
      return n;
    }
    case VALIDATION_C_IDENTIFIER: {
      bool ok = len > 0 && (is_alpha(s[0]) || s[0] == '_');
      for (size_t i = 0; i < len && ok; i++) ok = is_alnum(s[i]) || s[i] == '_';
      if (!ok) n = add_msg(msgs, n, MSG_C_IDENT);
      return n;
    }
    case VALIDATION_PORT_NAME: return port_name_msgs(s, msgs);
    case VALIDATION_PATH_SEGMENT_NAME:
      if (strcmp((const char *)s, ".") == 0) n = add_msg(msgs, n, "may not be '.'");
      if (strcmp((const char *)s, "..") == 0) n = add_msg(msgs, n, "may not be '..'");
      if (strchr((const char *)s, '/')) n = add_msg(msgs, n, "may not contain '/'");
      if (strchr((const char *)s, '%')) n = add_msg(msgs, n, "may not contain '%'");
      return n;
  }
  return add_msg(msgs, 0, "unknown validation rule");
}

/* ---- collecting ------------------------------------------------------------ */

size_t validation_errors_count(const validation_errors *errs) {
  return errs ? errs->n + errs->dropped : 0;
}

/* Takes ownership of msg (may be NULL after an allocation failure). */
static void add_owned(validation_errors *errs, char *msg) {
  if (!msg || errs->n >= VALIDATION_ERRORS_MAX) {
    free(msg);
    errs->dropped++;
    return;
  }
  if (errs->n == errs->cap) {
    size_t cap = errs->cap ? errs->cap * 2 : 8;
    char **items = realloc(errs->items, cap * sizeof(*items));
    if (!items) {
      free(msg);
      errs->dropped++;
      return;
    }
    errs->items = items;
    errs->cap = cap;
  }
  errs->items[errs->n++] = msg;
}

void validation_errors_addf(validation_errors *errs, const char *fmt, ...) {
  if (!errs) return;
  va_list ap;
  va_start(ap, fmt);
  char *msg = NULL;
  if (vasprintf(&msg, fmt, ap) < 0) msg = NULL;
  va_end(ap);
  add_owned(errs, msg);
}

void validation_errors_add_invalid(validation_errors *errs, const char *path, const char *value,
                                   const char *detail) {
  if (!errs) return;
  apim_buf b = {0};
  apim_buf_printf(&b, "%s: Invalid value: ", path ? path : "");
  apim_buf_quote(&b, value ? value : "", QUOTE_MAX);
  if (detail) apim_buf_printf(&b, ": %s", detail);
  add_owned(errs, apim_buf_steal(&b));
}

void validation_errors_add_invalid_int(validation_errors *errs, const char *path, int64_t value,
                                       const char *detail) {
  if (detail)
    validation_errors_addf(errs, "%s: Invalid value: %" PRId64 ": %s", path ? path : "", value,
                           detail);
  else
    validation_errors_addf(errs, "%s: Invalid value: %" PRId64, path ? path : "", value);
}

void validation_errors_add_required(validation_errors *errs, const char *path, const char *detail) {
  if (detail)
    validation_errors_addf(errs, "%s: Required value: %s", path ? path : "", detail);
  else
    validation_errors_addf(errs, "%s: Required value", path ? path : "");
}

void validation_errors_add_too_long(validation_errors *errs, const char *path, size_t max) {
  validation_errors_addf(errs, "%s: Too long: must have at most %zu bytes", path ? path : "", max);
}

char *validation_errors_format(const validation_errors *errs) {
  apim_buf b = {0};
  size_t total = validation_errors_count(errs);
  if (total == 1 && errs->n == 1) {
    apim_buf_puts(&b, errs->items[0]);
  } else if (total > 0) {
    apim_buf_printf(&b, "%zu errors: ", total);
    for (size_t i = 0; i < errs->n; i++) {
      if (i) apim_buf_puts(&b, "; ");
      apim_buf_puts(&b, errs->items[i]);
    }
    if (errs->dropped) apim_buf_printf(&b, "%sand %zu more", errs->n ? ", " : "", errs->dropped);
  }
  return apim_buf_steal(&b);
}

int validation_errors_to_error(const validation_errors *errs, keel_error *err) {
  if (validation_errors_count(errs) == 0) return 0;
  char *msg = validation_errors_format(errs);
  int rc = keel_error_set(err, EINVAL, "%s",
                          msg ? msg : "invalid object (out of memory formatting errors)");
  free(msg);
  return rc;
}

void validation_errors_free(validation_errors *errs) {
  if (!errs) return;
  for (size_t i = 0; i < errs->n; i++) free(errs->items[i]);
  free(errs->items);
  *errs = (validation_errors)VALIDATION_ERRORS_INIT;
}

/* ---- checks ------------------------------------------------------------------ */

bool validation_check(validation_errors *errs, const char *path, validation_rule rule,
                      const char *value) {
  const char *msgs[VALIDATION_MSGS_MAX];
  size_t n = validation_messages(rule, value, msgs);
  for (size_t i = 0; i < n; i++) validation_errors_add_invalid(errs, path, value, msgs[i]);
  return n == 0;
}

bool validation_dns1123_subdomain(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_DNS1123_SUBDOMAIN, value);
}
bool validation_dns1123_label(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_DNS1123_LABEL, value);
}
bool validation_dns1035_label(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_DNS1035_LABEL, value);
}
bool validation_qualified_name(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_QUALIFIED_NAME, value);
}
bool validation_label_value(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_LABEL_VALUE, value);
}
bool validation_env_var_name(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_ENV_VAR_NAME, value);
}
bool validation_c_identifier(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_C_IDENTIFIER, value);
}
bool validation_port_name(validation_errors *errs, const char *path, const char *value) {
  return validation_check(errs, path, VALIDATION_PORT_NAME, value);
}

bool validation_port_number(validation_errors *errs, const char *path, int64_t port) {
  if (port >= 1 && port <= 65535) return true;
  validation_errors_add_invalid_int(errs, path, port, MSG_PORT_RANGE);
  return false;
}

bool validation_labels(validation_errors *errs, const char *path, const char *const *keys,
                       const char *const *values, size_t n) {
  bool ok = true;
  for (size_t i = 0; i < n; i++) {
    ok &= validation_check(errs, path, VALIDATION_QUALIFIED_NAME, keys[i]);
    ok &= validation_check(errs, path, VALIDATION_LABEL_VALUE, values[i]);
  }
  return ok;
}

bool validation_annotations(validation_errors *errs, const char *path, const char *const *keys,
                            const char *const *values, size_t n) {
  bool ok = true;
  size_t total = 0;
  for (size_t i = 0; i < n; i++) {
    const char *key = keys[i] ? keys[i] : "";
    const char *msgs[VALIDATION_MSGS_MAX];
    /* Kubernetes checks the lower-cased key, which only matters for the
     * prefix (the name part allows upper case anyway), and reports the key
     * as written. */
    size_t m = qualified_name_msgs((const unsigned char *)key, true, msgs);
    for (size_t j = 0; j < m; j++) validation_errors_add_invalid(errs, path, key, msgs[j]);
    ok &= m == 0;
    size_t kl = strlen(key), vl = values[i] ? strlen(values[i]) : 0;
    total = total > SIZE_MAX - kl - vl ? SIZE_MAX : total + kl + vl;
  }
  if (total > VALIDATION_ANNOTATIONS_TOTAL_MAX) {
    validation_errors_add_too_long(errs, path, VALIDATION_ANNOTATIONS_TOTAL_MAX);
    ok = false;
  }
  return ok;
}
