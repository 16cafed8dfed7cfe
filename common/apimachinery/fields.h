/* common/apimachinery/fields.h — Kubernetes field selectors
 * (k8s.io/apimachinery/pkg/fields): "metadata.name=foo,spec.nodeName!=,status.phase=Running".
 *
 * Grammar, exactly as Kubernetes splits it:
 *   selector := term ("," term)*        all must hold (AND); empty terms are skipped
 *   term     := field op value           op is the first "!=", "==" or "=" in the term
 * A comma preceded by a backslash does not end a term. The field is taken as
 * written (no escapes, no trimming: " a" is the field " a"); in the value,
 * "\\", "\," and "\=" stand for '\', ',' and '=', any other escape is an error,
 * and a bare ',' or '=' is an error. "" selects everything.
 *
 * Matching goes through a getter, so each kind decides which fields it
 * supports (Kubernetes supports metadata.name and metadata.namespace for every
 * kind, plus a few per kind such as spec.nodeName and status.phase for Pods).
 *
 * A parsed selector is canonical: terms sorted by field, operator ("=" before
 * "!=") and value, "==" printed as "=", values re-escaped; printing then parsing again gives the
 * same selector. */
#ifndef KEEL_COMMON_APIMACHINERY_FIELDS_H
#define KEEL_COMMON_APIMACHINERY_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"

typedef enum fields_operator {
  FIELDS_OP_EQUALS,     /* "=" or "==" */
  FIELDS_OP_NOT_EQUALS, /* "!=" */
} fields_operator;

/* Read-only to callers. */
typedef struct fields_requirement {
  char *field;
  fields_operator op;
  char *value; /* unescaped */
} fields_requirement;

typedef struct fields_selector {
  fields_requirement *reqs;
  size_t n_reqs;
} fields_selector;

/* Parses s into a new selector (*out, free with fields_selector_free). Bad
 * input is -EINVAL with err naming the term and the problem, e.g.
 *   invalid field selector: term "a=b=c": unescaped '=' in value
 *   invalid field selector: term "status.phase": no operator (=, == or !=)
 * -ENOMEM when out of memory. *out is NULL on failure. */
int fields_selector_parse(const char *s, fields_selector **out, keel_error *err);

void fields_selector_free(fields_selector *sel);

/* True for a selector with no term, which matches everything. */
bool fields_selector_empty(const fields_selector *sel);

/* Returns the value of field for obj, or NULL when this kind does not support
 * selecting on field. An empty but supported field returns "". */
typedef const char *(*fields_get_fn)(void *obj, const char *field);

/* 1 when obj matches, 0 when not; -EINVAL with "field label not supported: X"
 * when get returns NULL for a field of the selector. A NULL or empty selector
 * matches everything. */
int fields_selector_matches(const fields_selector *sel, fields_get_fn get, void *obj,
                            keel_error *err);

/* 0 when every field of sel is in allowed[0..n_allowed); otherwise -EINVAL with
 * "field label not supported: X" for the first that is not. The apiserver calls
 * this once per request, before listing or watching. */
int fields_selector_validate(const fields_selector *sel, const char *const *allowed,
                             size_t n_allowed, keel_error *err);

/* Canonical text ("" for an empty selector), values escaped. Malloc'ed; NULL
 * only when out of memory. */
char *fields_selector_string(const fields_selector *sel);

/* If sel requires field=value (a "=" or "==" term), returns value (borrowed
 * from sel) so a cache can use an index (spec.nodeName for an agent's watch);
 * otherwise NULL. */
const char *fields_selector_requires_exact_match(const fields_selector *sel, const char *field);

/* Escapes '\', ',' and '=' in a literal value for use in a selector
 * (fields_escape_value("a,b") is "a\,b"). Malloc'ed; NULL when out of memory. */
char *fields_escape_value(const char *value);

/* Undoes fields_escape_value. -EINVAL on an unknown escape, a trailing '\' or a
 * bare ',' or '='; *out is malloc'ed on success and NULL on failure. */
int fields_unescape_value(const char *s, char **out, keel_error *err);

#endif
