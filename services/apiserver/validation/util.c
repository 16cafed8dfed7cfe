/* services/apiserver/validation/util.c — paths, error wording, IP syntax and
 * string-map access shared by the per-kind validators (see internal.h). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "services/apiserver/validation/internal.h"

/* ---------------------------------------------------------------- paths */

static vpath vp_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static vpath vp_fmt(const char *fmt, ...) {
  vpath out;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(out.s, sizeof out.s, fmt, ap);
  va_end(ap);
  return out;
}

vpath vp_root(const char *name) { return vp_fmt("%s", name); }

vpath vp_child(const vpath *p, const char *name) {
  return p->s[0] ? vp_fmt("%s.%s", p->s, name) : vp_fmt("%s", name);
}

vpath vp_index(const vpath *p, size_t i) { return vp_fmt("%s[%zu]", p->s, i); }

vpath vp_key(const vpath *p, const char *key) { return vp_fmt("%s[%s]", p->s, vstr(key)); }

/* ---------------------------------------------------------------- errors */

#define QUOTE_MAX_IN 128

const char *vquote(char *out, size_t size, const char *s) {
  /* Go's %q for the ASCII a client is expected to send; every other byte is
   * escaped as \xNN so a message never carries raw control bytes or broken
   * UTF-8. */
  static const char hex[] = "0123456789abcdef";
  size_t o = 0, i = 0;
  if (size < 3) {
    if (size) out[0] = '\0';
    return out;
  }
  s = vstr(s);
  out[o++] = '"';
  for (; s[i] && i < QUOTE_MAX_IN; i++) {
    unsigned char c = (unsigned char)s[i];
    char esc[5];
    size_t n = 0;
    if (c == '"' || c == '\\') {
      esc[n++] = '\\';
      esc[n++] = (char)c;
    } else if (c == '\n') {
      esc[n++] = '\\';
      esc[n++] = 'n';
    } else if (c == '\t') {
      esc[n++] = '\\';
      esc[n++] = 't';
    } else if (c == '\r') {
      esc[n++] = '\\';
      esc[n++] = 'r';
    } else if (c < 0x20 || c >= 0x7f) {
      esc[n++] = '\\';
      esc[n++] = 'x';
      esc[n++] = hex[c >> 4];
      esc[n++] = hex[c & 15];
    } else {
      esc[n++] = (char)c;
    }
    if (o + n + 5 > size) break; /* room for the closing quote, "..." and NUL */
    memcpy(out + o, esc, n);
    o += n;
  }
  out[o++] = '"';
  if (s[i] && o + 4 <= size) {
    memcpy(out + o, "...", 3);
    o += 3;
  }
  out[o] = '\0';
  return out;
}

void verr_unsupported(validation_errors *errs, const char *path, const char *value,
                      const char *const *supported) {
  if (!errs) return;
  char q[300], list[512];
  size_t o = 0;
  list[0] = '\0';
  for (size_t i = 0; supported && supported[i]; i++) {
    char one[64];
    int n = snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", vquote(one, sizeof one, supported[i]));
    if (n < 0 || (size_t)n >= sizeof list - o) break;
    o += (size_t)n;
  }
  validation_errors_addf(errs, "%s: Unsupported value: %s: supported values: %s", path,
                         vquote(q, sizeof q, value), list);
}

void verr_forbidden(validation_errors *errs, const char *path, const char *detail) {
  if (!errs) return;
  if (vempty(detail))
    validation_errors_addf(errs, "%s: Forbidden", path);
  else
    validation_errors_addf(errs, "%s: Forbidden: %s", path, detail);
}

void verr_duplicate(validation_errors *errs, const char *path, const char *value) {
  char q[300];
  if (errs) validation_errors_addf(errs, "%s: Duplicate value: %s", path, vquote(q, sizeof q, value));
}

void verr_duplicate_int(validation_errors *errs, const char *path, int64_t value) {
  if (errs) validation_errors_addf(errs, "%s: Duplicate value: %lld", path, (long long)value);
}

void verr_not_found(validation_errors *errs, const char *path, const char *value) {
  char q[300];
  if (errs) validation_errors_addf(errs, "%s: Not found: %s", path, vquote(q, sizeof q, value));
}

bool vstreq(const char *a, const char *b) { return strcmp(vstr(a), vstr(b)) == 0; }

bool vcheck_enum(validation_errors *errs, const char *path, const char *value, const char *const *supported,
                 bool required) {
  if (vempty(value) && required) {
    validation_errors_add_required(errs, path, NULL);
    return false;
  }
  for (size_t i = 0; supported[i]; i++)
    if (strcmp(vstr(value), supported[i]) == 0) return true;
  verr_unsupported(errs, path, value, supported);
  return false;
}

/* ---------------------------------------------------------------- IPs */

bool vis_ipv4(const char *s) {
  /* inet_pton takes exactly the dotted quad with no leading zeros, which is
   * what Go's net.ParseIP accepts since 1.17. */
  struct in_addr a;
  return !vempty(s) && inet_pton(AF_INET, s, &a) == 1;
}

bool vis_ip(const char *s) {
  struct in6_addr a6;
  return vis_ipv4(s) || (!vempty(s) && inet_pton(AF_INET6, s, &a6) == 1);
}

bool vis_cidr(const char *s) {
  if (vempty(s)) return false;
  const char *slash = strchr(s, '/');
  if (!slash || slash == s || slash[1] == '\0') return false;
  char addr[64];
  size_t alen = (size_t)(slash - s);
  if (alen >= sizeof addr) return false;
  memcpy(addr, s, alen);
  addr[alen] = '\0';
  int max = vis_ipv4(addr) ? 32 : (vis_ip(addr) ? 128 : -1);
  if (max < 0) return false;
  const char *p = slash + 1;
  if (strlen(p) > 3 || (p[0] == '0' && p[1] != '\0')) return false;
  int bits = 0;
  for (; *p; p++) {
    if (*p < '0' || *p > '9') return false;
    bits = bits * 10 + (*p - '0');
  }
  return bits <= max;
}

/* ---------------------------------------------------------------- maps */

/* A map entry's key (field 1) or value (field 2) when it is a string. */
static const char *entry_string(const ProtobufCMessage *m, unsigned idx) {
  if (!m || idx >= m->descriptor->n_fields) return NULL;
  const ProtobufCFieldDescriptor *f = &m->descriptor->fields[idx];
  if (f->type != PROTOBUF_C_TYPE_STRING) return NULL;
  return *(const char *const *)((const char *)m + f->offset);
}

bool vkv_collect(vkv *out, const void *entries, size_t n) {
  const ProtobufCMessage *const *e = entries;
  out->n = 0;
  out->keys = out->values = NULL;
  if (n == 0) return true;
  out->keys = calloc(n, sizeof *out->keys);
  out->values = calloc(n, sizeof *out->values);
  if (!out->keys || !out->values) {
    vkv_free(out);
    return false;
  }
  for (size_t i = 0; i < n; i++) {
    out->keys[i] = vstr(entry_string(e[i], 0));
    out->values[i] = vstr(entry_string(e[i], 1));
  }
  out->n = n;
  return true;
}

void vkv_free(vkv *kv) {
  free(kv->keys);
  free(kv->values);
  kv->keys = kv->values = NULL;
  kv->n = 0;
}

const char *vmap_get(const void *entries, size_t n, const char *key) {
  const ProtobufCMessage *const *e = entries;
  for (size_t i = 0; i < n; i++)
    if (vstreq(entry_string(e[i], 0), key)) return vstr(entry_string(e[i], 1));
  return NULL;
}

void vcheck_labels(validation_errors *errs, const char *path, const void *entries, size_t n) {
  vkv kv;
  if (n == 0) return;
  if (!vkv_collect(&kv, entries, n)) {
    validation_errors_addf(errs, "%s: Internal error: out of memory", path);
    return;
  }
  validation_labels(errs, path, kv.keys, kv.values, kv.n);
  vkv_free(&kv);
}

/* ---------------------------------------------------------------- equality */

static bool is_map_entry(const ProtobufCMessageDescriptor *d) {
  /* protoc names a map field's entry type "<Field>Entry", with fields key = 1
   * and value = 2; protobuf-c keeps no map flag, so this is the test. */
  size_t l = strlen(d->name);
  return d->n_fields == 2 && l > 5 && strcmp(d->name + l - 5, "Entry") == 0 && d->fields[0].id == 1 &&
         strcmp(d->fields[0].name, "key") == 0 && d->fields[1].id == 2 &&
         strcmp(d->fields[1].name, "value") == 0;
}

static size_t scalar_size(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_INT32:
  case PROTOBUF_C_TYPE_SINT32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_UINT32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
  case PROTOBUF_C_TYPE_ENUM:
    return 4;
  case PROTOBUF_C_TYPE_INT64:
  case PROTOBUF_C_TYPE_SINT64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_UINT64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return 8;
  case PROTOBUF_C_TYPE_BOOL:
    return sizeof(protobuf_c_boolean);
  case PROTOBUF_C_TYPE_STRING:
    return sizeof(char *);
  case PROTOBUF_C_TYPE_BYTES:
    return sizeof(ProtobufCBinaryData);
  case PROTOBUF_C_TYPE_MESSAGE:
    return sizeof(ProtobufCMessage *);
  }
  return 0;
}

/* One value of field f stored at a and b. */
static bool value_equal(const ProtobufCFieldDescriptor *f, const void *a, const void *b) {
  switch (f->type) {
  case PROTOBUF_C_TYPE_STRING:
    return vstreq(*(const char *const *)a, *(const char *const *)b);
  case PROTOBUF_C_TYPE_BYTES: {
    const ProtobufCBinaryData *x = a, *y = b;
    return x->len == y->len && (x->len == 0 || memcmp(x->data, y->data, x->len) == 0);
  }
  case PROTOBUF_C_TYPE_MESSAGE:
    return vmsg_equal(*(const ProtobufCMessage *const *)a, *(const ProtobufCMessage *const *)b);
  default:
    return memcmp(a, b, scalar_size(f->type)) == 0;
  }
}

static const char *map_key(const ProtobufCMessage *entry) {
  return entry ? vstr(entry_string(entry, 0)) : "";
}

/* Map fields: same size, and every entry of a has an equal entry of b with the
 * same key (keys are unique in a map). Only string keys exist in keel.api.v1. */
static bool map_equal(const ProtobufCMessage *const *a, const ProtobufCMessage *const *b, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const char *key = map_key(a[i]);
    size_t j = 0;
    while (j < n && strcmp(map_key(b[j]), key) != 0) j++;
    if (j == n || !vmsg_equal(a[i], b[j])) return false;
  }
  return true;
}

bool vmsg_equal(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  if (a == b) return true;
  if (!a || !b || a->descriptor != b->descriptor) return false;
  const ProtobufCMessageDescriptor *d = a->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t na = *(const size_t *)((const char *)a + f->quantifier_offset);
      size_t nb = *(const size_t *)((const char *)b + f->quantifier_offset);
      if (na != nb) return false;
      const char *arr_a = *(const char *const *)pa, *arr_b = *(const char *const *)pb;
      if (na == 0) continue;
      if (f->type == PROTOBUF_C_TYPE_MESSAGE && is_map_entry(f->descriptor)) {
        if (!map_equal((const ProtobufCMessage *const *)arr_a, (const ProtobufCMessage *const *)arr_b, na))
          return false;
        continue;
      }
      size_t sz = scalar_size(f->type);
      for (size_t k = 0; k < na; k++)
        if (!value_equal(f, arr_a + k * sz, arr_b + k * sz)) return false;
      continue;
    }
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
      uint32_t ca = *(const uint32_t *)((const char *)a + f->quantifier_offset);
      uint32_t cb = *(const uint32_t *)((const char *)b + f->quantifier_offset);
      if (ca != cb) return false;
      if (ca != f->id) continue;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
      protobuf_c_boolean ha = *(const protobuf_c_boolean *)((const char *)a + f->quantifier_offset);
      protobuf_c_boolean hb = *(const protobuf_c_boolean *)((const char *)b + f->quantifier_offset);
      if (ha != hb) return false;
      if (!ha) continue;
    }
    if (!value_equal(f, pa, pb)) return false;
  }
  return true;
}
