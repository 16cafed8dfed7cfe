#!/usr/bin/env bash
# `keel` over TLS, configured the way kubeconfig is: a cluster with an
# https:// server and its CA (relative to the config file), users with a
# client certificate (mutual TLS: CN is the user, O the group) or a bearer
# token, contexts choosing between them; and the failures: an unknown CA, a
# plaintext client against the TLS port, a certificate of the wrong CA.
# usage: tls_test.sh KEEL KEEL_APISERVER KEEL_STORE
set -uo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../testlib/daemon.sh
source "$HERE/../testlib/daemon.sh"

KEEL="$(realpath "${1:?usage: tls_test.sh KEEL KEEL_APISERVER KEEL_STORE}")"
APISERVER="$(realpath "${2:?usage}")"
STORE="$(realpath "${3:?usage}")"
keel_init
WORK="$(keel_dir work)"
mkdir -p "$WORK"
export HOME="$WORK/home" NO_COLOR=1
mkdir -p "$HOME"
unset KEELCONFIG KEEL_CONFIG

expect_eq() {
  if [ "$2" == "$3" ]; then keel_pass "$1"; else
    keel_fail "$1"
    printf '  want: %q\n  got:  %q\n' "$2" "$3"
  fi
}
expect_contains() {
  if grep -qF -- "$2" "$3"; then keel_pass "$1"; else
    keel_fail "$1"
    echo "  want a line containing: $2"
    sed 's/^/    /' "$3"
  fi
}

CERTS="$WORK/certs"
bash "$HERE/../testlib/certs.sh" "$CERTS" || { keel_finish; exit 1; }
leaf() { # name subject
  (cd "$CERTS" && export OPENSSL_CONF=/dev/null &&
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null &&
    openssl req -new -key "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null &&
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n' >"$1.ext" &&
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
      -days 2 -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null)
}
leaf admin "/O=keel:admins/CN=alice" || { keel_finish; exit 1; }
leaf viewer "/O=keel:viewers/CN=bob" || { keel_finish; exit 1; }
printf '%s\n' 'tls-token,carol,3,"keel:admins"' > "$CERTS/tokens.csv"

keel_start store "$STORE" --data-dir="$(keel_dir store)/data" \
  --listen-client-urls=http://127.0.0.1:0 --advertise-client-urls=http://127.0.0.1:0
keel_wait_ready store 20 || { keel_finish; exit 1; }
keel_start api "$APISERVER" --etcd-servers="http://$(keel_grpc_addr store)" \
  --tls-cert-file="$CERTS/server.pem" --tls-private-key-file="$CERTS/server.key" \
  --client-ca-file="$CERTS/ca.pem" --token-auth-file="$CERTS/tokens.csv"
keel_wait_ready api 20 || { keel_finish; exit 1; }
PORT="$(keel_grpc_addr api | sed 's/.*://')"

# The config in kubeconfig's YAML, paths relative to its own directory.
CFG="$CERTS/config"
cat > "$CFG" <<EOF
apiVersion: v1
kind: Config
current-context: admin
clusters:
- name: tls
  cluster:
    server: https://localhost:$PORT
    certificate-authority: ca.pem
- name: wrong-ca
  cluster:
    server: https://localhost:$PORT
    certificate-authority: other-ca.pem
- name: plaintext
  cluster:
    server: http://127.0.0.1:$PORT
users:
- name: alice
  user:
    client-certificate: admin.pem
    client-key: admin.key
- name: bob
  user:
    client-certificate: viewer.pem
    client-key: viewer.key
- name: carol
  user:
    token: tls-token
- name: stranger
  user:
    client-certificate: other-client.pem
    client-key: other-client.key
contexts:
- name: admin
  context: {cluster: tls, user: alice}
- name: viewer
  context: {cluster: tls, user: bob}
- name: token
  context: {cluster: tls, user: carol, namespace: kube-system}
- name: wrong-ca
  context: {cluster: wrong-ca, user: alice}
- name: plaintext
  context: {cluster: plaintext, user: carol}
- name: stranger
  context: {cluster: tls, user: stranger}
EOF
cd "$WORK" || exit 1 # relative paths must resolve against the config, not here
k() {
  local name="$1"
  shift
  "$KEEL" --config "$CFG" --request-timeout=5s "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  RC=$?
}

cat > "$WORK/pod.yaml" <<'EOF'
apiVersion: v1
kind: Pod
metadata:
  name: tls-pod
spec:
  containers:
  - name: c
    image: nginx
EOF
k create1 apply -f "$WORK/pod.yaml"
expect_eq "admin certificate creates" "0 pod/tls-pod created" "$RC $(cat "$WORK/create1.out")"
k get1 get pods -o name --context viewer
expect_eq "viewer certificate reads" "0 pod/tls-pod" "$RC $(cat "$WORK/get1.out")"
k del1 delete pod tls-pod --context viewer
expect_eq "viewer certificate may not delete" "1" "$RC"
expect_contains "viewer refused: Forbidden naming bob" "Error from server (Forbidden)" "$WORK/del1.err"
expect_contains "viewer refused: names the user" "bob" "$WORK/del1.err"
k tok1 get pods -o name --context token -n default
expect_eq "token over TLS" "0 pod/tls-pod" "$RC $(cat "$WORK/tok1.out")"
k tok2 get pods --context token
expect_eq "the context's namespace" "No resources found in kube-system namespace." "$(cat "$WORK/tok2.err")"
k over get pods -o name --context viewer --token tls-token
expect_eq "--token replaces the context's certificate" "0 pod/tls-pod" "$RC $(cat "$WORK/over.out")"
k wrongca get pods --context wrong-ca
expect_eq "a server certificate of another CA is refused" "1" "$RC"
expect_contains "wrong CA: cannot connect" "unable to connect to the server at localhost:$PORT" "$WORK/wrongca.err"
k plain get pods --context plaintext
expect_eq "plaintext to the TLS port fails" "1" "$RC"
k stranger get pods --context stranger
expect_eq "a client certificate of another CA is refused" "1" "$RC"
k flags get pods -o name --server "https://localhost:$PORT" --certificate-authority "$CERTS/ca.pem" \
  --client-certificate "$CERTS/admin.pem" --client-key "$CERTS/admin.key"
expect_eq "all of it from flags" "0 pod/tls-pod" "$RC $(cat "$WORK/flags.out")"
k ver version --context token
expect_eq "version over TLS" "0" "$RC"
expect_contains "version: health" "health: SERVING" "$WORK/ver.out"
"$KEEL" config get-contexts -o name --config "$CFG" > "$WORK/ctx.out" 2> "$WORK/ctx.err"
expect_eq "contexts listed" $'admin\nviewer\ntoken\nwrong-ca\nplaintext\nstranger' "$(cat "$WORK/ctx.out")"

if grep -l "Sanitizer\|runtime error:" "$WORK"/*.err > /dev/null 2>&1; then
  keel_fail "sanitizer reports from keel"
else
  keel_pass "no sanitizer report from any keel run"
fi
keel_stop api 10
keel_finish
