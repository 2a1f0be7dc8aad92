"""File descriptor exhaustion: with RLIMIT_NOFILE 64 and 40 programs, failed starts close what they
opened, pysuper's descriptors come back to what its running programs need, and the control socket,
once starved of descriptors, answers again as soon as some are free (said once, retried with backoff)."""

import os
import signal
import socket
import subprocess
import sys
import time

from conftest import PYSUPER, Stream, pysuper_env, run_cli, stop_process

PROGRAMS = 40
LIMIT = 64
LAUNCHER = [sys.executable, "-c", "import os, resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (%d, %d))\n"
            "os.execvp(sys.argv[1], sys.argv[1:])\n" % (LIMIT, LIMIT)]


def pipe_inodes(pid):
    """{fd: pipe inode} of pid's descriptors that are pipes."""
    found = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("pipe:"):
            found[int(fd)] = link
    return found


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_until(predicate, timeout=20.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for %s" % what)
        time.sleep(0.05)


def test_regression_fd_exhaustion_leaks_nothing_and_the_control_socket_recovers(tmp_path):
    path = tmp_path / "pysuper.toml"
    path.write_text("".join('[programs.p%02d]\ncommand = ["sleep", "600"]\nstart_retries = 1\nstart_seconds = 0\n' % i
                            for i in range(PROGRAMS)))
    env = pysuper_env()
    proc = subprocess.Popen(LAUNCHER + PYSUPER + ["-c", str(path)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    out, err = Stream(proc.stdout), Stream(proc.stderr)
    idle = []
    try:
        err.wait_for(r": (started with pid|FATAL)", count=PROGRAMS)
        running = err.count(r"started with pid")
        assert 0 < running < PROGRAMS and err.count(r"Too many open files"), err.text()
        # Every pipe pysuper holds is a running program's stdout or stderr, or the loop's wakeup pipe:
        # no half-made pair of a failed start is left.
        ours = pipe_inodes(proc.pid)
        shared = {ours.get(1), ours.get(2)}
        assert len([fd for fd, inode in ours.items() if inode not in shared]) == 2 * running + 2
        baseline = fd_count(proc.pid)

        # Use up every descriptor pysuper has left with idle control connections.
        socket_path = env["PYSUPER_SOCKET"]
        for _ in range(LIMIT):
            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(socket_path)
            idle.append(conn)
            if err.count(r"control: cannot accept connections"):
                break
        err.wait_for(r"control: cannot accept connections: Too many open files")
        status = subprocess.Popen(PYSUPER + ["ctl", "status"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        for conn in idle:
            conn.close()
        idle = []
        answer, problem = status.communicate(timeout=20)
        assert status.returncode in (0, 1), problem  # 1: some programs are FATAL
        assert answer.count("RUNNING") == running and answer.count("FATAL") == PROGRAMS - running
        err.wait_for(r"control: accepting connections again")
        assert err.count(r"cannot accept connections") == 1
        wait_until(lambda: fd_count(proc.pid) == baseline, what="pysuper's descriptors back to %d" % baseline)
        assert run_cli(["ctl", "status"], env={"PYSUPER_SOCKET": socket_path}).returncode in (0, 1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) in (0, 1), err.text()
        out.wait_closed()
    finally:
        for conn in idle:
            conn.close()
        stop_process(proc)
