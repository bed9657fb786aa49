#!/bin/sh
# Compare builds of bench_rpmsg on this noisy machine: run `rtt --runs 3`
# of each binary in turn, N rounds, so that both see the same moments of
# the machine; print each run's 17 B polling and hybrid p50 with its ratio
# to the spin yardstick of the same run, then the medians per binary.
#   bench/ab-rtt.sh N old/bench_rpmsg new/bench_rpmsg [...]
# Copy the binaries aside first: a rebuild between runs would change them.
set -eu
# One run of binary $1: its spin, polling and hybrid p50 and the ratios.
each() {
	"$1" rtt --runs 3 2>&1 | awk -v b="$1" -F'|' '
		/spin ping/ { s = $3 } /17 B round trip, polling/ { p = $3 }
		/17 B round trip, hybrid/ { h = $3 }
		END { if (s > 0) printf "%s %.2f %.2f %.2f %.2f %.2f\n", b, s, p, p / s, h, h / s }'
}
. "$(dirname "$0")/ab-lib.sh"
ab_rounds "$@"
shift # the binaries are left
echo "binary  spin  polling (x spin)  hybrid (x spin), us p50 per run"
awk '{ printf "%s  %s  %s (%s)  %s (%s)\n", $1, $2, $3, $4, $5, $6 }' "$out"
# The median of column $2 over the runs of binary $1.
median() {
	awk -v b="$1" -v c="$2" '$1 == b { print $c }' "$out" | sort -n |
		awk '{ v[NR] = $1 }
		     END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
for b in "$@"; do
	echo "median $b: polling $(median "$b" 3) us ($(median "$b" 4)x spin)," \
		"hybrid $(median "$b" 5) us ($(median "$b" 6)x spin)"
done
