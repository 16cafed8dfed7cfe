"""keel-store crash cycles: concurrent writers, SIGKILL at random instants, and after
every restart each acknowledged write is back at its revision and the history has
no gaps.

usage (run with /usr/bin/python3):
  crash_cycles.py --store KEEL_STORE [--proto-root DIR] [--cycles N] [--writers N]
                  [--snapshot-count N] [--snapshot-chunk-delay-us US]
                  [--kill-after MIN,MAX] [--seed S]

One data dir (in $TEST_TMPDIR) lives through every cycle. A cycle:
  1. start keel-store on the data dir (--snapshot-count small, so snapshots are
     written while the writers run and recovery goes through snapshot + WAL tail;
     KEEL_STORE_TEST_SNAPSHOT_CHUNK_DELAY_US makes each snapshot slow, so most
     kills land while one is being written, with writes going on meanwhile);
  2. verify (below) everything written so far, then one probe Put, which must take
     the next revision;
  3. N writer threads (gRPC, 4 connections) write until the kill: Put of a unique
     new key, DeleteRange of one of their own live keys, Txn with a success branch
     (two new keys + a delete), Txn with a failure branch (one new key), and Range
     reads of their own last put. Each records what was acknowledged: the op and
     its header revision. An RPC that fails after the kill leaves its op "in
     flight" (applied or not); one that fails before the kill is a violation;
  4. SIGKILL at a random instant (--kill-after, seconds after the writers start);
  5. every third cycle, one more start that is SIGKILLed during recovery/startup.

Verification after each restart (any breach fails the test, with the revision, the
key and what was acknowledged):
  - the store's revision is >= the highest acknowledged revision;
  - a Watch from revision 1 over the whole keyspace returns every revision from 2
    to the current one, each exactly once: no gaps, nothing past it;
  - history is immutable: every revision verified in an earlier cycle holds the
    same events as before;
  - each new revision holds exactly the events of one write attempted in the last
    cycle (in op order for Txns), and an acknowledged write sits at exactly its
    acknowledged revision; no write appears twice; in-flight writes are resolved;
  - replaying the history gives create_revision/mod_revision/version of every
    event, and the current Range over the whole keyspace equals the replayed
    state: every acknowledged put that was not deleted holds its acknowledged
    mod_revision and value, acknowledged deletes are gone;
  - Ranges at two sampled past revisions equal the replayed state at those
    revisions;
  - acknowledged revisions are distinct and increase per writer; a writer reads
    its own last put back at its revision.
After the last cycle: one more verification after a graceful SIGTERM (status 0).
At least one kill must have landed while a snapshot was being written (the log
has a "snapshot started" without its end).
"""

import argparse
import collections
import faulthandler
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "testlib"))
import keeltest  # noqa: E402

import grpc  # noqa: E402 - python3-grpcio

PUT, DELETE = 0, 1
EVT = {PUT: "PUT", DELETE: "DELETE"}
ALL = b"\0"  # key and range_end: the whole keyspace
RPC_TIMEOUT = 10.0
MAX_REPORT = 12  # violations printed per kind

c = keeltest.Checks("keel-store crash cycles")
pb = None  # rpc_pb2, loaded in main


# ------------------------------------------------------------------ violations


class Violations:
    """Failures grouped by kind: the first MAX_REPORT of each are printed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()

    def add(self, kind, detail):
        with self.lock:
            self.counts[kind] += 1
            n = self.counts[kind]
        if n <= MAX_REPORT:
            c.fail(kind, detail)
        elif n == MAX_REPORT + 1:
            c.note(f"more violations of kind {kind!r} are counted, not printed")

    def total(self):
        return sum(self.counts.values())

    def summary(self):
        for kind, n in self.counts.items():
            if n > MAX_REPORT:
                c.fail(f"{kind}: {n} violations in all ({n - MAX_REPORT} not printed)")


V = Violations()


# ------------------------------------------------------------------ the model


class Op:
    """One write attempted by the test. events: what it must produce, in order, as
    (type, key, value) tuples, all at one revision."""

    __slots__ = ("id", "cycle", "writer", "kind", "events", "status", "rev", "applied", "error")

    def __init__(self, oid, cycle, writer, kind, events):
        self.id, self.cycle, self.writer, self.kind = oid, cycle, writer, kind
        self.events = tuple(events)
        self.status = "pending"  # -> acked | inflight | failed-live | noop
        self.rev = 0             # the acknowledged revision
        self.applied = 0         # the revision verification found it at (0: not applied)
        self.error = ""

    def describe(self):
        ev = ", ".join(f"{EVT[t]} {k.decode()}" for t, k, _ in self.events)
        st = f"acknowledged at revision {self.rev}" if self.status == "acked" else self.status
        return f"op #{self.id} ({self.kind} by writer {self.writer}, cycle {self.cycle}: {ev}; {st})"


def fmt_events(events):
    return "[" + ", ".join(f"{EVT.get(t, t)} {k.decode(errors='replace')}"
                           + (f"={v[:24].decode(errors='replace')}" if t == PUT else "")
                           for t, k, v in events) + "]"


class Model:
    def __init__(self):
        self.ops = []
        self.next_id = 1
        self.id_lock = threading.Lock()
        self.history = {}        # revision -> tuple of (type, key, value), verified
        self.verified_rev = 1    # history is verified up to here
        self.max_acked = 0
        self.state = {}          # key -> (value, create, mod, version) at verified_rev
        self.live = collections.defaultdict(list)  # writer -> its live keys

    def new_op(self, cycle, writer, kind, events):
        with self.id_lock:
            oid = self.next_id
            self.next_id += 1
        return Op(oid, cycle, writer, kind, events)


def key_name(cycle, writer, n):
    return b"/crash/c%02d/w%02d/%07d" % (cycle, writer, n)


def writer_of(key):
    parts = key.split(b"/")
    if len(parts) == 5 and parts[1] == b"crash" and parts[3].startswith(b"w"):
        return int(parts[3][1:])
    return None


# ------------------------------------------------------------------ gRPC


class Client:
    def __init__(self, addr, channels=4):
        self.chans = [grpc.insecure_channel(addr, options=[
            ("grpc.max_receive_message_length", 256 << 20),
            ("grpc.use_local_subchannel_pool", 1)]) for _ in range(channels)]
        for ch in self.chans:
            grpc.channel_ready_future(ch).result(timeout=10)
        ser = lambda m: m.SerializeToString()  # noqa: E731
        self.stubs = []
        for ch in self.chans:
            def uu(meth, resp, ch=ch):
                return ch.unary_unary(f"/etcdserverpb.KV/{meth}", request_serializer=ser,
                                      response_deserializer=resp.FromString)
            self.stubs.append({"Range": uu("Range", pb.RangeResponse),
                               "Put": uu("Put", pb.PutResponse),
                               "DeleteRange": uu("DeleteRange", pb.DeleteRangeResponse),
                               "Txn": uu("Txn", pb.TxnResponse)})
        self.watch_method = self.chans[0].stream_stream(
            "/etcdserverpb.Watch/Watch", request_serializer=ser,
            response_deserializer=pb.WatchResponse.FromString)

    def stub(self, i=0):
        return self.stubs[i % len(self.stubs)]

    def revision(self):
        r = self.stub()["Range"](pb.RangeRequest(key=b"/crash-probe-none", count_only=True),
                                 timeout=RPC_TIMEOUT)
        return r.header.revision

    def close(self):
        for ch in self.chans:
            ch.close()


class Stream:
    """A bidi stream: send() requests, next(timeout) responses (None on timeout)."""

    def __init__(self, method):
        self.req = queue.Queue()
        self.resp = queue.Queue()
        self.call = method(iter(self.req.get, None), timeout=120)
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

    def next(self, timeout):
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


# ------------------------------------------------------------------ writers


class Writer(threading.Thread):
    def __init__(self, w, cycle, model, client, killing, seed):
        super().__init__(name=f"writer-{w}", daemon=True)
        self.w, self.cycle, self.model, self.client = w, cycle, model, client
        self.killing = killing
        self.rng = random.Random(seed)
        self.stub = client.stub(w)
        self.ops = []
        self.live = list(model.live[w])  # keys known to exist (verified or acked here)
        self.n = 0
        self.last_rev = 0
        self.last_put = None  # (key, value, rev)
        self.reads = 0

    def new_key(self):
        self.n += 1
        return key_name(self.cycle, self.w, self.n)

    def value(self, key):
        return b"v:" + key + b":%d" % self.rng.getrandbits(32)

    def take_live(self):
        if not self.live:
            return None
        k = self.live.pop(self.rng.randrange(len(self.live)))
        if self.last_put and self.last_put[0] == k:
            self.last_put = None  # about to be deleted: nothing to read back
        return k

    def op(self, kind, events):
        o = self.model.new_op(self.cycle, self.w, kind, events)
        self.ops.append(o)
        return o

    def ack(self, o, rev):
        o.status, o.rev = "acked", rev
        if rev <= self.last_rev:
            V.add("acknowledged revisions increase per writer",
                  f"{o.describe()} came after an acknowledged write at revision {self.last_rev}")
        self.last_rev = max(self.last_rev, rev)

    def run(self):
        while True:
            o = None
            try:
                x = self.rng.random()
                if x < 0.08 and self.last_put:
                    self.read_back()
                    continue
                if x < 0.25 and self.live:
                    k = self.take_live()
                    o = self.op("delete", [(DELETE, k, b"")])
                    r = self.stub["DeleteRange"](pb.DeleteRangeRequest(key=k), timeout=RPC_TIMEOUT)
                    if r.deleted != 1:
                        o.status = "noop"
                        V.add("DeleteRange of a live key deletes it",
                              f"{o.describe()}: deleted={r.deleted} at header revision "
                              f"{r.header.revision}")
                    else:
                        self.ack(o, r.header.revision)
                elif x < 0.37:
                    k1, k2 = self.new_key(), self.new_key()
                    v1, v2 = self.value(k1), self.value(k2)
                    old = self.take_live()
                    events = [(PUT, k1, v1), (PUT, k2, v2)] + ([(DELETE, old, b"")] if old else [])
                    o = self.op("txn-success", events)
                    ops = [pb.RequestOp(request_put=pb.PutRequest(key=k1, value=v1)),
                           pb.RequestOp(request_put=pb.PutRequest(key=k2, value=v2))]
                    if old:
                        ops.append(pb.RequestOp(request_delete_range=pb.DeleteRangeRequest(key=old)))
                    req = pb.TxnRequest(
                        compare=[pb.Compare(result=pb.Compare.EQUAL, target=pb.Compare.CREATE,
                                            key=k1, create_revision=0)],
                        success=ops,
                        failure=[pb.RequestOp(request_range=pb.RangeRequest(key=k1))])
                    r = self.stub["Txn"](req, timeout=RPC_TIMEOUT)
                    deleted = [rp.response_delete_range.deleted for rp in r.responses
                               if rp.WhichOneof("response") == "response_delete_range"]
                    if not r.succeeded or len(r.responses) != len(ops) or (old and deleted != [1]):
                        o.status = "noop"
                        V.add("Txn success branch",
                              f"{o.describe()}: succeeded={r.succeeded} responses="
                              f"{[rp.WhichOneof('response') for rp in r.responses]} deleted={deleted}")
                    else:
                        self.ack(o, r.header.revision)
                        self.live += [k1, k2]
                        self.last_put = (k2, v2, r.header.revision)
                elif x < 0.45:
                    k = self.new_key()
                    v = self.value(k)
                    o = self.op("txn-failure", [(PUT, k, v)])
                    req = pb.TxnRequest(
                        compare=[pb.Compare(result=pb.Compare.GREATER, target=pb.Compare.VERSION,
                                            key=k, version=0)],
                        success=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=b"wrong"))],
                        failure=[pb.RequestOp(request_put=pb.PutRequest(key=k, value=v))])
                    r = self.stub["Txn"](req, timeout=RPC_TIMEOUT)
                    if r.succeeded or len(r.responses) != 1:
                        o.status = "noop"
                        V.add("Txn failure branch",
                              f"{o.describe()}: succeeded={r.succeeded}, {len(r.responses)} responses")
                    else:
                        self.ack(o, r.header.revision)
                        self.live.append(k)
                        self.last_put = (k, v, r.header.revision)
                else:
                    k = self.new_key()
                    v = self.value(k)
                    o = self.op("put", [(PUT, k, v)])
                    r = self.stub["Put"](pb.PutRequest(key=k, value=v), timeout=RPC_TIMEOUT)
                    self.ack(o, r.header.revision)
                    self.live.append(k)
                    self.last_put = (k, v, r.header.revision)
            except grpc.RpcError as e:
                killed = self.killing.is_set()
                if o is not None and o.status == "pending":
                    o.status = "inflight" if killed else "failed-live"
                    o.error = f"{e.code().name}: {e.details()}"
                if not killed:
                    V.add("no RPC fails while keel-store runs",
                          f"writer {self.w}: {e.code().name}: {e.details()!r}"
                          + (f" for {o.describe()}" if o else " (Range read-back)"))
                return

    def read_back(self):
        k, v, rev = self.last_put
        r = self.stub["Range"](pb.RangeRequest(key=k), timeout=RPC_TIMEOUT)
        self.reads += 1
        got = [(kv.mod_revision, kv.value) for kv in r.kvs]
        if got != [(rev, v)] or r.header.revision < self.last_rev:
            V.add("a writer reads its own acknowledged put",
                  f"writer {self.w}: Range {k.decode()} at header revision {r.header.revision} "
                  f"-> {[(m, x[:30]) for m, x in got]}, acknowledged at revision {rev}"
                  f" (writer's last acknowledged revision {self.last_rev})")


# ------------------------------------------------------------------ verification


def watch_history(client, cur, idle=5.0):
    """Every event from revision 1 to cur over the whole keyspace, in delivery order."""
    s = Stream(client.watch_method)
    events = []
    try:
        s.send(pb.WatchRequest(create_request=pb.WatchCreateRequest(
            key=ALL, range_end=ALL, start_revision=1)))
        last = 1
        created = False
        while last < cur or not created:
            m = s.next(idle)
            if m is None:
                break
            if m.created:
                created = True
            if m.canceled:
                V.add("history watch is not canceled",
                      f"canceled: compact_revision={m.compact_revision} reason={m.cancel_reason!r}")
                break
            for e in m.events:
                events.append(e)
                last = max(last, e.kv.mod_revision)
        if not created:
            V.add("history watch is created", f"no created response within {idle}s")
        # Anything past cur would be a write nobody made; give it a moment to show.
        m = s.next(0.2)
        while m is not None:
            events.extend(m.events)
            m = s.next(0.2)
    finally:
        s.close()
    return events


def range_all(client, rev=0):
    r = client.stub()["Range"](pb.RangeRequest(key=ALL, range_end=ALL, revision=rev),
                               timeout=30)
    return r


def verify(model, client, cycle, label):
    """Checks the store against the model; returns a summary dict."""
    t0 = time.monotonic()
    nviol = V.total()
    cur = client.revision()
    if cur < model.max_acked:
        V.add("revision after restart >= highest acknowledged",
              f"{label}: store revision {cur} < highest acknowledged revision {model.max_acked}")
    if cur < model.verified_rev:
        V.add("revision after restart >= verified revision",
              f"{label}: store revision {cur} < revision {model.verified_rev} seen before")

    events = watch_history(client, cur)
    by_rev = collections.OrderedDict()
    prev = 0
    for e in events:
        r = e.kv.mod_revision
        if r < prev:
            V.add("history watch delivers revisions in order",
                  f"{label}: revision {r} after revision {prev}")
        prev = max(prev, r)
        by_rev.setdefault(r, []).append(e)

    missing = [r for r in range(2, cur + 1) if r not in by_rev]
    extra = [r for r in by_rev if r < 2 or r > cur]
    if missing:
        V.add("history has every revision from 2 to the current one",
              f"{label}: {len(missing)} revisions of 2..{cur} have no events: "
              f"{compress(missing)}")
    if extra:
        V.add("history has nothing outside 2..current",
              f"{label}: events at revisions {compress(extra)} (current revision {cur})")

    # Immutable history: what earlier cycles verified.
    for r in range(2, model.verified_rev + 1):
        old = model.history.get(r)
        got = sig(by_rev.get(r, []))
        if old is not None and got != old:
            V.add("verified history never changes",
                  f"{label}: revision {r} held {fmt_events(old)} and now holds {fmt_events(got)}")

    # New revisions: each is exactly one write attempted since the last verification.
    index = {}
    pending = [o for o in model.ops if o.applied == 0 and o.status not in ("noop", "resolved")]
    for o in pending:
        index.setdefault(o.events[0][:2], []).append(o)
    new_revs = [r for r in by_rev if model.verified_rev < r <= cur]
    matched = {}
    for r in new_revs:
        got = sig(by_rev[r])
        cands = index.get(got[0][:2], []) if got else []
        hit = next((o for o in cands if o.events == got and o.applied == 0), None)
        if hit is None:
            near = "; ".join(o.describe() + " expects " + fmt_events(o.events) for o in cands[:3])
            V.add("every revision is one write the test made",
                  f"{label}: revision {r} holds {fmt_events(got)}, matching no write attempted "
                  f"since revision {model.verified_rev}" + (f" (same first key: {near})" if near else ""))
            continue
        hit.applied = r
        matched[hit.id] = hit
        if hit.status == "acked" and hit.rev != r:
            V.add("an acknowledged write is at its acknowledged revision",
                  f"{label}: {hit.describe()} is at revision {r}")

    lost = [o for o in pending if o.status == "acked" and o.applied == 0]
    for o in lost:
        at = fmt_events(sig(by_rev[o.rev])) if o.rev in by_rev else "nothing"
        V.add("every acknowledged write survives the crash",
              f"{label}: {o.describe()} is missing; revision {o.rev} holds {at}")
    applied_inflight = [o for o in pending if o.status in ("inflight", "failed-live") and o.applied]
    dropped_inflight = [o for o in pending if o.status in ("inflight", "failed-live") and not o.applied]

    # Replay: event metadata, state at sampled revisions, state now.
    for r in new_revs:
        model.history[r] = sig(by_rev[r])
    samples = sorted(set(random.sample(range(2, cur + 1), min(2, cur - 1)))) if cur >= 2 else []
    state, at_sample = {}, {}
    for r in sorted(by_rev):
        for e in by_rev[r]:
            k = e.kv.key
            if e.type == PUT:
                was = state.get(k)
                want = (e.kv.value, was[1] if was else r, r, (was[3] + 1) if was else 1)
                got = (e.kv.value, e.kv.create_revision, e.kv.mod_revision, e.kv.version)
                if got != want:
                    V.add("watch events carry create/mod revision and version",
                          f"{label}: PUT {k.decode()} at revision {r}: create={got[1]} mod={got[2]} "
                          f"version={got[3]}, replay says create={want[1]} mod={want[2]} "
                          f"version={want[3]}")
                state[k] = want
            else:
                if k not in state:
                    V.add("a DELETE event is for a live key",
                          f"{label}: DELETE {k.decode()} at revision {r}, key not live")
                state.pop(k, None)
        if r in samples:
            at_sample[r] = dict(state)

    def compare(rev, want, what):
        resp = range_all(client, rev)
        got = {kv.key: (kv.value, kv.create_revision, kv.mod_revision, kv.version)
               for kv in resp.kvs}
        if resp.count != len(resp.kvs) or resp.more:
            V.add(f"{what}: one Range returns all keys",
                  f"{label}: count={resp.count} kvs={len(resp.kvs)} more={resp.more}")
        bad = 0
        for k in sorted(set(got) | set(want)):
            if got.get(k) != want.get(k):
                bad += 1
                if bad <= 5:
                    g, w = got.get(k), want.get(k)
                    V.add(f"{what} equals the replayed history",
                          f"{label}: {k.decode()}: Range gives "
                          f"{'absent' if g is None else 'create=%d mod=%d version=%d' % g[1:]}"
                          f", history gives "
                          f"{'absent' if w is None else 'create=%d mod=%d version=%d' % w[1:]}"
                          + ("" if g is None or w is None or g[0] == w[0] else " (values differ)"))
        if bad > 5:
            V.add(f"{what} equals the replayed history", f"{label}: {bad} keys differ in all")
        return got

    for r in samples:
        compare(r, at_sample[r], f"Range at past revision {r}")
    now = compare(0, state, "Range now")

    # The requirement stated directly: acknowledged puts are there at their revision
    # unless an acknowledged delete removed them; acknowledged deletes are gone.
    deleted_by = {}
    for o in model.ops:
        if o.applied:
            for t, k, _ in o.events:
                if t == DELETE:
                    deleted_by[k] = o
    for o in model.ops:
        if o.status != "acked":
            continue
        for t, k, v in o.events:
            kv = now.get(k)
            if t == PUT:
                d = deleted_by.get(k)
                if d is None and (kv is None or kv[2] != o.rev or kv[0] != v):
                    V.add("an acknowledged put is readable at its revision",
                          f"{label}: {k.decode()} from {o.describe()}: Range gives "
                          + ("nothing" if kv is None else f"mod_revision {kv[2]}"))
                if d is not None and d.status == "acked" and kv is not None:
                    V.add("an acknowledged delete is gone",
                          f"{label}: {k.decode()} deleted by {d.describe()} is present")
            elif kv is not None:
                V.add("an acknowledged delete is gone",
                      f"{label}: {k.decode()} deleted by {o.describe()} is present")

    # Resolve: in-flight writes that did not make it never will.
    for o in pending:
        if not o.applied and o.status != "acked":
            o.status = "resolved"
    model.state = state
    model.verified_rev = max(model.verified_rev, cur)
    model.live = collections.defaultdict(list)
    for k in state:
        w = writer_of(k)
        if w is not None:
            model.live[w].append(k)
    return {"cur": cur, "new": (new_revs[0], new_revs[-1]) if new_revs else None,
            "recovered": sum(1 for o in matched.values()
                         if o.status == "acked" and o.kind != "probe" and o.applied == o.rev),
            "gaps": len(missing),
            "inflight_applied": len(applied_inflight), "inflight_dropped": len(dropped_inflight),
            "keys": len(state), "events": len(events), "secs": time.monotonic() - t0,
            "ok": V.total() == nviol}


def sig(events):
    return tuple((e.type, e.kv.key, e.kv.value if e.type == PUT else b"") for e in events)


def compress(revs, limit=20):
    """[3,4,5,9] -> '3-5, 9'"""
    out, i = [], 0
    revs = sorted(revs)
    while i < len(revs):
        j = i
        while j + 1 < len(revs) and revs[j + 1] == revs[j] + 1:
            j += 1
        out.append(str(revs[i]) if i == j else f"{revs[i]}-{revs[j]}")
        i = j + 1
    return ", ".join(out[:limit]) + (f", ... ({len(out)} ranges)" if len(out) > limit else "")


# ------------------------------------------------------------------ the store


# keeltest.Daemon starts with preexec_fn, which makes subprocess fork(); with gRPC
# threads running, grpcio's pthread_atfork handler can then block forever (seen
# here: the test hung in __run_prefork_handlers). Without preexec_fn, subprocess
# uses vfork/posix_spawn (no atfork handlers); setpriv sets the parent-death
# signal instead, so keel-store still dies with this process.
PDEATHSIG = (["/usr/bin/setpriv", "--pdeathsig", "KILL", "--"]
             if os.path.exists("/usr/bin/setpriv") else [])


class SpawnedDaemon(keeltest.Daemon):
    def start(self):
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        with open(self.log_file, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.env)
        keeltest._daemons.append(self)  # killed at exit like every keeltest daemon
        print(f"started {self.name} (pid {self.proc.pid}): {' '.join(self.argv)}", flush=True)
        return self


class Store:
    def __init__(self, binary, data_dir, base, snapshot_count, chunk_delay_us=0):
        self.binary, self.data, self.base = binary, data_dir, base
        self.snapshot_count = snapshot_count
        self.env = dict(os.environ)
        if chunk_delay_us:
            self.env["KEEL_STORE_TEST_SNAPSHOT_CHUNK_DELAY_US"] = str(chunk_delay_us)
        self.starts = 0
        self.d = None

    def start(self, wait=True):
        self.starts += 1
        self.d = SpawnedDaemon(f"store{self.starts:02d}", [
            self.binary, f"--data-dir={self.data}",
            "--listen-client-urls=http://127.0.0.1:0",
            f"--snapshot-count={self.snapshot_count}"], self.base, wrapper=PDEATHSIG,
            env=self.env)
        self.d.start()
        if wait:
            self.d.wait_ready(timeout=30)
        return self.d

    def kill9(self):
        self.d.send_signal(signal.SIGKILL)
        rc = self.d.wait(10)
        print(f"{self.d.name} (pid {self.d.pid}) SIGKILLed: status {rc}", flush=True)

    def snapshots_written(self):
        try:
            with open(self.d.log_file, "rb") as f:
                return f.read().count(b"store: snapshot written")
        except OSError:
            return 0

    def snapshot_in_progress(self):
        """After a kill: was a snapshot being written (started, not ended)?"""
        try:
            with open(self.d.log_file, "rb") as f:
                log = f.read()
        except OSError:
            return False
        ended = sum(log.count(b"store: snapshot " + w) for w in (b"written", b"abandoned", b"failed"))
        return log.count(b"store: snapshot started") > ended

    def files(self):
        snaps = wals = 0
        for root, _dirs, names in os.walk(self.data):
            snaps += sum(1 for n in names if n.endswith(".snap"))
            wals += sum(1 for n in names if n.endswith(".wal"))
        return snaps, wals


def run_cycle_writes(model, client, cycle, nwriters, kill_after, store, rng):
    killing = threading.Event()
    writers = [Writer(w, cycle, model, client, killing, rng.getrandbits(64))
               for w in range(nwriters)]
    t0 = time.monotonic()
    for w in writers:
        w.start()
    delay = rng.uniform(*kill_after)
    time.sleep(delay)
    killing.set()
    store.kill9()
    for w in writers:
        w.join(15)
        if w.is_alive():
            V.add("writers stop after the kill", f"writer {w.w} still running 15 s after SIGKILL")
    ops = [o for w in writers for o in w.ops]
    model.ops.extend(ops)
    acked = [o for o in ops if o.status == "acked"]
    revs = collections.Counter(o.rev for o in acked)
    for r, n in revs.items():
        if n > 1:
            V.add("each acknowledged write has its own revision",
                  f"cycle {cycle}: {n} writes acknowledged at revision {r}: "
                  + "; ".join(o.describe() for o in acked if o.rev == r))
    if acked:
        model.max_acked = max(model.max_acked, max(revs))
    kinds = collections.Counter(o.kind for o in acked)
    return {"delay": delay, "elapsed": time.monotonic() - t0, "acked": len(acked),
            "kinds": kinds, "inflight": sum(1 for o in ops if o.status in ("inflight", "failed-live")),
            "reads": sum(w.reads for w in writers),
            "min": min(revs) if revs else 0, "max": max(revs) if revs else 0,
            "snaps": store.snapshots_written(), "in_snap": store.snapshot_in_progress()}


def probe(model, client, cycle, label, cur):
    k = b"/crash/probe/%s" % label.replace(" ", "-").encode()
    o = model.new_op(cycle, -1, "probe", [(PUT, k, b"probe")])
    model.ops.append(o)
    r = client.stub()["Put"](pb.PutRequest(key=k, value=b"probe"), timeout=RPC_TIMEOUT)
    o.status, o.rev = "acked", r.header.revision
    model.max_acked = max(model.max_acked, o.rev)
    c.eq(f"{label}: the next write takes the next revision", r.header.revision, cur + 1)


def save_artifacts(tmp):
    out = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR")
    if not out:
        print(f"data dir and logs kept in {tmp}", flush=True)
        return
    dst = os.path.join(out, "crash_cycles")
    try:
        shutil.copytree(tmp, dst, ignore=shutil.ignore_patterns("py"))
        print(f"data dir and logs copied to {dst} (outputs.zip)", flush=True)
    except OSError as e:
        print(f"could not copy artifacts: {e}", flush=True)


def main():
    global pb
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--proto-root", default=os.path.join(HERE, "..", "..", "proto"))
    ap.add_argument("--cycles", type=int, default=14)
    ap.add_argument("--writers", type=int, default=16)
    ap.add_argument("--snapshot-count", type=int, default=500)
    ap.add_argument("--snapshot-chunk-delay-us", type=int, default=20000,
                    help="keel-store sleeps this long after each snapshot chunk (0: off)")
    ap.add_argument("--kill-after", default="0.2,1.5",
                    help="MIN,MAX seconds after the writers start")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--watchdog", type=float, default=240.0,
                    help="seconds: then dump every thread's stack and exit (a hang)")
    a = ap.parse_args()
    keeltest.init()
    faulthandler.dump_traceback_later(a.watchdog, exit=True)
    seed = a.seed if a.seed is not None else random.SystemRandom().getrandbits(32)
    print(f"seed {seed} (--seed={seed} repeats the op choices; kill instants differ)", flush=True)
    rng = random.Random(seed)
    random.seed(seed ^ 0x5EED)
    kill_after = tuple(float(x) for x in a.kill_after.split(","))

    tmp = keeltest.tmpdir("crash-cycles")
    py = os.path.join(tmp, "py")
    os.makedirs(py)
    subprocess.run(["protoc", f"-I{a.proto_root}", f"--python_out={py}",
                    "etcd/etcdserverpb/rpc.proto", "etcd/mvccpb/kv.proto"], check=True)
    sys.path.insert(0, py)
    from etcd.etcdserverpb import rpc_pb2  # noqa: E402
    pb = rpc_pb2

    store = Store(os.path.abspath(a.store), os.path.join(tmp, "data"), tmp, a.snapshot_count,
                  a.snapshot_chunk_delay_us)
    model = Model()
    t_start = time.monotonic()
    totals = collections.Counter()
    failed = False

    def start_and_verify(cycle, label):
        t = time.monotonic()
        store.start()
        ready = time.monotonic() - t
        client = Client(store.d.grpc_addr())
        v = verify(model, client, cycle, label)
        return client, v, ready

    last = None  # the previous cycle's writes (read from cycle 1 on)
    for cycle in range(a.cycles + 1):
        label = f"cycle {cycle}" if cycle < a.cycles else "after the last kill"
        client, v, ready = start_and_verify(cycle, label)
        if cycle > 0:
            lo_hi = f"{v['new'][0]}..{v['new'][1]}" if v["new"] else "none"
            print(f"  recovered ({ready:.2f}s to ready, verified in {v['secs']:.2f}s): "
                  f"{v['recovered']}/{last['acked']} acknowledged writes at their revisions, "
                  f"in-flight applied {v['inflight_applied']} / not applied "
                  f"{v['inflight_dropped']}; new revisions {lo_hi}; history 2..{v['cur']}: "
                  f"{v['gaps']} gaps; {v['keys']} live keys; "
                  f"{'verified' if v['ok'] else 'VIOLATIONS'}",
                  flush=True)
        if not v["ok"]:
            failed = True
        if failed:
            break
        probe(model, client, cycle, label, v["cur"])
        if cycle == a.cycles:
            break
        w = run_cycle_writes(model, client, cycle + 1, a.writers, kill_after, store, rng)
        client.close()
        last = w
        totals["acked"] += w["acked"]
        totals["inflight"] += w["inflight"]
        totals["in_snap"] += 1 if w["in_snap"] else 0
        snaps, wals = store.files()
        k = w["kinds"]
        print(f"cycle {cycle + 1}: SIGKILL {w['delay']:.2f}s after {a.writers} writers started: "
              f"acked {w['acked']} writes (put {k['put']}, delete {k['delete']}, "
              f"txn-success {k['txn-success']}, txn-failure {k['txn-failure']}) at revisions "
              f"{w['min']}..{w['max']}, {w['inflight']} in flight, {w['reads']} read-backs; "
              f"snapshots written {w['snaps']}, "
              f"{'killed while a snapshot was being written' if w['in_snap'] else 'no snapshot running'}, "
              f"data dir: {snaps} .snap, {wals} .wal", flush=True)
        if V.total():
            failed = True
        if (cycle + 1) % 3 == 0:
            # Crash during recovery/startup as well.
            # Crash during recovery/startup as well: somewhere in [0, 1.2 x the last
            # start's time to ready].
            delay = rng.uniform(0.0, 1.2 * ready)
            store.start(wait=False)
            time.sleep(delay)
            was_ready = os.path.exists(store.d.ready_file)
            store.kill9()
            log = keeltest.read(store.d.log_file)
            stage = ("serving" if was_ready else "recovered, not serving yet"
                     if b"store: recovered" in log else "recovering")
            print(f"  extra: SIGKILL {delay * 1000:.0f} ms after exec, during startup "
                  f"(stage: {stage})", flush=True)

    if not failed:
        # Graceful stop and one more recovery: nothing new, nothing lost.
        rc, secs = store.d.stop(10)
        c.eq("SIGTERM: exit status 0", rc, 0)
        client, v, _ = start_and_verify(a.cycles + 1, "after SIGTERM")
        c.ok("after SIGTERM: same revision, history verified",
             v["ok"] and v["new"] is not None and v["new"][0] == v["new"][1] == v["cur"],
             str(v))
        client.close()
        store.d.stop(10)

    V.summary()
    if a.snapshot_chunk_delay_us and not failed:
        c.ok(f"kills while a snapshot was being written: {totals['in_snap']} of {a.cycles}",
             totals["in_snap"] >= 1)
    elapsed = time.monotonic() - t_start
    c.ok(f"{a.cycles} crash cycles: {totals['acked']} acknowledged writes, "
         f"{totals['inflight']} in flight at kills, final revision {model.verified_rev}, "
         f"{elapsed:.1f}s", not failed and V.total() == 0)
    if c.failures:
        save_artifacts(tmp)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
