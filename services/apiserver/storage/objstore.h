/* services/apiserver/storage/objstore.h — API objects in an etcd v3 store.
 *
 * Layout: an object lives at "<prefix>/<resource>/<namespace>/<name>" (cluster-
 * scoped kinds: "<prefix>/<resource>/<name>"), prefix "/registry" by default, as
 * Kubernetes lays out etcd. The value is the object's protobuf encoding without
 * apiVersion, kind and metadata.resourceVersion: the resourceVersion IS the
 * key's mod_revision, filled in when an object is read back.
 *
 * Writes are compare-and-swap txns: create requires the key to be absent, update
 * and delete require its mod_revision to be the one the caller read. A caller
 * may add compares and ops to the same txn (a Service and its ClusterIP
 * allocation key are written atomically).
 *
 * Calls are synchronous: run them on worker threads, never on an RPC
 * completion-queue thread. Thread-safe. */
#ifndef KEEL_SERVICES_APISERVER_STORAGE_OBJSTORE_H
#define KEEL_SERVICES_APISERVER_STORAGE_OBJSTORE_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/etcd/etcd.h"
#include "common/kinds/kinds.h"

#define OBJSTORE_KEY_MAX 512
/* Extra compares, and extra ops, one write may carry (etcd allows 128 ops). */
#define OBJSTORE_EXTRA_MAX 64

typedef struct objstore objstore;

/* etcd is borrowed and must outlive the objstore. prefix NULL = "/registry". */
objstore *objstore_new(etcd_client *etcd, const char *prefix, keel_error *err);
void objstore_free(objstore *s);
etcd_client *objstore_etcd(const objstore *s);

/* "<prefix>/pods/default/web" into buf; -ENAMETOOLONG if it does not fit. */
int objstore_key(const objstore *s, const api_kind *k, const char *ns, const char *name, char *buf,
                 size_t len);
/* "<prefix>/pods/" (ns NULL or "") or "<prefix>/pods/default/". */
int objstore_prefix(const objstore *s, const api_kind *k, const char *ns, char *buf, size_t len);
/* A free-form key under the prefix ("<prefix>/<suffix>"), for allocation keys. */
int objstore_raw_key(const objstore *s, const char *suffix, char *buf, size_t len);

/* The stored encoding (malloc'ed). obj is not changed. */
uint8_t *objstore_encode(const api_kind *k, const ProtobufCMessage *obj, size_t *len);
/* Decodes a stored value; sets apiVersion, kind and resourceVersion = rev. NULL
 * (with err) on corrupt data. */
ProtobufCMessage *objstore_decode(const api_kind *k, const void *data, size_t len, int64_t rev,
                                  keel_error *err);

/* Extra compares and ops that ride in a write's txn, and a lease for the
 * object's key (Events expire with theirs). */
typedef struct objstore_extra {
  const etcd_compare *cmps;
  size_t ncmps;
  const etcd_op *ops;
  size_t nops;
  int64_t lease; /* 0 = none */
} objstore_extra;

/* Reads one object (newest). -ENOENT when absent. *obj owned by the caller. */
int objstore_get(objstore *s, const api_kind *k, const char *ns, const char *name,
                 ProtobufCMessage **obj, int64_t *rev, keel_error *err);

/* Creates obj at its key. Returns 0 with *rev the new resourceVersion, -EEXIST
 * when the key exists (or an extra compare failed: -ECANCELED), or an etcd error. */
int objstore_create(objstore *s, const api_kind *k, const ProtobufCMessage *obj,
                    const objstore_extra *extra, int64_t *rev, keel_error *err);

/* Replaces the object whose mod_revision is expected_rev. -ESTALE when the key
 * changed since (or is gone: -ENOENT); -ECANCELED when it did not but an extra
 * compare failed. */
int objstore_update(objstore *s, const api_kind *k, const ProtobufCMessage *obj, int64_t expected_rev,
                    const objstore_extra *extra, int64_t *rev, keel_error *err);

/* Deletes the object whose mod_revision is expected_rev (0 = any). -ESTALE /
 * -ENOENT as update. *rev = the deletion's revision. */
int objstore_delete(objstore *s, const api_kind *k, const char *ns, const char *name,
                    int64_t expected_rev, const objstore_extra *extra, int64_t *rev, keel_error *err);

/* The newest revision this objstore wrote for kind k (0 when none): a reader
 * that must see its own process's writes (admission, namespace finalization)
 * waits for a watch cache to reach it. */
int64_t objstore_last_write(objstore *s, const api_kind *k);

/* The store's current revision (a count-only read). */
int objstore_current_revision(objstore *s, int64_t *rev, keel_error *err);

#endif
