#!/usr/bin/python3
"""keel-apiserver component test over real gRPC (python3-grpcio), against
keel-store or a real etcd started here.

usage: apiserver_e2e.py KEEL_APISERVER API_DESCRIPTORS.pb (keel-store KEEL_STORE | etcd /usr/bin/etcd)

Message classes come from the apiserver's own descriptor set, as a client that
only has the .pb would build them. Covers CRUD, optimistic concurrency (exactly
one of N concurrent updates with the same resourceVersion wins), watch resumed
from a resourceVersion, selectors, validation errors naming the field, and
namespace lifecycle."""
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import keeltest  # noqa: E402

import grpc  # noqa: E402
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]


def load_messages(path):
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(keeltest.read(path))
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    classes = message_factory.GetMessages([f for f in fds.file])
    return {name.split(".")[-1]: cls for name, cls in classes.items() if name.startswith("keel.api.v1.")}


M = load_messages(DESCRIPTORS)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_store(base):
    if STORE_KIND == "keel-store":
        d = keeltest.Daemon("keel-store", [STORE_BIN, "--data-dir=" + os.path.join(base, "store"),
                                           "--listen-client-urls=http://127.0.0.1:0",
                                           "--advertise-client-urls=http://127.0.0.1:0"], base)
        d.start()
        d.wait_ready()
        return d, "http://" + d.grpc_addr()
    client, peer = free_port(), free_port()
    argv = [STORE_BIN, "--name=e2e", "--data-dir=" + os.path.join(base, "etcd"),
            f"--listen-client-urls=http://127.0.0.1:{client}", f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}", f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=e2e=http://127.0.0.1:{peer}"]
    os.makedirs(os.path.join(base, "etcd-log"), exist_ok=True)
    log = open(os.path.join(base, "etcd-log", "log"), "wb")
    import subprocess
    proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + argv, stdout=log, stderr=subprocess.STDOUT)
    ch = grpc.insecure_channel(f"127.0.0.1:{client}")
    grpc.channel_ready_future(ch).result(timeout=20)
    ch.close()
    return proc, f"http://127.0.0.1:{client}"


class Api:
    def __init__(self, channel):
        self.ch = channel

    def call(self, service, method, req, resp, timeout=10, metadata=None):
        fn = self.ch.unary_unary(f"/keel.api.v1.{service}/{method}", request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=resp.FromString)
        return fn(req, timeout=timeout, metadata=metadata)

    def watch(self, service, req, timeout=20):
        fn = self.ch.unary_stream(f"/keel.api.v1.{service}/Watch", request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=M[service[:-1] + "WatchEvent"].FromString
                                  if service != "EndpointsService" else M["EndpointsWatchEvent"].FromString)
        return fn(req, timeout=timeout)


def pod(name, ns="default", image="nginx:1.25", labels=None, node=""):
    p = M["Pod"]()
    p.metadata.name = name
    p.metadata.namespace = ns
    for k, v in (labels or {}).items():
        p.metadata.labels[k] = v
    c = p.spec.containers.add()
    c.name = "web"
    c.image = image
    port = c.ports.add()
    port.container_port = 80
    if node:
        p.spec.node_name = node
    return p


def expect_error(checks, what, fn, want_code, want_in=None):
    """fn() must fail with want_code and a message containing want_in."""
    try:
        fn()
    except grpc.RpcError as e:
        ok = e.code() == want_code and (want_in is None or want_in in (e.details() or ""))
        return checks.ok(what, ok, f"got {e.code()} {e.details()!r}, want {want_code} containing {want_in!r}")
    return checks.fail(what, f"call succeeded, want {want_code}")


def main():
    keeltest.init()
    checks = keeltest.Checks(f"apiserver e2e ({STORE_KIND})")
    base = keeltest.tmpdir("apiserver")
    store, url = start_store(base)
    api_d = keeltest.Daemon("keel-apiserver", [APISERVER, "--etcd-servers=" + url, "--anonymous-admin",
                                               "--bookmark-interval=1s"], base)
    api_d.start()
    api_d.wait_ready()
    ch = grpc.insecure_channel(api_d.grpc_addr())
    api = Api(ch)
    Pod, PodList, GetRequest, ListRequest, DeleteRequest, WatchRequest = (
        M["Pod"], M["PodList"], M["GetRequest"], M["ListRequest"], M["DeleteRequest"], M["WatchRequest"])

    # Bootstrap namespaces exist.
    ns = api.call("Namespaces", "Get", GetRequest(name="default"), M["Namespace"])
    checks.eq("default namespace is Active", ns.status.phase, "Active")

    # Create: server fields filled, defaults applied.
    created = api.call("Pods", "Create", pod("web-1", labels={"app": "web", "tier": "fe"}), Pod)
    checks.ok("create: uid set", len(created.metadata.uid) == 36, created.metadata.uid)
    checks.ok("create: resourceVersion set", created.metadata.resource_version.isdigit())
    checks.eq("create: generation 1", created.metadata.generation, 1)
    checks.ok("create: creationTimestamp set", created.metadata.creation_timestamp.seconds > 0)
    checks.eq("create: restartPolicy defaulted", created.spec.restart_policy, "Always")
    checks.eq("create: phase Pending", created.status.phase, "Pending")
    checks.eq("create: kind", created.kind, "Pod")
    expect_error(checks, "create again: ALREADY_EXISTS", lambda: api.call("Pods", "Create", pod("web-1"), Pod),
                grpc.StatusCode.ALREADY_EXISTS, 'pods "web-1" already exists')

    got = api.call("Pods", "Get", GetRequest(namespace="default", name="web-1"), Pod)
    checks.eq("get: same resourceVersion", got.metadata.resource_version, created.metadata.resource_version)
    expect_error(checks, "get missing: NOT_FOUND", lambda: api.call("Pods", "Get", GetRequest(namespace="default", name="nope"), Pod),
                grpc.StatusCode.NOT_FOUND, 'pods "nope" not found')

    # Validation: the field is named, nothing is written.
    bad = pod("bad-1")
    bad.spec.containers[0].image = ""
    expect_error(checks, "invalid pod: INVALID_ARGUMENT naming the field", lambda: api.call("Pods", "Create", bad, Pod),
                grpc.StatusCode.INVALID_ARGUMENT, "spec.containers[0].image")
    expect_error(checks, "invalid pod was not written",
                lambda: api.call("Pods", "Get", GetRequest(namespace="default", name="bad-1"), Pod),
                grpc.StatusCode.NOT_FOUND)
    badname = pod("Bad_Name")
    expect_error(checks, "invalid name: INVALID_ARGUMENT", lambda: api.call("Pods", "Create", badname, Pod),
                grpc.StatusCode.INVALID_ARGUMENT, "metadata.name")
    expect_error(checks, "missing namespace: NOT_FOUND", lambda: api.call("Pods", "Create", pod("x", ns="nowhere"), Pod),
                grpc.StatusCode.NOT_FOUND, 'namespaces "nowhere" not found')

    # Update: stale resourceVersion is FAILED_PRECONDITION; spec change moves generation.
    upd = Pod()
    upd.CopyFrom(got)
    upd.spec.containers[0].image = "nginx:1.26"
    after = api.call("Pods", "Update", upd, Pod)
    checks.ok("update: new resourceVersion", int(after.metadata.resource_version) > int(got.metadata.resource_version))
    checks.eq("update: generation moved", after.metadata.generation, 2)
    checks.eq("update: uid kept", after.metadata.uid, created.metadata.uid)
    expect_error(checks, "update with stale resourceVersion: FAILED_PRECONDITION", lambda: api.call("Pods", "Update", upd, Pod),
                grpc.StatusCode.FAILED_PRECONDITION, "the object has been modified")

    # Exactly one of N concurrent updates with the same resourceVersion wins.
    base_obj = api.call("Pods", "Get", GetRequest(namespace="default", name="web-1"), Pod)
    results = []

    def racer(i):
        p = Pod()
        p.CopyFrom(base_obj)
        p.metadata.labels["racer"] = str(i)
        try:
            api.call("Pods", "Update", p, Pod)
            results.append("ok")
        except grpc.RpcError as e:
            results.append(e.code())

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    checks.eq("concurrent updates: exactly one wins", results.count("ok"), 1)
    checks.eq("concurrent updates: the rest FAILED_PRECONDITION",
              results.count(grpc.StatusCode.FAILED_PRECONDITION), 7)

    # Watch from a resourceVersion: exactly the later events, in order.
    start_rv = api.call("Pods", "Get", GetRequest(namespace="default", name="web-1"), Pod).metadata.resource_version
    api.call("Pods", "Create", pod("web-2", labels={"app": "web"}), Pod)
    api.call("Pods", "Create", pod("db-1", labels={"app": "db"}), Pod)
    stream = api.watch("Pods", WatchRequest(namespace="default", resource_version=start_rv), timeout=10)
    seen = []
    for ev in stream:
        seen.append((ev.type, ev.object.metadata.name))
        if len(seen) == 2:
            break
    stream.cancel()
    checks.eq("watch from rv: the two later creations", seen, [("ADDED", "web-2"), ("ADDED", "db-1")])

    # Label and field selectors.
    lst = api.call("Pods", "List", ListRequest(namespace="default", label_selector="app=web"), PodList)
    checks.eq("list app=web", sorted(p.metadata.name for p in lst.items), ["web-1", "web-2"])
    lst = api.call("Pods", "List", ListRequest(label_selector="app in (db),tier notin (x)"), PodList)
    checks.eq("list set-based selector, all namespaces", [p.metadata.name for p in lst.items], ["db-1"])
    lst = api.call("Pods", "List", ListRequest(field_selector="metadata.name=web-2"), PodList)
    checks.eq("list metadata.name=web-2", [p.metadata.name for p in lst.items], ["web-2"])
    checks.ok("list resourceVersion set", lst.metadata.resource_version.isdigit())
    expect_error(checks, "unsupported field selector: INVALID_ARGUMENT",
                lambda: api.call("Pods", "List", ListRequest(field_selector="spec.containers=x"), PodList),
                grpc.StatusCode.INVALID_ARGUMENT, "field label not supported")

    # A watch filtered by selector, live.
    stream = api.watch("Pods", WatchRequest(namespace="default", label_selector="app=cache",
                                            resource_version=lst.metadata.resource_version), timeout=10)
    got_events = []

    def reader():
        for ev in stream:
            got_events.append((ev.type, ev.object.metadata.name))
            if len(got_events) == 2:
                return

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    api.call("Pods", "Create", pod("other", labels={"app": "other"}), Pod)
    api.call("Pods", "Create", pod("cache-1", labels={"app": "cache"}), Pod)
    api.call("Pods", "Delete", DeleteRequest(namespace="default", name="cache-1"), Pod)
    t.join(10)
    stream.cancel()
    checks.eq("selector watch: ADDED then DELETED of the matching pod",
              got_events, [("ADDED", "cache-1"), ("DELETED", "cache-1")])

    # A too-old resourceVersion is OUT_OF_RANGE, and the watch says relist.
    # (Compaction is what makes a version too old for the store; the cache
    # window is what makes it too old here.)
    # Delete: an unbound pod goes at once; a bound one is marked.
    api.call("Pods", "Delete", DeleteRequest(namespace="default", name="web-2"), Pod)
    expect_error(checks, "deleted pod is gone", lambda: api.call("Pods", "Get", GetRequest(namespace="default", name="web-2"), Pod),
                grpc.StatusCode.NOT_FOUND)
    bound = api.call("Pods", "Create", pod("bound-1", node="node-a"), Pod)
    marked = api.call("Pods", "Delete", DeleteRequest(namespace="default", name="bound-1"), Pod)
    checks.ok("bound pod: graceful deletion sets deletionTimestamp", marked.metadata.HasField("deletion_timestamp"))
    checks.eq("bound pod: grace 30s", marked.metadata.deletion_grace_period_seconds.value, 30)
    d = DeleteRequest(namespace="default", name="bound-1")
    d.grace_period_seconds.value = 0
    api.call("Pods", "Delete", d, Pod)
    expect_error(checks, "grace 0 deletes", lambda: api.call("Pods", "Get", GetRequest(namespace="default", name="bound-1"), Pod),
                grpc.StatusCode.NOT_FOUND)
    del bound

    # Finalizers hold a deletion until they are removed.
    fp = pod("fin-1")
    fp.metadata.finalizers.append("example.com/hold")
    api.call("Pods", "Create", fp, Pod)
    marked = api.call("Pods", "Delete", DeleteRequest(namespace="default", name="fin-1"), Pod)
    checks.ok("finalizer: marked, not deleted", marked.metadata.HasField("deletion_timestamp"))
    cur = api.call("Pods", "Get", GetRequest(namespace="default", name="fin-1"), Pod)
    del cur.metadata.finalizers[:]
    api.call("Pods", "Update", cur, Pod)
    # A pod is finished by its agent (grace 0) once marked; no finalizers now.
    d = DeleteRequest(namespace="default", name="fin-1")
    d.grace_period_seconds.value = 0
    api.call("Pods", "Delete", d, Pod)
    expect_error(checks, "finalizer removed: pod deletable", lambda: api.call("Pods", "Get", GetRequest(namespace="default", name="fin-1"), Pod),
                grpc.StatusCode.NOT_FOUND)

    # Services get a ClusterIP; NodePort services a node port in range.
    svc = M["Service"]()
    svc.metadata.name = "web"
    svc.spec.type = "NodePort"
    svc.spec.selector["app"] = "web"
    p = svc.spec.ports.add()
    p.port = 80
    p.target_port.type = 0
    p.target_port.int_val = 8080
    s = api.call("Services", "Create", svc, M["Service"])
    checks.ok("service: ClusterIP allocated in 10.96.0.0/16", s.spec.cluster_ip.startswith("10.96."), s.spec.cluster_ip)
    checks.ok("service: nodePort in range", 30000 <= s.spec.ports[0].node_port <= 32767, str(s.spec.ports[0].node_port))

    # Deployments: the Scale subresource.
    dep = M["Deployment"]()
    dep.metadata.name = "web"
    dep.spec.selector.match_labels["app"] = "web"
    dep.spec.template.metadata.labels["app"] = "web"
    c = dep.spec.template.spec.containers.add()
    c.name = "web"
    c.image = "nginx:1.25"
    dep = api.call("Deployments", "Create", dep, M["Deployment"])
    checks.eq("deployment: replicas defaulted to 1", dep.spec.replicas.value, 1)
    sc = api.call("Deployments", "GetScale", GetRequest(namespace="default", name="web"), M["Scale"])
    checks.eq("scale: replicas 1, selector app=web", (sc.spec.replicas, sc.status.selector), (1, "app=web"))
    sc.spec.replicas = 5
    api.call("Deployments", "UpdateScale", sc, M["Scale"])
    dep = api.call("Deployments", "Get", GetRequest(namespace="default", name="web"), M["Deployment"])
    checks.eq("scale: deployment replicas 5", dep.spec.replicas.value, 5)

    ch.close()
    rc, _ = api_d.stop()
    checks.eq("apiserver exits 0 on SIGTERM", rc, 0)
    if STORE_KIND == "keel-store":
        store.stop()
    else:
        store.terminate()
        store.wait(10)
    sys.exit(checks.finish())


if __name__ == "__main__":
    main()
