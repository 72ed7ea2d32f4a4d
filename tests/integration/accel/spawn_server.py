"""posix_spawn, as a server that hands each connection to a program: accept, read and echo
the first @argv[2] bytes itself (so the handover carries a partly read stream), then
posix_spawn @argv[3:] with the connection dup2'ed onto its stdin and stdout (file actions:
the connection's own fd is close-on-exec), close its copy, and go on accepting.  Prints
"ready".  argv: port prefix_bytes command..."""
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
    got = b""
    while len(got) < prefix:
        b = conn.recv(prefix - len(got))
        if not b:
            break
        got += b
    conn.sendall(got)
    os.posix_spawnp(cmd[0], cmd, os.environ,
                    file_actions=[(os.POSIX_SPAWN_DUP2, conn.fileno(), 0),
                                  (os.POSIX_SPAWN_DUP2, conn.fileno(), 1)])
    conn.close()
