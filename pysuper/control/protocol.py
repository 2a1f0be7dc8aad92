"""The control protocol's framing and request parsing: bytes in, requests out (no sockets here).

Version 1: one JSON object per line each way.
    request:  {"v": 1, "cmd": "restart", "args": {"names": ["web"]}, "id": 7}
    response: {"v": 1, "ok": true, "data": {...}, "id": 7}
              {"v": 1, "ok": false, "error": "no program named 'wbe'", "kind": "unknown_program", "id": 7}
A response with "more": true is followed by event lines ({"v": 1, "event": ...}) until the
connection closes (`logs` with follow, `shutdown`).

Any input gets an answer: malformed JSON, JSON nested too deeply for the parser, and requests of
the wrong shape are each a RequestError, never an exception of the parser's own.
"""

from pysuper.control.paths import PROTOCOL

MAX_REQUEST = 64 * 1024  # bytes in one request line


class RequestError(Exception):
    """A request that cannot be carried out; `kind` classifies it for clients, `rid` is its id."""

    def __init__(self, message: str, kind: str = "bad_request", data=None, rid=None):
        super().__init__(message)
        self.kind = kind
        self.data = data
        self.rid = rid


def encode(message: dict) -> bytes:
    """One line of the protocol. Text that came from bytes (surrogate escapes) goes back as those bytes."""
    import json  # with the first request: an idle pysuper never loads it
    return (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8", "surrogateescape")


def response(rid, fields: dict) -> dict:
    message = {"v": PROTOCOL}
    message.update(fields)
    if rid is not None:
        message["id"] = rid
    return message


def error_response(rid, message: str, kind: str, data=None) -> dict:
    fields = {"ok": False, "error": message, "kind": kind}
    if data is not None:
        fields["data"] = data
    return response(rid, fields)


def too_large() -> RequestError:
    return RequestError("request too large (the limit is %d bytes per line)" % MAX_REQUEST, "too_large")


def take_line(buffer: bytearray, eof: bool = False):
    """The next complete request line taken out of buffer, or None until one is there.

    At the end of input the rest of the buffer is the last line (a request without its newline).
    Raises too_large() when a line is, or is about to be, longer than MAX_REQUEST.
    """
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) > MAX_REQUEST:
            raise too_large()
        if eof and buffer:
            line = bytes(buffer)
            del buffer[:]
            return line
        return None
    if end > MAX_REQUEST:
        raise too_large()
    line = bytes(buffer[:end])
    del buffer[:end + 1]
    return line


def parse_request(line: bytes):
    """(id, command, args) of one request line; RequestError (with the id when known) otherwise."""
    try:
        import json
        message = json.loads(line.decode("utf-8"))
    except RecursionError:
        raise RequestError("malformed request: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise RequestError("malformed request: not a JSON object on one line (%s)" % exc) from None
    if not isinstance(message, dict):
        raise RequestError("malformed request: expected a JSON object such as {\"v\": 1, \"cmd\": \"status\"}")
    rid = message.get("id")
    version = message.get("v", PROTOCOL)
    if version != PROTOCOL:
        raise RequestError("protocol version %s is not supported; this pysuper speaks version %d"
                           % (_show(version), PROTOCOL), "version", rid=rid)
    command = message.get("cmd")
    if not isinstance(command, str):
        raise RequestError("malformed request: \"cmd\" must be a command name such as \"status\"", rid=rid)
    args = message.get("args", {})
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise RequestError("malformed request: \"args\" must be an object", rid=rid)
    return rid, command, args


def _show(value) -> str:
    try:
        import json
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = "?"
    return text if len(text) <= 40 else text[:37] + "..."
