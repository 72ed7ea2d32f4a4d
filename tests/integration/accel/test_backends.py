"""Issue 3: the af_packet and tap backends, for an interface dedicated to the stack.  The
kernel holds no address of the stack's on it, so the stack answers ARP itself and every
answer the client gets was served by the stack."""

import os
import subprocess
import time

from .conftest import PYTHON, bypass_lines, write_conf

PORT = 6379


def redis_argv(net):
    return ["redis-server", "--port", PORT, "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", net.dir,
            "--loglevel", "warning"]


def redis_round(net, side, host, n=50):
    """SET/GET @n keys through redis-cli from @side; returns the replies."""
    script = "".join("SET k%d v%d\nGET k%d\n" % (i, i, i) for i in range(n))
    cp = net.run(side, ["redis-cli", "-h", host, "-p", PORT], input=script, timeout=60,
                 check=True)
    return cp.stdout.split()


def expected(n=50):
    out = []
    for i in range(n):
        out += ["OK", "v%d" % i]
    return out


DRIVER_KINDS = ("net", "bus", "mempool", "common", "crypto", "compress", "dma", "event",
                "baseband", "raw", "regex", "vdpa")


def dpdk_drivers(pid):
    """The DPDK drivers mapped in process @pid (librte_net_tap.so.23.0 -> net_tap)."""
    names = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            base = line.rsplit("/", 1)[-1].strip()
            if base.startswith("librte_") and base.split("_")[1] in DRIVER_KINDS:
                names.add(base[len("librte_"):].split(".so")[0])
    return names


def assert_only_drivers(srv, backend_driver, needed=()):
    """A shared build of DPDK loads every driver of its plugin directory (128 here, with
    their libraries: 1,060 more mappings, copied at every fork and torn down at every
    exit); the engine loads the mempool's, the vdev bus's and its backend's only (and
    what the backend's library links, @needed)."""
    want = {"mempool_ring", "bus_vdev"} | ({backend_driver} if backend_driver else set())
    want |= set(needed)
    got = dpdk_drivers(srv.pid)
    assert "libbypass-engine.so" in open("/proc/%d/maps" % srv.pid).read(), srv.describe()
    assert got == want, "DPDK drivers loaded: %s" % sorted(got)


def test_af_xdp_loads_only_the_drivers_it_needs(netpair):
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "xdp.conf", "bypv0", [("tcp", PORT)])
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf)
    net.wait_port(PORT, srv)
    before = net.snmp("server")
    assert redis_round(net, "client", net.srv_ip) == expected()
    after = net.snmp("server")
    assert after["Tcp.InSegs"] == before["Tcp.InSegs"], "the kernel carried the traffic"
    assert_only_drivers(srv, None)
    assert srv.stop() == 0, srv.describe()


def test_af_packet_dedicated_interface(netpair):
    net = netpair(accel=("server",))
    # The interface becomes the stack's: the kernel forgets its address on it, and the
    # client forgets the MAC it had learnt, so the stack must answer ARP.
    net.run("server", ["ip", "addr", "flush", "dev", "bypv0"], check=True)
    net.run("client", ["ip", "neigh", "flush", "dev", "bypv1"], check=True)
    conf = write_conf(net.dir / "afp.conf", "bypv0", [("tcp", PORT)], backend="af_packet",
                      extra='ip = "%s/24";\n' % net.srv_ip)
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf,
                    env={"BYPASS_LOG": "info"})
    net.wait_port(PORT, srv)
    before = net.snmp("server")
    assert redis_round(net, "client", net.srv_ip) == expected()
    after = net.snmp("server")
    moved = (after["Tcp.InSegs"] + after["Tcp.OutSegs"]) - (before["Tcp.InSegs"] + before["Tcp.OutSegs"])
    assert moved == 0, "the server namespace's kernel carried TCP (%d segments)" % moved
    neigh = net.run("client", ["ip", "neigh", "show", net.srv_ip], check=True).stdout
    assert "lladdr" in neigh, "the client has no neighbour entry for the stack: " + neigh
    assert_only_drivers(srv, "net_af_packet", needed=("bus_pci",))   # its DT_NEEDED
    assert srv.stop() == 0, srv.describe()
    lines = bypass_lines(srv.err())
    assert any("backend af_packet" in l for l in lines), srv.describe()
    assert not any("cannot start" in l for l in lines), srv.describe()


def test_tap_backend(netpair):
    """The PMD creates the tap interface; its kernel side is the stack's peer host."""
    net = netpair(accel=("server", "client"))
    stack_ip, peer_ip = "10.79.%d.1" % net.k, "10.79.%d.2" % net.k
    conf = write_conf(net.dir / "tap.conf", "bypt0", [("tcp", PORT)], backend="tap",
                      extra='ip = "%s/24";\n' % stack_ip)
    srv = net.spawn("server", redis_argv(net), name="redis", conf=conf,
                    env={"BYPASS_LOG": "info"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if net.run("server", ["ip", "link", "show", "bypt0"]).returncode == 0:
            break
        assert srv.poll() is None, srv.describe()
        time.sleep(0.1)
    net.run("server", ["ip", "addr", "add", peer_ip + "/24", "dev", "bypt0"], check=True)
    net.run("server", ["ip", "link", "set", "bypt0", "up"], check=True)
    net.wait_port(PORT, srv, host=stack_ip, side="server")
    before = net.snmp("server")
    # The kernel does not own stack_ip: only the stack behind the tap can answer.
    assert redis_round(net, "server", stack_ip) == expected()
    after = net.snmp("server")
    assert after["Tcp.PassiveOpens"] == before["Tcp.PassiveOpens"], \
        "a kernel listener accepted the connection"
    assert_only_drivers(srv, "net_tap")
    assert after["Tcp.ActiveOpens"] > before["Tcp.ActiveOpens"]
    assert srv.stop() == 0, srv.describe()
    lines = bypass_lines(srv.err())
    assert any("backend tap" in l for l in lines), srv.describe()


# Binds, listens and closes the accelerated port: the engine starts and leaves.
SHORT = r"""
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.close()
"""


def test_start_asks_sysfs_only_about_cpus_that_can_exist(netpair):
    """DPDK's EAL probes sysfs for each of the 1,024 CPUs of its build, and for each in
    every NUMA node: 5,000 access() calls at every start.  The engine's start answers those
    past the machine's possible CPUs itself (ENOENT, as sysfs would): about ten calls
    remain, and the EAL still finds this machine's CPUs."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "start.conf", "bypv0", [("tcp", PORT)])
    trace = net.dir / "start.strace"
    cp = net.run("server", ["strace", "-f", "-qq", "-e", "trace=access", "-o", trace,
                            PYTHON, "-c", SHORT, net.srv_ip, PORT],
                 conf=conf, env={"BYPASS_LOG": "debug"}, timeout=60)
    assert cp.returncode == 0, cp.stderr
    lines = bypass_lines(cp.stderr)
    assert any("EAL up" in l for l in lines), cp.stderr   # the engine did start
    ncpu = os.cpu_count()   # the CPUs configured, which the EAL counts
    assert any("Detected CPU lcores: %d" % ncpu in l for l in lines), \
        [l for l in lines if "lcores" in l]
    probes = [l for l in trace.read_text().splitlines() if '"/sys/devices/system/' in l]
    print("sysfs access() calls at the start:", len(probes))
    assert 0 < len(probes) < 100, "%d sysfs probes, first: %s" % (len(probes), probes[:3])
