"""An epoll set over many accelerated connections reports what the kernel's reports.

A wait looks only at the members whose sockets changed since its last scan, found through
an index by socket object, plus the members it must look at again (preload/epoll_index.c).
This runs one client program on the kernel and under the library, side by side, through:
level-triggered members reported again until drained, round robin under a small
maxevents, members deleted, closed or drained in between, one socket under two fds in the
set, new data on drained members, and edge-triggered members reported once per arrival.
"""
import json

from .conftest import PYTHON, write_conf

PORT = 7350
N = 64

# Accepts N connections, sends one byte on each, then answers every byte with one byte.
SERVER = r"""
import select, socket, sys
n = int(sys.argv[2])
ls = socket.socket(); ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", int(sys.argv[1]))); ls.listen(128)
print("ready", flush=True)
while True:
    conns = []
    for _ in range(n):
        c, _ = ls.accept()
        c.sendall(b"x")
        conns.append(c)
    while conns:
        r, _, _ = select.select(conns, [], [])
        for c in r:
            try:
                d = c.recv(64)
            except OSError:   # a reset: the client closed one with its byte unread
                d = b""
            if not d:
                conns.remove(c)
                c.close()
            else:
                c.sendall(b"y" * len(d))
"""

CLIENT = r"""
import json, select, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
name = {s.fileno(): i for i, s in enumerate(socks)}
for s in socks:
    s.recv(1, socket.MSG_PEEK)               # every one has its byte
ep = select.epoll()
for s in socks:
    ep.register(s.fileno(), select.EPOLLIN)
out = {}

def union(calls, maxevents):
    seen, total = set(), 0
    for _ in range(calls):
        evs = ep.poll(0, maxevents)
        total += len(evs)
        seen |= {name[fd] for fd, _ in evs}
    return sorted(seen), total

# Level-triggered, all ready: a small maxevents goes round all of them.
out["lt_small"] = union((n + 4) // 5, 5)
out["lt_big"] = union(3, 128)
# The even ones drained: only the odd ones, again and again.
for i in range(0, n, 2):
    socks[i].recv(1)
out["odd_small"] = union(n // 5 + 1, 5)
out["odd_big"] = union(3, 128)
# Deleted, closed, one under two fds, and new data on drained ones.
for i in range(1, 20, 2):
    ep.unregister(socks[i].fileno())
for i in range(21, 31, 2):
    socks[i].close()
dup = socks[31].dup()
name[dup.fileno()] = 1000 + 31
ep.register(dup.fileno(), select.EPOLLIN)
for i in range(0, 10, 2):
    socks[i].send(b"m")
for i in range(0, 10, 2):
    socks[i].recv(1, socket.MSG_PEEK)
out["changed_big"] = union(3, 128)
out["changed_small"] = union(20, 3)
ep.unregister(dup.fileno())
dup.close()
out["undup_big"] = union(2, 128)
# Edge-triggered: once per arrival.
ep2 = select.epoll()
live = [i for i in range(n) if i not in range(21, 31, 2)]
for i in live:
    ep2.register(socks[i].fileno(), select.EPOLLIN | select.EPOLLET)
def et(maxevents):
    return sorted(name[fd] for fd, _ in ep2.poll(0, maxevents))
out["et_first"] = et(128)
out["et_again"] = et(128)
for i in (2, 40):
    socks[i].setblocking(False)
    try:
        socks[i].recv(8)                      # drained: one arrival each to come
    except BlockingIOError:
        pass
    socks[i].setblocking(True)
    socks[i].send(b"m")
for i in (2, 40):
    socks[i].recv(1, socket.MSG_PEEK)
out["et_arrivals"] = et(128)
out["et_after"] = et(128)
print(json.dumps(out))
"""


def test_epoll_many_members_matches_kernel(netpair):
    net = netpair(accel=("client",))
    srv = net.spawn("server", [PYTHON, "-c", SERVER, PORT, N], name="epoll-index-server")
    srv.wait_ready()
    conf = write_conf(net.dir / "cli.conf", "bypv1", [("tcp", PORT)])
    results = {}
    for mode, c in (("kernel", None), ("accel", conf)):
        before = net.tcp_segs("client")
        cp = net.run("client", [PYTHON, "-c", CLIENT, net.srv_ip, PORT, N], conf=c,
                     timeout=60, check=True)
        results[mode] = (json.loads(cp.stdout), net.tcp_segs("client") - before)
    kernel, _ = results["kernel"]
    accel, moved = results["accel"]
    odd = list(range(1, N, 2))
    # What the kernel says, checked so that a change of the scenario is seen here.
    assert kernel["lt_small"] == [list(range(N)), 5 * ((N + 4) // 5)], kernel
    assert kernel["odd_big"] == [odd, 3 * len(odd)], kernel
    assert 1031 in kernel["changed_big"][0] and 0 in kernel["changed_big"][0], kernel
    assert kernel["et_again"] == [] and kernel["et_arrivals"] == [2, 40], kernel
    for key in kernel:
        assert accel[key] == kernel[key], "%s: accelerated %r, kernel %r" % (
            key, accel[key], kernel[key])
    assert moved < 40, "the accelerated client went through the kernel (%d segments)" % moved
