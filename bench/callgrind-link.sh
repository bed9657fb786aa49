#!/bin/sh
# Instructions per look of a polling loop on the real two-process link
# (duet_link_poll finding nothing), counted by callgrind on the server
# (bench_rpmsg looks N) while its proxy runs natively: two runs that differ
# only in N, so set-up cost cancels out. With rpmsg alone, then with the
# demo's two rng devices besides, idle (--rng): every look pays for every
# device, whether it carries anything or not. A look that finds a message
# pays the same before the message's own work. Last, a 17-byte round trip
# with both sides blocking at once (bench_rpmsg loop N --blocking): the
# server's user-space instructions per round trip, the link's wait, wake
# and dispatch included (the kernel's side of the futex is not counted).
#   bench/callgrind-link.sh path/to/bench_rpmsg
set -eu
bin=${1:?usage: $0 path/to/bench_rpmsg}
command -v valgrind >/dev/null || { echo "callgrind: valgrind not installed (apt-get install valgrind)"; exit 0; }
. "$(dirname "$0")/callgrind-lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The instructions callgrind collected in the server running bench_rpmsg $1;
# its profile goes to $2 if given.
ir() {
	# shellcheck disable=SC2086 # $1 is the arguments
	valgrind --tool=callgrind --callgrind-out-file="${2:-/dev/null}" "$bin" $1 2>&1 >/dev/null |
		sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
# Two kinds of empty look, each counted between two N on the same side of
# RVDEV_IDLE_LOOKS (65,536 empty looks in a row, src/rptun/rvdev.h), so
# that the looks before the boundary cancel out: a quiet look (the peer
# silent for a while, the look prefetching what it most likely sends
# next, as between the messages of sparse traffic) and an idle look (past
# the boundary: only a check whether anything came, as for a device
# nobody uses).
for extra in "" "--rng"; do
	what="rpmsg alone"
	[ -n "$extra" ] && what="rpmsg and two idle rng devices"
	a=$(ir "looks 1000 $extra" "$tmp/q1$extra")
	b=$(ir "looks 61000 $extra" "$tmp/q2$extra")
	q=$(( (b - a) / 60000 ))
	a=$(ir "looks 70000 $extra")
	b=$(ir "looks 270000 $extra")
	echo "link, polling, instructions per empty look under callgrind: quiet $q, idle $(( (b - a) / 200000 )) ($what; $bin)"
done
echo "by function, per quiet look (rpmsg alone; the costliest, a function's calls summed):"
byfunc_per "$tmp/q1" "$tmp/q2" 60000
small=2000
big=12000
a=$(ir "loop $small --blocking" "$tmp/b1")
b=$(ir "loop $big --blocking" "$tmp/b2")
echo "link, blocking, server's user-space instructions per 17 B round trip under callgrind: $(( (b - a) / (big - small) )) (send, wait, wake, dispatch, receive; $bin)"
echo "by function, per blocking round trip (the server; the costliest, a function's calls summed):"
byfunc_per "$tmp/b1" "$tmp/b2" $((big - small))
