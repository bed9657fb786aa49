/* proc.h - a child process driven through its stdin and stdout (tests). */
#ifndef DUET_TESTS_PROC_H
#define DUET_TESTS_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct proc {
	pid_t pid;
	int in, out;
	char buf[1 << 16];
	size_t len, cursor;
};

uint64_t now_ms(void);

/* fork + execv(argv[0], argv), stdin from proc_send, stdout+stderr to proc_expect. */
void proc_start(struct proc *p, const char *const *argv);

/* Wait for `needle` in the output after the cursor; move past it. */
bool proc_expect(struct proc *p, const char *needle, uint32_t timeout_ms);

/* Write `line` to the child's stdin; nothing if the child has ended. */
void proc_send(struct proc *p, const char *line);

/* Exit status, or -1 after killing it at the timeout. */
int proc_wait(struct proc *p, uint32_t timeout_ms);

void proc_kill9(struct proc *p);

/* Remove the regions /dev/shm/duet-<prefix>-<pid>-... that runs of a test
 * killed before they could clean up left: those whose pid has no process. */
void proc_sweep_regions(const char *prefix);

#endif
