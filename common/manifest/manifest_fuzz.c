/* common/manifest/manifest_fuzz.c — YAML/JSON manifest decoding under
 * libFuzzer (or //common/fuzz's standalone driver).
 *
 * Input: the bytes of a manifest file. Properties:
 *   - the YAML layer: a refusal is EINVAL or E2BIG with a message; whatever
 *     parses, written back as YAML, parses to the same values;
 *   - manifest_decode: a refusal is EINVAL or E2BIG naming "fuzz.yaml:"; an
 *     acceptance passes protobuf_c_message_check, prints as YAML, and that
 *     YAML decodes to byte-identical protobuf.
 * A violation prints "manifest_fuzz: VIOLATION <what>" and aborts, so the
 * fuzzer keeps the input. Seeds: common/manifest/testdata (the sh_test passes
 * the directory). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/manifest/manifest.h"

extern const unsigned char keel_api_descriptor_set[];
extern const unsigned long keel_api_descriptor_set_len;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (1 << 20)

static protojson *g_pj;

static void violation(const char *what, const char *detail, const uint8_t *data, size_t size) {
  fprintf(stderr, "manifest_fuzz: VIOLATION %s: %s\ninput:\n%.*s\n", what, detail ? detail : "",
          (int)(size < 4000 ? size : 4000), (const char *)data);
  abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  keel_error err = {0};
  protojson_descriptor_set set = {keel_api_descriptor_set, keel_api_descriptor_set_len};
  g_pj = protojson_create(&set, 1, &err);
  if (!g_pj) {
    fprintf(stderr, "manifest_fuzz: protojson_create: %s\n", err.message);
    abort();
  }
  return 0;
}

/* JSON equality where 3 and 3.0 are one number (YAML writes 3.0 as 3). */
static int same(const json_t *a, const json_t *b) {
  if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
  if (json_typeof(a) != json_typeof(b)) return 0;
  if (json_is_array(a)) {
    if (json_array_size(a) != json_array_size(b)) return 0;
    for (size_t i = 0; i < json_array_size(a); i++)
      if (!same(json_array_get(a, i), json_array_get(b, i))) return 0;
    return 1;
  }
  if (json_is_object(a)) {
    if (json_object_size(a) != json_object_size(b)) return 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)a, k, v) {
      const json_t *w = json_object_get(b, k);
      if (!w || !same(v, w)) return 0;
    }
    return 1;
  }
  return json_equal(a, b);
}

static void yaml_layer(const uint8_t *data, size_t size) {
  manifest_doc *docs, *back;
  size_t n, nb;
  keel_error err = {0};
  if (manifest_text_parse((const char *)data, size, NULL, &docs, &n, &err) < 0) {
    if ((err.code != EINVAL && err.code != E2BIG) || !err.message[0])
      violation("yaml-refusal", err.message, data, size);
    return;
  }
  const json_t **vs = calloc(n ? n : 1, sizeof(*vs));
  if (!vs) abort();
  for (size_t i = 0; i < n; i++) vs[i] = docs[i].root;
  char *y = manifest_json_to_yaml_stream(vs, n, 0, &err);
  if (!y) violation("yaml-write", err.message, data, size);
  if (manifest_yaml_parse(y, strlen(y), NULL, &back, &nb, &err) < 0)
    violation("yaml-own-output-refused", err.message, data, size);
  if (nb != n && n > 0) violation("yaml-document-count", y, data, size);
  for (size_t i = 0; i < n; i++)
    if (!same(docs[i].root, back[i].root)) violation("yaml-roundtrip", y, data, size);
  manifest_docs_free(back, nb);
  free(y);
  free(vs);
  manifest_docs_free(docs, n);
}

static int same_bytes(const ProtobufCMessage *a, const ProtobufCMessage *b) {
  size_t na = protobuf_c_message_get_packed_size(a), nb = protobuf_c_message_get_packed_size(b);
  if (na != nb) return 0;
  uint8_t *pa = malloc(na ? na : 1), *pb = malloc(nb ? nb : 1);
  if (!pa || !pb) abort();
  protobuf_c_message_pack(a, pa);
  protobuf_c_message_pack(b, pb);
  int eq = memcmp(pa, pb, na) == 0;
  free(pa);
  free(pb);
  return eq;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > FUZZ_MAX_INPUT) return 0;
  if (!g_pj) LLVMFuzzerInitialize(NULL, NULL);
  yaml_layer(data, size);
  manifest_object *objs, *back;
  size_t n, nb;
  keel_error err = {0};
  if (manifest_decode(g_pj, "fuzz.yaml", (const char *)data, size, &objs, &n, &err) < 0) {
    if ((err.code != EINVAL && err.code != E2BIG) || strncmp(err.message, "fuzz.yaml:", 10) != 0)
      violation("refusal", err.message, data, size);
    return 0;
  }
  const ProtobufCMessage **msgs = calloc(n ? n : 1, sizeof(*msgs));
  if (!msgs) abort();
  for (size_t i = 0; i < n; i++) {
    if (!protobuf_c_message_check(objs[i].msg)) violation("message-check", NULL, data, size);
    msgs[i] = objs[i].msg;
  }
  char *y = manifest_list_to_yaml(g_pj, msgs, n, 0, &err);
  if (!y) violation("accepted-but-not-printed", err.message, data, size);
  if (manifest_decode(g_pj, "out.yaml", y, strlen(y), &back, &nb, &err) < 0)
    violation("own-output-refused", err.message, data, size);
  if (nb != n) violation("object-count", y, data, size);
  for (size_t i = 0; i < n; i++)
    if (!same_bytes(objs[i].msg, back[i].msg)) violation("roundtrip", y, data, size);
  manifest_objects_free(back, nb);
  free(y);
  free(msgs);
  manifest_objects_free(objs, n);
  return 0;
}
