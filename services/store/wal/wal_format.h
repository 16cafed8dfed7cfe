/* services/store/wal/wal_format.h — the on-disk format of WAL segments, as pure
 * functions over bytes (no I/O), so recovery logic is testable and fuzzable.
 * Internal to //services/store/wal; the contract users see is wal.h.
 *
 * A segment file is named <seq>-<first_index>.wal, both 16 lowercase hex digits
 * (so names sort in log order), and holds:
 *
 *   header (32 bytes, little-endian):
 *     0  magic    "KEELWAL\n"
 *     8  version  u32 = 1
 *     12 crc      u32 crc32c of the 32 header bytes with this field zeroed
 *     16 seq      u64  (equal to the name's)
 *     24 first    u64  index of the first record (equal to the name's)
 *   frames, back to back from offset 32, each:
 *     u32 length of payload (1..WAL_MAX_RECORD_BYTES)
 *     u32 crc32c of the payload
 *     payload
 *   then zeros up to the preallocated size (the active segment only).
 *
 * A length of 0 never starts a frame (empty payloads are refused on append),
 * which is what makes preallocated zeros read as "end of log": an all-zero
 * header would otherwise carry a valid CRC (crc32c of nothing is 0). */
#ifndef KEEL_STORE_WAL_WAL_FORMAT_H
#define KEEL_STORE_WAL_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WAL_SEGMENT_HEADER_SIZE 32
#define WAL_FRAME_HEADER_SIZE 8
#define WAL_SEGMENT_VERSION 1
#define WAL_SEGMENT_NAME_LEN 37 /* 16 + 1 + 16 + ".wal" */
#define WAL_MAX_RECORD_BYTES_ (64u << 20)

void wal_put_u32(uint8_t *p, uint32_t v);
void wal_put_u64(uint8_t *p, uint64_t v);
uint32_t wal_get_u32(const uint8_t *p);
uint64_t wal_get_u64(const uint8_t *p);

/* "<seq>-<first>.wal" into buf (at least WAL_SEGMENT_NAME_LEN + 1 bytes). */
void wal_segment_name(char *buf, uint64_t seq, uint64_t first_index);
/* True when name is exactly a segment name; fills seq and first_index. */
bool wal_segment_name_parse(const char *name, uint64_t *seq, uint64_t *first_index);

void wal_segment_header_encode(uint8_t hdr[WAL_SEGMENT_HEADER_SIZE], uint64_t seq,
                               uint64_t first_index);
/* NULL when valid (fills seq and first_index), else a reason. */
const char *wal_segment_header_decode(const uint8_t *data, size_t size, uint64_t *seq,
                                      uint64_t *first_index);

/* The frame header for payload. */
void wal_frame_header(uint8_t hdr[WAL_FRAME_HEADER_SIZE], const void *payload, size_t len);

/* Why a scan stopped. */
typedef enum {
  WAL_SCAN_END = 0,       /* the data ended exactly after a frame */
  WAL_SCAN_ZERO_LENGTH,   /* a length field of 0 (preallocated space, or garbage) */
  WAL_SCAN_SHORT_HEADER,  /* fewer than 8 bytes left for a frame header */
  WAL_SCAN_TOO_LONG,      /* a length above the maximum record size */
  WAL_SCAN_SHORT_PAYLOAD, /* the payload runs past the end of the data */
  WAL_SCAN_BAD_CRC,       /* the payload does not match its checksum */
} wal_scan_stop;

const char *wal_scan_stop_name(wal_scan_stop s);

typedef struct wal_scan_result {
  uint64_t records;   /* valid frames */
  size_t end;         /* offset just past the last valid frame */
  wal_scan_stop stop; /* what was found at `end` */
  bool tail_zero;     /* every byte of [end, size) is zero (true when end == size) */
} wal_scan_result;

/* Called for each valid frame in order; non-zero stops the scan and is returned. */
typedef int (*wal_frame_fn)(void *arg, size_t offset, const uint8_t *payload, size_t len);

/* Walks frames of data[start..size) until the first one that is not valid.
 * fn may be NULL. Returns 0 or fn's non-zero return. Never reads outside
 * data[0..size). */
int wal_scan_frames(const uint8_t *data, size_t size, size_t start, wal_frame_fn fn, void *arg,
                    wal_scan_result *out);

#endif
