"""A pysuper config -> one Compose (compose-spec) document, as plain dicts in an Export.

One service per program, all from the one image. By default the services share the network
namespace of an anchor service (`network_mode: "service:ANCHOR"`), so 127.0.0.1 works as it did
inside one container; `separate` gives each service its own. Every string goes through Compose's
interpolation, so pysuper's ${VAR} stays ${VAR} and a literal $ is written $$.
"""

import os
import signal

from pysuper.export import common
from pysuper.export.common import Export, setting

CONDITIONS = {"started": "service_started", "ready": "service_healthy", "completed": "service_completed_successfully"}
RESTART = {"always": "always", "on-failure": "on-failure", "never": "no"}
# the ulimit names Docker and podman accept
ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
           "rtprio", "rttime", "sigpending", "stack")
SEPARATE_WARNING = ("each service has its own network namespace: programs that reached each other on "
                    "127.0.0.1 must now use the service names")


class _Text:
    """Compose interpolation syntax for pysuper strings; remembers the variables left to Compose."""

    def __init__(self):
        self.variables = []

    def __call__(self, text: str) -> str:
        def variable(name, default):
            if name not in self.variables:
                self.variables.append(name)
            if default is None:
                return "${%s}" % name
            return "${%s:-%s}" % (name, default.replace("$", "$$"))
        return common.translate(text, variable, lambda piece: piece.replace("$", "$$"))


def duration(seconds: float) -> str:
    """10 -> "10s", 1.5 -> "1500ms" (Compose durations)."""
    if seconds == int(seconds):
        return "%ds" % seconds
    return "%dms" % round(seconds * 1000)


def probe_test(check, text):
    """A healthcheck test for a tcp/http/exec check (pysuper probe for tcp and http)."""
    if check.kind == "exec":
        return ["CMD"] + [text(word) for word in check.target]
    if check.kind == "tcp":
        host, port = check.target
        address = "%s:%s" % ("[%s]" % host if ":" in str(host) else host, port)
        return ["CMD", "pysuper", "probe", "tcp", text(address)]
    return ["CMD", "pysuper", "probe", "http", text(check.target)]


def build(config, image: str, publish=(), network: str = "shared", env_file_base: str = ".") -> Export:
    """The Compose document for config. publish: "HOST:CONTAINER" strings; network: shared|separate;
    env_file_base: the directory env_file paths are written relative to (the compose file's)."""
    export = Export()
    text = _Text()
    all_units = common.units(config, per_instance=False)
    by_name = {unit.name: unit for unit in all_units}
    services = {}
    export.documents.append({"services": services})
    for line in common.settings_comments(config):
        export.comment(0, (), line)

    anchor = None
    if network == "shared":
        anchor = next((u for u in all_units if not u.oneshot and u.program.autostart), None)
    healthy = {}
    for unit in all_units:
        service, notes = _service(unit, image, text, env_file_base)
        services[unit.name] = service
        healthy[unit.name] = "healthcheck" in service
        for line in notes:
            export.comment(0, ("services", unit.name), line)

    for unit in all_units:
        _dependencies(export, unit, services, healthy, by_name, text)
        if anchor is not None and unit is not anchor:
            if common.depends_on_transitively(by_name, anchor.name, unit.name):
                export.comment(0, ("services", unit.name),
                               "own network namespace: it runs before %s, whose network the other services "
                               "share, so it cannot reach them on 127.0.0.1" % anchor.name)
            else:
                services[unit.name]["network_mode"] = "service:%s" % anchor.name
        if anchor is unit and unit.count > 1:
            export.warn("%s has %d replicas and holds the shared network namespace: publish its ports from "
                        "one copy only, or use --network separate" % (unit.name, unit.count))

    _publish(export, all_units, services, publish, anchor, network, text)
    if network == "separate":
        users = common.localhost_users(all_units)
        export.warn(SEPARATE_WARNING + (" (%s reach%s others on 127.0.0.1)"
                                        % (", ".join(users), "es" if len(users) == 1 else "")
                                        if users else ""))
    if text.variables:
        export.notes.append("Compose fills %s from its environment or the .env file beside the compose file"
                            % ", ".join("${%s}" % name for name in text.variables))
    return export


def _service(unit, image, text, env_file_base):
    program = unit.program
    notes = []
    service = {"image": image, "entrypoint": [], "command": [text(word) for word in program.command]}
    if program.directory:
        service["working_dir"] = text(program.directory)
    if program.environment:
        service["environment"] = {key: text(value) for key, value in program.environment.items()}
    if program.env_file:
        service["env_file"] = [_env_file(path, required, env_file_base) for path, required in program.env_file]
    if program.user is not None:
        user = text(program.user)
        service["user"] = user if program.group is None else "%s:%s" % (user, text(program.group))
    if program.groups:
        service["group_add"] = [text(str(group)) for group in program.groups]
    service["restart"] = RESTART[program.restart]
    if program.exit_codes != (0,):
        notes.append("%s: Compose counts only exit code 0 as success" % setting("exit_codes", program.exit_codes))
    if program.stop_signal != signal.SIGTERM:
        service["stop_signal"] = common.stop_signal_name(program)
    service["stop_grace_period"] = duration(program.stop_timeout)
    check = program.health or program.ready
    if program.ready is not None and program.ready.kind in ("log", "notify"):
        notes.append("ready = %s: Compose has no such check; dependents waiting for it only wait until it "
                     "has started" % common.describe_check(program.ready))
        if program.health is None:
            check = None
    if check is not None:
        health = {"test": probe_test(check, text), "interval": duration(check.interval),
                  "timeout": duration(check.timeout)}
        if check.retries is not None:
            health["retries"] = check.retries
        if program.ready is not None and program.ready.start_timeout is not None:
            health["start_period"] = duration(program.ready.start_timeout)
        service["healthcheck"] = health
        if program.health is not None and program.ready is not None and program.ready.kind not in ("log", "notify"):
            notes.append("ready = %s: Compose has one healthcheck per service; it is made from health, "
                         "with start_period from ready's start_timeout" % common.describe_check(program.ready))
    if program.limits:
        ulimits = {}
        for name, value in common.limits_as_written(program).items():
            if name not in ULIMITS:
                notes.append("limits.%s = %s: no such ulimit in Compose" % (name, common.show(value)))
                continue
            soft, hard = (-1 if v == "unlimited" else v for v in (value if isinstance(value, list) else [value] * 2))
            ulimits[name] = soft if soft == hard else {"soft": soft, "hard": hard}
        if ulimits:
            service["ulimits"] = ulimits
    if program.no_new_privileges:
        service["security_opt"] = ["no-new-privileges:true"]
    if not program.autostart:
        service["profiles"] = ["manual"]
        notes.append("autostart = false: only started when asked for (docker compose --profile manual up %s)"
                     % unit.name)
    if unit.count > 1:
        service["deploy"] = {"replicas": unit.count}
        notes.append("replicas = %d: deploy.replicas; the copies all have the same settings (no %s index)"
                     % (unit.count, common.REPLICA_VARIABLE))
    notes.extend(common.program_comments(program))
    return service, notes


def _env_file(path, required, base):
    relative = os.path.relpath(path, base) if os.path.isabs(path) else path
    return relative if required else {"path": relative, "required": False}


def _dependencies(export, unit, services, healthy, by_name, text):
    if not unit.dependencies:
        return
    depends = {}
    for name, condition in unit.dependencies.items():
        target = CONDITIONS[condition]
        dependency = by_name[name].program
        if condition == "ready" and (dependency.ready is None or not healthy[name]):
            target = "service_started"
            why = ("it has no ready check" if dependency.ready is None else
                   "its ready check has no Compose equivalent")
            export.comment(0, ("services", unit.name),
                           "depends_on %s = \"ready\": waits only until %s has started (%s)" % (name, name, why))
        depends[name] = {"condition": target}
    services[unit.name]["depends_on"] = depends


def _publish(export, all_units, services, publish, anchor, network, text):
    for spec in publish:
        container_port = int(spec.rsplit(":", 1)[1])
        owner = anchor
        if network == "separate":
            owner = next((u for u in all_units if container_port in common.check_ports(u.program)), None)
            if owner is None:
                owner = next((u for u in all_units if not u.oneshot), all_units[0])
                export.warn("--publish %s: no program's tcp/http check uses port %d; published on %s"
                            % (spec, container_port, owner.name))
        elif owner is None:
            owner = all_units[0]
            export.warn("--publish %s: there is no long-running program to hold the shared network; "
                        "published on %s" % (spec, owner.name))
        services[owner.name].setdefault("ports", []).append(text(spec))
