/* common/apimachinery/text.h — private helpers shared by the apimachinery modules:
 * a growable string builder and Go-style quoting for error messages.
 *
 * Not part of the public contract (listed in the library's srcs, so only this
 * folder can include it). The builder never fails loudly: an allocation failure
 * sets `oom`, later appends are ignored, and apim_buf_steal returns NULL, so a
 * caller checks once at the end instead of after every append. */
#ifndef KEEL_COMMON_APIMACHINERY_TEXT_H
#define KEEL_COMMON_APIMACHINERY_TEXT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct apim_buf {
  char *data; /* NUL-terminated when len > 0 and !oom */
  size_t len;
  size_t cap;
  bool oom;
} apim_buf;

void apim_buf_append(apim_buf *b, const char *s, size_t n);
void apim_buf_puts(apim_buf *b, const char *s);
void apim_buf_putc(apim_buf *b, char c);
void apim_buf_printf(apim_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s quoted like Go's %q ("a\"b\x01"); valid multi-byte UTF-8 is kept,
 * other bytes are escaped. At most `max` input bytes are quoted; a longer
 * string is cut and marked with "..." after the closing quote. */
void apim_buf_quote(apim_buf *b, const char *s, size_t max);
/* Hands out the malloc'ed string ("" when nothing was appended); NULL after an
 * allocation failure. The builder is empty afterwards. */
char *apim_buf_steal(apim_buf *b);
void apim_buf_free(apim_buf *b);

/* Quotes s (as apim_buf_quote, at most `max` input bytes) into a fixed buffer,
 * truncating if needed; returns out. For messages bound for a keel_error. */
const char *apim_quote(char *out, size_t size, const char *s, size_t max);

/* Length of the valid UTF-8 sequence starting at s (1..4), or 0 if s does not
 * start one. */
size_t apim_utf8_seq_len(const unsigned char *s);

#endif
