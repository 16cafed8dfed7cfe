/* common/flags/flags.h — command-line flags with generated --help.
 *
 * Each binary declares a table of flags bound to its own variables and calls
 * flags_parse once from main. Accepted forms: --name=value, --name value, and for
 * booleans --name, --name=true|false, --no-name. "--" ends flags; what remains is
 * returned as positional arguments. --help (or -h) prints usage built from the
 * table to stdout and flags_parse returns FLAGS_HELP so main exits 0. An unknown
 * flag, a missing value or a malformed number is an error naming the flag.
 *
 *   static char *listen = "127.0.0.1:7000"; static int64_t threads = 2;
 *   flag_def defs[] = {
 *     FLAG_STRING("listen", &listen, "address to serve gRPC on"),
 *     FLAG_INT("threads", &threads, "completion-queue threads"),
 *     FLAG_END,
 *   };
 *   int rc = flags_parse("keel-echo", "Echo service for tests.", defs, argc, argv, &pos, &err);
 */
#ifndef KEEL_COMMON_FLAGS_FLAGS_H
#define KEEL_COMMON_FLAGS_FLAGS_H

#include <stdbool.h>
#include <stdint.h>

#include "common/base/error.h"

typedef enum {
  FLAG_TYPE_END = 0,
  FLAG_TYPE_STRING,   /* char ** ; the parsed value points into argv (never freed) */
  FLAG_TYPE_INT,      /* int64_t *; decimal, optional k/M/G suffix is NOT accepted */
  FLAG_TYPE_BOOL,     /* bool * */
  FLAG_TYPE_DURATION, /* int64_t * milliseconds; accepts "250ms", "5s", "2m", "1h", or bare ms */
  FLAG_TYPE_BYTES,    /* int64_t * bytes; accepts "1048576", "512Ki", "1.5Mi", "2Gi", "10MB" */
  FLAG_TYPE_STRING_LIST, /* flag_string_list *; repeatable and/or comma-separated */
} flag_type;

/* A default may be preset with static storage ({items, count}); the first use of
 * the flag replaces it, later uses append. Empty items ("a,,b", "--x=") are
 * skipped, so "--x=" clears the default. */
typedef struct flag_string_list {
  const char **items; /* after a parse that used the flag: malloc'ed array of malloc'ed copies */
  int count;
  /* Set by flags_parse when items and the strings are its allocations, so
   * flags_free_lists never frees a caller's static default. Leave it 0. */
  bool owned;
} flag_string_list;

typedef struct flag_def {
  const char *name;
  flag_type type;
  void *target;
  const char *help;
} flag_def;

#define FLAG_STRING(n, p, h) {(n), FLAG_TYPE_STRING, (p), (h)}
#define FLAG_INT(n, p, h) {(n), FLAG_TYPE_INT, (p), (h)}
#define FLAG_BOOL(n, p, h) {(n), FLAG_TYPE_BOOL, (p), (h)}
#define FLAG_DURATION(n, p, h) {(n), FLAG_TYPE_DURATION, (p), (h)}
#define FLAG_BYTES(n, p, h) {(n), FLAG_TYPE_BYTES, (p), (h)}
#define FLAG_STRING_LIST(n, p, h) {(n), FLAG_TYPE_STRING_LIST, (p), (h)}
#define FLAG_END {0, FLAG_TYPE_END, 0, 0}

#define FLAGS_HELP 1

/* Parses argv. On success returns 0 and, if positional is not NULL, sets
 * *positional / *npositional to the non-flag arguments (pointers into argv; the
 * array is malloc'ed, NULL-terminated, and freed with flags_free_positional).
 * With positional NULL a non-flag argument is an error, so a binary that takes
 * none rejects stray words. Returns FLAGS_HELP after printing --help, or a
 * negative value with err filled on bad input; in both cases *positional is NULL.
 * Defaults are whatever the targets hold before the call; --help prints them.
 * Whatever it returns, flags_free_lists(defs) afterwards frees what it allocated. */
int flags_parse(const char *program, const char *summary, const flag_def *defs, int argc,
                char **argv, char ***positional, int *npositional, keel_error *err);

void flags_free_positional(char **positional);
/* Frees the arrays flags_parse allocated for FLAG_STRING_LIST targets in defs. */
void flags_free_lists(const flag_def *defs);

/* Prints usage for defs to the given stream (FILE *), as --help does. */
void flags_print_usage(void *file, const char *program, const char *summary, const flag_def *defs);

/* Parsers used by the flag types, exposed for config files and tests. Both
 * return 0, -EINVAL for malformed text, or -ERANGE past INT64_MAX; neither takes
 * a sign. A number may have a fraction ("1.5s", "1.5Mi", at most 9 digits),
 * truncated to whole ms / bytes. Durations may chain units ("1h30m"); a bare
 * number is ms. Bytes: Ki Mi Gi Ti (x1024), K k M G T with optional B (x1000). */
int flags_parse_duration_ms(const char *text, int64_t *out_ms);
int flags_parse_bytes(const char *text, int64_t *out_bytes);

#endif
