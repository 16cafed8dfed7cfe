#!/usr/bin/env bash
# keel-apiserver's REST gateway over HTTPS with client certificates, as the
# gRPC side: the certificate's CN is the user and its O entries the groups.
# An admin's certificate creates, a viewer's is refused with 403 naming the
# user, no certificate (and no token) is 401, a certificate from another CA is
# 401, and a token still works over HTTPS.
# usage: rest_tls_test.sh KEEL_APISERVER KEEL_STORE
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

APISERVER="$(realpath "${1:?usage: rest_tls_test.sh KEEL_APISERVER KEEL_STORE}")"
STORE="$(realpath "${2:?usage}")"
keel_init

expect_eq() {
  if [ "$2" == "$3" ]; then keel_pass "$1"; else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}
json_get() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

CERTS="$(keel_dir certs)"
bash "$HERE/../testlib/certs.sh" "$CERTS" || keel_finish
# Client certificates with groups: O=keel:admins and O=keel:viewers.
leaf() { # name subject
  (cd "$CERTS" && export OPENSSL_CONF=/dev/null &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null &&
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null &&
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$1.ext" &&
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
      -days 2 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null)
}
leaf admin "/O=keel:admins/CN=alice" || keel_finish
leaf viewer "/O=keel:viewers/CN=bob" || keel_finish
printf '%s\n' 'tls-token,carol,3,"keel:admins"' >"$CERTS/tokens.csv"

keel_start store "$STORE" --data-dir="$(keel_dir store)/data" \
  --listen-client-urls=http://127.0.0.1:0 --advertise-client-urls=http://127.0.0.1:0
keel_wait_ready store 20 || keel_finish
keel_start api "$APISERVER" --etcd-servers="http://$(keel_grpc_addr store)" \
  --tls-cert-file="$CERTS/server.pem" --tls-private-key-file="$CERTS/server.key" \
  --client-ca-file="$CERTS/ca.pem" --token-auth-file="$CERTS/tokens.csv"
keel_wait_ready api 20 || keel_finish
H="https://localhost:$(keel_http_addr api | sed 's/.*://')"
BODY="$CERTS/body"
c() { curl -s --cacert "$CERTS/ca.pem" -o "$BODY" -w '%{http_code}' "$@"; }
POD='{"metadata":{"name":"tls-pod"},"spec":{"containers":[{"name":"c","image":"nginx"}]}}'

expect_eq "plain HTTP to the HTTPS port fails" "000" \
  "$(curl -s -o /dev/null -w '%{http_code}' "http://$(keel_http_addr api)/healthz")"
expect_eq "healthz over HTTPS" "200" "$(c "$H/healthz")"
expect_eq "no certificate, no token: 401" "401" "$(c "$H/api/v1/namespaces/default/pods")"
expect_eq "admin certificate (O=keel:admins) creates: 201" "201" \
  "$(c --cert "$CERTS/admin.pem" --key "$CERTS/admin.key" -X POST --data "$POD" "$H/api/v1/namespaces/default/pods")"
expect_eq "viewer certificate reads: 200" "200" \
  "$(c --cert "$CERTS/viewer.pem" --key "$CERTS/viewer.key" "$H/api/v1/namespaces/default/pods/tls-pod")"
expect_eq "viewer certificate writing: 403 naming the user" "403 True" \
  "$(c --cert "$CERTS/viewer.pem" --key "$CERTS/viewer.key" -X DELETE "$H/api/v1/namespaces/default/pods/tls-pod") $(json_get "'\"bob\"' in d['message']" < "$BODY")"
expect_eq "certificate from another CA: 401" "401" \
  "$(c --cert "$CERTS/other-client.pem" --key "$CERTS/other-client.key" "$H/api/v1/namespaces/default/pods")"
expect_eq "bearer token over HTTPS: 200" "200" \
  "$(c -H "Authorization: Bearer tls-token" "$H/api/v1/namespaces/default/pods")"

keel_stop api 10
expect_eq "apiserver exits 0 on SIGTERM" "0" "$?"
keel_finish
