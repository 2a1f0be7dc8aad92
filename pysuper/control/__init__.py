"""The control socket, by concern (import the module you need; this package imports nothing):

    paths     where the socket lives and the protocol version: all that `pysuper ctl` imports
    bind      creating the socket: directories, permissions, stale sockets, peer credentials
    protocol  framing and request parsing: bytes in, requests out; responses encoded (no sockets)
    server    the listening socket and its peer connections, driven by the event loop
    verbs     one function per command; each formats what the supervisor's read-only view returns
"""
