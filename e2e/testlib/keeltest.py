"""e2e/testlib/keeltest.py — helpers for Keel's python e2e tests (run with
/usr/bin/python3, which has python3-grpcio and python3-protobuf).

- Checks: record named checks, keep going after a failure, exit non-zero at the end.
- Daemon: start a daemon with a private dir and --ready-file, wait for it, read
  its addresses, signal it by pid, wait for its exit; every daemon started here
  is killed at exit (and dies with this process: PR_SET_PDEATHSIG).
- make_certs: TLS material from certs.sh (CA, server, client, unrelated CA).
- load_proto: protoc --python_out at test time, imported from a temp dir.
- EchoClient: generic grpc stubs for keel.echo.v1.Echo and grpc.health.v1.Health.
- pb_*: a minimal protobuf wire codec for hand-encoded messages (reflection).
"""

import atexit
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))

# ------------------------------------------------------------------ checks


class Checks:
    """Named checks; a failure is printed and remembered, the test goes on."""

    def __init__(self, name):
        self.name = name
        self.failures = []
        self.passes = 0
        self.lock = threading.Lock()

    def ok(self, what, cond, detail=""):
        with self.lock:
            if cond:
                self.passes += 1
                print(f"PASS: {what}", flush=True)
            else:
                self.failures.append(what)
                print(f"FAIL: {what}" + (f" -- {detail}" if detail else ""), flush=True)
        return bool(cond)

    def eq(self, what, got, want):
        return self.ok(what, got == want, f"got {got!r}, want {want!r}")

    def fail(self, what, detail=""):
        return self.ok(what, False, detail)

    def note(self, text):
        print(f"NOTE: {text}", flush=True)

    def code(self, what, fn, want_code, want_details=None):
        """Runs fn() expecting an RpcError with want_code (a grpc.StatusCode)."""
        try:
            fn()
        except grpc.RpcError as e:
            got = e.code()
            ok = got == want_code
            detail = f"got {got} {e.details()!r}, want {want_code}"
            if want_details is not None:
                ok = ok and e.details() == want_details
                detail += f" {want_details!r}"
            return self.ok(what, ok, detail)
        except Exception as e:  # noqa: BLE001 - report anything unexpected
            return self.fail(what, f"unexpected {type(e).__name__}: {e}")
        return self.fail(what, f"call succeeded, want {want_code}")

    def run(self, what, fn):
        """Runs a block of checks; an exception inside is one failure, not a crash."""
        print(f"--- {what}", flush=True)
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            self.fail(f"{what}: raised", f"{type(e).__name__}: {e}")

    def finish(self):
        if self.failures:
            print(f"RESULT: {self.name}: {len(self.failures)} check(s) failed "
                  f"({self.passes} passed):", flush=True)
            for f in self.failures:
                print(f"  - {f}", flush=True)
            return 1
        print(f"RESULT: {self.name}: all {self.passes} checks passed", flush=True)
        return 0


# ------------------------------------------------------------------ temp dirs

_cleanups = []


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def init():
    """Call first: SIGTERM/SIGINT run atexit cleanups (Bazel timeouts send SIGTERM)."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def tmpdir(prefix="keel"):
    base = os.environ.get("TEST_TMPDIR")
    if base:
        return tempfile.mkdtemp(prefix=prefix + ".", dir=base)
    d = tempfile.mkdtemp(prefix=prefix + ".")
    _cleanups.append(lambda: subprocess.run(["rm", "-rf", d], check=False))
    return d


def sock_dir(base):
    """A directory short enough for unix socket paths (sun_path is 108 bytes)."""
    if len(base) <= 80:
        return base
    d = tempfile.mkdtemp(prefix="keel-sock.", dir="/tmp")
    _cleanups.append(lambda: subprocess.run(["rm", "-rf", d], check=False))
    return d


# ------------------------------------------------------------------ daemons

_daemons = []


class Daemon:
    """A daemon process started with --ready-file in its own dir."""

    def __init__(self, name, argv, base_dir, wrapper=None, env=None):
        self.name = name
        self.dir = os.path.join(base_dir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.ready_file = os.path.join(self.dir, "ready")
        self.log_file = os.path.join(self.dir, "log")
        self.argv = list(wrapper or []) + list(argv) + ["--ready-file=" + self.ready_file]
        self.env = env
        self.proc = None
        self.ready = {}

    def start(self):
        if os.path.exists(self.ready_file):
            os.unlink(self.ready_file)
        log = open(self.log_file, "wb")
        # No preexec_fn: it makes Python run code between fork and exec while
        # grpcio's threads are live, which can deadlock in grpcio's fork handler.
        # setpriv (util-linux) sets the parent-death signal and execs in place,
        # so the pid is still the daemon's.
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL"] + self.argv,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        _daemons.append(self)
        print(f"started {self.name} (pid {self.proc.pid}): {' '.join(self.argv)}", flush=True)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def wait_ready(self, timeout=20.0):
        deadline = time.monotonic() + timeout
        while True:
            if os.path.exists(self.ready_file):
                with open(self.ready_file) as f:
                    text = f.read()
                if text:
                    break
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with status {self.proc.returncode} "
                                   f"before it was ready:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} wrote no ready file within {timeout}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.02)
        grpc_addrs, http = [], None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key == "grpc":
                grpc_addrs.append(value)
            elif key == "http":
                http = value
        self.ready = {"grpc": grpc_addrs, "http": http, "text": text}
        print(f"{self.name} ready: {text.strip()!r}", flush=True)
        return self

    def grpc_addr(self, i=0):
        return self.ready["grpc"][i]

    @property
    def http_addr(self):
        return self.ready["http"]

    def send_signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=10.0, sig=signal.SIGTERM):
        """SIGTERM and wait; returns (status, seconds). status None = had to SIGKILL."""
        t0 = time.monotonic()
        self.send_signal(sig)
        rc = self.wait(timeout)
        elapsed = time.monotonic() - t0
        if rc is None:
            self.kill()
        print(f"{self.name} stopped: status {rc} after {elapsed:.3f}s", flush=True)
        return rc, elapsed

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def running(self):
        return self.proc.poll() is None

    def log_tail(self, n=60):
        try:
            with open(self.log_file, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])


@atexit.register
def _cleanup_all():
    for d in _daemons:
        if d.proc and d.proc.poll() is None:
            print(f"cleanup: killing {d.name} (pid {d.proc.pid})", flush=True)
            d.kill()
    for fn in reversed(_cleanups):
        fn()


def make_certs(directory):
    """Runs certs.sh; returns {name: path} for ca, server, client, other-ca, other-client."""
    subprocess.run(["bash", os.path.join(HERE, "certs.sh"), directory], check=True)
    names = ["ca", "server", "client", "other-ca", "other-client"]
    out = {}
    for n in names:
        out[n + ".pem"] = os.path.join(directory, n + ".pem")
        out[n + ".key"] = os.path.join(directory, n + ".key")
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ------------------------------------------------------------------ protos


def load_proto(proto_path, import_path, out_dir, module_name):
    """Compiles one .proto (no imports of its own) with protoc --python_out and
    imports the result as module_name. proto_path is the file, import_path its
    name under its import root (e.g. keel/echo/v1/echo.proto)."""
    proto_path = os.path.abspath(proto_path)
    if not proto_path.endswith(import_path):
        raise ValueError(f"{proto_path} does not end with {import_path}")
    root = proto_path[: -len(import_path)]
    os.makedirs(out_dir, exist_ok=True)
    protoc = "/usr/bin/protoc" if os.path.exists("/usr/bin/protoc") else "protoc"
    subprocess.run([protoc, "-I", root, "--python_out=" + out_dir, import_path], check=True)
    gen = os.path.join(out_dir, import_path[: -len(".proto")] + "_pb2.py")
    spec = importlib.util.spec_from_file_location(module_name, gen)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ECHO_PROTO = "keel/echo/v1/echo.proto"
HEALTH_PROTO = "grpc/health/v1/health.proto"
SERVING, NOT_SERVING = 1, 2


class Protos:
    """echo_pb2 and health_pb2, generated at test time."""

    def __init__(self, echo_proto, health_proto, out_dir):
        self.echo = load_proto(echo_proto, ECHO_PROTO, out_dir, "keel_echo_pb2")
        self.health = load_proto(health_proto, HEALTH_PROTO, out_dir, "keel_health_pb2")


class EchoClient:
    """Generic stubs (channel.unary_unary & co.) for Echo and Health."""

    P = "/keel.echo.v1.Echo/"

    def __init__(self, channel, protos):
        e, h = protos.echo, protos.health
        self.channel = channel
        self.pb = e
        self.hpb = h
        ser = lambda m: m.SerializeToString()  # noqa: E731
        self.echo = channel.unary_unary(self.P + "Echo", request_serializer=ser,
                                        response_deserializer=e.EchoResponse.FromString)
        self.expand = channel.unary_stream(self.P + "Expand", request_serializer=ser,
                                           response_deserializer=e.EchoResponse.FromString)
        self.collect = channel.stream_unary(self.P + "Collect", request_serializer=ser,
                                            response_deserializer=e.CollectResponse.FromString)
        self.chat = channel.stream_stream(self.P + "Chat", request_serializer=ser,
                                          response_deserializer=e.EchoResponse.FromString)
        self.stats = channel.unary_unary(self.P + "Stats", request_serializer=ser,
                                         response_deserializer=e.StatsResponse.FromString)
        self.health_check = channel.unary_unary(
            "/grpc.health.v1.Health/Check", request_serializer=ser,
            response_deserializer=h.HealthCheckResponse.FromString)
        self.health_watch = channel.unary_stream(
            "/grpc.health.v1.Health/Watch", request_serializer=ser,
            response_deserializer=h.HealthCheckResponse.FromString)

    def get_stats(self, timeout=5):
        return self.stats(self.pb.StatsRequest(), timeout=timeout)

    def wait_stats(self, pred, timeout=5.0):
        """Polls Stats until pred(stats) holds; returns the last Stats."""
        deadline = time.monotonic() + timeout
        while True:
            s = self.get_stats()
            if pred(s) or time.monotonic() > deadline:
                return s
            time.sleep(0.05)


def insecure_channel(addr, max_receive=None):
    opts = []
    if max_receive:
        opts.append(("grpc.max_receive_message_length", max_receive))
    return grpc.insecure_channel(addr, options=opts)


def tls_channel(addr, certs, client_cert=None, ca="ca"):
    """TLS channel to a server whose cert is for "localhost". client_cert:
    None, "client" or "other-client"."""
    key = chain = None
    if client_cert:
        key = read(certs[client_cert + ".key"])
        chain = read(certs[client_cert + ".pem"])
    creds = grpc.ssl_channel_credentials(root_certificates=read(certs[ca + ".pem"]),
                                         private_key=key, certificate_chain=chain)
    return grpc.secure_channel(addr, creds,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def wait_channel(channel, timeout=10.0):
    grpc.channel_ready_future(channel).result(timeout=timeout)


# ------------------------------------------------------------------ protobuf wire


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return pb_varint((field << 3) | 2) + pb_varint(len(data)) + data


def pb_uint(field, n):
    return pb_varint(field << 3) + pb_varint(n)


def pb_decode(buf):
    """[(field, wire_type, value)]; value is int (varint/fixed) or bytes (len)."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            b = buf[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < len(buf):
        key = varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            out.append((field, wt, varint()))
        elif wt == 2:
            n = varint()
            out.append((field, wt, bytes(buf[i:i + n])))
            i += n
        elif wt == 1:
            out.append((field, wt, int.from_bytes(buf[i:i + 8], "little")))
            i += 8
        elif wt == 5:
            out.append((field, wt, int.from_bytes(buf[i:i + 4], "little")))
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
    return out


def pb_fields(buf, field):
    return [v for f, _, v in pb_decode(buf) if f == field]


def identity(b):
    return b


def need(env, what):
    v = os.environ.get(env)
    if not v:
        print(f"FAIL: {what}: environment variable {env} is not set", flush=True)
        sys.exit(1)
    return v


# ------------------------------------------------------------------ HTTP (curl)


def curl(url, timeout=5):
    """GET url with the curl CLI: (status, headers {lowercase: value}, body str).
    status is None when the connection failed (refused, reset, timeout)."""
    p = subprocess.run(["curl", "-sS", "--max-time", str(timeout), "-D", "-", "-o", "-",
                        "--noproxy", "*", url], capture_output=True)
    if p.returncode != 0:
        return None, {}, p.stderr.decode("utf-8", "replace")
    raw = p.stdout.decode("utf-8", "replace")
    head, _, body = raw.partition("\r\n\r\n")
    lines = head.split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body


def parse_prometheus(text):
    """Prometheus text format 0.0.4 -> (samples, types, helps, errors).
    samples: [(name, {label: value}, float)]; errors: lines that did not parse."""
    import re

    samples, types, helps, errors = [], {}, {}, []
    label_re = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(,|$)')
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# TYPE "):
            parts = line.split()
            types[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        if line.startswith("# HELP "):
            parts = line.split(None, 3)
            helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        if line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$", line)
        if not m:
            errors.append(line)
            continue
        labels, rest = {}, m.group(3) or ""
        while rest:
            lm = label_re.match(rest)
            if not lm:
                errors.append(line)
                break
            labels[lm.group(1)] = (lm.group(2).replace('\\"', '"').replace("\\n", "\n")
                                   .replace("\\\\", "\\"))
            rest = rest[lm.end():]
        try:
            value = float(m.group(4))
        except ValueError:
            errors.append(line)
            continue
        samples.append((m.group(1), labels, value))
    return samples, types, helps, errors
