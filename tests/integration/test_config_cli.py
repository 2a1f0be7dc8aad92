"""The config as the CLI shows it: `check FILE`, one line per program, unset ${VAR}s as warnings that
still stop `run`, supervisord hints, env_file values reaching a real program, in the right order."""

import os
import sys

from conftest import ROOT, py, run_cli, toml_list


def test_check_takes_a_plain_file_name(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "true"\n')
    result = run_cli(["check", str(path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "web  true  (restart = on-failure)\n"
    extra = run_cli(["check", str(path), "more"])
    assert extra.returncode == 2 and "unexpected argument 'more'" in extra.stderr


def test_check_keeps_one_line_per_program_for_commands_with_newlines(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.a]\ncommand = ["sh", "-c", "echo a\\necho b"]\n[programs.b]\ncommand = "true"\n')
    result = run_cli(["check", str(path)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["a  sh -c 'echo a\\necho b'  (restart = on-failure)",
                                          "b  true  (restart = on-failure)"]


def test_unset_variable_warns_in_check_and_stops_run(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "true --port ${PYSUPER_TEST_UNSET_PORT}"\n')
    message = ("%s: [programs.web] command: environment variable PYSUPER_TEST_UNSET_PORT is not set (write "
               "${PYSUPER_TEST_UNSET_PORT:-default} for a fallback, $$ for a literal $)" % path)
    checked = run_cli(["check", str(path)])
    assert checked.returncode == 0
    assert "pysuper: warning: " + message in checked.stderr.splitlines()
    run = run_cli(["-c", str(path)])
    assert run.returncode == 2
    assert run.stderr.splitlines() == ["pysuper: error: " + message, "pysuper: error: nothing was started"]
    ok = run_cli(["check", str(path)], env={"PYSUPER_TEST_UNSET_PORT": "80"})
    assert ok.returncode == 0 and "warning" not in ok.stderr


def test_supervisord_keys_get_pysupers_equivalent(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "true"\nautorestart = true\nnumprocs = 2\n')
    result = run_cli(["check", str(path)])
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pysuper: error: %s: unknown key 'autorestart' in [programs.web]: `autorestart` is supervisord's; "
        "pysuper's is restart = \"always\" | \"on-failure\" | \"never\"" % path,
        "pysuper: error: %s: unknown key 'numprocs' in [programs.web]: `numprocs` is supervisord's; "
        "pysuper's is replicas = N (instances NAME-0 .. NAME-(N-1))" % path]


def test_env_file_reaches_the_program_with_environment_winning(run_config, tmp_path):
    (tmp_path / ".env").write_text("# shared\nexport FROM_FILE=file\nBOTH=file\nOWN=file\n")
    show = "import os; print(os.environ['FROM_FILE'], os.environ['BOTH'], os.environ['OWN'], " \
           "os.environ['PYSUPER_REPLICA'])"
    ps = run_config('''
[pysuper]
env_file = ".env"
[programs.a]
command = %s
environment = { BOTH = "table" }
restart = "never"
''' % toml_list(py(show)), env={"OWN": "own", "BOTH": "own", "FROM_FILE": "own"})
    assert ps.wait() == 0
    assert "a       | file table file 0" in ps.out.lines


def test_replicas_get_their_index(run_config):
    ps = run_config('''
[programs.w]
command = %s
replicas = 3
restart = "never"
''' % toml_list([sys.executable, "-c", "import os, sys; print('replica', os.environ['PYSUPER_REPLICA'], sys.argv[1])",
                 "arg${PYSUPER_REPLICA}"]))
    assert ps.wait() == 0
    assert sorted(line.split("|", 1)[1].strip() for line in ps.out.lines if "replica" in line) == [
        "replica 0 arg0", "replica 1 arg1", "replica 2 arg2"]


def test_config_that_needs_watchfiles_names_the_package(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[programs.web]\ncommand = "true"\nwatch = ["src"]\n')
    hide = tmp_path / "hide"
    hide.mkdir()
    # sys.modules[name] = None makes importlib.util.find_spec(name) answer "not installed"
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['watchfiles'] = None\n")
    result = run_cli(["check", str(path)], env={"PYTHONPATH": os.pathsep.join([str(hide), ROOT])})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "pysuper: error: %s: [programs.web] watch: needs the watchfiles package, which is not installed: "
        "pip install 'pysuper[watch]'" % path]
    assert run_cli(["check", str(path)]).returncode == 0
