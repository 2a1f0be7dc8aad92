"""The supervisor's read-only view and its reloads, driven with the fake OS and clock (no processes)."""

import signal

from fakes import FakeLoop, FakeOS, FakeOutput

from pysuper.config import load
from pysuper.program import EXITED, RUNNING, STOPPED, STOPPING
from pysuper.reload import Reloader
from pysuper.supervisor import Supervisor

# Real binaries, so that the config passes the host checks a reload makes; the fake OS runs nothing.
CONFIG = '''
[programs.once]
command = ["true"]
restart = "never"
start_seconds = 0
[programs.slow]
command = ["cat"]
start_seconds = 0
stop_timeout = 3
%s
'''


def _start(tmp_path, extra=""):
    path = tmp_path / "pysuper.toml"
    path.write_text(CONFIG % extra)
    loop = FakeLoop()
    fake_os = FakeOS(loop)
    fake_os.stubborn.add("cat")  # only SIGKILL ends it
    output = FakeOutput()
    supervisor = Supervisor(load(str(path)), loop, output=output, pid1=False, osproc=fake_os)
    supervisor.reloader = Reloader(supervisor)
    supervisor.start()
    loop.settle()
    return path, loop, fake_os, output, supervisor


def _views(supervisor):
    return {view.name: view for view in supervisor.view()}


def test_the_view_says_what_ctl_shows(tmp_path):
    _, loop, fake_os, _, supervisor = _start(tmp_path)
    once = _views(supervisor)["once"]
    assert (once.state, once.pid, once.pgid, once.uptime, once.restarts) == (RUNNING, once.pid, once.pid, 0.0, 0)
    assert once.pid is not None and not once.expected_exit and once.autostart and not once.removed
    loop.advance(5)
    assert _views(supervisor)["once"].uptime == 5.0

    fake_os.exit("true", 0)
    loop.settle()
    once = _views(supervisor)["once"]
    assert (once.state, once.pid, once.uptime, once.last_exit) == (EXITED, None, None, 0)
    assert once.expected_exit and once.last_exit_text == "exited with code 0"

    stopped = []
    supervisor.stop_program("slow", stopped.append)
    loop.advance(3)  # stop_timeout: SIGKILL
    slow = _views(supervisor)["slow"]
    assert stopped == [STOPPED]
    assert (slow.state, slow.held, slow.killed, slow.last_exit_text) == \
        (STOPPED, True, True, "killed by SIGKILL (exit 137)")
    assert set(slow.as_dict()) == {name for name, _ in type(slow).FIELDS}


def test_a_program_removed_by_a_reload_shows_as_removed_until_it_is_gone(tmp_path):
    path, loop, _, output, supervisor = _start(tmp_path)
    path.write_text(CONFIG[:CONFIG.index("[programs.slow]")])
    outcomes = []
    supervisor.reload(outcomes.append, "test")
    loop.settle()
    assert _views(supervisor)["slow"].removed and _views(supervisor)["slow"].state == STOPPING
    assert outcomes == []  # a reload answers once it has settled
    loop.advance(3)
    assert list(_views(supervisor)) == ["once"]
    assert [(o.ok, o.removed) for o in outcomes] == [(True, ("slow",))]
    assert "reloaded (test): removed slow" in output.lines


def test_regression_reload_cut_short_by_a_shutdown_reports_what_it_did_not_start(tmp_path):
    path, loop, fake_os, output, supervisor = _start(tmp_path)
    path.write_text(CONFIG % 'environment = { NEW = "1" }')
    outcomes = []
    supervisor.reload(outcomes.append, "test")
    loop.settle()
    assert _views(supervisor)["slow"].state == STOPPING  # being replaced
    loop.deliver(signal.SIGTERM)
    loop.settle()
    loop.advance(3)
    assert len(outcomes) == 1
    outcome = outcomes[0]
    assert not outcome.ok and outcome.kind == "shutting_down" and outcome.changed == ("slow",)
    assert "not started: slow" in outcome.errors[0]
    assert fake_os.spawned.count("cat") == 1  # never started again
    assert any(line.startswith("reload (test) failed: pysuper began shutting down") for line in output.lines)


def test_reload_errors_and_settings_that_need_a_restart(tmp_path):
    path, loop, _, output, supervisor = _start(tmp_path)
    path.write_text("[pysuper]\nlog_format = \"json\"\nshutdown_timeout = 3\n" + CONFIG % "")
    outcomes = []
    supervisor.reload(outcomes.append, "test")
    loop.settle()
    assert outcomes[0].ok and outcomes[0].not_applied == ("log_format",)
    assert supervisor.settings.shutdown_timeout == 3
    path.write_text("[programs.once\n")
    supervisor.reload(outcomes.append, "SIGHUP")
    loop.settle()
    assert outcomes[1].kind == "invalid_config" and outcomes[1].errors
    assert "reload (SIGHUP): the config has errors; still running the previous one:" in output.lines
