"""Where the control socket lives, and the protocol version: the part `pysuper ctl` shares.

The order (the same for the server and for `pysuper ctl`): $PYSUPER_SOCKET, else
`[pysuper] control_socket`, else /run/pysuper/pysuper.sock when /run/pysuper is writable, else
$XDG_RUNTIME_DIR/pysuper/pysuper.sock, else /tmp/pysuper-UID/pysuper.sock.

This module is imported by the client on every `pysuper ctl`: it stays small and imports only os.
"""

import os

PROTOCOL = 1
DEFAULT_DIR = "/run/pysuper"
SOCKET_NAME = "pysuper.sock"


def user_path(environ=None) -> str:
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "pysuper", SOCKET_NAME)
    return os.path.join("/tmp", "pysuper-%d" % os.geteuid(), SOCKET_NAME)


def run_dir_writable() -> bool:
    if os.path.isdir(DEFAULT_DIR):
        return os.access(DEFAULT_DIR, os.W_OK | os.X_OK)
    parent = os.path.dirname(DEFAULT_DIR)
    return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)


def default_paths(environ=None):
    """The default locations, the one the server would take first."""
    run = os.path.join(DEFAULT_DIR, SOCKET_NAME)
    user = user_path(environ)
    return [run, user] if run_dir_writable() else [user, run]


def resolve(configured=None, config_path=None, environ=None):
    """(path, origin): where the socket is, and why there.

    `configured` is `[pysuper] control_socket` (None, False or a path); a relative path there is
    relative to the config file's directory. path is None when the socket is turned off.
    """
    environ = os.environ if environ is None else environ
    if environ.get("PYSUPER_SOCKET"):
        return os.path.abspath(environ["PYSUPER_SOCKET"]), "$PYSUPER_SOCKET"
    if configured is False:
        return None, "control_socket = false"
    if configured:
        base = os.path.dirname(os.path.abspath(config_path)) if config_path and \
            not config_path.startswith("<") else os.getcwd()
        return os.path.normpath(os.path.join(base, configured)), "control_socket in %s" % (config_path or
                                                                                      "the config")
    return default_paths(environ)[0], "default"
