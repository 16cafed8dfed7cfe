/* common/manifest/internal.h — shared by the parser (yaml_parse.c,
 * json_parse.c), the position tree (pos.c), scalar resolution (resolve.c) and
 * the emitter (yaml_emit.c). */
#ifndef KEEL_COMMON_MANIFEST_INTERNAL_H
#define KEEL_COMMON_MANIFEST_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/manifest/yaml.h"

/* ------------------------------------------------------------ positions */

/* One member of an object (key set) or element of an array (key NULL): where
 * it is written (the key's position, or the element's), and its value. */
typedef struct mpos_ent {
  char *key;
  int line, col;
  manifest_pos *node; /* one reference */
} mpos_ent;

/* Nodes are immutable once their value is complete, so an alias shares the
 * anchor's node (a reference) instead of copying it. */
struct manifest_pos {
  unsigned refs;
  char type;         /* 'o' object, 'a' array, 's' scalar */
  bool plain_nonstr; /* a plain scalar YAML read as a boolean, number or null */
  int line, col;     /* where the value itself starts (1-based) */
  size_t weight;     /* values in the subtree, aliases expanded (itself included) */
  size_t n, cap;
  mpos_ent *ents;
};

/* A new node with one reference; NULL when out of memory. */
manifest_pos *mpos_new(char type, int line, int col);
manifest_pos *mpos_ref(manifest_pos *p);
/* Appends a member (key[0..keylen) copied) or an element (key NULL), taking
 * child's reference (also on failure). -ENOMEM. */
int mpos_add(manifest_pos *parent, const char *key, size_t keylen, int line, int col,
             manifest_pos *child);
/* The member entry for key, or NULL. */
const mpos_ent *mpos_member(const manifest_pos *p, const char *key);

/* ------------------------------------------------------------ scalars */

/* What a plain (unquoted, untagged) scalar means, as go-yaml v2 (and so
 * sigs.k8s.io/yaml and kubectl) resolves it under YAML 1.1. */
typedef enum {
  MR_STR = 0,
  MR_NULL,      /* "", ~, null, Null, NULL */
  MR_BOOL,      /* y/Y/yes/Yes/YES/on/On/ON/true/True/TRUE and the negatives */
  MR_INT,       /* 12, -3, 0x1F, 0o17, 017, 0b101, 1_000 */
  MR_UINT,      /* an integer above INT64_MAX that fits uint64 */
  MR_FLOAT,     /* 1.5, .5, 1e3, 08, .inf, -.Inf, .nan */
  MR_TIMESTAMP, /* 2001-12-14, 2001-12-14T21:59:43Z: stays a string */
} mres_type;

typedef struct mres {
  mres_type type;
  bool b;
  int64_t i;
  uint64_t u;
  double f;
} mres;

/* Resolves s[0..len) (no NUL inside) as a plain scalar. */
void mres_plain(const char *s, size_t len, mres *out);

/* Whether s can be written as a plain scalar and read back as the same
 * string: it resolves to a string, is not "<<" (a merge key) and does not look
 * like a YAML 1.1 sexagesimal number ("12:30"). Syntax (": ", leading "- ")
 * is libyaml's emitter's to judge. */
bool mres_plain_is_string(const char *s, size_t len);

/* Go's strconv.FormatFloat(f, 'g', -1, bits) (bits 32 or 64), with YAML's
 * .inf, -.inf and .nan: how go-yaml writes floats. buf >= 40 bytes. */
void mres_format_float(double f, int bits, char *buf, size_t n);

#endif
