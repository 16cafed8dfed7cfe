/* common/apimachinery/quantity.c — see quantity.h.
 *
 * Representation: one signed 128-bit count of nano-units. Kubernetes keeps an
 * int64 mantissa with a decimal scale and falls back to arbitrary precision;
 * because every Kubernetes quantity is a whole number of nanos and (here)
 * capped at 2^63-1 units, 2^63 x 10^9 < 2^93 fits with room to spare, so
 * comparison, sums and the canonical form are exact integer arithmetic.
 *
 * Parsing never converts the digits to a number before it knows the result
 * fits: the significant digits are kept as a digit string (multiplied by 2^k
 * digit by digit for a binary suffix), then split at the nano position. Digits
 * left of it decide the value or the cap; any nonzero digit right of it rounds
 * the magnitude up by one nano. So "0.000...0001" with a thousand zeros, or
 * "1e999999", cost time linear in their length and come out right. */
#include "common/apimachinery/quantity.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/text.h"

typedef unsigned __int128 u128;

#define NANO 1000000000LL
/* Kubernetes' maxAllowed (2^63-1 units), in nanos. */
#define CAP ((u128)INT64_MAX * (u128)NANO)
/* Decimal digits of CAP (9.22e27): any number with more is over it. */
#define CAP_DIGITS 28
/* Exponents beyond this are all the same (cap, or round up to 1n). */
#define EXP_CLAMP ((int64_t)1 << 40)
#define SHOW_MAX 64

static const char format_re[] = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$";

static int fail(keel_error *err, const char *s, const char *why) {
  char q[SHOW_MAX * 4 + 8];
  return keel_error_set(err, EINVAL, "quantity %s: %s", apim_quote(q, sizeof(q), s, SHOW_MAX), why);
}

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

/* strconv.ParseInt(s[0..n), 10, 64). */
static bool parse_int64(const char *s, size_t n, int64_t *out) {
  size_t i = 0;
  bool neg = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  if (i == n) return false;
  uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
  for (; i < n; i++) {
    if (!is_digit(s[i])) return false;
    unsigned d = (unsigned)(s[i] - '0');
    if (v > (limit - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = neg ? (int64_t)(0 - v) : (int64_t)v;
  return true;
}

/* Suffix -> (format, decimal exponent or binary shift). */
static bool interpret_suffix(const char *s, size_t n, quantity_format *format, int64_t *exp10,
                             unsigned *shift) {
  static const struct {
    const char *name;
    int exp;
  } dec[] = {{"n", -9}, {"u", -6}, {"m", -3}, {"k", 3}, {"M", 6},
             {"G", 9},  {"T", 12}, {"P", 15}, {"E", 18}};
  static const char *const bin[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  *exp10 = 0;
  *shift = 0;
  *format = QUANTITY_DECIMAL_SI;
  if (n == 0) return true;
  for (size_t i = 0; i < sizeof(dec) / sizeof(dec[0]); i++)
    if (n == 1 && s[0] == dec[i].name[0]) {
      *exp10 = dec[i].exp;
      return true;
    }
  for (unsigned i = 0; i < sizeof(bin) / sizeof(bin[0]); i++)
    if (n == 2 && memcmp(s, bin[i], 2) == 0) {
      *format = QUANTITY_BINARY_SI;
      *shift = 10 * (i + 1);
      return true;
    }
  if (n > 1 && (s[0] == 'e' || s[0] == 'E') && parse_int64(s + 1, n - 1, exp10)) {
    *format = QUANTITY_DECIMAL_EXPONENT;
    return true;
  }
  return false;
}

/* d[0..n) (digit values, d[0] != 0) x 10^e, in nanos, capped; nonzero digits
 * past the nano position round the magnitude up. */
static u128 digits_to_nanos(const unsigned char *d, size_t n, int64_t e) {
  u128 v = 0;
  if (e >= 0) {
    if ((int64_t)n + e > CAP_DIGITS) return CAP;
    for (size_t i = 0; i < n; i++) v = v * 10 + d[i];
    for (int64_t i = 0; i < e; i++) v *= 10;
  } else {
    uint64_t f = (uint64_t)(-e);
    if (f >= n) return 1; /* all digits are below one nano, and d is nonzero */
    size_t head = n - (size_t)f;
    if (head > CAP_DIGITS) return CAP;
    for (size_t i = 0; i < head; i++) v = v * 10 + d[i];
    for (size_t i = head; i < n; i++)
      if (d[i]) {
        v++;
        break;
      }
  }
  return v > CAP ? CAP : v;
}

int quantity_parse(const char *s, unsigned flags, quantity *out, keel_error *err) {
  memset(out, 0, sizeof(*out));
  if (!s || !*s) return fail(err, "", "must not be empty");
  const char *p = s;
  bool neg = false;
  if (*p == '+' || *p == '-') neg = *p++ == '-';
  const char *int_start = p;
  while (is_digit(*p)) p++;
  size_t n_int = (size_t)(p - int_start);
  const char *frac_start = p;
  size_t n_frac = 0;
  if (*p == '.') {
    frac_start = ++p;
    while (is_digit(*p)) p++;
    n_frac = (size_t)(p - frac_start);
  }
  const char *suffix = p;
  while (*p && strchr("eEinumkKMGTP", *p)) p++;
  if (*p == '+' || *p == '-') p++;
  while (is_digit(*p)) p++;
  if (*p) {
    char why[sizeof(format_re) + 40];
    snprintf(why, sizeof(why), "must match the regular expression '%s'", format_re);
    return fail(err, s, why);
  }
  if (n_int + n_frac == 0) return fail(err, s, "unable to parse numeric part of quantity");

  quantity_format format;
  int64_t exp10;
  unsigned shift;
  if (!interpret_suffix(suffix, (size_t)(p - suffix), &format, &exp10, &shift))
    return fail(err, s, "unable to parse quantity's suffix");

  /* Significant digits: the integer and fraction digits without leading
   * zeros; trailing zeros move into the exponent. */
  size_t cap = n_int + n_frac + 24;
  unsigned char stack[256];
  unsigned char *buf = cap * 2 <= sizeof(stack) ? stack : malloc(cap * 2);
  if (!buf) return keel_error_set(err, ENOMEM, "quantity: out of memory");
  size_t n = 0;
  for (size_t i = 0; i < n_int; i++)
    if (n || int_start[i] != '0') buf[n++] = (unsigned char)(int_start[i] - '0');
  for (size_t i = 0; i < n_frac; i++)
    if (n || frac_start[i] != '0') buf[n++] = (unsigned char)(frac_start[i] - '0');
  int64_t tz = 0;
  while (n && buf[n - 1] == 0) n--, tz++;

  u128 nanos = 0;
  if (n) {
    unsigned char *d = buf;
    if (shift) {
      /* Long multiplication by 2^shift, least significant digit first,
       * written right-aligned into the second half of buf. */
      unsigned char *o = buf + cap;
      size_t w = cap;
      u128 carry = 0;
      for (size_t i = n; i-- > 0;) {
        carry += (u128)d[i] << shift;
        o[--w] = (unsigned char)(carry % 10);
        carry /= 10;
      }
      while (carry) {
        o[--w] = (unsigned char)(carry % 10);
        carry /= 10;
      }
      d = o + w;
      n = cap - w;
    }
    if (exp10 > EXP_CLAMP) exp10 = EXP_CLAMP;
    if (exp10 < -EXP_CLAMP) exp10 = -EXP_CLAMP;
    int64_t e = exp10 + 9 + tz - (int64_t)n_frac;
    nanos = digits_to_nanos(d, n, e);
  }
  if (buf != stack) free(buf);

  /* A binary value below one unit cannot be shown in binary units. */
  if (format == QUANTITY_BINARY_SI && nanos > 0 && nanos < (u128)NANO) format = QUANTITY_DECIMAL_SI;
  if (neg && nanos && !(flags & QUANTITY_ALLOW_NEGATIVE))
    return fail(err, s, "must be greater than or equal to 0");
  out->nanos = neg ? -(__int128)nanos : (__int128)nanos;
  out->format = format;
  return 0;
}

quantity quantity_from_int64(int64_t value, quantity_format format) {
  if (value == INT64_MIN) value = -INT64_MAX; /* keep |value| within the cap */
  return (quantity){(__int128)value * NANO, format};
}

quantity quantity_from_milli(int64_t milli, quantity_format format) {
  return (quantity){(__int128)milli * 1000000, format};
}

int quantity_cmp(const quantity *a, const quantity *b) {
  return a->nanos < b->nanos ? -1 : a->nanos > b->nanos;
}

int quantity_sign(const quantity *q) {
  return q->nanos < 0 ? -1 : q->nanos > 0;
}

bool quantity_is_zero(const quantity *q) {
  return q->nanos == 0;
}

int quantity_add(quantity *a, const quantity *b) {
  if (a->nanos == 0) a->format = b->format;
  __int128 sum = a->nanos + b->nanos; /* |each| <= CAP < 2^93: no overflow */
  int rc = 0;
  if (sum > (__int128)CAP) sum = (__int128)CAP, rc = -ERANGE;
  if (sum < -(__int128)CAP) sum = -(__int128)CAP, rc = -ERANGE;
  a->nanos = sum;
  return rc;
}

int quantity_scaled_value(const quantity *q, int scale, int64_t *out) {
  if (scale < -9 || scale > 18) {
    *out = 0;
    return -EINVAL;
  }
  u128 div = 1;
  for (int i = 0; i < scale + 9; i++) div *= 10;
  u128 mag = q->nanos < 0 ? (u128)(-q->nanos) : (u128)q->nanos;
  u128 v = mag / div + (mag % div != 0);
  if (q->nanos >= 0) {
    if (v > (u128)INT64_MAX) {
      *out = INT64_MAX;
      return -ERANGE;
    }
    *out = (int64_t)v;
  } else {
    if (v > (u128)INT64_MAX + 1) {
      *out = INT64_MIN;
      return -ERANGE;
    }
    *out = v == (u128)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
  }
  return 0;
}

int64_t quantity_value(const quantity *q) {
  int64_t v;
  quantity_scaled_value(q, 0, &v); /* cannot overflow: |value| <= 2^63-1 units */
  return v;
}

int quantity_milli_value(const quantity *q, int64_t *out) {
  return quantity_scaled_value(q, -3, out);
}

/* Decimal digits of v into buf (at least 40 bytes); returns the length. */
static size_t u128_str(u128 v, char *buf) {
  char tmp[40];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + (int)(v % 10));
    v /= 10;
  } while (v);
  for (size_t i = 0; i < n; i++) buf[i] = tmp[n - 1 - i];
  buf[n] = '\0';
  return n;
}

size_t quantity_string(const quantity *q, char *buf, size_t size) {
  char out[QUANTITY_STRING_MAX + 16];
  size_t len = 0;
  u128 mag = q->nanos < 0 ? (u128)(-q->nanos) : (u128)q->nanos;
  if (mag == 0) {
    out[len++] = '0';
    out[len] = '\0';
  } else {
    if (q->nanos < 0) out[len++] = '-';
    quantity_format f = q->format;
    if (f == QUANTITY_BINARY_SI && (mag < (u128)1024 * NANO || mag % NANO != 0))
      f = QUANTITY_DECIMAL_SI;
    if (f == QUANTITY_BINARY_SI) {
      static const char *const bin[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
      u128 units = mag / NANO;
      int e = 0;
      while (e < 6 && units % 1024 == 0) units /= 1024, e++;
      len += u128_str(units, out + len);
      len += (size_t)snprintf(out + len, sizeof(out) - len, "%s", bin[e]);
    } else {
      u128 amount = mag;
      int e = -9;
      while (amount % 10 == 0) amount /= 10, e++;
      switch (e % 3) {
        case 1:
        case -2: amount *= 10, e -= 1; break;
        case 2:
        case -1: amount *= 100, e -= 2; break;
      }
      len += u128_str(amount, out + len);
      static const char *const dec[] = {"n", "u", "m", "", "k", "M", "G", "T", "P", "E"};
      if (f == QUANTITY_DECIMAL_SI && e >= -9 && e <= 18)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s", dec[(e + 9) / 3]);
      else if (e != 0)
        len += (size_t)snprintf(out + len, sizeof(out) - len, "e%d", e);
    }
  }
  if (size) {
    size_t n = len < size - 1 ? len : size - 1;
    memcpy(buf, out, n);
    buf[n] = '\0';
  }
  return len;
}
