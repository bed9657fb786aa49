/*
 * bench_floor - the protocol's floor (floor.c) on this machine, for
 * bench/callgrind-rpmsg.sh to count next to bench_rpmsg_ir.
 *   bench_floor N        N round trips; exits non-zero if any went wrong
 *   bench_floor hostile  each check at work: one word of the peer's broken
 *                        at a time, each must be caught
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "floor.h"

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000, done;
	struct floor_pair *p;

	if (argc > 1 && !strcmp(argv[1], "hostile"))
		return floor_hostile();
	p = floor_open();
	if (!p)
		return 1;
	done = floor_run(p, n);
	if (done != n) {
		fprintf(stderr, "bench_floor: no reply at %ld\n", done);
		return 1;
	}
	if (floor_faults(p)) {
		fprintf(stderr, "bench_floor: %u faults and drops\n", floor_faults(p));
		return 1;
	}
	printf("%ld round trips\n", n);
	floor_close(p);
	return 0;
}
