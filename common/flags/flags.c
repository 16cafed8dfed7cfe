/* common/flags/flags.c — see flags.h.
 *
 * One pass over argv, GNU style: flags and positional arguments may mix until
 * "--". The table is the single source of truth for names, types, defaults and
 * help, so --help can never drift from what is parsed.
 *
 * "--name value" takes the next word as the value unless it starts with "--":
 * `--listen --threads 2` is far more likely a forgotten value than an address
 * spelled "--threads", so it is reported as a missing value; "--listen=--x"
 * still passes such a value. Single-dash words other than -h are rejected
 * instead of guessed at, so `-threads 2` does not silently become positional.
 *
 * Numbers are parsed exactly in integers (no strtod): "1.1s" must be 1100 ms on
 * every libc, and byte sizes up to INT64_MAX must not lose precision. */
#include "common/flags/flags.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"

/* ---- numbers ---------------------------------------------------------------- */

typedef struct unit {
  const char *suffix;
  int64_t mult;
} unit;

static const unit duration_units[] = {
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
};

static const unit byte_units[] = {
    {"B", 1},
    {"Ki", 1LL << 10}, {"Mi", 1LL << 20}, {"Gi", 1LL << 30}, {"Ti", 1LL << 40},
    {"K", 1000}, {"k", 1000}, {"KB", 1000}, {"kB", 1000},
    {"M", 1000000}, {"MB", 1000000},
    {"G", 1000000000}, {"GB", 1000000000},
    {"T", 1000000000000LL}, {"TB", 1000000000000LL},
};

/* 9 fractional digits keep frac * (mult % scale) below 10^18, inside uint64. */
#define MAX_FRACTION_DIGITS 9

static bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

static bool is_letter(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Parses "<digits>[.<digits>]" at *p into whole + frac / scale. */
static int parse_decimal(const char **p, uint64_t *whole, uint64_t *frac, uint64_t *scale) {
  const char *s = *p;
  if (!is_digit(*s)) return -EINVAL;
  uint64_t w = 0;
  for (; is_digit(*s); s++) {
    if (w > (uint64_t)INT64_MAX / 10) return -ERANGE;
    w = w * 10 + (uint64_t)(*s - '0');
  }
  uint64_t f = 0, sc = 1;
  if (*s == '.') {
    s++;
    if (!is_digit(*s)) return -EINVAL;
    for (int n = 0; is_digit(*s); s++, n++) {
      if (n == MAX_FRACTION_DIGITS) return -EINVAL;
      f = f * 10 + (uint64_t)(*s - '0');
      sc *= 10;
    }
  }
  *p = s;
  *whole = w;
  *frac = f;
  *scale = sc;
  return 0;
}

/* (whole + frac/scale) * mult, truncated, without overflow or floating point:
 * with mult = q*scale + r, frac*mult/scale = frac*q + frac*r/scale, where
 * frac*q < mult and frac*r < scale^2 <= 10^18. */
static int scale_value(uint64_t whole, uint64_t frac, uint64_t scale, int64_t mult, uint64_t *out) {
  uint64_t m = (uint64_t)mult, v;
  if (__builtin_mul_overflow(whole, m, &v)) return -ERANGE;
  uint64_t part = frac * (m / scale) + frac * (m % scale) / scale;
  if (__builtin_add_overflow(v, part, &v) || v > (uint64_t)INT64_MAX) return -ERANGE;
  *out = v;
  return 0;
}

/* Reads the letters at *p and looks them up; an empty suffix gives mult 1. */
static int parse_unit(const char **p, const unit *units, size_t n, int64_t *mult) {
  const char *s = *p;
  size_t len = 0;
  while (is_letter(s[len])) len++;
  *p = s + len;
  if (len == 0) {
    *mult = 1;
    return 0;
  }
  for (size_t i = 0; i < n; i++)
    if (strlen(units[i].suffix) == len && memcmp(units[i].suffix, s, len) == 0) {
      *mult = units[i].mult;
      return 0;
    }
  return -EINVAL;
}

int flags_parse_duration_ms(const char *text, int64_t *out_ms) {
  if (!text || !*text) return -EINVAL;
  const char *p = text;
  uint64_t total = 0;
  /* Components chain ("1h30m"); only a lone number may omit its unit (ms),
   * because "1h30" is more likely a typo than 1h + 30 ms. */
  for (bool first = true; *p; first = false) {
    uint64_t whole, frac, scale, v;
    int64_t mult;
    int rc = parse_decimal(&p, &whole, &frac, &scale);
    if (rc < 0) return rc;
    const char *suffix = p;
    if (parse_unit(&p, duration_units, KEEL_ARRAY_LEN(duration_units), &mult) < 0) return -EINVAL;
    if (p == suffix && !(first && *p == '\0')) return -EINVAL;
    rc = scale_value(whole, frac, scale, mult, &v);
    if (rc < 0) return rc;
    if (__builtin_add_overflow(total, v, &total) || total > (uint64_t)INT64_MAX) return -ERANGE;
  }
  *out_ms = (int64_t)total;
  return 0;
}

int flags_parse_bytes(const char *text, int64_t *out_bytes) {
  if (!text) return -EINVAL;
  const char *p = text;
  uint64_t whole, frac, scale, v;
  int64_t mult;
  int rc = parse_decimal(&p, &whole, &frac, &scale);
  if (rc < 0) return rc;
  if (parse_unit(&p, byte_units, KEEL_ARRAY_LEN(byte_units), &mult) < 0 || *p) return -EINVAL;
  rc = scale_value(whole, frac, scale, mult, &v);
  if (rc < 0) return rc;
  *out_bytes = (int64_t)v;
  return 0;
}

static int parse_int(const char *text, int64_t *out) {
  /* strtoll alone would accept leading spaces and an empty string. */
  const char *d = (*text == '-' || *text == '+') ? text + 1 : text;
  if (!is_digit(*d)) return -EINVAL;
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (*end) return -EINVAL;
  if (errno == ERANGE) return -ERANGE;
  *out = v;
  return 0;
}

/* ---- string lists ----------------------------------------------------------- */

static void list_clear(flag_string_list *l) {
  if (l->owned) {
    for (int i = 0; i < l->count; i++) free((void *)l->items[i]);
    free(l->items);
  }
  l->items = NULL;
  l->count = 0;
  l->owned = false;
}

/* Appends the non-empty comma-separated pieces of value. The first use in a
 * parse replaces the default instead of appending to it. */
static int list_add(flag_string_list *l, bool first_use, const char *value) {
  if (first_use) {
    list_clear(l);
    l->owned = true;
  }
  for (const char *p = value; *p;) {
    size_t len = strcspn(p, ",");
    if (len > 0) {
      char *item = strndup(p, len);
      if (!item) return -ENOMEM;
      const char **items = realloc(l->items, ((size_t)l->count + 1) * sizeof(*items));
      if (!items) {
        free(item);
        return -ENOMEM;
      }
      items[l->count++] = item;
      l->items = items;
    }
    p += len;
    if (*p == ',') p++;
  }
  return 0;
}

void flags_free_lists(const flag_def *defs) {
  for (const flag_def *d = defs; d && d->type != FLAG_TYPE_END; d++)
    if (d->type == FLAG_TYPE_STRING_LIST && ((flag_string_list *)d->target)->owned)
      list_clear(d->target);
}

void flags_free_positional(char **positional) {
  free(positional);
}

/* ---- parsing ---------------------------------------------------------------- */

static const flag_def *find_flag(const flag_def *defs, const char *name, size_t len) {
  for (const flag_def *d = defs; d->type != FLAG_TYPE_END; d++)
    if (strlen(d->name) == len && memcmp(d->name, name, len) == 0) return d;
  return NULL;
}

static int value_error(keel_error *err, int rc, const flag_def *d, const char *what,
                       const char *hint, const char *value) {
  if (rc == -ERANGE)
    return keel_error_set(err, ERANGE, "flag --%s: %s out of range \"%s\"", d->name, what, value);
  if (rc == -ENOMEM) return keel_error_set(err, ENOMEM, "flag --%s: out of memory", d->name);
  return keel_error_set(err, EINVAL, "flag --%s: invalid %s \"%s\"%s", d->name, what, value, hint);
}

static int set_value(const flag_def *d, const char *value, bool first_use, keel_error *err) {
  int rc;
  int64_t n;
  switch (d->type) {
    case FLAG_TYPE_STRING:
      *(const char **)d->target = value;
      return 0;
    case FLAG_TYPE_INT:
      rc = parse_int(value, &n);
      if (rc < 0) return value_error(err, rc, d, "integer", "", value);
      *(int64_t *)d->target = n;
      return 0;
    case FLAG_TYPE_BOOL:
      if (strcmp(value, "true") == 0 || strcmp(value, "1") == 0) {
        *(bool *)d->target = true;
      } else if (strcmp(value, "false") == 0 || strcmp(value, "0") == 0) {
        *(bool *)d->target = false;
      } else {
        return value_error(err, -EINVAL, d, "boolean", " (want true or false)", value);
      }
      return 0;
    case FLAG_TYPE_DURATION:
      rc = flags_parse_duration_ms(value, &n);
      if (rc < 0) return value_error(err, rc, d, "duration", " (want e.g. 250ms, 5s, 2m, 1h)", value);
      *(int64_t *)d->target = n;
      return 0;
    case FLAG_TYPE_BYTES:
      rc = flags_parse_bytes(value, &n);
      if (rc < 0) return value_error(err, rc, d, "byte size", " (want e.g. 1048576, 512Ki, 10MB)", value);
      *(int64_t *)d->target = n;
      return 0;
    case FLAG_TYPE_STRING_LIST:
      rc = list_add(d->target, first_use, value);
      if (rc < 0) return value_error(err, rc, d, "list", "", value);
      return 0;
    case FLAG_TYPE_END:
      break;
  }
  return keel_error_set(err, EINVAL, "flag --%s: unsupported type", d->name);
}

/* Handles the word at argv[*i] (which starts with "--" and is not "--"),
 * consuming argv[*i + 1] too for the "--name value" form. */
static int parse_flag(const flag_def *defs, bool *seen, int argc, char **argv, int *i,
                      keel_error *err) {
  const char *name = argv[*i] + 2;
  const char *eq = strchr(name, '=');
  size_t len = eq ? (size_t)(eq - name) : strlen(name);
  const char *value = eq ? eq + 1 : NULL;
  const flag_def *d = find_flag(defs, name, len);

  /* An exact name wins, so a flag really called "no-cache" still works. */
  if (!d && len > 3 && memcmp(name, "no-", 3) == 0) {
    const flag_def *b = find_flag(defs, name + 3, len - 3);
    if (b && b->type == FLAG_TYPE_BOOL) {
      if (eq) return keel_error_set(err, EINVAL, "flag --%.*s: takes no value", (int)len, name);
      *(bool *)b->target = false;
      return 0;
    }
  }
  if (!d) return keel_error_set(err, EINVAL, "unknown flag --%.*s", (int)len, name);

  /* A bool never takes the next word: `--verbose file` keeps file positional. */
  if (!value && d->type == FLAG_TYPE_BOOL) value = "true";
  if (!value) {
    if (*i + 1 >= argc || strncmp(argv[*i + 1], "--", 2) == 0)
      return keel_error_set(err, EINVAL, "flag --%s: missing value", d->name);
    value = argv[++*i];
  }
  size_t idx = (size_t)(d - defs);
  int rc = set_value(d, value, !seen[idx], err);
  seen[idx] = true;
  return rc;
}

int flags_parse(const char *program, const char *summary, const flag_def *defs, int argc,
                char **argv, char ***positional, int *npositional, keel_error *err) {
  if (positional) *positional = NULL;
  if (npositional) *npositional = 0;
  size_t ndefs = 0;
  while (defs[ndefs].type != FLAG_TYPE_END) ndefs++;

  /* seen[i]: defs[i] was used in this parse (a list's first use replaces its default). */
  cleanup_free bool *seen = calloc(ndefs + 1, sizeof(*seen));
  cleanup_free char **pos = calloc((size_t)(argc > 0 ? argc : 0) + 1, sizeof(*pos));
  if (!seen || !pos) return keel_error_set(err, ENOMEM, "parse flags: out of memory");
  int npos = 0;
  bool flags_ended = false;

  for (int i = 1; i < argc; i++) {
    char *arg = argv[i];
    if (flags_ended || arg[0] != '-' || arg[1] == '\0') { /* "-" is a word (stdin) */
      if (!positional) return keel_error_set(err, EINVAL, "unexpected argument \"%s\"", arg);
      pos[npos++] = arg;
    } else if (strcmp(arg, "--") == 0) {
      flags_ended = true;
    } else if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
      flags_print_usage(stdout, program, summary, defs);
      return FLAGS_HELP;
    } else if (arg[1] != '-') {
      return keel_error_set(err, EINVAL, "unknown flag %s", arg);
    } else {
      int rc = parse_flag(defs, seen, argc, argv, &i, err);
      if (rc < 0) return rc;
    }
  }
  if (positional) *positional = steal_pointer(&pos);
  if (npositional) *npositional = npos;
  return 0;
}

/* ---- usage ------------------------------------------------------------------ */

static const char *type_word(flag_type t) {
  switch (t) {
    case FLAG_TYPE_STRING: return " string";
    case FLAG_TYPE_INT: return " int";
    case FLAG_TYPE_DURATION: return " duration";
    case FLAG_TYPE_BYTES: return " bytes";
    case FLAG_TYPE_STRING_LIST: return " list";
    default: return "";
  }
}

/* Prints a default in the largest unit that is exact, so it reads as typed. */
static void print_duration(FILE *f, int64_t ms) {
  if (ms != 0 && ms % 3600000 == 0) fprintf(f, "%lldh", (long long)(ms / 3600000));
  else if (ms != 0 && ms % 60000 == 0) fprintf(f, "%lldm", (long long)(ms / 60000));
  else if (ms % 1000 == 0) fprintf(f, "%llds", (long long)(ms / 1000));
  else fprintf(f, "%lldms", (long long)ms);
}

static void print_bytes(FILE *f, int64_t b) {
  static const unit shown[] = {
      {"Ti", 1LL << 40}, {"Gi", 1LL << 30}, {"Mi", 1LL << 20}, {"Ki", 1LL << 10},
      {"TB", 1000000000000LL}, {"GB", 1000000000}, {"MB", 1000000},
  };
  for (size_t i = 0; b != 0 && i < KEEL_ARRAY_LEN(shown); i++)
    if (b % shown[i].mult == 0) {
      fprintf(f, "%lld%s", (long long)(b / shown[i].mult), shown[i].suffix);
      return;
    }
  fprintf(f, "%lld", (long long)b);
}

/* Zero values (empty string, false, empty list) print no default: there is
 * nothing to say. Numbers always do, since 0 can be a meaningful setting. */
static void print_default(FILE *f, const flag_def *d) {
  switch (d->type) {
    case FLAG_TYPE_STRING: {
      const char *s = *(const char **)d->target;
      if (s && *s) fprintf(f, " (default \"%s\")", s);
      break;
    }
    case FLAG_TYPE_INT:
      fprintf(f, " (default %lld)", (long long)*(int64_t *)d->target);
      break;
    case FLAG_TYPE_BOOL:
      if (*(bool *)d->target) fprintf(f, " (default true)");
      break;
    case FLAG_TYPE_DURATION:
      fprintf(f, " (default ");
      print_duration(f, *(int64_t *)d->target);
      fprintf(f, ")");
      break;
    case FLAG_TYPE_BYTES:
      fprintf(f, " (default ");
      print_bytes(f, *(int64_t *)d->target);
      fprintf(f, ")");
      break;
    case FLAG_TYPE_STRING_LIST: {
      const flag_string_list *l = d->target;
      if (l->count <= 0) break;
      fprintf(f, " (default \"");
      for (int i = 0; i < l->count; i++) fprintf(f, "%s%s", i ? "," : "", l->items[i]);
      fprintf(f, "\")");
      break;
    }
    case FLAG_TYPE_END:
      break;
  }
}

void flags_print_usage(void *file, const char *program, const char *summary, const flag_def *defs) {
  FILE *f = file;
  static const char help_col[] = "-h, --help";
  fprintf(f, "Usage: %s [flags]\n", program ? program : "program");
  if (summary && *summary) fprintf(f, "\n%s\n", summary);
  fprintf(f, "\nFlags:\n");

  size_t width = strlen(help_col);
  for (const flag_def *d = defs; d->type != FLAG_TYPE_END; d++) {
    size_t w = 2 + strlen(d->name) + strlen(type_word(d->type));
    if (w > width) width = w;
  }
  for (const flag_def *d = defs; d->type != FLAG_TYPE_END; d++) {
    int w = fprintf(f, "  --%s%s", d->name, type_word(d->type)) - 2;
    fprintf(f, "%*s  %s", (int)width - w, "", d->help ? d->help : "");
    print_default(f, d);
    fprintf(f, "\n");
  }
  fprintf(f, "  %-*s  print this help and exit\n", (int)width, help_col);
}
