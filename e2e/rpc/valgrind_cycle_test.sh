#!/usr/bin/env bash
# keel-echo under valgrind memcheck: a plain daemon (TCP + unix listener) and a
# mutual-TLS daemon take one of every call (echo_calls.py: every RPC kind, errors,
# deadline, cancel, oversize, health, reflection v1/v1alpha, refused TLS clients)
# plus /metrics and /healthz, then SIGTERM. Each must exit 0: no memcheck error
# and no definitely/indirectly lost block (--error-exitcode=99).
# Tagged "valgrind": the runner skips it in the sanitizer pass.
# usage: valgrind_cycle_test.sh KEEL_ECHO ECHO_PROTO HEALTH_PROTO
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=e2e/testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

BIN="$1" ECHO_PROTO="$2" HEALTH_PROTO="$3"
if [ "${KEEL_SANITIZED:-0}" = "1" ]; then
  echo "FAIL: valgrind_cycle cannot run on a sanitized build (exclude the 'valgrind' tag)"
  exit 1
fi

keel_init
certs="$KEEL_TMP/certs"
bash "$HERE/../testlib/certs.sh" "$certs" || exit 1
sock="$(keel_sock_dir)/echo.sock"

# shellcheck disable=SC2054 # commas are inside valgrind options
VG=(valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=40
  --track-origins=yes)
# Every daemon links jemalloc: point memcheck's malloc replacement at it, or
# it would see none of the daemon's allocations.
if ldd "$BIN" 2>/dev/null | grep -q 'libjemalloc'; then
  VG+=("--soname-synonyms=somalloc=*jemalloc*")
elif nm "$BIN" 2>/dev/null | grep -q ' T je_malloc\| T mallocx'; then
  VG+=("--soname-synonyms=somalloc=NONE")
fi

keel_start plain "${VG[@]}" "--log-file=$KEEL_TMP/plain/valgrind.log" "$BIN" \
  --listen=127.0.0.1:0 "--listen=unix:$sock" --http-listen=127.0.0.1:0
keel_start mtls "${VG[@]}" "--log-file=$KEEL_TMP/mtls/valgrind.log" "$BIN" \
  --listen=127.0.0.1:0 --http-listen=127.0.0.1:0 "--tls-cert=$certs/server.pem" \
  "--tls-key=$certs/server.key" "--tls-client-ca=$certs/ca.pem"
for d in plain mtls; do keel_wait_ready "$d" 180 || exit 1; done

calls() { "$KEEL_PYTHON" "$HERE/echo_calls.py" "$ECHO_PROTO" "$HEALTH_PROTO" "$@"; }
calls "$(keel_grpc_addr plain 1)"
keel_check "plain TCP: every call kind" test $? -eq 0
calls "$(keel_grpc_addr plain 2)"
keel_check "plain unix socket: every call kind" test $? -eq 0
calls "$(keel_grpc_addr mtls 1)" --tls "$certs"
keel_check "mTLS: every call kind, refused clients" test $? -eq 0

for d in plain mtls; do
  http="$(keel_http_addr "$d")"
  keel_check "$d: /metrics answers 200 with keel_rpc_server_handled_total" \
    bash -c "curl -sS --noproxy '*' --max-time 60 -f 'http://$http/metrics' | grep -q '^keel_rpc_server_handled_total'"
  keel_check "$d: /healthz says ok" \
    bash -c "curl -sS --noproxy '*' --max-time 60 -f 'http://$http/healthz' | grep -qx 'ok'"
done

# SIGTERM the plain daemon with streams and slow calls still open: the
# shutdown path (streams ended with UNAVAILABLE, grace, cancel) must not leak.
marker="$KEEL_TMP/held"
calls "$(keel_grpc_addr plain 1)" --hold "$marker" &
holder=$!
deadline=$((SECONDS + 120))
while [ ! -e "$marker" ] && kill -0 "$holder" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
  sleep 0.1
done
keel_check "streams and slow calls open before SIGTERM" test -e "$marker"

for d in plain mtls; do
  keel_stop "$d" 120
  rc=$?
  vlog="$KEEL_TMP/$d/valgrind.log"
  keel_check "$d: exits 0 under valgrind after SIGTERM (got $rc; 99 = memcheck errors or leaks)" \
    test "$rc" -eq 0
  grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost' "$vlog" | sed "s/^/$d: /"
  if [ "$rc" -ne 0 ]; then
    echo "----- $d valgrind log -----"
    cat "$vlog"
    keel_dump_log "$d"
  fi
done
wait "$holder"
keel_check "every held call got a status from the shutting-down server" test $? -eq 0
keel_finish
