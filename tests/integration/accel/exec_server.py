"""inetd-style: accept, fork, and in the child put the connection on stdin/stdout and exec
@argv[3:] (the connection crosses exec); the parent closes its copy.  Before the exec the
child reads the first @argv[2] bytes itself (so the handover carries a partly read
stream).  Prints "ready".  argv: port prefix_bytes command..."""
import os
import signal
import socket
import sys

port, prefix, cmd = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("0.0.0.0", port))
lsock.listen(64)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # children are reaped by the kernel
print("ready", flush=True)
while True:
    conn, _ = lsock.accept()
    pid = os.fork()
    if pid == 0:
        lsock.close()
        got = b""
        while len(got) < prefix:
            b = conn.recv(prefix - len(got))
            if not b:
                os._exit(1)
            got += b
        conn.sendall(got)          # echo the prefix ourselves
        os.dup2(conn.fileno(), 0)
        os.dup2(conn.fileno(), 1)
        conn.close()
        os.execvp(cmd[0], cmd)
    conn.close()
