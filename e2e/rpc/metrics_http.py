"""metrics_http: /metrics and /healthz of keel-echo, fetched with curl.

Makes a known set of calls on a fresh daemon, then checks the Prometheus text:
keel_rpc_server_handled_total{method,code} counts them exactly,
keel_rpc_server_handling_seconds is a well-formed histogram with matching
counts, keel_jemalloc_* gauges are present (not under ASan: KEEL_SANITIZED=1),
every line parses and every family has HELP and TYPE. /healthz says "ok" (200)
while serving and never "ok" once shutdown has begun.

usage: metrics_http.py KEEL_ECHO ECHO_PROTO HEALTH_PROTO
"""

import collections
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

SC = grpc.StatusCode
T = 10
M = "/keel.echo.v1.Echo/"
JEMALLOC = ["keel_jemalloc_" + n + "_bytes"
            for n in ("allocated", "active", "resident", "mapped", "retained", "metadata")]


def main():
    kt.init()
    binary, echo_proto, health_proto = sys.argv[1:4]
    c = kt.Checks("metrics_http")
    base = kt.tmpdir()
    protos = kt.Protos(echo_proto, health_proto, os.path.join(base, "gen"))
    pb = protos.echo
    d = kt.Daemon("echo", [binary, "--listen=127.0.0.1:0", "--http-listen=127.0.0.1:0"],
                  base).start().wait_ready()
    http = d.http_addr
    c.ok("ready file has an http= address", bool(http), d.ready["text"])
    ch = kt.insecure_channel(d.grpc_addr())
    cl = kt.EchoClient(ch, protos)

    # The traffic: exact counts per (method, code).
    want = collections.Counter()
    for i in range(3):
        cl.echo(pb.EchoRequest(message=str(i)), timeout=T)
        want[(M + "Echo", "OK")] += 1
    for code in (5, 5, 9):
        try:
            cl.echo(pb.EchoRequest(status_code=code, status_message="x"), timeout=T)
        except grpc.RpcError:
            pass
    want[(M + "Echo", "NOT_FOUND")] += 2
    want[(M + "Echo", "FAILED_PRECONDITION")] += 1
    list(cl.expand(pb.ExpandRequest(count=4), timeout=T))
    want[(M + "Expand", "OK")] += 1
    cl.collect(iter([pb.EchoRequest(message="a")]), timeout=T)
    want[(M + "Collect", "OK")] += 1
    list(cl.chat(iter([pb.EchoRequest(message="a"), pb.EchoRequest(message="b")]), timeout=T))
    want[(M + "Chat", "OK")] += 1
    try:
        list(cl.chat(iter([pb.EchoRequest(status_code=10)]), timeout=T))
    except grpc.RpcError:
        pass
    want[(M + "Chat", "ABORTED")] += 1
    try:
        cl.echo(pb.EchoRequest(delay_ms=2000), timeout=0.2)
    except grpc.RpcError:
        pass
    time.sleep(0.3)  # let the server finish its side of the expired call

    status, headers, body = kt.curl(f"http://{http}/metrics")
    c.eq("/metrics: 200", status, 200)
    c.ok("/metrics: Content-Type text/plain; version=0.0.4",
         headers.get("content-type", "").replace(" ", "").startswith("text/plain;version=0.0.4"),
         headers.get("content-type"))
    samples, types, helps, errors = kt.parse_prometheus(body)
    c.eq("/metrics: every sample line parses", errors, [])
    names = {n for n, _, _ in samples}
    fam = lambda n: n[:-7] if n.endswith("_bucket") else (  # noqa: E731
        n[:-4] if n.endswith("_sum") else (n[:-6] if n.endswith("_count") else n))
    fams = {fam(n) if fam(n) in types else n for n in names}
    c.eq("/metrics: every family has # TYPE", sorted(f for f in fams if f not in types), [])
    c.eq("/metrics: every family has # HELP", sorted(f for f in fams if f not in helps), [])

    c.eq("keel_rpc_server_handled_total is a counter", types.get("keel_rpc_server_handled_total"),
         "counter")
    handled = {}
    for n, labels, v in samples:
        if n == "keel_rpc_server_handled_total":
            handled[(labels.get("method"), labels.get("code"))] = v
    for (method, code), n in sorted(want.items()):
        c.eq(f'handled_total{{method="{method}",code="{code}"}}', handled.get((method, code)), n)
    dl = handled.get((M + "Echo", "DEADLINE_EXCEEDED"), 0) + handled.get((M + "Echo", "CANCELLED"), 0)
    c.ok("handled_total counts the expired Echo call (DEADLINE_EXCEEDED or CANCELLED)", dl >= 1,
         {k: v for k, v in handled.items() if k[0] == M + "Echo"})

    c.eq("keel_rpc_server_handling_seconds is a histogram",
         types.get("keel_rpc_server_handling_seconds"), "histogram")
    buckets = collections.defaultdict(list)
    counts, sums = {}, {}
    for n, labels, v in samples:
        key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
        if n == "keel_rpc_server_handling_seconds_bucket":
            le = labels.get("le")
            buckets[key].append((float("inf") if le == "+Inf" else float(le), v))
        elif n == "keel_rpc_server_handling_seconds_count":
            counts[key] = v
        elif n == "keel_rpc_server_handling_seconds_sum":
            sums[key] = v
    c.ok("histogram has series", bool(counts), body[:2000])
    for key, bs in buckets.items():
        bs.sort()
        vals = [v for _, v in bs]
        c.ok(f"histogram {dict(key)}: buckets cumulative and end with +Inf = _count",
             vals == sorted(vals) and bs[-1][0] == float("inf") and bs[-1][1] == counts.get(key),
             f"{bs} count={counts.get(key)}")
        c.ok(f"histogram {dict(key)}: _sum present and >= 0", sums.get(key, -1) >= 0)
    per_method = collections.Counter()
    for key, v in counts.items():
        per_method[dict(key).get("method")] += v
    handled_per_method = collections.Counter()
    for (method, _), v in handled.items():
        handled_per_method[method] += v
    for method in (M + "Echo", M + "Expand", M + "Collect", M + "Chat"):
        c.eq(f"histogram _count for {method} equals its handled_total",
             per_method.get(method), handled_per_method.get(method))

    if os.environ.get("KEEL_SANITIZED") == "1":
        c.note("KEEL_SANITIZED=1: keel_jemalloc_* gauges not expected")
    else:
        for n in JEMALLOC:
            vals = [v for name, _, v in samples if name == n]
            c.ok(f"{n} present and > 0", len(vals) == 1 and vals[0] > 0, vals)
            c.eq(f"{n} is a gauge", types.get(n), "gauge")

    status, _, body = kt.curl(f"http://{http}/healthz")
    c.eq("/healthz: 200 while serving", status, 200)
    c.eq("/healthz: body ok", body.strip(), "ok")

    # Shutdown: an in-flight call keeps the process in its grace period; /healthz
    # must stop saying ok (503 "shutting down", or refuse the connection).
    slow = cl.echo.future(pb.EchoRequest(delay_ms=1200), timeout=T)
    time.sleep(0.2)
    d.send_signal()
    seen, t0 = [], time.monotonic()
    while time.monotonic() - t0 < 1.0 and d.running():
        st, _, b = kt.curl(f"http://{http}/healthz", timeout=1)
        seen.append((st, b.strip() if st else None))
        if st != 200:
            break
        time.sleep(0.02)
    print(f"/healthz during shutdown: {seen[:3]}...{seen[-1:]}", flush=True)
    last = seen[-1] if seen else None
    c.ok("/healthz during shutdown: 503 'shutting down' (or refused), not 'ok'",
         last is not None and (last == (503, "shutting down") or last[0] is None), seen[-3:])
    try:
        slow.result(timeout=T)
    except grpc.RpcError as e:
        c.note(f"slow call during shutdown ended with {e.code()}")
    rc = d.wait(T)
    c.eq("SIGTERM -> exit status 0", rc, 0)
    ch.close()
    if rc != 0:
        print(d.log_tail(), flush=True)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
