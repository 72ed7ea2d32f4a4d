"""Issue 9: multicast.  Test 4 (IGMP kept by the kernel: `ip maddr` shows the groups while
joined, not after leave or exit; a kernel receiver on another group of the same port is
untouched; side by side with the kernel) and test 3 (a feed of 1,000,000 sequenced
datagrams over 32 groups to an epoll receiver: complete and in order; with a slow
receiver and a small SO_RCVBUF the loss is reported exactly by SO_RXQ_OVFL)."""

import json
import os
import re
import signal
import subprocess
import time

import pytest

from .conftest import HERE, PYTHON, REPO, write_conf

PORT = 7600
GROUPS = ["239.9.1.1", "239.9.1.2", "239.9.1.3"]
KGROUP = "239.9.2.9"     # a kernel-only receiver's group, same port

SENDER = r"""
import socket, sys, time
ifaddr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(ifaddr))
i = 0
for spec in sys.argv[3:]:
    g, n, word = spec.split(":")
    for k in range(int(n)):
        s.sendto(("%s %s %d" % (g, word, k)).encode(), (g, port))
        i += 1
        if i % 20 == 0:
            time.sleep(0.002)
"""


def maddrs(net):
    out = subprocess.run(["ip", "-n", net.srv_ns, "maddr", "show", "dev", "bypv0"],
                         stdout=subprocess.PIPE, text=True, timeout=10, check=True).stdout
    return set(re.findall(r"inet\s+(\d+\.\d+\.\d+\.\d+)", out))


def wait_line(proc, prefix, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in proc.out().splitlines():
            if line.startswith(prefix):
                return line[len(prefix):].strip()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    pytest.fail("no %r from %s\n%s" % (prefix, proc.name, proc.describe()), pytrace=False)


def send(net, *specs):
    net.run("client", [PYTHON, "-c", SENDER, net.cli_ip, PORT] + list(specs), timeout=60,
            check=True)


def membership_run(net, conf):
    """One run of the member (preloaded when @conf); returns what it and the checks saw."""
    krecv = net.spawn("server", [PYTHON, str(HERE / "udp_mcast_member.py"), PORT, 1, KGROUP, net.srv_ip, "once"],
                      name="kernel_member")
    krecv.wait_ready()
    member = net.spawn("server", [PYTHON, str(HERE / "udp_mcast_member.py"), PORT, 100,
                                  ",".join(GROUPS), net.srv_ip], name="member", conf=conf,
                       env={"BYPASS_LOG": "info"})
    member.wait_ready()
    seen = {"joined": sorted(set(GROUPS) & maddrs(net))}
    before = net.snmp("server")["Udp.InDatagrams"]
    send(net, *["%s:100:data" % g for g in GROUPS])
    seen["phase1"] = json.loads(wait_line(member, "phase1"))
    seen["kernel_udp_in"] = net.snmp("server")["Udp.InDatagrams"] - before
    wait_line(member, "left")
    seen["after_leave"] = sorted(set(GROUPS) & maddrs(net))
    send(net, "%s:50:data" % GROUPS[0], "%s:5:data" % GROUPS[1], "%s:1:exit" % GROUPS[1])
    seen["phase2"] = json.loads(wait_line(member, "phase2"))
    member.wait(30)
    seen["after_exit"] = sorted(set(GROUPS) & maddrs(net))
    seen["kernel_member_still_joined"] = KGROUP in maddrs(net)
    send(net, "%s:1:data" % KGROUP)
    # (it also saw the other groups' traffic, IP_MULTICAST_ALL, as many as timing allowed)
    seen["kernel_member"] = json.loads(wait_line(krecv, "phase1"))[KGROUP]
    krecv.wait(30)
    return seen, member.err()


def test_igmp_membership_matches_kernel(netpair):
    net = netpair(accel=("server",))
    kernel, _ = membership_run(net, None)
    conf = write_conf(net.dir / "mc.conf", "bypv0", [("udp", PORT, "239.9.1.0/24")])
    accel, err = membership_run(net, conf)
    assert "udp socket on port %d accelerated" % PORT in err, err
    assert kernel["joined"] == GROUPS and kernel["after_leave"] == GROUPS[1:], kernel
    assert kernel["after_exit"] == [] and kernel["phase2"] == {GROUPS[1]: 5}, kernel
    assert kernel["kernel_member"] == 1, kernel
    assert kernel["kernel_udp_in"] >= 300, kernel
    # The accelerated run: same answers, and the 300 datagrams bypassed the kernel.
    assert accel["kernel_udp_in"] < 5, accel
    for k in ("joined", "phase1", "after_leave", "phase2", "after_exit",
              "kernel_member_still_joined", "kernel_member"):
        assert accel[k] == kernel[k], (k, accel, kernel)


FEED_BASE, FEED_GROUPS, FEED_PORT = "239.9.3.1", 32, 7700


def feed(net, cprog, conf, count, rate, rcvbuf=0, slow_us=0, et=False):
    """Runs the feed; the receiver's JSON, plus the server namespace's kernel UDP input
    during the run and, when accelerated, the receiver's live counters (bypass-stat)."""
    exe = cprog("udp_feed")
    rx = net.spawn("server", [exe, "recv", FEED_BASE, FEED_GROUPS, FEED_PORT, count, rcvbuf,
                              slow_us, net.srv_ip] + (["et"] if et else []) + ["hold"],
                   name="feed_rx", conf=conf)
    rx.wait_ready()
    before = net.snmp("server")["Udp.InDatagrams"]
    net.run("client", [exe, "send", FEED_BASE, FEED_GROUPS, FEED_PORT, count, rate,
                       net.cli_ip], timeout=600, check=True)
    line = wait_line(rx, "{", timeout=120)
    res = json.loads("{" + line)
    res["kernel_udp_in"] = net.snmp("server")["Udp.InDatagrams"] - before
    if conf is not None:
        time.sleep(0.3)   # one more sample of the live counters
        res["stat"] = json.loads(subprocess.run(
            [str(REPO / "build" / "bypass-stat"), "--json", str(rx.pid)],
            stdout=subprocess.PIPE, text=True, timeout=30, check=True).stdout)
    rx.stop()
    return res


@pytest.mark.slow
def test_feed_complete_and_in_order(netpair, cprog):
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "feed.conf", "bypv0", [("udp", FEED_PORT, "239.9.3.0/24")])
    # A moderate rate: the receiver shares this 2-vCPU machine with the sender (and other
    # work); the rate at which nothing is lost is measured by bench/udp, not asserted.
    res = feed(net, cprog, conf, 1000000, 40000)
    assert res["ended"] == FEED_GROUPS, res
    assert res["received"] == 1000000 and res["lost"] == 0 and res["reordered"] == 0, res
    assert res["reported_drops"] == 0, res
    assert res["kernel_udp_in"] < 100, res      # the end markers at most; 1M went by XDP


@pytest.mark.parametrize("mode", ["kernel", "bypass", "bypass_pmd", "bypass_ring_1024"])
def test_feed_survives_receiver_stall(netpair, cprog, mode):
    """The receiver is stopped (SIGSTOP, every thread) for 300 ms in the middle of a feed at
    20,000 datagrams/s: 6,000 datagrams arrive meanwhile.  The kernel's socket queues hold
    them; the accelerated receiver's AF_XDP ring holds them too (16,384 buffers, config
    rx_ring), and it gets every one, in order.  The control: DPDK's af_xdp PMD
    (rx_ring = 0) keeps 2,048 buffers in its fill ring and loses the rest at the ring,
    counted by bypass-stat: the stall does outlast a shallow ring.  Our socket with a ring
    of 1,024 (rx_ring = 1024) loses too, and counts every one lost (XDP_STATISTICS)."""
    net = netpair(accel=("server",))
    conf = None
    if mode != "kernel":
        conf = write_conf(net.dir / "feed.conf", "bypv0", [("udp", FEED_PORT, "239.9.3.0/24")])
    env = {"bypass_pmd": {"BYPASS_RX_RING": "0"},
           "bypass_ring_1024": {"BYPASS_RX_RING": "1024"}}.get(mode)
    exe = cprog("udp_feed")
    count, rate = 60000, 20000
    rx = net.spawn("server", [exe, "recv", FEED_BASE, FEED_GROUPS, FEED_PORT, count, 1 << 20, 0,
                              net.srv_ip, "hold"], name="feed_rx", conf=conf, env=env)
    rx.wait_ready()
    before = net.snmp("server")["Udp.InDatagrams"]
    tx = net.spawn("client", [exe, "send", FEED_BASE, FEED_GROUPS, FEED_PORT, count, rate,
                              net.cli_ip], name="feed_tx")
    time.sleep(1.5)
    os.kill(rx.pid, signal.SIGSTOP)
    try:
        time.sleep(0.3)
    finally:
        os.kill(rx.pid, signal.SIGCONT)
    assert tx.wait(120) == 0, tx.describe()
    res = json.loads("{" + wait_line(rx, "{", timeout=120))
    kernel_in = net.snmp("server")["Udp.InDatagrams"] - before
    assert res["ended"] == FEED_GROUPS and res["reordered"] == 0, res
    if mode == "kernel":
        assert res["received"] == count and res["lost"] == 0, res
        return
    time.sleep(0.3)
    stat = json.loads(subprocess.run(
        [str(REPO / "build" / "bypass-stat"), "--json", str(rx.pid)],
        stdout=subprocess.PIPE, text=True, timeout=30, check=True).stdout)["stack"]
    rx.stop()
    assert kernel_in < 100, kernel_in      # the end markers at most: the feed went by XDP
    if mode == "bypass":
        assert res["received"] == count and res["lost"] == 0, (res, stat)
        assert stat["rx_drops"] == 0, stat
    else:
        # at least the 6,000 that arrived less what the ring held (and no loss silent)
        assert res["lost"] >= 3000 and res["received"] + res["lost"] == count, (res, stat)
        assert stat["rx_drops"] + res["reported_drops"] >= res["lost"], (res, stat)


@pytest.mark.parametrize("et", [False, True], ids=["level", "edge"])
def test_feed_256_groups_epoll(netpair, cprog, et):
    """epoll over 256 accelerated sockets and a kernel fd (a pipe), level and edge
    triggered: every datagram of every group, in order."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "feed.conf", "bypv0", [("udp", FEED_PORT, "239.9.3.0/24")])
    exe = cprog("udp_feed")
    rx = net.spawn("server", [exe, "recv", "239.9.3.1", 256, FEED_PORT, 51200, 0, 0, net.srv_ip]
                   + (["et"] if et else []), name="feed_rx", conf=conf)
    rx.wait_ready(timeout=60)
    net.run("client", [exe, "send", "239.9.3.1", 256, FEED_PORT, 51200, 10000, net.cli_ip],
            timeout=300, check=True)
    rx.wait(120)
    res = json.loads(rx.out().splitlines()[-1])
    assert res["ended"] == 256 and res["pipe_events"] == 1, res
    assert res["received"] == 51200 and res["lost"] == 0 and res["reordered"] == 0, res


@pytest.mark.parametrize("accelerated", [False, True], ids=["kernel", "bypass"])
def test_feed_slow_receiver_reports_loss(netpair, cprog, accelerated):
    net = netpair(accel=("server",))
    conf = (write_conf(net.dir / "feed.conf", "bypv0", [("udp", FEED_PORT, "239.9.3.0/24")])
            if accelerated else None)
    res = feed(net, cprog, conf, 64000, 50000, rcvbuf=4096, slow_us=2000, et=True)
    assert res["ended"] == FEED_GROUPS, res
    assert res["lost"] > 0 and res["reported_drops"] > 0, res
    assert res["received"] + res["lost"] == 64000, res
    # No loss is silent.  On the kernel every datagram lost was dropped by a full socket
    # queue, and the sockets said so (SO_RXQ_OVFL).  Accelerated, a datagram is also lost
    # when the NIC ring overflows because no thread ran the stack in time (this 2-vCPU
    # machine is shared; the progress thread has idle priority): bypass-stat counts those.
    if accelerated:
        st = res["stat"]["stack"]
        silent = res["lost"] - res["reported_drops"] - st["rx_drops"] - st["rx_no_pool"]
        assert silent == 0, res
        udp = [k for k in res["stat"]["sockets"] if k["proto"] == "udp"]
        assert len(udp) == FEED_GROUPS, res["stat"]
        assert sum(k["drops"] for k in udp) == res["reported_drops"], res["stat"]
        assert sorted(k["groups"][0] for k in udp) == sorted(
            "239.9.3.%d" % (i + 1) for i in range(FEED_GROUPS)), res["stat"]
        assert res["kernel_udp_in"] < 100, res
    else:
        assert res["reported_drops"] == res["lost"], res


OPT_PEER = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(sys.argv[1]))
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
while True:
    d, a = s.recvfrom(100)
    g, p = d.split()
    s.sendto(b"remote", (g.decode(), int(p)))
"""


def test_multicast_loop_and_all_match_kernel(netpair):
    """IP_MULTICAST_LOOP delivers a process's own sends to its sockets on the group (on by
    default, not when off); IP_MULTICAST_ALL: a socket bound to the port that joined nothing
    still gets a group another socket joined, unless it turned the option off; a join made
    before bind() counts."""
    net = netpair(accel=("server",))
    peer = net.spawn("client", [PYTHON, "-c", OPT_PEER, net.cli_ip, 7650], name="opt_peer")
    peer.wait_ready()
    args = [PYTHON, str(HERE / "udp_mcast_opts.py"), net.srv_ip, "239.9.4.1", 7651,
            net.cli_ip, 7650]
    kernel = net.run("server", args, timeout=60, check=True)
    conf = write_conf(net.dir / "opts.conf", "bypv0", [("udp", 7651, "239.9.4.0/24")])
    before = net.snmp("server")["Udp.InDatagrams"]
    accel = net.run("server", args, conf=conf, env={"BYPASS_LOG": "info"}, timeout=60,
                    check=True)
    moved = net.snmp("server")["Udp.InDatagrams"] - before
    k = json.loads(kernel.stdout.splitlines()[-1])
    assert k == {"A": ["loop1", "remote"], "C": ["loop1", "remote"], "D": [],
                 "E": ["loop1", "remote"]}, k
    assert json.loads(accel.stdout.splitlines()[-1]) == k, accel.stdout + accel.stderr
    assert accel.stderr.count("udp socket on port 7651 accelerated") == 4, accel.stderr
    assert moved == 0, "the accelerated run's datagrams went through the kernel"
