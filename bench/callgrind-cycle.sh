#!/bin/sh
# Instructions per virtqueue cycle, counted by callgrind: two runs that
# differ only in the number of cycles, so set-up cost cancels out.
#   bench/callgrind-cycle.sh path/to/bench_vq_cycle
set -eu
bin=${1:?usage: $0 path/to/bench_vq_cycle}
command -v valgrind >/dev/null || { echo "callgrind: valgrind not installed (apt-get install valgrind)"; exit 0; }
ir() {
	valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --runs 1 --cycles "$1" 2>&1 >/dev/null |
		sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
small=1000
big=101000
a=$(ir $small)
b=$(ir $big)
echo "virtqueue cycle under callgrind: $(( (b - a) / (big - small) )) instructions per cycle (1 descriptor, both roles, validation included; $bin)"
