/*
 * floor.h - the protocol's floor (floor.c): rpmsg round trips over two
 * split rings with every check of the peer and none of duet's layers,
 * both sides in one thread. A yardstick for the benches, not library code.
 */
#ifndef FLOOR_H
#define FLOOR_H

#include <stdbool.h>

struct floor_pair;

/* Both sides, fresh: every receive buffer posted, an endpoint on each
 * side (the driver's receives the echo of what it sends). NULL without
 * memory. One pair at a time. */
struct floor_pair *floor_open(void);

/* n 17-byte round trips, each a send, the device side's poll (its echo)
 * and the driver side's (the reply); how many got their reply, n unless
 * one did not. */
long floor_run(struct floor_pair *p, long n);

/* Faults and drops counted so far, both sides: 0 on a clean run. */
unsigned int floor_faults(const struct floor_pair *p);

void floor_close(struct floor_pair *p);

/* Each check at work: one peer word broken at a time, in thirteen ways,
 * each printed as caught or missed. 0 when every one was caught. */
int floor_hostile(void);

#endif
