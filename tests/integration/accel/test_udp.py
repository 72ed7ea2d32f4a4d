"""Issue 9: accelerated UDP.  Test 1: one scenario (udp_scenario.py) run with and without the
library in the server namespace gives the same answers, and the accelerated run leaves the
server namespace's kernel UDP counters still (but for the one datagram sent over loopback
on purpose)."""

import json

from .conftest import HERE, PYTHON, write_conf

ECHO, BASE = 7500, 7500


def run_scenario(net, conf, env=None):
    cp = net.run("server", [PYTHON, str(HERE / "udp_scenario.py"), net.srv_ip, net.cli_ip,
                            ECHO, BASE], conf=conf, env=env, timeout=120)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    return json.loads(cp.stdout.splitlines()[-1]), cp.stderr


def udp_counts(net):
    c = net.snmp("server")
    return c["Udp.InDatagrams"] + c["Udp.OutDatagrams"] + c["Udp.RcvbufErrors"]


def test_udp_scenario_matches_kernel(netpair):
    net = netpair(accel=("server",))
    peer = net.spawn("client", [PYTHON, str(HERE / "udp_peer.py"), net.cli_ip, ECHO],
                     name="udp_peer")
    peer.wait_ready()
    kernel, _ = run_scenario(net, None)
    conf = write_conf(net.dir / "udp.conf", "bypv0", [("udp", "7500-7520")])
    before = udp_counts(net)
    accel, err = run_scenario(net, conf, env={"BYPASS_LOG": "info"})
    moved = udp_counts(net) - before
    assert "udp socket on port" in err, err
    # The kernel run's answers are the reference; a few are checked outright so that a
    # broken kernel side (or harness) cannot make both runs agree on nonsense.
    assert kernel["echo"] == ["hello", [net.cli_ip, ECHO]], kernel
    assert kernel["to_loopback"] == ["to-loopback", True], kernel
    assert kernel["recvmmsg"] == ["batch%d" % i for i in range(8)], kernel
    assert kernel["overflow"] == {"some_dropped": True, "some_queued": True, "exact": True}, kernel
    assert kernel["timestamps"] == {k: [5, True, True] for k in ("ns", "us", "ing", "ns_new",
                                                                 "us_new", "ing_new")}, kernel
    assert accel == kernel
    # Accelerated: the only kernel UDP traffic is on purpose: the two loopback datagrams (out
    # + in each) and the 9,000-byte echo (its fragments go to the kernel, which reassembles
    # them); hundreds of datagrams went over the veth.
    assert moved <= 6, "server kernel UDP counters moved by %d: not accelerated" % moved
