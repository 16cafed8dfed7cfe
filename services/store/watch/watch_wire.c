/* services/store/watch/watch_wire.c — see watch_wire.h. The prefix is written
 * by hand: it is built for every watcher of every response, where protobuf-c's
 * descriptor walk would cost more than the bytes. Events go through protobuf-c
 * (once per revision). */
#include "services/store/watch/watch_wire.h"

#define TAG(field, wire) ((uint8_t)((field) << 3 | (wire)))
#define VARINT 0
#define LEN 2

static size_t varint(uint8_t *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (uint8_t)v;
  return n;
}

/* A proto3 scalar: nothing when zero. */
static size_t field_varint(uint8_t *out, unsigned field, uint64_t v) {
  if (v == 0) return 0;
  out[0] = TAG(field, VARINT);
  return 1 + varint(out + 1, v);
}

size_t watch_wire_prefix(uint8_t *out, const Etcdserverpb__ResponseHeader *base, int64_t revision,
                         int64_t watch_id, bool fragment) {
  uint8_t hdr[48];
  size_t h = 0;
  h += field_varint(hdr + h, 1, base->cluster_id);
  h += field_varint(hdr + h, 2, base->member_id);
  h += field_varint(hdr + h, 3, (uint64_t)revision);
  h += field_varint(hdr + h, 4, base->raft_term);
  size_t n = 0;
  out[n++] = TAG(1, LEN);
  out[n++] = (uint8_t)h; /* < 128: one byte */
  for (size_t i = 0; i < h; i++) out[n++] = hdr[i];
  n += field_varint(out + n, 2, (uint64_t)watch_id); /* int64: negative is 10 bytes */
  if (fragment) {
    out[n++] = TAG(7, VARINT);
    out[n++] = 1;
  }
  return n;
}

size_t watch_field_size(size_t size) {
  uint8_t tmp[10];
  return 1 + varint(tmp, size) + size;
}

size_t watch_wire_event(uint8_t *out, const Mvccpb__Event *e, size_t body) {
  size_t n = 0;
  out[n++] = TAG(11, LEN);
  n += varint(out + n, body);
  return n + mvccpb__event__pack(e, out + n);
}
