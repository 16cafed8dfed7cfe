#!/usr/bin/env bash
# `keel up` and `keel down` as a new user runs them: up brings up keel-store and
# keel-apiserver with generated certificates and writes a current context;
# the README's examples apply unchanged over mutual TLS; up again says it is
# up; down stops exactly the daemons it started and removes the context;
# --purge removes the directory.
# usage: up_test.sh KEEL KEEL_STORE KEEL_APISERVER EXAMPLES_DIR
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"
KEEL="$(realpath "${1:?usage}")"
STORE="$(realpath "${2:?usage}")"
API="$(realpath "${3:?usage}")"
EXAMPLES="$(realpath "${4:?usage}")"
keel_init
expect_eq() {
  if [ "$2" == "$3" ]; then keel_pass "$1"; else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}
export HOME
HOME="$(keel_dir home)"
mkdir -p "$HOME"
unset KEEL_CONFIG KEELCONFIG
export GRPC_DNS_RESOLVER=native
DIR="$HOME/cluster"
k() { "$KEEL" "$@"; }

out="$(k up --dir="$DIR" --store-bin="$STORE" --apiserver-bin="$API" 2>&1)"
rc=$?
echo "$out"
expect_eq "keel up exits 0" "0" "$rc"
expect_eq "keel up says it is up" "Keel is up." "$(echo "$out" | head -n1)"
mapfile -t PIDS < <(awk '{print $2}' "$DIR/pids")
expect_eq "two daemons recorded" "2" "${#PIDS[@]}"
expect_eq "the context is current" "keel-local" \
  "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["current-context"])' "$HOME/.keel/config")"
expect_eq "get namespaces over mTLS" "default kube-public kube-system" \
  "$(k get namespaces -o name | sed 's|namespace/||' | tr '\n' ' ' | sed 's/ $//')"
applied="$(k apply -f "$EXAMPLES" 2>&1)"
echo "$applied"
expect_eq "the examples apply unchanged" "4" "$(echo "$applied" | grep -c ' created$')"
expect_eq "the deployment is there" "deployment.apps/nginx-deployment" "$(k get deployment nginx-deployment -o name)"
expect_eq "the service got a cluster IP" "True" \
  "$(k get service my-service -o json | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["spec"]["clusterIP"].startswith("10.96."))')"
expect_eq "keel up again: already up" "Keel is already up" \
  "$(k up --dir="$DIR" --store-bin="$STORE" --apiserver-bin="$API" | cut -c1-18)"

out="$(k down --dir="$DIR" --purge 2>&1)"
rc=$?
echo "$out"
expect_eq "keel down exits 0" "0" "$rc"
alive=0
for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
expect_eq "both daemons are gone" "0" "$alive"
expect_eq "the directory is removed" "no" "$([ -e "$DIR" ] && echo yes || echo no)"
expect_eq "the context is removed" "[]" \
  "$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["contexts"])' "$HOME/.keel/config")"
expect_eq "keel down again: not up" "Keel was not up ($DIR)." "$(k down --dir="$DIR")"
keel_finish
