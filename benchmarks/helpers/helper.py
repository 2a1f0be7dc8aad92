"""Pure-Python fallback for helper.c (same arguments; slower to fork, coarser to start)."""
import os
import signal
import sys
import time


def append(path, tag, t):
    with open(path, "a") as f:
        f.write("%s %.9f %d\n" % (tag, t, os.getpid()))


def forever():
    while True:
        signal.pause()


def main(argv):
    if len(argv) == 4 and argv[0] == "orphans":
        n, batch, marker = int(argv[1]), max(1, int(argv[2])), argv[3]
        done = 0
        while done < n:
            k = min(batch, n - done)
            mid = os.fork()
            if mid == 0:
                for _ in range(k):
                    if os.fork() == 0:
                        os._exit(0)
                os._exit(0)
            os.waitpid(mid, 0)
            done += k
        append(marker, "D", time.monotonic())
        forever()
    if len(argv) == 5 and argv[0] == "crash":
        t = time.monotonic()
        log, run, code, keep_after = argv[1], float(argv[2]), int(argv[3]), int(argv[4])
        starts = 0
        if os.path.exists(log):
            with open(log) as f:
                starts = sum(1 for line in f if line.startswith("S"))
        append(log, "S", t)
        if keep_after > 0 and starts >= keep_after:
            forever()
        time.sleep(run)
        append(log, "E", time.monotonic())
        sys.exit(code)
    sys.stderr.write("usage: helper.py orphans N BATCH MARKER | helper.py crash LOG RUN EXIT KEEP_AFTER\n")
    sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
