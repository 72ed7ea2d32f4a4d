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


ADOPT_CLIENT = r"""
import json, select, socket, sys
ep = select.epoll()
s = socket.socket()
s.setblocking(False)
ep.register(s.fileno(), select.EPOLLOUT)          # in the set before connect()
rc = s.connect_ex((sys.argv[1], int(sys.argv[2])))
events = ep.poll(10)
out = {"connect": rc, "first": [e for _, e in events], "so_error": s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)}
ep.modify(s.fileno(), select.EPOLLIN)
s.send(b"hello")
events = ep.poll(10)
out["second"] = [e for _, e in events]
out["echo"] = s.recv(100).decode()
print(json.dumps(out))
"""


def test_socket_in_epoll_before_connect(netpair):
    """A socket added to an epoll set while still a kernel socket, then connected through
    the stack: the set reports the connection (EPOLLOUT), not the placeholder kernel
    socket's hang-up, and then its data, exactly as the kernel does."""
    net = netpair(accel=("client",))
    srv = net.spawn("server", [PYTHON, "-c",
                               "import socket\nls=socket.socket()\n"
                               "ls.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
                               "ls.bind(('0.0.0.0',%d)); ls.listen(8); print('ready',flush=True)\n"
                               "for _ in range(2):\n c,_=ls.accept(); c.sendall(c.recv(100)); c.close()\n"
                               % PORT], name="echo")
    srv.wait_ready()
    results = []
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    for cli_conf in (None, conf):
        before = net.tcp_segs("client")
        cp = net.run("client", [PYTHON, "-c", ADOPT_CLIENT, net.srv_ip, PORT], conf=cli_conf,
                     timeout=30, check=True)
        results.append((json.loads(cp.stdout), net.tcp_segs("client") - before))
    (kernel, _), (accel, moved) = results
    assert kernel == {"connect": 115, "first": [4], "so_error": 0, "second": [1],
                      "echo": "hello"}, kernel
    assert accel == kernel
    assert moved < 5, "the accelerated client went through the kernel (%d segments)" % moved
