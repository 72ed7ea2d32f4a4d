"""Issue 3: SO_LINGER with a timeout makes close() wait until what was sent is
acknowledged, on the stack as on the kernel: a slow reader holds the sender's close."""

from .conftest import PYTHON, write_conf

PORT = 7500
SIZE = 4 << 20

SERVER = r"""
import socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)   # a small window: the sender waits
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(1)
print("ready", flush=True)
c, _ = ls.accept()
n = 0
while True:                           # a slow reader: 64 KiB every 30 ms, about 2 s in all
    d = c.recv(65536)
    if not d:
        break
    n += len(d)
    time.sleep(0.03)
print("got", n, flush=True)
"""

CLIENT = r"""
import socket, struct, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 20))
s.sendall(b"x" * int(sys.argv[3]))
t = time.monotonic()
s.close()
print("close_s %.3f" % (time.monotonic() - t))
"""


def close_time(net, cli_conf):
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT], name="slow-reader")
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, SIZE], conf=cli_conf,
                 timeout=60, check=True)
    srv.wait(30)
    assert srv.out().split()[-2:] == ["got", str(SIZE)], srv.describe()
    return float(cp.stdout.split()[-1])


def test_linger_close_waits_for_acknowledgement(netpair):
    net = netpair(accel=("client",))
    kernel = close_time(net, None)
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    before = net.tcp_segs("client")
    accel = close_time(net, conf)
    moved = net.tcp_segs("client") - before
    assert kernel >= 0.5, "the kernel did not linger (%.3f s): the scenario is broken" % kernel
    assert accel >= 0.5, "close() on the stack returned after %.3f s without lingering" % accel
    assert moved < 10, "the accelerated client went through the kernel (%d segments)" % moved


CLIENT_EXIT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
s.sendall(b"y" * int(sys.argv[3]))
s.close()                                 # no linger: and the process exits at once
"""


def test_queued_data_still_delivered_when_the_process_exits(netpair):
    """An in-process stack ends with its process: at exit it keeps running until the
    connections the program closed have delivered what they had queued (bounded), so a
    sender that closes and exits loses nothing, as with the kernel."""
    net = netpair(accel=("client",))
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    for cli_conf in (None, conf):
        srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT], name="slow-reader")
        srv.wait_ready()
        net.run("client", [PYTHON, "-c", CLIENT_EXIT, net.srv_ip, PORT, SIZE], conf=cli_conf,
                timeout=60, check=True)
        srv.wait(30)
        assert srv.out().split()[-2:] == ["got", str(SIZE)], \
            ("accelerated" if cli_conf else "kernel") + " sender: " + srv.describe()
