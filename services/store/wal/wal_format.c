/* services/store/wal/wal_format.c — see wal_format.h. */
#include "services/store/wal/wal_format.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "services/store/wal/crc32c.h"

static const uint8_t k_magic[8] = {'K', 'E', 'E', 'L', 'W', 'A', 'L', '\n'};

void wal_put_u32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void wal_put_u64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t wal_get_u32(const uint8_t *p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

uint64_t wal_get_u64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

void wal_segment_name(char *buf, uint64_t seq, uint64_t first_index) {
  snprintf(buf, WAL_SEGMENT_NAME_LEN + 1, "%016" PRIx64 "-%016" PRIx64 ".wal", seq, first_index);
}

static bool parse_hex16(const char *s, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = s[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return false;
    v = (v << 4) | (uint64_t)d;
  }
  *out = v;
  return true;
}

bool wal_segment_name_parse(const char *name, uint64_t *seq, uint64_t *first_index) {
  if (strlen(name) != WAL_SEGMENT_NAME_LEN) return false;
  if (name[16] != '-' || strcmp(name + 33, ".wal") != 0) return false;
  return parse_hex16(name, seq) && parse_hex16(name + 17, first_index);
}

void wal_segment_header_encode(uint8_t hdr[WAL_SEGMENT_HEADER_SIZE], uint64_t seq,
                               uint64_t first_index) {
  memset(hdr, 0, WAL_SEGMENT_HEADER_SIZE);
  memcpy(hdr, k_magic, sizeof(k_magic));
  wal_put_u32(hdr + 8, WAL_SEGMENT_VERSION);
  wal_put_u64(hdr + 16, seq);
  wal_put_u64(hdr + 24, first_index);
  wal_put_u32(hdr + 12, crc32c(0, hdr, WAL_SEGMENT_HEADER_SIZE));
}

const char *wal_segment_header_decode(const uint8_t *data, size_t size, uint64_t *seq,
                                      uint64_t *first_index) {
  if (size < WAL_SEGMENT_HEADER_SIZE) return "segment header is short";
  if (memcmp(data, k_magic, sizeof(k_magic)) != 0) return "not a wal segment (bad magic)";
  uint8_t copy[WAL_SEGMENT_HEADER_SIZE];
  memcpy(copy, data, sizeof(copy));
  memset(copy + 12, 0, 4);
  if (crc32c(0, copy, sizeof(copy)) != wal_get_u32(data + 12))
    return "segment header checksum mismatch";
  if (wal_get_u32(data + 8) != WAL_SEGMENT_VERSION) return "unsupported segment version";
  *seq = wal_get_u64(data + 16);
  *first_index = wal_get_u64(data + 24);
  return NULL;
}

void wal_frame_header(uint8_t hdr[WAL_FRAME_HEADER_SIZE], const void *payload, size_t len) {
  wal_put_u32(hdr, (uint32_t)len);
  wal_put_u32(hdr + 4, crc32c(0, payload, len));
}

const char *wal_scan_stop_name(wal_scan_stop s) {
  switch (s) {
    case WAL_SCAN_END:
      return "end of file";
    case WAL_SCAN_ZERO_LENGTH:
      return "zero length field";
    case WAL_SCAN_SHORT_HEADER:
      return "short frame header";
    case WAL_SCAN_TOO_LONG:
      return "frame length out of range";
    case WAL_SCAN_SHORT_PAYLOAD:
      return "short payload";
    case WAL_SCAN_BAD_CRC:
      return "checksum mismatch";
  }
  return "unknown";
}

static bool all_zero(const uint8_t *p, size_t n) {
  /* Word at a time; segments are tens of MiB of mostly zeros. */
  while (n && ((uintptr_t)p & 7)) {
    if (*p++) return false;
    n--;
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    if (w) return false;
    p += 8;
    n -= 8;
  }
  while (n--)
    if (*p++) return false;
  return true;
}

int wal_scan_frames(const uint8_t *data, size_t size, size_t start, wal_frame_fn fn, void *arg,
                    wal_scan_result *out) {
  memset(out, 0, sizeof(*out));
  size_t off = start < size ? start : size;
  wal_scan_stop stop = WAL_SCAN_END;
  int rc = 0;
  while (off < size) {
    if (size - off < WAL_FRAME_HEADER_SIZE) {
      stop = WAL_SCAN_SHORT_HEADER;
      break;
    }
    uint32_t len = wal_get_u32(data + off);
    uint32_t crc = wal_get_u32(data + off + 4);
    if (len == 0) {
      stop = WAL_SCAN_ZERO_LENGTH;
      break;
    }
    if (len > WAL_MAX_RECORD_BYTES_) {
      stop = WAL_SCAN_TOO_LONG;
      break;
    }
    if (size - off - WAL_FRAME_HEADER_SIZE < len) {
      stop = WAL_SCAN_SHORT_PAYLOAD;
      break;
    }
    const uint8_t *payload = data + off + WAL_FRAME_HEADER_SIZE;
    if (crc32c(0, payload, len) != crc) {
      stop = WAL_SCAN_BAD_CRC;
      break;
    }
    if (fn) {
      rc = fn(arg, off, payload, len);
      if (rc) break;
    }
    out->records++;
    off += WAL_FRAME_HEADER_SIZE + len;
  }
  out->end = off;
  out->stop = stop;
  out->tail_zero = off >= size || all_zero(data + off, size - off);
  return rc;
}
