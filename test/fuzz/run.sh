#!/usr/bin/env bash
# Runs every libFuzzer target one after the other for a bounded time and
# reports, per target, the executions (total and per second) from
# libFuzzer's final stats, the corpus size, and any crash.
#
#   test/fuzz/run.sh [--seconds N] [--only NAME[,NAME...]] [--merge] [BUILD]
#
#   BUILD      where `make fuzz-bin` put the targets (default build/fuzz)
#   --seconds  time per target (default 60); 0 fuzzes nothing (with
#              --merge: only minimise what earlier runs found)
#   --only     run only these targets (names without "fuzz_")
#   --merge    afterwards, minimise each committed seed corpus with
#              -merge=1 over it and the inputs found (test/fuzz/corpus/NAME
#              is replaced; check the total size before committing)
#
# New inputs go to BUILD/corpus/NAME (test/fuzz/corpus/NAME is only read),
# crashes to BUILD/artifacts/NAME/, libFuzzer's output to BUILD/logs/.
# Exits non-zero when any target crashed or reported a sanitizer error.
set -uo pipefail
cd "$(dirname "$0")/../.."

seconds=60 only="" merge=0 build=build/fuzz
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=${2:?--seconds needs a number}; shift 2 ;;
    --seconds=*) seconds=${1#*=}; shift ;;
    --only) only=${2:?--only needs names}; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --merge) merge=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) build=$1; shift ;;
  esac
done
case "$seconds" in ''|*[!0-9]*) echo "run.sh: --seconds N" >&2; exit 2 ;; esac

# Largest input per target: heads and files get more room.
max_len() {
  case "$1" in
    conf|http_request|http_response|json_ctl|hosts) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

targets=()
for t in "$build"/fuzz_*; do
  [ -x "$t" ] || continue
  n=${t##*/fuzz_}
  if [ -n "$only" ] && [[ ",$only," != *",$n,"* ]]; then continue; fi
  targets+=("$n")
done
if [ ${#targets[@]} -eq 0 ]; then
  echo "run.sh: no fuzz targets in $build (run 'make fuzz-bin' first)" >&2
  exit 2
fi

mkdir -p "$build/logs"
crashed=()
printf '%-14s %12s %9s %8s %10s  %s\n' target execs exec/s files bytes result
for n in "${targets[@]}"; do
  bin="$build/fuzz_$n" log="$build/logs/$n.log"
  work="$build/corpus/$n" art="$build/artifacts/$n/"
  seeds="test/fuzz/corpus/$n" dict="test/fuzz/dict/$n.dict"
  mkdir -p "$work" "$art" "$seeds"
  opts=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10
        -rss_limit_mb=2048 -max_len="$(max_len "$n")"
        -artifact_prefix="$art")
  [ -f "$dict" ] && opts+=(-dict="$dict")
  if [ "$seconds" = 0 ]; then
    printf '%-14s %12s %9s %8s %10s  %s\n' "$n" - - \
      "$(find "$work" "$seeds" -type f | wc -l)" - "not run"
    continue
  fi
  "$bin" "${opts[@]}" "$work" "$seeds" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  if [ -z "$execs" ]; then # no final stats: take the last status line
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    execs=$(echo "$last" | sed -E 's/^#([0-9]+).*/\1/')
    rate=$(echo "$last" | sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p')
  fi
  files=$(find "$work" "$seeds" -type f | wc -l)
  bytes=$(find "$work" "$seeds" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}')
  result=ok
  if [ "$rc" != 0 ] || grep -qE '^==[0-9]+==ERROR|runtime error:|fuzz check failed' "$log" ||
     [ -n "$(ls -A "$art" 2>/dev/null)" ]; then
    result="CRASH (exit $rc; log $log; inputs in $art)"
    crashed+=("$n")
  fi
  printf '%-14s %12s %9s %8s %10s  %s\n' "$n" "${execs:-?}" "${rate:-?}" \
    "$files" "$bytes" "$result"
done

if [ $merge = 1 ]; then
  echo
  for n in "${targets[@]}"; do
    seeds="test/fuzz/corpus/$n" tmp=$(mktemp -d "$build/merge-$n.XXXXXX")
    if "$build/fuzz_$n" -merge=1 -max_len="$(max_len "$n")" \
         "$tmp" "$seeds" "$build/corpus/$n" >"$build/logs/$n.merge.log" 2>&1; then
      rm -f "$seeds"/* && cp "$tmp"/* "$seeds"/ 2>/dev/null
      echo "merged $n: $(ls "$seeds" | wc -l) files," \
        "$(find "$seeds" -type f -printf '%s\n' | awk '{s+=$1} END {print s+0}') bytes"
    else
      echo "merge of $n failed (see $build/logs/$n.merge.log)"
      crashed+=("$n-merge")
    fi
    rm -rf "$tmp"
  done
  echo "committed corpus: $(find test/fuzz/corpus -type f -printf '%s\n' |
    awk '{s+=$1} END {print s+0}') bytes"
fi

echo
if [ ${#crashed[@]} -gt 0 ]; then
  echo "${#targets[@]} targets, ${#crashed[@]} crashed: ${crashed[*]}"
  exit 1
fi
echo "${#targets[@]} targets, 0 crashed"
