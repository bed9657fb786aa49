#!/bin/sh
# Every symbol a duet library defines for the linker is in duet's own name
# spaces (virtio_, vhost_, virtqueue_, rpmsg_, duet_): a static link with a
# program or an RTOS that has its own bus_lock or vq_fault must not clash.
#   scripts/check-symbols.sh lib.a|lib.so ...
set -eu
bad=$(for lib in "$@"; do
	case $lib in
	*.so*) nm -D --defined-only "$lib" ;;
	*) nm -g --defined-only "$lib" ;;
	esac
done | awk 'NF == 3 { print $3 }' | grep -vE '^(virtio_|vhost_|virtqueue_|rpmsg_|duet_)' |
	grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u) || true
if [ -n "$bad" ]; then
	echo "check-symbols: outside duet's name spaces:" $bad
	exit 1
fi
echo "check-symbols: every symbol of $* is duet's"
