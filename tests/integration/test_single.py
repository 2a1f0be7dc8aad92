"""`pysuper -- CMD`: exit codes, signal forwarding and inherited streams, like tini."""

import signal
import subprocess

import pytest

from conftest import PYSUPER, pysuper_env, py, run_cli

PRINT_SIGNALS = ("import os, signal, sys\n"
                 "for s in signal.valid_signals():\n"
                 "    if s not in (signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD):\n"
                 "        try: signal.signal(s, lambda n, f: os.write(1, signal.Signals(n).name.encode() + b'\\n'))\n"
                 "        except (OSError, ValueError): pass\n"
                 "print('ready', flush=True)\n"
                 "for line in iter(sys.stdin.readline, ''): pass\n")  # ends at EOF on stdin


@pytest.mark.parametrize("command,code", [
    (["true"], 0),
    (["sh", "-c", "exit 3"], 3),
    (["sh", "-c", "kill -KILL $$"], 137),
    (["sh", "-c", "kill -TERM $$"], 143),
    (["/nonexistent/command"], 127),
])
def test_exit_codes(command, code):
    assert run_cli(["--"] + command).returncode == code


def test_not_executable(tmp_path):
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    assert run_cli(["--", str(script)]).returncode == 126


def test_streams_are_inherited_untouched():
    result = run_cli(["--", "sh", "-c", "echo out; echo err >&2; readlink /proc/self/fd/1"])
    lines = result.stdout.splitlines()
    assert lines[0] == "out" and result.stderr == "err\n"
    assert lines[1].startswith("pipe:")


def test_stdin_is_inherited():
    result = run_cli(["--", "cat"], input="from stdin\n")
    assert result.stdout == "from stdin\n"


def test_signals_are_forwarded():
    proc = subprocess.Popen(PYSUPER + ["--"] + py(PRINT_SIGNALS), env=pysuper_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        for signum in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGWINCH,
                       signal.SIGQUIT):
            proc.send_signal(signum)
            assert proc.stdout.readline() == signal.Signals(signum).name + "\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "SIGTERM\n"
        proc.stdin.close()  # the child ends at EOF, and pysuper with its code
        assert proc.wait(10) == 0
    finally:
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_sigterm_kills_a_default_child_with_143():
    proc = subprocess.Popen(PYSUPER + ["--", "sh", "-c", "echo ready; exec sleep 60"], env=pysuper_env(),
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 143


def test_child_signal_state_is_clean():
    result = run_cli(["--", "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"])
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["SigBlk:", "0000000000000000"], ["SigIgn:", "0000000000000000"]]


def test_terminal_gets_the_child_as_foreground(tmp_path):
    import os
    import pty
    pid, fd = pty.fork()
    if pid == 0:  # a new session with the pty as controlling terminal, like `docker run -t`
        env = pysuper_env()
        os.execve(PYSUPER[0], PYSUPER + ["--", "sh", "-c",
                                         "[ $(ps -o tpgid= -p $$) = $(ps -o pgid= -p $$) ] && echo FG || echo BG"],
                  env)
    output = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"FG" in output, output
    assert os.waitstatus_to_exitcode(status) == 0


def test_regression_sigttin_and_sigttou_do_not_stop_single_mode():
    """Not PID 1, SIGTTIN and SIGTTOU used to stop pysuper (no reaping, no forwarding until SIGCONT)."""
    from conftest import proc_status
    proc = subprocess.Popen(PYSUPER + ["--"] + py(PRINT_SIGNALS), env=pysuper_env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTTIN)
        proc.send_signal(signal.SIGTTOU)
        proc.send_signal(signal.SIGUSR1)  # forwarded only if pysuper is still running
        assert proc.stdout.readline() == "SIGUSR1\n"
        assert not proc_status(proc.pid, "State").startswith("T")
        proc.stdin.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
