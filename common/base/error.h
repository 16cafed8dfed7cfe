/* common/base/error.h — the one error type threaded through Keel's C code.
 *
 * A function that can fail returns a negative errno-style value and, when given a
 * non-NULL `keel_error *`, fills it with that code and a message saying what it
 * was doing ("open /var/lib/keel/wal: No such file or directory"). Callers add
 * context with keel_error_wrap instead of printing; only the edge (main, an RPC
 * handler) turns the error into a log line or a gRPC status. */
#ifndef KEEL_COMMON_BASE_ERROR_H
#define KEEL_COMMON_BASE_ERROR_H

#include <stddef.h>

#define KEEL_ERROR_MESSAGE_MAX 512

typedef struct keel_error {
  int code; /* positive errno value; 0 = no error */
  char message[KEEL_ERROR_MESSAGE_MAX];
} keel_error;

/* Sets err (if not NULL) to `code` and the formatted message; returns -code so
 * callers can write `return keel_error_set(err, EINVAL, "...")`. */
int keel_error_set(keel_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like keel_error_set, with ": strerror(code)" appended. */
int keel_error_set_errno(keel_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with formatted context ("load config: " + old);
 * returns -err->code. */
int keel_error_wrap(keel_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void keel_error_clear(keel_error *err);

#endif
