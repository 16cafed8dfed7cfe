/* common/protojson/decode.c — jansson value -> protobuf-c message.
 *
 * Messages are built in protobuf-c's own layout with malloc, so the caller
 * frees them with protobuf_c_message_free_unpacked(msg, NULL). The message
 * under construction is consistent after every single store: a sub-message is
 * attached only once it is complete (message_from_json frees its own partial
 * result), a repeated field's array is attached first and its count grows one
 * finished element at a time, strings replace only the shared defaults
 * protobuf_c_message_init left (a field given twice, under its JSON and its
 * proto name, or a second member of a oneof is an error rather than an
 * overwrite). So on any error the partial message is simply freed. */
#define _GNU_SOURCE
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/protojson/internal.h"

#define MEMBER(m, off) ((char *)(m) + (off))

static int message_from_json(pj_ctx *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
                             ProtobufCMessage **out);

static int type_error(pj_ctx *c, const char *expected, const json_t *v) {
  char got[200];
  pj_describe(v, got, sizeof(got));
  return pj_fail(c, "expected %s, got %s", expected, got);
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc) {
  ProtobufCMessage *m = malloc(desc->sizeof_message);
  if (m) protobuf_c_message_init(desc, m);
  return m;
}

static char *dup_string(pj_ctx *c, const json_t *v, int *rc) {
  const char *s = json_string_value(v);
  size_t len = json_string_length(v);
  if (strlen(s) != len) {
    *rc = pj_fail(c, "string contains a NUL character");
    return NULL;
  }
  char *d = strndup(s, len);
  *rc = d ? 0 : pj_oom(c);
  return d;
}

/* ------------------------------------------------------------ numbers */

/* -?[0-9]+ into a sign and a magnitude; false on bad syntax. *overflow when
 * the magnitude does not fit 64 bits. */
static bool parse_decimal(const char *s, bool *neg, uint64_t *mag, bool *overflow) {
  *neg = *s == '-';
  if (*neg) s++;
  if (!*s) return false;
  uint64_t v = 0;
  *overflow = false;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return false;
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) *overflow = true;
    v = v * 10 + d;
  }
  *mag = v;
  return true;
}

static int out_of_range(pj_ctx *c, const json_t *v, const char *tname) {
  char what[200];
  if (json_is_string(v)) {
    pj_quote(json_string_value(v), 40, what, sizeof(what));
  } else if (json_is_integer(v)) {
    snprintf(what, sizeof(what), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
  } else {
    pj_format_double(json_real_value(v), what, sizeof(what));
  }
  return pj_fail(c, "%s is out of range for %s", what, tname);
}

static int not_integral(pj_ctx *c, double d) {
  char what[64];
  pj_format_double(d, what, sizeof(what));
  return pj_fail(c, "%s is not an integer", what);
}

/* A JSON number, integral real or decimal string, within [min, max]. */
static int get_int(pj_ctx *c, const json_t *v, int64_t min, int64_t max, const char *tname,
                   int64_t *out) {
  int64_t x;
  if (json_is_integer(v)) {
    x = json_integer_value(v);
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d)) return not_integral(c, d);
    if (d < -9223372036854775808.0 || d >= 9223372036854775808.0) return out_of_range(c, v, tname);
    x = (int64_t)d;
  } else if (json_is_string(v)) {
    bool neg, overflow;
    uint64_t mag;
    if (!parse_decimal(json_string_value(v), &neg, &mag, &overflow))
      return type_error(c, "an integer", v);
    if (overflow || mag > (neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX))
      return out_of_range(c, v, tname);
    x = neg ? (int64_t)(0 - mag) : (int64_t)mag;
  } else {
    return type_error(c, "an integer", v);
  }
  if (x < min || x > max) return out_of_range(c, v, tname);
  *out = x;
  return 0;
}

static int get_uint(pj_ctx *c, const json_t *v, uint64_t max, const char *tname, uint64_t *out) {
  uint64_t x;
  if (json_is_integer(v)) {
    json_int_t i = json_integer_value(v);
    if (i < 0) return out_of_range(c, v, tname);
    x = (uint64_t)i;
  } else if (json_is_real(v)) {
    double d = json_real_value(v);
    if (!isfinite(d) || d != floor(d)) return not_integral(c, d);
    if (d < 0 || d >= 18446744073709551616.0) return out_of_range(c, v, tname);
    x = (uint64_t)d;
  } else if (json_is_string(v)) {
    bool neg, overflow;
    if (!parse_decimal(json_string_value(v), &neg, &x, &overflow))
      return type_error(c, "an integer", v);
    if (overflow || (neg && x != 0)) return out_of_range(c, v, tname);
  } else {
    return type_error(c, "an integer", v);
  }
  if (x > max) return out_of_range(c, v, tname);
  *out = x;
  return 0;
}

static int get_double(pj_ctx *c, const json_t *v, bool is_float, double *out) {
  double d;
  if (json_is_integer(v)) {
    d = (double)json_integer_value(v);
  } else if (json_is_real(v)) {
    d = json_real_value(v);
  } else if (json_is_string(v)) {
    const char *s = json_string_value(v);
    if (strcmp(s, "NaN") == 0) {
      d = NAN;
    } else if (strcmp(s, "Infinity") == 0) {
      d = INFINITY;
    } else if (strcmp(s, "-Infinity") == 0) {
      d = -INFINITY;
    } else {
      /* A JSON-style decimal only: strtod would also take hex, "inf", spaces. */
      bool ok = (*s == '-' || (*s >= '0' && *s <= '9')) && !strpbrk(s, "xXiInN \t\n");
      char *end = NULL;
      errno = 0;
      d = ok ? strtod(s, &end) : 0;
      if (!ok || end == s || *end) return type_error(c, "a number", v);
      if (!isfinite(d)) return out_of_range(c, v, is_float ? "float" : "double");
    }
  } else {
    return type_error(c, "a number", v);
  }
  if (is_float && isfinite(d) && fabs(d) > FLT_MAX) return out_of_range(c, v, "float");
  *out = d;
  return 0;
}

/* ------------------------------------------------------------ values */

/* One value of f's type from v into p (a field or an element), which holds a
 * default nothing owns. */
static int value_from_json(pj_ctx *c, const ProtobufCFieldDescriptor *f, const json_t *v, void *p) {
  int rc = 0;
  int64_t i;
  uint64_t u;
  double d;
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      if ((rc = get_int(c, v, INT32_MIN, INT32_MAX, "int32", &i)) == 0) *(int32_t *)p = (int32_t)i;
      return rc;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      if ((rc = get_uint(c, v, UINT32_MAX, "uint32", &u)) == 0) *(uint32_t *)p = (uint32_t)u;
      return rc;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      if ((rc = get_int(c, v, INT64_MIN, INT64_MAX, "int64", &i)) == 0) *(int64_t *)p = i;
      return rc;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      if ((rc = get_uint(c, v, UINT64_MAX, "uint64", &u)) == 0) *(uint64_t *)p = u;
      return rc;
    case PROTOBUF_C_TYPE_FLOAT:
      if ((rc = get_double(c, v, true, &d)) == 0) *(float *)p = (float)d;
      return rc;
    case PROTOBUF_C_TYPE_DOUBLE:
      if ((rc = get_double(c, v, false, &d)) == 0) *(double *)p = d;
      return rc;
    case PROTOBUF_C_TYPE_BOOL:
      if (!json_is_boolean(v)) return type_error(c, "a boolean", v);
      *(protobuf_c_boolean *)p = json_is_true(v);
      return 0;
    case PROTOBUF_C_TYPE_ENUM: {
      const ProtobufCEnumDescriptor *ed = f->descriptor;
      if (json_is_string(v)) {
        const ProtobufCEnumValue *ev =
            ed ? protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v)) : NULL;
        if (!ev) {
          char q[160];
          pj_quote(json_string_value(v), 40, q, sizeof(q));
          return pj_fail(c, "unknown value %s for enum %s", q, ed ? ed->name : "?");
        }
        *(int *)p = ev->value;
        return 0;
      }
      if (!json_is_number(v)) return type_error(c, "an enum name or number", v);
      if ((rc = get_int(c, v, INT32_MIN, INT32_MAX, "an enum", &i)) == 0) *(int *)p = (int)i;
      return rc;
    }
    case PROTOBUF_C_TYPE_STRING: {
      if (!json_is_string(v)) return type_error(c, "a string", v);
      char *s = dup_string(c, v, &rc);
      if (s) *(char **)p = s;
      return rc;
    }
    case PROTOBUF_C_TYPE_BYTES: {
      if (!json_is_string(v)) return type_error(c, "a base64 string", v);
      uint8_t *data;
      size_t len;
      rc = pj_base64_decode(json_string_value(v), json_string_length(v), &data, &len);
      if (rc == -ENOMEM) return pj_oom(c);
      if (rc < 0) return type_error(c, "a base64 string", v);
      ProtobufCBinaryData *bd = p;
      bd->data = data;
      bd->len = len;
      return 0;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
      return message_from_json(c, f->descriptor, v, (ProtobufCMessage **)p);
  }
  return pj_fail(c, "unsupported field type %d", (int)f->type);
}

/* Records that f of m holds a value: has_ of proto2 optionals, a oneof's case. */
static void mark_set(ProtobufCMessage *m, const ProtobufCFieldDescriptor *f) {
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
    *(uint32_t *)MEMBER(m, f->quantifier_offset) = f->id;
  else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
           f->type != PROTOBUF_C_TYPE_MESSAGE)
    *(protobuf_c_boolean *)MEMBER(m, f->quantifier_offset) = 1;
}

static int singular_from_json(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                              const json_t *v) {
  int rc = value_from_json(c, f, v, MEMBER(m, f->offset));
  if (rc == 0) mark_set(m, f);
  return rc;
}

static int repeated_from_json(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                              const json_t *v) {
  if (!json_is_array(v)) return type_error(c, "an array", v);
  size_t n = json_array_size(v);
  if (n == 0) return 0;
  size_t size = pj_elt_size(f->type);
  char *arr = calloc(n, size);
  if (!arr) return pj_oom(c);
  size_t *count = (size_t *)MEMBER(m, f->quantifier_offset);
  *(char **)MEMBER(m, f->offset) = arr;
  *count = 0;
  for (size_t i = 0; i < n; i++) {
    pj_push_index(c, i);
    int rc = value_from_json(c, f, json_array_get(v, i), arr + i * size);
    pj_pop(c);
    if (rc < 0) return rc;
    (*count)++;
  }
  return 0;
}

/* A map key in its canonical text: decimal without '+' or leading zeros,
 * "true"/"false" (so distinct JSON keys are distinct map keys). */
static int map_key_from_text(pj_ctx *c, const ProtobufCFieldDescriptor *kf, const char *key,
                             void *p) {
  int rc = 0;
  if (kf->type == PROTOBUF_C_TYPE_STRING) {
    char *s = strdup(key);
    if (!s) return pj_oom(c);
    *(char **)p = s;
    return 0;
  }
  if (kf->type == PROTOBUF_C_TYPE_BOOL) {
    if (strcmp(key, "true") != 0 && strcmp(key, "false") != 0)
      return pj_fail(c, "map key must be \"true\" or \"false\"");
    *(protobuf_c_boolean *)p = key[0] == 't';
    return 0;
  }
  const char *digits = key[0] == '-' ? key + 1 : key;
  if (digits[0] == '0' && (digits[1] || key[0] == '-'))
    return pj_fail(c, "map key must be a decimal integer without leading zeros");
  json_t *text = json_string(key);
  if (!text) return pj_oom(c);
  rc = value_from_json(c, kf, text, p);
  json_decref(text);
  return rc;
}

static int map_from_json(pj_ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                         const json_t *v) {
  if (!json_is_object(v)) return type_error(c, "an object", v);
  size_t n = json_object_size(v);
  if (n == 0) return 0;
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = pj_field(ed, 1), *vf = pj_field(ed, 2);
  ProtobufCMessage **arr = calloc(n, sizeof(*arr));
  if (!arr) return pj_oom(c);
  size_t *count = (size_t *)MEMBER(m, f->quantifier_offset);
  *(ProtobufCMessage ***)MEMBER(m, f->offset) = arr;
  *count = 0;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)v, key, val) {
    if (*count == n) break; /* cannot happen: the object is not changing */
    ProtobufCMessage *e = new_message(ed);
    if (!e) return pj_oom(c);
    arr[(*count)++] = e;
    pj_push_key(c, key);
    int rc = map_key_from_text(c, kf, key, MEMBER(e, kf->offset));
    if (rc == 0) {
      mark_set(e, kf);
      rc = singular_from_json(c, e, vf, val);
    }
    pj_pop(c);
    if (rc < 0) return rc;
  }
  return 0;
}

/* ------------------------------------------------------------ messages */

static const ProtobufCFieldDescriptor *find_field(const ProtobufCMessageDescriptor *desc,
                                                  const pj_msg *info, const char *key) {
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    const char *jn = pj_msg_json_name(info, (int32_t)f->id);
    if (jn ? strcmp(jn, key) == 0 : pj_camel_eq(f->name, key)) return f;
  }
  return protobuf_c_message_descriptor_get_field_by_name(desc, key);
}

static int fill_message(pj_ctx *c, const ProtobufCMessageDescriptor *desc, const json_t *obj,
                        ProtobufCMessage *m) {
  const pj_msg *info = pj_find_msg(c->pj, desc->name);
  uint8_t small[64] = {0};
  cleanup_free uint8_t *big = NULL;
  uint8_t *seen = small;
  if (desc->n_fields > sizeof(small)) {
    seen = big = calloc(desc->n_fields, 1);
    if (!big) return pj_oom(c);
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)obj, key, val) {
    const ProtobufCFieldDescriptor *f = find_field(desc, info, key);
    if (!f) {
      char q[160];
      pj_quote(key, 64, q, sizeof(q));
      pj_push_raw(c, key);
      int rc = pj_fail(c, "unknown field %s", q);
      pj_pop(c);
      return rc;
    }
    if (json_is_null(val)) continue; /* null is "absent" (creationTimestamp: null) */
    size_t idx = (size_t)(f - desc->fields);
    int rc = 0;
    pj_push_field(c, desc, f);
    if (seen[idx]) {
      rc = pj_fail(c, "field given twice (under its JSON and its proto name)");
    } else if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
               *(uint32_t *)MEMBER(m, f->quantifier_offset) != 0) {
      uint32_t other = *(uint32_t *)MEMBER(m, f->quantifier_offset);
      const ProtobufCFieldDescriptor *of = protobuf_c_message_descriptor_get_field(desc, other);
      const char *name = of ? protojson_field_json_name(c->pj, desc, of) : NULL;
      rc = pj_fail(c, "only one field of a oneof may be set, and %s is", name ? name : "another");
    } else {
      seen[idx] = 1;
      if (f->label != PROTOBUF_C_LABEL_REPEATED)
        rc = singular_from_json(c, m, f, val);
      else if (pj_is_map_field(c->pj, f))
        rc = map_from_json(c, m, f, val);
      else
        rc = repeated_from_json(c, m, f, val);
    }
    pj_pop(c);
    if (rc < 0) return rc;
  }
  for (unsigned i = 0; i < desc->n_fields; i++) {
    if (desc->fields[i].label != PROTOBUF_C_LABEL_REQUIRED || seen[i]) continue;
    pj_push_field(c, desc, &desc->fields[i]);
    int rc = pj_fail(c, "required field missing");
    pj_pop(c);
    return rc;
  }
  return 0;
}

static int special_from_json(pj_ctx *c, pj_kind kind, const ProtobufCMessageDescriptor *desc,
                             const json_t *v, ProtobufCMessage *m) {
  int rc = 0;
  switch (kind) {
    case PJ_TIMESTAMP: {
      int64_t s;
      int32_t ns;
      if (pj_parse_timestamp(json_string_value(v), &s, &ns) < 0) {
        char q[160];
        pj_quote(json_string_value(v), 64, q, sizeof(q));
        return pj_fail(
            c, "invalid RFC 3339 timestamp %s (want 2006-01-02T15:04:05Z, in years 1 to 9999)", q);
      }
      *(int64_t *)MEMBER(m, pj_field(desc, 1)->offset) = s;
      *(int32_t *)MEMBER(m, pj_field(desc, 2)->offset) = ns;
      return 0;
    }
    case PJ_WRAPPER:
      return singular_from_json(c, m, pj_field(desc, 1), v);
    case PJ_INTORSTRING:
      if (json_is_string(v)) {
        char *s = dup_string(c, v, &rc);
        if (!s) return rc;
        *(int32_t *)MEMBER(m, pj_field(desc, 1)->offset) = 1;
        *(char **)MEMBER(m, pj_field(desc, 3)->offset) = s;
        return 0;
      } else {
        int64_t i;
        if ((rc = get_int(c, v, INT32_MIN, INT32_MAX, "int32", &i)) < 0) return rc;
        *(int32_t *)MEMBER(m, pj_field(desc, 1)->offset) = 0;
        *(int32_t *)MEMBER(m, pj_field(desc, 2)->offset) = (int32_t)i;
        return 0;
      }
    case PJ_QUANTITY: {
      char num[64], *s;
      if (json_is_string(v)) {
        if (!(s = dup_string(c, v, &rc))) return rc;
      } else {
        if (json_is_integer(v))
          snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        else if (fabs(json_real_value(v)) < 1e15 && json_real_value(v) == floor(json_real_value(v)))
          snprintf(num, sizeof(num), "%.0f", json_real_value(v)); /* 1e3 -> "1000" */
        else
          pj_format_double(json_real_value(v), num, sizeof(num));
        if (!(s = strdup(num))) return pj_oom(c);
      }
      *(char **)MEMBER(m, pj_field(desc, 1)->offset) = s;
      return 0;
    }
    case PJ_PLAIN:
      break;
  }
  return fill_message(c, desc, v, m);
}

/* The JSON types each kind takes; anything else is a type error up front. */
static const char *expected_for(pj_kind kind, const json_t *v) {
  switch (kind) {
    case PJ_TIMESTAMP:
      return json_is_string(v) ? NULL : "an RFC 3339 timestamp string";
    case PJ_INTORSTRING:
      return json_is_string(v) || json_is_number(v) ? NULL : "an integer or a string";
    case PJ_QUANTITY:
      return json_is_string(v) || json_is_number(v) ? NULL : "a quantity (a string or a number)";
    case PJ_WRAPPER:
      return NULL; /* the value's own type decides */
    case PJ_PLAIN:
      break;
  }
  return json_is_object(v) ? NULL : "an object";
}

static int message_from_json(pj_ctx *c, const ProtobufCMessageDescriptor *desc, const json_t *v,
                             ProtobufCMessage **out) {
  pj_kind kind = pj_kind_of(desc);
  const char *expected = expected_for(kind, v);
  if (expected) return type_error(c, expected, v);
  int rc = pj_enter(c);
  if (rc < 0) return rc;
  ProtobufCMessage *m = new_message(desc);
  if (!m)
    rc = pj_oom(c);
  else
    rc = special_from_json(c, kind, desc, v, m);
  pj_leave(c);
  if (rc < 0) {
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
  }
  *out = m;
  return 0;
}

ProtobufCMessage *protojson_from_json(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                      const json_t *json, keel_error *err) {
  if (!pj || !desc || !json) {
    keel_error_set(err, EINVAL, "protojson_from_json: no %s", !json ? "JSON" : "descriptor");
    return NULL;
  }
  pj_ctx c = {.pj = pj, .err = err};
  ProtobufCMessage *m = NULL;
  return message_from_json(&c, desc, json, &m) < 0 ? NULL : m;
}

ProtobufCMessage *protojson_from_string(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                        const char *text, size_t len, keel_error *err) {
  json_error_t je;
  json_t *j =
      json_loadb(text ? text : "", text ? len : 0, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
  if (!j) {
    /* jansson quotes the offending token, which may be bytes that are not
     * UTF-8 or control characters: keep the message printable. */
    bool utf8 = pj_utf8_valid(je.text, strlen(je.text));
    for (char *p = je.text; *p; p++)
      if ((uint8_t)*p < 0x20 || *p == 0x7f || (!utf8 && (uint8_t)*p >= 0x80)) *p = '?';
    /* Not jansson's flag name in a user's error. */
    char *flag = strstr(je.text, " without JSON_ALLOW_NUL");
    if (flag) memmove(flag, flag + 23, strlen(flag + 23) + 1);
    keel_error_set(err, EINVAL, "invalid JSON at %d:%d: %s", je.line, je.column, je.text);
    return NULL;
  }
  ProtobufCMessage *m = protojson_from_json(pj, desc, j, err);
  json_decref(j);
  return m;
}
