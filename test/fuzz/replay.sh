#!/usr/bin/env bash
# Replays every fuzz corpus without libFuzzer: each test/fuzz/fuzz_NAME.c is
# linked with replay.c and BUILD/libhc.a by gcc with ASan+UBSan, then fed
# test/fuzz/corpus/NAME (and test/fuzz/crashes/NAME, kept reproducers).
# One test point per target; ends with "N passed, N failed".
#
#   test/fuzz/replay.sh [BUILD]      (default build/asan, from `make asan`)
#
# The binaries go to BUILD/fuzz-replay/. CC overrides gcc.
set -uo pipefail
cd "$(dirname "$0")/../.."

build=${1:-build/asan}
cc=${CC:-gcc}
out="$build/fuzz-replay"
cflags=(-std=c99 -D_GNU_SOURCE -Iinclude -g -O1 -fno-omit-frame-pointer
        -fsanitize=address,undefined -fno-sanitize-recover=undefined)
libs=(-luv -lmbedtls -lmbedx509 -lmbedcrypto -lwslay -linih -ljansson)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

srcs=(test/fuzz/fuzz_*.c)
passed=0 failed=0 i=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mkdir -p "$out"
echo "1..${#srcs[@]}"
# A library older than the headers gives struct layouts that disagree with
# the targets' (a bogus heap-buffer-overflow in fuzz_ws, for one).
if [ -f "$build/libhc.a" ] &&
   [ -n "$(find include src -name '*.[ch]' -newer "$build/libhc.a" | head -1)" ]; then
  echo "# warning: $build/libhc.a is older than include/ or src/: rebuild it"
fi
for src in "${srcs[@]}"; do
  i=$((i + 1))
  n=$(basename "$src" .c)
  name=${n#fuzz_}
  bin="$out/$n"
  if [ ! -f "$build/libhc.a" ]; then
    echo "not ok $i - $n: $build/libhc.a is missing (make asan)"
    failed=$((failed + 1))
    continue
  fi
  if ! "$cc" "${cflags[@]}" -o "$bin" "$src" test/fuzz/replay.c \
       "$build/libhc.a" "${libs[@]}" >"$log" 2>&1; then
    echo "not ok $i - $n: build failed"
    sed 's/^/# /' "$log"
    failed=$((failed + 1))
    continue
  fi
  dirs=("test/fuzz/corpus/$name")
  [ -d "test/fuzz/crashes/$name" ] && dirs+=("test/fuzz/crashes/$name")
  # An inner shell, so a report of "Aborted" lands in the log too.
  bash -c '"$@"; exit $?' - timeout 600 "$bin" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then
    echo "ok $i - $n: $(tail -1 "$log")"
    passed=$((passed + 1))
  else
    echo "not ok $i - $n (exit $rc)"
    tail -40 "$log" | sed 's/^/# /'
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ $failed = 0 ]
