"""Conversion keeps supervisord's meaning, or says where it cannot: variables that supervisord split
into words, values baked in at conversion time, programs with an empty command, configs with no
program. Pure conversion in this process (the argv comparison with supervisord itself runs in
tests/integration/test_convert_run.py)."""

import shlex

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysuper import config
from pysuper.convert import ConvertError, command, convert_text
from pysuper.convert.expand import Refs

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib

ENV = {"HOME": "/home/tester", "PORT": "8080", "EXTRA": "-a -b"}


def converted(ini, environ=ENV):
    """(toml text, warnings) for INI text written in /etc/supervisor/supervisord.conf."""
    return convert_text(ini, "/etc/supervisor/supervisord.conf", "/etc/supervisor", environ=environ)


def programs_of(text):
    return tomllib.loads(text).get("programs", {})


# ---------------------------------------------------------------------------------------------
# Splitting a command as supervisord does


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab '\"\\\n\t$*", max_size=16))
def test_split_is_shlex_split(text):
    try:
        expected = shlex.split(text)
    except ValueError as exc:
        with pytest.raises(ValueError, match=str(exc)):
            command.split(text)
        return
    assert [word.text for word in command.split(text)] == expected


def test_split_knows_what_was_quoted():
    words = command.split("a'b c'\\ d \"e\\\"f\"")
    assert [(w.text, "".join("q" if q else "-" for q in w.quoted)) for w in words] == [
        ("ab c d", "-qqqq-"), ('e"f', "qqq")]


def test_through_shell_golden():
    refs = Refs()
    port, extra, host = refs.token("PORT"), refs.token("EXTRA"), refs.token("HOSTNAME", "box")
    text = "/usr/bin/app --port=%s %s \"--all=%s\" 'it''s' %s $HOME %s" % (port, extra, extra, host, extra)
    assert [refs.render(word) for word in command.through_shell(text, refs)] == [
        "/bin/sh", "-c",
        "set -f; exec /usr/bin/app --port=$${1} $${2} --all=\"$${2}\" its \"$${3}\" '$$HOME' $${2}",
        "sh", "${PORT}", "${EXTRA}", "${HOSTNAME}"]


def test_through_shell_ten_variables_keep_their_braces():
    refs = Refs()
    tokens = [refs.token("V%d" % n) for n in range(10)]
    script = command.through_shell("/bin/echo " + " ".join(tokens) + " ''", refs)[2]
    assert script.endswith("${9} ${10} ''")


# ---------------------------------------------------------------------------------------------
# A variable that is (part of) a word of the command


def test_regression_env_word_split_runs_through_the_shell():
    text, warnings = converted("[program:web]\ncommand=/usr/bin/web --port=%(ENV_PORT)s %(ENV_EXTRA)s\n")
    lines = text.splitlines()
    start = lines.index("[programs.web]")
    assert lines[start + 2:start + 5] == [
        "# command: supervisord ran `/usr/bin/web --port=%(ENV_PORT)s %(ENV_EXTRA)s`, substituting "
        "%(ENV_PORT)s, %(ENV_EXTRA)s before splitting it into words,",
        "# so an empty value gives no word and \"-a -b\" two; /bin/sh -c splits ${N} the same way "
        "(set -f: no globbing).",
        'command = ["/bin/sh", "-c", "set -f; exec /usr/bin/web --port=$${1} $${2}", "sh", "${PORT}", '
        '"${EXTRA}"]']
    assert warnings == [
        "/etc/supervisor/supervisord.conf:2: [program:web] command: supervisord splits the value of "
        "%(ENV_PORT)s, %(ENV_EXTRA)s into words (none when it is empty); the converted command runs "
        "through /bin/sh -c to do the same"]
    # pysuper passes each value as one word; the shell splits it
    for extra in ("", "one", "-a -b"):
        loaded = config.parse(text, "p.toml", {"PORT": "80", "EXTRA": extra}).programs["web"]
        assert loaded.command[3:] == ("sh", "80", extra)


def test_variables_that_stay_one_word_are_not_wrapped():
    text, warnings = converted(
        '[supervisord]\nenvironment=KNOWN="x y"\n\n'
        "[program:web]\ncommand=/usr/bin/web \"--home=%(ENV_HOME)s\" '%(ENV_PORT)s' %(host_node_name)s "
        "%(ENV_KNOWN)s\ndirectory=%(ENV_HOME)s\n")
    assert programs_of(text)["web"]["command"] == \
        "/usr/bin/web \"--home=${HOME}\" '${PORT}' ${HOSTNAME} x y"
    assert warnings == []


def test_split_warning_once_for_numprocs():
    text, warnings = converted("[program:w]\ncommand=/usr/bin/w %(ENV_EXTRA)s\nnumprocs=2\n"
                               "process_name=%(program_name)s_%(process_num)d\n")
    assert list(programs_of(text)) == ["w_0", "w_1"]
    assert len(warnings) == 1 and "%(ENV_EXTRA)s" in warnings[0]


# ---------------------------------------------------------------------------------------------
# Values taken from the converting shell's environment


def test_regression_baked_values_are_named_next_to_the_key():
    text, warnings = converted(
        "[program:w]\ncommand=/usr/bin/w\nuser=%(ENV_APP_USER)s\nautostart=%(ENV_AUTO)s\n"
        "stopsignal=%(ENV_SIG)s\nnumprocs=%(ENV_N)s\nprocess_name=%(program_name)s_%(process_num)d\n",
        dict(ENV, APP_USER="app", AUTO="false", SIG="INT", N="1"))
    lines = text.splitlines()
    assert lines[lines.index('user = "app"') - 1] == (
        '# user: converted with %(ENV_APP_USER)s = "app", the value when `pysuper convert` ran (pysuper '
        'does not expand variables in user)')
    assert lines[lines.index("autostart = false") - 1].startswith(
        '# autostart: converted with %(ENV_AUTO)s = "false", ')
    assert lines[lines.index('stop_signal = "INT"') - 1].startswith(
        '# stop_signal: converted with %(ENV_SIG)s = "INT", ')
    numprocs = lines.index("# numprocs = %(ENV_N)s: one of 1 programs made from [program:w]: w_0")
    assert lines[numprocs + 1].startswith('# numprocs: converted with %(ENV_N)s = "1", ')
    assert warnings == [
        '/etc/supervisor/supervisord.conf:%d: [program:w] %s: %s converted as "%s", its value now: pysuper '
        "does not expand variables in %s (a comment in the output says so)" % (line, option, var, value, option)
        for line, option, var, value in ((4, "autostart", "%(ENV_AUTO)s", "false"),
                                         (5, "stopsignal", "%(ENV_SIG)s", "INT"),
                                         (6, "numprocs", "%(ENV_N)s", "1"),
                                         (3, "user", "%(ENV_APP_USER)s", "app"))]


def test_regression_unset_baked_variable_names_the_key():
    with pytest.raises(ConvertError) as caught:
        converted("[program:w]\ncommand=/usr/bin/w\nnumprocs=%(ENV_WORKERS)s\n", {})
    assert str(caught.value) == (
        "/etc/supervisor/supervisord.conf:3: [program:w] numprocs: %(ENV_WORKERS)s: WORKERS is not set; "
        "pysuper does not expand variables in numprocs, so its value is taken when converting: set it for "
        "the conversion (WORKERS=... pysuper convert ...)")


# ---------------------------------------------------------------------------------------------
# Programs that cannot run, configs with none


def test_regression_empty_command_is_commented_out():
    text, warnings = converted("[program:broken]\ncommand =\nautorestart=true\n\n"
                               "[program:ok]\ncommand=/usr/bin/ok\n")
    assert programs_of(text) == {"ok": {"command": "/usr/bin/ok"}}
    lines = text.splitlines()
    start = lines.index("# [program:broken] (/etc/supervisor/supervisord.conf:1) is commented out: its "
                        "command is empty, so supervisord could not start it.")
    assert lines[start + 1:start + 6] == [
        "# Write its command and remove one \"# \" from each line below to run it under pysuper.",
        "# [programs.broken]",
        "# # from [program:broken] (/etc/supervisor/supervisord.conf:1)",
        '# command = ""',
        '# restart = "always"']
    assert warnings == ["/etc/supervisor/supervisord.conf:2: [program:broken] command is empty: supervisord "
                        "cannot start this program; it is kept as a commented-out [programs.broken]"]
    config.parse(text, "p.toml", {})


@pytest.mark.parametrize("ini,why", [
    ("[fcgi-program:php]\ncommand=/usr/sbin/php-fpm\nsocket=tcp://127.0.0.1:9000\n",
     "no [program:NAME] section to convert"),
    ("[include]\nfiles=conf.d/*.conf\n",
     "no [program:NAME] section to convert (the [include] pattern conf.d/*.conf matched no file)"),
    ("[program:a]\ncommand=\n", "no [program:NAME] section has a process to run (empty command or "
                                "numprocs = 0)"),
], ids=["fcgi-only", "include-matches-nothing", "only-empty-commands"])
def test_regression_no_program_is_a_warning(ini, why):
    text, warnings = converted(ini)
    assert programs_of(text) == {}
    assert ("# No program to run: %s. pysuper refuses a config without programs (`pysuper check` and "
            "`pysuper` say \"no programs\" and exit 2): add a [programs.NAME] table with a command." % why
            ) in text.splitlines()
    assert warnings[-1] == ("/etc/supervisor/supervisord.conf: %s; the output has no program, and pysuper "
                            "refuses it until a [programs.NAME] table is added" % why)
    with pytest.raises(config.ConfigError, match="no programs"):
        config.parse(text, "p.toml", {})


def test_regression_program_umask_becomes_the_umask_key():
    text, warnings = converted("[supervisord]\numask=077\n\n[program:web]\ncommand=/bin/true\numask=002\n"
                               "\n[program:db]\ncommand=/bin/true\n")
    programs = programs_of(text)
    assert programs["web"]["umask"] == "002"
    assert "umask" not in programs["db"]  # supervisord's own umask applies only when it daemonizes
    assert config.parse(text, "converted.toml", environ={}).programs["web"].umask == 0o002
    assert "umask = 077: not needed; supervisord applies it only when it daemonizes" in text


def test_program_umask_must_be_octal():
    with pytest.raises(ConvertError, match=r"umask = 089: expected an octal number"):
        converted("[program:web]\ncommand=/bin/true\numask=089\n")
