"""When is a program ready, and is it still alive: the schedules of its `ready` and `health` checks.

Everything runs on pysuper's one event loop and nothing polls: tries of tcp/http/exec checks are
in `probes.py`, a log check listens to the program's output lines, a notify check waits for READY=1
on the sd_notify socket (`notify.py`). Timers exist only while a check needs them: `Readiness` from a
program's start until it is ready or start_timeout ends, `Liveness` only while it is RUNNING with a
`health` key. Once a program without `health` is ready, no timer of this module is left for it.

A check reaches its program only through a target (`ProbeTarget` shows the shape): `loop`,
`spawn(argv, output_fd, on_exit) -> pid` (with the program's user, directory and environment;
`on_exit(code)` is called by whoever reaps the pid), `kill(pid)` (the process group, SIGKILL) and
`follow(callback) -> unfollow` (callback(stream, block of whole lines) for what the program writes).
`probe()` runs a single tcp/http/exec try on a loop of its own, for `pysuper probe`.
"""

import re
import signal

from pysuper import osproc
from pysuper.probes import attempt, describe

# A ready check's gap between tries is FIRST_GAP plus SLOWDOWN times the time since the start, up to
# `interval`: a program that is ready after t seconds is seen within about 5 ms + t / 20.
FIRST_GAP = 0.005
SLOWDOWN = 0.05


class LogWatch:
    """Passes when a line of the program's output matches the regular expression."""

    def __init__(self, target, check, on_match):
        self.regex = re.compile(check.target)
        self.on_match = on_match
        self.check = check
        self._unfollow = target.follow(self._block)

    def _block(self, stream, block: bytes):
        if self._unfollow is None:
            return
        for line in block.decode("utf-8", "replace").split("\n"):
            if self.regex.search(line):
                self.cancel()
                self.on_match()
                return

    def last_error(self) -> str:
        return "no output line matched %r" % self.check.target

    def cancel(self):
        if self._unfollow is not None:
            self._unfollow()
            self._unfollow = None


# -- schedules ------------------------------------------------------------------------------------
class _Schedule:
    """Tries of a tcp/http/exec check, one at a time: the timer for the next try and the try itself."""

    def __init__(self, target, check):
        self.target = target
        self.loop = target.loop
        self.check = check
        self.last_error = None
        self.active = False
        self._attempt = None
        self._timer = None

    def _try(self):
        self._timer = None
        began = self.loop.time()
        self._attempt = attempt(self.loop, self.check, lambda error: self._done(began, error), self.target)

    def _done(self, began, error):
        self._attempt = None
        if self.active:
            self._tried(began, error)

    def _tried(self, began, error):
        raise NotImplementedError

    def cancel(self):
        self.active = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._attempt is not None:
            self._attempt.cancel()
            self._attempt = None


class Readiness(_Schedule):
    """A started program's `ready` check: tries until one passes or start_timeout ends.

    tcp/http/exec: the first try comes FIRST_GAP after the start and the gaps grow with the time
    since the start up to `interval` (see SLOWDOWN), so a program that is ready quickly is not held
    back a whole interval. log: the program's output lines; notify: READY=1 on the notify socket.
    Then on_ready() once, or on_timeout("why, with the last try's error") once, and no timer is
    left behind.
    """

    def __init__(self, target, check, on_ready, on_timeout, notifier=None, name=None):
        super().__init__(target, check)
        self.on_ready = on_ready
        self.on_timeout = on_timeout
        self.notifier = notifier
        self.name = name
        self.started = None
        self._deadline = None
        self._watch = None

    def start(self):
        self.active = True
        self.started = self.loop.time()
        self._deadline = self.loop.call_later(self.check.start_timeout, self._expired)
        if self.check.kind == "log":
            self._watch = LogWatch(self.target, self.check, self._passed)
        elif self.check.kind == "notify":
            self.notifier.expect_ready(self.name, self._passed)
        else:
            self._timer = self.loop.call_later(FIRST_GAP, self._try)

    def _tried(self, began, error):
        if error is None:
            self._passed()
            return
        self.last_error = error
        gap = min(self.check.interval, FIRST_GAP + SLOWDOWN * (began - self.started))
        self._timer = self.loop.call_at(max(began + gap, self.loop.time()), self._try)

    def _passed(self):
        if self.active:
            self.cancel()
            self.on_ready()

    def _expired(self):
        self._deadline = None
        if not self.active:
            return
        if self.check.kind in ("log", "notify"):
            last = self._watch.last_error() if self._watch else "no READY=1 received on NOTIFY_SOCKET"
        elif self.last_error is not None:
            last = self.last_error
        else:
            last = "%s: no try finished" % describe(self.check)
        self.cancel()
        self.on_timeout("not ready within start_timeout = %g s; last check: %s" % (self.check.start_timeout, last))

    def cancel(self):
        super().cancel()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self.notifier is not None and self.check.kind == "notify":
            self.notifier.expect_ready(self.name, None)


class Liveness(_Schedule):
    """A RUNNING program's `health` check: a try every `interval`; `retries` failures in a row call
    on_unhealthy("last error") once, and the first pass after that calls on_healthy()."""

    def __init__(self, target, check, on_unhealthy, on_healthy=None):
        super().__init__(target, check)
        self.on_unhealthy = on_unhealthy
        self.on_healthy = on_healthy
        self.failures = 0
        self.failing = False

    def start(self):
        self.active = True
        self._timer = self.loop.call_later(self.check.interval, self._try)

    def _tried(self, began, error):
        self._timer = self.loop.call_at(max(began + self.check.interval, self.loop.time()), self._try)
        if error is None:
            self.failures = 0
            if self.failing:
                self.failing = False
                if self.on_healthy is not None:
                    self.on_healthy()
            return
        self.last_error = error
        self.failures += 1
        if self.failures >= self.check.retries and not self.failing:
            self.failing = True
            self.on_unhealthy(error)


# -- pysuper probe --------------------------------------------------------------------------------
class ProbeTarget:
    """A target on a loop of its own: runs exec checks itself and reaps them on SIGCHLD."""

    def __init__(self, loop, directory=None, environment=None, user=None):
        self.loop = loop
        self.directory = directory
        self.environment = environment
        self.user = user
        self.exits = {}
        self.reaped = None  # called after each reaping pass
        loop.add_signal_handler(signal.SIGCHLD, self._reap)

    def spawn(self, argv, output_fd, on_exit) -> int:
        process = osproc.spawn(argv, cwd=self.directory, env=self.environment, user=self.user,
                               stdout=output_fd, stderr=output_fd)
        self.exits[process.pid] = (process, on_exit)
        return process.pid

    def kill(self, pid):
        osproc.killpg(pid, signal.SIGKILL)

    def _reap(self, signum=None):
        for pid, code in osproc.reap():
            entry = self.exits.pop(pid, None)
            if entry is not None:
                entry[0].returncode = code
                entry[1](code)
        if self.reaped is not None:
            self.reaped()

    def follow(self, callback):
        raise ValueError("log checks need a running program")


def probe(check, directory=None, environment=None, user=None):
    """One try of a tcp, http or exec check on a fresh loop: (passed, message, seconds).

    `user` is (uid, gid, name) or None, as osproc.spawn takes it. An exec check's process is killed
    at the timeout and reaped before this returns.
    """
    from pysuper.loop import Loop
    loop = Loop()
    result = []
    try:
        target = ProbeTarget(loop, directory, environment, user)
        began = loop.time()

        def finished():
            if result and not target.exits:
                loop.stop()

        def done(error):
            result.append((error is None, error or "%s: passed" % describe(check), loop.time() - began))
            finished()

        target.reaped = finished
        attempt(loop, check, done, target)
        loop.run()
    finally:
        loop.close()
    return result[0]
