"""As PID 1 (`unshare --pid --fork --mount-proc`): escaped descendants (a setsid daemon, a double-forked
child ignoring SIGTERM) are stopped with their program on `ctl stop`, `ctl restart` and shutdown."""

import importlib.util
import os
import signal
import subprocess

import pytest

from conftest import PYSUPER, ROOT, UNSHARE, Stream, children_of, pysuper_env, run_cli, unshare_available

pytestmark = pytest.mark.skipif(not unshare_available(),
                                reason="unshare --pid --fork --mount-proc is not permitted here "
                                       "(needs root or user namespaces)")

from test_pid1 import namespace_init  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "escape_checks", os.path.join(ROOT, "tests", "integration", "test_hardening_escape.py"))
escape = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(escape)




def start(tmp_path, env):
    path = tmp_path / "pysuper.toml"
    path.write_text(escape.config(tmp_path / "pids"))
    proc = subprocess.Popen(UNSHARE + PYSUPER + ["-c", str(path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=str(tmp_path))
    return proc, Stream(proc.stdout), Stream(proc.stderr)


def test_escaped_processes_are_stopped_as_pid1(tmp_path):
    env = pysuper_env()
    ctl_env = {"PYSUPER_SOCKET": env["PYSUPER_SOCKET"]}
    proc, out, err = start(tmp_path, env)
    try:
        out.wait_for(r"esc +\| ready")
        init = namespace_init(proc.pid)
        first = escapers(init)
        assert len(first) == 3 and all(escape.alive(pid) for pid in first)  # the program and 2 escaped

        result = run_cli(["ctl", "restart", "esc"], env=ctl_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [pid for pid in first if escape.alive(pid)] == [], err.text()
        out.wait_for(r"esc +\| ready", count=2)
        second = escapers(init)
        assert len(second) == 3 and all(escape.alive(pid) for pid in second)

        result = run_cli(["ctl", "stop", "esc"], env=ctl_env)
        assert result.returncode == 0, result.stdout + result.stderr
        assert [pid for pid in second if escape.alive(pid)] == [], err.text()

        result = run_cli(["ctl", "start", "esc"], env=ctl_env)
        assert result.returncode == 0, result.stdout + result.stderr
        out.wait_for(r"esc +\| ready", count=3)
        kills = err.count(r"esc: still running after stop_timeout")
        os.kill(init, signal.SIGTERM)
        assert proc.wait(30) in (0, 1), err.text()
        err.wait_closed()
        # The leader exits on SIGTERM at once; only the escaped child that ignores it kept the stop
        # going until SIGKILL.
        assert err.count(r"esc: still running after stop_timeout") == kills + 1, err.text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def escapers(init):
    """Host pids of the live ESCAPER processes in the namespace whose PID 1 is `init` (host view)."""
    found, todo = [], children_of(init)
    while todo:
        pid = todo.pop()
        todo.extend(children_of(pid))
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                if b"NSpid" in handle.read() and escape.alive(pid):
                    found.append(pid)
        except OSError:
            continue
    return sorted(found)
