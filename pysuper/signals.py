"""The signal vocabulary: names <-> numbers, a user's spelling of a signal, and the words for an exit.

Config, program, convert and ctl all speak of signals and exits through this module, so a signal
is spelled the same way everywhere ("SIGTERM") and an exit is described the same way everywhere.
"""

import signal as _signal

from pysuper.names import did_you_mean


def numbers() -> dict:
    """{"TERM": 15, ...}: every real signal by its name without "SIG"."""
    found = {}
    for sig in _signal.Signals:
        if sig.name.startswith("SIG") and not sig.name.startswith("SIG_"):
            found[sig.name[3:]] = int(sig)
    return found


def name(signum: int) -> str:
    """15 -> "SIGTERM"; a number with no name -> "signal 40"."""
    try:
        return _signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


def parse(value) -> int:
    """"TERM", "SIGTERM", "term", "15" or 15 -> 15; ValueError saying what was expected."""
    valid = numbers()
    if isinstance(value, bool):
        raise ValueError("expected a signal name such as \"TERM\" or a number, got a boolean")
    if isinstance(value, int):
        if value in valid.values():
            return value
        raise ValueError("expected a signal number between 1 and %d" % max(valid.values()))
    if not isinstance(value, str):
        raise ValueError("expected a signal name such as \"TERM\" or a number, got %s" % type(value).__name__)
    text = value.strip().upper()
    if text.isdigit():
        return parse(int(text))
    if text.startswith("SIG"):
        text = text[3:]
    if text in valid:
        return valid[text]
    raise ValueError("expected a signal name such as \"TERM\", \"INT\", \"QUIT\", \"HUP\", \"KILL\", "
                     "\"USR1\" or a number%s" % did_you_mean(text, valid))


def signal_of(code: int):
    """The signal number behind an exit code 128+N, else None."""
    if code is not None and 128 < code < 128 + 65:
        return code - 128
    return None


def describe_exit(code: int) -> str:
    """3 -> "exited with code 3"; 143 -> "killed by SIGTERM (exit 143)"."""
    signum = signal_of(code)
    if signum is not None:
        return "killed by %s (exit %d)" % (name(signum), code)
    return "exited with code %d" % code


def short_exit(code: int) -> str:
    """3 -> "3"; 143 -> "SIGTERM": the terse form for tables and "stopped (...)"."""
    signum = signal_of(code)
    return name(signum) if signum is not None else str(code)
