"""A small single-threaded event loop: fds, monotonic timers and signals through a wakeup fd.

It knows nothing about programs. When no timer is due it blocks in select() without a timeout, so an
idle supervisor makes no wakeups at all. Signal handlers run no Python code of ours: the C-level
handler writes the signal number to the wakeup pipe and the loop dispatches it like any other event,
so a handler can never interrupt the supervisor half-way through a transition.

Every callback runs under one guard (`_run`): an exception in one is handed to `on_error` (the
supervisor logs it as an internal error) and the loop goes on, so PID 1 never dies of a bug in one
callback (an fd callback that failed is no longer called for that fd, or it would spin). Timers far
in the future are fine: select() is never given a timeout it cannot represent.
"""

import errno
import heapq
import os
import selectors
import signal
import time
from collections import deque
from itertools import count

# select() and epoll reject timeouts past about 24.8 days (2**31 ms): the loop waits at most a day
# at a time, and a delay is capped at about 31 years (a timer that far away never fires).
MAX_WAIT = 86400.0
MAX_DELAY = 1e9


def _noop_handler(signum, frame):
    pass


def _report(exc, callback):
    """The report when no on_error is set (or it failed): one line on stderr."""
    try:
        os.write(2, ("pysuper: internal error in %s: %s: %s; still running\n"
                     % (callback_name(callback), type(exc).__name__, exc)).encode("utf-8", "replace"))
    except Exception:
        pass


def callback_name(callback) -> str:
    """A readable name for a callback: its qualified name."""
    return getattr(callback, "__qualname__", None) or repr(callback)


class Timer:
    __slots__ = ("when", "callback", "args", "cancelled")

    def __init__(self, when, callback, args):
        self.when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True
        self.callback = None
        self.args = ()


class Loop:
    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._timers = []
        self._sequence = count()
        self._ready = deque()
        self._signal_handlers = {}
        self._running = False
        self.on_error = None  # on_error(exc, callback): an exception escaped a callback
        self._wakeup_r, self._wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wakeup_w, warn_on_full_buffer=False)
        self._selector.register(self._wakeup_r, selectors.EVENT_READ, (self._read_signals, None))

    time = staticmethod(time.monotonic)

    # -- fds ---------------------------------------------------------------------------------
    def _update(self, fd, event, callback):
        try:
            key = self._selector.get_key(fd)
        except KeyError:
            if callback is not None:
                reader = callback if event == selectors.EVENT_READ else None
                writer = callback if event == selectors.EVENT_WRITE else None
                self._selector.register(fd, event, (reader, writer))
            return
        reader, writer = key.data
        if event == selectors.EVENT_READ:
            reader = callback
        else:
            writer = callback
        mask = (selectors.EVENT_READ if reader else 0) | (selectors.EVENT_WRITE if writer else 0)
        if mask:
            self._selector.modify(fd, mask, (reader, writer))
        else:
            self._selector.unregister(fd)

    def add_reader(self, fd, callback):
        """callback() when fd is readable."""
        self._update(fd, selectors.EVENT_READ, callback)

    def remove_reader(self, fd):
        self._update(fd, selectors.EVENT_READ, None)

    def add_writer(self, fd, callback):
        """callback() when fd is writable."""
        self._update(fd, selectors.EVENT_WRITE, callback)

    def remove_writer(self, fd):
        self._update(fd, selectors.EVENT_WRITE, None)

    # -- timers ------------------------------------------------------------------------------
    def call_later(self, delay, callback, *args) -> Timer:
        return self.call_at(self.time() + max(0.0, min(delay, MAX_DELAY)), callback, *args)

    def call_at(self, when, callback, *args) -> Timer:
        timer = Timer(when, callback, args)
        heapq.heappush(self._timers, (when, next(self._sequence), timer))
        return timer

    def call_soon(self, callback, *args):
        self._ready.append((callback, args))

    # -- signals -----------------------------------------------------------------------------
    def add_signal_handler(self, signum, callback):
        """callback(signum) from the loop whenever signum arrives."""
        self._signal_handlers[signum] = callback
        signal.signal(signum, _noop_handler)
        # Started with it blocked (by a shell, a CI runner): it would never arrive.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])

    def _read_signals(self):
        while True:
            try:
                data = os.read(self._wakeup_r, 4096)
            except BlockingIOError:
                return
            except InterruptedError:
                continue
            if not data:
                return
            seen = []
            for signum in data:
                if signum == signal.SIGCHLD and signum in seen:
                    continue  # one reap pass handles any number of children
                seen.append(signum)
                handler = self._signal_handlers.get(signum)
                if handler is not None:
                    self._ready.append((handler, (signum,)))

    # -- running -----------------------------------------------------------------------------
    def stop(self):
        self._running = False

    def run(self):
        self._running = True
        while self._running:
            self._run_once()

    def _run_once(self):
        timeout = None
        if self._ready:
            timeout = 0
        else:
            while self._timers and self._timers[0][2].cancelled:
                heapq.heappop(self._timers)
            if self._timers:
                timeout = min(MAX_WAIT, max(0.0, self._timers[0][0] - self.time()))
        try:
            events = self._selector.select(timeout)
        except OSError as exc:
            if exc.errno != errno.EINTR:
                raise
            events = []
        for key, mask in events:
            reader, writer = key.data
            if mask & selectors.EVENT_READ and reader is not None:
                self._ready.append((self._dispatch, (key.fd, 0, reader)))
            if mask & selectors.EVENT_WRITE and writer is not None:
                self._ready.append((self._dispatch, (key.fd, 1, writer)))
        now = self.time()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                self._ready.append((timer.callback, timer.args))
                timer.cancelled = True
        for _ in range(len(self._ready)):
            callback, args = self._ready.popleft()
            self._run(callback, args)
            if not self._running:
                break

    def _run(self, callback, args):
        """The one guard around every callback: an exception goes to on_error, never further."""
        try:
            callback(*args)
        except Exception as exc:
            if callback == self._dispatch:
                fd, which, callback = args
                # It would fail again at once while the fd stays ready: stop watching it for that.
                try:
                    self._update(fd, selectors.EVENT_WRITE if which else selectors.EVENT_READ, None)
                except (OSError, ValueError):
                    pass
            if os.environ.get("PYSUPER_DEBUG"):
                import traceback
                traceback.print_exception(type(exc), exc, exc.__traceback__)
            try:
                (self.on_error or _report)(exc, callback)
            except Exception:
                _report(exc, callback)

    def _dispatch(self, fd, which, callback):
        # An earlier callback of this round may have removed or replaced this one.
        try:
            current = self._selector.get_key(fd).data[which]
        except KeyError:
            return
        if current is callback:
            callback()

    def close(self):
        signal.set_wakeup_fd(-1)
        for signum in self._signal_handlers:
            signal.signal(signum, signal.SIG_DFL)
        self._selector.close()
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)
