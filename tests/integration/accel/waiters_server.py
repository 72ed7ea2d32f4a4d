"""A listener and forked children that each block in one call on it, for ever: "accept"
(a blocking accept), "epoll" (epoll_wait with no timeout), "poll" (poll with no timeout).
Prints "ready PID..." with the children's pids in the order of the kinds given, then waits
for them, and then for a signal (the listener stays open).  argv: host port kind...  A child that gets a connection echoes it and blocks again."""
import os
import select
import signal
import socket
import sys


from prefork_server import echo   # beside this file


def serve_one(lsock):
    echo(lsock.accept()[0])


def child(lsock, kind):
    while True:
        if kind == "accept":
            serve_one(lsock)
        elif kind == "epoll":
            ep = select.epoll()
            ep.register(lsock.fileno(), select.EPOLLIN)
            ep.poll(-1)
            ep.close()
            serve_one(lsock)
        else:
            p = select.poll()
            p.register(lsock.fileno(), select.POLLIN)
            p.poll()
            serve_one(lsock)


def main():
    host, port, kinds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(128)
    pids = []
    for kind in kinds:
        pid = os.fork()
        if pid == 0:
            try:
                child(lsock, kind)
            finally:
                os._exit(0)
        pids.append(pid)
    print("ready " + " ".join(map(str, pids)), flush=True)
    for pid in pids:
        os.waitpid(pid, 0)
    signal.pause()


if __name__ == "__main__":
    main()
