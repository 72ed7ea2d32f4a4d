"""Issue 11: pre-forked workers sharing a listener with EPOLLEXCLUSIVE.

On the kernel, a new connection wakes one of the epoll sets that hold the listener with
EPOLLEXCLUSIVE (nginx relies on it, with accept_mutex off), so the other workers sleep on
instead of waking to an accept that fails with EAGAIN.  The same workers, accelerated, must
not wake in a herd either: compared side by side with the kernel."""

import re

from .conftest import HERE, PYTHON, SRV_IF, assert_bypassed, write_conf

PORT = 7700
WORKERS = 4
CONNS = 30
SECS = 5

CLIENT = r"""
import socket, sys, time
for i in range(int(sys.argv[3])):
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
    s.sendall(b"m%d" % i)
    assert s.recv(100) == b"m%d" % i
    s.close()
    time.sleep(0.08)                  # every worker is asleep again before the next one
print("ok", flush=True)
"""


def run_workers(net, conf, conns):
    """The workers' wake-ups that found nothing to accept, over SECS while @conns
    connections come."""
    env = {"BYPASS_SPIN_USEC": "0"}   # sleeping workers: what EPOLLEXCLUSIVE is about
    srv = net.spawn("server", [PYTHON, str(HERE / "exclusive_workers.py"), PORT, WORKERS, SECS],
                    name="exclusive", conf=conf, env=env)
    srv.wait_ready()
    if conns:
        cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, conns], timeout=60)
        assert cp.stdout.strip() == "ok", cp.stderr
    srv.wait(30)
    rows = re.findall(r"worker \d+ accepted (\d+) idle (\d+) switches \d+", srv.out())
    assert len(rows) == WORKERS and "done" in srv.out(), srv.describe()
    assert sum(int(a) for a, _ in rows) == conns, srv.describe()
    return sum(int(i) for _, i in rows)


def test_epollexclusive_wakes_one_worker(netpair):
    net = netpair()
    kernel = run_workers(net, None, CONNS)
    conf = write_conf(net.dir / "excl.conf", SRV_IF, [("tcp", PORT)])
    before = net.tcp_segs("server")
    accel = run_workers(net, conf, CONNS)
    assert_bypassed(before, net.tcp_segs("server"), CONNS * 6, "the exclusive workers")
    print("wake-ups without a connection to accept, %d connections: kernel %d, accelerated %d"
          % (CONNS, kernel, accel))
    # A herd wakes all four workers for every connection: about (WORKERS - 1) * CONNS.  The
    # library's sleeps also end every 100 ms (its guard against a lost wake-up), and a
    # worker that wakes so within the 5 ms before the accept sees the connection too.
    assert accel <= kernel + CONNS // 2, (
        "accelerated workers woke in a herd: %d wake-ups found no connection (kernel: %d)"
        % (accel, kernel))
