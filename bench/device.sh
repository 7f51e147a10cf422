#!/usr/bin/env bash
# The bench on a lent many-core machine that has no Rust toolchain and no package
# registry (the 16-core table of BENCHMARKS.md). Here first:
#   make bench-device-pack      builds the library and the bench, and puts them with
#                               the library's soname into build/device
# then on the lent machine, from the repository root, with build/device carried along:
#   bash bench/device.sh        results in $OUT (or build/device/out): bench.log,
#                               results.csv, machine.txt
# and back here, the plot from its CSV:
#   bench/plot.sh <out>/results.csv docs/bench-threads-16.png
#
# Environment: SEATGATE_BENCH_SCENARIOS (default 1,2,3,4,6: every scenario timed at each
# thread count; 5 and 7 measure holders and bytes, which the 2-core table already has),
# SEATGATE_BENCH_THREADS (default: 1, 2, 4, 8 ... then every core), SEATGATE_DEVICE_LIMIT
# (seconds the bench may run, default 540, under the device's 10-minute command limit;
# the CSV is written row by row, so a run cut short keeps what it measured).
set -euo pipefail

dir=${SEATGATE_DEVICE_DIR:-build/device}
out=${OUT:-$dir/out}
limit=${SEATGATE_DEVICE_LIMIT:-540}
if [ ! -x "$dir/bench" ] || ! ls "$dir"/libseatgate.so* >/dev/null 2>&1; then
  echo "device: $dir has no bench or library: run 'make bench-device-pack' first and carry $dir" >&2
  exit 2
fi
mkdir -p "$out"

export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# The bench must load the carried library, not one its build-time rpath names.
lib=$(ldd "$dir/bench" | awk '/libseatgate/ { print $3 }')
case "$lib" in
  "$dir"/*) ;;
  *) echo "device: the bench would load '${lib:-nothing}', not $dir's library" >&2; exit 2 ;;
esac

{
  echo "cores: $(nproc)"
  lscpu 2>/dev/null || true
  echo "library: $lib ($(stat -c %s "$lib") bytes)"
} >"$out/machine.txt"

export SEATGATE_BENCH_SCENARIOS=${SEATGATE_BENCH_SCENARIOS:-1,2,3,4,6}
export SEATGATE_BENCH_CSV="$out/results.csv"
rc=0
timeout -s INT "$limit" stdbuf -oL "$dir/bench" >"$out/bench.log" 2>&1 || rc=$?
tail -n 40 "$out/bench.log"
# The one-type targets (printed after scenario 1), where a short output tail shows them.
sed -n '/targets for one contended type/,/^$/p' "$out/bench.log"
case $rc in
  0) echo "device: bench done; $(($(wc -l <"$out/results.csv") - 1)) rows in $out/results.csv" ;;
  124) echo "device: the bench ran past ${limit}s and was stopped; $out/results.csv keeps the rows measured" >&2 ;;
  *) echo "device: the bench failed (exit $rc); see $out/bench.log" >&2 ;;
esac
exit "$rc"
