"""recv flags on an accelerated connection answer as the kernel's TCP, side by side:
MSG_TRUNC discards what it counts (the buffer may be NULL), with MSG_PEEK it only counts,
MSG_OOB with no urgent data is EINVAL, MSG_ERRQUEUE reads the (empty) error queue and never
the stream.  (The stack copied into the NULL buffer, read the stream for MSG_OOB and for
MSG_ERRQUEUE.)"""

import json

from .conftest import PYTHON, SRV_IF, assert_bypassed, write_conf

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
print("client ok")
"""


def scenario(net, conf):
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT], name="recvflags", conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT], timeout=60)
    assert cp.returncode == 0 and "client ok" in cp.stdout, cp.stderr + srv.describe()
    srv.wait(20)
    return json.loads(srv.out().splitlines()[-1])


def test_recv_flags_match_kernel(netpair):
    net = netpair()
    kernel = scenario(net, None)
    assert kernel["trunc_null"] == 4 and kernel["after_trunc"] == "ghi", kernel
    conf = write_conf(net.dir / "rf.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = scenario(net, conf)
    assert_bypassed(before, net.tcp_segs("server"), 8, "the recv flags scenario", bound=5)
    assert accel == kernel, (accel, kernel)
