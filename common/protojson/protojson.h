/* common/protojson/protojson.h — protobuf-c messages <-> JSON (jansson), with
 * Kubernetes' conventions.
 *
 * The mapping is proto3's JSON mapping driven only by ProtobufCMessageDescriptor,
 * with the deviations Kubernetes manifests need (README.md):
 *   - field names are the proto3 json_name, read from serialized
 *     FileDescriptorSets (protobuf-c descriptors do not carry it); a message
 *     absent from the sets falls back to protoc's lowerCamelCase of the field
 *     name. Input also accepts the proto field name.
 *   - output omits fields at their default (omitempty); a set but empty
 *     sub-message is {}. int64/uint64 are JSON numbers (uint64 above INT64_MAX
 *     a decimal string); input takes numbers or decimal strings.
 *   - google.protobuf.Timestamp is an RFC 3339 string, wrappers the bare value,
 *     keel.api.v1.IntOrString a bare number or string, keel.api.v1.Quantity a
 *     string (a bare number is accepted and kept as its decimal text).
 *   - JSON null for a field means "absent". Unknown fields are errors.
 *
 * Errors are -EINVAL (-ENOMEM when out of memory) with keel_error's message
 * naming the JSON path: `spec.containers[0].imagePullPolicyy: unknown field
 * "imagePullPolicyy"`, `metadata.labels["app"]: expected a string, got number 1`.
 * Nothing half-built is returned or leaked.
 *
 * A protojson is immutable after creation (an internal cache behind a mutex
 * serves protojson_field_json_name's fallback names): use it from any thread. */
#ifndef KEEL_COMMON_PROTOJSON_PROTOJSON_H
#define KEEL_COMMON_PROTOJSON_PROTOJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "common/base/error.h"

/* Messages nested deeper than this are refused, in either direction. */
#define PROTOJSON_MAX_DEPTH 64

/* protojson_to_string flags. */
#define PROTOJSON_PRETTY 1 /* two-space indentation; default is compact */

typedef struct protojson protojson;

/* One serialized google.protobuf.FileDescriptorSet (borrowed during create). */
typedef struct protojson_descriptor_set {
  const unsigned char *data;
  size_t len;
} protojson_descriptor_set;

/* Indexes the json_name of every field and which messages are map entries.
 * nsets may be 0 (every name is then lowerCamelCase). NULL with err set on a
 * set that does not parse (-EINVAL) or out of memory. Messages defined in
 * several sets: the first wins. */
protojson *protojson_create(const protojson_descriptor_set *sets, size_t nsets, keel_error *err);
void protojson_destroy(protojson *pj);

/* The JSON object (or, for Timestamp, wrappers, IntOrString and Quantity, the
 * bare value) for msg; a new reference, or NULL with err set (-EINVAL for a
 * message that has no JSON form: invalid UTF-8 in a string, a Timestamp out of
 * range, an IntOrString type other than 0 or 1, nesting deeper than
 * PROTOJSON_MAX_DEPTH). */
json_t *protojson_to_json(const protojson *pj, const ProtobufCMessage *msg, keel_error *err);

/* protojson_to_json serialized; flags: PROTOJSON_PRETTY or 0. malloc'ed (free). */
char *protojson_to_string(const protojson *pj, const ProtobufCMessage *msg, int flags,
                          keel_error *err);

/* A new message of type desc from json (borrowed). Free it with
 * protobuf_c_message_free_unpacked(msg, NULL). NULL with err set on error. */
ProtobufCMessage *protojson_from_json(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                      const json_t *json, keel_error *err);

/* protojson_from_json of the JSON text[0..len). Syntax errors say where:
 * "invalid JSON at 3:14: ..." (line:column). Duplicate object keys are errors. */
ProtobufCMessage *protojson_from_string(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                        const char *text, size_t len, keel_error *err);

/* The JSON name of field (a field of desc): the sets' json_name, else
 * lowerCamelCase of its proto name. Borrowed; valid for pj's life. NULL only
 * when out of memory. */
const char *protojson_field_json_name(const protojson *pj, const ProtobufCMessageDescriptor *desc,
                                      const ProtobufCFieldDescriptor *field);

#endif
