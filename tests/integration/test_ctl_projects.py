"""Two projects on one machine with default settings: each pysuper gets its own socket (named after
its config file), `pysuper ctl` in a project's directory (or with -c, or $PYSUPER_CONFIG) reaches that
project's pysuper, and with exactly one pysuper running, `ctl` anywhere reaches it.

conftest gives every pysuper its own $PYSUPER_SOCKET; these tests clear it (an empty value is unset)
and use a private $XDG_RUNTIME_DIR, so the per-user default directory is theirs alone.
"""

import json
import os
import signal

import pytest

from conftest import Pysuper, run_cli
from pysuper.control import paths

PROJECT = """
[programs.%s]
command = "sleep 1000"
start_seconds = 0.1
"""


@pytest.fixture
def projects(tmp_path):
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    env = {"PYSUPER_SOCKET": "", "XDG_RUNTIME_DIR": str(runtime)}
    started = {}

    def start(name):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "pysuper.toml").write_text(PROJECT % name)
        process = Pysuper([], cwd=str(directory), env=env)  # finds ./pysuper.toml
        started[name] = process
        line = process.err.wait_for(r"control socket: ")
        process.err.wait_for(r"%s: started with pid" % name)
        return directory, line.split("control socket: ", 1)[1], process

    yield start, env, runtime
    for process in started.values():
        if process.proc.poll() is None:
            process.signal(signal.SIGTERM)
        process.wait()


def _names(done):
    assert done.returncode == 0, done.stderr
    return [row["name"] for row in json.loads(done.stdout)]


def test_two_projects_run_side_by_side_with_default_settings(projects):
    start, env, runtime = projects
    alpha, alpha_socket, _ = start("alpha")
    beta, beta_socket, beta_process = start("beta")
    assert alpha_socket != beta_socket
    assert os.path.dirname(alpha_socket) == os.path.dirname(beta_socket) == str(runtime / "pysuper")
    assert alpha_socket == paths.config_path_socket(str(alpha / "pysuper.toml"), {"XDG_RUNTIME_DIR": str(runtime)})

    assert _names(run_cli(["ctl", "status", "--json"], cwd=str(alpha), env=env)) == ["alpha"]
    assert _names(run_cli(["ctl", "status", "--json"], cwd=str(beta), env=env)) == ["beta"]
    assert _names(run_cli(["ctl", "-c", str(beta / "pysuper.toml"), "status", "--json"], cwd="/",
                          env=env)) == ["beta"]
    with_config = dict(env, PYSUPER_CONFIG=str(alpha / "pysuper.toml"))
    assert _names(run_cli(["ctl", "status", "--json"], cwd="/", env=with_config)) == ["alpha"]

    # Anywhere else, two running pysupers are a question ctl does not guess the answer to.
    anywhere = run_cli(["ctl", "status"], cwd=str(runtime), env=env)
    assert anywhere.returncode == 2
    assert "2 pysupers are running" in anywhere.stderr and alpha_socket in anywhere.stderr

    stopped = run_cli(["ctl", "shutdown"], cwd=str(beta), env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert beta_process.wait() == 0
    assert not os.path.exists(beta_socket)

    # With one left, ctl anywhere reaches it; in beta's directory it does not take alpha's instead.
    assert _names(run_cli(["ctl", "status", "--json"], cwd=str(runtime), env=env)) == ["alpha"]
    in_beta = run_cli(["ctl", "status"], cwd=str(beta), env=env)
    assert in_beta.returncode == 2
    assert "no pysuper is running with" in in_beta.stderr and alpha_socket in in_beta.stderr
    assert len(in_beta.stderr.splitlines()) == 1
