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

    def write_config(self, directory, programs, restart=False):
        import json
        path = os.path.join(directory, "pysuper.toml")
        with open(path, "w") as handle:
            handle.write("[pysuper]\ncontrol_socket = %s\nshutdown_timeout = 5\n"
                         % json.dumps(os.path.join(directory, "ctl.sock")))
            for name, argv in programs.items():
                handle.write("[programs.%s]\ncommand = %s\nrestart = \"%s\"\nstart_seconds = 0\nstop_timeout = 1\n"
                             "start_retries = 1\n" % (name, json.dumps(list(argv)), "always" if restart else "never"))
        return self.command + ["-c", path]


class Supervisord(Target):
    name = "supervisord"

    def write_config(self, directory, programs, restart=False):
        import shlex
        path = os.path.join(directory, "supervisord.conf")
        with open(path, "w") as handle:
            handle.write("[supervisord]\nnodaemon=true\nlogfile=/dev/null\nlogfile_maxbytes=0\npidfile=%s\n"
                         "silent=false\n" % os.path.join(directory, "sd.pid"))
            for name, argv in programs.items():
                handle.write("[program:%s]\ncommand=%s\nautorestart=%s\nstartsecs=0\nstopwaitsecs=1\n"
                             "stopasgroup=true\nkillasgroup=true\n"
                             "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n"
                             "stderr_logfile=/dev/stderr\nstderr_logfile_maxbytes=0\n"
                             % (name, " ".join(shlex.quote(word) for word in argv),
                                "true" if restart else "false"))
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


# -- the other cases: a supervisor started, faults injected, then SIGTERM ------------------------------------
class Run:
    """A supervisor running `programs` in a temporary directory; stopped and cleaned up by stop()."""

    def __init__(self, target, programs, restart=False, prefix=(), stdout=None, env=None):
        self.directory = tempfile.mkdtemp(prefix="stress-%s-" % target.name)
        self.target = target
        argv = target.write_config(self.directory, programs, restart)
        self.errors_path = os.path.join(self.directory, "stderr")
        with open(self.errors_path, "wb") as errors:
            self.proc = subprocess.Popen(list(prefix) + argv, cwd=self.directory, stdin=subprocess.DEVNULL,
                                         stdout=stdout if stdout is not None else subprocess.DEVNULL,
                                         stderr=errors, env=dict(os.environ, NO_COLOR="1", STRESS_RUN=self.directory,
                                                                 **(env or {})))
        self.sampler = Sampler(self.proc.pid)

    def errors(self):
        with open(self.errors_path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")

    def wait_for(self, text, timeout=20.0):
        deadline = time.monotonic() + timeout
        while text not in self.errors() and time.monotonic() < deadline and self.proc.poll() is None:
            self.sampler.sample()
            time.sleep(0.05)
        return text in self.errors()

    def stop(self, timeout=15.0):
        """SIGTERM; True if the supervisor exited within `timeout` (it is killed otherwise)."""
        self.sampler.sample()
        self.zombies = zombies_of(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
            survived = True
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            survived = False
        return survived

    def cleanup(self):
        """Remove the directory and kill what the supervisor left running (found by STRESS_RUN)."""
        tag = ("STRESS_RUN=%s" % self.directory).encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open("/proc/%s/environ" % entry, "rb") as handle:
                        if tag in handle.read().split(b"\0"):
                            os.kill(int(entry), signal.SIGKILL)
                except OSError:
                    continue
        shutil.rmtree(self.directory, ignore_errors=True)


# Starts a setsid child and a double-forked setsid grandchild that ignores SIGTERM, notes their pids.
ESCAPER = ("import os, signal, sys, time\n"
           "def note():\n"
           "    with open(sys.argv[1], 'a') as f: f.write('%d\\n' % os.getpid())\n"
           "if os.fork() == 0:\n"
           "    os.setsid(); note()\n"
           "    while True: time.sleep(60)\n"
           "if os.fork() == 0:\n"
           "    if os.fork() == 0:\n"
           "        os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN); note()\n"
           "        while True: time.sleep(60)\n"
           "    os._exit(0)\n"
           "while True: time.sleep(60)\n")


def alive(pid):
    """True while pid runs (a zombie has ended)."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def case_escape(target, quick):
    count = 3 if quick else 10
    pids_file = tempfile.mktemp(prefix="stress-escaped-")
    script = pids_file + ".py"
    with open(script, "w") as handle:
        handle.write(ESCAPER)
    run = Run(target, {"e%d" % i: [sys.executable, script, pids_file] for i in range(count)})
    try:
        deadline = time.monotonic() + 20
        pids = []
        while len(pids) < 2 * count and time.monotonic() < deadline:
            time.sleep(0.05)
            run.sampler.sample()
            pids = [int(x) for x in open(pids_file).read().split()] if os.path.exists(pids_file) else []
        survived = run.stop()
        left = [pid for pid in pids if alive(pid)]
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        return {"faults injected": "%d escaped processes (setsid, double fork; half ignore SIGTERM)" % len(pids),
                "survived": "yes" if survived else "no", "escaped left": len(left),
                "zombies left": run.zombies, "peak RSS (MB)": run.sampler.rss, "CPU %": run.sampler.cpu_percent()}
    finally:
        run.cleanup()
        for path in (pids_file, script):
            if os.path.exists(path):
                os.unlink(path)


BLOCKER = ("import os, signal, sys\n"
           "signal.signal(signal.SIGPIPE, signal.SIG_DFL)\n"
           "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGCHLD, signal.SIGINT])\n"
           "signal.signal(signal.SIGHUP, signal.SIG_IGN)\n"
           "os.execvp(sys.argv[1], sys.argv[1:])\n")


def case_signals(target, quick):
    """Started with SIGTERM, SIGCHLD and SIGINT blocked and SIGHUP ignored; crash-looping programs."""
    programs = {"crash%d" % i: ["sh", "-c", "sleep 0.2; exit 1"] for i in range(3)}
    programs["steady"] = ["sleep", "600"]
    run = Run(target, programs, restart=True, prefix=[sys.executable, "-c", BLOCKER])
    try:
        end = time.monotonic() + (3 if quick else 10)
        while time.monotonic() < end:
            run.sampler.sample()
            time.sleep(0.1)
        survived = run.stop(10)
        return {"faults injected": "SIGTERM, SIGCHLD, SIGINT blocked and SIGHUP ignored at start; 3 crash loops",
                "survived": "yes" if survived else "no (SIGTERM never seen)", "zombies left": run.zombies,
                "peak RSS (MB)": run.sampler.rss, "CPU %": run.sampler.cpu_percent()}
    finally:
        run.cleanup()


NUMBERED = ("import sys\n"
            "for i in range(int(sys.argv[1])): sys.stdout.write('line %06d\\n' % i)\n"
            "sys.stdout.write('done\\n'); sys.stdout.flush()\n"
            "import time; time.sleep(600)\n")


def case_full_disk(target, quick):
    """stdout to a file on a full 256 KiB tmpfs; space is freed after 2 s."""
    if os.geteuid() != 0:
        return None
    disk = tempfile.mkdtemp(prefix="stress-disk-")
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", disk], capture_output=True).returncode:
        os.rmdir(disk)
        return None
    count = 3000
    try:
        filler = os.path.join(disk, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError:
            pass
        os.close(fd)
        out_path = os.path.join(disk, "out.log")
        with open(out_path, "wb") as out:
            run = Run(target, {"w": [sys.executable, "-c", NUMBERED, str(count)]}, stdout=out)
        try:
            time.sleep(2)  # the fault lasts this long
            os.unlink(filler)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                run.sampler.sample()
                with open(out_path, "rb") as handle:
                    if b"done\n" in handle.read():
                        break
                time.sleep(0.1)
            survived = run.stop()
            with open(out_path, "rb") as handle:
                seen = set(re.findall(rb"line (\d{6})\n", handle.read()))
            reports = run.errors().count("cannot write to stdout")
            return {"faults injected": "ENOSPC on stdout for 2 s (%d report%s)" % (reports, "" if reports == 1
                                                                                 else "s"),
                    "survived": "yes" if survived else "no", "lines lost": count - len(seen),
                    "zombies left": run.zombies, "peak RSS (MB)": run.sampler.rss, "CPU %": run.sampler.cpu_percent()}
        finally:
            run.cleanup()
    finally:
        subprocess.run(["umount", "-l", disk], capture_output=True)
        os.rmdir(disk)


FD_LIMIT = ("import os, resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
            "os.execvp(sys.argv[1], sys.argv[1:])\n")


def case_fds(target, quick):
    """RLIMIT_NOFILE 64 and 40 programs: some cannot start."""
    run = Run(target, {"p%02d" % i: ["sleep", "600"] for i in range(40)}, prefix=[sys.executable, "-c", FD_LIMIT])
    try:
        end = time.monotonic() + 3
        while time.monotonic() < end and run.proc.poll() is None:
            run.sampler.sample()
            time.sleep(0.1)
        alive = run.proc.poll() is None
        leaked = _leaked_pipe_ends(run.proc.pid, run.errors().count("started with pid")) if alive else None
        latency = None
        if alive and target.name == "pysuper":
            latency = _ctl_latency(target, run, 3)
        survived = run.stop() and alive
        leak = "" if target.name != "pysuper" or leaked is None else "; pipe ends leaked: %d" % leaked
        return {"faults injected": "EMFILE (RLIMIT_NOFILE 64, 40 programs)" + leak,
                "survived": "yes" if survived else "no: " + _first_error(run.errors()),
                "zombies left": run.zombies, "peak RSS (MB)": run.sampler.rss, "CPU %": run.sampler.cpu_percent(),
                "ctl status latency (ms)": latency}
    finally:
        run.cleanup()


def _leaked_pipe_ends(pid, running):
    """pysuper's pipe descriptors beyond its loop's wakeup pipe and two per running program (its own
    stdout and stderr, reopened, do not count)."""
    pipes = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            pipes[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
    shared = {pipes.get(1), pipes.get(2)}
    ours = [link for link in pipes.values() if link.startswith("pipe:") and link not in shared]
    return len(ours) - 2 - 2 * running


def _first_error(text):
    lines = text.strip().splitlines() or ["(nothing on stderr)"]
    return next((line for line in lines if "rror" in line), lines[-1])[:80]


def _ctl_latency(target, run, repeats):
    """Median milliseconds of `pysuper ctl status` (a whole client process) against run."""
    times = []
    for _ in range(repeats):
        start = time.monotonic()
        subprocess.run(target.command + ["ctl", "--socket", os.path.join(run.directory, "ctl.sock"), "status"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        times.append((time.monotonic() - start) * 1000)
    return sorted(times)[len(times) // 2]


def case_connections(target, quick):
    """200 idle control connections and 50 clients at once that connect and hang up."""
    if target.name != "pysuper":
        return None
    import socket
    run = Run(target, {"p%02d" % i: ["sleep", "600"] for i in range(10)})
    idle = []
    try:
        path = os.path.join(run.directory, "ctl.sock")
        deadline = time.monotonic() + 20
        while not os.path.exists(path) and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in range(200):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
            idle.append(conn)
        for _ in range(50):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(path)
            conn.close()
        latency = _ctl_latency(target, run, 3 if quick else 9)
        for conn in idle:
            conn.close()
        idle = []
        survived = run.stop()
        return {"faults injected": "250 hostile connections (200 idle)", "survived": "yes" if survived else "no",
                "zombies left": run.zombies, "peak RSS (MB)": run.sampler.rss, "CPU %": run.sampler.cpu_percent(),
                "ctl status latency (ms)": latency}
    finally:
        for conn in idle:
            conn.close()
        run.cleanup()


CASES = {"flood": case_flood, "escape": case_escape, "signals": case_signals, "full-disk": case_full_disk,
         "fds": case_fds, "connections": case_connections}

if __name__ == "__main__":
    sys.exit(main())
