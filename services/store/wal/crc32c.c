/* services/store/wal/crc32c.c — see crc32c.h.
 *
 * Software path: slicing-by-8 (eight 256-entry tables, 8 KiB) processes eight
 * bytes per step with eight table lookups; the tables are built once under
 * pthread_once. Hardware path: the SSE4.2 crc32 instruction, compiled with a
 * target attribute so the rest of the build needs no -msse4.2. Both keep the
 * register inverted (~crc) between calls so calls chain. */
#include "services/store/wal/crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

#define CRC32C_POLY_REFLECTED 0x82F63B78u

static uint32_t g_table[8][256];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static bool g_hw;

static void crc32c_init(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ CRC32C_POLY_REFLECTED : c >> 1;
    g_table[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = g_table[0][i];
    for (int t = 1; t < 8; t++) {
      c = g_table[0][c & 0xff] ^ (c >> 8);
      g_table[t][i] = c;
    }
  }
#if defined(__x86_64__)
  __builtin_cpu_init();
  g_hw = __builtin_cpu_supports("sse4.2");
#endif
}

bool crc32c_hw_available(void) {
  pthread_once(&g_once, crc32c_init);
  return g_hw;
}

uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len) {
  pthread_once(&g_once, crc32c_init);
  const uint8_t *p = buf;
  uint32_t c = ~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8); /* little-endian: x86-64 and every platform Keel targets */
    uint32_t lo = (uint32_t)w ^ c;
    uint32_t hi = (uint32_t)(w >> 32);
    c = g_table[7][lo & 0xff] ^ g_table[6][(lo >> 8) & 0xff] ^ g_table[5][(lo >> 16) & 0xff] ^
        g_table[4][lo >> 24] ^ g_table[3][hi & 0xff] ^ g_table[2][(hi >> 8) & 0xff] ^
        g_table[1][(hi >> 16) & 0xff] ^ g_table[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--) c = g_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len) {
  const uint8_t *p = buf;
  uint64_t c = (uint32_t)~crc;
  while (len >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = _mm_crc32_u64(c, w);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len--) c32 = _mm_crc32_u8(c32, *p++);
  return ~c32;
}
#else
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len) {
  return crc32c_sw(crc, buf, len);
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len) {
  pthread_once(&g_once, crc32c_init);
  return g_hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
}
