"""Reloading the config file pysuper was started with: on SIGHUP and on `pysuper ctl reload`.

The supervisor owns one Reloader. Reloads run one at a time: the next waits until the previous one
has settled (removed programs gone, changed ones replaced). A config with errors, or one that names
a user, directory or binary this machine lacks, is not used; the outcome of every reload, good or
bad and whoever asked for it, is written to pysuper's own output.
"""

import os

from pysuper import config as configmod
from pysuper.config import Record, settings_needing_restart


class Outcome(Record):
    """What a reload did. `kind` is None when it was applied, else why not:
    "invalid_config" (errors: the config's errors), "shutting_down" (pysuper began to shut down
    before the reload finished: added or changed programs were not started), or "internal"."""
    FIELDS = (("added", ()), ("changed", ()), ("removed", ()), ("not_applied", ()), ("errors", ()),
              ("kind", None))
    __slots__ = tuple(name for name, _ in FIELDS)

    @property
    def ok(self) -> bool:
        return self.kind is None

    def changes(self) -> dict:
        return {"added": list(self.added), "changed": list(self.changed), "removed": list(self.removed),
                "not_applied": list(self.not_applied)}

    def describe(self) -> str:
        parts = ["%s %s" % (key, ", ".join(names)) for key, names in
                 (("added", self.added), ("changed", self.changed), ("removed", self.removed)) if names]
        text = "; ".join(parts) if parts else "no changes to programs"
        if self.not_applied:
            text += "; not applied until pysuper restarts: [pysuper] %s" % ", ".join(self.not_applied)
        return text


class Reloader:
    def __init__(self, supervisor):
        self.supervisor = supervisor
        path = supervisor.config.path
        self.path = os.path.abspath(path) if path and not path.startswith("<") else path
        self.queue = []  # [(done, who)]

    def on_signal(self):
        """SIGHUP: reload, and say how it went in pysuper's output."""
        self.request(lambda outcome: None, "SIGHUP")

    def request(self, done, who: str):
        """Reload once the reloads before this one have settled; done(Outcome) then."""
        self.queue.append((done, who))
        if len(self.queue) == 1:
            self.supervisor.loop.call_soon(self._next)

    def _next(self):
        if not self.queue:
            return
        try:
            self._apply()
        except Exception as exc:  # a bug must not leave the queue stuck or stop pysuper
            self._done(Outcome(errors=["internal error while reloading: %s: %s" % (type(exc).__name__, exc)],
                               kind="internal"))

    def _apply(self):
        supervisor = self.supervisor
        _, who = self.queue[0]
        supervisor.log("reloading %s (%s)" % (self.path, who))
        if supervisor.shutting_down:
            self._done(Outcome(errors=["pysuper is shutting down"], kind="shutting_down"))
            return
        config, errors = _load(self.path)
        if config is None:
            self._done(Outcome(errors=errors, kind="invalid_config"))
            return
        not_applied = settings_needing_restart(supervisor.config.settings, config.settings)
        programs = supervisor.programs
        old = {name: programs[name] for name in config.programs if name in programs}
        added, changed, removed = supervisor.apply_config(config)
        applied = Outcome(added=tuple(added), changed=tuple(changed), removed=tuple(removed),
                          not_applied=tuple(not_applied))

        def settled():
            return (all(supervisor.programs.get(name) is not old[name] for name in changed)
                    and all(name not in supervisor.programs for name in removed))

        def finished():
            if supervisor.shutting_down:
                left = [name for name in added + changed if supervisor.programs.get(name) is not None
                        and supervisor.programs[name].pid is None]
                self._done(applied.replace(kind="shutting_down", errors=[
                    "pysuper began shutting down before the reload finished%s"
                    % ("; not started: %s" % ", ".join(left) if left else "")]))
                return
            self._done(applied)

        supervisor.when(settled, finished)

    def _done(self, outcome):
        done, who = self.queue.pop(0)
        log = self.supervisor.log
        if outcome.kind == "invalid_config":
            log("reload (%s): the config has errors; still running the previous one:" % who)
            for line in outcome.errors:
                log("  %s" % line)
        elif outcome.kind is not None:
            log("reload (%s) failed: %s" % (who, "; ".join(outcome.errors)))
        else:
            log("reloaded (%s): %s" % (who, outcome.describe()))
        if self.queue:
            self.supervisor.loop.call_soon(self._next)
        try:
            done(outcome)
        except Exception as exc:
            log("internal error after a reload: %s: %s" % (type(exc).__name__, exc))


def _load(path):
    """(config, []) or (None, errors)."""
    if not path or path.startswith("<"):
        return None, ["pysuper was not started from a config file; there is nothing to reload"]
    try:
        config = configmod.load(path)
    except configmod.ConfigError as exc:
        return None, exc.errors
    except Exception as exc:
        return None, ["cannot reload: %s: %s" % (type(exc).__name__, exc)]
    problems = configmod.host_problems(config)
    if problems:
        return None, problems
    return config, []
