/* common/metrics/metrics_render.c — the Prometheus text exposition format 0.0.4
 * for metrics_render (see metrics.h). Kept apart from the registry because it
 * is a pure function of the structures: it reads atomics and takes the
 * registry and family locks, and changes nothing. */
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics/metrics_internal.h"

typedef struct strbuf {
  char *buf;
  size_t len, cap;
  bool oom;
} strbuf;

static void sb_add(strbuf *sb, const char *s, size_t n) {
  if (sb->oom) return;
  if (sb->len + n + 1 > sb->cap) {
    size_t cap = sb->cap ? sb->cap : 4096;
    while (cap < sb->len + n + 1) cap *= 2;
    char *b = realloc(sb->buf, cap);
    if (!b) {
      sb->oom = true;
      return;
    }
    sb->buf = b;
    sb->cap = cap;
  }
  memcpy(sb->buf + sb->len, s, n);
  sb->len += n;
  sb->buf[sb->len] = '\0';
}

static void sb_puts(strbuf *sb, const char *s) {
  sb_add(sb, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also escape '"'. */
static void sb_escaped(strbuf *sb, const char *s, bool quote) {
  const char *run = s;
  for (; *s; s++) {
    const char *rep = NULL;
    if (*s == '\\')
      rep = "\\\\";
    else if (*s == '\n')
      rep = "\\n";
    else if (quote && *s == '"')
      rep = "\\\"";
    if (!rep) continue;
    sb_add(sb, run, (size_t)(s - run));
    sb_puts(sb, rep);
    run = s + 1;
  }
  sb_add(sb, run, (size_t)(s - run));
}

/* Integers print without exponent while a double holds them exactly (2^53),
 * like the Go and Python clients' output for counts; anything else prints with
 * the fewest digits that read back to the same double. */
static void format_double(char out[32], double v) {
  if (v != v) {
    strcpy(out, "NaN");
  } else if (v == (double)INFINITY || v == -(double)INFINITY) {
    strcpy(out, v > 0 ? "+Inf" : "-Inf");
  } else if (v >= -9007199254740992.0 && v <= 9007199254740992.0 && v == (double)(int64_t)v) {
    snprintf(out, 32, "%" PRId64, (int64_t)v);
  } else {
    for (int prec = 15; prec <= 17; prec++) {
      snprintf(out, 32, "%.*g", prec, v);
      if (strtod(out, NULL) == v) break;
    }
  }
}

static void sb_double(strbuf *sb, double v) {
  char num[32];
  format_double(num, v);
  sb_puts(sb, num);
}

/* name{labels[,le="x"]} value\n */
static void render_sample(strbuf *sb, const metric_family *f, const metric *m, const char *suffix,
                          const char *le, double value) {
  sb_puts(sb, f->name);
  sb_puts(sb, suffix);
  int n = m ? f->nlabels : 0;
  if (n > 0 || le) {
    sb_puts(sb, "{");
    for (int i = 0; i < n; i++) {
      if (i) sb_puts(sb, ",");
      sb_puts(sb, f->labels[i]);
      sb_puts(sb, "=\"");
      sb_escaped(sb, m->values[i], true);
      sb_puts(sb, "\"");
    }
    if (le) {
      sb_puts(sb, n ? ",le=\"" : "le=\"");
      sb_puts(sb, le);
      sb_puts(sb, "\"");
    }
    sb_puts(sb, "}");
  }
  sb_puts(sb, " ");
  sb_double(sb, value);
  sb_puts(sb, "\n");
}

static void render_histogram(strbuf *sb, const metric_family *f, const metric *m) {
  uint64_t cumulative = 0;
  char le[32];
  for (size_t i = 0; i <= f->nbounds; i++) {
    cumulative += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
    if (i < f->nbounds)
      format_double(le, f->bounds[i]);
    else
      strcpy(le, "+Inf");
    render_sample(sb, f, m, "_bucket", le, (double)cumulative);
  }
  render_sample(sb, f, m, "_sum", NULL, load_double(&m->bits));
  render_sample(sb, f, m, "_count", NULL, (double)cumulative);
}

static void render_family(strbuf *sb, metric_family *f) {
  static const char *const type_names[] = {"counter", "gauge", "histogram"};
  pthread_mutex_lock(&f->lock);
  /* A labeled family nobody used yet has no samples; like the Go client, it is
   * left out rather than rendered as a bare HELP/TYPE pair. */
  if (f->fn || f->first) {
    if (f->help[0]) {
      sb_puts(sb, "# HELP ");
      sb_puts(sb, f->name);
      sb_puts(sb, " ");
      sb_escaped(sb, f->help, false);
      sb_puts(sb, "\n");
    }
    sb_puts(sb, "# TYPE ");
    sb_puts(sb, f->name);
    sb_puts(sb, " ");
    sb_puts(sb, type_names[f->kind]);
    sb_puts(sb, "\n");
    if (f->fn) render_sample(sb, f, NULL, "", NULL, f->fn(f->fn_arg));
    for (const metric *m = f->first; m; m = m->next) {
      if (f->kind == KIND_HISTOGRAM)
        render_histogram(sb, f, m);
      else
        render_sample(sb, f, m, "", NULL, metric_value(m));
    }
  }
  pthread_mutex_unlock(&f->lock);
}

char *metrics_render(metrics_registry *reg, size_t *len) {
  strbuf sb = {0};
  sb_add(&sb, "", 0); /* an empty registry still renders "" rather than NULL */
  if (reg) {
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nhooks; i++) reg->hooks[i].fn(reg->hooks[i].arg);
    for (size_t i = 0; i < reg->nfamilies; i++) render_family(&sb, reg->families[i]);
    pthread_mutex_unlock(&reg->lock);
  }
  if (sb.oom) {
    free(sb.buf);
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = sb.len;
  return sb.buf;
}
