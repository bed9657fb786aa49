#!/bin/sh
# Line coverage of the library by the test suites: which lines of src/ no
# test runs. A line no test reaches is a check nobody has seen work, an
# error path nobody has taken, or code nothing needs; each is worth a look
# (session 30 found a freed held buffer, a proxy that crashed on refusal and
# a removal that waited out a send this way).
#
# Builds with gcc --coverage -O0 into build/coverage, runs every ctest suite,
# then prints each source file's share of lines run and, for each file given
# (or every file under src/ when none is), the lines never run. With -b, for
# the same files, the lines that ran with a branch never taken: a check
# that never failed, which a line count cannot show (session 31 found six
# checks of peer and user input no test had made fail this way). At -O0
# each condition of a line is its own branch; an atomic or a switch's
# implicit default adds some that no test can take.
#   scripts/coverage.sh [-b] [src/x.c ...]
# The two-process suites count too, for the processes that exit normally:
# one killed (kill -9, abort) writes no counts, so the link's and the
# command's crash paths show as never run. Needs gcov (comes with gcc).
set -eu
branches=0
if [ "${1:-}" = -b ]; then
	branches=1
	shift
fi
top=$(cd "$(dirname "$0")/.." && pwd)
b=$top/build/coverage
cmake -S "$top" -B "$b" -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=Debug \
	-DCMAKE_C_FLAGS="--coverage -O0" -DCMAKE_EXE_LINKER_FLAGS=--coverage \
	-DCMAKE_SHARED_LINKER_FLAGS=--coverage -DDUET_BUILD_BENCH=OFF >/dev/null
cmake --build "$b" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
find "$b" -name '*.gcda' -delete
(cd "$b" && ctest -j"$(nproc 2>/dev/null || echo 2)" >/dev/null) || echo "coverage: some suites failed; counts are of what ran"
out=$b/gcov
rm -rf "$out" && mkdir -p "$out"
objs=$b/CMakeFiles/duet_objects.dir
echo "lines run, per file of src/:"
for g in $(find "$objs/src" -name '*.gcda' | sort); do
	(cd "$out" && gcov -o "$g" "$g" >/dev/null 2>&1 && gcov -n "$g" 2>/dev/null) |
		awk -v top="$top/" '/^File / { f = $2; gsub("\047", "", f); sub(top, "", f) }
			/^Lines executed/ && f ~ /^src\/.*\.c$/ { sub("Lines executed:", ""); printf "  %-28s %s\n", f, $0; f = "" }'
done
[ $# -gt 0 ] || set -- $(cd "$top" && ls src/*/*.c src/port/*/*.c 2>/dev/null)
for f in "$@"; do
	g=$out/$(basename "$f").gcov
	[ -f "$g" ] || continue
	n=$(grep -c '#####' "$g" || true)
	[ "$n" -gt 0 ] || continue
	echo "$f: never run"
	grep '#####' "$g" | sed 's/^ *#####: *//' | sed 's/^/  /'
done
[ $branches = 1 ] || exit 0
bout=$b/gcov-branches
rm -rf "$bout" && mkdir -p "$bout"
for g in $(find "$objs/src" -name '*.gcda' | sort); do
	(cd "$bout" && gcov -b -c -o "$g" "$g" >/dev/null 2>&1) || true
done
for f in "$@"; do
	g=$bout/$(basename "$f").gcov
	[ -f "$g" ] || continue
	# A source line: "count: line: text"; its branches follow it.
	awk -v f="$f" '
		function flush() { if (ran && missed) { if (!shown) print f ": branches never taken"; shown = 1; print "  " src } }
		/^ *[-#=0-9*]+: *[0-9]+:/ { flush(); c = $1; sub(":", "", c); sub(/\*$/, "", c)
			ran = c ~ /^[0-9]+$/ && c > 0; missed = 0; src = $0; sub(/^ *[^:]*: */, "", src); next }
		/^branch / && ($3 == "never" || ($3 == "taken" && $4 == 0)) { missed = 1 }
		END { flush() }' "$g"
done
