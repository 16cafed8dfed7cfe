/* common/manifest/manifest.h — Kubernetes manifests (YAML or JSON) <->
 * keel.api.v1 objects, for `keel apply -f` / `keel get -o yaml|json` and the
 * apiserver's REST gateway.
 *
 * Decoding: every document of a stream (yaml.h) is one object, or a list of
 * them (`kind: List` with items, a typed list such as `kind: PodList`, or a
 * top-level sequence); empty documents are skipped. Each object's kind and
 * apiVersion pick its row in the kind registry (common/kinds: the kind exactly
 * as Kubernetes spells it, "Deployment", and the row's apiVersion,
 * "apps/v1"), and protojson decodes it into that kind's message, so unknown
 * fields are errors. Every error names the file and line:
 *
 *   web.yaml:14: spec.template.spec.containers[0].imagePullPolicyy:
 *       unknown field "imagePullPolicyy"
 *   web.yaml:2: kind "deployment" is not served (apiVersion "apps/v1");
 *       did you mean "Deployment"?
 *   web.yaml:7:3: mapping values are not allowed in this context
 *       (YAML syntax errors: FILE:LINE:COL)
 * (each is one line; wrapped here).
 *
 * A decoded object's map entries (labels, resources) are sorted by key, so its
 * wire bytes depend only on its content (decode, print, decode: same bytes).
 *
 * All -EINVAL (E2BIG past a limit, ENOMEM, or an errno from reading a file).
 * On error nothing is returned (*objs NULL, *n 0).
 *
 * Writing: apiVersion, kind, metadata, spec, status and every field in proto
 * field order (the order the .proto files list them, which follows
 * Kubernetes' structs), or byte order with MANIFEST_SORT_KEYS (what kubectl's
 * -o yaml does); YAML in kubectl's style (yaml.h), JSON with 4-space indent as
 * kubectl -o json. apiVersion and kind are filled from the registry when the
 * object lacks them (objects come from the store without them). */
#ifndef KEEL_COMMON_MANIFEST_MANIFEST_H
#define KEEL_COMMON_MANIFEST_MANIFEST_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "common/manifest/yaml.h"
#include "common/protojson/protojson.h"

/* The largest file manifest_decode_file reads. */
#define MANIFEST_MAX_FILE (64u << 20)

typedef struct manifest_object {
  const api_kind *kind;  /* its registry row */
  ProtobufCMessage *msg; /* owned; of kind->object; protobuf_c_message_free_unpacked */
  char *source;          /* owned; the name given for the text ("web.yaml", "-") */
  int line;              /* where the object starts in source */
  manifest_pos *pos;     /* owned reference: where each of its fields is written */
} manifest_object;

/* Decodes text[0..len) (YAML or JSON, manifest_text_parse); name is what
 * errors and manifest_object.source call it. Appends nothing on error. */
int manifest_decode(const protojson *pj, const char *name, const char *text, size_t len,
                    manifest_object **objs, size_t *n, keel_error *err);

/* The file at path ("-": standard input, named "-"), at most MANIFEST_MAX_FILE. */
int manifest_decode_file(const protojson *pj, const char *path, manifest_object **objs, size_t *n,
                         keel_error *err);

/* Every *.yaml, *.yml and *.json file directly in dir (not recursive; other
 * files and directories are skipped), in byte order of their names, each named
 * "dir/file". No such files is not an error (*n 0). */
int manifest_decode_dir(const protojson *pj, const char *dir, manifest_object **objs, size_t *n,
                        keel_error *err);

/* `-f` as kubectl takes it: "-", a directory or a file. */
int manifest_decode_path(const protojson *pj, const char *path, manifest_object **objs, size_t *n,
                         keel_error *err);

void manifest_objects_free(manifest_object *objs, size_t n);

/* The line in o->source of a field path (protojson's syntax, "spec.replicas",
 * "spec.template.spec.containers[0].image"): for errors that come back from
 * the server about an object read from a file. The deepest part of the path
 * that exists counts; o->line when none of it does. */
int manifest_object_line(const manifest_object *o, const char *path);

/* ---------------------------------------------------------------- writing */

/* obj (any message protojson maps) as a YAML document / a JSON text, ending in
 * a newline. flags: MANIFEST_SORT_KEYS. malloc'ed; NULL with err set. */
char *manifest_to_yaml(const protojson *pj, const ProtobufCMessage *obj, unsigned flags,
                       keel_error *err);
char *manifest_to_json(const protojson *pj, const ProtobufCMessage *obj, unsigned flags,
                       keel_error *err);

/* Several objects. YAML: documents separated by `---` lines, or with
 * MANIFEST_AS_LIST one `apiVersion: v1, kind: List` with the objects as items
 * (what kubectl get prints). JSON: one object as manifest_to_json, any other
 * number as such a List (JSON has no document separator). */
char *manifest_list_to_yaml(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                            unsigned flags, keel_error *err);
char *manifest_list_to_json(const protojson *pj, const ProtobufCMessage *const *objs, size_t n,
                            unsigned flags, keel_error *err);

/* The JSON value manifest_to_yaml/json write for obj: protojson's, with
 * apiVersion and kind first, filled from the registry when missing. A new
 * reference, or NULL with err set. */
json_t *manifest_object_json(const protojson *pj, const ProtobufCMessage *obj, keel_error *err);

#endif
