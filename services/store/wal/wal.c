/* services/store/wal/wal.c — see wal.h.
 *
 * Write path. Appenders compute their frame header (length + CRC32C) outside
 * any lock, then take the queue mutex only to claim a slot in a fixed ring and
 * an index; the payload itself is borrowed, never copied. One writer thread
 * loops: take every queued entry (a batch), pwritev headers and payloads at the
 * segment's write offset, fdatasync, run the done callbacks in order, free the
 * slots. Entries queued while a batch syncs form the next batch: that is the
 * group commit, with no timer and no added latency for a lone writer.
 *
 * Segments are created complete before they are named: written to
 * "<name>.tmp" (header + fallocate), fsynced, renamed, directory fsynced. A
 * full segment is first truncated to its last record and fdatasync'ed, so
 * every segment but the last ends exactly at a frame boundary and preallocated
 * zeros only ever trail the last one.
 *
 * Recovery maps every segment, checks headers, frames and index continuity
 * without side effects, replays, and only then repairs the tail (copy to
 * .broken, truncate, re-preallocate) — a failed open changes nothing on disk. */
#define _GNU_SOURCE
#include "services/store/wal/wal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/base/cleanup.h"
#include "common/log/log.h"
#include "services/store/wal/fsutil.h"
#include "services/store/wal/wal_format.h"

_Static_assert(WAL_MAX_RECORD_BYTES == WAL_MAX_RECORD_BYTES_, "one record size limit");

#define MIN_SEGMENT_BYTES 4096u
#define IOV_BATCH 1024 /* IOV_MAX on Linux */

typedef struct segment {
  uint64_t seq;
  uint64_t first_index;
  char name[WAL_SEGMENT_NAME_LEN + 1];
} segment;

typedef struct wal_entry {
  const uint8_t *payload;
  size_t len;
  uint8_t hdr[WAL_FRAME_HEADER_SIZE];
  wal_done_fn done;
  void *arg;
} wal_entry;

struct wal {
  char *dir;
  int dirfd; /* holds the flock */
  wal_options opts;

  /* Segment list, oldest first; the last is the one being written. */
  pthread_mutex_t seg_mu;
  segment *segs;
  size_t nsegs, segs_cap;

  /* Writer thread only (and open/close around it). */
  int fd;
  uint64_t seg_offset;
  struct iovec *iov;

  /* Queue, under mu. Entries [head, head+count) of the ring, in index order:
   * the first `synced` are written and synced (or failed) and wait for their
   * callbacks, the first `taken` have been handed to the writer (synced <=
   * taken <= count); an entry's slot is free once its callback ran. */
  pthread_mutex_t mu;
  pthread_cond_t work_cv;  /* the writer waits for records */
  pthread_cond_t space_cv; /* appenders wait for room */
  pthread_cond_t done_cv;  /* the completer waits for synced records */
  wal_entry *ring;
  size_t cap, head, count, taken, synced, queued_bytes;
  uint64_t head_index; /* index of ring[head] */
  uint64_t next_index;
  int failed;          /* negative errno once poisoned */
  uint64_t fail_index; /* first index of the first failed batch (0: none) */
  bool completing;     /* callbacks are running (completer, or the writer inline) */
  bool closing;
  bool writer_done; /* the writer has stopped: the completer drains and stops */
  pthread_t writer, completer;
  bool writer_started, completer_started;
  wal_stats stats;
};

/* ---------- segment list ---------- */

static int segs_push(wal *w, uint64_t seq, uint64_t first_index) {
  if (w->nsegs == w->segs_cap) {
    size_t ncap = w->segs_cap ? w->segs_cap * 2 : 16;
    segment *n = realloc(w->segs, ncap * sizeof(*n));
    if (!n) return -ENOMEM;
    w->segs = n;
    w->segs_cap = ncap;
  }
  segment *s = &w->segs[w->nsegs++];
  s->seq = seq;
  s->first_index = first_index;
  wal_segment_name(s->name, seq, first_index);
  return 0;
}

static int preallocate(int fd, uint64_t size) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if ((uint64_t)st.st_size >= size) return 0;
  if (fallocate(fd, 0, st.st_size, (off_t)(size - (uint64_t)st.st_size)) == 0) return 0;
  if (errno != EOPNOTSUPP && errno != ENOSYS) return -errno;
  /* No fallocate here (some filesystems): a sparse extension reads as zeros too. */
  return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

/* Creates segment <seq>-<first_index>.wal durably; returns its fd open for writing. */
static int create_segment(wal *w, uint64_t seq, uint64_t first_index, keel_error *err) {
  char name[WAL_SEGMENT_NAME_LEN + 1], tmp[WAL_SEGMENT_NAME_LEN + 8];
  wal_segment_name(name, seq, first_index);
  snprintf(tmp, sizeof(tmp), "%s.tmp", name);
  int fd = openat(w->dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return keel_error_set_errno(err, errno, "wal %s: create %s", w->dir, tmp);
  uint8_t hdr[WAL_SEGMENT_HEADER_SIZE];
  wal_segment_header_encode(hdr, seq, first_index);
  int rc = preallocate(fd, w->opts.segment_bytes);
  if (rc < 0) {
    keel_error_set_errno(err, -rc, "wal %s: preallocate %s", w->dir, tmp);
    goto fail;
  }
  rc = fs_pwrite_all(fd, hdr, sizeof(hdr), 0);
  if (rc < 0) {
    keel_error_set_errno(err, -rc, "wal %s: write %s", w->dir, tmp);
    goto fail;
  }
  if (!w->opts.unsafe_no_fsync && (rc = fs_fsync_fd(fd, tmp, err)) < 0) goto fail;
  if (renameat(w->dirfd, tmp, w->dirfd, name) < 0) {
    rc = keel_error_set_errno(err, errno, "wal %s: rename %s", w->dir, tmp);
    goto fail;
  }
  if (!w->opts.unsafe_no_fsync && (rc = fs_fsync_fd(w->dirfd, w->dir, err)) < 0) {
    close(fd);
    return rc;
  }
  return fd;
fail:
  close(fd);
  unlinkat(w->dirfd, tmp, 0);
  return rc;
}

/* Ends the current segment at its last record and starts the next one. */
static int cut_segment(wal *w, uint64_t first_index, keel_error *err) {
  if (ftruncate(w->fd, (off_t)w->seg_offset) < 0)
    return keel_error_set_errno(err, errno, "wal %s: truncate full segment", w->dir);
  if (!w->opts.unsafe_no_fsync && fdatasync(w->fd) < 0)
    return keel_error_set_errno(err, errno, "wal %s: fdatasync full segment", w->dir);
  pthread_mutex_lock(&w->seg_mu);
  uint64_t seq = w->segs[w->nsegs - 1].seq + 1;
  pthread_mutex_unlock(&w->seg_mu);
  int fd = create_segment(w, seq, first_index, err);
  if (fd < 0) return fd;
  pthread_mutex_lock(&w->seg_mu);
  int rc = segs_push(w, seq, first_index);
  pthread_mutex_unlock(&w->seg_mu);
  if (rc < 0) {
    close(fd);
    return keel_error_set(err, -rc, "wal %s: out of memory", w->dir);
  }
  close(w->fd);
  w->fd = fd;
  w->seg_offset = WAL_SEGMENT_HEADER_SIZE;
  pthread_mutex_lock(&w->mu);
  w->stats.segments_created++;
  pthread_mutex_unlock(&w->mu);
  return 0;
}

/* ---------- writer ---------- */

static int pwritev_all(int fd, struct iovec *iov, size_t n, uint64_t off) {
  while (n > 0) {
    int cnt = n > IOV_BATCH ? IOV_BATCH : (int)n;
    ssize_t r = pwritev(fd, iov, cnt, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) return -EIO;
    off += (uint64_t)r;
    size_t left = (size_t)r;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (left) {
      iov->iov_base = (uint8_t *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

static int write_batch(wal *w, size_t head, size_t n, uint64_t first, wal_sync_info *info) {
  if (w->seg_offset >= w->opts.segment_bytes) {
    keel_error err = {0};
    int rc = cut_segment(w, first, &err);
    if (rc < 0) {
      LOG_ERROR("wal: cannot start a new segment", "error", err.message);
      return rc;
    }
  }
  uint64_t total = 0;
  for (size_t i = 0; i < n; i++) {
    wal_entry *e = &w->ring[(head + i) % w->cap];
    w->iov[2 * i] = (struct iovec){e->hdr, WAL_FRAME_HEADER_SIZE};
    w->iov[2 * i + 1] = (struct iovec){(void *)e->payload, e->len};
    total += WAL_FRAME_HEADER_SIZE + e->len;
  }
  uint64_t t0 = fs_now_ns();
  int rc = pwritev_all(w->fd, w->iov, 2 * n, w->seg_offset);
  uint64_t t1 = fs_now_ns();
  if (rc < 0) {
    LOG_ERROR("wal: write failed; the log is now read-only", "dir", w->dir, "error", strerror(-rc));
    return rc;
  }
  if (!w->opts.unsafe_no_fsync && fdatasync(w->fd) < 0) {
    rc = -errno;
    LOG_ERROR("wal: fdatasync failed; the log is now read-only", "dir", w->dir, "error",
              strerror(-rc));
    return rc;
  }
  uint64_t t2 = fs_now_ns();
  w->seg_offset += total;
  *info = (wal_sync_info){.first_index = first,
                          .last_index = first + n - 1,
                          .bytes = total,
                          .write_ns = t1 - t0,
                          .fsync_ns = t2 - t1};
  return 0;
}

/* Runs the done callbacks of the first n ring entries (from w->head_index)
 * and frees them, setting and clearing w->completing (the caller has checked
 * it is clear), so it is the only thread doing this. Entered and left with
 * w->mu held; the callbacks run without it. Entries from fail_index on failed
 * with w->failed. */
static void run_callbacks(wal *w, size_t n) {
  w->completing = true;
  uint64_t fail_index = w->fail_index, first = w->head_index;
  int failed = w->failed;
  size_t head = w->head;
  pthread_mutex_unlock(&w->mu);
  size_t bytes = 0;
  for (size_t i = 0; i < n; i++) {
    wal_entry *e = &w->ring[(head + i) % w->cap];
    uint64_t index = first + i;
    bytes += e->len;
    if (e->done) e->done(e->arg, index, fail_index && index >= fail_index ? failed : 0);
  }
  pthread_mutex_lock(&w->mu);
  w->head = (w->head + n) % w->cap;
  w->count -= n;
  w->taken -= n;
  w->synced -= n;
  w->head_index += n;
  w->queued_bytes -= bytes;
  w->completing = false;
  pthread_cond_broadcast(&w->space_cv);
}

/* The writer: takes every record not yet written, writes and syncs them as one
 * batch, then gives the batch's callbacks to the completer thread and goes on
 * with the next batch at once. The callbacks (keel-store sends the gRPC
 * replies from them) used to run here, so a batch of 16 replies delayed the
 * next fdatasync by their sending time and the writers queued behind it. A
 * lone record whose completer is idle is completed here: with one client the
 * hand-off would cost a thread wake-up on every write. */
static void *writer_main(void *p) {
  wal *w = p;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (w->taken == w->count && !w->closing) pthread_cond_wait(&w->work_cv, &w->mu);
    if (w->taken == w->count) break; /* closing, and everything is written */
    size_t n = w->count - w->taken, at = (w->head + w->taken) % w->cap;
    uint64_t first = w->head_index + w->taken;
    w->taken += n;
    int status = w->failed;
    pthread_mutex_unlock(&w->mu);

    wal_sync_info info = {0};
    if (status == 0) status = write_batch(w, at, n, first, &info);

    pthread_mutex_lock(&w->mu);
    if (status == 0) {
      w->stats.records += n;
      w->stats.bytes += info.bytes;
      if (!w->opts.unsafe_no_fsync) w->stats.fsyncs++;
      w->stats.fsync_ns_total += info.fsync_ns;
      w->stats.fsync_ns_last = info.fsync_ns;
      if (info.fsync_ns > w->stats.fsync_ns_max) w->stats.fsync_ns_max = info.fsync_ns;
      if (n > w->stats.batch_records_max) w->stats.batch_records_max = n;
      w->stats.last_index = info.last_index;
    } else {
      if (w->failed == 0) {
        w->failed = status;
        w->stats.error = -status;
      }
      if (w->fail_index == 0) w->fail_index = first;
    }
    pthread_mutex_unlock(&w->mu);

    if (status == 0 && w->opts.on_sync) w->opts.on_sync(w->opts.on_sync_arg, &info);

    pthread_mutex_lock(&w->mu);
    w->synced = w->taken;
    if (n == 1 && !w->completing && w->synced == 1) run_callbacks(w, 1);
    else pthread_cond_signal(&w->done_cv);
  }
  w->writer_done = true;
  pthread_cond_signal(&w->done_cv);
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* The completer: runs the callbacks of synced batches in index order. */
static void *completer_main(void *p) {
  wal *w = p;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while ((w->synced == 0 || w->completing) && !w->writer_done)
      pthread_cond_wait(&w->done_cv, &w->mu);
    /* The writer finishes its inline callbacks before it sets writer_done. */
    if (w->synced == 0) break; /* the writer has stopped and every callback ran */
    run_callbacks(w, w->synced);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

/* ---------- append ---------- */

/* Done callbacks run on the completer, or inline on the writer. */
static bool on_wal_thread(const wal *w) {
  return (w->writer_started && pthread_equal(pthread_self(), w->writer)) ||
         (w->completer_started && pthread_equal(pthread_self(), w->completer));
}

static int64_t append_common(wal *w, const void *payload, size_t len, wal_done_fn done, void *arg,
                             bool block) {
  if (!w || len == 0 || len > WAL_MAX_RECORD_BYTES || !payload) return -EINVAL;
  uint8_t hdr[WAL_FRAME_HEADER_SIZE];
  wal_frame_header(hdr, payload, len);
  /* A done callback waiting for room that only its own thread can make would hang. */
  if (on_wal_thread(w)) block = false;
  bool counted = false;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    if (w->failed) {
      int rc = w->failed;
      pthread_mutex_unlock(&w->mu);
      return rc;
    }
    if (w->closing) {
      pthread_mutex_unlock(&w->mu);
      return -ESHUTDOWN;
    }
    if (w->count < w->cap && (w->count == 0 || w->queued_bytes + len <= w->opts.queue_bytes)) break;
    if (!counted) w->stats.queue_full++;
    counted = true;
    if (!block) {
      pthread_mutex_unlock(&w->mu);
      return -EAGAIN;
    }
    pthread_cond_wait(&w->space_cv, &w->mu);
  }
  wal_entry *e = &w->ring[(w->head + w->count) % w->cap];
  e->payload = payload;
  e->len = len;
  memcpy(e->hdr, hdr, sizeof(hdr));
  e->done = done;
  e->arg = arg;
  /* The writer sleeps only when it has taken everything. */
  if (w->count++ == w->taken) pthread_cond_signal(&w->work_cv);
  w->queued_bytes += len;
  uint64_t index = w->next_index++;
  w->stats.appends++;
  pthread_mutex_unlock(&w->mu);
  return (int64_t)index;
}

int64_t wal_append(wal *w, const void *payload, size_t len, wal_done_fn done, void *arg) {
  return append_common(w, payload, len, done, arg, true);
}

int64_t wal_try_append(wal *w, const void *payload, size_t len, wal_done_fn done, void *arg) {
  return append_common(w, payload, len, done, arg, false);
}

typedef struct sync_wait {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool done;
  int status;
} sync_wait;

static void sync_done(void *arg, uint64_t index, int status) {
  (void)index;
  sync_wait *s = arg;
  pthread_mutex_lock(&s->mu);
  s->done = true;
  s->status = status;
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

int wal_append_sync(wal *w, const void *payload, size_t len, uint64_t *index) {
  if (w && on_wal_thread(w)) return -EDEADLK;
  sync_wait s = {.done = false};
  pthread_mutex_init(&s.mu, NULL);
  pthread_cond_init(&s.cv, NULL);
  int64_t idx = wal_append(w, payload, len, sync_done, &s);
  int rc;
  if (idx < 0) {
    rc = (int)idx;
  } else {
    pthread_mutex_lock(&s.mu);
    while (!s.done) pthread_cond_wait(&s.cv, &s.mu);
    pthread_mutex_unlock(&s.mu);
    rc = s.status;
    if (rc == 0 && index) *index = (uint64_t)idx;
  }
  pthread_cond_destroy(&s.cv);
  pthread_mutex_destroy(&s.mu);
  return rc;
}

/* ---------- truncation, stats ---------- */

int wal_truncate_before(wal *w, uint64_t index, keel_error *err) {
  int removed = 0, rc = 0;
  pthread_mutex_lock(&w->seg_mu);
  while (w->nsegs - (size_t)removed > 1 && w->segs[removed + 1].first_index - 1 <= index) {
    if (unlinkat(w->dirfd, w->segs[removed].name, 0) < 0 && errno != ENOENT) {
      rc = keel_error_set_errno(err, errno, "wal %s: remove %s", w->dir, w->segs[removed].name);
      break;
    }
    removed++;
  }
  if (removed) {
    memmove(w->segs, w->segs + removed, (w->nsegs - (size_t)removed) * sizeof(*w->segs));
    w->nsegs -= (size_t)removed;
  }
  uint64_t first = w->segs[0].first_index;
  pthread_mutex_unlock(&w->seg_mu);
  if (removed) {
    pthread_mutex_lock(&w->mu);
    w->stats.segments_removed += (uint64_t)removed;
    if (first > w->stats.first_index) w->stats.first_index = first;
    pthread_mutex_unlock(&w->mu);
    int frc = w->opts.unsafe_no_fsync ? 0 : fs_fsync_fd(w->dirfd, w->dir, rc < 0 ? NULL : err);
    if (rc == 0) rc = frc;
  }
  return rc < 0 ? rc : removed;
}

void wal_get_stats(wal *w, wal_stats *out) {
  pthread_mutex_lock(&w->mu);
  *out = w->stats;
  pthread_mutex_unlock(&w->mu);
}

uint64_t wal_next_index(wal *w) {
  pthread_mutex_lock(&w->mu);
  uint64_t n = w->next_index;
  pthread_mutex_unlock(&w->mu);
  return n;
}

/* ---------- open / recovery ---------- */

typedef struct seg_file {
  segment seg;
  const uint8_t *data;
  size_t size;
  bool torn_header; /* last segment, header torn before any record: recreate */
  wal_scan_result scan;
} seg_file;

static int seg_file_cmp(const void *a, const void *b) {
  const seg_file *x = a, *y = b;
  return x->seg.seq < y->seg.seq ? -1 : x->seg.seq > y->seg.seq;
}

/* Lets the completer run what is left and joins it; the writer has stopped
 * (or never started). */
static void stop_completer(wal *w) {
  if (!w->completer_started) return;
  pthread_mutex_lock(&w->mu);
  w->writer_done = true;
  pthread_cond_signal(&w->done_cv);
  pthread_mutex_unlock(&w->mu);
  pthread_join(w->completer, NULL);
  w->completer_started = false;
}

static void free_wal(wal *w) {
  if (!w) return;
  stop_completer(w);
  if (w->fd >= 0) close(w->fd);
  if (w->dirfd >= 0) close(w->dirfd);
  pthread_mutex_destroy(&w->mu);
  pthread_mutex_destroy(&w->seg_mu);
  pthread_cond_destroy(&w->work_cv);
  pthread_cond_destroy(&w->space_cv);
  pthread_cond_destroy(&w->done_cv);
  free(w->segs);
  free(w->ring);
  free(w->iov);
  free(w->dir);
  free(w);
}

/* Lists segment files (removing leftover .tmp files); sorted by seq. */
static int list_segments(wal *w, seg_file **out, size_t *nout, keel_error *err) {
  *out = NULL;
  *nout = 0;
  int fd = dup(w->dirfd);
  if (fd < 0) return keel_error_set_errno(err, errno, "wal %s: dup", w->dir);
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return keel_error_set_errno(err, errno, "wal %s: opendir", w->dir);
  }
  rewinddir(d);
  seg_file *v = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL) {
    size_t len = strlen(de->d_name);
    uint64_t seq, first;
    if (len > 8 && strcmp(de->d_name + len - 8, ".wal.tmp") == 0) {
      /* A segment whose creation did not finish: never named, never used. */
      unlinkat(w->dirfd, de->d_name, 0);
      continue;
    }
    if (!wal_segment_name_parse(de->d_name, &seq, &first)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      seg_file *nv = realloc(v, cap * sizeof(*nv));
      if (!nv) {
        rc = keel_error_set(err, ENOMEM, "wal %s: out of memory", w->dir);
        break;
      }
      v = nv;
    }
    memset(&v[n], 0, sizeof(v[n]));
    v[n].seg.seq = seq;
    v[n].seg.first_index = first;
    memcpy(v[n].seg.name, de->d_name, WAL_SEGMENT_NAME_LEN + 1);
    n++;
  }
  closedir(d);
  if (rc < 0) {
    free(v);
    return rc;
  }
  if (n) qsort(v, n, sizeof(*v), seg_file_cmp);
  *out = v;
  *nout = n;
  return 0;
}

static bool bytes_zero(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (p[i]) return false;
  return true;
}

/* Checks one segment's header and frames. */
static int check_segment(wal *w, seg_file *f, bool last, keel_error *err) {
  /* Index 0 never exists; the upper bound keeps index arithmetic from wrapping. */
  if (f->seg.first_index == 0 || f->seg.first_index > (UINT64_C(1) << 62))
    return keel_error_set(err, EBADMSG, "wal %s/%s: offset 0: first index out of range", w->dir,
                          f->seg.name);
  uint64_t seq, first;
  const char *why = wal_segment_header_decode(f->data, f->size, &seq, &first);
  if (why) {
    bool empty_after =
        f->size <= WAL_SEGMENT_HEADER_SIZE ||
        bytes_zero(f->data + WAL_SEGMENT_HEADER_SIZE, f->size - WAL_SEGMENT_HEADER_SIZE);
    if (last && empty_after) {
      f->torn_header = true;
      return 0;
    }
    return keel_error_set(err, EBADMSG, "wal %s/%s: offset 0: %s (the segment holds data)", w->dir,
                          f->seg.name, why);
  }
  if (seq != f->seg.seq || first != f->seg.first_index)
    return keel_error_set(err, EBADMSG,
                          "wal %s/%s: offset 0: header says seq %" PRIu64 " first index %" PRIu64
                          ", not what the name says",
                          w->dir, f->seg.name, seq, first);
  wal_scan_frames(f->data, f->size, WAL_SEGMENT_HEADER_SIZE, NULL, NULL, &f->scan);
  if (!last && !(f->scan.stop == WAL_SCAN_END || f->scan.tail_zero))
    return keel_error_set(err, EBADMSG,
                          "wal %s/%s: offset %zu: %s after %" PRIu64
                          " records, and later segments exist: corruption in the middle of "
                          "the log",
                          w->dir, f->seg.name, f->scan.end, wal_scan_stop_name(f->scan.stop),
                          f->scan.records);
  return 0;
}

/* Every record after start_index must be present, once, in order. */
static int check_continuity(wal *w, seg_file *v, size_t n, keel_error *err) {
  uint64_t start = w->opts.start_index;
  if (v[0].seg.first_index > start + 1)
    return keel_error_set(err, EBADMSG,
                          "wal %s/%s: the log starts at index %" PRIu64
                          " but the snapshot covers only up to %" PRIu64 ": records missing",
                          w->dir, v[0].seg.name, v[0].seg.first_index, start);
  for (size_t i = 0; i + 1 < n; i++) {
    if (v[i + 1].seg.seq != v[i].seg.seq + 1)
      return keel_error_set(err, EBADMSG,
                            "wal %s: segment seq %" PRIu64 " missing between %s and %s", w->dir,
                            v[i].seg.seq + 1, v[i].seg.name, v[i + 1].seg.name);
    uint64_t expect = v[i].seg.first_index + v[i].scan.records;
    uint64_t next = v[i + 1].seg.first_index;
    if (next < expect)
      return keel_error_set(err, EBADMSG,
                            "wal %s/%s: starts at index %" PRIu64 " but %s ends at %" PRIu64
                            ": overlapping segments",
                            w->dir, v[i + 1].seg.name, next, v[i].seg.name, expect - 1);
    if (next > expect && next - 1 > start)
      return keel_error_set(err, EBADMSG,
                            "wal %s/%s: offset %zu: records %" PRIu64 "..%" PRIu64
                            " missing (the next segment starts at %" PRIu64 ")",
                            w->dir, v[i].seg.name, v[i].scan.end, expect, next - 1, next);
  }
  return 0;
}

typedef struct replay_ctx {
  wal *w;
  uint64_t index;
  wal_replay_fn fn;
  void *arg;
  uint64_t replayed;
} replay_ctx;

static int replay_frame(void *arg, size_t off, const uint8_t *payload, size_t len) {
  (void)off;
  replay_ctx *c = arg;
  uint64_t index = c->index++;
  if (index <= c->w->opts.start_index || !c->fn) return 0;
  c->replayed++;
  return c->fn(c->arg, index, payload, len);
}

/* Saves the cut tail (without its trailing zeros) beside the segment. */
static int save_broken_tail(wal *w, const seg_file *f, keel_error *err) {
  size_t end = f->scan.end, stop = f->size;
  while (stop > end && f->data[stop - 1] == 0) stop--;
  char name[WAL_SEGMENT_NAME_LEN + 32];
  snprintf(name, sizeof(name), "%s.%016zx.broken", f->seg.name, end);
  cleanup_close int fd = openat(w->dirfd, name, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) return keel_error_set_errno(err, errno, "wal %s: create %s", w->dir, name);
  int rc = fs_pwrite_all(fd, f->data + end, stop - end, 0);
  if (rc < 0) return keel_error_set_errno(err, -rc, "wal %s: write %s", w->dir, name);
  if (!w->opts.unsafe_no_fsync && (rc = fs_fsync_fd(fd, name, err)) < 0) return rc;
  LOG_WARN("wal: torn or corrupt tail cut from the last segment", "dir", w->dir, "segment",
           f->seg.name, "offset", log_int((long long)end), "reason",
           wal_scan_stop_name(f->scan.stop), "bytes", log_int((long long)(stop - end)), "saved_as",
           name);
  return (int)(stop - end);
}

/* Makes the last segment writable at its end: repairs the tail if needed,
 * preallocates, opens w->fd. */
static int open_last_segment(wal *w, seg_file *f, keel_error *err) {
  if (f->torn_header) {
    LOG_WARN("wal: recreating a last segment whose header was torn (it held no records)", "dir",
             w->dir, "segment", f->seg.name);
    if (unlinkat(w->dirfd, f->seg.name, 0) < 0)
      return keel_error_set_errno(err, errno, "wal %s: remove %s", w->dir, f->seg.name);
    int fd = create_segment(w, f->seg.seq, f->seg.first_index, err);
    if (fd < 0) return fd;
    w->fd = fd;
    w->seg_offset = WAL_SEGMENT_HEADER_SIZE;
    return 0;
  }
  w->fd = openat(w->dirfd, f->seg.name, O_WRONLY | O_CLOEXEC);
  if (w->fd < 0) return keel_error_set_errno(err, errno, "wal %s: open %s", w->dir, f->seg.name);
  w->seg_offset = f->scan.end;
  bool changed = false;
  if (!f->scan.tail_zero) {
    int saved = save_broken_tail(w, f, err);
    if (saved < 0) return saved;
    w->stats.tail_truncated_bytes = (uint64_t)saved;
    if (ftruncate(w->fd, (off_t)f->scan.end) < 0)
      return keel_error_set_errno(err, errno, "wal %s: truncate %s", w->dir, f->seg.name);
    changed = true;
  }
  struct stat st;
  if (fstat(w->fd, &st) < 0)
    return keel_error_set_errno(err, errno, "wal %s: stat %s", w->dir, f->seg.name);
  if ((uint64_t)st.st_size < w->opts.segment_bytes) {
    int rc = preallocate(w->fd, w->opts.segment_bytes);
    if (rc < 0)
      return keel_error_set_errno(err, -rc, "wal %s: preallocate %s", w->dir, f->seg.name);
    changed = true;
  }
  if (changed && !w->opts.unsafe_no_fsync) return fs_fsync_fd(w->fd, f->seg.name, err);
  return 0;
}

static int recover(wal *w, wal_replay_fn replay, void *arg, keel_error *err) {
  seg_file *v = NULL;
  size_t n = 0;
  int rc = list_segments(w, &v, &n, err);
  if (rc < 0) return rc;
  uint64_t start = w->opts.start_index;

  for (size_t i = 0; i < n && rc == 0; i++) {
    rc = fs_map_file(w->dirfd, v[i].seg.name, &v[i].data, &v[i].size, err);
    if (rc == 0) rc = check_segment(w, &v[i], i + 1 == n, err);
  }
  if (rc == 0 && n) rc = check_continuity(w, v, n, err);

  replay_ctx rctx = {.w = w, .fn = replay, .arg = arg};
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (v[i].torn_header) continue;
    wal_scan_result r;
    rctx.index = v[i].seg.first_index;
    rc =
        wal_scan_frames(v[i].data, v[i].scan.end, WAL_SEGMENT_HEADER_SIZE, replay_frame, &rctx, &r);
    if (rc != 0) {
      if (rc > 0) rc = -ECANCELED;
      keel_error_set_errno(err, -rc, "wal %s: replay of index %" PRIu64, w->dir, rctx.index - 1);
    }
  }

  uint64_t next = start + 1;
  if (rc == 0 && n) {
    const seg_file *last = &v[n - 1];
    next = last->seg.first_index + (last->torn_header ? 0 : last->scan.records);
    for (size_t i = 0; i < n && rc == 0; i++)
      if (segs_push(w, v[i].seg.seq, v[i].seg.first_index) < 0)
        rc = keel_error_set(err, ENOMEM, "wal %s: out of memory", w->dir);
    if (rc == 0) rc = open_last_segment(w, &v[n - 1], err);
  }
  for (size_t i = 0; i < n; i++) fs_unmap(v[i].data, v[i].size);
  free(v);
  if (rc < 0) return rc;

  if (n == 0) {
    int fd = create_segment(w, 1, start + 1, err);
    if (fd < 0) return fd;
    w->fd = fd;
    w->seg_offset = WAL_SEGMENT_HEADER_SIZE;
    if ((rc = segs_push(w, 1, start + 1)) < 0)
      return keel_error_set(err, -rc, "wal %s: out of memory", w->dir);
    w->stats.segments_created++;
  } else if (next <= start) {
    /* The snapshot is ahead of the log (its tail was cut): continue after the
     * snapshot, in a new segment, so no index is reused. */
    LOG_WARN("wal: snapshot is ahead of the log; continuing after it", "dir", w->dir,
             "log_last_index", log_int((long long)(next - 1)), "snapshot_index",
             log_int((long long)start));
    if ((rc = cut_segment(w, start + 1, err)) < 0) return rc;
    next = start + 1;
  }
  w->next_index = next;
  w->head_index = next;
  w->stats.last_index = next - 1;
  w->stats.first_index = w->segs[0].first_index;
  w->stats.replayed = rctx.replayed;
  return 0;
}

wal *wal_open(const char *dir, const wal_options *opts, wal_replay_fn replay, void *arg,
              keel_error *err) {
  wal_options o = opts ? *opts : (wal_options){0};
  if (!dir || !*dir) {
    keel_error_set(err, EINVAL, "wal: no directory");
    return NULL;
  }
  if (o.segment_bytes == 0) o.segment_bytes = WAL_DEFAULT_SEGMENT_BYTES;
  if (o.segment_bytes < MIN_SEGMENT_BYTES) {
    keel_error_set(err, EINVAL, "wal %s: segment size %" PRIu64 " below %u", dir, o.segment_bytes,
                   MIN_SEGMENT_BYTES);
    return NULL;
  }
  if (o.queue_records == 0) o.queue_records = WAL_DEFAULT_QUEUE_RECORDS;
  if (o.queue_bytes == 0) o.queue_bytes = WAL_DEFAULT_QUEUE_BYTES;

  wal *w = calloc(1, sizeof(*w));
  if (!w) {
    keel_error_set(err, ENOMEM, "wal %s: out of memory", dir);
    return NULL;
  }
  w->fd = -1;
  w->dirfd = -1;
  w->opts = o;
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_init(&w->seg_mu, NULL);
  pthread_cond_init(&w->work_cv, NULL);
  pthread_cond_init(&w->space_cv, NULL);
  pthread_cond_init(&w->done_cv, NULL);
  w->dir = strdup(dir);
  w->cap = o.queue_records;
  w->ring = calloc(w->cap, sizeof(*w->ring));
  w->iov = calloc(2 * w->cap, sizeof(*w->iov));
  if (!w->dir || !w->ring || !w->iov) {
    keel_error_set(err, ENOMEM, "wal %s: out of memory", dir);
    goto fail;
  }
  if (fs_mkdir_p(dir, 0700, err) < 0) {
    keel_error_wrap(err, "wal");
    goto fail;
  }
  w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w->dirfd < 0) {
    keel_error_set_errno(err, errno, "wal: open %s", dir);
    goto fail;
  }
  if (flock(w->dirfd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      keel_error_set(err, EBUSY, "wal %s: in use by another process or handle", dir);
    else
      keel_error_set_errno(err, errno, "wal %s: lock", dir);
    goto fail;
  }
  if (recover(w, replay, arg, err) < 0) goto fail;
  int rc = pthread_create(&w->completer, NULL, completer_main, w);
  if (rc != 0) {
    keel_error_set_errno(err, rc, "wal %s: start completer thread", dir);
    goto fail;
  }
  w->completer_started = true;
  pthread_setname_np(w->completer, "keel-wal-done");
  rc = pthread_create(&w->writer, NULL, writer_main, w);
  if (rc != 0) {
    keel_error_set_errno(err, rc, "wal %s: start writer thread", dir);
    goto fail;
  }
  w->writer_started = true;
  pthread_setname_np(w->writer, "keel-wal");
  return w;
fail:
  free_wal(w);
  return NULL;
}

int wal_close(wal *w) {
  if (!w) return 0;
  pthread_mutex_lock(&w->mu);
  w->closing = true;
  pthread_cond_signal(&w->work_cv);
  pthread_cond_broadcast(&w->space_cv);
  pthread_mutex_unlock(&w->mu);
  if (w->writer_started) pthread_join(w->writer, NULL);
  stop_completer(w);
  int rc = w->failed;
  free_wal(w);
  return rc;
}
