"""The sections of a supervisord config, converted in supervisord's order: [supervisord] (its
environment feeds every program), [DEFAULT], [include], [group:x] with their programs, the other
[program:x], and every other section kept as a comment; then the programs in start order."""

from typing import Dict, List, Tuple

from pysuper.convert import options
from pysuper.convert.expand import Expander, Scope
from pysuper.convert.notes import comment_text
from pysuper.convert.program import NO_LOG_FILES, convert_program, unique_names
from pysuper.convert.render import Document, Program

_SUPERVISORD_NOTES = {
    "nodaemon": "not needed; pysuper always runs in the foreground",
    "logfile": "not needed; pysuper writes its own messages to stderr",
    "logfile_maxbytes": "not needed; pysuper writes its own messages to stderr",
    "logfile_backups": "not needed; pysuper writes its own messages to stderr",
    "loglevel": "not needed; pysuper writes its own messages to stderr",
    "pidfile": "not needed; pysuper writes no pid file",
    "childlogdir": NO_LOG_FILES,
    "user": "no equivalent; run pysuper itself as that user (Dockerfile USER)",
    "directory": "not needed; supervisord uses it only when it daemonizes",
    "umask": "not needed; supervisord applies it only when it daemonizes, never with nodaemon = true "
             "(a program's own umask is converted to its umask key)",
    "minfds": "supervisord raises its own soft nofile limit to at least this, and programs inherit it; "
              "with pysuper set limits = { nofile = N } on the programs that need it, or use the container "
              "runtime's limit (docker run --ulimit nofile=N)",
    "minprocs": "supervisord raises its own soft nproc limit to at least this, and programs inherit it; "
                "with pysuper set limits = { nproc = N } on the programs that need it, or use the container "
                "runtime's limit (docker run --ulimit nproc=N)",
    "identifier": "not needed; pysuper has no XML-RPC server",
    "nocleanup": NO_LOG_FILES,
    "strip_ansi": "no equivalent; pysuper relays program output unchanged",
    "silent": "not needed; pysuper writes program output to stdout and stderr",
    "environment": "added to the environment of every program below",
}

SECTION_NOTES = {
    "unix_http_server": "not needed; `pysuper ctl` talks to pysuper over its control socket "
                        "([pysuper] control_socket)",
    "inet_http_server": "not needed; pysuper has no HTTP server, `pysuper ctl` uses a Unix socket",
    "supervisorctl": "not needed; use `pysuper ctl`",
    "rpcinterface": "not needed; pysuper has no XML-RPC interface",
    "ctlplugin": "no equivalent; supervisorctl plugins do not apply to `pysuper ctl`",
}

_SECRET_OPTIONS = ("password",)


def convert(ex: Expander) -> Document:
    """The whole conversion of what the Source holds."""
    source = ex.source
    parser = source.parser
    doc = Document(source.main_display)
    doc.included = list(source.included)
    supervisord_env: Dict[str, str] = {}
    if parser.has_section("supervisord"):
        supervisord_env = _supervisord(ex, doc)
    defaults = parser.defaults()
    if defaults:
        doc.header.append("# [DEFAULT] (%s): its settings apply to every program, as in supervisord"
                          % source.origin(parser.default_section))
        for option, raw in defaults.items():
            doc.header.append("#   %s = %s" % (option, comment_text(raw)))
    if parser.has_section("include"):
        doc.header.append("# [include] (%s): files = %s: read, and the programs of the included files "
                          "are converted below" % (source.origin("include"),
                                                   comment_text(source.raw("include", "files") or "")))
        baked = ex.notes.baked_comment("include", "files")
        if baked:
            doc.header.append(baked)
    groups = []  # (priority, name, [programs])
    members: Dict[str, str] = {}
    for section in parser.sections():
        if section.startswith("group:"):
            groups.append(_group(ex, doc, supervisord_env, section, members))
    for section in parser.sections():
        kind, sep, rest = section.partition(":")
        if kind == "program" and sep and section not in members:
            name = options.name(ex, section, None, rest)
            priority, programs = convert_program(ex, doc, supervisord_env, section, name, None)
            groups.append((priority, name, programs))
    for section in parser.sections():
        kind, sep, _ = section.partition(":")
        if section in ("supervisord", "include") or (sep and kind in ("program", "group")):
            continue
        _other(ex, doc, section, kind if sep or kind in SECTION_NOTES else "")

    ordered: List[Program] = []
    for _priority, _name, programs in sorted(groups, key=lambda g: (g[0], g[1])):
        ordered.extend(sorted(programs, key=lambda p: (p.priority, p.name)))
    unique_names(ordered)
    doc.programs = ordered
    if not any(program.disabled is None for program in ordered):
        _no_programs(ex, doc)
    doc.here_used = list(ex.here_used)
    return doc


def _no_programs(ex: Expander, doc: Document):
    """A config with nothing to run still converts: say why, and what pysuper does with it."""
    source = ex.source
    if any(section.startswith("program:") for section in source.parser.sections()):
        why = "no [program:NAME] section has a process to run (empty command or numprocs = 0)"
    else:
        why = "no [program:NAME] section to convert"
        if source.include_misses:
            why += " (the [include] pattern %s matched no file)" % ", ".join(source.include_misses)
    if doc.header:
        doc.header.append("#")
    doc.header.append("# No program to run: %s. pysuper refuses a config without programs (`pysuper check` "
                      "and `pysuper` say \"no programs\" and exit 2): add a [programs.NAME] table with a "
                      "command." % why)
    ex.notes.warn((source.main_display, None), "%s; the output has no program, and pysuper refuses it until "
                  "a [programs.NAME] table is added" % why)


def _supervisord(ex: Expander, doc: Document) -> Dict[str, str]:
    """[supervisord] as comments; returns its environment, which every program inherits."""
    section = "supervisord"
    env: Dict[str, str] = {}
    lines = ["# [supervisord] (%s)" % ex.source.origin(section)]
    for option in ex.source.own_options(section):
        raw = ex.source.raw(section, option)
        note = _SUPERVISORD_NOTES.get(option)
        if option == "environment":
            scope = Scope({"host_node_name": ex.token_host()}, [])
            env = options.environment(ex, section, option, raw, scope, twice=True)
        if note is None:
            note = "unknown to supervisord (ignored there too)"
            ex.notes.warn(ex.source.where(section, option),
                          "unknown option %s in [supervisord]; kept as a comment" % option)
        lines.append("#   %s = %s: %s" % (option, comment_text(raw), note))
    doc.header.extend(lines)
    return env


def _group(ex: Expander, doc: Document, supervisord_env: Dict[str, str], section: str,
           members: Dict[str, str]) -> Tuple[int, str, List[Program]]:
    """[group:x]: a comment; its programs are converted here, in the group's start order."""
    source = ex.source
    group_name = options.name(ex, section, None, section.partition(":")[2])
    scope = Scope({"host_node_name": ex.token_host()}, [supervisord_env])
    value = options.literal(ex, section, "programs", scope)
    names = [item.strip() for item in value.split(",")] if value else []
    priority = options.integer(ex, section, "priority", scope)
    programs: List[Program] = []
    for program in names:
        program_section = "program:%s" % program
        if not source.parser.has_section(program_section):
            if source.parser.has_section("fcgi-program:%s" % program):
                continue  # reported with the fcgi-program section
            raise source.error(section, "programs", "[%s] names unknown program %s" % (section, program))
        members[program_section] = group_name
        name = options.name(ex, program_section, None, program)
        programs.extend(convert_program(ex, doc, supervisord_env, program_section, name, group_name)[1])
    programs.sort(key=lambda p: (p.priority, p.name))
    member_names = ", ".join(p.name for p in programs) or "none"
    doc.header.append("# [%s] (%s): pysuper has no groups; its programs are converted one by one (%s)" % (
        section, source.origin(section), member_names))
    for option in source.own_options(section):
        if option not in ("programs", "priority"):
            ex.notes.warn(source.where(section, option),
                          "unknown option %s in [%s]; kept as a comment" % (option, section))
        doc.header.append("#   %s = %s" % (option, comment_text(source.raw(section, option))))
        baked = ex.notes.baked_comment(section, option)
        if baked:
            doc.header.append("#   " + baked[2:])
    return (999 if priority is None else priority, group_name, programs)


def _other(ex: Expander, doc: Document, section: str, kind: str):
    """Any other section: a comment, and a warning for those supervisord ran but pysuper cannot."""
    source = ex.source
    origin = source.origin(section)
    if kind in SECTION_NOTES:
        doc.header.append("# [%s] (%s): %s" % (section, origin, SECTION_NOTES[kind]))
        target = doc.header
    elif kind in ("eventlistener", "fcgi-program"):
        if kind == "eventlistener":
            reason = "pysuper has no event protocol, so event listeners cannot run under it"
            hint = ("If this listener stops supervisord when a program fails, set critical = true on "
                    "that program instead.")
        else:
            reason = "pysuper does not create FastCGI sockets"
            hint = "Run the program with its own listening socket as an ordinary [programs.NAME]."
        doc.footer.append("# [%s] (%s) is not converted: %s." % (section, origin, reason))
        doc.footer.append("# %s" % hint)
        ex.notes.warn(source.where(section, None), "[%s] is not supported (%s); it is kept as a comment"
                      % (section, reason))
        target = doc.footer
    else:
        doc.header.append("# [%s] (%s): unknown to supervisord (ignored there too)" % (section, origin))
        ex.notes.warn(source.where(section, None), "unknown section [%s]; kept as a comment" % section)
        target = doc.header
    for option in source.own_options(section):
        raw = source.raw(section, option)
        shown = "(hidden)" if option in _SECRET_OPTIONS else comment_text(raw)
        target.append("#   %s = %s" % (option, shown))
    if target is doc.footer:
        target.append("")
