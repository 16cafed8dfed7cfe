#!/bin/bash
# bench/apiserver/run.sh — keel-apiserver with keel-store and with etcd 3.4 as
# its store, on this machine, in one run, measured by one load client
# (bench/apiserver/load), with the same durability (both stores fsync every
# acknowledged write; keel-store's --unsafe-no-fsync is never used).
#
# Two stacks run side by side for the whole run, each on loopback with fresh
# data dirs in one temp dir: etcd + a keel-apiserver on it, keel-store + a
# keel-apiserver on it (apiservers with their default flags plus
# --anonymous-admin, so no authentication cost, and $APISERVER_FLAGS). Every
# point runs against one stack and at once against the other (the order
# alternates from point to point), so a machine shared with other work
# disturbs both alike. Points, in order, each REPEAT times:
#   create     PODS pods (~1 KiB each), CREATE_CLIENTS calls in flight (round 1
#              fills namespace "bench", which get and list then read)
#   create1    LAT_PODS pods, one call at a time (the latency floor)
#   get-cache  Get with resourceVersion "0" (watch cache), GET_CLIENTS in flight
#   get-store  Get with resourceVersion "" (consistent: a store read)
#   list-all   List namespace "bench" (PODS pods), one at a time, LIST_REPEAT times
#   list-sel   the same with label selector shard=3 (a tenth of them)
#   raw-create the store txn a create makes (create-if-absent of the same
#              bytes), straight to the store through common/etcd, as create
#   raw-create1 the same, one at a time, as create1
#   raw-get    the store range a consistent Get makes, as get-store
#   watch WxR  W watchers on Pods, a writer creating/updating R pods/s for
#              WATCH_DURATION s; event delivery p50/p99 (WATCH_POINTS)
# The best round per stack is kept (highest rate; lowest p50 for list and
# create1; lowest event p99 for watch). Then the apiservers and the stores are
# stopped with SIGTERM by pid; a daemon that does not exit cleanly, dies
# during the run, or a load error, is listed under PROBLEMS.
# Prints a table with keel-store/etcd ratios, the apiserver's overhead over raw
# store calls, the goals, and the command to reproduce it.
#
# Knobs (environment): PODS=10000 CREATE_CLIENTS=128 LAT_PODS=300 GET_CLIENTS=64
#   CHANNELS=2 DURATION=3 WARMUP=1 LIST_REPEAT=5 WATCH_POINTS="1000x20 10000x2"
#   WATCH_DURATION=5 WATCH_CHANNELS=8 REPEAT=2 SERVERS="etcd keel"
#   APISERVER_FLAGS="" QUIET_PCT=30 QUIET_WAIT=1 ETCD=/usr/bin/etcd
#   ETCDCTL=/usr/bin/etcdctl BAZEL=bazel NO_BUILD=1 (reuse the last build)
#   BIN=bazel-out/k8-opt/bin. BENCH_QUICK=1: small sizes for a quick check
#   (PODS=2000 LAT_PODS=100 DURATION=1 LIST_REPEAT=2 WATCH_POINTS="1000x20 10000x1"
#   WATCH_DURATION=2 REPEAT=1), each still overridable.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  : "${PODS:=2000}" "${LAT_PODS:=100}" "${DURATION:=1}" "${LIST_REPEAT:=2}"
  : "${WATCH_POINTS:=1000x20 10000x1}" "${WATCH_DURATION:=2}" "${REPEAT:=1}"
fi
PODS=${PODS:-10000}
CREATE_CLIENTS=${CREATE_CLIENTS:-128}
LAT_PODS=${LAT_PODS:-300}
GET_CLIENTS=${GET_CLIENTS:-64}
CHANNELS=${CHANNELS:-2}
DURATION=${DURATION:-3}
WARMUP=${WARMUP:-1}
LIST_REPEAT=${LIST_REPEAT:-5}
WATCH_POINTS=${WATCH_POINTS:-"1000x20 10000x2"}
WATCH_DURATION=${WATCH_DURATION:-5}
WATCH_CHANNELS=${WATCH_CHANNELS:-8}
REPEAT=${REPEAT:-2}
SERVERS=${SERVERS:-"etcd keel"}
APISERVER_FLAGS=${APISERVER_FLAGS:-}
QUIET_PCT=${QUIET_PCT:-30}
QUIET_WAIT=${QUIET_WAIT:-1}
ETCD=${ETCD:-/usr/bin/etcd}
ETCDCTL=${ETCDCTL:-/usr/bin/etcdctl}
BAZEL=${BAZEL:-bazel}
PY=/usr/bin/python3
export ETCDCTL_API=3
BENCH_NAME=apiserver
BENCH_QUIET_IRQ=1 # interrupt time counts as busy (the apiserver's loopback traffic)
# shellcheck source=bench/lib/bench.sh
. bench/lib/bench.sh # log, TMP, PID (etcd, keel, api-etcd, api-keel), PROBLEMS, the store daemons, kv

# ---------------------------------------------------------------- build
declare -A STORE_URL TARGET # by stack: etcd, keel

if [ "${NO_BUILD:-0}" != 1 ]; then
  log "building (-c opt) //bench/apiserver:load //services/apiserver:keel-apiserver //services/store:keel-store"
  "$BAZEL" build -c opt //bench/apiserver:load //services/apiserver:keel-apiserver //services/store:keel-store >&2
fi
# bazel-out/k8-opt is where -c opt builds land; `bazel info` would wait for
# any other Bazel command running in this workspace.
BIN=${BIN:-$ROOT/bazel-out/k8-opt/bin}
# Private copies: other builds in this tree cannot swap them mid-run.
LOAD=$(bench_copy "$BIN/bench/apiserver/load")
API=$(bench_copy "$BIN/services/apiserver/keel-apiserver")
have_keel=0
if [ -x "$BIN/services/store/keel-store" ]; then bench_copy "$BIN/services/store/keel-store" >/dev/null && have_keel=1; fi
KEEL=$TMP/keel-store
list=""
for n in $SERVERS; do
  case $n in
    keel) if [ $have_keel = 1 ]; then list="$list keel"; else log "no keel-store binary: keel skipped"; fi ;;
    etcd) if [ -x "$ETCD" ]; then list="$list etcd"; else log "no $ETCD: etcd skipped"; fi ;;
    *) log "unknown server $n"; exit 2 ;;
  esac
done
list=${list# }
[ -n "$list" ] || { log "nothing to measure"; exit 1; }

sum12() { sha256sum "$1" | cut -c1-12; }
describe() {
  case $1 in
    etcd) bench_etcd_version ;;
    keel) echo "keel-store (this tree, binary sha256 $(sum12 "$KEEL"))" ;;
    api) echo "keel-apiserver (this tree, binary sha256 $(sum12 "$API"))" ;;
  esac
}

# ---------------------------------------------------------------- daemons
start_store() { # start_store NAME: sets PID[NAME], STORE_URL[NAME] (as bench/store)
  bench_start_store "$1" "$TMP/$1" || return 1
  STORE_URL[$1]=$BENCH_URL
}

start_api() { # start_api STORE: keel-apiserver on that store; sets PID[api-STORE], TARGET[STORE]
  local s=$1 n=api-$1 dir=$TMP/api-$1 i
  mkdir -p "$dir"
  # shellcheck disable=SC2086
  "$API" --etcd-servers="${STORE_URL[$s]}" --anonymous-admin --http-listen= --ready-file="$dir/ready" \
    $APISERVER_FLAGS >"$dir/log" 2>&1 &
  PID[$n]=$!
  for i in $(seq 400); do
    if [ -s "$dir/ready" ]; then
      TARGET[$s]=$(sed -n 's/^grpc=//p' "$dir/ready")
      [ -n "${TARGET[$s]}" ] && return 0
    fi
    kill -0 "${PID[$n]}" 2>/dev/null || break
    sleep 0.05
  done
  log "keel-apiserver on $s did not become ready; its log:"
  tail -n 20 "$dir/log" >&2
  return 1
}

stop_daemon() { # stop_daemon NAME: SIGTERM by pid, SIGKILL after 10 s
  bench_stop_daemon "$1" "$1" "$TMP/$1/log" 5
}

# ---------------------------------------------------------------- points
SEL_COUNT=$(( (PODS + 6) / 10 )) # pods with index % 10 == 3 among 0..PODS-1
points="create create1 get-cache get-store list-all list-sel raw-create raw-create1 raw-get"
for w in $WATCH_POINTS; do points="$points watch$w"; done

load_args() { # load_args POINT ROUND STACK
  local p=$1 r=$2 s=$3 t="--target=${TARGET[$3]}" u="--store=${STORE_URL[$3]}"
  local pids="--server-pid=${PID[api-$s]} --store-pid=${PID[$s]}"
  local ns=bench
  [ "$r" -gt 1 ] && ns=bench-r$r
  case $p in
    create) echo "create $t $pids --ns=$ns --prefix=bench- --count=$PODS --clients=$CREATE_CLIENTS --channels=$CHANNELS" ;;
    create1) echo "create $t $pids --ns=bench-lat --prefix=r$r- --count=$LAT_PODS --clients=1 --channels=1" ;;
    get-cache) echo "get $t $pids --ns=bench --prefix=bench- --count=$PODS --rv=0 --clients=$GET_CLIENTS --channels=$CHANNELS --duration=$DURATION --warmup=$WARMUP" ;;
    get-store) echo "get $t $pids --ns=bench --prefix=bench- --count=$PODS --rv= --clients=$GET_CLIENTS --channels=$CHANNELS --duration=$DURATION --warmup=$WARMUP" ;;
    list-all) echo "list $t $pids --ns=bench --count=$PODS --repeat=$LIST_REPEAT" ;;
    list-sel) echo "list $t $pids --ns=bench --selector=shard=3 --count=$SEL_COUNT --repeat=$LIST_REPEAT" ;;
    raw-create) echo "raw $u $pids --op=create --ns=bench --prefix=r$r- --count=$PODS --clients=$CREATE_CLIENTS" ;;
    raw-create1) echo "raw $u $pids --op=create --ns=bench --prefix=r$r-one- --count=$LAT_PODS --clients=1" ;;
    raw-get) echo "raw $u $pids --op=get --ns=bench --prefix=bench- --count=$PODS --clients=$GET_CLIENTS --duration=$DURATION --warmup=$WARMUP" ;;
    watch*) local w=${p#watch}
      echo "watch $t $pids --ns=bench-watch --watchers=${w%x*} --rate=${w#*x} --duration=$WATCH_DURATION --channels=$WATCH_CHANNELS --warmup=1" ;;
  esac
}

better() { # better POINT NEW OLD: is NEW a better round than OLD?
  [ -z "$3" ] && return 0
  case $1 in
    watch*) awk -v a="$(kv "$2" p99_us)" -v b="$(kv "$3" p99_us)" -v m="$(kv "$2" missing)" 'BEGIN { exit !(m == 0 && a < b) }' ;;
    list*|create1|raw-create1) awk -v a="$(kv "$2" p50_us)" -v b="$(kv "$3" p50_us)" 'BEGIN { exit !(a < b) }' ;;
    *) awk -v a="$(kv "$2" rate)" -v b="$(kv "$3" rate)" 'BEGIN { exit !(a > b) }' ;;
  esac
}

started=$SECONDS
log "stacks: $list; points: $points; $REPEAT round(s)"
for n in $list; do
  start_store "$n" || exit 1
  start_api "$n" || exit 1
  log "$n at ${STORE_URL[$n]}, keel-apiserver on it at ${TARGET[$n]}"
done
declare -A R DEAD M # R[point,stack] = best load output; DEAD[stack] = why it stopped; M[key,stack]
for n in $list; do M[rss_idle,$n]=$(bench_rss_kib "${PID[api-$n]}"); done
order=$list
for round in $(seq "$REPEAT"); do
  for p in $points; do
    # Later rounds of create only measure: round 1 is the fill get and list read.
    for n in $order; do
      [ -n "${DEAD[$n]:-}" ] && continue
      for d in "$n" "api-$n"; do
        if ! kill -0 "${PID[$d]}" 2>/dev/null; then
          DEAD[$n]="$d died before $p (round $round)"
          wait "${PID[$d]}" 2>/dev/null && rc=0 || rc=$?
          bench_problem "$d died (exit status $rc) before $p, round $round; last log lines:
$(tail -n 15 "$TMP/$d/log" | sed 's/^/    /')"
          unset "PID[$d]"
        fi
      done
      [ -n "${DEAD[$n]:-}" ] && continue
      bench_wait_quiet
      args=$(load_args "$p" "$round" "$n")
      # shellcheck disable=SC2086
      out=$("$LOAD" $args 2>"$TMP/load.err") || {
        log "$n $p: load reported errors: $(tr '\n' ' ' <"$TMP/load.err")"
        bench_problem "$n $p (round $round): $(tr '\n' ' ' <"$TMP/load.err")"
      }
      # Watch streams the apiserver refused while they were set up (the load
      # client opens them again): keep the first status, for the notes.
      if grep -q "opened again" "$TMP/load.err"; then
        M[refused,$n]=$(sed -n 's/.*opened again (first: \(.*\))$/\1/p' "$TMP/load.err" | head -1)
      fi
      log "$n $p: $out"
      if [ -n "$out" ] && better "$p" "$out" "${R[$p,$n]:-}"; then R[$p,$n]=$out; fi
      [ "$p" = create ] && [ "$round" = 1 ] && M[rss_fill,$n]=$(bench_rss_kib "${PID[api-$n]}")
    done
    order=$(tr ' ' '\n' <<<"$order" | tac | tr '\n' ' ') # alternate who goes first
  done
done
for n in $list; do
  M[rss_end,$n]=$(bench_rss_kib "${PID[api-$n]:-0}")
  stop_daemon "api-$n"
  stop_daemon "$n"
done

# ---------------------------------------------------------------- report
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2fx", a / b; else printf "-" }'; }
ms() { [ -n "$1" ] && awk -v a="$1" 'BEGIN { printf "%.1f", a / 1000 }' || echo -; }
mib() { [ -n "$1" ] && [ "$1" != 0 ] && awk -v a="$1" 'BEGIN { printf "%.0f MiB", a / 1024 }' || echo -; }
val() { kv "${R[$1,$2]:-}" "$3"; }
row() { printf '%-46s %21s %21s %9s  %s\n' "$@"; }
E=etcd K=keel
cell() { # cell POINT STACK KEY [ms]: the value or "-"
  local v; v=$(val "$1" "$2" "$3")
  if [ -z "$v" ]; then echo -; elif [ "${4:-}" = ms ]; then ms "$v"; else echo "$v"; fi
}
trio() { echo "$(cell "$1" "$2" p50_us ms) / $(cell "$1" "$2" p99_us ms) / $(cell "$1" "$2" max_us ms)"; }
goal_min() { # goal_min VALUE LIMIT UNIT: keel-store stack against an absolute goal
  [ -n "$1" ] || { echo ""; return; }
  awk -v a="$1" -v l="$2" -v u="$3" 'BEGIN { printf("goal >= %s%s: %s", l, u, (a >= l) ? "met" : "MISSED") }'
}
goal_max_ms() { # goal_max_ms VALUE_US LIMIT_MS
  [ -n "$1" ] || { echo ""; return; }
  awk -v a="$1" -v l="$2" 'BEGIN { printf("goal p99 <= %s ms: %s", l, (a / 1000 <= l) ? "met" : "MISSED") }'
}
slo() { # slo P99_US: against Kubernetes' 1 s p99 for mutating calls
  [ -n "$1" ] || { echo ""; return; }
  awk -v a="$1" 'BEGIN { printf("SLO 1 s p99: %s (%.0fx inside)", (a < 1e6) ? "met" : "MISSED", 1e6 / ((a > 0) ? a : 1)) }'
}
cpu_row() { # cpu_row POINT LABEL
  row "$2" "$(cell "$1" $E srv_us_per_op) / $(cell "$1" $E store_us_per_op)" \
    "$(cell "$1" $K srv_us_per_op) / $(cell "$1" $K store_us_per_op)" "" \
    "apiserver / store CPU us per op; cli $(cell "$1" $E cli_us_per_op)/$(cell "$1" $K cli_us_per_op); other% $(cell "$1" $E other_cpu_pct)/$(cell "$1" $K other_cpu_pct)"
}

echo
echo "bench/apiserver — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r); load client, apiservers and stores share the machine"
for n in $list; do echo "  $n = $(describe "$n")"; done
echo "  apiserver = $(describe api), default flags + --anonymous-admin${APISERVER_FLAGS:+ $APISERVER_FLAGS}"
echo "durability: both stores fsync every acknowledged write (etcd: WAL fdatasync per raft batch; keel-store: group-committed WAL fdatasync)"
echo "best of $REPEAT round(s), points interleaved between the stacks; pods ~$(cell create $K obj_bytes) B as returned; latencies p50 / p99 / max in ms"
echo "other% = CPU used by unrelated processes meanwhile (100 = one core); when high, distrust that row"
echo
row "" "apiserver on etcd" "apiserver on keel" "keel/etcd" ""
p=create
row "create $PODS pods, $CREATE_CLIENTS in flight: pods/s" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
  "$(goal_min "$(val $p $K rate)" 10000 /s)"
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" "$(slo "$(val $p $K p99_us)")"
cpu_row $p "  CPU us per create"
p=create1
row "create, 1 in flight: pods/s" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" ""
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" "$(slo "$(val $p $K p99_us)")"
p=get-cache
row "get rv=0 (watch cache), $GET_CLIENTS in flight: gets/s" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
  "$(goal_min "$(val $p $K rate)" 50000 /s)"
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" ""
cpu_row $p "  CPU us per get"
p=get-store
row "get rv=\"\" (consistent), $GET_CLIENTS in flight: gets/s" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
  "$(goal_min "$(val $p $K rate)" 50000 /s)"
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" ""
cpu_row $p "  CPU us per get"
p=list-all
row "list $PODS pods (rv=\"\"): ms min / p50 / max" "$(cell $p $E min_us ms) / $(cell $p $E p50_us ms) / $(cell $p $E max_us ms)" \
  "$(cell $p $K min_us ms) / $(cell $p $K p50_us ms) / $(cell $p $K max_us ms)" "$(ratio "$(val $p $K p50_us)" "$(val $p $E p50_us)")" \
  "items $(cell $p $E items)/$(cell $p $K items), $(cell $p $K bytes) bytes"
p=list-sel
row "list, labelSelector shard=3: ms min / p50 / max" "$(cell $p $E min_us ms) / $(cell $p $E p50_us ms) / $(cell $p $E max_us ms)" \
  "$(cell $p $K min_us ms) / $(cell $p $K p50_us ms) / $(cell $p $K max_us ms)" "$(ratio "$(val $p $K p50_us)" "$(val $p $E p50_us)")" \
  "items $(cell $p $E items)/$(cell $p $K items), $(cell $p $K bytes) bytes"
for w in $WATCH_POINTS; do
  p=watch$w
  W=${w%x*} RT=${w#*x}
  gl=""
  [ "$W" -ge 10000 ] && gl=$(goal_max_ms "$(val $p $K p99_us)" 100)
  row "watch $W watchers x $RT writes/s: event ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" \
    "from the write's send; $gl"
  row "  from the write's answer: p50 / p99 ms" "$(cell $p $E ack_p50_us ms) / $(cell $p $E ack_p99_us ms)" \
    "$(cell $p $K ack_p50_us ms) / $(cell $p $K ack_p99_us ms)" "" \
    "write p99 ms $(cell $p $E write_p99_us ms)/$(cell $p $K write_p99_us ms)"
  row "  events received / expected (missing)" "$(cell $p $E events)/$(cell $p $E expected) ($(cell $p $E missing))" \
    "$(cell $p $K events)/$(cell $p $K expected) ($(cell $p $K missing))" "" \
    "setup s $(cell $p $E setup_s)/$(cell $p $K setup_s), refused+reopened $(cell $p $E setup_restarts)/$(cell $p $K setup_restarts)"
  row "  apiserver CPU us per event; RSS watching" "$(cell $p $E srv_us_per_op); $(mib "$(val $p $E srv_rss_kib_watching)")" \
    "$(cell $p $K srv_us_per_op); $(mib "$(val $p $K srv_rss_kib_watching)")" "" \
    "cli us/event $(cell $p $E cli_us_per_op)/$(cell $p $K cli_us_per_op); other% $(cell $p $E other_cpu_pct)/$(cell $p $K other_cpu_pct)"
done
p=raw-create
row "raw store: create txns/s, $CREATE_CLIENTS in flight" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" \
  "value $(cell $p $K value_bytes) B ($(cell $p $K template) template)"
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" ""
row "  apiserver overhead: raw / apiserver create rate" "$(ratio "$(val $p $E rate)" "$(val create $E rate)")" \
  "$(ratio "$(val $p $K rate)" "$(val create $K rate)")" "" "p50 apiserver/raw $(ratio "$(val create $E p50_us)" "$(val $p $E p50_us)") / $(ratio "$(val create $K p50_us)" "$(val $p $K p50_us)")"
p=raw-create1
row "raw store: create, 1 in flight: latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" ""
row "  apiserver overhead: apiserver / raw p50" "$(ratio "$(val create1 $E p50_us)" "$(val $p $E p50_us)")" \
  "$(ratio "$(val create1 $K p50_us)" "$(val $p $K p50_us)")" "" ""
p=raw-get
row "raw store: get (range), $GET_CLIENTS in flight: /s" "$(cell $p $E rate)" "$(cell $p $K rate)" "$(ratio "$(val $p $K rate)" "$(val $p $E rate)")" ""
row "  latency ms" "$(trio $p $E)" "$(trio $p $K)" "$(ratio "$(val $p $K p99_us)" "$(val $p $E p99_us)")" ""
row "  apiserver overhead: raw / consistent get rate" "$(ratio "$(val $p $E rate)" "$(val get-store $E rate)")" \
  "$(ratio "$(val $p $K rate)" "$(val get-store $K rate)")" "" "cache get / raw get: $(ratio "$(val get-cache $E rate)" "$(val $p $E rate)") / $(ratio "$(val get-cache $K rate)" "$(val $p $K rate)")"
row "apiserver RSS: idle / after fill / at end" "$(mib "${M[rss_idle,$E]:-}") / $(mib "${M[rss_fill,$E]:-}") / $(mib "${M[rss_end,$E]:-}")" \
  "$(mib "${M[rss_idle,$K]:-}") / $(mib "${M[rss_fill,$K]:-}") / $(mib "${M[rss_end,$K]:-}")" "" ""
echo
for n in $list; do
  [ -n "${M[refused,$n]:-}" ] &&
    echo "note: the apiserver on $n refused watch streams while they were being set up (counted above as refused+reopened; the client opens them again after 100 ms); first status: ${M[refused,$n]}"
done
if [ -n "$PROBLEMS" ]; then
  echo "PROBLEMS:"
  printf '%s' "$PROBLEMS"
  echo
fi
echo "total $((SECONDS - started))s. Reproduce:"
echo "  PODS=$PODS CREATE_CLIENTS=$CREATE_CLIENTS LAT_PODS=$LAT_PODS GET_CLIENTS=$GET_CLIENTS CHANNELS=$CHANNELS DURATION=$DURATION WARMUP=$WARMUP LIST_REPEAT=$LIST_REPEAT WATCH_POINTS=\"$WATCH_POINTS\" WATCH_DURATION=$WATCH_DURATION WATCH_CHANNELS=$WATCH_CHANNELS REPEAT=$REPEAT SERVERS=\"$SERVERS\"${APISERVER_FLAGS:+ APISERVER_FLAGS=\"$APISERVER_FLAGS\"} bench/apiserver/run.sh"
echo "one point by hand:"
echo "  $BIN/services/store/keel-store --name=b --data-dir=/tmp/k --listen-client-urls=http://127.0.0.1:0 --ready-file=/tmp/k.ready &"
echo "  $BIN/services/apiserver/keel-apiserver --etcd-servers=\$(sed -n 's/^client-url=//p' /tmp/k.ready) --anonymous-admin --http-listen= --ready-file=/tmp/a.ready &"
echo "  $BIN/bench/apiserver/load create --target=\$(sed -n 's/^grpc=//p' /tmp/a.ready) --count=$PODS --clients=$CREATE_CLIENTS --channels=$CHANNELS"
