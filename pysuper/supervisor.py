"""The supervisor: the pid table, reaping, signal policy, start order, shutdown and exit policy.

It is the host of every Program (spawn, signal, timers, log) and offers the command API that the
control socket uses. Every OS operation goes through one object, `osproc` (the module of that name
unless a test passes a fake), so the whole supervisor runs without processes in the unit tests.

One pid table maps each live pid to its `Launch`: the Popen, the program's output relays and the
Program. A reaped pid is popped from it before anything can be respawned, so a reused pid can never
be confused with an old one. Reaped pids that are not in the table are orphans (PID 1 or subreaper)
and are reaped quietly.
"""

import os
import signal
from collections import deque
from typing import Callable, Dict, FrozenSet, List, Optional

from pysuper import graph
from pysuper.commands import Commands
from pysuper import osproc as _osproc
from pysuper.config import Config, ProgramConfig, program_environment, resolve_user
from pysuper.logs import Output
from pysuper.loop import callback_name
from pysuper.orchestra import Orchestra
from pysuper.program import ACTIVE, EXITED, FATAL, Program
from pysuper.signals import describe_exit
from pysuper.signals import name as signal_name

SHUTDOWN_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
FORWARDED_SIGNALS = (signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH)
# Signals whose default action would end or stop pysuper and that mean nothing to it (a stopped
# pysuper would neither reap nor forward). They get a handler that does nothing (not SIG_IGN, which
# programs would inherit through exec). SIGPIPE and SIGXFSZ stay ignored as Python sets them (spawn
# restores them for programs); the faults a bug of our own raises (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
# SIGABRT, SIGSYS) keep their default, or a real fault would repeat forever.
IGNORED_SIGNALS = tuple(getattr(signal, name) for name in (
    "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU", "SIGIO", "SIGPWR", "SIGTRAP",
    "SIGTSTP", "SIGTTIN", "SIGTTOU") if hasattr(signal, name)) + (
    getattr(signal, "SIGSTKFLT", 16),  # Linux's 16; Python < 3.11 has no name for it
) + tuple(range(signal.SIGRTMIN, signal.SIGRTMAX + 1))
MEMBER_RECHECK = 0.1  # seconds until a stopping program's escaped members are looked for again
STRAY_GRACE = 1.0  # seconds strays get after SIGTERM when the budget is already spent (PID 1 only)


def _ignore(signum):
    pass


def _jitter(delay: float) -> float:
    """delay +- up to 10 %, from os.urandom (no `random` import at start-up)."""
    fraction = int.from_bytes(os.urandom(2), "big") / 65535.0
    return delay * (0.9 + 0.2 * fraction)


def _program_of(traceback) -> Optional[Program]:
    """The innermost Program the failed code was working on (as `self` or `program`), if any."""
    found = None
    while traceback is not None:
        local = traceback.tb_frame.f_locals
        for candidate in (local.get("self"), local.get("program")):
            if isinstance(candidate, Program):
                found = candidate
                break
        traceback = traceback.tb_next
    return found


class Launch:
    """A process the supervisor started: kept in the pid table until its pid is reaped."""
    __slots__ = ("program", "process", "relays", "on_exit")

    def __init__(self, program: Program, process, relays, on_exit=None):
        self.program = program
        self.process = process  # the Popen; its returncode is set when the pid is reaped
        self.relays = relays  # the output relays reading its stdout and stderr
        self.on_exit = on_exit  # for a check's process: gets the exit code instead of the program


class Supervisor(Commands):
    """Runs the programs of `config` on `loop`. `output` (default: a logs.Output on fds 1 and 2)
    carries the programs' lines and pysuper's own; `pid1` (default: whether our pid is 1) turns on
    the PID 1 duties; `osproc` is the object every OS operation goes through."""

    def __init__(self, config: Config, loop, output: Optional[Output] = None, pid1: Optional[bool] = None,
                 osproc=_osproc):
        self.config = config
        self.loop = loop
        self.osproc = osproc
        self.settings = config.settings
        self.output = output or Output(loop, config.settings.log_format, config.settings.color,
                                       config.settings.timestamps, config.programs)
        self.pid1 = os.getpid() == 1 if pid1 is None else pid1
        self.programs: Dict[str, Program] = {}
        self.pids: Dict[int, Launch] = {}
        self._exits = deque()  # (pid, code) reaped and not handled yet
        self._users: Dict[str, Optional[tuple]] = {}  # name -> (uid, gid, user name), resolved once
        self._environ = dict(os.environ)  # decoded once: every program's environment shares its strings
        self.shutting_down = False
        self.exit_code: Optional[int] = None
        self.exit_reason = ""
        self._forced_code: Optional[int] = None
        self._deadline: Optional[float] = None
        self._budget_timer = None
        self._finishing = False
        self._check_pending = False
        self._waiters: List[tuple] = []
        self._settling: Dict[str, bool] = {}  # name -> was active, while a reload replaces it
        self._table = None  # see _process_table
        self._marked = None  # see snapshot
        self._recheck_pending = set()  # names of stopping programs whose escaped members are awaited
        self.reloader = None  # a pysuper.reload.Reloader, set by cli.run: SIGHUP and `ctl reload` use it
        self.on_exit: List[Callable[[], None]] = []  # called just before the loop stops
        self.only: Optional[FrozenSet[str]] = None  # `pysuper run NAME...`: what it starts (graph.select)
        loop.on_error = self._internal_error
        self.orchestra = Orchestra(self)
        for program_config in config.programs.values():
            self._add(program_config)

    # -- set-up ------------------------------------------------------------------------------
    def _add(self, program_config: ProgramConfig) -> Program:
        self._users[program_config.name] = resolve_user(program_config)
        program = Program(program_config, self)
        self.programs[program_config.name] = program
        return program

    def install_signals(self):
        self.loop.add_signal_handler(signal.SIGCHLD, self._on_sigchld)
        for signum in SHUTDOWN_SIGNALS:
            self.loop.add_signal_handler(signum, self._on_shutdown_signal)
        for signum in FORWARDED_SIGNALS:
            self.loop.add_signal_handler(signum, self._on_forward_signal)
        for signum in IGNORED_SIGNALS:
            try:
                self.loop.add_signal_handler(signum, _ignore)
            except (OSError, ValueError, RuntimeError):
                pass  # a signal this system does not let us catch

    def start(self):
        """Reap what is already there, then start every autostart program in config order."""
        self.install_signals()
        if not self.osproc.become_reaper(self.pid1):
            self.log("warning: not PID 1 and cannot become a child subreaper; orphans of programs "
                     "will not be reaped by pysuper")
        self._on_sigchld(signal.SIGCHLD)
        names = [name for name in graph.start_order(self.config) if self.autostarts(self.programs[name])]
        if names:
            self.log("starting %s" % ", ".join(names))
        for name in names:
            self.orchestra.request_start(self.programs[name])
        self.orchestra.update_watch()
        self._schedule_check()

    def autostarts(self, program) -> bool:
        """Does pysuper start this program by itself (at start-up, when a reload adds or changes
        it), and so count it in `health`? Its `autostart` key; under `pysuper run NAME...`, whether
        it is one of the programs chosen there instead."""
        return program.config.autostart if self.only is None else program.name in self.only

    def run(self) -> int:
        self.start()
        self.loop.run()
        return self.exit_code if self.exit_code is not None else 1

    # -- host interface for Program ----------------------------------------------------------
    def now(self) -> float:
        return self.loop.time()

    def call_later(self, delay, callback):
        return self.loop.call_later(delay, callback)

    def jitter(self, delay: float) -> float:
        return _jitter(delay)

    def log(self, text: str):
        self.output.message(text)

    def _environment(self, config: ProgramConfig) -> Dict[str, str]:
        """The environment a process of this program starts with (made at each spawn, not kept)."""
        env = program_environment(config, self._environ)
        env.update(self.orchestra.environment(config))
        env[_osproc.MARKER] = _osproc.marker(config.name)  # how its escaped processes are found
        return env

    def spawn(self, program: Program) -> int:
        config = program.config
        env, user = self._environment(config), self._users[program.name]
        stdout, stderr, relays = self.output.pipes(program.name)
        try:
            process = self.osproc.spawn(config.command, cwd=config.directory, env=env, user=user,
                                        stdout=stdout, stderr=stderr, **_osproc.launch_options(config))
        except BaseException:
            for relay in relays:
                relay.close()  # no EOF will come: every write end is ours
            raise
        finally:
            for fd in (stdout, stderr):
                if fd is not None:
                    os.close(fd)
        self.pids[process.pid] = Launch(program, process, relays)
        return process.pid

    def spawn_check(self, program: Program, argv, output_fd: int, on_exit) -> int:
        """Run a check's command as the program runs (user, directory, environment); its exit code
        goes to on_exit when it is reaped."""
        env, user = self._environment(program.config), self._users[program.name]
        process = self.osproc.spawn(list(argv), cwd=program.config.directory, env=env, user=user,
                                    stdout=output_fd, stderr=output_fd,
                                    **_osproc.launch_options(program.config))
        self.pids[process.pid] = Launch(program, process, [], on_exit)
        return process.pid

    def check_ready(self, program: Program, on_ready, on_fail):
        return self.orchestra.check_ready(program, on_ready, on_fail)

    def check_health(self, program: Program, on_unhealthy, on_healthy):
        return self.orchestra.check_health(program, on_unhealthy, on_healthy)

    def signal(self, program: Program, signum: int) -> bool:
        return program.pgid is not None and self.osproc.killpg(program.pgid, signum)

    def snapshot(self, program: Program):
        """The processes of the program besides its main one, in its process group or not."""
        if self._marked is None:  # the program markers of our descendants, once per loop round
            self._marked = self.osproc.marked(self._process_table())
        return self.osproc.members(program.name, program.pid, self._process_table(), self._marked)

    def signal_members(self, program: Program, snapshot, signum: int):
        """signum to the processes of a snapshot outside the program's group (signal() reached the rest)."""
        self.osproc.kill_snapshot(snapshot, signum, outside_group=program.pgid)

    def kill(self, program: Program, snapshot):
        if program.pgid is not None:
            self.osproc.killpg(program.pgid, signal.SIGKILL)
        self.osproc.kill_snapshot(list(snapshot) + list(self.snapshot(program)), signal.SIGKILL)

    def _process_table(self):
        """One scan of /proc per loop round, shared by every program stopped or killed in it."""
        if self._table is None:
            self._table = self.osproc.process_table()
            self.loop.call_soon(self._forget_table)
        return self._table

    def _forget_table(self):
        self._table = None
        self._marked = None

    def group_alive(self, program: Program) -> bool:
        """Whether a process of the program is left (in its group or not); rechecked while there is."""
        if program.pgid is not None and self.osproc.group_alive(program.pgid):
            return True
        if not self.snapshot(program):
            return False
        if program.name not in self._recheck_pending:
            self._recheck_pending.add(program.name)
            self.loop.call_later(MEMBER_RECHECK, self._recheck, program)
        return True

    def _recheck(self, program: Program):
        self._recheck_pending.discard(program.name)
        program.group_check()

    def changed(self, program: Program, old: str, new: str, event: str):
        if (program.config.critical and new in (EXITED, FATAL) and not self.shutting_down):
            self._critical_ended(program)
        self.orchestra.changed(program, old, new)
        if self._waiters:
            self.loop.call_soon(self._run_waiters)
        self._schedule_check()

    def _internal_error(self, exc: Exception, callback):
        """A loop callback raised (a bug): say where, naming the program, and keep supervising."""
        program = _program_of(exc.__traceback__)
        where = "program %s" % program.name if program is not None else callback_name(callback)
        self.log("internal error in %s: %s: %s (set PYSUPER_DEBUG=1 for details); still supervising"
                 % (where, type(exc).__name__, exc))

    # -- reaping -----------------------------------------------------------------------------
    def _on_sigchld(self, signum):
        """Reap every exited child; hand each status to the Program whose pid it was."""
        self._exits.extend(self.osproc.reap())
        orphans = False
        try:
            while self._exits:
                pid, code = self._exits.popleft()
                launch = self.pids.pop(pid, None)
                if launch is None:
                    orphans = True
                    continue
                launch.process.returncode = code
                if launch.on_exit is not None:
                    launch.on_exit(code)
                    continue
                self.output.drain(launch.relays)
                launch.program.on_exit(code)
        finally:
            if self._exits:  # a Program failed on one exit (the loop reports it): the rest come next
                self.loop.call_soon(self._on_sigchld, signal.SIGCHLD)
        if orphans:
            for program in self.programs.values():
                if program.pid is None:
                    program.group_check()
        if self._finishing:
            self._strays_check()

    # -- signals -----------------------------------------------------------------------------
    def _on_shutdown_signal(self, signum):
        name = signal_name(signum)
        if self.shutting_down:
            if signum in (signal.SIGINT, signal.SIGTERM):
                self.log("received %s again; killing all programs now" % name)
                for program in self.programs.values():
                    program.kill_now()
                if self._finishing and self.pid1:
                    self.osproc.kill_all(signal.SIGKILL)
            return
        self.shutdown("received %s" % name)

    def _on_forward_signal(self, signum):
        if signum == signal.SIGHUP and self.reloader is not None:
            self.reloader.on_signal()
            return
        for program in self.programs.values():
            program.signal(signum)

    # -- shutdown and exit policy -------------------------------------------------------------
    def shutdown(self, reason: str, code: Optional[int] = None):
        """Stop every program concurrently within shutdown_timeout, then exit."""
        if self.shutting_down:
            return
        self.shutting_down = True
        self.exit_reason = reason
        self._forced_code = code
        budget = self.settings.shutdown_timeout
        self._deadline = self.now() + budget
        live = [p.name for p in self.programs.values() if p.state in ACTIVE]
        self.log("%s; stopping %s" % (reason, ", ".join(live) if live else "(nothing running)"))
        self.orchestra.stop_in_order()  # dependents first; the others as their dependents stop
        self._budget_timer = self.loop.call_later(budget, self._budget_over)
        self._schedule_check()

    def budget_left(self) -> float:
        """Seconds left of shutdown_timeout during a shutdown."""
        return max(0.0, (self._deadline or self.now()) - self.now())

    def _budget_over(self):
        self._budget_timer = None
        for program in self.programs.values():
            program.kill_now()
        if self._finishing and self.pid1:
            self.osproc.kill_all(signal.SIGKILL)

    def _critical_ended(self, program: Program):
        code = program.last_exit if program.last_exit is not None else 1
        if program.state == FATAL and program.last_exit is None:  # it never ran: a dependency failed
            what = "is FATAL (%s)" % (program.spawn_error or "it never ran")
        elif program.state == FATAL:
            what = "is FATAL (last run %s)" % describe_exit(code)
        else:
            what = describe_exit(code)
        if program.restarts:
            what += " after %d restart%s" % (program.restarts, "" if program.restarts == 1 else "s")
        self.shutdown("critical program %s %s" % (program.name, what), code=code)

    def _schedule_check(self):
        if not self._check_pending:
            self._check_pending = True
            self.loop.call_soon(self._check)

    def _check(self):
        self._check_pending = False
        if self._finishing:
            return
        if any(p.state in ACTIVE for p in self.programs.values()):
            return
        if self.shutting_down:
            self._begin_finish()
            return
        if any(p.held for p in self.programs.values()):
            return  # someone stopped a program by hand and may start it again
        ran = [p for p in self.programs.values() if p.state in (EXITED, FATAL)]
        failed = [p.name for p in ran if not p.healthy_exit]
        if failed:
            self.exit_reason = "all programs have finished; not as expected: %s" % ", ".join(failed)
            self._forced_code = 1
        else:
            self.exit_reason = "all programs have finished as expected"
            self._forced_code = 0
        self.shutting_down = True
        self._deadline = self.now() + self.settings.shutdown_timeout
        self._begin_finish()

    def _begin_finish(self):
        """Every program is down. Ask strays to leave too (as PID 1 every process, otherwise the
        processes our programs left behind); then exit."""
        self._finishing = True
        strays = self.osproc.has_children() if self.pid1 else self.osproc.strays(self.programs)
        if not strays:
            self._finish()
            return
        if self.pid1:
            self.osproc.kill_all(signal.SIGTERM)
        else:
            self.log("stopping what programs left behind: %d process(es)" % len(strays))
            self.osproc.kill_snapshot(strays, signal.SIGTERM)
        self.loop.call_later(max(STRAY_GRACE, (self._deadline or self.now()) - self.now()), self._strays_kill)
        self._strays_check()

    def _strays_check(self):
        if not (self.osproc.has_children() if self.pid1 else self.osproc.strays(self.programs)):
            self._finish()

    def _strays_kill(self):
        if self.exit_code is None:
            if self.pid1:
                self.osproc.kill_all(signal.SIGKILL)
            else:
                self.osproc.kill_snapshot(self.osproc.strays(self.programs), signal.SIGKILL)
            self.loop.call_later(STRAY_GRACE, self._finish)

    def _finish(self):
        if self.exit_code is not None:
            return
        if self._forced_code is not None:
            code = self._forced_code
        else:
            code = 1 if any(p.killed for p in self.programs.values()) else 0
        if self._budget_timer is not None:
            self._budget_timer.cancel()
        killed = [p.name for p in self.programs.values() if p.killed]
        detail = "; killed after timeout: %s" % ", ".join(killed) if killed else ""
        self.exit_code = code
        self.orchestra.close()
        self.output.close_relays()
        for callback in self.on_exit:
            callback()
        self.osproc.remove_cgroups()
        self.log("%s%s; exiting with code %d" % (self.exit_reason, detail, code))
        self.output.flush()
        self.loop.stop()

    def apply_config(self, config: Config):
        """Replace the config: start added programs, stop removed ones, restart changed ones.

        Returns (added, changed, removed) names. The caller has validated `config`. A changed or
        removed program is stopped first; once it is gone it is replaced from the config in force at
        that moment (or dropped), so reloads that follow each other quickly never leave two copies.
        shutdown_timeout applies at once; the log settings and the control socket need a restart.
        """
        old = self.config.programs
        added = [name for name in config.programs if name not in old]
        removed = [name for name in old if name not in config.programs]
        # A change of replicas alone leaves the replicas that stay untouched.
        changed = [name for name in config.programs
                   if name in old and config.programs[name].replace(replicas=0) != old[name].replace(replicas=0)]
        self.config = config
        self.settings = self.settings.replace(shutdown_timeout=config.settings.shutdown_timeout)
        self.output.set_names(list(self.programs) + added)
        for name in removed + changed:
            self._settle_later(name)
        for name in added:
            if name in self._settling:
                continue  # the old program of that name is still stopping; it is replaced once gone
            program = self._add(config.programs[name])
            if self.autostarts(program):
                self.orchestra.request_start(program)
        self.orchestra.update_watch()
        return added, changed, removed

    def _settle_later(self, name: str):
        """Stop `name`, then replace or drop it (see apply_config)."""
        if name in self._settling:
            return
        program = self.programs[name]
        self._settling[name] = program.state in ACTIVE
        program.stop()
        self.when(lambda: program.state not in ACTIVE, lambda: self._settle(name, program))

    def _settle(self, name: str, old: Program):
        was_active = self._settling.pop(name, False)
        if self.programs.get(name) is not old:
            return
        if name not in self.config.programs:
            del self.programs[name]
            self._users.pop(name, None)
            self.orchestra.forget(name)
        else:
            program = self._add(self.config.programs[name])
            program.restarts = old.restarts
            if old.held:
                program.held = True  # stopped by hand: it stays stopped with its new settings
            elif (was_active or self.autostarts(program)) and not self.shutting_down:
                self.orchestra.request_start(program)
            self.orchestra.update_watch()
        if self._waiters:
            self.loop.call_soon(self._run_waiters)  # requests waiting on this program
        self._schedule_check()
