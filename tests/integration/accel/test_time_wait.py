"""A kernel client that reuses its port at once after the server closed first.

The server closes first, so the connection's TIME_WAIT is the server's; the client, which
closed second, keeps nothing and may reuse the same source port for the next connection at
once (wrk and other load generators do, once the server ends keep-alive connections).  The
kernel's server takes such a SYN, beyond the old connection's sequence numbers, as a new
connection (RFC 6191); so must the stack, whose TIME_WAIT would otherwise answer it with an
old ACK for a minute.  Compared side by side: the same client against a kernel server and
against an accelerated one."""

import json

from .conftest import PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7600
ROUNDS = 20

SERVER = r"""
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(16)
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    c, peer = ls.accept()
    c.sendall(b"x" * 3000 + b"%d" % peer[1])
    c.close()                          # the server closes first: TIME_WAIT is the server's
print("served", flush=True)
"""

CLIENT = r"""
import json, socket, sys, time
host, port, rounds, cport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
times = []
for i in range(rounds):
    t = time.monotonic()
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", cport))     # the same four-tuple every time
        s.settimeout(5)
        try:
            s.connect((host, port))
            break
        except OSError as e:           # the last one is still in LAST_ACK for an RTT
            s.close()
            if e.errno != 99 or time.monotonic() - t > 5:
                raise
            time.sleep(0.005)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    times.append(time.monotonic() - t)
    assert got == b"x" * 3000 + str(cport).encode(), got[-20:]
    s.close()                          # closes second: no TIME_WAIT on this side
print(json.dumps(times))
"""


def exchanges(net, conf):
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT, ROUNDS], name="closes-first", conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, ROUNDS, 40123], timeout=120)
    assert cp.returncode == 0, cp.stderr
    srv.wait(10)
    assert srv.out().split()[-1] == "served", srv.describe()
    return json.loads(cp.stdout)


def test_port_reused_after_server_close(netpair):
    net = netpair()
    kernel = exchanges(net, None)
    conf = write_conf(net.dir / "tw.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = exchanges(net, conf)
    after = net.tcp_segs("server")
    # The kernel takes each new SYN at once: the scenario is sound if it does.
    assert max(kernel) < 0.9, "the kernel server did not take the reused port at once: %s" % kernel
    assert max(accel) < 0.9, ("a connection on a port whose last connection the stack holds "
                              "in TIME_WAIT waited for SYN retransmissions: %s" % accel)
    assert_bypassed(before, after, ROUNDS * 6, "the reused-port connections")
