#!/bin/bash
# Instructions a login+logout pair, per mode of the pinned loop (bench/pinned.c),
# counted by valgrind's callgrind: the difference between a run of LONG pairs and a
# run of SHORT pairs, over their difference, so that start-up and shutdown cancel out.
# Unlike time, the count repeats from run to run (within about ±10 a pair: the user
# index's random seed moves its probes), which makes it the measure to compare two
# builds by on a noisy machine. BENCHMARKS.md's "instructions a pair" are this.
#
#   bash bench/count.sh [PINNED [CONFIG]]
#   SHORT=20000 LONG=120000 MODES="quiet listener alerts thresh tenant" (the defaults)
#   LIB=DIR: count the library in DIR instead (its libseatgate.so.0.1, found first
#   through LD_LIBRARY_PATH), e.g. an older build kept aside.
set -euo pipefail
pinned=${1:-build/bench/pinned}
config=${2:-bench/pinned.toml}
short=${SHORT:-20000}
long=${LONG:-120000}
modes=${MODES:-quiet listener alerts thresh tenant}
command -v valgrind >/dev/null || { echo "count.sh: valgrind is needed (scripts/setup.sh installs it)" >&2; exit 1; }
[ "$long" -gt "$short" ] || { echo "count.sh: LONG must be more than SHORT" >&2; exit 1; }
refs() {
    local out
    out=$(${LIB:+env LD_LIBRARY_PATH=$LIB} valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$pinned" "$config" "$1" 1 "$2" 2>&1) || { echo "$out" >&2; echo "count.sh: the pinned loop failed" >&2; exit 1; }
    echo "$out" | sed -n 's/.*refs: *//p' | tr -d ,
}
for mode in $modes; do
    a=$(refs "$short" "$mode")
    b=$(refs "$long" "$mode")
    echo "$mode: $(( (b - a) / (long - short) )) instructions a pair"
done
