#!/usr/bin/env bash
# python3-grpcio against keel-echo; see python_interop.py.
# usage: python_interop_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/python_interop.py" "$@"
