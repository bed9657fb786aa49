#!/bin/sh
# The Cortex-M test (tests/cortex-m/main.c, the same rig and bare-metal
# port) built as a static Linux program (board_linux.c) for other cores and
# run under QEMU's user mode: 32-bit PowerPC, big-endian, 64-bit Arm (the
# Cortex-A side of a Cortex-A with Cortex-M product) and 64-bit RISC-V;
# then on this host,
# under AddressSanitizer and UndefinedBehaviorSanitizer (the bare-metal
# port's nested waits and the stash, which the POSIX suites reach otherwise),
# and under MemorySanitizer over a region marked never written.
# Each run must pass, and every run's wire digests (the region's bytes
# after each part) must equal the host's: every byte duet put in shared
# memory the same whatever the core's byte order and word size, so any
# two of them can share a link. PowerPC is the only run of the byte swaps a
# big-endian core needs: on the others they compile to nothing.
# A core whose cross compiler or QEMU is missing is reported in one line
# as NOT RUN.
#   tests/cortex-m/run-linux.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-$top/build/linux-cores}
list() { sed -n "/^set($1/,/^)/s|^ *\(src/[a-z_/]*\.c\)\$|\1|p" "$top/CMakeLists.txt"; }
srcs="$(list DUET_CORE_SOURCES) $(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES)
	src/rng/virtio_rng.c src/rng/vhost_rng.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_driver.c
	src/rpmsg/rpmsg_device.c src/rpmsg/rpmsg_ping.c src/port/bare/port_bare.c
	tests/cortex-m/main.c tests/cortex-m/rig.c tests/cortex-m/board_linux.c"
flags="-std=c11 ${OPT:--O2} -g -Wall -Wextra -Werror -I$top/include"
rm -rf "$out"
mkdir -p "$out"
build() { # name cc [flags...]: the rig as a Linux program, out/name/rig
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
run() { # name command...: its output to out/name.log and here; stops on failure
	name=$1
	shift
	status=0
	timeout 300 "$@" >"$out/$name.log" 2>&1 || status=$?
	cat "$out/$name.log"
	[ $status -eq 0 ] || { echo "linux-cores: FAILED: the $name run exited $status"; exit 1; }
	grep 'wire digest' "$out/$name.log" >"$out/$name.digests" || true
}
build host "${CC:-cc}" -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
echo "linux-cores: this host"
run host "$out/host/rig"
[ -s "$out/host.digests" ] || { echo "linux-cores: FAILED: the host run printed no digest"; exit 1; }
same_wire() { # name what: fails unless the run's digests are the host's
	cmp -s "$out/$1.digests" "$out/host.digests" && return 0
	echo "linux-cores: FAILED: the wire differs on $2 (its digests, then the host's):"
	diff "$out/$1.digests" "$out/host.digests" || true
	exit 1
}
# And under MemorySanitizer: the rig starts each part over a region marked
# never written (rig.c), so any byte read before the builder or a side
# wrote it is reported.
build host-msan clang -fsanitize=memory -fno-sanitize-recover=all -fno-omit-frame-pointer
echo "linux-cores: this host, under MemorySanitizer"
run host-msan "$out/host-msan/rig"
same_wire host-msan "this host under MemorySanitizer"
ran=""
for core in "ppc powerpc-linux-gnu-gcc 32-bit_PowerPC,_big-endian gcc-powerpc-linux-gnu libc6-dev-powerpc-cross" \
	"aarch64 aarch64-linux-gnu-gcc 64-bit_Arm gcc-aarch64-linux-gnu libc6-dev-arm64-cross" \
	"riscv64 riscv64-linux-gnu-gcc 64-bit_RISC-V gcc-riscv64-linux-gnu libc6-dev-riscv64-cross"; do
	# shellcheck disable=SC2086 # a list of words
	set -- $core
	name=$1 q=qemu-$1 cc=$2 what=$(echo "$3" | tr _ ' ')
	shift 3
	if ! command -v "$cc" >/dev/null 2>&1 || ! command -v "$q" >/dev/null 2>&1; then
		echo "linux-cores: $what: $cc or $q not found, NOT RUN (apt-get install $* qemu-user)"
		continue
	fi
	build "$name" "$cc" -static
	echo "linux-cores: $what, under $q"
	run "$name" "$q" "$out/$name/rig"
	same_wire "$name" "$what"
	ran="$ran, $what"
done
echo "linux-cores: every run passed with the host's wire${ran:+ (the host$ran)}"
