"""What the Compose and Kubernetes exports share.

- `Export`: the result of a mapping: plain-dict documents, comments attached to places in them,
  header lines, warnings and notes for stderr. yamltext.py turns it into text.
- `units(config, per_instance)`: the programs to export, in dependency order. A program with
  `replicas = N` is one unit of N copies, unless its settings use ${PYSUPER_REPLICA} (or the target
  needs one entry per copy, as the containers of one Pod do): then each instance is a unit.
- `translate`: pysuper's `${NAME}`, `${NAME:-default}` and `$$` rewritten for a target's own syntax,
  so no value of the machine running export is ever written.
- Check helpers (the port a tcp/http check uses) and the comments for settings with no equivalent.
"""

import json
import re
from urllib.parse import urlsplit

from pysuper import signals

# pysuper's expansion grammar (config.expand): $$, ${NAME}, ${NAME:-default}
from pysuper.config import EXPANSION

REPLICA_VARIABLE = "PYSUPER_REPLICA"
LOCALHOST = re.compile(r"(?<![\w.-])(?:localhost|127(?:\.\d{1,3}){3}|\[::1\]|::1)(?![\w.-])")


class ExportError(Exception):
    """The config cannot be exported as asked; one line for the user (exit 2)."""


class Export:
    """documents: plain dicts; comments: {(document index, path): [lines]} where path is the tuple of
    keys and list indexes that leads to the mapping the comment belongs to (() for the document);
    header: comment lines before everything; warnings and notes: lines for stderr."""

    def __init__(self):
        self.documents = []
        self.comments = {}
        self.header = []
        self.warnings = []
        self.notes = []

    def comment(self, document: int, path: tuple, text: str):
        self.comments.setdefault((document, tuple(path)), []).append(text)

    def warn(self, text: str):
        if text not in self.warnings:
            self.warnings.append(text)


def show(value) -> str:
    """A config value as written in TOML, for comments."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return ("%d" % value) if value == int(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[%s]" % ", ".join(show(item) for item in value)
    if isinstance(value, dict):
        return "{ %s }" % ", ".join("%s = %s" % (key, show(item)) for key, item in value.items())
    return str(value)


def setting(key: str, value) -> str:
    return "%s = %s" % (key, show(value))


# ---------------------------------------------------------------------------------------------
# ${VAR} in the targets' syntax


def translate(text: str, variable, literal) -> str:
    """text with each ${NAME} / ${NAME:-default} replaced by variable(name, default or None) and each
    literal piece (including the `$` that `$$` stands for) by literal(piece)."""
    out = []
    position = 0
    for match in EXPANSION.finditer(text):
        if match.start() > position:
            out.append(literal(text[position:match.start()]))
        if match.group(1) is None:
            out.append(literal("$"))
        else:
            out.append(variable(match.group(1), match.group(2)))
        position = match.end()
    if position < len(text):
        out.append(literal(text[position:]))
    return "".join(out)


def variables_of(text: str):
    """[(name, default or None), ...] of the ${...} in text."""
    return [(m.group(1), m.group(2)) for m in EXPANSION.finditer(text) if m.group(1)]


def with_defaults(text: str):
    """text with every ${NAME:-default} replaced by its default and $$ by $; None when some
    ${NAME} has no default (the value would come from an environment that is not there)."""
    missing = []

    def variable(name, default):
        if default is None:
            missing.append(name)
            return ""
        return default
    result = translate(text, variable, lambda piece: piece)
    return None if missing else result


def program_texts(program):
    """Every string of a program that ${VAR} expansion applies to, for scanning."""
    texts = list(program.command)
    if program.directory:
        texts.append(program.directory)
    texts.extend(program.environment.values())
    for check in (program.ready, program.health):
        texts.extend(check_texts(check))
    return texts


def check_texts(check):
    if check is None:
        return []
    if check.kind == "tcp":
        return [str(check.target[0])]
    if check.kind == "exec":
        return list(check.target)
    if check.kind in ("http", "log"):
        return [check.target]
    return []


# ---------------------------------------------------------------------------------------------
# Units


class Unit:
    """One exported program: name (a program or instance name), program (its record), count (copies
    the orchestrator runs), dependencies ({unit name: condition}) and type."""

    def __init__(self, name, program, count):
        self.name = name
        self.program = program
        self.count = count
        self.dependencies = {}

    @property
    def oneshot(self) -> bool:
        return self.program.type == "oneshot"


def uses_replica(config, base: str) -> bool:
    """Do the instances of base differ (beyond their names and PYSUPER_REPLICA)?"""
    seen = set()
    for program in config.programs.values():
        if program.base != base:
            continue
        environment = {k: v for k, v in program.environment.items() if k != REPLICA_VARIABLE}
        seen.add(repr((program.command, program.directory, sorted(environment.items()),
                       program.ready, program.health)))
    return len(seen) > 1


def units(config, per_instance: bool):
    """The units of config in dependency order (dependencies first)."""
    from pysuper import graph
    order = list(graph.start_order(config))
    order += [name for name in config.programs if name not in order]
    result = {}
    by_base = {}
    for name in order:
        program = config.programs[name]
        declared = config.declared.get(program.base, program)
        if declared.replicas > 1 and not per_instance and not uses_replica(config, program.base):
            if program.base not in result:
                environment = {k: v for k, v in program.environment.items() if k != REPLICA_VARIABLE}
                unit = Unit(program.base, program.replace(name=program.base, replica=None,
                                                          environment=environment), declared.replicas)
                result[program.base] = unit
                by_base[program.base] = [unit.name]
            continue
        result[name] = Unit(name, program, 1)
        by_base.setdefault(program.base, []).append(name)
    for unit in result.values():
        for base, condition in unit.program.depends_on.items():
            for name in by_base.get(base, ()):
                unit.dependencies[name] = condition
    return list(result.values())


def depends_on_transitively(units_by_name, start: str, target: str) -> bool:
    """Does unit start depend (directly or not) on unit target?"""
    stack, seen = [start], set()
    while stack:
        name = stack.pop()
        for dependency in units_by_name[name].dependencies:
            if dependency == target:
                return True
            if dependency not in seen:
                seen.add(dependency)
                stack.append(dependency)
    return False


# ---------------------------------------------------------------------------------------------
# Checks


def check_address(check):
    """(host, port) a tcp or http check connects to (${VAR:-default}s taken at their defaults), else
    None (also when a ${VAR} without default hides it)."""
    if check is None:
        return None
    if check.kind == "tcp":
        host, port = check.target
        return (host, port) if isinstance(port, int) else None
    if check.kind == "http":
        url = with_defaults(check.target)
        if url is None:
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return None
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        return parts.hostname or "127.0.0.1", port
    return None


def check_ports(program):
    """The container ports a program's tcp/http checks use, in order (ready first)."""
    ports = []
    for check in (program.ready, program.health):
        address = check_address(check)
        if address and address[1] not in ports:
            ports.append(address[1])
    return ports


def is_local(host: str) -> bool:
    return bool(LOCALHOST.fullmatch(host or ""))


def localhost_users(all_units):
    """Names of the units that reach another unit over 127.0.0.1: their command or environment
    mentions a local address, or a check of theirs uses another unit's check port."""
    owners = {}
    for unit in all_units:
        for port in check_ports(unit.program):
            owners.setdefault(port, unit.name)
    found = []
    for unit in all_units:
        program = unit.program
        texts = list(program.command) + list(program.environment.values())
        hit = any(LOCALHOST.search(text) for text in texts)
        for check in (program.ready, program.health):
            address = check_address(check)
            if address and is_local(address[0]) and owners.get(address[1], unit.name) != unit.name:
                hit = True
        if hit:
            found.append(unit.name)
    return found


def describe_check(check) -> str:
    if check.kind == "tcp":
        return "{ tcp = %s }" % show("%s:%s" % check.target)
    if check.kind == "notify":
        return "{ notify = true }"
    target = list(check.target) if check.kind == "exec" else check.target
    return "{ %s = %s }" % (check.kind, show(target))


# ---------------------------------------------------------------------------------------------
# Settings with no equivalent in either target

SETTING_NOTES = {
    "log_format": "each container's output is collected on its own, without pysuper's prefixes",
    "timestamps": "each container's output is collected on its own, without pysuper's prefixes",
    "color": "each container's output is collected on its own, without pysuper's prefixes",
    "shutdown_timeout": "each container has its own grace period (from its stop_timeout)",
    "control_socket": "no pysuper ctl: the orchestrator's own commands start, stop and inspect containers",
    "control_group": "no pysuper ctl: the orchestrator's own commands start, stop and inspect containers",
}


def settings_comments(config):
    """Comment lines for the [pysuper] settings that differ from the defaults."""
    defaults = type(config.settings)()
    lines = []
    for name, _ in type(config.settings).FIELDS:
        value = getattr(config.settings, name)
        if value != getattr(defaults, name) and value is not None:
            lines.append("[pysuper] %s: %s" % (setting(name, value), SETTING_NOTES.get(name, "no equivalent")))
    return lines


def program_comments(program, restarts_managed: bool = True):
    """Comment lines for program settings that neither target can express."""
    defaults = type(program)()
    lines = []
    if program.critical:
        lines.append("critical = true: the orchestrator restarts a container that ends; it no longer "
                     "stops the other programs")
    for key in ("start_seconds", "start_retries", "backoff_max"):
        value = getattr(program, key)
        if value != getattr(defaults, key) and restarts_managed:
            lines.append("%s: the orchestrator has its own restart back-off" % setting(key, value))
    if program.watch:
        lines.append("%s: restart-on-change is for development only; not exported" % setting("watch", program.watch))
    if program.umask is not None:
        lines.append("umask = \"%03o\": no equivalent; set it in the image or the command" % program.umask)
    return lines


def limits_as_written(program):
    """{name: value or [soft, hard]} of program.limits with "unlimited" for RLIM_INFINITY."""
    import resource

    def written(value):
        return "unlimited" if value in (resource.RLIM_INFINITY, "unlimited") else value
    return {name: written(soft) if soft == hard else [written(soft), written(hard)]
            for name, (soft, hard) in program.limits.items()}


def stop_signal_name(program) -> str:
    return signals.name(program.stop_signal)
