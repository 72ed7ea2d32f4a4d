"""TCP options an unmodified program sets on an accelerated connection, beside the kernel.

TCP_CORK was refused (ENOPROTOOPT): nginx with Debian's default configuration (`sendfile
on; tcp_nopush on;`) then failed every file it sent ("setsockopt(TCP_CORK) failed"), the
client got an empty reply.  Now TCP_CORK is taken (and read back): a send on a corked
connection leaves its partial segment queued for lwIP's next output (an ACK, a timer, its
80 ms poll of the connection, the uncork), where the kernel holds it through those, for at
most 200 ms.  TCP_QUICKACK sends an ACK that is owed at once."""

import hashlib
import json
import subprocess

from .conftest import (CLI_IF, PYTHON, SRV_IF, assert_bypassed, json_exchange, web_root,
                       write_conf)
from .test_reuseport import stop_nginx

PORT = 7640

SERVER = r"""
import json, socket, sys, time
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
print("ready", flush=True)
res = {}
c, _ = ls.accept()
c.recv(10)                                   # "go"
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
res["cork_get"] = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK)
c.sendall(b"a" * 100)
time.sleep(0.05)
c.sendall(b"b" * 100)
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)   # both go together, now
c.recv(10)                                   # "again"
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
c.sendall(b"c" * 100)                        # stays corked: the ceiling releases it
c.recv(10)                                   # "bye"
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
res["quickack"] = "ok"
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno")
res["cc"] = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
c.close()
print(json.dumps(res, sort_keys=True), flush=True)
"""

CLIENT = r"""
import json, select, socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"go")
first = s.recv(1000)                         # what the first segment held
rest = first
while len(rest) < 200:
    rest += s.recv(1000)
s.sendall(b"again")
t = time.monotonic()
third = s.recv(1000)
held_ms = (time.monotonic() - t) * 1000
s.sendall(b"bye")
assert s.recv(10) == b""
print(json.dumps({"first": len(first), "intact": rest == b"a" * 100 + b"b" * 100,
                  "third": third == b"c" * 100, "held_ms": held_ms}))
"""


def scenario(net, conf):
    res, out = json_exchange(net, SERVER, CLIENT, PORT, conf, "cork")
    return res, json.loads(out)


def test_cork_matches_kernel(netpair):
    net = netpair()
    ksrv, kcli = scenario(net, None)
    conf = write_conf(net.dir / "cork.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    asrv, acli = scenario(net, conf)
    assert_bypassed(before, net.tcp_segs("server"), 10, "the cork scenario", bound=5)
    assert ksrv == {"cork_get": 1, "quickack": "ok", "cc": "reno"}, ksrv
    assert asrv == ksrv
    # The kernel's two corked sends leave as one at the uncork, its third waits for the
    # ceiling (200 ms).  The stack's leave with lwIP's next output (the delayed ACK of the
    # client's message, a timer, the uncork): in order and intact, never stuck.
    assert kcli["first"] == 200 and kcli["intact"] and kcli["third"], kcli
    assert 150 <= kcli["held_ms"] < 1000, kcli
    assert acli["intact"] and acli["third"], acli
    assert acli["held_ms"] < 1000, acli


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    access_log {d}/access.log;
    server {{ listen {listen}; root {d}/www; }}
}}
"""


def nginx_run(netpair, request, listen, what):
    """nginx (one worker) with @listen: a 1 MB file twice and a small one with curl, wrk on
    the small one; intact, accelerated, no error logged."""
    net = netpair()
    d, big = web_root(request, "bypass-nginx-opts-")
    (d / "nginx.conf").write_text(NGINX_CONF.format(d=d, listen=listen))
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", 8083)])
    master = net.spawn("server", ["nginx", "-c", str(d / "nginx.conf"), "-e",
                                  str(d / "error.log")], name="nginx", conf=conf)
    request.addfinalizer(lambda: stop_nginx(d))
    net.wait_port(8083, master)
    before = net.tcp_segs("server")
    url = "http://%s:8083" % net.srv_ip
    cp = subprocess.run(net.argv("client", ["sh", "-c", "curl -sS -m 20 %s/big.bin %s/big.bin "
                                            "| sha256sum; curl -sS -m 5 %s/small.txt"
                                            % (url, url, url)]),
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=60)
    two = hashlib.sha256(big + big).hexdigest()
    assert cp.stdout.split()[0] == two and cp.stdout.split()[2] == "hello", (
        cp.stdout + (d / "error.log").read_text()[-2000:])
    cp = net.run("client", ["wrk", "-t", "2", "-c", "20", "-d", "3", url + "/small.txt"],
                 timeout=30)
    assert cp.returncode == 0 and "Socket errors" not in cp.stdout, cp.stdout
    assert_bypassed(before, net.tcp_segs("server"), 1000, what)
    log = (d / "error.log").read_text()
    assert "[alert]" not in log and "[crit]" not in log and "failed" not in log, log[-2000:]


def test_nginx_debian_defaults(netpair, request):
    """nginx with the settings of Debian's /etc/nginx/nginx.conf (sendfile, tcp_nopush,
    tcp_nodelay)."""
    nginx_run(netpair, request, "8083", "nginx with Debian's settings")


def test_nginx_deferred_fastopen(netpair, request):
    """`listen 8083 deferred fastopen=64`, as production configurations have it: nginx logged
    an alert for each option (TCP_DEFER_ACCEPT and TCP_FASTOPEN refused with ENOPROTOOPT)."""
    nginx_run(netpair, request, "8083 deferred fastopen=64", "nginx with deferred, fastopen")


# --- options set before listen() or connect(), and what an accepted socket inherits ---------

INHERIT_SERVER = r"""
import errno, json, select, socket, struct, sys, time
S, T = socket.SOL_SOCKET, socket.IPPROTO_TCP
ls = socket.socket(); ls.setsockopt(S, socket.SO_REUSEADDR, 1)
ls.setsockopt(T, socket.TCP_NODELAY, 1)
ls.setsockopt(S, socket.SO_KEEPALIVE, 1)
ls.setsockopt(T, socket.TCP_KEEPIDLE, 30)
ls.setsockopt(T, socket.TCP_KEEPCNT, 4)
ls.setsockopt(S, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300000))
ls.setsockopt(S, socket.SO_LINGER, struct.pack("ii", 1, 7))
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(4)
res = {}
t = time.monotonic()
try:
    ls.accept(); res["accept"] = "ok"
except OSError as e:                          # SO_RCVTIMEO bounds accept too
    res["accept"] = errno.errorcode[e.errno]
res["accept_waited"] = 0.2 < time.monotonic() - t < 2
print("ready", flush=True)
select.select([ls], [], [], 20)   # the client's start (its engine's too) may take > 300 ms
c, _ = ls.accept()
def opts(s):
    return {"nodelay": s.getsockopt(T, socket.TCP_NODELAY),
            "keepalive": s.getsockopt(S, socket.SO_KEEPALIVE),
            "keepidle": s.getsockopt(T, socket.TCP_KEEPIDLE),
            "keepcnt": s.getsockopt(T, socket.TCP_KEEPCNT),
            "rcvtimeo": list(struct.unpack("ll", s.getsockopt(S, socket.SO_RCVTIMEO, 16))),
            "linger": list(struct.unpack("ii", s.getsockopt(S, socket.SO_LINGER, 8)))}
res["listener"] = opts(ls)
res["accepted"] = opts(c)
t = time.monotonic()
try:
    c.recv(10); res["recv"] = "data"
except OSError as e:
    res["recv"] = errno.errorcode[e.errno]
res["recv_waited"] = 0.2 < time.monotonic() - t < 2
c.sendall(b"go")
res["client"] = c.recv(100).decode()
c.close()
print(json.dumps(res, sort_keys=True), flush=True)
"""

INHERIT_CLIENT = r"""
import socket, sys
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)     # before connect, as curl does
s.settimeout(10)
s.connect((sys.argv[1], int(sys.argv[2])))
assert s.recv(10) == b"go"
s.sendall(b"nodelay=%d" % s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
s.recv(10)
"""


def inherit_scenario(net, conf, port, client_conf=None):
    return json_exchange(net, INHERIT_SERVER, INHERIT_CLIENT, port, conf, "inherit",
                         client_conf=client_conf)[0]


def test_options_set_before_listen_and_connect(netpair):
    """Options the program set on the kernel socket before the stack took it over, and what
    an accepted connection inherits from its listener (TCP_NODELAY, keepalive and its
    parameters, SO_RCVTIMEO, SO_LINGER): read back and in effect, as on the kernel.  (The
    stack started from its defaults: accept blocked on past SO_RCVTIMEO, and a client's
    TCP_NODELAY set before connect read back 0.)"""
    net = netpair(accel=("server", "client"))
    kernel = inherit_scenario(net, None, PORT + 1)
    assert kernel["accept"] == "EAGAIN" and kernel["recv"] == "EAGAIN", kernel
    assert kernel["accepted"]["keepidle"] == 30 and kernel["client"] == "nodelay=1", kernel
    sconf = write_conf(net.dir / "inherit.conf", SRV_IF, [("tcp", PORT + 1)])
    cconf = write_conf(net.dir / "inherit-cli.conf", CLI_IF, [("tcp", PORT + 1)])
    before = net.tcp_segs("server")
    accel = inherit_scenario(net, sconf, PORT + 1, client_conf=cconf)
    assert_bypassed(before, net.tcp_segs("server"), 8, "the inherited options", bound=5)
    assert accel == kernel


# --- TCP_USER_TIMEOUT: a peer that stops acknowledging ------------------------------------

UT_SERVER = r"""
import errno, json, os, select, socket, sys, time
port, flag = int(sys.argv[1]), sys.argv[2]
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port)); ls.listen(4)
print("ready", flush=True)
c, _ = ls.accept()
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, 600)
assert c.recv(10) == b"go"
print("connected", flush=True)
while not os.path.exists(flag):
    time.sleep(0.02)
c.sendall(b"x" * 1000)                       # never acknowledged: the client's ACKs vanish
t = time.monotonic()
p = select.poll(); p.register(c, select.POLLIN)
res = {"user_timeout": c.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT)}
while time.monotonic() - t < 10:
    p.poll(100)
    try:
        c.recv(10, socket.MSG_DONTWAIT)
    except BlockingIOError:
        continue
    except OSError as e:
        res["err"] = errno.errorcode[e.errno]
        break
res["ended_in_time"] = 0.4 < time.monotonic() - t < 6
print(json.dumps(res, sort_keys=True), flush=True)
"""

UT_CLIENT = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(b"go")
time.sleep(12)
"""


def user_timeout_run(net, conf, tag):
    flag = net.dir / ("ut-" + tag)
    srv = net.spawn("server", [PYTHON, "-c", UT_SERVER, PORT + 2, flag], name="ut-" + tag,
                    conf=conf)
    srv.wait_ready()
    cli = net.spawn("client", [PYTHON, "-c", UT_CLIENT, net.srv_ip, PORT + 2], name="ut-cli")
    srv.wait_ready("connected", timeout=10)
    hole = ["ip", "-n", net.cli_ns, "route", "add", "blackhole", net.srv_ip + "/32"]
    subprocess.run(hole, check=True, timeout=10)   # the client's ACKs go nowhere
    try:
        flag.touch()
        srv.wait(15)
    finally:
        subprocess.run(hole[:4] + ["del"] + hole[5:], timeout=10)
        cli.stop()
    line = srv.out().splitlines()[-1]
    assert line.startswith("{"), srv.describe()
    return json.loads(line)


def test_user_timeout_matches_kernel(netpair):
    """TCP_USER_TIMEOUT 600 ms, data sent to a peer whose acknowledgements vanish: the
    connection ends with ETIMEDOUT within a few seconds, as on the kernel.  (lwIP went on
    retransmitting for minutes: the option was refused.)"""
    net = netpair()
    kernel = user_timeout_run(net, None, "kernel")
    assert kernel == {"user_timeout": 600, "err": "ETIMEDOUT", "ended_in_time": True}, kernel
    conf = write_conf(net.dir / "ut.conf", SRV_IF, [("tcp", PORT + 2)])
    accel = user_timeout_run(net, conf, "accel")
    assert accel == kernel


# --- TCP_DEFER_ACCEPT and TCP_FASTOPEN on a listener ----------------------------------------

DEFER_SERVER = r"""
import errno, json, select, socket, sys, time
T = socket.IPPROTO_TCP
names = {int(sys.argv[2]) + i: n for i, n in enumerate("ABCD")}
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(8)
res = {"accepted": []}
ls.setsockopt(T, socket.TCP_DEFER_ACCEPT, 5)
res["get5"] = ls.getsockopt(T, socket.TCP_DEFER_ACCEPT)      # rounded to retransmissions
ls.setsockopt(T, socket.TCP_DEFER_ACCEPT, 1)
res["get1"] = ls.getsockopt(T, socket.TCP_DEFER_ACCEPT)
ls.setsockopt(T, socket.TCP_FASTOPEN, 16)
res["fastopen"] = ls.getsockopt(T, socket.TCP_FASTOPEN)
p = select.poll(); p.register(ls, select.POLLIN)
print("ready", flush=True)
t0 = None
while True:
    if t0 is not None and time.monotonic() - t0 > 2.8:
        break
    if not p.poll(50):
        continue
    c, peer = ls.accept()
    now = time.monotonic()
    if t0 is None:
        t0 = float(open(sys.argv[3]).read())   # the client's first connect, same clock
    c.setblocking(False)
    try:
        got = c.recv(100).decode()
    except BlockingIOError:
        got = "EAGAIN"
    res["accepted"].append([names.get(peer[1], "?"), round(now - t0, 2), got])
print(json.dumps(res, sort_keys=True), flush=True)
"""

DEFER_CLIENT = r"""
import socket, struct, sys, time
ip, port, base, stamp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def conn(i):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", base + i)); s.connect((ip, port)); return s
t0 = time.monotonic()
open(stamp, "w").write(repr(t0))
a = conn(0)                                   # A: connects and says nothing
time.sleep(0.2)
c = conn(2)                                   # C: resets before saying anything
c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)); c.close()
time.sleep(0.2)
b = conn(1); b.sendall(b"B-data")             # B: data at once
time.sleep(0.2)
d = conn(3); d.shutdown(socket.SHUT_WR)       # D: its FIN and no data
time.sleep(t0 + 2.2 - time.monotonic())
for s in (a, b, d):                           # before the server leaves (at 2.8 s)
    s.close()
"""


def defer_scenario(net, conf, port, tag):
    stamp = net.dir / ("defer-t0-" + tag)
    base = 41000 + (port % 100) * 10
    srv = net.spawn("server", [PYTHON, "-c", DEFER_SERVER, port, base, stamp],
                    name="defer-" + tag, conf=conf)
    srv.wait_ready()
    cp = net.run("client", [PYTHON, "-c", DEFER_CLIENT, net.srv_ip, port, base, stamp],
                 timeout=30)
    assert cp.returncode == 0, cp.stderr + srv.describe()
    srv.wait(20)
    line = srv.out().splitlines()[-1]
    assert line.startswith("{"), srv.describe()
    return json.loads(line)


def check_deferred(res):
    order = [(name, got) for name, _, got in res["accepted"]]
    assert order == [("B", "B-data"), ("D", ""), ("A", "EAGAIN")], res
    at = {name: t for name, t, _ in res["accepted"]}
    assert 0.3 <= at["B"] < 0.8 and 0.5 <= at["D"] < 1.0, res   # with their data, at once
    assert 0.9 <= at["A"] < 1.7, res    # held back for the deferral (1 s), then handed out


def test_defer_accept_matches_kernel(netpair):
    """TCP_DEFER_ACCEPT (nginx's `listen ... deferred`, HAProxy's defer-accept): a connection
    is handed to accept() with its first data (or its FIN), or, if none comes, once the
    deferral is over; one reset before that is never seen; the value reads back rounded as
    the kernel rounds it; TCP_FASTOPEN is taken.  Beside the kernel.  (Both options were
    refused with ENOPROTOOPT, and nginx logged an alert for each listener.)"""
    net = netpair(accel=("server", "client"))
    kernel = defer_scenario(net, None, PORT + 3, "kernel")
    assert kernel["get5"] == 7 and kernel["get1"] == 1 and kernel["fastopen"] == 16, kernel
    check_deferred(kernel)
    conf = write_conf(net.dir / "defer.conf", SRV_IF, [("tcp", PORT + 3)])
    before = net.tcp_segs("server")
    accel = defer_scenario(net, conf, PORT + 3, "accel")
    assert_bypassed(before, net.tcp_segs("server"), 8, "the deferred accepts", bound=5)
    assert {k: v for k, v in accel.items() if k != "accepted"} == \
        {k: v for k, v in kernel.items() if k != "accepted"}
    check_deferred(accel)
