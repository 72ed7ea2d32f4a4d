"""Issue 9 test 1: one UDP scenario, run with and without libbypass.so in the server
namespace; it prints one JSON line of answers, and the two runs must print the same.

    udp_scenario.py SERVER_IP CLIENT_IP ECHO_PORT BASE_PORT

The peer (udp_peer.py, kernel, client namespace) echoes every datagram to its sender, and
on "!blast N PORT" sends N 64-byte datagrams to PORT, on "!sizes A,B,C PORT" datagrams of
those sizes.  recvmmsg/sendmmsg come from libc through ctypes (python has neither), so the
preloaded library serves them as it would a C program."""

import ctypes
import errno
import fcntl
import json
import os
import select
import socket
import struct
import sys
import termios
import time

SRV, CLI, ECHO, BASE = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
PEER = (CLI, ECHO)
SO_TIMESTAMP, SO_TIMESTAMPNS, SO_TIMESTAMPING = 29, 35, 37
SO_TIMESTAMP_NEW, SO_TIMESTAMPNS_NEW, SO_TIMESTAMPING_NEW = 63, 64, 65   # 64-bit time
SOF_RX_SOFTWARE, SOF_SOFTWARE = 1 << 3, 1 << 4
SO_RXQ_OVFL = 40
IP_PKTINFO = 8
MSG_WAITFORONE = 0x10000
out = {}
SOCKS = []
# The process's global scope (dlopen(NULL)), where a preloaded library's definitions come
# first; a handle on libc.so.6 itself would reach libc's own functions.
libc = ctypes.CDLL(None, use_errno=True)


def udp(port=None, addr="0.0.0.0"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if port is not None:
        s.bind((addr, port))
    s.settimeout(10)
    SOCKS.append(s)
    return s


def cmd(s, text):
    s.sendto(text.encode(), PEER)


def drain_ready(s, n, timeout=10.0):
    """Waits until @n datagrams can be read without blocking (FIONREAD says one is there)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], 0.2)
        if r:
            return True
    return False


# 1. unconnected echo on a bound socket
a = udp(BASE + 1)
a.sendto(b"hello", PEER)
data, addr = a.recvfrom(100)
out["echo"] = [data.decode(), list(addr)]

# 2. connected socket: connect decides, send/recv, getpeername
b = udp()
b.connect(PEER)
b.send(b"connected")
out["connected"] = [b.recv(100).decode(), list(b.getpeername()), b.getsockname()[0]]

# 3. first sendto on an unbound socket
c = udp()
c.sendto(b"unbound", PEER)
data, addr = c.recvfrom(100)
out["unbound"] = [data.decode(), list(addr), c.getsockname()[1] != 0]


# 4. sendmmsg + recvmmsg (MSG_WAITFORONE) through libc
class iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32),
                ("iov", ctypes.POINTER(iovec)), ("iovlen", ctypes.c_size_t),
                ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


class mmsghdr(ctypes.Structure):
    _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint)]


def mmsg(n, payloads=None, size=2048, dest=None):
    vec = (mmsghdr * n)()
    bufs, iovs, names = [], [], []
    for i in range(n):
        if payloads is not None:
            buf = ctypes.create_string_buffer(payloads[i], len(payloads[i]))
            ln = len(payloads[i])
        else:
            buf = ctypes.create_string_buffer(size)
            ln = size
        iov = iovec(ctypes.cast(buf, ctypes.c_void_p), ln)
        bufs.append(buf)
        iovs.append(iov)
        vec[i].hdr.iov = ctypes.pointer(iov)
        vec[i].hdr.iovlen = 1
        if dest is not None:
            sa = ctypes.create_string_buffer(
                struct.pack("=H", socket.AF_INET) + struct.pack("!H4s8x", dest[1],
                                                                socket.inet_aton(dest[0])), 16)
            names.append(sa)
            vec[i].hdr.name = ctypes.cast(sa, ctypes.c_void_p)
            vec[i].hdr.namelen = 16
    return vec, bufs, iovs, names


d = udp(BASE + 2)
payloads = [("batch%d" % i).encode() for i in range(8)]
v, bufs, iovs, names = mmsg(8, payloads, dest=PEER)
sent = libc.sendmmsg(d.fileno(), v, 8, 0)
out["sendmmsg"] = sent
got = []
deadline = time.monotonic() + 10
while len(got) < 8 and time.monotonic() < deadline:
    # python's socket with a timeout is non-blocking underneath: wait for readability
    select.select([d], [], [], 10)
    rv, rbufs, riovs, _ = mmsg(8)
    n = libc.recvmmsg(d.fileno(), rv, 8, MSG_WAITFORONE, None)
    if n < 0:
        if ctypes.get_errno() == errno.EAGAIN:
            continue
        out["recvmmsg_errno"] = ctypes.get_errno()
        break
    for i in range(n):
        got.append(rbufs[i].raw[:rv[i].len].decode())
out["recvmmsg"] = got
if os.environ.get("UDP_SCENARIO_DEBUG"):
    print("recvmmsg got %r fionread %r" % (got, fcntl.ioctl(d.fileno(), termios.FIONREAD, struct.pack("i", 0))), file=sys.stderr)

# 5. MSG_TRUNC (flag in the call and in msg_flags), MSG_PEEK, FIONREAD
e = udp(BASE + 3)
cmd(e, "!sizes 100,50,60,70 %d" % (BASE + 3))
drain_ready(e, 1)
time.sleep(0.5)
buf = bytearray(10)
out["fionread"] = struct.unpack("i", fcntl.ioctl(e.fileno(), termios.FIONREAD,
                                                 struct.pack("i", 0)))[0]
out["peek"] = len(e.recv(200, socket.MSG_PEEK))
out["trunc_ret"] = e.recv_into(buf, 10, socket.MSG_TRUNC)
data, anc, flags, addr = e.recvmsg(20)
out["msg_flags_trunc"] = [len(data), bool(flags & socket.MSG_TRUNC)]
out["after"] = [len(e.recv(200)), len(e.recv(200))]

# 6. IP_PKTINFO
f = udp(BASE + 4)
f.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
cmd(f, "!sizes 10 %d" % (BASE + 4))
data, anc, flags, addr = f.recvmsg(100, 256)
pk = [struct.unpack("i4s4s", d)[0:3] for (lvl, typ, d) in anc
      if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO]
out["pktinfo"] = [[p[0], socket.inet_ntoa(p[1]), socket.inet_ntoa(p[2])] for p in pk]

# 7. timestamps: present, in CLOCK_REALTIME, monotonic
g = udp(BASE + 5)
ts_ok = {}
for name, opt, val, typ in (("ns", SO_TIMESTAMPNS, 1, SO_TIMESTAMPNS),
                            ("us", SO_TIMESTAMP, 1, SO_TIMESTAMP),
                            ("ing", SO_TIMESTAMPING, SOF_RX_SOFTWARE | SOF_SOFTWARE,
                             SO_TIMESTAMPING),
                            ("ns_new", SO_TIMESTAMPNS_NEW, 1, SO_TIMESTAMPNS_NEW),
                            ("us_new", SO_TIMESTAMP_NEW, 1, SO_TIMESTAMP_NEW),
                            ("ing_new", SO_TIMESTAMPING_NEW, SOF_RX_SOFTWARE | SOF_SOFTWARE,
                             SO_TIMESTAMPING_NEW)):
    g.setsockopt(socket.SOL_SOCKET, opt, val)
    cmd(g, "!sizes 20,20,20,20,20 %d" % (BASE + 5))
    stamps = []
    for i in range(5):
        data, anc, flags, addr = g.recvmsg(100, 256)
        for lvl, t, d in anc:
            if lvl == socket.SOL_SOCKET and t == typ:
                if name.startswith("us"):
                    sec, usec = struct.unpack("qq", d[:16])
                    stamps.append(sec + usec / 1e6)
                else:
                    sec, nsec = struct.unpack("qq", d[:16])
                    stamps.append(sec + nsec / 1e9)
    now = time.time()
    ts_ok[name] = [len(stamps), stamps == sorted(stamps),
                   all(abs(now - s) < 30 for s in stamps)]
    g.setsockopt(socket.SOL_SOCKET, opt, 0)
out["timestamps"] = ts_ok

# 8. SO_RCVBUF overflow counted exactly by SO_RXQ_OVFL
h = udp(BASE + 6)
h.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
h.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
N = 400
cmd(h, "!blast %d %d" % (N, BASE + 6))
time.sleep(2)
h.setblocking(False)
queued = 0
while True:
    try:
        h.recv(100)
        queued += 1
    except BlockingIOError:
        break
h.setblocking(True)
h.settimeout(10)
cmd(h, "!sizes 5 %d" % (BASE + 6))
data, anc, flags, addr = h.recvmsg(100, 256)
drops = [struct.unpack("I", d[:4])[0] for lvl, t, d in anc
         if lvl == socket.SOL_SOCKET and t == SO_RXQ_OVFL]
dropped = drops[0] if drops else 0
out["overflow"] = {"some_dropped": dropped > 0, "some_queued": queued > 0,
                   "exact": queued + dropped == N}
if os.environ.get("UDP_SCENARIO_DEBUG"):
    print("overflow queued %d dropped %d" % (queued, dropped), file=sys.stderr)

# 9. non-blocking EAGAIN, SO_RCVTIMEO
i_ = udp(BASE + 7)
i_.setblocking(False)
try:
    i_.recv(10)
    out["eagain"] = False
except BlockingIOError:
    out["eagain"] = True
i_.setblocking(True)
i_.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
t0 = time.monotonic()
try:
    i_.recv(10)
    out["rcvtimeo"] = "data"
except OSError as ex:
    out["rcvtimeo"] = [errno.errorcode.get(ex.errno, ex.errno), time.monotonic() - t0 >= 0.15]

# 10. the kernel path: loopback into an accelerated socket, and poll/select readiness of both
lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
lo.sendto(b"via-loopback", ("127.0.0.1", BASE + 1))
r, _, _ = select.select([a], [], [], 10)
out["select_loopback"] = bool(r)
data, addr = a.recvfrom(100)
out["loopback"] = [data.decode(), addr[0]]
p = select.poll()
p.register(a.fileno(), select.POLLIN)
out["poll_empty"] = p.poll(0)
a.sendto(b"again", PEER)
ev = p.poll(10000)
out["poll_ready"] = [e_ & select.POLLIN != 0 for _, e_ in ev]
out["echo2"] = a.recv(100).decode()

# 10b. an accelerated socket sending to loopback: through the kernel socket underneath
lr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
lr.bind(("127.0.0.1", BASE + 8))
lr.settimeout(10)
a.sendto(b"to-loopback", ("127.0.0.1", BASE + 8))
data, addr = lr.recvfrom(100)
out["to_loopback"] = [data.decode(), addr[1] == BASE + 1]
lr.close()

# 11. EMSGSIZE above 65507; a 9000-byte datagram (fragmented) out and back
try:
    a.sendto(b"x" * 65508, PEER)
    out["emsgsize"] = False
except OSError as ex:
    out["emsgsize"] = errno.errorcode.get(ex.errno)
big = bytes(range(256)) * 35
a.sendto(big, PEER)
data = a.recv(65536)
out["big_echo"] = data == big

for s in SOCKS + [lo]:
    s.close()
print(json.dumps(out, sort_keys=True))
