"""Single-program mode, `pysuper -- CMD ARGS`: a drop-in for tini and dumb-init.

The child inherits stdin, stdout and stderr (nothing is copied or prefixed), runs in its own process
group (the terminal's foreground group when there is a terminal, so Ctrl-C and job control behave
as without pysuper), receives every catchable signal pysuper receives, and pysuper exits with the
child's exit code, or 128+N when the child is killed by signal N. Every zombie is reaped. pysuper
handles its signals even when it was started with them blocked or ignored, and gives the child the
signal mask and ignored signals it inherited itself.
"""

import os
import signal
import sys

from pysuper import osproc
from pysuper.loop import Loop

# Not forwarded: synchronous faults, job-control reads/writes from the background, and what the
# kernel does not let us catch (the same set as tini).
NOT_FORWARDED = {signal.SIGCHLD, signal.SIGKILL, signal.SIGSTOP, signal.SIGFPE, signal.SIGILL,
                 signal.SIGSEGV, signal.SIGBUS, signal.SIGABRT, signal.SIGTRAP, signal.SIGSYS,
                 signal.SIGTTIN, signal.SIGTTOU}


def _forwarded_signals():
    return sorted(sig for sig in signal.valid_signals() if sig not in NOT_FORWARDED)


def _terminal():
    """The fd of our controlling terminal if we are in its foreground process group, else None."""
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp():
                return fd
        except OSError:
            continue
    return None


def _nothing(signum):
    pass


def run(argv) -> int:
    if not argv:
        sys.stderr.write("pysuper: usage: pysuper -- CMD [ARGS...]\n")
        return 2
    inherited = osproc.signal_state()  # before the loop takes (and unblocks) the signals it handles
    loop = Loop()
    forwarded = _forwarded_signals()
    child = {"pid": None, "code": None}

    def on_signal(signum):
        if child["pid"] is not None and child["code"] is None:
            osproc.kill(child["pid"], signum)

    def on_sigchld(signum):
        for pid, code in osproc.reap():
            if pid == child["pid"]:
                child["code"] = code
        if child["code"] is not None:
            loop.stop()

    for signum in forwarded:
        try:
            loop.add_signal_handler(signum, on_signal)
        except (OSError, ValueError, RuntimeError):
            pass
    loop.add_signal_handler(signal.SIGCHLD, on_sigchld)
    for signum in (signal.SIGTTIN, signal.SIGTTOU):
        # Their default would stop pysuper (and with it reaping and forwarding). A handler that does
        # nothing, not SIG_IGN, so the child still starts with the disposition pysuper inherited.
        loop.add_signal_handler(signum, _nothing)
    if not osproc.become_reaper(os.getpid() == 1):
        sys.stderr.write("pysuper: warning: not PID 1 and cannot become a child subreaper; "
                         "orphans will not be reaped\n")

    tty = _terminal()
    try:
        process = osproc.spawn_foreground(argv, tty, inherited)
    except osproc.SpawnError as exc:
        sys.stderr.write("pysuper: %s\n" % exc)
        return exc.exit_code
    child["pid"] = process.pid
    on_sigchld(signal.SIGCHLD)
    if child["code"] is None:
        loop.run()
    if tty is not None:
        previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
        try:
            os.tcsetpgrp(tty, os.getpgrp())
        except OSError:
            pass
        signal.signal(signal.SIGTTOU, previous)
    osproc.reap()
    process.returncode = child["code"]
    return child["code"]

