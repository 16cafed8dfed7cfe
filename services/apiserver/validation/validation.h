/* services/apiserver/validation/validation.h — defaulting and validation for
 * every kind keel-apiserver serves, with Kubernetes' rules and messages.
 *
 * keel-apiserver calls, for Create, Update and UpdateStatus:
 *   api_default(k, obj);                                fill what is unset
 *   api_validate(k, obj, old, subresource, &err);       then check it
 * Validation collects every problem, each with its field path, and reports
 * them in one message the way kube-apiserver does:
 *   Pod "web" is invalid: spec.containers[0].image: Required value
 *   Pod "web" is invalid: 2 errors: spec.containers[0].image: Required value;
 *     spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be
 *     between 1 and 65535, inclusive
 * (the message is cut with "..." at KEEL_ERROR_MESSAGE_MAX).
 *
 * Server-owned metadata (uid, resourceVersion, generation, creationTimestamp,
 * deletionTimestamp) is never checked: the apiserver sets it. The namespace is
 * checked for presence (namespaced kinds) or absence (cluster-scoped kinds) and
 * syntax only; matching it against the request is the apiserver's job. */
#ifndef KEEL_SERVICES_APISERVER_VALIDATION_VALIDATION_H
#define KEEL_SERVICES_APISERVER_VALIDATION_VALIDATION_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/base/error.h"
#include "common/kinds/kinds.h"
#include "keel/api/v1/apps.pb-c.h"
#include "keel/api/v1/core.pb-c.h"

/* Fills defaults in place, as Kubernetes' defaulters (SetDefaults_*) do; only
 * unset fields are touched, so it is idempotent. New strings and sub-messages
 * are malloc'ed: protobuf_c_message_free_unpacked(obj, NULL) frees them.
 * Ignores an obj that is not of k->object. */
void api_default(const api_kind *k, ProtobufCMessage *obj);

/* Validates obj (after defaulting). old is the stored object on update (NULL on
 * create). subresource is
 *   NULL       Create / Update: metadata and spec (and a Node's status);
 *   "status"   UpdateStatus: metadata and status only (the apiserver keeps the
 *              stored spec, so spec differences are not looked at);
 *   "binding"  for a Pod, an update that binds it: like NULL, except that
 *              spec.nodeName may go from "" to a node (Pods/Bind).
 * A plain Pod update may not set or change spec.nodeName. Returns 0, or
 * -EINVAL with err (if not NULL) naming every problem with its field path;
 * -EINVAL with a short message when obj/old are not of k or subresource is
 * unknown. */
int api_validate(const api_kind *k, const ProtobufCMessage *obj, const ProtobufCMessage *old,
                 const char *subresource, keel_error *err);

/* The Scale subresource (UpdateScale): spec.replicas >= 0. `owner` names the
 * object being scaled in the message ("Deployment" / "ReplicaSet"; NULL reads
 * as "Scale"). Returns 0 or -EINVAL. */
int api_validate_scale(const char *owner, const Keel__Api__V1__Scale *scale, keel_error *err);

/* Service nodePort range (inclusive), Kubernetes' --service-node-port-range;
 * 30000-32767 until set. Returns -EINVAL (and changes nothing) when
 * min > max or either is outside 1..65535. Not thread-safe against concurrent
 * validation: call it while wiring the server, before serving. */
int api_validation_set_node_port_range(int min, int max);
void api_validation_node_port_range(int *min, int *max);

/* Pieces the apiserver, the controllers or the CLI may reuse. */

/* Kubernetes' defaulting of a pod spec (templates included): restartPolicy,
 * dnsPolicy, schedulerName, terminationGracePeriodSeconds, container and probe
 * defaults. api_default on a Pod also copies limits into missing requests. */
void api_default_pod_spec(Keel__Api__V1__PodSpec *spec);

/* True when the image reference carries the tag "latest" or no tag and no digest
 * (then imagePullPolicy defaults to Always). */
bool api_image_has_latest_tag(const char *image);

#endif
