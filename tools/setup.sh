#!/usr/bin/env bash
# Installs every Debian package and npm test tool Keel needs. Idempotent: when
# everything is present it only checks (well under a second) and changes nothing.
# Usage: tools/setup.sh            (as root, or with sudo available)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Build: Bazel (offline, with a JDK), compilers, protoc + protoc-gen-c.
# Runtime libraries: gRPC C core, protobuf-c, jemalloc, libmicrohttpd, jansson,
# libyaml, OpenSSL. Test tooling: cmocka, valgrind, python3-grpcio, node/npm,
# openssl CLI, curl.
APT_PACKAGES=(
  bazel-bootstrap default-jdk-headless
  gcc clang libclang-rt-14-dev
  protobuf-compiler protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  libgrpc-dev grpc-proto
  libjemalloc-dev libmicrohttpd-dev libjansson-dev libyaml-dev libssl-dev
  # libmicrohttpd's TLS backend: the REST gateway reads verified client certificates.
  libgnutls28-dev
  libcmocka-dev openssl valgrind python3-grpcio curl
  # keel-store: nanopb WAL records; etcd 3.4 as the peer and etcdctl as a client;
  # etcd's own .proto files to check our subset against.
  nanopb libnanopb-dev etcd-server etcd-client golang-etcd-server-dev
)
# The machine image may ship Node.js (with npm bundled) from elsewhere, which
# conflicts with Debian's npm package: only ask apt for them when node is absent.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$pkg")
  fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm clients for interop tests, pinned by tools/npm/package-lock.json.
NPM_DIR="$ROOT/tools/npm"
if [ -f "$NPM_DIR/package.json" ]; then
  if [ ! -d "$NPM_DIR/node_modules" ] || [ "$NPM_DIR/package-lock.json" -nt "$NPM_DIR/node_modules/.package-lock.json" ]; then
    echo "setup: installing npm test clients" >&2
    (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
fi
