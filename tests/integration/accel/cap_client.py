"""Holds many connections to an echo server (issue 12, capacity), kernel side.

    cap_client.py HOST PORT N GO_FILE

Opens N connections one after the other; each echoes one message right away.  A
connection the server refuses (reset, or closed) is counted as refused, one that takes
longer than 10 s as timed out.  Prints "open O refused R timeout T", then waits for
GO_FILE, echoes once more on every open connection, prints "echo-ok K bad B" and closes
them all.
"""
import os
import resource
import socket
import struct
import sys
import time

host, port, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def echo(s, i):
    msg = b"c%06d" % i
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        d = s.recv(len(msg) - len(got))
        if not d:
            raise ConnectionResetError("closed")
        got += d
    return got == msg


socks, refused, timeout = [], 0, 0
for i in range(n):
    s = socket.socket()
    s.settimeout(10)
    try:
        s.connect((host, port))
        if not echo(s, i):
            raise ConnectionResetError("wrong echo")
        socks.append((i, s))
    except socket.timeout:
        timeout += 1
        s.close()
    except OSError:
        refused += 1
        s.close()
print("open %d refused %d timeout %d" % (len(socks), refused, timeout), flush=True)
deadline = time.monotonic() + 600
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.1)
ok = bad = 0
for i, s in socks:
    try:
        if echo(s, i):
            ok += 1
        else:
            bad += 1
    except OSError as e:
        bad += 1
        # Which connection, what error, when: for the test's failure message.
        # TCP_INFO tells whether the server's stack acknowledged the message (unacked 0).
        ti = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        st, retrans = ti[0], ti[2]
        rto, unacked, last_recv = struct.unpack_from("<I", ti, 8)[0], \
            struct.unpack_from("<I", ti, 24)[0], struct.unpack_from("<I", ti, 56)[0]
        print("bad echo on connection %d (%s:%d): %r at %.3f: state %d retransmits %d "
              "rto %d us unacked %d last data received %d ms ago" %
              (i, *s.getsockname(), e, time.monotonic(), st, retrans, rto, unacked,
               last_recv), file=sys.stderr, flush=True)
for i, s in socks:
    s.close()
print("echo-ok %d bad %d" % (ok, bad), flush=True)
time.sleep(0.5)
