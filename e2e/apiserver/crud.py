#!/usr/bin/python3
"""keel-apiserver CRUD, subresources, concurrency, selectors and graceful
deletion over real gRPC (python3-grpcio), against keel-store or a real etcd.

usage: crud.py KEEL_APISERVER API_DESCRIPTORS.pb (keel-store KEEL_STORE | etcd /usr/bin/etcd)

- every kind (Namespace, Pod, Node, Service, Endpoints, Event, ReplicaSet,
  Deployment, Lease): Create, Get, List, Update (with and without a
  resourceVersion, stale), UpdateStatus where the kind has it, Delete, and a
  Watch that sees exactly ADDED, MODIFIED..., DELETED at the revisions the
  writes returned;
- Pods/Bind; GetScale/UpdateScale of Deployments and ReplicaSets;
- exactly one of N concurrent writes with the same resourceVersion wins
  (Update, UpdateScale), one of N Creates of a name; without a
  resourceVersion every concurrent Update lands;
- label selectors (equality and set-based) and field selectors (spec.nodeName,
  status.phase, metadata.name, metadata.namespace) on List and Watch;
- graceful deletion: bound pods, finalizers on pods, deployments, services
  (whose ClusterIP is released only when the last finalizer goes), namespaces
  that terminate, delete preconditions; dry run (also of Bind and UpdateScale);
  generateName; an update carrying another object's uid; the bootstrap
  namespaces cannot be deleted;
- NodePorts on Service updates: a new port gets one, a removed port's and a
  type ClusterIP Service's are released (another Service can take them), a
  taken one is refused, concurrent updates never share one, dry run writes
  nothing; the ClusterIP is immutable.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apiserver_lib as L  # noqa: E402
from apiserver_lib import SC, T, expect_code, gr, dr  # noqa: E402

import keeltest as kt  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]
API_VERSION = {"ReplicaSet": "apps/v1", "Deployment": "apps/v1", "Lease": "coordination.k8s.io/v1"}
RESOURCE = {"Namespace": "namespaces", "Pod": "pods", "Node": "nodes", "Service": "services",
            "Endpoints": "endpoints", "Event": "events", "ReplicaSet": "replicasets",
            "Deployment": "deployments", "Lease": "leases"}


def spec_change(kind, o):
    """Changes something the kind's Update may change; True if it is in spec."""
    if kind == "Namespace":
        o.metadata.labels["changed"] = "yes"
        return False
    if kind == "Pod":
        o.spec.containers[0].image = "nginx:1.26"
    elif kind == "Node":
        o.spec.unschedulable = True
    elif kind == "Service":
        o.spec.session_affinity = "ClientIP"
    elif kind == "Endpoints":
        o.subsets[0].addresses.add(ip="10.244.1.6")
        return False
    elif kind == "Event":
        o.count = 2
        o.message = "again"
        return False
    elif kind in ("ReplicaSet", "Deployment"):
        o.spec.template.spec.containers[0].image = "nginx:1.26"
    elif kind == "Lease":
        o.spec.holder_identity.value = "b"
    return True


def status_change(kind, o):
    """Sets a status; returns a function that reads it back for comparison."""
    if kind == "Namespace":
        o.status.conditions.add(type="NamespaceContentRemaining", status="False", reason="ContentDeleted")
        return lambda x: [(c.type, c.status) for c in x.status.conditions]
    if kind == "Pod":
        o.status.phase = "Running"
        o.status.pod_ip = "10.244.1.7"
        return lambda x: (x.status.phase, x.status.pod_ip)
    if kind == "Node":
        o.status.conditions.add(type="Ready", status="True", reason="KubeletReady")
        return lambda x: [(c.type, c.status) for c in x.status.conditions]
    if kind == "Service":
        o.status.load_balancer.ingress.add(ip="192.0.2.10")
        return lambda x: [i.ip for i in x.status.load_balancer.ingress]
    if kind in ("ReplicaSet", "Deployment"):
        o.status.replicas = 2
        o.status.ready_replicas = 1
        o.status.observed_generation = 2
        return lambda x: (x.status.replicas, x.status.ready_replicas, x.status.observed_generation)
    raise ValueError(kind)


def crud_kind(c, api, M, service, kind, namespaced, has_status, ns):
    svc = getattr(api, service)
    name = "crud-" + kind.lower()
    obj_ns = ns if namespaced else ""
    lst = svc.List(M["ListRequest"](namespace=obj_ns))
    w = L.Watcher(svc.Watch(M["WatchRequest"](namespace=obj_ns, field_selector="metadata.name=" + name,
                                              resource_version=lst.metadata.resource_version)), kind)
    want_events = []

    obj = L.make(M, kind, name, ns)
    obj.metadata.labels["e2e"] = "crud"
    created = svc.Create(obj)
    cm = created.metadata
    want_events.append(("ADDED", name, int(cm.resource_version)))
    c.ok(f"{kind}: create sets a uid", len(cm.uid) == 36, cm.uid)
    c.ok(f"{kind}: create sets resourceVersion", cm.resource_version.isdigit(), cm.resource_version)
    c.eq(f"{kind}: generation 1", cm.generation, 1)
    c.ok(f"{kind}: creationTimestamp set", cm.creation_timestamp.seconds > 0)
    c.eq(f"{kind}: kind and apiVersion", (created.kind, created.api_version),
         (kind, API_VERSION.get(kind, "v1")))
    c.eq(f"{kind}: namespace", cm.namespace, obj_ns)
    expect_code(c, f"{kind}: create again -> ALREADY_EXISTS", lambda: svc.Create(obj), SC.ALREADY_EXISTS,
                f'{RESOURCE[kind]} "{name}" already exists')

    got = svc.Get(gr(M, name, obj_ns))
    c.eq(f"{kind}: get returns the created object", got.SerializeToString(deterministic=True),
         created.SerializeToString(deterministic=True))
    cached = svc.Get(gr(M, name, obj_ns, rv="0"))
    c.eq(f"{kind}: get resourceVersion=0 (cache) has the same resourceVersion",
         cached.metadata.resource_version, cm.resource_version)
    expect_code(c, f"{kind}: get missing -> NOT_FOUND", lambda: svc.Get(gr(M, name + "-x", obj_ns)),
                SC.NOT_FOUND, f'{RESOURCE[kind]} "{name}-x" not found')
    lst = svc.List(M["ListRequest"](namespace=obj_ns, label_selector="e2e=crud"))
    c.eq(f"{kind}: list by label finds it", L.names(lst), [name])
    c.ok(f"{kind}: list resourceVersion >= the object's",
         int(lst.metadata.resource_version) >= int(cm.resource_version), lst.metadata.resource_version)
    c.eq(f"{kind}: list kind", lst.kind, kind + "List")

    # Update with the current resourceVersion.
    upd = type(created)()
    upd.CopyFrom(got)
    in_spec = spec_change(kind, upd)
    if has_status:
        # Status sent with an Update is ignored.
        read_status = status_change(kind, upd)
    after = svc.Update(upd)
    want_events.append(("MODIFIED", name, int(after.metadata.resource_version)))
    c.ok(f"{kind}: update moves resourceVersion",
         int(after.metadata.resource_version) > int(cm.resource_version))
    c.eq(f"{kind}: update: generation {'moves' if in_spec else 'stays'}", after.metadata.generation,
         2 if in_spec else 1)
    c.eq(f"{kind}: update keeps uid and creationTimestamp",
         (after.metadata.uid, after.metadata.creation_timestamp.seconds),
         (cm.uid, cm.creation_timestamp.seconds))
    if has_status:
        c.eq(f"{kind}: update ignores status", read_status(after), read_status(created))
    expect_code(c, f"{kind}: update with a stale resourceVersion -> FAILED_PRECONDITION",
                lambda: svc.Update(upd), SC.FAILED_PRECONDITION,
                f'Operation cannot be fulfilled on {RESOURCE[kind]} "{name}"', "the object has been modified")

    # Update without a resourceVersion: last writer wins.
    upd2 = type(created)()
    upd2.CopyFrom(after)
    upd2.metadata.resource_version = ""
    upd2.metadata.labels["no-rv"] = "1"
    after2 = svc.Update(upd2)
    want_events.append(("MODIFIED", name, int(after2.metadata.resource_version)))
    c.eq(f"{kind}: update without resourceVersion lands", after2.metadata.labels.get("no-rv"), "1")
    cur = after2

    if has_status:
        st = type(created)()
        st.CopyFrom(cur)
        read_status = status_change(kind, st)
        # Spec sent with UpdateStatus is ignored.
        spec_change(kind, st)
        st.metadata.labels["via-status"] = "ignored"
        after3 = svc.UpdateStatus(st)
        want_events.append(("MODIFIED", name, int(after3.metadata.resource_version)))
        c.eq(f"{kind}: UpdateStatus writes status", read_status(after3), read_status(st))
        stored = svc.Get(gr(M, name, obj_ns))
        c.eq(f"{kind}: UpdateStatus stored", read_status(stored), read_status(st))
        c.eq(f"{kind}: UpdateStatus ignores metadata labels", stored.metadata.labels.get("via-status"), None)
        if kind != "Namespace":
            c.eq(f"{kind}: UpdateStatus ignores spec", stored.spec.SerializeToString(deterministic=True),
                 cur.spec.SerializeToString(deterministic=True))
        c.eq(f"{kind}: UpdateStatus keeps generation", stored.metadata.generation, cur.metadata.generation)
        expect_code(c, f"{kind}: UpdateStatus with a stale resourceVersion -> FAILED_PRECONDITION",
                    lambda: svc.UpdateStatus(st), SC.FAILED_PRECONDITION, "the object has been modified")
        cur = stored

    deleted = svc.Delete(dr(M, name, obj_ns))
    want_events.append(("DELETED", name, int(deleted.metadata.resource_version)))
    c.eq(f"{kind}: delete returns the object", deleted.metadata.uid, cm.uid)
    expect_code(c, f"{kind}: get after delete -> NOT_FOUND", lambda: svc.Get(gr(M, name, obj_ns)), SC.NOT_FOUND)
    expect_code(c, f"{kind}: delete again -> NOT_FOUND", lambda: svc.Delete(dr(M, name, obj_ns)), SC.NOT_FOUND,
                f'{RESOURCE[kind]} "{name}" not found')
    lst = svc.List(M["ListRequest"](namespace=obj_ns, label_selector="e2e=crud"))
    c.eq(f"{kind}: list after delete is empty", L.names(lst), [])

    w.wait(lambda evs: len([e for e in evs if e[0] != "BOOKMARK"]) >= len(want_events))
    w.cancel()
    c.eq(f"{kind}: watch saw every change at the revisions the writes returned", w.changes(), want_events)


def test_every_kind(c, api, M):
    api.Namespaces.Create(L.namespace(M, "e2e-crud"))
    for service, kind, namespaced, has_status, _ in L.KINDS:
        c.run(f"CRUD {kind}", lambda s=service, k=kind, n=namespaced, h=has_status:
              crud_kind(c, api, M, s, k, n, h, "e2e-crud"))


def test_bind(c, api, M):
    p = api.Pods.Create(L.pod(M, "bind-me", labels={"app": "bind"}))
    w = L.Watcher(api.Pods.Watch(M["WatchRequest"](field_selector="spec.nodeName=n1",
                                                   resource_version=p.metadata.resource_version)))
    b = M["Binding"]()
    b.metadata.name = "bind-me"
    b.metadata.namespace = "default"
    b.target.kind = "Node"
    b.target.name = "n1"
    bound = api.Pods.Bind(b)
    c.eq("bind: spec.nodeName set", bound.spec.node_name, "n1")
    c.eq("bind: PodScheduled=True", [(x.type, x.status) for x in bound.status.conditions],
         [("PodScheduled", "True")])
    c.eq("bind: stored", api.Pods.Get(gr(M, "bind-me", "default")).spec.node_name, "n1")
    c.ok("bind: a watch on spec.nodeName=n1 sees the pod arrive as ADDED",
         w.wait(lambda evs: [(e[0], e[1]) for e in evs] == [("ADDED", "bind-me")]), w.changes())
    w.cancel()
    b2 = M["Binding"]()
    b2.CopyFrom(b)
    b2.target.name = "n2"
    expect_code(c, "bind again -> FAILED_PRECONDITION", lambda: api.Pods.Bind(b2), SC.FAILED_PRECONDITION,
                'pod bind-me is already assigned to node "n1"')
    b3 = M["Binding"]()
    b3.CopyFrom(b)
    b3.metadata.name = "nope"
    expect_code(c, "bind a missing pod -> NOT_FOUND", lambda: api.Pods.Bind(b3), SC.NOT_FOUND)
    b4 = M["Binding"]()
    b4.CopyFrom(b)
    b4.target.kind = "Pod"
    expect_code(c, "bind to a non-Node target -> INVALID_ARGUMENT", lambda: api.Pods.Bind(b4),
                SC.INVALID_ARGUMENT, "target.kind")
    upd = api.Pods.Get(gr(M, "bind-me", "default"))
    upd.spec.node_name = "n2"
    expect_code(c, "update may not change spec.nodeName -> INVALID_ARGUMENT", lambda: api.Pods.Update(upd),
                SC.INVALID_ARGUMENT, "spec.nodeName")
    api.Pods.Delete(dr(M, "bind-me", "default", grace=0))


def test_scale(c, api, M):
    for service, kind, *_ in L.KINDS:
        if kind not in ("ReplicaSet", "Deployment"):
            continue
        svc = getattr(api, service)
        name = "scale-" + kind.lower()
        obj = svc.Create(L.make(M, kind, name, "default"))
        sc = svc.GetScale(gr(M, name, "default"))
        c.eq(f"{kind} GetScale: replicas, selector, name", (sc.spec.replicas, sc.status.selector,
                                                            sc.metadata.name, sc.metadata.namespace),
             (2, "app=web", name, "default"))
        c.eq(f"{kind} GetScale: kind Scale, autoscaling/v1", (sc.kind, sc.api_version), ("Scale", "autoscaling/v1"))
        c.eq(f"{kind} GetScale: resourceVersion is the object's", sc.metadata.resource_version,
             obj.metadata.resource_version)
        sc.spec.replicas = 5
        sc2 = svc.UpdateScale(sc)
        c.eq(f"{kind} UpdateScale: replies replicas 5", sc2.spec.replicas, 5)
        got = svc.Get(gr(M, name, "default"))
        c.eq(f"{kind} UpdateScale: object spec.replicas 5", got.spec.replicas.value, 5)
        c.eq(f"{kind} UpdateScale: generation moves", got.metadata.generation, 2)
        c.eq(f"{kind} UpdateScale: resourceVersion is the object's", sc2.metadata.resource_version,
             got.metadata.resource_version)
        expect_code(c, f"{kind} UpdateScale with a stale resourceVersion -> FAILED_PRECONDITION",
                    lambda: svc.UpdateScale(sc), SC.FAILED_PRECONDITION, "the object has been modified")
        neg = M["Scale"]()
        neg.CopyFrom(sc2)
        neg.spec.replicas = -1
        expect_code(c, f"{kind} UpdateScale to -1 -> INVALID_ARGUMENT", lambda: svc.UpdateScale(neg),
                    SC.INVALID_ARGUMENT, "spec.replicas")
        missing = M["Scale"]()
        missing.metadata.name = "nope"
        missing.metadata.namespace = "default"
        missing.spec.replicas = 1
        expect_code(c, f"{kind} UpdateScale of a missing object -> NOT_FOUND", lambda: svc.UpdateScale(missing),
                    SC.NOT_FOUND)
        expect_code(c, f"{kind} GetScale of a missing object -> NOT_FOUND",
                    lambda: svc.GetScale(gr(M, "nope", "default")), SC.NOT_FOUND)
        # Concurrent UpdateScale with one resourceVersion: one wins.
        base = svc.GetScale(gr(M, name, "default"))
        results = race(8, lambda i: svc.UpdateScale(scale_to(M, base, 10 + i)))
        c.eq(f"{kind} concurrent UpdateScale, same resourceVersion: exactly one wins",
             (results.count("ok"), results.count(SC.FAILED_PRECONDITION)), (1, 7))
        svc.Delete(dr(M, name, "default"))


def scale_to(M, base, n):
    s = M["Scale"]()
    s.CopyFrom(base)
    s.spec.replicas = n
    return s


UPDATE_TRIES = 20


def race(n, fn):
    """Runs fn(i) on n threads started together; ["ok" | StatusCode]."""
    results = [None] * n
    barrier = threading.Barrier(n)

    def run(i):
        barrier.wait()
        code, _ = L.rpc_error(lambda: fn(i))
        results[i] = "ok" if code is None else code

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T)
    return results


def test_concurrency(c, api, M):
    base = api.Pods.Create(L.pod(M, "racer"))

    def with_label(i, keep_rv=True):
        p = M["Pod"]()
        p.CopyFrom(base)
        if not keep_rv:
            p.metadata.resource_version = ""
        p.metadata.labels[f"racer-{i}"] = "x"
        return api.Pods.Update(p)

    results = race(8, with_label)
    c.eq("concurrent updates, same resourceVersion: exactly one wins", results.count("ok"), 1)
    c.eq("concurrent updates: the other 7 get FAILED_PRECONDITION", results.count(SC.FAILED_PRECONDITION), 7)
    got = api.Pods.Get(gr(M, "racer", "default"))
    winners = [k for k in got.metadata.labels if k.startswith("racer-")]
    c.ok("concurrent updates: the stored object is the winner's", len(winners) == 1, winners)
    c.eq("concurrent updates: generation unchanged (labels only)", got.metadata.generation, 1)

    # An update naming another object's uid (the name was deleted and made
    # again) must not land on the new object: Kubernetes' uid precondition.
    stale = M["Pod"]()
    stale.CopyFrom(api.Pods.Get(gr(M, "racer", "default")))
    stale.metadata.resource_version = ""
    stale.metadata.uid = "00000000-0000-4000-8000-000000000000"
    stale.metadata.labels["from-another-object"] = "1"
    expect_code(c, "update carrying another object's uid -> FAILED_PRECONDITION", lambda: api.Pods.Update(stale),
                SC.FAILED_PRECONDITION, "UID")
    results = race(6, lambda i: with_label(i, keep_rv=False))
    c.eq("concurrent updates without resourceVersion: all land (retried on conflict)", results, ["ok"] * 6)

    results = race(8, lambda i: api.Pods.Create(L.pod(M, "same-name", labels={"n": str(i)})))
    c.eq("concurrent creates of one name: exactly one wins, the rest ALREADY_EXISTS",
         (results.count("ok"), results.count(SC.ALREADY_EXISTS)), (1, 7))
    for n in ("racer", "same-name"):
        api.Pods.Delete(dr(M, n, "default"))


def test_selectors(c, api, M):
    for ns in ("e2e-sel", "e2e-sel2"):
        api.Namespaces.Create(L.namespace(M, ns))
    specs = [("a", "e2e-sel", {"app": "web", "tier": "fe"}, "n1", "Running"),
             ("b", "e2e-sel", {"app": "web", "tier": "be"}, "n2", ""),
             ("c", "e2e-sel", {"app": "db"}, "", ""),
             ("d", "e2e-sel2", {"app": "cache", "tier": "fe"}, "n1", "Running")]
    for name, ns, labels, node_name, phase in specs:
        p = api.Pods.Create(L.pod(M, name, ns, labels=labels, node=node_name))
        if phase:
            p.status.phase = phase
            api.Pods.UpdateStatus(p)

    def pods(ns="e2e-sel", label="", field=""):
        return L.names(api.Pods.List(M["ListRequest"](namespace=ns, label_selector=label, field_selector=field)))

    cases = [
        ("label app=web", dict(label="app=web"), ["a", "b"]),
        ("label app==web", dict(label="app==web"), ["a", "b"]),
        ("label app!=web", dict(label="app!=web"), ["c"]),
        ("label tier (exists)", dict(label="tier"), ["a", "b"]),
        ("label !tier", dict(label="!tier"), ["c"]),
        ("label app in (web,db)", dict(label="app in (web,db)"), ["a", "b", "c"]),
        ("label app notin (web)", dict(label="app notin (web)"), ["c"]),
        ("label app=web,tier!=fe", dict(label="app=web,tier!=fe"), ["b"]),
        ("label tier in (fe),app", dict(label="tier in (fe),app"), ["a"]),
        ("label tier in (fe), all namespaces", dict(ns="", label="tier in (fe)"), ["a", "d"]),
        ("field spec.nodeName=n1", dict(field="spec.nodeName=n1"), ["a"]),
        ("field spec.nodeName=n1, all namespaces", dict(ns="", field="spec.nodeName=n1"), ["a", "d"]),
        ("field spec.nodeName= (unbound)", dict(field="spec.nodeName="), ["c"]),
        ("field spec.nodeName!=n1", dict(field="spec.nodeName!=n1"), ["b", "c"]),
        ("field status.phase=Running", dict(field="status.phase=Running"), ["a"]),
        ("field status.phase!=Running", dict(field="status.phase!=Running"), ["b", "c"]),
        ("field metadata.name=b", dict(field="metadata.name=b"), ["b"]),
        ("field metadata.namespace=e2e-sel2, all namespaces",
         dict(ns="", field="metadata.namespace=e2e-sel2"), ["d"]),
        ("field metadata.namespace=e2e-sel2,status.phase=Running",
         dict(ns="", field="metadata.namespace=e2e-sel2,status.phase=Running"), ["d"]),
        ("label app=web + field spec.nodeName=n2", dict(label="app=web", field="spec.nodeName=n2"), ["b"]),
        ("label app=nothing", dict(label="app=nothing"), []),
    ]
    for what, kw, want in cases:
        c.eq(f"selector: {what}", pods(**kw), want)
    nodes_ok = L.names(api.Nodes.List(M["ListRequest"](field_selector="spec.unschedulable=true")))
    c.eq("selector: nodes field spec.unschedulable=true (none)", nodes_ok, [])
    nss = L.names(api.Namespaces.List(M["ListRequest"](field_selector="status.phase=Active",
                                                       label_selector="")))
    c.ok("selector: namespaces status.phase=Active includes e2e-sel", "e2e-sel" in nss, nss)
    expect_code(c, "selector: malformed label selector -> INVALID_ARGUMENT",
                lambda: pods(label="app in ("), SC.INVALID_ARGUMENT)
    expect_code(c, "selector: unsupported field label -> INVALID_ARGUMENT",
                lambda: pods(field="spec.containers=x"), SC.INVALID_ARGUMENT,
                "field label not supported: spec.containers")
    expect_code(c, "selector: metadata.namespace is not selectable on nodes -> INVALID_ARGUMENT",
                lambda: api.Nodes.List(M["ListRequest"](field_selector="metadata.namespace=x")),
                SC.INVALID_ARGUMENT, "field label not supported")

    # A watch whose field selector an object moves into and out of.
    rv = api.Pods.List(M["ListRequest"](namespace="e2e-sel")).metadata.resource_version
    w = L.Watcher(api.Pods.Watch(M["WatchRequest"](namespace="e2e-sel", field_selector="status.phase=Running",
                                                   label_selector="app=web", resource_version=rv)))
    b = api.Pods.Get(gr(M, "b", "e2e-sel"))
    b.status.phase = "Running"
    b = api.Pods.UpdateStatus(b)
    b.status.phase = "Succeeded"
    b = api.Pods.UpdateStatus(b)
    cc = api.Pods.Get(gr(M, "c", "e2e-sel"))
    cc.status.phase = "Running"
    api.Pods.UpdateStatus(cc)  # not app=web: never seen
    a = api.Pods.Get(gr(M, "a", "e2e-sel"))
    a.metadata.labels["touched"] = "1"
    api.Pods.Update(a)
    w.wait(lambda evs: len(evs) >= 3)
    w.cancel()
    c.eq("selector watch: into the filter ADDED, out of it DELETED, inside MODIFIED",
         [(t, n) for t, n, _ in w.changes()], [("ADDED", "b"), ("DELETED", "b"), ("MODIFIED", "a")])
    # From "" the watch starts with the current matching objects as ADDED.
    w = L.Watcher(api.Pods.Watch(M["WatchRequest"](field_selector="spec.nodeName=n1")))
    w.wait(lambda evs: len(evs) >= 2)
    w.cancel()
    c.eq("selector watch from \"\": the current matching objects as ADDED",
         sorted((t, n) for t, n, _ in w.changes()), [("ADDED", "a"), ("ADDED", "d")])


def test_graceful_deletion(c, api, M):
    # A bound pod is marked; its agent finishes with grace 0.
    p = api.Pods.Create(L.pod(M, "bound-1", node="n1"))
    w = L.Watcher(api.Pods.Watch(M["WatchRequest"](namespace="default", field_selector="metadata.name=bound-1",
                                                   resource_version=p.metadata.resource_version)))
    marked = api.Pods.Delete(dr(M, "bound-1", "default"))
    c.ok("bound pod: delete sets deletionTimestamp", marked.metadata.HasField("deletion_timestamp"))
    c.eq("bound pod: grace 30 s by default", marked.metadata.deletion_grace_period_seconds.value, 30)
    c.ok("bound pod: deletionTimestamp is about now + 30 s",
         25 <= marked.metadata.deletion_timestamp.seconds - marked.metadata.creation_timestamp.seconds <= 40)
    still = api.Pods.Get(gr(M, "bound-1", "default"))
    c.ok("bound pod: still readable while terminating", still.metadata.HasField("deletion_timestamp"))
    again = api.Pods.Delete(dr(M, "bound-1", "default"))
    c.eq("bound pod: a second delete changes nothing", again.metadata.resource_version,
         marked.metadata.resource_version)
    gone = api.Pods.Delete(dr(M, "bound-1", "default", grace=0))
    expect_code(c, "bound pod: delete with grace 0 removes it", lambda: api.Pods.Get(gr(M, "bound-1", "default")),
                SC.NOT_FOUND)
    w.wait(lambda evs: len(evs) >= 2)
    w.cancel()
    c.eq("bound pod: watch sees MODIFIED (marked) then DELETED",
         w.changes(), [("MODIFIED", "bound-1", int(marked.metadata.resource_version)),
                       ("DELETED", "bound-1", int(gone.metadata.resource_version))])
    p = api.Pods.Create(L.pod(M, "bound-2", node="n1"))
    m = api.Pods.Delete(dr(M, "bound-2", "default", grace=5))
    c.eq("bound pod: an explicit grace period is kept", m.metadata.deletion_grace_period_seconds.value, 5)
    api.Pods.Delete(dr(M, "bound-2", "default", grace=0))

    # Finalizers hold a pod; once gone, the agent's grace-0 delete finishes it.
    api.Pods.Create(L.pod(M, "fin-pod", finalizers=["example.com/hold"]))
    m = api.Pods.Delete(dr(M, "fin-pod", "default"))
    c.ok("pod with a finalizer: marked, not deleted", m.metadata.HasField("deletion_timestamp"))
    cur = api.Pods.Get(gr(M, "fin-pod", "default"))
    del cur.metadata.finalizers[:]
    api.Pods.Update(cur)
    api.Pods.Delete(dr(M, "fin-pod", "default", grace=0))
    expect_code(c, "pod with its finalizer removed: deleted", lambda: api.Pods.Get(gr(M, "fin-pod", "default")),
                SC.NOT_FOUND)

    # A deployment with a finalizer: deletion completes when the last one goes.
    d = L.deployment(M, "fin-deploy")
    d.metadata.finalizers.extend(["example.com/a", "example.com/b"])
    d = api.Deployments.Create(d)
    w = L.Watcher(api.Deployments.Watch(M["WatchRequest"](namespace="default",
                                                          field_selector="metadata.name=fin-deploy",
                                                          resource_version=d.metadata.resource_version)))
    m = api.Deployments.Delete(dr(M, "fin-deploy", "default"))
    c.ok("deployment with finalizers: marked", m.metadata.HasField("deletion_timestamp"))
    expect_code(c, "deployment being deleted: its name is still taken",
                lambda: api.Deployments.Create(L.deployment(M, "fin-deploy")), SC.ALREADY_EXISTS)
    cur = api.Deployments.Get(gr(M, "fin-deploy", "default"))
    cur.metadata.finalizers.remove("example.com/a")
    cur = api.Deployments.Update(cur)
    c.ok("deployment: one finalizer left, still there, still marked", cur.metadata.HasField("deletion_timestamp"))
    del cur.metadata.finalizers[:]
    last = api.Deployments.Update(cur)
    expect_code(c, "deployment: last finalizer removed -> deleted",
                lambda: api.Deployments.Get(gr(M, "fin-deploy", "default")), SC.NOT_FOUND)
    w.wait(lambda evs: len(evs) >= 3)
    w.cancel()
    c.eq("deployment: watch sees MODIFIED, MODIFIED, DELETED", [(t, n) for t, n, _ in w.changes()],
         [("MODIFIED", "fin-deploy"), ("MODIFIED", "fin-deploy"), ("DELETED", "fin-deploy")])
    c.eq("deployment: the DELETED event's revision is the one the last update returned",
         w.changes()[-1:], [("DELETED", "fin-deploy", int(last.metadata.resource_version))])

    # A service with a finalizer keeps its ClusterIP until it is really gone.
    s = L.service(M, "fin-svc")
    s.metadata.finalizers.append("example.com/hold")
    s = api.Services.Create(s)
    ip = s.spec.cluster_ip
    api.Services.Delete(dr(M, "fin-svc", "default"))
    taker = L.service(M, "ip-taker")
    taker.spec.cluster_ip = ip
    expect_code(c, "service being deleted still holds its ClusterIP", lambda: api.Services.Create(taker),
                SC.INVALID_ARGUMENT, "already allocated")
    cur = api.Services.Get(gr(M, "fin-svc", "default"))
    del cur.metadata.finalizers[:]
    api.Services.Update(cur)
    code, got = L.rpc_error(lambda: api.Services.Create(taker))
    c.ok("service finalized: its ClusterIP can be taken again", code is None and got.spec.cluster_ip == ip,
         f"{code} {got}")
    api.Services.Delete(dr(M, "ip-taker", "default"))

    # Delete preconditions.
    p = api.Pods.Create(L.pod(M, "precond"))
    bad = dr(M, "precond", "default")
    bad.preconditions.uid = "00000000-0000-4000-8000-000000000000"
    expect_code(c, "delete with a wrong uid precondition -> FAILED_PRECONDITION", lambda: api.Pods.Delete(bad),
                SC.FAILED_PRECONDITION, "Precondition failed: UID in precondition")
    bad = dr(M, "precond", "default")
    bad.preconditions.resource_version = str(int(p.metadata.resource_version) - 1)
    expect_code(c, "delete with a stale resourceVersion precondition -> FAILED_PRECONDITION",
                lambda: api.Pods.Delete(bad), SC.FAILED_PRECONDITION, "Precondition failed: ResourceVersion")
    ok = dr(M, "precond", "default")
    ok.preconditions.uid = p.metadata.uid
    ok.preconditions.resource_version = p.metadata.resource_version
    code, _ = L.rpc_error(lambda: api.Pods.Delete(ok))
    c.eq("delete with matching preconditions succeeds", code, None)

    # A namespace with content terminates; nothing new goes in; empty, it goes.
    api.Namespaces.Create(L.namespace(M, "e2e-term"))
    api.Pods.Create(L.pod(M, "inside", "e2e-term"))
    m = api.Namespaces.Delete(dr(M, "e2e-term"))
    c.eq("namespace with content: Terminating", m.status.phase, "Terminating")
    c.ok("namespace with content: deletionTimestamp", m.metadata.HasField("deletion_timestamp"))
    expect_code(c, "creating in a terminating namespace -> PERMISSION_DENIED",
                lambda: api.Pods.Create(L.pod(M, "late", "e2e-term")), SC.PERMISSION_DENIED,
                "unable to create new content in namespace e2e-term because it is being terminated")
    api.Pods.Delete(dr(M, "inside", "e2e-term"))
    api.Namespaces.Delete(dr(M, "e2e-term"))
    expect_code(c, "empty terminating namespace: deleted", lambda: api.Namespaces.Get(gr(M, "e2e-term")),
                SC.NOT_FOUND)
    expect_code(c, "creating in a missing namespace -> NOT_FOUND",
                lambda: api.Pods.Create(L.pod(M, "x", "nowhere")), SC.NOT_FOUND, 'namespaces "nowhere" not found')


def svc_copy(M, s):
    u = M["Service"]()
    u.CopyFrom(s)
    return u


def add_port(s, name, port, node_port=0):
    p = s.spec.ports.add(name=name, port=port, node_port=node_port)
    p.target_port.int_val = port
    return s


def node_ports(s):
    return [p.node_port for p in s.spec.ports]


def taker(M, name, node_port):
    """A NodePort Service asking for node_port explicitly."""
    t = L.service(M, name, type_="NodePort")
    t.spec.ports[0].node_port = node_port
    return t


def test_service_node_ports(c, api, M):
    s = api.Services.Create(L.service(M, "np-upd", type_="NodePort"))
    http = s.spec.ports[0].node_port
    # A port added by an update gets a NodePort; the old port keeps its own.
    u = api.Services.Update(add_port(svc_copy(M, s), "metrics", 9090))
    c.ok("update adding a port: it gets a NodePort in the range, the old port keeps its own",
         u.spec.ports[0].node_port == http and 30000 <= u.spec.ports[1].node_port <= 30199
         and u.spec.ports[1].node_port != http, node_ports(u))
    metrics = u.spec.ports[1].node_port
    expect_code(c, "the added port's NodePort is allocated: a Service asking for it is refused",
                lambda: api.Services.Create(taker(M, "np-taker", metrics)), SC.INVALID_ARGUMENT,
                f"spec.ports[0].nodePort: Invalid value: {metrics}: provided port is already allocated")
    # The client may leave every nodePort out (a manifest applied again).
    again = svc_copy(M, u)
    for p in again.spec.ports:
        p.node_port = 0
    again = api.Services.Update(again)
    c.eq("update leaving nodePorts out keeps them (matched by name)", node_ports(again), [http, metrics])
    # A port removed by an update releases its NodePort.
    r = svc_copy(M, again)
    del r.spec.ports[1]
    r = api.Services.Update(r)
    c.eq("update removing a port: the rest keep theirs", node_ports(r), [http])
    code, got = L.rpc_error(lambda: api.Services.Create(taker(M, "np-taker", metrics)))
    c.ok("a removed port's NodePort is free: another Service takes it explicitly",
         code is None and got.spec.ports[0].node_port == metrics, f"{code} {got}")
    # Taken by another Service: an update asking for it is refused, nothing changes.
    expect_code(c, "update asking for a NodePort another Service holds -> INVALID_ARGUMENT",
                lambda: api.Services.Update(add_port(svc_copy(M, r), "metrics", 9090, metrics)),
                SC.INVALID_ARGUMENT,
                f'Service "np-upd" is invalid: spec.ports[1].nodePort: Invalid value: {metrics}: '
                "provided port is already allocated")
    c.eq("the refused update changed nothing", node_ports(api.Services.Get(gr(M, "np-upd", "default"))), [http])
    api.Services.Delete(dr(M, "np-taker", "default"))
    # Swapping two ports' NodePorts within one Service is no conflict.
    two = api.Services.Update(add_port(svc_copy(M, r), "metrics", 9090))
    sw = svc_copy(M, two)
    sw.spec.ports[0].node_port, sw.spec.ports[1].node_port = two.spec.ports[1].node_port, http
    sw = api.Services.Update(sw)
    c.eq("update swapping two ports' NodePorts", node_ports(sw), [two.spec.ports[1].node_port, http])
    # Dry run: the reply shows the NodePort a new port would get; nothing is written.
    d = api.Services.Update(add_port(svc_copy(M, sw), "admin", 9091), metadata=[("x-keel-dry-run", "All")])
    c.ok("dry run update adding a port: answered with a NodePort", len(d.spec.ports) == 3 and d.spec.ports[2].node_port,
         node_ports(d))
    c.eq("dry run update wrote nothing", node_ports(api.Services.Get(gr(M, "np-upd", "default"))), node_ports(sw))
    if d.spec.ports[2].node_port:
        code, got = L.rpc_error(lambda: api.Services.Create(taker(M, "np-dry", d.spec.ports[2].node_port)))
        c.eq("dry run allocated nothing: its NodePort is free", code, None)
        api.Services.Delete(dr(M, "np-dry", "default"))
    # NodePort -> ClusterIP (a read-modify-write of the type alone) releases them all.
    held = node_ports(sw)
    ci = svc_copy(M, sw)
    ci.spec.type = "ClusterIP"
    ci = api.Services.Update(ci)
    c.eq("type NodePort -> ClusterIP: nodePorts and externalTrafficPolicy cleared",
         (node_ports(ci), ci.spec.external_traffic_policy), ([0, 0], ""))
    c.eq("type change keeps the ClusterIP", ci.spec.cluster_ip, s.spec.cluster_ip)
    for i, port in enumerate(held):
        code, _ = L.rpc_error(lambda port=port, i=i: api.Services.Create(taker(M, f"np-free{i}", port)))
        c.eq(f"after NodePort -> ClusterIP, NodePort {i} is free again", code, None)
        api.Services.Delete(dr(M, f"np-free{i}", "default"))
    # ClusterIP -> NodePort allocates one per port.
    np = svc_copy(M, ci)
    np.spec.type = "NodePort"
    np = api.Services.Update(np)
    c.ok("type ClusterIP -> NodePort: every port gets a NodePort",
         all(30000 <= p <= 30199 for p in node_ports(np)) and len(set(node_ports(np))) == 2, node_ports(np))
    # The ClusterIP never changes.
    bad = svc_copy(M, np)
    bad.spec.cluster_ip = "10.96.250.250"
    del bad.spec.cluster_ips[:]
    expect_code(c, "update changing spec.clusterIP -> INVALID_ARGUMENT", lambda: api.Services.Update(bad),
                SC.INVALID_ARGUMENT, "spec.clusterIP: Invalid value: \"10.96.250.250\": field is immutable")
    api.Services.Delete(dr(M, "np-upd", "default"))

    # Concurrent updates adding ports to several Services (and to one Service,
    # without a resourceVersion) never hand one NodePort out twice. The range
    # is 200 ports (main), so random picks do collide now and then.
    names = [f"np-race{i}" for i in range(6)]
    made = [api.Services.Create(L.service(M, n, type_="NodePort")) for n in names]

    def grow(i):
        u = svc_copy(M, made[i % len(made)])
        u.metadata.resource_version = ""
        for j in range(3):
            add_port(u, f"p{i}-{j}", 1000 + 10 * i + j)
        return api.Services.Update(u)

    results = race(len(names), grow)
    c.eq("concurrent updates adding ports: all land", results, ["ok"] * len(names))
    one = api.Services.Create(L.service(M, "np-one", type_="NodePort"))

    def grow_one(i):
        for _ in range(UPDATE_TRIES):
            cur = api.Services.Get(gr(M, "np-one", "default"))
            add_port(cur, f"q{i}", 2000 + i)
            code, _ = L.rpc_error(lambda: api.Services.Update(cur))
            if code != SC.FAILED_PRECONDITION:
                return code
        return "gave up"

    outcomes = [None] * 4
    ts = [threading.Thread(target=lambda i=i: outcomes.__setitem__(i, grow_one(i))) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(T)
    c.eq("concurrent read-modify-write updates of one Service: all land", outcomes, [None] * 4)
    every = []
    for n in names + ["np-one"]:
        every += node_ports(api.Services.Get(gr(M, n, "default")))
    c.eq("concurrent updates: every port has a NodePort", [p for p in every if not p], [])
    c.eq("concurrent updates: no NodePort handed out twice", len(every), len(set(every)))
    c.eq("one Service: all 4 ports added", len(api.Services.Get(gr(M, "np-one", "default")).spec.ports), 5)
    for n in names + ["np-one"]:
        api.Services.Delete(dr(M, n, "default"))


def test_misc(c, api, M):
    # Dry run: answered, not written.
    dry = api.Pods.Create(L.pod(M, "dry"), metadata=[("x-keel-dry-run", "All")])
    c.eq("dry run create answers the object", dry.metadata.name, "dry")
    expect_code(c, "dry run create wrote nothing", lambda: api.Pods.Get(gr(M, "dry", "default")), SC.NOT_FOUND)
    # generateName.
    g = L.pod(M, "")
    g.metadata.generate_name = "gen-"
    made = api.Pods.Create(g)
    c.ok("generateName: gen- plus a 5-character suffix",
         made.metadata.name.startswith("gen-") and len(made.metadata.name) == 9, made.metadata.name)
    api.Pods.Delete(dr(M, made.metadata.name, "default"))
    # Services: ClusterIP and NodePort allocation, kept on update.
    s = api.Services.Create(L.service(M, "np", type_="NodePort"))
    c.ok("service: ClusterIP from 10.96.0.0/16", s.spec.cluster_ip.startswith("10.96."), s.spec.cluster_ip)
    c.eq("service: clusterIPs mirrors clusterIP", list(s.spec.cluster_ips), [s.spec.cluster_ip])
    c.ok("service: nodePort in the range", 30000 <= s.spec.ports[0].node_port <= 30199)
    u = M["Service"]()
    u.CopyFrom(s)
    u.spec.cluster_ip = ""
    del u.spec.cluster_ips[:]
    u.spec.ports[0].node_port = 0
    u = api.Services.Update(u)
    c.eq("service update keeps ClusterIP and nodePort left empty",
         (u.spec.cluster_ip, u.spec.ports[0].node_port), (s.spec.cluster_ip, s.spec.ports[0].node_port))
    api.Services.Delete(dr(M, "np", "default"))
    # Dry run on the subresources: answered, not written.
    api.Pods.Create(L.pod(M, "dry-bind"))
    b = M["Binding"]()
    b.metadata.name = "dry-bind"
    b.metadata.namespace = "default"
    b.target.kind = "Node"
    b.target.name = "n1"
    code, _ = L.rpc_error(lambda: api.Pods.Bind(b, metadata=[("x-keel-dry-run", "All")]))
    c.eq("dry run Bind answers", code, None)
    c.eq("dry run Bind wrote nothing", api.Pods.Get(gr(M, "dry-bind", "default")).spec.node_name, "")
    api.Pods.Delete(dr(M, "dry-bind", "default", grace=0))
    api.Deployments.Create(L.deployment(M, "dry-scale"))
    sc = api.Deployments.GetScale(gr(M, "dry-scale", "default"))
    sc.spec.replicas = 7
    code, _ = L.rpc_error(lambda: api.Deployments.UpdateScale(sc, metadata=[("x-keel-dry-run", "All")]))
    c.eq("dry run UpdateScale answers", code, None)
    c.eq("dry run UpdateScale wrote nothing",
         api.Deployments.Get(gr(M, "dry-scale", "default")).spec.replicas.value, 2)
    api.Deployments.Delete(dr(M, "dry-scale", "default"))
    # Defaults on create.
    d = api.Deployments.Create(L.deployment(M, "defaults"))
    c.eq("deployment defaults: strategy RollingUpdate, revisionHistoryLimit 10, progressDeadline 600",
         (d.spec.strategy.type, d.spec.revision_history_limit.value, d.spec.progress_deadline_seconds.value),
         ("RollingUpdate", 10, 600))
    api.Deployments.Delete(dr(M, "defaults", "default"))
    p = api.Pods.Create(L.pod(M, "defaults"))
    c.eq("pod defaults: restartPolicy Always, grace 30, phase Pending",
         (p.spec.restart_policy, p.spec.termination_grace_period_seconds.value, p.status.phase),
         ("Always", 30, "Pending"))
    api.Pods.Delete(dr(M, "defaults", "default"))
    # Kubernetes' bootstrap namespaces may not be deleted ("default" is left
    # alone here: everything else in this run lives in it).
    for n in ("kube-system", "kube-public"):
        expect_code(c, f"deleting namespace {n} -> PERMISSION_DENIED", lambda n=n: api.Namespaces.Delete(dr(M, n)),
                    SC.PERMISSION_DENIED, n)
        code, _ = L.rpc_error(lambda n=n: api.Namespaces.Get(gr(M, n)))
        c.eq(f"namespace {n} is still there", code, None)


def main():
    c = kt.Checks(f"apiserver CRUD ({STORE_KIND})")
    types = L.ApiTypes(DESCRIPTORS)
    M = types.M
    base = kt.tmpdir("apiserver-crud")
    store, url = L.start_store(STORE_KIND, STORE_BIN, base)
    # A narrow NodePort range: concurrent allocations collide and retry.
    apid = L.start_apiserver(APISERVER, url, base, args=["--service-node-port-range=30000-30199"])
    api = L.insecure_api(types, apid.grpc_addr())
    ns = api.Namespaces.Get(gr(M, "default"))
    c.eq("bootstrap: namespace default is Active", ns.status.phase, "Active")
    for n in ("kube-system", "kube-public"):
        code, _ = L.rpc_error(lambda n=n: api.Namespaces.Get(gr(M, n)))
        c.eq(f"bootstrap: namespace {n} exists", code, None)
    c.run("every kind", lambda: test_every_kind(c, api, M))
    c.run("Pods/Bind", lambda: test_bind(c, api, M))
    c.run("Scale subresource", lambda: test_scale(c, api, M))
    c.run("concurrency", lambda: test_concurrency(c, api, M))
    c.run("selectors", lambda: test_selectors(c, api, M))
    c.run("graceful deletion and finalizers", lambda: test_graceful_deletion(c, api, M))
    c.run("dry run, generateName, services, defaults", lambda: test_misc(c, api, M))
    c.run("service NodePorts on update", lambda: test_service_node_ports(c, api, M))
    api.close()
    c.ok("apiserver still running at the end", apid.running(), apid.log_tail())
    L.stop_all(c, [apid, store])
    return c


if __name__ == "__main__":
    L.main_wrapper(main)
