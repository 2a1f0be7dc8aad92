"""`pysuper ctl`: inspect and steer a running pysuper through its control socket.

Exit codes: 0 done; 1 the command failed (a program did not reach the state, unhealthy, a config
with errors); 2 usage error, or no pysuper could be reached; 3 `status NAME...` and a named program
is not RUNNING.
"""

import json
import os
import socket
import sys

from pysuper import control

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
$PYSUPER_CONFIG, ./pysuper.toml, /etc/pysuper/pysuper.toml), else /run/pysuper/pysuper.sock, else
$XDG_RUNTIME_DIR/pysuper/pysuper.sock or /tmp/pysuper-UID/pysuper.sock.
Exit codes: 0 ok; 1 the command failed; 2 usage error or no pysuper reachable; 3 see status.
"""


class UsageError(Exception):
    pass


class Unreachable(Exception):
    """No pysuper answers on the socket; the message says where we looked and what to do."""


def _error(message: str, code: int = EXIT_USAGE) -> int:
    sys.stderr.write("pysuper ctl: %s\n" % message)
    return code


# ---------------------------------------------------------------------------------------------
# Finding the socket


def _configured_socket(config_flag):
    """(control_socket value from the config or None, config path or None)."""
    from pysuper.config import find_config
    path, _ = find_config(config_flag)
    if path is None:
        return None, None
    if not os.path.isfile(path):
        if config_flag:
            raise UsageError("cannot read the config %s: no such file" % path)
        return None, None
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode("utf-8")
        from pysuper import tomlfile
        data = tomlfile.loads(text)
    except (OSError, ValueError) as exc:
        # The config may be broken on purpose (about to be reloaded): fall back to the defaults.
        sys.stderr.write("pysuper ctl: warning: cannot read control_socket from %s (%s); using the "
                         "default socket location\n" % (path, exc))
        return None, path
    settings = data.get("pysuper")
    value = settings.get("control_socket") if isinstance(settings, dict) else None
    if value is False or (isinstance(value, str) and value):
        return value, path
    return None, path


def socket_candidates(socket_flag=None, config_flag=None, environ=None):
    """[(path, origin)] to try in order: the explicit choice, or the default locations."""
    environ = os.environ if environ is None else environ
    if socket_flag:
        return [(os.path.abspath(socket_flag), "--socket")]
    if environ.get("PYSUPER_SOCKET"):
        return [control.resolve(environ=environ)]
    configured, config_path = _configured_socket(config_flag)
    if configured is False:
        raise UsageError("%s turns the control socket off (control_socket = false); pass --socket PATH "
                         "if pysuper runs with another config" % config_path)
    path, origin = control.resolve(configured, config_path, environ)
    if origin != "default":
        return [(path, origin)]
    return [(candidate, "default") for candidate in control.default_paths(environ)]


# ---------------------------------------------------------------------------------------------
# Talking to pysuper


def _present(path: str) -> bool:
    """Is there something at path? A directory we may not search counts: connect() will say why."""
    try:
        os.stat(path)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


class Connection:
    def __init__(self, candidates, timeout):
        self.sock = None
        self.buffer = b""
        existing = [(path, origin) for path, origin in candidates if _present(path)]
        path, origin = (existing or candidates)[0]
        self.path = path
        where = "%s (%s)" % (path, origin) if origin not in ("default",) else path
        choose = "pass --socket PATH or set PYSUPER_SOCKET" if origin == "default" else \
            "check that pysuper runs with this socket"
        if not existing:
            looked = " or ".join(p for p, _ in candidates)
            raise Unreachable("no pysuper is running here: there is no control socket at %s; %s"
                              % (looked, choose))
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(path)
        except (ConnectionRefusedError, FileNotFoundError):
            sock.close()
            raise Unreachable("no pysuper is running here: nothing listens on the control socket %s "
                              "(left behind by a pysuper that has exited?); %s" % (where, choose)) from None
        except PermissionError:
            sock.close()
            raise Unreachable("permission denied on the control socket %s: run as root, as the user pysuper "
                              "runs as, or as a member of its control_group" % where) from None
        except socket.timeout:
            sock.close()
            raise Unreachable("the pysuper on %s does not accept connections (timed out)" % where) from None
        except OSError as exc:
            sock.close()
            raise Unreachable("cannot connect to the control socket %s: %s" % (where, exc.strerror or exc)) \
                from None
        self.sock = sock

    def send(self, command: str, args=None):
        line = json.dumps({"v": control.PROTOCOL, "cmd": command, "args": args or {}}) + "\n"
        try:
            self.sock.sendall(line.encode("utf-8", "surrogateescape"))
        except socket.timeout:
            raise Unreachable("pysuper on %s does not take requests (timed out)" % self.path) from None
        except OSError:
            pass  # closed by pysuper: the reason, if any, is waiting to be read

    def receive(self, timeout="keep"):
        """The next message, or None at the end of the connection."""
        if timeout != "keep":
            self.sock.settimeout(timeout)
        while b"\n" not in self.buffer:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                raise Unreachable("pysuper on %s did not answer in time" % self.path) from None
            except ConnectionResetError:
                data = b""
            except OSError as exc:
                raise Unreachable("lost the connection to pysuper on %s: %s"
                                  % (self.path, exc.strerror or exc)) from None
            if not data:
                if self.buffer.strip():
                    break
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        try:
            message = json.loads(line.decode("utf-8", "surrogateescape"))
        except ValueError:
            raise Unreachable("%s answered something that is not pysuper's protocol: %r"
                              % (self.path, line[:80])) from None
        if not isinstance(message, dict):
            raise Unreachable("%s answered something that is not pysuper's protocol" % self.path)
        return message

    def request(self, command: str, args=None, timeout="keep"):
        self.send(command, args)
        response = self.receive(timeout)
        if response is None:
            raise Unreachable("pysuper closed the connection without answering (did it just exit?)")
        return response

    def close(self):
        if self.sock is not None:
            self.sock.close()


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
    from pysuper.signals import short_exit
    return short_exit(code)


def _state(row) -> str:
    state = row.get("state") or "?"
    if row.get("held") and state == "STOPPED":
        return "STOPPED (by hand)"
    if row.get("removed"):
        return "%s (removed)" % state
    return state


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
            import difflib
            close = difflib.get_close_matches(command, list(COMMANDS), n=1)
            raise UsageError("unknown command %r%s (see pysuper ctl --help)"
                             % (command, "; did you mean %s?" % close[0] if close else ""))
        candidates = []

        def connect(timeout):
            nonlocal conn
            if not candidates:
                candidates.extend(socket_candidates(socket_flag, config_flag))
            conn = Connection(candidates, timeout)
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
