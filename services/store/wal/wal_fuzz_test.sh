#!/usr/bin/env bash
# Runs the WAL recovery fuzzer (libFuzzer build when clang supports
# -fsanitize=fuzzer, else the standalone driver) for a few seconds from a seed
# corpus that gets past the checksums, and prints how many inputs it executed.
# Usage: wal_fuzz_test.sh FUZZER [SECONDS]
set -euo pipefail
bin="$1"
secs="${2:-4}"
work="${TEST_TMPDIR:-$(mktemp -d)}"
corpus="$work/corpus"
mkdir -p "$corpus"
log="$work/fuzz.log"
if ! KEEL_WAL_FUZZ_SEEDS="$corpus" "$bin" -max_total_time="$secs" -print_final_stats=1 \
    -timeout=20 -rss_limit_mb=4096 "$corpus" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "FAIL: the fuzzer found a crash or a violated property (log above)"
  exit 1
fi
grep -E "^#[0-9]+ +DONE|stat::number_of_executed_units|stat::average_exec_per_sec|INFO: Seed|standalone driver" "$log" || true
execs="$(sed -n -E 's/^stat::number_of_executed_units: *([0-9]+)/\1/p; s/^#([0-9]+) +DONE.*/\1/p' "$log" | tail -n 1)"
echo "wal_fuzz: ${execs:-0} executions in ${secs}s"
[ "${execs:-0}" -gt 100 ] || { echo "FAIL: too few executions"; tail -n 30 "$log"; exit 1; }
