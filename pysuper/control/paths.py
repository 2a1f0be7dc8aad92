"""Where the control socket lives, and the protocol version: the part `pysuper ctl` shares.

The order, the same for the server and for `pysuper ctl`:
1. $PYSUPER_SOCKET;
2. `[pysuper] control_socket` (false: no socket; a relative path is relative to the config file);
3. as PID 1 (a container): /run/pysuper/pysuper.sock when /run/pysuper is writable, else
   pysuper.sock in the per-user directory;
4. otherwise one socket per config file in the per-user directory, named after the config's real
   path (`DIRNAME-HASH.sock`), so that several projects run side by side with no settings.
The per-user directory is $XDG_RUNTIME_DIR/pysuper, or /tmp/pysuper-UID without $XDG_RUNTIME_DIR.

This module is imported by the client on every `pysuper ctl`: it stays small and imports only os
and socket.
"""

import os
import socket

PROTOCOL = 1
DEFAULT_DIR = "/run/pysuper"
SOCKET_NAME = "pysuper.sock"
SUFFIX = ".sock"


def user_dir(environ=None) -> str:
    """The per-user socket directory."""
    environ = os.environ if environ is None else environ
    runtime = environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime) and os.path.isdir(runtime):
        return os.path.join(runtime, "pysuper")
    return os.path.join("/tmp", "pysuper-%d" % os.geteuid())


def user_path(environ=None) -> str:
    return os.path.join(user_dir(environ), SOCKET_NAME)


def run_dir_writable() -> bool:
    if os.path.isdir(DEFAULT_DIR):
        return os.access(DEFAULT_DIR, os.W_OK | os.X_OK)
    parent = os.path.dirname(DEFAULT_DIR)
    return os.path.isdir(parent) and os.access(parent, os.W_OK | os.X_OK)


def default_paths(environ=None):
    """The locations of PID 1 (a container), the one the server would take first."""
    run = os.path.join(DEFAULT_DIR, SOCKET_NAME)
    user = user_path(environ)
    return [run, user] if run_dir_writable() else [user, run]


def _fnv1a(data: bytes) -> int:
    """64-bit FNV-1a: a stable short name for a path, without loading hashlib."""
    value = 0xcbf29ce484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return value


def config_path_socket(config_path: str, environ=None) -> str:
    """The default socket of the pysuper that runs config_path (not as PID 1)."""
    real = os.path.realpath(config_path)
    label = os.path.basename(os.path.dirname(real))
    label = "".join(c if c.isalnum() or c in "._-" else "_" for c in label).lstrip(".")[:16] or "pysuper"
    return os.path.join(user_dir(environ), "%s-%012x%s" % (label, _fnv1a(os.fsencode(real)) >> 16, SUFFIX))


def _is_file(config_path) -> bool:
    return bool(config_path) and not config_path.startswith("<")


def resolve(configured=None, config_path=None, environ=None, pid1=False):
    """(path, origin): where the server's socket is, and why there.

    `configured` is `[pysuper] control_socket` (None, False or a path). path is None when the socket
    is turned off; origin is "default" for the default locations.
    """
    environ = os.environ if environ is None else environ
    if environ.get("PYSUPER_SOCKET"):
        return os.path.abspath(environ["PYSUPER_SOCKET"]), "$PYSUPER_SOCKET"
    if configured is False:
        return None, "control_socket = false"
    if configured:
        base = os.path.dirname(os.path.abspath(config_path)) if _is_file(config_path) else os.getcwd()
        return os.path.normpath(os.path.join(base, configured)), "control_socket in %s" % (config_path or
                                                                                      "the config")
    if pid1 or not _is_file(config_path):
        return default_paths(environ)[0], "default"
    return config_path_socket(config_path, environ), "default"


def search_dirs(environ=None):
    """The directories a default socket of ours can be in, for a client looking for running pysupers."""
    return [DEFAULT_DIR, user_dir(environ)]


def listening(path: str) -> bool:
    """Does a server accept connections on the socket at path?"""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def live_sockets(environ=None):
    """The sockets in the default directories that a server listens on, sorted."""
    environ = os.environ if environ is None else environ
    found = []
    for directory in search_dirs(environ):
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        for name in sorted(names):
            path = os.path.join(directory, name)
            if name.endswith(SUFFIX) and path not in found and listening(path):
                found.append(path)
    return found
