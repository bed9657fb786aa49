#!/bin/sh
# Where the instructions of a 17 B rpmsg round trip go on a Cortex-M4, by
# layer and by function: bench/bench_cortex_m.c run under QEMU with its
# trace of executed blocks (-d in_asm,exec,nochain), counted between the
# bench's profile_from() and profile_to() calls (the first run: the 1,000
# 17 B round trips, with the clock reads that time each one), divided by
# the rounds. Deterministic, like the bench's mean, which it should match.
#   [OPT=-O2] bench/cortex-m-profile.sh [outdir]
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
opt=${OPT:--O2}
out=${1:-$top/build/bench-cortex-m-profile}$opt
rounds=$(sed -n 's/^#define ROUNDS \([0-9]*\)$/\1/p' "$top/bench/bench_cortex_m.c")
OPT=$opt sh "$top/tests/cortex-m/run.sh" "$out" bench/bench_cortex_m.c -icount shift=0 >"$out.run" 2>&1 ||
	{ cat "$out.run"; exit 1; }
if grep -q "NOT RUN" "$out.run"; then
	cat "$out.run"
	exit 0
fi
elf="$out/duet-cortex-m.elf"
echo "Cortex-M4 $opt, instructions per 17 B round trip by layer and function (QEMU's block trace, $rounds round trips; $(grep '17 B round trip' "$out.run" | awk -F'|' '{ gsub(/ /, "", $7); print "the bench measured " $7 }'))"
# Function -> layer, from the source file each symbol was compiled from.
arm-none-eabi-nm -l --defined-only "$elf" | awk 'NF >= 4 && $2 ~ /^[tTwW]$/ {
	f = $4; layer = "libc (memcpy, ...)";
	if (f ~ /\/src\/virtqueue\//) layer = "virtqueue";
	else if (f ~ /\/src\/rpmsg\//) layer = "rpmsg";
	else if (f ~ /\/src\/(rptun|virtio|vhost|heap)\//) layer = "transport (rptun, buses)";
	else if (f ~ /\/src\/port\//) layer = "port (bare: locks, clock, work)";
	else if (f ~ /\/(tests|bench)\//) layer = "the main loop and the timing (rig, board, bench)";
	print $3 "\t" layer }' >"$out.layers"
timeout 300 qemu-system-arm -M mps2-an386 -nographic -monitor none -serial none \
	-semihosting-config enable=on,target=native -icount shift=0 \
	-d in_asm,exec,nochain -D "$out.trace" -kernel "$elf" >/dev/null 2>&1 || true
# A block's length is taken from its translation (IN:, then one line per
# instruction), which QEMU prints before the block first runs; each
# execution (Trace ... [.../pc/...] name) adds that length to its function.
awk -v rounds="$rounds" -v layers="$out.layers" '
BEGIN { FS = "\t"; while ((getline l < layers) > 0) { split(l, a, "\t"); layer[a[1]] = a[2] } FS = " " }
/^IN:/ { blk = 1; pc = ""; n = 0; next }
blk && /^0x[0-9a-f]+:/ { if (pc == "") pc = substr($1, 3, 8); n++; next }
blk { if (pc != "") len[pc] = n; blk = 0 }
/^Trace/ {
	if (done) next
	split($0, b, "/"); p = b[2]; fn = $NF; if (fn ~ /\]$/) fn = "?"
	if (!on) { on = (fn == "profile_from"); next }
	if (fn == "profile_to") { done = 1; next }
	by[fn] += len[p]; total += len[p]
}
END {
	if (!total) { print "cortex-m-profile: nothing counted (no profile_from/profile_to in the trace)"; exit 1 }
	printf "  %8.1f  all\n", total / rounds
	for (f in by) { l = (f in layer) ? layer[f] : "libc (memcpy, ...)"; bl[l] += by[f] }
	for (l in bl) printf "  %8.1f  %s\n", bl[l] / rounds, l | "sort -rn"
	close("sort -rn")
	print "  by function (self), those of 5 or more:"
	for (f in by) if (by[f] / rounds >= 5) printf "    %8.1f  %s\n", by[f] / rounds, f | "sort -rn"
}' "$out.trace"
rm -f "$out.trace"
