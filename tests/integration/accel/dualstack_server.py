"""A dual-stack TCP server, as node, Go and Java servers listen by default: one AF_INET6
socket on "::" with IPV6_V6ONLY off, which takes IPv4 clients as ::ffff:a.b.c.d.

    dualstack_server.py PORT N

Serves N connections one after another: for each, prints one JSON line with what the
program sees of it (accept's address, getsockname, getpeername, the fd's family and
SO_DOMAIN), then echoes until the client's end of file.  The (N+1)th connection is handed
to `cat` inetd-style (dup2 on stdin/stdout, exec), which echoes it to the end.  Prints
"ready" once listening.
"""
import json
import os
import socket
import sys

port, n = int(sys.argv[1]), int(sys.argv[2])
ls = socket.create_server(("", port), family=socket.AF_INET6, dualstack_ipv6=True)
print("ready", flush=True)
for i in range(n):
    c, addr = ls.accept()
    print(json.dumps({
        "accept": list(addr), "sockname": list(c.getsockname()),
        "peername": list(c.getpeername()), "family": int(c.family),
        "domain": c.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN),
        "v6only": c.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
    }), flush=True)
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()
c, _ = ls.accept()
ls.close()
os.dup2(c.fileno(), 0)
os.dup2(c.fileno(), 1)
c.close()
os.execvp("cat", ["cat"])
