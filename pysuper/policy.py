"""Pure restart decisions: what happens after a program's process ends or cannot be started.

`after_exit` looks only at its arguments (the program's config, the exit code, how long the run
lasted, whether the run had reached RUNNING, and the two counters of failures) and returns a
`Decision`. It never reads a clock and never acts: `program.py` applies the decision (state
transition, log line, timer), which keeps every branch of the restart policy testable as a table.
"""

from typing import NamedTuple, Optional

FINISHED = "finished"            # the restart policy says it is done: EXITED
RESTART_NOW = "restart_now"      # first crash after a healthy run: start again at once
RESTART_LATER = "restart_later"  # crashed again soon: start again after `delay` (BACKOFF)
FAILED_START = "failed_start"    # ended before start_seconds, or could not exec: retry after `delay`
GIVE_UP = "give_up"              # start_retries failed starts in a row: FATAL

# Backoff: 1 s, 2 s, 4 s ... capped at backoff_max (the caller adds the jitter).
FIRST_DELAY = 1.0


def backoff_delay(attempt: int, cap: float) -> float:
    """Delay before the restart that follows `attempt` failures in a row (attempt >= 1)."""
    return min(cap, FIRST_DELAY * 2 ** min(attempt - 1, 32))


class Decision(NamedTuple):
    action: str       # one of FINISHED, RESTART_NOW, RESTART_LATER, FAILED_START, GIVE_UP
    delay: float      # seconds before the next start, before jitter (RESTART_LATER, FAILED_START)
    failures: int     # failed starts in a row, counting this one
    streak: int       # crashes after a healthy start since the last long run, counting this one
    expected: Optional[bool]  # the exit code is one of exit_codes (None: the program never ran)


def after_exit(config, code: Optional[int], ran: float, running: bool, failures: int,
               streak: int) -> Decision:
    """The decision after a run that lasted `ran` seconds ended with exit `code`.

    `running`: the run had reached RUNNING (it stayed up for start_seconds). `code` None means the
    process could not be started at all (exec failure): always a failed start, whatever `restart`
    says. `failures` and `streak` are the program's counters before this exit.
    """
    if code is None:
        return _failed_start(config, failures, streak, None)
    expected = config.expects(code)
    policy = config.restart
    if not (policy == "always" or (policy == "on-failure" and not expected)):
        return Decision(FINISHED, 0.0, failures, streak, expected)
    if not running:
        return _failed_start(config, failures, streak, expected)
    if ran >= config.backoff_max:
        streak = 0  # a long run: the next crash is restarted at once again
    delay = 0.0 if streak == 0 else backoff_delay(streak, config.backoff_max)
    return Decision(RESTART_LATER if delay > 0 else RESTART_NOW, delay, 0, streak + 1, expected)


def _failed_start(config, failures: int, streak: int, expected: Optional[bool]) -> Decision:
    failures += 1
    if failures >= max(1, config.start_retries):
        return Decision(GIVE_UP, 0.0, failures, streak, expected)
    return Decision(FAILED_START, backoff_delay(failures, config.backoff_max), failures, streak, expected)


def after_unhealthy(config, ran: float, streak: int) -> Decision:
    """The decision once a program stopped for failing its health check is gone: it is restarted
    whatever `restart` says, and the restart counts toward its backoff like a crash after a run."""
    if ran >= config.backoff_max:
        streak = 0
    delay = 0.0 if streak == 0 else backoff_delay(streak, config.backoff_max)
    return Decision(RESTART_LATER if delay > 0 else RESTART_NOW, delay, 0, streak + 1, None)


# -- dependency conditions ------------------------------------------------------------------------
HOLDS = "holds"  # the dependent may start
WAIT = "wait"    # not yet
NEVER = "never"  # it cannot hold any more without someone starting the dependency again


def condition(wanted: str, state: str, expected: Optional[bool]) -> str:
    """Does a dependency in `state` satisfy `wanted` ("started", "ready" or "completed")?

    `expected`: whether its last exit code is one of its exit_codes (None: it has not exited).
    EXITED and FATAL are final states: an expected exit satisfies every condition (a oneshot that
    completed was started and ready too), an unexpected one or FATAL none ever again. Otherwise
    "started" holds from STARTING on, "ready" in RUNNING (its ready check passed, or it lasted
    start_seconds), and "completed" only once it has exited.
    """
    if state == "FATAL":
        return NEVER
    if state == "EXITED":
        return HOLDS if expected else NEVER
    if wanted == "started":
        return HOLDS if state in ("STARTING", "RUNNING") else WAIT
    if wanted == "ready":
        return HOLDS if state == "RUNNING" else WAIT
    return WAIT
