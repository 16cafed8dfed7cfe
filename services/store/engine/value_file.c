/* services/store/engine/value_file.c — see value_file.h. */
#define _GNU_SOURCE
#include "services/store/engine/value_file.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log/log.h"

struct value_file {
  atomic_long refs;
  int fd;
  uint64_t index;
  char *path;
};

static atomic_long open_files;

value_file *value_file_adopt(int fd, const char *path, uint64_t index) {
  value_file *f = calloc(1, sizeof(*f));
  char *p = strdup(path ? path : "?");
  if (!f || !p) {
    free(f);
    free(p);
    close(fd);
    return NULL;
  }
  atomic_init(&f->refs, 1);
  f->fd = fd;
  f->index = index;
  f->path = p;
  atomic_fetch_add(&open_files, 1);
  return f;
}

void value_file_ref(value_file *f) { atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); }

void value_file_unref(value_file *f) {
  if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1) return;
  close(f->fd);
  free(f->path);
  free(f);
  atomic_fetch_sub(&open_files, 1);
}

int value_file_read(value_file *f, uint64_t off, void *dst, size_t len) {
  uint8_t *p = dst;
  size_t done = 0;
  int err = 0;
  while (done < len) {
    ssize_t n = pread(f->fd, p + done, len - done, (off_t)(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO; /* 0: the file ends before the value does */
      break;
    }
    done += (size_t)n;
  }
  if (!err) return 0;
  LOG_ERROR("store: cannot read a value from a snapshot file", "file", f->path, "offset",
            log_int((long long)off), "length", log_int((long long)len), "read", log_int((long long)done),
            "error", strerror(err));
  return -EIO;
}

uint64_t value_file_index(const value_file *f) { return f->index; }
long value_file_open_count(void) { return atomic_load(&open_files); }
