"""The control server in this process, with a stand-in supervisor: whatever goes wrong while a request
is carried out becomes an error answer on that connection, and the server keeps serving.

The loop runs in the test's main thread (it owns the signal wakeup fd); a client thread talks to it
and ends the loop with a last request. No processes are started.
"""

import json
import socket
import threading

import pytest

from pysuper.control import bind, server
from pysuper.control import verbs as verbs_module
from pysuper.loop import Loop


class StandIn:
    """The parts of a Supervisor the server and these verbs use."""

    def __init__(self):
        self.lines = []
        self.on_exit = []
        self.shutting_down = False
        self.exit_code = None

    def log(self, text):
        self.lines.append(text)

    def health(self):
        raise KeyError("a bug in the supervisor")


def _talk(path, requests, answers, done):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(20)
            sock.connect(path)
            reader = sock.makefile("rb")
            for request in requests:
                sock.sendall(request + b"\n")
                answers.append(json.loads(reader.readline()))
            sock.sendall(b'{"cmd": "quit"}\n')
            reader.readline()
    finally:
        done.set()


@pytest.fixture
def serve(tmp_path, monkeypatch):
    def run(verbs, requests):
        for name, verb in verbs.items():
            monkeypatch.setitem(verbs_module.VERBS, name, verb)
        loop = Loop()
        supervisor = StandIn()
        path = str(tmp_path / "ctl.sock")
        instance = server.Server(supervisor, loop, bind.bind(path, "test"), path, None)

        def quit_verb(request, args):
            request.reply({})
            loop.call_soon(loop.stop)

        monkeypatch.setitem(verbs_module.VERBS, "quit", quit_verb)
        answers, done = [], threading.Event()
        client = threading.Thread(target=_talk, args=(path, requests, answers, done), daemon=True)
        client.start()
        try:
            loop.run()
        finally:
            instance.close()
            loop.close()
        client.join(20)
        assert done.is_set()
        return answers, supervisor.lines
    return run


def test_any_exception_in_a_request_handler_becomes_an_error_answer(serve):
    def boom(request, args):
        raise ZeroDivisionError("division by zero")

    def boom_later(request, args):
        def fail():
            raise ValueError("later")
        request.server.loop.call_soon(request.guard(fail))

    def unencodable(request, args):
        request.reply({"set": {1, 2}})

    answers, log = serve({"boom": boom, "boom_later": boom_later, "unencodable": unencodable}, [
        b'{"cmd": "boom", "id": 1}',
        b'{"cmd": "boom_later", "id": 2}',
        b'{"cmd": "unencodable", "id": 3}',
        b'{"cmd": "health", "id": 4}',  # the real verb, on a supervisor that raises
        b'{"cmd": "version", "id": 5}',
    ])
    assert [(a["ok"], a.get("kind"), a.get("id")) for a in answers[:4]] == [
        (False, "internal", 1), (False, "internal", 2), (False, "internal", 3), (False, "internal", 4)]
    assert "ZeroDivisionError" in answers[0]["error"] and "later" in answers[1]["error"]
    assert answers[4]["ok"] and answers[4]["id"] == 5  # the connection kept serving
    assert sum("internal error" in line for line in log) == 4
