#!/bin/sh
# Instructions per rpmsg round trip on a Cortex-M4 (bench/bench_cortex_m.c)
# under QEMU with -icount shift=0, one instruction per virtual nanosecond:
# the core built for size (-Os, as the size figures are), then for speed
# (-O2, the virtqueue's short paths on).
#   bench/cortex-m.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/bench-cortex-m}
for opt in -Os -O2; do
	echo "== built with $opt"
	OPT=$opt sh "$top/tests/cortex-m/run.sh" "$out$opt" bench/bench_cortex_m.c -icount shift=0
done
