# shellcheck shell=bash
# e2e/testlib/daemon.sh — sourced by e2e shell tests (bash). Starts Keel daemons
# in a private temp dir, waits for their --ready-file, stops them by pid, and
# kills whatever is left on exit. Only pids started here are ever signalled.
#
#   source e2e/testlib/daemon.sh
#   keel_init                                   # temp dir + EXIT trap
#   keel_start echo "$BIN" --listen=127.0.0.1:0 # appends --ready-file=...
#   keel_wait_ready echo 20                     # seconds
#   addr=$(keel_grpc_addr echo 1); http=$(keel_http_addr echo)
#   keel_stop echo 10; rc=$?                    # SIGTERM, wait, exit status
#
# Ready file lines (written atomically by the daemon once it serves):
#   grpc=127.0.0.1:PORT | grpc=unix:/path   one per listener, in flag order
#   http=127.0.0.1:PORT

KEEL_TMP=""
KEEL_SOCK_DIR=""
declare -A KEEL_PIDS=()
KEEL_FAILURES=0

keel_log() { echo "[$(date +%H:%M:%S.%3N)] $*" >&2; }

keel_init() {
  local base="${TEST_TMPDIR:-}"
  if [ -z "$base" ]; then base="$(mktemp -d /tmp/keel-e2e.XXXXXX)"; fi
  KEEL_TMP="$(mktemp -d "$base/keel.XXXXXX")"
  # sun_path holds 107 bytes and Bazel's TEST_TMPDIR can be longer than that:
  # unix sockets then go to a short private dir under /tmp (removed on exit).
  if [ "${#KEEL_TMP}" -le 80 ]; then
    KEEL_SOCK_DIR="$KEEL_TMP"
  else
    KEEL_SOCK_DIR="$(mktemp -d /tmp/keel-sock.XXXXXX)"
  fi
  trap keel_cleanup EXIT
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

# A directory short enough for unix socket paths (made by keel_init).
keel_sock_dir() { echo "$KEEL_SOCK_DIR"; }

keel_cleanup() {
  local rc=$?
  local name pid
  for name in "${!KEEL_PIDS[@]}"; do
    pid="${KEEL_PIDS[$name]}"
    if kill -0 "$pid" 2>/dev/null; then
      keel_log "cleanup: killing $name (pid $pid)"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  if [ -n "$KEEL_SOCK_DIR" ] && [ "$KEEL_SOCK_DIR" != "$KEEL_TMP" ]; then
    rm -rf "$KEEL_SOCK_DIR"
  fi
  # $TEST_TMPDIR is Bazel's to remove; keep it for post-mortems. Outside Bazel,
  # remove what we made.
  if [ -z "${TEST_TMPDIR:-}" ] && [ -n "$KEEL_TMP" ]; then
    rm -rf "$(dirname "$KEEL_TMP")"
  fi
  exit "$rc"
}

keel_dir() { echo "$KEEL_TMP/$1"; }
keel_ready_file() { echo "$KEEL_TMP/$1/ready"; }
keel_log_file() { echo "$KEEL_TMP/$1/log"; }

# keel_start NAME CMD [ARGS...]: runs CMD ARGS --ready-file=DIR/ready in the
# background, stdout+stderr to DIR/log. (With a wrapper such as valgrind, the
# flag still lands last, on the daemon's command line.)
keel_start() {
  local name="$1"
  shift
  local dir="$KEEL_TMP/$name"
  mkdir -p "$dir"
  rm -f "$dir/ready"
  "$@" "--ready-file=$dir/ready" >"$dir/log" 2>&1 &
  KEEL_PIDS[$name]=$!
  keel_log "started $name (pid ${KEEL_PIDS[$name]}): $*"
}

keel_pid() { echo "${KEEL_PIDS[$1]}"; }

keel_dump_log() {
  local f="$KEEL_TMP/$1/log"
  echo "----- $1 log ($f) -----" >&2
  tail -n "${2:-60}" "$f" >&2 2>/dev/null || true
  echo "----- end of $1 log -----" >&2
}

# keel_wait_ready NAME [TIMEOUT_S=20]: polls for the ready file; fails early if
# the daemon exits first.
keel_wait_ready() {
  local name="$1" timeout="${2:-20}"
  local f="$KEEL_TMP/$name/ready" pid="${KEEL_PIDS[$1]}"
  local deadline=$((SECONDS + timeout))
  while [ ! -s "$f" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      wait "$pid"
      keel_log "FAIL: $name exited with status $? before writing its ready file"
      keel_dump_log "$name"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      keel_log "FAIL: $name wrote no ready file within ${timeout}s"
      keel_dump_log "$name"
      return 1
    fi
    sleep 0.05
  done
  keel_log "$name ready: $(tr '\n' ' ' <"$f")"
}

# keel_grpc_addr NAME [N=1]: the Nth grpc= line's address.
keel_grpc_addr() {
  local n="${2:-1}"
  sed -n 's/^grpc=//p' "$KEEL_TMP/$1/ready" | sed -n "${n}p"
}

keel_http_addr() { sed -n 's/^http=//p' "$KEEL_TMP/$1/ready" | head -n1; }

# keel_stop NAME [TIMEOUT_S=10] [SIGNAL=TERM]: signals the daemon and waits for
# it. Returns its exit status; 124 (after SIGKILL) when it outlived the timeout.
# KEEL_STOP_MS receives the time from signal to exit in milliseconds.
keel_stop() {
  local name="$1" timeout="${2:-10}" sig="${3:-TERM}"
  local pid="${KEEL_PIDS[$name]}"
  local start end rc
  start=$(date +%s%N)
  kill "-$sig" "$pid" 2>/dev/null || true
  keel_wait_exit "$name" "$timeout"
  rc=$?
  end=$(date +%s%N)
  KEEL_STOP_MS=$(((end - start) / 1000000))
  keel_log "$name stopped with status $rc after ${KEEL_STOP_MS} ms (SIG$sig)"
  return "$rc"
}

# keel_wait_exit NAME TIMEOUT_S: waits for the daemon to exit on its own.
keel_wait_exit() {
  local name="$1" timeout="$2"
  local pid="${KEEL_PIDS[$name]}"
  local deadline=$(($(date +%s%N) + timeout * 1000000000))
  while kill -0 "$pid" 2>/dev/null; do
    # A zombie still answers kill -0; `wait` below reaps it.
    if [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = "Z" ]; then break; fi
    if [ "$(date +%s%N)" -ge "$deadline" ]; then
      keel_log "FAIL: $name (pid $pid) still running ${timeout}s after the signal; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null
      unset "KEEL_PIDS[$name]"
      return 124
    fi
    sleep 0.02
  done
  wait "$pid"
  local rc=$?
  unset "KEEL_PIDS[$name]"
  return "$rc"
}

# Checks: record failures, keep going, summarize at the end.
keel_pass() { echo "PASS: $*"; }
keel_fail() {
  echo "FAIL: $*"
  KEEL_FAILURES=$((KEEL_FAILURES + 1))
}
# keel_check DESCRIPTION COMMAND...: PASS if COMMAND succeeds.
keel_check() {
  local what="$1"
  shift
  if "$@"; then keel_pass "$what"; else keel_fail "$what"; fi
}
keel_finish() {
  if [ "$KEEL_FAILURES" -gt 0 ]; then
    echo "RESULT: $KEEL_FAILURES check(s) failed"
    return 1
  fi
  echo "RESULT: all checks passed"
  return 0
}

# The python interpreter with grpcio (never the first python3 on PATH).
export KEEL_PYTHON=/usr/bin/python3

# keel_node: node from PATH, else Debian's.
keel_node() {
  if command -v node >/dev/null 2>&1; then command -v node; else echo /usr/bin/node; fi
}
