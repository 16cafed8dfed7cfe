/* common/apimachinery/text.c — see text.h. */
#include "common/apimachinery/text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserve(apim_buf *b, size_t extra) {
  if (b->oom) return false;
  if (extra > SIZE_MAX - b->len - 1) {
    b->oom = true;
    return false;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return true;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->data = p;
  b->cap = cap;
  return true;
}

void apim_buf_append(apim_buf *b, const char *s, size_t n) {
  if (!reserve(b, n)) return;
  if (n) memcpy(b->data + b->len, s, n);
  b->len += n;
  b->data[b->len] = '\0';
}

void apim_buf_puts(apim_buf *b, const char *s) {
  apim_buf_append(b, s, strlen(s));
}

void apim_buf_putc(apim_buf *b, char c) {
  apim_buf_append(b, &c, 1);
}

void apim_buf_printf(apim_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0) {
    b->oom = true;
    return;
  }
  if (!reserve(b, (size_t)n)) return;
  va_start(ap, fmt);
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

size_t apim_utf8_seq_len(const unsigned char *s) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  for (size_t i = 1; i < n; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0; /* also stops at the terminating NUL */
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  /* Overlong forms, UTF-16 surrogates and code points past U+10FFFF. */
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

void apim_buf_quote(apim_buf *b, const char *s, size_t max) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *p = (const unsigned char *)s;
  size_t used = 0;
  apim_buf_putc(b, '"');
  while (*p && used < max) {
    unsigned char c = *p;
    size_t n = apim_utf8_seq_len(p);
    if (c >= 0x80 && n > 1) {
      apim_buf_append(b, (const char *)p, n);
      p += n;
      used += n;
      continue;
    }
    switch (c) {
      case '"': apim_buf_puts(b, "\\\""); break;
      case '\\': apim_buf_puts(b, "\\\\"); break;
      case '\a': apim_buf_puts(b, "\\a"); break;
      case '\b': apim_buf_puts(b, "\\b"); break;
      case '\f': apim_buf_puts(b, "\\f"); break;
      case '\n': apim_buf_puts(b, "\\n"); break;
      case '\r': apim_buf_puts(b, "\\r"); break;
      case '\t': apim_buf_puts(b, "\\t"); break;
      case '\v': apim_buf_puts(b, "\\v"); break;
      default:
        if (c < 0x20 || c >= 0x7f) {
          char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
          apim_buf_append(b, esc, 4);
        } else {
          apim_buf_putc(b, (char)c);
        }
    }
    p++;
    used++;
  }
  apim_buf_putc(b, '"');
  if (*p) apim_buf_puts(b, "...");
}

char *apim_buf_steal(apim_buf *b) {
  if (b->oom) {
    apim_buf_free(b);
    return NULL;
  }
  char *s = b->data;
  if (!s) s = calloc(1, 1);
  b->data = NULL;
  b->len = b->cap = 0;
  return s;
}

void apim_buf_free(apim_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = false;
}

const char *apim_quote(char *out, size_t size, const char *s, size_t max) {
  apim_buf b = {0};
  apim_buf_quote(&b, s, max);
  if (size) {
    if (b.oom || !b.data) {
      snprintf(out, size, "\"?\"");
    } else {
      size_t n = b.len < size - 1 ? b.len : size - 1;
      memcpy(out, b.data, n);
      out[n] = '\0';
    }
  }
  apim_buf_free(&b);
  return out;
}
