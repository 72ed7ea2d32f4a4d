"""Issue 12, idle cost: the progress thread of an idle accelerated process sleeps until a
timer has work instead of waking for every 10 ms tick of lwIP's TCP timer.  These check
that the timers that do matter still fire on time after such a sleep: a delayed ACK for
a segment that arrives on a connection idle for seconds (whether the program waits inside
the library or outside it), and keepalive probes that end a connection whose peer
vanished.  The CPU figures are bench/idle's."""

import time

from .conftest import PYTHON, assert_bypassed, write_conf

PORT = 7600

# Two connections; nobody reads the first.  The server waits outside the library
# (time.sleep) or inside it (a blocking recv on the second connection).
SERVER_ACK = r"""
import socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
a, _ = ls.accept()
b, _ = ls.accept()
if sys.argv[2] == "outside":
    time.sleep(60)
else:
    b.recv(1)
"""

# Connects twice, stays idle IDLE seconds, sends one byte on the first connection and
# reports how long the server took to acknowledge it (TCP_INFO's tcpi_unacked).
CLIENT_ACK = r"""
import socket, struct, sys, time
host, port, idle = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
a = socket.create_connection((host, port), timeout=10)
b = socket.create_connection((host, port), timeout=10)
a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
def unacked():
    return struct.unpack_from("I", a.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104), 24)[0]
worst = 0.0
for _ in range(3):
    time.sleep(idle)
    a.send(b"x")
    t = time.monotonic()
    while unacked() and time.monotonic() - t < 5:
        time.sleep(0.0005)
    worst = max(worst, time.monotonic() - t)
print("ack_s %.4f" % worst, flush=True)
"""


def ack_delay(net, conf, where):
    srv = net.spawn("server", [PYTHON, "-c", SERVER_ACK, PORT, where], conf=conf,
                    name="ack-server-" + where)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT_ACK, net.srv_ip, PORT, 2.5], timeout=60,
                 check=True)
    srv.stop()
    return float(cp.stdout.split()[-1])


def test_delayed_ack_after_idle(netpair):
    """A segment arriving after 2.5 s of silence is acknowledged within lwIP's delayed-ACK
    tick, not at the progress thread's next wake-up (a second later when it ignored it)."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    for where in ("outside", "inside"):
        before = net.tcp_segs("server")
        worst = ack_delay(net, conf, where)
        assert_bypassed(before, net.tcp_segs("server"), 10, "delayed ACK (%s)" % where)
        assert worst < 0.2, ("server waiting %s the library: a segment after an idle spell "
                             "was acknowledged after %.3f s" % (where, worst))


# Keepalive after 2 s idle, probes 1 s apart, 2 of them: a peer that stops answering is
# given up after about 4 s (ETIMEDOUT), on the kernel as on lwIP.
SERVER_KA = r"""
import errno, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 2)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 2)
c.sendall(c.recv(16))
t = time.monotonic()
print("idle", flush=True)
try:
    c.recv(16)
    print("result eof %.3f" % (time.monotonic() - t), flush=True)
except OSError as e:
    print("result %s %.3f" % (errno.errorcode.get(e.errno, e.errno), time.monotonic() - t),
          flush=True)
"""

CLIENT_KA = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"hi"); assert s.recv(16) == b"hi"
print("ready", flush=True)
time.sleep(60)
"""


def test_keepalive_gives_up_on_a_vanished_peer(netpair):
    """Keepalive probes leave an idle connection on time and end it when unanswered: the
    client's veth end loses its XDP program, so nothing the stack sends reaches it."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    before = net.tcp_segs("server")
    srv = net.spawn("server", [PYTHON, "-c", SERVER_KA, PORT], conf=conf, name="ka-server")
    srv.wait_ready()
    cli = net.spawn("client", [PYTHON, "-c", CLIENT_KA, net.srv_ip, PORT], name="ka-client")
    cli.wait_ready()
    srv.wait_ready("idle")
    ns, dev = net.ns_dev("client")
    net._ip("-n", ns, "link", "set", "dev", dev, "xdp", "off")
    deadline = time.monotonic() + 20
    while srv.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [l for l in srv.out().splitlines() if l.startswith("result")]
    assert lines, "the keepalive never ended the connection in 20 s\n" + srv.describe()
    _, what, secs = lines[0].split()
    assert what == "ETIMEDOUT", srv.describe()
    # idle 2 s + 2 probes 1 s apart: 4 s on the kernel; a timer that slept through its
    # deadline would be a second or more late.
    assert 3.5 <= float(secs) <= 5.5, "keepalive gave up after %s s (want ~4)" % secs
    assert_bypassed(before, net.tcp_segs("server"), 10, "keepalive")
