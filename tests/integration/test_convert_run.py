"""`pysuper convert` through the real CLI: every sample converts and passes `pysuper check`, converted
configs run under pysuper, and a program gets the argv supervisord itself would have given it."""

import json
import os
import shutil
import socket
import sys
import urllib.request

import pytest

from conftest import ROOT, Pysuper, run_cli

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

DATA = os.path.join(ROOT, "tests", "data", "supervisord")
ALL_SAMPLES = sorted(
    os.path.relpath(os.path.join(folder, name), DATA)
    for folder, _, names in os.walk(DATA) for name in names if name.endswith((".conf", ".ini")))


def convert_and_check(ini, tmp_path, env=None):
    """Convert with the real CLI, check the result with the real CLI; return (toml path, convert stderr)."""
    out = tmp_path / "pysuper.toml"
    result = run_cli(["convert", str(ini), "-o", str(out)], cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    checked = run_cli(["check", "-c", str(out)], cwd=str(tmp_path), env=env)
    assert checked.returncode == 0, checked.stderr + "\n" + out.read_text()
    assert ": ok, " in checked.stderr
    return out, result.stderr


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_sample_passes_check(name, tmp_path):
    out, _ = convert_and_check(os.path.join(DATA, name), tmp_path, env={"HOME": "/home/tester"})
    again = run_cli(["convert", os.path.join(DATA, name)], cwd=str(tmp_path), env={"HOME": "/home/tester"})
    assert again.stdout == out.read_text()


def test_stdin_exit_codes_and_error_line(tmp_path):
    result = run_cli(["convert", "-"], input="[program:web]\ncommand=/bin/sleep 5\n")
    assert result.returncode == 0
    assert tomllib.loads(result.stdout)["programs"] == {"web": {"command": "/bin/sleep 5"}}
    result = run_cli(["convert"], input="[program:a]\ncommand=/bin/true\nautostart=perhaps\n")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "pysuper convert: error: <stdin>:3: [program:a] autostart = perhaps: expected true or false"]
    result = run_cli(["convert", "a.conf", "b.conf"])
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == "pysuper convert: unrecognized arguments: b.conf"


def test_converted_config_runs(tmp_path):
    """The $ handling end to end: the shell sees what supervisord would have given it."""
    ini = tmp_path / "supervisord.conf"
    ini.write_text(
        "[supervisord]\nnodaemon=true\n\n"
        "[program:hello]\n"
        "command=/bin/sh -c 'echo \"greeting=$GREETING home=$HOME at=%(here)s\"'\n"
        "environment=GREETING=\"hi %(ENV_HOME)s $NOT_EXPANDED\"\n"
        "autorestart=false\nstartsecs=0\n"
        "stdout_logfile=/dev/stdout\nstdout_logfile_maxbytes=0\n")
    env = {"HOME": "/home/tester"}
    out, _ = convert_and_check(ini, tmp_path, env)
    result = run_cli(["-c", str(out)], cwd=str(tmp_path), env=env)
    assert result.returncode == 0, result.stderr
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    assert lines == ["hello | greeting=hi /home/tester $NOT_EXPANDED home=/home/tester at=%s" % tmp_path]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (apt-get install nodejs)")
def test_converted_node_sample_runs_the_app(tmp_path):
    """The original sample's supervisord config, converted, runs the sample app under pysuper
    (with /data/app pointed at docker/node-hello, where the image would have copied it)."""
    app = os.path.join(ROOT, "docker", "node-hello")
    with open(os.path.join(DATA, "node-hello.conf")) as handle:
        ini = handle.read().replace("/data/app", app)
    (tmp_path / "supervisord.conf").write_text(ini)
    out, _ = convert_and_check(tmp_path / "supervisord.conf", tmp_path)
    assert tomllib.loads(out.read_text())["programs"] == {"app": {"command": "node index.js", "directory": app}}
    port = _free_port()
    ps = Pysuper(["-c", str(out)], cwd=str(tmp_path), env={"PORT": str(port), "HOST": "127.0.0.1"})
    try:
        ps.out.wait_for(r"^app +\| listening on http://127\.0\.0\.1:%d" % port)
        with urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10) as response:
            assert response.read().startswith(b"Hello World. Greetings from ")
        ps.signal(15)
        assert ps.wait() == 0, ps.err.text()
    finally:
        ps.kill()


# ---------------------------------------------------------------------------------------------
# The argv of a converted program is the argv supervisord gives it

ARGV_SCRIPT = "import json, sys\nwith open(sys.argv[1], 'w') as f:\n    json.dump(sys.argv[2:], f)\n"


def supervisord_argv(ini, environ, monkeypatch):
    """The argv supervisord itself builds for the only program of `ini` (its own config loader)."""
    options = pytest.importorskip(
        "supervisor.options", reason="the supervisor package is not installed (pip install supervisor, or "
                                     "pip install -e '.[test]'); it computes supervisord's own argv")
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    server = options.ServerOptions()
    server.realize(["-c", str(ini)])
    (group,) = server.process_group_configs
    (process,) = group.process_configs
    _, argv = process.make_process().get_execv_args()
    return argv


@pytest.mark.parametrize("extra", ["", "one", "-a -b", "  two   words  ", "-x *"],
                         ids=["empty", "one-word", "two-words", "blanks", "glob"])
def test_regression_env_word_split_argv_matches_supervisord(extra, tmp_path, monkeypatch):
    """supervisord substitutes %(ENV_X)s first and splits the command afterwards: the converted
    program gets the same argv for an empty, a one-word and a several-word value."""
    script = tmp_path / "argv.py"
    script.write_text(ARGV_SCRIPT)
    record = tmp_path / "argv.json"
    ini = tmp_path / "supervisord.conf"
    ini.write_text(
        "[supervisord]\nnodaemon=true\n\n[program:argv]\n"
        "command=%s %s %s --port=%%(ENV_PORT)s %%(ENV_EXTRA_ARGS)s \"--quoted=%%(ENV_EXTRA_ARGS)s\" "
        "'it''s' * a\\ b \"$HOME\" --%%(ENV_EXTRA_ARGS)s--\n"
        "autorestart=false\nstartsecs=0\n" % (sys.executable, script, record))
    environ = {"PORT": "8080", "EXTRA_ARGS": extra}
    expected = supervisord_argv(ini, environ, monkeypatch)[3:]

    out, warnings = convert_and_check(ini, tmp_path, environ)
    assert "%(ENV_EXTRA_ARGS)s" in warnings and "/bin/sh" in warnings
    result = run_cli(["-c", str(out)], cwd=str(tmp_path), env=environ)
    assert result.returncode == 0, result.stderr
    assert json.loads(record.read_text()) == expected


def test_regression_env_whole_command_argv_matches_supervisord(tmp_path, monkeypatch):
    """command=%(ENV_APP_COMMAND)s: the whole command comes from one variable."""
    script = tmp_path / "argv.py"
    script.write_text(ARGV_SCRIPT)
    record = tmp_path / "argv.json"
    ini = tmp_path / "supervisord.conf"
    ini.write_text("[supervisord]\n\n[program:app]\ncommand=%(ENV_APP_COMMAND)s\nautorestart=false\n"
                   "startsecs=0\n")
    environ = {"APP_COMMAND": "%s %s %s --flag two  words" % (sys.executable, script, record)}
    expected = supervisord_argv(ini, environ, monkeypatch)[3:]
    assert expected == ["--flag", "two", "words"]

    out, _ = convert_and_check(ini, tmp_path, environ)
    assert run_cli(["-c", str(out)], cwd=str(tmp_path), env=environ).returncode == 0
    assert json.loads(record.read_text()) == expected


def test_regression_empty_command_does_not_stop_the_conversion(tmp_path):
    ini = tmp_path / "supervisord.conf"
    ini.write_text("[program:broken]\ncommand =\n\n[program:ok]\ncommand=/bin/echo fine\n"
                   "autorestart=false\nstartsecs=0\n")
    out, warnings = convert_and_check(ini, tmp_path)
    assert "[program:broken] command is empty" in warnings
    result = run_cli(["-c", str(out)], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert [" ".join(line.split()) for line in result.stdout.splitlines()] == ["ok | fine"]


@pytest.mark.parametrize("ini_text", [
    "[fcgi-program:php]\ncommand=/usr/sbin/php-fpm\nsocket=tcp://127.0.0.1:9000\n",
    "[supervisord]\nnodaemon=true\n\n[include]\nfiles=conf.d/*.conf\n",
], ids=["fcgi-only", "include-matches-nothing"])
def test_regression_no_program_converts_and_check_says_so(ini_text, tmp_path):
    """A config with no [program:x] converts (exit 0, a warning); pysuper refuses to run it (exit 2)."""
    ini = tmp_path / "supervisord.conf"
    ini.write_text(ini_text)
    out = tmp_path / "pysuper.toml"
    result = run_cli(["convert", str(ini), "-o", str(out)], cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "pysuper convert: warning: %s: no [program:NAME] section to convert" % ini in result.stderr
    assert "# No program to run: " in out.read_text()
    for args in (["check", "-c", str(out)], ["-c", str(out)]):
        refused = run_cli(args, cwd=str(tmp_path))
        assert refused.returncode == 2
        assert "no programs: add a [programs.NAME] table" in refused.stderr
