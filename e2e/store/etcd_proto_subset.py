"""Checks Keel's hand-written etcd subset (proto/etcd/...) against etcd's own
protos, field by field.

usage: etcd_proto_subset.py OURS_DESCRIPTOR_SET [ETCD_SRC_ROOT]

OURS_DESCRIPTOR_SET is //proto:etcd_descriptors.pb (protoc --include_imports of
etcd/etcdserverpb/rpc.proto). ETCD_SRC_ROOT defaults to Debian's
golang-etcd-server-dev tree (/usr/share/gocode/src/go.etcd.io/etcd). etcd's
rpc.proto is compiled here with protoc; its imports are "etcd/mvcc/mvccpb/kv.proto",
"gogoproto/gogo.proto" and "google/api/annotations.proto", found through a temp
import root (etcd -> ETCD_SRC_ROOT) and Debian's gogo-protobuf and grpc-gateway
trees. If gogoproto or googleapis are not installed, the options that need them
are stripped textually (fields, enums and services are kept verbatim) and a NOTE
says so.

Asserted, for every element of our subset:
- each message exists in etcd under the same full name, and has every field of
  etcd's message (our messages are complete; a missing field would drop data
  when keel-store re-encodes a message), and no field etcd lacks;
- each field: same number, name, type, label, message/enum type (full name),
  oneof membership and json_name;
- each enum: same values (name -> number), none missing or extra;
- each service exists, and each of our methods exists with the same input and
  output types and client/server streaming flags;
- every package and top-level name in our files belongs to etcdserverpb/mvccpb.
Run with /usr/bin/python3 (python3-protobuf).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ETCD_DEFAULT = "/usr/share/gocode/src/go.etcd.io/etcd"
GOGO_ROOT = "/usr/share/gocode/src/github.com/gogo/protobuf"
GOOGLEAPIS = "/usr/share/gocode/src/github.com/grpc-ecosystem/grpc-gateway/third_party/googleapis"
RPC = "etcd/etcdserverpb/rpc.proto"  # under ETCD_SRC_ROOT: etcdserver/etcdserverpb/rpc.proto
PACKAGES = ("etcdserverpb", "mvccpb")

failures = []
passes = 0


def ok(what, cond, detail=""):
    global passes
    if cond:
        passes += 1
    else:
        failures.append(what)
        print(f"FAIL: {what}" + (f" -- {detail}" if detail else ""), flush=True)
    return cond


def load_set(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def strip_options(text):
    """Removes gogoproto / google.api option syntax, keeping everything else."""
    text = re.sub(r'^\s*import\s+"(gogoproto/gogo\.proto|google/api/annotations\.proto)";\s*$',
                  "", text, flags=re.M)
    text = re.sub(r"^\s*option\s+\(gogoproto\.[^;]*;\s*$", "", text, flags=re.M)
    # field options: [(gogoproto.x) = y, (gogoproto.z) = "w"]
    text = re.sub(r"\s*\[\s*\(gogoproto\.[^\]]*\]", "", text)

    # option (google.api.http) = { ... }; with nested braces: rpc bodies become "{}".
    out = []
    i = 0
    key = "option (google.api.http)"
    while True:
        j = text.find(key, i)
        if j < 0:
            out.append(text[i:])
            break
        out.append(text[i:j])
        k = text.index("{", j)
        depth = 0
        while True:
            c = text[k]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        k = text.index(";", k)
        i = k + 1
    return "".join(out)


def compile_etcd(etcd_root, tmp):
    """Returns (FileDescriptorSet of etcd's rpc.proto with imports, note)."""
    src_rpc = os.path.join(etcd_root, "etcdserver/etcdserverpb/rpc.proto")
    src_kv = os.path.join(etcd_root, "mvcc/mvccpb/kv.proto")
    src_auth = os.path.join(etcd_root, "auth/authpb/auth.proto")
    for p in (src_rpc, src_kv, src_auth):
        if not os.path.exists(p):
            print(f"FAIL: etcd's proto {p} is missing (install golang-etcd-server-dev)")
            sys.exit(1)
    out = os.path.join(tmp, "etcd.pb")
    have_deps = (os.path.exists(os.path.join(GOGO_ROOT, "gogoproto/gogo.proto"))
                 and os.path.exists(os.path.join(GOOGLEAPIS, "google/api/annotations.proto")))
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    if have_deps:
        os.symlink(etcd_root, os.path.join(root, "etcd"))
        includes = [root, GOGO_ROOT, GOOGLEAPIS, "/usr/include"]
        target = "etcd/etcdserver/etcdserverpb/rpc.proto"
        note = "etcd's protos compiled as shipped (gogoproto and googleapis found)"
    else:
        for src, rel in ((src_rpc, "etcd/etcdserver/etcdserverpb/rpc.proto"),
                         (src_kv, "etcd/mvcc/mvccpb/kv.proto"),
                         (src_auth, "etcd/auth/authpb/auth.proto")):
            dst = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with open(src) as f:
                text = f.read()
            with open(dst, "w") as f:
                f.write(strip_options(text))
        includes = [root, "/usr/include"]
        target = "etcd/etcdserver/etcdserverpb/rpc.proto"
        note = "gogoproto/googleapis missing: etcd's protos compiled with options stripped"
    cmd = ["protoc"] + [f"-I{d}" for d in includes] + [
        "--include_imports", f"--descriptor_set_out={out}", target]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: protoc on etcd's rpc.proto: {' '.join(cmd)}\n{r.stderr}")
        sys.exit(1)
    return load_set(out), note


class Index:
    """Full name -> descriptor for messages, enums and services of a set."""

    def __init__(self, fds):
        self.messages = {}
        self.enums = {}
        self.services = {}
        self.files = {}
        for f in fds.file:
            self.files[f.name] = f
            pkg = "." + f.package if f.package else ""
            for m in f.message_type:
                self._msg(pkg, m)
            for e in f.enum_type:
                self.enums[f"{pkg}.{e.name}"] = e
            for s in f.service:
                self.services[f"{pkg}.{s.name}"] = s

    def _msg(self, scope, m):
        name = f"{scope}.{m.name}"
        self.messages[name] = m
        for n in m.nested_type:
            self._msg(name, n)
        for e in m.enum_type:
            self.enums[f"{name}.{e.name}"] = e


LABELS = {1: "optional", 2: "required", 3: "repeated"}


def field_sig(m, f):
    oneof = m.oneof_decl[f.oneof_index].name if f.HasField("oneof_index") else None
    return {
        "name": f.name,
        "type": descriptor_pb2.FieldDescriptorProto.Type.Name(f.type),
        "label": LABELS.get(f.label, f.label),
        "type_name": f.type_name,
        "oneof": oneof,
        "json_name": f.json_name,
        "packed": f.options.packed if f.options.HasField("packed") else None,
    }


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    ours_path = sys.argv[1]
    etcd_root = sys.argv[2] if len(sys.argv) > 2 else ETCD_DEFAULT
    tmp = tempfile.mkdtemp(prefix="etcdproto.", dir=os.environ.get("TEST_TMPDIR"))
    try:
        theirs_set, note = compile_etcd(etcd_root, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"NOTE: {note}")
    ours = Index(load_set(ours_path))
    theirs = Index(theirs_set)

    ok("our descriptor set has rpc.proto and kv.proto",
       set(ours.files) == {"etcd/etcdserverpb/rpc.proto", "etcd/mvccpb/kv.proto"},
       f"files {sorted(ours.files)}")
    for fname, f in ours.files.items():
        ok(f"{fname}: package is etcdserverpb or mvccpb", f.package in PACKAGES, f.package)
        ok(f"{fname}: proto3", f.syntax == "proto3", f.syntax)
        ok(f"{fname}: no options (no gogoproto, no go_package)",
           not f.HasField("options"), str(f.options))

    for name, m in sorted(ours.messages.items()):
        t = theirs.messages.get(name)
        if not ok(f"message {name} exists in etcd", t is not None):
            continue
        ofields = {f.number: field_sig(m, f) for f in m.field}
        tfields = {f.number: field_sig(t, f) for f in t.field}
        for num, sig in sorted(ofields.items()):
            tsig = tfields.get(num)
            if ok(f"{name} field {num} ({sig['name']}) exists in etcd", tsig is not None):
                for k in sig:
                    ok(f"{name} field {num} ({sig['name']}): {k}", sig[k] == tsig[k],
                       f"ours {sig[k]!r}, etcd {tsig[k]!r}")
        for num, tsig in sorted(tfields.items()):
            ok(f"{name}: etcd's field {num} ({tsig['name']}) is in our copy (complete)",
               num in ofields)
        ok(f"{name}: same oneofs", [o.name for o in m.oneof_decl] == [o.name for o in t.oneof_decl],
           f"ours {[o.name for o in m.oneof_decl]}, etcd {[o.name for o in t.oneof_decl]}")
        ok(f"{name}: same nested enums",
           sorted(e.name for e in m.enum_type) == sorted(e.name for e in t.enum_type))

    for name, e in sorted(ours.enums.items()):
        t = theirs.enums.get(name)
        if not ok(f"enum {name} exists in etcd", t is not None):
            continue
        ov = {v.name: v.number for v in e.value}
        tv = {v.name: v.number for v in t.value}
        ok(f"enum {name}: same values", ov == tv, f"ours {ov}, etcd {tv}")

    for name, s in sorted(ours.services.items()):
        t = theirs.services.get(name)
        if not ok(f"service {name} exists in etcd", t is not None):
            continue
        tm = {x.name: x for x in t.method}
        for meth in s.method:
            x = tm.get(meth.name)
            what = f"{name}/{meth.name}"
            if not ok(f"method {what} exists in etcd", x is not None):
                continue
            ok(f"{what}: input type", meth.input_type == x.input_type,
               f"ours {meth.input_type}, etcd {x.input_type}")
            ok(f"{what}: output type", meth.output_type == x.output_type,
               f"ours {meth.output_type}, etcd {x.output_type}")
            ok(f"{what}: client streaming", meth.client_streaming == x.client_streaming)
            ok(f"{what}: server streaming", meth.server_streaming == x.server_streaming)

    # The methods keel-store serves, by name (the brief): none may be missing.
    want = {
        ".etcdserverpb.KV": ["Range", "Put", "DeleteRange", "Txn", "Compact"],
        ".etcdserverpb.Watch": ["Watch"],
        ".etcdserverpb.Lease": ["LeaseGrant", "LeaseRevoke", "LeaseKeepAlive",
                                "LeaseTimeToLive", "LeaseLeases"],
        ".etcdserverpb.Cluster": ["MemberList"],
        ".etcdserverpb.Maintenance": ["Status"],
    }
    for svc, methods in want.items():
        have = [m.name for m in ours.services[svc].method] if svc in ours.services else []
        ok(f"{svc} declares {methods}", have == methods, f"have {have}")

    print(f"checked {len(ours.messages)} messages, {len(ours.enums)} enums, "
          f"{sum(len(s.method) for s in ours.services.values())} methods")
    if failures:
        print(f"RESULT: etcd_proto_subset: {len(failures)} check(s) failed ({passes} passed)")
        return 1
    print(f"RESULT: etcd_proto_subset: all {passes} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
