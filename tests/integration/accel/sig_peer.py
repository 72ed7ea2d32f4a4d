"""The kernel peer of sigcall.c (issue 12), run in the client namespace.

    sig_peer.py OP SENDS SERVER_IP PORT PEER_IP PEER_PORT GO_FILE

Opens connection B (SENDS=1) and A to sigcall's listener, or for OP=connect listens on
PEER_PORT with a full accept queue (SYNs dropped until it accepts); waits for GO_FILE,
then 0.9 s, then acts: connects (accept), sends one byte (recv, epoll, poll, select,
storm), reads (send), or accepts (connect; until GO_FILE.done appears).  Prints "peer b=N" with the bytes that came
on B (what sigcall's handler sent).
"""
import os
import socket
import sys
import time

op, sends, srv, port, me, pport, go = sys.argv[1:8]
sends, port, pport = int(sends), int(port), int(pport)


def conn():
    return socket.create_connection((srv, port), timeout=30)


lst = filler = None
b = a = None
if op == "connect":
    lst = socket.socket()
    lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lst.bind((me, pport))
    lst.listen(0)
    filler = socket.create_connection((me, pport), timeout=5)   # fills the accept queue
    if sends:
        b = conn()
    print("ready", flush=True)
else:
    if sends or op == "storm":
        b = conn()
        time.sleep(0.2)
    if op != "accept":
        a = conn()
    print("ready", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("no go")
    time.sleep(0.02)
time.sleep(2.0 if op == "storm" else 0.5)

extra = []
if op == "accept":
    try:
        a = conn()
    except OSError:    # interrupted without SA_RESTART: the program may be gone already
        pass
elif op == "send":
    a.settimeout(30)
    got = 0
    while True:
        d = a.recv(1 << 20)
        if not d:
            break
        got += len(d)
    extra.append("a=%d" % got)
elif op == "connect":
    # Accept the filler, then sigcall's connection if it comes: it resumes (SA_RESTART) or
    # goes on in the background after EINTR.  Stop when sigcall has ended (GO_FILE.done).
    lst.settimeout(0.05)
    accepted, end = 0, time.monotonic() + 10
    while accepted < 2 and time.monotonic() < end:
        try:
            lst.accept()
            accepted += 1
        except socket.timeout:
            if os.path.exists(go + ".done"):
                break
else:
    a.sendall(b"x")

nb = 0
if b is not None:
    b.settimeout(30)
    while True:
        d = b.recv(65536)
        if not d:
            break
        nb += len(d)
print("peer b=%d %s" % (nb, " ".join(extra)), flush=True)
time.sleep(0.2)
