#!/usr/bin/env python3
"""Where a 17-byte rpmsg round trip's time goes, step by step, on the real
two-process link: the server's send, the way out (from the index stored to
the proxy's look or doorbell dispatch that finds it), the proxy's receive
and its echo, the way back, the server's receive.

Each step is timed with the time-stamp counter read at its two ends, so
the library is edited for it: a read after each index a side publishes
(vq_store_idx), one in the look that sees the peer's index move
(poll_one) and one where a doorbell's dispatch runs a queue's callback
(duet_rvdev_dispatch, how a waiting side that was woken finds it), and
bench_rpmsg records them with its own, trip by trip, into files that this
script reads. The edits are for measuring only; they run in a temporary
worktree of HEAD, and the working tree is not touched. The reads cost a
few nanoseconds each, so the round trip printed beside the steps
(bench_rpmsg's own, from the same run) is a little slower than an unedited
build's.

  python3 bench/steps.py [--mode M] [--runs N] [--keep DIR]

--mode: bench_rpmsg's waiting mode, polling (the default), backoff, hybrid
or blocking. --runs: bench_rpmsg rtt's runs (3); every round trip of them
is counted, warm-ups too. The steps of one trip are summed in "total", from
the send call to the reply's callback. The two ways are timed across the two CPUs:
each assumes their counters agree (constant_tsc, as Linux checks at boot);
"both ways" is their sum, which an offset between the counters does not
move. x86 only (rdtsc). Needs git, cmake and gcc (make bench's).
--keep DIR leaves the worktree and its build there.
"""
import argparse
import os
import platform
import re
import shutil
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edits  # noqa: E402 (bench/edits.py, found through the path above)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = 'steps'

# The server records (its send call, the index its send published, the
# index of the reply seen, its callback), the proxy (the request's index
# seen, its callback, the index its echo published, after the echo), one
# record per 17 B round trip in the order of the trips; each file starts
# with two (nanoseconds, counter) pairs that give the counter's rate.
BENCH_TOP = '''extern uint64_t duet_steps_published, duet_steps_seen;
#define STEPS_MAX 1000000
static uint64_t (*steps)[4];
static uint32_t nsteps;
static uint64_t steps_cal[2];

static void steps_start(void)
{
	steps = calloc(STEPS_MAX, sizeof(steps[0]));
	if (!steps) {
		perror("steps");
		exit(1);
	}
	steps_cal[0] = duet_clock_ns();
	steps_cal[1] = __builtin_ia32_rdtsc();
}

static void steps_dump(const char *who)
{
	uint64_t cal[4] = { steps_cal[0], steps_cal[1], duet_clock_ns(), __builtin_ia32_rdtsc() };
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", getenv("DUET_STEPS_DIR"), who);
	f = fopen(path, "wb");
	if (!f || fwrite(cal, sizeof(cal), 1, f) != 1 ||
	    fwrite(steps, sizeof(steps[0]), nsteps, f) != nsteps || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static int proxy_cb('''

BENCH_EDITS = [
    ('bench/bench_rpmsg.c', 'static int proxy_cb(', BENCH_TOP, 1),
    ('bench/bench_rpmsg.c',
     "\tif (len && m[0] == 'E') { /* echo */\n\t\trpmsg_send(ept, data, (int)len);\n",
     "\tif (len && m[0] == 'E') { /* echo */\n"
     "\t\tuint64_t seen = duet_steps_seen, cb = __builtin_ia32_rdtsc();\n\n"
     "\t\trpmsg_send(ept, data, (int)len);\n"
     "\t\tif (len == 17 && nsteps < STEPS_MAX) {\n"
     "\t\t\tsteps[nsteps][0] = seen;\n\t\t\tsteps[nsteps][1] = cb;\n"
     "\t\t\tsteps[nsteps][2] = duet_steps_published;\n"
     "\t\t\tsteps[nsteps++][3] = __builtin_ia32_rdtsc();\n\t\t}\n", 1),
    ('bench/bench_rpmsg.c',
     '\twhile (!duet_link_stop_requested(s.link) && duet_link_peer_up(s.link))\n\t\tpump(&s);\n',
     '\tsteps_start();\n'
     '\twhile (!duet_link_stop_requested(s.link) && duet_link_peer_up(s.link))\n\t\tpump(&s);\n'
     '\tsteps_dump("proxy");\n', 1),
    ('bench/bench_rpmsg.c',
     '\t(void)ept;\n\t(void)src;\n\ts->reply_len = (uint32_t)len;\n',
     '\t(void)ept;\n\t(void)src;\n'
     '\tif (len == 17 && steps && nsteps < STEPS_MAX) {\n'
     '\t\tsteps[nsteps][2] = duet_steps_seen;\n'
     '\t\tsteps[nsteps][3] = __builtin_ia32_rdtsc();\n\t}\n'
     '\ts->reply_len = (uint32_t)len;\n', 1),
    ('bench/bench_rpmsg.c',
     "\tmsg[0] = 'E';\n\twhile (rpmsg_trysend(&s->ept, msg, (int)len) == -EAGAIN)\n\t\tpump(s);\n"
     '\twhile (atomic_load_explicit(&s->replies, memory_order_relaxed) == before)\n\t\tpump(s);\n',
     "\tuint64_t c0 = __builtin_ia32_rdtsc();\n\n"
     "\tmsg[0] = 'E';\n\twhile (rpmsg_trysend(&s->ept, msg, (int)len) == -EAGAIN)\n\t\tpump(s);\n"
     '\tif (len == 17 && steps && nsteps < STEPS_MAX) {\n'
     '\t\tsteps[nsteps][0] = c0;\n\t\tsteps[nsteps][1] = duet_steps_published;\n\t}\n'
     '\twhile (atomic_load_explicit(&s->replies, memory_order_relaxed) == before)\n\t\tpump(s);\n'
     '\tif (len == 17 && steps && nsteps < STEPS_MAX)\n\t\tnsteps++;\n', 1),
    ('bench/bench_rpmsg.c',
     '\theader("Round trips, server to proxy and back (two processes, one shared region)");\n',
     '\tsteps_start();\n'
     '\theader("Round trips, server to proxy and back (two processes, one shared region)");\n', 1),
    ('bench/bench_rpmsg.c', '\t       spin_budget_us, backoff_us);\n\treturn 0;\n',
     '\t       spin_budget_us, backoff_us);\n\tsteps_dump("server");\n\treturn 0;\n', 1),
]

POLL_ONE_COMMENT = "/* virtqueue_poll's body, compiled into virtqueue_poll_many as well. */\n"

LIB_EDITS = [
    ('src/virtqueue/vq_mem.h', '/* Publish an index after what it covers. */\n',
     'extern uint64_t duet_steps_published, duet_steps_seen;\n\n'
     '/* Publish an index after what it covers. */\n', 1),
    ('src/virtqueue/vq_mem.h',
     '\t\tatomic_store_explicit((_Atomic uint16_t *)p, duet_le16(v), memory_order_release);\n}\n',
     '\t\tatomic_store_explicit((_Atomic uint16_t *)p, duet_le16(v), memory_order_release);\n'
     '\tduet_steps_published = __builtin_ia32_rdtsc();\n}\n', 1),
    ('src/virtqueue/virtqueue.c', '\tif (!poll_news(vq, &peer))\n\t\treturn false;\n',
     '\tif (!poll_news(vq, &peer))\n\t\treturn false;\n'
     '\tduet_steps_seen = __builtin_ia32_rdtsc();\n', 1),
    ('src/virtqueue/virtqueue.c', POLL_ONE_COMMENT,
     'uint64_t duet_steps_published, duet_steps_seen;\n\n' + POLL_ONE_COMMENT, 1),
    ('src/rptun/rvdev.c', '\tif (vq->callback)\n\t\tvq->callback(vq);\n\treturn true;\n',
     '\tif (vq->callback) {\n\t\textern uint64_t duet_steps_seen;\n\n'
     '\t\tduet_steps_seen = __builtin_ia32_rdtsc();\n\t\tvq->callback(vq);\n\t}\n'
     '\treturn true;\n', 1),
]

# The steps of a trip, in order; the ways (out, back) are STEPS[WAYS[k]].
WAYS = (1, 4)
STEPS = [
    ("the server's send (its call to its index stored)", lambda s, p: s[1] - s[0]),
    ("the way out (stored to found by the proxy)", lambda s, p: p[0] - s[1]),
    ("the proxy's receive (found to its callback)", lambda s, p: p[1] - p[0]),
    ("the proxy's echo (its callback to its index stored)", lambda s, p: p[2] - p[1]),
    ("the way back (stored to found by the server)", lambda s, p: s[2] - p[2]),
    ("the server's receive (found to its callback)", lambda s, p: s[3] - s[2]),
]


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    cal = struct.unpack_from('4Q', data, 0)
    recs = [struct.unpack_from('4Q', data, 32 + 32 * i) for i in range((len(data) - 32) // 32)]
    return cal, recs


def rate(cal):
    """Counter ticks per nanosecond, from the file's two calibration pairs."""
    ns, ticks = cal[2] - cal[0], cal[3] - cal[1]
    if ns <= 0 or ticks <= 0:
        sys.exit('%s: the time-stamp counter did not move' % TOOL)
    return ticks / ns


def quantile(v, q):
    return v[min(len(v) - 1, int(len(v) * q))]


def report(out_dir):
    scal, server = load(os.path.join(out_dir, 'server'))
    pcal, proxy = load(os.path.join(out_dir, 'proxy'))
    if len(server) != len(proxy) or not server:
        sys.exit('%s: %d trips recorded by the server, %d by the proxy: not the same trips'
                 % (TOOL, len(server), len(proxy)))
    per_ns = rate(scal)
    cols = [[] for _ in STEPS] + [[], []]
    kept = 0
    for s, p in zip(server, proxy):
        v = [f(s, p) for _, f in STEPS]
        # A trip whose message was found where no edit reads the counter
        # leaves an older time behind.
        if any(x < 0 for x in v):
            continue
        kept += 1
        for k, x in enumerate(v):
            cols[k].append(x / per_ns)
        cols[-2].append(sum(v[k] for k in WAYS) / per_ns)
        cols[-1].append((s[3] - s[0]) / per_ns)
    if not kept:
        sys.exit('%s: no trip with every step seen' % TOOL)
    names = [n for n, _ in STEPS] + ['both ways (out + back)',
                                     'total (send call to reply callback)']
    print('%d of %d round trips with every step seen; ns, counter at %.3f GHz (server), '
          '%.3f (proxy)' % (kept, len(server), per_ns, rate(pcal)))
    print('| step | p25 | p50 | p75 |')
    print('|---|---|---|---|')
    for name, c in zip(names, cols):
        c.sort()
        print('| %-52s | %6.1f | %6.1f | %6.1f |' % (name, quantile(c, .25), quantile(c, .5),
                                                   quantile(c, .75)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--mode', default='polling',
                    choices=('polling', 'backoff', 'hybrid', 'blocking'))
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--keep', help='make the worktree here and leave it')
    args = ap.parse_args()
    if platform.machine() not in ('x86_64', 'i686', 'i386'):
        sys.exit('%s: times with rdtsc, an x86 instruction; this is %s'
                 % (TOOL, platform.machine()))
    for tool in ('git', 'cmake', 'gcc'):
        if not shutil.which(tool):
            sys.exit('%s: %s not found' % (TOOL, tool))
    tree = edits.worktree(TOOL, ROOT, args.keep)
    out_dir = tempfile.mkdtemp(prefix='duet-steps-out.')
    try:
        rev = edits.run(TOOL, ['git', 'rev-parse', '--short', 'HEAD'], tree).strip()
        edits.apply(TOOL, tree, 'time stamps in the library', LIB_EDITS)
        edits.apply(TOOL, tree, 'time stamps in bench_rpmsg', BENCH_EDITS)
        build = os.path.join(tree, 'build', 'steps')
        edits.run(TOOL, ['cmake', '-S', tree, '-B', build, '-DCMAKE_C_COMPILER=gcc',
                         '-DCMAKE_BUILD_TYPE=Release', '-DCMAKE_C_FLAGS=-g',
                         '-DDUET_BUILD_TESTS=OFF'], tree)
        edits.run(TOOL, ['cmake', '--build', build, '-j4', '--target', 'bench_rpmsg'], tree)
        env = dict(os.environ, DUET_STEPS_DIR=out_dir)
        out = edits.run(TOOL, [os.path.join(build, 'bench', 'bench_rpmsg'), 'rtt', '--mode',
                               args.mode, '--runs', str(args.runs)], tree, env=env)
        print('%s with time stamps, bench_rpmsg rtt --mode %s --runs %d:'
              % (rev, args.mode, args.runs))
        for line in out.splitlines():
            if re.match(r'\| (raw spin|raw futex|rpmsg 17 B)', line):
                print('  ' + re.sub(r'\s+\|\s*$', '', line))
        report(out_dir)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
        if not args.keep:
            edits.remove_worktree(ROOT, tree)
    return 0


if __name__ == '__main__':
    sys.exit(main())
