#!/usr/bin/env python3
"""Mutation sweep: which checks do the tests really hold?

For each file given, change one thing at a time (a comparison loosened or
tightened by one: > and >=, < and <=; an error return turned into
`return 0;`), rebuild BUILD, run its fast suites (not the two-process or
thread suites), and print every mutant that no test failed on. The file is
restored after each mutant and at the end, interrupted or not (if the run
is killed hard, `git checkout -- src` restores it).

A survivor is a check no test pins down, or an equivalent change (a
defensive check that cannot trigger, a heuristic's boundary): read each.
Running the survivors again against the sanitizer build (--only FILE
--build build/asan) separates the reads past an array that only
AddressSanitizer sees.

  python3 scripts/mutants.py [--build build/clang] [--only OUT] [--tests ARGS] src/x.c ...

--only OUT: only the mutants listed as SURVIVED in OUT (an earlier run's
output). --tests ARGS: ctest's selection instead of the fast suites, e.g.
'-R "^test_link$"' for a file only the two-process suites reach. Needs the build directory configured (make test makes
build/clang and build/asan); a mutant takes a few seconds.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWAPS = [(' > ', ' >= '), (' >= ', ' > '), (' < ', ' <= '), (' <= ', ' < ')]


def mutants(lines):
    """(index, new line, what) for each mutant of the file's code lines."""
    in_comment = False
    for i, line in enumerate(lines):
        s = line.strip()
        if in_comment:
            in_comment = '*/' not in s
            continue
        if s.startswith('/*'):
            in_comment = '*/' not in s
            continue
        if s.startswith(('*', '#', '//')):
            continue
        code = line.split('/*')[0]
        for old, new in SWAPS:
            k = code.find(old)
            while k >= 0:
                yield i, line[:k] + new + line[k + len(old):], f'{old.strip()}->{new.strip()}'
                k = code.find(old, k + 1)
        m = re.search(r'return -E[A-Z]+;', code)
        if m:
            yield i, line[:m.start()] + 'return 0;' + line[m.end():], 'return 0'


def run(cmd, timeout):
    try:
        return subprocess.run(cmd, cwd=ROOT, shell=True, timeout=timeout,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
    except subprocess.TimeoutExpired:
        return -1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build/clang')
    ap.add_argument('--only')
    ap.add_argument('--tests', default='-E "link|threads"')
    ap.add_argument('files', nargs='+')
    a = ap.parse_args()
    only = None
    if a.only:
        only = set()
        for l in open(a.only):
            m = re.match(r'SURVIVED (\S+):(\d+) \[(.*?)\] (.*)$', l.rstrip('\n'))
            if m:
                only.add((m.group(1), int(m.group(2)), m.group(3), m.group(4).strip()))
    build = f'cmake --build {a.build} -j2'
    tests = f'cd {a.build} && ctest -j2 {a.tests} --timeout 300'
    for f in a.files:
        path = os.path.join(ROOT, f)
        orig = open(path).read()
        lines = orig.split('\n')
        total = killed = 0
        try:
            for i, new, what in list(mutants(lines)):
                if only is not None and (f, i + 1, what, new.strip()) not in only:
                    continue
                mutant = lines[:]
                mutant[i] = new
                open(path, 'w').write('\n'.join(mutant))
                total += 1
                # A mutant the compiler refuses (-Werror) counts as killed.
                if run(build, 600) != 0 or run(tests, 900) != 0:
                    killed += 1
                else:
                    print(f'SURVIVED {f}:{i + 1} [{what}] {new.strip()}', flush=True)
        finally:
            open(path, 'w').write(orig)
        print(f'== {f}: {total} mutants, {killed} killed', flush=True)
    run(build, 600)


if __name__ == '__main__':
    sys.exit(main())
