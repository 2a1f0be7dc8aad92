"""A small program for the orchestration tests (run as a script, not collected as tests).

    app.py tcp PORT [GO]     listen on PORT (once the file GO exists), accept and close
    app.py http PORT [GO]    answer GET with 200 (once GO exists); SIGUSR1: stop answering (hang)
    app.py log [GO]          print "listening on 4000" (once GO exists)
    app.py notify GO         sd_notify STATUS=warming up; once GO exists READY=1 and STATUS=serving
    app.py exit CODE         print "migrating" and exit with CODE
    app.py sleep             print "up" and sleep
Each prints "waiting for go" before it waits for GO, so a test knows when the program is there.
"""

import http.server
import os
import signal
import socket
import sys
import threading
import time


def wait_for(path):
    if path:
        print("waiting for go", flush=True)
        while not os.path.exists(path):
            time.sleep(0.01)
        print("go seen", flush=True)


def notify(message):
    path = os.environ["NOTIFY_SOCKET"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), path)


def main(argv):
    mode = argv[0]
    rest = argv[2:] if mode in ("tcp", "http") else argv[1:]
    go = rest[0] if rest else None
    if mode == "exit":
        print("migrating", flush=True)
        sys.exit(int(argv[1]))
    if mode == "notify":
        notify("STATUS=warming up")
        print("status sent", flush=True)
        wait_for(go)
        notify("READY=1\nSTATUS=serving")
    elif mode == "tcp":
        wait_for(go)
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(argv[1])))
        server.listen(16)
        print("listening", flush=True)
        while True:
            server.accept()[0].close()
    elif mode == "http":
        wait_for(go)
        hung = threading.Event()
        signal.signal(signal.SIGUSR1, lambda *_: hung.set())

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if hung.is_set():
                    time.sleep(3600)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        http.server.ThreadingHTTPServer.allow_reuse_address = True
        server = http.server.ThreadingHTTPServer(("127.0.0.1", int(argv[1])), Handler)
        server.daemon_threads = True
        print("listening", flush=True)
        server.serve_forever()
    elif mode == "log":
        wait_for(go)
        print("listening on 4000", flush=True)
    else:
        print("up", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(sys.argv[1:])
