#!/bin/sh
# The Cortex-M test (tests/cortex-m/main.c, the same rig and bare-metal
# port) on a big-endian 32-bit core: built for 32-bit PowerPC as a static
# Linux program (board_linux.c) and run under QEMU's user mode; then on
# this little-endian host the same way. Both must pass, and their wire
# digests (the region's bytes after each part) must be equal: every byte
# duet put in shared memory the same on both byte orders, so the two kinds
# of core can share a link. It is the only run of the byte swaps a
# big-endian core needs: every other build is little-endian, where they
# compile to nothing.
# Without the cross compiler or QEMU it says so in one line and runs
# nothing.
#   tests/cortex-m/run-big-endian.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build/big-endian}
qemu=qemu-ppc
for t in powerpc-linux-gnu-gcc $qemu; do
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
build() { # dir cc [flags...]: the rig as a Linux program, dir/rig
	dir=$out/$1 cc=$2
	shift 2
	mkdir -p "$dir"
	# shellcheck disable=SC2086
	for s in $srcs; do
		$cc $flags "$@" -c "$top/$s" -o "$dir/$(echo "$s" | tr / _ | sed 's/\.c$/.o/')"
	done
	# shellcheck disable=SC2086
	$cc $flags "$@" "$dir"/*.o -o "$dir/rig"
}
build be powerpc-linux-gnu-gcc -static
build le "${CC:-cc}"
run() { # name command...: its output to out/name.log and here; stops on failure
	name=$1
	shift
	status=0
	timeout 300 "$@" >"$out/$name.log" 2>&1 || status=$?
	cat "$out/$name.log"
	[ $status -eq 0 ] || { echo "big-endian: FAILED: the $name run exited $status"; exit 1; }
}
echo "big-endian: 32-bit PowerPC under $qemu"
run be $qemu "$out/be/rig"
echo "big-endian: the same on this little-endian host"
run le "$out/le/rig"
grep 'wire digest' "$out/be.log" >"$out/be.digests" || true
grep 'wire digest' "$out/le.log" >"$out/le.digests" || true
if [ ! -s "$out/be.digests" ] || ! cmp -s "$out/be.digests" "$out/le.digests"; then
	echo "big-endian: FAILED: the wire differs by byte order (big, then little-endian):"
	diff "$out/be.digests" "$out/le.digests" || true
	exit 1
fi
echo "big-endian: both passed, the same wire on both byte orders"
