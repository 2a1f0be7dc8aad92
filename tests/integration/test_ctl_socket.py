"""The control socket itself: location, permissions, peer credentials, stale and live sockets, and
requests that are malformed, oversized, slow or abandoned. Real pysuper processes and real sockets.
"""

import grp
import shutil
import json
import os
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from test_ctl_support import PYTHON, ROOT, Client, Pysuper, base_env

from pysuper.control import paths, protocol, server

CONFIG = """
[programs.worker]
command = "sleep 1000"
start_seconds = 0.1
"""

NOBODY = 65534
SYSTEM_PYTHON = "/usr/bin/python3"  # readable and executable by any uid, unlike a venv under /root
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a client as another uid")


def _system_python_ready():
    """Can SYSTEM_PYTHON run pysuper from the checkout (a TOML parser is all it needs)?"""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    check = "try:\n import tomllib\nexcept ImportError:\n import tomli"
    return subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True, timeout=30).returncode == 0


needs_system_python = pytest.mark.skipif(not _system_python_ready(),
                                         reason="%s with tomllib or tomli is needed to run pysuper as "
                                                "another uid" % SYSTEM_PYTHON)

# A client that runs as another uid: connects, sends one request, prints the answer (or the error).
RAW_CLIENT = r'''
import json, socket, sys
sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
sock.settimeout(10)
try:
    sock.connect(sys.argv[1])
except OSError as exc:
    print(json.dumps({"connect_error": exc.__class__.__name__}))
    sys.exit(0)
sock.sendall(b'{"v": 1, "cmd": "health"}\n')
data = b""
while not data.endswith(b"\n"):
    chunk = sock.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode().strip() or json.dumps({"closed": True}))
'''


@pytest.fixture
def pysuper_instances():
    made = []

    def make(config=CONFIG, start=True, **kwargs):
        instance = Pysuper(config, **kwargs)
        made.append(instance)
        if start:
            instance.start()
            instance.wait_started("worker")
        return instance

    yield make
    for instance in made:
        instance.cleanup()


def _as_user(uid, gid, groups, args, env=None):
    """Run args as uid/gid with exactly these supplementary groups; (exit code, stdout, stderr)."""
    done = subprocess.run(args, user=uid, group=gid, extra_groups=list(groups), cwd="/",
                          env=env or {"PATH": "/usr/bin:/bin"}, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=30)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


_IMPORTABLE = []


def _require_pysuper_for_nobody():
    """Skip unless uid NOBODY can run this source tree (a checkout under /root cannot be read)."""
    if not _IMPORTABLE:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        code, _, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-c", "import pysuper.ctl, pysuper.cli"],
                                env)
        _IMPORTABLE.append(err.strip().splitlines()[-1] if code else "")
    if _IMPORTABLE[0]:
        pytest.skip("uid %d cannot import pysuper from %s: %s" % (NOBODY, ROOT, _IMPORTABLE[0]))


def _open_path_for_others(ps):
    """Let other uids reach the socket file, so that only the peer check stands in their way."""
    os.chmod(str(ps.dir), 0o711)
    os.chmod(str(ps.socket.parent), 0o711)


def test_socket_is_private_in_a_private_directory(pysuper_instances):
    ps = pysuper_instances()
    info = os.lstat(str(ps.socket))
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert info.st_uid == os.geteuid()
    directory = os.stat(str(ps.socket.parent))
    assert stat.S_IMODE(directory.st_mode) == 0o700  # created by pysuper for the socket
    ps.proc.terminate()
    assert ps.proc.wait(20) == 0
    assert not ps.socket.exists()


@needs_root
@needs_system_python
def test_a_peer_of_another_uid_is_refused(pysuper_instances):
    ps = pysuper_instances()
    _open_path_for_others(ps)
    os.chmod(str(ps.socket), 0o666)  # even with the file open to all, the peer check refuses
    code, out, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-I", "-c", RAW_CLIENT, str(ps.socket)])
    assert out, err
    answer = json.loads(out)
    assert answer["ok"] is False and answer["kind"] == "permission", answer
    assert "uid %d may not control this pysuper" % NOBODY in answer["error"]
    ps.stderr.wait_for(r"control: refused a connection from uid %d" % NOBODY)
    assert ps.request("health")["ok"]  # the supervisor carries on

    # With the socket's own mode (0600) the kernel already refuses the connection.
    os.chmod(str(ps.socket), 0o600)
    code, out, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-I", "-c", RAW_CLIENT, str(ps.socket)])
    assert out, err
    assert json.loads(out) == {"connect_error": "PermissionError"}


@needs_root
@needs_system_python
def test_ctl_as_a_refused_user_says_so_in_one_line(pysuper_instances):
    _require_pysuper_for_nobody()
    ps = pysuper_instances()
    _open_path_for_others(ps)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "PYSUPER_SOCKET": str(ps.socket)}
    code, out, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-m", "pysuper", "ctl", "status"], env)
    assert code == 2, (out, err)
    assert err.startswith("pysuper ctl: permission denied on the control socket") and len(err.splitlines()) == 1
    os.chmod(str(ps.socket), 0o666)  # past the file mode, the peer check answers
    code, out, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-m", "pysuper", "ctl", "health"], env)
    assert code == 2, (out, err)
    assert err == "pysuper ctl: permission denied: uid %d may not control this pysuper (only root, uid %d)\n" % (
        NOBODY, os.geteuid())


def _a_group():
    for name in ("daemon", "users", "adm"):
        try:
            return grp.getgrnam(name)
        except KeyError:
            continue
    return None


@needs_root
@needs_system_python
def test_control_group_members_are_let_in(pysuper_instances):
    group = _a_group()
    if group is None:
        pytest.skip("no group to test control_group with")
    ps = pysuper_instances('[pysuper]\ncontrol_group = "%s"\n' % group.gr_name + CONFIG)
    info = os.lstat(str(ps.socket))
    assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == group.gr_gid
    _open_path_for_others(ps)
    client = [SYSTEM_PYTHON, "-I", "-c", RAW_CLIENT, str(ps.socket)]

    _, out, err = _as_user(NOBODY, NOBODY, [group.gr_gid], client)  # a supplementary member
    assert json.loads(out)["ok"] is True, (out, err)
    _, out, _ = _as_user(NOBODY, group.gr_gid, [], client)  # primary group
    assert json.loads(out)["ok"] is True, out
    _, out, _ = _as_user(NOBODY, NOBODY, [], client)  # not a member: the file mode refuses
    assert json.loads(out) == {"connect_error": "PermissionError"}
    os.chmod(str(ps.socket), 0o666)
    _, out, _ = _as_user(NOBODY, NOBODY, [], client)  # not a member: the peer check refuses
    answer = json.loads(out)
    assert answer["kind"] == "permission" and "control_group" in answer["error"]


def test_stale_socket_is_replaced(pysuper_instances):
    ps = pysuper_instances(start=False)
    ps.socket.parent.mkdir(mode=0o700)
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(ps.socket))
    leftover.close()  # a socket file nobody listens on: what a crashed pysuper leaves
    ps.start()
    ps.wait_started("worker")
    assert ps.request("health")["ok"]


def test_a_live_socket_is_an_error_that_says_what_to_do(pysuper_instances):
    first = pysuper_instances()
    second = Pysuper(CONFIG, socket_path=first.socket)
    try:
        done = subprocess.run([PYTHON, "-m", "pysuper", "-c", str(second.config_path)], env=second.env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    finally:
        second.cleanup()
    assert done.returncode == 2
    err = done.stderr.decode()
    assert "another pysuper (pid %d) is already listening on the control socket %s" % (
        first.proc.pid, first.socket) in err
    assert "PYSUPER_SOCKET" in err and "control_socket" in err
    assert len(err.splitlines()) == 1
    assert first.request("health")["ok"]  # the first one is untouched
    assert first.socket.exists()


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_text("not a socket"), "exists and is not a socket"),
    (lambda path: os.chmod(str(path.parent), 0o777), "can be written by other users"),
])
def test_unusable_socket_paths_are_refused(pysuper_instances, make, message):
    ps = pysuper_instances(start=False)
    ps.socket.parent.mkdir(mode=0o700)
    make(ps.socket)
    done = subprocess.run([PYTHON, "-m", "pysuper", "-c", str(ps.config_path)], env=ps.env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert done.returncode == 2
    assert message in done.stderr.decode() and len(done.stderr.decode().splitlines()) == 1


def test_too_long_a_path_is_refused(tmp_path):
    path = "/tmp/" + "x" * 120 + "/s.sock"
    config = tmp_path / "pysuper.toml"
    config.write_text(CONFIG)
    done = subprocess.run([PYTHON, "-m", "pysuper", "-c", str(config)], env=base_env(path),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert done.returncode == 2
    assert "more than the 107 a Unix socket allows" in done.stderr.decode()


def test_control_socket_false_means_no_socket(pysuper_instances):
    ps = pysuper_instances('[pysuper]\ncontrol_socket = false\n' + CONFIG, start=False)
    ps.start(wait_for=None)
    ps.wait_started("worker")
    assert "control socket" not in ps.stderr.text()
    assert not ps.socket.exists()


def test_location_order():
    env = {"PYSUPER_SOCKET": "/a/env.sock", "XDG_RUNTIME_DIR": "/"}
    assert paths.resolve("/b/conf.sock", "/etc/x.toml", env) == ("/a/env.sock", "$PYSUPER_SOCKET")
    env.pop("PYSUPER_SOCKET")
    assert paths.resolve("/b/conf.sock", "/etc/x.toml", env)[0] == "/b/conf.sock"
    assert paths.resolve("rel/c.sock", "/etc/p/x.toml", env)[0] == "/etc/p/rel/c.sock"
    assert paths.resolve(False, None, env) == (None, "control_socket = false")
    with tempfile.TemporaryDirectory() as runtime:
        assert paths.user_path({"XDG_RUNTIME_DIR": runtime}) == os.path.join(runtime, "pysuper",
                                                                                "pysuper.sock")
    assert paths.user_path({}) == "/tmp/pysuper-%d/pysuper.sock" % os.geteuid()
    expected_first = "/run/pysuper/pysuper.sock" if paths.run_dir_writable() else paths.user_path(env)
    assert paths.resolve(None, None, env) == (expected_first, "default")
    assert paths.resolve(None, "/etc/p/x.toml", env, pid1=True) == (expected_first, "default")
    per_config = paths.resolve(None, "/etc/p/x.toml", env)
    assert per_config == (paths.config_path_socket("/etc/p/x.toml", env), "default")
    assert os.path.dirname(per_config[0]) == paths.user_dir(env)
    assert os.path.basename(per_config[0]).startswith("p-") and per_config[0].endswith(".sock")
    assert paths.config_path_socket("/etc/q/x.toml", env) != per_config[0]


@needs_root
@needs_system_python
def test_default_location_for_a_user_without_run_access():
    """As a user who cannot write /run: the config's socket in $XDG_RUNTIME_DIR/pysuper/, found by ctl."""
    tmp_path = Path(tempfile.mkdtemp(prefix="pysuper-ctl-user-"))
    try:
        _run_as_nobody_with_defaults(tmp_path)
    finally:
        shutil.rmtree(str(tmp_path), ignore_errors=True)


def _run_as_nobody_with_defaults(tmp_path):
    _require_pysuper_for_nobody()
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    os.chown(str(runtime), NOBODY, NOBODY)
    os.chmod(str(tmp_path), 0o711)
    config = tmp_path / "pysuper.toml"
    config.write_text(CONFIG)
    os.chmod(str(config), 0o644)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "XDG_RUNTIME_DIR": str(runtime),
           "PYSUPER_CONFIG": str(config), "NO_COLOR": "1"}
    server = subprocess.Popen([SYSTEM_PYTHON, "-m", "pysuper"], user=NOBODY, group=NOBODY, extra_groups=[],
                              cwd="/", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        line = server.stderr.readline().decode()
        expected = Path(paths.config_path_socket(str(config), {"XDG_RUNTIME_DIR": str(runtime)}))
        assert expected.parent == runtime / "pysuper"
        assert line.strip().endswith("control socket: %s" % expected), line
        info = os.stat(str(expected.parent))
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == NOBODY
        code, out, err = _as_user(NOBODY, NOBODY, [], [SYSTEM_PYTHON, "-m", "pysuper", "ctl", "shutdown"], env)
        assert code == 0, err
        assert server.wait(20) == 0
        assert not expected.exists()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(5)


def test_malformed_requests_get_an_error_and_the_connection_survives(pysuper_instances):
    ps = pysuper_instances()
    with Client(ps.socket) as client:
        cases = [
            (b"not json at all\n", "bad_request"),
            (b"\xff\xfe garbage \x00\n", "bad_request"),
            (b"[1, 2, 3]\n", "bad_request"),
            (b'{"v": 1}\n', "bad_request"),
            (b'{"v": 1, "cmd": "status", "args": [1]}\n', "bad_request"),
            (b'{"v": 2, "cmd": "status"}\n', "version"),
            (b'{"v": 1, "cmd": "launch_missiles"}\n', "unknown_command"),
            (b'{"v": 1, "cmd": "restart", "args": {"names": ["nope"]}}\n', "unknown_program"),
            (b'{"v": 1, "cmd": "restart", "args": {"names": "worker"}}\n', None),
            (b'{"v": 1, "cmd": "signal", "args": {"signal": "NOPE", "names": ["worker"]}}\n', "bad_request"),
            (b'{"v": 1, "cmd": "logs", "args": {"name": "worker", "lines": -1}}\n', "bad_request"),
        ]
        for request, kind in cases:
            client.send_raw(request)
            answer = client.receive()
            assert answer is not None, request
            if kind is None:
                assert answer["ok"] is True, (request, answer)
            else:
                assert answer["ok"] is False and answer["kind"] == kind, (request, answer)
                assert answer["error"]
        answer = client.request("health", id="abc")
        assert answer["ok"] is True and answer["id"] == "abc"
        # Several requests in one write are answered in order.
        client.send_raw(b'{"cmd": "health", "id": 1}\n\n{"cmd": "status", "id": 2}\n{"cmd": "version", "id": 3}\n')
        assert [client.receive()["id"] for _ in range(3)] == [1, 2, 3]
    with Client(ps.socket) as client:  # as `echo ... | socat - UNIX-CONNECT:...` does: write, half-close, read
        client.send_raw(b'{"v": 1, "cmd": "health"}')  # the last line may lack its newline
        client.sock.shutdown(socket.SHUT_WR)
        assert client.receive() == {"v": 1, "ok": True, "data": {"healthy": True, "problems": []}}
        assert client.receive() is None
    assert ps.proc.poll() is None


def test_oversized_requests_are_refused_and_closed(pysuper_instances):
    ps = pysuper_instances()
    with Client(ps.socket) as client:
        try:
            client.send_raw(b"{" + b" " * (protocol.MAX_REQUEST + 10))
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = client.receive()
        assert answer is not None and answer["kind"] == "too_large"
        assert client.receive() is None  # closed
    with Client(ps.socket) as client:  # a huge line, newline included
        try:
            client.send_raw(b'{"cmd": "health", "pad": "' + b"x" * (4 * protocol.MAX_REQUEST) + b'"}\n')
        except (BrokenPipeError, ConnectionResetError):
            pass
        answer = client.receive()
        assert answer is not None and answer["kind"] == "too_large"
    assert ps.request("health")["ok"]


def test_slow_and_vanishing_clients_do_not_stall_pysuper(pysuper_instances):
    ps = pysuper_instances()
    slow = Client(ps.socket)
    slow.send_raw(b'{"v": 1, "cmd": "hea')  # and then nothing
    vanished = Client(ps.socket)
    vanished.send_raw(b'{"v": 1, "cmd": "status"')
    vanished.close()  # gone mid-request
    before = ps.status()["worker"]["pid"]
    restarting = Client(ps.socket)
    restarting.send("restart", {"names": ["worker"]})
    restarting.close()  # gone while the restart is under way
    began = time.monotonic()
    for _ in range(20):
        assert ps.request("health")["ok"]
    assert time.monotonic() - began < 5
    row = ps.wait_state("worker", "RUNNING")
    assert row["pid"] != before
    slow.send_raw(b'lth"}\n')  # the slow one is still served once its line is complete
    assert slow.receive()["ok"] is True
    slow.close()
    assert ps.proc.poll() is None


def test_a_client_that_never_completes_its_request_is_dropped(pysuper_instances):
    ps = pysuper_instances()
    with Client(ps.socket, timeout=server.REQUEST_TIMEOUT + 10) as client:
        client.send_raw(b'{"v": 1, "cmd": ')
        began = time.monotonic()
        answer = client.receive()
        elapsed = time.monotonic() - began
        assert answer is not None and answer["kind"] == "timeout"
        assert server.REQUEST_TIMEOUT - 1 <= elapsed <= server.REQUEST_TIMEOUT + 5
        assert client.receive() is None
