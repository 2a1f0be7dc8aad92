"""The TOML output: strings and keys written so they read well and round-trip exactly, and the
converted document laid out as comments, programs in start order, and the sections kept as
comments at the end. The output depends only on the Document, so converting twice gives the
same bytes."""

import re
from typing import Dict, List, Optional, Tuple

from pysuper.convert.notes import comment_text

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class Program:
    """One [programs.NAME] table of the output."""

    def __init__(self, name: str, section: str, origin: str, priority: int, group: str):
        self.name = name
        self.group = group
        self.section = section
        self.origin = origin
        self.priority = priority
        self.keys: List[Tuple[str, object]] = []
        self.key_comments: Dict[str, List[str]] = {}  # lines written just above a key
        self.comments: List[str] = []
        self.environment: Dict[str, str] = {}
        self.notes: List[str] = []
        self.disabled: Optional[List[str]] = None  # written commented out, after these lines

    def add(self, key: str, value, comments: List[str] = ()):
        self.keys.append((key, value))
        if comments:
            self.key_comments[key] = list(comments)


class Document:
    """Everything the output holds: comments for the header and footer, and the programs."""

    def __init__(self, main_display: str):
        self.main_display = main_display
        self.included: List[str] = []
        self.here_used: List[str] = []
        self.header: List[str] = []
        self.footer: List[str] = []
        self.programs: List[Program] = []


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


def program_lines(program: Program) -> List[str]:
    lines = ["[programs.%s]" % toml_key(program.name),
             "# from [%s] (%s)" % (program.section, program.origin)]
    for key, value in program.keys:
        lines.extend(program.key_comments.get(key, ()))
        lines.append("%s = %s" % (key, toml_value(value)))
    lines.extend(program.comments)
    if program.environment:
        lines.append("")
        lines.append("[programs.%s.environment]" % toml_key(program.name))
        for key, value in program.environment.items():
            lines.append("%s = %s" % (toml_key(key), toml_string(value)))
    if program.disabled is not None:
        lines = program.disabled + [("# " + line) if line else "#" for line in lines]
    return lines


def render(doc: Document) -> str:
    lines = ["# pysuper configuration converted from %s by `pysuper convert`." % doc.main_display,
             "# Settings that pysuper does not need or cannot express are kept as comments."]
    if doc.included:
        lines.append("# Included files: %s" % ", ".join(doc.included))
    for here in doc.here_used:
        lines.append("# %%(here)s was expanded to %s" % here)
    if doc.header:
        lines.append("#")
        lines.extend(doc.header)
    for program in doc.programs:
        lines.append("")
        lines.extend(program_lines(program))
    if doc.footer:
        lines.append("")
        lines.extend(doc.footer)
    while lines and lines[-1] == "":
        lines.pop()
    lines = [comment_text(line) if line.startswith("#") else line for line in lines]
    return "\n".join(lines) + "\n"
