/* common/protojson/internal.h — shared by protojson.c (the name index, paths,
 * errors), encode.c, decode.c and text.c (timestamps, base64, numbers). */
#ifndef KEEL_COMMON_PROTOJSON_INTERNAL_H
#define KEEL_COMMON_PROTOJSON_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/protojson/protojson.h"

/* ------------------------------------------------------------ name index */

typedef struct pj_field_name {
  int32_t number;
  char *json_name;
} pj_field_name;

/* What the descriptor sets say about one message. */
typedef struct pj_msg {
  char *name; /* full name, no leading dot */
  bool map_entry;
  size_t nfields;
  pj_field_name *fields; /* sorted by number */
} pj_msg;

typedef struct pj_fallback pj_fallback;

struct protojson {
  pj_msg **slots; /* open addressing by name; cap is a power of two */
  size_t cap;
  size_t count;
  pthread_mutex_t lock; /* guards fallback only */
  pj_fallback **fallback;
  size_t fallback_cap;
};

/* The sets' entry for a message full name, or NULL. */
const pj_msg *pj_find_msg(const protojson *pj, const char *name);

/* info's json_name for field number, or NULL. */
const char *pj_msg_json_name(const pj_msg *info, int32_t number);

/* The JSON name of f: info's, else lowerCamelCase written to buf (bufsz >
 * strlen(f->name)), else (a longer name) the cached fallback. NULL only when out
 * of memory. */
const char *pj_json_name(const protojson *pj, const pj_msg *info, const ProtobufCFieldDescriptor *f,
                         char *buf, size_t bufsz);

/* Whether key is protoc's lowerCamelCase of name. */
bool pj_camel_eq(const char *name, const char *key);

/* Whether f (repeated message) is a map<K, V>: from the sets' map_entry, or for
 * messages absent from them from the shape protoc gives map entries. */
bool pj_is_map_field(const protojson *pj, const ProtobufCFieldDescriptor *f);

/* ------------------------------------------------------------ special types */

typedef enum {
  PJ_PLAIN = 0,
  PJ_TIMESTAMP,   /* google.protobuf.Timestamp */
  PJ_WRAPPER,     /* google.protobuf.*Value with field 1 "value" */
  PJ_INTORSTRING, /* keel.api.v1.IntOrString */
  PJ_QUANTITY,    /* keel.api.v1.Quantity */
} pj_kind;

/* The kind of desc, recognized by full name and checked for the expected shape
 * (a message with that name but another shape is PJ_PLAIN). */
pj_kind pj_kind_of(const ProtobufCMessageDescriptor *desc);

/* The size of one element of a repeated field of type t. */
size_t pj_elt_size(ProtobufCType t);

/* Fields of the special types (by number; checked by pj_kind_of). */
const ProtobufCFieldDescriptor *pj_field(const ProtobufCMessageDescriptor *desc, unsigned id);

/* ------------------------------------------------------------ paths and errors */

typedef enum {
  PJ_SEG_FIELD, /* a field: its JSON name */
  PJ_SEG_INDEX, /* [i] */
  PJ_SEG_KEY,   /* ["key"] of a map */
  PJ_SEG_RAW,   /* .key: an unknown field, as written */
} pj_seg_kind;

typedef struct pj_seg {
  pj_seg_kind kind;
  const ProtobufCMessageDescriptor *desc; /* FIELD: the containing message */
  const ProtobufCFieldDescriptor *field;  /* FIELD */
  size_t index;                           /* INDEX */
  const char *key;                        /* KEY, RAW */
} pj_seg;

/* Each message level adds at most two segments (field, then index or key). */
#define PJ_MAX_SEGS (2 * PROTOJSON_MAX_DEPTH + 8)

/* One conversion's state: the path from the root to the value at hand, built
 * only into error messages. */
typedef struct pj_ctx {
  const protojson *pj;
  keel_error *err;
  int depth;
  int nsegs;
  pj_seg segs[PJ_MAX_SEGS];
} pj_ctx;

void pj_push_field(pj_ctx *c, const ProtobufCMessageDescriptor *desc,
                   const ProtobufCFieldDescriptor *f);
void pj_push_index(pj_ctx *c, size_t i);
void pj_push_key(pj_ctx *c, const char *key);
void pj_push_raw(pj_ctx *c, const char *key);
void pj_pop(pj_ctx *c);

/* Sets c->err to "<path>: <message>" (just the message at the root) with
 * EINVAL; returns -EINVAL. */
int pj_fail(pj_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same with ENOMEM and "out of memory". */
int pj_oom(pj_ctx *c);

/* Enters one message level; fails past PROTOJSON_MAX_DEPTH. */
int pj_enter(pj_ctx *c);
static inline void pj_leave(pj_ctx *c) { c->depth--; }

/* "string \"abc\"", "number 3", "object", ... for "got ..." in errors. */
void pj_describe(const json_t *v, char *buf, size_t n);
/* s quoted for an error message: escapes, at most max bytes of s, "..." if cut. */
void pj_quote(const char *s, size_t max, char *buf, size_t n);

/* ------------------------------------------------------------ text.c */

/* RFC 3339 "YYYY-MM-DDTHH:MM:SS[.fff]Z" (fraction only when nanos != 0, 3, 6 or
 * 9 digits) into buf (>= 40 bytes). -1 when seconds or nanos are out of the
 * Timestamp range (0001-01-01 to 9999-12-31, nanos 0..999999999). */
int pj_format_timestamp(int64_t seconds, int32_t nanos, char *buf, size_t n);
/* Parses RFC 3339 with 'T'/'t', 'Z'/'z' or a +HH:MM/-HH:MM offset, 1 to 9
 * fraction digits. -1 on bad syntax or a result out of range. */
int pj_parse_timestamp(const char *s, int64_t *seconds, int32_t *nanos);

/* Standard base64 with padding; malloc'ed, NULL when out of memory. */
char *pj_base64_encode(const uint8_t *data, size_t len);
/* Standard or URL-safe alphabet, padding optional. -EINVAL on bad input,
 * -ENOMEM; *out malloc'ed (NULL when *outlen is 0). */
int pj_base64_decode(const char *s, size_t len, uint8_t **out, size_t *outlen);

/* The shortest %g text that reads back as d. */
void pj_format_double(double d, char *buf, size_t n);

/* Whether s[0..len) is valid UTF-8 (what jansson accepts). */
bool pj_utf8_valid(const char *s, size_t len);

#endif
