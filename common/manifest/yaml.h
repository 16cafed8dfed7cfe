/* common/manifest/yaml.h — YAML and JSON text <-> jansson values, with the
 * line and column every value came from.
 *
 * Reading follows what kubectl does with a manifest (sigs.k8s.io/yaml: go-yaml
 * v2, YAML 1.1, then JSON): unquoted yes/no/on/off/y/n are booleans, 0x1F,
 * 0o17 and 017 integers, ~ and empty values null, quoted scalars always
 * strings; anchors and aliases are resolved (and merge keys `<<`), counted
 * against a limit on values so a billion laughs is refused; duplicate keys are
 * errors naming both lines; a key must be a scalar (booleans and numbers
 * become their text, as kubectl does; null is refused). README.md has the
 * table.
 *
 * Writing is kubectl's `-o yaml` style: 2-space indentation, lists of maps as
 * "- name: x" at their key's column, strings quoted only where YAML would read
 * them as something else, multi-line strings as | blocks, lines folded at 80
 * columns where a string has spaces.
 *
 * Errors are -EINVAL with "LINE:COL: what" in keel_error (1-based), -E2BIG
 * when a limit is passed, -ENOMEM. */
#ifndef KEEL_COMMON_MANIFEST_YAML_H
#define KEEL_COMMON_MANIFEST_YAML_H

#include <jansson.h>
#include <stddef.h>

#include "common/base/error.h"

/* Positions of one value and everything under it (opaque; see
 * manifest_pos_find). Reference counted: aliases share their anchor's. */
typedef struct manifest_pos manifest_pos;

/* One document of a stream. */
typedef struct manifest_doc {
  json_t *root;      /* owned; json null for an empty document */
  manifest_pos *pos; /* owned positions of root and its descendants */
  int line, column;  /* where root starts (1-based) */
} manifest_doc;

/* Bounds on what one stream may build; a 0 field takes the default. Input
 * size is the caller's to bound; values beyond it come only from aliases. */
typedef struct manifest_limits {
  size_t max_nodes; /* values in the stream, each alias counted as what it expands to */
  int max_depth;    /* nesting of mappings and sequences */
} manifest_limits;

#define MANIFEST_DEFAULT_MAX_NODES (1u << 20)
#define MANIFEST_DEFAULT_MAX_DEPTH 256

/* Parses a YAML stream (documents separated by `---`) into *docs (*n of them,
 * free with manifest_docs_free; a stream of only comments has none). lim may
 * be NULL. On error nothing is returned: *docs NULL, *n 0. */
int manifest_yaml_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err);

/* Parses a sequence of JSON values (one, or several separated by whitespace,
 * as kubectl reads a JSON stream), each a document. Errors name line:column;
 * duplicate keys are refused. */
int manifest_json_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err);

/* What `-f FILE` accepts: JSON when the first non-blank character is `{` or
 * `[` and the text parses as JSON (else it is read as YAML, which covers YAML's
 * flow style; a text that is neither reports the JSON error), YAML otherwise. */
int manifest_text_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err);

void manifest_docs_free(manifest_doc *docs, size_t n);

/* Where the value at path starts. path is written as protojson writes paths in
 * its errors: `spec.containers[0].image`, `metadata.labels["app"]`, and may go
 * on past the path (": unknown field ..." is ignored). A member's position is
 * its key's; field names also match keys written with the proto name
 * (`pod_ip` for `podIP`). Sets *line and *column (either may be NULL) to the
 * deepest value of path that exists (pos's own position when none does) and
 * returns how many bytes of path that covered (0: none). */
size_t manifest_pos_find(const manifest_pos *pos, const char *path, int *line, int *column);

/* Whether the value at the end of path (all of it matched, up to an optional
 * ": ...") was a plain YAML scalar read as a boolean, number or null (for
 * "quote it" hints). */
int manifest_pos_plain_nonstring(const manifest_pos *pos, const char *path);

/* pos with one more reference / one less (freed at zero). NULL is ignored. */
manifest_pos *manifest_pos_ref(manifest_pos *pos);
void manifest_pos_unref(manifest_pos *pos);

/* ---------------------------------------------------------------- writing */

/* Flags for the writers (here and in manifest.h). */
#define MANIFEST_SORT_KEYS \
  1u                        /* object keys in byte order (kubectl's -o yaml); default: as stored */
#define MANIFEST_AS_LIST 2u /* several objects as one `kind: List` (kubectl get); manifest.h */

/* v as a YAML document (no `---`), ending in a newline. malloc'ed; NULL with err
 * set (-EINVAL nesting deeper than 1000, -ENOMEM). */
char *manifest_json_to_yaml(const json_t *v, unsigned flags, keel_error *err);

/* n values as a YAML stream: documents separated by `---` lines ("" for none). */
char *manifest_json_to_yaml_stream(const json_t *const *vs, size_t n, unsigned flags,
                                   keel_error *err);

#endif
