# shellcheck shell=sh
# callgrind-lib.sh - sourced by the callgrind-*.sh scripts.
#   byfunc_per A B UNITS [LABEL]
# Self cost per function (code inlined into it included, whichever file it
# came from) in callgrind profile B minus profile A, divided by UNITS (the
# operations B ran more than A): the costliest first, those of 5 or more.
byfunc() {
	callgrind_annotate --auto=no --inclusive=no --threshold=100 "$1" 2>/dev/null |
		awk '/PROGRAM TOTALS/ { next } /^ *[0-9,]+ .*:/ { gsub(",", "", $1); n = $1;
			f = $0; sub(/ \[.*/, "", f); sub(/.*:/, "", f); s[f] += n }
			END { for (f in s) print f "\t" s[f] }'
}
byfunc_per() {
	byfunc "$1" | sort >"$1.func"
	byfunc "$2" | sort >"$2.func"
	join -t "$(printf '\t')" "$1.func" "$2.func" | awk -F '\t' -v d="$3" \
		'{ v = ($3 - $2) / d; if (v >= 5) printf "  %-36s %6.0f\n", $1, v }' | sort -k2 -n -r
}
