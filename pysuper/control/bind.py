"""Creating the control socket and deciding who may use it.

The socket is created 0600 (0660 with control_group) under a umask, in a directory that only its
owner can write; a stale socket is replaced only after connect() to it failed, so a live one is never
taken over. Every connection's peer credentials (SO_PEERCRED) are checked: root, pysuper's own uid,
or members of control_group.
"""

import errno
import os
import socket
import stat
import struct

MAX_PATH = 107  # sun_path holds 108 bytes including the terminating NUL
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)

HOW_TO_CHOOSE = ("set PYSUPER_SOCKET=/path/to/other.sock, or control_socket = \"/path/to/other.sock\" "
                 "in [pysuper] (control_socket = false runs without a control socket)")


class ControlError(Exception):
    """The control socket cannot be set up; the message says what to change."""


def group_id(group):
    """The gid of control_group (a name or a number), or None without one."""
    if group is None:
        return None
    import grp
    try:
        return int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlError("control_group = \"%s\": no such group on this machine" % group) from None


def _private_dir(directory: str, gid):
    """Create (or check) a default socket directory: a real directory, ours, only we can write it."""
    try:
        os.makedirs(os.path.dirname(directory), exist_ok=True)
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ControlError("cannot create the control socket directory %s: %s; %s"
                           % (directory, exc.strerror or exc, HOW_TO_CHOOSE)) from None
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ControlError("%s is not a directory owned by uid %d (a symlink or someone else's); remove it "
                           "or %s" % (directory, os.geteuid(), HOW_TO_CHOOSE))
    try:
        if gid is not None:
            os.chown(directory, -1, gid)
        os.chmod(directory, 0o710 if gid is not None else 0o700)
    except OSError as exc:
        raise ControlError("cannot set the permissions of %s: %s" % (directory, exc.strerror or exc)) from None


def _chosen_dir(directory: str, gid):
    """A directory the user chose: create it if missing; refuse one that others could write."""
    if not os.path.isdir(directory):
        try:
            os.makedirs(directory, 0o700)
            if gid is not None:  # the group must be able to reach the socket
                os.chown(directory, -1, gid)
                os.chmod(directory, 0o710)
        except OSError as exc:
            raise ControlError("cannot create the control socket directory %s: %s"
                               % (directory, exc.strerror or exc)) from None
    info = os.stat(directory)
    if info.st_uid not in (0, os.geteuid()):
        raise ControlError("the control socket directory %s belongs to uid %d; choose a directory owned by "
                           "you or root" % (directory, info.st_uid))
    if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
        raise ControlError("the control socket directory %s can be written by other users (mode %03o), who "
                           "could replace the socket; choose a directory only its owner can write (for "
                           "example: mkdir -m 700 DIR)" % (directory, stat.S_IMODE(info.st_mode)))


def peer_credentials(sock):
    """(pid, uid, gid) of the other end (SO_PEERCRED)."""
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", data)


def peer_groups(conn):
    """Supplementary groups of the peer (SO_PEERGROUPS, Linux >= 4.13); () when unknown or more than 256."""
    try:
        data = conn.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, 1024)  # the most Python allows
    except OSError:
        return ()
    return struct.unpack("%dI" % (len(data) // 4), data[:len(data) // 4 * 4])


def permitted(conn, uid: int, gid: int, own_uid: int, control_gid) -> bool:
    """May the peer (uid, gid) of conn use the socket: root, our own uid, or a control_group member."""
    if uid in (0, own_uid):
        return True
    if control_gid is None:
        return False
    if gid == control_gid or control_gid in peer_groups(conn):
        return True
    try:
        import grp
        import pwd
        return pwd.getpwuid(uid).pw_name in grp.getgrgid(control_gid).gr_mem
    except (KeyError, OSError):
        return False


def _describe_pid(pid: int) -> str:
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            words = handle.read().split(b"\0")
    except OSError:
        return "another process (pid %d)" % pid if pid else "another process"
    if any(b"pysuper" in word for word in words[:3]):
        return "another pysuper (pid %d)" % pid
    return "another process (pid %d: %s)" % (pid, b" ".join(words).decode(errors="replace").strip())


def _live_owner(path: str):
    """Who listens on the socket at path: a description, or None when it is stale."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
    except PermissionError:
        return "a process of another user (the socket is not ours to probe)"
    except (socket.timeout, BlockingIOError):
        return "another process (it does not accept connections quickly)"
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return None
        return "another process (%s)" % (exc.strerror or exc)
    else:
        try:
            return _describe_pid(peer_credentials(probe)[0])
        except OSError:
            return "another process"
    finally:
        probe.close()


def bind(path: str, origin: str, gid=None):
    """A listening, non-blocking socket at path, created 0600 (0660 and group gid with a group)."""
    if len(os.fsencode(path)) > MAX_PATH:
        raise ControlError("the control socket path %s is %d bytes long, more than the %d a Unix socket "
                           "allows; %s" % (path, len(os.fsencode(path)), MAX_PATH, HOW_TO_CHOOSE))
    directory = os.path.dirname(path)
    if origin == "default":
        _private_dir(directory, gid)
    else:
        _chosen_dir(directory, gid)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    if info is not None:
        if not stat.S_ISSOCK(info.st_mode):
            raise ControlError("%s exists and is not a socket; remove it or %s" % (path, HOW_TO_CHOOSE))
        owner = _live_owner(path)
        if owner is not None:
            raise ControlError("%s is already listening on the control socket %s; to run this pysuper "
                               "beside it, %s" % (owner, path, HOW_TO_CHOOSE))
        try:
            os.unlink(path)  # stale: left behind by a pysuper that is gone
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise ControlError("cannot remove the stale control socket %s: %s" % (path, exc.strerror)) from None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        sock.bind(path)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ControlError("another process took the control socket %s just now; %s"
                               % (path, HOW_TO_CHOOSE)) from None
        raise ControlError("cannot create the control socket %s: %s; %s"
                           % (path, exc.strerror or exc, HOW_TO_CHOOSE)) from None
    finally:
        os.umask(old_umask)
    try:
        if gid is not None:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        unlink_quietly(path)
        raise ControlError("cannot set up the control socket %s: %s" % (path, exc.strerror or exc)) from None
    return sock


def unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass
