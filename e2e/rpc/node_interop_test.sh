#!/usr/bin/env bash
# @grpc/grpc-js against keel-echo: starts a plain (TCP + unix, 64Ki limit), a TLS
# and an mTLS daemon, runs node_interop.js against them, then expects each
# daemon to exit 0 on SIGTERM.
# usage: node_interop_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=e2e/testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

BIN="$1" ECHO_PROTO="$2" HEALTH_PROTO="$3"
if [ -z "${KEEL_NODE_MODULES:-}" ]; then
  echo "FAIL: KEEL_NODE_MODULES is not set (bazel test --test_env=KEEL_NODE_MODULES=\$PWD/tools/npm/node_modules)"
  exit 1
fi

keel_init
certs="$KEEL_TMP/certs"
bash "$HERE/../testlib/certs.sh" "$certs" || exit 1
sock="$(keel_sock_dir)/echo.sock"

keel_start plain "$BIN" "--listen=127.0.0.1:0,unix:$sock" --max-message-bytes=64Ki
keel_start tls "$BIN" --listen=127.0.0.1:0 "--tls-cert=$certs/server.pem" "--tls-key=$certs/server.key"
keel_start mtls "$BIN" --listen=127.0.0.1:0 "--tls-cert=$certs/server.pem" \
  "--tls-key=$certs/server.key" "--tls-client-ca=$certs/ca.pem"
for d in plain tls mtls; do keel_wait_ready "$d" || exit 1; done

keel_check "comma-separated --listen: unix listener is the second grpc= line" \
  test "$(keel_grpc_addr plain 2)" = "unix:$sock"

ECHO_PROTO="$ECHO_PROTO" HEALTH_PROTO="$HEALTH_PROTO" CERTS_DIR="$certs" \
  PLAIN_ADDR="$(keel_grpc_addr plain 1)" UNIX_ADDR="$(keel_grpc_addr plain 2)" \
  TLS_ADDR="$(keel_grpc_addr tls 1)" MTLS_ADDR="$(keel_grpc_addr mtls 1)" \
  "$(keel_node)" "$HERE/node_interop.js"
node_rc=$?
keel_check "node client checks" test "$node_rc" -eq 0

for d in plain tls mtls; do
  keel_stop "$d" 10
  rc=$?
  keel_check "$d: SIGTERM -> exit status 0 (got $rc)" test "$rc" -eq 0
  [ "$rc" -eq 0 ] || keel_dump_log "$d"
done
keel_finish
