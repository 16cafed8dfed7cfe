#!/usr/bin/python3
"""bench/rpc/py_server.py: keel.echo.v1.Echo (Echo unary, Expand server
streaming) on python3-grpcio, the peer Keel's runtime is compared with.

Messages come from protoc-generated classes (protoc --python_out into a temp
dir at start-up, from proto/keel/echo/v1/echo.proto), so requests are really
decoded and responses really encoded, as Keel does with protobuf-c.

Two modes:
  default    grpc.server with a ThreadPoolExecutor (--workers, default 16)
  --asyncio  grpc.aio server on one event loop

Flags follow keel-echo so bench/rpc/run.sh treats every server alike:
  --listen=ADDR (default 127.0.0.1:0), --ready-file=PATH (written atomically
  once serving: "grpc=127.0.0.1:PORT"); --threads and --http-listen are
  accepted and ignored. SIGTERM/SIGINT: stop with a short grace, exit 0.
Run with /usr/bin/python3 (the interpreter that has grpc).
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PROTO_ROOT = os.path.normpath(os.path.join(HERE, "..", "..", "proto"))
SERVICE = "keel.echo.v1.Echo"


def load_messages(proto_root):
    """Generates echo_pb2 with protoc into a temp dir and imports it."""
    out = tempfile.mkdtemp(prefix="keel-bench-pb2-")
    subprocess.run(
        ["protoc", "-I" + proto_root, "--python_out=" + out, "keel/echo/v1/echo.proto"],
        check=True,
    )
    sys.path.insert(0, out)
    try:
        from keel.echo.v1 import echo_pb2  # noqa: E402  (generated above)
    finally:
        # The module is loaded; its source is no longer needed.
        sys.path.remove(out)
        shutil.rmtree(out, ignore_errors=True)
    return echo_pb2


def write_ready_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("grpc=127.0.0.1:%d\n" % port)
    os.rename(tmp, path)


def handlers_sync(pb):
    EchoResponse = pb.EchoResponse

    def echo(req, ctx):
        return EchoResponse(message=req.message, payload=req.payload)

    def expand(req, ctx):
        message, payload, count = req.message, req.payload, req.count
        i = 0
        while i < count:
            yield EchoResponse(message=message, payload=payload, sequence=i)
            i += 1

    return echo, expand


def handlers_async(pb):
    EchoResponse = pb.EchoResponse

    async def echo(req, ctx):
        return EchoResponse(message=req.message, payload=req.payload)

    async def expand(req, ctx):
        message, payload, count = req.message, req.payload, req.count
        i = 0
        while i < count:
            yield EchoResponse(message=message, payload=payload, sequence=i)
            i += 1

    return echo, expand


def generic_handler(pb, echo, expand):
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(
                echo,
                request_deserializer=pb.EchoRequest.FromString,
                response_serializer=pb.EchoResponse.SerializeToString,
            ),
            "Expand": grpc.unary_stream_rpc_method_handler(
                expand,
                request_deserializer=pb.ExpandRequest.FromString,
                response_serializer=pb.EchoResponse.SerializeToString,
            ),
        },
    )


def serve_sync(args, pb):
    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    server.add_generic_rpc_handlers((generic_handler(pb, *handlers_sync(pb)),))
    port = server.add_insecure_port(args.listen)
    if port == 0:
        sys.exit("py_server: cannot listen on %s" % args.listen)
    server.start()
    if args.ready_file:
        write_ready_file(args.ready_file, port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(grace=0.5).wait()


def serve_async(args, pb):
    import asyncio

    async def main():
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((generic_handler(pb, *handlers_async(pb)),))
        port = server.add_insecure_port(args.listen)
        if port == 0:
            sys.exit("py_server: cannot listen on %s" % args.listen)
        await server.start()
        if args.ready_file:
            write_ready_file(args.ready_file, port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await server.stop(grace=0.5)

    asyncio.run(main())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--ready-file", default="")
    p.add_argument("--asyncio", action="store_true", help="grpc.aio server")
    p.add_argument("--workers", type=int, default=16, help="sync mode thread pool size")
    p.add_argument("--proto-root", default=DEFAULT_PROTO_ROOT)
    p.add_argument("--threads", help="ignored (keel-echo compatibility)")
    p.add_argument("--http-listen", help="ignored (keel-echo compatibility)")
    args = p.parse_args()
    pb = load_messages(args.proto_root)
    if args.asyncio:
        serve_async(args, pb)
    else:
        serve_sync(args, pb)


if __name__ == "__main__":
    main()
