/* common/client/informer.c — see informer.h. The cache (indexer.h), the
 * handlers and the read API; the list/watch loop that feeds them is
 * reflector.c. Handlers run on the informer's thread, always after the cache
 * reflects the change they report. */
#define _GNU_SOURCE
#include "common/client/informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/apimachinery/labels.h"
#include "common/client/indexer.h"
#include "common/client/informer_internal.h"
#include "common/log/log.h"

/* ---------------------------------------------------------------- setup */

static char *dup_or_null(const char *s) { return s && *s ? strdup(s) : NULL; }

informer *informer_new(const informer_options *opts, keel_error *err) {
  if (!opts || !opts->client || !opts->kind) {
    keel_error_set(err, EINVAL, "informer: needs a client and a kind");
    return NULL;
  }
  informer *inf = calloc(1, sizeof(*inf));
  if (!inf) {
    keel_error_set(err, ENOMEM, "informer: out of memory");
    return NULL;
  }
  pthread_mutex_init(&inf->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&inf->cond, &ca);
  pthread_cond_init(&inf->progress, &ca);
  pthread_condattr_destroy(&ca);
  inf->o = *opts;
  inf->c = opts->client;
  inf->k = opts->kind;
  if (inf->o.backoff_initial_ms <= 0) inf->o.backoff_initial_ms = 200;
  if (inf->o.backoff_max_ms <= 0) inf->o.backoff_max_ms = 10000;
  if (inf->o.backoff_max_ms < inf->o.backoff_initial_ms) inf->o.backoff_max_ms = inf->o.backoff_initial_ms;
  if (inf->o.list_timeout_ms <= 0) inf->o.list_timeout_ms = 60000;
  if (inf->o.max_pending == 0) inf->o.max_pending = 100000;
  if (inf->o.relist_after_failures <= 0) inf->o.relist_after_failures = 8;
  inf->ns = dup_or_null(opts->kind->namespaced ? opts->ns : NULL);
  inf->label_selector = dup_or_null(opts->label_selector);
  inf->field_selector = dup_or_null(opts->field_selector);
  inf->name = strdup(opts->name && *opts->name ? opts->name : opts->kind->resource);
  inf->ix = indexer_new(opts->kind);
  if (!inf->name || !inf->ix) {
    informer_free(inf);
    keel_error_set(err, ENOMEM, "informer: out of memory");
    return NULL;
  }
  return inf;
}

void informer_pending_free(pending *p) {
  while (p) {
    pending *next = p->next;
    if (p->obj) protobuf_c_message_free_unpacked(p->obj, NULL);
    free(p);
    p = next;
  }
}

void informer_free(informer *inf) {
  if (!inf) return;
  informer_stop(inf);
  informer_pending_free(inf->qhead);
  pthread_mutex_destroy(&inf->mu);
  pthread_cond_destroy(&inf->cond);
  pthread_cond_destroy(&inf->progress);
  indexer_free(inf->ix);
  for (size_t i = 0; i < inf->nfield_indexes; i++) {
    free(inf->field_indexes[i]->path);
    free(inf->field_indexes[i]->label);
    free(inf->field_indexes[i]);
  }
  free(inf->field_indexes);
  free(inf->regs);
  free(inf->ns);
  free(inf->label_selector);
  free(inf->field_selector);
  free(inf->name);
  free(inf);
}

int informer_add_handlers(informer *inf, const informer_handlers *h, keel_error *err) {
  if (inf->started) return keel_error_set(err, EBUSY, "informer %s: handlers must be added before start", inf->name);
  registration *r = realloc(inf->regs, (inf->nregs + 1) * sizeof(*r));
  if (!r) return keel_error_set(err, ENOMEM, "informer: out of memory");
  inf->regs = r;
  inf->regs[inf->nregs++].h = *h;
  return 0;
}

int informer_add_index(informer *inf, const char *name, informer_index_fn fn, void *arg, keel_error *err) {
  if (inf->started) return keel_error_set(err, EBUSY, "informer %s: indexes must be added before start", inf->name);
  int rc = indexer_add_index(inf->ix, name, fn, arg);
  if (rc == -EEXIST) return keel_error_set(err, EEXIST, "informer %s: index %s exists", inf->name, name);
  if (rc < 0) return keel_error_set(err, -rc, "informer %s: index %s: out of memory", inf->name, name);
  return 0;
}

static size_t field_value(const api_kind *k, const ProtobufCMessage *obj, char **values, size_t max, void *arg) {
  field_index *f = arg;
  char buf[512];
  if (max < 1 || !api_object_field_text(k, obj, f->path, buf, sizeof(buf))) return 0;
  values[0] = strdup(buf);
  return values[0] ? 1 : 0;
}

static size_t label_value(const api_kind *k, const ProtobufCMessage *obj, char **values, size_t max, void *arg) {
  field_index *f = arg;
  const Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  if (max < 1 || !m) return 0;
  for (size_t i = 0; i < m->n_labels; i++) {
    if (m->labels[i]->key && strcmp(m->labels[i]->key, f->label) == 0) {
      values[0] = strdup(m->labels[i]->value ? m->labels[i]->value : "");
      return values[0] ? 1 : 0;
    }
  }
  return 0;
}

static int add_builtin_index(informer *inf, const char *name, const char *path, const char *label,
                             informer_index_fn fn, keel_error *err) {
  field_index *f = calloc(1, sizeof(*f));
  field_index **arr = realloc(inf->field_indexes, (inf->nfield_indexes + 1) * sizeof(*arr));
  if (!f || !arr) {
    free(f);
    return keel_error_set(err, ENOMEM, "informer: out of memory");
  }
  inf->field_indexes = arr;
  f->path = path ? strdup(path) : NULL;
  f->label = label ? strdup(label) : NULL;
  arr[inf->nfield_indexes++] = f;
  return informer_add_index(inf, name, fn, f, err);
}

int informer_add_field_index(informer *inf, const char *field_path, keel_error *err) {
  return add_builtin_index(inf, field_path, field_path, NULL, field_value, err);
}

int informer_add_label_index(informer *inf, const char *label_key, keel_error *err) {
  char name[320];
  snprintf(name, sizeof(name), "label:%s", label_key);
  return add_builtin_index(inf, name, NULL, label_key, label_value, err);
}

/* ---------------------------------------------------------------- reads */

informer_object *informer_get_by_key(informer *inf, const char *key) { return indexer_get(inf->ix, key); }

informer_object *informer_get(informer *inf, const char *ns, const char *name) {
  char key[512];
  if (inf->k->namespaced && ns && *ns) snprintf(key, sizeof(key), "%s/%s", ns, name);
  else snprintf(key, sizeof(key), "%s", name);
  return indexer_get(inf->ix, key);
}

size_t informer_count(informer *inf) { return indexer_count(inf->ix); }

int informer_list(informer *inf, const char *ns, const char *label_selector, informer_object ***objs, size_t *n,
                  keel_error *err) {
  labels_selector *sel = NULL;
  *objs = NULL;
  *n = 0;
  if (label_selector && *label_selector) {
    int rc = labels_selector_parse(label_selector, &sel, err);
    if (rc < 0) return rc;
  }
  int rc = indexer_list(inf->ix, ns, sel, objs, n);
  labels_selector_free(sel);
  if (rc < 0) return keel_error_set(err, -rc, "informer %s: list: out of memory", inf->name);
  return 0;
}

int informer_list_by_index(informer *inf, const char *index, const char *value, informer_object ***objs,
                           size_t *n, keel_error *err) {
  int rc = indexer_list_by_index(inf->ix, index, value, objs, n);
  if (rc == -ENOENT) return keel_error_set(err, ENOENT, "informer %s: no index %s", inf->name, index);
  if (rc < 0) return keel_error_set(err, -rc, "informer %s: list: out of memory", inf->name);
  return 0;
}

int informer_index_values(informer *inf, const char *index, char ***values, size_t *n, keel_error *err) {
  int rc = indexer_index_values(inf->ix, index, values, n);
  if (rc == -ENOENT) return keel_error_set(err, ENOENT, "informer %s: no index %s", inf->name, index);
  if (rc < 0) return keel_error_set(err, -rc, "informer %s: out of memory", inf->name);
  return 0;
}

bool informer_has_synced(informer *inf) {
  pthread_mutex_lock(&inf->mu);
  bool s = inf->synced;
  pthread_mutex_unlock(&inf->mu);
  return s;
}

static bool wait_progress(informer *inf, bool want_sync, int64_t rv, int64_t timeout_ms) {
  int64_t deadline = informer_now_ms() + timeout_ms;
  pthread_mutex_lock(&inf->mu);
  for (;;) {
    bool ok = want_sync ? inf->synced : inf->synced && inf->delivered_rv >= rv;
    if (ok || informer_now_ms() >= deadline) {
      pthread_mutex_unlock(&inf->mu);
      return ok;
    }
    struct timespec ts = informer_abs_ms(deadline);
    pthread_cond_timedwait(&inf->progress, &inf->mu, &ts);
  }
}

bool informer_wait_synced(informer *inf, int64_t timeout_ms) { return wait_progress(inf, true, 0, timeout_ms); }
bool informer_wait_rv(informer *inf, int64_t rv, int64_t timeout_ms) { return wait_progress(inf, false, rv, timeout_ms); }

int64_t informer_last_rv(informer *inf) {
  pthread_mutex_lock(&inf->mu);
  int64_t rv = inf->last_rv;
  pthread_mutex_unlock(&inf->mu);
  return rv;
}

void informer_get_stats(informer *inf, informer_stats *st) {
  pthread_mutex_lock(&inf->mu);
  *st = inf->stats;
  pthread_mutex_unlock(&inf->mu);
}

/* ---------------------------------------------------------------- handlers */

static void notify_add(informer *inf, const ProtobufCMessage *obj) {
  for (size_t i = 0; i < inf->nregs; i++)
    if (inf->regs[i].h.on_add) inf->regs[i].h.on_add(obj, inf->regs[i].h.arg);
}

static void notify_update(informer *inf, const ProtobufCMessage *old_obj, const ProtobufCMessage *new_obj) {
  for (size_t i = 0; i < inf->nregs; i++)
    if (inf->regs[i].h.on_update) inf->regs[i].h.on_update(old_obj, new_obj, inf->regs[i].h.arg);
}

static void notify_delete(informer *inf, const ProtobufCMessage *obj, bool unknown) {
  for (size_t i = 0; i < inf->nregs; i++)
    if (inf->regs[i].h.on_delete) inf->regs[i].h.on_delete(obj, unknown, inf->regs[i].h.arg);
}

/* Caches obj (taken) and tells the handlers: add or update. */
static void store_and_notify(informer *inf, ProtobufCMessage *obj, int64_t rv) {
  char key[512];
  if (!client_object_key(inf->k, obj, key, sizeof(key))) {
    LOG_WARN("informer: object without a usable name ignored", "informer", inf->name);
    protobuf_c_message_free_unpacked(obj, NULL);
    return;
  }
  informer_object *o = informer_object_new(obj, key, rv);
  if (!o) return;
  informer_object *old = NULL;
  informer_object_ref(o); /* ours, for the handlers */
  if (indexer_put(inf->ix, o, &old) < 0) {
    LOG_ERROR("informer: out of memory caching an object", "informer", inf->name, "key", key);
    informer_object_unref(o);
    return;
  }
  if (old) notify_update(inf, informer_object_msg(old), informer_object_msg(o));
  else notify_add(inf, informer_object_msg(o));
  informer_object_unref(old);
  informer_object_unref(o);
}

void informer_set_delivered(informer *inf, int64_t rv) {
  pthread_mutex_lock(&inf->mu);
  if (rv > inf->last_rv) inf->last_rv = rv;
  if (rv > inf->delivered_rv) inf->delivered_rv = rv;
  pthread_cond_broadcast(&inf->progress);
  pthread_mutex_unlock(&inf->mu);
}

/* One watch event (p->obj is taken). */
void informer_apply_event(informer *inf, pending *p) {
  ProtobufCMessage *obj = p->obj;
  p->obj = NULL;
  pthread_mutex_lock(&inf->mu);
  bool stale = p->rv <= inf->last_rv;
  if (stale) inf->stats.stale_events++;
  else inf->stats.events++;
  pthread_mutex_unlock(&inf->mu);
  if (stale) {
    LOG_WARN("informer: event at or below the last version seen dropped", "informer", inf->name, "rv",
             log_int(p->rv));
    protobuf_c_message_free_unpacked(obj, NULL);
    return;
  }
  if (p->type == P_DELETED) {
    char key[512];
    informer_object *old = NULL;
    if (client_object_key(inf->k, obj, key, sizeof(key)) && indexer_remove(inf->ix, key, &old) == 0)
      notify_delete(inf, obj, false);
    informer_object_unref(old);
    protobuf_c_message_free_unpacked(obj, NULL);
  } else {
    store_and_notify(inf, obj, p->rv);
  }
  informer_set_delivered(inf, p->rv);
}

void informer_resync(informer *inf) {
  informer_object **objs;
  size_t n;
  if (indexer_list(inf->ix, NULL, NULL, &objs, &n) < 0) return;
  for (size_t i = 0; i < n; i++) notify_update(inf, informer_object_msg(objs[i]), informer_object_msg(objs[i]));
  informer_objects_release(objs, n);
  pthread_mutex_lock(&inf->mu);
  inf->stats.resyncs++;
  pthread_mutex_unlock(&inf->mu);
}

/* ---------------------------------------------------------------- relist */

static int strcmp_ptr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void informer_replace(informer *inf, ProtobufCMessage **items, size_t n) {
  /* Keys of the new state, to find what is gone. */
  char key[512];
  char **keys = calloc(n ? n : 1, sizeof(*keys));
  if (!keys) {
    LOG_ERROR("informer: out of memory replacing the cache", "informer", inf->name);
    for (size_t i = 0; i < n; i++) protobuf_c_message_free_unpacked(items[i], NULL);
    return;
  }
  for (size_t i = 0; i < n; i++)
    keys[i] = client_object_key(inf->k, items[i], key, sizeof(key)) ? strdup(key) : NULL;
  /* Gone: in the cache, not in the list. */
  informer_object **cached;
  size_t nc;
  if (indexer_list(inf->ix, NULL, NULL, &cached, &nc) == 0) {
    char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    size_t ns = 0;
    if (sorted) {
      for (size_t i = 0; i < n; i++)
        if (keys[i]) sorted[ns++] = keys[i];
      qsort(sorted, ns, sizeof(*sorted), strcmp_ptr);
      for (size_t i = 0; i < nc; i++) {
        const char *ck = informer_object_key(cached[i]);
        if (bsearch(&ck, sorted, ns, sizeof(*sorted), strcmp_ptr)) continue;
        informer_object *old = NULL;
        if (indexer_remove(inf->ix, ck, &old) == 0) notify_delete(inf, informer_object_msg(old), true);
        informer_object_unref(old);
      }
      free(sorted);
    }
    informer_objects_release(cached, nc);
  }
  for (size_t i = 0; i < n; i++) {
    ProtobufCMessage *obj = items[i];
    items[i] = NULL;
    if (!keys[i]) {
      protobuf_c_message_free_unpacked(obj, NULL);
      continue;
    }
    int64_t rv = client_object_rv(inf->k, obj);
    informer_object *cur = indexer_get(inf->ix, keys[i]);
    bool same = cur && informer_object_rv(cur) == rv;
    informer_object_unref(cur);
    if (same) protobuf_c_message_free_unpacked(obj, NULL);
    else store_and_notify(inf, obj, rv);
    free(keys[i]);
  }
  free(keys);
}

/* ---------------------------------------------------------------- start/stop */

int informer_start(informer *inf, keel_error *err) {
  pthread_mutex_lock(&inf->mu);
  if (inf->started) {
    pthread_mutex_unlock(&inf->mu);
    return keel_error_set(err, EALREADY, "informer %s: already started", inf->name);
  }
  inf->started = true;
  pthread_mutex_unlock(&inf->mu);
  int rc = pthread_create(&inf->thread, NULL, informer_reflector_run, inf);
  if (rc != 0) {
    pthread_mutex_lock(&inf->mu);
    inf->started = false;
    pthread_mutex_unlock(&inf->mu);
    return keel_error_set_errno(err, rc, "informer %s: start thread", inf->name);
  }
  return 0;
}

void informer_stop(informer *inf) {
  pthread_mutex_lock(&inf->mu);
  bool join = inf->started && !inf->stopping;
  inf->stopping = true;
  pthread_cond_broadcast(&inf->cond);
  pthread_mutex_unlock(&inf->mu);
  if (join) pthread_join(inf->thread, NULL);
}
