"""Dual-stack listeners: an AF_INET6 socket on "::" with IPV6_V6ONLY off (node's, Go's and
Java's default) takes IPv4 clients as ::ffff:a.b.c.d.  A rule on its port accelerates its
IPv4 part: the program sees the same v4-mapped addresses and AF_INET6 sockets as on the
kernel, the kernel carries none of the IPv4 traffic, IPv6 clients still reach it through
the kernel socket underneath, and a connection handed to an exec'd program keeps working."""

import hashlib
import json

from .conftest import HERE, PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7800
N = 20
V6_SRV, V6_CLI = "fd00:77::1", "fd00:77::2"

CLIENT = r"""
import json, os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mapped = host.startswith("::ffff:")     # an AF_INET6 socket to an IPv4 server: Java's way
for i in range(n):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(20)
    s.connect((host, port))
    me, peer = s.getsockname(), s.getpeername()
    data = os.urandom(100000)
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    out = {"port": me[1], "ok": got == data}
    if mapped:
        out = {"ok": got == data, "me": [me[0], me[2], me[3]], "port": me[1] > 0,
               "peer": list(peer), "domain": s.getsockopt(socket.SOL_SOCKET, socket.SO_DOMAIN)}
    print(json.dumps(out), flush=True)
    s.close()
"""


def clients(net, host, n):
    cp = net.run("client", [PYTHON, "-c", CLIENT, host, str(PORT), str(n)], timeout=120)
    out = [json.loads(l) for l in cp.stdout.splitlines()]
    assert len(out) == n and all(c["ok"] for c in out), cp.stderr
    return out


def play(net, conf, host, n=N):
    """@n echo connections, measured (the server's kernel TCP segments they moved), then the
    one the server execs cat on."""
    srv = net.spawn("server", [PYTHON, str(HERE / "dualstack_server.py"), str(PORT), str(n)],
                    name="dualstack" + ("-accel" if conf else ""), conf=conf)
    srv.wait_ready()
    before = net.tcp_segs("server")
    client = clients(net, host, n)
    moved = net.tcp_segs("server") - before
    clients(net, host, 1)
    srv.wait(20)
    server = [json.loads(l) for l in srv.out().splitlines()[1:]]
    assert len(server) == n, srv.describe()
    return client, server, moved


def expected(net, client, v4=True):
    peer = ("::ffff:" + net.cli_ip) if v4 else V6_CLI
    me = ("::ffff:" + net.srv_ip) if v4 else V6_SRV
    return [{"accept": [peer, c["port"], 0, 0], "sockname": [me, PORT, 0, 0],
             "peername": [peer, c["port"], 0, 0], "family": 10, "domain": 10, "v6only": 0}
            for c in client]


def test_dual_stack_listener(netpair):
    net = netpair()
    conf = write_conf(net.dir / "bypass.conf", SRV_IF, [("tcp", PORT)],
                      extra='log = "info";\n')
    client, server, _ = play(net, None, net.srv_ip)
    assert server == expected(net, client)
    client, server, moved = play(net, conf, net.srv_ip)
    assert_bypassed(0, moved, N * 140, "dual-stack listener, IPv4")
    assert server == expected(net, client)
    assert "tcp listener on port %d accelerated" % PORT in net.procs[-1].err()
    # The exec'd cat had the last connection handed over to the kernel (TCP_REPAIR, v4-mapped).
    assert "handed over to the kernel" in net.procs[-1].err(), net.procs[-1].describe()
    # IPv6 clients: the kernel socket under the accelerated listener takes them.
    for ns, dev, ip in ((net.srv_ns, SRV_IF, V6_SRV), (net.cli_ns, "bypv1", V6_CLI)):
        net._ip("-n", ns, "addr", "add", ip + "/64", "dev", dev, "nodad")
    client, server, _ = play(net, conf, V6_SRV, n=3)
    assert server == expected(net, client, v4=False)


NODE = r"""
const http = require('http');
const big = Buffer.alloc(1 << 20, 'n');
http.createServer((req, res) => {
  if (req.url === '/big') { res.end(big); return; }
  res.end('hello ' + req.socket.remoteAddress + '\n');
}).listen(%d, () => console.log('ready'));
"""


def test_node_http_server(netpair):
    """node's http server listens on "::": accelerated, wrk gets only 200s, the answer
    names the client as node on the kernel does, a 1 MB body arrives intact."""
    net = netpair()
    conf = write_conf(net.dir / "bypass.conf", SRV_IF, [("tcp", PORT)])
    answers = []
    for c in (None, conf):
        srv = net.spawn("server", ["node", "-e", NODE % PORT], name="node", conf=c)
        srv.wait_ready()
        url = "http://%s:%d/" % (net.srv_ip, PORT)
        answers.append(net.run("client", ["curl", "-s", url], timeout=20).stdout)
        before = net.tcp_segs("server")
        cp = net.run("client", ["wrk", "-t", "1", "-c", "20", "-d", "3", url], timeout=30)
        done = int(cp.stdout.split(" requests in ")[0].split()[-1])
        assert "Non-2xx" not in cp.stdout and "Socket errors" not in cp.stdout, cp.stdout
        if c is not None:
            assert_bypassed(before, net.tcp_segs("server"), done, "node under wrk")
        body = net.run("client", ["curl", "-s", url + "big"], timeout=20,
                       check=True).stdout.encode()
        assert hashlib.sha256(body).hexdigest() == hashlib.sha256(b"n" * (1 << 20)).hexdigest()
        srv.stop()
    assert answers[0] == answers[1] == "hello ::ffff:%s\n" % net.cli_ip, answers


def test_dual_stack_client(netpair):
    """An AF_INET6 socket connecting to ::ffff:a.b.c.d (Java's default): accelerated, it
    sees the same v4-mapped names as on the kernel, and its kernel carried nothing."""
    net = netpair(accel=("client",))
    srv = net.spawn("server", [PYTHON, str(HERE / "dualstack_server.py"), str(PORT), "40"],
                    name="dualstack")
    srv.wait_ready()
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)], extra='log = "info";\n')
    seen = []
    for c in (None, conf):
        before = net.tcp_segs("client")
        cp = net.run("client", [PYTHON, "-c", CLIENT, "::ffff:" + net.srv_ip, str(PORT), str(N)],
                     conf=c, timeout=120)
        out = [json.loads(l) for l in cp.stdout.splitlines()]
        assert len(out) == N and all(o["ok"] for o in out), cp.stderr
        if c is not None:
            assert_bypassed(before, net.tcp_segs("client"), N * 140, "dual-stack client")
            assert "tcp connection" in cp.stderr or "accelerat" in cp.stderr, cp.stderr
        seen.append(out)
    assert seen[0] == seen[1]
    assert seen[0][0] == {"ok": True, "me": ["::ffff:" + net.cli_ip, 0, 0], "port": True,
                          "peer": ["::ffff:" + net.srv_ip, PORT, 0, 0], "domain": 10}


UDP_N = 200


def udp_round(net, srv_conf, cli_conf, side):
    script = str(HERE / "udp_dualstack.py")
    srv = net.spawn("server", [PYTHON, script, "server", str(PORT), str(UDP_N)],
                    name="udp-dualstack", conf=srv_conf)
    srv.wait_ready()
    s0 = net.snmp(side)
    cp = net.run("client", [PYTHON, script, "client", net.srv_ip, str(PORT), str(UDP_N)],
                 conf=cli_conf, timeout=60)
    s1 = net.snmp(side)
    assert srv.wait(20) == 0, srv.describe()
    client = json.loads(cp.stdout)
    assert client == {"ok": UDP_N + 1, "me": ["::", True]}, (cp.stdout, cp.stderr)
    lines = srv.out().splitlines()
    moved = sum(s1["Udp." + k] - s0["Udp." + k] for k in ("InDatagrams", "OutDatagrams"))
    peer, port = json.loads(lines[-1].split(" ", 1)[1])
    return lines[0], [json.loads(l) for l in lines[1:-1]], [peer[0], peer[2:], port], moved


def test_dual_stack_udp(netpair):
    """UDP on "::" (iperf3 -s's way), both ends: the server's recvmsg sources, its IP_PKTINFO
    and IPV6_PKTINFO control messages, its answers by sendto and after connect; the unbound
    AF_INET6 client's first sendto to ::ffff:a.b.c.d.  The same as on the kernel, and the
    accelerated side's kernel counted no UDP datagram."""
    net = netpair(accel=("server", "client"))
    srv_conf = write_conf(net.dir / "srv.conf", SRV_IF, [("udp", PORT)])
    cli_conf = write_conf(net.dir / "cli.conf", "bypv1", [("udp", PORT)])
    kernel = udp_round(net, None, None, "server")
    accel_srv = udp_round(net, srv_conf, None, "server")
    accel_cli = udp_round(net, None, cli_conf, "client")
    assert accel_srv[:3] == kernel[:3] == accel_cli[:3]
    assert kernel[1][0] == {"data": "datagram 0", "src": ["::ffff:" + net.cli_ip, 0, 0],
                            "cmsgs": [["IPV6_PKTINFO", "::ffff:" + net.srv_ip, True],
                                      ["IP_PKTINFO", net.srv_ip, net.srv_ip, True]],
                            "flags": 0}, kernel[1][0]
    assert kernel[2] == ["::ffff:" + net.cli_ip, [0, 0], PORT], kernel[2]
    assert kernel[3] >= 2 * UDP_N
    assert accel_srv[3] < 5 and accel_cli[3] < 5, (accel_srv[3], accel_cli[3])


MCAST_RX = r"""
import json, socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             socket.inet_aton(sys.argv[3]) + socket.inet_aton(sys.argv[1]))
print("ready", flush=True)
s.settimeout(3)
out = []
try:
    while True:
        d, a = s.recvfrom(100)
        out.append([d.decode(), list(a)])
except socket.timeout:
    pass
print(json.dumps(out), flush=True)
"""


def test_dual_stack_multicast_member(netpair):
    """An IPv4 group joined (IP_ADD_MEMBERSHIP) on a dual-stack AF_INET6 socket bound to
    "::": the 200 datagrams of a feed arrive in order with the v4-mapped source, as on the
    kernel, and the kernel counted none of them."""
    from .test_udp_mcast import PORT as MPORT, send
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", SRV_IF, [("udp", MPORT)])
    got, moved = [], []
    for c in (None, conf):
        rx = net.spawn("server", [PYTHON, "-c", MCAST_RX, net.srv_ip, str(MPORT), "239.9.1.1"],
                       conf=c, name="mcast6")
        rx.wait_ready()
        s0 = net.snmp("server")
        send(net, "239.9.1.1:200:x")
        assert rx.wait(15) == 0, rx.describe()
        moved.append(net.snmp("server")["Udp.InDatagrams"] - s0["Udp.InDatagrams"])
        # the sender's port differs from run to run
        got.append([[d, [a[0]] + a[2:]] for d, a in json.loads(rx.out().splitlines()[-1])])
    src = ["::ffff:" + net.cli_ip, 0, 0]
    assert got[0] == [["239.9.1.1 x %d" % k, src] for k in range(200)]
    assert got[1] == got[0]
    assert moved[0] >= 200 and moved[1] == 0, moved


V6ONLY_SRV = r"""
import socket, sys
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
s.settimeout(3)
try:
    s.accept()
    print("accepted", flush=True)
except socket.timeout:
    print("none", flush=True)
"""

REFUSED = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print("connected")
except OSError as e:
    print(type(e).__name__)
"""


def ipv6_only_case(netpair, proto, srv_script, cli_script):
    """Run @srv_script (an IPv6-only socket of @proto on PORT) on the kernel, then under a
    rule naming PORT, each against @cli_script from the client; the line at info is written
    once under the rule, never without.  Returns [client's answer, server's last line] of
    each run."""
    net = netpair()
    conf = write_conf(net.dir / "srv.conf", SRV_IF, [(proto, PORT)], extra='log = "info";\n')
    answers = []
    for c in (None, conf):
        srv = net.spawn("server", [PYTHON, "-c", srv_script, str(PORT)],
                        name="v6only-" + proto, conf=c)
        srv.wait_ready()
        cp = net.run("client", [PYTHON, "-c", cli_script, net.srv_ip, str(PORT)], timeout=20)
        srv.wait(10)
        answers.append([cp.stdout.strip(), srv.out().splitlines()[-1]])
        lines = [l for l in srv.err().splitlines() if "IPv6 only" in l]
        assert len(lines) == (1 if c else 0), srv.describe()
    return answers


def test_ipv6_only_listener_stays_on_kernel(netpair):
    """An IPV6_V6ONLY listener on a port a rule names has no IPv4 part: it stays the
    kernel's, with one line at info saying so, and an IPv4 client is refused as on the
    kernel."""
    answers = ipv6_only_case(netpair, "tcp", V6ONLY_SRV, REFUSED)
    assert answers[0] == answers[1] == ["ConnectionRefusedError", "none"], answers


V6ONLY_UDP = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(3)
try:
    print("got", s.recvfrom(100)[0].decode(), flush=True)
except socket.timeout:
    print("none", flush=True)
"""

UDP_SEND = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
    time.sleep(0.1)
print("sent")
"""


def test_ipv6_only_udp_socket_stays_on_kernel(netpair):
    """The same for UDP: an IPV6_V6ONLY socket on a port a rule names stays the kernel's,
    with one line at info, and gets no IPv4 datagram, as on the kernel."""
    answers = ipv6_only_case(netpair, "udp", V6ONLY_UDP, UDP_SEND)
    assert answers[0] == answers[1] == ["sent", "none"], answers
