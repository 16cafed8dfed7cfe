/* common/apimachinery/quantity.h — Kubernetes resource quantities
 * (k8s.io/apimachinery/pkg/api/resource): "500m", "128Mi", "1.5G", "1e3".
 *
 * Grammar:
 *   quantity := [sign] number [suffix]        sign "+" | "-"
 *   number   := digits | digits "." [digits] | "." digits
 *   suffix   := binary | decimal | ("e" | "E") [sign] digits
 *   binary   := Ki Mi Gi Ti Pi Ei             (2^10 .. 2^60)
 *   decimal  := n u m "" k M G T P E          (10^-9 .. 10^18)
 * No whitespace anywhere. Kubernetes also takes a bare sign, ".", or a suffix
 * with no digits ("Mi") as zero; Keel rejects those as the typos they are.
 *
 * Value: exact, in nano-units. As Kubernetes does, a value finer than 1n is
 * rounded up (away from zero) to the next nano ("0.1n" is 1n: asking for a
 * little gets a little), and magnitudes are capped at 2^63-1 units
 * (Kubernetes' maxAllowed; recent Kubernetes caps only binary-suffixed values,
 * Keel caps all so that every value fits int64 units).
 *
 * Format: the suffix family a value was written in (quantity_format), which
 * quantity_string keeps when it prints, as Kubernetes' String() does:
 *   - zero prints "0";
 *   - decimal (DecimalSI): the largest of n u m "" k M G T P E that leaves an
 *     integer: "0.5" -> "500m", "1000m" -> "1", "1.5G" -> "1500M", "1000M" -> "1G";
 *   - exponent (DecimalExponent): the same with "e<3k>" for the suffix, so
 *     "1e3" stays "1e3" (not "1k"), "1E6" -> "1e6", "0.001e0" -> "1e-3",
 *     "1.5e3" -> "1500";
 *   - binary (BinarySI): the largest of Ki..Ei that leaves an integer:
 *     "1024Mi" -> "1Gi", "1536Mi" -> "1536Mi", "1.5Gi" -> "1536Mi"; a value
 *     below 1024 or with a fraction of a unit prints as decimal: "0.5Ki" ->
 *     "512", "1.5Ki" -> "1536", "1.1Ki" -> "1126400m".
 * Only the sign of negatives is printed; "+1" prints "1". Parsing the printed
 * text gives back the same value, which prints the same text again. */
#ifndef KEEL_COMMON_APIMACHINERY_QUANTITY_H
#define KEEL_COMMON_APIMACHINERY_QUANTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

typedef enum quantity_format {
  QUANTITY_DECIMAL_SI = 0,   /* "", m, k, M, ... */
  QUANTITY_BINARY_SI,        /* Ki, Mi, Gi, ... */
  QUANTITY_DECIMAL_EXPONENT, /* e3, E-6, ... */
} quantity_format;

typedef struct quantity {
  __int128 nanos; /* value x 10^9; private: use the functions below */
  quantity_format format;
} quantity;

/* Longest formatted quantity, with its NUL. */
#define QUANTITY_STRING_MAX 48

/* quantity_parse flags */
#define QUANTITY_ALLOW_NEGATIVE 1u

/* Parses s into *out. Errors are -EINVAL with the string quoted:
 *   quantity "12x": must match the regular expression
 *                   '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'
 *   quantity "1ki": unable to parse quantity's suffix
 *   quantity "Mi": unable to parse numeric part of quantity
 *   quantity "-1": must be greater than or equal to 0    (without QUANTITY_ALLOW_NEGATIVE)
 * -ENOMEM only for huge binary-suffixed inputs when out of memory. "-0" is
 * zero, not negative. */
int quantity_parse(const char *s, unsigned flags, quantity *out, keel_error *err);

/* value units, or value/1000 units (Kubernetes' NewQuantity / NewMilliQuantity). */
quantity quantity_from_int64(int64_t value, quantity_format format);
quantity quantity_from_milli(int64_t milli, quantity_format format);

/* -1, 0, 1 as a < b, a == b, a > b (exact, formats ignored). */
int quantity_cmp(const quantity *a, const quantity *b);
int quantity_sign(const quantity *q);
bool quantity_is_zero(const quantity *q);

/* a + b, format of a (of b when a is zero, as Kubernetes' Add), the magnitude
 * capped at 2^63-1 units. Returns -ERANGE when it had to cap, else 0. */
int quantity_add(quantity *a, const quantity *b);

/* Units, rounded up away from zero: "1.2" -> 2, "-1.2" -> -2, "1Ki" -> 1024
 * (Kubernetes' Value()). Always fits: magnitudes are capped at 2^63-1. */
int64_t quantity_value(const quantity *q);

/* Thousandths of a unit, rounded up away from zero: "0.5" -> 500, "1n" -> 1
 * (Kubernetes' MilliValue()). -ERANGE with *out saturated to INT64_MAX or
 * INT64_MIN when the value does not fit (beyond about 9.2e15 units). */
int quantity_milli_value(const quantity *q, int64_t *out);

/* Units of 10^scale (scale -9..18), rounded up away from zero; -ERANGE with
 * *out saturated on overflow, -EINVAL for a scale out of range
 * (Kubernetes' ScaledValue()). */
int quantity_scaled_value(const quantity *q, int scale, int64_t *out);

/* Writes the canonical text (see above) into buf like snprintf: returns the
 * full length, writes at most size bytes including the NUL. A buffer of
 * QUANTITY_STRING_MAX always suffices. */
size_t quantity_string(const quantity *q, char *buf, size_t size);

#endif
