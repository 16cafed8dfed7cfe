#!/usr/bin/env bash
# Runs the JSON mapping fuzzer (libFuzzer build when clang supports
# -fsanitize=fuzzer, else the standalone driver) for a few seconds from the
# built-in seeds; fails on a crash, a sanitizer report or a violated property.
# Usage: protojson_fuzz_test.sh FUZZER [SECONDS [INPUT_DIR...]]
set -euo pipefail
bin="$1"
secs="${2:-5}"
shift $(($# < 2 ? $# : 2))
work="${TEST_TMPDIR:-$(mktemp -d)}"
corpus="$work/corpus"
mkdir -p "$corpus"
log="$work/fuzz.log"
# Crash reproducers land in the test's undeclared outputs when Bazel runs it.
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/"
if ! KEEL_PROTOJSON_FUZZ_SEEDS="$corpus" "$bin" -max_total_time="$secs" -print_final_stats=1 \
    -timeout=20 -rss_limit_mb=4096 -artifact_prefix="$artifacts" "$corpus" "$@" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "FAIL: the fuzzer found a crash or a violated property (log above; reproducer under $artifacts)"
  exit 1
fi
grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|INFO: Seed|standalone driver" "$log" || true
grep -E "^#[0-9]+[[:space:]]+INITED.*cov:" "$log" | tail -n 1 || true
execs="$(sed -n -E 's/^stat::number_of_executed_units: *([0-9]+)/\1/p; s/^#([0-9]+)[[:space:]]+DONE.*/\1/p' "$log" | tail -n 1)"
echo "protojson_fuzz: ${execs:-0} executions in ${secs}s"
[ "${execs:-0}" -gt 100 ] || { echo "FAIL: too few executions"; tail -n 30 "$log"; exit 1; }
