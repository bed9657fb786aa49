#!/bin/sh
# Build the core freestanding for a Cortex-M4 (arm-none-eabi-gcc -Os) and
# RV32 (riscv64-unknown-elf-gcc -Os), with -Werror, check that no atomic
# is left to a library call, and print its size by part. A missing cross
# compiler is reported in one line, not a failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/cross}
# Source lists of CMakeLists.txt: everything but the port.
list() { sed -n "/^set($1/,/^)/s|^ *\(src/[a-z_/]*\.c\)\$|\1|p" "$top/CMakeLists.txt"; }
vq=$(list DUET_CORE_SOURCES)
fw="$(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES)"
# Every source named in a duet_driver(...) call, which may span lines.
drv=$(awk '/^duet_driver\(/ { on = 1 } on { for (i = 1; i <= NF; i++) if ($i ~ /^src\/.*\.c\)?$/) { sub(/\)$/, "", $i); print $i } } on && /\)$/ { on = 0 }' "$top/CMakeLists.txt" | sort -u)
flags="-std=c11 -Os -ffreestanding -Wall -Wextra -Werror -pedantic -ffunction-sections -I$top/include -I$top/src/port/freestanding/include"

text_of() { # size-tool objects...
	tool=$1
	shift
	"$tool" -t "$@" | awk 'END { print $1 }'
}

build() { # name cc arch-flags...
	name=$1 cc=$2
	shift 2
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "cross $name: $cc not found, skipped (apt-get install gcc-arm-none-eabi / gcc-riscv64-unknown-elf)"
		return 0
	fi
	mkdir -p "$out/$name"
	for part in vq fw drv; do
		eval "srcs=\$$part"
		objs=""
		for s in $srcs; do
			o="$out/$name/$(basename "$s" .c).o"
			# shellcheck disable=SC2086
			"$cc" $flags "$@" -c "$top/$s" -o "$o"
			objs="$objs $o"
		done
		eval "objs_$part=\"$objs\""
	done
	size=${cc%gcc}size
	# Atomics the compiler left to a library (libatomic): a bare-metal
	# image may not have one, and its operations need not be lock-free
	# between two cores. None may remain.
	# shellcheck disable=SC2086
	calls=$("${cc%gcc}nm" -u $objs_vq $objs_fw $objs_drv | grep -o '__atomic_[a-z_0-9]*\|__sync_[a-z_0-9]*' | sort -u | tr '\n' ' ')
	if [ -n "$calls" ]; then
		echo "cross $name: FAILED: atomics left to a library call: $calls"
		exit 1
	fi
	# shellcheck disable=SC2086
	echo "cross $name ($cc -Os): text virtqueue $(text_of "$size" $objs_vq), frameworks+transports $(text_of "$size" $objs_fw), drivers (rng, rpmsg) $(text_of "$size" $objs_drv), all $(text_of "$size" $objs_vq $objs_fw $objs_drv) bytes"
}

build cortex-m4 arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb
build rv32 riscv64-unknown-elf-gcc -march=rv32imac -mabi=ilp32
