"""Orchestration scenarios (pysuper only: the anchors have no ready or health checks).

- checks-idle: 100 programs whose `ready = { tcp }` checks have passed, none with `health`: wakeups/s
  of pysuper while idle (target 0).
- checks-health: 10 programs with `health = { tcp, interval = 10 }`: wakeups/s (about one per check,
  so about 1/s, or fewer when checks are due together) and pysuper's CPU per check.
- chain: a 10-deep chain of small servers, each `ready = { tcp }` and depending on the one before
  (`depends_on = { prev = "ready" }`): launch -> last one ready, against the sum of the servers' own
  start times (each started alone, directly, and timed to its first accepted connection). Target:
  within 50 ms of that sum.
- replicas: one [programs.web] with `replicas = 100` (each announces itself): launch -> all running,
  against 100 declared programs launched the same way in the same run.

The checks connect to one listener of the benchmark itself, so "ready" is real and no extra process
per program is needed. Waits are events (pysuper's own log lines, the announce FIFO), never sleeps,
except the idle windows that are measured.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import harness as H
from scenarios import Row, fmt, median, verdict

SERVER = ("import socket, sys\n"
          "s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
          "s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(64)\n"
          "while True: s.accept()[0].close()\n")


class Listener:
    """A TCP listener in a thread that accepts and closes: what the checks of the scenarios reach."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self):
        self.sock.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Run:
    """pysuper on a TOML text in its own directory; its stderr lines read by a thread."""

    def __init__(self, ctx, label, toml):
        self.dir = H.workdir(ctx.root, label)
        path = os.path.join(self.dir, "pysuper.toml")
        with open(path, "w") as f:
            f.write('[pysuper]\ncontrol_socket = %s\n\n' % json.dumps(os.path.join(self.dir, "ctl.sock")) + toml)
        self.lines = []
        self.cond = threading.Condition()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([ctx.tools.pysuper, "-c", path], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.dir,
                                     start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.proc.stderr:
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode(errors="replace")))
                self.cond.notify_all()

    def wait_count(self, text, n, timeout=60.0):
        """Monotonic time of the n-th stderr line containing text, or None after timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                found = [t for t, line in self.lines if text in line]
                if len(found) >= n:
                    return found[n - 1]
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self, extra_pids=()):
        H.kill_everything(self.proc, extra_pids)
        shutil.rmtree(self.dir, ignore_errors=True)


def _sleepers(count, prefix, extra):
    return "".join('[programs.%s%03d]\ncommand = ["sleep", "100000"]\n%s\n' % (prefix, i, extra)
                   for i in range(count))


def scenario_checks_idle(ctx):
    window = 2.0 if ctx.quick else 20.0
    listener = Listener()
    run = Run(ctx, "checks-idle", _sleepers(100, "p", "ready = { tcp = %d, interval = 0.2 }\n" % listener.port))
    try:
        ready = run.wait_count(": ready after", 100)
        wakeups = None
        if ready is not None:
            time.sleep(0.5)  # the last lines are written and the last try's socket closed
            c0 = H.ctx_switches(run.proc.pid)
            time.sleep(window)  # the measured idle window
            wakeups = (H.ctx_switches(run.proc.pid) - c0) / window
    finally:
        run.close()
        listener.close()
    return [Row("checks", "100 × sleep, ready = { tcp } passed, no health, over %.0f s" % window, "wakeups/s",
                {"pysuper": fmt(wakeups, digits=2)}, target="0",
                met=verdict(wakeups < 0.1 if wakeups is not None else None),
                check="ready: %s" % ("100/100" if ready is not None else "not all"))]


def _health_run(ctx, interval, window, stagger=False):
    """10 programs with a tcp health check every `interval`: (wakeups/s, CPU seconds per check, checks)
    over `window` seconds, measured from one interval after they are running. Programs that become
    RUNNING together have their checks due together (one wakeup serves them all); with `stagger`,
    program i becomes RUNNING after start_seconds = 0.1 + i/10 of the interval, so every check is
    due at its own moment (the worst case: a wakeup of its own per check)."""
    listener = Listener()
    health = "health = { tcp = %d, interval = %g }\n" % (listener.port, interval)
    toml = "".join('[programs.h%03d]\ncommand = ["sleep", "100000"]\nstart_seconds = %g\n%s\n'
                   % (i, (0.1 + i * interval / 10) if stagger else 0, health) for i in range(10))
    run = Run(ctx, "checks-health", toml)
    try:
        if run.wait_count(": started with pid", 10) is None:
            return None, None, 0
        # the first checks come one interval after RUNNING (start_seconds after the start)
        time.sleep(interval * (2 if stagger else 1) + 0.5)
        c0, cpu0, a0 = H.ctx_switches(run.proc.pid), H.cpu_seconds(run.proc.pid), listener.accepted
        time.sleep(window)  # the measured window
        checks = listener.accepted - a0
        wakeups = (H.ctx_switches(run.proc.pid) - c0) / window
        return wakeups, (H.cpu_seconds(run.proc.pid) - cpu0) / checks if checks else None, checks
    finally:
        run.close()
        listener.close()


def scenario_checks_health(ctx):
    interval = 2.0 if ctx.quick else 10.0
    window = 2 * interval if ctx.quick else 30.0
    wakeups, _, checks = _health_run(ctx, interval, window)
    spread, _, spread_checks = _health_run(ctx, interval, window, stagger=True)
    # CPU per check from many checks: /proc counts CPU time in 10 ms ticks
    _, per_check, many = _health_run(ctx, 0.05, 2.0 if ctx.quick else 10.0)
    expected = 10 / interval
    return [
        Row("checks", "10 × health = { tcp, interval = %g } over %.0f s" % (interval, window), "wakeups/s",
            {"pysuper": fmt(wakeups, digits=2)}, target="≈ %g (one per check)" % expected,
            met=verdict(wakeups <= 2 * expected + 0.2 if wakeups is not None else None),
            check="%d checks answered; the checks are due together, so they share wakeups" % checks),
        Row("checks", "10 × health = { tcp, interval = %g }, due at 10 different moments, over %.0f s"
            % (interval, window), "wakeups/s",
            {"pysuper": fmt(spread, digits=2)}, target="≈ %g (one per check)" % expected,
            met=verdict(spread <= 2 * expected + 0.2 if spread is not None else None),
            check="%d checks answered" % spread_checks),
        Row("checks", "10 × health = { tcp, interval = 0.05 }", "CPU per health check (ms)",
            {"pysuper": fmt(per_check * 1000 if per_check is not None else None)},
            check="an average over %d checks" % many),
    ]


def _own_start(port, python):
    """Seconds from starting the server alone to its first accepted connection (tried every 1 ms)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([python, "-c", SERVER, str(port)], stdin=subprocess.DEVNULL)
    try:
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return time.monotonic() - t0
            if time.monotonic() - t0 > 30:
                return None
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()


def scenario_chain(ctx):
    depth = 10
    reps = 1 if ctx.quick else 3
    python = sys.executable
    totals, sums = [], []
    for rep in range(reps):
        ports = [free_port() for _ in range(depth)]
        H.log("chain run %d/%d" % (rep + 1, reps))
        own = [_own_start(port, python) for port in ports]
        toml = ""
        for i, port in enumerate(ports):
            toml += '[programs.s%d]\ncommand = %s\nready = { tcp = %d, interval = 1 }\n' % (
                i, json.dumps([python, "-c", SERVER, str(port)]), port)
            if i:
                toml += 'depends_on = { s%d = "ready" }\n' % (i - 1)
            toml += "\n"
        run = Run(ctx, "chain", toml)
        try:
            last = run.wait_count("s%d: ready after" % (depth - 1), 1)
            first = run.wait_count("starting s0", 1, timeout=0)
            if last is not None and first is not None and None not in own:
                totals.append(last - first)
                sums.append(sum(own))
        finally:
            run.close()
    total, own_sum = median(totals), median(sums)
    over = total - own_sum if total is not None and own_sum is not None else None
    return [Row("chain", "10-deep chain of servers, each ready = { tcp }", "first start → last ready (ms)",
                {"pysuper": fmt(total * 1000 if total is not None else None, digits=0)},
                baseline="sum of own start times %s ms" % fmt(own_sum * 1000 if own_sum else None, digits=0),
                target="≤ sum + 50 ms", met=verdict(over <= 0.05 if over is not None else None),
                check="over the sum: %s ms (from pysuper's \"starting\" line; its own start-up is apart)"
                      % fmt(over * 1000 if over is not None else None, digits=0))]


def _launch_to_running(ctx, label, toml_for):
    """Seconds from launching pysuper on toml_for(argv of an announcing sleeper) until 100 programs
    announced themselves (None on timeout), and how many did."""
    wd = H.workdir(ctx.root, label)
    ann = H.Announcer(wd)
    argv = [a.replace("$", "$$") for a in H.sleeper_argv(ann.path)]
    run = Run(ctx, label, toml_for(json.dumps(argv)))
    try:
        done = ann.wait(100, timeout=60)
        return (done - run.t0 if done is not None else None), len(ann.pids)
    finally:
        run.close(ann.pids)
        ann.close()
        shutil.rmtree(wd, ignore_errors=True)


def scenario_replicas(ctx):
    """replicas = 100 against 100 declared programs, alternating in the same run."""
    reps = 1 if ctx.quick else 3
    replicas, declared, counts = [], [], []
    for _ in range(reps):
        took, count = _launch_to_running(
            ctx, "replicas", lambda argv: "[programs.web]\ncommand = %s\nreplicas = 100\n" % argv)
        replicas.append(took)
        counts.append(count)
        took, _ = _launch_to_running(ctx, "declared", lambda argv: "".join(
            "[programs.web%03d]\ncommand = %s\n\n" % (i, argv) for i in range(100)))
        declared.append(took)
    with_replicas, plain = median(replicas), median(declared)
    return [Row("replicas", "replicas = 100 (sleep)", "launch → all running (ms)",
                {"pysuper": fmt(with_replicas * 1000 if with_replicas is not None else None, digits=0)},
                baseline="100 declared programs %s ms" % fmt(plain * 1000 if plain is not None else None, digits=0),
                target="as 100 declared programs",
                met=verdict(with_replicas <= plain * 1.2 + 0.02 if None not in (with_replicas, plain) else None),
                check="running: %d/100" % min(counts))]


SCENARIOS = {
    "checks-idle": scenario_checks_idle,
    "checks-health": scenario_checks_health,
    "chain": scenario_chain,
    "replicas": scenario_replicas,
}
