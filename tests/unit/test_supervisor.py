"""The Supervisor driven by a fake OS, a fake clock and a recording output (no processes).

Each case is a config, a history of events and the outcome expected after it. Events:
    ("exit", COMMAND, CODE)   the live process of COMMAND exits with CODE
    ("signal", SIGNUM)        SIGNUM arrives at pysuper
    ("wait", SECONDS)         time passes (timers fire)
    ("start" | "stop" | "restart", NAME)   a command-API request (as from `pysuper ctl`)
    ("reload", TOML)          apply_config with a new config
    ("together", EVENT, ...)  the events, with nothing handled in between (same loop round)
    ("stray", COMMAND)        a process that is not a program (an orphan) appears
Outcomes: "code" (pysuper's exit code, None: still running), "last" (text of pysuper's last line),
"states" ({name: state}), "spawned" (commands started, in order), "signals" ((command, signum) sent
to process groups, in order), "logged" (texts that some line contains), "done" (the states the
command-API requests finished with), "restarts" ({name: count}).
"""

import signal

import pytest
from fakes import FakeLoop, FakeOS, FakeOutput

from pysuper.config import parse
from pysuper.loop import Loop
from pysuper.program import BACKOFF, EXITED, FATAL, RUNNING, STOPPED, STOPPING
from pysuper.supervisor import Supervisor

TERM, INT, QUIT, KILL = signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGKILL

TWO = '''
[programs.a]
command = ["a"]
start_seconds = 0
stop_timeout = 3
[programs.b]
command = ["b"]
start_seconds = 0
stop_timeout = 3
'''

NEVER = '''
[programs.a]
command = ["a"]
start_seconds = 0
restart = "never"
[programs.b]
command = ["b"]
start_seconds = 0
restart = "never"
'''

CRITICAL = '''
[programs.app]
command = ["app"]
critical = true
restart = "never"
start_seconds = 0
[programs.side]
command = ["side"]
start_seconds = 0
'''

FAILING = '''
[programs.a]
command = ["a"]
start_retries = 2
restart = "on-failure"
%s
[programs.b]
command = ["b"]
start_seconds = 0
restart = "never"
'''

CRASH_LOOP = '''
[programs.a]
command = ["a"]
critical = true
restart = "on-failure"
start_seconds = 1
backoff_max = 30
'''


def replay(text, history, pid1=False, stubborn=()):
    loop = FakeLoop()
    fake_os = FakeOS(loop)
    fake_os.stubborn.update(stubborn)
    output = FakeOutput()
    supervisor = Supervisor(parse(text, "test.toml"), loop, output=output, pid1=pid1, osproc=fake_os)
    done = []
    supervisor.start()
    loop.settle()

    def play(event):
        kind = event[0]
        if kind == "exit":
            fake_os.exit(event[1], event[2])
        elif kind == "signal":
            loop.deliver(event[1])
        elif kind == "wait":
            loop.advance(event[1])
        elif kind in ("start", "stop", "restart"):
            getattr(supervisor, kind + "_program")(event[1], done.append)
        elif kind == "reload":
            supervisor.apply_config(parse(event[1], "test.toml"))
        elif kind == "stray":
            fake_os.spawn([event[1]])
        elif kind == "together":
            for each in event[1:]:
                play(each)
        else:
            raise AssertionError("unknown event %r" % (event,))
    for event in history:
        play(event)
        loop.settle()
    return supervisor, fake_os, output, done


def check(outcome, supervisor, fake_os, output, done):
    for key, expected in outcome.items():
        if key == "code":
            assert supervisor.exit_code == expected, output.lines
        elif key == "last":
            assert output.lines and expected in output.lines[-1], output.lines
        elif key == "states":
            assert {name: supervisor.programs[name].state for name in expected} == expected, output.lines
        elif key == "spawned":
            assert fake_os.spawned == expected, output.lines
        elif key == "signals":
            assert fake_os.signals == expected, output.lines
        elif key == "logged":
            for text in expected:
                assert output.matching(text), "no line contains %r:\n%s" % (text, "\n".join(output.lines))
        elif key == "done":
            assert done == expected, output.lines
        elif key == "restarts":
            assert {name: supervisor.programs[name].restarts for name in expected} == expected
        elif key == "kill_all":
            assert fake_os.kill_all_calls == expected
        else:
            raise AssertionError("unknown outcome %r" % key)


EXIT_POLICY = {
    "critical program ends pysuper with its code": (
        CRITICAL, [("wait", 1), ("exit", "app", 3)],
        {"code": 3, "last": "critical program app exited with code 3; exiting with code 3",
         "signals": [("side", TERM)]}),
    "critical program killed by a signal gives 128+N": (
        CRITICAL, [("exit", "app", 128 + 9)],
        {"code": 137, "last": "critical program app killed by SIGKILL (exit 137); exiting with code 137"}),
    "all finished as expected": (
        NEVER, [("exit", "a", 0), ("exit", "b", 0)],
        {"code": 0, "last": "all programs have finished as expected; exiting with code 0"}),
    "one finished not as expected": (
        NEVER, [("exit", "a", 0), ("exit", "b", 2)],
        {"code": 1, "last": "all programs have finished; not as expected: b; exiting with code 1"}),
    "one still running: pysuper keeps running": (
        NEVER, [("exit", "a", 0)], {"code": None, "states": {"a": EXITED, "b": RUNNING}}),
    "FATAL program counts as a failure": (
        FAILING % "", [("exit", "a", 1), ("wait", 1.2), ("exit", "a", 1), ("exit", "b", 0)],
        {"code": 1, "states": {"a": FATAL}, "spawned": ["a", "b", "a"],
         "last": "not as expected: a; exiting with code 1"}),
    "critical FATAL program ends pysuper": (
        FAILING % "critical = true", [("exit", "a", 1), ("wait", 1.2), ("exit", "a", 1)],
        {"code": 1, "signals": [("b", TERM)],
         "last": "critical program a is FATAL (last run exited with code 1) after 1 restart; "
                 "exiting with code 1"}),
    "stopped by hand: pysuper keeps running": (
        NEVER, [("stop", "a"), ("exit", "b", 0)],
        {"code": None, "states": {"a": STOPPED, "b": EXITED}, "done": [STOPPED]}),
    "stopped by hand, started again and finished": (
        NEVER, [("stop", "a"), ("exit", "b", 0), ("start", "a"), ("exit", "a", 0)],
        {"code": 0, "done": [STOPPED, RUNNING], "last": "as expected; exiting with code 0"}),
    "nothing autostarts": (
        '[programs.a]\ncommand = ["a"]\nautostart = false\n', [],
        {"code": 0, "spawned": [], "last": "all programs have finished as expected"}),
}

SHUTDOWN = {
    "SIGTERM stops every program": (
        TWO, [("wait", 1), ("signal", TERM)],
        {"code": 0, "signals": [("a", TERM), ("b", TERM)], "logged": ["received SIGTERM; stopping a, b"],
         "last": "received SIGTERM; exiting with code 0"}),
    "a program stops with SIGTERM: the short form": (
        TWO, [("signal", TERM)], {"logged": ["a: stopped (SIGTERM)"]}),
    "SIGINT and SIGQUIT shut down too": (
        TWO, [("signal", QUIT)], {"code": 0, "last": "received SIGQUIT; exiting with code 0"}),
    "stubborn program waits for its stop_timeout": (
        TWO, [("signal", TERM), ("wait", 2.9)], {"code": None, "states": {"a": STOPPING, "b": STOPPED}}),
    "stubborn program is killed at its stop_timeout": (
        TWO, [("signal", TERM), ("wait", 3.1)],
        {"code": 1, "signals": [("a", TERM), ("b", TERM), ("a", KILL)],
         "last": "received SIGTERM; killed after timeout: a; exiting with code 1"}),
    "the budget is shorter than stop_timeout": (
        '[pysuper]\nshutdown_timeout = 2\n' + TWO.replace("stop_timeout = 3", "stop_timeout = 10"),
        [("signal", TERM), ("wait", 1.9)], {"code": None}),
    "the budget kills at its end": (
        '[pysuper]\nshutdown_timeout = 2\n' + TWO.replace("stop_timeout = 3", "stop_timeout = 10"),
        [("signal", TERM), ("wait", 2.1)], {"code": 1, "last": "killed after timeout: a"}),
    "a second SIGTERM kills at once": (
        TWO, [("signal", TERM), ("wait", 0.5), ("signal", TERM)],
        {"code": 1, "signals": [("a", TERM), ("b", TERM), ("a", KILL)],
         "logged": ["received SIGTERM again; killing all programs now"]}),
    "a second SIGINT kills at once": (
        TWO, [("signal", INT), ("wait", 0.5), ("signal", INT)], {"code": 1}),
    "a SIGQUIT after SIGTERM does not escalate": (
        TWO, [("signal", TERM), ("wait", 0.5), ("signal", QUIT)], {"code": None}),
    "PID 1 asks strays to leave once the programs are down": (
        TWO, [("stray", "stray"), ("signal", TERM)], {"code": 0, "kill_all": [TERM]}),
    "not PID 1: strays are not signalled": (
        TWO, [("stray", "stray"), ("signal", TERM)], {"code": 0, "kill_all": []}),
    "PID 1 kills stubborn strays when the budget is spent": (
        TWO, [("stray", "stray"), ("signal", TERM), ("wait", 8.9)], {"code": None, "kill_all": [TERM]}),
    "PID 1 kills stubborn strays at the end of the budget": (
        TWO, [("stray", "stray"), ("signal", TERM), ("wait", 9.1)],
        {"code": 0, "kill_all": [TERM, KILL]}),
}
PID1 = {"PID 1 asks strays to leave once the programs are down", "PID 1 kills stubborn strays when "
        "the budget is spent", "PID 1 kills stubborn strays at the end of the budget"}
STUBBORN = {
    "stubborn program waits for its stop_timeout": ("a",),
    "stubborn program is killed at its stop_timeout": ("a",),
    "the budget is shorter than stop_timeout": ("a",),
    "the budget kills at its end": ("a",),
    "a second SIGTERM kills at once": ("a",),
    "a second SIGINT kills at once": ("a",),
    "a SIGQUIT after SIGTERM does not escalate": ("a",),
    "PID 1 kills stubborn strays when the budget is spent": ("stray",),
    "PID 1 kills stubborn strays at the end of the budget": ("stray",),
}

B_CHANGED = TWO.replace('command = ["b"]', 'command = ["b2"]')
B_CHANGED_AGAIN = TWO.replace('command = ["b"]', 'command = ["b3"]')
B_REMOVED = TWO[:TWO.index("[programs.b]")]
C_ADDED = TWO + '[programs.c]\ncommand = ["c"]\nstart_seconds = 0\n'

RELOAD = {
    "a changed program is replaced once stopped": (
        TWO, [("reload", B_CHANGED)],
        {"spawned": ["a", "b", "b2"], "signals": [("b", TERM)], "states": {"a": RUNNING, "b": RUNNING}}),
    "a removed program is dropped once stopped": (
        TWO, [("reload", B_REMOVED)], {"spawned": ["a", "b"], "signals": [("b", TERM)], "code": None}),
    "an added program is started": (
        TWO, [("reload", C_ADDED)], {"spawned": ["a", "b", "c"], "signals": []}),
    "two quick reloads leave one copy, with the last config": (
        TWO, [("reload", B_CHANGED), ("reload", B_CHANGED_AGAIN), ("wait", 3.1)],
        {"spawned": ["a", "b", "b3"], "signals": [("b", TERM), ("b", KILL)], "states": {"b": RUNNING}}),
    "the old program still stopping: nothing new runs yet": (
        TWO, [("reload", B_CHANGED), ("wait", 2.9)], {"spawned": ["a", "b"], "states": {"b": STOPPING}}),
    "a program stopped by hand stays stopped with its new settings": (
        TWO, [("stop", "b"), ("reload", B_CHANGED)],
        {"spawned": ["a", "b"], "states": {"b": STOPPED}, "done": [STOPPED]}),
    "removing and re-adding while stopping gives one copy": (
        TWO, [("reload", B_REMOVED), ("reload", B_CHANGED), ("wait", 3.1)],
        {"spawned": ["a", "b", "b2"], "states": {"b": RUNNING}}),
}
RELOAD_STUBBORN = {"two quick reloads leave one copy, with the last config": ("b",),
                   "the old program still stopping: nothing new runs yet": ("b",),
                   "removing and re-adding while stopping gives one copy": ("b",)}

RESTARTS = {
    "two restarts one after the other": (
        TWO, [("restart", "a"), ("restart", "a")],
        {"spawned": ["a", "b", "a", "a"], "signals": [("a", TERM)] * 2, "done": [RUNNING, RUNNING]}),
    "a restart stops and starts": (
        TWO, [("restart", "a")], {"spawned": ["a", "b", "a"], "done": [RUNNING], "restarts": {"a": 0}}),
    "two concurrent restarts share one stop and one start": (
        TWO, [("together", ("restart", "a"), ("restart", "a"))],
        {"spawned": ["a", "b", "a"], "signals": [("a", TERM)], "done": [RUNNING, RUNNING]}),
    "a restart during a slow stop shares it": (
        TWO, [("restart", "a"), ("wait", 1), ("restart", "a"), ("wait", 2.1)],
        {"spawned": ["a", "b", "a"], "signals": [("a", TERM), ("a", KILL)], "done": [RUNNING, RUNNING]}),
    "a start while stopping waits for the stop": (
        TWO, [("stop", "a"), ("start", "a"), ("wait", 3.1)],
        {"spawned": ["a", "b", "a"], "done": [STOPPED, RUNNING]}),
    "a shutdown ends a waiting start": (
        TWO, [("stop", "a"), ("start", "a"), ("signal", TERM), ("wait", 3.1)],
        {"spawned": ["a", "b"], "code": 1}),
}
RESTARTS_STUBBORN = {"a restart during a slow stop shares it": ("a",),
                     "a start while stopping waits for the stop": ("a",),
                     "a shutdown ends a waiting start": ("a",)}


def _cases(table, stubborn=None, pid1=()):
    return [pytest.param(text, history, outcome, name in pid1, (stubborn or {}).get(name, ()), id=name)
            for name, (text, history, outcome) in table.items()]


@pytest.mark.parametrize("text,history,outcome,pid1,stubborn",
                         _cases(EXIT_POLICY) + _cases(SHUTDOWN, STUBBORN, PID1) + _cases(RELOAD, RELOAD_STUBBORN)
                         + _cases(RESTARTS, RESTARTS_STUBBORN))
def test_history(text, history, outcome, pid1, stubborn):
    check(outcome, *replay(text, history, pid1=pid1, stubborn=stubborn))


def test_exec_failure_is_a_failed_start_then_fatal():
    loop = FakeLoop()
    fake_os = FakeOS(loop)
    fake_os.fail["a"] = 127
    output = FakeOutput()
    supervisor = Supervisor(parse(FAILING % "", "test.toml"), loop, output=output, pid1=False, osproc=fake_os)
    supervisor.start()
    loop.settle()
    assert supervisor.programs["a"].state == BACKOFF
    loop.advance(1.2)
    fake_os.exit("b", 0)
    loop.settle()
    assert supervisor.programs["a"].state == FATAL and supervisor.programs["a"].last_exit == 127
    assert supervisor.exit_code == 1
    assert output.matching("a: cannot start: a: command not found")


def test_regression_restart_counted_once_on_delayed_restarts():
    """A crash loop: each restart after a delay was counted twice (when scheduled and when it ran)."""
    history = []
    for _ in range(5):
        history += [("wait", 2), ("exit", "a", 1), ("wait", 20)]
    supervisor, fake_os, output, _ = replay(CRASH_LOOP, history)
    assert fake_os.spawned == ["a"] * 6
    assert [view.restarts for view in supervisor.view()] == [5]
    assert sum(1 for line in output.lines if "restarting in" in line) == 4  # the first was immediate
    fake_os.exit("a", 0)
    supervisor.loop.settle()
    assert supervisor.exit_code == 0
    assert output.lines[-1] == "critical program a exited with code 0 after 5 restarts; exiting with code 0"


def test_no_restarts_are_not_mentioned():
    supervisor, _, output, _ = replay(CRITICAL, [("exit", "app", 0)])
    assert output.lines[-1] == "critical program app exited with code 0; exiting with code 0"


def test_not_a_reaper_warns():
    loop = FakeLoop()
    fake_os = FakeOS(loop)
    fake_os.reaper = False
    output = FakeOutput()
    Supervisor(parse(TWO, "test.toml"), loop, output=output, pid1=False, osproc=fake_os).start()
    assert output.matching("cannot become a child subreaper")


def test_orphans_are_reaped_quietly():
    supervisor, fake_os, output, _ = replay(TWO, [("stray", "stray")])
    fake_os.exit("stray", 0)
    supervisor.loop.settle()
    assert not fake_os.processes.get(101 + 2) and supervisor.exit_code is None
    assert {p.state for p in supervisor.programs.values()} == {RUNNING}


def test_ignored_signals_are_handled_and_do_nothing():
    supervisor, fake_os, output, _ = replay(TWO, [])
    loop = supervisor.loop
    for signum in (signal.SIGALRM, signal.SIGTSTP, signal.SIGTRAP, signal.SIGTTIN, signal.SIGTTOU,
                   signal.SIGVTALRM, signal.SIGPROF, signal.SIGXCPU, signal.SIGIO, signal.SIGPWR,
                   signal.SIGRTMIN, signal.SIGRTMAX):
        assert signum in loop.handlers, signal.Signals(signum).name if signum < 32 else signum
        loop.deliver(signum)
    loop.settle()
    assert fake_os.signals == [] and supervisor.exit_code is None


def test_forwarded_signals_reach_every_live_program_in_order():
    supervisor, fake_os, output, _ = replay(TWO, [], stubborn=("a", "b"))
    for signum in (signal.SIGUSR2, signal.SIGUSR1, signal.SIGWINCH, signal.SIGHUP):
        supervisor.loop.deliver(signum)
    supervisor.loop.settle()
    assert [signum for _, signum in fake_os.signals] == [signal.SIGUSR2] * 2 + [signal.SIGUSR1] * 2 + \
        [signal.SIGWINCH] * 2 + [signal.SIGHUP] * 2


def test_an_exception_in_a_callback_is_logged_and_supervision_goes_on():
    """A bug in one callback (here: spawn raising) is reported with the program's name; the real
    loop keeps running and pysuper still shuts down cleanly."""
    loop = Loop()
    try:
        fake_os = FakeOS(FakeLoop())  # SIGCHLD is handed to the supervisor by hand below
        output = FakeOutput()
        supervisor = Supervisor(parse(TWO, "test.toml"), loop, output=output, pid1=False, osproc=fake_os)
        supervisor.start()
        spawn = fake_os.spawn

        def broken_spawn(argv, **kwargs):
            if argv[0] == "a":
                raise ZeroDivisionError("boom")
            return spawn(argv, **kwargs)
        fake_os.spawn = broken_spawn
        fake_os.exit("a", 1)  # a crashes after a healthy start: restarted at once, and spawn fails
        loop.call_soon(supervisor._on_sigchld, signal.SIGCHLD)
        loop.call_later(0.05, supervisor.shutdown, "test over")
        loop.call_later(0.1, supervisor._on_sigchld, signal.SIGCHLD)  # b died of its SIGTERM
        loop.call_later(5, loop.stop)  # a deadline: the test fails below if pysuper did not finish
        loop.run()
    finally:
        loop.close()
    assert output.matching("internal error in program a: ZeroDivisionError: boom"), output.lines
    assert supervisor.exit_code is not None, output.lines
    assert output.lines[-1].startswith("test over")
