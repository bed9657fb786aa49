#!/bin/sh
# Instructions per 17-byte rpmsg round trip, both sides summed, counted by
# callgrind over the loopback in one thread (no waiting): two runs that
# differ only in the number of round trips, so set-up cost cancels out;
# then the per-layer split of the longer run (self cost by source file);
# last, instructions per message of a one-way stream (rpmsg_trysend_more
# in bursts of 64), sender and receiver apart.
#   [ROUND_TRIP_ONLY=1] bench/callgrind-rpmsg.sh path/to/bench_rpmsg_ir
set -eu
bin=${1:?usage: $0 path/to/bench_rpmsg_ir}
command -v valgrind >/dev/null || { echo "callgrind: valgrind not installed (apt-get install valgrind)"; exit 0; }
. "$(dirname "$0")/callgrind-lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Instructions of one run with arguments $1, of $bin (its profile kept as
# $tmp/cg.ARGS for the splits below) or of the program $2.
ir() {
	out="$tmp/cg.$(echo "$1" | tr " " _)${2:+.$(basename "$2")}"
	# shellcheck disable=SC2086 # $1 is the arguments
	valgrind --tool=callgrind --callgrind-out-file="$out" "${2:-$bin}" $1 2>&1 >/dev/null |
		sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
small=2000
big=22000
a=$(ir $small)
b=$(ir $big)
per=$(( (b - a) / (big - small) ))
echo "rpmsg 17 B round trip under callgrind: $per instructions (both sides: send, notify, receive, echo, reply; $bin)"
# ROUND_TRIP_ONLY=1: this figure alone (bench/what-if.py counts many builds).
[ "${ROUND_TRIP_ONLY:-}" = 1 ] && exit 0
# The same with 32 more endpoints on each side, newer than the measured
# pair: what finding the destination costs when a device serves many.
a32=$(ir "$small rtt 32")
b32=$(ir "$big rtt 32")
echo "  with 32 more endpoints on each side: $(( (b32 - a32) / (big - small) )) instructions"
# The same found by polling the rings, as the link's polling loop finds
# it (duet_rvdev_poll), instead of the loopback's doorbell bits.
ar=$(ir "$small rings")
br=$(ir "$big rings")
echo "  found by polling the rings (the link's polling look): $(( (br - ar) / (big - small) )) instructions"
# The protocol's floor (bench_floor, built beside this binary): the same
# round trip with every check of the peer and none of duet's layers. What
# is above it is what the design adds.
floor="$(dirname "$bin")/bench_floor"
if [ -x "$floor" ]; then
	fa=$(ir $small "$floor")
	fb=$(ir $big "$floor")
	echo "  the protocol's floor (bench_floor: every check of the peer, none of the layers): $(( (fb - fa) / (big - small) )) instructions"
fi
# Per layer: self cost of each file in the big run minus the small run.
split() {
	callgrind_annotate --auto=no --inclusive=no --threshold=100 "$1" 2>/dev/null |
		awk '/PROGRAM TOTALS/ { next } /^ *[0-9,]+ .*[:(]/ { gsub(",", "", $1); n = $1; f = $0;
			layer = "other (libc, pthread, test loop)";
			if (f ~ /src\/virtqueue\/|include\/duet\/virtqueue\.h/) layer = "virtqueue";
			else if (f ~ /src\/rpmsg\//) layer = "rpmsg";
			else if (f ~ /src\/rptun\/|src\/loopback\/|src\/virtio\/|src\/vhost\//) layer = "transport (rvdev, loopback, buses)";
			else if (f ~ /src\/port\//) layer = "port (locks, clock)";
			else if (f ~ /memcpy|memmove|memset/) layer = "memcpy/memset";
			s[layer] += n } END { for (l in s) print l "\t" s[l] }'
}
split "$tmp/cg.$small" | sort > "$tmp/a"
split "$tmp/cg.$big" | sort > "$tmp/b"
join -t "$(printf '\t')" "$tmp/a" "$tmp/b" | awk -F '\t' -v d=$((big - small)) \
	'{ printf "  %-36s %6.0f\n", $1, ($3 - $2) / d }' | sort -k1
# Per function, the costliest first: where the round trip goes.
echo "by function, per round trip (the costliest; a function's calls are summed):"
byfunc_per "$tmp/cg.$small" "$tmp/cg.$big" $((big - small))
# The floor's own functions the same way, to set the pieces side by side
# (docs/performance.md, Why the misses): its sends, receive passes, batches
# and looks are functions of their own, its lock and rings inline in them.
if [ -x "$floor" ]; then
	echo "the floor by function, per round trip:"
	byfunc_per "$tmp/cg.$small.bench_floor" "$tmp/cg.$big.bench_floor" $((big - small))
fi
# A stream, per message and per side: the inclusive cost of the bench's
# send_burst and reclaim_burst (the sender, driver; its loop included) and
# receive_burst (the receiver, device; its counting callback included), the
# difference of two runs as above. Summed over the calls into the function
# ("=> file:name (Nx)"): with LTO its code is listed under the files it
# inlined (loopback.c:receive_burst, virtqueue.c:receive_burst), and the
# function's own lines would count it twice or, as before, not at all.
side() {
	callgrind_annotate --inclusive=yes "$1" 2>/dev/null |
		awk -v f="$2" '$0 ~ "=> [^ ]*:" f " [(]" { gsub(",", "", $1); s += $1 } END { print s + 0 }'
}
# The same with the messages sent by rpmsg_trysend_burst, 32 a call.
for kind in stream burst; do
	valgrind --tool=callgrind --callgrind-out-file="$tmp/st.a" "$bin" 64000 $kind >/dev/null 2>&1
	valgrind --tool=callgrind --callgrind-out-file="$tmp/st.b" "$bin" 640000 $kind >/dev/null 2>&1
	sent=$(( $(side "$tmp/st.b" send_burst) + $(side "$tmp/st.b" reclaim_burst) -
		$(side "$tmp/st.a" send_burst) - $(side "$tmp/st.a" reclaim_burst) ))
	got=$(( $(side "$tmp/st.b" receive_burst) - $(side "$tmp/st.a" receive_burst) ))
	how="rpmsg_trysend_more in bursts of 64"
	[ $kind = burst ] && how="rpmsg_trysend_burst, 32 a call"
	echo "rpmsg 17 B stream under callgrind, per message: sender $((sent / 576000)), receiver $((got / 576000)) instructions ($how)"
done
