"""Issue 10: the adaptive spin (BYPASS_SPIN_ADAPTIVE, the default).

A thread whose waits keep outlasting BYPASS_SPIN_USEC stops spinning: an accelerated server
that waits 400 times in epoll_wait with a 2 ms timeout and nothing arriving spends a fraction
of the CPU it spends with the fixed spin (each wait spins its 100 us there), and the thread
that no longer spins is still woken when data comes."""

import json

from .conftest import PYTHON, assert_bypassed, write_conf

PORT = 7310
WAITS = 400

SERVER = r"""
import json, select, socket, sys, time
port, waits = int(sys.argv[1]), int(sys.argv[2])
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port)); ls.listen(4)
print("listening", flush=True)
c, _ = ls.accept()
c.setblocking(False)
ep = select.epoll()
ep.register(c.fileno(), select.EPOLLIN)
t0, w0 = time.thread_time(), time.monotonic()
timeouts = sum(1 for _ in range(waits) if not ep.poll(0.002))
cpu, wall = time.thread_time() - t0, time.monotonic() - w0
c.send(b"ready")
got = ep.poll(10)
data = c.recv(100) if got else b""
c.send(data)
print("result " + json.dumps({"cpu_ms": cpu * 1e3, "wall_ms": wall * 1e3, "timeouts": timeouts,
                  "echoed": data.decode()}), flush=True)
time.sleep(1)
"""

CLIENT = r"""
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=30)
assert s.recv(5) == b"ready"
s.send(b"ping")
print(s.recv(4).decode())
"""


def one(net, adaptive):
    conf = write_conf(net.dir / ("spin-%s.conf" % adaptive), "bypv0", [("tcp", PORT)])
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT, WAITS], name="spin-%s" % adaptive,
                    conf=conf, env={"BYPASS_SPIN_USEC": "100",
                                    "BYPASS_SPIN_ADAPTIVE": adaptive})
    srv.wait_ready("listening")
    before = net.tcp_segs("server")
    cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT], timeout=60)
    assert cp.returncode == 0 and cp.stdout.strip() == "ping", (cp.stdout, cp.stderr,
                                                                 srv.describe())
    srv.wait_ready("result", timeout=30)
    assert_bypassed(before, net.tcp_segs("server"), 8, "the spin test")
    out = json.loads([l for l in srv.out().splitlines() if l.startswith("result ")][0][7:])
    srv.stop()
    assert out["timeouts"] == WAITS and out["echoed"] == "ping", out
    return out


def test_adaptive_spin_stops_spinning_on_waits_that_time_out(netpair):
    net = netpair(accel=("server",))
    fixed = one(net, "0")
    adaptive = one(net, "1")
    print("fixed", fixed, "adaptive", adaptive)
    # The fixed spin: 400 waits of 100 us each at least partly on the CPU (a busy machine
    # may preempt some); the adaptive one stops after a handful of waits.
    assert fixed["cpu_ms"] >= 15, (fixed, adaptive)
    assert adaptive["cpu_ms"] < fixed["cpu_ms"] / 2, (fixed, adaptive)
