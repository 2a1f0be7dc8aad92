"""`watch` with a real pysuper: a burst of 50 writes restarts the program once, ignored paths never.

Handshakes instead of sleeps: the watcher thread is up once a probe write has caused a restart; a
`sentinel` program with a longer debounce than `web` shows that every change written before its own
has been handled (one watcher thread, in order, and web's shorter debounce has ended)."""

import os

import pytest

from test_ctl_support import Pysuper
from test_orchestration import app

RESTART = r"web: (.*) changed; restarting$"


@pytest.fixture
def ps(tmp_path):
    config = """
    [programs.web]
    command = %s
    directory = "%s"
    watch = ["src"]
    watch_ignore = ["*.log", "tmp"]
    watch_debounce = 0.3
    start_seconds = 0.1

    [programs.sentinel]
    command = %s
    directory = "%s"
    watch = ["sentinel"]
    watch_debounce = 0.8
    start_seconds = 0.1
    """ % (app("sleep"), tmp_path, app("sleep"), tmp_path)
    for name in ("src", "src/tmp", "sentinel"):
        os.makedirs(str(tmp_path / name))
    process = Pysuper(config)
    yield process.start()
    process.cleanup()


def write(path):
    with open(str(path), "w") as handle:
        handle.write("x")


def settle(ps, tmp_path, number):
    write(tmp_path / "sentinel" / ("s%d" % number))
    ps.stderr.wait_for(r"sentinel: sentinel/s%d changed; restarting" % number)


def test_a_burst_restarts_once_and_ignored_paths_not_at_all(ps, tmp_path):
    for attempt in range(10):  # until the watcher thread is up
        write(tmp_path / "src" / ("probe%d" % attempt))
        try:
            ps.stderr.wait_for(RESTART, timeout=2)
            break
        except AssertionError:
            continue
    settle(ps, tmp_path, 1)
    baseline = ps.stderr.count(RESTART)

    for index in range(50):
        write(tmp_path / "src" / ("f%02d.js" % index))
    ps.stderr.wait_for(r"web: src/f00\.js, src/f01\.js, src/f02\.js and 47 more files changed; restarting$")
    settle(ps, tmp_path, 2)
    assert ps.stderr.count(RESTART) == baseline + 1
    index, pid = ps.wait_started("web", start=ps.stderr.search(r"web: src/f00")[0])
    assert ps.wait_state("web", "RUNNING")["pid"] == pid

    for index in range(20):
        write(tmp_path / "src" / ("debug%d.log" % index))
        write(tmp_path / "src" / "tmp" / ("cache%d" % index))
    settle(ps, tmp_path, 3)
    assert ps.stderr.count(RESTART) == baseline + 1
    assert ps.status()["web"]["pid"] == pid
