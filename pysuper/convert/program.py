"""[program:x] -> [programs.NAME] tables, in steps: read the section's typed settings once, check
them together, make one program per process (environment, command, directory, name), then the keys,
the comments for what has no key, and names pysuper accepts."""

import re
import shlex
from typing import Dict, List, Optional, Tuple

from pysuper.convert import command as commands
from pysuper.convert import options
from pysuper.convert.expand import Expander, Scope
from pysuper.convert.notes import comment_text
from pysuper.convert.render import Document, Program
from pysuper.names import PROGRAM_NAME, did_you_mean

# Options converted into pysuper keys; they get no comment of their own.
MAPPED = ("command", "directory", "user", "environment", "autostart", "autorestart", "exitcodes",
          "startsecs", "startretries", "stopsignal", "stopwaitsecs", "umask")

# supervisord's option for each pysuper key read without variables (named when a value was baked in).
_OPTION_OF = {"user": "user", "autostart": "autostart", "restart": "autorestart", "exit_codes": "exitcodes",
              "start_seconds": "startsecs", "start_retries": "startretries", "stop_signal": "stopsignal",
              "stop_timeout": "stopwaitsecs", "umask": "umask"}

NO_LOG_FILES = "not needed; pysuper writes no log files"
_NO_EVENTS = "no equivalent; pysuper has no event protocol"

_NOTES = {
    "stopasgroup": "not needed; pysuper always signals the program's whole process group",
    "killasgroup": "not needed; pysuper always signals the program's whole process group",
    "stdout_logfile_maxbytes": NO_LOG_FILES,
    "stdout_logfile_backups": NO_LOG_FILES,
    "stderr_logfile_maxbytes": NO_LOG_FILES,
    "stderr_logfile_backups": NO_LOG_FILES,
    "stdout_capture_maxbytes": _NO_EVENTS,
    "stderr_capture_maxbytes": _NO_EVENTS,
    "stdout_events_enabled": _NO_EVENTS,
    "stderr_events_enabled": _NO_EVENTS,
    "stdout_syslog": "no equivalent; pysuper writes program output to its stdout and stderr",
    "stderr_syslog": "no equivalent; pysuper writes program output to its stdout and stderr",
    "serverurl": "not needed; pysuper has no XML-RPC server",
    "process_name": "used for the program name",
    "numprocs_start": "used for the program names",
}

# Every option supervisord knows in a [program:x] section (for "did you mean").
KNOWN = MAPPED + tuple(_NOTES) + ("priority", "numprocs", "redirect_stderr", "stdout_logfile",
                                  "stderr_logfile")


class Settings:
    """The typed settings of one [program:x] section, the same for each of its processes."""

    def __init__(self, ex: Expander, section: str, scope: Scope):
        read = (ex, section)
        self.priority = options.integer(*read, "priority", scope)
        self.autostart = options.boolean(*read, "autostart", scope)
        self.restart = options.restart(*read, scope)
        self.start_seconds = options.integer(*read, "startsecs", scope, minimum=0)
        self.start_retries = options.integer(*read, "startretries", scope, minimum=0)
        self.stop_signal = options.stop_signal(*read, scope)
        self.stop_timeout = options.integer(*read, "stopwaitsecs", scope, minimum=0)
        stopasgroup = options.boolean(*read, "stopasgroup", scope)
        killasgroup = options.boolean(*read, "killasgroup", scope)
        self.exit_codes = options.exit_codes(*read, scope)
        options.boolean(*read, "redirect_stderr", scope)
        numprocs = options.integer(*read, "numprocs", scope, minimum=0)
        self.numprocs_start = options.integer(*read, "numprocs_start", scope, minimum=0) or 0
        self.user = options.literal(*read, "user", scope)
        self.umask = options.octal(*read, "umask", scope)
        self.numprocs = 1 if numprocs is None else numprocs
        process_name = ex.source.raw(section, "process_name")
        self.process_name = "%(program_name)s" if process_name is None else process_name

        if self.numprocs > 1 and "%(process_num)" not in self.process_name:
            raise ex.source.error(section, "numprocs", "[%s] numprocs = %d: process_name must contain "
                                  "%%(process_num)s (e.g. process_name=%%(program_name)s_%%(process_num)02d)"
                                  % (section, self.numprocs))
        if stopasgroup and killasgroup is False:
            raise ex.source.error(section, "killasgroup", "[%s]: stopasgroup=true needs killasgroup=true"
                                  % section)
        if ex.source.raw(section, "command") is None:
            raise ex.source.error(section, None, "[%s] has no command" % section)

    @property
    def order(self) -> int:
        return 999 if self.priority is None else self.priority

    def keys(self) -> List[Tuple[str, object]]:
        """The pysuper keys these settings give, in the order they are written."""
        user = self.user
        found = [("user", int(user) if user is not None and user.isdigit() else user),
                 ("autostart", self.autostart), ("restart", self.restart), ("exit_codes", self.exit_codes),
                 ("start_seconds", self.start_seconds), ("start_retries", self.start_retries),
                 ("stop_signal", self.stop_signal), ("stop_timeout", self.stop_timeout),
                 ("umask", None if self.umask is None else "%03o" % self.umask)]
        return [(key, value) for key, value in found if value is not None]


def convert_program(ex: Expander, doc: Document, supervisord_env: Dict[str, str], section: str,
                    program_name: str, group: Optional[str]) -> Tuple[int, List[Program]]:
    """The programs of one [program:x] section (one per process), with its start order."""
    group_name = group or program_name
    names = {"program_name": program_name, "group_name": group_name, "host_node_name": ex.token_host()}
    settings = Settings(ex, section, Scope(names, [supervisord_env]))
    programs = []
    for process_num in range(settings.numprocs_start, settings.numprocs_start + settings.numprocs):
        process_names = dict(names, process_num=process_num, numprocs=settings.numprocs)
        programs.append(_process(ex, supervisord_env, section, settings, process_names, group_name))

    if not programs:
        doc.footer.append("# [%s] (%s) is not converted: numprocs = 0, so supervisord starts no process "
                          "from it." % (section, ex.source.origin(section)))
        doc.footer.append("#   command = %s" % comment_text(ex.source.raw(section, "command")))
        doc.footer.append("")
        ex.notes.warn(ex.source.where(section, "numprocs"),
                      "[%s] numprocs = 0: no program to convert; kept as a comment" % section)
    comments = _comments(ex, section, group, [p.name for p in programs], settings)
    for program in programs:
        program.comments = comments + program.notes
    return settings.order, programs


def _process(ex: Expander, supervisord_env: Dict[str, str], section: str, settings: Settings,
             names: Dict[str, object], group_name: str) -> Program:
    """The program for one process of the section (process_num in names)."""
    source = ex.source
    env_raw = source.raw(section, "environment")
    program_env = {}
    if env_raw:
        program_env = options.environment(ex, section, "environment", env_raw, Scope(names, [supervisord_env]))
    full = Scope(names, [program_env, supervisord_env])
    command = ex.expand(section, "command", source.raw(section, "command"), full, literal=False)
    directory = source.raw(section, "directory")
    if directory is not None:
        directory = ex.expand(section, "directory", directory, full, literal=False)
    name = options.name(ex, section, "process_name", ex.literal(section, "process_name", settings.process_name,
                                                                full))
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise source.error(section, "command", "[%s] command: cannot split %r as supervisord would: %s"
                           % (section, source.raw(section, "command"), exc)) from None
    if "\n" in command and words == shlex.split(command.replace("\n", " ")):
        command = command.replace("\n", " ")  # continuation lines only separate words

    program = Program(name, section, source.origin(section), settings.order, group_name)
    _command(ex, section, program, command, words)
    if directory is not None:
        program.add("directory", ex.refs.render(directory))
    for key, value in settings.keys():
        baked = ex.notes.baked_comment(section, _OPTION_OF[key], key)
        program.add(key, value, [baked] if baked else ())
    environment = dict(supervisord_env)
    environment.update(program_env)
    host = ex.token_host()
    if any(host in value for value in [command, directory or ""] + list(environment.values())):
        program.notes.append("# note: %(host_node_name)s became ${HOSTNAME}, which Docker and podman "
                             "set in containers; elsewhere export HOSTNAME before starting pysuper")
    program.environment = {key: ex.refs.render(value) for key, value in environment.items()}
    for key, value in environment.items():
        if re.search(r"\$\{?[A-Za-z_]", value):
            program.notes.append(
                "# note: environment %s keeps a literal $ (supervisord does not expand $VAR in "
                "environment values); write ${VAR} to have pysuper expand a variable" % key)
    return program


def _command(ex: Expander, section: str, program: Program, command: str, words: List[str]):
    """The command key: as written, through the shell when supervisord split a variable's value,
    or commented out when it is empty (supervisord loads such a program but cannot start it)."""
    raw = ex.source.raw(section, "command")
    if not words or not words[0]:
        program.disabled = [
            "# [%s] (%s) is commented out: its command is empty, so supervisord could not start it." % (
                section, program.origin),
            "# Write its command and remove one \"# \" from each line below to run it under pysuper."]
        program.add("command", command.strip())
        ex.notes.warn(ex.source.where(section, "command"),
                      "[%s] command is empty: supervisord cannot start this program; it is kept as a "
                      "commented-out [programs.%s]" % (section, program.name))
        return
    split_vars = commands.split_refs(command, ex.refs)
    if not split_vars:
        program.add("command", ex.refs.render(command))
        return
    shell = commands.through_shell(command, ex.refs)
    program.add("command", [ex.refs.render(word) for word in shell], commands.shell_comment(raw, split_vars))
    if ex.notes.once(("split", section)):
        ex.notes.warn(ex.source.where(section, "command"),
                      "[%s] command: supervisord splits the value of %s into words (none when it is empty); "
                      "the converted command runs through %s -c to do the same"
                      % (section, ", ".join(ref.written for ref in split_vars), commands.SHELL))


def _comments(ex: Expander, section: str, group: Optional[str], made: List[str], settings: Settings
              ) -> List[str]:
    """Comments for every option that has no pysuper key, and for differences worth knowing."""
    out = []
    if group is not None:
        out.append("# part of [group:%s]" % group)
    for option in ex.source.parser.options(section):
        raw = ex.source.raw(section, option)
        if option in MAPPED:
            continue
        if option == "priority":
            note = ("supervisord's start order (lower first, stopped in reverse); the programs here "
                    "are listed in that order")
        elif option == "numprocs":
            note = "one of %d programs made from [%s]: %s" % (settings.numprocs, section, ", ".join(made))
        elif option == "redirect_stderr":
            note = ("not needed; pysuper relays the program's stderr to its own stderr, which "
                    "`docker logs` shows along with stdout")
        elif option in ("stdout_logfile", "stderr_logfile"):
            note = logfile_note(option[:6], raw)
        elif option in _NOTES:
            note = _NOTES[option]
        else:
            note = "unknown to supervisord (ignored there too)"
            ex.notes.warn(ex.source.where(section, option), "unknown option %s in [%s]; kept as a comment%s"
                          % (option, section, did_you_mean(option, KNOWN, quote="")))
        out.append("# %s = %s: %s" % (option, comment_text(raw), note))
        baked = ex.notes.baked_comment(section, option)
        if baked:
            out.append(baked)
    restart, start_seconds = settings.restart, settings.start_seconds
    if restart == "never" and settings.start_retries != 0 and (start_seconds is None or start_seconds > 0):
        out.append("# note: supervisord retried a start that failed within startsecs even with "
                   "autorestart=false; with restart = \"never\" pysuper does not")
    if settings.stop_timeout is not None and settings.stop_timeout > 9:
        out.append("# note: on shutdown pysuper gives all programs [pysuper] shutdown_timeout seconds "
                   "(default 9); raise it (and docker stop --time) if this program needs its full "
                   "stop_timeout")
    return out


def logfile_note(stream: str, raw: str) -> str:
    value = raw.strip()
    target = {"stdout": ("/dev/stdout", "/dev/fd/1", "/proc/self/fd/1"),
              "stderr": ("/dev/stderr", "/dev/fd/2", "/proc/self/fd/2")}
    if value in target[stream]:
        return ("not needed; pysuper relays the program's %s to its own %s, each line prefixed with the "
                "program name" % (stream, stream))
    if value in target["stdout" if stream == "stderr" else "stderr"]:
        return ("pysuper relays the program's %s to its own %s (not to the other stream), each line "
                "prefixed with the program name" % (stream, stream))
    if value.lower() in ("none", "off"):
        return "pysuper does not discard output; the program's %s goes to pysuper's %s" % (stream, stream)
    return ("pysuper writes no log files; the program's %s goes to pysuper's %s (read it with docker logs "
            "or redirect pysuper's output)" % (stream, stream))


def unique_names(programs: List[Program]):
    """pysuper names: letters, digits, '_', '-', '.'; unique. Valid names are kept first."""
    taken = set()
    keep = set()
    for program in programs:
        if PROGRAM_NAME.match(program.name) and program.name not in taken:
            taken.add(program.name)
            keep.add(id(program))
    for program in programs:
        if id(program) in keep:
            continue
        base = re.sub(r"[^A-Za-z0-9_.-]", "_", program.name)
        if not PROGRAM_NAME.match(base):
            base = "_" + base
        candidates = [base]
        if program.group != program.section.partition(":")[2]:
            candidates.append("%s_%s" % (re.sub(r"[^A-Za-z0-9_.-]", "_", program.group), base))
        candidates += ["%s_%d" % (base, n) for n in range(2, 1000)]
        name = next(c for c in candidates if c not in taken)
        taken.add(name)
        program.comments.insert(0, "# renamed from %s: pysuper program names are unique and use letters, "
                                   "digits, '_', '-' and '.'" % program.name)
        program.name = name
