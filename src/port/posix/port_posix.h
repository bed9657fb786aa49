/*
 * port_posix.h - what the POSIX port offers beyond duet/port.h: allocation
 * failures on demand, for tests of the paths that handle -ENOMEM.
 */
#ifndef DUET_PORT_POSIX_H
#define DUET_PORT_POSIX_H

#include <stdint.h>

/*
 * From now on, let `skip` allocations of the port through (duet_port_alloc,
 * and the storage of mutexes and events), then fail the next `count`
 * (NULL, or -ENOMEM from a create). (0, 0) turns failures off. Process-wide,
 * any thread's allocations count.
 */
void duet_port_fail_allocs(uint32_t skip, uint32_t count);

/* How many of the failures asked for are still to come: 0 once every one
 * happened (or none was asked for). */
uint32_t duet_port_allocs_left_to_fail(void);

#endif /* DUET_PORT_POSIX_H */
