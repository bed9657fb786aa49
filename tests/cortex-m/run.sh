#!/bin/sh
# Build the core with the bare-metal port for a Cortex-M4 (arm-none-eabi-gcc,
# newlib with semihosting) and run a program on the rig (rig.h) on QEMU's
# mps2-an386: tests/cortex-m/main.c, or the one given (a path from the top;
# a program of several files: their paths in one argument, separated by
# spaces), with QEMU's extra arguments after it. Its exit status is the
# program's.
# Without the cross compiler, newlib or QEMU it says so in one line and runs
# nothing.
#   [OPT=-O2] tests/cortex-m/run.sh [outdir ["program.c ..." [qemu args...]]]
# OPT: the optimisation flag (default -Os).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build/cortex-m}
prog=${2:-tests/cortex-m/main.c}
if [ $# -gt 2 ]; then shift 2; else set --; fi
cc=arm-none-eabi-gcc
qemu="qemu-system-arm"
for t in $cc $qemu; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "cortex-m: $t not found, NOT RUN (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)"
		exit 0
	}
done
[ -f "$($cc -print-file-name=librdimon.a)" ] || {
	echo "cortex-m: newlib for $cc not found, NOT RUN (apt-get install libnewlib-arm-none-eabi)"
	exit 0
}
list() { sed -n "/^set($1/,/^)/s|^ *\(src/[a-z_/]*\.c\)\$|\1|p" "$top/CMakeLists.txt"; }
srcs="$(list DUET_CORE_SOURCES) $(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES)
	src/rng/virtio_rng.c src/rng/vhost_rng.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_driver.c
	src/rpmsg/rpmsg_device.c src/rpmsg/rpmsg_ping.c src/port/bare/port_bare.c"
flags="-std=c11 ${OPT:--Os} -g -mcpu=cortex-m4 -mthumb -mfloat-abi=soft
	-ffunction-sections -fdata-sections -Wall -Wextra -Werror -I$top/include"
rm -rf "$out"
mkdir -p "$out"
# shellcheck disable=SC2086
for s in $srcs $prog tests/cortex-m/rig.c tests/cortex-m/board.c; do
	$cc $flags -c "$top/$s" -o "$out/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
done
# shellcheck disable=SC2086
$cc $flags --specs=rdimon.specs -nostartfiles -T "$top/tests/cortex-m/mps2.ld" \
	-Wl,--gc-sections "$out"/*.o -o "$out/duet-cortex-m.elf"
echo "cortex-m: image $(arm-none-eabi-size "$out/duet-cortex-m.elf" | awk 'NR == 2 { print $1 " B text, " $2 + $3 " B data+bss" }') (core, port, test, newlib)"
timeout 300 $qemu -M mps2-an386 -nographic -monitor none -serial none \
	-semihosting-config enable=on,target=native "$@" -kernel "$out/duet-cortex-m.elf"
