/* services/apiserver/fuzz/api_fuzz.c — the fuzz target: what keel-apiserver
 * does with the bytes of a request before it reaches the store (decoding,
 * defaulting, validation, the JSON mapping, selectors), driven by protobuf-c
 * descriptors and the kind registry as the server is. The input format and
 * the properties are in api_fuzz.h.
 *
 * KEEL_API_FUZZ_SEEDS=DIR writes the built-in seeds into DIR at start (libFuzzer
 * then reads them as corpus); KEEL_API_FUZZ_TOLERATE=id,... counts the inputs
 * that violate those properties instead of aborting. At exit it prints how
 * many inputs each path decoded and how many objects validated. */
#define _GNU_SOURCE
#include "services/apiserver/fuzz/api_fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/apimachinery/fields.h"
#include "common/apimachinery/labels.h"
#include "common/apimachinery/validation.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "services/apiserver/validation/validation.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;

/* ---------------------------------------------------------------- violations */

static char g_tolerate[1024];
static const uint8_t *g_input;
static size_t g_input_len;

/* Whether the current input already hit a tolerated violation. */
static bool g_tolerated_hit;

#define MAX_IDS 32
static struct {
  const char *id;
  unsigned long n;
} g_tolerated[MAX_IDS];

static bool tolerated(const char *id) {
  size_t n = strlen(id);
  for (const char *p = g_tolerate; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && strncmp(p, id, n) == 0) return true;
    if (!end) break;
    p = end + 1;
  }
  return false;
}

/* Reports a violated property: aborts, or (when tolerated) counts the input
 * once and lets it go on; what follows a violation copes with its outcome. */
static void violation(const char *id, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(const char *id, const char *fmt, ...) {
  if (tolerated(id)) {
    for (size_t i = 0; i < MAX_IDS; i++) {
      if (!g_tolerated[i].id || strcmp(g_tolerated[i].id, id) == 0) {
        g_tolerated[i].id = id;
        if (!g_tolerated_hit) g_tolerated[i].n++;
        break;
      }
    }
    g_tolerated_hit = true;
    return;
  }
  char detail[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(detail, sizeof detail, fmt, ap);
  va_end(ap);
  fprintf(stderr, "api_fuzz: VIOLATION [%s] %s\ninput (%zu bytes, byte 0 = 0x%02x)\n", id, detail,
          g_input_len, g_input_len ? g_input[0] : 0);
  abort();
}

/* ---------------------------------------------------------------- counters */

static struct {
  unsigned long inputs[4], decoded[4], valid_create, invalid_create, updates, json_refused;
  unsigned long requests[API_FUZZ_NREQ], requests_decoded[API_FUZZ_NREQ], selectors_parsed, selectors_refused;
} g_count;

static void print_counts(void) {
  static const char *const paths[] = {"protobuf", "JSON", "request"};
  static const char *const reqs[] = {"Get", "List", "Watch", "Delete", "Scale"};
  for (int i = 0; i < 3; i++)
    fprintf(stderr, "api_fuzz: %-8s %10lu inputs %10lu decoded\n", paths[i], g_count.inputs[i],
            g_count.decoded[i]);
  fprintf(stderr,
          "api_fuzz: objects  %10lu valid on create, %lu invalid, %lu update checks; %lu JSON refused\n",
          g_count.valid_create, g_count.invalid_create, g_count.updates, g_count.json_refused);
  for (int i = 0; i < API_FUZZ_NREQ; i++)
    fprintf(stderr, "api_fuzz:   %-6s %10lu requests %10lu decoded\n", reqs[i], g_count.requests[i],
            g_count.requests_decoded[i]);
  fprintf(stderr, "api_fuzz: selectors %lu parsed, %lu refused\n", g_count.selectors_parsed,
          g_count.selectors_refused);
  for (size_t i = 0; i < MAX_IDS && g_tolerated[i].id; i++)
    fprintf(stderr, "api_fuzz: tolerated violation [%s]: %lu inputs\n", g_tolerated[i].id, g_tolerated[i].n);
}

/* ---------------------------------------------------------------- setup */

static protojson *g_pj;

const protojson *api_fuzz_protojson(void) {
  if (g_pj) return g_pj;
  keel_error err = {0};
  protojson_descriptor_set set = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  g_pj = protojson_create(&set, 1, &err);
  if (!g_pj) {
    fprintf(stderr, "api_fuzz: protojson_create: %s\n", err.message);
    abort();
  }
  return g_pj;
}

static void write_seed(void *arg, const uint8_t *data, size_t len) {
  void **a = arg;
  size_t *count = a[1];
  char path[4096];
  snprintf(path, sizeof path, "%s/seed-%03zu", (const char *)a[0], (*count)++);
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
  if (fd < 0) return;
  if (write(fd, data, len) != (ssize_t)len) perror("api_fuzz: write seed");
  close(fd);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  api_fuzz_protojson();
  /* The seed objects selectors are matched against, decoded once up front
   * rather than inside the first input that needs them. */
  size_t nk, nobjs;
  api_fuzz_objects(&api_kinds(&nk)[0], &nobjs);
  const char *t = getenv("KEEL_API_FUZZ_TOLERATE");
  snprintf(g_tolerate, sizeof g_tolerate, "%s", t ? t : "");
  atexit(print_counts);
  const char *dir = getenv("KEEL_API_FUZZ_SEEDS");
  if (dir && *dir) {
    size_t count = 0;
    void *arg[2] = {(void *)dir, &count};
    api_fuzz_seeds(write_seed, arg);
  }
  return 0;
}

/* ---------------------------------------------------------------- helpers */

/* The wire encoding of m (malloc'ed, *n set). */
static uint8_t *packed(const ProtobufCMessage *m, size_t *n) {
  *n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(*n ? *n : 1);
  if (!b) abort();
  if (protobuf_c_message_pack(m, b) != *n) violation("pack-size", "%s", m->descriptor->name);
  return b;
}

static bool same_encoding(const ProtobufCMessage *a, const uint8_t *b, size_t nb) {
  size_t na;
  uint8_t *pa = packed(a, &na);
  bool same = na == nb && memcmp(pa, b, na) == 0;
  free(pa);
  return same;
}

static void free_msg(ProtobufCMessage *m) {
  if (m) protobuf_c_message_free_unpacked(m, NULL);
}

/* ---------------------------------------------------------------- objects */

/* api_validate, checked: the answer's shape and that nothing changed. */
static int validate(const api_kind *k, const ProtobufCMessage *obj, const ProtobufCMessage *old,
                    const char *sub) {
  size_t nobj, nold = 0;
  uint8_t *bobj = packed(obj, &nobj), *bold = old ? packed(old, &nold) : NULL;
  keel_error err = {0};
  int rc = api_validate(k, obj, old, sub, &err);
  if (rc != 0 && rc != -EINVAL)
    violation("validate-bad-return", "%s %s: api_validate returned %d (%s)", k->kind, sub ? sub : "", rc,
              err.message);
  if (rc == -EINVAL && (err.code != EINVAL || !err.message[0]))
    violation("validate-bad-return", "%s %s: -EINVAL with code %d and message \"%s\"", k->kind,
              sub ? sub : "", err.code, err.message);
  if (!same_encoding(obj, bobj, nobj) || (old && !same_encoding(old, bold, nold)))
    violation("validate-changed-object", "%s %s: api_validate changed its input", k->kind, sub ? sub : "");
  free(bobj);
  free(bold);
  return rc;
}

/* to_json -> from_json -> to_json (and through text) is stable; returns the
 * copy read back from JSON (NULL when m has no JSON form). */
static ProtobufCMessage *json_roundtrip(const api_kind *k, const ProtobufCMessage *m) {
  const protojson *pj = api_fuzz_protojson();
  keel_error err = {0};
  json_t *j1 = protojson_to_json(pj, m, &err);
  if (!j1) {
    if (err.code != EINVAL || !err.message[0])
      violation("json-encode-error", "%s: to_json failed with code %d: %s", k->kind, err.code, err.message);
    return NULL;
  }
  ProtobufCMessage *m2 = protojson_from_json(pj, k->object, j1, &err);
  if (!m2) violation("json-own-output-refused", "%s: from_json(to_json(m)): %s", k->kind, err.message);
  char *text = json_dumps(j1, JSON_COMPACT);
  if (!text) abort();
  ProtobufCMessage *m3 = m2 ? protojson_from_string(pj, k->object, text, strlen(text), &err) : NULL;
  if (m2 && !m3)
    violation("json-own-output-refused", "%s: from_string(%.1500s): %s", k->kind, text, err.message);
  json_t *j2 = m2 ? protojson_to_json(pj, m2, &err) : NULL;
  json_t *j3 = m3 ? protojson_to_json(pj, m3, &err) : NULL;
  if ((m2 && !j2) || (m3 && !j3))
    violation("json-unstable", "%s: JSON read back does not encode: %s", k->kind, err.message);
  if ((j2 && !json_equal(j1, j2)) || (j3 && !json_equal(j1, j3))) {
    char *t2 = json_dumps(j2 ? j2 : j3, JSON_COMPACT);
    violation("json-unstable", "%s: %.1000s became %.1000s", k->kind, text, t2 ? t2 : "?");
    free(t2);
  }
  json_decref(j3);
  json_decref(j2);
  json_decref(j1);
  free(text);
  free_msg(m3);
  return m2;
}

/* protobuf-c keeps every entry of a map field as it came on the wire; proto3
 * says the last one wins, and so does protojson (and kubectl's view), while
 * label selectors take the first. True (and *where set) when m has a map
 * with a key twice. Map entries are the nested "...Entry" messages with
 * fields key and value. */
static bool is_map_entry(const ProtobufCMessageDescriptor *d) {
  size_t n = strlen(d->name);
  return n > 5 && strcmp(d->name + n - 5, "Entry") == 0 && d->n_fields == 2 &&
         strcmp(d->fields[0].name, "key") == 0 && strcmp(d->fields[1].name, "value") == 0 &&
         d->fields[0].type == PROTOBUF_C_TYPE_STRING;
}

static bool duplicate_map_key(const ProtobufCMessage *m, const char **where, int depth) {
  if (!m || depth > 64) return false;
  const ProtobufCMessageDescriptor *d = m->descriptor;
  for (unsigned i = 0; i < d->n_fields; i++) {
    const ProtobufCFieldDescriptor *f = &d->fields[i];
    if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
    const char *slot = (const char *)m + f->offset;
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
      if (duplicate_map_key(*(ProtobufCMessage *const *)slot, where, depth + 1)) return true;
      continue;
    }
    size_t n = *(const size_t *)((const char *)m + f->quantifier_offset);
    ProtobufCMessage *const *items = *(ProtobufCMessage *const *const *)slot;
    const ProtobufCMessageDescriptor *ed = f->descriptor;
    bool map = is_map_entry(ed);
    for (size_t a = 0; a < n; a++) {
      if (!map) {
        if (duplicate_map_key(items[a], where, depth + 1)) return true;
        continue;
      }
      const char *ka = *(char *const *)((const char *)items[a] + ed->fields[0].offset);
      for (size_t b = a + 1; b < n; b++) {
        const char *kb = *(char *const *)((const char *)items[b] + ed->fields[0].offset);
        if (strcmp(ka, kb) == 0) {
          *where = f->name;
          return true;
        }
      }
      const ProtobufCFieldDescriptor *vf = &ed->fields[1];
      if (vf->type == PROTOBUF_C_TYPE_MESSAGE &&
          duplicate_map_key(*(ProtobufCMessage *const *)((const char *)items[a] + vf->offset), where,
                            depth + 1))
        return true;
    }
  }
  return false;
}

/* Every field List/Watch may select on reads as text, as the apiserver's
 * field matcher needs. */
static void check_selectable_fields(const api_kind *k, const ProtobufCMessage *obj) {
  static const char *const common[] = {"metadata.name", "metadata.namespace"};
  char buf[256];
  for (size_t i = 0; i < 2; i++)
    if (api_kind_field_selectable(k, common[i]) && !api_object_field_text(k, obj, common[i], buf, sizeof buf))
      violation("selectable-field-unreadable", "%s: %s", k->kind, common[i]);
  for (const char *const *f = k->selectable_fields; f && *f; f++)
    if (!api_object_field_text(k, obj, *f, buf, sizeof buf))
      violation("selectable-field-unreadable", "%s: %s", k->kind, *f);
}

/* What Create, Update, UpdateStatus and Bind do with an object decoded from
 * b[0..n) and the stored one decoded from ob[0..on) (on == 0: none). */
static bool handle_object(const api_kind *k, const uint8_t *b, size_t n, const uint8_t *ob, size_t on) {
  ProtobufCMessage *obj = protobuf_c_message_unpack(k->object, NULL, n, b);
  if (!obj) return false;
  if (!protobuf_c_message_check(obj)) violation("message-check", "%s decoded but fails the check", k->kind);
  api_message_normalize(obj); /* as the server does with every request */
  ProtobufCMessage *old = on ? protobuf_c_message_unpack(k->object, NULL, on, ob) : NULL;
  /* Validation never sees undefaulted objects in the server, but must not
   * crash on them either. */
  validate(k, obj, NULL, NULL);

  ProtobufCMessage *d = protobuf_c_message_unpack(k->object, NULL, n, b);
  if (!d) abort(); /* it decoded a moment ago */
  api_message_normalize(d);
  api_default(k, d);
  size_t n1;
  uint8_t *b1 = packed(d, &n1);
  api_default(k, d);
  if (!same_encoding(d, b1, n1))
    violation("default-not-idempotent", "%s: defaulting twice differs from once", k->kind);

  int rc = validate(k, d, NULL, NULL);
  if (rc == 0)
    g_count.valid_create++;
  else
    g_count.invalid_create++;
  check_selectable_fields(k, d);
  const char *where = NULL;
  if (rc == 0 && duplicate_map_key(d, &where, 0))
    violation("duplicate-map-key-accepted", "%s: accepted for Create with a key twice in map %s", k->kind,
              where);

  /* What Create writes to the store (objstore_encode packs it as it is) must
   * decode when read back, and is defaulted again on its next update. */
  ProtobufCMessage *stored = rc == 0 ? protobuf_c_message_unpack(k->object, NULL, n1, b1) : NULL;
  if (rc == 0 && !stored)
    violation("stored-object-undecodable", "%s: accepted for Create, its %zu stored bytes do not decode",
              k->kind, n1);
  if (stored) {
    api_default(k, stored);
    if (!same_encoding(stored, b1, n1))
      violation("default-not-idempotent", "%s: defaulting the stored object again changed it", k->kind);
    free_msg(stored);
  }
  free(b1);

  /* Update, UpdateStatus (and Bind) against the stored object, or as a no-op
   * against itself. */
  ProtobufCMessage *o = on ? protobuf_c_message_unpack(k->object, NULL, on, ob) : NULL;
  if (o) api_default(k, o);
  const ProtobufCMessage *against = o ? o : d;
  int urc = validate(k, d, against, NULL);
  if (!o && rc == 0 && urc != 0) {
    keel_error err = {0};
    api_validate(k, d, d, NULL, &err);
    violation("noop-update-refused", "%s valid on create, refused as an update of itself: %s", k->kind,
              err.message);
  }
  validate(k, d, against, "status");
  if (k->subresources & API_SUB_BIND) validate(k, d, against, "binding");
  if (old) validate(k, obj, old, NULL); /* undefaulted, both */
  g_count.updates++;

  /* The REST gateway's view of both. */
  free_msg(json_roundtrip(k, obj));
  ProtobufCMessage *back = json_roundtrip(k, d);
  if (back && rc == 0) {
    keel_error err = {0};
    if (api_validate(k, back, NULL, NULL, &err) != 0)
      violation("valid-object-invalid-after-json", "%s: %s", k->kind, err.message);
  }
  free_msg(back);
  /* What the server does to every object it answers with or stores. */
  api_object_meta_ensure(k, d);
  api_object_set_type_meta(k, d);
  api_object_clear_type_meta(k, d);
  free_msg(o);
  free_msg(d);
  free_msg(old);
  free_msg(obj);
  return true;
}

static void path_protobuf(const api_kind *k, const uint8_t *p, size_t n) {
  size_t len = n;
  if (n >= 2) {
    size_t want = (size_t)p[0] | (size_t)p[1] << 8;
    p += 2;
    n -= 2;
    len = want <= n ? want : n;
  } else {
    p += n;
    n = 0;
    len = 0;
  }
  if (handle_object(k, p, len, p + len, n - len)) g_count.decoded[API_FUZZ_PATH_PROTOBUF]++;
}

static void path_json(const api_kind *k, const uint8_t *p, size_t n) {
  keel_error err = {0};
  ProtobufCMessage *obj = protojson_from_string(api_fuzz_protojson(), k->object, (const char *)p, n, &err);
  if (!obj) {
    g_count.json_refused++;
    if (err.code != EINVAL || !err.message[0])
      violation("json-refusal-without-einval", "%s: code %d, message \"%s\"", k->kind, err.code, err.message);
    return;
  }
  g_count.decoded[API_FUZZ_PATH_JSON]++;
  size_t len;
  uint8_t *b = packed(obj, &len);
  handle_object(k, b, len, NULL, 0);
  free(b);
  free_msg(obj);
}

/* ---------------------------------------------------------------- selectors */

typedef struct labels_view {
  const char **keys, **values;
  size_t n;
} labels_view;

static labels_view meta_labels(const api_kind *k, const ProtobufCMessage *obj) {
  labels_view v = {0};
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (!m || !m->n_labels) return v;
  v.keys = calloc(m->n_labels, sizeof *v.keys);
  v.values = calloc(m->n_labels, sizeof *v.values);
  if (!v.keys || !v.values) abort();
  for (size_t i = 0; i < m->n_labels; i++) {
    v.keys[i] = m->labels[i]->key;
    v.values[i] = m->labels[i]->value;
  }
  v.n = m->n_labels;
  return v;
}

/* A label set that satisfies the selector's first value of each requirement. */
static labels_view selector_labels(const labels_selector *sel) {
  labels_view v = {0};
  v.keys = calloc(sel->n_reqs + 1, sizeof *v.keys);
  v.values = calloc(sel->n_reqs + 1, sizeof *v.values);
  if (!v.keys || !v.values) abort();
  for (size_t i = 0; i < sel->n_reqs; i++) {
    const labels_requirement *r = &sel->reqs[i];
    if (r->op == LABELS_OP_DOES_NOT_EXIST) continue;
    v.keys[v.n] = r->key;
    v.values[v.n++] = r->n_values ? r->values[0] : "";
  }
  return v;
}

static void labels_view_free(labels_view *v) {
  free(v->keys);
  free(v->values);
}

/* The apiserver's getter (apiserver.c's get_label): the first entry wins. */
static const char *view_get(void *arg, const char *key) {
  const labels_view *v = arg;
  for (size_t i = 0; i < v->n; i++)
    if (strcmp(v->keys[i], key) == 0) return v->values[i];
  return NULL;
}

static void check_label_match(const labels_selector *sel, const labels_selector *canon, const char *text,
                              labels_view *v) {
  bool a = labels_selector_matches(sel, v->keys, v->values, v->n);
  bool b = labels_selector_matches_fn(sel, view_get, v);
  bool c = labels_selector_matches(canon, v->keys, v->values, v->n);
  /* Both matchers see the same label set only without duplicate keys. */
  bool unique = true;
  for (size_t i = 0; i < v->n && unique; i++)
    for (size_t j = i + 1; j < v->n && unique; j++) unique = strcmp(v->keys[i], v->keys[j]) != 0;
  if (unique && a != b) violation("selector-match-mismatch", "\"%s\": arrays %d, getter %d", text, a, b);
  if (a != c)
    violation("selector-canonical-changes-meaning", "\"%s\" matches %d, its canonical form %d", text, a, c);
  if (!a || !unique) return;
  for (size_t i = 0; i < sel->n_reqs; i++) {
    const char *want = labels_selector_requires_exact_match(sel, sel->reqs[i].key);
    const char *have = view_get(v, sel->reqs[i].key);
    if (want && (!have || strcmp(want, have) != 0))
      violation("exact-match-wrong", "\"%s\" requires %s=%s but matched %s", text, sel->reqs[i].key, want,
                have ? have : "(absent)");
  }
}

/* Both selector kinds go through the same cycle: parse (a refusal is -EINVAL
 * or -ENOMEM with a message and no selector), print canonically, parse the
 * canonical text again and print it to the same text. */
typedef struct selector_api {
  const char *what; /* "labels" or "fields" */
  int (*parse)(const char *text, void **out, keel_error *err);
  char *(*print)(const void *sel);
  void (*release)(void *sel);
} selector_api;

static int labels_parse(const char *text, void **out, keel_error *err) {
  labels_selector *sel = (labels_selector *)1; /* must be NULL after a refusal */
  int rc = labels_selector_parse(text, &sel, err);
  *out = sel;
  return rc;
}
static char *labels_print(const void *sel) { return labels_selector_string(sel); }
static void labels_release(void *sel) { labels_selector_free(sel); }
static const selector_api labels_api = {"labels", labels_parse, labels_print, labels_release};

static int fields_parse(const char *text, void **out, keel_error *err) {
  fields_selector *sel = (fields_selector *)1;
  int rc = fields_selector_parse(text, &sel, err);
  *out = sel;
  return rc;
}
static char *fields_print(const void *sel) { return fields_selector_string(sel); }
static void fields_release(void *sel) { fields_selector_free(sel); }
static const selector_api fields_api = {"fields", fields_parse, fields_print, fields_release};

typedef struct parsed {
  void *sel, *again; /* the selector and its canonical text parsed again (NULL when refused) */
  char *canon;
} parsed;

/* false when text is refused (sel NULL); free with parsed_free either way. */
static bool parse_checked(const selector_api *api, const char *text, parsed *p) {
  keel_error err = {0};
  *p = (parsed){0};
  int rc = api->parse(text, &p->sel, &err);
  if (rc < 0) {
    g_count.selectors_refused++;
    if ((rc != -EINVAL && rc != -ENOMEM) || p->sel || !err.message[0])
      violation("selector-bad-refusal", "%s \"%.200s\": rc %d, selector %p, \"%s\"", api->what, text, rc,
                p->sel, err.message);
    p->sel = NULL;
    return false;
  }
  g_count.selectors_parsed++;
  p->canon = api->print(p->sel);
  if (!p->canon) abort();
  if (api->parse(p->canon, &p->again, &err) < 0) {
    p->again = NULL;
    violation("selector-not-canonical", "%s \"%.200s\" prints as \"%.200s\", refused: %s", api->what, text,
              p->canon, err.message);
  }
  char *canon2 = p->again ? api->print(p->again) : NULL;
  if (p->again && (!canon2 || strcmp(p->canon, canon2) != 0))
    violation("selector-not-canonical", "%s \"%.200s\" -> \"%.200s\" -> \"%.200s\"", api->what, text,
              p->canon, canon2 ? canon2 : "?");
  free(canon2);
  return true;
}

static void parsed_free(const selector_api *api, parsed *p) {
  if (p->again) api->release(p->again);
  if (p->sel) api->release(p->sel);
  free(p->canon);
}

static void check_label_selector(const api_kind *k, const char *text) {
  parsed p;
  if (parse_checked(&labels_api, text, &p) && p.again) {
    const labels_selector *sel = p.sel, *again = p.again;
    size_t n;
    ProtobufCMessage *const *objs = api_fuzz_objects(k, &n);
    for (size_t i = 0; i < n; i++) {
      labels_view v = meta_labels(k, objs[i]);
      check_label_match(sel, again, text, &v);
      labels_view_free(&v);
    }
    labels_view v = selector_labels(sel);
    check_label_match(sel, again, text, &v);
    labels_view_free(&v);
    labels_view none = {0};
    check_label_match(sel, again, text, &none);
  }
  parsed_free(&labels_api, &p);
}

typedef struct field_ctx {
  const api_kind *k;
  const ProtobufCMessage *obj;
  char buf[256];
} field_ctx;

/* The apiserver's getter (apiserver.c's get_field). */
static const char *field_get(void *arg, const char *field) {
  field_ctx *c = arg;
  return api_object_field_text(c->k, c->obj, field, c->buf, sizeof c->buf);
}

static void check_field_selector(const api_kind *k, const char *text) {
  parsed p;
  if (!parse_checked(&fields_api, text, &p)) return;
  const fields_selector *sel = p.sel, *again = p.again;
  keel_error err = {0};

  /* What List and Watch accept: every field selectable for the kind. */
  const char *allowed[16];
  size_t n_allowed = 0;
  allowed[n_allowed++] = "metadata.name";
  if (k->namespaced) allowed[n_allowed++] = "metadata.namespace";
  for (const char *const *f = k->selectable_fields; f && *f && n_allowed < 16; f++) allowed[n_allowed++] = *f;
  bool selectable = true;
  for (size_t i = 0; i < sel->n_reqs; i++)
    selectable = selectable && api_kind_field_selectable(k, sel->reqs[i].field);
  int vrc = fields_selector_validate(sel, allowed, n_allowed, NULL);
  if ((vrc == 0) != selectable)
    violation("field-selectable-mismatch", "%s \"%.200s\": validate %d, api_kind_field_selectable %d",
              k->kind, text, vrc, selectable);

  size_t n;
  ProtobufCMessage *const *objs = api_fuzz_objects(k, &n);
  for (size_t i = 0; i < n; i++) {
    field_ctx c = {.k = k, .obj = objs[i]};
    int m = fields_selector_matches(sel, field_get, &c, &err);
    if (m != 0 && m != 1 && m != -EINVAL) violation("selector-bad-refusal", "fields match returned %d", m);
    if (selectable && m < 0)
      violation("selectable-field-unreadable", "%s \"%.200s\": %s", k->kind, text, err.message);
    if (again) {
      field_ctx c2 = {.k = k, .obj = objs[i]};
      int m2 = fields_selector_matches(again, field_get, &c2, NULL);
      if (m2 != m)
        violation("selector-canonical-changes-meaning", "fields \"%.200s\" matches %d, \"%.200s\" %d", text,
                  m, p.canon, m2);
    }
    if (m != 1) continue;
    for (size_t r = 0; r < sel->n_reqs; r++) {
      const char *want = fields_selector_requires_exact_match(sel, sel->reqs[r].field);
      const char *have = field_get(&c, sel->reqs[r].field);
      if (want && (!have || strcmp(want, have) != 0))
        violation("exact-match-wrong", "fields \"%.200s\" requires %s=%s, matched \"%s\"", text,
                  sel->reqs[r].field, want, have ? have : "(none)");
    }
  }
  parsed_free(&fields_api, &p);
}

/* ---------------------------------------------------------------- requests */

/* The name rules a request's namespace and name go through. */
static void check_names(const api_kind *k, const char *ns, const char *name) {
  validation_errors errs = VALIDATION_ERRORS_INIT;
  if (k->namespaced && ns && *ns) validation_dns1123_label(&errs, "metadata.namespace", ns);
  if (name && *name) validation_dns1123_subdomain(&errs, "metadata.name", name);
  keel_error err = {0};
  int rc = validation_errors_to_error(&errs, &err);
  if ((rc == 0) != (validation_errors_count(&errs) == 0) || (rc < 0 && !err.message[0]))
    violation("validate-bad-return", "name rules: rc %d with %zu errors", rc, validation_errors_count(&errs));
  validation_errors_free(&errs);
}

/* What List and Watch do before they read: the namespace, then the selectors
 * as the server's selectors_parse takes them. */
static void check_list_or_watch(const api_kind *k, const char *ns, const char *labels, const char *fields) {
  check_names(k, ns, NULL);
  check_label_selector(k, labels);
  check_field_selector(k, fields);
}

static const ProtobufCMessageDescriptor *const request_types[API_FUZZ_NREQ] = {
    &keel__api__v1__get_request__descriptor,   &keel__api__v1__list_request__descriptor,
    &keel__api__v1__watch_request__descriptor, &keel__api__v1__delete_request__descriptor,
    &keel__api__v1__scale__descriptor,
};

static void path_request(const api_kind *k, const uint8_t *p, size_t n) {
  if (n < 1) return;
  unsigned t = p[0] % API_FUZZ_NREQ;
  g_count.requests[t]++;
  ProtobufCMessage *m = protobuf_c_message_unpack(request_types[t], NULL, n - 1, p + 1);
  if (!m) return;
  g_count.decoded[API_FUZZ_PATH_REQUEST]++;
  g_count.requests_decoded[t]++;
  if (!protobuf_c_message_check(m)) violation("message-check", "%s fails the check", request_types[t]->name);
  switch (t) {
    case API_FUZZ_REQ_GET: {
      const Keel__Api__V1__GetRequest *r = (const Keel__Api__V1__GetRequest *)m;
      check_names(k, r->namespace_, r->name);
      break;
    }
    case API_FUZZ_REQ_LIST: {
      const Keel__Api__V1__ListRequest *r = (const Keel__Api__V1__ListRequest *)m;
      check_list_or_watch(k, r->namespace_, r->label_selector, r->field_selector);
      break;
    }
    case API_FUZZ_REQ_WATCH: {
      const Keel__Api__V1__WatchRequest *r = (const Keel__Api__V1__WatchRequest *)m;
      check_list_or_watch(k, r->namespace_, r->label_selector, r->field_selector);
      break;
    }
    case API_FUZZ_REQ_DELETE: {
      const Keel__Api__V1__DeleteRequest *r = (const Keel__Api__V1__DeleteRequest *)m;
      check_names(k, r->namespace_, r->name);
      break;
    }
    case API_FUZZ_REQ_SCALE: {
      const Keel__Api__V1__Scale *s = (const Keel__Api__V1__Scale *)m;
      keel_error err = {0};
      int rc = api_validate_scale((k->subresources & API_SUB_SCALE) ? k->kind : NULL, s, &err);
      if (rc != 0 && (rc != -EINVAL || !err.message[0]))
        violation("validate-bad-return", "api_validate_scale: %d \"%s\"", rc, err.message);
      if (s->metadata) check_names(k, s->metadata->namespace_, s->metadata->name);
      if (s->status) check_label_selector(k, s->status->selector);
      break;
    }
  }
  free_msg(m);
}

/* ---------------------------------------------------------------- entry */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1 || size > API_FUZZ_MAX_INPUT) return 0;
  api_fuzz_protojson();
  g_input = data;
  g_input_len = size;
  g_tolerated_hit = false;
  size_t nk;
  const api_kind *kinds = api_kinds(&nk);
  const api_kind *k = &kinds[(data[0] & 0x3f) % nk];
  unsigned path = data[0] >> 6;
  if (path == 3) path = API_FUZZ_PATH_PROTOBUF;
  g_count.inputs[path]++;
  switch (path) {
    case API_FUZZ_PATH_PROTOBUF:
      path_protobuf(k, data + 1, size - 1);
      break;
    case API_FUZZ_PATH_JSON:
      path_json(k, data + 1, size - 1);
      break;
    case API_FUZZ_PATH_REQUEST:
      path_request(k, data + 1, size - 1);
      break;
  }
  g_input = NULL;
  return 0;
}
