"""Fakes for driving the Supervisor without processes: a loop with a fake clock, a fake OS (the
`osproc` functions the supervisor uses) and an output that records pysuper's own lines.

    loop = FakeLoop(); fake_os = FakeOS(loop); output = FakeOutput()
    supervisor = Supervisor(config, loop, output=output, pid1=False, osproc=fake_os)
    supervisor.start(); loop.settle()
    fake_os.exit("web", 3); loop.settle()          # the process of program web exits with code 3
    loop.deliver(signal.SIGTERM); loop.advance(5)   # pysuper is told to stop; 5 s pass

Fake processes die of every signal but 0 unless their command is in `fake_os.stubborn` (then
only SIGKILL ends them); each death is queued for `reap()` and SIGCHLD is delivered through the loop.
"""

import heapq
import signal
from itertools import count

from pysuper.osproc import SpawnError


class FakeTimer:
    def __init__(self, when, callback, args):
        self.when, self.callback, self.args, self.cancelled = when, callback, args, False

    def cancel(self):
        self.cancelled = True


class FakeLoop:
    """The Loop's interface on a fake monotonic clock. Exceptions from callbacks propagate."""

    def __init__(self):
        self.clock = 1000.0
        self.timers = []
        self.ready = []
        self.handlers = {}
        self.stopped = False
        self.on_error = None
        self._sequence = count()

    def time(self):
        return self.clock

    def call_later(self, delay, callback, *args):
        return self.call_at(self.clock + max(0.0, delay), callback, *args)

    def call_at(self, when, callback, *args):
        timer = FakeTimer(when, callback, args)
        heapq.heappush(self.timers, (when, next(self._sequence), timer))
        return timer

    def call_soon(self, callback, *args):
        self.ready.append((callback, args))

    def add_signal_handler(self, signum, callback):
        self.handlers[signum] = callback

    def add_reader(self, fd, callback):
        raise AssertionError("the fakes use no file descriptors")

    add_writer = add_reader

    def stop(self):
        self.stopped = True

    # -- driving ---------------------------------------------------------------------------
    def deliver(self, signum):
        """signum arrives at pysuper (handled in the next settle)."""
        handler = self.handlers.get(signum)
        if handler is not None:
            self.ready.append((handler, (signum,)))

    def settle(self):
        """Run every ready callback (and those they queue) without moving the clock."""
        self.advance(0)

    def advance(self, seconds):
        """Move the clock forward by `seconds`, running timers as they fall due."""
        end = self.clock + seconds
        while True:
            while self.ready and not self.stopped:
                callback, args = self.ready.pop(0)
                callback(*args)
            if self.stopped:
                return
            while self.timers and self.timers[0][2].cancelled:
                heapq.heappop(self.timers)
            if not self.timers or self.timers[0][0] > end:
                break
            when, _, timer = heapq.heappop(self.timers)
            self.clock = max(self.clock, when)
            timer.cancelled = True
            self.ready.append((timer.callback, timer.args))
        self.clock = end


class FakeProcess:
    def __init__(self, pid, argv):
        self.pid = pid
        self.argv = list(argv)
        self.returncode = None
        self.alive = True


class FakeOS:
    """The osproc functions the Supervisor calls, on fake processes."""

    def __init__(self, loop):
        self.loop = loop
        self.next_pid = 100
        self.processes = {}  # pid -> FakeProcess (live ones, and dead ones not yet reaped)
        self.zombies = []  # (pid, code) ready for reap()
        self.stubborn = set()  # commands (argv[0]) that survive everything but SIGKILL
        self.fail = {}  # argv[0] -> exit code of a SpawnError for the next spawns
        self.signals = []  # (command, signum) sent to a process group
        self.kill_all_calls = []
        self.reaper = True
        self.spawned = []  # commands in the order they were started

    # -- driving -----------------------------------------------------------------------------
    def pid_of(self, command):
        live = [p.pid for p in self.processes.values() if p.alive and p.argv[0] == command]
        assert len(live) == 1, "%d live processes of %s" % (len(live), command)
        return live[0]

    def exit(self, command, code):
        """The live process of `command` exits with `code`."""
        self._die(self.processes[self.pid_of(command)], code)

    def _die(self, process, code):
        process.alive = False
        self.zombies.append((process.pid, code))
        self.loop.deliver(signal.SIGCHLD)

    # -- the osproc interface ------------------------------------------------------------------
    def spawn(self, argv, cwd=None, env=None, user=None, stdout=None, stderr=None, **options):
        if argv[0] in self.fail:
            raise SpawnError("%s: command not found" % argv[0], self.fail[argv[0]])
        self.next_pid += 1
        process = FakeProcess(self.next_pid, argv)
        self.processes[process.pid] = process
        self.spawned.append(argv[0])
        return process

    def reap(self):
        reaped, self.zombies = self.zombies, []
        for pid, _ in reaped:
            del self.processes[pid]
        return reaped

    def killpg(self, pgid, signum):
        process = self.processes.get(pgid)
        if process is None or not process.alive:
            return False
        if signum != 0:
            self.signals.append((process.argv[0], signum))
            if signum == signal.SIGKILL or process.argv[0] not in self.stubborn:
                self._die(process, 128 + signum)
        return True

    def kill(self, pid, signum):
        return self.killpg(pid, signum)

    def group_alive(self, pgid):
        return self.killpg(pgid, 0)

    def process_table(self):
        return {}

    def descendants(self, pid, table=None):
        return []

    def kill_snapshot(self, processes, signum, outside_group=None):
        pass

    def marked(self, table):
        return {}

    def members(self, name, pid, table, marks):
        return []

    def remove_cgroups(self):
        pass

    def strays(self, names):
        return []

    def has_children(self):
        return bool(self.processes)

    def kill_all(self, signum):
        self.kill_all_calls.append(signum)
        for process in list(self.processes.values()):
            if process.alive and (signum == signal.SIGKILL or process.argv[0] not in self.stubborn):
                self._die(process, 128 + signum)
        return True

    def become_reaper(self, pid1):
        return pid1 or self.reaper


class FakeOutput:
    """Records pysuper's own lines; programs get no pipes."""

    def __init__(self):
        self.lines = []

    def message(self, text):
        self.lines.append(text)

    def pipes(self, name):
        return None, None, []

    def drain(self, relays):
        pass

    def set_names(self, names):
        pass

    def close_relays(self):
        pass

    def flush(self, seconds=2.0):
        pass

    def matching(self, word):
        return [line for line in self.lines if word in line]
