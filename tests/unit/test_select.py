"""graph.select: what `pysuper run NAME...` starts (the named programs and what they depend on)."""

import pytest

from pysuper import graph
from pysuper.config import parse

APP = '''
[programs.worker]
command = "w"
depends_on = { web = "ready" }
[programs.web]
command = "x"
replicas = 3
depends_on = ["db"]
[programs.db]
command = "x"
depends_on = { migrate = "completed" }
[programs.migrate]
command = "x"
type = "oneshot"
[programs.side]
command = "x"
[programs.check]
command = "x"
autostart = false
depends_on = ["tool"]
[programs.tool]
command = "x"
autostart = false
'''


@pytest.fixture
def cfg():
    return parse(APP, "app.toml", {})


@pytest.mark.parametrize("names,started", [
    (["side"], ["side"]),
    (["db"], ["migrate", "db"]),
    (["web"], ["migrate", "db", "web-0", "web-1", "web-2"]),        # a declared name: every replica
    (["web-1"], ["migrate", "db", "web-1"]),                        # one replica
    (["worker"], ["migrate", "db", "web-0", "web-1", "web-2", "worker"]),  # transitively
    (["side", "db"], ["migrate", "db", "side"]),                    # start order, not argv order
    (["db", "migrate", "db"], ["migrate", "db"]),                   # each once
    (["web-2", "web"], ["migrate", "db", "web-0", "web-1", "web-2"]),
    (["check"], ["tool", "check"]),                                 # autostart = false: named, or needed
])
def test_select_names_and_their_dependencies(cfg, names, started):
    assert graph.select(cfg, names) == started


def test_select_starts_nothing_that_depends_on_the_named(cfg):
    assert "worker" not in graph.select(cfg, ["web"])


@pytest.mark.parametrize("name,message", [
    ("wrker", "no program named 'wrker' in app.toml; did you mean 'worker'?"),
    ("web-3", "no program named 'web-3' in app.toml; web has 3 replicas: web-0 to web-2"),
    ("wbe-1", "no program named 'wbe-1' in app.toml; did you mean 'web-1'?"),
    ("zzz", "no program named 'zzz' in app.toml"),
])
def test_select_unknown_name_names_the_nearest(cfg, name, message):
    with pytest.raises(LookupError) as info:
        graph.select(cfg, ["side", name])
    assert str(info.value) == message


def test_select_a_plain_program_keeps_its_name():
    cfg = parse('[programs.web]\ncommand = "x"\nreplicas = 1\n', "app.toml", {})
    assert graph.select(cfg, ["web"]) == ["web"]
    with pytest.raises(LookupError):
        graph.select(cfg, ["web-0"])


def _supervise(text, only):
    from fakes import FakeLoop, FakeOS, FakeOutput

    from pysuper.supervisor import Supervisor
    loop = FakeLoop()
    supervisor = Supervisor(parse(text, "app.toml"), loop, output=FakeOutput(), osproc=FakeOS(loop))
    supervisor.only = frozenset(graph.select(supervisor.config, only))
    supervisor.start()
    loop.settle()
    return supervisor, loop


PAIR = '''
[programs.web]
command = ["web"]
start_seconds = 0
[programs.worker]
command = ["worker"]
start_seconds = 0
[programs.tool]
command = ["tool"]
start_seconds = 0
autostart = false
'''


def test_regression_health_under_run_names_ignores_the_programs_not_chosen():
    supervisor, _ = _supervise(PAIR, ["web"])
    states = {name: program.state for name, program in supervisor.programs.items()}
    assert states == {"web": "RUNNING", "worker": "STOPPED", "tool": "STOPPED"}
    assert supervisor.health() == (True, [])


def test_regression_reload_under_run_names_starts_only_the_programs_chosen():
    supervisor, loop = _supervise(PAIR, ["web", "tool"])
    assert supervisor.programs["tool"].state == "RUNNING"
    changed = PAIR.replace('["worker"]', '["worker", "-v"]').replace('["tool"]', '["tool", "-v"]') \
        + '[programs.extra]\ncommand = ["extra"]\nstart_seconds = 0\n'
    supervisor.apply_config(parse(changed, "app.toml"))
    loop.settle()
    states = {name: program.state for name, program in supervisor.programs.items()}
    assert states == {"web": "RUNNING", "worker": "STOPPED", "tool": "RUNNING", "extra": "STOPPED"}
    assert supervisor.programs["tool"].config.command == ("tool", "-v")
