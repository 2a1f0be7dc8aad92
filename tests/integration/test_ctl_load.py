"""Many clients at once: 50 concurrent connections during a restart storm, against a real pysuper."""

import os
import threading
import time

import pytest

from test_ctl_support import Client, Pysuper, no_zombies_of

CLIENTS = 50
ROUNDS = 4

CONFIG = """
[programs.alpha]
command = "sleep 1001"
start_seconds = 0.05

[programs.beta]
command = "sleep 1002"
start_seconds = 0.05

[programs.gamma]
command = ["sh", "-c", "trap 'echo bye; exit 0' TERM; echo hello; while :; do sleep 1; done"]
start_seconds = 0.05
"""

NAMES = ("alpha", "beta", "gamma")


def _fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@pytest.fixture
def ps():
    instance = Pysuper(CONFIG)
    instance.start()
    for name in NAMES:
        instance.wait_started(name)
        instance.wait_state(name, "RUNNING")
    yield instance
    instance.cleanup()


def _storm(ps, index, barrier, failures):
    """One client: a few rounds of restart / status / health / logs on one connection."""
    try:
        with Client(ps.socket, timeout=45) as client:
            barrier.wait(30)
            for round_ in range(ROUNDS):
                target = NAMES[(index + round_) % len(NAMES)]
                names = ["all"] if index % 10 == 0 and round_ == 0 else [target]
                answer = client.request("restart", {"names": names}, id=round_)
                if not answer.get("ok") or answer.get("id") != round_:
                    failures.append((index, "restart", answer))
                    continue
                for result in answer["data"]["results"]:
                    if not result["ok"] or result["state"] != "RUNNING":
                        failures.append((index, "restart result", result))
                for command, args in (("status", None), ("health", None),
                                      ("logs", {"name": "gamma", "lines": 5})):
                    answer = client.request(command, args)
                    if not answer.get("ok"):
                        failures.append((index, command, answer))
    except Exception as exc:  # collected and reported by the test
        failures.append((index, "exception", repr(exc)))


def test_fifty_clients_during_a_restart_storm(ps):
    pid = ps.proc.pid
    baseline = _fd_count(pid)
    before = ps.status()
    barrier = threading.Barrier(CLIENTS)
    failures = []
    threads = [threading.Thread(target=_storm, args=(ps, index, barrier, failures), daemon=True)
               for index in range(CLIENTS)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(50)
    assert not any(thread.is_alive() for thread in threads), "some clients got no answer"
    assert failures == [], failures[:5]
    elapsed = time.monotonic() - began

    after = {name: ps.wait_state(name, "RUNNING") for name in NAMES}
    for name in NAMES:
        assert after[name]["pid"] != before[name]["pid"]
    assert ps.proc.poll() is None
    assert "internal error" not in ps.stderr.text()
    assert ps.stderr.count(r"gamma: stopped \(exited with code 0\)") >= 1  # stopped with its own trap
    assert no_zombies_of(pid) == []

    # Every connection is closed again: pysuper's descriptors return to what they were.
    deadline = time.monotonic() + 10
    while _fd_count(pid) > baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _fd_count(pid) <= baseline
    assert ps.ctl("health", check=0).stdout == "healthy\n"
    print("%d clients x %d rounds in %.2f s" % (CLIENTS, ROUNDS, elapsed))


def test_many_idle_connections_do_not_block_others(ps):
    idle = [Client(ps.socket) for _ in range(100)]
    try:
        began = time.monotonic()
        assert ps.ctl("health", check=0).stdout == "healthy\n"
        assert time.monotonic() - began < 5
        assert ps.request("status")["ok"]
    finally:
        for client in idle:
            client.close()
