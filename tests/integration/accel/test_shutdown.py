"""shutdown() on an accelerated connection answers as the kernel's, side by side: what poll
says after each half is shut, what recv gives after SHUT_RD (the kernel keeps what is queued
and what still arrives readable, then end of file), and the half-closed connection the
server shut for writing first, through to its TIME_WAIT."""

import json

from .conftest import SRV_IF, assert_bypassed, json_exchange, write_conf

PORT = 7610

# What poll says of a socket, by name: both servers print it.
POLL_EVENTS = r"""
import select
MASK = (select.POLLIN | select.POLLOUT | select.POLLHUP | select.POLLRDHUP | select.POLLERR)
def ev(s):
    p = select.poll(); p.register(s, MASK); r = p.poll(0)
    v = r[0][1] if r else 0
    return [n for n in ("POLLIN", "POLLOUT", "POLLHUP", "POLLRDHUP", "POLLERR")
            if v & getattr(select, n)]
"""

SERVER = POLL_EVENTS + r"""
import json, select, socket, sys, time
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
"""


def scenario(net, conf):
    """The server's answers; the client's own asserts passed (json_exchange checks its exit)."""
    return json_exchange(net, SERVER, CLIENT, PORT, conf, "shutdown")[0]


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


# --- a listener shut down: the idiom that stops a threaded server's accept loop ------------

LISTENER = POLL_EVENTS + r"""
import errno, json, os, select, socket, sys, threading, time
port, flag = int(sys.argv[1]), sys.argv[2]
def call(f, *a):
    try:
        f(*a); return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
def wait_for(name):
    while not os.path.exists(flag + name):
        time.sleep(0.02)
ls = []
for p in (port, port + 1):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(8); ls.append(s)
res = {"wr": call(ls[0].shutdown, socket.SHUT_WR), "wr_poll": ev(ls[0])}
def acc():
    res["acc"] = call(ls[0].accept)
t = threading.Thread(target=acc); t.start()
time.sleep(0.3)                              # blocked in accept
print("ready", flush=True)
wait_for(".queued")                          # a connection waits in the second's queue
res["rdwr"] = call(ls[0].shutdown, socket.SHUT_RDWR)
t.join(3)
res["acc_woke"] = not t.is_alive()
res["rdwr_poll"] = ev(ls[0])
res["rd"] = call(ls[1].shutdown, socket.SHUT_RD)
res["again"] = call(ls[0].accept)
open(flag + ".shut", "w").close()
wait_for(".probed")
print(json.dumps(res, sort_keys=True), flush=True)
"""

PROBE = r"""
import errno, json, os, socket, sys, time
host, port, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = socket.create_connection((host, port + 1), timeout=5)
c.sendall(b"x")
time.sleep(0.2)
open(flag + ".queued", "w").close()
while not os.path.exists(flag + ".shut"):
    time.sleep(0.02)
res = {}
c.settimeout(3)
try:
    res["queued"] = "eof" if c.recv(10) == b"" else "data"
except OSError as e:
    res["queued"] = errno.errorcode.get(e.errno, "timeout")
for name, p in (("new", port), ("new2", port + 1)):
    try:
        socket.create_connection((host, p), timeout=2).close(); res[name] = "ok"
    except OSError as e:
        res[name] = errno.errorcode.get(e.errno, "timeout")
open(flag + ".probed", "w").close()
print(json.dumps(res, sort_keys=True))
"""


def listener_scenario(net, conf, tag):
    res, out = json_exchange(net, LISTENER, PROBE, PORT + 2, conf, "lshut-" + tag,
                             args=(net.dir / ("lflag-" + tag),))
    return res, json.loads(out)


def test_listener_shutdown_matches_kernel(netpair):
    """shutdown(SHUT_WR) of a listener does nothing; SHUT_RD or SHUT_RDWR stops it: an
    accept blocked in another thread returns EINVAL, a connection waiting in its queue is
    reset, new ones are refused.  (The stack said ENOTCONN and the accept slept on.)"""
    net = netpair()
    kernel = listener_scenario(net, None, "kernel")
    assert kernel[0]["acc"] == "EINVAL" and kernel[0]["acc_woke"], kernel
    assert kernel[1] == {"queued": "ECONNRESET", "new": "ECONNREFUSED",
                         "new2": "ECONNREFUSED"}, kernel
    conf = write_conf(net.dir / "lshut.conf", SRV_IF, [("tcp", PORT + 2), ("tcp", PORT + 3)])
    before = net.tcp_segs("server")
    accel = listener_scenario(net, conf, "accel")
    # The refused SYNs after the shutdown are the kernel's to answer: 2 of them, each
    # possibly retried once.
    assert_bypassed(before, net.tcp_segs("server"), 4, "the listener shutdown", bound=12)
    assert accel == kernel


# --- what poll says of a connection the peer reset ---------------------------------------

RESET = POLL_EVENTS + r"""
import errno, json, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
c.sendall(b"go")
p = select.poll(); p.register(c, select.POLLIN)
p.poll(5000)
time.sleep(0.1)
res = {"after_reset": ev(c)}
try:
    c.recv(10); res["recv"] = "data"
except OSError as e:
    res["recv"] = errno.errorcode[e.errno]
res["after_error_read"] = ev(c)
print(json.dumps(res, sort_keys=True), flush=True)
"""

RESETTER = r"""
import socket, struct, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
assert s.recv(10) == b"go"
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
s.close()                                    # a reset
"""


def test_poll_after_reset_matches_kernel(netpair):
    """A connection the peer reset: POLLIN, POLLOUT, POLLHUP, POLLRDHUP and POLLERR, then
    ECONNRESET, then the same without POLLERR, as the kernel's tcp_done leaves it shut both
    ways.  (The stack gave no POLLRDHUP, which nginx and HAProxy watch for.)"""
    net = netpair()
    kernel = json_exchange(net, RESET, RESETTER, PORT + 4, None, "reset")[0]
    assert kernel["recv"] == "ECONNRESET" and "POLLRDHUP" in kernel["after_reset"], kernel
    conf = write_conf(net.dir / "reset.conf", SRV_IF, [("tcp", PORT + 4)])
    accel = json_exchange(net, RESET, RESETTER, PORT + 4, conf, "reset")[0]
    assert accel == kernel
