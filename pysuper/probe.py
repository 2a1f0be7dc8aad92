"""`pysuper probe tcp HOST:PORT | http URL | exec -- CMD...`: one try of a ready/health check.

The command line only: the check itself is health.probe(), the same code `ready` and `health` run.
Exit 0 when the check passes, 1 when it fails, each with one line saying why; 2 for usage errors.
Meant for a Docker HEALTHCHECK, a Compose healthcheck or a Kubernetes exec probe, so an image needs
no curl or wget.
"""

import sys

from pysuper.names import did_you_mean

PROG = "pysuper probe"
KINDS = ("tcp", "http", "exec")
DEFAULT_TIMEOUT = 5.0
USAGE = """\
usage: pysuper probe [--timeout SECONDS] tcp [HOST:]PORT
       pysuper probe [--timeout SECONDS] http URL
       pysuper probe [--timeout SECONDS] exec -- CMD [ARGS...]
exit 0 when the check passes, 1 when it fails (one line says why), 2 for a usage error.
"""


class UsageError(Exception):
    pass


def parse_address(text: str):
    """"8080", "host:8080" or "[::1]:8080" -> (host, port); host default 127.0.0.1."""
    host, port = "127.0.0.1", text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise UsageError("tcp %s: expected [ADDRESS]:PORT" % text)
        host, port = text[1:end], text[end + 2:]
    elif ":" in text:
        host, port = text.rsplit(":", 1)
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise UsageError("tcp %s: expected HOST:PORT or PORT, with a port between 1 and 65535" % text)
    return host, int(port)


def parse(args):
    """-> a CheckConfig; raise UsageError."""
    from pysuper.config import CheckConfig
    timeout = DEFAULT_TIMEOUT
    args = list(args)
    while args and args[0].startswith("--timeout"):
        flag = args.pop(0)
        value = flag.split("=", 1)[1] if "=" in flag else (args.pop(0) if args else None)
        try:
            timeout = float(value)
        except (TypeError, ValueError):
            raise UsageError("--timeout needs a number of seconds") from None
        if not 0 < timeout < 86400:
            raise UsageError("--timeout %s: expected seconds between 0 and 86400" % value)
    if not args:
        raise UsageError("probe needs a check: tcp HOST:PORT, http URL or exec -- CMD...")
    kind, rest = args[0], args[1:]
    if kind not in KINDS:
        raise UsageError("unknown check %r (expected tcp, http or exec)%s" % (kind, did_you_mean(kind, KINDS)))
    if kind == "exec":
        if rest and rest[0] == "--":
            rest = rest[1:]
        if not rest:
            raise UsageError("exec needs a command: pysuper probe exec -- CMD [ARGS...]")
        return CheckConfig(kind="exec", target=tuple(rest), timeout=timeout)
    if len(rest) != 1:
        raise UsageError("%s takes one %s" % (kind, "HOST:PORT" if kind == "tcp" else "URL"))
    if kind == "tcp":
        return CheckConfig(kind="tcp", target=parse_address(rest[0]), timeout=timeout)
    if not rest[0].startswith(("http://", "https://")):
        raise UsageError("http %s: expected a URL starting with http:// or https://" % rest[0])
    return CheckConfig(kind="http", target=rest[0], timeout=timeout)


def main(args) -> int:
    if args and args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    try:
        check = parse(args)
    except UsageError as exc:
        sys.stderr.write("%s: %s\n" % (PROG, exc))
        return 2
    from pysuper import health
    passed, message, _ = health.probe(check)
    stream = sys.stdout if passed else sys.stderr
    stream.write("%s: %s\n" % (PROG, message))
    return 0 if passed else 1
