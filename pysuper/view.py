"""The read-only view of a program: one record with what `pysuper ctl` shows and reports.

`build(supervisor, program)` is the one place that reads a Program's internals for the outside;
the control verbs format ProgramView records and never touch a Program. A new field is one line in
FIELDS and one in build(); `status --json` and the protocol carry every field.
"""

from pysuper.config import Record
from pysuper.signals import describe_exit


class ProgramView(Record):
    FIELDS = (
        ("name", None),
        ("state", None),            # STOPPED, WAITING, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL
        ("pid", None),              # of the running process, else None
        ("pgid", None),             # its process group (signals go there), else None
        ("uptime", None),           # seconds since the running process started, else None
        ("restarts", 0),            # automatic restarts since pysuper started the program
        ("last_exit", None),        # exit code of the last run (128+N for signal N), or None
        ("last_exit_text", None),   # "exited with code 3", "killed by SIGTERM (exit 143)", or None
        ("expected_exit", False),   # EXITED with one of its exit_codes: finished as it should
        ("killed", False),          # the last stop needed SIGKILL after stop_timeout
        ("held", False),            # stopped by hand: not restarted, not a failure
        ("error", None),            # why the last start failed before the program ran (exec errors)
        ("autostart", True),
        ("removed", False),         # removed from the config by a reload, still being stopped
        ("type", "service"),        # "service" or "oneshot"
        ("ready", None),            # passed its ready check: True/False, None without a `ready` key
        ("health", None),           # "passing", "failing", None without a `health` key
        ("waiting_for", []),        # ["db (ready)", ...] while WAITING, else []
        ("notify_status", None),    # the last sd_notify STATUS= text, or None
        ("replica", None),          # index among the replicas, None when replicas = 1
    )
    __slots__ = tuple(name for name, _ in FIELDS)

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name, _ in self.FIELDS}


def build(supervisor, program) -> ProgramView:
    """The view of one program of supervisor."""
    running = program.pid is not None
    return ProgramView(
        name=program.name,
        state=program.state,
        pid=program.pid,
        pgid=program.pgid,
        uptime=(supervisor.now() - program.started_at) if running and program.started_at is not None else None,
        restarts=program.restarts,
        last_exit=program.last_exit,
        last_exit_text=describe_exit(program.last_exit) if program.last_exit is not None else None,
        expected_exit=program.healthy_exit,
        killed=program.killed,
        held=program.held,
        error=program.spawn_error,
        autostart=program.config.autostart,
        removed=program.name not in supervisor.config.programs,
        **supervisor.orchestra.fields(program)
    )
