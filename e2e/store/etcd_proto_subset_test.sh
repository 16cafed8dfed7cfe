#!/usr/bin/env bash
# Keel's etcd subset (//proto:etcd_descriptors.pb) against etcd 3.4's own protos.
# usage: etcd_proto_subset_test.sh DESCRIPTOR_SET [ETCD_SRC_ROOT]
set -euo pipefail
exec /usr/bin/python3 "$(dirname "$0")/etcd_proto_subset.py" "$@"
