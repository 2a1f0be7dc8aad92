"""The sd_notify socket: programs with `ready = { notify = true }` tell pysuper when they are ready.

One Unix datagram socket of pysuper's own serves every such program; its path is NOTIFY_SOCKET in
their environment. The kernel attaches the sender's pid to each datagram (SO_PASSCRED /
SCM_CREDENTIALS), and a datagram counts only when its sender is a program's process or one of that
process's descendants, alive when the datagram is read. `READY=1` makes the program ready; the last
`STATUS=...` text is kept for `ctl status`. Other assignments (MAINPID, WATCHDOG, ...) are ignored.

A sender that exits at once after sending (a `systemd-notify` run by a shell script) may be gone
before pysuper reads its datagram, and is then ignored (systemd has the same race): send from the
program's own process, or from a helper that stays alive until the program has read an answer.
"""

import os
import socket
import struct
from typing import Callable, Dict, Optional

from pysuper import osproc

MESSAGE_LIMIT = 4096
CREDENTIALS = struct.Struct("3i")  # struct ucred: pid, uid, gid


def default_directory() -> str:
    return os.environ.get("TMPDIR") or "/tmp"


class Notifier:
    """Receives sd_notify datagrams and routes them to programs by the sender's process tree."""

    def __init__(self, loop, log: Callable[[str], None], directory: Optional[str] = None):
        self.loop = loop
        self.log = log
        name = "pysuper-notify-%d-%s.sock" % (os.getpid(), os.urandom(4).hex())
        self.path = os.path.join(directory or default_directory(), name)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self.sock.setblocking(False)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            self.sock.bind(self.path)
            # Programs may run as other users; who may send is decided by the sender's pid, not here.
            os.chmod(self.path, 0o666)
        except OSError:
            self.sock.close()
            raise
        self.programs: Dict[str, Callable[[], Optional[int]]] = {}  # name -> its current pid
        self.status: Dict[str, str] = {}  # name -> the last STATUS= text
        self._ready: Dict[str, Callable[[], None]] = {}
        self._cached = None  # one /proc scan per loop round
        loop.add_reader(self.sock.fileno(), self._receive)

    def environment(self) -> Dict[str, str]:
        return {"NOTIFY_SOCKET": self.path}

    def attach(self, name: str, pid: Callable[[], Optional[int]]):
        """Accept datagrams from the process tree of `name`; pid() gives its current main pid."""
        self.programs[name] = pid

    def detach(self, name: str):
        self.programs.pop(name, None)
        self._ready.pop(name, None)
        self.status.pop(name, None)

    def expect_ready(self, name: str, callback: Optional[Callable[[], None]]):
        """callback() at the next READY=1 from `name` (once); None: no longer waiting."""
        if callback is None:
            self._ready.pop(name, None)
        else:
            self._ready[name] = callback

    def _receive(self):
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(MESSAGE_LIMIT, socket.CMSG_SPACE(CREDENTIALS.size))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            sender = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(value) >= 12:
                    sender = CREDENTIALS.unpack(value[:CREDENTIALS.size])[0]
            self._handle(sender, data)

    def _handle(self, sender: Optional[int], data: bytes):
        name = self.owner(sender) if sender else None
        if name is None:
            self.log("notify: ignored a message from pid %s: not a process of a program with "
                     "ready = { notify = true } (or it exited before it was read)" % sender)
            return
        ready = False
        for line in data.decode("utf-8", "replace").split("\n"):
            key, _, value = line.partition("=")
            if key == "STATUS":
                self.status[name] = value
            elif key == "READY" and value == "1":
                ready = True
        if ready:
            callback = self._ready.pop(name, None)
            if callback is not None:
                callback()

    def owner(self, pid: int) -> Optional[str]:
        """The attached program whose process is pid or an ancestor of pid, or None."""
        roots = {}
        for name, main_pid in self.programs.items():
            current = main_pid()
            if current is not None:
                roots[current] = name
        if pid in roots:
            return roots[pid]
        if not roots:
            return None
        for root, name in roots.items():
            if any(child == pid for child, _ in osproc.descendants(root, self._table())):
                return name
        return None

    def _table(self):
        if self._cached is None:
            self._cached = osproc.process_table()
            self.loop.call_soon(self._forget)
        return self._cached

    def _forget(self):
        self._cached = None

    def close(self):
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
