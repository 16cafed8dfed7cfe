/* services/store/wal/wal_fuzz.c — fuzz target for everything that parses bytes
 * read back from disk: WAL recovery (real files through wal_open), the frame
 * scanner, the record codec and the snapshot parser.
 *
 * LLVMFuzzerTestOneInput is the libFuzzer entry point; common/fuzz/standalone_main.c drives
 * the same function without libFuzzer (random mutations of built-in seeds)
 * when clang's -fsanitize=fuzzer is unavailable. Input: [mode][options][data].
 *
 *   mode % 4 == 0  recovery: data becomes the frames of a segment file (after a
 *                  valid header, or raw with options bit 5), optionally after a
 *                  valid first segment (bit 1) and before a valid empty last
 *                  one (bit 2); bit 0 rewrites frame CRCs to match so the
 *                  fuzzer gets past them; bits 3-4 pick the snapshot index.
 *                  Checked: a successful open replays a gapless run of indexes
 *                  from the snapshot on, then accepts an append that a second
 *                  open replays after them; a failed open changed no file.
 *   mode % 4 == 1  record codec: decode; when it succeeds, re-encoding what
 *                  was visited and decoding again visits the same things.
 *   mode % 4 == 2  snapshot parser: no crash; delivered chunks add up.
 *   mode % 4 == 3  frame scanner on raw bytes: every frame it accepts has a
 *                  matching CRC and lies within the input.
 * A violated property calls abort(), which both drivers report as a crash. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log/log.h"
#include "services/store/wal/crc32c.h"
#include "services/store/wal/record.h"
#include "services/store/wal/snapshot.h"
#include "services/store/wal/wal.h"
#include "services/store/wal/wal_format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);
/* Writes seed inputs through fn (used by both drivers). */
void wal_fuzz_seeds(void (*fn)(void *arg, const uint8_t *data, size_t len), void *arg);
void wal_fuzz_write_seeds(const char *dir);

#define CHECK(cond)                                                                           \
  do {                                                                                        \
    if (!(cond)) {                                                                            \
      fprintf(stderr, "wal_fuzz: %s:%d: property violated: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                                \
    }                                                                                         \
  } while (0)

static char g_dir[256];

static void cleanup_dir(void) {
  DIR *d = opendir(g_dir);
  if (!d) return;
  struct dirent *de;
  while ((de = readdir(d))) {
    if (de->d_name[0] == '.') continue;
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", g_dir, de->d_name);
    unlink(p);
  }
  closedir(d);
}

static void remove_dir(void) {
  cleanup_dir();
  rmdir(g_dir);
}

static void ensure_dir(void) {
  if (g_dir[0]) return;
  log_set_level(LOG_ERROR + 1); /* recovery warnings are the expected outcome here */
  const char *bases[] = {"/dev/shm", getenv("TEST_TMPDIR"), getenv("TMPDIR"), "/tmp"};
  for (size_t i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
    if (!bases[i]) continue;
    snprintf(g_dir, sizeof(g_dir), "%s/keel-wal-fuzz.XXXXXX", bases[i]);
    if (mkdtemp(g_dir)) {
      atexit(remove_dir);
      return;
    }
  }
  abort();
}

static void write_file(const char *name, const uint8_t *d, size_t n) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s", g_dir, name);
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  CHECK(fd >= 0);
  CHECK(n == 0 || write(fd, d, n) == (ssize_t)n);
  close(fd);
}

static bool file_equals(const char *name, const uint8_t *d, size_t n) {
  char p[512];
  snprintf(p, sizeof(p), "%s/%s", g_dir, name);
  int fd = open(p, O_RDONLY);
  if (fd < 0) return false;
  struct stat st;
  fstat(fd, &st);
  bool eq = (size_t)st.st_size == n;
  if (eq && n) {
    uint8_t *buf = malloc(n);
    eq = read(fd, buf, n) == (ssize_t)n && memcmp(buf, d, n) == 0;
    free(buf);
  }
  close(fd);
  return eq;
}

/* ---------- recovery ---------- */

typedef struct replay_check {
  uint64_t expect_next; /* 0: not known yet */
  uint64_t count;
  uint64_t last;
  uint32_t last_crc;
} replay_check;

static int check_replay(void *arg, uint64_t index, const uint8_t *p, size_t len) {
  replay_check *c = arg;
  CHECK(len > 0 && len <= WAL_MAX_RECORD_BYTES);
  if (c->expect_next) CHECK(index == c->expect_next);
  c->expect_next = index + 1;
  c->count++;
  c->last = index;
  c->last_crc = crc32c(0, p, len);
  return 0;
}

static size_t fix_crcs(uint8_t *d, size_t n, size_t off) {
  while (n - off >= WAL_FRAME_HEADER_SIZE) {
    uint32_t len = wal_get_u32(d + off);
    if (len == 0 || len > n - off - WAL_FRAME_HEADER_SIZE) break;
    wal_put_u32(d + off + 4, crc32c(0, d + off + WAL_FRAME_HEADER_SIZE, len));
    off += WAL_FRAME_HEADER_SIZE + len;
  }
  return off;
}

static void valid_segment(uint8_t *buf, size_t *len, uint64_t seq, uint64_t first, int records) {
  wal_segment_header_encode(buf, seq, first);
  size_t off = WAL_SEGMENT_HEADER_SIZE;
  for (int i = 0; i < records; i++) {
    uint8_t p[3] = {(uint8_t)i, 'r', (uint8_t)seq};
    wal_frame_header(buf + off, p, sizeof(p));
    memcpy(buf + off + WAL_FRAME_HEADER_SIZE, p, sizeof(p));
    off += WAL_FRAME_HEADER_SIZE + sizeof(p);
  }
  *len = off;
}

static void fuzz_recovery(const uint8_t *data, size_t size, uint8_t opt) {
  static const uint64_t starts[4] = {0, 2, 5, 100};
  ensure_dir();
  cleanup_dir();
  uint64_t start = starts[(opt >> 3) & 3];
  bool with_first = opt & 2, with_after = opt & 4, raw = opt & 32;

  char names[3][WAL_SEGMENT_NAME_LEN + 1];
  uint8_t *files[3] = {0};
  size_t sizes[3] = {0};
  int nfiles = 0;
  uint64_t seq = 1, first = start + 1;
  uint8_t pre[WAL_SEGMENT_HEADER_SIZE + 3 * 11];
  if (with_first) {
    valid_segment(pre, &sizes[0], 1, first, 3);
    files[0] = pre;
    wal_segment_name(names[0], 1, first);
    nfiles = 1;
    seq = 2;
    first += 3;
  }
  size_t n = (raw ? 0 : WAL_SEGMENT_HEADER_SIZE) + size;
  uint8_t *seg = malloc(n ? n : 1);
  if (!raw) wal_segment_header_encode(seg, seq, first);
  if (size) memcpy(seg + (raw ? 0 : WAL_SEGMENT_HEADER_SIZE), data, size);
  size_t frames_end = raw ? 0 : WAL_SEGMENT_HEADER_SIZE;
  if (opt & 1) frames_end = fix_crcs(seg, n, frames_end);
  files[nfiles] = seg;
  sizes[nfiles] = n;
  wal_segment_name(names[nfiles], seq, first);
  nfiles++;
  uint8_t post[WAL_SEGMENT_HEADER_SIZE];
  if (with_after) {
    /* The next segment starts where the fuzzed one's valid frames end. */
    wal_scan_result r;
    wal_scan_frames(seg, n, WAL_SEGMENT_HEADER_SIZE, NULL, NULL, &r);
    uint64_t next_first = first + r.records;
    wal_segment_header_encode(post, seq + 1, next_first);
    files[nfiles] = post;
    sizes[nfiles] = sizeof(post);
    wal_segment_name(names[nfiles], seq + 1, next_first);
    nfiles++;
  }
  for (int i = 0; i < nfiles; i++) write_file(names[i], files[i], sizes[i]);

  wal_options o = {.segment_bytes = 4096, .unsafe_no_fsync = true, .start_index = start};
  replay_check c = {.expect_next = start + 1};
  keel_error err = {0};
  wal *w = wal_open(g_dir, &o, check_replay, &c, &err);
  if (!w) {
    CHECK(err.code != 0 && err.message[0]);
    for (int i = 0; i < nfiles; i++) CHECK(file_equals(names[i], files[i], sizes[i]));
    free(seg);
    return;
  }
  uint64_t next = wal_next_index(w);
  CHECK(next == (c.count ? c.last + 1 : next));
  CHECK(next > start);
  static const uint8_t extra[] = "appended by the fuzzer";
  uint64_t idx = 0;
  CHECK(wal_append_sync(w, extra, sizeof(extra), &idx) == 0);
  CHECK(idx == next);
  CHECK(wal_close(w) == 0);
  replay_check c2 = {.expect_next = start + 1};
  w = wal_open(g_dir, &o, check_replay, &c2, &err);
  if (!w) fprintf(stderr, "wal_fuzz: reopen failed: %s\n", err.message);
  CHECK(w != NULL);
  CHECK(c2.count == c.count + 1);
  CHECK(c2.last == idx);
  CHECK(c2.last_crc == crc32c(0, extra, sizeof(extra)));
  CHECK(wal_close(w) == 0);
  free(seg);
}

/* ---------- record codec ---------- */

#define MAX_CHANGES 64
typedef struct visited {
  int kind;
  int64_t a, b;
  uint64_t u;
  store_snapshot_kv kv;
  size_t n;
  store_change ch[MAX_CHANGES];
  size_t nch;
  size_t seen;
  bool overflow;
} visited;

static int vt_txn(void *arg, int64_t rev, size_t n, int64_t revoke) {
  visited *v = arg;
  v->kind = STORE_RECORD_TXN;
  v->a = rev;
  v->b = revoke;
  v->n = n;
  return 0;
}
static int vt_change(void *arg, int64_t rev, size_t sub, const store_change *c) {
  visited *v = arg;
  CHECK(rev == v->a);
  CHECK(sub == v->seen++);
  if (v->nch < MAX_CHANGES)
    v->ch[v->nch++] = *c;
  else
    v->overflow = true;
  return 0;
}
static int vt_compact(void *arg, int64_t rev) {
  visited *v = arg;
  v->kind = STORE_RECORD_COMPACT;
  v->a = rev;
  return 0;
}
static int vt_grant(void *arg, int64_t id, int64_t ttl) {
  visited *v = arg;
  v->kind = STORE_RECORD_LEASE_GRANT;
  v->a = id;
  v->b = ttl;
  return 0;
}
static int vt_revoke(void *arg, int64_t id) {
  visited *v = arg;
  v->kind = STORE_RECORD_LEASE_REVOKE;
  v->a = id;
  return 0;
}
static int vt_meta(void *arg, int64_t rev, int64_t compact_rev, uint64_t wal_index) {
  visited *v = arg;
  v->kind = STORE_RECORD_SNAPSHOT_META;
  v->a = rev;
  v->b = compact_rev;
  v->u = wal_index;
  return 0;
}
static int vt_kv(void *arg, const store_snapshot_kv *kv) {
  visited *v = arg;
  v->kind = STORE_RECORD_SNAPSHOT_KV;
  v->kv = *kv;
  return 0;
}
static const store_record_visitor k_vt = {vt_txn,    vt_change, vt_compact, vt_grant,
                                          vt_revoke, vt_meta,   vt_kv};

static bool slices_equal(store_slice x, store_slice y) {
  return x.len == y.len && (x.len == 0 || memcmp(x.data, y.data, x.len) == 0);
}

static void fuzz_record(const uint8_t *data, size_t size) {
  visited *v = calloc(2, sizeof(*v));
  int rc = store_record_decode(data, size, &k_vt, &v[0], NULL);
  CHECK(rc == 0 || rc == -EBADMSG);
  if (rc == 0) CHECK(store_record_kind_of(data, size, NULL) == v[0].kind);
  if (rc != 0 || v[0].overflow) {
    free(v);
    return;
  }
  if (v[0].kind == STORE_RECORD_TXN) CHECK(v[0].nch == v[0].n);
  store_record r = {.kind = (store_record_kind)v[0].kind};
  switch (v[0].kind) {
    case STORE_RECORD_TXN:
      r.txn.revision = v[0].a;
      r.txn.revoke_lease = v[0].b;
      r.txn.changes = v[0].ch;
      r.txn.nchanges = v[0].nch;
      break;
    case STORE_RECORD_COMPACT:
      r.compact.revision = v[0].a;
      break;
    case STORE_RECORD_LEASE_GRANT:
      r.lease_grant.id = v[0].a;
      r.lease_grant.ttl = v[0].b;
      break;
    case STORE_RECORD_LEASE_REVOKE:
      r.lease_revoke.id = v[0].a;
      break;
    case STORE_RECORD_SNAPSHOT_META:
      r.snapshot_meta.revision = v[0].a;
      r.snapshot_meta.compact_revision = v[0].b;
      r.snapshot_meta.wal_index = v[0].u;
      break;
    case STORE_RECORD_SNAPSHOT_KV:
      r.snapshot_kv = v[0].kv;
      break;
  }
  size_t need = 0, len = 0;
  CHECK(store_record_encoded_size(&r, &need) == 0);
  uint8_t *buf = malloc(need ? need : 1);
  CHECK(store_record_encode(&r, buf, need, &len) == 0);
  CHECK(len == need);
  CHECK(store_record_decode(buf, len, &k_vt, &v[1], NULL) == 0);
  CHECK(v[1].kind == v[0].kind && v[1].a == v[0].a && v[1].b == v[0].b && v[1].nch == v[0].nch);
  CHECK(v[1].u == v[0].u);
  if (v[0].kind == STORE_RECORD_SNAPSHOT_KV) {
    const store_snapshot_kv *x = &v[0].kv, *y = &v[1].kv;
    CHECK(x->main == y->main && x->sub == y->sub && slices_equal(x->key, y->key) &&
          slices_equal(x->value, y->value) && x->create_revision == y->create_revision &&
          x->version == y->version && x->lease == y->lease && x->tombstone == y->tombstone);
  }
  for (size_t i = 0; i < v[0].nch; i++) {
    const store_change *x = &v[0].ch[i], *y = &v[1].ch[i];
    CHECK(x->type == y->type && slices_equal(x->key, y->key));
    if (x->type == STORE_CHANGE_PUT)
      CHECK(slices_equal(x->value, y->value) && x->lease == y->lease);
  }
  free(buf);
  free(v);
}

/* ---------- snapshot parser, frame scanner ---------- */

typedef struct chunk_sum {
  uint64_t chunks, bytes;
} chunk_sum;

static int sum_chunk(void *arg, const uint8_t *p, size_t len) {
  (void)p;
  chunk_sum *s = arg;
  s->chunks++;
  s->bytes += len;
  return 0;
}

static void fuzz_snapshot(const uint8_t *data, size_t size) {
  chunk_sum s = {0};
  uint64_t idx;
  const char *why = NULL;
  size_t off = 0;
  int rc = snapshot_parse(data, size, sum_chunk, &s, &idx, &why, &off);
  if (rc == 0) {
    CHECK(size >= 32 + 32);
    CHECK(s.bytes + s.chunks * 8 + 32 + 32 == size);
  } else {
    CHECK(rc == -EBADMSG && why && off <= size && s.chunks == 0);
  }
}

typedef struct scan_check {
  const uint8_t *base;
  size_t size;
  size_t next_off;
} scan_check;

static int check_frame(void *arg, size_t off, const uint8_t *p, size_t len) {
  scan_check *c = arg;
  CHECK(off == c->next_off);
  CHECK(p == c->base + off + WAL_FRAME_HEADER_SIZE && off + WAL_FRAME_HEADER_SIZE + len <= c->size);
  CHECK(wal_get_u32(c->base + off) == len && wal_get_u32(c->base + off + 4) == crc32c(0, p, len));
  c->next_off = off + WAL_FRAME_HEADER_SIZE + len;
  return 0;
}

static void fuzz_scan(const uint8_t *data, size_t size, uint8_t opt) {
  uint8_t *copy = malloc(size ? size : 1);
  if (size) memcpy(copy, data, size);
  if (opt & 1) fix_crcs(copy, size, 0);
  scan_check c = {copy, size, 0};
  wal_scan_result r;
  CHECK(wal_scan_frames(copy, size, 0, check_frame, &c, &r) == 0);
  CHECK(r.end == c.next_off && r.end <= size);
  if (r.stop == WAL_SCAN_END) CHECK(r.end == size && r.tail_zero);
  free(copy);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *seeds = getenv("KEEL_WAL_FUZZ_SEEDS");
  if (seeds && *seeds) {
    /* Give libFuzzer a corpus that gets past the checksums from the start. */
    wal_fuzz_write_seeds(seeds);
  }
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  uint8_t mode = data[0], opt = data[1];
  data += 2;
  size -= 2;
  if (size > (1u << 20)) return 0;
  switch (mode % 4) {
    case 0:
      fuzz_recovery(data, size, opt);
      break;
    case 1:
      fuzz_record(data, size);
      break;
    case 2:
      fuzz_snapshot(data, size);
      break;
    case 3:
      fuzz_scan(data, size, opt);
      break;
  }
  return 0;
}

/* ---------- seeds ---------- */

static void emit(void (*fn)(void *, const uint8_t *, size_t), void *arg, uint8_t mode, uint8_t opt,
                 const uint8_t *d, size_t n) {
  uint8_t *buf = malloc(n + 2);
  buf[0] = mode;
  buf[1] = opt;
  memcpy(buf + 2, d, n);
  fn(arg, buf, n + 2);
  free(buf);
}

static int seed_snapshot(void *arg, snapshot_sink *sink) {
  (void)arg;
  static const char a[] = "chunk-one", b[] = "2";
  int rc = snapshot_sink_write(sink, a, sizeof(a));
  return rc ? rc : snapshot_sink_write(sink, b, sizeof(b));
}

void wal_fuzz_seeds(void (*fn)(void *arg, const uint8_t *data, size_t len), void *arg) {
  /* Records of every kind. */
  store_change ch[3] = {
      {.type = STORE_CHANGE_PUT,
       .key = STORE_SLICE_STR("/registry/a"),
       .value = STORE_SLICE_STR("v1"),
       .lease = 7},
      {.type = STORE_CHANGE_DELETE, .key = STORE_SLICE_STR("/registry/b")},
      {.type = STORE_CHANGE_PUT, .key = STORE_SLICE_STR("c"), .value = STORE_SLICE_STR("")},
  };
  store_record recs[7] = {
      {.kind = STORE_RECORD_TXN, .txn = {.revision = 5, .changes = ch, .nchanges = 3}},
      {.kind = STORE_RECORD_TXN, .txn = {.revision = 6, .revoke_lease = 7}},
      {.kind = STORE_RECORD_COMPACT, .compact = {.revision = 4}},
      {.kind = STORE_RECORD_LEASE_GRANT, .lease_grant = {.id = 7, .ttl = 30}},
      {.kind = STORE_RECORD_LEASE_REVOKE, .lease_revoke = {.id = 7}},
      {.kind = STORE_RECORD_SNAPSHOT_META,
       .snapshot_meta = {.revision = 6, .compact_revision = 4, .wal_index = 5}},
      {.kind = STORE_RECORD_SNAPSHOT_KV,
       .snapshot_kv = {.main = 5,
                       .sub = 2,
                       .key = STORE_SLICE_STR("c"),
                       .value = STORE_SLICE_STR("v"),
                       .create_revision = 5,
                       .version = 1,
                       .lease = 7,
                       .tombstone = true}},
  };
  uint8_t frames[2048];
  size_t off = 0;
  for (int i = 0; i < 7; i++) {
    uint8_t rec[256];
    size_t len;
    if (store_record_encode(&recs[i], rec, sizeof(rec), &len) != 0) abort();
    emit(fn, arg, 1, 0, rec, len);
    wal_frame_header(frames + off, rec, len);
    memcpy(frames + off + WAL_FRAME_HEADER_SIZE, rec, len);
    off += WAL_FRAME_HEADER_SIZE + len;
  }
  /* Segment frames in every recovery configuration, and for the scanner. */
  for (int opt = 0; opt < 64; opt += 1) emit(fn, arg, 0, (uint8_t)opt, frames, off);
  uint8_t seg[WAL_SEGMENT_HEADER_SIZE + sizeof(frames)];
  wal_segment_header_encode(seg, 1, 1);
  memcpy(seg + WAL_SEGMENT_HEADER_SIZE, frames, off);
  emit(fn, arg, 0, 32, seg, WAL_SEGMENT_HEADER_SIZE + off);
  emit(fn, arg, 3, 0, frames, off);
  /* A snapshot image. */
  ensure_dir();
  cleanup_dir();
  if (snapshot_write(g_dir, 42, seed_snapshot, NULL, NULL, NULL) == 0) {
    char p[512];
    snprintf(p, sizeof(p), "%s/000000000000002a.snap", g_dir);
    int fd = open(p, O_RDONLY);
    if (fd >= 0) {
      uint8_t snap[512];
      ssize_t n = read(fd, snap, sizeof(snap));
      if (n > 0) emit(fn, arg, 2, 0, snap, (size_t)n);
      close(fd);
    }
  }
  cleanup_dir();
}

static void write_seed(void *arg, const uint8_t *d, size_t n) {
  static int count;
  char p[512];
  snprintf(p, sizeof(p), "%s/seed-%03d", (const char *)arg, count++);
  int fd = open(p, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) return;
  if (write(fd, d, n) != (ssize_t)n) perror("write seed");
  close(fd);
}

void wal_fuzz_write_seeds(const char *dir) {
  mkdir(dir, 0700);
  wal_fuzz_seeds(write_seed, (void *)dir);
}
