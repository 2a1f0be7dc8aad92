"""Program output: bytes -> whole lines -> prefix/json formatting -> stdout/stderr sinks.

The relay works on blocks, not on single lines: a read returns up to 64 KiB, the splitter keeps the
unfinished last line, and the prefix is put in front of every line of the block with one
bytes.replace(). The sinks (pysuper/sink.py) write only when their fd is writable, serve the programs
round-robin, and pause a program's relay when its queued output is above a high-water mark, so a
program blocks on its own pipe instead of losing lines, and a stalled log consumer never stalls
supervision.
"""

import os
import time
from collections import deque

from pysuper.sink import F_SETPIPE_SZ, Sink

READ_SIZE = 65536
MAX_LINE = 1024 * 1024  # longer lines are split into pieces of this size, never dropped
RING_BYTES = 256 * 1024  # per program and stream, for `pysuper ctl logs`
# A program that writes fast (above FAST_RATE bytes/s) gets a pipe of BIG_PIPE bytes, and a read that
# found that pipe less than half full is followed by a rest of BATCH_DELAY before the next one: the
# program goes on writing into the larger pipe meanwhile, and pysuper reads large blocks instead of a
# few lines at a time (far less CPU per line). A quiet program keeps its default pipe and every line
# is relayed at once.
FAST_RATE = 20 * 1024 * 1024
RATE_WINDOW = 0.1
BIG_PIPE = 1024 * 1024
BATCH_DELAY = 0.001

COLORS = (b"\x1b[36m", b"\x1b[33m", b"\x1b[32m", b"\x1b[35m", b"\x1b[34m", b"\x1b[31m",
          b"\x1b[96m", b"\x1b[93m", b"\x1b[92m", b"\x1b[95m", b"\x1b[94m", b"\x1b[91m")
BOLD = b"\x1b[1m"
RESET = b"\x1b[0m"
OWN_NAME = "pysuper"


def timestamp(now=None) -> str:
    now = time.time() if now is None else now
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)), int(now % 1 * 1000))


def _utf8_cut(data: bytes, limit: int) -> int:
    """A cut point <= limit that does not split a UTF-8 sequence (when that is possible)."""
    cut = limit
    while cut > limit - 4 and cut > 0 and 0x80 <= data[cut] < 0xC0:
        cut -= 1
    return cut if cut > limit - 4 and cut > 0 else limit


class LineSplitter:
    """Feeds bytes, returns whole lines (each ending in a newline) as one block."""

    def __init__(self, limit: int = MAX_LINE):
        self.limit = limit
        self._parts = []
        self._size = 0

    def split(self, data: bytes):
        """Whole lines without copying: (head, data, cut), the lines being b"".join(head) +
        data[:cut], where head holds the start of the first line from earlier reads; or None.
        """
        cut = data.rfind(b"\n") + 1
        if cut == 0 or self._size + cut > self.limit:
            block = self.feed(data)
            return ((), block, len(block)) if block else None
        head = self._parts
        rest = len(data) - cut
        self._parts = [data[cut:]] if rest else []
        self._size = rest
        return head, data, cut

    def feed(self, data: bytes) -> bytes:
        """Whole lines as one block (each line ending in a newline), or b""."""
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            self._parts.append(data)
            self._size += len(data)
            if self._size <= self.limit:
                return b""
            whole = b"".join(self._parts)
            block, rest = self._pieces(whole)
            self._parts = [rest] if rest else []
            self._size = len(rest)
            return block
        if self._parts:
            self._parts.append(data[:cut])
            block = b"".join(self._parts)
        else:
            block = data if cut == len(data) else data[:cut]
        rest = data[cut:]
        self._parts = [rest] if rest else []
        self._size = len(rest)
        if len(block) > self.limit:
            block = self._wrap(block)
        return block

    def flush(self) -> bytes:
        """The unfinished last line, terminated, or b""."""
        if not self._parts:
            return b""
        whole = b"".join(self._parts)
        self._parts = []
        self._size = 0
        block, rest = self._pieces(whole)
        return block + rest + b"\n" if rest else block

    def _pieces(self, data: bytes):
        """Split an unterminated run into limit-sized lines; return (lines, remainder)."""
        out = []
        while len(data) > self.limit:
            cut = _utf8_cut(data, self.limit)
            out.append(data[:cut] + b"\n")
            data = data[cut:]
        return b"".join(out), data

    def _wrap(self, block: bytes) -> bytes:
        """Split the lines of a block that are longer than the limit."""
        out = []
        start = 0
        while start < len(block):
            end = block.index(b"\n", start)
            if end - start > self.limit:
                lines, rest = self._pieces(block[start:end])
                out.append(lines)
                if rest:
                    out.append(rest + b"\n")
            else:
                out.append(block[start:end + 1])
            start = end + 1
        return b"".join(out)


class Ring:
    """The last RING_BYTES of a program's output, kept as it was read, plus live followers."""

    def __init__(self, limit: int = RING_BYTES):
        self.limit = limit
        self.blocks = deque()  # (stream, head, data, cut): see LineSplitter.split
        self.size = 0
        self.followers = []

    def append(self, stream: str, block: bytes):
        self.add(stream, (), block, len(block))

    def add(self, stream: str, head, data: bytes, cut: int):
        self.blocks.append((stream, head, data, cut))
        self.size += cut + sum(len(part) for part in head)
        while self.size > self.limit and len(self.blocks) > 1:
            _, old_head, _, old_cut = self.blocks.popleft()
            self.size -= old_cut + sum(len(part) for part in old_head)
        if self.followers:
            block = _join(head, data, cut)
            for follower in list(self.followers):
                follower(stream, block)

    def subscribe(self, follower):
        """follower(stream, block of whole lines) for each block appended from now on."""
        self.followers.append(follower)

    def unsubscribe(self, follower):
        if follower in self.followers:
            self.followers.remove(follower)

    def lines(self, count=None):
        """The last `count` lines as [(stream, line bytes without newline)]."""
        out = []
        for stream, head, data, cut in reversed(self.blocks):
            lines = _join(head, data, cut).split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            for line in reversed(lines):
                out.append((stream, line))
                if count is not None and len(out) >= count:
                    return out[::-1]
        return out[::-1]


def _join(head, data: bytes, cut: int) -> bytes:
    body = data if cut == len(data) else data[:cut]
    return b"".join(list(head) + [body]) if head else body


class Formatter:
    """Turns a block of whole lines into what is written for one program and stream."""

    def __init__(self, name: str, width: int, fmt: str, color: bytes = b"", timestamps: bool = False):
        self.name = name
        self.fmt = fmt
        self.timestamps = timestamps
        label = name.ljust(width).encode()
        if color:
            label = color + label + RESET
        self.label = label + b" | "
        self._newline_label = b"\n" + self.label

    def pieces(self, stream: str, head, data: bytes, cut: int):
        """What to write for the whole lines b"".join(head) + data[:cut] (see LineSplitter.split),
        as pieces for writev(): the prefix goes in with one bytes.replace() and no other copy."""
        if self.fmt == "json":
            return [self._json(stream, _join(head, data, cut))]
        if self.timestamps:
            prefix = timestamp().encode() + b" " + self.label
            newline_prefix = b"\n" + prefix
        else:
            prefix, newline_prefix = self.label, self._newline_label
        replaced = data.replace(b"\n", newline_prefix)
        if cut == len(data):
            end = len(replaced) - len(prefix)
        else:
            end = replaced.rfind(b"\n") + 1
        return [prefix] + list(head) + [memoryview(replaced)[:end]]

    def __call__(self, stream: str, block: bytes) -> bytes:
        if self.fmt == "json":
            return self._json(stream, block)
        prefix = self.label
        if self.timestamps:
            prefix = timestamp().encode() + b" " + prefix
        return prefix + block[:-1].replace(b"\n", b"\n" + prefix) + b"\n"

    def _json(self, stream: str, block: bytes) -> bytes:
        # What json.dumps({"time": ..., "program": ..., "stream": ..., "message": line}) gives for each
        # line, with the constant part built once per block and each message escaped by the C encoder.
        from json.encoder import encode_basestring_ascii as quote
        head = '{"time": %s, "program": %s, "stream": %s, "message": ' % (
            quote(timestamp()), quote(self.name), quote(stream))
        text = block[:-1].decode("utf-8", "backslashreplace")
        return (head + ("}\n" + head).join(map(quote, text.split("\n"))) + "}\n").encode()


class Relay:
    """Reads one program pipe until EOF and hands whole lines to a sink."""

    def __init__(self, loop, fd: int, stream: str, sink: Sink, formatter: Formatter, ring: Ring):
        self.loop = loop
        self.fd = fd
        self.stream = stream
        self.sink = sink
        self.formatter = formatter
        self.ring = ring
        self.splitter = LineSplitter()
        self.closed = False
        self.reading = False
        self._rest_timer = None
        self._fast = False  # a big pipe and rests between reads (see FAST_RATE)
        self._window_start = loop.time()
        self._window_bytes = 0
        self.queue = sink.queue(self._on_sink_paused)
        self._resume()

    def _resume(self):
        if not self.reading and not self.closed and self._rest_timer is None and not self.queue.paused:
            self.reading = True
            self.loop.add_reader(self.fd, self._on_readable)

    def _pause(self):
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)

    def _on_sink_paused(self, paused: bool):
        if paused:
            self._pause()
        else:
            self._resume()

    def _on_readable(self):
        count = self.read(1)
        if self._fast:
            if 0 < count < READ_SIZE // 2 and not self.closed:
                self._pause()
                self._rest_timer = self.loop.call_later(BATCH_DELAY, self._rested)
            return
        self._window_bytes += count
        now = self.loop.time()
        if now - self._window_start >= RATE_WINDOW:
            if self._window_bytes > FAST_RATE * (now - self._window_start):
                self._go_fast()
            self._window_start, self._window_bytes = now, 0

    def _go_fast(self):
        import fcntl
        try:
            fcntl.fcntl(self.fd, F_SETPIPE_SZ, BIG_PIPE)
        except OSError:
            return  # over the user's pipe-buffer quota: stay as it is
        self._fast = True

    def _rested(self):
        self._rest_timer = None
        self._resume()

    def read(self, rounds: int) -> int:
        """Read up to `rounds` blocks now (non-blocking); the number of bytes read."""
        total = 0
        for _ in range(rounds):
            if self.closed:
                break
            try:
                data = os.read(self.fd, READ_SIZE)
            except BlockingIOError:
                break
            except InterruptedError:
                continue
            except OSError:
                data = b""
            if not data:
                self._emit(self.splitter.flush())
                self.close()
                break
            total += len(data)
            split = self.splitter.split(data)
            if split is not None:
                head, data, cut = split
                self.ring.add(self.stream, head, data, cut)
                self.queue.write(self.formatter.pieces(self.stream, head, data, cut))
        return total

    def _emit(self, block: bytes):
        if block:
            self.ring.append(self.stream, block)
            self.queue.write(self.formatter(self.stream, block))

    def finish(self):
        """Relay what is left now (at exit): the pipe's content, then the unfinished last line."""
        self.read(16)
        self._emit(self.splitter.flush())
        self.close()

    def close(self):
        if self.closed:
            return
        self._pause()
        if self._rest_timer is not None:
            self._rest_timer.cancel()
            self._rest_timer = None
        self.closed = True
        os.close(self.fd)


class Output:
    """Owns the two sinks and the relays of every program; formats pysuper's own messages."""

    def __init__(self, loop, fmt: str = "prefix", color: str = "auto", timestamps: bool = False,
                 names=()):
        self.loop = loop
        self.fmt = fmt
        self.timestamps = timestamps
        self.stdout = Sink(loop, 1, "stdout")
        self.stderr = Sink(loop, 2, "stderr")
        self.stdout.report = self.stderr.report = self.message
        self.color = self._use_color(color)
        self.rings = {}
        self.relays = []
        self._colors = {}
        self.width = len(OWN_NAME)
        self.set_names(names)

    @staticmethod
    def _use_color(mode: str) -> bool:
        if mode == "always":
            return True
        if mode == "never":
            return False
        if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
            return False
        try:
            return os.isatty(1) or os.isatty(2)
        except OSError:
            return False

    def set_names(self, names):
        names = list(names)
        self.width = max([len(OWN_NAME)] + [len(name) for name in names])
        for name in names:
            if name not in self._colors:
                self._colors[name] = COLORS[len(self._colors) % len(COLORS)]
            self.rings.setdefault(name, Ring())
        self._own = Formatter(OWN_NAME, self.width, "json" if self.fmt == "json" else "prefix",
                              BOLD if self.color else b"", self.timestamps)

    def ring(self, name: str) -> Ring:
        return self.rings.setdefault(name, Ring())

    def pipes(self, name: str):
        """(stdout fd, stderr fd, relays) for a new process of `name`; None: inherit ours (raw mode).

        The caller passes the fds to the child and then closes them.
        """
        if self.fmt == "raw":
            return None, None, []
        formatter = Formatter(name, self.width, self.fmt, self._colors.get(name, b"") if self.color else b"",
                              self.timestamps)
        made = []
        try:
            for _ in range(2):
                made.append(os.pipe2(os.O_CLOEXEC))
        except OSError:  # EMFILE or ENFILE: close the pipe already made, both ends
            for pair in made:
                for fd in pair:
                    os.close(fd)
            raise
        ends = []
        relays = []
        for (stream, sink), (read_end, write_end) in zip((("stdout", self.stdout), ("stderr", self.stderr)), made):
            os.set_blocking(read_end, False)
            relays.append(Relay(self.loop, read_end, stream, sink, formatter, self.ring(name)))
            ends.append(write_end)
        self.relays = [relay for relay in self.relays if not relay.closed] + relays
        return ends[0], ends[1], relays

    @staticmethod
    def drain(relays):
        """Read what a finished program left in its pipes, so its last lines come before its exit."""
        for relay in relays:
            relay.read(16)

    def message(self, text: str):
        """pysuper's own line, on stderr."""
        data = text.encode("utf-8", "backslashreplace") + b"\n"
        self.stderr.write(self._own("stderr", data))

    def close_relays(self):
        for relay in self.relays:
            relay.finish()
        self.relays = []

    def flush(self, seconds: float = 2.0):
        deadline = time.monotonic() + seconds
        self.stdout.flush(deadline)
        self.stderr.flush(deadline)
