"""echo_calls: one of everything against a running keel-echo, for tests that need
traffic rather than a matrix (valgrind_cycle): every RPC kind, metadata, error
status, deadline, client cancel, unknown method, oversize message, health Check
and Watch, reflection v1 and v1alpha. Exits non-zero if a call misbehaves.

usage: echo_calls.py ECHO_PROTO HEALTH_PROTO ADDR [--tls CERTS_DIR] [--max-message-bytes N]
       echo_calls.py ECHO_PROTO HEALTH_PROTO ADDR --hold MARKER
--hold opens streams (Chat, Expand, Collect, health Watch) and slow Echo calls,
touches MARKER, and waits for the server to end them all (the caller sends
SIGTERM); exits non-zero if any call hangs or completes OK.
Timeouts are generous: the daemon may run under valgrind.
"""

import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

SC = grpc.StatusCode
T = 60


def main():
    kt.init()
    ap = argparse.ArgumentParser()
    ap.add_argument("echo_proto")
    ap.add_argument("health_proto")
    ap.add_argument("addr")
    ap.add_argument("--tls", help="certs.sh dir: use mTLS with client.pem, and try a refused client")
    ap.add_argument("--max-message-bytes", type=int, default=4 << 20)
    ap.add_argument("--hold", metavar="MARKER")
    a = ap.parse_args()
    c = kt.Checks("echo_calls " + a.addr)
    base = kt.tmpdir("calls")
    protos = kt.Protos(a.echo_proto, a.health_proto, os.path.join(base, "gen"))
    pb = protos.echo
    certs = None
    if a.tls:
        certs = {f"{n}.{e}": os.path.join(a.tls, f"{n}.{e}")
                 for n in ("ca", "client", "other-client") for e in ("pem", "key")}
        ch = kt.tls_channel(a.addr, certs, client_cert="client")
    else:
        ch = grpc.insecure_channel(a.addr, options=[("grpc.max_send_message_length", -1)])
    cl = kt.EchoClient(ch, protos)
    kt.wait_channel(ch, T)

    def calls():
        r = cl.echo(pb.EchoRequest(message="hi", payload=b"\x01" * 100), timeout=T,
                    metadata=(("x-echo", "v"),))
        c.ok("Echo", r.message == "hi" and r.echo_metadata == "v", r)
        c.code("Echo error status", lambda: cl.echo(pb.EchoRequest(status_code=5, status_message="nf"),
                                                    timeout=T), SC.NOT_FOUND, "nf")
        got = [x.sequence for x in cl.expand(pb.ExpandRequest(message="e", count=20,
                                                              interval_ms=1), timeout=T)]
        c.eq("Expand", got, list(range(20)))
        r = cl.collect(iter([pb.EchoRequest(message=str(i)) for i in range(10)]), timeout=T)
        c.eq("Collect", (r.count, r.joined), (10, "0,1,2,3,4,5,6,7,8,9"))
        got = [x.message for x in cl.chat(iter([pb.EchoRequest(message=str(i)) for i in range(10)]),
                                          timeout=T)]
        c.eq("Chat", got, [str(i) for i in range(10)])
        it = cl.chat(iter([pb.EchoRequest(message="a"), pb.EchoRequest(status_code=10)]), timeout=T)
        c.code("Chat error status", lambda: list(it), SC.ABORTED)
        c.code("deadline", lambda: cl.echo(pb.EchoRequest(delay_ms=10000), timeout=1.0),
               SC.DEADLINE_EXCEEDED)
        f = cl.echo.future(pb.EchoRequest(delay_ms=10000), timeout=T)
        time.sleep(0.5)
        f.cancel()
        # Cancel a stream mid-flight too.
        s = cl.expand(pb.ExpandRequest(count=1000, interval_ms=20), timeout=T)
        next(s)
        s.cancel()
        # Cancel client and bidi streams mid-flight.
        release = threading.Event()

        def held(first):
            yield first
            release.wait(T)

        s = cl.chat(held(pb.EchoRequest(message="c")), timeout=T)
        next(s)
        s.cancel()
        f = cl.collect.future(held(pb.EchoRequest(message="c")), timeout=T)
        time.sleep(0.5)
        f.cancel()
        release.set()
        stub = ch.unary_unary("/keel.echo.v1.Echo/Nope", request_serializer=kt.identity,
                              response_deserializer=kt.identity)
        c.code("unknown method", lambda: stub(b"", timeout=T), SC.UNIMPLEMENTED)
        big = b"x" * (a.max_message_bytes + 1024)
        c.code("oversize", lambda: cl.echo(pb.EchoRequest(payload=big), timeout=T),
               SC.RESOURCE_EXHAUSTED)
        c.ok("Stats", cl.get_stats(timeout=T).cancelled_calls >= 1)

    def health():
        h = protos.health
        c.eq("health Check", cl.health_check(h.HealthCheckRequest(), timeout=T).status, kt.SERVING)
        c.code("health Check unknown", lambda: cl.health_check(
            h.HealthCheckRequest(service="x.Y"), timeout=T), SC.NOT_FOUND)
        w = cl.health_watch(h.HealthCheckRequest(), timeout=T)
        c.eq("health Watch", next(w).status, kt.SERVING)
        w.cancel()

    def reflection():
        for v in ("v1", "v1alpha"):
            stub = ch.stream_stream(f"/grpc.reflection.{v}.ServerReflection/ServerReflectionInfo",
                                    request_serializer=kt.identity,
                                    response_deserializer=kt.identity)
            reqs = [kt.pb_bytes(7, "*"), kt.pb_bytes(4, "keel.echo.v1.Echo"),
                    kt.pb_bytes(4, "grpc.health.v1.HealthCheckRequest"),
                    kt.pb_bytes(3, "keel/echo/v1/echo.proto"), kt.pb_bytes(4, "no.such.Symbol")]
            resps = list(stub(iter(reqs), timeout=T))
            c.eq(f"reflection {v}: responses", len(resps), len(reqs))

    def tls_refusals():
        for who in (None, "other-client"):
            bad = kt.tls_channel(a.addr, certs, client_cert=who)
            c.code(f"mTLS refuses {who or 'a client without cert'}",
                   lambda: kt.EchoClient(bad, protos).echo(pb.EchoRequest(), timeout=T),
                   SC.UNAVAILABLE)
            bad.close()

    def hold():
        release = threading.Event()

        def open_requests(first):
            yield first
            release.wait(T)

        calls = [
            cl.chat(open_requests(pb.EchoRequest(message="held")), timeout=T),
            cl.expand(pb.ExpandRequest(count=100000, interval_ms=50), timeout=T),
            cl.health_watch(protos.health.HealthCheckRequest(), timeout=T),
        ]
        for call in calls:
            next(call)
        collect = cl.collect.future(open_requests(pb.EchoRequest(message="held")), timeout=T)
        slow = [cl.echo.future(pb.EchoRequest(delay_ms=30000), timeout=T) for _ in range(3)]
        with open(a.hold, "w") as f:
            f.write("held\n")
        print("holding streams; waiting for the server to end them", flush=True)
        for i, call in enumerate(calls):
            try:
                for _ in call:
                    pass
                c.fail(f"held stream {i} ended by the server", "ended OK")
            except grpc.RpcError as e:
                c.ok(f"held stream {i} ended by the server ({e.code().name})",
                     e.code() != SC.DEADLINE_EXCEEDED)
        for i, fut in enumerate([collect] + slow):
            try:
                fut.result(timeout=T)
                c.fail(f"held call {i} ended by the server", "completed OK")
            except grpc.RpcError as e:
                c.ok(f"held call {i} ended by the server ({e.code().name})",
                     e.code() != SC.DEADLINE_EXCEEDED)
        release.set()

    if a.hold:
        c.run("hold", hold)
        ch.close()
        return c.finish()
    c.run("calls", calls)
    c.run("health", health)
    c.run("reflection", reflection)
    if certs:
        c.run("TLS refusals", tls_refusals)
    ch.close()
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
