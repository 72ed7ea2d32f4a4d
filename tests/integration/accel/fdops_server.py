"""An accelerated server that exercises fd operations on its connections:
dup + close of the original (the dup keeps the connection), dup2 onto another socket,
fcntl O_NONBLOCK round trip, FIONREAD, MSG_PEEK, and os.closerange (close_range) of a dup.

    fdops_server.py PORT        prints "ready", then one line of JSON per step."""

import fcntl
import json
import os
import socket
import struct
import sys
import termios

port = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(8)
print("ready", flush=True)
res = {}

c, _ = ls.accept()
d = os.dup(c.fileno())
c.close()                                   # the dup keeps the connection open
data = os.read(d, 5)
res["read_via_dup"] = data.decode()
os.write(d, b"pong1")

other = socket.socket()
os.dup2(d, other.fileno())                  # dup2 onto a (kernel) socket's number
os.write(other.fileno(), b"pong2")
os.close(d)
res["dup2_write"] = True

ti = socket.socket(fileno=os.dup(other.fileno()))
info = ti.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
res["tcpi_state_established"] = info[0] == 1
res["tcpi_snd_mss_sane"] = 500 <= struct.unpack_from("I", info, 16)[0] <= 9000
# the connection's MSS (1448 with timestamps, 1460 without), not an unconnected socket's 536
res["maxseg_of_the_link"] = 1000 <= ti.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= 1460
os.close(ti.detach())
fl = fcntl.fcntl(other.fileno(), fcntl.F_GETFL)
fcntl.fcntl(other.fileno(), fcntl.F_SETFL, fl | os.O_NONBLOCK)
res["nonblock"] = bool(fcntl.fcntl(other.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
try:
    os.read(other.fileno(), 10)
    res["eagain"] = False
except BlockingIOError:
    res["eagain"] = True
fcntl.fcntl(other.fileno(), fcntl.F_SETFL, fl)

s2 = socket.socket(fileno=os.dup(other.fileno()))
s2.settimeout(10)
peek = s2.recv(6, socket.MSG_PEEK)
n = struct.unpack("i", fcntl.ioctl(s2.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
got = s2.recv(6)
res["peek"] = peek.decode()
res["fionread"] = n
res["after_peek"] = got.decode()
s2.sendall(b"pong3")
os.close(s2.detach())
d3 = os.dup(other.fileno())
os.closerange(d3, d3 + 1)                   # close_range on a dup: the connection stays
os.write(other.fileno(), b"pong4")
other.close()                               # last reference: FIN to the client
print(json.dumps(res), flush=True)
