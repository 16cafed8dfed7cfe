#!/bin/bash
# bench/store/run.sh — keel-store against etcd 3.4 on this machine, in one run,
# with one load client (bench/store/load) and the same durability (both fsync
# every acknowledged write: etcd its WAL, keel-store its group-committed WAL).
#
# Phase 1, throughput and latency: both servers are started fresh (temp data
# dirs, loopback), and each measurement point is run against one server, then
# at once against the other (the order alternates from point to point), so a
# machine shared with other work disturbs both alike:
#   put   --clients=1,16,256 (256-byte values over a space of 100k keys)
#   range of one key, and of a 100-key prefix (16 clients, linearizable)
#   watch: 1000 watch streams on one prefix; a writer puts at a fixed rate;
#          event delivery latency p50/p99 (skipped with "not served" when the
#          server answers Watch with UNIMPLEMENTED)
# Every point runs REPEAT times and the best round per server is kept (highest
# rate; lowest event p99 for watch). Then both are stopped with SIGTERM by pid.
# Before phase 1, a one-thread append + fdatasync loop on the same filesystem
# gives the floor any store that syncs each write meets with one client.
# Phase 2, memory and `etcdctl check perf`, each server in turn, fresh: VmRSS
# idle, `load --mode=fill` (100k keys of 1 KiB), VmRSS right after and after
# SETTLE seconds, `etcdctl check perf --load=$CHECK_PERF` (60 s each), VmRSS
# after it, SIGTERM.
# Prints a table with keel/etcd ratios against the goals and the command to
# reproduce it.
#
# Knobs (environment): DURATION=3 WARMUP=1 CLIENTS="1 16 256" CHANNELS=1
#   VALUE_SIZE=256 KEYS=100000 RANGE_CLIENTS=16 WATCHERS=1000
#   WATCH_RATES="20 100" (puts/s; each put is one event per watcher)
#   WATCH_DURATION=3 WATCH_CHANNELS=4 FILL_KEYS=100000 FILL_VALUE=1024
#   FILL_CLIENTS=256 SETTLE=5 CHECK_PERF=s (empty: skip) REPEAT=2
#   SERVERS="etcd keel" QUIET_PCT=30 QUIET_WAIT=1 ETCD=/usr/bin/etcd
#   ETCDCTL=/usr/bin/etcdctl BAZEL=bazel, NO_BUILD=1 to reuse the last build,
#   BIN=bazel-out/k8-opt/bin (where the binaries are taken from).
#   PHASES="1 2" (PHASES=2: only memory, check perf and the fill ranges; with
#   CHECK_PERF= it takes about 1 minute). FILL_RANGE=1: after the settle,
#   range points (16 clients) over keys the fill wrote (one key, 100 keys of
#   FILL_VALUE bytes): in keel-store those values are read from its snapshot.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
CLIENTS=${CLIENTS:-"1 16 256"}
CHANNELS=${CHANNELS:-1}
VALUE_SIZE=${VALUE_SIZE:-256}
KEYS=${KEYS:-100000}
RANGE_CLIENTS=${RANGE_CLIENTS:-16}
WATCHERS=${WATCHERS:-1000}
WATCH_RATES=${WATCH_RATES:-"20 100"}
WATCH_DURATION=${WATCH_DURATION:-3}
WATCH_CHANNELS=${WATCH_CHANNELS:-4}
FILL_KEYS=${FILL_KEYS:-100000}
FILL_VALUE=${FILL_VALUE:-1024}
FILL_CLIENTS=${FILL_CLIENTS:-256}
SETTLE=${SETTLE:-5}
CHECK_PERF=${CHECK_PERF-s}
REPEAT=${REPEAT:-2}
SERVERS=${SERVERS:-"etcd keel"}
PHASES=${PHASES:-"1 2"}
FILL_RANGE=${FILL_RANGE:-1}
QUIET_PCT=${QUIET_PCT:-30}
QUIET_WAIT=${QUIET_WAIT:-1}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
BAZEL=${BAZEL:-bazel}
PY=/usr/bin/python3
export ETCDCTL_API=3
BENCH_NAME=store
# shellcheck source=bench/lib/bench.sh
. bench/lib/bench.sh # log, TMP, PID, PROBLEMS, the store daemons, bench_wait_quiet, kv

# ---------------------------------------------------------------- build
declare -A TARGET # gRPC endpoints of the running servers by name

have_keel=0
if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building (-c opt) //bench/store:load"
  "$BAZEL" build -c opt //bench/store:load >&2
  if grep -qw keel <<<"$SERVERS"; then
    if "$BAZEL" build -c opt //services/store:keel-store >&2; then have_keel=1; else
      log "//services/store:keel-store does not build: keel skipped"; fi
  fi
else
  have_keel=1
fi
# bazel-out/k8-opt is where -c opt builds land; `bazel info` would wait for
# any other Bazel command running in this workspace.
BIN=${BIN:-$ROOT/bazel-out/k8-opt/bin}
# Private copies: other builds in this tree cannot swap them mid-run.
LOAD=$(bench_copy "$BIN/bench/store/load")
if [ $have_keel = 1 ] && [ -x "$BIN/services/store/keel-store" ]; then
  bench_copy "$BIN/services/store/keel-store" >/dev/null
else
  have_keel=0
fi
KEEL=$TMP/keel-store
list=""
for n in $SERVERS; do
  case $n in
    keel) [ $have_keel = 1 ] && list="$list keel" ;;
    etcd) if [ -x "$ETCD" ]; then list="$list etcd"; else log "no $ETCD: etcd skipped"; fi ;;
    *) log "unknown server $n"; exit 2 ;;
  esac
done
list=${list# }
[ -n "$list" ] || { log "nothing to measure"; exit 1; }

describe() {
  case $1 in
    etcd) bench_etcd_version ;;
    keel) echo "keel-store $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- services/store common 2>/dev/null || echo '+changes')" ;;
  esac
}

# ---------------------------------------------------------------- servers
start_server() { # start_server NAME TAG: sets PID[NAME], TARGET[NAME]
  bench_start_store "$1" "$TMP/$1-$2" || return 1
  TARGET[$1]=$BENCH_GRPC
}

stop_server() { # stop_server NAME TAG: SIGTERM by pid, SIGKILL after 10 s
  bench_stop_daemon "$1" "$1 ($2)" "$TMP/$1-$2/log" 3
}

# ---------------------------------------------------------------- phase 1
declare -A R # R[point,server] = best load output line
points=""
for c in $CLIENTS; do points="$points put$c"; done
points="$points range-key range-prefix"
for r in $WATCH_RATES; do points="$points watch$r"; done

load_args() { # load_args POINT
  case $1 in
    put*) echo "--mode=put --clients=${1#put} --channels=$(( CHANNELS > ${1#put} ? ${1#put} : CHANNELS )) --keys=$KEYS --value-size=$VALUE_SIZE --duration=$DURATION --warmup=$WARMUP" ;;
    range-*) echo "--mode=range --range=${1#range-} --clients=$RANGE_CLIENTS --channels=$(( CHANNELS > RANGE_CLIENTS ? RANGE_CLIENTS : CHANNELS )) --value-size=$VALUE_SIZE --duration=$DURATION --warmup=$WARMUP" ;;
    watch*) echo "--mode=watch --watchers=$WATCHERS --rate=${1#watch} --channels=$WATCH_CHANNELS --value-size=$VALUE_SIZE --duration=$WATCH_DURATION --warmup=$WARMUP" ;;
  esac
}

better() { # better POINT NEW OLD: is NEW a better round than OLD?
  [ -z "$3" ] && return 0
  case $1 in
    watch*) [ "$(kv "$2" served)" = 1 ] && awk -v a="$(kv "$2" p99_us)" -v b="$(kv "$3" p99_us)" 'BEGIN { exit !(a < b) }' ;;
    *) awk -v a="$(kv "$2" rate)" -v b="$(kv "$3" rate)" 'BEGIN { exit !(a > b) }' ;;
  esac
}

# The floor for one client: 256-byte records written and fdatasync'ed one at a
# time, in a loop, on the filesystem that holds both data dirs, into a file
# preallocated with fallocate (what both WALs write into: etcd's and keel's
# segments are preallocated) and, for comparison, appended to a growing file.
# No store that syncs each acknowledged write can answer one client faster
# than the preallocated rate.
fsync_floor() {
  "$PY" - "$TMP" <<'PYEOF'
import os, sys, time
def probe(prealloc):
    path = os.path.join(sys.argv[1], "fsync-probe")
    flags = os.O_WRONLY | os.O_CREAT | (0 if prealloc else os.O_APPEND)
    fd = os.open(path, flags, 0o600)
    if prealloc:
        os.posix_fallocate(fd, 0, 64 << 20)
    buf, lat, off = b"x" * 256, [], 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        t = time.monotonic()
        if prealloc:
            os.pwrite(fd, buf, off); off += len(buf)
        else:
            os.write(fd, buf)
        os.fdatasync(fd)
        lat.append(time.monotonic() - t)
    os.close(fd); os.unlink(path)
    lat.sort()
    return len(lat), lat[len(lat) // 2] * 1e6, lat[len(lat) * 99 // 100] * 1e6
r, p50, p99 = probe(True)
ar, ap50, ap99 = probe(False)
print("rate=%d p50_us=%d p99_us=%d append_rate=%d append_p50_us=%d append_p99_us=%d" % (r, p50, p99, ar, ap50, ap99))
PYEOF
}

started=$SECONDS
declare -A M # M[key,server]
FSYNC=""
if grep -qw 1 <<<"$PHASES"; then
bench_wait_quiet
FSYNC=$(fsync_floor)
log "fsync floor (256-byte write + fdatasync, one thread; preallocated file, then appending): $FSYNC"
log "servers: $list; phase 1 points:$points; $REPEAT round(s), ${WARMUP}s warmup + ${DURATION}s per point"
for n in $list; do start_server "$n" perf || exit 1; done
WATCH_OFF="" # servers whose Watch is not served
order=$list
for _ in $(seq "$REPEAT"); do
  for p in $points; do
    for n in $order; do
      case $p in watch*) if grep -qw "$n" <<<"$WATCH_OFF"; then continue; fi ;; esac
      bench_wait_quiet
      # shellcheck disable=SC2046
      out=$("$LOAD" --target="${TARGET[$n]}" --server-pid="${PID[$n]}" --prefix=/bench/ $(load_args "$p") 2>"$TMP/load.err") ||
        { log "$n $p: load reported errors: $(tr '\n' ' ' <"$TMP/load.err")"
          bench_problem "$n $p: $(tr '\n' ' ' <"$TMP/load.err")"; }
      log "$n $p: $out"
      if [ "$(kv "$out" served)" = 0 ]; then WATCH_OFF="$WATCH_OFF $n"; fi
      if [ -n "$out" ] && better "$p" "$out" "${R[$p,$n]:-}"; then R[$p,$n]=$out; fi
    done
    order=$(tr ' ' '\n' <<<"$order" | tac | tr '\n' ' ') # alternate who goes first
  done
done
for n in $list; do stop_server "$n" perf; done
fi

# ---------------------------------------------------------------- phase 2
for n in $list; do
  grep -qw 2 <<<"$PHASES" || break
  log "$n: memory (fill $FILL_KEYS keys of $FILL_VALUE B) and etcdctl check perf"
  start_server "$n" mem || exit 1
  pid=${PID[$n]}
  sleep 1
  M[idle,$n]=$(bench_rss_kib "$pid")
  bench_wait_quiet
  out=$("$LOAD" --target="${TARGET[$n]}" --server-pid="$pid" --mode=fill --keys="$FILL_KEYS" \
    --value-size="$FILL_VALUE" --clients="$FILL_CLIENTS" --channels="$CHANNELS" 2>"$TMP/load.err") ||
    { log "$n fill: $(tr '\n' ' ' <"$TMP/load.err")"
      bench_problem "$n fill: $(tr '\n' ' ' <"$TMP/load.err")"; }
  log "$n fill: $out"
  M[fill,$n]=$out
  M[rss0,$n]=$(bench_rss_kib "$pid")
  sleep "$SETTLE"
  M[rss,$n]=$(bench_rss_kib "$pid")
  M[anon,$n]=$(bench_rss_kib "$pid" RssAnon)
  M[file,$n]=$(bench_rss_kib "$pid" RssFile)
  M[disk,$n]=$(du -sk "$TMP/$n-mem/data" | cut -f1)
  if [ "$FILL_RANGE" = 1 ] && [ "$FILL_KEYS" -ge 50100 ]; then
    for k in key prefix; do
      bench_wait_quiet
      out=$("$LOAD" --target="${TARGET[$n]}" --server-pid="$pid" --mode=range --range=$k --range-over=fill \
        --clients="$RANGE_CLIENTS" --duration="$DURATION" --warmup="$WARMUP" 2>"$TMP/load.err") ||
        { log "$n fill range $k: $(tr '\n' ' ' <"$TMP/load.err")"
          bench_problem "$n fill range $k: $(tr '\n' ' ' <"$TMP/load.err")"; }
      log "$n fill range $k: $out"
      M[fr$k,$n]=$out
    done
    M[rss_fr,$n]=$(bench_rss_kib "$pid")
  fi
  if [ -n "$CHECK_PERF" ]; then
    bench_wait_quiet
    rc=0
    "$ETCDCTL" --endpoints="${TARGET[$n]}" check perf --load="$CHECK_PERF" >"$TMP/$n-checkperf.out" 2>&1 || rc=$?
    tr '\r' '\n' <"$TMP/$n-checkperf.out" | grep -E 'PASS|FAIL|Slowest|Stddev|Error|error' >"$TMP/$n-checkperf.txt" || true
    log "$n check perf (exit $rc): $(tr '\n' ';' <"$TMP/$n-checkperf.txt")"
    M[cp_rc,$n]=$rc
    M[cp_tput,$n]=$(sed -n 's/.*Throughput[^0-9]*\([0-9]*\) writes.*/\1/p' "$TMP/$n-checkperf.txt" | head -1)
    M[cp_slow,$n]=$(sed -n 's/.*Slowest request took[^0-9]*\([0-9.]*\)s.*/\1/p' "$TMP/$n-checkperf.txt" | head -1)
    M[cp_std,$n]=$(sed -n 's/.*Stddev[^0-9]*\([0-9.]*\)s.*/\1/p' "$TMP/$n-checkperf.txt" | head -1)
    M[cp_verdict,$n]=$(grep -xE 'PASS|FAIL' "$TMP/$n-checkperf.txt" | tail -1 || true)
    [ -n "${M[cp_verdict,$n]}" ] || M[cp_verdict,$n]="error (exit $rc): $(grep -iE 'error' "$TMP/$n-checkperf.txt" | head -1)"
    M[rss_cp,$n]=$(bench_rss_kib "$pid")
  fi
  stop_server "$n" mem
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2fx", a / b; else printf "-" }'; }
ms() { [ -n "$1" ] && awk -v a="$1" 'BEGIN { printf "%.2f", a / 1000 }' || echo -; }
mib() { [ -n "$1" ] && [ "$1" != 0 ] && awk -v a="$1" 'BEGIN { printf "%.1f MiB", a / 1024 }' || echo -; }
goal() { # goal RATIO_VALUE OP LIMIT: "met" / "MISSED"
  [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ] || { echo ""; return; }
  awk -v a="$1" -v b="$2" -v op="$3" -v l="$4" 'BEGIN { r = a / b; ok = (op == ">=") ? r >= l : r <= l;
    printf "goal %s %sx: %s", op, l, ok ? "met" : "MISSED" }'
}
val() { kv "${R[$1,$2]:-}" "$3"; }
row() { printf '%-42s %18s %18s %9s  %s\n' "$@"; }
wv() { if [ "${R[$p,$1]:-}" = not-served ]; then echo "not served"; else ms "$(val "$p" "$1" "$2")"; fi; }
E=etcd K=keel

echo
echo "bench/store — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load client and servers on the same machine"
for n in $list; do echo "  $n = $(describe "$n")"; done
echo "durability: both fsync every acknowledged write (etcd: WAL fdatasync per raft batch; keel-store: group-committed WAL fdatasync)"
[ -n "$FSYNC" ] && echo "fsync floor on this filesystem (256 B write + fdatasync, 1 thread): preallocated file $(kv "$FSYNC" rate)/s, p50 $(ms "$(kv "$FSYNC" p50_us)") ms, p99 $(ms "$(kv "$FSYNC" p99_us)") ms; appending $(kv "$FSYNC" append_rate)/s, p50 $(ms "$(kv "$FSYNC" append_p50_us)") ms, p99 $(ms "$(kv "$FSYNC" append_p99_us)") ms"
grep -qw 1 <<<"$PHASES" && echo "phase 1 points interleaved between the servers; best of $REPEAT round(s) of ${DURATION}s after ${WARMUP}s warmup; other% = CPU used by unrelated processes meanwhile (100 = one core)"
echo
row "" "etcd" "keel-store" "keel/etcd" ""
if grep -qw 1 <<<"$PHASES"; then
for c in $CLIENTS; do
  p=put$c
  row "put, $c client(s): ops/s" "$(val $p $E rate)" "$(val $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
    "$(goal "$(val $p $K rate)" "$(val $p $E rate)" ">=" 3)"
  row "  p50 ms" "$(ms "$(val $p $E p50_us)")" "$(ms "$(val $p $K p50_us)")" "$(ratio "$(val $p $K p50_us)" "$(val $p $E p50_us)")" ""
  row "  p99 ms" "$(ms "$(val $p $E p99_us)")" "$(ms "$(val $p $K p99_us)")" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" \
    "$(goal "$(val $p $K p99_us)" "$(val $p $E p99_us)" "<=" 0.5)"
  row "  server CPU us/put" "$(val $p $E srv_us_per_op)" "$(val $p $K srv_us_per_op)" "$(ratio "$(val $p $K srv_us_per_op)" "$(val $p $E srv_us_per_op)")" \
    "other% $(val $p $E other_cpu_pct)/$(val $p $K other_cpu_pct)"
done
for k in key prefix; do
  p=range-$k
  label="range, one key"
  [ $k = prefix ] && label="range, 100-key prefix"
  row "$label ($RANGE_CLIENTS clients): ops/s" "$(val $p $E rate)" "$(val $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
    "other% $(val $p $E other_cpu_pct)/$(val $p $K other_cpu_pct)"
  row "  p50 / p99 ms" "$(ms "$(val $p $E p50_us)") / $(ms "$(val $p $E p99_us)")" "$(ms "$(val $p $K p50_us)") / $(ms "$(val $p $K p99_us)")" \
    "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" "(ratio of p99)"
done
for r in $WATCH_RATES; do
  p=watch$r
  for n in $E $K; do
    if grep -qw "$n" <<<"$WATCH_OFF"; then R[$p,$n]="not-served"; fi
  done
  row "watch $WATCHERS x $r puts/s: event p50 ms" "$(wv $E p50_us)" "$(wv $K p50_us)" "$(ratio "$(val $p $K p50_us)" "$(val $p $E p50_us)")" "from put sent"
  row "  event p99 ms" "$(wv $E p99_us)" "$(wv $K p99_us)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" \
    "$(goal "$(val $p $K p99_us)" "$(val $p $E p99_us)" "<=" 0.5)"
  row "  event p99 ms after put ack" "$(wv $E ack_p99_us)" "$(wv $K ack_p99_us)" "$(ratio "$(val $p $K ack_p99_us)" "$(val $p $E ack_p99_us)")" \
    "events received/expected: $(val "$p" $E events)/$(val "$p" $E expected), $(val "$p" $K events)/$(val "$p" $K expected)"
  row "  server CPU us/event" "$(val "$p" $E srv_us_per_op)" "$(val "$p" $K srv_us_per_op)" "$(ratio "$(val "$p" $K srv_us_per_op)" "$(val "$p" $E srv_us_per_op)")" \
    "other% $(val "$p" $E other_cpu_pct)/$(val "$p" $K other_cpu_pct)"
done
fi
row "RSS idle (fresh)" "$(mib "${M[idle,$E]:-}")" "$(mib "${M[idle,$K]:-}")" "$(ratio "${M[idle,$K]:-}" "${M[idle,$E]:-}")" ""
row "fill $FILL_KEYS x $FILL_VALUE B: puts/s" "$(kv "${M[fill,$E]:-}" rate)" "$(kv "${M[fill,$K]:-}" rate)" \
  "$(ratio "$(kv "${M[fill,$K]:-}" rate)" "$(kv "${M[fill,$E]:-}" rate)")" "$FILL_CLIENTS clients"
row "RSS right after fill" "$(mib "${M[rss0,$E]:-}")" "$(mib "${M[rss0,$K]:-}")" "$(ratio "${M[rss0,$K]:-}" "${M[rss0,$E]:-}")" ""
row "RSS ${SETTLE}s after fill (VmRSS)" "$(mib "${M[rss,$E]:-}")" "$(mib "${M[rss,$K]:-}")" "$(ratio "${M[rss,$K]:-}" "${M[rss,$E]:-}")" \
  "$(goal "${M[rss,$K]:-}" "${M[rss,$E]:-}" "<=" 0.25)"
row "  of which anon / file" "$(mib "${M[anon,$E]:-}") / $(mib "${M[file,$E]:-}")" "$(mib "${M[anon,$K]:-}") / $(mib "${M[file,$K]:-}")" "" ""
row "data dir on disk" "$(mib "${M[disk,$E]:-}")" "$(mib "${M[disk,$K]:-}")" "$(ratio "${M[disk,$K]:-}" "${M[disk,$E]:-}")" ""
if [ "$FILL_RANGE" = 1 ] && [ -n "${M[frkey,$E]:-}${M[frkey,$K]:-}" ]; then
  for k in key prefix; do
    label="range over the fill, one key"
    [ $k = prefix ] && label="range over the fill, 100 keys"
    e=${M[fr$k,$E]:-} c=${M[fr$k,$K]:-}
    row "$label: ops/s" "$(kv "$e" rate)" "$(kv "$c" rate)" "$(ratio "$(kv "$c" rate)" "$(kv "$e" rate)")" \
      "$FILL_VALUE B values; other% $(kv "$e" other_cpu_pct)/$(kv "$c" other_cpu_pct)"
    row "  p50 / p99 ms" "$(ms "$(kv "$e" p50_us)") / $(ms "$(kv "$e" p99_us)")" "$(ms "$(kv "$c" p50_us)") / $(ms "$(kv "$c" p99_us)")" \
      "$(ratio "$(kv "$c" p99_us)" "$(kv "$e" p99_us)")" "(ratio of p99)"
  done
  row "RSS after the fill ranges" "$(mib "${M[rss_fr,$E]:-}")" "$(mib "${M[rss_fr,$K]:-}")" "$(ratio "${M[rss_fr,$K]:-}" "${M[rss_fr,$E]:-}")" ""
fi
if [ -n "$CHECK_PERF" ]; then
  row "check perf --load=$CHECK_PERF: verdict" "${M[cp_verdict,$E]:-}" "${M[cp_verdict,$K]:-}" "" ""
  row "  writes/s" "${M[cp_tput,$E]:-}" "${M[cp_tput,$K]:-}" "$(ratio "${M[cp_tput,$K]:-}" "${M[cp_tput,$E]:-}")" "(rate-limited by etcdctl)"
  row "  slowest request s" "${M[cp_slow,$E]:-}" "${M[cp_slow,$K]:-}" "$(ratio "${M[cp_slow,$K]:-}" "${M[cp_slow,$E]:-}")" ""
  row "  stddev s" "${M[cp_std,$E]:-}" "${M[cp_std,$K]:-}" "$(ratio "${M[cp_std,$K]:-}" "${M[cp_std,$E]:-}")" ""
  row "RSS after check perf" "$(mib "${M[rss_cp,$E]:-}")" "$(mib "${M[rss_cp,$K]:-}")" "$(ratio "${M[rss_cp,$K]:-}" "${M[rss_cp,$E]:-}")" ""
fi
echo
if [ -n "$PROBLEMS" ]; then
  echo "PROBLEMS:"
  printf '%s' "$PROBLEMS"
  echo
fi
echo "total $((SECONDS - started))s. Reproduce:"
echo "  PHASES=\"$PHASES\" FILL_RANGE=$FILL_RANGE DURATION=$DURATION WARMUP=$WARMUP CLIENTS=\"$CLIENTS\" CHANNELS=$CHANNELS VALUE_SIZE=$VALUE_SIZE KEYS=$KEYS RANGE_CLIENTS=$RANGE_CLIENTS WATCHERS=$WATCHERS WATCH_RATES=\"$WATCH_RATES\" WATCH_DURATION=$WATCH_DURATION WATCH_CHANNELS=$WATCH_CHANNELS FILL_KEYS=$FILL_KEYS FILL_VALUE=$FILL_VALUE FILL_CLIENTS=$FILL_CLIENTS SETTLE=$SETTLE CHECK_PERF=$CHECK_PERF REPEAT=$REPEAT SERVERS=\"$SERVERS\" bench/store/run.sh"
echo "one point by hand:"
echo "  $BIN/services/store/keel-store --name=b --data-dir=/tmp/k --listen-client-urls=http://127.0.0.1:0 --ready-file=/tmp/k.ready &"
echo "  $BIN/bench/store/load --target=\$(sed -n 's/^grpc=//p' /tmp/k.ready) $(load_args put256)"
