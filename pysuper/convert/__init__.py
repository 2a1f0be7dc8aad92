"""`pysuper convert`: translate a supervisord INI config into a pysuper TOML config.

The input is read with the same INI rules supervisord uses (RawConfigParser, `;` and `#` inline
comments after whitespace, later duplicates win, `[include] files=` globs relative to the including
file) and every value is expanded the way supervisord expands it (`%(name)s` with here,
program_name, group_name, host_node_name, process_num, numprocs and ENV_X).

`%(ENV_X)s` becomes `${X}` wherever pysuper expands variables itself (command, directory and
environment values), so it is still read when the program starts; elsewhere it is resolved from the
environment of `pysuper convert`, with a warning and a comment naming the value used. A literal `$`
is written `$$` in those three keys. A command in which supervisord would split such a variable's
value into words runs through /bin/sh, which splits it the same way.

Every setting that pysuper does not need or cannot express is kept as a comment next to the program
it belongs to; sections pysuper cannot run ([eventlistener:x], [fcgi-program:x]) and programs with
an empty command are kept as comments and reported on stderr. The output depends only on the input
(and the variables resolved now), so converting twice gives the same file.

Stages, one module each: source (INI, locations, includes) -> expand (%(name)s) -> options (typed
values) -> sections and program (the conversion) -> render (TOML); notes holds errors and warnings.
This module is the command line.
"""

import argparse
import os
import sys
from typing import List, Optional, Tuple

from pysuper.convert.expand import Expander, Refs, Scope
from pysuper.convert.notes import ConvertError, Notes, comment_text
from pysuper.convert.render import render, toml_key, toml_string, toml_value
from pysuper.convert.sections import convert
from pysuper.convert.source import Source, decode

__all__ = ["ConvertError", "convert_file", "convert_text", "main", "toml_key", "toml_string", "toml_value"]

PROG = "pysuper convert"


def convert_text(text: str, display: str = "<stdin>", main_dir: Optional[str] = None,
                 warnings: Optional[List[str]] = None, environ=None) -> Tuple[str, List[str]]:
    """Convert supervisord INI text; return (TOML text, warnings). Raise ConvertError.

    Warnings are also appended to `warnings` as they are found, so they survive an error.
    `environ` (default os.environ) gives the values of variables resolved at conversion."""
    main_dir = os.path.abspath(main_dir or os.getcwd())
    notes = Notes(warnings)
    source = Source(display, main_dir)
    source.read(text, display, main_dir)
    reader = Expander(source, notes, Refs([text]), environ)
    source.read_includes(lambda raw: reader.literal(
        "include", "files", raw, Scope({"host_node_name": reader.token_host()}, [])), notes)
    expander = Expander(source, notes, Refs(source.texts), environ)
    expander.here_used = reader.here_used
    return render(convert(expander)), notes.warnings


def convert_file(path: str, warnings: Optional[List[str]] = None) -> Tuple[str, List[str]]:
    """Convert a supervisord config file ('-' for stdin)."""
    if path == "-":
        return convert_text(decode(sys.stdin.buffer.read(), "<stdin>"), "<stdin>", os.getcwd(), warnings)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise ConvertError("cannot read the supervisord config: %s" % (exc.strerror or exc), path) from None
    return convert_text(decode(data, path), path, os.path.dirname(os.path.abspath(path)), warnings)


_DESCRIPTION = """\
Convert a supervisord config (INI) into a pysuper config (TOML), written to stdout.
Reads SUPERVISORD_CONF, or stdin when it is missing or '-'. [include] files are read
relative to the including file. Settings pysuper does not need or cannot express are
kept as comments; [eventlistener:x] and [fcgi-program:x] are reported on stderr."""

_EPILOG = """\
%(ENV_X)s becomes ${X} in command, directory and environment (read when pysuper
starts the program); a literal $ is written $$ there. Elsewhere it is read now,
with a warning. Check the result with `pysuper check -c pysuper.toml`.
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
            sys.stderr.write("%s: warning: %s\n" % (PROG, comment_text(warning)))
        sys.stderr.write("%s: error: %s\n" % (PROG, comment_text(str(exc))))
        return 2
    for warning in warnings:
        sys.stderr.write("%s: warning: %s\n" % (PROG, comment_text(warning)))
    from pysuper import outfile
    return outfile.write(output, args.output, PROG)
