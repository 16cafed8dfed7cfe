#!/usr/bin/python3
"""keel-apiserver's Pods/Log and Pods/Exec relays over real gRPC
(python3-grpcio), with e2e/testlib/test_agent.py standing in for the node
agent (keel.agent.v1.Agent) until keel-agent exists.

usage: podio.py KEEL_APISERVER API_DESCRIPTORS.pb keel-store KEEL_STORE

- the agent is found by the Node's InternalIP + kubeletEndpoint port, and by
  the agent.keel.dev/endpoint annotation (a unix socket);
- the agent gets the container (defaulted when the pod has one) and the pod's
  uid; options (tailLines, limitBytes, timestamps) reach it and its output
  comes back byte for byte, also a 12 MiB log read slowly (flow control);
- follow streams until the caller cancels, and the cancel reaches the agent;
- Exec: stdout, stderr and the exit code; stdin (1 MiB through `cat`; 32 MiB
  to a command that reads late: the relay pauses the caller, nothing fails);
- errors with Kubernetes' messages: no such pod, container not named or not
  in the pod, pod not scheduled, node missing or without an agent endpoint,
  agent down, bad options, bad first message, stdin not requested, exec into a
  completed pod, the agent's own NOT_FOUND passed on;
- authorization: a viewer reads logs but may not exec; no token is refused;
- the REST gateway's GET pods/{name}/log: text/plain, kubelet's query
  parameters, Kubernetes' Status codes (400/404/503/401), follow until the
  client leaves (then the agent's stream is canceled), 12 MiB whole; exec 405;
- SIGTERM with a follow open (gRPC and REST): the caller gets a status or the
  end of the response, the apiserver exits 0.
"""
import hashlib
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import apiserver_lib as L  # noqa: E402
from apiserver_lib import SC, T, expect_code  # noqa: E402

import keeltest as kt  # noqa: E402

APISERVER, DESCRIPTORS, STORE_KIND, STORE_BIN = sys.argv[1:5]
TEST_AGENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib", "test_agent.py")
TOKENS = {
    "admin": ("podio-admin-token-1", "admin", "uid-admin", "keel:admins"),
    "viewer": ("podio-viewer-token-2", "victor", "uid-victor", "keel:viewers"),
}


def read_journal(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except OSError:
        return []


def wait_journal(path, pred, timeout=T):
    deadline = time.monotonic() + timeout
    while True:
        hits = [e for e in read_journal(path) if pred(e)]
        if hits or time.monotonic() > deadline:
            return hits
        time.sleep(0.05)


def expected_log(ns, pod, container, tail=None, timestamps=False, limit=None):
    """What test_agent.py serves (kept in step with its log_lines)."""
    who = f"{ns}/{pod}/{container}"
    lines = [(f"2026-01-01T00:00:{i:02d}Z", f"line {i} of {who}\n") for i in range(1, 6)]
    if tail is not None:
        lines = lines[len(lines) - min(len(lines), tail):]
    out = "".join((ts + " " + text) if timestamps else text for ts, text in lines).encode()
    return out[:limit] if limit is not None else out


def log_bytes(api, M, **kw):
    return b"".join(ch.data for ch in api.Pods.Log(M["PodLogOptions"](**kw), timeout=T))


def exec_call(api, M, name, command, stdin_chunks=None, container="", tty=False, pace=None, first=None):
    """Runs Pods/Exec; returns (stdout, stderr, exit_code or None)."""
    def requests():
        if first is not None:
            yield first
            return
        yield M["ExecRequest"](start=M["PodExecOptions"](namespace="default", name=name, container=container,
                                                         command=command, stdin=stdin_chunks is not None,
                                                         tty=tty))
        for chunk in stdin_chunks or ():
            if pace:
                time.sleep(pace)
            yield M["ExecRequest"](stdin=chunk)
        if stdin_chunks is not None:
            yield M["ExecRequest"](close_stdin=True)

    out, err, code = bytearray(), bytearray(), None
    for r in api.Pods.Exec(requests(), timeout=T * 2):
        out += r.stdout
        err += r.stderr
        if r.HasField("exit_code"):
            code = r.exit_code.value
    return bytes(out), bytes(err), code


def setup_cluster(c, api, M, agent_tcp, agent_unix, dead_port):
    host, port = agent_tcp.rsplit(":", 1)

    def add_node(name, port=0, annotation=None, address=host):
        n = L.node(M, name)
        del n.status.addresses[:]
        n.status.addresses.add(type="Hostname", address="node-" + name)
        n.status.addresses.add(type="InternalIP", address=address)
        if annotation:
            n.metadata.annotations["agent.keel.dev/endpoint"] = annotation
        created = api.Nodes.Create(n)
        if port:
            created.status.daemon_endpoints.kubelet_endpoint.port = port
            del created.status.addresses[:]
            created.status.addresses.extend(n.status.addresses)
            api.Nodes.UpdateStatus(created)

    add_node("n1", port=int(port))
    add_node("n2", annotation=agent_unix)
    add_node("n3")                      # no endpoint at all
    add_node("n4", port=dead_port)      # nothing listens there
    add_node("n5", annotation="not an endpoint")

    def add_pod(name, node="", containers=("app",), inits=(), phase=None):
        p = L.meta(M["Pod"](), name, "default")
        for cn in containers:
            p.spec.containers.add(name=cn, image="busybox:1.36")
        for cn in inits:
            p.spec.init_containers.add(name=cn, image="busybox:1.36")
        if node:
            p.spec.node_name = node
        created = api.Pods.Create(p)
        if phase:
            created.status.phase = phase
            api.Pods.UpdateStatus(created)
        return created

    pods = {
        "p1": add_pod("p1", "n1"),
        "p2": add_pod("p2", "n2", containers=("a", "b"), inits=("init",)),
        "p3": add_pod("p3"),
        "p4": add_pod("p4", "n3"),
        "p5": add_pod("p5", "n4"),
        "p6": add_pod("p6", "ghost"),
        "p7": add_pod("p7", "n5"),
        "done": add_pod("done", "n1", phase="Succeeded"),
        "big-1": add_pod("big-1", "n1"),
        "gone-1": add_pod("gone-1", "n1"),
    }
    c.ok("fixtures: nodes and pods created", len(pods) == 10)
    return pods


def test_log(c, api, M, pods, journal):
    got = log_bytes(api, M, name="p1")
    c.eq("Log p1 (one container, by InternalIP:port): the agent's log", got, expected_log("default", "p1", "app"))
    sent = [e for e in read_journal(journal) if e.get("call") == "Log" and e.get("options", {}).get("name") == "p1"]
    o = sent[-1]["options"] if sent else {}
    c.eq("the agent was asked for container app (defaulted)", o.get("container"), "app")
    c.eq("the agent got the pod's uid", o.get("pod_uid"), pods["p1"].metadata.uid)
    c.eq("the agent got the namespace (defaulted)", o.get("namespace"), "default")
    got = log_bytes(api, M, name="p1", tail_lines={"value": 2}, timestamps=True)
    c.eq("tailLines=2 + timestamps", got, expected_log("default", "p1", "app", tail=2, timestamps=True))
    got = log_bytes(api, M, name="p1", limit_bytes={"value": 30})
    c.eq("limitBytes=30", got, expected_log("default", "p1", "app", limit=30))
    got = log_bytes(api, M, name="p2", container="b")
    c.eq("Log p2 container b (agent on a unix socket, by annotation)", got, expected_log("default", "p2", "b"))
    got = log_bytes(api, M, name="p2", container="init")
    c.eq("Log of an init container", got, expected_log("default", "p2", "init"))

    log = lambda **kw: lambda: log_bytes(api, M, **kw)  # noqa: E731
    expect_code(c, "no such pod -> NOT_FOUND", log(name="nope"), SC.NOT_FOUND, 'pods "nope" not found')
    expect_code(c, "no name -> INVALID_ARGUMENT", log(name=""), SC.INVALID_ARGUMENT, "name: Required value")
    expect_code(c, "two containers, none named -> INVALID_ARGUMENT naming them", log(name="p2"),
                SC.INVALID_ARGUMENT, "a container name must be specified for pod p2, choose one of: [a b]",
                "or one of the init containers: [init]")
    expect_code(c, "a container the pod lacks -> INVALID_ARGUMENT", log(name="p2", container="zz"),
                SC.INVALID_ARGUMENT, "container zz is not valid for pod p2")
    expect_code(c, "unscheduled pod -> FAILED_PRECONDITION", log(name="p3"), SC.FAILED_PRECONDITION,
                "pod p3 does not have a host assigned")
    expect_code(c, "node without agent endpoint -> UNAVAILABLE", log(name="p4"), SC.UNAVAILABLE,
                'node "n3" has no agent endpoint')
    expect_code(c, "agent down -> UNAVAILABLE naming pod, node and endpoint", log(name="p5"), SC.UNAVAILABLE,
                "pod default/p5 container app on node n4", "the agent did not answer")
    expect_code(c, "pod bound to a missing node -> FAILED_PRECONDITION", log(name="p6"), SC.FAILED_PRECONDITION,
                'pod p6 is bound to node "ghost", which does not exist')
    expect_code(c, "a node with a malformed endpoint annotation -> FAILED_PRECONDITION", log(name="p7"),
                SC.FAILED_PRECONDITION, 'node "n5": annotation agent.keel.dev/endpoint')
    expect_code(c, "the agent's NOT_FOUND is passed on", log(name="gone-1"), SC.NOT_FOUND,
                "pod default/gone-1 is not running on this node")
    expect_code(c, "tailLines=-1 -> INVALID_ARGUMENT", log(name="p1", tail_lines={"value": -1}),
                SC.INVALID_ARGUMENT, "tailLines: Invalid value: -1")
    expect_code(c, "sinceSeconds=0 -> INVALID_ARGUMENT", log(name="p1", since_seconds={"value": 0}),
                SC.INVALID_ARGUMENT, "sinceSeconds: Invalid value: 0")
    expect_code(c, "limitBytes=0 -> INVALID_ARGUMENT", log(name="p1", limit_bytes={"value": 0}),
                SC.INVALID_ARGUMENT, "limitBytes: Invalid value: 0")
    expect_code(c, "sinceSeconds with sinceTime -> INVALID_ARGUMENT",
                log(name="p1", since_seconds={"value": 5}, since_time={"seconds": 1}), SC.INVALID_ARGUMENT,
                "at most one of `sinceTime` or `sinceSeconds`")


def metric_value(http, name, **labels):
    status, _, body = kt.curl(f"http://{http}/metrics")
    samples = kt.parse_prometheus(body)[0] if status == 200 else []
    return sum(v for n, lb, v in samples if n == name and all(lb.get(k) == w for k, w in labels.items()))


def test_big_log(c, api, M, http):
    """12 MiB through the relay, read slowly at first: the relay's send queue
    (4 MiB) fills, so it pauses the agent's stream instead of dropping or
    reordering, and resumes when the reader catches up."""
    pauses = metric_value(http, "keel_apiserver_pod_relay_pauses_total", paused="agent")
    h = hashlib.sha256()
    n = 0
    for i, ch in enumerate(api.Pods.Log(M["PodLogOptions"](name="big-1"), timeout=T * 3)):
        h.update(ch.data)
        n += len(ch.data)
        if i < 20:
            time.sleep(0.1)  # a slow reader at first: the relay's queue fills
    want = hashlib.sha256()
    i, size = 0, 0
    while size < 12 << 20:
        i += 1
        text = f"big {i} default/big-1/app ".ljust(99, "x") + "\n"
        want.update(text.encode())
        size += len(text)
    c.eq("a 12 MiB log arrives whole and in order (size)", n, size)
    c.eq("a 12 MiB log arrives whole and in order (sha256)", h.hexdigest(), want.hexdigest())
    c.ok("the slow reader paused the agent's stream (keel_apiserver_pod_relay_pauses_total{paused=agent} grew)",
         metric_value(http, "keel_apiserver_pod_relay_pauses_total", paused="agent") > pauses)
    deadline = time.monotonic() + T
    while metric_value(http, "keel_apiserver_pod_relays") and time.monotonic() < deadline:
        time.sleep(0.05)
    c.eq("no relay left open (keel_apiserver_pod_relays)", metric_value(http, "keel_apiserver_pod_relays"), 0)


def test_follow(c, api, M, journal):
    stream = api.Pods.Log(M["PodLogOptions"](name="p1", follow=True), timeout=T * 2)
    data = bytearray()
    for ch in stream:
        data += ch.data
        if data.count(b"tick") >= 3:
            break
    c.ok("follow: the log, then new lines as they come", data.startswith(expected_log("default", "p1", "app"))
         and b"tick 3\n" in data, repr(bytes(data[-200:])))
    stream.cancel()
    hits = wait_journal(journal, lambda e: e.get("call") == "Log" and e.get("event") == "done"
                        and e.get("pod") == "p1" and e.get("cancelled"))
    c.ok("follow: the caller's cancel reaches the agent", bool(hits))


def test_exec(c, api, M, pods, journal, http):
    out, err, code = exec_call(api, M, "p1", ["sh", "-c", "echo out; echo err >&2; exit 3"])
    c.eq("exec: stdout", out, b"out\n")
    c.eq("exec: stderr", err, b"err\n")
    c.eq("exec: exit code", code, 3)
    started = [e for e in read_journal(journal) if e.get("call") == "Exec" and "options" in e]
    o = started[-1]["options"] if started else {}
    c.eq("exec: the agent got container app and the pod's uid", (o.get("container"), o.get("pod_uid")),
         ("app", pods["p1"].metadata.uid))
    payload = os.urandom(1 << 20)
    chunks = [payload[i:i + 16384] for i in range(0, len(payload), 16384)]
    out, err, code = exec_call(api, M, "p2", ["cat"], stdin_chunks=chunks, container="a")
    c.ok("exec -i: 1 MiB of stdin through cat comes back unchanged", out == payload and code == 0,
         f"got {len(out)} bytes, code {code}, stderr {err[:200]!r}")
    # 32 MiB to a command that reads nothing for two seconds: the agent falls
    # behind (more than gRPC's flow-control windows hold), the relay pauses
    # reading the caller instead of failing.
    pauses = metric_value(http, "keel_apiserver_pod_relay_pauses_total", paused="caller")
    big = [bytes([65 + i % 26]) * 65536 for i in range(512)]
    out, err, code = exec_call(api, M, "p1", ["sh", "-c", "sleep 2; wc -c"], stdin_chunks=big)
    c.eq("exec -i: 32 MiB of stdin to a slow reader all arrive", (out.strip(), code), (str(32 << 20).encode(), 0))
    c.ok("exec -i: the relay paused the caller's input (paused=caller)",
         metric_value(http, "keel_apiserver_pod_relay_pauses_total", paused="caller") > pauses)
    out, err, code = exec_call(api, M, "p1", ["sh", "-c", "read x; echo got:$x"], stdin_chunks=[b"hel", b"lo\n"],
                               pace=0.05)
    c.eq("exec -i: paced stdin", (out, code), (b"got:hello\n", 0))
    out, err, code = exec_call(api, M, "p1", ["no-such-program-keel"])
    c.ok("exec: an unknown program -> exit 127 with a message", code == 127 and b"no-such-program-keel" in err,
         f"code {code} stderr {err!r}")

    ex = lambda **kw: lambda: exec_call(api, M, **kw)  # noqa: E731
    expect_code(c, "exec: first message without start -> INVALID_ARGUMENT",
                ex(name="p1", command=[], first=M["ExecRequest"](stdin=b"x")), SC.INVALID_ARGUMENT,
                "the first ExecRequest must carry start")
    expect_code(c, "exec: no command -> INVALID_ARGUMENT", ex(name="p1", command=[]), SC.INVALID_ARGUMENT,
                "you must specify at least one command for the container")
    expect_code(c, "exec: into a completed pod -> FAILED_PRECONDITION", ex(name="done", command=["true"]),
                SC.FAILED_PRECONDITION, "cannot exec into a container in a completed pod; current phase is Succeeded")
    expect_code(c, "exec: two containers, none named -> INVALID_ARGUMENT", ex(name="p2", command=["true"]),
                SC.INVALID_ARGUMENT, "a container name must be specified for pod p2")
    expect_code(c, "exec: agent down -> UNAVAILABLE", ex(name="p5", command=["true"]), SC.UNAVAILABLE,
                "the agent did not answer")

    def stdin_not_requested():
        def reqs():
            yield M["ExecRequest"](start=M["PodExecOptions"](name="p1", command=["sleep", "5"]))
            yield M["ExecRequest"](stdin=b"x")
        return list(api.Pods.Exec(reqs(), timeout=T))
    expect_code(c, "exec: stdin that was not requested -> INVALID_ARGUMENT", stdin_not_requested,
                SC.INVALID_ARGUMENT, "stdin was not requested")


def test_authz(c, types, M, addr):
    viewer = L.insecure_api(types, addr, TOKENS["viewer"][0])
    got = log_bytes(viewer, M, name="p1")
    c.eq("a viewer reads logs", got, expected_log("default", "p1", "app"))
    expect_code(c, "a viewer may not exec -> PERMISSION_DENIED", lambda: exec_call(viewer, M, "p1", ["true"]),
                SC.PERMISSION_DENIED, "victor", "exec")
    anon = L.insecure_api(types, addr)
    expect_code(c, "no credentials: Log -> UNAUTHENTICATED", lambda: log_bytes(anon, M, name="p1"),
                SC.UNAUTHENTICATED)
    expect_code(c, "no credentials: Exec -> UNAUTHENTICATED", lambda: exec_call(anon, M, "p1", ["true"]),
                SC.UNAUTHENTICATED)


def http_get(http, path, token, max_time=None, out=None):
    """curl GET: (status, content type, body bytes); status None when curl failed
    (curl's exit code 28, a timeout, is how a follow is ended here)."""
    argv = ["curl", "-sS", "--noproxy", "*", "-o", out or "-", "-w", "\n%{http_code} %{content_type}"]
    if token:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if max_time:
        argv += ["--max-time", str(max_time)]
    p = subprocess.run(argv + [f"http://{http}{path}"], capture_output=True)
    body, _, tail = p.stdout.rpartition(b"\n")
    code, _, ctype = tail.decode().partition(" ")
    return (int(code) if code.isdigit() and code != "000" else None), ctype, body, p.returncode


def test_rest_log(c, M, http, journal):
    admin = TOKENS["admin"][0]
    base = "/api/v1/namespaces/default/pods"
    code, ctype, body, _ = http_get(http, f"{base}/p1/log", admin)
    c.eq("REST: GET pods/p1/log -> 200 text/plain with the log", (code, ctype, body),
         (200, "text/plain", expected_log("default", "p1", "app")))
    code, _, body, _ = http_get(http, f"{base}/p2/log?container=b&tailLines=2&timestamps=true", admin)
    c.eq("REST: container, tailLines, timestamps", (code, body),
         (200, expected_log("default", "p2", "b", tail=2, timestamps=True)))
    code, _, body, _ = http_get(http, f"{base}/p1/log?limitBytes=12&sinceSeconds=60", admin)
    c.eq("REST: limitBytes, sinceSeconds", (code, body), (200, expected_log("default", "p1", "app", limit=12)))
    o = [e for e in read_journal(journal) if e.get("call") == "Log" and "options" in e][-1]["options"]
    c.eq("REST: the agent got sinceSeconds", o.get("since_seconds"), "60")

    def status(path, token=admin):
        code, _, body, _ = http_get(http, path, token)
        try:
            d = json.loads(body)
        except ValueError:
            d = {}
        return code, d.get("reason"), d.get("message", "")

    for what, path, want_code, want_reason, part in [
        ("unscheduled pod", f"{base}/p3/log", 400, "BadRequest", "pod p3 does not have a host assigned"),
        ("no such pod", f"{base}/nope/log", 404, "NotFound", 'pods "nope" not found'),
        ("agent down", f"{base}/p5/log", 503, "ServiceUnavailable", "the agent did not answer"),
        ("the agent's NOT_FOUND", f"{base}/gone-1/log", 404, "NotFound", "is not running on this node"),
        ("tailLines=abc", f"{base}/p1/log?tailLines=abc", 400, "BadRequest", "tailLines: Invalid value"),
        ("tailLines=-1", f"{base}/p1/log?tailLines=-1", 400, "BadRequest", "must be greater than or equal to 0"),
        ("two containers, none named", f"{base}/p2/log", 400, "BadRequest", "a container name must be specified"),
        ("sinceTime garbage", f"{base}/p1/log?sinceTime=yesterday", 400, "BadRequest", "sinceTime: Invalid value"),
        ("exec over REST", f"{base}/p1/exec", 405, "MethodNotAllowed", "keel.api.v1.Pods/Exec"),
    ]:
        code, reason, msg = status(path)
        c.ok(f"REST: {what} -> {want_code} {want_reason}", (code, reason) == (want_code, want_reason) and part in msg,
             f"got {code} {reason} {msg!r}")
    code, reason, _ = status(f"{base}/p1/log", token=None)
    c.eq("REST: no credentials -> 401", (code, reason), (401, "Unauthorized"))
    code, _, body, _ = http_get(http, f"{base}/p1/log?tailLines=1", TOKENS["viewer"][0])
    c.eq("REST: a viewer reads logs", (code, body), (200, b"line 5 of default/p1/app\n"))

    # follow: new lines keep coming until the client goes away; then the agent's
    # stream is canceled (noticed at the next write).
    before = len([e for e in read_journal(journal) if e.get("event") == "done" and e.get("cancelled")])
    code, _, body, rc = http_get(http, f"{base}/p1/log?follow=true", admin, max_time=1)
    c.ok("REST: follow streams new lines (ended by the client after 1 s)", rc == 28 and b"tick 3\n" in body,
         f"curl exit {rc}, body tail {body[-80:]!r}")
    deadline = time.monotonic() + T
    while True:
        hits = [e for e in read_journal(journal) if e.get("event") == "done" and e.get("cancelled")]
        if len(hits) > before or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    c.ok("REST: the client's going away cancels the agent's stream", len(hits) > before, f"{len(hits)} cancels")

    out = os.path.join(os.path.dirname(journal), "big.log")
    code, _, _, _ = http_get(http, f"{base}/big-1/log", admin, out=out)
    with open(out, "rb") as f:
        data = f.read()
    i, size, want = 0, 0, hashlib.sha256()
    while size < 12 << 20:
        i += 1
        text = f"big {i} default/big-1/app ".ljust(99, "x") + "\n"
        want.update(text.encode())
        size += len(text)
    c.ok("REST: a 12 MiB log arrives whole and in order", code == 200 and len(data) == size
         and hashlib.sha256(data).hexdigest() == want.hexdigest(), f"code {code}, {len(data)} of {size} bytes")


def test_shutdown(c, api, M, apiserver):
    stream = api.Pods.Log(M["PodLogOptions"](name="p1", follow=True), timeout=T * 2)
    result = {}

    def read():
        try:
            for _ in stream:
                pass
            result["code"] = SC.OK
        except Exception as e:  # noqa: BLE001
            result["code"] = e.code() if hasattr(e, "code") else SC.UNKNOWN
    t = threading.Thread(target=read, daemon=True)
    t.start()
    # And a REST follow, whose connection thread waits on the relay.
    curl = subprocess.Popen(["curl", "-sS", "--noproxy", "*", "-o", "/dev/null", "--max-time", str(T * 2), "-H",
                             f"Authorization: Bearer {TOKENS['admin'][0]}",
                             f"http://{apiserver.http_addr}/api/v1/namespaces/default/pods/p1/log?follow=true"])
    time.sleep(0.5)
    rc = L.stop_checked(c, apiserver)
    t.join(T)
    c.ok("SIGTERM with a follow open: the caller gets a status", "code" in result and result["code"] != SC.OK,
         f"{result}")
    try:
        curl_rc = curl.wait(timeout=T)
    except subprocess.TimeoutExpired:
        curl.kill()
        curl_rc = None
    c.ok("SIGTERM with a REST follow open: the response ends", curl_rc is not None and curl_rc != 28,
         f"curl exit {curl_rc}")
    return rc


def main():
    c = kt.Checks(f"apiserver pod log/exec ({STORE_KIND})")
    types = L.ApiTypes(DESCRIPTORS)
    M = types.M
    base = kt.tmpdir("apiserver-podio")
    tokens = os.path.join(base, "tokens.csv")
    with open(tokens, "w") as f:
        for tok, user, uid, groups in TOKENS.values():
            f.write(f'{tok},{user},{uid},"{groups}"\n')
    sock = os.path.join(kt.sock_dir(base), "agent.sock")
    journal = os.path.join(base, "journal")
    agent = kt.Daemon("test-agent", ["/usr/bin/python3", TEST_AGENT, "--descriptors=" + DESCRIPTORS,
                                     "--listen=127.0.0.1:0", "--listen=unix:" + sock, "--journal=" + journal],
                      base).start().wait_ready(timeout=T)
    # A port nothing listens on: bound and closed again by this test.
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead_port = s.getsockname()[1]
    s.close()
    store, url = L.start_store(STORE_KIND, STORE_BIN, base)
    apiserver = L.start_apiserver(APISERVER, url, base, args=[f"--token-auth-file={tokens}"])
    addr = apiserver.grpc_addr()
    api = L.insecure_api(types, addr, TOKENS["admin"][0])
    pods = setup_cluster(c, api, M, agent.grpc_addr(0), "unix:" + sock, dead_port)
    c.run("Pods/Log", lambda: test_log(c, api, M, pods, journal))
    c.run("Pods/Log, 12 MiB to a slow reader", lambda: test_big_log(c, api, M, apiserver.http_addr))
    c.run("Pods/Log follow and cancel", lambda: test_follow(c, api, M, journal))
    c.run("Pods/Exec", lambda: test_exec(c, api, M, pods, journal, apiserver.http_addr))
    c.run("authorization", lambda: test_authz(c, types, M, addr))
    c.run("REST gateway: pods/{name}/log", lambda: test_rest_log(c, M, apiserver.http_addr, journal))
    c.run("shutdown with a relay open", lambda: test_shutdown(c, api, M, apiserver))
    L.stop_all(c, [store])
    agent.stop()
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
