"""inetd-style: accept, read and echo the first @prefix bytes of the connection (so the
handover carries a partly read stream), then run @command with the connection on its stdin
and stdout, and close this copy.  Prints "ready".

    exec_server.py fork PORT PREFIX COMMAND...    fork; the child dup2s and execs
    exec_server.py spawn PORT PREFIX COMMAND...   posix_spawn with dup2 file actions (the
                                                  connection's own fd is close-on-exec)
"""
import os
import signal
import socket
import sys

mode, port, prefix, cmd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("0.0.0.0", port))
lsock.listen(64)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
print("ready", flush=True)


def echo_prefix(conn):
    got = b""
    while len(got) < prefix:
        b = conn.recv(prefix - len(got))
        if not b:
            return False
        got += b
    conn.sendall(got)
    return True


while True:
    conn, _ = lsock.accept()
    if mode == "spawn":
        if echo_prefix(conn):
            os.posix_spawnp(cmd[0], cmd, os.environ,
                            file_actions=[(os.POSIX_SPAWN_DUP2, conn.fileno(), 0),
                                          (os.POSIX_SPAWN_DUP2, conn.fileno(), 1)])
    elif os.fork() == 0:
        lsock.close()
        if not echo_prefix(conn):
            os._exit(1)
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        conn.close()
        os.execvp(cmd[0], cmd)
    conn.close()
