"""The dependency graph of a config: which instances a declared name means, what a program waits
for, who depends on it, the start order, what `pysuper run NAME...` starts, and cycle finding (used
by the config loader).

Edges come from `depends_on` ({declared name: condition}); a declared name means every replica of it.
Pure functions over `Config` records: no state, no processes.
"""

from typing import Dict, List, Optional, Tuple


def instances_of(config, base: str) -> List[str]:
    """The instance names of a declared program (["web-0", "web-1"], or ["web"]), in config order."""
    return [name for name, program in config.programs.items() if program.base == base]


def dependencies(config, name: str) -> List[Tuple[str, str]]:
    """[(instance, condition), ...] that instance `name` waits for."""
    found = []
    for base, condition in config.programs[name].depends_on.items():
        found.extend((instance, condition) for instance in instances_of(config, base))
    return found


def dependents(config, name: str, transitive: bool = False) -> List[str]:
    """The instances that depend on instance `name` (directly, or also through others), config order."""
    base = config.programs[name].base
    direct = [other for other, program in config.programs.items() if base in program.depends_on]
    if not transitive:
        return direct
    seen = set(direct)
    queue = list(direct)
    while queue:
        for other in dependents(config, queue.pop(0)):
            if other not in seen:
                seen.add(other)
                queue.append(other)
    return [other for other in config.programs if other in seen]


def closure(config, names) -> List[str]:
    """The instances in names and everything they depend on, transitively, in start order."""
    wanted = set()
    queue = list(names)
    while queue:
        name = queue.pop()
        if name in wanted:
            continue
        wanted.add(name)
        queue.extend(instance for instance, _ in dependencies(config, name))
    return [name for name in start_order(config) if name in wanted]


def select(config, names) -> List[str]:
    """What `pysuper run NAME...` starts: the named instances (a declared name means all its
    replicas; `autostart` does not matter) and everything they depend on, in start order.
    LookupError for the first unknown name, with the nearest known one."""
    named: List[str] = []
    for name in names:
        instances = [name] if name in config.programs else instances_of(config, name)
        if not instances:
            raise LookupError("no program named %r in %s%s" % (name, config.path, _nearest(config, name)))
        named.extend(instances)
    return closure(config, named)


def _nearest(config, name: str) -> str:
    base, _, index = name.rpartition("-")
    replicas = instances_of(config, base) if index.isdigit() else []
    if len(replicas) > 1:
        return "; %s has %d replicas: %s to %s" % (base, len(replicas), replicas[0], replicas[-1])
    from pysuper.names import did_you_mean
    known = list(config.declared) + [other for other in config.programs if other not in config.declared]
    return did_you_mean(name, known, "'")


def start_order(config) -> List[str]:
    """Every instance, dependencies first; otherwise in config order. ValueError on a cycle."""
    by_base: Dict[str, List[str]] = {}
    for name, program in config.programs.items():
        by_base.setdefault(program.base, []).append(name)
    waiting = {}    # instance -> how many instances it still waits for
    unblocks: Dict[str, List[str]] = {}
    for name, program in config.programs.items():
        needed = [instance for base in program.depends_on for instance in by_base.get(base, ())]
        waiting[name] = len(needed)
        for instance in needed:
            unblocks.setdefault(instance, []).append(name)
    position = {name: i for i, name in enumerate(config.programs)}
    import heapq
    ready = [(position[name], name) for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: List[str] = []
    while ready:
        _, name = heapq.heappop(ready)
        order.append(name)
        for other in unblocks.get(name, ()):
            waiting[other] -= 1
            if waiting[other] == 0:
                heapq.heappush(ready, (position[other], other))
    if len(order) != len(position):
        edges = {base: list(program.depends_on) for base, program in config.declared.items()}
        cycle = find_cycle(edges) or [name for name in config.programs if name not in order]
        raise ValueError("a dependency cycle: %s" % " -> ".join(cycle))
    return order


def find_cycle(edges: Dict[str, List[str]]) -> Optional[List[str]]:
    """The first cycle found in {node: [nodes it depends on]} as [a, b, a], or None."""
    state: Dict[str, int] = {}  # 1 on the current path, 2 done
    for start in edges:
        if state.get(start):
            continue
        path = [start]
        state[start] = 1
        stack = [iter(edges.get(start, ()))]
        while stack:
            node = next(stack[-1], None)
            if node is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            if state.get(node) == 1:
                return path[path.index(node):] + [node]
            if not state.get(node):
                state[node] = 1
                path.append(node)
                stack.append(iter(edges.get(node, ())))
    return None
