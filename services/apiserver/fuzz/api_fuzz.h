/* services/apiserver/fuzz/api_fuzz.h — keel-apiserver's request decoding and
 * object handling under a fuzzer (api_fuzz.c), with its built-in seeds
 * (api_fuzz_seeds.c). README.md says how to run it.
 *
 * Input: byte 0, bits 0-5 pick the kind (mod the number of kinds, in
 * api_kinds() order); bits 6-7 pick the path:
 *   0, 3  protobuf: [n: u16 little-endian][n bytes][rest]: the object, then
 *         (when the rest decodes) the stored object for Update/UpdateStatus;
 *         n past the end means the whole rest is the object.
 *   1     JSON: the rest is the object as JSON text (the REST gateway's path).
 *   2     request: byte 1 picks the message (mod 5): Get, List, Watch, Delete,
 *         Scale; the rest is it in protobuf.
 *
 * What the apiserver does with them, and what is checked (a violated property
 * prints "api_fuzz: VIOLATION [id] ..." and aborts, so the fuzzer keeps the
 * input; KEEL_API_FUZZ_TOLERATE=id,... counts the inputs that hit those
 * instead and lets them go on):
 *   objects   api_default then api_validate for Create, and with the stored
 *             object for Update, UpdateStatus and (Pods) Bind; validation of
 *             the undefaulted object too. Defaulting is idempotent, also after
 *             a store round trip (default-not-idempotent); validation returns
 *             0 or -EINVAL with a message (validate-bad-return) and changes
 *             neither object (validate-changed-object); an object valid on
 *             Create is valid as a no-op Update of itself (noop-update-refused),
 *             decodes when read back from the store (stored-object-undecodable)
 *             and has no map key twice (duplicate-map-key-accepted).
 *             protojson: to_json refuses only with EINVAL (json-encode-error);
 *             its output reads back, through text too (json-own-output-refused),
 *             to the same JSON (json-unstable); a valid object stays valid
 *             through JSON (valid-object-invalid-after-json). From JSON text a
 *             refusal is EINVAL with a message (json-refusal-without-einval).
 *             Every selectable field of the kind reads as text
 *             (selectable-field-unreadable).
 *   requests  label and field selectors parsed as List and Watch do: a refusal
 *             is -EINVAL with a message and no selector (selector-bad-refusal);
 *             the canonical text parses back to itself (selector-not-canonical)
 *             and means the same (selector-canonical-changes-meaning); both
 *             label matchers agree (selector-match-mismatch); an exact-match
 *             answer holds for every object the selector matches
 *             (exact-match-wrong); fields_selector_validate and
 *             api_kind_field_selectable agree (field-selectable-mismatch).
 *             Names and namespaces of Get and Delete go through the name
 *             rules; Scale through api_validate_scale and its status selector.
 * ASan, UBSan and LeakSanitizer report the rest. */
#ifndef KEEL_SERVICES_APISERVER_FUZZ_API_FUZZ_H
#define KEEL_SERVICES_APISERVER_FUZZ_API_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "common/kinds/kinds.h"
#include "common/protojson/protojson.h"

enum {
  API_FUZZ_PATH_PROTOBUF = 0,
  API_FUZZ_PATH_JSON = 1,
  API_FUZZ_PATH_REQUEST = 2,
};
#define API_FUZZ_HEADER(path, kind_index) ((uint8_t)(((path) << 6) | ((kind_index)&0x3f)))

enum {
  API_FUZZ_REQ_GET,
  API_FUZZ_REQ_LIST,
  API_FUZZ_REQ_WATCH,
  API_FUZZ_REQ_DELETE,
  API_FUZZ_REQ_SCALE,
  API_FUZZ_NREQ,
};

#define API_FUZZ_MAX_INPUT (1 << 20)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The JSON mapping over keel.api.v1's descriptor set; created once. */
const protojson *api_fuzz_protojson(void);

/* Hands every built-in seed to add: the manifests of seeds.json as JSON and as
 * protobuf (alone, and with an older version as the stored object), and
 * Get/List/Watch/Delete/Scale requests with Kubernetes-style selectors. */
void api_fuzz_seeds(void (*add)(void *arg, const uint8_t *data, size_t len), void *arg);

/* The seeds.json manifests of kind k, decoded (borrowed; *n set). Selectors
 * of path 2 are matched against them. */
ProtobufCMessage *const *api_fuzz_objects(const api_kind *k, size_t *n);

#endif
