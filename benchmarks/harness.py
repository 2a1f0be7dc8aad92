"""Set-up, /proc readers and launchers for the benchmark targets (pysuper, supervisord, tini, dumb-init).

Standard library only, so the harness runs under any Python 3.9+; the supervisors run from the
benchmark's own virtualenv (benchmarks/.env) or from the system (tini, dumb-init).
"""
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
ENV = os.path.join(HERE, ".env")
HELPERS = os.path.join(HERE, "helpers")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    sys.stderr.write("[bench] %s\n" % msg)
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------
# set-up


class Tools:
    """Paths of everything a run needs; fields are None when a tool is unavailable."""

    def __init__(self):
        self.python = None  # the virtualenv's interpreter
        self.supervisord = None
        self.supervisor_version = None
        self.pysuper = None
        self.pysuper_version = None
        self.pysuper_python = None  # the interpreter pysuper runs on (for -X importtime)
        self.tini = None
        self.dumb_init = None
        self.helper = None  # argv prefix for helper orphans/crash
        self.writer = None  # argv prefix for the line writer: + NAME COUNT BLOCK STARTFILE
        self.unshare_ok = False
        self.notes = []


def _run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def _fingerprint():
    """Content hash of what a pysuper install is built from."""
    import hashlib
    h = hashlib.sha256()
    pkg = os.path.join(REPO, "pysuper")
    for name in sorted(os.listdir(pkg)) + ["../pyproject.toml"]:
        path = os.path.join(pkg, name)
        if name.endswith((".py", ".toml")) and os.path.isfile(path):
            h.update(name.encode())
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def setup(install=True, want_pysuper=True, pysuper_exe=None):
    t = Tools()
    py = os.path.join(ENV, "bin", "python")
    if not os.path.exists(py) and install:
        log("creating virtualenv %s" % ENV)
        _run([sys.executable, "-m", "venv", ENV], check=True)
    if os.path.exists(py):
        t.python = py
        sd = os.path.join(ENV, "bin", "supervisord")
        if not os.path.exists(sd) and install:
            log("installing supervisor from PyPI into %s" % ENV)
            r = _run([py, "-m", "pip", "install", "-q", "supervisor"])
            if r.returncode:
                t.notes.append("pip install supervisor failed: %s" % r.stdout.strip().splitlines()[-1:])
        if os.path.exists(sd):
            t.supervisord = sd
            t.supervisor_version = _run([sd, "--version"]).stdout.strip()
    if t.supervisord is None:
        found = shutil.which("supervisord")
        if found:
            t.supervisord = found
            t.supervisor_version = _run([found, "--version"]).stdout.strip()
    # pysuper: a regular (not editable) install of this repository into the same virtualenv, redone whenever
    # the sources change. An editable install's import hook would add ~3 MB of RSS and ~15 ms of imports
    # (pathlib, importlib.util, ...) that no real image carries.
    if want_pysuper and pysuper_exe:
        r = _run([pysuper_exe, "--version"])
        if r.returncode == 0:
            t.pysuper = pysuper_exe
            t.pysuper_python = os.path.join(os.path.dirname(pysuper_exe), "python")
            t.pysuper_version = r.stdout.strip() + " (%s)" % pysuper_exe
        else:
            t.notes.append("%s --version failed: %s" % (pysuper_exe, r.stdout.strip()[-300:]))
    elif want_pysuper and t.python and os.path.exists(os.path.join(REPO, "pysuper", "cli.py")):
        ps = os.path.join(ENV, "bin", "pysuper")
        stamp = os.path.join(ENV, "pysuper.fingerprint")
        fp = _fingerprint()
        old = read_text(stamp) if os.path.exists(stamp) else ""
        if install and (fp != old or not os.path.exists(ps)):
            log("installing pysuper from %s into %s" % (REPO, ENV))
            r = _run([py, "-m", "pip", "install", "-q", "--force-reinstall", "--no-deps", REPO])
            if r.returncode == 0:
                r = _run([py, "-m", "pip", "install", "-q", REPO])  # dependencies, once
            if r.returncode:
                t.notes.append("pip install %s failed: %s" % (REPO, r.stdout.strip()[-300:]))
            else:
                with open(stamp, "w") as f:
                    f.write(fp)
        if os.path.exists(ps):
            r = _run([ps, "--version"])
            if r.returncode == 0:
                t.pysuper = ps
                t.pysuper_python = py
                t.pysuper_version = r.stdout.strip()
            else:
                t.notes.append("pysuper --version failed: %s" % r.stdout.strip()[-300:])
    elif want_pysuper:
        t.notes.append("pysuper/cli.py not found in %s: pysuper not measured" % REPO)
    for attr, name in (("tini", "tini"), ("dumb_init", "dumb-init")):
        setattr(t, attr, shutil.which(name))
    if install and (t.tini is None or t.dumb_init is None) and os.geteuid() == 0 and shutil.which("apt-get"):
        log("installing tini and dumb-init with apt-get")
        r = _run(["apt-get", "install", "-y", "-qq", "tini", "dumb-init"])
        if r.returncode:
            _run(["apt-get", "update", "-qq"])
            _run(["apt-get", "install", "-y", "-qq", "tini", "dumb-init"])
        t.tini, t.dumb_init = shutil.which("tini"), shutil.which("dumb-init")
    # C helper for orphans and crash timing; Python fallback otherwise.
    src = os.path.join(HELPERS, "helper.c")
    exe = os.path.join(ENV, "bin", "bench-helper") if os.path.isdir(ENV) else None
    cc = shutil.which("cc") or shutil.which("gcc")
    if exe and cc and (not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src)):
        r = _run([cc, "-O2", "-o", exe, src])
        if r.returncode:
            t.notes.append("could not compile helper.c: %s" % r.stdout.strip()[-200:])
    if exe and os.path.exists(exe):
        t.helper = [exe]
        t.writer = [exe, "write"]
    else:
        t.helper = [t.python or sys.executable, os.path.join(HELPERS, "helper.py")]
        t.writer = [t.python or sys.executable, "-S", os.path.join(HELPERS, "writer.py")]
        t.notes.append("no C compiler: writer, orphan and crash helpers run in Python (slower writers, "
                       "slower orphan creation)")
    t.unshare_ok = bool(shutil.which("unshare")) and _run(
        ["unshare", "--pid", "--fork", "--mount-proc", "true"]).returncode == 0
    if not t.unshare_ok:
        t.notes.append("unshare --pid --fork --mount-proc not permitted: reaping scenario skipped")
    return t


# ---------------------------------------------------------------------------------------------------------
# /proc readers


def read_text(path):
    with open(path) as f:
        return f.read()


def smaps_rollup(pid):
    """(RSS, PSS) in KiB."""
    rss = pss = None
    for line in read_text("/proc/%d/smaps_rollup" % pid).splitlines():
        if line.startswith("Rss:"):
            rss = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def ctx_switches(pid):
    """Voluntary + involuntary context switches over all threads of pid."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            for line in read_text("/proc/%d/task/%s/status" % (pid, tid)).splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except FileNotFoundError:
            pass
    return total


def stat_fields(pid):
    s = read_text("/proc/%d/stat" % pid)
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on


def cpu_seconds(pid):
    """User + system CPU seconds of pid itself (not its children); readable while it is a zombie."""
    f = stat_fields(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK


def children(pid):
    """Direct children of pid (all threads), zombies included."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                out.extend(int(x) for x in read_text("/proc/%d/task/%s/children" % (pid, tid)).split())
            except FileNotFoundError:
                pass
    except FileNotFoundError:
        pass
    return out


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = children(todo.pop())
        out.extend(kids)
        todo.extend(kids)
    return out


def state(pid):
    try:
        return stat_fields(pid)[0]
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None


def zombies_of(pid):
    """Number of zombie children of pid."""
    return sum(1 for c in children(pid) if state(c) == "Z")


def alive(pid):
    st = state(pid)
    return st is not None and st != "Z"


# ---------------------------------------------------------------------------------------------------------
# waiting without sleeping


def wait_exit(pid, timeout, reap=True):
    """Wait until pid (a child of ours) exits. Returns (monotonic exit time, cpu seconds of pid, exit code
    as subprocess reports it, or None when not reaped) or None on timeout. CPU time is read from /proc while
    the process is still a zombie; then it is reaped if asked."""
    deadline = time.monotonic() + timeout
    pfd = None
    try:
        pfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pass
    try:
        while True:
            try:
                info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return time.monotonic(), None, None
            if info is not None:
                t = time.monotonic()
                try:
                    cpu = cpu_seconds(pid)
                except (FileNotFoundError, ProcessLookupError):
                    cpu = None
                code = None
                if reap:
                    try:
                        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
                    except ChildProcessError:
                        pass
                return t, cpu, code
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if pfd is not None:
                select.select([pfd], [], [], left)
            else:
                time.sleep(min(0.002, left))
    finally:
        if pfd is not None:
            os.close(pfd)


class Announcer:
    """A FIFO the programs write their pid to (`echo $$ >> FIFO`) when they start running."""

    def __init__(self, workdir):
        self.path = os.path.join(workdir, "announce")
        os.mkfifo(self.path)
        self.rfd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        self.wfd = os.open(self.path, os.O_WRONLY)  # keeps the FIFO from reporting EOF
        self.buf = b""
        self.pids = []  # from lines that start with a pid
        self.lines = []
        self.times = []  # arrival time of each line

    def wait(self, n, timeout):
        """Wait until n announcements in total arrived. Returns the monotonic time of the n-th, or None."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.rfd], [], [], left)
            if not r:
                continue
            t = time.monotonic()
            try:
                data = os.read(self.rfd, 65536)
            except BlockingIOError:
                continue
            self.buf += data
            *lines, self.buf = self.buf.split(b"\n")
            for line in lines:
                words = line.split()
                if words:
                    self.lines.append(line.decode(errors="replace"))
                    if words[0].isdigit():
                        self.pids.append(int(words[0]))
                    self.times.append(t)
        return self.times[n - 1]

    def close(self):
        os.close(self.rfd)
        os.close(self.wfd)


def sleeper_argv(announce_path, ignore_term=False):
    trap = "trap '' TERM; " if ignore_term else ""
    return ["/bin/sh", "-c", "%secho $$ >> %s; exec sleep 100000" % (trap, shlex.quote(announce_path))]


def marked_by(pid):
    """Processes that carry pysuper `pid`'s program marker (PYSUPER_PROGRAM=<pid>:<name>): its programs
    and their children, also those it was starting when it was killed, which no tree walk finds."""
    head = ("\0PYSUPER_PROGRAM=%d:" % pid).encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/environ" % entry, "rb") as handle:
                    if head in b"\0" + handle.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def kill_everything(proc, extra_pids=()):
    """SIGKILL a launched target and everything below it (programs run in their own sessions)."""
    pids = []
    try:
        pids = descendants(proc.pid)
    except OSError:
        pass
    for p in list(pids) + list(extra_pids):
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    for p in marked_by(proc.pid):  # started by pysuper after the walk above
        try:
            os.kill(p, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


# ---------------------------------------------------------------------------------------------------------
# targets


class Program:
    def __init__(self, name, argv, restart="never", stop_timeout=3, start_seconds=1, start_retries=3,
                 stdout_file=None):
        self.name = name
        self.argv = list(argv)
        self.restart = restart  # "never" | "on-failure" | "always"
        self.stop_timeout = stop_timeout
        self.start_seconds = start_seconds
        self.start_retries = start_retries
        self.stdout_file = stdout_file  # supervisord only: relay stdout to this file


def _toml_str(s):
    return json.dumps(s)


class Target:
    name = "?"
    multi = True  # can run several programs

    def __init__(self, tools):
        self.tools = tools

    def command(self, workdir, programs, settings, pid1=False):
        raise NotImplementedError

    def launch(self, workdir, programs, settings=None, stdout=None, stderr=None, pid1=False, env=None):
        argv = self.command(workdir, programs, settings or {}, pid1)
        if pid1:
            argv = ["unshare", "--pid", "--fork", "--mount-proc"] + argv
        if stdout is None:
            stdout = subprocess.DEVNULL
        if stderr is None:
            stderr = open(os.path.join(workdir, "%s.stderr" % self.name), "ab")
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                start_new_session=True, cwd=workdir, env=env, close_fds=True)
        if stderr not in (subprocess.DEVNULL, subprocess.PIPE, subprocess.STDOUT) and hasattr(stderr, "close"):
            stderr.close()
        proc.sup_pid = proc.pid
        if pid1:
            proc.sup_pid = None
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                kids = children(proc.pid)
                if kids:
                    proc.sup_pid = kids[0]
                    break
                time.sleep(0.001)
        return proc


class Pysuper(Target):
    name = "pysuper"

    def command(self, workdir, programs, settings, pid1=False):
        path = os.path.join(workdir, "pysuper.toml")
        lines = []
        settings = dict(settings)
        # One control socket per run: the default path is shared with any other pysuper on the machine.
        settings.setdefault("control_socket", os.path.join(workdir, "pysuper.sock"))
        if settings:
            lines.append("[pysuper]")
            for k, v in settings.items():
                lines.append("%s = %s" % (k, _toml_str(v) if isinstance(v, str) else json.dumps(v)))
            lines.append("")
        for p in programs:
            lines.append("[programs.%s]" % p.name)
            # "$$" is pysuper's escape for a literal "$" (${NAME} expands from the environment).
            lines.append("command = [%s]" % ", ".join(_toml_str(a.replace("$", "$$")) for a in p.argv))
            lines.append("restart = %s" % _toml_str(p.restart))
            lines.append("stop_timeout = %s" % p.stop_timeout)
            lines.append("start_seconds = %s" % p.start_seconds)
            lines.append("start_retries = %s" % p.start_retries)
            lines.append("")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        return [self.tools.pysuper, "-c", path]


class Supervisord(Target):
    name = "supervisord"

    def command(self, workdir, programs, settings, pid1=False):
        path = os.path.join(workdir, "supervisord.conf")
        out = [
            "[supervisord]",
            "nodaemon=true",
            "silent=true",  # its own log only to logfile, not mixed into the programs' output on stdout
            "logfile=%s" % os.path.join(workdir, "supervisord.log"),
            "pidfile=%s" % os.path.join(workdir, "supervisord.pid"),
            "childlogdir=%s" % workdir,
            "minfds=%d" % max(1024, 8 * len(programs) + 64),
            "",
        ]
        policy = {"never": "false", "on-failure": "unexpected", "always": "true"}
        for p in programs:
            cmd = " ".join(shlex.quote(a) for a in p.argv).replace("%", "%%")
            out += [
                "[program:%s]" % p.name,
                "command=%s" % cmd,
                "autorestart=%s" % policy[p.restart],
                "startsecs=%s" % p.start_seconds,
                "startretries=%s" % p.start_retries,
                "stopwaitsecs=%s" % p.stop_timeout,
                "stopasgroup=true",
                "killasgroup=true",
            ]
            if p.stdout_file:
                out += ["stdout_logfile=%s" % p.stdout_file, "stdout_logfile_maxbytes=0"]
            else:
                # The usual container set-up: program output to supervisord's own stdout/stderr.
                out += ["stdout_logfile=/dev/stdout", "stdout_logfile_maxbytes=0"]
            out += ["stderr_logfile=/dev/stderr", "stderr_logfile_maxbytes=0", ""]
        with open(path, "w") as f:
            f.write("\n".join(out))
        return [self.tools.supervisord, "-c", path]


class Tini(Target):
    name = "tini"
    multi = False

    def command(self, workdir, programs, settings, pid1=False):
        assert len(programs) == 1
        # -s registers tini as a subreaper when it is not PID 1 (as PID 1 it is pointless and warned about).
        return [self.tools.tini] + ([] if pid1 else ["-s"]) + ["--"] + programs[0].argv


class DumbInit(Target):
    name = "dumb-init"
    multi = False

    def command(self, workdir, programs, settings, pid1=False):
        assert len(programs) == 1
        return [self.tools.dumb_init] + programs[0].argv


def targets(tools):
    """Available targets, pysuper first."""
    out = []
    if tools.pysuper:
        out.append(Pysuper(tools))
    if tools.supervisord:
        out.append(Supervisord(tools))
    if tools.tini:
        out.append(Tini(tools))
    if tools.dumb_init:
        out.append(DumbInit(tools))
    return out


def workdir(root, label):
    return tempfile.mkdtemp(prefix=label.replace("/", "_") + "-", dir=root)
