"""Writing a generated file (convert, export): to -o PATH, or to stdout when there is none or it is "-"."""

import sys


def write(text: str, path, prog: str) -> int:
    """0 when written; 2 (with one line on stderr) when the file cannot be written; 1 on a closed stdout."""
    data = text.encode("utf-8")
    if path and path != "-":
        try:
            with open(path, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            sys.stderr.write("%s: error: cannot write %s: %s\n" % (prog, path, exc.strerror or exc))
            return 2
        return 0
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        return 1
    return 0
