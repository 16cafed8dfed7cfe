/* common/manifest/yaml_emit.c — jansson values as YAML, the way kubectl
 * prints them.
 *
 * kubectl's -o yaml is go-yaml v2's encoder, itself a port of libyaml's
 * emitter, so we drive libyaml's emitter the way go-yaml drives its port: a
 * string that contains a newline asks for a literal block (|), one that would
 * read back as a string when unquoted asks for plain style, any other (true,
 * "1", "", "yes", 2024-05-01T10:00:00Z) for double quotes; the emitter then
 * falls back to single quotes where plain style is syntactically impossible
 * ("a: b", "- x", "*x") and to double quotes where a block is (trailing
 * spaces). Sequences inside mappings are not indented (libyaml's and go-yaml's
 * default), lines fold at 80 columns. The decision "would it read back as a
 * string" is resolve.c's, the same code the parser uses, so what we write
 * reads back as the same value. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/manifest/internal.h"

#define EMIT_MAX_DEPTH 1000

typedef struct obuf {
  char *p;
  size_t len, cap;
  bool oom;
} obuf;

static int write_out(void *data, unsigned char *buffer, size_t size) {
  obuf *b = data;
  if (b->len + size + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + size + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
      b->oom = true;
      return 0;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, buffer, size);
  b->len += size;
  b->p[b->len] = 0;
  return 1;
}

typedef struct ectx {
  yaml_emitter_t em;
  obuf out;
  unsigned flags;
  keel_error *err;
} ectx;

static int emitted(ectx *c, yaml_event_t *ev, int ok) {
  if (!ok) return keel_error_set(c->err, ENOMEM, "out of memory");
  if (!yaml_emitter_emit(&c->em, ev)) {
    if (c->out.oom || c->em.error == YAML_MEMORY_ERROR)
      return keel_error_set(c->err, ENOMEM, "out of memory");
    return keel_error_set(c->err, EINVAL, "writing YAML: %s",
                          c->em.problem ? c->em.problem : "emitter error");
  }
  return 0;
}

static int scalar(ectx *c, const char *s, size_t len, yaml_scalar_style_t style) {
  yaml_event_t ev;
  int ok = yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style);
  return emitted(c, &ev, ok);
}

static int string(ectx *c, const char *s, size_t len) {
  yaml_scalar_style_t style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  if (memchr(s, '\n', len))
    style = YAML_LITERAL_SCALAR_STYLE;
  else if (!memchr(s, 0, len) && mres_plain_is_string(s, len))
    style = YAML_PLAIN_SCALAR_STYLE;
  return scalar(c, s, len, style);
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int value(ectx *c, const json_t *v, int depth) {
  yaml_event_t ev;
  char buf[64];
  int rc;
  if (depth > EMIT_MAX_DEPTH)
    return keel_error_set(c->err, EINVAL, "writing YAML: nesting deeper than %d levels",
                          EMIT_MAX_DEPTH);
  switch (json_typeof(v)) {
    case JSON_OBJECT: {
      rc = emitted(
          c, &ev,
          yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE));
      if (rc < 0) return rc;
      size_t n = json_object_size(v), k = 0;
      const char **keys = malloc((n ? n : 1) * sizeof(*keys));
      if (!keys) return keel_error_set(c->err, ENOMEM, "out of memory");
      const char *key;
      json_t *member;
      json_object_foreach((json_t *)v, key, member) keys[k++] = key;
      if (c->flags & MANIFEST_SORT_KEYS) qsort(keys, n, sizeof(*keys), cmp_str);
      for (k = 0; k < n && rc == 0; k++) {
        rc = string(c, keys[k], strlen(keys[k]));
        if (rc == 0) rc = value(c, json_object_get(v, keys[k]), depth + 1);
      }
      free(keys);
      if (rc < 0) return rc;
      return emitted(c, &ev, yaml_mapping_end_event_initialize(&ev));
    }
    case JSON_ARRAY:
      rc = emitted(
          c, &ev,
          yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE));
      for (size_t i = 0; i < json_array_size(v) && rc == 0; i++)
        rc = value(c, json_array_get(v, i), depth + 1);
      if (rc < 0) return rc;
      return emitted(c, &ev, yaml_sequence_end_event_initialize(&ev));
    case JSON_STRING:
      return string(c, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
      snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      return scalar(c, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
    case JSON_REAL:
      mres_format_float(json_real_value(v), 64, buf, sizeof(buf));
      return scalar(c, buf, strlen(buf), YAML_PLAIN_SCALAR_STYLE);
    case JSON_TRUE:
      return scalar(c, "true", 4, YAML_PLAIN_SCALAR_STYLE);
    case JSON_FALSE:
      return scalar(c, "false", 5, YAML_PLAIN_SCALAR_STYLE);
    case JSON_NULL:
    default:
      return scalar(c, "null", 4, YAML_PLAIN_SCALAR_STYLE);
  }
}

char *manifest_json_to_yaml_stream(const json_t *const *vs, size_t n, unsigned flags,
                                   keel_error *err) {
  if (n == 0) {
    char *empty = strdup("");
    if (!empty) keel_error_set(err, ENOMEM, "out of memory");
    return empty;
  }
  ectx c = {.flags = flags, .err = err};
  if (!yaml_emitter_initialize(&c.em)) {
    keel_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  yaml_emitter_set_output(&c.em, write_out, &c.out);
  yaml_emitter_set_unicode(&c.em, 1);
  yaml_emitter_set_indent(&c.em, 2);
  yaml_event_t ev;
  int rc = emitted(&c, &ev, yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING));
  for (size_t i = 0; i < n && rc == 0; i++) {
    rc = emitted(&c, &ev, yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1));
    if (rc == 0) rc = value(&c, vs[i], 0);
    if (rc == 0) rc = emitted(&c, &ev, yaml_document_end_event_initialize(&ev, 1));
  }
  if (rc == 0) rc = emitted(&c, &ev, yaml_stream_end_event_initialize(&ev));
  if (rc == 0 && !yaml_emitter_flush(&c.em)) rc = keel_error_set(err, ENOMEM, "out of memory");
  yaml_emitter_delete(&c.em);
  if (rc < 0) {
    free(c.out.p);
    return NULL;
  }
  if (!c.out.p) c.out.p = strdup("");
  if (!c.out.p) keel_error_set(err, ENOMEM, "out of memory");
  return c.out.p;
}

char *manifest_json_to_yaml(const json_t *v, unsigned flags, keel_error *err) {
  return manifest_json_to_yaml_stream(&v, 1, flags, err);
}
