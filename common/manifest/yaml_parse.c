/* common/manifest/yaml_parse.c — a YAML stream into jansson values with
 * positions, from libyaml's event API.
 *
 * One pass over the events with an explicit stack of open collections (no
 * recursion, so nesting costs heap, bounded by max_depth). A scalar is
 * resolved as go-yaml v2 would (resolve.c); an anchor is remembered once its
 * value is complete, so an alias can never refer to a value that contains it;
 * an alias shares the anchor's jansson value and position node (both are
 * immutable by then) and counts what it expands to against max_nodes, which
 * is what stops a billion laughs. Merge keys (`<<: *base`) are applied when
 * their mapping ends: explicit keys win, then earlier merge sources.
 *
 * Anchors are per document, as in the YAML spec and libyaml's composer. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "common/base/cleanup.h"
#include "common/manifest/internal.h"

#define YAML_MERGE_TAG "tag:yaml.org,2002:merge"
#define YAML_BINARY_TAG "tag:yaml.org,2002:binary"

typedef struct merge_src {
  json_t *v;
  manifest_pos *pos;
} merge_src;

typedef struct frame {
  json_t *v;         /* the object or array being built */
  manifest_pos *pos; /* its positions */
  char *anchor;      /* registered when the collection ends */
  int line, col;     /* where the collection is written */
  bool is_map;
  /* A mapping's key awaiting its value. */
  bool have_key, key_merge;
  char *key;
  int key_line, key_col;
  /* Sources of `<<`, applied at the end. */
  merge_src *merges;
  size_t nmerges, mcap;
} frame;

typedef struct anchor {
  char *name;
  json_t *v;
  manifest_pos *pos;
} anchor;

typedef struct yctx {
  const char *text;
  size_t len;
  keel_error *err;
  size_t max_nodes, nodes;
  int max_depth;
  frame *st;
  size_t depth, scap;
  anchor *anchors;
  size_t nanchors, acap;
  manifest_doc *docs;
  size_t ndocs, dcap;
  /* The current document's root once complete. */
  json_t *root;
  manifest_pos *root_pos;
  int root_line, root_col;
} yctx;

static int ln(const yaml_mark_t *m) { return (int)m->line + 1; }
static int cl(const yaml_mark_t *m) { return (int)m->column + 1; }

static int fail(yctx *c, const yaml_mark_t *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(yctx *c, const yaml_mark_t *m, const char *fmt, ...) {
  char msg[KEEL_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return keel_error_set(c->err, EINVAL, "%d:%d: %s", ln(m), cl(m), msg);
}

static int oom(yctx *c) { return keel_error_set(c->err, ENOMEM, "out of memory"); }

static int count_nodes(yctx *c, const yaml_mark_t *m, size_t n) {
  if (n > c->max_nodes - c->nodes) {
    keel_error_set(c->err, E2BIG,
                   "%d:%d: the stream expands to more than %zu values (aliases are counted as "
                   "what they expand to)",
                   ln(m), cl(m), c->max_nodes);
    return -E2BIG;
  }
  c->nodes += n;
  return 0;
}

/* s quoted for a message, cut at 60 bytes. */
static void quote(const char *s, size_t len, char *buf, size_t n) {
  size_t o = 0;
  if (n < 8) {
    buf[0] = 0;
    return;
  }
  buf[o++] = '"';
  for (size_t i = 0; i < len && o + 6 < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (i == 60) {
      memcpy(buf + o, "...", 3);
      o += 3;
      break;
    }
    if (ch == '"' || ch == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
      o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
    } else {
      buf[o++] = (char)ch;
    }
  }
  buf[o++] = '"';
  buf[o] = 0;
}

/* ------------------------------------------------------------ anchors */

static void anchors_clear(yctx *c) {
  for (size_t i = 0; i < c->nanchors; i++) {
    free(c->anchors[i].name);
    json_decref(c->anchors[i].v);
    manifest_pos_unref(c->anchors[i].pos);
  }
  c->nanchors = 0;
}

/* Takes name; borrows v and pos (adds references). */
static int anchor_add(yctx *c, char *name, json_t *v, manifest_pos *pos) {
  if (c->nanchors == c->acap) {
    size_t cap = c->acap ? c->acap * 2 : 8;
    anchor *a = realloc(c->anchors, cap * sizeof(*a));
    if (!a) {
      free(name);
      return oom(c);
    }
    c->anchors = a;
    c->acap = cap;
  }
  c->anchors[c->nanchors++] = (anchor){name, json_incref(v), mpos_ref(pos)};
  return 0;
}

static const anchor *anchor_find(const yctx *c, const char *name) {
  for (size_t i = c->nanchors; i > 0; i--) /* a redefinition wins */
    if (strcmp(c->anchors[i - 1].name, name) == 0) return &c->anchors[i - 1];
  return NULL;
}

/* ------------------------------------------------------------ scalars */

typedef struct scalar {
  const char *s;
  size_t len;
  bool is_str;       /* a string whatever it says */
  bool plain_nonstr; /* plain, untagged, read as something else */
  mres r;            /* when !is_str */
} scalar;

static bool tag_is(const yaml_char_t *tag, const char *t) {
  return tag && strcmp((const char *)tag, t) == 0;
}

static int scalar_read(yctx *c, const yaml_event_t *ev, scalar *out) {
  const char *s = (const char *)ev->data.scalar.value;
  size_t len = ev->data.scalar.length;
  const yaml_char_t *tag = ev->data.scalar.tag;
  *out = (scalar){.s = s, .len = len, .is_str = true};
  if (!tag) {
    if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    if (memchr(s, 0, len)) return 0; /* cannot be: plain scalars have no NUL */
    mres_plain(s, len, &out->r);
    out->is_str = out->r.type == MR_STR || out->r.type == MR_TIMESTAMP;
    out->plain_nonstr = !out->is_str;
    return 0;
  }
  if (tag_is(tag, "!") || tag_is(tag, YAML_STR_TAG) || tag_is(tag, YAML_TIMESTAMP_TAG)) return 0;
  const char *want = NULL;
  if (tag_is(tag, YAML_NULL_TAG))
    want = "!!null";
  else if (tag_is(tag, YAML_BOOL_TAG))
    want = "!!bool";
  else if (tag_is(tag, YAML_INT_TAG))
    want = "!!int";
  else if (tag_is(tag, YAML_FLOAT_TAG))
    want = "!!float";
  if (tag_is(tag, YAML_BINARY_TAG) || tag_is(tag, YAML_MAP_TAG) || tag_is(tag, YAML_SEQ_TAG))
    return fail(c, &ev->start_mark, "a scalar tagged %s is not supported", (const char *)tag);
  if (!want) return 0; /* other tags: the text, as go-yaml reads them */
  mres r = {0};
  if (!memchr(s, 0, len)) mres_plain(s, len, &r);
  bool ok = false;
  switch (want[2]) {
    case 'n':
      ok = r.type == MR_NULL;
      break;
    case 'b':
      ok = r.type == MR_BOOL;
      break;
    case 'i':
      ok = r.type == MR_INT || r.type == MR_UINT;
      break;
    case 'f':
      ok = r.type == MR_INT || r.type == MR_UINT || r.type == MR_FLOAT;
      if (r.type == MR_INT) r.f = (double)r.i;
      if (r.type == MR_UINT) r.f = (double)r.u;
      if (ok) r.type = MR_FLOAT;
      break;
  }
  if (!ok) {
    char q[300];
    quote(s, len, q, sizeof(q));
    return fail(c, &ev->start_mark, "%s is not a valid %s", q, want);
  }
  out->is_str = false;
  out->r = r;
  return 0;
}

static int scalar_json(yctx *c, const yaml_event_t *ev, const scalar *sc, json_t **out) {
  json_t *v = NULL;
  if (sc->is_str) {
    v = json_stringn(sc->s, sc->len);
    if (!v) return oom(c); /* libyaml hands out valid UTF-8 only */
  } else {
    switch (sc->r.type) {
      case MR_NULL:
        v = json_null();
        break;
      case MR_BOOL:
        v = json_boolean(sc->r.b);
        break;
      case MR_INT:
        v = json_integer((json_int_t)sc->r.i);
        break;
      case MR_UINT:
        v = json_real((double)sc->r.u);
        break;
      case MR_FLOAT:
        if (!isfinite(sc->r.f)) {
          char q[300];
          quote(sc->s, sc->len, q, sizeof(q));
          return fail(c, &ev->start_mark,
                      "%s is not a number JSON can hold (quote it to make it a string)", q);
        }
        v = json_real(sc->r.f);
        break;
      default:
        v = json_stringn(sc->s, sc->len);
    }
    if (!v) return oom(c);
  }
  *out = v;
  return 0;
}

/* A key's text: strings as they are, booleans and numbers as sigs.k8s.io/yaml
 * writes them (true, 10, 1.5); null has no text. */
static int key_text(yctx *c, const yaml_mark_t *m, const json_t *v, char **out) {
  char buf[64];
  const char *s = buf;
  size_t len;
  switch (json_typeof(v)) {
    case JSON_STRING:
      s = json_string_value(v);
      len = json_string_length(v);
      if (memchr(s, 0, len)) return fail(c, m, "a mapping key cannot contain a NUL character");
      break;
    case JSON_TRUE:
    case JSON_FALSE:
      snprintf(buf, sizeof(buf), "%s", json_is_true(v) ? "true" : "false");
      break;
    case JSON_INTEGER:
      snprintf(buf, sizeof(buf), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
      break;
    case JSON_REAL:
      mres_format_float(json_real_value(v), 32, buf, sizeof(buf));
      break;
    case JSON_NULL:
      return fail(c, m, "a mapping key cannot be null (~, null or empty); quote it for a string");
    default:
      return fail(c, m, "a mapping key must be a string, not a %s",
                  json_is_object(v) ? "mapping" : "sequence");
  }
  len = strlen(s);
  *out = strndup(s, len);
  return *out ? 0 : oom(c);
}

/* A scalar key's text: what key_text gives for the value it resolves to, with
 * .inf and .nan allowed (they are only text here). */
static int scalar_key(yctx *c, const yaml_event_t *ev, const scalar *sc, char **out) {
  if (sc->is_str) {
    if (memchr(sc->s, 0, sc->len))
      return fail(c, &ev->start_mark, "a mapping key cannot contain a NUL character");
    *out = strndup(sc->s, sc->len);
    return *out ? 0 : oom(c);
  }
  if (sc->r.type == MR_FLOAT || sc->r.type == MR_UINT) {
    char buf[64];
    if (sc->r.type == MR_UINT)
      snprintf(buf, sizeof(buf), "%" PRIu64, sc->r.u);
    else
      mres_format_float(sc->r.f, 32, buf, sizeof(buf));
    *out = strdup(buf);
    return *out ? 0 : oom(c);
  }
  json_t *v;
  int rc = scalar_json(c, ev, sc, &v);
  if (rc < 0) return rc;
  rc = key_text(c, &ev->start_mark, v, out);
  json_decref(v);
  return rc;
}

/* ------------------------------------------------------------ building */

static void frame_free(frame *f) {
  json_decref(f->v);
  manifest_pos_unref(f->pos);
  free(f->anchor);
  free(f->key);
  for (size_t i = 0; i < f->nmerges; i++) {
    json_decref(f->merges[i].v);
    manifest_pos_unref(f->merges[i].pos);
  }
  free(f->merges);
  memset(f, 0, sizeof(*f));
}

static int first_line_of(const manifest_pos *p, const char *key) {
  const mpos_ent *e = mpos_member(p, key);
  return e ? e->line : 0;
}

/* Adds v (owned) with positions pos (owned), written at line:col, to the open
 * collection, or makes it the document's root. */
static int add_value(yctx *c, json_t *v, manifest_pos *pos, const yaml_mark_t *m) {
  int line = ln(m), col = cl(m);
  if (c->depth == 0) {
    c->root = v;
    c->root_pos = pos;
    c->root_line = line;
    c->root_col = col;
    return 0;
  }
  frame *f = &c->st[c->depth - 1];
  if (!f->is_map) {
    if (json_array_append_new(f->v, v) < 0) {
      manifest_pos_unref(pos);
      return oom(c);
    }
    return mpos_add(f->pos, NULL, 0, line, col, pos) < 0 ? oom(c) : 0;
  }
  f->have_key = false;
  if (f->key_merge) {
    bool ok = json_is_object(v);
    if (json_is_array(v)) {
      ok = true;
      for (size_t i = 0; i < json_array_size(v); i++)
        ok = ok && json_is_object(json_array_get(v, i));
    }
    if (!ok) {
      json_decref(v);
      manifest_pos_unref(pos);
      return fail(c, m, "the value of a merge key (<<) must be a mapping or a list of mappings");
    }
    if (f->nmerges == f->mcap) {
      size_t cap = f->mcap ? f->mcap * 2 : 2;
      merge_src *ms = realloc(f->merges, cap * sizeof(*ms));
      if (!ms) {
        json_decref(v);
        manifest_pos_unref(pos);
        return oom(c);
      }
      f->merges = ms;
      f->mcap = cap;
    }
    f->merges[f->nmerges++] = (merge_src){v, pos};
    return 0;
  }
  cleanup_free char *key = steal_pointer(&f->key);
  if (json_object_get(f->v, key)) {
    json_decref(v);
    manifest_pos_unref(pos);
    char q[300];
    quote(key, strlen(key), q, sizeof(q));
    yaml_mark_t km = {.line = (size_t)f->key_line - 1, .column = (size_t)f->key_col - 1};
    return fail(c, &km, "duplicate key %s (first at line %d)", q, first_line_of(f->pos, key));
  }
  if (json_object_set_new(f->v, key, v) < 0) {
    manifest_pos_unref(pos);
    return oom(c);
  }
  return mpos_add(f->pos, key, strlen(key), f->key_line, f->key_col, pos) < 0 ? oom(c) : 0;
}

static int merge_one(yctx *c, frame *f, json_t *src, const manifest_pos *spos,
                     const yaml_mark_t *m) {
  for (size_t i = 0; i < spos->n; i++) {
    const mpos_ent *e = &spos->ents[i];
    if (json_object_get(f->v, e->key)) continue; /* explicit keys, then earlier sources, win */
    int rc = count_nodes(c, m, e->node->weight);
    if (rc < 0) return rc;
    if (json_object_set(f->v, e->key, json_object_get(src, e->key)) < 0) return oom(c);
    if (mpos_add(f->pos, e->key, strlen(e->key), e->line, e->col, mpos_ref(e->node)) < 0)
      return oom(c);
  }
  return 0;
}

static int apply_merges(yctx *c, frame *f, const yaml_mark_t *m) {
  for (size_t i = 0; i < f->nmerges; i++) {
    merge_src *ms = &f->merges[i];
    int rc = 0;
    if (json_is_object(ms->v)) {
      rc = merge_one(c, f, ms->v, ms->pos, m);
    } else {
      for (size_t k = 0; k < json_array_size(ms->v) && rc == 0; k++)
        rc = merge_one(c, f, json_array_get(ms->v, k), ms->pos->ents[k].node, m);
    }
    if (rc < 0) return rc;
  }
  return 0;
}

static int push(yctx *c, const yaml_event_t *ev, bool is_map) {
  frame *top = c->depth ? &c->st[c->depth - 1] : NULL;
  if (top && top->is_map && !top->have_key)
    return fail(c, &ev->start_mark, "a mapping key must be a string, not a %s",
                is_map ? "mapping" : "sequence");
  if (c->depth >= (size_t)c->max_depth) {
    keel_error_set(c->err, E2BIG, "%d:%d: nesting deeper than %d levels", ln(&ev->start_mark),
                   cl(&ev->start_mark), c->max_depth);
    return -E2BIG;
  }
  int rc = count_nodes(c, &ev->start_mark, 1);
  if (rc < 0) return rc;
  if (c->depth == c->scap) {
    size_t cap = c->scap ? c->scap * 2 : 16;
    frame *st = realloc(c->st, cap * sizeof(*st));
    if (!st) return oom(c);
    c->st = st;
    c->scap = cap;
  }
  const yaml_char_t *anchor =
      is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
  frame f = {
      .v = is_map ? json_object() : json_array(),
      .pos = mpos_new(is_map ? 'o' : 'a', ln(&ev->start_mark), cl(&ev->start_mark)),
      .anchor = anchor ? strdup((const char *)anchor) : NULL,
      .line = ln(&ev->start_mark),
      .col = cl(&ev->start_mark),
      .is_map = is_map,
  };
  if (!f.v || !f.pos || (anchor && !f.anchor)) {
    frame_free(&f);
    return oom(c);
  }
  c->st[c->depth++] = f;
  return 0;
}

static int pop(yctx *c, const yaml_event_t *ev) {
  frame f = c->st[--c->depth];
  int rc = 0;
  if (f.is_map) rc = apply_merges(c, &f, &ev->start_mark);
  if (rc == 0 && f.anchor) {
    rc = anchor_add(c, steal_pointer(&f.anchor), f.v, f.pos);
  }
  if (rc < 0) {
    frame_free(&f);
    return rc;
  }
  json_t *v = steal_pointer(&f.v);
  manifest_pos *pos = steal_pointer(&f.pos);
  yaml_mark_t at = {.line = (size_t)f.line - 1, .column = (size_t)f.col - 1};
  frame_free(&f);
  return add_value(c, v, pos, &at);
}

static int on_scalar(yctx *c, const yaml_event_t *ev) {
  scalar sc;
  int rc = scalar_read(c, ev, &sc);
  if (rc < 0) return rc;
  if ((rc = count_nodes(c, &ev->start_mark, 1)) < 0) return rc;
  frame *top = c->depth ? &c->st[c->depth - 1] : NULL;
  const char *anchor = (const char *)ev->data.scalar.anchor;
  if (top && top->is_map && !top->have_key) {
    /* A key. A plain `<<` (or one tagged !!merge) is a merge key. */
    bool merge = (!ev->data.scalar.tag && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                  sc.len == 2 && memcmp(sc.s, "<<", 2) == 0) ||
                 tag_is(ev->data.scalar.tag, YAML_MERGE_TAG);
    top->key_line = ln(&ev->start_mark);
    top->key_col = cl(&ev->start_mark);
    top->key_merge = merge;
    if (!merge && (rc = scalar_key(c, ev, &sc, &top->key)) < 0) return rc;
    if (anchor) {
      /* An anchored key is remembered as its text. */
      json_t *kv = json_string(merge ? "<<" : top->key);
      manifest_pos *p = mpos_new('s', ln(&ev->start_mark), cl(&ev->start_mark));
      char *name = strdup(anchor);
      rc = kv && p && name ? anchor_add(c, name, kv, p) : (free(name), oom(c));
      json_decref(kv);
      manifest_pos_unref(p);
      if (rc < 0) return rc;
    }
    top->have_key = true;
    return 0;
  }
  json_t *v;
  if ((rc = scalar_json(c, ev, &sc, &v)) < 0) return rc;
  manifest_pos *p = mpos_new('s', ln(&ev->start_mark), cl(&ev->start_mark));
  if (!p) {
    json_decref(v);
    return oom(c);
  }
  p->plain_nonstr = sc.plain_nonstr;
  if (anchor) {
    char *name = strdup(anchor);
    if (!name || (rc = anchor_add(c, name, v, p)) < 0) {
      if (!name) rc = oom(c);
      json_decref(v);
      manifest_pos_unref(p);
      return rc;
    }
  }
  return add_value(c, v, p, &ev->start_mark);
}

static int on_alias(yctx *c, const yaml_event_t *ev) {
  const char *name = (const char *)ev->data.alias.anchor;
  const anchor *a = anchor_find(c, name);
  if (!a) {
    char q[300];
    quote(name, strlen(name), q, sizeof(q));
    return fail(c, &ev->start_mark, "unknown anchor %s (an alias must follow its anchor)", q);
  }
  int rc = count_nodes(c, &ev->start_mark, a->pos->weight);
  if (rc < 0) return rc;
  frame *top = c->depth ? &c->st[c->depth - 1] : NULL;
  if (top && top->is_map && !top->have_key) {
    top->key_line = ln(&ev->start_mark);
    top->key_col = cl(&ev->start_mark);
    top->key_merge = false;
    if ((rc = key_text(c, &ev->start_mark, a->v, &top->key)) < 0) return rc;
    top->have_key = true;
    return 0;
  }
  return add_value(c, json_incref(a->v), mpos_ref(a->pos), &ev->start_mark);
}

static int doc_end(yctx *c) {
  anchors_clear(c);
  if (c->ndocs == c->dcap) {
    size_t cap = c->dcap ? c->dcap * 2 : 4;
    manifest_doc *d = realloc(c->docs, cap * sizeof(*d));
    if (!d) return oom(c);
    c->docs = d;
    c->dcap = cap;
  }
  if (!c->root) { /* libyaml always has a node; keep the invariant anyway */
    c->root = json_null();
    c->root_pos = mpos_new('s', c->root_line, c->root_col);
    if (!c->root_pos) return oom(c);
  }
  c->docs[c->ndocs++] = (manifest_doc){
      .root = steal_pointer(&c->root),
      .pos = steal_pointer(&c->root_pos),
      .line = c->root_line,
      .column = c->root_col,
  };
  return 0;
}

/* libyaml's error: where and what, with a hint for the usual tab mistake. */
static int parser_error(yctx *c, const yaml_parser_t *p) {
  if (p->error == YAML_MEMORY_ERROR) return oom(c);
  const char *problem = p->problem ? p->problem : "invalid YAML";
  yaml_mark_t m = p->problem_mark;
  if (p->error == YAML_READER_ERROR) {
    /* Reader errors carry a byte offset, not a mark. */
    size_t off = p->problem_offset < c->len ? p->problem_offset : c->len;
    m = (yaml_mark_t){0};
    for (size_t i = 0; i < off; i++) {
      if (c->text[i] == '\n') {
        m.line++;
        m.column = 0;
      } else if (((unsigned char)c->text[i] & 0xC0) != 0x80) {
        m.column++;
      }
    }
    return fail(c, &m, "%s", problem);
  }
  const char *hint = "";
  if (m.index < c->len && c->text[m.index] == '\t')
    hint = " (a tab: YAML indents with spaces only)";
  if (p->context)
    return fail(c, &m, "%s%s (%s at line %d)", problem, hint, p->context, ln(&p->context_mark));
  return fail(c, &m, "%s%s", problem, hint);
}

static void ctx_free(yctx *c) {
  while (c->depth) frame_free(&c->st[--c->depth]);
  free(c->st);
  anchors_clear(c);
  free(c->anchors);
  json_decref(c->root);
  manifest_pos_unref(c->root_pos);
}

void manifest_docs_free(manifest_doc *docs, size_t n) {
  if (!docs) return;
  for (size_t i = 0; i < n; i++) {
    json_decref(docs[i].root);
    manifest_pos_unref(docs[i].pos);
  }
  free(docs);
}

int manifest_yaml_parse(const char *text, size_t len, const manifest_limits *lim,
                        manifest_doc **docs, size_t *n, keel_error *err) {
  *docs = NULL;
  *n = 0;
  yctx c = {
      .text = text,
      .len = len,
      .err = err,
      .max_nodes = lim && lim->max_nodes ? lim->max_nodes : MANIFEST_DEFAULT_MAX_NODES,
      .max_depth = lim && lim->max_depth > 0 ? lim->max_depth : MANIFEST_DEFAULT_MAX_DEPTH,
  };
  yaml_parser_t parser;
  if (!yaml_parser_initialize(&parser)) return oom(&c);
  yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
  int rc = 0;
  bool done = false;
  while (!done && rc == 0) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      rc = parser_error(&c, &parser);
      break;
    }
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        done = true;
        break;
      case YAML_DOCUMENT_START_EVENT:
        c.root_line = ln(&ev.start_mark);
        c.root_col = cl(&ev.start_mark);
        break;
      case YAML_DOCUMENT_END_EVENT:
        rc = doc_end(&c);
        break;
      case YAML_SCALAR_EVENT:
        rc = on_scalar(&c, &ev);
        break;
      case YAML_ALIAS_EVENT:
        rc = on_alias(&c, &ev);
        break;
      case YAML_SEQUENCE_START_EVENT:
        rc = push(&c, &ev, false);
        break;
      case YAML_MAPPING_START_EVENT:
        rc = push(&c, &ev, true);
        break;
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT:
        rc = c.depth ? pop(&c, &ev) : fail(&c, &ev.start_mark, "unbalanced collection end");
        break;
      default:
        break;
    }
    yaml_event_delete(&ev);
  }
  yaml_parser_delete(&parser);
  ctx_free(&c);
  if (rc < 0) {
    manifest_docs_free(c.docs, c.ndocs);
    return rc;
  }
  *docs = c.docs;
  *n = c.ndocs;
  return 0;
}
