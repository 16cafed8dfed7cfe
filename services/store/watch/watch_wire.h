/* services/store/watch/watch_wire.h — a WatchResponse on the wire as two
 * parts: a few bytes that differ per watcher, then events that are the same
 * bytes for every watcher of a revision.
 *
 * protobuf lets a message's fields come in any order and a repeated field in
 * pieces, and WatchResponse's events (field 11) follow every other field
 * anyway, so prefix + events is byte for byte what protobuf-c packs for the
 * same message (watch_wire_test checks that). Each event is encoded once per
 * revision as a whole field entry: tag 0x5a, length, mvccpb.Event. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_WIRE_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "etcd/mvccpb/kv.pb-c.h"

/* The longest prefix: header (2 + 4 fields of at most 11 bytes), watch_id (11),
 * fragment (2). */
#define WATCH_PREFIX_MAX 64

/* Writes the fields of a WatchResponse that precede its events: header = base
 * with revision, watch_id, fragment (proto3: zero values are left out, the
 * header never). Returns the length (<= WATCH_PREFIX_MAX). */
size_t watch_wire_prefix(uint8_t *out, const Etcdserverpb__ResponseHeader *base, int64_t revision,
                         int64_t watch_id, bool fragment);

/* Bytes a length-delimited field (1..15) of `size` bytes takes in a message:
 * what an event of packed size `size` takes as one entry of events. */
size_t watch_field_size(size_t size);

/* Writes e as one entry of WatchResponse.events; body is
 * mvccpb__event__get_packed_size(e) and out has watch_field_size(body) bytes.
 * Returns the length written. */
size_t watch_wire_event(uint8_t *out, const Mvccpb__Event *e, size_t body);

#endif
