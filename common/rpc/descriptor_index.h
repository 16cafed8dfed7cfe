/* common/rpc/descriptor_index.h — an index over serialized
 * google.protobuf.FileDescriptorSets, for server reflection and for checking
 * declared method kinds.
 *
 * Files are deduplicated by name (the first one added wins); so are symbols.
 * Symbols are fully-qualified proto names without the leading dot: services
 * ("pkg.Svc"), methods ("pkg.Svc.Method"), messages including nested ones
 * ("pkg.Outer.Inner"), fields and oneofs ("pkg.Msg.field"), enums, enum values
 * and extensions. Enum values follow proto scoping — they are siblings of their
 * enum ("pkg.VALUE" for a top-level enum) — and are also found, leniently, under
 * the enum ("pkg.Enum.VALUE") when no real symbol has that name.
 *
 * Each file keeps the exact bytes it had in the set, so reflection answers with
 * what protoc wrote. The index has no locks: build it on one thread, then read it
 * from any number. Nothing here knows about gRPC. */
#ifndef KEEL_COMMON_RPC_DESCRIPTOR_INDEX_H
#define KEEL_COMMON_RPC_DESCRIPTOR_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "common/base/error.h"

typedef struct descriptor_index descriptor_index;

typedef enum {
  DESC_SYMBOL_SERVICE = 1,
  DESC_SYMBOL_METHOD,
  DESC_SYMBOL_MESSAGE,
  DESC_SYMBOL_FIELD,
  DESC_SYMBOL_ONEOF,
  DESC_SYMBOL_ENUM,
  DESC_SYMBOL_ENUM_VALUE,
  DESC_SYMBOL_EXTENSION,
} desc_symbol_kind;

/* An empty index; NULL when out of memory. */
descriptor_index *descriptor_index_create(void);
void descriptor_index_destroy(descriptor_index *ix);

/* Parses one serialized FileDescriptorSet and indexes its files. On -EINVAL (not
 * a FileDescriptorSet, a file without a name, messages nested deeper than 64)
 * err says what and the index is unchanged; after -ENOMEM it may hold part of
 * the set, consistently. */
int descriptor_index_add_set(descriptor_index *ix, const void *set, size_t len, keel_error *err);

/* Files, in the order they were first added. */
size_t descriptor_index_file_count(const descriptor_index *ix);
const char *descriptor_index_file_name(const descriptor_index *ix, size_t file);
/* The serialized FileDescriptorProto (borrowed; valid for the index's life). */
void descriptor_index_file_bytes(const descriptor_index *ix, size_t file, const uint8_t **data,
                                 size_t *len);
/* The file named `name`, or -1. */
int descriptor_index_find_file(const descriptor_index *ix, const char *name);

/* Writes `file` and every file it imports, transitively, into out in dependency
 * order (each import before its importers, `file` last). out must have room for
 * descriptor_index_file_count entries. Imports absent from the index are
 * skipped (an import cycle is broken where it closes). Returns the count, or
 * -ENOMEM. */
int descriptor_index_file_closure(const descriptor_index *ix, size_t file, int *out);

/* The file that defines `symbol` (a leading '.' is accepted), or -1. *kind, when
 * kind is not NULL and the symbol exists, receives what it is. */
int descriptor_index_find_symbol(const descriptor_index *ix, const char *symbol,
                                 desc_symbol_kind *kind);

/* The streaming kind of "/pkg.Svc/Method" from client_streaming and
 * server_streaming: 0 unary, 1 server-, 2 client-, 3 bidi-streaming (the values
 * of rpc_kind), or -1 when no such method is indexed. */
int descriptor_index_method_kind(const descriptor_index *ix, const char *path);

/* Services ("pkg.Svc"), in the order their files were added. */
size_t descriptor_index_service_count(const descriptor_index *ix);
const char *descriptor_index_service_name(const descriptor_index *ix, size_t i);

/* The file that declares extension `number` of message `extendee` ("pkg.Msg";
 * a leading '.' is accepted), or -1. */
int descriptor_index_find_extension(const descriptor_index *ix, const char *extendee,
                                    int32_t number);

/* Every extension number of message `type`, ascending, without duplicates:
 * returns the count and sets *numbers to a malloc'ed array the caller frees
 * (NULL when the count is 0). -ENOENT when `type` is not a message in the index
 * (a known message without extensions gives 0), -ENOMEM. */
int descriptor_index_extension_numbers(const descriptor_index *ix, const char *type,
                                       int32_t **numbers);

#endif
