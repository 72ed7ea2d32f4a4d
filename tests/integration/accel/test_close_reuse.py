"""Connections the peer closes first, one after another, then the listener: the port goes
back to the kernel at once, while the program keeps running.

A connection the client closed first ends in the server's LAST_ACK; the stack keeps the
listener's port steered until lwIP has its last ACK (a "zombie" holds the flow reference
meanwhile), then must let it go.  lwIP frees such a connection without a word, and the
next connection's SYN takes the same memory at once: the bookkeeping must notice the
connection it held is gone (and not mistake the newcomer for it).  Afterwards a kernel
server started on the port gets its clients within a few milliseconds, as it would after a
kernel server closed; held longer, the stack (with no listener) answers their SYNs with
resets."""

from .conftest import PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7610
ROUNDS = 20

SERVER = r"""
import socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(16)
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    c, _ = ls.accept()
    while c.recv(4096):
        pass
    c.close()                          # the client closed first: LAST_ACK is ours
ls.close()
print("closed", flush=True)
time.sleep(60)                         # the engine keeps running
"""

CLIENT = r"""
import socket, sys
host, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(rounds):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"x" * 100)
    s.shutdown(socket.SHUT_WR)         # closes first
    assert s.recv(16) == b""           # the server's FIN
    s.close()
print("done", flush=True)
"""

KERNEL_SERVER = r"""
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
c.sendall(b"kernel")
c.close()
"""

PROBE = r"""
import socket, sys, time
t = time.monotonic()
while True:
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        break
    except ConnectionRefusedError:
        if time.monotonic() - t > 5:
            raise
        time.sleep(0.01)
print(s.recv(16).decode(), "%.3f" % (time.monotonic() - t), flush=True)
"""


def test_port_back_to_kernel_after_peer_closed_connections(netpair):
    net = netpair()
    conf = write_conf(net.dir / "reuse.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT, ROUNDS], conf=conf,
                    name="peer-closes-first")
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, ROUNDS], timeout=60)
    assert cp.returncode == 0 and "done" in cp.stdout, cp.stderr
    srv.wait_ready("closed")
    assert_bypassed(before, net.tcp_segs("server"), ROUNDS * 4, "the connections")
    # Still running, listener closed: the port is the kernel's again.
    ksrv = net.spawn("server", [PYTHON, "-c", KERNEL_SERVER, PORT], name="kernel-after")
    ksrv.wait_ready()
    probe = net.run("client", [PYTHON, "-c", PROBE, net.srv_ip, PORT], timeout=30)
    assert probe.returncode == 0 and probe.stdout.split()[0] == "kernel", (
        "after the accelerated listener closed, a kernel server on its port got no "
        "connection (the port still steered to the stack?): %s" % probe.stderr[-300:])
    refused_for = float(probe.stdout.split()[1])
    assert refused_for < 0.5, ("the port stayed steered to the stack %.3f s after the "
                               "listener closed" % refused_for)
    assert ksrv.wait(10) == 0, ksrv.describe()
    srv.stop()
