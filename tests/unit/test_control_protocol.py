"""The control protocol's framing and request parsing, without sockets or processes."""

import json

import pytest

from pysuper.control import protocol
from pysuper.control.protocol import MAX_REQUEST, RequestError


def test_lines_are_taken_one_at_a_time():
    buffer = bytearray(b'{"cmd": "a"}\n{"cmd": "b"}\n{"cmd"')
    assert protocol.take_line(buffer) == b'{"cmd": "a"}'
    assert protocol.take_line(buffer) == b'{"cmd": "b"}'
    assert protocol.take_line(buffer) is None
    assert buffer == bytearray(b'{"cmd"')
    assert protocol.take_line(buffer, eof=True) == b'{"cmd"'  # the last request, without its newline
    assert protocol.take_line(buffer, eof=True) is None


def test_a_line_longer_than_the_limit_is_too_large():
    with pytest.raises(RequestError) as caught:
        protocol.take_line(bytearray(b"x" * (MAX_REQUEST + 1)))
    assert caught.value.kind == "too_large"
    with pytest.raises(RequestError):
        protocol.take_line(bytearray(b"x" * (MAX_REQUEST + 1) + b"\n"))
    assert protocol.take_line(bytearray(b"x" * MAX_REQUEST + b"\n")) == b"x" * MAX_REQUEST


def test_a_request_is_id_command_and_args():
    assert protocol.parse_request(b'{"v": 1, "cmd": "restart", "args": {"names": ["web"]}, "id": 7}') == \
        (7, "restart", {"names": ["web"]})
    assert protocol.parse_request(b'{"cmd": "health"}') == (None, "health", {})
    assert protocol.parse_request(b'{"cmd": "health", "args": null}') == (None, "health", {})


@pytest.mark.parametrize("line, kind, text, rid", [
    (b"not json", "bad_request", "not a JSON object on one line", None),
    (b"\xff\xfe", "bad_request", "not a JSON object on one line", None),
    (b"[1, 2]", "bad_request", "expected a JSON object", None),
    (b'{"v": 1, "id": 3}', "bad_request", '"cmd" must be a command name', 3),
    (b'{"cmd": "status", "args": [1], "id": "x"}', "bad_request", '"args" must be an object', "x"),
    (b'{"v": 2, "cmd": "status", "id": 4}', "version", "protocol version 2 is not supported", 4),
    (b"[" * 30000 + b"]" * 30000, "bad_request", "nested too deeply", None),
    (b'{"cmd": "x", "args": {"a": ' + b"[" * 30000 + b"]" * 30000 + b"}}", "bad_request", "nested too deeply",
     None),
    (b'{"cmd": "x", "n": 1' + b"0" * 5000 + b"}", "bad_request", "not a JSON object", None),
])
def test_malformed_requests_are_request_errors(line, kind, text, rid):
    with pytest.raises(RequestError) as caught:
        protocol.parse_request(line)
    assert caught.value.kind == kind
    assert text in str(caught.value)
    assert caught.value.rid == rid


def test_answers_are_one_line_and_keep_undecodable_bytes():
    text = b"caf\xe9 \xff".decode("utf-8", "surrogateescape")
    line = protocol.encode(protocol.response(7, {"ok": True, "data": {"line": text}}))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b"caf\\udce9 \\udcff" in line
    assert json.loads(line) == {"v": 1, "ok": True, "data": {"line": text}, "id": 7}
    error = json.loads(protocol.encode(protocol.error_response(None, "no", "busy")))
    assert error == {"v": 1, "ok": False, "error": "no", "kind": "busy"}
