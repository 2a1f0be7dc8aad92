"""One program's state machine.

The states are supervisord's, plus WAITING (asked to start, but a dependency's condition does not
hold yet). Every change of state goes through `_go(event)`, which looks the event up in TRANSITIONS:
a pair that is not in the table is a bug and raises. The program acts on the world only through its
host (spawn, signal, timers, clock, log, and its ready and health checks), so the whole machine runs
under a fake host and a fake clock in the unit tests. What follows an exit (restart now, later,
failed start, FATAL, finished) is decided by `policy.after_exit`; this module applies the decision.
"""

from typing import Optional

from pysuper import policy
from pysuper.signals import describe_exit, short_exit, signal_of
from pysuper.signals import name as signal_name

STOPPED = "STOPPED"
WAITING = "WAITING"
STARTING = "STARTING"
RUNNING = "RUNNING"
BACKOFF = "BACKOFF"
STOPPING = "STOPPING"
EXITED = "EXITED"
FATAL = "FATAL"

LIVE = (STARTING, RUNNING, STOPPING)  # states with a process (or a process group) to signal
ACTIVE = (WAITING, STARTING, RUNNING, BACKOFF, STOPPING)  # states that are not final

# (state, event) -> next state
TRANSITIONS = {
    (STOPPED, "start"): STARTING,
    (EXITED, "start"): STARTING,
    (FATAL, "start"): STARTING,
    (BACKOFF, "start"): STARTING,
    (STOPPED, "wait"): WAITING,          # asked to start; a dependency's condition does not hold yet
    (EXITED, "wait"): WAITING,           # the same, asked again after it had finished
    (FATAL, "wait"): WAITING,            # the same, asked again after it had given up
    (BACKOFF, "wait"): WAITING,          # the same, asked by hand during a backoff delay
    (WAITING, "start"): STARTING,        # every dependency's condition holds now
    (WAITING, "blocked"): FATAL,         # a condition can never hold (dependency FATAL, failed or removed)
    (WAITING, "stop"): STOPPED,          # stopped by hand, or by the shutdown, before it could start
    (BACKOFF, "retry"): STARTING,        # the backoff delay is over
    (BACKOFF, "stop"): STOPPED,
    (STARTING, "started"): RUNNING,      # it stayed up for start_seconds (a oneshot: at once)
    (STARTING, "ready"): RUNNING,        # its ready check passed
    (STARTING, "failed_start"): BACKOFF,  # exited too early (or could not exec); will retry
    (STARTING, "gave_up"): FATAL,        # start_retries failed starts in a row
    (STARTING, "finished"): EXITED,      # exited early, but the restart policy says it is done
    (STARTING, "stop"): STOPPING,
    (RUNNING, "finished"): EXITED,       # exited; the restart policy says it is done
    (RUNNING, "restart_now"): STARTING,  # first crash after a healthy run: no delay
    (RUNNING, "crashed"): BACKOFF,       # crashed again soon: wait before the restart
    (RUNNING, "stop"): STOPPING,
    (RUNNING, "failed_start"): BACKOFF,  # a oneshot's unexpected exit is a failed run: retried later
    (RUNNING, "gave_up"): FATAL,         # a oneshot's start_retries failed runs in a row
    (STOPPING, "stopped"): STOPPED,      # the process group is gone
    (STOPPING, "failed_start"): BACKOFF,  # gone after it was not ready within start_timeout; will retry
    (STOPPING, "gave_up"): FATAL,        # ... and that was the last of start_retries failed starts
    (STOPPING, "restart_now"): STARTING,  # gone after failing its health check: start again at once
    (STOPPING, "crashed"): BACKOFF,      # ... unhealthy again soon after a restart: wait first
}


class Program:
    def __init__(self, config, host):
        self.config = config
        self.host = host
        self.name = config.name
        self.state = STOPPED
        self.pid: Optional[int] = None
        self.pgid: Optional[int] = None
        self.started_at: Optional[float] = None
        self.last_exit: Optional[int] = None  # exit code of the last run, 128+N for signal N
        self.failures = 0  # failed starts in a row
        self.streak = 0  # crashes after a healthy start, since the last long run
        self.restarts = 0  # automatic restarts since pysuper started the program
        self.spawns = 0  # attempts to start a process, automatic or not
        self.held = False  # stopped by a person: not restarted, not a failure
        self.killed = False  # the last stop needed SIGKILL
        self.spawn_error: Optional[str] = None
        self.ready: Optional[bool] = None if config.ready is None else False  # passed in this run
        self.health_failing = False  # failed `retries` health checks in a row; not passed since
        self.health_error: Optional[str] = None
        self.waiting_for = []  # ["db (ready)", ...] while WAITING
        self.winding_down = False  # pysuper is shutting down: no automatic restart any more
        self._then: Optional[str] = None  # what follows the current stop: "failed_start", "unhealthy"
        self._check = None  # the ready or health check in progress (has cancel())
        self._timer = None
        self._kill_timer = None
        self._snapshot = ()

    # -- the machine -------------------------------------------------------------------------
    def _go(self, event: str):
        old = self.state
        new = TRANSITIONS.get((old, event))
        if new is None:
            raise RuntimeError("program %s: no transition for %s in state %s" % (self.name, event, old))
        self.state = new
        self.host.changed(self, old, new, event)

    def _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    @property
    def done(self) -> bool:
        """Finished for good: it will not run again unless asked to."""
        return self.state in (EXITED, FATAL) or (self.state == STOPPED and not self.held)

    @property
    def healthy_exit(self) -> bool:
        return self.state == EXITED and self.last_exit is not None and self.config.expects(self.last_exit)

    # -- requests ----------------------------------------------------------------------------
    def start(self):
        """Start (or restart from a final state); resets the failure counters."""
        if self.state not in (STOPPED, WAITING, EXITED, FATAL, BACKOFF):
            return False
        self.waiting_for = []
        self._cancel_timer()
        self.held = False
        self.failures = 0
        self.streak = 0
        self._go("start")
        self._spawn()
        return True

    def wait(self, waiting_for):
        """Asked to start, but these conditions ("db (ready)", ...) do not hold yet."""
        if self.state not in (STOPPED, EXITED, FATAL, BACKOFF):
            return False
        self._cancel_timer()
        self.held = False
        self.failures = 0
        self.streak = 0
        self.waiting_for = list(waiting_for)
        self.host.log("%s: waiting for %s" % (self.name, ", ".join(self.waiting_for)))
        self._go("wait")
        return True

    def block(self, reason: str):
        """WAITING for a condition that can never hold: FATAL, with the reason in one line."""
        if self.state == WAITING:
            self.waiting_for = []
            self.spawn_error = reason
            self.host.log("%s: FATAL: %s" % (self.name, reason))
            self._go("blocked")

    def stop(self, timeout: Optional[float] = None, held: bool = False, then: Optional[str] = None):
        """Ask the program to stop: stop_signal now, SIGKILL to the group after the timeout.

        `then` is for the program's own checks: what follows once it is gone (see group_check).
        """
        if held:
            self.held = True
        self._then = then
        if self.state == WAITING:
            self.waiting_for = []
            self._go("stop")
            return
        if self.state == BACKOFF:
            self._cancel_timer()
            self._go("stop")
            return
        if self.state not in (STARTING, RUNNING):
            if self.state == STOPPING and timeout is not None:
                self._arm_kill(timeout)
            return
        self._cancel_timer()
        self._drop_check()
        self.killed = False
        self._go("stop")
        self._snapshot = self.host.snapshot(self)
        grace = self.config.stop_timeout if timeout is None else min(timeout, self.config.stop_timeout)
        self.host.log("%s: stopping with %s (SIGKILL after %g s)"
                      % (self.name, signal_name(self.config.stop_signal), round(grace, 2)))
        self.host.signal(self, self.config.stop_signal)
        self.host.signal_members(self, self._snapshot, self.config.stop_signal)
        self._arm_kill(grace)

    def kill_now(self):
        """SIGKILL the whole process group and its descendants at once (a second SIGTERM)."""
        if self.state == STOPPING:
            self._kill()
        elif self.state in (STARTING, RUNNING):
            self.stop(timeout=0)

    def _arm_kill(self, timeout: float):
        if self._kill_timer is not None:
            remaining = self._kill_timer.when - self.host.now()
            if remaining <= timeout:
                return
            self._kill_timer.cancel()
        self._kill_timer = self.host.call_later(timeout, self._kill)

    def _kill(self):
        self._kill_timer = None
        if self.state != STOPPING:
            return
        self.killed = True
        self.host.log("%s: still running after stop_timeout; sending SIGKILL to its process group" % self.name)
        self.host.kill(self, self._snapshot)
        if self.pid is None:
            self.group_check()

    def signal(self, signum: int) -> bool:
        if self.state in LIVE and self.pgid is not None:
            return self.host.signal(self, signum)
        return False

    # -- events from the host ----------------------------------------------------------------
    def _spawn(self):
        self.spawns += 1
        self.spawn_error = None
        self.killed = False
        self.ready = None if self.config.ready is None else False
        try:
            self.pid = self.host.spawn(self)
        except OSError as exc:  # SpawnError, or an OS error the config checks could not foresee
            code = getattr(exc, "exit_code", 126)
            self.spawn_error = str(exc)
            self.pid = None
            self.pgid = None
            self.started_at = self.host.now()
            self.last_exit = code
            self.host.log("%s: cannot start: %s" % (self.name, exc))
            decision = policy.after_exit(self.config, None, 0.0, False, self.failures, self.streak)
            self.failures, self.streak = decision.failures, decision.streak
            self._failed_start(decision)
            return
        self.pgid = self.pid
        self.started_at = self.host.now()
        self.host.log("%s: started with pid %d" % (self.name, self.pid))
        if self.config.ready is not None:
            self._check = self.host.check_ready(self, self._ready, self._not_ready)
        elif self.config.start_seconds <= 0 or self.config.type == "oneshot":
            self._started()
        else:
            self._timer = self.host.call_later(self.config.start_seconds, self._started)

    def _started(self):
        self._timer = None
        if self.state == STARTING:
            if self.config.type != "oneshot":
                self.failures = 0  # a oneshot's run succeeds only by its exit
            self._go("started")
            self._watch_health()

    # -- ready and health checks ---------------------------------------------------------------
    def _ready(self):
        self._check = None
        if self.state != STARTING:
            return
        self.ready = True
        self.failures = 0
        self.host.log("%s: ready after %.2f s (%s)"
                      % (self.name, self.host.now() - self.started_at, self.config.ready.kind))
        self._go("ready")
        self._watch_health()

    def _not_ready(self, why: str):
        self._check = None
        if self.state == STARTING:
            self.host.log("%s: %s; stopping it" % (self.name, why))
            self.stop(then="failed_start")

    def _watch_health(self):
        self.health_failing = False
        if self.config.health is not None:
            self._check = self.host.check_health(self, self._unhealthy, self._healthy)

    def _unhealthy(self, error: str):
        """`retries` failed health checks in a row: restart, counted toward the backoff."""
        self.health_failing = True
        self.health_error = error
        if self.state == RUNNING and not self.winding_down:
            self.host.log("%s: unhealthy: %s; restarting" % (self.name, error))
            self.stop(then="unhealthy")

    def _healthy(self):
        self.health_failing = False

    def _drop_check(self):
        if self._check is not None:
            self._check.cancel()
            self._check = None

    def on_exit(self, code: int):
        """The process we started has been reaped with this exit code."""
        now = self.host.now()
        self.pid = None
        self.last_exit = code
        self._cancel_timer()
        self._drop_check()
        if self.state == STOPPING:
            how = short_exit(code) if signal_of(code) is not None else describe_exit(code)
            self.host.log("%s: stopped (%s)" % (self.name, how))  # "stopped (SIGTERM)"
            self.group_check()
            return
        ran = now - (now if self.started_at is None else self.started_at)
        if self.state == STARTING and ran >= self.config.start_seconds and self.config.ready is None:
            self._started()  # it did last long enough; the timer just had not fired yet
        oneshot = self.config.type == "oneshot"
        running = self.state == RUNNING and not oneshot  # a oneshot's unexpected exit is a failed run
        decision = policy.after_exit(self.config, code, ran, running, self.failures, self.streak)
        self.failures, self.streak = decision.failures, decision.streak
        if self.winding_down and decision.action != policy.FINISHED:
            self.host.log("%s: %s during the shutdown; not restarting" % (self.name, describe_exit(code)))
            self._go("finished")
        elif decision.action == policy.FINISHED:
            self.host.log("%s: %s (%s), not restarting (restart = \"%s\")"
                          % (self.name, describe_exit(code), "expected" if decision.expected else "unexpected",
                             self.config.restart))
            self._go("finished")
        elif decision.action == policy.RESTART_NOW:
            self.host.log("%s: %s; restarting" % (self.name, describe_exit(code)))
            self.restarts += 1
            self._go("restart_now")
            self._spawn()
        elif decision.action == policy.RESTART_LATER:
            delay = self.host.jitter(decision.delay)
            self.host.log("%s: %s; restarting in %.1f s" % (self.name, describe_exit(code), delay))
            self._go("crashed")
            self._timer = self.host.call_later(delay, self._retry)
        elif oneshot:
            self.host.log("%s: %s (unexpected) after %.2f s" % (self.name, describe_exit(code), ran))
            self._failed_start(decision)
        elif self.config.ready is not None:
            self.host.log("%s: %s after %.2f s, before it was ready" % (self.name, describe_exit(code), ran))
            self._failed_start(decision)
        else:
            self.host.log("%s: %s after %.2f s, before start_seconds = %g"
                          % (self.name, describe_exit(code), ran, self.config.start_seconds))
            self._failed_start(decision)

    def _failed_start(self, decision):
        """Apply a FAILED_START or GIVE_UP decision (STARTING; RUNNING for a oneshot; STOPPING after a
        ready check's start_timeout)."""
        retries = max(1, self.config.start_retries)
        if decision.action == policy.GIVE_UP:
            self.host.log("%s: FATAL: %d failed start%s in a row (start_retries = %d); giving up"
                          % (self.name, self.failures, "" if self.failures == 1 else "s",
                             self.config.start_retries))
            self._go("gave_up")
            return
        delay = self.host.jitter(decision.delay)
        self.host.log("%s: failed to start (%d of %d); retrying in %.1f s"
                      % (self.name, self.failures, retries, delay))
        self._go("failed_start")
        self._timer = self.host.call_later(delay, self._retry)

    def _retry(self):
        """The backoff delay is over: the next automatic start, counted once here."""
        self._timer = None
        if self.state == BACKOFF:
            self.restarts += 1
            self._go("retry")
            self._spawn()

    def group_check(self):
        """While STOPPING with the leader gone: STOPPED once no process of the program is left (in
        its process group or not)."""
        if self.state != STOPPING or self.pid is not None:
            return
        if self.pgid is not None and self.host.group_alive(self):
            return
        if self._kill_timer is not None:
            self._kill_timer.cancel()
            self._kill_timer = None
        self.pgid = None
        self._snapshot = ()
        then, self._then = self._then, None
        if then == "failed_start" and not self.winding_down:
            decision = policy.after_exit(self.config, None, 0.0, False, self.failures, self.streak)
            self.failures, self.streak = decision.failures, decision.streak
            self._failed_start(decision)
        elif then == "unhealthy" and not self.winding_down:
            ran = self.host.now() - (self.started_at or self.host.now())
            decision = policy.after_unhealthy(self.config, ran, self.streak)
            self.streak = decision.streak
            if decision.action == policy.RESTART_NOW:
                self.restarts += 1
                self._go("restart_now")
                self._spawn()
            else:
                delay = self.host.jitter(decision.delay)
                self.host.log("%s: restarting in %.1f s" % (self.name, delay))
                self._go("crashed")
                self._timer = self.host.call_later(delay, self._retry)
        else:
            self._go("stopped")
