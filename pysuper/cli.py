"""argv -> run | check | convert | ctl | export | probe | -- CMD. Exit codes and one-line errors; never a traceback."""

import os
import signal
import sys

from pysuper import __version__

EXIT_USAGE = 2

USAGE = """\
usage: pysuper [-c FILE]                 run the programs of a config (PID 1 or not)
       pysuper [-c FILE] [run] NAME...   run only these programs and what they depend on
       pysuper check [[-c] FILE]         validate a config and list its programs
       pysuper -- CMD [ARGS...]          run one program as an init (like tini)
       pysuper convert [FILE] [-o OUT]   turn a supervisord config into a pysuper config
       pysuper ctl [--socket PATH] [-c FILE] COMMAND ...
                                         inspect and steer a running pysuper
       pysuper export compose|kubernetes [-c FILE] --image IMAGE [OPTIONS]
                                         write a Compose file or Kubernetes manifests
       pysuper probe tcp HOST:PORT | http URL | exec -- CMD...
                                         one try of a ready/health check (exit 0 or 1)
       pysuper --version | --help

The config is -c FILE, else $PYSUPER_CONFIG, else ./pysuper.toml, else /etc/pysuper/pysuper.toml.
Exit codes: 0 all went as expected; 1 a program failed or had to be killed; 2 bad config or usage;
a critical program's own exit code (128+N for signal N) when it ended pysuper.
"""


class UsageError(Exception):
    pass


def _error(message: str) -> int:
    sys.stderr.write("pysuper: %s\n" % message)
    return EXIT_USAGE


def config_option(arg: str, rest: list):
    """The FILE of a config option: `-c FILE`, `--config FILE` (FILE taken from the front of
    `rest`), `-cFILE` or `--config=FILE`; None when `arg` is not a config option.

    The one reading of -c FILE, for `pysuper` and `pysuper ctl`.
    """
    if arg in ("-c", "--config"):
        if not rest:
            raise UsageError("%s needs a file name" % arg)
        return rest.pop(0)
    if arg.startswith("--config="):
        return arg.split("=", 1)[1]
    if arg.startswith("-c") and len(arg) > 2:
        return arg[2:]
    return None


def _parse_config_flag(args):
    """Take -c/--config FILE out of args, wherever it is; return (path or None, rest)."""
    path = None
    rest = []
    todo = list(args)
    while todo:
        arg = todo.pop(0)
        value = config_option(arg, todo)
        if value is None:
            rest.append(arg)
        else:
            path = value
    return path, rest


def main(argv=None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--":
        from pysuper import single
        return single.run(args[1:])
    if args and args[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    if args and args[0] in ("-V", "--version", "version"):
        sys.stdout.write("pysuper %s\n" % __version__)
        return 0
    if args and args[0] == "convert":
        from pysuper import convert
        return convert.main(args[1:])
    if args and args[0] == "ctl":
        from pysuper import ctl
        return ctl.main(args[1:])
    if args and args[0] == "export":
        from pysuper.export import command
        return command.main(args[1:])
    if args and args[0] == "probe":
        from pysuper import probe
        return probe.main(args[1:])
    try:
        path, rest = _parse_config_flag(args)
        if "--" in rest:
            index = rest.index("--")
            if rest[:index]:
                raise UsageError("unexpected %s before --" % " ".join(rest[:index]))
            from pysuper import single
            return single.run(rest[index + 1:])
        command = "run"
        explicit = bool(rest) and rest[0] in ("run", "check")
        if explicit:
            command = rest.pop(0)
        if command == "check" and rest and path is None and not rest[0].startswith("-"):
            path = rest.pop(0)  # pysuper check FILE, like pysuper check -c FILE
        flags = [word for word in rest if word.startswith("-")]  # no program name starts with "-"
        if rest and (command == "check" or flags):
            raise UsageError("unexpected argument %r (see pysuper --help)" % (flags or rest)[0])
        if rest and not explicit and _ctl_verb(rest[0]) and not _names_a_program(path, rest[0]):
            import shlex
            words = (["-c", path] if path else []) + rest
            raise UsageError("%r is a command of pysuper ctl; did you mean: pysuper ctl %s"
                             % (rest[0], " ".join(shlex.quote(word) for word in words)))
    except UsageError as exc:
        return _error(str(exc))
    if command == "check":
        return check(path)
    return run(path, rest)


def _ctl_verb(word: str) -> bool:
    from pysuper.ctl import COMMANDS
    return word in COMMANDS


def _names_a_program(path, name: str) -> bool:
    """Does the config (if one is found and valid) have a program, or replicas, of this name?"""
    from pysuper import config as configmod
    found, _ = configmod.find_config(path)
    if found is None:
        return False
    try:
        config = configmod.load(found)
    except configmod.ConfigError:
        return False
    return name in config.programs or name in config.declared


def _load(path):
    """(config, None) or (None, exit code) after printing the errors."""
    from pysuper import config as configmod
    found, searched = configmod.find_config(path)
    if found is None:
        return None, _error("no config found (looked for %s); pass -c FILE, set PYSUPER_CONFIG, "
                            "or run one program with: pysuper -- CMD [ARGS...]" % ", ".join(searched))
    try:
        return configmod.load(found), None
    except configmod.ConfigError as exc:
        for line in exc.errors:
            sys.stderr.write("pysuper: error: %s\n" % line)
        return None, EXIT_USAGE


def check(path) -> int:
    from pysuper import config as configmod
    config, code = _load(path)
    if config is None:
        return code
    width = max(len(name) for name in config.programs)
    import shlex
    for program in config.programs.values():
        extra = "" if program.autostart else ", autostart = false"
        if program.critical:
            extra += ", critical"
        command = " ".join(shlex.quote(w) for w in program.command)
        command = "".join(c if c.isprintable() else repr(c)[1:-1] for c in command)  # one line per program
        sys.stdout.write("%s  %s  (restart = %s%s)\n" % (program.name.ljust(width), command,
                                                         program.restart, extra))
    problems = configmod.host_problems(config)
    for line in problems:
        sys.stderr.write("pysuper: warning: %s\n" % line)
    if problems:
        sys.stderr.write("pysuper: warning: the config itself is valid; the warnings above are about this "
                         "machine (fine when the config is meant for an image), but running it here would "
                         "fail\n")
    sys.stderr.write("pysuper: %s: ok, %d program%s\n" % (config.path, len(config.programs),
                                                          "" if len(config.programs) == 1 else "s"))
    return 0


def run(path, names=()) -> int:
    from pysuper import config as configmod
    config, code = _load(path)
    if config is None:
        return code
    try:
        from pysuper import graph
        only = frozenset(graph.select(config, names)) if names else None
    except LookupError as exc:
        return _error(str(exc))
    problems = configmod.host_problems(config)
    if problems:
        for line in problems:
            sys.stderr.write("pysuper: error: %s\n" % line)
        sys.stderr.write("pysuper: error: nothing was started\n")
        return EXIT_USAGE
    from pysuper.loop import Loop
    from pysuper.reload import Reloader
    from pysuper.supervisor import Supervisor
    loop = Loop()
    supervisor = Supervisor(config, loop)
    supervisor.reloader = Reloader(supervisor)
    supervisor.only = only
    if config.settings.control_socket is not False:
        from pysuper.control import bind, server
        try:
            server.serve(supervisor, loop, config_path=config.path)
        except bind.ControlError as exc:
            return _error(str(exc))
    return supervisor.run()


def main_entry():
    # The kernel drops default-action signals sent to PID 1, and Python turns SIGINT into
    # KeyboardInterrupt: until the loop takes over, a shutdown signal simply ends pysuper.
    code = 1
    try:
        code = main()
    except KeyboardInterrupt:
        code = 128 + signal.SIGINT
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException as exc:  # never a traceback, unless asked for
        if os.environ.get("PYSUPER_DEBUG"):
            import traceback
            traceback.print_exc()
        sys.stderr.write("pysuper: internal error: %s: %s (set PYSUPER_DEBUG=1 for details)\n"
                         % (type(exc).__name__, exc))
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os._exit(code if isinstance(code, int) else 1)
