#!/bin/sh
# Compare builds of bench_rpmsg on this noisy machine: run `rtt --runs 3`
# of each binary in turn, N rounds, so that both see the same moments of
# the machine; print each run's 17 B polling and hybrid p50 with its ratio
# to the spin yardstick of the same run, then the medians per binary.
#   bench/ab-rtt.sh N old/bench_rpmsg new/bench_rpmsg [...]
# Copy the binaries aside first: a rebuild between runs would change them.
set -eu
n=${1:?usage: $0 N binary...}
shift
[ $# -ge 1 ] || { echo "usage: $0 N binary..."; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=0
while [ "$i" -lt "$n" ]; do
	for b in "$@"; do
		"$b" rtt --runs 3 2>&1 | awk -v b="$b" -F'|' '
			/spin ping/ { s = $3 } /17 B round trip, polling/ { p = $3 }
			/17 B round trip, hybrid/ { h = $3 }
			END { if (s > 0) printf "%s %.2f %.2f %.2f %.2f %.2f\n", b, s, p, p / s, h, h / s }'
	done
	i=$((i + 1))
done >"$out"
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
