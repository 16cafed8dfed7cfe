# bench/lib/bench.sh — the scaffolding bench/*/run.sh share (bash, sourced
# after `cd` to the repository root and after setting BENCH_NAME, e.g. rpc):
#
#   log MSG...                 "[bench/NAME] MSG" on stderr
#   TMP, PID                   a private temp dir, removed at exit; PID[name] =
#                              the pids of running daemons, SIGKILLed at exit
#                              (only those: nothing is ever killed by name)
#   bench_free_ports N         N free loopback ports (bound to 0 and released)
#   bench_start_store KIND DIR etcd or keel (keel-store at $KEEL) on loopback
#                              with its data and log in DIR (made afresh); sets
#                              PID[KIND], BENCH_GRPC (host:port) and BENCH_URL
#                              (http://host:port)
#   bench_stop_pid PID SECS    SIGTERM, up to SECS s, then SIGKILL; reaps it and
#                              sets BENCH_RC (exit status) and BENCH_KILLED (0/1)
#   bench_stop_daemon NAME LABEL LOG LINES
#                              bench_stop_pid ${PID[NAME]} 10, then unset; an
#                              unclean exit (etcd's 143 after SIGTERM is clean)
#                              is added to PROBLEMS with LINES lines of LOG
#   bench_problem MSG...       adds "  MSG" to PROBLEMS
#   bench_wait_quiet           until other processes use < QUIET_PCT% of one
#                              core over 0.5 s, or QUIET_WAIT s passed (with
#                              BENCH_QUIET_IRQ=1, interrupt time counts too)
#   kv LINE KEY                the value of KEY=VALUE in a load result line
#   bench_rss_kib PID [FIELD]  VmRSS (or FIELD) of /proc/PID/status in KiB, 0
#   bench_etcd_version         "etcd 3.4.x" of $ETCD
#   bench_copy FILE            a private copy in TMP (builds in this tree cannot
#                              swap it mid-run); prints its path
# Uses QUIET_PCT, QUIET_WAIT, ETCD, ETCDCTL, KEEL, PY as the scripts set them.

log() { printf '[bench/%s] %s\n' "$BENCH_NAME" "$*" >&2; }

TMP=$(mktemp -d "/tmp/keel-bench-$BENCH_NAME.XXXXXX")
declare -A PID # running daemons by name
PROBLEMS=""
bench_cleanup() {
  local n
  for n in "${!PID[@]}"; do
    if kill -0 "${PID[$n]}" 2>/dev/null; then kill -KILL "${PID[$n]}" 2>/dev/null || true; fi
  done
  rm -rf "$TMP"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_problem() { PROBLEMS="${PROBLEMS}  $*
"; }

bench_copy() {
  cp "$1" "$TMP/$(basename "$1")" && echo "$TMP/$(basename "$1")"
}

bench_free_ports() {
  "$PY" -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1",0))
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}

bench_start_store() {
  local kind=$1 dir=$2
  BENCH_GRPC="" BENCH_URL=""
  rm -rf "$dir"
  mkdir -p "$dir"
  case $kind in
    etcd)
      local cp pp
      read -r cp pp < <(bench_free_ports 2)
      "$ETCD" --name=bench --data-dir="$dir/data" \
        --listen-client-urls="http://127.0.0.1:$cp" --advertise-client-urls="http://127.0.0.1:$cp" \
        --listen-peer-urls="http://127.0.0.1:$pp" --initial-advertise-peer-urls="http://127.0.0.1:$pp" \
        --initial-cluster="bench=http://127.0.0.1:$pp" >"$dir/log" 2>&1 &
      PID[$kind]=$!
      BENCH_GRPC=127.0.0.1:$cp
      BENCH_URL=http://127.0.0.1:$cp
      for _ in $(seq 100); do
        "$ETCDCTL" --endpoints="$BENCH_GRPC" --dial-timeout=1s endpoint health >/dev/null 2>&1 && return 0
        kill -0 "${PID[$kind]}" 2>/dev/null || break
        sleep 0.1
      done
      ;;
    keel)
      "$KEEL" --name=bench --data-dir="$dir/data" --listen-client-urls=http://127.0.0.1:0 \
        --ready-file="$dir/ready" >"$dir/log" 2>&1 &
      PID[$kind]=$!
      for _ in $(seq 200); do
        if [ -s "$dir/ready" ]; then
          BENCH_GRPC=$(sed -n 's/^grpc=//p' "$dir/ready")
          BENCH_URL=$(sed -n 's/^client-url=//p' "$dir/ready")
          [ -n "$BENCH_GRPC" ] && [ -n "$BENCH_URL" ] && return 0
        fi
        kill -0 "${PID[$kind]}" 2>/dev/null || break
        sleep 0.05
      done
      ;;
  esac
  log "$kind did not become ready; its log:"
  tail -n 20 "$dir/log" >&2
  return 1
}

bench_stop_pid() {
  local pid=$1 secs=$2
  BENCH_RC=0 BENCH_KILLED=0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq $((secs * 20))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    BENCH_KILLED=1
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || BENCH_RC=$?
}

bench_stop_daemon() {
  local n=$1 label=$2 logf=$3 lines=$4 pid=${PID[$1]:-} t0=$SECONDS
  [ -n "$pid" ] || return 0
  bench_stop_pid "$pid" 10
  [ "$BENCH_KILLED" = 0 ] || bench_problem "$label: ignored SIGTERM for 10 s, killed"
  # etcd re-raises SIGTERM after its own shutdown (status 143); keel daemons exit 0.
  if [ "$BENCH_RC" != 0 ] && { [ "$n" != etcd ] || [ "$BENCH_RC" != 143 ]; }; then
    bench_problem "$label: exit status $BENCH_RC after SIGTERM; last log lines:
$(tail -n "$lines" "$logf" | sed 's/^/    /')"
  fi
  unset "PID[$n]"
  log "$label stopped (status $BENCH_RC, $((SECONDS - t0)) s)"
}

bench_busy_ticks() {
  if [ "${BENCH_QUIET_IRQ:-0}" = 1 ]; then
    awk '/^cpu /{print $2+$3+$4+$7+$8; exit}' /proc/stat
  else
    awk '/^cpu /{print $2+$3+$4; exit}' /proc/stat
  fi
}

bench_wait_quiet() {
  local start=$SECONDS a b pct
  while :; do
    a=$(bench_busy_ticks); sleep 0.5; b=$(bench_busy_ticks)
    pct=$(( (b - a) * 100 * 2 / $(getconf CLK_TCK) ))
    [ "$pct" -lt "$QUIET_PCT" ] && return 0
    if [ $((SECONDS - start)) -ge "$QUIET_WAIT" ]; then
      log "machine busy (others ~${pct}% of a core); measuring anyway"
      return 0
    fi
  done
}

kv() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }

bench_rss_kib() { awk -v k="${2:-VmRSS}:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

bench_etcd_version() { "$ETCD" --version 2>/dev/null | sed -n 's/^etcd Version: /etcd /p'; }
