/* common/manifest/json_parse.c — JSON text into the same documents as YAML.
 *
 * jansson parses and validates each value (its number and escape rules, its
 * duplicate-key check); a small walker then goes over the text jansson
 * accepted to record where each key and element is. The walker trusts the
 * syntax (it was just checked) but not blindly: anything unexpected is an
 * error, never a read past the end. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"
#include "common/manifest/internal.h"

typedef struct jw {
  const char *t;
  size_t len, i;
  int line, col;
  int depth, max_depth;
  size_t nodes, max_nodes;
  keel_error *err;
} jw;

static void adv(jw *w) {
  if (w->t[w->i] == '\n') {
    w->line++;
    w->col = 1;
  } else if (((unsigned char)w->t[w->i] & 0xC0) != 0x80) {
    w->col++;
  }
  w->i++;
}

static void skip_ws(jw *w) {
  while (w->i < w->len && strchr(" \t\r\n", w->t[w->i]) && w->t[w->i]) adv(w);
}

static int bad(jw *w) {
  return keel_error_set(w->err, EINVAL, "%d:%d: unexpected text in JSON", w->line, w->col);
}

static void put_utf8(char *out, size_t *o, uint32_t cp) {
  if (cp < 0x80) {
    out[(*o)++] = (char)cp;
  } else if (cp < 0x800) {
    out[(*o)++] = (char)(0xC0 | (cp >> 6));
    out[(*o)++] = (char)(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out[(*o)++] = (char)(0xE0 | (cp >> 12));
    out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*o)++] = (char)(0x80 | (cp & 0x3F));
  } else {
    out[(*o)++] = (char)(0xF0 | (cp >> 18));
    out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[(*o)++] = (char)(0x80 | (cp & 0x3F));
  }
}

static bool hex4(jw *w, uint32_t *v) {
  *v = 0;
  for (int k = 0; k < 4; k++) {
    if (w->i >= w->len) return false;
    char c = w->t[w->i];
    int d = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (d < 0) return false;
    *v = *v * 16 + (uint32_t)d;
    adv(w);
  }
  return true;
}

/* The string at w->i (its opening quote), decoded when out is not NULL (out
 * holds at least the remaining length + 1 bytes: decoding never grows). */
static int string_at(jw *w, char *out, size_t *outlen) {
  size_t o = 0;
  if (w->i >= w->len || w->t[w->i] != '"') return bad(w);
  adv(w);
  for (;;) {
    if (w->i >= w->len) return bad(w);
    char c = w->t[w->i];
    if (c == '"') {
      adv(w);
      break;
    }
    if (c != '\\') {
      if (out) out[o++] = c;
      adv(w);
      continue;
    }
    adv(w);
    if (w->i >= w->len) return bad(w);
    char e = w->t[w->i];
    adv(w);
    const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
    const char *p = strchr(from, e);
    if (e && p) {
      if (out) out[o++] = to[p - from];
      continue;
    }
    if (e != 'u') return bad(w);
    uint32_t cp, lo;
    if (!hex4(w, &cp)) return bad(w);
    if (cp >= 0xD800 && cp <= 0xDBFF && w->i + 1 < w->len && w->t[w->i] == '\\' &&
        w->t[w->i + 1] == 'u') {
      adv(w);
      adv(w);
      if (!hex4(w, &lo)) return bad(w);
      if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (out) put_utf8(out, &o, cp);
  }
  if (out) out[o] = 0;
  if (outlen) *outlen = o;
  return 0;
}

static int walk_value(jw *w, manifest_pos **out);

static int walk_container(jw *w, manifest_pos *node, bool obj) {
  char close = obj ? '}' : ']';
  adv(w);
  skip_ws(w);
  if (w->i < w->len && w->t[w->i] == close) {
    adv(w);
    return 0;
  }
  for (;;) {
    skip_ws(w);
    int line = w->line, col = w->col;
    cleanup_free char *key = NULL;
    size_t keylen = 0;
    if (obj) {
      /* Measure the key's text first: its decoding is never longer. */
      jw probe = *w;
      int rc = string_at(&probe, NULL, NULL);
      if (rc < 0) return rc;
      key = malloc(probe.i - w->i + 1);
      if (!key) return keel_error_set(w->err, ENOMEM, "out of memory");
      rc = string_at(w, key, &keylen);
      if (rc < 0) return rc;
      skip_ws(w);
      if (w->i >= w->len || w->t[w->i] != ':') return bad(w);
      adv(w);
      skip_ws(w);
    }
    manifest_pos *child;
    int rc = walk_value(w, &child);
    if (rc < 0) return rc;
    if (mpos_add(node, key, keylen, line, col, child) < 0)
      return keel_error_set(w->err, ENOMEM, "out of memory");
    skip_ws(w);
    if (w->i >= w->len) return bad(w);
    char c = w->t[w->i];
    adv(w);
    if (c == close) return 0;
    if (c != ',') return bad(w);
  }
}

static int walk_value(jw *w, manifest_pos **out) {
  *out = NULL;
  skip_ws(w);
  if (w->i >= w->len) return bad(w);
  if (++w->nodes > w->max_nodes) {
    keel_error_set(w->err, E2BIG, "%d:%d: more than %zu values", w->line, w->col, w->max_nodes);
    return -E2BIG;
  }
  char c = w->t[w->i];
  char type = c == '{' ? 'o' : c == '[' ? 'a' : 's';
  manifest_pos *node = mpos_new(type, w->line, w->col);
  if (!node) return keel_error_set(w->err, ENOMEM, "out of memory");
  int rc = 0;
  if (type != 's') {
    if (++w->depth > w->max_depth) {
      manifest_pos_unref(node);
      keel_error_set(w->err, E2BIG, "%d:%d: nesting deeper than %d levels", w->line, w->col,
                     w->max_depth);
      return -E2BIG;
    }
    rc = walk_container(w, node, type == 'o');
    w->depth--;
  } else if (c == '"') {
    rc = string_at(w, NULL, NULL);
  } else {
    size_t from = w->i;
    while (w->i < w->len && strchr("+-.0123456789eEtruefalsn", w->t[w->i]) && w->t[w->i]) adv(w);
    if (w->i == from) rc = bad(w);
  }
  if (rc < 0) {
    manifest_pos_unref(node);
    return rc;
  }
  *out = node;
  return 0;
}

int manifest_json_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err) {
  *docs = NULL;
  *n = 0;
  jw w = {
      .t = text,
      .len = len,
      .line = 1,
      .col = 1,
      .max_depth = lim && lim->max_depth > 0 ? lim->max_depth : MANIFEST_DEFAULT_MAX_DEPTH,
      .max_nodes = lim && lim->max_nodes ? lim->max_nodes : MANIFEST_DEFAULT_MAX_NODES,
      .err = err,
  };
  if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) w.i = 3;
  manifest_doc *out = NULL;
  size_t nout = 0, cap = 0;
  int rc = 0;
  for (;;) {
    skip_ws(&w);
    if (w.i >= len) break;
    json_error_t je;
    json_t *v = json_loadb(text + w.i, len - w.i,
                           JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!v) {
      int line = w.line + je.line - 1, col = je.line <= 1 ? w.col + je.column - 1 : je.column;
      rc = keel_error_set(err, EINVAL, "%d:%d: invalid JSON: %s", line, col, je.text);
      break;
    }
    if (nout == cap) {
      size_t ncap = cap ? cap * 2 : 4;
      manifest_doc *d = realloc(out, ncap * sizeof(*d));
      if (!d) {
        json_decref(v);
        rc = keel_error_set(err, ENOMEM, "out of memory");
        break;
      }
      out = d;
      cap = ncap;
    }
    int line = w.line, col = w.col;
    manifest_pos *pos;
    if ((rc = walk_value(&w, &pos)) < 0) {
      json_decref(v);
      break;
    }
    out[nout++] = (manifest_doc){.root = v, .pos = pos, .line = line, .column = col};
  }
  if (rc < 0) {
    manifest_docs_free(out, nout);
    return rc;
  }
  *docs = out;
  *n = nout;
  return 0;
}

int manifest_text_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err) {
  size_t i = len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
  while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n')) i++;
  if (i < len && (text[i] == '{' || text[i] == '[')) {
    keel_error jerr = {0};
    int rc = manifest_json_parse(text, len, lim, docs, n, &jerr);
    if (rc == 0 || rc == -ENOMEM || rc == -E2BIG) {
      if (err && rc < 0) *err = jerr;
      return rc;
    }
    /* Not JSON: YAML flow style reads the same way. When it is not YAML
     * either, the JSON error says more, except for duplicate keys, where
     * YAML's names both lines. */
    rc = manifest_yaml_parse(text, len, lim, docs, n, err);
    if (rc == -EINVAL && err && !strstr(jerr.message, "duplicate object key")) *err = jerr;
    return rc;
  }
  return manifest_yaml_parse(text, len, lim, docs, n, err);
}
