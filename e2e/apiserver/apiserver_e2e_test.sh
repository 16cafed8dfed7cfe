#!/usr/bin/env bash
# keel-apiserver over real gRPC against keel-store or etcd; see apiserver_e2e.py.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/apiserver_e2e.py" "$@"
