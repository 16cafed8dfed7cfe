/* services/store/wal/fsutil.c — see fsutil.h. */
#define _GNU_SOURCE
#include "services/store/wal/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/base/cleanup.h"

int fs_fsync_fd(int fd, const char *what, keel_error *err) {
  while (fsync(fd) < 0) {
    if (errno != EINTR) return keel_error_set_errno(err, errno, "fsync %s", what);
  }
  return 0;
}

static int fsync_path_dir(const char *path, keel_error *err) {
  cleanup_close int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return keel_error_set_errno(err, errno, "open directory %s", path);
  return fs_fsync_fd(fd, path, err);
}

int fs_mkdir_p(const char *path, mode_t mode, keel_error *err) {
  char buf[PATH_MAX];
  size_t n = strlen(path);
  if (n == 0 || n >= sizeof(buf)) return keel_error_set(err, ENAMETOOLONG, "bad directory path");
  memcpy(buf, path, n + 1);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  /* Walk every prefix ending before a '/', then the whole path. */
  for (size_t i = 1; i <= n; i++) {
    if (i < n && buf[i] != '/') continue;
    char saved = buf[i];
    buf[i] = '\0';
    struct stat st;
    if (stat(buf, &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        buf[i] = saved;
        return keel_error_set(err, ENOTDIR, "%s is not a directory", path);
      }
    } else if (errno == ENOENT) {
      if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return keel_error_set_errno(err, errno, "mkdir %s", buf);
      /* The parent now has a new entry: make it durable. */
      char *slash = strrchr(buf, '/');
      int rc;
      if (!slash)
        rc = fsync_path_dir(".", err);
      else if (slash == buf)
        rc = fsync_path_dir("/", err);
      else {
        *slash = '\0';
        rc = fsync_path_dir(buf, err);
        *slash = '/';
      }
      if (rc < 0) return rc;
    } else {
      return keel_error_set_errno(err, errno, "stat %s", buf);
    }
    buf[i] = saved;
  }
  return 0;
}

int fs_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset) {
  const uint8_t *p = buf;
  while (len > 0) {
    ssize_t w = pwrite(fd, p, len, (off_t)offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return -EIO;
    p += w;
    len -= (size_t)w;
    offset += (uint64_t)w;
  }
  return 0;
}

int fs_map_file(int dirfd, const char *name, const uint8_t **data, size_t *size, keel_error *err) {
  *data = NULL;
  *size = 0;
  cleanup_close int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return keel_error_set_errno(err, errno, "open %s", name);
  struct stat st;
  if (fstat(fd, &st) < 0) return keel_error_set_errno(err, errno, "stat %s", name);
  if (!S_ISREG(st.st_mode)) return keel_error_set(err, EINVAL, "%s is not a regular file", name);
  if (st.st_size == 0) return 0;
  void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (p == MAP_FAILED) return keel_error_set_errno(err, errno, "mmap %s", name);
  *data = p;
  *size = (size_t)st.st_size;
  return 0;
}

void fs_unmap(const uint8_t *data, size_t size) {
  if (data && size) munmap((void *)data, size);
}

uint64_t fs_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
