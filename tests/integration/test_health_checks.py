"""Checks against real servers on the real event loop: tcp, http, https, exec (through the one
reaper of `health.probe`), sd_notify datagrams from real processes, and the ready schedule."""

import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

from pysuper import health, probes
from pysuper.notify import Notifier
from test_health_support import DEADLINE, check, fresh_loop, run


@pytest.fixture
def loop():
    yield from fresh_loop()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A threaded HTTP server whose answer the test chooses: status, headers."""

    def __init__(self, status=200, headers=(), context=None, close_early=False):
        outer = self
        self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append((self.path, dict(self.headers)))
                if close_early:
                    self.close_connection = True
                    return
                self.send_response(outer.status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.status = status
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if context is not None:
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def one_try(loop, item, target=None):
    results = []
    probes.attempt(loop, item, results.append, target)
    run(loop, lambda: results)
    return results[0]


# -- tcp ------------------------------------------------------------------------------------------
def test_tcp_passes_when_listening_and_fails_when_refused(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    assert one_try(loop, check("tcp", ("127.0.0.1", port))) is None
    listener.close()
    error = one_try(loop, check("tcp", ("127.0.0.1", port)))
    assert error == "tcp 127.0.0.1:%d: connection refused" % port


def test_tcp_resolves_names_without_blocking_the_loop(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        assert one_try(loop, check("tcp", ("localhost", port))) is None
        error = one_try(loop, check("tcp", ("no-such-host.invalid", port), timeout=5))
        assert error.startswith("tcp no-such-host.invalid:%d: cannot resolve no-such-host.invalid" % port)
    finally:
        listener.close()


def test_tcp_times_out_on_a_full_backlog(loop):
    # A listening socket whose backlog is full and never accepted: the SYN goes unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        began = time.monotonic()
        error = one_try(loop, check("tcp", ("127.0.0.1", port), timeout=0.3))
        assert error == "tcp 127.0.0.1:%d: no answer within 0.3 s" % port
        assert time.monotonic() - began < 5
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- http -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [200, 204, 301, 302, 399])
def test_http_2xx_and_3xx_pass_without_following(loop, status):
    server = Server(status, headers=[("Location", "http://127.0.0.1:1/elsewhere")])
    try:
        url = "http://127.0.0.1:%d/health?x=1" % server.port
        assert one_try(loop, check("http", url)) is None
        assert [path for path, _ in server.requests] == ["/health?x=1"]
        _, headers = server.requests[0]
        assert headers["Connection"] == "close"
        assert headers["Host"] == "127.0.0.1:%d" % server.port
    finally:
        server.close()


@pytest.mark.parametrize("status,reason", [(404, "Not Found"), (500, "Internal Server Error"),
                                           (503, "Service Unavailable")])
def test_http_4xx_and_5xx_fail_with_the_status(loop, status, reason):
    server = Server(status)
    try:
        url = "http://127.0.0.1:%d/" % server.port
        assert one_try(loop, check("http", url)) == "http %s: HTTP %d %s" % (url, status, reason)
    finally:
        server.close()


def test_http_closed_without_an_answer_fails(loop):
    server = Server(close_early=True)
    try:
        url = "http://127.0.0.1:%d/" % server.port
        assert one_try(loop, check("http", url)) == \
            "http %s: the connection was closed before an answer" % url
    finally:
        server.close()


def test_http_refused(loop):
    url = "http://127.0.0.1:%d/" % free_port()
    assert one_try(loop, check("http", url)) == "http %s: connection refused" % url


def test_http_silent_server_times_out(loop):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)  # accepted by the kernel, never answered
    try:
        url = "http://127.0.0.1:%d/" % listener.getsockname()[1]
        assert one_try(loop, check("http", url, timeout=0.2)) == "http %s: no answer within 0.2 s" % url
    finally:
        listener.close()


@pytest.fixture(scope="module")
def tls_context(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a self-signed certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=example.invalid", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def test_https_with_a_self_signed_certificate_passes(loop, tls_context):
    server = Server(200, context=tls_context)
    try:
        assert one_try(loop, check("http", "https://127.0.0.1:%d/" % server.port)) is None
        assert one_try(loop, check("http", "https://localhost:%d/" % server.port)) is None
        server.status = 503
        url = "https://127.0.0.1:%d/x" % server.port
        assert one_try(loop, check("http", url)) == "http %s: HTTP 503 Service Unavailable" % url
    finally:
        server.close()


def test_https_against_plain_http_fails_with_a_reason(loop):
    server = Server(200)
    try:
        url = "https://127.0.0.1:%d/" % server.port
        error = one_try(loop, check("http", url))
        assert error.startswith("http %s: " % url) and len(error) > len("http %s: " % url)
    finally:
        server.close()


# -- exec through health.probe (its own loop and reaper) ------------------------------------------
def test_probe_exec_exit_codes_and_output(tmp_path):
    passed, message, _ = health.probe(check("exec", ("true",)))
    assert passed and message == "exec true: passed"
    argv = (sys.executable, "-c", "import sys; print('not yet: ' + open('f').read()); sys.exit(3)")
    (tmp_path / "f").write_text("warming up")
    passed, message, _ = health.probe(check("exec", argv), directory=str(tmp_path))
    assert not passed
    assert message.endswith(": exited with code 3: not yet: warming up")


def test_probe_exec_environment_and_missing_command(tmp_path):
    argv = ("sh", "-c", 'test "$WANTED" = yes')
    assert health.probe(check("exec", argv), environment={"WANTED": "yes", "PATH": os.environ["PATH"]})[0]
    assert not health.probe(check("exec", argv), environment={"WANTED": "no", "PATH": os.environ["PATH"]})[0]
    passed, message, _ = health.probe(check("exec", ("no-such-command-xyz",)))
    assert not passed and message == "exec no-such-command-xyz: no-such-command-xyz: command not found"


def test_probe_exec_is_killed_with_its_group_at_the_timeout(tmp_path):
    marker = tmp_path / "pids"
    argv = ("sh", "-c", "sleep 30 & echo $! > %s; exec sleep 30" % marker)
    began = time.monotonic()
    passed, message, seconds = health.probe(check("exec", argv, timeout=0.5))
    assert not passed and message == "exec %s: no answer within 0.5 s" % " ".join(argv)
    assert time.monotonic() - began < 5
    # The background sleep was in the check's process group: killed too (gone, or a zombie that
    # init has not reaped yet; dying takes the kernel a moment after SIGKILL is sent).
    grandchild = int(marker.read_text())
    deadline = time.monotonic() + DEADLINE
    while not dead(grandchild) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert dead(grandchild)


def dead(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(") ", 1)[1].startswith(("Z", "X"))
    except FileNotFoundError:
        return True


def test_probe_tcp_and_http():
    server = Server(200)
    try:
        assert health.probe(check("tcp", ("127.0.0.1", server.port)))[0]
        passed, message, seconds = health.probe(check("http", "http://127.0.0.1:%d/" % server.port))
        assert passed and seconds < DEADLINE
    finally:
        server.close()
    assert not health.probe(check("tcp", ("127.0.0.1", server.port)))[0]


# -- the ready schedule ---------------------------------------------------------------------------
class NoTarget:
    def __init__(self, loop):
        self.loop = loop


def test_ready_flips_at_the_first_try_after_the_server_listens(loop):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    events = []

    class Watched(health.Readiness):
        def _tried(self, began, error):
            events.append(("tried", error))
            if len([e for e in events if e[0] == "tried"]) == 3:
                sock.listen(1)
                events.append(("listening", None))
            super()._tried(began, error)

    readiness = Watched(NoTarget(loop), check("tcp", ("127.0.0.1", port)), lambda: events.append(("ready", None)),
                        lambda why: events.append(("timeout", why)))
    readiness.start()
    run(loop, lambda: events and events[-1][0] in ("ready", "timeout"))
    sock.close()
    kinds = [kind for kind, _ in events]
    assert kinds == ["tried", "tried", "tried", "listening", "tried", "ready"]
    assert events[0][1] == "tcp 127.0.0.1:%d: connection refused" % port
    assert not readiness.active and readiness._timer is None and readiness._deadline is None


def test_ready_start_timeout_reports_the_last_error(loop):
    port = free_port()
    reasons = []
    readiness = health.Readiness(NoTarget(loop), check("tcp", ("127.0.0.1", port), interval=0.05,
                                                       start_timeout=0.3),
                                 lambda: reasons.append("ready"), reasons.append)
    readiness.start()
    run(loop, lambda: reasons)
    assert reasons == ["not ready within start_timeout = 0.3 s; last check: tcp 127.0.0.1:%d: "
                       "connection refused" % port]


# -- sd_notify ------------------------------------------------------------------------------------
def send_from_child(path, message):
    """A child of the test process sends one datagram, then stays alive until its stdin closes."""
    code = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n"
            "s.sendto(sys.argv[2].encode(), sys.argv[1])\n"
            "sys.stdin.read()\n")
    return subprocess.Popen([sys.executable, "-c", code, path, message], stdin=subprocess.PIPE)


def test_notify_ready_and_status_from_a_descendant(loop, tmp_path):
    messages = []
    notifier = Notifier(loop, messages.append, str(tmp_path))
    ready = []
    try:
        assert notifier.environment() == {"NOTIFY_SOCKET": notifier.path}
        assert oct(os.stat(notifier.path).st_mode & 0o777) == "0o666"
        notifier.attach("db", os.getpid)  # the test process stands for the program; its child sends
        notifier.expect_ready("db", lambda: ready.append(True))
        child = send_from_child(notifier.path, "STATUS=loading tables\n")
        run(loop, lambda: notifier.status.get("db") == "loading tables")
        assert not ready
        child2 = send_from_child(notifier.path, "READY=1\nSTATUS=accepting connections")
        run(loop, lambda: ready)
        assert notifier.status["db"] == "accepting connections"
        for process in (child, child2):
            process.communicate(b"", timeout=DEADLINE)
        assert messages == []
    finally:
        notifier.close()
    assert not os.path.exists(notifier.path)


def test_notify_from_outside_the_program_tree_is_ignored(loop, tmp_path):
    messages = []
    notifier = Notifier(loop, messages.append, str(tmp_path))
    stranger = subprocess.Popen(["sleep", "30"])
    try:
        notifier.attach("db", lambda: stranger.pid)  # the program is `sleep`; the test process sends
        notifier.expect_ready("db", lambda: messages.append("READY"))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"READY=1\nSTATUS=forged", notifier.path)
        run(loop, lambda: messages)
        assert messages == ["notify: ignored a message from pid %d: not a process of a program with "
                            "ready = { notify = true } (or it exited before it was read)" % os.getpid()]
        assert "db" not in notifier.status
    finally:
        stranger.kill()
        stranger.wait()
        notifier.close()
