/* common/protojson/testdata/manifests.h — Kubernetes manifests written as the
 * Kubernetes documentation writes them (JSON), for the round-trip tests, the
 * robustness test and the fuzzer's seeds. Each is in the form protojson writes
 * back (nothing at its default), so JSON -> proto -> JSON gives it again. */
#ifndef KEEL_COMMON_PROTOJSON_TESTDATA_MANIFESTS_H
#define KEEL_COMMON_PROTOJSON_TESTDATA_MANIFESTS_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

extern const char pj_deployment_json[]; /* nginx, replicas 3, RollingUpdate */
extern const char pj_service_json[];    /* NodePort, targetPort 80 and "http" */
extern const char pj_pod_json[];        /* probes, env, tolerations, affinity */
extern const char pj_pod_status_json[]; /* a running pod as the apiserver returns it */
extern const char pj_node_json[];       /* a kind worker with its status */
extern const char pj_namespace_json[];

typedef struct pj_manifest {
  const char *name;
  const ProtobufCMessageDescriptor *desc;
  const char *json;
} pj_manifest;

extern const pj_manifest pj_manifests[];
extern const size_t pj_manifest_count;

#endif
