"""The supervisor's command API, used by the control socket and by reloads: start, stop, restart
and signal programs when asked, wait for a state, the read-only view of the programs, their recent
and live output, reload, and the container's health.

`Commands` is a part of Supervisor (its base class) kept in its own module; it works only through
the supervisor's own attributes (programs, orchestra, output, reloader) and its Programs' requests.
"""

from typing import Callable, List

from pysuper.program import ACTIVE, BACKOFF, EXITED, FATAL, RUNNING, STOPPED, STOPPING
from pysuper.reload import Outcome
from pysuper.signals import describe_exit
from pysuper.view import ProgramView
from pysuper.view import build as build_view


class Commands:
    def when(self, predicate: Callable[[], bool], callback: Callable[[], None]):
        """callback() as soon as predicate() holds (checked after every state change)."""
        if predicate():
            callback()
        else:
            self._waiters.append((predicate, callback))

    def _run_waiters(self):
        waiting, self._waiters = self._waiters, []
        for predicate, callback in waiting:
            if predicate():
                callback()
            else:
                self._waiters.append((predicate, callback))

    def start_program(self, name: str, done: Callable[[str], None]):
        """Start; done(state) once it is RUNNING or has failed (BACKOFF, EXITED, FATAL).

        A program that is still stopping is started once it has stopped. If another request stops
        it meanwhile to restart it, this one waits for that start; a stop by hand (held), a reload
        that replaces or removes it, or a shutdown ends the wait.
        """
        program = self.programs.get(name)
        if program is None or self.shutting_down:
            return done(program.state if program is not None else STOPPED)
        if program.state == RUNNING:
            return done(program.state)
        if program.state == STOPPING:
            self.when(lambda: program.state != STOPPING or self.programs.get(name) is not program,
                      lambda: self.start_program(name, done))
            return None
        self.orchestra.start_with_dependencies(name)

        def settled():
            if self.shutting_down or self.programs.get(name) is not program:
                return True
            return program.state in (RUNNING, BACKOFF, EXITED, FATAL) or (program.state == STOPPED
                                                                          and program.held)
        self.when(settled, lambda: done(program.state))
        return None

    def stop_program(self, name: str, done: Callable[[str], None]):
        """Stop and hold; done(state) once the process group is gone."""
        program = self.programs[name]
        program.stop(held=True)
        self.when(lambda: program.state not in ACTIVE, lambda: done(program.state))

    def restart_program(self, name: str, done: Callable[[str], None]):
        """Stop, then start; done(state) as for start_program.

        Concurrent restarts of one program share one stop: a request whose stop someone else's
        start has already followed waits for that start instead of stopping the program again.
        """
        program = self.programs[name]
        asked = program.spawns
        program.stop()
        self.when(lambda: program.state not in ACTIVE or program.spawns > asked,
                  lambda: self.start_program(name, done))

    def signal_program(self, name: str, signum: int) -> bool:
        return self.programs[name].signal(signum)

    def view(self) -> List[ProgramView]:
        """The read-only view of every program, in config order (see pysuper.view)."""
        return [build_view(self, program) for program in self.programs.values()]

    def keeps_output(self) -> bool:
        """False with log_format = "raw": programs write straight to pysuper's stdout, nothing is kept."""
        return self.output.fmt != "raw"

    def recent_output(self, name: str, count: int):
        """The last `count` lines of name's output: [(stream, line bytes without newline)]."""
        return self.output.ring(name).lines(count) if count else []

    def follow(self, name: str, callback: Callable[[str, bytes], None]):
        """callback(stream, block of whole lines) for each new block of name's output, until unfollow()."""
        self.output.ring(name).subscribe(callback)

    def unfollow(self, name: str, callback: Callable[[str, bytes], None]):
        self.output.ring(name).unsubscribe(callback)

    def reload(self, done: Callable[[Outcome], None], who: str):
        """Re-read the config file; done(Outcome) once the reload has settled (see pysuper.reload)."""
        if self.reloader is None:
            done(Outcome(errors=["this pysuper does not reload its config"], kind="unavailable"))
            return
        self.reloader.request(done, who)

    def health(self):
        """(healthy, [reasons]) for `pysuper ctl health`."""
        problems = []
        for program in self.programs.values():
            if not self.autostarts(program) and program.state == STOPPED and not program.held:
                continue
            if program.state == RUNNING and program.health_failing:
                problems.append("%s is failing its health check: %s" % (program.name, program.health_error))
                continue
            if program.state == RUNNING or program.healthy_exit:
                continue
            if program.held:
                problems.append("%s is stopped (by hand)" % program.name)
            elif program.state == EXITED:
                problems.append("%s %s (unexpected)" % (program.name, describe_exit(program.last_exit)))
            else:
                problems.append("%s is %s" % (program.name, program.state))
        return not problems, problems
