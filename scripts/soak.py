#!/usr/bin/env python3
"""Soak the two-process link: traffic, then a fault, then recovery, many times.

Each cycle runs traffic both ways over one link, rpmsg pings (checked
echoes, random lengths, two-way floods) or a churn of named endpoints
(created, bound by the peer's echo service over the name service, echoed,
destroyed: `rpmsg churn`), and while it runs it does one of: kill -9 the
proxy or the server (and, some cycles, kill -9 again the one started in
its place while it sets up), the server's `reset` or `panic` command, a
stall of either side (SIGSTOP for up to 1.5 s: nothing may be lost), or
nothing. Then it brings back the side that went, waits for both to be
ready, and checks that a ping each way is echoed whole, that a churn each
way binds and echoes every endpoint, and that each side's rng device
reads. Each side runs its link's loop on the link's thread or on its own
(`duet --loop poll|wait`, polling with or without `--backoff`), blocking
at once or spinning first. It fails on the first cycle where a side hangs
(a step past its timeout), a check fails, or a sanitizer says anything,
and prints the seed, which gives the same faults in the same order again
(not the same timing), each side's last output, and for a side still
running its `status`, its rpmsg devices' rings and endpoints
(`rpmsg dump all`) and its threads' stacks (by gdb, where there is
one): a hang is rarely caught twice. At the end both sides quit and must
exit 0 (under AddressSanitizer that includes the leak check of everything
the recoveries allocated).

  python3 scripts/soak.py [--cycles N] [--seed S] [--bin PATH] [--name NAME]
                          [--faults KIND,...] [--twice-ms LO-HI]
                          [--server-waiting=ARGS] [--proxy-waiting=ARGS]

--faults keeps to the faults named and --twice-ms sets when a second kill
comes: `--faults 'kill proxy twice' --twice-ms 8-15` kills proxies as
they attach (about 12 ms after they start under TSan here), which is how
session 45 found two faults of the attach that the mixed soak met once in
a few runs. --server-waiting and --proxy-waiting fix how every server or
proxy waits (duet's own options, e.g. '--loop wait --spin 0'): with the
server so, kill-twice runs found in session 46 a proxy killed in a ring
that left the server's loop asleep for good, in 5 of 109 runs (the mixed
soak gives a server that mode once in ten runs).

`--faults scribble`, which the mixed draw does not make, plays a hostile
peer: random bytes written at random into the resource table and the
carveouts (half of them aimed at the vrings) for up to 0.3 s while the
traffic runs; what was sent meanwhile may be lost or refused, but neither
side may crash, hang or report a sanitizer error, and after the server's
`reset` everything must work again. The header and the doorbells are
left alone: garbage there may stop the link (as a peer can by not ringing
or by dropping its side), which the soak could not tell from a hang. It
found in session 47 that a reset kept a table the peer had broken
(docs/link.md, "A reset starts the link over"), that both sides of a ring
broken on the driver's side stayed bound to a device that took nothing
more (docs/frameworks.md, "Ring faults"), with both sides on user loops
a receive callback's send waiting out 5 s per echo on a peer that had asked
for a reset (docs/rpmsg.md), and, under TSan, a send racing the name
service's unbind.

--bin defaults to the ASan + UBSan build's duet (build/asan/duet, made by
`make test-asan`), else build/gcc/duet. About a third of a second a cycle
under ASan, half a second under TSan. `make test` runs 100 cycles of each.
"""

import argparse
import mmap
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANITIZER = re.compile(r"(ERROR|WARNING): \w*Sanitizer|runtime error:")


# Each cycle's fault is one of these, at random (kills of either side
# twice as likely as the rest).
FAULTS = ["kill proxy", "kill proxy", "kill server", "kill server", "reset", "panic", "none",
          "kill proxy twice", "kill server twice", "stall proxy", "stall server"]
# Faults only --faults asks for (the draw above stays as it was, so a seed
# of the mixed soak gives the faults it gave before).
OPT_IN = ["scribble"]

# The region's layout (docs/link.md, "The region"): the resource table at
# 4 KiB, the carveouts after its 8 KiB; in the table, a VDEV entry's
# vrings (da, align, num, notifyid, pa), da an offset into the region.
TABLE_OFFSET = 4096
RSC_VDEV = 3


def vring_bytes(num, align):
    """A split ring's size: descriptors, then avail, then used at align."""
    used = (16 * num + 6 + 2 * num + align - 1) // align * align
    return used + 6 + 8 * num


def ring_areas(region):
    """Where the vrings are, as the live table says (what a peer reads
    there is the peer's to check; this only aims the scribble)."""
    def u32(off):
        return int.from_bytes(region[off:off + 4], "little")
    areas = []
    count = u32(TABLE_OFFSET + 4)
    for i in range(min(count, 64)):
        entry = TABLE_OFFSET + u32(TABLE_OFFSET + 16 + 4 * i)
        if entry + 32 > len(region) or u32(entry) != RSC_VDEV:
            continue
        for v in range(min(region[entry + 25], 8)):
            da, align, num = u32(entry + 28 + 20 * v), u32(entry + 32 + 20 * v), u32(entry + 36 + 20 * v)
            if 0 < num <= 32768 and 0 < align <= 65536:
                end = min(da + vring_bytes(num, align), len(region))
                if TABLE_OFFSET < da < end:
                    areas.append((da, end))
    return areas


class Failed(Exception):
    pass


class Side:
    """One duet process, its commands on stdin, its output (both streams)
    read by a thread into one buffer that expect() walks forward."""

    def __init__(self, binary, args, env):
        self.args = args
        self.proc = subprocess.Popen([binary] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     env=env, start_new_session=True)
        self.buf = ""
        self.pos = 0
        self.lock = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for raw in iter(lambda: self.proc.stdout.read1(4096), b""):
            with self.lock:
                self.buf += raw.decode(errors="replace")
                self.lock.notify_all()

    def send(self, line):
        try:
            self.proc.stdin.write((line + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def expect(self, pattern, timeout, what):
        """The first match of pattern after what was already expected,
        within timeout seconds."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.lock:
            while True:
                m = rx.search(self.buf, self.pos)
                if m:
                    self.pos = m.end()
                    return m
                left = end - time.monotonic()
                if left <= 0:
                    raise Failed("%s: nothing within %.0f s (pid %d)" % (what, timeout, self.proc.pid))
                self.lock.wait(left)

    def kill(self):
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def finish(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise Failed("pid %d did not exit within %d s of quit" % (self.proc.pid, timeout))


def backtraces(pid):
    """Every thread's stack of a running process, by gdb if there is one."""
    try:
        r = subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "thread apply all bt"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "(no backtrace: %s)\n" % e
    return "\n".join(l for l in r.stdout.decode(errors="replace").splitlines()
                     if l.startswith(("Thread ", "#"))) + "\n"


def check_clean(sides):
    for s in sides:
        with s.lock:
            m = SANITIZER.search(s.buf)
            if m:
                raise Failed("sanitizer report from pid %d: %s" % (
                    s.proc.pid, s.buf[m.start():m.start() + 2000]))


MARK = 0


def command(side, line):
    """Send a command and after it a word that is no command: the side runs
    its commands in order, so the word's complaint marks the end of this
    command's output."""
    global MARK
    MARK += 1
    side.send(line)
    side.send("mark%d" % MARK)
    return "unknown command 'mark%d'" % MARK


def output(side, mark, timeout, what):
    """What the command before `mark` printed."""
    start = side.pos
    m = side.expect(re.escape(mark), timeout, what)
    return side.buf[start:m.start()]


def ping(side, peer, times, length, cmd):
    return command(side, "rpmsg ping %s %d %s %d 0" % (peer, times, length, cmd))


def churn(side, peer, rounds, open_):
    return command(side, "rpmsg churn %s %d %d" % (peer, rounds, open_))


def passed(text):
    """A ping or a churn that ended well, and no failure line from either."""
    return (re.search(r"^(p50:|churn \w+: \d+ endpoints)", text, re.M) is not None
            and not re.search(r"rpmsg (ping|churn) \w+: ", text))


class Soak:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.env = dict(os.environ)
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        self.server = None
        self.proxy = None
        # Every side started since the last look for sanitizer reports:
        # one killed or replaced in between may have written one.
        self.unchecked = []
        self.cycle = 0
        self.counts = {}
        self.cut = 0
        self.scribbled = 0

    def start_server(self, wait=True):
        self.server = Side(self.args.bin, ["server", "--name", self.args.name, "--no-spawn"] +
                           self.waiting(self.args.server_waiting), self.env)
        self.unchecked.append(self.server)
        if wait:
            self.server.expect(r"link '[^']*' created", 10, "server start")

    def start_proxy(self):
        self.proxy = Side(self.args.bin, ["proxy", "--name", self.args.name, "--timeout", "10000"] +
                          self.waiting(self.args.proxy_waiting), self.env)
        self.unchecked.append(self.proxy)

    def check_sanitizers(self):
        """No report from any side started since the last look, those that
        went included; the two up now are looked at again next time."""
        check_clean(self.unchecked)
        self.unchecked = [self.server, self.proxy]

    def waiting(self, fixed):
        """How a side started waits: on the link's own thread or on the
        program's (user_loop: polling, with or without backing off, or
        waiting), blocking at once or spinning on its rings first (hybrid);
        `fixed` (the side's --*-waiting) instead of the draw, which is still
        made, so that the rest of the run draws as without it."""
        loop = self.rng.choice([[], [], ["--loop", "poll"], ["--loop", "poll", "--backoff", "20"],
                                ["--loop", "wait"]])
        drawn = loop + ["--spin", self.rng.choice(["0", "0", "50", "1000"])]
        return drawn if fixed is None else fixed

    def both_ready(self):
        marks = [(side, who, command(side, "wait 10000"))
                 for side, who in ((self.server, "server"), (self.proxy, "proxy"))]
        for side, who, mark in marks:
            text = output(side, mark, 15, who + " wait")
            if "\nready\n" not in "\n" + text:
                raise Failed("%s's wait: %s" % (who, text.strip()[-300:]))

    def traffic(self):
        """Traffic both ways, of a random kind each: pings (echoes waited
        for and checked, random lengths, floods) or a churn of endpoints
        over the name service; their ends are the markers."""
        marks = {}
        for side, peer in ((self.server, "proxy"), (self.proxy, "server")):
            if self.rng.random() < 0.3:
                marks[peer] = churn(side, peer, self.rng.randint(50, 1000),
                                    self.rng.choice([1, 8, 64]))
                continue
            cmd = self.rng.choice([3, 7, 15, 11, 1])
            length = self.rng.choice(["max", "17", str(self.rng.randint(16, 496))])
            marks[peer] = ping(side, peer, self.rng.randint(2000, 20000), length, cmd)
        return marks["proxy"], marks["server"]

    def note_cut(self, text):
        """Count the traffic a fault cut short: the faults that met traffic."""
        if not passed(text):
            self.cut += 1

    def fault(self, smark, pmark):
        """One fault while the pings run (the server's commands run after
        its ping: its reset or panic meets the proxy's ping). A ping a
        fault cuts short may fail; one nothing touched must pass."""
        kind = self.rng.choice(self.args.faults or FAULTS)
        time.sleep(self.rng.uniform(0, 0.15))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if kind.startswith("kill proxy"):
            self.proxy.kill()
            self.note_cut(output(self.server, smark, 60, "server's ping as the proxy died"))
            if kind.endswith("twice"):
                # Again while the new one attaches, or just after.
                self.start_proxy()
                time.sleep(self.rng.uniform(*self.args.twice_s))
                self.proxy.kill()
            self.start_proxy()
        elif kind.startswith("kill server"):
            self.server.kill()
            self.note_cut(output(self.proxy, pmark, 60, "proxy's ping as the server died"))
            if kind.endswith("twice"):
                # Again while the new one sets the region up, or just after.
                self.start_server(wait=False)
                time.sleep(self.rng.uniform(*self.args.twice_s))
                self.server.kill()
            self.start_server()
        elif kind in ("reset", "panic"):
            text = output(self.server, smark, 60, "server's ping before a " + kind)
            if not passed(text):
                raise Failed("server's ping before a %s: %s" % (kind, text.strip()[-300:]))
            mark = command(self.server, kind)
            text = output(self.server, mark, 30, kind)
            if kind + ": acknowledged by the proxy" not in text:
                raise Failed("%s: %s" % (kind, text.strip()[-300:]))
            if kind == "reset":
                self.note_cut(output(self.proxy, pmark, 60, "proxy's ping around a reset"))
            else:
                self.proxy.finish(30)
                self.start_proxy()
        elif kind == "scribble":
            self.scribble()
            for side, mark, who in ((self.server, smark, "server"), (self.proxy, pmark, "proxy")):
                self.note_cut(output(side, mark, 120, "%s's traffic through a scribble" % who))
            for side, who in ((self.server, "server"), (self.proxy, "proxy")):
                if side.proc.poll() is not None:
                    raise Failed("the %s exited (status %d) after a scribble" % (who, side.proc.returncode))
            # What the garbage broke, the driver's reset makes anew.
            mark = command(self.server, "reset")
            text = output(self.server, mark, 30, "reset after a scribble")
            if "reset: acknowledged by the proxy" not in text:
                raise Failed("reset after a scribble: %s" % text.strip()[-300:])
        else:
            if kind.startswith("stall"):
                # Stopped for a while, as a core held in a debugger or
                # starved: alive all along, so nothing may be lost.
                side = self.proxy if kind.endswith("proxy") else self.server
                os.kill(side.proc.pid, signal.SIGSTOP)
                time.sleep(self.rng.uniform(0.1, 1.5))
                os.kill(side.proc.pid, signal.SIGCONT)
            for side, mark, who in ((self.server, smark, "server"), (self.proxy, pmark, "proxy")):
                text = output(side, mark, 120, "%s's ping, %s" % (who, kind))
                if not passed(text):
                    raise Failed("%s's ping, %s: %s" % (who, kind, text.strip()[-300:]))
        return kind

    def scribble(self):
        """A hostile peer: random bytes written at random into the resource
        table and the carveouts (half of the writes aimed at the vrings)
        for up to 0.3 s, while the traffic runs. Neither side may crash,
        hang or report a sanitizer error; what is sent meanwhile may be
        lost or refused."""
        with open("/dev/shm/duet-" + self.args.name, "r+b") as f:
            region = mmap.mmap(f.fileno(), 0)
        try:
            rings = ring_areas(region)
            end = time.monotonic() + self.rng.uniform(0.01, 0.3)
            while time.monotonic() < end:
                lo, hi = self.rng.choice(rings) if rings and self.rng.random() < 0.5 else (TABLE_OFFSET, len(region))
                off = self.rng.randrange(lo, hi)
                n = min(self.rng.choice([1, 2, 4, 8]), len(region) - off)
                region[off:off + n] = bytes(self.rng.getrandbits(8) for _ in range(n))
                self.scribbled += 1
                time.sleep(0.0002)
        finally:
            region.close()

    def check(self):
        """After the fault: both ready, a checked ping each way whole, and
        a read of each side's rng device."""
        self.both_ready()
        for side, peer, length, cmd in ((self.server, "proxy", "max", 3),
                                        (self.proxy, "server", str(self.rng.randint(16, 496)), 7)):
            text = output(side, ping(side, peer, 200, length, cmd), 60,
                          "checked ping to the %s after recovery" % peer)
            if not passed(text):
                raise Failed("checked ping to the %s after recovery: %s" % (peer, text.strip()[-300:]))
        for side, peer in ((self.server, "proxy"), (self.proxy, "server")):
            text = output(side, churn(side, peer, 40, 8), 60,
                          "churn of endpoints to the %s after recovery" % peer)
            if not passed(text):
                raise Failed("churn to the %s after recovery: %s" % (peer, text.strip()[-300:]))
        for side, who in ((self.server, "server"), (self.proxy, "proxy")):
            n = self.rng.randint(1, 256)
            text = output(side, command(side, "rng 0 %d" % n), 30, who + "'s rng after recovery")
            if "rng 0: %d bytes" % n not in text:
                raise Failed("%s's rng after recovery: %s" % (who, text.strip()[-300:]))
        self.check_sanitizers()

    def run(self):
        subprocess.run(["rm", "-f", "/dev/shm/duet-" + self.args.name])
        self.start_server()
        self.start_proxy()
        t0 = time.monotonic()
        for self.cycle in range(1, self.args.cycles + 1):
            self.both_ready()
            self.fault(*self.traffic())
            self.check()
        self.server.send("quit")
        rs = self.server.finish(30)
        self.proxy.send("quit")
        rp = self.proxy.finish(30)
        self.check_sanitizers()
        if rs or rp:
            raise Failed("exit status at the end: server %d, proxy %d" % (rs, rp))
        return time.monotonic() - t0

    def tails(self):
        """What each side said last, and for one still running, its own
        account of the link (`status`, `rpmsg dump all`) and where its
        threads are: a side that hangs is caught in the act, which a rerun
        with the same seed does not promise (the same faults, not the same
        timing)."""
        for side, who in ((self.server, "server"), (self.proxy, "proxy")):
            if not side:
                continue
            with side.lock:
                print("---- %s (pid %d, duet %s), last output:\n%s" % (
                    who, side.proc.pid, " ".join(side.args), side.buf[-3000:]))
            if side.proc.poll() is not None:
                continue
            side.pos = len(side.buf)
            status = ""
            try:
                status = output(side, command(side, "status"), 5, who + " status")
                status += output(side, command(side, "rpmsg dump all"), 5, who + " rpmsg dump")
            except Failed as e:
                status += str(e) + "\n"
            print("---- %s status:\n%s---- %s threads:\n%s" % (
                who, status, who, backtraces(side.proc.pid)))

    def stop_all(self):
        for side in (self.server, self.proxy):
            if side and side.proc.poll() is None:
                side.kill()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--bin", default=None)
    ap.add_argument("--name", default="soak-%d" % os.getpid())
    ap.add_argument("--faults", default=None,
                    help="only these faults, comma-separated (e.g. 'kill proxy twice')")
    ap.add_argument("--twice-ms", default="0-50",
                    help="a kill twice kills the second process this long after its start "
                         "(LO-HI, at random; default 0-50)")
    for side in ("server", "proxy"):
        ap.add_argument("--%s-waiting" % side, default=None, metavar="ARGS",
                        help="how each %s waits, instead of at random (e.g. "
                             "--%s-waiting='--loop wait --spin 0')" % (side, side))
    args = ap.parse_args()
    for side in ("server", "proxy"):
        key = side + "_waiting"
        if getattr(args, key) is not None:
            setattr(args, key, getattr(args, key).split())
    if args.faults:
        args.faults = [f.strip() for f in args.faults.split(",")]
        unknown = [f for f in args.faults if f not in FAULTS + OPT_IN]
        if unknown:
            sys.exit("soak: unknown fault %s (the faults: %s)" % (
                ", ".join(repr(f) for f in unknown), ", ".join(sorted(set(FAULTS + OPT_IN)))))
    try:
        lo, hi = (float(x) / 1000 for x in args.twice_ms.split("-"))
        if not 0 <= lo <= hi:
            raise ValueError
    except ValueError:
        sys.exit("soak: --twice-ms takes LO-HI in ms, 0 <= LO <= HI (e.g. 8-15)")
    args.twice_s = (lo, hi)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    if args.bin is None:
        for cand in ("build/asan/duet", "build/gcc/duet"):
            if os.access(os.path.join(TOP, cand), os.X_OK):
                args.bin = os.path.join(TOP, cand)
                break
        else:
            sys.exit("soak: no duet binary (make test-asan, or make)")
    soak = Soak(args)
    try:
        took = soak.run()
    except (Failed, subprocess.TimeoutExpired) as e:
        print("soak: FAILED in cycle %d of %d (seed %d, %s): %s" % (
            soak.cycle, args.cycles, args.seed, args.bin, e))
        soak.tails()
        soak.stop_all()
        subprocess.run(["rm", "-f", "/dev/shm/duet-" + args.name])
        sys.exit(1)
    print("soak: %d cycles passed in %.0f s (seed %d, %s); faults: %s; traffic a fault cut short: %d" % (
        args.cycles, took, args.seed, os.path.relpath(args.bin, TOP),
        ", ".join("%s %d" % kv for kv in sorted(soak.counts.items())), soak.cut) +
          ("; writes of garbage: %d" % soak.scribbled if soak.scribbled else ""))


if __name__ == "__main__":
    main()
