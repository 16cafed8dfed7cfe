/* services/store/wal/crc32c.h — CRC-32C (Castagnoli), the checksum of every
 * WAL frame and snapshot chunk.
 *
 * The same polynomial as ext4, iSCSI and etcd's WAL. x86-64 CPUs with SSE4.2
 * compute it in hardware (_mm_crc32_u64, 8 bytes per instruction); others use
 * a slicing-by-8 table. The choice is made once, at first use, by
 * __builtin_cpu_supports("sse4.2"); both give identical results (tested). */
#ifndef KEEL_STORE_WAL_CRC32C_H
#define KEEL_STORE_WAL_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) over buf[0..len): crc32c(crc32c(0, a), b) equals
 * crc32c(0, a followed by b). crc32c(0, "123456789", 9) == 0xE3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The two implementations, for tests and benchmarks. crc32c_hw must only be
 * called when crc32c_hw_available() is true. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);
uint32_t crc32c_hw(uint32_t crc, const void *buf, size_t len);
bool crc32c_hw_available(void);

#endif
