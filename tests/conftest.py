"""Shared test helpers: run the real pysuper CLI and wait for what it prints, under deadlines.

The one way to run pysuper in tests:
- `Pysuper(args, ...)`: a running `pysuper ARGS` with its stdout and stderr collected in Streams;
  `ctl(...)` talks to it through its own control socket.
- `run_config` (fixture): a Pysuper running a config written to tmp_path, stopped at teardown.
- `Project(config)`: a config in its own temporary directory ("@DIR@" in the text stands for it) with
  its control socket inside, started with `start()`, rewritten with `write_config()`.
- `run_cli(args)`: a pysuper command that ends by itself (check, convert, ctl ...), as CompletedProcess.
A test under tests/unit that starts a process fails (tests/unit starts none).
Readiness is what pysuper prints (a Stream waited on under a deadline); nothing sleeps to synchronise.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYSUPER = [sys.executable, "-m", "pysuper"]
DEADLINE = 20.0


_SOCKET_DIRS = []


def _socket_dir():
    if not _SOCKET_DIRS:
        import atexit
        atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _SOCKET_DIRS])
    path = tempfile.mkdtemp(prefix="pysuper-test-")
    _SOCKET_DIRS.append(path)
    return path


def pysuper_env(extra=None):
    """The environment for a pysuper under test: its own control socket, no colors."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYSUPER_CONFIG", None)
    # Each pysuper gets its own socket, so tests (and other pysupers on the machine) never collide
    # on the default path.
    env["PYSUPER_SOCKET"] = os.path.join(_socket_dir(), "ctl.sock")
    env["NO_COLOR"] = "1"
    env.pop("PYTHONUNBUFFERED", None)  # programs under test flush what they print, as they must anywhere
    if extra:
        env.update(extra)
    return env


def _refuse_process(*args, **kwargs):
    raise AssertionError("a unit test started a process; tests/unit starts none (move it to tests/integration)")


@pytest.fixture(autouse=True)
def _unit_tests_start_no_processes(request, monkeypatch):
    """In tests/unit, every way to start a process fails the test that tries."""
    if os.sep + os.path.join("tests", "unit") + os.sep not in str(request.node.fspath):
        return
    monkeypatch.setattr(subprocess.Popen, "_execute_child", _refuse_process)
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system", "execv", "execve", "execvp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse_process)


class Stream:
    """Collects the lines of a pipe in a thread so tests can wait for a line with a deadline."""

    def __init__(self, pipe, name="stream"):
        self.pipe = pipe
        self.lines = []
        self.data = bytearray()
        self.closed = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self):
        while True:
            chunk = os.read(self.pipe.fileno(), 65536)
            with self._cond:
                if not chunk:
                    self.closed = True
                    self._cond.notify_all()
                    return
                self.data += chunk
                *complete, rest = bytes(self.data).split(b"\n")
                if complete:
                    self.lines.extend(line.decode("utf-8", "replace") for line in complete)
                    self.data = bytearray(rest)
                self._cond.notify_all()

    def search(self, pattern, timeout=DEADLINE, start=0, count=1):
        """(index, match) of the `count`-th line from index `start` that matches the regex; fail after
        `timeout` seconds or when the pipe closes first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = []
                for index in range(start, len(self.lines)):
                    match = regex.search(self.lines[index])
                    if match:
                        found.append((index, match))
                        if len(found) == count:
                            return found[-1]
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.closed:
                    raise AssertionError("no line matching %r (x%d) within %.1fs; got:\n%s"
                                         % (pattern, count, timeout, "\n".join(self.lines[-40:])))
                self._cond.wait(remaining)

    def wait_for(self, pattern, timeout=DEADLINE, count=1, start=0):
        """The `count`-th line (from index `start`) matching the regex; fail after `timeout` s."""
        index, _ = self.search(pattern, timeout, start, count)
        return self.lines[index]

    def matching(self, pattern):
        regex = re.compile(pattern)
        with self._cond:
            return [line for line in self.lines if regex.search(line)]

    def count(self, pattern):
        return len(self.matching(pattern))

    def wait_closed(self, timeout=DEADLINE):
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "stream still open after %.1fs" % timeout
        if self.data:
            self.lines.append(self.data.decode("utf-8", "replace"))
            self.data = bytearray()

    def join(self, timeout=DEADLINE):
        """Every line, once the pipe has closed."""
        self.wait_closed(timeout)
        return list(self.lines)

    def text(self):
        with self._cond:
            return "\n".join(self.lines) + ("\n" + self.data.decode("utf-8", "replace") if self.data else "")


class Pysuper:
    """A running `pysuper ARGS` with its stdout (`out`) and stderr (`err`) collected."""

    def __init__(self, args, cwd=None, env=None, prefix=(), stdout_reader=True):
        self.env = pysuper_env(env)
        self.cwd = cwd
        self.proc = subprocess.Popen(list(prefix) + PYSUPER + list(args), cwd=cwd, env=self.env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = Stream(self.proc.stdout, "stdout") if stdout_reader else None
        self.err = Stream(self.proc.stderr, "stderr")

    @property
    def pid(self):
        return self.proc.pid

    @property
    def socket(self):
        """The path of its control socket."""
        return self.env["PYSUPER_SOCKET"]

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout=DEADLINE):
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("pysuper did not exit within %.1fs; stderr:\n%s"
                                 % (timeout, self.err.text())) from None
        if self.out is not None:
            self.out.wait_closed()
        self.err.wait_closed()
        return code

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self, timeout=DEADLINE):
        """SIGTERM and wait (SIGKILL after `timeout`); the exit code."""
        if self.proc.poll() is None:
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def last_line(self):
        return self.err.lines[-1] if self.err.lines else ""

    def wait_started(self, name, start=0, timeout=DEADLINE):
        """(line index, pid) of the next '<name>: started with pid N' line at or after `start`."""
        index, match = self.err.search(r"\| %s: started with pid (\d+)" % re.escape(name), timeout, start)
        return index, int(match.group(1))

    def ctl(self, *args, timeout=DEADLINE, env=None, check=None):
        """`pysuper ctl ARGS` against this pysuper (see run_ctl)."""
        return run_ctl(args, self.cwd, env or self.env, timeout, check)


@pytest.fixture
def run_config(tmp_path):
    """run_config(text, *args) -> Pysuper running that config from tmp_path; stopped at teardown."""
    started = []

    def start(text, *args, env=None, prefix=(), stdout_reader=True):
        path = tmp_path / "pysuper.toml"
        path.write_text(text)
        process = Pysuper(["-c", str(path)] + list(args), cwd=str(tmp_path), env=env, prefix=prefix,
                          stdout_reader=stdout_reader)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(10)


class Project:
    """A config in its own temporary directory, run as pysuper with its control socket inside
    (DIR/run/ctl.sock unless `socket_path` is given). "@DIR@" in the config stands for DIR."""

    def __init__(self, config, extra_env=None, socket_path=None):
        self.dir = Path(tempfile.mkdtemp(prefix="pysuper-test-"))
        self.config_path = self.dir / "pysuper.toml"
        self.write_config(config)
        self.socket = Path(socket_path) if socket_path else self.dir / "run" / "ctl.sock"
        self.extra_env = dict(extra_env or {}, PYSUPER_SOCKET=str(self.socket))
        self.env = pysuper_env(self.extra_env)
        self.pysuper = None

    def write_config(self, text):
        """Replace the config (atomically, as an editor would)."""
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(textwrap.dedent(text).replace("@DIR@", str(self.dir)))
        os.replace(str(tmp), str(self.config_path))

    def start(self, wait_for=r"control socket: "):
        """Start pysuper; wait for a stderr line matching `wait_for` (None: do not wait)."""
        self.pysuper = Pysuper(["-c", str(self.config_path)], cwd=str(self.dir), env=self.extra_env)
        if wait_for:
            self.pysuper.err.wait_for(wait_for)
        return self

    @property
    def proc(self):
        return self.pysuper.proc if self.pysuper else None

    @property
    def stdout(self):
        return self.pysuper.out

    @property
    def stderr(self):
        return self.pysuper.err

    def wait_started(self, name, start=0, timeout=DEADLINE):
        return self.pysuper.wait_started(name, start, timeout)

    def ctl(self, *args, timeout=DEADLINE, env=None, check=None):
        """`pysuper ctl ARGS` from the project's directory, with its socket (see run_ctl)."""
        return run_ctl(args, str(self.dir), env or self.env, timeout, check)

    def stop(self, timeout=DEADLINE):
        return self.pysuper.stop(timeout) if self.pysuper else None

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(str(self.dir), ignore_errors=True)


def run_ctl(args, cwd, env, timeout=DEADLINE, check=None):
    """`pysuper ctl ARGS` with exactly this environment; CompletedProcess with text output.
    check: the exit code it must have."""
    done = subprocess.run(PYSUPER + ["ctl"] + list(args), cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout)
    done.stdout = done.stdout.decode("utf-8", "replace")
    done.stderr = done.stderr.decode("utf-8", "replace")
    if check is not None:
        assert done.returncode == check, "ctl %s: exit %d\nstdout: %s\nstderr: %s" % (
            " ".join(args), done.returncode, done.stdout, done.stderr)
    return done


def stop_process(proc):
    """End a pysuper a test started itself: SIGTERM first, so it stops its programs (a SIGKILL would
    leave them running), SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def run_cli(args, cwd=None, env=None, timeout=DEADLINE, input=None):
    return subprocess.run(PYSUPER + list(args), cwd=cwd, env=pysuper_env(env), capture_output=True,
                          text=True, timeout=timeout, input=input)


# `unshare --fork` of util-linux 2.36 (Debian bullseye) ignores SIGINT and SIGTERM before it forks, so
# the new namespace's PID 1 would inherit them ignored, and pysuper (rightly) hands an inherited ignored
# signal on to a single-mode child. This launcher gives both back their default and execs the command,
# which keeps its pid (1): the PID-1 tests then start as a container's init does.
DEFAULT_SIGNALS = [sys.executable, "-c", "import os, signal, sys\n"
                   "for s in (signal.SIGINT, signal.SIGTERM): signal.signal(s, signal.SIG_DFL)\n"
                   "os.execvp(sys.argv[1], sys.argv[1:])"]
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"] + DEFAULT_SIGNALS


def unshare_available():
    try:
        result = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"],
                                capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    raise KeyError(field)


def children_of(pid):
    """Direct children of pid (from /proc)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as handle:
            return [int(x) for x in handle.read().split()]
    except OSError:
        return []


def py(code):
    """A command array that runs this Python code with the test's interpreter."""
    return [sys.executable, "-c", code]


def toml_list(argv):
    import json
    return json.dumps(list(argv))
