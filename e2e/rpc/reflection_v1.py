"""reflection_v1: raw grpc.reflection.v1 (and v1alpha) requests from python3-grpcio,
hand-encoded protobuf over a generic bidi call, to prove the v1 service answers
with real descriptors.

usage: reflection_v1.py ADDR

ServerReflectionRequest:  host=1, file_by_filename=3, file_containing_symbol=4,
                          list_services=7
ServerReflectionResponse: valid_host=1, original_request=2,
                          file_descriptor_response=4 {file_descriptor_proto=1 (repeated bytes)},
                          list_services_response=6 {service=1 {name=1}},
                          error_response=7 {error_code=1, error_message=2}
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testlib"))
import grpc  # noqa: E402
from google.protobuf import descriptor_pb2  # noqa: E402

import keeltest as kt  # noqa: E402

T = 10


def main():
    kt.init()
    addr = sys.argv[1]
    c = kt.Checks("reflection_v1")
    ch = grpc.insecure_channel(addr)

    def ask(version, requests):
        stub = ch.stream_stream(f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                                request_serializer=kt.identity, response_deserializer=kt.identity)
        return list(stub(iter(requests), timeout=T))

    for version in ("v1", "v1alpha"):
        def block(version=version):
            reqs = [kt.pb_bytes(7, "*"),
                    kt.pb_bytes(4, "keel.echo.v1.Echo"),
                    kt.pb_bytes(3, "keel/echo/v1/echo.proto"),
                    kt.pb_bytes(4, "keel.nope.v1.Nothing")]
            resps = ask(version, reqs)
            c.eq(f"{version}: one response per request", len(resps), len(reqs))
            if len(resps) != len(reqs):
                return
            for i, (req, resp) in enumerate(zip(reqs, resps)):
                orig = kt.pb_fields(resp, 2)
                c.ok(f"{version}: response {i} carries original_request", orig == [req], orig)

            ls = kt.pb_fields(resps[0], 6)
            names = [kt.pb_fields(s, 1)[0].decode() for s in kt.pb_fields(ls[0], 1)] if ls else []
            print(f"{version} list_services: {names}", flush=True)
            for s in ("keel.echo.v1.Echo", "grpc.health.v1.Health",
                      "grpc.reflection.v1.ServerReflection",
                      "grpc.reflection.v1alpha.ServerReflection"):
                c.ok(f"{version}: list_services includes {s}", s in names, names)

            fdr = kt.pb_fields(resps[1], 4)
            files = [descriptor_pb2.FileDescriptorProto.FromString(b)
                     for b in (kt.pb_fields(fdr[0], 1) if fdr else [])]
            echo = [f for f in files if f.name == "keel/echo/v1/echo.proto"]
            c.ok(f"{version}: file_containing_symbol keel.echo.v1.Echo returns echo.proto",
                 len(echo) == 1, [f.name for f in files])
            if echo:
                f = echo[0]
                c.eq(f"{version}: echo.proto package", f.package, "keel.echo.v1")
                svc = [s for s in f.service if s.name == "Echo"]
                got = {m.name: (m.input_type, m.output_type, m.client_streaming,
                                m.server_streaming) for m in (svc[0].method if svc else [])}
                want = {
                    "Echo": (".keel.echo.v1.EchoRequest", ".keel.echo.v1.EchoResponse", False, False),
                    "Expand": (".keel.echo.v1.ExpandRequest", ".keel.echo.v1.EchoResponse", False, True),
                    "Collect": (".keel.echo.v1.EchoRequest", ".keel.echo.v1.CollectResponse", True, False),
                    "Chat": (".keel.echo.v1.EchoRequest", ".keel.echo.v1.EchoResponse", True, True),
                    "Stats": (".keel.echo.v1.StatsRequest", ".keel.echo.v1.StatsResponse", False, False),
                }
                c.eq(f"{version}: Echo methods, types and streaming flags", got, want)

            # file_by_filename in the same stream: the file was already sent on
            # this stream, so either it comes again or the list is empty; never an error.
            c.ok(f"{version}: file_by_filename answers with a file_descriptor_response",
                 bool(kt.pb_fields(resps[2], 4)), kt.pb_decode(resps[2]))

            err = kt.pb_fields(resps[3], 7)
            code = kt.pb_fields(err[0], 1) if err else []
            c.ok(f"{version}: unknown symbol -> error_response NOT_FOUND (5)", code == [5],
                 kt.pb_decode(resps[3]))

            # A fresh stream: file_by_filename must return the file itself.
            resp = ask(version, [kt.pb_bytes(3, "keel/echo/v1/echo.proto")])
            fdr = kt.pb_fields(resp[0], 4) if resp else []
            names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
                     for b in (kt.pb_fields(fdr[0], 1) if fdr else [])]
            c.ok(f"{version}: file_by_filename keel/echo/v1/echo.proto on a fresh stream",
                 "keel/echo/v1/echo.proto" in names, names)

        c.run(f"reflection {version}", block)

        def symbols(version=version):
            # grpcurl describe asks for services, methods, messages, fields, enums
            # and enum values by full name; each must map to its file.
            want = {
                "keel.echo.v1.Echo": "keel/echo/v1/echo.proto",
                "keel.echo.v1.Echo.Expand": "keel/echo/v1/echo.proto",
                "keel.echo.v1.EchoRequest": "keel/echo/v1/echo.proto",
                "keel.echo.v1.EchoRequest.delay_ms": "keel/echo/v1/echo.proto",
                "grpc.health.v1.HealthCheckResponse.ServingStatus": "grpc/health/v1/health.proto",
                "grpc.health.v1.HealthCheckResponse.ServingStatus.NOT_SERVING":
                    "grpc/health/v1/health.proto",
                f"grpc.reflection.{version}.ServerReflection":
                    f"grpc/reflection/{version}/reflection.proto",
            }
            for sym, fname in want.items():
                resp = ask(version, [kt.pb_bytes(4, sym)])
                fdr = kt.pb_fields(resp[0], 4) if resp else []
                names = [descriptor_pb2.FileDescriptorProto.FromString(b).name
                         for b in (kt.pb_fields(fdr[0], 1) if fdr else [])]
                c.ok(f"{version}: file_containing_symbol {sym} -> {fname}", fname in names,
                     names or kt.pb_decode(resp[0]) if resp else "no response")
            for sym in ("keel.echo.v1", "keel.echo.v1.Echo.Nope", "keel.echo.v1.EchoRequest.nope"):
                resp = ask(version, [kt.pb_bytes(4, sym)])
                err = kt.pb_fields(resp[0], 7) if resp else []
                c.ok(f"{version}: file_containing_symbol {sym} -> NOT_FOUND",
                     bool(err) and kt.pb_fields(err[0], 1) == [5],
                     kt.pb_decode(resp[0]) if resp else "no response")

        c.run(f"reflection {version} symbols", symbols)

    ch.close()
    return c.finish()


if __name__ == "__main__":
    sys.exit(main())
