"""memcached -t 4, unmodified, its TCP and UDP ports accelerated, against kernel clients in
the other namespace, beside the kernel's run: libmemcached's protocol suite (`memccapable`,
ASCII and binary) passes, memcaslap's verified gets find no wrong value, and gets over
memcached's UDP protocol (an 8-byte frame header: request id, sequence, count) answer each
request id with the value; the server namespace's kernel TCP and UDP counters stay still."""
import re
import shutil

import pytest

from .conftest import PYTHON, assert_bypassed, assert_woken_on_time, bypass_lines, write_conf

PORT = 11311
GETS = 50

# Sets a key over TCP, then gets it GETS times over UDP: prints "udp N" with the number of
# answers whose frame header and value were right.
UDP_CLIENT = r"""
import socket, struct, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
t = socket.create_connection((host, port), timeout=5)
t.sendall(b"set ukey 0 0 11\r\nhello world\r\n")
assert t.recv(100) == b"STORED\r\n"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
good = 0
for i in range(n):
    u.sendto(struct.pack("!HHHH", i, 0, 1, 0) + b"get ukey\r\n", (host, port))
    d = u.recv(2000)
    good += (struct.unpack("!HHHH", d[:8]) == (i, 0, 1, 0) and
             d[8:] == b"VALUE ukey 0 11\r\nhello world\r\nEND\r\n")
print("udp %d" % good, flush=True)
"""


def counters(net):
    c = net.snmp("server")
    return c["Tcp.InSegs"] + c["Tcp.OutSegs"] + c["Udp.InDatagrams"] + c["Udp.OutDatagrams"]


@pytest.mark.skipif(shutil.which("memccapable") is None, reason="libmemcached-tools missing")
def test_memcached_tcp_and_udp(netpair):
    net = netpair()
    conf = write_conf(net.dir / "mc.conf", "bypv0", [("tcp", PORT), ("udp", PORT)])
    for mode, c in (("kernel", None), ("accel", conf)):
        srv = net.spawn("server", ["memcached", "-u", "root", "-t", 4, "-p", PORT, "-U", PORT,
                                   "-l", net.srv_ip], name="memcached-" + mode, conf=c,
                        env={"BYPASS_LOG": "info"} if c else None)
        net.wait_port(PORT, srv)
        before = counters(net)
        cap = net.run("client", ["memccapable", "-h", net.srv_ip, "-p", PORT, "-t", 10],
                      timeout=120)
        assert cap.returncode == 0 and "All tests passed" in cap.stdout, (
            mode, cap.stdout[-2000:], cap.stderr[-2000:], srv.describe())
        slap = net.run("client", ["memcaslap", "-s", "%s:%d" % (net.srv_ip, PORT), "-T", 2,
                                  "-c", 32, "-t", "2s", "-v", "0.1"], timeout=60)
        stats = dict(re.findall(r"^(\w+): (\d+)$", slap.stdout, re.M))
        assert slap.returncode == 0 and int(stats.get("cmd_get", 0)) > 1000, (
            mode, slap.stdout[-2000:], slap.stderr[-2000:])
        assert stats["verify_failed"] == "0" and stats["get_misses"] == "0", (mode, stats)
        udp = net.run("client", [PYTHON, "-c", UDP_CLIENT, net.srv_ip, PORT, GETS], timeout=60)
        assert udp.stdout.split() == ["udp", str(GETS)], (mode, udp.stdout, udp.stderr)
        if mode == "accel":
            assert_bypassed(before, counters(net), int(stats["cmd_get"]),
                            "memcached TCP and UDP")
            assert_woken_on_time(srv.pid, "memcached, 4 threads")
            lines = bypass_lines(srv.err())
            assert any("udp socket on port %d accelerated" % PORT in l for l in lines), lines
        assert srv.poll() is None, srv.describe()
        srv.stop()
