"""`pysuper ctl`: inspect and steer a running pysuper through its control socket.

Exit codes: 0 done; 1 the command failed (a program did not reach the state, unhealthy, a config
with errors); 2 usage error, or no pysuper could be reached; 3 `status NAME...` and a named program
is not RUNNING.
"""

import json
import os
import sys

from pysuper.control.client import Unreachable, find_socket, open_connection
from pysuper.names import closest
from pysuper.signals import short_exit

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
QUICK_TIMEOUT = 10.0  # seconds to wait for commands that answer at once (status, health, ...)

USAGE = """\
usage: pysuper ctl [--socket PATH] [-c FILE] COMMAND [ARGS...]

commands:
  status [NAME...] [--json]     state, pid, uptime, restarts, last exit, CPU and memory
                                (exit 3 when a named program is not RUNNING)
  start NAME...|all             start and wait until it is RUNNING (or has failed)
  stop NAME...|all              stop (stop_signal, then SIGKILL after stop_timeout) and keep it stopped
  restart NAME...|all           stop, then start, and wait for the result
  signal SIG NAME...|all        send a signal (TERM, HUP, USR1, 9, ...) to the program's process group
  logs NAME [-n N] [-f]         the last N lines of its output (default 10); -f follows
  reload                        re-read the config: start added programs, restart changed ones,
                                stop removed ones (an invalid config is reported and not used)
  health                        exit 0 when every program is up or has finished as expected, else 1
  shutdown                      stop everything and exit, as on SIGTERM; waits until pysuper is gone

The socket is --socket PATH, else $PYSUPER_SOCKET, else control_socket in the config (-c FILE, else
$PYSUPER_CONFIG, ./pysuper.toml, /etc/pysuper/pysuper.toml), else that config's own socket in
$XDG_RUNTIME_DIR/pysuper/ (or /tmp/pysuper-UID/), else pysuper.sock in /run/pysuper or those
directories (pysuper as PID 1), else the one pysuper that is running.
Exit codes: 0 ok; 1 the command failed; 2 usage error or no pysuper reachable; 3 see status.
"""


class UsageError(Exception):
    pass


def _error(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write("pysuper ctl: %s\n" % message)
    return code


USAGE_KINDS = ("bad_request", "unknown_command", "unknown_program", "version", "permission", "unavailable")


def _failed(response) -> int:
    """Print an error response; its exit code."""
    sys.stderr.write("pysuper ctl: %s\n" % response.get("error", "pysuper refused the request"))
    data = response.get("data")
    if isinstance(data, dict):
        for line in data.get("errors", ()):
            sys.stderr.write("  %s\n" % line)
    return EXIT_USAGE if response.get("kind") in USAGE_KINDS else EXIT_FAILED


# ---------------------------------------------------------------------------------------------
# Formatting


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm%02ds" % divmod(seconds, 60)
    if seconds < 86400:
        return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)
    return "%dd%02dh" % (seconds // 86400, seconds % 86400 // 3600)


def _size(count) -> str:
    if count is None:
        return "-"
    value = float(count)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return ("%d%s" if unit == "B" else "%.1f%s") % (value, unit)
        value /= 1024
    return "%.1fG" % value


def _last_exit(row) -> str:
    code = row.get("last_exit")
    if code is None:
        return "-"
    return short_exit(code)


def _state(row) -> str:
    state = row.get("state") or "?"
    if row.get("held") and state == "STOPPED":
        return "STOPPED (by hand)"
    if row.get("removed"):
        return "%s (removed)" % state
    notes = []  # orchestration: what it waits for, readiness, health, its sd_notify STATUS=
    if state == "WAITING" and row.get("waiting_for"):
        notes.append("waiting for %s" % ", ".join(row["waiting_for"]))
    if state == "STARTING" and row.get("ready") is False:
        notes.append("not ready")
    if row.get("health") == "failing":
        notes.append("unhealthy")
    if row.get("notify_status"):
        notes.append(row["notify_status"])
    return "%s (%s)" % (state, "; ".join(notes)) if notes else state


def status_table(rows) -> str:
    header = ("NAME", "STATE", "PID", "UPTIME", "RESTARTS", "LAST EXIT", "CPU", "MEMORY")
    table = [header]
    for row in rows:
        cpu = row.get("cpu_percent")
        table.append((row["name"], _state(row), str(row["pid"]) if row.get("pid") else "-",
                      _duration(row.get("uptime")), str(row.get("restarts", 0)), _last_exit(row),
                      "-" if cpu is None else "%.1f%%" % cpu, _size(row.get("memory_bytes"))))
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    out = []
    for line in table:
        out.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return "\n".join(out) + "\n"


def _write(stream, text: str):
    stream.write(text)
    stream.flush()


def _write_line(stream: str, text: str):
    target = sys.stdout if stream == "stdout" else sys.stderr
    target.buffer.write(text.encode("utf-8", "surrogateescape") + b"\n")


# ---------------------------------------------------------------------------------------------
# Commands: each takes (connection factory, its arguments) and returns the exit code


def _flags(args, known):
    """Split args into (flags dict, positional); known maps a flag to whether it takes a value."""
    flags, words = {}, []
    i = 0
    while i < len(args):
        arg = args[i]
        name, _, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if name in known:
            if known[name]:
                if not value:
                    if name.startswith("--") or len(arg) == len(name):
                        if i + 1 >= len(args):
                            raise UsageError("%s needs a value" % name)
                        i += 1
                        value = args[i]
                flags[name] = value
            else:
                flags[name] = True
        elif arg.startswith("-n") and "-n" in known and len(arg) > 2:
            flags["-n"] = arg[2:]
        elif arg.startswith("-") and arg != "-":
            raise UsageError("unknown option %s" % arg)
        else:
            words.append(arg)
        i += 1
    return flags, words


def cmd_status(connect, args) -> int:
    flags, names = _flags(args, {"--json": False})
    conn = connect(QUICK_TIMEOUT)
    response = conn.request("status", {"names": names})
    if not response.get("ok"):
        return _failed(response)
    rows = response["data"]["programs"]
    if "--json" in flags:
        _write(sys.stdout, json.dumps(rows, indent=2) + "\n")
    else:
        _write(sys.stdout, status_table(rows))
    if names and any(row.get("state") != "RUNNING" for row in rows):
        return EXIT_NOT_RUNNING
    return EXIT_OK


def _print_results(response) -> int:
    if not response.get("ok"):
        return _failed(response)
    code = EXIT_OK
    for result in response["data"]["results"]:
        line = "%s: %s\n" % (result["name"], result["message"])
        if result.get("ok"):
            sys.stdout.write(line)
        else:
            sys.stderr.write(line)
            code = EXIT_FAILED
    sys.stdout.flush()
    return code


def _transition(command):
    def run(connect, args) -> int:
        _, names = _flags(args, {})
        if not names:
            raise UsageError("%s needs program names (or all)" % command)
        conn = connect(None)  # waits as long as the transition takes (stop_timeout, start_seconds)
        return _print_results(conn.request(command, {"names": names}))
    return run


def cmd_signal(connect, args) -> int:
    if args and args[0].startswith("-") and len(args[0]) > 1:
        args = [args[0][1:]] + list(args[1:])  # kill-style: -9, -HUP
    _, words = _flags(args, {})
    if len(words) < 2:
        raise UsageError("usage: pysuper ctl signal SIG NAME...|all")
    conn = connect(QUICK_TIMEOUT)
    return _print_results(conn.request("signal", {"signal": words[0], "names": words[1:]}))


def cmd_logs(connect, args) -> int:
    flags, words = _flags(args, {"-n": True, "--lines": True, "-f": False, "--follow": False})
    if len(words) != 1:
        raise UsageError("usage: pysuper ctl logs NAME [-n N] [-f]")
    raw = flags.get("-n", flags.get("--lines", "10"))
    try:
        count = int(raw)
        if count < 0:
            raise ValueError
    except ValueError:
        raise UsageError("-n expects a number of lines >= 0, got %r" % raw) from None
    follow = "-f" in flags or "--follow" in flags
    conn = connect(QUICK_TIMEOUT)
    response = conn.request("logs", {"name": words[0], "lines": count, "follow": follow})
    if not response.get("ok"):
        return _failed(response)
    for line in response["data"]["lines"]:
        _write_line(line["stream"], line["line"])
    sys.stdout.flush()
    sys.stderr.flush()
    if not follow:
        return EXIT_OK
    conn.sock.settimeout(None)
    while True:
        message = conn.receive()
        if message is None:
            return EXIT_OK  # pysuper exited
        for line in message.get("lines", ()):
            _write_line(line["stream"], line["line"])
        sys.stdout.flush()
        sys.stderr.flush()


def cmd_reload(connect, args) -> int:
    _flags(args, {})
    if args:
        raise UsageError("reload takes no arguments")
    conn = connect(None)
    response = conn.request("reload")
    if not response.get("ok"):
        return _failed(response)
    data = response["data"]
    if not (data.get("added") or data.get("changed") or data.get("removed")):
        sys.stdout.write("no changes to programs\n")
    for key in ("added", "changed", "removed"):
        if data.get(key):
            sys.stdout.write("%s: %s\n" % (key, ", ".join(data[key])))
    if data.get("not_applied"):
        sys.stdout.write("not applied until pysuper restarts: [pysuper] %s\n" % ", ".join(data["not_applied"]))
    sys.stdout.flush()
    return EXIT_OK


def cmd_health(connect, args) -> int:
    if args:
        raise UsageError("health takes no arguments")
    conn = connect(QUICK_TIMEOUT)
    response = conn.request("health")
    if not response.get("ok"):
        return _failed(response)
    data = response["data"]
    if data.get("healthy"):
        _write(sys.stdout, "healthy\n")
        return EXIT_OK
    _write(sys.stdout, "unhealthy: %s\n" % "; ".join(data.get("problems") or ["unknown"]))
    return EXIT_FAILED


def cmd_shutdown(connect, args) -> int:
    if args:
        raise UsageError("shutdown takes no arguments")
    conn = connect(QUICK_TIMEOUT)
    response = conn.request("shutdown")
    if not response.get("ok"):
        return _failed(response)
    stopping = response["data"].get("stopping") or []
    _write(sys.stdout, "shutting down; stopping %s\n" % (", ".join(stopping) if stopping else "nothing"))
    conn.sock.settimeout(None)
    while True:
        message = conn.receive()
        if message is None:
            _write(sys.stdout, "pysuper has exited\n")
            return EXIT_OK
        if message.get("event") == "exit":
            _write(sys.stdout, "pysuper has exited with code %s\n" % message.get("code"))
            return EXIT_OK


COMMANDS = {
    "status": cmd_status,
    "start": _transition("start"),
    "stop": _transition("stop"),
    "restart": _transition("restart"),
    "signal": cmd_signal,
    "logs": cmd_logs,
    "reload": cmd_reload,
    "health": cmd_health,
    "shutdown": cmd_shutdown,
}


def _global_options(argv):
    """(socket flag, config flag, command, command args)."""
    from pysuper import cli
    socket_flag = config_flag = None
    args = list(argv)
    while args and args[0].startswith("-"):
        arg = args.pop(0)
        if arg in ("-h", "--help"):
            return None, None, "help", []
        try:
            config = cli.config_option(arg, args)
        except cli.UsageError as exc:
            raise UsageError(str(exc)) from None
        if config is not None:
            config_flag = config
        elif arg in ("--socket", "-s"):
            if not args:
                raise UsageError("%s needs a value" % arg)
            socket_flag = args.pop(0)
        elif arg.startswith("--socket="):
            socket_flag = arg.split("=", 1)[1]
        else:
            raise UsageError("unknown option %s (see pysuper ctl --help)" % arg)
    if not args:
        raise UsageError("no command given (see pysuper ctl --help)")
    return socket_flag, config_flag, args[0], args[1:]


def main(argv) -> int:
    conn = None
    try:
        socket_flag, config_flag, command, args = _global_options(argv)
        if command in ("help", "-h", "--help"):
            sys.stdout.write(USAGE)
            return EXIT_OK
        run = COMMANDS.get(command)
        if run is None:
            close = closest(command, COMMANDS, cutoff=0.75)
            raise UsageError("unknown command %r; %s (see pysuper ctl --help)"
                             % (command, "did you mean %s?" % close if close else
                                "the commands are %s" % ", ".join(COMMANDS)))
        def connect(timeout):
            nonlocal conn
            conn = open_connection(find_socket(socket_flag, config_flag), timeout)
            return conn

        return run(connect, args)
    except UsageError as exc:
        return _error(str(exc))
    except Unreachable as exc:
        return _error(str(exc))
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    finally:
        if conn is not None:
            conn.close()
