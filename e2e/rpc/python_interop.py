"""python_interop: python3-grpcio (a client nobody here wrote) against keel-echo.

Three daemons: plain (TCP + unix listener, --max-message-bytes=64Ki), TLS, and
mutual TLS. Every RPC kind, metadata both ways, deadlines, cancellation seen by
the handler, unknown methods, oversize messages, status passthrough, TLS/mTLS
acceptance and refusal, the unix listener, health Check, concurrency on timers,
Stats accounting of cancelled streams, startup errors, --log-format=json output,
and a clean exit on SIGTERM and SIGINT.

usage: python_interop.py KEEL_ECHO ECHO_PROTO HEALTH_PROTO
"""

import json
import os
import queue
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

SC = grpc.StatusCode
T = 10  # client-side timeout for calls that should finish at once (hang detector)


def main():
    kt.init()
    binary, echo_proto, health_proto = sys.argv[1:4]
    c = kt.Checks("python_interop")
    base = kt.tmpdir()
    protos = kt.Protos(echo_proto, health_proto, os.path.join(base, "gen"))
    pb = protos.echo
    certs = kt.make_certs(os.path.join(base, "certs"))
    sock = os.path.join(kt.sock_dir(base), "echo.sock")

    plain = kt.Daemon("plain", [binary, "--listen=127.0.0.1:0", "--listen=unix:" + sock,
                                "--max-message-bytes=64Ki"], base).start()
    tls = kt.Daemon("tls", [binary, "--listen=127.0.0.1:0",
                            "--tls-cert=" + certs["server.pem"],
                            "--tls-key=" + certs["server.key"]], base).start()
    mtls = kt.Daemon("mtls", [binary, "--listen=127.0.0.1:0",
                              "--tls-cert=" + certs["server.pem"],
                              "--tls-key=" + certs["server.key"],
                              "--tls-client-ca=" + certs["ca.pem"], "--http-listen=",
                              "--log-format=json", "--log-level=debug"],
                     base).start()
    for d in (plain, tls, mtls):
        d.wait_ready()

    def ready_file():
        g = plain.ready["grpc"]
        c.eq("ready file: two grpc listeners, in flag order", len(g), 2)
        c.ok("ready file: first listener is 127.0.0.1:PORT with a real port",
             g[0].startswith("127.0.0.1:") and int(g[0].rsplit(":", 1)[1]) > 0, g[0])
        c.eq("ready file: second listener is the unix socket", g[1] if len(g) > 1 else None,
             "unix:" + sock)
        c.ok("ready file: http=127.0.0.1:PORT line",
             (plain.http_addr or "").startswith("127.0.0.1:"), plain.ready["text"])
        c.ok("ready file: --http-listen= (empty) disables HTTP: no http= line",
             mtls.http_addr is None and len(mtls.ready["grpc"]) == 1, mtls.ready["text"])

    c.run("ready file", ready_file)

    ch = kt.insecure_channel(plain.grpc_addr(0))
    cl = kt.EchoClient(ch, protos)

    def unary():
        payload = bytes(range(256)) * 4
        resp, call = cl.echo.with_call(pb.EchoRequest(message="héllo", payload=payload),
                                       timeout=T)
        c.eq("Echo: message", resp.message, "héllo")
        c.eq("Echo: payload (all byte values)", resp.payload, payload)
        c.eq("Echo: no x-echo -> empty echo_metadata", resp.echo_metadata, "")
        c.eq("Echo: status OK", call.code(), SC.OK)
        keys = [k for k, _ in call.initial_metadata()] + [k for k, _ in call.trailing_metadata()]
        c.ok("Echo: no x-echo-* metadata without x-echo", not any(k.startswith("x-echo")
                                                                 for k in keys), keys)
        resp = cl.echo(pb.EchoRequest(), timeout=T)
        c.ok("Echo: empty request -> empty response",
             resp.message == "" and resp.payload == b"" and resp.sequence == 0, resp)

    c.run("unary", unary)

    def metadata():
        resp, call = cl.echo.with_call(pb.EchoRequest(message="m"), timeout=T,
                                       metadata=(("x-echo", "meta-value 1"),))
        c.eq("metadata: echo_metadata = request x-echo", resp.echo_metadata, "meta-value 1")
        init = dict(call.initial_metadata())
        trail = dict(call.trailing_metadata())
        c.eq("metadata: initial x-echo-initial", init.get("x-echo-initial"), "meta-value 1")
        c.eq("metadata: trailing x-echo-trailing", trail.get("x-echo-trailing"), "meta-value 1")

    c.run("metadata", metadata)

    def expand():
        t0 = time.monotonic()
        got = list(cl.expand(pb.ExpandRequest(message="x", count=5, payload=b"\x00p",
                                              interval_ms=50), timeout=T))
        el = time.monotonic() - t0
        c.eq("Expand: sequences 0..4", [r.sequence for r in got], [0, 1, 2, 3, 4])
        c.ok("Expand: message and payload on every response",
             all(r.message == "x" and r.payload == b"\x00p" for r in got), got)
        c.ok("Expand: interval_ms respected (4 gaps of 50 ms)", el >= 0.18, f"{el:.3f}s")
        c.eq("Expand: count=0 -> no responses, OK",
             list(cl.expand(pb.ExpandRequest(count=0), timeout=T)), [])
        got = list(cl.expand(pb.ExpandRequest(message="fast", count=1000), timeout=T))
        c.ok("Expand: 1000 responses without interval, in order",
             [r.sequence for r in got] == list(range(1000)), len(got))

    c.run("server streaming", expand)

    def collect():
        reqs = [pb.EchoRequest(message="a", payload=b"12"),
                pb.EchoRequest(message="bb"),
                pb.EchoRequest(message="ccc", payload=b"\x00\x01\x02\x03")]
        resp = cl.collect(iter(reqs), timeout=T)
        c.eq("Collect: count", resp.count, 3)
        c.eq("Collect: bytes = sum(len(message)+len(payload))", resp.bytes, 1 + 2 + 2 + 3 + 4)
        c.eq("Collect: joined", resp.joined, "a,bb,ccc")
        resp = cl.collect(iter([]), timeout=T)
        c.ok("Collect: empty stream", resp.count == 0 and resp.bytes == 0 and resp.joined == "",
             resp)

    c.run("client streaming", collect)

    def chat():
        q = queue.Queue()

        def reqs():
            while True:
                m = q.get()
                if m is None:
                    return
                yield m

        it = cl.chat(reqs(), timeout=T)
        ok = True
        for i in range(3):
            q.put(pb.EchoRequest(message=f"m{i}", payload=bytes([i])))
            r = next(it)  # answered before the next request is written: truly bidi
            ok = ok and (r.message, r.payload, r.sequence) == (f"m{i}", bytes([i]), i)
        c.ok("Chat: each request answered in lock-step with message, payload, sequence", ok)
        q.put(None)
        rest = list(it)
        c.eq("Chat: half-close ends the stream with no more responses", rest, [])
        c.eq("Chat: status OK", it.code(), SC.OK)

        reqs2 = [pb.EchoRequest(message="a"), pb.EchoRequest(message="b"),
                 pb.EchoRequest(message="c", status_code=SC.ABORTED.value[0],
                                status_message="chat aborted on purpose")]
        it = cl.chat(iter(reqs2), timeout=T)
        got = []
        try:
            for r in it:
                got.append(r.message)
        except grpc.RpcError:
            pass
        c.eq("Chat: responses before the failing request", got, ["a", "b"])
        c.eq("Chat: status_code ends the stream with that code", it.code(), SC.ABORTED)
        c.eq("Chat: ... and that message", it.details(), "chat aborted on purpose")

    c.run("bidi streaming", chat)

    def errors():
        c.code("Echo status_code=9 -> FAILED_PRECONDITION with message",
               lambda: cl.echo(pb.EchoRequest(status_code=9, status_message="precondition: x=1"),
                               timeout=T),
               SC.FAILED_PRECONDITION, "precondition: x=1")
        c.code("Echo status_code=5 -> NOT_FOUND with message (utf-8)",
               lambda: cl.echo(pb.EchoRequest(status_code=5, status_message="pod \"wéb\" not found"),
                               timeout=T),
               SC.NOT_FOUND, "pod \"wéb\" not found")
        try:
            cl.echo.with_call(pb.EchoRequest(status_code=7, status_message="denied"), timeout=T,
                              metadata=(("x-echo", "t"),))
            c.fail("error with x-echo: trailing metadata on a failed call", "call succeeded")
        except grpc.RpcError as e:
            trail = dict(e.trailing_metadata() or ())
            c.eq("error with x-echo: code", e.code(), SC.PERMISSION_DENIED)
            c.eq("error with x-echo: trailing x-echo-trailing on a failed call",
                 trail.get("x-echo-trailing"), "t")

    c.run("status passthrough", errors)

    def deadline():
        before = cl.get_stats()
        t0 = time.monotonic()
        c.code("Echo delay_ms=3000 with a 300 ms deadline -> DEADLINE_EXCEEDED",
               lambda: cl.echo(pb.EchoRequest(message="slow", delay_ms=3000), timeout=0.3),
               SC.DEADLINE_EXCEEDED)
        el = time.monotonic() - t0
        c.ok("deadline: failed near the deadline, not after the delay", el < 2.0, f"{el:.3f}s")
        after = cl.wait_stats(lambda s: s.cancelled_calls > before.cancelled_calls, timeout=3)
        c.ok("deadline: handler observed it (Stats.cancelled_calls +1)",
             after.cancelled_calls == before.cancelled_calls + 1,
             f"{before.cancelled_calls} -> {after.cancelled_calls}")
        after = cl.wait_stats(
            lambda s: s.deadline_exceeded_calls > before.deadline_exceeded_calls, timeout=1)
        if after.deadline_exceeded_calls > before.deadline_exceeded_calls:
            c.ok("deadline: Stats.deadline_exceeded_calls +1", True)
        else:
            c.note("Stats.deadline_exceeded_calls did not move after a deadline "
                   "(allowed: 'when the server can tell')")

    c.run("deadline", deadline)

    def cancel():
        before = cl.get_stats()
        fut = cl.echo.future(pb.EchoRequest(message="to-cancel", delay_ms=4000), timeout=T)
        time.sleep(0.3)
        c.ok("cancel: call still pending after 300 ms", not fut.done())
        fut.cancel()
        try:
            fut.result(timeout=T)
            c.fail("cancel: client sees CANCELLED", "call completed")
        except grpc.FutureCancelledError:
            c.ok("cancel: client sees CANCELLED", True)
        except grpc.RpcError as e:
            c.eq("cancel: client sees CANCELLED", e.code(), SC.CANCELLED)
        after = cl.wait_stats(lambda s: s.cancelled_calls > before.cancelled_calls, timeout=3)
        c.ok("cancel: handler observed the client's cancellation (Stats.cancelled_calls +1)",
             after.cancelled_calls == before.cancelled_calls + 1,
             f"{before.cancelled_calls} -> {after.cancelled_calls}")
        c.eq("cancel: deadline_exceeded_calls unchanged by a plain cancel",
             after.deadline_exceeded_calls, before.deadline_exceeded_calls)

        # Streams cancelled by the client mid-way: the handler must see a
        # cancellation, never a normal end of input.
        def open_stream(first):
            release = threading.Event()

            def gen():
                yield first
                release.wait(T)
            return gen(), release

        before = cl.get_stats()
        reqs, release = open_stream(pb.EchoRequest(message="a"))
        it = cl.chat(reqs, timeout=T)
        next(it)
        it.cancel()
        release.set()
        after = cl.wait_stats(lambda s: s.cancelled_calls > before.cancelled_calls, timeout=2)
        c.ok("Chat cancelled by the client: handler observed cancellation (cancelled_calls +1)",
             after.cancelled_calls == before.cancelled_calls + 1,
             f"cancelled {before.cancelled_calls} -> {after.cancelled_calls}, "
             f"completed {before.completed_calls} -> {after.completed_calls}")
        c.eq("Chat cancelled by the client: not counted as completed", after.completed_calls,
             before.completed_calls)

        before = cl.get_stats()
        reqs, release = open_stream(pb.EchoRequest(message="partial upload"))
        fut = cl.collect.future(reqs, timeout=T)
        time.sleep(0.3)
        fut.cancel()
        release.set()
        time.sleep(0.5)
        after = cl.get_stats()
        c.eq("Collect cancelled mid-upload: handler did not complete it as if half-closed "
             "(completed_calls unchanged)", after.completed_calls, before.completed_calls)

        before = cl.get_stats()
        it = cl.expand(pb.ExpandRequest(count=1_000_000, interval_ms=10), timeout=T)
        next(it)
        mid = cl.get_stats()
        c.eq("Expand open: Stats.active_streams 1", mid.active_streams, before.active_streams + 1)
        it.cancel()
        after = cl.wait_stats(lambda s: s.cancelled_calls > before.cancelled_calls and
                              s.active_streams == before.active_streams, timeout=2)
        c.ok("Expand cancelled by the client: cancelled_calls +1, active_streams back",
             after.cancelled_calls == before.cancelled_calls + 1 and
             after.active_streams == before.active_streams, after)

    c.run("cancellation", cancel)

    def unknown():
        for m in ("/keel.echo.v1.Echo/Nope", "/keel.nope.v1.Nope/Echo", "/grpc.health.v1.Health/Nope"):
            stub = ch.unary_unary(m, request_serializer=kt.identity,
                                  response_deserializer=kt.identity)
            c.code(f"unknown method {m} -> UNIMPLEMENTED", lambda: stub(b"", timeout=T),
                   SC.UNIMPLEMENTED)
        # Unknown method as a stream: the server must not wait for messages.
        stub = ch.stream_stream("/keel.echo.v1.Echo/Nope", request_serializer=kt.identity,
                                response_deserializer=kt.identity)
        never = threading.Event()

        def open_requests():
            never.wait(T)
            return
            yield

        c.code("unknown streaming method -> UNIMPLEMENTED without half-close",
               lambda: list(stub(open_requests(), timeout=T)), SC.UNIMPLEMENTED)
        never.set()

    c.run("unimplemented", unknown)

    def oversize():
        r = cl.echo(pb.EchoRequest(payload=b"y" * (60 * 1024)), timeout=T)
        c.eq("60 KiB payload under --max-message-bytes=64Ki echoes", len(r.payload), 60 * 1024)
        c.code("100 KiB payload over 64Ki limit -> RESOURCE_EXHAUSTED",
               lambda: cl.echo(pb.EchoRequest(payload=b"z" * (100 * 1024)), timeout=T),
               SC.RESOURCE_EXHAUSTED)
        c.code("Chat with a 100 KiB message -> RESOURCE_EXHAUSTED",
               lambda: list(cl.chat(iter([pb.EchoRequest(message="ok"),
                                          pb.EchoRequest(payload=b"z" * (100 * 1024))]),
                                    timeout=T)),
               SC.RESOURCE_EXHAUSTED)
        c.code("Collect with a 100 KiB message -> RESOURCE_EXHAUSTED",
               lambda: cl.collect(iter([pb.EchoRequest(payload=b"z" * (100 * 1024))]), timeout=T),
               SC.RESOURCE_EXHAUSTED)
        r = cl.echo(pb.EchoRequest(message="still alive"), timeout=T)
        c.eq("server still serves after oversize requests", r.message, "still alive")

    c.run("oversize", oversize)

    def unix():
        uch = kt.insecure_channel(plain.grpc_addr(1))
        u = kt.EchoClient(uch, protos)
        r = u.echo(pb.EchoRequest(message="over unix"), timeout=T,
                   metadata=(("x-echo", "u"),))
        c.ok("unix listener: Echo", r.message == "over unix" and r.echo_metadata == "u", r)
        got = [x.sequence for x in u.expand(pb.ExpandRequest(count=3), timeout=T)]
        c.eq("unix listener: Expand", got, [0, 1, 2])
        uch.close()

    c.run("unix socket", unix)

    def concurrency():
        # 100 calls waiting 300 ms each on a server with 2 CQ threads: only
        # timers (never a blocked CQ thread) finish them all in well under 2 s.
        t0 = time.monotonic()
        futs = [cl.echo.future(pb.EchoRequest(message=str(i), delay_ms=300), timeout=T)
                for i in range(100)]
        got = [f.result().message for f in futs]
        el = time.monotonic() - t0
        c.eq("100 concurrent delayed Echo calls all answered", got, [str(i) for i in range(100)])
        c.ok("100 concurrent 300 ms calls done in < 2 s (handlers do not block CQ threads)",
             el < 2.0, f"{el:.3f}s")

    c.run("concurrency", concurrency)

    def health():
        h = protos.health
        r = cl.health_check(h.HealthCheckRequest(service=""), timeout=T)
        c.eq("health Check \"\" -> SERVING", r.status, kt.SERVING)
        r = cl.health_check(h.HealthCheckRequest(service="keel.echo.v1.Echo"), timeout=T)
        c.eq("health Check keel.echo.v1.Echo -> SERVING", r.status, kt.SERVING)
        c.code("health Check unknown service -> NOT_FOUND",
               lambda: cl.health_check(h.HealthCheckRequest(service="no.such.Service"), timeout=T),
               SC.NOT_FOUND)

    c.run("health", health)

    def tls_checks():
        tch = kt.tls_channel(tls.grpc_addr(0), certs)
        t = kt.EchoClient(tch, protos)
        r = t.echo(pb.EchoRequest(message="secret"), timeout=T, metadata=(("x-echo", "tls"),))
        c.ok("TLS: Echo", r.message == "secret" and r.echo_metadata == "tls", r)
        got = [x.message for x in t.chat(iter([pb.EchoRequest(message="1"),
                                              pb.EchoRequest(message="2")]), timeout=T)]
        c.eq("TLS: Chat", got, ["1", "2"])
        r = t.health_check(protos.health.HealthCheckRequest(), timeout=T)
        c.eq("TLS: health SERVING", r.status, kt.SERVING)
        tch.close()
        pch = kt.insecure_channel(tls.grpc_addr(0))
        c.code("TLS: plaintext client refused -> UNAVAILABLE",
               lambda: kt.EchoClient(pch, protos).echo(pb.EchoRequest(), timeout=5),
               SC.UNAVAILABLE)
        pch.close()
        wch = kt.tls_channel(tls.grpc_addr(0), certs, ca="other-ca")
        c.code("TLS: client trusting another CA rejects the server -> UNAVAILABLE",
               lambda: kt.EchoClient(wch, protos).echo(pb.EchoRequest(), timeout=5),
               SC.UNAVAILABLE)
        wch.close()

    c.run("TLS", tls_checks)

    def mtls_checks():
        def try_echo(client_cert, what, want):
            mch = kt.tls_channel(mtls.grpc_addr(0), certs, client_cert=client_cert)
            m = kt.EchoClient(mch, protos)
            if want == SC.OK:
                r = m.echo(pb.EchoRequest(message="mutual"), timeout=T)
                c.eq(what, r.message, "mutual")
                got = [x.sequence for x in m.expand(pb.ExpandRequest(count=2), timeout=T)]
                c.eq(what + " (Expand)", got, [0, 1])
            else:
                c.code(what, lambda: m.echo(pb.EchoRequest(message="x"), timeout=5), want)
            mch.close()

        try_echo("client", "mTLS: client with a cert from the CA -> Echo OK", SC.OK)
        try_echo(None, "mTLS: client without a cert refused -> UNAVAILABLE", SC.UNAVAILABLE)
        try_echo("other-client", "mTLS: client cert from an unrelated CA refused -> UNAVAILABLE",
                 SC.UNAVAILABLE)
        try_echo("client", "mTLS: good client still served after refusals", SC.OK)

    c.run("mutual TLS", mtls_checks)

    def startup_errors():
        bad = [
            ("missing TLS files", ["--tls-cert=/nonexistent/cert.pem",
                                   "--tls-key=/nonexistent/key.pem"]),
            ("--tls-client-ca without a server cert", ["--tls-client-ca=" + certs["ca.pem"]]),
            ("unix listener in a missing directory",
             ["--listen=unix:" + os.path.join(base, "missing", "x.sock")]),
            ("unknown flag", ["--no-such-flag=1"]),
        ]
        for i, (what, args) in enumerate(bad):
            d = kt.Daemon(f"bad{i}", [binary] + args, base).start()
            rc = d.wait(10)
            if rc is None:
                d.kill()
            c.ok(f"startup error ({what}): exits non-zero", rc not in (None, 0), rc)
            c.ok(f"startup error ({what}): no ready file", not os.path.exists(d.ready_file))
            c.ok(f"startup error ({what}): says why on stderr", d.log_tail().strip() != "",
                 "empty log")

    c.run("startup errors", startup_errors)

    st = cl.wait_stats(lambda s: s.active_streams == 0, timeout=3)
    c.eq("Stats.active_streams back to 0 after every stream ended", st.active_streams, 0)
    ch.close()
    for d, sig in ((plain, signal.SIGTERM), (tls, signal.SIGINT), (mtls, signal.SIGTERM)):
        c.ok(f"{d.name}: still running before {sig.name}", d.running(), d.log_tail())
        rc, el = d.stop(timeout=10, sig=sig)
        c.eq(f"{d.name}: {sig.name} -> exit status 0", rc, 0)
        if rc != 0:
            print(d.log_tail(), flush=True)

    # mtls ran with --log-format=json and saw refused handshakes: every line it
    # wrote (its own and the gRPC library's) must be one JSON object.
    with open(mtls.log_file, "rb") as f:
        lines = f.read().decode("utf-8", "replace").splitlines()
    bad = []
    for line in lines:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except ValueError:
            bad.append(line)
    c.ok("--log-format=json: the daemon wrote log lines", bool(lines))
    c.eq("--log-format=json: every stderr line is a JSON object (gRPC core logs included)",
         bad, [])
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
