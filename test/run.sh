#!/usr/bin/env bash
# Runs every test suite against one or more build trees (build, build/asan)
# and ends with one line: "N passed, N failed".
#   test/run.sh [--unit-only] BUILD [BUILD...]
set -uo pipefail
cd "$(dirname "$0")/.."

unit_only=0
if [ "${1:-}" = --unit-only ]; then unit_only=1; shift; fi
[ $# -gt 0 ] || set -- build

passed=0 failed=0 skipped=0 broken=()
log=$(mktemp -d /tmp/hcmd-test.XXXXXX)
trap 'rm -rf "$log"' EXIT
# Every daemon's output and every test key end up here (test/interop/lib/
# suitelog.js), for the secrets scan at the end.
export HC_SUITE_LOGDIR="$log/suite"

# Count TAP test points of one suite's output; a suite that exits non-zero
# with no failing test point still counts as one failure.
count() { # name file rc
  local p f s
  p=$(grep -cE '^\s*ok [0-9]+' "$2")
  f=$(grep -cE '^\s*not ok [0-9]+' "$2")
  s=$(grep -cE '^\s*ok [0-9]+.*# (SKIP|skip)' "$2")
  passed=$((passed + p - s)); failed=$((failed + f)); skipped=$((skipped + s))
  if [ "$3" != 0 ] && [ "$f" = 0 ]; then failed=$((failed + 1)); fi
  if [ "$3" != 0 ] || [ "$f" != 0 ]; then broken+=("$1"); fi
  printf '%-40s %4d passed %3d failed%s\n' "$1" "$((p - s))" "$f" \
    "$([ "$3" != 0 ] && echo " (exit $3)")"
}

# The 5-minute soak (test/soak) runs under ASan+UBSan with LeakSanitizer,
# in the background beside everything else, at a light load.
soak_pid=
for b in "$@"; do
  if [ $unit_only = 0 ] && [[ "$b" == *asan* ]] && [ -z "$soak_pid" ]; then
    (cd test/interop && HCRELAY="$PWD/../../$b/hcrelay" HCMD="$PWD/../../$b/hcmd" \
       SOAK_SECONDS="${SOAK_SECONDS:-300}" SOAK_PACE_MS=400 SOAK_STREAM_KIB=256 \
       timeout 900 node --test --test-reporter=tap ../soak/soak.test.js) >"$log/soak" 2>&1 &
    soak_pid=$!
    soak_build=$b
  fi
done

for b in "$@"; do
  for t in "$b"/test/test_*; do
    [ -x "$t" ] || continue
    name="$b/$(basename "$t")"
    CMOCKA_MESSAGE_OUTPUT=TAP "$t" >"$log/out" 2>&1
    rc=$?
    cat "$log/out"
    count "$name" "$log/out" "$rc"
  done
  [ $unit_only = 1 ] && continue
  # Fuzz corpora replayed under ASan+UBSan (gcc; no libFuzzer needed).
  if [[ "$b" == *asan* ]] && [ -x test/fuzz/replay.sh ]; then
    test/fuzz/replay.sh "$b" >"$log/out" 2>&1
    rc=$?
    cat "$log/out"
    count "$b:test/fuzz" "$log/out" "$rc"
  fi
  # Scripts that end with their own "N passed, N failed" line.
  if [ "$b" = "${1}" ]; then
    for sh in test/install.sh; do
      [ -x "$sh" ] || continue
      "$sh" "$b" >"$log/out" 2>&1
      rc=$?
      cat "$log/out"
      last=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log/out" | tail -1)
      p=$(echo "$last" | sed -E 's/^([0-9]+) passed.*/\1/'); f=$(echo "$last" | sed -E 's/.* ([0-9]+) failed.*/\1/')
      passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
      if [ "$rc" != 0 ] && [ "${f:-0}" = 0 ]; then failed=$((failed + 1)); fi
      if [ "$rc" != 0 ]; then broken+=("$sh"); fi
      printf '%-40s %4d passed %3d failed%s\n' "$sh" "${p:-0}" "${f:-0}" \
        "$([ "$rc" != 0 ] && echo " (exit $rc)")"
    done
  fi
  for suite in test/interop; do
    name="$b:$suite"
    (cd "$suite" && HCRELAY="$PWD/../../$b/hcrelay" HCMD="$PWD/../../$b/hcmd" \
       timeout 900 node --test --test-reporter=tap --test-concurrency=1) >"$log/out" 2>&1
    rc=$?
    cat "$log/out"
    count "$name" "$log/out" "$rc"
  done
done

if [ -n "$soak_pid" ]; then
  wait "$soak_pid"
  rc=$?
  cat "$log/soak"
  count "$soak_build:test/soak" "$log/soak" "$rc"
fi

# No key or SAS signature in anything hcmd or hcrelay printed, suite-wide.
if [ $unit_only = 0 ]; then
  node test/secrets-scan.js "$HC_SUITE_LOGDIR" >"$log/out" 2>&1
  rc=$?
  cat "$log/out"
  count "secrets scan" "$log/out" "$rc"
fi

echo
if [ ${#broken[@]} -gt 0 ]; then echo "failing suites: ${broken[*]}"; fi
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" = 0 ]
