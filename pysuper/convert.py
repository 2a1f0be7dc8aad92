"""`pysuper convert`: translate a supervisord INI config into a pysuper TOML config.

The input is read with the same INI rules supervisord uses (RawConfigParser, `;` and `#` inline
comments after whitespace, later duplicates win, `[include] files=` globs relative to the including
file) and every value is expanded the way supervisord expands it (`%(name)s` with here,
program_name, group_name, host_node_name, process_num, numprocs and ENV_X).

`%(ENV_X)s` becomes `${X}` wherever pysuper expands variables itself (command, directory and
environment values), so it is still read when the program starts; elsewhere it is resolved from the
environment of `pysuper convert`. A literal `$` is written `$$` in those three keys.

Every setting that pysuper does not need or cannot express is kept as a comment next to the program
it belongs to; sections pysuper cannot run ([eventlistener:x], [fcgi-program:x]) are kept as
comments and reported on stderr. The output depends only on the input, so converting twice gives
the same file.
"""

import argparse
import configparser
import glob
import os
import platform
import re
import shlex
import signal
import sys
from typing import Callable, Dict, List, Optional, Tuple

PROG = "pysuper convert"

# Supervisord's own parser settings (supervisor/options.py: UnhosedConfigParser).
_INLINE_COMMENTS = (";", "#")

_TRUTHY = ("yes", "true", "on", "1")
_FALSY = ("no", "false", "off", "0")

_PROGRAM_OPTIONS = (
    "command", "process_name", "numprocs", "numprocs_start", "priority", "autostart", "startsecs",
    "startretries", "autorestart", "exitcodes", "stopsignal", "stopwaitsecs", "stopasgroup",
    "killasgroup", "user", "redirect_stderr", "stdout_logfile", "stdout_logfile_maxbytes",
    "stdout_logfile_backups", "stdout_capture_maxbytes", "stdout_events_enabled", "stdout_syslog",
    "stderr_logfile", "stderr_logfile_maxbytes", "stderr_logfile_backups", "stderr_capture_maxbytes",
    "stderr_events_enabled", "stderr_syslog", "environment", "directory", "umask", "serverurl",
)

# Options converted into pysuper keys; they get no comment of their own.
_MAPPED = ("command", "directory", "user", "environment", "autostart", "autorestart", "exitcodes",
           "startsecs", "startretries", "stopsignal", "stopwaitsecs")

_NO_LOG_FILES = "not needed; pysuper writes no log files"
_NO_EVENTS = "no equivalent; pysuper has no event protocol"

_PROGRAM_NOTES = {
    "stopasgroup": "not needed; pysuper always signals the program's whole process group",
    "killasgroup": "not needed; pysuper always signals the program's whole process group",
    "stdout_logfile_maxbytes": _NO_LOG_FILES,
    "stdout_logfile_backups": _NO_LOG_FILES,
    "stderr_logfile_maxbytes": _NO_LOG_FILES,
    "stderr_logfile_backups": _NO_LOG_FILES,
    "stdout_capture_maxbytes": _NO_EVENTS,
    "stderr_capture_maxbytes": _NO_EVENTS,
    "stdout_events_enabled": _NO_EVENTS,
    "stderr_events_enabled": _NO_EVENTS,
    "stdout_syslog": "no equivalent; pysuper writes program output to its stdout and stderr",
    "stderr_syslog": "no equivalent; pysuper writes program output to its stdout and stderr",
    "umask": "no equivalent; set it in the command, e.g. sh -c 'umask 002 && exec ...'",
    "serverurl": "not needed; pysuper has no XML-RPC server",
    "process_name": "used for the program name",
    "numprocs_start": "used for the program names",
}

_SUPERVISORD_NOTES = {
    "nodaemon": "not needed; pysuper always runs in the foreground",
    "logfile": "not needed; pysuper writes its own messages to stderr",
    "logfile_maxbytes": "not needed; pysuper writes its own messages to stderr",
    "logfile_backups": "not needed; pysuper writes its own messages to stderr",
    "loglevel": "not needed; pysuper writes its own messages to stderr",
    "pidfile": "not needed; pysuper writes no pid file",
    "childlogdir": _NO_LOG_FILES,
    "user": "no equivalent; run pysuper itself as that user (Dockerfile USER)",
    "directory": "not needed; supervisord uses it only when it daemonizes",
    "umask": "no equivalent; set it in the commands, e.g. sh -c 'umask 002 && exec ...'",
    "minfds": "no equivalent; set limits with the container runtime (docker run --ulimit nofile=...)",
    "minprocs": "no equivalent; set limits with the container runtime (docker run --ulimit nproc=...)",
    "identifier": "not needed; pysuper has no XML-RPC server",
    "nocleanup": _NO_LOG_FILES,
    "strip_ansi": "no equivalent; pysuper relays program output unchanged",
    "silent": "not needed; pysuper writes program output to stdout and stderr",
    "environment": "added to the environment of every program below",
}

_SECTION_NOTES = {
    "unix_http_server": "not needed; `pysuper ctl` talks to pysuper over its control socket "
                        "([pysuper] control_socket)",
    "inet_http_server": "not needed; pysuper has no HTTP server, `pysuper ctl` uses a Unix socket",
    "supervisorctl": "not needed; use `pysuper ctl`",
    "rpcinterface": "not needed; pysuper has no XML-RPC interface",
    "ctlplugin": "no equivalent; supervisorctl plugins do not apply to `pysuper ctl`",
}

_SECRET_OPTIONS = ("password",)

_PYSUPER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_SPEC = re.compile(r"[#0 +\-]*\d*(?:\.\d*)?[hlL]?[diouxXeEfFgGcrsa]")
_SIGNALS = {sig.name: int(sig) for sig in signal.Signals}


class ConvertError(Exception):
    """The input cannot be converted; str() is one line naming the file and line."""

    def __init__(self, message: str, source: Optional[str] = None, line: Optional[int] = None):
        super().__init__(message)
        self.message = message
        self.source = source
        self.line = line

    def __str__(self) -> str:
        if self.source is None:
            return self.message
        if self.line is None:
            return "%s: %s" % (self.source, self.message)
        return "%s:%d: %s" % (self.source, self.line, self.message)


# ---------------------------------------------------------------------------------------------
# TOML output


def toml_string(value: str) -> str:
    """A TOML string for value: a literal string when that reads better, else an escaped one."""
    plain = all(ch == "\t" or (" " <= ch and ch != "\x7f") for ch in value)
    if plain and "'" not in value and ('"' in value or "\\" in value):
        return "'%s'" % value
    out = []
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch < " " or ch == "\x7f":
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    return '"%s"' % "".join(out)


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else toml_string(key)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(toml_value(item) for item in value)
    raise TypeError("cannot write %r as TOML" % (value,))


def _comment_text(text: str) -> str:
    """Text safe inside a TOML comment: one line, no control characters."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t" or (ch >= " " and ch != "\x7f"):
            out.append(ch)
        else:
            out.append("\\x%02x" % ord(ch))
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Values that may refer to variables read when pysuper runs
#
# An expanded value is a plain string in which each deferred variable is a placeholder token; the
# tokens are made only of letters and digits so that supervisord's environment lexer treats them
# exactly like the text of a variable's value would be treated.


class _EnvRef:
    def __init__(self, name: str, now: Optional[str] = None):
        self.name = name
        self.now = now  # the value to use when it cannot be deferred (host_node_name)


class _Refs:
    def __init__(self, prefix: str):
        self.prefix = prefix
        self.pattern = re.compile(re.escape(prefix) + r"(\d+)Z")
        self.refs: List[_EnvRef] = []
        self.index: Dict[Tuple[str, Optional[str]], int] = {}

    def token(self, name: str, now: Optional[str] = None) -> str:
        key = (name, now)
        if key not in self.index:
            self.index[key] = len(self.refs)
            self.refs.append(_EnvRef(name, now))
        return "%s%dZ" % (self.prefix, self.index[key])

    def has_refs(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def render(self, text: str) -> str:
        """pysuper syntax: literal $ doubled, deferred variables as ${NAME}."""
        text = text.replace("$", "$$")
        return self.pattern.sub(lambda m: "${%s}" % self.refs[int(m.group(1))].name, text)

    def resolve(self, text: str, fail: Callable[[str], None]) -> str:
        """Replace deferred variables with their values now."""
        def value(match):
            ref = self.refs[int(match.group(1))]
            if ref.now is not None:
                return ref.now
            if ref.name not in os.environ:
                fail("%%(ENV_%s)s: %s is not set; it is needed now because this setting has no "
                     "${VAR} expansion in pysuper" % (ref.name, ref.name))
            return os.environ[ref.name]
        return self.pattern.sub(value, text)


class _Scope:
    """What %(name)s can refer to in one option of one section."""

    def __init__(self, names: Dict[str, object], env_layers: List[Dict[str, str]]):
        self.names = names
        self.env_layers = env_layers


# ---------------------------------------------------------------------------------------------
# Converted programs


class _Program:
    def __init__(self, name: str, section: str, origin: str, priority: int, group: str):
        self.name = name
        self.group = group
        self.section = section
        self.origin = origin
        self.priority = priority
        self.keys: List[Tuple[str, object]] = []
        self.comments: List[str] = []
        self.environment: Dict[str, str] = {}
        self.notes: List[str] = []


class _Converter:
    def __init__(self, main_display: str, main_dir: str):
        self.main_display = main_display
        self.main_dir = main_dir
        self.parser = configparser.RawConfigParser(inline_comment_prefixes=_INLINE_COMMENTS, strict=False)
        self.texts: List[str] = []
        self.section_loc: Dict[str, Tuple[str, int]] = {}
        self.option_loc: Dict[Tuple[str, str], Tuple[str, int, str]] = {}
        self.file_sections: Dict[str, List[str]] = {}
        self.included: List[str] = []
        self.include_misses: List[str] = []
        self.warnings: List[str] = []
        self.header: List[str] = []
        self.footer: List[str] = []
        self.refs = _Refs("PYSUPERREF")
        self.here_used: List[str] = []
        self.host_name = platform.node() or "localhost"

    # -- reading ------------------------------------------------------------------------------

    def read(self, text: str, display: str, here: str):
        try:
            self.parser.read_string(text, source=display)
        except configparser.MissingSectionHeaderError as exc:
            line = _line_of(text, exc.lineno)
            raise ConvertError("expected a [section] header before %r" % line, display, exc.lineno) from None
        except configparser.ParsingError as exc:
            lineno = exc.errors[0][0]
            line = _line_of(text, lineno)
            raise ConvertError("cannot parse %r: expected name = value, a [section] header or an "
                               "indented continuation line" % line, display, lineno) from None
        self.texts.append(text)
        self.file_sections[display] = self._locate(text, display, here)

    def _locate(self, text: str, display: str, here: str) -> List[str]:
        """Record where each section and option is written (configparser does not keep lines)."""
        sections = []
        section = None
        option_indent = None
        for number, raw in enumerate(text.splitlines(), 1):
            stripped = _strip_inline_comment(raw).strip()
            if not stripped or stripped[0] in _INLINE_COMMENTS:
                continue
            indent = len(raw) - len(raw.lstrip())
            if option_indent is not None and indent > option_indent:
                continue  # continuation line of a value
            match = configparser.RawConfigParser.SECTCRE.match(stripped)
            if match:
                section = match.group("header")
                option_indent = None
                self.section_loc.setdefault(section, (display, number))
                sections.append(section)
                continue
            match = configparser.RawConfigParser.OPTCRE.match(stripped)
            if match and section is not None:
                option = match.group("option").rstrip().lower()
                self.option_loc[(section, option)] = (display, number, here)
                option_indent = indent
        return sections

    def read_includes(self):
        if not self.parser.has_section("include"):
            return
        if not self.parser.has_option("include", "files"):
            raise self.error("include", None, "[include] has no files setting (e.g. files = conf.d/*.conf)")
        files = self.expand_literal("include", "files", self.parser.get("include", "files"),
                                    _Scope({"host_node_name": self.token_host()}, []))
        for pattern in files.split():
            path = os.path.join(self.main_dir, pattern)
            matches = sorted(glob.glob(path))
            if not matches:
                self.include_misses.append(pattern)
                self.warn("include", "files", "[include] files: no file matches %s" % pattern)
                continue
            for filename in matches:
                display = self.display_path(filename)
                try:
                    with open(filename, "rb") as handle:
                        text = _decode(handle.read(), display)
                except OSError as exc:
                    raise ConvertError("cannot read the included file: %s" % (exc.strerror or exc),
                                       display) from None
                self.included.append(display)
                self.read(text, display, os.path.dirname(os.path.abspath(filename)))
                if "include" in self.file_sections[display]:
                    self.warnings.append(
                        "%s: [include] in an included file is ignored (supervisord reads [include] only "
                        "from the main file)" % display)

    def display_path(self, filename: str) -> str:
        """Included files are named the way the main file was: absolute, or relative to the cwd."""
        absolute = os.path.abspath(filename)
        if os.path.isabs(self.main_display):
            return absolute
        return os.path.relpath(absolute)

    # -- locations, errors, warnings ------------------------------------------------------------

    def where(self, section: str, option: Optional[str]) -> Tuple[Optional[str], Optional[int]]:
        if option is not None:
            for owner in (section, self.parser.default_section):
                loc = self.option_loc.get((owner, option))
                if loc is not None:
                    return loc[0], loc[1]
        loc = self.section_loc.get(section)
        if loc is not None:
            return loc
        return self.main_display, None

    def here_of(self, section: str, option: Optional[str]) -> str:
        for owner in (section, self.parser.default_section):
            loc = self.option_loc.get((owner, option))
            if loc is not None:
                return loc[2]
        loc = self.section_loc.get(section)
        if loc is not None and loc[0] != self.main_display:
            return os.path.dirname(os.path.join(self.main_dir, loc[0]))
        return self.main_dir

    def error(self, section: str, option: Optional[str], message: str) -> ConvertError:
        source, line = self.where(section, option)
        return ConvertError(message, source, line)

    def warn(self, section: str, option: Optional[str], message: str):
        source, line = self.where(section, option)
        self.warnings.append(str(ConvertError(message, source, line)))

    def origin(self, section: str) -> str:
        source, line = self.where(section, None)
        return "%s:%d" % (source, line) if line else source

    # -- expansion --------------------------------------------------------------------------------

    def token_host(self) -> str:
        return self.refs.token("HOSTNAME", self.host_name)

    def expand(self, section: str, option: str, text: str, scope: _Scope, literal: bool) -> str:
        """Expand supervisord's %(name)s formats in text, as supervisord's `s % expansions` would."""
        label = "[%s] %s" % (section, option)

        def fail(message):
            raise self.error(section, option, "%s: %s" % (label, message))

        out = []
        pos = 0
        while True:
            start = text.find("%", pos)
            if start < 0:
                out.append(text[pos:])
                break
            out.append(text[pos:start])
            if text.startswith("%%", start):
                out.append("%")
                pos = start + 2
                continue
            if not text.startswith("%(", start):
                fail("cannot expand %r: a %% must start %%(name)s or be written %%%%" % text)
            close = text.find(")", start + 2)
            if close < 0:
                fail("cannot expand %r: %%( without a closing )" % text)
            key = text[start + 2:close]
            spec = _SPEC.match(text, close + 1)
            if spec is None:
                fail("cannot expand %r: %%(%s) must be followed by a format such as s or 02d" % (text, key))
            out.append(self._lookup(section, option, key, spec.group(), scope, literal, fail))
            pos = spec.end()
        value = "".join(out)
        if literal:
            value = self.refs.resolve(value, fail)
        return value

    def _lookup(self, section, option, key, spec, scope, literal, fail) -> str:
        if key == "here":
            here = self.here_of(section, option)
            if here not in self.here_used:
                self.here_used.append(here)
            value = here
        elif key in scope.names:
            value = scope.names[key]
        elif key.startswith("ENV_") and len(key) > 4:
            name = key[4:]
            for layer in scope.env_layers:
                if name in layer:
                    value = layer[name]
                    break
            else:
                value = self.refs.token(name)
        else:
            known = sorted(set(scope.names) | {"here", "ENV_<NAME>"})
            fail("unknown name %%(%s)s; %s can use %s" % (key, option, ", ".join(known)))
        if isinstance(value, str) and spec != "s":
            if self.refs.has_refs(value):
                if not literal:
                    fail("%%(%s)%s: only %%(%s)s can be converted here, because the value is read when "
                         "pysuper starts the program" % (key, spec, key))
                value = self.refs.resolve(value, fail)
        if spec == "s" and isinstance(value, str):
            return value
        if isinstance(value, str) and spec[-1] in "diouxXeEfFgGc":
            fail("cannot format %%(%s)%s: %s is text, not a number; use %%(%s)s" % (key, spec, key, key))
        try:
            return ("%" + spec) % (value,)
        except (TypeError, ValueError) as exc:
            fail("cannot format %%(%s)%s: %s" % (key, spec, exc))
        raise AssertionError("unreachable")

    def expand_literal(self, section: str, option: str, text: str, scope: _Scope) -> str:
        return self.expand(section, option, text, scope, literal=True)

    def environment(self, section: str, option: str, text: str, scope: _Scope, twice: bool = False
                    ) -> Dict[str, str]:
        """Parse KEY=val,KEY2="val 2" exactly as supervisord's dict_of_key_value_pairs does."""
        expanded = self.expand(section, option, text, scope, literal=False)
        if twice:  # [supervisord] environment is expanded a second time by supervisord
            expanded = self.expand(section, option, expanded, scope, literal=False)
        lexer = shlex.shlex(expanded)
        lexer.wordchars += "/.+-():"
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise self.error(section, option, "[%s] %s: cannot parse %r: %s"
                             % (section, option, text, exc)) from None
        result: Dict[str, str] = {}
        i = 0
        while i < len(tokens):
            triple = tokens[i:i + 3]
            if len(triple) != 3 or triple[1] != "=":
                raise self.error(section, option, "[%s] %s: cannot parse %r: expected KEY=value pairs "
                                 "separated by commas, with values quoted when they contain other "
                                 "characters than letters, digits and /.+-():_ (e.g. KEY=\"a b\",K2=\"x,y\")"
                                 % (section, option, text))
            key = triple[0]
            if self.refs.has_refs(key) or not re.match(r"^[^=\0]+$", key):
                raise self.error(section, option, "[%s] %s: invalid variable name %r"
                                 % (section, option, key))
            result[key] = triple[2].strip("'\"")
            i += 4
        return result

    # -- typed options ---------------------------------------------------------------------------

    def raw(self, section: str, option: str) -> Optional[str]:
        return self.parser.get(section, option, fallback=None)

    def literal(self, section: str, option: str, scope: _Scope) -> Optional[str]:
        value = self.raw(section, option)
        if value is None:
            return None
        return self.expand_literal(section, option, value, scope)

    def integer(self, section: str, option: str, scope: _Scope, minimum: Optional[int] = None
                ) -> Optional[int]:
        value = self.literal(section, option, scope)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise self.error(section, option, "[%s] %s = %s: expected a whole number"
                             % (section, option, value)) from None
        if minimum is not None and number < minimum:
            raise self.error(section, option, "[%s] %s = %s: expected a whole number >= %d"
                             % (section, option, value, minimum))
        return number

    def boolean(self, section: str, option: str, scope: _Scope) -> Optional[bool]:
        value = self.literal(section, option, scope)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in _TRUTHY:
            return True
        if lowered in _FALSY:
            return False
        raise self.error(section, option, "[%s] %s = %s: expected true or false"
                         % (section, option, value))

    def restart(self, section: str, scope: _Scope) -> Optional[str]:
        value = self.literal(section, "autorestart", scope)
        if value is None:
            return None
        lowered = value.lower()
        if lowered in _TRUTHY:
            return "always"
        if lowered in _FALSY:
            return "never"
        if lowered == "unexpected":
            return "on-failure"
        raise self.error(section, "autorestart", "[%s] autorestart = %s: expected true, false or unexpected"
                         % (section, value))

    def exit_codes(self, section: str, scope: _Scope) -> Optional[List[int]]:
        value = self.literal(section, "exitcodes", scope)
        if value is None:
            return None
        if not value:
            return []
        codes = []
        for item in value.split(","):
            try:
                code = int(item)
            except ValueError:
                code = -1
            if not 0 <= code <= 255:
                raise self.error(section, "exitcodes", "[%s] exitcodes = %s: expected exit codes between "
                                 "0 and 255 separated by commas (e.g. 0,2)" % (section, value))
            codes.append(code)
        return codes

    def signal(self, section: str, scope: _Scope) -> Optional[str]:
        value = self.literal(section, "stopsignal", scope)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            name = value.strip().upper()
            if not name.startswith("SIG"):
                name = "SIG" + name
            number = getattr(signal, name, None)
            if not isinstance(number, int) or name.startswith("SIG_"):
                number = None
        try:
            return signal.Signals(number).name[3:]
        except ValueError:
            raise self.error(section, "stopsignal", "[%s] stopsignal = %s: expected a signal name such as "
                             "TERM, INT, QUIT, HUP, KILL, USR1 or a signal number"
                             % (section, value)) from None

    def name(self, section: str, option: Optional[str], value: str) -> str:
        name = value.strip()
        for character in " :/":
            if character in name:
                raise self.error(section, option, "[%s]: invalid name %r (names cannot contain %r)"
                                 % (section, value, character))
        if not name:
            raise self.error(section, option, "[%s]: the name is empty" % section)
        return name

    # -- sections ------------------------------------------------------------------------------

    def convert(self) -> str:
        self.supervisord_env: Dict[str, str] = {}
        if self.parser.has_section("supervisord"):
            self.convert_supervisord()
        defaults = self.parser.defaults()
        if defaults:
            self.header.append("# [DEFAULT] (%s): its settings apply to every program, as in supervisord"
                               % self.origin(self.parser.default_section))
            for option, raw in defaults.items():
                self.header.append("#   %s = %s" % (option, _comment_text(raw)))
        if self.parser.has_section("include"):
            self.header.append("# [include] (%s): files = %s: read, and the programs of the included files "
                               "are converted below" % (self.origin("include"),
                                                        _comment_text(self.raw("include", "files") or "")))
        groups = []  # (priority, name, [programs])
        members: Dict[str, str] = {}
        for section in self.parser.sections():
            if section.startswith("group:"):
                groups.append(self.convert_group(section, members))
        for section in self.parser.sections():
            kind, sep, rest = section.partition(":")
            if kind == "program" and sep and section not in members:
                name = self.name(section, None, rest)
                priority, programs = self.convert_program(section, name, None)
                groups.append((priority, name, programs))
        for section in self.parser.sections():
            kind, sep, _ = section.partition(":")
            if section in ("supervisord", "include") or (sep and kind in ("program", "group")):
                continue
            self.convert_other(section, kind if sep or kind in _SECTION_NOTES else "")

        ordered: List[_Program] = []
        for _priority, _name, programs in sorted(groups, key=lambda g: (g[0], g[1])):
            ordered.extend(sorted(programs, key=lambda p: (p.priority, p.name)))
        if not ordered:
            hint = ""
            if self.include_misses:
                hint = " (the [include] pattern %s matched no file)" % ", ".join(self.include_misses)
            raise ConvertError("no [program:NAME] section to convert%s" % hint, self.main_display)
        self.unique_names(ordered)
        return self.render(ordered)

    def own_options(self, section: str) -> List[str]:
        """The options written in the section itself, without those inherited from [DEFAULT]."""
        defaults = self.parser.defaults()
        return [option for option in self.parser.options(section)
                if option not in defaults or (section, option) in self.option_loc]

    def pre_scope(self, program_name: str, group_name: str) -> _Scope:
        names = {"program_name": program_name, "group_name": group_name,
                 "host_node_name": self.token_host()}
        return _Scope(names, [self.supervisord_env])

    def convert_supervisord(self):
        section = "supervisord"
        lines = ["# [supervisord] (%s)" % self.origin(section)]
        for option in self.own_options(section):
            raw = self.raw(section, option)
            note = _SUPERVISORD_NOTES.get(option)
            if option == "environment":
                scope = _Scope({"host_node_name": self.token_host()}, [])
                self.supervisord_env = self.environment(section, option, raw, scope, twice=True)
            if note is None:
                note = "unknown to supervisord (ignored there too)"
                self.warn(section, option, "unknown option %s in [supervisord]; kept as a comment" % option)
            lines.append("#   %s = %s: %s" % (option, _comment_text(raw), note))
        self.header.extend(lines)

    def convert_group(self, section: str, members: Dict[str, str]):
        group_name = self.name(section, None, section.partition(":")[2])
        scope = _Scope({"host_node_name": self.token_host()}, [self.supervisord_env])
        value = self.literal(section, "programs", scope)
        names = [item.strip() for item in value.split(",")] if value else []
        priority = self.integer(section, "priority", scope)
        programs: List[_Program] = []
        for program in names:
            program_section = "program:%s" % program
            if not self.parser.has_section(program_section):
                if self.parser.has_section("fcgi-program:%s" % program):
                    continue  # reported with the fcgi-program section
                raise self.error(section, "programs", "[%s] names unknown program %s" % (section, program))
            members[program_section] = group_name
            programs.extend(self.convert_program(program_section, self.name(program_section, None, program),
                                                 group_name)[1])
        programs.sort(key=lambda p: (p.priority, p.name))
        member_names = ", ".join(p.name for p in programs) or "none"
        line = "# [%s] (%s): pysuper has no groups; its programs are converted one by one (%s)" % (
            section, self.origin(section), member_names)
        self.header.append(line)
        for option in self.own_options(section):
            if option not in ("programs", "priority"):
                self.warn(section, option, "unknown option %s in [%s]; kept as a comment" % (option, section))
            self.header.append("#   %s = %s" % (option, _comment_text(self.raw(section, option))))
        return (999 if priority is None else priority, group_name, programs)

    def convert_other(self, section: str, kind: str):
        origin = self.origin(section)
        options = self.own_options(section)
        if kind in _SECTION_NOTES:
            self.header.append("# [%s] (%s): %s" % (section, origin, _SECTION_NOTES[kind]))
            target = self.header
        elif kind in ("eventlistener", "fcgi-program"):
            if kind == "eventlistener":
                reason = "pysuper has no event protocol, so event listeners cannot run under it"
                hint = ("If this listener stops supervisord when a program fails, set critical = true on "
                        "that program instead.")
            else:
                reason = "pysuper does not create FastCGI sockets"
                hint = "Run the program with its own listening socket as an ordinary [programs.NAME]."
            self.footer.append("# [%s] (%s) is not converted: %s." % (section, origin, reason))
            self.footer.append("# %s" % hint)
            self.warn(section, None, "[%s] is not supported (%s); it is kept as a comment"
                      % (section, reason))
            target = self.footer
        else:
            self.header.append("# [%s] (%s): unknown to supervisord (ignored there too)" % (section, origin))
            self.warn(section, None, "unknown section [%s]; kept as a comment" % section)
            target = self.header
        for option in options:
            raw = self.raw(section, option)
            shown = "(hidden)" if option in _SECRET_OPTIONS else _comment_text(raw)
            target.append("#   %s = %s" % (option, shown))
        if target is self.footer:
            target.append("")

    def convert_program(self, section: str, program_name: str, group: Optional[str]
                        ) -> Tuple[int, List[_Program]]:
        group_name = group or program_name
        scope = self.pre_scope(program_name, group_name)
        priority = self.integer(section, "priority", scope)
        autostart = self.boolean(section, "autostart", scope)
        restart = self.restart(section, scope)
        start_seconds = self.integer(section, "startsecs", scope, minimum=0)
        start_retries = self.integer(section, "startretries", scope, minimum=0)
        stop_signal = self.signal(section, scope)
        stop_timeout = self.integer(section, "stopwaitsecs", scope, minimum=0)
        stopasgroup = self.boolean(section, "stopasgroup", scope)
        killasgroup = self.boolean(section, "killasgroup", scope)
        exit_codes = self.exit_codes(section, scope)
        self.boolean(section, "redirect_stderr", scope)
        numprocs = self.integer(section, "numprocs", scope, minimum=0)
        numprocs_start = self.integer(section, "numprocs_start", scope, minimum=0) or 0
        user = self.literal(section, "user", scope)
        for option in ("umask",):
            self.literal(section, option, scope)
        if numprocs is None:
            numprocs = 1
        process_name = self.raw(section, "process_name")
        if process_name is None:
            process_name = "%(program_name)s"
        if numprocs > 1 and "%(process_num)" not in process_name:
            raise self.error(section, "numprocs", "[%s] numprocs = %d: process_name must contain "
                             "%%(process_num)s (e.g. process_name=%%(program_name)s_%%(process_num)02d)"
                             % (section, numprocs))
        if stopasgroup and killasgroup is False:
            raise self.error(section, "killasgroup", "[%s]: stopasgroup=true needs killasgroup=true"
                             % section)
        if self.raw(section, "command") is None:
            raise self.error(section, None, "[%s] has no command" % section)

        programs = []
        made = []
        for process_num in range(numprocs_start, numprocs_start + numprocs):
            names = dict(scope.names)
            names.update({"process_num": process_num, "numprocs": numprocs})
            env_scope = _Scope(names, [self.supervisord_env])
            env_raw = self.raw(section, "environment")
            program_env = self.environment(section, "environment", env_raw, env_scope) if env_raw else {}
            full = _Scope(names, [program_env, self.supervisord_env])
            command = self.expand(section, "command", self.raw(section, "command"), full, literal=False)
            directory = self.raw(section, "directory")
            if directory is not None:
                directory = self.expand(section, "directory", directory, full, literal=False)
            name = self.name(section, "process_name",
                             self.expand_literal(section, "process_name", process_name, full))
            try:
                shlex.split(command)
            except ValueError as exc:
                raise self.error(section, "command", "[%s] command: cannot split %r as supervisord would: %s"
                                 % (section, self.raw(section, "command"), exc)) from None
            if not command.strip():
                raise self.error(section, "command", "[%s] command is empty" % section)
            if "\n" in command and shlex.split(command) == shlex.split(command.replace("\n", " ")):
                command = command.replace("\n", " ")  # continuation lines only separate words

            program = _Program(name, section, self.origin(section), 999 if priority is None else priority,
                               group_name)
            program.keys.append(("command", self.refs.render(command)))
            if directory is not None:
                program.keys.append(("directory", self.refs.render(directory)))
            if user is not None:
                program.keys.append(("user", int(user) if user.isdigit() else user))
            if autostart is not None:
                program.keys.append(("autostart", autostart))
            if restart is not None:
                program.keys.append(("restart", restart))
            if exit_codes is not None:
                program.keys.append(("exit_codes", exit_codes))
            if start_seconds is not None:
                program.keys.append(("start_seconds", start_seconds))
            if start_retries is not None:
                program.keys.append(("start_retries", start_retries))
            if stop_signal is not None:
                program.keys.append(("stop_signal", stop_signal))
            if stop_timeout is not None:
                program.keys.append(("stop_timeout", stop_timeout))
            environment = dict(self.supervisord_env)
            environment.update(program_env)
            host = self.token_host()
            if any(host in value for value in [command, directory or ""] + list(environment.values())):
                program.notes.append("# note: %(host_node_name)s became ${HOSTNAME}, which Docker and podman "
                                     "set in containers; elsewhere export HOSTNAME before starting pysuper")
            program.environment = {key: self.refs.render(value) for key, value in environment.items()}
            for key, value in environment.items():
                if re.search(r"\$\{?[A-Za-z_]", value):
                    program.notes.append(
                        "# note: environment %s keeps a literal $ (supervisord does not expand $VAR in "
                        "environment values); write ${VAR} to have pysuper expand a variable" % key)
            programs.append(program)
            made.append(name)

        if not programs:
            self.footer.append("# [%s] (%s) is not converted: numprocs = 0, so supervisord starts no process "
                               "from it." % (section, self.origin(section)))
            self.footer.append("#   command = %s" % _comment_text(self.raw(section, "command")))
            self.footer.append("")
            self.warn(section, "numprocs", "[%s] numprocs = 0: no program to convert; kept as a comment"
                      % section)
        comments = self.program_comments(section, group, made, numprocs, restart, start_seconds,
                                          start_retries, stop_timeout)
        for program in programs:
            program.comments = comments + program.notes
        return (999 if priority is None else priority), programs

    def program_comments(self, section, group, made, numprocs, restart, start_seconds, start_retries,
                         stop_timeout):
        out = []
        if group is not None:
            out.append("# part of [group:%s]" % group)
        for option in self.parser.options(section):
            raw = self.raw(section, option)
            if option in _MAPPED:
                continue
            if option == "priority":
                note = ("supervisord's start order (lower first, stopped in reverse); the programs here "
                        "are listed in that order")
            elif option == "numprocs":
                note = "one of %d programs made from [%s]: %s" % (numprocs, section, ", ".join(made))
            elif option == "redirect_stderr":
                note = ("not needed; pysuper relays the program's stderr to its own stderr, which "
                        "`docker logs` shows along with stdout")
            elif option in ("stdout_logfile", "stderr_logfile"):
                note = _logfile_note(option[:6], raw)
            elif option in _PROGRAM_NOTES:
                note = _PROGRAM_NOTES[option]
            else:
                note = "unknown to supervisord (ignored there too)"
                self.warn(section, option, "unknown option %s in [%s]; kept as a comment" % (option, section))
            out.append("# %s = %s: %s" % (option, _comment_text(raw), note))
        if restart == "never" and start_retries != 0 and (start_seconds is None or start_seconds > 0):
            out.append("# note: supervisord retried a start that failed within startsecs even with "
                       "autorestart=false; with restart = \"never\" pysuper does not")
        if stop_timeout is not None and stop_timeout > 9:
            out.append("# note: on shutdown pysuper gives all programs [pysuper] shutdown_timeout seconds "
                       "(default 9); raise it (and docker stop --time) if this program needs its full "
                       "stop_timeout")
        return out

    def unique_names(self, programs: List[_Program]):
        """pysuper names: letters, digits, '_', '-', '.'; unique. Valid names are kept first."""
        taken = set()
        keep = set()
        for program in programs:
            if _PYSUPER_NAME.match(program.name) and program.name not in taken:
                taken.add(program.name)
                keep.add(id(program))
        for program in programs:
            if id(program) in keep:
                continue
            base = re.sub(r"[^A-Za-z0-9_.-]", "_", program.name)
            if not _PYSUPER_NAME.match(base):
                base = "_" + base
            candidates = [base]
            if program.group != program.section.partition(":")[2]:
                candidates.append("%s_%s" % (re.sub(r"[^A-Za-z0-9_.-]", "_", program.group), base))
            candidates += ["%s_%d" % (base, n) for n in range(2, 1000)]
            name = next(c for c in candidates if c not in taken)
            taken.add(name)
            program.comments.insert(0, "# renamed from %s: pysuper program names are unique and use letters, "
                                       "digits, '_', '-' and '.'" % program.name)
            program.name = name

    # -- output --------------------------------------------------------------------------------

    def render(self, programs: List[_Program]) -> str:
        lines = ["# pysuper configuration converted from %s by `pysuper convert`." % self.main_display,
                 "# Settings that pysuper does not need or cannot express are kept as comments."]
        if self.included:
            lines.append("# Included files: %s" % ", ".join(self.included))
        for here in self.here_used:
            lines.append("# %%(here)s was expanded to %s" % here)
        if self.header:
            lines.append("#")
            lines.extend(self.header)
        for program in programs:
            lines.append("")
            lines.append("[programs.%s]" % toml_key(program.name))
            lines.append("# from [%s] (%s)" % (program.section, program.origin))
            for key, value in program.keys:
                lines.append("%s = %s" % (key, toml_value(value)))
            lines.extend(program.comments)
            if program.environment:
                lines.append("")
                lines.append("[programs.%s.environment]" % toml_key(program.name))
                for key, value in program.environment.items():
                    lines.append("%s = %s" % (toml_key(key), toml_string(value)))
        if self.footer:
            lines.append("")
            lines.extend(self.footer)
        while lines and lines[-1] == "":
            lines.pop()
        lines = [_comment_text(line) if line.startswith("#") else line for line in lines]
        return "\n".join(lines) + "\n"


def _logfile_note(stream: str, raw: str) -> str:
    value = raw.strip()
    target = {"stdout": ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"),
              "stderr": ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2")}
    if value in target[stream]:
        return ("not needed; pysuper relays the program's %s to its own %s, each line prefixed with the "
                "program name" % (stream, stream))
    if value in target["stdout" if stream == "stderr" else "stderr"]:
        return ("pysuper relays the program's %s to its own %s (not to the other stream), each line "
                "prefixed with the program name" % (stream, stream))
    if value.lower() in ("none", "off"):
        return ("pysuper does not discard output; the program's %s goes to pysuper's %s" % (stream, stream))
    return ("pysuper writes no log files; the program's %s goes to pysuper's %s (read it with docker logs "
            "or redirect pysuper's output)" % (stream, stream))


def _strip_inline_comment(line: str) -> str:
    for index in range(1, len(line)):
        if line[index] in _INLINE_COMMENTS and line[index - 1].isspace():
            return line[:index]
    return line


def _line_of(text: str, lineno: int) -> str:
    lines = text.splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()
    return ""


def _decode(data: bytes, display: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConvertError("not UTF-8 text (byte %d)" % exc.start, display, line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def convert_text(text: str, display: str = "<stdin>", main_dir: Optional[str] = None,
                 warnings: Optional[List[str]] = None) -> Tuple[str, List[str]]:
    """Convert supervisord INI text; return (TOML text, warnings). Raise ConvertError.

    Warnings are also appended to `warnings` as they are found, so they survive an error."""
    main_dir = os.path.abspath(main_dir or os.getcwd())
    converter = _Converter(display, main_dir)
    if warnings is not None:
        converter.warnings = warnings
    while converter.refs.prefix in text:
        converter.refs = _Refs(converter.refs.prefix + "X")
    converter.read(text, display, main_dir)
    converter.read_includes()
    if any(converter.refs.prefix in t for t in converter.texts[1:]):
        prefix = converter.refs.prefix
        while any(prefix in t for t in converter.texts):
            prefix += "X"
        converter.refs = _Refs(prefix)
    return converter.convert(), converter.warnings


def convert_file(path: str, warnings: Optional[List[str]] = None) -> Tuple[str, List[str]]:
    """Convert a supervisord config file ('-' for stdin)."""
    if path == "-":
        return convert_text(_decode(sys.stdin.buffer.read(), "<stdin>"), "<stdin>", os.getcwd(), warnings)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConvertError("cannot read the supervisord config: %s" % (exc.strerror or exc), path) from None
    return convert_text(_decode(data, path), path, os.path.dirname(os.path.abspath(path)), warnings)


_DESCRIPTION = """\
Convert a supervisord config (INI) into a pysuper config (TOML), written to stdout.
Reads SUPERVISORD_CONF, or stdin when it is missing or '-'. [include] files are read
relative to the including file. Settings pysuper does not need or cannot express are
kept as comments; [eventlistener:x] and [fcgi-program:x] are reported on stderr."""

_EPILOG = """\
%(ENV_X)s becomes ${X} in command, directory and environment (read when pysuper
starts the program); a literal $ is written $$ there. Check the result with
`pysuper check -c pysuper.toml`.
Exit status: 0 converted; 2 the input cannot be read or converted."""


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, "%s: %s\n" % (self.prog, message))


def main(argv: Optional[List[str]] = None) -> int:
    parser = _ArgumentParser(prog=PROG, description=_DESCRIPTION, epilog=_EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", nargs="?", default="-", metavar="SUPERVISORD_CONF",
                        help="the supervisord config to convert (default: stdin)")
    parser.add_argument("-o", "--output", metavar="FILE",
                        help="write the TOML config to FILE instead of stdout")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    warnings: List[str] = []
    try:
        output, _ = convert_file(args.file, warnings)
    except ConvertError as exc:
        for warning in warnings:
            sys.stderr.write("%s: warning: %s\n" % (PROG, _comment_text(warning)))
        sys.stderr.write("%s: error: %s\n" % (PROG, _comment_text(str(exc))))
        return 2
    for warning in warnings:
        sys.stderr.write("%s: warning: %s\n" % (PROG, _comment_text(warning)))
    data = output.encode("utf-8")
    if args.output and args.output != "-":
        try:
            with open(args.output, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            sys.stderr.write("%s: error: cannot write %s: %s\n" % (PROG, args.output, exc.strerror or exc))
            return 2
    else:
        try:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
