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

from pysuper.membership import (MARKER, cgroup_of_children, cgroup_pids, descendants,  # noqa: F401  (the seam)
                                 marked, marker, members, process_table, program_cgroup, read_stat,
                                 remove_cgroups, strays)

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
CAP_SYS_RESOURCE = 24
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


def spawn(argv, cwd=None, env=None, user=None, stdout=None, stderr=None, groups=None, umask=None,
          no_new_privileges=False, limits=None, keep_env=(), program=None) -> subprocess.Popen:
    """Start argv in its own session and process group, stdin from /dev/null.

    `user` is (uid, gid, name) or None: the child gets that uid, gid and the user's supplementary
    groups (as initgroups does), and HOME, USER and LOGNAME from the user's entry unless they are in
    `keep_env` (set explicitly by the config). `groups` (names or ids) sets the supplementary groups
    instead; `umask` an int; `no_new_privileges` sets PR_SET_NO_NEW_PRIVS before exec; `limits` is
    {"nofile": (soft, hard), ...} (RLIMIT_* names in lower case), set before the user is changed so
    that root can raise them. The child starts with an empty signal mask and every signal at its
    default action, whatever pysuper inherited or ignores itself. `program` (a name): the child
    starts in that program's cgroup when pysuper can make one (see program_cgroup).
    """
    kwargs = {}
    steps = []
    switch = None  # (uid, gid, supplementary gids)
    if user is not None:
        uid, gid, name = user
        if uid != os.geteuid() or groups is not None:
            switch = (uid, gid, _group_ids(groups) if groups is not None else _supplementary_groups(name, gid))
            if env is not None and uid != os.geteuid():
                env = _user_environment(env, uid, name, keep_env)
    elif groups is not None:
        kwargs["extra_groups"] = _group_ids(groups)
    if umask is not None:
        kwargs["umask"] = umask
    setup = _signal_setup(CLEAN)
    if setup is not None:
        steps.append(setup)
    if limits:
        steps.append(_limits_step(limits))
    if steps and switch is not None:
        # After the limits: a user may not raise them.
        steps.append(_switch_step(*switch))
        switch = None
    if switch is not None:
        kwargs.update(user=switch[0], group=switch[1], extra_groups=switch[2])
    if no_new_privileges:
        steps.append(_no_new_privs_step())
    if steps:
        kwargs["preexec_fn"] = steps[0] if len(steps) == 1 else lambda: [step() for step in steps]
    cgroup = program_cgroup(program) if program is not None else None
    with cgroup_of_children(cgroup):
        return _popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=cwd, env=env,
                      start_new_session=True, restore_signals=True, close_fds=True, **kwargs)


def launch_options(config) -> dict:
    """The spawn() keywords a ProgramConfig asks for beyond command, directory, environment and user."""
    return {"groups": config.groups, "umask": config.umask, "no_new_privileges": config.no_new_privileges,
            "limits": config.limits or None,
            "keep_env": tuple(config.environment) + tuple(config.file_environment), "program": config.name}


def _group_ids(groups) -> List[int]:
    import grp
    ids = []
    for group in groups:
        if isinstance(group, int) or str(group).isdigit():
            ids.append(int(group))
            continue
        try:
            ids.append(grp.getgrnam(group).gr_gid)
        except KeyError:
            raise SpawnError("groups: no group %r on this machine" % group, 126) from None
    return ids


def _limits_step(limits):
    """A child step that sets the resource limits; checked here first, so a limit the child could
    not set is a clear SpawnError rather than a failed preexec_fn."""
    import resource
    wanted = []
    privileged = _has_capability(CAP_SYS_RESOURCE)
    for name, value in limits.items():
        soft, hard = value if isinstance(value, (tuple, list)) else (value, value)
        number = getattr(resource, "RLIMIT_" + name.upper(), None)
        if number is None:
            raise SpawnError("limits: %s is not a resource limit on this system" % name, 126)
        soft, hard = _rlimit_number(soft), _rlimit_number(hard)
        current_hard = resource.getrlimit(number)[1]
        if not privileged and current_hard != resource.RLIM_INFINITY and (
                hard == resource.RLIM_INFINITY or hard > current_hard):
            raise SpawnError("limits: %s hard limit %s is above pysuper's own (%d); raising it needs CAP_SYS_RESOURCE"
                             % (name, "unlimited" if hard == resource.RLIM_INFINITY else hard,
                                current_hard), 126)
        wanted.append((number, (soft, hard)))

    def set_limits():
        for number, pair in wanted:
            resource.setrlimit(number, pair)
    return set_limits


def _rlimit_number(value) -> int:
    import resource
    if value is None or value == "unlimited" or value < 0:
        return resource.RLIM_INFINITY
    return value


def _has_capability(bit: int) -> bool:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def _switch_step(uid, gid, extra):
    def switch_user():
        os.setgroups(extra)
        os.setgid(gid)
        os.setuid(uid)
    return switch_user


def _no_new_privs_step():
    prctl = _prctl()
    if prctl is None:
        raise SpawnError("no_new_privileges: prctl is not available here", 126)

    def no_new_privs():
        if prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError("PR_SET_NO_NEW_PRIVS failed")
    return no_new_privs


_LIBC = []


def _prctl():
    """libc's prctl (looked up once, in pysuper, never in a child between fork and exec), or None."""
    if not _LIBC:
        try:
            import ctypes
            _LIBC.append(ctypes.CDLL(None, use_errno=True).prctl)
        except (OSError, AttributeError):
            _LIBC.append(None)
    return _LIBC[0]


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


def _user_environment(env, uid, name, keep=()):
    """env with HOME, USER and LOGNAME of the user, except those in `keep` (set by the config)."""
    import pwd
    env = dict(env)
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:
        return env
    for key, value in (("HOME", entry.pw_dir), ("USER", name), ("LOGNAME", name)):
        if key not in keep:
            env[key] = value
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
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def kill_snapshot(processes, sig: int, outside_group: Optional[int] = None):
    """Signal the processes of a descendants() snapshot that are still the same processes (with
    `outside_group`: only those no longer in that process group, which killpg reaches already)."""
    for pid, start_time in processes:
        stat = read_stat(pid)
        if stat is not None and stat[1] == start_time and stat[2] != outside_group:
            kill(pid, sig)
