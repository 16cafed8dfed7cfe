/* common/protojson/encode.c — protobuf-c message -> jansson value.
 *
 * A field is written when protobuf-c's own packer would write it: proto3
 * scalars when not zero, strings when not empty, sub-messages when not NULL,
 * repeated fields and maps when not empty, proto2 optionals by has_ / pointer,
 * oneof members when selected. That is Kubernetes' omitempty, and a set but
 * empty sub-message comes out as {}. Map keys come out sorted, as Go writes
 * them. Any failure drops the whole partial tree. */
#define _GNU_SOURCE /* qsort_r */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/protojson/internal.h"

static json_t *message_to_json(pj_ctx *c, const ProtobufCMessageDescriptor *desc,
                               const ProtobufCMessage *m);

#define MEMBER(m, off) ((const char *)(m) + (off))

static json_t *string_to_json(pj_ctx *c, const char *s) {
  if (!s) s = "";
  size_t len = strlen(s);
  if (!pj_utf8_valid(s, len)) {
    pj_fail(c, "string is not valid UTF-8");
    return NULL;
  }
  json_t *j = json_stringn_nocheck(s, len);
  if (!j) pj_oom(c);
  return j;
}

static json_t *double_to_json(pj_ctx *c, double d) {
  json_t *j = isnan(d)   ? json_string("NaN")
              : isinf(d) ? json_string(d > 0 ? "Infinity" : "-Infinity")
                         : json_real(d);
  if (!j) pj_oom(c);
  return j;
}

static json_t *oom_if_null(pj_ctx *c, json_t *j) {
  if (!j) pj_oom(c);
  return j;
}

/* One value of field f's type at p (an element, for repeated fields). */
static json_t *value_to_json(pj_ctx *c, const ProtobufCFieldDescriptor *f, const void *p) {
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return oom_if_null(c, json_integer(*(const int32_t *)p));
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return oom_if_null(c, json_integer(*(const uint32_t *)p));
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return oom_if_null(c, json_integer(*(const int64_t *)p));
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64: {
      uint64_t v = *(const uint64_t *)p;
      if (v <= INT64_MAX) return oom_if_null(c, json_integer((json_int_t)v));
      char tmp[32];
      snprintf(tmp, sizeof(tmp), "%" PRIu64, v);
      return oom_if_null(c, json_string(tmp));
    }
    case PROTOBUF_C_TYPE_FLOAT:
      return double_to_json(c, *(const float *)p);
    case PROTOBUF_C_TYPE_DOUBLE:
      return double_to_json(c, *(const double *)p);
    case PROTOBUF_C_TYPE_BOOL:
      return oom_if_null(c, json_boolean(*(const protobuf_c_boolean *)p));
    case PROTOBUF_C_TYPE_ENUM: {
      int v = *(const int *)p;
      const ProtobufCEnumValue *ev =
          f->descriptor ? protobuf_c_enum_descriptor_get_value(f->descriptor, v) : NULL;
      return oom_if_null(c, ev ? json_string(ev->name) : json_integer(v));
    }
    case PROTOBUF_C_TYPE_STRING:
      return string_to_json(c, *(char *const *)p);
    case PROTOBUF_C_TYPE_BYTES: {
      const ProtobufCBinaryData *bd = p;
      cleanup_free char *s = pj_base64_encode(bd->data, bd->data ? bd->len : 0);
      if (!s) return oom_if_null(c, NULL);
      return oom_if_null(c, json_string_nocheck(s));
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
      const ProtobufCMessage *sub = *(ProtobufCMessage *const *)p;
      if (sub) return message_to_json(c, f->descriptor, sub);
      /* Only a repeated element or a map value gets here NULL: write what an
       * empty message would be. */
      const ProtobufCMessageDescriptor *d = f->descriptor;
      ProtobufCMessage *empty = malloc(d->sizeof_message);
      if (!empty) return oom_if_null(c, NULL);
      protobuf_c_message_init(d, empty);
      json_t *j = message_to_json(c, d, empty);
      protobuf_c_message_free_unpacked(empty, NULL);
      return j;
    }
  }
  pj_fail(c, "unsupported field type %d", (int)f->type);
  return NULL;
}

/* Whether protobuf-c would pack f of m (see the file comment). */
static bool field_present(const ProtobufCFieldDescriptor *f, const ProtobufCMessage *m) {
  const void *p = MEMBER(m, f->offset);
  bool pointer = f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_MESSAGE;
  if (f->label == PROTOBUF_C_LABEL_REPEATED)
    return *(const size_t *)MEMBER(m, f->quantifier_offset) > 0;
  if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
    if (*(const uint32_t *)MEMBER(m, f->quantifier_offset) != f->id) return false;
    if (pointer) {
      const void *ptr = *(const void *const *)p;
      return ptr && ptr != f->default_value;
    }
    return true;
  }
  switch (f->label) {
    case PROTOBUF_C_LABEL_REQUIRED:
      return !pointer || *(const void *const *)p;
    case PROTOBUF_C_LABEL_OPTIONAL:
      if (pointer) {
        const void *ptr = *(const void *const *)p;
        return ptr && ptr != f->default_value;
      }
      return *(const protobuf_c_boolean *)MEMBER(m, f->quantifier_offset);
    case PROTOBUF_C_LABEL_NONE:
    default:
      break;
  }
  switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return *(const uint32_t *)p != 0;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return *(const uint64_t *)p != 0;
    case PROTOBUF_C_TYPE_FLOAT:
      return *(const float *)p != 0;
    case PROTOBUF_C_TYPE_DOUBLE:
      return *(const double *)p != 0;
    case PROTOBUF_C_TYPE_BOOL:
      return *(const protobuf_c_boolean *)p != 0;
    case PROTOBUF_C_TYPE_ENUM:
      return *(const int *)p != 0;
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)p;
      return s && s[0];
    }
    case PROTOBUF_C_TYPE_BYTES:
      return ((const ProtobufCBinaryData *)p)->len > 0;
    case PROTOBUF_C_TYPE_MESSAGE:
      return *(const void *const *)p != NULL;
  }
  return false;
}

/* ------------------------------------------------------------ maps */

typedef struct map_item {
  const ProtobufCMessage *entry;
  const void *key; /* points into entry */
  char text[32];   /* non-string keys in decimal */
} map_item;

static const char *key_text(map_item *it, const ProtobufCFieldDescriptor *kf) {
  const void *p = it->key;
  switch (kf->type) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *s = *(char *const *)p;
      return s ? s : "";
    }
    case PROTOBUF_C_TYPE_BOOL:
      return *(const protobuf_c_boolean *)p ? "true" : "false";
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      snprintf(it->text, sizeof(it->text), "%" PRId32, *(const int32_t *)p);
      break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      snprintf(it->text, sizeof(it->text), "%" PRIu32, *(const uint32_t *)p);
      break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      snprintf(it->text, sizeof(it->text), "%" PRId64, *(const int64_t *)p);
      break;
    default:
      snprintf(it->text, sizeof(it->text), "%" PRIu64, *(const uint64_t *)p);
      break;
  }
  return it->text;
}

/* Sort keys as values of their type (Go sorts map keys when it encodes). */
static int cmp_items(const void *pa, const void *pb, void *arg) {
  const map_item *a = pa, *b = pb;
  switch (*(const ProtobufCType *)arg) {
    case PROTOBUF_C_TYPE_STRING: {
      const char *x = *(char *const *)a->key, *y = *(char *const *)b->key;
      return strcmp(x ? x : "", y ? y : "");
    }
    case PROTOBUF_C_TYPE_BOOL: {
      int x = !!*(const protobuf_c_boolean *)a->key, y = !!*(const protobuf_c_boolean *)b->key;
      return x - y;
    }
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32: {
      int32_t x = *(const int32_t *)a->key, y = *(const int32_t *)b->key;
      return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32: {
      uint32_t x = *(const uint32_t *)a->key, y = *(const uint32_t *)b->key;
      return (x > y) - (x < y);
    }
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64: {
      int64_t x = *(const int64_t *)a->key, y = *(const int64_t *)b->key;
      return (x > y) - (x < y);
    }
    default: {
      uint64_t x = *(const uint64_t *)a->key, y = *(const uint64_t *)b->key;
      return (x > y) - (x < y);
    }
  }
}

static json_t *map_to_json(pj_ctx *c, const ProtobufCFieldDescriptor *f,
                           const ProtobufCMessage *m) {
  size_t n = *(const size_t *)MEMBER(m, f->quantifier_offset);
  ProtobufCMessage *const *entries = *(ProtobufCMessage *const *const *)MEMBER(m, f->offset);
  const ProtobufCMessageDescriptor *ed = f->descriptor;
  const ProtobufCFieldDescriptor *kf = pj_field(ed, 1), *vf = pj_field(ed, 2);
  if (!entries) {
    pj_fail(c, "map has %zu entries but no array", n);
    return NULL;
  }
  cleanup_free map_item *items = calloc(n, sizeof(*items));
  if (!items) return oom_if_null(c, NULL);
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (!entries[i] || entries[i]->descriptor != ed) continue; /* not an entry: nothing to say */
    items[k].entry = entries[i];
    items[k++].key = MEMBER(entries[i], kf->offset);
  }
  ProtobufCType kt = kf->type;
  qsort_r(items, k, sizeof(*items), cmp_items, &kt);
  json_t *obj = json_object();
  if (!obj) return oom_if_null(c, NULL);
  for (size_t i = 0; i < k; i++) {
    const char *key = key_text(&items[i], kf);
    pj_push_key(c, key);
    json_t *v = NULL;
    if (!pj_utf8_valid(key, strlen(key)))
      pj_fail(c, "map key is not valid UTF-8");
    else
      v = value_to_json(c, vf, MEMBER(items[i].entry, vf->offset));
    if (v && json_object_set_new(obj, key, v) < 0) {
      pj_oom(c);
      v = NULL;
    }
    pj_pop(c);
    if (!v) {
      json_decref(obj);
      return NULL;
    }
  }
  return obj;
}

static json_t *repeated_to_json(pj_ctx *c, const ProtobufCFieldDescriptor *f,
                                const ProtobufCMessage *m) {
  size_t n = *(const size_t *)MEMBER(m, f->quantifier_offset);
  const char *arr = *(const char *const *)MEMBER(m, f->offset);
  if (!arr) {
    pj_fail(c, "repeated field has %zu elements but no array", n);
    return NULL;
  }
  size_t size = pj_elt_size(f->type);
  json_t *a = json_array();
  if (!a) return oom_if_null(c, NULL);
  for (size_t i = 0; i < n; i++) {
    pj_push_index(c, i);
    json_t *v = value_to_json(c, f, arr + i * size);
    pj_pop(c);
    if (!v || json_array_append_new(a, v) < 0) {
      if (v) pj_oom(c);
      json_decref(a);
      return NULL;
    }
  }
  return a;
}

static json_t *fields_to_json(pj_ctx *c, const ProtobufCMessageDescriptor *desc,
                              const ProtobufCMessage *m) {
  const pj_msg *info = pj_find_msg(c->pj, desc->name);
  json_t *obj = json_object();
  if (!obj) return oom_if_null(c, NULL);
  for (unsigned i = 0; i < desc->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &desc->fields[i];
    if (!field_present(f, m)) continue;
    char buf[128];
    const char *name = pj_json_name(c->pj, info, f, buf, sizeof(buf));
    pj_push_field(c, desc, f);
    json_t *v;
    if (!name)
      v = oom_if_null(c, NULL);
    else if (f->label != PROTOBUF_C_LABEL_REPEATED)
      v = value_to_json(c, f, MEMBER(m, f->offset));
    else if (pj_is_map_field(c->pj, f))
      v = map_to_json(c, f, m);
    else
      v = repeated_to_json(c, f, m);
    if (v && json_object_set_new(obj, name, v) < 0) {
      pj_fail(c, "cannot set JSON name %s", name);
      v = NULL;
    }
    pj_pop(c);
    if (!v) {
      json_decref(obj);
      return NULL;
    }
  }
  return obj;
}

static json_t *message_to_json(pj_ctx *c, const ProtobufCMessageDescriptor *desc,
                               const ProtobufCMessage *m) {
  if (m->descriptor != desc) {
    pj_fail(c, "a %s where a %s belongs", m->descriptor ? m->descriptor->name : "(no descriptor)",
            desc->name);
    return NULL;
  }
  if (pj_enter(c) < 0) return NULL;
  json_t *j = NULL;
  switch (pj_kind_of(desc)) {
    case PJ_TIMESTAMP: {
      int64_t s = *(const int64_t *)MEMBER(m, pj_field(desc, 1)->offset);
      int32_t ns = *(const int32_t *)MEMBER(m, pj_field(desc, 2)->offset);
      char buf[48];
      if (pj_format_timestamp(s, ns, buf, sizeof(buf)) < 0)
        pj_fail(c, "timestamp out of range (seconds %" PRId64 ", nanos %" PRId32 ")", s, ns);
      else
        j = oom_if_null(c, json_string(buf));
      break;
    }
    case PJ_WRAPPER: {
      const ProtobufCFieldDescriptor *vf = pj_field(desc, 1);
      j = value_to_json(c, vf, MEMBER(m, vf->offset));
      break;
    }
    case PJ_INTORSTRING: {
      int32_t type = *(const int32_t *)MEMBER(m, pj_field(desc, 1)->offset);
      if (type == 0)
        j = oom_if_null(c, json_integer(*(const int32_t *)MEMBER(m, pj_field(desc, 2)->offset)));
      else if (type == 1)
        j = string_to_json(c, *(char *const *)MEMBER(m, pj_field(desc, 3)->offset));
      else
        pj_fail(c, "IntOrString type %" PRId32 " is neither 0 (int) nor 1 (string)", type);
      break;
    }
    case PJ_QUANTITY:
      j = string_to_json(c, *(char *const *)MEMBER(m, pj_field(desc, 1)->offset));
      break;
    case PJ_PLAIN:
      j = fields_to_json(c, desc, m);
      break;
  }
  pj_leave(c);
  return j;
}

json_t *protojson_to_json(const protojson *pj, const ProtobufCMessage *msg, keel_error *err) {
  if (!pj || !msg || !msg->descriptor) {
    keel_error_set(err, EINVAL, "protojson_to_json: no message");
    return NULL;
  }
  pj_ctx c = {.pj = pj, .err = err};
  return message_to_json(&c, msg->descriptor, msg);
}

char *protojson_to_string(const protojson *pj, const ProtobufCMessage *msg, int flags,
                          keel_error *err) {
  json_t *j = protojson_to_json(pj, msg, err);
  if (!j) return NULL;
  size_t jf = JSON_ENCODE_ANY | ((flags & PROTOJSON_PRETTY) ? JSON_INDENT(2) : JSON_COMPACT);
  char *s = json_dumps(j, jf);
  json_decref(j);
  if (!s) keel_error_set(err, ENOMEM, "protojson_to_string: out of memory");
  return s;
}
