"""Data calls with flags and offsets on an accelerated connection, as the kernel's TCP.

recv flags, side by side:
MSG_TRUNC discards what it counts (the buffer may be NULL), with MSG_PEEK it only counts,
MSG_OOB with no urgent data is EINVAL, MSG_ERRQUEUE reads the (empty) error queue and never
the stream.  (The stack copied into the NULL buffer, read the stream for MSG_OOB and for
MSG_ERRQUEUE.)  sendfile from the file's own position on a full non-blocking connection:
the position moves by what was sent, nothing is lost."""

import hashlib
import json
import os

from .conftest import PYTHON, SRV_IF, assert_bypassed, json_exchange, write_conf

PORT = 7630

SERVER = r"""
import ctypes, errno, json, socket, sys, time
libc = ctypes.CDLL(None, use_errno=True)
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
got = b""
while len(got) < 2:                          # the first bytes, then the rest is in
    got += c.recv(2 - len(got))
time.sleep(0.3)
def call(f, *a):
    try:
        r = f(*a)
        return r.decode() if isinstance(r, bytes) else r
    except OSError as e:
        return errno.errorcode[e.errno]
def raw(n, flags):
    r = libc.recv(c.fileno(), None, ctypes.c_size_t(n), flags)
    return r if r >= 0 else errno.errorcode[ctypes.get_errno()]
res = {"first": got.decode()}
res["peek_trunc"] = raw(4, socket.MSG_PEEK | socket.MSG_TRUNC)
res["trunc_null"] = raw(4, socket.MSG_TRUNC)
res["after_trunc"] = call(c.recv, 3)
res["oob"] = call(c.recv, 1, socket.MSG_OOB)
res["errqueue"] = call(c.recvmsg, 10, 100, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
res["errqueue_recv"] = call(c.recv, 10, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
res["rest"] = call(c.recv, 100)
c.sendall(b"done")
c.close()
print(json.dumps(res, sort_keys=True), flush=True)
"""

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"ab")
s.sendall(b"cdefghijklmn")
assert s.recv(10) == b"done"
"""


def scenario(net, conf):
    """The server's answers; the client's own asserts passed (json_exchange checks its exit)."""
    return json_exchange(net, SERVER, CLIENT, PORT, conf, "recvflags")[0]


def test_recv_flags_match_kernel(netpair):
    net = netpair()
    kernel = scenario(net, None)
    assert kernel["trunc_null"] == 4 and kernel["after_trunc"] == "ghi", kernel
    conf = write_conf(net.dir / "rf.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = scenario(net, conf)
    assert_bypassed(before, net.tcp_segs("server"), 8, "the recv flags scenario", bound=5)
    assert accel == kernel, (accel, kernel)


# --- sendfile from the file's own position on a non-blocking connection ---------------------

SENDFILE_SERVER = r"""
import hashlib, os, select, socket, sys
path = sys.argv[2]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
c.setblocking(False)
f = os.open(path, os.O_RDONLY)
size = os.fstat(f).st_size
sent, eagain = 0, 0
p = select.poll(); p.register(c, select.POLLOUT)
while sent < size:
    try:
        n = os.sendfile(c.fileno(), f, None, 1 << 20)   # from the file's position
    except BlockingIOError:
        eagain += 1
        p.poll(5000)
        continue
    sent += n
c.close()
print("sent", sent, "eagain", eagain, "pos", os.lseek(f, 0, os.SEEK_CUR), flush=True)
"""

SENDFILE_CLIENT = r"""
import hashlib, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
time.sleep(0.3)                              # the server meets a full send buffer
h = hashlib.sha256()
n = 0
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    h.update(b); n += len(b)
print(n, h.hexdigest())
"""


def test_sendfile_nonblocking_keeps_file_position(netpair):
    """sendfile(out, file, NULL, n) on a non-blocking connection that is full: the kernel
    sends from the file's position and moves it by what it sent.  (The stack read the
    file, met EAGAIN and returned it with the position moved past bytes never sent: the
    stream lost them.)"""
    net = netpair()
    data = os.urandom(8 << 20)
    path = net.dir / "payload.bin"
    path.write_bytes(data)
    want = "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
    conf = write_conf(net.dir / "sf.conf", SRV_IF, [("tcp", PORT + 1)])
    for c in (None, conf):
        srv = net.spawn("server", [PYTHON, "-c", SENDFILE_SERVER, PORT + 1, path], name="sf",
                        conf=c)
        srv.wait_ready()
        before = net.tcp_segs("server")
        cp = net.run("client", [PYTHON, "-c", SENDFILE_CLIENT, net.srv_ip, PORT + 1], timeout=60)
        srv.wait(20)
        assert cp.stdout.strip() == want, (c, cp.stdout, cp.stderr, srv.describe())
        assert "eagain 0 " not in srv.out(), "the scenario never met a full buffer: " + srv.out()
        if c is not None:
            assert_bypassed(before, net.tcp_segs("server"), 5000, "the sendfile transfer")


# --- SO_RCVLOWAT --------------------------------------------------------------------------

LOWAT_SERVER = r"""
import json, select, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 100)
c.sendall(b"go")
time.sleep(0.2)                              # 50 bytes are in, under the mark
p = select.poll(); p.register(c, select.POLLIN)
res = {"poll_under": bool(p.poll(0)), "lowat": c.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)}
t = time.monotonic()
res["poll_waits"] = bool(p.poll(3000))       # readable once 50 + 60 are in
res["waited"] = time.monotonic() - t > 0.1
res["recv"] = len(c.recv(1000))
res["poll_after"] = bool(p.poll(0))
c.setblocking(False)
c.sendall(b"more")
time.sleep(0.2)                              # 30 more: a non-blocking recv takes them
res["nonblocking"] = len(c.recv(1000))
c.close()
print(json.dumps(res, sort_keys=True), flush=True)
"""

LOWAT_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
assert s.recv(10) == b"go"
s.sendall(b"a" * 50)
time.sleep(0.5)
s.sendall(b"b" * 60)
assert s.recv(10) == b"more"
s.sendall(b"c" * 30)
s.recv(10)
"""


def lowat_run(net, conf):
    return json_exchange(net, LOWAT_SERVER, LOWAT_CLIENT, PORT + 2, conf, "lowat")[0]


def test_rcvlowat_matches_kernel(netpair):
    """SO_RCVLOWAT 100: under the mark poll says nothing, over it readable; a non-blocking
    recv takes what there is.  (The stack took the option and ignored it.)  A blocking recv
    that copied part of the mark waits on here for the rest; the kernel's waits until a
    whole mark more is queued (its wake-up compares what is queued with the mark), which is
    not compared."""
    net = netpair()
    kernel = lowat_run(net, None)
    assert kernel == {"poll_under": False, "lowat": 100, "poll_waits": True, "recv": 110,
                      "waited": True, "poll_after": False, "nonblocking": 30}, kernel
    conf = write_conf(net.dir / "lowat.conf", SRV_IF, [("tcp", PORT + 2)])
    accel = lowat_run(net, conf)
    assert accel == kernel
