#!/bin/sh
# duet's libraries define only what they should for the linker.
#  - Every global symbol of each library is in duet's own name spaces
#    (virtio_, vhost_, virtqueue_, rpmsg_, duet_): a static link with a
#    program or an RTOS that has its own bus_lock or vq_fault must not clash.
#  - With -I DIR (the installed include directory), a shared library exports
#    exactly the functions and objects declared in DIR/duet/*.h: none of the
#    header's functions is missing (a program would fail to link or load),
#    and no internal function is exported for a program to come to rely on.
#    The declarations are read by gcc (-aux-info), not by the DUET_API marks
#    that make the exports, so a declaration left unmarked is caught.
#   scripts/check-symbols.sh [-I DIR] lib.a|lib.so ...
set -eu
export LC_ALL=C # one collation for sort and comm
include=
if [ "${1:-}" = -I ]; then
	include=$2
	shift 2
fi
defined() {
	case $1 in
	*.so*) nm -D --defined-only "$1" ;;
	*) nm -g --defined-only "$1" ;;
	esac | awk 'NF == 3 { print $3 }' |
		grep -vE '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u
}
bad=$(for lib in "$@"; do defined "$lib"; done |
	grep -vE '^(virtio_|vhost_|virtqueue_|rpmsg_|duet_)' | sort -u) || true
if [ -n "$bad" ]; then
	echo "check-symbols: outside duet's name spaces:" $bad
	exit 1
fi
echo "check-symbols: every symbol of $* is duet's"
[ -n "$include" ] || exit 0

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for h in "$include"/duet/*.h; do
	printf '#include <duet/%s>\n' "${h##*/}"
done >"$tmp/all.c"
gcc -I"$include" -fsyntax-only -aux-info "$tmp/aux" "$tmp/all.c"
# "/* DIR/duet/x.h:12:NC */ extern int name (args);": non-static ones only.
grep "/duet/[a-z_]*\.h:" "$tmp/aux" | grep -v '\*/ static ' |
	sed -E 's/^.*[ *]([A-Za-z_][A-Za-z_0-9]*) \(.*$/\1/' >"$tmp/declared"
# Objects: "extern struct virtio_driver virtio_rpmsg_driver;" (with or
# without the DUET_API mark), not the extern "C" of the C++ guard.
sed -nE 's/^(DUET_API )?extern [^"(]* \**([A-Za-z_][A-Za-z_0-9]*);.*$/\2/p' \
	"$include"/duet/*.h >>"$tmp/declared"
sort -u "$tmp/declared" -o "$tmp/declared"
status=0
for lib in "$@"; do
	case $lib in *.so*) ;; *) continue ;; esac
	defined "$lib" >"$tmp/exported"
	missing=$(comm -23 "$tmp/declared" "$tmp/exported")
	extra=$(comm -13 "$tmp/declared" "$tmp/exported")
	if [ -n "$missing" ]; then
		echo "check-symbols: $lib lacks what duet's headers declare:" $missing
		status=1
	fi
	if [ -n "$extra" ]; then
		echo "check-symbols: $lib exports what no public header declares:" $extra
		status=1
	fi
	[ $status = 0 ] && echo "check-symbols: $lib exports exactly the" \
		"$(wc -l <"$tmp/declared") functions and objects of $include/duet"
done
exit $status
