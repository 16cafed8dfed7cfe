/* cli/tabwriter.h — elastic tabstops as Go's text/tabwriter lays them out,
 * which is what kubectl's tables and `describe` are made of.
 *
 * Text is written with cells ending in '\t' and lines in '\n'; on flush every
 * column block (consecutive lines that have a cell in that column) is padded
 * to its widest cell plus `padding`, at least `minwidth`. A line's last cell
 * (after its last tab) is never padded, so tables have no trailing blanks.
 * Widths count UTF-8 characters and skip ANSI color sequences (ESC [ ... m),
 * so colored cells line up with plain ones.
 *
 * TABWRITER_REMEMBER_WIDTHS is kubectl's fork of the flag: a column never gets
 * narrower than it was at an earlier flush, so `get -w` rows printed one at a
 * time stay under the table's header. kubectl tables use minwidth 6, padding
 * 3; describe uses minwidth 0, padding 2. */
#ifndef KEEL_CLI_TABWRITER_H
#define KEEL_CLI_TABWRITER_H

#include <stdio.h>

#define TABWRITER_REMEMBER_WIDTHS 1u

typedef struct tabwriter tabwriter;

/* NULL when out of memory. */
tabwriter *tabwriter_new(int minwidth, int padding, unsigned flags);
void tabwriter_free(tabwriter *tw);

/* Appends text to the buffer (nothing is laid out before a flush). */
void tabwriter_write(tabwriter *tw, const char *text);
void tabwriter_printf(tabwriter *tw, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Lays out everything written since the last flush; returns it (malloc'ed,
 * "" when nothing was written) and empties the buffer. NULL when out of memory. */
char *tabwriter_flush_string(tabwriter *tw);
/* The same, written to f. Returns 0, or -1 when out of memory or f failed. */
int tabwriter_flush(tabwriter *tw, FILE *f);

/* The display width of s: UTF-8 characters, ANSI color sequences excluded. */
size_t tabwriter_text_width(const char *s, size_t len);

#endif
