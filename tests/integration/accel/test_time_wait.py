"""Ports reused while a TIME_WAIT holds the four-tuple, on either side.

When the server closes first, so the connection's TIME_WAIT is the server's; the client, which
closed second, keeps nothing and may reuse the same source port for the next connection at
once (wrk and other load generators do, once the server ends keep-alive connections).  The
kernel's server takes such a SYN, beyond the old connection's sequence numbers, as a new
connection (RFC 6191); so must the stack, whose TIME_WAIT would otherwise answer it with an
old ACK for a minute.  Compared side by side: the same client against a kernel server and
against an accelerated one.

When an accelerated client closes first, the TIME_WAIT is the stack's and the kernel, whose
socket is gone, may hand the same port out again: connect() must succeed as the kernel's
does (the stack's TIME_WAIT gives way, as tcp_tw_reuse lets the kernel's)."""

import json
import subprocess

import pytest

from .conftest import ASK, CLI_IF, PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7600
ROUNDS = 20

SERVER = r"""
import select, socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(16)
keep = sys.argv[3] == "keep"
print("ready", flush=True)
kept = []
for i in range(int(sys.argv[2])):
    c, peer = ls.accept()
    for k in kept:
        k.close()                      # the last one, in TIME_WAIT, after its four-tuple's next
    kept = []
    c.sendall(b"x" * 3000 + b"%d" % peer[1])
    if keep:                           # FIN first, and the socket stays open in TIME_WAIT
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536):
            pass
        kept.append(c)
        if i == 0:                     # what a socket in TIME_WAIT answers
            pl = select.poll(); pl.register(c, 0xffff)
            ev = pl.poll(0)[0][1] & (select.POLLIN | select.POLLOUT | select.POLLHUP |
                                     select.POLLRDHUP | select.POLLERR)
            try:
                c.send(b"x", socket.MSG_NOSIGNAL); sent = "sent"
            except OSError as e:
                sent = e.errno
            try:
                c.getpeername(); peer = "peer"
            except OSError as e:
                peer = e.errno
            try:
                c.shutdown(socket.SHUT_RDWR); shut = "shut"
            except OSError as e:
                shut = e.errno
            print("time-wait", ev, sent, peer, shut, c.recv(10), flush=True)
    else:
        c.close()                      # the server closes first: TIME_WAIT is the server's
print("served", flush=True)
"""

CLIENT = r"""
import json, socket, sys, time
host, port, rounds, cport = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
times = []
for i in range(rounds):
    t = time.monotonic()
    while True:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", cport))     # the same four-tuple every time
        s.settimeout(5)
        try:
            s.connect((host, port))
            break
        except OSError as e:           # the last one is still in LAST_ACK for an RTT
            s.close()
            if e.errno != 99 or time.monotonic() - t > 5:
                raise
            time.sleep(0.005)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    times.append(time.monotonic() - t)
    assert got == b"x" * 3000 + str(cport).encode(), got[-20:]
    s.close()                          # closes second: no TIME_WAIT on this side
print(json.dumps(times))
"""


def exchanges(net, conf, mode="close"):
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT, ROUNDS, mode], name="closes-first",
                    conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, ROUNDS, 40123], timeout=120)
    assert cp.returncode == 0, cp.stderr
    srv.wait(10)
    assert srv.out().split()[-1] == "served", srv.describe()
    return json.loads(cp.stdout), [l for l in srv.out().splitlines() if l.startswith("time-wait")]


@pytest.mark.parametrize("mode", ["close", "keep"])
def test_port_reused_after_server_close(netpair, mode):
    """close: the server closes each connection first.  keep: it shuts down writing first,
    reads to the end and keeps the socket open, in TIME_WAIT, until the next connection on
    the same four-tuple is accepted.  (lwIP frees a TIME_WAIT without a word: the socket kept
    a pointer to it, and closing it closed whatever connection had the memory since; nor
    could a SYN take the place of a TIME_WAIT an open socket held.)"""
    net = netpair()
    kernel, kernel_tw = exchanges(net, None, mode)
    conf = write_conf(net.dir / "tw.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel, accel_tw = exchanges(net, conf, mode)
    after = net.tcp_segs("server")
    assert accel_tw == kernel_tw, "the socket in TIME_WAIT answers unlike the kernel's"
    # The kernel takes each new SYN at once: the scenario is sound if it does.
    assert max(kernel) < 0.9, "the kernel server did not take the reused port at once: %s" % kernel
    assert max(accel) < 0.9, ("a connection on a port whose last connection the stack holds "
                              "in TIME_WAIT waited for SYN retransmissions: %s" % accel)
    assert_bypassed(before, after, ROUNDS * 6, "the reused-port connections")


# --- the client closes first: its TIME_WAIT is the stack's -----------------------------------

CPORT = 7601
CONNS = 12
PORTS = 16

ECHO_ONCE = r"""
import socket, sys
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(16)
print("ready", flush=True)
for i in range(int(sys.argv[2])):
    c, peer = ls.accept()
    while True:
        d = c.recv(65536)
        if not d:
            break
        c.sendall(d)
    c.close()                          # the client closed first: the server keeps nothing
print("served", flush=True)
"""

CLOSES_FIRST = r"""
import json, socket, sys, time
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ports = []
for i in range(n):
    s = socket.socket()
    s.settimeout(5)
    try:
        s.connect((host, port))        # the kernel picks the source port
    except OSError as e:
        print(json.dumps({"error": "connect %d: %s" % (i, e), "ports": ports}))
        sys.exit(0)
    ports.append(s.getsockname()[1])
    s.sendall(b"ping %d" % i)
    assert s.recv(100) == b"ping %d" % i
    s.close()                          # closes first: TIME_WAIT is this side's
    time.sleep(0.3)                    # the server's FIN arrives; the close is complete
print(json.dumps({"error": None, "ports": ports}))
"""


def closes_first(net, conf):
    srv = net.spawn("server", [PYTHON, "-c", ECHO_ONCE, CPORT, CONNS], name="echo")
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", CLOSES_FIRST, net.srv_ip, CPORT, CONNS], conf=conf,
                 timeout=60)
    assert cp.returncode == 0, cp.stderr
    res = json.loads(cp.stdout)
    if res["error"] is None:
        srv.wait(10)
    else:
        srv.stop()
    return res


def test_client_time_wait_port_handed_out_again(netpair):
    """An accelerated client that closes first leaves its TIME_WAIT in the stack, while its
    kernel socket, and so the port, is gone.  With a narrow ephemeral range the kernel hands
    the same port out again at once for the same server: connect() must succeed, as it does
    for a kernel client whose TIME_WAIT the kernel holds.  (It failed with ENOBUFS: lwIP
    refused the four-tuple its TIME_WAIT still held.)"""
    net = netpair(accel=("client",))
    # PORTS ports for CONNS connections: the kernel run leaves a TIME_WAIT on CONNS of them
    # (connect() takes the even ones first, then the odd), which bind() then avoids; the
    # accelerated run binds (port 0) among the PORTS - CONNS left, so ports come back.
    subprocess.run(["ip", "netns", "exec", net.cli_ns, "sysctl", "-q", "-w",
                    "net.ipv4.ip_local_port_range=41000 %d" % (41000 + PORTS - 1)],
                   check=True, timeout=10)
    kernel = closes_first(net, None)
    assert kernel["error"] is None, kernel
    conf = write_conf(net.dir / "cli.conf", CLI_IF, [("tcp", CPORT)])
    before = net.tcp_segs("client")
    accel = closes_first(net, conf)
    after = net.tcp_segs("client")
    assert accel["error"] is None, accel
    assert len(set(accel["ports"])) < CONNS, ("no port came back: the case was not tested",
                                              accel)
    assert_bypassed(before, after, CONNS * 6, "the client's connections")


# --- more connections in TIME_WAIT than the pool holds ----------------------------------------

NPORT = 7602
CLOSERS_N = 60000
NGINX_TW = """daemon off; master_process off; pid {d}/nginx.pid; user root;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_timeout 120s; server {{ listen {port}; root {d}/www; }} }}
"""

# @n connections, one after another: each sends a request and reads the answer to the
# server's close (so the TIME_WAIT is the server's).  Prints "ok N".
CLOSER = ASK + r"""
import sys
host, port, n, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ok = sum(ask(host, port, b"GET /small.txt HTTP/1.0\r\n\r\n", 10, src).startswith(b"HTTP/1.1 200")
         for i in range(n))
print("ok %d" % ok, flush=True)
"""

# A keep-alive connection: one request, then (once @go exists) another on it.  "phase2"
# between; at the end, both status lines.
KEEPER = r"""
import os, socket, sys, time
host, port, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
def get():
    s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n")
    status = f.readline().strip().decode()
    n = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        if h.lower().startswith(b"content-length:"):
            n = int(h.split(b":")[1])
    f.read(n)
    return status
first = get()
print("phase2", flush=True)
while not os.path.exists(go):
    time.sleep(0.05)
try:
    second = get()
except OSError as e:
    second = "error %s" % e
print("%s|%s" % (first, second), flush=True)
"""


def test_time_wait_beyond_the_pool(netpair, tmp_path):
    """nginx closes first after every HTTP/1.0 request: each connection leaves a TIME_WAIT
    in the server, 36,000 of them in a few seconds, more than the stack's pool of 32,768
    connections holds.  The oldest TIME_WAIT makes way for each new connection, never a
    live one: a keep-alive connection opened before, idle all along, still answers after;
    every request was answered and no SYN had to be sent again, as on the kernel.  (The
    stack keeps its TIME_WAIT connections in a table of its own, out of lwIP's list, which
    lwIP recycles from when its pool is empty.)"""
    net = netpair()
    # More four-tuples than the pool has connections: two client addresses, each with
    # every port (connect() takes every other one; with the kernel's default range, a
    # reused port's SYN would recycle its TIME_WAIT first).
    net.run("client", ["sysctl", "-qw", "net.ipv4.ip_local_port_range=1024 65535"],
            preload=False, check=True)
    cli2 = net.cli_ip.rsplit(".", 1)[0] + ".3"
    net.run("client", ["ip", "addr", "add", cli2 + "/24", "dev", CLI_IF], preload=False,
            check=True)
    d = tmp_path / "nginx-tw"
    (d / "www").mkdir(parents=True)
    d.chmod(0o755)
    (d / "www" / "small.txt").write_text("hello\n")
    (d / "nginx.conf").write_text(NGINX_TW.format(d=d, port=NPORT))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", NPORT)])
    each = CLOSERS_N // 2
    for mode, c in (("kernel", None), ("accel", conf)):
        srv = net.spawn("server", ["nginx", "-c", str(d / "nginx.conf"), "-e",
                                   str(d / "error.log")], name="nginx-tw-" + mode, conf=c)
        net.wait_port(NPORT, srv)
        go = tmp_path / ("go-" + mode)
        keeper = net.spawn("client", [PYTHON, "-c", KEEPER, net.srv_ip, NPORT, str(go)],
                           name="keeper-" + mode, preload=False)
        keeper.wait_ready("phase2")
        before = net.tcp_segs("server")
        syn_retrans = net.snmp("client")["TcpExt.TCPSynRetrans"]
        closers = [net.spawn("client", [PYTHON, "-c", CLOSER, net.srv_ip, NPORT, each, src],
                             name="closer-%s-%s" % (mode, src), preload=False)
                   for src in (net.cli_ip, cli2)]
        for p in closers:
            assert p.wait(timeout=240) == 0, p.describe() + srv.describe()
            assert p.out().split() == ["ok", str(each)], (mode, p.out())
        after = net.tcp_segs("server")
        syn_retrans = net.snmp("client")["TcpExt.TCPSynRetrans"] - syn_retrans
        go.write_text("go")
        assert keeper.wait(timeout=30) == 0, keeper.describe()
        first, second = keeper.out().strip().splitlines()[-1].split("|")
        assert first == second == "HTTP/1.1 200 OK", (mode, keeper.out(), srv.describe())
        # A SYN the server dropped for want of a PCB is sent again a second later.
        assert syn_retrans == 0, (mode, "%d SYNs sent again" % syn_retrans)
        if mode == "accel":
            assert_bypassed(before, after, CLOSERS_N, "connections closed by the server")
        assert srv.poll() is None, srv.describe()
        srv.stop()
