/* cli/tabwriter.c — see tabwriter.h.
 *
 * The layout is Go's text/tabwriter format(): walk the lines; where a line
 * has a cell in the current column, that starts a column block running over
 * the following lines that also have one; the block's width is its widest
 * cell plus padding; then lay out the columns right of it inside the same
 * block, recursively. Cells are found once per flush by splitting the buffer
 * in place. */
#define _GNU_SOURCE
#include "cli/tabwriter.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct tw_cell {
  const char *text;
  size_t len, width;
} tw_cell;

typedef struct tw_line {
  tw_cell *cells;
  size_t n;      /* cells; all but the last were tab-terminated */
  bool newline;  /* the line ended in '\n' */
} tw_line;

struct tabwriter {
  int minwidth, padding;
  unsigned flags;
  char *buf;
  size_t len, cap;
  size_t *remembered; /* RememberWidths: widest seen per column */
  size_t nremembered;
  bool oom;
};

typedef struct tw_out {
  char *buf;
  size_t len, cap;
  bool oom;
} tw_out;

tabwriter *tabwriter_new(int minwidth, int padding, unsigned flags) {
  tabwriter *tw = calloc(1, sizeof(*tw));
  if (!tw) return NULL;
  tw->minwidth = minwidth < 0 ? 0 : minwidth;
  tw->padding = padding < 0 ? 0 : padding;
  tw->flags = flags;
  return tw;
}

void tabwriter_free(tabwriter *tw) {
  if (!tw) return;
  free(tw->buf);
  free(tw->remembered);
  free(tw);
}

static bool grow(char **buf, size_t *cap, size_t need) {
  if (need <= *cap) return true;
  size_t c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  char *b = realloc(*buf, c);
  if (!b) return false;
  *buf = b;
  *cap = c;
  return true;
}

static void append(tabwriter *tw, const char *s, size_t n) {
  if (tw->oom) return;
  if (!grow(&tw->buf, &tw->cap, tw->len + n + 1)) {
    tw->oom = true;
    return;
  }
  memcpy(tw->buf + tw->len, s, n);
  tw->len += n;
  tw->buf[tw->len] = 0;
}

void tabwriter_write(tabwriter *tw, const char *text) {
  if (text) append(tw, text, strlen(text));
}

void tabwriter_printf(tabwriter *tw, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  int n = vasprintf(&s, fmt, ap);
  va_end(ap);
  if (n < 0) {
    tw->oom = true;
    return;
  }
  append(tw, s, (size_t)n);
  free(s);
}

size_t tabwriter_text_width(const char *s, size_t len) {
  size_t w = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == 0x1b && i + 1 < len && s[i + 1] == '[') {
      /* ESC [ params final-byte: a color or style, zero columns wide. */
      i += 2;
      while (i < len && !((unsigned char)s[i] >= 0x40 && (unsigned char)s[i] <= 0x7e)) i++;
      continue;
    }
    if ((c & 0xc0) != 0x80) w++; /* count lead bytes, not continuations */
  }
  return w;
}

static void out_append(tw_out *o, const char *s, size_t n) {
  if (o->oom) return;
  if (!grow(&o->buf, &o->cap, o->len + n + 1)) {
    o->oom = true;
    return;
  }
  memcpy(o->buf + o->len, s, n);
  o->len += n;
  o->buf[o->len] = 0;
}

static void out_spaces(tw_out *o, size_t n) {
  static const char spaces[] = "                                ";
  while (n > 0) {
    size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
    out_append(o, spaces, k);
    n -= k;
  }
}

typedef struct tw_state {
  tabwriter *tw;
  tw_line *lines;
  size_t nlines;
  size_t *widths; /* the stack of known column widths */
  size_t nwidths;
  tw_out out;
} tw_state;

static void write_lines(tw_state *s, size_t line0, size_t line1) {
  for (size_t i = line0; i < line1; i++) {
    const tw_line *l = &s->lines[i];
    for (size_t j = 0; j < l->n; j++) {
      const tw_cell *c = &l->cells[j];
      out_append(&s->out, c->text, c->len);
      if (j < s->nwidths && s->widths[j] > c->width) out_spaces(&s->out, s->widths[j] - c->width);
    }
    if (l->newline) out_append(&s->out, "\n", 1);
  }
}

static void remember(tw_state *s, size_t column, size_t *width) {
  tabwriter *tw = s->tw;
  if (!(tw->flags & TABWRITER_REMEMBER_WIDTHS)) return;
  if (column < tw->nremembered) {
    if (tw->remembered[column] > *width) *width = tw->remembered[column];
    else tw->remembered[column] = *width;
    return;
  }
  size_t *r = realloc(tw->remembered, (column + 1) * sizeof(*r));
  if (!r) return;
  /* Columns to the left were all laid out before this one. */
  for (size_t k = tw->nremembered; k < column; k++) r[k] = s->widths[k];
  r[column] = *width;
  tw->remembered = r;
  tw->nremembered = column + 1;
}

static void format(tw_state *s, size_t line0, size_t line1) {
  size_t column = s->nwidths;
  for (size_t this = line0; this < line1; this++) {
    if (column + 1 >= s->lines[this].n) continue; /* no tab-terminated cell here */
    write_lines(s, line0, this);
    line0 = this;
    size_t width = (size_t)s->tw->minwidth;
    for (; this < line1; this++) {
      const tw_line *l = &s->lines[this];
      if (column + 1 >= l->n) break;
      size_t w = l->cells[column].width + (size_t)s->tw->padding;
      if (w > width) width = w;
    }
    remember(s, column, &width);
    s->widths[s->nwidths++] = width;
    format(s, line0, this);
    s->nwidths--;
    line0 = this;
    if (this >= line1) break;
  }
  write_lines(s, line0, line1);
}

char *tabwriter_flush_string(tabwriter *tw) {
  if (tw->oom) {
    tw->len = 0;
    tw->oom = false;
    return NULL;
  }
  tw_state s = {.tw = tw};
  size_t maxcells = 1;
  /* Split into lines and cells, in place (cells point into tw->buf). */
  size_t nl = 0;
  for (size_t i = 0; i < tw->len; i++)
    if (tw->buf[i] == '\n') nl++;
  s.lines = calloc(nl + 1, sizeof(*s.lines));
  if (!s.lines) return NULL;
  const char *p = tw->buf ? tw->buf : "", *end = p + tw->len;
  bool ok = true;
  while (p < end && ok) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *stop = eol ? eol : end;
    size_t ncells = 1;
    for (const char *q = p; q < stop; q++)
      if (*q == '\t') ncells++;
    tw_line *l = &s.lines[s.nlines++];
    l->cells = calloc(ncells, sizeof(*l->cells));
    if (!l->cells) {
      ok = false;
      break;
    }
    l->newline = eol != NULL;
    const char *c = p;
    for (const char *q = p;; q++) {
      if (q == stop || *q == '\t') {
        tw_cell *cell = &l->cells[l->n++];
        cell->text = c;
        cell->len = (size_t)(q - c);
        cell->width = tabwriter_text_width(c, cell->len);
        c = q + 1;
        if (q == stop) break;
      }
    }
    if (l->n > maxcells) maxcells = l->n;
    p = eol ? eol + 1 : end;
  }
  if (ok) s.widths = calloc(maxcells + 1, sizeof(*s.widths));
  if (ok && s.widths) {
    format(&s, 0, s.nlines);
    if (!s.out.buf && !s.out.oom) out_append(&s.out, "", 0);
  } else {
    s.out.oom = true;
  }
  for (size_t i = 0; i < s.nlines; i++) free(s.lines[i].cells);
  free(s.lines);
  free(s.widths);
  tw->len = 0;
  if (tw->buf) tw->buf[0] = 0;
  if (s.out.oom) {
    free(s.out.buf);
    return NULL;
  }
  return s.out.buf;
}

int tabwriter_flush(tabwriter *tw, FILE *f) {
  char *s = tabwriter_flush_string(tw);
  if (!s) return -1;
  size_t n = strlen(s);
  int rc = fwrite(s, 1, n, f) == n ? 0 : -1;
  free(s);
  if (fflush(f) != 0) rc = -1;
  return rc;
}
