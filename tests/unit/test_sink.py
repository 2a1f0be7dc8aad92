"""The Sink's fair queues, on a pipe nobody reads until the test does (no processes)."""

import os

from pysuper.loop import Loop
from pysuper.sink import GATHER, OUT_PIPE, SOURCE_HIGH, SOURCE_LOW, Sink

BLOCK = b"".join(b"flood line %05d %s\n" % (i, b"x" * 80) for i in range(160))  # about 16 KiB


def drain_until(read_end, sink, needle, limit):
    """Read the pipe, letting the sink write more each time, until `needle` shows; bytes read before."""
    seen = b""
    while needle not in seen:
        sink._pump()
        chunk = os.read(read_end, 65536)
        assert chunk, "pipe closed"
        seen += chunk
        assert len(seen) < limit, "%r not within %d bytes" % (needle, limit)
    return seen.index(needle)


def test_regression_a_quiet_program_waits_for_one_block_of_each_other_not_their_backlog():
    loop = Loop()
    read_end, write_end = os.pipe()
    try:
        sink = Sink(loop, write_end)
        paused = {}
        floods = [sink.queue(lambda p, n=n: paused.__setitem__(n, p)) for n in range(8)]
        for _ in range(20):  # 8 x 320 KiB waiting, well above what the pipe holds
            for queue in floods:
                queue.write(BLOCK)
        assert all(paused.get(n) for n in range(8)), "every flooding queue is above its high-water mark"
        quiet = sink.queue(lambda p: None)
        quiet.write(b"the quiet line\n")
        # What the pipe holds, what was being written, and one block of each flooder at most.
        bound = OUT_PIPE + GATHER + 9 * len(BLOCK)
        before = drain_until(read_end, sink, b"the quiet line\n", bound)
        assert before < bound < 8 * 20 * len(BLOCK)
        # Draining resumes the flooders once their queues are small again, and nothing is torn.
        rest = b""
        while any(queue.size for queue in floods):
            sink._pump()
            rest += os.read(read_end, 1 << 20)
        assert not any(paused.values())
        assert all(queue.size < SOURCE_LOW for queue in floods) and SOURCE_LOW < SOURCE_HIGH
    finally:
        loop.close()
        os.close(read_end)
        os.close(write_end)


def test_pysuper_messages_are_capped_while_the_output_is_stalled():
    loop = Loop()
    read_end, write_end = os.pipe()
    try:
        sink = Sink(loop, write_end)
        line = b"m" * 1023 + b"\n"
        for _ in range(4096):  # 4 MiB of own messages, nobody reading
            sink.write(line)
        assert sink.own.size <= 1024 * 1024 + len(line)
        out = b""
        while sink.pending or sink.active:
            sink._pump()
            out += os.read(read_end, 1 << 20)
        assert b"of pysuper's own messages dropped while the output was stalled" in out
    finally:
        loop.close()
        os.close(read_end)
        os.close(write_end)
