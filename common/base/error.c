/* common/base/error.c — see error.h. */
#include "common/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>

/* Wrapping an error nobody set still reports a failure. */
#define EIO_FALLBACK EIO

int keel_error_set(keel_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    err->code = code;
  }
  return -code;
}

int keel_error_set_errno(keel_error *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof(err->message))
      snprintf(err->message + n, sizeof(err->message) - (size_t)n, ": %s", strerror(code));
    err->code = code;
  }
  return -code;
}

int keel_error_wrap(keel_error *err, const char *fmt, ...) {
  if (!err) return -1;
  char old[KEEL_ERROR_MESSAGE_MAX];
  memcpy(old, err->message, sizeof(old));
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(err->message, sizeof(err->message), fmt, ap);
  va_end(ap);
  /* The message is truncated, never overflowed, when context + old is too long. */
  if (n >= 0 && (size_t)n + 2 < sizeof(err->message)) {
    size_t room = sizeof(err->message) - (size_t)n;
    memcpy(err->message + n, ": ", 2);
    size_t old_len = strnlen(old, sizeof(old));
    if (old_len > room - 3) old_len = room - 3;
    memcpy(err->message + n + 2, old, old_len);
    err->message[(size_t)n + 2 + old_len] = '\0';
  }
  if (err->code == 0) err->code = EIO_FALLBACK;
  return -err->code;
}

void keel_error_clear(keel_error *err) {
  if (err) {
    err->code = 0;
    err->message[0] = '\0';
  }
}
