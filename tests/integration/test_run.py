"""The real CLI running real programs: streams, restart policies, backoff, exit policy, stopping."""

import os
import re
import signal
import time

from conftest import py, run_cli, toml_list


def test_prefixed_lines_on_the_right_streams(run_config):
    ps = run_config('''
[programs.web]
command = %s
restart = "never"
[programs.w]
command = %s
restart = "never"
''' % (toml_list(py("import sys; print('out line'); print('err line', file=sys.stderr)")),
       toml_list(py("print('from w')"))))
    assert ps.wait() == 0
    assert "web     | out line" in ps.out.lines
    assert "w       | from w" in ps.out.lines
    assert "web     | err line" in ps.err.lines
    assert not any("err line" in line for line in ps.out.lines)
    assert ps.last_line() == "pysuper | all programs have finished as expected; exiting with code 0"


def test_check_lists_programs(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "sh -c \'echo hi\'"\nrestart = "always"\n'
                    '[programs.job]\ncommand = ["true"]\nautostart = false\n')
    result = run_cli(["check", "-c", str(path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["web  sh -c 'echo hi'  (restart = always)",
                                          "job  true  (restart = on-failure, autostart = false)"]
    assert result.stderr == "pysuper: %s: ok, 2 programs\n" % path


def test_check_bad_config_exits_2(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncomand = "x"\n')
    result = run_cli(["check", "-c", str(path)])
    assert result.returncode == 2
    assert "pysuper: error: %s: unknown key 'comand' in [programs.web]; did you mean 'command'?" % path \
        in result.stderr.splitlines()


def test_check_warns_about_this_machine_but_passes(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "node-not-here index.js"\nuser = "nobody-xyz"\n'
                    'directory = "/data/app-xyz"\n')
    result = run_cli(["check", "-c", str(path)])
    assert result.returncode == 0
    assert "warning" in result.stderr and "node-not-here" in result.stderr
    run = run_cli(["-c", str(path)])
    assert run.returncode == 2
    assert "nothing was started" in run.stderr


def test_no_config_found(tmp_path):
    result = run_cli([], cwd=str(tmp_path))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "./pysuper.toml" in result.stderr and "/etc/pysuper/pysuper.toml" in result.stderr


def test_config_from_environment_and_cwd(tmp_path):
    (tmp_path / "pysuper.toml").write_text('[programs.a]\ncommand = ["echo", "from cwd"]\nrestart = "never"\n')
    result = run_cli([], cwd=str(tmp_path))
    assert result.returncode == 0 and "a       | from cwd" in result.stdout
    other = tmp_path / "other.toml"
    other.write_text('[programs.b]\ncommand = ["echo", "from env"]\nrestart = "never"\n')
    result = run_cli([], cwd=str(tmp_path), env={"PYSUPER_CONFIG": str(other)})
    assert "b       | from env" in result.stdout


def test_usage_errors():
    assert run_cli(["--bogus"]).returncode == 2
    assert run_cli(["--version"]).stdout.startswith("pysuper ")
    assert "usage" in run_cli(["--help"]).stdout


def test_environment_directory_and_expansion(run_config, tmp_path):
    ps = run_config('''
[programs.env]
command = "sh -c 'echo $$GREETING $$PWD ${TEST_VALUE:-none} $$$$'"
directory = "%s"
environment = { GREETING = "hello" }
restart = "never"
''' % tmp_path, env={"TEST_VALUE": "tv"})
    assert ps.wait() == 0
    line = ps.out.wait_for(r"^env")
    words = line.split("| ", 1)[1].split()
    assert words[:3] == ["hello", str(tmp_path), "tv"]
    assert words[3].isdigit()  # $$$$ -> $$ -> the shell's pid


def test_on_failure_restarts_until_expected_exit(run_config, tmp_path):
    counter = tmp_path / "count"
    code = ("import pathlib,sys; p=pathlib.Path(%r); n=int(p.read_text()) if p.exists() else 0; "
            "p.write_text(str(n+1)); print('run', n); sys.exit(0 if n >= 2 else 1)" % str(counter))
    ps = run_config('''
[programs.job]
command = %s
start_seconds = 0
''' % toml_list(py(code)))
    assert ps.wait() == 0
    assert [line for line in ps.out.lines if "run" in line] == ["job     | run 0", "job     | run 1",
                                                               "job     | run 2"]


def test_restart_never_unexpected_exit_gives_1(run_config):
    ps = run_config('[programs.job]\ncommand = ["sh", "-c", "exit 4"]\nrestart = "never"\n')
    assert ps.wait() == 1
    assert "not as expected: job" in ps.last_line()
    assert ps.err.matching(r"job: exited with code 4 \(unexpected\)")


def test_failed_starts_go_fatal_after_start_retries(run_config):
    ps = run_config('''
[programs.bad]
command = ["sh", "-c", "echo attempt; exit 1"]
start_seconds = 5
start_retries = 3
backoff_max = 0.5
''')
    assert ps.wait() == 1
    assert len(ps.out.matching("attempt")) == 3
    assert ps.err.matching(r"bad: FATAL: 3 failed starts in a row \(start_retries = 3\)")
    retry = ps.err.matching(r"retrying in")
    assert len(retry) == 2


def test_backoff_timing_between_failed_starts(run_config):
    ps = run_config('''
[pysuper]
timestamps = true
[programs.bad]
command = ["sh", "-c", "exit 1"]
start_seconds = 5
start_retries = 4
backoff_max = 2
''')
    assert ps.wait(30) == 1
    stamps = []
    for line in ps.err.matching(r"bad: started with pid"):
        stamp = line.split(" ", 1)[0]
        hms = stamp[11:-1]
        h, m, s = hms.split(":")
        stamps.append(int(h) * 3600 + int(m) * 60 + float(s))
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert len(gaps) == 3
    for gap, expected in zip(gaps, [1.0, 2.0, 2.0]):
        assert expected * 0.9 - 0.05 <= gap <= expected * 1.1 + 0.5, gaps


def test_missing_binary_is_a_config_error(run_config):
    ps = run_config('[programs.x]\ncommand = "/nonexistent/bin/thing"\n')
    assert ps.wait() == 2
    assert "pysuper: error: " in ps.err.text() and "/nonexistent/bin/thing is not an executable file" \
        in ps.err.text()


def test_critical_program_ends_pysuper_with_its_code(run_config):
    ps = run_config('''
[programs.app]
command = ["sh", "-c", "sleep 0.3; exit 7"]
critical = true
restart = "never"
[programs.sidecar]
command = ["sleep", "60"]
''')
    assert ps.wait() == 7
    assert re.search(r"critical program app exited with code 7; exiting with code 7",
                     ps.last_line()), ps.last_line()
    assert ps.err.matching(r"sidecar: stopped")


def test_critical_program_killed_by_signal_gives_128_plus_n(run_config):
    ps = run_config('''
[programs.app]
command = ["sh", "-c", "kill -KILL $$$$"]
critical = true
restart = "never"
''')
    assert ps.wait() == 137
    assert "killed by SIGKILL" in ps.last_line()


def test_critical_fatal(run_config):
    ps = run_config('''
[programs.app]
command = ["sh", "-c", "exit 5"]
critical = true
start_retries = 1
''')
    assert ps.wait() == 5
    assert "is FATAL" in ps.last_line()


def test_sigterm_stops_everything_and_exits_0(run_config):
    ps = run_config('''
[programs.a]
command = ["sleep", "60"]
[programs.b]
command = ["sleep", "60"]
''')
    ps.err.wait_for("b: started")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0
    assert ps.last_line() == "pysuper | received SIGTERM; exiting with code 0"


def test_stop_is_clean_for_the_stop_signal_itself(run_config):
    ps = run_config('''
[programs.a]
command = %s
stop_signal = "INT"
''' % toml_list(py("import signal,sys,time\nprint('ready', flush=True)\n"
                   "signal.signal(signal.SIGINT, lambda *a: sys.exit(130))\ntime.sleep(60)")))
    ps.out.wait_for("ready")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_ignoring_sigterm_gets_sigkill_with_grandchildren(run_config, tmp_path):
    pids = tmp_path / "pids"
    code = ("import os,signal,subprocess,time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "kid = subprocess.Popen(['sh', '-c', 'trap \"\" TERM; sleep 60 & echo $! ; wait'], "
            "stdout=subprocess.PIPE, text=True)\n"
            "grandkid = kid.stdout.readline().strip()\n"
            "open(%r, 'w').write('%%d %%d %%s' %% (os.getpid(), kid.pid, grandkid))\n"
            "print('ready', flush=True)\ntime.sleep(60)\n" % str(pids))
    ps = run_config('''
[pysuper]
shutdown_timeout = 5
[programs.stubborn]
command = %s
stop_timeout = 1
''' % toml_list(py(code)))
    ps.out.wait_for("ready")
    procs = [int(p) for p in pids.read_text().split()]
    started = time.monotonic()
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 1
    elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 4, elapsed
    assert "killed after timeout: stubborn" in ps.last_line()
    for pid in procs:
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z"


def test_second_sigterm_kills_at_once(run_config):
    ps = run_config('''
[programs.stubborn]
command = %s
stop_timeout = 30
''' % toml_list(py("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "print('ready', flush=True)\ntime.sleep(60)")))
    ps.out.wait_for("ready")
    ps.signal(signal.SIGTERM)
    ps.err.wait_for("stopping")
    started = time.monotonic()
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 1
    assert time.monotonic() - started < 3


def test_shutdown_budget_caps_stop_timeout(run_config):
    ps = run_config('''
[pysuper]
shutdown_timeout = 1
[programs.stubborn]
command = %s
stop_timeout = 30
''' % toml_list(py("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                   "print('ready', flush=True)\ntime.sleep(60)")))
    ps.out.wait_for("ready")
    started = time.monotonic()
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 1
    assert time.monotonic() - started < 3


def test_programs_stop_concurrently(run_config):
    body = toml_list(py("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                        "print('ready', flush=True)\ntime.sleep(60)"))
    ps = run_config("".join('[programs.p%d]\ncommand = %s\nstop_timeout = 1\n' % (i, body) for i in range(5)))
    ps.out.wait_for("ready", count=5)
    started = time.monotonic()
    ps.signal(signal.SIGINT)
    assert ps.wait() == 1
    assert time.monotonic() - started < 3


def test_forwarded_signals_reach_every_program(run_config):
    code = ("import signal,sys,time\n"
            "for s in (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):\n"
            "    signal.signal(s, lambda n, f: print('got', signal.Signals(n).name, flush=True))\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(1)\n")
    ps = run_config('[programs.a]\ncommand = %s\n[programs.b]\ncommand = %s\n'
                    % (toml_list(py(code)), toml_list(py(code))))
    ps.out.wait_for("ready", count=2)
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        ps.signal(signum)
        name = signal.Signals(signum).name
        ps.out.wait_for(r"^a .*got %s$" % name)
        ps.out.wait_for(r"^b .*got %s$" % name)
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_regression_signals_that_would_stop_or_end_pysuper_are_ignored(run_config):
    """Not PID 1, SIGTSTP/SIGTTIN/SIGTTOU stopped pysuper, and SIGALRM, SIGPROF, ... ended it with its
    programs left running. They are ignored now; the USR1 sent after them is forwarded as before."""
    code = ("import signal,time\n"
            "signal.signal(signal.SIGUSR1, lambda n, f: print('got USR1', flush=True))\n"
            "print('ready', flush=True)\n"
            "while True: time.sleep(60)\n")
    ps = run_config('[programs.a]\ncommand = %s\n' % toml_list(py(code)))
    ps.out.wait_for("ready")
    for signum in (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGTRAP, signal.SIGALRM,
                   signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGPIPE,
                   signal.SIGIO, signal.SIGPWR, getattr(signal, "SIGSTKFLT", 16), signal.SIGRTMIN, signal.SIGRTMIN + 3,
                   signal.SIGRTMAX):
        ps.signal(signum)
    ps.signal(signal.SIGUSR1)
    ps.out.wait_for(r"^a .*got USR1$")
    with open("/proc/%d/stat" % ps.pid) as handle:
        state = handle.read().rsplit(")", 1)[1].split()[0]
    assert state != "T", "pysuper is stopped"
    assert ps.proc.poll() is None
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0
    assert "internal error" not in ps.err.text()


def test_children_start_with_clean_signal_state(run_config):
    ps = run_config('[programs.a]\ncommand = ["sh", "-c", "grep -E \'^Sig(Blk|Ign)\' /proc/self/status; '
                    'readlink /proc/self/fd/0"]\nrestart = "never"\n')
    assert ps.wait() == 0
    out = [line.split("| ", 1)[1] for line in ps.out.lines]
    assert out[0].split() == ["SigBlk:", "0000000000000000"]
    assert out[1].split() == ["SigIgn:", "0000000000000000"]
    assert out[2] == "/dev/null"


def test_each_program_has_its_own_session(run_config):
    ps = run_config('[programs.a]\ncommand = %s\nrestart = "never"\n'
                    % toml_list(py("import os; print(os.getsid(0) == os.getpid(), os.getpgrp() == os.getpid())")))
    assert ps.wait() == 0
    assert ps.out.lines == ["a       | True True"]


def test_idle_pysuper_makes_no_wakeups(run_config):
    # start_seconds = 0: both are RUNNING at "started", no timer is left to fire.
    ps = run_config('[programs.a]\ncommand = ["sleep", "60"]\nstart_seconds = 0\n'
                    '[programs.b]\ncommand = ["sleep", "60"]\nstart_seconds = 0\n')
    ps.err.wait_for("b: started")

    def switches():
        with open("/proc/%d/status" % ps.pid) as handle:
            fields = dict(line.split(":", 1) for line in handle)
        return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])

    before = switches()
    time.sleep(2)  # the measurement window
    after = switches()
    assert after - before <= 1, "pysuper woke up %d times while idle" % (after - before)
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_no_traceback_on_sigint_during_startup(tmp_path):
    # SIGINT while pysuper starts (before its guard is up, the interpreter's start-up is Python's
    # business): either the loop handles it or the guard ends quietly. -X importtime says when
    # pysuper.config has been imported: main_entry's guard is up, the config is being read.
    import subprocess
    import sys

    from conftest import Stream, pysuper_env
    path = tmp_path / "p.toml"
    path.write_text('[programs.a]\ncommand = ["sleep", "60"]\n')
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-m", "pysuper", "-c", str(path)],
                            env=pysuper_env(), stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    err = Stream(proc.stderr)
    err.wait_for(r"\| pysuper\.config$")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) in (0, 130)
    assert "Traceback" not in err.text()


def test_user_and_group(run_config):
    if os.geteuid() != 0:
        import pytest
        pytest.skip("starting programs as another user needs root")
    ps = run_config('''
[programs.who]
command = ["sh", "-c", "id -u; id -g; echo $$HOME $$USER"]
user = "nobody"
restart = "never"
''')
    assert ps.wait() == 0
    import pwd
    nobody = pwd.getpwnam("nobody")
    out = [line.split("| ", 1)[1] for line in ps.out.lines]
    assert out == [str(nobody.pw_uid), str(nobody.pw_gid), "%s nobody" % nobody.pw_dir]


def test_color_always(run_config):
    ps = run_config('[pysuper]\ncolor = "always"\n[programs.c]\ncommand = ["echo", "hi"]\nrestart = "never"\n')
    assert ps.wait() == 0
    assert ps.out.lines == ["\x1b[36mc      \x1b[0m | hi"]
    assert ps.err.lines[-1].startswith("\x1b[1mpysuper\x1b[0m | ")


def test_project_helper_runs_pysuper_with_its_own_socket():
    """conftest.Project: a config in its own directory, its socket inside, `ctl` reaching it."""
    from conftest import Project
    project = Project('[programs.a]\ncommand = ["sleep", "60"]\ndirectory = "@DIR@"\nstart_seconds = 0\n')
    try:
        project.start()
        project.wait_started("a")
        assert str(project.socket).startswith(str(project.dir)) and os.path.exists(str(project.socket))
        status = project.ctl("status", "--json", check=0)
        assert '"name": "a"' in status.stdout and project.pysuper.ctl("health", check=0)
        assert project.stop() == 0
    finally:
        project.cleanup()
    assert not project.dir.exists()
