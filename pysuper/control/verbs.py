"""The control commands: verb(request, args) answers with request.reply(...) or raises RequestError.

Verbs check their arguments, call the supervisor's command API, and format what its read-only view
(pysuper.view.ProgramView) says; they never touch a Program.
"""

import os

from pysuper import __version__, signals
from pysuper.control.paths import PROTOCOL
from pysuper.control.protocol import RequestError
from pysuper.names import closest
from pysuper.program import ACTIVE, BACKOFF, EXITED, RUNNING


def _views(supervisor):
    """{name: ProgramView} in config order."""
    return {view.name: view for view in supervisor.view()}


def _program_names(views, args, key="names", allow_all=True, default_all=False):
    names = args.get(key)
    if names is None or names == []:
        if default_all:
            return list(views)
        raise RequestError("name at least one program%s" % (" (or all)" if allow_all else ""))
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise RequestError("\"%s\" must be a list of program names" % key)
    if allow_all and "all" in names and "all" not in views:
        return list(views)
    unknown = [name for name in names if name not in views and not _replicas(views, name)]
    if unknown:
        raise RequestError(_unknown_message(views, unknown), "unknown_program")
    seen = []
    for name in names:
        for each in [name] if name in views else _replicas(views, name):
            if each not in seen:
                seen.append(each)
    return seen


def _replicas(views, base):
    """The replicas NAME-0, NAME-1, ... of a program declared with `replicas`: "web" means them all."""
    return [name for name, view in views.items()
            if view.replica is not None and name == "%s-%d" % (base, view.replica)]


def _unknown_message(views, unknown):
    known = list(views)
    hints = []
    for name in unknown:
        close = closest(name, known)
        hints.append("'%s'%s" % (name, " (did you mean '%s'?)" % close if close else ""))
    return "no program named %s; programs: %s" % (", ".join(hints), ", ".join(known) or "(none)")


def _not_shutting_down(supervisor):
    if supervisor.shutting_down:
        raise RequestError("pysuper is shutting down", "shutting_down")


def _result(name, view, ok, message, state=None):
    return {"name": name, "ok": ok, "message": message,
            "state": state or (view.state if view is not None else None),
            "pid": view.pid if view is not None else None}


# ---------------------------------------------------------------------------------------------
# status


def verb_status(request, args):
    supervisor = request.supervisor
    views = _views(supervisor)
    names = _program_names(views, args, allow_all=True, default_all=True)
    rows = [views[name].as_dict() for name in names]

    def reply(figures):
        for row in rows:
            found = figures.get(row["name"], {})
            row["cpu_percent"] = found.get("cpu_percent")
            row["memory_bytes"] = found.get("memory_bytes")
            row["processes"] = found.get("processes")
        request.reply({"programs": rows})

    if args.get("metrics", True) and any(row["pid"] is not None for row in rows):
        # every running program is measured, so that requests arriving together share the samples
        roots = {view.name: view.pid for view in views.values() if view.pid is not None}
        request.server.metrics.measure(roots, request.guard(reply))
    else:
        reply({})


# ---------------------------------------------------------------------------------------------
# start, stop, restart


def _started_result(name, view, state, verb):
    if view is None:
        return _result(name, view, False, "was removed by a reload", state)
    if state == RUNNING:
        return _result(name, view, True, "%s (pid %s)" % (verb, view.pid), state)
    if state == EXITED and view.expected_exit:
        return _result(name, view, True, "ran and %s (expected)" % view.last_exit_text, state)
    why = view.error or view.last_exit_text or "no exit status"
    if state == BACKOFF:
        return _result(name, view, False, "failed to start (%s); retrying (BACKOFF)" % why, state)
    return _result(name, view, False, "failed to start (%s); now %s" % (why, state), state)


def _stopped_result(name, view, state, before):
    if state in ACTIVE:
        return _result(name, view, False, "did not stop; now %s" % state, state)
    if before not in ACTIVE:
        return _result(name, view, True, "was not running (%s)" % before, state)
    how = ""
    if view is not None and view.killed:
        how = "; it needed SIGKILL after stop_timeout"
    elif view is not None and view.last_exit is not None:  # "(SIGTERM)", "(exited with code 0)"
        code = view.last_exit
        how = " (%s)" % (signals.short_exit(code) if signals.signal_of(code) else view.last_exit_text)
    return _result(name, view, True, "stopped%s" % how, state)


def _transition_verb(kind):
    def verb(request, args):
        supervisor = request.supervisor
        _not_shutting_down(supervisor)
        views = _views(supervisor)
        names = _program_names(views, args)
        if kind != "stop":
            removed = [name for name in names if views[name].removed]
            if removed:
                raise RequestError("%s %s removed from the config by a reload"
                                   % (", ".join(removed), "was" if len(removed) == 1 else "were"),
                                   "unknown_program")
        results = {}
        before = {name: views[name].state for name in names}
        pending = set(names)

        def finished(name, state):
            view = _views(supervisor).get(name)
            if kind == "stop":
                results[name] = _stopped_result(name, view, state, before[name])
            elif kind == "start" and before[name] == RUNNING and state == RUNNING:
                results[name] = _result(name, view, True, "already running", state)
            else:
                results[name] = _started_result(name, view, state, "restarted" if kind == "restart" else "started")
            pending.discard(name)
            if not pending:
                request.reply({"results": [results[name] for name in names]})

        api = {"start": supervisor.start_program, "stop": supervisor.stop_program,
               "restart": supervisor.restart_program}[kind]
        for name in names:
            api(name, request.guard(lambda state, name=name: finished(name, state)))
    return verb


# ---------------------------------------------------------------------------------------------
# signal, logs


def verb_signal(request, args):
    supervisor = request.supervisor
    raw = args.get("signal")
    try:
        signum = signals.parse(raw)
    except (TypeError, ValueError) as exc:
        raise RequestError("signal %s: %s" % (_quote(raw), exc)) from None
    views = _views(supervisor)
    names = _program_names(views, args)
    results = []
    for name in names:
        view = views[name]
        if supervisor.signal_program(name, signum):
            results.append(_result(name, view, True, "sent %s to process group %s"
                                   % (signals.name(signum), view.pgid)))
        else:
            results.append(_result(name, view, False, "not running (%s)" % view.state))
    request.reply({"results": results, "signal": signals.name(signum)})


def _quote(value) -> str:
    return '"%s"' % value if isinstance(value, str) else str(value)


def _line_text(line: bytes) -> str:
    return line.decode("utf-8", "surrogateescape")


def _lines(stream, block: bytes):
    pieces = block.split(b"\n")
    if pieces and pieces[-1] == b"":
        pieces.pop()
    return [{"stream": stream, "line": _line_text(piece)} for piece in pieces]


def verb_logs(request, args):
    supervisor = request.supervisor
    if not supervisor.keeps_output():
        raise RequestError("no logs are kept with log_format = \"raw\": programs write straight to pysuper's "
                           "stdout and stderr; use log_format = \"prefix\" or \"json\" to keep the last lines",
                           "unavailable")
    names = _program_names(_views(supervisor), {"names": args.get("name")}, allow_all=False)
    if len(names) != 1:
        raise RequestError("logs takes one program name")
    name = names[0]
    count = args.get("lines", 10)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise RequestError("\"lines\" must be a whole number >= 0")
    data = {"name": name, "lines": [{"stream": stream, "line": _line_text(line)}
                                    for stream, line in supervisor.recent_output(name, count)]}
    if not args.get("follow"):
        request.reply(data)
        return
    follower = request.guard(lambda stream, block: request.event({"event": "log", "lines": _lines(stream, block)}))
    supervisor.follow(name, follower)
    request.on_close(lambda: supervisor.unfollow(name, follower))
    request.reply(data, more=True)


# ---------------------------------------------------------------------------------------------
# reload, health, shutdown, version


def verb_reload(request, args):
    _not_shutting_down(request.supervisor)

    def done(outcome):
        if outcome.ok:
            request.reply(outcome.changes())
        elif outcome.kind == "invalid_config":
            request.fail("the config has errors; pysuper keeps running the previous one", outcome.kind,
                         {"errors": list(outcome.errors)})
        elif outcome.kind == "shutting_down":
            data = outcome.changes()
            data["errors"] = list(outcome.errors)
            request.fail("the reload did not finish", outcome.kind, data)
        else:
            request.fail("; ".join(outcome.errors), outcome.kind)

    request.supervisor.reload(request.guard(done), "pysuper ctl, pid %d" % request.peer.pid)


def verb_health(request, args):
    supervisor = request.supervisor
    healthy, problems = supervisor.health()
    if supervisor.shutting_down:
        healthy, problems = False, ["pysuper is shutting down"] + list(problems)
    request.reply({"healthy": healthy, "problems": problems})


def verb_shutdown(request, args):
    supervisor = request.supervisor
    peer = request.peer
    live = [view.name for view in supervisor.view() if view.state in ACTIVE]
    request.server.exit_waiters.append(request)
    request.reply({"stopping": live}, more=True)
    supervisor.shutdown("shutdown requested by pysuper ctl (uid %d, pid %d)" % (peer.uid, peer.pid))


def verb_version(request, args):
    request.reply({"version": __version__, "protocol": PROTOCOL, "pid": os.getpid(),
                   "socket": request.server.path})


VERBS = {
    "status": verb_status,
    "start": _transition_verb("start"),
    "stop": _transition_verb("stop"),
    "restart": _transition_verb("restart"),
    "signal": verb_signal,
    "logs": verb_logs,
    "reload": verb_reload,
    "health": verb_health,
    "shutdown": verb_shutdown,
    "version": verb_version,
}
