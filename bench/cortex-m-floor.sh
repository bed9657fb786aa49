#!/bin/sh
# The protocol's floor (bench/floor.c: rpmsg over two split rings, every
# check of the peer, none of duet's layers) on a Cortex-M4 under QEMU with
# -icount shift=0, counted as bench/cortex-m.sh counts duet's round trip,
# at -Os and -O2, on the same rig (whose core the floor does not call).
#   bench/cortex-m-floor.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/bench-cortex-m-floor}
for opt in -Os -O2; do
	echo "== built with $opt"
	OPT=$opt sh "$top/tests/cortex-m/run.sh" "$out$opt" \
		"bench/bench_cortex_m_floor.c bench/floor.c" -icount shift=0
done
