#!/usr/bin/python3
"""A stand-in for a node agent's keel.agent.v1.Agent service (Log and Exec),
for the tests of keel-apiserver's Pods/Log and Pods/Exec relays and of
`keel logs` / `keel exec`, until keel-agent exists. It runs no containers:

- Log: every container's log is generated from its name, line i (1-based) is
  "line <i> of <ns>/<pod>/<container>" at 2026-01-01T00:00:<i>Z, 5 lines, or
  for pods named "big-*" 12 MiB of numbered lines ("big <i> <ns>/<pod>/<c> "
  padded to 100 bytes). tail_lines, limit_bytes and timestamps apply as the
  kubelet applies them; follow then writes "tick <k>" every 50 ms until the
  caller cancels. Pods named "gone-*" are NOT_FOUND (a pod the node no longer
  runs).
- Exec: runs the command on this machine (in a temporary directory, without a
  shell unless the command is one), with stdin when asked; stdout, stderr, then
  the exit code. An unknown program gets exit code 127 and a message on stderr,
  as a shell would.

Every request and every cancellation is appended to --journal as a JSON line,
so a test can check what the apiserver sent (container, pod_uid, options).

usage: test_agent.py --descriptors API_DESCRIPTORS.pb --listen ADDR [--listen ADDR]
                     --ready-file F --journal F
ADDR is host:port (port 0 picks one) or unix:/path. The ready file gets one
line per listener: "grpc=ADDR" with the bound address.
"""
import argparse
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures

import grpc
from google.protobuf import descriptor_pb2, json_format, message_factory

SERVICE = "keel.agent.v1.Agent"
BIG_BYTES = 12 << 20


def load_messages(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    classes = message_factory.GetMessages(list(fds.file))
    return {n.split(".")[-1]: c for n, c in classes.items() if n.startswith("keel.api.v1.")}


class Journal:
    def __init__(self, path):
        self.path = path
        self.mu = threading.Lock()

    def add(self, **entry):
        entry["t"] = time.time()
        with self.mu, open(self.path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def log_lines(ns, pod, container):
    """The container's whole log as [(timestamp, bytes)]."""
    who = f"{ns}/{pod}/{container}"
    if pod.startswith("big-"):
        lines, i, size = [], 0, 0
        while size < BIG_BYTES:
            i += 1
            text = f"big {i} {who} ".ljust(99, "x") + "\n"
            lines.append((f"2026-01-01T00:00:00.{i:09d}Z", text.encode()))
            size += len(text)
        return lines
    return [(f"2026-01-01T00:00:{i:02d}Z", f"line {i} of {who}\n".encode()) for i in range(1, 6)]


class Agent:
    def __init__(self, M, journal):
        self.M = M
        self.journal = journal

    # ---------------------------------------------------------------- Log
    def log(self, req, context):
        opts = json_format.MessageToDict(req, preserving_proto_field_name=True)
        self.journal.add(call="Log", options=opts)
        context.add_callback(lambda: self.journal.add(call="Log", event="done", pod=req.name,
                                                      cancelled=not context.is_active()))
        if req.name.startswith("gone-"):
            context.abort(grpc.StatusCode.NOT_FOUND, f"pod {req.namespace}/{req.name} is not running on this node")
        lines = log_lines(req.namespace, req.name, req.container)
        if req.HasField("tail_lines"):
            lines = lines[len(lines) - min(len(lines), req.tail_lines.value):]
        budget = req.limit_bytes.value if req.HasField("limit_bytes") else None
        chunk = bytearray()

        def emit(ts, data):
            nonlocal budget
            out = (ts.encode() + b" " + data) if req.timestamps else data
            if budget is not None:
                out = out[:budget]
                budget -= len(out)
            chunk.extend(out)

        for ts, data in lines:
            emit(ts, data)
            if len(chunk) >= 32 * 1024:
                yield self.M["PodLogChunk"](data=bytes(chunk))
                chunk.clear()
            if budget == 0:
                break
        if chunk:
            yield self.M["PodLogChunk"](data=bytes(chunk))
            chunk.clear()
        k = 0
        while req.follow and budget != 0 and context.is_active():
            time.sleep(0.05)
            k += 1
            emit(f"2026-01-01T01:00:00.{k:09d}Z", f"tick {k}\n".encode())
            yield self.M["PodLogChunk"](data=bytes(chunk))
            chunk.clear()

    # ---------------------------------------------------------------- Exec
    def exec(self, requests, context):
        first = next(requests, None)
        if first is None or not first.HasField("start"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first ExecRequest must carry start")
        start = first.start
        self.journal.add(call="Exec", options=json_format.MessageToDict(start, preserving_proto_field_name=True))
        workdir = tempfile.mkdtemp(prefix="test-agent-exec.")
        try:
            proc = subprocess.Popen(list(start.command), cwd=workdir,
                                    stdin=subprocess.PIPE if start.stdin else subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            yield self.M["ExecResponse"](stderr=f"{start.command[0]}: {e.strerror}\n".encode())
            yield self.M["ExecResponse"](exit_code={"value": 127})
            os.rmdir(workdir)
            return
        out = queue.Queue()

        def pump(pipe, field):
            while True:
                data = pipe.read1(65536)
                if not data:
                    break
                out.put((field, data))
            out.put((field, None))

        def feed():
            got = 0
            try:
                for m in requests:
                    if m.stdin and proc.stdin:
                        proc.stdin.write(m.stdin)
                        proc.stdin.flush()
                        got += len(m.stdin)
                    if m.close_stdin:
                        break
            except (BrokenPipeError, grpc.RpcError, ValueError):
                pass
            finally:
                self.journal.add(call="Exec", event="stdin-closed", bytes=got)
                if proc.stdin:
                    try:
                        proc.stdin.close()
                    except BrokenPipeError:
                        pass

        threads = [threading.Thread(target=pump, args=(proc.stdout, "stdout"), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, "stderr"), daemon=True),
                   threading.Thread(target=feed, daemon=True)]
        for t in threads:
            t.start()
        context.add_callback(lambda: proc.poll() is None and proc.kill())
        open_pipes = 2
        while open_pipes:
            field, data = out.get()
            if data is None:
                open_pipes -= 1
                continue
            yield self.M["ExecResponse"](**{field: data})
        code = proc.wait()
        subprocess.run(["rm", "-rf", workdir], check=False)
        self.journal.add(call="Exec", event="exit", code=code)
        yield self.M["ExecResponse"](exit_code={"value": code if code >= 0 else 128 - code})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--descriptors", required=True)
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--ready-file", required=True)
    ap.add_argument("--journal", required=True)
    args = ap.parse_args()
    M = load_messages(args.descriptors)
    agent = Agent(M, Journal(args.journal))
    ser = lambda m: m.SerializeToString()  # noqa: E731
    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Log": grpc.unary_stream_rpc_method_handler(agent.log, request_deserializer=M["PodLogOptions"].FromString,
                                                    response_serializer=ser),
        "Exec": grpc.stream_stream_rpc_method_handler(agent.exec, request_deserializer=M["ExecRequest"].FromString,
                                                      response_serializer=ser),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32))
    server.add_generic_rpc_handlers((handler,))
    bound = []
    for addr in args.listen:
        port = server.add_insecure_port(addr)
        bound.append(addr if addr.startswith("unix:") else addr.rsplit(":", 1)[0] + f":{port}")
    server.start()
    tmp = args.ready_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"grpc={b}\n" for b in bound))
    os.rename(tmp, args.ready_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(0.5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
