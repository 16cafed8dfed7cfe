"""shutdown_streams: SIGTERM with 100 open streams and slow unary calls in flight.

50 Chat streams (one exchange, then left open) and 50 Expand streams (endless,
interval 100 ms) over 4 channels, plus 5 Echo calls with delay_ms=5000. After
SIGTERM the process must exit 0 within 2 s (the issue's requirement: streams are
ended with UNAVAILABLE at once, the unary calls get the 1.5 s grace and are then
cancelled), and every call must get a status; a client-side timeout of 15 s
catches hangs.

usage: shutdown_streams.py KEEL_ECHO ECHO_PROTO HEALTH_PROTO
"""

import collections
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
import keeltest as kt  # noqa: E402

SC = grpc.StatusCode
HANG = 15  # s
N_CHAT, N_EXPAND, N_UNARY, N_CHANNELS = 50, 50, 5, 4
EXIT_BOUND = 2.0  # s, from SIGTERM to process exit


class Stream(threading.Thread):
    def __init__(self, kind, client, idx, release):
        super().__init__(daemon=True)
        self.kind, self.client, self.idx, self.release = kind, client, idx, release
        self.first = threading.Event()
        self.messages = 0
        self.code = None
        self.details = None
        self.end_time = None

    def requests(self):
        yield self.client.pb.EchoRequest(message=f"chat-{self.idx}")
        self.release.wait(HANG)  # keep the send side open

    def run(self):
        pb = self.client.pb
        if self.kind == "chat":
            call = self.client.chat(self.requests(), timeout=HANG)
        else:
            call = self.client.expand(pb.ExpandRequest(message=f"expand-{self.idx}",
                                                       count=1_000_000, interval_ms=100),
                                      timeout=HANG)
        try:
            for _ in call:
                self.messages += 1
                self.first.set()
            self.code = call.code()
        except grpc.RpcError as e:
            self.code, self.details = e.code(), e.details()
        self.end_time = time.monotonic()
        self.first.set()


def main():
    kt.init()
    binary, echo_proto, health_proto = sys.argv[1:4]
    c = kt.Checks("shutdown_streams")
    base = kt.tmpdir()
    protos = kt.Protos(echo_proto, health_proto, os.path.join(base, "gen"))
    pb = protos.echo
    d = kt.Daemon("echo", [binary, "--listen=127.0.0.1:0", "--shutdown-grace=1500ms"],
                  base).start().wait_ready()

    channels = [kt.insecure_channel(d.grpc_addr()) for _ in range(N_CHANNELS)]
    clients = [kt.EchoClient(ch, protos) for ch in channels]
    for ch in channels:
        kt.wait_channel(ch)
    release = threading.Event()
    streams = []
    for i in range(N_CHAT + N_EXPAND):
        kind = "chat" if i < N_CHAT else "expand"
        s = Stream(kind, clients[i % N_CHANNELS], i, release)
        s.start()
        streams.append(s)
    unary = [clients[i % N_CHANNELS].echo.future(pb.EchoRequest(message=f"slow-{i}", delay_ms=5000),
                                                 timeout=HANG)
             for i in range(N_UNARY)]

    deadline = time.monotonic() + 15
    for s in streams:
        s.first.wait(max(0.0, deadline - time.monotonic()))
    opened = sum(1 for s in streams if s.messages > 0 and s.end_time is None)
    c.eq("all 100 streams open and answering before SIGTERM", opened, N_CHAT + N_EXPAND)
    st = clients[0].get_stats()
    c.eq("Stats.active_streams counts the 100 open streams", st.active_streams, N_CHAT + N_EXPAND)
    c.ok("slow unary calls still in flight", not any(f.done() for f in unary))

    t_term = time.monotonic()
    d.send_signal()
    rc = d.wait(HANG)
    t_exit = time.monotonic()
    if rc is None:
        d.kill()
    exit_s = t_exit - t_term
    print(f"process exit {exit_s:.3f}s after SIGTERM (status {rc})", flush=True)
    c.eq("SIGTERM -> exit status 0", rc, 0)
    c.ok(f"exit within {EXIT_BOUND:.0f} s of SIGTERM", rc is not None and exit_s <= EXIT_BOUND,
         f"{exit_s:.3f}s")

    for s in streams:
        s.join(max(0.1, t_term + HANG + 2 - time.monotonic()))
    release.set()
    hung = [s.idx for s in streams if s.is_alive() or s.end_time is None]
    c.eq("every stream got a status (none hung)", hung, [])
    codes = collections.Counter((s.kind, s.code.name if s.code else None) for s in streams)
    print(f"stream statuses: {dict(codes)}", flush=True)
    for kind, n in (("chat", N_CHAT), ("expand", N_EXPAND)):
        got = codes[(kind, "UNAVAILABLE")]
        c.eq(f"all {n} {kind} streams ended with UNAVAILABLE", got, n)
    details = collections.Counter(s.details for s in streams)
    print(f"stream status messages: {dict(details)}", flush=True)
    late = [round(s.end_time - t_term, 3) for s in streams
            if s.end_time is not None and s.end_time - t_term > EXIT_BOUND + 0.5]
    c.eq("every stream's status arrived within the exit bound (+0.5 s)", late, [])

    ucodes = []
    for f in unary:
        try:
            f.result(timeout=HANG)
            ucodes.append("OK")
        except grpc.RpcError as e:
            ucodes.append(e.code().name)
        except grpc.FutureTimeoutError:
            ucodes.append("HANG")
    print(f"slow unary statuses: {ucodes}", flush=True)
    c.ok("every slow unary call got a status (none hung)",
         all(x not in ("HANG", "DEADLINE_EXCEEDED") for x in ucodes), ucodes)
    c.ok("slow unary calls (5 s delay > 1.5 s grace) did not complete OK",
         "OK" not in ucodes, ucodes)

    for ch in channels:
        ch.close()
    if rc != 0 or c.failures:
        print(d.log_tail(), flush=True)
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
