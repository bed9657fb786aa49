/* proc.c - a child process driven through its stdin and stdout (tests). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "proc.h"

uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void proc_start(struct proc *p, const char *const *argv)
{
	int in[2], out[2];

	memset(p, 0, sizeof(*p));
	assert_int_equal(pipe(in), 0);
	assert_int_equal(pipe(out), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(in[1]);
		close(out[0]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	p->in = in[1];
	p->out = out[0];
}

/* Read what is there, waiting up to ms for more. */
static void proc_read(struct proc *p, int ms)
{
	struct pollfd pfd = { .fd = p->out, .events = POLLIN };

	if (poll(&pfd, 1, ms) > 0 && p->len < sizeof(p->buf) - 1) {
		ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);

		if (n > 0)
			p->len += (size_t)n;
	}
	p->buf[p->len] = '\0';
}

bool proc_expect(struct proc *p, const char *needle, uint32_t timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;

	for (;;) {
		char *hit = strstr(p->buf + p->cursor, needle);

		if (hit) {
			p->cursor = (size_t)(hit - p->buf) + strlen(needle);
			return true;
		}
		if (now_ms() >= end) {
			print_message("---- output of pid %d, expecting '%s':\n%s\n----\n", p->pid,
				      needle, p->buf);
			return false;
		}
		proc_read(p, 20);
	}
}

void proc_send(struct proc *p, const char *line)
{
	ssize_t n;

	/* A child that has already ended (on its own, or crashed) cannot be
	 * told anything: that is not this write's failure to report, and it
	 * must not kill the test with SIGPIPE; proc_wait checks how it ended. */
	signal(SIGPIPE, SIG_IGN);
	n = write(p->in, line, strlen(line));
	if (n < 0 && errno == EPIPE)
		return;
	assert_int_equal(n, (ssize_t)strlen(line));
}

int proc_wait(struct proc *p, uint32_t timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;
	int st;

	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);

		proc_read(p, 0);
		if (r == p->pid) {
			while (p->len < sizeof(p->buf) - 1) {
				ssize_t n = read(p->out, p->buf + p->len, sizeof(p->buf) - 1 - p->len);

				if (n <= 0)
					break;
				p->len += (size_t)n;
			}
			p->buf[p->len] = '\0';
			close(p->in);
			close(p->out);
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (now_ms() >= end) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			print_message("---- pid %d did not exit; output:\n%s\n----\n", p->pid, p->buf);
			close(p->in);
			close(p->out);
			return -1;
		}
		usleep(10000);
	}
}

void proc_kill9(struct proc *p)
{
	int st;

	kill(p->pid, SIGKILL);
	waitpid(p->pid, &st, 0);
	close(p->in);
	close(p->out);
}

void proc_sweep_regions(const char *prefix)
{
	char lead[64], path[300];
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	size_t n;

	if (!d)
		return;
	n = (size_t)snprintf(lead, sizeof(lead), "duet-%s-", prefix);
	while ((e = readdir(d))) {
		char *end;
		long pid;

		if (strncmp(e->d_name, lead, n))
			continue;
		pid = strtol(e->d_name + n, &end, 10);
		if (pid <= 0 || *end != '-' || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "/%s", e->d_name);
		shm_unlink(path);
	}
	closedir(d);
}
