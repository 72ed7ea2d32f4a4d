"""Issue 9, test 2: sockperf, unmodified, over accelerated UDP: a ping-pong with both ends
accelerated, and a multicast under-load run over 16 groups (a feed file, --mc-rx-if /
--mc-tx-if) whose gap detection reports no dropped message at a moderate rate.  The
accelerated ends' kernel UDP counters stay still."""

import re
import shutil
import time

import pytest

from .conftest import write_conf

PORT, MPORT = 11111, 7900
GROUPS = ["239.9.6.%d" % (i + 1) for i in range(16)]


def udp_moved(net, side, before):
    c = net.snmp(side)
    return c["Udp.InDatagrams"] + c["Udp.OutDatagrams"] - before


def udp_now(net, side):
    c = net.snmp(side)
    return c["Udp.InDatagrams"] + c["Udp.OutDatagrams"]


def stat(text, name):
    m = re.search(name + r"\s*=\s*(\d+)", text)
    assert m, text[-2000:]
    return int(m.group(1))


@pytest.fixture
def sockperf():
    exe = shutil.which("sockperf")
    if exe is None:
        pytest.fail("sockperf not found (bash scripts/setup.sh)", pytrace=False)
    return exe


def test_sockperf_udp_pingpong_both_accelerated(netpair, sockperf):
    net = netpair(accel=("server", "client"))
    sconf = write_conf(net.dir / "s.conf", "bypv0", [("udp", PORT)])
    cconf = write_conf(net.dir / "c.conf", "bypv1", [("udp", PORT)])
    env = {"BYPASS_LOG": "info"}
    srv = net.spawn("server", [sockperf, "sr", "-i", net.srv_ip, "-p", PORT], name="sr",
                    conf=sconf, env=env)
    time.sleep(2)
    s0, c0 = udp_now(net, "server"), udp_now(net, "client")
    cp = net.run("client", [sockperf, "pp", "-i", net.srv_ip, "-p", PORT, "-m", 64, "-t", 3],
                 conf=cconf, env=env, timeout=90)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out
    assert stat(out, "ReceivedMessages") > 1000, out
    assert stat(out, "# dropped messages") == 0, out
    assert "udp socket on port %d accelerated" % PORT in srv.err(), srv.describe()
    assert "udp socket on port" in cp.stderr, cp.stderr
    assert udp_moved(net, "server", s0) < 10 and udp_moved(net, "client", c0) < 10


def test_sockperf_multicast_under_load_no_gap(netpair, sockperf):
    net = netpair(accel=("server",))
    feed = net.dir / "feed.txt"
    feed.write_text("".join("U:%s:%d\n" % (g, MPORT) for g in GROUPS))
    conf = write_conf(net.dir / "mc.conf", "bypv0", [("udp", MPORT, "239.9.6.0/24")])
    # A socket buffer of 4 MB (about 5,000 small datagrams, a second at this rate): the
    # server shares this 2-vCPU machine with the client and other jobs, and a stall longer
    # than the default buffer lasts drops on the kernel as it does here.
    srv = net.spawn("server", [sockperf, "sr", "-f", feed, "--mc-rx-if", net.srv_ip,
                               "--buffer-size", 4194304], name="sr", conf=conf,
                    env={"BYPASS_LOG": "info"})
    time.sleep(3)
    s0 = udp_now(net, "server")
    cp = net.run("client", [sockperf, "ul", "-f", feed, "--mc-tx-if", net.cli_ip,
                            "--mc-rx-if", net.cli_ip, "--mps", 5000,
                            "-t", 5, "-m", 64], timeout=90)
    out = cp.stdout + cp.stderr
    assert cp.returncode == 0, out + srv.describe()
    sent = stat(out, "SentMessages")
    assert sent > 10000, out
    # sockperf's gap detection on the replies (one per 100 messages per group)
    assert stat(out, "# dropped messages") == 0, out
    assert stat(out, "# out-of-order messages") == 0, out
    # (sockperf serves groups sharing a port from one socket that joins them all)
    assert "udp socket on port %d accelerated" % MPORT in srv.err(), srv.describe()
    assert udp_moved(net, "server", s0) < 20, "server kernel UDP moved: not accelerated"
