#!/bin/sh
# Build the core freestanding for a Cortex-M4 (arm-none-eabi-gcc -Os) and
# RV32 (riscv64-unknown-elf-gcc -Os), with -Werror, and print text size.
# A missing cross compiler is reported in one line, not a failure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/cross}
# The core and framework lists of CMakeLists.txt: everything but the port.
srcs=$(sed -n '/^set(DUET_\(CORE\|VIRTIO\|VHOST\)_SOURCES/,/^)/s|^ *\(src/[a-z_/]*\.c\)$|\1|p' "$top/CMakeLists.txt")
flags="-std=c11 -Os -ffreestanding -Wall -Wextra -Werror -pedantic -ffunction-sections -I$top/include -I$top/src/port/freestanding/include"

build() { # name cc arch-flags
	name=$1 cc=$2
	shift 2
	if ! command -v "$cc" >/dev/null 2>&1; then
		echo "cross $name: $cc not found, skipped (apt-get install gcc-arm-none-eabi / gcc-riscv64-unknown-elf)"
		return 0
	fi
	mkdir -p "$out/$name"
	objs=""
	for s in $srcs; do
		o="$out/$name/$(basename "$s" .c).o"
		# shellcheck disable=SC2086
		"$cc" $flags "$@" -c "$top/$s" -o "$o"
		objs="$objs $o"
	done
	size=${cc%gcc}size
	# shellcheck disable=SC2086
	text=$("$size" -t $objs | awk 'END { print $1 }')
	data=$("$size" -t $objs | awk 'END { print $2 + $3 }')
	echo "cross $name: core text $text bytes, data+bss $data bytes ($cc -Os)"
}

build cortex-m4 arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb
build rv32 riscv64-unknown-elf-gcc -march=rv32imac -mabi=ilp32
