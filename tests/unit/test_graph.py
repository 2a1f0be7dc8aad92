"""The dependency graph: instances of a declared name, start order, dependents, closure, cycles."""

import pytest

from pysuper import graph
from pysuper.config import parse

CHAIN = '''
[programs.worker]
command = "w"
depends_on = { web = "ready" }
[programs.web]
command = "x"
replicas = 2
depends_on = ["db"]
[programs.db]
command = "x"
depends_on = { migrate = "completed" }
[programs.migrate]
command = "x"
type = "oneshot"
[programs.side]
command = "x"
'''


@pytest.fixture
def cfg():
    return parse(CHAIN, "app.toml", {})


def test_instances_of(cfg):
    assert graph.instances_of(cfg, "web") == ["web-0", "web-1"]
    assert graph.instances_of(cfg, "db") == ["db"]
    assert graph.instances_of(cfg, "nope") == []


def test_start_order_puts_dependencies_first_and_keeps_config_order(cfg):
    assert graph.start_order(cfg) == ["migrate", "db", "web-0", "web-1", "worker", "side"]


def test_dependencies_and_dependents(cfg):
    assert graph.dependencies(cfg, "worker") == [("web-0", "ready"), ("web-1", "ready")]
    assert graph.dependents(cfg, "db") == ["web-0", "web-1"]
    assert graph.dependents(cfg, "web-1") == ["worker"]
    assert graph.dependents(cfg, "migrate", transitive=True) == ["worker", "web-0", "web-1", "db"]
    assert graph.dependents(cfg, "side", transitive=True) == []


def test_closure(cfg):
    assert graph.closure(cfg, ["web-1"]) == ["migrate", "db", "web-1"]
    assert graph.closure(cfg, ["side"]) == ["side"]


@pytest.mark.parametrize("edges,cycle", [
    ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
    ({"a": ["a"]}, ["a", "a"]),
    ({"x": ["a"], "a": ["b"], "b": ["c"], "c": ["a"]}, ["a", "b", "c", "a"]),
    ({"a": ["b", "c"], "b": ["c"], "c": []}, None),
    ({}, None),
])
def test_find_cycle(edges, cycle):
    assert graph.find_cycle(edges) == cycle


def test_find_cycle_on_a_long_chain_does_not_recurse():
    edges = {str(i): [str(i + 1)] for i in range(20000)}
    assert graph.find_cycle(edges) is None
    edges["19999"] = ["0"]
    assert len(graph.find_cycle(edges)) == 20001


def test_long_chain_start_order():
    text = "".join('[programs.p%d]\ncommand = "x"\n%s' % (i, 'depends_on = ["p%d"]\n' % (i + 1) if i < 99 else "")
                   for i in range(100))
    cfg = parse(text, "app.toml", {})
    assert graph.start_order(cfg) == ["p%d" % i for i in reversed(range(100))]
