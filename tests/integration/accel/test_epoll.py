"""Issue 3, test 3: 1,000 concurrent connections to an accelerated epoll echo server."""

import json

import pytest

from .conftest import HERE, PYTHON, assert_bypassed, write_conf

PORT = 7300
N = 1000


@pytest.mark.parametrize("mode", ["lt", "et"])
def test_thousand_concurrent_connections(netpair, cprog, mode):
    net = netpair(accel=("server",))
    conf = write_conf(net.dir / "epoll.conf", "bypv0", [("tcp", PORT)])
    srv = net.spawn("server", [cprog("epoll_server"), PORT, mode], name="epoll-server",
                    conf=conf, nofile=8192)
    srv.wait_ready()
    before = net.tcp_segs("server")
    cp = net.run("client", [PYTHON, str(HERE / "many_clients.py"), net.srv_ip, PORT, N],
                 timeout=120)
    assert cp.returncode == 0, cp.stderr
    got = json.loads(cp.stdout)
    # The clients have closed; the server sees the last FIN when it sees it (the kernel too
    # takes its time over 1,000): wait for it to say so, then stop it.
    srv.wait_ready("drained after %d" % N, timeout=30)
    after = net.tcp_segs("server")
    assert srv.poll() is None, srv.describe()
    assert srv.stop() == 0, srv.describe()
    stats = srv.out().splitlines()[-1].split()  # accepted A closed C max_open M errors E
    acc, closed, max_open, errors = (int(stats[i]) for i in (1, 3, 5, 7))
    assert got == {"connected": N, "echoed": N, "errors": []}, got
    assert acc == N and closed == N and errors == 0, srv.out()
    assert max_open == N, "the server never held all %d connections at once" % N
    # Each connection: handshake, message, echo, ACKs, FIN both ways: >= 7,000 segments.
    assert_bypassed(before, after, 7 * N, "%d concurrent connections" % N)
