#!/usr/bin/env bash
# SIGTERM with 100 open streams and slow unary calls; see shutdown_streams.py.
# usage: shutdown_streams_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/shutdown_streams.py" "$@"
