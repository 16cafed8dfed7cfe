/* common/rpc/descriptor_index_test.c — the descriptor index over the real
 * embedded sets (runtime: health + reflection; echo) and over sets built here
 * with protobuf-c, for what those lack: imports, nesting, extensions, scoping
 * conflicts and malformed input. */
#include "common/rpc/descriptor_index.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "google/protobuf/descriptor.pb-c.h"

extern const unsigned char keel_runtime_descriptor_set[];
extern const unsigned long keel_runtime_descriptor_set_len;
extern const unsigned char keel_echo_descriptor_set[];
extern const unsigned long keel_echo_descriptor_set_len;

/* ------------------------------------------------------------ builders */

/* Every allocation a test makes to build descriptors; freed in teardown. */
static void **pool;
static size_t npool, pool_cap;

static void *palloc(size_t n) {
  void *p = calloc(1, n ? n : 1);
  assert_non_null(p);
  if (npool == pool_cap) {
    pool_cap = pool_cap ? pool_cap * 2 : 256;
    pool = realloc(pool, pool_cap * sizeof(*pool));
    assert_non_null(pool);
  }
  pool[npool++] = p;
  return p;
}

static int pool_teardown(void **state) {
  (void)state;
  for (size_t i = 0; i < npool; i++) free(pool[i]);
  free(pool);
  pool = NULL;
  npool = pool_cap = 0;
  return 0;
}

/* Appends item to a pool-allocated pointer array. */
static void push(void *arrp, size_t *n, void *item) {
  void ***arr = arrp;
  void **a = palloc((*n + 1) * sizeof(void *));
  if (*n) memcpy(a, *arr, *n * sizeof(void *));
  a[(*n)++] = item;
  *arr = a;
}

typedef Google__Protobuf__FileDescriptorProto FileProto;
typedef Google__Protobuf__DescriptorProto MsgProto;
typedef Google__Protobuf__EnumDescriptorProto EnumProto;
typedef Google__Protobuf__FieldDescriptorProto FieldProto;

static FileProto *mk_file(const char *name, const char *pkg) {
  FileProto *f = palloc(sizeof(*f));
  google__protobuf__file_descriptor_proto__init(f);
  f->name = (char *)name;
  f->package = (char *)pkg;
  return f;
}

static void add_dep(FileProto *f, const char *dep) {
  push(&f->dependency, &f->n_dependency, (void *)dep);
}

static MsgProto *mk_msg(const char *name) {
  MsgProto *m = palloc(sizeof(*m));
  google__protobuf__descriptor_proto__init(m);
  m->name = (char *)name;
  return m;
}

static FieldProto *mk_field(const char *name, int32_t number) {
  FieldProto *fp = palloc(sizeof(*fp));
  google__protobuf__field_descriptor_proto__init(fp);
  fp->name = (char *)name;
  fp->has_number = 1;
  fp->number = number;
  return fp;
}

static FieldProto *mk_ext(const char *name, const char *extendee, int32_t number) {
  FieldProto *fp = mk_field(name, number);
  fp->extendee = (char *)extendee;
  return fp;
}

static void msg_add_field(MsgProto *m, const char *name, int32_t number) {
  push(&m->field, &m->n_field, mk_field(name, number));
}

static void msg_add_oneof(MsgProto *m, const char *name) {
  Google__Protobuf__OneofDescriptorProto *o = palloc(sizeof(*o));
  google__protobuf__oneof_descriptor_proto__init(o);
  o->name = (char *)name;
  push(&m->oneof_decl, &m->n_oneof_decl, o);
}

/* mk_enum("Color", "RED", "GREEN", NULL) */
static EnumProto *mk_enum(const char *name, ...) {
  EnumProto *e = palloc(sizeof(*e));
  google__protobuf__enum_descriptor_proto__init(e);
  e->name = (char *)name;
  va_list ap;
  va_start(ap, name);
  for (const char *v; (v = va_arg(ap, const char *));) {
    Google__Protobuf__EnumValueDescriptorProto *ev = palloc(sizeof(*ev));
    google__protobuf__enum_value_descriptor_proto__init(ev);
    ev->name = (char *)v;
    ev->has_number = 1;
    ev->number = (int32_t)e->n_value;
    push(&e->value, &e->n_value, ev);
  }
  va_end(ap);
  return e;
}

static Google__Protobuf__ServiceDescriptorProto *mk_service(FileProto *f, const char *name) {
  Google__Protobuf__ServiceDescriptorProto *s = palloc(sizeof(*s));
  google__protobuf__service_descriptor_proto__init(s);
  s->name = (char *)name;
  push(&f->service, &f->n_service, s);
  return s;
}

static void svc_add_method(Google__Protobuf__ServiceDescriptorProto *s, const char *name,
                           int client_streaming, int server_streaming) {
  Google__Protobuf__MethodDescriptorProto *m = palloc(sizeof(*m));
  google__protobuf__method_descriptor_proto__init(m);
  m->name = (char *)name;
  m->input_type = ".google.protobuf.Empty";
  m->output_type = ".google.protobuf.Empty";
  m->has_client_streaming = m->has_server_streaming = 1;
  m->client_streaming = client_streaming;
  m->server_streaming = server_streaming;
  push(&s->method, &s->n_method, m);
}

/* A serialized FileDescriptorSet of the files (NULL-terminated list). */
static uint8_t *pack_set(size_t *len, ...) {
  Google__Protobuf__FileDescriptorSet set = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  va_list ap;
  va_start(ap, len);
  for (FileProto *f; (f = va_arg(ap, FileProto *));) push(&set.file, &set.n_file, f);
  va_end(ap);
  *len = google__protobuf__file_descriptor_set__get_packed_size(&set);
  uint8_t *buf = palloc(*len);
  assert_int_equal(google__protobuf__file_descriptor_set__pack(&set, buf), *len);
  return buf;
}

static descriptor_index *index_of(const void *set, size_t len) {
  descriptor_index *ix = descriptor_index_create();
  assert_non_null(ix);
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, set, len, &err), 0);
  return ix;
}

static descriptor_index *runtime_index(void) {
  return index_of(keel_runtime_descriptor_set, keel_runtime_descriptor_set_len);
}

static int file_of(const descriptor_index *ix, const char *sym, desc_symbol_kind want) {
  desc_symbol_kind kind = 0;
  int f = descriptor_index_find_symbol(ix, sym, &kind);
  if (f >= 0 && kind != want) fail_msg("%s: kind %d, want %d", sym, kind, want);
  return f;
}

static const char *file_name_of(const descriptor_index *ix, const char *sym,
                                desc_symbol_kind want) {
  int f = file_of(ix, sym, want);
  if (f < 0) fail_msg("symbol %s not found", sym);
  return descriptor_index_file_name(ix, (size_t)f);
}

/* ------------------------------------------------------------ real sets */

#define HEALTH "grpc/health/v1/health.proto"
#define REFL_V1 "grpc/reflection/v1/reflection.proto"
#define REFL_V1A "grpc/reflection/v1alpha/reflection.proto"

static void test_runtime_files(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  assert_int_equal(descriptor_index_file_count(ix), 3);
  assert_string_equal(descriptor_index_file_name(ix, 0), HEALTH);
  assert_string_equal(descriptor_index_file_name(ix, 1), REFL_V1);
  assert_string_equal(descriptor_index_file_name(ix, 2), REFL_V1A);
  assert_null(descriptor_index_file_name(ix, 3));
  assert_int_equal(descriptor_index_find_file(ix, HEALTH), 0);
  assert_int_equal(descriptor_index_find_file(ix, REFL_V1A), 2);
  assert_int_equal(descriptor_index_find_file(ix, "grpc/health/v1/health"), -1);
  assert_int_equal(descriptor_index_find_file(ix, ""), -1);
  assert_int_equal(descriptor_index_find_file(ix, NULL), -1);
  descriptor_index_destroy(ix);
}

/* The kept bytes are the set's own: re-wrapping them as field 1 rebuilds the
 * set byte for byte (protoc writes nothing else into a set). */
static void test_runtime_bytes_are_original(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  uint8_t *rebuilt = malloc(keel_runtime_descriptor_set_len + 64);
  size_t n = 0;
  for (size_t i = 0; i < descriptor_index_file_count(ix); i++) {
    const uint8_t *data;
    size_t len;
    descriptor_index_file_bytes(ix, i, &data, &len);
    assert_non_null(data);
    FileProto *fd = google__protobuf__file_descriptor_proto__unpack(NULL, len, data);
    assert_non_null(fd);
    assert_string_equal(fd->name, descriptor_index_file_name(ix, i));
    google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
    rebuilt[n++] = 0x0a;
    for (size_t v = len; v >= 0x80; v >>= 7) rebuilt[n++] = (uint8_t)(v | 0x80);
    for (size_t v = len;; v >>= 7)
      if (v < 0x80) {
        rebuilt[n++] = (uint8_t)v;
        break;
      }
    memcpy(rebuilt + n, data, len);
    n += len;
  }
  assert_int_equal(n, keel_runtime_descriptor_set_len);
  assert_memory_equal(rebuilt, keel_runtime_descriptor_set, n);
  free(rebuilt);
  const uint8_t *data = (const uint8_t *)"x";
  size_t len = 7;
  descriptor_index_file_bytes(ix, 99, &data, &len);
  assert_null(data);
  assert_int_equal(len, 0);
  descriptor_index_destroy(ix);
}

static void test_runtime_symbols(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  assert_string_equal(file_name_of(ix, "grpc.health.v1.Health", DESC_SYMBOL_SERVICE), HEALTH);
  assert_string_equal(file_name_of(ix, "grpc.health.v1.Health.Check", DESC_SYMBOL_METHOD), HEALTH);
  assert_string_equal(file_name_of(ix, "grpc.health.v1.Health.Watch", DESC_SYMBOL_METHOD), HEALTH);
  assert_string_equal(file_name_of(ix, "grpc.health.v1.HealthCheckRequest", DESC_SYMBOL_MESSAGE),
                      HEALTH);
  assert_string_equal(
      file_name_of(ix, "grpc.health.v1.HealthCheckRequest.service", DESC_SYMBOL_FIELD), HEALTH);
  assert_string_equal(
      file_name_of(ix, "grpc.health.v1.HealthCheckResponse.ServingStatus", DESC_SYMBOL_ENUM),
      HEALTH);
  /* Enum values are siblings of their enum (here: inside the message)... */
  assert_string_equal(
      file_name_of(ix, "grpc.health.v1.HealthCheckResponse.SERVING", DESC_SYMBOL_ENUM_VALUE),
      HEALTH);
  assert_string_equal(file_name_of(ix, "grpc.health.v1.HealthCheckResponse.SERVICE_UNKNOWN",
                                   DESC_SYMBOL_ENUM_VALUE),
                      HEALTH);
  /* ...and found under the enum too, leniently. */
  assert_string_equal(file_name_of(ix, "grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING",
                                   DESC_SYMBOL_ENUM_VALUE),
                      HEALTH);
  /* A leading dot is accepted. */
  assert_string_equal(file_name_of(ix, ".grpc.health.v1.Health", DESC_SYMBOL_SERVICE), HEALTH);

  assert_string_equal(
      file_name_of(ix, "grpc.reflection.v1alpha.ServerReflection", DESC_SYMBOL_SERVICE), REFL_V1A);
  assert_string_equal(file_name_of(ix, "grpc.reflection.v1.ServerReflection.ServerReflectionInfo",
                                   DESC_SYMBOL_METHOD),
                      REFL_V1);
  assert_string_equal(
      file_name_of(ix, "grpc.reflection.v1alpha.ServerReflectionRequest.message_request",
                   DESC_SYMBOL_ONEOF),
      REFL_V1A);
  assert_string_equal(
      file_name_of(ix, "grpc.reflection.v1alpha.ServerReflectionRequest.list_services",
                   DESC_SYMBOL_FIELD),
      REFL_V1A);
  assert_string_equal(
      file_name_of(ix, "grpc.reflection.v1.ExtensionNumberResponse", DESC_SYMBOL_MESSAGE), REFL_V1);

  /* Not symbols: packages, prefixes, typos, empty. */
  const char *absent[] = {"grpc",
                          "grpc.health.v1",
                          "grpc.health.v1.",
                          "grpc.health.v1.Health.",
                          "grpc.health.v1.health",
                          "grpc.health.v1.Health.Check.x",
                          "grpc.health.v1.Health/Check",
                          "Health",
                          "..grpc.health.v1.Health",
                          "",
                          "."};
  for (size_t i = 0; i < sizeof(absent) / sizeof(*absent); i++) {
    desc_symbol_kind kind = 42;
    if (descriptor_index_find_symbol(ix, absent[i], &kind) != -1) fail_msg("found %s", absent[i]);
    assert_int_equal(kind, 42);
  }
  assert_int_equal(descriptor_index_find_symbol(ix, NULL, NULL), -1);
  assert_int_equal(descriptor_index_find_symbol(ix, "grpc.health.v1.Health", NULL), 0);
  descriptor_index_destroy(ix);
}

static void test_runtime_services_and_kinds(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  assert_int_equal(descriptor_index_service_count(ix), 3);
  assert_string_equal(descriptor_index_service_name(ix, 0), "grpc.health.v1.Health");
  assert_string_equal(descriptor_index_service_name(ix, 1), "grpc.reflection.v1.ServerReflection");
  assert_string_equal(descriptor_index_service_name(ix, 2),
                      "grpc.reflection.v1alpha.ServerReflection");
  assert_null(descriptor_index_service_name(ix, 3));
  assert_int_equal(descriptor_index_method_kind(ix, "/grpc.health.v1.Health/Check"), 0);
  assert_int_equal(descriptor_index_method_kind(ix, "/grpc.health.v1.Health/Watch"), 1);
  assert_int_equal(descriptor_index_method_kind(
                       ix, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"),
                   3);
  assert_int_equal(
      descriptor_index_method_kind(ix, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"),
      3);
  descriptor_index_destroy(ix);
}

static void test_echo_kinds(void **state) {
  (void)state;
  descriptor_index *ix = index_of(keel_echo_descriptor_set, keel_echo_descriptor_set_len);
  assert_int_equal(descriptor_index_file_count(ix), 1);
  assert_string_equal(descriptor_index_file_name(ix, 0), "keel/echo/v1/echo.proto");
  assert_int_equal(descriptor_index_service_count(ix), 1);
  assert_string_equal(descriptor_index_service_name(ix, 0), "keel.echo.v1.Echo");
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Echo"), 0);
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Expand"), 1);
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Collect"), 2);
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Chat"), 3);
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Stats"), 0);
  const char *bad[] = {"keel.echo.v1.Echo/Echo",
                       "/keel.echo.v1.Echo/",
                       "//Echo",
                       "/keel.echo.v1.Echo/Echo/",
                       "/keel.echo.v1.Echo/Echo/x",
                       "/keel.echo.v1.Echo.Echo",
                       "/keel.echo.v1.Echo/Nope",
                       "/keel.echo.v1/EchoRequest",
                       "/keel.echo.v1.EchoRequest/message",
                       "/",
                       "",
                       "/keel.echo.v1.Echo"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
    if (descriptor_index_method_kind(ix, bad[i]) != -1) fail_msg("kind for %s", bad[i]);
  assert_int_equal(descriptor_index_method_kind(ix, NULL), -1);
  assert_string_equal(file_name_of(ix, "keel.echo.v1.ExpandRequest.interval_ms", DESC_SYMBOL_FIELD),
                      "keel/echo/v1/echo.proto");
  int closure[1];
  assert_int_equal(descriptor_index_file_closure(ix, 0, closure), 1);
  assert_int_equal(closure[0], 0);
  descriptor_index_destroy(ix);
}

static void test_several_sets_dedupe(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  keel_error err = {0};
  assert_int_equal(
      descriptor_index_add_set(ix, keel_echo_descriptor_set, keel_echo_descriptor_set_len, &err),
      0);
  /* The same sets again change nothing. */
  assert_int_equal(descriptor_index_add_set(ix, keel_runtime_descriptor_set,
                                            keel_runtime_descriptor_set_len, &err),
                   0);
  assert_int_equal(
      descriptor_index_add_set(ix, keel_echo_descriptor_set, keel_echo_descriptor_set_len, &err),
      0);
  assert_int_equal(descriptor_index_file_count(ix), 4);
  assert_int_equal(descriptor_index_service_count(ix), 4);
  assert_string_equal(descriptor_index_service_name(ix, 3), "keel.echo.v1.Echo");
  assert_int_equal(file_of(ix, "keel.echo.v1.Echo", DESC_SYMBOL_SERVICE), 3);
  assert_int_equal(file_of(ix, "grpc.health.v1.Health", DESC_SYMBOL_SERVICE), 0);
  assert_int_equal(descriptor_index_method_kind(ix, "/keel.echo.v1.Echo/Chat"), 3);
  assert_int_equal(descriptor_index_method_kind(ix, "/grpc.health.v1.Health/Watch"), 1);
  descriptor_index_destroy(ix);
}

/* ------------------------------------------------------------ built sets */

/* First wins: for files with the same name, and for a symbol two files define. */
static void test_first_wins(void **state) {
  (void)state;
  FileProto *a1 = mk_file("a.proto", "pkg");
  push(&a1->message_type, &a1->n_message_type, mk_msg("X"));
  FileProto *a2 = mk_file("a.proto", "pkg");
  push(&a2->message_type, &a2->n_message_type, mk_msg("Y"));
  FileProto *b = mk_file("b.proto", "pkg");
  push(&b->message_type, &b->n_message_type, mk_msg("X"));
  push(&b->message_type, &b->n_message_type, mk_msg("Z"));
  size_t l1, l2;
  uint8_t *s1 = pack_set(&l1, a1, NULL);
  uint8_t *s2 = pack_set(&l2, a2, b, a1, NULL);
  descriptor_index *ix = index_of(s1, l1);
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, s2, l2, &err), 0);
  assert_int_equal(descriptor_index_file_count(ix), 2);
  assert_int_equal(file_of(ix, "pkg.X", DESC_SYMBOL_MESSAGE), 0);
  assert_int_equal(file_of(ix, "pkg.Y", DESC_SYMBOL_MESSAGE), -1);
  assert_int_equal(file_of(ix, "pkg.Z", DESC_SYMBOL_MESSAGE), 1);
  /* The kept bytes are those of the first a.proto. */
  const uint8_t *data;
  size_t len;
  descriptor_index_file_bytes(ix, 0, &data, &len);
  FileProto *fd = google__protobuf__file_descriptor_proto__unpack(NULL, len, data);
  assert_non_null(fd);
  assert_int_equal(fd->n_message_type, 1);
  assert_string_equal(fd->message_type[0]->name, "X");
  google__protobuf__file_descriptor_proto__free_unpacked(fd, NULL);
  descriptor_index_destroy(ix);
}

static void test_nested_and_scoping(void **state) {
  (void)state;
  FileProto *f = mk_file("n.proto", "pkg.sub");
  MsgProto *outer = mk_msg("Outer");
  MsgProto *inner = mk_msg("Inner");
  MsgProto *deeper = mk_msg("Deeper");
  msg_add_field(deeper, "leaf", 1);
  push(&inner->nested_type, &inner->n_nested_type, deeper);
  push(&inner->enum_type, &inner->n_enum_type, mk_enum("Mode", "FAST", "SLOW", NULL));
  push(&outer->nested_type, &outer->n_nested_type, inner);
  MsgProto *entry = mk_msg("LabelsEntry");
  msg_add_field(entry, "key", 1);
  msg_add_field(entry, "value", 2);
  push(&outer->nested_type, &outer->n_nested_type, entry);
  msg_add_field(outer, "labels", 1);
  msg_add_field(outer, "name", 2);
  msg_add_oneof(outer, "choice");
  push(&outer->enum_type, &outer->n_enum_type, mk_enum("Color", "RED", "BLUE", NULL));
  push(&f->message_type, &f->n_message_type, outer);
  push(&f->enum_type, &f->n_enum_type, mk_enum("Shade", "SHADE_UNSPECIFIED", "DARK", NULL));
  /* Declarations without a name are skipped, not fatal. */
  push(&f->message_type, &f->n_message_type, mk_msg(NULL));
  push(&f->message_type, &f->n_message_type, mk_msg(""));
  msg_add_field(outer, NULL, 9);
  size_t len;
  uint8_t *set = pack_set(&len, f, NULL);
  descriptor_index *ix = index_of(set, len);

  struct {
    const char *name;
    desc_symbol_kind kind;
  } present[] = {
      {"pkg.sub.Outer", DESC_SYMBOL_MESSAGE},
      {"pkg.sub.Outer.Inner", DESC_SYMBOL_MESSAGE},
      {"pkg.sub.Outer.Inner.Deeper", DESC_SYMBOL_MESSAGE},
      {"pkg.sub.Outer.Inner.Deeper.leaf", DESC_SYMBOL_FIELD},
      {"pkg.sub.Outer.Inner.Mode", DESC_SYMBOL_ENUM},
      {"pkg.sub.Outer.Inner.FAST", DESC_SYMBOL_ENUM_VALUE},
      {"pkg.sub.Outer.Inner.Mode.SLOW", DESC_SYMBOL_ENUM_VALUE},
      {"pkg.sub.Outer.LabelsEntry", DESC_SYMBOL_MESSAGE},
      {"pkg.sub.Outer.LabelsEntry.value", DESC_SYMBOL_FIELD},
      {"pkg.sub.Outer.labels", DESC_SYMBOL_FIELD},
      {"pkg.sub.Outer.name", DESC_SYMBOL_FIELD},
      {"pkg.sub.Outer.choice", DESC_SYMBOL_ONEOF},
      {"pkg.sub.Outer.Color", DESC_SYMBOL_ENUM},
      {"pkg.sub.Outer.RED", DESC_SYMBOL_ENUM_VALUE},
      {"pkg.sub.Outer.Color.BLUE", DESC_SYMBOL_ENUM_VALUE},
      {"pkg.sub.Shade", DESC_SYMBOL_ENUM},
      {"pkg.sub.DARK", DESC_SYMBOL_ENUM_VALUE},
      {"pkg.sub.Shade.DARK", DESC_SYMBOL_ENUM_VALUE},
      {".pkg.sub.Shade.DARK", DESC_SYMBOL_ENUM_VALUE},
  };
  for (size_t i = 0; i < sizeof(present) / sizeof(*present); i++)
    assert_string_equal(file_name_of(ix, present[i].name, present[i].kind), "n.proto");
  const char *absent[] = {"pkg.sub.Inner",      "pkg.sub.Deeper",       "pkg.sub.RED",
                          "pkg.sub.Outer.FAST", "pkg.sub.Outer.Deeper", "pkg.DARK",
                          "pkg.sub.Outer.",     "pkg.sub.Color.RED",    "pkg.sub."};
  for (size_t i = 0; i < sizeof(absent) / sizeof(*absent); i++)
    if (descriptor_index_find_symbol(ix, absent[i], NULL) != -1) fail_msg("found %s", absent[i]);
  assert_int_equal(descriptor_index_service_count(ix), 0);
  descriptor_index_destroy(ix);
}

/* A file without a package declares names at the root. */
static void test_no_package(void **state) {
  (void)state;
  FileProto *f = mk_file("root.proto", NULL);
  MsgProto *m = mk_msg("Top");
  msg_add_field(m, "f", 1);
  push(&f->message_type, &f->n_message_type, m);
  push(&f->enum_type, &f->n_enum_type, mk_enum("E", "V", NULL));
  Google__Protobuf__ServiceDescriptorProto *s = mk_service(f, "Svc");
  svc_add_method(s, "Up", 1, 0);
  size_t len;
  uint8_t *set = pack_set(&len, f, NULL);
  descriptor_index *ix = index_of(set, len);
  assert_int_equal(file_of(ix, "Top", DESC_SYMBOL_MESSAGE), 0);
  assert_int_equal(file_of(ix, "Top.f", DESC_SYMBOL_FIELD), 0);
  assert_int_equal(file_of(ix, "V", DESC_SYMBOL_ENUM_VALUE), 0);
  assert_int_equal(file_of(ix, "E.V", DESC_SYMBOL_ENUM_VALUE), 0);
  assert_int_equal(file_of(ix, ".Top", DESC_SYMBOL_MESSAGE), 0);
  assert_string_equal(descriptor_index_service_name(ix, 0), "Svc");
  assert_int_equal(descriptor_index_method_kind(ix, "/Svc/Up"), 2);
  descriptor_index_destroy(ix);
}

/* A real symbol wins over a lenient enum-value spelling, whichever came first. */
static void test_alias_never_shadows(void **state) {
  (void)state;
  FileProto *y = mk_file("y.proto", "pkg");
  push(&y->enum_type, &y->n_enum_type, mk_enum("E", "V", "W", NULL));
  FileProto *x = mk_file("x.proto", "pkg.E"); /* a package named like the enum */
  push(&x->message_type, &x->n_message_type, mk_msg("V"));
  size_t len;
  uint8_t *set = pack_set(&len, y, x, NULL);
  descriptor_index *ix = index_of(set, len);
  assert_string_equal(file_name_of(ix, "pkg.E.V", DESC_SYMBOL_MESSAGE), "x.proto");
  assert_string_equal(file_name_of(ix, "pkg.E.W", DESC_SYMBOL_ENUM_VALUE), "y.proto");
  assert_string_equal(file_name_of(ix, "pkg.V", DESC_SYMBOL_ENUM_VALUE), "y.proto");
  descriptor_index_destroy(ix);
}

static void test_service_methods_all_kinds(void **state) {
  (void)state;
  FileProto *f = mk_file("svc.proto", "acme.v2");
  Google__Protobuf__ServiceDescriptorProto *s = mk_service(f, "Things");
  svc_add_method(s, "Get", 0, 0);
  svc_add_method(s, "Watch", 0, 1);
  svc_add_method(s, "Upload", 1, 0);
  svc_add_method(s, "Sync", 1, 1);
  mk_service(f, "Empty");
  /* Duplicate service in a second file: listed once, first file wins. */
  FileProto *g = mk_file("svc2.proto", "acme.v2");
  Google__Protobuf__ServiceDescriptorProto *s2 = mk_service(g, "Things");
  svc_add_method(s2, "Get", 1, 1);
  svc_add_method(s2, "Extra", 1, 1);
  size_t len;
  uint8_t *set = pack_set(&len, f, g, NULL);
  descriptor_index *ix = index_of(set, len);
  assert_int_equal(descriptor_index_service_count(ix), 2);
  assert_string_equal(descriptor_index_service_name(ix, 0), "acme.v2.Things");
  assert_string_equal(descriptor_index_service_name(ix, 1), "acme.v2.Empty");
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Things/Get"), 0);
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Things/Watch"), 1);
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Things/Upload"), 2);
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Things/Sync"), 3);
  /* A method a later file adds to the same service name is still indexed. */
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Things/Extra"), 3);
  assert_string_equal(file_name_of(ix, "acme.v2.Things.Extra", DESC_SYMBOL_METHOD), "svc2.proto");
  assert_int_equal(descriptor_index_method_kind(ix, "/acme.v2.Empty/Get"), -1);
  descriptor_index_destroy(ix);
}

static int pos_of(const int *a, int n, int v) {
  for (int i = 0; i < n; i++)
    if (a[i] == v) return i;
  return -1;
}

static void test_closure(void **state) {
  (void)state;
  /*   top -> mid -> base;  top -> base;  top -> missing;  top -> side -> base
   *   lone;   cyc1 <-> cyc2  */
  FileProto *base = mk_file("base.proto", "b");
  FileProto *mid = mk_file("mid.proto", "m");
  add_dep(mid, "base.proto");
  FileProto *side = mk_file("side.proto", "s");
  add_dep(side, "base.proto");
  FileProto *top = mk_file("top.proto", "t");
  add_dep(top, "mid.proto");
  add_dep(top, "base.proto");
  add_dep(top, "missing.proto");
  add_dep(top, "side.proto");
  FileProto *lone = mk_file("lone.proto", "l");
  FileProto *cyc1 = mk_file("cyc1.proto", "c");
  add_dep(cyc1, "cyc2.proto");
  FileProto *cyc2 = mk_file("cyc2.proto", "c");
  add_dep(cyc2, "cyc1.proto");
  add_dep(cyc2, "cyc2.proto");
  size_t len;
  /* Dependents before their imports in the set: resolution is by name. */
  uint8_t *set = pack_set(&len, top, mid, lone, side, base, cyc1, cyc2, NULL);
  descriptor_index *ix = index_of(set, len);
  int n_files = (int)descriptor_index_file_count(ix);
  assert_int_equal(n_files, 7);
  int out[7];
  int itop = descriptor_index_find_file(ix, "top.proto");
  int imid = descriptor_index_find_file(ix, "mid.proto");
  int ibase = descriptor_index_find_file(ix, "base.proto");
  int iside = descriptor_index_find_file(ix, "side.proto");
  int n = descriptor_index_file_closure(ix, (size_t)itop, out);
  assert_int_equal(n, 4);
  assert_int_equal(out[3], itop);
  assert_int_equal(out[0], ibase);
  assert_true(pos_of(out, n, imid) > pos_of(out, n, ibase));
  assert_true(pos_of(out, n, iside) > pos_of(out, n, ibase));
  assert_int_equal(pos_of(out, n, descriptor_index_find_file(ix, "lone.proto")), -1);

  n = descriptor_index_file_closure(ix, (size_t)imid, out);
  assert_int_equal(n, 2);
  assert_int_equal(out[0], ibase);
  assert_int_equal(out[1], imid);

  n = descriptor_index_file_closure(ix, (size_t)ibase, out);
  assert_int_equal(n, 1);
  assert_int_equal(out[0], ibase);

  int ic1 = descriptor_index_find_file(ix, "cyc1.proto");
  int ic2 = descriptor_index_find_file(ix, "cyc2.proto");
  n = descriptor_index_file_closure(ix, (size_t)ic1, out);
  assert_int_equal(n, 2);
  assert_int_equal(out[0], ic2);
  assert_int_equal(out[1], ic1);

  assert_int_equal(descriptor_index_file_closure(ix, 99, out), 0);
  descriptor_index_destroy(ix);
}

/* An import resolved by a set added later. */
static void test_closure_across_sets(void **state) {
  (void)state;
  FileProto *app = mk_file("app.proto", "app");
  add_dep(app, "grpc/health/v1/health.proto");
  size_t len;
  uint8_t *set = pack_set(&len, app, NULL);
  descriptor_index *ix = index_of(set, len);
  int out[4];
  assert_int_equal(descriptor_index_file_closure(ix, 0, out), 1);
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, keel_runtime_descriptor_set,
                                            keel_runtime_descriptor_set_len, &err),
                   0);
  assert_int_equal(descriptor_index_file_closure(ix, 0, out), 2);
  assert_string_equal(descriptor_index_file_name(ix, (size_t)out[0]), HEALTH);
  assert_int_equal(out[1], 0);
  descriptor_index_destroy(ix);
}

static void test_extensions(void **state) {
  (void)state;
  FileProto *base = mk_file("base.proto", "base");
  push(&base->message_type, &base->n_message_type, mk_msg("Msg"));
  push(&base->message_type, &base->n_message_type, mk_msg("Plain"));
  push(&base->enum_type, &base->n_enum_type, mk_enum("Kind", "K0", NULL));
  FileProto *ext = mk_file("ext.proto", "ext");
  add_dep(ext, "base.proto");
  push(&ext->extension, &ext->n_extension, mk_ext("my_ext", ".base.Msg", 101));
  push(&ext->extension, &ext->n_extension, mk_ext("other_ext", ".base.Msg", 100));
  MsgProto *holder = mk_msg("Holder");
  push(&holder->extension, &holder->n_extension, mk_ext("nested_ext", ".base.Msg", 200));
  push(&ext->message_type, &ext->n_message_type, holder);
  FileProto *ext2 = mk_file("ext2.proto", "ext2");
  push(&ext2->extension, &ext2->n_extension, mk_ext("dup", ".base.Msg", 100)); /* loses */
  push(&ext2->extension, &ext2->n_extension, mk_ext("low", "base.Msg", 50));   /* no dot */
  push(&ext2->extension, &ext2->n_extension, mk_ext("neg", ".base.Msg", -5));
  /* An extension without a number or extendee is a symbol but not an extension. */
  FieldProto *odd = mk_ext("odd", NULL, 7);
  push(&ext2->extension, &ext2->n_extension, odd);
  size_t len;
  uint8_t *set = pack_set(&len, base, ext, ext2, NULL);
  descriptor_index *ix = index_of(set, len);

  assert_string_equal(file_name_of(ix, "ext.my_ext", DESC_SYMBOL_EXTENSION), "ext.proto");
  assert_string_equal(file_name_of(ix, "ext.Holder.nested_ext", DESC_SYMBOL_EXTENSION),
                      "ext.proto");
  assert_string_equal(file_name_of(ix, "ext2.odd", DESC_SYMBOL_EXTENSION), "ext2.proto");

  int iext = descriptor_index_find_file(ix, "ext.proto");
  int iext2 = descriptor_index_find_file(ix, "ext2.proto");
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 101), iext);
  assert_int_equal(descriptor_index_find_extension(ix, ".base.Msg", 101), iext);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 100), iext); /* first wins */
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 200), iext);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 50), iext2);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", -5), iext2);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 102), -1);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Msg", 7), -1);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Plain", 100), -1);
  assert_int_equal(descriptor_index_find_extension(ix, "base.Ms", 100), -1);
  assert_int_equal(descriptor_index_find_extension(ix, "nope", 1), -1);
  assert_int_equal(descriptor_index_find_extension(ix, NULL, 1), -1);

  int32_t *nums = NULL;
  int n = descriptor_index_extension_numbers(ix, "base.Msg", &nums);
  assert_int_equal(n, 5);
  int32_t want[] = {-5, 50, 100, 101, 200};
  assert_memory_equal(nums, want, sizeof(want));
  free(nums);
  n = descriptor_index_extension_numbers(ix, ".base.Msg", &nums);
  assert_int_equal(n, 5);
  free(nums);
  nums = (int32_t *)&n;
  assert_int_equal(descriptor_index_extension_numbers(ix, "base.Plain", &nums), 0);
  assert_null(nums);
  assert_int_equal(descriptor_index_extension_numbers(ix, "base.Nope", &nums), -ENOENT);
  assert_int_equal(descriptor_index_extension_numbers(ix, "base.Kind", &nums), -ENOENT);
  assert_int_equal(descriptor_index_extension_numbers(ix, "ext.my_ext", &nums), -ENOENT);
  assert_int_equal(descriptor_index_extension_numbers(ix, "", &nums), -ENOENT);
  descriptor_index_destroy(ix);
}

/* Extensions of a type already indexed arrive in a later set: still sorted. */
static void test_extensions_across_sets(void **state) {
  (void)state;
  FileProto *a = mk_file("a.proto", "a");
  push(&a->message_type, &a->n_message_type, mk_msg("T"));
  push(&a->extension, &a->n_extension, mk_ext("e30", ".a.T", 30));
  push(&a->extension, &a->n_extension, mk_ext("e10", ".a.T", 10));
  FileProto *b = mk_file("b.proto", "b");
  push(&b->extension, &b->n_extension, mk_ext("e20", ".a.T", 20));
  push(&b->extension, &b->n_extension, mk_ext("e5", ".a.T", 5));
  push(&b->extension, &b->n_extension, mk_ext("z", ".z.Z", 5));
  size_t la, lb;
  uint8_t *sa = pack_set(&la, a, NULL);
  uint8_t *sb = pack_set(&lb, b, NULL);
  descriptor_index *ix = index_of(sa, la);
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, sb, lb, &err), 0);
  int32_t *nums;
  assert_int_equal(descriptor_index_extension_numbers(ix, "a.T", &nums), 4);
  int32_t want[] = {5, 10, 20, 30};
  assert_memory_equal(nums, want, sizeof(want));
  free(nums);
  assert_int_equal(descriptor_index_find_extension(ix, "a.T", 5), 1);
  assert_int_equal(descriptor_index_find_extension(ix, "a.T", 30), 0);
  /* z.Z is not a known message, though something extends it. */
  assert_int_equal(descriptor_index_find_extension(ix, "z.Z", 5), 1);
  assert_int_equal(descriptor_index_extension_numbers(ix, "z.Z", &nums), -ENOENT);
  descriptor_index_destroy(ix);
}

/* Enough symbols to make the tables grow many times. */
static void test_many_symbols(void **state) {
  (void)state;
  enum { N = 3000 };
  FileProto *f = mk_file("big.proto", "big");
  char *names = palloc(N * 16);
  for (int i = 0; i < N; i++) {
    char *nm = names + i * 16;
    snprintf(nm, 16, "M%d", i);
    MsgProto *m = mk_msg(nm);
    msg_add_field(m, "a", 1);
    msg_add_field(m, "b", 2);
    push(&f->message_type, &f->n_message_type, m);
  }
  FileProto *files[40];
  char *fnames = palloc(40 * 16);
  for (int i = 0; i < 40; i++) {
    snprintf(fnames + i * 16, 16, "f%d.proto", i);
    files[i] = mk_file(fnames + i * 16, "many");
    if (i) add_dep(files[i], fnames + (i - 1) * 16);
  }
  Google__Protobuf__FileDescriptorSet s = GOOGLE__PROTOBUF__FILE_DESCRIPTOR_SET__INIT;
  push(&s.file, &s.n_file, f);
  for (int i = 39; i >= 0; i--) push(&s.file, &s.n_file, files[i]);
  size_t len = google__protobuf__file_descriptor_set__get_packed_size(&s);
  uint8_t *set = palloc(len);
  google__protobuf__file_descriptor_set__pack(&s, set);
  descriptor_index *ix = index_of(set, len);
  char buf[64];
  for (int i = 0; i < N; i++) {
    snprintf(buf, sizeof(buf), "big.M%d.b", i);
    assert_int_equal(file_of(ix, buf, DESC_SYMBOL_FIELD), 0);
  }
  assert_int_equal(descriptor_index_find_symbol(ix, "big.M3000", NULL), -1);
  assert_int_equal(descriptor_index_file_count(ix), 41);
  int out[41];
  int last = descriptor_index_find_file(ix, "f39.proto");
  assert_int_equal(descriptor_index_file_closure(ix, (size_t)last, out), 40);
  for (int i = 0; i < 40; i++) {
    snprintf(buf, sizeof(buf), "f%d.proto", i);
    assert_string_equal(descriptor_index_file_name(ix, (size_t)out[i]), buf);
  }
  for (int i = 0; i < 40; i++) {
    snprintf(buf, sizeof(buf), "f%d.proto", i);
    assert_true(descriptor_index_find_file(ix, buf) >= 1);
  }
  descriptor_index_destroy(ix);
}

/* ------------------------------------------------------------ bad input */

static void expect_rejected(descriptor_index *ix, const void *set, size_t len,
                            const char *want_in_message) {
  size_t files = descriptor_index_file_count(ix), services = descriptor_index_service_count(ix);
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, set, len, &err), -EINVAL);
  assert_int_equal(err.code, EINVAL);
  if (!strstr(err.message, want_in_message))
    fail_msg("message \"%s\" lacks \"%s\"", err.message, want_in_message);
  assert_int_equal(descriptor_index_file_count(ix), files);
  assert_int_equal(descriptor_index_service_count(ix), services);
}

static void test_rejects_malformed(void **state) {
  (void)state;
  descriptor_index *ix = runtime_index();
  /* Truncated anywhere inside the set; the split points that fall between two
   * files are still a valid, shorter set. */
  size_t boundaries = 0;
  for (size_t cut = 1; cut < keel_runtime_descriptor_set_len; cut++) {
    descriptor_index *t = descriptor_index_create();
    keel_error err = {0};
    int r = descriptor_index_add_set(t, keel_runtime_descriptor_set, cut, &err);
    if (r == 0) {
      boundaries++;
    } else {
      assert_int_equal(r, -EINVAL);
      assert_int_equal(descriptor_index_file_count(t), 0);
    }
    descriptor_index_destroy(t);
  }
  assert_int_equal(boundaries, 2);

  static const uint8_t zero_tag[] = {0x00, 0x01};
  expect_rejected(ix, zero_tag, sizeof(zero_tag), "bad field tag");
  static const uint8_t bad_varint[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff};
  expect_rejected(ix, bad_varint, sizeof(bad_varint), "bad field tag");
  static const uint8_t group[] = {0x0b, 0x0c};
  expect_rejected(ix, group, sizeof(group), "wire type 3");
  static const uint8_t long_len[] = {0x0a, 0x05, 0x0a, 0x01};
  expect_rejected(ix, long_len, sizeof(long_len), "truncated");
  static const uint8_t huge_len[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
  expect_rejected(ix, huge_len, sizeof(huge_len), "truncated");
  static const uint8_t bad_fixed64[] = {0x11, 1, 2, 3};
  expect_rejected(ix, bad_fixed64, sizeof(bad_fixed64), "truncated");
  static const uint8_t bad_fixed32[] = {0x15, 1, 2};
  expect_rejected(ix, bad_fixed32, sizeof(bad_fixed32), "truncated");
  static const uint8_t bad_varint_field[] = {0x10, 0x80};
  expect_rejected(ix, bad_varint_field, sizeof(bad_varint_field), "truncated");
  /* A file whose body is not a FileDescriptorProto (field 1 as a varint). */
  static const uint8_t bad_file[] = {0x0a, 0x02, 0x08, 0x80};
  expect_rejected(ix, bad_file, sizeof(bad_file), "file 0 does not parse");

  /* A good file then a nameless one: all or nothing. */
  FileProto *good = mk_file("good.proto", "g");
  mk_service(good, "Svc");
  FileProto *nameless = mk_file(NULL, "g");
  size_t len;
  uint8_t *set = pack_set(&len, good, nameless, NULL);
  expect_rejected(ix, set, len, "file 1 has no name");
  FileProto *empty_name = mk_file("", "g");
  set = pack_set(&len, good, empty_name, NULL);
  expect_rejected(ix, set, len, "file 1 has no name");
  assert_int_equal(descriptor_index_find_symbol(ix, "g.Svc", NULL), -1);

  /* Nesting: 64 levels are fine, 65 are not. */
  for (int depth = 64; depth <= 65; depth++) {
    FileProto *deep = mk_file(depth == 64 ? "deep64.proto" : "deep65.proto", "d");
    MsgProto *m = mk_msg("L");
    push(&deep->message_type, &deep->n_message_type, m);
    for (int i = 1; i < depth; i++) {
      MsgProto *c = mk_msg("L");
      push(&m->nested_type, &m->n_nested_type, c);
      m = c;
    }
    set = pack_set(&len, deep, NULL);
    if (depth == 64) {
      keel_error err = {0};
      assert_int_equal(descriptor_index_add_set(ix, set, len, &err), 0);
      char name[2 + 64 * 2 + 1] = "d";
      for (int i = 0; i < 64; i++) strcat(name, ".L");
      assert_int_equal(file_of(ix, name, DESC_SYMBOL_MESSAGE),
                       descriptor_index_find_file(ix, "deep64.proto"));
    } else {
      expect_rejected(ix, set, len, "nested deeper than 64");
    }
  }
  descriptor_index_destroy(ix);
}

static void test_empty_and_foreign_fields(void **state) {
  (void)state;
  descriptor_index *ix = descriptor_index_create();
  keel_error err = {0};
  assert_int_equal(descriptor_index_add_set(ix, "", 0, &err), 0);
  assert_int_equal(descriptor_index_file_count(ix), 0);
  assert_int_equal(descriptor_index_service_count(ix), 0);
  assert_int_equal(descriptor_index_find_symbol(ix, "a", NULL), -1);
  assert_int_equal(descriptor_index_method_kind(ix, "/a/b"), -1);
  assert_int_equal(descriptor_index_find_extension(ix, "a", 1), -1);
  int32_t *nums;
  assert_int_equal(descriptor_index_extension_numbers(ix, "a", &nums), -ENOENT);

  /* Unknown fields of every wire type around a real file are skipped. */
  FileProto *f = mk_file("f.proto", "p");
  push(&f->message_type, &f->n_message_type, mk_msg("M"));
  size_t flen;
  uint8_t *one = pack_set(&flen, f, NULL);
  uint8_t buf[256];
  size_t n = 0;
  buf[n++] = 0x10; /* field 2, varint */
  buf[n++] = 0x96;
  buf[n++] = 0x01;
  buf[n++] = 0x19; /* field 3, fixed64 */
  memset(buf + n, 7, 8);
  n += 8;
  buf[n++] = 0x25; /* field 4, fixed32 */
  memset(buf + n, 7, 4);
  n += 4;
  buf[n++] = 0x2a; /* field 5, bytes */
  buf[n++] = 0x02;
  buf[n++] = 0xff;
  buf[n++] = 0xff;
  memcpy(buf + n, one, flen);
  n += flen;
  buf[n++] = 0x80; /* field 16 (two-byte tag), varint */
  buf[n++] = 0x01;
  buf[n++] = 0x00;
  assert_int_equal(descriptor_index_add_set(ix, buf, n, &err), 0);
  assert_int_equal(descriptor_index_file_count(ix), 1);
  assert_int_equal(file_of(ix, "p.M", DESC_SYMBOL_MESSAGE), 0);
  const uint8_t *data;
  size_t len;
  descriptor_index_file_bytes(ix, 0, &data, &len);
  assert_int_equal(len, flen - 2);
  assert_memory_equal(data, one + 2, len);
  descriptor_index_destroy(ix);
  descriptor_index_destroy(NULL);
}

/* Random corruption never crashes or leaks (run under ASan), and a set that is
 * rejected leaves the index as it was. */
static void test_fuzz_corruption(void **state) {
  (void)state;
  size_t len = keel_runtime_descriptor_set_len;
  uint8_t *buf = malloc(len);
  uint32_t seed = 12345;
  descriptor_index *ix = index_of(keel_echo_descriptor_set, keel_echo_descriptor_set_len);
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, keel_runtime_descriptor_set, len);
    int flips = 1 + iter % 8;
    for (int k = 0; k < flips; k++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % len;
      seed = seed * 1103515245u + 12345u;
      buf[at] ^= (uint8_t)(1u << ((seed >> 16) % 8));
    }
    descriptor_index *t = descriptor_index_create();
    keel_error err = {0};
    int r = descriptor_index_add_set(t, buf, len, &err);
    if (r == 0) {
      /* Whatever parsed must answer every query sanely. */
      for (size_t i = 0; i < descriptor_index_file_count(t); i++) {
        int out[16];
        if (descriptor_index_file_count(t) <= 16) {
          int n = descriptor_index_file_closure(t, i, out);
          assert_true(n >= 1 && out[n - 1] == (int)i);
        }
      }
      for (size_t i = 0; i < descriptor_index_service_count(t); i++)
        assert_true(descriptor_index_find_symbol(t, descriptor_index_service_name(t, i), NULL) >=
                    0);
      descriptor_index_find_symbol(t, "grpc.health.v1.Health", NULL);
    } else {
      assert_int_equal(descriptor_index_file_count(t), 0);
    }
    descriptor_index_destroy(t);
    if (iter % 100 == 0) {
      r = descriptor_index_add_set(ix, buf, len, &err);
      assert_true(r == 0 || r == -EINVAL);
      assert_int_equal(file_of(ix, "keel.echo.v1.Echo", DESC_SYMBOL_SERVICE), 0);
    }
  }
  free(buf);
  descriptor_index_destroy(ix);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_runtime_files),
      cmocka_unit_test(test_runtime_bytes_are_original),
      cmocka_unit_test(test_runtime_symbols),
      cmocka_unit_test(test_runtime_services_and_kinds),
      cmocka_unit_test(test_echo_kinds),
      cmocka_unit_test(test_several_sets_dedupe),
      cmocka_unit_test_teardown(test_first_wins, pool_teardown),
      cmocka_unit_test_teardown(test_nested_and_scoping, pool_teardown),
      cmocka_unit_test_teardown(test_no_package, pool_teardown),
      cmocka_unit_test_teardown(test_alias_never_shadows, pool_teardown),
      cmocka_unit_test_teardown(test_service_methods_all_kinds, pool_teardown),
      cmocka_unit_test_teardown(test_closure, pool_teardown),
      cmocka_unit_test_teardown(test_closure_across_sets, pool_teardown),
      cmocka_unit_test_teardown(test_extensions, pool_teardown),
      cmocka_unit_test_teardown(test_extensions_across_sets, pool_teardown),
      cmocka_unit_test_teardown(test_many_symbols, pool_teardown),
      cmocka_unit_test_teardown(test_rejects_malformed, pool_teardown),
      cmocka_unit_test_teardown(test_empty_and_foreign_fields, pool_teardown),
      cmocka_unit_test(test_fuzz_corruption),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
