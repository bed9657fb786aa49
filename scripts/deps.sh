#!/bin/sh
# Make sure the Debian packages the build and tests need are present.
# As root, installs what is missing; otherwise prints the exact command.
# Optional packages (the Cortex-M run's and the other cores') are installed when possible; when
# they cannot be, make test says NOT RUN for what needs them, and goes on.
#   scripts/deps.sh [test|bench]
set -eu
need="cmake make gcc g++ clang pkg-config libcmocka-dev libclang-rt-dev python3"
case "${1:-test}" in
bench) need="$need valgrind" ;;
esac
# The cross compilers are optional: make test reports their absence.
# With the Cortex-M one, its C library and QEMU run the core on a Cortex-M4.
# The runs on other cores' (PowerPC, 64-bit Arm and RISC-V compilers,
# their C libraries, QEMU's user mode) are small: installed whenever possible.
optional="gcc-powerpc-linux-gnu libc6-dev-powerpc-cross gcc-aarch64-linux-gnu libc6-dev-arm64-cross
	gcc-riscv64-linux-gnu libc6-dev-riscv64-cross qemu-user"
if command -v arm-none-eabi-gcc >/dev/null 2>&1; then
	optional="$optional libnewlib-arm-none-eabi qemu-system-arm"
fi
missing_of() {
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			printf ' %s' "$p"
	done
}
# shellcheck disable=SC2086 # the lists are words
missing=$(missing_of $need)
# shellcheck disable=SC2086
missing_opt=$(missing_of $optional)
[ -z "$missing$missing_opt" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	[ -n "$missing_opt" ] && echo "deps: for the Cortex-M run and the other cores: sudo apt-get install$missing_opt"
	[ -z "$missing" ] && exit 0
	echo "deps: missing Debian packages. Run:"
	echo "  sudo apt-get install$missing"
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || [ -z "$missing" ]
if [ -n "$missing" ]; then
	echo "deps: installing$missing"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$missing_opt" ]; then
	echo "deps: installing$missing_opt (optional)"
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing_opt >/dev/null ||
		echo "deps: could not install$missing_opt: the runs that need them will say NOT RUN"
fi
exit 0
