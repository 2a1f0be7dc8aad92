"""Restart on change: the bridge between the watchfiles library and the event loop.

Imported only when a config uses `watch`. One thread runs `watchfiles.watch` over the watched
directories of every program (and one more over the directories of watched files); it drops changes
that a program's `watch_ignore` covers and hands the rest to the loop through a pipe the loop reads.
On the loop, each program has its own trailing debounce: a restart is asked for once no change has
come for `watch_debounce` seconds, so a burst of writes (a `git checkout`, an editor's save) gives
one restart.

The idle cost: watchfiles' Rust side sleeps in steps of STEP_MS and takes the GIL after each step to
see whether it should stop, so while anything is watched pysuper's watcher thread wakes about
1000 / STEP_MS times a second. That is the development-only exception to "no wakeups while idle";
a config without `watch` never imports this module and never starts the thread.

A glob of `watch_ignore` ignores a file when it matches the file's name, the name of any directory
above it, or its path relative to the program's directory (fnmatch rules: `*` also matches `/`).
"""

import os
import threading
from collections import deque
from fnmatch import fnmatchcase
from typing import Callable, Dict, List, Optional

STEP_MS = 100  # watchfiles' quiet time before it hands over a group of changes (see the docstring)
GROUP_MS = 1000  # and the longest it groups changes for
SHOWN = 3  # changed paths named in the restart message


def missing_library() -> Optional[str]:
    """None when watchfiles can be imported, else what to tell the user."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        return 'the "watchfiles" package is not installed (pip install watchfiles, or pysuper[watch])'
    return None


class Spec:
    """What one program watches: absolute roots, and ignore globs relative to its directory."""

    def __init__(self, name: str, directory: str, paths, ignore, debounce: float):
        self.name = name
        self.directory = os.path.abspath(directory)
        self.roots = tuple(os.path.normpath(os.path.join(self.directory, path)) for path in paths)
        self.ignore = tuple(ignore)
        self.debounce = debounce

    @classmethod
    def of(cls, program) -> "Spec":
        return cls(program.name, program.directory or os.getcwd(), program.watch, program.watch_ignore,
                   program.watch_debounce)

    def __eq__(self, other):
        return isinstance(other, Spec) and (self.name, self.directory, self.roots, self.ignore, self.debounce) \
            == (other.name, other.directory, other.roots, other.ignore, other.debounce)

    __hash__ = None

    def covers(self, path: str) -> bool:
        """Is this changed path under a watched root and not ignored?"""
        if not any(path == root or path.startswith(root.rstrip("/") + "/") for root in self.roots):
            return False
        relative = os.path.relpath(path, self.directory)
        parts = relative.split("/")
        for glob in self.ignore:
            if fnmatchcase(relative, glob) or any(fnmatchcase(part, glob) for part in parts):
                return False
        return True


def _existing(path: str, stop: str) -> Optional[str]:
    """path, or its nearest existing ancestor that is not above `stop`; None if there is none."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path or not (parent + "/").startswith(stop.rstrip("/") + "/"):
            return None
        path = parent
    return path


class Watcher:
    """Watches the paths of some programs; on_change(name, [changed paths]) after each debounced burst."""

    def __init__(self, loop, on_change: Callable[[str, List[str]], None], log: Callable[[str], None]):
        self.loop = loop
        self.on_change = on_change
        self.log = log
        self.specs: Dict[str, Spec] = {}
        self._inbox = deque()  # filled by the thread, emptied by the loop
        self._r, self._w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._stop = None  # the threading.Event of the running watcher threads
        self._timers = {}
        self._changed: Dict[str, List[str]] = {}
        loop.add_reader(self._r, self._receive)

    def update(self, specs: List[Spec]):
        """Watch exactly these programs from now on (restarting the thread if anything changed)."""
        new = {spec.name: spec for spec in specs}
        if new == self.specs:
            return
        for name in list(self._timers):
            if name not in new:
                self._timers.pop(name).cancel()
                self._changed.pop(name, None)
        self.specs = new
        self._stop_thread()
        trees, folders = [], []  # watched recursively / only their own entries
        for spec in new.values():
            for root in spec.roots:
                found = _existing(root, spec.directory)
                if found is None:
                    self.log("%s: watch: %s does not exist (nor does its directory); not watched"
                             % (spec.name, root))
                elif os.path.isdir(found) and found == root:
                    trees.append(found)
                else:
                    # A file is watched through its directory: an editor's save replaces the file,
                    # and a watch on the old file would end there. A missing path is watched through
                    # its nearest existing directory, so that its creation is seen.
                    folders.append(found if os.path.isdir(found) else os.path.dirname(found))
        if trees or folders:
            self._stop = threading.Event()
            for roots, recursive in ((trees, True), (folders, False)):
                if roots:
                    # The thread writes to its own copy of the pipe's write end and closes it when it
                    # ends, so close() never leaves it writing to a reused descriptor.
                    args = (sorted(set(roots)), recursive, list(new.values()), self._stop, os.dup(self._w))
                    threading.Thread(target=self._run, args=args, name="pysuper-watch", daemon=True).start()

    def _run(self, roots, recursive, specs, stop, wakeup):
        """A watcher thread: only watchfiles, the ignore globs and the inbox; no program state."""
        try:
            import watchfiles
            for changes in watchfiles.watch(*roots, watch_filter=None, debounce=GROUP_MS, step=STEP_MS,
                                            stop_event=stop, rust_timeout=0, raise_interrupt=False,
                                            recursive=recursive):
                hits = {}
                for _, path in changes:
                    for spec in specs:
                        if spec.covers(path):
                            hits.setdefault(spec.name, []).append(path)
                if hits and not stop.is_set():
                    self._post(wakeup, (stop, hits))
        except Exception as exc:  # the thread must end quietly; the loop logs what happened
            if not stop.is_set():
                self._post(wakeup, (stop, "watching stopped: %s" % (exc,)))
        finally:
            os.close(wakeup)

    def _post(self, wakeup, item):
        self._inbox.append(item)
        try:
            os.write(wakeup, b"x")
        except OSError:
            pass  # the pipe is full: the loop has a wakeup pending anyway, or closed: shutting down

    def _receive(self):
        try:
            while os.read(self._r, 4096):
                pass
        except OSError:
            pass
        while self._inbox:
            stop, item = self._inbox.popleft()
            if stop is not self._stop:
                continue  # from a thread that update() has replaced
            if isinstance(item, str):
                self.log("watch: %s" % item)
                continue
            for name, paths in item.items():
                spec = self.specs.get(name)
                if spec is None:
                    continue
                self._changed.setdefault(name, []).extend(paths)
                if name in self._timers:
                    self._timers[name].cancel()
                self._timers[name] = self.loop.call_later(spec.debounce, self._quiet, name)

    def _quiet(self, name: str):
        self._timers.pop(name, None)
        paths = self._changed.pop(name, [])
        spec = self.specs.get(name)
        if spec is None or not paths:
            return
        unique = sorted(set(os.path.relpath(path, spec.directory) for path in paths))
        self.on_change(name, unique)

    def _stop_thread(self):
        if self._stop is not None:
            self._stop.set()  # the threads see it within STEP_MS and end; nobody waits for them
        self._stop = None

    def close(self):
        self._stop_thread()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self.loop.remove_reader(self._r)
        os.close(self._r)
        os.close(self._w)


def describe(paths: List[str]) -> str:
    """"src/a.js" / "src/a.js, b.js and 3 more files" for the restart message."""
    shown = ", ".join(paths[:SHOWN])
    more = len(paths) - SHOWN
    return shown if more <= 0 else "%s and %d more file%s" % (shown, more, "" if more == 1 else "s")
