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
from .conftest import HERE, PYTHON, assert_bypassed, bypass_lines, write_conf
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

TRANSFER_S = 30


def forwarded(net, side):
    return net.snmp(side)["Ip.ForwDatagrams"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["kernel", "accel"])
def test_route_replace_delete_during_transfer(routednet, mode):
    """A route replaced by one through a second router, then deleted for 2 s and added back,
    during a paced transfer: it completes intact, with and without the library, and the
    second router carried the server's segments while its route was in place."""
    net = routednet(accel=("server",) if mode == "accel" else (), r2=True)
    conf = write_conf(net.dir / "srv.conf", "bypv0", [("tcp", 7300)]) if mode == "accel" else None
    seen = {}

    def during(n):
        time.sleep(4)
        r2_before = forwarded(n, "r2")
        n.sh("server", "route", "replace", "default", "via", n.r2_ip)
        time.sleep(6)
        seen["r2"] = forwarded(n, "r2") - r2_before
        n.sh("server", "route", "del", "default")
        time.sleep(2)
        n.sh("server", "route", "add", "default", "via", n.r1_ip)

    before = net.tcp_segs("server")
    s, c, srv = paced_run(net, TRANSFER_S, 1 << 20, "route-" + mode, srv_conf=conf,
                          during=during)
    assert seen["r2"] > 200, "the second router forwarded only %d datagrams" % seen["r2"]
    if mode == "accel":
        assert_bypassed(before, net.tcp_segs("server"), s["bytes"] // 1448, "routed transfer")
