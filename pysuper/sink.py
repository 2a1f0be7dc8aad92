"""Where output goes: fd 1 or 2 written without blocking the loop, one fair queue per writer.

Each program stream (and pysuper's own messages) queues whole lines in its own Queue; the Sink serves
the queues round-robin, pauses a program stream's reader above a high-water mark, drops a closed
reader's output (EPIPE) and holds and retries output that a full disk refuses.
"""

import errno
import os
import stat
import time
from collections import deque

IOV_MAX = 512
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ, named there only from Python 3.10
# Output that cannot be written at once waits in one queue per program stream (see Sink): above
# SOURCE_HIGH bytes the program's reader pauses, below SOURCE_LOW it resumes; each write takes up to
# GATHER bytes, one block from each waiting queue in turn.
SOURCE_HIGH = 256 * 1024
SOURCE_LOW = 64 * 1024
GATHER = 128 * 1024
# The pipe pysuper's output goes to grows to this: a formatted read fits one write, and what waits in
# the pipe (beyond pysuper's fair queues) stays small enough for a slow reader to see a quiet program's
# line soon.
OUT_PIPE = 256 * 1024
OWN_MAX = 1024 * 1024  # pysuper's own messages held while the output is stalled
RETRY_FIRST = 0.5  # seconds before a write that failed for want of space is tried again; doubling
RETRY_MAX = 8.0
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO)


class Queue:
    """One writer's output waiting in a Sink: a program stream (paused above SOURCE_HIGH bytes, so the
    program blocks on its own pipe) or pysuper's own messages (never paused; the oldest are dropped
    above OWN_MAX, with a count)."""

    __slots__ = ("sink", "blocks", "size", "paused", "on_pause", "waiting", "dropped")

    def __init__(self, sink, on_pause=None):
        self.sink = sink
        self.blocks = deque()  # (pieces, size): whole lines, written as a unit
        self.size = 0
        self.paused = False
        self.on_pause = on_pause  # on_pause(paused: bool); None: pysuper's own messages
        self.waiting = False  # in the sink's round-robin
        self.dropped = 0

    def write(self, data):
        """Queue whole lines: bytes, or a list of bytes-like pieces (written in this order, whole)."""
        self.sink.add(self, [data] if isinstance(data, (bytes, bytearray, memoryview)) else data)

    def _set_paused(self, paused: bool):
        self.paused = paused
        if self.on_pause is not None:
            self.on_pause(paused)


class Sink:
    """Writes to fd 1 or 2 without ever blocking the loop on a pipe, tty or socket, fairly.

    A pipe or tty is reopened through /proc/self/fd so that O_NONBLOCK is set on our own open file
    description, never on the one programs share. Regular files cannot be polled and are written
    directly. Each writer has its own Queue; when the output cannot take everything at once, the
    queues are served round-robin one block of whole lines at a time, so a quiet program's line waits
    for at most one block of every other writer, never for a chatty program's backlog. Memory: at most
    SOURCE_HIGH bytes plus one formatted read queued per program stream, OWN_MAX of pysuper's own
    messages, and GATHER bytes being written.

    A closed reader (EPIPE) means the output is gone: it is dropped from then on. A write that fails
    for want of space (ENOSPC, EDQUOT, EFBIG, EIO) is reported once, held and retried with a growing
    delay (RETRY_FIRST .. RETRY_MAX) while programs block on their pipes; the first write that works
    again is reported too.
    """

    def __init__(self, loop, fd: int, name: str = "output"):
        self.loop = loop
        self.fd = fd
        self.name = name
        self.pending = []  # pieces already begun: written before anything else
        self.active = deque()  # queues with blocks waiting, in round-robin order
        self.size = 0  # bytes queued (pending included)
        self.broken = False
        self.failing = None  # the OSError of the last write while writes fail for want of space
        self.report = None  # report(text) for pysuper's own messages about this output
        self._retry_timer = None
        self._retry_delay = RETRY_FIRST
        self._watching = False
        self.direct = True
        self.own = Queue(self)
        try:
            mode = os.fstat(fd).st_mode
        except OSError:
            self.broken = True
            return
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) and not os.isatty(fd)):
            try:
                self.fd = os.open("/proc/self/fd/%d" % fd, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                self.direct = False
                if stat.S_ISFIFO(mode):
                    self._grow_pipe()
            except OSError:
                self.fd = fd  # a socket: only write when select() says writable

    def _grow_pipe(self):
        # Room for a whole formatted read (64 KiB plus the prefixes) in the pipe our output goes to, so
        # that one write takes it instead of a partial write, EAGAIN, a copy into the buffer and a
        # writable event for the rest.
        import fcntl
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, OUT_PIPE)
        except OSError:
            pass  # over the user's pipe-buffer quota: stay as it is

    def queue(self, on_pause) -> Queue:
        """A queue for one program stream; on_pause(paused) is called when it crosses the water marks."""
        return Queue(self, on_pause)

    def write(self, data):
        """pysuper's own output."""
        self.own.write(data)

    def add(self, queue: Queue, pieces):
        if self.broken:
            return
        pieces = [piece for piece in pieces if len(piece)]
        if not pieces:
            return
        if not self.pending and not self.active and self.failing is None:
            self.pending = self._send(pieces)
            self.size += _size(self.pending)
            if self.pending:
                self._watch()
            return
        size = _size(pieces)
        queue.blocks.append((pieces, size))
        queue.size += size
        self.size += size
        if not queue.waiting:
            queue.waiting = True
            self.active.append(queue)
        if queue.on_pause is None:
            while queue.size > OWN_MAX and len(queue.blocks) > 1:
                _, old = queue.blocks.popleft()
                queue.size -= old
                self.size -= old
                queue.dropped += 1
        elif queue.size > SOURCE_HIGH and not queue.paused:
            queue._set_paused(True)

    def _send(self, pieces):
        """Write pieces in order; what could not be written now (pieces, the first maybe begun)."""
        while pieces:
            try:
                if len(pieces) == 1:
                    written = os.write(self.fd, pieces[0])
                else:
                    written = os.writev(self.fd, pieces[:IOV_MAX])
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in NO_SPACE:
                    self._fail(exc)
                    break
                self._break()  # EPIPE and friends: nobody reads this output any more
                return []
            if self.failing is not None:
                self._recovered()
            done = 0
            while done < len(pieces) and written >= len(pieces[done]):
                written -= len(pieces[done])
                done += 1
            pieces = pieces[done:]
            if written:
                pieces[0] = memoryview(pieces[0])[written:]
            if not self.direct and self.fd in (1, 2):
                break  # a shared blocking socket: write one piece per writable event
        return pieces

    def _gather(self):
        """The next blocks to write: one from each waiting queue in turn, up to GATHER bytes."""
        pieces, size = [], 0
        while self.active and size < GATHER:
            queue = self.active[0]
            block, block_size = queue.blocks[0]
            if pieces and len(pieces) + len(block) > IOV_MAX:
                break
            queue.blocks.popleft()
            self.active.popleft()
            queue.size -= block_size
            pieces.extend(block)
            size += block_size
            if queue.blocks:
                self.active.append(queue)
            else:
                queue.waiting = False
            if queue.paused and queue.size < SOURCE_LOW:
                queue._set_paused(False)
            if queue.dropped:
                note = ("(%d of pysuper's own messages dropped while the output was stalled)\n"
                        % queue.dropped).encode()
                queue.dropped = 0
                pieces.append(note)
                self.size += len(note)
                size += len(note)
        return pieces

    def _pump(self, force: bool = False):
        """Write as much as the output takes now, round-robin over the queues; `force`: try even
        though writes have been failing."""
        while not self.broken and (self.failing is None or force):
            if not self.pending:
                if not self.active:
                    break
                self.pending = self._gather()
            before = _size(self.pending)
            self.pending = self._send(self.pending)
            self.size -= before - _size(self.pending)
            if self.pending or not self.direct and self.fd in (1, 2):
                break
        if self.pending or self.active:
            if self.failing is None:
                self._watch()
        elif self._watching:
            self._watching = False
            self.loop.remove_writer(self.fd)

    def _watch(self):
        if not self._watching and not self.direct and self.failing is None:
            self._watching = True
            self.loop.add_writer(self.fd, self._on_writable)
        elif self.direct and self._retry_timer is None and self.failing is None:
            self._retry_timer = self.loop.call_later(0, self._retry)

    def _on_writable(self):
        self._pump()

    def _fail(self, exc):
        if self.failing is None:
            self._tell("cannot write to %s: %s; holding output (programs writing to it wait) and "
                       "retrying" % (self.name, exc.strerror or exc))
        self.failing = exc
        if self._watching:
            self._watching = False
            self.loop.remove_writer(self.fd)
        if self._retry_timer is None:
            self._retry_timer = self.loop.call_later(self._retry_delay, self._retry)
            self._retry_delay = min(RETRY_MAX, self._retry_delay * 2)

    def _recovered(self):
        self.failing = None
        self._retry_delay = RETRY_FIRST
        self._tell("%s can be written again" % self.name)

    def _tell(self, text: str):
        # Later, from the loop: never in the middle of a write that may have begun a line.
        if self.report is not None:
            self.loop.call_soon(self.report, text)

    def _retry(self):
        self._retry_timer = None
        self._pump(force=True)

    def _break(self):
        self.broken = True
        self.pending = []
        self.size = 0
        if self._watching:
            self._watching = False
            self.loop.remove_writer(self.fd)
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        while self.active:
            queue = self.active.popleft()
            queue.blocks.clear()
            queue.size = 0
            queue.waiting = False
            if queue.paused:
                queue._set_paused(False)

    def flush(self, deadline: float):
        """Write what is queued, blocking at most until the monotonic deadline."""
        import select
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        force = True  # one more try if writes have been failing
        while (self.pending or self.active) and not self.broken and (self.failing is None or force):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                _, writable, _ = select.select([], [self.fd], [], remaining)
            except (OSError, ValueError):
                break
            if writable:
                self._pump(force)
                force = False
        if self._retry_timer is not None:
            self._retry_timer.cancel()
            self._retry_timer = None
        if self._watching:
            self._watching = False
            self.loop.remove_writer(self.fd)


def _size(pieces) -> int:
    return sum(len(piece) for piece in pieces)
