#!/bin/sh
# Code size for a Cortex-M4 (arm-none-eabi-gcc -Os), text and data:
#  - rpmsg only, one role (the driver side: virtio-rpmsg): virtqueue, the
#    virtio bus (and its lock), rpmsg over virtio; a partial link (ld -r --gc-sections)
#    rooted at what an rpmsg user calls, so only reachable code counts;
#  - a firmware's share: the same over rptun with the bare-metal port,
#    rooted at what its main loop calls too;
#  - the full core: every object of the core, frameworks, transports and
#    drivers, no garbage collection.
# Libc is not counted, nor the port (OS calls) but in the firmware's share.
#   [SIZE_CFLAGS=...] bench/size.sh [outdir]
# SIZE_CFLAGS: more compiler flags, to see what one changes (e.g.
# -fno-inline-functions-called-once); the figures are then not the target's.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$top/build/size}
cc=arm-none-eabi-gcc
command -v $cc >/dev/null 2>&1 || { echo "size: $cc not found (apt-get install gcc-arm-none-eabi)"; exit 0; }
list() { sed -n "/^set($1/,/^)/s|^ *\(src/[a-z_/]*\.c\)\$|\1|p" "$top/CMakeLists.txt"; }
flags="-std=c11 -Os -mcpu=cortex-m4 -mthumb -ffreestanding -ffunction-sections -fdata-sections -Wall -Wextra -Werror -I$top/include -I$top/src/port/freestanding/include ${SIZE_CFLAGS:-}"
mkdir -p "$out"
objs() { for s in "$@"; do o="$out/$(basename "$s" .c).o"; $cc $flags -c "$top/$s" -o "$o"; echo "$o"; done; }
size_of() { arm-none-eabi-size "$@" | awk 'NR > 1 { t += $1; d += $2 + $3 } END { printf "text %d B, data+bss %d B", t, d }'; }

rpmsg_srcs="$(list DUET_CORE_SOURCES) src/core/lazy_lock.c src/virtio/bus.c src/virtio/virtio.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_driver.c"
# shellcheck disable=SC2086
o=$(objs $rpmsg_srcs)
roots=""
for s in virtio_rpmsg_driver virtio_register_driver virtio_register_device virtio_unregister_device \
	rpmsg_create_ept rpmsg_destroy_ept rpmsg_is_ept_ready rpmsg_send rpmsg_sendto rpmsg_trysend \
	rpmsg_get_tx_payload_buffer rpmsg_send_nocopy rpmsg_release_tx_buffer rpmsg_hold_rx_buffer \
	rpmsg_release_rx_buffer rpmsg_register_callback rpmsg_get_tx_buffer_size; do
	roots="$roots -u $s"
done
# shellcheck disable=SC2086
arm-none-eabi-ld -r --gc-sections -e rpmsg_send $roots -o "$out/rpmsg-one-role.o" $o
echo "Cortex-M4 -Os, rpmsg only, driver role (virtqueue + virtio bus + rpmsg over virtio, gc'd): $(size_of "$out/rpmsg-one-role.o")"
# shellcheck disable=SC2086
echo "  of which: $(for f in $o; do printf '%s %s; ' "$(basename "$f" .o)" "$(arm-none-eabi-size "$f" | awk 'NR == 2 { print $1 }')"; done)(per object, before gc)"
# What a user of endpoints and copy sends alone links: no zero copy, no
# listeners (the name service and waiting stay; they are reached from here).
basic=""
for s in virtio_rpmsg_driver virtio_register_driver virtio_register_device virtio_unregister_device \
	rpmsg_create_ept rpmsg_destroy_ept rpmsg_is_ept_ready rpmsg_send rpmsg_sendto rpmsg_trysend \
	rpmsg_get_tx_buffer_size; do
	basic="$basic -u $s"
done
# shellcheck disable=SC2086
arm-none-eabi-ld -r --gc-sections -e rpmsg_send $basic -o "$out/rpmsg-basic.o" $o
echo "  of it, endpoints and copy sends only (no zero copy, no listeners): $(size_of "$out/rpmsg-basic.o")"
# The other role, the device side (vhost-rpmsg), rooted the same way: the
# vhost bus with its deferred probe, and the checks of chains a driver may
# post, which the driver side never reads.
dev_srcs="$(list DUET_CORE_SOURCES) src/core/lazy_lock.c src/vhost/vhost.c src/virtio/bus.c src/virtio/virtio.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_device.c"
# shellcheck disable=SC2086
od=$(objs $dev_srcs)
# shellcheck disable=SC2086,SC2046 # lists of words
arm-none-eabi-ld -r --gc-sections -e rpmsg_send $(printf '%s\n' $roots | sed 's/^virtio_\(rpmsg_driver\|register_driver\|register_device\|unregister_device\)$/vhost_\1/') \
	-o "$out/rpmsg-device-role.o" $od
echo "  the device role instead (vhost-rpmsg, vhost bus, gc'd the same way): $(size_of "$out/rpmsg-device-role.o")"
# The same with link-time optimisation (-flto, as firmware is often linked):
# a final link rooted the same way; the port and libc stay unresolved.
# shellcheck disable=SC2086
lroots=$(printf '%s\n' $roots | sed -n 's/^\([a-z_]*\)$/-Wl,-u,\1/p')
srcs=$(for s in $rpmsg_srcs; do printf '%s ' "$top/$s"; done)
# shellcheck disable=SC2086
$cc $flags -flto -nostdlib -nostartfiles -Wl,--gc-sections -Wl,-e,rpmsg_send $lroots \
	-Wl,--unresolved-symbols=ignore-all $srcs -o "$out/rpmsg-one-role-lto.elf"
echo "Cortex-M4 -Os -flto, rpmsg only, driver role (the same, linked with LTO): $(size_of "$out/rpmsg-one-role-lto.elf")"
# What a firmware running the driver side of rpmsg over rptun links of duet:
# the above plus the transport (resource table, rptun, its devices, the
# carveout heap, the vhost bus rptun registers device sides on) and the
# bare-metal port, rooted at what its main loop calls.
fw_srcs="$rpmsg_srcs $(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES) src/port/bare/port_bare.c"
# shellcheck disable=SC2086,SC2046 # lists of words
o=$(objs $(printf '%s\n' $fw_srcs | sort -u))
fw_roots="$roots"
for s in duet_rptun_create duet_rptun_start duet_rptun_stop duet_rptun_destroy duet_rptun_notified \
	duet_rptun_check_peer duet_bare_init duet_bare_run_work; do
	fw_roots="$fw_roots -u $s"
done
# shellcheck disable=SC2086
arm-none-eabi-ld -r --gc-sections -e rpmsg_send $fw_roots -o "$out/rpmsg-firmware.o" $o
echo "Cortex-M4 -Os, a firmware's share: the same over rptun with the bare-metal port (gc'd): $(size_of "$out/rpmsg-firmware.o")"
all_srcs="$(list DUET_CORE_SOURCES) $(list DUET_VIRTIO_SOURCES) $(list DUET_VHOST_SOURCES) $(list DUET_RPTUN_SOURCES) src/rng/virtio_rng.c src/rng/vhost_rng.c src/rpmsg/rpmsg_virtio.c src/rpmsg/rpmsg_driver.c src/rpmsg/rpmsg_device.c src/rpmsg/rpmsg_ping.c src/rpmsg/rpmsg_dump.c"
# shellcheck disable=SC2086
o=$(objs $all_srcs)
# shellcheck disable=SC2086
echo "Cortex-M4 -Os, full core (both roles, buses, rptun, loopback, rng, rpmsg, ping, dump): $(size_of $o)"
