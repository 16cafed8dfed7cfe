#!/usr/bin/python3
"""keel-apiserver refuses bad input and writes nothing (python3-grpcio),
against keel-store.

usage: bad_input.py KEEL_APISERVER API_DESCRIPTORS.pb keel-store KEEL_STORE

- a table of invalid objects across every kind: each Create is
  INVALID_ARGUMENT with a message naming the object and the field path, and
  afterwards Get is NOT_FOUND, List shows nothing, and the store itself (read
  directly over the etcd API) has the same revision and keys as before;
- invalid updates and subresource writes leave the stored object as it was;
  Pods/Bind to an invalid node name is refused too; over-long names are a
  client error (not INTERNAL); unknown protobuf fields are never stored;
- malformed requests: missing names, bad resourceVersions and selectors;
- a request over --max-request-bytes is RESOURCE_EXHAUSTED;
- bytes that are not a protobuf of the request type (garbage, truncated, wrong
  wire types, lengths past the end; also to Pods/Log and as Pods/Exec's first
  and later messages) sent through a generic call with identity
  serializers are INVALID_ARGUMENT, for unary and streaming methods; the server
  serves on and exits 0 on SIGTERM.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apiserver_lib as L  # noqa: E402
from apiserver_lib import SC, expect_code, gr, dr  # noqa: E402

import keeltest as kt  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]
MAX_REQUEST = 64 * 1024
NS = "e2e-bad"


def with_(obj, f):
    f(obj)
    return obj


# (kind, what, build(M, name) -> object, parts the message must contain)
def invalid_cases():
    pod = lambda M, n: L.pod(M, n, NS)  # noqa: E731
    svc = lambda M, n: L.service(M, n, NS)  # noqa: E731
    rs = lambda M, n: L.replicaset(M, n, NS)  # noqa: E731
    dep = lambda M, n: L.deployment(M, n, NS)  # noqa: E731
    return [
        ("Pod", "image missing", lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec.containers[0], "image", "")),
         ["spec.containers[0].image: Required value"]),
        ("Pod", "no containers", lambda M, n: with_(pod(M, n), lambda o: o.spec.ClearField("containers")),
         ["spec.containers: Required value"]),
        ("Pod", "containerPort 70000",
         lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec.containers[0].ports[0], "container_port", 70000)),
         ["spec.containers[0].ports[0].containerPort: Invalid value: 70000"]),
        ("Pod", "restartPolicy Sometimes",
         lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec, "restart_policy", "Sometimes")),
         ["spec.restartPolicy: Unsupported value: \"Sometimes\""]),
        ("Pod", "label key with a space",
         lambda M, n: with_(pod(M, n), lambda o: o.metadata.labels.__setitem__("bad key", "x")),
         ["metadata.labels: Invalid value: \"bad key\""]),
        ("Pod", "cpu limit 12x",
         lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec.containers[0].resources.limits["cpu"],
                                                          "string", "12x")),
         ["spec.containers[0].resources.limits[cpu]: Invalid value: \"12x\""]),
        ("Pod", "duplicate container name",
         lambda M, n: with_(pod(M, n), lambda o: o.spec.containers.add(name="web", image="busybox:1")),
         ["spec.containers[1].name: Duplicate value: \"web\""]),
        ("Pod", "nodeName Node_1",
         lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec, "node_name", "Node_1")),
         ["spec.nodeName: Invalid value: \"Node_1\""]),
        ("Pod", "two errors at once",
         lambda M, n: with_(pod(M, n), lambda o: (setattr(o.spec.containers[0], "image", ""),
                                                  setattr(o.spec.containers[0].ports[0], "container_port", -1))),
         ["2 errors", "spec.containers[0].image: Required value", "spec.containers[0].ports[0].containerPort"]),
        ("Pod", "readinessProbe without a handler",
         lambda M, n: with_(pod(M, n), lambda o: setattr(o.spec.containers[0].readiness_probe,
                                                          "period_seconds", 5)),
         ["spec.containers[0].readinessProbe: Required value: must specify a handler type"]),
        ("Service", "no ports", lambda M, n: with_(svc(M, n), lambda o: o.spec.ClearField("ports")),
         ["spec.ports: Required value"]),
        ("Service", "type LoadBalancer", lambda M, n: with_(svc(M, n), lambda o: setattr(o.spec, "type",
                                                                                         "LoadBalancer")),
         ["spec.type: Unsupported value: \"LoadBalancer\""]),
        ("Service", "clusterIP 10.0.0.300",
         lambda M, n: with_(svc(M, n), lambda o: setattr(o.spec, "cluster_ip", "10.0.0.300")),
         ["spec.clusterIP: Invalid value: \"10.0.0.300\""]),
        ("Service", "clusterIP outside the range",
         lambda M, n: with_(svc(M, n), lambda o: setattr(o.spec, "cluster_ip", "192.168.1.1")),
         ["spec.clusterIP: Invalid value: \"192.168.1.1\"", "not in the valid range"]),
        ("Service", "nodePort outside 30000-32767",
         lambda M, n: with_(svc(M, n), lambda o: (setattr(o.spec, "type", "NodePort"),
                                                  setattr(o.spec.ports[0], "node_port", 8080))),
         ["spec.ports[0].nodePort: Invalid value: 8080"]),
        ("Node", "podCIDR /33", lambda M, n: with_(L.node(M, n), lambda o: setattr(o.spec, "pod_cidr",
                                                                                   "10.244.1.0/33")),
         ["spec.podCIDR: Invalid value: \"10.244.1.0/33\""]),
        ("Node", "taint without effect", lambda M, n: with_(L.node(M, n), lambda o: o.spec.taints.add(key="k")),
         ["spec.taints[0].effect: Required value"]),
        ("Node", "capacity quantity four",
         lambda M, n: with_(L.node(M, n), lambda o: setattr(o.status.capacity["cpu"], "string", "four")),
         ["status.capacity[cpu]: Invalid value: \"four\""]),
        ("Namespace", "name with a dot", lambda M, n: L.namespace(M, n + ".x"),
         ["metadata.name: Invalid value", "must not contain dots"]),
        ("Endpoints", "address 10.244.1", lambda M, n: L.endpoints(M, n, NS, ip="10.244.1"),
         ["subsets[0].addresses[0].ip: Invalid value: \"10.244.1\""]),
        ("Endpoints", "port 0", lambda M, n: with_(L.endpoints(M, n, NS),
                                                   lambda o: setattr(o.subsets[0].ports[0], "port", 0)),
         ["subsets[0].ports[0].port: Invalid value: 0"]),
        ("Event", "type Info", lambda M, n: with_(L.event(M, n, NS), lambda o: setattr(o, "type", "Info")),
         ["type: Unsupported value: \"Info\""]),
        ("Event", "involvedObject without a name",
         lambda M, n: with_(L.event(M, n, NS), lambda o: setattr(o.involved_object, "name", "")),
         ["involvedObject.name: Required value"]),
        ("ReplicaSet", "selector does not match the template",
         lambda M, n: with_(rs(M, n), lambda o: o.spec.selector.match_labels.__setitem__("app", "other")),
         ["spec.template.metadata.labels: Invalid value"]),
        ("ReplicaSet", "replicas -1", lambda M, n: with_(rs(M, n), lambda o: setattr(o.spec.replicas, "value", -1)),
         ["spec.replicas: Invalid value: -1"]),
        ("Deployment", "strategy BlueGreen",
         lambda M, n: with_(dep(M, n), lambda o: setattr(o.spec.strategy, "type", "BlueGreen")),
         ["spec.strategy.type: Unsupported value: \"BlueGreen\""]),
        ("Deployment", "template without image",
         lambda M, n: with_(dep(M, n), lambda o: setattr(o.spec.template.spec.containers[0], "image", "")),
         ["spec.template.spec.containers[0].image: Required value"]),
        ("Lease", "leaseDurationSeconds 0",
         lambda M, n: with_(L.lease(M, n, NS), lambda o: setattr(o.spec.lease_duration_seconds, "value", 0)),
         ["spec.leaseDurationSeconds: Invalid value: 0"]),
        ("Lease", "leaseTransitions -1",
         lambda M, n: with_(L.lease(M, n, NS), lambda o: setattr(o.spec.lease_transitions, "value", -1)),
         ["spec.leaseTransitions: Invalid value: -1"]),
        ("Pod", "namespace Team", lambda M, n: L.pod(M, n, "Team"), ["metadata.namespace: Invalid value: \"Team\""]),
        ("Pod", "name Bad_Name", lambda M, n: L.pod(M, "Bad_Name", NS), ["metadata.name: Invalid value: \"Bad_Name\""]),
    ]


def test_invalid_objects(c, api, M, url):
    before = L.store_state(url)
    cases = invalid_cases()
    c.ok(f"the table has at least 15 invalid objects across kinds ({len(cases)})",
         len(cases) >= 15 and len({k for k, *_ in cases}) >= 8)
    for i, (kind, what, build, parts) in enumerate(cases):
        name = f"bad-{i}"
        obj = build(M, name)
        svc = getattr(api, L.SERVICE_OF[kind])
        shown = obj.metadata.name
        qualified = {"ReplicaSet": "ReplicaSet.apps", "Deployment": "Deployment.apps",
                     "Lease": "Lease.coordination.k8s.io"}.get(kind, kind)
        expect_code(c, f"{kind} {what}: INVALID_ARGUMENT naming the object and field", lambda: svc.Create(obj),
                    SC.INVALID_ARGUMENT, f'{qualified} "{shown}" is invalid', *parts)
        ns = obj.metadata.namespace
        expect_code(c, f"{kind} {what}: not written (Get NOT_FOUND)", lambda: svc.Get(gr(M, shown, ns)),
                    SC.NOT_FOUND)
        lst = svc.List(M["ListRequest"](field_selector="metadata.name=" + shown))
        c.eq(f"{kind} {what}: not written (List empty)", L.names(lst), [])
    c.eq("invalid objects: the store's revision and keys are unchanged", L.store_state(url), before)


def test_invalid_updates(c, api, M, url):
    p = api.Pods.Create(L.pod(M, "valid", NS))
    r = api.ReplicaSets.Create(L.replicaset(M, "valid", NS))
    s = api.Services.Create(L.service(M, "valid", NS))
    before = L.store_state(url)

    def pod_copy():
        x = M["Pod"]()
        x.CopyFrom(p)
        return x

    x = pod_copy()
    x.spec.containers[0].image = ""
    expect_code(c, "update to an invalid pod -> INVALID_ARGUMENT", lambda: api.Pods.Update(x), SC.INVALID_ARGUMENT,
                'Pod "valid" is invalid', "spec.containers[0].image: Required value")
    x = pod_copy()
    x.spec.node_name = "n1"
    expect_code(c, "update setting spec.nodeName -> INVALID_ARGUMENT", lambda: api.Pods.Update(x),
                SC.INVALID_ARGUMENT, "spec.nodeName")
    x = pod_copy()
    x.spec.containers.add(name="extra", image="busybox:1")
    expect_code(c, "update adding a container (pod spec immutable) -> INVALID_ARGUMENT",
                lambda: api.Pods.Update(x), SC.INVALID_ARGUMENT, "spec")
    x = pod_copy()
    x.status.phase = "Dancing"
    expect_code(c, "UpdateStatus with phase Dancing -> INVALID_ARGUMENT", lambda: api.Pods.UpdateStatus(x),
                SC.INVALID_ARGUMENT, "status.phase: Unsupported value: \"Dancing\"")
    x = pod_copy()
    x.status.pod_ip = "300.1.1.1"
    expect_code(c, "UpdateStatus with podIP 300.1.1.1 -> INVALID_ARGUMENT", lambda: api.Pods.UpdateStatus(x),
                SC.INVALID_ARGUMENT, "status.podIP")
    x = pod_copy()
    x.metadata.resource_version = "abc"
    expect_code(c, "update with resourceVersion abc -> INVALID_ARGUMENT", lambda: api.Pods.Update(x),
                SC.INVALID_ARGUMENT, "metadata.resourceVersion")
    x = pod_copy()
    x.metadata.name = ""
    expect_code(c, "update without a name -> INVALID_ARGUMENT", lambda: api.Pods.Update(x), SC.INVALID_ARGUMENT,
                "metadata.name: Required value")
    y = M["ReplicaSet"]()
    y.CopyFrom(r)
    y.spec.selector.match_labels["app"] = "other"
    y.spec.template.metadata.labels["app"] = "other"
    expect_code(c, "ReplicaSet selector change (immutable) -> INVALID_ARGUMENT", lambda: api.ReplicaSets.Update(y),
                SC.INVALID_ARGUMENT, "spec.selector", "field is immutable")
    z = M["Service"]()
    z.CopyFrom(s)
    z.spec.cluster_ip = "10.96.0.2" if s.spec.cluster_ip != "10.96.0.2" else "10.96.0.3"
    del z.spec.cluster_ips[:]
    expect_code(c, "Service clusterIP change (immutable) -> INVALID_ARGUMENT", lambda: api.Services.Update(z),
                SC.INVALID_ARGUMENT, "spec.clusterIP")
    sc = api.ReplicaSets.GetScale(gr(M, "valid", NS))
    sc.spec.replicas = -3
    expect_code(c, "UpdateScale to -3 -> INVALID_ARGUMENT", lambda: api.ReplicaSets.UpdateScale(sc),
                SC.INVALID_ARGUMENT, "spec.replicas")
    b = M["Binding"]()
    b.metadata.name = "valid"
    b.metadata.namespace = NS
    expect_code(c, "Bind without target.name -> INVALID_ARGUMENT", lambda: api.Pods.Bind(b), SC.INVALID_ARGUMENT,
                "target.name: Required value")
    c.eq("invalid updates: the store's revision and keys are unchanged", L.store_state(url), before)
    c.eq("invalid updates: the pod is as it was", api.Pods.Get(gr(M, "valid", NS)).SerializeToString(
        deterministic=True), p.SerializeToString(deterministic=True))

    # Malformed reads.
    expect_code(c, "Get without a name -> INVALID_ARGUMENT", lambda: api.Pods.Get(gr(M, "", NS)),
                SC.INVALID_ARGUMENT, "name: Required value")
    expect_code(c, "Delete without a name -> INVALID_ARGUMENT", lambda: api.Pods.Delete(dr(M, "", NS)),
                SC.INVALID_ARGUMENT, "name: Required value")
    expect_code(c, "Get with resourceVersion -1 -> INVALID_ARGUMENT",
                lambda: api.Pods.Get(gr(M, "valid", NS, rv="-1")), SC.INVALID_ARGUMENT, "resourceVersion")
    expect_code(c, "List with resourceVersion x -> INVALID_ARGUMENT",
                lambda: api.Pods.List(M["ListRequest"](resource_version="x")), SC.INVALID_ARGUMENT,
                "resourceVersion")
    expect_code(c, "List with label selector 'a in (' -> INVALID_ARGUMENT",
                lambda: api.Pods.List(M["ListRequest"](label_selector="a in (")), SC.INVALID_ARGUMENT)
    expect_code(c, "List with field selector 'spec.image=x' -> INVALID_ARGUMENT",
                lambda: api.Pods.List(M["ListRequest"](field_selector="spec.image=x")), SC.INVALID_ARGUMENT,
                "field label not supported: spec.image")
    expect_code(c, "Watch with label selector '!!' -> INVALID_ARGUMENT",
                lambda: next(iter(api.Pods.Watch(M["WatchRequest"](label_selector="!!"), timeout=L.T))),
                SC.INVALID_ARGUMENT)
    for n in ("valid",):
        api.Pods.Delete(dr(M, n, NS))
        api.ReplicaSets.Delete(dr(M, n, NS))
        api.Services.Delete(dr(M, n, NS))


def test_bypasses(c, api, M, url):
    """Paths that reach the store without the object rules."""
    for i in range(2):
        api.Pods.Create(L.pod(M, f"unbound-{i}", NS))
    before = L.store_state(url)
    for i, target in enumerate(("Node_1", "n" * 300)):
        b = M["Binding"]()
        b.metadata.name = f"unbound-{i}"
        b.metadata.namespace = NS
        b.target.kind = "Node"
        b.target.name = target
        expect_code(c, f"Bind to node name {target[:12]!r}{'...' if len(target) > 12 else ''} -> INVALID_ARGUMENT "
                       "(spec.nodeName must be a DNS subdomain)", lambda: api.Pods.Bind(b), SC.INVALID_ARGUMENT,
                    "nodeName")
    c.eq("invalid binds: nothing written", L.store_state(url), before)
    for i in range(2):
        api.Pods.Delete(dr(M, f"unbound-{i}", NS, grace=0))

    # Names longer than any stored key: a client error, not the server's.
    long = "a" * 10000
    for what, fn in (("Get", lambda: api.Pods.Get(gr(M, long, NS))),
                     ("Get (long namespace)", lambda: api.Pods.Get(gr(M, "a", long))),
                     ("Delete", lambda: api.Pods.Delete(dr(M, long, NS))),
                     ("GetScale", lambda: api.Deployments.GetScale(gr(M, long, NS)))):
        code, details = L.rpc_error(fn)
        c.ok(f"{what} of a 10000-character name -> NOT_FOUND or INVALID_ARGUMENT, not INTERNAL",
             code in (SC.NOT_FOUND, SC.INVALID_ARGUMENT), f"got {code} {str(details)[-80:]!r}")

    # Fields the server does not know: refused, or at least never stored.
    unknown = L.pod(M, "unknown-field", NS).SerializeToString() + kt.pb_bytes(999, "smuggled")
    code, _ = L.rpc_error(lambda: api.raw("Pods", "Create", unknown))
    if code is None:
        stored = api.raw("Pods", "Get", gr(M, "unknown-field", NS).SerializeToString())
        c.eq("an unknown field (999) sent with a Pod is not stored", kt.pb_fields(stored, 999), [])
        api.Pods.Delete(dr(M, "unknown-field", NS))
    else:
        c.eq("an unknown field (999) sent with a Pod -> INVALID_ARGUMENT", code, SC.INVALID_ARGUMENT)


def test_oversize(c, api, M, url):
    before = L.store_state(url)
    big = L.pod(M, "big", NS)
    big.metadata.annotations["example.com/blob"] = "x" * (MAX_REQUEST + 1024)
    expect_code(c, f"a request over --max-request-bytes={MAX_REQUEST} -> RESOURCE_EXHAUSTED",
                lambda: api.Pods.Create(big), SC.RESOURCE_EXHAUSTED)
    c.eq("oversize: nothing written", L.store_state(url), before)
    fits = L.pod(M, "fits", NS)
    fits.metadata.annotations["example.com/blob"] = "x" * (MAX_REQUEST - 4096)
    code, got = L.rpc_error(lambda: api.Pods.Create(fits))
    c.ok("a request just under the limit is accepted", code is None, f"{code} {got!r:.200}")
    if code is None:
        api.Pods.Delete(dr(M, "fits", NS))


def test_garbage(c, api, M, url, apid):
    valid = L.pod(M, "wire", NS).SerializeToString()
    cases = [
        ("0xff x 64", b"\xff" * 64),
        ("random bytes", bytes((i * 151 + 7) % 256 for i in range(300))),
        ("a valid Pod cut in the middle", valid[: len(valid) // 2 + 1]),
        ("metadata (field 3) as a varint", b"\x18\x01"),
        ("a length past the end", b"\x1a\xff\xff\xff\xff\x0f\x0a"),
        ("a varint of 11 bytes", b"\x08" + b"\xff" * 10 + b"\x01"),
        ("field number 0", b"\x02\x00"),
        ("wire type 7", b"\x0f\x00"),
    ]
    before = L.store_state(url)
    for what, data in cases:
        for service, method, streaming in (("Pods", "Create", False), ("Deployments", "UpdateScale", False),
                                           ("Pods", "Get", False), ("Pods", "Watch", True),
                                           ("Pods", "Log", True)):
            code, details = L.rpc_error(lambda: api.raw(service, method, data, streaming=streaming))
            c.ok(f"garbage ({what}) to {service}/{method} -> INVALID_ARGUMENT", code == SC.INVALID_ARGUMENT,
                 f"got {code} {details!r}")
        # Pods/Exec is bidi: garbage as its first message, and after a valid start.
        start = M["ExecRequest"](start=M["PodExecOptions"](name="nope", command=["true"])).SerializeToString()
        for label, msgs in (("first", [data]), ("after start", [start, data])):
            code, details = L.rpc_error(lambda: api.raw("Pods", "Exec", msgs, bidi=True))
            c.ok(f"garbage ({what}) to Pods/Exec ({label}) -> INVALID_ARGUMENT or the start's own error",
                 code == SC.INVALID_ARGUMENT or (label == "after start" and code == SC.NOT_FOUND),
                 f"got {code} {details!r}")
    c.eq("garbage: nothing written", L.store_state(url), before)
    code, details = L.rpc_error(lambda: api.raw("Pods", "Create", b""))
    c.eq("an empty request decodes as an empty Pod -> INVALID_ARGUMENT (no name)", code, SC.INVALID_ARGUMENT)
    code, _ = L.rpc_error(lambda: api.raw("Pods", "Create", valid))
    c.eq("a valid Pod sent as raw bytes is created", code, None)
    api.Pods.Delete(dr(M, "wire", NS))
    ns = api.Namespaces.Get(gr(M, "default"))
    c.eq("after the garbage the server still serves", ns.metadata.name, "default")
    c.ok("after the garbage the apiserver is still running", apid.running(), apid.log_tail())


def main():
    c = kt.Checks(f"apiserver bad input ({STORE_KIND})")
    types = L.ApiTypes(DESCRIPTORS)
    M = types.M
    base = kt.tmpdir("apiserver-bad")
    store, url = L.start_store(STORE_KIND, STORE_BIN, base)
    apid = L.start_apiserver(APISERVER, url, base, args=[f"--max-request-bytes={MAX_REQUEST}"])
    api = L.insecure_api(types, apid.grpc_addr())
    api.Namespaces.Create(L.namespace(M, NS))
    c.run("invalid objects", lambda: test_invalid_objects(c, api, M, url))
    c.run("invalid updates and requests", lambda: test_invalid_updates(c, api, M, url))
    c.run("validation bypasses", lambda: test_bypasses(c, api, M, url))
    c.run("oversize request", lambda: test_oversize(c, api, M, url))
    c.run("bytes that are not the request type", lambda: test_garbage(c, api, M, url, apid))
    api.close()
    L.stop_all(c, [apid, store])
    return c


if __name__ == "__main__":
    L.main_wrapper(main)
