#!/usr/bin/env bash
# /metrics and /healthz over HTTP, fetched with curl; see metrics_http.py.
# usage: metrics_http_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/metrics_http.py" "$@"
