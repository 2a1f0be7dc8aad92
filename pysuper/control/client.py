"""The client side of the control socket: finding the socket of a running pysuper, and talking to it.

`pysuper ctl` looks where the server would listen (see pysuper.control.paths): --socket PATH, else
$PYSUPER_SOCKET, else control_socket in the config, else the default locations; when none of those
has a live pysuper and no project's config was named, a single pysuper listening in a default
directory is taken.
"""

import json
import os
import socket
import sys

from pysuper.control import paths


class Unreachable(Exception):
    """No pysuper answers on the socket; the message says where we looked and what to do."""

    def __init__(self, message: str, stale: bool = False):
        super().__init__(message)
        self.stale = stale  # nothing listens on a socket file that is there


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
            raise Unreachable("cannot read the config %s: no such file" % path)
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


class Search:
    """Where to look: one explicit socket, or the default locations in order.

    `config` is the config file the defaults were derived from; `named` says it was chosen for this
    project (-c, $PYSUPER_CONFIG, ./pysuper.toml): then no other pysuper is taken instead of its own.
    """

    def __init__(self, explicit=None, defaults=(), config=None, named=False):
        self.explicit = explicit  # (path, origin) or None
        self.defaults = list(defaults)
        self.config = config
        self.named = named


def find_socket(socket_flag=None, config_flag=None, environ=None) -> Search:
    environ = os.environ if environ is None else environ
    if socket_flag:
        return Search(explicit=(os.path.abspath(socket_flag), "--socket"))
    if environ.get("PYSUPER_SOCKET"):
        return Search(explicit=paths.resolve(environ=environ))
    configured, config_path = _configured_socket(config_flag)
    if configured is False:
        raise Unreachable("%s turns the control socket off (control_socket = false); pass --socket PATH "
                          "if pysuper runs with another config" % config_path)
    if configured:
        return Search(explicit=paths.resolve(configured, config_path, environ))
    defaults = paths.default_paths(environ)
    if config_path is None:
        return Search(defaults=defaults)
    here = os.path.dirname(os.path.abspath(config_path)) == os.getcwd()
    named = bool(config_flag or environ.get("PYSUPER_CONFIG")) or here
    return Search(defaults=[paths.config_path_socket(config_path, environ)] + defaults, config=config_path,
                  named=named)


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


STALE = "(left behind by a pysuper that has exited?)"


def _connect(path: str, where: str, choose: str, timeout):
    """A socket connected to path; Unreachable (with .stale when nothing listens there) otherwise."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        sock.close()
        raise Unreachable("no pysuper is running here: nothing listens on the control socket %s %s; %s"
                          % (where, STALE, choose), stale=True) from None
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
    return sock


CHOOSE = "pass --socket PATH or set PYSUPER_SOCKET"


def open_connection(search: Search, timeout):
    """The Connection to the pysuper search finds (see docs/ctl.md, "Where the socket is")."""
    if search.explicit:
        path, origin = search.explicit
        choose = "check that pysuper runs with this socket"
        if not _present(path):
            raise Unreachable("no pysuper is running here: there is no control socket at %s; %s" % (path, choose))
        return Connection(_connect(path, "%s (%s)" % (path, origin), choose, timeout), path)
    for path in search.defaults:
        if _present(path):
            try:
                return Connection(_connect(path, path, CHOOSE, timeout), path)
            except Unreachable as exc:
                if not exc.stale:
                    raise
    others = [path for path in paths.live_sockets() if path not in search.defaults]
    if search.named:
        raise Unreachable("no pysuper is running with %s: nothing listens on %s%s"
                          % (search.config, search.defaults[0], "; pysuper is running with other sockets: "
                             "%s (pass --socket PATH)" % ", ".join(others) if others else ""))
    if len(others) == 1:
        return Connection(_connect(others[0], others[0], CHOOSE, timeout), others[0])
    if others:
        raise Unreachable("%d pysupers are running (control sockets %s); run pysuper ctl in a project's "
                          "directory, or pass -c FILE or --socket PATH" % (len(others), ", ".join(others)))
    raise Unreachable("no pysuper is running here: there is no control socket at %s; %s"
                      % (" or ".join(search.defaults), CHOOSE))


class Connection:
    def __init__(self, sock, path):
        self.sock = sock
        self.path = path
        self.buffer = b""

    def send(self, command: str, args=None):
        line = json.dumps({"v": paths.PROTOCOL, "cmd": command, "args": args or {}}) + "\n"
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


