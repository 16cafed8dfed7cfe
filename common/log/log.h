/* common/log/log.h — leveled, structured logging for every Keel binary.
 *
 * A line is a message plus key=value fields, written to stderr:
 *   2026-11-22T15:40:01.123Z INFO  rpc server listening addr=127.0.0.1:7000 threads=2
 * or, with log_set_format(LOG_FORMAT_JSON), one JSON object per line:
 *   {"ts":"2026-11-22T15:40:01.123Z","level":"info","msg":"rpc server listening","addr":"127.0.0.1:7000","threads":"2"}
 * Fields are given as alternating key, value C strings ending with NULL; the
 * LOG_* macros add the NULL. Thread-safe: each line is written with one write(2).
 * Lines below the current level cost one integer compare. */
#ifndef KEEL_COMMON_LOG_LOG_H
#define KEEL_COMMON_LOG_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 } log_level;
typedef enum { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON = 1 } log_format;

void log_set_level(log_level level);
log_level log_get_level(void);
void log_set_format(log_format format);
/* Write to this fd instead of stderr (tests). */
void log_set_fd(int fd);

/* "debug"|"info"|"warn"|"error" -> level; returns -1 for anything else. */
int log_level_parse(const char *name);
/* "text"|"json" -> format; returns -1 for anything else. */
int log_format_parse(const char *name);

/* Logs msg with fields: key1, value1, key2, value2, ..., NULL. A NULL value is
 * printed as "(null)". Values are quoted/escaped when they contain spaces,
 * quotes, '=' or control characters (text) and always escaped (JSON).
 * Control characters are escaped in text too, so one call is always one line. */
void log_write(log_level level, const char *msg, ...) __attribute__((sentinel));

/* Integer-valued field helper: formats into a thread-local ring of small buffers
 * valid until the 16th later call on the same thread; use inside one log call. */
const char *log_int(long long v);

/* The macros end the list with two NULLs: a call with a key but no value then
 * logs key=(null) instead of reading past the arguments (undefined behavior). */
#define LOG_DEBUG(msg, ...) \
  do { if (log_get_level() <= LOG_DEBUG) log_write(LOG_DEBUG, msg, ##__VA_ARGS__, (const char *)0, (const char *)0); } while (0)
#define LOG_INFO(msg, ...) log_write(LOG_INFO, msg, ##__VA_ARGS__, (const char *)0, (const char *)0)
#define LOG_WARN(msg, ...) log_write(LOG_WARN, msg, ##__VA_ARGS__, (const char *)0, (const char *)0)
#define LOG_ERROR(msg, ...) log_write(LOG_ERROR, msg, ##__VA_ARGS__, (const char *)0, (const char *)0)

#endif
