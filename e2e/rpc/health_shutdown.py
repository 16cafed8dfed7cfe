"""health_shutdown: grpc.health.v1.Health/Watch across a SIGTERM.

Watch("") and Watch("keel.echo.v1.Echo") see SERVING; after SIGTERM both see
NOT_SERVING, then their streams end with a status (no hang); the process exits 0.
Watch of an unknown service gets SERVICE_UNKNOWN first. A unary call in flight
at SIGTERM (delay 800 ms < the 1500 ms grace) still completes OK. With no call
in flight, a connected idle client must not hold shutdown for the grace period
(--shutdown-grace=5s; exit expected in well under 1 s).

usage: health_shutdown.py KEEL_ECHO ECHO_PROTO HEALTH_PROTO
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

SC = grpc.StatusCode
HANG = 10  # s; a stream still open this long after SIGTERM is a hang


class Watcher(threading.Thread):
    def __init__(self, client, service):
        super().__init__(daemon=True)
        self.client, self.service = client, service
        self.events = []  # (monotonic time, status value)
        self.first = threading.Event()
        self.code = None
        self.details = None
        self.end_time = None

    def run(self):
        call = self.client.health_watch(self.client.hpb.HealthCheckRequest(service=self.service),
                                        timeout=HANG + 5)
        try:
            for r in call:
                self.events.append((time.monotonic(), r.status))
                self.first.set()
            self.code = call.code()
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        self.end_time = time.monotonic()
        self.first.set()


def main():
    kt.init()
    binary, echo_proto, health_proto = sys.argv[1:4]
    c = kt.Checks("health_shutdown")
    base = kt.tmpdir()
    protos = kt.Protos(echo_proto, health_proto, os.path.join(base, "gen"))
    d = kt.Daemon("echo", [binary, "--listen=127.0.0.1:0"], base).start().wait_ready()
    ch = kt.insecure_channel(d.grpc_addr())
    cl = kt.EchoClient(ch, protos)

    unknown = cl.health_watch(protos.health.HealthCheckRequest(service="no.such.Service"),
                              timeout=5)
    try:
        first = next(unknown)
        c.eq("Watch(unknown service) first status SERVICE_UNKNOWN (3)", first.status, 3)
    except grpc.RpcError as e:
        c.fail("Watch(unknown service) first status SERVICE_UNKNOWN (3)", f"{e.code()} {e.details()}")
    unknown.cancel()

    watchers = [Watcher(cl, ""), Watcher(cl, "keel.echo.v1.Echo")]
    for w in watchers:
        w.start()
    for w in watchers:
        w.first.wait(5)
        c.ok(f"Watch({w.service!r}): first status SERVING",
             [s for _, s in w.events[:1]] == [kt.SERVING], w.events)

    inflight = cl.echo.future(protos.echo.EchoRequest(message="in-flight", delay_ms=800),
                              timeout=HANG)
    time.sleep(0.2)
    c.ok("in-flight Echo (delay 800 ms) pending at SIGTERM", not inflight.done())

    t_term = time.monotonic()
    d.send_signal()
    rc = d.wait(HANG)
    t_exit = time.monotonic()
    if rc is None:
        d.kill()
    c.eq("SIGTERM -> exit status 0", rc, 0)
    print(f"exit {t_exit - t_term:.3f}s after SIGTERM", flush=True)
    try:
        r = inflight.result(timeout=HANG)
        c.eq("in-flight Echo completes OK within the grace period", r.message, "in-flight")
    except grpc.RpcError as e:
        c.fail("in-flight Echo completes OK within the grace period", f"{e.code()} {e.details()!r}")
    c.ok("process lived until the in-flight call was answered (>= 0.5 s after SIGTERM)",
         t_exit - t_term >= 0.5, f"{t_exit - t_term:.3f}s")
    for w in watchers:
        w.join(HANG)
        name = f"Watch({w.service!r})"
        c.ok(f"{name}: stream ended (no hang)", not w.is_alive() and w.end_time is not None)
        statuses = [s for _, s in w.events]
        dedup = [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]
        c.eq(f"{name}: saw SERVING then NOT_SERVING", dedup, [kt.SERVING, kt.NOT_SERVING])
        ns = [t for t, s in w.events if s == kt.NOT_SERVING]
        c.ok(f"{name}: NOT_SERVING arrived after SIGTERM and before the process exited",
             bool(ns) and t_term <= ns[0] <= t_exit + 0.05,
             f"t_term={t_term:.3f} not_serving={ns[:1]} t_exit={t_exit:.3f}")
        c.ok(f"{name}: ended with a server status, not the client timeout",
             w.code is not None and w.code != SC.DEADLINE_EXCEEDED, f"{w.code} {w.details!r}")
        c.eq(f"{name}: ended with UNAVAILABLE", w.code, SC.UNAVAILABLE)
        print(f"{name}: ended with {w.code} {w.details!r}", flush=True)
    if rc != 0:
        print(d.log_tail(), flush=True)
    ch.close()

    # Nothing in flight, one idle connected client: the grace period is for
    # in-flight calls, so shutdown should not wait for it.
    idle = kt.Daemon("idle", [binary, "--listen=127.0.0.1:0", "--shutdown-grace=5s"],
                     base).start().wait_ready()
    ich = kt.insecure_channel(idle.grpc_addr())
    icl = kt.EchoClient(ich, protos)
    icl.echo(protos.echo.EchoRequest(message="x"), timeout=5)
    rc, el = idle.stop(timeout=HANG)
    c.eq("idle client connected: SIGTERM -> exit status 0", rc, 0)
    c.ok("idle client connected, nothing in flight: exit in < 1 s (not the 5 s grace)",
         rc is not None and el < 1.0, f"{el:.3f}s")
    if rc is None or el >= 1.0:
        print(idle.log_tail(), flush=True)
    ich.close()
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
