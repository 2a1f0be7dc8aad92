"""`pysuper ctl` against a real pysuper: every command, reload (by command and by SIGHUP), health.

Each test runs its own pysuper in its own temporary directory with its own socket ($PYSUPER_SOCKET),
so the tests can run in parallel. Readiness comes from pysuper's stderr lines; state changes are
awaited through the socket under a deadline.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from test_ctl_support import PYTHON, Pysuper, base_env, no_zombies_of

# A program that prints a line per signal it gets (USR1, INT, TERM, HUP) and otherwise sleeps.
TALKER = r'''
import signal, sys, time
def say(signum, frame):
    print("got", signal.Signals(signum).name, flush=True)
    if signum in (signal.SIGINT, signal.SIGTERM):
        sys.exit(0)
for sig in (signal.SIGUSR1, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, say)
print("ready", flush=True)
print("to stderr", file=sys.stderr, flush=True)
while True:
    time.sleep(3600)
'''

BASIC = """
[programs.web]
command = ["%(python)s", "-c", %(talker)s]
start_seconds = 0.2
stop_timeout = 5

[programs.worker]
command = "sleep 1000"
start_seconds = 0.2

[programs.task]
command = "true"
restart = "never"
start_seconds = 0
""" % {"python": PYTHON, "talker": json.dumps(TALKER)}


@pytest.fixture
def run_pysuper():
    started = []

    def start(config, wait=("web",), **kwargs):
        instance = Pysuper(config, **kwargs)
        started.append(instance)
        instance.start()
        for name in wait:
            instance.wait_started(name)
        for name in wait:
            instance.wait_state(name, "RUNNING")
        return instance

    yield start
    for instance in started:
        instance.cleanup()


def test_status_table_json_and_exit_codes(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    ps.wait_state("task", "EXITED")
    done = ps.ctl("status", check=0)
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST", "EXIT", "CPU", "MEMORY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["web"][1] == "RUNNING" and rows["web"][2].isdigit()
    assert rows["task"][1] == "EXITED" and rows["task"][5] == "0"
    assert rows["web"][-2].endswith("%") and rows["web"][-1][-1] in "BKMG"

    data = json.loads(ps.ctl("status", "--json", check=0).stdout)
    by_name = {row["name"]: row for row in data}
    assert set(by_name) == {"web", "worker", "task"}
    web = by_name["web"]
    assert web["state"] == "RUNNING" and web["pid"] > 0 and web["restarts"] == 0
    assert web["uptime"] >= 0 and web["memory_bytes"] > 1024 * 1024 and web["cpu_percent"] >= 0
    assert by_name["task"]["last_exit"] == 0 and by_name["task"]["pid"] is None

    assert ps.ctl("status", "web", "worker").returncode == 0
    not_running = ps.ctl("status", "web", "task")
    assert not_running.returncode == 3, not_running
    assert "task" in not_running.stdout
    unknown = ps.ctl("status", "wbe")
    assert unknown.returncode == 2
    assert "no program named 'wbe'" in unknown.stderr and "did you mean 'web'" in unknown.stderr


def test_stop_holds_start_and_restart_wait_for_the_transition(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    first_pid = ps.status()["web"]["pid"]

    done = ps.ctl("stop", "web", check=0)
    assert done.stdout.startswith("web: stopped"), done.stdout
    row = ps.status()["web"]
    assert row["state"] == "STOPPED" and row["held"] and row["pid"] is None
    assert "got SIGTERM" not in ps.stdout.text()  # TERM ends it at once (the handler exits)

    health = ps.ctl("health")
    assert health.returncode == 1
    assert health.stdout.strip() == "unhealthy: web is stopped (by hand)"

    mark = len(ps.stderr.lines)
    done = ps.ctl("start", "web", check=0)
    _, pid = ps.wait_started("web", start=mark)
    assert done.stdout.strip() == "web: started (pid %d)" % pid
    assert ps.status()["web"]["state"] == "RUNNING"  # start waited for start_seconds

    done = ps.ctl("restart", "web", check=0)
    new_pid = ps.status()["web"]["pid"]
    assert new_pid not in (pid, first_pid)
    assert done.stdout.strip() == "web: restarted (pid %d)" % new_pid

    done = ps.ctl("restart", "all", check=0)
    assert sorted(line.split(":")[0] for line in done.stdout.splitlines()) == ["task", "web", "worker"]
    status = ps.status()
    assert status["web"]["state"] == status["worker"]["state"] == "RUNNING"
    ps.wait_state("task", "EXITED")  # start_seconds = 0: RUNNING at once, then done
    assert no_zombies_of(ps.proc.pid) == []


def test_manual_stop_of_everything_is_not_a_failure(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    ps.ctl("stop", "all", check=0)
    status = ps.status()
    assert all(row["state"] in ("STOPPED", "EXITED") for row in status.values()), status
    assert ps.proc.poll() is None  # still there: someone stopped them by hand and may start them again
    assert ps.ctl("start", "worker", check=0).stdout.startswith("worker: started")
    done = ps.ctl("shutdown", check=0)
    assert "pysuper has exited with code 0" in done.stdout
    assert ps.proc.wait(20) == 0


def test_stop_honours_stop_signal_and_stop_timeout(run_pysuper):
    config = """
    [programs.web]
    command = ["%(python)s", "-c", %(talker)s]
    start_seconds = 0.2
    stop_signal = "INT"

    [programs.stubborn]
    command = ["%(python)s", "-c", "import signal as s, time; s.signal(s.SIGTERM, s.SIG_IGN); time.sleep(3600)"]
    start_seconds = 0.2
    stop_timeout = 0.5
    """ % {"python": PYTHON, "talker": json.dumps(TALKER)}
    ps = run_pysuper(config, wait=("web", "stubborn"))
    done = ps.ctl("stop", "web", check=0)
    assert done.stdout.strip() == "web: stopped (exited with code 0)"
    ps.stdout.wait_for(r"^web\s+\| got SIGINT$")

    began = time.monotonic()
    done = ps.ctl("stop", "stubborn", check=0)
    assert time.monotonic() - began >= 0.5
    assert "needed SIGKILL after stop_timeout" in done.stdout
    assert ps.status()["stubborn"]["state"] == "STOPPED"


def test_failed_start_is_reported(run_pysuper):
    config = BASIC + """
[programs.broken]
command = "sh -c 'echo failing; exit 3'"
autostart = false
start_seconds = 1
start_retries = 1
"""
    ps = run_pysuper(config)
    done = ps.ctl("start", "broken")
    assert done.returncode == 1
    assert "broken: failed to start (exited with code 3); now FATAL" in done.stderr
    assert ps.status()["broken"]["state"] == "FATAL"
    missing = ps.ctl("start", "nosuch", "web")
    assert missing.returncode == 2 and "no program named 'nosuch'" in missing.stderr
    assert ps.ctl("start").returncode == 2


def test_signal(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    pid = ps.status()["web"]["pid"]
    done = ps.ctl("signal", "USR1", "web", check=0)
    assert done.stdout.strip() == "web: sent SIGUSR1 to process group %d" % pid
    ps.stdout.wait_for(r"^web\s+\| got SIGUSR1$")
    ps.ctl("signal", "-HUP", "web", check=0)
    ps.stdout.wait_for(r"^web\s+\| got SIGHUP$")
    assert ps.status()["web"]["pid"] == pid

    mark = len(ps.stdout.lines)
    done = ps.ctl("signal", "sigusr1", "all")
    assert done.returncode == 1  # task is not running
    assert "task: not running (EXITED)" in done.stderr
    assert "web: sent SIGUSR1" in done.stdout and "worker: sent SIGUSR1" in done.stdout
    ps.stdout.wait_for(r"^web\s+\| got SIGUSR1$", start=mark)
    bad = ps.ctl("signal", "SIGFOO", "web")
    assert bad.returncode == 2 and "signal" in bad.stderr
    assert ps.ctl("signal", "HUP").returncode == 2


CHATTY = r'''
import signal, sys, time
def lines(signum, frame):
    for i in range(1, 51):
        print("line", i)
    sys.stdout.flush()
signal.signal(signal.SIGUSR2, lines)
signal.signal(signal.SIGUSR1, lambda signum, frame: print("poked", flush=True))
print("oops", file=sys.stderr, flush=True)
while True:
    time.sleep(3600)
'''


def test_logs_last_lines_streams_and_follow(run_pysuper):
    config = """
    [programs.chatty]
    command = ["%(python)s", "-c", %(chatty)s]
    start_seconds = 0.2
    """ % {"python": PYTHON, "chatty": json.dumps(CHATTY)}
    ps = run_pysuper(config, wait=("chatty",))
    ps.stderr.wait_for(r"chatty\s+\| oops$")
    ps.ctl("signal", "USR2", "chatty", check=0)
    ps.stdout.wait_for(r"chatty\s+\| line 50$")
    done = ps.ctl("logs", "chatty", "-n", "3", check=0)
    assert (done.stdout, done.stderr) == ("line 48\nline 49\nline 50\n", "")
    assert len(ps.ctl("logs", "chatty", check=0).stdout.splitlines()) == 10
    done = ps.ctl("logs", "chatty", "-n100", check=0)
    assert len(done.stdout.splitlines()) == 50 and done.stderr == "oops\n"  # each line on its own stream

    follower = subprocess.Popen([PYTHON, "-m", "pysuper", "ctl", "logs", "chatty", "-n", "1", "-f"],
                                env=ps.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert follower.stdout.readline() == b"line 50\n"  # the follower is in place now
        ps.ctl("signal", "USR1", "chatty", check=0)
        assert follower.stdout.readline() == b"poked\n"
        ps.ctl("signal", "USR2", "chatty", check=0)
        assert [follower.stdout.readline() for _ in range(50)][-1] == b"line 50\n"
    finally:
        follower.kill()
        follower.wait(10)
    assert ps.ctl("status", "chatty", check=0)  # the follower's departure harmed nothing
    assert ps.ctl("logs", "nosuch").returncode == 2
    assert ps.ctl("logs", "chatty", "-n", "x").returncode == 2


def test_logs_in_raw_mode_say_why_there_are_none(run_pysuper):
    config = '[pysuper]\nlog_format = "raw"\n' + BASIC
    ps = run_pysuper(config, wait=("worker",))
    done = ps.ctl("logs", "worker")
    assert done.returncode == 2
    assert 'log_format = "raw"' in done.stderr and len(done.stderr.splitlines()) == 1


def test_reload_adds_changes_removes_and_leaves_the_rest(run_pysuper):
    config = """
    [programs.keep]
    command = "sleep 1001"
    start_seconds = 0.1

    [programs.change]
    command = "sleep 1002"
    start_seconds = 0.1

    [programs.drop]
    command = "sleep 1003"
    start_seconds = 0.1
    """
    ps = Pysuper(config)
    try:
        ps.start()
        for name in ("keep", "change", "drop"):
            ps.wait_started(name)
            ps.wait_state(name, "RUNNING")
        before = ps.status()
        ps.write_config("""
        [programs.keep]
        command = "sleep 1001"
        start_seconds = 0.1

        [programs.change]
        command = "sleep 1002"
        start_seconds = 0.1
        environment = { NEW = "1" }

        [programs.add]
        command = "sleep 1004"
        start_seconds = 0.1
        """)
        done = ps.ctl("reload", check=0)
        assert done.stdout.splitlines() == ["added: add", "changed: change", "removed: drop"]
        after = ps.status()
        assert set(after) == {"keep", "change", "add"}
        assert after["keep"]["pid"] == before["keep"]["pid"]
        assert after["change"]["pid"] != before["change"]["pid"]
        ps.wait_state("change", "RUNNING")
        ps.wait_state("add", "RUNNING")
        with open("/proc/%d/environ" % ps.status()["change"]["pid"], "rb") as handle:
            assert b"NEW=1" in handle.read().split(b"\0")
        assert not os.path.exists("/proc/%d" % before["drop"]["pid"]) or \
            open("/proc/%d/stat" % before["drop"]["pid"]).read().split(") ")[1][0] == "Z"

        again = ps.ctl("reload", check=0)
        assert again.stdout.strip() == "no changes to programs"
        assert ps.status()["change"]["pid"] == after["change"]["pid"]
    finally:
        ps.cleanup()


def _processes_with_env(marker: bytes):
    """Pids of live (not zombie) processes whose environment contains `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as handle:
                env = handle.read().split(b"\0")
            with open("/proc/%s/stat" % entry) as handle:
                state = handle.read().rsplit(") ", 1)[1][0]
        except OSError:
            continue
        if marker in env and state != "Z":
            found.append(int(entry))
    return found


def test_overlapping_reloads_are_applied_one_after_the_other(run_pysuper):
    """A second reload waits until the first has settled: never two copies of a changed program."""
    slow = """
    [programs.slow]
    command = ["sh", "-c", "trap '' TERM; exec sleep 1000"]
    start_seconds = 0.1
    stop_timeout = 1
    environment = { TAG = "%s", RUN = "@DIR@" }
    """
    ps = run_pysuper(slow % "zero", wait=("slow",))
    ps.write_config(slow % "one")
    first = subprocess.Popen([PYTHON, "-m", "pysuper", "ctl", "reload"], env=ps.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        ps.wait_state("slow", "STOPPING")  # the first reload is waiting for stop_timeout
        ps.write_config(slow % "two")
        second = ps.ctl("reload", check=0)
        assert second.stdout.strip() == "changed: slow"
        out, err = first.communicate(timeout=30)
        assert first.returncode == 0, err
        assert out.decode().strip() == "changed: slow"
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    ps.wait_state("slow", "RUNNING")
    run = ("RUN=%s" % ps.dir).encode()
    pids = _processes_with_env(run)
    assert len(pids) == 1, pids
    with open("/proc/%d/environ" % pids[0], "rb") as handle:
        assert b"TAG=two" in handle.read().split(b"\0")


@pytest.mark.parametrize("broken, message", [
    ("[programs.keep\ncommand = 'x'\n", "invalid TOML"),
    ("[programs.keep]\ncommand = 'sleep 1001'\nrestart = 'sometimes'\n", "restart"),
    ("[programs.keep]\ncommand = 'no-such-binary-here'\n", "not found on PATH"),
])
def test_reload_with_a_broken_config_keeps_the_old_one(run_pysuper, broken, message):
    ps = run_pysuper("""
    [programs.keep]
    command = "sleep 1001"
    start_seconds = 0.1
    """, wait=("keep",))
    pid = ps.status()["keep"]["pid"]
    ps.write_config(broken)
    done = ps.ctl("reload")
    assert done.returncode == 1, done
    assert "the config has errors; pysuper keeps running the previous one" in done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    # pysuper's own output (docker logs) says so too
    ps.stderr.wait_for(r"reload \(pysuper ctl, pid \d+\): the config has errors; still running the previous one")
    ps.stderr.wait_for(message)
    assert ps.status()["keep"]["pid"] == pid and ps.status()["keep"]["state"] == "RUNNING"


def test_sighup_reloads_the_config(run_pysuper):
    ps = run_pysuper("""
    [programs.keep]
    command = "sleep 1001"
    start_seconds = 0.1
    """, wait=("keep",))
    ps.write_config("""
    [programs.keep]
    command = "sleep 1001"
    start_seconds = 0.1

    [programs.extra]
    command = "sleep 1005"
    start_seconds = 0.1
    """)
    mark = len(ps.stderr.lines)
    ps.proc.send_signal(signal.SIGHUP)
    ps.stderr.wait_for(r"reloaded \(SIGHUP\): added extra$", start=mark)
    ps.wait_state("extra", "RUNNING")

    ps.write_config("[programs.keep\n")
    mark = len(ps.stderr.lines)
    ps.proc.send_signal(signal.SIGHUP)
    ps.stderr.wait_for(r"reload \(SIGHUP\): the config has errors; still running the previous one", start=mark)
    ps.stderr.wait_for(r"invalid TOML", start=mark)
    assert set(ps.status()) == {"keep", "extra"}
    assert ps.proc.poll() is None


def test_sighup_reloads_without_a_control_socket(run_config, tmp_path):
    """SIGHUP means reload whether or not the control socket is on; programs do not get it."""
    config = """
[pysuper]
control_socket = false

[programs.web]
command = ["%(python)s", "-c", %(talker)s]
start_seconds = 0.1
""" % {"python": PYTHON, "talker": json.dumps(TALKER)}
    ps = run_config(config)
    ps.out.wait_for(r"web\s+\| ready")
    with open(str(tmp_path / "pysuper.toml"), "a") as handle:  # the file run_config wrote
        handle.write('\n[programs.extra]\ncommand = "sleep 1006"\nstart_seconds = 0.1\n')
    ps.signal(signal.SIGHUP)
    ps.err.wait_for(r"reloaded \(SIGHUP\): added extra$")
    ps.err.wait_for(r"extra: started with pid")
    assert not ps.out.matching(r"got SIGHUP")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_health_flips_when_a_program_goes_fatal(run_pysuper):
    config = """
    [programs.api]
    command = ["sh", "-c", "if [ -e @DIR@/broken ]; then echo broken; exit 1; fi; exec sleep 1000"]
    start_seconds = 0.3
    start_retries = 1

    [programs.job]
    command = "true"
    restart = "never"
    start_seconds = 0

    [programs.keeper]
    command = "sleep 1000"
    start_seconds = 0
    """
    ps = run_pysuper(config, wait=("api",))
    ps.wait_state("job", "EXITED")
    healthy = ps.ctl("health")
    assert (healthy.returncode, healthy.stdout) == (0, "healthy\n")  # a finished one-off task is fine

    open(os.path.join(str(ps.dir), "broken"), "w").close()
    ps.ctl("signal", "KILL", "api", check=0)
    ps.wait_state("api", "FATAL")
    sick = ps.ctl("health")
    assert sick.returncode == 1
    assert sick.stdout == "unhealthy: api is FATAL\n"

    os.unlink(os.path.join(str(ps.dir), "broken"))
    ps.ctl("start", "api", check=0)
    assert ps.ctl("health").returncode == 0


def test_health_reports_an_unexpected_exit(run_pysuper):
    ps = run_pysuper(BASIC + """
[programs.job]
command = "sh -c 'exit 4'"
restart = "never"
start_seconds = 0
""")
    ps.wait_state("job", "EXITED")
    sick = ps.ctl("health")
    assert sick.returncode == 1
    assert sick.stdout == "unhealthy: job exited with code 4 (unexpected)\n"


def test_health_answers_within_a_second_on_a_loaded_machine(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    burners = [subprocess.Popen([PYTHON, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        for _ in range(3):
            began = time.monotonic()
            done = ps.ctl("health", check=0)
            elapsed = time.monotonic() - began
            assert done.stdout == "healthy\n"
            assert elapsed < 1.0, "pysuper ctl health took %.2f s" % elapsed
    finally:
        for burner in burners:
            burner.kill()
        for burner in burners:
            burner.wait(10)


def test_shutdown_is_graceful_and_removes_the_socket(run_pysuper):
    ps = run_pysuper(BASIC, wait=("web", "worker"))
    done = ps.ctl("shutdown", check=0)
    assert done.stdout.splitlines()[0] == "shutting down; stopping web, worker"
    assert done.stdout.splitlines()[-1] == "pysuper has exited with code 0"
    assert ps.proc.wait(20) == 0
    assert not ps.socket.exists()
    ps.stderr.wait_for(r"shutdown requested by pysuper ctl \(uid %d" % os.getuid())
    gone = ps.ctl("status")
    assert gone.returncode == 2
    assert gone.stderr.startswith("pysuper ctl: no pysuper is running here")


def test_ctl_without_a_running_pysuper(tmp_path):
    env = base_env(tmp_path / "nothing.sock")
    for command in (["status"], ["health"], ["restart", "web"], ["logs", "web", "-f"], ["shutdown"]):
        done = subprocess.run([PYTHON, "-m", "pysuper", "ctl"] + command, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)
        assert done.returncode == 2, (command, done)
        text = done.stderr.decode()
        assert len(text.splitlines()) == 1 and "Traceback" not in text
        assert "no pysuper is running here" in text and str(tmp_path / "nothing.sock") in text

    import socket
    stale = tmp_path / "stale.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(stale))
    sock.close()
    env = base_env(stale)
    done = subprocess.run([PYTHON, "-m", "pysuper", "ctl", "status"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)
    assert done.returncode == 2
    assert "nothing listens on the control socket" in done.stderr.decode()


def test_usage_errors(tmp_path):
    env = base_env(tmp_path / "nothing.sock")
    for args, text in ((["ctl"], "no command given"), (["ctl", "frobnicate"], "unknown command"),
                       (["ctl", "statsu"], "did you mean status"), (["ctl", "--bogus", "status"], "unknown option"),
                       (["ctl", "logs"], "usage: pysuper ctl logs"), (["ctl", "status", "--wat"], "unknown option"),
                       (["ctl", "bogus"], "the commands are status, start, stop, restart, signal, logs"),
                       (["status", "web"], "did you mean: pysuper ctl status web"),
                       (["-c", "x.toml", "health"], "did you mean: pysuper ctl -c x.toml health")):
        done = subprocess.run([PYTHON, "-m", "pysuper"] + args, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=30)
        assert done.returncode == 2, args
        assert text in done.stderr.decode(), (args, done.stderr)
    helped = subprocess.run([PYTHON, "-m", "pysuper", "ctl", "--help"], env=env, stdout=subprocess.PIPE,
                            timeout=30)
    assert helped.returncode == 0 and b"usage: pysuper ctl" in helped.stdout


def test_ctl_finds_the_socket_from_the_config(tmp_path):
    """control_socket in the config, relative to the config's directory; `ctl -c` reads it."""
    ps = Pysuper("""
    [pysuper]
    control_socket = "sockets/here.sock"

    [programs.worker]
    command = "sleep 1000"
    start_seconds = 0.1
    """)
    ps.env.pop("PYSUPER_SOCKET")
    try:
        ps.start()
        ps.stderr.wait_for(r"control socket: %s" % os.path.join(str(ps.dir), "sockets", "here.sock"))
        ps.wait_started("worker")
        env = dict(ps.env)
        elsewhere = subprocess.run([PYTHON, "-m", "pysuper", "ctl", "-c", str(ps.config_path), "health"],
                                   env=env, cwd="/", stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert elsewhere.returncode in (0, 1), elsewhere
        assert elsewhere.stdout.decode().startswith(("healthy", "unhealthy"))
        env["PYSUPER_CONFIG"] = str(ps.config_path)
        via_env = subprocess.run([PYTHON, "-m", "pysuper", "ctl", "status", "--json"], env=env, cwd="/",
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        assert via_env.returncode == 0, via_env
        assert json.loads(via_env.stdout)[0]["name"] == "worker"
        in_dir = ps.ctl("status", "worker")  # ./pysuper.toml in the working directory
        assert in_dir.returncode in (0, 3), in_dir
    finally:
        ps.cleanup()


def test_ctl_with_the_socket_turned_off(tmp_path):
    config = tmp_path / "pysuper.toml"
    config.write_text('[pysuper]\ncontrol_socket = false\n[programs.a]\ncommand = "true"\n')
    env = base_env(tmp_path / "x.sock")
    env.pop("PYSUPER_SOCKET")
    done = subprocess.run([PYTHON, "-m", "pysuper", "ctl", "-c", str(config), "status"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert done.returncode == 2
    assert "control_socket = false" in done.stderr.decode()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
