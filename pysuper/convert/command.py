"""A program's command: split as supervisord splits it, and kept splitting the same way when a
variable is read only when pysuper starts the program.

supervisord substitutes `%(ENV_X)s` into the command text first and splits it with shlex.split
afterwards, so an unquoted variable can give no word (empty value) or several ("-a -b"). pysuper
splits its command first and expands `${X}` inside one word. A command with such a variable
therefore runs through `/bin/sh -c 'set -f; exec ...'` with the value as a positional parameter:
the shell splits an unquoted `${1}` at blanks (and `set -f` keeps `*` and `?` literal, as shlex
did), while every other word stays quoted exactly as supervisord split it.
"""

import shlex
from typing import List, Optional, Tuple

from pysuper.convert.expand import EnvRef, Refs

_WHITESPACE = " \t\r\n"
_QUOTES = "'\""

SHELL = "/bin/sh"


class Word:
    """One word of a split command, with for each character whether it was quoted or escaped."""

    def __init__(self):
        self.chars: List[str] = []
        self.quoted: List[bool] = []
        self.had_quotes = False

    def add(self, ch: str, quoted: bool):
        self.chars.append(ch)
        self.quoted.append(quoted)

    @property
    def text(self) -> str:
        return "".join(self.chars)


def split(text: str) -> List[Word]:
    """shlex.split(text), keeping for each character whether quotes or a backslash protected it.

    Raises ValueError as shlex.split does."""
    words: List[Word] = []
    word: Optional[Word] = None
    state = " "
    escaped_from = " "
    for ch in text:
        if state == "\\":
            if escaped_from == '"' and ch not in ('"', "\\"):
                word.add("\\", True)
            word.add(ch, True)
            state = escaped_from
            continue
        if state in _QUOTES:
            word.had_quotes = True
            if ch == state:
                state = "a"
            elif ch == "\\" and state == '"':
                escaped_from, state = state, "\\"
            else:
                word.add(ch, True)
            continue
        if ch in _WHITESPACE:
            if word is not None:
                words.append(word)
                word = None
            state = " "
            continue
        if word is None:
            word = Word()
        if ch in _QUOTES:
            state = ch
        elif ch == "\\":
            escaped_from, state = "a", "\\"
        else:
            word.add(ch, False)
            state = "a"
    if state in _QUOTES:
        raise ValueError("No closing quotation")
    if state == "\\":
        raise ValueError("No escaped character")
    if word is not None:
        words.append(word)
    return words


def split_refs(text: str, refs: Refs) -> List[EnvRef]:
    """The environment variables (read when pysuper starts the program) that are unquoted in the
    command, so supervisord split their values into words; in order, without repeats."""
    found: List[EnvRef] = []
    for word in split(text):
        for match in refs.pattern.finditer(word.text):
            ref = refs.ref(match)
            if ref.now is None and not all(word.quoted[match.start():match.end()]) and ref not in found:
                found.append(ref)
    return found


def through_shell(text: str, refs: Refs) -> List[str]:
    """The command as [/bin/sh, -c, script, sh, value...]: every variable of the command becomes a
    positional parameter, unquoted where supervisord split its value, quoted where it did not."""
    params: List[str] = []
    script = []
    for word in split(text):
        parts: List[str] = []
        literal_start = 0
        for match in refs.pattern.finditer(word.text):
            if match.start() > literal_start:
                parts.append(shlex.quote(word.text[literal_start:match.start()]))
            token = match.group()
            if token not in params:
                params.append(token)
            param = "${%d}" % (params.index(token) + 1)
            ref = refs.ref(match)
            split_here = ref.now is None and not all(word.quoted[match.start():match.end()])
            parts.append(param if split_here else '"%s"' % param)
            literal_start = match.end()
        if literal_start < len(word.text) or not parts:
            parts.append(shlex.quote(word.text[literal_start:]))
        script.append("".join(parts))
    return [SHELL, "-c", "set -f; exec " + " ".join(script), "sh"] + params


def shell_comment(raw: str, split_vars: List[EnvRef]) -> Tuple[str, str]:
    """The two comment lines above a command that runs through the shell."""
    names = ", ".join(ref.written for ref in split_vars)
    return ("# command: supervisord ran `%s`, substituting %s before splitting it into words," % (raw.strip(), names),
            "# so an empty value gives no word and \"-a -b\" two; /bin/sh -c splits ${N} the same way "
            "(set -f: no globbing).")
