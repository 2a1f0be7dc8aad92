"""CPU % and resident memory of each program's whole process tree, for `pysuper ctl status`.

The tree of a program is its process and every descendant, as osproc walks it from one scan of
/proc. Two samples are taken INTERVAL seconds apart on the loop's timers; requests that arrive
meanwhile share them. psutil reads each process's CPU times and RSS; it is imported only here, the
first time a status with figures is asked for.
"""

from pysuper import osproc

INTERVAL = 0.25  # seconds between the two CPU samples


def sample(roots):
    """{name: {(pid, start time): (cpu seconds, rss bytes)}} for roots {name: pid}."""
    import psutil
    table = osproc.process_table()
    result = {}
    for name, root in roots.items():
        tree = {}
        start = table.get(root)
        members = ([(root, start[1])] if start is not None else []) + osproc.descendants(root, table)
        for pid, started in members:
            try:
                process = psutil.Process(pid)
                with process.oneshot():
                    times = process.cpu_times()
                    tree[(pid, started)] = (times.user + times.system, process.memory_info().rss)
            except (psutil.Error, OSError):
                continue
        result[name] = tree
    return result


def figures(first, second, elapsed: float):
    """{name: {"cpu_percent", "memory_bytes", "processes"}} from two samples elapsed seconds apart.

    CPU counts only processes present in both samples (the same pid and start time).
    """
    elapsed = max(1e-6, elapsed)
    result = {}
    for name, tree in second.items():
        before = first.get(name, {})
        cpu = sum(max(0.0, used - before[key][0]) for key, (used, _) in tree.items() if key in before)
        result[name] = {"cpu_percent": round(cpu / elapsed * 100.0, 1),
                        "memory_bytes": sum(rss for _, rss in tree.values()),
                        "processes": len(tree)}
    return result


class Metrics:
    """Measures for the loop: two samples INTERVAL apart; concurrent requests share them."""

    def __init__(self, loop):
        self.loop = loop
        self.waiting = []
        self.roots = {}
        self.first = None
        self.started = 0.0

    def measure(self, roots, callback):
        """callback({name: figures}) one INTERVAL later, for roots {name: pid}; ({} without psutil)."""
        try:
            import psutil  # noqa: F401
        except ImportError:
            callback({})
            return
        self.waiting.append(callback)
        self.roots.update(roots)
        if len(self.waiting) == 1:
            self.started = self.loop.time()
            try:
                self.first = sample(self.roots)
            except Exception:
                self.first = {}
            self.loop.call_later(INTERVAL, self._finish)

    def _finish(self):
        waiting, self.waiting = self.waiting, []
        roots, self.roots = self.roots, {}
        first, self.first = self.first or {}, None
        result = {}
        try:
            result = figures(first, sample(roots), self.loop.time() - self.started)
        except Exception:
            result = {}
        finally:
            for callback in waiting:
                callback(result)  # each is guarded by its request
