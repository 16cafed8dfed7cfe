#!/usr/bin/env bash
# keel-store crash cycles (crash_cycles.py): 16 concurrent gRPC writers, SIGKILL at
# random instants over 14 cycles on one data dir; after each restart every
# acknowledged write is back at its revision and revisions 2..current are all there.
# usage: crash_cycles_test.sh KEEL_STORE RPC_PROTO [crash_cycles.py flags...]
#   RPC_PROTO: path of etcd/etcdserverpb/rpc.proto (its import root is derived)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
store="${1:?usage: crash_cycles_test.sh KEEL_STORE RPC_PROTO}" rpc="${2:?usage: crash_cycles_test.sh KEEL_STORE RPC_PROTO}"
shift 2
root="${rpc%etcd/etcdserverpb/rpc.proto}"
root="${root:-.}"
exec /usr/bin/python3 "$HERE/crash_cycles.py" --store "$store" --proto-root "$root" "$@"
