"""Edits of the sources in a temporary worktree, for the bench tools that
measure the library changed (what-if.py, steps.py); never for code that is
kept.

An edit is (file, old, new, count): `old` must occur exactly `count` times,
or at least once for None. `new` may be a function of the tree giving the
text; with `old` None it gives the whole file. An edit that no longer
matches stops the run with its name: the sources moved on, and the edit
needs rewriting, not skipping.
"""
import os
import subprocess
import sys
import tempfile


def run(tool, cmd, cwd, quiet=True, env=None):
    """cmd's output; the run stops, named `tool`, if cmd fails."""
    r = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True, env=env)
    if r.returncode != 0:
        sys.exit('%s: %s failed:\n%s%s' % (tool, ' '.join(cmd), r.stdout or '', r.stderr or ''))
    return r.stdout


def apply(tool, tree, name, edits):
    """Make the edits named `name` in the worktree `tree`."""
    for path, old, new, count in edits:
        p = os.path.join(tree, path)
        if old is None:
            text = new(tree)
            with open(p, 'w') as f:
                f.write(text)
            continue
        if callable(new):
            new = new(tree)
        with open(p) as f:
            text = f.read()
        found = text.count(old)
        if found != count and not (count is None and found):
            sys.exit('%s: "%s": %s has %d of %r, not %s: rewrite the edit'
                     % (tool, name, path, found, old, count or 'one or more'))
        with open(p, 'w') as f:
            f.write(text.replace(old, new))


def worktree(tool, root, keep=None):
    """A worktree of HEAD: at `keep`, or in a new temporary directory."""
    tree = keep or tempfile.mkdtemp(prefix='duet-%s.' % tool)
    if keep:
        os.makedirs(os.path.dirname(os.path.abspath(tree)), exist_ok=True)
    else:
        os.rmdir(tree)
    run(tool, ['git', 'worktree', 'add', '--detach', tree, 'HEAD'], root)
    return tree


def remove_worktree(root, tree):
    subprocess.run(['git', 'worktree', 'remove', '--force', tree], cwd=root, capture_output=True)
