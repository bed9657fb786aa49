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
for b in "$@"; do
	for col in 3 4 5 6; do
		awk -v b="$b" -v c="$col" '$1 == b { print $c }' "$out" | sort -n |
			awk '{ v[NR] = $1 } END { printf "%s ", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
	done | awk -v b="$b" '{ printf "median %s: polling %s us (%sx spin), hybrid %s us (%sx spin)\n", b, $1, $2, $3, $4 }'
done
