#!/usr/bin/env bash
# keel-echo-client against a real keel-echo: every command with its exact
# output (golden strings), the error paths (status code names on stderr, exit
# codes 1 and 2), failover across endpoints, $KEEL_ECHO_SERVER, mutual TLS, and
# keel-echo's graceful exit (status 0) on SIGTERM.
#
# usage: client_test.sh KEEL_ECHO KEEL_ECHO_CLIENT [--valgrind]
# With --valgrind every client run is under memcheck and any error or
# definitely/indirectly lost block fails the test (the target is tagged
# "valgrind" so the sanitizer pass skips it).
# Only the pids started here are ever signalled.
set -uo pipefail

SERVER_BIN="$1"
CLIENT_BIN="$2"
MODE="${3:-}"

TMP="$(mktemp -d "${TEST_TMPDIR:-/tmp}/client_test.XXXXXX")"
PIDS=()
FAILURES=0
CHECKS=0

cleanup() {
  local rc=$? pid
  for pid in "${PIDS[@]}"; do
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
  [ -z "${TEST_TMPDIR:-}" ] && rm -rf "$TMP"
  exit "$rc"
}
trap cleanup EXIT

CLIENT=("$CLIENT_BIN")
if [ "$MODE" = "--valgrind" ]; then
  if [ "${KEEL_SANITIZED:-0}" = "1" ]; then
    echo "FAIL: the valgrind variant cannot run on a sanitized build (exclude the 'valgrind' tag)"
    exit 1
  fi
  CLIENT=(valgrind -q --tool=memcheck --leak-check=full "--show-leak-kinds=definite,indirect"
    "--errors-for-leak-kinds=definite,indirect" --error-exitcode=99 --num-callers=40
    "--log-file=$TMP/valgrind.%p.log" "$CLIENT_BIN")
  # Memcheck is slow: give ordinary calls room, and make the deadline checks'
  # deadlines long enough that their calls reach the server before expiring.
  export KEEL_TEST_TIMEOUT="--timeout=60s"
  SHORT_DEADLINE=5s
else
  export KEEL_TEST_TIMEOUT="--timeout=10s"
  SHORT_DEADLINE=300ms
fi

fail() {
  echo "FAIL: $*"
  FAILURES=$((FAILURES + 1))
}

# matches TEXT WANT: exact, or a glob when WANT starts with "~" (case, not [[ ]],
# which would read "*(...)" as an extglob).
matches() {
  if [ "${2:0:1}" != "~" ]; then
    [ "$1" == "$2" ]
    return
  fi
  # shellcheck disable=SC2254
  case "$1" in
    ${2:1}) return 0 ;;
  esac
  return 1
}

# expect NAME WANT_EXIT WANT_STDOUT WANT_STDERR ARGS...
# Outputs are compared exactly (trailing newlines aside); a WANT starting with
# "~" is a glob instead (for text that comes from the gRPC core).
expect() {
  local name="$1" want_rc="$2" want_out="$3" want_err="$4"
  shift 4
  CHECKS=$((CHECKS + 1))
  "${CLIENT[@]}" "$KEEL_TEST_TIMEOUT" "$@" >"$TMP/out" 2>"$TMP/err"
  local rc=$?
  local out err ok=1
  out="$(cat "$TMP/out")"
  err="$(cat "$TMP/err")"
  [ "$rc" -eq "$want_rc" ] || ok=0
  matches "$out" "$want_out" || ok=0
  matches "$err" "$want_err" || ok=0
  if [ "$ok" -eq 1 ]; then
    echo "ok: $name"
  else
    fail "$name: keel-echo-client $*"
    echo "  exit:   got $rc, want $want_rc"
    echo "  stdout: got:"; sed 's/^/    | /' "$TMP/out"
    echo "          want:"; printf '%s\n' "$want_out" | sed 's/^/    | /'
    echo "  stderr: got:"; sed 's/^/    | /' "$TMP/err"
    echo "          want:"; printf '%s\n' "$want_err" | sed 's/^/    | /'
  fi
}

# eventually NAME WANT_STDOUT ARGS...: counters settle a moment after the client
# sees a status (the server frees a call after sending it), so poll briefly.
eventually() {
  local name="$1" want_out="$2"
  shift 2
  local _
  for _ in $(seq 1 50); do
    if matches "$("${CLIENT[@]}" "$KEEL_TEST_TIMEOUT" "$@" 2>/dev/null)" "$want_out"; then break; fi
    sleep 0.1
  done
  expect "$name" 0 "$want_out" "" "$@"
}

# start NAME ARGS...: runs keel-echo in the background with a ready file.
start_server() {
  local name="$1"
  shift
  "$SERVER_BIN" "$@" "--ready-file=$TMP/$name.ready" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
  eval "PID_$name=$!"
  local _
  for _ in $(seq 1 300); do
    [ -s "$TMP/$name.ready" ] && return 0
    if ! kill -0 "$!" 2>/dev/null; then
      echo "FAIL: keel-echo ($name) exited before serving:"
      cat "$TMP/$name.log"
      exit 1
    fi
    sleep 0.1
  done
  echo "FAIL: keel-echo ($name) wrote no ready file in 30 s"
  cat "$TMP/$name.log"
  exit 1
}

# stop NAME: SIGTERM to the pid started here; the exit status must be 0.
stop_server() {
  local name="$1" pid
  pid="$(eval "echo \$PID_$name")"
  kill -TERM "$pid"
  local _
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    fail "keel-echo ($name) still running 20 s after SIGTERM"
    return
  fi
  wait "$pid"
  local rc=$?
  CHECKS=$((CHECKS + 1))
  if [ "$rc" -eq 0 ]; then
    echo "ok: keel-echo ($name) exits 0 after SIGTERM"
  else
    fail "keel-echo ($name) exited $rc after SIGTERM"
    cat "$TMP/$name.log"
  fi
}

# ------------------------------------------------------------ plain server

start_server plain --listen=127.0.0.1:0 --http-listen=127.0.0.1:0
ADDR="$(sed -n 's/^grpc=//p' "$TMP/plain.ready" | head -1)"
S=(--server "$ADDR")
echo "keel-echo at $ADDR"

expect "health of the server" 0 "SERVING" "" "${S[@]}" health
expect "health of keel.echo.v1.Echo" 0 "SERVING" "" "${S[@]}" health keel.echo.v1.Echo
expect "health of an unknown service is NOT_FOUND" 1 "" \
  'keel-echo-client: health: NOT_FOUND: unknown service "nosuch.Service"' \
  "${S[@]}" health nosuch.Service

expect "services lists every registered service, sorted" 0 "grpc.health.v1.Health
grpc.reflection.v1.ServerReflection
grpc.reflection.v1alpha.ServerReflection
keel.echo.v1.Echo" "" "${S[@]}" services

expect "describe keel.echo.v1.Echo" 0 "service keel.echo.v1.Echo (keel/echo/v1/echo.proto)
  rpc Echo(EchoRequest) returns (EchoResponse)
  rpc Expand(ExpandRequest) returns (stream EchoResponse)
  rpc Collect(stream EchoRequest) returns (CollectResponse)
  rpc Chat(stream EchoRequest) returns (stream EchoResponse)
  rpc Stats(StatsRequest) returns (StatsResponse)" "" "${S[@]}" describe keel.echo.v1.Echo
expect "describe grpc.health.v1.Health" 0 "service grpc.health.v1.Health (grpc/health/v1/health.proto)
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse)
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse)" "" \
  "${S[@]}" describe grpc.health.v1.Health
expect "describe a message is not a service" 1 "" \
  "keel-echo-client: describe: keel.echo.v1.EchoRequest is not a service (it is defined in keel/echo/v1/echo.proto)" \
  "${S[@]}" describe keel.echo.v1.EchoRequest
expect "describe an unknown symbol is NOT_FOUND" 1 "" \
  "keel-echo-client: describe: NOT_FOUND: symbol not found: nosuch.Thing" \
  "${S[@]}" describe nosuch.Thing

expect "echo" 0 "hello" "" "${S[@]}" echo hello
expect "echo keeps spaces and flags after --" 0 "hello, keel --not-a-flag" "" \
  "${S[@]}" echo -- "hello, keel --not-a-flag"
expect "expand streams COUNT messages" 0 "0: hi
1: hi
2: hi" "" "${S[@]}" expand hi 3
expect "expand of 0 streams nothing" 0 "" "" "${S[@]}" expand hi 0
expect "collect counts and joins" 0 "count: 3
bytes: 6
joined: a,bb,ccc" "" "${S[@]}" collect a bb ccc
# More messages than the client stream's send queue holds (1024): none lost.
expect "collect of 3000 words waits for the send queue" 0 "count: 3000
bytes: 10893
joined: $(seq -s, 3000)" "" "${S[@]}" collect $(seq 3000)
expect "chat echoes each word" 0 "0: one
1: two
2: three" "" "${S[@]}" chat one two three

# Completed so far: 2 echo, 2 expand, 2 collect, 1 chat.
eventually "stats after the calls above" "completed_calls: 7
cancelled_calls: 0
deadline_exceeded_calls: 0
active_streams: 0" "${S[@]}" stats

expect "echo --status-code fails with that status" 1 "" \
  "keel-echo-client: echo: NOT_FOUND: no such thing" \
  "${S[@]}" echo --status-code NOT_FOUND --status-message "no such thing" x
expect "echo --status-code by number" 1 "" "keel-echo-client: echo: PERMISSION_DENIED: nope" \
  "${S[@]}" echo --status-code 7 --status-message nope x
expect "a delay past the deadline is DEADLINE_EXCEEDED" 1 "" \
  "~keel-echo-client: echo: DEADLINE_EXCEEDED*" \
  "${S[@]}" echo --delay-ms 60000 --timeout "$SHORT_DEADLINE" slow
expect "expand past the deadline keeps what arrived" 1 "0: tick" \
  "~keel-echo-client: expand: DEADLINE_EXCEEDED*" \
  "${S[@]}" expand --interval-ms 60000 --timeout "$SHORT_DEADLINE" tick 3
# The two failed echoes count as completed (the handler finished them); the
# deadline-cut echo and expand were cancelled by their deadline, which the
# server recognises even when the client's cancel arrives just before its own
# copy of the deadline (rpc_call_deadline_passed allows for that).
eventually "stats count the cancellations" "completed_calls: 9
cancelled_calls: 2
deadline_exceeded_calls: 2
active_streams: 0" "${S[@]}" stats

expect "failover: a dead first endpoint, then the live one" 0 "SERVING" "" \
  --server "127.0.0.1:1,$ADDR" health
expect "failover for a reflection stream" 0 "service grpc.health.v1.Health (grpc/health/v1/health.proto)
  rpc Check(HealthCheckRequest) returns (HealthCheckResponse)
  rpc Watch(HealthCheckRequest) returns (stream HealthCheckResponse)" "" \
  --server "127.0.0.1:1" --server "$ADDR" describe grpc.health.v1.Health
KEEL_ECHO_SERVER="$ADDR" expect "the server from \$KEEL_ECHO_SERVER" 0 "from env" "" echo "from env"

# Usage errors: exit 2, nothing on stdout.
expect "no command" 2 "" "keel-echo-client: missing command (see --help)" "${S[@]}"
expect "unknown command" 2 "" 'keel-echo-client: unknown command "bogus" (see --help)' \
  "${S[@]}" bogus
expect "echo without a message" 2 "" \
  "keel-echo-client: usage: keel-echo-client [flags] echo MESSAGE (see --help)" "${S[@]}" echo
expect "expand with a bad count" 2 "" \
  'keel-echo-client: expand: COUNT must be a number from 0 to 999999999, got "many" (see --help)' \
  "${S[@]}" expand hi many
expect "an echo flag on another command" 2 "" \
  "keel-echo-client: --delay-ms, --status-code and --status-message apply to echo only (see --help)" \
  "${S[@]}" health --delay-ms 5
expect "an unknown status code name" 2 "" \
  'keel-echo-client: flag --status-code: "NOPE" is not a status code name or number (see --help)' \
  "${S[@]}" echo --status-code NOPE x
expect "an unknown flag" 2 "" "keel-echo-client: unknown flag --bogus (see --help)" \
  "${S[@]}" --bogus health
KEEL_ECHO_SERVER="" expect "no server anywhere" 2 "" \
  "keel-echo-client: no server: pass --server ADDR or set KEEL_ECHO_SERVER (see --help)" health
expect "--help prints usage and exits 0" 0 "~Usage: keel-echo-client COMMAND*Commands:*  describe SERVICE*Flags:*  --server list*" "" --help

# ------------------------------------------------------------ mutual TLS

CERTS="$TMP/certs"
mkdir -p "$CERTS"
(
  set -e
  cd "$CERTS"
  export OPENSSL_CONF=/dev/null RANDFILE="$CERTS/.rnd"
  key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
  key ca.key
  openssl req -x509 -new -key ca.key -out ca.pem -days 2 -subj "/CN=keel-test-ca" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" 2>/dev/null
  leaf() { # name cn ext
    key "$1.key"
    openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" -sha256 2>/dev/null
    printf '%s\n' "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial ca.srl \
      -out "$1.pem" -days 2 -sha256 -extfile "$1.ext" 2>/dev/null
  }
  leaf server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
  leaf client keel-test-client "extendedKeyUsage=clientAuth"
) || { echo "FAIL: cannot make test certificates with openssl"; exit 1; }

start_server tls --listen=127.0.0.1:0 --http-listen= "--tls-cert=$CERTS/server.pem" \
  "--tls-key=$CERTS/server.key" "--tls-client-ca=$CERTS/ca.pem"
TLS_ADDR="$(sed -n 's/^grpc=//p' "$TMP/tls.ready" | head -1)"
TLS=(--server "$TLS_ADDR" --tls-ca "$CERTS/ca.pem" --tls-cert "$CERTS/client.pem"
  --tls-key "$CERTS/client.key")
expect "mTLS: echo" 0 "over tls" "" "${TLS[@]}" echo "over tls"
expect "mTLS: chat" 0 "0: secure" "" "${TLS[@]}" chat secure
expect "mTLS: --tls-server-name checks the certificate" 0 "SERVING" "" \
  "${TLS[@]}" --tls-server-name localhost health
expect "mTLS: a plaintext client is UNAVAILABLE" 1 "" \
  "~keel-echo-client: echo: UNAVAILABLE: *(server $TLS_ADDR)" --server "$TLS_ADDR" echo x
expect "mTLS: an unreadable CA file is an error" 1 "" \
  "keel-echo-client: echo: create channel: TLS: open $CERTS/nosuch.pem: No such file or directory" \
  --server "$TLS_ADDR" --tls-ca "$CERTS/nosuch.pem" echo x
expect "TLS flags without --tls-ca" 2 "" \
  "keel-echo-client: --tls-cert, --tls-key and --tls-server-name need --tls-ca (see --help)" \
  --server "$TLS_ADDR" --tls-cert "$CERTS/client.pem" --tls-key "$CERTS/client.key" echo x

# ------------------------------------------------------------ shutdown

stop_server plain
stop_server tls
expect "nothing listening is UNAVAILABLE" 1 "" \
  "~keel-echo-client: health: UNAVAILABLE: *(server $ADDR)" --server "$ADDR" health

if [ "$MODE" = "--valgrind" ]; then
  for log in "$TMP"/valgrind.*.log; do
    [ -s "$log" ] || continue
    fail "valgrind reported errors ($log):"
    cat "$log"
  done
fi

echo "$((CHECKS - FAILURES)) of $CHECKS checks passed"
[ "$FAILURES" -eq 0 ]
