/* services/store/wal/fsutil.h — small durable-filesystem helpers shared by the
 * WAL and snapshots. Internal to //services/store/wal.
 *
 * "Durable" means the change survives a power cut once the call returns: file
 * data and metadata are fsynced, and so is the directory entry that names it. */
#ifndef KEEL_STORE_WAL_FSUTIL_H
#define KEEL_STORE_WAL_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/base/error.h"

/* mkdir -p with mode for every created component; each created directory's
 * parent is fsynced so the new entry is durable. Returns 0 or -errno. */
int fs_mkdir_p(const char *path, mode_t mode, keel_error *err);

/* fsync of an open directory (or any fd); -errno on failure. */
int fs_fsync_fd(int fd, const char *what, keel_error *err);

/* Writes all of buf at offset (retrying short writes and EINTR). */
int fs_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);

/* Reads the whole regular file at dirfd/name into a fresh mmap (read-only,
 * private). *data is NULL when the file is empty. Release with fs_unmap. */
int fs_map_file(int dirfd, const char *name, const uint8_t **data, size_t *size, keel_error *err);
void fs_unmap(const uint8_t *data, size_t size);

/* Monotonic clock in nanoseconds. */
uint64_t fs_now_ns(void);

#endif
