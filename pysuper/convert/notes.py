"""What a conversion tells its user besides the TOML: the error that stops it, the warnings that do
not, and the values taken from the converting shell's environment (so they can be named next to
the key they ended up in)."""

from typing import Dict, List, Optional, Tuple


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


def comment_text(text: str) -> str:
    """Text safe inside a TOML comment (and on one terminal line): no newline, no control characters."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t" or (ch >= " " and ch != "\x7f"):
            out.append(ch)
        else:
            out.append("\\x%02x" % ord(ch))
    return "".join(out)


class Notes:
    """The warnings of one conversion, in the order they were found, and the baked-in values.

    `warnings` may be a list the caller owns, so the warnings found before an error survive it."""

    def __init__(self, warnings: Optional[List[str]] = None):
        self.warnings: List[str] = [] if warnings is None else warnings
        # (section, option) -> [(what, value)]: "%(ENV_X)s" or "%(host_node_name)s" replaced by the
        # value it had when converting, because pysuper cannot read it when the program starts
        self.baked: Dict[Tuple[str, str], List[Tuple[str, str]]] = {}
        self._said = set()

    def warn(self, where: Tuple[Optional[str], Optional[int]], message: str):
        self.warnings.append(str(ConvertError(message, where[0], where[1])))

    def add(self, message: str):
        self.warnings.append(message)

    def once(self, key) -> bool:
        """True the first time `key` is seen (for a warning given once per section, not per process)."""
        if key in self._said:
            return False
        self._said.add(key)
        return True

    def bake(self, section: str, option: str, what: str, value: str) -> bool:
        """Record that `what` was replaced by `value` in [section] option; False if already known."""
        found = self.baked.setdefault((section, option), [])
        if (what, value) in found:
            return False
        found.append((what, value))
        return True

    def baked_comment(self, section: str, option: str, key: Optional[str] = None) -> Optional[str]:
        """'# key: %(ENV_X)s was "v" when converted ...' for a key whose value was baked in, else None."""
        found = self.baked.get((section, option))
        if not found:
            return None
        used = ", ".join("%s = %s" % (what, _quoted(value)) for what, value in found)
        return ("# %s: converted with %s, the value when `pysuper convert` ran (pysuper does not expand "
                "variables in %s)" % (key or option, used, key or option))


def _quoted(value: str) -> str:
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
