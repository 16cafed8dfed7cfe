/* services/store/wal/recovery_test.c — the durability pieces together, the way
 * keel-store uses them: Txn records (record.h) appended to the WAL, applied to
 * a toy key-value state; snapshots of that state taken along the way, each
 * followed by wal_truncate_before(oldest kept snapshot); then recovery =
 * newest valid snapshot + replay of the WAL after its index must rebuild the
 * exact state — also when the newest snapshot is damaged and recovery falls
 * back to the older one (the WAL still holds everything after it). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log/log.h"
#include "services/store/wal/record.h"
#include "services/store/wal/snapshot.h"
#include "services/store/wal/testutil.h"
#include "services/store/wal/wal.h"

#define NKEYS 17

/* The toy state: NKEYS slots, each with a value and the revision that wrote it. */
typedef struct kv {
  char value[NKEYS][32];
  int64_t mod_revision[NKEYS];
  int64_t revision;
  int64_t compacted;
} kv;

static int key_slot(store_slice key) {
  if (key.len < 2 || key.len > 3 || key.data[0] != 'k') return -1;
  int n = 0;
  for (size_t i = 1; i < key.len; i++) {
    if (key.data[i] < '0' || key.data[i] > '9') return -1;
    n = n * 10 + (key.data[i] - '0');
  }
  return n < NKEYS ? n : -1;
}

static int apply_txn(void *arg, int64_t rev, size_t n, int64_t revoke) {
  (void)n;
  (void)revoke;
  kv *s = arg;
  if (rev != s->revision + 1) return -EILSEQ;
  s->revision = rev;
  return 0;
}

static int apply_change(void *arg, int64_t rev, size_t sub, const store_change *c) {
  (void)sub;
  kv *s = arg;
  int slot = key_slot(c->key);
  if (slot < 0) return -EINVAL;
  if (c->type == STORE_CHANGE_DELETE) {
    s->value[slot][0] = '\0';
  } else {
    size_t n = c->value.len < 31 ? c->value.len : 31;
    memcpy(s->value[slot], c->value.data, n);
    s->value[slot][n] = '\0';
  }
  s->mod_revision[slot] = rev;
  return 0;
}

static int apply_compact(void *arg, int64_t rev) {
  ((kv *)arg)->compacted = rev;
  return 0;
}

static const store_record_visitor k_apply = {
    .txn = apply_txn, .change = apply_change, .compact = apply_compact};

static int replay_apply(void *arg, uint64_t index, const uint8_t *p, size_t len) {
  (void)index;
  return store_record_decode(p, len, &k_apply, arg, NULL);
}

/* Snapshot content: one chunk with the whole struct (keel-store's real
 * content is the MVCC key space, in many chunks). */
static int produce(void *arg, snapshot_sink *sink) {
  return snapshot_sink_write(sink, arg, sizeof(kv));
}

static int consume(void *arg, const uint8_t *p, size_t len) {
  if (len != sizeof(kv)) return -EINVAL;
  memcpy(arg, p, len);
  return 0;
}

static void append_txn(wal *w, kv *live, int64_t rev) {
  char key[8], val[24];
  snprintf(key, sizeof(key), "k%d", (int)(rev % NKEYS));
  snprintf(val, sizeof(val), "v%" PRId64, rev);
  store_change ch[2] = {
      {.type = STORE_CHANGE_PUT,
       .key = {(const uint8_t *)key, strlen(key)},
       .value = {(const uint8_t *)val, strlen(val)}},
      {.type = STORE_CHANGE_DELETE, .key = {(const uint8_t *)"k3", 2}},
  };
  store_record r = {.kind = STORE_RECORD_TXN,
                    .txn = {.revision = rev, .changes = ch, .nchanges = rev % 5 == 0 ? 2 : 1}};
  uint8_t buf[128];
  size_t len;
  assert_int_equal(store_record_encode(&r, buf, sizeof(buf), &len), 0);
  assert_int_equal(wal_append_sync(w, buf, len, NULL), 0);
  assert_int_equal(store_record_decode(buf, len, &k_apply, live, NULL), 0);
}

/* Rebuilds the state from disk the way keel-store starts. */
static void recover(const char *waldir, const char *snapdir, kv *out, uint64_t *snap_index) {
  memset(out, 0, sizeof(*out));
  keel_error err = {0};
  int rc = snapshot_load_latest(snapdir, consume, out, snap_index, &err);
  if (rc < 0) fail_msg("snapshot: %s", err.message);
  wal *w = wal_open(waldir, &(wal_options){.segment_bytes = 4096, .start_index = *snap_index},
                    replay_apply, out, &err);
  if (!w) fail_msg("wal: %s", err.message);
  assert_int_equal(wal_close(w), 0);
}

static void test_snapshot_truncate_replay(void **state) {
  (void)state;
  char *root = tu_mkdtemp("recovery_test");
  char *waldir = strdup(tu_join(root, "member/wal"));
  char *snapdir = strdup(tu_join(root, "member/snap"));
  kv *live = calloc(1, sizeof(kv)), *got = calloc(1, sizeof(kv));
  keel_error err = {0};
  wal *w = wal_open(waldir, &(wal_options){.segment_bytes = 4096}, NULL, NULL, &err);
  assert_non_null(w);
  for (int64_t rev = 1; rev <= 400; rev++) {
    /* WAL index == revision here (one record per revision). */
    append_txn(w, live, rev);
    if (rev == 200 || rev == 350) {
      uint64_t oldest = 0;
      assert_int_equal(snapshot_write(snapdir, (uint64_t)rev, produce, live, &oldest, &err), 0);
      assert_true(wal_truncate_before(w, oldest, &err) >= 0);
      assert_int_equal(oldest, 200);
    }
  }
  static const uint8_t compact[] = {0x12, 0x03, 0x08, 0x90, 0x03}; /* Compact{400} */
  assert_int_equal(wal_append_sync(w, compact, sizeof(compact), NULL), 0);
  live->compacted = 400;
  assert_int_equal(wal_close(w), 0);
  /* Exactly the segments wholly at or before index 200 are gone. */
  int n;
  char **names = tu_list(waldir, ".wal", &n);
  uint64_t first0 = strtoull(names[0] + 17, NULL, 16);
  uint64_t first1 = n > 1 ? strtoull(names[1] + 17, NULL, 16) : UINT64_MAX;
  assert_true(first0 > 1);
  assert_true(first0 <= 201 && first1 > 201);
  tu_free_names(names, n);

  uint64_t idx;
  recover(waldir, snapdir, got, &idx);
  assert_int_equal(idx, 350);
  assert_memory_equal(got, live, sizeof(kv));

  /* Damage the newest snapshot: fall back to 200, replay 201..401. */
  const char *p350 = tu_join(snapdir, "000000000000015e.snap");
  size_t len;
  uint8_t *d = tu_read_file(p350, &len);
  d[40] ^= 0xff;
  tu_write_file(p350, d, len);
  free(d);
  recover(waldir, snapdir, got, &idx);
  assert_int_equal(idx, 200);
  assert_memory_equal(got, live, sizeof(kv));

  free(live);
  free(got);
  free(waldir);
  free(snapdir);
  tu_rm_rf(root);
  free(root);
}

int main(void) {
  log_set_level(LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_snapshot_truncate_replay),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
