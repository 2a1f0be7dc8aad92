"""`pysuper probe tcp|http|exec` against real servers and commands: exit 0 when the check passes,
1 when it fails, each with one line saying why; 2 for usage errors."""

import http.server
import socket
import sys
import threading

import pytest

from conftest import run_cli


def _checks_available():
    try:
        from pysuper import health
    except ImportError:
        return False
    return hasattr(health, "probe")


needs_checks = pytest.mark.skipif(not _checks_available(), reason="pysuper/health.py (the checks) is not in this tree")


def probe(*args, timeout=30):
    return run_cli(["probe"] + [str(a) for a in args], timeout=timeout)


def one_line(done):
    text = (done.stdout + done.stderr).strip()
    assert len(text.splitlines()) == 1, text
    return text


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once it is closed


@pytest.fixture
def web():
    """A small HTTP server: /ok answers 200, /moved 302, anything else 500."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            code = {"/ok": 200, "/moved": 302}.get(self.path, 500)
            self.send_response(code)
            if code == 302:
                self.send_header("Location", "/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join(10)


@needs_checks
def test_tcp_pass_and_fail(listener):
    done = probe("tcp", "127.0.0.1:%d" % listener)
    assert done.returncode == 0, done.stderr
    assert str(listener) in one_line(done)
    done = probe("tcp", listener)  # the port alone: 127.0.0.1
    assert done.returncode == 0, done.stderr
    port = closed_port()
    done = probe("tcp", "127.0.0.1:%d" % port)
    assert done.returncode == 1
    assert "refused" in one_line(done).lower()


@needs_checks
def test_http_pass_redirect_and_fail(web):
    done = probe("http", web + "/ok")
    assert done.returncode == 0, done.stderr
    one_line(done)
    assert probe("http", web + "/moved").returncode == 0  # 3xx passes, not followed
    done = probe("http", web + "/broken")
    assert done.returncode == 1
    assert "500" in one_line(done)
    done = probe("http", "http://127.0.0.1:%d/" % closed_port())
    assert done.returncode == 1
    one_line(done)


@needs_checks
def test_exec_pass_fail_and_timeout():
    done = probe("exec", "--", sys.executable, "-c", "pass")
    assert done.returncode == 0, done.stderr
    one_line(done)
    done = probe("exec", "--", sys.executable, "-c", "import sys; sys.exit(3)")
    assert done.returncode == 1
    assert "3" in one_line(done)
    done = probe("--timeout", "0.5", "exec", "--", sys.executable, "-c", "import time; time.sleep(30)")
    assert done.returncode == 1
    assert "0.5" in one_line(done) or "time" in one_line(done).lower()


@pytest.mark.parametrize("args,message", [
    ([], "probe needs a check"),
    (["tpc", "80"], 'did you mean "tcp"'),
    (["tcp"], "tcp takes one HOST:PORT"),
    (["tcp", "host:port"], "expected HOST:PORT or PORT"),
    (["tcp", "70000"], "expected HOST:PORT or PORT"),
    (["http", "example.com"], "expected a URL starting with http://"),
    (["exec", "--"], "exec needs a command"),
    (["--timeout", "x", "tcp", "80"], "--timeout needs a number"),
])
def test_usage_errors_exit_2(args, message):
    done = probe(*args)
    assert done.returncode == 2
    assert message in one_line(done) and done.stdout == ""
