/* common/manifest/pos.c — the position tree beside each parsed value, and
 * finding the line of a protojson error path in it.
 *
 * The tree mirrors the JSON value: an object's node lists its members with the
 * line and column of each key, an array's its elements with where each is
 * written. Nodes are shared by reference when YAML aliases share values, so
 * the tree costs what the text does, not what the aliases expand to.
 *
 * Paths come from protojson's messages (`spec.containers[0].image`,
 * `metadata.labels["a.b/c"]`, an unknown key as written). Keys may contain
 * dots, so the walk does not split the path: at each object it tries every
 * key, rendered the way protojson renders it, against the text that follows,
 * and keeps the deepest match (a bounded backtracking search). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest/internal.h"

manifest_pos *mpos_new(char type, int line, int col) {
  manifest_pos *p = calloc(1, sizeof(*p));
  if (!p) return NULL;
  p->refs = 1;
  p->type = type;
  p->line = line;
  p->col = col;
  p->weight = 1;
  return p;
}

manifest_pos *mpos_ref(manifest_pos *p) {
  if (p) p->refs++;
  return p;
}

manifest_pos *manifest_pos_ref(manifest_pos *pos) { return mpos_ref(pos); }

void manifest_pos_unref(manifest_pos *p) {
  if (!p || --p->refs > 0) return;
  for (size_t i = 0; i < p->n; i++) {
    free(p->ents[i].key);
    manifest_pos_unref(p->ents[i].node);
  }
  free(p->ents);
  free(p);
}

int mpos_add(manifest_pos *parent, const char *key, size_t keylen, int line, int col,
             manifest_pos *child) {
  if (parent->n == parent->cap) {
    size_t cap = parent->cap ? parent->cap * 2 : 4;
    mpos_ent *e = realloc(parent->ents, cap * sizeof(*e));
    if (!e) {
      manifest_pos_unref(child);
      return -ENOMEM;
    }
    parent->ents = e;
    parent->cap = cap;
  }
  char *k = NULL;
  if (key) {
    k = malloc(keylen + 1);
    if (!k) {
      manifest_pos_unref(child);
      return -ENOMEM;
    }
    memcpy(k, key, keylen);
    k[keylen] = 0;
  }
  parent->ents[parent->n++] = (mpos_ent){.key = k, .line = line, .col = col, .node = child};
  parent->weight += child->weight;
  return 0;
}

const mpos_ent *mpos_member(const manifest_pos *p, const char *key) {
  if (!p || p->type != 'o') return NULL;
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->ents[i].key, key) == 0) return &p->ents[i];
  return NULL;
}

/* ------------------------------------------------------------ lookup */

#define KEY_SHOWN 64      /* protojson shows at most this many bytes of a key */
#define WALK_BUDGET 20000 /* nodes visited per lookup, whatever the keys */

static bool utf8_valid(const unsigned char *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    unsigned char c = s[i];
    size_t need;
    uint32_t cp;
    if (c < 0x80) {
      i++;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      need = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      need = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      need = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + need >= len) return false;
    for (size_t k = 1; k <= need; k++) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += need + 1;
  }
  return true;
}

/* key as protojson's messages show it (escaped, cut at KEY_SHOWN bytes on a
 * character boundary). buf >= KEY_SHOWN * 4 + 8. */
static size_t render_key(const char *key, char *buf, bool *cut) {
  size_t len = strlen(key);
  *cut = len > KEY_SHOWN;
  if (*cut) {
    len = KEY_SHOWN;
    while (len > 0 && ((unsigned char)key[len] & 0xC0) == 0x80) len--;
  }
  bool utf8 = utf8_valid((const unsigned char *)key, len);
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)key[i];
    if (ch == '"' || ch == '\\') {
      buf[o++] = '\\';
      buf[o++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f || (ch >= 0x80 && !utf8)) {
      o += (size_t)sprintf(buf + o, "\\x%02x", ch);
    } else {
      buf[o++] = (char)ch;
    }
  }
  buf[o] = 0;
  return o;
}

static bool is_delim(char c) { return c == 0 || c == '.' || c == '[' || c == ':'; }

/* A field name in the path against a key written with the proto name or
 * another case: equal ignoring '_' and ASCII case. */
static bool loose_eq(const char *seg, size_t seglen, const char *key) {
  size_t i = 0;
  const char *k = key;
  for (;;) {
    while (i < seglen && seg[i] == '_') i++;
    while (*k == '_') k++;
    if (i == seglen || !*k) return i == seglen && !*k;
    if (tolower((unsigned char)seg[i]) != tolower((unsigned char)*k)) return false;
    i++;
    k++;
  }
}

typedef struct walk {
  const char *path;
  int budget;
  size_t best_off;
  int best_line, best_col;
  const manifest_pos *best;
} walk;

static void visit(walk *w, const manifest_pos *p, size_t off, int line, int col) {
  if (w->budget-- <= 0 || !p) return;
  if (off > w->best_off || !w->best) {
    w->best_off = off;
    w->best_line = line;
    w->best_col = col;
    w->best = p;
  }
  const char *s = w->path + off;
  if (*s == 0 || *s == ':') return;
  if (p->type == 'a') {
    if (s[0] != '[' || !isdigit((unsigned char)s[1])) return;
    size_t idx = 0, k = 1;
    while (isdigit((unsigned char)s[k]) && idx < (SIZE_MAX - 9) / 10)
      idx = idx * 10 + (size_t)(s[k++] - '0');
    if (s[k] != ']' || idx >= p->n) return;
    visit(w, p->ents[idx].node, off + k + 1, p->ents[idx].line, p->ents[idx].col);
    return;
  }
  if (p->type != 'o') return;
  char buf[KEY_SHOWN * 4 + 16];
  bool cut;
  if (s[0] == '[' && s[1] == '"') {
    /* A map key: ["key"] or ["ke..."]. */
    for (size_t i = 0; i < p->n && w->budget > 0; i++) {
      size_t n = render_key(p->ents[i].key, buf, &cut);
      if (strncmp(s + 2, buf, n) != 0) continue;
      const char *end = cut ? "...\"]" : "\"]";
      if (strncmp(s + 2 + n, end, strlen(end)) != 0) continue;
      visit(w, p->ents[i].node, off + 2 + n + strlen(end), p->ents[i].line, p->ents[i].col);
    }
    return;
  }
  /* A field (or an unknown key as written): after the first, a '.' first. */
  size_t dot = 0;
  if (off > 0) {
    if (s[0] != '.') return;
    dot = 1;
  }
  const char *seg = s + dot;
  size_t seglen = 0;
  while (!is_delim(seg[seglen])) seglen++;
  for (size_t i = 0; i < p->n && w->budget > 0; i++) {
    size_t n = render_key(p->ents[i].key, buf, &cut);
    if (cut) {
      memcpy(buf + n, "...", 4);
      n += 3;
    }
    size_t adv = 0;
    if (strncmp(seg, buf, n) == 0 && is_delim(seg[n]))
      adv = n;
    else if (seglen && loose_eq(seg, seglen, p->ents[i].key))
      adv = seglen;
    else
      continue;
    visit(w, p->ents[i].node, off + dot + adv, p->ents[i].line, p->ents[i].col);
  }
}

static const manifest_pos *find(const manifest_pos *pos, const char *path, walk *w) {
  *w = (walk){.path = path ? path : "", .budget = WALK_BUDGET};
  if (!pos) return NULL;
  visit(w, pos, 0, pos->line, pos->col);
  return w->best;
}

size_t manifest_pos_find(const manifest_pos *pos, const char *path, int *line, int *column) {
  walk w;
  find(pos, path, &w);
  if (line) *line = w.best ? w.best_line : 0;
  if (column) *column = w.best ? w.best_col : 0;
  return w.best_off;
}

int manifest_pos_plain_nonstring(const manifest_pos *pos, const char *path) {
  walk w;
  const manifest_pos *p = find(pos, path, &w);
  if (!p) return 0;
  char next = w.path[w.best_off];
  return (next == 0 || next == ':') && p->plain_nonstr;
}
