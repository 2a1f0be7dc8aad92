"""Helpers for the `pysuper ctl` tests, on top of conftest's: a pysuper in its own temporary
directory with its own socket, a raw protocol client, and a zombie check.

Readiness is pysuper's own "control socket:" / "started with pid" lines on stderr (conftest's Stream);
state changes are awaited through the socket under a deadline; nothing sleeps to synchronise.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import conftest
from conftest import pysuper_env, run_cli

ROOT = Path(conftest.ROOT)
PYTHON = sys.executable


def _with_socket(env):
    """conftest gives each pysuper a socket of its own; keep the caller's choice, even "no socket
    variable" (an empty PYSUPER_SOCKET counts as unset)."""
    env = dict(env)
    env.setdefault("PYSUPER_SOCKET", "")
    return env


def base_env(sock_path):
    """The full environment of a pysuper (or ctl) under test that uses the socket sock_path."""
    return pysuper_env({"PYSUPER_SOCKET": str(sock_path)})


class Pysuper:
    """A pysuper process running `config` (TOML text, `@DIR@` for its directory) in a temporary directory."""

    def __init__(self, config: str, extra_env=None, socket_path=None):
        self.dir = Path(tempfile.mkdtemp(prefix="pysuper-ctl-"))
        self.config_path = self.dir / "pysuper.toml"
        self.write_config(config)
        self.socket = Path(socket_path) if socket_path else self.dir / "run" / "ctl.sock"
        self.env = base_env(self.socket)
        if extra_env:
            self.env.update(extra_env)
        self.process = None
        self.proc = None
        self.stderr = None
        self.stdout = None

    def write_config(self, text: str):
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(textwrap.dedent(text).replace("@DIR@", str(self.dir)))
        os.replace(str(tmp), str(self.config_path))

    def start(self, wait_for=r"control socket: "):
        self.process = conftest.Pysuper(["-c", str(self.config_path)], cwd=str(self.dir),
                                        env=_with_socket(self.env))
        self.proc, self.stdout, self.stderr = self.process.proc, self.process.out, self.process.err
        if wait_for:
            self.stderr.wait_for(wait_for)
        return self

    def wait_started(self, name, start=0, timeout=15.0):
        """The pid from the next '<name>: started with pid N' line at or after `start`."""
        index, match = self.stderr.search(r"\| %s: started with pid (\d+)" % re.escape(name), timeout, start)
        return index, int(match.group(1))

    def ctl(self, *args, timeout=30.0, env=None, check=None):
        """Run `pysuper ctl ARGS` in the pysuper's directory; CompletedProcess with text output."""
        done = run_cli(["ctl"] + list(args), cwd=str(self.dir), env=_with_socket(env or self.env),
                       timeout=timeout)
        if check is not None:
            assert done.returncode == check, "ctl %s: exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(args), done.returncode, done.stdout, done.stderr)
        return done

    def request(self, command, args=None, timeout=15.0):
        with Client(self.socket, timeout) as client:
            return client.request(command, args)

    def status(self):
        rows = self.request("status", {"metrics": False})["data"]["programs"]
        return {row["name"]: row for row in rows}

    def wait_state(self, name, states, timeout=20.0):
        """Ask the socket (under a deadline) until the program is in one of `states`."""
        if isinstance(states, str):
            states = (states,)
        deadline = time.monotonic() + timeout
        while True:
            row = self.status().get(name)
            if row is not None and row["state"] in states:
                return row
            if time.monotonic() > deadline:
                raise AssertionError("%s did not reach %s within %.0f s: %r" % (name, states, timeout, row))
            time.sleep(0.05)

    def stop(self, timeout=20.0):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def cleanup(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(str(self.dir), ignore_errors=True)


class Client:
    """A raw protocol client: one JSON line out, one JSON line back."""

    def __init__(self, path, timeout=15.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def send_raw(self, data: bytes):
        self.sock.sendall(data)

    def send(self, command, args=None, **fields):
        message = {"v": 1, "cmd": command}
        if args is not None:
            message["args"] = args
        message.update(fields)
        self.send_raw(json.dumps(message).encode() + b"\n")

    def receive(self):
        """The next message, or None at EOF."""
        line = self.receive_line()
        return None if line is None else json.loads(line)

    def receive_line(self):
        """The next line as bytes (without its newline), or None at EOF."""
        while b"\n" not in self.buffer:
            try:
                data = self.sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return None
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def request(self, command, args=None, **fields):
        self.send(command, args, **fields)
        message = self.receive()
        assert message is not None, "connection closed without an answer to %s" % command
        return message


def no_zombies_of(pid: int) -> list:
    """Zombie children of pid, from /proc."""
    zombies = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as handle:
                data = handle.read()
        except OSError:
            continue
        fields = data[data.rfind(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            zombies.append(int(entry))
    return zombies
