#!/usr/bin/env bash
# Runs a fuzzer for a few seconds, as a test: the libFuzzer build or the
# standalone driver (standalone_main.c), which take the same command line.
# Fails on a crash, a sanitizer report or a violated property (the reproducer
# lands in the test's undeclared outputs), or when it ran too few inputs.
# Usage: fuzz_test.sh FUZZER SECONDS [NAME=VALUE...] [INPUT_DIR...]
#   NAME=VALUE  exported to the fuzzer; "@CORPUS@" in VALUE is the corpus
#               directory, e.g. KEEL_API_FUZZ_SEEDS=@CORPUS@ has the target
#               write its built-in seeds there for libFuzzer to start from.
#   INPUT_DIR   run at the start (reproducers of past findings) and joins the
#               corpus.
set -euo pipefail
bin="$1"
secs="$2"
shift 2
work="${TEST_TMPDIR:-$(mktemp -d)}"
corpus="$work/corpus"
mkdir -p "$corpus"
log="$work/fuzz.log"
artifacts="${TEST_UNDECLARED_OUTPUTS_DIR:-$work}/"
dirs=()
for arg in "$@"; do
  case "$arg" in
    [A-Za-z_]*=*)
      value="${arg#*=}"
      export "${arg%%=*}=${value//@CORPUS@/$corpus}"
      ;;
    *) dirs+=("$arg") ;;
  esac
done
if ! "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=20 -rss_limit_mb=4096 \
    -artifact_prefix="$artifacts" "$corpus" "${dirs[@]}" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "FAIL: the fuzzer found a crash or a violated property (log above; reproducer under $artifacts)"
  exit 1
fi
# The run's summary: libFuzzer's or the driver's, and the target's own lines.
grep -E "^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec|INFO: Seed|standalone driver|^[a-z_]+fuzz: " "$log" || true
grep -E "^#[0-9]+[[:space:]]+INITED.*cov:" "$log" | tail -n 1 || true
execs="$(sed -n -E 's/^stat::number_of_executed_units: *([0-9]+)/\1/p; s/^#([0-9]+)[[:space:]]+DONE.*/\1/p' "$log" | tail -n 1)"
echo "$(basename "$bin"): ${execs:-0} executions in ${secs}s"
[ "${execs:-0}" -gt 100 ] || { echo "FAIL: too few executions"; tail -n 30 "$log"; exit 1; }
