/* common/manifest/resolve.c — what a plain YAML scalar means.
 *
 * Kubernetes reads manifests with sigs.k8s.io/yaml, which is go-yaml v2 under
 * YAML 1.1 rules followed by a conversion to JSON. kubectl apply sends that
 * JSON to the apiserver untyped, so whatever go-yaml resolves a plain scalar
 * to is what the apiserver's strict decoder sees: `value: yes` is the boolean
 * true and a string field refuses it. We resolve exactly as go-yaml v2's
 * resolve() does, so a manifest means the same here as with kubectl:
 *
 *   - a table lookup first (when the first byte could start an entry):
 *     y Y yes Yes YES on On ON true True TRUE       -> true
 *     n N no No NO off Off OFF false False FALSE    -> false
 *     "" ~ null Null NULL                           -> null
 *     .inf .Inf .INF +.inf ... -.inf ...  .nan .NaN .NAN -> float
 *   - starting with '.': a float (".5", ".5e3");
 *   - starting with a digit or sign: Go's strconv.ParseInt(s, 0, 64) after
 *     removing '_' (decimal, 0x hex, 0o and leading-0 octal, 0b binary), then
 *     ParseUint, then a float matching [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)
 *     ([eE][-+]?[0-9]+)? (so "08" is the float 8);
 *     a YYYY-M-D[(T|t| )h:m:s[.frac][Z|±hh:mm]] timestamp stays a string
 *     (go-yaml v2 hands timestamps to untyped targets as strings);
 *   - everything else is a string.
 *
 * The emitter quotes exactly the strings this would misread, so output reads
 * back as written. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest/internal.h"

typedef struct word {
  const char *s;
  mres_type type;
  bool b;
  double f;
} word;

static const word words[] = {
    {"y", MR_BOOL, true, 0},
    {"Y", MR_BOOL, true, 0},
    {"yes", MR_BOOL, true, 0},
    {"Yes", MR_BOOL, true, 0},
    {"YES", MR_BOOL, true, 0},
    {"true", MR_BOOL, true, 0},
    {"True", MR_BOOL, true, 0},
    {"TRUE", MR_BOOL, true, 0},
    {"on", MR_BOOL, true, 0},
    {"On", MR_BOOL, true, 0},
    {"ON", MR_BOOL, true, 0},
    {"n", MR_BOOL, false, 0},
    {"N", MR_BOOL, false, 0},
    {"no", MR_BOOL, false, 0},
    {"No", MR_BOOL, false, 0},
    {"NO", MR_BOOL, false, 0},
    {"false", MR_BOOL, false, 0},
    {"False", MR_BOOL, false, 0},
    {"FALSE", MR_BOOL, false, 0},
    {"off", MR_BOOL, false, 0},
    {"Off", MR_BOOL, false, 0},
    {"OFF", MR_BOOL, false, 0},
    {"~", MR_NULL, false, 0},
    {"null", MR_NULL, false, 0},
    {"Null", MR_NULL, false, 0},
    {"NULL", MR_NULL, false, 0},
    {".nan", MR_FLOAT, false, NAN},
    {".NaN", MR_FLOAT, false, NAN},
    {".NAN", MR_FLOAT, false, NAN},
    {".inf", MR_FLOAT, false, INFINITY},
    {".Inf", MR_FLOAT, false, INFINITY},
    {".INF", MR_FLOAT, false, INFINITY},
    {"+.inf", MR_FLOAT, false, INFINITY},
    {"+.Inf", MR_FLOAT, false, INFINITY},
    {"+.INF", MR_FLOAT, false, INFINITY},
    {"-.inf", MR_FLOAT, false, -INFINITY},
    {"-.Inf", MR_FLOAT, false, -INFINITY},
    {"-.INF", MR_FLOAT, false, -INFINITY},
};

static int digit_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'z') return c - 'a' + 10;
  if (c >= 'A' && c <= 'Z') return c - 'A' + 10;
  return 99;
}

/* Go's strconv.ParseUint(s, 0, 64) on an unsigned text (no sign). */
static bool parse_go_uint(const char *s, size_t len, uint64_t *out) {
  unsigned base = 10;
  size_t i = 0;
  if (len == 0) return false;
  if (s[0] == '0' && len > 1) {
    char p = s[1];
    if (p == 'x' || p == 'X') {
      base = 16;
      i = 2;
    } else if (p == 'o' || p == 'O') {
      base = 8;
      i = 2;
    } else if (p == 'b' || p == 'B') {
      base = 2;
      i = 2;
    } else {
      base = 8;
      i = 1;
    }
    if (i == len) return false;
  }
  uint64_t v = 0;
  for (; i < len; i++) {
    int d = digit_val(s[i]);
    if (d >= (int)base) return false;
    if (v > (UINT64_MAX - (uint64_t)d) / base) return false;
    v = v * base + (uint64_t)d;
  }
  *out = v;
  return true;
}

static bool float_syntax(const char *s, size_t len) {
  size_t i = 0;
  if (i < len && (s[i] == '+' || s[i] == '-')) i++;
  size_t int_digits = 0, frac_digits = 0;
  while (i < len && isdigit((unsigned char)s[i])) i++, int_digits++;
  if (i < len && s[i] == '.') {
    i++;
    while (i < len && isdigit((unsigned char)s[i])) i++, frac_digits++;
    /* "\.[0-9]+" or "[0-9]+(\.[0-9]*)?" */
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < len && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < len && (s[i] == '+' || s[i] == '-')) i++;
    size_t e = 0;
    while (i < len && isdigit((unsigned char)s[i])) i++, e++;
    if (!e) return false;
  }
  return i == len;
}

static size_t digits_at(const char *s, size_t len, size_t *i, size_t max) {
  size_t n = 0;
  while (*i < len && n < max && isdigit((unsigned char)s[*i])) (*i)++, n++;
  return n;
}

static int num_at(const char *s, size_t from, size_t n) {
  int v = 0;
  for (size_t k = 0; k < n; k++) v = v * 10 + (s[from + k] - '0');
  return v;
}

/* go-yaml v2's parseTimestamp formats: 2006-1-2T15:4:5.999999999Z07:00 (also
 * 't'), "2006-1-2 15:4:5.999999999" and 2006-1-2, with Go's field ranges. */
static bool is_timestamp(const char *s, size_t len) {
  size_t i = 0, n;
  if (digits_at(s, len, &i, 5) != 4 || i == len || s[i] != '-') return false;
  i++;
  size_t from = i;
  if (!(n = digits_at(s, len, &i, 2)) || i == len || s[i] != '-') return false;
  int month = num_at(s, from, n);
  i++;
  from = i;
  if (!(n = digits_at(s, len, &i, 2))) return false;
  int day = num_at(s, from, n);
  if (month < 1 || month > 12 || day < 1 || day > 31) return false;
  if (i == len) return true;
  char sep = s[i];
  if (sep != 'T' && sep != 't' && sep != ' ') return false;
  i++;
  int hms[3];
  for (int k = 0; k < 3; k++) {
    from = i;
    if (!(n = digits_at(s, len, &i, 2))) return false;
    hms[k] = num_at(s, from, n);
    if (k < 2) {
      if (i == len || s[i] != ':') return false;
      i++;
    }
  }
  if (hms[0] > 23 || hms[1] > 59 || hms[2] > 59) return false;
  if (i < len && s[i] == '.') {
    i++;
    if (!digits_at(s, len, &i, 9)) return false;
  }
  if (sep == ' ') return i == len;
  if (i == len) return false;
  if (s[i] == 'Z') return i + 1 == len;
  if (s[i] != '+' && s[i] != '-') return false;
  i++;
  from = i;
  if (digits_at(s, len, &i, 2) != 2 || num_at(s, from, 2) > 23) return false;
  if (i == len || s[i] != ':') return false;
  i++;
  from = i;
  if (digits_at(s, len, &i, 2) != 2 || num_at(s, from, 2) > 59) return false;
  return i == len;
}

/* Go's ParseFloat fails on overflow ("1e999"), and go-yaml then keeps the
 * text as a string. */
static void set_float(const char *buf, mres *out) {
  double f = strtod(buf, NULL);
  if (isinf(f)) return;
  out->type = MR_FLOAT;
  out->f = f;
}

void mres_plain(const char *s, size_t len, mres *out) {
  memset(out, 0, sizeof(*out));
  out->type = MR_STR;
  if (len == 0) {
    out->type = MR_NULL;
    return;
  }
  char c = s[0];
  if (!strchr("yYnNtTfFoO~+-.0123456789", c)) return;
  for (size_t k = 0; k < sizeof(words) / sizeof(words[0]); k++) {
    if (strlen(words[k].s) == len && memcmp(words[k].s, s, len) == 0) {
      out->type = words[k].type;
      out->b = words[k].b;
      out->f = words[k].f;
      return;
    }
  }
  if (len > 512) return; /* no number is this long; keeps the buffers small */
  char buf[520];
  if (c == '.') {
    /* Go's ParseFloat on ".5", ".5e-3" (no underscores, no hex). */
    memcpy(buf, s, len);
    buf[len] = 0;
    if (float_syntax(buf, len)) set_float(buf, out);
    return;
  }
  if (c != '+' && c != '-' && !isdigit((unsigned char)c)) return;
  if (is_timestamp(s, len)) {
    out->type = MR_TIMESTAMP;
    return;
  }
  size_t n = 0;
  for (size_t k = 0; k < len; k++)
    if (s[k] != '_') buf[n++] = s[k];
  buf[n] = 0;
  /* ParseInt(plain, 0, 64): an optional sign, then ParseUint's syntax. */
  bool neg = buf[0] == '-';
  size_t skip = (buf[0] == '-' || buf[0] == '+') ? 1 : 0;
  uint64_t u;
  if (parse_go_uint(buf + skip, n - skip, &u)) {
    if (!neg && u <= (uint64_t)INT64_MAX) {
      out->type = MR_INT;
      out->i = (int64_t)u;
      return;
    }
    if (neg && u <= (uint64_t)INT64_MAX + 1) {
      out->type = MR_INT;
      out->i = u == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)u;
      return;
    }
    if (!skip) {
      /* ParseUint: no sign allowed. */
      out->type = MR_UINT;
      out->u = u;
      return;
    }
  }
  if (float_syntax(buf, n)) set_float(buf, out);
}

/* go-yaml v2's isBase60Float: [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)? */
static bool is_base60(const char *s, size_t len) {
  size_t i = 0;
  if (i < len && (s[i] == '+' || s[i] == '-')) i++;
  if (i == len || !isdigit((unsigned char)s[i])) return false;
  i++;
  while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '_')) i++;
  int groups = 0;
  while (i < len && s[i] == ':') {
    i++;
    size_t d = 0;
    size_t from = i;
    while (i < len && isdigit((unsigned char)s[i]) && d < 2) i++, d++;
    if (d == 0 || (d == 2 && s[from] > '5')) return false;
    groups++;
  }
  if (!groups) return false;
  if (i < len && s[i] == '.') {
    i++;
    while (i < len && (isdigit((unsigned char)s[i]) || s[i] == '_')) i++;
  }
  return i == len;
}

bool mres_plain_is_string(const char *s, size_t len) {
  mres r;
  mres_plain(s, len, &r);
  if (r.type != MR_STR) return false;
  if (len == 2 && s[0] == '<' && s[1] == '<') return false;
  return !is_base60(s, len);
}

void mres_format_float(double f, int bits, char *buf, size_t n) {
  if (isnan(f)) {
    snprintf(buf, n, ".nan");
    return;
  }
  if (isinf(f)) {
    snprintf(buf, n, f > 0 ? ".inf" : "-.inf");
    return;
  }
  /* The fewest significant digits that read back as the same value. */
  char e[64];
  int prec;
  for (prec = 1; prec <= 17; prec++) {
    snprintf(e, sizeof(e), "%.*e", prec - 1, f);
    if (bits == 32 ? strtof(e, NULL) == (float)f : strtod(e, NULL) == f) break;
  }
  if (prec > 17) prec = 17;
  /* e is d.ddde±XX: the digits and the decimal exponent. */
  char digits[32];
  size_t nd = 0;
  const char *p = e;
  bool neg = *p == '-';
  if (neg) p++;
  for (; *p && *p != 'e'; p++)
    if (isdigit((unsigned char)*p)) digits[nd++] = *p;
  digits[nd] = 0;
  int exp = atoi(p + 1);
  while (nd > 1 && digits[nd - 1] == '0') digits[--nd] = 0;
  if (f == 0) {
    snprintf(buf, n, neg ? "-0" : "0");
    return;
  }
  /* Go's shortest 'g' decides with precision 6: exponent form when the
   * decimal exponent is below -4 or at least 6 (1e+06, 1.5e-05). */
  int eprec = 6;
  if (exp < -4 || exp >= eprec) {
    /* d[.ddd]e±XX, at least two exponent digits. */
    snprintf(buf, n, "%s%c%s%se%c%02d", neg ? "-" : "", digits[0], nd > 1 ? "." : "",
             nd > 1 ? digits + 1 : "", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    return;
  }
  char out[64];
  size_t o = 0;
  if (neg) out[o++] = '-';
  if (exp < 0) {
    out[o++] = '0';
    out[o++] = '.';
    for (int k = -1; k > exp; k--) out[o++] = '0';
    for (size_t k = 0; k < nd; k++) out[o++] = digits[k];
  } else {
    for (int k = 0; k <= exp; k++) out[o++] = (size_t)k < nd ? digits[k] : '0';
    if ((int)nd > exp + 1) {
      out[o++] = '.';
      for (size_t k = (size_t)exp + 1; k < nd; k++) out[o++] = digits[k];
    }
  }
  out[o] = 0;
  snprintf(buf, n, "%s", out);
}
