"""`pysuper ctl health` stays lean: measured in a fresh interpreter against a socket that answers.

The client needs json, socket and the socket's location (pysuper.control.paths); the server side
(control.server, verbs, the supervisor, config parsing, psutil) must not be loaded. The lines of
pysuper's own modules that were loaded are counted and bounded.
"""

import json
import os
import socket
import subprocess
import sys
import threading

from conftest import ROOT, pysuper_env

MAX_LINES = 1200
HEAVY = ("psutil", "asyncio", "pysuper.control.server", "pysuper.control.verbs", "pysuper.control.bind",
         "pysuper.supervisor", "pysuper.config", "pysuper.tomlfile", "pysuper.program", "pysuper.logs",
         "pysuper.loop", "pysuper.metrics", "pysuper.reload", "pysuper.view")

# Runs `pysuper ctl --socket PATH health` as the console script does, then reports what was loaded.
PROBE = r"""
import json, sys
from pysuper import cli
code = cli.main(["ctl", "--socket", sys.argv[1], "health"])
loaded = {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())}
with open(sys.argv[2], "w") as handle:
    json.dump({"code": code, "modules": loaded}, handle)
"""


def _answer_once(listener):
    conn, _ = listener.accept()
    with conn:
        conn.settimeout(10)
        data = b""
        while b"\n" not in data:
            chunk = conn.recv(4096)
            if not chunk:
                return
            data += chunk
        assert json.loads(data)["cmd"] == "health"
        conn.sendall(b'{"v":1,"ok":true,"data":{"healthy":true,"problems":[]}}\n')


def test_ctl_health_loads_only_the_client(tmp_path):
    path = str(tmp_path / "ctl.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    listener.settimeout(20)
    server = threading.Thread(target=_answer_once, args=(listener,), daemon=True)
    server.start()
    report = tmp_path / "report.json"
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, path, str(report)], env=pysuper_env(),
                              capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
        server.join(20)
    finally:
        listener.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout == "healthy\n"
    result = json.loads(report.read_text())
    assert result["code"] == 0
    modules = result["modules"]
    assert [name for name in HEAVY if name in modules] == []
    ours = {name: filename for name, filename in modules.items()
            if (name == "pysuper" or name.startswith("pysuper.")) and filename}
    assert all(os.path.realpath(filename).startswith(os.path.realpath(ROOT)) for filename in ours.values())
    lines = {}
    for name, filename in ours.items():
        with open(filename, "rb") as handle:
            lines[name] = handle.read().count(b"\n")
    assert sum(lines.values()) <= MAX_LINES, lines
