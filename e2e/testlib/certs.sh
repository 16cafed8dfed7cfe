#!/usr/bin/env bash
# e2e/testlib/certs.sh DIR — writes throwaway TLS material for tests with the
# openssl CLI (EC P-256 keys, valid for two days):
#   ca.pem ca.key                 the test CA
#   server.pem server.key         signed by ca; CN=localhost, SAN DNS:localhost, IP:127.0.0.1
#   client.pem client.key         signed by ca; CN=keel-test-client (clientAuth)
#   other-ca.pem other-ca.key     a second, unrelated CA
#   other-client.pem other-client.key   signed by other-ca (the "wrong CA" client)
# Nothing outside DIR is written (no serial files, no openssl config edits).
set -euo pipefail

dir="${1:?usage: certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
export OPENSSL_CONF=/dev/null RANDFILE="$dir/.rnd"

ossl() {
  if ! out=$(openssl "$@" 2>&1); then
    echo "certs.sh: openssl $1 failed: $out" >&2
    exit 1
  fi
}

newkey() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

make_ca() { # name cn
  newkey "$1.key"
  ossl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "/CN=$2" -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"
}

make_leaf() { # name cn ca extfile-lines...
  local name="$1" cn="$2" ca="$3"
  shift 3
  newkey "$name.key"
  ossl req -new -key "$name.key" -out "$name.csr" -subj "/CN=$cn" -sha256
  printf '%s\n' "$@" >"$name.ext"
  ossl x509 -req -in "$name.csr" -CA "$ca.pem" -CAkey "$ca.key" \
    -set_serial "0x$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')" \
    -days 2 -sha256 -extfile "$name.ext" -out "$name.pem"
  rm -f "$name.csr" "$name.ext"
}

make_ca ca keel-test-ca
make_ca other-ca keel-test-other-ca
make_leaf server localhost ca \
  "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth" \
  "subjectAltName=DNS:localhost,IP:127.0.0.1"
make_leaf client keel-test-client ca \
  "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=clientAuth"
make_leaf other-client keel-test-other-client other-ca \
  "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature" \
  "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
rm -f "$dir/.rnd"
