#!/usr/bin/env bash
# tools/demo_rpc.sh — a guided tour of the gRPC runtime: installs what is missing
# (tools/setup.sh), builds keel-echo and keel-echo-client with Bazel, starts
# keel-echo on loopback (port 0, in a temp dir), and walks through health,
# reflection, every RPC kind, error statuses, deadlines, /healthz and /metrics,
# and a graceful shutdown on SIGTERM. Only the pid it started is ever signalled;
# the temp dir is removed on exit.
#
# Usage: tools/demo_rpc.sh        (as root, or with sudo, the first time)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -t 1 ]; then
  BOLD=$'\033[1m' DIM=$'\033[2m' RESET=$'\033[0m'
else
  BOLD="" DIM="" RESET=""
fi

STEP=0
heading() {
  STEP=$((STEP + 1))
  printf '\n%s== %d. %s ==%s\n' "$BOLD" "$STEP" "$1" "$RESET"
}
say() { printf '%s%s%s\n' "$DIM" "$*" "$RESET"; }

# run ARGS...: shows the keel-echo-client command line, runs it, and shows a
# non-zero exit status (several steps fail on purpose).
run() {
  local shown="" a
  for a in "$@"; do
    if [[ "$a" =~ [[:space:]] || -z "$a" ]]; then shown+=" '$a'"; else shown+=" $a"; fi
  done
  printf '$ keel-echo-client%s\n' "$shown"
  local rc=0
  "$BIN/keel-echo-client" "$@" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then say "(exit status $rc)"; fi
  return 0
}

echo "${BOLD}Keel demo${RESET}: the gRPC runtime (common/rpc) through keel-echo and keel-echo-client"

heading "Setup and build"
bash tools/setup.sh
echo "$ bazel build //services/echo:keel-echo //services/echo:keel-echo-client"
BUILD_LOG="$(mktemp "${TMPDIR:-/tmp}/keel-demo-build.XXXXXX")"
if ! bazel build //services/echo:keel-echo //services/echo:keel-echo-client >"$BUILD_LOG" 2>&1; then
  cat "$BUILD_LOG" >&2
  rm -f "$BUILD_LOG"
  echo "demo: the build failed" >&2
  exit 1
fi
grep -E '^INFO: Build completed' "$BUILD_LOG" | tail -n 1 || true
rm -f "$BUILD_LOG"
BAZEL_BIN="$(bazel info bazel-bin 2>/dev/null)"
for b in keel-echo keel-echo-client; do
  if [ ! -x "$BAZEL_BIN/services/echo/$b" ]; then
    echo "demo: $BAZEL_BIN/services/echo/$b was not built" >&2
    exit 1
  fi
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keel-demo.XXXXXX")"
ECHO_PID=""
cleanup() {
  if [ -n "$ECHO_PID" ] && kill -0 "$ECHO_PID" 2>/dev/null; then
    kill -KILL "$ECHO_PID" 2>/dev/null || true
    wait "$ECHO_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Private copies: a rebuild elsewhere in the tree cannot swap them mid-demo.
BIN="$WORK/bin"
mkdir -p "$BIN"
cp "$BAZEL_BIN/services/echo/keel-echo" "$BAZEL_BIN/services/echo/keel-echo-client" "$BIN/"

heading "Start keel-echo"
say "keel-echo listens on 127.0.0.1 port 0 (any free port) and reports what it bound in a ready file."
"$BIN/keel-echo" --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 --ready-file="$WORK/ready" \
  >"$WORK/keel-echo.log" 2>&1 &
ECHO_PID=$!
for _ in $(seq 1 100); do
  [ -s "$WORK/ready" ] && break
  if ! kill -0 "$ECHO_PID" 2>/dev/null; then
    echo "demo: keel-echo exited before serving:" >&2
    cat "$WORK/keel-echo.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ ! -s "$WORK/ready" ]; then
  echo "demo: keel-echo wrote no ready file in 10 s" >&2
  exit 1
fi
GRPC_ADDR="$(sed -n 's/^grpc=//p' "$WORK/ready" | head -1)"
HTTP_ADDR="$(sed -n 's/^http=//p' "$WORK/ready")"
echo "keel-echo pid $ECHO_PID; ready file:"
sed 's/^/  /' "$WORK/ready"
export KEEL_ECHO_SERVER="$GRPC_ADDR"
say "keel-echo-client takes --server ADDR; here \$KEEL_ECHO_SERVER=$GRPC_ADDR stands in for it."

heading "Health check (grpc.health.v1.Health/Check)"
run health
run health keel.echo.v1.Echo

heading "Reflection: what does the server offer? (no .proto files needed)"
run services
run describe keel.echo.v1.Echo

heading "Unary call"
run echo "hello, keel"

heading "Server streaming: one request, a stream of responses"
run expand --interval-ms 200 tick 3

heading "Client streaming: a stream of requests, one response"
run collect alpha beta gamma

heading "Bidirectional streaming: each word goes out after the last echo came back"
run chat ping pong bye

heading "Error status: the server's code name and message, exit status 1"
run echo --status-code NOT_FOUND --status-message "no widget named w1" w1
run health nosuch.Service

heading "Deadline exceeded"
say "The server answers after 2 s; the client gives the call 250 ms."
run echo --delay-ms 2000 --timeout 250ms slow
say "The server saw the cancellation too (its handler counts what it observed):"
sleep 0.2
run stats

heading "HTTP side: /healthz and /metrics on $HTTP_ADDR"
printf '$ curl http://%s/healthz\n' "$HTTP_ADDR"
curl -sS --noproxy '*' --max-time 5 "http://$HTTP_ADDR/healthz"
echo
curl -sS --noproxy '*' --max-time 5 "http://$HTTP_ADDR/metrics" >"$WORK/metrics" || true
say "Every call above, counted by method and status code (the deadline one included):"
printf '$ curl -s http://%s/metrics | grep ^keel_rpc_server_handled_total\n' "$HTTP_ADDR"
grep '^keel_rpc_server_handled_total' "$WORK/metrics" || true
say "The allocator's own view of the daemon's memory:"
printf '$ curl -s http://%s/metrics | grep ^keel_jemalloc | head -n 4\n' "$HTTP_ADDR"
grep '^keel_jemalloc' "$WORK/metrics" | head -n 4 || true

heading "Graceful shutdown on SIGTERM"
say "A call is in flight (the server answers in 800 ms) when keel-echo gets SIGTERM:"
"$BIN/keel-echo-client" echo --delay-ms 800 "finished during shutdown" >"$WORK/inflight.out" 2>&1 &
INFLIGHT_PID=$!
sleep 0.3
echo "$ kill -TERM $ECHO_PID"
kill -TERM "$ECHO_PID"
rc=0
wait "$ECHO_PID" || rc=$?
ECHO_PID=""
inflight_rc=0
wait "$INFLIGHT_PID" || inflight_rc=$?
echo "keel-echo exited with status $rc"
echo "the in-flight call (exit status $inflight_rc) got: $(cat "$WORK/inflight.out")"
say "keel-echo's log:"
sed 's/^/  /' "$WORK/keel-echo.log"
say "A new call now finds nobody listening:"
run health

printf '\n%sDone.%s Run the whole test suite (plain and ASan/UBSan) with: tools/test.sh\n' "$BOLD" "$RESET"
