#!/usr/bin/env bash
# tools/demo.sh — Keel's main job: bring up a local control plane and deploy the
# example app, as the README's quick start says. Installs what is missing
# (tools/setup.sh), builds keel, keel-store and keel-apiserver, then runs what a
# new user types: `keel up`, `keel apply -f examples/`, `keel get`, `keel
# describe`, `keel scale`, `keel rollout status` ... and `keel down`.
#
# The demo's cluster lives in a temp dir with its own client config, so an
# existing ~/.keel is never touched; only the daemons `keel up` started are
# stopped (by `keel down`, which checks their pids). tools/demo_rest.sh tours
# the REST gateway with curl, tools/demo_rpc.sh the gRPC runtime.
#
# Usage: tools/demo.sh            (as root, or with sudo, the first time)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -t 1 ]; then BOLD=$'\033[1m' DIM=$'\033[2m' RESET=$'\033[0m'; else BOLD="" DIM="" RESET=""; fi
STEP=0
heading() {
  STEP=$((STEP + 1))
  printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$1" "$RESET"
}
say() { printf '%s%s%s\n' "$DIM" "$*" "$RESET"; }
# keel ARGS...: shows the command, runs it, shows a non-zero status (some steps
# fail on purpose).
keel() {
  printf '$ keel %s\n' "$*"
  local rc=0
  "$BIN/cli/keel" "$@" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then say "(exit status $rc)"; fi
  return 0
}

echo "${BOLD}Keel demo${RESET}: a local control plane and the Kubernetes documentation's example app"

heading "Setup and build"
bash tools/setup.sh
TARGETS=(//cli:keel //services/store:keel-store //services/apiserver:keel-apiserver)
echo "$ bazel build ${TARGETS[*]}"
BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/keel-demo-build.XXXXXX")"
if ! bazel build "${TARGETS[@]}" >"$BUILD_LOG" 2>&1; then
  cat "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "demo: the build failed" >&2
  exit 1
fi
grep -E '^INFO: Build completed' "$BUILD_LOG" | tail -n 1 || true
rm -f "$BUILD_LOG"
BIN="$(bazel info bazel-bin 2>/dev/null)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-demo.XXXXXX")"
export KEEL_CONFIG="$WORK/config"
export GRPC_DNS_RESOLVER=native
cleanup() {
  "$BIN/cli/keel" down --dir="$WORK/cluster" --purge >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

heading "keel up"
say "Certificates, keel-store and keel-apiserver (mutual TLS), and a current context in \$KEEL_CONFIG."
keel up --dir="$WORK/cluster"
keel get namespaces
keel api-resources

heading "Deploy the example app"
keel apply -f examples/
keel get all -A
keel get deployment nginx-deployment -o wide
keel get service my-service -o yaml

heading "Inspect, scale, roll"
keel describe deployment nginx-deployment
keel scale deployment nginx-deployment --replicas=5
keel get deployment nginx-deployment
say "Apply again: the file says 3 replicas, so the deployment is configured back (kubectl would keep a scaled value only with a three-way merge)."
keel apply -f examples/nginx-deployment.yaml
say "There is no controller yet, so the rollout makes no progress: status times out."
keel rollout status deployment/nginx-deployment --timeout=2s

heading "What the server refuses"
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: typo\nspec:\n  containers:\n  - name: c\n    image: nginx\n    imagePullPolicyy: Always\n' >"$WORK/typo.yaml"
keel apply -f "$WORK/typo.yaml"
keel get pod does-not-exist
keel delete namespace kube-system

heading "Clean up"
keel delete -f examples/
keel down --dir="$WORK/cluster" --purge
echo
echo "${BOLD}Done.${RESET} tools/demo_rest.sh shows the same API through curl; tools/demo_rpc.sh the gRPC runtime."
