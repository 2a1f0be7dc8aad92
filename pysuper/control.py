"""The control socket: a local Unix socket speaking line-delimited JSON, served by the event loop.

Where it lives (the same order for the server and for `pysuper ctl`):
$PYSUPER_SOCKET, else `[pysuper] control_socket`, else /run/pysuper/pysuper.sock when /run/pysuper is
writable, else $XDG_RUNTIME_DIR/pysuper/pysuper.sock, else /tmp/pysuper-UID/pysuper.sock.

The socket is created 0600 (0660 with control_group) under a umask, in a directory that only its
owner can write; a stale socket is replaced only after connect() to it failed. Every connection's
peer credentials are checked: root, pysuper's own uid, or members of control_group.

Protocol, version 1: one JSON object per line each way.
    request:  {"v": 1, "cmd": "restart", "args": {"names": ["web"]}, "id": 7}
    response: {"v": 1, "ok": true, "data": {...}, "id": 7}
              {"v": 1, "ok": false, "error": "no program named 'wbe'", "kind": "unknown_program", "id": 7}
A response with "more": true is followed by event lines ({"v": 1, "event": ...}) until the
connection closes (`logs` with follow, `shutdown`). Requests on one connection are answered in order.

Nothing here blocks: the listening socket and every client are non-blocking and driven by the loop,
requests are capped in size, a client gets REQUEST_TIMEOUT seconds to send a whole request, and a
client that stops reading is dropped once too much output is waiting for it. Each verb is one small
function at the end of this module.
"""

import errno
import json
import os
import socket
import stat
import struct

PROTOCOL = 1
MAX_REQUEST = 64 * 1024  # bytes in one request line
REQUEST_TIMEOUT = 10.0  # seconds a client has to send a whole request
MAX_CLIENTS = 256
MAX_OUTPUT = 8 * 1024 * 1024  # bytes waiting for a client that does not read
ACCEPT_BATCH = 64
METRICS_INTERVAL = 0.25  # seconds between the two CPU samples of `status`
DEFAULT_DIR = "/run/pysuper"
SOCKET_NAME = "pysuper.sock"
MAX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)


class ControlError(Exception):
    """The control socket cannot be set up; the message says what to change."""


class RequestError(Exception):
    """A request that cannot be carried out; `kind` classifies it for clients."""

    def __init__(self, message: str, kind: str = "bad_request", data=None):
        super().__init__(message)
        self.kind = kind
        self.data = data


# ---------------------------------------------------------------------------------------------
# Where the socket lives (shared with pysuper ctl)


def user_path(environ=None) -> str:
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "pysuper", SOCKET_NAME)
    return os.path.join("/tmp", "pysuper-%d" % os.geteuid(), SOCKET_NAME)


def _run_dir_writable() -> bool:
    if os.path.isdir(DEFAULT_DIR):
        return os.access(DEFAULT_DIR, os.W_OK | os.X_OK)
    parent = os.path.dirname(DEFAULT_DIR)
    return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)


def default_paths(environ=None):
    """The default locations, the one the server would take first."""
    run = os.path.join(DEFAULT_DIR, SOCKET_NAME)
    user = user_path(environ)
    return [run, user] if _run_dir_writable() else [user, run]


def resolve(configured=None, config_path=None, environ=None):
    """(path, origin): where the socket is, and why there.

    `configured` is `[pysuper] control_socket` (None, False or a path); a relative path there is
    relative to the config file's directory. path is None when the socket is turned off.
    """
    environ = os.environ if environ is None else environ
    if environ.get("PYSUPER_SOCKET"):
        return os.path.abspath(environ["PYSUPER_SOCKET"]), "$PYSUPER_SOCKET"
    if configured is False:
        return None, "control_socket = false"
    if configured:
        base = os.path.dirname(os.path.abspath(config_path)) if config_path and \
            not config_path.startswith("<") else os.getcwd()
        return os.path.normpath(os.path.join(base, configured)), "control_socket in %s" % (config_path or
                                                                                      "the config")
    return default_paths(environ)[0], "default"


# ---------------------------------------------------------------------------------------------
# Setting the socket up


HOW_TO_CHOOSE = ("set PYSUPER_SOCKET=/path/to/other.sock, or control_socket = \"/path/to/other.sock\" "
                 "in [pysuper] (control_socket = false runs without a control socket)")


def _group_id(group):
    if group is None:
        return None
    import grp
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlError("control_group = \"%s\": no such group on this machine" % group) from None


def _private_dir(directory: str, gid):
    """Create (or check) a default socket directory: a real directory, ours, only we can write it."""
    try:
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ControlError("cannot create the control socket directory %s: %s; %s"
                           % (directory, exc.strerror or exc, HOW_TO_CHOOSE)) from None
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ControlError("%s is not a directory owned by uid %d (a symlink or someone else's); remove it "
                           "or %s" % (directory, os.geteuid(), HOW_TO_CHOOSE))
    try:
        if gid is not None:
            os.chown(directory, -1, gid)
        os.chmod(directory, 0o710 if gid is not None else 0o700)
    except OSError as exc:
        raise ControlError("cannot set the permissions of %s: %s" % (directory, exc.strerror or exc)) from None


def _chosen_dir(directory: str, gid):
    """A directory the user chose: create it if missing; refuse one that others could write."""
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o700)
            if gid is not None:  # the group must be able to reach the socket
                os.chown(directory, -1, gid)
                os.chmod(directory, 0o710)
        except OSError as exc:
            raise ControlError("cannot create the control socket directory %s: %s"
                               % (directory, exc.strerror or exc)) from None
    info = os.stat(directory)
    if info.st_uid not in (0, os.geteuid()):
        raise ControlError("the control socket directory %s belongs to uid %d; choose a directory owned by "
                           "you or root" % (directory, info.st_uid))
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise ControlError("the control socket directory %s can be written by other users (mode %03o), who "
                           "could replace the socket; choose a directory only its owner can write (for "
                           "example: mkdir -m 700 DIR)" % (directory, stat.S_IMODE(info.st_mode)))


def _peer_credentials(sock):
    """(pid, uid, gid) of the other end (SO_PEERCRED)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def _describe_pid(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return "another process (pid %d)" % pid if pid else "another process"
    if any(b"pysuper" in word for word in words[:3]):
        return "another pysuper (pid %d)" % pid
    return "another process (pid %d: %s)" % (pid, b" ".join(words).decode(errors="replace").strip())


def _live_owner(path: str):
    """Who listens on the socket at path: a description, or None when it is stale."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except PermissionError:
        return "a process of another user (the socket is not ours to probe)"
    except (socket.timeout, BlockingIOError):
        return "another process (it does not accept connections quickly)"
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return None
        return "another process (%s)" % (exc.strerror or exc)
    else:
        try:
            return _describe_pid(_peer_credentials(probe)[0])
        except OSError:
            return "another process"
    finally:
        probe.close()


def bind(path: str, origin: str, gid=None):
    """A listening, non-blocking socket at path, created 0600 (0660 and group gid with a group)."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ControlError("the control socket path %s is %d bytes long, more than the %d a Unix socket "
                           "allows; %s" % (path, len(os.fsencode(path)), MAX_PATH, HOW_TO_CHOOSE))
    directory = os.path.dirname(path)
    if origin == "default":
        _private_dir(directory, gid)
    else:
        _chosen_dir(directory, gid)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError("%s exists and is not a socket; remove it or %s" % (path, HOW_TO_CHOOSE))
        owner = _live_owner(path)
        if owner is not None:
            raise ControlError("%s is already listening on the control socket %s; to run this pysuper "
                               "beside it, %s" % (owner, path, HOW_TO_CHOOSE))
        try:
            os.unlink(path)  # stale: left behind by a pysuper that is gone
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ControlError("cannot remove the stale control socket %s: %s" % (path, exc.strerror)) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ControlError("another process took the control socket %s just now; %s"
                               % (path, HOW_TO_CHOOSE)) from None
        raise ControlError("cannot create the control socket %s: %s; %s"
                           % (path, exc.strerror or exc, HOW_TO_CHOOSE)) from None
    finally:
        os.umask(old_umask)
    try:
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        _unlink_quietly(path)
        raise ControlError("cannot set up the control socket %s: %s" % (path, exc.strerror or exc)) from None
    return sock


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def serve(supervisor, loop, config_path=None):
    """Listen on the control socket for this supervisor; raise ControlError when that cannot be."""
    settings = supervisor.settings
    if config_path and not config_path.startswith("<"):
        config_path = os.path.abspath(config_path)
    path, origin = resolve(settings.control_socket, config_path)
    if path is None:
        return None
    gid = _group_id(settings.control_group)
    sock = bind(path, origin, gid)
    server = Server(supervisor, loop, sock, path, gid, config_path)
    supervisor.log("control socket: %s" % path)
    return server


# ---------------------------------------------------------------------------------------------
# The server


def _encode(message: dict) -> bytes:
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8", "surrogateescape")


def _loop_callback(method):
    """For methods the loop calls: a bug is logged (and drops the client), it never stops pysuper."""
    import functools

    @functools.wraps(method)
    def run(self, *args):
        try:
            return method(self, *args)
        except Exception as exc:
            server = self if isinstance(self, Server) else self.server
            server.log("internal error in %s: %s: %s" % (method.__name__, type(exc).__name__, exc))
            if isinstance(self, Client):
                try:
                    self.close()
                except Exception:
                    pass
        return None
    return run


class Server:
    def __init__(self, supervisor, loop, sock, path, gid, config_path):
        self.supervisor = supervisor
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.path = path
        self.gid = gid
        self.config_path = config_path
        self.clients = set()
        self.exit_waiters = []  # requests that wait for pysuper to exit (shutdown)
        self.metrics = Metrics(self)
        self.reloader = Reloader(self)
        self.own_uid = os.geteuid()
        info = os.stat(path)
        self._identity = (info.st_dev, info.st_ino)
        self._accept_timer = None
        self.closed = False
        loop.add_reader(self.fd, self._on_accept)
        supervisor.on_reload = self._on_sighup
        supervisor.on_exit.append(self.close)

    def log(self, text: str):
        self.supervisor.log("control: %s" % text)

    # -- connections -------------------------------------------------------------------------
    @_loop_callback
    def _on_accept(self):
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting(exc)
                return  # ECONNABORTED and friends: the client is already gone
            conn.setblocking(False)
            if len(self.clients) >= MAX_CLIENTS:
                _send_now(conn, {"v": PROTOCOL, "ok": False, "kind": "busy",
                                 "error": "too many control connections (%d); try again" % MAX_CLIENTS})
                _discard_input(conn)
                conn.close()
                continue
            try:
                Client(self, conn)
            except OSError:
                conn.close()

    def _pause_accepting(self, exc):
        """Out of file descriptors: stop accepting for a moment instead of spinning on the listener."""
        if self._accept_timer is None:
            self.log("cannot accept connections: %s; retrying in 1 s" % (exc.strerror or exc))
            self.loop.remove_reader(self.fd)
            self._accept_timer = self.loop.call_later(1.0, self._resume_accepting)

    @_loop_callback
    def _resume_accepting(self):
        self._accept_timer = None
        if not self.closed:
            self.loop.add_reader(self.fd, self._on_accept)

    def allowed(self, uid: int, gid: int, conn) -> bool:
        if uid in (0, self.own_uid):
            return True
        if self.gid is None:
            return False
        if gid == self.gid or self.gid in _peer_groups(conn):
            return True
        try:
            import grp
            import pwd
            return pwd.getpwuid(uid).pw_name in grp.getgrgid(self.gid).gr_mem
        except (KeyError, OSError):
            return False

    # -- reload ------------------------------------------------------------------------------
    @_loop_callback
    def _on_sighup(self):
        self.log("received SIGHUP; reloading %s" % (self.config_path or "the config"))
        self.reloader.request(self._log_reload)

    def _log_reload(self, result, errors):
        if errors:
            self.log("the config has errors; still running the previous one:")
            for line in errors:
                self.log("  %s" % line)
            return
        self.log("reloaded: %s" % describe_reload(result))

    # -- exit --------------------------------------------------------------------------------
    def close(self):
        """pysuper is exiting: tell shutdown waiters the exit code, drop clients, remove the socket."""
        if self.closed:
            return
        self.closed = True
        for request in self.exit_waiters:
            request.event({"event": "exit", "code": self.supervisor.exit_code})
        if self._accept_timer is not None:
            self._accept_timer.cancel()
        else:
            self.loop.remove_reader(self.fd)
        self.sock.close()
        try:
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)
        except OSError:
            pass
        for client in list(self.clients):
            client.flush_and_close()


def _peer_groups(conn):
    """Supplementary groups of the peer (SO_PEERGROUPS, Linux >= 4.13); () when unknown or more than 256."""
    try:
        data = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)  # the most Python allows
    except OSError:
        return ()
    return struct.unpack("%dI" % (len(data) // 4), data[:len(data) // 4 * 4])


def _send_now(conn, message):
    try:
        conn.send(_encode(message))
    except OSError:
        pass


def _discard_input(conn):
    """Read what the peer already sent: closing a Unix socket with unread input resets the peer,
    which could then miss the error line written just before."""
    for _ in range(16):
        try:
            if not conn.recv(65536):
                return
        except OSError:
            return


def _guarded(request, callback):
    """callback for the supervisor or a log ring: a bug in it fails the request, never the loop."""
    def run(*args):
        try:
            callback(*args)
        except Exception as exc:
            request.server.log("internal error: %s: %s" % (type(exc).__name__, exc))
            request.fail("internal error: %s: %s" % (type(exc).__name__, exc), "internal")
    return run


class Client:
    """One connection: reads request lines, runs them one at a time, writes the responses."""

    def __init__(self, server, conn):
        self.server = server
        self.loop = server.loop
        self.conn = conn
        self.fd = conn.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.request = None  # the request being carried out
        self.closed = False
        self.eof = False
        self.close_when_flushed = False
        self.writing = False
        self.timer = None
        self.on_close = []
        self.pid, self.uid, self.gid = _peer_credentials(conn)
        self.refused = not server.allowed(self.uid, self.gid, conn)
        server.clients.add(self)
        self.loop.add_reader(self.fd, self._on_readable)
        self._arm_timer()
        if self.refused:
            # Answer, then keep reading (and discarding) until the client hangs up: closing at once
            # could reset the connection before the client has read why.
            server.log("refused a connection from uid %d (pid %d): only root, uid %d%s may use the control "
                       "socket" % (self.uid, self.pid, server.own_uid,
                                   " and members of control_group" if server.gid is not None else ""))
            self.send({"v": PROTOCOL, "ok": False, "kind": "permission",
                       "error": "permission denied: uid %d may not control this pysuper (only root, uid %d%s)"
                                % (self.uid, server.own_uid, " or members of its control_group"
                                   if server.gid is not None else "")})

    # -- timers ------------------------------------------------------------------------------
    def _arm_timer(self):
        self._cancel_timer()
        self.timer = self.loop.call_later(REQUEST_TIMEOUT, self._on_timeout)

    def _cancel_timer(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    @_loop_callback
    def _on_timeout(self):
        self.timer = None
        if self.request is not None or self.closed:
            return
        if self.inbuf and not self.refused:
            self._fail_and_close("no complete request line within %g s" % REQUEST_TIMEOUT, "timeout")
        else:
            self.close()  # idle

    # -- reading -----------------------------------------------------------------------------
    @_loop_callback
    def _on_readable(self):
        try:
            data = self.conn.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._on_eof()
            return
        if self.refused:
            return
        self.inbuf += data
        if self.request is not None:
            if len(self.inbuf) > MAX_REQUEST:
                self._fail_and_close("too many requests sent ahead of their answers", "too_large")
            return
        self._next_requests()

    def _on_eof(self):
        self.eof = True
        self.loop.remove_reader(self.fd)
        if self.refused:
            self.flush_and_close()
            return
        if self.request is not None and self.request.streaming:
            self.close()  # a follower went away
        elif self.request is None:
            self._next_requests()
            if self.request is None and not self.closed:
                self.flush_and_close()

    def _next_requests(self):
        while not self.closed and self.request is None:
            end = self.inbuf.find(b"\n")
            if end < 0:
                if len(self.inbuf) > MAX_REQUEST:
                    self._fail_and_close("request too large (the limit is %d bytes per line)" % MAX_REQUEST,
                                         "too_large")
                elif self.eof and self.inbuf:
                    line, self.inbuf = bytes(self.inbuf), bytearray()
                    self._handle(line)  # the last request, without its newline
                return
            if end > MAX_REQUEST:
                self._fail_and_close("request too large (the limit is %d bytes per line)" % MAX_REQUEST,
                                     "too_large")
                return
            line = bytes(self.inbuf[:end])
            del self.inbuf[:end + 1]
            if line.strip():
                self._handle(line)

    def _handle(self, line: bytes):
        self._cancel_timer()
        try:
            message = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            self._respond_error(None, "malformed request: not a JSON object on one line (%s)" % exc,
                                "bad_request")
            return
        rid = message.get("id") if isinstance(message, dict) else None
        try:
            command, args = _parse_request(message)
            verb = VERBS.get(command)
            if verb is None:
                raise RequestError("unknown command %r; known commands: %s"
                                   % (command, ", ".join(sorted(VERBS))), "unknown_command")
        except RequestError as exc:
            self._respond_error(rid, str(exc), exc.kind, exc.data)
            return
        request = Request(self, rid)
        self.request = request
        try:
            verb(request, args)
        except RequestError as exc:
            request.fail(str(exc), exc.kind, exc.data)
        except Exception as exc:  # a bug in a verb must not take the supervisor down
            self.server.log("internal error in %s: %s: %s" % (command, type(exc).__name__, exc))
            request.fail("internal error: %s: %s" % (type(exc).__name__, exc), "internal")

    def _respond_error(self, rid, message, kind, data=None):
        response = {"v": PROTOCOL, "ok": False, "error": message, "kind": kind}
        if data is not None:
            response["data"] = data
        if rid is not None:
            response["id"] = rid
        self.send(response)
        self._request_done()

    def _request_done(self):
        self.request = None
        if self.closed:
            return
        if self.eof and b"\n" not in self.inbuf and not self.inbuf:
            self.flush_and_close()
            return
        self._arm_timer()
        if self.inbuf:
            self.loop.call_soon(self._continue)

    @_loop_callback
    def _continue(self):
        if not self.closed and self.request is None:
            self._next_requests()
            if self.eof and self.request is None and not self.closed:
                self.flush_and_close()

    def _fail_and_close(self, message, kind):
        self.send({"v": PROTOCOL, "ok": False, "error": message, "kind": kind})
        self.flush_and_close()

    # -- writing -----------------------------------------------------------------------------
    def send(self, message: dict):
        if self.closed:
            return
        self.outbuf += _encode(message)
        if len(self.outbuf) > MAX_OUTPUT:
            self.server.log("dropped a client (pid %d) that does not read its answers" % self.pid)
            self.close()
            return
        if not self.writing:
            self._write()

    @_loop_callback
    def _write(self):
        while self.outbuf:
            try:
                sent = self.conn.send(self.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the client has gone
                self.close()
                return
            del self.outbuf[:sent]
        if self.outbuf and not self.writing:
            self.writing = True
            self.loop.add_writer(self.fd, self._write)
        elif not self.outbuf:
            if self.writing:
                self.writing = False
                self.loop.remove_writer(self.fd)
            if self.close_when_flushed:
                self.close()

    def flush_and_close(self):
        if self.closed:
            return
        self.close_when_flushed = True
        self._write()

    def close(self):
        if self.closed:
            return
        self.closed = True
        self._cancel_timer()
        self.loop.remove_reader(self.fd)
        if self.writing:
            self.writing = False
            self.loop.remove_writer(self.fd)
        self.server.clients.discard(self)
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                pass
        _discard_input(self.conn)
        self.conn.close()


def _parse_request(message):
    if not isinstance(message, dict):
        raise RequestError("malformed request: expected a JSON object such as "
                           "{\"v\": 1, \"cmd\": \"status\"}")
    version = message.get("v", PROTOCOL)
    if version != PROTOCOL:
        raise RequestError("protocol version %r is not supported; this pysuper speaks version %d"
                           % (version, PROTOCOL), "version")
    command = message.get("cmd")
    if not isinstance(command, str):
        raise RequestError("malformed request: \"cmd\" must be a command name such as \"status\"")
    args = message.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError("malformed request: \"args\" must be an object")
    return command, args


class Request:
    """One request being carried out; its answer may come much later (after a transition)."""

    def __init__(self, client, rid):
        self.client = client
        self.rid = rid
        self.done = False
        self.streaming = False

    @property
    def server(self):
        return self.client.server

    @property
    def supervisor(self):
        return self.client.server.supervisor

    @property
    def gone(self) -> bool:
        return self.client.closed

    def _response(self, fields):
        response = {"v": PROTOCOL}
        response.update(fields)
        if self.rid is not None:
            response["id"] = self.rid
        return response

    def reply(self, data=None, more: bool = False):
        """The answer. With more=True, event lines follow until the connection closes."""
        if self.done:
            return
        fields = {"ok": True, "data": data}
        if more:
            fields["more"] = True
        self.client.send(self._response(fields))
        if more:
            self.streaming = True
            if self.client.eof:
                self.client.close()
            return
        self.done = True
        if self.client.request is self:
            self.client._request_done()

    def fail(self, message: str, kind: str = "failed", data=None):
        if self.done or self.streaming:
            return
        self.done = True
        if self.client.request is self:
            self.client._respond_error(self.rid, message, kind, data)

    def event(self, fields: dict):
        if not self.client.closed:
            self.client.send(self._response(fields))

    def on_close(self, callback):
        self.client.on_close.append(callback)


# ---------------------------------------------------------------------------------------------
# Helpers for the verbs


def _program_names(supervisor, args, key="names", allow_all=True, default_all=False):
    names = args.get(key)
    if names is None or names == []:
        if default_all:
            return list(supervisor.programs)
        raise RequestError("name at least one program%s" % (" (or all)" if allow_all else ""))
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RequestError("\"%s\" must be a list of program names" % key)
    if allow_all and "all" in names and "all" not in supervisor.programs:
        return list(supervisor.programs)
    unknown = [name for name in names if name not in supervisor.programs]
    if unknown:
        raise RequestError(_unknown_message(supervisor, unknown), "unknown_program")
    seen = []
    for name in names:
        if name not in seen:
            seen.append(name)
    return seen


def _unknown_message(supervisor, unknown):
    from pysuper.names import closest
    known = list(supervisor.programs)
    hints = []
    for name in unknown:
        close = [closest(name, known)] if closest(name, known) else []
        hints.append("'%s'%s" % (name, " (did you mean '%s'?)" % close[0] if close else ""))
    return "no program named %s; programs: %s" % (", ".join(hints), ", ".join(known) or "(none)")


def _describe_code(code):
    if code is None:
        return None
    from pysuper.signals import describe_exit
    return describe_exit(code)


def _not_shutting_down(supervisor):
    if supervisor.shutting_down:
        raise RequestError("pysuper is shutting down", "shutting_down")


# ---------------------------------------------------------------------------------------------
# Metrics for `status`: CPU % and memory of each program's whole process tree (psutil, lazily)


class Metrics:
    """Two samples METRICS_INTERVAL apart, taken from the loop's timers; concurrent requests share them."""

    def __init__(self, server):
        self.server = server
        self.loop = server.loop
        self.supervisor = server.supervisor
        self.waiting = []
        self.first = None
        self.started = 0.0

    def measure(self, callback):
        """callback({name: {"cpu_percent": float, "memory_bytes": int}}) after one interval."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            callback({})
            return
        self.waiting.append(callback)
        if len(self.waiting) == 1:
            self.started = self.loop.time()
            try:
                self.first = self._sample()
            except Exception:
                self.first = {}
            self.loop.call_later(METRICS_INTERVAL, self._finish)

    def _sample(self):
        """{name: {(pid, create_time): (cpu seconds, rss)}} for every program with a process."""
        import psutil
        roots = {name: program.pid for name, program in self.supervisor.programs.items()
                 if program.pid is not None}
        if not roots:
            return {}
        children = {}
        for process in psutil.process_iter(["ppid"]):
            ppid = process.info.get("ppid")
            if ppid is not None:
                children.setdefault(ppid, []).append(process.pid)
        sample = {}
        for name, root in roots.items():
            tree, todo = {}, [root]
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, ()))
                try:
                    process = psutil.Process(pid)
                    with process.oneshot():
                        times = process.cpu_times()
                        tree[(pid, process.create_time())] = (times.user + times.system,
                                                              process.memory_info().rss)
                except (psutil.Error, OSError):
                    continue
            sample[name] = tree
        return sample

    @_loop_callback
    def _finish(self):
        waiting, self.waiting = self.waiting, []
        first, self.first = self.first or {}, None
        result = {}
        try:
            elapsed = max(1e-6, self.loop.time() - self.started)
            for name, tree in self._sample().items():
                before = first.get(name, {})
                cpu = sum(max(0.0, used - before[key][0]) for key, (used, _) in tree.items() if key in before)
                result[name] = {"cpu_percent": round(cpu / elapsed * 100.0, 1),
                                "memory_bytes": sum(rss for _, rss in tree.values()),
                                "processes": len(tree)}
        finally:
            for callback in waiting:
                callback(result)  # each is _guarded


# ---------------------------------------------------------------------------------------------
# Reload: one at a time; the next one waits until the previous one has settled


def describe_reload(result) -> str:
    parts = []
    for key in ("added", "changed", "removed"):
        if result.get(key):
            parts.append("%s %s" % (key, ", ".join(result[key])))
    text = "; ".join(parts) if parts else "no changes to programs"
    if result.get("not_applied"):
        text += "; [pysuper] %s take effect when pysuper restarts" % ", ".join(result["not_applied"])
    return text


class Reloader:
    def __init__(self, server):
        self.server = server
        self.queue = []

    def request(self, done):
        """done(result, errors): result is {"added", "changed", "removed", "not_applied"}."""
        self.queue.append(done)
        if len(self.queue) == 1:
            self.server.loop.call_soon(self._next)

    def _next(self):
        if not self.queue:
            return
        try:
            self._apply(self.queue[0])
        except Exception as exc:  # a bug must not leave the queue stuck or stop pysuper
            self.server.log("internal error while reloading: %s: %s" % (type(exc).__name__, exc))
            self._done(self.queue[0], None, ["internal error while reloading: %s: %s"
                                             % (type(exc).__name__, exc)])

    def _apply(self, done):
        supervisor = self.server.supervisor
        try:
            config, errors = self._load()
        except Exception as exc:
            config, errors = None, ["cannot reload: %s: %s" % (type(exc).__name__, exc)]
        if supervisor.shutting_down:
            config, errors = None, ["pysuper is shutting down"]
        if config is None:
            self._done(done, None, errors)
            return
        old_settings = supervisor.config.settings
        not_applied = [key for key in ("log_format", "timestamps", "color", "control_socket",
                                       "control_group")
                       if getattr(old_settings, key) != getattr(config.settings, key)]
        programs = supervisor.programs
        old = {name: programs[name] for name in config.programs if name in programs}
        added, changed, removed = supervisor.apply_config(config)
        result = {"added": added, "changed": changed, "removed": removed, "not_applied": not_applied}

        def settled():
            return (all(supervisor.programs.get(name) is not old[name] for name in changed)
                    and all(name not in supervisor.programs for name in removed))

        supervisor.when(settled, lambda: self._done(done, result, []))

    def _load(self):
        from pysuper import config as configmod
        path = self.server.config_path
        if not path or path.startswith("<"):
            return None, ["pysuper was not started from a config file; there is nothing to reload"]
        try:
            config = configmod.load(path)
        except configmod.ConfigError as exc:
            return None, exc.errors
        problems = configmod.host_problems(config)
        if problems:
            return None, problems
        return config, []

    def _done(self, done, result, errors):
        self.queue.pop(0)
        if self.queue:
            self.server.loop.call_soon(self._next)
        try:
            done(result, errors)
        except Exception as exc:
            self.server.log("internal error after a reload: %s: %s" % (type(exc).__name__, exc))


# ---------------------------------------------------------------------------------------------
# The verbs: verb(request, args) answers with request.reply(...) or raises RequestError


def verb_status(request, args):
    supervisor = request.supervisor
    names = _program_names(supervisor, args, allow_all=True, default_all=True)
    rows = [dict(row) for row in supervisor.status() if row["name"] in names]
    rows.sort(key=lambda row: names.index(row["name"]))
    for row in rows:
        row["last_exit_text"] = _describe_code(row["last_exit"])
        program = supervisor.programs.get(row["name"])
        row["autostart"] = program.config.autostart if program is not None else None
        row["removed"] = row["name"] not in supervisor.config.programs

    def reply(metrics):
        for row in rows:
            found = metrics.get(row["name"], {})
            row["cpu_percent"] = found.get("cpu_percent")
            row["memory_bytes"] = found.get("memory_bytes")
            row["processes"] = found.get("processes")
        request.reply({"programs": rows})

    if args.get("metrics", True) and any(row["pid"] is not None for row in rows):
        request.server.metrics.measure(_guarded(request, reply))
    else:
        reply({})


def _program_result(supervisor, name, ok, message, state=None):
    program = supervisor.programs.get(name)
    return {"name": name, "ok": ok, "message": message,
            "state": state or (program.state if program is not None else None),
            "pid": program.pid if program is not None else None}


def _started_result(supervisor, name, state, verb):
    from pysuper.program import BACKOFF, EXITED, RUNNING
    program = supervisor.programs.get(name)
    if program is None:
        return _program_result(supervisor, name, False, "was removed by a reload", state)
    if state == RUNNING:
        return _program_result(supervisor, name, True, "%s (pid %s)" % (verb, program.pid), state)
    if state == EXITED and program.healthy_exit:
        return _program_result(supervisor, name, True, "ran and %s (expected)"
                               % _describe_code(program.last_exit), state)
    why = program.spawn_error or _describe_code(program.last_exit) or "no exit status"
    if state == BACKOFF:
        return _program_result(supervisor, name, False, "failed to start (%s); retrying (BACKOFF)" % why,
                               state)
    return _program_result(supervisor, name, False, "failed to start (%s); now %s" % (why, state), state)


def _transition_verb(kind):
    def verb(request, args):
        supervisor = request.supervisor
        _not_shutting_down(supervisor)
        names = _program_names(supervisor, args)
        if kind != "stop":
            removed = [name for name in names if name not in supervisor.config.programs]
            if removed:
                raise RequestError("%s %s removed from the config by a reload"
                                   % (", ".join(removed), "was" if len(removed) == 1 else "were"),
                                   "unknown_program")
        results = {}
        before = {name: supervisor.programs[name].state for name in names}
        pending = set(names)

        def finished(name, state):
            if kind == "stop":
                results[name] = _stopped_result(supervisor, name, state, before[name])
            elif kind == "start" and before[name] == "RUNNING" and state == "RUNNING":
                results[name] = _program_result(supervisor, name, True, "already running", state)
            else:
                results[name] = _started_result(supervisor, name, state,
                                                 "restarted" if kind == "restart" else "started")
            pending.discard(name)
            if not pending:
                request.reply({"results": [results[name] for name in names]})

        api = {"start": supervisor.start_program, "stop": supervisor.stop_program,
               "restart": supervisor.restart_program}[kind]
        for name in names:
            api(name, _guarded(request, lambda state, name=name: finished(name, state)))
    return verb


def _stopped_result(supervisor, name, state, before):
    from pysuper.program import ACTIVE
    program = supervisor.programs.get(name)
    if state in ACTIVE:
        return _program_result(supervisor, name, False, "did not stop; now %s" % state, state)
    if before not in ACTIVE:
        return _program_result(supervisor, name, True, "was not running (%s)" % before, state)
    how = ""
    if program is not None and program.killed:
        how = "; it needed SIGKILL after stop_timeout"
    elif program is not None and program.last_exit is not None:
        how = " (%s)" % _describe_code(program.last_exit)
    return _program_result(supervisor, name, True, "stopped%s" % how, state)


def verb_signal(request, args):
    from pysuper.config import to_signal
    from pysuper.signals import name as signal_name
    supervisor = request.supervisor
    raw = args.get("signal")
    try:
        signum = to_signal(raw)
    except ValueError as exc:
        raise RequestError("signal %s: %s" % (json.dumps(raw), exc)) from None
    names = _program_names(supervisor, args)
    results = []
    for name in names:
        program = supervisor.programs[name]
        if supervisor.signal_program(name, signum):
            results.append(_program_result(supervisor, name, True, "sent %s to process group %s"
                                           % (signal_name(signum), program.pgid)))
        else:
            results.append(_program_result(supervisor, name, False, "not running (%s)" % program.state))
    request.reply({"results": results, "signal": signal_name(signum)})


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", "surrogateescape")


def verb_logs(request, args):
    supervisor = request.supervisor
    if supervisor.output.fmt == "raw":
        raise RequestError("no logs are kept with log_format = \"raw\": programs write straight to pysuper's "
                           "stdout and stderr; use log_format = \"prefix\" or \"json\" to keep the last lines",
                           "unavailable")
    names = _program_names(supervisor, {"names": args.get("name")}, allow_all=False)
    if len(names) != 1:
        raise RequestError("logs takes one program name")
    count = args.get("lines", 10)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise RequestError("\"lines\" must be a whole number >= 0")
    ring = supervisor.output.ring(names[0])
    lines = ring.lines(count) if count else []
    data = {"name": names[0], "lines": [{"stream": stream, "line": _line_text(line)} for stream, line in lines]}
    if not args.get("follow"):
        request.reply(data)
        return

    def follower(stream, block):
        pieces = block.split(b"\n")
        if pieces and pieces[-1] == b"":
            pieces.pop()
        request.event({"event": "log", "lines": [{"stream": stream, "line": _line_text(piece)}
                                                 for piece in pieces]})

    follower = _guarded(request, follower)
    ring.followers.append(follower)
    request.on_close(lambda: ring.followers.remove(follower) if follower in ring.followers else None)
    request.reply(data, more=True)


def verb_reload(request, args):
    _not_shutting_down(request.supervisor)

    def done(result, errors):
        if errors:
            request.fail("the config has errors; pysuper keeps running the previous one", "invalid_config",
                         {"errors": errors})
        else:
            request.server.log("reloaded on request: %s" % describe_reload(result))
            request.reply(result)

    request.server.reloader.request(_guarded(request, done))


def verb_health(request, args):
    supervisor = request.supervisor
    healthy, problems = supervisor.health()
    if supervisor.shutting_down:
        healthy, problems = False, ["pysuper is shutting down"] + list(problems)
    request.reply({"healthy": healthy, "problems": problems})


def verb_shutdown(request, args):
    supervisor = request.supervisor
    client = request.client
    live = [name for name, row in ((row["name"], row) for row in supervisor.status())
            if row["state"] in ("STARTING", "RUNNING", "BACKOFF", "STOPPING")]
    request.server.exit_waiters.append(request)
    request.reply({"stopping": live}, more=True)
    supervisor.shutdown("shutdown requested by pysuper ctl (uid %d, pid %d)" % (client.uid, client.pid))


def verb_version(request, args):
    from pysuper import __version__
    request.reply({"version": __version__, "protocol": PROTOCOL, "pid": os.getpid(),
                   "socket": request.server.path})


VERBS = {
    "status": verb_status,
    "start": _transition_verb("start"),
    "stop": _transition_verb("stop"),
    "restart": _transition_verb("restart"),
    "signal": verb_signal,
    "logs": verb_logs,
    "reload": verb_reload,
    "health": verb_health,
    "shutdown": verb_shutdown,
    "version": verb_version,
}
