#!/bin/sh
# The protocol's floor (bench/floor.c: rpmsg over two split rings, every
# check of the peer, none of duet's layers) on a Cortex-M4 under QEMU,
# counted as bench/cortex-m.sh counts duet's round trip, at -Os and -O2.
# Its own image: the floor, the board and newlib, not duet's core. Without
# the cross compiler, newlib or QEMU it says so in one line and runs nothing.
#   bench/cortex-m-floor.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/bench-cortex-m-floor}
cc=arm-none-eabi-gcc
qemu=qemu-system-arm
for t in $cc $qemu; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "cortex-m-floor: $t not found, NOT RUN (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
		exit 0
	}
done
[ -f "$($cc -print-file-name=librdimon.a)" ] || {
	echo "cortex-m-floor: newlib for $cc not found, NOT RUN (apt-get install libnewlib-arm-none-eabi)"
	exit 0
}
for opt in -Os -O2; do
	echo "== built with $opt"
	mkdir -p "$out$opt"
	$cc -std=c11 $opt -g -mcpu=cortex-m4 -mthumb -mfloat-abi=soft -ffunction-sections \
		-fdata-sections -Wall -Wextra -Werror -I"$top/include" --specs=rdimon.specs \
		-nostartfiles -T "$top/tests/cortex-m/mps2.ld" -Wl,--gc-sections \
		"$top/bench/floor.c" "$top/bench/bench_cortex_m_floor.c" "$top/tests/cortex-m/board.c" \
		-o "$out$opt/floor.elf"
	timeout 300 $qemu -M mps2-an386 -nographic -monitor none -serial none \
		-semihosting-config enable=on,target=native -icount shift=0 -kernel "$out$opt/floor.elf"
done
