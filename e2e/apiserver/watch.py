#!/usr/bin/python3
"""keel-apiserver watches over real gRPC (python3-grpcio), against keel-store
or a real etcd: resuming across apiserver restarts, the too-old status,
bookmarks, timeouts.

usage: watch.py KEEL_APISERVER API_DESCRIPTORS.pb (keel-store KEEL_STORE | etcd /usr/bin/etcd)

Restarts, and why the design is sound. Writes only go through an apiserver, so
two apiservers share the store: A (watched) and B (written through). A writer
keeps writing pods; a client watches them and records every event, resuming
from the last resourceVersion it saw each time its stream ends:
  1. A is SIGTERMed mid-stream while the writer writes on through B, started
     again (A2), and the client resumes on A2: the events written while no A
     was up must come from A2 (which fills its window from the store's history).
  2. A2 is SIGTERMed mid-stream; the client fails over to B (an endpoint-list
     client's move).
  3. One apiserver, restart and continue: the client and the writer both use
     A3; A3 is SIGTERMed mid-stream while the writer writes (creates only, so
     a create whose answer was lost is looked up afterwards); A3 is started
     again (A4) and the writer and the client go on there.
In the end the client's events, across all its streams, must be exactly the
writer's writes, in order, at the revisions the writes returned: none missed,
none repeated. Every stopped apiserver must exit 0 with a clean log.

Too old: an apiserver with --watch-cache-size=100 sees 250 events; a watch 150
events back fails with OUT_OF_RANGE "too old resource version...", 50 back
replays exactly those 50, and the same watch on an apiserver with the default
window replays all 250. After the store is compacted, a newly started apiserver
serves watches from the compaction revision on, and older ones are too old.

Bookmarks (--bookmark-interval=1s): a watch with allow_watch_bookmarks gets
BOOKMARK events carrying only metadata.resourceVersion, which reaches the
store's revision after writes to other kinds; without it, none. A watch with
timeout_seconds ends with OK.
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apiserver_lib as L  # noqa: E402
import grpc  # noqa: E402
from apiserver_lib import SC, SLOW, T, expect_code, gr, dr  # noqa: E402

import keeltest as kt  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]
NS = "e2e-watch"
TOO_OLD = "too old resource version"


class Writer:
    """Writes pods in NS through one Api on a thread: creates, label updates
    and deletes (creates only with creates_only); records (type, name, rv) of
    every acknowledged write. A create whose call failed may still have been
    committed (its answer lost): its name is kept in `uncertain`."""

    def __init__(self, M, api):
        self.M, self.api = M, api
        self.records = []
        self.errors = []
        self.uncertain = []
        self.live = []
        self.i = 0
        self.creates_only = False
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.t = None

    def start(self, api=None, creates_only=False):
        if api is not None:
            self.api = api
        self.creates_only = creates_only
        self.stop_ev.clear()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def stop(self):
        self.stop_ev.set()
        self.t.join(T)

    def switch(self, api):
        with self.lock:
            self.api = api

    def count(self):
        with self.lock:
            return len(self.records)

    def _one(self, api):
        M, i = self.M, self.i
        self.i += 1
        if not self.creates_only and i % 5 == 4 and len(self.live) > 2:
            name = self.live.pop(0)
            r = api.Pods.Delete(dr(M, name, NS))
            return ("DELETED", name, int(r.metadata.resource_version))
        if not self.creates_only and i % 3 == 2 and self.live:
            name = self.live[-1]
            p = api.Pods.Get(gr(M, name, NS))
            p.metadata.labels["touched"] = str(i)
            r = api.Pods.Update(p)
            return ("MODIFIED", name, int(r.metadata.resource_version))
        name = f"w-{i}"
        try:
            r = api.Pods.Create(L.pod(M, name, NS, labels={"seq": str(i)}))
        except Exception:
            self.uncertain.append(name)
            raise
        self.live.append(name)
        return ("ADDED", name, int(r.metadata.resource_version))

    def _run(self):
        while not self.stop_ev.is_set():
            with self.lock:
                api = self.api
            code, rec = L.rpc_error(lambda: self._one(api))
            if code is not None:
                self.errors.append((code, rec))
                time.sleep(0.02)
                continue
            with self.lock:
                self.records.append(rec)
            time.sleep(0.01)

    def wait_count(self, n, timeout=T):
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.count() >= n

    def resolve_uncertain(self, api):
        """Creates whose answers were lost but which were committed join the
        records at the revision the store gave them (nothing modifies them)."""
        found = []
        for name in self.uncertain:
            code, p = L.rpc_error(lambda: api.Pods.Get(gr(self.M, name, NS)))
            if code is None:
                found.append(("ADDED", name, int(p.metadata.resource_version)))
        self.records = sorted(self.records + found, key=lambda r: r[2])
        self.uncertain = []
        return found


def compact_store(url, rev):
    """etcd KV/Compact{revision, physical} straight to the store."""
    target = url[len("http://"):] if url.startswith("http://") else url
    ch = grpc.insecure_channel(target)
    try:
        ch.unary_unary("/etcdserverpb.KV/Compact", request_serializer=kt.identity,
                       response_deserializer=kt.identity)(kt.pb_uint(1, rev) + kt.pb_uint(2, 1), timeout=T)
    finally:
        ch.close()


def pod_watch(api, M, rv, **kw):
    return L.Watcher(api.Pods.Watch(M["WatchRequest"](namespace=NS, resource_version=str(rv), **kw)))


def test_restarts(c, types, M, url, base, b, api_b, args):
    """Returns the last apiserver started (still running) and its Api."""
    def start(name):
        d = L.start_apiserver(APISERVER, url, base, name, args)
        return d, L.insecure_api(types, d.grpc_addr())

    def stopped_mid_stream(d, w, label):
        L.stop_checked(c, d)
        c.ok(f"{label}: the watch ends when its apiserver is stopped", w.wait_end(5 * SLOW))
        c.eq(f"{label}: ...with UNAVAILABLE \"server shutting down\"", (w.code, w.details),
             (SC.UNAVAILABLE, "server shutting down"))

    a, api_a = start("apiserver-a")
    api_b.Namespaces.Create(L.namespace(M, NS))
    rv0 = int(api_a.Pods.List(M["ListRequest"](namespace=NS)).metadata.resource_version)
    streams = []
    writer = Writer(M, api_b)

    # 1. Restart while another apiserver takes writes: watch on A, writer
    # through B; A stopped mid-stream and started again as A2; the client
    # resumes on A2 from its last resourceVersion.
    w = pod_watch(api_a, M, rv0)
    streams.append(("A", w))
    writer.start()
    c.ok("writer: 30 writes through B", writer.wait_count(30), writer.count())
    c.ok("watch on A: events arrive", w.wait(lambda evs: len(evs) >= 10), len(w.changes()))
    stopped_mid_stream(a, w, "A")
    n_down = writer.count()
    a2, api_a2 = start("apiserver-a2")
    resume = w.last_rv()
    c.ok("writes went on while A was down", writer.count() > n_down, (writer.count(), n_down))
    w = pod_watch(api_a2, M, resume)
    streams.append(("A2", w))
    writer.wait_count(writer.count() + 20)
    c.ok("resumed on the restarted A2: events arrive", w.wait(lambda evs: len(evs) >= 10), len(w.changes()))

    # 2. Failover: A2 stopped mid-stream; the client resumes on B.
    stopped_mid_stream(a2, w, "A2")
    w = pod_watch(api_b, M, max(rv0, *(x.last_rv() for _, x in streams)))
    streams.append(("B", w))
    writer.wait_count(writer.count() + 20)
    writer.stop()
    final = writer.records[-1][2]
    c.ok("resumed on B: reaches the last write", w.wait(lambda evs: w.last_rv() >= final), (w.last_rv(), final))
    w.cancel()
    c.eq("writer: every write through B succeeded", writer.errors, [])

    # 3. One apiserver, restart and continue: watch and writes on A3; A3
    # stopped mid-stream while the writer writes (creates: a lost answer is
    # looked up later); started again as A4; the writer and the client go on
    # there.
    a3, api_a3 = start("apiserver-a3")
    w = pod_watch(api_a3, M, max(x.last_rv() for _, x in streams))
    streams.append(("A3", w))
    writer.start(api_a3, creates_only=True)
    writer.wait_count(writer.count() + 20)
    stopped_mid_stream(a3, w, "A3")
    a4, api_a4 = start("apiserver-a4")
    writer.switch(api_a4)
    w = pod_watch(api_a4, M, max(x.last_rv() for _, x in streams))
    streams.append(("A4", w))
    writer.wait_count(writer.count() + 20)
    writer.stop()
    # A write in flight when A3 stops ends UNAVAILABLE (not sent, or the
    # connection went away) or CANCELLED (common/rpc cancels what is still
    # open when its shutdown grace ends: rpc.h, SHUTDOWN); either way the
    # writer looks the create up afterwards (resolve_uncertain).
    c.ok("writer: writes failed only while no apiserver served them",
         all(code in (SC.UNAVAILABLE, SC.CANCELLED) for code, _ in writer.errors), writer.errors[:5])
    found = writer.resolve_uncertain(api_a4)
    print(f"writes refused while A3 was down: {len(writer.errors)}; committed without an answer: {found}",
          flush=True)
    final = writer.records[-1][2]
    c.ok("resumed on the restarted A4: reaches the last write", w.wait(lambda evs: w.last_rv() >= final),
         (w.last_rv(), final))
    w.cancel()
    c.eq("the last watch ended only by our cancel", w.code, SC.CANCELLED)

    got = [e for _, x in streams for e in x.changes()]
    want = writer.records
    rvs = [rv for _, _, rv in got]
    c.eq("across A, A2, B, A3, A4: no resourceVersion repeated", len(rvs), len(set(rvs)))
    missed = sorted(set(want) - set(got), key=lambda r: r[2])
    extra = sorted(set(got) - set(want), key=lambda r: r[2])
    c.ok(f"across A, A2, B, A3, A4: no event missed (of {len(want)})", not missed, f"missed {missed[:10]}")
    c.ok("across A, A2, B, A3, A4: no event that was not written", not extra, f"extra {extra[:10]}")
    c.ok("across A, A2, B, A3, A4: exactly the writes, in order", got == want,
         f"first difference at {next((i for i, (x, y) in enumerate(zip(got, want)) if x != y), None)}")
    print(f"restart run: {len(want)} writes; streams " +
          ", ".join(f"{n} {len(x.changes())}" for n, x in streams), flush=True)
    for api in (api_a, api_a2, api_a3):
        api.close()
    return a4, api_a4


def test_too_old(c, types, M, small_api, big_api, url, base, args):
    small_api.Namespaces.Create(L.namespace(M, "e2e-old"))
    rv_before = int(small_api.Events.List(M["ListRequest"](namespace="e2e-old")).metadata.resource_version)
    rvs = []
    for i in range(250):
        e = small_api.Events.Create(L.event(M, f"ev-{i}", "e2e-old", pod_name=f"p{i}"))
        rvs.append(int(e.metadata.resource_version))

    def watch(api, rv, n, wait=5 * SLOW):
        """Up to n events (fewer once `wait` seconds pass), then cancel."""
        s = api.Events.Watch(M["WatchRequest"](namespace="e2e-old", resource_version=str(rv)), timeout=T)
        w = L.Watcher(s)
        w.wait(lambda evs: len(evs) >= n, timeout=wait)
        w.cancel()
        return w

    w = watch(small_api, rv_before, 1, wait=2 * SLOW)
    c.eq("window 100: a watch 250 events back -> OUT_OF_RANGE", w.code, SC.OUT_OF_RANGE)
    c.ok("window 100: ...its message starts with \"too old resource version\"",
         (w.details or "").startswith(TOO_OLD), w.details)
    c.eq("window 100: ...and no event came before it", w.changes(), [])
    w = watch(small_api, rvs[-151], 1, wait=2 * SLOW)
    c.eq("window 100: a watch 150 events back -> OUT_OF_RANGE", w.code, SC.OUT_OF_RANGE)
    c.ok("window 100: ...\"too old resource version\"", (w.details or "").startswith(TOO_OLD), w.details)
    w = watch(small_api, rvs[-51], 50)
    c.eq("window 100: a watch 50 events back replays exactly those 50",
         [rv for _, _, rv in w.changes()], rvs[-50:])
    w = watch(big_api, rv_before, 250)
    c.eq("default window: the watch 250 events back replays all 250", [rv for _, _, rv in w.changes()], rvs)
    lst = small_api.Events.List(M["ListRequest"](namespace="e2e-old"))
    c.eq("relist after too old: all 250 objects", len(lst.items), 250)
    c.ok("relist resourceVersion is at least the last write", int(lst.metadata.resource_version) >= rvs[-1])
    w = L.Watcher(small_api.Events.Watch(M["WatchRequest"](namespace="e2e-old",
                                                           resource_version=lst.metadata.resource_version)))
    last = small_api.Events.Create(L.event(M, "ev-after", "e2e-old", pod_name="pa"))
    w.wait(lambda evs: len(evs) >= 1)
    w.cancel()
    c.eq("watch from the relist's resourceVersion: only the new event",
         w.changes(), [("ADDED", "ev-after", int(last.metadata.resource_version))])
    # Compaction: a newly started apiserver's history begins at the compacted revision.
    compact_store(url, rvs[-1])
    fresh = L.start_apiserver(APISERVER, url, base, "apiserver-fresh", args)
    fresh_api = L.insecure_api(types, fresh.grpc_addr())
    w = watch(fresh_api, rvs[-1] - 2, 1, wait=2 * SLOW)
    c.eq("after compaction at R: a new apiserver's watch from R-2 -> OUT_OF_RANGE", w.code, SC.OUT_OF_RANGE)
    c.ok("after compaction: ...\"too old resource version\"", (w.details or "").startswith(TOO_OLD), w.details)
    w = watch(fresh_api, rvs[-1] - 1, 2, wait=2 * SLOW)
    c.eq("after compaction at R: a new apiserver's watch from R-1 replays the events from R on",
         w.changes(), [("ADDED", "ev-249", rvs[-1]), ("ADDED", "ev-after", int(last.metadata.resource_version))])
    fresh_api.close()
    L.stop_checked(c, fresh)
    expect_code(c, "watch with resourceVersion \"abc\" -> INVALID_ARGUMENT",
                lambda: next(iter(small_api.Events.Watch(M["WatchRequest"](resource_version="abc"), timeout=T))),
                SC.INVALID_ARGUMENT, "resourceVersion")


def test_bookmarks(c, M, api):
    api.Namespaces.Create(L.namespace(M, "e2e-bm"))
    rv = api.Leases.List(M["ListRequest"](namespace="e2e-bm")).metadata.resource_version
    with_bm = L.Watcher(api.Leases.Watch(M["WatchRequest"](namespace="e2e-bm", resource_version=rv,
                                                           allow_watch_bookmarks=True)))
    without = L.Watcher(api.Leases.Watch(M["WatchRequest"](namespace="e2e-bm", resource_version=rv)))
    # Writes to another kind move the store's revision, not this watch's objects.
    last = None
    for i in range(3):
        last = api.Events.Create(L.event(M, f"bm-{i}", "e2e-bm", pod_name="x"))
    target = int(last.metadata.resource_version)
    if STORE_KIND == "etcd":
        # etcd 3.4.23 may send a progress notification before events still on
        # their way (etcd issue 15220), so keel-apiserver does not trust it:
        # over etcd a bookmark carries the revision of the kind's own last
        # event. Write one Lease outside the watched namespace: the watch sees
        # no event, and the bookmark has a revision to carry.
        last = api.Leases.Create(L.lease(M, "bm-lease", "default"))
        target = int(last.metadata.resource_version)
    t0 = time.monotonic()
    got = with_bm.wait(lambda evs: any(t == "BOOKMARK" and rv >= target for t, _, rv, _ in evs),
                       timeout=6 * SLOW)
    took = time.monotonic() - t0
    c.ok("bookmarks: a BOOKMARK reaching the store's revision arrives (interval 1 s)"
         if STORE_KIND != "etcd" else "bookmarks: a BOOKMARK reaching the kind's last event arrives (interval 1 s)", got,
         [(t, rv) for t, _, rv, _ in with_bm.events])
    print(f"bookmark reached revision {target} after {took:.2f}s", flush=True)
    bms = [o for t, _, _, o in with_bm.events if t == "BOOKMARK"]
    if bms:
        o = bms[-1]
        bare = M["Lease"]()
        bare.CopyFrom(o)
        bare.metadata.resource_version = ""
        bare.kind = bare.api_version = ""
        c.eq("bookmark object carries only metadata.resourceVersion (and type meta)",
             bare.SerializeToString(), M["Lease"](metadata=M["ObjectMeta"]()).SerializeToString())
        rvs = [rv for t, _, rv, _ in with_bm.events if t == "BOOKMARK"]
        c.ok("bookmark resourceVersions never go back", rvs == sorted(rvs), rvs)
    c.eq("bookmarks: no other event on the quiet watch", with_bm.changes(), [])
    c.eq("no allow_watch_bookmarks: no BOOKMARK", without.events, [])
    with_bm.cancel()
    without.cancel()
    # Resuming from a bookmark's resourceVersion sees exactly what came after.
    if bms:
        brv = bms[-1].metadata.resource_version
        w = L.Watcher(api.Leases.Watch(M["WatchRequest"](namespace="e2e-bm", resource_version=brv)))
        lz = api.Leases.Create(L.lease(M, "after-bookmark", "e2e-bm"))
        w.wait(lambda evs: len(evs) >= 1)
        w.cancel()
        c.eq("watch from a bookmark's resourceVersion: just the later change",
             w.changes(), [("ADDED", "after-bookmark", int(lz.metadata.resource_version))])


def test_timeout(c, M, api):
    t0 = time.monotonic()
    w = L.Watcher(api.Pods.Watch(M["WatchRequest"](namespace="default", timeout_seconds=1), timeout=T))
    ended = w.wait_end(6 * SLOW)
    took = time.monotonic() - t0
    c.ok("timeout_seconds=1: the stream ends", ended, took)
    c.eq("timeout_seconds=1: ...with OK", (w.code, w.details), (SC.OK, ""))
    c.ok("timeout_seconds=1: ...after about a second", 0.9 <= took <= 4 * SLOW, f"{took:.2f}s")
    # "" and "0": current state first.
    api.Pods.Create(L.pod(M, "init-1"))
    for rv in ("", "0"):
        w = L.Watcher(api.Pods.Watch(M["WatchRequest"](namespace="default", resource_version=rv,
                                                       timeout_seconds=1), timeout=T))
        w.wait_end(6 * SLOW)
        c.eq(f"watch from {rv!r}: the current objects as ADDED, then OK at the timeout",
             ([(t, n) for t, n, _ in w.changes()], w.code), ([("ADDED", "init-1")], SC.OK))
    api.Pods.Delete(dr(M, "init-1", "default"))


def main():
    c = kt.Checks(f"apiserver watch ({STORE_KIND})")
    types = L.ApiTypes(DESCRIPTORS)
    M = types.M
    base = kt.tmpdir("apiserver-watch")
    store, url = L.start_store(STORE_KIND, STORE_BIN, base)
    args = ["--bookmark-interval=1s"]
    b = L.start_apiserver(APISERVER, url, base, "apiserver-b", args)
    small = L.start_apiserver(APISERVER, url, base, "apiserver-small", args + ["--watch-cache-size=100"])
    api_b = L.insecure_api(types, b.grpc_addr())
    api_small = L.insecure_api(types, small.grpc_addr())
    daemons = [b, small]

    def restarts():
        last, api_last = test_restarts(c, types, M, url, base, b, api_b, args)
        daemons.insert(0, last)
        test_bookmarks(c, M, api_last)
        api_last.close()

    c.run("restarts: resume without missing or repeating an event", restarts)
    c.run("too old resource version", lambda: test_too_old(c, types, M, api_small, api_b, url, base, args))
    c.run("timeout_seconds and initial state", lambda: test_timeout(c, M, api_b))
    for api in (api_b, api_small):
        api.close()
    for d in daemons:
        c.ok(f"{d.name} still running at the end", d.running(), d.log_tail())
    L.stop_all(c, daemons + [store])
    return c


if __name__ == "__main__":
    L.main_wrapper(main)
