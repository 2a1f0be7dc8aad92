"""Typed readers for supervisord options: each expands an option's value and checks it as
supervisord's own datatypes would, raising a ConvertError that names the file, line and option."""

import re
import shlex
import signal
from typing import Dict, List, Optional

from pysuper import signals
from pysuper.convert.expand import Expander, Scope

TRUTHY = ("yes", "true", "on", "1")
FALSY = ("no", "false", "off", "0")


def literal(ex: Expander, section: str, option: str, scope: Scope) -> Optional[str]:
    """The option's value with every variable resolved now, or None when it is not set."""
    value = ex.source.raw(section, option)
    if value is None:
        return None
    return ex.literal(section, option, value, scope)


def octal(ex: Expander, section: str, option: str, scope: Scope) -> Optional[int]:
    """An octal value as supervisord reads it (umask = 022), or None when it is not set."""
    value = literal(ex, section, option, scope)
    if value is None:
        return None
    try:
        number = int(value, 8)
    except ValueError:
        raise ex.source.error(section, option, "[%s] %s = %s: expected an octal number such as 022"
                              % (section, option, value)) from None
    if not 0 <= number <= 0o777:
        raise ex.source.error(section, option, "[%s] %s = %s: expected an octal number between 000 and 777"
                              % (section, option, value))
    return number


def integer(ex: Expander, section: str, option: str, scope: Scope, minimum: Optional[int] = None
            ) -> Optional[int]:
    value = literal(ex, section, option, scope)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise ex.source.error(section, option, "[%s] %s = %s: expected a whole number"
                              % (section, option, value)) from None
    if minimum is not None and number < minimum:
        raise ex.source.error(section, option, "[%s] %s = %s: expected a whole number >= %d"
                              % (section, option, value, minimum))
    return number


def boolean(ex: Expander, section: str, option: str, scope: Scope) -> Optional[bool]:
    value = literal(ex, section, option, scope)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in TRUTHY:
        return True
    if lowered in FALSY:
        return False
    raise ex.source.error(section, option, "[%s] %s = %s: expected true or false" % (section, option, value))


def restart(ex: Expander, section: str, scope: Scope) -> Optional[str]:
    """autorestart -> pysuper's restart policy."""
    value = literal(ex, section, "autorestart", scope)
    if value is None:
        return None
    lowered = value.lower()
    if lowered in TRUTHY:
        return "always"
    if lowered in FALSY:
        return "never"
    if lowered == "unexpected":
        return "on-failure"
    raise ex.source.error(section, "autorestart", "[%s] autorestart = %s: expected true, false or unexpected"
                          % (section, value))


def exit_codes(ex: Expander, section: str, scope: Scope) -> Optional[List[int]]:
    value = literal(ex, section, "exitcodes", scope)
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
            raise ex.source.error(section, "exitcodes", "[%s] exitcodes = %s: expected exit codes between "
                                  "0 and 255 separated by commas (e.g. 0,2)" % (section, value))
        codes.append(code)
    return codes


def stop_signal(ex: Expander, section: str, scope: Scope) -> Optional[str]:
    """stopsignal -> the signal's name without SIG ("TERM")."""
    value = literal(ex, section, "stopsignal", scope)
    if value is None:
        return None
    alias = getattr(signal, "SIG" + value.strip().upper(), None)  # supervisord also takes IOT, CLD, POLL
    try:
        return signals.name(signals.parse(alias if isinstance(alias, int) else value))[3:]
    except ValueError as exc:
        raise ex.source.error(section, "stopsignal", "[%s] stopsignal = %s: %s" % (section, value, exc)) from None


def name(ex: Expander, section: str, option: Optional[str], value: str) -> str:
    """A program or group name as supervisord accepts it."""
    result = value.strip()
    for character in " :/":
        if character in result:
            raise ex.source.error(section, option, "[%s]: invalid name %r (names cannot contain %r)"
                                  % (section, value, character))
    if not result:
        raise ex.source.error(section, option, "[%s]: the name is empty" % section)
    return result


def environment(ex: Expander, section: str, option: str, text: str, scope: Scope, twice: bool = False
                ) -> Dict[str, str]:
    """Parse KEY=val,KEY2="val 2" exactly as supervisord's dict_of_key_value_pairs does."""
    expanded = ex.expand(section, option, text, scope, literal=False)
    if twice:  # [supervisord] environment is expanded a second time by supervisord
        expanded = ex.expand(section, option, expanded, scope, literal=False)
    lexer = shlex.shlex(expanded)
    lexer.wordchars += "/.+-():"
    try:
        tokens = list(lexer)
    except ValueError as exc:
        raise ex.source.error(section, option, "[%s] %s: cannot parse %r: %s"
                              % (section, option, text, exc)) from None
    result: Dict[str, str] = {}
    i = 0
    while i < len(tokens):
        triple = tokens[i:i + 3]
        if len(triple) != 3 or triple[1] != "=":
            raise ex.source.error(section, option, "[%s] %s: cannot parse %r: expected KEY=value pairs "
                                  "separated by commas, with values quoted when they contain other "
                                  "characters than letters, digits and /.+-():_ (e.g. KEY=\"a b\",K2=\"x,y\")"
                                  % (section, option, text))
        key = triple[0]
        if ex.refs.has_refs(key) or not re.match(r"^[^=\0]+$", key):
            raise ex.source.error(section, option, "[%s] %s: invalid variable name %r"
                                  % (section, option, key))
        result[key] = triple[2].strip("'\"")
        i += 4
    return result
