#!/usr/bin/env bash
# Health Watch across SIGTERM; see health_shutdown.py.
# usage: health_shutdown_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/health_shutdown.py" "$@"
