"""Dependencies, oneshots, ready and health in the lifecycle, without processes: the supervisor on a
fake OS and clock (histories, as in test_supervisor), and a Program on a fake host with fake checks."""

import signal

import pytest
from test_program import FakeHost
from test_supervisor import check, replay

from pysuper import policy
from pysuper.config import CheckConfig, ProgramConfig
from pysuper.program import BACKOFF, EXITED, FATAL, RUNNING, STARTING, STOPPED, STOPPING, TRANSITIONS, WAITING, Program

TERM = signal.SIGTERM

CHAIN = '''
[programs.c]
command = ["c"]
depends_on = { b = "ready" }
start_seconds = 0
[programs.b]
command = ["b"]
depends_on = { a = "completed" }
start_seconds = 2
[programs.a]
command = ["a"]
type = "oneshot"
'''

STARTED = '''
[programs.a]
command = ["a"]
start_seconds = 5
[programs.b]
command = ["b"]
depends_on = ["a"]
start_seconds = 0
'''

MANUAL = '''
[programs.keep]
command = ["keep"]
start_seconds = 0
[programs.a]
command = ["a"]
autostart = false
start_seconds = 0
[programs.b]
command = ["b"]
autostart = false
depends_on = { a = "ready" }
start_seconds = 0
'''

RETRIED = '''
[programs.job]
command = ["job"]
type = "oneshot"
restart = "on-failure"
start_retries = 2
'''

REPLICAS = '''
[programs.web]
command = ["web"]
replicas = %d
start_seconds = 0
[programs.worker]
command = ["worker"]
depends_on = { web = "started" }
start_seconds = 0
'''

CASES = [
    ("the chain waits for each condition", CHAIN, [],
     {"spawned": ["a"], "states": {"a": RUNNING, "b": WAITING, "c": WAITING},
      "logged": ["b: waiting for a (completed)", "c: waiting for b (ready)"]}),
    ("a completed oneshot lets the next start; ready comes after start_seconds", CHAIN, [("exit", "a", 0)],
     {"spawned": ["a", "b"], "states": {"a": EXITED, "b": STARTING, "c": WAITING}}),
    ("ready holds once start_seconds have passed", CHAIN, [("exit", "a", 0), ("wait", 2)],
     {"spawned": ["a", "b", "c"], "states": {"b": RUNNING, "c": RUNNING}}),
    ("a failed dependency makes its dependents FATAL, naming it", CHAIN, [("exit", "a", 3)],
     {"states": {"a": EXITED, "b": FATAL, "c": FATAL},
      "logged": ["b: FATAL: cannot start: dependency a (completed) exited with code 3 and will not run again",
                 "c: FATAL: cannot start: dependency b (ready) is FATAL"],
      "code": 1}),
    ("started holds at the spawn", STARTED, [], {"spawned": ["a", "b"], "states": {"a": STARTING}}),
    ("shutdown stops dependents first", CHAIN, [("exit", "a", 0), ("wait", 2), ("signal", TERM)],
     {"signals": [("c", TERM), ("b", TERM)], "code": 0}),
    ("a WAITING program is stopped at once", CHAIN, [("signal", TERM)],
     {"states": {"b": STOPPED, "c": STOPPED}, "signals": [("a", TERM)]}),
    ("ctl start starts the stopped dependencies first", MANUAL, [("start", "b")],
     {"spawned": ["keep", "a", "b"], "states": {"a": RUNNING, "b": RUNNING}, "done": [RUNNING]}),
    ("ctl stop of a waiting program holds it", CHAIN, [("stop", "c")],
     {"states": {"c": STOPPED}, "done": [STOPPED]}),
    ("a oneshot's failed runs are retried, then FATAL", RETRIED,
     [("exit", "job", 1), ("wait", 1.1), ("exit", "job", 1)],
     {"spawned": ["job", "job"], "states": {"job": FATAL}, "logged": ["job: FATAL: 2 failed starts in a row"]}),
    ("a oneshot's success ends it at any time", RETRIED, [("exit", "job", 0)],
     {"states": {"job": EXITED}, "code": 0}),
    ("replicas: a dependency on web is on every replica", REPLICAS % 2, [],
     {"spawned": ["web", "web", "worker"], "states": {"web-0": RUNNING, "web-1": RUNNING, "worker": RUNNING}}),
    ("going from 3 replicas to 1 replaces them", REPLICAS % 3, [("reload", REPLICAS % 1)],
     {"states": {"web": RUNNING, "worker": RUNNING}, "spawned": ["web", "web", "web", "worker", "web"]}),
]


@pytest.mark.parametrize("text,history,outcome", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_history(text, history, outcome):
    supervisor, fake_os, output, done = replay(text, history)
    check(outcome, supervisor, fake_os, output, done)


def test_scaling_down_keeps_the_low_replicas_untouched():
    supervisor, fake_os, output, _ = replay(REPLICAS % 3, [("reload", REPLICAS % 2)])
    assert sorted(supervisor.programs) == ["web-0", "web-1", "worker"]
    assert fake_os.spawned == ["web", "web", "web", "worker"]  # nothing restarted
    assert ("web", TERM) in fake_os.signals and len(fake_os.signals) == 1


def test_condition_table():
    cases = [
        ("started", "STARTING", None, policy.HOLDS), ("started", "STOPPED", None, policy.WAIT),
        ("started", "BACKOFF", False, policy.WAIT), ("ready", "STARTING", None, policy.WAIT),
        ("ready", "RUNNING", None, policy.HOLDS), ("completed", "RUNNING", None, policy.WAIT),
        ("completed", "EXITED", True, policy.HOLDS), ("completed", "EXITED", False, policy.NEVER),
        ("ready", "EXITED", True, policy.HOLDS), ("started", "FATAL", False, policy.NEVER),
        ("ready", "WAITING", None, policy.WAIT),
    ]
    for wanted, state, expected, verdict in cases:
        assert policy.condition(wanted, state, expected) == verdict, (wanted, state, expected)


def test_every_waiting_edge_is_in_the_table():
    edges = {(state, event) for (state, event) in TRANSITIONS if WAITING in (state, TRANSITIONS[(state, event)])}
    assert edges == {(STOPPED, "wait"), ("EXITED", "wait"), ("FATAL", "wait"), ("BACKOFF", "wait"),
                     (WAITING, "start"), (WAITING, "blocked"), (WAITING, "stop")}


# -- ready and health on a fake host ---------------------------------------------------------------
class FakeCheck:
    def __init__(self, kind, on_pass, on_fail):
        self.kind, self.on_pass, self.on_fail, self.cancelled = kind, on_pass, on_fail, False

    def cancel(self):
        self.cancelled = True


class CheckingHost(FakeHost):
    def __init__(self):
        super().__init__()
        self.checks = []

    def check_ready(self, program, on_ready, on_fail):
        self.checks.append(FakeCheck("ready", on_ready, on_fail))
        return self.checks[-1]

    def check_health(self, program, on_unhealthy, on_healthy):
        self.checks.append(FakeCheck("health", on_healthy, on_unhealthy))
        return self.checks[-1]


def make(**overrides):
    values = dict(name="web", command=("web",), start_seconds=1.0, start_retries=2, backoff_max=30.0,
                  ready=CheckConfig(kind="tcp", target=("127.0.0.1", 80), start_timeout=5.0),
                  health=CheckConfig(kind="http", target="http://127.0.0.1/", interval=10, timeout=2, retries=3))
    values.update(overrides)
    host = CheckingHost()
    program = Program(ProgramConfig(**values), host)
    return program, host


def test_ready_check_makes_it_running_and_arms_health():
    program, host = make()
    program.start()
    assert program.state == STARTING and program.ready is False and host.checks[-1].kind == "ready"
    host.advance(3)  # start_seconds do not apply with a ready check
    assert program.state == STARTING
    host.clock = 1.23
    host.checks[-1].on_pass()
    assert program.state == RUNNING and program.ready is True
    assert "web: ready after 1.23 s (tcp)" in host.messages
    assert host.checks[-1].kind == "health"


def test_start_timeout_stops_it_and_counts_a_failed_start():
    program, host = make()
    program.start()
    host.checks[-1].on_fail("not ready within start_timeout = 5 s; last check: tcp 127.0.0.1:80: connection refused")
    assert program.state == STOPPING and host.signals == [TERM]
    host.group = False
    program.on_exit(143)
    assert program.state == BACKOFF and program.failures == 1
    assert any("failed to start (1 of 2)" in line for line in host.messages)
    host.advance(1.5)
    assert program.state == STARTING and len(host.spawns) == 2
    host.checks[-1].on_fail("again")
    program.on_exit(143)
    assert program.state == FATAL


def test_an_exit_before_ready_is_a_failed_start_or_final_by_the_policy():
    program, host = make()
    program.start()
    host.advance(2)
    program.on_exit(1)
    assert program.state == BACKOFF and host.checks[0].cancelled
    program, host = make(restart="never")
    program.start()
    program.on_exit(1)
    assert program.state == EXITED


def test_unhealthy_restarts_and_counts_toward_the_backoff():
    program, host = make()
    program.start()
    host.checks[-1].on_pass()
    host.advance(100)
    host.checks[-1].on_fail("http http://127.0.0.1/: HTTP 503 Service Unavailable")
    assert program.state == STOPPING and program.health_failing
    assert "web: unhealthy: http http://127.0.0.1/: HTTP 503 Service Unavailable; restarting" in host.messages
    host.group = False
    program.on_exit(143)
    assert program.state == STARTING and program.restarts == 1 and len(host.spawns) == 2
    host.checks[-1].on_pass()
    assert program.state == RUNNING and not program.health_failing
    host.checks[-1].on_fail("again")  # soon after the last restart: a delay first
    program.on_exit(143)
    assert program.state == BACKOFF
    host.advance(1.1)
    assert program.state == STARTING and program.restarts == 2


def test_a_stop_during_an_unhealthy_restart_wins():
    program, host = make()
    program.start()
    host.checks[-1].on_pass()
    host.checks[-1].on_fail("down")
    program.stop(held=True)
    host.group = False
    program.on_exit(143)
    assert program.state == STOPPED and len(host.spawns) == 1


def test_regression_notify_without_a_socket_is_a_failed_start_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))
    supervisor, fake_os, output, _ = replay('''
[programs.db]
command = ["db"]
ready = { notify = true }
start_retries = 1
''', [])
    assert output.matching("error: cannot create the sd_notify socket: No such file or directory")
    assert output.matching("db: not ready within") == [] and supervisor.programs["db"].state == FATAL
    assert output.matching("db: cannot create the sd_notify socket: No such file or directory; stopping it")


def test_ctl_health_names_waiting_starting_and_failing_programs():
    supervisor, _, _, _ = replay('''
[programs.db]
command = ["db"]
start_seconds = 5
[programs.web]
command = ["web"]
depends_on = { db = "ready" }
start_seconds = 0
[programs.api]
command = ["api"]
start_seconds = 0
health = { tcp = 9, interval = 10 }
''', [])
    api = supervisor.programs["api"]
    assert api.state == RUNNING and api.health_failing is False
    api.health_failing, api.health_error = True, "tcp 127.0.0.1:9: connection refused"
    healthy, problems = supervisor.health()
    assert not healthy
    assert problems == ["db is STARTING", "web is WAITING",
                        "api is failing its health check: tcp 127.0.0.1:9: connection refused"]
