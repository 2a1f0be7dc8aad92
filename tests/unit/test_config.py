"""Config parsing: defaults, converters, ${VAR} expansion and the exact error lines for bad configs."""

import signal

import pytest

from pysuper import config
from pysuper.config import ConfigError, parse

ENV = {"HOME": "/home/app", "PORT": "8080", "EMPTY": ""}


def errors(text):
    with pytest.raises(ConfigError) as info:
        parse(text, "app.toml", ENV)
    return info.value.errors


def test_defaults():
    cfg = parse('[programs.web]\ncommand = "node index.js"\n', "app.toml", ENV)
    web = cfg.programs["web"]
    assert web.command == ("node", "index.js")
    assert (web.autostart, web.restart, web.exit_codes) == (True, "on-failure", (0,))
    assert (web.start_seconds, web.start_retries, web.stop_timeout, web.backoff_max) == (1.0, 3, 10.0, 30.0)
    assert web.stop_signal == signal.SIGTERM and web.critical is False
    assert cfg.settings.log_format == "prefix" and cfg.settings.shutdown_timeout == 9.0
    assert cfg.settings.color == "auto" and cfg.settings.timestamps is False


def test_every_key():
    cfg = parse('''
[pysuper]
log_format = "json"
timestamps = true
color = "never"
shutdown_timeout = 5
control_socket = false

[programs.web]
command = ["node", "index.js"]
directory = "/data/app"
environment = { NODE_ENV = "production", PORT = 8080 }
user = "node"
group = "node"
autostart = false
restart = "always"
exit_codes = [0, 2]
start_seconds = 0.5
start_retries = 5
stop_signal = "SIGINT"
stop_timeout = 3
critical = true
backoff_max = 60
''', "app.toml", ENV)
    web = cfg.programs["web"]
    assert web.environment == {"NODE_ENV": "production", "PORT": "8080"}
    assert web.stop_signal == signal.SIGINT and web.exit_codes == (0, 2)
    assert cfg.settings.control_socket is False and cfg.settings.log_format == "json"


@pytest.mark.parametrize("value,expected", [('"TERM"', signal.SIGTERM), ('"SIGQUIT"', signal.SIGQUIT),
                                            ('"hup"', signal.SIGHUP), ("10", 10), ('"KILL"', 9)])
def test_signal_spellings(value, expected):
    cfg = parse('[programs.a]\ncommand = "x"\nstop_signal = %s\n' % value, "app.toml", ENV)
    assert cfg.programs["a"].stop_signal == expected


def test_expansion():
    cfg = parse('''
[programs.a]
command = "sh -c 'echo ${PORT} ${MISSING:-fallback} ${EMPTY:-dflt} $$$$ $$HOME'"
directory = "${HOME}/app"
environment = { URL = "http://localhost:${PORT}/" }
''', "app.toml", ENV)
    program = cfg.programs["a"]
    assert program.command == ("sh", "-c", "echo 8080 fallback dflt $$ $HOME")
    assert program.directory == "/home/app/app"
    assert program.environment == {"URL": "http://localhost:8080/"}


def test_expansion_keeps_words_whole():
    cfg = parse('[programs.a]\ncommand = "echo ${V}"\n', "app.toml", {"V": "two words"})
    assert cfg.programs["a"].command == ("echo", "two words")


# At least fifteen malformed configs, each with its exact error line(s).
BAD = [
    ('[programs.web]\ncomand = "x"\n',
     ["app.toml: unknown key 'comand' in [programs.web]; did you mean 'command'?",
      'app.toml: [programs.web] has no command: add command = "..."']),
    ('[programs.web]\ncommand = ""\n',
     ['app.toml: [programs.web] command = "": the command is empty']),
    ('[programs.web]\ncommand = []\n',
     ["app.toml: [programs.web] command = []: the command is empty"]),
    ('[programs.web]\ncommand = 5\n',
     ["app.toml: [programs.web] command = 5: expected a string or an array of strings, got an integer"]),
    ('[programs.web]\ncommand = "x"\nstart_seconds = -1\n',
     ["app.toml: [programs.web] start_seconds = -1: expected a number of seconds between 0 and 86400"]),
    ('[programs.web]\ncommand = "x"\nstart_retries = 1.5\n',
     ["app.toml: [programs.web] start_retries = 1.5: expected a whole number, got a number"]),
    ('[programs.web]\ncommand = "x"\nautostart = "yes"\n',
     ['app.toml: [programs.web] autostart = "yes": expected true or false, got a string']),
    ('[programs.web]\ncommand = "x"\nstop_signal = "TREM"\n',
     ['app.toml: [programs.web] stop_signal = "TREM": expected a signal name such as "TERM", "INT", '
      '"QUIT", "HUP", "KILL", "USR1" or a number; did you mean "TERM"?']),
    ('[programs.web]\ncommand = "x"\nrestart = "alway"\n',
     ['app.toml: [programs.web] restart = "alway": expected one of "always", "on-failure", "never"; '
      'did you mean "always"?']),
    ('[programs.web]\ncommand = "x"\nexit_codes = [0, 300]\n',
     ["app.toml: [programs.web] exit_codes = [0, 300]: expected exit codes between 0 and 255, got 300"]),
    ('[programs]\n',
     ["app.toml: [programs] is empty: add a [programs.NAME] table with a command"]),
    ('[pysuper]\nlog_format = "text"\n[programs.a]\ncommand = "x"\n',
     ['app.toml: [pysuper] log_format = "text": expected one of "prefix", "raw", "json"']),
    ('[pysuper]\ncolour = "auto"\n[programs.a]\ncommand = "x"\n',
     ["app.toml: unknown key 'colour' in [pysuper]; did you mean 'color'?"]),
    ('[progams.a]\ncommand = "x"\n',
     ["app.toml: unknown table [progams]; did you mean [programs]?",
      'app.toml: no programs: add a [programs.NAME] table with a command, e.g. [programs.web] '
      'command = "node index.js"']),
    ('[programs.web]\ncommand = "x"\nenvironment = "A=1"\n',
     ['app.toml: [programs.web] environment = "A=1": expected a table such as { NAME = "value" }, '
      'got a string']),
    ('[programs.web]\ncommand = "echo \'unclosed"\n',
     ["app.toml: [programs.web] command = \"echo 'unclosed\": cannot split the command as a shell "
      "would: No closing quotation"]),
    ('[programs.web]\ncommand = "x"\nstop_timeout = true\n',
     ["app.toml: [programs.web] stop_timeout = true: expected a number of seconds, got a boolean"]),
    ('[programs.web]\ncommand = "x"\ngroup = "staff"\n',
     ['app.toml: [programs.web] group = "staff": set user as well (group applies to the user the '
      'program runs as)']),
    ('[programs.web]\ncommand = "x"\n\n[programs.web2]\ncommand = "y"\nstop_signal = 99\n',
     ["app.toml: [programs.web2] stop_signal = 99: expected a signal number between 1 and 64"]),
    ('[programs.web]\ncommand = "x"\nstart_seconds = "1s"\n',
     ['app.toml: [programs.web] start_seconds = "1s": expected a number of seconds, got a string']),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_config(text, expected):
    assert errors(text) == expected


def test_all_errors_reported_at_once():
    found = errors('[programs.a]\ncomand = "x"\n[programs.b]\ncommand = "y"\nrestart = "sometimes"\n'
                   'stop_timeout = -2\n')
    assert len(found) == 4


def test_toml_syntax_error_has_line_and_column():
    found = errors('[programs.web]\ncommand = "x"\nstop_timeout = = 3\n')
    assert len(found) == 1
    assert found[0].startswith("app.toml:3:16: invalid TOML: ")


def test_find_config_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.find_config("x.toml", {})[0] == "x.toml"
    assert config.find_config(None, {"PYSUPER_CONFIG": "/y.toml"})[0] == "/y.toml"
    path, searched = config.find_config(None, {})
    assert path is None and searched == ["./pysuper.toml", "/etc/pysuper/pysuper.toml"]
    (tmp_path / "pysuper.toml").write_text("")
    assert config.find_config(None, {})[0] == "./pysuper.toml"


def test_host_problems(tmp_path):
    cfg = parse('''
[programs.a]
command = "definitely-not-a-binary-xyz"
[programs.b]
command = "sh"
directory = "%s/missing"
[programs.c]
command = "sh"
user = "no-such-user-xyz"
''' % tmp_path, "app.toml", ENV)
    problems = config.host_problems(cfg)
    assert problems[0] == "app.toml: [programs.a] command: definitely-not-a-binary-xyz was not found on PATH"
    assert problems[1] == 'app.toml: [programs.b] directory = "%s/missing": no such directory' % tmp_path
    assert problems[2].startswith('app.toml: [programs.c] user = "no-such-user-xyz": no such user')


def test_unset_variable_is_a_host_problem():
    cfg = parse('[programs.web]\ncommand = "echo ${NOPE}"\n', "app.toml", ENV)
    assert cfg.programs["web"].command == ("echo", "${NOPE}")
    assert config.host_problems(cfg)[0] == (
        "app.toml: [programs.web] command: environment variable NOPE is not set "
        "(write ${NOPE:-default} for a fallback, $$ for a literal $)")
