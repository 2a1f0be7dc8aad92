"""One try of a tcp, http(s) or exec check, driven by the event loop without blocking.

`attempt(loop, check, done, target)` starts a try; `done(None)` reports a pass and `done("why")` a
failure, exactly once and never before attempt() has returned; `cancel()` ends a try without a
report. A tcp or http try is a non-blocking socket; an exec try is a process started through the
target (`spawn(argv, output_fd, on_exit) -> pid`, `kill(pid)`), whose exit comes back through the
supervisor's one reaper. Every try ends at the check's `timeout`.

Host names other than IP addresses are resolved in a short-lived thread (the C resolver has no
non-blocking interface) whose answer comes back through a pipe; numeric addresses need none.
https tries do not verify the server's certificate: they ask "is it answering?", not "is it who it
claims to be?". A 3xx answer passes and is not followed.
"""

import errno
import os
import re
import socket

from pysuper.signals import describe_exit

OUTPUT_KEPT = 1024  # bytes of an exec check's output kept for its error message
RESPONSE_LIMIT = 8192  # bytes read at most to find an HTTP status line


def describe(check) -> str:
    """"tcp 127.0.0.1:8080", "http http://...", "exec pg_isready -q", "log 'listening'", "notify"."""
    if check.kind == "tcp":
        host, port = check.target
        return "tcp %s:%d" % ("[%s]" % host if ":" in host else host, port)
    if check.kind == "http":
        return "http %s" % check.target
    if check.kind == "exec":
        return "exec %s" % " ".join(check.target)
    if check.kind == "log":
        return "log %r" % check.target
    return "notify"


def _error_text(code: int) -> str:
    text = os.strerror(code)
    return text[:1].lower() + text[1:]


def _seconds(value: float) -> str:
    return "%g s" % value


# -- one try --------------------------------------------------------------------------------------
class Attempt:
    """One try of a check; calls done(None) when it passes or done("why") when it fails, once."""

    def __init__(self, loop, check, done):
        self.loop = loop
        self.check = check
        self._done = done
        self.finished = False
        self.cancelled = False
        self._timer = loop.call_later(check.timeout, self._timed_out)

    def _finish(self, error):
        if self.finished:
            return
        self.finished = True
        self._timer.cancel()
        self._close()
        # Never from inside the constructor: done() always comes after attempt() has returned.
        self.loop.call_soon(self._deliver, error)

    def _deliver(self, error):
        if not self.cancelled:
            self._done(error)

    def _timed_out(self):
        self._finish("%s: no answer within %s" % (describe(self.check), _seconds(self.check.timeout)))

    def cancel(self):
        """Stop the try; done is not called."""
        self.cancelled = True
        if not self.finished:
            self.finished = True
            self._timer.cancel()
            self._close()

    def _close(self):
        pass


class _Resolver:
    """getaddrinfo in a thread; answer(list of (family, address)) or answer(None, "why") on the loop."""

    def __init__(self, loop, host, port, answer):
        import threading
        self.loop = loop
        self.answer = answer
        self.result = None
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        loop.add_reader(self._r, self._ready)
        threading.Thread(target=self._lookup, args=(host, port), daemon=True, name="resolve").start()

    def _lookup(self, host, port):
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            self.result = ([(family, address) for family, _, _, _, address in found], None)
        except (OSError, UnicodeError) as exc:
            self.result = (None, "cannot resolve %s: %s" % (host, getattr(exc, "strerror", None) or exc))
        try:
            os.write(self._w, b"x")
        except OSError:
            pass  # cancelled meanwhile: nobody reads
        os.close(self._w)

    def _ready(self):
        self.close()
        self.answer(*self.result)

    def close(self):
        if self._r is not None:
            self.loop.remove_reader(self._r)
            os.close(self._r)
            self._r = None


def _resolve(loop, host, port, answer):
    """answer(addresses, None) or answer(None, error); at once for an IP address. Returns a thing
    with close() to cancel, or None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        answer([(family, (host, port) if family == socket.AF_INET else (host, port, 0, 0))], None)
        return None
    return _Resolver(loop, host, port, answer)


class SocketAttempt(Attempt):
    """Connects without blocking to each address of host:port in turn; `connected()` goes on."""

    def __init__(self, loop, check, done, host, port):
        super().__init__(loop, check, done)
        self.sock = None
        self.error = None
        self._addresses = []
        self._resolver = None
        self._resolver = _resolve(loop, host, port, self._resolved)

    def _resolved(self, addresses, error):
        self._resolver = None
        if self.finished:
            return
        if error is not None:
            self._finish("%s: %s" % (describe(self.check), error))
            return
        self._addresses = list(addresses)
        self._next_address()

    def _next_address(self):
        self._drop_socket()
        if not self._addresses:
            self._finish("%s: %s" % (describe(self.check), self.error or "no address"))
            return
        family, address = self._addresses.pop(0)
        self.sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        self.sock.setblocking(False)
        code = self.sock.connect_ex(address)
        if code in (0, errno.EINPROGRESS, errno.EAGAIN):
            self.loop.add_writer(self.sock.fileno(), self._on_connect)
        else:
            self.error = _error_text(code)
            self._next_address()

    def _on_connect(self):
        self.loop.remove_writer(self.sock.fileno())
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = _error_text(code)
            self._next_address()
            return
        self.connected()

    def connected(self):
        self._finish(None)

    def _drop_socket(self):
        if self.sock is not None:
            self.loop.remove_writer(self.sock.fileno())
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def _close(self):
        if self._resolver is not None:
            self._resolver.close()
            self._resolver = None
        self._drop_socket()


class TcpAttempt(SocketAttempt):
    def __init__(self, loop, check, done):
        host, port = check.target
        super().__init__(loop, check, done, host, port)


def split_url(url: str):
    """"https://host:8443/a?b" -> ("https", "host", 8443, "/a?b"); ValueError for anything else."""
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, parts.hostname, port, path


class HttpAttempt(SocketAttempt):
    """GET the URL with Connection: close; 2xx and 3xx pass (a redirect is not followed)."""

    def __init__(self, loop, check, done):
        self.scheme, self.host, self.port, self.path = split_url(check.target)
        self.buffer = b""
        self.request = b""
        super().__init__(loop, check, done, self.host, self.port)

    def connected(self):
        host = "[%s]" % self.host if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        if self.port != default:
            host += ":%d" % self.port
        self.request = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: pysuper\r\nAccept: */*\r\n"
                        "Connection: close\r\n\r\n" % (self.path, host)).encode("latin-1", "replace")
        if self.scheme == "https":
            import ssl
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            server_name = None if self._numeric_host() else self.host
            self.sock = context.wrap_socket(self.sock, server_hostname=server_name,
                                            do_handshake_on_connect=False)
            self._handshake()
        else:
            self._send()

    def _numeric_host(self) -> bool:
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, self.host)
                return True
            except OSError:
                pass
        return False

    def _wait(self, exc, step):
        """Wait for what an ssl 'want' exception asks for, then call step; False for other errors."""
        import ssl
        fd = self.sock.fileno()
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        if isinstance(exc, ssl.SSLWantReadError):
            self.loop.add_reader(fd, step)
        elif isinstance(exc, ssl.SSLWantWriteError):
            self.loop.add_writer(fd, step)
        else:
            return False
        return True

    def _handshake(self):
        try:
            self.sock.do_handshake()
        except OSError as exc:
            if not self._wait(exc, self._handshake):
                self._fail(exc)
            return
        self._send()

    def _send(self):
        fd = self.sock.fileno()
        self.loop.remove_reader(fd)
        self.loop.remove_writer(fd)
        try:
            sent = self.sock.send(self.request)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            if not self._wait(exc, self._send):
                self._fail(exc)
            return
        self.request = self.request[sent:]
        if self.request:
            self.loop.add_writer(fd, self._send)
        else:
            self.loop.add_reader(fd, self._receive)

    def _receive(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                if not self._wait(exc, self._receive):
                    self._fail(exc)
                return
            if not data:
                self._answer(closed=True)
                return
            self.buffer += data
            if b"\n" in self.buffer or len(self.buffer) >= RESPONSE_LIMIT:
                self._answer(closed=False)
                return

    def _answer(self, closed: bool):
        line = self.buffer.split(b"\n", 1)[0].strip().decode("latin-1")
        match = re.match(r"HTTP/\d(?:\.\d)? (\d{3})(?: (.*))?$", line)
        if match is None:
            what = "the connection was closed before an answer" if closed and not line else (
                "not an HTTP answer: %r" % line[:80])
            self._finish("%s: %s" % (describe(self.check), what))
            return
        status = int(match.group(1))
        if 200 <= status < 400:
            self._finish(None)
        else:
            reason = (match.group(2) or "").strip()
            self._finish("%s: HTTP %d%s" % (describe(self.check), status, " " + reason if reason else ""))

    def _fail(self, exc):
        text = exc.strerror if getattr(exc, "strerror", None) else str(exc) or type(exc).__name__
        self._finish("%s: %s" % (describe(self.check), text[:1].lower() + text[1:]))


class ExecAttempt(Attempt):
    """Runs the command through the target; exit 0 passes. Killed (its whole group) at timeout."""

    def __init__(self, loop, check, done, target):
        super().__init__(loop, check, done)
        self.target = target
        self.pid = None
        self.output = b""
        self._fd = None
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            self.pid = target.spawn(list(check.target), write_end, self._exited)
        except OSError as exc:
            os.close(read_end)
            self._finish("%s: %s" % (describe(check), exc))
            return
        finally:
            os.close(write_end)
        os.set_blocking(read_end, False)
        self._fd = read_end
        loop.add_reader(read_end, self._read)

    def _read(self):
        while self._fd is not None:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._close_output()
                return
            self.output = (self.output + data)[-OUTPUT_KEPT:]

    def _close_output(self):
        if self._fd is not None:
            self.loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None

    def _exited(self, code: int):
        self.pid = None
        if self.finished:
            return
        self._read()  # what it wrote just before it exited; its children may keep the pipe open
        if code == 0:
            self._finish(None)
            return
        lines = self.output.decode("utf-8", "replace").strip().splitlines()
        tail = ": %s" % lines[-1].strip()[:200] if lines else ""
        self._finish("%s: %s%s" % (describe(self.check), describe_exit(code), tail))

    def _close(self):
        self._close_output()
        if self.pid is not None:
            self.target.kill(self.pid)


def attempt(loop, check, done, target=None) -> Attempt:
    """Start one try of a tcp, http or exec check (exec needs a target)."""
    if check.kind == "tcp":
        return TcpAttempt(loop, check, done)
    if check.kind == "http":
        return HttpAttempt(loop, check, done)
    if check.kind == "exec":
        return ExecAttempt(loop, check, done, target)
    raise ValueError("%s checks have no single try" % check.kind)
