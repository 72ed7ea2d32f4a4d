"""shutdown() on an accelerated connection answers as the kernel's, side by side: what poll
says after each half is shut, what recv gives after SHUT_RD (the kernel keeps what is queued
and what still arrives readable, then end of file), and the half-closed connection the
server shut for writing first, through to its TIME_WAIT."""

import json

from .conftest import PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7610

SERVER = r"""
import json, select, socket, sys, time
MASK = (select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLRDHUP | select.POLLERR)
def ev(s):
    p = select.poll(); p.register(s, MASK); r = p.poll(0)
    v = r[0][1] if r else 0
    return [n for n in ("POLLIN", "POLLOUT", "POLLHUP", "POLLRDHUP", "POLLERR")
            if v & getattr(select, n)]
def wait_in(s):
    p = select.poll(); p.register(s, select.POLLIN); p.poll(5000)
def recv_nb(s):
    try:
        return s.recv(100, socket.MSG_DONTWAIT).decode()
    except BlockingIOError:
        return "EAGAIN"
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
res = {}
# 1. SHUT_RD with data queued; more data after it; then SHUT_WR as well.
c, _ = ls.accept()
wait_in(c); time.sleep(0.1)                  # "abc" is queued
c.shutdown(socket.SHUT_RD)
res["rd_poll"] = ev(c)
res["rd_recv"] = [c.recv(100).decode(), c.recv(100).decode()]
c.sendall(b"go")
time.sleep(0.3)                              # the client sends "later"
res["rd_later"] = [recv_nb(c), recv_nb(c)]
c.shutdown(socket.SHUT_WR)
res["rdwr_poll"] = ev(c)
c.close()
# 2. SHUT_WR first: the server's FIN goes out, the client still sends, then ends.
c, _ = ls.accept()
c.shutdown(socket.SHUT_WR)
res["wr_poll"] = ev(c)
try:
    c.send(b"x", socket.MSG_NOSIGNAL); res["wr_send"] = "sent"
except OSError as e:
    res["wr_send"] = e.errno
wait_in(c)
res["wr_recv"] = c.recv(100).decode()        # "bye", after the client read our FIN
res["wr_poll_data_read"] = ev(c)             # FIN_WAIT_2: the client's FIN is 0.3 s away
wait_in(c)
res["wr_eof"] = c.recv(100).decode()
res["wr_poll_end"] = ev(c)                   # TIME_WAIT: the socket is closed
c.close()
print(json.dumps(res, sort_keys=True), flush=True)
"""

CLIENT = r"""
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"abc")
assert s.recv(10) == b"go"
s.sendall(b"later")
assert s.recv(10) == b""                     # the server's SHUT_WR
s.close()
s = socket.create_connection((host, port), timeout=10)
assert s.recv(10) == b""                     # the server shut for writing at once
time.sleep(0.2)                              # its poll right after the shutdown sees no data
s.sendall(b"bye")
time.sleep(0.3)
s.close()
print("client ok")
"""


def scenario(net, conf):
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT], name="shutdown", conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT], timeout=60)
    assert cp.returncode == 0 and "client ok" in cp.stdout, cp.stderr + srv.describe()
    srv.wait(20)
    return json.loads(srv.out().splitlines()[-1])


def test_shutdown_matches_kernel(netpair):
    net = netpair()
    kernel = scenario(net, None)
    # The kernel's answers, as the scenario expects them (its own soundness).
    assert kernel["rd_recv"] == ["abc", ""] and kernel["rd_later"] == ["later", ""], kernel
    assert "POLLOUT" in kernel["wr_poll"] and "POLLRDHUP" in kernel["rd_poll"], kernel
    conf = write_conf(net.dir / "shut.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = scenario(net, conf)
    assert_bypassed(before, net.tcp_segs("server"), 12, "the shutdown scenario")
    assert accel == kernel
