#!/bin/sh
# Compare builds of bench_rpmsg on their one-way streams, on this noisy
# machine: run `stream --runs 3` of each binary in turn, N rounds, so that
# both see the same moments of the machine; print each run's M msg/s for
# every mode and send of the 17 B stream and MB/s of the largest, then the
# median per binary and row over the rounds.
#   bench/ab-stream.sh N old/bench_rpmsg new/bench_rpmsg [...]
# AB_MODE=blocking (or polling, backoff) runs that mode's rows only.
# Copy the binaries aside first: a rebuild between runs would change them.
set -eu
# One run of binary $1 in round $2: a line per row, mode-payload-send and
# its figure. Rows: | mode | payload | send | MB/s p50 | M msg/s | ...
each() {
	# shellcheck disable=SC2086 # the option and its value, or nothing
	"$1" stream --runs 3 ${AB_MODE:+--mode "$AB_MODE"} 2>&1 | awk -F'|' -v b="$1" -v r="$2" '
		$2 ~ /polling|backoff|hybrid|blocking/ {
			mode = $2; gsub(/ /, "", mode); send = $4; gsub(/^ +| +$/, "", send)
			gsub(/ /, "_", send); size = $3; gsub(/ /, "", size)
			v = size == "17B" ? $6 + 0 : $5 + 0
			printf "%s %s %s-%s-%s %s\n", b, r, mode, size, send, v }'
}
. "$(dirname "$0")/ab-lib.sh"
ab_rounds "$@"
echo "17 B rows in M msg/s, the largest payload's in MB/s; per run, then the median"
awk '{ k = $3; if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
       v[$1, k] = v[$1, k] " " $4; bins[$1] = 1 }
     END { for (i = 1; i <= nk; i++) for (b in bins) print keys[i], b, v[b, keys[i]] }' "$out" |
	while read -r row bin vals; do
		# shellcheck disable=SC2086
		med=$(printf '%s\n' $vals | sort -n | awk '{ a[NR] = $1 }
			END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }')
		printf '%-28s %-28s median %8s  runs %s\n' "$row" "$bin" "$med" "$vals"
	done | sort -s -k1,1
