"""supervisord's `%(name)s` expansion, and the variables that stay variables.

An expanded value is a plain string in which each variable read when pysuper runs (`%(ENV_X)s`
that supervisord took from its own environment, `%(host_node_name)s`) is a placeholder token. The
tokens are made only of letters and digits so that supervisord's lexers (shlex for a command, the
environment parser) treat them exactly like the text of a variable's value. At the end a token
becomes `${X}` (`render`) or, in settings pysuper does not expand, the value it has now
(`literal`), which is then recorded in the notes to be named next to the key.
"""

import os
import platform
import re
from typing import Callable, Dict, List, Optional, Tuple

_SPEC = re.compile(r"[#0 +\-]*\d*(?:\.\d*)?[hlL]?[diouxXeEfFgGcrsa]")
PREFIX = "PYSUPERREF"


class EnvRef:
    def __init__(self, name: str, now: Optional[str] = None):
        self.name = name
        self.now = now  # the value to use when it cannot be deferred (host_node_name)

    @property
    def written(self) -> str:
        """How the user wrote it."""
        return "%(host_node_name)s" if self.now is not None else "%%(ENV_%s)s" % self.name


class Refs:
    """The placeholder tokens of one conversion, with a prefix that appears in none of its files."""

    def __init__(self, texts: List[str] = ()):
        prefix = PREFIX
        while any(prefix in text for text in texts):
            prefix += "X"
        self.prefix = prefix
        self.pattern = re.compile(re.escape(prefix) + r"(\d+)Z")
        self.refs: List[EnvRef] = []
        self.index: Dict[Tuple[str, Optional[str]], int] = {}

    def token(self, name: str, now: Optional[str] = None) -> str:
        key = (name, now)
        if key not in self.index:
            self.index[key] = len(self.refs)
            self.refs.append(EnvRef(name, now))
        return "%s%dZ" % (self.prefix, self.index[key])

    def has_refs(self, text: str) -> bool:
        return self.pattern.search(text) is not None

    def ref(self, match) -> EnvRef:
        return self.refs[int(match.group(1))]

    def render(self, text: str) -> str:
        """pysuper syntax: literal $ doubled, deferred variables as ${NAME}."""
        text = text.replace("$", "$$")
        return self.pattern.sub(lambda m: "${%s}" % self.ref(m).name, text)


class Scope:
    """What %(name)s can refer to in one option of one section."""

    def __init__(self, names: Dict[str, object], env_layers: List[Dict[str, str]]):
        self.names = names
        self.env_layers = env_layers


class Expander:
    """Expands the values of one Source; records %(here)s and baked-in values in `notes`."""

    def __init__(self, source, notes, refs: Refs, environ=None):
        self.source = source
        self.notes = notes
        self.refs = refs
        self.environ = os.environ if environ is None else environ
        self.here_used: List[str] = []
        self.host_name = platform.node() or "localhost"

    def token_host(self) -> str:
        return self.refs.token("HOSTNAME", self.host_name)

    def expand(self, section: str, option: str, text: str, scope: Scope, literal: bool) -> str:
        """Expand supervisord's %(name)s formats in text, as supervisord's `s % expansions` would.

        literal: the setting has no ${VAR} in pysuper, so variables get their values now."""
        label = "[%s] %s" % (section, option)

        def fail(message):
            raise self.source.error(section, option, "%s: %s" % (label, message))

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
            value = self.resolve(section, option, value, fail)
        return value

    def literal(self, section: str, option: str, text: str, scope: Scope) -> str:
        return self.expand(section, option, text, scope, literal=True)

    def resolve(self, section: str, option: str, text: str, fail: Callable[[str], None]) -> str:
        """Replace deferred variables with their values now, and note each one used."""
        def value(match):
            ref = self.refs.ref(match)
            if ref.now is not None:
                now = ref.now
            elif ref.name in self.environ:
                now = self.environ[ref.name]
            else:
                fail("%s: %s is not set; pysuper does not expand variables in %s, so its value is "
                     "taken when converting: set it for the conversion (%s=... pysuper convert ...)"
                     % (ref.written, ref.name, option, ref.name))
            if self.notes.bake(section, option, ref.written, now):
                self.notes.warn(self.source.where(section, option),
                                "[%s] %s: %s converted as \"%s\", its value now: pysuper does not expand "
                                "variables in %s (a comment in the output says so)"
                                % (section, option, ref.written, now, option))
            return now
        return self.refs.pattern.sub(value, text)

    def _lookup(self, section, option, key, spec, scope, literal, fail) -> str:
        if key == "here":
            here = self.source.here_of(section, option)
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
                value = self.resolve(section, option, value, fail)
        if spec == "s" and isinstance(value, str):
            return value
        if isinstance(value, str) and spec[-1] in "diouxXeEfFgGc":
            fail("cannot format %%(%s)%s: %s is text, not a number; use %%(%s)s" % (key, spec, key, key))
        try:
            return ("%" + spec) % (value,)
        except (TypeError, ValueError) as exc:
            fail("cannot format %%(%s)%s: %s" % (key, spec, exc))
        raise AssertionError("unreachable")
