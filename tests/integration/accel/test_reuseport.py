"""SO_REUSEPORT listeners on one port: each gets its share of the connections, as the
kernel's reuseport group gives them, side by side with the kernel.

nginx with `listen ... reuseport` opens one listener per worker: with only the first one
accelerated (lwIP takes one listener per port) the second stayed on the kernel, which
received nothing, and one worker served everything.  A threaded server with one listener
per thread: the same.  A member that closes leaves the others serving, its queued
connections reset, as the kernel's are."""

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path

from .conftest import SRV_IF, assert_bypassed, json_exchange, write_conf
from .test_fork import kill_all, wait_gone

PORT = 7620

# Three SO_REUSEPORT listeners in one process; threads accept on the first two only (the
# third's connections wait in its queue).  Phase 1: the client's connections are served or
# wait.  At the flag file: the third listener closes (its waiting connections are reset),
# then the first (the one that came first on the port); the second alone serves phase 2.
SERVER = r"""
import errno, json, os, select, socket, sys, threading, time
port, flag = int(sys.argv[1]), sys.argv[2]
ls = []
for i in range(3):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port)); s.listen(64); ls.append(s)
res = {}
x = socket.socket()
try:
    x.bind(("0.0.0.0", port)); res["plain_bind"] = "ok"
except OSError as e:
    res["plain_bind"] = errno.errorcode[e.errno]
x.close()
counts = [0, 0]
stop = [False, False]
def serve(i):
    p = select.poll(); p.register(ls[i], select.POLLIN)
    while not stop[i]:
        if not p.poll(50):
            continue
        c, _ = ls[i].accept()
        with c:
            c.settimeout(5)
            c.sendall(c.recv(100))
        counts[i] += 1
ts = [threading.Thread(target=serve, args=(i,)) for i in range(2)]
[t.start() for t in ts]
print("ready", flush=True)
while not os.path.exists(flag):
    time.sleep(0.02)
phase1 = list(counts)
ls[2].close()
stop[0] = True; ts[0].join(); ls[0].close()
open(flag + ".closed", "w").close()
while not os.path.exists(flag + ".2"):
    time.sleep(0.02)
stop[1] = True; ts[1].join()
res["phase1_served_by_both"] = phase1[0] > 0 and phase1[1] > 0
res["phase2_served_by_second"] = counts[1] - phase1[1]
print(json.dumps(res, sort_keys=True), flush=True)
"""

CLIENT = r"""
import json, os, select, socket, sys, time
host, port, flag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
N1, N2 = 60, 30
conns = []
for i in range(N1):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"ping %d" % i)
    conns.append(s)
served, waiting = 0, []
deadline = time.monotonic() + 3
pending = list(conns)
while pending and time.monotonic() < deadline:
    r, _, _ = select.select(pending, [], [], 0.1)
    for s in r:
        if s.recv(100):
            served += 1
        pending.remove(s)
open(flag, "w").close()              # the server closes its third and first listeners
while not os.path.exists(flag + ".closed"):
    time.sleep(0.02)
reset = 0
for s in pending:                    # the third listener's queue: reset, never served
    s.settimeout(3)
    try:
        reset += s.recv(100) == b""
    except ConnectionResetError:
        reset += 1
    except socket.timeout:
        pass
ok2 = 0
for i in range(N2):
    s = socket.create_connection((host, port), timeout=5)
    s.sendall(b"again %d" % i)
    ok2 += s.recv(100) == b"again %d" % i
    s.close()
open(flag + ".2", "w").close()
print(json.dumps({"served": served, "reset": reset, "left": len(pending) - reset, "ok2": ok2}))
"""


def scenario(net, conf, tag):
    res, out = json_exchange(net, SERVER, CLIENT, PORT, conf, "reuseport-" + tag,
                             args=(net.dir / ("flag-" + tag),))
    return json.loads(out), res


def test_reuseport_listeners_share_the_port(netpair):
    net = netpair()
    kernel_cli, kernel_srv = scenario(net, None, "kernel")
    conf = write_conf(net.dir / "rp.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    cli, srv = scenario(net, conf, "accel")
    assert_bypassed(before, net.tcp_segs("server"), 90 * 4, "the reuseport listeners")
    # The kernel's answers first, the scenario's soundness: both accepting listeners served,
    # the third's connections were reset when it closed, the second alone served the rest.
    expect_srv = {"plain_bind": "EADDRINUSE", "phase1_served_by_both": True,
                  "phase2_served_by_second": 30}
    assert kernel_srv == expect_srv, kernel_srv
    assert kernel_cli["reset"] > 0 and kernel_cli["left"] == 0, kernel_cli
    assert kernel_cli["served"] + kernel_cli["reset"] == 60 and kernel_cli["ok2"] == 30, kernel_cli
    assert srv == expect_srv, srv
    assert cli["reset"] > 0 and cli["left"] == 0, cli
    assert cli["served"] + cli["reset"] == 60 and cli["ok2"] == 30, cli


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 2;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 1024; }}
http {{
    log_format w '$pid $status';
    access_log {d}/access.log w;
    server {{ listen {port} reuseport; root {d}/www; }}
}}
"""


def stop_nginx(run):
    """Its master and workers, by pid: the master's fast shutdown, then SIGKILL for any left
    (the workers of a master killed outright live on)."""
    pidfile = run / "nginx.pid"
    if not pidfile.exists():
        return
    master = int(pidfile.read_text())
    try:
        kids = Path("/proc/%d/task/%d/children" % (master, master)).read_text().split()
    except OSError:
        kids = []
    family = [master] + [int(k) for k in kids]
    try:
        os.kill(master, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if not wait_gone(family, 10):
        kill_all(family)


def nginx_run(net, d, conf, tag):
    """nginx, 2 workers, `listen reuseport`, under wrk for 4 s: requests per worker pid."""
    run = d / tag
    run.mkdir()
    run.chmod(0o755)
    (run / "nginx.conf").write_text(NGINX_CONF.format(d=run, port=8081).replace(
        "root %s/www" % run, "root %s/www" % d))
    master = net.spawn("server", ["nginx", "-c", str(run / "nginx.conf"), "-e",
                                  str(run / "error.log")], name="nginx-" + tag, conf=conf)
    try:
        net.wait_port(8081, master)
        cp = net.run("client", ["wrk", "-t", "2", "-c", "50", "-d", "4",
                                "http://%s:8081/small.txt" % net.srv_ip], timeout=60)
        assert cp.returncode == 0 and "Socket errors" not in cp.stdout, (
            cp.stdout + cp.stderr + master.describe() + (run / "error.log").read_text()[-3000:])
    finally:
        stop_nginx(run)
    served = {}
    for line in (run / "access.log").read_text().splitlines():
        p, status = line.split()
        assert status == "200", line
        served[p] = served.get(p, 0) + 1
    return served


def test_nginx_reuseport_workers(netpair, request):
    """nginx `listen 8081 reuseport` with 2 workers: both serve, on the kernel and
    accelerated (where the second worker's listener used to stay on the kernel, idle)."""
    net = netpair()
    d = Path(tempfile.mkdtemp(prefix="bypass-nginx-rp-"))
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    d.chmod(0o755)
    (d / "www").mkdir()
    (d / "www" / "small.txt").write_text("hello\n")
    kernel = nginx_run(net, d, None, "kernel")
    assert len(kernel) == 2 and min(kernel.values()) > 100, kernel
    conf = write_conf(d / "bypass.conf", SRV_IF, [("tcp", 8081)])
    before = net.tcp_segs("server")
    accel = nginx_run(net, d, conf, "accel")
    assert_bypassed(before, net.tcp_segs("server"), sum(accel.values()), "nginx reuseport")
    assert len(accel) == 2 and min(accel.values()) > 100, accel


# --- UDP: unicast spread over the group, by flow ---------------------------------------------

UDP_SERVER = r"""
import json, select, socket, sys, time
port = int(sys.argv[1])
ss = []
for i in range(3):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("0.0.0.0", port)); s.setblocking(False); ss.append(s)
print("ready", flush=True)
flows = [dict() for _ in ss]
end = time.monotonic() + 3
while time.monotonic() < end:
    r, _, _ = select.select(ss, [], [], 0.1)
    for s in r:
        d, a = s.recvfrom(100)
        f = flows[ss.index(s)]
        f[a[1]] = f.get(a[1], 0) + 1
ports = [set(f) for f in flows]
print(json.dumps({"per_socket": [len(p) for p in ports],
                  "datagrams": sum(sum(f.values()) for f in flows),
                  "flow_split": sum(len(a & b) for i, a in enumerate(ports)
                                    for b in ports[i + 1:])}), flush=True)
"""

UDP_CLIENT = r"""
import socket, sys
for i in range(60):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for k in range(3):
        c.sendto(b"x", (sys.argv[1], int(sys.argv[2])))
    c.close()
"""


def udp_run(net, conf):
    return json_exchange(net, UDP_SERVER, UDP_CLIENT, PORT + 10, conf, "udp-rp")[0]


def test_udp_reuseport_spreads_flows(netpair):
    """Three SO_REUSEPORT UDP sockets on one port, 60 client flows of 3 datagrams: each
    socket gets some flows, each flow stays on one socket, nothing is lost, as on the
    kernel.  (lwIP gave every datagram to one socket.)"""
    net = netpair()
    kernel = udp_run(net, None)
    assert min(kernel["per_socket"]) > 0 and kernel["datagrams"] == 180, kernel
    assert kernel["flow_split"] == 0, kernel
    conf = write_conf(net.dir / "udp-rp.conf", SRV_IF, [("udp", PORT + 10)])
    before = net.snmp("server")["Udp.InDatagrams"]
    accel = udp_run(net, conf)
    assert net.snmp("server")["Udp.InDatagrams"] - before < 10, "the datagrams went through the kernel"
    assert min(accel["per_socket"]) > 0 and accel["datagrams"] == 180, accel
    assert accel["flow_split"] == 0, accel
