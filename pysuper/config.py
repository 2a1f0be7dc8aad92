"""TOML config -> frozen records.

Every value goes through a small pure converter; every problem is collected so the user sees all of
them at once, each naming the file, the table, the key, the bad value and what was expected.
Checks that depend on the machine (does the user, the directory, the binary exist?) are kept apart in
`host_problems`: `pysuper check` reports them as warnings (the config may be meant for an image),
running a config treats them as errors before anything starts.
"""

import os
import re
import shlex
import signal

from pysuper import signals, tomlfile
from pysuper.names import PROGRAM_NAME, did_you_mean
from typing import Dict, List, Mapping, Optional

SEARCH_PATH = ("./pysuper.toml", "/etc/pysuper/pysuper.toml")

LOG_FORMATS = ("prefix", "raw", "json")
COLOR_MODES = ("auto", "always", "never")
RESTART_POLICIES = ("always", "on-failure", "never")


class ConfigError(Exception):
    """The config cannot be used; `errors` holds one line per problem."""

    def __init__(self, errors: List[str]):
        super().__init__("\n".join(errors))
        self.errors = list(errors)


class Record:
    """A small frozen record: keyword construction, defaults, equality, repr.

    (dataclasses would cost about 1 MB of resident memory in every container: it imports inspect.)
    """

    __slots__ = ()
    FIELDS = ()  # ((name, default), ...); a dict default is copied for each record

    def __init__(self, **values):
        for name, default in self.FIELDS:
            value = values.pop(name, default)
            if isinstance(value, dict) and value is default:
                value = dict(default)
            object.__setattr__(self, name, value)
        if values:
            raise TypeError("%s has no field %s" % (type(self).__name__, ", ".join(values)))

    def __setattr__(self, name, value):
        raise AttributeError("%s is frozen" % type(self).__name__)

    def _values(self):
        return tuple(getattr(self, name) for name, _ in self.FIELDS)

    def __eq__(self, other):
        return type(self) is type(other) and self._values() == other._values()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (name, getattr(self, name)) for name, _ in self.FIELDS))

    def replace(self, **changes):
        values = {name: getattr(self, name) for name, _ in self.FIELDS}
        values.update(changes)
        return type(self)(**values)


class Settings(Record):
    # control_socket: None for the default search order, False for no socket, or a path.
    FIELDS = (("log_format", "prefix"), ("timestamps", False), ("color", "auto"), ("shutdown_timeout", 9.0),
              ("control_socket", None), ("control_group", None))
    __slots__ = tuple(name for name, _ in FIELDS)


class ProgramConfig(Record):
    FIELDS = (("name", None), ("command", ()), ("directory", None), ("environment", {}), ("user", None),
              ("group", None), ("autostart", True), ("restart", "on-failure"), ("exit_codes", (0,)),
              ("start_seconds", 1.0), ("start_retries", 3), ("stop_signal", int(signal.SIGTERM)),
              ("stop_timeout", 10.0), ("critical", False), ("backoff_max", 30.0))
    __slots__ = tuple(name for name, _ in FIELDS)

    def expects(self, code: int) -> bool:
        """Does this exit code count as success?"""
        return code in self.exit_codes


class Config(Record):
    FIELDS = (("settings", None), ("programs", {}), ("path", "<string>"))
    __slots__ = tuple(name for name, _ in FIELDS)


# ---------------------------------------------------------------------------------------------
# Converters: value -> converted value, or ValueError("what was expected").


def _type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def to_bool(value):
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false, got %s" % _type_name(value))


def to_seconds(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected a number of seconds, got %s" % _type_name(value))
    if value < 0 or value != value or value == float("inf"):
        raise ValueError("expected a number of seconds >= 0")
    return float(value)


def to_count(value):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number, got %s" % _type_name(value))
    if value < 0:
        raise ValueError("expected a whole number >= 0")
    return value


def to_string(value):
    if not isinstance(value, str):
        raise ValueError("expected a string, got %s" % _type_name(value))
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def choice(*allowed):
    def convert(value):
        if not isinstance(value, str):
            raise ValueError("expected one of %s, got %s" % (_quoted(allowed), _type_name(value)))
        if value not in allowed:
            raise ValueError("expected one of %s%s" % (_quoted(allowed), _did_you_mean(value, allowed)))
        return value
    return convert


def _quoted(names) -> str:
    return ", ".join('"%s"' % n for n in names)


def _did_you_mean(word: str, candidates, quote='"') -> str:
    return did_you_mean(word, candidates, quote)


def to_signal(value) -> int:
    """"TERM", "SIGTERM", "term" or a number -> signal number."""
    if not isinstance(value, (bool, int, str)):
        raise ValueError("expected a signal name such as \"TERM\" or a number, got %s" % _type_name(value))
    return signals.parse(value)


def to_exit_codes(value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected an array of exit codes such as [0, 2], got %s" % _type_name(value))
    codes = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
            raise ValueError("expected exit codes between 0 and 255, got %r" % (item,))
        codes.append(item)
    return tuple(codes)


def to_command(value):
    if isinstance(value, str):
        try:
            words = shlex.split(value)
        except ValueError as exc:
            raise ValueError("cannot split the command as a shell would: %s" % exc) from None
    elif isinstance(value, list):
        if not all(isinstance(word, str) for word in value):
            raise ValueError("expected an array of strings")
        words = list(value)
    else:
        raise ValueError("expected a string or an array of strings, got %s" % _type_name(value))
    if not words or not words[0]:
        raise ValueError("the command is empty")
    return tuple(words)


def to_environment(value):
    if not isinstance(value, dict):
        raise ValueError("expected a table such as { NAME = \"value\" }, got %s" % _type_name(value))
    env = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError("expected string values, got %s for %s" % (_type_name(item), key))
        if "=" in key or "\0" in key or not key:
            raise ValueError("invalid variable name %r" % key)
        env[key] = str(item)
    return env


def to_control_socket(value):
    if value is False:
        return False
    if isinstance(value, str) and value:
        return value
    raise ValueError("expected a path or false")


def to_user(value):
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("expected a user name or a uid >= 0")
        return str(value)
    return to_string(value)


# ---------------------------------------------------------------------------------------------
# ${VAR} expansion

_EXPANSION = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def expand(text: str, environ: Mapping[str, str]) -> str:
    """Expand ${NAME} and ${NAME:-default}; $$ is a literal $. Unset names without default raise."""
    def replace(match):
        name, default = match.group(1), match.group(2)
        if name is None:
            return "$"
        if name in environ:
            value = environ[name]
            if value or default is None:
                return value
        if default is not None:
            return default
        raise ValueError("environment variable %s is not set (write ${%s:-default} for a fallback, "
                         "$$ for a literal $)" % (name, name))
    return _EXPANSION.sub(replace, text)


# ---------------------------------------------------------------------------------------------
# Schema

SETTINGS_KEYS = {
    "log_format": choice(*LOG_FORMATS),
    "timestamps": to_bool,
    "color": choice(*COLOR_MODES),
    "shutdown_timeout": to_seconds,
    "control_socket": to_control_socket,
    "control_group": to_string,
}

PROGRAM_KEYS = {
    "command": to_command,
    "directory": to_string,
    "environment": to_environment,
    "user": to_user,
    "group": to_user,
    "autostart": to_bool,
    "restart": choice(*RESTART_POLICIES),
    "exit_codes": to_exit_codes,
    "start_seconds": to_seconds,
    "start_retries": to_count,
    "stop_signal": to_signal,
    "stop_timeout": to_seconds,
    "critical": to_bool,
    "backoff_max": to_seconds,
}

_NAME = PROGRAM_NAME


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    if isinstance(value, dict):
        return "{...}"
    return repr(value)


class _Collector:
    def __init__(self, path: str):
        self.path = path
        self.errors: List[str] = []

    def add(self, message: str):
        self.errors.append("%s: %s" % (self.path, message))

    def table(self, data: dict, table: str, schema: dict) -> dict:
        values = {}
        for key, raw in data.items():
            convert = schema.get(key)
            if convert is None:
                self.add("unknown key '%s' in [%s]%s" % (key, table, _did_you_mean(key, schema, "'")))
                continue
            try:
                values[key] = convert(raw)
            except ValueError as exc:
                self.add("[%s] %s = %s: %s" % (table, key, _show(raw), exc))
        return values


def parse(text: str, path: str = "<string>", environ: Optional[Mapping[str, str]] = None) -> Config:
    """Parse and validate TOML text; raise ConfigError listing every problem."""
    if environ is None:
        environ = os.environ
    data = _load_toml(text, path)
    errors = _Collector(path)
    for key in data:
        if key not in ("pysuper", "programs"):
            close = _did_you_mean(key, ("pysuper", "programs"), "")
            hint = close.replace("mean ", "mean [").replace("?", "]?") if close else \
                " (expected [pysuper] and [programs.NAME])"
            errors.add("unknown table [%s]%s" % (key, hint))

    raw_settings = data.get("pysuper", {})
    if not isinstance(raw_settings, dict):
        errors.add("[pysuper] must be a table")
        raw_settings = {}
    settings = Settings(**errors.table(raw_settings, "pysuper", SETTINGS_KEYS))

    programs: Dict[str, ProgramConfig] = {}
    raw_programs = data.get("programs")
    if raw_programs is None:
        errors.add("no programs: add a [programs.NAME] table with a command, "
                   "e.g. [programs.web] command = \"node index.js\"")
    elif not isinstance(raw_programs, dict) or not raw_programs:
        errors.add("[programs] is empty: add a [programs.NAME] table with a command")
    else:
        for name, table in raw_programs.items():
            program = _program(name, table, errors, environ)
            if program is not None:
                programs[name] = program
    if errors.errors:
        raise ConfigError(errors.errors)
    return Config(settings=settings, programs=programs, path=path)


def _program(name, table, errors: _Collector, environ) -> Optional[ProgramConfig]:
    where = "programs.%s" % (name if _NAME.match(name) else '"%s"' % name)
    if not _NAME.match(name):
        errors.add("[%s]: program names may use letters, digits, '_', '-' and '.'" % where)
    if not isinstance(table, dict):
        errors.add("[%s] must be a table with at least a command (programs.%s = %s)"
                   % (where, name, _show(table)))
        return None
    count = len(errors.errors)
    values = errors.table(table, where, PROGRAM_KEYS)
    if "command" not in table:
        errors.add("[%s] has no command: add command = \"...\"" % where)
    for key in ("command", "directory", "environment"):
        if key in values:
            try:
                values[key] = _expand_value(values[key], environ)
            except ValueError as exc:
                errors.add("[%s] %s = %s: %s" % (where, key, _show(table[key]), exc))
    if "group" in values and "user" not in values:
        errors.add("[%s] group = %s: set user as well (group applies to the user the program runs as)"
                   % (where, _show(table["group"])))
    if len(errors.errors) != count:
        return None
    return ProgramConfig(name=name, **values)


def _expand_value(value, environ):
    if isinstance(value, tuple):
        return tuple(expand(word, environ) for word in value)
    if isinstance(value, dict):
        return {key: expand(item, environ) for key, item in value.items()}
    return expand(value, environ)


def _load_toml(text: str, path: str) -> dict:
    try:
        return tomlfile.loads(text)
    except tomlfile.TomlError as exc:
        raise ConfigError(["%s: invalid TOML: %s" % (exc.where(path), exc.message)]) from None


def load(path: str, environ: Optional[Mapping[str, str]] = None) -> Config:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(["%s: cannot read the config: %s" % (path, exc.strerror or exc)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(["%s: the config is not UTF-8 (byte %d)" % (path, exc.start)]) from None
    return parse(text, path, environ)


def find_config(explicit: Optional[str] = None, environ: Optional[Mapping[str, str]] = None):
    """(path or None, the places that were searched)."""
    if environ is None:
        environ = os.environ
    if explicit:
        return explicit, [explicit]
    if environ.get("PYSUPER_CONFIG"):
        return environ["PYSUPER_CONFIG"], ["$PYSUPER_CONFIG=%s" % environ["PYSUPER_CONFIG"]]
    for candidate in SEARCH_PATH:
        if os.path.isfile(candidate):
            return candidate, list(SEARCH_PATH)
    return None, list(SEARCH_PATH)


# ---------------------------------------------------------------------------------------------
# Machine-dependent checks


def program_environment(program: ProgramConfig, base: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ if base is None else base)
    env.update(program.environment)
    return env


def resolve_user(program: ProgramConfig):
    """(uid, gid, user name) of program.user/group; raise ValueError naming what is wrong."""
    import grp
    import pwd
    if program.user is None:
        return None
    try:
        entry = pwd.getpwuid(int(program.user)) if program.user.isdigit() else pwd.getpwnam(program.user)
    except KeyError:
        if program.user.isdigit():
            entry = None
        else:
            names = [p.pw_name for p in pwd.getpwall()]
            raise ValueError("user = %s: no such user on this machine%s"
                             % (_show(program.user), _did_you_mean(program.user, names))) from None
    uid = int(program.user) if entry is None else entry.pw_uid
    gid = entry.pw_gid if entry is not None else uid
    name = entry.pw_name if entry is not None else program.user
    if program.group is not None:
        try:
            gid = int(program.group) if program.group.isdigit() else grp.getgrnam(program.group).gr_gid
        except KeyError:
            names = [g.gr_name for g in grp.getgrall()]
            raise ValueError("group = %s: no such group on this machine%s"
                             % (_show(program.group), _did_you_mean(program.group, names))) from None
    return uid, gid, name


def find_executable(program: ProgramConfig) -> Optional[str]:
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
    return os.path.isfile(path) and os.access(path, os.X_OK)


def host_problems(config: Config) -> List[str]:
    """Problems that depend on this machine: users, groups, directories, binaries."""
    problems = []
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
                                    "another user" % (where, _show(program.user)))
        if program.directory is not None and not os.path.isdir(program.directory):
            problems.append("%s directory = %s: no such directory" % (where, _show(program.directory)))
        if find_executable(program) is None:
            word = program.command[0]
            if "/" in word:
                problems.append("%s command: %s is not an executable file" % (where, word))
            else:
                problems.append("%s command: %s was not found on PATH" % (where, word))
    return problems
