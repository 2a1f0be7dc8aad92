"""pysuper as a real PID 1, in a new PID namespace (`unshare --pid --fork --mount-proc`)."""

import os
import signal
import subprocess
import time

import pytest

from conftest import PYSUPER, UNSHARE, children_of, pysuper_env, py, toml_list, unshare_available

pytestmark = pytest.mark.skipif(not unshare_available(),
                                reason="unshare --pid --fork --mount-proc is not permitted here "
                                       "(needs root or user namespaces)")


# Double-forks N orphans that exit at once, then counts zombies in /proc until none is left.
ORPHANS = """
import os, sys, time
n = int(sys.argv[1])
print('my pid', os.getpid(), 'pid 1 is', open('/proc/1/comm').read().strip(), flush=True)
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)

def zombies():
    count = 0
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as f:
                    if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                        count += 1
            except OSError:
                pass
    return count

deadline = time.monotonic() + float(sys.argv[2])
left = zombies()
while left and time.monotonic() < deadline:
    time.sleep(0.01)
    left = zombies()
print('zombies left', left, flush=True)
"""


def run_ns(config_text, tmp_path, args=(), timeout=60):
    path = tmp_path / "pysuper.toml"
    path.write_text(config_text)
    return subprocess.run(UNSHARE + PYSUPER + ["-c", str(path)] + list(args), env=pysuper_env(),
                          capture_output=True, text=True, timeout=timeout, cwd=str(tmp_path))


def start_ns(config_text, tmp_path):
    path = tmp_path / "pysuper.toml"
    path.write_text(config_text)
    proc = subprocess.Popen(UNSHARE + PYSUPER + ["-c", str(path)], env=pysuper_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    return proc


def namespace_init(unshare_pid, timeout=10):
    """The host pid of the namespace's PID 1 (unshare's only child)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children_of(unshare_pid)
        if kids:
            return kids[0]
        time.sleep(0.01)
    raise AssertionError("unshare started no child")


def test_1000_orphans_leave_no_zombie(tmp_path):
    result = run_ns('''
[programs.orphans]
command = %s
restart = "never"
''' % toml_list(py(ORPHANS) + ["1000", "10"]), tmp_path)
    assert "pid 1 is python" in result.stdout or "pid 1 is pysuper" in result.stdout, result.stdout
    assert "orphans | zombies left 0" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0, result.stderr


def test_without_a_reaper_the_zombies_stay(tmp_path):
    """Negative control: the same check under a PID 1 that never reaps must see zombies."""
    lazy_init = ("import subprocess, sys\n"
                 "p = subprocess.Popen(sys.argv[1:])\n"
                 "import os; os.waitpid(p.pid, 0)\n")
    result = subprocess.run(UNSHARE + py(lazy_init) + py(ORPHANS) + ["100", "0.5"], capture_output=True,
                            text=True, timeout=60)
    assert "zombies left 0" not in result.stdout
    assert "zombies left" in result.stdout, result.stdout + result.stderr


def test_sigterm_to_pid1_stops_all_programs_and_exits_0(tmp_path):
    proc = start_ns('''
[programs.a]
command = ["sleep", "60"]
[programs.b]
command = %s
''' % toml_list(py("import signal,sys,time\nsignal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
                   "print('ready', flush=True)\ntime.sleep(60)")), tmp_path)
    try:
        assert proc.stdout.readline().endswith("| ready\n")
        init = namespace_init(proc.pid)
        os.kill(init, signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert err.splitlines()[-1] == "pysuper | received SIGTERM; exiting with code 0"
    assert "a: stopped" in err and "b: stopped" in err


def test_stubborn_program_and_grandchildren_are_killed(tmp_path):
    code = ("import os,signal,subprocess,time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 60 & sleep 60'])\n"
            "print('ready', flush=True)\ntime.sleep(60)\n")
    proc = start_ns('''
[programs.stubborn]
command = %s
stop_timeout = 1
''' % toml_list(py(code)), tmp_path)
    try:
        assert proc.stdout.readline().endswith("| ready\n")
        init = namespace_init(proc.pid)
        started = time.monotonic()
        os.kill(init, signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert 0.9 <= elapsed < 5
    assert "still running after stop_timeout; sending SIGKILL" in err
    assert "killed after timeout: stubborn" in err.splitlines()[-1]


def test_strays_are_signalled_at_shutdown(tmp_path):
    # A daemon that left its program's session: only PID 1's kill(-1) reaches it.
    daemon = "import os,time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('ready', flush=True)\n" \
             "time.sleep(60)\n"
    proc = start_ns('[programs.d]\ncommand = %s\n' % toml_list(py(daemon)), tmp_path)
    try:
        assert proc.stdout.readline().endswith("| ready\n")
        os.kill(namespace_init(proc.pid), signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err


def test_single_program_mode_as_pid1_reaps_orphans(tmp_path):
    result = subprocess.run(UNSHARE + PYSUPER + ["--"] + py(ORPHANS) + ["500", "10"], env=pysuper_env(),
                            capture_output=True, text=True, timeout=60)
    assert "zombies left 0" in result.stdout, result.stdout + result.stderr
    assert result.returncode == 0


@pytest.mark.parametrize("command,code", [
    (["true"], 0), (["sh", "-c", "exit 3"], 3), (["sh", "-c", "kill -KILL $$"], 137),
    (["sh", "-c", "kill -TERM $$"], 143)])
def test_single_program_mode_exit_codes_as_pid1(command, code):
    result = subprocess.run(UNSHARE + PYSUPER + ["--"] + command, env=pysuper_env(), capture_output=True,
                            timeout=30)
    assert result.returncode == code


def test_single_program_mode_sigterm_as_pid1():
    proc = subprocess.Popen(UNSHARE + PYSUPER + ["--", "sh", "-c", "echo ready; exec sleep 60"],
                            env=pysuper_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        os.kill(namespace_init(proc.pid), signal.SIGTERM)
        assert proc.wait(10) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
