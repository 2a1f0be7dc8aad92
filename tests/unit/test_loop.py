"""The event loop on its own: the guard around callbacks, far timers, signals in arrival order."""

import os
import signal

import pytest

from pysuper.loop import Loop


@pytest.fixture
def loop():
    loop = Loop()
    yield loop
    loop.close()


def test_an_exception_in_a_callback_goes_to_on_error_and_the_loop_goes_on(loop):
    errors, ran = [], []

    def broken():
        raise ValueError("bug")

    loop.on_error = lambda exc, callback: errors.append((type(exc), callback))
    loop.call_soon(broken)
    loop.call_later(0, ran.append, "timer")
    loop.call_later(0.01, loop.stop)
    loop.run()
    assert errors == [(ValueError, broken)] and ran == ["timer"]


def test_a_failing_fd_callback_is_reported_by_its_own_name_and_no_longer_called(loop):
    read_end, write_end = os.pipe()
    errors, calls = [], []

    def reader():
        calls.append(1)
        raise OSError("broken reader")

    try:
        os.write(write_end, b"x")
        loop.on_error = lambda exc, callback: errors.append(callback)
        loop.add_reader(read_end, reader)
        loop.call_later(0.05, loop.stop)
        loop.run()
    finally:
        os.close(read_end)
        os.close(write_end)
    assert errors == [reader] and calls == [1]


def test_without_on_error_one_line_goes_to_stderr(loop, capfd):
    def broken():
        raise KeyError("nope")

    loop.call_soon(broken)
    loop.call_soon(loop.stop)
    loop.run()
    assert "pysuper: internal error in " in capfd.readouterr().err


def test_a_failing_on_error_falls_back_to_stderr(loop, capfd):
    def broken():
        raise KeyError("first")

    def failing_report(exc, callback):
        raise RuntimeError("second")

    loop.on_error = failing_report
    loop.call_soon(broken)
    loop.call_soon(loop.stop)
    loop.run()
    assert "KeyError: 'first'" in capfd.readouterr().err


@pytest.mark.parametrize("delay", [2592000, 1e10, 10 ** 400, float("inf")],
                         ids=["30 days", "1e10 s", "10**400 s", "inf"])
def test_timers_past_what_select_can_wait_are_clamped(loop, delay):
    """select/epoll reject timeouts past about 24.8 days; such a timer must neither raise nor fire."""
    fired = []
    loop.call_later(delay, fired.append, "far")
    read_end, write_end = os.pipe()
    try:
        # An fd that is ready ends the select() that was given the far timer's timeout.
        loop.add_writer(write_end, loop.stop)
        loop.run()
    finally:
        loop.remove_writer(write_end)
        os.close(read_end)
        os.close(write_end)
    assert fired == []


def test_signals_are_dispatched_in_arrival_order(loop):
    got = []
    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGALRM):
        loop.add_signal_handler(signum, got.append)
    for signum in (signal.SIGUSR2, signal.SIGALRM, signal.SIGUSR1, signal.SIGWINCH, signal.SIGUSR2):
        signal.raise_signal(signum)
    loop.call_later(0.05, loop.stop)
    loop.run()
    assert got == [signal.SIGUSR2, signal.SIGALRM, signal.SIGUSR1, signal.SIGWINCH, signal.SIGUSR2]


def test_sigchld_bursts_are_handled_once_per_read(loop):
    got = []
    loop.add_signal_handler(signal.SIGUSR1, got.append)
    loop.add_signal_handler(signal.SIGCHLD, got.append)
    for signum in (signal.SIGCHLD, signal.SIGUSR1, signal.SIGCHLD):
        signal.raise_signal(signum)
    loop.call_later(0.05, loop.stop)
    loop.run()
    assert got == [signal.SIGCHLD, signal.SIGUSR1]
