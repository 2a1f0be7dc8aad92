"""Reading the supervisord INI: supervisord's own parser rules, where each section and option was
written (file and line, for errors), and the files named by `[include] files=`."""

import configparser
import glob
import os
from typing import Callable, Dict, List, Optional, Tuple

from pysuper.convert.notes import ConvertError, Notes

# Supervisord's own parser settings (supervisor/options.py: UnhosedConfigParser).
INLINE_COMMENTS = (";", "#")


class Source:
    """The INI as read: the parser holding every file's sections, and where each was written."""

    def __init__(self, main_display: str, main_dir: str):
        self.main_display = main_display
        self.main_dir = main_dir
        self.parser = configparser.RawConfigParser(inline_comment_prefixes=INLINE_COMMENTS, strict=False)
        self.texts: List[str] = []
        self.section_loc: Dict[str, Tuple[str, int]] = {}
        self.option_loc: Dict[Tuple[str, str], Tuple[str, int, str]] = {}
        self.file_sections: Dict[str, List[str]] = {}
        self.included: List[str] = []
        self.include_misses: List[str] = []

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
            if not stripped or stripped[0] in INLINE_COMMENTS:
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

    def read_includes(self, files: Callable[[str], str], notes: Notes):
        """Read the files of `[include] files=`; `files(raw)` expands the setting's %(name)s."""
        if not self.parser.has_section("include"):
            return
        if not self.parser.has_option("include", "files"):
            raise self.error("include", None, "[include] has no files setting (e.g. files = conf.d/*.conf)")
        for pattern in files(self.parser.get("include", "files")).split():
            path = os.path.join(self.main_dir, pattern)
            matches = sorted(glob.glob(path))
            if not matches:
                self.include_misses.append(pattern)
                notes.warn(self.where("include", "files"), "[include] files: no file matches %s" % pattern)
                continue
            for filename in matches:
                display = self.display_path(filename)
                try:
                    with open(filename, "rb") as handle:
                        text = decode(handle.read(), display)
                except OSError as exc:
                    raise ConvertError("cannot read the included file: %s" % (exc.strerror or exc),
                                       display) from None
                self.included.append(display)
                self.read(text, display, os.path.dirname(os.path.abspath(filename)))
                if "include" in self.file_sections[display]:
                    notes.add("%s: [include] in an included file is ignored (supervisord reads [include] only "
                              "from the main file)" % display)

    def display_path(self, filename: str) -> str:
        """Included files are named the way the main file was: absolute, or relative to the cwd."""
        absolute = os.path.abspath(filename)
        if os.path.isabs(self.main_display):
            return absolute
        return os.path.relpath(absolute)

    # -- values and where they are written -------------------------------------------------------

    def raw(self, section: str, option: str) -> Optional[str]:
        return self.parser.get(section, option, fallback=None)

    def own_options(self, section: str) -> List[str]:
        """The options written in the section itself, without those inherited from [DEFAULT]."""
        defaults = self.parser.defaults()
        return [option for option in self.parser.options(section)
                if option not in defaults or (section, option) in self.option_loc]

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
        """The directory of the file the option is written in (supervisord's %(here)s)."""
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

    def origin(self, section: str) -> str:
        source, line = self.where(section, None)
        return "%s:%d" % (source, line) if line else source


def _strip_inline_comment(line: str) -> str:
    for index in range(1, len(line)):
        if line[index] in INLINE_COMMENTS and line[index - 1].isspace():
            return line[:index]
    return line


def _line_of(text: str, lineno: int) -> str:
    lines = text.splitlines()
    if 1 <= lineno <= len(lines):
        return lines[lineno - 1].strip()
    return ""


def decode(data: bytes, display: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ConvertError("not UTF-8 text (byte %d)" % exc.start, display, line) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
