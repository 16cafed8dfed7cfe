/* common/protojson/text.c — the text forms protojson needs beyond jansson's:
 * RFC 3339 timestamps (civil-date arithmetic, no timegm or time zones), base64
 * and shortest double formatting. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/protojson/internal.h"

/* Timestamp's documented range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define TS_MIN_SECONDS (-62135596800LL)
#define TS_MAX_SECONDS 253402300799LL

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  unsigned yoe = (unsigned)(y - era * 400);
  unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  unsigned doe = (unsigned)(z - era * 146097);
  unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int pj_format_timestamp(int64_t seconds, int32_t nanos, char *buf, size_t n) {
  if (seconds < TS_MIN_SECONDS || seconds > TS_MAX_SECONDS || nanos < 0 || nanos > 999999999)
    return -1;
  int64_t days = seconds / 86400, rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    days--;
  }
  int64_t y;
  unsigned mo, d;
  civil_from_days(days, &y, &mo, &d);
  int len = snprintf(buf, n, "%04d-%02u-%02uT%02d:%02d:%02d", (int)y, mo, d, (int)(rem / 3600),
                     (int)(rem / 60 % 60), (int)(rem % 60));
  if (len < 0 || (size_t)len >= n) return -1;
  if (nanos) {
    int extra;
    if (nanos % 1000000 == 0)
      extra = snprintf(buf + len, n - (size_t)len, ".%03d", nanos / 1000000);
    else if (nanos % 1000 == 0)
      extra = snprintf(buf + len, n - (size_t)len, ".%06d", nanos / 1000);
    else
      extra = snprintf(buf + len, n - (size_t)len, ".%09d", nanos);
    if (extra < 0 || (size_t)(len + extra) >= n) return -1;
    len += extra;
  }
  if ((size_t)len + 2 > n) return -1;
  buf[len] = 'Z';
  buf[len + 1] = 0;
  return 0;
}

static bool digits(const char *s, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int pj_parse_timestamp(const char *s, int64_t *seconds, int32_t *nanos) {
  int y, mo, d, h, mi, sec;
  /* YYYY-MM-DDTHH:MM:SS: every position is checked before it is read. */
  if (strlen(s) < 20) return -1;
  if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
      !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2, &h) ||
      s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &sec))
    return -1;
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 ||
      sec > 59)
    return -1;
  const char *p = s + 19;
  int32_t ns = 0;
  if (*p == '.') {
    p++;
    int n = 0;
    while (p[n] >= '0' && p[n] <= '9') n++;
    if (n < 1 || n > 9) return -1;
    for (int i = 0; i < 9; i++) ns = ns * 10 + (i < n ? p[i] - '0' : 0);
    p += n;
  }
  int64_t offset = 0;
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om;
    if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
      return -1;
    offset = (int64_t)oh * 3600 + om * 60;
    if (*p == '-') offset = -offset;
    p += 6;
  } else {
    return -1;
  }
  if (*p) return -1;
  int64_t t =
      days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
  if (t < TS_MIN_SECONDS || t > TS_MAX_SECONDS) return -1;
  *seconds = t;
  *nanos = ns;
  return 0;
}

/* ------------------------------------------------------------ base64 */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *pj_base64_encode(const uint8_t *data, size_t len) {
  size_t out_len = (len + 2) / 3 * 4;
  char *out = malloc(out_len + 1), *o = out;
  if (!out) return NULL;
  size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8 | data[i + 2];
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = b64[(v >> 6) & 63];
    *o++ = b64[v & 63];
  }
  if (len - i == 1) {
    uint32_t v = (uint32_t)data[i] << 16;
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (len - i == 2) {
    uint32_t v = (uint32_t)data[i] << 16 | (uint32_t)data[i + 1] << 8;
    *o++ = b64[v >> 18];
    *o++ = b64[(v >> 12) & 63];
    *o++ = b64[(v >> 6) & 63];
    *o++ = '=';
  }
  *o = 0;
  return out;
}

static int b64_value(char ch) {
  if (ch >= 'A' && ch <= 'Z') return ch - 'A';
  if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
  if (ch >= '0' && ch <= '9') return ch - '0' + 52;
  if (ch == '+' || ch == '-') return 62;
  if (ch == '/' || ch == '_') return 63;
  return -1;
}

int pj_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen) {
  *out = NULL;
  *outlen = 0;
  /* Padding: only at the end, only to a multiple of four, at most two. */
  size_t pad = 0;
  while (len > 0 && s[len - 1] == '=') {
    len--;
    pad++;
  }
  if (pad > 2 || (pad && (len + pad) % 4 != 0) || len % 4 == 1) return -EINVAL;
  if (len == 0) return pad ? -EINVAL : 0;
  size_t n = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
  uint8_t *buf = malloc(n);
  if (!buf) return -ENOMEM;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < len; i++) {
    int v = b64_value(s[i]);
    if (v < 0) {
      free(buf);
      return -EINVAL;
    }
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      buf[o++] = (uint8_t)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  *out = buf;
  *outlen = o;
  return 0;
}

/* ------------------------------------------------------------ numbers, UTF-8 */

void pj_format_double(double d, char *buf, size_t n) {
  if (isnan(d)) {
    snprintf(buf, n, "NaN");
    return;
  }
  if (isinf(d)) {
    snprintf(buf, n, d > 0 ? "Infinity" : "-Infinity");
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    snprintf(buf, n, "%.*g", prec, d);
    if (strtod(buf, NULL) == d) return;
  }
}

bool pj_utf8_valid(const char *str, size_t len) {
  const uint8_t *s = (const uint8_t *)str;
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    if (c < 0x80) {
      if (c == 0) return false;
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      n = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n > len) return false;
    for (size_t k = 1; k < n; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += n;
  }
  return true;
}
