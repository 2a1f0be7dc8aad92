"""The one TOML reader: tomllib (Python >= 3.11) or tomli, with errors as (line, column, message)."""

import re


class TomlError(ValueError):
    def __init__(self, message: str, line=None, column=None):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column

    def where(self, path: str) -> str:
        """"path:3:7" or "path"."""
        return "%s:%s:%s" % (path, self.line, self.column) if self.line is not None else path


def loads(text: str) -> dict:
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column (\d+)\)", message)
        if match:
            raise TomlError(message[:match.start()].strip(), int(match.group(1)), int(match.group(2))) from None
        raise TomlError(message) from None
    except RecursionError:
        raise TomlError("the TOML is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise TomlError("a value cannot be read: %s" % exc) from None
