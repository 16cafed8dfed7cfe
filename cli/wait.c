/* cli/wait.c — see wait.h. */
#define _GNU_SOURCE
#include "cli/wait.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct waiter {
  const api_kind *k;
  const char *uid;
  wait_check_fn check;
  void *arg;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  bool done, closed;
  client_status st;
  char rv[32];
} waiter;

/* The check for one state, with another incarnation counting as gone. */
static bool check_state(waiter *w, const ProtobufCMessage *obj) {
  if (obj && w->uid && *w->uid) {
    const Keel__Api__V1__ObjectMeta *m = api_object_meta(w->k, obj);
    if (m && m->uid && strcmp(m->uid, w->uid) != 0) obj = NULL;
  }
  return w->check(obj, w->arg);
}

static void on_event(const char *type, const ProtobufCMessage *obj, int64_t rv, void *arg) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  if (rv > 0) snprintf(w->rv, sizeof(w->rv), "%lld", (long long)rv);
  if (!w->done && strcmp(type, "BOOKMARK") != 0) {
    w->done = check_state(w, strcmp(type, "DELETED") == 0 ? NULL : obj);
    if (w->done) pthread_cond_broadcast(&w->cond);
  }
  pthread_mutex_unlock(&w->mu);
}

static void on_close(const client_status *st, void *arg) {
  waiter *w = arg;
  pthread_mutex_lock(&w->mu);
  w->st = *st;
  w->closed = true;
  pthread_cond_broadcast(&w->cond);
  pthread_mutex_unlock(&w->mu);
}

wait_result wait_for_object(cli *x, client *c, const api_kind *k, const char *ns, const char *name, const char *uid,
                            int64_t timeout_ms, wait_check_fn check, void *arg) {
  waiter w = {.k = k, .uid = uid, .check = check, .arg = arg};
  pthread_mutex_init(&w.mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w.cond, &ca);
  pthread_condattr_destroy(&ca);
  struct timespec deadline;
  clock_gettime(CLOCK_MONOTONIC, &deadline);
  deadline.tv_sec += timeout_ms / 1000;
  deadline.tv_nsec += (timeout_ms % 1000) * 1000000;
  if (deadline.tv_nsec >= 1000000000) {
    deadline.tv_sec++;
    deadline.tv_nsec -= 1000000000;
  }
  char *fs = NULL;
  wait_result result = WAIT_ERROR;
  if (asprintf(&fs, "metadata.name=%s", name) < 0) {
    cli_error(x, "out of memory");
    goto out;
  }
  bool need_get = true;
  for (;;) {
    if (need_get) {
      ProtobufCMessage *obj = NULL;
      client_status st;
      client_call_options co = cli_call_opts(x, false);
      if (client_get(c, k, ns, name, NULL, &obj, &co, &st) < 0) {
        if (client_is_not_found(&st) && check_state(&w, NULL)) result = WAIT_DONE;
        else cli_server_error(x, &st, NULL);
        goto out;
      }
      bool done = check_state(&w, obj);
      const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
      snprintf(w.rv, sizeof(w.rv), "%s", m && m->resource_version ? m->resource_version : "");
      protobuf_c_message_free_unpacked(obj, NULL);
      if (done) {
        result = WAIT_DONE;
        goto out;
      }
      need_get = false;
    }
    Keel__Api__V1__WatchRequest wr = KEEL__API__V1__WATCH_REQUEST__INIT;
    wr.namespace_ = (char *)(k->namespaced ? ns : "");
    wr.field_selector = fs;
    wr.resource_version = w.rv;
    wr.allow_watch_bookmarks = true;
    client_watch_handlers h = {.on_event = on_event, .on_close = on_close};
    keel_error err = {0};
    w.closed = false;
    client_watch *cw = client_watch_start(c, k, &wr, &h, &w, &err);
    if (!cw) {
      cli_error(x, "%s", err.message);
      goto out;
    }
    bool timed_out = false;
    pthread_mutex_lock(&w.mu);
    while (!w.done && !w.closed && !timed_out)
      timed_out = timeout_ms > 0 && pthread_cond_timedwait(&w.cond, &w.mu, &deadline) == ETIMEDOUT;
    bool done = w.done, closed = w.closed;
    client_status end = w.st;
    pthread_mutex_unlock(&w.mu);
    client_watch_stop(cw);
    if (done) {
      result = WAIT_DONE;
      goto out;
    }
    if (timed_out) {
      result = WAIT_TIMEOUT;
      goto out;
    }
    if (closed && (end.code == GRPC_STATUS_OK || end.code == GRPC_STATUS_RESOURCE_EXHAUSTED)) continue;
    if (closed && client_is_too_old(&end)) {
      need_get = true;
      continue;
    }
    cli_server_error(x, &end, NULL);
    goto out;
  }
out:
  free(fs);
  pthread_mutex_destroy(&w.mu);
  pthread_cond_destroy(&w.cond);
  return result;
}
