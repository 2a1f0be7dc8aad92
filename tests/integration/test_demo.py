"""conf/demo.toml: it runs to the end on a free port, and never talks to someone else's server."""

import http.server
import os
import socket
import threading

from conftest import ROOT, Pysuper

DEMO = os.path.join(ROOT, "conf", "demo.toml")


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_demo_runs_to_the_end():
    demo = Pysuper(["-c", DEMO], env={"DEMO_PORT": str(_free_port())})
    assert demo.wait(45) == 0
    assert len(demo.out.matching(r"^client +\| request \d+: HTTP 200")) == 10
    assert "exiting with code 0" in demo.last_line()


def test_regression_demo_port_taken_says_so_and_exits_nonzero():
    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    other = http.server.HTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    try:
        demo = Pysuper(["-c", DEMO], env={"DEMO_PORT": str(other.server_address[1])})
        assert demo.wait(45) == 2
    finally:
        other.shutdown()
        other.server_close()
    assert demo.err.matching(r"^web +\| cannot listen on 127\.0\.0\.1:\d+ .*DEMO_PORT")
    assert not demo.out.matching(r"^client +\| request \d+: HTTP")
    assert "critical program web is FATAL" in demo.last_line()
