"""TOML config -> frozen records.

Owns the schema (which keys exist, their defaults), ${VAR} expansion and the records other modules
read: Settings, ProgramConfig, CheckConfig, Config. Every value goes through a small pure converter
(`pysuper.confvalues`, which also holds the ranges); every problem is collected so the user sees all
of them at once, each naming the file, the table, the key, the bad value and what was expected.
Checks that depend on the machine (does the user, the directory, the binary, the ${VAR} exist?) are
kept apart in `host_problems` (`pysuper.confhost`): `pysuper check` reports them as warnings (the
config may be meant for an image), running a config treats them as errors before anything starts.
"""

import os
import re
import signal

from pysuper import confvalues as cv
from pysuper import tomlfile
from pysuper.confvalues import (choice, to_bool, to_command, to_control_socket,  # noqa: F401
                                to_environment, to_exit_codes, to_seconds, to_signal, to_string, to_user)
from pysuper.confhost import (find_executable, host_problems, program_environment,  # noqa: F401
                              read_env_files, resolve_user)
from pysuper.names import PROGRAM_NAME, did_you_mean
from typing import Dict, List, Mapping, Optional

SEARCH_PATH = ("./pysuper.toml", "/etc/pysuper/pysuper.toml")

LOG_FORMATS = ("prefix", "raw", "json")
COLOR_MODES = ("auto", "always", "never")
RESTART_POLICIES = ("always", "on-failure", "never")
REPLICA_VARIABLE = "PYSUPER_REPLICA"


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


# The settings a reload applies at once; a change to any other one needs a restart of pysuper.
# ([pysuper] env_file is not a setting: it is part of every program's record, which a reload applies.)
RELOADABLE = ("shutdown_timeout",)


def settings_needing_restart(old: Settings, new: Settings) -> List[str]:
    """Names of the settings that differ between old and new and only a restart applies."""
    return [name for name, _ in Settings.FIELDS
            if name not in RELOADABLE and getattr(old, name) != getattr(new, name)]


class CheckConfig(Record):
    """A `ready` or `health` check. target: tcp (host, port); http the URL; exec an argv tuple;
    log the regular expression; notify True. start_timeout is None on health, retries None on ready."""
    FIELDS = (("kind", None), ("target", None), ("interval", 1.0), ("timeout", 1.0), ("start_timeout", None),
              ("retries", None))
    __slots__ = tuple(name for name, _ in FIELDS)


class ProgramConfig(Record):
    FIELDS = (("name", None), ("command", ()), ("directory", None), ("environment", {}), ("user", None),
              ("group", None), ("autostart", True), ("restart", "on-failure"), ("exit_codes", (0,)),
              ("start_seconds", 1.0), ("start_retries", 3), ("stop_signal", int(signal.SIGTERM)),
              ("stop_timeout", 10.0), ("critical", False), ("backoff_max", 30.0),
              ("type", "service"), ("depends_on", {}), ("ready", None), ("health", None), ("replicas", 1),
              ("replica", None), ("base", None), ("watch", ()), ("watch_ignore", ()), ("watch_debounce", 0.5),
              ("env_file", ()), ("file_environment", {}), ("groups", None), ("umask", None),
              ("no_new_privileges", False), ("limits", {}))
    __slots__ = tuple(name for name, _ in FIELDS)

    def __init__(self, **values):
        super().__init__(**values)
        if self.base is None:
            object.__setattr__(self, "base", self.name)

    def expects(self, code: int) -> bool:
        """Does this exit code count as success?"""
        return code in self.exit_codes

    def __repr__(self):  # file_environment holds secrets
        return super().__repr__().replace(repr(self.file_environment), "{...}") if self.file_environment \
            else super().__repr__()


class Config(Record):
    # programs: the instances to run (replicas expanded); declared: the [programs.NAME] tables as written;
    # unset: "${VAR} is not set" problems, reported by host_problems.
    FIELDS = (("settings", None), ("programs", {}), ("path", "<string>"), ("declared", {}), ("unset", ()))
    __slots__ = tuple(name for name, _ in FIELDS)


# ---------------------------------------------------------------------------------------------
# ${VAR} expansion

EXPANSION = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def _unset_message(name):
    return ("environment variable %s is not set (write ${%s:-default} for a fallback, $$ for a literal $)"
            % (name, name))


def _substitute(text: str, environ: Mapping[str, str], keep=(), unset=None, literal="$") -> str:
    """Expand ${NAME} and ${NAME:-default} from environ; $$ becomes `literal`. Names in keep stay as
    written. An unset name without default stays as written when `unset` is a list (and is added to
    it); otherwise it raises ValueError."""
    def replace(match):
        name, default = match.group(1), match.group(2)
        if name is None:
            return literal
        if name in keep:
            return match.group(0)
        if name in environ:
            value = environ[name]
            if value or default is None:
                return value
        if default is not None:
            return default
        if unset is None:
            raise ValueError(_unset_message(name))
        if name not in unset:
            unset.append(name)
        return match.group(0)
    return EXPANSION.sub(replace, text)


def expand(text: str, environ: Mapping[str, str]) -> str:
    """Expand ${NAME} and ${NAME:-default}; $$ is a literal $. Unset names without default raise."""
    return _substitute(text, environ)


def expand_only(text: str, values: Mapping[str, str]) -> str:
    """Expand just the names in values; everything else ($$, other ${...}) stays as written."""
    def replace(match):
        name, default = match.group(1), match.group(2)
        if name is None or name not in values:
            return match.group(0)
        return values[name] if values[name] or default is None else default
    return EXPANSION.sub(replace, text)


def variables(text: str) -> List[str]:
    """The ${NAME}s text uses, in order, each once ($$ is not one)."""
    names = []
    for match in EXPANSION.finditer(text):
        if match.group(1) and match.group(1) not in names:
            names.append(match.group(1))
    return names


# ---------------------------------------------------------------------------------------------
# Schema

SETTINGS_KEYS = {
    "log_format": cv.choice(*LOG_FORMATS),
    "timestamps": cv.to_bool,
    "color": cv.choice(*COLOR_MODES),
    "shutdown_timeout": cv.to_seconds,
    "control_socket": cv.to_control_socket,
    "control_group": cv.to_string,
    "env_file": cv.to_env_files,
}

PROGRAM_KEYS = {
    "command": cv.to_command,
    "directory": cv.to_string,
    "environment": cv.to_environment,
    "user": cv.to_user,
    "group": cv.to_user,
    "autostart": cv.to_bool,
    "restart": cv.choice(*RESTART_POLICIES),
    "exit_codes": cv.to_exit_codes,
    "start_seconds": cv.to_seconds,
    "start_retries": cv.count(0, cv.MAX_RETRIES),
    "stop_signal": cv.to_signal,
    "stop_timeout": cv.to_seconds,
    "critical": cv.to_bool,
    "backoff_max": cv.to_seconds,
    "type": cv.choice(*cv.PROGRAM_TYPES),
    "depends_on": cv.to_depends_on,
    "ready": lambda value: cv.to_check(value, health=False),
    "health": lambda value: cv.to_check(value, health=True),
    "replicas": cv.count(1, cv.MAX_REPLICAS),
    "watch": cv.to_paths,
    "watch_ignore": cv.to_paths,
    "watch_debounce": cv.seconds(0.0, 60.0),
    "env_file": cv.to_env_files,
    "groups": cv.to_groups,
    "umask": cv.to_umask,
    "no_new_privileges": cv.to_bool,
    "limits": cv.to_limits,
}

_show = cv.show


class _Collector:
    def __init__(self, path: str):
        self.path = path
        self.errors: List[str] = []

    def add(self, message: str):
        line = cv.one_line("%s: %s" % (self.path, message))  # one line per problem, whatever the input held
        if line not in self.errors:
            self.errors.append(line)

    def table(self, data: dict, table: str, schema: dict) -> dict:
        values = {}
        for key, raw in data.items():
            convert = schema.get(key)
            if convert is None:
                hint = cv.supervisord_hint(key) if table.startswith("programs.") else None
                if hint:
                    self.add("unknown key '%s' in [%s]: %s" % (key, table, hint))
                else:
                    self.add("unknown key '%s' in [%s]%s" % (cv.escape(key), table, did_you_mean(key, schema, "'")))
                continue
            try:
                nul = cv.find_nul(raw)
            except RecursionError:
                self.add("[%s] %s: nested too deeply" % (table, key))
                continue
            if nul is not None:
                shown = "" if key == "environment" else " = %s" % _show(raw)  # values may be secrets
                self.add("[%s] %s%s%s: holds a NUL byte, which cannot be passed to a program"
                         % (table, key, nul, shown))
                continue
            try:
                values[key] = convert(raw)
            except cv.SubkeyError as exc:
                self.add("[%s] %s.%s = %s: %s" % (table, key, cv.key_text(exc.subkey), _show(exc.value), exc))
            except ValueError as exc:
                self.add("[%s] %s = %s: %s" % (table, key, _show(raw), exc))
        return values


def parse(text: str, path: str = "<string>", environ: Optional[Mapping[str, str]] = None,
          expand: bool = True) -> Config:
    """Parse and validate TOML text; raise ConfigError listing every problem.

    expand=False expands no ${VAR} from the environment (values keep their ${VAR} and $$ text) and
    reads no env_file nor checks that watchfiles is installed; ${PYSUPER_REPLICA} is still expanded in
    the instances."""
    if environ is None:
        environ = os.environ
    data = _load_toml(text, path)
    errors = _Collector(path)
    for key in data:
        if key not in ("pysuper", "programs"):
            close = did_you_mean(key, ("pysuper", "programs"), "")
            hint = close.replace("mean ", "mean [").replace("?", "]?") if close else \
                " (expected [pysuper] and [programs.NAME])"
            errors.add("unknown table [%s]%s" % (cv.key_text(key), hint))

    raw_settings = data.get("pysuper", {})
    if not isinstance(raw_settings, dict):
        errors.add("[pysuper] must be a table")
        raw_settings = {}
    setting_values = errors.table(raw_settings, "pysuper", SETTINGS_KEYS)
    common_env_files = setting_values.pop("env_file", ())
    settings = Settings(**setting_values)

    declared: Dict[str, dict] = {}
    raw_programs = data.get("programs")
    if raw_programs is None:
        errors.add("no programs: add a [programs.NAME] table with a command, "
                   "e.g. [programs.web] command = \"node index.js\"")
    elif not isinstance(raw_programs, dict) or not raw_programs:
        errors.add("[programs] is empty: add a [programs.NAME] table with a command")
    else:
        for name, table in raw_programs.items():
            values = _program_values(name, table, errors)
            if values is not None:
                declared[name] = values
    _check_relations(declared, raw_programs if isinstance(raw_programs, dict) else {}, errors, expand)

    base_dir = os.path.dirname(os.path.abspath(path)) if not path.startswith("<") else os.getcwd()
    file_cache: Dict[str, dict] = {}
    for name, values in declared.items():
        files = tuple((os.path.join(base_dir, file), required)
                      for file, required in common_env_files + values.get("env_file", ()))
        values["env_file"] = files
        if files and expand:
            try:
                values["file_environment"] = read_env_files(files, file_cache)
            except ValueError as exc:
                errors.add("[%s] env_file: %s" % (_where(name), exc))

    unset: List[str] = []
    programs: Dict[str, ProgramConfig] = {}
    records: Dict[str, ProgramConfig] = {}
    if not errors.errors:
        for name, values in declared.items():
            records[name] = _instance(name, values, None, environ, expand, errors, [], declared=True)
            count = values.get("replicas", 1)
            for index in range(count):
                instance = _instance(name, values, index if count > 1 else None, environ, expand, errors, unset)
                if instance is None:
                    break
                programs[instance.name] = instance
    if errors.errors:
        raise ConfigError(errors.errors)
    return Config(settings=settings, programs=programs, path=path, declared=records, unset=tuple(unset))


def _where(name: str) -> str:
    return "programs.%s" % (name if PROGRAM_NAME.match(name) else '"%s"' % cv.escape(name))


def _program_values(name, table, errors: _Collector) -> Optional[dict]:
    """The converted keys of one [programs.NAME] table (not expanded), or None after errors."""
    where = _where(name)
    if not PROGRAM_NAME.match(name):
        errors.add("[%s]: program names may use letters, digits, '_', '-' and '.'" % where)
    if not isinstance(table, dict):
        errors.add("[%s] must be a table with at least a command (programs.%s = %s)"
                   % (where, name, _show(table)))
        return None
    count = len(errors.errors)
    values = errors.table(table, where, PROGRAM_KEYS)
    if "command" not in table:
        errors.add("[%s] has no command: add command = \"...\"" % where)
    if "group" in values and "user" not in values:
        errors.add("[%s] group = %s: set user as well (group applies to the user the program runs as)"
                   % (where, _show(table["group"])))
    if values.get("type") == "oneshot":
        if "restart" not in values:
            values["restart"] = "never"
        elif values["restart"] == "always":
            errors.add('[%s] restart = "always": a oneshot runs to completion; use "on-failure" or "never"'
                       % where)
        if "ready" in values:
            errors.add('[%s] ready: a oneshot has no ready check (its success is its exit); '
                       'depend on it with depends_on = { %s = "completed" }' % (where, name))
        if "start_seconds" in values:
            errors.add('[%s] start_seconds = %s: does not apply to type = "oneshot" (an exit with an '
                       'expected code is success at any time)' % (where, _show(table["start_seconds"])))
    for key in ("watch_ignore", "watch_debounce"):
        if key in values and not values.get("watch"):
            errors.add("[%s] %s = %s: applies only with watch = [...]" % (where, key, _show(table[key])))
    if len(errors.errors) != count:
        return None
    return values


def _check_relations(declared: Dict[str, dict], raw_programs: dict, errors: _Collector, expand: bool):
    """depends_on names, autostart order and cycles; replica names; the watchfiles package."""
    from pysuper import graph
    names = list(raw_programs)
    edges = {}
    for name, values in declared.items():
        depends = values.get("depends_on", {})
        edges[name] = [dep for dep in depends if dep in declared]
        for dep in depends:
            if dep not in raw_programs:
                errors.add("[%s] depends_on: no program named %s%s" % (_where(name), _show(dep),
                                                                        did_you_mean(dep, names)))
            elif dep in declared and values.get("autostart", True) and not declared[dep].get("autostart", True):
                errors.add("[%s] depends_on: %s starts with pysuper but depends on %s, which has autostart "
                           "= false; set autostart = false on %s too, or start %s with pysuper"
                           % (_where(name), name, dep, name, dep))
    cycle = graph.find_cycle(edges)
    if cycle:
        errors.add("[%s] depends_on: a dependency cycle: %s" % (_where(cycle[0]), " -> ".join(cycle)))
    for name, values in declared.items():
        for index in range(values.get("replicas", 1) if values.get("replicas", 1) > 1 else 0):
            if "%s-%d" % (name, index) in raw_programs:
                errors.add("[%s] replicas = %d: the replica name %s-%d is the name of [%s]"
                           % (_where(name), values["replicas"], name, index, _where("%s-%d" % (name, index))))
                break
    watching = [name for name, values in declared.items() if values.get("watch")]
    if watching and expand:  # expand=False (export) runs nothing, so it needs no watcher
        import importlib.util
        if importlib.util.find_spec("watchfiles") is None:
            errors.add("[%s] watch: needs the watchfiles package, which is not installed: "
                       "pip install 'pysuper[watch]'" % _where(watching[0]))


def _instance(name, values, index, environ, expand, errors: _Collector, unset: List[str], declared=False):
    """One ProgramConfig: the instance `index` (None when replicas == 1), or the declared record."""
    values = dict(values)
    replica = "0" if index is None else str(index)
    instance = name if index is None else "%s-%d" % (name, index)
    where = "[%s]" % _where(name) + ("" if index is None else " (replica %s)" % instance)
    keep = (REPLICA_VARIABLE,) if declared else ()
    missing: List[str] = []

    def text(value: str):
        if not expand:
            return value if declared else expand_only(value, {REPLICA_VARIABLE: replica})
        names: List[str] = []
        result = _substitute(value, _Overlay(environ, REPLICA_VARIABLE, replica), keep, names)
        missing.extend(n for n in names if n not in missing)
        return result

    for key in ("command", "directory", "environment", "ready", "health"):
        if key not in values:
            continue
        value = values[key]
        before = len(missing)
        if key == "command":
            value = tuple(text(word) for word in value)
        elif key == "directory":
            value = text(value)
        elif key == "environment":
            value = {env_key: text(item) for env_key, item in value.items()}
        else:
            value = _check(value, text, key, where, errors)
            if value is None:
                return None
        for variable in missing[before:]:
            message = "%s: %s %s: %s" % (errors.path, where, key, _unset_message(variable))
            if message not in unset:
                unset.append(message)
        values[key] = value
    if index is not None:
        values["environment"] = dict(values.get("environment", {}), **{REPLICA_VARIABLE: replica})
    return ProgramConfig(name=instance, base=name, replica=index, **values)


def _check(value: dict, text, key, where, errors: _Collector):
    raw = value["raw"]
    unresolved = False
    if isinstance(raw, str):
        expanded = text(raw)
        unresolved = bool(variables(expanded))
    elif isinstance(raw, tuple):
        expanded = tuple(text(word) for word in raw)
    else:
        expanded = raw
    target = expanded
    if not unresolved:
        try:
            target = cv.check_target(value["kind"], expanded)
        except ValueError as exc:
            errors.add("%s %s.%s = %s: %s" % (where, key, value["kind"], _show(expanded), exc))
            return None
    elif value["kind"] == "tcp":
        host, _, port = expanded.rpartition(":")
        target = (host or "127.0.0.1", port)
    return CheckConfig(kind=value["kind"], target=target, interval=value["interval"], timeout=value["timeout"],
                       start_timeout=value["start_timeout"], retries=value["retries"])


class _Overlay:
    """environ with one more name (a replica's index wins over pysuper's own environment)."""

    def __init__(self, environ, name, value):
        self.environ, self.name, self.value = environ, name, value

    def __contains__(self, key):
        return key == self.name or key in self.environ

    def __getitem__(self, key):
        return self.value if key == self.name else self.environ[key]


def _load_toml(text: str, path: str) -> dict:
    try:
        return tomlfile.loads(text)
    except tomlfile.TomlError as exc:
        raise ConfigError(["%s: invalid TOML: %s" % (exc.where(path), exc.message)]) from None


def load(path: str, environ: Optional[Mapping[str, str]] = None, expand: bool = True) -> Config:
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(["%s: cannot read the config: %s" % (path, exc.strerror or exc)]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(["%s: the config is not UTF-8 (byte %d)" % (path, exc.start)]) from None
    return parse(text, path, environ, expand)


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
