"""Config value converters: raw TOML value -> checked value, or ValueError("what was expected").

Pure functions with the documented range of every key, used by `pysuper.config` (which owns the
schema and the records). Nothing here reads the machine or the environment.
"""

import shlex

from pysuper import signals
from pysuper.names import did_you_mean

# Every seconds key is at most a day: a timer that long still fits select()/epoll (about 24.8 days).
MAX_SECONDS = 86400
MIN_CHECK_SECONDS = 0.01  # check intervals and timeouts: a zero would spin
MAX_RETRIES = 1000        # start_retries and health retries
MAX_REPLICAS = 1000
MAX_ID = 4294967294       # uid/gid: 2**32 - 2 (2**32 - 1 is "no id")
MAX_PORT = 65535
UNLIMITED = "unlimited"
MAX_RLIMIT = 2 ** 63 - 1

CHECK_KINDS = ("tcp", "http", "exec", "log", "notify")
HEALTH_KINDS = ("tcp", "http", "exec")
CONDITIONS = ("started", "ready", "completed")
PROGRAM_TYPES = ("service", "oneshot")


class SubkeyError(ValueError):
    """A problem with one entry of a table value: reported as `key.subkey = value: message`."""

    def __init__(self, subkey, value, message):
        super().__init__(message)
        self.subkey = subkey
        self.value = value


def type_name(value) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(value), type(value).__name__)


def show(value) -> str:
    """A value as it would be written in TOML (tables abbreviated)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > 200:
            return '"%s..." (%d characters)' % (escape(value[:60]), len(value))
        return '"%s"' % escape(value)
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, int) and value.bit_length() > 100:
        return "a %d-bit integer" % value.bit_length()
    if isinstance(value, list):
        shown = "[%s]" % ", ".join(show(item) for item in value[:20])
        return shown if len(value) <= 20 and len(shown) <= 400 else "[...] (%d items)" % len(value)
    return repr(value)


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def escape(text: str) -> str:
    """text as inside a TOML basic string: quotes, backslashes and unprintable characters escaped."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(_ESCAPES.get(c) or (c if c.isprintable() else "\\u%04x" % ord(c) if ord(c) < 0x10000
                                       else "\\U%08x" % ord(c)) for c in text)


def one_line(text: str) -> str:
    """text with unprintable characters (newlines, NUL, ...) escaped: one message, one line."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def key_text(key: str) -> str:
    """A table key for a message: as written when plain, else quoted and escaped."""
    return key if key.isprintable() and key and " " not in key else '"%s"' % escape(key)


def quoted(names) -> str:
    return ", ".join('"%s"' % n for n in names)


def find_nul(value, where=""):
    """None, or where in value (".KEY" in a table, "" for value itself) a string holds a NUL byte."""
    if isinstance(value, str):
        return where if "\0" in value else None
    items = enumerate(value) if isinstance(value, list) else value.items() if isinstance(value, dict) else ()
    for key, item in items:
        if isinstance(key, str) and "\0" in key:
            return where
        found = find_nul(item, where if isinstance(key, int) else "%s.%s" % (where, key))
        if found is not None:
            return found
    return None


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("expected %s, got %s" % (what, type_name(value)))
    if value != value:
        raise ValueError("expected %s, got nan" % what)
    return value


def to_bool(value):
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false, got %s" % type_name(value))


def seconds(low=0.0, high=MAX_SECONDS):
    """A converter for seconds in [low, high] (integers of any size are compared before float())."""
    def convert(value):
        _number(value, "a number of seconds")
        if not low <= value <= high:
            raise ValueError("expected a number of seconds between %g and %g" % (low, high))
        return float(value)
    return convert


to_seconds = seconds()
to_check_seconds = seconds(MIN_CHECK_SECONDS)


def count(low=0, high=MAX_RETRIES):
    def convert(value):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("expected a whole number, got %s" % type_name(value))
        if not low <= value <= high:
            raise ValueError("expected a whole number between %d and %d" % (low, high))
        return value
    return convert


def to_string(value):
    if not isinstance(value, str):
        raise ValueError("expected a string, got %s" % type_name(value))
    if not value:
        raise ValueError("expected a non-empty string")
    return value


def choice(*allowed):
    def convert(value):
        if not isinstance(value, str):
            raise ValueError("expected one of %s, got %s" % (quoted(allowed), type_name(value)))
        if value not in allowed:
            raise ValueError("expected one of %s%s" % (quoted(allowed), did_you_mean(value, allowed)))
        return value
    return convert


def to_signal(value) -> int:
    """"TERM", "SIGTERM", "term" or a number -> signal number."""
    if not isinstance(value, (bool, int, str)):
        raise ValueError("expected a signal name such as \"TERM\" or a number, got %s" % type_name(value))
    return signals.parse(value)


def to_exit_codes(value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected an array of exit codes such as [0, 2], got %s" % type_name(value))
    codes = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, int) or not 0 <= item <= 255:
            raise ValueError("expected exit codes between 0 and 255, got %s" % show(item))
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
        raise ValueError("expected a string or an array of strings, got %s" % type_name(value))
    if not words or not words[0]:
        raise ValueError("the command is empty")
    return tuple(words)


def to_environment(value):
    if not isinstance(value, dict):
        raise ValueError("expected a table such as { NAME = \"value\" }, got %s" % type_name(value))
    env = {}
    for key, item in value.items():
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise ValueError("expected string values, got %s for %s" % (type_name(item), key_text(key)))
        if "=" in key or not key:
            raise ValueError("invalid variable name %s" % show(key))
        if isinstance(item, int) and item.bit_length() > 100:
            raise ValueError("the number for %s is too long; write it as a string" % key)
        env[key] = str(item)
    return env


def to_control_socket(value):
    if value is False:
        return False
    if isinstance(value, str) and value:
        return value
    raise ValueError("expected a path or false")


def is_id(text: str) -> bool:
    """ASCII digits only ("²".isdigit() is true, int("²") fails)."""
    return bool(text) and all("0" <= c <= "9" for c in text)


def to_user(value):
    """A user or group: a name, or an id 0..MAX_ID (as an integer or a string of digits)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value) if value >= 0 else "-"
    text = to_string(value)
    if text.startswith("-") or (is_id(text) and int(text) > MAX_ID):
        raise ValueError("expected a name or an id between 0 and %d" % MAX_ID)
    return text


def to_groups(value):
    if not isinstance(value, list):
        raise ValueError("expected an array of group names or ids such as [\"www-data\", 44], got %s"
                         % type_name(value))
    return tuple(to_user(item) for item in value)


def to_umask(value):
    """An octal string "027" (or "0o027"); a TOML integer is refused: 27 would read as decimal."""
    if not isinstance(value, str):
        raise ValueError("expected an octal string such as \"027\", got %s (write it in quotes)"
                         % type_name(value))
    text = value[2:] if value[:2] in ("0o", "0O") else value
    if not text or len(text) > 4 or any(c not in "01234567" for c in text) or int(text, 8) > 0o777:
        raise ValueError("expected an octal string between \"000\" and \"777\" such as \"027\"")
    return int(text, 8)


def rlimit_names():
    """{"nofile": resource.RLIMIT_NOFILE, ...} for the limits this platform has."""
    import resource
    return {name[7:].lower(): getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")}


def _limit_value(value):
    if isinstance(value, str) and value == UNLIMITED:
        return UNLIMITED
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("expected a whole number or \"unlimited\", got %s" % type_name(value))
    if not 0 <= value <= MAX_RLIMIT:
        raise ValueError("expected a whole number between 0 and %d or \"unlimited\"" % MAX_RLIMIT)
    return value


def _infinite(value) -> bool:
    import resource
    return value == UNLIMITED or value == resource.RLIM_INFINITY


def limit_above(limit, other) -> bool:
    """Is rlimit value `limit` above `other`? ("unlimited" or RLIM_INFINITY is above every number.)"""
    if _infinite(other):
        return False
    return _infinite(limit) or limit > other


def limit_text(value) -> str:
    return UNLIMITED if _infinite(value) else str(value)


def to_limits(value):
    """{ nofile = 1024, core = [0, "unlimited"] } -> {"nofile": (1024, 1024), "core": (0, "unlimited")}
    (the spawn side turns "unlimited" into resource.RLIM_INFINITY)."""
    if not isinstance(value, dict):
        raise ValueError("expected a table such as { nofile = 1024 }, got %s" % type_name(value))
    names = rlimit_names()
    limits = {}
    for name, item in value.items():
        if name not in names:
            raise SubkeyError(name, item, "unknown limit%s (the limits are %s)"
                              % (did_you_mean(name, names, ""), ", ".join(sorted(names))))
        try:
            if isinstance(item, list):
                if len(item) != 2:
                    raise ValueError("expected [soft, hard], got %d values" % len(item))
                soft, hard = _limit_value(item[0]), _limit_value(item[1])
            else:
                soft = hard = _limit_value(item)
            if limit_above(soft, hard):
                raise ValueError("the soft limit %s is above the hard limit %s" % (item[0], item[1]))
        except ValueError as exc:
            raise SubkeyError(name, item, str(exc)) from None
        limits[name] = (soft, hard)
    return limits


def to_paths(value):
    """A path or an array of paths -> tuple of strings."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("expected a path or an array of paths, got %s" % type_name(value))
    return tuple(to_string(item) for item in value)


def to_env_files(value):
    """".env", [".env", "local.env"] or { path = ".env", required = false } (also inside the array)
    -> ((path as written, required), ...)."""
    items = value if isinstance(value, list) else [value]
    files = []
    for item in items:
        if isinstance(item, str):
            files.append((to_string(item), True))
        elif isinstance(item, dict):
            unknown = [key for key in item if key not in ("path", "required")]
            if unknown:
                raise ValueError("unknown key %s in the env_file table%s (expected path and required)"
                                 % (key_text(unknown[0]), did_you_mean(unknown[0], ("path", "required"), "")))
            if "path" not in item:
                raise ValueError("the env_file table needs path = \"...\"")
            files.append((to_string(item["path"]), to_bool(item.get("required", True))))
        else:
            raise ValueError("expected a path, an array of paths or { path = \".env\", required = false }, "
                             "got %s" % type_name(item))
    return tuple(files)


def to_depends_on(value):
    """["db", "migrate"] or { db = "ready", migrate = "completed" } -> {name: condition}."""
    if isinstance(value, list):
        depends = {}
        for item in value:
            if not isinstance(item, str) or not item:
                raise ValueError("expected an array of program names, got %s" % show(item))
            depends[item] = "started"
        return depends
    if isinstance(value, dict):
        depends = {}
        for name, condition in value.items():
            if condition not in CONDITIONS:
                raise SubkeyError(name, condition, "expected one of %s%s" % (
                    quoted(CONDITIONS), did_you_mean(condition, CONDITIONS) if isinstance(condition, str) else ""))
            depends[name] = condition
        return depends
    raise ValueError("expected an array of program names or a table such as { db = \"ready\" }, got %s"
                     % type_name(value))


# ---------------------------------------------------------------------------------------------
# Hints for supervisord keys written in a pysuper config

_NONE = "pysuper has no such key: "
SUPERVISORD_KEYS = {
    "autorestart": 'pysuper\'s is restart = "always" | "on-failure" | "never"',
    "startsecs": "pysuper's is start_seconds",
    "startretries": "pysuper's is start_retries",
    "stopwaitsecs": "pysuper's is stop_timeout",
    "stopsignal": 'pysuper\'s is stop_signal = "TERM"',
    "exitcodes": "pysuper's is exit_codes = [0]",
    "numprocs": "pysuper's is replicas = N (instances NAME-0 .. NAME-(N-1))",
    "process_name": "pysuper's is replicas = N (instances are named NAME-0 .. NAME-(N-1))",
    "numprocs_start": "pysuper's is replicas = N (instances are numbered from 0, in PYSUPER_REPLICA)",
    "priority": 'pysuper\'s is depends_on = ["NAME"] (the start order follows dependencies)',
    "redirect_stderr": _NONE + "stdout and stderr are both captured and prefixed",
    "stopasgroup": _NONE + "the stop signal always goes to the whole process group",
    "killasgroup": _NONE + "SIGKILL always goes to the whole process group",
    "serverurl": _NONE + "pysuper ctl finds the control socket ([pysuper] control_socket)",
}
_LOGFILE = (_NONE + "every program's output goes, prefixed, to pysuper's own stdout (docker logs); "
            "see log_format in [pysuper]")


def supervisord_hint(key: str):
    """A hint naming pysuper's equivalent of a supervisord program key, or None."""
    if key in SUPERVISORD_KEYS:
        equivalent = SUPERVISORD_KEYS[key]
    elif key.startswith(("stdout_", "stderr_")):
        equivalent = _LOGFILE
    else:
        return None
    return "`%s` is supervisord's; %s" % (key, equivalent)


# ---------------------------------------------------------------------------------------------
# ready and health tables

READY_TIMING = {"interval": 1.0, "timeout": 1.0, "start_timeout": 60.0}
HEALTH_TIMING = {"interval": 10.0, "timeout": 2.0, "retries": 3}
_NOT_HEALTH = "%s is a ready check only: it tells when a program has started, not that it is still alive"


def to_check(value, health: bool) -> dict:
    """The table of `ready` or `health` -> {"kind", "raw", timing keys}; the target itself is checked
    by check_target once ${VAR}s are expanded."""
    kinds = HEALTH_KINDS if health else CHECK_KINDS
    timing = dict(HEALTH_TIMING if health else READY_TIMING)
    if not isinstance(value, dict):
        raise ValueError("expected a table with one check such as { tcp = 8080 }, got %s" % type_name(value))
    found = []
    for key, item in value.items():
        if key in kinds:
            found.append(key)
        elif key in timing:
            convert = count(1, MAX_RETRIES) if key == "retries" else to_check_seconds
            try:
                timing[key] = convert(item)
            except ValueError as exc:
                raise SubkeyError(key, item, str(exc)) from None
        elif key in CHECK_KINDS:
            raise SubkeyError(key, item, _NOT_HEALTH % key)
        elif key in ("start_timeout", "retries"):
            raise SubkeyError(key, item, "applies to %s only" % ("ready" if key == "start_timeout" else "health"))
        else:
            raise SubkeyError(key, item, "unknown key%s (a check is one of %s, with %s)" % (
                did_you_mean(key, kinds + tuple(timing), ""), ", ".join(kinds), ", ".join(timing)))
    if not found:
        raise ValueError("expected one check: %s" % ", ".join(kinds))
    if len(found) > 1:
        raise ValueError("expected one check, got %s (one table holds one check)" % " and ".join(found))
    kind = found[0]
    raw = value[kind]
    try:
        if kind == "tcp":
            if isinstance(raw, int) and not isinstance(raw, bool):
                raw = to_port(raw)
            else:
                to_string(raw)
        elif kind == "exec":
            raw = to_command(raw)
        elif kind == "notify":
            if raw is not True:
                raise ValueError("write notify = true (or leave out the check)")
        else:
            to_string(raw)
    except ValueError as exc:
        raise SubkeyError(kind, value[kind], str(exc)) from None
    result = {"kind": kind, "raw": raw, "start_timeout": None, "retries": None}
    result.update(timing)
    return result


def to_port(value) -> int:
    if isinstance(value, str) and is_id(value) and len(value) < 6:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PORT:
        raise ValueError("expected a port between 1 and %d" % MAX_PORT)
    return value


def check_target(kind: str, raw):
    """The expanded value of a check -> its target (see CheckConfig)."""
    if kind == "tcp":
        if isinstance(raw, int):
            return ("127.0.0.1", raw)
        host, colon, port = raw.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            return (host or "127.0.0.1", to_port(port))
        except ValueError:
            raise ValueError("expected a port (8080) or \"host:port\" with a port between 1 and %d"
                             % MAX_PORT) from None
    if kind == "http":
        from urllib.parse import urlsplit
        try:
            url = urlsplit(raw)
            url.port  # noqa: B018  (raises ValueError for a bad port)
        except ValueError as exc:
            raise ValueError("not a URL: %s" % exc) from None
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("expected an http:// or https:// URL with a host, such as "
                             "\"http://127.0.0.1:8080/health\"")
        return raw
    if kind == "log":
        import re
        try:
            re.compile(raw)
        except (re.error, RecursionError, OverflowError) as exc:
            raise ValueError("not a regular expression: %s" % exc) from None
        return raw
    return raw
