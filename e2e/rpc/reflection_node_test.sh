#!/usr/bin/env bash
# Server reflection: grpc-reflection-js (v1alpha) lists services, resolves Echo's
# descriptors and calls Echo with them (reflection_node.js); then python sends
# raw hand-encoded v1 and v1alpha requests (reflection_v1.py).
# usage: reflection_node_test.sh KEEL_ECHO
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=e2e/testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

BIN="$1"
if [ -z "${KEEL_NODE_MODULES:-}" ]; then
  echo "FAIL: KEEL_NODE_MODULES is not set (bazel test --test_env=KEEL_NODE_MODULES=\$PWD/tools/npm/node_modules)"
  exit 1
fi

keel_init
keel_start echo "$BIN" --listen=127.0.0.1:0
keel_wait_ready echo || exit 1
addr="$(keel_grpc_addr echo 1)"

ECHO_ADDR="$addr" "$(keel_node)" "$HERE/reflection_node.js"
keel_check "grpc-reflection-js checks" test $? -eq 0

"$KEEL_PYTHON" "$HERE/reflection_v1.py" "$addr"
keel_check "raw v1/v1alpha reflection checks" test $? -eq 0

keel_stop echo 10
rc=$?
keel_check "SIGTERM -> exit status 0 (got $rc)" test "$rc" -eq 0
[ "$rc" -eq 0 ] || keel_dump_log echo
keel_finish
