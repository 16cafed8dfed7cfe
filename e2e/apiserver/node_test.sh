#!/usr/bin/env bash
# A node client (node_interop.js or reflection_node.js) against keel-apiserver on
# keel-store; both daemons must then exit 0 on SIGTERM.
# usage: node_test.sh SCRIPT.js KEEL_APISERVER KEEL_STORE SERVICES_PROTO
# Needs --test_env=KEEL_NODE_MODULES=<repo>/tools/npm/node_modules; fails without it.
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=e2e/testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

SCRIPT="$1" APISERVER="$2" STORE="$3" SERVICES_PROTO="$4"
if [ -z "${KEEL_NODE_MODULES:-}" ]; then
  echo "FAIL: KEEL_NODE_MODULES is not set (bazel test --test_env=KEEL_NODE_MODULES=\$PWD/tools/npm/node_modules)"
  exit 1
fi

keel_init
keel_start store "$STORE" "--data-dir=$KEEL_TMP/store-data" \
  --listen-client-urls=http://127.0.0.1:0 --advertise-client-urls=http://127.0.0.1:0
keel_wait_ready store || exit 1
keel_start apiserver "$APISERVER" "--etcd-servers=http://$(keel_grpc_addr store 1)" --anonymous-admin
keel_wait_ready apiserver 60 || exit 1

APISERVER_ADDR="$(keel_grpc_addr apiserver 1)" SERVICES_PROTO="$SERVICES_PROTO" \
  "$(keel_node)" "$HERE/$SCRIPT"
keel_check "$SCRIPT checks" test $? -eq 0

for d in apiserver store; do
  keel_stop "$d" 30
  rc=$?
  keel_check "$d: SIGTERM -> exit status 0 (got $rc)" test "$rc" -eq 0
  if [ "$rc" -ne 0 ] || grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$(keel_log_file "$d")"; then
    keel_fail "$d: sanitizer report or bad exit"
    keel_dump_log "$d" 80
  fi
done
keel_finish
