# shellcheck shell=sh
# ab-lib.sh - sourced by the ab-*.sh scripts: run the caller's `each BINARY
# ROUND` for every binary in turn, N rounds, so that all of them see the
# same moments of this noisy machine; the lines it prints go to $out (a
# temporary file, removed on exit).
#   . bench/ab-lib.sh; ab_rounds "$@"   (arguments: N binary...)
ab_rounds() {
	n=${1:?usage: $0 N binary...}
	shift
	[ $# -ge 1 ] || { echo "usage: $0 N binary..."; exit 1; }
	out=$(mktemp)
	trap 'rm -f "$out"' EXIT
	i=0
	while [ "$i" -lt "$n" ]; do
		for b in "$@"; do
			each "$b" "$i"
		done
		i=$((i + 1))
	done >"$out"
}
