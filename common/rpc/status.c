/* common/rpc/status.c — names and shared helpers for both sides of the runtime. */
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <errno.h>
#include <grpc/support/time.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>

#include "common/log/log.h"
#include "common/rpc/internal.h"
#include "common/rpc/rpc.h"

static const char *const status_names[] = {
    "OK",        "CANCELLED",          "UNKNOWN",           "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED", "NOT_FOUND",  "ALREADY_EXISTS",    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
    "UNIMPLEMENTED", "INTERNAL",       "UNAVAILABLE",       "DATA_LOSS",
    "UNAUTHENTICATED",
};

const char *rpc_status_code_name(grpc_status_code code) {
  if ((int)code < 0 || (size_t)code >= sizeof(status_names) / sizeof(status_names[0]))
    return "UNKNOWN";
  return status_names[code];
}

const char *rpc_kind_name(rpc_kind kind) {
  switch (kind) {
    case RPC_UNARY: return "unary";
    case RPC_SERVER_STREAMING: return "server-streaming";
    case RPC_CLIENT_STREAMING: return "client-streaming";
    case RPC_BIDI_STREAMING: return "bidi-streaming";
  }
  return "unknown";
}

/* grpc_init/grpc_shutdown are reference counted by gRPC itself; the blocking
 * variant is used so that, after the last release, no gRPC thread outlives it
 * (valgrind and LeakSanitizer see a clean exit). */
/* gRPC core's own log lines (handshake failures, ...) go through common/log so a
 * daemon's output stays in one format (text or JSON lines). */
static void core_log(gpr_log_func_args *args) {
  char line[16];
  snprintf(line, sizeof(line), "%d", args->line);
  log_level level = args->severity == GPR_LOG_SEVERITY_ERROR  ? LOG_ERROR
                    : args->severity == GPR_LOG_SEVERITY_INFO ? LOG_INFO
                                                              : LOG_DEBUG;
  if (level < log_get_level()) return;
  log_write(level, args->message, "source", "grpc-core", "file", args->file, "line", line,
            (const char *)0, (const char *)0);
}

static pthread_once_t core_log_once = PTHREAD_ONCE_INIT;
static void install_core_log(void) { gpr_set_log_function(core_log); }

void rpc_library_init(void) {
  pthread_once(&core_log_once, install_core_log);
  grpc_init();
}
void rpc_library_shutdown(void) { grpc_shutdown_blocking(); }

char *rpc_slice_to_cstr(grpc_slice s) {
  size_t n = GRPC_SLICE_LENGTH(s);
  char *out = malloc(n + 1);
  if (!out) return NULL;
  memcpy(out, GRPC_SLICE_START_PTR(s), n);
  out[n] = '\0';
  return out;
}

bool rpc_slice_eq_cstr(grpc_slice s, const char *str) {
  size_t n = strlen(str);
  return GRPC_SLICE_LENGTH(s) == n && memcmp(GRPC_SLICE_START_PTR(s), str, n) == 0;
}

int rpc_read_file(const char *path, char **out, keel_error *err) {
  FILE *f = fopen(path, "rb");
  if (!f) return keel_error_set_errno(err, errno, "open %s", path);
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  for (;;) {
    if (!buf) {
      fclose(f);
      return keel_error_set(err, ENOMEM, "read %s: out of memory", path);
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
    if (len + 1 == cap) {
      if (cap > (64u << 20)) {
        free(buf);
        fclose(f);
        return keel_error_set(err, EFBIG, "read %s: larger than 64 MiB", path);
      }
      char *nb = realloc(buf, cap * 2);
      if (!nb) free(buf);
      buf = nb;
      cap *= 2;
    }
  }
  int rerr = ferror(f);
  fclose(f);
  if (rerr) {
    free(buf);
    return keel_error_set(err, EIO, "read %s: I/O error", path);
  }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

int64_t rpc_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double rpc_now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

gpr_timespec rpc_deadline_from_timeout(int64_t timeout_ms) {
  if (timeout_ms <= 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                      gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
}
