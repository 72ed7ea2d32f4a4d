"""Issue 7: the kernel's routes, addresses, links and neighbours, mirrored live.

Routed tests use three namespaces (client — router — server, routednet.py); the others the
suite's namespace pair.  No veth in this file gets an ethtool step."""

import json
import socket
import subprocess
import threading
import time

import pytest

from . import paced
from .conftest import HERE, PYTHON, assert_bypassed, bypass_lines, run_at_once, write_conf
from .routednet import RoutedNet
from .test_redis import parse_bench, redis_argv

PACED = str(HERE / "paced.py")
RPORT = 6379


@pytest.fixture
def routednet(accel_env, tmp_path, request):
    """Factory: routednet(accel=("server",), r2=False, far=False) -> a set-up RoutedNet."""
    nets = []

    def make(accel=("server",), **kw):
        n = RoutedNet(tmp_path / ("routed%d" % len(nets)), accel, **kw)
        nets.append(n)
        n.setup()
        return n

    def fin():
        for n in reversed(nets):
            n.cleanup()

    request.addfinalizer(fin)
    return make


def start_redis(net, conf, side="server"):
    workdir = net.dir / ("redis-%s" % side)
    workdir.mkdir(exist_ok=True)
    srv = net.spawn(side, redis_argv(RPORT, workdir), name="redis-" + side, conf=conf,
                    env={"BYPASS_LOG": "info"} if conf else None)
    net.wait_port(RPORT, srv, host=net.srv_ip if side == "server" else None)
    return srv


def paced_run(net, seconds, rate, seed, srv_conf=None, during=None, host=None, port=7300,
              srv_env=None):
    """Server sends a paced stream for @seconds; a kernel client reads it; @during(net) runs
    meanwhile.  Returns (server json, client json) after checking the bytes."""
    srv = net.spawn("server", [PYTHON, PACED, "server", port, seconds, rate, seed],
                    name="paced-srv", conf=srv_conf, env=srv_env)
    srv.wait_ready()
    box = {}

    def client():
        box["cp"] = net.run("client", [PYTHON, PACED, "client", host or net.srv_ip, port],
                            timeout=seconds + 150)

    t = threading.Thread(target=client)
    t.start()
    try:
        if during is not None:
            during(net)
    finally:
        t.join()
    cp = box["cp"]
    assert cp.returncode == 0, "client exit %d\n%s\n%s\n%s" % (
        cp.returncode, cp.stdout, cp.stderr, srv.describe())
    srv.wait(60)
    s, c = json.loads(srv.out()), json.loads(cp.stdout)
    assert c["rx_bytes"] == s["bytes"] > 0, (s, c)
    assert c["received"] == s["sent"] == paced.expected(seed, s["bytes"]), "stream corrupted"
    return s, c, srv


# ---- 1. a routed peer ----------------------------------------------------------------

def test_routed_redis_server(routednet):
    """An accelerated redis-server answers redis-benchmark from a client one router away;
    the server namespace's kernel TCP counters stay still."""
    net = routednet(accel=("server",))
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", RPORT)])
    srv = start_redis(net, conf)
    before = net.tcp_segs("server")
    cp = net.run("client", ["redis-benchmark", "-h", net.srv_ip, "-p", RPORT, "-n", 20000,
                            "-c", 20, "-t", "set,get", "--csv"], timeout=180)
    assert cp.returncode == 0, cp.stderr
    parse_bench(cp.stdout, "set,get")
    assert_bypassed(before, net.tcp_segs("server"), 40000, "routed redis-benchmark")
    assert srv.poll() is None, srv.describe()


def test_routed_accelerated_client(routednet):
    """An accelerated client connects out through the router to a kernel redis-server; the
    client namespace's kernel TCP counters stay still."""
    net = routednet(accel=("client",))
    start_redis(net, None)
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", RPORT)])
    before = net.tcp_segs("client")
    cp = net.run("client", ["redis-benchmark", "-h", net.srv_ip, "-p", RPORT, "-n", 20000,
                            "-c", 20, "-t", "set,get", "--csv"], conf=conf, timeout=180)
    assert cp.returncode == 0, cp.stderr
    parse_bench(cp.stdout, "set,get")
    assert_bypassed(before, net.tcp_segs("client"), 40000, "accelerated routed client")


# ---- 2. routes changing under a transfer ------------------------------------------------

TRANSFER_S = 60
# The kernel's run is the reference for the same route changes (all within its first 12 s):
# a shorter transfer keeps the suite's time down.
KERNEL_TRANSFER_S = 14


def forwarded(net, side):
    return net.snmp(side)["Ip.ForwDatagrams"]


@pytest.mark.slow
def test_route_replace_delete_during_transfer(routednet):
    """A route replaced by one through a second router, then deleted for 2 s and added back,
    during a paced transfer: it completes intact, with and without the library, and the
    second router carried the server's segments while its route was in place.  The two run
    at once, each in its own namespaces (paced at 1 MB/s, they use little CPU): the
    kernel's reference takes 14 s of the accelerated run's 60."""
    nets = {mode: routednet(accel=("server",) if mode == "accel" else (), r2=True)
            for mode in ("accel", "kernel")}
    seen = {}

    def run(mode):
        net = nets[mode]
        conf = (write_conf(net.dir / "srv.conf", "bypv0", [("tcp", 7300)])
                if mode == "accel" else None)

        def during(n):
            time.sleep(4)
            r2_before = forwarded(n, "r2")
            n.sh("server", "route", "replace", "default", "via", n.r2_ip)
            time.sleep(6)
            seen[mode] = forwarded(n, "r2") - r2_before
            n.sh("server", "route", "del", "default")
            time.sleep(2)
            n.sh("server", "route", "add", "default", "via", n.r1_ip)

        before = net.tcp_segs("server")
        secs = TRANSFER_S if mode == "accel" else KERNEL_TRANSFER_S
        s, _, _ = paced_run(net, secs, 1 << 20, "route-" + mode, srv_conf=conf, during=during)
        return before, net.tcp_segs("server"), s

    out = run_at_once(run, list(nets))
    for mode in nets:
        assert seen[mode] > 200, "%s: the second router forwarded only %d datagrams" % (
            mode, seen[mode])
    before, after, s = out["accel"]
    assert_bypassed(before, after, s["bytes"] // 1448, "routed transfer")


# ---- 3. a neighbour's MAC changes, then its entry is deleted ---------------------------

def neigh_mac(net, side, ip):
    out = net._ip("-n", net.ns_dev(side)[0], "neigh", "show", ip).stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else None


@pytest.mark.slow
def test_neighbour_mac_change_and_delete(netpair):
    """During a paced transfer the client's MAC changes (and the server's neighbour entry
    with it): the stream goes on to the new MAC (frames to the old one are dropped by the
    client's veth, so it could not complete otherwise).  Then the server's entry is deleted:
    the stack has the kernel resolve it again, and the transfer completes intact."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", 7300)])
    new_mac = "02:00:00:%02x:00:02" % net.k

    def during(n):
        time.sleep(3)
        n._ip("-n", n.cli_ns, "link", "set", "dev", "bypv1", "address", new_mac)
        n._ip("-n", n.srv_ns, "neigh", "replace", n.cli_ip, "lladdr", new_mac, "dev", "bypv0",
              "nud", "stale")
        time.sleep(4)
        n._ip("-n", n.srv_ns, "neigh", "del", n.cli_ip, "dev", "bypv0")
        time.sleep(4)

    before = net.tcp_segs("server")
    s, c, srv = paced_run(net, 12, 1 << 20, "neigh", srv_conf=conf, during=during,
                          srv_env={"BYPASS_LOG": "info"})
    assert neigh_mac(net, "server", net.cli_ip) == new_mac, \
        "the kernel's neighbour entry for the client was not resolved again"
    assert any("moved to %s" % new_mac in l for l in bypass_lines(srv.err())), srv.describe()
    assert_bypassed(before, net.tcp_segs("server"), s["bytes"] // 1448, "neighbour change")


# ---- 4. secondary addresses ------------------------------------------------------------

def probe(net, host, port, timeout=3.0):
    """Connect from the client namespace: 'ok', or the exception's class name / errno."""
    code = ("import socket,errno\n"
            "try:\n"
            "  s=socket.create_connection((%r,%d),timeout=%f); print('ok')\n"
            "except socket.timeout: print('timeout')\n"
            "except OSError as e: print(errno.errorcode.get(e.errno, e.errno))\n"
            % (host, port, timeout))
    return net.run("client", [PYTHON, "-c", code], timeout=timeout + 30).stdout.strip()


def eventually(what, fn, timeout=15.0):
    """fn() until it returns a true value (the mirror applies changes within milliseconds,
    but the machine may be loaded); its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > deadline:
            assert v, "%s: not within %.0f s" % (what, timeout)
            return v
        time.sleep(0.2)


def redis_roundtrip(net, host, key):
    cp = net.run("client", ["redis-cli", "-h", host, "-p", RPORT, "SET", key, key + "-v"],
                 timeout=30)
    assert cp.stdout.strip() == "OK", (host, cp.stdout, cp.stderr)
    cp = net.run("client", ["redis-cli", "-h", host, "-p", RPORT, "GET", key], timeout=30)
    assert cp.stdout.strip() == key + "-v", (host, cp.stdout, cp.stderr)


def test_secondary_addresses(netpair):
    """Addresses of the server interface, present at start or added while running, same
    subnet or another, are served by the running accelerated listener (INADDR_ANY); a
    removed one is refused exactly as the kernel refuses it (compared with a kernel listener
    on another port)."""
    net = netpair(accel=("server",))
    k = net.k
    at_start, same, other = "10.77.%d.4" % k, "10.77.%d.3" % k, "10.78.%d.1" % k
    net._ip("-n", net.srv_ns, "addr", "add", at_start + "/24", "dev", "bypv0")
    net._ip("-n", net.cli_ns, "addr", "add", "10.78.%d.2/24" % k, "dev", "bypv1")
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", RPORT)])
    srv = start_redis(net, conf)
    kernel_srv = net.spawn("server", [PYTHON, "-c",
                                      "import socket,time\n"
                                      "s=socket.socket();s.bind(('0.0.0.0',6380));s.listen(64)\n"
                                      "while True: s.accept()[0].close()\n"],
                           name="kernel-listener")
    net.wait_port(6380, kernel_srv)
    net._ip("-n", net.srv_ns, "addr", "add", same + "/24", "dev", "bypv0")
    net._ip("-n", net.srv_ns, "addr", "add", other + "/24", "dev", "bypv0")
    for host in (same, other):
        eventually("accepted on " + host, lambda: probe(net, host, RPORT) == "ok")
    before = net.tcp_segs("server")
    for i, host in enumerate((net.srv_ip, at_start, same, other)):
        redis_roundtrip(net, host, "k%d" % i)
        cp = net.run("client", ["redis-benchmark", "-h", host, "-p", RPORT, "-n", 2000,
                                "-c", 5, "-t", "set", "--csv"], timeout=120)
        assert cp.returncode == 0, cp.stderr
        parse_bench(cp.stdout, "set")
    assert_bypassed(before, net.tcp_segs("server"), 8000, "secondary addresses")
    for gone in (same, other):
        net._ip("-n", net.srv_ns, "addr", "del", gone + "/24", "dev", "bypv0")
    time.sleep(0.5)
    for gone in (same, other):
        # Nobody owns the address: both end in a timeout (a listener still answering there
        # would say "ok" at once).
        kernel = probe(net, gone, 6380, timeout=1.5)
        accel = probe(net, gone, RPORT, timeout=1.5)
        assert kernel != "ok", "the kernel still answers on a removed address?"
        assert accel == kernel, "removed %s: accelerated listener %s, kernel %s" % (
            gone, accel, kernel)
    redis_roundtrip(net, at_start, "after")
    assert srv.poll() is None, srv.describe()
    # The library never asked the kernel to resolve one of the server's own addresses.
    for own in (net.srv_ip, at_start, same, other):
        assert neigh_mac(net, "server", own) is None and \
            own not in net._ip("-n", net.srv_ns, "neigh", "show").stdout, own


# ---- 5. link down and up, MTU ------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("which", ["peer", "own"])
def test_link_down_up_during_transfer(netpair, which):
    """The server's link goes down for 2 s during a paced transfer (its veth peer set down:
    carrier lost; or the accelerated interface itself set down): the stack holds
    transmission, then resumes, and the transfer completes."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", 7300)])
    ns, dev = (net.cli_ns, "bypv1") if which == "peer" else (net.srv_ns, "bypv0")

    def during(n):
        time.sleep(3)
        n._ip("-n", ns, "link", "set", "dev", dev, "down")
        time.sleep(2)
        n._ip("-n", ns, "link", "set", "dev", dev, "up")

    s, c, srv = paced_run(net, 7, 1 << 20, "link", srv_conf=conf, during=during,
                          srv_env={"BYPASS_LOG": "info"})
    log = "\n".join(bypass_lines(srv.err()))
    assert "link down" in log and "link up" in log, srv.describe()


def test_mtu_lowered_before_new_connection(netpair):
    """The interface's MTU lowered to 1280 while the accelerated server runs: the next
    connection gets an MSS of 1240 and no segment above it; the one before had 1460."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", 7300)])
    srv = net.spawn("server", [PYTHON, PACED, "server", 7300, 1, 4 << 20, "mtu", 2],
                    name="paced-srv", conf=conf, env={"BYPASS_LOG": "info"})
    srv.wait_ready()
    first = json.loads(net.run("client", [PYTHON, PACED, "client", net.srv_ip, 7300],
                               timeout=60, check=True).stdout)
    net._ip("-n", net.srv_ns, "link", "set", "dev", "bypv0", "mtu", "1280")
    eventually("the stack saw the MTU change", lambda: "MTU is now 1280" in srv.err())
    second = json.loads(net.run("client", [PYTHON, PACED, "client", net.srv_ip, 7300],
                                timeout=60, check=True).stdout)
    srv.wait(30)
    assert first["snd_mss"] == 1460 and first["rcv_mss"] > 1240, first
    assert second["snd_mss"] == 1240, second
    assert 1000 < second["rcv_mss"] <= 1240, second
    sent = [json.loads(l) for l in srv.out().splitlines()]
    assert [x["bytes"] for x in sent] == [first["rx_bytes"], second["rx_bytes"]]


# ---- 6. veth with the kernel's default offloads ---------------------------------------------

def test_veth_default_offloads(netpair):
    """The kernel side of the veth keeps transmit checksum offload on (its TCP segments
    carry partial checksums): the accelerated redis serves, the kernel carried nothing."""
    net = netpair(accel=("server",))
    cp = net.run("client", ["ethtool", "-k", "bypv1"], check=True)
    assert "tx-checksumming: on" in cp.stdout, cp.stdout
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", RPORT)])
    srv = start_redis(net, conf)
    before = net.tcp_segs("server")
    cp = net.run("client", ["redis-benchmark", "-h", net.srv_ip, "-p", RPORT, "-n", 20000,
                            "-c", 20, "-t", "set,get", "-d", 3000, "--csv"], timeout=180)
    assert cp.returncode == 0, cp.stderr
    parse_bench(cp.stdout, "set,get")
    assert_bypassed(before, net.tcp_segs("server"), 40000, "veth with tx offload")
    assert srv.poll() is None, srv.describe()


# ---- 7. a destination routed through another interface -------------------------------------

ECHO = ("import socket,threading,sys\n"
        "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
        "s.bind(('0.0.0.0',int(sys.argv[1])));s.listen(16);print('ready',flush=True)\n"
        "def echo(c):\n"
        "  while True:\n"
        "    d=c.recv(65536)\n"
        "    if not d: break\n"
        "    c.sendall(d)\n"
        "  c.close()\n"
        "while True: threading.Thread(target=echo,args=(s.accept()[0],),daemon=True).start()\n")

EXCHANGE = ("import socket,sys\n"
            "data=bytes(range(256))*400\n"
            "for host in sys.argv[2:]:\n"
            "  c=socket.create_connection((host,int(sys.argv[1])),timeout=30)\n"
            "  c.sendall(data);c.shutdown(socket.SHUT_WR);got=b''\n"
            "  while True:\n"
            "    d=c.recv(65536)\n"
            "    if not d: break\n"
            "    got+=d\n"
            "  assert got==data,(host,len(got))\n"
            "  c.close();print(host,'ok',flush=True)\n")


def test_destination_through_another_interface(routednet):
    """An accelerated program whose rule covers every address connects to a peer routed
    through another interface: the kernel carries it (its counters move), untouched; the
    same program's connection through the accelerated interface's router is accelerated."""
    net = routednet(accel=("server",), far=True)
    port = 7400
    far = net.spawn("far", [PYTHON, "-c", ECHO, port], name="echo-far")
    far.wait_ready()
    cli = net.spawn("client", [PYTHON, "-c", ECHO, port], name="echo-cli")
    cli.wait_ready()
    conf = write_conf(net.dir / "out.conf", "bypv0", [("tcp", port)])
    before = net.tcp_segs("server")
    cp = net.run("server", [PYTHON, "-c", EXCHANGE, port, net.far_ip], conf=conf,
                 env={"BYPASS_LOG": "info"}, timeout=60)
    assert cp.returncode == 0 and "ok" in cp.stdout, cp.stdout + cp.stderr
    moved = net.tcp_segs("server") - before
    assert moved > 60, "the connection through another interface did not use the kernel"
    before = net.tcp_segs("server")
    cp = net.run("server", [PYTHON, "-c", EXCHANGE, port, net.cli_ip], conf=conf,
                 env={"BYPASS_LOG": "info"}, timeout=60)
    assert cp.returncode == 0 and "ok" in cp.stdout, cp.stdout + cp.stderr
    assert_bypassed(before, net.tcp_segs("server"), 60, "routed connect through bypv0", bound=10)


# ---- a neighbour the kernel cannot resolve ---------------------------------------------------

def test_failed_neighbour_is_ehostunreach(netpair):
    """A connect to an address of the subnet that nobody holds fails with EHOSTUNREACH once
    the kernel marks the neighbour FAILED, accelerated or not."""
    net = netpair(accel=("client",))
    ghost = "10.77.%d.9" % net.k
    code = ("import socket,errno\n"
            "s=socket.socket()\n"
            "s.settimeout(30)\n"
            "try: s.connect((%r,7500)); print('ok')\n"
            "except socket.timeout: print('timeout')\n"
            "except OSError as e: print(errno.errorcode.get(e.errno,e.errno))\n" % ghost)
    kernel = net.run("client", [PYTHON, "-c", code], timeout=60).stdout.strip()
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", 7500)])
    accel = net.run("client", [PYTHON, "-c", code], conf=conf, env={"BYPASS_LOG": "info"},
                    timeout=60)
    assert kernel == "EHOSTUNREACH", kernel
    assert accel.stdout.strip() == kernel, accel.stdout + accel.stderr
    assert "unreachable (kernel entry FAILED)" in accel.stderr, accel.stderr


def test_syn_from_peer_routed_elsewhere_is_reset(routednet):
    """A SYN that reaches the accelerated listener from a peer the kernel routes through
    another interface is answered with a reset and an info line, never silence; with the
    route back through the accelerated interface, the same peer is served."""
    net = routednet(accel=("server",), far=True)
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", RPORT)])
    srv = start_redis(net, conf)
    cli_net = "10.82.%d.0/24" % net.k
    net.sh("server", "route", "add", cli_net, "via", net.far_ip, "dev", "bypx0")
    eventually("a reset for the off-route SYN",
               lambda: probe(net, net.srv_ip, RPORT) == "ECONNREFUSED")
    assert any("reset: the kernel routes it through another interface" in l
               for l in bypass_lines(srv.err())), srv.describe()
    net.sh("server", "route", "del", cli_net)
    eventually("served again", lambda: probe(net, net.srv_ip, RPORT) == "ok")
    redis_roundtrip(net, net.srv_ip, "back")


# ---- checksums: partial ones trusted on veth, bad ones still dropped -----------------------

SYN_PROBE = r"""
import sys
from scapy.all import IP, TCP, sr1, conf
conf.verb = 0
dst, port, bad = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "bad"
pkt = IP(dst=dst) / TCP(sport=40000 + bad, dport=port, flags="S", seq=1000)
pkt = IP(bytes(pkt))                          # checksums computed
if bad:
    pkt[TCP].chksum ^= 0x00ff
ans = sr1(pkt, timeout=3)
print("synack" if ans is not None and ans.haslayer(TCP) and ans[TCP].flags & 0x12 == 0x12
      else "none")
"""


def test_bad_tcp_checksum_still_dropped_on_veth(netpair):
    """On veth the stack trusts partial checksums only: a SYN with a wrong checksum gets no
    answer, the same SYN with a right one gets a SYN-ACK (scapy from the client side)."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "redis.conf", "bypv0", [("tcp", RPORT)])
    start_redis(net, conf)
    good = net.run("client", [PYTHON, "-c", SYN_PROBE, net.srv_ip, RPORT, "good"], timeout=60)
    bad = net.run("client", [PYTHON, "-c", SYN_PROBE, net.srv_ip, RPORT, "bad"], timeout=60)
    assert good.stdout.strip() == "synack", good.stdout + good.stderr
    assert bad.stdout.strip() == "none", bad.stdout + bad.stderr


@pytest.mark.parametrize("kind", ["unreachable", "prohibit", "blackhole"])
def test_connect_through_reject_route_gets_kernel_errno(netpair, kind):
    """A connect whose destination the kernel routes to unreachable/prohibit/blackhole gets
    the kernel's errno, accelerated or not."""
    net = netpair(accel=("client",))
    dst = "10.99.%d.7" % net.k
    net._ip("-n", net.cli_ns, "route", "add", kind, "10.99.%d.0/24" % net.k)
    code = ("import socket,errno\n"
            "s=socket.socket()\n"
            "s.settimeout(10)\n"
            "try: s.connect((%r,7600)); print('ok')\n"
            "except socket.timeout: print('timeout')\n"
            "except OSError as e: print(errno.errorcode.get(e.errno,e.errno))\n" % dst)
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", 7600)])
    kernel = net.run("client", [PYTHON, "-c", code], timeout=60).stdout.strip()
    accel = net.run("client", [PYTHON, "-c", code], conf=conf, timeout=60)
    assert kernel not in ("ok", "timeout"), kernel
    assert accel.stdout.strip() == kernel, accel.stdout + accel.stderr
