"""Issue 3, test 2: 256 MB each way over one connection, sha256-checked, in three pairings
(accelerated server, accelerated client, both); the accelerated side's kernel saw none of it."""

import json

import pytest

from . import bulk
from .conftest import HERE, PYTHON, assert_bypassed, write_conf

SCRIPT = str(HERE / "bulk.py")
PORT = 7200
NBYTES = 256 << 20
SEED_SRV, SEED_CLI = "server-seed", "client-seed"


@pytest.fixture(scope="module")
def expected():
    return {"srv": bulk.expected_sha(SEED_SRV, NBYTES), "cli": bulk.expected_sha(SEED_CLI, NBYTES)}


@pytest.mark.slow
@pytest.mark.parametrize("accel", [("server",), ("client",), ("server", "client")],
                         ids=["accel-server", "accel-client", "accel-both"])
def test_bulk_256mb_each_way(netpair, expected, accel):
    net = netpair(accel=accel)
    srv_conf = cli_conf = None
    if "server" in accel:
        srv_conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", PORT)])
    if "client" in accel:
        cli_conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    srv = net.spawn("server", [PYTHON, SCRIPT, "server", PORT, NBYTES, SEED_SRV],
                    name="bulk-srv", conf=srv_conf)
    srv.wait_ready()
    before = {s: net.tcp_segs(s) for s in accel}
    cp = net.run("client", [PYTHON, SCRIPT, "client", net.srv_ip, PORT, NBYTES, SEED_CLI],
                 conf=cli_conf, timeout=120)
    assert cp.returncode == 0, "client exit %d\n%s\n%s\n%s" % (
        cp.returncode, cp.stdout, cp.stderr, srv.describe())
    srv.wait(60)
    assert srv.poll() == 0, srv.describe()
    after = {s: net.tcp_segs(s) for s in accel}
    s, c = json.loads(srv.out()), json.loads(cp.stdout)
    assert s["rx_bytes"] == NBYTES and c["rx_bytes"] == NBYTES, (s, c)
    assert s["received"] == expected["cli"], "client->server bytes corrupted"
    assert c["received"] == expected["srv"], "server->client bytes corrupted"
    assert s["sent"] == expected["srv"] and c["sent"] == expected["cli"]
    assert s["extra"] == 0 and c["extra"] == 0, "bytes after the stream or no clean EOF"
    for side in accel:
        # 512 MiB in 1448-byte segments (no TSO/GSO on the veth) is ~370,000 segments.
        assert_bypassed(before[side], after[side], 370000, "256 MB each way, %s side" % side)


IPERF_PORT = 7201


def test_acks_once_per_receive_burst(netpair):
    """A kernel client streams to an accelerated iperf3 server: the server acknowledges once
    per receive burst (stack/tcp_ack.c), so the client gets far fewer ACKs than one per two
    segments (lwIP's own rule gave 1.85 segments per ACK here), the stream completes, and
    the server's kernel carried none of it.  The kernel server's figure is printed beside
    it."""
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", IPERF_PORT)])
    ratios = {}
    for mode, c in (("kernel", None), ("accel", conf)):
        srv = net.spawn("server", ["taskset", "-c", "0", "iperf3", "-s", "-p", str(IPERF_PORT)],
                        name="iperf3-" + mode, conf=c)
        net.wait_port(IPERF_PORT, srv)
        before = net.tcp_segs("server")
        c0 = net.snmp("client")
        cp = net.run("client", ["taskset", "-c", "1", "iperf3", "-c", net.srv_ip, "-p",
                                str(IPERF_PORT), "-t", "3", "-J"], preload=False, timeout=60)
        c1 = net.snmp("client")
        srv.stop()
        assert cp.returncode == 0, cp.stdout[-2000:] + cp.stderr
        got = json.loads(cp.stdout)["end"]["sum_received"]["bytes"]
        sent = c1["Tcp.OutSegs"] - c0["Tcp.OutSegs"]
        acks = c1["Tcp.InSegs"] - c0["Tcp.InSegs"]
        ratios[mode] = sent / max(acks, 1)
        print("%s server: %d bytes, client sent %d segments, got %d (%.2f per ACK)" % (
            mode, got, sent, acks, ratios[mode]))
        assert got > 100 << 20, cp.stdout[-1000:]
        if mode == "accel":
            assert_bypassed(before, net.tcp_segs("server"), got // 1448, "iperf3 stream")
    assert ratios["accel"] >= 3.0, ratios
