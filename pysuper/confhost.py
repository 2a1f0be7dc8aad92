"""The machine side of a config: a program's environment (env_file included), its user and groups,
its binary, and `host_problems` — what this machine lacks to run a config that is itself valid.

`pysuper check` reports host problems as warnings (a config written for an image is checked on a
laptop); running a config treats them as errors before anything starts.
"""

import os

from pysuper.confvalues import MAX_ID, is_id, one_line, show
from pysuper.names import did_you_mean
from typing import Dict, List, Mapping, Optional


def program_environment(program, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """What a program's process gets: pysuper's own environment (or base), then its env_file values,
    then PYSUPER_REPLICA, then its `environment` table (each wins over the ones before)."""
    env = dict(os.environ if base is None else base)
    env.update(program.file_environment)
    env["PYSUPER_REPLICA"] = str(program.replica or 0)
    env.update(program.environment)
    return env


def read_env_files(files, cache: Optional[dict] = None) -> Dict[str, str]:
    """KEY=VALUE files in the Compose/honcho format (python-dotenv: comments, `export `, quotes,
    ${VAR} interpolation as Compose does) -> one dict, later files winning. Values are secrets: no
    error message holds one. Raise ValueError naming the file."""
    cache = {} if cache is None else cache
    merged: Dict[str, str] = {}
    for path, required in files:
        if path not in cache:
            cache[path] = _read_env_file(path, required)
        merged.update(cache[path])
    return merged


def _read_env_file(path: str, required: bool) -> Dict[str, str]:
    if not os.path.isfile(path):
        if not os.path.exists(path) and not required:
            return {}
        reason = "is not a file" if os.path.exists(path) else "does not exist"
        raise ValueError("%s %s (write env_file = { path = %s, required = false } if it may be missing)"
                         % (path, reason, show(path)))
    from dotenv import dotenv_values
    try:
        values = dotenv_values(path)
    except OSError as exc:
        raise ValueError("%s: cannot read it: %s" % (path, exc.strerror or exc)) from None
    except UnicodeDecodeError as exc:
        raise ValueError("%s: not UTF-8 (byte %d)" % (path, exc.start)) from None
    env = {}
    for key, value in values.items():
        if value is None:  # a bare NAME line: the program inherits NAME from pysuper's environment
            continue
        if not key or "=" in key or "\0" in key:
            raise ValueError("%s: invalid variable name %s" % (path, show(key)))
        if "\0" in value:
            raise ValueError("%s: the value of %s holds a NUL byte" % (path, key))
        env[key] = value
    return env


def resolve_user(program):
    """(uid, gid, user name) of program.user/group; raise ValueError naming what is wrong."""
    import pwd
    if program.user is None:
        return None
    try:
        entry = pwd.getpwuid(_id(program.user)) if is_id(program.user) else pwd.getpwnam(program.user)
    except KeyError:
        if is_id(program.user):
            entry = None
        else:
            names = [p.pw_name for p in pwd.getpwall()]
            raise ValueError("user = %s: no such user on this machine%s"
                             % (show(program.user), did_you_mean(program.user, names))) from None
    uid = _id(program.user) if entry is None else entry.pw_uid
    gid = entry.pw_gid if entry is not None else uid
    name = entry.pw_name if entry is not None else program.user
    if program.group is not None:
        gid = resolve_group(program.group, "group")
    return uid, gid, name


def resolve_group(group: str, key: str = "groups") -> int:
    import grp
    if is_id(group):
        return _id(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        names = [g.gr_name for g in grp.getgrall()]
        raise ValueError("%s = %s: no such group on this machine%s"
                         % (key, show(group), did_you_mean(group, names))) from None


def _id(text: str) -> int:
    value = int(text)
    if value > MAX_ID:
        raise ValueError("expected an id between 0 and %d, got %s" % (MAX_ID, text))
    return value


def find_executable(program) -> Optional[str]:
    """The path the command's first word resolves to, or None (like shutil.which, which would
    import bz2 and lzma into every container)."""
    word = program.command[0]
    if "/" in word:
        path = word if os.path.isabs(word) or not program.directory else os.path.join(program.directory, word)
        return path if _executable(path) else None
    for directory in program_environment(program).get("PATH", os.defpath).split(os.pathsep):
        path = os.path.join(directory or ".", word)
        if _executable(path):
            return path
    return None


def _executable(path: str) -> bool:
    try:
        return os.path.isfile(path) and os.access(path, os.X_OK)
    except ValueError:  # an embedded NUL byte
        return False


def host_problems(config) -> List[str]:
    """Problems that depend on this machine: unset ${VAR}s, users, groups, directories, binaries,
    resource limits above pysuper's own hard limits."""
    problems = list(config.unset)
    root = os.geteuid() == 0
    for program in config.programs.values():
        where = "%s: [programs.%s]" % (config.path, program.name)
        if program.user is not None:
            try:
                ids = resolve_user(program)
            except ValueError as exc:
                problems.append("%s %s" % (where, exc))
            else:
                if not root and ids and ids[0] != os.geteuid():
                    problems.append("%s user = %s: pysuper must run as root to start programs as "
                                    "another user" % (where, show(program.user)))
        if program.groups is not None:
            for group in program.groups:
                try:
                    resolve_group(group)
                except ValueError as exc:
                    problems.append("%s %s" % (where, exc))
            if not root:
                problems.append("%s groups: pysuper must run as root to set supplementary groups" % where)
        problems.extend(_limit_problems(program, where, root))
        if program.directory is not None and not os.path.isdir(program.directory):
            problems.append("%s directory = %s: no such directory" % (where, show(program.directory)))
        if find_executable(program) is None:
            word = program.command[0]
            if "/" in word:
                problems.append("%s command: %s is not an executable file" % (where, word))
            else:
                problems.append("%s command: %s was not found on PATH" % (where, word))
    return [one_line(line) for line in problems]


def _limit_problems(program, where: str, root: bool) -> List[str]:
    """Without root, a hard limit cannot be raised above pysuper's own."""
    if root or not program.limits:
        return []
    import resource
    from pysuper.confvalues import limit_above, limit_text, rlimit_names
    names = rlimit_names()
    problems = []
    for name, (_soft, hard) in program.limits.items():
        own = resource.getrlimit(names[name])[1]
        if limit_above(hard, own):
            problems.append("%s limits.%s: the hard limit %s is above pysuper's own (%s); raising it needs root"
                            % (where, name, limit_text(hard), limit_text(own)))
    return problems
