#!/usr/bin/env bash
# Draws throughput against threads for bench scenarios 1 (one type) and 2 (3-type
# bundle) from the bench's CSV: seatgate memory and shm, the global lock, the rwlock
# list and the bare atomic, log y-axis, the runs' range as error bars.
#   bench/plot.sh [results.csv] [out.png]      (make bench runs it)
# gnuplot comes from `scripts/setup.sh bench` (Debian's gnuplot-nox).
set -euo pipefail

csv=${1:-build/bench/results.csv}
out=${2:-docs/bench-threads.png}

if ! command -v gnuplot >/dev/null 2>&1; then
  echo "plot: gnuplot is not installed; run scripts/setup.sh bench" >&2
  exit 1
fi
if [ ! -s "$csv" ]; then
  echo "plot: $csv is missing or empty; run the bench first" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/seatgate-plot-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Columns of the CSV, by name, so a new column does not break the plot.
col() { head -n1 "$csv" | tr ',' '\n' | grep -nx "$1" | cut -d: -f1; }
c_scen=$(col scenario); c_impl=$(col implementation); c_thr=$(col threads)
c_ops=$(col ops_per_s); c_min=$(col ops_per_s_min); c_max=$(col ops_per_s_max)
for c in "$c_scen" "$c_impl" "$c_thr" "$c_ops" "$c_min" "$c_max"; do
  [ -n "$c" ] || { echo "plot: $csv lacks a column the plot needs" >&2; exit 1; }
done

impls="seatgate-memory seatgate-shm global-lock rwlock-list bare-atomic"
for scen in 1-one-type 2-bundle; do
  for impl in $impls; do
    awk -F, -v s="$scen" -v i="$impl" -v a="$c_scen" -v b="$c_impl" -v t="$c_thr" \
        -v o="$c_ops" -v lo="$c_min" -v hi="$c_max" \
        'NR > 1 && $a == s && $b == i { print $t, $o, $lo, $hi }' "$csv" | sort -n >"$tmp/$scen.$impl.dat"
    if [ ! -s "$tmp/$scen.$impl.dat" ]; then
      echo "plot: no $impl rows for scenario $scen in $csv" >&2
      exit 1
    fi
  done
done
max_threads=$(awk -F, -v t="$c_thr" 'NR > 1 && $t > m { m = $t } END { print m + 0 }' "$csv")
# One y range for both panels (whole decades), so they compare at a glance.
read -r ymin ymax < <(cat "$tmp"/*.dat | awk '
  NR == 1 { lo = $3; hi = $4 }
  { if ($3 < lo) lo = $3; if ($4 > hi) hi = $4 }
  END { printf "%g %g\n", 10 ^ int(log(lo) / log(10) - (lo < 1 ? 1 : 0)), 10 ^ (int(log(hi) / log(10)) + 1) }')
# The cores of the machine that ran the bench (the CSV may come from another one).
cores=$(grep -o '^0-timer,.*cores=[0-9]*' "$csv" | sed 's/.*cores=//' || true)
cores=${cores:-$(nproc)}
quick=""
if grep -q '^0-timer,.*quick=1' "$csv"; then quick=" (QUICK run: a smoke test, not figures)"; fi

mkdir -p "$(dirname "$out")"
gnuplot <<EOF
set terminal pngcairo size 1400,600 font "DejaVu Sans,11" noenhanced
set output "$out"
set multiplot layout 1,2 title "seatgate bench$quick: acquire+release pairs per second, all threads together (median of the runs, bars: their range)\\n$cores cores, $(date -u +%Y-%m-%d), from $(basename "$csv")"
set logscale y 10
set logscale x 2
set xrange [0.8:$max_threads * 1.25]
set xtics 2
set format y "%.0s%c"
set grid ytics mytics xtics
set xlabel "threads"
set ylabel "pairs / s"
set yrange [$ymin:$ymax]
set bmargin 7
set key at screen 0.5, 0.03 center bottom horizontal maxcols 5 width 1
set style data yerrorlines
set linetype 1 lc rgb "#1f4e9c"
set linetype 2 lc rgb "#49a6e0"
set linetype 3 lc rgb "#d62728"
set linetype 4 lc rgb "#ff9f1c"
set linetype 5 lc rgb "#7f7f7f"
lbl(i) = i eq "seatgate-memory" ? "seatgate memory" : i eq "seatgate-shm" ? "seatgate shm" : i eq "global-lock" ? "global lock (mod_hash)" : i eq "rwlock-list" ? "rwlock list (Asterisk GROUP)" : "bare atomic"
set title "1: one contended type (callcenter)"
plot for [i in "$impls"] "$tmp/1-one-type.".i.".dat" using 1:2:3:4 title lbl(i) lw 2 pt 7
unset key
set title "2: 3-type bundle (operator = user+callcenter+extension)"
plot for [i in "$impls"] "$tmp/2-bundle.".i.".dat" using 1:2:3:4 title lbl(i) lw 2 pt 7
unset multiplot
EOF
echo "plot: wrote $out from $csv"
