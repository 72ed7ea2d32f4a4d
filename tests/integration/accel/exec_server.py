"""inetd-style: accept, read and echo the first @prefix bytes of the connection (so the
handover carries a partly read stream), then run @command with the connection on its stdin
and stdout, and close this copy.  Prints "ready".

    exec_server.py fork PORT PREFIX COMMAND...    fork; the child dup2s and execs
    exec_server.py spawn PORT PREFIX COMMAND...   posix_spawn with dup2 file actions (the
                                                  connection's own fd is close-on-exec)
    exec_server.py system PORT PREFIX COMMAND...  system("... COMMAND <&FD >&FD") in a
                                                  thread, the connection's fd inheritable
    exec_server.py popen PORT PREFIX COMMAND...   the same through libc's popen() and pclose()
"""
import ctypes
import os
import signal
import socket
import sys
import threading

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


libc = ctypes.CDLL(None)   # the process's popen: the library's, when preloaded
libc.popen.restype = ctypes.c_void_p
libc.popen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.pclose.argtypes = [ctypes.c_void_p]


def through_shell(conn):
    fd = conn.fileno()
    # dash (/bin/sh) takes only one-digit fds in redirections: bash does the redirection.
    line = "exec bash -c 'exec %s <&%d >&%d'" % (" ".join(cmd), fd, fd)
    if mode == "system":
        os.system(line)
    else:
        libc.pclose(libc.popen(line.encode(), b"r"))
    conn.close()


while True:
    conn, _ = lsock.accept()
    if mode in ("system", "popen"):
        if echo_prefix(conn):
            os.set_inheritable(conn.fileno(), True)
            threading.Thread(target=through_shell, args=(conn,), daemon=True).start()
            continue
    elif mode == "spawn":
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
