#!/bin/bash
# bench/rpc/run.sh — Keel's gRPC runtime (keel-echo) against the floor (a bare
# single-threaded C-core server) and python3-grpcio, in one run, with one load
# client (bench/rpc/load) and identical settings for every server.
#
# For each server in turn: start it on 127.0.0.1:0, wait for its ready file,
# run `load --mode=unary` (INFLIGHT calls kept in flight) and `load
# --mode=stream` (STREAMS Expand streams of 16-byte messages), then SIGTERM it
# by pid. Rounds are repeated REPEAT times, servers interleaved, and the best
# round per server is kept (the machine is shared; see other% in the table).
#
# Knobs (environment): DURATION=3 WARMUP=1 INFLIGHT=64 STREAMS=4 PAYLOAD=16
#   REPEAT=2 CLIENT_THREADS=1 SERVERS="keel2 keel1 floor floor-hint py py-aio"
#   QUIET_PCT=30 QUIET_WAIT=5 (before each round, wait up to QUIET_WAIT s for
#   other processes to use less than QUIET_PCT% of one core)
#   TASKSET_SERVER="" TASKSET_CLIENT="" (e.g. 0 and 1: pin with taskset -c)
#   BAZEL=bazel, NO_BUILD=1 to reuse the last build.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
INFLIGHT=${INFLIGHT:-64}
STREAMS=${STREAMS:-4}
PAYLOAD=${PAYLOAD:-16}
REPEAT=${REPEAT:-2}
CLIENT_THREADS=${CLIENT_THREADS:-1}
SERVERS=${SERVERS:-"keel2 keel1 floor floor-hint py py-aio"}
QUIET_PCT=${QUIET_PCT:-30}
QUIET_WAIT=${QUIET_WAIT:-5}
TASKSET_SERVER=${TASKSET_SERVER:-}
TASKSET_CLIENT=${TASKSET_CLIENT:-}
BAZEL=${BAZEL:-bazel}
PY=/usr/bin/python3 # the interpreter with grpc (PLATFORM.md)
BENCH_NAME=rpc
# shellcheck source=bench/lib/bench.sh
. bench/lib/bench.sh # log, TMP, PID, bench_stop_pid, bench_wait_quiet, kv

# ---------------------------------------------------------------- build
have_keel=0
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building (-c opt) //bench/rpc:floor_server //bench/rpc:load"
  "$BAZEL" build -c opt //bench/rpc:floor_server //bench/rpc:load >&2
fi
if ! grep -q keel <<<"$SERVERS"; then
  :
elif [ -e services/echo/BUILD.bazel ] || [ -e services/echo/BUILD ]; then
  if [ "${NO_BUILD:-0}" = 1 ] || "$BAZEL" build -c opt //services/echo:keel-echo >&2; then
    have_keel=1
  else
    log "//services/echo:keel-echo does not build: keel rounds skipped"
  fi
else
  log "services/echo has no BUILD file yet: keel rounds skipped"
fi
BIN=$("$BAZEL" info -c opt bazel-bin 2>/dev/null)
LOAD=$BIN/bench/rpc/load
FLOOR=$BIN/bench/rpc/floor_server
KEEL=$BIN/services/echo/keel-echo
[ -x "$LOAD" ] && [ -x "$FLOOR" ] || { log "missing $LOAD or $FLOOR"; exit 1; }
if [ $have_keel = 1 ] && [ ! -x "$KEEL" ]; then have_keel=0; log "no $KEEL: keel rounds skipped"; fi

pin() { # pin CPULIST CMD...: taskset when CPULIST is set
  local cpus=$1; shift
  if [ -n "$cpus" ]; then echo taskset -c "$cpus" "$@"; else echo "$@"; fi
}

server_cmd() { # the command line that starts server $1
  local ready=$TMP/ready
  case $1 in
    keel2) pin "$TASKSET_SERVER" "$KEEL" --listen=127.0.0.1:0 --threads=2 --http-listen= --ready-file="$ready" ;;
    keel1) pin "$TASKSET_SERVER" "$KEEL" --listen=127.0.0.1:0 --threads=1 --http-listen= --ready-file="$ready" ;;
    floor) pin "$TASKSET_SERVER" "$FLOOR" --listen=127.0.0.1:0 --ready-file="$ready" ;;
    floor-hint) pin "$TASKSET_SERVER" "$FLOOR" --buffer-hint --listen=127.0.0.1:0 --ready-file="$ready" ;;
    py) pin "$TASKSET_SERVER" "$PY" "$ROOT/bench/rpc/py_server.py" --listen=127.0.0.1:0 --ready-file="$ready" ;;
    py-aio) pin "$TASKSET_SERVER" "$PY" "$ROOT/bench/rpc/py_server.py" --asyncio --listen=127.0.0.1:0 --ready-file="$ready" ;;
    *) log "unknown server $1"; return 1 ;;
  esac
}

describe() {
  case $1 in
    keel2) echo "keel-echo --threads=2" ;;
    keel1) echo "keel-echo --threads=1" ;;
    floor) echo "floor (1 thread, bare C core)" ;;
    floor-hint) echo "floor --buffer-hint (stream only)" ;;
    py) echo "python3-grpcio sync (16 workers)" ;;
    py-aio) echo "python3-grpcio asyncio" ;;
  esac
}

start_server() { # start_server NAME: sets PID[server] and TARGET
  rm -f "$TMP/ready"
  # shellcheck disable=SC2046 # word splitting of the command is intended
  $(server_cmd "$1") >"$TMP/$1.log" 2>&1 &
  PID[server]=$!
  local i
  for i in $(seq 200); do
    [ -s "$TMP/ready" ] && break
    kill -0 "${PID[server]}" 2>/dev/null || { log "$1 exited early:"; cat "$TMP/$1.log" >&2; unset "PID[server]"; return 1; }
    sleep 0.05
  done
  TARGET=$(sed -n 's/^grpc=//p' "$TMP/ready")
  [ -n "$TARGET" ] || { log "$1: no grpc= line in its ready file"; return 1; }
}

stop_server() { # SIGTERM by pid; SIGKILL if it does not exit within 5 s
  bench_stop_pid "${PID[server]}" 5
  [ "$BENCH_KILLED" = 0 ] || log "pid ${PID[server]} ignored SIGTERM for 5 s: SIGKILL"
  local rc=$BENCH_RC
  if [ "$rc" != 0 ]; then
    CRASHES="${CRASHES}  $1 (round $rep): exit status $rc after SIGTERM; last log lines:
$(tail -n 3 "$TMP/$1.log" | sed 's/^/    /')
"
    log "$1 exited with status $rc after SIGTERM"
  fi
  unset "PID[server]"
}
CRASHES=""

load_cmd() { # load_cmd MODE
  local extra
  if [ "$1" = unary ]; then extra="--inflight=$INFLIGHT"; else extra="--streams=$STREAMS"; fi
  pin "$TASKSET_CLIENT" "$LOAD" --target="$TARGET" --mode="$1" $extra --duration="$DURATION" \
    --warmup="$WARMUP" --payload="$PAYLOAD" --threads="$CLIENT_THREADS" --server-pid="${PID[server]}"
}

declare -A U S # best unary / stream result line per server
run_round() { # run_round NAME
  local name=$1 u s
  bench_wait_quiet
  start_server "$name" || return 1
  u=""
  if [ "$name" != floor-hint ]; then # the hint only changes streams
    # shellcheck disable=SC2046
    u=$($(load_cmd unary)) || log "$name unary: load reported errors"
  fi
  # shellcheck disable=SC2046
  s=$($(load_cmd stream)) || log "$name stream: load reported errors"
  stop_server "$name"
  [ -n "$(kv "$u" rate)" ] || u="mode=unary rate=0"
  [ -n "$(kv "$s" rate)" ] || s="mode=stream rate=0"
  [ "$name" = floor-hint ] || log "$name: $u"
  log "$name: $s"
  if [ -z "${U[$name]:-}" ] || [ "$(kv "$u" rate)" -gt "$(kv "${U[$name]}" rate)" ]; then U[$name]=$u; fi
  if [ -z "${S[$name]:-}" ] || [ "$(kv "$s" rate)" -gt "$(kv "${S[$name]}" rate)" ]; then S[$name]=$s; fi
}

list=""
for name in $SERVERS; do
  case $name in keel*) [ $have_keel = 1 ] || continue ;; esac
  list="$list $name"
done
log "servers:$list; $REPEAT rounds each, ${WARMUP}s warmup + ${DURATION}s per measurement"
started=$SECONDS
for rep in $(seq "$REPEAT"); do
  for name in $list; do run_round "$name"; done
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "n/a" }'; }
us2ms() { awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }'; }

echo
echo "bench/rpc — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), client and server on the same machine"
echo "unary: $INFLIGHT Echo calls in flight, ${PAYLOAD}-byte payload; stream: $STREAMS Expand streams of ${PAYLOAD}-byte messages"
echo "best of $REPEAT rounds of ${DURATION}s (after ${WARMUP}s warmup); srv us/op = server CPU per call or message; other% = CPU used by unrelated processes meanwhile (100 = one core)"
echo
printf '%-34s %10s %8s %8s %10s %12s %10s %8s\n' server "unary/s" "p50 ms" "p99 ms" "srv us/op" "stream msg/s" "srv us/op" "other%"
for name in $list; do
  u=${U[$name]:-}; s=${S[$name]:-}
  [ -n "$u" ] && [ -n "$s" ] || continue
  if [ "$name" = floor-hint ]; then
    printf '%-34s %10s %8s %8s %10s %12s %10s %8s\n' "$(describe "$name")" - - - - \
      "$(kv "$s" rate)" "$(kv "$s" srv_us_per_op)" "-/$(kv "$s" other_cpu_pct)"
    continue
  fi
  printf '%-34s %10s %8s %8s %10s %12s %10s %8s\n' "$(describe "$name")" \
    "$(kv "$u" rate)" "$(us2ms "$(kv "$u" p50_us)")" "$(us2ms "$(kv "$u" p99_us)")" "$(kv "$u" srv_us_per_op)" \
    "$(kv "$s" rate)" "$(kv "$s" srv_us_per_op)" "$(kv "$u" other_cpu_pct)/$(kv "$s" other_cpu_pct)"
done
echo

# Python: the faster of the two modes is the peer.
py_best=""
for p in py py-aio; do
  [ -n "${U[$p]:-}" ] || continue
  if [ -z "$py_best" ] || [ "$(kv "${U[$p]}" rate)" -gt "$(kv "${U[$py_best]}" rate)" ]; then py_best=$p; fi
done
py_best_s=""
for p in py py-aio; do
  [ -n "${S[$p]:-}" ] || continue
  if [ -z "$py_best_s" ] || [ "$(kv "${S[$p]}" rate)" -gt "$(kv "${S[$py_best_s]}" rate)" ]; then py_best_s=$p; fi
done
for k in keel2 keel1; do
  [ -n "${U[$k]:-}" ] || continue
  if [ -n "${U[floor]:-}" ]; then
    echo "$(describe $k) / floor:  unary $(ratio "$(kv "${U[$k]}" rate)" "$(kv "${U[floor]}" rate)")x" \
      "(CPU per call $(ratio "$(kv "${U[$k]}" srv_us_per_op)" "$(kv "${U[floor]}" srv_us_per_op)")x)," \
      "stream $(ratio "$(kv "${S[$k]}" rate)" "$(kv "${S[floor]}" rate)")x" \
      "(CPU per message $(ratio "$(kv "${S[$k]}" srv_us_per_op)" "$(kv "${S[floor]}" srv_us_per_op)")x)"
  fi
  if [ -n "${S[floor-hint]:-}" ]; then
    echo "$(describe $k) / floor --buffer-hint:  stream $(ratio "$(kv "${S[$k]}" rate)" "$(kv "${S[floor-hint]}" rate)")x" \
      "(CPU per message $(ratio "$(kv "${S[$k]}" srv_us_per_op)" "$(kv "${S[floor-hint]}" srv_us_per_op)")x)"
  fi
  if [ -n "$py_best" ]; then
    echo "$(describe $k) / python:  unary $(ratio "$(kv "${U[$k]}" rate)" "$(kv "${U[$py_best]}" rate)")x (vs $(describe $py_best))," \
      "stream $(ratio "$(kv "${S[$k]}" rate)" "$(kv "${S[$py_best_s]}" rate)")x (vs $(describe $py_best_s))"
  fi
done
if [ -n "${U[floor]:-}" ] && [ -n "$py_best" ]; then
  echo "floor / python:  unary $(ratio "$(kv "${U[floor]}" rate)" "$(kv "${U[$py_best]}" rate)")x," \
    "stream $(ratio "$(kv "${S[floor]}" rate)" "$(kv "${S[$py_best_s]}" rate)")x"
fi
echo
if [ -n "$CRASHES" ]; then
  echo "SERVERS THAT DID NOT EXIT CLEANLY ON SIGTERM:"
  printf '%s' "$CRASHES"
  echo
fi
echo "total $((SECONDS - started))s of rounds. Reproduce:"
pins=""
[ -z "$TASKSET_SERVER" ] || pins="$pins TASKSET_SERVER=$TASKSET_SERVER"
[ -z "$TASKSET_CLIENT" ] || pins="$pins TASKSET_CLIENT=$TASKSET_CLIENT"
echo "  DURATION=$DURATION WARMUP=$WARMUP INFLIGHT=$INFLIGHT STREAMS=$STREAMS PAYLOAD=$PAYLOAD REPEAT=$REPEAT CLIENT_THREADS=$CLIENT_THREADS$pins SERVERS=\"$SERVERS\" bench/rpc/run.sh"
echo "one round by hand (server prints nothing; its port is in the ready file):"
echo "  $(server_cmd floor | sed "s|$TMP/ready|/tmp/ready|") &"
echo "  $(pin "$TASKSET_CLIENT" "$LOAD") --target=\$(sed -n 's/^grpc=//p' /tmp/ready) --mode=unary --inflight=$INFLIGHT --duration=$DURATION --warmup=$WARMUP --payload=$PAYLOAD --threads=$CLIENT_THREADS"
