"""Macros that turn .proto files into protobuf-c code and embedded descriptor sets.

Import roots: our own protos live under //proto (import paths like
"keel/echo/v1/echo.proto"); Debian's gRPC protos come from @grpc_proto and
descriptor.proto from @protobuf_include. protoc sees all three roots.
"""

# Only the roots present in the action's sandbox are passed, so protoc stays quiet.
_IMPORT_ROOTS = "$$(for d in proto external/grpc_proto external/protobuf_include; do [ -d $$d ] && printf -- \"-I%s \" $$d; done)"

def c_proto_library(name, protos, srcs, proto_deps = [], deps = []):
    """protobuf-c code for `protos` (import paths), compiled into cc_library `name`.

    srcs: labels of the same .proto files. proto_deps: labels of imported .proto
    files (needed as inputs to protoc). deps: c_proto_library targets of imports.
    Generated headers are included as "keel/echo/v1/echo.pb-c.h".
    """
    hdrs = [p[:-len(".proto")] + ".pb-c.h" for p in protos]
    ccs = [p[:-len(".proto")] + ".pb-c.c" for p in protos]
    native.genrule(
        name = name + "_gen",
        srcs = srcs + proto_deps,
        outs = hdrs + ccs,
        cmd = "protoc " + _IMPORT_ROOTS + " --c_out=$(GENDIR)/proto " + " ".join(protos),
    )
    native.cc_library(
        name = name,
        srcs = ccs,
        hdrs = hdrs,
        includes = ["."],
        copts = ["-Wno-unused-parameter"],
        linkopts = ["-lprotobuf-c"],
        deps = deps,
        visibility = ["//visibility:public"],
    )

def descriptor_set_library(name, protos, srcs, symbol):
    """A cc_library exporting `symbol` (bytes) and `symbol_len`: a serialized
    google.protobuf.FileDescriptorSet of `protos` with all their imports, for
    server reflection and for checking declared streaming kinds."""
    native.genrule(
        name = name + "_pb",
        srcs = srcs,
        outs = [name + ".pb"],
        cmd = "protoc " + _IMPORT_ROOTS + " --include_imports --descriptor_set_out=$@ " + " ".join(protos),
    )
    native.genrule(
        name = name + "_c",
        srcs = [name + ".pb"],
        outs = [name + ".c"],
        tools = ["//tools/embed:embed_bytes"],
        cmd = "$(location //tools/embed:embed_bytes) " + symbol + " $< > $@",
    )
    native.cc_library(
        name = name,
        srcs = [name + ".c"],
        visibility = ["//visibility:public"],
    )
