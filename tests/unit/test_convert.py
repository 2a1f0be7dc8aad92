"""`pysuper convert` without processes: supervisord configs in the styles of real projects, converted
in this process through `convert.main`, read back as TOML, checked value by value and validated with the
config loader; then the exact error lines for input that cannot be converted. (tests/integration/
test_convert_run.py runs the real CLI, `pysuper check` and the converted configs.)"""

import io
import os
import shlex
import sys

import pytest

from pysuper import config, convert

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.path.join(ROOT, "tests", "data", "supervisord")
HOME = "/home/tester"
ENV = {"HOME": HOME, "HOSTNAME": "box"}


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


@pytest.fixture
def pysuper(monkeypatch):
    """pysuper("convert", ARGS..., stdin=, cwd=, env=) -> Result, run by convert.main in this process."""
    def run(*args, stdin=None, cwd=None, env=None):
        assert args[0] == "convert"
        for key, value in dict(ENV, **(env or {})).items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("PYSUPER_TEST_UNSET", raising=False)
        if cwd is not None:
            monkeypatch.chdir(cwd)
        out, err = io.BytesIO(), io.StringIO()
        stdout = io.TextIOWrapper(out, encoding="utf-8")
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin or b"")))
        monkeypatch.setattr(sys, "stdout", stdout)
        monkeypatch.setattr(sys, "stderr", err)
        code = convert.main(list(args[1:]))
        stdout.flush()
        return Result(code, out.getvalue(), err.getvalue().encode())
    return run


@pytest.fixture
def convert_cli(pysuper, tmp_path):
    """convert_cli(path) -> (toml text, warnings): converted to a file, which the config loader accepts."""
    def run(path, env=None):
        out = tmp_path / "pysuper.toml"
        result = pysuper("convert", path, "-o", str(out), cwd=str(tmp_path), env=env)
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout == b""
        text = out.read_text(encoding="utf-8")
        loaded(text, env)
        return text, result.stderr.decode()
    return run


@pytest.fixture
def convert_ok(pysuper, tmp_path):
    def run(text, env=None):
        ini = tmp_path / "supervisord.conf"
        ini.write_text(text)
        result = pysuper("convert", str(ini), cwd=str(tmp_path), env=env)
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode(), result.stderr.decode()
    return run


def programs_of(text):
    return tomllib.loads(text)["programs"]


def loaded(text, env=None):
    return config.parse(text, "pysuper.toml", dict(os.environ, **dict(ENV, **(env or {}))))


def keys(table):
    return {key: value for key, value in table.items() if key != "environment"}


def sample(name):
    return os.path.join(DATA, name)


# ---------------------------------------------------------------------------------------------
# The samples


def test_node_hello_sample(convert_cli):
    text, warnings = convert_cli(sample("node-hello.conf"))
    assert warnings == ""
    assert programs_of(text) == {"app": {"command": "node index.js", "directory": "/data/app"}}
    app = loaded(text).programs["app"]
    assert app.command == ("node", "index.js") and app.directory == "/data/app"
    assert app.restart == "on-failure" and app.exit_codes == (0,)  # supervisord's defaults
    for line in ("#   nodaemon = true: not needed; pysuper always runs in the foreground",
                 "# stdout_logfile = /dev/stdout: not needed; pysuper relays the program's stdout to its "
                 "own stdout, each line prefixed with the program name",
                 "# stdout_logfile_maxbytes = 0: not needed; pysuper writes no log files",
                 "# stderr_logfile = /dev/stderr: not needed; pysuper relays the program's stderr to its "
                 "own stderr, each line prefixed with the program name",
                 "# stderr_logfile_maxbytes = 0: not needed; pysuper writes no log files"):
        assert line in text.splitlines()
    # the comments sit inside the program's table, after its keys
    lines = text.splitlines()
    assert lines.index("[programs.app]") < lines.index(
        "# stdout_logfile_maxbytes = 0: not needed; pysuper writes no log files")


def test_debian_layout_with_include(convert_cli):
    text, warnings = convert_cli(sample("debian/supervisord.conf"))
    assert warnings == ""
    programs = programs_of(text)
    assert list(programs) == ["web", "worker"]
    assert programs["web"] == {
        "command": "/usr/bin/python3 -m http.server 8000 --bind 127.0.0.1", "directory": "/srv/www",
        "user": "www-data", "autostart": True, "restart": "always", "start_seconds": 5}
    assert programs["worker"] == {
        "command": "/usr/local/bin/worker --queue default", "restart": "on-failure", "exit_codes": [0, 3],
        "stop_signal": "INT", "stop_timeout": 20}
    for start in ("# [unix_http_server] (", "# [rpcinterface:supervisor] (", "# [supervisorctl] (",
                  "# [include] (", "#   pidfile = /var/run/supervisord.pid: not needed",
                  "# redirect_stderr = true: not needed",
                  "# stdout_logfile = AUTO: pysuper writes no log files"):
        assert any(line.startswith(start) for line in text.splitlines()), start
    assert os.path.join(DATA, "debian", "conf.d", "web.conf:1") in text


def test_laravel_queue_workers_numprocs(convert_cli):
    text, _ = convert_cli(sample("laravel-queue.conf"))
    programs = programs_of(text)
    names = ["laravel-worker_%02d" % n for n in range(8)]
    assert list(programs) == names
    for name in names:
        assert programs[name] == {
            "command": "php /var/www/html/artisan queue:work sqs --sleep=3 --tries=3 --max-time=3600",
            "user": "forge", "autostart": True, "restart": "always", "stop_timeout": 3600}
    for option in ("stopasgroup", "killasgroup"):
        assert "# %s = true: not needed; pysuper always signals the program's whole process group" % option \
            in text.splitlines()
    assert "# numprocs = 8: one of 8 programs made from [program:laravel-worker]: " + ", ".join(names) in text
    assert "shutdown_timeout seconds (default 9)" in text


def test_django_gunicorn_celery(convert_cli):
    text, _ = convert_cli(sample("django-celery.conf"))
    programs = programs_of(text)
    assert list(programs) == ["gunicorn", "celerybeat", "celery"]  # priority 10, 999, 1000
    assert programs["gunicorn"]["stop_signal"] == "QUIT"
    assert programs["gunicorn"]["environment"] == {
        "DJANGO_SETTINGS_MODULE": "proj.settings.production", "PYTHONPATH": "/srv/proj",
        "LANG": "en_US.UTF-8"}
    assert programs["celery"]["environment"] == {
        "DJANGO_SETTINGS_MODULE": "proj.settings.production", "C_FORCE_ROOT": "false"}
    assert keys(programs["celery"]) == {
        "command": "/srv/venv/bin/celery -A proj worker --loglevel=INFO", "directory": "/srv/proj",
        "user": "nobody", "autostart": True, "restart": "always", "start_seconds": 10, "stop_timeout": 600}
    assert "# priority = 1000: supervisord's start order" in text


def test_nginx_php_fpm_with_eventlistener(convert_cli):
    text, warnings = convert_cli(sample("nginx-php-fpm.conf"))
    path = sample("nginx-php-fpm.conf")
    assert warnings.splitlines() == [
        "pysuper convert: warning: %s:28: [eventlistener:processes] is not supported (pysuper has no event "
        "protocol, so event listeners cannot run under it); it is kept as a comment" % path]
    programs = programs_of(text)
    assert list(programs) == ["nginx", "php-fpm"]
    assert programs["nginx"] == {"command": "nginx -g 'daemon off;'", "restart": "never", "start_retries": 0}
    assert programs["php-fpm"] == {"command": "php-fpm82 -F", "restart": "never", "start_retries": 0}
    assert loaded(text).programs["nginx"].command == ("nginx", "-g", "daemon off;")
    lines = text.splitlines()
    assert "# [eventlistener:processes] (%s:28) is not converted: pysuper has no event protocol, so event " \
           "listeners cannot run under it." % path in lines
    assert "# If this listener stops supervisord when a program fails, set critical = true on that program " \
           "instead." in lines
    assert "#   events = PROCESS_STATE_STOPPED,PROCESS_STATE_EXITED,PROCESS_STATE_FATAL" in lines
    assert "#   user = root: no equivalent; run pysuper itself as that user (Dockerfile USER)" in lines


def test_env_expansion_here_and_percent(convert_cli):
    text, _ = convert_cli(sample("env-expansion.conf"))
    programs = programs_of(text)
    assert list(programs) == ["api", "report"]
    # %(ENV_X)s from [supervisord] environment is known now; from the process environment it is
    # deferred to ${X}, read when pysuper starts the program
    # (an unquoted %(ENV_HOME)s: split by the shell as supervisord split it, see test_convert_split)
    assert programs["api"]["command"] == [
        "/bin/sh", "-c", "set -f; exec /opt/app/bin/api --config %s/api.yaml --home $${1} --name api" % DATA,
        "sh", "${HOME}"]
    assert programs["api"]["directory"] == "/opt/app"
    assert programs["api"]["environment"] == {
        "APP_ROOT": "/opt/app", "TZ": "UTC", "API_PORT": "8080", "LOG_DIR": DATA + "/logs",
        "CACHE_DIR": "${HOME}/.cache"}
    # a program's own environment feeds %(ENV_X)s in its command; %% is a literal %
    assert programs["report"]["command"] == "/usr/bin/report --port 9090 --discount 15% --root /opt/app"
    assert programs["report"]["environment"] == {"APP_ROOT": "/opt/app", "TZ": "UTC", "API_PORT": "9090"}
    api = loaded(text).programs["api"]
    assert api.command[2:] == ("set -f; exec /opt/app/bin/api --config %s/api.yaml --home ${1} --name api"
                               % DATA, "sh", HOME)
    assert api.environment["CACHE_DIR"] == HOME + "/.cache"
    assert "# %%(here)s was expanded to %s" % DATA in text


def test_env_deferred_not_resolved_at_conversion(pysuper):
    """${HOME} is read when pysuper runs, so the converting machine's HOME does not leak in."""
    first = pysuper("convert", sample("env-expansion.conf"), env=dict(HOME="/one"))
    second = pysuper("convert", sample("env-expansion.conf"), env=dict(HOME="/two"))
    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout
    assert b"/one" not in first.stdout


def test_numprocs_process_num_formats(convert_cli):
    text, _ = convert_cli(sample("numprocs.conf"))
    programs = programs_of(text)
    assert list(programs) == ["queue_00", "queue_01", "shard-1", "shard-2", "shard-3"]
    for n in (1, 2, 3):
        assert programs["shard-%d" % n] == {
            "command": "/usr/bin/shard-server --port=80%02d --id %d --of 3" % (n, n),
            "directory": "/var/lib/shards/%d" % n, "restart": "always",
            "environment": {"SHARD_ID": str(n), "SHARD_NAME": "shard-%d" % n}}
    assert programs["queue_01"] == {"command": "/usr/bin/queue-worker"}


def test_groups(convert_cli):
    text, _ = convert_cli(sample("groups.conf"))
    programs = programs_of(text)
    # supervisord's start order: groups by priority (cron 50, web 100), then members by priority
    assert list(programs) == ["cron", "static", "app"]
    assert programs["app"]["command"] == "/usr/bin/app --group web --name app"
    assert programs["static"]["command"] == '/usr/sbin/nginx -g "daemon off;"'
    assert loaded(text).programs["static"].command == ("/usr/sbin/nginx", "-g", "daemon off;")
    assert text.count("# part of [group:web]") == 2
    assert "pysuper has no groups; its programs are converted one by one (static, app)" in text


def test_superlance_listeners_are_reported(convert_cli):
    text, warnings = convert_cli(sample("superlance.conf"))
    assert list(programs_of(text)) == ["app"]
    for name, line in (("crashmail", 8), ("memmon", 12), ("httpok", 16)):
        assert "%s:%d: [eventlistener:%s] is not supported" % (sample("superlance.conf"), line, name) \
            in warnings
        assert "# [eventlistener:%s] (" % name in text
    assert "#   command = httpok -p app http://localhost:8080/health" in text


def test_autorestart_variants(convert_cli):
    text, _ = convert_cli(sample("autorestart-variants.conf"))
    programs = programs_of(text)
    assert programs == {
        "always": {"command": "/bin/sleep 1000", "restart": "always", "stop_signal": "TERM"},
        "never": {"command": "/bin/sleep 1001", "restart": "never", "start_seconds": 3},
        "off-word": {"command": "/bin/sleep 1004", "restart": "never", "stop_signal": "TERM",
                     "stop_timeout": 30},
        "oneshot": {"command": "/bin/true", "restart": "never", "exit_codes": [0], "start_seconds": 0,
                    "stop_signal": "QUIT"},
        "unexpected": {"command": "/bin/sleep 1002", "restart": "on-failure", "exit_codes": [0, 2, 75],
                       "start_retries": 10},
        "yes-word": {"command": "/bin/sleep 1003", "autostart": False, "restart": "always",
                     "stop_signal": "HUP"},
    }
    cfg = loaded(text)
    assert cfg.programs["yes-word"].stop_signal == 1 and cfg.programs["oneshot"].stop_signal == 3
    # autorestart=false differs from supervisord on a failed start; say so where it matters
    note = "# note: supervisord retried a start that failed within startsecs even with autorestart=false"
    assert text.count(note) == 2  # never and off-word; not oneshot (startsecs=0)


def test_dollar_signs_stay_literal(convert_cli):
    text, _ = convert_cli(sample("dollar-signs.conf"))
    programs = programs_of(text)
    assert programs["shell-loop"]["command"] == \
        "/bin/sh -c 'while :; do echo \"tick from $$$$ in $$HOME\"; sleep 60; done'"
    assert programs["price"]["environment"] == {"PS1": "$$ ", "GREETING": "hello $${USER}"}
    cfg = loaded(text)
    # after pysuper's own expansion the program gets exactly what supervisord gave it
    assert cfg.programs["shell-loop"].command == (
        "/bin/sh", "-c", 'while :; do echo "tick from $$ in $HOME"; sleep 60; done')
    assert cfg.programs["price"].command == ("/usr/bin/printf", "%s costs $5\\n", "item")
    assert cfg.programs["braces"].command == (
        "/bin/sh", "-c", "exec /usr/bin/env -i HOME=${HOME} /bin/sleep 1000")
    assert dict(cfg.programs["price"].environment) == {"PS1": "$ ", "GREETING": "hello ${USER}"}
    assert "# note: environment GREETING keeps a literal $" in text
    assert "environment PS1" not in text


def test_multiline_values_and_comments(convert_cli):
    text, _ = convert_cli(sample("multiline-comments.conf"))
    programs = programs_of(text)
    assert list(programs) == ["sleeper", "logger"]
    assert programs["sleeper"] == {"command": "/bin/sleep 1000", "directory": "/tmp", "stop_signal": "TERM"}
    assert programs["logger"] == {"command": "/usr/bin/logger-daemon --verbose --tag=app", "stop_timeout": 5}


def test_environment_quoting_and_commas(convert_cli):
    text, _ = convert_cli(sample("quoting-commas.conf"))
    assert programs_of(text)["quoted"]["environment"] == {
        "LIST": "a,b,c", "SINGLE": "x,y", "SPACED": "hello world",
        "URL": "postgres://user:pw@db:5432/app?sslmode=disable",
        "PATH": "/opt/app/bin:/usr/local/bin:/usr/bin:/bin", "EMPTY": "", "PLAIN": "plain-value_1.2",
        "QUOTE": "it's"}


def test_include_globs_relative_to_including_file_and_here(convert_cli):
    base = os.path.join(DATA, "include-here")
    text, _ = convert_cli(os.path.join(base, "supervisord.conf"))
    programs = programs_of(text)
    assert list(programs) == ["api", "extra", "worker"]
    services = os.path.join(base, "services")
    assert programs["api"] == {"command": "%s/api --config %s/api.toml" % (services, services),
                               "directory": services}
    assert programs["worker"] == {"command": services + "/worker", "restart": "always"}
    assert programs["extra"] == {"command": base + "/extra.sh"}


def test_include_named_relative_to_the_cwd(pysuper):
    result = pysuper("convert", "include-here/supervisord.conf", cwd=DATA)
    assert result.returncode == 0, result.stderr.decode()
    assert b"# from [program:api] (include-here/services/api.ini:1)" in result.stdout


def test_servers_secrets_unknown_options_and_fcgi(convert_cli):
    path = sample("docker-sshd-cron.conf")
    text, warnings = convert_cli(path)
    assert warnings.splitlines() == [
        "pysuper convert: warning: %s:30: unknown option autorestrat in [program:cron]; kept as a comment; "
        "did you mean autorestart?" % path,
        "pysuper convert: warning: %s:32: [fcgi-program:php] is not supported (pysuper does not create "
        "FastCGI sockets); it is kept as a comment" % path]
    assert "s3cret" not in text
    assert text.count("#   password = (hidden)") == 2
    assert programs_of(text) == {
        "cron": {"command": "cron -f -L 15", "restart": "always"},
        "sshd": {"command": "/usr/sbin/sshd -D -e", "restart": "always", "start_retries": 5,
                 "umask": "022"}}
    assert "# autorestrat = false: unknown to supervisord (ignored there too)" in text
    assert "# umask = 022" not in text  # a program's umask is a key, not a comment
    assert "#   minfds = 1024: supervisord raises its own soft nofile limit to at least this" in text


ALL_SAMPLES = sorted(
    os.path.relpath(os.path.join(folder, name), DATA)
    for folder, _, names in os.walk(DATA) for name in names if name.endswith((".conf", ".ini")))


def test_a_dozen_samples():
    assert len(ALL_SAMPLES) >= 12


@pytest.mark.parametrize("name", ALL_SAMPLES)
def test_every_sample_round_trips(convert_cli, pysuper, name, tmp_path):
    """Every sample (included snippets too) converts, parses as TOML, loads as a pysuper config,
    and converting again gives the same bytes."""
    text, _ = convert_cli(sample(name))
    again = pysuper("convert", sample(name), cwd=str(tmp_path))
    assert again.stdout.decode() == text
    cfg = loaded(text)
    for program in cfg.programs.values():
        assert program.command and program.command[0]


# ---------------------------------------------------------------------------------------------
# Command line


def test_stdin_and_dash(pysuper):
    ini = b"[program:web]\ncommand=/bin/sleep 5\n"
    for args in ((), ("-",)):
        result = pysuper("convert", *args, stdin=ini)
        assert result.returncode == 0
        assert programs_of(result.stdout.decode()) == {"web": {"command": "/bin/sleep 5"}}
        assert result.stdout.startswith(b"# pysuper configuration converted from <stdin>")


def test_help(pysuper):
    result = pysuper("convert", "--help")
    assert result.returncode == 0
    assert result.stdout.startswith(b"usage: pysuper convert [-h] [-o FILE] [SUPERVISORD_CONF]")
    assert b"$$" in result.stdout


def test_usage_error(pysuper):
    result = pysuper("convert", "a.conf", "b.conf")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines()[-1] == \
        "pysuper convert: unrecognized arguments: b.conf"


def test_output_file_not_written_on_error(pysuper, tmp_path):
    out = tmp_path / "out.toml"
    result = pysuper("convert", "-o", str(out), stdin=b"[program:x]\n")
    assert result.returncode == 2 and not out.exists()


def test_main_with_the_real_stdout(tmp_path, capsys):
    ini = tmp_path / "s.conf"
    ini.write_text("[program:web]\ncommand=/bin/true\n")
    assert convert.main([str(ini)]) == 0
    assert programs_of(capsys.readouterr().out) == {"web": {"command": "/bin/true"}}


# ---------------------------------------------------------------------------------------------
# Smaller cases




def test_host_node_name_is_read_when_pysuper_runs(convert_ok):
    text, _ = convert_ok("[program:a]\ncommand=/bin/echo %(host_node_name)s\n")
    assert programs_of(text)["a"]["command"] == "/bin/echo ${HOSTNAME}"  # a host name is one word
    assert loaded(text).programs["a"].command == ("/bin/echo", "box")
    assert "# note: %(host_node_name)s became ${HOSTNAME}, which Docker and podman set in containers; " \
        "elsewhere export HOSTNAME before starting pysuper" in text.splitlines()


def test_env_in_settings_without_expansion_is_resolved_now(convert_ok):
    text, _ = convert_ok("[program:a]\ncommand=/bin/true\nuser=%(ENV_APP_USER)s\nstartsecs=%(ENV_WAIT)s\n",
                         env=dict(APP_USER="app", WAIT="7"))
    assert programs_of(text)["a"] == {"command": "/bin/true", "user": "app", "start_seconds": 7}


def test_names_pysuper_cannot_use_are_renamed(convert_ok):
    text, _ = convert_ok("[program:web@1]\ncommand=/bin/true\n\n[program:web_1]\ncommand=/bin/false\n\n"
                         "[program:+x]\ncommand=/bin/true\n")
    programs = programs_of(text)
    # a valid name is kept; the others are renamed and say so
    assert programs == {"_x": {"command": "/bin/true"}, "web_1_2": {"command": "/bin/true"},
                        "web_1": {"command": "/bin/false"}}
    rule = "pysuper program names are unique and use letters, digits, '_', '-' and '.'"
    assert "# renamed from web@1: " + rule in text.splitlines()
    assert "# renamed from +x: " + rule in text.splitlines()


def test_path_extended_from_the_environment(convert_ok):
    text, _ = convert_ok('[supervisord]\nenvironment=PATH="/opt/app/bin:%(ENV_PATH)s"\n\n'
                         '[program:a]\ncommand=app-server\n')
    assert programs_of(text)["a"]["environment"] == {"PATH": "/opt/app/bin:${PATH}"}
    assert loaded(text, {"PATH": "/usr/bin:/bin"}).programs["a"].environment == {
        "PATH": "/opt/app/bin:/usr/bin:/bin"}


def test_numprocs_zero_is_reported_not_dropped(convert_ok, tmp_path):
    text, warnings = convert_ok("[program:a]\ncommand=/bin/true\n\n[program:b]\ncommand=/bin/sleep 9\n"
                                "numprocs=0\n")
    assert list(programs_of(text)) == ["a"]
    assert "# [program:b] (%s:4) is not converted: numprocs = 0, so supervisord starts no process from it." \
        % (tmp_path / "supervisord.conf") in text.splitlines()
    assert "#   command = /bin/sleep 9" in text.splitlines()
    assert warnings == "pysuper convert: warning: %s:6: [program:b] numprocs = 0: no program to convert; " \
        "kept as a comment\n" % (tmp_path / "supervisord.conf")


def test_placeholder_lookalike_text_is_kept(convert_ok):
    text, _ = convert_ok("[program:a]\ncommand=/bin/echo PYSUPERREF0Z '%(ENV_HOME)s'\n")
    assert programs_of(text)["a"]["command"] == "/bin/echo PYSUPERREF0Z '${HOME}'"


def test_default_section_applies_to_programs(convert_ok):
    text, warnings = convert_ok("[DEFAULT]\nautorestart=true\n\n[supervisord]\nnodaemon=true\n\n"
                                "[program:a]\ncommand=/bin/true\n")
    assert programs_of(text)["a"] == {"command": "/bin/true", "restart": "always"}
    assert warnings == ""  # [supervisord] does not inherit an unknown autorestart
    assert "#   autorestart = true" in text.splitlines()


def test_supervisord_environment_merges_under_program_environment(convert_ok):
    text, _ = convert_ok('[supervisord]\nenvironment=A="1",B="2"\n\n'
                         '[program:a]\ncommand=/bin/true\nenvironment=B="3",C="%(ENV_A)s"\n')
    assert programs_of(text)["a"]["environment"] == {"A": "1", "B": "3", "C": "1"}


@pytest.mark.parametrize("value", [
    "plain", 'double "quotes"', "single 'quotes'", "both ' and \"", "back\\slash", "tab\there",
    "new\nline", "bell\x07", "del\x7f", "unicode \u00e9\u2603", "$${X}", "",
])
def test_toml_string_round_trips(value):
    assert tomllib.loads("v = %s\n" % convert.toml_string(value))["v"] == value


def test_toml_keys_are_quoted_when_needed():
    assert convert.toml_key("web-1_a") == "web-1_a"
    assert tomllib.loads("%s = 1\n" % convert.toml_key("web.1 x")) == {"web.1 x": 1}


# ---------------------------------------------------------------------------------------------
# Input that cannot be converted: one line naming the file and line, exit 2


ERRORS = [
    ("command=/bin/true\n",
     "1: expected a [section] header before 'command=/bin/true'"),
    ("[program:a]\ncommand=/bin/true\nthis is not an option\n",
     "3: cannot parse 'this is not an option': expected name = value, a [section] header or an indented "
     "continuation line"),
    ("[program:a]\nautostart=true\n",
     "1: [program:a] has no command"),
    ("[program:a]\ncommand=/bin/echo %(nope)s\n",
     "2: [program:a] command: unknown name %(nope)s; command can use ENV_<NAME>, group_name, here, "
     "host_node_name, numprocs, process_num, program_name"),
    ("[program:a]\ncommand=/bin/true\npriority=%(process_num)s\n",
     "3: [program:a] priority: unknown name %(process_num)s; priority can use ENV_<NAME>, group_name, here, "
     "host_node_name, program_name"),
    ("[program:a]\ncommand=/bin/echo 100%\n",
     "2: [program:a] command: cannot expand '/bin/echo 100%': a % must start %(name)s or be written %%"),
    ("[program:a]\ncommand=/bin/echo %(program_name)\n",
     "2: [program:a] command: cannot expand '/bin/echo %(program_name)': %(program_name) must be followed "
     "by a format such as s or 02d"),
    ("[program:a]\ncommand=/bin/echo %(program_name)d\n",
     "2: [program:a] command: cannot format %(program_name)d: program_name is text, not a number; use "
     "%(program_name)s"),
    ("[program:a]\ncommand=/bin/true\nautostart=maybe\n",
     "3: [program:a] autostart = maybe: expected true or false"),
    ("[program:a]\ncommand=/bin/true\nautorestart=sometimes\n",
     "3: [program:a] autorestart = sometimes: expected true, false or unexpected"),
    ("[program:a]\ncommand=/bin/true\nexitcodes=0,256\n",
     "3: [program:a] exitcodes = 0,256: expected exit codes between 0 and 255 separated by commas "
     "(e.g. 0,2)"),
    ("[program:a]\ncommand=/bin/true\nstopsignal=FOO\n",
     '3: [program:a] stopsignal = FOO: expected a signal name such as "TERM", "INT", "QUIT", "HUP", "KILL", '
     '"USR1" or a number'),
    ("[program:a]\ncommand=/bin/true\nstartsecs=-1\n",
     "3: [program:a] startsecs = -1: expected a whole number >= 0"),
    ("[program:a]\ncommand=/bin/true\nstopwaitsecs=ten\n",
     "3: [program:a] stopwaitsecs = ten: expected a whole number"),
    ("[program:a]\ncommand=/bin/true\nnumprocs=2\n",
     "3: [program:a] numprocs = 2: process_name must contain %(process_num)s (e.g. "
     "process_name=%(program_name)s_%(process_num)02d)"),
    ("[program:a]\ncommand=/bin/true\nstopasgroup=true\nkillasgroup=false\n",
     "4: [program:a]: stopasgroup=true needs killasgroup=true"),
    ("[group:g]\nprograms=a,b\n\n[program:a]\ncommand=/bin/true\n",
     "2: [group:g] names unknown program b"),
    ("[program:a]\ncommand=/bin/true\nenvironment=A=1 B=2\n",
     "3: [program:a] environment: cannot parse 'A=1 B=2': expected KEY=value pairs separated by commas, with "
     "values quoted when they contain other characters than letters, digits and /.+-():_ "
     "(e.g. KEY=\"a b\",K2=\"x,y\")"),
    ("[program:a]\ncommand=/bin/true\nenvironment=A=\"unclosed\n",
     "3: [program:a] environment: cannot parse 'A=\"unclosed': No closing quotation"),
    ("[program:a]\ncommand=/bin/sh -c 'unclosed\n",
     "2: [program:a] command: cannot split \"/bin/sh -c 'unclosed\" as supervisord would: "
     "No closing quotation"),
    ("[program:a b]\ncommand=/bin/true\n",
     "1: [program:a b]: invalid name 'a b' (names cannot contain ' ')"),
    ("[program:a]\ncommand=/bin/true\nuser=%(ENV_PYSUPER_TEST_UNSET)s\n",
     "3: [program:a] user: %(ENV_PYSUPER_TEST_UNSET)s: PYSUPER_TEST_UNSET is not set; pysuper does not "
     "expand variables in user, so its value is taken when converting: set it for the conversion "
     "(PYSUPER_TEST_UNSET=... pysuper convert ...)"),
    ("[program:a]\ncommand=/bin/echo %(ENV_HOME)5s\n",
     "2: [program:a] command: %(ENV_HOME)5s: only %(ENV_HOME)s can be converted here, because the value is "
     "read when pysuper starts the program"),
    ("[include]\n\n[program:a]\ncommand=/bin/true\n",
     "1: [include] has no files setting (e.g. files = conf.d/*.conf)"),
]


@pytest.mark.parametrize("text,expected", ERRORS, ids=[str(n) for n in range(len(ERRORS))])
def test_error_lines(pysuper, text, expected, tmp_path):
    ini = tmp_path / "bad.conf"
    ini.write_text(text)
    result = pysuper("convert", str(ini), cwd=str(tmp_path))
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == ["pysuper convert: error: %s:%s" % (ini, expected)]


def test_error_in_an_included_file_names_that_file(pysuper, tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "web.conf").write_text("[program:web]\ncommand=/bin/true\nstartretries=many\n")
    ini = tmp_path / "supervisord.conf"
    ini.write_text("[include]\nfiles = conf.d/*.conf\n")
    result = pysuper("convert", str(ini))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "pysuper convert: error: %s:3: [program:web] startretries = many: expected a whole number"
        % (tmp_path / "conf.d" / "web.conf")]


def test_error_on_stdin(pysuper):
    result = pysuper("convert", stdin=b"[program:a]\ncommand=/bin/true\nautostart=perhaps\n")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "pysuper convert: error: <stdin>:3: [program:a] autostart = perhaps: expected true or false"]


def test_error_missing_file(pysuper):
    result = pysuper("convert", "/nonexistent/supervisord.conf")
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "pysuper convert: error: /nonexistent/supervisord.conf: cannot read the supervisord config: "
        "No such file or directory"]


def test_error_not_utf8(pysuper, tmp_path):
    ini = tmp_path / "latin1.conf"
    ini.write_bytes(b"[program:a]\ncommand=/bin/echo caf\xe9\n")
    result = pysuper("convert", str(ini))
    assert result.returncode == 2
    assert result.stderr.decode().splitlines() == [
        "pysuper convert: error: %s:2: not UTF-8 text (byte 33)" % ini]


def test_command_split_matches_supervisord():
    """pysuper splits a command string the way supervisord's shlex.split does."""
    for command in ("node index.js", "nginx -g 'daemon off;'", 'sh -c "a \\"b\\" c"', "a\\ b c"):
        text = "[programs.a]\ncommand = %s\n" % convert.toml_string(command)
        assert config.parse(text, "x.toml", {}).programs["a"].command == tuple(shlex.split(command))
