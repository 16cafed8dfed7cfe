#!/usr/bin/env bash
# keel-apiserver's REST/JSON gateway driven by curl, as against Kubernetes:
# discovery, create from a manifest written for Kubernetes, get, list with a
# label selector, a ?watch=1 stream seeing ADDED and DELETED, update with a
# stale resourceVersion (409), unknown fields (400 naming the field), validation
# (422 naming the field), a missing object (404), no credentials (401), a
# viewer writing (403), a deployment's scale subresource, a Service PUT adding a
# port (it gets a NodePort), and Status objects
# with Kubernetes' reason and code.
# usage: rest_curl_test.sh KEEL_APISERVER KEEL_STORE
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

APISERVER="$(realpath "${1:?usage: rest_curl_test.sh KEEL_APISERVER KEEL_STORE}")"
STORE="$(realpath "${2:?usage}")"
keel_init

json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
expect_eq() {
  if [ "$2" == "$3" ]; then keel_pass "$1"; else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}

TOKENS="$(keel_dir tokens)"
mkdir -p "$TOKENS"
cat > "$TOKENS/tokens.csv" <<'CSV'
# token,user,uid,groups
admin-token,alice,1,"keel:admins"
viewer-token,bob,2,"keel:viewers"
CSV

keel_start store "$STORE" --data-dir="$(keel_dir store)/data" \
  --listen-client-urls=http://127.0.0.1:0 --advertise-client-urls=http://127.0.0.1:0
keel_wait_ready store 20 || keel_finish
keel_start api "$APISERVER" --etcd-servers="http://$(keel_grpc_addr store)" \
  --token-auth-file="$TOKENS/tokens.csv" --event-ttl=2s
keel_wait_ready api 20 || keel_finish
H="http://$(keel_http_addr api)"
ADMIN=(-H "Authorization: Bearer admin-token")
VIEWER=(-H "Authorization: Bearer viewer-token")
# curl_code ARGS...: prints the HTTP status, body to $BODY
BODY="$(keel_dir tokens)/body"
curl_code() { curl -s -o "$BODY" -w '%{http_code}' "$@"; }

# Discovery.
expect_eq "GET /api lists v1" "['v1']" "$(curl -s "${ADMIN[@]}" "$H/api" | json_get "d['versions']")"
expect_eq "GET /apis/apps/v1 has deployments" "True" \
  "$(curl -s "${ADMIN[@]}" "$H/apis/apps/v1" | json_get "'deployments' in [r['name'] for r in d['resources']]")"

# Authentication and authorization.
expect_eq "no credentials: 401" "401" "$(curl_code "$H/api/v1/namespaces/default/pods")"
expect_eq "401 is a Status with reason Unauthorized" "Unauthorized" "$(json_get "d['reason']" < "$BODY")"
expect_eq "bad token: 401" "401" "$(curl_code -H "Authorization: Bearer nope" "$H/api/v1/namespaces/default/pods")"

# A Pod manifest as the Kubernetes documentation writes it.
cat > "$(keel_dir tokens)/pod.yaml.json" <<'JSON'
{
  "apiVersion": "v1",
  "kind": "Pod",
  "metadata": {"name": "nginx", "labels": {"app": "nginx"}},
  "spec": {
    "containers": [{
      "name": "nginx",
      "image": "nginx:1.14.2",
      "ports": [{"containerPort": 80}],
      "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "128Mi"}},
      "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "initialDelaySeconds": 3, "periodSeconds": 3},
      "readinessProbe": {"tcpSocket": {"port": "http-alt"}}
    }]
  }
}
JSON
POD="$(keel_dir tokens)/pod.yaml.json"
expect_eq "viewer creating a pod: 403" "403" \
  "$(curl_code "${VIEWER[@]}" -X POST --data @"$POD" "$H/api/v1/namespaces/default/pods")"
expect_eq "403 names the user" "True" "$(json_get "'bob' in d['message'] and d['reason'] == 'Forbidden'" < "$BODY")"

# Start a watch before creating: it must see ADDED then DELETED.
WATCH_OUT="$(keel_dir tokens)/watch.out"
curl -s -N "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dnginx" > "$WATCH_OUT" &
WATCH_PID=$!
sleep 0.5

expect_eq "create: 201" "201" \
  "$(curl_code "${ADMIN[@]}" -X POST -H 'Content-Type: application/json' --data @"$POD" "$H/api/v1/namespaces/default/pods")"
expect_eq "create: server filled uid, resourceVersion, defaults" "True" \
  "$(json_get "len(d['metadata']['uid']) == 36 and d['metadata']['resourceVersion'].isdigit() and d['spec']['restartPolicy'] == 'Always' and d['status']['phase'] == 'Pending'" < "$BODY")"
expect_eq "create: quantities keep their spelling" "250m 128Mi" \
  "$(json_get "d['spec']['containers'][0]['resources']['requests']['cpu'] + ' ' + d['spec']['containers'][0]['resources']['limits']['memory']" < "$BODY")"
expect_eq "create: int-or-string port stays a string" "http-alt" \
  "$(json_get "d['spec']['containers'][0]['readinessProbe']['tcpSocket']['port']" < "$BODY")"
RV="$(json_get "d['metadata']['resourceVersion']" < "$BODY")"
expect_eq "create again: 409 AlreadyExists" "409 AlreadyExists" \
  "$(curl_code "${ADMIN[@]}" -X POST --data @"$POD" "$H/api/v1/namespaces/default/pods") $(json_get "d['reason']" < "$BODY")"

expect_eq "get: 200 with the same resourceVersion" "200 $RV" \
  "$(curl_code "${VIEWER[@]}" "$H/api/v1/namespaces/default/pods/nginx") $(json_get "d['metadata']['resourceVersion']" < "$BODY")"
expect_eq "list with labelSelector" "['nginx']" \
  "$(curl -s "${VIEWER[@]}" "$H/api/v1/namespaces/default/pods?labelSelector=app%3Dnginx" | json_get "[p['metadata']['name'] for p in d['items']]")"
expect_eq "list with a selector matching nothing" "[]" \
  "$(curl -s "${VIEWER[@]}" "$H/api/v1/pods?labelSelector=app+in+(db)" | json_get "d['items']")"
expect_eq "get missing: 404 NotFound" "404 NotFound" \
  "$(curl_code "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods/nope") $(json_get "d['reason']" < "$BODY")"

# Update: the current version wins, a stale one is a 409 Conflict.
curl -s "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods/nginx" > "$BODY.cur"
/usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['metadata']['labels']['tier']='fe'; json.dump(d, open(sys.argv[2],'w'))" "$BODY.cur" "$BODY.upd"
expect_eq "update: 200" "200" "$(curl_code "${ADMIN[@]}" -X PUT --data @"$BODY.upd" "$H/api/v1/namespaces/default/pods/nginx")"
expect_eq "update with a stale resourceVersion: 409 Conflict" "409 Conflict" \
  "$(curl_code "${ADMIN[@]}" -X PUT --data @"$BODY.upd" "$H/api/v1/namespaces/default/pods/nginx") $(json_get "d['reason']" < "$BODY")"

# Bad input.
expect_eq "unknown field: 400 naming it" "400 True" \
  "$(curl_code "${ADMIN[@]}" -X POST --data '{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","imagePullPolicyy":"Always"}]}}' "$H/api/v1/namespaces/default/pods") $(json_get "'spec.containers[0].imagePullPolicyy' in d['message']" < "$BODY")"
expect_eq "invalid object: 422 Invalid naming the field" "422 True" \
  "$(curl_code "${ADMIN[@]}" -X POST --data '{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":70000}]}]}}' "$H/api/v1/namespaces/default/pods") $(json_get "'spec.containers[0].ports[0].containerPort' in d['message'] and d['reason'] == 'Invalid'" < "$BODY")"
expect_eq "garbage JSON: 400" "400" "$(curl_code "${ADMIN[@]}" -X POST --data '{"metadata":' "$H/api/v1/namespaces/default/pods")"
expect_eq "nothing was written by the refused requests" "['nginx']" \
  "$(curl -s "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods" | json_get "[p['metadata']['name'] for p in d['items']]")"
expect_eq "unknown resource: 404" "404" "$(curl_code "${ADMIN[@]}" "$H/api/v1/namespaces/default/widgets")"
expect_eq "pods/log of an unscheduled pod: 400 BadRequest" "400 BadRequest" \
  "$(curl_code "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods/nginx/log") $(json_get "d['reason']" < "$BODY")"
expect_eq "pods/exec on the gateway: 405 naming the gRPC call" "405 True" \
  "$(curl_code "${ADMIN[@]}" -X POST "$H/api/v1/namespaces/default/pods/nginx/exec?command=ls") $(json_get "'keel.api.v1.Pods/Exec' in d['message']" < "$BODY")"
expect_eq "namespace mismatch: 400" "400" \
  "$(curl_code "${ADMIN[@]}" -X POST --data '{"metadata":{"name":"y","namespace":"other"},"spec":{"containers":[{"name":"c","image":"i"}]}}' "$H/api/v1/namespaces/default/pods")"

# Pages: limit and continue, all at the first page's revision.
for n in pa pb pc; do
  curl -s -o /dev/null "${ADMIN[@]}" -X POST --data "{\"metadata\":{\"name\":\"$n\",\"labels\":{\"page\":\"yes\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}" "$H/api/v1/namespaces/default/pods"
done
curl -s "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods?labelSelector=page%3Dyes&limit=2" > "$BODY.p1"
expect_eq "page 1: two pods and a continue token" "['pa', 'pb'] True" \
  "$(json_get "str([p['metadata']['name'] for p in d['items']]) + ' ' + str(bool(d['metadata'].get('continue')))" < "$BODY.p1")"
CONT="$(json_get "d['metadata']['continue']" < "$BODY.p1")"
expect_eq "page 2: the rest, no token" "['pc'] False" \
  "$(curl -s "${ADMIN[@]}" "$H/api/v1/namespaces/default/pods?labelSelector=page%3Dyes&limit=2&continue=$CONT" | json_get "str([p['metadata']['name'] for p in d['items']]) + ' ' + str(bool(d['metadata'].get('continue')))")"

# Delete (an unbound pod goes at once) and the watch saw both events.
expect_eq "delete: 200" "200" "$(curl_code "${ADMIN[@]}" -X DELETE "$H/api/v1/namespaces/default/pods/nginx")"
sleep 0.5
kill "$WATCH_PID" 2>/dev/null
wait "$WATCH_PID" 2>/dev/null
expect_eq "watch stream: ADDED, MODIFIED, DELETED of nginx" "ADDED MODIFIED DELETED" \
  "$(/usr/bin/python3 -c "import json,sys; print(' '.join(json.loads(l)['type'] for l in open(sys.argv[1]) if l.strip()))" "$WATCH_OUT")"

# A Deployment from the documentation, and its scale subresource.
DEP='{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"nginx-deployment","labels":{"app":"nginx"}},"spec":{"replicas":3,"selector":{"matchLabels":{"app":"nginx"}},"template":{"metadata":{"labels":{"app":"nginx"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.14.2","ports":[{"containerPort":80}]}]}}}}'
expect_eq "create deployment: 201" "201" "$(curl_code "${ADMIN[@]}" -X POST --data "$DEP" "$H/apis/apps/v1/namespaces/default/deployments")"
expect_eq "deployment defaults: RollingUpdate 25%/25%" "RollingUpdate 25% 25%" \
  "$(json_get "d['spec']['strategy']['type'] + ' ' + d['spec']['strategy']['rollingUpdate']['maxSurge'] + ' ' + d['spec']['strategy']['rollingUpdate']['maxUnavailable']" < "$BODY")"
expect_eq "GET scale: replicas 3" "3 app=nginx" \
  "$(curl -s "${ADMIN[@]}" "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment/scale" | json_get "str(d['spec']['replicas']) + ' ' + d['status']['selector']")"
expect_eq "PUT scale: 200" "200" \
  "$(curl_code "${ADMIN[@]}" -X PUT --data '{"spec":{"replicas":5}}' "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment/scale")"
expect_eq "deployment now has 5 replicas" "5" \
  "$(curl -s "${ADMIN[@]}" "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment" | json_get "d['spec']['replicas']")"

# A Service updated with PUT goes through the same update as gRPC: a port it
# adds gets a NodePort in the Service's own write, the old port keeps its own.
SVC='{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"type":"NodePort","selector":{"app":"nginx"},"ports":[{"name":"http","port":80,"targetPort":80}]}}'
expect_eq "create NodePort service: 201" "201" "$(curl_code "${ADMIN[@]}" -X POST --data "$SVC" "$H/api/v1/namespaces/default/services")"
NP="$(json_get "d['spec']['ports'][0]['nodePort']" < "$BODY")"
/usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['spec']['ports'].append({'name':'metrics','port':9090,'targetPort':9090}); json.dump(d, open(sys.argv[2],'w'))" "$BODY" "$BODY.svc"
expect_eq "PUT adding a port: 200" "200" "$(curl_code "${ADMIN[@]}" -X PUT --data @"$BODY.svc" "$H/api/v1/namespaces/default/services/web")"
expect_eq "PUT: the added port has a NodePort of its own" "True" \
  "$(json_get "d['spec']['ports'][0]['nodePort'] == $NP and 30000 <= d['spec']['ports'][1]['nodePort'] <= 32767 and d['spec']['ports'][1]['nodePort'] != $NP" < "$BODY")"

# Events are recorded and expire after --event-ttl (a store lease).
EV='{"metadata":{"name":"nginx.1"},"involvedObject":{"kind":"Pod","namespace":"default","name":"nginx"},"reason":"Started","message":"Started container nginx","type":"Normal","count":1,"source":{"component":"test"}}'
expect_eq "create event: 201" "201" "$(curl_code "${ADMIN[@]}" -X POST --data "$EV" "$H/api/v1/namespaces/default/events")"
expect_eq "event listed by involvedObject.name" "['nginx.1']" \
  "$(curl -s "${ADMIN[@]}" "$H/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dnginx" | json_get "[e['metadata']['name'] for e in d['items']]")"
gone=""
for _ in $(seq 1 40); do
  if [ "$(curl_code "${ADMIN[@]}" "$H/api/v1/namespaces/default/events/nginx.1")" == "404" ]; then gone=yes; break; fi
  sleep 0.25
done
expect_eq "event expired after its TTL" "yes" "$gone"

# Metrics: the watch cache per resource.
METRICS="$(curl -s "$H/metrics")"
expect_eq "metrics: pods in the watch cache" "1" \
  "$(echo "$METRICS" | grep -c '^keel_apiserver_watch_cache_objects{resource="deployments"} 1$')"
expect_eq "metrics: rpc and in-flight families present" "2" \
  "$(echo "$METRICS" | grep -c '^# TYPE keel_apiserver_\(requests_in_flight\|watchers\) gauge$')"
expect_eq "healthz: ok" "ok" "$(curl -s "$H/healthz")"

keel_stop api 10
expect_eq "apiserver exits 0 on SIGTERM" "0" "$?"
keel_finish
