/* services/apiserver/validation/testdata.h — builders for the tests: valid
 * objects of every kind, and setters that allocate the way unpacked messages
 * do (so protobuf_c_message_free_unpacked(obj, NULL) frees everything). */
#ifndef KEEL_SERVICES_APISERVER_VALIDATION_TESTDATA_H
#define KEEL_SERVICES_APISERVER_VALIDATION_TESTDATA_H

#include <stdint.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"
#include "keel/api/v1/meta.pb-c.h"

/* Allocation helpers (abort on out of memory: tests only). */
void *tnew(const ProtobufCMessageDescriptor *d);
void tstr(char **slot, const char *value);             /* replaces a string field */
void tstrs(size_t *n, char ***arr, const char *value); /* appends to a repeated string */
void *tpush(size_t *n, void *arr_slot, void *item);    /* appends a message pointer; returns item */
#define TPUSH(obj, field, item) tpush(&(obj)->n_##field, &(obj)->field, (item))

Google__Protobuf__Int32Value *tint32(int32_t v);
Google__Protobuf__Int64Value *tint64(int64_t v);
Google__Protobuf__BoolValue *tbool(int v);
Keel__Api__V1__IntOrString *tios_int(int32_t v);
Keel__Api__V1__IntOrString *tios_str(const char *s);
Keel__Api__V1__Quantity *tqty(const char *s);

/* Map entries: generic string->string for any map field of that shape. */
void tmap(size_t *n, void *arr_slot, const ProtobufCMessageDescriptor *entry_desc, const char *key,
          const char *value);
#define TLABEL(meta, k, v) \
  tmap(&(meta)->n_labels, &(meta)->labels, &keel__api__v1__object_meta__labels_entry__descriptor, k, v)
#define TANNOTATION(meta, k, v)                      \
  tmap(&(meta)->n_annotations, &(meta)->annotations, \
       &keel__api__v1__object_meta__annotations_entry__descriptor, k, v)
void tlimit(Keel__Api__V1__Container *c, const char *resource, const char *q);
void trequest(Keel__Api__V1__Container *c, const char *resource, const char *q);

Keel__Api__V1__ObjectMeta *tmeta(const char *name, const char *ns);
Keel__Api__V1__Container *tcontainer(const char *name, const char *image);
Keel__Api__V1__ContainerPort *tport(const char *name, int32_t port);
Keel__Api__V1__Volume *tvolume_empty_dir(const char *name);
Keel__Api__V1__Toleration *ttoleration(const char *key, const char *op, const char *value,
                                       const char *effect);
Keel__Api__V1__Probe *tprobe_http(const char *path, int32_t port);
Keel__Api__V1__PodSpec *tpod_spec(void);
Keel__Api__V1__PodTemplateSpec *ttemplate(const char *app);
Keel__Api__V1__ServicePort *tservice_port(const char *name, int32_t port);

/* Valid objects (before defaulting, as a client writes them). */
Keel__Api__V1__Pod *tpod(void);                /* default/web: one container, a port, a volume */
Keel__Api__V1__Service *tservice(void);        /* default/web: ClusterIP, port 80 -> 8080 */
Keel__Api__V1__ReplicaSet *treplica_set(void); /* default/web-rs: selector app=web */
Keel__Api__V1__Deployment *tdeployment(void);  /* default/web: selector app=web */
Keel__Api__V1__Node *tnode(void);              /* node-1 with capacity and a taint */
Keel__Api__V1__Namespace *tnamespace(void);    /* team-a */
Keel__Api__V1__Endpoints *tendpoints(void);    /* default/web */
Keel__Api__V1__Event *tevent(void);            /* default/web.1 about Pod default/web */
Keel__Api__V1__Lease *tlease(void);            /* kube-system/keel-scheduler */

void tfree(void *msg);

/* The kinds by builder, for table-driven tests. */
enum tkind { K_POD, K_SVC, K_RS, K_DEP, K_NODE, K_NS, K_EP, K_EV, K_LEASE };

const api_kind *tkind_of(enum tkind k);
ProtobufCMessage *tbuild(enum tkind k); /* the valid object above, undefaulted */
ProtobufCMessage *tvalid(enum tkind k); /* ... and defaulted */
const char *tprefix(enum tkind k);      /* "Pod \"web\" is invalid: " */
ProtobufCMessage *tclone(const ProtobufCMessage *o);
/* api_validate with err cleared first. */
int tvalidate(enum tkind k, const ProtobufCMessage *o, const ProtobufCMessage *old, const char *sub,
              keel_error *err);

#define POD(o) ((Keel__Api__V1__Pod *)(o))
#define SVC(o) ((Keel__Api__V1__Service *)(o))
#define RS(o) ((Keel__Api__V1__ReplicaSet *)(o))
#define DEP(o) ((Keel__Api__V1__Deployment *)(o))
#define NODE(o) ((Keel__Api__V1__Node *)(o))
#define NS(o) ((Keel__Api__V1__Namespace *)(o))
#define EP(o) ((Keel__Api__V1__Endpoints *)(o))
#define EV(o) ((Keel__Api__V1__Event *)(o))
#define LEASE(o) ((Keel__Api__V1__Lease *)(o))
#define C0(o) (POD(o)->spec->containers[0])

#endif
