/* services/store/wal/testutil.h — helpers shared by this package's tests:
 * temp dirs, files, deterministic payloads, and a replay collector. */
#ifndef KEEL_STORE_WAL_TESTUTIL_H
#define KEEL_STORE_WAL_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A fresh directory under $TEST_TMPDIR (or /tmp); free() the result. */
char *tu_mkdtemp(const char *tag);
/* Same on tmpfs (/dev/shm) when writable, for tests that churn thousands of
 * small files and care about recovery logic, not the disk. */
char *tu_mkdtemp_fast(const char *tag);
void tu_rm_rf(const char *path);
/* path = a + "/" + b, in a static ring of buffers (valid for 8 later calls). */
const char *tu_join(const char *a, const char *b);

uint8_t *tu_read_file(const char *path, size_t *len); /* NULL if missing */
void tu_write_file(const char *path, const void *data, size_t len);
bool tu_exists(const char *path);
/* Number of entries in dir whose name ends with suffix. */
int tu_count_suffix(const char *dir, const char *suffix);
/* Sorted names of entries ending with suffix; free with tu_free_names. */
char **tu_list(const char *dir, const char *suffix, int *n);
void tu_free_names(char **names, int n);

/* Fills buf with bytes determined by (seed, len). */
void tu_payload(uint64_t seed, uint8_t *buf, size_t len);

/* Replay collector: pass tu_collect as the replay callback and a tu_log. */
typedef struct tu_log {
  size_t n, cap;
  uint64_t *index;
  uint8_t **data;
  size_t *len;
} tu_log;
int tu_collect(void *arg, uint64_t index, const uint8_t *payload, size_t len);
void tu_log_add(tu_log *l, uint64_t index, const void *payload, size_t len);
void tu_log_clear(tu_log *l);
void tu_log_free(tu_log *l);
/* True when got holds exactly want's records [0, n) with the same indexes and bytes. */
bool tu_log_prefix_equal(const tu_log *got, const tu_log *want, size_t n);

#endif
