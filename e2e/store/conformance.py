"""etcd v3 conformance suite: the same expectations for real etcd and keel-store.

usage (run with /usr/bin/python3):
  conformance.py --server BIN [--server-arg ARG ...]   start BIN with etcd's flags
  conformance.py --endpoint HOST:PORT                  use a running server

  --etcdctl PATH      etcdctl 3.4 (default /usr/bin/etcdctl)
  --proto-root DIR    import root holding etcd/etcdserverpb/rpc.proto (Keel's subset),
                      for the grpc stage (default: <repo>/proto)
  --node-script JS    the npm etcd3 stage (default: etcd3_client.js beside this file);
                      needs KEEL_NODE_MODULES with etcd3 installed, fails when unset
  --stages LIST       comma-separated subset of etcdctl,grpc,node (default: all)

--server launches BIN exactly as a single etcd member is started (so keel-store must
accept these flag names): --name, --data-dir (a fresh temp dir), --listen-client-urls,
--advertise-client-urls, --listen-peer-urls, --initial-advertise-peer-urls,
--initial-cluster, --initial-cluster-state new, --initial-cluster-token, all on
127.0.0.1 with ports found free by binding port 0 (retried if the server then fails
with "address already in use"). The process is killed by pid at exit.

Every expectation is relative to revisions the suite observes (nothing assumes an
empty store, except the "fresh store" checks made only with --server), and every key
lives under a unique prefix, so the suite can run against any etcd v3 endpoint.
Caveat with --endpoint: the compaction checks compact the whole store up to a
revision the suite just wrote.

Stages:
- etcdctl: ETCDCTL_API=3 etcdctl put/get/del/txn/watch/lease/compact/endpoint
  status/member list, checking outputs (simple and -w json), revisions, versions,
  create/mod revisions, exact error strings and gRPC codes.
- grpc: python3-grpcio with Keel's own etcd subset protos (compiled at test time):
  what etcdctl cannot reach (watch created/cancel/progress responses, watch ids,
  filters, Range revision filters, ignore_value/ignore_lease, lease compares, nested
  txns, LeaseKeepAlive on an unknown lease, lease expiry events, limits).
- node: the npm etcd3 client (etcd3_client.js): KV, txn, watch, lease, lock.
"""

import argparse
import base64
import json
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testlib"))
import keeltest  # noqa: E402

FUTURE_REV = "etcdserver: mvcc: required revision is a future revision"
COMPACTED = "etcdserver: mvcc: required revision has been compacted"
LEASE_NOT_FOUND = "etcdserver: requested lease not found"
DUP_KEY = "etcdserver: duplicate key given in txn request"
TOO_MANY_OPS = "etcdserver: too many operations in txn request"

c = keeltest.Checks("etcd conformance")


# ------------------------------------------------------------------ server launcher

def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


class Server:
    """One member started with etcd's flag names; killed by pid at exit."""

    NAME = "keel-conformance"

    def __init__(self, binary, extra_args, base_dir):
        self.binary = binary
        self.extra = list(extra_args)
        self.base = base_dir
        self.proc = None
        self.endpoint = self.client_url = self.peer_url = None
        self.log_path = None

    def start(self, attempts=5, timeout=20.0):
        for attempt in range(1, attempts + 1):
            cport, pport = free_ports(2)
            self.client_url = f"http://127.0.0.1:{cport}"
            self.peer_url = f"http://127.0.0.1:{pport}"
            self.endpoint = f"127.0.0.1:{cport}"
            data = os.path.join(self.base, f"data{attempt}")
            self.log_path = os.path.join(self.base, f"server{attempt}.log")
            token = "keel-conformance-%08x" % random.getrandbits(32)
            argv = [self.binary,
                    f"--name={self.NAME}",
                    f"--data-dir={data}",
                    f"--listen-client-urls={self.client_url}",
                    f"--advertise-client-urls={self.client_url}",
                    f"--listen-peer-urls={self.peer_url}",
                    f"--initial-advertise-peer-urls={self.peer_url}",
                    f"--initial-cluster={self.NAME}={self.peer_url}",
                    "--initial-cluster-state=new",
                    f"--initial-cluster-token={token}"] + self.extra
            log = open(self.log_path, "wb")
            # setpriv, not preexec_fn: no Python code between fork and exec while
            # grpcio threads run (see e2e/testlib/keeltest.py).
            self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + argv,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
            log.close()
            print(f"started server (pid {self.proc.pid}): {' '.join(argv)}", flush=True)
            state = self._wait(timeout)
            if state == "ready":
                return
            self.kill()
            text = self.log_tail()
            if state == "exited" and "address already in use" in text:
                print(f"port conflict, retrying (attempt {attempt})", flush=True)
                continue
            raise RuntimeError(f"server did not become ready ({state}):\n{text}")
        raise RuntimeError("server: no free ports after retries")

    def _wait(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return "exited"
            r = subprocess.run([ETCDCTL, f"--endpoints={self.endpoint}", "--dial-timeout=1s",
                                "--command-timeout=2s", "get", "/keel-conformance-probe"],
                               env=ctl_env(), capture_output=True, text=True)
            if r.returncode == 0:
                return "ready"
            time.sleep(0.1)
        return "timeout"

    def kill(self):
        if self.proc and self.proc.poll() is None:
            print(f"killing server (pid {self.proc.pid})", flush=True)
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


# ------------------------------------------------------------------ etcdctl

ETCDCTL = "/usr/bin/etcdctl"
ENDPOINT = None


def ctl_env():
    env = dict(os.environ)
    env["ETCDCTL_API"] = "3"
    return env


class Res:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err

    @property
    def error(self):
        """The message of etcdctl's last "Error: ..." line on stderr."""
        lines = [ln[len("Error: "):] for ln in self.err.splitlines() if ln.startswith("Error: ")]
        return lines[-1].strip() if lines else None

    @property
    def code(self):
        """The gRPC code name etcdctl's client logged (e.g. OutOfRange), if any."""
        m = re.findall(r"code = (\w+) desc", self.err)
        return m[-1] if m else None

    def json(self):
        if self.rc != 0:
            raise RuntimeError(f"etcdctl failed ({self.rc}): {self.err.strip()}")
        return json.loads(self.out)

    def __repr__(self):
        return f"rc={self.rc} out={self.out!r} err={self.err.strip()[-300:]!r}"


def ctl(*args, stdin=None, timeout=15):
    argv = [ETCDCTL, f"--endpoints={ENDPOINT}", "--dial-timeout=3s",
            "--command-timeout=8s"] + [str(a) for a in args]
    r = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=ctl_env(),
                       timeout=timeout)
    return Res(r.returncode, r.stdout, r.stderr)


def ctlj(*args, stdin=None):
    return ctl(*args, "-w", "json", stdin=stdin).json()


def b64(s):
    return base64.b64decode(s).decode("utf-8", "replace") if s else ""


def kvd(kv):
    """etcdctl's JSON KeyValue (omitempty, base64 bytes) as a plain dict."""
    return {
        "key": b64(kv.get("key", "")),
        "value": b64(kv.get("value", "")),
        "create": kv.get("create_revision", 0),
        "mod": kv.get("mod_revision", 0),
        "version": kv.get("version", 0),
        "lease": kv.get("lease", 0),
    }


def hdr(j):
    return j.get("header") or j.get("Header") or {}


def rev_now(P):
    return hdr(ctlj("get", P + "__rev"))["revision"]


def check_error(what, res, message, code=None):
    c.ok(f"{what}: fails", res.rc != 0, repr(res))
    c.eq(f"{what}: error message", res.error, message)
    if code is not None:
        c.eq(f"{what}: gRPC code", res.code, code)


class Model:
    """What the store must hold under the suite's keys: key -> kv dict."""

    def __init__(self):
        self.kvs = {}

    def put(self, key, value, rev, lease=0):
        old = self.kvs.get(key)
        self.kvs[key] = {"key": key, "value": value, "create": old["create"] if old else rev,
                         "mod": rev, "version": (old["version"] + 1) if old else 1,
                         "lease": lease}

    def sorted(self, keys, target, order):
        field = {"KEY": "key", "VERSION": "version", "CREATE": "create", "MODIFY": "mod",
                 "VALUE": "value"}[target]
        kvs = sorted((self.kvs[k] for k in keys), key=lambda kv: kv[field],
                     reverse=(order == "DESCEND"))
        return [kv["key"] for kv in kvs]


def put_rev(key, value, *extra):
    j = ctlj("put", key, value, *extra)
    return hdr(j)["revision"], j


# ------------------------------------------------------------------ etcdctl stage

def stage_etcdctl(P, srv):
    model = Model()
    base = {}

    def fresh_store():
        if srv is None:
            c.note("fresh-store checks skipped (--endpoint)")
            return
        j = ctlj("get", "a")
        c.eq("fresh store: revision is 1", hdr(j).get("revision"), 1)
        c.eq("fresh store: no keys", ctlj("get", "", "--prefix").get("count", 0), 0)

    c.run("etcdctl: fresh store", fresh_store)

    def kv_basics():
        r0 = rev_now(P)
        base["r0"] = r0
        k = P + "kv/a"
        j = ctlj("put", k, "z1")
        h = hdr(j)
        c.eq("put: header.revision = previous revision + 1", h.get("revision"), r0 + 1)
        c.ok("put: header has cluster_id, member_id, raft_term",
             h.get("cluster_id", 0) != 0 and h.get("member_id", 0) != 0
             and h.get("raft_term", 0) > 0, str(h))
        c.ok("put without --prev-kv: no prev_kv", "prev_kv" not in j, str(j))
        model.put(k, "z1", r0 + 1)
        g = ctlj("get", k)
        c.eq("get: header.revision is the current revision", hdr(g).get("revision"), r0 + 1)
        c.eq("get: count 1", g.get("count"), 1)
        c.eq("get: new key has create = mod = its revision, version 1, lease 0",
             kvd(g["kvs"][0]), model.kvs[k])
        c.eq("get: same cluster_id/member_id in every header",
             (hdr(g)["cluster_id"], hdr(g)["member_id"]), (h["cluster_id"], h["member_id"]))
        base["ids"] = (h["cluster_id"], h["member_id"])

        r = ctl("put", k, "m-a2", "--prev-kv")
        c.eq("put --prev-kv simple output: OK then the previous key and value",
             r.out, f"OK\n{k}\nz1\n")
        model.put(k, "m-a2", r0 + 2)
        g = ctlj("get", k)
        c.eq("second put: same create_revision, mod = new revision, version 2",
             kvd(g["kvs"][0]), model.kvs[k])
        j = ctlj("put", k, "m-a2", "--prev-kv")
        c.eq("put --prev-kv -w json: prev_kv is the pair before the put",
             kvd(j.get("prev_kv", {})), model.kvs[k])
        model.put(k, "m-a2", r0 + 3)
        c.eq("put of an unchanged value still makes a revision", hdr(j).get("revision"), r0 + 3)

        c.eq("put simple output", ctl("put", P + "kv/b", "x-b1").out, "OK\n")
        model.put(P + "kv/b", "x-b1", r0 + 4)
        # versions a=2.., b=1, c=3, d=4; create order a b c d; mod order b c d a;
        # value order c a d b: every sort target gives a different order.
        rev = r0 + 4
        for key, val in (("c", "c1"), ("d", "q1"), ("d", "q2"), ("c", "c2"), ("d", "q3"),
                         ("c", "a-c3"), ("d", "n-d4"), ("a", "m-a2")):
            rev += 1
            got, _ = put_rev(P + "kv/" + key, val)
            c.eq(f"put kv/{key}={val}: revision {rev - r0} after start", got, rev)
            model.put(P + "kv/" + key, val, rev)
        base["rev"] = rev

        g = ctlj("get", P + "kv/", "--prefix")
        keys = sorted(model.kvs)
        c.eq("get --prefix: every key, in key order, with exact metadata",
             [kvd(kv) for kv in g.get("kvs", [])], [model.kvs[x] for x in keys])
        c.eq("get --prefix: count", g.get("count"), 4)
        c.ok("get --prefix: more is false", not g.get("more", False))
        r = ctl("get", P + "kv/", "--prefix")
        c.eq("get --prefix simple output: key and value lines",
             r.out, "".join(f"{x}\n{model.kvs[x]['value']}\n" for x in keys))

        g = ctlj("get", P + "kv/", "--prefix", "--limit=2")
        c.eq("get --limit 2: first two keys", [b64(kv["key"]) for kv in g["kvs"]], keys[:2])
        c.eq("get --limit 2: count is the whole range", g.get("count"), 4)
        c.eq("get --limit 2: more", g.get("more"), True)
        g = ctlj("get", P + "kv/", "--prefix", "--limit=4")
        c.ok("get --limit = size: more is false", not g.get("more", False), str(g))

        for target in ("KEY", "VERSION", "CREATE", "MODIFY", "VALUE"):
            for order in ("ASCEND", "DESCEND"):
                g = ctlj("get", P + "kv/", "--prefix", f"--sort-by={target}", f"--order={order}")
                c.eq(f"get --sort-by={target} --order={order}",
                     [b64(kv["key"]) for kv in g.get("kvs", [])],
                     model.sorted(keys, target, order))
        g = ctlj("get", P + "kv/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--limit=2")
        c.eq("get --sort-by=MODIFY --order=DESCEND --limit=2: sorted before the limit",
             [b64(kv["key"]) for kv in g.get("kvs", [])],
             model.sorted(keys, "MODIFY", "DESCEND")[:2])
        c.eq("sorted with limit: more, count", (g.get("more"), g.get("count")), (True, 4))
        g = ctlj("get", P + "kv/", "--prefix", "--order=DESCEND")
        c.eq("get --order=DESCEND alone sorts by key", [b64(kv["key"]) for kv in g["kvs"]],
             keys[::-1])

        g = ctlj("get", P + "kv/", "--prefix", "--keys-only")
        c.eq("get --keys-only: keys and metadata, no values",
             [kvd(kv) for kv in g["kvs"]], [dict(model.kvs[x], value="") for x in keys])
        c.eq("get --keys-only simple output", ctl("get", P + "kv/", "--prefix", "--keys-only").out,
             "".join(f"{x}\n\n" for x in keys))

        g = ctlj("get", P + "kv/b", "--from-key", "--limit=3")
        c.eq("get --from-key: keys >= the key, in order", [b64(kv["key"]) for kv in g["kvs"]],
             [P + "kv/b", P + "kv/c", P + "kv/d"])
        c.eq("get --print-value-only", ctl("get", P + "kv/a", "--print-value-only").out,
             "m-a2\n")
        g = ctlj("get", P + "kv/a", P + "kv/c")
        c.eq("get KEY RANGE_END: half-open range [a, c)", [b64(kv["key"]) for kv in g["kvs"]],
             [P + "kv/a", P + "kv/b"])
        g = ctlj("get", P + "kv/", "--prefix", "--consistency=s")
        c.eq("get --consistency=s (serializable): same kvs", [kvd(kv) for kv in g["kvs"]],
             [model.kvs[x] for x in keys])

        g = ctlj("get", P + "kv/nothing")
        c.eq("get of a missing key: no kvs, count 0, current revision",
             (g.get("kvs"), g.get("count", 0), hdr(g).get("revision")), (None, 0, rev))
        r = ctl("get", P + "kv/nothing")
        c.eq("get of a missing key: exit 0, no output", (r.rc, r.out), (0, ""))

        g = ctlj("get", P + "kv/a", f"--rev={r0 + 1}")
        c.eq("get --rev: the value at that revision",
             kvd(g["kvs"][0]), {"key": P + "kv/a", "value": "z1", "create": r0 + 1,
                                "mod": r0 + 1, "version": 1, "lease": 0})
        c.eq("get --rev: header.revision is the current revision, not --rev",
             hdr(g).get("revision"), rev)
        g = ctlj("get", P + "kv/", "--prefix", f"--rev={r0 + 4}")
        c.eq("get --prefix --rev: only keys that existed then",
             [b64(kv["key"]) for kv in g["kvs"]], [P + "kv/a", P + "kv/b"])
        g = ctlj("get", P + "kv/a", f"--rev={rev}")
        c.eq("get --rev=current works", kvd(g["kvs"][0])["value"], "m-a2")
        check_error("get --rev=current+1", ctl("get", P + "kv/a", f"--rev={rev + 1}"),
                    FUTURE_REV, "OutOfRange")
        check_error("get --rev far in the future", ctl("get", P + "kv/a", f"--rev={rev + 1000}"),
                    FUTURE_REV, "OutOfRange")
        check_error("put with an empty key", ctl("put", "", "v"),
                    "etcdserver: key is not provided", "InvalidArgument")

    c.run("etcdctl: put/get, revisions, range options", kv_basics)

    def deletes():
        r = rev_now(P)
        res = ctl("del", P + "del/nothing")
        c.eq("del of a missing key: prints 0", (res.rc, res.out), (0, "0\n"))
        c.eq("del of a missing key: no new revision", rev_now(P), r)
        j = ctlj("del", P + "del/nothing")
        c.eq("del of a missing key -w json: deleted 0, current revision",
             (j.get("deleted", 0), hdr(j).get("revision")), (0, r))
        for i in (1, 2, 3):
            put_rev(P + f"del/{i}", f"v{i}")
        r = rev_now(P)
        j = ctlj("del", P + "del/", "--prefix", "--prev-kv")
        c.eq("del --prefix: deleted 3", j.get("deleted"), 3)
        c.eq("del --prefix: one new revision for all keys", hdr(j).get("revision"), r + 1)
        c.eq("del --prefix --prev-kv: prev_kvs in key order",
             [(kvd(kv)["key"], kvd(kv)["value"], kvd(kv)["mod"]) for kv in j.get("prev_kvs", [])],
             [(P + f"del/{i}", f"v{i}", r - 3 + i) for i in (1, 2, 3)])
        c.eq("del --prefix: store revision advanced by 1", rev_now(P), r + 1)
        c.eq("deleted keys are gone", ctlj("get", P + "del/", "--prefix").get("count", 0), 0)
        g = ctlj("get", P + "del/2", f"--rev={r}")
        c.eq("a deleted key is still readable at an older revision",
             kvd(g["kvs"][0])["value"], "v2")
        rr, _ = put_rev(P + "del/1", "again")
        g = ctlj("get", P + "del/1")
        c.eq("re-created key: new create_revision, version 1",
             (kvd(g["kvs"][0])["create"], kvd(g["kvs"][0])["version"]), (rr, 1))
        res = ctl("del", P + "del/1", "--prev-kv")
        c.eq("del --prev-kv simple output: count, key, value", res.out,
             f"1\n{P}del/1\nagain\n")
        for k in ("a", "b", "c", "d"):
            put_rev(P + f"del/r/{k}", k)
        j = ctlj("del", P + "del/r/b", P + "del/r/d")
        c.eq("del KEY RANGE_END: deletes [b, d)", j.get("deleted"), 2)
        c.eq("del KEY RANGE_END: a and d remain",
             [b64(kv["key"]) for kv in ctlj("get", P + "del/r/", "--prefix")["kvs"]],
             [P + "del/r/a", P + "del/r/d"])
        j = ctlj("del", P + "del/r/b", "--from-key")
        c.ok("del --from-key: deletes keys >= key (d at least)", j.get("deleted", 0) >= 1, str(j))
        c.eq("del --from-key: a remains, d is gone",
             [b64(kv["key"]) for kv in ctlj("get", P + "del/r/", "--prefix")["kvs"]],
             [P + "del/r/a"])

    c.run("etcdctl: del", deletes)

    def txns():
        T = P + "txn/"
        rk, _ = put_rev(T + "k", "v1")
        r = rk
        script = (f'value("{T}k") = "v1"\nversion("{T}k") = "1"\ncreate("{T}k") = "{rk}"\n'
                  f'mod("{T}k") = "{rk}"\n\n'
                  f"put {T}k v2\nget {T}k\nput {T}other o\n\nput {T}fail f\n\n")
        j = ctlj("txn", stdin=script)
        c.eq("txn: all compares hold -> succeeded", j.get("succeeded"), True)
        c.eq("txn: header.revision = previous + 1 (one revision for all writes)",
             hdr(j).get("revision"), r + 1)
        resp = j.get("responses", [])
        kinds = [list(x["Response"].keys())[0] for x in resp]
        c.eq("txn: one response per success op, in order", kinds,
             ["ResponsePut", "ResponseRange", "ResponsePut"])
        if len(resp) == 3:
            rng = resp[1]["Response"]["ResponseRange"]
            c.eq("txn: a get after a put in the same txn sees the new value",
                 kvd(rng["kvs"][0]), {"key": T + "k", "value": "v2", "create": rk,
                                      "mod": r + 1, "version": 2, "lease": 0})
            c.eq("txn: inner response headers carry only the revision (after the write)",
                 [x["Response"][kinds[i]]["header"] for i, x in enumerate(resp)],
                 [{"revision": r + 1}] * 3)
        g = ctlj("get", T, "--prefix")
        c.eq("txn: success writes applied, failure branch not",
             [(kvd(kv)["key"], kvd(kv)["mod"]) for kv in g["kvs"]],
             [(T + "k", r + 1), (T + "other", r + 1)])
        r += 1

        j = ctlj("txn", stdin=f'value("{T}k") = "v1"\n\nput {T}never x\n\n'
                             f"get {T}k\ndel {T}other\nput {T}f f\n\n")
        c.ok("txn: a false compare -> not succeeded", not j.get("succeeded", False), str(j))
        resp = j.get("responses", [])
        kinds = [list(x["Response"].keys())[0] for x in resp]
        c.eq("txn: failure ops run in order", kinds,
             ["ResponseRange", "ResponseDeleteRange", "ResponsePut"])
        if len(resp) == 3:
            c.eq("txn: inner header revision is the store revision as of that op "
                 "(read before the first write: previous revision)",
                 [x["Response"][kinds[i]]["header"].get("revision") for i, x in enumerate(resp)],
                 [r, r + 1, r + 1])
            c.eq("txn: delete inside txn reports deleted 1",
                 resp[1]["Response"]["ResponseDeleteRange"].get("deleted"), 1)
        c.eq("txn failure branch: one new revision", hdr(j).get("revision"), r + 1)
        r += 1

        res = ctl("txn", stdin=f'value("{T}k") = "v2"\n\nget {T}k\n\nput {T}x y\n\n')
        c.eq("txn simple output: SUCCESS, blank, then each response",
             res.out, f"SUCCESS\n\n{T}k\nv2\n")
        res = ctl("txn", stdin=f'value("{T}k") = "nope"\n\nget {T}k\n\nget {T}f\n\n')
        c.eq("txn simple output on failure: FAILURE", res.out, f"FAILURE\n\n{T}f\nf\n")
        c.eq("read-only txns make no revision", rev_now(P), r)

        for cmp_, want in ((f'version("{T}k") > "1"', True), (f'version("{T}k") < "3"', True),
                           (f'version("{T}k") != "2"', False),
                           (f'mod("{T}k") > "{r}"', False), (f'mod("{T}k") < "{r + 1}"', True),
                           (f'create("{T}k") = "{rk}"', True), (f'value("{T}k") > "v1"', True),
                           (f'value("{T}k") < "v2"', False), (f'value("{T}k") != "v1"', True),
                           (f'version("{T}missing") = "0"', True),
                           (f'create("{T}missing") = "0"', True),
                           (f'mod("{T}missing") = "0"', True),
                           (f'value("{T}missing") = ""', False),
                           (f'value("{T}missing") != "x"', False)):
            j = ctlj("txn", stdin=f"{cmp_}\n\n\n\n")
            c.eq(f"txn compare {cmp_} -> {want}", bool(j.get("succeeded", False)), want)
        j = ctlj("txn", stdin=f'version("{T}k") = "2"\nvalue("{T}k") = "x"\n\n\n\n')
        c.eq("txn: compares are a conjunction", bool(j.get("succeeded", False)), False)
        j = ctlj("txn", stdin="\nget " + T + "k\n\n\n")
        c.eq("txn with no compares succeeds", j.get("succeeded"), True)
        c.eq("empty and read-only txns make no revision", rev_now(P), r)

        check_error("txn putting one key twice", ctl("txn", stdin=f"\nput {T}d 1\nput {T}d 2\n\n\n"),
                    DUP_KEY, "InvalidArgument")
        check_error("txn putting and deleting one key",
                    ctl("txn", stdin=f"\nput {T}d 1\ndel {T}d\n\n\n"), DUP_KEY, "InvalidArgument")
        c.eq("rejected txns make no revision and no writes",
             (rev_now(P), ctlj("get", T + "d").get("count", 0)), (r, 0))
        ops = "".join(f"get {T}k{i}\n" for i in range(129))
        check_error("txn with 129 ops", ctl("txn", stdin=f"\n{ops}\n\n"), TOO_MANY_OPS,
                    "InvalidArgument")
        ops = "".join(f"put {T}many/{i} v\n" for i in range(128))
        j = ctlj("txn", stdin=f"\n{ops}\n\n")
        c.eq("txn with 128 puts: one revision", hdr(j).get("revision"), r + 1)
        g = ctlj("get", T + "many/", "--prefix", "--keys-only", "--limit=1")
        c.eq("txn with 128 puts: all written", g.get("count"), 128)

    c.run("etcdctl: txn", txns)

    def watches():
        W = P + "watch/"
        r = rev_now(P)
        put_rev(W + "k", "v1")
        put_rev(W + "k", "v2")
        ctlj("txn", stdin=f"\nput {W}t1 a\nput {W}t2 b\n\n\n")
        ctlj("del", W, "--prefix")
        resps = watch_collect([W, "--prefix", f"--rev={r + 1}", "--prev-kv"], 7)
        evs = [e for resp in resps for e in resp.get("Events") or []]
        got = [(e.get("type", 0), kvd(e["kv"]), kvd(e["prev_kv"]) if "prev_kv" in e else None)
               for e in evs]
        k1 = {"key": W + "k", "value": "v1", "create": r + 1, "mod": r + 1, "version": 1,
              "lease": 0}
        k2 = dict(k1, value="v2", mod=r + 2, version=2)
        t1 = {"key": W + "t1", "value": "a", "create": r + 3, "mod": r + 3, "version": 1,
              "lease": 0}
        t2 = dict(t1, key=W + "t2", value="b")

        def dele(kv):
            return {"key": kv["key"], "value": "", "create": 0, "mod": r + 4, "version": 0,
                    "lease": 0}
        want = [(0, k1, None), (0, k2, k1), (0, t1, None), (0, t2, None),
                (1, dele(k2), k2), (1, dele(t1), t1), (1, dele(t2), t2)]
        c.eq("watch --rev --prev-kv replays history: puts, txn puts, deletes (type 1) whose kv "
             "holds only key and mod_revision", got, want)
        by_rev = {}
        for i, resp in enumerate(resps):
            for e in resp.get("Events") or []:
                by_rev.setdefault(e["kv"]["mod_revision"], set()).add(i)
        c.ok("watch: events of one revision arrive in one response",
             all(len(v) == 1 for v in by_rev.values()), str(by_rev))
        c.ok("watch: response header.revision >= its events' revisions",
             all(hdr(resp).get("revision", 0) >= max(e["kv"]["mod_revision"]
                                                    for e in resp.get("Events") or [{"kv": {
                                                        "mod_revision": 0}}])
                 for resp in resps), str([hdr(x) for x in resps]))

        resps = watch_collect([W + "k", f"--rev={r + 1}"], 3, fmt="simple")
        c.eq("watch (simple output): event lines", resps,
             f"PUT\n{W}k\nv1\nPUT\n{W}k\nv2\nDELETE\n{W}k\n\n")

        # Live watch: no --rev; a sentinel put until the watch reports it proves the
        # watch is established, then the real writes follow.
        L = P + "live/"
        proc = WatchProc([L, "--prefix", "-w", "json"])
        try:
            seen = None
            for i in range(50):
                put_rev(L + "sentinel", str(i))
                m = proc.next(0.2)
                if m is not None:
                    seen = m
                    break
            c.ok("live watch: established (sentinel seen)", seen is not None, proc.stderr())
            if seen is None:
                return
            proc.drain(0.3)
            r = rev_now(P)
            put_rev(P + "notlive", "x")
            put_rev(L + "a", "1")
            ctlj("del", L + "sentinel")
            evs = []
            deadline = time.monotonic() + 10
            while len(evs) < 2 and time.monotonic() < deadline:
                m = proc.next(0.5)
                if m:
                    evs += m.get("Events") or []
            c.eq("live watch --prefix: only its keys, in order",
                 [(e.get("type", 0), b64(e["kv"]["key"]), e["kv"]["mod_revision"]) for e in evs],
                 [(0, L + "a", r + 2), (1, L + "sentinel", r + 3)])
        finally:
            proc.stop()

    c.run("etcdctl: watch", watches)

    def leases():
        LP = P + "lease/"
        res = ctl("lease", "grant", "60")
        m = re.fullmatch(r"lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n", res.out)
        if not c.ok("lease grant 60: 'lease <16 hex> granted with TTL(60s)'",
                    m and m.group(2) == "60", repr(res)):
            return
        hx = m.group(1)
        lid = int(hx, 16)
        c.ok("lease grant: non-zero ID", lid != 0)
        j = ctlj("lease", "grant", "30")
        c.ok("lease grant -w json: ID and TTL", j.get("ID", 0) > 0 and j.get("TTL") == 30, str(j))
        c.ok("lease IDs are distinct", j.get("ID") != lid)
        other = j.get("ID")
        r1, _ = put_rev(LP + "k1", "v", f"--lease={hx}")
        put_rev(LP + "k2", "v", f"--lease={hx}")
        put_rev(LP + "free", "v")
        g = ctlj("get", LP + "k1")
        c.eq("put --lease: kv.lease is the lease ID", kvd(g["kvs"][0])["lease"], lid)
        res = ctl("lease", "timetolive", hx, "--keys")
        m = re.fullmatch(rf"lease {hx} granted with TTL\(60s\), remaining\((\d+)s\), "
                         r"attached keys\(\[(.*)\]\)\n", res.out)
        if c.ok("lease timetolive --keys: simple output", m, repr(res)):
            c.ok("lease timetolive: 50 <= remaining <= 60", 50 <= int(m.group(1)) <= 60,
                 m.group(1))
            c.eq("lease timetolive --keys: attached keys", sorted(m.group(2).split(" ")),
                 [LP + "k1", LP + "k2"])
        j = ctlj("lease", "timetolive", hx, "--keys")
        c.eq("lease timetolive -w json: id, granted-ttl, keys",
             (j.get("id"), j.get("granted-ttl"), sorted(b64(k) for k in j.get("keys") or [])),
             (lid, 60, [LP + "k1", LP + "k2"]))
        c.ok("lease timetolive -w json: 50 <= ttl <= 60", 50 <= j.get("ttl", -9) <= 60, str(j))
        j = ctlj("lease", "timetolive", hx)
        c.ok("lease timetolive without --keys: no keys", not j.get("keys"), str(j))
        res = ctl("lease", "keep-alive", "--once", hx)
        c.eq("lease keep-alive --once", res.out, f"lease {hx} keepalived with TTL(60)\n")
        j = ctlj("lease", "keep-alive", "--once", hx)
        c.eq("lease keep-alive --once -w json: ID, TTL", (j.get("ID"), j.get("TTL")), (lid, 60))
        res = ctl("lease", "list")
        lines = res.out.splitlines()
        c.ok("lease list: 'found N leases' and both IDs",
             lines and re.fullmatch(r"found \d+ leases", lines[0]) and hx in lines[1:]
             and "%016x" % other in lines[1:], repr(res))
        j = ctlj("lease", "list")
        c.ok("lease list -w json: leases[].id",
             {lid, other} <= {x.get("id") for x in j.get("leases") or []}, str(j))

        r = rev_now(P)
        res = ctl("lease", "revoke", hx)
        c.eq("lease revoke", res.out, f"lease {hx} revoked\n")
        c.eq("lease revoke: its keys deleted in one revision", rev_now(P), r + 1)
        c.eq("lease revoke: only the lease's keys are deleted",
             [b64(kv["key"]) for kv in ctlj("get", LP, "--prefix").get("kvs", [])],
             [LP + "free"])
        res = ctl("lease", "timetolive", hx)
        c.eq("lease timetolive after revoke", res.out, f"lease {hx} already expired\n")
        j = ctlj("lease", "timetolive", hx, "--keys")
        c.eq("lease timetolive -w json after revoke: ttl -1, granted-ttl 0, no keys",
             (j.get("id"), j.get("ttl"), j.get("granted-ttl", 0), j.get("keys")),
             (lid, -1, 0, None))
        check_error("lease revoke twice", ctl("lease", "revoke", hx),
                    f"failed to revoke lease ({LEASE_NOT_FOUND})", "NotFound")
        res = ctl("lease", "keep-alive", "--once", hx)
        c.ok("lease keep-alive --once on a revoked lease: fails", res.rc != 0, repr(res))
        c.eq("lease keep-alive --once on a revoked lease: message", res.error, LEASE_NOT_FOUND)
        check_error("put --lease with a revoked lease", ctl("put", LP + "x", "v", f"--lease={hx}"),
                    LEASE_NOT_FOUND, "NotFound")
        check_error("put --lease with an unknown lease",
                    ctl("put", LP + "x", "v", "--lease=7ffffffffff00001"), LEASE_NOT_FOUND,
                    "NotFound")
        res = ctl("lease", "timetolive", "7ffffffffff00001")
        c.eq("lease timetolive of an unknown lease: 'already expired', exit 0", (res.rc, res.out),
             (0, "lease 7ffffffffff00001 already expired\n"))
        ctl("lease", "revoke", "%016x" % other)

        j = ctlj("lease", "grant", "1")
        c.ok("lease grant 1: granted TTL >= 1", j.get("TTL", 0) >= 1, str(j))
        c.note(f"lease grant 1 -> TTL {j.get('TTL')} (etcd 3.4 raises TTLs to its minimum)")
        ctl("lease", "revoke", "%016x" % j["ID"])

        # Expiry: a 3 s lease deletes its key by itself.
        j = ctlj("lease", "grant", "3")
        ex = "%016x" % j["ID"]
        t0 = time.monotonic()
        put_rev(LP + "expiring", "v", f"--lease={ex}")
        c.eq("key with a live lease exists", ctlj("get", LP + "expiring").get("count", 0), 1)
        gone = None
        while time.monotonic() - t0 < 10:
            if ctlj("get", LP + "expiring").get("count", 0) == 0:
                gone = time.monotonic() - t0
                break
            time.sleep(0.2)
        c.ok("lease expiry: key deleted within TTL+5 s, not before TTL-1 s",
             gone is not None and gone >= 2.0, f"gone after {gone}")
        c.note(f"3 s lease expired after {gone and round(gone, 2)} s")
        c.eq("expired lease: timetolive says expired", ctl("lease", "timetolive", ex).out,
             f"lease {ex} already expired\n")

    c.run("etcdctl: lease", leases)

    def status_members():
        j = ctlj("endpoint", "status")
        c.eq("endpoint status -w json: one entry for the endpoint",
             [x.get("Endpoint") for x in j], [ENDPOINT])
        st = j[0]["Status"]
        h = st.get("header", {})
        r = rev_now(P)
        c.eq("endpoint status: header.revision is the current revision", h.get("revision"), r)
        c.eq("endpoint status: cluster_id, member_id as in KV headers",
             (h.get("cluster_id"), h.get("member_id")), base.get("ids"))
        c.ok("endpoint status: version is x.y.z", re.fullmatch(r"\d+\.\d+\.\d+",
                                                               st.get("version", "")), str(st))
        c.eq("endpoint status: a single member leads itself", st.get("leader"), h.get("member_id"))
        c.ok("endpoint status: dbSize > 0, 0 < dbSizeInUse <= dbSize",
             st.get("dbSize", 0) > 0 and 0 < st.get("dbSizeInUse", 0) <= st.get("dbSize", 0),
             str(st))
        c.ok("endpoint status: raftIndex, raftAppliedIndex, raftTerm > 0",
             st.get("raftIndex", 0) > 0 and st.get("raftAppliedIndex", 0) > 0
             and st.get("raftTerm", 0) > 0, str(st))
        c.ok("endpoint status: no errors, not a learner",
             not st.get("errors") and not st.get("isLearner"), str(st))
        put_rev(P + "status", "x")
        st2 = ctlj("endpoint", "status")[0]["Status"]
        c.ok("endpoint status: raftIndex grows with a write",
             st2.get("raftIndex", 0) > st.get("raftIndex", 0), f"{st} -> {st2}")
        res = ctl("endpoint", "status")
        c.ok("endpoint status simple output: endpoint, member id hex, version",
             res.out.startswith(f"{ENDPOINT}, {h.get('member_id', 0):x}, {st.get('version')}, "),
             repr(res))
        res = ctl("endpoint", "health")
        c.ok("endpoint health: healthy", res.rc == 0 and re.match(
            rf"{re.escape(ENDPOINT)} is healthy: successfully committed proposal: took = ",
            res.out + res.err), repr(res))

        j = ctlj("member", "list")
        ms = j.get("members", [])
        c.eq("member list: one member", len(ms), 1)
        if not ms:
            return
        m = ms[0]
        c.eq("member list: ID is the header's member_id", m.get("ID"), hdr(j).get("member_id"))
        c.eq("member list: header cluster_id as in KV headers", hdr(j).get("cluster_id"),
             base["ids"][0])
        c.ok("member list: not a learner", not m.get("isLearner"))
        if srv is not None:
            c.eq("member list: name, peerURLs, clientURLs as launched",
                 (m.get("name"), m.get("peerURLs"), m.get("clientURLs")),
                 (Server.NAME, [srv.peer_url], [srv.client_url]))
            res = ctl("member", "list")
            c.eq("member list simple output", res.out,
                 f"{m['ID']:x}, started, {Server.NAME}, {srv.peer_url}, {srv.client_url}, false\n")
        else:
            c.ok("member list: clientURLs include the endpoint",
                 any(u.endswith(ENDPOINT) for u in m.get("clientURLs") or []), str(m))

    c.run("etcdctl: endpoint status, member list", status_members)

    def compaction():
        K = P + "cmp/k"
        r1, _ = put_rev(K, "v1")
        r2, _ = put_rev(K, "v2")
        r3, _ = put_rev(K, "v3")
        res = ctl("compact", r2)
        c.eq("compact R", (res.rc, res.out), (0, f"compacted revision {r2}\n"))
        check_error("get --rev below the compacted revision", ctl("get", K, f"--rev={r1}"),
                    COMPACTED, "OutOfRange")
        g = ctlj("get", K, f"--rev={r2}")
        c.eq("get --rev at the compacted revision still works", kvd(g["kvs"][0])["value"], "v2")
        g = ctlj("get", K, f"--rev={r3}")
        c.eq("get --rev after the compacted revision works", kvd(g["kvs"][0])["value"], "v3")
        c.eq("get of the latest value after compaction", kvd(ctlj("get", K)["kvs"][0]),
             {"key": K, "value": "v3", "create": r1, "mod": r3, "version": 3, "lease": 0})
        check_error("compact the same revision again", ctl("compact", r2), COMPACTED, "OutOfRange")
        check_error("compact an older revision", ctl("compact", r1), COMPACTED, "OutOfRange")
        now = rev_now(P)
        check_error("compact a future revision", ctl("compact", now + 1), FUTURE_REV, "OutOfRange")

        proc = WatchProc([K, f"--rev={r1}", "-w", "json"])
        rc = proc.wait(10)
        out = proc.lines
        err = proc.stderr()
        c.ok("watch --rev below compaction: etcdctl exits non-zero", rc not in (None, 0),
             f"rc={rc}")
        c.ok("watch --rev below compaction: stderr names the compaction",
             f"watch was canceled ({COMPACTED})" in err, err)
        last = json.loads(out[-1]) if out else {}
        c.eq("watch --rev below compaction: response Canceled, CompactRevision = R, no events",
             (last.get("Canceled"), last.get("CompactRevision"), last.get("Events") or []),
             (True, r2, []))
        resps = watch_collect([K, f"--rev={r2}"], 2)
        c.eq("watch --rev at the compacted revision replays from there",
             [(b64(e["kv"]["value"]), e["kv"]["mod_revision"]) for x in resps
              for e in x.get("Events") or []], [("v2", r2), ("v3", r3)])
        res = ctl("compact", r3, "--physical")
        c.eq("compact --physical", (res.rc, res.out), (0, f"compacted revision {r3}\n"))
        check_error("get --rev below a physical compaction", ctl("get", K, f"--rev={r2}"),
                    COMPACTED, "OutOfRange")

    c.run("etcdctl: compaction", compaction)


class WatchProc:
    """`etcdctl watch ARGS` in the background; stdout lines read by a thread."""

    def __init__(self, args):
        argv = [ETCDCTL, f"--endpoints={ENDPOINT}", "--dial-timeout=3s", "watch"] + list(args)
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + argv,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, env=ctl_env(), text=True)
        self.q = queue.Queue()
        self.lines = []
        self._err = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.q), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, None), daemon=True).start()

    def _read(self, f, q):
        for line in f:
            if q is None:
                self._err.append(line)
            else:
                self.lines.append(line)
                q.put(line)
        if q is not None:
            q.put(None)

    def next_line(self, timeout):
        try:
            return self.q.get(timeout=timeout)
        except queue.Empty:
            return None

    def next(self, timeout):
        """The next JSON line (a WatchResponse), or None."""
        line = self.next_line(timeout)
        return json.loads(line) if line else None

    def drain(self, timeout):
        while self.next_line(timeout) is not None:
            pass

    def wait(self, timeout):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            return None
        time.sleep(0.1)  # let the readers finish
        return rc

    def stderr(self):
        return "".join(self._err)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def watch_collect(args, n_events, timeout=10.0, fmt="json"):
    """Runs etcdctl watch until n_events events arrived; returns the list of JSON
    responses (fmt json) or the raw text (fmt simple)."""
    if fmt == "json":
        proc = WatchProc(list(args) + ["-w", "json"])
    else:
        proc = WatchProc(list(args))
    resps, text, count = [], "", 0
    deadline = time.monotonic() + timeout
    try:
        while count < n_events and time.monotonic() < deadline:
            line = proc.next_line(max(0.05, deadline - time.monotonic()))
            if line is None:
                if proc.proc.poll() is not None:
                    break
                continue
            if fmt == "json":
                m = json.loads(line)
                resps.append(m)
                count += len(m.get("Events") or [])
            else:
                text += line
                if line.strip() in ("PUT", "DELETE"):
                    count += 1
        if fmt != "json":
            # the last event's key and value lines
            for _ in range(2):
                line = proc.next_line(2)
                if line is None:
                    break
                text += line
    finally:
        proc.stop()
    if count < n_events:
        c.note(f"watch {args}: {count} of {n_events} events; stderr: {proc.stderr()!r}")
    return resps if fmt == "json" else text


# ------------------------------------------------------------------ grpc stage

class Grpc:
    def __init__(self, proto_root, out_dir, endpoint):
        import grpc  # noqa: F401 - python3-grpcio
        self.grpc = grpc
        os.makedirs(out_dir, exist_ok=True)
        subprocess.run(["protoc", f"-I{proto_root}", f"--python_out={out_dir}",
                        "etcd/etcdserverpb/rpc.proto", "etcd/mvccpb/kv.proto"], check=True)
        sys.path.insert(0, out_dir)
        from etcd.etcdserverpb import rpc_pb2  # noqa: E402
        from etcd.mvccpb import kv_pb2  # noqa: E402
        self.pb, self.kv = rpc_pb2, kv_pb2
        self.ch = grpc.insecure_channel(endpoint)
        grpc.channel_ready_future(self.ch).result(timeout=10)
        pb = rpc_pb2
        ser = lambda m: m.SerializeToString()  # noqa: E731

        def uu(svc, meth, resp):
            return self.ch.unary_unary(f"/etcdserverpb.{svc}/{meth}", request_serializer=ser,
                                       response_deserializer=resp.FromString)
        self.Range = uu("KV", "Range", pb.RangeResponse)
        self.Put = uu("KV", "Put", pb.PutResponse)
        self.DeleteRange = uu("KV", "DeleteRange", pb.DeleteRangeResponse)
        self.Txn = uu("KV", "Txn", pb.TxnResponse)
        self.Compact = uu("KV", "Compact", pb.CompactionResponse)
        self.LeaseGrant = uu("Lease", "LeaseGrant", pb.LeaseGrantResponse)
        self.LeaseRevoke = uu("Lease", "LeaseRevoke", pb.LeaseRevokeResponse)
        self.LeaseTimeToLive = uu("Lease", "LeaseTimeToLive", pb.LeaseTimeToLiveResponse)
        self.LeaseLeases = uu("Lease", "LeaseLeases", pb.LeaseLeasesResponse)
        self.MemberList = uu("Cluster", "MemberList", pb.MemberListResponse)
        self.Status = uu("Maintenance", "Status", pb.StatusResponse)
        self._watch = self.ch.stream_stream("/etcdserverpb.Watch/Watch", request_serializer=ser,
                                            response_deserializer=pb.WatchResponse.FromString)
        self._ka = self.ch.stream_stream("/etcdserverpb.Lease/LeaseKeepAlive",
                                         request_serializer=ser,
                                         response_deserializer=pb.LeaseKeepAliveResponse.FromString)

    def stream(self, which):
        return Stream(self._watch if which == "watch" else self._ka)

    def expect_error(self, what, fn, code, details):
        return c.code(what, fn, getattr(self.grpc.StatusCode, code), details)


class Stream:
    """A bidi stream: send() requests, next(timeout) responses (None on timeout)."""

    def __init__(self, method):
        self.req = queue.Queue()
        self.resp = queue.Queue()
        self.call = method(iter(self.req.get, None), timeout=60)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            for m in self.call:
                self.resp.put(m)
        except Exception as e:  # noqa: BLE001 - end of stream
            self.resp.put(e)
        self.resp.put(None)

    def send(self, m):
        self.req.put(m)

    def next(self, timeout=5.0):
        try:
            m = self.resp.get(timeout=timeout)
        except queue.Empty:
            return None
        if isinstance(m, Exception):
            raise m
        return m

    def close(self):
        self.req.put(None)
        self.call.cancel()


def stage_grpc(P, proto_root, tmp):
    g = Grpc(proto_root, os.path.join(tmp, "py"), ENDPOINT)
    pb = g.pb
    Pb = P.encode()

    def b(s):
        return (P + s).encode()

    def cur():
        return g.Range(pb.RangeRequest(key=Pb + b"__rev")).header.revision

    def kv_rules():
        r0 = cur()
        for k in ("a", "b", "c"):
            g.Put(pb.PutRequest(key=b("g/" + k), value=b"1"))
        g.Put(pb.PutRequest(key=b("g/a"), value=b"2"))  # a: create r0+1, mod r0+4
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), min_mod_revision=r0 + 3))
        c.eq("Range min_mod_revision filters", [kv.key for kv in rr.kvs], [b("g/a"), b("g/c")])
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), max_mod_revision=r0 + 3))
        c.eq("Range max_mod_revision filters", [kv.key for kv in rr.kvs], [b("g/b"), b("g/c")])
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), min_create_revision=r0 + 2,
                                     max_create_revision=r0 + 2))
        c.eq("Range min/max_create_revision filter", [kv.key for kv in rr.kvs], [b("g/b")])
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), count_only=True, limit=1))
        c.eq("Range count_only with limit: count of the whole range, no kvs",
             (rr.count, len(rr.kvs)), (3, 0))
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), revision=-5))
        c.eq("Range revision < 0 reads the newest", len(rr.kvs), 3)
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), limit=-1))
        c.eq("Range limit < 0 is no limit", len(rr.kvs), 3)
        rr = g.Range(pb.RangeRequest(key=b("g/"), range_end=b("g0"), keys_only=True))
        c.eq("Range keys_only: no values, metadata kept",
             [(kv.key, kv.value, kv.version) for kv in rr.kvs],
             [(b("g/a"), b"", 2), (b("g/b"), b"", 1), (b("g/c"), b"", 1)])
        g.expect_error("Range with an empty key",
                       lambda: g.Range(pb.RangeRequest()), "INVALID_ARGUMENT",
                       "etcdserver: key is not provided")
        g.expect_error("Put with an empty key",
                       lambda: g.Put(pb.PutRequest(value=b"v")), "INVALID_ARGUMENT",
                       "etcdserver: key is not provided")
        g.expect_error("DeleteRange with an empty key",
                       lambda: g.DeleteRange(pb.DeleteRangeRequest()), "INVALID_ARGUMENT",
                       "etcdserver: key is not provided")
        g.expect_error("Put ignore_value on a missing key",
                       lambda: g.Put(pb.PutRequest(key=b("g/missing"), ignore_value=True)),
                       "INVALID_ARGUMENT", "etcdserver: key not found")
        g.expect_error("Put ignore_lease on a missing key",
                       lambda: g.Put(pb.PutRequest(key=b("g/missing"), ignore_lease=True)),
                       "INVALID_ARGUMENT", "etcdserver: key not found")
        g.expect_error("Put ignore_value with a value",
                       lambda: g.Put(pb.PutRequest(key=b("g/a"), value=b"x", ignore_value=True)),
                       "INVALID_ARGUMENT", "etcdserver: value is provided")
        g.expect_error("Put ignore_lease with a lease",
                       lambda: g.Put(pb.PutRequest(key=b("g/a"), lease=5, ignore_lease=True)),
                       "INVALID_ARGUMENT", "etcdserver: lease is provided")
        lease = g.LeaseGrant(pb.LeaseGrantRequest(TTL=60)).ID
        g.Put(pb.PutRequest(key=b("g/l"), value=b"one", lease=lease))
        r = g.Put(pb.PutRequest(key=b("g/l"), ignore_value=True, prev_kv=True))
        kv = g.Range(pb.RangeRequest(key=b("g/l"))).kvs[0]
        c.eq("Put ignore_value keeps the value (and lease is dropped unless ignore_lease)",
             (kv.value, kv.version, kv.lease), (b"one", 2, 0))
        c.eq("Put prev_kv returns the previous pair", (r.prev_kv.value, r.prev_kv.lease),
             (b"one", lease))
        g.Put(pb.PutRequest(key=b("g/l"), value=b"x", lease=lease))
        g.Put(pb.PutRequest(key=b("g/l"), value=b"two", ignore_lease=True))
        kv = g.Range(pb.RangeRequest(key=b("g/l"))).kvs[0]
        c.eq("Put ignore_lease keeps the lease", (kv.value, kv.lease), (b"two", lease))
        tr = g.Txn(pb.TxnRequest(
            compare=[pb.Compare(key=b("g/l"), target=pb.Compare.LEASE,
                                result=pb.Compare.EQUAL, lease=lease)],
            success=[pb.RequestOp(request_range=pb.RangeRequest(key=b("g/l")))]))
        c.eq("Txn compare LEASE equal", tr.succeeded, True)
        tr = g.Txn(pb.TxnRequest(compare=[pb.Compare(key=b("g/a"), target=pb.Compare.LEASE,
                                                     result=pb.Compare.EQUAL, lease=0)]))
        c.eq("Txn compare LEASE = 0 on a key without lease", tr.succeeded, True)
        tr = g.Txn(pb.TxnRequest(compare=[pb.Compare(
            key=b("g/"), range_end=b("g0"), target=pb.Compare.VERSION,
            result=pb.Compare.GREATER, version=0)]))
        c.eq("Txn compare over a range (range_end): holds for every key", tr.succeeded, True)
        tr = g.Txn(pb.TxnRequest(compare=[pb.Compare(
            key=b("g/"), range_end=b("g0"), target=pb.Compare.VERSION,
            result=pb.Compare.GREATER, version=1)]))
        c.eq("Txn compare over a range: fails if one key fails", tr.succeeded, False)
        g.LeaseRevoke(pb.LeaseRevokeRequest(ID=lease))

        r = cur()
        tr = g.Txn(pb.TxnRequest(success=[
            pb.RequestOp(request_txn=pb.TxnRequest(
                compare=[pb.Compare(key=b("g/a"), target=pb.Compare.VALUE,
                                    result=pb.Compare.EQUAL, value=b"2")],
                success=[pb.RequestOp(request_put=pb.PutRequest(key=b("g/n1"), value=b"1"))])),
            pb.RequestOp(request_put=pb.PutRequest(key=b("g/n2"), value=b"2"))]))
        inner = tr.responses[0].response_txn if tr.responses else None
        c.ok("nested Txn: outer and inner succeeded",
             tr.succeeded and inner is not None and inner.succeeded, str(tr))
        c.eq("nested Txn: one revision for all writes", (tr.header.revision, cur()), (r + 1, r + 1))
        c.eq("nested Txn: the inner put's header revision",
             inner.responses[0].response_put.header.revision if inner else None, r + 1)
        c.note(f"nested Txn: inner TxnResponse header = {inner.header if inner else None!r} "
               "(etcd 3.4 leaves it empty)")
        g.expect_error("nested Txn writing a key the outer txn writes",
                       lambda: g.Txn(pb.TxnRequest(success=[
                           pb.RequestOp(request_txn=pb.TxnRequest(success=[pb.RequestOp(
                               request_put=pb.PutRequest(key=b("g/n1"), value=b"x"))])),
                           pb.RequestOp(request_put=pb.PutRequest(key=b("g/n1"), value=b"y"))])),
                       "INVALID_ARGUMENT", DUP_KEY)
        tr = g.Txn(pb.TxnRequest(success=[
            pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b("g/n1"))),
            pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=b("g/n1")))]))
        c.eq("Txn deleting one key twice is allowed: deleted 1 then 0",
             [x.response_delete_range.deleted for x in tr.responses], [1, 0])
        g.expect_error("Put over the request size limit (1.6 MiB value)",
                       lambda: g.Put(pb.PutRequest(key=b("g/big"), value=b"x" * (1600 << 10))),
                       "INVALID_ARGUMENT", "etcdserver: request is too large")
        g.expect_error("Put over the gRPC message limit (2 MiB value)",
                       lambda: g.Put(pb.PutRequest(key=b("g/big"), value=b"x" * (2 << 20))),
                       "RESOURCE_EXHAUSTED", None)
        r = g.Put(pb.PutRequest(key=b("g/big"), value=b"x" * (1 << 20)))
        c.ok("Put of a 1 MiB value works", r.header.revision > 0)

    c.run("grpc: KV rules", kv_rules)

    def watch_rules():
        w = g.stream("watch")
        try:
            r = cur()
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b("w/a"))))
            m = w.next()
            c.ok("Watch create: created response, no events, header.revision = current",
                 m is not None and m.created and not m.events and m.header.revision == r,
                 str(m))
            wid_a = m.watch_id if m else None
            g.Put(pb.PutRequest(key=b("w/a"), value=b"1"))
            g.Put(pb.PutRequest(key=b("w/b"), value=b"1"))
            m = w.next()
            c.ok("Watch: the put on the watched key, nothing else",
                 m is not None and m.watch_id == wid_a and [e.kv.key for e in m.events]
                 == [b("w/a")] and m.events[0].kv.mod_revision == r + 1
                 and m.header.revision == r + 1, str(m))
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=b("w/"), range_end=b("w0"), filters=[pb.WatchCreateRequest.NOPUT],
                prev_kv=True, watch_id=100)))
            m = w.next()
            c.ok("Watch create with watch_id 100: created with that id",
                 m is not None and m.created and m.watch_id == 100, str(m))
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b("w/"),
                                                                        watch_id=100)))
            m = w.next()
            c.ok("Watch create with a watch_id in use: created and canceled, watch_id -1",
                 m is not None and m.created and m.canceled and m.watch_id == -1, str(m))
            c.eq("Watch create with a watch_id in use: cancel_reason",
                 m.cancel_reason if m else None,
                 "mvcc: duplicate watch ID provided on the WatchStream")
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b("w/c"))))
            m = w.next()
            c.ok("Watch: ids are distinct on one stream", m is not None and m.created
                 and m.watch_id not in (wid_a, 100), str(m))
            wid_c = m.watch_id if m else None
            g.Put(pb.PutRequest(key=b("w/b"), value=b"2"))
            r = cur()
            g.DeleteRange(pb.DeleteRangeRequest(key=b("w/b")))
            m = w.next()
            c.ok("Watch filter NOPUT: only the delete, with prev_kv",
                 m is not None and m.watch_id == 100 and len(m.events) == 1
                 and m.events[0].type == g.kv.Event.DELETE
                 and m.events[0].kv.mod_revision == r + 1
                 and m.events[0].prev_kv.value == b"2", str(m))
            w.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=100)))
            m = w.next()
            c.ok("Watch cancel of watch 100", m is not None and m.canceled and m.watch_id == 100,
                 str(m))
            w.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
            m = w.next()
            c.ok("Watch progress request: a response with no events, header.revision = current",
                 m is not None and not m.events and not m.created and not m.canceled
                 and m.header.revision == cur(), str(m))
            c.eq("Watch progress response watch_id", m.watch_id if m else None, -1)
            w.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=wid_c)))
            m = w.next()
            c.ok("Watch cancel: canceled response for that id",
                 m is not None and m.canceled and m.watch_id == wid_c, str(m))
            w.send(pb.WatchRequest(cancel_request=pb.WatchCancelRequest(watch_id=987654)))
            w.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
            m = w.next()
            c.ok("Watch cancel of an unknown id: no response (the next one is the progress)",
                 m is not None and m.watch_id == -1 and not m.canceled, str(m))
            g.Put(pb.PutRequest(key=b("w/c"), value=b"1"))
            w.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
            m = w.next()
            c.ok("Watch: a canceled watcher gets no events (next response is the progress)",
                 m is not None and not m.events, str(m))

            r = cur()
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
                key=b("w/f"), start_revision=r + 2)))
            m = w.next()
            c.ok("Watch create with a future start_revision: created",
                 m is not None and m.created, str(m))
            g.Put(pb.PutRequest(key=b("w/f"), value=b"skipped"))
            g.Put(pb.PutRequest(key=b("w/f"), value=b"seen"))
            m = w.next()
            c.ok("Watch from a future revision: events from that revision on",
                 m is not None and [e.kv.value for e in m.events] == [b"seen"], str(m))

            lease = g.LeaseGrant(pb.LeaseGrantRequest(TTL=3)).ID
            w.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(key=b("w/lease"),
                                                                        prev_kv=True)))
            m = w.next()
            c.ok("Watch create (lease key)", m is not None and m.created, str(m))
            t0 = time.monotonic()
            g.Put(pb.PutRequest(key=b("w/lease"), value=b"x", lease=lease))
            m = w.next()
            c.ok("Watch: put with lease carries kv.lease",
                 m is not None and m.events and m.events[0].kv.lease == lease, str(m))
            m = w.next(timeout=10)
            dt = time.monotonic() - t0
            c.ok("lease expiry: a DELETE event with prev_kv (within TTL+5 s)",
                 m is not None and m.events and m.events[0].type == g.kv.Event.DELETE
                 and m.events[0].prev_kv.value == b"x" and m.events[0].kv.key == b("w/lease"),
                 str(m))
            c.ok("lease expiry: not before TTL-1 s", dt >= 2.0, f"{dt:.2f}s")
            w.send(pb.WatchRequest())
            w.send(pb.WatchRequest(progress_request=pb.WatchProgressRequest()))
            m = w.next()
            c.ok("Watch: an empty WatchRequest is ignored (stream stays up)",
                 m is not None and m.watch_id == -1, str(m))
        finally:
            w.close()

    c.run("grpc: watch", watch_rules)

    def lease_rules():
        lid = 0x10000 + random.getrandbits(24)
        r = g.LeaseGrant(pb.LeaseGrantRequest(TTL=30, ID=lid))
        c.eq("LeaseGrant with a chosen ID", (r.ID, r.TTL, r.error), (lid, 30, ""))
        g.expect_error("LeaseGrant of an ID in use",
                       lambda: g.LeaseGrant(pb.LeaseGrantRequest(TTL=30, ID=lid)),
                       "FAILED_PRECONDITION", "etcdserver: lease already exists")
        r0 = g.LeaseGrant(pb.LeaseGrantRequest(TTL=0))
        c.ok("LeaseGrant TTL 0: granted with a positive TTL", r0.ID != 0 and r0.TTL > 0, str(r0))
        c.note(f"LeaseGrant TTL 0 -> TTL {r0.TTL}")
        g.expect_error("LeaseGrant with a huge TTL",
                       lambda: g.LeaseGrant(pb.LeaseGrantRequest(TTL=10 ** 12)),
                       "OUT_OF_RANGE", "etcdserver: too large lease TTL")
        ids = {x.ID for x in g.LeaseLeases(pb.LeaseLeasesRequest()).leases}
        c.ok("LeaseLeases lists granted leases", {lid, r0.ID} <= ids, str(ids))
        t = g.LeaseTimeToLive(pb.LeaseTimeToLiveRequest(ID=424242, keys=True))
        c.eq("LeaseTimeToLive of an unknown lease: OK with TTL -1", (t.ID, t.TTL, t.grantedTTL,
                                                                     list(t.keys)),
             (424242, -1, 0, []))
        ka = g.stream("ka")
        try:
            ka.send(pb.LeaseKeepAliveRequest(ID=424242))
            m = ka.next()
            c.ok("LeaseKeepAlive of an unknown lease: a response with ID and TTL 0 (no error)",
                 m is not None and m.ID == 424242 and m.TTL == 0, str(m))
            ka.send(pb.LeaseKeepAliveRequest(ID=lid))
            m = ka.next()
            c.ok("LeaseKeepAlive: ID and the granted TTL",
                 m is not None and m.ID == lid and m.TTL == 30 and m.header.revision > 0, str(m))
        finally:
            ka.close()
        g.LeaseRevoke(pb.LeaseRevokeRequest(ID=lid))
        g.LeaseRevoke(pb.LeaseRevokeRequest(ID=r0.ID))
        g.expect_error("LeaseRevoke of an unknown lease",
                       lambda: g.LeaseRevoke(pb.LeaseRevokeRequest(ID=lid)), "NOT_FOUND",
                       LEASE_NOT_FOUND)
        g.expect_error("Put with an unknown lease",
                       lambda: g.Put(pb.PutRequest(key=b("l/x"), value=b"v", lease=lid)),
                       "NOT_FOUND", LEASE_NOT_FOUND)

    c.run("grpc: lease", lease_rules)

    def cluster():
        s = g.Status(pb.StatusRequest())
        ml = g.MemberList(pb.MemberListRequest())
        c.eq("Status and MemberList: same cluster and member",
             (s.header.cluster_id, s.header.member_id),
             (ml.header.cluster_id, ml.members[0].ID if ml.members else None))
        c.ok("Status: version, dbSize, leader", s.version and s.dbSize > 0
             and s.leader == s.header.member_id, str(s))
        c.note(f"MemberList header.revision = {ml.header.revision} (etcd 3.4 leaves it 0)")

    c.run("grpc: status, member list", cluster)


# ------------------------------------------------------------------ node stage

def stage_node(P, script):
    if not os.environ.get("KEEL_NODE_MODULES"):
        c.fail("node stage: KEEL_NODE_MODULES is not set "
               "(--test_env=KEEL_NODE_MODULES=<repo>/tools/npm/node_modules)")
        return
    node = "node" if subprocess.run(["sh", "-c", "command -v node"], capture_output=True
                                    ).returncode == 0 else "/usr/bin/node"
    env = dict(os.environ, ETCD_ENDPOINT=ENDPOINT, ETCD_PREFIX=P + "node/")
    print(f"--- node: {script}", flush=True)
    try:
        r = subprocess.run([node, script], env=env, timeout=60)
        rc = r.returncode
    except subprocess.TimeoutExpired:
        rc = "timeout"
    c.eq("node etcd3 client checks (see above)", rc, 0)


# ------------------------------------------------------------------ main

def main():
    global ETCDCTL, ENDPOINT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--server")
    g.add_argument("--endpoint")
    ap.add_argument("--server-arg", action="append", default=[])
    ap.add_argument("--etcdctl", default="/usr/bin/etcdctl")
    ap.add_argument("--proto-root", default=os.path.join(HERE, "..", "..", "proto"))
    ap.add_argument("--node-script", default=os.path.join(HERE, "etcd3_client.js"))
    ap.add_argument("--stages", default="etcdctl,grpc,node")
    a = ap.parse_args()
    keeltest.init()
    ETCDCTL = a.etcdctl
    stages = a.stages.split(",")
    if "node" in stages and not os.environ.get("KEEL_NODE_MODULES"):
        c.fail("node stage: KEEL_NODE_MODULES is not set "
               "(--test_env=KEEL_NODE_MODULES=<repo>/tools/npm/node_modules)")
        return c.finish()
    tmp = keeltest.tmpdir("etcd-conformance")
    srv = None
    t0 = time.monotonic()
    if a.server:
        srv = Server(os.path.abspath(a.server) if os.path.exists(a.server) else a.server,
                     a.server_arg, tmp)
        atexit_kill(srv)
        ENDPOINT = "?"
        try:
            srv.start()
        except RuntimeError as e:
            c.fail("server starts", str(e))
            return c.finish()
        ENDPOINT = srv.endpoint
    else:
        ENDPOINT = a.endpoint
    print(f"endpoint {ENDPOINT}", flush=True)
    P = "/keel-conformance/%d-%08x/" % (os.getpid(), random.getrandbits(32))
    # The etcdctl stage compacts at its end; the other stages only use later revisions.
    if "etcdctl" in stages:
        stage_etcdctl(P, srv)
        print(f"(etcdctl stage done at {time.monotonic() - t0:.1f}s)", flush=True)
    if "grpc" in stages:
        c.run("grpc stage", lambda: stage_grpc(P, os.path.abspath(a.proto_root), tmp))
        print(f"(grpc stage done at {time.monotonic() - t0:.1f}s)", flush=True)
    if "node" in stages:
        stage_node(P, os.path.abspath(a.node_script))
        print(f"(node stage done at {time.monotonic() - t0:.1f}s)", flush=True)
    if srv is not None:
        c.ok("server still running at the end", srv.proc.poll() is None, srv.log_tail())
        srv.kill()
    return c.finish()


def atexit_kill(srv):
    import atexit
    atexit.register(srv.kill)


if __name__ == "__main__":
    sys.exit(main())
