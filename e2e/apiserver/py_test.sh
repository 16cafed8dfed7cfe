#!/usr/bin/env bash
# Runs one of this folder's python suites with the system python (python3-grpcio).
# usage: py_test.sh SUITE.py KEEL_APISERVER API_DESCRIPTORS.pb STORE_KIND STORE_BIN
set -euo pipefail
suite="$1"
shift
exec /usr/bin/python3 "$(dirname "$0")/$suite" "$@"
