"""Hostile and unlucky clients: whatever a client sends, it gets an answer and pysuper keeps serving;
a reload cut short by a shutdown does not claim success."""

import json
import os
import subprocess

from test_ctl_support import PYTHON, Client, Pysuper

CONFIG = """
[programs.worker]
command = "sleep 1000"
start_seconds = 0.1
"""


def _answers(client):
    answer = client.request("health")
    assert answer["ok"] and "healthy" in answer["data"], answer


def test_regression_deeply_nested_json_gets_an_error_reply():
    """30,000-deep arrays (a RecursionError in the parser) used to drop the connection."""
    ps = Pysuper(CONFIG)
    try:
        ps.start()
        ps.wait_started("worker")
        deep = "[" * 30000 + "]" * 30000
        with Client(ps.socket) as client:
            for line in (deep, '{"v": 1, "cmd": "status", "args": {"names": %s}}' % deep,
                         '{"v": 1, "cmd": "health", "id": %s}' % deep):
                client.send_raw(line.encode() + b"\n")
                answer = client.receive()
                assert answer is not None, "connection dropped"
                assert answer["ok"] is False and answer["kind"] == "bad_request", answer
                assert "nested too deeply" in answer["error"]
                _answers(client)
        assert "internal error" not in ps.stderr.text()
    finally:
        ps.cleanup()


def test_regression_requests_at_the_parser_depth_limit_are_all_answered():
    """Ids nested around the parser's depth limit: the ones it parses are repeated in the answer, the
    others are refused; every request is answered and the connection stays usable."""
    ps = Pysuper(CONFIG)
    try:
        ps.start()
        ps.wait_started("worker")
        kinds = set()
        with Client(ps.socket) as client:
            for depth in list(range(900, 1001, 5)) + [2000]:
                rid = "[" * depth + "]" * depth
                client.send_raw(('{"v": 1, "cmd": "health", "id": %s}\n' % rid).encode())
                line = client.receive_line()  # the id may be too deep for this test's own parser
                assert line is not None, "connection dropped at depth %d" % depth
                kinds.add(line[:12] if line.startswith(b'{"v":1,"ok":true') else json.loads(line)["kind"])
            _answers(client)
        assert kinds == {b'{"v":1,"ok":', "bad_request"}, kinds
        assert "internal error" not in ps.stderr.text()
    finally:
        ps.cleanup()


# On SIGTERM it says so, then waits for the test (a FIFO) before it exits: the reload that is
# replacing it stays unfinished until the test has seen pysuper start shutting down.
SLOW_STOP = r'''
import os, signal, sys, time
def stop(signum, frame):
    print("stopping", flush=True)
    with open(os.environ["GATE"]) as gate:
        gate.read()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
while True:
    time.sleep(3600)
'''

SLOW = """
[pysuper]
shutdown_timeout = 30

[programs.slow]
command = ["%s", "-c", %s]
start_seconds = 0.1
stop_timeout = 30
environment = { GATE = "@DIR@/gate", TAG = "%%s" }
""" % (PYTHON, json.dumps(SLOW_STOP))


def test_regression_reload_cut_short_by_sigterm_does_not_report_success():
    ps = Pysuper(SLOW % "one")
    os.mkfifo(str(ps.dir / "gate"))
    reload = None
    try:
        ps.start()
        ps.wait_started("slow")
        ps.stdout.wait_for(r"slow\s+\| ready")
        ps.write_config(SLOW % "two")
        reload = subprocess.Popen([PYTHON, "-m", "pysuper", "ctl", "reload"], env=ps.env, cwd=str(ps.dir),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ps.stdout.wait_for(r"slow\s+\| stopping")  # the reload is replacing it
        ps.proc.terminate()
        ps.stderr.wait_for(r"received SIGTERM")
        with open(str(ps.dir / "gate"), "w") as gate:
            gate.write("go\n")
        out, err = reload.communicate(timeout=30)
        assert reload.returncode == 1, (out, err)
        assert b"changed: slow" not in out
        assert b"not started: slow" in err, err
        assert ps.stop() == 0
        assert "started with pid" not in "\n".join(ps.stderr.lines[ps.stderr.search(r"received SIGTERM")[0]:])
    finally:
        if reload is not None and reload.poll() is None:
            reload.kill()
            reload.wait(10)
        ps.cleanup()
