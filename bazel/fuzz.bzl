"""instrumented_fuzzer: a libFuzzer binary built with clang outside Bazel's C toolchain.

Bazel's auto-configured toolchain here is gcc, which has no -fsanitize=fuzzer.
This rule compiles its own `srcs` with clang -fsanitize=fuzzer,address,undefined,
and walks `deps` with an aspect that reads each cc_library's own `srcs` (the files
it compiles anyway, so visibility is respected: only targets the fuzzer may depend
on are visited) and recompiles those of the libraries in `instrument` packages the
same way, so the code under test gets coverage feedback and sanitizers. Their
gcc-built archives are left out of the link, but their own link flags
(linkopts such as -ljansson, -lprotobuf-c) are kept; the other dependencies
(generated protobuf-c code, common/, system libraries) are linked from their
CcInfo.

Without a clang that supports -fsanitize=fuzzer it builds `srcs` + the
instrumented sources + `fallback_main` (a standalone driver with the same command
line; by default //common/fuzz:standalone_main.c, which gets the target's
built-in seeds from the function named by `seeds`) with cc.

`standalone_fuzzer` is the same target as a plain cc_binary with that driver,
built by Bazel's own toolchain (so --config=asan runs it under ASan+UBSan).

With coverage = True the sanitizers are replaced by clang's source-based
coverage (-fprofile-instr-generate -fcoverage-mapping): run the binary over a
corpus with -runs=0 and LLVM_PROFILE_FILE set, then llvm-profdata merge and
llvm-cov report (see services/store/fuzz/README.md).
"""

FuzzSrcsInfo = provider(
    doc = "Own sources of every cc_library reachable through deps.",
    fields = {"entries": "depset of struct(owner = label string, package = string, srcs = tuple of File)"},
)

def _fuzz_srcs_aspect_impl(target, ctx):
    own = []
    if ctx.rule.kind == "cc_library" and hasattr(ctx.rule.files, "srcs"):
        own.append(struct(
            owner = str(target.label),
            package = target.label.package,
            srcs = tuple(ctx.rule.files.srcs),
        ))
    trans = []
    for d in getattr(ctx.rule.attr, "deps", []):
        if FuzzSrcsInfo in d:
            trans.append(d[FuzzSrcsInfo].entries)
    return [FuzzSrcsInfo(entries = depset(own, transitive = trans))]

_fuzz_srcs_aspect = aspect(
    implementation = _fuzz_srcs_aspect_impl,
    attr_aspects = ["deps"],
)

def _shell_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"

def _seeds_linkopts(seeds):
    # The standalone driver calls keel_fuzz_seeds; the target keeps its own name.
    return ["-Wl,--defsym=keel_fuzz_seeds=" + seeds] if seeds else []

def _in_packages(pkg, prefixes):
    for p in prefixes:
        if pkg == p or pkg.startswith(p + "/"):
            return True
    return False

def _instrumented_fuzzer_impl(ctx):
    cc = cc_common.merge_cc_infos(cc_infos = [d[CcInfo] for d in ctx.attr.deps])
    cctx = cc.compilation_context

    # Sources of the dependencies to instrument, and which archives they replace.
    inst_srcs = []
    inst_hdrs = []
    owners = {}
    for d in ctx.attr.deps:
        for e in d[FuzzSrcsInfo].entries.to_list():
            if not _in_packages(e.package, ctx.attr.instrument) or e.owner in owners:
                continue
            owners[e.owner] = True
            for f in e.srcs:
                if f.extension == "c":
                    inst_srcs.append(f)
                else:
                    inst_hdrs.append(f)

    incs = ["-I."]
    for d in cctx.includes.to_list() + cctx.quote_includes.to_list() + cctx.system_includes.to_list():
        incs.append("-I" + d)
    defs = ["-D" + x for x in cctx.defines.to_list()]
    libs = []
    link_inputs = []
    flags = []
    for li in cc.linking_context.linker_inputs.to_list():
        # A recompiled library's archive stays out of the link (its code is in
        # srcs), but its own link flags (-ljansson, -lprotobuf-c, ...) are
        # what the recompiled code needs as much as the archive did.
        flags.extend(li.user_link_flags)
        link_inputs.extend(li.additional_inputs)
        if str(li.owner) in owners:
            continue
        for lib in li.libraries:
            f = lib.pic_static_library or lib.static_library
            if f:
                libs.append(f)

    srcs = [f for f in ctx.files.srcs if f.extension == "c"] + inst_srcs
    out = ctx.actions.declare_file(ctx.label.name)
    main = ctx.file.fallback_main
    args = " ".join(incs + defs)
    fallback_flags = _seeds_linkopts(ctx.attr.seeds)
    sanitize = "-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
    if ctx.attr.coverage:
        # Paths relative to the workspace, so llvm-cov show finds the sources.
        sanitize = "-fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping -fcoverage-prefix-map=$PWD=."
    link = " ".join(["-Wl,--start-group"] + [l.path for l in libs] + ["-Wl,--end-group"] +
                    [_shell_quote(f) for f in flags])
    src_paths = " ".join([s.path for s in srcs])
    cmd = """
set -e
probe='int LLVMFuzzerTestOneInput(const char *d, unsigned long n) {{ (void)d; (void)n; return 0; }}'
if command -v clang >/dev/null 2>&1 &&
   echo "$probe" | clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
  clang -std=gnu11 -g -O1 -fno-omit-frame-pointer {sanitize} \\
    {args} {srcs} {link} -lpthread -o {out}
else
  # Dependencies built with --config=asan need the sanitizer runtimes too.
  cc -std=gnu11 -g -O1 {args} {srcs} {main} {link} {fallback} -lpthread -o {out} 2>/dev/null ||
    cc -std=gnu11 -g -O1 -fsanitize=address,undefined {args} {srcs} {main} {link} {fallback} -lpthread -o {out}
fi
""".format(
        args = args,
        srcs = src_paths,
        link = link,
        out = out.path,
        main = main.path,
        sanitize = sanitize,
        fallback = " ".join(fallback_flags),
    )
    ctx.actions.run_shell(
        inputs = depset(
            ctx.files.srcs + inst_srcs + inst_hdrs + [main] + libs + link_inputs,
            transitive = [cctx.headers],
        ),
        outputs = [out],
        command = cmd,
        use_default_shell_env = True,
        mnemonic = "ClangFuzzer",
        progress_message = "Building instrumented libFuzzer binary %s" % ctx.label,
    )
    return [DefaultInfo(files = depset([out]), executable = out)]

instrumented_fuzzer = rule(
    implementation = _instrumented_fuzzer_impl,
    executable = True,
    attrs = {
        "srcs": attr.label_list(allow_files = [".c", ".h"]),
        # The standalone driver compiled in when clang has no -fsanitize=fuzzer.
        "fallback_main": attr.label(
            allow_single_file = [".c"],
            default = "//common/fuzz:standalone_main.c",
        ),
        # The target's function that hands its built-in seeds to the standalone
        # driver (common/fuzz/standalone_main.c, "Seeds"); "" for none.
        "seeds": attr.string(),
        "deps": attr.label_list(providers = [CcInfo], aspects = [_fuzz_srcs_aspect]),
        # Packages (and their subpackages) whose cc_library sources are
        # recompiled with coverage and sanitizers, e.g. "services/store".
        "instrument": attr.string_list(),
        # Source-based coverage instead of ASan/UBSan (for measuring, by hand).
        "coverage": attr.bool(default = False),
    },
)

def standalone_fuzzer(name, seeds = "", deps = [], linkopts = [], **kwargs):
    """A libFuzzer target as a cc_binary with //common/fuzz's standalone driver.

    Built by Bazel's own toolchain, so --config=asan runs it under ASan+UBSan.
    seeds: the target's function that hands the driver its built-in seeds (see
    common/fuzz/standalone_main.c); the other arguments are cc_binary's.
    """
    native.cc_binary(
        name = name,
        deps = deps + ["//common/fuzz:standalone_main"],
        linkopts = linkopts + _seeds_linkopts(seeds),
        **kwargs
    )
