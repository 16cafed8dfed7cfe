#!/usr/bin/env bash
# keel-store driven by etcdctl 3.4 (ETCDCTL_API=3, /usr/bin/etcdctl): KV commands
# with etcd's exact outputs and error texts, endpoint status and member list,
# the unix socket and metrics listeners, request size limits, mutual TLS, flag
# errors, and crash recovery: kill -9, restart on the same data dir, and every
# acknowledged write is back with the same revision.
# usage: keel_etcdctl_test.sh KEEL_STORE
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

STORE="$(realpath "${1:?usage: keel_etcdctl_test.sh KEEL_STORE}")"
ETCDCTL=/usr/bin/etcdctl
export ETCDCTL_API=3
keel_init

EP=""
ctl() { "$ETCDCTL" --endpoints="$EP" --dial-timeout=3s --command-timeout=8s "$@"; }
# The last "Error: ..." line etcdctl printed on stderr.
ctl_error() { ctl "$@" 2>&1 >/dev/null | sed -n 's/^Error: //p' | tail -n1; }
json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# expect_eq DESCRIPTION WANT GOT
expect_eq() {
  if [ "$2" == "$3" ]; then
    keel_pass "$1"
  else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}

DATA="$(keel_dir data)"
SOCK="$(keel_sock_dir)/store.sock"
NAME=etcdctl-e2e
PEER=http://127.0.0.1:2380
start_store() { # extra flags...
  keel_start store "$STORE" --name="$NAME" --data-dir="$DATA" \
    --listen-client-urls="http://127.0.0.1:0,unix://$SOCK" \
    --listen-peer-urls="$PEER" --initial-advertise-peer-urls="$PEER" \
    --initial-cluster="$NAME=$PEER" --initial-cluster-state=new \
    --initial-cluster-token=e2e --listen-metrics-urls=http://127.0.0.1:0 "$@"
  keel_wait_ready store 20 || { keel_finish; exit 1; }
  EP="$(keel_grpc_addr store 1)"
}

# ------------------------------------------------------------------ KV
start_store
expect_eq "put" "OK" "$(ctl put k1 v1)"
R1=$(ctl put k1 v2 -w json | json_get 'd["header"]["revision"]')
expect_eq "get" $'k1\nv2' "$(ctl get k1)"
expect_eq "get --rev (the older value)" $'k1\nv1' "$(ctl get k1 --rev=$((R1 - 1)))"
ctl put p/a A >/dev/null && ctl put p/b B >/dev/null && ctl put p/c C >/dev/null && ctl put p/b B2 >/dev/null
expect_eq "get --prefix" $'p/a\nA\np/b\nB2\np/c\nC' "$(ctl get p/ --prefix)"
expect_eq "get --prefix --limit=2" $'p/a\nA\np/b\nB2' "$(ctl get p/ --prefix --limit=2)"
expect_eq "get --sort-by=MODIFY --order=DESCEND --keys-only" $'p/b\n\np/c\n\np/a' \
  "$(ctl get p/ --prefix --sort-by=MODIFY --order=DESCEND --keys-only)"
expect_eq "get --keys-only" $'p/a\n\np/b\n\np/c' "$(ctl get p/ --prefix --keys-only)"
expect_eq "get --print-value-only" $'A\nB2\nC' "$(ctl get p/ --prefix --print-value-only)"
expect_eq "get KEY RANGE_END" $'p/a\nA\np/b\nB2' "$(ctl get p/a p/c)"
J=$(ctl get p/ --prefix --limit=1 -w json)
expect_eq "get -w json: count and more" "3 True" "$(echo "$J" | json_get '"%d %s" % (d["count"], d["more"])')"
expect_eq "get -w json: create/mod revision and version of p/b" "$((R1 + 2)) $((R1 + 4)) 2" \
  "$(ctl get p/b -w json | json_get '"%d %d %d" % (d["kvs"][0]["create_revision"], d["kvs"][0]["mod_revision"], d["kvs"][0]["version"])')"
expect_eq "del --prev-kv" $'1\np/a\nA' "$(ctl del --prev-kv p/a)"
expect_eq "del of a missing key" "0" "$(ctl del nothing)"
expect_eq "txn: success branch" $'SUCCESS\n\nOK\n\np/b\nB2' \
  "$(printf 'value("p/b") = "B2"\nversion("p/c") = "1"\n\nput t/ok yes\nget p/b\n\nput t/fail no\n\n' | ctl txn)"
expect_eq "txn: failure branch" $'FAILURE\n\nOK' \
  "$(printf 'value("p/b") = "nope"\n\nput t/ok yes\n\nput t/fail no\n\n' | ctl txn)"
expect_eq "txn: what each branch wrote" $'t/fail\n\nt/ok' "$(ctl get t/ --prefix --keys-only)"
expect_eq "put of an empty key" "etcdserver: key is not provided" "$(ctl_error put '' x)"

# ------------------------------------------------------------------ compaction
RC=$(ctl put c/k x -w json | json_get 'd["header"]["revision"]')
expect_eq "compact" "compacted revision $RC" "$(ctl compact "$RC")"
expect_eq "get below the compacted revision" "etcdserver: mvcc: required revision has been compacted" \
  "$(ctl_error get k1 --rev=$((RC - 1)))"
expect_eq "compact again at the same revision" "etcdserver: mvcc: required revision has been compacted" \
  "$(ctl_error compact "$RC")"
expect_eq "get at a future revision" "etcdserver: mvcc: required revision is a future revision" \
  "$(ctl_error get k1 --rev=$((RC + 1000)))"
expect_eq "get at the compacted revision itself" $'k1\nv2' "$(ctl get k1 --rev="$RC")"

# ------------------------------------------------------------------ status, members, listeners
J=$(ctl endpoint status -w json)
expect_eq "endpoint status: endpoint, version" "$EP 3.4.23" \
  "$(echo "$J" | json_get '"%s %s" % (d[0]["Endpoint"], d[0]["Status"]["version"])')"
expect_eq "endpoint status: leads itself, revision, raft term" "True $RC True" \
  "$(echo "$J" | json_get '(lambda s: "%s %d %s" % (s["leader"] == s["header"]["member_id"], s["header"]["revision"], s["raftTerm"] > 0 and s["raftIndex"] > 0 and s["dbSize"] > 0))(d[0]["Status"])')"
MEMBER_HEX=$(echo "$J" | json_get '"%x" % d[0]["Status"]["header"]["member_id"]')
expect_eq "endpoint status (simple)" "$EP, $MEMBER_HEX, 3.4.23, " "$(ctl endpoint status | cut -d, -f1-3), "
OUT=$(ctl endpoint health 2>&1)
if [[ "$OUT" == "$EP is healthy: successfully committed proposal"* ]]; then
  keel_pass "endpoint health"
else
  keel_fail "endpoint health"
fi
expect_eq "member list" "$MEMBER_HEX, started, $NAME, $PEER, http://$EP,unix://$SOCK, false" "$(ctl member list)"
expect_eq "member list -w json: header revision 0, one member" "0 1" \
  "$(ctl member list -w json | json_get '"%d %d" % (d["header"].get("revision", 0), len(d["members"]))')"
expect_eq "get over the unix socket" $'k1\nv2' \
  "$("$ETCDCTL" --endpoints="unix://$SOCK" --dial-timeout=3s get k1)"
HTTP="$(keel_http_addr store)"
expect_eq "/healthz" "ok" "$(curl -sf "http://$HTTP/healthz")"
expect_eq "/metrics: keel_store_revision" "keel_store_revision $RC" \
  "$(curl -sf "http://$HTTP/metrics" | grep '^keel_store_revision ')"
expect_eq "/metrics: the watch fan-out's gauges" "3" \
  "$(curl -sf "http://$HTTP/metrics" | grep -c '^keel_store_watch_\(fanout_pending\|fanout_overflowed\|events_held_back\) [0-9]')"
# A live watch sees a put made after it started (bounded by timeout: a watch
# never ends by itself).
WATCHED="$(keel_dir watched)"
ETCDCTL_API=3 timeout 5 "$ETCDCTL" --endpoints="$EP" watch w/key >"$WATCHED" 2>/dev/null &
WATCH_PID=$!
for _ in $(seq 50); do
  ctl put w/key seen >/dev/null
  grep -q seen "$WATCHED" 2>/dev/null && break
  sleep 0.1
done
kill "$WATCH_PID" 2>/dev/null
wait "$WATCH_PID" 2>/dev/null
expect_eq "watch: a live watch sees the put" "PUT w/key seen" "$(head -n3 "$WATCHED" | tr '\n' ' ' | sed 's/ $//')"

# ------------------------------------------------------------------ request size
BIG="$(keel_dir big)"
head -c $((1600 * 1024)) /dev/zero | tr '\0' x >"$BIG"
expect_eq "put of a 1.6 MiB value: request too large" "etcdserver: request is too large" \
  "$(ctl put big <"$BIG" 2>&1 >/dev/null | sed -n 's/^Error: //p' | tail -n1)"
head -c $((1024 * 1024)) /dev/zero | tr '\0' x >"$BIG"
expect_eq "put of a 1 MiB value" "OK" "$(ctl put big <"$BIG")"
expect_eq "get of the 1 MiB value" "$((1024 * 1024))" "$(ctl get big --print-value-only | tr -d '\n' | wc -c)"

# ------------------------------------------------------------------ crash recovery
# Writers record every acknowledged put (key, revision); SIGKILL lands while
# they run. After a restart every acknowledged key must hold its revision.
ACKED="$(keel_dir acked)"
: >"$ACKED"
writer() { # id
  local i=0 rev
  while :; do
    rev=$(ctl put "crash/$1/$i" "v$i" -w json 2>/dev/null | sed -n 's/.*"revision":\([0-9]*\).*/\1/p')
    [ -n "$rev" ] || break
    echo "crash/$1/$i $rev" >>"$ACKED"
    i=$((i + 1))
  done
}
writer 1 &
W1=$!
writer 2 &
W2=$!
sleep 1.5
keel_stop store 10 KILL
wait "$W1" "$W2"
NACK=$(wc -l <"$ACKED")
keel_log "acknowledged before SIGKILL: $NACK puts"
expect_eq "writes were acknowledged before the kill" "yes" "$([ "$NACK" -ge 5 ] && echo yes || echo no)"
start_store
LOST=0
while read -r key rev; do
  got=$(ctl get "$key" -w json | json_get 'd["kvs"][0]["mod_revision"] if d.get("kvs") else 0')
  if [ "$got" != "$rev" ]; then
    LOST=$((LOST + 1))
    echo "  $key: acknowledged at revision $rev, after restart: $got"
  fi
done <"$ACKED"
expect_eq "every acknowledged put is back at its revision ($NACK)" "0" "$LOST"
expect_eq "after restart: keys written before the crash" $'k1\nv2' "$(ctl get k1)"
expect_eq "after restart: the compaction is kept" "etcdserver: mvcc: required revision has been compacted" \
  "$(ctl_error get k1 --rev=$((RC - 1)))"
MAXREV=$(sort -k2 -n "$ACKED" | tail -n1 | cut -d' ' -f2)
NOW=$(ctl get k1 -w json | json_get 'd["header"]["revision"]')
expect_eq "after restart: revision not behind the last acknowledged one" "yes" \
  "$([ "$NOW" -ge "${MAXREV:-0}" ] && echo yes || echo no)"
NEXT=$(ctl put after/crash x -w json | json_get 'd["header"]["revision"]')
expect_eq "after restart: the next write takes the next revision" "$((NOW + 1))" "$NEXT"
keel_stop store 10
expect_eq "SIGTERM: exit status 0" "0" "$?"

# ------------------------------------------------------------------ flag errors
flag_error() { # description want-substring flags...
  local what="$1" want="$2"
  shift 2
  local out rc
  out=$(timeout 10 "$STORE" --data-dir="$(keel_dir flagdata)" "$@" 2>&1)
  rc=$?
  if [ "$rc" -eq 2 ] && [[ "$out" == *"$want"* ]]; then
    keel_pass "$what"
  else
    keel_fail "$what"
    printf '  status %d, output: %s\n' "$rc" "$out"
  fi
}
flag_error "a second member in --initial-cluster" "flag --initial-cluster: keel-store runs a single member" \
  --name=a --initial-advertise-peer-urls=http://127.0.0.1:2380 \
  --initial-cluster=a=http://127.0.0.1:2380,b=http://127.0.0.1:2381
flag_error "--initial-cluster URLs that are not this member's peer URLs" \
  "flag --initial-cluster: has a=http://127.0.0.1:2390 but it is missing from --initial-advertise-peer-urls" \
  --name=a --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=a=http://127.0.0.1:2390
flag_error "a bad URL scheme" "flag --listen-client-urls: URL scheme must be http, https, unix, or unixs: tcp://127.0.0.1:0" \
  --listen-client-urls=tcp://127.0.0.1:0
flag_error "https without a certificate" "needs --cert-file and --key-file" \
  --listen-client-urls=https://127.0.0.1:0
flag_error "--initial-cluster-state" "flag --initial-cluster-state" --initial-cluster-state=maybe
flag_error "--auto-compaction-mode" "unknown auto-compaction-mode" --auto-compaction-mode=daily
flag_error "an unknown flag" "unknown flag" --no-such-flag=1

# ------------------------------------------------------------------ mutual TLS
CERTS="$(keel_dir certs)"
bash "$HERE/../testlib/certs.sh" "$CERTS"
keel_start tls "$STORE" --name=tls --data-dir="$(keel_dir tlsdata)" \
  --listen-client-urls=https://127.0.0.1:0 --cert-file="$CERTS/server.pem" \
  --key-file="$CERTS/server.key" --trusted-ca-file="$CERTS/ca.pem" --client-cert-auth \
  --auto-compaction-mode=revision --auto-compaction-retention=1000 --snapshot-count=5000 \
  --max-request-bytes=1048576 --unsafe-no-fsync --log-format=json
if keel_wait_ready tls 20; then
  TLS_EP="https://$(keel_grpc_addr tls 1)"
  tctl() { "$ETCDCTL" --endpoints="$TLS_EP" --dial-timeout=3s --command-timeout=5s --cacert="$CERTS/ca.pem" "$@"; }
  expect_eq "mTLS: put with a client certificate" "OK" \
    "$(tctl --cert="$CERTS/client.pem" --key="$CERTS/client.key" put tk tv)"
  expect_eq "mTLS: get with a client certificate" $'tk\ntv' \
    "$(tctl --cert="$CERTS/client.pem" --key="$CERTS/client.key" get tk)"
  if tctl get tk >/dev/null 2>&1; then keel_fail "mTLS: no client certificate is refused"; else keel_pass "mTLS: no client certificate is refused"; fi
  if tctl --cert="$CERTS/other-client.pem" --key="$CERTS/other-client.key" get tk >/dev/null 2>&1; then
    keel_fail "mTLS: a certificate from another CA is refused"
  else
    keel_pass "mTLS: a certificate from another CA is refused"
  fi
  if "$ETCDCTL" --endpoints="$(keel_grpc_addr tls 1)" --dial-timeout=2s --command-timeout=3s get tk >/dev/null 2>&1; then
    keel_fail "mTLS: a plaintext client is refused"
  else
    keel_pass "mTLS: a plaintext client is refused"
  fi
  head -c $((1100 * 1024)) /dev/zero | tr '\0' x >"$BIG"
  expect_eq "--max-request-bytes=1048576: a 1.1 MiB put is too large" "etcdserver: request is too large" \
    "$(tctl --cert="$CERTS/client.pem" --key="$CERTS/client.key" put big <"$BIG" 2>&1 >/dev/null | sed -n 's/^Error: //p' | tail -n1)"
  # Past 1 MiB + 512 KiB the server's gRPC limit refuses the message itself
  # (etcdctl's own send limit is 2 MiB, so the default server limit is out of
  # its reach; kv_service_test covers that one).
  head -c $((1600 * 1024)) /dev/zero | tr '\0' x >"$BIG"
  OUT=$(tctl --cert="$CERTS/client.pem" --key="$CERTS/client.key" put big <"$BIG" 2>&1)
  if [[ "$OUT" == *"code = ResourceExhausted desc = "*"larger than max"* && "$OUT" != *"trying to send"* ]]; then
    keel_pass "--max-request-bytes=1048576: a 1.6 MiB put exceeds the server's gRPC limit"
  else
    keel_fail "--max-request-bytes=1048576: a 1.6 MiB put exceeds the server's gRPC limit"
    echo "  $OUT"
  fi
  if grep -q -- '"msg":"auto compaction on"' "$(keel_log_file tls)"; then
    keel_pass "auto compaction flags: accepted and turned on"
  else
    keel_fail "auto compaction flags: accepted and turned on"
  fi
  keel_stop tls 10
  expect_eq "tls: SIGTERM exit status 0" "0" "$?"
else
  keel_fail "keel-store with mutual TLS did not start"
fi

keel_finish
