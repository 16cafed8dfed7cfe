/* common/protojson/protojson.c — the json_name index, special types, paths and
 * error messages. The conversions are encode.c (to JSON) and decode.c (from
 * JSON).
 *
 * protobuf-c's descriptors know a field's proto name but not its json_name,
 * and nothing marks a map entry. Both come from the FileDescriptorSets protoc
 * writes (json_name is filled for every field there): at create time every
 * message of every set becomes a pj_msg (full name -> sorted (number,
 * json_name) pairs, map_entry) in an open-addressing table, and the sets are
 * dropped. Lookups by name are read-only; only the fallback names handed out by
 * protojson_field_json_name for messages absent from the sets are cached, under
 * a mutex, so the returned pointer lives as long as pj. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/protojson/internal.h"
#include "google/protobuf/descriptor.pb-c.h"

#define FALLBACK_BUCKETS 64
#define MAX_NESTED_TYPES 64

struct pj_fallback {
  const ProtobufCFieldDescriptor *field;
  char *name;
  pj_fallback *next;
};

/* ------------------------------------------------------------ the index */

static uint64_t hash_name(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static void msg_free(pj_msg *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nfields; i++) free(m->fields[i].json_name);
  free(m->fields);
  free(m->name);
  free(m);
}

const pj_msg *pj_find_msg(const protojson *pj, const char *name) {
  if (!pj || !pj->cap || !name) return NULL;
  if (name[0] == '.') name++;
  size_t mask = pj->cap - 1;
  for (size_t i = hash_name(name) & mask;; i = (i + 1) & mask) {
    const pj_msg *m = pj->slots[i];
    if (!m) return NULL;
    if (strcmp(m->name, name) == 0) return m;
  }
}

static int table_insert(protojson *pj, pj_msg *m) {
  if ((pj->count + 1) * 2 > pj->cap) {
    size_t cap = pj->cap ? pj->cap * 2 : 64;
    pj_msg **slots = calloc(cap, sizeof(*slots));
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < pj->cap; i++) {
      pj_msg *o = pj->slots[i];
      if (!o) continue;
      size_t j = hash_name(o->name) & (cap - 1);
      while (slots[j]) j = (j + 1) & (cap - 1);
      slots[j] = o;
    }
    free(pj->slots);
    pj->slots = slots;
    pj->cap = cap;
  }
  size_t mask = pj->cap - 1, j = hash_name(m->name) & mask;
  while (pj->slots[j]) j = (j + 1) & mask;
  pj->slots[j] = m;
  pj->count++;
  return 0;
}

/* protoc's ToJsonName: drop '_' and capitalize what follows. */
static void camel_into(const char *name, char *out) {
  bool up = false;
  for (; *name; name++) {
    if (*name == '_') {
      up = true;
    } else if (up) {
      *out++ = (*name >= 'a' && *name <= 'z') ? (char)(*name - 'a' + 'A') : *name;
      up = false;
    } else {
      *out++ = *name;
    }
  }
  *out = 0;
}

bool pj_camel_eq(const char *name, const char *key) {
  bool up = false;
  for (; *name; name++) {
    if (*name == '_') {
      up = true;
      continue;
    }
    char ch = (up && *name >= 'a' && *name <= 'z') ? (char)(*name - 'a' + 'A') : *name;
    up = false;
    if (*key++ != ch) return false;
  }
  return *key == 0;
}

static int cmp_field_name(const void *a, const void *b) {
  int32_t x = ((const pj_field_name *)a)->number, y = ((const pj_field_name *)b)->number;
  return (x > y) - (x < y);
}

static int add_message(protojson *pj, const char *prefix,
                       const Google__Protobuf__DescriptorProto *d, int depth, keel_error *err) {
  if (!d->name || !d->name[0])
    return keel_error_set(err, EINVAL, "descriptor set: a message in %s has no name",
                          prefix[0] ? prefix : "(top level)");
  if (depth > MAX_NESTED_TYPES)
    return keel_error_set(err, EINVAL, "descriptor set: messages nested deeper than %d in %s",
                          MAX_NESTED_TYPES, prefix);
  cleanup_free char *name = NULL;
  if (asprintf(&name, "%s%s%s", prefix, prefix[0] ? "." : "", d->name) < 0) {
    name = NULL;
    return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
  }
  if (!pj_find_msg(pj, name)) {
    pj_msg *m = calloc(1, sizeof(*m));
    if (!m) return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
    m->name = steal_pointer(&name);
    m->map_entry = d->options && d->options->has_map_entry && d->options->map_entry;
    m->fields = d->n_field ? calloc(d->n_field, sizeof(*m->fields)) : NULL;
    if (d->n_field && !m->fields) {
      msg_free(m);
      return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
    }
    for (size_t i = 0; i < d->n_field; i++) {
      const Google__Protobuf__FieldDescriptorProto *f = d->field[i];
      const char *fname = f->name ? f->name : "";
      char *jn;
      if (f->json_name) {
        jn = strdup(f->json_name);
      } else {
        jn = malloc(strlen(fname) + 1);
        if (jn) camel_into(fname, jn);
      }
      if (!jn) {
        msg_free(m);
        return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
      }
      m->fields[m->nfields].number = f->number;
      m->fields[m->nfields++].json_name = jn;
    }
    qsort(m->fields, m->nfields, sizeof(*m->fields), cmp_field_name);
    if (table_insert(pj, m) < 0) {
      msg_free(m);
      return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
    }
    name = strdup(m->name);
    if (!name) return keel_error_set(err, ENOMEM, "descriptor set: out of memory");
  }
  for (size_t i = 0; i < d->n_nested_type; i++) {
    int rc = add_message(pj, name, d->nested_type[i], depth + 1, err);
    if (rc < 0) return rc;
  }
  return 0;
}

static int add_set(protojson *pj, size_t index, const protojson_descriptor_set *s,
                   keel_error *err) {
  Google__Protobuf__FileDescriptorSet *set =
      google__protobuf__file_descriptor_set__unpack(NULL, s->len, s->data);
  if (!set)
    return keel_error_set(err, EINVAL, "descriptor set %zu is not a FileDescriptorSet", index);
  int rc = 0;
  for (size_t i = 0; i < set->n_file && rc == 0; i++) {
    const Google__Protobuf__FileDescriptorProto *file = set->file[i];
    const char *pkg = file->package ? file->package : "";
    for (size_t j = 0; j < file->n_message_type && rc == 0; j++)
      rc = add_message(pj, pkg, file->message_type[j], 0, err);
  }
  google__protobuf__file_descriptor_set__free_unpacked(set, NULL);
  return rc;
}

protojson *protojson_create(const protojson_descriptor_set *sets, size_t nsets, keel_error *err) {
  if (!sets && nsets) {
    keel_error_set(err, EINVAL, "protojson_create: %zu descriptor sets but no array", nsets);
    return NULL;
  }
  protojson *pj = calloc(1, sizeof(*pj));
  if (!pj) {
    keel_error_set(err, ENOMEM, "protojson: out of memory");
    return NULL;
  }
  pthread_mutex_init(&pj->lock, NULL);
  pj->fallback = calloc(FALLBACK_BUCKETS, sizeof(*pj->fallback));
  if (!pj->fallback) {
    protojson_destroy(pj);
    keel_error_set(err, ENOMEM, "protojson: out of memory");
    return NULL;
  }
  pj->fallback_cap = FALLBACK_BUCKETS;
  for (size_t i = 0; i < nsets; i++) {
    if (!sets[i].data && sets[i].len) {
      protojson_destroy(pj);
      keel_error_set(err, EINVAL, "descriptor set %zu has no data", i);
      return NULL;
    }
    if (add_set(pj, i, &sets[i], err) < 0) {
      protojson_destroy(pj);
      return NULL;
    }
  }
  return pj;
}

void protojson_destroy(protojson *pj) {
  if (!pj) return;
  for (size_t i = 0; i < pj->cap; i++) msg_free(pj->slots[i]);
  free(pj->slots);
  for (size_t i = 0; i < pj->fallback_cap; i++) {
    for (pj_fallback *f = pj->fallback[i], *next; f; f = next) {
      next = f->next;
      free(f->name);
      free(f);
    }
  }
  free(pj->fallback);
  pthread_mutex_destroy(&pj->lock);
  free(pj);
}

const char *pj_msg_json_name(const pj_msg *info, int32_t number) {
  if (!info) return NULL;
  size_t lo = 0, hi = info->nfields;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int32_t n = info->fields[mid].number;
    if (n == number) return info->fields[mid].json_name;
    if (n < number)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

static const char *fallback_name(const protojson *pj, const ProtobufCFieldDescriptor *f) {
  protojson *mut = (protojson *)pj; /* the cache is the one mutable part */
  size_t b = (size_t)(((uintptr_t)f >> 4) % mut->fallback_cap);
  const char *out = NULL;
  pthread_mutex_lock(&mut->lock);
  for (pj_fallback *e = mut->fallback[b]; e; e = e->next) {
    if (e->field == f) {
      out = e->name;
      break;
    }
  }
  if (!out) {
    pj_fallback *e = calloc(1, sizeof(*e));
    char *name = malloc(strlen(f->name) + 1);
    if (e && name) {
      camel_into(f->name, name);
      e->field = f;
      e->name = name;
      e->next = mut->fallback[b];
      mut->fallback[b] = e;
      out = name;
    } else {
      free(e);
      free(name);
    }
  }
  pthread_mutex_unlock(&mut->lock);
  return out;
}

const char *pj_json_name(const protojson *pj, const pj_msg *info, const ProtobufCFieldDescriptor *f,
                         char *buf, size_t bufsz) {
  const char *jn = pj_msg_json_name(info, (int32_t)f->id);
  if (jn) return jn;
  if (strlen(f->name) < bufsz) {
    camel_into(f->name, buf);
    return buf;
  }
  return fallback_name(pj, f);
}

const char *protojson_field_json_name(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                      const ProtobufCFieldDescriptor *field) {
  const char *jn = pj_msg_json_name(pj_find_msg(pj, desc->name), (int32_t)field->id);
  return jn ? jn : fallback_name(pj, field);
}

static bool valid_map_key_type(ProtobufCType t) {
  return t != PROTOBUF_C_TYPE_FLOAT && t != PROTOBUF_C_TYPE_DOUBLE && t != PROTOBUF_C_TYPE_BYTES &&
         t != PROTOBUF_C_TYPE_MESSAGE && t != PROTOBUF_C_TYPE_ENUM;
}

bool pj_is_map_field(const protojson *pj, const ProtobufCFieldDescriptor *f) {
  if (f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE) return false;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  if (!e || e->n_fields != 2) return false;
  const ProtobufCFieldDescriptor *k = &e->fields[0], *v = &e->fields[1];
  if (k->id != 1 || v->id != 2 || k->label == PROTOBUF_C_LABEL_REPEATED ||
      v->label == PROTOBUF_C_LABEL_REPEATED ||
      (k->flags | v->flags) & PROTOBUF_C_FIELD_FLAG_ONEOF || !valid_map_key_type(k->type))
    return false;
  const pj_msg *info = pj_find_msg(pj, e->name);
  if (info) return info->map_entry;
  /* Absent from the sets: protoc names the entry <CamelField>Entry with
   * fields key and value. */
  size_t sl = strlen(e->short_name);
  return sl > 5 && strcmp(e->short_name + sl - 5, "Entry") == 0 && strcmp(k->name, "key") == 0 &&
         strcmp(v->name, "value") == 0;
}

size_t pj_elt_size(ProtobufCType t) {
  switch (t) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
      return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
      return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
      return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
      return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
      return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
      return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
      return sizeof(ProtobufCMessage *);
    default:
      return sizeof(uint32_t); /* the 32-bit integers */
  }
}

/* ------------------------------------------------------------ special types */

const ProtobufCFieldDescriptor *pj_field(const ProtobufCMessageDescriptor *desc, unsigned id) {
  return protobuf_c_message_descriptor_get_field(desc, id);
}

static bool plain_field(const ProtobufCMessageDescriptor *desc, unsigned id, ProtobufCType type) {
  const ProtobufCFieldDescriptor *f = pj_field(desc, id);
  return f && f->type == type && f->label != PROTOBUF_C_LABEL_REPEATED &&
         !(f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF);
}

static const struct {
  const char *name;
  ProtobufCType type;
} wrappers[] = {
    {"google.protobuf.DoubleValue", PROTOBUF_C_TYPE_DOUBLE},
    {"google.protobuf.FloatValue", PROTOBUF_C_TYPE_FLOAT},
    {"google.protobuf.Int64Value", PROTOBUF_C_TYPE_INT64},
    {"google.protobuf.UInt64Value", PROTOBUF_C_TYPE_UINT64},
    {"google.protobuf.Int32Value", PROTOBUF_C_TYPE_INT32},
    {"google.protobuf.UInt32Value", PROTOBUF_C_TYPE_UINT32},
    {"google.protobuf.BoolValue", PROTOBUF_C_TYPE_BOOL},
    {"google.protobuf.StringValue", PROTOBUF_C_TYPE_STRING},
    {"google.protobuf.BytesValue", PROTOBUF_C_TYPE_BYTES},
};

pj_kind pj_kind_of(const ProtobufCMessageDescriptor *desc) {
  const char *n = desc->name;
  if (n[0] == 'g' && strncmp(n, "google.protobuf.", 16) == 0) {
    if (strcmp(n, "google.protobuf.Timestamp") == 0)
      return desc->n_fields == 2 && plain_field(desc, 1, PROTOBUF_C_TYPE_INT64) &&
                     plain_field(desc, 2, PROTOBUF_C_TYPE_INT32)
                 ? PJ_TIMESTAMP
                 : PJ_PLAIN;
    for (size_t i = 0; i < KEEL_ARRAY_LEN(wrappers); i++)
      if (strcmp(n, wrappers[i].name) == 0)
        return desc->n_fields == 1 && plain_field(desc, 1, wrappers[i].type) ? PJ_WRAPPER
                                                                             : PJ_PLAIN;
    return PJ_PLAIN;
  }
  if (n[0] == 'k' && strncmp(n, "keel.api.v1.", 12) == 0) {
    if (strcmp(n + 12, "IntOrString") == 0)
      return desc->n_fields == 3 && plain_field(desc, 1, PROTOBUF_C_TYPE_INT32) &&
                     plain_field(desc, 2, PROTOBUF_C_TYPE_INT32) &&
                     plain_field(desc, 3, PROTOBUF_C_TYPE_STRING)
                 ? PJ_INTORSTRING
                 : PJ_PLAIN;
    if (strcmp(n + 12, "Quantity") == 0)
      return desc->n_fields == 1 && plain_field(desc, 1, PROTOBUF_C_TYPE_STRING) ? PJ_QUANTITY
                                                                                 : PJ_PLAIN;
  }
  return PJ_PLAIN;
}

/* ------------------------------------------------------------ paths and errors */

static void push(pj_ctx *c, pj_seg s) {
  /* pj_enter bounds the depth, so this only guards against a caller bug. */
  if (c->nsegs < PJ_MAX_SEGS) c->segs[c->nsegs] = s;
  c->nsegs++;
}

void pj_push_field(pj_ctx *c, const ProtobufCMessageDescriptor *desc,
                   const ProtobufCFieldDescriptor *f) {
  push(c, (pj_seg){.kind = PJ_SEG_FIELD, .desc = desc, .field = f});
}
void pj_push_index(pj_ctx *c, size_t i) { push(c, (pj_seg){.kind = PJ_SEG_INDEX, .index = i}); }
void pj_push_key(pj_ctx *c, const char *key) { push(c, (pj_seg){.kind = PJ_SEG_KEY, .key = key}); }
void pj_push_raw(pj_ctx *c, const char *key) { push(c, (pj_seg){.kind = PJ_SEG_RAW, .key = key}); }
void pj_pop(pj_ctx *c) { c->nsegs--; }

int pj_enter(pj_ctx *c) {
  if (c->depth >= PROTOJSON_MAX_DEPTH)
    return pj_fail(c, "nesting exceeds the maximum depth of %d", PROTOJSON_MAX_DEPTH);
  c->depth++;
  return 0;
}

typedef struct sbuf {
  char *p;
  size_t n, len;
} sbuf;

static void sb_putc(sbuf *b, char ch) {
  if (b->len + 1 < b->n) b->p[b->len++] = ch;
  b->p[b->len < b->n ? b->len : b->n - 1] = 0;
}

static void sb_puts(sbuf *b, const char *s) {
  for (; *s; s++) sb_putc(b, *s);
}

/* s escaped (no quotes), at most max bytes of it, cut at a UTF-8 boundary. */
static void sb_escaped(sbuf *b, const char *s, size_t max, bool *cut) {
  size_t len = strlen(s);
  *cut = len > max;
  if (*cut) {
    len = max;
    while (len > 0 && ((uint8_t)s[len] & 0xC0) == 0x80) len--;
  }
  bool utf8 = pj_utf8_valid(s, len);
  for (size_t i = 0; i < len; i++) {
    uint8_t ch = (uint8_t)s[i];
    if (ch == '"' || ch == '\\') {
      sb_putc(b, '\\');
      sb_putc(b, (char)ch);
    } else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !utf8)) {
      char tmp[8];
      snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
      sb_puts(b, tmp);
    } else {
      sb_putc(b, (char)ch);
    }
  }
}

void pj_quote(const char *s, size_t max, char *buf, size_t n) {
  sbuf b = {buf, n, 0};
  bool cut;
  buf[0] = 0;
  sb_putc(&b, '"');
  sb_escaped(&b, s, max, &cut);
  sb_putc(&b, '"');
  if (cut) sb_puts(&b, "...");
}

void pj_describe(const json_t *v, char *buf, size_t n) {
  char tmp[64];
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      snprintf(buf, n, "object");
      break;
    case JSON_ARRAY:
      snprintf(buf, n, "array");
      break;
    case JSON_STRING: {
      char q[160];
      pj_quote(json_string_value(v), 40, q, sizeof(q));
      snprintf(buf, n, "string %s", q);
      break;
    }
    case JSON_INTEGER:
      snprintf(buf, n, "number %" JSON_INTEGER_FORMAT, json_integer_value(v));
      break;
    case JSON_REAL:
      pj_format_double(json_real_value(v), tmp, sizeof(tmp));
      snprintf(buf, n, "number %s", tmp);
      break;
    case JSON_TRUE:
      snprintf(buf, n, "boolean true");
      break;
    case JSON_FALSE:
      snprintf(buf, n, "boolean false");
      break;
    case JSON_NULL:
    default:
      snprintf(buf, n, "null");
      break;
  }
}

static void render_path(const pj_ctx *c, sbuf *b) {
  int n = c->nsegs < PJ_MAX_SEGS ? c->nsegs : PJ_MAX_SEGS;
  for (int i = 0; i < n; i++) {
    const pj_seg *s = &c->segs[i];
    char tmp[128];
    bool cut;
    switch (s->kind) {
      case PJ_SEG_FIELD: {
        const char *jn =
            pj_json_name(c->pj, pj_find_msg(c->pj, s->desc->name), s->field, tmp, sizeof(tmp));
        if (b->len) sb_putc(b, '.');
        sb_puts(b, jn ? jn : s->field->name);
        break;
      }
      case PJ_SEG_RAW:
        if (b->len) sb_putc(b, '.');
        sb_escaped(b, s->key, 64, &cut);
        if (cut) sb_puts(b, "...");
        break;
      case PJ_SEG_INDEX:
        snprintf(tmp, sizeof(tmp), "[%zu]", s->index);
        sb_puts(b, tmp);
        break;
      case PJ_SEG_KEY:
        sb_puts(b, "[\"");
        sb_escaped(b, s->key, 64, &cut);
        sb_puts(b, cut ? "...\"]" : "\"]");
        break;
    }
  }
}

/* Longer paths keep their head and tail, so the message still fits. */
#define PATH_MAX_SHOWN 400
#define PATH_HEAD 150

int pj_fail(pj_ctx *c, const char *fmt, ...) {
  char full[PJ_MAX_SEGS * 96], path[PATH_MAX_SHOWN + 8], msg[KEEL_ERROR_MESSAGE_MAX];
  sbuf b = {full, sizeof(full), 0};
  full[0] = 0;
  render_path(c, &b);
  if (b.len <= PATH_MAX_SHOWN) {
    memcpy(path, full, b.len + 1);
  } else {
    /* Cut at UTF-8 character boundaries. */
    size_t head = PATH_HEAD, from = b.len - (PATH_MAX_SHOWN - PATH_HEAD - 3);
    while (head > 0 && ((uint8_t)full[head] & 0xC0) == 0x80) head--;
    while (from < b.len && ((uint8_t)full[from] & 0xC0) == 0x80) from++;
    memcpy(path, full, head);
    memcpy(path + head, "...", 3);
    memcpy(path + head + 3, full + from, b.len - from + 1);
  }
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  if (path[0]) return keel_error_set(c->err, EINVAL, "%s: %s", path, msg);
  return keel_error_set(c->err, EINVAL, "%s", msg);
}

int pj_oom(pj_ctx *c) {
  int rc = pj_fail(c, "out of memory");
  if (c->err) c->err->code = ENOMEM;
  return rc == -EINVAL ? -ENOMEM : rc;
}
