/* common/apimachinery/validation.h — Kubernetes' name and metadata rules
 * (k8s.io/apimachinery/pkg/util/validation) with Kubernetes-style messages.
 *
 * Two layers:
 *  - validation_messages(rule, value, msgs): the bare reasons a value breaks a
 *    rule ("must be no more than 63 characters"), static strings, no allocation.
 *    The selector parsers and anything else that words its own error use these.
 *  - validation_check(errs, path, rule, value) and friends: append one
 *    field-path-named error per reason to a validation_errors list, as the
 *    apiserver reports them:
 *      metadata.name: Invalid value: "Foo_bar": a lowercase RFC 1123 subdomain must ...
 *    `errs` may be NULL to only test. Every check returns true when valid.
 *
 * Collect every problem of an object, then report all of them at once:
 *   validation_errors errs = VALIDATION_ERRORS_INIT;
 *   validation_dns1123_subdomain(&errs, "metadata.name", name);
 *   validation_labels(&errs, "metadata.labels", keys, values, n);
 *   if (validation_errors_to_error(&errs, err) < 0) ...;   "2 errors: ...; ..."
 *   validation_errors_free(&errs);
 *
 * Lengths are in bytes, as Kubernetes counts them (len() of a Go string). */
#ifndef KEEL_COMMON_APIMACHINERY_VALIDATION_H
#define KEEL_COMMON_APIMACHINERY_VALIDATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

#define VALIDATION_DNS1123_LABEL_MAX 63
#define VALIDATION_DNS1123_SUBDOMAIN_MAX 253
#define VALIDATION_DNS1035_LABEL_MAX 63
#define VALIDATION_QUALIFIED_NAME_MAX 63 /* the name part, after any prefix */
#define VALIDATION_LABEL_VALUE_MAX 63
#define VALIDATION_PORT_NAME_MAX 15
#define VALIDATION_ANNOTATIONS_TOTAL_MAX (256 * 1024) /* keys + values, bytes */

/* ---- collecting errors --------------------------------------------------- */

/* At most this many messages are stored; further ones are only counted, so a
 * hostile object with 100k bad labels cannot make a 100k-line error. */
#define VALIDATION_ERRORS_MAX 100

typedef struct validation_errors {
  char **items; /* malloc'ed messages, in the order added */
  size_t n;     /* stored messages */
  size_t cap;
  size_t dropped; /* added but not stored (past VALIDATION_ERRORS_MAX, or no memory) */
} validation_errors;

#define VALIDATION_ERRORS_INIT \
  { 0 }

/* Total errors added: n + dropped. */
size_t validation_errors_count(const validation_errors *errs);

/* Appends a free-form message. A NULL errs is a no-op. */
void validation_errors_addf(validation_errors *errs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* "<path>: Invalid value: \"<value>\": <detail>" (value quoted like Go's %q,
 * cut after 256 bytes with "..."). */
void validation_errors_add_invalid(validation_errors *errs, const char *path, const char *value,
                                   const char *detail);
/* "<path>: Invalid value: <value>: <detail>" for numbers. */
void validation_errors_add_invalid_int(validation_errors *errs, const char *path, int64_t value,
                                       const char *detail);
/* "<path>: Required value" or "<path>: Required value: <detail>". */
void validation_errors_add_required(validation_errors *errs, const char *path, const char *detail);
/* "<path>: Too long: must have at most <max> bytes". */
void validation_errors_add_too_long(validation_errors *errs, const char *path, size_t max);

/* The report as one malloc'ed string: "" with no errors, the message itself
 * with one, "<N> errors: a; b; c" with several (", and <k> more" appended when
 * some were not stored). NULL only when out of memory. */
char *validation_errors_format(const validation_errors *errs);
/* 0 when errs holds no error; otherwise fills err with EINVAL and the formatted
 * report (cut to fit a keel_error) and returns -EINVAL. */
int validation_errors_to_error(const validation_errors *errs, keel_error *err);
/* Frees the messages; errs is empty (and reusable) afterwards. */
void validation_errors_free(validation_errors *errs);

/* ---- rules ----------------------------------------------------------------- */

typedef enum validation_rule {
  /* [a-z0-9]([-a-z0-9]*[a-z0-9])?(\.<same>)*, <= 253: most object names. */
  VALIDATION_DNS1123_SUBDOMAIN,
  /* [a-z0-9]([-a-z0-9]*[a-z0-9])?, <= 63: namespaces, container and port-less names. */
  VALIDATION_DNS1123_LABEL,
  /* [a-z]([-a-z0-9]*[a-z0-9])?, <= 63: Service names. */
  VALIDATION_DNS1035_LABEL,
  /* [prefix/]name: prefix a DNS-1123 subdomain, name <= 63 of [-A-Za-z0-9_.]
   * starting and ending alphanumeric. Label and annotation keys. */
  VALIDATION_QUALIFIED_NAME,
  /* Empty, or <= 63 with the name-part rule above. Label values. */
  VALIDATION_LABEL_VALUE,
  /* [-._a-zA-Z][-._a-zA-Z0-9]*, and not ".", "..", or starting with "..":
   * environment variable names as Kubernetes accepts them. */
  VALIDATION_ENV_VAR_NAME,
  /* [A-Za-z_][A-Za-z0-9_]*: a strict C identifier. */
  VALIDATION_C_IDENTIFIER,
  /* IANA_SVC_NAME: <= 15 of [-a-z0-9], at least one letter, no leading,
   * trailing or doubled '-'. Container and Service port names. */
  VALIDATION_PORT_NAME,
  /* Not "." or "..", no '/' or '%': any name that becomes a store key segment. */
  VALIDATION_PATH_SEGMENT_NAME,
} validation_rule;

#define VALIDATION_MSGS_MAX 8

/* Fills msgs with the reasons value breaks rule (static strings) and returns
 * how many; 0 = valid. A NULL value is treated as "". */
size_t validation_messages(validation_rule rule, const char *value,
                           const char *msgs[VALIDATION_MSGS_MAX]);

/* One "Invalid value" error at path per reason. True when valid. */
bool validation_check(validation_errors *errs, const char *path, validation_rule rule,
                      const char *value);

/* Named shorthands for validation_check. */
bool validation_dns1123_subdomain(validation_errors *errs, const char *path, const char *value);
bool validation_dns1123_label(validation_errors *errs, const char *path, const char *value);
bool validation_dns1035_label(validation_errors *errs, const char *path, const char *value);
bool validation_qualified_name(validation_errors *errs, const char *path, const char *value);
bool validation_label_value(validation_errors *errs, const char *path, const char *value);
bool validation_env_var_name(validation_errors *errs, const char *path, const char *value);
bool validation_c_identifier(validation_errors *errs, const char *path, const char *value);
bool validation_port_name(validation_errors *errs, const char *path, const char *value);

/* 1..65535: "<path>: Invalid value: 0: must be between 1 and 65535, inclusive". */
bool validation_port_number(validation_errors *errs, const char *path, int64_t port);

/* metadata.labels: every key a qualified name, every value a label value; each
 * error names path and the offending key or value (as Kubernetes' ValidateLabels). */
bool validation_labels(validation_errors *errs, const char *path, const char *const *keys,
                       const char *const *values, size_t n);
/* metadata.annotations: every key a qualified name (checked lower-cased, as
 * Kubernetes does), and keys + values together at most 256 KiB. */
bool validation_annotations(validation_errors *errs, const char *path, const char *const *keys,
                            const char *const *values, size_t n);

#endif
