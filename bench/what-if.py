#!/usr/bin/env python3
"""What would each redesign buy? Instructions per 17-byte rpmsg round trip
(bench/callgrind-rpmsg.sh's first figure) with the library edited for one
experiment at a time, then all of them at once.

Each experiment is an edit of the sources that stands for a redesign,
made crudely: it removes a layer or a check outright, so the figure is
what the best version of that redesign could save, not what it would.
The edits are for measuring only: some break what they remove (the
features' checks), none is a change to make. They run in a temporary
worktree of HEAD; the working tree is not touched.

An edit that no longer matches the sources stops the run with the
experiment's name and the text it looked for: the sources moved on, and
the experiment needs rewriting, not skipping.

  python3 bench/what-if.py [--keep DIR]

Each count is bench/callgrind-rpmsg.sh's own (ROUND_TRIP_ONLY=1 for the
edited builds), so the figures are the ones make bench prints. Needs git,
cmake, gcc and valgrind (make bench's). --keep DIR leaves the worktree and
its builds there: `sh bench/callgrind-rpmsg.sh DIR/build/all/bench/bench_rpmsg_ir`
then gives where the round trip goes with every edit in, by function.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import edits  # noqa: E402 (bench/edits.py, found through the path above)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The posix port's recursive futex mutex, compiled into rpmsg's message
# path instead of called: what a port-provided inline fast path could be.
# Made from the port's own code when the experiment runs (its lock and
# unlock, renamed, with the helpers they inline), so that it measures the
# port as it is; the out-of-line helpers (contention, a bad unlock) stay
# in the port, made external.
PORT = 'src/port/posix/port_posix.c'
PORT_HELPERS = ('mutex_lock_held', 'mutex_not_held', 'mutex_wake')


def port_part(text, start, end='\n}\n'):
    """The port's text from `start` through `end` (a function's by default)."""
    i = text.index(start)
    return text[i:text.index(end, i) + len(end)] + '\n'


def helper_decl(port, name):
    """The prototype of one of the port's out-of-line lock helpers."""
    m = re.search(r'static DUET_OUT_OF_LINE ((?:_Noreturn )?void %s\([^)]*\))' % name, port)
    return m.group(1) + ';\n'


def inline_lock(tree):
    with open(os.path.join(tree, PORT)) as f:
        port = f.read()
    parts = [port_part(port, 'struct duet_mutex {', '\n};\n'),
             'extern _Thread_local char duet_whatif_self '
             '__attribute__((tls_model("initial-exec")));\n'
             '#define self_tag duet_whatif_self\n',
             ''.join(helper_decl(port, h) for h in PORT_HELPERS),
             port_part(port, 'static uintptr_t self_id(void)'),
             port_part(port, 'static inline void mutex_own('),
             port_part(port, 'void duet_mutex_lock(struct duet_mutex *m)'),
             port_part(port, 'void duet_mutex_unlock(struct duet_mutex *m)')]
    code = ''.join(parts)
    code = code.replace('void duet_mutex_lock(', 'static inline void whatif_lock(')
    code = code.replace('void duet_mutex_unlock(', 'static inline void whatif_unlock(')
    return '#include <limits.h>\n#include "rpmsg_internal.h"\n\n' + code


def port_helpers_external(tree):
    """The port's text with its lock's out-of-line helpers external."""
    with open(os.path.join(tree, PORT)) as f:
        port = f.read()
    for h in PORT_HELPERS:
        port = re.sub(r'static (DUET_OUT_OF_LINE (?:_Noreturn )?void %s\()' % h, r'\1', port)
    return port


# Each experiment's edits are bench/edits.py's (file, old, new, count); a
# count of None is for where an earlier experiment of "all of them at
# once" may have removed some.
EXPERIMENTS = [
    ("rpmsg's per-message feature checks gone (removal, queued announcements, stash, "
     "offers, quieting the send queue's callback, the send counter)", [
        ('src/rpmsg/rpmsg_path.h',
         '\tif (atomic_load_explicit(&rdev->svq->cb_enabled, memory_order_relaxed) &&\n'
         '\t    !rdev->tx_sleepers && !atomic_load_explicit(&rdev->nns_out, memory_order_relaxed))\n'
         '\t\tvirtqueue_disable_cb(rdev->svq);', '\t(void)rdev;', 1),
        ('src/rpmsg/rpmsg_path.h',
         '\t\tif (rpmsg_gone(rdev)) {\n\t\t\tduet_mutex_unlock(rdev->lock);\n'
         '\t\t\treturn -ENODEV;\n\t\t}\n'
         '\t\trpmsg_flush_ns(rdev); /* queued announcements go first */\n', '', 1),
        ('src/rpmsg/rpmsg_path.h', '\t\trdev->stats.tx_msgs++;\n', '', 1),
        ('src/rpmsg/rpmsg_path.h', 'taken < budget && !rpmsg_gone(rdev); taken++',
         'taken < budget; taken++', 1),
        ('src/rpmsg/rpmsg_path.h',
         '\t\tif (!duet_list_empty(&rdev->stash)) {\n\t\t\trpmsg_serve_stash(rdev);\n'
         '\t\t\tcontinue;\n\t\t}\n', '', 1),
        ('src/rpmsg/rpmsg_path.h',
         '!virtqueue_seen_more(rdev->rvq) && duet_list_empty(&rdev->stash)',
         '!virtqueue_seen_more(rdev->rvq)', 1),
        ('src/rpmsg/rpmsg_path.h', 'offer = rdev->offer && rdev->depth == 0;', 'offer = false;', 1),
    ]),
    ("the posix port's own lock and unlock compiled inline into rpmsg", [
        ('src/rpmsg/rpmsg_path.h', '#include "rpmsg_internal.h"\n', inline_lock, 1),
        ('src/rpmsg/rpmsg_path.h', 'duet_mutex_lock(rdev->lock);', 'whatif_lock(rdev->lock);', 2),
        ('src/rpmsg/rpmsg_path.h', 'duet_mutex_unlock(rdev->lock);',
         'whatif_unlock(rdev->lock);', None),
        (PORT, 'static _Thread_local char self_tag __attribute__((tls_model("initial-exec")));',
         '_Thread_local char duet_whatif_self __attribute__((tls_model("initial-exec")));\n'
         '#define self_tag duet_whatif_self', 1),
        (PORT, None, port_helpers_external, None),
    ]),
    ("the doorbell's dispatch layer folded into the loopback's look (no rvdev call)", [
        ('src/loopback/loopback.c',
         '\t\tran += duet_rvdev_dispatch(&side->rv, duet_lowest_bit(bits));',
         '\t{\n\t\tstruct virtqueue *vq = atomic_load_explicit(&side->rv.live[duet_lowest_bit(bits)],\n'
         '\t\t\t\t\t\t\tmemory_order_acquire);\n\n'
         '\t\tif (vq && vq->callback) {\n\t\t\tvq->callback(vq);\n\t\t\tran++;\n\t\t}\n\t}', 1),
    ]),
    ("the ring's EVENT_IDX branches and the kick's counters gone", [
        ('src/virtqueue/vq_short.h', 'if (vq->track_event)', 'if (0)', 2),
        ('src/virtqueue/vq_short.h',
         '\tif (vq->event_idx)\n\t\treturn vring_need_event(wish, now, vq->kicked_idx);\n',
         '\t(void)now;\n', 1),
        ('src/virtqueue/vq_short.h', '\t\tvq->stats.kicks_saved++;\n', '', 1),
        ('src/virtqueue/vq_short.h', '\tvq->stats.kicks++;\n', '', 1),
    ]),
]


def run(cmd, cwd):
    return edits.run('what-if', cmd, cwd)


def apply(tree, name, changes):
    edits.apply('what-if', tree, name, changes)


def instructions(tree, build, floor=False):
    """bench/callgrind-rpmsg.sh's round-trip figure for the tree as it is,
    and with `floor` the protocol's floor it prints beside it."""
    run(['cmake', '-S', tree, '-B', build, '-DCMAKE_C_COMPILER=gcc', '-DCMAKE_BUILD_TYPE=Release',
         '-DCMAKE_C_FLAGS=-g', '-DDUET_BUILD_TESTS=OFF'], tree)
    targets = ['bench_rpmsg_ir'] + (['bench_floor'] if floor else [])
    run(['cmake', '--build', build, '-j4', '--target'] + targets, tree)
    env = dict(os.environ, ROUND_TRIP_ONLY='' if floor else '1')
    out = subprocess.run(['sh', os.path.join(tree, 'bench', 'callgrind-rpmsg.sh'),
                          os.path.join(build, 'bench', 'bench_rpmsg_ir')],
                         capture_output=True, text=True, env=env)
    rt = re.search(r'round trip under callgrind: (\d+) instructions', out.stdout)
    fl = re.search(r"the protocol's floor .*: (\d+) instructions", out.stdout)
    if out.returncode != 0 or not rt or (floor and not fl):
        sys.exit('what-if: bench/callgrind-rpmsg.sh failed:\n%s%s' % (out.stdout, out.stderr))
    return (int(rt.group(1)), int(fl.group(1))) if floor else int(rt.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--keep', help='make the worktree here and leave it')
    args = ap.parse_args()
    for tool in ('git', 'cmake', 'gcc', 'valgrind'):
        if not shutil.which(tool):
            sys.exit('what-if: %s not found (make bench installs valgrind)' % tool)
    tree = edits.worktree('what-if', ROOT, args.keep)
    try:
        rev = run(['git', 'rev-parse', '--short', 'HEAD'], tree).strip()
        base, floor = instructions(tree, os.path.join(tree, 'build', 'base'), floor=True)
        print('rpmsg 17 B round trip under callgrind, %s as it is: %d instructions' % (rev, base))
        print('with one redesign stood in for by an edit (its best case):')
        for i, (name, changes) in enumerate(EXPERIMENTS):
            run(['git', 'checkout', '-q', '--', 'src'], tree)
            apply(tree, name, changes)
            n = instructions(tree, os.path.join(tree, 'build', 'e%d' % i))
            print('  %-5d (%+d)  %s' % (n, n - base, name))
        run(['git', 'checkout', '-q', '--', 'src'], tree)
        for name, changes in EXPERIMENTS:
            apply(tree, name, changes)
        n = instructions(tree, os.path.join(tree, 'build', 'all'))
        print('  %-5d (%+d)  all of them at once' % (n, n - base))
        print('  %-5d (%+d)  the protocol\'s floor (bench_floor: every check of the peer, '
              'none of the layers)' % (floor, floor - base))
    finally:
        if not args.keep:
            edits.remove_worktree(ROOT, tree)
    return 0


if __name__ == '__main__':
    sys.exit(main())
