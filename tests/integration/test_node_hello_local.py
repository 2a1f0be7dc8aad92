"""The node-hello sample's own pysuper config, run with the real `node` binary and with
pysuper as PID 1 of a fresh PID namespace (`unshare --pid --fork --mount-proc`): the same
checks as the image test, without a container engine.

APP_DIR points the config at docker/node-hello; PORT picks a free port; HEARTBEAT_MS
makes the worker beat fast enough for a quick test.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import Stream

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "docker" / "node-hello"
CONFIG = APP / "pysuper.toml"
NODE = shutil.which("node")
UNSHARE = shutil.which("unshare")


def _unshare_works():
    if not UNSHARE:
        return "unshare (util-linux) is not installed"
    try:
        done = subprocess.run([UNSHARE, "--pid", "--fork", "--mount-proc", "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unshare failed: %s" % exc
    if done.returncode != 0:
        return "unshare --pid --fork --mount-proc is not permitted here: %s" % (
            done.stderr.decode(errors="replace").strip())
    return None


_UNSHARE_PROBLEM = _unshare_works()
pytestmark = [
    pytest.mark.skipif(NODE is None, reason="node is not installed (`bash .ci/images.sh deps` "
                                            "or `apt-get install nodejs` installs it)"),
    pytest.mark.skipif(_UNSHARE_PROBLEM is not None, reason=str(_UNSHARE_PROBLEM)),
]

PREFIXED = re.compile(r"^(?P<name>[\w.-]+)\s*\| (?P<text>.*)$")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def nspid(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    return []


def http_get(port, path="/"):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class Hello:
    """pysuper running the sample config as PID 1 of its own PID namespace."""

    def __init__(self, tmp_path, **env):
        self.port = free_port()
        environ = dict(os.environ)
        for name in ("PYSUPER_CONFIG", "NO_COLOR", "FORCE_COLOR"):
            environ.pop(name, None)
        environ.update(APP_DIR=str(APP), PORT=str(self.port), HEARTBEAT_MS="300",
                       PYSUPER_SOCKET=str(tmp_path / "pysuper.sock"))
        environ.update(env)
        self.proc = subprocess.Popen(
            [UNSHARE, "--pid", "--fork", "--mount-proc", "--kill-child",
             sys.executable, "-m", "pysuper", "-c", str(CONFIG)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=str(tmp_path), env=environ)
        self.out = Stream(self.proc.stdout, "stdout")
        self.err = Stream(self.proc.stderr, "stderr")
        self._pid1 = None

    @property
    def pid1(self):
        """Host pid of the namespace's PID 1 (pysuper), the only child of unshare."""
        if self._pid1 is None:
            kids = children(self.proc.pid)
            assert len(kids) == 1, "unshare should have exactly one child, has %r" % kids
            self._pid1 = kids[0]
        return self._pid1

    def program_pid(self, script):
        """Host pid of the node process running `script` (a direct child of pysuper)."""
        for pid in children(self.pid1):
            if script.encode() in cmdline(pid):
                return pid
        raise AssertionError("no child of pysuper runs %s: %r" % (
            script, [cmdline(p) for p in children(self.pid1)]))

    def wait_ready(self):
        self.out.wait_for(r"^web\s*\| listening on http://0\.0\.0\.0:%d" % self.port)
        self.out.wait_for(r"^worker\s*\| heartbeat 1$")
        self.err.wait_for(r"^worker\s*\| worker started \(pid \d+\)")

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            try:
                os.kill(self.pid1, signal.SIGTERM)
            except (OSError, AssertionError):
                self.proc.terminate()
        return self.proc.wait(timeout)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()  # --kill-child takes PID 1 and with it the whole namespace down
            self.proc.wait(10)
        self.out.join()
        self.err.join()


@pytest.fixture
def hello(tmp_path):
    instance = Hello(tmp_path)
    yield instance
    instance.close()


def test_pysuper_is_pid1_and_serves_http(hello):
    hello.wait_ready()
    assert nspid(hello.pid1)[-1] == 1, "pysuper is PID 1 in the namespace"
    assert b"pysuper" in b" ".join(cmdline(hello.pid1))
    for script in ("index.js", "worker.js"):
        pid = hello.program_pid(script)
        assert cmdline(pid)[1] == script.encode(), cmdline(pid)
        assert nspid(pid)[-1] != 1
    status, body = http_get(hello.port)
    assert status == 200 and body.startswith("Hello World. Greetings from ")
    hello.out.wait_for(r"^web\s*\| GET / 200$")


def test_prefixed_lines_on_the_right_streams(hello):
    hello.wait_ready()
    assert http_get(hello.port, "/nope")[0] == 404
    hello.err.wait_for(r"^web\s*\| GET /nope 404 not found$")
    hello.out.wait_for(r"^worker\s*\| heartbeat 3$")
    out = list(hello.out.lines)
    err = list(hello.err.lines)
    # stdout carries only the programs' stdout, each line prefixed with its program's name
    for line in out:
        match = PREFIXED.match(line)
        assert match and match.group("name") in ("web", "worker"), line
    assert not [ln for ln in out if "worker started" in ln or "404" in ln]
    # stderr: the programs' stderr and pysuper's own messages
    for line in err:
        assert re.match(r"^(web|worker|pysuper)\b", line), line
    assert not [ln for ln in err if re.match(r"^worker\s*\| heartbeat \d+$", ln)]
    # names are padded to the same width, so the bars line up
    bars = {line.index("|") for line in out}
    assert len(bars) == 1, out


def test_killed_worker_is_restarted(hello):
    hello.wait_ready()
    old = hello.program_pid("worker.js")
    mark_err, mark_out = len(hello.err.lines), len(hello.out.lines)
    os.kill(old, signal.SIGKILL)
    hello.err.wait_for(r"^pysuper\b.*\bworker\b.*SIGKILL", start=mark_err)
    _, started = hello.err.search(r"^worker\s*\| worker started \(pid (\d+)\)", start=mark_err)
    hello.out.wait_for(r"^worker\s*\| heartbeat 1$", start=mark_out)
    new = hello.program_pid("worker.js")
    assert new != old
    assert int(started.group(1)) == nspid(new)[-1]
    # the web server was left alone
    assert http_get(hello.port)[0] == 200


def test_sigterm_stops_both_and_exits_0(hello):
    hello.wait_ready()
    started = time.monotonic()
    code = hello.stop()
    took = time.monotonic() - started
    assert code == 0, "\n".join(hello.err.join())
    assert took < 9, "shutdown took %.1f s, longer than shutdown_timeout" % took
    err = hello.err.join()
    assert any(re.match(r"^web\s*\| SIGTERM received, closing the server$", ln) for ln in err), err
    assert any(re.match(r"^worker\s*\| SIGTERM received after \d+ heartbeats, exiting$", ln)
               for ln in err), err
    last = [ln for ln in err if ln.strip()][-1]
    assert last.startswith("pysuper"), last
    assert "SIGTERM" in last and re.search(r"\b0\b", last), last


def test_web_failing_for_good_ends_pysuper_with_its_code(tmp_path):
    """web is critical: when it cannot start at all, pysuper stops and exits with its code."""
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        instance = Hello(tmp_path, PORT=str(port))
        try:
            code = instance.proc.wait(40)
        finally:
            instance.close()
    err = instance.err.lines
    assert any(re.match(r"^web\s*\| cannot listen on 0\.0\.0\.0:%d" % port, ln) for ln in err), err
    assert code == 1, "\n".join(err)
    last = [ln for ln in err if ln.strip()][-1]
    assert last.startswith("pysuper") and "web" in last, last
