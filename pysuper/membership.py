"""Which processes belong to a program: the process table from /proc, the inherited program marker,
and a cgroup v2 per program where pysuper can make one. It reads and never signals (osproc does)."""

import os
from contextlib import contextmanager
from typing import List, Optional, Tuple


def process_table():
    """{pid: (ppid, start_time, pgid, state)} of every process, from /proc."""
    table = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is not None:
            table[int(entry)] = stat
    return table


def read_stat(pid: int):
    """(ppid, start_time, pgid, state) of pid from /proc/PID/stat, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    # After the name: state, ppid, pgrp ... starttime (fields 3, 4, 5 and 22 of stat).
    return int(fields[1]), int(fields[19]), int(fields[2]), fields[0]


def descendants(pid: int, table=None) -> List[Tuple[int, int]]:
    """[(pid, start_time)] of every live descendant of pid (table: a process_table() to reuse)."""
    if table is None:
        table = process_table()
    children = {}
    for child, entry in table.items():
        children.setdefault(entry[0], []).append(child)
    found, todo = [], list(children.get(pid, ()))
    while todo:
        child = todo.pop()
        found.append((child, table[child][1]))
        todo.extend(children.get(child, ()))
    return found


# -- a cgroup per program ---------------------------------------------------------------------------------
# Where cgroup v2 is mounted and pysuper may create cgroups below its own (root in a container with its
# own cgroup namespace, or a delegated subtree), each program's processes start in a cgroup of their own
# (pysuper steps into it for the moment of the spawn, see cgroup_of_children),
# PYSUPER_CGROUP_PREFIX-<pysuper pid>.<name>, which no descendant can leave without privileges. Otherwise
# (cgroup v1 only, read-only, not permitted, or PYSUPER_CGROUPS=0 in pysuper's environment) the marker
# below is all there is.
PYSUPER_CGROUP_PREFIX = "pysuper"
_CGROUPS = {}  # program name -> cgroup directory (or None: cannot be made)
_CGROUP_BASE = []


def cgroup_base() -> Optional[str]:
    """The directory of pysuper's own cgroup v2 if pysuper may create cgroups in it, else None."""
    if not _CGROUP_BASE:
        _CGROUP_BASE.append(_find_cgroup_base())
    return _CGROUP_BASE[0]


def _find_cgroup_base():
    if os.environ.get("PYSUPER_CGROUPS", "").lower() in ("0", "no", "false", "off"):
        return None
    try:
        with open("/proc/self/cgroup") as handle:
            path = next((line.strip()[3:] for line in handle if line.startswith("0::")), None)
        with open("/proc/self/mountinfo") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return None
    if path is None:
        return None
    for fields in mounts:
        dash = fields.index("-") if "-" in fields else -1
        if dash > 0 and fields[dash + 1] == "cgroup2" and fields[3] == "/":
            base = os.path.join(fields[4], path.lstrip("/"))
            if os.access(base, os.W_OK) and os.path.exists(os.path.join(base, "cgroup.procs")):
                _remove_stale(base)
                return base
    return None


def _remove_stale(base):
    """Remove the empty cgroups a pysuper that is gone (killed, so it could not) left in base."""
    try:
        entries = os.listdir(base)
    except OSError:
        return
    for entry in entries:
        owner = entry[len(PYSUPER_CGROUP_PREFIX) + 1:].split(".", 1)[0]
        if entry.startswith(PYSUPER_CGROUP_PREFIX + "-") and owner.isdigit() and not os.path.exists(
                "/proc/%s" % owner):
            try:
                os.rmdir(os.path.join(base, entry))
            except OSError:
                continue  # still has processes, or is not ours to remove


def program_cgroup(name: str) -> Optional[str]:
    """The cgroup directory of program `name`, made on first use; None where that is not possible."""
    if name not in _CGROUPS:
        base = cgroup_base()
        path = None
        if base is not None:
            path = os.path.join(base, "%s-%d.%s" % (PYSUPER_CGROUP_PREFIX, os.getpid(), name))
            try:
                os.mkdir(path)
            except FileExistsError:
                pass
            except OSError:
                path = None
        _CGROUPS[name] = path
    return _CGROUPS[name]


@contextmanager
def cgroup_of_children(path: Optional[str]):
    """While inside, pysuper is in the cgroup at path (when not None), so a child it starts (fork or
    vfork) is born there: no race with a program that forks at once, and no work in the child. pysuper
    goes back to its own cgroup after; if it cannot, cgroups are not used any more."""
    if path is None or not _move_self(path):
        yield
        return
    try:
        yield
    finally:
        if not _move_self(_CGROUP_BASE[0]):
            _CGROUP_BASE[0] = None
            _CGROUPS.clear()


def _move_self(path) -> bool:
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as handle:
            handle.write("0\n")
        return True
    except OSError:
        return False


def cgroup_pids(name: str) -> List[int]:
    path = _CGROUPS.get(name)
    if path is None:
        return []
    try:
        with open(os.path.join(path, "cgroup.procs")) as handle:
            return [int(pid) for pid in handle.read().split() if int(pid) != os.getpid()]
    except (OSError, ValueError):
        return []


def remove_cgroups():
    """Remove the (empty) cgroups made for programs; at exit."""
    for name, path in list(_CGROUPS.items()):
        if path is not None:
            try:
                os.rmdir(path)
            except OSError:
                continue
        del _CGROUPS[name]


# -- which processes belong to a program ---------------------------------------------------------------
# Every program gets MARKER=<pysuper pid>:<program name> in its environment, and its descendants inherit
# it. A process that leaves the program's process group (setsid, a double fork) is still found: as PID 1
# or a subreaper, pysuper is its ancestor, and its /proc/PID/environ (the environment it was started
# with) names the program. What escapes: a process that was started with an environment without the
# marker (env -i, or a program that drops it before exec) once it is no longer a descendant of the
# program's main process, and any process when pysuper is neither PID 1 nor a subreaper; with a cgroup
# per program (above) none of these escape.
MARKER = "PYSUPER_PROGRAM"


def marker(name: str) -> str:
    """The MARKER value of program `name` of this pysuper."""
    return "%d:%s" % (os.getpid(), name)


def marked(table) -> dict:
    """{program name: [(pid, start_time)]} of pysuper's live descendants carrying our marker."""
    found = {}
    head = ("\0%s=%d:" % (MARKER, os.getpid())).encode()
    for pid, start_time in descendants(os.getpid(), table):
        if table[pid][3] == b"Z":
            continue
        try:
            with open("/proc/%d/environ" % pid, "rb") as handle:
                environ = b"\0" + handle.read()
        except OSError:
            continue
        at = environ.find(head)
        if at < 0:
            continue
        end = environ.find(b"\0", at + 1)
        name = environ[at + len(head):end if end >= 0 else len(environ)]
        found.setdefault(name.decode("utf-8", "surrogateescape"), []).append((pid, start_time))
    return found


def members(name: str, pid: Optional[int], table, marks) -> List[Tuple[int, int]]:
    """[(pid, start_time)] of the live processes of program `name` other than its main process `pid`
    (None once reaped): the main process's descendants, and those `marks` (see marked) gives it."""
    found = dict(descendants(pid, table)) if pid is not None else {}
    for member, start_time in marks.get(name, ()):
        if member != pid:
            found.setdefault(member, start_time)
    for member in cgroup_pids(name):
        if member != pid and member in table:
            found.setdefault(member, table[member][1])
    return [(member, start_time) for member, start_time in found.items()
            if member in table and table[member][3] != b"Z"]


def strays(names) -> List[Tuple[int, int]]:
    """[(pid, start_time)] of the live processes of programs `names` (by marker or cgroup) and of any
    program whose marker they carry: what programs left behind, once none is running."""
    table = process_table()
    marks = marked(table)
    found = {}
    for name in set(names) | set(marks):
        found.update(members(name, None, table, marks))
    return list(found.items())
