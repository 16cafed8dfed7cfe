/* common/log/log.c — see log.h.
 *
 * Design: a line is composed in a buffer owned by the calling thread (a stack
 * array, grown on the heap only for very long lines) and handed to the kernel
 * with one write(2). Composing outside any lock keeps logging threads from
 * serializing on formatting; the one write keeps lines from interleaving. A
 * mutex is held only around the write so that, in the rare case the kernel
 * takes part of a line (a full pipe, a signal), the rest follows before any
 * other thread's bytes.
 *
 * Settings are relaxed atomics: they are read on every call, changed once at
 * startup, and a line racing a level change may go either way harmlessly.
 *
 * Deliberately dependency-free (no jansson): every binary links this, and the
 * JSON needed here is one flat object of strings, so a tiny escaper does. */
#include "common/log/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int g_level = LOG_INFO;
static int g_format = LOG_FORMAT_TEXT;
static int g_fd = STDERR_FILENO;
static pthread_mutex_t g_write_mu = PTHREAD_MUTEX_INITIALIZER;

void log_set_level(log_level level) {
  __atomic_store_n(&g_level, (int)level, __ATOMIC_RELAXED);
}

log_level log_get_level(void) {
  return (log_level)__atomic_load_n(&g_level, __ATOMIC_RELAXED);
}

void log_set_format(log_format format) {
  __atomic_store_n(&g_format, (int)format, __ATOMIC_RELAXED);
}

void log_set_fd(int fd) {
  __atomic_store_n(&g_fd, fd, __ATOMIC_RELAXED);
}

int log_level_parse(const char *name) {
  static const char *const names[] = {"debug", "info", "warn", "error"};
  if (!name) return -1;
  for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
    if (strcmp(name, names[i]) == 0) return (int)i;
  return -1;
}

int log_format_parse(const char *name) {
  if (!name) return -1;
  if (strcmp(name, "text") == 0) return LOG_FORMAT_TEXT;
  if (strcmp(name, "json") == 0) return LOG_FORMAT_JSON;
  return -1;
}

/* 16 buffers per thread is the contract in log.h; 24 bytes fit any long long. */
#define LOG_INT_RING 16
#define LOG_INT_SIZE 24

const char *log_int(long long v) {
  static __thread char ring[LOG_INT_RING][LOG_INT_SIZE];
  static __thread unsigned next;
  char *buf = ring[next++ % LOG_INT_RING];
  snprintf(buf, LOG_INT_SIZE, "%lld", v);
  return buf;
}

/* ---- line buffer ---------------------------------------------------------- */

/* Most lines fit the stack; only unusually long ones pay for malloc. If that
 * malloc fails the line is truncated rather than lost: a log call never fails. */
#define LOG_STACK_LINE 1024

typedef struct line_buf {
  char *data;
  size_t len;
  size_t cap; /* always leaves room for the final '\n' */
  bool heap;
  bool truncated;
} line_buf;

static bool buf_reserve(line_buf *b, size_t extra) {
  if (b->truncated) return false;
  if (b->len + extra + 1 <= b->cap) return true;
  size_t cap = b->cap * 2;
  while (b->len + extra + 1 > cap) cap *= 2;
  char *p = b->heap ? realloc(b->data, cap) : malloc(cap);
  if (!p) {
    b->truncated = true;
    return false;
  }
  if (!b->heap) memcpy(p, b->data, b->len);
  b->data = p;
  b->cap = cap;
  b->heap = true;
  return true;
}

static void buf_put(line_buf *b, const char *s, size_t n) {
  if (!buf_reserve(b, n)) return;
  memcpy(b->data + b->len, s, n);
  b->len += n;
}

static void buf_puts(line_buf *b, const char *s) {
  buf_put(b, s, strlen(s));
}

static void buf_putc(line_buf *b, char c) {
  buf_put(b, &c, 1);
}

static const char hex_digits[] = "0123456789abcdef";

/* ---- text format ------------------------------------------------------------ */

static bool is_ctl(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

/* Control characters are always escaped, quoted or not: a raw newline would
 * split one event into two lines and let a value forge a fake log line. */
static void text_escape(line_buf *b, const char *s, bool quoted) {
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char c = *p;
    if (c == '\n') {
      buf_puts(b, "\\n");
    } else if (c == '\r') {
      buf_puts(b, "\\r");
    } else if (c == '\t') {
      buf_puts(b, "\\t");
    } else if (is_ctl(c)) {
      char esc[4] = {'\\', 'x', hex_digits[c >> 4], hex_digits[c & 15]};
      buf_put(b, esc, sizeof(esc));
    } else if (quoted && (c == '"' || c == '\\')) {
      char esc[2] = {'\\', (char)c};
      buf_put(b, esc, sizeof(esc));
    } else {
      buf_putc(b, (char)c);
    }
  }
}

/* logfmt quoting: a value is quoted when reading it back unquoted would be
 * ambiguous. An empty value is quoted so "key=" never looks truncated. */
static bool text_needs_quotes(const char *s) {
  if (!*s) return true;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    if (*p == ' ' || *p == '"' || *p == '=' || is_ctl(*p)) return true;
  return false;
}

static void text_value(line_buf *b, const char *v) {
  if (text_needs_quotes(v)) {
    buf_putc(b, '"');
    text_escape(b, v, true);
    buf_putc(b, '"');
  } else {
    text_escape(b, v, false);
  }
}

/* ---- JSON format ------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at p, or 0 if it is not one (overlong,
 * surrogate, above U+10FFFF, truncated). JSON must be valid UTF-8, and log
 * values often are not (paths, peer input), so bad bytes become U+FFFD. */
static size_t utf8_valid_len(const unsigned char *p) {
  unsigned char c = p[0];
  if (c >= 0xc2 && c <= 0xdf) return (p[1] & 0xc0) == 0x80 ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && p[1] < 0xa0) return 0; /* overlong */
    if (c == 0xed && p[1] > 0x9f) return 0; /* surrogate */
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if ((p[1] & 0xc0) != 0x80 || (p[2] & 0xc0) != 0x80 || (p[3] & 0xc0) != 0x80) return 0;
    if (c == 0xf0 && p[1] < 0x90) return 0; /* overlong */
    if (c == 0xf4 && p[1] > 0x8f) return 0; /* above U+10FFFF */
    return 4;
  }
  return 0;
}

/* The continuation checks above stop at the terminating NUL (0 & 0xc0 != 0x80),
 * so a sequence cut short by the end of the string is never read past. */
static void json_string(line_buf *b, const char *s) {
  buf_putc(b, '"');
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    unsigned char c = *p;
    if (c >= 0x80) {
      size_t n = utf8_valid_len(p);
      if (n) {
        buf_put(b, (const char *)p, n);
        p += n;
      } else {
        buf_puts(b, "\\ufffd");
        p++;
      }
      continue;
    }
    switch (c) {
      case '"': buf_puts(b, "\\\""); break;
      case '\\': buf_puts(b, "\\\\"); break;
      case '\n': buf_puts(b, "\\n"); break;
      case '\r': buf_puts(b, "\\r"); break;
      case '\t': buf_puts(b, "\\t"); break;
      case '\b': buf_puts(b, "\\b"); break;
      case '\f': buf_puts(b, "\\f"); break;
      default:
        if (c < 0x20) {
          char esc[6] = {'\\', 'u', '0', '0', hex_digits[c >> 4], hex_digits[c & 15]};
          buf_put(b, esc, sizeof(esc));
        } else {
          buf_putc(b, (char)c);
        }
    }
    p++;
  }
  buf_putc(b, '"');
}

/* ---- the line --------------------------------------------------------------- */

/* "2026-11-22T15:40:01.123Z": UTC so lines from several nodes sort together. */
static void format_timestamp(char out[32]) {
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(out + n, 32 - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void write_line(const char *data, size_t len) {
  int fd = __atomic_load_n(&g_fd, __ATOMIC_RELAXED);
  pthread_mutex_lock(&g_write_mu);
  while (len > 0) {
    ssize_t n = write(fd, data, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      break; /* nowhere left to report a logging failure */
    }
    data += n;
    len -= (size_t)n;
  }
  pthread_mutex_unlock(&g_write_mu);
}

void log_write(log_level level, const char *msg, ...) {
  static const char *const text_names[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
  static const char *const json_names[] = {"debug", "info", "warn", "error"};
  if ((int)level < __atomic_load_n(&g_level, __ATOMIC_RELAXED)) return;
  if ((int)level < LOG_DEBUG || (int)level > LOG_ERROR) level = LOG_ERROR;
  if (!msg) msg = "(null)";
  bool json = __atomic_load_n(&g_format, __ATOMIC_RELAXED) == LOG_FORMAT_JSON;
  int saved_errno = errno; /* callers often log right before reporting errno */

  char stack[LOG_STACK_LINE];
  line_buf b = {.data = stack, .cap = sizeof(stack)};
  char ts[32];
  format_timestamp(ts);

  if (json) {
    buf_puts(&b, "{\"ts\":\"");
    buf_puts(&b, ts);
    buf_puts(&b, "\",\"level\":\"");
    buf_puts(&b, json_names[level]);
    buf_puts(&b, "\",\"msg\":");
    json_string(&b, msg);
  } else {
    buf_puts(&b, ts);
    buf_putc(&b, ' ');
    buf_puts(&b, text_names[level]);
    buf_putc(&b, ' ');
    text_escape(&b, msg, false);
  }

  /* Pairs until a NULL key; a NULL value is printed, not taken as the end, so
   * a missing optional value never silently drops the fields after it. */
  va_list ap;
  va_start(ap, msg);
  for (;;) {
    const char *key = va_arg(ap, const char *);
    if (!key) break;
    const char *value = va_arg(ap, const char *);
    if (!value) value = "(null)";
    if (json) {
      buf_putc(&b, ',');
      json_string(&b, key);
      buf_putc(&b, ':');
      json_string(&b, value);
    } else {
      buf_putc(&b, ' ');
      text_escape(&b, key, false);
      buf_putc(&b, '=');
      text_value(&b, value);
    }
  }
  va_end(ap);

  /* A truncated line still ends cleanly so the next line parses. */
  if (json) {
    if (b.truncated) {
      b.truncated = false; /* the reserve below keeps room for these bytes */
      b.len = 0;
      buf_puts(&b, "{\"ts\":\"");
      buf_puts(&b, ts);
      buf_puts(&b, "\",\"level\":\"error\",\"msg\":\"log line dropped: out of memory\"");
    }
    buf_putc(&b, '}');
  }
  b.data[b.len++] = '\n'; /* buf_reserve always keeps this byte free */
  write_line(b.data, b.len);
  if (b.heap) free(b.data);
  errno = saved_errno;
}
