#!/usr/bin/env bash
# The real `keel` binary against a real keel-apiserver over keel-store: the
# Kubernetes documentation's manifests applied unchanged (created, then
# unchanged), `get -o yaml|json` round trips, tables and `get -w` streams
# compared with golden files (e2e/cli/golden/, after normalising ages, times,
# uids and allocated addresses), describe with the object's events, scale,
# delete --wait, dry runs, rollout status/history/undo, the config file and
# its contexts, completion, logs and exec through the apiserver to a stand-in
# node agent, and the error paths: their exit codes and stderr.
#
# usage: cli_test.sh KEEL KEEL_APISERVER KEEL_STORE API_DESCRIPTORS.pb
# To rewrite the golden files after an intended change, run it by hand:
#   KEEL_UPDATE_GOLDEN=e2e/cli/golden e2e/cli/cli_test.sh bazel-bin/cli/keel \
#     bazel-bin/services/apiserver/keel-apiserver bazel-bin/services/store/keel-store \
#     bazel-bin/proto/api_descriptors.pb
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

KEEL="$(realpath "${1:?usage: cli_test.sh KEEL KEEL_APISERVER KEEL_STORE}")"
APISERVER="$(realpath "${2:?usage}")"
STORE="$(realpath "${3:?usage}")"
DESCRIPTORS="$(realpath "${4:?usage}")"
TESTDATA="$HERE/testdata"
GOLDEN="$HERE/golden"
keel_init

WORK="$(keel_dir work)"
mkdir -p "$WORK"
# Never read or write the user's own config: HOME and KEEL_CONFIG are ours.
export HOME="$WORK/home"
mkdir -p "$HOME"
unset KEELCONFIG
export KEEL_CONFIG="$WORK/config"
export NO_COLOR=1
export TZ=UTC

cat > "$WORK/tokens.csv" <<'CSV'
admin-token,alice,1,"keel:admins"
viewer-token,bob,2,"keel:viewers"
CSV

keel_start store "$STORE" --data-dir="$(keel_dir store)/data" \
  --listen-client-urls=http://127.0.0.1:0 --advertise-client-urls=http://127.0.0.1:0
keel_wait_ready store 20 || { keel_finish; exit 1; }
# A /29 service range: every ClusterIP is 10.0.0.1-6, one width in tables.
keel_start api "$APISERVER" --etcd-servers="http://$(keel_grpc_addr store)" \
  --token-auth-file="$WORK/tokens.csv" --service-cluster-ip-range=10.0.0.0/29
keel_wait_ready api 20 || { keel_finish; exit 1; }
API="$(keel_grpc_addr api)"
HTTP="http://$(keel_http_addr api)"

# ---------------------------------------------------------------- helpers

# k NAME ARGS...: runs keel ARGS; stdout to $WORK/NAME.out, stderr to
# $WORK/NAME.err, exit status in $RC.
k() {
  local name="$1"
  shift
  "$KEEL" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  RC=$?
}

# Ages, times, uids, versions and addresses differ from run to run. An age
# keeps the width of its cell (token and padding), so alignment is compared.
normalize() {
  TESTDATA="$TESTDATA" WORK="$WORK" perl -pe '
    s/\Q$ENV{TESTDATA}\E/<testdata>/g; s/\Q$ENV{WORK}\E/<work>/g;
    s/[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}/<time>/g;
    s/"?\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z"?/<timestamp>/g;
    s/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/<uid>/g;
    s/(resourceVersion"?: )"\d+"/$1<rv>/g;
    s/127\.0\.0\.1:\d+/<server>/g;
    s/10\.0\.0\.\d\b/10.0.0.X/g;
    s{(^| )(\d+[smhdy](?:\d+[smhd])?)(?= |$)( *)}{
      my ($pre, $w, $pad) = ($1, length($2) + length($3), $3);
      $pre . ($pad eq "" ? "<age>" : sprintf("%-*s", $w > 5 ? $w : 6, "<age>"))
    }ge;
    s/(\(x\d+ over )\d+[smhd](?:\d+[smh])?\)/$1<age>)/g;
    s/ +$//;
  '
}

# golden NAME FILE: FILE, normalised, must equal golden/NAME.
golden() {
  local name="$1" file="$2"
  normalize < "$file" > "$file.norm"
  if [ -n "${KEEL_UPDATE_GOLDEN:-}" ]; then
    cp "$file.norm" "$KEEL_UPDATE_GOLDEN/$name"
  fi
  if diff -u "$GOLDEN/$name" "$file.norm" > "$file.diff" 2>&1; then
    keel_pass "golden $name"
  else
    keel_fail "golden $name"
    cat "$file.diff"
  fi
}

expect_rc() {
  if [ "$RC" == "$2" ]; then keel_pass "$1: exit $RC"; else
    keel_fail "$1: exit $RC, want $2"
    echo "  stdout: $(cat "$WORK/$3.out" 2>/dev/null)"
    echo "  stderr: $(cat "$WORK/$3.err" 2>/dev/null)"
  fi
}

expect_eq() {
  if [ "$2" == "$3" ]; then keel_pass "$1"; else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}

expect_contains() {
  if grep -qF -- "$2" "$3"; then keel_pass "$1"; else
    keel_fail "$1"
    echo "  want a line containing: $2"
    echo "  in $3:"
    sed 's/^/    /' "$3"
  fi
}

# wait_lines FILE N: until FILE has N lines (10 s).
wait_lines() {
  for _ in $(seq 1 200); do
    [ "$(wc -l < "$1")" -ge "$2" ] && return 0
    sleep 0.05
  done
  return 1
}

# wait_grep FILE PATTERN: until a line of FILE matches (10 s).
wait_grep() {
  for _ in $(seq 1 200); do
    grep -q -- "$2" "$1" && return 0
    sleep 0.05
  done
  return 1
}

json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# ---------------------------------------------------------------- config

k cfg1 config set-cluster local --server="http://$API"
expect_eq "config set-cluster" 'Cluster "local" set.' "$(cat "$WORK/cfg1.out")"
k cfg2 config set-credentials admin --token=admin-token
expect_eq "config set-credentials" 'User "admin" set.' "$(cat "$WORK/cfg2.out")"
k cfg3 config set-context local --cluster=local --user=admin
expect_eq "config set-context" 'Context "local" created.' "$(cat "$WORK/cfg3.out")"
k cfg4 config use-context local
expect_eq "config use-context" 'Switched to context "local".' "$(cat "$WORK/cfg4.out")"
# The same config written by hand in kubeconfig's YAML, with a second
# context: the viewer (a token file next to the config), in development.
echo "viewer-token" > "$WORK/viewer.token"
cp "$KEEL_CONFIG" "$WORK/config.written"
cat > "$KEEL_CONFIG" <<EOF
# kubeconfig-style YAML
apiVersion: v1
kind: Config
current-context: local
clusters:
- name: local
  cluster:
    server: http://$API
users:
- name: admin
  user:
    token: admin-token
- name: viewer
  user:
    token-file: viewer.token
contexts:
- name: local
  context:
    cluster: local
    user: admin
- name: dev-viewer
  context:
    cluster: local
    user: viewer
    namespace: development
EOF
k cfg5 config get-contexts
golden config-get-contexts.txt "$WORK/cfg5.out"
k cfg6 config view
golden config-view.txt "$WORK/cfg6.out"
k cfg7 config current-context
expect_eq "config current-context" "local" "$(cat "$WORK/cfg7.out")"
k cfg8 config use-context nope
expect_rc "use-context of a missing context" 1 cfg8
expect_eq "use-context of a missing context: stderr" 'error: no context exists with the name: "nope"' "$(cat "$WORK/cfg8.err")"

k version version
expect_rc "version" 0 version
golden version.txt "$WORK/version.out"

k apires api-resources
golden api-resources.txt "$WORK/apires.out"

# ---------------------------------------------------------------- apply

k apply1 apply -f "$TESTDATA/namespace.yaml" -f "$TESTDATA/deployment.yaml" -f "$TESTDATA/service.yaml" \
  -f "$TESTDATA/pod.yaml"
expect_rc "apply documentation manifests" 0 apply1
golden apply-created.txt "$WORK/apply1.out"
k apply2 apply -f "$TESTDATA/namespace.yaml" -f "$TESTDATA/deployment.yaml" -f "$TESTDATA/service.yaml" \
  -f "$TESTDATA/pod.yaml"
expect_rc "apply again" 0 apply2
golden apply-unchanged.txt "$WORK/apply2.out"
# A directory and stdin: the same objects, still unchanged.
mkdir -p "$WORK/dir"
cp "$TESTDATA/namespace.yaml" "$TESTDATA/service.yaml" "$WORK/dir/"
k apply3 apply -f "$WORK/dir"
expect_eq "apply -f DIR" $'namespace/development unchanged\nservice/my-service unchanged' "$(cat "$WORK/apply3.out")"
"$KEEL" apply -f - < "$TESTDATA/pod.yaml" > "$WORK/apply4.out" 2>&1
expect_eq "apply -f -" "pod/goproxy unchanged" "$(cat "$WORK/apply4.out")"

# A change to the file is "configured"; the server keeps its allocations.
sed 's/replicas: 3/replicas: 2/' "$TESTDATA/deployment.yaml" > "$WORK/deploy2.yaml"
k apply5 apply -f "$WORK/deploy2.yaml"
expect_eq "apply a changed deployment" "deployment.apps/nginx-deployment configured" "$(cat "$WORK/apply5.out")"
k apply6 apply -f "$TESTDATA/deployment.yaml"
expect_eq "apply it back" "deployment.apps/nginx-deployment configured" "$(cat "$WORK/apply6.out")"

# ---------------------------------------------------------------- tables

k pods get pods
golden get-pods.txt "$WORK/pods.out"
k podsw get pods -o wide
golden get-pods-wide.txt "$WORK/podsw.out"
k deploy get deployments
golden get-deployments.txt "$WORK/deploy.out"
k svc get svc -o wide
golden get-services-wide.txt "$WORK/svc.out"
k ns get namespaces
golden get-namespaces.txt "$WORK/ns.out"
k multi get deploy,svc,pods --show-labels
golden get-multi.txt "$WORK/multi.out"
k names get all -o name
golden get-all-names.txt "$WORK/names.out"
k sel get pods -l app=goproxy --no-headers
expect_eq "label selector" "goproxy" "$(awk '{print $1}' "$WORK/sel.out")"
k selnone get pods -l app=nothing
expect_rc "selector matching nothing" 0 selnone
expect_eq "selector matching nothing: stderr" "No resources found in default namespace." "$(cat "$WORK/selnone.err")"
k field get pods --field-selector=status.phase=Pending -o name
expect_eq "field selector" "pod/goproxy" "$(cat "$WORK/field.out")"

# Color only on a terminal (script(1) gives keel one), and never with NO_COLOR.
if command -v script > /dev/null; then
  env -u NO_COLOR script -qec "$KEEL get pods" /dev/null > "$WORK/tty.out" 2>&1
  expect_eq "on a terminal, STATUS is colored" "1" "$(grep -c $'\e\\[33mPending\e\\[0m' "$WORK/tty.out")"
  script -qec "$KEEL get pods" /dev/null > "$WORK/tty2.out" 2>&1
  expect_eq "NO_COLOR: no color on a terminal" "0" "$(grep -c $'\e\\[' "$WORK/tty2.out")"
fi
env -u NO_COLOR "$KEEL" get pods > "$WORK/notty.out" 2>&1
expect_eq "not a terminal: no color" "0" "$(grep -c $'\e' "$WORK/notty.out")"

# ---------------------------------------------------------------- -o yaml/json round trips

for obj in "namespace development" "deployment nginx-deployment" "service my-service" "pod goproxy"; do
  set -- $obj
  k rt-yaml get "$1" "$2" -o yaml
  k rt-apply apply -f "$WORK/rt-yaml.out"
  expect_contains "get $1 -o yaml, applied again: unchanged" "unchanged" "$WORK/rt-apply.out"
  "$KEEL" get "$1" "$2" -o json | "$KEEL" apply -f - > "$WORK/rt-json.out" 2>&1
  expect_contains "get $1 -o json | apply -f -: unchanged" "unchanged" "$WORK/rt-json.out"
done
k nsyaml get namespace development -o yaml
golden get-namespace-yaml.txt "$WORK/nsyaml.out"
k list get svc -o yaml
expect_contains "a list is a kind: List" "kind: List" "$WORK/list.out"
k rt-list apply -f "$WORK/list.out"
expect_eq "a List applied: its items" "service/my-service unchanged" "$(cat "$WORK/rt-list.out")"

# ---------------------------------------------------------------- namespaces

k nsdev apply -n development -f "$TESTDATA/pod.yaml"
expect_eq "apply -n development" "pod/goproxy created" "$(cat "$WORK/nsdev.out")"
k allns get pods -A
golden get-pods-all-namespaces.txt "$WORK/allns.out"
k nsmismatch apply -n other -f "$WORK/rt-yaml.out"
expect_rc "object namespace differs from -n" 1 nsmismatch
expect_contains "namespace mismatch named" 'the namespace from the provided object "default" does not match the namespace "other"' "$WORK/nsmismatch.err"
# The viewer's context reads development, and may not write.
k viewer get pods --context dev-viewer
golden get-pods-viewer.txt "$WORK/viewer.out"
k viewerw delete pod goproxy --context dev-viewer
expect_rc "viewer deleting" 1 viewerw
expect_contains "viewer deleting: Forbidden" "Error from server (Forbidden): " "$WORK/viewerw.err"

# ---------------------------------------------------------------- errors

k unknown apply -f "$TESTDATA/unknown-field.yaml"
expect_rc "unknown field" 1 unknown
golden error-unknown-field.txt "$WORK/unknown.err"
k invalid apply -f "$TESTDATA/invalid.yaml"
expect_rc "invalid object" 1 invalid
golden error-invalid.txt "$WORK/invalid.err"
k missing get pod nope
expect_rc "get missing" 1 missing
expect_eq "get missing: stderr" 'Error from server (NotFound): pods "nope" not found' "$(cat "$WORK/missing.err")"
expect_eq "get missing: nothing on stdout" "" "$(cat "$WORK/missing.out")"
k missing2 get deploy nope nginx-deployment -o name
expect_rc "one of two missing" 1 missing2
expect_eq "one of two missing: the other printed" "deployment.apps/nginx-deployment" "$(cat "$WORK/missing2.out")"
k ignore get pod nope --ignore-not-found
expect_rc "--ignore-not-found" 0 ignore
k badtype get widgets
expect_rc "unknown type" 1 badtype
expect_eq "unknown type: stderr" 'error: the server doesn'"'"'t have a resource type "widgets"' "$(cat "$WORK/badtype.err")"
k exists create -f "$TESTDATA/pod.yaml"
expect_rc "create existing" 1 exists
expect_eq "create existing: stderr" \
  "Error from server (AlreadyExists): error when creating \"$TESTDATA/pod.yaml:3\": pods \"goproxy\" already exists" \
  "$(cat "$WORK/exists.err")"
k badflag get pods --bogus
expect_rc "unknown flag" 1 badflag
expect_contains "unknown flag named" "unknown flag --bogus" "$WORK/badflag.err"
k badout get pods -o table
expect_rc "unknown output" 1 badout
k notoken get pods --token=wrong
expect_rc "bad token" 1 notoken
expect_contains "bad token: Unauthorized" "Error from server (Unauthorized)" "$WORK/notoken.err"
k noserver get pods --server=127.0.0.1:1 --request-timeout=2s
expect_rc "no server" 1 noserver
expect_contains "no server: says so" "unable to connect to the server at 127.0.0.1:1" "$WORK/noserver.err"
KEEL_CONFIG="$WORK/none" "$KEEL" get pods > "$WORK/noconfig.out" 2> "$WORK/noconfig.err"
RC=$?
expect_rc "no config file" 1 noconfig
expect_contains "no config file: says so" "no configuration: $WORK/none does not exist" "$WORK/noconfig.err"
KEEL_CONFIG="$WORK/none" "$KEEL" get pods --server="$API" --token=admin-token -o name > "$WORK/serveronly.out" 2>&1
expect_eq "--server and --token without a config" "pod/goproxy" "$(cat "$WORK/serveronly.out")"
k nocmd frobnicate
expect_rc "unknown command" 1 nocmd

# ---------------------------------------------------------------- dry run

k dry1 apply --dry-run=server -f "$TESTDATA/dry-run.yaml"
expect_eq "dry run create" "pod/dry created (server dry run)" "$(cat "$WORK/dry1.out")"
k dry2 get pod dry
expect_rc "dry run created nothing" 1 dry2
k dry3 apply --dry-run=server -f "$WORK/deploy2.yaml"
expect_eq "dry run update" "deployment.apps/nginx-deployment configured (server dry run)" "$(cat "$WORK/dry3.out")"
"$KEEL" get deploy nginx-deployment -o json | json_get "d['spec']['replicas']" > "$WORK/dry4.out"
expect_eq "dry run changed nothing" "3" "$(cat "$WORK/dry4.out")"
k dry5 delete pod goproxy --dry-run=server
expect_eq "dry run delete" 'pod "goproxy" deleted (server dry run)' "$(cat "$WORK/dry5.out")"
k dry6 get pod goproxy -o name
expect_eq "dry run deleted nothing" "pod/goproxy" "$(cat "$WORK/dry6.out")"

# ---------------------------------------------------------------- describe

k ev create -f "$TESTDATA/event.yaml"
expect_eq "create events" $'event/goproxy.scheduled created\nevent/goproxy.unhealthy created' "$(cat "$WORK/ev.out")"
k descpod describe pod goproxy
expect_rc "describe pod" 0 descpod
golden describe-pod.txt "$WORK/descpod.out"
k descdep describe deployment/nginx-deployment
golden describe-deployment.txt "$WORK/descdep.out"
k descsvc describe svc my-service
golden describe-service.txt "$WORK/descsvc.out"
k events get events
golden get-events.txt "$WORK/events.out"
k descmissing describe pod nope
expect_rc "describe missing" 1 descmissing

# ---------------------------------------------------------------- scale

k scale scale deployment nginx-deployment --replicas=5
expect_eq "scale" "deployment.apps/nginx-deployment scaled" "$(cat "$WORK/scale.out")"
k scaled get deploy nginx-deployment
golden get-deployment-scaled.txt "$WORK/scaled.out"
k scale2 scale deploy/nginx-deployment --replicas=1 --current-replicas=3
expect_rc "scale with a wrong --current-replicas" 1 scale2
expect_eq "scale precondition: stderr" "error: Expected replicas to be 3, was 5" "$(cat "$WORK/scale2.err")"
k scale3 scale pod goproxy --replicas=2
expect_rc "scale a pod" 1 scale3
k scale4 scale deploy/nginx-deployment --replicas=3
expect_rc "scale back" 0 scale4

# ---------------------------------------------------------------- get -w

k wns create namespace watch
expect_eq "create namespace" "namespace/watch created" "$(cat "$WORK/wns.out")"
"$KEEL" get pods -n watch -w --output-watch-events > "$WORK/watch.out" 2> "$WORK/watch.err" &
KEEL_PIDS[watch]=$!
for _ in $(seq 1 200); do [ -s "$WORK/watch.err" ] && break; sleep 0.05; done
sed 's/name: dry/name: alpha/' "$TESTDATA/dry-run.yaml" > "$WORK/alpha.yaml"
sed 's/name: dry/name: a-pod-with-a-longer-name/' "$TESTDATA/dry-run.yaml" > "$WORK/beta.yaml"
k w1 apply -n watch -f "$WORK/alpha.yaml"
k w2 apply -n watch -f "$WORK/beta.yaml"
k w3 delete -n watch pod alpha --wait
expect_eq "delete --wait of a pod" 'pod "alpha" deleted' "$(cat "$WORK/w3.out")"
wait_grep "$WORK/watch.out" "^DELETED"
keel_stop watch 5 TERM > /dev/null 2>&1
expect_eq "get -w: the empty namespace said so" "No resources found in watch namespace." "$(cat "$WORK/watch.err")"
golden get-watch.txt "$WORK/watch.out"
# The initial table, then rows: -w on a namespace with pods.
"$KEEL" get pods -n watch -w > "$WORK/watch2.out" 2> "$WORK/watch2.err" &
KEEL_PIDS[watch2]=$!
wait_lines "$WORK/watch2.out" 2
k w4 delete -n watch pod a-pod-with-a-longer-name
wait_lines "$WORK/watch2.out" 3
sleep 0.3 # nothing more may come
keel_stop watch2 5 TERM > /dev/null 2>&1
golden get-watch-table.txt "$WORK/watch2.out"

# ---------------------------------------------------------------- delete --wait

k held apply -f "$TESTDATA/held-lease.yaml"
k del1 delete lease held --wait --timeout=1s
expect_rc "delete --wait held by a finalizer" 1 del1
expect_eq "delete --wait: timed out" "error: timed out waiting for the condition on leases/held" "$(cat "$WORK/del1.err")"
sed 's/^  - example.com\/hold$//; s/^  finalizers:$/  finalizers: []/' "$TESTDATA/held-lease.yaml" > "$WORK/released.yaml"
( sleep 1; "$KEEL" apply -f "$WORK/released.yaml" > "$WORK/release.out" 2>&1 ) &
RELEASE=$!
k del2 delete lease held --wait --timeout=20s
wait "$RELEASE"
expect_rc "delete --wait until the finalizer went" 0 del2
expect_eq "delete --wait: deleted" 'lease.coordination.k8s.io "held" deleted' "$(cat "$WORK/del2.out")"
expect_eq "the finalizer was removed by apply" "lease.coordination.k8s.io/held configured" "$(cat "$WORK/release.out")"
k del3 get lease held
expect_rc "gone after delete --wait" 1 del3
k del4 delete -f "$TESTDATA/dry-run.yaml" --ignore-not-found
expect_rc "delete -f of a missing object with --ignore-not-found" 0 del4

# ---------------------------------------------------------------- rollout

k ro1 rollout status deployment/nginx-deployment --timeout=1s
expect_rc "rollout status without a controller" 1 ro1
expect_eq "rollout status: waiting" "Waiting for deployment spec update to be observed..." "$(cat "$WORK/ro1.out")"
expect_eq "rollout status: timeout" "error: timed out waiting for the condition" "$(cat "$WORK/ro1.err")"
# Play the controller: write status through the REST gateway's /status.
set_status() { # observed updated ready available replicas
  "$KEEL" get deploy nginx-deployment -o json | /usr/bin/python3 -c "
import json, sys
d = json.load(sys.stdin)
g, u, r, a, n = (int(x) for x in sys.argv[1:6])
d['status'] = {'observedGeneration': d['metadata']['generation'] if g else 0, 'updatedReplicas': u,
               'readyReplicas': r, 'availableReplicas': a, 'replicas': n}
print(json.dumps(d))" "$@" > "$WORK/status.json"
  curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer admin-token" --data @"$WORK/status.json" \
    "$HTTP/apis/apps/v1/namespaces/default/deployments/nginx-deployment/status"
}
"$KEEL" rollout status deploy/nginx-deployment --timeout=20s > "$WORK/ro2.out" 2> "$WORK/ro2.err" &
ROLLOUT=$!
KEEL_PIDS[rollout]=$ROLLOUT
wait_lines "$WORK/ro2.out" 1
expect_eq "status: observed, 1 updated" "200" "$(set_status 1 1 0 0 1)"
wait_lines "$WORK/ro2.out" 2
expect_eq "status: 3 updated, 2 available" "200" "$(set_status 1 3 2 2 3)"
wait_lines "$WORK/ro2.out" 3
expect_eq "status: all available" "200" "$(set_status 1 3 3 3 3)"
keel_wait_exit rollout 20
RC=$?
expect_rc "rollout status until done" 0 ro2
golden rollout-status.txt "$WORK/ro2.out"
# Revisions: ReplicaSets owned by the deployment, as its controller makes them.
UID_DEP="$("$KEEL" get deploy nginx-deployment -o json | json_get "d['metadata']['uid']")"
for rev in 1 2; do
  image="nginx:1.1$((3 + rev)).0"
  cat > "$WORK/rs$rev.yaml" <<EOF
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: nginx-deployment-rev$rev
  labels: {app: nginx, pod-template-hash: rev$rev}
  annotations:
    deployment.kubernetes.io/revision: "$rev"
    kubernetes.io/change-cause: "image $image"
  ownerReferences:
  - {apiVersion: apps/v1, kind: Deployment, name: nginx-deployment, uid: "$UID_DEP", controller: true}
spec:
  replicas: 0
  selector:
    matchLabels: {app: nginx, pod-template-hash: rev$rev}
  template:
    metadata:
      labels: {app: nginx, pod-template-hash: rev$rev}
    spec:
      containers:
      - name: nginx
        image: $image
        ports:
        - containerPort: 80
EOF
  k rs$rev apply -f "$WORK/rs$rev.yaml"
done
k hist rollout history deployment/nginx-deployment
golden rollout-history.txt "$WORK/hist.out"
k hist1 rollout history deployment/nginx-deployment --revision=1
golden rollout-history-revision.txt "$WORK/hist1.out"
k undo rollout undo deployment/nginx-deployment
expect_eq "rollout undo" "deployment.apps/nginx-deployment rolled back" "$(cat "$WORK/undo.out")"
"$KEEL" get deploy nginx-deployment -o json | json_get "d['spec']['template']['spec']['containers'][0]['image'] + ' ' + str(sorted(d['spec']['template']['metadata']['labels']))" > "$WORK/undone.out"
expect_eq "undo put revision 1's template back, without pod-template-hash" "nginx:1.14.0 ['app']" "$(cat "$WORK/undone.out")"
k undo2 rollout undo deployment/nginx-deployment --to-revision=9
expect_rc "undo to a missing revision" 1 undo2
expect_eq "undo to a missing revision: stderr" "error: unable to find specified revision 9 in history" "$(cat "$WORK/undo2.err")"

# ---------------------------------------------------------------- logs, exec
# Through the apiserver's Pods/Log and Pods/Exec relays to a node agent:
# e2e/testlib/test_agent.py stands in for keel-agent (its logs are "line N of
# NS/POD/CONTAINER"; exec runs the command here).

k logs logs goproxy
expect_rc "logs of an unscheduled pod" 1 logs
expect_eq "logs of an unscheduled pod: stderr" 'Error from server (BadRequest): pod goproxy does not have a host assigned' "$(cat "$WORK/logs.err")"
k logs2 logs goproxy -c nope -f
expect_rc "logs of a missing container" 1 logs2
expect_eq "logs of a missing container: stderr" "error: container nope is not valid for pod goproxy" "$(cat "$WORK/logs2.err")"
k exec2 exec goproxy
expect_eq "exec without a command" "error: you must specify at least one command for the container" "$(cat "$WORK/exec2.err")"

keel_start agent /usr/bin/python3 "$HERE/../testlib/test_agent.py" --descriptors="$DESCRIPTORS" \
  --listen=127.0.0.1:0 --journal="$WORK/agent-journal"
keel_wait_ready agent 20 || { keel_finish; exit 1; }
cat > "$WORK/agent-node.yaml" <<EOF
apiVersion: v1
kind: Node
metadata:
  name: node-a
  annotations:
    agent.keel.dev/endpoint: "$(keel_grpc_addr agent)"
---
apiVersion: v1
kind: Pod
metadata:
  name: two
  labels:
    app: two
spec:
  nodeName: node-a
  containers:
  - name: app
    image: busybox:1.36
  - name: sidecar
    image: busybox:1.36
---
apiVersion: v1
kind: Pod
metadata:
  name: three
  labels:
    app: two
spec:
  nodeName: node-a
  containers:
  - name: app
    image: busybox:1.36
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: two-rs
spec:
  replicas: 2
  selector:
    matchLabels:
      app: two
  template:
    metadata:
      labels:
        app: two
    spec:
      containers:
      - name: app
        image: busybox:1.36
EOF
k agentnode apply -f "$WORK/agent-node.yaml"
expect_rc "apply a node with an agent and a pod on it" 0 agentnode
k logs3 logs two
expect_rc "logs" 0 logs3
expect_eq "logs: the first container's log" "$(printf 'line %d of default/two/app\n' 1 2 3 4 5)" "$(cat "$WORK/logs3.out")"
expect_eq "logs: the container defaulted, as kubectl says" 'Defaulted container "app" out of: app, sidecar' "$(cat "$WORK/logs3.err")"
k logs4 logs pod/two -c sidecar --tail=2 --timestamps
expect_eq "logs -c --tail --timestamps" $'2026-01-01T00:00:04Z line 4 of default/two/sidecar\n2026-01-01T00:00:05Z line 5 of default/two/sidecar' "$(cat "$WORK/logs4.out")"
k logs5 logs two --all-containers --limit-bytes=9
expect_eq "logs --all-containers --limit-bytes (each container)" "line 1 ofline 1 of" "$(cat "$WORK/logs5.out")"
# -f streams until stopped: read three ticks, then end it with a signal.
"$KEEL" logs two -f > "$WORK/logsf.out" 2> "$WORK/logsf.err" &
FPID=$!
for _ in $(seq 100); do grep -q "tick 3" "$WORK/logsf.out" 2>/dev/null && break; sleep 0.1; done
kill -TERM "$FPID" # (a background job of a script ignores SIGINT)
wait "$FPID"
expect_contains "logs -f: new lines keep coming" "tick 3" "$WORK/logsf.out"
for _ in $(seq 50); do grep -q '"cancelled": true' "$WORK/agent-journal" && break; sleep 0.1; done
expect_contains "logs -f interrupted: the agent sees the cancel" '"cancelled": true' "$WORK/agent-journal"
k logs6 logs two --tail=-5
expect_eq "logs --tail=-5" "error: --tail must be -1 or more" "$(cat "$WORK/logs6.err")"

k exec exec two -c sidecar -- sh -c 'echo to-out; echo to-err >&2; exit 7'
expect_rc "exec: the command's exit code" 7 exec
expect_eq "exec: stdout" "to-out" "$(cat "$WORK/exec.out")"
expect_eq "exec: stderr, then kubectl's line" $'to-err\ncommand terminated with exit code 7' "$(cat "$WORK/exec.err")"
seq 1 20000 > "$WORK/stdin.txt"
"$KEEL" exec -i two -c app -- sh -c 'wc -l; cat' < "$WORK/stdin.txt" > "$WORK/exec3.out" 2> "$WORK/exec3.err"
RC=$?
expect_rc "exec -i" 0 exec3
expect_eq "exec -i: stdin reaches the command" "20000" "$(head -n1 "$WORK/exec3.out" | tr -d ' ')"
k exec4 exec two -c app -- no-such-program-keel
expect_rc "exec of a missing program" 127 exec4
k exec5 --token=viewer-token exec two -c app -- true
expect_rc "exec as a viewer" 1 exec5
expect_contains "exec as a viewer: refused" 'Error from server (Forbidden): user "bob" (groups keel:viewers) cannot create pods/exec' "$WORK/exec5.err"
k logs7 --token=viewer-token logs two -c app --tail=1
expect_eq "logs as a viewer" "line 5 of default/two/app" "$(cat "$WORK/logs7.out")"
k logs8 logs -l app=two --prefix --tail=1
expect_eq "logs -l --prefix: every matching pod, a line each" $'[pod/three/app] line 5 of default/three/app\n[pod/two/app] line 5 of default/two/app' "$(cat "$WORK/logs8.out")"
k logs9 logs -l app=two -f --max-log-requests=1
expect_rc "logs -l -f over the concurrency limit" 1 logs9
expect_eq "logs -l -f over the limit: kubectl's message" "error: you are attempting to follow 2 log streams, but maximum allowed concurrency is 1, use --max-log-requests to increase the limit" "$(cat "$WORK/logs9.err")"
k logs10 logs rs/two-rs --tail=1
expect_eq "logs rs/NAME: one of its pods" "line 5 of default/three/app" "$(cat "$WORK/logs10.out")"
expect_eq "logs rs/NAME: which pod, on stderr" "Found 2 pods, using pod/three" "$(cat "$WORK/logs10.err")"
k logs11 logs -l app=nothing
expect_eq "logs -l matching nothing" "No resources found in default namespace." "$(cat "$WORK/logs11.err")"
k exec6 exec replicaset/two-rs -- sh -c 'echo hi'
expect_eq "exec rs/NAME" "hi" "$(cat "$WORK/exec6.out")"
k logs12 logs svc/my-service
expect_eq "logs of a service" "error: cannot get logs of svc/my-service: only pods and their workloads have containers" "$(cat "$WORK/logs12.err")"
k delnode delete -f "$WORK/agent-node.yaml"
keel_stop agent 10

# ---------------------------------------------------------------- completion

k comp completion bash
expect_rc "completion bash" 0 comp
if bash -n "$WORK/comp.out"; then keel_pass "completion script parses"; else keel_fail "completion script parses"; fi
complete_words() { # prints COMPREPLY for the words given (the last is being completed)
  bash -c '
    source "$1"; shift
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    _keel; printf "%s\n" "${COMPREPLY[@]}" | sort' _ "$WORK/comp.out" "$KEEL" "$@"
}
expect_eq "complete a command" "get" "$(complete_words ge)"
expect_eq "complete a kind" $'deploy\ndeployment\ndeployments' "$(complete_words get dep)"
expect_eq "complete a name" "goproxy" "$(complete_words describe pods go)"
expect_eq "complete a name in -n" "goproxy" "$(complete_words get pods -n development "")"
expect_eq "complete TYPE/NAME" "svc/my-service" "$(complete_words get svc/)"
expect_eq "complete rollout" "status" "$(complete_words rollout st)"

# ---------------------------------------------------------------- delete

k delall delete -f "$TESTDATA/pod.yaml" -f "$TESTDATA/service.yaml"
expect_eq "delete -f" $'pod "goproxy" deleted\nservice "my-service" deleted' "$(cat "$WORK/delall.out")"
k delsel delete rs -l app=nginx
expect_eq "delete -l" $'replicaset.apps "nginx-deployment-rev1" deleted\nreplicaset.apps "nginx-deployment-rev2" deleted' "$(cat "$WORK/delsel.out")"
k delmissing delete pod goproxy
expect_rc "delete missing" 1 delmissing
expect_eq "delete missing: stderr" 'Error from server (NotFound): pods "goproxy" not found' "$(cat "$WORK/delmissing.err")"

# Under --config=asan every keel run above was checked for leaks and undefined
# behaviour; a report lands in its stderr.
if grep -l "Sanitizer\|runtime error:" "$WORK"/*.err "$WORK"/*.out > "$WORK/sanitizer.txt" 2>/dev/null; then
  keel_fail "sanitizer reports from keel: $(tr '\n' ' ' < "$WORK/sanitizer.txt")"
  head -n 40 "$(head -n1 "$WORK/sanitizer.txt")"
else
  keel_pass "no sanitizer report from any keel run"
fi

keel_stop api 10
expect_eq "apiserver exits 0 on SIGTERM" "0" "$?"
keel_finish
