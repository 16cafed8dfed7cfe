/* services/apiserver/storage tests: keys, the stored encoding, and the
 * compare-and-swap writes, run as one table against keel-store and against a
 * real etcd 3.4, each started by common/etcd/testenv (fork/exec on loopback
 * ports it picks, data in a private temp dir). Every test writes under its own
 * prefix, so the tests of one group share a server without seeing each other.
 *
 * usage: objstore_test KEEL_STORE_BIN   (Bazel passes its location)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/etcd/etcd.h"
#include "common/etcd/testenv.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"
#include "services/apiserver/storage/objstore.h"

#define ETCD_BIN "/usr/bin/etcd"
#define MAX_REQUEST_BYTES (1536 * 1024)

static char g_store_bin[PATH_MAX];

/* ------------------------------------------------------------------ fixtures */

typedef struct fixture {
  testenv_backend *b;
  etcd_client *c;
  objstore *s;
  char prefix[64];
} fixture;

static fixture g_fx;
static int g_seq;

/* Each test: its own client and an objstore under a fresh prefix. */
static int setup_test(void **state) {
  memset(&g_fx, 0, sizeof g_fx);
  g_fx.b = *state;
  const char *eps[] = {g_fx.b->endpoint};
  g_fx.c = testenv_client(eps, 1);
  if (!g_fx.c) return -1;
  snprintf(g_fx.prefix, sizeof g_fx.prefix, "/ost%d-%d", (int)getpid(), ++g_seq);
  keel_error err = {0};
  g_fx.s = objstore_new(g_fx.c, g_fx.prefix, &err);
  if (!g_fx.s) {
    fprintf(stderr, "objstore_new: %s\n", err.message);
    return -1;
  }
  return 0;
}

static int teardown_test(void **state) {
  (void)state;
  objstore_free(g_fx.s);
  g_fx.s = NULL;
  testenv_release_clients();
  g_fx.c = NULL;
  return 0;
}

/* ------------------------------------------------------------------ objects */

/* A pod on the stack: every string points into the struct. */
typedef struct tpod {
  Keel__Api__V1__Pod pod;
  Keel__Api__V1__ObjectMeta meta;
  Keel__Api__V1__PodSpec spec;
  Keel__Api__V1__ObjectMeta__LabelsEntry label, *labels[1];
  char ns[64], name[64], app[32], node[32], rv[24], uid[40];
} tpod;

static void tpod_init(tpod *p, const char *ns, const char *name, const char *app, const char *node) {
  memset(p, 0, sizeof *p);
  p->pod = (Keel__Api__V1__Pod)KEEL__API__V1__POD__INIT;
  p->meta = (Keel__Api__V1__ObjectMeta)KEEL__API__V1__OBJECT_META__INIT;
  p->spec = (Keel__Api__V1__PodSpec)KEEL__API__V1__POD_SPEC__INIT;
  p->label = (Keel__Api__V1__ObjectMeta__LabelsEntry)KEEL__API__V1__OBJECT_META__LABELS_ENTRY__INIT;
  snprintf(p->ns, sizeof p->ns, "%s", ns);
  snprintf(p->name, sizeof p->name, "%s", name);
  snprintf(p->app, sizeof p->app, "%s", app ? app : "");
  snprintf(p->node, sizeof p->node, "%s", node ? node : "");
  snprintf(p->uid, sizeof p->uid, "uid-%s-%s", ns, name);
  p->pod.metadata = &p->meta;
  p->pod.spec = &p->spec;
  p->meta.name = p->name;
  p->meta.namespace_ = p->ns;
  p->meta.uid = p->uid;
  p->meta.generation = 1;
  if (app) {
    p->label.key = "app";
    p->label.value = p->app;
    p->labels[0] = &p->label;
    p->meta.labels = p->labels;
    p->meta.n_labels = 1;
  }
  p->spec.node_name = p->node;
}

static const api_kind *pods(void) {
  const api_kind *k = api_kind_by_resource("pods");
  assert_non_null(k);
  return k;
}

static const api_kind *nodes(void) {
  const api_kind *k = api_kind_by_resource("nodes");
  assert_non_null(k);
  return k;
}

static int64_t rv_of(const ProtobufCMessage *obj, const api_kind *k) {
  Keel__Api__V1__ObjectMeta *m = api_object_meta(k, obj);
  assert_non_null(m);
  assert_non_null(m->resource_version);
  char *end = NULL;
  long long v = strtoll(m->resource_version, &end, 10);
  assert_true(end && *end == '\0' && end != m->resource_version);
  return v;
}

static int64_t current_rev(void) {
  int64_t rev = 0;
  keel_error err = {0};
  assert_int_equal(objstore_current_revision(g_fx.s, &rev, &err), 0);
  assert_true(rev > 0);
  return rev;
}

static bool raw_exists(const char *key) {
  etcd_range_result r;
  keel_error err = {0};
  assert_int_equal(etcd_range(g_fx.c, key, strlen(key), NULL, 0, 0, 0, false, false, &r, &err), 0);
  bool found = r.nkvs > 0;
  etcd_range_result_clear(&r);
  return found;
}

/* ------------------------------------------------------------------ keys */

static void test_keys(void **state) {
  (void)state;
  keel_error err = {0};
  objstore *s = objstore_new(NULL, NULL, &err);
  assert_non_null(s);
  char buf[OBJSTORE_KEY_MAX];
  assert_int_equal(objstore_key(s, pods(), "default", "web", buf, sizeof buf),
                   (int)strlen("/registry/pods/default/web"));
  assert_string_equal(buf, "/registry/pods/default/web");
  assert_true(objstore_key(s, nodes(), "ignored", "n1", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/nodes/n1");
  assert_true(objstore_prefix(s, pods(), NULL, buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/pods/");
  assert_true(objstore_prefix(s, pods(), "", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/pods/");
  assert_true(objstore_prefix(s, pods(), "kube-system", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/pods/kube-system/");
  /* A cluster-scoped kind has no namespace level. */
  assert_true(objstore_prefix(s, nodes(), "default", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/nodes/");
  assert_true(objstore_raw_key(s, "services/specs/10.0.0.1", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/registry/services/specs/10.0.0.1");
  /* Too small a buffer. */
  char small[12];
  assert_int_equal(objstore_key(s, pods(), "default", "web", small, sizeof small), -ENAMETOOLONG);
  assert_int_equal(objstore_prefix(s, pods(), "default", small, sizeof small), -ENAMETOOLONG);
  assert_int_equal(objstore_raw_key(s, "a-long-suffix", small, sizeof small), -ENAMETOOLONG);
  char exact[sizeof "/registry/pods/"];
  assert_true(objstore_prefix(s, pods(), NULL, exact, sizeof exact) > 0);
  char one_less[sizeof "/registry/pods/" - 1];
  assert_int_equal(objstore_prefix(s, pods(), NULL, one_less, sizeof one_less), -ENAMETOOLONG);
  objstore_free(s);

  /* Trailing slashes go; an empty prefix is refused. */
  s = objstore_new(NULL, "/keel//", &err);
  assert_non_null(s);
  assert_true(objstore_key(s, pods(), "a", "b", buf, sizeof buf) > 0);
  assert_string_equal(buf, "/keel/pods/a/b");
  objstore_free(s);
  assert_null(objstore_new(NULL, "///", &err));
  assert_int_equal(err.code, EINVAL);
  assert_null(objstore_new(NULL, "", &err));
  char longp[200];
  memset(longp, 'x', sizeof longp - 1);
  longp[sizeof longp - 1] = '\0';
  assert_null(objstore_new(NULL, longp, &err));
}

/* ------------------------------------------------------------------ encoding */

static void test_encode_strips_type_meta_and_rv(void **state) {
  (void)state;
  tpod p;
  tpod_init(&p, "default", "web", "web", "n1");
  char apiv[] = "v1", kind[] = "Pod", rv[] = "123";
  p.pod.api_version = apiv;
  p.pod.kind = kind;
  p.meta.resource_version = rv;
  size_t len = 0;
  uint8_t *wire = objstore_encode(pods(), &p.pod.base, &len);
  assert_non_null(wire);
  assert_true(len > 0);
  /* The caller's object is unchanged: the same pointers, the same text. */
  assert_ptr_equal(p.pod.api_version, apiv);
  assert_ptr_equal(p.pod.kind, kind);
  assert_ptr_equal(p.meta.resource_version, rv);
  assert_string_equal(p.pod.api_version, "v1");
  assert_string_equal(p.pod.kind, "Pod");
  assert_string_equal(p.meta.resource_version, "123");
  /* The stored bytes carry none of the three, and everything else. */
  Keel__Api__V1__Pod *back = keel__api__v1__pod__unpack(NULL, len, wire);
  assert_non_null(back);
  assert_string_equal(back->api_version, "");
  assert_string_equal(back->kind, "");
  assert_non_null(back->metadata);
  assert_string_equal(back->metadata->resource_version, "");
  assert_string_equal(back->metadata->name, "web");
  assert_string_equal(back->metadata->namespace_, "default");
  assert_string_equal(back->metadata->uid, "uid-default-web");
  assert_int_equal(back->metadata->generation, 1);
  assert_int_equal(back->metadata->n_labels, 1);
  assert_string_equal(back->metadata->labels[0]->value, "web");
  assert_string_equal(back->spec->node_name, "n1");
  keel__api__v1__pod__free_unpacked(back, NULL);

  /* Decoding restores them, rv = the revision given. */
  keel_error err = {0};
  ProtobufCMessage *obj = objstore_decode(pods(), wire, len, 4242, &err);
  assert_non_null(obj);
  Keel__Api__V1__Pod *d = (Keel__Api__V1__Pod *)obj;
  assert_string_equal(d->api_version, "v1");
  assert_string_equal(d->kind, "Pod");
  assert_string_equal(d->metadata->resource_version, "4242");
  assert_int_equal(rv_of(obj, pods()), 4242);
  assert_string_equal(d->metadata->name, "web");
  assert_string_equal(d->spec->node_name, "n1");
  protobuf_c_message_free_unpacked(obj, NULL);

  /* Encoding twice gives the same bytes (the swap really put things back). */
  size_t len2 = 0;
  uint8_t *wire2 = objstore_encode(pods(), &p.pod.base, &len2);
  assert_int_equal(len, len2);
  assert_memory_equal(wire, wire2, len);
  free(wire2);
  free(wire);
}

static void test_encode_without_metadata(void **state) {
  (void)state;
  /* An object without metadata encodes, and decodes with metadata created to
   * hold the resourceVersion. */
  Keel__Api__V1__Node n = KEEL__API__V1__NODE__INIT;
  char kind[] = "Node";
  n.kind = kind;
  size_t len = 99;
  uint8_t *wire = objstore_encode(nodes(), &n.base, &len);
  assert_non_null(wire);
  assert_int_equal(len, 0);
  assert_ptr_equal(n.kind, kind);
  assert_null(n.metadata);
  keel_error err = {0};
  ProtobufCMessage *obj = objstore_decode(nodes(), wire, len, 7, &err);
  assert_non_null(obj);
  Keel__Api__V1__Node *d = (Keel__Api__V1__Node *)obj;
  assert_string_equal(d->kind, "Node");
  assert_string_equal(d->api_version, "v1");
  assert_non_null(d->metadata);
  assert_string_equal(d->metadata->resource_version, "7");
  protobuf_c_message_free_unpacked(obj, NULL);
  free(wire);
}

static void test_decode_corrupt(void **state) {
  (void)state;
  /* Field 3 (metadata) claiming 100 bytes that are not there. */
  const uint8_t junk[] = {0x1a, 0x64, 0x0a, 0x01};
  keel_error err = {0};
  assert_null(objstore_decode(pods(), junk, sizeof junk, 5, &err));
  assert_int_equal(err.code, EIO);
  assert_non_null(strstr(err.message, "Pod"));
  assert_null(objstore_decode(pods(), junk, sizeof junk, 5, NULL)); /* err may be NULL */
}

/* ------------------------------------------------------------------ writes */

static void test_create_and_get(void **state) {
  (void)state;
  keel_error err = {0};
  tpod p;
  tpod_init(&p, "default", "web", "web", "n1");
  char rv_in[] = "999"; /* ignored: the store's revision is the version */
  p.meta.resource_version = rv_in;
  int64_t before = current_rev();
  int64_t rev = 0;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &rev, &err), 0);
  assert_int_equal(rev, before + 1);
  assert_int_equal(current_rev(), rev);
  assert_ptr_equal(p.meta.resource_version, rv_in);

  ProtobufCMessage *obj = NULL;
  int64_t got_rev = 0;
  assert_int_equal(objstore_get(g_fx.s, pods(), "default", "web", &obj, &got_rev, &err), 0);
  assert_int_equal(got_rev, rev);
  assert_int_equal(rv_of(obj, pods()), rev);
  Keel__Api__V1__Pod *d = (Keel__Api__V1__Pod *)obj;
  assert_string_equal(d->api_version, "v1");
  assert_string_equal(d->kind, "Pod");
  assert_string_equal(d->metadata->uid, "uid-default-web");
  assert_string_equal(d->spec->node_name, "n1");
  protobuf_c_message_free_unpacked(obj, NULL);

  /* It sits at its key, stored without apiVersion/kind/resourceVersion. */
  char key[OBJSTORE_KEY_MAX];
  assert_true(objstore_key(g_fx.s, pods(), "default", "web", key, sizeof key) > 0);
  etcd_range_result r;
  assert_int_equal(etcd_range(g_fx.c, key, strlen(key), NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.nkvs, 1);
  assert_int_equal(r.kvs[0].mod_revision, rev);
  assert_int_equal(r.kvs[0].create_revision, rev);
  Keel__Api__V1__Pod *raw = keel__api__v1__pod__unpack(NULL, r.kvs[0].value_len, r.kvs[0].value);
  assert_non_null(raw);
  assert_string_equal(raw->api_version, "");
  assert_string_equal(raw->kind, "");
  assert_string_equal(raw->metadata->resource_version, "");
  keel__api__v1__pod__free_unpacked(raw, NULL);
  etcd_range_result_clear(&r);

  /* A second create: -EEXIST, nothing written. */
  int64_t rev2 = -1;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &rev2, &err), -EEXIST);
  assert_int_equal(err.code, EEXIST);
  assert_non_null(strstr(err.message, "already exists"));
  assert_non_null(strstr(err.message, "web"));
  assert_int_equal(rev2, -1);
  assert_int_equal(current_rev(), rev);

  /* Get of what is not there. */
  obj = NULL;
  assert_int_equal(objstore_get(g_fx.s, pods(), "default", "nope", &obj, NULL, &err), -ENOENT);
  assert_int_equal(err.code, ENOENT);
  assert_non_null(strstr(err.message, "not found"));
  /* The same name in another namespace is another object. */
  assert_int_equal(objstore_get(g_fx.s, pods(), "other", "web", &obj, NULL, &err), -ENOENT);
  tpod q;
  tpod_init(&q, "other", "web", NULL, NULL);
  assert_int_equal(objstore_create(g_fx.s, pods(), &q.pod.base, NULL, &rev2, &err), 0);
  assert_int_equal(rev2, rev + 1);
}

static void test_create_extra(void **state) {
  (void)state;
  keel_error err = {0};
  char alloc_key[OBJSTORE_KEY_MAX];
  assert_true(objstore_raw_key(g_fx.s, "ranges/ip/10.0.0.7", alloc_key, sizeof alloc_key) > 0);

  /* Extra compare that fails (the allocation key must exist but does not):
   * -ECANCELED, and neither the object nor the extra op is written. */
  tpod p;
  tpod_init(&p, "default", "svc", NULL, NULL);
  etcd_compare must_exist = {.key = alloc_key,
                             .key_len = strlen(alloc_key),
                             .target = ETCD_CMP_CREATE,
                             .result = ETCD_CMP_NOT_EQUAL,
                             .number = 0};
  etcd_op put_alloc = {
      .type = ETCD_OP_PUT, .key = alloc_key, .key_len = strlen(alloc_key), .value = "svc", .value_len = 3};
  objstore_extra extra = {.cmps = &must_exist, .ncmps = 1, .ops = &put_alloc, .nops = 1};
  int64_t before = current_rev();
  int64_t rev = -1;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, &extra, &rev, &err), -ECANCELED);
  assert_int_equal(err.code, ECANCELED);
  assert_int_equal(rev, -1);
  assert_int_equal(current_rev(), before);
  char key[OBJSTORE_KEY_MAX];
  assert_true(objstore_key(g_fx.s, pods(), "default", "svc", key, sizeof key) > 0);
  assert_false(raw_exists(key));
  assert_false(raw_exists(alloc_key));

  /* Extra compare that holds (absent) plus the extra op: both land at one revision. */
  etcd_compare must_be_free = {.key = alloc_key,
                               .key_len = strlen(alloc_key),
                               .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL,
                               .number = 0};
  extra.cmps = &must_be_free;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, &extra, &rev, &err), 0);
  assert_int_equal(rev, before + 1);
  etcd_range_result r;
  assert_int_equal(etcd_range(g_fx.c, alloc_key, strlen(alloc_key), NULL, 0, 0, 0, false, false, &r, &err),
                   0);
  assert_int_equal(r.nkvs, 1);
  assert_int_equal(r.kvs[0].mod_revision, rev);
  etcd_range_result_clear(&r);
  assert_true(raw_exists(key));

  /* The object exists AND the extra compare fails: the object's existence wins
   * (-EEXIST), since the failure branch reads the key. */
  tpod_init(&p, "default", "svc", NULL, NULL);
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, &extra, &rev, &err), -EEXIST);
  /* Only the extra compare fails (the allocation is taken): -ECANCELED. */
  tpod_init(&p, "default", "svc2", NULL, NULL);
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, &extra, &rev, &err), -ECANCELED);
  assert_true(objstore_key(g_fx.s, pods(), "default", "svc2", key, sizeof key) > 0);
  assert_false(raw_exists(key));

  /* More than OBJSTORE_EXTRA_MAX extra compares are refused before anything is sent. */
  etcd_compare many[OBJSTORE_EXTRA_MAX + 1];
  for (int i = 0; i < OBJSTORE_EXTRA_MAX + 1; i++) many[i] = must_be_free;
  objstore_extra too_many = {.cmps = many, .ncmps = OBJSTORE_EXTRA_MAX + 1};
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, &too_many, &rev, &err), -EINVAL);
}

static void test_update(void **state) {
  (void)state;
  keel_error err = {0};
  tpod p;
  tpod_init(&p, "ns1", "db", "db", "n1");
  int64_t r1 = 0, r2 = 0, r3 = 0;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r1, &err), 0);

  /* Update guarded by the version read: succeeds, new revision. */
  snprintf(p.node, sizeof p.node, "n2");
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, NULL, &r2, &err), 0);
  assert_true(r2 > r1);
  ProtobufCMessage *obj = NULL;
  int64_t got = 0;
  assert_int_equal(objstore_get(g_fx.s, pods(), "ns1", "db", &obj, &got, &err), 0);
  assert_int_equal(got, r2);
  assert_int_equal(rv_of(obj, pods()), r2);
  assert_string_equal(((Keel__Api__V1__Pod *)obj)->spec->node_name, "n2");
  protobuf_c_message_free_unpacked(obj, NULL);

  /* The create revision is kept across updates. */
  char key[OBJSTORE_KEY_MAX];
  assert_true(objstore_key(g_fx.s, pods(), "ns1", "db", key, sizeof key) > 0);
  etcd_range_result r;
  assert_int_equal(etcd_range(g_fx.c, key, strlen(key), NULL, 0, 0, 0, false, false, &r, &err), 0);
  assert_int_equal(r.kvs[0].create_revision, r1);
  assert_int_equal(r.kvs[0].mod_revision, r2);
  etcd_range_result_clear(&r);

  /* Stale: written against r1 after r2. Nothing changes. */
  int64_t before = current_rev();
  snprintf(p.node, sizeof p.node, "n3");
  r3 = -1;
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, NULL, &r3, &err), -ESTALE);
  assert_int_equal(err.code, ESTALE);
  assert_non_null(strstr(err.message, "has been modified"));
  assert_int_equal(r3, -1);
  assert_int_equal(current_rev(), before);
  assert_int_equal(objstore_get(g_fx.s, pods(), "ns1", "db", &obj, &got, &err), 0);
  assert_string_equal(((Keel__Api__V1__Pod *)obj)->spec->node_name, "n2");
  protobuf_c_message_free_unpacked(obj, NULL);

  /* An update does not create: absent -> -ENOENT. */
  tpod ghost;
  tpod_init(&ghost, "ns1", "ghost", NULL, NULL);
  assert_int_equal(objstore_update(g_fx.s, pods(), &ghost.pod.base, r1, NULL, &r3, &err), -ENOENT);
  assert_int_equal(err.code, ENOENT);
  char ghost_key[OBJSTORE_KEY_MAX];
  assert_true(objstore_key(g_fx.s, pods(), "ns1", "ghost", ghost_key, sizeof ghost_key) > 0);
  assert_false(raw_exists(ghost_key));

  /* Gone after delete: -ENOENT, whatever version the caller read. */
  int64_t rd = 0;
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "db", r2, NULL, &rd, &err), 0);
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r2, NULL, &r3, &err), -ENOENT);
  assert_false(raw_exists(key));

  /* Recreated: the old version is stale against the new incarnation. */
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r3, &err), 0);
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r2, NULL, &got, &err), -ESTALE);
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r3, NULL, &got, &err), 0);
  assert_true(got > r3);
}

/* An update whose own guard holds but whose extra compare fails (a NodePort
 * taken by another Service) is -ECANCELED, not -ESTALE: the caller picks
 * again instead of re-reading. When both fail, the stale object wins. */
static void test_update_extra(void **state) {
  (void)state;
  keel_error err = {0};
  char alloc_key[OBJSTORE_KEY_MAX];
  assert_true(objstore_raw_key(g_fx.s, "ranges/port/30080", alloc_key, sizeof alloc_key) > 0);
  etcd_compare must_be_free = {.key = alloc_key, .key_len = strlen(alloc_key), .target = ETCD_CMP_CREATE,
                               .result = ETCD_CMP_EQUAL, .number = 0};
  etcd_op put_alloc = {
      .type = ETCD_OP_PUT, .key = alloc_key, .key_len = strlen(alloc_key), .value = "x", .value_len = 1};
  objstore_extra extra = {.cmps = &must_be_free, .ncmps = 1, .ops = &put_alloc, .nops = 1};
  tpod p;
  tpod_init(&p, "ns1", "ux", NULL, NULL);
  int64_t r1 = 0, r2 = 0, r3 = -1;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r1, &err), 0);
  /* Free: the object and the allocation land together. */
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, &extra, &r2, &err), 0);
  assert_true(raw_exists(alloc_key));
  /* Taken now: -ECANCELED, nothing written. */
  int64_t before = current_rev();
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r2, &extra, &r3, &err), -ECANCELED);
  assert_int_equal(err.code, ECANCELED);
  assert_int_equal(r3, -1);
  assert_int_equal(current_rev(), before);
  /* Taken and stale: -ESTALE. */
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, &extra, &r3, &err), -ESTALE);
}

static void test_delete(void **state) {
  (void)state;
  keel_error err = {0};
  tpod p;
  tpod_init(&p, "ns1", "a", NULL, NULL);
  int64_t r1 = 0, r2 = 0, rd = 0;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r1, &err), 0);
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, NULL, &r2, &err), 0);

  /* Exact version: a stale one is refused, nothing deleted. */
  int64_t before = current_rev();
  rd = -1;
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "a", r1, NULL, &rd, &err), -ESTALE);
  assert_int_equal(err.code, ESTALE);
  assert_int_equal(rd, -1);
  assert_int_equal(current_rev(), before);
  char key[OBJSTORE_KEY_MAX];
  assert_true(objstore_key(g_fx.s, pods(), "ns1", "a", key, sizeof key) > 0);
  assert_true(raw_exists(key));
  /* The current one deletes; rev = the deletion's revision. */
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "a", r2, NULL, &rd, &err), 0);
  assert_int_equal(rd, before + 1);
  assert_int_equal(current_rev(), rd);
  assert_false(raw_exists(key));
  /* Again: gone. */
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "a", r2, NULL, &rd, &err), -ENOENT);
  assert_int_equal(err.code, ENOENT);
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "a", 0, NULL, &rd, &err), -ENOENT);
  assert_int_equal(current_rev(), before + 1);

  /* Expected rev 0 = any version. */
  tpod_init(&p, "ns1", "b", NULL, NULL);
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r1, &err), 0);
  assert_int_equal(objstore_update(g_fx.s, pods(), &p.pod.base, r1, NULL, &r2, &err), 0);
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "b", 0, NULL, &rd, &err), 0);
  assert_int_equal(rd, r2 + 1);
  assert_true(objstore_key(g_fx.s, pods(), "ns1", "b", key, sizeof key) > 0);
  assert_false(raw_exists(key));

  /* Extra ops ride along with a delete (releasing an allocation). */
  char alloc_key[OBJSTORE_KEY_MAX];
  assert_true(objstore_raw_key(g_fx.s, "ranges/ip/10.0.0.9", alloc_key, sizeof alloc_key) > 0);
  assert_int_equal(etcd_put(g_fx.c, alloc_key, strlen(alloc_key), "c", 1, 0, NULL, &err), 0);
  tpod_init(&p, "ns1", "c", NULL, NULL);
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &r1, &err), 0);
  etcd_op release = {.type = ETCD_OP_DELETE, .key = alloc_key, .key_len = strlen(alloc_key)};
  objstore_extra extra = {.ops = &release, .nops = 1};
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "c", r1, &extra, &rd, &err), 0);
  assert_false(raw_exists(alloc_key));
  /* ...and do not run when the guard fails. */
  assert_int_equal(etcd_put(g_fx.c, alloc_key, strlen(alloc_key), "c", 1, 0, NULL, &err), 0);
  assert_int_equal(objstore_delete(g_fx.s, pods(), "ns1", "c", r1, &extra, &rd, &err), -ENOENT);
  assert_true(raw_exists(alloc_key));
}

static void test_cluster_scoped(void **state) {
  (void)state;
  keel_error err = {0};
  Keel__Api__V1__Node n = KEEL__API__V1__NODE__INIT;
  Keel__Api__V1__ObjectMeta m = KEEL__API__V1__OBJECT_META__INIT;
  char name[] = "node-1";
  m.name = name;
  n.metadata = &m;
  int64_t r1 = 0, rd = 0;
  assert_int_equal(objstore_create(g_fx.s, nodes(), &n.base, NULL, &r1, &err), 0);
  char key[OBJSTORE_KEY_MAX];
  snprintf(key, sizeof key, "%s/nodes/node-1", g_fx.prefix);
  assert_true(raw_exists(key));
  ProtobufCMessage *obj = NULL;
  int64_t got = 0;
  /* The namespace argument does not matter for a cluster-scoped kind. */
  assert_int_equal(objstore_get(g_fx.s, nodes(), "whatever", "node-1", &obj, &got, &err), 0);
  assert_int_equal(got, r1);
  Keel__Api__V1__Node *d = (Keel__Api__V1__Node *)obj;
  assert_string_equal(d->kind, "Node");
  assert_string_equal(d->api_version, "v1");
  assert_string_equal(d->metadata->name, "node-1");
  assert_int_equal(rv_of(obj, nodes()), r1);
  protobuf_c_message_free_unpacked(obj, NULL);
  assert_int_equal(objstore_create(g_fx.s, nodes(), &n.base, NULL, &got, &err), -EEXIST);
  assert_int_equal(objstore_delete(g_fx.s, nodes(), "", "node-1", 0, NULL, &rd, &err), 0);
  assert_int_equal(rd, r1 + 1);
  assert_false(raw_exists(key));
}

static void test_current_revision(void **state) {
  (void)state;
  keel_error err = {0};
  int64_t r0 = current_rev();
  /* Writes anywhere move it, even outside the prefix. */
  int64_t put_rev = 0;
  assert_int_equal(etcd_put(g_fx.c, "/elsewhere", 10, "x", 1, 0, &put_rev, &err), 0);
  assert_int_equal(current_rev(), put_rev);
  assert_true(put_rev > r0);
  tpod p;
  tpod_init(&p, "d", "x", NULL, NULL);
  int64_t rc = 0;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &rc, &err), 0);
  assert_int_equal(current_rev(), rc);
  /* A failed write does not. */
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &put_rev, &err), -EEXIST);
  assert_int_equal(current_rev(), rc);
}

/* A name whose key cannot fit: nothing is written, and reads and deletes say
 * "not found" (no stored object can have such a key). */
static void test_long_names(void **state) {
  (void)state;
  keel_error err = {0};
  char name[OBJSTORE_KEY_MAX + 16];
  memset(name, 'x', sizeof name - 1);
  name[sizeof name - 1] = '\0';
  tpod p;
  tpod_init(&p, "default", "short", NULL, NULL);
  p.meta.name = name;
  int64_t before = current_rev();
  int64_t rev = -1;
  assert_int_equal(objstore_create(g_fx.s, pods(), &p.pod.base, NULL, &rev, &err), -ENAMETOOLONG);
  assert_int_equal(err.code, ENAMETOOLONG);
  assert_true(objstore_update(g_fx.s, pods(), &p.pod.base, before, NULL, &rev, &err) < 0);
  assert_int_equal(rev, -1);
  ProtobufCMessage *obj = NULL;
  assert_int_equal(objstore_get(g_fx.s, pods(), "default", name, &obj, &rev, &err), -ENOENT);
  assert_int_equal(err.code, ENOENT);
  assert_true(strlen(err.message) < KEEL_ERROR_MESSAGE_MAX);
  assert_int_equal(objstore_delete(g_fx.s, pods(), "default", name, 0, NULL, &rev, &err), -ENOENT);
  assert_int_equal(current_rev(), before);
}

static void test_unreachable_store(void **state) {
  /* A store that refuses connections: calls fail with an etcd error, never
   * hang or report success. */
  testenv_backend *b = *state;
  char dead[64];
  snprintf(dead, sizeof dead, "127.0.0.1:%d", b->dead_port);
  const char *eps[] = {dead};
  keel_error err = {0};
  etcd_client_options o = {.endpoints = eps, .nendpoints = 1, .timeout_ms = 500};
  etcd_client *c = etcd_client_create(&o, &err);
  assert_non_null(c);
  objstore *s = objstore_new(c, "/x", &err);
  assert_non_null(s);
  int64_t rev = 0;
  assert_true(objstore_current_revision(s, &rev, &err) < 0);
  assert_true(err.code != 0);
  tpod p;
  tpod_init(&p, "d", "x", NULL, NULL);
  assert_true(objstore_create(s, pods(), &p.pod.base, NULL, &rev, &err) < 0);
  objstore_free(s);
  etcd_client_destroy(c);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup_test, teardown_test)
#define TABLE                                                                                 \
  {                                                                                           \
    T(test_keys), T(test_encode_strips_type_meta_and_rv), T(test_encode_without_metadata),    \
        T(test_decode_corrupt), T(test_create_and_get), T(test_create_extra), T(test_update),   \
        T(test_update_extra), T(test_delete), T(test_cluster_scoped), T(test_current_revision), \
        T(test_long_names),                                                                     \
        T(test_unreachable_store),                                                            \
  }

int main(int argc, char **argv) {
  if (argc < 2 || !realpath(argv[1], g_store_bin)) {
    fprintf(stderr, "usage: %s KEEL_STORE_BIN\n", argv[0]);
    return 2;
  }
  testenv_configure(g_store_bin, ETCD_BIN, MAX_REQUEST_BYTES);
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest keel[] = TABLE;
  const struct CMUnitTest etcd[] = TABLE;
  int failed =
      cmocka_run_group_tests_name("objstore on keel-store", keel, testenv_group_setup_keel_store,
                                  testenv_group_teardown);
  failed += cmocka_run_group_tests_name("objstore on etcd", etcd, testenv_group_setup_etcd,
                                        testenv_group_teardown);
  return failed ? 1 : 0;
}
