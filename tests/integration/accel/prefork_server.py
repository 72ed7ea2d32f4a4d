"""A pre-forking echo server: the parent listens, forks N workers that accept from the
shared listener and echo each connection until EOF (one at a time), then either waits for
them ("stay") or exits at once ("exit", as a daemonizing server does).  Prints
"ready PID..." with the workers' pids.  A worker ends on SIGTERM or after @life seconds.
argv: host port nworkers stay|exit life"""
import os
import signal
import socket
import sys
import time


def echo(c):
    """Echo connection @c until EOF, then close it."""
    with c:
        while True:
            data = c.recv(65536)
            if not data:
                return
            c.sendall(data)


def worker(lsock, life):
    end = time.monotonic() + life
    lsock.settimeout(0.5)
    while time.monotonic() < end:
        try:
            c, _ = lsock.accept()
        except socket.timeout:
            continue
        c.settimeout(None)
        echo(c)
    sys.exit(0)   # exit(), not _exit: the library's exit handlers run


def main():
    host, port, n, mode, life = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], \
        float(sys.argv[5])
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(128)
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
            worker(lsock, life)
        pids.append(pid)
    print("ready " + " ".join(map(str, pids)), flush=True)
    if mode == "exit":
        sys.exit(0)
    for pid in pids:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    main()
