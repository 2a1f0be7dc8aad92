"""conf/orchestration.toml runs to the end: migrate, then web once migrate completed, then client
once web is ready, which asks web until pysuper's health check of web has come; pysuper exits 0 when
the critical client is done."""

import os
import socket

from conftest import ROOT, Pysuper

DEMO = os.path.join(ROOT, "conf", "orchestration.toml")


def test_orchestration_demo_runs_in_order_to_the_end():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    demo = Pysuper(["-c", DEMO], env={"DEMO_PORT": str(port)})
    assert demo.wait(45) == 0
    lines = demo.err.lines
    order = [next(i for i, line in enumerate(lines) if text in line) for text in (
        "web: waiting for migrate (completed)", "migrate: exited with code 0", "web: started with pid",
        "web: ready after", "client: started with pid", "client: exited with code 0")]
    assert order == sorted(order)
    assert demo.out.matching(r"^client +\| request 1: HTTP 200; health checks of web so far: \d+$")
    assert demo.out.matching(r"^web +\| health check 1: ok$")  # pysuper's health check reached web
    assert demo.out.matching(r"^client +\| web answered a health check; exiting 0$")
    assert "exiting with code 0" in demo.last_line()
