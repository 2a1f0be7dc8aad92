"""`pysuper [-c FILE] [run] NAME...` with a real pysuper: only the named programs (a declared name
means every replica) and what they depend on start; the rest stays STOPPED. Waits are pysuper's own
log lines and its control socket, under deadlines."""

import json
import signal

from conftest import run_cli

APP = """
[programs.db]
command = "sleep 600"
start_seconds = 0

[programs.web]
command = "sleep 600"
replicas = 3
depends_on = { db = "ready" }
start_seconds = 0

[programs.worker]
command = "sleep 600"
depends_on = ["web"]
start_seconds = 0

[programs.tool]
command = "sleep 600"
autostart = false
start_seconds = 0
"""


def states(ps):
    done = ps.ctl("status", "--json")
    assert done.stdout, done.stderr
    return {row["name"]: row["state"] for row in json.loads(done.stdout)}


def test_run_one_replica_and_a_program_that_does_not_autostart(run_config):
    ps = run_config(APP, "run", "web-1", "tool")
    ps.err.wait_for(r"\| starting db, web-1, tool$")
    for name in ("db", "web-1", "tool"):
        ps.wait_started(name)
    ps.err.wait_for(r"control socket: ")
    assert states(ps) == {"db": "RUNNING", "web-0": "STOPPED", "web-1": "RUNNING", "web-2": "STOPPED",
                          "worker": "STOPPED", "tool": "RUNNING"}
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_a_declared_name_selects_every_replica_and_what_they_need_not_what_needs_them(run_config):
    """The programs not chosen stay out of `ctl health`, and `ctl start` still starts them."""
    ps = run_config(APP, "web")
    ps.err.wait_for(r"\| starting db, web-0, web-1, web-2$")
    for name in ("web-0", "web-1", "web-2"):
        ps.wait_started(name)
    ps.err.wait_for(r"control socket: ")
    assert states(ps)["worker"] == "STOPPED"
    assert ps.ctl("health").stdout == "healthy\n"  # what was not chosen does not count
    ps.ctl("start", "worker", check=0)
    assert states(ps)["worker"] == "RUNNING"
    ps.signal(signal.SIGTERM)
    assert ps.wait() == 0


def test_running_only_a_oneshot_ends_when_it_is_done(run_config):
    ps = run_config("""
[programs.migrate]
type = "oneshot"
command = "echo migrated"

[programs.web]
command = "sleep 600"
depends_on = { migrate = "completed" }
""", "migrate")
    assert ps.wait() == 0
    assert ps.out.matching(r"^migrate +\| migrated$")
    assert not ps.err.matching(r"web: ")
    assert ps.last_line().endswith("exiting with code 0")


def test_a_program_named_like_a_ctl_command_runs_and_otherwise_ctl_is_suggested(tmp_path):
    named = tmp_path / "named.toml"
    named.write_text('[programs.status]\ncommand = "echo I am a program"\nrestart = "never"\n')
    done = run_cli(["-c", str(named), "status"], cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "I am a program" in done.stdout

    other = tmp_path / "other.toml"
    other.write_text('[programs.web]\ncommand = "echo web"\nrestart = "never"\n')
    done = run_cli(["-c", str(other), "status"], cwd=str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.endswith("did you mean: pysuper ctl -c %s status\n" % other)
    done = run_cli(["-c", str(other), "run", "status"], cwd=str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "pysuper: no program named 'status' in %s\n" % other


def test_an_unknown_replica_says_which_replicas_there_are(run_config):
    ps = run_config(APP, "web-3")
    assert ps.wait() == 2
    assert ps.last_line() == "pysuper: no program named 'web-3' in %s; web has 3 replicas: web-0 to web-2" \
        % ps.proc.args[-2]
    assert len(ps.err.lines) == 1


def test_an_option_after_the_names_is_a_usage_error(tmp_path):
    config = tmp_path / "app.toml"
    config.write_text('[programs.web]\ncommand = "echo web"\n')
    done = run_cli(["-c", str(config), "run", "web", "--verbose"], cwd=str(tmp_path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "pysuper: unexpected argument '--verbose' (see pysuper --help)\n"
