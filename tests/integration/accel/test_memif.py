"""Issue 8: the memif backend.  Two processes on one host, both accelerated, talk TCP and UDP through
DPDK's memif PMD (shared memory) with no kernel on the path: they run in a namespace that
has only `lo`, their addresses (10.78.k.1 and .2) are on no kernel interface, and the
namespace's kernel TCP and UDP counters do not move."""

import json
import os
import re
import signal
import time

import pytest

from . import bulk
from .conftest import HERE, PYTHON, assert_bypassed, bypass_lines
from .onehost import onehost, sockperf_pingpong, write_backend_conf  # noqa: F401  (fixture)

PORT = 6379
RESTART = str(HERE / "restart_client.py")
BULK = str(HERE / "bulk.py")


def memif_confs(h, port, sock=None, proto="tcp"):
    """(server conf, client conf) for one memif link on @sock."""
    sock = sock or str(h.dir / "memif.sock")
    rules = [(proto, port)]
    srv = write_backend_conf(h.dir / "srv.conf", "memif", h.srv_ip + "/24", rules,
                             {"memif_socket": sock, "memif_role": "server"})
    cli = write_backend_conf(h.dir / "cli.conf", "memif", h.cli_ip + "/24", rules,
                             {"memif_socket": sock, "memif_role": "client", "memif_id": 0})
    return srv, cli


def redis_argv(h, port=PORT):
    return ["redis-server", "--port", port, "--bind", "0.0.0.0", "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--dir", h.dir,
            "--loglevel", "warning"]


def start_redis(h, conf, port=PORT):
    srv = h.spawn("server", redis_argv(h, port), name="redis", conf=conf,
                  env={"BYPASS_LOG": "info"})
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % port)
    return srv


def test_memif_redis(onehost):
    """redis-cli, redis-benchmark, redis-cli again: three client processes in turn on one
    server (each one's exit takes the link down; the next one's start brings it up)."""
    h = onehost()
    srv_conf, cli_conf = memif_confs(h, PORT)
    srv = start_redis(h, srv_conf)
    before = h.kernel_tcp_segs()
    script = "".join("SET k%d v%d\nGET k%d\n" % (i, i, i) for i in range(200))
    cp = h.run("client", ["redis-cli", "-h", h.srv_ip, "-p", PORT], conf=cli_conf,
               input=script, timeout=60, check=True)
    assert cp.stdout.split() == sum((["OK", "v%d" % i] for i in range(200)), [])
    cp = h.run("client", ["redis-benchmark", "-h", h.srv_ip, "-p", PORT, "-n", "20000",
                          "-c", "10", "-t", "set,get", "-q"], conf=cli_conf, timeout=120,
               check=True)
    rates = re.findall(r"(SET|GET): ([0-9.]+) requests per second", cp.stdout)
    assert len(rates) == 2 and all(float(r) > 0 for _, r in rates), cp.stdout + cp.stderr
    cp = h.run("client", ["redis-cli", "-h", h.srv_ip, "-p", PORT, "GET", "k199"],
               conf=cli_conf, timeout=60, check=True)
    assert cp.stdout.strip() == "v199"
    after = h.kernel_tcp_segs()
    # 40,000 requests and 3 connections' worth of segments went over memif.
    assert_bypassed(before, after, 40000, "redis over memif", bound=1)
    assert srv.poll() is None, srv.describe()
    lines = bypass_lines(srv.err())
    assert any("backend memif" in l for l in lines), srv.describe()
    # Its peer gone, nothing can leave: the server stops as fast as on the kernel (it
    # waited 5 s for a FIN nobody would take).
    t0 = time.monotonic()
    assert srv.stop() == 0, srv.describe()
    assert time.monotonic() - t0 < 2.0, "redis took %.1f s to stop" % (time.monotonic() - t0)


def test_memif_peer_exits_under_a_spinning_server(onehost):
    """A spinning server (BYPASS_SPIN_USEC=-1: its thread bursts on the memif rings all
    the time) outlives clients that come and go: each client's exit makes DPDK's memif
    unmap the shared regions in its interrupt thread, and a burst after that crashed the
    host program with SIGSEGV.  Ten clients in turn, each answered, the server alive."""
    h = onehost()
    srv_conf, cli_conf = memif_confs(h, PORT)
    srv = h.spawn("server", redis_argv(h), name="redis", conf=srv_conf,
                  env={"BYPASS_LOG": "info", "BYPASS_SPIN_USEC": "-1"})
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % PORT)
    for i in range(10):
        cp = h.run("client", ["redis-cli", "-h", h.srv_ip, "-p", PORT, "INCR", "n"],
                   conf=cli_conf, timeout=60)
        assert srv.poll() is None, "server died after client %d:\n%s" % (i, srv.describe())
        assert cp.returncode == 0 and cp.stdout.strip() == str(i + 1), (cp.stdout, cp.stderr)
    time.sleep(0.5)   # the last client's teardown
    assert srv.poll() is None, srv.describe()


def test_memif_sockperf_tcp(onehost):
    """sockperf TCP ping-pong, both ends accelerated, busy-polling."""
    h = onehost()
    port = 11111
    srv_conf, cli_conf = memif_confs(h, port)
    env = {"BYPASS_LOG": "info", "BYPASS_SPIN_USEC": "-1"}
    # Bound to the stack's own address, which no kernel interface holds.
    srv = h.spawn("server", ["sockperf", "sr", "--tcp", "-i", h.srv_ip, "-p", port],
                  name="sockperf-sr", conf=srv_conf, env=env)
    srv.wait_ready("bypass: tcp listener on port %d accelerated" % port)
    before = h.kernel_tcp_segs()
    msgs, lat, out = sockperf_pingpong(h, cli_conf, port)
    after = h.kernel_tcp_segs()
    assert lat and lat > 0, out
    assert_bypassed(before, after, msgs, "sockperf over memif", bound=1)


def test_memif_sockperf_udp(onehost):
    """sockperf UDP ping-pong over memif, both ends accelerated, busy-polling: the
    namespace's kernel UDP counters stay still."""
    h = onehost()
    port = 11112
    srv_conf, cli_conf = memif_confs(h, port, proto="udp")
    env = {"BYPASS_LOG": "info", "BYPASS_SPIN_USEC": "-1"}
    srv = h.spawn("server", ["sockperf", "sr", "-i", h.srv_ip, "-p", port],
                  name="sockperf-sr-udp", conf=srv_conf, env=env)
    srv.wait_ready("bypass: udp socket")
    h.wait_link_file(h.dir / "memif.sock", srv)
    udp = lambda c: c["Udp.InDatagrams"] + c["Udp.OutDatagrams"]
    before = udp(h.snmp("server"))
    msgs, lat, out = sockperf_pingpong(h, cli_conf, port, udp=True)
    after = udp(h.snmp("server"))
    assert lat and lat > 0, out
    print("memif UDP ping-pong: %s usec half-RTT, %d messages" % (lat, msgs))
    assert after - before < 5, ("the kernel carried UDP datagrams (%d) during the memif "
                                "ping-pong" % (after - before))


@pytest.mark.slow
def test_memif_bulk_256mb_each_way(onehost):
    h = onehost()
    port, n = 7200, 256 << 20
    srv_conf, cli_conf = memif_confs(h, port)
    srv = h.spawn("server", [PYTHON, BULK, "server", port, n, "srv-seed"], name="bulk-srv",
                  conf=srv_conf)
    srv.wait_ready()
    before = h.kernel_tcp_segs()
    cp = h.run("client", [PYTHON, BULK, "client", h.srv_ip, port, n, "cli-seed"],
               conf=cli_conf, timeout=300)
    assert cp.returncode == 0, "client exit %d\n%s\n%s\n%s" % (
        cp.returncode, cp.stdout, cp.stderr[-3000:], srv.describe())
    srv.wait(60)
    assert srv.poll() == 0, srv.describe()
    after = h.kernel_tcp_segs()
    s, c = json.loads(srv.out()), json.loads(cp.stdout)
    assert s["rx_bytes"] == n and c["rx_bytes"] == n, (s, c)
    assert s["received"] == bulk.expected_sha("cli-seed", n), "client->server bytes corrupted"
    assert c["received"] == bulk.expected_sha("srv-seed", n), "server->client bytes corrupted"
    assert s["extra"] == 0 and c["extra"] == 0
    assert_bypassed(before, after, 370000, "256 MB each way over memif", bound=1)


def restart_scenario(h, start_server, host, port, client_conf, sig=signal.SIGKILL):
    """A live client; the server is stopped by @sig and started again; the client
    reports."""
    srv = start_server()
    go = h.dir / ("go-%d" % port)
    cli = h.spawn("client", [PYTHON, RESTART, host, port, go], name="restart-client",
                  conf=client_conf)
    cli.wait_ready()
    srv.popen.send_signal(sig)
    srv.popen.wait(timeout=30)
    srv = start_server()
    go.write_text("go")
    assert cli.wait(150) == 0, cli.describe()
    return json.loads(cli.out().splitlines()[-1]), srv


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill", "term"])
def test_memif_server_restart_under_live_client(onehost, sig):
    """The server dies (SIGKILL: its socket file stays; SIGTERM: it exits and closes its
    port) and comes back: the client's old connection fails as with a dead TCP peer,
    beside the same scenario on the kernel (loopback); the client's memif reconnects and
    a new connection works."""
    h = onehost()
    srv_conf, cli_conf = memif_confs(h, PORT)
    accel, srv = restart_scenario(h, lambda: start_redis(h, srv_conf), h.srv_ip, PORT,
                                  cli_conf, sig)
    kport = PORT + 1

    def kernel_redis():
        p = h.spawn("server", redis_argv(h, kport), name="kredis")
        h.wait_port(kport, p, host="127.0.0.1")
        return p

    kern, _ = restart_scenario(h, kernel_redis, "127.0.0.1", kport, None, sig)
    dead_peer = {"ECONNRESET", "EPIPE", "EOF"}
    assert kern["old"] in dead_peer, kern
    assert accel["old"] in dead_peer, (accel, kern)
    assert accel["new"] == "+PONG" == kern["new"], (accel, kern)
    stale = any("removed the stale socket" in l for l in bypass_lines(srv.err()))
    assert stale == (sig == signal.SIGKILL), srv.describe()


def test_memif_client_first_is_refused_then_connects(onehost):
    """A client whose server is absent: connect() fails with ECONNREFUSED, as on the kernel
    with nothing listening; once the server is up, connections work."""
    h = onehost()
    srv_conf, cli_conf = memif_confs(h, PORT)
    cp = h.run("client", [PYTHON, RESTART, "refused", h.srv_ip, PORT], conf=cli_conf,
               env={"BYPASS_LOG": "info"}, timeout=60, check=True)
    assert json.loads(cp.stdout)["errno"] == "ECONNREFUSED", cp.stdout + cp.stderr
    assert any("no server on" in l for l in bypass_lines(cp.stderr)), cp.stderr
    kern = h.run("client", [PYTHON, RESTART, "refused", "127.0.0.1", PORT], timeout=60,
                 check=True)
    assert json.loads(kern.stdout)["errno"] == "ECONNREFUSED"
    start_redis(h, srv_conf)
    cp = h.run("client", ["redis-cli", "-h", h.srv_ip, "-p", PORT, "PING"], conf=cli_conf,
               timeout=60, check=True)
    assert cp.stdout.strip() == "PONG", cp.stdout + cp.stderr


def test_memif_second_server_refused(onehost):
    """A second server on a live socket: one clear message, and the kernel serves it."""
    h = onehost()
    srv_conf, _ = memif_confs(h, PORT)
    start_redis(h, srv_conf)
    conf2 = write_backend_conf(h.dir / "srv2.conf", "memif", h.srv_ip + "/24",
                               [("tcp", PORT + 2)],
                               {"memif_socket": str(h.dir / "memif.sock"),
                                "memif_role": "server"})
    other = h.spawn("server", redis_argv(h, PORT + 2), name="redis2", conf=conf2,
                    env={"BYPASS_LOG": "error"})
    h.wait_port(PORT + 2, other, host="127.0.0.1")
    lines = bypass_lines(other.err())
    assert any("a server already listens on" in l for l in lines), other.describe()
    assert len([l for l in lines if "memif" in l]) == 1, other.describe()
    cp = h.run("client", ["redis-cli", "-h", "127.0.0.1", "-p", PORT + 2, "PING"], timeout=30,
               check=True)
    assert cp.stdout.strip() == "PONG"
    assert other.poll() is None


BIND_PROBE = """
import errno, json, socket, sys
out = {}
for port in (int(sys.argv[2]), int(sys.argv[3])):
    s = socket.socket()
    try:
        s.bind((sys.argv[1], port))
        out[port] = s.getsockname()[0]
    except OSError as e:
        out[port] = errno.errorcode[e.errno]
    s.close()
print(json.dumps(out))
"""


def test_memif_bind_own_address(onehost):
    """bind() to the stack's own address (no kernel interface holds it): accepted for a
    port a rule accelerates, getsockname() tells it back; on any other port the kernel's
    EADDRNOTAVAIL, as without the library."""
    h = onehost()
    srv_conf, _ = memif_confs(h, PORT)
    argv = [PYTHON, "-c", BIND_PROBE, h.srv_ip, PORT, PORT + 1]
    accel = json.loads(h.run("server", argv, conf=srv_conf, check=True).stdout)
    kern = json.loads(h.run("server", argv, check=True).stdout)
    assert kern == {str(PORT): "EADDRNOTAVAIL", str(PORT + 1): "EADDRNOTAVAIL"}, kern
    assert accel == {str(PORT): h.srv_ip, str(PORT + 1): "EADDRNOTAVAIL"}, accel


def test_memif_bad_gateway_and_missing_ip(onehost):
    """Start-up errors of a memif config: one clear message each, and the kernel."""
    h = onehost()
    sock = str(h.dir / "memif.sock")
    cases = {
        "gateway": ({"memif_socket": sock, "gateway": "10.99.0.1"}, h.srv_ip + "/24",
                    "is not an IPv4 address inside"),
        "folder": ({"memif_socket": str(h.dir / "nope" / "m.sock")}, h.srv_ip + "/24",
                   "the folder of memif_socket does not exist"),
    }
    for name, (keys, ip, why) in cases.items():
        conf = write_backend_conf(h.dir / ("%s.conf" % name), "memif", ip, [("tcp", PORT)],
                                  keys)
        cp = h.run("server", [PYTHON, "-c", "import socket; s = socket.socket(); "
                              "s.bind(('0.0.0.0', %d)); s.listen(); print('listening')" % PORT],
                   conf=conf, timeout=60, check=True)
        lines = bypass_lines(cp.stderr)
        assert cp.stdout.strip() == "listening", cp.stdout + cp.stderr
        assert len(lines) == 1 and why in lines[0], (name, lines)
