"""The program state machine, driven by a fake host and a fake clock (no processes)."""

import heapq

import pytest

from pysuper.config import ProgramConfig
from pysuper.osproc import SpawnError
from pysuper.program import (BACKOFF, EXITED, FATAL, RUNNING, STARTING, STOPPED, STOPPING, TRANSITIONS, WAITING,
                             Program)


class FakeTimer:
    def __init__(self, host, when, callback):
        self.when, self.callback, self.cancelled = when, callback, False

    def cancel(self):
        self.cancelled = True


class FakeHost:
    def __init__(self):
        self.clock = 0.0
        self.timers = []
        self.next_pid = 100
        self.spawns = []
        self.signals = []
        self.kills = 0
        self.messages = []
        self.transitions = []
        self.fail_spawn = None
        self.group = True

    # host interface
    def now(self):
        return self.clock

    def call_later(self, delay, callback):
        timer = FakeTimer(self, self.clock + delay, callback)
        heapq.heappush(self.timers, (timer.when, id(timer), timer))
        return timer

    def jitter(self, delay):
        return delay

    def log(self, text):
        self.messages.append(text)

    def spawn(self, program):
        if self.fail_spawn:
            raise SpawnError(self.fail_spawn, 127)
        self.next_pid += 1
        self.spawns.append(self.clock)
        return self.next_pid

    def signal(self, program, signum):
        self.signals.append(signum)
        return True

    def snapshot(self, program):
        return ()

    def signal_members(self, program, snapshot, signum):
        pass

    def kill(self, program, snapshot):
        self.kills += 1

    def group_alive(self, program):
        return self.group

    def changed(self, program, old, new, event):
        self.transitions.append((old, event, new))

    # driving
    def advance(self, seconds):
        end = self.clock + seconds
        while self.timers and self.timers[0][0] <= end:
            when, _, timer = heapq.heappop(self.timers)
            self.clock = max(self.clock, when)
            if not timer.cancelled:
                timer.callback()
        self.clock = end


def make(**overrides):
    values = dict(name="web", command=("web",), start_seconds=1.0, start_retries=3, backoff_max=30.0)
    values.update(overrides)
    host = FakeHost()
    return Program(ProgramConfig(**values), host), host


def test_every_transition_target_is_a_state():
    states = {STOPPED, WAITING, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL}
    for (state, _), target in TRANSITIONS.items():
        assert state in states and target in states


def test_unknown_transition_raises():
    program, _ = make()
    with pytest.raises(RuntimeError):
        program._go("started")


def test_start_then_running_after_start_seconds():
    program, host = make()
    program.start()
    assert program.state == STARTING and program.pid == 101
    host.advance(0.99)
    assert program.state == STARTING
    host.advance(0.02)
    assert program.state == RUNNING


def test_failed_starts_backoff_then_fatal():
    program, host = make(start_retries=3)
    program.start()
    host.advance(0.1)
    program.on_exit(1)
    assert program.state == BACKOFF
    host.advance(1.0)  # first delay: 1 s
    assert program.state == STARTING and len(host.spawns) == 2
    host.advance(0.1)
    program.on_exit(1)
    host.advance(1.9)
    assert program.state == BACKOFF
    host.advance(0.1)  # second delay: 2 s
    assert program.state == STARTING
    program.on_exit(1)
    assert program.state == FATAL
    assert len(host.spawns) == 3
    assert any("FATAL" in m for m in host.messages)


def test_exit_after_start_seconds_counts_as_running_even_before_the_timer():
    program, host = make(restart="on-failure")
    program.start()
    host.clock += 1.5  # the loop reaps before the start_seconds timer runs
    program.on_exit(1)
    assert (STARTING, "started", RUNNING) in host.transitions
    assert program.state == STARTING  # immediate restart after a healthy run
    assert program.failures == 0


def test_expected_exit_under_on_failure_is_final():
    program, host = make(restart="on-failure", exit_codes=(0, 3))
    program.start()
    host.advance(0.2)
    program.on_exit(3)
    assert program.state == EXITED and program.healthy_exit


def test_never_policy_is_final_even_when_short():
    program, host = make(restart="never")
    program.start()
    program.on_exit(1)
    assert program.state == EXITED and not program.healthy_exit


def test_always_restarts_expected_exits():
    program, host = make(restart="always")
    program.start()
    host.advance(2)
    program.on_exit(0)
    assert program.state == STARTING and program.restarts == 1


def test_crash_loop_backoff_grows_and_caps():
    program, host = make(restart="always", backoff_max=8, start_seconds=1)
    program.start()
    delays = []
    for _ in range(7):
        host.advance(1.5)
        assert program.state == RUNNING
        program.on_exit(1)
        before = host.clock
        while program.state != STARTING:
            host.advance(0.05)
        delays.append(round(host.clock - before, 1))
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_resets_after_a_long_run():
    program, host = make(restart="always", backoff_max=4)
    program.start()
    host.advance(2)
    program.on_exit(1)  # immediate
    host.advance(2)
    program.on_exit(1)  # 1 s
    assert program.state == BACKOFF
    host.advance(1)
    host.advance(10)  # a run longer than backoff_max
    program.on_exit(1)
    assert program.state == STARTING  # immediate again


def test_exec_failure_is_a_failed_start():
    program, host = make(start_retries=2)
    host.fail_spawn = "nope: command not found"
    program.start()
    assert program.state == BACKOFF and program.last_exit == 127
    host.advance(1.0)
    assert program.state == FATAL


def test_stop_sends_signal_then_kills_after_timeout():
    program, host = make(stop_timeout=3)
    program.start()
    host.advance(2)
    program.stop()
    assert program.state == STOPPING and host.signals == [15]
    host.advance(2.9)
    assert host.kills == 0
    host.advance(0.2)
    assert host.kills == 1 and program.killed
    host.group = False
    program.on_exit(137)
    assert program.state == STOPPED


def test_stop_waits_for_the_process_group():
    program, host = make(stop_timeout=3)
    program.start()
    host.advance(2)
    program.stop()
    program.on_exit(143)  # leader gone, a grandchild still in the group
    assert program.state == STOPPING
    host.group = False
    program.group_check()
    assert program.state == STOPPED and not program.killed
    host.advance(5)
    assert host.kills == 0


def test_stop_in_backoff_is_immediate():
    program, host = make()
    program.start()
    program.on_exit(1)
    assert program.state == BACKOFF
    program.stop(held=True)
    assert program.state == STOPPED and program.held and not program.done
    host.advance(60)
    assert program.state == STOPPED and len(host.spawns) == 1


def test_shutdown_timeout_shorter_than_stop_timeout():
    program, host = make(stop_timeout=10)
    program.start()
    program.stop(timeout=2)
    host.advance(2.01)
    assert host.kills == 1


def test_regression_each_automatic_spawn_counts_one_restart():
    """Delayed restarts were counted twice: when scheduled and again when they ran."""
    program, host = make(restart="always", backoff_max=30, start_seconds=1)
    program.start()
    for _ in range(6):
        host.advance(2)  # a healthy start, then a crash: the delays grow 0, 1, 2, 4, 8, 16 s
        program.on_exit(1)
        host.advance(20)
    assert len(host.spawns) == 7 and program.restarts == 6
    assert sum("restarting in" in m for m in host.messages) == 5


def test_stopped_by_its_stop_signal_is_said_briefly():
    program, host = make()
    program.start()
    program.stop()
    program.on_exit(143)
    assert host.messages[-1] == "web: stopped (SIGTERM)"
