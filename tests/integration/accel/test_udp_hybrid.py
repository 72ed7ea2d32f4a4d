"""Issue 9, tests 5 and 6: the hybrid paths of an accelerated UDP socket, and an
accelerated sender's datagrams of 1 to 9,000 bytes arriving intact at kernel receivers,
unicast and multicast (fragmented by the stack above the MTU)."""

import json
import time

import pytest

from .conftest import HERE, PYTHON, write_conf

SIZES = [1, 2, 63, 64, 512, 1400, 1472, 1473, 2000, 2960, 4000, 6000, 8000, 9000]
UPORT, MPORT, GROUP = 7800, 7801, "239.9.5.1"


def last_json(proc):
    return json.loads(proc.out().splitlines()[-1])


@pytest.mark.parametrize("target", ["unicast", "multicast"])
def test_accelerated_sender_sizes_intact(netpair, target):
    net = netpair(accel=("server",))
    sink_args = ([net.cli_ip, UPORT, len(SIZES)] if target == "unicast"
                 else [net.cli_ip, MPORT, len(SIZES), GROUP])
    dest, port = (net.cli_ip, UPORT) if target == "unicast" else (GROUP, MPORT)
    conf = write_conf(net.dir / "send.conf", "bypv0",
                      [("udp", UPORT), ("udp", MPORT, "239.9.5.0/24")])
    before = net.snmp("server")["Udp.OutDatagrams"]
    sink = net.spawn("client", [PYTHON, str(HERE / "udp_sizes.py"), "sink"] + sink_args,
                     name="sink")
    sink.wait_ready()
    cp = net.run("server", [PYTHON, str(HERE / "udp_sizes.py"), "send", dest, port, net.srv_ip,
                            ",".join(map(str, SIZES))], conf=conf, env={"BYPASS_LOG": "info"},
                 timeout=60, check=True)
    assert "udp socket on port" in cp.stderr, cp.stderr
    sink.wait(30)
    assert last_json(sink) == [[n, True] for n in SIZES], sink.describe()
    # The stack sent them: the server namespace's kernel sent none.
    assert net.snmp("server")["Udp.OutDatagrams"] - before == 0


HYBRID = r"""
import socket, sys, json
port, big = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", port))
s.settimeout(20)
print("ready", flush=True)
got = []
for _ in range(3):
    d, a = s.recvfrom(70000)
    got.append([len(d), a[0] == "127.0.0.1"])
lo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
print(json.dumps(sorted(got)), flush=True)
"""

CLIENT = r"""
import socket, sys, time
srv, port, kport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
s.sendto(b"x" * 100, (srv, port))          # small: steered to the stack
time.sleep(0.2)
s.sendto(b"y" * 9000, (srv, port))         # fragments: the kernel reassembles it
for i in range(20):                         # the kernel-only echo on another port
    s.sendto(b"k%d" % i, (srv, kport))
    assert s.recv(100) == b"k%d" % i
print("client ok", flush=True)
"""

KECHO = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(100)
    s.sendto(d, a)
"""


def test_hybrid_paths(netpair):
    """A datagram larger than the MTU (fragments go to the kernel, which reassembles) and
    one over loopback reach the accelerated socket beside the steered ones; a kernel-only
    UDP service on another port of the namespace keeps serving meanwhile."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "hy.conf", "bypv0", [("udp", UPORT)])
    kecho = net.spawn("server", [PYTHON, "-c", KECHO, UPORT + 100], name="kecho")
    kecho.wait_ready()
    srv = net.spawn("server", [PYTHON, "-c", HYBRID, UPORT, 9000], name="hybrid", conf=conf,
                    env={"BYPASS_LOG": "info"})
    srv.wait_ready()
    time.sleep(0.5)
    net.run("server", [PYTHON, "-c", "import socket; socket.socket(socket.AF_INET, "
                       "socket.SOCK_DGRAM).sendto(b'l' * 50, ('127.0.0.1', %d))" % UPORT],
            timeout=30, check=True)
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, UPORT, UPORT + 100], timeout=60)
    assert "client ok" in cp.stdout, cp.stdout + cp.stderr
    srv.wait(30)
    assert "udp socket on port %d accelerated" % UPORT in srv.err(), srv.describe()
    assert last_json(srv) == [[50, True], [100, False], [9000, False]], srv.describe()


def shaped_sends(net, mode, port, count):
    """udp_shapes.py @mode from the client namespace to a kernel receiver on @port, first
    from a kernel sender, then from an accelerated one: per sender, the datagrams the
    receiver got ([length, head, TTL] each), the sender's kernel UDP datagrams out, and
    its info lines saying shaped sends go through the kernel socket."""
    conf = write_conf(net.dir / ("cli-%d.conf" % port), "bypv1", [("udp", port)],
                      extra='log = "info";\n')
    script = str(HERE / "udp_shapes.py")
    runs = []
    for c in (None, conf):
        rx = net.spawn("server", [PYTHON, script, "recv", str(port)], name="shapes-rx")
        rx.wait_ready()
        s0 = net.snmp("client")
        cp = net.run("client", [PYTHON, script, mode, net.srv_ip, str(port), str(count)],
                     conf=c, timeout=30, check=True)
        assert rx.wait(10) == 0, rx.describe()
        moved = net.snmp("client")["Udp.OutDatagrams"] - s0["Udp.OutDatagrams"]
        said = sum("go through the kernel socket" in l for l in cp.stderr.splitlines())
        runs.append(([json.loads(l) for l in rx.out().splitlines()[1:]], moved, said))
    return runs


def test_send_shapes_match_the_kernel(netpair):
    """MSG_MORE and UDP_CORK (one datagram over several calls), UDP_SEGMENT (one call, many
    datagrams), a TTL in a control message: the receiver gets the same datagrams from an
    accelerated sender as from the kernel's (the stack hands those sends to the kernel
    socket); an IP_PKTINFO naming the sender's own address and plain sends stay on the
    stack (the sender's kernel counted at most the shaped ones)."""
    net = netpair(accel=("client",))
    (kgot, kmoved, _), (agot, amoved, said) = shaped_sends(net, "send", 7700, 300)
    assert kgot[:9] == [[11, "abcdef-more", [64]], [9, "ghij-cork", [64]],
                        [1000, "s" * 12, [64]], [1000, "s" * 12, [64]],
                        [1000, "s" * 12, [64]], [500, "s" * 12, [64]],
                        [9, "ttl-seven", [7]], [7, "pktinfo", [64]], [5, "plain", [64]]]
    assert agot == kgot
    assert kmoved >= 300 and amoved <= 8, (kmoved, amoved)
    assert said == 1   # one line, at the first shaped send


def test_first_burst_after_start_arrives_whole(netpair):
    """An unbound socket's first sendto starts the stack and 1,000 datagrams follow at once,
    then the sender exits: all arrive, in order, as from the kernel.  The stack's neighbour
    table starts empty; lwIP queued 16 datagrams while it asked the kernel for the MAC and
    dropped the rest (the receiver got the last 16)."""
    net = netpair(accel=("client",))
    want = ["burst %d" % i for i in range(1000)] + ["end"]
    (kgot, kmoved, _), (agot, amoved, said) = shaped_sends(net, "burst", 7701, 1000)
    for got in (kgot, agot):
        assert [g[1] for g in got] == want, got[:3]
    assert kmoved >= 1000 and amoved < 5 and said == 0, (kmoved, amoved, said)
