#!/bin/sh
# Make sure the Debian packages the build and tests need are present.
# As root, installs what is missing; otherwise prints the exact command.
#   scripts/deps.sh [test|bench]
set -eu
need="cmake make gcc clang pkg-config libcmocka-dev libclang-rt-dev"
case "${1:-test}" in
bench) need="$need valgrind" ;;
esac
# The cross compilers are optional: make test reports their absence.
# With the Cortex-M one, its C library and QEMU run the core on a Cortex-M4.
if command -v arm-none-eabi-gcc >/dev/null 2>&1; then
	need="$need libnewlib-arm-none-eabi qemu-system-arm"
fi
missing=""
for p in $need; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
	echo "deps: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
	echo "deps: missing Debian packages. Run:"
	echo "  sudo apt-get install$missing"
	exit 1
fi
