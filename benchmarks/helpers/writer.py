"""Write numbered 100-byte lines to stdout as fast as possible.

usage: writer.py NAME COUNT BLOCK STARTFILE

Each line is ``NAME SEQ PAD\\n`` (exactly 100 bytes, SEQ zero-padded to 9 digits).
Output is written in blocks of exactly BLOCK bytes (the last one shorter), one
``write(2)`` each, so lines straddle blocks the way a program with a large stdio
buffer writes them; blocks larger than PIPE_BUF (4096) are not atomic on a pipe.
Before the first write the CLOCK_MONOTONIC time is written to STARTFILE.
"""
import os
import sys
import time

LINE = 100


def main():
    name, count, block, startfile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    head = name.encode() + b" "
    pad = b"x" * (LINE - len(head) - 9 - 2)
    per_block = max(1, block // LINE)
    fmt = head + b"%09d " + pad + b"\n"
    with open(startfile, "w") as f:
        f.write("%.9f\n" % time.monotonic())
    write = os.write
    pending = bytearray()
    seq = 0
    while seq < count or pending:
        if seq < count:
            end = min(count, seq + per_block)
            pending += b"".join([fmt % i for i in range(seq, end)])
            seq = end
        while len(pending) >= block or (seq >= count and pending):
            n = write(1, pending[:block])
            del pending[:n]


if __name__ == "__main__":
    main()
