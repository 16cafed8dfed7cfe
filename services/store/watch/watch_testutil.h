/* services/store/watch/watch_testutil.h — test helpers: a store in a temp dir
 * with synchronous writes, and a thread-safe log of WatchResponses. */
#ifndef KEEL_SERVICES_STORE_WATCH_WATCH_TESTUTIL_H
#define KEEL_SERVICES_STORE_WATCH_WATCH_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "services/store/engine/store.h"

typedef struct test_store {
  store *s;
  char *dir;
} test_store;

void test_store_open(test_store *ts);
void test_store_close(test_store *ts); /* closes and removes the directory */

/* Synchronous writes; each returns the response header's revision (aborts the
 * test on failure). */
int64_t tput(store *s, const char *key, const char *value);
int64_t tput_bytes(store *s, const char *key, const void *value, size_t len);
int64_t tdel(store *s, const char *key, const char *range_end);
/* One txn putting keys[i] = values[i]. */
int64_t ttxn_puts(store *s, const char *const *keys, const char *const *values, size_t n);
void tcompact(store *s, int64_t rev);
int64_t trev(store *s);

/* Asynchronous puts counted by a shared counter. */
typedef struct put_counter {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int done, failed;
} put_counter;
void put_counter_init(put_counter *c);
void tput_async(store *s, const char *key, const char *value, put_counter *c);
/* Waits until done >= n or timeout; returns done. */
int put_counter_wait(put_counter *c, int n, int timeout_ms);

/* Responses in arrival order, deep-copied. */
typedef struct resp_log {
  pthread_mutex_t mu;
  pthread_cond_t cond;
  Etcdserverpb__WatchResponse **r;
  size_t n, cap;
  bool closed;
} resp_log;

void resp_log_init(resp_log *l);
void resp_log_free(resp_log *l);
void resp_log_add(resp_log *l, const Etcdserverpb__WatchResponse *m);
void resp_log_close(resp_log *l);
size_t resp_log_count(resp_log *l);
/* The i-th response, waiting up to timeout_ms; NULL on timeout. Stays valid
 * until resp_log_free. */
Etcdserverpb__WatchResponse *resp_log_get(resp_log *l, size_t i, int timeout_ms);
/* Waits until at least n responses arrived; returns the count. */
size_t resp_log_wait(resp_log *l, size_t n, int timeout_ms);

bool key_is(const Mvccpb__KeyValue *kv, const char *key);
bool value_is(const Mvccpb__KeyValue *kv, const char *value);

#endif
