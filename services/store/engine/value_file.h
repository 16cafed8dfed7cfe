/* services/store/engine/value_file.h — a snapshot file that record values are
 * read back from.
 *
 * Once a snapshot is durable, the values it holds are dropped from memory and
 * read with pread from the file instead (never mmap: touched pages would count
 * in the process's resident memory). A value_file is that file's open
 * descriptor with a reference count: every record whose value lives in it holds
 * one reference, and so may anyone reading outside the store's lock. The file
 * name can be renamed over or unlinked (snapshot retention) while references
 * remain: the descriptor keeps the inode readable, and the disk space is freed
 * when the last reference closes it.
 *
 * Thread-safe: references are atomic; pread has no shared file position. */
#ifndef KEEL_SERVICES_STORE_ENGINE_VALUE_FILE_H
#define KEEL_SERVICES_STORE_ENGINE_VALUE_FILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct value_file value_file;

/* Takes fd (an O_RDONLY descriptor of the snapshot file at `path`, used in
 * log lines) with one reference held by the caller. NULL when out of memory
 * (fd is then closed). */
value_file *value_file_adopt(int fd, const char *path, uint64_t index);

void value_file_ref(value_file *f);
/* Drops a reference; the last one closes the descriptor. NULL is ignored. */
void value_file_unref(value_file *f);

/* Reads len bytes at off into dst. 0, or -EIO (a read error or a short read:
 * the file was truncated under us), logged with the file and the offset. */
int value_file_read(value_file *f, uint64_t off, void *dst, size_t len);

uint64_t value_file_index(const value_file *f);
/* Files open (tests and metrics): every value_file not yet closed. */
long value_file_open_count(void);

#endif
