#!/usr/bin/env bash
# The etcd v3 conformance suite (conformance.py) against a server it launches
# with etcd's flag names: etcdctl, python3-grpcio with Keel's etcd subset protos,
# and the npm etcd3 client (needs --test_env=KEEL_NODE_MODULES=<repo>/tools/npm/node_modules).
# usage: conformance_test.sh SERVER_BIN RPC_PROTO [--server-arg=ARG ...]
#   SERVER_BIN: /usr/bin/etcd, or keel-store (which must accept etcd's flags)
#   RPC_PROTO:  path of etcd/etcdserverpb/rpc.proto (its import root is derived)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
server="$1" rpc="$2"
shift 2
root="${rpc%etcd/etcdserverpb/rpc.proto}"
root="${root:-.}"
exec /usr/bin/python3 "$HERE/conformance.py" --server "$server" --proto-root "$root" \
  --node-script "$HERE/etcd3_client.js" "$@"
