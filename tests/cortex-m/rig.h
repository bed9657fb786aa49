/*
 * rig.h - both rptun sides of a link in one Cortex-M image, over one
 * region, served by one main loop through the bare-metal port: what the
 * test (main.c) and the benchmark (bench/bench_cortex_m.c) run on.
 * Vdev 0 is rpmsg (the server drives it, 256-byte buffers), vdev 1 rng
 * driven by the server, vdev 2 rng driven by the proxy.
 */
#ifndef RIG_H
#define RIG_H

#include <stdint.h>

#include <duet/rptun.h>

/* Start the port, write the table (rpmsg's rings of `rpmsg_ring`
 * entries, a power of two up to 256), create and start both sides with
 * the rpmsg and rng drivers registered. 0, or the first negative errno. */
int rig_start(uint16_t rpmsg_ring);

/* Side 0 (the server) or 1 (the proxy). */
struct duet_rptun *rig_side(int i);

/* One turn of the main loop: each side's rung notify ids, the port's due
 * work, and each side's peer check once a millisecond. Returns how many
 * ids and work items ran. */
int rig_turn(void);

/* Turn until cond(arg) or `ms` pass; returns cond(arg). */
int rig_until(int (*cond)(void *), void *arg, uint32_t ms);

/* Turns run by waits (the port's idle hook) since start. */
extern unsigned int rig_idles;

/* Called at the start of each such turn when set: a test's way to act
 * while a wait is under way (NULL: nothing). */
extern void (*rig_idle_hook)(void);

/* A digest (FNV-1a) of the shared region's bytes. */
uint32_t rig_digest(void);

/* Stop and destroy both sides. 0, or the first negative errno. */
int rig_stop(void);

#endif
