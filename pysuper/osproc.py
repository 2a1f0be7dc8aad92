"""The only module that forks, execs, signals and reaps.

Exactly one reaper: `reap()` is the only caller of waitpid(-1). Each Popen stays referenced by its
owner until its pid is reaped here, and its returncode is then set by hand, so Popen never calls
waitpid on its own.
"""

import errno
import os
import signal
import subprocess
import sys
from typing import FrozenSet, List, NamedTuple, Optional, Tuple

PR_SET_CHILD_SUBREAPER = 36
# Python ignores these itself at start-up (so what we inherited is unknown); Popen(restore_signals=True)
# gives every child the default action back.
PYTHON_IGNORED = frozenset(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ") if hasattr(signal, name))


class SignalState(NamedTuple):
    """A process's blocked signals and the signals it ignores (SIG_IGN)."""
    mask: FrozenSet[int]
    ignored: FrozenSet[int]


def signal_state() -> SignalState:
    """This process's signal mask and ignored signals now (Python's own SIGPIPE/SIGXFSZ left out).

    Called first thing at start-up, it is what pysuper inherited from its parent (a shell, nohup, a CI
    runner): the event loop unblocks each signal it installs a handler for, so that state is lost later.
    """
    mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, []))
    ignored = set()
    for signum in signal.valid_signals():
        try:
            if signal.getsignal(signum) == signal.SIG_IGN and signum not in PYTHON_IGNORED:
                ignored.add(signum)
        except (OSError, ValueError):
            continue
    return SignalState(mask, frozenset(ignored))


CLEAN = SignalState(frozenset(), frozenset())


def _signal_setup(want: SignalState):
    """A function for the child (after fork, before exec) that gives it the signal state `want`, or
    None when the child gets it anyway: exec resets handlers to the default, but keeps the mask and
    the ignored signals of pysuper."""
    now = signal_state()
    if now == want:
        return None
    to_default = sorted(now.ignored - want.ignored)
    to_ignore = sorted(want.ignored - now.ignored)
    mask = sorted(want.mask)

    def setup():
        for signum in to_default:
            signal.signal(signum, signal.SIG_DFL)
        for signum in to_ignore:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return setup


class SpawnError(OSError):
    """The program could not be started; `exit_code` is 127 (not found) or 126 (cannot run)."""

    def __init__(self, message: str, exit_code: int, error: int = 0):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.errno = error or None

    def __str__(self):
        return self.message


def spawn(argv, cwd=None, env=None, user=None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start argv in its own session and process group, stdin from /dev/null.

    `user` is (uid, gid, name) or None. The child starts with an empty signal mask and every signal at
    its default action, whatever pysuper inherited or ignores itself.
    """
    kwargs = {}
    if user is not None:
        uid, gid, name = user
        if uid != os.geteuid():
            kwargs.update(user=uid, group=gid, extra_groups=_supplementary_groups(name, gid))
            if env is not None:
                env = _user_environment(env, uid, name)
    setup = _signal_setup(CLEAN)
    if setup is not None:
        kwargs["preexec_fn"] = setup
    return _popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
                  start_new_session=True, restore_signals=True, close_fds=True, **kwargs)


def _popen(argv, **kwargs) -> subprocess.Popen:
    """Popen, with exec failures turned into a SpawnError (127: not found, 126: cannot run)."""
    try:
        return subprocess.Popen(argv, **kwargs)
    except FileNotFoundError as exc:
        cwd = kwargs.get("cwd")
        if cwd and not os.path.isdir(cwd):
            raise SpawnError("directory %s does not exist" % cwd, 127) from None
        raise SpawnError("%s: command not found" % (exc.filename or argv[0]), 127) from None
    except PermissionError as exc:
        raise SpawnError("%s: permission denied" % (exc.filename or argv[0]), 126) from None
    except OSError as exc:
        raise SpawnError("%s: %s" % (argv[0], exc.strerror or exc), 126, exc.errno) from None
    except subprocess.SubprocessError as exc:  # the preexec_fn failed
        raise SpawnError("%s: %s" % (argv[0], exc), 126) from None


def spawn_foreground(argv, tty, signals: Optional[SignalState] = None):
    """Single-program mode: argv in its own process group, inheriting our fds; with a terminal
    (an fd), as the terminal's foreground group.

    `signals` is the signal state pysuper inherited (see signal_state): the child gets that mask and
    those ignored signals back, as if pysuper were not there (`nohup pysuper -- cmd` keeps SIGHUP
    ignored in cmd). Taking the terminal has to happen in the child before exec (as tini does), or the
    child could read from the terminal while still in the background. pysuper is single-threaded
    here, so a preexec_fn is safe; without a terminal or signals to restore, Python >= 3.11 needs none.

    An executable file the kernel cannot run (a script without `#!`) is run by /bin/sh, as execvp()
    does, and as tini and dumb-init do.
    """
    setup = _signal_setup(signals if signals is not None else CLEAN)
    steps = [setup] if setup is not None else []
    if tty is not None:
        def take_terminal():
            os.setpgid(0, 0)
            previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(tty, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, previous)
        steps.insert(0, take_terminal)
    kwargs = {}
    if not steps and sys.version_info >= (3, 11):
        kwargs["process_group"] = 0
    elif steps:
        if tty is None:
            steps.insert(0, os.setpgrp)
        kwargs["preexec_fn"] = steps[0] if len(steps) == 1 else lambda: [step() for step in steps]
    else:
        kwargs["preexec_fn"] = os.setpgrp
    # restore_signals resets SIGPIPE and SIGXFSZ, which Python ignores; handlers do not survive exec.
    try:
        return _popen(argv, restore_signals=True, close_fds=False, **kwargs)
    except SpawnError as exc:
        script = _find(argv[0]) if exc.errno == errno.ENOEXEC else None
        if script is None:
            raise
    return _popen(["/bin/sh", script] + list(argv[1:]), restore_signals=True, close_fds=False, **kwargs)


def _find(word: str) -> Optional[str]:
    """The executable file execvp() runs for `word` (searched on $PATH when it has no slash), or None."""
    if "/" in word:
        candidates = [word]
    else:
        candidates = [os.path.join(directory or ".", word)
                      for directory in os.environ.get("PATH", os.defpath).split(os.pathsep)]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def _supplementary_groups(name, gid) -> List[int]:
    try:
        return os.getgrouplist(name, gid)
    except (OSError, KeyError, TypeError):
        return [gid]


def _user_environment(env, uid, name):
    import pwd
    env = dict(env)
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return env
    env["HOME"] = entry.pw_dir
    env["USER"] = env["LOGNAME"] = name
    return env


def reap() -> List[Tuple[int, int]]:
    """Every (pid, exit code) that is ready now; exit code is 128+N for a death by signal N."""
    statuses = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == 0:
            break
        statuses.append((pid, exit_code(status)))
    return statuses


def has_children() -> bool:
    try:
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    return True


def exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def kill(pid: int, sig: int) -> bool:
    """Signal one process; False if it no longer exists."""
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def killpg(pgid: int, sig: int) -> bool:
    """Signal a process group; False if the group is empty."""
    try:
        os.killpg(pgid, sig)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return False


def group_alive(pgid: int) -> bool:
    return killpg(pgid, 0)


def kill_all(sig: int) -> bool:
    """kill(-1, sig): every process we may signal. Only for PID 1."""
    try:
        os.kill(-1, sig)
        return True
    except ProcessLookupError:
        return False


def set_subreaper() -> bool:
    """Make orphans of our descendants come to us (Linux >= 3.4)."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def process_table():
    """{pid: (ppid, start_time)} of every process, from /proc."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = _stat(int(entry))
        if stat is not None:
            table[int(entry)] = stat
    return table


def _stat(pid: int):
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    # fields[0] is the state; ppid is field 4 of stat, starttime field 22.
    return int(fields[1]), int(fields[19])


def descendants(pid: int, table=None) -> List[Tuple[int, int]]:
    """[(pid, start_time)] of every live descendant of pid (table: a process_table() to reuse)."""
    if table is None:
        table = process_table()
    children = {}
    for child, (parent, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append((child, table[child][1]))
        todo.extend(children.get(child, ()))
    return found


def kill_snapshot(processes, sig: int):
    """Signal the processes of a descendants() snapshot that are still the same processes."""
    for pid, start_time in processes:
        stat = _stat(pid)
        if stat is not None and stat[1] == start_time:
            kill(pid, sig)

