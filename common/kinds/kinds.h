/* common/kinds/kinds.h — the kind registry: every resource keel.api.v1 serves.
 *
 * One table describes each kind (Pod: resource "pods", apiVersion "v1",
 * namespaced, its protobuf-c object, list and watch-event descriptors and its
 * gRPC service). keel-apiserver's generic handlers, its REST gateway and the CLI
 * all work from this table, so adding a kind is a proto change plus one row.
 *
 * Objects are handled generically through their descriptors: every kind's
 * message has `api_version` (1), `kind` (2), `metadata` (3, ObjectMeta) and,
 * for most kinds, `spec` and `status`. The accessors below find those fields by
 * name once per kind (cached in the row) and never assume a C struct layout
 * beyond ObjectMeta itself. */
#ifndef KEEL_COMMON_KINDS_KINDS_H
#define KEEL_COMMON_KINDS_KINDS_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

#include "keel/api/v1/meta.pb-c.h"

enum {
  API_SUB_STATUS = 1u << 0, /* UpdateStatus */
  API_SUB_BIND = 1u << 1,   /* Pods/Bind */
  API_SUB_SCALE = 1u << 2,  /* GetScale / UpdateScale */
  API_SUB_LOG = 1u << 3,    /* Pods/Log ("get pods/log") */
  API_SUB_EXEC = 1u << 4,   /* Pods/Exec ("create pods/exec") */
};

typedef struct api_kind {
  const char *kind;        /* "Pod" */
  const char *resource;    /* "pods": URL path segment and store key segment */
  const char *singular;    /* "pod" */
  const char *short_names; /* comma-separated, "po"; may be "" */
  const char *group;       /* "" (core) or "apps", "coordination.k8s.io" */
  const char *api_version; /* "v1", "apps/v1" */
  bool namespaced;
  unsigned subresources;   /* API_SUB_* */
  const ProtobufCMessageDescriptor *object;
  const ProtobufCMessageDescriptor *list;
  const ProtobufCMessageDescriptor *watch_event;
  const ProtobufCServiceDescriptor *service;
  /* Field selector labels beyond metadata.name and metadata.namespace (which
   * every kind supports), NULL-terminated, as Kubernetes names them. */
  const char *const *selectable_fields;
  /* Field descriptors found at registry initialisation (NULL when absent). */
  const ProtobufCFieldDescriptor *f_api_version, *f_kind, *f_metadata, *f_spec, *f_status;
} api_kind;

/* Every kind, in a stable order (the order of `keel api-resources`). */
const api_kind *api_kinds(size_t *n);

/* Lookups; NULL when unknown. by_name accepts the kind ("Pod"), the resource
 * ("pods"), the singular ("pod") or a short name ("po"), case-insensitively,
 * as kubectl does. */
const api_kind *api_kind_by_resource(const char *resource);
const api_kind *api_kind_by_name(const char *name);
const api_kind *api_kind_by_service(const char *full_service_name); /* "keel.api.v1.Pods" */
const api_kind *api_kind_by_object(const ProtobufCMessageDescriptor *desc);

/* --- generic object access (obj must be of k->object) */

/* The object's metadata, or NULL when unset. */
Keel__Api__V1__ObjectMeta *api_object_meta(const api_kind *k, const ProtobufCMessage *obj);
/* The metadata, created empty when unset (never NULL). */
Keel__Api__V1__ObjectMeta *api_object_meta_ensure(const api_kind *k, ProtobufCMessage *obj);
/* Sub-message slots for spec and status (NULL when the kind has none). Writing
 * through them replaces the sub-message; the caller frees what it replaces. */
ProtobufCMessage **api_object_spec_slot(const api_kind *k, ProtobufCMessage *obj);
ProtobufCMessage **api_object_status_slot(const api_kind *k, ProtobufCMessage *obj);
/* Sets apiVersion and kind to the registry's values (replacing what was there). */
void api_object_set_type_meta(const api_kind *k, ProtobufCMessage *obj);
/* Clears apiVersion and kind (objects are stored without them). */
void api_object_clear_type_meta(const api_kind *k, ProtobufCMessage *obj);

/* The value of a selectable field ("metadata.name", "spec.nodeName",
 * "status.phase", "spec.unschedulable") as text, written into buf (bools as
 * "true"/"false", integers in decimal, an unset string as ""). Path segments
 * match proto field names ignoring case and underscores, so "podIP" finds
 * pod_ip. Returns buf, or NULL when the path names no scalar field. */
const char *api_object_field_text(const api_kind *k, const ProtobufCMessage *obj, const char *path,
                                  char *buf, size_t buflen);

/* True when `field` is selectable for k (metadata.name, metadata.namespace or one
 * of k->selectable_fields). */
bool api_kind_field_selectable(const api_kind *k, const char *field);

/* A fresh, initialised (empty) message of descriptor desc; free with
 * protobuf_c_message_free_unpacked(msg, NULL). NULL on allocation failure. */
ProtobufCMessage *api_message_new(const ProtobufCMessageDescriptor *desc);

/* Drops every unknown field (recursively): a client's fields this server does
 * not know must not be stored and served back to everyone. (protobuf-c also
 * keeps a malformed field-0 tag as an unknown field and packs it in a form its
 * own decoder refuses, so a stored one would poison the key.) */
void api_message_strip_unknown(ProtobufCMessage *msg);

/* What the apiserver does to every request before anything else: strips
 * unknown fields and keeps the last entry of each key in every map field, as
 * proto3 (and Kubernetes' Go maps) read a repeated key; otherwise the JSON
 * view (last) and label selectors (first) would disagree about the object. */
void api_message_normalize(ProtobufCMessage *msg);

/* Deep copy through pack/unpack; NULL on failure. */
ProtobufCMessage *api_message_clone(const ProtobufCMessage *msg);

/* Replaces a proto3 string field (*slot) with a copy of value: frees the old
 * value unless it is protobuf-c's shared empty string, which an unset field
 * and a NULL or "" value (or a failed copy) point to, so the message stays
 * freeable by protobuf_c_message_free_unpacked. value may point into the old
 * string. */
void api_string_set(char **slot, const char *value);

/* Whether a FAILED_PRECONDITION message is one of Kubernetes' 409 Conflicts
 * ("Operation cannot be fulfilled on ...", "Precondition failed: ...") rather
 * than one of its 400 BadRequests (a pod with no node for logs, exec into a
 * finished pod): the REST gateway and the CLI pick the reason by it. */
bool api_message_is_conflict(const char *message);

#endif
