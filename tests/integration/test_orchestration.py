"""depends_on, oneshot, ready and health checks, sd_notify, replicas and reload, with a real pysuper.

Every wait is a handshake under a deadline: pysuper's own log lines, the programs' output, or the
control socket's status; nothing sleeps to synchronise.
"""

import json
import os
import signal
import socket
import sys

import pytest

from test_ctl_support import PYTHON, Pysuper

APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "test_orchestration_app.py")


def app(*args):
    return json.dumps([PYTHON, APP] + [str(arg) for arg in args])


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pysuper():
    started = []

    def start(config, wait_for=r"control socket: "):
        ps = Pysuper(config)
        started.append(ps)
        return ps.start(wait_for=wait_for)
    yield start
    for ps in started:
        ps.cleanup()


def line(ps, pattern, start=0):
    """Index of the first stderr line from `start` matching pattern (waits for it)."""
    return ps.stderr.search(pattern, start=start)[0]


def test_chain_starts_in_order_and_stops_in_reverse(pysuper):
    db_port, web_port = free_port(), free_port()
    ps = pysuper("""
    [programs.worker]
    command = %s
    depends_on = { web = "ready" }
    start_seconds = 0.1

    [programs.web]
    command = %s
    ready = { http = "http://127.0.0.1:%d/", interval = 0.1 }
    depends_on = { db = "ready" }

    [programs.db]
    command = %s
    ready = { tcp = %d, interval = 0.1 }
    depends_on = { migrate = "completed" }

    [programs.migrate]
    type = "oneshot"
    command = %s
    """ % (app("sleep"), app("http", web_port), web_port, app("tcp", db_port), db_port, app("exit", 0)))
    migrated = line(ps, r"migrate: exited with code 0")
    assert line(ps, r"db: waiting for migrate \(completed\)") < migrated
    assert line(ps, r"web: waiting for db \(ready\)") < migrated
    db_started = line(ps, r"db: started with pid")
    assert migrated < db_started
    db_ready = line(ps, r"db: ready after \d+\.\d\d s \(tcp\)")
    web_started = line(ps, r"web: started with pid")
    assert db_ready < web_started
    web_ready = line(ps, r"web: ready after \d+\.\d\d s \(http\)")
    worker_started = line(ps, r"worker: started with pid")
    assert web_ready < worker_started
    ps.wait_state("worker", "RUNNING")
    status = ps.status()
    assert status["db"]["ready"] is True and status["worker"]["ready"] is None
    assert status["migrate"]["type"] == "oneshot" and status["migrate"]["state"] == "EXITED"
    assert status["web"]["waiting_for"] == [] and status["web"]["health"] is None

    ps.proc.send_signal(signal.SIGTERM)
    assert ps.proc.wait(20) == 0
    worker_stopped = line(ps, r"worker: stopped")
    web_stopping = line(ps, r"web: stopping with SIGTERM")
    web_stopped = line(ps, r"web: stopped")
    db_stopping = line(ps, r"db: stopping with SIGTERM")
    assert worker_stopped < web_stopping < web_stopped < db_stopping


def test_failing_migrate_makes_the_waiting_program_fatal_naming_it(pysuper):
    ps = pysuper("""
    [programs.migrate]
    type = "oneshot"
    command = %s

    [programs.web]
    command = %s
    depends_on = { migrate = "completed" }
    critical = true
    """ % (app("exit", 3), app("sleep")), wait_for=None)
    ps.stderr.wait_for(r"web: FATAL: cannot start: dependency migrate \(completed\) exited with code 3 and will not "
                       r"run again$")
    assert ps.proc.wait(20) == 1
    ps.stderr.wait_for(r"critical program web is FATAL \(cannot start: dependency migrate \(completed\) exited "
                       r"with code 3 and will not run again\); exiting with code 1$")
    assert not ps.stderr.matching(r"web: started with pid")


@pytest.mark.parametrize("kind", ["tcp", "http", "exec", "log", "notify"])
def test_each_check_flips_ready_when_the_program_is_ready(pysuper, kind, tmp_path):
    port = free_port()
    go = str(tmp_path / "go")
    command, ready = {
        "tcp": (app("tcp", port, go), "{ tcp = %d, interval = 0.05 }" % port),
        "http": (app("http", port, go), '{ http = "http://127.0.0.1:%d/health", interval = 0.05 }' % port),
        "exec": (app("sleep"), '{ exec = ["test", "-e", "%s"], interval = 0.05 }' % go),
        "log": (app("log", go), '{ log = "listening on \\\\d+" }'),
        "notify": (app("notify", go), "{ notify = true }"),
    }[kind]
    ps = pysuper("""
    [programs.app]
    command = %s
    ready = %s
    """ % (command, ready))
    ps.stderr.wait_for(r"app: started with pid")
    if kind != "exec":
        ps.stdout.wait_for(r"app +\| waiting for go")
    row = ps.status()["app"]
    assert row["state"] == "STARTING" and row["ready"] is False
    assert ps.ctl("health").returncode == 1  # STARTING is not healthy
    with open(go, "w"):
        pass
    ps.stderr.wait_for(r"app: ready after \d+\.\d\d s \(%s\)" % kind)
    row = ps.status()["app"]
    assert row["state"] == "RUNNING" and row["ready"] is True
    assert ps.ctl("health").returncode == 0


def test_notify_status_is_shown_before_and_after_ready(pysuper, tmp_path):
    go = str(tmp_path / "go")
    ps = pysuper("""
    [programs.db]
    command = %s
    ready = { notify = true }
    """ % app("notify", go))
    ps.stdout.wait_for(r"db +\| status sent")
    deadline_row = ps.wait_state("db", "STARTING")
    assert deadline_row["ready"] is False
    wait_field(ps, "db", "notify_status", "warming up")
    with open(go, "w"):
        pass
    ps.stderr.wait_for(r"db: ready after \d+\.\d\d s \(notify\)")
    wait_field(ps, "db", "notify_status", "serving")


def wait_field(ps, name, field, value, timeout=15.0):
    import time
    deadline = time.monotonic() + timeout
    while ps.status()[name][field] != value:
        assert time.monotonic() < deadline, "%s.%s is %r, not %r" % (name, field, ps.status()[name][field], value)
        time.sleep(0.02)


def test_a_hung_program_failing_its_health_check_is_restarted(pysuper):
    port = free_port()
    ps = pysuper("""
    [programs.web]
    command = %s
    ready = { http = "http://127.0.0.1:%d/", interval = 0.05 }
    health = { http = "http://127.0.0.1:%d/", interval = 0.2, timeout = 0.3, retries = 2 }
    stop_timeout = 2
    """ % (app("http", port), port, port))
    _, first = ps.wait_started("web")
    ps.stderr.wait_for(r"web: ready after")
    assert ps.status()["web"]["health"] == "passing"
    os.kill(first, signal.SIGUSR1)  # alive, but it answers no more
    index = line(ps, r"web: unhealthy: http http://127.0.0.1:%d/: no answer within 0.3 s; restarting" % port)
    _, second = ps.wait_started("web", start=index)
    assert second != first
    ps.stderr.wait_for(r"web: ready after", count=2)
    row = ps.wait_state("web", "RUNNING")
    assert row["restarts"] == 1 and row["health"] == "passing"


def test_start_timeout_is_a_failed_start(pysuper):
    port = free_port()
    ps = pysuper("""
    [programs.web]
    command = %s
    ready = { tcp = %d, interval = 0.05, start_timeout = 0.5 }
    start_retries = 2
    """ % (app("sleep"), port), wait_for=None)
    ps.stderr.wait_for(r"web: not ready within start_timeout = 0.5 s; last check: tcp 127.0.0.1:%d: connection "
                       r"refused; stopping it" % port)
    ps.stderr.wait_for(r"web: failed to start \(1 of 2\); retrying in")
    ps.stderr.wait_for(r"web: FATAL: 2 failed starts in a row")
    assert ps.proc.wait(20) == 1


def test_replicas_get_their_own_index(pysuper):
    code = ('import os, time; print(\\"replica\\", os.environ[\\"PYSUPER_REPLICA\\"], ${PYSUPER_REPLICA}, flush=True); '
            'time.sleep(600)')
    ps = pysuper("""
    [programs.web]
    command = "%s -c '%s'"
    replicas = 3
    start_seconds = 0.1
    """ % (sys.executable, code))
    for index in range(3):
        ps.stdout.wait_for(r"^web-%d +\| replica %d %d$" % (index, index, index))
    status = ps.status()
    assert sorted(status) == ["web-0", "web-1", "web-2"]
    assert [status["web-%d" % i]["replica"] for i in range(3)] == [0, 1, 2]


def test_reload_scales_replicas_down_and_up(pysuper):
    config = """
    [programs.web]
    command = "sleep 600"
    replicas = %d
    start_seconds = 0.1
    """
    ps = pysuper(config % 3)
    for index in range(3):
        ps.wait_state("web-%d" % index, "RUNNING")
    before = ps.status()
    ps.write_config(config % 2)
    ps.ctl("reload", check=0)
    after = ps.status()
    assert sorted(after) == ["web-0", "web-1"]
    assert [after[n]["pid"] for n in ("web-0", "web-1")] == [before[n]["pid"] for n in ("web-0", "web-1")]
    ps.write_config(config % 4)
    ps.ctl("reload", check=0)
    for index in range(4):
        ps.wait_state("web-%d" % index, "RUNNING")
    again = ps.status()
    assert [again[n]["pid"] for n in ("web-0", "web-1")] == [before[n]["pid"] for n in ("web-0", "web-1")]


RUN_CONFIG = """
[programs.db]
command = "sleep 600"
start_seconds = 0.1
autostart = false

[programs.web]
command = "sleep 600"
depends_on = { db = "ready" }
start_seconds = 0.1
autostart = false

[programs.check]
command = "sleep 600"
start_seconds = 0.1

[programs.other]
command = "sleep 600"
start_seconds = 0.1
"""


@pytest.mark.parametrize("words", [["run", "web"], ["web"]])
def test_run_names_starts_them_and_their_dependencies_only(run_config, words):
    ps = run_config(RUN_CONFIG, *words)
    ps.err.wait_for(r"starting db, web$")
    ps.err.wait_for(r"web: started with pid")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0
    assert not ps.err.matching(r"(check|other): started")


def test_run_a_program_named_like_a_subcommand(run_config):
    ps = run_config(RUN_CONFIG, "run", "check")
    ps.err.wait_for(r"check: started with pid")
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_run_an_unknown_name_is_a_usage_error(run_config):
    ps = run_config(RUN_CONFIG, "run", "wbe")
    assert ps.wait() == 2
    assert ps.err.lines[-1].startswith("pysuper: no program named 'wbe' in ")
    assert ps.err.lines[-1].endswith("; did you mean 'web'?")


def test_ctl_addresses_all_replicas_by_the_declared_name(pysuper):
    ps = pysuper("""
    [programs.web]
    command = "sleep 600"
    replicas = 3
    start_seconds = 0.1
    """)
    for index in range(3):
        ps.wait_state("web-%d" % index, "RUNNING")
    rows = json.loads(ps.ctl("status", "--json", "web", check=0).stdout)
    assert [row["name"] for row in rows] == ["web-0", "web-1", "web-2"]
    assert ps.ctl("stop", "web-1", check=0).stdout == "web-1: stopped (SIGTERM)\n"
    assert ps.status()["web-0"]["state"] == "RUNNING"
    done = ps.ctl("stop", "web", check=0)
    assert done.stdout.splitlines() == ["web-0: stopped (SIGTERM)", "web-1: was not running (STOPPED)",
                                        "web-2: stopped (SIGTERM)"]
    done = ps.ctl("start", "web", check=0)
    assert [line.split(":")[0] for line in done.stdout.splitlines()] == ["web-0", "web-1", "web-2"]
    assert ps.ctl("status", "wbe").returncode == 2


def test_ctl_start_starts_dependencies_and_status_shows_what_it_waits_for(pysuper, tmp_path):
    port = free_port()
    go = str(tmp_path / "go")
    ps = pysuper("""
    [programs.keep]
    command = "sleep 600"

    [programs.db]
    command = %s
    ready = { tcp = %d, interval = 0.05 }
    autostart = false

    [programs.web]
    command = "sleep 600"
    depends_on = { db = "ready" }
    autostart = false
    start_seconds = 0.1
    """ % (app("tcp", port, go), port))
    starting = ps_ctl_async(ps, "start", "web")
    ps.wait_state("web", "WAITING")
    ps.stdout.wait_for(r"db +\| waiting for go")
    table = ps.ctl("status", "web", "db").stdout
    assert "WAITING (waiting for db (ready))" in table
    assert "STARTING (not ready)" in table
    with open(go, "w"):
        pass
    out, _ = starting.communicate(timeout=20)
    assert starting.returncode == 0 and out.decode().startswith("web: started (pid ")
    assert ps.status()["db"]["state"] == "RUNNING"


def ps_ctl_async(ps, *args):
    import subprocess
    return subprocess.Popen([PYTHON, "-m", "pysuper", "ctl"] + list(args), cwd=str(ps.dir), env=ps.env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_regression_a_log_check_with_raw_output_fails_at_once_saying_why(pysuper):
    ps = pysuper("""
    [pysuper]
    log_format = "raw"

    [programs.app]
    command = %s
    ready = { log = "listening", start_timeout = 30 }
    start_retries = 1
    """ % app("log"), wait_for=None)
    ps.stderr.wait_for(r"app: ready = \{ log = \.\.\. \} cannot see the output with log_format = \"raw\"")
    ps.stderr.wait_for(r"app: FATAL: 1 failed start in a row", timeout=10)
