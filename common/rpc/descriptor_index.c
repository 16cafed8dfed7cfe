/* common/rpc/descriptor_index.c — see descriptor_index.h.
 *
 * Design. Adding a set happens in two phases. First the FileDescriptorSet is
 * walked at the wire level (field 1, length-delimited, repeated) so each file's
 * original bytes are kept, and each file is unpacked with protobuf-c and
 * checked (a name, bounded nesting). Only when the whole set is good are the
 * files committed: that keeps a bad set from leaving half its files behind.
 *
 * Names live in an arena (one allocation per 16 KiB of names), so a symbol is a
 * pointer, a file number and a kind. Two open-addressing hash tables (FNV-1a,
 * linear probing, at most half full) map names to files and names to symbols;
 * a third holds the lenient "pkg.Enum.VALUE" spellings (symbols of their own,
 * outside the real table), consulted only when the real table misses, so an
 * alias can never shadow a real symbol.
 * Extensions are an array sorted by (extendee, number, insertion order):
 * lookups are binary searches and "all numbers of a type" is one contiguous run.
 * File imports are resolved by name when a closure is asked for, so a set may
 * import files that a later set brings. */
#include "common/rpc/descriptor_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "google/protobuf/descriptor.pb-c.h"

/* Deeper nesting than this is not something protoc users write; the bound
 * keeps the indexing recursion small whatever the input. */
#define MAX_NESTING 64
#define ARENA_BLOCK 16384

/* ------------------------------------------------------------ name arena */

typedef struct arena_block {
  struct arena_block *next;
  size_t used, cap;
  char data[];
} arena_block;

typedef struct {
  arena_block *head;
} arena;

static char *arena_alloc(arena *a, size_t n) {
  arena_block *b = a->head;
  if (!b || b->cap - b->used < n) {
    size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
    b = malloc(sizeof(*b) + cap);
    if (!b) return NULL;
    b->used = 0;
    b->cap = cap;
    b->next = a->head;
    a->head = b;
  }
  char *p = b->data + b->used;
  b->used += n;
  return p;
}

/* "scope.name", or "name" when scope is empty. */
static const char *arena_join(arena *a, const char *scope, const char *name) {
  size_t sl = strlen(scope), nl = strlen(name);
  char *p = arena_alloc(a, sl + nl + 2);
  if (!p) return NULL;
  if (sl) {
    memcpy(p, scope, sl);
    p[sl++] = '.';
  }
  memcpy(p + sl, name, nl + 1);
  return p;
}

static void arena_free(arena *a) {
  while (a->head) {
    arena_block *next = a->head->next;
    free(a->head);
    a->head = next;
  }
}

/* ------------------------------------------------------------ string table */

typedef struct {
  const char *key; /* borrowed; NULL = empty slot */
  uint32_t hash;
  int32_t value;
} strtab_slot;

typedef struct {
  strtab_slot *slots;
  size_t cap; /* power of two, or 0 */
  size_t len;
} strtab;

static uint32_t hash_str(const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static int strtab_get(const strtab *t, const char *key) {
  if (!t->cap) return -1;
  uint32_t h = hash_str(key);
  for (size_t i = h & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
    const strtab_slot *s = &t->slots[i];
    if (!s->key) return -1;
    if (s->hash == h && strcmp(s->key, key) == 0) return s->value;
  }
}

static void strtab_place(strtab_slot *slots, size_t cap, const char *key, uint32_t h,
                         int32_t value) {
  size_t i = h & (cap - 1);
  while (slots[i].key) i = (i + 1) & (cap - 1);
  slots[i] = (strtab_slot){.key = key, .hash = h, .value = value};
}

/* 1 inserted, 0 already present (value unchanged: first wins), -ENOMEM. */
static int strtab_put_new(strtab *t, const char *key, int32_t value) {
  if (strtab_get(t, key) >= 0) return 0;
  if ((t->len + 1) * 2 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    strtab_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots) return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++)
      if (t->slots[i].key)
        strtab_place(slots, cap, t->slots[i].key, t->slots[i].hash, t->slots[i].value);
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
  }
  strtab_place(t->slots, t->cap, key, hash_str(key), value);
  t->len++;
  return 1;
}

/* ------------------------------------------------------------ the index */

typedef struct {
  Google__Protobuf__FileDescriptorProto *proto; /* owned */
  uint8_t *bytes;                               /* owned copy of the set's bytes */
  size_t len;
} file_entry;

typedef struct {
  const char *name; /* arena */
  int32_t file;
  uint8_t kind;       /* desc_symbol_kind */
  int8_t method_kind; /* rpc_kind for methods, -1 otherwise */
} symbol;

typedef struct {
  const char *extendee; /* arena, no leading dot */
  int32_t number;
  int32_t file;
  uint32_t seq; /* insertion order: the first declaration wins */
} extension;

struct descriptor_index {
  arena names;
  file_entry *files;
  size_t nfiles, files_cap;
  strtab file_tab; /* file name (borrowed from proto) -> file */
  symbol *syms;
  size_t nsyms, syms_cap;
  strtab sym_tab;   /* full name -> symbol */
  strtab alias_tab; /* "pkg.Enum.VALUE" -> its own symbol entry */
  const char **services;
  size_t nservices, services_cap;
  extension *exts;
  size_t nexts, exts_cap;
  uint32_t ext_seq;
};

/* Grows *arr (of elem-sized items) so one more fits. */
static int grow(void **arr, size_t *cap, size_t len, size_t elem) {
  if (len < *cap) return 0;
  size_t ncap = *cap ? *cap * 2 : 16;
  void *p = realloc(*arr, ncap * elem);
  if (!p) return -ENOMEM;
  *arr = p;
  *cap = ncap;
  return 0;
}

descriptor_index *descriptor_index_create(void) { return calloc(1, sizeof(descriptor_index)); }

void descriptor_index_destroy(descriptor_index *ix) {
  if (!ix) return;
  for (size_t i = 0; i < ix->nfiles; i++) {
    google__protobuf__file_descriptor_proto__free_unpacked(ix->files[i].proto, NULL);
    free(ix->files[i].bytes);
  }
  free(ix->files);
  free(ix->file_tab.slots);
  free(ix->syms);
  free(ix->sym_tab.slots);
  free(ix->alias_tab.slots);
  free(ix->services);
  free(ix->exts);
  arena_free(&ix->names);
  free(ix);
}

static const char *skip_dot(const char *s) { return s[0] == '.' ? s + 1 : s; }

static bool has_name(const char *s) { return s && s[0]; }

/* Adds scope.name as a symbol of `file`. *full receives the arena name (also
 * when the symbol already existed, so nested declarations still get indexed),
 * or NULL when the declaration has no name. */
static int add_symbol(descriptor_index *ix, int32_t file, const char *scope, const char *name,
                      desc_symbol_kind kind, int method_kind, const char **full, bool *inserted) {
  if (full) *full = NULL;
  if (inserted) *inserted = false;
  if (!has_name(name)) return 0;
  const char *n = arena_join(&ix->names, scope, name);
  if (!n) return -ENOMEM;
  if (full) *full = n;
  if (strtab_get(&ix->sym_tab, n) >= 0) return 0;
  if (grow((void **)&ix->syms, &ix->syms_cap, ix->nsyms, sizeof(symbol))) return -ENOMEM;
  int r = strtab_put_new(&ix->sym_tab, n, (int32_t)ix->nsyms);
  if (r < 0) return r;
  ix->syms[ix->nsyms++] =
      (symbol){.name = n, .file = file, .kind = (uint8_t)kind, .method_kind = (int8_t)method_kind};
  if (inserted) *inserted = true;
  return 0;
}

static int add_extension(descriptor_index *ix, int32_t file, const char *scope,
                         const Google__Protobuf__FieldDescriptorProto *f) {
  int r = add_symbol(ix, file, scope, f->name, DESC_SYMBOL_EXTENSION, -1, NULL, NULL);
  if (r < 0 || !has_name(f->extendee) || !f->has_number) return r;
  const char *extendee = arena_join(&ix->names, "", skip_dot(f->extendee));
  if (!extendee) return -ENOMEM;
  if (grow((void **)&ix->exts, &ix->exts_cap, ix->nexts, sizeof(extension))) return -ENOMEM;
  ix->exts[ix->nexts++] =
      (extension){.extendee = extendee, .number = f->number, .file = file, .seq = ix->ext_seq++};
  return 0;
}

static int add_enum(descriptor_index *ix, int32_t file, const char *scope,
                    const Google__Protobuf__EnumDescriptorProto *e) {
  const char *full;
  int r = add_symbol(ix, file, scope, e->name, DESC_SYMBOL_ENUM, -1, &full, NULL);
  if (r < 0 || !full) return r;
  for (size_t i = 0; i < e->n_value; i++) {
    const char *vname = e->value[i]->name;
    /* Proto scoping: values are siblings of their enum. */
    r = add_symbol(ix, file, scope, vname, DESC_SYMBOL_ENUM_VALUE, -1, NULL, NULL);
    if (r < 0) return r;
    if (!has_name(vname)) continue;
    /* The lenient spelling gets a symbol of its own (outside sym_tab), so it
     * names this enum's file even if another file took the real name. */
    const char *alias = arena_join(&ix->names, full, vname);
    if (!alias) return -ENOMEM;
    if (strtab_get(&ix->alias_tab, alias) >= 0) continue;
    if (grow((void **)&ix->syms, &ix->syms_cap, ix->nsyms, sizeof(symbol))) return -ENOMEM;
    r = strtab_put_new(&ix->alias_tab, alias, (int32_t)ix->nsyms);
    if (r < 0) return r;
    ix->syms[ix->nsyms++] =
        (symbol){.name = alias, .file = file, .kind = DESC_SYMBOL_ENUM_VALUE, .method_kind = -1};
  }
  return 0;
}

static int add_message(descriptor_index *ix, int32_t file, const char *scope,
                       const Google__Protobuf__DescriptorProto *m) {
  const char *full;
  int r = add_symbol(ix, file, scope, m->name, DESC_SYMBOL_MESSAGE, -1, &full, NULL);
  if (r < 0 || !full) return r;
  for (size_t i = 0; i < m->n_field && r == 0; i++)
    r = add_symbol(ix, file, full, m->field[i]->name, DESC_SYMBOL_FIELD, -1, NULL, NULL);
  for (size_t i = 0; i < m->n_oneof_decl && r == 0; i++)
    r = add_symbol(ix, file, full, m->oneof_decl[i]->name, DESC_SYMBOL_ONEOF, -1, NULL, NULL);
  for (size_t i = 0; i < m->n_nested_type && r == 0; i++)
    r = add_message(ix, file, full, m->nested_type[i]);
  for (size_t i = 0; i < m->n_enum_type && r == 0; i++)
    r = add_enum(ix, file, full, m->enum_type[i]);
  for (size_t i = 0; i < m->n_extension && r == 0; i++)
    r = add_extension(ix, file, full, m->extension[i]);
  return r;
}

static int add_service(descriptor_index *ix, int32_t file, const char *pkg,
                       const Google__Protobuf__ServiceDescriptorProto *s) {
  const char *full;
  bool inserted;
  int r = add_symbol(ix, file, pkg, s->name, DESC_SYMBOL_SERVICE, -1, &full, &inserted);
  if (r < 0 || !full) return r;
  if (inserted) {
    if (grow((void **)&ix->services, &ix->services_cap, ix->nservices, sizeof(char *)))
      return -ENOMEM;
    ix->services[ix->nservices++] = full;
  }
  for (size_t i = 0; i < s->n_method; i++) {
    const Google__Protobuf__MethodDescriptorProto *m = s->method[i];
    int kind = (m->client_streaming ? 2 : 0) | (m->server_streaming ? 1 : 0);
    r = add_symbol(ix, file, full, m->name, DESC_SYMBOL_METHOD, kind, NULL, NULL);
    if (r < 0) return r;
  }
  return 0;
}

static int index_file(descriptor_index *ix, int32_t file) {
  const Google__Protobuf__FileDescriptorProto *fd = ix->files[file].proto;
  const char *pkg = fd->package ? fd->package : "";
  int r = 0;
  for (size_t i = 0; i < fd->n_message_type && r == 0; i++)
    r = add_message(ix, file, pkg, fd->message_type[i]);
  for (size_t i = 0; i < fd->n_enum_type && r == 0; i++)
    r = add_enum(ix, file, pkg, fd->enum_type[i]);
  for (size_t i = 0; i < fd->n_service && r == 0; i++)
    r = add_service(ix, file, pkg, fd->service[i]);
  for (size_t i = 0; i < fd->n_extension && r == 0; i++)
    r = add_extension(ix, file, pkg, fd->extension[i]);
  return r;
}

/* ------------------------------------------------------------ parsing */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t x = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return -1;
    uint8_t b = *(*p)++;
    x |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *v = x;
      return 0;
    }
  }
  return -1;
}

static bool message_nesting_ok(const Google__Protobuf__DescriptorProto *m, int depth) {
  if (depth > MAX_NESTING) return false;
  for (size_t i = 0; i < m->n_nested_type; i++)
    if (!message_nesting_ok(m->nested_type[i], depth + 1)) return false;
  return true;
}

typedef struct {
  const uint8_t *data;
  size_t len;
  Google__Protobuf__FileDescriptorProto *proto;
} pending_file;

static void free_pending(pending_file *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i].proto) google__protobuf__file_descriptor_proto__free_unpacked(p[i].proto, NULL);
  free(p);
}

/* Splits the set into its files and unpacks each one; nothing is indexed yet. */
static int parse_set(const uint8_t *set, size_t len, pending_file **out, size_t *nout,
                     keel_error *err) {
  pending_file *files = NULL;
  size_t n = 0, cap = 0;
  const uint8_t *p = set, *end = set + len;
  int r = 0;
  while (p < end) {
    uint64_t tag, flen;
    if (read_varint(&p, end, &tag) || (tag >> 3) == 0 || (tag >> 3) > 0x1fffffff) {
      r = keel_error_set(err, EINVAL, "bad field tag at byte %zu", (size_t)(p - set));
      goto fail;
    }
    switch (tag & 7) {
      case 0: /* varint */
        if (read_varint(&p, end, &flen)) goto truncated;
        continue;
      case 1: /* 64-bit */
        if ((size_t)(end - p) < 8) goto truncated;
        p += 8;
        continue;
      case 5: /* 32-bit */
        if ((size_t)(end - p) < 4) goto truncated;
        p += 4;
        continue;
      case 2:
        if (read_varint(&p, end, &flen) || flen > (uint64_t)(end - p)) goto truncated;
        break;
      default:
        r = keel_error_set(err, EINVAL, "unsupported wire type %u at byte %zu", (unsigned)(tag & 7),
                           (size_t)(p - set));
        goto fail;
    }
    const uint8_t *data = p;
    p += flen;
    if ((tag >> 3) != 1) continue; /* not FileDescriptorSet.file */
    Google__Protobuf__FileDescriptorProto *fd =
        google__protobuf__file_descriptor_proto__unpack(NULL, (size_t)flen, data);
    if (!fd) {
      r = keel_error_set(err, EINVAL, "file %zu does not parse as a FileDescriptorProto", n);
      goto fail;
    }
    if (!has_name(fd->name)) {
      google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
      r = keel_error_set(err, EINVAL, "file %zu has no name", n);
      goto fail;
    }
    for (size_t i = 0; i < fd->n_message_type; i++) {
      if (!message_nesting_ok(fd->message_type[i], 1)) {
        r = keel_error_set(err, EINVAL, "%s: messages nested deeper than %d", fd->name,
                           MAX_NESTING);
        google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
        goto fail;
      }
    }
    if (grow((void **)&files, &cap, n, sizeof(*files))) {
      google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
      r = keel_error_set(err, ENOMEM, "out of memory");
      goto fail;
    }
    files[n++] = (pending_file){.data = data, .len = (size_t)flen, .proto = fd};
  }
  *out = files;
  *nout = n;
  return 0;
truncated:
  r = keel_error_set(err, EINVAL, "truncated at byte %zu of %zu", (size_t)(p - set), len);
fail:
  free_pending(files, n);
  return r;
}

static int ext_cmp(const void *a, const void *b) {
  const extension *x = a, *y = b;
  int c = strcmp(x->extendee, y->extendee);
  if (c) return c;
  if (x->number != y->number) return x->number < y->number ? -1 : 1;
  return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int descriptor_index_add_set(descriptor_index *ix, const void *set, size_t len, keel_error *err) {
  pending_file *pending = NULL;
  size_t npending = 0;
  int r = parse_set(set, len, &pending, &npending, err);
  if (r < 0) return r;
  for (size_t i = 0; i < npending && r == 0; i++) {
    pending_file *pf = &pending[i];
    if (strtab_get(&ix->file_tab, pf->proto->name) >= 0) continue; /* first wins */
    if (grow((void **)&ix->files, &ix->files_cap, ix->nfiles, sizeof(file_entry))) {
      r = -ENOMEM;
      break;
    }
    uint8_t *bytes = malloc(pf->len ? pf->len : 1);
    if (!bytes) {
      r = -ENOMEM;
      break;
    }
    memcpy(bytes, pf->data, pf->len);
    int32_t file = (int32_t)ix->nfiles;
    r = strtab_put_new(&ix->file_tab, pf->proto->name, file);
    if (r < 0) {
      free(bytes);
      break;
    }
    ix->files[ix->nfiles++] = (file_entry){.proto = pf->proto, .bytes = bytes, .len = pf->len};
    pf->proto = NULL; /* owned by the index now */
    r = index_file(ix, file);
  }
  free_pending(pending, npending);
  /* Sorted even after a failure: what was added must stay searchable. */
  if (ix->nexts > 1) qsort(ix->exts, ix->nexts, sizeof(extension), ext_cmp);
  if (r < 0) return keel_error_set(err, -r, "indexing descriptors: out of memory");
  return 0;
}

/* ------------------------------------------------------------ queries */

size_t descriptor_index_file_count(const descriptor_index *ix) { return ix->nfiles; }

const char *descriptor_index_file_name(const descriptor_index *ix, size_t file) {
  return file < ix->nfiles ? ix->files[file].proto->name : NULL;
}

void descriptor_index_file_bytes(const descriptor_index *ix, size_t file, const uint8_t **data,
                                 size_t *len) {
  if (file >= ix->nfiles) {
    *data = NULL;
    *len = 0;
    return;
  }
  *data = ix->files[file].bytes;
  *len = ix->files[file].len;
}

int descriptor_index_find_file(const descriptor_index *ix, const char *name) {
  return name ? strtab_get(&ix->file_tab, name) : -1;
}

int descriptor_index_file_closure(const descriptor_index *ix, size_t file, int *out) {
  if (file >= ix->nfiles) return 0;
  /* Iterative depth-first search, emitting a file once all its imports are out;
   * each file is pushed at most once, so the stack never exceeds nfiles. */
  struct frame {
    int32_t file;
    size_t next;
  };
  uint8_t *seen = calloc(ix->nfiles, 1);
  struct frame *stack = malloc(ix->nfiles * sizeof(*stack));
  if (!seen || !stack) {
    free(seen);
    free(stack);
    return -ENOMEM;
  }
  size_t sp = 0, n = 0;
  stack[sp++] = (struct frame){.file = (int32_t)file, .next = 0};
  seen[file] = 1;
  while (sp > 0) {
    struct frame *top = &stack[sp - 1];
    const Google__Protobuf__FileDescriptorProto *fd = ix->files[top->file].proto;
    if (top->next < fd->n_dependency) {
      int dep = strtab_get(&ix->file_tab, fd->dependency[top->next++]);
      if (dep < 0 || seen[dep]) continue;
      seen[dep] = 1;
      stack[sp++] = (struct frame){.file = dep, .next = 0};
    } else {
      out[n++] = top->file;
      sp--;
    }
  }
  free(seen);
  free(stack);
  return (int)n;
}

static const symbol *find_symbol(const descriptor_index *ix, const char *name) {
  if (!name) return NULL;
  name = skip_dot(name);
  int s = strtab_get(&ix->sym_tab, name);
  if (s < 0) s = strtab_get(&ix->alias_tab, name);
  return s < 0 ? NULL : &ix->syms[s];
}

int descriptor_index_find_symbol(const descriptor_index *ix, const char *symbol_name,
                                 desc_symbol_kind *kind) {
  const symbol *s = find_symbol(ix, symbol_name);
  if (!s) return -1;
  if (kind) *kind = (desc_symbol_kind)s->kind;
  return s->file;
}

int descriptor_index_method_kind(const descriptor_index *ix, const char *path) {
  /* "/pkg.Svc/Method" -> "pkg.Svc.Method" */
  if (!path || path[0] != '/') return -1;
  const char *slash = strchr(path + 1, '/');
  if (!slash || slash == path + 1 || !slash[1] || strchr(slash + 1, '/')) return -1;
  size_t len = strlen(path + 1);
  char *name = malloc(len + 1);
  if (!name) return -1;
  memcpy(name, path + 1, len + 1);
  name[slash - (path + 1)] = '.';
  int s = strtab_get(&ix->sym_tab, name);
  free(name);
  if (s < 0 || ix->syms[s].kind != DESC_SYMBOL_METHOD) return -1;
  return ix->syms[s].method_kind;
}

size_t descriptor_index_service_count(const descriptor_index *ix) { return ix->nservices; }

const char *descriptor_index_service_name(const descriptor_index *ix, size_t i) {
  return i < ix->nservices ? ix->services[i] : NULL;
}

/* The first extension of extendee with number >= number (lower bound). */
static size_t ext_lower_bound(const descriptor_index *ix, const char *extendee, int32_t number) {
  size_t lo = 0, hi = ix->nexts;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    const extension *e = &ix->exts[mid];
    int c = strcmp(e->extendee, extendee);
    if (c < 0 || (c == 0 && e->number < number))
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int descriptor_index_find_extension(const descriptor_index *ix, const char *extendee,
                                    int32_t number) {
  if (!extendee) return -1;
  extendee = skip_dot(extendee);
  size_t i = ext_lower_bound(ix, extendee, number);
  if (i < ix->nexts && ix->exts[i].number == number && strcmp(ix->exts[i].extendee, extendee) == 0)
    return ix->exts[i].file;
  return -1;
}

int descriptor_index_extension_numbers(const descriptor_index *ix, const char *type,
                                       int32_t **numbers) {
  *numbers = NULL;
  const symbol *s = find_symbol(ix, type);
  if (!s || s->kind != DESC_SYMBOL_MESSAGE) return -ENOENT;
  type = s->name; /* canonical spelling, no leading dot */
  size_t first = ext_lower_bound(ix, type, INT32_MIN), end = first;
  while (end < ix->nexts && strcmp(ix->exts[end].extendee, type) == 0) end++;
  if (end == first) return 0;
  int32_t *out = malloc((end - first) * sizeof(*out));
  if (!out) return -ENOMEM;
  size_t n = 0;
  for (size_t i = first; i < end; i++)
    if (n == 0 || out[n - 1] != ix->exts[i].number) out[n++] = ix->exts[i].number;
  *numbers = out;
  return (int)n;
}
