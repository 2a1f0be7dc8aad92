"""Shared test helpers: run the real pysuper CLI and wait for what it prints, under deadlines."""

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYSUPER = [sys.executable, "-m", "pysuper"]
DEADLINE = 20.0


_SOCKET_DIRS = []


def _socket_dir():
    if not _SOCKET_DIRS:
        import atexit
        import shutil
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
    if extra:
        env.update(extra)
    return env


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
    """A running `pysuper` process with its stdout and stderr collected."""

    def __init__(self, args, cwd=None, env=None, prefix=(), stdout_reader=True):
        self.proc = subprocess.Popen(list(prefix) + PYSUPER + list(args), cwd=cwd, env=pysuper_env(env),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.out = Stream(self.proc.stdout) if stdout_reader else None
        self.err = Stream(self.proc.stderr)

    @property
    def pid(self):
        return self.proc.pid

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

    def last_line(self):
        return self.err.lines[-1] if self.err.lines else ""


@pytest.fixture
def run_config(tmp_path):
    """run_config(text, *args) -> Pysuper running that config from tmp_path; killed at teardown."""
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
        if process.proc.poll() is None:
            try:
                os.killpg(process.pid, 0)
            except OSError:
                pass
            process.signal(signal.SIGTERM)
            try:
                process.proc.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()


def run_cli(args, cwd=None, env=None, timeout=DEADLINE, input=None):
    return subprocess.run(PYSUPER + list(args), cwd=cwd, env=pysuper_env(env), capture_output=True,
                          text=True, timeout=timeout, input=input)


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
