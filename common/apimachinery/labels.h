/* common/apimachinery/labels.h — Kubernetes label selectors
 * (k8s.io/apimachinery/pkg/labels): parse, match, print canonically, and build
 * from a metav1.LabelSelector (matchLabels + matchExpressions).
 *
 * Grammar (whitespace ' ', '\t', '\r', '\n' between tokens is ignored):
 *   selector    := "" | requirement ("," requirement)*       all must hold (AND)
 *   requirement := key                                       exists
 *                | "!" key                                   does not exist
 *                | key ("=" | "==" | "!=") [value]           value may be empty
 *                | key ("in" | "notin") "(" [values] ")"     set-based
 *                | key (">" | "<") integer                   numeric (int64)
 * Keys are qualified names and values label values (validation.h); "in" and
 * "notin" are keywords only where an operator is expected, so they also work
 * as keys and values. "x in ()" is the set {""}, as in Kubernetes.
 *
 * Matching follows Kubernetes: "=", "==", "in" need the key present with a
 * listed value; "!=" and "notin" also hold when the key is absent; ">" and "<"
 * need the key present with an int64 value compared numerically.
 *
 * A parsed selector is canonical: requirements sorted by key (then operator,
 * then values) and each value set sorted and deduplicated, so
 * labels_selector_string prints equal selectors identically and printing then
 * parsing again gives the same selector. */
#ifndef KEEL_COMMON_APIMACHINERY_LABELS_H
#define KEEL_COMMON_APIMACHINERY_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/base/error.h"

typedef enum labels_operator {
  LABELS_OP_EQUALS,         /* a=b */
  LABELS_OP_DOUBLE_EQUALS,  /* a==b (kept apart only to print back as written) */
  LABELS_OP_NOT_EQUALS,     /* a!=b */
  LABELS_OP_IN,             /* a in (b, c) */
  LABELS_OP_NOT_IN,         /* a notin (b, c) */
  LABELS_OP_EXISTS,         /* a */
  LABELS_OP_DOES_NOT_EXIST, /* !a */
  LABELS_OP_GREATER_THAN,   /* a>1 */
  LABELS_OP_LESS_THAN,      /* a<1 */
} labels_operator;

/* Read-only to callers (the watch cache may walk it to pick an index). */
typedef struct labels_requirement {
  char *key;
  labels_operator op;
  char **values; /* sorted, unique; exactly 1 for =, ==, !=, >, <; none for (!)exists */
  size_t n_values;
} labels_requirement;

typedef struct labels_selector {
  labels_requirement *reqs; /* canonical order, see above */
  size_t n_reqs;
} labels_selector;

/* Parses s into a new selector (*out, free with labels_selector_free). On bad
 * input returns -EINVAL with err naming the byte position and the token and
 * saying what was expected or which rule a key or value breaks, e.g.
 *   unable to parse requirement at position 13: found "qa", expected: ',' or ')'
 * (for "env in (prod qa)"); tokens are quoted like Go's %q.
 * -ENOMEM when out of memory. *out is NULL on failure. */
int labels_selector_parse(const char *s, labels_selector **out, keel_error *err);

/* One matchExpressions entry of a metav1.LabelSelector. */
typedef struct labels_expression {
  const char *key;
  const char *op; /* "In", "NotIn", "Exists", "DoesNotExist" (exact spelling) */
  const char *const *values;
  size_t n_values;
} labels_expression;

/* Builds the selector a Deployment/ReplicaSet/Service-style LabelSelector
 * means: every matchLabels pair as key=value, every expression as its
 * set-based requirement. No labels and no expressions select everything (an
 * absent LabelSelector, by Kubernetes' rule, selects nothing; that is the
 * caller's case). Errors (-EINVAL) name the entry: "matchExpressions[1]: for
 * 'in', 'notin' operators, values set can't be empty", or an unknown operator. */
int labels_selector_from_label_selector(const char *const *match_keys,
                                        const char *const *match_values, size_t n_match,
                                        const labels_expression *exprs, size_t n_exprs,
                                        labels_selector **out, keel_error *err);

void labels_selector_free(labels_selector *sel);

/* True for a selector with no requirement, which matches everything. */
bool labels_selector_empty(const labels_selector *sel);

/* Matches a label set given as parallel arrays (a protobuf-c map becomes this
 * with one loop over its entries). NULL keys or values entries count as absent
 * and "" respectively. A NULL or empty selector matches everything. */
bool labels_selector_matches(const labels_selector *sel, const char *const *keys,
                             const char *const *values, size_t n);

/* The same through a getter: returns the value of key, or NULL when absent. */
typedef const char *(*labels_get_fn)(void *ctx, const char *key);
bool labels_selector_matches_fn(const labels_selector *sel, labels_get_fn get, void *ctx);

/* Canonical text: requirements joined by ",", each as "k=v", "k==v", "k!=v",
 * "k in (a,b)", "k notin (a,b)", "k", "!k", "k>1", "k<1". "" for an empty
 * selector. Malloc'ed; NULL only when out of memory. */
char *labels_selector_string(const labels_selector *sel);

/* If sel pins key to a single value (k=v, k==v or k in (v)), returns that value
 * (borrowed from sel) so a cache can look up an index; otherwise NULL. Like
 * Kubernetes, only the first requirement on key is considered. */
const char *labels_selector_requires_exact_match(const labels_selector *sel, const char *key);

#endif
