/* services/apiserver/storage/objstore.c — keys, encoding and CAS writes.
 *
 * A write whose outcome is unknown (the connection dropped after sending:
 * EAGAIN or ETIMEDOUT) is settled by reading the key back: our txns are guarded
 * by create/mod revision, so they can never apply twice, and an object's bytes
 * carry its uid and generation, so byte-identical means "ours" (see RETRIES in
 * common/etcd/etcd.h). */
#include "services/apiserver/storage/objstore.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/base/cleanup.h"

#define OBJSTORE_MAX_KINDS 32

struct objstore {
  etcd_client *etcd;
  char prefix[128];
  /* The newest revision this process wrote, per kind (read-your-writes). */
  _Atomic int64_t last_write[OBJSTORE_MAX_KINDS];
};

static _Atomic int64_t *last_write_slot(objstore *s, const api_kind *k) {
  size_t n;
  const api_kind *ks = api_kinds(&n);
  size_t i = (size_t)(k - ks);
  return i < n && i < OBJSTORE_MAX_KINDS ? &s->last_write[i] : NULL;
}

static void note_write(objstore *s, const api_kind *k, int64_t rev) {
  _Atomic int64_t *slot = last_write_slot(s, k);
  if (!slot) return;
  int64_t cur = atomic_load(slot);
  while (cur < rev && !atomic_compare_exchange_weak(slot, &cur, rev)) {
  }
}

int64_t objstore_last_write(objstore *s, const api_kind *k) {
  _Atomic int64_t *slot = last_write_slot(s, k);
  return slot ? atomic_load(slot) : 0;
}

objstore *objstore_new(etcd_client *etcd, const char *prefix, keel_error *err) {
  if (!prefix) prefix = "/registry";
  size_t n = strlen(prefix);
  while (n > 0 && prefix[n - 1] == '/') n--;
  if (n == 0 || n >= sizeof(((objstore *)0)->prefix)) {
    keel_error_set(err, EINVAL, "storage prefix \"%s\": must be 1..%zu characters", prefix,
                   sizeof(((objstore *)0)->prefix) - 1);
    return NULL;
  }
  objstore *s = calloc(1, sizeof *s);
  if (!s) {
    keel_error_set(err, ENOMEM, "objstore: out of memory");
    return NULL;
  }
  s->etcd = etcd;
  memcpy(s->prefix, prefix, n);
  s->prefix[n] = '\0';
  return s;
}

void objstore_free(objstore *s) {
  free(s);
}

etcd_client *objstore_etcd(const objstore *s) {
  return s->etcd;
}

static int fits(int n, size_t len) {
  return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : n;
}

int objstore_key(const objstore *s, const api_kind *k, const char *ns, const char *name, char *buf,
                 size_t len) {
  if (k->namespaced) return fits(snprintf(buf, len, "%s/%s/%s/%s", s->prefix, k->resource, ns, name), len);
  return fits(snprintf(buf, len, "%s/%s/%s", s->prefix, k->resource, name), len);
}

int objstore_prefix(const objstore *s, const api_kind *k, const char *ns, char *buf, size_t len) {
  if (k->namespaced && ns && *ns) return fits(snprintf(buf, len, "%s/%s/%s/", s->prefix, k->resource, ns), len);
  return fits(snprintf(buf, len, "%s/%s/", s->prefix, k->resource), len);
}

int objstore_raw_key(const objstore *s, const char *suffix, char *buf, size_t len) {
  return fits(snprintf(buf, len, "%s/%s", s->prefix, suffix), len);
}

uint8_t *objstore_encode(const api_kind *k, const ProtobufCMessage *obj, size_t *len) {
  /* Pack without apiVersion, kind and resourceVersion: swap them out of the
   * (caller's) message for the duration of the pack and put them back. */
  char **apiv = (char **)((char *)obj + k->f_api_version->offset);
  char **kind = (char **)((char *)obj + k->f_kind->offset);
  Keel__Api__V1__ObjectMeta *meta = api_object_meta(k, obj);
  char *saved_apiv = *apiv, *saved_kind = *kind, *saved_rv = meta ? meta->resource_version : NULL;
  *apiv = (char *)protobuf_c_empty_string;
  *kind = (char *)protobuf_c_empty_string;
  if (meta) meta->resource_version = (char *)protobuf_c_empty_string;
  size_t n = protobuf_c_message_get_packed_size(obj);
  uint8_t *buf = malloc(n ? n : 1);
  if (buf) protobuf_c_message_pack(obj, buf);
  *apiv = saved_apiv;
  *kind = saved_kind;
  if (meta) meta->resource_version = saved_rv;
  *len = n;
  return buf;
}

ProtobufCMessage *objstore_decode(const api_kind *k, const void *data, size_t len, int64_t rev,
                                  keel_error *err) {
  ProtobufCMessage *obj = protobuf_c_message_unpack(k->object, NULL, len, data);
  if (!obj) {
    keel_error_set(err, EIO, "stored %s: %zu bytes that do not decode", k->kind, len);
    return NULL;
  }
  api_object_set_type_meta(k, obj);
  Keel__Api__V1__ObjectMeta *meta = api_object_meta_ensure(k, obj);
  char rv[24];
  snprintf(rv, sizeof rv, "%lld", (long long)rev);
  if (meta->resource_version != protobuf_c_empty_string) free(meta->resource_version);
  meta->resource_version = strdup(rv);
  if (!meta->resource_version) {
    meta->resource_version = (char *)protobuf_c_empty_string;
    protobuf_c_message_free_unpacked(obj, NULL);
    keel_error_set(err, ENOMEM, "decode %s: out of memory", k->kind);
    return NULL;
  }
  return obj;
}

static const char *meta_ns(const api_kind *k, const ProtobufCMessage *obj) {
  Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  return m && m->namespace_ ? m->namespace_ : "";
}

static const char *meta_name(const api_kind *k, const ProtobufCMessage *obj) {
  Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  return m && m->name ? m->name : "";
}

int objstore_get(objstore *s, const api_kind *k, const char *ns, const char *name,
                 ProtobufCMessage **obj, int64_t *rev, keel_error *err) {
  char key[OBJSTORE_KEY_MAX];
  int rc = objstore_key(s, k, ns, name, key, sizeof key);
  /* No object has a key that long: names are validated on create. */
  if (rc < 0) return keel_error_set(err, ENOENT, "%s \"%.64s...\" not found", k->resource, name);
  etcd_range_result r;
  rc = etcd_range(s->etcd, key, strlen(key), NULL, 0, 0, 0, false, false, &r, err);
  if (rc < 0) return rc;
  if (r.nkvs == 0) {
    etcd_range_result_clear(&r);
    return keel_error_set(err, ENOENT, "%s \"%s\" not found", k->resource, name);
  }
  *obj = objstore_decode(k, r.kvs[0].value, r.kvs[0].value_len, r.kvs[0].mod_revision, err);
  if (rev) *rev = r.kvs[0].mod_revision;
  etcd_range_result_clear(&r);
  return *obj ? 0 : -EIO;
}

/* After an unknown outcome: did our value land at key? 1 yes (with *rev),
 * 0 no, negative on a read error. */
static int settle_unknown(objstore *s, const char *key, const uint8_t *value, size_t len, int64_t *rev,
                          keel_error *err) {
  etcd_range_result r;
  int rc = etcd_range(s->etcd, key, strlen(key), NULL, 0, 0, 0, false, false, &r, err);
  if (rc < 0) return rc;
  int ours = r.nkvs == 1 && r.kvs[0].value_len == len && (len == 0 || memcmp(r.kvs[0].value, value, len) == 0);
  if (ours && rev) *rev = r.kvs[0].mod_revision;
  etcd_range_result_clear(&r);
  return ours;
}

/* Runs a guarded put/delete txn: guard on key, the main op, plus extras. The
 * failure branch reads the key so a conflict can tell "gone" from "changed". */
static int guarded_txn(objstore *s, const char *key, etcd_cmp_target target, etcd_cmp_result result,
                       int64_t number, const etcd_op *main_op, const objstore_extra *extra, etcd_txn_result *out,
                       keel_error *err) {
  size_t nextra_c = extra ? extra->ncmps : 0, nextra_o = extra ? extra->nops : 0;
  etcd_compare cmps[1 + OBJSTORE_EXTRA_MAX];
  etcd_op ops[1 + OBJSTORE_EXTRA_MAX];
  if (nextra_c > OBJSTORE_EXTRA_MAX || nextra_o > OBJSTORE_EXTRA_MAX)
    return keel_error_set(err, EINVAL, "objstore: too many extra txn parts");
  cmps[0] = (etcd_compare){.key = key, .key_len = strlen(key), .target = target, .result = result,
                           .number = number};
  for (size_t i = 0; i < nextra_c; i++) cmps[1 + i] = extra->cmps[i];
  ops[0] = *main_op;
  for (size_t i = 0; i < nextra_o; i++) ops[1 + i] = extra->ops[i];
  etcd_op read_key = {.type = ETCD_OP_RANGE, .key = key, .key_len = strlen(key)};
  return etcd_txn(s->etcd, cmps, 1 + nextra_c, ops, 1 + nextra_o, &read_key, 1, out, err);
}

static bool unknown_outcome(int rc) {
  return rc == -EAGAIN || rc == -ETIMEDOUT;
}

/* The outcome of a guarded put. GUARD_HELD: the key was as the guard wanted,
 * so an extra compare failed. */
typedef enum { PUT_DONE, PUT_GUARD_FAILED_KEY_EXISTS, PUT_GUARD_FAILED_KEY_ABSENT, PUT_GUARD_HELD } put_outcome;

/* Puts obj at its key if the guard (target == number) holds, with the extras;
 * an unknown outcome is settled by reading the key back. Returns 0 with
 * *outcome, or a negative errno. */
static int guarded_put(objstore *s, const api_kind *k, const ProtobufCMessage *obj, etcd_cmp_target target,
                       int64_t number, const objstore_extra *extra, int64_t *rev, put_outcome *outcome,
                       keel_error *err) {
  char key[OBJSTORE_KEY_MAX];
  const char *name = meta_name(k, obj);
  if (objstore_key(s, k, meta_ns(k, obj), name, key, sizeof key) < 0)
    return keel_error_set(err, ENAMETOOLONG, "%s \"%.64s...\": key too long", k->resource, name);
  size_t len;
  cleanup_free uint8_t *value = objstore_encode(k, obj, &len);
  if (!value) return keel_error_set(err, ENOMEM, "write %s: out of memory", k->resource);
  etcd_op put = {.type = ETCD_OP_PUT, .key = key, .key_len = strlen(key), .value = value, .value_len = len,
                 .lease = extra ? extra->lease : 0};
  etcd_txn_result r;
  int rc = guarded_txn(s, key, target, ETCD_CMP_EQUAL, number, &put, extra, &r, err);
  if (unknown_outcome(rc)) {
    keel_error saved = err ? *err : (keel_error){0};
    int64_t landed = 0;
    if (settle_unknown(s, key, value, len, &landed, NULL) == 1) {
      if (rev) *rev = landed;
      note_write(s, k, landed);
      *outcome = PUT_DONE;
      return 0;
    }
    if (err) *err = saved;
    return rc;
  }
  if (rc < 0) return rc;
  if (r.succeeded) {
    if (rev) *rev = r.revision;
    note_write(s, k, r.revision);
    *outcome = PUT_DONE;
  } else {
    bool exists = r.nresults == 1 && r.results[0].range.nkvs > 0;
    /* The failure branch reads the key at the txn's own revision. */
    bool held = exists && target == ETCD_CMP_MOD && r.results[0].range.kvs[0].mod_revision == number;
    *outcome = held ? PUT_GUARD_HELD : exists ? PUT_GUARD_FAILED_KEY_EXISTS : PUT_GUARD_FAILED_KEY_ABSENT;
  }
  etcd_txn_result_clear(&r);
  return 0;
}

int objstore_create(objstore *s, const api_kind *k, const ProtobufCMessage *obj,
                    const objstore_extra *extra, int64_t *rev, keel_error *err) {
  put_outcome o;
  int rc = guarded_put(s, k, obj, ETCD_CMP_CREATE, 0, extra, rev, &o, err);
  if (rc < 0 || o == PUT_DONE) return rc;
  const char *name = meta_name(k, obj);
  if (o == PUT_GUARD_FAILED_KEY_EXISTS) return keel_error_set(err, EEXIST, "%s \"%s\" already exists", k->resource, name);
  return keel_error_set(err, ECANCELED, "%s \"%s\": a precondition of the write failed", k->resource, name);
}

int objstore_update(objstore *s, const api_kind *k, const ProtobufCMessage *obj, int64_t expected_rev,
                    const objstore_extra *extra, int64_t *rev, keel_error *err) {
  put_outcome o;
  int rc = guarded_put(s, k, obj, ETCD_CMP_MOD, expected_rev, extra, rev, &o, err);
  const char *name = meta_name(k, obj);
  /* No stored object has a key that long (names are validated on create). */
  if (rc == -ENAMETOOLONG) return keel_error_set(err, ENOENT, "%s \"%.64s...\" not found", k->resource, name);
  if (rc < 0 || o == PUT_DONE) return rc;
  if (o == PUT_GUARD_FAILED_KEY_ABSENT) return keel_error_set(err, ENOENT, "%s \"%s\" not found", k->resource, name);
  if (o == PUT_GUARD_HELD)
    return keel_error_set(err, ECANCELED, "%s \"%s\": a precondition of the write failed", k->resource, name);
  return keel_error_set(err, ESTALE,
                        "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
                        "apply your changes to the latest version and try again",
                        k->resource, name);
}

int objstore_delete(objstore *s, const api_kind *k, const char *ns, const char *name,
                    int64_t expected_rev, const objstore_extra *extra, int64_t *rev, keel_error *err) {
  char key[OBJSTORE_KEY_MAX];
  if (objstore_key(s, k, ns, name, key, sizeof key) < 0)
    return keel_error_set(err, ENOENT, "%s \"%.64s...\" not found", k->resource, name);
  etcd_op del = {.type = ETCD_OP_DELETE, .key = key, .key_len = strlen(key)};
  etcd_txn_result r;
  /* expected_rev 0: any version; the guard is only "the key exists". */
  int rc = expected_rev
               ? guarded_txn(s, key, ETCD_CMP_MOD, ETCD_CMP_EQUAL, expected_rev, &del, extra, &r, err)
               : guarded_txn(s, key, ETCD_CMP_CREATE, ETCD_CMP_NOT_EQUAL, 0, &del, extra, &r, err);
  if (rc < 0) return rc;
  bool ok = r.succeeded;
  bool gone = !ok && r.nresults == 1 && r.results[0].range.nkvs == 0;
  if (ok && rev) *rev = r.revision;
  if (ok) note_write(s, k, r.revision);
  etcd_txn_result_clear(&r);
  if (ok) return 0;
  if (gone) return keel_error_set(err, ENOENT, "%s \"%s\" not found", k->resource, name);
  return keel_error_set(err, ESTALE,
                        "Operation cannot be fulfilled on %s \"%s\": the object has been modified; please "
                        "apply your changes to the latest version and try again",
                        k->resource, name);
}

int objstore_current_revision(objstore *s, int64_t *rev, keel_error *err) {
  char key[OBJSTORE_KEY_MAX];
  objstore_raw_key(s, "", key, sizeof key);
  etcd_range_result r;
  int rc = etcd_range(s->etcd, key, strlen(key), NULL, 0, 0, 1, true, true, &r, err);
  if (rc < 0) return rc;
  *rev = r.revision;
  etcd_range_result_clear(&r);
  return 0;
}
