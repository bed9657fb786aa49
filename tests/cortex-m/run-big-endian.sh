#!/bin/sh
# The Cortex-M test (tests/cortex-m/main.c, the same rig and bare-metal
# port) on a big-endian 32-bit core: built for 32-bit PowerPC as a static
# Linux program (board_linux.c) and run under QEMU's user mode. It is the
# only run of the byte swaps the wire needs on such a core: every other
# build is little-endian, where they compile to nothing.
# Without the cross compiler or QEMU it says so in one line and runs
# nothing.
#   tests/cortex-m/run-big-endian.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build/big-endian}
cc=powerpc-linux-gnu-gcc
qemu=qemu-ppc
for t in $cc $qemu; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "big-endian: $t not found, NOT RUN (apt-get install gcc-powerpc-linux-gnu libc6-dev-powerpc-cross qemu-user)"
		exit 0
	}
done
list() { sed -n "/^set($1/,/^)/s|^ *\(src/[a-z_/]*\.c\)\$|\1|p" "$top/CMakeLists.txt"; }
srcs="$(list DUET_CORE_SOURCES) $(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES)
	src/rng/virtio_rng.c src/rng/vhost_rng.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_driver.c
	src/rpmsg/rpmsg_device.c src/rpmsg/rpmsg_ping.c src/port/bare/port_bare.c
	tests/cortex-m/main.c tests/cortex-m/rig.c tests/cortex-m/board_linux.c"
flags="-std=c11 ${OPT:--O2} -g -Wall -Wextra -Werror -I$top/include"
rm -rf "$out"
mkdir -p "$out"
# shellcheck disable=SC2086
for s in $srcs; do
	$cc $flags -c "$top/$s" -o "$out/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
done
# shellcheck disable=SC2086
$cc $flags -static "$out"/*.o -o "$out/duet-big-endian"
echo "big-endian: 32-bit PowerPC under $qemu"
timeout 300 $qemu "$out/duet-big-endian"
