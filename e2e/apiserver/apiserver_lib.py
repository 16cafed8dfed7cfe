"""e2e/apiserver/apiserver_lib.py — helpers shared by keel-apiserver's python e2e tests.

- load_api(DESCRIPTORS): message classes and service descriptors from the
  apiserver's own descriptor set, as a client that only has the .pb builds them.
- Api: generic stubs for every keel.api.v1 service, built from those
  descriptors: api.Pods.Create(pod), api.Deployments.GetScale(req),
  api.Pods.Watch(req) (a stream), api.Pods.Exec(iter_of_requests) (bidi). Credentials (a bearer token) ride on every call.
- start_store: keel-store (port 0 + ready file) or a real etcd (unix sockets
  only: etcd takes unix://localhost:N and makes a socket named "localhost:N" in
  its working directory, so no TCP port is ever guessed).
- start_apiserver: keel-apiserver on a store, with --ready-file.
- Watcher: a thread that records a watch stream's events and its status.
- Object builders for every kind, valid by the apiserver's rules.
- expect_code: a call must fail with a code and a message containing given parts.
- stop_all: SIGTERM every daemon, check exit 0 and no sanitizer report in its log.
"""

import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import keeltest as kt  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

SC = grpc.StatusCode
# Sanitized daemons are slower; deadlines that detect hangs scale with it.
SLOW = 3 if os.environ.get("KEEL_SANITIZED") else 1
T = 10 * SLOW

# Every kind: service name, message name, namespaced, subresources.
KINDS = [
    # service,            kind,         namespaced, status, scale
    ("Namespaces", "Namespace", False, True, False),
    ("Pods", "Pod", True, True, False),
    ("Nodes", "Node", False, True, False),
    ("Services", "Service", True, True, False),
    ("EndpointsService", "Endpoints", True, False, False),
    ("Events", "Event", True, False, False),
    ("ReplicaSets", "ReplicaSet", True, True, True),
    ("Deployments", "Deployment", True, True, True),
    ("Leases", "Lease", True, False, False),
]
SERVICE_OF = {k: s for s, k, *_ in KINDS}


# ------------------------------------------------------------------ messages


class ApiTypes:
    """Message classes (by short name: M["Pod"]) and service descriptors."""

    def __init__(self, descriptor_path):
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(kt.read(descriptor_path))
        self.pool = descriptor_pool.DescriptorPool()
        for f in fds.file:
            self.pool.Add(f)
        classes = message_factory.GetMessages(list(fds.file))
        self.M = {n.split(".")[-1]: cls for n, cls in classes.items() if n.startswith("keel.api.v1.")}
        self.classes = classes
        self.services = {}
        for f in fds.file:
            if f.package != "keel.api.v1":
                continue
            for s in f.service:
                self.services[s.name] = {m.name: (m.input_type.lstrip("."), m.output_type.lstrip("."),
                                                  m.server_streaming, m.client_streaming) for m in s.method}


def _ser(m):
    return m.SerializeToString()


class _Service:
    def __init__(self, api, name):
        self._api = api
        self._name = name
        self._methods = api.types.services[name]

    def __getattr__(self, method):
        if method.startswith("_") or method not in self._methods:
            raise AttributeError(f"keel.api.v1.{self._name} has no method {method}")
        _, out, streaming, client_streaming = self._methods[method]
        path = f"/keel.api.v1.{self._name}/{method}"
        des = self._api.types.classes[out].FromString
        if client_streaming:  # Pods/Exec: req is an iterator of requests
            mc = self._api.channel.stream_stream(path, request_serializer=_ser, response_deserializer=des)
            streaming = True
        elif streaming:
            mc = self._api.channel.unary_stream(path, request_serializer=_ser, response_deserializer=des)
        else:
            mc = self._api.channel.unary_unary(path, request_serializer=_ser, response_deserializer=des)
        api = self._api

        def call(req, timeout=None, metadata=None, **kw):
            md = list(api.metadata) + list(metadata or [])
            return mc(req, timeout=timeout or (None if streaming else T), metadata=md or None, **kw)

        return call


class Api:
    """Generic stubs: api.<Service>.<Method>(request, timeout=, metadata=)."""

    def __init__(self, types, channel, token=None):
        self.types = types
        self.M = types.M
        self.channel = channel
        self.metadata = [("authorization", "Bearer " + token)] if token else []

    def __getattr__(self, service):
        if service.startswith("_") or service not in self.types.services:
            raise AttributeError(f"no service keel.api.v1.{service}")
        return _Service(self, service)

    def raw(self, service, method, data, timeout=None, streaming=False, bidi=False):
        """Sends data (bytes) as the request; returns the raw response bytes.
        bidi: data is a list of messages (bytes) for a bidi-streaming method."""
        path = f"/keel.api.v1.{service}/{method}"
        if bidi:
            mc = self.channel.stream_stream(path, request_serializer=kt.identity,
                                            response_deserializer=kt.identity)
            return list(mc(iter(data), timeout=timeout or T, metadata=self.metadata or None))
        if streaming:
            mc = self.channel.unary_stream(path, request_serializer=kt.identity,
                                           response_deserializer=kt.identity)
            return list(mc(data, timeout=timeout or T, metadata=self.metadata or None))
        mc = self.channel.unary_unary(path, request_serializer=kt.identity, response_deserializer=kt.identity)
        return mc(data, timeout=timeout or T, metadata=self.metadata or None)

    def close(self):
        self.channel.close()


def insecure_api(types, addr, token=None):
    return Api(types, grpc.insecure_channel(addr), token)


# ------------------------------------------------------------------ errors


def expect_code(c, what, fn, code, *parts):
    """fn() must raise an RpcError with code whose details contain every part."""
    try:
        fn()
    except grpc.RpcError as e:
        details = e.details() or ""
        missing = [p for p in parts if p not in details]
        return c.ok(what, e.code() == code and not missing,
                    f"got {e.code()} {details!r}, want {code}" + (f" containing {missing!r}" if missing else ""))
    except Exception as e:  # noqa: BLE001
        return c.fail(what, f"unexpected {type(e).__name__}: {e}")
    return c.fail(what, f"call succeeded, want {code}")


def rpc_error(fn):
    """(code, details) of fn()'s RpcError, or (None, result)."""
    try:
        return None, fn()
    except grpc.RpcError as e:
        return e.code(), e.details() or ""


# ------------------------------------------------------------------ daemons


class Etcd:
    """A real etcd (/usr/bin/etcd) listening on unix sockets only."""

    def __init__(self, binary, base):
        self.name = "etcd"
        self.dir = os.path.join(base, "etcd")
        os.makedirs(self.dir, exist_ok=True)
        # etcd makes its sockets in its working directory: keep that short.
        self.sock_dir = kt.sock_dir(self.dir)
        self.log_file = os.path.join(self.dir, "log")
        self.url = "unix:" + os.path.join(self.sock_dir, "localhost:2379")
        argv = [binary, "--name=keel-e2e", "--data-dir=" + os.path.join(self.dir, "data"),
                "--listen-client-urls=unix://localhost:2379", "--advertise-client-urls=unix://localhost:2379",
                "--listen-peer-urls=unix://localhost:2380", "--initial-advertise-peer-urls=unix://localhost:2380",
                "--initial-cluster=keel-e2e=unix://localhost:2380", "--initial-cluster-state=new"]
        log = open(self.log_file, "wb")
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + argv, cwd=self.sock_dir, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        kt._daemons.append(self)  # killed at exit like every Daemon
        print(f"started etcd (pid {self.proc.pid}) in {self.sock_dir}", flush=True)

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        ch = grpc.insecure_channel(self.url)
        rng = ch.unary_unary("/etcdserverpb.KV/Range", request_serializer=kt.identity,
                             response_deserializer=kt.identity)
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"etcd exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    rng(kt.pb_bytes(1, "/keel-e2e-probe"), timeout=1)
                    return self
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"etcd not ready within {timeout}s:\n{self.log_tail()}")
                    time.sleep(0.1)
        finally:
            ch.close()

    def running(self):
        return self.proc.poll() is None

    def stop(self, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = None
        return rc, 0.0

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, n=40):
        try:
            with open(self.log_file, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def start_store(kind, binary, base):
    """(daemon, url) for keel-store or etcd."""
    if kind == "keel-store":
        d = kt.Daemon("keel-store", [binary, "--data-dir=" + os.path.join(base, "store-data"),
                                     "--listen-client-urls=http://127.0.0.1:0",
                                     "--advertise-client-urls=http://127.0.0.1:0"], base)
        d.start().wait_ready()
        return d, "http://" + d.grpc_addr()
    if kind == "etcd":
        e = Etcd(binary, base)
        e.wait_ready()
        return e, e.url
    raise ValueError(f"unknown store kind {kind!r}")


def store_state(url, prefix="/registry/"):
    """(revision, number of keys under prefix) straight from the store, with a
    hand-encoded etcd RangeRequest{key, range_end, count_only}."""
    target = url[len("http://"):] if url.startswith("http://") else url
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    ch = grpc.insecure_channel(target)
    try:
        rng = ch.unary_unary("/etcdserverpb.KV/Range", request_serializer=kt.identity,
                             response_deserializer=kt.identity)
        resp = rng(kt.pb_bytes(1, prefix) + kt.pb_bytes(2, end) + kt.pb_uint(9, 1), timeout=T)
    finally:
        ch.close()
    header = kt.pb_fields(resp, 1)
    rev = kt.pb_fields(header[0], 3) if header else []
    count = kt.pb_fields(resp, 4)
    return (rev[0] if rev else 0, count[0] if count else 0)


def start_apiserver(binary, url, base, name="keel-apiserver", args=(), wait=True):
    argv = [binary, "--etcd-servers=" + url] + list(args)
    if not any(a.startswith(("--token-auth-file", "--client-ca-file")) for a in args):
        argv.append("--anonymous-admin")
    d = kt.Daemon(name, argv, base).start()
    if wait:
        d.wait_ready(timeout=20 * SLOW)
    return d


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_log_clean(c, d):
    try:
        with open(d.log_file, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return
    bad = [m for m in SANITIZER_MARKS if m in text]
    c.ok(f"{d.name}: no sanitizer report in its log", not bad, f"{bad}:\n{d.log_tail(80)}")


def stop_checked(c, d, timeout=10.0):
    """SIGTERM d; exit 0 within timeout and a clean log are checks."""
    rc, _ = d.stop(timeout=timeout * SLOW)
    if not c.eq(f"{d.name}: SIGTERM -> exit status 0", rc, 0):
        print(d.log_tail(80), flush=True)
    check_log_clean(c, d)
    return rc


def stop_all(c, daemons):
    for d in daemons:
        if d is None:
            continue
        if isinstance(d, Etcd):
            d.stop()
        else:
            stop_checked(c, d)


# ------------------------------------------------------------------ watches


class Watcher:
    """Reads a watch stream on a thread: events [(type, name, rv, obj)], then
    code/details (code OK when the stream ended cleanly)."""

    def __init__(self, stream, label="watch"):
        self.stream = stream
        self.label = label
        self.events = []
        self.code = None
        self.details = None
        self.cond = threading.Condition()
        self.done = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        try:
            for ev in self.stream:
                m = ev.object.metadata
                with self.cond:
                    self.events.append((ev.type, m.name, int(m.resource_version or 0), ev.object))
                    self.cond.notify_all()
            code, details = SC.OK, ""
        except grpc.RpcError as e:
            code, details = e.code(), e.details() or ""
        except Exception as e:  # noqa: BLE001
            code, details = SC.UNKNOWN, f"{type(e).__name__}: {e}"
        with self.cond:
            self.code, self.details, self.done = code, details, True
            self.cond.notify_all()

    def wait(self, pred, timeout=T):
        """Waits until pred(events) holds or the stream ended; returns pred's value."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                v = pred(self.events)
                if v or self.done:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return v
                self.cond.wait(left)

    def wait_count(self, n, timeout=T, types=None):
        return self.wait(lambda evs: len(self.changes(types)) >= n, timeout)

    def wait_end(self, timeout=T):
        with self.cond:
            deadline = time.monotonic() + timeout
            while not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        self.t.join(1)
        return True

    def changes(self, types=None):
        """Events other than BOOKMARK (or of the given types) as (type, name, rv)."""
        with self.cond:
            return [(t, n, rv) for t, n, rv, _ in self.events
                    if (t in types if types else t != "BOOKMARK")]

    def last_rv(self):
        with self.cond:
            return max([rv for _, _, rv, _ in self.events], default=0)

    def cancel(self):
        self.stream.cancel()
        self.wait_end(5)


# ------------------------------------------------------------------ objects


def meta(obj, name, ns=None, labels=None):
    obj.metadata.name = name
    if ns is not None:
        obj.metadata.namespace = ns
    for k, v in (labels or {}).items():
        obj.metadata.labels[k] = v
    return obj


def namespace(M, name, labels=None):
    return meta(M["Namespace"](), name, labels=labels)


def pod(M, name, ns="default", labels=None, node="", image="nginx:1.25", finalizers=()):
    p = meta(M["Pod"](), name, ns, labels)
    p.metadata.finalizers.extend(finalizers)
    c = p.spec.containers.add(name="web", image=image)
    c.ports.add(name="http", container_port=80)
    if node:
        p.spec.node_name = node
    return p


def node(M, name, labels=None):
    n = meta(M["Node"](), name, labels=labels)
    n.spec.pod_cidr = "10.244.1.0/24"
    n.status.capacity["cpu"].string = "4"
    n.status.addresses.add(type="InternalIP", address="10.0.0.11")
    return n


def service(M, name, ns="default", app="web", type_=""):
    s = meta(M["Service"](), name, ns)
    s.spec.selector["app"] = app
    if type_:
        s.spec.type = type_
    p = s.spec.ports.add(name="http", port=80)
    p.target_port.int_val = 8080
    return s


def endpoints(M, name, ns="default", ip="10.244.1.5"):
    e = meta(M["Endpoints"](), name, ns)
    ss = e.subsets.add()
    ss.addresses.add(ip=ip)
    ss.ports.add(name="http", port=8080, protocol="TCP")
    return e


def event(M, name, ns="default", pod_name="web"):
    e = meta(M["Event"](), name, ns)
    e.involved_object.kind = "Pod"
    e.involved_object.name = pod_name
    e.involved_object.namespace = ns
    e.reason = "Scheduled"
    e.type = "Normal"
    e.count = 1
    return e


def _template(t, app):
    t.metadata.labels["app"] = app
    t.spec.containers.add(name="web", image="nginx:1.25")


def replicaset(M, name, ns="default", app="web", replicas=2):
    r = meta(M["ReplicaSet"](), name, ns)
    r.spec.replicas.value = replicas
    r.spec.selector.match_labels["app"] = app
    _template(r.spec.template, app)
    return r


def deployment(M, name, ns="default", app="web", replicas=2):
    d = meta(M["Deployment"](), name, ns)
    d.spec.replicas.value = replicas
    d.spec.selector.match_labels["app"] = app
    _template(d.spec.template, app)
    return d


def lease(M, name, ns="default", holder="a"):
    lz = meta(M["Lease"](), name, ns)
    lz.spec.holder_identity.value = holder
    lz.spec.lease_duration_seconds.value = 15
    return lz


def builder(kind):
    return {"Namespace": namespace, "Pod": pod, "Node": node, "Service": service, "Endpoints": endpoints,
            "Event": event, "ReplicaSet": replicaset, "Deployment": deployment, "Lease": lease}[kind]


def make(M, kind, name, ns="default"):
    """A valid object of kind (namespaced kinds in ns)."""
    namespaced = {k: n for _, k, n, _, _ in KINDS}[kind]
    b = builder(kind)
    return b(M, name, ns) if namespaced else b(M, name)


def gr(M, name, ns="", rv=""):
    return M["GetRequest"](namespace=ns, name=name, resource_version=rv)


def dr(M, name, ns="", grace=None):
    d = M["DeleteRequest"](namespace=ns, name=name)
    if grace is not None:
        d.grace_period_seconds.value = grace
    return d


def names(lst):
    return sorted(o.metadata.name for o in lst.items)


def main_wrapper(fn):
    """Runs fn() (which returns a Checks); exit status from its finish()."""
    kt.init()
    c = fn()
    sys.exit(c.finish())
