/* common/manifest/manifest.c — documents into keel.api.v1 objects (kinds +
 * protojson), files and directories, and objects back out as YAML or JSON.
 *
 * protojson reports a bad field as "PATH: what" with PATH in its own syntax
 * (`spec.containers[0].imagePullPolicyy`); manifest_pos_find walks that path
 * in the document's position tree to name the line, so protojson needs no
 * hook and its messages reach the user unchanged after "FILE:LINE: ". */
#define _GNU_SOURCE
#include "common/manifest/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/cleanup.h"
#include "common/manifest/internal.h"

typedef struct dctx {
  const protojson *pj;
  const char *name;
  keel_error *err;
  manifest_object *objs;
  size_t n, cap;
} dctx;

static int derr(dctx *d, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int derr(dctx *d, int line, const char *fmt, ...) {
  char msg[KEEL_ERROR_MESSAGE_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof(msg), fmt, ap);
  va_end(ap);
  return keel_error_set(d->err, EINVAL, "%s:%d: %s", d->name, line, msg);
}

static int doom(dctx *d) { return keel_error_set(d->err, ENOMEM, "out of memory"); }

void manifest_objects_free(manifest_object *objs, size_t n) {
  if (!objs) return;
  for (size_t i = 0; i < n; i++) {
    if (objs[i].msg) protobuf_c_message_free_unpacked(objs[i].msg, NULL);
    free(objs[i].source);
    manifest_pos_unref(objs[i].pos);
  }
  free(objs);
}

static const char *json_kind_name(const json_t *v) {
  switch (json_typeof(v)) {
    case JSON_OBJECT:
      return "a mapping";
    case JSON_ARRAY:
      return "a list";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
      return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    default:
      return "null";
  }
}

static const api_kind *kind_exact(const char *kind) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  for (size_t i = 0; i < n; i++)
    if (strcmp(ks[i].kind, kind) == 0) return &ks[i];
  return NULL;
}

static int member_line(const manifest_pos *pos, const char *key, int dflt) {
  const mpos_ent *e = mpos_member(pos, key);
  return e ? e->line : dflt;
}

static int append(dctx *d, const api_kind *k, ProtobufCMessage *msg, int line, manifest_pos *pos) {
  if (d->n == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 8;
    manifest_object *o = realloc(d->objs, cap * sizeof(*o));
    if (!o) {
      protobuf_c_message_free_unpacked(msg, NULL);
      return doom(d);
    }
    d->objs = o;
    d->cap = cap;
  }
  char *source = strdup(d->name);
  if (!source) {
    protobuf_c_message_free_unpacked(msg, NULL);
    return doom(d);
  }
  d->objs[d->n++] = (manifest_object){
      .kind = k, .msg = msg, .source = source, .line = line, .pos = mpos_ref(pos)};
  return 0;
}

/* ------------------------------------------------------------ canonical maps */

/* protojson keeps a map's entries in the order the manifest wrote them; the
 * writers print them sorted. Sorting them here too makes a decoded object's
 * wire bytes depend only on its content: decode, print, decode gives the same
 * bytes, and two manifests that differ only in key order give the same
 * object (as Go's deterministic proto marshalling does). A map field is a
 * repeated message field whose type is the nested "<Field>Entry" with key 1
 * and value 2, which is how protoc lays map entries out. */

static bool is_map_entry(const ProtobufCMessageDescriptor *parent,
                         const ProtobufCFieldDescriptor *f) {
  if (f->type != PROTOBUF_C_TYPE_MESSAGE || f->label != PROTOBUF_C_LABEL_REPEATED) return false;
  const ProtobufCMessageDescriptor *e = f->descriptor;
  size_t pl = strlen(parent->name), el = strlen(e->name);
  return e->n_fields == 2 && e->fields[0].id == 1 && e->fields[1].id == 2 && el > pl + 6 &&
         strncmp(e->name, parent->name, pl) == 0 && e->name[pl] == '.' &&
         strcmp(e->name + el - 5, "Entry") == 0 && !strchr(e->name + pl + 1, '.');
}

static int cmp_entry_keys(const void *a, const void *b) {
  const ProtobufCMessage *x = *(const ProtobufCMessage *const *)a;
  const ProtobufCMessage *y = *(const ProtobufCMessage *const *)b;
  const ProtobufCFieldDescriptor *k = &x->descriptor->fields[0];
  const char *px = (const char *)x + k->offset, *py = (const char *)y + k->offset;
  switch (k->type) {
    case PROTOBUF_C_TYPE_STRING:
      return strcmp(*(char *const *)px ? *(char *const *)px : "",
                    *(char *const *)py ? *(char *const *)py : "");
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
      return (*(const int32_t *)px > *(const int32_t *)py) -
             (*(const int32_t *)px < *(const int32_t *)py);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
      return (*(const uint32_t *)px > *(const uint32_t *)py) -
             (*(const uint32_t *)px < *(const uint32_t *)py);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
      return (*(const int64_t *)px > *(const int64_t *)py) -
             (*(const int64_t *)px < *(const int64_t *)py);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
      return (*(const uint64_t *)px > *(const uint64_t *)py) -
             (*(const uint64_t *)px < *(const uint64_t *)py);
    case PROTOBUF_C_TYPE_BOOL:
      return (int)*(const protobuf_c_boolean *)px - (int)*(const protobuf_c_boolean *)py;
    default:
      return 0;
  }
}

static void sort_maps(ProtobufCMessage *m, int depth) {
  if (!m || depth > PROTOJSON_MAX_DEPTH + 1) return;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    char *slot = (char *)m + f->offset;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      size_t n = *(size_t *)((char *)m + f->quantifier_offset);
      ProtobufCMessage **items = *(ProtobufCMessage ***)slot;
      for (size_t k = 0; k < n; k++) sort_maps(items[k], depth + 1);
      if (n > 1 && is_map_entry(d, f)) qsort(items, n, sizeof(*items), cmp_entry_keys);
    } else {
      if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF &&
          *(uint32_t *)((char *)m + f->quantifier_offset) != f->id)
        continue;
      sort_maps(*(ProtobufCMessage **)slot, depth + 1);
    }
  }
}

/* One object at line; where is "" at a document's root, else "items[3]" or
 * "[3]" (prefixed to its messages); dflt is a typed list's kind. */
static int decode_one(dctx *d, const json_t *obj, manifest_pos *pos, int line, const char *where,
                      const api_kind *dflt) {
  const char *sep = *where ? ": " : "";
  if (!json_is_object(obj))
    return derr(d, line,
                "%s%sexpected a Kubernetes object (a mapping with apiVersion and kind), got %s",
                where, sep, json_kind_name(obj));
  const json_t *kv = json_object_get(obj, "kind"), *av = json_object_get(obj, "apiVersion");
  int kline = member_line(pos, "kind", line), aline = member_line(pos, "apiVersion", line);
  const api_kind *k = dflt;
  if (kv && !json_is_null(kv)) {
    if (!json_is_string(kv)) return derr(d, kline, "%s%skind must be a string", where, sep);
    const char *name = json_string_value(kv);
    k = kind_exact(name);
    if (!k) {
      const api_kind *near = api_kind_by_name(name);
      char hint[128] = "";
      if (near) snprintf(hint, sizeof(hint), "; did you mean \"%s\"?", near->kind);
      return derr(d, kline, "%s%skind \"%.100s\" is not served (apiVersion \"%.100s\")%s", where,
                  sep, name, json_is_string(av) ? json_string_value(av) : "", hint);
    }
    if (dflt && k != dflt)
      return derr(d, kline, "%s%skind %s in a %sList", where, sep, k->kind, dflt->kind);
  } else if (!k) {
    return derr(d, line, "%s%skind is not set", where, sep);
  }
  if (av && !json_is_null(av)) {
    if (!json_is_string(av)) return derr(d, aline, "%s%sapiVersion must be a string", where, sep);
    if (strcmp(json_string_value(av), k->api_version) != 0)
      return derr(d, aline, "%s%sapiVersion \"%.100s\" does not serve kind %s (%s is \"%s\")",
                  where, sep, json_string_value(av), k->kind, k->kind, k->api_version);
  } else if (!dflt) {
    return derr(d, line, "%s%sapiVersion is not set", where, sep);
  }
  keel_error perr = {0};
  ProtobufCMessage *msg = protojson_from_json(d->pj, k->object, obj, &perr);
  if (!msg) {
    if (perr.code == ENOMEM) return doom(d);
    int at;
    size_t matched = manifest_pos_find(pos, perr.message, &at, NULL);
    if (!matched) at = line;
    const char *hint = "";
    if ((strstr(perr.message, "expected a string, got boolean") ||
         strstr(perr.message, "expected a string, got number")) &&
        manifest_pos_plain_nonstring(pos, perr.message))
      hint =
          " (YAML reads unquoted yes/no/on/off/true/false as booleans and digits as "
          "numbers: quote the value)";
    return derr(d, at, "%s%s%s%s", where, *where ? (matched ? "." : ": ") : "", perr.message, hint);
  }
  sort_maps(msg, 0);
  if (dflt && (!kv || json_is_null(kv) || !av || json_is_null(av)))
    api_object_set_type_meta(k, msg);
  return append(d, k, msg, line, pos);
}

static bool is_list_key(const char *key) {
  return strcmp(key, "apiVersion") == 0 || strcmp(key, "kind") == 0 ||
         strcmp(key, "metadata") == 0 || strcmp(key, "items") == 0;
}

/* `kind: List` (apiVersion v1) or a typed list (`kind: PodList`). */
static int decode_list(dctx *d, const json_t *root, manifest_pos *pos, int line,
                       const api_kind *typed) {
  const json_t *av = json_object_get(root, "apiVersion");
  const char *want = typed ? typed->api_version : "v1";
  if (!json_is_string(av) || strcmp(json_string_value(av), want) != 0)
    return derr(d, member_line(pos, "apiVersion", line), "a %sList needs apiVersion \"%s\"",
                typed ? typed->kind : "", want);
  for (size_t i = 0; i < pos->n; i++) {
    if (!is_list_key(pos->ents[i].key))
      return derr(d, pos->ents[i].line,
                  "%.100s: unknown field \"%.100s\" (a %sList has apiVersion, "
                  "kind, metadata and items)",
                  pos->ents[i].key, pos->ents[i].key, typed ? typed->kind : "");
  }
  const json_t *items = json_object_get(root, "items");
  if (!items || json_is_null(items)) return 0;
  const mpos_ent *ie = mpos_member(pos, "items");
  if (!json_is_array(items) || !ie || ie->node->n != json_array_size(items))
    return derr(d, ie ? ie->line : line, "items: expected a list, got %s", json_kind_name(items));
  for (size_t i = 0; i < json_array_size(items); i++) {
    char where[40];
    snprintf(where, sizeof(where), "items[%zu]", i);
    const mpos_ent *e = &ie->node->ents[i];
    int rc = decode_one(d, json_array_get(items, i), e->node, e->line, where, typed);
    if (rc < 0) return rc;
  }
  return 0;
}

static int decode_doc(dctx *d, const manifest_doc *doc) {
  const json_t *root = doc->root;
  if (json_is_null(root)) return 0; /* an empty document */
  if (json_is_array(root)) {
    for (size_t i = 0; i < json_array_size(root) && i < doc->pos->n; i++) {
      char where[40];
      snprintf(where, sizeof(where), "[%zu]", i);
      const mpos_ent *e = &doc->pos->ents[i];
      int rc = decode_one(d, json_array_get(root, i), e->node, e->line, where, NULL);
      if (rc < 0) return rc;
    }
    return 0;
  }
  if (json_is_object(root)) {
    const char *kind = json_string_value(json_object_get(root, "kind"));
    size_t kl = kind ? strlen(kind) : 0;
    if (kind && strcmp(kind, "List") == 0) return decode_list(d, root, doc->pos, doc->line, NULL);
    if (kind && kl > 4 && strcmp(kind + kl - 4, "List") == 0) {
      char base[128];
      snprintf(base, sizeof(base), "%.*s", (int)(kl - 4), kind);
      const api_kind *k = kind_exact(base);
      if (k) return decode_list(d, root, doc->pos, doc->line, k);
    }
  }
  return decode_one(d, root, doc->pos, doc->line, "", NULL);
}

static int decode_into(dctx *d, const char *text, size_t len) {
  manifest_doc *docs;
  size_t ndocs;
  keel_error perr = {0};
  int rc = manifest_text_parse(text, len, NULL, &docs, &ndocs, &perr);
  if (rc == -ENOMEM) return doom(d);
  if (rc < 0) return keel_error_set(d->err, -rc, "%s:%s", d->name, perr.message);
  for (size_t i = 0; i < ndocs && rc == 0; i++) rc = decode_doc(d, &docs[i]);
  manifest_docs_free(docs, ndocs);
  return rc;
}

static int finish(dctx *d, int rc, manifest_object **objs, size_t *n) {
  if (rc < 0) {
    manifest_objects_free(d->objs, d->n);
    *objs = NULL;
    *n = 0;
    return rc;
  }
  *objs = d->objs;
  *n = d->n;
  return 0;
}

int manifest_decode(const protojson *pj, const char *name, const char *text, size_t len,
                    manifest_object **objs, size_t *n, keel_error *err) {
  dctx d = {.pj = pj, .name = name ? name : "-", .err = err};
  return finish(&d, decode_into(&d, text, len), objs, n);
}

/* ------------------------------------------------------------ files */

static int read_fd(int fd, const char *name, char **out, size_t *outlen, keel_error *err) {
  size_t cap = 1 << 16, len = 0;
  cleanup_free char *buf = malloc(cap);
  if (!buf) return keel_error_set(err, ENOMEM, "out of memory");
  for (;;) {
    if (len == cap) {
      if (cap > MANIFEST_MAX_FILE)
        return keel_error_set(err, E2BIG, "%s: larger than %u bytes", name, MANIFEST_MAX_FILE);
      char *nb = realloc(buf, cap * 2);
      if (!nb) return keel_error_set(err, ENOMEM, "out of memory");
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return keel_error_set_errno(err, errno, "read %s", name);
    if (r == 0) break;
    len += (size_t)r;
  }
  if (len > MANIFEST_MAX_FILE)
    return keel_error_set(err, E2BIG, "%s: larger than %u bytes", name, MANIFEST_MAX_FILE);
  *out = steal_pointer(&buf);
  *outlen = len;
  return 0;
}

static int decode_file_into(dctx *d, const char *path) {
  cleanup_free char *text = NULL;
  size_t len = 0;
  int rc;
  d->name = path;
  if (strcmp(path, "-") == 0) {
    rc = read_fd(STDIN_FILENO, "-", &text, &len, d->err);
  } else {
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return keel_error_set_errno(d->err, errno, "open %s", path);
    rc = read_fd(fd, path, &text, &len, d->err);
  }
  if (rc < 0) return rc;
  return decode_into(d, text, len);
}

int manifest_decode_file(const protojson *pj, const char *path, manifest_object **objs, size_t *n,
                         keel_error *err) {
  dctx d = {.pj = pj, .err = err};
  return finish(&d, decode_file_into(&d, path), objs, n);
}

static bool manifest_ext(const char *name) {
  const char *dot = strrchr(name, '.');
  return dot &&
         (strcmp(dot, ".yaml") == 0 || strcmp(dot, ".yml") == 0 || strcmp(dot, ".json") == 0);
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int decode_dir_into(dctx *d, const char *dir) {
  DIR *dh = opendir(dir);
  if (!dh) return keel_error_set_errno(d->err, errno, "open %s", dir);
  char **paths = NULL;
  size_t np = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while (rc == 0 && (de = readdir(dh)) != NULL) {
    if (!manifest_ext(de->d_name)) continue;
    char *p;
    bool slash = dir[0] && dir[strlen(dir) - 1] == '/';
    if (asprintf(&p, "%s%s%s", dir, slash ? "" : "/", de->d_name) < 0) {
      rc = doom(d);
      break;
    }
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
      free(p);
      continue;
    }
    if (np == cap) {
      size_t ncap = cap ? cap * 2 : 16;
      char **np2 = realloc(paths, ncap * sizeof(*np2));
      if (!np2) {
        free(p);
        rc = doom(d);
        break;
      }
      paths = np2;
      cap = ncap;
    }
    paths[np++] = p;
  }
  closedir(dh);
  if (rc == 0) qsort(paths, np, sizeof(*paths), cmp_names);
  for (size_t i = 0; i < np && rc == 0; i++) rc = decode_file_into(d, paths[i]);
  /* The objects and the error hold their own copies of the names. */
  d->name = dir;
  for (size_t i = 0; i < np; i++) free(paths[i]);
  free(paths);
  return rc;
}

int manifest_decode_dir(const protojson *pj, const char *dir, manifest_object **objs, size_t *n,
                        keel_error *err) {
  dctx d = {.pj = pj, .err = err};
  return finish(&d, decode_dir_into(&d, dir), objs, n);
}

int manifest_decode_path(const protojson *pj, const char *path, manifest_object **objs, size_t *n,
                         keel_error *err) {
  struct stat st;
  if (strcmp(path, "-") != 0 && stat(path, &st) == 0 && S_ISDIR(st.st_mode))
    return manifest_decode_dir(pj, path, objs, n, err);
  return manifest_decode_file(pj, path, objs, n, err);
}

int manifest_object_line(const manifest_object *o, const char *path) {
  int line;
  if (!o->pos || !manifest_pos_find(o->pos, path, &line, NULL)) return o->line;
  return line;
}

/* ------------------------------------------------------------ writing */

json_t *manifest_object_json(const protojson *pj, const ProtobufCMessage *obj, keel_error *err) {
  json_t *j = protojson_to_json(pj, obj, err);
  if (!j) return NULL;
  const api_kind *k = api_kind_by_object(obj->descriptor);
  if (!k || !json_is_object(j)) return j;
  json_t *av = json_object_get(j, "apiVersion"), *kd = json_object_get(j, "kind");
  if (av && kd) return j;
  /* Rebuild with apiVersion and kind first, as protojson would have written
   * them had they been set. */
  json_t *out = json_object();
  int rc = out ? 0 : -1;
  if (rc == 0)
    rc = json_object_set_new(out, "apiVersion", av ? json_incref(av) : json_string(k->api_version));
  if (rc == 0) rc = json_object_set_new(out, "kind", kd ? json_incref(kd) : json_string(k->kind));
  const char *key;
  json_t *v;
  json_object_foreach(j, key, v) {
    if (rc == 0 && strcmp(key, "apiVersion") != 0 && strcmp(key, "kind") != 0)
      rc = json_object_set(out, key, v);
  }
  json_decref(j);
  if (rc < 0) {
    json_decref(out);
    keel_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  return out;
}

/* The objects as JSON values (n new references in vs). */
static int objects_json(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                        json_t **vs, keel_error *err) {
  for (size_t i = 0; i < n; i++) {
    vs[i] = manifest_object_json(pj, objs[i], err);
    if (!vs[i]) {
      while (i > 0) json_decref(vs[--i]);
      return -1;
    }
  }
  return 0;
}

static json_t *as_list(json_t **vs, size_t n, keel_error *err) {
  json_t *list = json_object(), *items = json_array();
  int rc = list && items ? 0 : -1;
  if (rc == 0) rc = json_object_set_new(list, "apiVersion", json_string("v1"));
  if (rc == 0) rc = json_object_set_new(list, "kind", json_string("List"));
  for (size_t i = 0; i < n && rc == 0; i++) rc = json_array_append(items, vs[i]);
  if (rc == 0) rc = json_object_set(list, "items", items);
  json_decref(items);
  if (rc < 0) {
    json_decref(list);
    keel_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  return list;
}

static char *json_text(const json_t *j, unsigned flags, keel_error *err) {
  char *s = json_dumps(
      j, JSON_INDENT(4) | JSON_ENCODE_ANY | ((flags & MANIFEST_SORT_KEYS) ? JSON_SORT_KEYS : 0));
  char *out = NULL;
  if (s && asprintf(&out, "%s\n", s) < 0) out = NULL;
  free(s);
  if (!out) keel_error_set(err, ENOMEM, "out of memory");
  return out;
}

char *manifest_to_yaml(const protojson *pj, const ProtobufCMessage *obj, unsigned flags,
                       keel_error *err) {
  json_t *j = manifest_object_json(pj, obj, err);
  if (!j) return NULL;
  char *out = manifest_json_to_yaml(j, flags, err);
  json_decref(j);
  return out;
}

char *manifest_to_json(const protojson *pj, const ProtobufCMessage *obj, unsigned flags,
                       keel_error *err) {
  json_t *j = manifest_object_json(pj, obj, err);
  if (!j) return NULL;
  char *out = json_text(j, flags, err);
  json_decref(j);
  return out;
}

static char *list_out(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                      unsigned flags, bool yaml, keel_error *err) {
  json_t **vs = calloc(n ? n : 1, sizeof(*vs));
  if (!vs) {
    keel_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  char *out = NULL;
  if (objects_json(pj, objs, n, vs, err) == 0) {
    bool list = (flags & MANIFEST_AS_LIST) || (!yaml && n != 1);
    if (list) {
      json_t *l = as_list(vs, n, err);
      if (l) out = yaml ? manifest_json_to_yaml(l, flags, err) : json_text(l, flags, err);
      json_decref(l);
    } else {
      out = yaml ? manifest_json_to_yaml_stream((const json_t *const *)vs, n, flags, err)
                 : json_text(vs[0], flags, err);
    }
    for (size_t i = 0; i < n; i++) json_decref(vs[i]);
  }
  free(vs);
  return out;
}

char *manifest_list_to_yaml(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                            unsigned flags, keel_error *err) {
  return list_out(pj, objs, n, flags, true, err);
}

char *manifest_list_to_json(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                            unsigned flags, keel_error *err) {
  return list_out(pj, objs, n, flags, false, err);
}
