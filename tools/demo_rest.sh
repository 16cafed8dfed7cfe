#!/usr/bin/env bash
# tools/demo_rest.sh — the REST/JSON gateway toured with curl. Installs what is
# missing (tools/setup.sh), builds keel-store and keel-apiserver, starts both on
# loopback in a temp dir (ports picked by the kernel), and drives the API the
# way a Kubernetes user would with curl: discovery, a Deployment and a Service
# from the Kubernetes documentation, list with a label selector, a watch
# stream, scaling, optimistic concurrency, validation errors, Events, metrics,
# and a graceful shutdown. Only the pids it started are ever signalled; the temp
# dir is removed on exit. (tools/demo.sh is the main tour, with `keel`.)
#
# Usage: tools/demo_rest.sh       (as root, or with sudo, the first time)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -t 1 ]; then
  BOLD=$'\033[1m' DIM=$'\033[2m' RESET=$'\033[0m'
else
  BOLD="" DIM="" RESET=""
fi
STEP=0
heading() {
  STEP=$((STEP + 1))
  printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$1" "$RESET"
}
say() { printf '%s%s%s\n' "$DIM" "$*" "$RESET"; }
# show CMD...: prints the command, runs it, prints its output (JSON pretty-printed
# when it is JSON) and a non-zero status.
show() {
  local shown="" a
  for a in "$@"; do
    if [[ "$a" =~ [[:space:]\"] || -z "$a" ]]; then shown+=" '$a'"; else shown+=" $a"; fi
  done
  printf '$%s\n' "$shown"
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if printf '%s' "$out" | /usr/bin/python3 -c 'import json,sys; json.loads(sys.stdin.read())' 2>/dev/null; then
    printf '%s' "$out" | /usr/bin/python3 -m json.tool --indent 2 | head -n "${SHOW_LINES:-40}"
  else
    printf '%s\n' "$out" | head -n "${SHOW_LINES:-40}"
  fi
  if [ "$rc" -ne 0 ]; then say "(exit status $rc)"; fi
  return 0
}

echo "${BOLD}Keel demo${RESET}: keel-store + keel-apiserver, driven with curl like a Kubernetes API"

heading "Setup and build"
bash tools/setup.sh
echo "$ bazel build //services/store:keel-store //services/apiserver:keel-apiserver"
BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/keel-demo-build.XXXXXX")"
if ! bazel build //services/store:keel-store //services/apiserver:keel-apiserver >"$BUILD_LOG" 2>&1; then
  cat "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "demo: the build failed" >&2
  exit 1
fi
grep -E '^INFO: Build completed' "$BUILD_LOG" | tail -n 1 || true
rm -f "$BUILD_LOG"
BIN="$(bazel info bazel-bin 2>/dev/null)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-demo.XXXXXX")"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_ready() { # FILE PID NAME
  for _ in $(seq 1 100); do
    [ -s "$1" ] && return 0
    if ! kill -0 "$2" 2>/dev/null; then
      echo "demo: $3 exited before it was ready:" >&2
      cat "$WORK/$3.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "demo: $3 did not become ready" >&2
  exit 1
}

heading "Start keel-store and keel-apiserver"
say "keel-store is the etcd v3-compatible store; keel-apiserver is the only component that talks to it."
"$BIN/services/store/keel-store" --data-dir="$WORK/store" --listen-client-urls=http://127.0.0.1:0 \
  --advertise-client-urls=http://127.0.0.1:0 --ready-file="$WORK/store.ready" >"$WORK/keel-store.log" 2>&1 &
STORE_PID=$!
PIDS+=("$STORE_PID")
wait_ready "$WORK/store.ready" "$!" keel-store
STORE="$(sed -n 's/^grpc=//p' "$WORK/store.ready" | head -n1)"
echo "keel-store serving etcd's API on $STORE"
printf '%s\n' 'demo-admin-token,demo-admin,1,"keel:admins"' 'demo-viewer-token,demo-viewer,2,"keel:viewers"' >"$WORK/tokens.csv"
"$BIN/services/apiserver/keel-apiserver" --etcd-servers="http://$STORE" --token-auth-file="$WORK/tokens.csv" \
  --ready-file="$WORK/api.ready" >"$WORK/keel-apiserver.log" 2>&1 &
API_PID=$!
PIDS+=("$API_PID")
wait_ready "$WORK/api.ready" "$API_PID" keel-apiserver
H="http://$(sed -n 's/^http=//p' "$WORK/api.ready")"
G="$(sed -n 's/^grpc=//p' "$WORK/api.ready" | head -n1)"
echo "keel-apiserver: gRPC on $G (keel.api.v1.Pods, ...), REST/JSON and /metrics on $H"
AUTH=(-H "Authorization: Bearer demo-admin-token")
VIEW=(-H "Authorization: Bearer demo-viewer-token")

heading "Authentication"
show curl -s "$H/api/v1/namespaces/default/pods"
say "With a bearer token from --token-auth-file:"
show curl -s "${AUTH[@]}" "$H/api"
SHOW_LINES=14 show curl -s "${AUTH[@]}" "$H/apis/apps/v1"

heading "Create a Deployment and a Service from the Kubernetes documentation"
cat >"$WORK/deployment.json" <<'JSON'
{"apiVersion": "apps/v1", "kind": "Deployment",
 "metadata": {"name": "nginx-deployment", "labels": {"app": "nginx"}},
 "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
  "template": {"metadata": {"labels": {"app": "nginx"}},
   "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}],
     "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}}}]}}}}
JSON
cat >"$WORK/service.json" <<'JSON'
{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"},
 "spec": {"type": "NodePort", "selector": {"app": "nginx"}, "ports": [{"port": 80, "targetPort": 80}]}}
JSON
say "Defaults are filled in (strategy, imagePullPolicy, ...), uid and resourceVersion are the server's:"
SHOW_LINES=60 show curl -s "${AUTH[@]}" -X POST --data @"$WORK/deployment.json" "$H/apis/apps/v1/namespaces/default/deployments"
say "A Service gets a ClusterIP and a NodePort, allocated in the same store transaction:"
show curl -s "${AUTH[@]}" -X POST --data @"$WORK/service.json" "$H/api/v1/namespaces/default/services"

heading "Pods, a label selector and a watch stream"
for n in web-1 web-2 db-1; do
  app=web; [ "$n" = db-1 ] && app=db
  curl -s -o /dev/null "${AUTH[@]}" -X POST \
    --data "{\"metadata\":{\"name\":\"$n\",\"labels\":{\"app\":\"$app\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"nginx:1.25\"}]}}" \
    "$H/api/v1/namespaces/default/pods"
done
say "Three pods created; list those with app=web (names only):"
printf '$ curl -s "%s/api/v1/namespaces/default/pods?labelSelector=app%%3Dweb"\n' "$H"
curl -s "${VIEW[@]}" "$H/api/v1/namespaces/default/pods?labelSelector=app%3Dweb" |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print([p["metadata"]["name"] for p in d["items"]], "at resourceVersion", d["metadata"]["resourceVersion"])'
say "A watch (?watch=1) streams JSON events; meanwhile web-2 is deleted:"
curl -s -N "${VIEW[@]}" "$H/api/v1/namespaces/default/pods?watch=1&labelSelector=app%3Dweb" >"$WORK/watch.out" &
WATCH=$!
PIDS+=("$WATCH")
sleep 0.5
curl -s -o /dev/null "${AUTH[@]}" -X DELETE "$H/api/v1/namespaces/default/pods/web-2"
sleep 0.5
kill "$WATCH" 2>/dev/null || true
wait "$WATCH" 2>/dev/null || true
/usr/bin/python3 -c 'import json,sys
for l in open(sys.argv[1]):
    if l.strip():
        e = json.loads(l); print(e["type"], e["object"]["metadata"]["name"], "rv", e["object"]["metadata"]["resourceVersion"])' "$WORK/watch.out"

heading "Scale, optimistic concurrency, and what the server refuses"
show curl -s "${AUTH[@]}" -X PUT --data '{"spec":{"replicas":5}}' "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment/scale"
say "An update carrying an old resourceVersion is a 409 Conflict:"
OLD="$(curl -s "${AUTH[@]}" "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment" |
  /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); d["metadata"]["resourceVersion"]="1"; print(json.dumps(d))')"
printf '$ curl -s -X PUT --data <the deployment with resourceVersion "1"> %s\n' "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment"
curl -s "${AUTH[@]}" -X PUT --data "$OLD" "$H/apis/apps/v1/namespaces/default/deployments/nginx-deployment" |
  /usr/bin/python3 -m json.tool --indent 2
say "A field Kubernetes does not have, and an invalid value, each named:"
show curl -s "${AUTH[@]}" -X POST --data '{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","imagePullPolicyy":"Always"}]}}' "$H/api/v1/namespaces/default/pods"
show curl -s "${AUTH[@]}" -X POST --data '{"metadata":{"name":"x"},"spec":{"containers":[{"name":"c","image":"i","ports":[{"containerPort":70000}]}]}}' "$H/api/v1/namespaces/default/pods"
say "A viewer may read but not write:"
show curl -s "${VIEW[@]}" -X DELETE "$H/api/v1/namespaces/default/pods/web-1"

heading "Metrics and health"
printf '$ curl -s %s/metrics | grep keel_apiserver_watch_cache_objects\n' "$H"
curl -s "$H/metrics" | grep '^keel_apiserver_watch_cache_objects' || true
show curl -s "$H/healthz"

heading "Graceful shutdown"
kill -TERM "$API_PID"
rc=0
wait "$API_PID" || rc=$?
echo "keel-apiserver exited with status $rc after SIGTERM"
kill -TERM "$STORE_PID"
rc=0
wait "$STORE_PID" || rc=$?
echo "keel-store exited with status $rc after SIGTERM"
echo
echo "${BOLD}Done.${RESET} The gRPC side (keel.api.v1.*) serves the same verbs; tools/demo_rpc.sh tours the runtime."
