"""Config keys for orchestration (depends_on, type, ready, health, replicas, watch, env_file) and least
privilege (groups, umask, no_new_privileges, limits): values, defaults, expand=False, exact errors."""

import resource

import pytest

from pysuper import config
from pysuper.config import CheckConfig, ConfigError, parse

ENV = {"HOME": "/home/app", "PORT": "8080"}


def errors(text, environ=ENV):
    with pytest.raises(ConfigError) as info:
        parse(text, "app.toml", environ)
    return info.value.errors


def one(text, name="a", **kwargs):
    return parse(text, "app.toml", ENV, **kwargs).programs[name]


def test_new_defaults():
    a = one('[programs.a]\ncommand = "x"\n')
    assert (a.type, a.depends_on, a.ready, a.health, a.replicas, a.replica, a.base) == \
        ("service", {}, None, None, 1, None, "a")
    assert (a.watch, a.watch_ignore, a.watch_debounce, a.env_file, a.file_environment) == ((), (), 0.5, (), {})
    assert (a.groups, a.umask, a.no_new_privileges, a.limits) == (None, None, False, {})


def test_depends_on_forms():
    text = '[programs.db]\ncommand = "x"\n[programs.m]\ncommand = "x"\ntype = "oneshot"\n[programs.a]\ncommand = "x"\n'
    assert one(text + 'depends_on = ["db", "m"]\n').depends_on == {"db": "started", "m": "started"}
    table = one(text + 'depends_on = { m = "completed", db = "ready" }\n').depends_on
    assert list(table.items()) == [("m", "completed"), ("db", "ready")]


def test_oneshot():
    a = one('[programs.a]\ncommand = "x"\ntype = "oneshot"\n')
    assert (a.type, a.restart) == ("oneshot", "never")
    assert one('[programs.a]\ncommand = "x"\ntype = "oneshot"\nrestart = "on-failure"\n').restart == "on-failure"


def test_checks_and_defaults():
    a = one('[programs.a]\ncommand = "x"\nready = { tcp = 8080 }\nhealth = { exec = "pg_isready -q" }\n')
    assert a.ready == CheckConfig(kind="tcp", target=("127.0.0.1", 8080), interval=1.0, timeout=1.0,
                                  start_timeout=60.0, retries=None)
    assert a.health == CheckConfig(kind="exec", target=("pg_isready", "-q"), interval=10.0, timeout=2.0,
                                   start_timeout=None, retries=3)
    assert one('[programs.a]\ncommand = "x"\nready = { tcp = "db:${PORT}", interval = 0.2, timeout = 3, '
               'start_timeout = 5 }\n').ready.target == ("db", 8080)
    assert one('[programs.a]\ncommand = "x"\nready = { tcp = "[::1]:5432" }\n').ready.target == ("::1", 5432)
    assert one('[programs.a]\ncommand = "x"\nready = { http = "https://h/x" }\n').ready.target == "https://h/x"
    assert one('[programs.a]\ncommand = "x"\nready = { log = "listening on \\\\d+" }\n').ready.target == \
        "listening on \\d+"
    assert one('[programs.a]\ncommand = "x"\nready = { notify = true }\n').ready.target is True
    health = one('[programs.a]\ncommand = "x"\nhealth = { http = "http://h/", interval = 5, retries = 1 }\n').health
    assert (health.interval, health.timeout, health.retries) == (5.0, 2.0, 1)


REPLICAS = '''
[programs.web]
command = "node server.js --port 80${PYSUPER_REPLICA} $$HOME ${HOME}"
directory = "/srv/${PYSUPER_REPLICA}"
replicas = 3
environment = { SLOT = "s${PYSUPER_REPLICA}", LIT = "$${PYSUPER_REPLICA}" }
ready = { tcp = "127.0.0.1:80${PYSUPER_REPLICA}" }
health = { exec = ["probe", "${PYSUPER_REPLICA}"] }
'''


def test_replicas():
    cfg = parse(REPLICAS, "app.toml", dict(ENV, PYSUPER_REPLICA="9"))
    assert list(cfg.programs) == ["web-0", "web-1", "web-2"]
    web1 = cfg.programs["web-1"]
    assert (web1.base, web1.replica, web1.replicas) == ("web", 1, 3)
    assert web1.command == ("node", "server.js", "--port", "801", "$HOME", "/home/app")
    assert web1.directory == "/srv/1"
    assert web1.environment == {"SLOT": "s1", "LIT": "${PYSUPER_REPLICA}", "PYSUPER_REPLICA": "1"}
    assert web1.ready.target == ("127.0.0.1", 801) and web1.health.target == ("probe", "1")
    declared = cfg.declared["web"]
    assert declared.replica is None and declared.name == "web"
    assert declared.command[2:4] == ("--port", "80${PYSUPER_REPLICA}")
    assert config.program_environment(web1, {"PATH": "/bin"})["PYSUPER_REPLICA"] == "1"


def test_single_replica_keeps_its_name():
    cfg = parse('[programs.a]\ncommand = "echo ${PYSUPER_REPLICA}"\n', "app.toml", ENV)
    assert list(cfg.programs) == ["a"] and cfg.programs["a"].command == ("echo", "0")
    assert config.program_environment(cfg.programs["a"], {})["PYSUPER_REPLICA"] == "0"


def test_expand_false_keeps_text():
    cfg = parse(REPLICAS + '[programs.b]\ncommand = "x ${NOT_SET} ${PORT:-1}"\nready = { tcp = "${PORT}" }\n'
                'env_file = "missing.env"\n', "app.toml", {}, expand=False)
    assert cfg.programs["web-2"].command == ("node", "server.js", "--port", "802", "$$HOME", "${HOME}")
    assert cfg.programs["web-2"].environment["LIT"] == "$${PYSUPER_REPLICA}"
    assert cfg.declared["web"].command[3] == "80${PYSUPER_REPLICA}"
    b = cfg.programs["b"]
    assert b.command == ("x", "${NOT_SET}", "${PORT:-1}") and b.ready.target == ("127.0.0.1", "${PORT}")
    assert b.file_environment == {} and b.env_file[0][0].endswith("/missing.env")
    assert cfg.unset == ()


def test_expand_only_and_variables():
    text = "a ${PYSUPER_REPLICA} $$ ${X:-d} $${Y} ${PYSUPER_REPLICA:-z}"
    assert config.expand_only(text, {"PYSUPER_REPLICA": "2"}) == "a 2 $$ ${X:-d} $${Y} 2"
    assert config.variables(text) == ["PYSUPER_REPLICA", "X"]


def test_watch(monkeypatch):
    a = one('[programs.a]\ncommand = "x"\nwatch = ["src", "package.json"]\nwatch_ignore = "*.log"\n'
            'watch_debounce = 2\n')
    assert (a.watch, a.watch_ignore, a.watch_debounce) == (("src", "package.json"), ("*.log",), 2.0)
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "watchfiles" else real(name, *a))
    assert errors('[programs.a]\ncommand = "x"\nwatch = ["src"]\n') == [
        "app.toml: [programs.a] watch: needs the watchfiles package, which is not installed: "
        "pip install 'pysuper[watch]'"]


def test_least_privilege_keys():
    a = one('[programs.a]\ncommand = "x"\nuser = "app"\ngroups = ["audio", 44]\numask = "027"\n'
            'no_new_privileges = true\nlimits = { nofile = 1024, nproc = [256, 512], core = 0, '
            'stack = ["unlimited", "unlimited"] }\n')
    assert (a.groups, a.umask, a.no_new_privileges) == (("audio", "44"), 0o27, True)
    assert a.limits == {"nofile": (1024, 1024), "nproc": (256, 512), "core": (0, 0),
                        "stack": ("unlimited", "unlimited")}
    assert one('[programs.a]\ncommand = "x"\numask = "0o077"\n').umask == 0o77
    assert one('[programs.a]\ncommand = "x"\ngroups = []\n').groups == ()


def test_env_file(tmp_path):
    (tmp_path / ".env").write_text("# comment\nexport A=from-file\nB='single $x'\nC=\"double\"\nD=file\n")
    (tmp_path / "local.env").write_text("D=local\n")
    path = tmp_path / "app.toml"
    path.write_text('[pysuper]\nenv_file = ".env"\n[programs.a]\ncommand = "x"\n'
                    'env_file = ["local.env", { path = "none.env", required = false }]\n'
                    'environment = { A = "from-table" }\n')
    a = config.load(str(path), {}).programs["a"]
    assert a.env_file == ((str(tmp_path / ".env"), True), (str(tmp_path / "local.env"), True),
                          (str(tmp_path / "none.env"), False))
    assert a.file_environment == {"A": "from-file", "B": "single $x", "C": "double", "D": "local"}
    env = config.program_environment(a, {"A": "own", "D": "own", "E": "own"})
    assert (env["A"], env["D"], env["E"]) == ("from-table", "local", "own")
    assert "from-file" not in repr(a)


def test_env_file_errors_never_show_values(tmp_path):
    (tmp_path / "bad.env").write_bytes(b"SECRET=abc\\0def\nOTHER=\xff\n")
    path = tmp_path / "app.toml"
    path.write_text('[programs.a]\ncommand = "x"\nenv_file = "missing.env"\n'
                    '[programs.b]\ncommand = "x"\nenv_file = "bad.env"\n')
    with pytest.raises(ConfigError) as info:
        config.load(str(path), {})
    assert info.value.errors[0] == (
        '%s: [programs.a] env_file: %s does not exist (write env_file = { path = "%s", required = false } '
        'if it may be missing)' % (path, tmp_path / "missing.env", tmp_path / "missing.env"))
    assert info.value.errors[1].startswith("%s: [programs.b] env_file: %s: not UTF-8" % (path, tmp_path / "bad.env"))


def test_settings_needing_restart():
    old = config.Settings()
    new = old.replace(shutdown_timeout=3.0, log_format="json", control_socket=False)
    assert config.settings_needing_restart(old, new) == ["log_format", "control_socket"]
    assert config.settings_needing_restart(old, old.replace(shutdown_timeout=1.0)) == []


BAD = [
    ('[programs.a]\ncommand = "x"\ndepends_on = ["b"]\n[programs.b]\ncommand = "y"\ndepends_on = ["a"]\n',
     ["app.toml: [programs.a] depends_on: a dependency cycle: a -> b -> a"]),
    ('[programs.a]\ncommand = "x"\ndepends_on = ["a"]\n',
     ["app.toml: [programs.a] depends_on: a dependency cycle: a -> a"]),
    ('[programs.a]\ncommand = "x"\ndepends_on = ["dbb"]\n[programs.db]\ncommand = "y"\n',
     ['app.toml: [programs.a] depends_on: no program named "dbb"; did you mean "db"?']),
    ('[programs.a]\ncommand = "x"\ndepends_on = { db = "redy" }\n[programs.db]\ncommand = "y"\n',
     ['app.toml: [programs.a] depends_on.db = "redy": expected one of "started", "ready", "completed"; '
      'did you mean "ready"?']),
    ('[programs.a]\ncommand = "x"\ndepends_on = "db"\n',
     ['app.toml: [programs.a] depends_on = "db": expected an array of program names or a table such as '
      '{ db = "ready" }, got a string']),
    ('[programs.a]\ncommand = "x"\ndepends_on = ["db"]\n[programs.db]\ncommand = "y"\nautostart = false\n',
     ["app.toml: [programs.a] depends_on: a starts with pysuper but depends on db, which has autostart = "
      "false; set autostart = false on a too, or start db with pysuper"]),
    ('[programs.a]\ncommand = "x"\ntype = "oneshot"\nrestart = "always"\nready = { tcp = 80 }\nstart_seconds = 3\n',
     ['app.toml: [programs.a] restart = "always": a oneshot runs to completion; use "on-failure" or "never"',
      'app.toml: [programs.a] ready: a oneshot has no ready check (its success is its exit); depend on it '
      'with depends_on = { a = "completed" }',
      'app.toml: [programs.a] start_seconds = 3: does not apply to type = "oneshot" (an exit with an '
      'expected code is success at any time)']),
    ('[programs.a]\ncommand = "x"\ntype = "task"\n',
     ['app.toml: [programs.a] type = "task": expected one of "service", "oneshot"']),
    ('[programs.a]\ncommand = "x"\nready = {}\n',
     ["app.toml: [programs.a] ready = {...}: expected one check: tcp, http, exec, log, notify"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = 80, http = "http://x/" }\n',
     ["app.toml: [programs.a] ready = {...}: expected one check, got tcp and http (one table holds one check)"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = 99999 }\n',
     ["app.toml: [programs.a] ready.tcp = 99999: expected a port between 1 and 65535"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = "h:99999" }\n',
     ['app.toml: [programs.a] ready.tcp = "h:99999": expected a port (8080) or "host:port" with a port '
      'between 1 and 65535']),
    ('[programs.a]\ncommand = "x"\nready = { http = "ftp://x/" }\n',
     ['app.toml: [programs.a] ready.http = "ftp://x/": expected an http:// or https:// URL with a host, such '
      'as "http://127.0.0.1:8080/health"']),
    ('[programs.a]\ncommand = "x"\nready = { log = "(" }\n',
     ['app.toml: [programs.a] ready.log = "(": not a regular expression: missing ), unterminated subpattern '
      'at position 0']),
    ('[programs.a]\ncommand = "x"\nready = { notify = false }\n',
     ["app.toml: [programs.a] ready.notify = false: write notify = true (or leave out the check)"]),
    ('[programs.a]\ncommand = "x"\nready = { exec = [] }\n',
     ["app.toml: [programs.a] ready.exec = []: the command is empty"]),
    ('[programs.a]\ncommand = "x"\nhealth = { log = "x" }\n',
     ['app.toml: [programs.a] health.log = "x": log is a ready check only: it tells when a program has '
      'started, not that it is still alive']),
    ('[programs.a]\ncommand = "x"\nhealth = { tcp = 1, start_timeout = 3 }\n',
     ["app.toml: [programs.a] health.start_timeout = 3: applies to ready only"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = 1, retries = 3 }\n',
     ["app.toml: [programs.a] ready.retries = 3: applies to health only"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = 1, intervall = 3 }\n',
     ["app.toml: [programs.a] ready.intervall = 3: unknown key; did you mean interval? (a check is one of "
      "tcp, http, exec, log, notify, with interval, timeout, start_timeout)"]),
    ('[programs.a]\ncommand = "x"\nready = { tcp = 1, interval = 0 }\n',
     ["app.toml: [programs.a] ready.interval = 0: expected a number of seconds between 0.01 and 86400"]),
    ('[programs.a]\ncommand = "x"\nhealth = { tcp = 1, retries = 0 }\n',
     ["app.toml: [programs.a] health.retries = 0: expected a whole number between 1 and 1000"]),
    ('[programs.a]\ncommand = "x"\nreplicas = 2\n[programs.a-1]\ncommand = "y"\n',
     ["app.toml: [programs.a] replicas = 2: the replica name a-1 is the name of [programs.a-1]"]),
    ('[programs.a]\ncommand = "x"\nreplicas = 1001\n',
     ["app.toml: [programs.a] replicas = 1001: expected a whole number between 1 and 1000"]),
    ('[programs.a]\ncommand = "x"\nreplicas = 2\nready = { tcp = "127.0.0.1:6553${PYSUPER_REPLICA}" }\n'
     'replicas = 7\n', ["app.toml:5:13: invalid TOML: Cannot overwrite a value"]),
    ('[programs.a]\ncommand = "x"\nreplicas = 7\nready = { tcp = "127.0.0.1:6553${PYSUPER_REPLICA}" }\n',
     ['app.toml: [programs.a] (replica a-6) ready.tcp = "127.0.0.1:65536": expected a port (8080) or '
      '"host:port" with a port between 1 and 65535']),
    ('[programs.a]\ncommand = "x"\nwatch_ignore = ["x"]\nwatch_debounce = 1\n',
     ['app.toml: [programs.a] watch_ignore = ["x"]: applies only with watch = [...]',
      "app.toml: [programs.a] watch_debounce = 1: applies only with watch = [...]"]),
    ('[programs.a]\ncommand = "x"\nwatch = [3]\n',
     ["app.toml: [programs.a] watch = [3]: expected a string, got an integer"]),
    ('[programs.a]\ncommand = "x"\nenv_file = { path = "x", requird = false }\n',
     ["app.toml: [programs.a] env_file = {...}: unknown key requird in the env_file table; did you mean "
      "required? (expected path and required)"]),
    ('[programs.a]\ncommand = "x"\nenv_file = 3\n',
     ['app.toml: [programs.a] env_file = 3: expected a path, an array of paths or { path = ".env", required '
      '= false }, got an integer']),
    ('[programs.a]\ncommand = "x"\nlimits = { nofle = 3 }\n',
     ["app.toml: [programs.a] limits.nofle = 3: unknown limit; did you mean nofile? (the limits are %s)"
      % ", ".join(sorted(config.cv.rlimit_names()))]),
    ('[programs.a]\ncommand = "x"\nlimits = { nofile = [5, 3] }\n',
     ["app.toml: [programs.a] limits.nofile = [5, 3]: the soft limit 5 is above the hard limit 3"]),
    ('[programs.a]\ncommand = "x"\nlimits = { nofile = -1 }\n',
     ['app.toml: [programs.a] limits.nofile = -1: expected a whole number between 0 and 9223372036854775807 '
      'or "unlimited"']),
    ('[programs.a]\ncommand = "x"\nlimits = { core = "infinity" }\n',
     ['app.toml: [programs.a] limits.core = "infinity": expected a whole number or "unlimited", got a string']),
    ('[programs.a]\ncommand = "x"\nlimits = { core = ["unlimited", 5] }\n',
     ['app.toml: [programs.a] limits.core = ["unlimited", 5]: the soft limit unlimited is above the hard limit 5']),
    ('[programs.a]\ncommand = "x"\nlimits = { core = [1] }\n',
     ["app.toml: [programs.a] limits.core = [1]: expected [soft, hard], got 1 values"]),
    ('[programs.a]\ncommand = "x"\numask = 27\n',
     ['app.toml: [programs.a] umask = 27: expected an octal string such as "027", got an integer (write it in '
      'quotes)']),
    ('[programs.a]\ncommand = "x"\numask = "999"\n',
     ['app.toml: [programs.a] umask = "999": expected an octal string between "000" and "777" such as "027"']),
    ('[programs.a]\ncommand = "x"\ngroups = "audio"\n',
     ['app.toml: [programs.a] groups = "audio": expected an array of group names or ids such as '
      '["www-data", 44], got a string']),
    ('[programs.a]\ncommand = "x"\nno_new_privileges = 1\n',
     ["app.toml: [programs.a] no_new_privileges = 1: expected true or false, got an integer"]),
]


@pytest.mark.parametrize("text,expected", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_keys(text, expected):
    assert errors(text) == expected


def test_limits_above_pysupers_own_are_a_host_problem_without_root():
    if config.os.geteuid() == 0:
        pytest.skip("root may raise hard limits")
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit on open files here")
    cfg = parse('[programs.a]\ncommand = "sh"\nlimits = { nofile = %d, core = 0 }\n' % (hard + 1), "app.toml", ENV)
    assert config.host_problems(cfg) == [
        "app.toml: [programs.a] limits.nofile: the hard limit %d is above pysuper's own (%d); raising it "
        "needs root" % (hard + 1, hard)]


RANGES = [
    ('start_seconds = 1e10', "start_seconds = 10000000000.0: expected a number of seconds between 0 and 86400"),
    ('stop_timeout = 2592000', "stop_timeout = 2592000: expected a number of seconds between 0 and 86400"),
    ('stop_timeout = %s' % ("9" * 400), "stop_timeout = a 1329-bit integer: expected a number of seconds "
                                        "between 0 and 86400"),
    ('backoff_max = inf', "backoff_max = inf: expected a number of seconds between 0 and 86400"),
    ('start_seconds = nan', "start_seconds = nan: expected a number of seconds, got nan"),
    ('start_retries = 1001', "start_retries = 1001: expected a whole number between 0 and 1000"),
    ('start_retries = %s' % ("9" * 400), "start_retries = a 1329-bit integer: expected a whole number between 0 "
                                         "and 1000"),
    ('exit_codes = [%s]' % ("9" * 400), "exit_codes = [a 1329-bit integer]: expected exit codes between 0 and "
                                        "255, got a 1329-bit integer"),
    ('user = "99999999999999999999999"', 'user = "99999999999999999999999": expected a name or an id between 0 '
                                         'and 4294967294'),
    ('user = 99999999999999999999999', "user = 99999999999999999999999: expected a name or an id between 0 and "
                                       "4294967294"),
    ('user = "root"\ngroup = -1', "group = -1: expected a name or an id between 0 and 4294967294"),
    ('directory = "/tmp\\u0000x"', 'directory = "/tmp\\u0000x": holds a NUL byte, which cannot be passed to a '
                                   'program'),
    ('environment = { A = "x\\u0000" }', "environment.A: holds a NUL byte, which cannot be passed to a program"),
    ('user = "a\\u0000"', 'user = "a\\u0000": holds a NUL byte, which cannot be passed to a program'),
    ('environment = { A = %s }' % ("9" * 400), "environment = {...}: the number for A is too long; write it as a "
                                               "string"),
]


@pytest.mark.parametrize("line,expected", RANGES, ids=[str(i) for i in range(len(RANGES))])
def test_regression_numbers_and_nul_bytes_are_config_errors(line, expected):
    assert errors('[programs.a]\ncommand = "x"\n%s\n' % line) == ["app.toml: [programs.a] " + expected]


def test_regression_nul_byte_in_command():
    assert errors('[programs.a]\ncommand = ["x", "a\\u0000b"]\n') == [
        'app.toml: [programs.a] command = ["x", "a\\u0000b"]: holds a NUL byte, which cannot be passed to a '
        'program']


def test_regression_big_numeric_user_in_resolve_user():
    program = config.ProgramConfig(name="a", command=("x",), user="99999999999999999999999")
    with pytest.raises(ValueError) as info:
        config.resolve_user(program)
    assert str(info.value) == "expected an id between 0 and 4294967294, got 99999999999999999999999"


def test_regression_deep_and_huge_toml():
    assert errors("a = " + "[" * 100000 + "]" * 100000) == ["app.toml: invalid TOML: the TOML is nested too deeply"]
    assert errors("a = " + "{b = " * 50000 + "1" + "}" * 50000) == [
        "app.toml: invalid TOML: the TOML is nested too deeply"]
    found = errors("a = " + "9" * 5000)
    assert len(found) == 1 and found[0].startswith("app.toml: invalid TOML: a value cannot be read: Exceeds the limit")


def test_expand_false_does_not_need_watchfiles(monkeypatch):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "watchfiles" else real(name, *a))
    cfg = parse('[programs.a]\ncommand = "x"\nwatch = ["src"]\n', "app.toml", ENV, expand=False)
    assert cfg.programs["a"].watch == ("src",)


def test_long_values_are_shortened_in_errors():
    assert errors('[programs.a]\ncommand = "x"\nrestart = "%s"\n' % ("y" * 5000)) == [
        'app.toml: [programs.a] restart = "%s..." (5000 characters): expected one of "always", "on-failure", '
        '"never"' % ("y" * 60)]
    assert errors('[programs.a]\ncommand = "x"\nexit_codes = [%s]\n' % ", ".join(["0"] * 100 + ["300"])) == [
        "app.toml: [programs.a] exit_codes = [...] (101 items): expected exit codes between 0 and 255, got 300"]
