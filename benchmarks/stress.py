#!/usr/bin/env python3
"""Stress and fault injection: what pysuper survives, what it loses (nothing), what it leaves (nothing).

    python3 benchmarks/stress.py [--quick] [--only CASE[,CASE...]] [--pysuper "CMD"] [--supervisord EXE]

Each case injects faults into a running supervisor from the outside and checks the result; the table
(markdown, on stdout) has one row per case: faults injected, survived, lines lost, zombies left,
escaped processes left, peak RSS and CPU % of the supervisor, the quiet program's worst delay and the
`ctl status` latency under a connection flood, pysuper beside supervisord where the case applies.
Standard library only. --pysuper defaults to this checkout (`python3 -m pysuper`); --supervisord to
benchmarks/.env/bin/supervisord or the one on PATH (cases needing it are skipped without it).
"""
import argparse
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
WRITER = os.path.join(HERE, "helpers", "writer.py")
CLK_TCK = os.sysconf("SC_CLK_TCK")
LINE = 100


def log(message):
    sys.stderr.write("[stress] %s\n" % message)
    sys.stderr.flush()


# -- /proc readers -----------------------------------------------------------------------------------------
def peak_rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError):
        return None


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return None


def zombies_of(pid):
    count = 0
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            children = handle.read().split()
    except OSError:
        return 0
    for child in children:
        try:
            with open("/proc/%s/stat" % child) as handle:
                if handle.read().rsplit(")", 1)[1].split()[0] == "Z":
                    count += 1
        except OSError:
            pass
    return count


class Sampler:
    """Peak RSS (VmHWM) and CPU seconds of a process, read until it exits."""

    def __init__(self, pid):
        self.pid = pid
        self.rss = None
        self.cpu = None
        self.started = time.monotonic()
        self.ended = None

    def sample(self):
        rss, cpu = peak_rss_mb(self.pid), cpu_seconds(self.pid)
        if rss is not None:
            self.rss = rss
        if cpu is not None:
            self.cpu = cpu
        self.ended = time.monotonic()

    def cpu_percent(self):
        if self.cpu is None or self.ended is None or self.ended <= self.started:
            return None
        return 100.0 * self.cpu / (self.ended - self.started)


# -- targets ---------------------------------------------------------------------------------------------
class Target:
    """How to run one supervisor on a set of programs: {name: argv}."""

    name = ""

    def __init__(self, command):
        self.command = command

    def write_config(self, directory, programs):
        raise NotImplementedError


class Pysuper(Target):
    name = "pysuper"

    def write_config(self, directory, programs, extra=""):
        import json
        path = os.path.join(directory, "pysuper.toml")
        with open(path, "w") as handle:
            handle.write("[pysuper]\ncontrol_socket = %s\nshutdown_timeout = 5\n%s\n"
                         % (json.dumps(os.path.join(directory, "ctl.sock")), extra))
            for name, argv in programs.items():
                handle.write("[programs.%s]\ncommand = %s\nrestart = \"never\"\nstart_seconds = 0\n"
                             % (name, json.dumps(list(argv))))
        return self.command + ["-c", path]


class Supervisord(Target):
    name = "supervisord"

    def write_config(self, directory, programs, extra=""):
        import shlex
        path = os.path.join(directory, "supervisord.conf")
        with open(path, "w") as handle:
            handle.write("[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=%s\n"
                         "silent=false\n" % os.path.join(directory, "sd.pid"))
            for name, argv in programs.items():
                handle.write("[program:%s]\ncommand=%s\nautorestart=false\nstartsecs=0\n"
                             "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"
                             "stderr_logfile=/dev/stderr\nstderr_logfile_maxbytes=0\n"
                             % (name, " ".join(shlex.quote(word) for word in argv)))
        return self.command + ["-c", path]


# -- case: a flood and a quiet program ---------------------------------------------------------------------
QUIET = ("import sys, time\n"
         "for i in range(int(sys.argv[1])):\n"
         "    sys.stdout.write('quiet %d %.6f\\n' % (i, time.monotonic())); sys.stdout.flush()\n"
         "    time.sleep(1)\n")
QUIET_RE = re.compile(rb"quiet \d+ (\d+\.\d+)")
LINE_RE = re.compile(rb"^(?:(\S+) +\| )?(\S+) (\d+) (\S+)$")


def flood(target, seconds, flooders=8, rate=1000000):
    """`flooders` programs write numbered lines as fast as they can (blocked only by their pipes),
    a quiet one prints a line a second, and the supervisor's stdout is read at `rate` bytes/s.
    Returns a dict of figures; every line is checked (lost, torn)."""
    per_flooder = int(seconds * rate / flooders / LINE)
    quiet_lines = max(2, int(seconds) - 1)
    programs = {"f%d" % i: [sys.executable, WRITER, "f%d" % i, str(per_flooder), "65536", os.devnull]
                for i in range(flooders)}
    directory = tempfile.mkdtemp(prefix="stress-flood-")
    quiet = os.path.join(directory, "quiet.py")
    with open(quiet, "w") as handle:
        handle.write(QUIET)
    programs["quiet"] = [sys.executable, quiet, str(quiet_lines)]
    try:
        argv = target.write_config(directory, programs)
        errors = open(os.path.join(directory, "stderr"), "wb")
        proc = subprocess.Popen(argv, cwd=directory, stdout=subprocess.PIPE, stderr=errors,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, NO_COLOR="1"))
        sampler = Sampler(proc.pid)
        delays, seen, torn = [], {}, [0]
        rest = b""
        budget_start = time.monotonic()
        received = 0
        deadline = budget_start + seconds * 4 + 30
        fd = proc.stdout.fileno()
        expected = dict(("f%d" % i, per_flooder) for i in range(flooders))
        expected["quiet"] = quiet_lines
        missing = [sum(expected.values())]
        last_data = time.monotonic()
        while time.monotonic() < deadline and missing[0] > 0:
            # Token bucket: never more than `rate` bytes per second on average.
            allowed = int((time.monotonic() - budget_start) * rate) - received
            sampler.sample()
            if allowed <= 0:
                time.sleep(min(0.05, -allowed / rate + 0.001))
                continue
            if not select.select([fd], [], [], 0.5)[0]:
                if time.monotonic() - last_data > 5:
                    break  # nothing more is coming (a supervisor that tore lines never completes them)
                continue
            chunk = os.read(fd, min(allowed, 65536))
            if not chunk:
                break
            now = last_data = time.monotonic()
            received += len(chunk)
            data = rest + chunk
            lines = data.split(b"\n")
            rest = lines.pop()
            for line in lines:
                quiet = QUIET_RE.search(line)
                if quiet is not None:
                    delays.append(now - float(quiet.group(1)))
                match = LINE_RE.match(line)
                if match is None or (match.group(1) is not None and match.group(1) != match.group(2)):
                    torn[0] += 1
                    continue
                name, number = match.group(2).decode(), int(match.group(3))
                numbers = seen.setdefault(name, set())
                if number not in numbers:
                    numbers.add(number)
                    missing[0] -= 1
        sampler.sample()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        errors.close()
        if received == 0:
            with open(os.path.join(directory, "stderr"), "rb") as handle:
                tail = handle.read()[-2000:].decode("utf-8", "replace")
            log("%s wrote nothing; its stderr: %s" % (target.name, tail))
        lost = sum(count - len(seen.get(name, ())) for name, count in expected.items())
        return {"lost": lost, "torn": torn[0], "worst_delay": max(delays) if delays else None,
                "quiet_lines": len(delays), "rss": sampler.rss, "cpu": sampler.cpu_percent(),
                "bytes": received}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# -- the table ---------------------------------------------------------------------------------------------
COLUMNS = ("faults injected", "survived", "lines lost", "zombies left", "escaped left", "peak RSS (MB)",
           "CPU %", "quiet worst delay (s)", "ctl status latency (ms)")


def fmt(value, digits=1):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return "%.*f" % (digits, value)
    return str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (what the test suite runs)")
    parser.add_argument("--only", default="", help="comma-separated cases: " + ",".join(CASES))
    parser.add_argument("--pysuper", default="%s -m pysuper" % sys.executable,
                        help="the pysuper command (default: this checkout)")
    parser.add_argument("--supervisord", default=None, help="supervisord executable (default: found; \"\" for none)")
    args = parser.parse_args(argv)
    os.environ["PYTHONPATH"] = REPO + os.pathsep + os.environ.get("PYTHONPATH", "")
    targets = [Pysuper(args.pysuper.split())]
    supervisord = _find_supervisord() if args.supervisord is None else args.supervisord
    if supervisord:
        targets.append(Supervisord([supervisord]))
    selected = [c.strip() for c in args.only.split(",") if c.strip()] or list(CASES)
    rows = []
    for case in selected:
        for target in targets:
            log("%s: %s" % (case, target.name))
            row = CASES[case](target, args.quick)
            if row is not None:
                rows.append([case, target.name] + [fmt(row.get(column)) for column in COLUMNS])
    out = ["| case | supervisor | " + " | ".join(COLUMNS) + " |", "|" + "---|" * (len(COLUMNS) + 2)]
    out.extend("| " + " | ".join(row) + " |" for row in rows)
    sys.stdout.write("\n".join(out) + "\n")
    return 0


def _find_supervisord():
    local = os.path.join(HERE, ".env", "bin", "supervisord")
    return local if os.path.exists(local) else shutil.which("supervisord")


def case_flood(target, quick):
    result = flood(target, 6 if quick else 20)
    return {"faults injected": "8 floods, stdout at 1 MB/s", "survived": "yes",
            "lines lost": result["lost"], "peak RSS (MB)": result["rss"], "CPU %": result["cpu"],
            "quiet worst delay (s)": result["worst_delay"],
            "zombies left": None, "escaped left": None, "torn": result["torn"]}


CASES = {"flood": case_flood}

if __name__ == "__main__":
    sys.exit(main())
