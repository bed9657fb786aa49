/*
 * churn.h - endpoints that come and go over the name service, for the
 * duet command: a client that opens many named endpoints, has each echoed
 * and destroys it, and the echo service that answers them on the peer.
 */
#ifndef DUET_TOOLS_CHURN_H
#define DUET_TOOLS_CHURN_H

#include <stdint.h>

#include <duet/rpmsg.h>

struct churn_result {
	uint32_t created;   /* endpoints created */
	uint32_t abandoned; /* of them, destroyed at once, before they bound */
	uint32_t echoes;    /* messages echoed whole */
};

/*
 * Give this program's rpmsg devices the echo service: each endpoint the
 * peer's churn announces gets an endpoint here of the same name that
 * echoes what it receives, destroyed when the peer destroys its own or the
 * device goes. Returns 0 or -ENOMEM.
 */
int churn_service_register(void);

/* Let go of the service (before the program leaves). */
void churn_service_unregister(void);

/*
 * Create `rounds` named endpoints on rdev, at most `open` at a time. Each
 * waits to be bound by the peer's echo service, sends one to four
 * messages of random lengths and waits for each to come back whole, then
 * is destroyed, the open ones in random order; one in eight is destroyed
 * at once instead, before the peer could bind it. Returns 0 or a
 * negative errno: -EINVAL (rounds 0, open 0 or over CHURN_MAX_OPEN),
 * -ENOMEM, -ENODEV (the device went), -ETIMEDOUT (an endpoint not bound,
 * or an echo missing, within 5 s), -EIO (an echo came back wrong); with
 * `why` set to one line saying which. *res counts what was done.
 */
#define CHURN_MAX_OPEN 64u
int churn_run(struct rpmsg_device *rdev, uint32_t rounds, uint32_t open,
	      struct churn_result *res, const char **why);

#endif
