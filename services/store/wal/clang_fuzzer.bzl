"""clang_fuzzer: a libFuzzer binary built with clang outside Bazel's C toolchain.

Bazel's auto-configured toolchain here is gcc, which has no -fsanitize=fuzzer.
This rule compiles `srcs` with clang (-fsanitize=fuzzer,address,undefined, so
they get coverage feedback) and links them against `deps`' headers and static
libraries, taken from their CcInfo (which respects visibility, unlike reaching
for other packages' source files). Without a clang that supports
-fsanitize=fuzzer it builds `srcs` + `fallback_main` with cc instead: a
standalone driver with the same command line.
"""

def _clang_fuzzer_impl(ctx):
    cc = cc_common.merge_cc_infos(cc_infos = [d[CcInfo] for d in ctx.attr.deps])
    # Include paths of the dependencies (virtual includes, generated roots).
    cctx = cc.compilation_context
    incs = ["-I."]
    dirs = cctx.includes.to_list() + cctx.quote_includes.to_list()
    for d in dirs + cctx.system_includes.to_list():
        incs.append("-I" + d)
    libs = []
    flags = []
    for li in cc.linking_context.linker_inputs.to_list():
        for lib in li.libraries:
            f = lib.pic_static_library or lib.static_library
            if f:
                libs.append(f)
        flags.extend(li.user_link_flags)
    srcs = [f for f in ctx.files.srcs if f.extension == "c"]
    out = ctx.actions.declare_file(ctx.label.name)
    main = ctx.file.fallback_main
    args = " ".join(incs)
    link = " ".join(["-Wl,--start-group"] + [l.path for l in libs] + ["-Wl,--end-group"] + flags)
    src_paths = " ".join([s.path for s in srcs])
    cmd = """
set -e
probe='int LLVMFuzzerTestOneInput(const char *d, unsigned long n) {{ (void)d; (void)n; return 0; }}'
if command -v clang >/dev/null 2>&1 &&
   echo "$probe" | clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
  clang -std=gnu11 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \\
    -fno-sanitize-recover=undefined {args} {srcs} {link} -lpthread -o {out}
else
  # Dependencies built with --config=asan need the sanitizer runtimes too.
  cc -std=gnu11 -g -O1 {args} {srcs} {main} {link} -lpthread -o {out} 2>/dev/null ||
    cc -std=gnu11 -g -O1 -fsanitize=address,undefined {args} {srcs} {main} {link} -lpthread -o {out}
fi
""".format(args = args, srcs = src_paths, link = link, out = out.path, main = main.path)
    ctx.actions.run_shell(
        inputs = depset(ctx.files.srcs + [main] + libs, transitive = [cctx.headers]),
        outputs = [out],
        command = cmd,
        use_default_shell_env = True,
        mnemonic = "ClangFuzzer",
        progress_message = "Building libFuzzer binary %s" % ctx.label,
    )
    return [DefaultInfo(files = depset([out]), executable = out)]

clang_fuzzer = rule(
    implementation = _clang_fuzzer_impl,
    executable = True,
    attrs = {
        "srcs": attr.label_list(allow_files = [".c", ".h"]),
        "fallback_main": attr.label(allow_single_file = [".c"], mandatory = True),
        "deps": attr.label_list(providers = [CcInfo]),
    },
)
