"""The control server: the listening socket and its peer connections, driven by the event loop.

Nothing here blocks: the listening socket and every peer connection are non-blocking and driven by
the loop; a peer gets REQUEST_TIMEOUT seconds to send a whole request, at most MAX_PEERS are served
at once, and a peer that stops reading is dropped once MAX_OUTPUT bytes are waiting for it. Requests
on one connection are carried out one at a time and answered in order; whatever goes wrong while
carrying one out (a malformed line, a bug in a verb) becomes an error answer on that connection.
"""

import errno
import functools
import os

from pysuper.control import bind as binding
from pysuper.control import protocol
from pysuper.control.paths import resolve
from pysuper.control.protocol import RequestError

REQUEST_TIMEOUT = 10.0  # seconds a peer has to send a whole request
MAX_PEERS = 256
MAX_OUTPUT = 8 * 1024 * 1024  # bytes waiting for a peer that does not read
ACCEPT_BATCH = 64
ACCEPT_RETRY_FIRST = 0.1  # seconds before accept() is tried again after EMFILE; doubling
ACCEPT_RETRY_MAX = 5.0


def serve(supervisor, loop, config_path=None):
    """Listen on the control socket for this supervisor (None when it is turned off).

    Raises bind.ControlError when the socket cannot be set up.
    """
    settings = supervisor.settings
    if config_path and not config_path.startswith("<"):
        config_path = os.path.abspath(config_path)
    path, origin = resolve(settings.control_socket, config_path, pid1=supervisor.pid1)
    if path is None:
        return None
    gid = binding.group_id(settings.control_group)
    sock = binding.bind(path, origin, gid)
    server = Server(supervisor, loop, sock, path, gid)
    supervisor.log("control socket: %s" % path)
    return server


def _loop_callback(method):
    """For methods the loop calls: a bug is logged (and drops the peer), it never stops pysuper."""

    @functools.wraps(method)
    def run(self, *args):
        try:
            return method(self, *args)
        except Exception as exc:
            server = self if isinstance(self, Server) else self.server
            server.log("internal error in %s: %s: %s" % (method.__name__, type(exc).__name__, exc))
            if isinstance(self, PeerConnection):
                try:
                    self.close()
                except Exception:
                    pass
        return None
    return run


class Server:
    def __init__(self, supervisor, loop, sock, path, gid):
        self.supervisor = supervisor
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.path = path
        self.gid = gid
        self.peers = set()
        self.exit_waiters = []  # requests that wait for pysuper to exit (shutdown)
        self._metrics = None
        self.own_uid = os.geteuid()
        info = os.stat(path)
        self._identity = (info.st_dev, info.st_ino)
        self._accept_timer = None
        self._accept_delay = ACCEPT_RETRY_FIRST  # before the next try while accept() fails (EMFILE)
        self._starved = False  # accept() failed for want of descriptors and has not caught up since
        self.closed = False
        loop.add_reader(self.fd, self._on_accept)
        supervisor.on_exit.append(self.close)

    @property
    def metrics(self):
        """The CPU/memory sampler, made with the first `status` that asks for figures."""
        if self._metrics is None:
            from pysuper import metrics
            self._metrics = metrics.Metrics(self.loop)
        return self._metrics

    def log(self, text: str):
        self.supervisor.log("control: %s" % text)

    # -- connections -------------------------------------------------------------------------
    @_loop_callback
    def _on_accept(self):
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                if self._starved:  # every waiting connection taken: the shortage is over
                    self._starved = False
                    self.log("accepting connections again")
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._pause_accepting(exc)
                return  # ECONNABORTED and friends: the peer is already gone
            conn.setblocking(False)
            self._accept_delay = ACCEPT_RETRY_FIRST
            if len(self.peers) >= MAX_PEERS:
                _send_now(conn, protocol.error_response(None, "too many control connections (%d); try again"
                                                        % MAX_PEERS, "busy"))
                _discard_input(conn)
                conn.close()
                continue
            try:
                PeerConnection(self, conn)
            except OSError:
                conn.close()

    def _pause_accepting(self, exc):
        """Out of file descriptors: stop accepting for a while instead of spinning on the listener;
        said once, retried after ACCEPT_RETRY_FIRST seconds, doubling up to ACCEPT_RETRY_MAX."""
        if self._accept_timer is None:
            if not self._starved:
                self._starved = True
                self.log("cannot accept connections: %s; retrying until it works" % (exc.strerror or exc))
            self.loop.remove_reader(self.fd)
            self._accept_timer = self.loop.call_later(self._accept_delay, self._resume_accepting)
            self._accept_delay = min(ACCEPT_RETRY_MAX, self._accept_delay * 2)

    @_loop_callback
    def _resume_accepting(self):
        self._accept_timer = None
        if not self.closed:
            self.loop.add_reader(self.fd, self._on_accept)
            self._on_accept()  # also learns that nothing is waiting any more

    # -- exit --------------------------------------------------------------------------------
    def close(self):
        """pysuper is exiting: tell shutdown waiters the exit code, drop peers, remove the socket."""
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
        for peer in list(self.peers):
            peer.flush_and_close()


def _send_now(conn, message):
    try:
        conn.send(protocol.encode(message))
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


class PeerConnection:
    """One accepted connection: reads request lines, runs them one at a time, writes the answers."""

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
        self.pid, self.uid, self.gid = binding.peer_credentials(conn)
        self.refused = not binding.permitted(conn, self.uid, self.gid, server.own_uid, server.gid)
        server.peers.add(self)
        self.loop.add_reader(self.fd, self._on_readable)
        self._arm_timer()
        if self.refused:
            # Answer, then keep reading (and discarding) until the peer hangs up: closing at once
            # could reset the connection before the peer has read why.
            server.log("refused a connection from uid %d (pid %d): only root, uid %d%s may use the control "
                       "socket" % (self.uid, self.pid, server.own_uid,
                                   " and members of control_group" if server.gid is not None else ""))
            self.send(protocol.error_response(
                None, "permission denied: uid %d may not control this pysuper (only root, uid %d%s)"
                % (self.uid, server.own_uid, " or members of its control_group" if server.gid is not None
                   else ""), "permission"))

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
            if len(self.inbuf) > protocol.MAX_REQUEST:
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
            try:
                line = protocol.take_line(self.inbuf, self.eof)
            except RequestError as exc:
                self._fail_and_close(str(exc), exc.kind)
                return
            if line is None:
                return
            if line.strip():
                self._handle(line)

    def _handle(self, line: bytes):
        """Carry out one request line; whatever happens, it is answered."""
        self._cancel_timer()
        rid = None
        try:
            rid, command, args = protocol.parse_request(line)
            from pysuper.control.verbs import VERBS  # loaded with the first request, not at start-up
            verb = VERBS.get(command)
            if verb is None:
                raise RequestError("unknown command %r; known commands: %s" % (command, ", ".join(sorted(VERBS))),
                                   "unknown_command")
        except RequestError as exc:
            self._respond_error(exc.rid if exc.rid is not None else rid, str(exc), exc.kind, exc.data)
            return
        except Exception as exc:  # a bug in parsing must not cost the peer its connection
            self.server.log("internal error reading a request: %s: %s" % (type(exc).__name__, exc))
            self._respond_error(None, "internal error: %s: %s" % (type(exc).__name__, exc), "internal")
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
        self.send(protocol.error_response(rid, message, kind, data))
        self._request_done()

    def _request_done(self):
        self.request = None
        if self.closed:
            return
        if self.eof and not self.inbuf:
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
        self.send(protocol.error_response(None, message, kind))
        self.flush_and_close()

    # -- writing -----------------------------------------------------------------------------
    def send(self, message: dict):
        if self.closed:
            return
        try:
            data = protocol.encode(message)
        except (TypeError, ValueError, RecursionError) as exc:  # a bug, or an id too deep to repeat
            self.server.log("internal error: cannot encode an answer: %s: %s" % (type(exc).__name__, exc))
            error = "internal error: cannot encode the answer: %s" % exc
            try:
                data = protocol.encode(protocol.error_response(message.get("id"), error, "internal"))
            except (TypeError, ValueError, RecursionError):
                data = protocol.encode(protocol.error_response(None, error, "internal"))
        self.outbuf += data
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
            except OSError:  # the peer has gone
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
        self.server.peers.discard(self)
        callbacks, self.on_close = self.on_close, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                pass
        _discard_input(self.conn)
        self.conn.close()


class Request:
    """One request being carried out; its answer may come much later (after a transition).

    This is all a verb sees of the connection: reply, fail, event, on_close and guard.
    """

    def __init__(self, peer, rid):
        self.peer = peer
        self.rid = rid
        self.done = False
        self.streaming = False

    @property
    def server(self):
        return self.peer.server

    @property
    def supervisor(self):
        return self.peer.server.supervisor

    def reply(self, data=None, more: bool = False):
        """The answer. With more=True, event lines follow until the connection closes."""
        if self.done:
            return
        fields = {"ok": True, "data": data}
        if more:
            fields["more"] = True
        self.peer.send(protocol.response(self.rid, fields))
        if more:
            self.streaming = True
            if self.peer.eof:
                self.peer.close()
            return
        self.done = True
        if self.peer.request is self:
            self.peer._request_done()

    def fail(self, message: str, kind: str = "failed", data=None):
        if self.done or self.streaming:
            return
        self.done = True
        if self.peer.request is self:
            self.peer._respond_error(self.rid, message, kind, data)

    def event(self, fields: dict):
        if not self.peer.closed:
            self.peer.send(protocol.response(self.rid, fields))

    def on_close(self, callback):
        self.peer.on_close.append(callback)

    def guard(self, callback):
        """callback for the supervisor or a log follower: a bug in it fails this request, never the loop."""
        def run(*args):
            try:
                callback(*args)
            except Exception as exc:
                self.server.log("internal error: %s: %s" % (type(exc).__name__, exc))
                self.fail("internal error: %s: %s" % (type(exc).__name__, exc), "internal")
        return run
