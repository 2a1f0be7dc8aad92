"""Escaped descendants are stopped with their program: a setsid daemon and a double-forked child
(which ignores SIGTERM) leave the program's process group, and still none is left after `ctl stop`,
`ctl restart`, or shutdown; processes a finished program left behind are stopped at shutdown."""

import os
import signal
import sys
import time

import pytest

from conftest import ROOT, py, run_cli, toml_list

sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
from stress import alive  # noqa: E402  (True while a pid runs; a zombie has ended)

# Starts a setsid child (its parent stays alive) and a double-forked setsid grandchild that ignores
# SIGTERM (re-parented to pysuper), writes their pids (as seen from outside any PID namespace: the
# first NSpid) to argv[1], prints "ready", then sleeps; with argv[2] == "exit" it exits instead.
ESCAPER = r"""
import os, signal, sys, time

def outer_pid():
    for line in open('/proc/self/status'):
        if line.startswith('NSpid:'):
            return int(line.split()[1])
    return os.getpid()

def note():
    with open(sys.argv[1], 'a') as f:
        f.write('%d\n' % outer_pid())

r, w = os.pipe()
if os.fork() == 0:
    os.setsid()
    note()
    os.write(w, b'x')
    while True:
        time.sleep(60)
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        note()
        os.write(w, b'x')
        while True:
            time.sleep(60)
    os._exit(0)
os.read(r, 1); os.read(r, 1)
print('ready', flush=True)
if sys.argv[2:] == ['exit']:
    sys.exit(0)
while True:
    time.sleep(60)
"""


def escaper(pids_file, *extra):
    return toml_list([sys.executable, "-c", ESCAPER, str(pids_file)] + list(extra))


def noted(pids_file, count=2, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        pids = [int(x) for x in pids_file.read_text().split()] if pids_file.exists() else []
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.02)


def config(pids_file, *extra, restart="always"):
    return ('[programs.esc]\ncommand = %s\nstop_timeout = 1\nrestart = "%s"\n'
            '[programs.idle]\ncommand = ["sleep", "600"]\n' % (escaper(pids_file, *extra), restart))


def ctl(ps_env_socket, *args):
    return run_cli(["ctl"] + list(args), env={"PYSUPER_SOCKET": ps_env_socket})


def _socket_from(ps):
    with open("/proc/%d/environ" % ps.pid, "rb") as handle:
        for item in handle.read().split(b"\0"):
            if item.startswith(b"PYSUPER_SOCKET="):
                return item.split(b"=", 1)[1].decode()
    raise AssertionError("no PYSUPER_SOCKET in pysuper's environment")


@pytest.fixture(params=["cgroup", "marker"])
def mode(request):
    """The environment of pysuper: a cgroup per program where possible, or the marker alone."""
    return {} if request.param == "cgroup" else {"PYSUPER_CGROUPS": "0"}


def test_ctl_stop_stops_escaped_processes(run_config, tmp_path, mode):
    pids_file = tmp_path / "pids"
    ps = run_config(config(pids_file), env=mode)
    ps.out.wait_for(r"esc +\| ready")
    pids = noted(pids_file)
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    result = ctl(_socket_from(ps), "stop", "esc")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [pid for pid in pids if alive(pid)] == [], ps.err.text()
    ps.err.wait_for(r"esc: still running after stop_timeout")  # the one ignoring SIGTERM needed SIGKILL


def test_ctl_restart_stops_escaped_processes_first(run_config, tmp_path, mode):
    pids_file = tmp_path / "pids"
    ps = run_config(config(pids_file), env=mode)
    ps.out.wait_for(r"esc +\| ready")
    old = noted(pids_file)
    result = ctl(_socket_from(ps), "restart", "esc")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [pid for pid in old if alive(pid)] == []
    ps.out.wait_for(r"esc +\| ready", count=2)
    new = noted(pids_file, 4)[2:]
    assert len(new) == 2 and all(alive(pid) for pid in new)


def test_shutdown_stops_escaped_processes_as_a_subreaper(run_config, tmp_path, mode):
    pids_file = tmp_path / "pids"
    ps = run_config(config(pids_file), env=mode)
    ps.out.wait_for(r"esc +\| ready")
    pids = noted(pids_file)
    ps.signal(signal.SIGTERM)
    assert ps.wait() in (0, 1), ps.err.text()
    assert [pid for pid in pids if alive(pid)] == []


def test_regression_processes_left_behind_by_a_finished_program_are_stopped_at_shutdown(run_config, tmp_path,
                                                                                         mode):
    pids_file = tmp_path / "pids"
    ps = run_config(config(pids_file, "exit", restart="never"), env=mode)
    ps.err.wait_for(r"esc: exited with code 0")
    pids = noted(pids_file)
    assert len(pids) == 2 and all(alive(pid) for pid in pids)
    ps.signal(signal.SIGTERM)
    assert ps.wait() in (0, 1), ps.err.text()
    ps.err.wait_for(r"stopping what programs left behind: 2 process\(es\)")
    assert [pid for pid in pids if alive(pid)] == []


# A double-forked setsid daemon that clears its environment (the marker with it) and execs sleep.
CLEARED = r"""
import os, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        os.setsid()
        with open(sys.argv[1], 'a') as f:
            f.write('%d\n' % os.getpid())
        os.execve('/bin/sleep', ['sleep', '600'], {})
    os._exit(0)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
print('ready', flush=True)
while True:
    time.sleep(60)
"""


def test_with_a_cgroup_even_a_process_that_clears_its_environment_is_stopped(run_config, tmp_path):
    from pysuper import membership
    if membership.cgroup_base() is None:
        pytest.skip("no writable cgroup v2 here: the environment marker is all pysuper has")
    dead = next(pid for pid in range(4000000, 4100000) if not os.path.exists("/proc/%d" % pid))
    stale = os.path.join(membership.cgroup_base(), "pysuper-%d.gone" % dead)
    os.mkdir(stale)  # left by a pysuper that was killed: removed by the next one
    pids_file = tmp_path / "pids"
    ps = run_config('[programs.clean]\ncommand = %s\nstop_timeout = 1\n'
                    % toml_list([sys.executable, "-c", CLEARED, str(pids_file)]))
    ps.out.wait_for(r"clean +\| ready")
    pids = noted(pids_file, 1)
    assert len(pids) == 1 and alive(pids[0])
    with open("/proc/%d/cgroup" % pids[0]) as handle:
        assert "/pysuper-%d.clean" % ps.pid in handle.read()
    assert not os.path.exists(stale)
    result = ctl(_socket_from(ps), "stop", "clean")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not alive(pids[0])
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0
    assert not any(name.startswith("pysuper-%d." % ps.pid) for name in os.listdir(membership.cgroup_base()))


def test_with_a_cgroup_what_a_finished_program_left_is_stopped_at_shutdown_even_without_marker(run_config,
                                                                                             tmp_path):
    from pysuper import membership
    if membership.cgroup_base() is None:
        pytest.skip("no writable cgroup v2 here")
    pids_file = tmp_path / "pids"
    gone = py("import subprocess, sys\n"
              "subprocess.run([sys.executable, '-c', sys.argv[1], sys.argv[2]], timeout=20)\n")
    # The program runs CLEARED (whose daemon drops the marker) and ends once CLEARED is ready.
    ps = run_config('[programs.clean]\ncommand = %s\nrestart = "never"\n[programs.idle]\ncommand = ["sleep", "600"]\n'
                    % toml_list(gone + [CLEARED.replace("while True:\n    time.sleep(60)\n", ""), str(pids_file)]))
    ps.err.wait_for(r"clean: exited with code 0")
    pids = noted(pids_file, 1)
    assert alive(pids[0])
    ps.signal(signal.SIGTERM)
    assert ps.wait() in (0, 1), ps.err.text()
    assert not alive(pids[0])


def test_without_a_cgroup_a_process_that_clears_its_environment_escapes(run_config, tmp_path):
    """The documented limit of the marker: pysuper cannot know such a process once its parent is gone
    (negative control: the cgroup test above must be what catches it)."""
    pids_file = tmp_path / "pids"
    ps = run_config('[programs.clean]\ncommand = %s\nstop_timeout = 1\n'
                    % toml_list([sys.executable, "-c", CLEARED, str(pids_file)]), env={"PYSUPER_CGROUPS": "0"})
    ps.out.wait_for(r"clean +\| ready")
    pids = noted(pids_file, 1)
    try:
        result = ctl(_socket_from(ps), "stop", "clean")
        assert result.returncode == 0, result.stdout + result.stderr
        assert alive(pids[0])
    finally:
        os.kill(pids[0], signal.SIGKILL)
