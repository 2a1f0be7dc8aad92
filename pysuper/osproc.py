"""The only module that forks, execs, signals and reaps.

Exactly one reaper: `reap()` is the only caller of waitpid(-1). Each Popen stays referenced by its
owner until its pid is reaped here, and its returncode is then set by hand, so Popen never calls
waitpid on its own.
"""

import os
import signal
import subprocess
import sys
from typing import List, Tuple

PR_SET_CHILD_SUBREAPER = 36


class SpawnError(OSError):
    """The program could not be started; `exit_code` is 127 (not found) or 126 (cannot run)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code

    def __str__(self):
        return self.message


def spawn(argv, cwd=None, env=None, user=None, stdout=None, stderr=None) -> subprocess.Popen:
    """Start argv in its own session and process group, stdin from /dev/null.

    `user` is (uid, gid, name) or None. Signal dispositions Python changed (SIGPIPE, SIGXFSZ) are
    reset before exec; the signal mask is never touched, so children start with an empty one.
    """
    kwargs = {}
    if user is not None:
        uid, gid, name = user
        if uid != os.geteuid():
            kwargs.update(user=uid, group=gid, extra_groups=_supplementary_groups(name, gid))
            if env is not None:
                env = _user_environment(env, uid, name)
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
        raise SpawnError("%s: %s" % (argv[0], exc.strerror or exc), 126) from None


def spawn_foreground(argv, tty):
    """Single-program mode: argv in its own process group, inheriting our fds; with a terminal
    (an fd), as the terminal's foreground group.

    Taking the terminal has to happen in the child before exec (as tini does), or the child could
    read from the terminal while still in the background. pysuper is single-threaded here, so a
    preexec_fn is safe; without a terminal, Python >= 3.11 needs none.
    """
    kwargs = {}
    if tty is not None:
        def take_terminal():
            os.setpgid(0, 0)
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)
            try:
                os.tcsetpgrp(tty, os.getpgrp())
            finally:
                signal.signal(signal.SIGTTOU, signal.SIG_DFL)
        kwargs["preexec_fn"] = take_terminal
    elif sys.version_info >= (3, 11):
        kwargs["process_group"] = 0
    else:
        kwargs["preexec_fn"] = os.setpgrp
    # restore_signals resets SIGPIPE and SIGXFSZ, which Python ignores; handlers do not survive exec.
    return _popen(argv, restore_signals=True, close_fds=False, **kwargs)


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


def become_reaper(pid1: bool) -> bool:
    """Make sure orphans of our descendants come to us to be reaped: as PID 1 they do already,
    otherwise become a child subreaper. False when neither holds (the caller warns)."""
    return pid1 or set_subreaper()


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

