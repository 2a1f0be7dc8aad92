"""Names: the rule for a program's name, and "did you mean" for a misspelled one."""

import re

PROGRAM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
PROGRAM_NAME_RULE = "letters, digits, '_', '-' and '.' (not starting with '-' or '.')"


def valid_program_name(name: str) -> bool:
    return bool(PROGRAM_NAME.match(name))


def closest(word: str, candidates, cutoff: float = 0.6):
    """The candidate nearest to word, or None."""
    import difflib
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, candidates, quote: str = '"') -> str:
    """"; did you mean "start"?" or "" when nothing is near."""
    close = closest(word, candidates)
    return "; did you mean %s%s%s?" % (quote, close, quote) if close else ""
