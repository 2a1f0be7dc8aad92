"""Helpers for the check and watch tests: check records and running a real Loop under a deadline."""

from types import SimpleNamespace

from pysuper.loop import Loop

DEADLINE = 10.0


def check(kind, target, interval=1.0, timeout=1.0, start_timeout=10.0, retries=3):
    return SimpleNamespace(kind=kind, target=target, interval=interval, timeout=timeout,
                           start_timeout=start_timeout, retries=retries)


def fresh_loop():
    """For a `loop` fixture: `yield from fresh_loop()`."""
    loop = Loop()
    yield loop
    loop.close()


def run(loop, finished, timeout=DEADLINE):
    """Run the loop until finished() holds; fail after timeout seconds."""
    expired = []
    timer = loop.call_later(timeout, expired.append, True)
    while not finished() and not expired:
        loop._running = True
        loop._run_once()  # one round: whatever is due, or a wait in select() until something is
    timer.cancel()
    assert finished(), "not finished within %.1f s" % timeout
