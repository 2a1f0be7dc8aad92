"""Orchestration for the supervisor: dependencies, the stop order, checks, sd_notify and file watching.

The supervisor owns the programs and the pid table; this module decides, over them and the config's
dependency graph (`graph.py`), when a program that was asked to start may start (WAITING until every
`depends_on` condition holds, FATAL with the reason when one never can), which programs a shutdown
stops next (a program only once everything that depends on it has stopped), and which dependencies
`ctl start NAME` starts first. It also wires a program's `ready`/`health` checks (`health.py`) to
the supervisor (check processes are spawned and reaped like programs), owns the sd_notify socket
(`notify.py`), created only when a program uses it, and the file watcher (`watch.py`), imported only
when a program uses `watch`.
"""

import signal
from typing import List, Tuple

from pysuper import graph, policy
from pysuper.program import BACKOFF, EXITED, FATAL, LIVE, RUNNING, STARTING, STOPPED, WAITING


class CheckTarget:
    """What one program's checks may do (see health.py): run a command as the program would run,
    kill it, follow the program's output."""

    def __init__(self, supervisor, program):
        self.loop = supervisor.loop
        self._supervisor = supervisor
        self._program = program

    def spawn(self, argv, output_fd, on_exit) -> int:
        return self._supervisor.spawn_check(self._program, argv, output_fd, on_exit)

    def kill(self, pid: int):
        self._supervisor.osproc.killpg(pid, signal.SIGKILL)

    def follow(self, callback):
        name = self._program.name
        self._supervisor.follow(name, callback)
        return lambda: self._supervisor.unfollow(name, callback)


class _Failing:
    """A ready check that cannot run: it fails on the next loop round, unless cancelled first."""

    def __init__(self, loop, on_fail, why: str):
        self.cancelled = False
        loop.call_soon(lambda: None if self.cancelled else on_fail(why))

    def cancel(self):
        self.cancelled = True


class Orchestra:
    def __init__(self, supervisor):
        self.supervisor = supervisor
        self.notifier = None
        self.watcher = None
        self._recheck_pending = False
        self._order_pending = False
        self._notify_error = None

    # -- dependencies ------------------------------------------------------------------------------
    def conditions(self, program) -> List[Tuple[str, str, str]]:
        """[(instance, condition, HOLDS|WAIT|NEVER)] of program's depends_on, in the current config."""
        supervisor = self.supervisor
        found = []
        for base, wanted in program.config.depends_on.items():
            instances = graph.instances_of(supervisor.config, base)
            if not instances:
                found.append((base, wanted, policy.NEVER))
            for name in instances:
                other = supervisor.programs.get(name)
                if other is None:
                    found.append((name, wanted, policy.NEVER))
                    continue
                expected = None if other.last_exit is None else other.config.expects(other.last_exit)
                found.append((name, wanted, policy.condition(wanted, other.state, expected)))
        return found

    def request_start(self, program) -> bool:
        """Start program now if its conditions hold, else put it in WAITING until they do."""
        pending = ["%s (%s)" % (name, wanted) for name, wanted, verdict in self.conditions(program)
                   if verdict != policy.HOLDS]
        if not pending:
            return program.start()
        started = program.wait(pending)
        self.schedule_recheck()  # a condition that can never hold makes it FATAL at once
        return started

    def start_with_dependencies(self, name: str) -> bool:
        """`ctl start NAME`: start what NAME depends on that is stopped or failed, then NAME."""
        supervisor = self.supervisor
        if name in supervisor.config.programs:
            for other in graph.closure(supervisor.config, [name]):
                dependency = supervisor.programs.get(other)
                if other == name or dependency is None:
                    continue
                failed = dependency.state == FATAL or (dependency.state == EXITED and not dependency.healthy_exit)
                if dependency.state == STOPPED or failed:
                    self.request_start(dependency)
        return self.request_start(supervisor.programs[name])

    def schedule_recheck(self):
        if not self._recheck_pending:
            self._recheck_pending = True
            self.supervisor.loop.call_soon(self._recheck)

    def _recheck(self):
        """Start the WAITING programs whose conditions hold now; FATAL for those that never will."""
        self._recheck_pending = False
        supervisor = self.supervisor
        if supervisor.shutting_down:
            return
        for program in list(supervisor.programs.values()):
            if program.state != WAITING:
                continue
            conditions = self.conditions(program)
            never = [(name, wanted) for name, wanted, verdict in conditions if verdict == policy.NEVER]
            if never:
                program.block("cannot start: %s" % self._why_never(*never[0]))
            elif all(verdict == policy.HOLDS for _, _, verdict in conditions):
                program.start()
            else:
                program.waiting_for = ["%s (%s)" % (name, wanted) for name, wanted, verdict in conditions
                                       if verdict != policy.HOLDS]

    def _why_never(self, name: str, wanted: str) -> str:
        from pysuper.signals import describe_exit
        other = self.supervisor.programs.get(name)
        if other is None or name not in self.supervisor.config.programs:
            return "dependency %s (%s) was removed from the config" % (name, wanted)
        if other.state == FATAL:
            return "dependency %s (%s) is FATAL" % (name, wanted)
        return "dependency %s (%s) %s and will not run again" % (name, wanted, describe_exit(other.last_exit))

    def changed(self, program, old: str, new: str):
        """Every state change of every program."""
        if self.supervisor.shutting_down:
            self.schedule_stop_order()
        elif any(other.state == WAITING for other in self.supervisor.programs.values()):
            self.schedule_recheck()

    # -- the shutdown order ------------------------------------------------------------------------
    def schedule_stop_order(self):
        if not self._order_pending:
            self._order_pending = True
            self.supervisor.loop.call_soon(self.stop_in_order)

    def stop_in_order(self):
        """During a shutdown: stop every program that nothing still running depends on.

        Called once when the shutdown begins and again after state changes, so a program is stopped
        as soon as its last dependent is gone, and independent programs stop concurrently. Each stop
        gets what is left of shutdown_timeout; the supervisor's budget timer kills what remains.
        """
        self._order_pending = False
        supervisor = self.supervisor
        remaining = supervisor.budget_left()
        programs = supervisor.programs
        for program in list(programs.values()):
            program.winding_down = True
            if program.state in (WAITING, BACKOFF):
                program.stop(timeout=remaining)
                continue
            if program.state not in (STARTING, RUNNING):
                continue
            dependents = [other for other, candidate in programs.items()
                          if program.config.base in candidate.config.depends_on]
            if not any(programs[other].state in LIVE for other in dependents):
                program.stop(timeout=remaining)

    # -- checks ------------------------------------------------------------------------------------
    def environment(self, program_config) -> dict:
        """What a program's environment gets from orchestration: NOTIFY_SOCKET for notify checks."""
        ready = program_config.ready
        if ready is not None and ready.kind == "notify" and self._notifier() is not None:
            return self.notifier.environment()
        return {}

    def _notifier(self):
        """The sd_notify socket, made on first use; None (said once) when it cannot be made."""
        if self.notifier is None and self._notify_error is None:
            from pysuper.notify import Notifier
            try:
                self.notifier = Notifier(self.supervisor.loop, self.supervisor.log)
            except OSError as exc:
                self._notify_error = "cannot create the sd_notify socket: %s" % (exc.strerror or exc)
                self.supervisor.log("error: %s" % self._notify_error)
        return self.notifier

    def check_ready(self, program, on_ready, on_fail):
        from pysuper.health import Readiness
        notifier = None
        if program.config.ready.kind == "notify":
            notifier = self._notifier()
            if notifier is None:  # it can never be told READY=1: a failed start, with the reason
                return _Failing(self.supervisor.loop, on_fail, self._notify_error)
            notifier.attach(program.name, lambda: program.pid)
        if program.config.ready.kind == "log" and not self.supervisor.keeps_output():
            return _Failing(self.supervisor.loop, on_fail, 'ready = { log = ... } cannot see the output with '
                            'log_format = "raw" (programs write straight to pysuper\'s stdout); use "prefix" or "json"')
        readiness = Readiness(CheckTarget(self.supervisor, program), program.config.ready, on_ready, on_fail,
                              notifier, program.name)
        readiness.start()
        return readiness

    def check_health(self, program, on_unhealthy, on_healthy):
        from pysuper.health import Liveness
        liveness = Liveness(CheckTarget(self.supervisor, program), program.config.health, on_unhealthy,
                            on_healthy)
        liveness.start()
        return liveness

    def forget(self, name: str):
        """A program removed by a reload."""
        if self.notifier is not None:
            self.notifier.detach(name)

    def fields(self, program) -> dict:
        """What `ctl status` shows of a program's orchestration."""
        config = program.config
        health = None
        if config.health is not None:
            health = "failing" if program.health_failing else "passing"
        status = self.notifier.status.get(program.name) if self.notifier is not None else None
        return {"type": config.type, "ready": program.ready, "health": health,
                "waiting_for": list(program.waiting_for) if program.state == WAITING else [],
                "notify_status": status, "replica": config.replica}

    # -- file watching -----------------------------------------------------------------------------
    def update_watch(self):
        """Watch what the programs of the current config watch (from start-up and after a reload)."""
        watched = [program.config for program in self.supervisor.programs.values() if program.config.watch]
        if not watched and self.watcher is None:
            return
        from pysuper import watch
        if self.watcher is None:
            self.watcher = watch.Watcher(self.supervisor.loop, self._files_changed, self.supervisor.log)
        self.watcher.update([watch.Spec.of(config) for config in watched])

    def _files_changed(self, name: str, paths):
        from pysuper.watch import describe
        supervisor = self.supervisor
        program = supervisor.programs.get(name)
        if program is None or program.held or supervisor.shutting_down:
            return
        supervisor.log("%s: %s changed; restarting" % (name, describe(paths)))
        supervisor.restart_program(name, lambda state: None)

    def close(self):
        if self.watcher is not None:
            self.watcher.close()
            self.watcher = None
        if self.notifier is not None:
            self.notifier.close()
            self.notifier = None

