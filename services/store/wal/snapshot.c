/* services/store/wal/snapshot.c — see snapshot.h.
 *
 * The writer streams through a 1 MiB buffer (chunks above it go straight to
 * the file), so a snapshot of any size uses bounded memory. The loader maps
 * the file, verifies it completely (every chunk CRC, the trailer's counts, the
 * exact end), and only then walks it again to deliver chunks. */
#define _GNU_SOURCE
#include "services/store/wal/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/base/cleanup.h"
#include "common/log/log.h"
#include "services/store/wal/crc32c.h"
#include "services/store/wal/fsutil.h"
#include "services/store/wal/wal_format.h"

#define SNAP_HEADER_SIZE 32
#define SNAP_FRAME_HEADER 8
#define SNAP_TRAILER_BODY 24
#define SNAP_VERSION 1
#define SNAP_NAME_LEN 21 /* 16 hex + ".snap" */
#define SINK_BUFFER (1u << 20)

static const uint8_t k_magic[8] = {'K', 'E', 'E', 'L', 'S', 'N', 'P', '\n'};

/* ---------- format ---------- */

static void header_encode(uint8_t h[SNAP_HEADER_SIZE], uint64_t index) {
  memset(h, 0, SNAP_HEADER_SIZE);
  memcpy(h, k_magic, 8);
  wal_put_u32(h + 8, SNAP_VERSION);
  wal_put_u64(h + 16, index);
  wal_put_u32(h + 12, crc32c(0, h, SNAP_HEADER_SIZE));
}

static void trailer_encode(uint8_t t[SNAP_FRAME_HEADER + SNAP_TRAILER_BODY], uint64_t chunks,
                           uint64_t bytes, uint64_t index) {
  wal_put_u32(t, 0);
  wal_put_u64(t + 8, chunks);
  wal_put_u64(t + 16, bytes);
  wal_put_u64(t + 24, index);
  wal_put_u32(t + 4, crc32c(0, t + 8, SNAP_TRAILER_BODY));
}

#define FAIL(msg, off)         \
  do {                         \
    if (why) *why = msg;       \
    if (offset) *offset = off; \
    return -EBADMSG;           \
  } while (0)

/* One walk: verify (fn and fn_at NULL) or deliver (one set; only after a verify). */
static int walk(const uint8_t *data, size_t size, snapshot_chunk_fn fn, snapshot_chunk_at_fn fn_at,
                int fd, void *arg, uint64_t *index, const char **why, size_t *offset) {
  if (size < SNAP_HEADER_SIZE) FAIL("file shorter than the header", 0);
  if (memcmp(data, k_magic, 8) != 0) FAIL("not a snapshot (bad magic)", 0);
  uint8_t h[SNAP_HEADER_SIZE];
  memcpy(h, data, sizeof(h));
  memset(h + 12, 0, 4);
  if (crc32c(0, h, sizeof(h)) != wal_get_u32(data + 12)) FAIL("header checksum mismatch", 0);
  if (wal_get_u32(data + 8) != SNAP_VERSION) FAIL("unsupported snapshot version", 8);
  uint64_t idx = wal_get_u64(data + 16);
  size_t off = SNAP_HEADER_SIZE;
  uint64_t chunks = 0, bytes = 0;
  for (;;) {
    if (size - off < SNAP_FRAME_HEADER) FAIL("truncated (no trailer)", off);
    uint32_t len = wal_get_u32(data + off);
    uint32_t crc = wal_get_u32(data + off + 4);
    if (len == 0) {
      if (size - off != SNAP_FRAME_HEADER + SNAP_TRAILER_BODY) {
        if (size - off < SNAP_FRAME_HEADER + SNAP_TRAILER_BODY) FAIL("truncated trailer", off);
        FAIL("bytes after the trailer", off + SNAP_FRAME_HEADER + SNAP_TRAILER_BODY);
      }
      const uint8_t *t = data + off + SNAP_FRAME_HEADER;
      if (crc32c(0, t, SNAP_TRAILER_BODY) != crc) FAIL("trailer checksum mismatch", off);
      if (wal_get_u64(t) != chunks || wal_get_u64(t + 8) != bytes || wal_get_u64(t + 16) != idx)
        FAIL("trailer does not match the content", off);
      break;
    }
    if (len > SNAPSHOT_MAX_CHUNK) FAIL("chunk length out of range", off);
    if (size - off - SNAP_FRAME_HEADER < len) FAIL("truncated chunk", off);
    const uint8_t *p = data + off + SNAP_FRAME_HEADER;
    if (crc32c(0, p, len) != crc) FAIL("chunk checksum mismatch", off);
    if (fn || fn_at) {
      int rc = fn ? fn(arg, p, len) : fn_at(arg, p, len, (uint64_t)(off + SNAP_FRAME_HEADER), fd);
      if (rc != 0) return rc < 0 ? rc : -ECANCELED;
    }
    chunks++;
    bytes += len;
    off += SNAP_FRAME_HEADER + len;
  }
  if (index) *index = idx;
  return 0;
}

int snapshot_parse(const uint8_t *data, size_t size, snapshot_chunk_fn fn, void *arg,
                   uint64_t *index, const char **why, size_t *offset) {
  if (!data && size) return -EINVAL;
  static const uint8_t empty[1];
  if (!data) data = empty;
  int rc = walk(data, size, NULL, NULL, -1, NULL, index, why, offset);
  if (rc < 0 || !fn) return rc;
  return walk(data, size, fn, NULL, -1, arg, NULL, why, offset);
}

/* ---------- names ---------- */

static void snap_name(char buf[SNAP_NAME_LEN + 1], uint64_t index) {
  snprintf(buf, SNAP_NAME_LEN + 1, "%016" PRIx64 ".snap", index);
}

static bool snap_name_parse(const char *name, uint64_t *index) {
  if (strlen(name) != SNAP_NAME_LEN || strcmp(name + 16, ".snap") != 0) return false;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = name[i];
    int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
    if (d < 0) return false;
    v = (v << 4) | (uint64_t)d;
  }
  *index = v;
  return true;
}

static int cmp_desc(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x > y ? -1 : x < y;
}

/* Indexes of every <index>.snap in dirfd, newest first. */
static int list_snapshots(int dirfd, const char *dir, uint64_t **out, size_t *nout, bool remove_tmp,
                          const char *keep_tmp, keel_error *err) {
  *out = NULL;
  *nout = 0;
  int fd = dup(dirfd);
  if (fd < 0) return keel_error_set_errno(err, errno, "snapshot %s: dup", dir);
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return keel_error_set_errno(err, errno, "snapshot %s: opendir", dir);
  }
  rewinddir(d);
  uint64_t *v = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  int rc = 0;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    if (remove_tmp && len > 9 && strcmp(de->d_name + len - 9, ".snap.tmp") == 0 &&
        (!keep_tmp || strcmp(de->d_name, keep_tmp) != 0)) {
      unlinkat(dirfd, de->d_name, 0);
      continue;
    }
    uint64_t idx;
    if (!snap_name_parse(de->d_name, &idx)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 8;
      uint64_t *nv = realloc(v, cap * sizeof(*nv));
      if (!nv) {
        rc = keel_error_set(err, ENOMEM, "snapshot %s: out of memory", dir);
        break;
      }
      v = nv;
    }
    v[n++] = idx;
  }
  closedir(d);
  if (rc < 0) {
    free(v);
    return rc;
  }
  if (n) qsort(v, n, sizeof(*v), cmp_desc);
  *out = v;
  *nout = n;
  return 0;
}

static int open_locked_dir(const char *dir, bool create, keel_error *err) {
  if (create && fs_mkdir_p(dir, 0700, err) < 0) return keel_error_wrap(err, "snapshot");
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return keel_error_set_errno(err, errno, "snapshot: open %s", dir);
  while (flock(fd, LOCK_EX) < 0) {
    if (errno == EINTR) continue;
    int e = errno;
    close(fd);
    return keel_error_set_errno(err, e, "snapshot %s: lock", dir);
  }
  return fd;
}

/* ---------- write ---------- */

struct snapshot_sink {
  int fd;
  uint8_t *buf;
  size_t used;
  uint64_t off; /* file offset of buf[0] */
  uint64_t chunks, bytes;
  int error;
};

/* Writeback as we go (RocksDB's bytes_per_sync): start it for what was just
 * written and wait for what was started SINK_WRITEBACK_LAG earlier, so a large
 * snapshot never leaves hundreds of MB of dirty pages for its final fsync to
 * push at once, in front of the WAL's fdatasync. Best effort: the fsync at the
 * end is what makes the file durable. */
#define SINK_WRITEBACK_LAG (8u << 20)

static void sink_writeback(snapshot_sink *s, uint64_t from, uint64_t len) {
  sync_file_range(s->fd, (off64_t)from, (off64_t)len, SYNC_FILE_RANGE_WRITE);
  if (from >= SINK_WRITEBACK_LAG)
    sync_file_range(s->fd, (off64_t)(from - SINK_WRITEBACK_LAG), (off64_t)len,
                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
}

static int sink_flush(snapshot_sink *s) {
  if (s->error) return s->error;
  if (s->used) {
    int rc = fs_pwrite_all(s->fd, s->buf, s->used, s->off);
    if (rc < 0) return s->error = rc;
    sink_writeback(s, s->off, s->used);
    s->off += s->used;
    s->used = 0;
  }
  return 0;
}

static int sink_put(snapshot_sink *s, const void *p, size_t n) {
  if (s->error) return s->error;
  if (s->used + n > SINK_BUFFER) {
    int rc = sink_flush(s);
    if (rc < 0) return rc;
    if (n > SINK_BUFFER) {
      rc = fs_pwrite_all(s->fd, p, n, s->off);
      if (rc < 0) return s->error = rc;
      sink_writeback(s, s->off, n);
      s->off += n;
      return 0;
    }
  }
  memcpy(s->buf + s->used, p, n);
  s->used += n;
  return 0;
}

uint64_t snapshot_sink_offset(const snapshot_sink *s) {
  return s->off + s->used + SNAP_FRAME_HEADER;
}

int snapshot_sink_write(snapshot_sink *s, const void *chunk, size_t len) {
  if (!s || len == 0 || !chunk) return -EINVAL;
  if (len > SNAPSHOT_MAX_CHUNK) return -EMSGSIZE;
  if (s->error) return s->error;
  uint8_t h[SNAP_FRAME_HEADER];
  wal_put_u32(h, (uint32_t)len);
  wal_put_u32(h + 4, crc32c(0, chunk, len));
  int rc = sink_put(s, h, sizeof(h));
  if (rc == 0) rc = sink_put(s, chunk, len);
  if (rc == 0) {
    s->chunks++;
    s->bytes += len;
  }
  return rc;
}

/* Keeps the SNAPSHOT_KEEP newest and `just_written`; reports the oldest kept. */
static int retain(int dirfd, const char *dir, uint64_t just_written, uint64_t *oldest_kept,
                  keel_error *err) {
  uint64_t *v;
  size_t n;
  int rc = list_snapshots(dirfd, dir, &v, &n, true, NULL, err);
  if (rc < 0) return rc;
  uint64_t oldest = just_written;
  bool removed = false;
  for (size_t i = 0; i < n; i++) {
    if (i < SNAPSHOT_KEEP || v[i] == just_written) {
      if (v[i] < oldest) oldest = v[i];
      continue;
    }
    char name[SNAP_NAME_LEN + 1];
    snap_name(name, v[i]);
    if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT) {
      LOG_WARN("snapshot: cannot remove an old snapshot", "dir", dir, "file", name, "error",
               strerror(errno));
      if (v[i] < oldest) oldest = v[i];
      continue;
    }
    removed = true;
  }
  free(v);
  if (oldest_kept) *oldest_kept = oldest;
  if (removed) return fs_fsync_fd(dirfd, dir, err);
  return 0;
}

int snapshot_write(const char *dir, uint64_t index, snapshot_produce_fn produce, void *arg,
                   uint64_t *oldest_kept, keel_error *err) {
  if (!dir || !produce) return keel_error_set(err, EINVAL, "snapshot: bad arguments");
  cleanup_close int dirfd = open_locked_dir(dir, true, err);
  if (dirfd < 0) return dirfd;
  char name[SNAP_NAME_LEN + 1], tmp[SNAP_NAME_LEN + 5];
  snap_name(name, index);
  snprintf(tmp, sizeof(tmp), "%s.tmp", name);
  cleanup_free uint8_t *buf = malloc(SINK_BUFFER);
  if (!buf) return keel_error_set(err, ENOMEM, "snapshot %s: out of memory", dir);
  int fd = openat(dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return keel_error_set_errno(err, errno, "snapshot %s: create %s", dir, tmp);
  snapshot_sink s = {.fd = fd, .buf = buf};
  uint8_t h[SNAP_HEADER_SIZE];
  header_encode(h, index);
  int rc = sink_put(&s, h, sizeof(h));
  if (rc == 0) {
    rc = produce(arg, &s);
    if (rc > 0) rc = -ECANCELED;
    if (rc < 0) {
      keel_error_set_errno(err, -rc, "snapshot %s: producing %s", dir, name);
      goto fail;
    }
  }
  uint8_t t[SNAP_FRAME_HEADER + SNAP_TRAILER_BODY];
  trailer_encode(t, s.chunks, s.bytes, index);
  if (rc == 0) rc = sink_put(&s, t, sizeof(t));
  if (rc == 0) rc = sink_flush(&s);
  if (rc < 0) {
    keel_error_set_errno(err, -rc, "snapshot %s: write %s", dir, tmp);
    goto fail;
  }
  if ((rc = fs_fsync_fd(fd, tmp, err)) < 0) goto fail;
  close(fd);
  fd = -1;
  if (renameat(dirfd, tmp, dirfd, name) < 0) {
    rc = keel_error_set_errno(err, errno, "snapshot %s: rename %s", dir, tmp);
    goto fail;
  }
  if ((rc = fs_fsync_fd(dirfd, dir, err)) < 0) return rc;
  return retain(dirfd, dir, index, oldest_kept, err);
fail:
  if (fd >= 0) close(fd);
  unlinkat(dirfd, tmp, 0);
  return rc;
}

/* ---------- load ---------- */

static int load_latest(const char *dir, snapshot_chunk_fn fn, snapshot_chunk_at_fn fn_at, void *arg,
                       uint64_t *index, keel_error *err) {
  if (index) *index = 0;
  if (!dir) return keel_error_set(err, EINVAL, "snapshot: no directory");
  if (access(dir, F_OK) < 0 && errno == ENOENT) return 0;
  cleanup_close int dirfd = open_locked_dir(dir, false, err);
  if (dirfd < 0) return dirfd;
  cleanup_free uint64_t *v = NULL;
  size_t n;
  int rc = list_snapshots(dirfd, dir, &v, &n, false, NULL, err);
  if (rc < 0) return rc;
  for (size_t i = 0; i < n; i++) {
    char name[SNAP_NAME_LEN + 1];
    snap_name(name, v[i]);
    const uint8_t *data;
    size_t size;
    keel_error e = {0};
    if (fs_map_file(dirfd, name, &data, &size, &e) < 0) {
      if (e.code == ENOENT) continue;
      return keel_error_set(err, e.code, "snapshot %s: %s", dir, e.message);
    }
    uint64_t idx = 0;
    const char *why = NULL;
    size_t off = 0;
    rc = walk(data, size, NULL, NULL, -1, NULL, &idx, &why, &off);
    if (rc == 0 && idx != v[i]) {
      rc = -EBADMSG;
      why = "index in the header differs from the name";
    }
    if (rc < 0) {
      fs_unmap(data, size);
      char broken[SNAP_NAME_LEN + 8];
      snprintf(broken, sizeof(broken), "%s.broken", name);
      LOG_WARN("snapshot: skipping a damaged snapshot; trying an older one", "dir", dir, "file",
               name, "offset", log_int((long long)off), "reason", why, "renamed_to", broken);
      if (renameat(dirfd, name, dirfd, broken) < 0 || fs_fsync_fd(dirfd, dir, NULL) < 0)
        LOG_WARN("snapshot: cannot rename a damaged snapshot", "dir", dir, "file", name);
      continue;
    }
    int fd = -1;
    if (fn_at) {
      /* The directory lock keeps the file from being replaced meanwhile: this
       * is the file just verified. */
      fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
      if (fd < 0) {
        int e = errno;
        fs_unmap(data, size);
        return keel_error_set_errno(err, e, "snapshot %s: open %s", dir, name);
      }
    }
    rc = fn || fn_at ? walk(data, size, fn, fn_at, fd, arg, NULL, NULL, NULL) : 0;
    fs_unmap(data, size);
    if (fd >= 0) close(fd);
    if (rc < 0)
      return keel_error_set_errno(err, -rc, "snapshot %s/%s: loading refused by the reader", dir,
                                  name);
    if (index) *index = idx;
    return 1;
  }
  return 0;
}

int snapshot_load_latest(const char *dir, snapshot_chunk_fn fn, void *arg, uint64_t *index,
                         keel_error *err) {
  return load_latest(dir, fn, NULL, arg, index, err);
}

int snapshot_load_latest_at(const char *dir, snapshot_chunk_at_fn fn, void *arg, uint64_t *index,
                            keel_error *err) {
  return load_latest(dir, NULL, fn, arg, index, err);
}
