#!/usr/bin/env bash
# The whole test suite. Installs what is missing (tools/setup.sh), then runs
# every Bazel test twice: a plain build (which also runs the valgrind tests) and
# an ASan+UBSan build (--config=asan). Ends with one line "N passed, N failed"
# counting test targets per configuration; exits non-zero on any failure.
#
# Usage: tools/test.sh [extra bazel flags]     e.g. tools/test.sh --test_filter=...
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

bash tools/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/keel-test.XXXXXX")"
trap 'rm -rf "$LOGDIR"' EXIT

COMMON=(
  --keep_going
  --test_output=errors
  "--test_env=KEEL_NODE_MODULES=$ROOT/tools/npm/node_modules"
  "$@"
)

total_pass=0
total_fail=0

# run_pass NAME BAZEL_ARGS...: runs one configuration and adds up its results.
run_pass() {
  local name="$1"
  shift
  local log="$LOGDIR/$name.log"
  echo "=== $name: bazel test $*"
  bazel test "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local pass fail
  pass=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
  fail=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|FLAKY|INCOMPLETE)' "$log")
  # A build failure or a crash of Bazel itself (exit codes other than 0 and 3,
  # "some tests failed") counts as a failure even when no test line says so.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  if [ "$rc" -eq 3 ] && [ "$fail" -eq 0 ]; then fail=1; fi
  echo "=== $name: $pass passed, $fail failed"
  total_pass=$((total_pass + pass))
  total_fail=$((total_fail + fail))
}

run_pass plain "${COMMON[@]}" //...
# valgrind and ASan cannot share a process; benchmarks never run as tests.
run_pass asan --config=asan --test_tag_filters=-valgrind "${COMMON[@]}" //...

echo "${total_pass} passed, ${total_fail} failed"
[ "$total_fail" -eq 0 ]
