"""The line splitter, the formatters and the ring, on bytes only."""

import json

from pysuper.logs import Formatter, LineSplitter, Ring


def feed_all(splitter, chunks):
    out = b"".join(splitter.feed(chunk) for chunk in chunks)
    return out + splitter.flush()


def test_whole_lines_only():
    splitter = LineSplitter()
    assert splitter.feed(b"one\ntw") == b"one\n"
    assert splitter.feed(b"o\nthr") == b"two\n"
    assert splitter.feed(b"ee") == b""
    assert splitter.flush() == b"three\n"
    assert splitter.flush() == b""


def test_utf8_split_across_reads_is_rejoined():
    text = "héllo wörld ✓\n".encode()
    splitter = LineSplitter()
    out = feed_all(splitter, [text[i:i + 1] for i in range(len(text))])
    assert out == text


def test_long_line_is_split_never_dropped():
    splitter = LineSplitter(limit=1024 * 1024)
    line = b"x" * (3 * 1024 * 1024 + 5)
    out = feed_all(splitter, [line[i:i + 65536] for i in range(0, len(line), 65536)] + [b"\nnext\n"])
    pieces = out.split(b"\n")
    assert pieces[:3] == [b"x" * (1024 * 1024)] * 3
    assert pieces[3:] == [b"xxxxx", b"next", b""]


def test_one_mebibyte_line_is_whole():
    splitter = LineSplitter(limit=1024 * 1024)
    line = b"y" * (1024 * 1024 - 1) + b"\n"
    assert feed_all(splitter, [line[i:i + 65536] for i in range(0, len(line), 65536)]) == line


def test_long_line_inside_a_block():
    splitter = LineSplitter(limit=10)
    assert splitter.feed(b"a\n" + b"b" * 25 + b"\nc\n") == b"a\n" + b"b" * 10 + b"\n" + b"b" * 10 + \
        b"\n" + b"b" * 5 + b"\nc\n"


def test_long_line_split_keeps_utf8_sequences():
    splitter = LineSplitter(limit=10)
    out = feed_all(splitter, ["aaaaaaaaé€\n".encode()])
    for line in out.split(b"\n"):
        line.decode("utf-8")


def test_prefix_formatter():
    fmt = Formatter("web", 7, "prefix")
    assert fmt("stdout", b"a\nb\n") == b"web     | a\nweb     | b\n"


def test_prefix_keeps_invalid_utf8():
    fmt = Formatter("w", 1, "prefix")
    assert fmt("stdout", b"\xff\xfe\n") == b"w | \xff\xfe\n"


def test_json_formatter_escapes():
    fmt = Formatter("web", 3, "json")
    lines = fmt("stderr", b"plain\n\xff bad \"q\"\n").decode().splitlines()
    first, second = [json.loads(line) for line in lines]
    assert first["program"] == "web" and first["stream"] == "stderr" and first["message"] == "plain"
    assert second["message"] == '\\xff bad "q"'
    assert first["time"].endswith("Z")


def test_timestamps():
    fmt = Formatter("web", 3, "prefix", timestamps=True)
    line = fmt("stdout", b"x\n").decode()
    assert line[4] == "-" and line[10] == "T" and line.endswith(" web | x\n")


def test_ring_keeps_the_last_lines():
    ring = Ring(limit=100)
    for i in range(50):
        ring.append("stdout", b"line %d\n" % i)
    lines = ring.lines(3)
    assert lines == [("stdout", b"line 47"), ("stdout", b"line 48"), ("stdout", b"line 49")]
    assert ring.size <= 100 + 10


def test_ring_followers():
    ring = Ring()
    seen = []
    ring.followers.append(lambda stream, block: seen.append((stream, block)))
    ring.append("stderr", b"x\n")
    assert seen == [("stderr", b"x\n")]


def test_split_and_pieces_match_the_plain_path():
    """The zero-copy path (split + pieces) writes exactly what feed + format would."""
    import random
    rng = random.Random(7)
    text = b"".join(b"line %d %s\n" % (i, b"x" * rng.randrange(0, 300)) for i in range(2000)) + b"tail"
    for label_fmt in ("prefix",):
        plain_splitter, fast_splitter = LineSplitter(limit=1000), LineSplitter(limit=1000)
        fmt = Formatter("web", 5, label_fmt)
        plain, fast = [], []
        pos = 0
        while pos < len(text):
            size = rng.choice([1, 7, 100, 4096, 65536])
            chunk = text[pos:pos + size]
            pos += size
            block = plain_splitter.feed(chunk)
            if block:
                plain.append(fmt("stdout", block))
            split = fast_splitter.split(chunk)
            if split is not None:
                fast.append(b"".join(bytes(p) for p in fmt.pieces("stdout", *split)))
        assert b"".join(fast) == b"".join(plain)
        assert fast_splitter.flush() == plain_splitter.flush() == b"tail\n"


def test_ring_keeps_split_blocks():
    ring = Ring()
    splitter = LineSplitter()
    for chunk in (b"par", b"tial\nsecond\nthi", b"rd\n"):
        split = splitter.split(chunk)
        if split:
            ring.add("stdout", *split)
    assert ring.lines() == [("stdout", b"partial"), ("stdout", b"second"), ("stdout", b"third")]
