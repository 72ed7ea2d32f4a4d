"""splice(2) with an accelerated TCP connection at one end (HAProxy's "option splice-*"):
the same answers as the kernel's, and 1 MB through a pipe and back intact.  The kernel socket
under an accelerated connection is not connected: its splice said ENOTCONN, and HAProxy cut
its responses short."""
import hashlib
import json
import os

from .conftest import PYTHON, assert_bypassed, json_exchange, write_conf

PORT = 7350

SERVER = r"""
import errno, fcntl, json, os, socket, sys, termios, time
F_SETPIPE_SZ = 1031
port = int(sys.argv[1])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
fd = c.fileno()
r, w = os.pipe()
NB = os.SPLICE_F_NONBLOCK

def err(f):
    try:
        return f()
    except OSError as e:
        return errno.errorcode[e.errno]

out = {}
# Nothing has come yet.
c.setblocking(False)
out["sock_empty"] = err(lambda: os.splice(fd, w, 4096, flags=NB))
out["pipe_empty"] = err(lambda: os.splice(r, fd, 4096, flags=NB))
out["sock_offset"] = err(lambda: os.splice(fd, w, 10, offset_src=0))
out["pipe_offset"] = err(lambda: os.splice(fd, w, 10, offset_dst=0))
out["sock_to_sock"] = err(lambda: os.splice(fd, fd, 10))
out["pipe_read_end"] = err(lambda: os.splice(fd, r, 10))
out["zero"] = err(lambda: os.splice(fd, w, 0))
c.setblocking(True)
c.sendall(b"1")
while True:                       # the client's ten bytes, all here
    n = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    if int.from_bytes(n, "little") >= 10:
        break
    time.sleep(0.01)
# A full pipe (one page): SPLICE_F_NONBLOCK says EAGAIN and the bytes stay in the socket.
fcntl.fcntl(w, F_SETPIPE_SZ, 4096)
os.write(w, b"p" * 4096)
out["pipe_full"] = err(lambda: os.splice(fd, w, 10, flags=NB))
os.read(r, 4096)
out["part"] = [os.splice(fd, w, 4), os.read(r, 100).decode()]
out["rest"] = [os.splice(fd, w, 100), os.read(r, 100).decode()]
fcntl.fcntl(w, F_SETPIPE_SZ, 65536)
# 1 MB from the client, back through the pipe, until its end of stream.
c.sendall(b"2")
total = calls = 0
while True:
    n = os.splice(fd, w, 65536)
    if n == 0:
        break
    total += n
    calls += 1
    while n > 0:
        n -= os.splice(r, fd, n)
out["echoed"] = total
out["eof_again"] = os.splice(fd, w, 100)
c.shutdown(socket.SHUT_WR)
c.recv(1)
print(json.dumps(out), flush=True)
"""

CLIENT = r"""
import hashlib, json, os, socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
assert s.recv(1) == b"1"
s.sendall(b"0123456789")
assert s.recv(1) == b"2"
data = os.urandom(1 << 20)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = bytearray()
while True:
    d = s.recv(65536)
    if not d:
        break
    got += d
s.close()
print(json.dumps({"sent": hashlib.sha256(data).hexdigest(), "back": hashlib.sha256(got).hexdigest(),
                  "n": len(got)}))
"""


def test_splice_answers_and_echo_match_kernel(netpair):
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    results = {}
    for mode, c in (("kernel", None), ("accel", conf)):
        before = net.tcp_segs("server")
        srv, cli = json_exchange(net, SERVER, CLIENT, PORT, conf=c, name="splice-" + mode)
        cli = json.loads(cli.strip().splitlines()[-1])
        assert cli["sent"] == cli["back"] and cli["n"] == 1 << 20, (mode, cli)
        results[mode] = srv
        if mode == "accel":
            assert_bypassed(before, net.tcp_segs("server"), 700, "1 MB spliced back")
    k, a = results["kernel"], results["accel"]
    assert k["sock_empty"] == "EAGAIN" and k["part"] == [4, "0123"], k
    assert a == k, (a, k)
