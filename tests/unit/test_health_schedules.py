"""The ready and health schedules under a fake clock, with scripted tries (no processes, no sockets)."""

from types import SimpleNamespace

import pytest
from fakes import FakeLoop

from pysuper import health, probes
from pysuper.logs import Ring


def check(kind="tcp", target=("127.0.0.1", 80), interval=1.0, timeout=1.0, start_timeout=60.0, retries=3):
    return SimpleNamespace(kind=kind, target=target, interval=interval, timeout=timeout,
                           start_timeout=start_timeout, retries=retries)


START = FakeLoop().clock


def now(loop):
    """Seconds since the test began."""
    return loop.clock - START


def until(loop, seconds):
    """Run the loop until `seconds` after the test began."""
    loop.advance(seconds - now(loop))


def pending(loop):
    return [timer for _, _, timer in loop.timers if not timer.cancelled]


class Script:
    """Replaces probes.attempt: each try takes `duration` seconds and returns the next result."""

    def __init__(self, loop, results, duration=0.0):
        self.loop = loop
        self.results = list(results)
        self.duration = duration
        self.started = []
        self.live = []

    def __call__(self, loop, item, done, target=None):
        self.started.append(now(self.loop))
        result = self.results.pop(0) if self.results else "still failing"
        attempt = SimpleNamespace(cancelled=False)
        attempt.cancel = lambda: setattr(attempt, "cancelled", True)

        def finish():
            if not attempt.cancelled:
                done(result)
        self.loop.call_later(self.duration, finish)
        return attempt


@pytest.fixture
def loop():
    return FakeLoop()


@pytest.fixture
def script(loop, monkeypatch):
    def make(results, duration=0.0):
        scripted = Script(loop, results, duration)
        monkeypatch.setattr(health, "attempt", scripted)
        return scripted
    return make


def readiness(loop, item, events, notifier=None, name="web"):
    target = SimpleNamespace(loop=loop)
    return health.Readiness(target, item, lambda: events.append(("ready", now(loop))),
                            lambda why: events.append(("timeout", why)), notifier, name)


def test_ready_tries_come_quickly_then_every_interval(loop, script):
    tries = script(["refused"] * 120 + [None])
    events = []
    ready = readiness(loop, check(interval=1.0), events)
    ready.start()
    until(loop, 300)
    assert tries.started[0] == pytest.approx(health.FIRST_GAP)
    for began, following in zip(tries.started, tries.started[1:]):
        gap = following - began
        assert gap == pytest.approx(min(1.0, health.FIRST_GAP + health.SLOWDOWN * began))
    assert len([t for t in tries.started if t <= 1.0]) > 20  # quick at first: ready is seen early
    assert tries.started[-1] - tries.started[-2] == pytest.approx(1.0)
    assert events == [("ready", tries.started[-1])]
    assert pending(loop) == []  # ready: no timer is left for this program


def test_a_slow_try_delays_the_next_one_instead_of_overlapping(loop, script):
    tries = script(["slow"] * 3 + [None], duration=2.5)
    events = []
    readiness(loop, check(interval=1.0, timeout=3.0), events).start()
    until(loop, 20)
    gaps = [b - a for a, b in zip(tries.started, tries.started[1:])]
    assert all(gap >= 2.5 for gap in gaps)
    assert events and events[0][0] == "ready"


def test_start_timeout_names_the_last_error_and_cancels_everything(loop, script):
    script(["first error", "second error"] + ["tcp 127.0.0.1:80: connection refused"] * 100)
    events = []
    ready = readiness(loop, check(start_timeout=5.0), events)
    ready.start()
    until(loop, 100)
    assert events == [("timeout", "not ready within start_timeout = 5 s; last check: "
                                  "tcp 127.0.0.1:80: connection refused")]
    assert pending(loop) == [] and not ready.active


def test_start_timeout_before_any_try_finished(loop, script):
    script([], duration=10)
    events = []
    readiness(loop, check(start_timeout=2.0, timeout=10.0), events).start()
    until(loop, 50)
    assert events == [("timeout", "not ready within start_timeout = 2 s; last check: "
                                  "tcp 127.0.0.1:80: no try finished")]


def test_cancel_stops_a_try_in_flight(loop, script):
    tries = script([None], duration=1.0)
    events = []
    ready = readiness(loop, check(), events)
    ready.start()
    until(loop, 0.5)
    ready.cancel()
    until(loop, 100)
    assert len(tries.started) == 1 and events == [] and pending(loop) == []


def test_log_ready_watches_lines_and_unfollows(loop):
    ring = Ring()
    target = SimpleNamespace(loop=loop, follow=lambda callback: (ring.followers.append(callback),
                                                                 lambda: ring.followers.remove(callback))[1])
    events = []
    ready = health.Readiness(target, check("log", r"listening on :\d+"), lambda: events.append("ready"),
                             events.append)
    ready.start()
    ring.append("stdout", b"starting\nlistening on port\n")
    assert events == [] and len(ring.followers) == 1
    ring.append("stderr", b"x\nserver listening on :8080 now\ny\n")
    assert events == ["ready"] and ring.followers == [] and pending(loop) == []


def test_log_ready_timeout_message(loop):
    ring = Ring()
    target = SimpleNamespace(loop=loop, follow=lambda callback: (ring.followers.append(callback),
                                                                 lambda: ring.followers.remove(callback))[1])
    events = []
    health.Readiness(target, check("log", "ready", start_timeout=3), None, events.append).start()
    until(loop, 10)
    assert events == ["not ready within start_timeout = 3 s; last check: no output line matched 'ready'"]
    assert ring.followers == []


def test_notify_ready_registers_and_unregisters(loop):
    calls = []
    notifier = SimpleNamespace(expect_ready=lambda name, callback: calls.append((name, callback)))
    events = []
    ready = readiness(loop, check("notify", True, start_timeout=3), events, notifier, "db")
    ready.start()
    assert calls[0][0] == "db" and calls[0][1] is not None
    calls[0][1]()  # READY=1 arrived
    assert events == [("ready", 0.0)]
    assert calls[-1] == ("db", None) and pending(loop) == []


def test_notify_timeout(loop):
    notifier = SimpleNamespace(expect_ready=lambda name, callback: None)
    events = []
    readiness(loop, check("notify", True, start_timeout=3), events, notifier, "db").start()
    until(loop, 5)
    assert events == [("timeout", "not ready within start_timeout = 3 s; last check: "
                                  "no READY=1 received on NOTIFY_SOCKET")]


# -- health ---------------------------------------------------------------------------------------
def liveness(loop, item, events):
    return health.Liveness(SimpleNamespace(loop=loop), item,
                           lambda error: events.append(("unhealthy", now(loop), error)),
                           lambda: events.append(("healthy", now(loop))))


def test_health_tries_every_interval_and_reports_after_retries_in_a_row(loop, script):
    tries = script([None, "e1", None, "e1", "e2", "e3", "e4", None, None])
    events = []
    live = liveness(loop, check(interval=10.0, timeout=2.0, retries=3), events)
    live.start()
    until(loop, 95)
    assert tries.started == [10.0 * n for n in range(1, 10)]
    # a failure, a pass (the count starts again), then three in a row: unhealthy once, healthy once
    assert events == [("unhealthy", 60.0, "e3"), ("healthy", 80.0)]
    assert live.failures == 0 and not live.failing


def test_health_cancel_leaves_no_timer(loop, script):
    script([None] * 5)
    live = liveness(loop, check(interval=10.0), [])
    live.start()
    until(loop, 25)
    live.cancel()
    assert pending(loop) == []


def test_split_url_and_describe():
    assert probes.split_url("https://example.com:8443/a/b?c=d") == ("https", "example.com", 8443, "/a/b?c=d")
    assert probes.split_url("http://[::1]/") == ("http", "::1", 80, "/")
    assert probes.split_url("http://h") == ("http", "h", 80, "/")
    with pytest.raises(ValueError):
        probes.split_url("ftp://h/")
    assert probes.describe(check("tcp", ("::1", 5432))) == "tcp [::1]:5432"
    assert probes.describe(check("exec", ("pg_isready", "-q"))) == "exec pg_isready -q"
